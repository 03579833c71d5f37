#!/bin/sh
# End-to-end tests of issue 16 ("beyond the paper") through the real binary,
# at micro scale: `gatelab experiment crossdeploy SESSION` (a complete finite
# matrix, its diagonal equal to the runs' own final val ppl, the rows stored,
# `--from` reprinting it, a second measurement replacing the first, bad
# inputs); the co-adaptation trace (an evaluation at step 0, the frozen
# random gate's absorption index equal to the one computed by hand from its
# stored F1, per layer and for the model, the oracle drift, `show`);
# `gatelab experiment temperature` (a complete finite table per temperature,
# the rows and runs stored with their temperature, `--from`, bad inputs). The
# scientific outcome is not asserted, beyond a colder mask being harder.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_beyond.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed".
# POSIX sh; needs the sqlite3 shell.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_beyond.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
    fail "the sqlite3 shell is needed by these tests"
    finish
fi

sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
nlines() { awk 'END { print NR }' "$1"; }

expect_err() {
    d=$1; want=$2; name=$3; shift 3
    "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?
    msg=$(head -n 1 "$ERR")
    if [ "$rc" -ne "$want" ]; then fail "$d: exit $rc, want $want" "stderr: $msg"
    elif [ "$(nlines "$ERR")" -ne 1 ]; then fail "$d: $(nlines "$ERR") lines on stderr, expected 1" "$(head -n 3 "$ERR" | tr '\n' '|')"
    elif ! grep -qF -- "$name" "$ERR"; then fail "$d: the error does not name '$name'" "stderr: $msg"
    else ok "$d ($msg)"; fi
}

# the result table's rows: between its header and the blank line after it
table_of() { awk '/^line +\| quantity/ { on = 1; next } on && /^-----/ { next } on && /^$/ { exit } on { print }' "$1"; }
# the cross-deployment matrix: the lines after its header up to a blank line
matrix_of() { awk '/^trained \\ evaluated/ { on = 1; next } on && /^$/ { exit } on { print }' "$1"; }

MICRO="--ctx 32 --dim 32 --layers 2 --heads 2 --batch 4 --eval-windows 8 --threads 2"

# ---------------------------------------------------------------------------
# experiment crossdeploy SESSION
# ---------------------------------------------------------------------------
DB=$TMP/cross.db
# shellcheck disable=SC2086
"$BIN" run --headless $MICRO --arms dense,soft,random,topk --steps 30 --eval-every 10 \
    --db "$DB" >"$OUT" 2>"$ERR"; rc=$?
check "a micro session of dense, soft, random, topk trains (exit $rc)" [ "$rc" -eq 0 ]
"$BIN" experiment crossdeploy 1 --db "$DB" --threads 2 >"$OUT" 2>"$ERR"; rc=$?
check "experiment crossdeploy 1 exits 0" [ "$rc" -eq 0 ]
check "... with nothing on stderr" [ ! -s "$ERR" ]
table_of "$OUT" >"$TMP/table"
check "the table has one row per run and column: 4 x (own + 7 modes) = 32" \
    [ "$(grep -c '^X ' "$TMP/table")" -eq 32 ]
bad=$(awk -F'|' '{ v = $3; if (v !~ /^ *[0-9]+\.[0-9]+ \(x[0-9]+\.[0-9]+\) *$/) print NR": "$0 }' "$TMP/table" | head -n 1)
check "every cell is a finite ppl and ratio${bad:+ (row $bad)}" [ -z "$bad" ]
matrix_of "$OUT" >"$TMP/matrix"
check "the matrix: one line per run (4)" [ "$(nlines "$TMP/matrix")" -eq 4 ]
bad=$(awk -F'|' 'NF != 9 { print NR; next } { for (i = 2; i <= 9; i++) if ($i !~ /^ *[0-9]+\.[0-9]+ x[0-9]+\.[0-9]+ *$/) { print NR": "$i; exit } }' "$TMP/matrix" | head -n 1)
check "... with 8 finite cells each (own, dense .. stochastic)${bad:+ (line $bad)}" [ -z "$bad" ]
for arm in dense soft random topk; do
    run=$(sql "$DB" "select id from runs where mode = '$arm'")
    own=$(awk -F'|' -v q="trained $arm #$run, evaluated own" '{ x = $2; gsub(/^ +| +$/, "", x) } x == q { split($3, a, " "); print a[1] }' "$TMP/table")
    same=$(awk -F'|' -v q="trained $arm #$run, evaluated $arm" '{ x = $2; gsub(/^ +| +$/, "", x) } x == q { split($3, a, " "); print a[1] }' "$TMP/table")
    stored=$(sql "$DB" "select printf('%.3f', value) from metrics where run = $run and key = 'val_ppl' order by step desc limit 1")
    if [ -n "$own" ] && [ "$own" = "$stored" ] && [ "$own" = "$same" ]; then
        ok "$arm: the diagonal ($own) is the run's own final val ppl ($stored) and its column '$arm' ($same)"
    else
        fail "$arm: the diagonal ($own) is the run's own final val ppl ($stored) and its column '$arm' ($same)"
    fi
