#!/bin/sh
# End-to-end tests of the ncurses screen (issue 4; DESIGN.md section 6),
# driving the real binary in tmux the way tmux's own regress/ tests do: start
# it in a detached 120x40 session, send keys, capture the pane, and compare
# what a person would see — plus the database, which every steering key must
# reach as an event — and the terminal a crash, SIGHUP or a hangup leaves
# (issue 14: a hangup detaches the session, which trains on to its end).
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_screen.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh (runs under dash). Needs tmux
# (skipped, honestly, without it) and the sqlite3 shell. Every wait polls with
# a timeout; the tmux server runs on a private socket and is killed on exit.
# GATELAB_KEEP_ERR=1 prints each session's stderr (for sanitizer builds).

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v tmux >/dev/null 2>&1; then
    # counted as skipped, not passed (tests/run.sh adds up the skips)
    echo "  skip screen tests: no tmux (make deps installs it)"
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

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_screen.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_test_$$
tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
cleanup() {
    tm kill-server 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A micro model: a step takes a millisecond or two, so the arms keep running.
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-every 20 --eval-windows 4 --threads 2"
UTF8="LANG=C.UTF-8 LC_ALL=C.UTF-8"
ASCII="LANG=C LC_ALL=C"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
cap() { tm capture-pane -p -t "$1" 2>/dev/null; }
line() { cap "$1" | sed -n "${2}p"; }
# wait_until TENTHS CMD...: runs CMD every 0.1 s until it succeeds
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
# the header's step counter
step_of() { line "$1" 1 | sed -n 's/.*| step \([0-9][0-9]*\).*/\1/p'; }
step_above() { _s=$(step_of "$1"); [ -n "$_s" ] && [ "$_s" -gt "$2" ]; }
db_has() { [ "$(sql "$1" "$2")" -ge "${3:-1}" ] 2>/dev/null; }
exists() { [ -s "$1" ]; }
# start NAME COLS ROWS ENV CMD: runs CMD in its own tmux session; its exit
# status lands in $TMP/NAME.rc, its stderr in $TMP/NAME.err, and the
# terminal modes it left behind in $TMP/NAME.stty
start() {
    tm new-session -d -s "$1" -x "$2" -y "$3" \
        "env $4 $5 2>$TMP/$1.err; echo \$? > $TMP/$1.rc; stty -a > $TMP/$1.stty 2>&1; sleep 60"
}
titles() {
    _t=$1
    shows "$_t" "Loss" && shows "$_t" "Gate heatmap" && shows "$_t" "Oracle agreement" &&
        shows "$_t" "Routing benefit" && shows "$_t" "Events" && shows "$_t" "q quit"
}
# braille cells (U+2800..U+28FF) are E2 A0..A3 xx in UTF-8; matched as bytes
BRAILLE=$(printf '\342[\240\241\242\243]')
braille() { cap "$1" | LC_ALL=C grep -q "$BRAILLE"; }
no_high_bytes() { [ "$(cap "$1" | LC_ALL=C tr -d '\000-\177' | wc -c)" -eq 0 ]; }
restored() { grep -q ' icanon' "$1" 2>/dev/null && grep -q ' echo ' "$1"; }

# ---------------------------------------------------------------------------
# live screen, UTF-8: panels, step counter, keys -> commands -> events
# ---------------------------------------------------------------------------
echo "live screen (UTF-8)"
DB=$TMP/s.db
start live 120 40 "$UTF8" "$BIN run --db $DB $MICRO --steps 100000"
if wait_until 150 titles live; then ok "every panel title, and the key bar"; else
    fail "every panel title, and the key bar" "$(cap live | head -5)"; fi
check "arm names with their gates in the header" \
    line_has live 2 "1 soft gate=soft k=4 @[0-9]+ +2 random gate=random k=4 @[0-9]+ +3 dense gate=dense k=4 @[0-9]+"
s1=$(step_of live)
if [ -n "$s1" ] && wait_until 50 step_above live "$s1"; then ok "step counter advances ($s1 -> $(step_of live))"
else fail "step counter advances" "header: $(line live 1)"; fi
check "a heatmap arrives after the first evaluation" wait_until 100 shows live "gate: soft k4 @"
check "agreement bars with numbers" wait_until 50 shows live "L0 soft .*0\.[0-9][0-9]"
check "a UTF-8 locale draws braille curves" wait_until 30 braille live

tm send-keys -t live Space
check "space: the header says PAUSED" wait_until 50 line_has live 1 "PAUSED"
s1=$(step_of live); sleep 1; s2=$(step_of live)
check "space: the step counter stops ($s1 = $s2)" eval '[ -n "$s1" ] && [ "$s1" = "$s2" ]'
check "space: a pause event per arm in the database" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM events WHERE kind = 'pause' AND detail = 'key'" 3
tm send-keys -t live Space
check "space again: RUNNING" wait_until 50 line_has live 1 "RUNNING"
check "space again: the step counter advances" wait_until 50 step_above live "$s2"
check "space again: resume events" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM events WHERE kind = 'resume' AND detail = 'key'" 3

tm send-keys -t live g
check "g: the header shows soft's new gate" wait_until 50 line_has live 2 "1 soft gate=random"
check "g: a swap event in the database" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run
      WHERE r.name = 'soft' AND e.kind = 'swap' AND e.detail = 'soft -> random (key)'"
tm send-keys -t live +
check "+: k changes in the header" wait_until 50 line_has live 2 "1 soft gate=random k=5"
check "+: a set_k event in the database" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM events WHERE kind = 'set_k' AND detail = 'k 4 -> 5 (key)'"
tm send-keys -t live -- -
check "-: k back to 4" wait_until 50 line_has live 2 "1 soft gate=random k=4"
tm send-keys -t live f
check "f: the gate is frozen" wait_until 50 line_has live 2 "1 soft gate=random k=4 frozen"
check "f: a freeze event in the database" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM events WHERE kind = 'freeze'"
tm send-keys -t live c
check "c: a checkpoint of every arm, on request" wait_until 100 db_has "$DB" \
    "SELECT count(*) FROM events WHERE kind = 'checkpoint' AND detail LIKE 'key %'" 3
tm send-keys -t live Tab
check "tab: the heatmap follows the next arm" wait_until 30 shows live "random L0 H0"
tm send-keys -t live h ]
check "h: next head" wait_until 30 shows live "random L0 H1"
tm send-keys -t live a
check "a: attention beside the gate" wait_until 30 shows live "attention \(a: oracle\)"
tm send-keys -t live l
check "l: linear loss axis" wait_until 30 shows live "linear y"
tm send-keys -t live s
check "s: smoothing 0.995" wait_until 30 shows live "EMA 0.995"
tm send-keys -t live s
check "s again: smoothing off (raw)" wait_until 30 shows live "linear y \| raw"
tm send-keys -t live '?'
check "?: the help overlay lists every key" wait_until 30 shows live "any key closes this help"
check "?: ... including fork and checkpoint" shows live "fork the selected arm"
tm send-keys -t live x
check "any key closes the help" wait_until 30 sh -c "! tmux -f /dev/null -L $SOCK capture-pane -p -t live | grep -q 'any key closes'"
tm send-keys -t live Tab Tab F
check "F: a forked arm appears in the header" wait_until 100 line_has live 2 "4 soft>sigmoid"
check "F: the fork is a run with a parent" wait_until 50 db_has "$DB" \
    "SELECT count(*) FROM runs WHERE parent_run IS NOT NULL AND name = 'soft>sigmoid'"

