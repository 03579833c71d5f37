#!/bin/sh
# Tests of issue 14 item 4 through the binary, on a micro session of three
# arms with scripted events (freeze, pause, swap, k):
#   gatelab plot: the SVG parses as XML (Python's standard library), holds
#     one curve per run and one marker per event, and rendered to PNG by
#     rsvg-convert its curve pixels are where the curve falls; PNG and PDF
#     have their magic bytes; --smooth smooths; a run wider than the plot is
#     merged to its pixel columns and the chart says so; --heatmap draws the
#     three maps, and a step without heatmaps is named with those that exist
#   gatelab export --csv: one row per (run, step), the values of `metrics`
#   the screen's w key (in a replay, under tmux): the chart and heatmap SVGs
#     next to the database, and the message line says where
#   bad inputs: one line, non-zero exit, nothing written
# A binary built without Cairo must say so in one line and write nothing;
# the drawing checks are then skipped.
#
# How the SVG is read: Cairo's SVG surface writes no ids or classes, so
# plot.h gives each kind of element a stroke width of its own: a curve is the
# one path stroked PLOT_CURVE_WIDTH (1.75) wide in its run's colour, a marker
# a badge filled with its run's colour and outlined PLOT_MARK_WIDTH (0.65).
#
# Usage (from the repo root):  GATELAB_BIN=build/release/gatelab sh tests/test_plot.sh
# Prints one "  ok ..." / "  FAIL ..." / "  skip ..." line per check, then
# "N passed, N failed" (", N skipped" when any check could not run here).
# POSIX sh; needs python3 and sqlite3; rsvg-convert and tmux where present.

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
    [ "$failed" -eq 0 ]
    exit $?
}

if [ ! -x "$BIN" ]; then
    fail "gatelab binary '$BIN' is not executable (set GATELAB_BIN)"
    totals
fi
for c in python3 sqlite3; do
    command -v $c >/dev/null 2>&1 || { fail "$c is needed by these tests"; totals; }
done
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatelab_plot.XXXXXX") || { echo "mktemp failed"; echo "0 passed, 1 failed"; exit 1; }
SOCK=gatelab_plot_$$
cleanup() {
    tmux -f /dev/null -L "$SOCK" kill-server 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
DB=$TMP/p.db
MICRO="--ctx 32 --dim 32 --layers 1 --heads 2 --batch 4 --eval-windows 4 --threads 1 --headless"

sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>>"$TMP/sql.err"; }
gl() { "$BIN" "$@" >"$OUT" 2>"$ERR"; rc=$?; }
msg() { head -n 1 "$ERR" | cut -c 1-300; }
# the files in the output directory (the temporaries of a failed write too)
files() { ls -a "$TMP/out" | sort; }
mkdir "$TMP/out"

# bad DESC ERE ARGS...: non-zero exit, one stderr line matching ERE,
# nothing new in $TMP/out and the database unchanged
bad() {
    d=$1; re=$2; shift 2
    files >"$TMP/before"
    sql "$DB" "select count(*) from metrics" >>"$TMP/before"
    gl "$@"
    files >"$TMP/after"
    sql "$DB" "select count(*) from metrics" >>"$TMP/after"
    m=$(msg)
    if [ "$rc" -eq 0 ]; then fail "$d: exit 0" "stdout: $(head -n 1 "$OUT")"
    elif [ "$(awk 'END { print NR }' "$ERR")" -ne 1 ]; then fail "$d: not one line" "$(tr '\n' '|' <"$ERR")"
    elif ! printf '%s\n' "$m" | grep -Eq -- "$re"; then fail "$d: message" "got: $m"
    elif ! cmp -s "$TMP/before" "$TMP/after"; then fail "$d: something was written" "$(diff "$TMP/before" "$TMP/after" | tr '\n' '|')"
    else ok "$d: exit $rc, '$m'"; fi
}

echo "a micro session: soft (freeze at 60, swap to topk at 100), random (k 8 at 150), dense (pause at 80)"
gl run $MICRO --arms soft,random,dense --steps 300 --eval-every 20 --heatmap-every 1 \
    --at 60:freeze@soft --at 100:swap:topk@soft --at 150:k:8@random --at 80:pause:0.1@dense \
    --db "$DB"
if [ "$rc" -ne 0 ]; then
    fail "the session: exit $rc" "$(head -n 3 "$ERR" | tr '\n' '|')"
    totals