done
check "stored: one experiment, kind crossdeploy, finished, id the session" \
    [ "$(sql "$DB" "select count(*) || id || kind || status from experiments")" = "11crossdeployfinished" ]
check "stored: the 32 rows, line X, every value a number" \
    [ "$(sql "$DB" "select count(*) || ':' || sum(line = 'X') || ':' || sum(value is not null) from experiment_results where experiment = 1")" = "32:32:32" ]
check "stored: the 4 runs linked" [ "$(sql "$DB" "select count(*) from experiment_runs where experiment = 1")" = 4 ]
"$BIN" experiment crossdeploy --from 1 --db "$DB" >"$TMP/from" 2>"$ERR"; rc=$?
table_of "$TMP/from" >"$TMP/table2"
matrix_of "$TMP/from" >"$TMP/matrix2"
check "--from 1 exits 0 and reprints the same table" sh -c "[ $rc -eq 0 ] && cmp -s '$TMP/table' '$TMP/table2'"
check "--from 1 redraws the same matrix from the stored rows" cmp -s "$TMP/matrix" "$TMP/matrix2"
"$BIN" experiment crossdeploy 1 --db "$DB" --threads 2 >"$OUT" 2>"$ERR"; rc=$?
check "measured again: exit 0, still one experiment and 32 rows" \
    sh -c "[ $rc -eq 0 ] && [ \"\$(sqlite3 '$DB' 'select count(*) from experiments; select count(*) from experiment_results')\" = \"\$(printf '1\n32')\" ]"
# ---------------------------------------------------------------------------
# the co-adaptation trace, on the same session
# ---------------------------------------------------------------------------
R=$(sql "$DB" "select id from runs where mode = 'random'")
check "every arm is evaluated at step 0, before its first step (4 val_ppl rows)" \
    [ "$(sql "$DB" "select count(*) from metrics where key = 'val_ppl' and step = 0")" = 4 ]
check "... and at 10, 20, 30: 4 evaluations per arm" \
    [ "$(sql "$DB" "select group_concat(n) from (select count(*) n from metrics where key = 'val_ppl' group by run)")" = "4,4,4,4" ]
check "no gate gradient at step 0 (no backward yet): absent, not 0" \
    [ "$(sql "$DB" "select count(*) from metrics where key = 'gate_grad_norm' and step = 0")" = 0 ]
# the frozen random gate's index by hand: the mean over heads of layer_metrics f1 per layer,
# the mean over layers for the model, then (F1_t - F1_0) / (1 - F1_0)
want=$(sql "$DB" "select printf('%.9f', (avg(value) filter (where step = 30) - avg(value) filter (where step = 0)) / (1.0 - avg(value) filter (where step = 0))) from layer_metrics where run = $R and key = 'f1' and layer = 0")
got=$(sql "$DB" "select printf('%.9f', absorption_index) from absorption_trace where run = $R and step = 30 and layer = 0")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    ok "random, layer 0: the view's index ($got) is (F1_30 - F1_0) / (1 - F1_0) of its layer_metrics ($want)"
else
    fail "random, layer 0: the view's index ($got) is (F1_30 - F1_0) / (1 - F1_0) of its layer_metrics ($want)"
