#!/bin/sh
# End-to-end tests of the gatelab command line (DESIGN.md sections 9-10):
# bad flags and numbers, bad data files, a tiny headless run that writes
# checkpoints, the checkpoint format (checked by tests/st_reader.py and by an
# independent parser below), export, eval, every command's --help,
# --opt=value, experiment --from of the other kind, and --version.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_cli.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh only (runs under dash).

BIN=${GATELAB_BIN:-build/release/gatelab}
ST_READER=tests/st_reader.py
PY=${PYTHON:-python3}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
# check DESC CMD...: passes when CMD succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
not() { ! "$@"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_cli.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    echo "$passed passed, $failed failed"
    exit 1
fi
if ! command -v "$PY" >/dev/null 2>&1; then
    # the test data and the independent parser are Python: without it the
    # checks cannot run, which is a failure here (make deps installs it)
    fail "$PY is needed by these tests (make deps installs it)"
    echo "$passed passed, $failed failed"
    exit 1
fi

# A tiny model so every run takes a fraction of a second.
TINY="--arms soft --db $TMP/cli.db --ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --steps 20 --eval-every 10 --eval-windows 4 --threads 1"
CTX=32

# Number of lines in a file, counting a last line without a newline.
nlines() { awk 'END { print NR }' "$1"; }

# Does stdout hold anything that looks like training/eval progress?
progress_in_stdout() { grep -Eq '^(step |summary:|checkpoint |loss |exported )' "$OUT"; }

# expect_error DESC NAME WHAT_REGEX ARGS...
#   Runs gatelab ARGS and requires: non-zero exit, exactly one line on stderr,
#   that line contains NAME (the flag or path, fixed string) and matches
#   WHAT_REGEX (what is wrong, extended regex, case-insensitive), and no
#   progress on stdout.
expect_error() {
    d=$1; name=$2; what=$3; shift 3
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    msg=$(head -n 1 "$ERR")
    if [ "$rc" -eq 0 ]; then
        fail "$d: exit 0, expected an error" "stderr: $msg"
    elif [ "$rc" -ge 128 ]; then
        fail "$d: killed by signal (exit $rc)" "stderr: $msg"
    elif [ "$(nlines "$ERR")" -ne 1 ]; then
        fail "$d: $(nlines "$ERR") lines on stderr, expected 1" "$(head -n 3 "$ERR" | tr '\n' '|')"
    elif ! grep -qF -- "$name" "$ERR"; then
        fail "$d: error does not name '$name'" "stderr: $msg"
    elif ! grep -Eiq -- "$what" "$ERR"; then
        fail "$d: error does not say /$what/" "stderr: $msg"
    elif progress_in_stdout; then
        fail "$d: progress on stdout despite the error" "stdout: $(head -n 1 "$OUT")"
    else
        ok "$d  [$msg]"
    fi
}

# ---------------------------------------------------------------------------
# Test data
# ---------------------------------------------------------------------------
# ~20 KB of English-like text, deterministic.
"$PY" - "$TMP/text.txt" <<'EOF'
import random, sys
r = random.Random(7)
words = ("the cat sat on a mat while the dog ran far away from home and "
         "birds sang in old green trees near the river").split()
out = []
while sum(len(w) + 1 for w in out) < 20000:
    out.append(r.choice(words))
open(sys.argv[1], "w").write(" ".join(out)[:20000])
EOF
: >"$TMP/empty.txt"
mkdir -p "$TMP/nofiles/subdir"            # a directory holding no regular file
printf '0123456789' >"$TMP/short.txt"     # 10 bytes: too short for T=32

# llm.c-style .bin files: 256 int32 LE header (magic 20240520, version 1,
# ntokens), then uint16 tokens. Each variant breaks one thing.
"$PY" - "$TMP" <<'EOF'
import struct, sys, os
d = sys.argv[1]
def write(name, toks, magic=20240520, version=1, ntokens=None, header_ints=256):
    h = [0] * 256
    h[0], h[1], h[2] = magic, version, len(toks) if ntokens is None else ntokens
    blob = struct.pack("<256i", *h)[:header_ints * 4] + struct.pack("<%dH" % len(toks), *toks)
    open(os.path.join(d, name), "wb").write(blob)
toks = [(i * 7) % 250 for i in range(4000)]
write("good.bin", toks)
write("badmagic.bin", toks, magic=12345)
write("trunc.bin", [], header_ints=100)          # 400-byte header
write("count.bin", toks, ntokens=5000)           # header says 5000, file has 4000
write("bigtok.bin", toks[:-1] + [300])           # max token 300 >= V=256
EOF

# ---------------------------------------------------------------------------
echo "# bad flags and numbers"
# ---------------------------------------------------------------------------
expect_error "unknown flag"               "--bogus"     "unknown option"           run --bogus
expect_error "unknown command"            "frobnicate"  "unknown command"          frobnicate
expect_error "second positional word"     "extra"       "unexpected argument"      run extra
expect_error "--steps abc"                "--steps"     "not a (whole )?number"    run --steps abc
expect_error "--steps -5"                 "--steps"     "not a whole number|must be" run --steps -5
expect_error "--steps 0"                  "--steps"     "must be between|at least" run --steps 0
expect_error "--k 0"                      "--k"         "must be between|at least" run --k 0
expect_error "--lr nan"                   "--lr"        "not a number|finite"      run --lr nan
expect_error "--lr inf"                   "--lr"        "not a number|finite"      run --lr inf
expect_error "--gate-temp 0"              "--gate-temp" "must be between|positive" run --gate-temp 0
expect_error "--dim 30 --heads 4"         "--dim"       "multiple"                 run --dim 30 --heads 4
expect_error "--k greater than --ctx"     "--k"         "context|--ctx"            run --ctx 32 --k 40
expect_error "--arms bogus"               "bogus"       "unknown gate mode"        run --arms bogus
expect_error "--preset huge"              "huge"        "unknown preset"           run --preset huge
expect_error "missing value at the end"   "--steps"     "missing value"            run --steps
expect_error "--vocab 1"                  "--vocab"     "must be between"          run --vocab 1

# ---------------------------------------------------------------------------
echo "# bad data"
# ---------------------------------------------------------------------------
# shellcheck disable=SC2086  # $TINY is a list of words on purpose
{
expect_error "missing data file"     "$TMP/missing.txt" "cannot open|no such file"    run $TINY --data "$TMP/missing.txt"
expect_error "empty data file"       "$TMP/empty.txt"   "empty"                       run $TINY --data "$TMP/empty.txt"
expect_error "directory w/o files"   "$TMP/nofiles"     "no regular files|no files"   run $TINY --data "$TMP/nofiles"
expect_error "text too short for T"  "$TMP/short.txt"   "need at least|too short"     run $TINY --data "$TMP/short.txt"
expect_error ".bin bad magic"        "$TMP/badmagic.bin" "magic"                      run $TINY --data "$TMP/badmagic.bin"
expect_error ".bin truncated header" "$TMP/trunc.bin"   "truncated|header"            run $TINY --data "$TMP/trunc.bin"
expect_error ".bin count != size"    "$TMP/count.bin"   "5000|tokens"                 run $TINY --data "$TMP/count.bin"
expect_error ".bin token >= --vocab"  "$TMP/bigtok.bin"  "V=256|vocab"                 run $TINY --data "$TMP/bigtok.bin" --vocab 256
}

# The same token file trains once the vocabulary is large enough, and without
# --vocab a .bin file sets V itself (largest token id + 1).
# shellcheck disable=SC2086
"$BIN" run $TINY --steps 5 --data "$TMP/bigtok.bin" --vocab 400 >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^summary:' "$OUT"; then ok ".bin with token 300 trains with --vocab 400"
else fail ".bin with token 300 trains with --vocab 400 (exit $rc)" "$(head -n 1 "$ERR")"; fi
"$BIN" run $TINY --steps 2 --data "$TMP/bigtok.bin" >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ] && grep -q ' V=301 ' "$OUT"; then ok ".bin without --vocab takes V=301 from its largest token"
else fail ".bin without --vocab takes V from the data (exit $rc)" "$(head -n 1 "$OUT") $(head -n 1 "$ERR")"; fi

