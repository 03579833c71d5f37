/* live_store: the session's store thread (DESIGN §5, §11). The main thread
 * puts every record bound for the database on the store ring, encoded, and
 * its payload (heatmap planes, a run's config JSON) on the byte ring beside
 * it; this thread decodes them, keeps them in memory and writes them in
 * batches. It reads nothing of a trainer or an arm: a run's row comes from
 * its REC_RUN_BEGIN record and config JSON alone. */
#include "live_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gate.h"

#define STORE_RING 65536
#define COMMIT_SECONDS 0.5

static void store_fail(live *lv, const gl_error *e)
{
    snprintf(lv->store_error, sizeof lv->store_error, "%s", e->msg);
    /* partner: the acquire load in live_run, which then reads store_error */
    atomic_store_explicit(&lv->store_failed, 1, memory_order_release);
}

int live_store_begin_run(live *lv, const tel_record *r, const char *config_json, gl_error *e)
{
    uint32_t idx = r->arm, parent_arm = r->u.run.parent_arm;
    GL_ASSERT(idx < LIVE_MAX_ARMS);   /* record_decode refuses others */
    /* a parent's id: stored by begin_run before (this thread, or the main
     * thread before this one started) */
    int64_t parent = parent_arm == UINT32_MAX || parent_arm >= LIVE_MAX_ARMS
                         ? 0
                         : atomic_load_explicit(&lv->run_ids[parent_arm], memory_order_acquire);
    store_run_desc d = {.arm = idx,
                        .name = r->u.run.name,
                        .mode = gate_mode_name((gate_mode)r->u.run.mode),
                        .k = r->u.run.k,
                        .frozen = (int)r->u.run.frozen,
                        .seed = r->u.run.seed,
                        .config_json = config_json,
                        .parent_run = parent,
                        .start_step = r->step};
    int64_t id = store_run_begin(lv->st, lv->session, &d, e);
    if (id < 0)
        return -1;
    /* --tag: on every run of the session, a fork's too (in its batch's
     * transaction when the store thread begins it) */
    for (size_t i = 0; i < lv->cfg->ntags; i++)
        if (store_tag_set(lv->st, id, lv->cfg->tags[i].key, lv->cfg->tags[i].value, e))
            return -1;
    /* partners: the acquire loads named at live.run_ids */
    atomic_store_explicit(&lv->run_ids[idx], id, memory_order_release);
    return 0;
}

/* Records wait in the store thread's memory until a batch writes them: a
 * batch every COMMIT_SECONDS (also when there is nothing to write: its commit
 * refreshes the heartbeat that tells other processes we are alive), and the
 * write lock is held only while one is written (DESIGN §11). When another
 * process holds the lock, SQLite says busy after BUSY_TIMEOUT_MS; the batch
 * is rolled back, kept, and tried again with a backoff, for as long as it
 * takes: training never stops for a busy database. At most PENDING_MAX
 * records wait; then the store thread takes no more from its ring, which
 * fills and makes to_store wait (counted as back-pressure): nothing is
 * dropped. Only the end of the session gives up, after END_WAIT_SECONDS. */
#define PENDING_MAX ((size_t)1 << 18)
#define BUSY_TIMEOUT_MS 100
#define BACKOFF_MIN_MS 5.0
#define BACKOFF_MAX_MS 500.0
#define END_WAIT_SECONDS 600.0

typedef struct {
    tel_record *r;
    size_t n, cap;
    uint8_t *bytes;             /* the records' payloads, back to back in their order */
    size_t nbytes, bytes_cap;
    heatmap_snapshot *heat;     /* a REC_HEATMAP's payload decoded for the store */
    char *text;                 /* a REC_RUN_BEGIN's config JSON with its NUL */
    size_t text_cap;
} pending;

/* Room for n more payload bytes at p->bytes + p->nbytes. */
static uint8_t *pending_room(pending *p, size_t n)
{
    if (p->bytes_cap - p->nbytes < n) {
        size_t cap = p->bytes_cap ? p->bytes_cap : 65536;
        while (cap - p->nbytes < n)
            cap *= 2;
        p->bytes = gl_grow(p->bytes, p->nbytes, cap, 1);
        p->bytes_cap = cap;
    }
    return p->bytes + p->nbytes;
}

