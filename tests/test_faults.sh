#!/bin/sh
# Fault injection (issue 10): kill -9 at random moments of a multi-arm
# --threads 2 run followed by resume (bit-identical to an uninterrupted run),
# a full filesystem under the database and under the checkpoints, a write
# lock held by another process for 30 s in the middle of a run, two sessions
# writing one database at once, and SIGHUP (a detach) / SIGPIPE / SIGSTOP+SIGCONT.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_faults.sh
# GATELAB_QUICK=1 (ASan/TSan builds): 4 kill trials, shorter runs, a 10 s lock.
# GATELAB_FAULTS_TRIALS=N changes the number of kill trials (20).
# GATELAB_FAULTS_SEED=S reproduces the kill moments of an earlier run (its
# output prints S); GATELAB_FAULTS_NO_MOUNT=1 forces the RLIMIT_FSIZE method.
# Prints one "  ok   ..." / "  FAIL ..." / "  skip ..." line per check, then
# "N passed, N failed, N skipped"; exits non-zero if any check failed. POSIX
# sh only (runs under dash). Needs the sqlite3 shell; python3 for the lock
# holder; root (mount -t tmpfs) for the tmpfs method of the full-filesystem
# checks, else ulimit -f is used. Every run uses a micro model and its own
# database under a temporary directory; mounts are undone on exit.

# shellcheck disable=SC2016  # single-quoted awk programs are meant to expand later

BIN=${GATELAB_BIN:-build/release/gatelab}
PY=${PYTHON:-python3}
QUICK=${GATELAB_QUICK:-0}

passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
# check DESC CMD...: passes when CMD succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
summary() { [ -n "${T_START:-}" ] && echo "# total $((($(now_ms) - T_START) / 1000)) s"; echo "$passed passed, $failed failed, $skipped skipped"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_faults.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
BGPIDS=""   # background processes not yet waited for (reaped ones are forgotten, never killed)
MOUNTS=""
# forget PID: PID has been waited for (its number may be reused: never kill it)
forget() {
    _b=""
    for x in $BGPIDS; do [ "$x" = "$1" ] || _b="$_b $x"; done
    BGPIDS=$_b
}
cleanup() {
    trap '' PIPE   # a closed stdout must not stop the cleanup
    for p in $BGPIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $BGPIDS; do { wait "$p"; } 2>/dev/null; done
    # undo every mount before removing anything: rm -rf must never run on a mount
    for m in $MOUNTS; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "  (could not unmount $m)"
    done
    if grep -q " $TMP/" /proc/mounts 2>/dev/null; then
        echo "  (a mount under $TMP is left, not removing $TMP)"
        return
    fi
    chmod -R u+rwx "$TMP" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE   # trapped, not ignored: gatelab still gets the default SIGPIPE

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    summary
    exit 1
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    summary
    exit 1
fi
HAVE_PY=0
"$PY" -c 'import sqlite3' 2>/dev/null && HAVE_PY=1

# A micro model: a step takes a few milliseconds.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4"
if [ "$QUICK" = 1 ]; then
    NTRIALS=4; KSTEPS=""; LOCK=10   # KSTEPS: from the calibration below
else
    NTRIALS=20; KSTEPS=600; LOCK=30
fi
NTRIALS=${GATELAB_FAULTS_TRIALS:-$NTRIALS}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
# sql DB SQL: one query through the sqlite3 shell (waits out a busy database;
# never call it on a file that does not exist: sqlite3 would create it).
sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }

# Number of lines in a file, counting a last line without a newline.
nlines() { awk 'END { print NR }' "$1"; }

# alive PID: the process exists and is not a zombie
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_until TENTHS CMD...: runs CMD every 0.1 s until it succeeds; 1 on timeout
wait_until() {
    _wu=$1; shift
    while [ "$_wu" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        _wu=$((_wu - 1))
    done
    return 1
}

# wait_exit PID SECONDS: waits for a background process and sets RC to its
# exit status; after SECONDS it is killed and RC is 124.
wait_exit() {
    _we=$(($2 * 10))
    while alive "$1" && [ "$_we" -gt 0 ]; do
        sleep 0.1
        _we=$((_we - 1))
    done
    if alive "$1"; then
        kill -9 "$1" 2>/dev/null
        { wait "$1"; } 2>/dev/null
        RC=124
        forget "$1"
        return
    fi
    wait "$1"
    RC=$?
    forget "$1"
}

# bg NAME ARGS...: starts gatelab ARGS in the background (stdout $TMP/NAME.out,
# stderr $TMP/NAME.err); PID is its process id.
bg() {
    _n=$1; shift
    "$BIN" "$@" >"$TMP/$_n.out" 2>"$TMP/$_n.err" &
    PID=$!
    BGPIDS="$BGPIDS $PID"
}

# has_rows DB SQL: the query's first value is a number > 0 (DB must exist)
has_rows() { [ -f "$1" ] && [ "$(sqlite3 -cmd '.timeout 2000' "$1" "$2" 2>/dev/null)" -gt 0 ] 2>/dev/null; }

# alive_or_rows PID DB SQL: has_rows, or the process is gone (stop waiting)
rows_or_dead() { has_rows "$2" "$3" || ! alive "$1"; }

# the integrity check of a database
integrity() { sqlite3 -cmd '.timeout 5000' "$1" 'pragma integrity_check' 2>&1 | tr '\n' ' ' | sed 's/ $//'; }

# first line of a file, for messages
first() { head -n 1 "$1" 2>/dev/null | cut -c1-200; }

# now_ms: wall clock in milliseconds
if date +%s%3N 2>/dev/null | grep -Eq '^[0-9]+$'; then
    now_ms() { date +%s%3N; }
else
    now_ms() { echo $(($(date +%s) * 1000)); }
fi

# last_step FILE: the step of the last progress line ("step    300 | ...") of a stdout file
last_step() { awk '$1 == "step" && $2 ~ /^[0-9]+$/ { s = $2 } END { print s + 0 }' "$1" 2>/dev/null; }

# series DB RUN: the run's train_loss and val_loss, every digit, one "key step value" a line
series() {
    sql "$1" "select key || ' ' || step || ' ' || printf('%!.17g', value) from metrics
        where run = $2 and key in ('train_loss', 'val_loss') order by key, step"
}

# first_diff A B: the first line where files A and B differ ("A-line | B-line")
first_diff() {
    awk 'NR == FNR { a[FNR] = $0; na = FNR; next }
         { if (!(FNR in a) || a[FNR] != $0) { print (FNR in a ? a[FNR] : "(end)") " | " $0; found = 1; exit } nb = FNR }
         END { if (!found && na > nb) print a[nb + 1] " | (end)" }' "$1" "$2"
}

# occurrences STRING FILE: how many times STRING occurs in FILE
occurrences() {
    awk -v s="$1" '{ line = $0; while ((i = index(line, s)) > 0) { n++; line = substr(line, i + length(s)) } } END { print n + 0 }' "$2"
}

# mount_tmpfs DIR SIZE: mounts a tmpfs of SIZE at DIR (remembered for cleanup)
mount_tmpfs() {
    mkdir -p "$1" || return 1
    mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" 2>"$TMP/mount.err" || return 1
    MOUNTS="$1 $MOUNTS"
}
# unmount DIR: undoes mount_tmpfs
unmount() {
    umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
    _m=""
    for x in $MOUNTS; do [ "$x" = "$1" ] || _m="$_m $x"; done
    MOUNTS=$_m
}

# section TITLE: a section header with the seconds since the start
T_START=$(now_ms)
section() { echo "# $1 [at $((($(now_ms) - T_START) / 1000)) s]"; }

# Every database has a directory of its own (so does its default checkpoint
# directory, ckpt/ next to it): $TMP/NAME/NAME.db
for d in cal kref ckfull lock two hup pipe stop; do mkdir -p "$TMP/$d"; done

# steps_for SECONDS: steps of one arm that take about SECONDS of training here
steps_for() {
    awk -v s="$1" -v ms="$MS_STEP" -v lo="${2:-200}" 'BEGIN { n = int(s * 1000 / ms); if (n < lo) n = lo; if (n > 200000) n = 200000; print n }'
}

# ---------------------------------------------------------------------------
# calibration: how long one step of the micro model takes on this machine
# ---------------------------------------------------------------------------
t0=$(now_ms)
# shellcheck disable=SC2086  # $MICRO is a list of words on purpose
"$BIN" run $MICRO --arms soft --threads 1 --headless --steps 400 --eval-every 100 --db "$TMP/cal/cal.db" >"$TMP/cal.out" 2>"$TMP/cal.err"
rc=$?
t1=$(now_ms)
MS_STEP=$(awk -v d=$((t1 - t0)) 'BEGIN { v = d / 400; if (v < 0.2) v = 0.2; printf "%.3f", v }')
if [ "$rc" -eq 0 ]; then ok "calibration run: 400 steps in $((t1 - t0)) ms ($MS_STEP ms a step, startup included)"
else fail "calibration run: exit $rc" "stderr: $(first "$TMP/cal.err")"; fi
if [ "$QUICK" = 1 ]; then
    # a slow build: the kill runs last about as long here as 1000 steps in release
    KSTEPS=$(steps_for 2 100 | awk '{ n = int($1 / 25) * 25; if (n > 1000) n = 1000; print n }')
    echo "# GATELAB_QUICK=1: $NTRIALS kill trials of $KSTEPS steps, a ${LOCK} s lock"
fi

# ---------------------------------------------------------------------------
section "kill -9 at random moments of a 3-arm --threads 2 run, then resume"
# ---------------------------------------------------------------------------
KARGS="$MICRO --arms soft,random,dense --threads 2 --headless --steps $KSTEPS --eval-every 25 --save-every 25"
KREF=$TMP/kref/kref.db
t0=$(now_ms)
# shellcheck disable=SC2086
"$BIN" run $KARGS --db "$KREF" >"$TMP/kref.out" 2>"$TMP/kref.err"
rc=$?
t1=$(now_ms)
row=$(sql "$KREF" "select count(*) || ' ' || sum(status = 'finished' and final_step = $KSTEPS) from runs")
if [ "$rc" -eq 0 ] && [ "$row" = "3 3" ]; then
    ok "the uninterrupted reference run: exit 0, 3 runs finished at step $KSTEPS, $((t1 - t0)) ms"
else
    fail "the uninterrupted reference run: exit $rc, runs/finished '$row'" "stderr: $(first "$TMP/kref.err")"
fi
for a in 0 1 2; do
    r=$(sql "$KREF" "select id from runs where arm = $a")
    series "$KREF" "${r:-0}" >"$TMP/kref.$a"
done
KREF_MS=$((t1 - t0))
CKSIZE=$(stat -c %s "$(sql "$KREF" "select path from checkpoints order by id limit 1")" 2>/dev/null)
[ -n "$CKSIZE" ] || CKSIZE=281392

SEED=${GATELAB_FAULTS_SEED:-$$}
echo "# kill trials: seed $SEED (GATELAB_FAULTS_SEED=$SEED reproduces the delays)"
survived=0
nkilled=0
n=0
while [ "$n" -lt "$NTRIALS" ]; do
    n=$((n + 1))
    D=$TMP/k$n
    mkdir -p "$D"
    KDB=$D/k.db
    # a moment within the reference run's length, so nearly every trial kills mid-run
    delay=$(awk -v s=$((SEED + n)) -v ms="$KREF_MS" 'BEGIN { srand(s); printf "%.2f", rand() * ms * 0.9 / 1000 }')
    what="trial $n (seed $((SEED + n)), kill at first checkpoints + $delay s)"
    tt0=$(now_ms)
    # shellcheck disable=SC2086
    bg "k$n" run $KARGS --db "$KDB"
    kpid=$PID
    # every arm has a committed checkpoint (so each killed run is resumable)
    if ! wait_until 600 rows_or_dead "$kpid" "$KDB" "select count(distinct run) >= 3 from checkpoints"; then
        kill -9 "$kpid" 2>/dev/null; { wait "$kpid"; } 2>/dev/null; forget "$kpid"
        fail "$what: no checkpoint of every arm within 60 s" "stderr: $(first "$TMP/k$n.err")"
        continue
    fi
    sleep "$delay"
    kill -9 "$kpid" 2>/dev/null
    { wait "$kpid"; } 2>/dev/null
    krc=$?
    forget "$kpid"
    [ "$krc" -eq 137 ] && nkilled=$((nkilled + 1))
    steps_at=$(sql "$KDB" "select group_concat(s, '/') from (select coalesce(max(m.step), 0) s from runs r
        left join metrics m on m.run = r.id and m.key = 'train_loss' group by r.id order by r.arm)")
    ck_at=$(sql "$KDB" "select group_concat(s, '/') from (select coalesce(max(c.step), 0) s from runs r
        left join checkpoints c on c.run = r.id and c.resumable = 1 group by r.id order by r.arm)")
    what="$what: exit $krc, stored steps $steps_at, checkpoints $ck_at"
    err=""
    ic=$(integrity "$KDB")
    [ "$ic" = ok ] || err="integrity_check after the kill: '$ic'"
    if [ -z "$err" ]; then
        "$BIN" ls --db "$KDB" >"$D/ls.out" 2>"$D/ls.err"
        lrc=$?
        [ "$lrc" -eq 0 ] || err="ls --db after the kill: exit $lrc: $(first "$D/ls.err")"
    fi
    crashed=""
    if [ -z "$err" ]; then
        for r in $(sql "$KDB" "select id || ':' || status || ':' || coalesce(final_step, '') from runs order by arm"); do
            id=${r%%:*}; st=${r#*:}; fs=${st#*:}; st=${st%%:*}
            case $st in
                crashed) crashed="$crashed $id" ;;
                finished) [ "$fs" = "$KSTEPS" ] || err="run $id is finished at step '$fs', not $KSTEPS" ;;
                *) err="after ls, run $id is '$st' (want crashed, or finished if it had ended)" ;;
            esac
            [ -n "$err" ] && break
            if ! awk -v id="$id" -v st="$st" '$1 == id { for (i = 2; i <= NF; i++) if ($i == st) f = 1 } END { exit !f }' "$D/ls.out"; then
                err="ls does not list run $id as $st"; break
            fi
        done
    fi
    ncr=$(echo "$crashed" | wc -w | tr -d ' ')
    if [ -z "$err" ]; then
        for id in $crashed; do
            "$BIN" resume "$id" --db "$KDB" >"$D/resume$id.out" 2>"$D/resume$id.err"
            rrc=$?
            if [ "$rrc" -ne 0 ]; then err="resume $id: exit $rrc: $(first "$D/resume$id.err")"; break; fi
        done
    fi
    if [ -z "$err" ]; then
        row=$(sql "$KDB" "select count(*) || ' ' || sum(status = 'finished' and final_step = $KSTEPS) from runs")
        [ "$row" = "3 3" ] || err="after the resumes, runs/finished at $KSTEPS: '$row'"
    fi
    if [ -z "$err" ]; then
        for a in 0 1 2; do
            r=$(sql "$KDB" "select id from runs where arm = $a")
            series "$KDB" "${r:-0}" >"$D/series.$a"
            if ! cmp -s "$TMP/kref.$a" "$D/series.$a"; then
                nd=$(paste -d '|' "$TMP/kref.$a" "$D/series.$a" | awk -F'|' '$1 != $2' | wc -l | tr -d ' ')
                err="arm $a (run $r) differs from the reference in $nd of $(nlines "$TMP/kref.$a") values; first (ref | resumed): $(first_diff "$TMP/kref.$a" "$D/series.$a")"
                break
            fi
        done
    fi
    if [ -z "$err" ]; then
        ic=$(integrity "$KDB")
        [ "$ic" = ok ] || err="integrity_check after the resumes: '$ic'"
    fi
    if [ -z "$err" ]; then
        survived=$((survived + 1))
        ok "$what: integrity ok, $ncr crashed, resumed, bit-identical [$(($(now_ms) - tt0)) ms]"
    else
        fail "$what [$(($(now_ms) - tt0)) ms]" "$err"
    fi
    rm -rf "$D"
