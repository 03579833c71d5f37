/* record: names of the statuses, events and commands that cross threads, the
 * heatmap snapshot's buffers, and the one codec of records, commands and
 * heatmap payloads (byte order and layouts in record.h). */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gate.h"

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

char event_kind_glyph(event_kind k)
{
    switch (k) {
    case EV_SWAP:
        return 'S';
    case EV_PAUSE:
        return 'P';
    case EV_SET_K:
        return 'K';
    case EV_FORK:
        return 'F';
    case EV_FREEZE:
    case EV_UNFREEZE:
        return 'Z';
    case EV_DIVERGED:
        return 'X';
    case EV_RESUMED:
        return 'R';
    default:
        return 0;
    }
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

/* ---- little-endian cursors ----
 * A writer or reader that stops at the end of its buffer: a short buffer sets
 * `bad` instead of touching a byte past it, so every field can be written or
 * read in a row and the result checked once. */

typedef struct {
    uint8_t *p;
    size_t n, at;
    int bad;
} wcur;

typedef struct {
    const uint8_t *p;
    size_t n, at;
    int bad;
} rcur;

static void put_uint(wcur *w, uint64_t v, size_t bytes)
{
    if (w->bad || w->n - w->at < bytes) {
        w->bad = 1;
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        w->p[w->at + i] = (uint8_t)(v >> (8 * i));
    w->at += bytes;
}

static void put_f64(wcur *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_uint(w, bits, 8);
}

/* The array's full length; what follows the NUL is written as zeros, so one
 * record always encodes to the same bytes. */
static void put_text(wcur *w, const char *s, size_t size)
{
    if (w->bad || w->n - w->at < size) {
        w->bad = 1;
        return;
    }
    size_t len = strnlen(s, size);
    memcpy(w->p + w->at, s, len);
    memset(w->p + w->at + len, 0, size - len);
    w->at += size;
}

static uint64_t get_uint(rcur *r, size_t bytes)
{
    if (r->bad || r->n - r->at < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->at + i] << (8 * i);
    r->at += bytes;
    return v;
}

static uint32_t get_u32(rcur *r)
{
    return (uint32_t)get_uint(r, 4);
}

static double get_f64(rcur *r)
{
    uint64_t bits = get_uint(r, 8);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Refuses a field without its NUL: a C string must end inside its array. */
static void get_text(rcur *r, char *s, size_t size)
{
    if (r->bad || r->n - r->at < size) {
        r->bad = 1;
        return;
    }
    if (!memchr(r->p + r->at, 0, size)) {
        r->bad = 1;
        return;
    }
    memcpy(s, r->p + r->at, size);
    r->at += size;
}

/* ---- telemetry records ---- */

#define REC_HEAD_BYTES 28   /* version, kind, pad, arm, step, wall_ms, payload */

/* One function walks every field in both directions, so the encoder and the
 * decoder cannot disagree on a layout: w set encodes r, rd set decodes into
 * r. Returns the fixed size of the kind (also with both NULL). */
#define FIELD_U32(x) (w ? put_uint(w, (x), 4) : rd ? (void)((x) = get_u32(rd)) : (void)0, sz += 4)
#define FIELD_U64(x) (w ? put_uint(w, (x), 8) : rd ? (void)((x) = get_uint(rd, 8)) : (void)0, sz += 8)
#define FIELD_F64(x) (w ? put_f64(w, (x)) : rd ? (void)((x) = get_f64(rd)) : (void)0, sz += 8)
#define FIELD_TEXT(x) (w ? put_text(w, (x), sizeof(x)) : rd ? get_text(rd, (x), sizeof(x)) : (void)0, \
                       sz += sizeof(x))

static size_t rec_body(tel_record *r, wcur *w, rcur *rd)
{
    size_t sz = 0;
    switch ((rec_kind)r->kind) {
    case REC_RUN_BEGIN:
        FIELD_U32(r->u.run.mode);
        FIELD_U32(r->u.run.k);
        FIELD_U32(r->u.run.frozen);
        FIELD_U32(r->u.run.parent_arm);
        FIELD_U64(r->u.run.seed);
        FIELD_TEXT(r->u.run.name);
        break;
    case REC_STEP:
        FIELD_F64(r->u.step.loss);
        FIELD_F64(r->u.step.grad_norm);
        FIELD_F64(r->u.step.lr);
        break;
    case REC_EVAL:
        FIELD_F64(r->u.eval.val_loss);
        FIELD_F64(r->u.eval.val_ppl);
        FIELD_F64(r->u.eval.bits_per_byte);
        FIELD_F64(r->u.eval.f1);
        FIELD_F64(r->u.eval.mass_kept);
        FIELD_F64(r->u.eval.oracle_mass);
        FIELD_F64(r->u.eval.gate_grad_norm);
        FIELD_F64(r->u.eval.tokens_per_s);
        FIELD_F64(r->u.eval.train_loss);
        FIELD_F64(r->u.eval.expert_balance);
        FIELD_U32(r->u.eval.diverged);
        break;
    case REC_LAYER:
        FIELD_U32(r->u.layer.layer);
        FIELD_U32(r->u.layer.head);
        for (int k = 0; k < METRIC_COUNT; k++)
            FIELD_F64(r->u.layer.value[k]);
        FIELD_U32(r->u.layer.diverged);
        break;
    case REC_EVENT:
        FIELD_U32(r->u.event.kind);
        FIELD_U32(r->u.event.mode);
        FIELD_U32(r->u.event.k);
        FIELD_U32(r->u.event.frozen);
        FIELD_U64(r->u.event.command);
        FIELD_TEXT(r->u.event.detail);
        break;
    case REC_STATUS:
        FIELD_U32(r->u.status.status);
        break;
    case REC_CHECKPOINT:
        FIELD_U32(r->u.checkpoint.resumable);
        FIELD_U32(r->u.checkpoint.dropped);
        FIELD_TEXT(r->u.checkpoint.path);
        break;
    case REC_HEATMAP:
        FIELD_U32(r->u.heatmap.layers);
        FIELD_U32(r->u.heatmap.heads);
        FIELD_U32(r->u.heatmap.T);
        break;
    case REC_FORKED:
        FIELD_U32(r->u.forked.mode);
        break;
    case REC_COMMAND:
        FIELD_U64(r->u.command.id);
        FIELD_U32(r->u.command.applied);
        FIELD_TEXT(r->u.command.reason);
        break;
    case REC_SESSION_END:
    case REC_KIND_COUNT:
        break;
    }
    return sz;
}

/* The decoder's range checks: every index and enum a reader may use to
 * index a table (another process's bytes are not trusted). */
static int rec_valid(const tel_record *r)
{
    if (r->arm >= REC_MAX_ARMS)
        return 0;
    switch ((rec_kind)r->kind) {
    case REC_RUN_BEGIN:
        return r->u.run.mode < GATE_MODE_COUNT &&
               (r->u.run.parent_arm == UINT32_MAX || r->u.run.parent_arm < REC_MAX_ARMS);
    case REC_EVENT:
        return r->u.event.kind < EV_KIND_COUNT && r->u.event.mode < GATE_MODE_COUNT;
    case REC_STATUS:
        return r->u.status.status < RUN_STATUS_COUNT;
    case REC_FORKED:
        return r->u.forked.mode < GATE_MODE_COUNT;
    default:
        return 1;
    }
}

size_t record_wire_size(uint32_t kind)
{
    if (kind >= REC_KIND_COUNT)
        return 0;
    tel_record r = {.kind = kind};
    return REC_HEAD_BYTES + rec_body(&r, NULL, NULL);
}

size_t record_encode(const tel_record *r, const void *payload, uint8_t *buf, size_t cap)
{
    size_t fixed = record_wire_size(r->kind);
    if (!fixed)
        return 0;
    wcur w = {.p = buf, .n = cap};
    put_uint(&w, RECORD_VERSION, 1);
    put_uint(&w, r->kind, 1);
    put_uint(&w, 0, 2);
    put_uint(&w, r->arm, 4);
    put_uint(&w, r->step, 8);
    put_f64(&w, r->wall_ms);
    put_uint(&w, r->payload, 4);
    /* rec_body walks a non-const record for the decoder; it only reads here */
    rec_body((tel_record *)r, &w, NULL);
    if (!w.bad && payload && r->payload) {
        if (cap - w.at < r->payload)
            return 0;
        memcpy(buf + w.at, payload, r->payload);
        w.at += r->payload;
    }
    return w.bad ? 0 : w.at;
}

long record_decode(const uint8_t *buf, size_t n, tel_record *r, const uint8_t **payload)
{
    rcur rd = {.p = buf, .n = n};
    memset(r, 0, sizeof *r);
    uint64_t version = get_uint(&rd, 1);
    r->kind = (uint32_t)get_uint(&rd, 1);
    uint64_t pad = get_uint(&rd, 2);
    if (rd.bad || version != RECORD_VERSION || pad != 0 || r->kind >= REC_KIND_COUNT)
        return -1;
    r->arm = get_u32(&rd);
    r->step = get_uint(&rd, 8);
    r->wall_ms = get_f64(&rd);
    r->payload = get_u32(&rd);
    rec_body(r, NULL, &rd);
    if (rd.bad || !rec_valid(r))
        return -1;
    if (payload) {
        if (n - rd.at < r->payload)
            return -1;
        *payload = buf + rd.at;
        rd.at += r->payload;
    }
    return (long)rd.at;
}

/* ---- commands ---- */

size_t command_encode(const cmd_record *c, uint8_t *buf, size_t cap)
{
    if (c->kind >= CMD_KIND_COUNT)
        return 0;
    wcur w = {.p = buf, .n = cap};
    put_uint(&w, RECORD_VERSION, 1);
    put_uint(&w, c->kind, 1);
    put_uint(&w, 0, 2);
    put_uint(&w, c->arg, 4);
    put_uint(&w, c->scripted, 4);
    put_f64(&w, c->seconds);
    put_uint(&w, c->id, 8);
    return w.bad ? 0 : w.at;
}

long command_decode(const uint8_t *buf, size_t n, cmd_record *c)
{
    rcur rd = {.p = buf, .n = n};
    memset(c, 0, sizeof *c);
    uint64_t version = get_uint(&rd, 1);
    c->kind = (uint32_t)get_uint(&rd, 1);
    uint64_t pad = get_uint(&rd, 2);
    if (rd.bad || version != RECORD_VERSION || pad != 0 || c->kind >= CMD_KIND_COUNT)
        return -1;
    c->arg = get_u32(&rd);
    c->scripted = get_u32(&rd);
    c->seconds = get_f64(&rd);
    c->id = get_uint(&rd, 8);
    return rd.bad ? -1 : (long)rd.at;
}

size_t command_encode_addressed(uint32_t arm, const cmd_record *c, uint8_t *buf, size_t cap)
{
    wcur w = {.p = buf, .n = cap};
    put_uint(&w, arm, 4);
    if (w.bad)
        return 0;
    size_t n = command_encode(c, buf + w.at, cap - w.at);
    return n ? w.at + n : 0;
}

long command_decode_addressed(const uint8_t *buf, size_t n, uint32_t *arm, cmd_record *c)
{
    rcur rd = {.p = buf, .n = n};
    *arm = get_u32(&rd);
    if (rd.bad)
        return -1;
    long m = command_decode(buf + rd.at, n - rd.at, c);
    return m < 0 ? -1 : (long)rd.at + m;
}

/* ---- heatmap payloads ---- */

size_t heatmap_payload_size(uint32_t layers, uint32_t heads, uint32_t T)
{
    size_t n = (size_t)layers * heads;
    if (layers && n / layers != heads)
        return 0;
    if (T && (size_t)T * T / T != T)
        return 0;
    size_t cells = (size_t)T * T;
    if (cells && n > (SIZE_MAX / 3 - HEATMAP_HEAD_BYTES) / cells)
        return 0;
    return HEATMAP_HEAD_BYTES + 3 * n * cells;
}

size_t heatmap_encode(const heatmap_snapshot *h, uint8_t *buf, size_t cap)
{
    size_t size = heatmap_payload_size(h->layers, h->heads, h->T);
    if (!size || cap < size)
        return 0;
    size_t n = (size - HEATMAP_HEAD_BYTES) / 3;
    wcur w = {.p = buf, .n = cap};
    put_uint(&w, h->step, 8);
    put_uint(&w, h->layers, 4);
    put_uint(&w, h->heads, 4);
    put_uint(&w, h->T, 4);
    memcpy(buf + w.at, h->gate, n);
    memcpy(buf + w.at + n, h->oracle, n);
    memcpy(buf + w.at + 2 * n, h->attn, n);
    return size;
}

int heatmap_decode_head(const uint8_t *buf, size_t n, uint64_t *step, uint32_t *layers,
                        uint32_t *heads, uint32_t *T)
{
    rcur rd = {.p = buf, .n = n};
    uint64_t s = get_uint(&rd, 8);
    uint32_t l = get_u32(&rd), h = get_u32(&rd), t = get_u32(&rd);
    size_t size = heatmap_payload_size(l, h, t);
    if (rd.bad || !size || n < size)
        return -1;
    *step = s;
    *layers = l;
    *heads = h;
    *T = t;
    return 0;
}

int heatmap_decode(const uint8_t *buf, size_t n, heatmap_snapshot *out)
{
    uint64_t step;
    uint32_t l, h, t;
    if (heatmap_decode_head(buf, n, &step, &l, &h, &t) || l != out->layers || h != out->heads ||
        t != out->T)
        return -1;
    size_t planes = (heatmap_payload_size(l, h, t) - HEATMAP_HEAD_BYTES) / 3;
    const uint8_t *p = buf + HEATMAP_HEAD_BYTES;
    out->step = step;
    memcpy(out->gate, p, planes);
    memcpy(out->oracle, p + planes, planes);
    memcpy(out->attn, p + 2 * planes, planes);
    return 0;
}
