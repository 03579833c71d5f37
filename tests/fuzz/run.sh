#!/bin/sh
# Runs libFuzzer targets for a fixed time each and prints one line of
# figures per target (`make fuzz` calls it; run from the repo root):
#   sh tests/fuzz/run.sh FUZZ_DIR SECONDS TARGET...
# Each target's seed corpus tests/fuzz/corpus/TARGET/ is copied to
# FUZZ_DIR/corpus/TARGET/ and the fuzzer grows that copy, never the
# committed corpus. Extra flags for one target: tests/fuzz/TARGET.options.
# The log is FUZZ_DIR/log/TARGET.log, a crashing input
# FUZZ_DIR/artifacts/TARGET-crash-* (leak-*, timeout-*, oom-*).
# Ends with "N passed, N failed" (targets), as tests/run.sh does, and exits
# non-zero when any target crashed, leaked, hung or ran out of memory.
set -u
# the logs hold raw bytes (dictionary entries): sed and grep must match bytes
LC_ALL=C
export LC_ALL
dir=$1
secs=$2
shift 2

# Scratch files of the targets (databases, token files) in a directory of
# this run's, on tmpfs when there is one; removed at the end even when a
# target crashed before it could remove its own.
base=${TMPDIR:-}
if [ -z "$base" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    base=/dev/shm
fi
TMPDIR=$(mktemp -d "${base:-/tmp}/gatelab-fuzz.XXXXXX") || exit 1
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
# None of the targets multiplies matrices: keep OpenBLAS from starting threads.
OPENBLAS_NUM_THREADS=1
export OPENBLAS_NUM_THREADS
: "${FUZZ_DB_SEED:=tests/fuzz/corpus/fuzz_db/seed.db}"
export FUZZ_DB_SEED

failed=""
npass=0
nfail=0
mkdir -p "$dir/artifacts" "$dir/log"
for t in "$@"; do
    bin=$dir/bin/$t
    work=$dir/corpus/$t
    log=$dir/log/$t.log
    rm -rf "$work"
    mkdir -p "$work"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
    fi
    seeds=$(ls "$work" | wc -l)
    # tests/fuzz/TARGET.options: more libFuzzer flags for one target, one a line
    opts=""
    if [ -f "tests/fuzz/$t.options" ]; then
        opts=$(grep -v '^#' "tests/fuzz/$t.options" | tr '\n' ' ')
    fi
    t0=$(date +%s)
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        $opts -artifact_prefix="$dir/artifacts/$t-" "$work" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    # the last status line: "#N  REDUCE cov: C ft: F corp: U/S ..."
    last=$(grep -E '^#[0-9]+.* cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p')
    if [ "$rc" -eq 0 ]; then
        status=ok
        npass=$((npass + 1))
    else
        status="FAILED (exit $rc)"
        failed="$failed $t"
        nfail=$((nfail + 1))
    fi
    printf 'fuzz %-17s %s | %ss | execs %s | %s exec/s | cov %s | ft %s | corpus %s (from %s seeds) | rss %s MB\n' \
        "$t" "$status" "$took" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$seeds" "${rss:-?}"
    if [ "$rc" -ne 0 ]; then
        grep -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|fuzz check failed|Test unit written|^artifact_prefix' \
            "$log" | head -n 8 | sed 's/^/    /'
        echo "    log: $log"
    fi
done
# the closing line tests/run.sh prints too, counting targets (.ci/run sums them)
echo "$npass passed, $nfail failed"
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
