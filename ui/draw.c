/* draw: the drawing primitives shared by the panels. Two render paths only —
 * UTF-8 (braille, block elements, box rules) and plain ASCII — chosen once
 * from the locale, so no panel ever has to ask which one it is on. */
#include "ui_draw.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "common.h"

static int term_utf8, term_color;

/* Pairs 1..UI_ARM_COLORS are the arms; the roles follow. */
#define UI_ARM_COLORS 6
static const short arm_colors[UI_ARM_COLORS] = {COLOR_CYAN, COLOR_MAGENTA, COLOR_YELLOW,
                                                COLOR_GREEN, COLOR_BLUE, COLOR_RED};
enum { PAIR_OK = UI_ARM_COLORS + 1, PAIR_WARN, PAIR_BAD, PAIR_TITLE, PAIR_KEY };

void ui_draw_setup(int utf8, int color)
{
    term_utf8 = utf8;
    term_color = color;
    if (!color)
        return;
    start_color();
    /* the terminal's own background, where it lets us */
    short bg = use_default_colors() == OK ? -1 : COLOR_BLACK;
    for (short i = 0; i < UI_ARM_COLORS; i++)
        init_pair((short)(i + 1), arm_colors[i], bg);
    init_pair(PAIR_OK, COLOR_GREEN, bg);
    init_pair(PAIR_WARN, COLOR_YELLOW, bg);
    init_pair(PAIR_BAD, COLOR_RED, bg);
    init_pair(PAIR_TITLE, COLOR_CYAN, bg);
    init_pair(PAIR_KEY, COLOR_BLACK, COLOR_CYAN);
}

attr_t ui_attr(ui_attr_role r)
{
    switch (r) {
    case UI_ATTR_TITLE:
        return A_BOLD | (term_color ? COLOR_PAIR(PAIR_TITLE) : 0);
    case UI_ATTR_DIM:
        return A_DIM;
    case UI_ATTR_OK:
        return A_BOLD | (term_color ? COLOR_PAIR(PAIR_OK) : 0);
    case UI_ATTR_WARN:
        return A_BOLD | (term_color ? COLOR_PAIR(PAIR_WARN) : A_REVERSE);
    case UI_ATTR_BAD:
        return A_BOLD | (term_color ? COLOR_PAIR(PAIR_BAD) : A_REVERSE);
    case UI_ATTR_KEY:
        return term_color ? COLOR_PAIR(PAIR_KEY) : A_REVERSE;
    case UI_ATTR_NORMAL:
    case UI_ATTR_COUNT:
        break;
    }
    return A_NORMAL;
}

attr_t ui_arm_attr(size_t arm)
{
    return term_color ? COLOR_PAIR((short)(arm % UI_ARM_COLORS + 1)) : A_NORMAL;
}

attr_t ui_ghost_attr(size_t color)
{
    return A_DIM | ui_arm_attr(color);
}

/* ---- cells ---- */

static int screen_has(int y, int x)
{
    return y >= 0 && x >= 0 && y < LINES && x < COLS;
}

static void set_attr(attr_t a)
{
    attr_set(a & ~A_COLOR, (short)PAIR_NUMBER(a), NULL);
}

void ui_glyph(int y, int x, wchar_t utf8, char ascii, attr_t a)
{
    if (!screen_has(y, x))
        return;
    set_attr(a);
    if (term_utf8 && utf8) {
        wchar_t s[2] = {utf8, 0};
        mvaddnwstr(y, x, s, 1);
    } else {
        mvaddch(y, x, (chtype)(unsigned char)ascii);
    }
    set_attr(A_NORMAL);
}

void ui_clear(ui_rect r)
{
    set_attr(A_NORMAL);
    for (int y = r.y; y < r.y + r.h; y++) {
        if (y < 0 || y >= LINES)
            continue;
        int x0 = r.x < 0 ? 0 : r.x, x1 = r.x + r.w > COLS ? COLS : r.x + r.w;
        if (x1 > x0)
            mvhline(y, x0, ' ', x1 - x0);
    }
}

