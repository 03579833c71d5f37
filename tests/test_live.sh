#!/bin/sh
# End-to-end tests of live runs and the SQLite store (issue 3; DESIGN.md
# sections 5, 8, 9, 10): kill -9 and resume, resume equals an uninterrupted
# run, the sqlite3 shell reading while a run writes, SIGINT/SIGTERM/SIGHUP
# (issue 10: also nohup, a closed or full stdout, a file-size limit), scripted
# swap / k / pause / fork, every query of sessions/queries.sql, bad database
# inputs, and ls / show / export against a real database.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_live.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh only (runs under dash). Needs
# the sqlite3 shell and python3. Every run uses a micro model (~1-3 ms a step)
# and its own database under a temporary directory.

# shellcheck disable=SC2016  # single-quoted eval strings and awk programs are meant to expand later

BIN=${GATELAB_BIN:-build/release/gatelab}
ST_READER=tests/st_reader.py
QUERIES=${GATELAB_QUERIES:-sessions/queries.sql}
PY=${PYTHON:-python3}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skipped=0
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
totals() {
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
}
# check DESC CMD...: passes when CMD succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_live.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
BGPIDS=""
cleanup() {
    for p in $BGPIDS; do kill -9 "$p" 2>/dev/null; done
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

# A micro model: a step takes a few milliseconds.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1"
TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

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

# wait_exit PID SECONDS: waits for a background gatelab and sets RC to its
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
        return
    fi
    wait "$1"
    RC=$?
}

# bg ARGS...: starts gatelab ARGS in the background (stdout $TMP/bg.out,
# stderr $TMP/bg.err); PID is its process id.
bg() {
    "$BIN" "$@" >"$TMP/bg.out" 2>"$TMP/bg.err" &
    PID=$!
    BGPIDS="$BGPIDS $PID"
}

# has_rows DB SQL: the query's first value is a number > 0 (DB must exist)
has_rows() { [ -f "$1" ] && [ "$(sqlite3 -cmd '.timeout 2000' "$1" "$2" 2>/dev/null)" -gt 0 ] 2>/dev/null; }

# cpu_ticks PID: user + system time of the whole process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }

# matches STRING ERE: STRING matches the extended regex
matches() { printf '%s\n' "$1" | grep -Eq -- "$2"; }
RUNAS=""   # a prefix for bad_db's gatelab (setpriv as another user)

# the integrity check of a database
integrity() { sqlite3 -cmd '.timeout 5000' "$1" 'pragma integrity_check' 2>&1 | tr '\n' ' ' | sed 's/ $//'; }

# run_fg DESC ARGS...: runs gatelab ARGS in the foreground, checks exit 0
run_fg() {
    d=$1; shift
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "$d: exit 0"
    else fail "$d: exit $rc" "stderr: $(head -n 2 "$ERR" | tr '\n' '|')"; fi
}

# ---------------------------------------------------------------------------
echo "# kill -9 a headless run mid-way, reopen, resume"
# ---------------------------------------------------------------------------
K=$TMP/kill.db
KSTEPS=1500
# shellcheck disable=SC2086  # $MICRO is a list of words on purpose
bg run $MICRO --arms soft --steps $KSTEPS --save-every 20 --eval-every 20 --db "$K"
kpid=$PID
if wait_until 300 has_rows "$K" 'select count(*) >= 2 from checkpoints'; then
    ok "the background run stored 2 checkpoints"
else
    fail "the background run stored 2 checkpoints within 30 s" "stderr: $(head -n 1 "$TMP/bg.err")"
fi
kill -9 "$kpid" 2>/dev/null
{ wait "$kpid"; } 2>/dev/null
rc=$?
check "the run was killed mid-way, not finished (exit $rc, want 137)" [ "$rc" -eq 137 ]
st=$(sql "$K" "select status from runs where id = 1")
check "before the next open the killed run still reads 'running' (got '$st')" [ "$st" = running ]
ic=$(integrity "$K")
check "pragma integrity_check says ok (got '$ic')" [ "$ic" = ok ]
ckstep=$(sql "$K" "select max(step) from checkpoints where run = 1 and resumable = 1")
mstep=$(sql "$K" "select max(step) from metrics where run = 1 and key = 'train_loss'")
check "train_loss stored up to step ${mstep:-none} >= last checkpoint step ${ckstep:-none}" \
    [ "${mstep:-0}" -ge "${ckstep:-1}" ] 2>/dev/null
check "the killed run had not reached its last step ($mstep < $KSTEPS)" [ "${mstep:-$KSTEPS}" -lt "$KSTEPS" ]
nmiss=$(sql "$K" "select ${mstep:-0} - count(*) from metrics where run = 1 and key = 'train_loss'")
check "every train_loss step 1..$mstep is present ($nmiss missing)" [ "${nmiss:-1}" = 0 ]
"$BIN" ls --db "$K" >"$OUT" 2>"$ERR"
rc=$?
check "ls after the kill exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "ls lists run 1 as crashed" awk '$1 == 1 { for (i = 2; i <= NF; i++) if ($i == "crashed") f = 1 } END { exit !f }' "$OUT"
st=$(sql "$K" "select status from runs where id = 1")
check "the database now says crashed (got '$st')" [ "$st" = crashed ]
n=$(sql "$K" "select count(*) from events where run = 1 and kind = 'error' and detail like '%$kpid%'")
check "an error event names the lost owner pid $kpid" [ "${n:-0}" -ge 1 ]
"$BIN" resume 1 --db "$K" >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ]; then ok "resume of the crashed run exits 0"
else fail "resume of the crashed run exits 0 (got $rc)" "stderr: $(head -n 1 "$ERR")"; fi
row=$(sql "$K" "select status || ' ' || final_step from runs where id = 1")
check "the resumed run is finished at step $KSTEPS (got '$row')" [ "$row" = "finished $KSTEPS" ]
n=$(sql "$K" "select count(*) from metrics where run = 1 and key = 'train_loss' and step = $KSTEPS")
check "train_loss at step $KSTEPS is stored" [ "${n:-0}" = 1 ]
n=$(sql "$K" "select count(*) from metrics where run = 1 and key = 'train_loss' and step between 1 and $KSTEPS")
check "train_loss for every step 1..$KSTEPS, once each (got $n rows)" [ "${n:-0}" = "$KSTEPS" ]
n=$(sql "$K" "select count(*) from events where run = 1 and kind = 'resumed' and step = ${ckstep:-0}")
check "a 'resumed' event at the checkpoint step ${ckstep:-?}" [ "${n:-0}" = 1 ]
ic=$(integrity "$K")
check "integrity_check after the resume says ok (got '$ic')" [ "$ic" = ok ]