done
echo "$survived of $NTRIALS kill trials: integrity ok, resumed, bit-identical ($nkilled killed mid-run, $((n - nkilled)) had finished before the kill)"

# ---------------------------------------------------------------------------
section "a full filesystem: the database, then the checkpoints"
# ---------------------------------------------------------------------------
METHOD="ulimit"
if [ "${GATELAB_FAULTS_NO_MOUNT:-0}" != 1 ] && mount_tmpfs "$TMP/probe" 64k; then
    if : >"$TMP/probe/x" && unmount "$TMP/probe"; then METHOD=tmpfs; else unmount "$TMP/probe"; fi
fi
if [ "$METHOD" = tmpfs ]; then
    echo "# method: tmpfs (mount -t tmpfs works here)"
else
    echo "# method: RLIMIT_FSIZE (ulimit -f in a subshell; mount -t tmpfs $( [ "${GATELAB_FAULTS_NO_MOUNT:-0}" = 1 ] && echo 'not tried: GATELAB_FAULTS_NO_MOUNT=1' || echo "failed: $(first "$TMP/mount.err")"))"
fi

# --- the database's filesystem fills mid-run (checkpoints go elsewhere)
FD=$TMP/fsdb
FSTEPS=1500
fs_ok=1
if [ "$METHOD" = tmpfs ]; then
    mount_tmpfs "$FD" 1m || fs_ok=0
    LIMIT=""