int ui_text(int y, int x, int maxw, attr_t a, const char *s)
{
    if (y < 0 || y >= LINES || x >= COLS || maxw <= 0)
        return 0;
    if (x + maxw > COLS)
        maxw = COLS - x;
    char buf[512];
    int n = 0;
    for (; s[n] && n < maxw && n < (int)sizeof buf - 1; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = c >= 0x80 || c < 0x20 ? '?' : (char)c;
    }
    buf[n] = 0;
    if (n == 0)
        return 0;
    set_attr(a);
    mvaddnstr(y, x, buf, n);
    set_attr(A_NORMAL);
    return n;
}

int ui_textf(int y, int x, int maxw, attr_t a, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ui_text(y, x, maxw, a, buf);
}

void ui_hline(int y, int x, int w, attr_t a)
{
    for (int i = 0; i < w; i++)
        ui_glyph(y, x + i, L'─', '-', a);
}

void ui_vline(int y, int x, int h, attr_t a)
{
    for (int i = 0; i < h; i++)
        ui_glyph(y + i, x, L'│', '|', a);
}

void ui_title(int y, int x, int w, const char *title, const char *right)
{
    if (w <= 0)
        return;
    ui_hline(y, x, w, ui_attr(UI_ATTR_DIM));
    int used = 2;
    if (w > 4) {
        ui_text(y, x + 1, 1, A_NORMAL, " ");
        used = 2 + ui_text(y, x + 2, w - 4, ui_attr(UI_ATTR_TITLE), title);
        ui_text(y, x + used, 1, A_NORMAL, " ");
        used++;
    }
    if (right && *right) {
        int n = (int)strlen(right);
        int at = x + w - n - 2;
        if (at > x + used + 1) {
            ui_text(y, at - 1, 1, A_NORMAL, " ");
            ui_text(y, at, n, ui_attr(UI_ATTR_DIM), right);
            ui_text(y, at + n, 1, A_NORMAL, " ");
        }
    }
}

void ui_bar(int y, int x, int w, double frac, attr_t a)
{
    if (w <= 0 || isnan(frac))
        return;
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    if (term_utf8) {
        static const wchar_t eighths[8] = {0, L'▏', L'▎', L'▍', L'▌', L'▋', L'▊', L'▉'};
        int units = (int)lround(frac * w * 8);
        for (int i = 0; i < w; i++, units -= 8) {
            if (units >= 8)
                ui_glyph(y, x + i, L'█', '#', a);
            else if (units > 0)
                ui_glyph(y, x + i, eighths[units], '#', a);
        }
    } else {
        int full = (int)lround(frac * w);
        for (int i = 0; i < full; i++)
            ui_glyph(y, x + i, 0, '#', a);
    }
}

static const wchar_t shade_utf8[] = L" ·░▒▓█";
static const char shade_ascii[] = " .:-=+*#%@";

void ui_shade(int y, int x, double v, attr_t a)
{
    if (isnan(v) || v < 0)
        v = 0;
    if (v > 1)
        v = 1;
    if (term_utf8) {
        int n = (int)(sizeof shade_utf8 / sizeof shade_utf8[0]) - 1;
        /* anything above zero shows: a faint key is still a kept key */
        int i = v <= 0 ? 0 : 1 + (int)(v * (n - 1) - 1e-9);
        if (i >= n)
            i = n - 1;
        ui_glyph(y, x, shade_utf8[i], ' ', a);
    } else {
        int n = (int)sizeof shade_ascii - 1;
        int i = v <= 0 ? 0 : 1 + (int)(v * (n - 1) - 1e-9);
        if (i >= n)
            i = n - 1;
        ui_glyph(y, x, 0, shade_ascii[i], a);
    }
}