# The continued losses equal those of an uninterrupted run of the same config.
KU=$TMP/kill_ref.db
# shellcheck disable=SC2086
run_fg "the same run uninterrupted" run $MICRO --arms soft --steps $KSTEPS --save-every 20 --eval-every 20 --db "$KU"
if [ -n "$ckstep" ]; then
    want=$((KSTEPS - ckstep))
    same=$(sql "$K" "attach '$KU' as u; select count(*) from metrics a join u.metrics b
        on b.run = 1 and b.key = a.key and b.step = a.step
        where a.run = 1 and a.key = 'train_loss' and a.step > $ckstep and a.value = b.value")
    first=$(sql "$K" "attach '$KU' as u; select a.step || ': ' || printf('%.9g', a.value) || ' vs ' || printf('%.9g', b.value)
        from metrics a join u.metrics b on b.run = 1 and b.key = a.key and b.step = a.step
        where a.run = 1 and a.key = 'train_loss' and a.step > $ckstep and a.value <> b.value order by a.step limit 1")
    if [ "${same:-0}" = "$want" ]; then ok "after crash + resume, train_loss of steps $((ckstep + 1))..$KSTEPS equals the uninterrupted run ($want steps)"
    else fail "after crash + resume, train_loss of steps $((ckstep + 1))..$KSTEPS equals the uninterrupted run ($same of $want equal)" "first difference at step $first"; fi
else
    fail "after crash + resume, losses equal the uninterrupted run (no checkpoint step)"
fi

# ---------------------------------------------------------------------------
echo "# resume equals an uninterrupted run (scripted stop at 20)"
# ---------------------------------------------------------------------------
A=$TMP/a.db
B=$TMP/b.db
# shellcheck disable=SC2086
run_fg "run A with --at 20:stop" run $MICRO --arms soft --steps 40 --eval-every 10 --seed 7 --at 20:stop --db "$A"
row=$(sql "$A" "select status || ' ' || final_step from runs where id = 1")
check "run A is stopped at step 20 (got '$row')" [ "$row" = "stopped 20" ]
n=$(sql "$A" "select max(step) from metrics where run = 1 and key = 'train_loss'")
check "run A stored train_loss up to step 20 (got $n)" [ "$n" = 20 ]
run_fg "resume A" resume 1 --db "$A"
row=$(sql "$A" "select status || ' ' || final_step from runs where id = 1")
check "resumed A is finished at step 40 (got '$row')" [ "$row" = "finished 40" ]
# shellcheck disable=SC2086
run_fg "run B, the same without --at" run $MICRO --arms soft --steps 40 --eval-every 10 --seed 7 --db "$B"
cmp_loss() {   # cmp_loss FROM TO: how many train_loss values of steps FROM..TO are identical in A and B
    sql "$A" "attach '$B' as b; select count(*) from metrics x join b.metrics y
        on y.run = 1 and y.key = x.key and y.step = x.step
        where x.run = 1 and x.key = 'train_loss' and x.step between $1 and $2 and x.value = y.value"
}
n=$(cmp_loss 1 20)
check "train_loss of steps 1..20 identical in A and B ($n of 20)" [ "$n" = 20 ]
n=$(cmp_loss 21 40)
check "train_loss of steps 21..40 identical in resumed A and B ($n of 20)" [ "$n" = 20 ]
g=$(sql "$A" "attach '$B' as b; select printf('%.9g', x.value) || ' vs ' || printf('%.9g', y.value) from metrics x join b.metrics y
    on y.run = 1 and y.key = x.key and y.step = x.step where x.run = 1 and x.key = 'gate_grad_norm' and x.step = 20")
check "resume leaves the stored step-20 gate_grad_norm alone (A vs B: $g)" \
    eval '[ -n "$g" ] && [ "${g% vs *}" = "${g#* vs }" ]'

# ---------------------------------------------------------------------------
echo "# the sqlite3 shell reading in a loop while a run writes"
# ---------------------------------------------------------------------------
R=$TMP/read.db
# shellcheck disable=SC2086
bg run $MICRO --arms soft,random --steps 1000 --eval-every 50 --db "$R"
rpid=$PID
# start reading once the schema exists (before that sqlite3 would see an empty file)
if wait_until 300 has_rows "$R" "select count(*) from sqlite_master where name = 'metrics'"; then
    ok "the run created its database"
else
    fail "the run created its database within 30 s" "stderr: $(head -n 1 "$TMP/bg.err")"
fi
: >"$TMP/reads"
deadline=$(($(date +%s) + 90))
while alive "$rpid" && [ "$(date +%s)" -lt "$deadline" ]; do
    if sqlite3 "$R" 'select count(*) from metrics; select count(*) from run_final' >"$TMP/r.out" 2>"$TMP/r.err" \
        && [ ! -s "$TMP/r.err" ] && [ -s "$TMP/r.out" ]; then
        echo "ok $(head -n 1 "$TMP/r.out")" >>"$TMP/reads"
    else
        echo "err $(head -n 1 "$TMP/r.err" "$TMP/r.out" | grep -v '^==' | tr '\n' ' ')" >>"$TMP/reads"
    fi
done
wait_exit "$rpid" 30
check "the writing run exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "the writing run printed nothing on stderr" [ ! -s "$TMP/bg.err" ]
final=$(sql "$R" "select count(*) from metrics")
nreads=$(nlines "$TMP/reads")
# An error is "mid-run" when a later successful read still saw fewer rows
# than the final count (the run went on writing after it); otherwise it came
# after the last commit, while gatelab closed the database.
awk -v final="$final" '
    { kind[NR] = $1; val[NR] = $2; line[NR] = $0 }
    END {
        low = 0   # does some read at or after i see fewer than final rows?
        for (i = NR; i >= 1; i--) {
            if (kind[i] == "ok" && val[i] + 0 < final + 0) low = 1
            if (kind[i] == "err") print (low ? "mid" : "end"), "read", i, "of", NR ":", substr(line[i], 5)
        }
    }' "$TMP/reads" >"$TMP/read_errors"
nmid=$(grep -c '^mid' "$TMP/read_errors")
nend=$(grep -c '^end' "$TMP/read_errors")
# reads that saw the run part-way (fewer rows than at the end): what the
# checks below are about; a count of them, not of all reads, so a slow
# machine that spawns sqlite3 slowly still passes when the reads overlapped
nduring=$(awk -v final="$final" '$1 == "ok" && $2 + 0 < final + 0' "$TMP/reads" | wc -l)
check "the reader read while the run wrote ($nduring of $nreads reads saw it part-way)" \
    [ "$nduring" -ge 5 ]
if [ "$nmid" -eq 0 ]; then ok "the reader saw no error while the run was writing ($nreads reads)"
else fail "the reader saw $nmid errors while the run was writing" "$(grep '^mid' "$TMP/read_errors" | head -n 2 | tr '\n' '|')"; fi
if [ "$nend" -eq 0 ]; then ok "the reader saw no error while gatelab closed the database"
else fail "the reader saw $nend errors after the last commit, while gatelab closed the database" \
    "$(grep '^end' "$TMP/read_errors" | head -n 2 | tr '\n' '|')"; fi
first=$(awk '$1 == "ok" { print $2; exit }' "$TMP/reads")
last=$(awk '$1 == "ok" { v = $2 } END { print v }' "$TMP/reads")
check "the reader saw the metrics count grow (${first:-none} -> ${last:-none}, final $final)" \
    [ "${first:-0}" -lt "${last:-0}" ] 2>/dev/null
row=$(sql "$R" "select group_concat(status) from runs")
check "both runs finished (got '$row')" [ "$row" = "finished,finished" ]
ic=$(integrity "$R")
check "integrity_check says ok (got '$ic')" [ "$ic" = ok ]

# ---------------------------------------------------------------------------
echo "# SIGINT, SIGTERM, SIGHUP; SIGPIPE and other failed writes to stdout; SIGXFSZ"
# ---------------------------------------------------------------------------
# SIGHUP (the terminal closed, tmux killed) stops like the other two
for sig in INT TERM HUP; do
    D=$TMP/sig$sig.db
    case $sig in INT) want=130 ;; TERM) want=143 ;; HUP) want=129 ;; esac
    # shellcheck disable=SC2086
    bg run $MICRO --arms soft,random --steps 100000 --eval-every 50 --db "$D"
    spid=$PID
    if wait_until 300 has_rows "$D" "select count(*) from metrics where key = 'train_loss'"; then
        ok "SIG$sig: the run is storing metrics"
    else
        fail "SIG$sig: the run stored metrics within 30 s" "stderr: $(head -n 1 "$TMP/bg.err")"
    fi
    kill -"$sig" "$spid" 2>/dev/null
    wait_exit "$spid" 30
    check "SIG$sig: exit status $want (got $RC)" [ "$RC" -eq "$want" ]
    check "SIG$sig: stderr says SIG$sig [$(head -n 1 "$TMP/bg.err")]" grep -q "SIG$sig" "$TMP/bg.err"
    row=$(sql "$D" "select count(*) || ' ' || sum(status = 'stopped') from runs")
    check "SIG$sig: every run is stopped (runs, stopped: $row)" [ "$row" = "2 2" ]
    for r in $(sql "$D" "select id from runs order by id"); do
        fs=$(sql "$D" "select final_step from runs where id = $r")
        lt=$(sql "$D" "select max(step) from metrics where run = $r and key = 'train_loss'")
        check "SIG$sig run $r: last train_loss step ${lt:-none} = final step ${fs:-none}" \
            eval '[ -n "$fs" ] && [ "$lt" = "$fs" ]'
        # shellcheck disable=SC2034  # used in the eval below
        ck=$(sql "$D" "select path from checkpoints where run = $r and step = ${fs:-0} and resumable = 1 limit 1")
        check "SIG$sig run $r: resumable checkpoint row at step ${fs:-none}, file present" \
            eval '[ -n "$ck" ] && [ -s "$ck" ]'
    done
    ic=$(integrity "$D")
    check "SIG$sig: integrity_check says ok (got '$ic')" [ "$ic" = ok ]
