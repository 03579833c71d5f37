/* smooth: the debiased EMA of smooth.h, shared by the screen's loss panel
 * (ui/loss.c) and the charts of `gatelab plot` (src/plot_cli.c). */
#include "smooth.h"

#include <math.h>

void smooth_ema_init(smooth_ema *e, double beta)
{
    e->beta = beta > 0.0 ? beta : 0.0;
    e->beta_n = e->beta;
    e->last_n = 1;
    e->ema = 0.0;
    e->bias = 1.0;
}

double smooth_ema_push(smooth_ema *e, double x, uint32_t n)
{
    if (e->beta <= 0.0)
        return x;
    if (n != e->last_n) {
        /* a merged point: n updates at once */
        e->beta_n = pow(e->beta, (double)n);
        e->last_n = n;
    }
    e->ema = e->beta_n * e->ema + (1.0 - e->beta_n) * x;
    e->bias *= e->beta_n;
    return e->ema / (1.0 - e->bias);
}