fi
ok "the session: exit 0"
# the events that leave a marker (record.c event_kind_glyph), per run
MARKED="'swap','pause','set_k','fork','freeze','unfreeze','diverged','resumed'"
check "the session has a marker event on every run" \
    [ "$(sql "$DB" "select count(distinct run) from events where kind in ($MARKED)")" = 3 ]

echo "without Cairo"
gl plot 1 --db "$DB" --out "$TMP/out/probe.svg"
if grep -q "without Cairo" "$ERR"; then
    files >"$TMP/nc"
    check "plot in a build without Cairo: one line naming Cairo and how to get it, exit non-zero" \
        sh -c "[ $rc -ne 0 ] && [ \$(wc -l <'$ERR') -eq 1 ] && grep -q 'libcairo2-dev' '$ERR'"
    check "... and nothing written" sh -c "! ls -a '$TMP/out' | grep -q probe"
    skip "charts, heatmaps and the w key: this gatelab was built without Cairo"
    NOCAIRO=1
else
    skip "the no-Cairo message: this gatelab draws with Cairo (make HAVE_CAIRO=0 builds one without)"
    NOCAIRO=0
    rm -f "$TMP/out/probe.svg"
fi

# svgcheck SVG: prints "curves N" (paths stroked 1.75 wide), then per curve
# colour "curve COLOUR markers M", from the XML (stdlib only)
cat >"$TMP/svg.py" <<'EOF'
import re, sys
import xml.etree.ElementTree as ET

def props(el):
    p = dict(el.attrib)
    for part in el.get("style", "").split(";"):
        if ":" in part:
            k, v = part.split(":", 1)
            p[k.strip()] = v.strip()
    return p

root = ET.parse(sys.argv[1]).getroot()
curves, marks = [], []
for el in root.iter():
    if not el.tag.endswith("}path") and el.tag != "path":
        continue
    p = props(el)
    try:
        w = float(p.get("stroke-width", "nan"))
    except ValueError:
        continue
    if p.get("stroke", "none") != "none" and abs(w - 1.75) < 1e-6:
        curves.append((p["stroke"], p.get("d", "")))
    elif abs(w - 0.65) < 1e-6:
        marks.append(p.get("fill", "none"))
mode = sys.argv[2] if len(sys.argv) > 2 else "count"
if mode == "count":
    print("curves %d" % len(curves))
    for colour, _ in curves:
        print("curve %s markers %d" % (colour, marks.count(colour)))
    print("unmatched markers %d" % sum(1 for m in marks if m not in [c for c, _ in curves]))
elif mode == "points":
    # the points of curve N: "x y" per line (SVG user units)
    d = curves[int(sys.argv[3])][1]
    nums = [float(v) for v in re.findall(r"-?[0-9.]+(?:e-?[0-9]+)?", d)]
    for i in range(0, len(nums) - 1, 2):
        print("%g %g" % (nums[i], nums[i + 1]))
elif mode == "images":
    print(sum(1 for el in root.iter() if el.tag.endswith("}image") or el.tag == "image"))
EOF
# pngcheck PNG SVG: decodes the PNG (zlib, stdlib), finds the pixels of the
# first curve's colour inside its bounding box, and checks that they lie on
# the curve and that it falls: more of them in the top-left than in the
# bottom-left of the box, and higher on the left than on the right
cat >"$TMP/png.py" <<'EOF'
import re, struct, sys, zlib
import xml.etree.ElementTree as ET

def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and inter == 0, "unexpected PNG layout"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return w, h, bpp, rows

svg = ET.parse(sys.argv[2]).getroot()
vb = [float(v) for v in svg.get("viewBox").split()]
colour, d = None, None
for el in svg.iter():
    st = el.get("style", "")
    if "stroke-width:1.75" in st or el.get("stroke-width") == "1.75":
        m = re.search(r"stroke:\s*rgb\(([0-9.]+)%,\s*([0-9.]+)%,\s*([0-9.]+)%\)", st) or \
            re.search(r"rgb\(([0-9.]+)%,\s*([0-9.]+)%,\s*([0-9.]+)%\)", el.get("stroke", ""))
        colour = [round(float(v) * 2.55) for v in m.groups()]
        d = el.get("d"); break