tm resize-window -t live -x 50 -y 12
check "resize to 50x12: terminal too small" wait_until 50 shows live "terminal too small"
tm resize-window -t live -x 120 -y 40
check "back to 120x40: every panel again" wait_until 50 titles live

tm send-keys -t live q
check "q asks first" wait_until 30 shows live "quit\? y/n"
tm send-keys -t live n
check "n: keeps running" wait_until 30 shows live "not quitting"
s1=$(step_of live)
check "n: ... and training goes on" wait_until 50 step_above live "$s1"
tm send-keys -t live q
wait_until 30 shows live "quit\? y/n"
tm send-keys -t live y
check "q, y: the process exits 0" wait_until 200 exists "$TMP/live.rc"
check "q, y: ... with status 0 ($(cat "$TMP/live.rc" 2>/dev/null))" [ "$(cat "$TMP/live.rc" 2>/dev/null)" = 0 ]
check "q, y: every run (the fork too) is stopped" \
    [ "$(sql "$DB" "SELECT count(*) || '/' || sum(status = 'stopped') FROM runs")" = "4/4" ]
check "q, y: the terminal is restored (canonical mode, echo)" wait_until 30 restored "$TMP/live.stty"
check "q, y: the summary is printed after the screen" wait_until 30 shows live "summary: arm soft \| stopped"

