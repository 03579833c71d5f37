#!/bin/sh
# End-to-end test of `gatelab experiment absorption` and `gatelab distill`
# (issue 5; DESIGN.md section 7): a micro-scale run of the whole experiment
# through the real binary (2 seeds, 40 steps, micro dimensions), then the
# table, the database (experiment, results, runs, topk gate gradient exactly
# 0), `--from` reprinting it, `gatelab distill RUN` and `gatelab eval CKPT
# --gate distilled` on its output, and the bad inputs of both commands.
# The scientific outcome is not asserted: only that every line is measured.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_experiment.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed";
# exits non-zero if any check failed. POSIX sh (runs under dash). Needs the
# sqlite3 shell.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_exp.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
DB=$TMP/exp.db

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    finish
fi

sql() { sqlite3 -cmd '.timeout 5000' "$DB" "$1" 2>>"$TMP/sql.err"; }
nlines() { awk 'END { print NR }' "$1"; }
matches() { printf '%s\n' "$1" | grep -Eq -- "$2"; }

# usage_err DESC WANT_RC NAME ARGS...: exit status WANT_RC, one line on
# stderr that starts with "gatelab: " and names NAME
expect_err() {
    d=$1; want=$2; name=$3; shift 3
    "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?
    msg=$(head -n 1 "$ERR")
    if [ "$rc" -ne "$want" ]; then fail "$d: exit $rc, want $want" "stderr: $msg"
    elif [ "$(nlines "$ERR")" -ne 1 ]; then fail "$d: $(nlines "$ERR") lines on stderr, expected 1" "$(head -n 3 "$ERR" | tr '\n' '|')"
    elif ! matches "$msg" '^gatelab: '; then fail "$d: stderr does not start with 'gatelab: '" "stderr: $msg"
    elif ! grep -qF -- "$name" "$ERR"; then fail "$d: the error does not name '$name'" "stderr: $msg"
    else ok "$d ($msg)"; fi
}

MICRO="--ctx 32 --dim 32 --layers 2 --heads 2 --batch 4 --eval-windows 8 --threads 2"

# ---------------------------------------------------------------------------
# the whole experiment, micro scale
# ---------------------------------------------------------------------------
start=$(date +%s)
# shellcheck disable=SC2086
"$BIN" experiment absorption $MICRO --steps 40 --seeds 2 --distill-steps 30 --db "$DB" >"$OUT" 2>"$ERR"
rc=$?
wall=$(( $(date +%s) - start ))
if [ "$rc" -eq 2 ] && grep -q "unknown command" "$ERR"; then
    fail "this gatelab does not dispatch 'experiment' (cli.c needs its two dispatch lines)" "$(head -n 1 "$ERR")"
    finish
fi
check "experiment absorption (2 seeds x 40 steps, micro) exits 0 in ${wall}s" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { echo "       stderr: $(head -n 3 "$ERR" | tr '\n' '|')"; finish; }
check "nothing on stderr" [ ! -s "$ERR" ]
check "it took under 120 s (${wall}s)" [ "$wall" -lt 120 ]
check "progress: one line per evaluation and seed, step 0 included (22 lines)" \
    [ "$(grep -cE '^seed [12]/2 \| step +[0-9]+ \| val ppl dense [0-9.]+ soft [0-9.]+ random [0-9.]+ sigmoid [0-9.]+ topk [0-9.]+ stochastic [0-9.]+ ' "$OUT")" -eq 22 ]
check "progress: each seed distils onto dense, random and soft" \
    [ "$(grep -cE '^  onto (dense|random|soft): deployed val ppl [0-9.]+' "$OUT")" -eq 6 ]

