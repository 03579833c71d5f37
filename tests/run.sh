#!/bin/sh
# Runs every unit test binary in $1/tests and every tests/test_*.sh script,
# then prints the totals as "N passed, N failed" (the line CI reads).
dir=${1:-build/release}
passed=0; failed=0; broken=""
for t in "$dir"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    echo "== $t"
    case "$t" in
        *.sh) out=$(GATELAB_BIN="$dir/gatelab" sh "$t" 2>&1); rc=$? ;;
        *) out=$("$t" 2>&1); rc=$? ;;
    esac
    echo "$out"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1)); broken="$broken $t"
        continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); broken="$broken $t"; fi
done
[ -n "$broken" ] && echo "crashed or incomplete:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