w, h, bpp, rows = read_png(sys.argv[1])
s = w / vb[2]
nums = [float(v) for v in re.findall(r"-?[0-9.]+(?:e-?[0-9]+)?", d)]
pts = [(nums[i] * s, nums[i + 1] * s) for i in range(0, len(nums) - 1, 2)]
x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
def near(px):
    return all(abs(px[k] - colour[k]) <= 40 for k in range(3))
hits = [(x, y) for y in range(int(y0) - 2, int(y1) + 3) for x in range(int(x0), int(x1) + 1)
        if 0 <= y < h and 0 <= x < w and near(rows[y][x * bpp:x * bpp + 3])]
left = [p for p in hits if p[0] < x0 + (x1 - x0) * 0.2]
right = [p for p in hits if p[0] > x0 + (x1 - x0) * 0.8]
mid = (y0 + y1) / 2
tl = sum(1 for p in left if p[1] < mid); bl = sum(1 for p in left if p[1] >= mid)
# every 10th vertex of the path has a curve pixel within 3 pixels
on = sum(1 for (px, py) in pts[::10] if any(near(rows[yy][xx * bpp:xx * bpp + 3])
         for yy in range(int(py) - 3, int(py) + 4) for xx in range(int(px) - 3, int(px) + 4)
         if 0 <= yy < h and 0 <= xx < w))
ly = sum(p[1] for p in left) / max(len(left), 1); ry = sum(p[1] for p in right) / max(len(right), 1)
print("pixels %d top-left %d bottom-left %d left-y %.1f right-y %.1f on-path %d/%d"
      % (len(hits), tl, bl, ly, ry, on, len(pts[::10])))
ok = len(hits) > 50 and tl > 2 * bl and ly < ry and on == len(pts[::10])
sys.exit(0 if ok else 1)
EOF

