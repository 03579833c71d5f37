/* live_steer: the commands table (DESIGN §12) inside the process that owns
 * the session — other processes (`gatelab send`, `gatelab watch`) insert
 * rows; this file picks them up, hands each to its arms exactly as a key
 * would (live_send, applied at the arm's next step boundary), and decides
 * each row once: applied at the step of the event it made, or rejected with
 * why.
 *
 * The route. The store thread polls: it owns the session's only write
 * connection, and reading the pending rows there (outside its batches: a
 * read in WAL mode takes no lock another writer waits on) costs no second
 * connection, no second busy handler and no second thread to join; and it
 * is the thread that sees every record go to the database, so it can tie
 * an arm's event to its command and write the event and the command's
 * decision in the same batch. It reads only rows above the last id it has
 * seen, through the partial index of pending rows, every
 * STEER_POLL_SECONDS. What it cannot decide alone (the arms live on the main
 * thread's side) it hands to the session loop through a new SPSC ring (store
 * thread -> main thread), whose slots are a target arm and the command as
 * command_encode makes it. The session loop (live_steer_deliver, every tick)
 * sends each to its arm with live_send, the path of a key; an arm that has
 * ended is answered with a REC_COMMAND record on the store ring.
 *
 * The answers come back on the records the store thread already reads, in
 * order: the event an arm makes for a command carries its id
 * (event.command), an arm that refuses one (an error, or nothing to change)
 * sends a REC_COMMAND, and an arm's final status rejects whatever it had not
 * answered. A command for every arm is decided once every arm it went to has
 * answered: applied at the first step any arm applied it (each arm's event
 * has its own step), rejected if none did. Whatever is still pending when
 * the session ends is rejected by its last batch (live_store.c). */
#include "live_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

#define STEER_POLL_SECONDS 0.2
/* commands handed to arms and not yet decided; more wait in the table */
#define STEER_FLIGHTS 64
/* a slot per (command, arm) in flight: the ring can never be full */
#define STEER_RING (STEER_FLIGHTS * LIVE_MAX_ARMS)
#define STEER_SLOT COMMAND_ADDRESSED_WIRE_SIZE

typedef struct {
    uint64_t id;
    uint32_t targets, answered;    /* bit per arm index */
    uint32_t applied;              /* how many arms applied it */
    uint64_t step;                 /* the first step it was applied at */
    char reason[REC_TEXT];         /* the refusals, "; "-joined */
} steer_flight;

struct live_steer {
    ring *to_main;                 /* store thread -> main thread, STEER_SLOT bytes */
    /* the rest: the store thread only */
    double last_poll;
    int64_t seen;                  /* the highest id read from the table */
    uint32_t ended;                /* arms whose final status the store thread has seen */
    uint32_t ended_status[LIVE_MAX_ARMS];
    uint64_t ended_step[LIVE_MAX_ARMS];
    steer_flight flight[STEER_FLIGHTS];
    size_t nflight;
    /* one poll's context */
    live *lv;
    steer_emit_fn emit;
    void *emit_ctx;
};

live_steer *live_steer_create(void)
{
    live_steer *s = xcalloc(1, sizeof *s);
    s->to_main = ring_create(STEER_RING, STEER_SLOT);
    GL_ASSERT(s->to_main);
    return s;
}

void live_steer_free(live_steer *s)
{
    if (!s)
        return;
    ring_destroy(s->to_main);
    free(s);
}

/* ---- the store thread ---- */

static void decide(live_steer *s, uint64_t id, int applied, uint64_t step, const char *reason)
{
    tel_record r = {.kind = REC_COMMAND, .step = step, .wall_ms = gl_wall_ms()};
    r.u.command.id = id;
    r.u.command.applied = (uint32_t)applied;
    snprintf(r.u.command.reason, sizeof r.u.command.reason, "%s", reason ? reason : "");
    s->emit(s->emit_ctx, &r);
}