# the table: rows between the header and the blank line after it
awk '/^line +\| quantity/ { on = 1; next } on && /^-----/ { next } on && /^$/ { exit } on { print }' "$OUT" >"$TMP/table"
rows=$(nlines "$TMP/table")
check "the table has its rows ($rows)" [ "$rows" -ge 25 ]
bad=$(awk -F'|' 'NF != 5 { print NR }' "$TMP/table" | head -n 1)
check "every row has 5 columns: line, quantity, gatelab value, paper value, same direction" [ -z "$bad" ]
bad=$(awk -F'|' '{ v = $3; gsub(/ /, "", v); if (v == "" || v ~ /nan|inf/) print NR": "$0 }' "$TMP/table" | head -n 1)
check "every gatelab value is a finite number${bad:+ (row $bad)}" [ -z "$bad" ]
bad=$(awk -F'|' '{ d = $5; gsub(/ /, "", d); if (d != "yes" && d != "no" && d != "n/a") print NR": "$0 }' "$TMP/table" | head -n 1)
check "every same-direction cell is yes, no or n/a${bad:+ (row $bad)}" [ -z "$bad" ]
for line in 1 2 3 4 +; do
    n=$(awk -F'|' -v l="$line" '{ x = $1; gsub(/ /, "", x); if (x == l) c++ } END { print c + 0 }' "$TMP/table")
    check "line $line has rows ($n)" [ "$n" -ge 1 ]
done
for q in 'soft (learned gate): final val ppl' 'random (frozen gate): final val ppl' \
         'routing benefit' 'sigmoid (naive gate): final val ppl' \
         'topk: gate grad norm at every evaluation' 'distilled onto dense: deployed val ppl' \
         'distilled onto random: F1 vs oracle' 'distilled onto soft: deployed val ppl' \
         'stochastic arm evaluated dense' 'stochastic arm with its own stochastic masks' \
         'soft evaluated dense' 'oracle attention mass kept, layer 1'; do
    check "row: $q" grep -qF -- "$q" "$TMP/table"
done
check "the absorption index of each gated arm, model and 2 layers: 4 x 3 rows, line A" \
    [ "$(grep -cE '^A +\| absorption index, (soft|random|sigmoid|topk) (model|layer [01]) \(F1 [0-9.]+ -> [0-9.]+, chance [0-9.]+\)' "$TMP/table")" -eq 12 ]
check "each seed prints its arms' absorption index" \
    [ "$(grep -cE '^  absorption index \(F1_t - F1_0\) / \(1 - F1_0\) at the last evaluation: soft -?[0-9.]+ \(F1 [0-9.]+ -> [0-9.]+\) random ' "$OUT")" -eq 2 ]
check "the cross-deployment rows: 6 arms x (own + 7 modes) = 48, line X" \
    [ "$(grep -c '^X ' "$TMP/table")" -eq 48 ]
check "the cross-deployment matrix after the table: 6 lines of 8 cells" \
    [ "$(awk '/^trained \\ evaluated/ { on = 1; next } on && /^$/ { exit } on' "$OUT" | awk -F'|' 'NF == 9' | grep -cE '^(dense|soft|random|sigmoid|topk|stochastic) ')" -eq 6 ]
check "each seed prints its cross-deployment ratios" \
    [ "$(grep -cE '^  cross-deployment \(evaluated under dense .. stochastic, / as trained\): dense [0-9.,]+; soft ' "$OUT")" -eq 2 ]
v=$(grep -F 'topk: gate grad norm at every evaluation' "$TMP/table")
check "the topk arm's gate gradient is exactly 0 at every evaluation (table: $(echo "$v" | awk -F'|' '{ print $3 }' | sed 's/^ *//; s/ *$//'))" \
    matches "$v" '\| exactly 0 \([0-9]+ evals\) +\|.*\| yes$'
exp=$(sed -n 's/^stored as experiment \([0-9][0-9]*\) in .*/\1/p' "$OUT")
check "the experiment is stored (id '$exp')" [ -n "$exp" ]

# ---------------------------------------------------------------------------
# the database
# ---------------------------------------------------------------------------
check "schema version 7" [ "$(sql 'pragma user_version')" = 7 ]
check "experiments: one row, absorption, finished, with its wall time" \
    [ "$(sql "select count(*) || kind || status || (wall_seconds > 0) from experiments")" = "1absorptionfinished1" ]
check "experiment_results: as many rows as printed ($rows)" \
    [ "$(sql "select count(*) from experiment_results where experiment = $exp")" = "$rows" ]