int ui_shade_legend(int y, int x, int maxw)
{
    int n = term_utf8 ? (int)(sizeof shade_utf8 / sizeof shade_utf8[0]) - 1
                      : (int)sizeof shade_ascii - 1;
    if (maxw < n + 4)
        return 0;
    int at = x + ui_text(y, x, 2, ui_attr(UI_ATTR_DIM), "0 ");
    for (int i = 0; i < n; i++)
        ui_shade(y, at + i, i == 0 ? 0.0 : (double)i / (n - 1), A_NORMAL);
    ui_text(y, at + n, 2, ui_attr(UI_ATTR_DIM), " 1");
    return n + 4;
}

/* ---- canvas ---- */

void ui_canvas_init(ui_canvas *c)
{
    memset(c, 0, sizeof *c);
}

void ui_canvas_free(ui_canvas *c)
{
    free(c->bits);
    free(c->attr);
    free(c->mark);
    memset(c, 0, sizeof *c);
}

void ui_canvas_reset(ui_canvas *c, int cols, int rows)
{
    if (cols < 0)
        cols = 0;
    if (rows < 0)
        rows = 0;
    size_t n = (size_t)cols * (size_t)rows;
    if (n > c->cap) {
        free(c->bits);
        free(c->attr);
        free(c->mark);
        c->bits = xmalloc(n);
        c->attr = xmalloc(n * sizeof *c->attr);
        c->mark = xmalloc(n);
        c->cap = n;
    }
    c->cols = cols;
    c->rows = rows;
    c->sx = term_utf8 ? 2 : 1;
    c->sy = term_utf8 ? 4 : 3;
    c->pw = cols * c->sx;
    c->ph = rows * c->sy;
    if (n) {
        memset(c->bits, 0, n);
        memset(c->mark, 0, n);
        for (size_t i = 0; i < n; i++)
            c->attr[i] = A_NORMAL;
    }
}

void ui_canvas_dot(ui_canvas *c, int px, int py, attr_t a)
{
    if (px < 0 || py < 0 || px >= c->pw || py >= c->ph)
        return;
    size_t cell = (size_t)(py / c->sy) * (size_t)c->cols + (size_t)(px / c->sx);
    int dx = px % c->sx, dy = py % c->sy;
    static const uint8_t braille[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20},
                                          {0x40, 0x80}};
    c->bits[cell] |= term_utf8 ? braille[dy][dx] : (uint8_t)(1u << dy);
    c->attr[cell] = a;
}

void ui_canvas_line(ui_canvas *c, int x0, int y0, int x1, int y1, attr_t a)
{
    /* Bresenham; lines here are short (one plot column), so no clipping
     * beyond the per-dot bounds check */
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (int guard = 0; guard < 100000; guard++) {
        ui_canvas_dot(c, x0, y0, a);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

void ui_canvas_mark(ui_canvas *c, int col, int row, char ch, attr_t a)
{
    if (col < 0 || row < 0 || col >= c->cols || row >= c->rows)
        return;
    size_t cell = (size_t)row * (size_t)c->cols + (size_t)col;
    c->mark[cell] = ch;
    c->attr[cell] = a;
}

static char ascii_dots(uint8_t bits)
{
    int n = (bits & 1) + ((bits >> 1) & 1) + ((bits >> 2) & 1);
    if (n >= 2)
        return '|';
    return bits & 1 ? '\'' : bits & 2 ? '-' : '.';
}

void ui_canvas_blit(const ui_canvas *c, int y, int x)
{
    for (int r = 0; r < c->rows; r++)
        for (int col = 0; col < c->cols; col++) {
            size_t cell = (size_t)r * (size_t)c->cols + (size_t)col;
            if (c->mark[cell])
                ui_glyph(y + r, x + col, 0, c->mark[cell], c->attr[cell]);
            else if (c->bits[cell])
                ui_glyph(y + r, x + col, (wchar_t)(0x2800 + c->bits[cell]),
                         ascii_dots(c->bits[cell]), c->attr[cell]);
        }
}

void ui_fmt_num(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (a >= 1e6)
        snprintf(buf, n, "%.3gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, n, "%.3gk", v / 1e3);
    else if (a >= 100 || v == floor(v))
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.3g", v);
}