else
    mkdir -p "$FD"
    LIMIT=2048   # 512-byte blocks: 1 MiB, above a checkpoint's size
fi
DBF=$FD/full.db
if [ "$fs_ok" = 0 ]; then
    fail "a 1 MiB tmpfs for the database mounts" "$(first "$TMP/mount.err")"
else
    # shellcheck disable=SC2086
    (
        [ -n "$LIMIT" ] && ulimit -f "$LIMIT"
        exec "$BIN" run $MICRO --arms soft,random --threads 2 --headless --steps $FSTEPS --eval-every 25 \
            --save-every 100 --out "$TMP/fsdb_ckpt" --db "$DBF"
    ) >"$TMP/dbfull.out" 2>"$TMP/dbfull.err" &
    PID=$!
    BGPIDS="$BGPIDS $PID"
    wait_exit "$PID" 180
    msg=$(first "$TMP/dbfull.err")
    mstep=$(sql "$DBF" "select coalesce(max(step), 0) from metrics where key = 'train_loss'")
    if [ "$RC" -eq 1 ]; then ok "database full ($METHOD): exit 1 [stored up to step $mstep of $FSTEPS]"
    else fail "database full ($METHOD): exit 1 (got $RC; stored up to step $mstep of $FSTEPS)" "stderr: $msg"; fi
    nl=$(nlines "$TMP/dbfull.err")
    nocc=$(occurrences "$DBF" "$TMP/dbfull.err")
    if [ "$nl" -eq 1 ] && [ "$nocc" -eq 1 ]; then ok "database full: one message, naming the database once [$msg]"
    else fail "database full: one message naming the database once ($nl lines on stderr, the path $nocc times)" \
        "stderr: $(head -n 3 "$TMP/dbfull.err" | cut -c1-200 | tr '\n' '|')"; fi
    ic=$(integrity "$DBF")
    check "database full: integrity_check of the full database says ok (got '$ic')" [ "$ic" = ok ]
    # make room
    if [ "$METHOD" = tmpfs ]; then
        if mount -o remount,size=64m "$FD" 2>"$TMP/mount.err"; then room="remounted the tmpfs at 64 MiB"
        else room="remount failed: $(first "$TMP/mount.err")"; fi
    else
        room="no file-size limit on later processes"
    fi
    "$BIN" ls --db "$DBF" >"$TMP/dbfull_ls.out" 2>"$TMP/dbfull_ls.err"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "database full: after making room ($room) ls exits 0"
    else fail "database full: after making room ($room) ls exits 0 (got $rc)" "stderr: $(first "$TMP/dbfull_ls.err")"; fi
    nruns=$(sql "$DBF" "select count(*) from runs")
    check "database full: both runs are stored (got ${nruns:-none})" [ "${nruns:-0}" = 2 ]
    for r in $(sql "$DBF" "select id || ':' || status from runs order by id"); do
        id=${r%%:*}; st=${r#*:}
        case $st in
            finished) ok "database full: run $id is finished" ;;
            stopped|crashed)
                ck=$(sql "$DBF" "select path from checkpoints where run = $id and resumable = 1 order by step desc limit 1")
                "$BIN" resume "$id" --db "$DBF" >"$TMP/dbfull_r.out" 2>"$TMP/dbfull_r.err"
                rc=$?
                row=$(sql "$DBF" "select status || ' ' || coalesce(final_step, '') from runs where id = $id")
                if [ -n "$ck" ] && [ -s "$ck" ]; then
                    if [ "$rc" -eq 0 ] && [ "$row" = "finished $FSTEPS" ]; then ok "database full: run $id ($st) resumed to the end (exit 0, '$row')"
                    else fail "database full: run $id ($st, checkpoint $ck) resumed to the end (exit $rc, '$row')" "stderr: $(first "$TMP/dbfull_r.err")"; fi
                else
                    if [ "$rc" -ne 0 ] && [ "${row%% *}" = "$st" ]; then ok "database full: run $id ($st) has no resumable checkpoint and resume refuses it (exit $rc)"
                    else fail "database full: run $id ($st) has no resumable checkpoint; resume gave exit $rc, '$row'" "stderr: $(first "$TMP/dbfull_r.err")"; fi
                fi
                ;;
            *) fail "database full: run $id is stored '$st' after ls (want finished, stopped or crashed)" ;;
        esac
    done
    ic=$(integrity "$DBF")
    check "database full: integrity_check after the resumes says ok (got '$ic')" [ "$ic" = ok ]
    [ "$METHOD" = tmpfs ] && unmount "$FD"
