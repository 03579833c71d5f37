/* test_record: the record codec (record.h) — every telemetry kind and a
 * command round-trip with distinctive values (NaN bits and text included),
 * the byte order checked against bytes written out by hand, and what decode
 * refuses: a wrong version, an unknown kind, nonzero padding, a text field
 * without its NUL, a buffer one byte short at every length, an arm or
 * parent arm past REC_MAX_ARMS and an enum field (event kind, run status,
 * gate mode of a run, event or fork, command kind) out of range; the heatmap
 * payload codec round-trips and refuses a payload of another shape. */
#include "record.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "gate.h"

static int same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;   /* bit for bit: NaN payloads too */
}

/* Field by field, so a field the encoder drops is caught even when the
 * decoder drops it too. */
static int same_record(const tel_record *a, const tel_record *b)
{
    if (a->kind != b->kind || a->arm != b->arm || a->step != b->step ||
        !same_double(a->wall_ms, b->wall_ms) || a->payload != b->payload)
        return 0;
    switch ((rec_kind)a->kind) {
    case REC_RUN_BEGIN:
        return a->u.run.mode == b->u.run.mode && a->u.run.k == b->u.run.k &&
               a->u.run.frozen == b->u.run.frozen && a->u.run.parent_arm == b->u.run.parent_arm &&
               a->u.run.seed == b->u.run.seed && strcmp(a->u.run.name, b->u.run.name) == 0;
    case REC_STEP:
        return same_double(a->u.step.loss, b->u.step.loss) &&
               same_double(a->u.step.grad_norm, b->u.step.grad_norm) &&
               same_double(a->u.step.lr, b->u.step.lr);
    case REC_EVAL: {
        const double *x = &a->u.eval.val_loss, *y = &b->u.eval.val_loss;
        const double xs[] = {x[0], a->u.eval.val_ppl, a->u.eval.bits_per_byte, a->u.eval.f1,
                             a->u.eval.mass_kept, a->u.eval.oracle_mass,
                             a->u.eval.gate_grad_norm, a->u.eval.tokens_per_s,
                             a->u.eval.train_loss, a->u.eval.expert_balance};
        const double ys[] = {y[0], b->u.eval.val_ppl, b->u.eval.bits_per_byte, b->u.eval.f1,
                             b->u.eval.mass_kept, b->u.eval.oracle_mass,
                             b->u.eval.gate_grad_norm, b->u.eval.tokens_per_s,
                             b->u.eval.train_loss, b->u.eval.expert_balance};
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
            if (!same_double(xs[i], ys[i]))
                return 0;
        return a->u.eval.diverged == b->u.eval.diverged;
    }
    case REC_LAYER:
        for (int k = 0; k < METRIC_COUNT; k++)
            if (!same_double(a->u.layer.value[k], b->u.layer.value[k]))
                return 0;
        return a->u.layer.layer == b->u.layer.layer && a->u.layer.head == b->u.layer.head &&
               a->u.layer.diverged == b->u.layer.diverged;
    case REC_EVENT:
        return a->u.event.kind == b->u.event.kind && a->u.event.mode == b->u.event.mode &&
               a->u.event.k == b->u.event.k && a->u.event.frozen == b->u.event.frozen &&
               a->u.event.command == b->u.event.command &&
               strcmp(a->u.event.detail, b->u.event.detail) == 0;
    case REC_STATUS:
        return a->u.status.status == b->u.status.status;
    case REC_CHECKPOINT:
        return a->u.checkpoint.resumable == b->u.checkpoint.resumable &&
               a->u.checkpoint.dropped == b->u.checkpoint.dropped &&
               strcmp(a->u.checkpoint.path, b->u.checkpoint.path) == 0;
    case REC_HEATMAP:
        return a->u.heatmap.layers == b->u.heatmap.layers &&
               a->u.heatmap.heads == b->u.heatmap.heads && a->u.heatmap.T == b->u.heatmap.T;
    case REC_FORKED:
        return a->u.forked.mode == b->u.forked.mode;
    case REC_COMMAND:
        return a->u.command.id == b->u.command.id &&
               a->u.command.applied == b->u.command.applied &&
               strcmp(a->u.command.reason, b->u.command.reason) == 0;
    case REC_SESSION_END:
        return 1;
    case REC_KIND_COUNT:
        break;
    }
    return 0;
}

