/* ui_draw: what every panel draws with — the terminal's capabilities (UTF-8
 * or ASCII, colours or monochrome), one colour per arm, clipped text, title
 * rules, bars, heat shades, and a plotting canvas of braille dots (2x4 per
 * cell) or, without UTF-8, three dot rows per cell drawn with ASCII.
 * Everything here calls curses: main thread only. */
#ifndef GATELAB_UI_DRAW_H
#define GATELAB_UI_DRAW_H

#include <curses.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int y, x, h, w;
} ui_rect;

/* After initscr: utf8 = the locale's codeset is UTF-8, color = has_colors(). */
void ui_draw_setup(int utf8, int color);

typedef enum {
    UI_ATTR_NORMAL,
    UI_ATTR_TITLE,     /* panel titles */
    UI_ATTR_DIM,       /* axes, labels, chance markers */
    UI_ATTR_OK,        /* RUNNING */
    UI_ATTR_WARN,      /* PAUSED, the quit question */
    UI_ATTR_BAD,       /* errors, diverged */
    UI_ATTR_KEY,       /* key names in the key bar */
    UI_ATTR_COUNT
} ui_attr_role;

attr_t ui_attr(ui_attr_role r);
/* Arm i's colour, used for it on every panel (arms beyond the palette wrap). */
attr_t ui_arm_attr(size_t arm);
/* A ghost (--compare) curve: the colour it was given, dimmed. */
attr_t ui_ghost_attr(size_t color);

/* Blanks a rectangle (clipped to the screen). */
void ui_clear(ui_rect r);
/* ASCII text clipped to maxw columns (bytes >= 0x80 show as '?', so a
 * multi-byte name can never break the ASCII fallback). Returns columns used. */
int ui_text(int y, int x, int maxw, attr_t a, const char *s);
int ui_textf(int y, int x, int maxw, attr_t a, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "── Title ─────── right" across w columns. */
void ui_title(int y, int x, int w, const char *title, const char *right);
void ui_vline(int y, int x, int h, attr_t a);
void ui_hline(int y, int x, int w, attr_t a);
/* Horizontal bar: frac of w cells (eighths of a cell in UTF-8), NaN draws nothing. */
void ui_bar(int y, int x, int w, double frac, attr_t a);
/* One cell of heat v in [0,1]: a shade ramp (" ·░▒▓█", or " .:-=+*#%@"). */
void ui_shade(int y, int x, double v, attr_t a);
/* "0 <ramp> 1" for legends; returns the columns used (0 when it does not fit). */
int ui_shade_legend(int y, int x, int maxw);
/* A single glyph: the UTF-8 one, or ascii without UTF-8. */
void ui_glyph(int y, int x, wchar_t utf8, char ascii, attr_t a);

/* A plotting canvas over cols x rows cells. Pixel (0,0) is top left. */
typedef struct {
    int cols, rows;
    int sx, sy;            /* pixels per cell: 2x4 braille, 1x3 ASCII */
    int pw, ph;            /* cols*sx, rows*sy */
    uint8_t *bits;         /* dots set, per cell */
    attr_t *attr;          /* attribute of the last dot or mark, per cell */
    char *mark;            /* overlay character per cell (markers, labels), 0: none */
    size_t cap;
} ui_canvas;

void ui_canvas_init(ui_canvas *c);
void ui_canvas_free(ui_canvas *c);
/* Resizes (keeping the allocation when it is large enough) and clears. */
void ui_canvas_reset(ui_canvas *c, int cols, int rows);
void ui_canvas_dot(ui_canvas *c, int px, int py, attr_t a);
void ui_canvas_line(ui_canvas *c, int x0, int y0, int x1, int y1, attr_t a);
/* An ASCII character over a cell, drawn instead of its dots. */
void ui_canvas_mark(ui_canvas *c, int col, int row, char ch, attr_t a);
void ui_canvas_blit(const ui_canvas *c, int y, int x);

/* Compact number for axes: 1234 -> "1.2k", 0.0123 -> "0.0123". */
void ui_fmt_num(char *buf, size_t n, double v);

#endif
