#!/bin/sh
# Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/TARGET/
# (each seed well under 200 KB, all of them under 1 MB). Run from the repo
# root after `make`; needs python3 and sqlite3. The files are committed: run
# this only to remake them (a new schema version, a new format), never to
# keep what a fuzzing run found (`make fuzz` grows a copy in build/fuzz/).
#   fuzz_bin          llm.c .bin files, valid and broken one way each
#   fuzz_text         option byte + text chunks split by 0x1e (see fuzz_text.c)
#   fuzz_args         command lines of README and tests/test_cli.sh, a word a line
#   fuzz_db           a real gatelab database of a micro run (VACUUMed, small
#                     pages), empty ones at schema 1 and at the version before
#                     the current one, a foreign database, a few patches
#   fuzz_safetensors  a micro model's exported weights and resumable checkpoint
set -eu
BIN=${GATELAB_BIN:-build/release/gatelab}
OUT=tests/fuzz/corpus
[ -x "$BIN" ] || { echo "make_corpus: no $BIN (run make first)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/gatelab-corpus.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT/fuzz_bin" "$OUT/fuzz_text" "$OUT/fuzz_args" "$OUT/fuzz_db" "$OUT/fuzz_safetensors"

# ---- fuzz_bin: header byte 12 picks T = 1 + byte % 48 in the target, byte 16
# how many times the repaired copy repeats the tokens (see fuzz_bin.c) ----
python3 - "$OUT/fuzz_bin" <<'EOF'
import struct, sys, os
d = sys.argv[1]
def write(name, toks, magic=20240520, version=1, ntokens=None, t_byte=3, header_ints=256, tail=b"",
          repeat=0):
    h = [0] * 256
    h[0], h[1], h[2] = magic, version, len(toks) if ntokens is None else ntokens
    h[3], h[4] = t_byte, repeat
    blob = struct.pack("<256i", *h)[:header_ints * 4] + struct.pack("<%dH" % len(toks), *toks) + tail
    open(os.path.join(d, name), "wb").write(blob)
toks = [(i * 7) % 250 for i in range(300)]
write("good.bin", toks)                                   # T = 4
write("good-t32.bin", toks, t_byte=31)                    # T = 32
write("good-x48.bin", toks[:100], repeat=3)               # r.bin: 48 copies of the body
write("gpt2-ids.bin", [(i * 4099) % 50257 for i in range(200)], t_byte=7)
write("min.bin", list(range(10)))                         # exactly 2*(T+1) for T = 4
write("one-short.bin", list(range(9)))                    # one token short
write("badmagic.bin", toks[:40], magic=12345)
write("badversion.bin", toks[:40], version=2)
write("trunc.bin", [], header_ints=100)                   # 400-byte header
write("count.bin", toks[:40], ntokens=50)                 # header says 50, file holds 40
write("zero.bin", [], ntokens=0)
write("negative.bin", toks[:40], ntokens=-40)
write("odd.bin", toks[:40], tail=b"\x01")                 # a trailing half token
open(os.path.join(d, "empty.bin"), "wb").close()
EOF

# ---- fuzz_text ----
python3 - "$OUT/fuzz_text" README.md <<'EOF'
import sys, os
d, readme = sys.argv[1], sys.argv[2]
text = open(readme, "rb").read()
RS = b"\x1e"
def write(name, opt, body):
    open(os.path.join(d, name), "wb").write(bytes([opt]) + body)
para = text[text.find(b"gatelab is a terminal lab"):][:1200]
write("readme-t1", 0x00, para)
write("readme-t16", 0x03, para)
write("three-files", 0x01, RS.join([b"the cat sat on a mat ", b"while the dog ran far away ",
                                    b"from home and birds sang"]))
write("reversed-links", 0x02 | 0x20 | 0x10, RS.join([b"first file first ", b"second file ",
                                                     b"third and last"]))
write("hidden-subdir", 0x01 | 0x04 | 0x08 | 0x40, RS.join([b"abcdefgh", b"", b"ijklmnop"]))
write("nul-in-second", 0x01, b"plain text here" + RS + b"bin\x00ary" + RS + b"more text")
write("empty-files", 0x00, RS + RS + RS)
write("no-files", 0x80 | 0x04, b"nothing written")
screen = text[text.find(b"```\n gatelab | session"):][:1500]
write("utf8-screen", 0x02, screen)
write("eight-plus", 0x00, RS.join([bytes([65 + i]) * 5 for i in range(10)]))
# a NUL past the first 4 KiB is not looked for (fuzz_text.options raises max_len)
write("nul-after-probe", 0x03, (para * 4)[:4200] + b"\x00" + para[:200])
EOF

# ---- fuzz_args: one command line per seed, words on lines ----
n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    printf '%s\n' $line >"$OUT/fuzz_args/$(printf 'args%02d' $n)"
done <<'EOF'
--arms soft,random,dense --preset tiny --steps 2000 --at 1000:swap:random@soft
--ctx 64 --dim 64 --layers 2 --heads 4 --batch 8 --eval-every 50 --steps 3000
--arms soft --db x.db --ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --steps 20 --eval-every 10 --eval-windows 4 --threads 1
--arms soft,random --steps 100 --at 50:k:8@soft --at 20:pause:2.5 --at 30:resume --at 40:freeze@1 --at 60:unfreeze@1
--arms soft --steps 100 --at 10:fork:topk@soft --at 20:checkpoint --at 90:stop@0 --at 0:swap:stochastic
--arms dense,dense+moe,soft+moe-random --experts 3 --moe-aux 0.02 --steps 40
--preset small --k 16 --gate-temp 0.5 --lr 1e-3 --gate-lr 0 --warmup 10 --weight-decay 0 --clip 0
--seed 7 --mlp 128 --gate-rank 8 --vocab 300 --save-every 10 --out ck --no-telemetry --headless --compare 1,2
--arms topk,topk-random,sigmoid,oracle --data text.txt --steps 200 --at 200:k:1@topk2
--bogus
extra
--steps abc
--steps -5
--k 0
--lr nan
--gate-temp 0
--dim 30 --heads 4
--ctx 32 --k 40
--arms bogus
--preset huge
--steps
--vocab 1
--arms dense+moex
--arms dense+moe --experts 1
--at 5000:swap:random --steps 100
--at 10:k:99 --ctx 32
--at 10:stop@nosuch
--at 10:pause:-1
--at 10:swap:distilled
--at x:stop
--arms soft,,dense
--compare 1,,2
EOF
printf '%s\0' --arms 'soft,random' --at '10:k:4@random' --steps 20 >"$OUT/fuzz_args/nul-separated"

# ---- a micro run: the database and a checkpoint ----
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1 --headless"
"$BIN" run $MICRO --arms soft,random --steps 20 --eval-every 10 --db "$TMP/run.db" \
    --at 10:k:8@soft --at 15:stop@random >/dev/null
"$BIN" run $MICRO --arms dense --steps 10 --eval-every 10 --db "$TMP/run.db" >/dev/null
# 1 KiB pages keep the ~30 tables and indexes (one page each at least) small;
# the patch base stays in WAL mode, as gatelab leaves it.
sqlite3 "$TMP/run.db" "PRAGMA wal_checkpoint(TRUNCATE); UPDATE sessions SET host = 'seed';
    PRAGMA journal_mode = DELETE;
    PRAGMA page_size = 1024; VACUUM; PRAGMA journal_mode = WAL;" >/dev/null
cp "$TMP/run.db" "$OUT/fuzz_db/seed.db"
cp "$TMP/run.db" "$TMP/del.db"
sqlite3 "$TMP/del.db" "PRAGMA journal_mode = DELETE; DELETE FROM heatmaps; PRAGMA page_size = 512;
    VACUUM;" >/dev/null
cp "$TMP/del.db" "$OUT/fuzz_db/seed-rollback-512.db"
# empty databases at schema version 1 and at the version before the current
# one, as an older gatelab left them (store_open migrates them; 1735683170 is
# STORE_APPLICATION_ID): the text of the first N migrations, printed by
# store/store_schema.c itself ("mig N" prints them, "mig" the current version)
cat >"$TMP/mig.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "store_int.h"
int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("%d\n", STORE_SCHEMA_VERSION);
        return 0;
    }
    for (int v = 0; v < atoi(argv[1]); v++)
        printf("%s\n", store_migrations[v]);
    return 0;
}
C
${CC:-cc} -std=c11 -D_GNU_SOURCE -Iinclude -Istore $(pkg-config --cflags sqlite3) "$TMP/mig.c" \
    store/store_schema.c -o "$TMP/mig"