# ---------------------------------------------------------------------------
# ASCII fallback, SIGINT, --compare
# ---------------------------------------------------------------------------
echo "ASCII locale, SIGINT, --compare"
start ascii 120 40 "$ASCII" "$BIN run --db $DB $MICRO --steps 100000 --compare 1,2"
check "LANG=C: every panel title" wait_until 150 titles ascii
check "LANG=C: curves and heatmaps drawn" wait_until 100 shows ascii "gate: soft k4 @"
check "LANG=C: nothing but ASCII on the screen" no_high_bytes ascii
check "--compare: ghosts of runs 1 and 2 in the legend" shows ascii "ghosts: #1 soft .*#2 random"
tm send-keys -t ascii '?'
check "LANG=C: the help overlay is ASCII too" wait_until 30 shows ascii "any key closes"
check "LANG=C: ... no byte >= 0x80" no_high_bytes ascii
tm send-keys -t ascii C-c
check "SIGINT: the process exits 130" wait_until 200 exists "$TMP/ascii.rc"
check "SIGINT: ... status 130 ($(cat "$TMP/ascii.rc" 2>/dev/null))" [ "$(cat "$TMP/ascii.rc" 2>/dev/null)" = 130 ]
check "SIGINT: the terminal is restored" wait_until 30 restored "$TMP/ascii.stty"
check "SIGINT: the runs are stopped" [ "$(sql "$DB" "SELECT count(*) FROM runs WHERE session = 2 AND status = 'stopped'")" = 3 ]

# ---------------------------------------------------------------------------
# bad terminal sizes and --headless on a terminal
# ---------------------------------------------------------------------------
echo "start-up"
start small 60 20 "$UTF8" "$BIN run --db $TMP/small.db $MICRO --steps 100"
check "too small at start: exit 2" wait_until 100 exists "$TMP/small.rc"
check "... status 2, one line naming the size" sh -c \
    "[ \"\$(cat $TMP/small.rc)\" = 2 ] && grep -q 'terminal too small: 60x20' $TMP/small.err"
