#!/bin/sh
# Issue 14's "Done when", end to end through the binary: a user starts
# `nohup gatelab run --headless ... &` in one terminal, watches it from two
# other terminals (two tmux sessions running `gatelab watch`), steers it from
# both (a pause from one: both watchers say PAUSED and the stored steps stop;
# resume and a gate swap from the other: the swap's event is at the step the
# commands table recorded), closes every terminal (the watchers get SIGHUP and
# go, the run trains on), re-attaches with a new `gatelab watch` (the session,
# the swapped gate), waits for the run's end (finished, every step stored) and
# plots it (`gatelab plot` SVG parsed as XML with one curve per run and one
# marker per event; `gatelab export --csv` with one row per stored step).
# A watcher, a replay and a DONE live screen whose terminal hangs up while
# the shell around it lives on (no SIGHUP reaches them) go as on a SIGHUP
# instead of spinning.
# The variant: a session started on the live screen, detached with `d`,
# re-attached with `gatelab watch` and steered with `gatelab send`.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_workflow.sh
# Prints one "  ok   ..." / "  FAIL ..." / "  skip ..." line per check, then
# "N passed, N failed[, N skipped]"; exits non-zero if any check failed.
# POSIX sh; needs tmux (the whole test is skipped, and counted, without it),
# sqlite3 and python3; the plot checks are skipped on a build without Cairo.
# Nothing is timed: every wait polls a condition with a generous timeout, and
# a check that needs the run still going accepts a run that has finished.

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

if ! command -v tmux >/dev/null 2>&1; then
    echo "  skip the workflow: no tmux (make deps installs it)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
for c in sqlite3 python3; do
    command -v $c >/dev/null 2>&1 || { fail "$c is needed by this test"; finish; }
done
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_flow.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_flow_$$
KIDS=""   # sessions that outlive their terminals: killed at the end if still there
tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
cleanup() {
    for p in $KIDS; do kill -9 "$p" 2>/dev/null; done
    tm kill-server 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A micro model (a step is a millisecond or two here): two arms, enough
# steps that the session trains for tens of seconds.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-every 500 --eval-windows 4 --threads 2"
ARMS="--arms soft,dense"
STEPS=40000
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
titles() { shows "$1" "Loss" && shows "$1" "Gate heatmap" && shows "$1" "q quit"; }
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
gone() { ! alive "$1"; }
db_is() { [ "$(sql "$1" "$2")" = "$3" ]; }
db_has() { [ "$(sql "$1" "$2")" -ge "${3:-1}" ] 2>/dev/null; }
# the newest step any arm has stored
db_step() { sql "$1" "SELECT coalesce(max(step), 0) FROM metrics WHERE key = 'train_loss'"; }
db_step_above() { _d=$(db_step "$1"); [ -n "$_d" ] && [ "$_d" -gt "$2" ]; }
finished_all() { db_is "$1" "SELECT count(*) || '/' || sum(status = 'finished') FROM runs" "$2/$2"; }
train_rows() { sql "$1" "SELECT count(*) FROM metrics WHERE key = 'train_loss'"; }
# the run trains on: its stored step moves past STEP, or it has already finished
trains_on() { db_step_above "$1" "$2" || finished_all "$1" "$3"; }
# each run's newest stored step equals the step of its pause event
steps_at_pause() {
    db_is "$1" "SELECT count(*) FROM runs r WHERE (SELECT max(step) FROM metrics m
        WHERE m.run = r.id AND m.key = 'train_loss') = (SELECT max(step) FROM events e
        WHERE e.run = r.id AND e.kind = 'pause')" "$2"
}
# beats DB TIMES: the first run's heartbeat (each store batch's commit) changes TIMES times
beats() {
    _n=$2
    _hb=$(sql "$1" "SELECT heartbeat FROM runs WHERE id = 1")
    while [ "$_n" -gt 0 ]; do
        wait_until 600 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$1' 'SELECT heartbeat FROM runs WHERE id = 1')\" != '$_hb' ]" ||
            return 1
        _hb=$(sql "$1" "SELECT heartbeat FROM runs WHERE id = 1")
        _n=$((_n - 1))
    done
}
# watcher NAME ARGS: `gatelab watch ARGS` in tmux session NAME (120x40), its
# pid in NAME.pid and, once it has exited, its status in NAME.rc. As in a
# terminal: when the terminal closes, its session leader (the pane's shell)
# gets SIGHUP and dies, and the kernel hangs up the foreground process group
# with it — the watcher, and the subshell around it, which traps SIGHUP (a
# trapped signal is reset to its default in the child) to live on and record
# how the watcher ended.
watcher() {
    tm new-session -d -s "$1" -x 120 -y 40 \
        "(trap : HUP; env $UTF8 sh -c 'echo \$\$ > $TMP/$1.pid; exec $BIN watch $2' 2>$TMP/$1.err; echo \$? > $TMP/$1.rc); :"
}
pid_of() { cat "$TMP/$1.pid" 2>/dev/null; }
exists() { [ -s "$1" ]; }