done

# A library thread that exists before main (OpenBLAS's pool) does not block
# the stop signals: one the kernel hands to it must still stop the session
# cleanly. tgkill aims it at that thread (x86_64 and aarch64 syscall numbers).
case $(uname -m) in x86_64) TGKILL=234 ;; aarch64) TGKILL=131 ;; *) TGKILL= ;; esac
for sig in INT HUP; do
    case $sig in INT) signo=2; want=130 ;; HUP) signo=1; want=129 ;; esac
    D=$TMP/sigthread$sig.db
    # shellcheck disable=SC2086
    bg run $MICRO --arms soft --steps 100000 --eval-every 50 --db "$D"
    spid=$PID
    wait_until 300 has_rows "$D" "select count(*) from metrics where key = 'train_loss'"
    # a thread other than main with the signal (its bit of SigBlk) not blocked
    lib=""
    for t in /proc/"$spid"/task/*; do
        tid=${t##*/}
        [ "$tid" = "$spid" ] && continue
        blk=$(awk '/^SigBlk/ { print $2 }' "$t/status" 2>/dev/null)
        [ -n "$blk" ] || continue
        if [ $((0x$blk & (1 << (signo - 1)))) -eq 0 ]; then lib=$tid; break; fi
    done
    if [ -z "$TGKILL" ] || [ -z "$lib" ] || ! command -v "$PY" >/dev/null 2>&1; then
        kill -INT "$spid" 2>/dev/null
        wait_exit "$spid" 30
        skip "SIG$sig to a library thread (no such thread here, no tgkill number for $(uname -m), or no $PY to call it)"
    else
        $PY -c "import ctypes, sys; sys.exit(ctypes.CDLL(None).syscall($TGKILL, $spid, $lib, $signo) != 0)"
        wait_exit "$spid" 30
        check "SIG$sig sent to library thread $lib: exit $want (got $RC)" [ "$RC" -eq "$want" ]
        check "... and the run is stored stopped" [ "$(sql "$D" "select group_concat(status) from runs")" = stopped ]
    fi
done

