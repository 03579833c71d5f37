#!/bin/sh
# End-to-end test of the mixture-of-experts FFN (DESIGN.md section 7.5)
# through the real binary: arms `MODE+moe` / `MODE+moe-random` in `gatelab
# run` (config, expert balance metrics, checkpoints, stop + resume equal to an
# uninterrupted run bit for bit), then `gatelab experiment moe` at micro
# scale (progress, a complete finite table, the database, `--from`), and bad
# inputs. The scientific outcome is not asserted.
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_moe.sh
# Prints one "  ok   ..." / "  FAIL ..." line per check, then "N passed, N failed".
# POSIX sh; needs the sqlite3 shell.

BIN=${GATELAB_BIN:-build/release/gatelab}

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_moe.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
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

MICRO="--ctx 32 --dim 32 --layers 2 --heads 2 --batch 4 --eval-windows 8 --threads 2"

# ---------------------------------------------------------------------------
# arms with experts in an ordinary run
# ---------------------------------------------------------------------------
DB=$TMP/run.db
# shellcheck disable=SC2086
"$BIN" run --headless $MICRO --arms dense,dense+moe,soft+moe-random --experts 3 --steps 40 \
    --eval-every 20 --db "$DB" >"$OUT" 2>"$ERR"; rc=$?
check "run --arms dense,dense+moe,soft+moe-random --experts 3 exits 0" [ "$rc" -eq 0 ]
# evaluations at 0 (before the first step), 10 (the early one, below --eval-every 20), 20 and 40
check "the MoE arms print their expert balance at each evaluation (8 lines)" \
    [ "$(grep -cE '^step +[0-9]+ \| (dense\+moe|soft\+moe-random) .*\| experts balance [0-9.]+ ' "$OUT")" -eq 8 ]
check "the dense-FFN arm prints none" [ "$(grep -E '^step .*\| dense +\|' "$OUT" | grep -c 'experts balance')" -eq 0 ]
check "runs are named by their --arms word, mode is the gate mode" \
    [ "$(sql "$DB" "select group_concat(name || ':' || mode, ' ') from (select * from runs order by arm)")" = "dense:dense dense+moe:dense soft+moe-random:soft" ]
check "config JSON: experts 3 and the router of each MoE arm, none for the dense FFN" \
    [ "$(sql "$DB" "select group_concat(coalesce(json_extract(config, '\$.experts'), '-') || '/' || coalesce(json_extract(config, '\$.router'), '-'), ' ') from (select * from runs order by arm)")" = "-/- 3/learned 3/random" ]
v=$(sql "$DB" "select group_concat(r.name || ':' || n, ' ') from (select run, count(*) n from metrics where key = 'expert_balance' and value >= 1 and value <= 3 group by run) m join runs r on r.id = m.run order by r.arm")
check "metrics: expert_balance in [1, E] at every evaluation of the MoE runs only ($v)" \
    [ "$v" = "dense+moe:4 soft+moe-random:4" ]
ck=$(sql "$DB" "select path from checkpoints c join runs r on r.id = c.run where r.name = 'soft+moe-random' order by step desc limit 1")
check "the MoE checkpoint holds the router and each expert's tensors" \
    sh -c "head -c 20000 '$ck' | grep -q 'h.1.mlp.router.weight' && head -c 20000 '$ck' | grep -q 'h.1.mlp.experts.2.proj.weight' && head -c 20000 '$ck' | grep -q '\"router\":\"random\"'"
"$BIN" eval "$ck" --data /dev/null >"$OUT" 2>"$ERR"; rc=$?
check "eval of an MoE checkpoint reads it (a bad --data is the only complaint: exit $rc)" \
    sh -c "[ $rc -ne 0 ] && grep -q '/dev/null' '$ERR'"

# stop at 20 and resume: bit for bit the uninterrupted run
DB2=$TMP/resume.db
# shellcheck disable=SC2086
"$BIN" run --headless $MICRO --arms dense+moe --experts 3 --steps 40 --eval-every 10 --db "$DB2" \
    --at 20:stop >"$OUT" 2>"$ERR"; rc=$?
check "a learned-router arm stopped by --at 20:stop exits 0" [ "$rc" -eq 0 ]
"$BIN" resume 1 --db "$DB2" >"$OUT" 2>"$ERR"; rc=$?
check "resume 1 finishes it" sh -c "[ $rc -eq 0 ] && [ \"\$(sqlite3 '$DB2' \"select status from runs where id = 1\")\" = finished ]"
DB3=$TMP/straight.db
# shellcheck disable=SC2086
"$BIN" run --headless $MICRO --arms dense+moe --experts 3 --steps 40 --eval-every 10 --db "$DB3" >"$OUT" 2>"$ERR"
a=$(sql "$DB2" "select group_concat(step || '=' || value, ' ') from (select * from metrics where run = 1 and key in ('train_loss', 'val_loss', 'expert_balance') order by key, step)")
b=$(sql "$DB3" "select group_concat(step || '=' || value, ' ') from (select * from metrics where run = 1 and key in ('train_loss', 'val_loss', 'expert_balance') order by key, step)")
check "stop + resume equals the uninterrupted run bit for bit (losses and expert balance)" \
    sh -c "[ -n '$a' ] && [ '$a' = '$b' ]"

