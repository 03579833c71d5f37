/* live: the session loop of DESIGN §5. Owns the arms, the store ring and the
 * store thread; only the main thread creates arms (forks included), so arm
 * indices and rings have a single producer and consumer each. */
#include "live.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "gate.h"
#include "json.h"
#include "ring.h"
#include "runspec.h"
#include "store.h"

#define STORE_RING 65536
#define REC_END REC_KIND_COUNT      /* store ring only: the session is over */
#define COMMIT_SECONDS 0.5

typedef struct {
    char *config_json;              /* written before the arm's REC_RUN_BEGIN is queued */
    uint32_t parent;                /* UINT32_MAX: none */
    uint64_t start_step;
} arm_info;

struct live {
    const live_config *cfg;
    arm *arms[LIVE_MAX_ARMS];
    arm_info info[LIVE_MAX_ARMS];
    _Atomic int64_t run_ids[LIVE_MAX_ARMS];
    size_t narms;
    /* store side */
    store *st;
    int64_t session;
    ring *store_ring;
    pthread_t store_thread;
    int store_started;
    atomic_int store_failed;
    char store_error[sizeof(gl_error)];
    uint64_t store_backpressure;
    char ckpt_root[2048];
    size_t threads_per_arm;
};

/* ---- configuration as JSON (for people with sqlite3, and for resume) ---- */

static char *config_json(const live *lv, const trainer *t, const char *name, gate_mode mode,
                         const scripted_command *script, size_t nscript, const char *ckpt_dir)
{
    const live_config *cfg = lv->cfg;
    /* the run-spec table's JSON rows, with the arm's mode and the threads
     * its pool really has */
    train_config tc = t->cfg;
    tc.model = t->m.cfg;
    tc.model.mode = mode;
    tc.optim = t->o.cfg;
    tc.threads = pool_threads(t->m.pool);
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    json_key(&b, "name");
    json_string(&b, name);
    runspec_write_json(&b, &tc, RUNSPEC_JSON);
    json_key(&b, "ckpt_dir");
    json_string(&b, ckpt_dir);
    /* argv: what `gatelab resume` parses again; the arm's own scripted
     * commands are kept without their arm selector */
    json_key(&b, "argv");
    json_array_begin(&b);
    for (int i = 0; i < cfg->run_argc; i++)
        json_string(&b, cfg->run_argv[i]);
    char arm_word[48];
    live_arm_spec(&t->m.cfg, arm_word, sizeof arm_word);
    json_string(&b, "--arms");
    json_string(&b, arm_word);
    for (size_t i = 0; i < nscript; i++) {
        char spec[96], arg[32] = "";
        const cmd_record *c = &script[i].cmd;
        if (c->kind == CMD_SWAP || c->kind == CMD_FORK)
            snprintf(arg, sizeof arg, ":%s", gate_mode_name((gate_mode)c->arg));
        else if (c->kind == CMD_SET_K)
            snprintf(arg, sizeof arg, ":%u", c->arg);
        else if (c->kind == CMD_PAUSE && c->seconds > 0.0)
            snprintf(arg, sizeof arg, ":%.9g", c->seconds);
        snprintf(spec, sizeof spec, "%llu:%s%s", (unsigned long long)script[i].step,
                 cmd_kind_name((cmd_kind)c->kind), arg);
        json_string(&b, "--at");
        json_string(&b, spec);
    }
    json_array_end(&b);
    json_object_end(&b);
    return json_take(&b);
}

/* ---- the store thread ---- */

static void store_fail(live *lv, const gl_error *e)
{
    snprintf(lv->store_error, sizeof lv->store_error, "%s", e->msg);
    atomic_store_explicit(&lv->store_failed, 1, memory_order_release);
}

static int begin_run(live *lv, uint32_t idx, gl_error *e)
{
    const arm *a = lv->arms[idx];
    const arm_info *in = &lv->info[idx];
    const model_config *m = &a->t.m.cfg;
    int64_t parent = in->parent == UINT32_MAX ? 0 : atomic_load(&lv->run_ids[in->parent]);
    store_run_desc d = {.arm = idx,
                        .name = a->name,
                        .mode = gate_mode_name(m->mode),
                        .k = (uint32_t)m->k,
                        .frozen = m->gate_frozen,
                        .seed = m->seed,
                        .config_json = in->config_json,
                        .parent_run = parent,
                        .start_step = in->start_step};
    int64_t id = store_run_begin(lv->st, lv->session, &d, e);
    if (id < 0)
        return -1;
    /* --tag: on every run of the session, a fork's too (in its batch's
     * transaction when the store thread begins it) */
    for (size_t i = 0; i < lv->cfg->ntags; i++)
        if (store_tag_set(lv->st, id, lv->cfg->tags[i].key, lv->cfg->tags[i].value, e))
            return -1;
    atomic_store(&lv->run_ids[idx], id);
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
    tel_record *r;      /* a REC_HEATMAP here owns its snapshot */
    size_t n, cap;
} pending;