fi
f0=$(sql "$DB" "select value from metrics where run = $R and key = 'f1' and step = 0")
f30=$(sql "$DB" "select value from metrics where run = $R and key = 'f1' and step = 30")
want=$(awk -v a="$f0" -v b="$f30" 'BEGIN { printf "%.9f", (b - a) / (1 - a) }')
got=$(sql "$DB" "select printf('%.9f', value) from metrics where run = $R and key = 'absorption_index' and step = 30")
if [ -n "$got" ] && [ "$got" = "$want" ]; then
    ok "random, model: the stored absorption_index metric ($got) from its f1 metrics $f0 -> $f30 ($want)"
else
    fail "random, model: the stored absorption_index metric ($got) from its f1 metrics $f0 -> $f30 ($want)"
fi
got=$(sql "$DB" "select printf('%.6f', absorption_index) from absorption_trace where run = $R and step = 30 and layer is null")
check "... and the view's model row agrees to 6 decimals ($got)" [ "$got" = "$(printf '%.6f' "$want")" ]
check "the index is 0 at step 0 for every gated arm, stored and in the view" \
    [ "$(sql "$DB" "select count(*) from metrics where key = 'absorption_index' and step = 0 and value = 0")" = 3 ]
check "the dense arm has no trace (no mask to compare), the oracle drift all the same" \
    sh -c "[ \"\$(sqlite3 '$DB' \"select count(*) from absorption_trace t join runs r on r.id = t.run where r.mode = 'dense'\")\" = 0 ] && [ \"\$(sqlite3 '$DB' \"select count(*) from layer_metrics l join runs r on r.id = l.run where r.mode = 'dense' and l.key = 'oracle_drift'\")\" -gt 0 ]"
check "oracle drift: per layer and head from the second evaluation on, every value in [0, 1]" \
    [ "$(sql "$DB" "select count(*) || ':' || sum(value between 0 and 1) || ':' || sum(step = 0) from layer_metrics where key = 'oracle_drift'")" = "48:48:0" ]
"$BIN" show "$R" --db "$DB" >"$OUT" 2>"$ERR"; rc=$?
check "show RUN prints the trace: a heading and 3 rows (2 layers, model) per evaluation" \
    sh -c "[ $rc -eq 0 ] && grep -q '^co-adaptation trace' '$OUT' && [ \"\$(grep -cE '^  step +[0-9]+ \| (layer [01]|model) +\| f1 [0-9.]+ \| mass [0-9.]+ \| chance [0-9.]+ \| drift ([0-9.]+|-) \| index -?[0-9.]+$' '$OUT')\" -eq 12 ]"
check "... the drift absent ('-') at step 0 only" [ "$(grep -cE '^  step +0 \|.*\| drift - \|' "$OUT")" -eq 3 ]
"$BIN" plot "$R" --metric absorption_index --db "$DB" --out "$TMP/index.svg" >"$OUT" 2>"$ERR"; rc=$?
check "plot --metric absorption_index draws the random run's 4 points" \
    sh -c "[ $rc -eq 0 ] && [ -s '$TMP/index.svg' ] && grep -q 'absorption_index of 1 run, 4 points' '$OUT'"

expect_err "crossdeploy without a session" 2 "SESSION" experiment crossdeploy --db "$DB"
expect_err "crossdeploy of a session that does not exist" 2 "99" experiment crossdeploy 99 --db "$DB"
expect_err "crossdeploy with an unknown option" 2 "--bogus" experiment crossdeploy 1 --bogus --db "$DB"
expect_err "crossdeploy on a missing database" 1 "$TMP/none.db" experiment crossdeploy 1 --db "$TMP/none.db"
expect_err "crossdeploy --from another kind" 2 "crossdeploy" experiment absorption --from 1 --db "$DB"

# ---------------------------------------------------------------------------
# experiment temperature, micro scale
# ---------------------------------------------------------------------------
TDB=$TMP/temp.db
# shellcheck disable=SC2086
"$BIN" experiment temperature $MICRO --steps 30 --seeds 2 --temps 1,0.1 --db "$TDB" >"$OUT" 2>"$ERR"; rc=$?
check "experiment temperature --temps 1,0.1 --seeds 2 exits 0" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || echo "       stderr: $(head -n 3 "$ERR" | tr '\n' '|')"
check "... with nothing on stderr" [ ! -s "$ERR" ]
table_of "$OUT" >"$TMP/ttable"
check "the table: 8 rows per temperature and for topk, and dense (25)" [ "$(nlines "$TMP/ttable")" -eq 25 ]
for line in t1 t2 't->0'; do
    check "line $line has its 8 rows" [ "$(awk -F'|' -v l="$line" '{ x = $1; gsub(/ /, "", x); if (x == l) c++ } END { print c + 0 }' "$TMP/ttable")" -ge 8 ]