if [ "$NOCAIRO" = 0 ]; then
    echo "plot --session: val_loss of three runs"
    gl plot --session 1 --db "$DB" --out "$TMP/out/val.svg"
    check "exit 0, and says what it drew" sh -c "[ $rc -eq 0 ] && grep -q 'wrote .*val.svg (svg: val_loss of 3 runs' '$OUT'"
    if python3 "$TMP/svg.py" "$TMP/out/val.svg" >"$TMP/val.count" 2>"$TMP/py.err"; then
        ok "the SVG parses as XML"
    else
        fail "the SVG parses as XML" "$(tail -n 1 "$TMP/py.err")"
    fi
    check "one curve per run (3 paths stroked 1.75 wide)" grep -qx "curves 3" "$TMP/val.count"
    check "three colours" [ "$(grep '^curve ' "$TMP/val.count" | cut -d' ' -f2 | sort -u | wc -l)" -eq 3 ]
    # one marker per marked event, on its own run's curve: the curves are in
    # run order, as the runs' events
    want=$(sql "$DB" "select group_concat(n, ' ') from (select r.id, (select count(*) from events e where e.run = r.id and e.kind in ($MARKED)) n from runs r order by r.id)")
    got=$(grep '^curve ' "$TMP/val.count" | awk '{ print $4 }' | tr '\n' ' ' | sed 's/ $//')
    check "one marker per event, in its run's colour (want $want, got $got)" [ "$want" = "$got" ]
    check "no marker without its curve" grep -qx "unmatched markers 0" "$TMP/val.count"

    gl plot --session 1 --metric f1 --db "$DB" --out "$TMP/out/f1.svg"
    python3 "$TMP/svg.py" "$TMP/out/f1.svg" >"$TMP/f1.count" 2>&1
    check "--session --metric f1: the dense run is left out and named, two curves" sh -c \
        "[ $rc -eq 0 ] && grep -qx 'left out (no f1): 3 (dense)' '$OUT' && grep -qx 'curves 2' '$TMP/f1.count'"

    echo "rendering: train_loss of one run, drawn by rsvg-convert"
    gl plot 2 --db "$DB" --metric train_loss --out "$TMP/out/train.svg"
    check "plot 2 --metric train_loss: exit 0" [ "$rc" -eq 0 ]
    cp "$OUT" "$TMP/train.out"
    if command -v rsvg-convert >/dev/null 2>&1; then
        if rsvg-convert "$TMP/out/train.svg" -o "$TMP/train.png" 2>"$TMP/rsvg.err"; then
            ok "rsvg-convert renders it"
            if python3 "$TMP/png.py" "$TMP/train.png" "$TMP/out/train.svg" >"$TMP/png.out" 2>&1; then
                ok "curve pixels on the path, and the loss falls: $(cat "$TMP/png.out")"
            else
                fail "curve pixels where the curve should be" "$(tail -n 2 "$TMP/png.out" | tr '\n' '|')"
            fi
        else
            fail "rsvg-convert renders it" "$(head -n 1 "$TMP/rsvg.err")"
        fi
    else
        skip "rendering the SVG: no rsvg-convert (make deps installs librsvg2-bin)"
    fi

    echo "smoothing and full resolution"
    gl plot 2 --db "$DB" --metric train_loss --smooth 0.95 --out "$TMP/out/smooth.svg"
    check "--smooth 0.95: exit 0" [ "$rc" -eq 0 ]
    # total variation of the drawn y: the smoothed curve wiggles less
    tv() { python3 "$TMP/svg.py" "$1" points 0 | awk 'NR > 1 { d = $2 - p; t += d < 0 ? -d : d } { p = $2 } END { printf "%d\n", t }'; }
    raw=$(tv "$TMP/out/train.svg"); smo=$(tv "$TMP/out/smooth.svg")
    check "the smoothed curve wiggles less (total variation $smo < $raw)" [ "$smo" -lt "$raw" ]
    check "every step drawn when the plot is wide enough (300 points)" \
        [ "$(python3 "$TMP/svg.py" "$TMP/out/train.svg" points 0 | wc -l)" -eq 300 ]
    # Cairo writes the chart's words as glyph outlines: what the chart says
    # about its resolution is checked on the line plot prints, made from the
    # same figures
    check "... and says so" grep -q "300 points, all drawn" "$TMP/train.out"
    gl plot 2 --db "$DB" --metric train_loss --width 320 --out "$TMP/out/narrow.svg"
    n=$(python3 "$TMP/svg.py" "$TMP/out/narrow.svg" points 0 | wc -l)
    check "--width 320: 300 steps merged to the 218 pixel columns (got $n points)" \
        sh -c "[ '$n' -le 218 ] && [ '$n' -ge 150 ]"
    check "... and says so" grep -q "300 points merged to $n (one mean per pixel column of 218)" "$OUT"

    echo "PNG and PDF"
    gl plot 1,2 --db "$DB" --metric train_loss --log --out "$TMP/out/t.png"
    check "plot --log --out t.png: exit 0" [ "$rc" -eq 0 ]
    check "t.png starts with the PNG signature" sh -c \
        "head -c 8 '$TMP/out/t.png' | od -An -tx1 | tr -d ' \n' | grep -qx 89504e470d0a1a0a"
    gl plot 1 --db "$DB" --metric f1 --format pdf --out "$TMP/out/f1"
    check "plot --metric f1 --format pdf: exit 0" [ "$rc" -eq 0 ]
    check "the PDF starts with %PDF-" sh -c "head -c 5 '$TMP/out/f1' | grep -q '^%PDF-'"

    echo "a log axis and values it cannot draw"
    # soft's gate is topk from step 100: its gate gradient is exactly 0 there
    z=$(sql "$DB" "select count(*) from metrics where run = 1 and key = 'gate_grad_norm' and value <= 0")
    gl plot 1 --db "$DB" --metric gate_grad_norm --log --out "$TMP/out/ggn.svg"
    check "plot --metric gate_grad_norm --log: the $z zero values are said to be left out, not dropped silently" \
        sh -c "[ $rc -eq 0 ] && [ '$z' -gt 0 ] && grep -q ', $z values left out (<= 0 on the log axis, or not finite)' '$OUT'"
    gl plot 1 --db "$DB" --metric gate_grad_norm --out "$TMP/out/ggn-lin.svg"
    check "... on a linear axis every value is drawn" sh -c "[ $rc -eq 0 ] && ! grep -q 'left out' '$OUT'"

    echo "plot --heatmap"
    gl plot 1 --heatmap --step 200 --layer 0 --head 1 --db "$DB" --out "$TMP/out/heat.svg"
    check "--heatmap --step 200 --layer 0 --head 1: exit 0" [ "$rc" -eq 0 ]
    check "the three maps (3 images in the SVG)" [ "$(python3 "$TMP/svg.py" "$TMP/out/heat.svg" images 2>/dev/null)" = 3 ]
    gl plot 1 --heatmap --db "$DB" --out "$TMP/out/heatlast.png"
    check "--heatmap without --step: the newest (step 300)" grep -q "at step 300, layer 0, head 0" "$OUT"
    # every evaluation's heatmaps are stored whatever the load (the arm hands
    # the store's copy over without loss: arm_heat_take)
    bad "--heatmap --step 7: names the stored steps" \
        "run 1 has no heatmap at step 7 \(stored at steps: 0 10 20 40 60 80 \.\.\. 200 220 240 260 280 300\)" \
        plot 1 --heatmap --step 7 --db "$DB" --out "$TMP/out/h7.svg"
    bad "--heatmap --layer 1 (one layer)" "--layer.*run 1 has 1 layer" \
        plot 1 --heatmap --layer 1 --db "$DB" --out "$TMP/out/h.svg"
    bad "--heatmap with two runs" "plot --heatmap: one RUN" \
        plot 1,2 --heatmap --db "$DB" --out "$TMP/out/h.svg"

    echo "bad inputs write nothing"
    bad "unknown run" "no run 999 in" plot 999 --db "$DB" --out "$TMP/out/x.svg"
    bad "unknown session" "no session 77 with runs in" plot --session 77 --db "$DB" --out "$TMP/out/x.svg"
    bad "unknown metric" "--metric val_los: unknown metric \(gatelab writes: val_loss" \
        plot 1 --metric val_los --db "$DB" --out "$TMP/out/x.svg"
    bad "a metric the run does not have (dense has no f1)" "run 3 \(dense\) has no metric f1 \(it has: " \
        plot 1,3 --metric f1 --db "$DB" --out "$TMP/out/x.svg"
    bad "an --out in a missing directory" "cannot write $TMP/out/nodir/x.svg: No such file or directory" \
        plot 1 --db "$DB" --out "$TMP/out/nodir/x.svg"
    mkdir "$TMP/out/adir"
    bad "an --out that is a directory" "cannot write $TMP/out/adir.*not a regular file" \
        plot 1 --db "$DB" --out "$TMP/out/adir" --format svg
    if [ "$(id -u)" != 0 ]; then
        mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
        bad "an --out in a read-only directory" "cannot write $TMP/ro/x.svg: Permission denied" \
            plot 1 --db "$DB" --out "$TMP/ro/x.svg"
    else
        skip "a read-only directory: root writes anyway"
    fi
    bad "--format against the extension" "--format png: --out .*x.svg names svg" \
        plot 1 --db "$DB" --format png --out "$TMP/out/x.svg"
    bad "--format gif" "--format gif: not a format" plot 1 --db "$DB" --format gif --out "$TMP/out/x.gif"
    bad "--smooth 1" "--smooth 1: an EMA factor" plot 1 --db "$DB" --smooth 1 --out "$TMP/out/x.svg"
    bad "--smooth x" "--smooth x: an EMA factor" plot 1 --db "$DB" --smooth x --out "$TMP/out/x.svg"
    bad "no --out" "plot: missing --out FILE" plot 1 --db "$DB"
    bad "RUN and --session" "not both" plot 1 --session 1 --db "$DB" --out "$TMP/out/x.svg"
    bad "--step without --heatmap" "go with --heatmap" plot 1 --step 3 --db "$DB" --out "$TMP/out/x.svg"
    bad "a missing database" "no database at" plot 1 --db "$TMP/none.db" --out "$TMP/out/x.svg"