# ---------------------------------------------------------------------------
echo "nohup gatelab run --headless, watched and steered from two terminals"
# ---------------------------------------------------------------------------
DB=$TMP/lab.db
tm new-session -d -s start -x 120 -y 40 "sh"
tm send-keys -t start "cd $TMP && nohup $BIN run --headless --db $DB $MICRO $ARMS --steps $STEPS >$TMP/nohup.out 2>&1 & echo \$! > $TMP/run.pid" Enter
wait_until 100 exists "$TMP/run.pid"
RUNPID=$(cat "$TMP/run.pid" 2>/dev/null)
KIDS="$KIDS $RUNPID"
if ! wait_until 1200 db_has "$DB" "SELECT count(DISTINCT run) FROM metrics WHERE key = 'train_loss'" 2; then
    fail "the headless session started training" "$(tail -n 3 "$TMP/nohup.out")"
    finish
fi
ok "the headless session started training (process $RUNPID)"

watcher w1 "--db $DB"
watcher w2 "1 --db $DB"
check "terminal 1: the watch screen comes up" wait_until 300 titles w1
check "terminal 2: the watch screen comes up" wait_until 300 titles w2
check "terminal 1: the newest session, its step" line_has w1 1 "watching session 1 \(newest\) \| step [0-9]+ of $STEPS"
check "terminal 2: session 1 by its id" line_has w2 1 "watching session 1 \| step [0-9]+ of $STEPS"
check "both: soft and dense with their gates" \
    eval 'line_has w1 2 "1 soft gate=soft k=4 .*2 dense gate=dense" && line_has w2 2 "1 soft gate=soft k=4 .*2 dense gate=dense"'

echo "pause from terminal 1"
tm send-keys -t w1 Space
check "a pause row for every arm" wait_until 100 db_has "$DB" \
    "SELECT count(*) FROM commands WHERE session = 1 AND run IS NULL AND kind = 'pause'"
check "the pause is applied (the row says at which step)" wait_until 300 db_is "$DB" \
    "SELECT state FROM commands WHERE kind = 'pause'" applied
check "both runs are paused" wait_until 300 db_is "$DB" "SELECT group_concat(status) FROM runs" "paused,paused"
check "terminal 1 says PAUSED" wait_until 200 line_has w1 1 "PAUSED"
check "terminal 2 says PAUSED too" wait_until 200 line_has w2 1 "PAUSED"
check "terminal 2 shows the pause on its events line" wait_until 200 shows w2 "pause"
check "each run's stored steps reach its pause step" wait_until 300 steps_at_pause "$DB" 2
if beats "$DB" 2; then
    check "... and stop there (two more store commits, no new step)" steps_at_pause "$DB" 2
else
    fail "the heartbeat goes on while paused"
