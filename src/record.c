/* record: names of the statuses, events and commands that cross threads, and
 * the heatmap snapshot's buffers. */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *const status_names[RUN_STATUS_COUNT] = {
    "running", "paused", "finished", "stopped", "diverged", "crashed", "failed",
};

static const char *const event_names[EV_KIND_COUNT] = {
    "start", "pause", "resume", "swap", "freeze", "unfreeze", "set_k",
    "checkpoint", "fork", "stop", "diverged", "finish", "error", "resumed",
};

static const char *const cmd_names[CMD_KIND_COUNT] = {
    "pause", "resume", "swap", "freeze", "unfreeze", "k", "checkpoint", "fork", "stop",
};

const char *run_status_name(run_status s)
{
    return (unsigned)s < RUN_STATUS_COUNT ? status_names[s] : "?";
}

int run_status_parse(const char *name, run_status *out)
{
    for (int i = 0; i < RUN_STATUS_COUNT; i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (run_status)i;
            return 0;
        }
    return -1;
}

const char *event_kind_name(event_kind k)
{
    return (unsigned)k < EV_KIND_COUNT ? event_names[k] : "?";
}

const char *cmd_kind_name(cmd_kind k)
{
    return (unsigned)k < CMD_KIND_COUNT ? cmd_names[k] : "?";
}

heatmap_snapshot *heatmap_snapshot_new(uint32_t layers, uint32_t heads, uint32_t T)
{
    heatmap_snapshot *h = xcalloc(1, sizeof *h);
    size_t n = (size_t)layers * heads * T * T;
    h->layers = layers;
    h->heads = heads;
    h->T = T;
    h->gate = xcalloc(n, 1);
    h->oracle = xcalloc(n, 1);
    h->attn = xcalloc(n, 1);
    return h;
}

void heatmap_snapshot_free(heatmap_snapshot *h)
{
    if (!h)
        return;
    free(h->gate);
    free(h->oracle);
    free(h->attn);
    free(h);
}