fi

echo "export --csv"
gl export --session 1 --db "$DB" --csv "$TMP/out/all.csv"
check "export --session 1 --csv: exit 0" [ "$rc" -eq 0 ]
cat >"$TMP/csvcheck.py" <<'EOF'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = list(csv.reader(open(sys.argv[2], newline="")))
head, body = rows[0], rows[1:]
assert head[:2] == ["run", "step"], "header %r" % head[:2]
keys = sorted(k for (k,) in db.execute("select distinct key from metrics"))
assert sorted(head[2:]) == keys, "columns %r, metrics has %r" % (head[2:], keys)
want = db.execute("select count(*) from (select distinct run, step from metrics)").fetchone()[0]
assert len(body) == want, "%d rows, metrics has %d (run, step) pairs" % (len(body), want)
pairs = set((int(r[0]), int(r[1])) for r in body)
assert len(pairs) == len(body), "a (run, step) twice"
stored = {(r, k, s): v for r, k, s, v in db.execute("select run, key, step, value from metrics")}
cells = 0
for r in body:
    for k, v in zip(head[2:], r[2:]):
        key = (int(r[0]), k, int(r[1]))
        if v == "":
            assert key not in stored, "empty cell for a stored value %r" % (key,)
        else:
            assert float(v) == stored[key], "%r: %s vs %r" % (key, v, stored[key])
            cells += 1