fi

echo "resume and a gate swap from terminal 2"
P=$(db_step "$DB")
tm send-keys -t w2 Space
check "a resume row" wait_until 100 db_has "$DB" "SELECT count(*) FROM commands WHERE kind = 'resume'"
check "the runs train again" wait_until 600 trains_on "$DB" "$P" 2
check "terminal 1 says RUNNING again" wait_until 200 line_has w1 1 "RUNNING"
tm send-keys -t w2 g
check "g on terminal 2: a swap row for soft's run" wait_until 100 db_has "$DB" \
    "SELECT count(*) FROM commands WHERE run = 1 AND kind = 'swap' AND arg = 'random'"
check "the swap is applied" wait_until 300 db_is "$DB" "SELECT state FROM commands WHERE kind = 'swap'" applied
A=$(sql "$DB" "SELECT applied_step FROM commands WHERE kind = 'swap'")
E=$(sql "$DB" "SELECT step FROM events WHERE run = 1 AND kind = 'swap'")
check "the swap event's step is the applied step of the commands table ($E = $A)" \
    eval '[ -n "$A" ] && [ "$A" = "$E" ]'
check "the gate segment changes at that step" db_is "$DB" "SELECT mode FROM segments WHERE run = 1 AND from_step = ${A:-0}" random
check "terminal 1 shows soft's new gate" wait_until 200 line_has w1 2 "1 soft gate=random"
check "terminal 2 shows the command's fate" wait_until 200 shows w2 "command swap random applied at step $A"

echo "every terminal closed"
W1=$(pid_of w1); W2=$(pid_of w2)
S=$(db_step "$DB")
tm kill-session -t w1
tm kill-session -t w2
tm kill-session -t start
check "watcher 1 (${W1:-?}) got the hangup and went (exit 129)" \
    eval 'wait_until 300 gone "${W1:-0}" && wait_until 100 exists "$TMP/w1.rc" && [ "$(cat "$TMP/w1.rc")" = 129 ]'
check "watcher 2 (${W2:-?}) got the hangup and went (exit 129)" \
    eval 'wait_until 300 gone "${W2:-0}" && wait_until 100 exists "$TMP/w2.rc" && [ "$(cat "$TMP/w2.rc")" = 129 ]'
check "the run (process $RUNPID) trains on" wait_until 600 trains_on "$DB" "$S" 2
check "... not crashed, not stopped" db_is "$DB" "SELECT count(*) FROM runs WHERE status IN ('crashed', 'stopped')" 0

echo "re-attach from a fresh terminal"
watcher w3 "--db $DB"
check "the new watcher comes up on session 1" \
    eval 'wait_until 300 titles w3 && wait_until 100 line_has w3 1 "watching session 1 \(newest\)"'
check "... soft with its swapped gate, dense as it was" wait_until 200 line_has w3 2 "1 soft gate=random .*2 dense gate=dense"
check "... the swap on its events line" wait_until 200 shows w3 "swap"

echo "the end of the run"
check "the session ends by itself" wait_until 6000 gone "$RUNPID"
row=$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'finished' AND final_step = $STEPS) FROM runs")
check "every run is finished at step $STEPS, none crashed ($row)" [ "$row" = 2/2 ]
check "every step's train_loss is stored ($(train_rows "$DB") rows)" [ "$(train_rows "$DB")" = $((2 * STEPS)) ]
check "no command is left pending" db_is "$DB" "SELECT count(*) FROM commands WHERE state = 'pending'" 0
check "the nohup output ends with the summary" grep -q "^session 1 in $DB" "$TMP/nohup.out"
check "the watcher says ENDED" wait_until 300 line_has w3 1 "ENDED"
check "... with both arms finished" line_has w3 2 "1 soft gate=random .*finished.*2 dense .*finished"
# the chart keys of the live screen work in watch too (README: watch)
tm send-keys -t w3 m
check "m in watch: the main chart shows the val loss" wait_until 100 shows w3 "Val loss \(nats/token\)"
tm send-keys -t w3 z
check "z in watch: the x axis shows the last 2000 steps" wait_until 100 shows w3 "last 2000"
tm send-keys -t w3 q
check "q: the watcher exits 0" eval 'wait_until 100 exists "$TMP/w3.rc" && [ "$(cat "$TMP/w3.rc")" = 0 ]'
ic=$(sql "$DB" "PRAGMA integrity_check")
check "integrity_check says ok (got '$ic')" [ "$ic" = ok ]