# ---------------------------------------------------------------------------
# gatelab experiment moe, micro scale
# ---------------------------------------------------------------------------
DB=$TMP/exp.db
start=$(date +%s)
# shellcheck disable=SC2086
"$BIN" experiment moe $MICRO --steps 30 --seeds 2 --db "$DB" >"$OUT" 2>"$ERR"; rc=$?
wall=$(( $(date +%s) - start ))
check "experiment moe (2 seeds x 30 steps, micro) exits 0 in ${wall}s" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { echo "       stderr: $(head -n 3 "$ERR" | tr '\n' '|')"; finish; }
check "nothing on stderr" [ ! -s "$ERR" ]
check "progress: one line per evaluation and seed, step 0 included (22 lines)" \
    [ "$(grep -cE '^seed [12]/2 \| step +[0-9]+ \| val ppl dense [0-9.]+ dense\+moe [0-9.]+ dense\+moe-random [0-9.]+ ' "$OUT")" -eq 22 ]
check "each seed measures the router reset" \
    [ "$(grep -cE '^  final val ppl: .*learned router reset to its init: ppl [0-9.]+, [0-9.]+% of routings change' "$OUT")" -eq 2 ]
awk '/^line +\| quantity/ { on = 1; next } on && /^-----/ { next } on && /^$/ { exit } on { print }' "$OUT" >"$TMP/table"
rows=$(nlines "$TMP/table")
check "the table has its 9 rows" [ "$rows" -eq 9 ]
bad=$(awk -F'|' 'NF != 5 { print NR }' "$TMP/table" | head -n 1)
check "every row has 5 columns" [ -z "$bad" ]
bad=$(awk -F'|' '{ v = $3; gsub(/ /, "", v); if (v == "" || v ~ /nan|inf/) print NR": "$0 }' "$TMP/table" | head -n 1)
check "every gatelab value is a finite number${bad:+ (row $bad)}" [ -z "$bad" ]
bad=$(awk -F'|' '{ d = $5; gsub(/ /, "", d); if (d != "yes" && d != "no" && d != "n/a") print NR": "$0 }' "$TMP/table" | head -n 1)
check "every same-direction cell is yes, no or n/a${bad:+ (row $bad)}" [ -z "$bad" ]
for q in 'dense FFN: final val ppl' 'learned router: final val ppl' 'frozen random router: ppl' \
         'random - learned ppl' 'expert balance E sum f^2 (1 = even), learned router' \
         'expert balance E sum f^2 (1 = even), random router' 'reset to its init: % routings changed' \
         'reset to its init: val ppl'; do
    check "row: $q" grep -qF -- "$q" "$TMP/table"
done
exp=$(sed -n 's/^stored as experiment \([0-9][0-9]*\) in .*/\1/p' "$OUT")
check "experiments: kind moe, finished" [ "$(sql "$DB" "select kind || status from experiments where id = '$exp'")" = "moefinished" ]
check "experiment_results: the 9 rows" [ "$(sql "$DB" "select count(*) from experiment_results where experiment = '$exp'")" = 9 ]
check "experiment_runs: 6 finished arm runs in 2 sessions" \
    [ "$(sql "$DB" "select count(*) || '/' || count(distinct r.session) from experiment_runs x join runs r on r.id = x.run where x.experiment = '$exp' and x.role = 'arm' and r.status = 'finished'")" = "6/2" ]
check "the learned and random routers' runs say so in their config" \
    [ "$(sql "$DB" "select group_concat(x.label || '=' || coalesce(json_extract(r.config, '\$.router'), '-'), ' ') from (select * from experiment_runs where experiment = '$exp' and seed = 1 order by label) x join runs r on r.id = x.run")" = "dense=- dense+moe=learned dense+moe-random=random" ]
"$BIN" experiment moe --from "$exp" --db "$DB" >"$TMP/from" 2>"$ERR"; rc=$?
awk '/^line +\| quantity/ { on = 1; next } on && /^-----/ { next } on && /^$/ { exit } on { print }' "$TMP/from" >"$TMP/table2"
check "--from $exp reprints the same table" sh -c "[ $rc -eq 0 ] && cmp -s '$TMP/table' '$TMP/table2'"

# ---------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------
expect_err "run --arms with an unknown FFN suffix" 2 "dense+moex" run --arms dense+moex --db "$TMP/bad.db"
expect_err "run --experts 1" 2 "--experts" run --arms dense+moe --experts 1 --db "$TMP/bad.db"
expect_err "run --moe-aux -1" 2 "--moe-aux" run --arms dense+moe --moe-aux -1 --db "$TMP/bad.db"
expect_err "experiment moe --experts 65" 2 "--experts" experiment moe --experts 65 --db "$TMP/bad.db"
expect_err "experiment moe --distill-steps (an absorption option)" 2 "--distill-steps" experiment moe --distill-steps 5 --db "$TMP/bad.db"
expect_err "experiment absorption --experts (a moe option)" 2 "--experts" experiment absorption --experts 4 --db "$TMP/bad.db"
check "no database was created by any of them" [ ! -e "$TMP/bad.db" ]

finish
