#!/bin/sh
# The forward pass against an independent one (issue 12 item 5): gatelab's
# `eval` loss on a micro model equals tests/forward_ref.py's, a float64
# forward in Python's standard library written from DESIGN §2-3, to 1e-5
# absolute, under dense and the deterministic gate modes (oracle, topk, soft,
# sigmoid). The weights are a real export whose values forward_ref.py redraws
# at scales where every part counts (LayerNorm's eps, GELU's cubic term, the
# mask), so a wrong constant moves the loss past the tolerance; the last
# checks show that, by running the reference with a wrong eps and a wrong
# GELU coefficient and requiring a mismatch.
#
# Why 1e-5 absolute: the loss is a mean of cross-entropies near 6, printed by
# eval to 6 decimals (rounding 5e-7); gatelab's float32 forward was measured
# within 1e-6 of the float64 one. Relative 1e-5 would allow 6e-5; absolute is
# the stricter bound and still 10x the measured error. A LayerNorm eps of 1e-6
# moves these losses by about 4e-2, a GELU coefficient of 0.044 by about 4e-5;
# 0.0447, or sqrt(2/pi) rounded to 0.798, stay within it: the test catches a
# wrong constant, not a rounded one.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_forward.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N
# failed"; without python3 it skips (counted as skipped, never as passed).

BIN=${GATELAB_BIN:-build/release/gatelab}
PY=${PYTHON:-python3}
REF=$(dirname "$0")/forward_ref.py

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "  skip the forward against tests/forward_ref.py: no $PY"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_forward.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

# The micro model: T=8, d=16, 2 layers of 2 heads, gate rank 4, k=3 (rows 0-2
# keep every key, rows 3-7 are masked), V=256 (bytes). One step on the
# generator makes a checkpoint of that shape.
MICRO="--ctx 8 --dim 16 --layers 2 --heads 2 --gate-rank 4 --k 3 --mlp 64 --batch 2"
# shellcheck disable=SC2086
"$BIN" run $MICRO --arms soft --steps 1 --eval-every 1 --eval-windows 1 --threads 1 \
    --db "$TMP/db.sqlite" --out "$TMP/ck" --headless >"$OUT" 2>"$ERR"
rc=$?
CKPT=$(ls "$TMP"/ck/*/session-1/arm0-soft/step*.safetensors 2>/dev/null | tail -n 1)
if [ "$rc" -eq 0 ] && [ -n "$CKPT" ]; then ok "a micro run writes a checkpoint"
else fail "a micro run writes a checkpoint (exit $rc)" "$(head -n 1 "$ERR")"; finish; fi
"$BIN" export "$CKPT" --out "$TMP/micro.safetensors" >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ]; then ok "export of the micro checkpoint"
else fail "export of the micro checkpoint (exit $rc)" "$(head -n 1 "$ERR")"; finish; fi
"$PY" "$REF" --rewrite "$TMP/micro.safetensors" "$TMP/redrawn.safetensors" --seed 2 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ]; then ok "forward_ref.py redraws the weights (seed 2)"
else fail "forward_ref.py redraws the weights (exit $rc)" "$(head -n 1 "$ERR")"; finish; fi

# 65 bytes: 8 windows of T+1 = 9 (window w = bytes 8w .. 8w+8)
printf 'The code of Selma is 9562. Selma, an architect, lives in Accra.\n' >"$TMP/eval.txt"

# gatelab's loss on WEIGHTS under MODE with K keys (0: the checkpoint's k),
# from `eval`'s one line
gl_loss() {
    set -- "$1" --data "$TMP/eval.txt" --gate "$2" --threads 1 ${3:+--k "$3"}
    "$BIN" eval "$@" 2>"$ERR" | sed -n 's/^loss \([0-9.]*\) ppl .*/\1/p'
}

