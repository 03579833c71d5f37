/* agree: how well each arm's gate agrees with the oracle, per layer (mean over
 * heads) — F1 of the gate's top-k against the oracle's, and the share of the
 * dense attention mass the gate keeps — as bars with numbers. A '|' on a bar
 * marks the chance F1 (k / visible keys) or the oracle's own mass kept (the
 * ceiling). Dense arms have no gate: their rows say so. */
#include "ui_panels.h"

#include <math.h>
#include <stdio.h>

static void value_bar(int y, int x, int bw, double v, double mark, attr_t a)
{
    ui_bar(y, x, bw, v, a);
    if (!isnan(mark) && bw > 1) {
        int at = (int)lround(mark * (bw - 1));
        if (at >= 0 && at < bw && (isnan(v) || at >= (int)lround(v * bw)))
            ui_glyph(y, x + at, L'│', '|', ui_attr(UI_ATTR_DIM));
    }
    char num[8];
    if (isnan(v))
        snprintf(num, sizeof num, "    -");
    else
        snprintf(num, sizeof num, " %4.2f", v);
    ui_text(y, x + bw, 5, a, num);
}

void ui_agree_draw(ui_rect r, const ui_state *st, const ui_view *v)
{
    ui_clear(r);
    uint64_t step = 0;
    for (size_t i = 0; i < st->narms; i++)
        if (st->arms[i].have_layer && st->arms[i].layer_step > step)
            step = st->arms[i].layer_step;
    char right[40] = "";
    if (step)
        snprintf(right, sizeof right, "@%llu", (unsigned long long)step);
    ui_title(r.y, r.x, r.w, "Oracle agreement", right);
    if (r.h < 3 || r.w < 30)
        return;
    /* columns: "L0 " name(8) " " [F1 bar][ n.nn] " " [mass bar][ n.nn] */
    const int name_w = 8;
    int bw = (r.w - 2 - 3 - name_w - 1 - 5 - 1 - 5) / 2;
    if (bw < 2)
        return;
    int x = r.x + 1;
    int xf = x + 3 + name_w + 1, xm = xf + bw + 5 + 1;
    ui_text(r.y + 1, x, 3 + name_w, ui_attr(UI_ATTR_DIM), "L  arm");
    ui_text(r.y + 1, xf, bw + 5, ui_attr(UI_ATTR_DIM), "F1 vs oracle");
    ui_text(r.y + 1, xm, bw + 5, ui_attr(UI_ATTR_DIM), "attn mass kept");
    int any = 0;
    for (size_t i = 0; i < st->narms; i++)
        any |= st->arms[i].have_layer;
    if (!any) {
        ui_text(r.y + 2, x, r.w - 2, ui_attr(UI_ATTR_DIM),
                v->mode == UI_REPLAY ? "no layer metrics stored at this step"
                                     : "no evaluation yet");
        return;
    }
    int end = r.y + r.h - 1;   /* the last line is the key */
    size_t total = st->L * st->narms, shown = 0;
    int y = r.y + 2;
    /* layers from the selected one on, so [ and ] scroll a long list */
    for (size_t li = 0; li < st->L && y < end; li++) {
        size_t l = (v->layer + li) % st->L;
        for (size_t i = 0; i < st->narms && y < end; i++, shown++) {
            if (y == end - 1 && total - shown > 1) {
                ui_textf(y, x, r.w - 2, ui_attr(UI_ATTR_DIM), "... %zu more rows ([ ] scrolls)",
                         total - shown);
                y = end;
                break;
            }
            const ui_arm *a = &st->arms[i];
            attr_t at = ui_arm_attr(a->color);
            ui_textf(y, x, 3, l == v->layer ? A_BOLD : ui_attr(UI_ATTR_DIM), "L%zu", l);
            ui_textf(y, x + 3, name_w, at | (i == v->sel ? A_BOLD : 0), "%-8.8s", a->name);
            double f1 = ui_state_layer_mean(st, i, l, METRIC_F1);
            double mass = ui_state_layer_mean(st, i, l, METRIC_MASS_KEPT);
            double chance = ui_state_layer_mean(st, i, l, METRIC_CHANCE);
            double omass = ui_state_layer_mean(st, i, l, METRIC_ORACLE_MASS);
            if (isnan(f1) && isnan(mass)) {
                ui_textf(y, xf, r.w - (xf - r.x) - 1, ui_attr(UI_ATTR_DIM),
                         a->have_layer ? "no gate (dense); oracle keeps %.2f" : "-",
                         isnan(omass) ? 0.0 : omass);
            } else {
                value_bar(y, xf, bw, f1, chance, at);
                value_bar(y, xm, bw, mass, omass, at);
            }
            y++;
        }
    }
    ui_text(r.y + r.h - 1, x, r.w - 2, ui_attr(UI_ATTR_DIM),
            "| on a bar: chance F1 (k/visible) and oracle mass (ceiling)");
}
