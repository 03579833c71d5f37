#!/bin/sh
# End-to-end tests of a session's first minute (issue 11 item 8), through
# the binary: the early evaluations at steps 10, 25 and 50 (each only below
# --eval-every and --steps), stored like any evaluation in headless runs too;
# evaluations that leave training alone (the same train losses with or
# without them, and across a stop and resume); headless progress lines with
# percent done and the time left, and no progress bar in a stderr that is
# not a terminal (the bar on a terminal is checked by tests/test_screen.sh).
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_progress.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh (runs under dash); needs the
# sqlite3 shell. Micro models only: a few seconds in all.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    finish
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_progress.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1 --arms soft,dense"
sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
# run_ok DESC ARGS...: gatelab ARGS, stdout in $OUT, stderr in $ERR, exit 0
run_ok() {
    d=$1; shift
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "$d: exit 0"
    else fail "$d: exit $rc" "stderr: $(head -n 2 "$ERR" | tr '\n' '|')"; fi
}
# eval_steps DB RUN: the steps of the run's stored evaluations, "10,25,..."
eval_steps() {
    sql "$1" "select group_concat(step, ',') from (select step from metrics
        where run = $2 and key = 'val_loss' order by step)"
}

# ---------------------------------------------------------------------------
echo "# the schedule: early evaluations, then every --eval-every"
# ---------------------------------------------------------------------------
A=$TMP/a.db
# shellcheck disable=SC2086  # $MICRO is a list of words on purpose
run_ok "run --steps 120 --eval-every 100" run $MICRO --steps 120 --eval-every 100 --db "$A"
for run in 1 2; do
    s=$(eval_steps "$A" $run)
    check "run $run evaluates at 0 (before the first step), 10,25,50, then 100 and the last step (got $s)" [ "$s" = "0,10,25,50,100,120" ]
done
n=$(sql "$A" "select count(*) from metrics where key = 'f1' and step in (10, 25, 50) and run = 1")
check "the early evaluations store the gate metrics too (soft f1 at 10, 25, 50: $n)" [ "$n" = 3 ]
n=$(grep -cE '^step +(10|25|50) \| (soft|dense) ' "$OUT")
check "... and print a progress line each (6 lines, got $n)" [ "$n" = 6 ]

B=$TMP/b.db
# shellcheck disable=SC2086
run_ok "run --steps 60 --eval-every 20" run $MICRO --steps 60 --eval-every 20 --db "$B"
s=$(eval_steps "$B" 1)
check "only the early steps below --eval-every (10, not 25 or 50: got $s)" [ "$s" = "0,10,20,40,60" ]
C=$TMP/c.db
# shellcheck disable=SC2086
run_ok "run --steps 30 --eval-every 100" run $MICRO --steps 30 --eval-every 100 --db "$C"
s=$(eval_steps "$C" 1)
check "only the early steps below --steps (10, 25, then the last: got $s)" [ "$s" = "0,10,25,30" ]
D=$TMP/d.db
# shellcheck disable=SC2086
run_ok "run --steps 120 --eval-every 0" run $MICRO --steps 120 --eval-every 0 --db "$D"
s=$(eval_steps "$D" 1)
check "--eval-every 0 still means the last step only (got $s)" [ "$s" = "120" ]