static double nan_with(uint64_t payload)
{
    uint64_t bits = 0x7ff8000000000000ull | payload;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* One record of kind k whose every field differs from the others. */
static tel_record sample(uint32_t k)
{
    tel_record r;
    memset(&r, 0xA5, sizeof r);   /* stray bytes must not matter */
    r.kind = k;
    r.arm = REC_MAX_ARMS - 1 - k % REC_MAX_ARMS;   /* the last arm included */
    r.step = 0x1122334455667700ull + k;
    r.wall_ms = 1764770000123.25 + k;
    r.payload = 0;
    switch ((rec_kind)k) {
    case REC_RUN_BEGIN:
        r.payload = 17;
        r.u.run.mode = 3;
        r.u.run.k = 11;
        r.u.run.frozen = 1;
        r.u.run.parent_arm = UINT32_MAX;
        r.u.run.seed = 0xFEDCBA9876543210ull;
        snprintf(r.u.run.name, sizeof r.u.run.name, "soft>topk-random");
        break;
    case REC_STEP:
        r.u.step.loss = 2.718281828;
        r.u.step.grad_norm = INFINITY;
        r.u.step.lr = 3e-4;
        break;
    case REC_EVAL:
        r.u.eval.val_loss = 1.5;
        r.u.eval.val_ppl = 4.4816890703;
        r.u.eval.bits_per_byte = nan_with(0x1234);
        r.u.eval.f1 = 0.625;
        r.u.eval.mass_kept = 0.875;
        r.u.eval.oracle_mass = 0.9375;
        r.u.eval.gate_grad_norm = -0.0;
        r.u.eval.tokens_per_s = 123456.5;
        r.u.eval.train_loss = 1.25;
        r.u.eval.expert_balance = -INFINITY;
        r.u.eval.diverged = REC_EVAL_F1 | REC_EVAL_EXPERT_BALANCE;
        break;
    case REC_LAYER:
        r.u.layer.layer = 5;
        r.u.layer.head = 7;
        for (int m = 0; m < METRIC_COUNT; m++)
            r.u.layer.value[m] = m == 2 ? nan_with(7) : 0.5 + m / 64.0;
        r.u.layer.diverged = 1u << 3;
        break;
    case REC_EVENT:
        r.u.event.kind = EV_SWAP;
        r.u.event.mode = 4;
        r.u.event.k = 9;
        r.u.event.frozen = 0;
        r.u.event.command = 0x0102030405060708ull;
        snprintf(r.u.event.detail, sizeof r.u.event.detail, "soft -> topk (key) \xc3\xa9");
        break;
    case REC_STATUS:
        r.u.status.status = RUN_DIVERGED;
        break;
    case REC_CHECKPOINT:
        r.u.checkpoint.resumable = 1;
        r.u.checkpoint.dropped = 1;
        memset(r.u.checkpoint.path, 'p', sizeof r.u.checkpoint.path - 1);   /* a full field */
        r.u.checkpoint.path[sizeof r.u.checkpoint.path - 1] = '\0';
        break;
    case REC_HEATMAP:
        r.payload = 20 + 3 * 2 * 3 * 4 * 4;
        r.u.heatmap.layers = 2;
        r.u.heatmap.heads = 3;
        r.u.heatmap.T = 4;
        break;
    case REC_FORKED:
        r.u.forked.mode = 6;
        break;
    case REC_COMMAND:
        r.u.command.id = 0x8877665544332211ull;
        r.u.command.applied = 1;
        snprintf(r.u.command.reason, sizeof r.u.command.reason, "arm 1: run 3 has ended");
        break;
    case REC_SESSION_END:
    case REC_KIND_COUNT:
        break;
    }
    return r;
}

static void test_round_trip(void)
{
    for (uint32_t k = 0; k < REC_KIND_COUNT; k++) {
        tel_record r = sample(k), back;
        uint8_t buf[RECORD_WIRE_MAX];
        size_t n = record_encode(&r, NULL, buf, sizeof buf);
        CHECK(n > 0 && n == record_wire_size(k) && n <= RECORD_WIRE_MAX,
              "kind %u encodes to its fixed size (%zu of at most %d)", k, n, RECORD_WIRE_MAX);
        long used = record_decode(buf, n, &back, NULL);
        CHECK(used == (long)n && same_record(&r, &back), "kind %u decodes to the same record", k);
        /* a second encoding is byte-identical: bytes past a text's NUL are zero */
        uint8_t again[RECORD_WIRE_MAX];
        CHECK(record_encode(&back, NULL, again, sizeof again) == n && memcmp(buf, again, n) == 0,
              "kind %u re-encodes to the same bytes", k);
        int short_ok = 1;
        for (size_t cut = 0; cut < n; cut++)
            short_ok &= record_decode(buf, cut, &back, NULL) == -1;
        CHECK(short_ok, "kind %u: every buffer shorter than %zu bytes is refused", k, n);
        CHECK(record_encode(&r, NULL, buf, n - 1) == 0, "kind %u: encode refuses a short buffer",
              k);
    }
}

static void test_with_payload(void)
{
    tel_record r = sample(REC_RUN_BEGIN), back;
    const char *json = "{\"name\":\"soft\"}_";   /* 16 bytes; no NUL is sent */
    r.payload = 16;
    uint8_t buf[RECORD_WIRE_MAX + 64];
    size_t fixed = record_wire_size(REC_RUN_BEGIN);
    size_t n = record_encode(&r, json, buf, sizeof buf);
    CHECK(n == fixed + 16 && memcmp(buf + fixed, json, 16) == 0,
          "the payload follows the fixed part (%zu bytes)", n);
    const uint8_t *p = NULL;
    long used = record_decode(buf, n, &back, &p);
    CHECK(used == (long)n && p == buf + fixed && same_record(&r, &back),
          "decode with a payload points at it inside the buffer");
    CHECK(record_decode(buf, n - 1, &back, &p) == -1, "a payload one byte short is refused");
    CHECK(record_decode(buf, fixed, &back, NULL) == (long)fixed,
          "without asking for the payload, the fixed part alone decodes");
    CHECK(record_encode(&r, json, buf, fixed + 15) == 0, "encode refuses room short of the payload");
}

/* REC_STATUS written out by hand: the header fields little-endian, then
 * the status. wall_ms 1.5 is 0x3FF8000000000000. */
static void test_byte_order(void)
{
    tel_record r = {.kind = REC_STATUS, .arm = 0x0Bu, .step = 0x0807060504030201ull,
                    .wall_ms = 1.5};
    r.u.status.status = RUN_STOPPED;   /* 3 */
    static const uint8_t want[] = {
        RECORD_VERSION, REC_STATUS, 0, 0,                    /* version, kind, padding */
        0x0B, 0, 0, 0,                                       /* arm */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,      /* step */
        0, 0, 0, 0, 0, 0, 0xF8, 0x3F,                        /* wall_ms */
        0, 0, 0, 0,                                          /* payload */
        3, 0, 0, 0,                                          /* status */
    };
    uint8_t buf[RECORD_WIRE_MAX];
    size_t n = record_encode(&r, NULL, buf, sizeof buf);
    CHECK(n == sizeof want && memcmp(buf, want, n) == 0,
          "REC_STATUS encodes to the bytes written by hand (%zu bytes)", n);
    tel_record back;
    CHECK(record_decode(want, sizeof want, &back, NULL) == (long)sizeof want &&
              back.arm == 0x0Bu && back.step == 0x0807060504030201ull &&
              back.wall_ms == 1.5 && back.u.status.status == RUN_STOPPED,
          "the hand-written bytes decode to the record");

    cmd_record c = {.kind = CMD_SET_K, .arg = 0x0A0B0C0Du, .scripted = 3,
                    .seconds = -2.0,   /* 0xC000000000000000 */
                    .id = 0x1112131415161718ull};
    static const uint8_t cwant[COMMAND_WIRE_SIZE] = {
        RECORD_VERSION, CMD_SET_K, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A, 3, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0xC0,
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
    };
    uint8_t cb[COMMAND_WIRE_SIZE];
    CHECK(command_encode(&c, cb, sizeof cb) == sizeof cwant && memcmp(cb, cwant, sizeof cb) == 0,
          "a command encodes to the bytes written by hand");
}

/* r encoded (encode does not judge values), then decoded: 1 when refused. */
static int refused(const tel_record *r)
{
    uint8_t buf[RECORD_WIRE_MAX];
    tel_record back;
    size_t n = record_encode(r, NULL, buf, sizeof buf);
    GL_ASSERT(n > 0);
    return record_decode(buf, n, &back, NULL) == -1;
}

/* Values another process could send that would index a table out of
 * bounds (run_ids[arm], event_names[kind], gate_mode_name(mode), ...). */
static void test_out_of_range(void)
{
    int ok = 1;
    for (uint32_t k = 0; k < REC_KIND_COUNT; k++) {
        tel_record r = sample(k);
        r.arm = REC_MAX_ARMS;
        ok &= refused(&r);
        r.arm = UINT32_MAX;
        ok &= refused(&r);
        r.arm = REC_MAX_ARMS - 1;
        ok &= !refused(&r);
    }
    CHECK(ok, "every kind: arm REC_MAX_ARMS (%d) and UINT32_MAX refused, the last arm taken",
          REC_MAX_ARMS);

    tel_record r = sample(REC_RUN_BEGIN);
    r.u.run.parent_arm = REC_MAX_ARMS;
    CHECK(refused(&r), "a run's parent_arm REC_MAX_ARMS is refused");
    r.u.run.parent_arm = REC_MAX_ARMS - 1;
    CHECK(!refused(&r), "a run's parent_arm REC_MAX_ARMS - 1 is taken (UINT32_MAX: none, too)");
    r = sample(REC_RUN_BEGIN);
    r.u.run.mode = GATE_MODE_COUNT;
    CHECK(refused(&r), "a run's gate mode GATE_MODE_COUNT is refused");
    r.u.run.mode = GATE_MODE_COUNT - 1;
    CHECK(!refused(&r), "a run's last gate mode is taken");

    r = sample(REC_EVENT);
    r.u.event.kind = EV_KIND_COUNT;
    CHECK(refused(&r), "an event kind EV_KIND_COUNT is refused");
    r.u.event.kind = UINT32_MAX;
    CHECK(refused(&r), "an event kind UINT32_MAX is refused");
    r.u.event.kind = EV_KIND_COUNT - 1;
    CHECK(!refused(&r), "the last event kind is taken");
    r = sample(REC_EVENT);
    r.u.event.mode = GATE_MODE_COUNT;
    CHECK(refused(&r), "an event's gate mode GATE_MODE_COUNT is refused");

    r = sample(REC_STATUS);
    r.u.status.status = RUN_STATUS_COUNT;
    CHECK(refused(&r), "a run status RUN_STATUS_COUNT is refused");
    r.u.status.status = RUN_STATUS_COUNT - 1;
    CHECK(!refused(&r), "the last run status is taken");

    r = sample(REC_FORKED);
    r.u.forked.mode = GATE_MODE_COUNT;
    CHECK(refused(&r), "a fork's gate mode GATE_MODE_COUNT is refused");
    r.u.forked.mode = UINT32_MAX;
    CHECK(refused(&r), "a fork's gate mode UINT32_MAX is refused");
}

static void test_refused(void)
{
    tel_record r = sample(REC_EVENT), back;
    uint8_t buf[RECORD_WIRE_MAX];
    size_t n = record_encode(&r, NULL, buf, sizeof buf);
    GL_ASSERT(n > 0);
    uint8_t bad[RECORD_WIRE_MAX];

    memcpy(bad, buf, n);
    bad[0] = RECORD_VERSION + 1;
    CHECK(record_decode(bad, n, &back, NULL) == -1, "a wrong version is refused");
    bad[0] = 0;
    CHECK(record_decode(bad, n, &back, NULL) == -1, "version 0 is refused");

    memcpy(bad, buf, n);
    bad[1] = REC_KIND_COUNT;
    CHECK(record_decode(bad, n, &back, NULL) == -1, "an unknown kind is refused");
    bad[1] = 0xFF;
    CHECK(record_decode(bad, n, &back, NULL) == -1, "kind 255 is refused");

    memcpy(bad, buf, n);
    bad[2] = 1;
    CHECK(record_decode(bad, n, &back, NULL) == -1, "nonzero padding is refused");

    memcpy(bad, buf, n);
    memset(bad + n - REC_TEXT, 'x', REC_TEXT);   /* the detail field, no NUL left */
    CHECK(record_decode(bad, n, &back, NULL) == -1, "a text field without its NUL is refused");

    tel_record unknown = {.kind = REC_KIND_COUNT};
    CHECK(record_encode(&unknown, NULL, buf, sizeof buf) == 0 &&
              record_wire_size(REC_KIND_COUNT) == 0,
          "an unknown kind is not encoded");
    CHECK(record_decode(buf, 0, &back, NULL) == -1, "an empty buffer is refused");

    test_out_of_range();

    cmd_record c = {.kind = CMD_FORK, .arg = 5, .scripted = 2, .seconds = 2.5,
                    .id = UINT64_MAX - 1}, cback;
    uint8_t cb[COMMAND_WIRE_SIZE];
    CHECK(command_encode(&c, cb, sizeof cb) == COMMAND_WIRE_SIZE &&
              command_decode(cb, sizeof cb, &cback) == COMMAND_WIRE_SIZE &&
              cback.kind == CMD_FORK && cback.arg == 5 && cback.id == UINT64_MAX - 1 &&
              cback.scripted == 2 && cback.seconds == 2.5,
          "a command round-trips, its commands row id with it");
    uint8_t ab[COMMAND_ADDRESSED_WIRE_SIZE];
    uint32_t arm = 0;
    CHECK(command_encode_addressed(70000, &c, ab, sizeof ab) == sizeof ab &&
              ab[0] == 0x70 && ab[1] == 0x11 && ab[2] == 0x01 && ab[3] == 0 &&
              memcmp(ab + 4, cb, sizeof cb) == 0 &&
              command_decode_addressed(ab, sizeof ab, &arm, &cback) == (long)sizeof ab &&
              arm == 70000 && cback.kind == CMD_FORK && cback.id == UINT64_MAX - 1,
          "an addressed command: the arm little-endian, then the command's own bytes");
    int ashort_ok = 1;
    for (size_t cut = 0; cut < sizeof ab; cut++)
        ashort_ok &= command_decode_addressed(ab, cut, &arm, &cback) == -1;
    CHECK(ashort_ok && command_encode_addressed(1, &c, ab, sizeof ab - 1) == 0,
          "an addressed command one byte short is refused, and not written short");
    int short_ok = 1;
    for (size_t cut = 0; cut < sizeof cb; cut++)
        short_ok &= command_decode(cb, cut, &cback) == -1;
    CHECK(short_ok, "a command buffer one byte short (or shorter) is refused");
    cb[0] = RECORD_VERSION + 1;
    CHECK(command_decode(cb, sizeof cb, &cback) == -1, "a command of another version is refused");
    cb[0] = RECORD_VERSION;
    cb[1] = CMD_KIND_COUNT;
    CHECK(command_decode(cb, sizeof cb, &cback) == -1, "an unknown command is refused");
    cb[1] = 0xFF;
    CHECK(command_decode(cb, sizeof cb, &cback) == -1, "command kind 255 is refused");
    cmd_record cu = {.kind = CMD_KIND_COUNT};
    CHECK(command_encode(&cu, cb, sizeof cb) == 0, "an unknown command is not encoded");
}

static void test_heatmap(void)
{
    heatmap_snapshot *h = heatmap_snapshot_new(2, 3, 5);
    size_t cells = 2 * 3 * 5 * 5;
    h->step = 0x0102030405060708ull;
    for (size_t i = 0; i < cells; i++) {
        h->gate[i] = (uint8_t)(i * 7);
        h->oracle[i] = (uint8_t)(255 - i);
        h->attn[i] = (uint8_t)(i * 13 + 1);
    }
    size_t size = heatmap_payload_size(2, 3, 5);
    CHECK(size == HEATMAP_HEAD_BYTES + 3 * cells, "payload size: head + 3 planes (%zu)", size);
    uint8_t *buf = xmalloc(size);
    CHECK(heatmap_encode(h, buf, size - 1) == 0, "encode refuses a short buffer");
    CHECK(heatmap_encode(h, buf, size) == size, "encode writes the payload");
    static const uint8_t head[HEATMAP_HEAD_BYTES] = {8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0,
                                                     3, 0, 0, 0, 5, 0, 0, 0};
    CHECK(memcmp(buf, head, sizeof head) == 0 && buf[HEATMAP_HEAD_BYTES] == h->gate[0] &&
              buf[HEATMAP_HEAD_BYTES + cells] == h->oracle[0] &&
              buf[HEATMAP_HEAD_BYTES + 2 * cells + 1] == h->attn[1],
          "payload: step, layers, heads, T little-endian, then gate, oracle, attn");
    uint64_t step;
    uint32_t l, hd, t;
    CHECK(heatmap_decode_head(buf, size, &step, &l, &hd, &t) == 0 && step == h->step && l == 2 &&
              hd == 3 && t == 5,
          "decode_head reads the step and shape");
    CHECK(heatmap_decode_head(buf, size - 1, &step, &l, &hd, &t) == -1 &&
              heatmap_decode_head(buf, 3, &step, &l, &hd, &t) == -1,
          "decode_head refuses a payload shorter than its shape");
    heatmap_snapshot *back = heatmap_snapshot_new(2, 3, 5);
    CHECK(heatmap_decode(buf, size, back) == 0 && back->step == h->step &&
              memcmp(back->gate, h->gate, cells) == 0 &&
              memcmp(back->oracle, h->oracle, cells) == 0 &&
              memcmp(back->attn, h->attn, cells) == 0,
          "a heatmap round-trips");
    heatmap_snapshot *other = heatmap_snapshot_new(2, 3, 4);
    CHECK(heatmap_decode(buf, size, other) == -1 && other->step == 0,
          "decode into another shape is refused, the snapshot untouched");
    CHECK(heatmap_decode(buf, size - 1, back) == -1, "decode refuses a short payload");
    CHECK(heatmap_payload_size(UINT32_MAX, UINT32_MAX, UINT32_MAX) == 0,
          "a shape whose size overflows has none");
    heatmap_snapshot_free(other);
    heatmap_snapshot_free(back);
    heatmap_snapshot_free(h);
    free(buf);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_round_trip();
    test_with_payload();
    test_byte_order();
    test_refused();
    test_heatmap();
    return check_finish();
}