# ---------------------------------------------------------------------------
echo "# headless run with checkpoints"
# ---------------------------------------------------------------------------
CK=$TMP/ck
# shellcheck disable=SC2086
"$BIN" run $TINY --data "$TMP/text.txt" --out "$CK" --save-every 10 >"$OUT" 2>"$ERR"
rc=$?
check "run exits 0 (got $rc)"                  [ "$rc" -eq 0 ]
check "run writes nothing to stderr"           [ ! -s "$ERR" ]
check "run prints progress lines with 'step'"  grep -q '^step ' "$OUT"
check "run prints a 'summary:' line"           grep -q '^summary:' "$OUT"
# --out DIR holds DBNAME-DBID/session-N/armI-NAME/ (so databases and sessions never share a file)
SDIR=$(ls -d "$CK"/cli-*/session-* 2>/dev/null | tail -n 1)
check "checkpoints under --out in cli-DBID/session-N ($SDIR)" [ -n "$SDIR" ]
check "checkpoint arm0-soft/step000010.safetensors" [ -s "$SDIR/arm0-soft/step000010.safetensors" ]
check "checkpoint arm0-soft/step000020.safetensors" [ -s "$SDIR/arm0-soft/step000020.safetensors" ]
CKPT=$SDIR/arm0-soft/step000020.safetensors

