#!/bin/sh
# Arms that advance together (issue 13 item 6; pace.h): in a session the
# arms' step counters stay within one evaluation interval of each other —
# pacing guarantees half of one (the slack) — whatever the arms cost per
# step, with forks and swaps, at any --threads, with the same bits at every
# thread count; a paused arm holds nobody back.
#
# What is asserted is the guarantee, read from the database, not a timing:
# an arm's step-S record is stored (wall_ms) only after the step, and a peer
# records its step-S' before pace lets the first start step S'+slack+1. So
# for every train_loss row of arm A (step S, wall W) and every other arm B
# still running then, B's highest step recorded at or before W is at least
# S - slack. The old binary (each arm max(1, threads/arms) threads, the
# kernel sharing the cores) let the dense arm run 100+ steps ahead here.
#
# Usage: GATELAB_BIN=build/release/gatelab sh tests/test_pace.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed".

BIN=${GATELAB_BIN:-build/release/gatelab}
passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
totals() { echo "$passed passed, $failed failed"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_pace.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
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

# A micro model (a few ms a step); eval every 20 steps: slack 10.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --eval-every 20 --headless"
SLACK=10
EVERY=20

sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }

# max_lag DB: the largest lag of one arm behind another (see the top)
max_lag() {
    sql "$1" "
WITH a AS (SELECT run, step, wall_ms FROM metrics WHERE key = 'train_loss'),
l AS (
  SELECT a.step AS s, rb.final_step AS bfinal,
         (SELECT MAX(b.step) FROM metrics b
           WHERE b.run = rb.id AND b.key = 'train_loss' AND b.wall_ms <= a.wall_ms) AS bstep
  FROM a JOIN runs rb ON rb.id <> a.run)
SELECT COALESCE(MAX(s - bstep), 0) FROM l WHERE bstep IS NOT NULL AND bstep < bfinal;"
}

# losses DB: every arm's train and val losses, full precision, by arm name
losses() {
    sql "$1" "SELECT r.name, m.key, m.step, printf('%.17g', m.value) FROM metrics m
              JOIN runs r ON r.id = m.run WHERE m.key IN ('train_loss', 'val_loss')
              ORDER BY r.name, m.key, m.step;"
}

# session DESC DB ARGS...: a foreground run; checks exit 0, every run
# finished, and the lag
session() {
    d=$1; db=$2; shift 2
    "$BIN" run $MICRO --db "$db" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$d: exit $rc" "stderr: $(head -n 2 "$TMP/err" | tr '\n' '|')"
        return
    fi
    n=$(sql "$db" "SELECT COUNT(*) FROM runs WHERE status <> 'finished'")
    if [ "$n" = 0 ]; then ok "$d: every arm finished"
    else fail "$d: $n runs did not finish"; fi
    lag=$(max_lag "$db")
    if [ -n "$lag" ] && [ "$lag" -le "$SLACK" ]; then
        ok "$d: no arm more than $lag steps behind another (slack $SLACK, interval $EVERY)"
    else
        fail "$d: an arm fell ${lag:-?} steps behind another (at most $SLACK allowed, interval $EVERY)"
    fi
}

echo "# three arms of different step costs (soft, random, dense)"
for th in 2 1 3; do
    session "--threads $th" "$TMP/t$th.db" --arms soft,random,dense --steps 600 --threads "$th"
done
losses "$TMP/t2.db" >"$TMP/l2"
for th in 1 3; do
    losses "$TMP/t$th.db" >"$TMP/l$th"
    if [ -s "$TMP/l2" ] && cmp -s "$TMP/l2" "$TMP/l$th"; then
        ok "--threads $th trains the same bits as --threads 2 ($(wc -l <"$TMP/l2") losses)"
    else
        fail "--threads $th and 2 differ in their losses"
    fi
done

echo "# a fork and a swap change who is slowest"
session "fork and swap" "$TMP/fork.db" --arms dense,soft --steps 600 --threads 2 \
    --at 100:fork:topk@soft --at 200:swap:soft@dense --at 300:swap:dense@soft
n=$(sql "$TMP/fork.db" "SELECT COUNT(*) FROM runs WHERE parent_run IS NOT NULL")
if [ "$n" = 1 ]; then ok "the fork became a third arm"; else fail "forked runs: ${n:-?}, wanted 1"; fi

echo "# a paused arm holds nobody back"
# (headless, a pause needs seconds: 600, ended early by `gatelab send ... resume`)
P=$TMP/pause.db
"$BIN" run $MICRO --db "$P" --arms soft,random,dense --steps 300 --threads 2 --at 30:pause:600@soft \
    >"$TMP/pout" 2>"$TMP/perr" &
PID=$!
BGPIDS="$BGPIDS $PID"
i=0
others=""
while [ "$i" -lt 1200 ]; do   # 120 s: a generous bound on a loaded machine
    others=$(sql "$P" "SELECT COUNT(*) FROM runs WHERE name IN ('random', 'dense') AND status = 'finished'" 2>/dev/null)
    [ "$others" = 2 ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
st=$(sql "$P" "SELECT status || ' ' || COALESCE((SELECT MAX(step) FROM metrics WHERE run = runs.id AND key = 'train_loss'), 0) FROM runs WHERE name = 'soft'")
if [ "$others" = 2 ] && [ "$st" = "paused 30" ]; then
    ok "random and dense finished 300 steps while soft stayed paused at 30"
else
    fail "with soft paused at 30: ${others:-0} of random, dense finished; soft: ${st:-?}"
fi
"$BIN" send 1 resume@soft --db "$P" >"$TMP/sout" 2>"$TMP/serr"
i=0
while kill -0 "$PID" 2>/dev/null && [ "$i" -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$PID" 2>/dev/null; then
    kill -9 "$PID" 2>/dev/null
    fail "the session did not end after soft was resumed"
else
    wait "$PID"
    rc=$?
    n=$(sql "$P" "SELECT COUNT(*) FROM runs WHERE status = 'finished'")
    if [ "$rc" = 0 ] && [ "$n" = 3 ]; then ok "resumed, soft caught up alone and finished (exit 0)"
    else fail "after the resume: exit $rc, $n of 3 runs finished" "$(head -n 2 "$TMP/serr" "$TMP/perr" | tr '\n' '|')"; fi
fi

totals
[ "$failed" -eq 0 ]
