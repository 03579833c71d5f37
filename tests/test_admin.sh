#!/bin/sh
# Tests of issue 11 items 4, 5 and 6 through the binary:
#   4 names, tags, notes: run/experiment --name --tag --note, `gatelab tag`,
#     `gatelab note`, ls (names, filters, database size), show
#   5 housekeeping: rm RUN | --session S [--dry-run], --keep-checkpoints N,
#     --heatmap-every N (both kept by resume)
#   6 resume --steps (extend a finished run, end a stopped one earlier),
#     eval RUN [--step N] and --data generator
# (experiment and distill take --name, --tag and --note too: checked last)
# and the bad inputs of each (one line naming the input, exit 2, nothing
# changed).
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_admin.sh
# Prints one "  ok   ..." / "  FAIL ..." / "  skip ..." line per check, then
# "N passed, N failed" (", N skipped" when any check could not run here);
# exits non-zero if any check failed. POSIX sh only. Needs the sqlite3 shell.

BIN=${GATELAB_BIN:-build/release/gatelab}
umask 022

passed=0
failed=0
skipped=0
ok()   { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "       $2"; return 0; }
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
totals() {
    if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
    else echo "$passed passed, $failed failed"; fi
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_admin.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
BGPID=""
cleanup() {
    [ -n "$BGPID" ] && kill -9 "$BGPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr

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

MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1 --headless"

sql() { [ -f "$1" ] || return 1; sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
gl() { "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?; }
msg() { head -n 1 "$ERR" | cut -c 1-300; }
matches() { printf '%s\n' "$1" | grep -Eq -- "$2"; }
run_ok() {
    d=$1; shift
    gl "$@"
    if [ "$rc" -eq 0 ]; then ok "$d: exit 0"
    else fail "$d: exit $rc" "stderr: $(head -n 2 "$ERR" | tr '\n' '|')"; fi
}
# snapshot DB: every table's row count, and the checkpoint files on disk
snapshot() {
    for t in sessions runs metrics layer_metrics summaries events segments heatmaps \
             checkpoints tags experiment_runs; do
        printf '%s %s\n' "$t" "$(sql "$1" "select count(*) from $t")"
    done
    find "$TMP" -name '*.safetensors' | sort
}
# bad DESC ERE DB ARGS...: exit 2, one stderr line matching ERE, DB unchanged
bad() {
    d=$1; re=$2; db=$3; shift 3
    snapshot "$db" >"$TMP/before"
    gl "$@"
    snapshot "$db" >"$TMP/after"
    m=$(msg)
    if [ "$rc" -ne 2 ]; then fail "$d: exit $rc, want 2" "stderr: $m"
    elif [ "$(awk 'END { print NR }' "$ERR")" -ne 1 ]; then fail "$d: not one line" "$(tr '\n' '|' <"$ERR")"
    elif ! matches "$m" "$re"; then fail "$d: message" "got: $m"
    elif ! cmp -s "$TMP/before" "$TMP/after"; then fail "$d: the database or files changed"
    else ok "$d: exit 2, '$m'"; fi
}

DB=$TMP/a.db

echo "names, tags, notes (run)"
run_ok "run --name --tag --tag --note --keep-checkpoints 2 --heatmap-every 2" \
    run $MICRO --db "$DB" --arms soft,dense --steps 40 --eval-every 10 --save-every 10 \
    --keep-checkpoints 2 --heatmap-every 2 --name exp1 --tag lr=hi --tag team=a \
    --note "first try"
SOFT=$(sql "$DB" "select id from runs where name = 'soft'")
DENSE=$(sql "$DB" "select id from runs where name = 'dense'")
check "session name and note stored" \
    [ "$(sql "$DB" "select name || '|' || note from sessions")" = "exp1|first try" ]
check "every run of the session has both tags (4 rows)" \
    [ "$(sql "$DB" "select count(*) from tags where (key, value) in (values ('lr','hi'),('team','a'))")" = 4 ]
gl ls --db "$DB"
check "ls shows NAME/arm" grep -q 'exp1/soft' "$OUT"
check "ls shows the tags" grep -q 'lr=hi,team=a' "$OUT"
check "ls prints the database size (file + wal)" grep -Eq 'database .*a\.db: .*\(file .* \+ wal .*\)' "$OUT"
gl show "$SOFT" --db "$DB"
check "show prints the name" grep -q '^name exp1/soft$' "$OUT"
check "show prints the tags" grep -q '^tags lr=hi, team=a$' "$OUT"
check "show prints the session note" grep -q '^session note: first try$' "$OUT"

echo "tag and note afterwards"
run_ok "tag RUN KEY=VALUE KEY=VALUE" tag "$SOFT" best=yes lr=lo --db "$DB"
check "tag replaced and added" \
    [ "$(sql "$DB" "select group_concat(key || '=' || value, ',') from (select * from tags where run = $SOFT order by key)")" = "best=yes,lr=lo,team=a" ]
run_ok "note RUN TEXT..." note "$SOFT" looks good --db "$DB"
gl show "$SOFT" --db "$DB"
check "show prints the run's note" grep -q '^note: looks good$' "$OUT"
bad "tag RUN novalue" 'novalue.*KEY=VALUE' "$DB" tag "$SOFT" novalue --db "$DB"
bad "tag RUN =x" '=x.*KEY=VALUE' "$DB" tag "$SOFT" =x --db "$DB"
bad "tag without KEY=VALUE" 'missing KEY=VALUE' "$DB" tag "$SOFT" --db "$DB"
gl tag 999 a=b --db "$DB"
if [ "$rc" -eq 1 ] && matches "$(msg)" 'no run 999'; then ok "tag 999: exit 1, no run 999"; else fail "tag 999: exit 1, no run 999"; fi
gl note 999 text --db "$DB"
if [ "$rc" -eq 1 ] && matches "$(msg)" 'no run 999'; then ok "note 999: exit 1, no run 999"; else fail "note 999: exit 1, no run 999"; fi

echo "bad run options"
bad "run --tag novalue" '--tag novalue: expected KEY=VALUE' "$DB" run $MICRO --db "$DB" --tag novalue
bad "run --tag =v" '--tag =v: expected KEY=VALUE' "$DB" run $MICRO --db "$DB" --tag =v
bad "run --name ''" '--name: missing value' "$DB" run $MICRO --db "$DB" --name ""
bad "run --keep-checkpoints 0" '--keep-checkpoints' "$DB" run $MICRO --db "$DB" --keep-checkpoints 0
bad "run --heatmap-every x" '--heatmap-every' "$DB" run $MICRO --db "$DB" --heatmap-every x

echo "ls filters"
run_ok "a second session (soft, stopped at 10 of 40)" \
    run $MICRO --db "$DB" --arms soft --steps 40 --eval-every 10 --at 10:stop --tag lr=lo
STOPPED=$(sql "$DB" "select id from runs where session = 2")
ls_runs() { gl ls --db "$DB" "$@"; awk 'NR > 1 && $2 ~ /^[0-9]+$/ { print $1 }' "$OUT" | sort -n | tr '\n' ' '; }
check "ls --session 1" [ "$(ls_runs --session 1)" = "$SOFT $DENSE " ]
check "ls --session exp1 (by name)" [ "$(ls_runs --session exp1)" = "$SOFT $DENSE " ]
check "ls --status stopped" [ "$(ls_runs --status stopped)" = "$STOPPED " ]
check "ls --mode dense" [ "$(ls_runs --mode dense)" = "$DENSE " ]
check "ls --tag lr" [ "$(ls_runs --tag lr)" = "$SOFT $DENSE $STOPPED " ]
check "ls --tag lr=lo" [ "$(ls_runs --tag lr=lo)" = "$SOFT $STOPPED " ]
check "ls --tag team=b (none)" [ "$(ls_runs --tag team=b)" = "" ]
check "ls --since 1d (all)" [ "$(ls_runs --since 1d)" = "$SOFT $DENSE $STOPPED " ]
check "ls --since 2h --status finished" [ "$(ls_runs --since 2h --status finished)" = "$SOFT $DENSE " ]
check "ls --since 2100-01-01 (none)" [ "$(ls_runs --since 2100-01-01)" = "" ]
check "ls --since 2000-01-01T00:00 (all)" [ "$(ls_runs --since 2000-01-01T00:00)" = "$SOFT $DENSE $STOPPED " ]
bad "ls --status bogus" '--status bogus: unknown status' "$DB" ls --db "$DB" --status bogus
bad "ls --mode bogus" '--mode bogus: unknown gate mode' "$DB" ls --db "$DB" --mode bogus
bad "ls --since yesterday" '--since yesterday' "$DB" ls --db "$DB" --since yesterday
bad "ls --since 2026-02-30" '--since 2026-02-30: no such date' "$DB" ls --db "$DB" --since 2026-02-30
bad "ls --tag =x" '--tag =x' "$DB" ls --db "$DB" --tag =x

echo "--keep-checkpoints, --heatmap-every"
SOFTDIR=$(dirname "$(sql "$DB" "select path from checkpoints where run = $SOFT limit 1")")
check "keep-checkpoints 2: 2 files on disk" [ "$(ls "$SOFTDIR"/step*.safetensors | wc -l)" -eq 2 ]
check "keep-checkpoints 2: the 2 newest rows (30, 40)" \
    [ "$(sql "$DB" "select group_concat(step) from (select step from checkpoints where run = $SOFT order by step)")" = "30,40" ]
check "heatmap-every 2: heatmaps at steps 0 (before the first step), 20 and 40 only" \
    [ "$(sql "$DB" "select group_concat(step) from (select distinct step from heatmaps where run = $SOFT order by step)")" = "0,20,40" ]
check "both are in the stored argv (resume keeps them)" \
    [ "$(sql "$DB" "select count(*) from runs r, json_each(r.config, '\$.argv') a where r.id = $SOFT and a.value in ('--keep-checkpoints', '--heatmap-every')")" = 2 ]

# Every evaluation's heatmaps reach the store, however far an arm runs ahead
# of the session loop: a micro arm evaluates every 2 steps in well under a
# millisecond, and the screen's "latest" slot it used to be read from was
# overwritten before the loop got to it (the old binary kept about 25 of 100).
HDB=$TMP/heat.db
run_ok "soft,dense,random 200 steps, an evaluation every 2" \
    run $MICRO --db "$HDB" --arms soft,dense,random --steps 200 --eval-every 2
check "every evaluation of every arm has its heatmaps (3 x 101 steps, step 0 included)" \
    [ "$(sql "$HDB" "select group_concat(n) from (select (select count(distinct h.step) from heatmaps h where h.run = r.id) || '/' || (select count(*) from metrics m where m.run = r.id and m.key = 'val_loss') as n from runs r order by r.id)")" = "101/101,101/101,101/101" ]
check "and at the steps of the evaluations" \
    [ "$(sql "$HDB" "select count(*) from metrics m where m.key = 'val_loss' and not exists (select 1 from heatmaps h where h.run = m.run and h.step = m.step)")" = 0 ]
run_ok "the same with --heatmap-every 5" \
    run $MICRO --db "$HDB" --arms soft,dense,random --steps 200 --eval-every 2 --heatmap-every 5
check "--heatmap-every 5: steps 0, 10, 20, .. 200 of each arm (3 x 21)" \
    [ "$(sql "$HDB" "select count(distinct h.run || ':' || h.step) || ' ' || sum(distinct h.step % 10) from heatmaps h join runs r on r.id = h.run where r.session = 2")" = "63 0" ]

# A run stopped before its first step (a session stopped at once: the
# reader of its output gone after three lines, q at once) is resumable like
# any other: its stop writes a checkpoint at step 0 (before, none, and
# resume had nothing to continue from).
ZDB=$TMP/zero.db
run_ok "run --at 0:stop (stopped before its first step)" \
    run $MICRO --db "$ZDB" --arms soft --steps 20 --eval-every 10 --at 0:stop
check "stopped at step 0 with a resumable checkpoint at 0" \
    [ "$(sql "$ZDB" "select status || ' ' || final_step || ' ' || (select group_concat(step) from checkpoints where resumable = 1) from runs")" = "stopped 0 0" ]
run_ok "resume of the run stopped at step 0" resume 1 --db "$ZDB" --headless
check "... finishes its 20 steps" [ "$(sql "$ZDB" "select status || ' ' || final_step from runs")" = "finished 20" ]

echo "resume --steps"
bad "resume of a finished run without --steps" 'finished its 40 steps' "$DB" resume "$SOFT" --db "$DB"
run_ok "resume a finished run --steps 60 (extend)" resume "$SOFT" --db "$DB" --steps 60 --headless
check "extended run is finished at step 60" \
    [ "$(sql "$DB" "select status || ' ' || final_step || ' ' || json_extract(config, '\$.steps') from runs where id = $SOFT")" = "finished 60 60" ]
check "the extension is an event" \
    [ "$(sql "$DB" "select count(*) from events where run = $SOFT and kind = 'resumed' and detail like '--steps 40 -> 60 (extended)%'")" = 1 ]
if [ "$(sql "$DB" "select group_concat(step) from (select step from checkpoints where run = $SOFT order by step)")" = "50,60" ] && [ "$(ls "$SOFTDIR"/step*.safetensors | wc -l)" -eq 2 ]; then ok "resume kept --keep-checkpoints 2 (rows 50, 60; 2 files)"; else fail "resume kept --keep-checkpoints 2 (rows 50, 60; 2 files)"; fi
check "resume kept --heatmap-every 2 (0, 20, 40, 60)" \
    [ "$(sql "$DB" "select group_concat(step) from (select distinct step from heatmaps where run = $SOFT order by step)")" = "0,20,40,60" ]
bad "resume --steps at or below the checkpoint" '--steps 50: .*step 60' "$DB" resume "$SOFT" --db "$DB" --steps 50
bad "resume --steps 0" '--steps' "$DB" resume "$SOFT" --db "$DB" --steps 0
bad "resume --bogus" '--bogus: unknown option for resume' "$DB" resume "$SOFT" --db "$DB" --bogus
run_ok "resume a stopped run --steps 20 --threads 1 (ends earlier than 40)" \
    resume "$STOPPED" --db "$DB" --steps 20 --threads 1 --headless
check "it finished at 20" \
    [ "$(sql "$DB" "select status || ' ' || final_step from runs where id = $STOPPED")" = "finished 20" ]
check "the earlier end is an event" \
    [ "$(sql "$DB" "select count(*) from events where run = $STOPPED and detail like '--steps 40 -> 20 (ends earlier)%'")" = 1 ]

echo "eval RUN, --data generator"
gl eval "$SOFT" --db "$DB" --data generator
if [ "$rc" -eq 0 ] && grep -Eq "^run $SOFT step 60 \(soft\) on generator val split: loss [0-9.]+ ppl [0-9.]+ tokens [0-9]+" "$OUT"; then ok "eval RUN --data generator: exit 0, a loss line"; else fail "eval RUN --data generator: exit 0, a loss line"; fi
gl eval "$SOFT" --db "$DB" --step 50 --gate dense
if [ "$rc" -eq 0 ] && grep -q "step 50 (dense) on generator" "$OUT"; then ok "eval RUN --step 50 --gate dense (cross-evaluated, the run's own data)"; else fail "eval RUN --step 50 --gate dense (cross-evaluated, the run's own data)"; fi
CK=$(sql "$DB" "select path from checkpoints where run = $DENSE order by step desc limit 1")
gl eval "$CK" --data generator
if [ "$rc" -eq 0 ] && grep -Eq '^loss [0-9.]+ ppl' "$OUT"; then ok "eval CKPT --data generator"; else fail "eval CKPT --data generator"; fi
gl eval "$SOFT" --db "$DB" --step 7
if [ "$rc" -eq 1 ] && matches "$(msg)" 'step 7'; then ok "eval RUN --step 7: exit 1, names the step"; else fail "eval RUN --step 7: exit 1, names the step"; fi
gl eval 999 --db "$DB" --data generator
if [ "$rc" -eq 1 ] && matches "$(msg)" 'no run 999'; then ok "eval 999: exit 1, no run 999"; else fail "eval 999: exit 1, no run 999"; fi
bad "eval CKPT without --data" 'missing --data' "$DB" eval "$CK"

echo "rm"
bad "rm 999" 'no run 999' "$DB" rm 999 --db "$DB"
bad "rm --session nosuch" 'no session nosuch' "$DB" rm --session nosuch --db "$DB"
bad "rm RUN and --session" 'not both' "$DB" rm "$SOFT" --session 1 --db "$DB"
bad "rm --bogus" '--bogus: unknown option for rm' "$DB" rm "$SOFT" --bogus --db "$DB"
snapshot "$DB" >"$TMP/before"
gl rm "$DENSE" --db "$DB" --dry-run
snapshot "$DB" >"$TMP/after"
if [ "$rc" -eq 0 ] && grep -q '^would free' "$OUT"; then ok "rm --dry-run: exit 0, says what it would free"; else fail "rm --dry-run: exit 0, says what it would free"; fi
check "rm --dry-run changes nothing" cmp -s "$TMP/before" "$TMP/after"
DENSEDIR=$(dirname "$(sql "$DB" "select path from checkpoints where run = $DENSE limit 1")")
gl rm "$DENSE" --db "$DB"
if [ "$rc" -eq 0 ] && grep -Eq '^freed [0-9]+ rows and 2 files' "$OUT"; then ok "rm RUN: exit 0, prints rows and files freed"; else fail "rm RUN: exit 0, prints rows and files freed"; fi
left=0
for t in runs:id metrics:run layer_metrics:run summaries:run events:run segments:run \
         heatmaps:run checkpoints:run tags:run experiment_runs:run; do
    n=$(sql "$DB" "select count(*) from ${t%%:*} where ${t#*:} = $DENSE")
    [ "$n" = 0 ] || { left=1; echo "       ${t%%:*}: $n rows left"; }
done
check "rm RUN: no row of the run is left in any table" [ "$left" = 0 ]
check "rm RUN: its checkpoint files and directory are gone" [ ! -e "$DENSEDIR" ]
if [ "$(sql "$DB" "select count(*) from checkpoints where run = $SOFT")" = 2 ] && [ -d "$SOFTDIR" ]; then
    ok "rm RUN: the other run of the session is untouched"
else
    fail "rm RUN: the other run of the session is untouched"
fi

echo "rm of a live run"
DB2=$TMP/live.db
"$BIN" run $MICRO --db "$DB2" --arms soft --steps 1000000 --eval-every 1000 >"$TMP/bg.out" 2>&1 &
BGPID=$!
i=0
while [ "$i" -lt 100 ] && [ "$(sql "$DB2" "select count(*) from runs where status = 'running'" 2>/dev/null)" != 1 ]; do
    sleep 0.1; i=$((i + 1))
done
if [ "$(sql "$DB2" "select count(*) from runs where status = 'running'")" = 1 ]; then
    LIVE=$(sql "$DB2" "select id from runs")
    # the live session keeps writing: only its run must be untouched
    for how in "$LIVE" "--session 1"; do
        # shellcheck disable=SC2086  # $how is one or two words
        gl rm $how --db "$DB2"
        if [ "$rc" -eq 2 ] && matches "$(msg)" "run $LIVE is running in process $BGPID" &&
           [ "$(sql "$DB2" "select status from runs where id = $LIVE")" = running ]; then
            ok "rm $how of a running run: exit 2, '$(msg)', still running"
        else
            fail "rm $how of a running run: exit $rc" "$(msg)"
        fi
    done
else
    fail "the background run did not start"
fi
kill -TERM "$BGPID" 2>/dev/null
wait "$BGPID" 2>/dev/null
BGPID=""
check "after it stopped: rm RUN works" sh -c "'$BIN' rm 1 --db '$DB2' >/dev/null 2>&1"

echo "rm --session"
gl rm --session exp1 --db "$DB"
check "rm --session NAME: exit 0" [ "$rc" -eq 0 ]
if [ "$(sql "$DB" "select count(*) from sessions where name = 'exp1'")" = 0 ] && [ "$(sql "$DB" "select count(*) from runs where session = 1")" = 0 ]; then ok "rm --session NAME: the session and its runs are gone"; else fail "rm --session NAME: the session and its runs are gone"; fi
if [ ! -e "$SOFTDIR" ] && [ ! -e "$(dirname "$SOFTDIR")" ]; then ok "rm --session NAME: its checkpoint directory is gone"; else fail "rm --session NAME: its checkpoint directory is gone"; fi
check "rm --session NAME: the other session stays" [ "$(sql "$DB" "select count(*) from runs")" = 1 ]

echo "experiment --name --tag --note"
DB3=$TMP/x.db
gl experiment moe --ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 \
    --threads 1 --seeds 1 --steps 10 --db "$DB3" --name moe1 --tag kind=moe --note "a note" \
    --heatmap-every 2
if [ "$rc" -ne 0 ]; then
    fail "experiment moe --name --tag --note: exit $rc" "$(msg)"
else
    check "experiment: the session is named, noted" \
        [ "$(sql "$DB3" "select count(*) from sessions where name = 'moe1' and note = 'a note'")" -ge 1 ]
    check "experiment: every run is tagged" \
        [ "$(sql "$DB3" "select count(*) from runs where id not in (select run from tags where key = 'kind' and value = 'moe')")" = 0 ]
fi
bad "experiment --tag novalue" '--tag novalue' "$DB3" experiment moe --db "$DB3" --tag novalue

echo "distill --name --tag --note"
gl distill "$STOPPED" --db "$DB" --distill-steps 5 --threads 1 --name dist1 --tag src=stopped \
    --note "post hoc"
DRUN=$(sed -n 's/^stored as run \([0-9]*\) .*/\1/p' "$OUT")
if [ "$rc" -eq 0 ] && [ -n "$DRUN" ]; then ok "distill --name --tag --note: exit 0, a new run"; else fail "distill --name --tag --note: exit 0, a new run"; fi
check "distill: its session named and noted, its run tagged" \
    [ "$(sql "$DB" "select se.name || '|' || se.note || '|' || t.value from runs r join sessions se on se.id = r.session join tags t on t.run = r.id and t.key = 'src' where r.id = ${DRUN:-0}")" = "dist1|post hoc|stopped" ]
bad "distill --tag novalue" '--tag novalue' "$DB" distill "$STOPPED" --db "$DB" --tag novalue

# ---------------------------------------------------------------------------
echo "# show and replay compare learned and random at one clean step (issue 11 item 1)"
# ---------------------------------------------------------------------------
mkdir -p "$TMP/cmp"
CDB=$TMP/cmp/c.db
# shellcheck disable=SC2086
gl run $MICRO --arms soft,random,dense --steps 60 --eval-every 20 --at 30:swap:sigmoid@random --db "$CDB"
check "a session with random swapped to sigmoid at 30: exit 0 (got $rc)" [ "$rc" -eq 0 ]
gl show 1 --db "$CDB"
line=$(grep -A3 '^routing comparisons' "$OUT" | grep 'soft vs random')
check "show 1 compares soft vs random at step 20, the last clean step [$line]" \
    matches "$line" 'step 20: .*at last clean step 20: random swapped to sigmoid at 30'
want=$(sql "$CDB" "select printf('%.3f vs %.3f', learned_ppl, random_ppl) from learned_vs_random")
check "  ... with the view's figures ($want)" matches "$line" "ppl $want"
"$BIN" replay 1 --db "$CDB" </dev/null >"$OUT" 2>"$ERR"
check "replay's text summary prints the same comparison" grep -qF "$line" "$OUT"

# ---------------------------------------------------------------------------
echo "# review fixes: last heatmaps at a thinned stop, a scripted stop at a save step, numeric names, both step spellings, absent metrics"
# ---------------------------------------------------------------------------
mkdir -p "$TMP/fx"
FDB=$TMP/fx/f.db
# shellcheck disable=SC2086
gl run $MICRO --arms soft,dense --steps 60 --eval-every 10 --save-every 10 --heatmap-every 2 \
    --at 30:stop@dense --db "$FDB"
check "soft,dense --heatmap-every 2, dense stopped at 30 (a thinned step): exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "the stopped arm's last heatmaps are stored (at 30)" \
    [ "$(sql "$FDB" "select max(step) from heatmaps where run = 2")" = 30 ]
check "dense stores no gate_grad_norm (the metric does not exist there)" \
    [ "$(sql "$FDB" "select (select count(*) from metrics where run = 2 and key = 'gate_grad_norm') || ' ' ||
        (select count(*) from layer_metrics where run = 2 and key = 'gate_grad_norm') || ' ' ||
        (select count(*) > 0 from metrics where run = 1 and key = 'gate_grad_norm')")" = "0 0 1" ]
# the scripted stop came after step 30's periodic save: resume must not stop there again
gl resume 2 --db "$FDB" --headless
check "resume of the arm stopped at a save step runs to the end (exit $rc)" \
    [ "$(sql "$FDB" "select status || ' ' || final_step from runs where id = 2")" = "finished 60" ]
check "  ... and records its stop once" \
    [ "$(sql "$FDB" "select count(*) from events where run = 2 and kind = 'stop'")" = 1 ]
bad "run --name 42 (a name that reads as a session id)" '--name 42: a name cannot be a number' \
    "$FDB" run $MICRO --db "$FDB" --name 42
bad "distill --steps and --distill-steps together" '--distill-steps: the same as --steps' \
    "$FDB" distill 1 --db "$FDB" --steps 5 --distill-steps 6

totals
[ "$failed" -eq 0 ]
