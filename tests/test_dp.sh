#!/bin/sh
# Data-parallel arms over two MPI ranks (issue 15 item 3, item 6's --dp
# parts): runs tests/test_dp.c's binary under `mpirun --oversubscribe -np 2`
# (as root with --allow-run-as-root), where it checks --dp 2 against one
# process of the same global batch (30 steps, the tolerance written and
# justified in test_dp.c), the replicas' weight hashes at every evaluation,
# a scripted swap applied by both replicas at its step, a stop, and a
# corrupted replica caught by the hash. Its rank 0 prints both ranks' totals,
# which this script reports as its own. Counted as one skip, with the
# reason, when mpirun is missing or the build has no MPI.
#
# Sanitizer builds (make test-asan / test-tsan) run it too: Open MPI's own
# allocations at exit and its internal threads are not gatelab's, so
# LeakSanitizer and ThreadSanitizer read the suppressions in
# tests/mpi_lsan.supp and tests/mpi_tsan.supp (libmpi, libopen-pal,
# libopen-rte, libpmix and the MCA components only).
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_dp.sh

BIN=${GATELAB_BIN:-build/release/gatelab}
DIR=$(dirname "$BIN")
TEST="$DIR/tests/test_dp"
HERE=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
finish() {
    [ -n "${TMP:-}" ] && rm -rf "$TMP"
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
    [ "$failed" -eq 0 ]; exit $?
}

if ! command -v mpirun >/dev/null 2>&1; then
    skip "skipped: no mpirun (apt-get install openmpi-bin)"
    finish
fi
if [ ! -x "$TEST" ]; then
    fail "test binary '$TEST' is not built (make test-bins)"
    finish
fi
if [ "$("$TEST" --built-with-mpi 2>/dev/null)" != "1" ]; then
    skip "skipped: built without MPI (HAVE_MPI=0 or no libopenmpi-dev)"
    finish
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_dp.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
# Open MPI's memory hooks patch malloc under the sanitizers' interposers;
# leave them off, and keep OpenBLAS single-threaded (the model's pool is)
export OMPI_MCA_memory=^patcher OPENBLAS_NUM_THREADS=1
# keep the components loaded to the end, so their leaks have names to suppress
export OMPI_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$HERE/mpi_lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export TSAN_OPTIONS="suppressions=$HERE/mpi_tsan.supp:report_signal_unsafe=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

t0=$(date +%s)
timeout 300 mpirun $ROOT --oversubscribe -np 2 "$TEST" >"$TMP/out" 2>"$TMP/err"
rc=$?
secs=$(($(date +%s) - t0))
sed 's/^/    /' "$TMP/out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/out" | tail -1)
if [ -z "$line" ]; then
    fail "mpirun -np 2 test_dp printed no totals (exit $rc)" "$(head -c 2000 "$TMP/err")"
    finish
fi
p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
passed=$((passed + p)); failed=$((failed + f))
if [ "$rc" -eq 0 ]; then
    ok "mpirun -np 2 test_dp: both ranks exit 0 in ${secs} s"
else
    fail "mpirun -np 2 test_dp exits $rc" "$(head -c 2000 "$TMP/err")"
fi
finish