assert cells == len(stored), "%d cells, %d metrics rows" % (cells, len(stored))
print("%d rows, %d columns, %d values, all equal to metrics" % (len(body), len(head), cells))
EOF
if python3 "$TMP/csvcheck.py" "$DB" "$TMP/out/all.csv" >"$TMP/csv.out" 2>&1; then
    ok "one row per (run, step), every value as in metrics: $(cat "$TMP/csv.out")"
else
    fail "the CSV matches the metrics table" "$(tail -n 1 "$TMP/csv.out")"
fi
gl export 2 --db "$DB" --csv "$TMP/out/two.csv"
check "export 2 --csv: one run's rows (300 steps and the evaluation at step 0)" sh -c \
    "[ $rc -eq 0 ] && [ \$(tail -n +2 '$TMP/out/two.csv' | cut -d, -f1 | sort -u) = 2 ] && [ \$(tail -n +2 '$TMP/out/two.csv' | wc -l) -eq 301 ]"
bad "export --csv of a missing run" "no run 42 in" export 42 --db "$DB" --csv "$TMP/out/x.csv"
bad "export --csv into a missing directory" "cannot write .*nodir/x.csv" \
    export 1 --db "$DB" --csv "$TMP/out/nodir/x.csv"
bad "export --session without --csv" "export --session: only with --csv" \
    export --session 1 --db "$DB" --out "$TMP/out/x.safetensors"
gl export 1 --db "$DB" --out "$TMP/out/w.safetensors"
check "export RUN --out FILE.safetensors still works" sh -c "[ $rc -eq 0 ] && [ -s '$TMP/out/w.safetensors' ]"

echo "the screen's w key (replay, in tmux)"
if [ "$NOCAIRO" = 1 ]; then
    skip "the w key: no Cairo"
elif ! command -v tmux >/dev/null 2>&1; then
    skip "the w key: no tmux (make deps installs it)"
else
    tm() { tmux -f /dev/null -L "$SOCK" "$@"; }
    cap() { tm capture-pane -p -t "$1" 2>/dev/null; }
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
    tm new-session -d -s rp -x 160 -y 40 \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 $BIN replay 1 --db $DB 2>$TMP/rp.err; echo \$? > $TMP/rp.rc; sleep 60"
    if wait_until 300 shows rp "Events"; then
        tm send-keys -t rp w
        check "w: the message line says where (the chart and the heatmap)" \
            wait_until 300 shows rp "wrote $TMP/p-session1-step300-loss.svg and p-session1-step300-soft-L0H0-heatmap.svg"
        python3 "$TMP/svg.py" "$TMP/p-session1-step300-loss.svg" >"$TMP/w.count" 2>&1
        check "w: the chart is next to the database, and parses" [ $? -eq 0 ]
        check "w: six curves (train and val of three arms)" grep -qx 'curves 6' "$TMP/w.count"
        check "w: the heatmap is next to the database, with its three maps" \
            [ "$(python3 "$TMP/svg.py" "$TMP/p-session1-step300-soft-L0H0-heatmap.svg" images 2>/dev/null)" = 3 ]
        # the chart the screen shows: m three times is F1 vs oracle
        tm send-keys -t rp m m m
        wait_until 300 shows rp "F1 vs oracle"
        tm send-keys -t rp w
        check "w on the F1 view: writes that chart" \
            wait_until 300 shows rp "wrote $TMP/p-session1-step300-F1_vs_oracle.svg and"
        python3 "$TMP/svg.py" "$TMP/p-session1-step300-F1_vs_oracle.svg" >"$TMP/wf1.count" 2>&1
        check "w on the F1 view: two curves (dense has no F1 and is left out)" \
            grep -qx 'curves 2' "$TMP/wf1.count"
        tm send-keys -t rp q
        check "replay: q exits 0 after w" wait_until 100 sh -c "[ \"\$(cat $TMP/rp.rc 2>/dev/null)\" = 0 ]"
    else
        fail "replay did not come up" "$(cap rp | head -n 3 | tr '\n' '|')"
    fi
fi

totals