static void pending_push(pending *p, const tel_record *r)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->r = gl_grow(p->r, p->n, p->cap, sizeof *p->r);
    }
    p->r[p->n++] = *r;
    p->nbytes += r->payload;   /* pending_room's bytes, read in already */
}

/* Drops the records (written, or never to be) and their payloads. */
static void pending_clear(pending *p)
{
    p->n = 0;
    p->nbytes = 0;
}

/* One record's payload for the store: a heatmap decoded into p->heat (made
 * for its shape), a config JSON as a C string in p->text. -1 with a message
 * when the payload does not decode. */
static int heat_of(pending *p, const tel_record *r, const uint8_t *payload, gl_error *e)
{
    const heatmap_snapshot *h = p->heat;
    if (!h || h->layers != r->u.heatmap.layers || h->heads != r->u.heatmap.heads ||
        h->T != r->u.heatmap.T) {
        heatmap_snapshot_free(p->heat);
        p->heat = heatmap_snapshot_new(r->u.heatmap.layers, r->u.heatmap.heads, r->u.heatmap.T);
    }
    if (heatmap_decode(payload, r->payload, p->heat))
        return gl_fail(e, "arm %u: a heatmap payload of %u bytes does not decode", r->arm,
                       r->payload);
    return 0;
}

static const char *text_of(pending *p, const tel_record *r, const uint8_t *payload)
{
    if (p->text_cap <= r->payload) {
        free(p->text);
        p->text_cap = (size_t)r->payload + 1;
        p->text = xmalloc(p->text_cap);
    }
    memcpy(p->text, payload, r->payload);
    p->text[r->payload] = '\0';
    return p->text;
}

/* One transaction: every pending record, then (end) the session's end, then
 * the heartbeats. 0: committed; 1: the database was busy — rolled back, and
 * the records are still pending, to be written again from the first; -1: a
 * real error, message in e. */
static int write_batch(live *lv, pending *p, int end, gl_error *e)
{
    int rc = store_begin(lv->st, e);
    const uint8_t *payload = p->bytes;
    for (size_t i = 0; !rc && i < p->n; payload += p->r[i].payload, i++) {
        const tel_record *r = &p->r[i];
        /* this thread's own store (begin_run), or the main thread's before
         * this thread started */
        GL_ASSERT(r->arm < LIVE_MAX_ARMS);   /* record_decode refuses others */
        int64_t run = atomic_load_explicit(&lv->run_ids[r->arm], memory_order_acquire);
        if (r->kind == REC_RUN_BEGIN)
            rc = live_store_begin_run(lv, r, text_of(p, r, payload), e);
        else if (r->kind == REC_HEATMAP)
            rc = heat_of(p, r, payload, e) || store_write_heatmap(lv->st, run, p->heat, e) ? -1 : 0;
        else
            rc = store_write(lv->st, run, r, e);
    }
    /* nothing stays pending once its owner is gone (DESIGN §12) */
    if (!rc && end)
        rc = store_command_reject_pending(lv->st, lv->session,
                                          "the session ended before it took effect", NULL, e);
    if (!rc && end)
        rc = store_session_end(lv->st, lv->session, e);
    if (!rc)
        rc = store_commit(lv->st, e);
    if (!rc)
        return 0;
    int busy = store_busy(lv->st);
    store_abort(lv->st);
    return busy ? 1 : -1;
}

/* The payload of a record just popped: r->payload bytes read into p's room
 * (not yet counted as pending). The main thread writes them right after the
 * record, so a short wait here is only for bytes in flight. */
static void read_payload(live *lv, pending *p, const tel_record *r)
{
    uint8_t *dst = pending_room(p, r->payload);
    for (size_t got = 0; got < r->payload;) {
        size_t n = byte_ring_read(lv->store_bytes, dst + got, r->payload - got);
        got += n;
        if (!n)
            nanosleep(&(struct timespec){0, 100000}, NULL);
    }
}