check "experiment_results: no NULL value among the numeric rows" \
    [ "$(sql "select count(*) from experiment_results where experiment = $exp and value is null")" = 0 ]
check "experiment_runs: 12 arm runs (6 per seed) and 6 distillation runs" \
    [ "$(sql "select group_concat(role || ':' || n) from (select role, count(*) n from experiment_runs where experiment = $exp group by role order by role)")" = "arm:12,distill:6" ]
check "every linked run exists and is finished" \
    [ "$(sql "select count(*) from experiment_runs x join runs r on r.id = x.run where x.experiment = $exp and r.status = 'finished'")" = 18 ]
check "the arms of a seed share one session, two sessions in all" \
    [ "$(sql "select count(distinct r.session) from experiment_runs x join runs r on r.id = x.run where x.experiment = $exp")" = 2 ]
check "every linked run has a checkpoint file on disk" \
    [ "$(sql "select count(*) from experiment_runs x join checkpoints c on c.run = x.run where x.experiment = $exp" )" -ge 18 ]
missing=0
for f in $(sql "select c.path from experiment_runs x join checkpoints c on c.run = x.run where x.experiment = $exp"); do
    [ -f "$f" ] || missing=$((missing + 1))
done
check "... and every checkpoint path exists ($missing missing)" [ "$missing" -eq 0 ]
check "distillation runs: mode distilled, parent the dense/random/soft arm of their seed" \
    [ "$(sql "select count(*) from experiment_runs x join runs d on d.id = x.run join runs p on p.id = d.parent_run where x.experiment = $exp and x.role = 'distill' and d.mode = 'distilled' and x.label = 'distill:' || p.mode and p.session = d.session")" = 6 ]
v=$(sql "select count(*) || ' ' || max(abs(m.value)) from metrics m join experiment_runs x on x.run = m.run where x.experiment = $exp and x.label = 'topk' and m.key = 'gate_grad_norm'")
check "metrics: the topk runs' gate_grad_norm is exactly 0.0 at every evaluation (count, max: $v)" \
    [ "$v" = "20 0.0" ]
v=$(sql "select count(*) from metrics m join experiment_runs x on x.run = m.run where x.experiment = $exp and x.label = 'soft' and m.key = 'gate_grad_norm' and m.value > 0")
check "metrics: the soft runs' gate gradient is not 0 (the probe is not vacuous; $v evals > 0)" [ "$v" -gt 0 ]
check "the experiment_table view lists the rows in order" \
    [ "$(sql "select count(*) from experiment_table where experiment = $exp")" = "$rows" ]

# ---------------------------------------------------------------------------
# --from reprints it, by experiment id and by either of its sessions
# ---------------------------------------------------------------------------
for from in "$exp" "$(sql "select max(r.session) from experiment_runs x join runs r on r.id = x.run where x.experiment = $exp")"; do
    "$BIN" experiment absorption --from "$from" --db "$DB" >"$TMP/from" 2>"$ERR"; rc=$?
    awk '/^line +\| quantity/ { on = 1; next } on && /^-----/ { next } on && /^$/ { exit } on { print }' "$TMP/from" >"$TMP/table2"
    check "--from $from exits 0 and reprints the same table" cmp -s "$TMP/table" "$TMP/table2"
    check "--from $from lists the 18 runs" [ "$(grep -cE '^  seed [12] \| session [0-9]+ \| run [0-9]+ \| (arm|distill) ' "$TMP/from")" -eq 18 ]
    [ "$rc" -eq 0 ] || fail "--from $from: exit $rc" "$(head -n 1 "$ERR")"
done

"$BIN" experiment crossdeploy "$exp" --db "$DB" --threads 2 >"$TMP/cross" 2>"$ERR"; rc=$?
check "crossdeploy of the experiment's own session: printed, not stored over the absorption" \
    sh -c "[ $rc -eq 0 ] && grep -q '^not stored: session $exp is experiment $exp (absorption)' '$TMP/cross' && [ \"\$(sqlite3 '$DB' 'select group_concat(kind) from experiments')\" = absorption ]"

