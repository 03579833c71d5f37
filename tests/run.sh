#!/bin/sh
# Runs every unit test binary in $1/tests and every tests/test_*.sh script,
# then prints the totals as "N passed, N failed" (the line CI reads),
# followed by ", N skipped" when any check was skipped.
# Each test's own closing line is "N passed, N failed" or
# "N passed, N failed, N skipped" (a check that cannot run here, e.g. tmux
# missing); a test without one, or that exits non-zero with none failed,
# counts as one failure ("crashed or incomplete"). After each test, a line
# "-- TEST: N s" gives its wall time (where CI's minutes go).
dir=${1:-build/release}
passed=0; failed=0; skipped=0; broken=""
for t in "$dir"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    echo "== $t"
    t0=$(date +%s)
    case "$t" in
        *.sh) out=$(GATELAB_BIN="$dir/gatelab" sh "$t" 2>&1); rc=$? ;;
        *) out=$("$t" 2>&1); rc=$? ;;
    esac
    echo "$out"
    echo "-- $t: $(($(date +%s) - t0)) s"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1)); broken="$broken $t"
        continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    case "$line" in
        *skipped) s=${line#*failed, }; s=${s%% skipped} ;;
        *) s=0 ;;
    esac
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); broken="$broken $t"; fi
done
[ -n "$broken" ] && echo "crashed or incomplete:$broken"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