done
bad=$(awk -F'|' '{ v = $3; gsub(/ /, "", v); if (v !~ /^-?[0-9]+\.[0-9]+(\+-[0-9]+\.[0-9]+)?$/) print NR": "$0 }' "$TMP/ttable" | head -n 1)
check "every value is a finite number (mean +- sd over 2 seeds)${bad:+ (row $bad)}" [ -z "$bad" ]
for q in 'soft t=1 learned: final val ppl' 'soft t=0.1 frozen random: final val ppl' \
         'soft t=0.1 random - learned ppl' 'soft t=1 routing benefit (R-L)/(R-D), means' \
         'soft t=0.1 gate grad norm, mean of 10 evals' 'soft t=1 gate grad norm, last eval' \
         'soft t=0.1 mask entropy (bits per entry)' 'topk gate grad norm, last eval' 'dense: final val ppl'; do
    check "row: $q" grep -qF -- "$q" "$TMP/ttable"
done
v=$(awk -F'|' '/topk gate grad norm, (mean|last)/ { print $3 }' "$TMP/ttable" | tr -d ' ' | sort -u)
check "topk's gate gradient is 0 (mean and last: $v)" [ "$v" = "0.00000+-0.00000" ]
e1=$(awk -F'|' '/soft t=1 mask entropy/ { split($3, a, " "); print a[1] }' "$TMP/ttable")
e2=$(awk -F'|' '/soft t=0.1 mask entropy/ { split($3, a, " "); print a[1] }' "$TMP/ttable")
check "a colder gate has a harder mask: entropy at t=0.1 ($e2) below t=1 ($e1)" \
    awk -v a="$e2" -v b="$e1" 'BEGIN { exit !(a < b) }'
check "stored: one experiment, kind temperature, finished" \
    [ "$(sql "$TDB" "select count(*) || kind || status from experiments")" = "1temperaturefinished" ]
check "stored: one result row per printed row (25), every value a number" \
    [ "$(sql "$TDB" "select count(*) || ':' || sum(value is not null) from experiment_results")" = "25:25" ]
check "stored: 2 seeds x (2 temperatures x 2 + 3) = 14 runs linked, 6 sessions" \
    [ "$(sql "$TDB" "select count(*) || ':' || count(distinct r.session) from experiment_runs x join runs r on r.id = x.run")" = "14:6" ]
check "each temperature's 8 runs carry it: --gate-temp T among their arguments, gate_temp T in their config" \
    [ "$(sql "$TDB" "select count(*) from experiment_runs x join runs r on r.id = x.run where x.label like '% t=%' and instr(r.config, '\"--gate-temp\",\"' || substr(x.label, instr(x.label, 't=') + 2) || '\"') > 0 and json_extract(r.config, '\$.gate_temp') = cast(substr(x.label, instr(x.label, 't=') + 2) as real)")" = 8 ]
exp=$(sed -n 's/^stored as experiment \([0-9][0-9]*\) in .*/\1/p' "$OUT")
last=$(sql "$TDB" "select max(session) from runs")
for from in "$exp" "$last"; do
    "$BIN" experiment temperature --from "$from" --db "$TDB" >"$TMP/from" 2>"$ERR"; rc=$?
    table_of "$TMP/from" >"$TMP/ttable2"
    check "--from $from exits 0 and reprints the same table" sh -c "[ $rc -eq 0 ] && cmp -s '$TMP/ttable' '$TMP/ttable2'"
done
expect_err "temperature --temps with a bad value" 2 "--temps" experiment temperature --temps 1,x --db "$TDB"
expect_err "temperature --temps out of range" 2 "--temps" experiment temperature --temps 1,500 --db "$TDB"
expect_err "temperature --temps twice the same" 2 "--temps" experiment temperature --temps 1,1 --db "$TDB"
expect_err "temperature --gate-temp (set per arm)" 2 "--gate-temp" experiment temperature --gate-temp 1 --db "$TDB"
expect_err "absorption takes no --temps" 2 "--temps" experiment absorption --temps 1 --db "$TDB"

finish