# ---------------------------------------------------------------------------
echo "# checkpoint format (tests/st_reader.py)"
# ---------------------------------------------------------------------------
"$PY" "$ST_READER" "$CKPT" --meta gate_mode=soft --meta step=20 >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ]; then ok "st_reader validates the checkpoint; gate_mode=soft step=20"
else fail "st_reader on the checkpoint (exit $rc)" "$(head -n 1 "$ERR")"; fi
for t in wte h.0.attn.qkv.weight h.0.gate.q.weight lnf.bias adam.m.wte; do
    check "checkpoint lists tensor $t" grep -Eq "^  $t " "$OUT"
done

# An independent parser (json + struct, no st_reader, no gatelab code).
# st.py names FILE             -> tensor names, one per line
# st.py bytes FILE NAME        -> the tensor's raw bytes as hex
# st.py notall FILE NAME VALUE -> exit 0 if some element differs from VALUE
# st.py same FILE FILE2        -> exit 0 if each tensor of FILE has identical bytes in FILE2
cat >"$TMP/st.py" <<'EOF'
import json, struct, sys
def load(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
cmd, path = sys.argv[1], sys.argv[2]
t = load(path)
if cmd == "names":
    print("\n".join(sorted(t)))
elif cmd == "bytes":
    print(t[sys.argv[3]].hex())
elif cmd == "same":   # every tensor of FILE has the same bytes in FILE2
    other = load(sys.argv[3])
    diff = [k for k in t if other.get(k) != t[k]]
    if diff:
        print("differ: " + " ".join(diff), file=sys.stderr)
    sys.exit(1 if diff or not t else 0)
elif cmd == "notall":
    raw = t[sys.argv[3]]
    vals = struct.unpack("<%df" % (len(raw) // 4), raw)
    sys.exit(0 if vals and any(v != float(sys.argv[4]) for v in vals) else 1)
EOF
check "lnf.weight after training is not all ones" "$PY" "$TMP/st.py" notall "$CKPT" lnf.weight 1.0

# ---------------------------------------------------------------------------
echo "# export"
# ---------------------------------------------------------------------------
EXP=$TMP/export.safetensors
"$BIN" export "$CKPT" --out "$EXP" >"$OUT" 2>"$ERR"
rc=$?
check "export exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "export wrote the file"    [ -s "$EXP" ]
"$PY" "$ST_READER" "$EXP" --meta gate_mode=soft --meta step=20 >/dev/null 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ]; then ok "st_reader validates the export; gate_mode=soft step=20"
else fail "st_reader on the export (exit $rc)" "$(head -n 1 "$ERR")"; fi
"$PY" "$TMP/st.py" names "$CKPT" | grep -v '^adam\.' >"$TMP/names.ckpt"
"$PY" "$TMP/st.py" names "$EXP" >"$TMP/names.exp"
# (an empty listing would pass both vacuously: the parser must have listed some)
check "export has no adam.* tensors" \
    eval '[ -s "$TMP/names.exp" ] && ! grep -q "^adam\." "$TMP/names.exp"'
check "export has the checkpoint's weight tensors, no more, no less" \
    eval '[ -s "$TMP/names.exp" ] && cmp -s "$TMP/names.ckpt" "$TMP/names.exp"'
b1=$("$PY" "$TMP/st.py" bytes "$CKPT" h.0.ln1.bias)
b2=$("$PY" "$TMP/st.py" bytes "$EXP" h.0.ln1.bias)
check "h.0.ln1.bias bytes identical in checkpoint and export" [ "${b1:-none}" = "$b2" ]
check "h.0.ln1.bias is not all zeros after training" \
    "$PY" "$TMP/st.py" notall "$CKPT" h.0.ln1.bias 0.0
check "every exported tensor is byte-identical to the checkpoint's" \
    "$PY" "$TMP/st.py" same "$EXP" "$CKPT"
# The message reports how many tensors it wrote: it must match the file.
nexp=$(wc -l <"$TMP/names.exp" | tr -d ' ')
if grep -Eq "[(, ]$nexp tensors" "$OUT"; then ok "export reports $nexp tensors written"
else fail "export reports the tensor count it wrote ($nexp)" "stdout: $(head -n 1 "$OUT")"; fi

# Corrupt inputs: half a checkpoint, and random bytes. The --out file must
# not appear; an existing --out file must be left alone.
# what a corrupt-file error should say
CORRUPT="truncated|beyond|exceeds|corrupt|invalid|bad|header|short"
size=$(wc -c <"$CKPT")
head -c $((size / 2)) "$CKPT" >"$TMP/half.safetensors"
head -c 5000 /dev/urandom >"$TMP/random.safetensors"
expect_error "export of a truncated checkpoint" "$TMP/half.safetensors" "$CORRUPT" \
    export "$TMP/half.safetensors" --out "$TMP/x1.safetensors"
check "  ... and the --out file is not created" [ ! -e "$TMP/x1.safetensors" ]
expect_error "export of random bytes" "$TMP/random.safetensors" "$CORRUPT" \
    export "$TMP/random.safetensors" --out "$TMP/x2.safetensors"
check "  ... and the --out file is not created" [ ! -e "$TMP/x2.safetensors" ]
echo keep >"$TMP/keep.safetensors"
expect_error "export of a truncated checkpoint over an existing file" "$TMP/half.safetensors" "$CORRUPT" \
    export "$TMP/half.safetensors" --out "$TMP/keep.safetensors"
check "  ... and the existing --out file is unchanged" [ "$(cat "$TMP/keep.safetensors")" = keep ]
expect_error "export without --out" "--out" "missing" export "$CKPT"

# ---------------------------------------------------------------------------
echo "# eval"
# ---------------------------------------------------------------------------
LINE_RE='^loss [0-9.]+ ppl [0-9.]+ tokens [0-9]+$'
nbytes=$(wc -c <"$TMP/text.txt" | tr -d ' ')
want_tokens=$(( (nbytes - 1) / CTX * CTX ))

# eval_ok DESC ARGS...: exit 0, exactly one stdout line of the eval format
eval_ok() {
    d=$1; shift
    "$BIN" eval "$@" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -ne 0 ]; then fail "$d: exit $rc" "stderr: $(head -n 1 "$ERR")"
    elif [ "$(nlines "$OUT")" -ne 1 ] || ! grep -Eq "$LINE_RE" "$OUT"; then
        fail "$d: output is not one eval line" "stdout: $(head -n 2 "$OUT" | tr '\n' '|')"
    else ok "$d  [$(cat "$OUT")]"; fi
}
eval_ok "eval of the checkpoint" "$CKPT" --data "$TMP/text.txt" --threads 1
line1=$(cat "$OUT")
got_tokens=${line1##* tokens }
check "eval tokens = floor((nbytes-1)/T)*T = $want_tokens (got $got_tokens)" \
    [ "$got_tokens" = "$want_tokens" ]
eval_ok "eval again" "$CKPT" --data "$TMP/text.txt" --threads 1
check "eval is deterministic (identical lines)" [ "$(cat "$OUT")" = "$line1" ]
eval_ok "eval with 2 threads" "$CKPT" --data "$TMP/text.txt" --threads 2
check "eval with 2 threads gives the identical line" [ "$(cat "$OUT")" = "$line1" ]
eval_ok "eval of the exported weights" "$EXP" --data "$TMP/text.txt" --threads 1
check "exported weights evaluate identically" [ "$(cat "$OUT")" = "$line1" ]
eval_ok "eval --gate dense"         "$CKPT" --data "$TMP/text.txt" --gate dense --threads 1
eval_ok "eval --gate topk --k 4"    "$CKPT" --data "$TMP/text.txt" --gate topk --k 4 --threads 1
eval_ok "eval on a .bin token file" "$CKPT" --data "$TMP/good.bin" --threads 1

expect_error "eval --gate bogus" "bogus" "unknown gate mode" \
    eval "$CKPT" --data "$TMP/text.txt" --gate bogus
expect_error "eval on data shorter than T+1" "$TMP/short.txt" "need at least|too short" \
    eval "$CKPT" --data "$TMP/short.txt"
expect_error "eval of a truncated checkpoint" "$TMP/half.safetensors" "$CORRUPT" \
    eval "$TMP/half.safetensors" --data "$TMP/text.txt"
expect_error "eval of a missing checkpoint" "$TMP/nope.safetensors" "no such file|cannot open|open" \
    eval "$TMP/nope.safetensors" --data "$TMP/text.txt"
expect_error "eval on tokens >= V of the checkpoint" "$TMP/bigtok.bin" "V=256|vocab" \
    eval "$CKPT" --data "$TMP/bigtok.bin"
expect_error "eval --k greater than T" "--k" "context|at most" \
    eval "$CKPT" --data "$TMP/text.txt" --k 40
expect_error "eval without --data" "--data" "missing" eval "$CKPT"

# ---------------------------------------------------------------------------
echo "# help and version"
# ---------------------------------------------------------------------------
"$BIN" --help >"$OUT" 2>"$ERR"
rc=$?
check "--help exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "--help says every command answers --help and takes --opt=value" \
    sh -c "tr '\n' ' ' <'$OUT' | grep -q -- '--opt=VALUE'"
# every command, experiment's kinds by name, in the top-level help
check "--help lists 'gatelab [run]'" grep -qF "gatelab [run]" "$OUT"
for w in ls show replay watch resume eval export "experiment absorption" "experiment moe" \
         distill tag note rm; do
    check "--help lists 'gatelab $w'" grep -qF "gatelab $w" "$OUT"
done
cp "$OUT" "$TMP/help.all"
# every option the README mentions is in the top-level help; mpirun's own
# (--allow-run-as-root, --oversubscribe, --mca) are Open MPI's
for o in $(grep -o -- '--[a-z][a-z-]*[a-z]' README.md | sort -u); do
    case "$o" in --allow-run-as-root | --oversubscribe | --mca) continue ;; esac
    check "--help mentions $o (README does)" grep -qF -- "$o" "$TMP/help.all"
done

# help_ok DESC FIRST_LINE ARGS...: exit 0, nothing on stderr, its own usage
# as the first line of stdout (FIRST_LINE, then a space or the end)
help_ok() {
    d=$1; want=$2; shift 2
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    first=$(head -n 1 "$OUT")
    if [ "$rc" -ne 0 ]; then fail "$d: exit $rc" "stderr: $(head -n 1 "$ERR")"
    elif [ -s "$ERR" ]; then fail "$d: stderr is not empty" "stderr: $(head -n 1 "$ERR")"
    else
        case "$first " in
            "$want "*) ok "$d  [$first]" ;;
            *) fail "$d: first line is not '$want ...'" "stdout: $first" ;;
        esac
    fi
}
for c in ls show replay watch resume eval export distill tag note rm; do
    help_ok "$c --help: its own usage"   "usage: gatelab $c" "$c" --help
    help_ok "$c -h: its own usage"       "usage: gatelab $c" "$c" -h
    # every option of the command's help is in the top-level help too
    for o in $(grep -o '^  --[a-z][a-z-]*' "$OUT"); do
        check "  ... its $o is in the top-level help" grep -qF -- "$o" "$TMP/help.all"
    done
