#!/bin/sh
# Steering from outside through the commands table (issue 14, item 2;
# DESIGN §12), end to end through the binary: a headless session steered by
# `gatelab send` from another process — pause stops the steps and is an
# event, resume continues, a swap takes effect at an exact step (the event's
# step is the command's applied_step), a command that changes nothing, a k
# out of range, a command to an ended run and a row no word matches are
# rejected with a reason, bad input inserts no row, a session with no live
# owner is refused, a command queued behind a stop is rejected, and no
# command stays pending once the session is over.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_send.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh; needs the sqlite3 shell.
# Every wait polls a condition with a generous timeout: nothing is timed.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
totals() { echo "$passed passed, $failed failed"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_send.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
BGPIDS=""
cleanup() {
    for p in $BGPIDS; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1"
DB=$TMP/steer.db
OUT=$TMP/out
ERR=$TMP/err
# generous: the machine may be loaded; send returns as soon as it is decided
WAIT="--wait 120"

sql() { sqlite3 -cmd '.timeout 5000' "$DB" "$1" 2>>"$TMP/sql.err"; }

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

# send ARGS...: gatelab send, stdout in $OUT, stderr in $ERR, status in RC
send() { "$BIN" send "$@" >"$OUT" 2>"$ERR"; RC=$?; }

# the step of the newest train loss a run has stored
last_step() { sql "SELECT coalesce(max(step), 0) FROM metrics WHERE run = $1 AND key = 'train_loss'"; }
rows() { sql "SELECT count(*) FROM commands"; }
# is_status RUN STATUS
is_status() { [ "$(sql "SELECT status FROM runs WHERE id = $1")" = "$2" ]; }
# past RUN STEP: the run has stored a train loss beyond STEP
past() { [ "$(last_step "$1")" -gt "$2" ]; }
# beats RUN TIMES: the run's heartbeat (each store batch's commit) changes TIMES times
beats() {
    _n=$2
    _hb=$(sql "SELECT heartbeat FROM runs WHERE id = $1")
    while [ "$_n" -gt 0 ]; do
        wait_until 600 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT heartbeat FROM runs WHERE id = $1\")\" != '$_hb' ]" ||
            return 1
        _hb=$(sql "SELECT heartbeat FROM runs WHERE id = $1")
        _n=$((_n - 1))
    done
}

echo "# bad input before any session"
send
check "no arguments: usage error (status 2)" [ "$RC" = 2 ]
send 1 pause --db "$TMP/none.db"
check "a missing database: one line naming it, status 1" \
    sh -c "[ $RC = 1 ] && grep -q 'none.db' '$ERR' && [ ! -e '$TMP/none.db' ]"
send 1 bogus --db "$TMP/none.db"
check "a bad word is refused before the database is opened (status 2)" \
    sh -c "[ $RC = 2 ] && grep -q \"unknown command 'bogus'\" '$ERR'"

echo "# a headless session: arm 0 soft, arm 1 dense"
"$BIN" run --headless $MICRO --arms soft,dense --steps 10000000 --eval-every 100000 \
    --db "$DB" >"$TMP/run.out" 2>"$TMP/run.err" &
PID=$!
BGPIDS="$BGPIDS $PID"
if ! wait_until 1200 sh -c "[ -f '$DB' ] && [ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT count(DISTINCT run) FROM metrics WHERE key = 'train_loss' AND run IN (1, 2) AND step > 5\" 2>/dev/null)\" -ge 2 ] 2>/dev/null"; then
    fail "the session started training" "$(cat "$TMP/run.err")"
    totals
    exit 1
fi
S=$(sql "SELECT session FROM runs WHERE id = 1")
ok "the session started training (session $S)"

echo "# pause and resume every arm"
send "$S" pause --db "$DB" $WAIT
check "send pause: applied, one line, status 0 ($(cat "$OUT"))" \
    sh -c "[ $RC = 0 ] && grep -Eqx 'applied at step [0-9]+' '$OUT' && [ \$(wc -l <'$OUT') = 1 ]"
CMD=$(sql "SELECT max(id) FROM commands")
check "the row: every arm (run NULL), kind pause, applied with a step" \
    [ "$(sql "SELECT run IS NULL, kind, state, applied_step IS NOT NULL FROM commands WHERE id = $CMD")" = "1|pause|applied|1" ]
check "each arm has its pause event, from the commands table (detail 'sent')" \
    [ "$(sql "SELECT count(*) FROM events WHERE kind = 'pause' AND detail = 'sent' AND run IN (1, 2)")" = 2 ]
check "applied_step is the first arm's pause event step" \
    [ "$(sql "SELECT applied_step FROM commands WHERE id = $CMD")" = "$(sql "SELECT min(step) FROM events WHERE kind = 'pause' AND run IN (1, 2)")" ]
check "both runs are paused" wait_until 600 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT group_concat(status) FROM runs\")\" = 'paused,paused' ]"
P0=$(sql "SELECT step FROM events WHERE kind = 'pause' AND run = 1")
P1=$(sql "SELECT step FROM events WHERE kind = 'pause' AND run = 2")
# two more store batches committed while paused: every step done is stored
if beats 1 2; then
    check "paused, the steps stop where the pause took effect (run 1 at $P0, run 2 at $P1)" \
        [ "$(last_step 1) $(last_step 2)" = "$P0 $P1" ]
else
    fail "the heartbeat kept beating while paused"
fi
send "$S" pause@0 --db "$DB" $WAIT
check "pause of a paused arm changes nothing: rejected with why, status 1 ($(cat "$OUT"))" \
    sh -c "[ $RC = 1 ] && grep -q '^rejected: arm soft is already paused' '$OUT'"
send "$S" resume --db "$DB" $WAIT
check "send resume: applied" [ "$RC" = 0 ]
check "the steps advance again" wait_until 1200 past 1 "$P0"

echo "# swap at an exact step"
send "$S" swap:random@1 --db "$DB" $WAIT
CMD=$(sql "SELECT max(id) FROM commands")
STEP=$(sql "SELECT applied_step FROM commands WHERE id = $CMD")
check "send swap:random@1: applied at step $STEP" \
    sh -c "[ $RC = 0 ] && grep -qx 'applied at step $STEP' '$OUT'"
check "the swap event of run 2 is at the applied step" \
    [ "$(sql "SELECT step, detail FROM events WHERE run = 2 AND kind = 'swap'")" = "$STEP|dense -> random (sent)" ]
check "the row names run 2 and the mode" \
    [ "$(sql "SELECT run, kind, arg FROM commands WHERE id = $CMD")" = "2|swap|random" ]
check "the gate segment changes at that step" \
    [ "$(sql "SELECT mode FROM segments WHERE run = 2 AND from_step = $STEP")" = random ]
send "$S" swap:random@dense --db "$DB" $WAIT
check "the same swap again (arm by name) changes nothing: rejected ($(cat "$OUT"))" \
    sh -c "[ $RC = 1 ] && grep -q 'already runs the random gate' '$OUT'"
send "$S" k:999@0 --db "$DB" $WAIT
check "k out of 1..T: rejected with the range ($(cat "$OUT"))" \
    sh -c "[ $RC = 1 ] && grep -q 'must be 1..T=32' '$OUT'"

echo "# rows another process wrote by hand"
sql "INSERT INTO commands (session, kind, arg, requested_at) VALUES ($S, 'dance', NULL, strftime('%Y-%m-%dT%H:%M:%fZ'))"
CMD=$(sql "SELECT max(id) FROM commands")
check "a row with an unknown word is rejected by the owner, with why" \
    wait_until 1200 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT state, reason LIKE '%unknown command%' FROM commands WHERE id = $CMD\")\" = 'rejected|1' ]"

echo "# bad input inserts nothing"
N=$(rows)
send "$S" swap:nosuch@1 --db "$DB"
check "an unknown gate mode: one line, status 2" \
    sh -c "[ $RC = 2 ] && grep -q \"unknown gate mode 'nosuch'\" '$ERR' && [ \$(wc -l <'$ERR') = 1 ]"
send "$S" pause@7 --db "$DB"
check "an unknown arm: named, with the session's arms, status 2" \
    sh -c "[ $RC = 2 ] && grep -q \"session $S has no arm '7' (its arms: 0 soft, 1 dense)\" '$ERR'"
send 999 pause --db "$DB"
check "an unknown session: named, status 2" \
    sh -c "[ $RC = 2 ] && grep -q 'no session 999' '$ERR'"
send "$S" k:0 --db "$DB"
check "k 0: refused by the parser, status 2" [ "$RC" = 2 ]
send "$S" pause --db "$DB" --wait -1
check "a negative --wait: status 2" [ "$RC" = 2 ]
send "$S" pause --db "$DB" --bogus
check "an unknown option: status 2" [ "$RC" = 2 ]
check "none of them inserted a row" [ "$(rows)" = "$N" ]

echo "# a run that has ended"
send "$S" stop@1 --db "$DB" $WAIT
check "send stop@1: applied ($(cat "$OUT"))" [ "$RC" = 0 ]
check "run 2 is stopped" wait_until 600 is_status 2 stopped
check "its stop event is at the applied step" \
    [ "$(sql "SELECT applied_step FROM commands WHERE id = (SELECT max(id) FROM commands)")" = "$(sql "SELECT step FROM events WHERE run = 2 AND kind = 'stop'")" ]
send "$S" freeze@1 --db "$DB" $WAIT
check "a command to the ended run is rejected with why, status 1 ($(cat "$OUT"))" \
    sh -c "[ $RC = 1 ] && grep -Eq '^rejected: run 2 has ended \\(stopped' '$OUT'"
check "... and its row says so" \
    [ "$(sql "SELECT state, reason LIKE 'run 2 has ended%' FROM commands WHERE id = (SELECT max(id) FROM commands)")" = "rejected|1" ]
send "$S" freeze --db "$DB" $WAIT
check "every arm: the live arm applies it ($(cat "$OUT"))" \
    sh -c "[ $RC = 0 ] && grep -q '^applied at step' '$OUT'"
check "... only run 1 made a freeze event" \
    [ "$(sql "SELECT group_concat(run) FROM events WHERE kind = 'freeze'")" = 1 ]
send "$S" pause --db "$DB" --no-wait
check "--no-wait: queued, status 0 ($(cat "$OUT"))" \
    sh -c "[ $RC = 0 ] && grep -q '^command [0-9]* queued for session $S' '$OUT'"

echo "# the last arm stops; a command queued behind its stop"
send "$S" stop@0 --db "$DB" --no-wait
send "$S" unfreeze@0 --db "$DB" $WAIT
# rejected by the arm, or — when the session has already ended — refused
check "a command sent right behind a stop is rejected, not applied ($(cat "$OUT" "$ERR"))" \
    sh -c "[ $RC = 1 ] && { grep -q '^rejected: ' '$OUT' || grep -q 'no live process owns it' '$ERR'; }"
n=1200
while alive "$PID" && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
check "the session ends when its last arm has stopped" sh -c "! kill -0 $PID 2>/dev/null"
kill -9 "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
check "no unfreeze event was made" [ "$(sql "SELECT count(*) FROM events WHERE kind = 'unfreeze'")" = 0 ]
check "no command is left pending" [ "$(sql "SELECT count(*) FROM commands WHERE state = 'pending'")" = 0 ]
check "every decided row has a decision time; applied rows a step; rejected rows a reason" \
    [ "$(sql "SELECT count(*) FROM commands WHERE decided_at IS NULL OR (state = 'applied') <> (applied_step IS NOT NULL) OR (state = 'rejected' AND reason = '')")" = 0 ]
N=$(rows)
send "$S" pause --db "$DB" $WAIT
check "a session with no live owner is refused, naming it, status 1 ($(cat "$ERR"))" \
    sh -c "[ $RC = 1 ] && grep -q 'session $S: no live process owns it' '$ERR'"
check "... and nothing is inserted" [ "$(rows)" = "$N" ]
# a row written straight into the table of the ended session, two minutes ago
sql "INSERT INTO commands (session, kind, requested_at) VALUES ($S, 'pause', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-120 seconds'))"
send "$S" resume --db "$DB" $WAIT
check "a row nobody owns is rejected by the next process that opens the file" \
    [ "$(sql "SELECT state, reason FROM commands WHERE id = (SELECT max(id) FROM commands)")" = "rejected|no live process owns session $S" ]
check "the runs end stopped, not crashed" [ "$(sql "SELECT group_concat(status) FROM runs")" = "stopped,stopped" ]

echo "# the owner killed while a command waits for it"
# The owner is stopped (SIGSTOP) so the row stays pending, then killed: the
# waiting send must not wait out its --wait for a decision nobody will make
# (before, it printed "still pending" after the whole wait and exited 3).
DB=$TMP/killed.db
"$BIN" run $MICRO --arms soft --steps 2000000 --headless --db "$DB" >"$TMP/k.out" 2>&1 &
KPID=$!
BGPIDS="$BGPIDS $KPID"
check "a long headless run is training" wait_until 600 is_status 1 running
kill -STOP "$KPID"
"$BIN" send 1 freeze --db "$DB" --wait 100 >"$TMP/ks.out" 2>&1 &
SPID=$!
BGPIDS="$BGPIDS $SPID"
check "the command is pending" wait_until 600 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT state FROM commands\")\" = pending ]"
kill -9 "$KPID"
wait "$KPID" 2>/dev/null   # reaped: a zombie's pid still exists
t0=$(date +%s)
wait "$SPID"
SRC=$?
t1=$(date +%s)
check "send answers once the owner is gone: rejected, status 1 (got $SRC after $((t1 - t0)) s: $(head -n 1 "$TMP/ks.out"))" \
    sh -c "[ $SRC = 1 ] && grep -q '^rejected: no live process owns session 1' '$TMP/ks.out'"
check "... well before its --wait 100 ran out" [ $((t1 - t0)) -lt 60 ]
check "... and the run is marked crashed" is_status 1 crashed

totals
[ "$failed" -eq 0 ]
