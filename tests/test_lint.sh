#!/bin/sh
# The test scripts themselves: no `check "DESC" [ A ] && [ B ]`, a check of
# which only A can fail (tests/check_lint.py says why). A script that
# passes here, and one planted with the defect must be found, so the lint
# cannot pass by finding nothing at all.
#
# Usage (from the repo root):  sh tests/test_lint.sh
# Without python3 it skips (counted as skipped, never as passed).

PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "  skip the test scripts' checks: no $PY"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_lint.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT

if out=$("$PY" "$HERE/check_lint.py" "$HERE"/test_*.sh); then
    ok "every check in tests/test_*.sh tests all of its condition ($(ls "$HERE"/test_*.sh | wc -l) scripts)"
else
    fail "a check tests only the first part of its condition" "$out"
fi
# (each line behind a | so that this file holds no such statement itself)
sed 's/^|//' >"$TMP/planted.sh" <<'PLANTED'
|check "fine: one command" [ "$a" = 1 ]
|check "fine: a compound in sh -c" sh -c "[ 1 = 1 ] && [ \"\$(echo 'x || y')\" = 'x || y' ]"
|check "fine: || inside a query" [ "$(sql "$DB" "select a || b from t")" = ab ]
|check "planted: only the first part counts" \
|    [ "$a" = 1 ] && [ "$b" = 2 ]
|check "planted: and here" [ "$a" = 1 ] &&
|    [ "$b" = 2 ]
PLANTED
out=$("$PY" "$HERE/check_lint.py" "$TMP/planted.sh")
rc=$?
if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 2 ] &&
    printf '%s\n' "$out" | grep -q 'planted.sh:4: check "planted: only' &&
    printf '%s\n' "$out" | grep -q 'planted.sh:6: check "planted: and here'; then
    ok "the two planted compound checks are found, at their lines, and nothing else"
else
    fail "the two planted compound checks are found, at their lines, and nothing else" "status $rc: $out"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
