#!/bin/sh
# The element-wise paths through the real binary (vec.h, issue 13 item 4):
# GATELAB_VEC naming no path, or one this CPU lacks, is refused with one
# line and exit 2 before anything runs; on every path the CPU has, a short
# training run gives the same bits (every printed figure) with --threads 1
# and 2; the paths' losses agree to 1e-3 (their sums round differently, and
# a few hundred updates carry that); and the forward against
# tests/forward_ref.py (test_forward.sh, to 1e-5) passes on each path other
# than the default one, which test_forward.sh itself covers. A path the CPU
# lacks is counted skipped.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_vec.sh

BIN=${GATELAB_BIN:-build/release/gatelab}
passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
finish() {
    rm -rf "$TMP"
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
    [ "$failed" -eq 0 ]; exit $?
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_vec.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi

# ---- refusals ----
GATELAB_VEC=sse9 "$BIN" run --steps 1 --no-telemetry --headless >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "GATELAB_VEC=sse9: not a path" "$TMP/err" \
    && [ ! -s "$TMP/out" ]; then
    ok "GATELAB_VEC=sse9: exit 2, one line naming it ($(cat "$TMP/err"))"
else
    fail "GATELAB_VEC=sse9: want exit 2 and one line naming it" "rc $rc, stderr: $(head -c 300 "$TMP/err")"
fi

# ---- the paths this CPU has ----
MICRO="--ctx 32 --dim 32 --layers 2 --heads 2 --gate-rank 4 --batch 4 --k 4"
have=""
for p in scalar avx2 avx512; do
    if GATELAB_VEC=$p "$BIN" --version >/dev/null 2>"$TMP/err"; then
        have="$have $p"
    elif grep -q "GATELAB_VEC=$p: this CPU cannot run" "$TMP/err"; then
        ok "GATELAB_VEC=$p refused here: $(cat "$TMP/err")"
        skip "$p: training on 1 and 2 threads, forward against forward_ref.py (this CPU lacks it)"
        skip "$p: loss against the other paths"
    else
        fail "GATELAB_VEC=$p: neither run nor refused as a missing path" "$(cat "$TMP/err")"
    fi
done

# the printed figures of a run, less tokens/s and ETA (timing), sorted (the
# arms' lines interleave as their threads go)
figures() {
    grep -E '^(step|summary)' "$1" | sed -e 's/| [0-9]* tok\/s.*//' | sort
}

for p in $have; do
    for th in 1 2; do
        GATELAB_VEC=$p "$BIN" run $MICRO --arms soft,dense --steps 30 --eval-every 10 --eval-windows 4 \
            --threads $th --no-telemetry --headless >"$TMP/$p.$th" 2>"$TMP/err.$p.$th"
        echo $? >"$TMP/rc.$p.$th"
    done
    if [ "$(cat "$TMP/rc.$p.1")" -eq 0 ] && [ "$(cat "$TMP/rc.$p.2")" -eq 0 ] \
        && [ "$(figures "$TMP/$p.1" | wc -l)" -ge 6 ] \
        && [ "$(figures "$TMP/$p.1")" = "$(figures "$TMP/$p.2")" ]; then
        ok "$p: 30 steps of soft and dense, every val and train figure the same with --threads 1 and 2"
    else
        fail "$p: runs on 1 and 2 threads differ or failed" \
            "$(diff "$TMP/$p.1" "$TMP/$p.2" | head -5) $(head -c 300 "$TMP/err.$p.1")"
    fi
done

# the paths' final val losses within 1e-3 of the first path's
first=""
for p in $have; do
    v=$(grep '^summary: arm soft' "$TMP/$p.1" | sed -e 's/.*final val \([0-9.]*\).*/\1/')
    if [ -z "$first" ]; then first=$v; firstp=$p; continue; fi
    if [ -n "$v" ] && awk -v a="$v" -v b="$first" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3) }'; then
        ok "$p against $firstp: final val loss $v vs $first (within 1e-3)"
    else
        fail "$p against $firstp: final val loss '$v' vs '$first'"
    fi
done

# the forward against forward_ref.py on the paths that are not the default
best=$(echo $have | awk '{ print $NF }')
for p in $have; do
    [ "$p" = "$best" ] && continue
    line=$(GATELAB_VEC=$p GATELAB_BIN="$BIN" sh "$(dirname "$0")/test_forward.sh" 2>&1 | tail -1)
    case "$line" in
        *skipped) skip "$p: test_forward.sh: $line" ;;
        *" passed, 0 failed") ok "$p: test_forward.sh against forward_ref.py: $line" ;;
        *) fail "$p: test_forward.sh against forward_ref.py: $line" ;;
    esac
done
finish