echo "plot and export the result"
# the events that leave a marker on the chart (record.c event_kind_glyph)
MARKED="'swap','pause','set_k','fork','freeze','unfreeze','diverged','resumed'"
cat >"$TMP/svg.py" <<'EOF'
import sys
import xml.etree.ElementTree as ET
# plot.h: a curve is the one path stroked 1.75 wide in its run's colour, a
# marker a badge filled with its run's colour and outlined 0.65 wide
def props(el):
    p = dict(el.attrib)
    for part in el.get("style", "").split(";"):
        if ":" in part:
            k, v = part.split(":", 1)
            p[k.strip()] = v.strip()
    return p
curves, marks = [], []
for el in ET.parse(sys.argv[1]).getroot().iter():
    if not el.tag.endswith("path"):
        continue
    p = props(el)
    try:
        w = float(p.get("stroke-width", "nan"))
    except ValueError:
        continue
    if p.get("stroke", "none") != "none" and abs(w - 1.75) < 1e-6:
        curves.append(p["stroke"])
    elif abs(w - 0.65) < 1e-6:
        marks.append(p.get("fill", "none"))
print("curves %d colours %d markers %s" % (len(curves), len(set(curves)),
      " ".join(str(marks.count(c)) for c in curves)))
EOF
if "$BIN" plot --session 1 --db "$DB" --metric train_loss --out "$TMP/flow.svg" >"$TMP/plot.out" 2>"$TMP/plot.err"; then
    ok "gatelab plot --session 1 --out flow.svg: $(head -n 1 "$TMP/plot.out")"
    if python3 "$TMP/svg.py" "$TMP/flow.svg" >"$TMP/svg.out" 2>"$TMP/py.err"; then
        ok "the SVG parses as XML"
    else
        fail "the SVG parses as XML" "$(tail -n 1 "$TMP/py.err")"
    fi
    want=$(sql "$DB" "SELECT group_concat(n, ' ') FROM (SELECT (SELECT count(*) FROM events e
        WHERE e.run = r.id AND e.kind IN ($MARKED)) n FROM runs r ORDER BY r.id)")
    check "one curve per run in its own colour, one marker per event (want markers $want: $(cat "$TMP/svg.out"))" \
        grep -qx "curves 2 colours 2 markers $want" "$TMP/svg.out"
    check "... the chart holds every step of both runs" grep -q "$((2 * STEPS)) points" "$TMP/plot.out"
    if command -v rsvg-convert >/dev/null 2>&1; then
        check "rsvg-convert renders it to a PNG" sh -c "rsvg-convert '$TMP/flow.svg' -o '$TMP/flow.png' 2>/dev/null &&
            head -c 8 '$TMP/flow.png' | od -An -tx1 | tr -d ' \n' | grep -qx 89504e470d0a1a0a"
    else
        skip "rendering the SVG: no rsvg-convert (make deps installs librsvg2-bin)"
    fi
elif grep -q "without Cairo" "$TMP/plot.err"; then
    skip "plot: this gatelab was built without Cairo"
else
    fail "gatelab plot --session 1" "$(head -n 1 "$TMP/plot.err")"
