#!/bin/sh
# The seam of DESIGN §1, held by the compiler (issue 12): no file under ui/ or
# store/ may have model.h, trainer.h or optim.h in its include closure — the
# screen and the store see the trainer only through records, commands and
# session_view.h. For every ui/*.c and store/*.c the compiler's -MM lists the
# headers it includes (transitively); a forbidden one fails the file, naming
# it. One check per file, then "N passed, N failed".
#
# Usage (from the repo root):  sh tests/test_seams.sh   (CC picks the compiler;
# GATELAB_BIN is ignored: this reads sources, not the binary)

CC=${CC:-cc}
FORBIDDEN="model.h trainer.h optim.h"
PKG_CFLAGS=$(pkg-config --cflags openblas ncursesw sqlite3 2>/dev/null)

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }

for f in ui/*.c store/*.c; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC2086  # PKG_CFLAGS is a list of flags
    deps=$($CC -std=c11 -D_GNU_SOURCE -Iinclude $PKG_CFLAGS -MM "$f" 2>&1)
    if [ $? -ne 0 ]; then
        fail "$f: the compiler could not list its includes: $(echo "$deps" | head -n 1)"
        continue
    fi
    bad=""
    for h in $FORBIDDEN; do
        # a dependency is a word ending in /h or equal to h (line continuations aside)
        if echo "$deps" | tr ' \\' '\n\n' | grep -Eq "(^|/)$h\$"; then
            bad="$bad $h"
        fi
    done
    if [ -n "$bad" ]; then
        fail "$f includes (through its headers)$bad"
    else
        ok "$f: none of $FORBIDDEN in its include closure"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