# ---------------------------------------------------------------------------
echo "# evaluations leave training alone"
# ---------------------------------------------------------------------------
# A evaluated 5 times, D once: every train loss and the final val loss agree
# to the last digit, so an evaluation moves no RNG, data cursor or weight.
same=$(sql "$A" "attach '$D' as d; select count(*) from metrics x join d.metrics y
    on y.run = x.run and y.key = x.key and y.step = x.step
    where x.key = 'train_loss' and x.value = y.value")
check "train_loss of both arms, steps 1..120, identical with 5 evaluations or 1 ($same of 240)" [ "$same" = 240 ]
same=$(sql "$A" "attach '$D' as d; select count(*) from metrics x join d.metrics y
    on y.run = x.run and y.key = x.key and y.step = x.step
    where x.key = 'val_loss' and x.step = 120 and x.value = y.value")
check "... and so is val_loss at step 120 ($same of 2)" [ "$same" = 2 ]

S=$TMP/s.db
# shellcheck disable=SC2086
run_ok "the same run stopped at step 30" run $MICRO --steps 120 --eval-every 100 --at 30:stop --db "$S"
run_ok "resume run 1" resume 1 --db "$S"
run_ok "resume run 2" resume 2 --db "$S"
for run in 1 2; do
    s=$(eval_steps "$S" $run)
    check "stopped at 30 and resumed: run $run evaluates at 0,10,25,30,50,100,120 (got $s)" \
        [ "$s" = "0,10,25,30,50,100,120" ]
done
same=$(sql "$S" "attach '$A' as a; select count(*) from metrics x join a.metrics y
    on y.run = x.run and y.key = x.key and y.step = x.step
    where x.key in ('train_loss', 'val_loss') and x.value = y.value")
# 2 runs x (120 train losses + val losses at 0, 10, 25, 50, 100, 120); none at step 0
check "train and val losses after stop + resume equal the uninterrupted run ($same of 252)" [ "$same" = 252 ]

# ---------------------------------------------------------------------------
echo "# headless progress: percent done and time left"
# ---------------------------------------------------------------------------
# shellcheck disable=SC2086
run_ok "a headless run for the progress lines" run $MICRO --steps 120 --eval-every 100 --db "$TMP/p.db"
n=$(grep -c '^step ' "$OUT")
bad=$(grep '^step ' "$OUT" | grep -vE '\| [0-9]{1,3}% ETA ([0-9]+[smhd]([0-9]{2}[smh])?|\?)$' | head -n 1)
check "every progress line ends in 'NN% ETA TIME' ($n lines${bad:+; not: $bad})" eval '[ "$n" = 12 ] && [ -z "$bad" ]'
last=$(grep '^step ' "$OUT" | tail -n 1)
check "the last one says 100% ETA 0s ($last)" eval 'printf "%s\n" "$last" | grep -qE "\| 100% ETA 0s$"'
first=$(grep -E '^step +10 ' "$OUT" | head -n 1)
zero=$(grep -E '^step +0 ' "$OUT" | head -n 1)
check "the step-0 evaluation's line: no train loss yet, 0% ($zero)" \
    eval 'printf "%s\n" "$zero" | grep -qE "^step +0 \| [a-z]+ +\| train - \| val [0-9.]+ .*\| 0% ETA "'
check "... and no train_loss row at step 0" [ "$(sql "$TMP/p.db" "select count(*) from metrics where key = 'train_loss' and step = 0")" = 0 ]
# (the other arm may be a few steps further: under a quarter, not 0 exactly)
check "the first one (step 10 of 120) says under 25% ($first)" \
    eval 'printf "%s\n" "$first" | grep -qE "^step +10 .*\| ([0-9]|1[0-9]|2[0-4])% ETA "'
CR=$(printf '\r')
check "stderr is not a terminal: no progress bar in it (no CR, no ETA)" \
    eval '! grep -q "$CR" "$ERR" && ! grep -q "ETA" "$ERR"'
check "... and no CR in stdout either" eval '! grep -q "$CR" "$OUT"'

run_ok "distill of the run's soft arm" distill 1 --db "$TMP/p.db" --steps 20 --threads 1
n=$(grep -cE '^distill update [0-9]+/20 \| BCE [0-9.]+ \| [0-9]{1,3}% ETA ([0-9]+[smhd]([0-9]{2}[smh])?|\?)$' "$OUT")
check "distill: progress lines with percent and ETA (10 lines, got $n)" [ "$n" = 10 ]
check "distill: the last says 100% ETA 0s" grep -qE '^distill update 20/20 .*\| 100% ETA 0s$' "$OUT"
check "distill: no progress bar in a stderr that is a file" eval '! grep -q "$CR" "$ERR" && ! grep -q "ETA" "$ERR"'

finish