fi
if "$BIN" export --session 1 --db "$DB" --csv "$TMP/flow.csv" >"$TMP/export.out" 2>"$TMP/export.err"; then
    want=$(sql "$DB" "SELECT count(*) FROM (SELECT DISTINCT run, step FROM metrics)")
    got=$(($(wc -l <"$TMP/flow.csv") - 1))
    check "gatelab export --session 1 --csv: one row per (run, step) stored ($got rows, $want in metrics)" [ "$got" = "$want" ]
    check "... every step of both runs among them" \
        [ "$(awk -F, 'NR > 1 && $2 >= 1 && $2 <= '"$STEPS"' { n++ } END { print n }' "$TMP/flow.csv")" = $((2 * STEPS)) ]
else
    fail "gatelab export --session 1 --csv" "$(head -n 1 "$TMP/export.err")"
fi

echo "a terminal that hangs up while its shell lives on"
# The pane's shell traps SIGHUP and so outlives the hangup: the kernel sends
# SIGHUP to the terminal's session leader, and the watcher (in the
# foreground, not the leader) gets none. Its keys then read end-of-file at
# once; it must take that as the hangup, not spin on it.
tm new-session -d -s w5 -x 120 -y 40 \
    "trap : HUP; env $UTF8 sh -c 'echo \$\$ > $TMP/w5.pid; exec $BIN watch 1 --db $DB' 2>$TMP/w5.err; echo \$? > $TMP/w5.rc"
if wait_until 300 titles w5 && wait_until 300 line_has w5 1 "ENDED"; then
    W5=$(pid_of w5)
    tm kill-session -t w5
    check "the watcher (${W5:-?}) goes as on a SIGHUP (exit 129)" \
        eval 'wait_until 300 gone "${W5:-0}" && wait_until 100 exists "$TMP/w5.rc" && [ "$(cat "$TMP/w5.rc")" = 129 ]'
    [ -n "$W5" ] && kill -9 "$W5" 2>/dev/null
else
    fail "a watcher of the ended session came up" "$(cap w5 | head -3)"
fi
# the same for replay, and for the live screen once its session is DONE (it
# waits for q then, as the watcher does)
tm new-session -d -s r5 -x 120 -y 40 \
    "trap : HUP; env $UTF8 sh -c 'echo \$\$ > $TMP/r5.pid; exec $BIN replay 1 --db $DB' 2>$TMP/r5.err; echo \$? > $TMP/r5.rc"
HDB=$TMP/hup.db
tm new-session -d -s l5 -x 120 -y 40 \
    "trap : HUP; env $UTF8 sh -c 'echo \$\$ > $TMP/l5.pid; exec $BIN run --db $HDB $MICRO --arms soft --steps 300' 2>$TMP/l5.err; echo \$? > $TMP/l5.rc"
if wait_until 300 line_has r5 1 "REPLAY" && wait_until 1200 line_has l5 1 "DONE"; then
    R5=$(pid_of r5); L5=$(pid_of l5)
    tm kill-session -t r5
    tm kill-session -t l5
    check "replay (${R5:-?}) goes as on a SIGHUP (exit 129)" \
        eval 'wait_until 300 gone "${R5:-0}" && wait_until 100 exists "$TMP/r5.rc" && [ "$(cat "$TMP/r5.rc")" = 129 ]'
    check "the live screen of a DONE session (${L5:-?}) goes as on a SIGHUP (exit 129)" \
        eval 'wait_until 300 gone "${L5:-0}" && wait_until 100 exists "$TMP/l5.rc" && [ "$(cat "$TMP/l5.rc")" = 129 ]'
    check "... its run stays finished" db_is "$HDB" "SELECT status || ' ' || final_step FROM runs" "finished 300"
    for p in $R5 $L5; do kill -9 "$p" 2>/dev/null; done
else
    fail "a replay and a DONE live screen came up" "$(cap r5 | head -1) / $(cap l5 | head -1)"
fi