check "... nothing written" [ ! -e "$TMP/small.db" ]
start badcmp 120 40 "$UTF8" "$BIN run --db $DB $MICRO --steps 100 --compare 999"
check "--compare with a run that is not stored: exit 1" wait_until 100 exists "$TMP/badcmp.rc"
check "... one line naming it, no new session" sh -c "[ \"\$(cat $TMP/badcmp.rc)\" = 1 ] &&
    grep -q 'no run 999 in' $TMP/badcmp.err &&
    [ \"\$(sqlite3 $DB 'SELECT count(*) FROM sessions')\" = 2 ]"
start dumb 120 40 "TERM=dumb" "$BIN run --db $TMP/dumb.db $MICRO --steps 40"
check "TERM=dumb: progress lines instead of a screen, exit 0" wait_until 200 exists "$TMP/dumb.rc"
check "... with a note on stderr" sh -c "[ \"\$(cat $TMP/dumb.rc)\" = 0 ] &&
    grep -q 'cannot address the cursor: printing progress lines instead' $TMP/dumb.err"
start headless 120 40 "$UTF8" "$BIN run --db $TMP/h.db $MICRO --steps 200 --headless"
check "--headless on a terminal: progress lines, exit 0" wait_until 200 exists "$TMP/headless.rc"
check "... the summary, no screen" sh -c "[ \"\$(cat $TMP/headless.rc)\" = 0 ] &&
    tmux -f /dev/null -L $SOCK capture-pane -p -t headless | grep -q 'summary: arm soft | finished'"

# ---------------------------------------------------------------------------
# replay of a session made by a short headless run
# ---------------------------------------------------------------------------
echo "replay"
RDB=$TMP/r.db
"$BIN" run --db "$RDB" --ctx 32 --dim 32 --layers 2 --heads 2 --batch 4 --eval-every 20 \
    --eval-windows 4 --threads 2 --steps 200 --at 100:swap:random@soft --at 150:k:6@random \
    >"$TMP/short.out" 2>&1
check "a short headless run to replay" [ $? -eq 0 ]
start replay 120 40 "$UTF8" "$BIN replay 1 --db $RDB"
check "replay: every panel title" wait_until 100 titles replay
# --eval-every 20: the one before the first step (0), the early evaluation at step 10
# (below 20), then 20, 40, ..., 200
check "replay: the session, at its last evaluation" shows replay "replay of session 1 \| step 200 \(evaluation 12 of 12\)"
check "replay: the key bar names the keys as they work (,/. step, </> ends)" \
    shows replay ",/\. step +</> ends"
check "replay: loss curves" braille replay
check "replay: the swap marker on soft's curve" shows replay "[^ ]S"
check "replay: gates from the segments (soft swapped, k 6)" line_has replay 2 "1 soft gate=random k=4 .*2 random gate=random k=6"
check "replay: heatmap from the database" shows replay "gate: random k4 @200"
check "replay: agreement from layer_metrics (2 layers)" shows replay "L1 random"
tm send-keys -t replay Left Left Left Left Left
check "replay: cursor keys scrub back" wait_until 30 shows replay "step 100 \(evaluation 7 of 12\)"
check "replay: the gate before the swap" line_has replay 2 "1 soft gate=soft k=4"
tm send-keys -t replay .
check "replay: . steps forward" wait_until 30 shows replay "step 120 \(evaluation 8 of 12\)"
tm send-keys -t replay '<'
check "replay: < jumps to the first evaluation (the one before the first step, step 0)" \
    wait_until 30 shows replay "step 0 \(evaluation 1 of 12\)"
tm send-keys -t replay '>'
check "replay: > jumps to the last" wait_until 30 shows replay "step 200 \(evaluation 12 of 12\)"
tm send-keys -t replay '?'
check "replay: the help says < and > jump to the first / last evaluation" \
    wait_until 30 shows replay "jump to the first / last evaluation step \(< and >"
tm send-keys -t replay x
wait_until 30 sh -c "! tmux -f /dev/null -L $SOCK capture-pane -p -t replay | grep -q 'any key closes'"
tm send-keys -t replay q
check "replay: q exits 0" wait_until 50 sh -c "[ \"\$(cat $TMP/replay.rc 2>/dev/null)\" = 0 ]"
start smallreplay 60 20 "$UTF8" "$BIN replay 1 --db $RDB"
check "replay on a terminal too small: exit 2, one line naming the size" wait_until 100 sh -c \
    "[ \"\$(cat $TMP/smallreplay.rc 2>/dev/null)\" = 2 ] &&
     grep -q 'terminal too small: 60x20' $TMP/smallreplay.err &&
     ! grep -q 'summary instead' $TMP/smallreplay.err"
"$BIN" replay 1 --db "$RDB" >"$TMP/replay.txt" 2>&1
check "replay without a terminal: a text summary" sh -c \
    "grep -q 'run 1 | arm 0 soft | finished | 200 steps | final val' $TMP/replay.txt &&
     grep -q 'swap .*soft -> random (scripted)' $TMP/replay.txt"
"$BIN" replay 7 --db "$RDB" >"$TMP/replay7.txt" 2>&1
check "replay of a missing session: exit 1 and one line" sh -c \
    "[ $? -eq 1 ] && grep -q 'no session 7 in' $TMP/replay7.txt"

# ---------------------------------------------------------------------------
# the first minute: an evaluation at step 10, and the time left in the header
# ---------------------------------------------------------------------------
echo "the first minute"
# the default --eval-every (100): the first evaluations are the early ones at
# 10, 25 and 50; a scripted pause right after step 10 holds its heatmap on
# the screen long enough to be seen
FDB=$TMP/first.db
start first 120 40 "$UTF8" "$BIN run --db $FDB --ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 2 --steps 100000 --at 10:pause:8"
check "the evaluation at step 10 reaches the screen (soft's heatmap @10)" \
    wait_until 150 shows first "gate: soft k4 @10([^0-9]|\$)"
check "... with its agreement bars" wait_until 30 shows first "L0 soft .*0\.[0-9][0-9]"
check "the header has an ETA, unknown while every arm is paused" wait_until 30 line_has first 1 "ETA \?"
check "once running, the header says how long the rest takes (ETA 1h02m, 3m12s, ...)" \
    wait_until 200 line_has first 1 "\| ETA [0-9]+[smhd]([0-9][0-9][smh])? "
check "every arm stored its early evaluations at 10, 25 and 50" wait_until 100 db_has "$FDB" \
    "SELECT count(*) FROM metrics WHERE key = 'val_loss' AND step IN (10, 25, 50)" 9
check "... and none at another step below 100 but step 0 (before the first step)" \
    [ "$(sql "$FDB" "SELECT count(*) FROM metrics WHERE key = 'val_loss' AND step < 100 AND step NOT IN (0, 10, 25, 50)")" = 0 ]
tm send-keys -t first q
wait_until 30 shows first "quit\? y/n"
tm send-keys -t first y
check "the first minute: q, y exits 0" wait_until 200 sh -c "[ \"\$(cat $TMP/first.rc 2>/dev/null)\" = 0 ]"

# --headless with stderr on the terminal: a one-line progress bar there,
# redrawn in place and cleared at the end; stdout (a file) gets no bar
tm new-session -d -s bar -x 120 -y 40 \
    "env $UTF8 $BIN run --headless --db $TMP/bar.db $MICRO --arms soft --steps 4000 >$TMP/bar.out 2>/dev/tty; echo \$? > $TMP/bar.rc; sleep 60"
check "--headless, stderr a terminal: a progress bar with percent and ETA" \
    wait_until 150 shows bar "^\[[#-]{20}\] +[0-9]+% ETA [0-9?]"
check "... the run ends with exit 0" wait_until 600 sh -c "[ \"\$(cat $TMP/bar.rc 2>/dev/null)\" = 0 ]"
check "... and the bar is cleared from the terminal" sh -c "! tmux -f /dev/null -L $SOCK capture-pane -p -t bar | grep -q '% ETA'"
check "... stdout got progress lines with percent and ETA, and no bar" sh -c \
    "grep -qE '^step .*\| [0-9]+% ETA ' $TMP/bar.out && ! grep -q \"\$(printf '\r')\" $TMP/bar.out"

# ---------------------------------------------------------------------------
# mixture-of-experts arms: their names and expert balance on the screen
# ---------------------------------------------------------------------------
echo "mixture-of-experts arms"
start moe 120 40 "$UTF8" "$BIN run --db $TMP/moe.db $MICRO --arms dense,dense+moe-random --steps 100000 --eval-every 10"
check "MoE: the header gives the arm's expert balance" \
    wait_until 150 line_has moe 2 "2 dense\+moe-random gate=dense k=[0-9]+ bal [0-9]\.[0-9][0-9] @"
check "MoE: the dense-FFN arm has none" sh -c "! { tmux -f /dev/null -L '$SOCK' capture-pane -p -t moe | sed -n 2p | grep -q '1 dense gate=dense k=[0-9]* bal'; }"
check "MoE: the loss legend shows the whole name" shows moe "2 dense\+moe-random +(train|tr)"
tm send-keys -t moe q
sleep 0.3
tm send-keys -t moe y
check "MoE: q, y exits 0" wait_until 100 sh -c "[ \"\$(cat $TMP/moe.rc 2>/dev/null)\" = 0 ]"

# ---------------------------------------------------------------------------
# signals while the screen is up: a crash, SIGHUP, and the terminal going away
# ---------------------------------------------------------------------------
echo "signals while the screen is up"
# start_sig NAME CMD: like start (120x40, UTF-8), but the process id lands in
# $TMP/NAME.pid and core dumps are off
start_sig() {
    tm new-session -d -s "$1" -x 120 -y 40 \
        "ulimit -c 0; sh -c 'echo \$\$ > $TMP/$1.pid; exec env $UTF8 $2' 2>$TMP/$1.err; echo \$? > $TMP/$1.rc; stty -a > $TMP/$1.stty 2>&1; sleep 60"
}
pid_of() { cat "$TMP/$1.pid" 2>/dev/null; }
rc_is() { [ "$(cat "$TMP/$1.rc" 2>/dev/null)" = "$2" ]; }
alt_off() { [ "$(tm display-message -p -t "$1" '#{alternate_on}' 2>/dev/null)" = 0 ]; }

# A SIGSEGV someone sends (not a fault) must kill the process at once, with
# the terminal given back: never ignored, never a raw-mode terminal left.
start_sig segv "$BIN run --db $TMP/segv.db $MICRO --steps 100000"
if wait_until 150 titles segv && [ -n "$(pid_of segv)" ]; then
    kill -SEGV "$(pid_of segv)"
    wait_until 100 exists "$TMP/segv.rc"
    src=$(cat "$TMP/segv.rc" 2>/dev/null)
    if grep -q 'Sanitizer' "$TMP/segv.err" 2>/dev/null; then
        # a sanitizer build hands the signal on to the sanitizer's own report
        # and exit code; that report is expected, not one the last check counts
        check "SIGSEGV: handed on to the sanitizer's report (status ${src:-none})" \
            eval '[ -n "$src" ] && [ "$src" != 0 ]'
        mv "$TMP/segv.err" "$TMP/segv.sanitizer"
    else
        check "SIGSEGV: the process dies of it (status 139, got ${src:-none})" [ "$src" = 139 ]
    fi
    check "SIGSEGV: the terminal is restored (canonical mode, echo)" wait_until 30 restored "$TMP/segv.stty"
    check "SIGSEGV: ... and the alternate screen is left" wait_until 30 alt_off segv
    # the wrapper sleeps now: a terminal in canonical mode echoes what is typed
    tm send-keys -t segv 'typed-after-the-crash'
    check "SIGSEGV: what is typed afterwards is echoed" wait_until 30 shows segv "typed-after-the-crash"
else
    fail "SIGSEGV: the screen came up" "$(cap segv | head -3)"
fi

# SIGHUP sent while the terminal is still there (issue 14: a hangup detaches
# instead of stopping): the screen closes and gives the terminal back, the
# session trains on to its end with its output in the log file next to the
# database, and its runs end finished with every step stored
HSTEPS=1500
finished_runs() { sql "$1" "SELECT count(*) || '/' || sum(status = 'finished' AND final_step = $HSTEPS) FROM runs"; }
all_steps() { [ "$(sql "$1" "SELECT count(*) FROM metrics WHERE key = 'train_loss'")" = $((3 * HSTEPS)) ]; }
start_sig hup "$BIN run --db $TMP/hup.db $MICRO --steps $HSTEPS"
if wait_until 150 titles hup && wait_until 100 db_has "$TMP/hup.db" \
        "SELECT count(*) FROM metrics WHERE key = 'train_loss'"; then
    kill -HUP "$(pid_of hup)"
    check "SIGHUP: the screen closes (the alternate screen is left)" wait_until 100 alt_off hup
    check "SIGHUP: stderr names SIGHUP, the log and how to re-attach" wait_until 100 grep -q \
        "SIGHUP: session 1 trains on .*output: $TMP/hup-session-1.log; re-attach: gatelab watch 1 --db $TMP/hup.db" "$TMP/hup.err"
    check "SIGHUP: the session trains on to its end, exit 0 (got $(wait_until 1200 exists "$TMP/hup.rc"; cat "$TMP/hup.rc" 2>/dev/null))" rc_is hup 0
    check "SIGHUP: the terminal is restored" wait_until 30 restored "$TMP/hup.stty"
    check "SIGHUP: every run is finished at step $HSTEPS ($(finished_runs "$TMP/hup.db"))" [ "$(finished_runs "$TMP/hup.db")" = 3/3 ]
    check "SIGHUP: every step's train_loss is stored" all_steps "$TMP/hup.db"
    check "SIGHUP: the log ends with the summary" grep -q "^session 1 in $TMP/hup.db" "$TMP/hup-session-1.log"
else
    fail "SIGHUP: the screen came up and stored metrics" "$(cap hup | head -3)"
fi

# The terminal itself goes away (the tmux session is killed): the hangup
# detaches the session, which trains on with its output in the log file
# although nothing can be written to the terminal any more, and its runs
# end finished. Twice: gatelab as the session leader the kernel signals
# (tmux new-session 'gatelab run'), and under a shell that dies of the hangup,
# after which the kernel signals the foreground process group (the echo keeps
# the shell from exec-ing gatelab).
for how in leader shell; do
    DBG=$TMP/gone_$how.db
    if [ "$how" = leader ]; then
        tm new-session -d -s "gone_$how" -x 120 -y 40 \
            "exec env $UTF8 $BIN run --db $DBG $MICRO --steps $HSTEPS 2>$TMP/gone_$how.err"
    else
        tm new-session -d -s "gone_$how" -x 120 -y 40 \
            "env $UTF8 $BIN run --db $DBG $MICRO --steps $HSTEPS 2>$TMP/gone_$how.err; echo not exec"
    fi
    if wait_until 150 titles "gone_$how" && wait_until 100 db_has "$DBG" \
            "SELECT count(*) FROM metrics WHERE key = 'train_loss'"; then
        gpid=$(pgrep -x -s "$(tm display-message -p -t "gone_$how" '#{pane_pid}')" gatelab | head -n 1)
        tm kill-session -t "gone_$how"
        check "terminal gone ($how): stderr names SIGHUP and the log [$(head -n 1 "$TMP/gone_$how.err")]" \
            wait_until 100 grep -q "SIGHUP: session 1 trains on .*output: $TMP/gone_$how-session-1.log" "$TMP/gone_$how.err"
        n1=$(sql "$DBG" "SELECT count(*) FROM metrics WHERE key = 'train_loss'")
        check "terminal gone ($how): the session trains on (train_loss rows grow past $n1)" \
            wait_until 300 db_has "$DBG" "SELECT count(*) > ${n1:-0} FROM metrics WHERE key = 'train_loss'"
        check "terminal gone ($how): the process ends by itself" wait_until 1200 sh -c "! kill -0 ${gpid:-0} 2>/dev/null"
        check "terminal gone ($how): every run is finished at step $HSTEPS ($(finished_runs "$DBG"))" [ "$(finished_runs "$DBG")" = 3/3 ]
        check "terminal gone ($how): every step's train_loss is stored" all_steps "$DBG"
        check "terminal gone ($how): the log ends with the summary" grep -q "^session 1 in $DBG" "$TMP/gone_$how-session-1.log"
        # one that never ended must not write on into $TMP after the cleanup
        [ -n "$gpid" ] && kill -0 "$gpid" 2>/dev/null && kill -9 "$gpid"
    else
        fail "terminal gone ($how): the screen came up and stored metrics" "$(cap "gone_$how" | head -3)"
    fi
done

# ---------------------------------------------------------------------------
# sanitizer builds: nothing on stderr that looks like a report
# ---------------------------------------------------------------------------
reports=$(cat "$TMP"/*.err "$TMP"/*.out "$TMP"/*.txt 2>/dev/null | grep -E 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|WARNING: ThreadSanitizer' | head -3)
check "no sanitizer reports on the sessions' stderr" [ -z "$reports" ]
[ -n "$reports" ] && echo "$reports"
if [ -n "${GATELAB_KEEP_ERR:-}" ]; then
    for f in "$TMP"/*.err; do echo "== $f"; cat "$f"; done
fi

finish