# nohup: a SIGHUP ignored at start stays ignored (the run outlives its
# terminal); SIGINT still stops it
D=$TMP/nohup.db
# shellcheck disable=SC2086
(trap '' HUP; exec "$BIN" run $MICRO --arms soft --steps 100000 --eval-every 50 --db "$D" >"$TMP/bg.out" 2>"$TMP/bg.err") &
spid=$!
BGPIDS="$BGPIDS $spid"
if wait_until 300 has_rows "$D" "select count(*) from metrics where key = 'train_loss'"; then
    kill -HUP "$spid" 2>/dev/null
    sleep 1
    n1=$(sql "$D" "select count(*) from metrics where key = 'train_loss'")
    sleep 0.5
    n2=$(sql "$D" "select count(*) from metrics where key = 'train_loss'")
    check "nohup: SIGHUP is ignored, training goes on ($n1 -> $n2 train_loss rows)" \
        eval 'alive "$spid" && [ "${n2:-0}" -gt "${n1:-0}" ]'
    kill -INT "$spid" 2>/dev/null
    wait_exit "$spid" 30
    check "nohup: SIGINT still stops it, exit 130 (got $RC)" [ "$RC" -eq 130 ]
else
    fail "nohup: the run stored metrics within 30 s" "stderr: $(head -n 1 "$TMP/bg.err")"
    wait_exit "$spid" 0
fi

# SIGPIPE: the reader of stdout goes away after three lines. gatelab ignores
# SIGPIPE itself, so what this shell's parent did with it does not matter.
D=$TMP/pipe.db
# shellcheck disable=SC2086
{ "$BIN" run $MICRO --arms soft,random --headless --steps 100000 --eval-every 50 --db "$D" 2>"$TMP/pipe.err"
  echo $? >"$TMP/pipe.rc"; } | head -n 3 >/dev/null
rc=$(cat "$TMP/pipe.rc" 2>/dev/null)
check "| head -n 3: exit 141 (got ${rc:-none})" [ "${rc:-0}" = 141 ]
check "| head -n 3: one line on stderr naming stdout [$(head -n 1 "$TMP/pipe.err")]" \
    eval '[ "$(nlines "$TMP/pipe.err")" = 1 ] && grep -q "^gatelab: stdout: Broken pipe" "$TMP/pipe.err"'
v=$(sql "$D" "select count(*) || ' ' || sum(status = 'stopped') || ' ' || sum(exists (select 1 from checkpoints c
    where c.run = r.id and c.step = r.final_step and c.resumable = 1)) from runs r")
check "| head -n 3: both runs stopped, each with a resumable checkpoint at its final step (runs, stopped, with: $v)" \
    [ "$v" = "2 2 2" ]

# a full disk under stdout: nothing is started, exit 1 naming stdout
if [ -w /dev/full ]; then
    # shellcheck disable=SC2086
    "$BIN" run $MICRO --arms soft --headless --steps 100 --db "$TMP/full.db" >/dev/full 2>"$ERR"
    rc=$?
    check "run > /dev/full: exit 1, stderr names stdout, no database (got $rc: $(head -n 1 "$ERR"))" \
        eval '[ "$rc" = 1 ] && grep -q "stdout: No space left" "$ERR" && [ ! -e "$TMP/full.db" ]'
    "$BIN" ls --db "$TMP/pipe.db" >/dev/full 2>"$ERR"
    rc=$?
    check "ls > /dev/full: exit 1, stderr names stdout (got $rc: $(head -n 1 "$ERR"))" \
        eval '[ "$rc" = 1 ] && grep -q "^gatelab: stdout: " "$ERR"'
fi
"$BIN" ls --db "$TMP/pipe.db" >&- 2>"$ERR"
rc=$?
check "ls with stdout closed: exit 1 naming stdout (got $rc: $(head -n 1 "$ERR"))" \
    eval '[ "$rc" = 1 ] && grep -q "^gatelab: stdout: " "$ERR"'

# SIGXFSZ: past a file-size limit a write fails (EFBIG) instead of killing
# the process (153 = 128 + SIGXFSZ); what the failure does to the run is the
# store's and the checkpoints' business
# shellcheck disable=SC2086
(ulimit -f 256; exec "$BIN" run $MICRO --arms soft --headless --steps 5000 --eval-every 50 \
    --save-every 100 --db "$TMP/fsz.db" >"$OUT" 2>"$ERR")
rc=$?
check "ulimit -f: not killed by SIGXFSZ, a runtime error instead (exit $rc: $(head -n 1 "$ERR"))" \
    eval '[ "$rc" -ge 1 ] && [ "$rc" -lt 128 ]'

# ---------------------------------------------------------------------------
echo "# scripted commands: swap, k, pause, fork"
# ---------------------------------------------------------------------------
S=$TMP/swap.db
# shellcheck disable=SC2086
run_fg "--arms soft,random --at 50:swap:topk@soft" run $MICRO --arms soft,random --steps 100 --eval-every 10 \
    --at 50:swap:topk@soft --db "$S"