# ---------------------------------------------------------------------------
echo "the live screen in tmux, detached with d, re-attached and steered with send"
# ---------------------------------------------------------------------------
DB=$TMP/screen.db
LOG=$TMP/screen-session-1.log
tm new-session -d -s live -x 120 -y 40 "sh"
tm send-keys -t live "cd $TMP && env $UTF8 $BIN run --db $DB $MICRO $ARMS --steps $STEPS 2>$TMP/live.err; echo PROMPT-BACK-\$?" Enter
if wait_until 300 titles live && wait_until 600 db_has "$DB" "SELECT count(DISTINCT run) FROM metrics WHERE key = 'train_loss'" 2; then
    ok "the live screen is up and storing"
    tm send-keys -t live d
    check "d: the shell gets its prompt back" wait_until 300 shows live "PROMPT-BACK-0"
    check "d: stderr says where the output goes and how to re-attach" \
        grep -q "detached: session 1 trains on in the background (process [0-9]*); output: $LOG; re-attach: gatelab watch 1 --db $DB" "$TMP/live.err"
    cpid=$(sed -n 's/.*trains on in the background (process \([0-9][0-9]*\)).*/\1/p' "$TMP/live.err" | head -n 1)
    KIDS="$KIDS $cpid"
    check "d: the session trains on in process ${cpid:-none}" eval '[ -n "$cpid" ] && alive "$cpid"'
    tm kill-session -t live
    watcher w4 "1 --db $DB"
    check "watch 1 re-attaches" eval 'wait_until 300 titles w4 && wait_until 100 line_has w4 1 "watching session 1 \| step"'
    "$BIN" send 1 pause --db "$DB" --wait 120 >"$TMP/send.out" 2>"$TMP/send.err"
    check "gatelab send 1 pause: applied ($(cat "$TMP/send.out" "$TMP/send.err"))" grep -Eqx "applied at step [0-9]+" "$TMP/send.out"
    check "the watcher says PAUSED" wait_until 200 line_has w4 1 "PAUSED"
    check "both runs are paused" wait_until 300 db_is "$DB" "SELECT group_concat(status) FROM runs" "paused,paused"
    P=$(db_step "$DB")
    "$BIN" send 1 resume --db "$DB" --wait 120 >"$TMP/send.out" 2>&1
    check "gatelab send 1 resume: applied" grep -Eqx "applied at step [0-9]+" "$TMP/send.out"
    check "the runs train again" wait_until 600 trains_on "$DB" "$P" 2
    "$BIN" send 1 swap:topk@soft --db "$DB" --wait 120 >"$TMP/send.out" 2>&1
    A=$(sql "$DB" "SELECT applied_step FROM commands WHERE kind = 'swap'")
    check "gatelab send 1 swap:topk@soft: applied at step ${A:-?}" grep -qx "applied at step ${A:-x}" "$TMP/send.out"
    check "... the swap event is at that step" \
        db_is "$DB" "SELECT step || ' ' || detail FROM events WHERE run = 1 AND kind = 'swap'" "${A:-x} soft -> topk (sent)"
    check "the watcher shows soft's new gate" wait_until 200 line_has w4 2 "1 soft gate=topk"
    check "the detached session ends by itself" wait_until 6000 gone "${cpid:-0}"
    row=$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'finished' AND final_step = $STEPS) FROM runs")
    check "every run is finished at step $STEPS ($row)" [ "$row" = 2/2 ]
    check "every step's train_loss is stored ($(train_rows "$DB") rows)" [ "$(train_rows "$DB")" = $((2 * STEPS)) ]
    check "the log ends with the summary" grep -q "^session 1 in $DB" "$LOG"
    check "the watcher says ENDED" wait_until 300 line_has w4 1 "ENDED"
    tm send-keys -t w4 q
    check "q: the watcher exits 0" eval 'wait_until 100 exists "$TMP/w4.rc" && [ "$(cat "$TMP/w4.rc")" = 0 ]'
else
    fail "the live screen came up and stored metrics" "$(cap live | head -3)"
fi

finish
