#!/bin/sh
# Regression tests of issue 10 (reliability): one section per reproduction of
# items 1, 2, 4, 5, 6, 8 and 9 of the issue.
#   1 checkpoint identity (db_id/session/run/arm/config_hash, per-database and
#     per-session checkpoint paths, resume refuses another run's file)
#   2 determinism across --threads and arms, multi-arm resume bit for bit
#   4 a checkpoint that cannot be written fails its run; bad --out refused
#   5 export never writes onto non-regular files or gatelab checkpoints
#   6 the checkpoint reader refuses non-regular files without hanging
#   8 read-only databases and read-only readers
#   9 shapes too large for memory, eval onto a full stdout, stale .tmp.PID
#     files, tampered metadata, a headless pause ended by send, export/eval usage errors
# (kill -9, full filesystems, lock holders, two sessions and SIGHUP/SIGPIPE/
# SIGSTOP are in tests/test_faults.sh.)
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_reliability.sh
# Prints one "  ok   ..." / "  FAIL ..." / "  skip ..." line per check, then
# "N passed, N failed" (", N skipped" when any check could not run here);
# exits non-zero if any check failed. POSIX sh only (runs under dash). Needs
# the sqlite3 shell and python3; mount(8) and setpriv(1) (as root) for the
# read-only and full-filesystem checks, which are skipped without them. Every
# test uses its own directory and database under a temporary directory.

# shellcheck disable=SC2016  # single-quoted eval strings are meant to expand later

BIN=${GATELAB_BIN:-build/release/gatelab}
ST_READER=tests/st_reader.py
PY=${PYTHON:-python3}
umask 022

passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
# check DESC CMD...: passes when CMD succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
totals() {
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_rel.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
MOUNTS=""   # mount points to undo, newest first
BGPIDS=""
cleanup() {
    for p in $BGPIDS; do kill -9 "$p" 2>/dev/null; done
    for m in $MOUNTS; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    chmod -R u+rwx "$TMP" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    totals
    exit 1
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    totals
    exit 1
fi
if ! command -v "$PY" >/dev/null 2>&1; then
    # the test data, tamper.py and the checkpoint reader are Python: without
    # it the checks cannot run, which is a failure here (make deps installs it)
    fail "$PY is needed by these tests (make deps installs it)"
    totals
    exit 1
fi
ABS_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# Address-space caps (ulimit -v) guard the checks below against a binary that
# would slurp /dev/zero or allocate an absurd model; a sanitizer build reserves
# terabytes of shadow memory at start and cannot run under one, so it gets none.
VLIMIT_EVAL=4194304
VLIMIT_RUN=16777216
if grep -qa -e __asan_init -e __tsan_init "$BIN"; then
    VLIMIT_EVAL=unlimited
    VLIMIT_RUN=unlimited
fi

# The micro model of the issue (a step takes a few milliseconds).
MICRO0="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --headless"
MICRO="$MICRO0 --threads 1"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
# sql DB SQL: one query through the sqlite3 shell; an absent DB gives nothing
# (sqlite3 would create it)
sql() { [ -f "$1" ] || return 1; sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
nlines() { awk 'END { print NR }' "$1"; }
# gl ARGS...: runs gatelab ARGS in the foreground; rc, stdout $OUT, stderr $ERR
gl() { "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?; }
# glt SECONDS ARGS...: gl under timeout (rc 124 when it had to be killed)
glt() { _t=$1; shift; timeout -k 3 "$_t" "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?; }
msg() { head -n 1 "$ERR" | cut -c 1-300; }
# run_ok DESC ARGS...: gatelab ARGS exits 0
run_ok() {
    d=$1; shift
    gl "$@"
    if [ "$rc" -eq 0 ]; then ok "$d: exit 0"
    else fail "$d: exit $rc" "stderr: $(head -n 2 "$ERR" | tr '\n' '|')"; fi
}
# ckpath DB RUN [STEP]: the run's newest (or STEP's) checkpoint path, from the database
ckpath() {
    if [ -n "${3:-}" ]; then sql "$1" "select path from checkpoints where run = $2 and step = $3 order by rowid desc limit 1"
    else sql "$1" "select path from checkpoints where run = $2 order by step desc limit 1"; fi
}
# series DB RUN: every train_loss / val_loss value of a run, exactly
series() {
    sql "$1" "select key, step, printf('%!.17g', value) from metrics where run = $2
              and key in ('train_loss', 'val_loss') order by key, step"
}
# same_series DESC DB1 RUN1 DB2 RUN2: both runs have identical, non-empty series
same_series() {
    series "$2" "$3" >"$TMP/ser1"
    series "$4" "$5" >"$TMP/ser2"
    n=$(nlines "$TMP/ser2")
    if [ -s "$TMP/ser2" ] && cmp -s "$TMP/ser1" "$TMP/ser2"; then ok "$1 ($n values)"
    else
        first=$(paste -d ' ' "$TMP/ser1" "$TMP/ser2" | awk '$1 != $2 { print $1 " vs " $2; exit }')
        fail "$1 ($(nlines "$TMP/ser1") vs $n values)" "first difference: ${first:-none}"
    fi
}
# meta FILE KEY: a checkpoint's metadata value (via st_reader's listing)
meta() { "$PY" "$ST_READER" "$1" 2>/dev/null | sed -n "s/^  meta $2 = '\(.*\)'\$/\1/p"; }
# matches STRING ERE
matches() { printf '%s\n' "$1" | grep -Eq -- "$2"; }
# dead_pid: a pid with no process
dead_pid() {
    _p=999999
    while kill -0 "$_p" 2>/dev/null; do _p=$((_p + 1)); done
    echo "$_p"
}

# Can this machine mount (root in a namespace that allows it)?
MOUNT_OK=0
mkdir -p "$TMP/probe"
if [ -z "${GATELAB_TEST_NOMOUNT:-}" ] && mount -t tmpfs -o size=64k tmpfs "$TMP/probe" 2>/dev/null; then
    umount "$TMP/probe" 2>/dev/null && MOUNT_OK=1
fi
# mount_ro SRC DIR: DIR becomes a read-only view of SRC; 1 when impossible
mount_ro() {
    [ "$MOUNT_OK" = 1 ] || return 1
    mkdir -p "$2"
    mount --bind "$1" "$2" 2>/dev/null || return 1
    MOUNTS="$2 $MOUNTS"
    if ! mount -o remount,bind,ro "$2" 2>/dev/null || (: >"$2/.probe") 2>/dev/null; then
        rm -f "$2/.probe"; umount "$2" 2>/dev/null
        return 1
    fi
    return 0
}
# mount_tiny DIR: a 64 KiB tmpfs at DIR; 1 when impossible
mount_tiny() {
    [ "$MOUNT_OK" = 1 ] || return 1
    mkdir -p "$1"
    mount -t tmpfs -o size=64k tmpfs "$1" 2>/dev/null || return 1
    MOUNTS="$1 $MOUNTS"
}
# Can we run gatelab as an unprivileged user (root with setpriv)?
AS=""
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && chmod 755 "$TMP" \
    && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN" 2>/dev/null \
    && setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$ST_READER" 2>/dev/null; then
    AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
fi

# ~20 KB of English-like text, deterministic
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
TEXT=$TMP/text.txt

# tamper.py FILE KEY=VALUE...: rewrites a safetensors file's __metadata__ entries,
# the JSON header re-padded with spaces to 8 bytes, the data section untouched
cat >"$TMP/tamper.py" <<'EOF'
import json, struct, sys
path = sys.argv[1]
blob = open(path, "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + n])
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    header.setdefault("__metadata__", {})[k] = v
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - (8 + len(text)) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + blob[8 + n:])
EOF

# A base run whose final checkpoint (T=32, step 20) the eval/export checks use.
mkdir -p "$TMP/base"
BASE=$TMP/base/base.db
# shellcheck disable=SC2086  # $MICRO is a list of words on purpose
gl run $MICRO --arms soft --steps 20 --eval-every 10 --db "$BASE"
BASECK=$(ckpath "$BASE" 1)
if [ "$rc" -eq 0 ] && [ -s "$BASECK" ]; then ok "a base run with a checkpoint: exit 0"
else fail "a base run with a checkpoint (exit $rc)" "stderr: $(msg)"; fi

# ---------------------------------------------------------------------------
echo "# 1. checkpoint identity"
# ---------------------------------------------------------------------------
D=$TMP/i1
mkdir -p "$D/c" "$D/u"
M="--ctx 32 --dim 32 --layers 2 --heads 2 --batch 4 --threads 1 --headless --arms soft --steps 100 --eval-every 50 --at 50:stop"
# the issue's reproduction, verbatim (relative paths, one directory)
# shellcheck disable=SC2086
(cd "$D" && "$ABS_BIN" run $M --db c/a.db && "$ABS_BIN" run $M --seed 7 --db c/b.db \
    && "$ABS_BIN" resume 1 --db c/a.db) >"$OUT" 2>"$ERR"
rc=$?
check "run a, run b --seed 7, resume a: all exit 0 (got $rc)" [ "$rc" -eq 0 ]
# shellcheck disable=SC2086
(cd "$D/u" && "$ABS_BIN" run ${M% --at 50:stop} --db u.db) >"$OUT" 2>"$ERR"
va=$(sql "$D/c/a.db" "select printf('%!.17g', value) from metrics where run = 1 and key = 'val_loss' and step = 100")
vu=$(sql "$D/u/u.db" "select printf('%!.17g', value) from metrics where run = 1 and key = 'val_loss' and step = 100")
check "the resumed run's final val_loss equals the uninterrupted run's (${va:-none} vs ${vu:-none})" \
    eval '[ -n "$va" ] && [ "$va" = "$vu" ]'
pa=$(ckpath "$D/c/a.db" 1 50)
pb=$(ckpath "$D/c/b.db" 1 50)
check "two databases in one directory: different checkpoint paths ($pa vs $pb)" \
    eval '[ -n "$pa" ] && [ -n "$pb" ] && [ "$pa" != "$pb" ]'
ida=$(sql "$D/c/a.db" "select value from db_info where key = 'id'")
idb=$(sql "$D/c/b.db" "select value from db_info where key = 'id'")
check "the database keeps a 32-hex id (db_info id '${ida:-none}')" matches "$ida" '^[0-9a-f]{32}$'
check "two databases have different ids (${ida:-none} vs ${idb:-none})" eval '[ -n "$ida" ] && [ "$ida" != "$idb" ]'
ck=$(ckpath "$D/c/a.db" 1 100)
"$PY" "$ST_READER" "$ck" --meta db_id="$ida" --meta session=1 --meta run=1 --meta arm=0 >/dev/null 2>"$TMP/st.err"
rc=$?
if [ "$rc" -eq 0 ] && [ -n "$ida" ]; then ok "checkpoint metadata: db_id = the database's id, session 1, run 1, arm 0"
else fail "checkpoint metadata: db_id = the database's id, session 1, run 1, arm 0" "$(head -n 2 "$TMP/st.err" | tr '\n' '|')"; fi
ch=$(meta "$ck" config_hash)
check "checkpoint metadata: config_hash is 16 hex digits (got '${ch:-none}')" matches "$ch" '^[0-9a-f]{16}$'
ckb=$(ckpath "$D/c/b.db" 1 50)
ib=$(meta "$ckb" db_id)
check "b's checkpoint carries b's db_id (got '${ib:-none}')" eval '[ -n "$ib" ] && [ "$ib" = "$idb" ]'

# two sessions of one database with the same --out
mkdir -p "$D/o"
# shellcheck disable=SC2086
{
gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/out" --db "$D/o/o.db"; r1=$rc
gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/out" --db "$D/o/o.db"; r2=$rc
}
p1=$(ckpath "$D/o/o.db" 1)
p2=$(ckpath "$D/o/o.db" 2)
check "two sessions with the same --out: both exit 0 ($r1, $r2)" [ "$r1$r2" = 00 ]
check "two sessions with the same --out: different checkpoint paths ($p1 vs $p2)" \
    eval '[ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" != "$p2" ] && [ -s "$p1" ] && [ -s "$p2" ]'
check "  ... under --out (${p1:-none})" eval 'case "$p1" in "$D/out/"*) true ;; *) false ;; esac'
# two databases with the same file name in different directories, one --out
mkdir -p "$D/g1" "$D/g2"
# shellcheck disable=SC2086
{
gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/out2" --db "$D/g1/g.db"
gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/out2" --db "$D/g2/g.db"
}
p1=$(ckpath "$D/g1/g.db" 1)
p2=$(ckpath "$D/g2/g.db" 1)
check "two databases named g.db with the same --out: different checkpoint paths ($p1 vs $p2)" \
    eval '[ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" != "$p2" ]'

# another database's checkpoint copied over a run's recorded checkpoint
mkdir -p "$D/p" "$D/q"
# shellcheck disable=SC2086
{
gl run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:stop --db "$D/p/p.db"
gl run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:stop --seed 7 --db "$D/q/q.db"
}
pp=$(ckpath "$D/p/p.db" 1)
pq=$(ckpath "$D/q/q.db" 1)
if [ -s "$pp" ] && [ -s "$pq" ] && [ "$pp" != "$pq" ]; then
    cp "$pq" "$pp"
    gl resume 1 --db "$D/p/p.db"
    if [ "$rc" -eq 1 ] && grep -q "belongs to" "$ERR"; then ok "resume of another database's checkpoint: exit 1, 'belongs to'  [$(msg)]"
    else fail "resume of another database's checkpoint: exit 1 'belongs to' (got exit $rc)" "stderr: $(msg)"; fi
    st=$(sql "$D/p/p.db" "select status || ' ' || final_step from runs where id = 1")
    check "  ... and the run is left stopped at 10 (got '$st')" [ "$st" = "stopped 10" ]
else
    fail "resume of another database's checkpoint: no checkpoints to swap ($pp, $pq)"
fi
# the other arm's checkpoint of the same session (identical weights: only the identity differs)
mkdir -p "$D/m"
# shellcheck disable=SC2086
gl run $MICRO --arms soft,soft --steps 20 --eval-every 10 --at 10:stop --db "$D/m/m.db"
m1=$(ckpath "$D/m/m.db" 1)
m2=$(ckpath "$D/m/m.db" 2)
if [ -s "$m1" ] && [ -s "$m2" ] && [ "$m1" != "$m2" ]; then
    cp "$m2" "$m1"
    gl resume 1 --db "$D/m/m.db"
    if [ "$rc" -eq 1 ] && grep -q "belongs to" "$ERR"; then ok "resume of the other arm's checkpoint: exit 1, 'belongs to'  [$(msg)]"
    else fail "resume of the other arm's checkpoint: exit 1 'belongs to' (got exit $rc)" "stderr: $(msg)"; fi
else
    fail "resume of the other arm's checkpoint: no checkpoints to swap ($m1, $m2)"
fi

# ---------------------------------------------------------------------------
echo "# 2. determinism: threads, arms, multi-arm resume"
# ---------------------------------------------------------------------------
D=$TMP/i2
mkdir -p "$D/s" "$D/u" "$D/t1" "$D/t2" "$D/one"
# shellcheck disable=SC2086
{
run_ok "soft,random --threads 2 --at 60:stop" run $MICRO0 --threads 2 --arms soft,random --steps 120 \
    --eval-every 60 --at 60:stop --db "$D/s/s.db"
run_ok "resume run 1 (soft)" resume 1 --db "$D/s/s.db"
run_ok "resume run 2 (random)" resume 2 --db "$D/s/s.db"
run_ok "the same session uninterrupted" run $MICRO0 --threads 2 --arms soft,random --steps 120 \
    --eval-every 60 --db "$D/u/u.db"
}
for a in 0 1; do
    rs=$(sql "$D/s/s.db" "select id from runs where session = 1 and arm = $a")
    ru=$(sql "$D/u/u.db" "select id from runs where session = 1 and arm = $a")
    st=$(sql "$D/s/s.db" "select status || ' ' || final_step from runs where id = ${rs:-0}")
    check "arm $a: resumed run finished at 120 (got '$st')" [ "$st" = "finished 120" ]
    same_series "arm $a: resumed 2-arm --threads 2 train/val loss = uninterrupted, bit for bit" \
        "$D/s/s.db" "${rs:-0}" "$D/u/u.db" "${ru:-0}"
done
# shellcheck disable=SC2086
{
gl run $MICRO0 --threads 1 --arms soft --steps 60 --eval-every 30 --db "$D/t1/t.db"
gl run $MICRO0 --threads 2 --arms soft --steps 60 --eval-every 30 --db "$D/t2/t.db"
}
same_series "one arm: --threads 1 and --threads 2 give identical losses" "$D/t1/t.db" 1 "$D/t2/t.db" 1
# the number of arms (one thread per arm either way): soft alone equals the
# soft arm of soft,random
# shellcheck disable=SC2086
gl run $MICRO0 --threads 1 --arms soft --steps 120 --eval-every 60 --db "$D/one/one.db"
same_series "soft alone (--threads 1) = the soft arm of soft,random (--threads 2)" "$D/one/one.db" 1 "$D/u/u.db" 1

# ---------------------------------------------------------------------------
echo "# 4. checkpoints that cannot be written; bad --out"
# ---------------------------------------------------------------------------
D=$TMP/i4
mkdir -p "$D/f"
echo keep >"$D/file"
# shellcheck disable=SC2086
gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/file" --db "$D/f/f.db"
if [ "$rc" -eq 2 ] && grep -qF -- "--out" "$ERR"; then ok "--out a regular file: exit 2 naming --out  [$(msg)]"
else fail "--out a regular file: exit 2 naming --out (got exit $rc)" "stderr: $(msg)"; fi
check "  ... before the database is created" [ ! -e "$D/f/f.db" ]
check "  ... and the file is unchanged" [ "$(cat "$D/file")" = keep ]

mkdir -p "$D/rosrc" "$D/g"
if mount_ro "$D/rosrc" "$D/ro"; then
    # shellcheck disable=SC2086
    gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/ro" --db "$D/g/g.db"
    if [ "$rc" -eq 2 ] && grep -qF -- "--out" "$ERR"; then ok "--out a read-only directory: exit 2 naming --out  [$(msg)]"
    else fail "--out a read-only directory: exit 2 naming --out (got exit $rc)" "stderr: $(msg)"; fi
    check "  ... before the database is created" [ ! -e "$D/g/g.db" ]
elif [ -n "$AS" ]; then
    chmod 555 "$D/rosrc"; chmod 777 "$D/g"
    # shellcheck disable=SC2086
    $AS "$BIN" run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/rosrc" --db "$D/g/g.db" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 2 ] && grep -qF -- "--out" "$ERR"; then ok "--out an unwritable directory (uid 65534): exit 2 naming --out  [$(msg)]"
    else fail "--out an unwritable directory (uid 65534): exit 2 naming --out (got exit $rc)" "stderr: $(msg)"; fi
    check "  ... before the database is created" [ ! -e "$D/g/g.db" ]
else
    skip "--out an unwritable directory (no mount, no setpriv: root writes anywhere)"
fi

# a data path that is not UTF-8: works and checkpoints, or is refused up front
mkdir -p "$D/u8"
BADNAME=$D/$(printf 'd\377x').txt
cp "$TEXT" "$BADNAME"
# shellcheck disable=SC2086
gl run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:stop --data "$BADNAME" --db "$D/u8/u.db"
if [ "$rc" -eq 2 ]; then
    check "non-UTF-8 --data refused (exit 2) before the database is written  [$(msg)]" [ ! -e "$D/u8/u.db" ]
elif [ "$rc" -eq 0 ]; then
    c10=$(ckpath "$D/u8/u.db" 1 10)
    ne=$(sql "$D/u8/u.db" "select count(*) from events where run = 1 and kind = 'error'")
    check "non-UTF-8 --data: the run writes its checkpoint at 10 (${c10:-none}; $ne error events)" \
        eval '[ -n "$c10" ] && [ -s "$c10" ] && [ "$ne" = 0 ]'
    gl resume 1 --db "$D/u8/u.db"
    st=$(sql "$D/u8/u.db" "select status || ' ' || final_step from runs where id = 1")
    if [ "$rc" -eq 0 ] && [ "$st" = "finished 20" ]; then ok "non-UTF-8 --data: the run resumes and finishes at 20"
    else fail "non-UTF-8 --data: the run resumes and finishes at 20 (exit $rc, '$st')" "stderr: $(msg)"; fi
else
    fail "non-UTF-8 --data: exit $rc (want 0 with a checkpoint, or 2 before writing)" "stderr: $(msg)"
fi

# a checkpoint that fails to write: --out on a 64 KiB filesystem (a checkpoint is ~95 KB)
mkdir -p "$D/w"
if mount_tiny "$D/tiny"; then
    # shellcheck disable=SC2086
    gl run $MICRO --arms soft --steps 10 --eval-every 10 --out "$D/tiny" --db "$D/w/w.db"
    how="--out on a full 64 KiB tmpfs"
elif command -v ulimit >/dev/null 2>&1; then
    # no mount here: a file-size limit of 2 MiB against a ~5 MB checkpoint
    # shellcheck disable=SC2086
    { (ulimit -f 4096; exec "$BIN" run --ctx 32 --dim 128 --layers 2 --heads 2 --batch 4 --eval-windows 4 \
        --threads 1 --headless --arms soft --steps 10 --eval-every 10 --out "$D/tiny" --db "$D/w/w.db") \
        >"$OUT" 2>"$ERR"; rc=$?; } 2>/dev/null
    how="ulimit -f below the checkpoint's size"
else
    skip "a checkpoint that fails to write (no mount, no ulimit)"
fi
if [ -n "${how:-}" ]; then
    if [ "$rc" -eq 1 ]; then ok "checkpoint write fails ($how): exit 1  [$(msg)]"
    else fail "checkpoint write fails ($how): exit 1 (got $rc)" "stderr: $(msg)"; fi
    st=$(sql "$D/w/w.db" "select status from runs where id = 1")
    check "  ... the run is stored 'failed' (got '${st:-none}')" [ "$st" = failed ]
    ev=$(sql "$D/w/w.db" "select detail from events where run = 1 and kind = 'error' order by id limit 1")
    check "  ... an error event starting 'checkpoint' (got '${ev:-none}')" matches "$ev" '^checkpoint'
    nt=$(find "$D/tiny" -name '*.tmp.*' 2>/dev/null | wc -l | tr -d ' ')
    check "  ... and no .tmp.PID file is left ($nt)" [ "$nt" = 0 ]
fi

# ---------------------------------------------------------------------------
echo "# 5. export onto non-regular files and checkpoints"
# ---------------------------------------------------------------------------
D=$TMP/i5
mkdir -p "$D/x" "$D/t"
# shellcheck disable=SC2086
gl run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:stop --db "$D/x/x.db"
XCK=$(ckpath "$D/x/x.db" 1)
T=$D/t
mkfifo "$T/fifo"
mkdir "$T/dir"
CHR=0
if mknod "$T/null" c 1 3 2>/dev/null; then CHR=1; ln -s null "$T/link"; fi
# export_refused DESC TARGET TEST...: export exits 1 "not a regular file" and TEST still holds
export_refused() {
    d=$1; tgt=$2; shift 2
    glt 10 export 1 --db "$D/x/x.db" --out "$tgt"
    if [ "$rc" -eq 124 ]; then fail "export onto $d: hung (killed after 10 s)"
    elif [ "$rc" -eq 1 ] && grep -q "not a regular file" "$ERR"; then ok "export onto $d: exit 1 'not a regular file'  [$(msg)]"
    else fail "export onto $d: exit 1 'not a regular file' (got exit $rc)" "stderr: $(msg) stdout: $(head -n 1 "$OUT")"; fi
    check "  ... and $d is unchanged" "$@"
}
export_refused "a FIFO" "$T/fifo" test -p "$T/fifo"
export_refused "a directory" "$T/dir" sh -c "[ -d '$T/dir' ] && [ -z \"\$(ls -A '$T/dir')\" ]"
if [ "$CHR" = 1 ]; then
    export_refused "a character device (copy of /dev/null)" "$T/null" \
        sh -c "[ -c '$T/null' ] && [ \"\$(stat -c %t:%T '$T/null')\" = 1:3 ]"
    export_refused "a symlink to a character device" "$T/link" \
        sh -c "[ -L '$T/link' ] && [ \"\$(readlink '$T/link')\" = null ] && [ -c '$T/null' ]"
else
    skip "export onto a character device (mknod not permitted)"
    skip "export onto a symlink to a character device (mknod not permitted)"
fi
if [ -s "$XCK" ]; then
    cp "$XCK" "$TMP/own.copy"
    gl export 1 --db "$D/x/x.db" --out "$XCK"
    if [ "$rc" -eq 1 ] && grep -q "is a gatelab checkpoint" "$ERR"; then ok "export onto the run's own checkpoint: exit 1 'is a gatelab checkpoint'  [$(msg)]"
    else fail "export onto the run's own checkpoint: exit 1 'is a gatelab checkpoint' (got exit $rc)" "stderr: $(msg)"; fi
    check "  ... and the checkpoint is unchanged" cmp -s "$XCK" "$TMP/own.copy"
    cp "$XCK" "$T/other.safetensors"
    gl export 1 --db "$D/x/x.db" --out "$T/other.safetensors"
    if [ "$rc" -eq 1 ] && grep -q "is a gatelab checkpoint" "$ERR"; then ok "export onto a copy of a checkpoint: exit 1 'is a gatelab checkpoint'"
    else fail "export onto a copy of a checkpoint: exit 1 'is a gatelab checkpoint' (got exit $rc)" "stderr: $(msg)"; fi
    check "  ... and the copy is unchanged" cmp -s "$T/other.safetensors" "$TMP/own.copy"
    gl resume 1 --db "$D/x/x.db"
    st=$(sql "$D/x/x.db" "select status || ' ' || final_step from runs where id = 1")
    if [ "$rc" -eq 0 ] && [ "$st" = "finished 20" ]; then ok "resume still works after the refused export"
    else fail "resume still works after the refused export (exit $rc, '$st')" "stderr: $(msg)"; fi
else
    fail "export onto the run's own checkpoint: the run wrote no checkpoint"
fi
echo "not a checkpoint" >"$T/plain.safetensors"
gl export 1 --db "$D/x/x.db" --out "$T/plain.safetensors"
check "export still replaces an existing plain file (exit $rc)" \
    eval '[ "$rc" -eq 0 ] && "$PY" "$ST_READER" "$T/plain.safetensors" >/dev/null 2>&1'

# ---------------------------------------------------------------------------
echo "# 6. the checkpoint reader and non-regular files"
# ---------------------------------------------------------------------------
# eval_refused DESC FILE: eval exits 1 naming FILE and "not a regular file", within 10 s
eval_refused() {
    t0=$(date +%s)
    # a memory cap in case the reader slurps /dev/zero (dash and bash have ulimit -v)
    # shellcheck disable=SC3045
    (ulimit -v $VLIMIT_EVAL 2>/dev/null; exec timeout -k 3 10 "$BIN" eval "$2" --data "$TEXT") >"$OUT" 2>"$ERR"
    rc=$?
    t1=$(date +%s)
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "eval $1: hung (killed after $((t1 - t0)) s)"
    elif [ "$rc" -eq 1 ] && grep -qF -- "$2" "$ERR" && grep -q "not a regular file" "$ERR"; then
        ok "eval $1: exit 1 naming it, 'not a regular file', $((t1 - t0)) s  [$(msg)]"
    else fail "eval $1: exit 1 naming it and 'not a regular file' (got exit $rc)" "stderr: $(msg)"; fi
}
eval_refused "/dev/zero" /dev/zero
mkfifo "$TMP/ck.fifo"
eval_refused "a FIFO" "$TMP/ck.fifo"

# ---------------------------------------------------------------------------
echo "# 8. read-only databases and read-only readers"
# ---------------------------------------------------------------------------
D=$TMP/i8
mkdir -p "$D/base" "$D/src" "$D/exp"
# shellcheck disable=SC2086
gl run $MICRO --arms soft --steps 10 --eval-every 10 --db "$D/base/r.db"
sqlite3 "$D/base/r.db" 'pragma wal_checkpoint(truncate)' >/dev/null 2>&1
cp "$D/base/r.db" "$D/src/r.db"
rm -f "$D/src/r.db-wal" "$D/src/r.db-shm"
RO=""
RUNAS=""
if mount_ro "$D/src" "$D/ro"; then
    RO=$D/ro; how="read-only bind mount"
elif [ -n "$AS" ]; then
    chmod 444 "$D/src/r.db"; chmod 555 "$D/src"; chmod 777 "$D/exp"
    RO=$D/src; RUNAS=$AS; how="chmod 555, as uid 65534"
fi
if [ -n "$RO" ]; then
    # shellcheck disable=SC2086
    $RUNAS "$BIN" ls --db "$RO/r.db" >"$OUT" 2>"$ERR"; rc=$?
    if [ "$rc" -eq 0 ] && awk '$1 == 1' "$OUT" | grep -q finished; then ok "ls on a database in a read-only directory ($how): exit 0, lists run 1"
    else fail "ls on a database in a read-only directory ($how): exit 0 (got $rc)" "stderr: $(msg)"; fi
    # shellcheck disable=SC2086
    $RUNAS "$BIN" show 1 --db "$RO/r.db" >"$OUT" 2>"$ERR"; rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^checkpoints' "$OUT"; then ok "show 1 on it: exit 0"
    else fail "show 1 on it: exit 0 (got $rc)" "stderr: $(msg)"; fi
    # shellcheck disable=SC2086
    $RUNAS "$BIN" export 1 --db "$RO/r.db" --out "$D/exp/e.safetensors" >"$OUT" 2>"$ERR"; rc=$?
    if [ "$rc" -eq 0 ] && "$PY" "$ST_READER" "$D/exp/e.safetensors" >/dev/null 2>&1; then ok "export 1 --out elsewhere from it: exit 0, a valid file"
    else fail "export 1 --out elsewhere from it: exit 0 (got $rc)" "stderr: $(msg)"; fi
    check "  ... and no -wal/-shm appeared next to it" eval '[ ! -e "$D/src/r.db-wal" ] && [ ! -e "$D/src/r.db-shm" ]'
else
    skip "ls/show/export on a database in a read-only directory (no mount, no setpriv)"
fi
# a reader that may not write the file, in a directory it may write
if [ -n "$AS" ]; then
    mkdir -p "$D/rw"
    chmod 777 "$D/rw"
    cp "$D/base/r.db" "$D/rw/r.db"
    chmod 644 "$D/rw/r.db"
    rm -f "$D/rw/r.db-wal" "$D/rw/r.db-shm"
    cp "$D/rw/r.db" "$TMP/rw.copy"
    $AS "$BIN" ls --db "$D/rw/r.db" >"$OUT" 2>"$ERR"; r1=$?
    $AS "$BIN" show 1 --db "$D/rw/r.db" >/dev/null 2>>"$ERR"; r2=$?
    check "ls and show 1 as uid 65534 on a root-owned 0644 database: exit 0 ($r1, $r2)" [ "$r1$r2" = 00 ]
    left=$(find "$D/rw" -user 65534 | tr '\n' ' ')
    check "  ... and they leave no -wal/-shm owned by uid 65534 (found: ${left:-none})" [ -z "$left" ]
    check "  ... and the database file is unchanged" cmp -s "$D/rw/r.db" "$TMP/rw.copy"
else
    skip "a read-only reader leaves no -wal/-shm (needs root and setpriv)"
fi

# ---------------------------------------------------------------------------
echo "# 9. shapes, stdout, stale temporaries, tampered metadata, usage"
# ---------------------------------------------------------------------------
D=$TMP/i9
mkdir -p "$D/big"
for shape in "--dim 16384 --layers 64" "--dim 8192 --layers 64"; do
    # (the braces keep the shell's "Aborted" note of a crash off the output)
    # shellcheck disable=SC2086,SC3045
    { (ulimit -v $VLIMIT_RUN 2>/dev/null; exec timeout -k 3 30 "$BIN" run --headless --arms soft --steps 5 --ctx 32 --heads 2 \
        --batch 4 --threads 1 $shape --db "$D/big/big.db") >"$OUT" 2>"$ERR"; rc=$?; } 2>/dev/null
    if [ "$rc" -eq 2 ] && [ "$(nlines "$ERR")" -eq 1 ] && grep -Eq -- '--dim|--layers' "$ERR"; then
        ok "run $shape: exit 2, one line naming the shape flags  [$(msg)]"
    else fail "run $shape: exit 2, one line naming --dim/--layers (got exit $rc)" "stderr: $(head -n 2 "$ERR" | tr '\n' '|')"; fi
    check "  ... and no database file is created" [ ! -e "$D/big/big.db" ]
    rm -f "$D/big/big.db" "$D/big/big.db-wal" "$D/big/big.db-shm"
done

if [ -w /dev/full ] && [ -c /dev/full ]; then
    "$BIN" eval "$BASECK" --data "$TEXT" --threads 1 >/dev/full 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 1 ] && grep -qi stdout "$ERR"; then ok "eval > /dev/full: exit 1 naming stdout  [$(msg)]"
    else fail "eval > /dev/full: exit 1 naming stdout (got exit $rc)" "stderr: $(msg)"; fi
else
    skip "eval > /dev/full (no /dev/full)"
fi

# stale .tmp.PID files in a run's checkpoint directory
mkdir -p "$D/st"
# shellcheck disable=SC2086
gl run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:stop --db "$D/st/st.db"
sck=$(ckpath "$D/st/st.db" 1)
if [ -s "$sck" ]; then
    sdir=$(dirname "$sck")
    dp=$(dead_pid)
    echo junk >"$sdir/step000010.safetensors.tmp.$dp"
    # a live gatelab (paused in its own database) owns another temporary file
    mkdir -p "$D/live"
    # shellcheck disable=SC2086
    "$BIN" run $MICRO --arms soft --steps 20 --at 1:pause:60 --db "$D/live/l.db" >/dev/null 2>&1 &
    lpid=$!
    BGPIDS="$BGPIDS $lpid"
    echo junk >"$sdir/step000015.safetensors.tmp.$lpid"
    gl resume 1 --db "$D/st/st.db"
    # shellcheck disable=SC2034  # used in the eval below
    c20=$(ckpath "$D/st/st.db" 1 20)
    check "resume writes its checkpoint at 20 (exit $rc)" eval '[ "$rc" -eq 0 ] && [ -n "$c20" ] && [ -s "$c20" ]'
    check "  ... and removes the stale step000010.safetensors.tmp.$dp of a dead pid" [ ! -e "$sdir/step000010.safetensors.tmp.$dp" ]
    check "  ... and keeps the .tmp.$lpid of a live gatelab" [ -e "$sdir/step000015.safetensors.tmp.$lpid" ]
    kill -9 "$lpid" 2>/dev/null
    { wait "$lpid"; } 2>/dev/null
else
    fail "stale .tmp files: the run wrote no checkpoint"
fi

# tampered metadata: resume and eval refuse it, naming the key
# tampered DESC KEY=VALUE WORD: WORD is the key the refusal must name
tampered() {
    td=$1; kv=$2; word=$3
    dir=$D/tm_$word
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    gl run $MICRO --arms soft --steps 100 --eval-every 50 --at 50:stop --db "$dir/t.db"
    tck=$(ckpath "$dir/t.db" 1)
    if [ ! -s "$tck" ]; then fail "$td: the run wrote no checkpoint"; return; fi
    "$PY" "$TMP/tamper.py" "$tck" "$kv"
    if ! "$PY" "$ST_READER" "$tck" --meta "$kv" >/dev/null 2>&1; then fail "$td: tamper.py broke the file"; return; fi
    glt 30 resume 1 --db "$dir/t.db"
    if [ "$rc" -eq 1 ] && grep -qw -- "$word" "$ERR"; then ok "resume with $td: exit 1 naming $word  [$(msg)]"
    else fail "resume with $td: exit 1 naming $word (got exit $rc)" "stderr: $(msg) stdout: $(tail -n 1 "$OUT")"; fi
    st=$(sql "$dir/t.db" "select status || ' ' || final_step from runs where id = 1")
    check "  ... and the run is left stopped at 50 (got '$st')" [ "$st" = "stopped 50" ]
    glt 30 eval "$tck" --data "$TEXT" --threads 1
    if [ "$rc" -eq 1 ] && grep -qw -- "$word" "$ERR"; then ok "eval with $td: exit 1 naming $word"
    else fail "eval with $td: exit 1 naming $word (got exit $rc)" "stderr: $(msg) stdout: $(head -n 1 "$OUT")"; fi
}
tampered "metadata step 5000 > total_steps 100" step=5000 step
tampered "metadata data_position beyond the data" data_position=1000000000 data_position

# headless --at N:pause without seconds: paused until a command through the
# database resumes it (gatelab send), as the space bar would on the screen
mkdir -p "$D/pause"
# shellcheck disable=SC2086
timeout -k 3 120 "$BIN" run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:pause \
    --db "$D/pause/p.db" </dev/null >"$D/pause/out" 2>"$D/pause/err" &
PPID_RUN=$!
_n=0
while [ "$_n" -lt 600 ] && [ "$(sqlite3 "$D/pause/p.db" "select status from runs" 2>/dev/null)" != paused ]; do
    sleep 0.1; _n=$((_n + 1))
done
check "headless --at 10:pause: the run is paused at step 10 in the database" \
    [ "$(sqlite3 "$D/pause/p.db" "select status || ' ' || (select max(step) from metrics where run = 1 and key = 'train_loss') from runs" 2>/dev/null)" = "paused 10" ]
check "  ... and its line says how to resume it" \
    grep -q '^event step 10 | soft | pause .* | until gatelab send 1 resume@0$' "$D/pause/out"
"$BIN" send 1 resume@0 --db "$D/pause/p.db" >"$OUT" 2>"$ERR"
check "gatelab send 1 resume@0: applied (exit $?: $(cat "$OUT" "$ERR" | head -n 1))" grep -q '^applied at step 10' "$OUT"
wait "$PPID_RUN"
rc=$?
check "  ... and the run finishes: exit 0 (got $rc), finished at 20" \
    sh -c "[ $rc -eq 0 ] && [ \"\$(sqlite3 '$D/pause/p.db' 'select status || \" \" || final_step from runs')\" = 'finished 20' ]"
# shellcheck disable=SC2086
glt 20 run $MICRO --arms soft --steps 20 --eval-every 10 --at 10:pause:1 --db "$D/pause/p2.db" </dev/null
check "headless --at 10:pause:1 (with seconds) still runs: exit 0 (got $rc)" [ "$rc" -eq 0 ]

# a damaged schema whose text SQLite quotes in its message (found by fuzz_db):
# the error is still one line
cp tests/fuzz/findings/store-multiline-schema.db "$D/multiline.db"
gl ls --db "$D/multiline.db"
if [ "$rc" -eq 1 ] && [ "$(nlines "$ERR")" -eq 1 ] && ! LC_ALL=C grep -q "$(printf '[\001-\010\013-\037]')" "$ERR"; then
    ok "ls on a database whose schema is damaged: exit 1, one line  [$(msg)]"
else fail "ls on a database whose schema is damaged: exit 1, one line (got exit $rc, $(nlines "$ERR") lines)" "stderr: $(head -n 3 "$ERR" | tr '\n' '|')"; fi

gl export 999 --db "$BASE" --out "$D/x999.safetensors"
if [ "$rc" -ne 0 ] && grep -q "no run 999" "$ERR"; then ok "export 999: 'no run 999' (exit $rc)  [$(msg)]"
else fail "export 999: 'no run 999' (got exit $rc)" "stderr: $(msg)"; fi
check "  ... and no --out file appears" [ ! -e "$D/x999.safetensors" ]

gl eval "$BASECK" --k 33 --data "$TEXT" --threads 1
if [ "$rc" -eq 2 ] && grep -qF -- "--k" "$ERR"; then ok "eval --k 33 on a T=32 checkpoint: exit 2 naming --k  [$(msg)]"
else fail "eval --k 33 on a T=32 checkpoint: exit 2 naming --k (got exit $rc)" "stderr: $(msg)"; fi

totals
[ "$failed" -eq 0 ]