done
help_ok "run --help: run's usage"               "usage: gatelab [run]" run --help
help_ok "--help after run options"              "usage: gatelab [run]" run --steps 5 --help
help_ok "-h of the default command"             "usage: gatelab [run]" --steps 5 -h
help_ok "experiment --help: both kinds"         "usage: gatelab experiment absorption" experiment --help
check "  ... and moe" grep -qF "gatelab experiment moe" "$OUT"
help_ok "experiment absorption --help"          "usage: gatelab experiment absorption" experiment absorption --help
check "  ... lists --distill-steps" grep -qF -- "--distill-steps N" "$OUT"
check "  ... and not moe's --experts" not grep -qF -- "--experts" "$OUT"
help_ok "experiment moe -h"                     "usage: gatelab experiment moe" experiment moe -h
check "  ... lists --experts" grep -qF -- "--experts E" "$OUT"
help_ok "ls --help after --db"                  "usage: gatelab ls" ls --db "$TMP/cli.db" --help
help_ok "gatelab help eval"                     "usage: gatelab eval" help eval
check "  ... eval's usage names --threads and --step" \
    sh -c "grep -qF -- '--threads N' '$OUT' && grep -qF -- '--step N' '$OUT'"
help_ok "distill --help: distill's, not experiment's" "usage: gatelab distill" distill --help
check "  ... names --distill-steps and --forward" \
    sh -c "grep -qF -- '--distill-steps N' '$OUT' && grep -qF -- '--forward' '$OUT'"