/* live_steer's decisions join the pending records, in order */
static void steer_emit(void *ctx, const tel_record *r)
{
    pending_push(ctx, r);
}

static void *store_main(void *arg)
{
    live *lv = arg;
    pending p = {0};
    gl_error e;
    if (store_set_busy_timeout(lv->st, BUSY_TIMEOUT_MS, &e))
        store_fail(lv, &e);
    double last_batch = gl_now(), retry_at = 0, backoff_ms = 0, end_at = 0;
    int end = 0, soon = 0;
    uint8_t slot[RECORD_WIRE_MAX];
    for (;;) {
        int got = 0, empty = 0;
        /* relaxed: this thread's own store (store_fail) */
        int failed = atomic_load_explicit(&lv->store_failed, memory_order_relaxed);
        /* before the ring is read: every record put before live_store_park
         * set it is then popped below (partner: its release store) */
        int park = atomic_load_explicit(&lv->store_park, memory_order_acquire);
        while (!end && p.n < PENDING_MAX) {
            if (ring_pop(lv->store_ring, slot)) {
                empty = 1;
                break;
            }
            tel_record r;
            long used = record_decode(slot, sizeof slot, &r, NULL);
            GL_ASSERT(used > 0);   /* live_store_put encoded it */
            read_payload(lv, &p, &r);
            got = 1;
            if (r.kind == REC_SESSION_END) {
                end = 1;
                end_at = gl_now();
            } else if (!failed) {
                /* a fork's arm reads its run id for its checkpoints: soon */
                soon |= r.kind == REC_RUN_BEGIN;
                /* an arm's refusal of a command is not a row: live_steer
                 * decides the command's row from it */
                if (r.kind != REC_COMMAND)
                    pending_push(&p, &r);
                live_steer_note(lv, &r, steer_emit, &p);
            }
        }
        double now = gl_now();
        if (!end && !park && !failed && live_steer_poll(lv, now, steer_emit, &p, &e))
            store_fail(lv, &e);
        /* a park (detach) ends this thread like the session's end, with
         * every record written, but leaves the session open */
        int closing = end || (park && empty);
        if (closing && !end_at)
            end_at = now;
        if (failed) {
            pending_clear(&p);
            if (closing)
                break;
        } else if ((closing || soon || p.n >= PENDING_MAX || now - last_batch >= COMMIT_SECONDS) &&
                   now >= retry_at) {
            int rc = write_batch(lv, &p, end, &e);
            if (rc <= 0) {
                if (rc < 0)
                    store_fail(lv, &e);
                pending_clear(&p);
                if (closing)
                    break;
                last_batch = now;
                backoff_ms = 0;
                soon = 0;
            } else if (closing && now - end_at >= END_WAIT_SECONDS) {
                gl_error give_up;
                gl_fail(&give_up, "%.300s (gave up after %.0f s at the %s of the session; "
                                  "%zu records not stored)",
                        e.msg, now - end_at, end ? "end" : "detach", p.n);
                store_fail(lv, &give_up);
                pending_clear(&p);
                break;
            } else {
                backoff_ms = backoff_ms > 0 ? fmin(2 * backoff_ms, BACKOFF_MAX_MS)
                                            : BACKOFF_MIN_MS;
                retry_at = now + backoff_ms / 1000;
            }
        }
        if (!got)
            nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    free(p.r);
    free(p.bytes);
    free(p.text);
    heatmap_snapshot_free(p.heat);
    return NULL;
}

/* The main thread never drops a record bound for the database: when the store
 * ring (or the byte ring beside it) is full it waits (and counts). */
void live_store_put(live *lv, const tel_record *r, const void *payload)
{
    if (!lv->store_ring)
        return;
    GL_ASSERT(payload || !r->payload);
    uint8_t slot[RECORD_WIRE_MAX];
    size_t n = record_encode(r, NULL, slot, sizeof slot);
    GL_ASSERT(n > 0);
    while (ring_push(lv->store_ring, slot)) {
        lv->store_backpressure++;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    /* after the record: the store thread reads these as soon as it has
     * popped it, so a payload larger than the byte ring passes in pieces */
    const uint8_t *p = payload;
    for (size_t left = r->payload; left;) {
        size_t w = byte_ring_write(lv->store_bytes, p, left);
        p += w;
        left -= w;
        if (!w) {
            lv->store_backpressure++;
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
    }
}

int live_store_open(live *lv, gl_error *e)
{
    const live_config *cfg = lv->cfg;
    lv->st = store_open(cfg->db_path, STORE_CREATE, e);
    if (!lv->st)
        return -1;
    if (cfg->resume_run) {
        lv->session = 0;
        store_run_row row;
        if (store_get_run(lv->st, cfg->resume_run, &row, e))
            return -1;
        lv->session = row.session;
        store_run_row_free(&row);
        return 0;
    }
    lv->session = store_session_begin(lv->st, cfg->command_line ? cfg->command_line : "", e);
    if (lv->session < 0)
        return -1;
    if ((cfg->name || cfg->note) &&
        store_session_set_name_note(lv->st, lv->session, cfg->name, cfg->note, e))
        return -1;
    return 0;
}

int live_store_start(live *lv, gl_error *e)
{
    /* the byte ring holds a few of the largest heatmaps, so the main thread
     * seldom waits for the store thread to take one */
    size_t largest = 0;
    for (size_t i = 0; i < lv->narms; i++)
        if (arm_heat_bytes(lv->arms[i]) > largest)
            largest = arm_heat_bytes(lv->arms[i]);
    lv->store_ring = ring_create(STORE_RING, RECORD_WIRE_MAX);
    lv->steer = live_steer_create();
    lv->store_bytes = byte_ring_create(4 * largest + ((size_t)1 << 16));
    GL_ASSERT(lv->store_ring && lv->store_bytes);
    int prc = pthread_create(&lv->store_thread, NULL, store_main, lv);
    if (prc)
        return gl_fail(e, "cannot start the store thread: %s", strerror(prc));
    lv->store_started = 1;
    return 0;
}

void live_store_finish(live *lv)
{
    if (!lv->store_started)
        return;
    /* the store thread owns the connection until it has drained */
    tel_record end = {.kind = REC_SESSION_END};
    live_store_put(lv, &end, NULL);
    pthread_join(lv->store_thread, NULL);   /* its last batch ended the session */
    lv->store_started = 0;
}

void live_store_close(live *lv)
{
    live_store_finish(lv);
    ring_destroy(lv->store_ring);
    byte_ring_destroy(lv->store_bytes);
    live_steer_free(lv->steer);
    lv->steer = NULL;
    lv->store_ring = NULL;
    lv->store_bytes = NULL;
    store_close(lv->st);
    lv->st = NULL;
}

void live_store_park(live *lv)
{
    if (lv->store_started) {
        /* partner: the acquire load in store_main, before it reads the ring */
        atomic_store_explicit(&lv->store_park, 1, memory_order_release);
        pthread_join(lv->store_thread, NULL);   /* its last batch is committed */
        lv->store_started = 0;
        /* relaxed: the thread that loads it is joined; the next one's
         * creation orders this store before its first load */
        atomic_store_explicit(&lv->store_park, 0, memory_order_relaxed);
    }
    store_close(lv->st);   /* SQLite: no connection may cross a fork */
    lv->st = NULL;
}

int live_store_reopen(live *lv, gl_error *e)
{
    lv->st = store_open(lv->cfg->db_path, STORE_EXISTING, e);
    if (!lv->st)
        return -1;
    for (size_t i = 0; i < lv->narms; i++) {
        /* partners: the release stores named at live.run_ids */
        int64_t run = atomic_load_explicit(&lv->run_ids[i], memory_order_acquire);
        int adopted;
        if (run > 0 && store_run_adopt(lv->st, run, &adopted, e))
            return -1;
    }
    int prc = pthread_create(&lv->store_thread, NULL, store_main, lv);
    if (prc)
        return gl_fail(e, "cannot start the store thread again: %s", strerror(prc));
    lv->store_started = 1;
    return 0;
}
