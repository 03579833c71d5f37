#!/bin/sh
# End-to-end tests of `gatelab watch` (issue 14, item 1; DESIGN.md sections
# 11 and 12): a headless run writes a database, and watch follows it from
# another tmux session — the live panels, the step advancing, an arm that
# ended marked, the newest session named, a steering key that becomes a row
# of the commands table (and, where this binary's session applies commands,
# pauses the run), q leaving the run alone; without a terminal, one line per
# evaluation and an exit at the session's end; bad input as one line.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_watch.sh
# Prints "  ok   ..." / "  FAIL ..." / "  skip ..." lines, then
# "N passed, N failed[, N skipped]"; exits non-zero if any check failed.
# POSIX sh. Needs tmux for the screen checks (skipped, and counted, without
# it) and the sqlite3 shell. Every wait polls with a timeout.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() {
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
    [ "$failed" -eq 0 ]; exit $?
}

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    finish
fi
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_watch.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_watch_$$
HAVE_TMUX=1
command -v tmux >/dev/null 2>&1 || HAVE_TMUX=0
tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
BG=""
cleanup() {
    [ "$HAVE_TMUX" = 1 ] && tm kill-server 2>/dev/null
    for p in $BG; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-every 20 --eval-windows 4 --threads 2"
UTF8="LANG=C.UTF-8 LC_ALL=C.UTF-8"

sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
cap() { tm capture-pane -p -t "$1" 2>/dev/null; }
line() { cap "$1" | sed -n "${2}p"; }
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
line_has() { line "$1" "$2" | grep -qE -- "$3"; }
step_of() { line "$1" 1 | sed -n 's/.*| step \([0-9][0-9]*\).*/\1/p'; }
step_above() { _s=$(step_of "$1"); [ -n "$_s" ] && [ "$_s" -gt "$2" ]; }
db_has() { [ "$(sql "$1" "$2")" -ge "${3:-1}" ] 2>/dev/null; }
db_is() { [ "$(sql "$1" "$2")" = "$3" ]; }
exists() { [ -s "$1" ]; }
start() {
    tm new-session -d -s "$1" -x "$2" -y "$3" \
        "env $4 $5 2>$TMP/$1.err; echo \$? > $TMP/$1.rc; sleep 60"
}
titles() {
    shows "$1" "Loss" && shows "$1" "Gate heatmap" && shows "$1" "Oracle agreement" &&
        shows "$1" "Routing benefit" && shows "$1" "Events" && shows "$1" "q quit"
}
# the newest step any arm of the database has stored
db_step() { sql "$1" "SELECT coalesce(max(step), 0) FROM metrics WHERE key = 'train_loss'"; }
db_step_above() { _d=$(db_step "$1"); [ -n "$_d" ] && [ "$_d" -gt "$2" ]; }
# one line on stderr, naming what is wrong
one_line() { [ "$(wc -l < "$1")" -eq 1 ] && grep -q "$2" "$1"; }

# ---------------------------------------------------------------------------
# bad input: one line, non-zero, nothing written
# ---------------------------------------------------------------------------
echo "bad input"
"$BIN" watch --db "$TMP/none.db" >/dev/null 2>"$TMP/none.err"
rc=$?
check "no database: exit 1, one line" sh -c "[ $rc = 1 ] && [ \"\$(wc -l < $TMP/none.err)\" -eq 1 ] && grep -q 'no database at' $TMP/none.err"
check "... and none created" [ ! -e "$TMP/none.db" ]
echo "not a database" > "$TMP/text.db"
"$BIN" watch --db "$TMP/text.db" >/dev/null 2>"$TMP/text.err"
rc=$?
check "a file that is not gatelab's: exit 1, one line ($(cat "$TMP/text.err"))" \
    sh -c "[ $rc = 1 ] && [ \"\$(wc -l < $TMP/text.err)\" -eq 1 ]"
check "... left as it was" sh -c "[ \"\$(cat $TMP/text.db)\" = 'not a database' ]"
"$BIN" watch 1 2 >/dev/null 2>"$TMP/two.err"
check "two sessions: a usage error (2)" sh -c "[ $? = 2 ] && grep -q 'unexpected argument' $TMP/two.err"

# ---------------------------------------------------------------------------
# without a terminal: lines, and an exit at the session's end
# ---------------------------------------------------------------------------
echo "without a terminal"
LDB=$TMP/lines.db
"$BIN" run --db "$LDB" $MICRO --arms soft,dense --steps 2000 --headless --name lines >"$TMP/lrun.out" 2>&1 &
RUNPID=$!
BG="$BG $RUNPID"
check "a headless run has stored its runs" wait_until 300 db_has "$LDB" "SELECT count(*) FROM runs" 2
"$BIN" watch --db "$LDB" >"$TMP/lines.out" 2>"$TMP/lines.err" &
WPID=$!
BG="$BG $WPID"
check "the watcher prints an evaluation line while the run goes on" \
    wait_until 300 grep -qE '^step +[0-9]+ \| soft +\| train [0-9.]+ \| val [0-9.]+ ppl' "$TMP/lines.out"
wait "$RUNPID"
# the watcher ends by itself once the session has ended
_n=0; while kill -0 "$WPID" 2>/dev/null && [ "$_n" -lt 300 ]; do sleep 0.1; _n=$((_n + 1)); done
wait "$WPID"
wrc=$?
check "the watcher exits 0 at the session's end ($wrc)" [ "$wrc" = 0 ]
check "... its first line names the newest session" \
    sh -c "head -1 $TMP/lines.out | grep -q '^watching session 1 (the newest) of '"
check "... its last line says the session has ended" \
    sh -c "tail -1 $TMP/lines.out | grep -q '^session 1 has ended$'"
# a session by name, as send and plot take it: the newest of that name
"$BIN" watch lines --db "$LDB" >"$TMP/byname.out" 2>"$TMP/byname.err"
check "watch NAME: the session named 'lines' ($?)" \
    sh -c "head -1 $TMP/byname.out | grep -q '^watching session 1 of ' && tail -1 $TMP/byname.out | grep -q '^session 1 has ended$'"
"$BIN" replay lines --db "$LDB" >"$TMP/rbyname.out" 2>&1
check "replay NAME: the same session's summary ($?)" sh -c "head -1 $TMP/rbyname.out | grep -q '^session 1 |'"
"$BIN" watch abc --db "$LDB" >/dev/null 2>"$TMP/abc.err"
check "watch abc (no such session): a usage error (2) naming it" \
    sh -c "[ $? = 2 ] && grep -q 'no session abc in' $TMP/abc.err && [ \"\$(wc -l < $TMP/abc.err)\" -eq 1 ]"
"$BIN" watch 0 --db "$LDB" >/dev/null 2>"$TMP/zero.err"
check "watch 0: a usage error (2) naming SESSION" sh -c "[ $? = 2 ] && grep -q 'SESSION' $TMP/zero.err"
evals=$(sql "$LDB" "SELECT count(*) FROM metrics WHERE key = 'val_loss'")
lines=$(grep -cE '^step +[0-9]+ \|' "$TMP/lines.out")
check "one line per evaluation of each arm ($lines lines, $evals evaluations stored)" [ "$lines" = "$evals" ]
check "... each evaluation once (no step of an arm twice)" \
    sh -c "[ \"\$(grep -E '^step' $TMP/lines.out | awk -F'|' '{print \$1 \$2}' | sort | uniq -d | wc -l)\" = 0 ]"
check "... the same figures as the run printed (soft at step 2000)" \
    sh -c "[ \"\$(grep -E '^step +2000 \| soft' $TMP/lrun.out | cut -d'|' -f1-4)\" = \"\$(grep -E '^step +2000 \| soft' $TMP/lines.out | cut -d'|' -f1-4)\" ]"
check "... and each arm's end" sh -c "grep -q '^arm 0 soft | finished at step 2000' $TMP/lines.out &&
    grep -q '^arm 1 dense | finished at step 2000' $TMP/lines.out"
check "the watcher wrote nothing to the database (no commands)" db_is "$LDB" "SELECT count(*) FROM commands" 0
"$BIN" watch 7 --db "$LDB" >/dev/null 2>"$TMP/unknown.err"
rc=$?
check "an unknown session: exit 1, one line naming it" \
    sh -c "[ $rc = 1 ] && [ \"\$(wc -l < $TMP/unknown.err)\" -eq 1 ] && grep -q 'no session 7 in' $TMP/unknown.err"
"$BIN" watch 1 --db "$LDB" >"$TMP/again.out" 2>&1
check "a session that has ended: its lines at once, then exit 0" \
    sh -c "[ $? = 0 ] && [ \"\$(grep -cE '^step' $TMP/again.out)\" = $evals ] && head -1 $TMP/again.out | grep -q '^watching session 1 of'"

# ---------------------------------------------------------------------------
# the screen, in a second tmux session
# ---------------------------------------------------------------------------
if [ "$HAVE_TMUX" = 0 ]; then
    # counted as skipped, not passed (tests/run.sh adds up the skips)
    skip "screen checks: no tmux (make deps installs it)"
    finish
fi
echo "the screen beside a headless run"
DB=$TMP/w.db
# random stops at step 60 by itself: an arm that ended while the others run
start run 120 40 "$UTF8" "$BIN run --db $DB $MICRO --steps 200000 --headless --at 60:stop@random"
check "a headless run in one tmux session" wait_until 300 db_has "$DB" "SELECT count(*) FROM runs" 3
start watch 120 40 "$UTF8" "$BIN watch --db $DB"
if wait_until 300 titles watch; then ok "watch: every panel title, and the key bar"; else
    fail "watch: every panel title, and the key bar" "$(cap watch | head -5; cat "$TMP/watch.err")"; fi
check "watch: the header names the newest session" line_has watch 1 "watching session 1 \(newest\) \| step [0-9]+ of 200000"
s1=$(step_of watch)
if [ -n "$s1" ] && wait_until 100 step_above watch "$s1"; then ok "watch: the step advances ($s1 -> $(step_of watch))"
else fail "watch: the step advances" "header: $(line watch 1)"; fi
check "watch: soft and dense with their gates" line_has watch 2 "1 soft gate=soft k=4 @[0-9]+ .*3 dense gate=dense k=4 @[0-9]+"
check "watch: the arm that ended is marked" wait_until 100 line_has watch 2 "2 random gate=random k=4 @60 stopped"
check "watch: its stop on the events line" wait_until 50 shows watch "60 random stop"
check "watch: a heatmap from the database" wait_until 150 shows watch "gate: soft k4 @"
check "watch: agreement bars with numbers" wait_until 100 shows watch "L0 soft .*0\.[0-9][0-9]"
tm send-keys -t watch '?'
check "?: the help says the keys send commands, q leaves the run alone" \
    wait_until 30 sh -c "tmux -f /dev/null -L $SOCK capture-pane -p -t watch | grep -q 'steering keys send commands' &&
        tmux -f /dev/null -L $SOCK capture-pane -p -t watch | grep -q 'quit the watcher; the session goes on'"
tm send-keys -t watch x

tm send-keys -t watch Space
check "space: a pause row for every arm in the commands table" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM commands WHERE session = 1 AND run IS NULL AND kind = 'pause'"
check "space: the key bar says it was sent" wait_until 30 shows watch "sent to every arm: pause \(command 1\)"
OWNER=0
"$BIN" help send >/dev/null 2>&1 && OWNER=1
if [ "$OWNER" = 1 ]; then
    # this binary's sessions apply commands from the table (gatelab send)
    check "space: the run's arms become paused" wait_until 100 db_is "$DB" \
        "SELECT count(*) FROM runs WHERE session = 1 AND status = 'paused'" 2
    check "space: a pause event per running arm" wait_until 100 db_has "$DB" \
        "SELECT count(*) FROM events WHERE kind = 'pause'" 2
    check "space: the watcher's header says PAUSED" wait_until 100 line_has watch 1 "PAUSED"
    check "space: the command's fate on the events line" wait_until 100 shows watch "command pause applied at step [0-9]+"
    d1=$(db_step "$DB"); sleep 2; d2=$(db_step "$DB")
    if [ -n "$d1" ] && [ "$d1" = "$d2" ]; then
        ok "space: the stored step stops ($d1 = $d2)"
    else
        fail "space: the stored step stops ($d1 = $d2)"
    fi
    tm send-keys -t watch Space
    check "space again: resume rows" wait_until 50 db_has "$DB" "SELECT count(*) FROM commands WHERE kind = 'resume'"
    check "space again: the run goes on" wait_until 200 db_step_above "$DB" "$d2"
    check "space again: RUNNING" wait_until 100 line_has watch 1 "RUNNING"
else
    skip "the run pausing, its events and the fate on the events line: this binary's sessions do not apply commands yet (no gatelab send)"
    tm send-keys -t watch Space   # the matching resume, still a row
    wait_until 50 db_has "$DB" "SELECT count(*) FROM commands WHERE kind = 'resume'"
fi
tm send-keys -t watch g
check "g: a swap row for soft's run, to the next gate" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM commands c JOIN runs r ON r.id = c.run
      WHERE r.name = 'soft' AND c.kind = 'swap' AND c.arg = 'random'"
RUNS=2
if [ "$OWNER" = 1 ]; then
    check "g: soft's new gate in the watcher's header" wait_until 100 line_has watch 2 "1 soft gate=random k=4"
    check "g: the fate: applied at a step" wait_until 100 shows watch "command swap random applied at step [0-9]+"
    check "g: ... the step of the swap event" db_is "$DB" \
        "SELECT count(*) FROM commands c JOIN events e ON e.run = c.run AND e.kind = 'swap'
          AND e.step = c.applied_step WHERE c.kind = 'swap' AND c.state = 'applied'" 1
    tm send-keys -t watch f f
    check "f f: the first freezes soft's gate" wait_until 100 line_has watch 2 "1 soft gate=random k=4 frozen"
    check "f f: the second is rejected, and the events line says why" \
        wait_until 100 shows watch "command freeze rejected: .*frozen"
    tm send-keys -t watch Tab Tab F
    check "F (dense selected): the fork appears as a new arm" wait_until 200 line_has watch 2 "4 dense>soft"
    check "F: ... a run with its parent in the database" db_has "$DB" \
        "SELECT count(*) FROM runs WHERE name = 'dense>soft' AND parent_run IS NOT NULL"
    RUNS=3
else
    skip "g, f, F applied, rejected and forked: this binary's sessions do not apply commands yet"
fi
d1=$(db_step "$DB")
tm send-keys -t watch q
check "q: the watcher exits 0" wait_until 100 exists "$TMP/watch.rc"
check "q: ... status 0 ($(cat "$TMP/watch.rc" 2>/dev/null))" [ "$(cat "$TMP/watch.rc" 2>/dev/null)" = 0 ]
check "q: the run goes on training" wait_until 200 db_step_above "$DB" "$d1"
check "q: its arms still run" db_is "$DB" "SELECT count(*) FROM runs WHERE status IN ('running', 'paused')" "$RUNS"

echo "the session's end"
start watch2 120 40 "$UTF8" "$BIN watch 1 --db $DB"
check "watch 1: the session by its id (not called the newest)" \
    wait_until 300 line_has watch2 1 "watching session 1 \| step"
tm send-keys -t run C-c
check "the run, stopped by SIGINT" wait_until 200 db_is "$DB" "SELECT count(*) FROM runs WHERE status = 'stopped'" $((RUNS + 1))
check "watch: ENDED, and says the session has ended" wait_until 100 sh -c \
    "tmux -f /dev/null -L $SOCK capture-pane -p -t watch2 | sed -n 1p | grep -q ENDED &&
     tmux -f /dev/null -L $SOCK capture-pane -p -t watch2 | grep -q 'session 1 has ended; the picture stays: q quits'"
check "watch: every arm marked stopped" \
    sh -c "[ \"\$(tmux -f /dev/null -L $SOCK capture-pane -p -t watch2 | sed -n 2p | grep -o stopped | wc -l)\" = $((RUNS + 1)) ]"
sleep 1
check "watch: the final picture stays until q" sh -c "[ ! -e $TMP/watch2.rc ]"
tm send-keys -t watch2 q
check "q: exit 0" wait_until 100 sh -c "[ \"\$(cat $TMP/watch2.rc 2>/dev/null)\" = 0 ]"

finish