check "  ... and no experiment" not grep -q "experiment" "$OUT"

# ---------------------------------------------------------------------------
echo "# --opt=value"
# ---------------------------------------------------------------------------
cp "$TMP/text.txt" "$TMP/a=b.txt"
"$BIN" run --arms=soft --db="$TMP/eq.db" --ctx=32 --dim=32 --layers=1 --heads=2 --batch=4 \
    --steps=5 --eval-every=5 --eval-windows=4 --threads=1 --data="$TMP/a=b.txt" \
    --at=3:k:4@soft --tag=k=v=w --note=--help >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^summary: arm soft | finished | 5 steps' "$OUT" &&
   grep -qF "a=b.txt" "$OUT"; then
    ok "run with --opt=value throughout (--steps=5; --data=a=b.txt splits at the first '='; --note=--help is a note)"
else fail "run with --opt=value (exit $rc)" "$(head -n 1 "$ERR") $(grep summary "$OUT")"; fi
"$BIN" ls --db="$TMP/eq.db" --tag=k=v=w >"$OUT" 2>"$ERR"
rc=$?
check "ls --db=PATH --tag=k=v=w finds the run tagged k=v=w (exit $rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q ' soft ' '$OUT'"
"$BIN" ls --db="$TMP/eq.db" --tag=k=v >"$OUT" 2>"$ERR"
rc=$?
check "ls --tag=k=v does not (the value is v=w) (exit $rc)" \
    sh -c "[ $rc -eq 0 ] && ! grep -q ' soft ' '$OUT'"
