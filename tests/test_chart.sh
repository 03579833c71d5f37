#!/bin/sh
# End-to-end tests of the main chart's keys (issue 14, item 5), driving the
# real binary in tmux as tests/test_screen.sh does: `m` walks the panel title
# through the metrics and each arm's curve is there only when the arm has
# the metric (its number, which sits at the end of its curve, is in the
# plot or not); `v` hides the selected arm's curve, `p` pins one; `z` narrows
# the x axis to the last N steps (title and axis labels); `replay` has the
# same keys over a stored session, and says so when no arm has a metric.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_chart.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh. Needs tmux (skipped without
# it) and python3 (to read the plot's cells). Every wait polls with a
# timeout; nothing asserts on timings.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d" "$(cap "$S" | sed -n 3,8p)"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v tmux >/dev/null 2>&1; then
    echo "  skip chart tests: no tmux (make deps installs it)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v python3 >/dev/null 2>&1; then
    fail "python3 is needed to read the plot's cells"
    finish
fi
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_chart.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_chart_$$
tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
cleanup() {
    tm kill-server 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-every 20 --eval-windows 4 --threads 2"
UTF8="LANG=C.UTF-8 LC_ALL=C.UTF-8"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
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
start() {
    tm new-session -d -s "$1" -x "$2" -y "$3" \
        "env $4 $5 2>$TMP/$1.err; echo \$? > $TMP/$1.rc; sleep 60"
}
step_of() { line "$1" 1 | sed -n 's/.*| step \([0-9][0-9]*\).*/\1/p'; }
step_above() { _s=$(step_of "$1"); [ -n "$_s" ] && [ "$_s" -gt "$2" ]; }
# The screen is 120 columns: the main chart is columns 0..66, its y axis
# the rule in column 6. The plot's digits are the arms' numbers at the ends
# of their curves (markers are single letters, the cursor ':'; a row with
# a word in it is a message such as "no arm has F1 vs oracle", not curves).
PANEL=67
plot_digits() {
    cap "$1" | LC_ALL=C.UTF-8 PYTHONIOENCODING=utf-8 python3 -c '
import re, sys
w = int(sys.argv[1])
out = set()
for l in sys.stdin.read().split("\n"):
    if len(l) > 7 and l[6] in "\u2502|" and not re.search("[A-Za-z]{3}", l[7:w]):
        out.update(c for c in l[7:w] if c.isdigit())
print("".join(sorted(out)))' "$PANEL"
}
digits_are() { [ "$(plot_digits "$1")" = "$2" ]; }
# the x axis under the plot: "<unit> X0  step  MID  X1" -> "X0 X1"
x_axis() {
    cap "$1" | LC_ALL=C.UTF-8 PYTHONIOENCODING=utf-8 python3 -c '
import re, sys
w = int(sys.argv[1])
for l in sys.stdin.read().split("\n"):
    m = re.match(r"^\S*\s+(\S+)\s+step\s+\S+\s+(\S+)\s*$", l[:w])
    if m:
        print(m.group(1), m.group(2))
        break' "$PANEL"
}
# x_span NAME N: the axis spans exactly N steps
x_span() {
    set -- "$1" "$2" "$(x_axis "$1")"
    echo "$3" | grep -qE '^[0-9]+ [0-9]+$' || return 1
    [ $((${3#* } - ${3% *})) -eq "$2" ]
}
# walk NAME TITLE...: m to each title in turn
walk() {
    _n=$1; shift
    for _t in "$@"; do press_m "$_n" "$_t" || return 1; done
}
title_is() { line_has "$1" 3 "^─ $2 "; }
# press_m NAME TITLE: m, then wait for the title
press_m() { tm send-keys -t "$1" m; wait_until 50 title_is "$1" "$2"; }

# ---------------------------------------------------------------------------
# live: soft, random, dense
# ---------------------------------------------------------------------------
echo "live screen: m, v, p, z"
DB=$TMP/c.db
S=live
start live 120 40 "$UTF8" "$BIN run --db $DB $MICRO --steps 100000"
check "the loss chart first" wait_until 150 title_is live "Loss"
check "past step 600 with evaluations" wait_until 300 step_above live 600
# the arms keep still from here: labels and axes do not move under the checks
tm send-keys -t live Space
check "paused" wait_until 50 line_has live 1 "PAUSED"

check "loss chart: every arm's number at its curve's end" wait_until 30 digits_are live 123
check "m: val loss" press_m live "Val loss \(nats/token\)"
check "m: train loss" press_m live "Train loss \(nats/token\)"
check "m: F1 vs oracle" press_m live "F1 vs oracle \(0-1\)"
check "F1: soft and random have curves, dense none" digits_are live 12
check "F1: the dense legend row says it has none" shows live "3 dense +- \(none for this arm\)"
check "F1: a linear axis, raw, every step" line_has live 3 "linear y \| raw \| all steps"

check "v: soft's curve hidden" eval 'tm send-keys -t live v; wait_until 50 digits_are live 2'
check "v: its legend row says hidden" shows live "1 soft +hidden \(v shows it\)"
check "v again: soft's curve back" eval 'tm send-keys -t live v; wait_until 50 digits_are live 12'
tm send-keys -t live Tab
check "p: random pinned, only its curve" eval 'tm send-keys -t live p; wait_until 50 digits_are live 2'
tm send-keys -t live Tab Tab
check "p pins whichever arm is selected: soft" \
    eval 'tm send-keys -t live p; wait_until 50 digits_are live 1'
check "pinned: the legend marks it, the others not drawn" \
    eval 'shows live "1 soft +\[pinned\]" && shows live "2 random +not drawn: soft is pinned"'
check "p again: every arm with F1" eval 'tm send-keys -t live p; wait_until 50 digits_are live 12'

check "m: mass kept" press_m live "Mass kept \(share of attn\)"
check "mass kept: soft and random" digits_are live 12
check "m: gate grad norm" press_m live "Gate grad norm \(L2\)"
check "gate grad norm: soft and random (dense has no gate)" digits_are live 12
check "m: grad norm, smoothed" eval 'press_m live "Grad norm \(L2, all\)" && line_has live 3 "EMA 0.98"'
check "grad norm: every arm" digits_are live 123
check "m: density" press_m live "Density \(kept/visible\)"
check "density: every arm (dense keeps every key: 1)" digits_are live 123
check "m: flip rate" press_m live "Flip rate \(per eval\)"
check "flip rate: soft and random" digits_are live 12
check "m: lr" press_m live "Learning rate"
check "lr: every arm" digits_are live 123
check "m: tokens/s" press_m live "Tokens/s \(per arm\)"
check "tokens/s: every arm" digits_are live 123
check "m: absorption index (no expert balance without experts)" \
    press_m live "Absorption index \(F1-F1_0\)/\(1-F1_0\)"
check "absorption index: soft and random (from their step-0 evaluation)" digits_are live 12
check "m: oracle drift" press_m live "Oracle drift \(per eval\)"
check "oracle drift: every arm (the oracle needs no gate)" digits_are live 123
check "m: back to loss" press_m live "Loss"

check "z: the last 2000 steps in the title" \
    eval 'tm send-keys -t live z; wait_until 50 line_has live 3 "last 2000 steps"'
check "z: the last 500 steps" eval 'tm send-keys -t live z; wait_until 50 line_has live 3 "last 500 steps"'
check "last 500: the x axis spans 500 steps ($(x_axis live))" x_span live 500
check "z: the last 100 steps" eval 'tm send-keys -t live z; wait_until 50 line_has live 3 "last 100 steps"'
check "last 100: the x axis spans 100 steps ($(x_axis live))" x_span live 100
check "z: every step again, from 0" \
    eval 'tm send-keys -t live z; wait_until 50 line_has live 3 "all steps" && [ "$(x_axis live | cut -d" " -f1)" = 0 ]'
check "the help overlay lists m, v, p, z" \
    eval 'tm send-keys -t live "?"; wait_until 50 shows live "main chart: loss \(train \+ val\)" && shows live "hide / show the selected arm" && shows live "pin the selected arm" && shows live "the last 2000 / 500 / 100 steps"'
tm send-keys -t live Escape
tm send-keys -t live q
wait_until 30 shows live "quit\? y/n"
tm send-keys -t live y
check "quit: the session ends" wait_until 300 test -s "$TMP/live.rc"

# ---------------------------------------------------------------------------
# replay of the same session
# ---------------------------------------------------------------------------
echo "replay: the same keys"
S=rp
start rp 120 40 "$UTF8" "$BIN replay --db $DB"
check "replay: the loss chart" wait_until 150 title_is rp "Loss"
check "replay: m -> val loss" press_m rp "Val loss \(nats/token\)"
press_m rp "Train loss" >/dev/null
check "replay: m -> F1 vs oracle" press_m rp "F1 vs oracle"
check "replay F1: soft and random, not dense" wait_until 30 digits_are rp 12
check "replay v: soft hidden" eval 'tm send-keys -t rp v; wait_until 50 digits_are rp 2'
tm send-keys -t rp v Tab Tab
check "replay p: dense pinned; it has no F1, and the panel says the others are hidden" \
    eval 'tm send-keys -t rp p; wait_until 50 shows rp "the arms with F1 vs oracle are hidden" && digits_are rp ""'
tm send-keys -t rp p
press_m rp "Mass kept" >/dev/null
press_m rp "Gate grad norm" >/dev/null
press_m rp "Grad norm" >/dev/null
check "replay m -> density, from the layer_metrics means: every arm" \
    eval 'press_m rp "Density" && wait_until 30 digits_are rp 123'
cursor() { line rp 1 | sed -n 's/.*| step \([0-9][0-9]*\) (evaluation.*/\1/p'; }
tm send-keys -t rp Left Left
c=$(cursor)
check "replay z z: the last 500 steps, ending at the cursor (step $c)" \
    eval 'tm send-keys -t rp z z; wait_until 50 line_has rp 3 "last 500 steps" && x_span rp 500 && [ "$(x_axis rp | cut -d" " -f2)" = "$c" ]'
tm send-keys -t rp q
check "replay quits" wait_until 100 test -s "$TMP/rp.rc"

# ---------------------------------------------------------------------------
# a metric no arm has
# ---------------------------------------------------------------------------
echo "a session whose arms lack a metric"
DB2=$TMP/dense.db
"$BIN" run --headless --db "$DB2" --arms dense $MICRO --steps 60 >"$TMP/dense.out" 2>&1
check "a dense-only session stored" grep -q "finished" "$TMP/dense.out"
S=rd
start rd 120 40 "$UTF8" "$BIN replay --db $DB2"
check "replay: the loss chart" wait_until 150 title_is rd "Loss"
press_m rd "Val loss" >/dev/null
press_m rd "Train loss" >/dev/null
check "F1 under dense: the panel says no arm has it" \
    eval 'press_m rd "F1 vs oracle" && wait_until 30 shows rd "no arm has F1 vs oracle" && digits_are rd ""'
press_m rd "Mass kept" >/dev/null
check "gate grad norm without a gate: the panel says so" \
    eval 'press_m rd "Gate grad norm" && wait_until 30 shows rd "no arm has gate grad norm"'
check "tokens/s: dense has it" \
    eval 'walk rd "Grad norm" Density "Flip rate" "Learning rate" "Tokens/s" && wait_until 30 digits_are rd 1'
tm send-keys -t rd q
wait_until 100 test -s "$TMP/rd.rc"

finish