# compare WEIGHTS MODE LABEL [K]: the reference agrees with gatelab
compare() {
    w=$1; mode=$2; label=$3; k=${4:-}
    L=$(gl_loss "$w" "$mode" "$k")
    if [ -z "$L" ]; then fail "$label: gatelab eval --gate $mode gave no loss" "$(head -n 1 "$ERR")"; return; fi
    if "$PY" "$REF" "$w" "$TMP/eval.txt" --gate "$mode" ${k:+--k "$k"} --expect "$L" >"$OUT" 2>"$ERR"; then
        ok "$label: gatelab $L, reference $(sed -n 's/^loss \([^ ]*\).*/\1/p' "$OUT") (|diff| <= 1e-5)"
    else
        fail "$label: gatelab $L vs the reference" "$(head -n 1 "$ERR")"
    fi
}

echo "# the exported weights as trained (1 step)"
compare "$TMP/micro.safetensors" dense "dense, trained weights"
echo "# redrawn weights: every constant and mask moves the loss"
for mode in dense oracle topk soft sigmoid; do
    compare "$TMP/redrawn.safetensors" "$mode" "$mode"
done
# eval --k overrides the checkpoint's k=3: k=1 masks rows 1-7, k=5 rows 5-7
compare "$TMP/redrawn.safetensors" oracle "oracle, --k 1" 1
compare "$TMP/redrawn.safetensors" soft "soft, --k 5" 5
compare "$TMP/redrawn.safetensors" topk "topk, --k 5" 5

echo "# row blocks (src/attention.c): T = 72, a block of 64 queries and a short one"
# The attention takes its queries in blocks of 64 against the keys the
# block's last row sees, and recomputes its probabilities in the backward;
# T = 72 puts a row block past the first and its rows past a vector's width.
# One window of 73 bytes and the redraw of seed 2: rows of up to 72 keys
# bring the hard masks' boundary gaps down fast, and these keep them above
# forward_ref's 1e-4 (oracle 1.4e-4, topk 4.4e-4; seed 3 has 8e-5).
LONG="--ctx 72 --dim 16 --layers 2 --heads 2 --gate-rank 4 --k 5 --mlp 64 --batch 2"
# shellcheck disable=SC2086
"$BIN" run $LONG --arms soft --steps 1 --eval-every 1 --eval-windows 1 --threads 1 \
    --db "$TMP/db72.sqlite" --out "$TMP/ck72" --headless >"$OUT" 2>"$ERR"
CK72=$(ls "$TMP"/ck72/*/session-1/arm0-soft/step*.safetensors 2>/dev/null | tail -n 1)
if [ -n "$CK72" ] && "$BIN" export "$CK72" --out "$TMP/t72.safetensors" >"$OUT" 2>"$ERR" &&
    "$PY" "$REF" --rewrite "$TMP/t72.safetensors" "$TMP/r72.safetensors" --seed 2 2>"$ERR"; then
    ok "a T=72 checkpoint, exported and redrawn (seed 2)"
    mv "$TMP/eval.txt" "$TMP/eval8.txt"
    { cat "$TMP/eval8.txt"; printf 'Accra is '; } >"$TMP/eval.txt"   # 73 bytes
    for mode in dense oracle topk soft sigmoid; do
        compare "$TMP/r72.safetensors" "$mode" "T=72 $mode"
    done
    mv "$TMP/eval8.txt" "$TMP/eval.txt"
else
    fail "a T=72 checkpoint, exported and redrawn" "$(head -n 1 "$ERR")"
fi

echo "# the comparison can fail: a reference with a wrong constant disagrees"
# mismatch LABEL REFERENCE OPTIONS...: the reference, so changed, must differ
mismatch() {
    label=$1; shift
    L=$(gl_loss "$TMP/redrawn.safetensors" dense)
    if [ -z "$L" ]; then fail "$label: gatelab eval gave no loss"; return; fi
    "$PY" "$REF" "$TMP/redrawn.safetensors" "$TMP/eval.txt" --gate dense --expect "$L" "$@" \
        >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q 'differ by' "$ERR"; then ok "$label: $(cat "$ERR")"
    else fail "$label: the reference still agreed (exit $rc)" "$(cat "$OUT")"; fi
}
mismatch "LayerNorm eps 1e-6 instead of 1e-5" --ln-eps 1e-6
mismatch "GELU coefficient 0.044 instead of 0.044715" --gelu-coef 0.044
finish