"$BIN" show 1 --db="$TMP/eq.db" >"$OUT" 2>"$ERR"
rc=$?
check "show 1 --db=PATH (exit $rc)" sh -c "[ $rc -eq 0 ] && grep -q '^run 1 ' '$OUT'"
eval_ok "eval --data=FILE --threads=1" "$CKPT" --data="$TMP/text.txt" --threads=1
check "  ... gives the line of --data FILE --threads 1" [ "$(cat "$OUT")" = "$line1" ]
"$BIN" export "$CKPT" --out="$TMP/eq.safetensors" >"$OUT" 2>"$ERR"
rc=$?
check "export --out=FILE (exit $rc)" sh -c "[ $rc -eq 0 ] && [ -s '$TMP/eq.safetensors' ]"
# the value reaches the parser: its own check answers
expect_error "experiment absorption --steps=0"  "--steps"  "must be between" experiment absorption --steps=0
expect_error "experiment moe --seeds=abc"       "--seeds"  "not a whole number" experiment moe --seeds=abc
expect_error "distill --distill-steps=abc"      "--distill-steps" "not a whole number" distill 1 --distill-steps=abc
expect_error "distill --steps=abc (the alias)"  "--steps"  "not a whole number" distill 1 --steps=abc
expect_error "ls --db= (empty value)"           "--db"     "missing value" ls --db=
expect_error "run --steps= (empty value)"       "--steps"  "missing value" run --steps=
expect_error "eval --data= (empty value)"       "--data"   "missing value" eval "$CKPT" --data=
expect_error "export --out= (empty value)"      "--out"    "missing value" export "$CKPT" --out=
expect_error "experiment moe --experts="        "--experts" "missing value" experiment moe --experts=
expect_error "run --headless=1 (a flag)"        "--headless" "takes no value" run --headless=1
expect_error "run --bogus=1"                    "--bogus"  "unknown option" run --bogus=1
expect_error "experiment absorption --experts=3 (moe's)" "--experts" "unknown option" \
    experiment absorption --experts=3

