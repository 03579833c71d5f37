#!/bin/sh
# End-to-end tests of detach (issue 14 item 3; DESIGN.md section 12): `d` on
# the live screen gives the shell its prompt back while the session trains on
# in the background, in a process of its own with its output in the log file
# next to the database, to runs that end finished with every step stored and
# the same bits as a run that never detached; SIGINT and SIGTERM still stop
# the detached session cleanly, SIGHUP no longer reaches it; without a
# database `d` is refused on the screen. (SIGHUP to a screen or headless
# session: tests/test_screen.sh and tests/test_live.sh.)
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_detach.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then
# "N passed, N failed, N skipped"; exits non-zero if any check failed. POSIX
# sh. Needs tmux (skipped, honestly, without it) and the sqlite3 shell. Every
# wait polls with a timeout; the tmux server runs on a private socket and is
# killed on exit, and so is every detached session still running.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed, $skipped skipped"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v tmux >/dev/null 2>&1; then
    echo "  skip detach tests: no tmux (make deps installs it)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    finish
fi
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_detach.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_detach_$$
KIDS=""   # detached sessions: not our children, killed at the end if still there
tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
cleanup() {
    for p in $KIDS; do kill -9 "$p" 2>/dev/null; done
    tm kill-server 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A micro model: a step takes a millisecond or two. The first session has two
# arms of two threads each, so each arm's pool has a worker to park and start
# again; the others three arms of one thread.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-every 20 --eval-windows 4"
POOLED="--arms soft,random --threads 4"
UTF8="LANG=C.UTF-8 LC_ALL=C.UTF-8"
STEPS=1500

sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
cap() { tm capture-pane -p -t "$1" 2>/dev/null; }
wait_until() {
    _wu=$1; shift
    while [ "$_wu" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        _wu=$((_wu - 1))
    done
    return 1
}
shows() { cap "$1" | grep -qE -- "$2"; }
titles() { shows "$1" "Loss" && shows "$1" "Gate heatmap" && shows "$1" "q quit"; }
db_has() { [ "$(sql "$1" "$2")" -ge "${3:-1}" ] 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }
restored() { grep -q ' icanon' "$1" 2>/dev/null && grep -q ' echo ' "$1"; }
live_runs() { [ "$(sql "$1" "SELECT count(*) FROM runs WHERE status IN ('running', 'finished')")" = "$2" ]; }
finished_all() { [ "$(sql "$1" "SELECT count(*) FROM runs WHERE status = 'finished'")" = "$2" ]; }
train_rows() { sql "$1" "SELECT count(*) FROM metrics WHERE key = 'train_loss'"; }
# the pid the detach line names
child_of() { sed -n 's/.*trains on in the background (process \([0-9][0-9]*\)).*/\1/p' "$1" | head -n 1; }
# run NAME ARGS: gatelab ARGS in a shell in tmux session NAME (120x40); the
# command's status goes to $TMP/NAME.rc and the terminal modes after it to
# $TMP/NAME.stty, then the shell prints its prompt marker and waits
run() {
    tm new-session -d -s "$1" -x 120 -y 40 "sh"
    tm send-keys -t "$1" "cd $TMP && env $UTF8 $BIN $2 2>$TMP/$1.err; echo \$? > $TMP/$1.rc; stty -a > $TMP/$1.stty; echo PROMPT-BACK-\$(cat $TMP/$1.rc)" Enter
}
# the screen up and storing metrics
screen_up() { wait_until 200 titles "$1" && wait_until 200 db_has "$2" "SELECT count(*) FROM metrics WHERE key = 'train_loss'"; }

# ---------------------------------------------------------------------------
echo "d: the shell gets its prompt back, the session trains on to its end"
# ---------------------------------------------------------------------------
DB=$TMP/d.db
LOG=$TMP/d-session-1.log
# Both arms pause at step 300 (--at), so the `d` lands mid-run however fast
# or slow the machine is; once detached, `gatelab send` resumes them through
# the commands table and they train on to the end in the background.
run d "run --db $DB $MICRO $POOLED --steps $STEPS --at 300:pause"
if screen_up d "$DB" && wait_until 600 db_has "$DB" "SELECT count(*) FROM runs WHERE status = 'paused'" 2; then
    fpid=$(sql "$DB" "SELECT owner_pid FROM runs WHERE id = 1")
    tm send-keys -t d d
    check "d: the shell prompt comes back in the pane" wait_until 300 shows d "PROMPT-BACK-0"
    check "d: the terminal is restored" wait_until 30 restored "$TMP/d.stty"
    check "d: stderr says where the output goes and how to re-attach [$(head -n 1 "$TMP/d.err")]" \
        grep -q "detached: session 1 trains on in the background (process [0-9]*); output: $LOG; re-attach: gatelab watch 1 --db $DB" "$TMP/d.err"
    cpid=$(child_of "$TMP/d.err")
    KIDS="$KIDS $cpid"
    check "d: the foreground process ($fpid) has exited" wait_until 50 gone "${fpid:-0}"
    check "d: the session trains on in another process (${cpid:-none})" \
        eval '[ -n "$cpid" ] && [ "$cpid" != "$fpid" ] && alive "$cpid"'
    owners=$(sql "$DB" "SELECT group_concat(DISTINCT owner_pid) FROM runs")
    check "d: the runs are owned by it ($owners)" [ "$owners" = "$cpid" ]
    sid=$(awk '{ print $6 }' "/proc/${cpid:-0}/stat" 2>/dev/null)
    check "d: it leads a session of its own, no terminal (sid ${sid:-?})" [ "$sid" = "$cpid" ]
    n1=$(train_rows "$DB")
    "$BIN" send 1 resume --db "$DB" >"$TMP/d.send" 2>&1
    check "d: gatelab send resumes the detached session [$(head -n 1 "$TMP/d.send")]" [ $? -eq 0 ]
    check "d: its steps keep reaching the database (past $n1 train_loss rows)" \
        wait_until 300 db_has "$DB" "SELECT count(*) > ${n1:-0} FROM metrics WHERE key = 'train_loss'"
    st=$(sql "$DB" "SELECT group_concat(status) FROM runs")
    check "d: its runs are live, not crashed ($st)" live_runs "$DB" 2
    kill -HUP "$cpid" 2>/dev/null
    sleep 0.5
    check "d: a SIGHUP no longer reaches it (it trains on)" eval 'alive "$cpid" || finished_all "$DB" 2'
    check "d: the log gets the progress lines" wait_until 300 grep -q '^step ' "$LOG"
    check "d: the log says it detached" grep -q "session 1 detached from its terminal; training goes on in process $cpid" "$LOG"
    check "d: the detached session ends by itself" wait_until 1800 gone "${cpid:-0}"
    row=$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'finished' AND final_step = $STEPS) FROM runs")
    check "d: every run is finished at step $STEPS ($row)" [ "$row" = 2/2 ]
    check "d: every step's train_loss is stored ($(train_rows "$DB") rows)" [ "$(train_rows "$DB")" = $((2 * STEPS)) ]
    check "d: the log ends with the summary" grep -q "^session 1 in $DB" "$LOG"
    check "d: ... with every arm finished" [ "$(grep -c '^summary: arm .* | finished | '"$STEPS"' steps' "$LOG")" = 2 ]
    check "d: nothing of the screen in the log (no escape byte)" eval '! LC_ALL=C grep -q "$(printf "\033")" "$LOG"'
    ic=$(sql "$DB" "PRAGMA integrity_check")
    check "d: integrity_check says ok (got '$ic')" [ "$ic" = ok ]

    # the same session never detached: the same bits, step for step
    REF=$TMP/ref.db
    (cd "$TMP" && "$BIN" run --headless --db "$REF" $MICRO $POOLED --steps $STEPS >"$TMP/ref.out" 2>"$TMP/ref.err")
    check "reference run: exit 0" [ $? -eq 0 ]
    same=$(sql "$DB" "ATTACH '$REF' AS r;
        SELECT count(*) || ' ' || sum(a.value = b.value) FROM metrics a JOIN r.metrics b
         ON b.run = a.run AND b.key = a.key AND b.step = a.step
         WHERE a.key IN ('train_loss', 'val_loss', 'grad_norm')")
    want=$(sql "$REF" "SELECT count(*) || ' ' || count(*) FROM metrics WHERE key IN ('train_loss', 'val_loss', 'grad_norm')")
    check "detached and undetached runs store the same losses bit for bit (rows, equal: $same of $want)" \
        eval '[ -n "$cpid" ] && [ -n "$same" ] && [ "$same" = "$want" ]'
else
    fail "d: the screen came up and stored metrics" "$(cap d | head -3)"
fi

# ---------------------------------------------------------------------------
echo "d, then SIGINT or SIGTERM: the detached session stops cleanly"
# ---------------------------------------------------------------------------
for sig in INT TERM; do
    DB=$TMP/s$sig.db
    LOG=$TMP/s$sig-session-1.log
    run "s$sig" "run --db $DB $MICRO --threads 3 --steps 200000"
    if screen_up "s$sig" "$DB"; then
        tm send-keys -t "s$sig" d
        check "SIG$sig: d gives the prompt back" wait_until 300 shows "s$sig" "PROMPT-BACK-0"
        cpid=$(child_of "$TMP/s$sig.err")
        KIDS="$KIDS $cpid"
        check "SIG$sig: the detached session (${cpid:-none}) trains" eval '[ -n "$cpid" ] && alive "$cpid"'
        kill -"$sig" "${cpid:-0}" 2>/dev/null
        check "SIG$sig: it ends" wait_until 600 gone "${cpid:-0}"
        row=$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'stopped') FROM runs")
        check "SIG$sig: every run is stored stopped ($row)" [ "$row" = 3/3 ]
        check "SIG$sig: the log says so" grep -q "SIG$sig: runs stopped and stored" "$LOG"
        ck=$(sql "$DB" "SELECT count(*) FROM runs r WHERE EXISTS (SELECT 1 FROM checkpoints c
              WHERE c.run = r.id AND c.step = r.final_step AND c.resumable = 1)")
        check "SIG$sig: a resumable checkpoint per run at its final step ($ck)" [ "$ck" = 3 ]
    else
        fail "SIG$sig: the screen came up and stored metrics" "$(cap "s$sig" | head -3)"
    fi
done

# ---------------------------------------------------------------------------
echo "d after one arm has ended: the detached session still ends by itself"
# ---------------------------------------------------------------------------
# The ended arm's pool workers still wait on their condition variable; a
# fork that copied them left the child waiting forever in pool_destroy at
# the session's end (the first version did).
DB=$TMP/e.db
LOG=$TMP/e-session-1.log
run e "run --db $DB $MICRO $POOLED --steps 1500 --at 50:stop@random --at 300:pause@soft"
if screen_up e "$DB" && wait_until 600 db_has "$DB" "SELECT count(*) FROM runs WHERE status IN ('stopped', 'paused')" 2; then
    tm send-keys -t e d
    check "ended arm: d gives the prompt back" wait_until 300 shows e "PROMPT-BACK-0"
    cpid=$(child_of "$TMP/e.err")
    KIDS="$KIDS $cpid"
    "$BIN" send 1 resume@soft --db "$DB" >"$TMP/e.send" 2>&1
    check "ended arm: gatelab send resumes the other [$(head -n 1 "$TMP/e.send")]" [ $? -eq 0 ]
    check "ended arm: the detached session (${cpid:-none}) ends by itself" \
        eval '[ -n "$cpid" ] && wait_until 1800 gone "$cpid"'
    row=$(sql "$DB" "SELECT group_concat(status || ' ' || final_step, ', ') FROM (SELECT * FROM runs ORDER BY id)")
    check "ended arm: soft finished at 1500, random stopped at 50 ($row)" [ "$row" = "finished 1500, stopped 50" ]
    check "ended arm: the log ends with the summary" grep -q "^session 1 in $DB" "$LOG"
else
    fail "ended arm: the screen came up, random stopped and soft paused" "$(cap e | head -3)"
fi

# ---------------------------------------------------------------------------
echo "d while paused: the arms stay paused in the background until stopped"
# ---------------------------------------------------------------------------
# A paused arm waits on its condition variable: the park must wake it, and
# the child must keep it paused (the commands table can resume it).
DB=$TMP/p.db
run p "run --db $DB $MICRO --threads 3 --steps 200000"
if screen_up p "$DB"; then
    tm send-keys -t p Space
    wait_until 100 db_has "$DB" "SELECT count(*) FROM runs WHERE status = 'paused'" 3
    tm send-keys -t p d
    check "paused: d gives the prompt back" wait_until 300 shows p "PROMPT-BACK-0"
    cpid=$(child_of "$TMP/p.err")
    KIDS="$KIDS $cpid"
    check "paused: the detached session (${cpid:-none}) is there" eval '[ -n "$cpid" ] && alive "$cpid"'
    n1=$(train_rows "$DB")
    sleep 1
    check "paused: its arms stay paused (status, train_loss rows $n1 -> $(train_rows "$DB"))" \
        eval '[ "$(sql "$DB" "SELECT group_concat(status) FROM runs")" = paused,paused,paused ] && [ "$(train_rows "$DB")" = "$n1" ]'
    kill -TERM "${cpid:-0}" 2>/dev/null
    check "paused: SIGTERM ends it" wait_until 600 gone "${cpid:-0}"
    row=$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'stopped') FROM runs")
    check "paused: every run is stored stopped ($row)" [ "$row" = 3/3 ]
else
    fail "paused: the screen came up and stored metrics" "$(cap p | head -3)"
fi

# ---------------------------------------------------------------------------
echo "d without a database: refused on the screen"
# ---------------------------------------------------------------------------
run nodb "run --no-telemetry $MICRO --steps 200000"
if wait_until 200 titles nodb; then
    tm send-keys -t nodb d
    check "no database: d says why it stays" wait_until 100 shows nodb "d: nothing is stored \(no database\)"
    check "no database: the screen stays up" eval 'shows nodb "Loss" && shows nodb "Gate heatmap"'
    tm send-keys -t nodb q
    wait_until 50 shows nodb "quit\? y/n"
    tm send-keys -t nodb y
    check "no database: q y still stops it (exit 0)" wait_until 300 shows nodb "PROMPT-BACK-0"
else
    fail "no database: the screen came up" "$(cap nodb | head -3)"
fi

finish