fi

# --- the checkpoints' filesystem fills (the database is elsewhere)
CD=$TMP/fsck
CKDB=$TMP/ckfull/ckfull.db
fs_ok=1
if [ "$METHOD" = tmpfs ]; then
    # room for two checkpoints, not for the third
    sz=$(awk -v c="$CKSIZE" 'BEGIN { printf "%dk", int(c * 2.5 / 1024) }')
    mount_tmpfs "$CD" "$sz" || fs_ok=0
    LIMIT=""
    where="a $sz tmpfs: room for 2 checkpoints of $CKSIZE bytes"
else
    mkdir -p "$CD"
    LIMIT=$((CKSIZE * 7 / 10 / 512))   # 512-byte blocks: below one checkpoint
    where="ulimit -f $LIMIT: below one checkpoint of $CKSIZE bytes"
fi
if [ "$fs_ok" = 0 ]; then
    fail "a small tmpfs for the checkpoints mounts" "$(first "$TMP/mount.err")"
else
    # shellcheck disable=SC2086
    (
        [ -n "$LIMIT" ] && ulimit -f "$LIMIT"
        exec "$BIN" run $MICRO --arms soft --threads 1 --headless --steps 400 --eval-every 25 --save-every 50 \
            --out "$CD" --db "$CKDB"
    ) >"$TMP/ckfull.out" 2>"$TMP/ckfull.err" &
    PID=$!
    BGPIDS="$BGPIDS $PID"
    wait_exit "$PID" 120
    msg=$(first "$TMP/ckfull.err")
    nck=$(sql "$CKDB" "select count(*) from checkpoints")
    if [ "$RC" -eq 1 ]; then ok "checkpoints full ($where): exit 1 [$nck checkpoints stored; $msg]"
    else fail "checkpoints full ($where): exit 1 (got $RC; $nck checkpoints stored)" "stderr: $msg"; fi
    st=$(sql "$CKDB" "select group_concat(status || ' at ' || coalesce(final_step, '?')) from runs")
    check "checkpoints full: the run is stored failed (got '$st')" [ "${st%% *}" = failed ]
    ev=$(sql "$CKDB" "select step || ': ' || detail from events where kind = 'error' and detail like 'checkpoint%' order by id limit 1")
    check "checkpoints full: an error event whose detail starts with 'checkpoint' [${ev:-none}]" [ -n "$ev" ]
    left=$(find "$CD" -name '*.tmp.*' 2>/dev/null | head -n 3 | tr '\n' ' ')
    check "checkpoints full: no *.tmp.* file left in the checkpoint directory [${left:-none}]" [ -z "$left" ]
    ic=$(integrity "$CKDB")
    check "checkpoints full: integrity_check says ok (got '$ic')" [ "$ic" = ok ]
    [ "$METHOD" = tmpfs ] && unmount "$CD"
fi

# ---------------------------------------------------------------------------
section "another process holds the write lock for $LOCK s in the middle of a run"
# ---------------------------------------------------------------------------
if [ "$HAVE_PY" = 0 ]; then
    skip "the lock holder needs $PY with sqlite3"