current=$("$TMP/mig")
for v in 1 $((current - 1)); do
    [ "$v" -ge 1 ] && [ ! -e "$OUT/fuzz_db/schema$v.db" ] || continue
    "$TMP/mig" "$v" >"$TMP/v$v.sql"
    sqlite3 "$TMP/v$v.db" "PRAGMA page_size = 512;" ".read $TMP/v$v.sql" \
        "PRAGMA application_id = 1735683170; PRAGMA user_version = $v;"
    cp "$TMP/v$v.db" "$OUT/fuzz_db/schema$v.db"
done
sqlite3 "$TMP/other.db" "PRAGMA page_size = 512; CREATE TABLE t (x); INSERT INTO t VALUES (1);"
cp "$TMP/other.db" "$OUT/fuzz_db/foreign.db"
# patches (see fuzz_db.c): offset 3 bytes LE, length, bytes; length 0 truncates
python3 - "$OUT/fuzz_db" <<'EOF'
import struct, sys, os
d = sys.argv[1]
def patch(off, data): return struct.pack("<I", off)[:3] + bytes([len(data)]) + data
def write(name, *ps): open(os.path.join(d, name), "wb").write(b"".join(ps))
write("patch-newer", patch(60, struct.pack(">I", 4)))             # user_version 4
write("patch-appid", patch(68, b"XXXX"))                         # not gatelab's application_id
write("patch-truncate", patch(3000, b""))                        # cut after page 2
write("patch-pagesize", patch(16, b"\x00\x01"))                  # page size 65536
write("patch-schema", patch(1100, b"\xff" * 40), patch(2200, b"CREATE TABLE"))
write("patch-freelist", patch(32, struct.pack(">II", 7, 1000)))  # bad freelist head and count
EOF
"$BIN" export 1 --db "$TMP/run.db" --out "$OUT/fuzz_safetensors/soft-weights.safetensors" >/dev/null

# ---- fuzz_safetensors: a smaller model's checkpoint ----
"$BIN" run --ctx 16 --dim 16 --layers 1 --heads 2 --batch 2 --eval-windows 2 --threads 1 \
    --headless --arms topk --steps 4 --eval-every 4 --db "$TMP/st.db" --out "$TMP/ck" >/dev/null
# (under --out, the run's own directory: DBNAME-DBID/session-1/arm0-topk/)
ck=$(find "$TMP/ck" -path '*/arm0-topk/step000004.safetensors' | head -n 1)
[ -n "$ck" ] || { echo "make_corpus: no step000004.safetensors of arm0-topk under $TMP/ck" >&2; exit 1; }
cp "$ck" "$OUT/fuzz_safetensors/topk-resumable.safetensors"

du -sh "$OUT"
find "$OUT" -type f -size +200k -exec echo "make_corpus: over 200 KB: {}" \;