static void pending_push(pending *p, const tel_record *r)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        tel_record *np = xmalloc(p->cap * sizeof *np);
        if (p->n)
            memcpy(np, p->r, p->n * sizeof *np);
        free(p->r);
        p->r = np;
    }
    p->r[p->n++] = *r;
}

/* Drops the records (written, or never to be), freeing what they own. */
static void pending_clear(pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->r[i].kind == REC_HEATMAP)
            heatmap_snapshot_free(p->r[i].u.heatmap.snap);
    p->n = 0;
}

/* One transaction: every pending record, then (end) the session's end, then
 * the heartbeats. 0: committed; 1: the database was busy — rolled back, and
 * the records are still pending, to be written again from the first; -1: a
 * real error, message in e. */
static int write_batch(live *lv, const pending *p, int end, gl_error *e)
{
    int rc = store_begin(lv->st, e);
    for (size_t i = 0; !rc && i < p->n; i++) {
        const tel_record *r = &p->r[i];
        rc = r->kind == REC_RUN_BEGIN
                 ? begin_run(lv, r->arm, e)
                 : store_write(lv->st, atomic_load(&lv->run_ids[r->arm]), r, e);
    }
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

static void *store_main(void *arg)
{
    live *lv = arg;
    pending p = {0};
    gl_error e;
    if (store_set_busy_timeout(lv->st, BUSY_TIMEOUT_MS, &e))
        store_fail(lv, &e);
    double last_batch = gl_now(), retry_at = 0, backoff_ms = 0, end_at = 0;
    int end = 0, soon = 0;
    for (;;) {
        int got = 0;
        int failed = atomic_load_explicit(&lv->store_failed, memory_order_relaxed);
        tel_record r;
        while (!end && p.n < PENDING_MAX && ring_pop(lv->store_ring, &r) == 0) {
            got = 1;
            if (r.kind == REC_END) {
                end = 1;
                end_at = gl_now();
            } else if (failed) {
                if (r.kind == REC_HEATMAP)
                    heatmap_snapshot_free(r.u.heatmap.snap);
            } else {
                /* a fork's arm reads its run id for its checkpoints: soon */
                soon |= r.kind == REC_RUN_BEGIN;
                pending_push(&p, &r);
            }
        }
        double now = gl_now();
        if (failed) {
            pending_clear(&p);
            if (end)
                break;
        } else if ((end || soon || p.n >= PENDING_MAX || now - last_batch >= COMMIT_SECONDS) &&
                   now >= retry_at) {
            int rc = write_batch(lv, &p, end, &e);
            if (rc <= 0) {
                if (rc < 0)
                    store_fail(lv, &e);
                pending_clear(&p);
                if (end)
                    break;
                last_batch = now;
                backoff_ms = 0;
                soon = 0;
            } else if (end && now - end_at >= END_WAIT_SECONDS) {
                gl_error give_up;
                gl_fail(&give_up, "%.300s (gave up after %.0f s at the end of the session; "
                                  "%zu records not stored)",
                        e.msg, now - end_at, p.n);
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
    return NULL;
}

/* The main thread never drops a record bound for the database: when the store
 * ring is full it waits (and counts). */
static void to_store(live *lv, const tel_record *r)
{
    if (!lv->store_ring)
        return;
    while (ring_push(lv->store_ring, r)) {
        lv->store_backpressure++;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* ---- arms ---- */

static int arm_dir(const live *lv, uint32_t idx, const char *name, char *out, size_t n)
{
    if (!lv->ckpt_root[0])
        return 0;
    if (snprintf(out, n, "%s/arm%u-%s", lv->ckpt_root, idx, name) >= (int)n)
        return -1;
    for (char *p = out + strlen(lv->ckpt_root) + 1; *p; p++)
        if (*p == '/' || *p == '>' || *p == ' ')
            *p = '_';
    return 0;
}

/* Whose files arm idx's checkpoints are (DESIGN §11); a resumed run keeps
 * its own. Nothing without a database. */
static void set_owner(const live *lv, uint32_t idx, checkpoint_owner *o)
{
    const live_config *cfg = lv->cfg;
    if (!lv->st)
        return;
    snprintf(o->db_id, sizeof o->db_id, "%s", store_db_id(lv->st));
    o->session = lv->session;
    int resumed = cfg->resume_run && idx == 0;   /* a later index: forked since */
    o->arm = resumed ? cfg->resume_arm : idx;
    o->run = resumed ? cfg->resume_run : 0;
}

static int add_arm(live *lv, trainer *t, const char *name, uint32_t parent, const char *dir,
                   gl_error *e)
{
    const live_config *cfg = lv->cfg;
    if (lv->narms >= LIVE_MAX_ARMS)
        return gl_fail(e, "at most %d arms", LIVE_MAX_ARMS);
    uint32_t idx = (uint32_t)lv->narms;
    char ckdir[2048];
    if (dir)
        snprintf(ckdir, sizeof ckdir, "%s", dir);
    else if (arm_dir(lv, idx, name, ckdir, sizeof ckdir))
        return gl_fail(e, "checkpoint directory under %s: path too long", lv->ckpt_root);
    int has_dir = dir || lv->ckpt_root[0];
    /* scripted commands addressed to this arm (by index or name) or to all */
    scripted_command *mine = cfg->nscript ? xmalloc(cfg->nscript * sizeof *mine) : NULL;
    size_t nmine = 0;
    if (parent == UINT32_MAX)
        for (size_t i = 0; i < cfg->nscript; i++) {
            const char *sel = cfg->script[i].arm;
            char num[24];
            snprintf(num, sizeof num, "%u", idx);
            if (!sel[0] || strcmp(sel, num) == 0 || strcmp(sel, name) == 0)
                mine[nmine++] = cfg->script[i];
        }
    /* by step, keeping the command-line order within a step */
    for (size_t i = 1; i < nmine; i++) {
        scripted_command c = mine[i];
        size_t j = i;
        for (; j > 0 && mine[j - 1].step > c.step; j--)
            mine[j] = mine[j - 1];
        mine[j] = c;
    }
    /* the record that carries a checkpoint path has REC_TEXT bytes: refuse a
     * directory too deep for it now rather than at the first save */
    if (has_dir && strlen(ckdir) + sizeof "/step000000000.safetensors" > REC_TEXT) {
        free(mine);
        return gl_fail(e, "checkpoint directory %s: path too long (at most %zu bytes)", ckdir,
                       (size_t)REC_TEXT - sizeof "/step000000000.safetensors");
    }
    arm_config ac = {.steps = t->cfg.steps,
                     .eval_every = t->cfg.eval_every,
                     .save_every = t->cfg.save_every,
                     .ckpt_dir = has_dir ? ckdir : NULL,
                     .telemetry = cfg->telemetry,
                     .keep_checkpoints = cfg->keep_checkpoints,
                     .heatmap_every = cfg->heatmap_every,
                     .run_id = &lv->run_ids[idx]};
    set_owner(lv, idx, &t->owner);
    lv->info[idx].config_json =
        config_json(lv, t, name, t->m.cfg.mode, mine, nmine, has_dir ? ckdir : NULL);
    lv->info[idx].parent = parent;
    lv->info[idx].start_step = t->step;
    arm *a = arm_create(idx, name, t, &ac, mine, nmine);
    free(mine);
    /* arm_create copied the config; the directory string must outlive it */
    a->cfg.ckpt_dir = has_dir ? xstrdup(ckdir) : NULL;
    lv->arms[idx] = a;
    lv->narms++;
    return 0;
}

static void free_arm(live *lv, size_t i)
{
    arm *a = lv->arms[i];
    if (!a)
        return;
    free((char *)a->cfg.ckpt_dir);
    arm_destroy(a);
    free(lv->info[i].config_json);
    lv->arms[i] = NULL;
}

/* A fork arrived: the new arm gets the next index, a run row and a thread. */
static void adopt_fork(live *lv, const tel_record *r, const live_observer *obs)
{
    trainer *child = r->u.forked.trainer;
    const arm *parent = lv->arms[r->arm];
    gl_error e;
    char name[64];
    snprintf(name, sizeof name, "%.30s>%s", parent->name,
             gate_mode_name((gate_mode)r->u.forked.mode));
    if (add_arm(lv, child, name, r->arm, NULL, &e)) {
        trainer_free(child);
        free(child);
        tel_record ev = {.kind = REC_EVENT, .arm = r->arm, .step = r->step,
                         .wall_ms = gl_wall_ms()};
        ev.u.event.kind = EV_ERROR;
        snprintf(ev.u.event.detail, sizeof ev.u.event.detail, "fork refused: %.120s", e.msg);
        if (obs->on_record)
            obs->on_record(obs->ctx, lv, &ev);
        to_store(lv, &ev);
        return;
    }
    free(child);
    uint32_t idx = (uint32_t)lv->narms - 1;
    tel_record rb = {.kind = REC_RUN_BEGIN, .arm = idx, .step = r->step, .wall_ms = gl_wall_ms()};
    rb.u.run.parent_arm = r->arm;
    to_store(lv, &rb);
    if (obs->on_record)
        obs->on_record(obs->ctx, lv, &rb);
    if (arm_start(lv->arms[idx], &e)) {
        /* no thread: report it as a stopped run so nothing waits for it */
        atomic_store(&lv->arms[idx]->done, 1);
        tel_record st = {.kind = REC_STATUS, .arm = idx, .step = r->step,
                         .wall_ms = gl_wall_ms()};
        st.u.status.status = RUN_STOPPED;
        to_store(lv, &st);
    }
}

/* ---- the session ---- */

size_t live_arm_count(const live *lv) { return lv->narms; }
arm *live_arm(live *lv, size_t i) { return i < lv->narms ? lv->arms[i] : NULL; }
int64_t live_run_id(const live *lv, size_t i)
{
    return i < lv->narms ? atomic_load(&((live *)lv)->run_ids[i]) : 0;
}

int64_t live_session(const live *lv) { return lv->session; }

int live_send(live *lv, size_t i, const cmd_record *c)
{
    if (i >= lv->narms || atomic_load(&lv->arms[i]->done))
        return -1;
    return arm_send(lv->arms[i], c);
}

static void stop_all(live *lv, int source)
{
    cmd_record c = {.kind = CMD_STOP, .scripted = (uint32_t)source};
    for (size_t i = 0; i < lv->narms; i++)
        if (!atomic_load(&lv->arms[i]->done))
            while (arm_send(lv->arms[i], &c))
                nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* The arm's newest heatmaps to the store, once per version. --heatmap-every
 * thins them (thinned[] keeps the version it skipped); `final` (the arm's
 * last status) stores a skipped last one, so a run always ends with its
 * heatmaps even when it stops at a thinned step. */
static void forward_heatmap(live *lv, const arm *a, uint8_t **flat, size_t *cap,
                            uint64_t *seen, uint64_t *thinned, int final)
{
    if (!a->heat || !lv->store_ring)
        return;
    uint64_t latest = latest_version(a->heat);
    if (final ? !thinned[a->index] || thinned[a->index] != latest : latest == seen[a->index])
        return;
    if (*cap < a->heat_bytes) {
        free(*flat);
        *flat = xmalloc(a->heat_bytes);
        *cap = a->heat_bytes;
    }
    uint64_t v = latest_read(a->heat, *flat);
    if (!v || (!final && v == seen[a->index]))
        return;
    seen[a->index] = v;
    uint64_t step;
    memcpy(&step, *flat, sizeof step);   /* the payload starts with its step */
    if (!final && !arm_heat_stored(a, step)) {
        thinned[a->index] = v;   /* --heatmap-every: the screen draws it, the store skips it */
        return;
    }
    thinned[a->index] = 0;
    tel_record r = {.kind = REC_HEATMAP, .arm = a->index, .wall_ms = gl_wall_ms()};
    r.u.heatmap.snap = arm_heat_unpack(a, *flat);
    r.step = r.u.heatmap.snap->step;
    to_store(lv, &r);
}

static int open_store(live *lv, gl_error *e)
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

/* BASE/<db name>-<db id>/session-N: the database's id makes two databases
 * of one name, or in one directory, write apart, and the session number two
 * sessions of one database (DESIGN §11). BASE is --out, or ckpt/ beside the
 * database. Without a database, --out gets a directory of its own. */
static int checkpoint_root(live *lv, const char *cwd, gl_error *e)
{
    const live_config *cfg = lv->cfg;
    char base[1200], tmp[1100];
    if (cfg->out_dir) {
        snprintf(base, sizeof base, "%s%s%s", cfg->out_dir[0] == '/' ? "" : cwd,
                 cfg->out_dir[0] == '/' ? "" : "/", cfg->out_dir);
    } else if (cfg->db_path) {
        snprintf(tmp, sizeof tmp, "%s", cfg->db_path);
        const char *dir = dirname(tmp);
        if (strcmp(dir, ".") == 0)
            snprintf(base, sizeof base, "%s/ckpt", cwd);
        else
            snprintf(base, sizeof base, "%s%s%s/ckpt", dir[0] == '/' ? "" : cwd,
                     dir[0] == '/' ? "" : "/", dir);
    } else {
        return 0;   /* nowhere to write: no checkpoints */
    }
    int n;
    if (lv->st) {
        snprintf(tmp, sizeof tmp, "%s", cfg->db_path);
        char *name = basename(tmp), *dot = strrchr(name, '.');
        if (dot && dot != name)
            *dot = '\0';
        n = snprintf(lv->ckpt_root, sizeof lv->ckpt_root, "%s/%.40s-%.8s/session-%lld", base,
                     name, store_db_id(lv->st), (long long)lv->session);
    } else {
        n = snprintf(lv->ckpt_root, sizeof lv->ckpt_root, "%s/nodb-%lld-%ld", base,
                     (long long)time(NULL), (long)getpid());
    }
    if (n >= (int)sizeof lv->ckpt_root)
        return gl_fail(e, "checkpoint directory under %s: path too long", base);
    for (char *p = lv->ckpt_root + strlen(base) + 1; *p; p++)
        if (*p == ' ')
            *p = '_';
    return 0;
}

static int make_arms(live *lv, gl_error *e)
{
    const live_config *cfg = lv->cfg;
    size_t total = cfg->tc.threads ? cfg->tc.threads : 1;
    lv->threads_per_arm = total / cfg->narms ? total / cfg->narms : 1;
    for (size_t i = 0; i < cfg->narms; i++) {
        train_config tc = cfg->tc;
        tc.model.mode = cfg->modes[i];
        tc.model.experts = cfg->ffn[i] == LIVE_FFN_DENSE ? 0 : cfg->experts;
        tc.model.router_frozen = cfg->ffn[i] == LIVE_FFN_MOE_RANDOM;
        tc.threads = lv->threads_per_arm;
        tc.heatmaps = cfg->telemetry && cfg->db_path;
        trainer t;
        if (trainer_init(&t, &tc, e))
            return -1;
        const char *dir = NULL;
        char resume_dir[2048];
        if (cfg->resume_ckpt) {
            set_owner(lv, (uint32_t)i, &t.owner);   /* restore refuses another's file */
            if (trainer_restore(&t, cfg->resume_ckpt, e)) {
                trainer_free(&t);
                return -1;
            }
            snprintf(resume_dir, sizeof resume_dir, "%s", cfg->resume_ckpt);
            dir = dirname(resume_dir);
        }
        char name[64];
        live_arm_name(cfg, i, name, sizeof name);
        if (add_arm(lv, &t, name, UINT32_MAX, dir, e)) {
            trainer_free(&t);
            return -1;
        }
    }
    return 0;
}

static const char *const ffn_suffix[] = {"", "+moe", "+moe-random"};

int live_parse_arm(const char *word, gate_mode *mode, live_ffn *ffn)
{
    char head[32];
    const char *plus = strchr(word, '+');
    size_t len = plus ? (size_t)(plus - word) : strlen(word);
    if (len >= sizeof head)
        return -1;
    memcpy(head, word, len);
    head[len] = '\0';
    if (gate_mode_parse(head, mode) || *mode == GATE_DISTILLED)
        return -1;
    *ffn = LIVE_FFN_DENSE;
    if (!plus)
        return 0;
    for (int f = LIVE_FFN_MOE; f <= LIVE_FFN_MOE_RANDOM; f++)
        if (strcmp(plus, ffn_suffix[f]) == 0) {
            *ffn = (live_ffn)f;
            return 0;
        }
    return -2;
}

int live_check_label(const char *what, const char *text, size_t max, gl_error *e)
{
    if (!text || !*text)
        return gl_fail(e, "%s: missing value", what);
    if (strlen(text) > max)
        return gl_fail(e, "%s %.40s...: longer than %zu bytes", what, text, max);
    if (!args_is_utf8(text))
        return gl_fail(e, "%s: not valid UTF-8", what);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return gl_fail(e, "%s %.40s: control characters are not allowed", what, text);
    return 0;
}

int live_label_option(const char *flag, const char *value, const char **name,
                      const char **note, live_tag tags[LIVE_MAX_TAGS], size_t *ntags,
                      gl_error *e)
{
    if (strcmp(flag, "--name") == 0 || strcmp(flag, "--note") == 0) {
        int is_name = flag[3] == 'a';
        if (live_check_label(flag, value, is_name ? 63 : 1000, e))
            return -1;
        /* ls and rm take --session ID or NAME: a name must not read as an id */
        if (is_name && value[strspn(value, "0123456789")] == '\0')
            return gl_fail(e, "--name %s: a name cannot be a number (ls and rm --session "
                              "take session ids too)", value);
        *(is_name ? name : note) = value;
        return 1;
    }
    if (strcmp(flag, "--tag") != 0)
        return 0;
    if (*ntags == LIVE_MAX_TAGS)
        return gl_fail(e, "--tag: at most %d tags", LIVE_MAX_TAGS);
    if (live_parse_tag(value, &tags[*ntags], e))
        return -1;
    (*ntags)++;
    return 1;
}

int live_parse_tag(const char *word, live_tag *out, gl_error *e)
{
    const char *eq = word ? strchr(word, '=') : NULL;
    if (!word || !*word)
        return gl_fail(e, "--tag: missing value (KEY=VALUE)");
    if (!eq || eq == word)
        return gl_fail(e, "--tag %.60s: expected KEY=VALUE (a non-empty key, '=', a value)",
                       word);
    size_t klen = (size_t)(eq - word);
    if (klen >= sizeof out->key || strlen(eq + 1) >= sizeof out->value)
        return gl_fail(e, "--tag %.60s: key at most %zu bytes, value at most %zu", word,
                       sizeof out->key - 1, sizeof out->value - 1);
    if (!args_is_utf8(word))
        return gl_fail(e, "--tag: not valid UTF-8");
    for (const unsigned char *c = (const unsigned char *)word; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return gl_fail(e, "--tag %.60s: control characters are not allowed", word);
    memcpy(out->key, word, klen);
    out->key[klen] = '\0';
    snprintf(out->value, sizeof out->value, "%s", eq + 1);
    return 0;
}

void live_arm_spec(const model_config *m, char *buf, size_t n)
{
    live_ffn f = !m->experts ? LIVE_FFN_DENSE
                 : m->router_frozen ? LIVE_FFN_MOE_RANDOM : LIVE_FFN_MOE;
    snprintf(buf, n, "%s%s", gate_mode_name(m->mode), ffn_suffix[f]);
}

void live_arm_name(const live_config *cfg, size_t i, char *buf, size_t n)
{
    if (cfg->resume_name) {
        snprintf(buf, n, "%s", cfg->resume_name);
        return;
    }
    /* the --arms word, numbered when the same word appears twice */
    size_t same = 0;
    for (size_t j = 0; j < i; j++)
        same += cfg->modes[j] == cfg->modes[i] && cfg->ffn[j] == cfg->ffn[i];
    const char *mode = gate_mode_name(cfg->modes[i]), *ffn = ffn_suffix[cfg->ffn[i]];
    if (same)
        snprintf(buf, n, "%s%s%zu", mode, ffn, same + 1);
    else
        snprintf(buf, n, "%s%s", mode, ffn);
}

int live_check_script(const live_config *cfg, gl_error *e)
{
    for (size_t i = 0; i < cfg->nscript; i++) {
        const scripted_command *s = &cfg->script[i];
        char what[64];
        command_describe(&s->cmd, what, sizeof what);
        if (s->step > cfg->tc.steps)
            return gl_fail(e, "--at %llu:%s: step is beyond --steps %zu",
                           (unsigned long long)s->step, what, cfg->tc.steps);
        if (s->cmd.kind == CMD_SET_K && s->cmd.arg > cfg->tc.model.T)
            return gl_fail(e, "--at %llu:k:%u: k must be at most the context length %zu",
                           (unsigned long long)s->step, s->cmd.arg, cfg->tc.model.T);
        if (!s->arm[0])
            continue;
        int found = 0;
        for (size_t a = 0; a < cfg->narms; a++) {
            char num[24], name[64];
            snprintf(num, sizeof num, "%zu", a);
            live_arm_name(cfg, a, name, sizeof name);
            found |= strcmp(s->arm, num) == 0 || strcmp(s->arm, name) == 0;
        }
        if (!found)
            return gl_fail(e, "--at %llu:%s@%s: no arm %s (arms are numbered from 0 or named "
                              "by their mode)", (unsigned long long)s->step, what, s->arm, s->arm);
    }
    return 0;
}

static void teardown(live *lv)
{
    if (lv->store_started) {
        tel_record end = {.kind = REC_END};
        to_store(lv, &end);
        pthread_join(lv->store_thread, NULL);
        lv->store_started = 0;
    }
    /* anything still queued (a failed start) owns no heap except heatmaps */
    if (lv->store_ring) {
        tel_record r;
        while (ring_pop(lv->store_ring, &r) == 0)
            if (r.kind == REC_HEATMAP)
                heatmap_snapshot_free(r.u.heatmap.snap);
    }
    for (size_t i = 0; i < lv->narms; i++)
        free_arm(lv, i);
    ring_destroy(lv->store_ring);
    store_close(lv->st);
}

int live_run(const live_config *cfg, const live_observer *obs, live_result *res,
             gl_error *err)
{
    memset(res, 0, sizeof *res);
    if (cfg->narms < 1 || cfg->narms > LIVE_MAX_ARMS)
        return gl_fail(err, "--arms: between 1 and %d arms", LIVE_MAX_ARMS);
    live *lv = xcalloc(1, sizeof *lv);
    lv->cfg = cfg;
    for (size_t i = 0; i < LIVE_MAX_ARMS; i++)
        atomic_init(&lv->run_ids[i], 0);
    atomic_init(&lv->store_failed, 0);

    /* The stop signals (SIGINT, SIGTERM, SIGHUP) are taken synchronously by
     * the main loop (sigtimedwait); every thread created from here on
     * inherits the blocked mask. */
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);

    int rc = -1;
    if (live_check_script(cfg, err) || (cfg->db_path && open_store(lv, err)))
        goto out;
    res->session = lv->session;
    /* absolute, so stored checkpoint paths work from any directory */
    char cwd[1024] = "";
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = 0;
    if (checkpoint_root(lv, cwd, err))
        goto out;
    if (make_arms(lv, err))
        goto out;
    for (size_t i = 0; i < lv->narms; i++)
        if (arm_check_dir(lv->arms[i], err))
            goto out;
    if (lv->st) {
        if (cfg->resume_run) {
            /* with a new --steps the stored config follows the resumed one,
             * so a later resume parses what this one trains to */
            if (store_run_reopen(lv->st, cfg->resume_run, lv->arms[0]->t.step, err) ||
                (cfg->resume_old_steps && cfg->resume_old_steps != cfg->tc.steps &&
                 store_run_set_config(lv->st, cfg->resume_run, lv->info[0].config_json, err)))
                goto out;
            atomic_store(&lv->run_ids[0], cfg->resume_run);
        } else {
            for (uint32_t i = 0; i < lv->narms; i++)
                if (begin_run(lv, i, err))
                    goto out;
        }
        lv->store_ring = ring_create(STORE_RING, sizeof(tel_record));
        GL_ASSERT(lv->store_ring);
        int prc = pthread_create(&lv->store_thread, NULL, store_main, lv);
        if (prc) {
            gl_fail(err, "cannot start the store thread: %s", strerror(prc));
            goto out;
        }
        lv->store_started = 1;
    }
    if (cfg->resume_run) {
        tel_record ev = {.kind = REC_EVENT, .arm = 0, .step = lv->arms[0]->t.step,
                         .wall_ms = gl_wall_ms()};
        const model_config *m = &lv->arms[0]->t.m.cfg;
        ev.u.event.kind = EV_RESUMED;
        ev.u.event.mode = m->mode;
        ev.u.event.k = (uint32_t)m->k;
        ev.u.event.frozen = (uint32_t)m->gate_frozen;
        size_t want = cfg->tc.steps, had = cfg->resume_old_steps;
        if (had && had != want)
            snprintf(ev.u.event.detail, sizeof ev.u.event.detail,
                     "--steps %zu -> %zu (%s) from %.100s", had, want,
                     want > had ? "extended" : "ends earlier", cfg->resume_ckpt);
        else
            snprintf(ev.u.event.detail, sizeof ev.u.event.detail, "from %.140s",
                     cfg->resume_ckpt);
        to_store(lv, &ev);
        if (obs->on_record)
            obs->on_record(obs->ctx, lv, &ev);
    }
    for (size_t i = 0; i < lv->narms; i++)
        if (arm_start(lv->arms[i], err)) {
            stop_all(lv, 2);
            for (size_t j = 0; j < i; j++)
                arm_join(lv->arms[j]);
            goto out;
        }

    uint8_t *flat = NULL;
    size_t flat_cap = 0;
    uint64_t heat_seen[LIVE_MAX_ARMS] = {0}, heat_thinned[LIVE_MAX_ARMS] = {0};
    int stopping = 0;
    for (;;) {
        int all_done = 1;
        for (size_t i = 0; i < lv->narms; i++) {
            arm *a = lv->arms[i];
            /* read done first: a record pushed before done is then still seen */
            int done = atomic_load(&a->done);
            tel_record r;
            while (ring_pop(a->tel, &r) == 0) {
                if (r.kind == REC_FORKED) {
                    if (stopping) {
                        trainer_free(r.u.forked.trainer);
                        free(r.u.forked.trainer);
                    } else {
                        adopt_fork(lv, &r, obs);
                    }
                    continue;
                }
                if (r.kind == REC_EVAL && cfg->telemetry)
                    forward_heatmap(lv, a, &flat, &flat_cap, heat_seen, heat_thinned, 0);
                if (r.kind == REC_STATUS && cfg->telemetry &&
                    r.u.status.status != RUN_RUNNING && r.u.status.status != RUN_PAUSED)
                    forward_heatmap(lv, a, &flat, &flat_cap, heat_seen, heat_thinned, 1);
                if (r.kind == REC_STATUS && r.u.status.status == RUN_DIVERGED)
                    res->diverged++;
                if (r.kind == REC_STATUS && r.u.status.status == RUN_FAILED)
                    res->failed++;
                if (obs->on_record)
                    obs->on_record(obs->ctx, lv, &r);
                to_store(lv, &r);
            }
            all_done &= done;
        }
        if (all_done)
            break;
        if (!stopping && atomic_load_explicit(&lv->store_failed, memory_order_acquire)) {
            stopping = 1;
            stop_all(lv, 2);
        }
        int ask = !stopping && obs->on_tick ? obs->on_tick(obs->ctx, lv) : 0;
        if (ask) {
            res->stop_asked = ask;
            stopping = 1;
            stop_all(lv, 2);
        }
        struct timespec wait = {0, 10000000};
        int sig = sigtimedwait(&sigs, NULL, &wait);
        /* every signal in the set stops every arm; a hangup stops like the
         * others for now (were it to detach one day, it would branch here) */
        if (sig > 0) {
            if (!res->signal)
                res->signal = sig;   /* the first: what stopped the session */
            if (!stopping) {
                stopping = 1;
                stop_all(lv, 2);
            }
        }
    }
    free(flat);
    for (size_t i = 0; i < lv->narms; i++) {
        arm_join(lv->arms[i]);
        res->backpressure += atomic_load(&lv->arms[i]->backpressure);
    }
    if (lv->store_started) {
        /* the store thread owns the connection until it has drained */
        tel_record end = {.kind = REC_END};
        to_store(lv, &end);
        pthread_join(lv->store_thread, NULL);   /* its last batch ended the session */
        lv->store_started = 0;
    }
    res->backpressure += lv->store_backpressure;
    rc = 0;
out:
    teardown(lv);
    if (rc == 0 && atomic_load(&lv->store_failed))
        rc = gl_fail(err, "%s", lv->store_error);   /* the store's message names the path */
    free(lv);
    /* A stop signal that came after the loop (while the arms were joined) is
     * taken here rather than left pending for the unblock, whose default
     * action would end the process before the screen gives the terminal back
     * and the summary is printed. */
    int late;
    while ((late = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0})) > 0)
        if (!res->signal)
            res->signal = late;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