else
    cat >"$TMP/lock.py" <<'EOF'
import sqlite3, sys, time
db, secs, mark = sys.argv[1], float(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(db, timeout=60, isolation_level=None)
c.execute('BEGIN IMMEDIATE')
with open(mark + '.held', 'w') as f:
    f.write('%d\n' % int(time.time() * 1000))
time.sleep(secs)
c.execute('COMMIT')
with open(mark + '.done', 'w') as f:
    f.write('%d\n' % int(time.time() * 1000))
EOF
    L=$TMP/lock/lock.db
    # training alone would last well into the lock (and a little past its first quarter)
    LSTEPS=$(steps_for "$(awk -v l=$LOCK 'BEGIN { print l * 0.4 + 4 }')")
    LEVAL=50
    t0=$(now_ms)
    # shellcheck disable=SC2086
    bg lock run $MICRO --arms soft --threads 1 --headless --steps $LSTEPS --eval-every $LEVAL --db "$L"
    lpid=$PID
    if wait_until 300 rows_or_dead "$lpid" "$L" "select count(*) from metrics where key = 'train_loss'" && alive "$lpid"; then
        ok "the run ($LSTEPS steps, ~$(awk -v n="$LSTEPS" -v ms="$MS_STEP" 'BEGIN { printf "%.0f", n * ms / 1000 }') s of training) committed its first rows"
    else
        fail "the run committed its first rows while alive" "stderr: $(first "$TMP/lock.err")"
    fi
    "$PY" "$TMP/lock.py" "$L" "$LOCK" "$TMP/lock" >"$TMP/lockpy.out" 2>"$TMP/lockpy.err" &
    qpid=$!
    BGPIDS="$BGPIDS $qpid"
    # the holder gets the lock while the run is alive
    wait_until 600 eval '[ -f "$TMP/lock.held" ] || ! alive "$lpid"'
    if [ -f "$TMP/lock.held" ] && alive "$lpid"; then
        held=$(cat "$TMP/lock.held")
        ok "the lock holder got the write lock mid-run, $((held - t0)) ms after the run started (at step $(last_step "$TMP/lock.out"))"
        sleep 1
        s1=$(last_step "$TMP/lock.out")
        sleep "$((LOCK / 4 + 1))"
        s2=$(last_step "$TMP/lock.out")
        check "training kept going while the lock was held (progress step $s1 -> $s2 over $((LOCK / 4 + 1)) s)" [ "$s2" -gt "$s1" ]
    else
        fail "the lock holder got the write lock mid-run (it waited $(( $(now_ms) - t0 )) ms; run alive: $(alive "$lpid" && echo yes || echo no))" \
            "the run never released the write lock between its commits"
        fail "training kept going while the lock was held (no lock was ever held mid-run)"
        kill -9 "$qpid" 2>/dev/null
    fi
    wait_exit "$lpid" $((LOCK + 120 + LSTEPS * 5 / 1000))
    lrc=$RC
    tend=$(now_ms)
    wait_exit "$qpid" $((LOCK + 70))
    qrc=$RC
    if [ "$lrc" -eq 0 ]; then ok "the run exits 0 ($((tend - t0)) ms)"
    else fail "the run exits 0 (got $lrc after $((tend - t0)) ms)" "stderr: $(first "$TMP/lock.err")"; fi
    if [ -f "$TMP/lock.done" ]; then
        done_ms=$(cat "$TMP/lock.done")
        check "the lock holder committed (exit $qrc) and the run ended after the lock was released (end - release: $((tend - done_ms)) ms)" \
            eval '[ "$qrc" -eq 0 ] && [ "$tend" -ge "$done_ms" ]'
    else
        fail "the lock holder committed its transaction (exit $qrc)" "$(first "$TMP/lockpy.err")"
    fi
    if grep -qi locked "$TMP/lock.err"; then fail "no 'locked' message on stderr" "stderr: $(grep -i locked "$TMP/lock.err" | head -n 1)"
    else ok "no 'locked' message on stderr"; fi
    row=$(sql "$L" "select status || ' ' || coalesce(final_step, '') from runs")
    check "the run is finished at step $LSTEPS (got '$row')" [ "$row" = "finished $LSTEPS" ]
    v=$(sql "$L" "select count(*) from metrics where key = 'train_loss' and step between 1 and $LSTEPS")
    check "every step's train_loss row is stored ($v of $LSTEPS)" [ "$v" = "$LSTEPS" ]
    v=$(sql "$L" "select count(*) from metrics where key = 'val_loss'")
    check "every evaluation's val_loss is stored ($v, want $((LSTEPS / LEVAL)) or more)" [ "${v:-0}" -ge $((LSTEPS / LEVAL)) ]
    v=$(sql "$L" "select count(*) from checkpoints where step = $LSTEPS")
    check "the final checkpoint (step $LSTEPS) is recorded" [ "${v:-0}" -ge 1 ]
    ic=$(integrity "$L")
    check "integrity_check says ok (got '$ic')" [ "$ic" = ok ]
fi

# ---------------------------------------------------------------------------
section "two sessions writing one database at once"
# ---------------------------------------------------------------------------
W=$TMP/two/two.db
# A trains three times as long as B and B starts at A's first rows, so B's start-up
# (slow under the sanitizers) cannot outlast what is left of A
WSTEPS=$(steps_for 2)
ASTEPS=$((WSTEPS * 3))
# shellcheck disable=SC2086
bg twoA run $MICRO --arms soft,random --threads 2 --headless --steps $ASTEPS --eval-every 50 --db "$W"
apid=$PID
wait_until 300 rows_or_dead "$apid" "$W" "select count(*) from metrics where key = 'train_loss' having count(*) >= 20"
overlap=no
alive "$apid" && overlap=yes
# shellcheck disable=SC2086
bg twoB run $MICRO --arms soft,random --threads 2 --headless --steps $WSTEPS --eval-every 50 --seed 2 --db "$W"
bpid=$PID
wait_exit "$apid" $((60 + ASTEPS / 100))
arc=$RC
wait_exit "$bpid" $((60 + WSTEPS / 100))
brc=$RC
check "session A was still writing when session B started" [ "$overlap" = yes ]
if [ "$arc" -eq 0 ]; then ok "session A exits 0"; else fail "session A exits 0 (got $arc)" "stderr: $(first "$TMP/twoA.err")"; fi
if [ "$brc" -eq 0 ]; then ok "session B exits 0"; else fail "session B exits 0 (got $brc)" "stderr: $(first "$TMP/twoB.err")"; fi
v=$(sql "$W" "select group_concat(session || ':' || name || ':' || status, ' ') from (select * from runs order by session, arm)")
check "both sessions' runs are finished (got '$v')" [ "$v" = "1:soft:finished 1:random:finished 2:soft:finished 2:random:finished" ]
v=$(sql "$W" "select group_concat(n, ' ') from (select r.id, (select count(*) from metrics m where m.run = r.id and m.key = 'train_loss') n from runs r order by r.id)")
check "each run has all its train_loss rows ($ASTEPS $ASTEPS $WSTEPS $WSTEPS, got '$v')" [ "$v" = "$ASTEPS $ASTEPS $WSTEPS $WSTEPS" ]
# wall_ms is the Unix time a trainer recorded a step: B trained before A's last step
v=$(sql "$W" "select (select max(m.wall_ms) from metrics m join runs r on r.id = m.run where r.session = 1 and m.key = 'train_loss')
    - (select min(m.wall_ms) from metrics m join runs r on r.id = m.run where r.session = 2 and m.key = 'train_loss')")
check "the sessions trained at the same time (B's first step ${v:-?} ms before A's last)" [ "${v:-0}" -gt 0 ] 2>/dev/null
ic=$(integrity "$W")
check "integrity_check says ok (got '$ic')" [ "$ic" = ok ]

# ---------------------------------------------------------------------------
section "SIGHUP, SIGPIPE, SIGSTOP + SIGCONT"
# ---------------------------------------------------------------------------
SSTEPS=$(steps_for 3)
H=$TMP/hup/hup.db
# shellcheck disable=SC2086
bg hup run $MICRO --arms soft,random --threads 2 --headless --steps $SSTEPS --eval-every 50 --save-every 100000 --db "$H"
hpid=$PID
if wait_until 300 rows_or_dead "$hpid" "$H" "select count(*) from metrics where key = 'train_loss'" && alive "$hpid"; then
    sleep 0.3
    # issue 14: a hangup detaches instead of stopping — the session trains
    # on to its end with its output in the log file next to the database
    kill -HUP "$hpid" 2>/dev/null
    hup_at=$(last_step "$TMP/hup.out")
    wait_exit "$hpid" 300
    check "SIGHUP: the session trains on to its end, exit 0 (got $RC; sent near step $hup_at of $SSTEPS)" [ "$RC" -eq 0 ]
    check "SIGHUP: stderr names SIGHUP and the log [$(first "$TMP/hup.err")]" \
        grep -q "SIGHUP: session 1 trains on .*output: $TMP/hup/hup-session-1.log" "$TMP/hup.err"
    row=$(sql "$H" "select count(*) || ' ' || sum(status = 'finished') || ' ' || sum(final_step = $SSTEPS) from runs")
    check "SIGHUP: every run is finished at step $SSTEPS, as stored (runs, finished, at the end: $row; $(sql "$H" "select group_concat(status) from runs"))" [ "$row" = "2 2 2" ]
    row=$(sql "$H" "select group_concat(n) from (select count(*) n from metrics where key = 'train_loss' group by run)")
    check "SIGHUP: every step's train_loss is stored ($row)" [ "$row" = "$SSTEPS,$SSTEPS" ]
    check "SIGHUP: the log file ends with the summary" grep -q "^session 1 in $H" "$TMP/hup/hup-session-1.log"
    ic=$(integrity "$H")
    check "SIGHUP: integrity_check says ok (got '$ic')" [ "$ic" = ok ]
else
    fail "SIGHUP: the run stored metrics within 30 s" "stderr: $(first "$TMP/hup.err")"
    wait_exit "$hpid" 0
fi

# SIGPIPE: stdout is a pipe whose reader goes away after two lines. A shell
# started with SIGPIPE ignored cannot undo it for its children: then python
# restores the default disposition before it runs gatelab.
PIPE_IGN=0
ign=$(awk '/^SigIgn/ { print $2 }' /proc/$$/status 2>/dev/null)
if [ -n "$ign" ] && [ $((0x$ign & 0x1000)) -ne 0 ]; then
    PIPE_IGN=1
    if [ "$HAVE_PY" = 1 ]; then echo "# SIGPIPE is ignored by this shell's parent: gatelab runs with it reset to the default by $PY"
    else echo "# SIGPIPE is ignored by this shell's parent and $PY is missing: gatelab inherits SIG_IGN"; PIPE_IGN=0; fi
fi
# exec_dfl_pipe CMD ARGS...: exec CMD with SIGPIPE at its default disposition
exec_dfl_pipe() {
    if [ "$PIPE_IGN" = 1 ]; then
        exec "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGPIPE, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"
    fi
    exec "$@"
}
P=$TMP/pipe/pipe.db
# shellcheck disable=SC2086
(
    {
        exec_dfl_pipe "$BIN" run $MICRO --arms soft,random --threads 2 --headless --steps $SSTEPS --eval-every 50 --db "$P" 2>"$TMP/pipe.err" &
        echo $! >"$TMP/pipe.pid"
        wait $!
        echo $? >"$TMP/pipe.rc"
    } | head -n 2 >"$TMP/pipe.head"
) &
ppid=$!
BGPIDS="$BGPIDS $ppid"
wait_until 50 test -s "$TMP/pipe.pid"
gpid=$(cat "$TMP/pipe.pid" 2>/dev/null)
[ -n "$gpid" ] && BGPIDS="$BGPIDS $gpid"
wait_until 1200 eval '! alive "$ppid"'
# a gatelab that never noticed the closed pipe is killed (before its parent shell)
if alive "$ppid" && [ -n "$gpid" ]; then kill -9 "$gpid" 2>/dev/null; fi
wait_exit "$ppid" 10
forget "$gpid"
prc=$(cat "$TMP/pipe.rc" 2>/dev/null)
check "SIGPIPE: '| head -n 2' makes gatelab exit 141 (got ${prc:-none})" [ "${prc:-0}" = 141 ]
if [ -f "$P" ]; then
    row=$(sql "$P" "select count(*) || ' ' || coalesce(sum(status = 'stopped'), 0) from runs")
    check "SIGPIPE: both runs stored stopped, not crashed (runs, stopped: $row; $(sql "$P" "select group_concat(status) from runs"))" [ "$row" = "2 2" ]
    ic=$(integrity "$P")
    check "SIGPIPE: integrity_check says ok (got '$ic')" [ "$ic" = ok ]
else
    fail "SIGPIPE: the database was created"
fi
check "SIGPIPE: stderr says stdout was closed [$(first "$TMP/pipe.err")]" grep -qi stdout "$TMP/pipe.err"

# SIGSTOP for 2 s, then SIGCONT
S=$TMP/stop/stop.db
# shellcheck disable=SC2086
bg stop run $MICRO --arms soft,random --threads 2 --headless --steps $SSTEPS --eval-every 50 --db "$S"
spid=$PID
if wait_until 300 rows_or_dead "$spid" "$S" "select count(*) from metrics where key = 'train_loss'" && alive "$spid"; then
    kill -STOP "$spid"
    sleep 0.2
    pst=$(awk '{ print $3 }' "/proc/$spid/stat" 2>/dev/null)
    s1=$(last_step "$TMP/stop.out")
    sleep 2
    s2=$(last_step "$TMP/stop.out")
    kill -CONT "$spid"
    check "SIGSTOP: the process is stopped (state ${pst:-?}) and its progress stays at step $s1 -> $s2 for 2 s" \
        eval '[ "$pst" = T ] && [ "$s1" = "$s2" ]'
    wait_exit "$spid" 120
    if [ "$RC" -eq 0 ]; then ok "SIGSTOP + SIGCONT: the run completes, exit 0"
    else fail "SIGSTOP + SIGCONT: the run completes, exit 0 (got $RC)" "stderr: $(first "$TMP/stop.err")"; fi
    v=$(sql "$S" "select group_concat(status || ' ' || coalesce(final_step, '') || ' ' || (select count(*) from metrics m
        where m.run = r.id and m.key = 'train_loss'), ', ') from runs r")
    check "SIGSTOP + SIGCONT: both runs finished with all $SSTEPS steps stored (status, final step, rows: $v)" \
        [ "$v" = "finished $SSTEPS $SSTEPS, finished $SSTEPS $SSTEPS" ]
else
    fail "SIGSTOP: the run stored metrics within 30 s" "stderr: $(first "$TMP/stop.err")"
    wait_exit "$spid" 0
fi

summary
[ "$failed" -eq 0 ]