# ---------------------------------------------------------------------------
# gatelab distill RUN, then gatelab eval CKPT --gate distilled
# ---------------------------------------------------------------------------
dense=$(sql "select x.run from experiment_runs x where x.experiment = $exp and x.label = 'dense' order by x.seed limit 1")
before=$(sql "select count(*) from runs")
"$BIN" distill "$dense" --db "$DB" --steps 25 --threads 2 >"$OUT" 2>"$ERR"; rc=$?
check "distill $dense exits 0" [ "$rc" -eq 0 ]
check "distill prints P/R/F1 vs the oracle and the deployed val ppl" \
    sh -c "grep -qE 'deployed \(mode distilled, top-k of the gate\): P [0-9.]+ R [0-9.]+ F1 [0-9.]+' '$OUT' && grep -qE '^deployed val ppl [0-9.]+' '$OUT'"
ck=$(sed -n 's/^checkpoint \([^ ]*\) (gate mode distilled.*/\1/p' "$OUT")
check "distill saves its checkpoint next to the run's ($ck)" \
    sh -c "[ -f '$ck' ] && [ \"\$(dirname '$ck')\" = \"\$(dirname \"\$(sqlite3 '$DB' \"select path from checkpoints where run = $dense\")\")\" ]"
new=$(sed -n 's/^stored as run \([0-9][0-9]*\) (session \([0-9][0-9]*\)).*/\1/p' "$OUT")
check "distill stores one new run ($new), mode distilled, parent $dense, finished, with its checkpoint" \
    [ "$(sql "select count(*) from runs where id = $new and mode = 'distilled' and parent_run = $dense and status = 'finished' and exists (select 1 from checkpoints c where c.run = $new and c.path = '$ck')")" = 1 ]
check "... in a session of its own" [ "$(sql "select count(*) from runs")" = $((before + 1)) ]
check "... with its deployed metrics and P/R/F1" \
    [ "$(sql "select count(distinct key) from metrics where run = $new and key in ('val_ppl', 'f1', 'precision', 'recall', 'heldout_thr_f1', 'source_val_ppl')")" = 6 ]
yes "The code of Mara is 4821. Mara is a baker from Oslo. She walks to the market every day." 2>/dev/null | head -n 60 >"$TMP/eval.txt"
"$BIN" eval "$ck" --data "$TMP/eval.txt" --gate distilled >"$OUT" 2>"$ERR"; rc=$?
v=$(cat "$OUT")
check "eval CKPT --gate distilled works on the saved file ($v)" \
    sh -c "[ $rc -eq 0 ] && echo '$v' | grep -qE '^loss [0-9.]+ ppl [0-9.]+ tokens [0-9]+$'"
"$BIN" eval "$ck" --data "$TMP/eval.txt" >"$OUT" 2>"$ERR"
check "... and its own gate mode is distilled (same loss without --gate)" [ "$(cat "$OUT")" = "$v" ]

# ---------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------
expect_err "experiment without a kind" 2 "absorption" experiment
expect_err "an unknown experiment" 2 "nope" experiment nope
expect_err "--seeds 0" 2 "--seeds" experiment absorption --seeds 0 --db "$DB"
expect_err "--steps x" 2 "--steps" experiment absorption --steps x --db "$DB"
expect_err "an unknown option" 2 "--bogus" experiment absorption --bogus 1
expect_err "--from an id that is neither experiment nor session" 1 "999" experiment absorption --from 999 --db "$DB"
expect_err "--from a missing database" 1 "$TMP/none.db" experiment absorption --from 1 --db "$TMP/none.db"
expect_err "missing data" 1 "$TMP/nothing.txt" experiment absorption --data "$TMP/nothing.txt" --db "$TMP/x.db"
check "... and no database was created for it" [ ! -e "$TMP/x.db" ]
expect_err "distill without a run" 2 "RUN" distill --db "$DB"
expect_err "distill of a missing run" 1 "9999" distill 9999 --db "$DB"
expect_err "distill --steps 0" 2 "--steps" distill "$dense" --steps 0 --db "$DB"
expect_err "distill --forward topk" 2 "--forward" distill "$dense" --forward topk --db "$DB"

finish