soft=$(sql "$S" "select id from runs where name = 'soft'")
rnd=$(sql "$S" "select id from runs where name = 'random'")
v=$(sql "$S" "select group_concat(step || ':' || mode) from events where run = ${soft:-0} and kind = 'swap'")
check "soft: one swap event, at step 50, to topk (got '$v')" [ "$v" = "50:topk" ]
v=$(sql "$S" "select count(*) from events where run = ${rnd:-0} and kind = 'swap'")
check "random: no swap event (got $v)" [ "$v" = 0 ]
v=$(sql "$S" "select group_concat(from_step || '-' || coalesce(to_step, '') || ':' || mode, ' ') from
    (select * from segments where run = ${soft:-0} order by from_step)")
check "soft segments: 0-50 soft, 50-100 topk (got '$v')" [ "$v" = "0-50:soft 50-100:topk" ]
v=$(sql "$S" "select group_concat(from_step || '-' || coalesce(to_step, '') || ':' || mode, ' ') from segments where run = ${rnd:-0}")
check "random segments: 0-100 random (got '$v')" [ "$v" = "0-100:random" ]
v=$(sql "$S" "select count(*) || ' ' || sum(value > 0) from metrics where run = ${soft:-0} and key = 'gate_grad_norm' and step < 50")
check "soft gate_grad_norm > 0 before the swap (samples, positive: $v)" \
    sh -c "set -- $v; [ \"\$1\" -ge 3 ] && [ \"\$1\" = \"\$2\" ]"
v=$(sql "$S" "select count(*) || ' ' || sum(value = 0) from metrics where run = ${soft:-0} and key = 'gate_grad_norm' and step > 50")
check "soft gate_grad_norm exactly 0 after the swap to topk (samples, zero: $v)" \
    sh -c "set -- $v; [ \"\$1\" -ge 3 ] && [ \"\$1\" = \"\$2\" ]"
v=$(sql "$S" "select count(*) || ' ' || sum(value > 0) from metrics where run = ${rnd:-0} and key = 'gate_grad_norm' and step > 50")
check "random gate_grad_norm still > 0 after step 50 (samples, positive: $v)" \
    sh -c "set -- $v; [ \"\$1\" -ge 3 ] && [ \"\$1\" = \"\$2\" ]"

KD=$TMP/k.db
# shellcheck disable=SC2086
run_fg "--at 30:k:2" run $MICRO --arms soft --steps 40 --eval-every 10 --at 30:k:2 --db "$KD"
v=$(sql "$KD" "select group_concat(step) from events where kind = 'set_k'")
check "set_k event at step 30 (got '$v')" [ "$v" = 30 ]
v=$(sql "$KD" "select group_concat(from_step || '-' || coalesce(to_step, '') || ':k' || k, ' ') from
    (select * from segments order by from_step)")
check "segments: 0-30 k4, then 30-40 k2 (got '$v')" [ "$v" = "0-30:k4 30-40:k2" ]

KO=$TMP/korder.db
# shellcheck disable=SC2086
run_fg "--at 35:freeze --at 30:k:2 (given out of step order)" run $MICRO --arms soft --steps 40 --eval-every 10 \
    --at 35:freeze --at 30:k:2 --db "$KO"
v=$(sql "$KO" "select group_concat(kind || '@' || step, ' ') from (select * from events where kind in ('set_k', 'freeze') order by step, id)")
check "commands apply at their own steps whatever their order: set_k@30 freeze@35 (got '$v')" [ "$v" = "set_k@30 freeze@35" ]

P=$TMP/pause.db
# shellcheck disable=SC2086
bg run $MICRO --arms soft --steps 40 --eval-every 10 --at 20:pause:6 --db "$P"
ppid=$PID
if wait_until 150 has_rows "$P" "select count(*) from events where kind = 'pause'"; then
    ok "a pause event is stored"
    sleep 0.5
    s1=$(sql "$P" "select max(step) from metrics where key = 'train_loss'")
    c1=$(cpu_ticks "$ppid")
    st=$(sql "$P" "select status from runs")
    sleep 2
    s2=$(sql "$P" "select max(step) from metrics where key = 'train_loss'")
    c2=$(cpu_ticks "$ppid")
    still=$(sql "$P" "select count(*) from events where kind = 'resume'")
    check "the run reads 'paused' while paused (got '$st')" [ "$st" = paused ]
    check "the step stays at 20 for 2 s while paused ($s1 -> $s2)" eval '[ "$s1" = 20 ] && [ "$s2" = 20 ]'
    check "the pause was still on when the 2 s sample ended" [ "$still" = 0 ]
    if [ -n "$c1" ] && [ -n "$c2" ]; then
        check "CPU time over 2 s of pause < 0.1 s ($((c2 - c1)) ticks at $TCK/s)" [ $(((c2 - c1) * 10)) -lt "$TCK" ]
    else
        fail "CPU time of the paused process could not be read from /proc/$ppid/stat"
    fi
else
    fail "a pause event is stored within 15 s" "stderr: $(head -n 1 "$TMP/bg.err")"
fi
wait_exit "$ppid" 30
check "the paused run resumes by itself and exits 0 (got $RC)" [ "$RC" -eq 0 ]
v=$(sql "$P" "select group_concat(kind || '@' || step, ' ') from (select * from events where kind in ('pause', 'resume') order by id)")
check "events pause@20 resume@20 (got '$v')" [ "$v" = "pause@20 resume@20" ]
v=$(sql "$P" "select cast(round((julianday(b.time) - julianday(a.time)) * 86400) as int) from events a, events b
    where a.kind = 'pause' and b.kind = 'resume'")
check "the pause lasted about 6 s (got ${v:-?} s)" eval '[ "${v:-0}" -ge 5 ] && [ "${v:-0}" -le 8 ]'
row=$(sql "$P" "select status || ' ' || final_step from runs")
check "the paused run finished at step 40 (got '$row')" [ "$row" = "finished 40" ]

F=$TMP/fork.db
# shellcheck disable=SC2086
run_fg "--at 30:fork:dense@random" run $MICRO --arms soft,random --steps 60 --eval-every 10 \
    --at 30:fork:dense@random --db "$F"
rnd=$(sql "$F" "select id from runs where name = 'random'")
v=$(sql "$F" "select count(*) from runs")
check "the fork adds a third run (runs: $v)" [ "$v" = 3 ]
v=$(sql "$F" "select parent_run || ' ' || mode || ' ' || status || ' ' || start_step || ' ' || final_step from runs where parent_run is not null")
check "the fork: parent random (run $rnd), dense, finished, steps 30..60 (got '$v')" [ "$v" = "$rnd dense finished 30 60" ]
v=$(sql "$F" "select min(m.step) || '-' || max(m.step) from metrics m join runs r on r.id = m.run
    where r.parent_run is not null and m.key = 'train_loss'")
check "the fork's train_loss runs from step 31 to 60 (got '$v')" [ "$v" = "31-60" ]
v=$(sql "$F" "select group_concat(step) from events where run = ${rnd:-0} and kind = 'fork'")
check "a fork event on the random run at step 30 (got '$v')" [ "$v" = 30 ]

# ---------------------------------------------------------------------------
echo "# every query of sessions/queries.sql on a short real run"
# ---------------------------------------------------------------------------
Q=$TMP/q.db
# shellcheck disable=SC2086
run_fg "soft,random,dense, 300 steps, swap at 150" run $MICRO --arms soft,random,dense --steps 300 --eval-every 50 \
    --at 150:swap:topk@soft --db "$Q"
# a second session that crashes (for failed_runs)
# shellcheck disable=SC2086
bg run $MICRO --arms soft --steps 100000 --db "$Q"
qpid=$PID
wait_until 300 has_rows "$Q" "select count(*) from metrics m join runs r on r.id = m.run where r.session = 2"
# a command sent from another process (for the commands queries)
"$BIN" send 2 freeze --db "$Q" --wait 120 >"$OUT" 2>"$ERR"
check "send freeze to the second session: applied ($(cat "$OUT"))" grep -q '^applied at step' "$OUT"
kill -9 "$qpid" 2>/dev/null
{ wait "$qpid"; } 2>/dev/null
"$BIN" ls --db "$Q" >/dev/null 2>&1
v=$(sql "$Q" "select group_concat(status) from runs where session = 2")
check "the second session's run is crashed (got '$v')" [ "$v" = crashed ]
# a third session with mixture-of-experts arms (for router_learned_vs_random)
# shellcheck disable=SC2086
run_fg "dense,dense+moe,dense+moe-random, 40 steps" run $MICRO --arms dense,dense+moe,dense+moe-random \
    --steps 40 --eval-every 20 --db "$Q"

qsoft=$(sql "$Q" "select id from runs where session = 1 and name = 'soft'")
qrnd=$(sql "$Q" "select id from runs where session = 1 and name = 'random'")
qdense=$(sql "$Q" "select id from runs where session = 1 and name = 'dense'")
if [ ! -f "$QUERIES" ]; then
    fail "$QUERIES exists"
else
    sqlite3 -bail "$Q" <"$QUERIES" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$ERR" ]; then ok "the whole of $QUERIES runs (exit 0, no stderr)"
    else fail "the whole of $QUERIES runs (exit $rc)" "stderr: $(head -n 1 "$ERR")"; fi
    names=$(sed -n 's/^-- name: *\([^ ]*\).*/\1/p' "$QUERIES")
    check "$QUERIES has named queries ($(echo "$names" | wc -w | tr -d ' '))" [ -n "$names" ]
    for name in $names; do
        awk -v want="$name" '/^-- name:/ { on = ($3 == want) } on' "$QUERIES" >"$TMP/q_$name.sql"
        sqlite3 -bail -header -csv "$Q" <"$TMP/q_$name.sql" >"$TMP/q_$name.csv" 2>"$ERR"
        rc=$?
        rows=$(($(nlines "$TMP/q_$name.csv") - 1))
        if [ "$rc" -eq 0 ] && [ ! -s "$ERR" ] && [ "$rows" -ge 1 ]; then ok "query $name: $rows rows"
        else fail "query $name: exit $rc, $rows rows (want >= 1)" "stderr: $(head -n 1 "$ERR")"; fi
    done
fi
# col NAME COLUMN [WHERE_COLUMN WHERE_VALUE]: values of a column of query NAME's CSV
col() {
    awk -F, -v c="$2" -v wc="${3:-}" -v wv="${4:-}" '
        NR == 1 { for (i = 1; i <= NF; i++) { if ($i == c) k = i; if ($i == wc) w = i }; next }
        k && (wc == "" || $w == wv) { print $k }' "$TMP/q_$1.csv" 2>/dev/null
}
# all_num NAME COLUMN TEST [WHERE_COLUMN WHERE_VALUE]: at least one value, every value numeric and passing TEST (awk on v)
all_num() {
    col "$1" "$2" "${4:-}" "${5:-}" | awk "BEGIN { bad = 0; n = 0 } { n++; v = \$0 + 0; if (\$0 == \"\" || !($3)) bad++ } END { exit !(n > 0 && bad == 0) }"
}
check "run_overview: val_ppl > 1 for every finished run [$(col run_overview val_ppl status finished | tr '\n' ' ')]" \
    all_num run_overview val_ppl "v > 1" status finished
check "run_overview: f1 in [0,1] for soft [$(col run_overview f1 run "$qsoft")]" all_num run_overview f1 "v >= 0 && v <= 1" run "$qsoft"
check "run_overview: f1 in [0,1] for random [$(col run_overview f1 run "$qrnd")]" all_num run_overview f1 "v >= 0 && v <= 1" run "$qrnd"
check "run_overview: tokens_per_s > 0 for every finished run" all_num run_overview tokens_per_s "v > 0" status finished
check "throughput: tokens_per_s > 0 for every finished run [$(col throughput tokens_per_s status finished | tr '\n' ' ')]" \
    all_num throughput tokens_per_s "v > 0" status finished
check "throughput: steps_per_s > 0 for every finished run" all_num throughput steps_per_s "v > 0" status finished
check "learned_vs_random: soft vs random, both ppl > 1" \
    sh -c "[ \"\$(awk -F, 'NR > 1 { print \$3, \$6 }' '$TMP/q_learned_vs_random.csv')\" = 'soft random' ]"
check "learned_vs_random: learned_ppl > 1" all_num learned_vs_random learned_ppl "v > 1"
v=$(awk -F, 'NR > 1 { print $1 ":" $3 ":" $4 }' "$TMP/q_router_learned_vs_random.csv" 2>/dev/null | tr '\n' ' ')
check "router_learned_vs_random: one row, session 3, mode dense, 4 experts (got '$v')" [ "$v" = "3:dense:moe4 " ]
check "router_learned_vs_random: both ppl > 1" \
    sh -c "awk -F, 'NR > 1 && \$6 > 1 && \$8 > 1 && \$11 > 1 { n++ } END { exit n != 1 }' '$TMP/q_router_learned_vs_random.csv'"
check "learned_vs_random: random_ppl > 1" all_num learned_vs_random random_ppl "v > 1"
check "gate_over_time: f1 in [0,1] on every soft row" all_num gate_over_time f1 "v >= 0 && v <= 1" run "$qsoft"
check "gate_over_time: f1 in [0,1] on every random row" all_num gate_over_time f1 "v >= 0 && v <= 1" run "$qrnd"
check "gate_over_time: mass_kept in [0,1] on every soft row" all_num gate_over_time mass_kept "v >= 0 && v <= 1" run "$qsoft"
v=$(col gate_over_time run | grep -c "^$qdense\$")
check "gate_over_time: no rows for the dense arm, as its comment says (got $v)" [ "$v" = 0 ]
v=$(awk -F, 'NR > 1 { print $3 ":" $4 ":" $7 ":" $9 }' "$TMP/q_swap_train_loss.csv" 2>/dev/null | tr '\n' ' ')
check "swap_train_loss: the swap at 150 to topk, 100 losses before and 100 after (got '$v')" [ "$v" = "150:topk:100:100 " ]
v=$(awk -F, -v r="$qsoft" 'NR > 1 && $1 == r { print $3 "-" $4 ":" $5 }' "$TMP/q_gate_segments.csv" 2>/dev/null | tr '\n' ' ')
check "gate_segments: soft 0-150 soft, 150-300 topk (got '$v')" [ "$v" = "0-150:soft 150-300:topk " ]
v=$(col failed_runs status | tr '\n' ' ')
check "failed_runs: the crashed run (got '$v')" [ "$v" = "crashed " ]
v=$(col failed_runs last_event)
check "failed_runs: its last event is the crash error (got '$v')" matches "$v" '^"?error'
nck=0; nmissing=0
for p in $(col checkpoints path); do
    nck=$((nck + 1))
    [ -s "$p" ] || nmissing=$((nmissing + 1))
done
check "checkpoints: every listed file exists ($nck listed, $nmissing missing)" eval '[ "$nck" -ge 3 ] && [ "$nmissing" = 0 ]'

# ---------------------------------------------------------------------------
echo "# bad databases"
# ---------------------------------------------------------------------------
# A small real gatelab database (its process has exited; its -wal file stays).
SMALL=$TMP/small.db
# shellcheck disable=SC2086
run_fg "a small real database" run $MICRO --arms soft --steps 10 --eval-every 10 --db "$SMALL"

# bad_db DESC NAME WHAT DBFILE ARGS...: gatelab ARGS must exit non-zero (not
# by a signal) with exactly one line on stderr naming NAME and matching WHAT
# (extended regex, case-insensitive); DBFILE must keep its bytes and get no
# -wal / -shm file next to it unless it had one (gatelab keeps the WAL file of
# its own databases); a DBFILE that did not exist must not appear.
bad_db() {
    d=$1; name=$2; what=$3; db=$4; shift 4
    had_wal=0
    if [ -e "$db-wal" ] || [ -e "$db-shm" ]; then had_wal=1; fi
    existed=0
    if [ -e "$db" ]; then existed=1; cp "$db" "$TMP/bad.copy"; fi
    $RUNAS "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    msg=$(head -n 1 "$ERR")
    if [ "$rc" -eq 0 ]; then fail "$d: exit 0, expected an error" "stderr: $msg"
    elif [ "$rc" -ge 128 ]; then fail "$d: killed by a signal (exit $rc)" "stderr: $msg"
    elif [ "$(nlines "$ERR")" -ne 1 ]; then fail "$d: $(nlines "$ERR") lines on stderr, expected 1" "$(head -n 3 "$ERR" | tr '\n' '|')"
    elif ! grep -qF -- "$name" "$ERR"; then fail "$d: the error does not name '$name'" "stderr: $msg"
    elif ! grep -Eiq -- "$what" "$ERR"; then fail "$d: the error does not say /$what/" "stderr: $msg"
    elif [ "$existed" = 1 ] && ! cmp -s "$db" "$TMP/bad.copy"; then fail "$d: the database file changed" "stderr: $msg"
    elif [ "$existed" = 0 ] && [ -e "$db" ]; then fail "$d: the missing database was created" "stderr: $msg"
    elif [ "$had_wal" = 0 ] && { [ -e "$db-wal" ] || [ -e "$db-shm" ] || [ -e "$db-journal" ]; }; then fail "$d: left a -wal, -shm or -journal file" "stderr: $msg"
    else ok "$d  [$msg]"; fi
    [ "$had_wal" = 1 ] || rm -f "$db-wal" "$db-shm" "$db-journal"
}
# usage_err DESC NAME ARGS...: exit status 2, one line on stderr naming NAME
usage_err() {
    d=$1; name=$2; shift 2
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    msg=$(head -n 1 "$ERR")
    if [ "$rc" -ne 2 ]; then fail "$d: exit $rc, want 2 (usage error)" "stderr: $msg"
    elif [ "$(nlines "$ERR")" -ne 1 ]; then fail "$d: $(nlines "$ERR") lines on stderr, expected 1" "$(head -n 3 "$ERR" | tr '\n' '|')"
    elif ! grep -qF -- "$name" "$ERR"; then fail "$d: the error does not name '$name'" "stderr: $msg"
    elif grep -Eq '^(step |summary:|checkpoint |event )' "$OUT"; then fail "$d: training progress despite the error" "stdout: $(head -n 1 "$OUT")"
    else ok "$d  [$msg]"; fi
}

NOTDB="not a (sqlite|gatelab)|not a database"
printf 'hello, I am a text file\nnot a database\n' >"$TMP/text.db"
# shellcheck disable=SC2086
{
bad_db "a text file as --db (run)" "$TMP/text.db" "$NOTDB" "$TMP/text.db" run $MICRO --arms soft --steps 5 --db "$TMP/text.db"
bad_db "a text file as --db (ls)"  "$TMP/text.db" "$NOTDB" "$TMP/text.db" ls --db "$TMP/text.db"
sqlite3 "$TMP/other.db" 'create table t(x)'
bad_db "another program's SQLite db (run)" "$TMP/other.db" "not a gatelab" "$TMP/other.db" run $MICRO --arms soft --steps 5 --db "$TMP/other.db"
bad_db "another program's SQLite db (ls)"  "$TMP/other.db" "not a gatelab" "$TMP/other.db" ls --db "$TMP/other.db"
cp "$SMALL" "$TMP/newer.db"
sqlite3 "$TMP/newer.db" 'pragma user_version=999'
rm -f "$TMP/newer.db-wal" "$TMP/newer.db-shm"
bad_db "a gatelab db with a newer schema (run)" "$TMP/newer.db" "newer|version" "$TMP/newer.db" run $MICRO --arms soft --steps 5 --db "$TMP/newer.db"
bad_db "a gatelab db with a newer schema (ls)"  "$TMP/newer.db" "newer|version" "$TMP/newer.db" ls --db "$TMP/newer.db"
bad_db "a gatelab db with a newer schema (resume)" "$TMP/newer.db" "newer|version" "$TMP/newer.db" resume 1 --db "$TMP/newer.db"
bad_db "ls of a missing database" "$TMP/missing.db" "no database" "$TMP/missing.db" ls --db "$TMP/missing.db"
bad_db "show of a missing run" "9999" "no run|not found|no such" "$SMALL" show 9999 --db "$SMALL"
bad_db "resume of a finished run is refused" "finished" "resum" "$SMALL" resume 1 --db "$SMALL"
bad_db "export --step without a checkpoint there" "7" "no checkpoint|checkpoint" "$SMALL" export 1 --step 7 --db "$SMALL" --out "$TMP/nostep.safetensors"
check "  ... and no --out file appears" [ ! -e "$TMP/nostep.safetensors" ]
}

# A read-only directory. Root ignores permissions: run as nobody when setpriv
# can, else say so.
RO=$TMP/ro
mkdir -p "$RO"
cp "$SMALL" "$RO/real.db"
chmod 666 "$RO/real.db"
chmod 555 "$RO"
AS=""
note=""
if touch "$RO/.probe" 2>/dev/null; then
    rm -f "$RO/.probe"
    if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && chmod 755 "$TMP" \
        && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN" 2>/dev/null \
        && ! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c ": >'$RO/.probe'" 2>/dev/null; then
        AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
        note=" (as uid 65534)"
    else
        note="root"
    fi
fi
if [ "$note" = root ]; then
    # a check that cannot run here is skipped, never counted as passed
    skip "a db in a read-only directory (root, no setpriv: permissions not enforced)"
    skip "a new db in a read-only directory (root, no setpriv: permissions not enforced)"
else
    # shellcheck disable=SC2086
    {
    RUNAS=$AS
    bad_db "a db in a read-only directory$note" "$RO/real.db" "read-only|cannot write|permission" "$RO/real.db" \
        run $MICRO --arms soft --steps 5 --db "$RO/real.db"
    bad_db "a new db in a read-only directory$note" "$RO/new.db" "read-only|cannot write|permission" "$RO/new.db" \
        run $MICRO --arms soft --steps 5 --db "$RO/new.db"
    RUNAS=""
    }
    check "  ... and no checkpoint directory appears in it" [ ! -e "$RO/ckpt" ]
fi
chmod 755 "$RO"

# usage errors leave the database alone (no new session row)
cp "$SMALL" "$TMP/usage.db"
s0=$(sql "$TMP/usage.db" "select count(*) from sessions")
# shellcheck disable=SC2086
{
usage_err "--at beyond --steps" "--at" run $MICRO --arms soft --steps 100 --at 5000:stop --db "$TMP/usage.db"
usage_err "--at 10:bogus" "--at" run $MICRO --arms soft --steps 100 --at 10:bogus --db "$TMP/usage.db"
usage_err "--at with an unknown arm" "nosuch" run $MICRO --arms soft --steps 100 --at 10:stop@nosuch --db "$TMP/usage.db"
usage_err "--arms soft,,random" "--arms" run $MICRO --arms soft,,random --steps 100 --db "$TMP/usage.db"
}
s1=$(sql "$TMP/usage.db" "select count(*) from sessions")
check "usage errors add no session to the database (sessions $s0 -> $s1)" [ "$s0" = "$s1" ]

# ---------------------------------------------------------------------------
echo "# ls, show, export"
# ---------------------------------------------------------------------------
"$BIN" ls --db "$Q" >"$OUT" 2>"$ERR"
rc=$?
check "ls exits 0 (got $rc)" [ "$rc" -eq 0 ]
nr=0
for r in $(sql "$Q" "select id || ':' || status from runs order by id"); do
    id=${r%%:*}; stt=${r#*:}
    nr=$((nr + 1))
    check "ls lists run $id as $stt" \
        awk -v id="$id" -v st="$stt" '$1 == id { for (i = 2; i <= NF; i++) if ($i == st) f = 1 } END { exit !f }' "$OUT"
done
v=$(awk '$1 ~ /^[0-9]+$/' "$OUT" | wc -l | tr -d ' ')
check "ls prints one line per run ($v lines, $nr runs)" [ "$v" = "$nr" ]
soft=$(sql "$Q" "select id from runs where session = 1 and name = 'soft'")
"$BIN" show "$soft" --db "$Q" >"$OUT" 2>"$ERR"
rc=$?
check "show $soft exits 0 (got $rc)" [ "$rc" -eq 0 ]
for sec in segments events checkpoints; do
    check "show has a '$sec' section" grep -q "^$sec" "$OUT"
done
check "show lists the swap event" grep -Eq '^ *150 +swap' "$OUT"
check "show lists the topk segment from 150" grep -Eq '^ *150 .*topk' "$OUT"
check "show lists the checkpoint at step 300" grep -Eq '^ *300 .*step000300\.safetensors' "$OUT"
EXP=$TMP/export.safetensors
"$BIN" export "$soft" --db "$Q" --out "$EXP" >"$OUT" 2>"$ERR"
rc=$?
check "export $soft --out F exits 0 (got $rc)" [ "$rc" -eq 0 ]
if command -v "$PY" >/dev/null 2>&1; then
    "$PY" "$ST_READER" "$EXP" --meta step=300 --meta gate_mode=topk >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "st_reader validates the export (step 300, gate_mode topk)"
    else fail "st_reader validates the export (exit $rc)" "$(head -n 1 "$ERR")"; fi
    check "the export lists the weights (wte) and no optimiser state (adam.*)" \
        eval 'grep -q "^  wte " "$OUT" && ! grep -q "^  adam\." "$OUT"'
else
    skip "st_reader validates the export (no $PY)"
    skip "the export lists the weights and no optimiser state (no $PY)"
fi
rm -f "$EXP"
"$BIN" export "$soft" --step 300 --db "$Q" --out "$EXP" >"$OUT" 2>"$ERR"
rc=$?
check "export --step 300 exits 0 and writes the file (got $rc)" eval '[ "$rc" -eq 0 ] && [ -s "$EXP" ]'
bad_db "export --step 120 (no checkpoint at 120)" "120" "checkpoint" "$Q" export "$soft" --step 120 --db "$Q" --out "$TMP/x120.safetensors"
check "  ... and no --out file appears" [ ! -e "$TMP/x120.safetensors" ]

# A database given by a relative path, used later from another directory.
ABS_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# shellcheck disable=SC2086
(cd "$TMP" && "$ABS_BIN" run $MICRO --arms soft --steps 10 --eval-every 10 --db rel.db) >"$OUT" 2>"$ERR"
rc=$?
check "a run with a relative --db exits 0 (got $rc)" [ "$rc" -eq 0 ]
"$BIN" export 1 --db "$TMP/rel.db" --out "$TMP/rel.safetensors" >"$OUT" 2>"$ERR"
rc=$?
if [ "$rc" -eq 0 ] && [ -s "$TMP/rel.safetensors" ]; then ok "export from another directory finds the checkpoint of a relative --db"
else fail "export from another directory finds the checkpoint of a relative --db (exit $rc)" "stderr: $(head -n 1 "$ERR")"; fi

totals
[ "$failed" -eq 0 ]