# ---------------------------------------------------------------------------
echo "# experiment --from refuses the other kind"
# ---------------------------------------------------------------------------
# one stored experiment of each kind (rows as experiment_run writes them)
"$PY" - "$TMP/eq.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for i, kind in ((101, "absorption"), (102, "moe")):
    db.execute("insert into experiments (id, kind, command, config, status, started_at, "
               "version, host) values (?, ?, 'gatelab experiment', '{}', 'finished', "
               "'2026-01-01T00:00:00Z', 'test', 'test')", (i, kind))
db.commit()
EOF
expect_error "experiment moe --from an absorption experiment" "absorption" "not moe" \
    experiment moe --from 101 --db "$TMP/eq.db"
expect_error "experiment absorption --from a moe experiment" "moe" "not absorption" \
    experiment absorption --from=102 --db="$TMP/eq.db"
"$BIN" experiment absorption --from 101 --db "$TMP/eq.db" >"$OUT" 2>"$ERR"
rc=$?
check "experiment absorption --from its own kind reprints it (exit $rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q '^experiment 101 | absorption' '$OUT'"

"$BIN" --version >"$OUT" 2>"$ERR"
rc=$?
check "--version exits 0 and prints 'gatelab ' (got: $(head -n 1 "$OUT"))" \
    sh -c "[ $rc -eq 0 ] && grep -q '^gatelab ' '$OUT'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
