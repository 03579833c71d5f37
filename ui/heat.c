/* heat: the gate's mask for the selected arm, layer and head beside the
 * oracle's top-k mask (or the attention actually used), on sequence 0 of the
 * first val batch at the arm's last evaluation. Query rows run down, key
 * columns across; above the diagonal is the future, always empty. */
#include "ui_panels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gate.h"

/* Mean of the T x T map over each cell's block, into out[rows*cols]; the
 * maximum is returned so attention can be scaled to it. */
static double downsample(const uint8_t *map, size_t T, int rows, int cols, double *out)
{
    double mx = 0.0;
    for (int r = 0; r < rows; r++) {
        size_t i0 = (size_t)r * T / (size_t)rows, i1 = (size_t)(r + 1) * T / (size_t)rows;
        if (i1 <= i0)
            i1 = i0 + 1;
        for (int c = 0; c < cols; c++) {
            size_t j0 = (size_t)c * T / (size_t)cols, j1 = (size_t)(c + 1) * T / (size_t)cols;
            if (j1 <= j0)
                j1 = j0 + 1;
            unsigned long sum = 0;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++)
                    sum += map[i * T + j];
            double v = (double)sum / (255.0 * (double)((i1 - i0) * (j1 - j0)));
            out[r * cols + c] = v;
            if (v > mx)
                mx = v;
        }
    }
    return mx;
}

static void draw_map(int y, int x, int rows, int cols, const double *cells, double scale,
                     attr_t a)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            ui_shade(y + r, x + c, scale > 0 ? cells[r * cols + c] / scale : 0.0, a);
}

void ui_heat_draw(ui_rect r, const ui_state *st, const ui_view *v)
{
    ui_clear(r);
    char right[64] = "";
    const ui_arm *a = v->sel < st->narms ? &st->arms[v->sel] : NULL;
    if (a)
        snprintf(right, sizeof right, "%s L%zu H%zu", a->name, v->layer, v->head);
    ui_title(r.y, r.x, r.w, "Gate heatmap", right);
    if (!a || r.h < 5 || r.w < 20)
        return;
    const uint8_t *gate, *oracle, *attn;
    if (!ui_state_heat_maps(st, v->sel, v->layer, v->head, &gate, &oracle, &attn)) {
        const char *why = v->mode == UI_REPLAY ? "no heatmap stored for this run at this step"
                          : st->db_path ? "no heatmap yet: one is drawn at every evaluation"
                                        : "no heatmaps: runs are not stored (--no-telemetry)";
        ui_text(r.y + 2, r.x + 1, r.w - 2, ui_attr(UI_ATTR_DIM), why);
        return;
    }
    /* two square maps side by side: a cell is about twice as tall as wide */
    int mw = (r.w - 3) / 2, mh = r.h - 3;
    if (mh > mw / 2 + 1)
        mh = mw / 2 + 1;
    if (mw > (int)st->T)
        mw = (int)st->T;
    if (mh > (int)st->T)
        mh = (int)st->T;
    if (mw < 4 || mh < 2)
        return;
    double cells_l[64 * 128], cells_r[64 * 128];
    if (mw > 128)
        mw = 128;
    if (mh > 64)
        mh = 64;
    int right_attn = v->right == 1;
    downsample(gate, st->T, mh, mw, cells_l);
    double mx = downsample(right_attn ? attn : oracle, st->T, mh, mw, cells_r);
    int xl = r.x + 1, xr = r.x + 2 + mw;
    char lab[64];
    snprintf(lab, sizeof lab, "gate: %s k%u @%llu", a->have_gate ? gate_mode_name(a->mode) : "?",
             a->k, (unsigned long long)a->heat_step);
    ui_text(r.y + 1, xl, mw, ui_arm_attr(a->color) | A_BOLD, lab);
    ui_text(r.y + 1, xr, mw, A_BOLD, right_attn ? "attention (a: oracle)" : "oracle top-k (a: attn)");
    attr_t ca = ui_arm_attr(a->color);
    draw_map(r.y + 2, xl, mh, mw, cells_l, 1.0, ca);
    /* attention rows sum to 1 over up to T keys: scaled to the brightest cell */
    draw_map(r.y + 2, xr, mh, mw, cells_r, right_attn ? mx : 1.0, A_NORMAL);
    int ly = r.y + 2 + mh;
    if (ly < r.y + r.h) {
        int lw = ui_shade_legend(ly, xl, r.w - 2) + 1;
        char note[96];
        if (right_attn)
            snprintf(note, sizeof note, "query down, key across, T=%zu; attn x%.2g", st->T,
                     mx > 0 ? 1.0 / mx : 0.0);
        else
            snprintf(note, sizeof note, "query down, key across, T=%zu", st->T);
        ui_text(ly, xl + lw, r.w - 2 - lw, ui_attr(UI_ATTR_DIM), note);
    }
}