static void reject(live_steer *s, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reject(live_steer *s, uint64_t id, const char *fmt, ...)
{
    char why[REC_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    decide(s, id, 0, 0, why);
}

/* The arm index of a run of this process, -1 when it is none of ours. */
static int arm_of_run(live *lv, int64_t run)
{
    for (int i = 0; i < LIVE_MAX_ARMS; i++)
        /* partners: the release stores named at live.run_ids */
        if (atomic_load_explicit(&lv->run_ids[i], memory_order_acquire) == run)
            return i;
    return -1;
}

static int64_t run_of_arm(live *lv, uint32_t i)
{
    /* partners: the release stores named at live.run_ids */
    return atomic_load_explicit(&lv->run_ids[i], memory_order_acquire);
}

/* One answer of arm i; the flight is decided once every target answered. */
static void answer(live_steer *s, size_t f, uint32_t i, int applied, uint64_t step,
                   const char *why)
{
    steer_flight *fl = &s->flight[f];
    uint32_t bit = 1u << i;
    if (!(fl->targets & bit) || (fl->answered & bit))
        return;
    fl->answered |= bit;
    if (applied) {
        if (!fl->applied || step < fl->step)
            fl->step = step;
        fl->applied++;
    } else if (why && *why) {
        size_t used = strlen(fl->reason);
        snprintf(fl->reason + used, sizeof fl->reason - used, "%s%s", used ? "; " : "", why);
    }
    if (fl->answered != fl->targets)
        return;
    decide(s, fl->id, fl->applied > 0, fl->step, fl->reason);
    s->flight[f] = s->flight[--s->nflight];
}

static long flight_of(const live_steer *s, uint64_t id)
{
    for (size_t f = 0; f < s->nflight; f++)
        if (s->flight[f].id == id)
            return (long)f;
    return -1;
}

static int is_final(uint32_t status)
{
    return status != RUN_RUNNING && status != RUN_PAUSED;
}

void live_steer_note(live *lv, const tel_record *r, steer_emit_fn emit, void *ctx)
{
    live_steer *s = lv->steer;
    s->emit = emit;
    s->emit_ctx = ctx;
    if (r->arm >= LIVE_MAX_ARMS)
        return;
    if (r->kind == REC_EVENT && r->u.event.command) {
        long f = flight_of(s, r->u.event.command);
        if (f >= 0)
            answer(s, (size_t)f, r->arm, 1, r->step, NULL);
    } else if (r->kind == REC_COMMAND) {
        long f = flight_of(s, r->u.command.id);
        if (f >= 0)
            answer(s, (size_t)f, r->arm, 0, 0, r->u.command.reason);
    } else if (r->kind == REC_STATUS && is_final(r->u.status.status)) {
        s->ended |= 1u << r->arm;
        s->ended_status[r->arm] = r->u.status.status;
        s->ended_step[r->arm] = r->step;
        char why[REC_TEXT];
        snprintf(why, sizeof why, "run %lld ended (%s at step %llu) before it took effect",
                 (long long)run_of_arm(lv, r->arm),
                 run_status_name((run_status)r->u.status.status),
                 (unsigned long long)r->step);
        /* answer() may move the last flight into slot f: look at f again */
        for (size_t f = 0; f < s->nflight;) {
            size_t before = s->nflight;
            answer(s, f, r->arm, 0, 0, why);
            if (s->nflight == before)
                f++;
        }
    }
}

static void to_main(live_steer *s, uint32_t arm, const cmd_record *c)
{
    uint8_t slot[STEER_SLOT];
    size_t n = command_encode_addressed(arm, c, slot, sizeof slot);
    GL_ASSERT(n == STEER_SLOT);
    /* STEER_RING holds every (flight, arm) pair there can be */
    int full = ring_push(s->to_main, slot);
    GL_ASSERT(!full);
}

/* Why a run of the session that is not one of our arms cannot be steered. */
static void reject_foreign(live_steer *s, uint64_t id, int64_t run)
{
    store_run_row row;
    gl_error e;
    if (store_get_run(s->lv->st, run, &row, &e) == 0) {
        run_status st;
        if (run_status_parse(row.status, &st) == 0 && is_final(st))
            reject(s, id, "run %lld has ended (%s)", (long long)run, row.status);
        else
            reject(s, id, "run %lld is not trained by this process", (long long)run);
        store_run_row_free(&row);
    } else {
        reject(s, id, "no run %lld in this session", (long long)run);
    }
}

static int on_row(void *ctx, const store_command_row *row)
{
    live_steer *s = ctx;
    live *lv = s->lv;
    if (s->nflight == STEER_FLIGHTS)
        return 1;   /* the rest wait in the table for the next poll */
    s->seen = row->id;
    uint64_t id = (uint64_t)row->id;
    /* the word a person would type, read by the one parser of command words
     * (an '@' or ':' inside a field would smuggle in another arm or step) */
    if (strpbrk(row->kind, ":@") || strchr(row->arg, '@')) {
        reject(s, id, "bad command '%.40s' '%.40s'", row->kind, row->arg);
        return 0;
    }
    char word[96];
    snprintf(word, sizeof word, "%s%s%s", row->kind, row->arg[0] ? ":" : "", row->arg);
    scripted_command sc;
    gl_error e;
    if (command_parse_word(word, &sc, &e)) {
        reject(s, id, "%s", e.msg);
        return 0;
    }
    cmd_record c = sc.cmd;
    c.scripted = CMD_SOURCE_SENT;
    c.id = id;
    uint32_t targets = 0;
    if (row->run) {
        int i = arm_of_run(lv, row->run);
        if (i < 0) {
            reject_foreign(s, id, row->run);
            return 0;
        }
        if (s->ended & (1u << i)) {
            reject(s, id, "run %lld has ended (%s at step %llu)", (long long)row->run,
                   run_status_name((run_status)s->ended_status[i]),
                   (unsigned long long)s->ended_step[i]);
            return 0;
        }
        targets = 1u << i;
    } else {
        for (uint32_t i = 0; i < LIVE_MAX_ARMS; i++)
            if (run_of_arm(lv, i) && !(s->ended & (1u << i)))
                targets |= 1u << i;
        if (!targets) {
            reject(s, id, "every arm of session %lld has ended", (long long)lv->session);
            return 0;
        }
    }
    steer_flight *fl = &s->flight[s->nflight++];
    memset(fl, 0, sizeof *fl);
    fl->id = id;
    fl->targets = targets;
    for (uint32_t i = 0; i < LIVE_MAX_ARMS; i++)
        if (targets & (1u << i))
            to_main(s, i, &c);
    return 0;
}

int live_steer_poll(live *lv, double now, steer_emit_fn emit, void *ctx, gl_error *e)
{
    live_steer *s = lv->steer;
    if (now - s->last_poll < STEER_POLL_SECONDS || s->nflight == STEER_FLIGHTS)
        return 0;
    s->last_poll = now;
    s->lv = lv;
    s->emit = emit;
    s->emit_ctx = ctx;
    if (store_command_pending(lv->st, lv->session, s->seen, on_row, s, e) < 0)
        /* another connection's lock: read again at the next poll */
        return store_busy(lv->st) ? 0 : -1;
    return 0;
}

/* ---- the session loop (main thread) ---- */

void live_steer_deliver(live *lv)
{
    live_steer *s = lv->steer;
    uint8_t slot[STEER_SLOT];
    while (s && ring_pop(s->to_main, slot) == 0) {
        uint32_t i;
        cmd_record c;
        long n = command_decode_addressed(slot, sizeof slot, &i, &c);
        GL_ASSERT(n > 0 && i < LIVE_MAX_ARMS);   /* to_main encoded it */
        if (live_send(lv, i, &c) == 0)
            continue;
        /* the arm has ended (its final status is on its way to the store
         * thread, which rejects this too) or its queue is full */
        tel_record r = {.kind = REC_COMMAND, .arm = i, .step = live_arm_step(lv, i),
                        .wall_ms = gl_wall_ms()};
        r.u.command.id = c.id;
        int ended = i >= lv->narms || arm_done(lv->arms[i]);
        snprintf(r.u.command.reason, sizeof r.u.command.reason,
                 ended ? "run %lld has ended" : "run %lld: its command queue is full",
                 (long long)live_run_id(lv, i));
        live_store_put(lv, &r, NULL);
    }
}
