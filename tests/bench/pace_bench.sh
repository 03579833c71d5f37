#!/bin/sh
# pace_bench.sh OLD NEW [STEPS]: the README's "Arms that advance together"
# figures. Runs tiny-preset sessions (embedded corpus, --threads 2, headless,
# telemetry into a fresh database in a temporary directory) with two gatelab
# binaries alternately — 3 arms old, new, new, old; 2 arms old, new; 1 arm
# new, old; 3 arms new, old — and prints per run: binary, arms, wall
# seconds, tokens, tokens/s and the largest lag (steps one arm's stored step
# was ahead of another running arm's, from wall_ms; the query of
# tests/test_pace.sh). Compare ratios of neighbouring runs, not absolutes,
# on a shared machine.
old=${1:?usage: pace_bench.sh OLD_BIN NEW_BIN [STEPS]}
new=${2:?usage: pace_bench.sh OLD_BIN NEW_BIN [STEPS]}
steps=${3:-90}
every=30
dir=$(mktemp -d "${TMPDIR:-/tmp}/pace_bench.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

one() {
    label=$1; bin=$2; arms=$3; n=$4
    db=$dir/run.db
    rm -rf "$db" "$dir/ckpt"
    t0=$(date +%s.%N)
    "$bin" run --preset tiny --headless --arms "$arms" --steps "$n" --eval-every $every \
        --threads 2 --db "$db" >/dev/null 2>&1 || { echo "$label $arms: run failed"; return; }
    t1=$(date +%s.%N)
    tok=$(sqlite3 "$db" "SELECT SUM(final_step * json_extract(config, '\$.batch') * json_extract(config, '\$.T')) FROM runs")
    lag=$(sqlite3 "$db" "
WITH a AS (SELECT run, step, wall_ms FROM metrics WHERE key = 'train_loss'),
l AS (SELECT a.step AS s, rb.final_step AS bfinal,
        (SELECT MAX(b.step) FROM metrics b
          WHERE b.run = rb.id AND b.key = 'train_loss' AND b.wall_ms <= a.wall_ms) AS bstep
      FROM a JOIN runs rb ON rb.id <> a.run)
SELECT COALESCE(MAX(s - bstep), 0) FROM l WHERE bstep IS NOT NULL AND bstep < bfinal;")
    awk -v l="$label" -v a="$arms" -v t0="$t0" -v t1="$t1" -v tok="$tok" -v lag="$lag" \
        'BEGIN { w = t1 - t0; printf "%s %s %.1f s %d tokens %.0f tok/s lag %s\n", l, a, w, tok, tok / w, lag }'
}

one old "$old" soft,random,dense "$steps"
one new "$new" soft,random,dense "$steps"
one new "$new" soft,random,dense "$steps"
one old "$old" soft,random,dense "$steps"
one old "$old" soft,dense $((steps * 2 / 3))
one new "$new" soft,dense $((steps * 2 / 3))
one new "$new" soft $((steps * 2 / 3))
one old "$old" soft $((steps * 2 / 3))
one new "$new" soft,random,dense "$steps"
one old "$old" soft,random,dense "$steps"
