"""check_lint: finds the test scripts' checks that cannot fail in part.

`check "DESC" CMD ARGS...` runs one command; a compound condition written
after it, `check "DESC" [ A ] && [ B ]`, checks only A: the shell runs
`check ... [ A ]` (which returns 0 whatever it records) and then B, whose
result nobody reads. A compound condition belongs in `sh -c`, `eval`, a
function, or an if/ok/fail. Prints FILE:LINE: TEXT for each such statement
(lines continued by a backslash, && or || joined) and exits 1 when there is one.

Usage: python3 tests/check_lint.py tests/*.sh
"""
import re
import sys


def top_level_and_or(s):
    """Whether s has && or || outside quotes and $( )."""
    stack = ["top"]
    j = 0
    while j < len(s):
        c, ctx = s[j], stack[-1]
        if ctx == "'":
            if c == "'":
                stack.pop()
        elif ctx == '"':
            if c == "\\":
                j += 2
                continue
            if s.startswith("$(", j):
                stack.append("$(")
                j += 2
                continue
            if c == '"':
                stack.pop()
        else:
            if c == "\\":
                j += 2
                continue
            if c in "'\"":
                stack.append(c)
            elif s.startswith("$(", j):
                stack.append("$(")
                j += 2
                continue
            elif c == "(" and ctx == "$(":
                stack.append("$(")
            elif c == ")" and ctx == "$(":
                stack.pop()
            elif ctx == "top" and s[j:j + 2] in ("&&", "||"):
                return True
            elif ctx == "top" and c in ";#":
                return False
        j += 1
    return False


def statements(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        # the shell reads on after a backslash, && or || at the line's end
        while i + 1 < len(lines):
            if text.endswith("\\"):
                text = text[:-1]
            elif not text.rstrip().endswith(("&&", "||")):
                break
            i += 1
            text = text + " " + lines[i].strip()
        yield start + 1, text.strip()
        i += 1


def main(paths):
    found = 0
    for path in paths:
        for line, text in statements(path):
            if re.match(r"check\s", text) and top_level_and_or(text):
                print("%s:%d: %s" % (path, line, text[:160]))
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
