/* arm: the thread that runs one trainer. Commands take effect only between
 * steps, so a step always runs under one gate; every command becomes an
 * event record stamped with the number of steps done when it took effect. */
#include "arm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "pace.h"
#include "ring.h"
#include "safetensors.h"

typedef struct {
    int paused, stop;
    int failed;            /* a checkpoint could not be written: the run ends failed */
    double resume_at;      /* monotonic seconds; 0: paused until resumed */
    const cmd_record *stop_cmd;
    cmd_record stop_copy;
} arm_state;

struct arm {
    uint32_t index;
    char name[64];
    trainer t;                     /* owned; touched only by the arm thread once started */
    arm_config cfg;                /* cfg.ckpt_dir: an owned copy */
    ring *tel;                     /* arm -> main, tel_record as record_encode makes it */
    ring *cmd;                     /* main -> arm, cmd_record as command_encode makes it */
    latest_slot *heat;             /* arm -> main, the last evaluation's heatmap payload */
    uint8_t *heat_flat;            /* staging for heat: heatmap_encode's bytes */
    size_t heat_bytes;
    /* The heatmaps the store keeps, handed over one at a time: the screen's
     * latest slot may be overwritten before the main thread reads it (an
     * arm evaluates faster than the session loop drains), so the store's
     * copies go through this hand-over instead, and none is lost. The arm
     * thread fills heat_hand and stores heat_handed = 1 (release) before it
     * pushes the evaluation's record; the main thread's acquire load in
     * arm_heat_take makes the bytes its own, and arm_heat_taken stores 0
     * (release), partnered by the acquire load with which the arm thread
     * waits for an empty slot before it writes the next one. */
    uint8_t *heat_hand;
    atomic_int heat_handed;
    int heat_unstored;             /* arm thread: the last heatmaps were thinned */
    scripted_command *script;      /* sorted by step; owned */
    size_t nscript, next_script;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;            /* guards the pause wait only */
    pthread_cond_t cv;
    /* The trainer a fork made, on its way to the main thread. Stored
     * (release) by the arm thread in apply(CMD_FORK) before it pushes the
     * REC_FORKED record; taken by the main thread's exchange (acq_rel) in
     * arm_take_fork once it has popped that record, the acquire half making
     * the trainer's bytes ours. Before storing the next one the arm thread
     * waits, with an acquire load partnered by that exchange's release half,
     * until the slot is empty again: no fork is ever overwritten. */
    _Atomic(trainer *) fork_child;
    /* Stored (release) by the arm thread after its last push; loaded
     * (acquire) by arm_done on the main thread, which then drains the ring
     * once more and sees every record pushed before it. arm_mark_done stores
     * it on the main thread for an arm whose thread never started. */
    atomic_int done;
    /* Relaxed both sides: a count of pushes that found the telemetry ring
     * full, read for the summary after the thread is joined. */
    atomic_ullong backpressure;
    /* Relaxed both sides: the screen's step counter (stored by the arm
     * thread after each step, loaded by arm_step); nothing else is read
     * through it, so it needs no ordering. */
    atomic_ullong step;
    double tok_since, time_since;  /* throughput since the last evaluation */
    int temps_swept;               /* stale .tmp files of the checkpoint dir removed */
    /* Arm thread only: the commands row of the command being applied (0:
     * none), which push_event puts on the event it makes, and whether it has
     * been answered (an event, or a refusal: answer_command). */
    uint64_t cmd_id;
    int cmd_answered;
    /* The loop's own state, kept here (arm thread only while it runs) so a
     * thread that parked (arm_park) goes on where it left off when
     * arm_start starts the next one. */
    arm_state st;
    size_t last_saved, last_eval, saved_commands;
    int began;                     /* EV_START pushed: a later start continues */
    /* Stored (release) by arm_park on the main thread; loaded (acquire) by
     * the arm thread between steps and in its pause wait (under mu). */
    atomic_int park;
    /* Stored (release) by the arm thread when it left its loop on park;
     * loaded (acquire) by arm_parked on the main thread, which may then join
     * it; cleared by arm_start before the next thread starts. */
    atomic_int parked;
    /* --dp (dp.h), arm thread only: what the leader applied since its last
     * step boundary, sent to the followers at the boundary */
    dp_boundary dp_out;
    /* Stored (release) by the arm thread when the replicas' weights
     * differed; loaded (acquire) by arm_dp_mismatch on the main thread. */
    atomic_int dp_mismatch;
    /* A remote arm (arm_create_remote): no trainer and no thread; the main
     * thread fills its telemetry ring and heat slots from another rank's
     * messages and takes the commands sent to it (live_remote.c). */
    int remote;
};

/* --dp: replica 0 leads (commands, telemetry, checkpoints); the others
 * follow what it hands them at each step boundary and report nothing */
static int dp_follower(const arm *a)
{
    return a->t.dp && dp_replica(a->t.dp) != 0;
}

static int dp_leader(const arm *a)
{
    return a->t.dp && dp_replica(a->t.dp) == 0;
}

/* The telemetry ring is sized so this never happens in normal use; when the
 * main thread falls behind the trainer waits (counted), it never drops. */
static void push(arm *a, tel_record *r)
{
    if (dp_follower(a))
        return;   /* the leader's records speak for the arm */
    r->arm = a->index;
    r->wall_ms = gl_wall_ms();
    uint8_t slot[RECORD_WIRE_MAX];
    size_t n = record_encode(r, NULL, slot, sizeof slot);
    GL_ASSERT(n > 0);
    while (ring_push(a->tel, slot)) {
        atomic_fetch_add_explicit(&a->backpressure, 1, memory_order_relaxed);
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
}

static void push_event(arm *a, event_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void push_event(arm *a, event_kind kind, const char *fmt, ...)
{
    tel_record r = {.kind = REC_EVENT, .step = a->t.step};
    const model_config *c = &a->t.m.cfg;
    r.u.event.kind = kind;
    r.u.event.mode = c->mode;
    r.u.event.k = (uint32_t)c->k;
    r.u.event.frozen = (uint32_t)c->gate_frozen;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.u.event.detail, sizeof r.u.event.detail, fmt, ap);
    va_end(ap);
    /* an error is a refusal, not the command taking effect: its row is
     * rejected with the error's text, and the event stays as it always was */
    if (a->cmd_id && !a->cmd_answered) {
        if (kind == EV_ERROR) {
            tel_record c = {.kind = REC_COMMAND, .step = a->t.step};
            c.u.command.id = a->cmd_id;
            snprintf(c.u.command.reason, sizeof c.u.command.reason, "%s", r.u.event.detail);
            push(a, &r);
            push(a, &c);
            a->cmd_answered = 1;
            return;
        }
        r.u.event.command = a->cmd_id;
        a->cmd_answered = 1;
    }
    push(a, &r);
}

static void push_status(arm *a, run_status s)
{
    tel_record r = {.kind = REC_STATUS, .step = a->t.step};
    r.u.status.status = s;
    push(a, &r);
}

static const char *source_name(const cmd_record *c)
{
    return c->scripted == 1                 ? "scripted"
           : c->scripted == 2               ? "shutdown"
           : c->scripted == CMD_SOURCE_SENT ? "sent"
                                            : "key";
}

int arm_check_dir(const arm *a, gl_error *err)
{
    const char *dir = a->cfg.ckpt_dir;
    if (!dir)
        return 0;
    if (gl_mkdir_p(dir, NULL))
        return gl_fail(err, "checkpoint directory %s: %s", dir, strerror(errno));
    /* a probe file: root passes access(2) checks that a read-only mount fails */
    char probe[2100];
    snprintf(probe, sizeof probe, "%s/.probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return gl_fail(err, "checkpoint directory %s: cannot write: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

typedef struct {
    size_t step;
    char name[64];
} ckpt_file;

static int by_step_desc(const void *x, const void *y)
{
    size_t a = ((const ckpt_file *)x)->step, b = ((const ckpt_file *)y)->step;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* --keep-checkpoints N, after a save: the newest N resumable files of the
 * arm's directory (stepNNNNNN.safetensors, the names save_checkpoint
 * writes) stay, older ones are deleted and reported as dropped records so
 * the store deletes their rows. The directory is the arm's alone, so files
 * left by this run's earlier process (before a resume) count too. A file
 * past the current step is left by a resume from an earlier checkpoint; the
 * save at that step will replace it, so it is neither counted nor touched
 * (counting it could delete the file just written). */
static void drop_old_checkpoints(arm *a)
{
    size_t keep = a->cfg.keep_checkpoints;
    DIR *d = keep ? opendir(a->cfg.ckpt_dir) : NULL;
    if (!d)
        return;
    ckpt_file *files = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        const char *nm = de->d_name;
        char *end;
        if (strncmp(nm, "step", 4) != 0 || nm[4] < '0' || nm[4] > '9' ||
            strlen(nm) >= sizeof files[0].name)
            continue;
        unsigned long long step = strtoull(nm + 4, &end, 10);
        if (strcmp(end, ".safetensors") != 0 || step > a->t.step)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            files = gl_grow(files, n, cap, sizeof *files);
        }
        files[n].step = (size_t)step;
        memcpy(files[n].name, nm, strlen(nm) + 1);   /* fits: checked above */
        n++;
    }
    closedir(d);
    if (n > keep)
        qsort(files, n, sizeof *files, by_step_desc);
    for (size_t i = keep; i < n; i++) {
        tel_record r = {.kind = REC_CHECKPOINT, .step = files[i].step};
        r.u.checkpoint.resumable = 1;
        r.u.checkpoint.dropped = 1;
        if (snprintf(r.u.checkpoint.path, sizeof r.u.checkpoint.path, "%s/%s", a->cfg.ckpt_dir,
                     files[i].name) >= (int)sizeof r.u.checkpoint.path)
            continue;
        if (unlink(r.u.checkpoint.path) != 0) {
            /* a file we cannot delete costs disk, not correctness: say so */
            push_event(a, EV_ERROR, "--keep-checkpoints: cannot delete %.100s: %s",
                       r.u.checkpoint.path, strerror(errno));
            continue;
        }
        push(a, &r);
    }
    free(files);
}

/* Returns 0 when saved (and reported), -1 after reporting an error event. */
static int save_checkpoint(arm *a, const char *why)
{
    if (dp_follower(a))
        return 0;   /* the leader writes the arm's checkpoints */
    if (!a->cfg.ckpt_dir) {
        push_event(a, EV_ERROR, "checkpoint (%s): no checkpoint directory", why);
        return -1;
    }
    tel_record r = {.kind = REC_CHECKPOINT, .step = a->t.step};
    gl_error e;
    int n = snprintf(r.u.checkpoint.path, sizeof r.u.checkpoint.path, "%s/step%06zu.safetensors",
                     a->cfg.ckpt_dir, a->t.step);
    if (n >= (int)sizeof r.u.checkpoint.path) {
        push_event(a, EV_ERROR, "checkpoint: path under %.60s is too long", a->cfg.ckpt_dir);
        return -1;
    }
    if (gl_mkdir_p(a->cfg.ckpt_dir, NULL)) {
        push_event(a, EV_ERROR, "checkpoint: cannot create %.100s: %s", a->cfg.ckpt_dir,
                   strerror(errno));
        return -1;
    }
    if (!a->temps_swept) {
        /* what a killed process left half-written here (its pid is gone) */
        st_remove_stale_temps(a->cfg.ckpt_dir);
        a->temps_swept = 1;
    }
    /* the store numbers a forked arm's run on its own thread: take the id
     * as it is now (0 until then; the session and arm still name the run) */
    a->t.owner.run =
        a->cfg.run_id ? atomic_load_explicit(a->cfg.run_id, memory_order_acquire) : 0;
    if (trainer_save(&a->t, r.u.checkpoint.path, &e)) {
        push_event(a, EV_ERROR, "checkpoint: %.150s", e.msg);
        return -1;
    }
    r.u.checkpoint.resumable = 1;
    push(a, &r);
    push_event(a, EV_CHECKPOINT, "%s %.120s", why, r.u.checkpoint.path);
    drop_old_checkpoints(a);
    return 0;
}

/* Whether the heatmaps of the evaluation at `step` are stored: every one
 * with heatmap_every <= 1; else the scheduled evaluations at multiples of
 * heatmap_every * eval_every, and every off-schedule one (the last step, a
 * stop between evaluations). Depends on the step alone, so a resumed run
 * thins exactly as it would have; hand_heat_at_end also stores the last
 * heatmaps of an arm that ends on a thinned step. */
static int heat_stored(const arm *a, uint64_t step)
{
    size_t every = a->cfg.heatmap_every, eval = a->cfg.eval_every;
    if (every <= 1 || !eval || step % eval != 0 || step >= a->cfg.steps)
        return 1;
    return (step / eval) % every == 0;
}

/* heat_flat's bytes to the store, once the main thread took the last ones */
static void hand_heat(arm *a)
{
    while (atomic_load_explicit(&a->heat_handed, memory_order_acquire)) {
        atomic_fetch_add_explicit(&a->backpressure, 1, memory_order_relaxed);
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    memcpy(a->heat_hand, a->heat_flat, a->heat_bytes);
    atomic_store_explicit(&a->heat_handed, 1, memory_order_release);
    a->heat_unstored = 0;
}

/* A run always ends with its heatmaps stored, even when it stops at a
 * thinned step. */
static void hand_heat_at_end(arm *a)
{
    if (a->heat_unstored)
        hand_heat(a);
}

static void publish_heat(arm *a)
{
    size_t n = heatmap_encode(a->t.heat, a->heat_flat, a->heat_bytes);
    GL_ASSERT(n == a->heat_bytes);
    latest_write(a->heat, a->heat_flat);
    if (heat_stored(a, a->t.step))
        hand_heat(a);
    else
        a->heat_unstored = 1;   /* --heatmap-every: the screen draws it, the store skips it */
}

static void evaluate(arm *a)
{
    trainer *t = &a->t;
    gl_error e;
    if (trainer_dp_check(t, &e)) {
        /* every replica learns it from the same gather and ends here */
        push_event(a, EV_ERROR, "%.150s", e.msg);
        atomic_store_explicit(&a->dp_mismatch, 1, memory_order_release);
        a->st.failed = 1;
        return;
    }
    eval_result ev;
    trainer_eval(t, &ev);
    const size_t L = t->m.cfg.layers, H = t->m.cfg.heads;
    /* the gate's gradient exists only where the mode in force during the
     * last step had a gate (not dense, stochastic, oracle): elsewhere it is
     * absent (NaN), not 0, so "exactly 0" singles out topk; where it exists
     * a non-finite norm is flagged as diverged (record.h) */
    const int has_gate = gate_mode_uses_gate(t->m.cfg.mode) && t->step > 0;
    if (a->cfg.telemetry) {
        for (size_t l = 0; l < L; l++)
            for (size_t h = 0; h < H; h++) {
                tel_record r = {.kind = REC_LAYER, .step = t->step};
                r.u.layer.layer = (uint32_t)l;
                r.u.layer.head = (uint32_t)h;
                for (int k = 0; k < METRIC_COUNT; k++) {
                    double v = metrics_value(&t->metrics, l, h, (metric_key)k);
                    int exists = k == METRIC_GATE_GRAD_NORM
                                     ? has_gate
                                     : metrics_exists(&t->metrics, l, h, (metric_key)k);
                    r.u.layer.value[k] = exists ? v : NAN;
                    if (exists && !isfinite(v))   /* a blow-up: stored as an event */
                        r.u.layer.diverged |= 1u << k;
                }
                push(a, &r);
            }
        if (t->heat && !dp_follower(a))
            publish_heat(a);
    }
    tel_record r = {.kind = REC_EVAL, .step = t->step};
    double dt = t->train_seconds - a->time_since;
    r.u.eval.val_loss = ev.loss;
    r.u.eval.val_ppl = ev.ppl;
    r.u.eval.bits_per_byte = ev.bits_per_byte;
    r.u.eval.f1 = metrics_model_value(&t->metrics, L, METRIC_F1);
    r.u.eval.mass_kept = metrics_model_value(&t->metrics, L, METRIC_MASS_KEPT);
    r.u.eval.oracle_mass = metrics_model_value(&t->metrics, L, METRIC_ORACLE_MASS);
    r.u.eval.gate_grad_norm = has_gate ? t->gate_grad_norm : NAN;
    r.u.eval.tokens_per_s = dt > 0.0 ? ((double)t->tokens_trained - a->tok_since) / dt : 0.0;
    r.u.eval.train_loss = t->step > 0 ? t->last_loss : NAN;   /* none before the first step */
    r.u.eval.expert_balance = ev.expert_balance;
    /* which of these exist for this arm now: a NaN there is a blow-up the
     * store records as a `diverged` event, elsewhere it means "absent" */
    const struct {
        double v;
        int exists;
        uint32_t bit;
    } present[] = {
        {r.u.eval.bits_per_byte, data_kind_of(t->data) != DATA_BIN, REC_EVAL_BPB},
        {r.u.eval.f1, metrics_model_exists(&t->metrics, L, METRIC_F1), REC_EVAL_F1},
        {r.u.eval.mass_kept, metrics_model_exists(&t->metrics, L, METRIC_MASS_KEPT),
         REC_EVAL_MASS_KEPT},
        {r.u.eval.oracle_mass, metrics_model_exists(&t->metrics, L, METRIC_ORACLE_MASS),
         REC_EVAL_ORACLE_MASS},
        {r.u.eval.gate_grad_norm, has_gate, REC_EVAL_GATE_GRAD_NORM},
        {r.u.eval.tokens_per_s, 1, REC_EVAL_TOKENS_PER_S},
        {r.u.eval.expert_balance, t->m.cfg.experts > 0, REC_EVAL_EXPERT_BALANCE},
    };
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++)
        if (present[i].exists && !isfinite(present[i].v))
            r.u.eval.diverged |= present[i].bit;
    a->tok_since = (double)t->tokens_trained;
    a->time_since = t->train_seconds;
    push(a, &r);
}

static void dp_lead(arm *a, const arm_state *st, uint32_t more);

/* The leader notes what its followers must apply too: what changes the
 * step's computation or ends the arm. Pauses hold the followers anyway (they
 * wait at the boundary), checkpoints are the leader's, forks are refused. */
static void dp_note(arm *a, const cmd_record *c, const arm_state *st)
{
    switch ((cmd_kind)c->kind) {
    case CMD_SWAP: case CMD_FREEZE: case CMD_UNFREEZE: case CMD_SET_K: case CMD_STOP: break;
    default: return;
    }
    if (a->dp_out.count == DP_BOUNDARY_CMDS)
        dp_lead(a, st, DP_BOUNDARY_MORE);
    a->dp_out.cmd[a->dp_out.count++] = *c;
}

static void apply(arm *a, const cmd_record *c, arm_state *st)
{
    trainer *t = &a->t;
    model_config *mc = &t->m.cfg;
    const char *src = source_name(c);
    if (dp_leader(a))
        dp_note(a, c, st);
    switch ((cmd_kind)c->kind) {
    case CMD_PAUSE:
        if (st->paused)
            return;
        st->paused = 1;
        st->resume_at = c->seconds > 0.0 ? gl_now() + c->seconds : 0.0;
        if (c->seconds > 0.0)
            push_event(a, EV_PAUSE, "%s, for %gs", src, c->seconds);
        else
            push_event(a, EV_PAUSE, "%s", src);
        push_status(a, RUN_PAUSED);
        return;
    case CMD_RESUME:
        if (!st->paused)
            return;
        st->paused = 0;
        push_event(a, EV_RESUME, "%s", src);
        push_status(a, RUN_RUNNING);
        return;
    case CMD_SWAP: {
        gate_mode from = mc->mode, to = (gate_mode)c->arg;
        if (to >= GATE_MODE_COUNT || to == from)
            return;
        model_swap_mode(&t->m, to);
        push_event(a, EV_SWAP, "%s -> %s (%s)", gate_mode_name(from), gate_mode_name(to), src);
        return;
    }
    case CMD_FREEZE:
    case CMD_UNFREEZE: {
        int frozen = c->kind == CMD_FREEZE;
        if (mc->gate_frozen == frozen)
            return;
        mc->gate_frozen = frozen;
        push_event(a, frozen ? EV_FREEZE : EV_UNFREEZE, "%s", src);
        return;
    }
    case CMD_SET_K:
        if (c->arg < 1 || c->arg > mc->T) {
            push_event(a, EV_ERROR, "k %u refused: must be 1..T=%zu (%s)", c->arg, mc->T, src);
            return;
        }
        if (c->arg == mc->k)
            return;
    {
        /* the event carries the state in force after it */
        size_t from = mc->k;
        mc->k = c->arg;
        push_event(a, EV_SET_K, "k %zu -> %u (%s)", from, c->arg, src);
        return;
    }
    case CMD_CHECKPOINT:
        if (save_checkpoint(a, src))
            st->failed = 1;
        return;
    case CMD_FORK: {
        if (t->dp) {
            push_event(a, EV_ERROR, "fork refused: arm %s is trained by %d --dp replicas, and "
                       "a fork would need ranks of its own", a->name, dp_size(t->dp));
            return;
        }
        trainer *child = xmalloc(sizeof *child);
        gl_error e;
        if (trainer_fork(child, t, (gate_mode)c->arg, &e)) {
            free(child);
            push_event(a, EV_ERROR, "fork: %.150s", e.msg);
            return;
        }
        push_event(a, EV_FORK, "as %s (%s)", gate_mode_name((gate_mode)c->arg), src);
        /* the main thread takes the previous fork on its REC_FORKED, which
         * it pops in order, so this wait ends (see fork_child) */
        while (atomic_load_explicit(&a->fork_child, memory_order_acquire))
            nanosleep(&(struct timespec){0, 200000}, NULL);
        atomic_store_explicit(&a->fork_child, child, memory_order_release);
        tel_record r = {.kind = REC_FORKED, .step = t->step};
        r.u.forked.mode = c->arg;
        push(a, &r);
        return;
    }
    case CMD_STOP:
        if (!st->stop) {
            st->stop = 1;
            st->stop_copy = *c;
            st->stop_cmd = &st->stop_copy;
        }
        return;
    case CMD_KIND_COUNT:
        break;
    }
}

/* Why a command of the commands table made no event: it would change
 * nothing. Its row is rejected with this, so nothing stays pending. */
static void refuse_noop(arm *a, const cmd_record *c)
{
    const model_config *mc = &a->t.m.cfg;
    tel_record r = {.kind = REC_COMMAND, .step = a->t.step};
    r.u.command.id = c->id;
    char *why = r.u.command.reason;
    size_t n = sizeof r.u.command.reason;
    switch ((cmd_kind)c->kind) {
    case CMD_PAUSE: snprintf(why, n, "arm %s is already paused", a->name); break;
    case CMD_RESUME: snprintf(why, n, "arm %s is not paused", a->name); break;
    case CMD_SWAP:
        snprintf(why, n, "arm %s already runs the %s gate", a->name, gate_mode_name(mc->mode));
        break;
    case CMD_FREEZE: snprintf(why, n, "arm %s: the gate is already frozen", a->name); break;
    case CMD_UNFREEZE: snprintf(why, n, "arm %s: the gate is not frozen", a->name); break;
    case CMD_SET_K: snprintf(why, n, "arm %s: k is already %zu", a->name, mc->k); break;
    case CMD_STOP: snprintf(why, n, "arm %s is already stopping", a->name); break;
    default: snprintf(why, n, "arm %s: %s changed nothing", a->name,
                      cmd_kind_name((cmd_kind)c->kind));
    }
    push(a, &r);
}

/* One command: a command of the commands table (c->id) is answered exactly
 * once — its event carries the id, an error rejects it, a stop is answered
 * by the stop event at the end of the run, one that comes after a stop is
 * refused, and anything else changed nothing and is refused. */
static void apply_one(arm *a, const cmd_record *c, arm_state *st)
{
    int stopping = st->stop;
    if (c->id && stopping) {
        /* queued behind a stop: the arm ends at this boundary; what would
         * change it now would only reach its last checkpoint */
        tel_record r = {.kind = REC_COMMAND, .step = a->t.step};
        r.u.command.id = c->id;
        snprintf(r.u.command.reason, sizeof r.u.command.reason,
                 "arm %s is stopping at step %zu", a->name, a->t.step);
        push(a, &r);
        return;
    }
    a->cmd_id = c->id;
    a->cmd_answered = 0;
    apply(a, c, st);
    int deferred = c->kind == CMD_STOP && !stopping;   /* EV_STOP at the end carries it */
    if (c->id && !a->cmd_answered && !deferred)
        refuse_noop(a, c);
    a->cmd_id = 0;
}

static void apply_ring(arm *a, arm_state *st)
{
    uint8_t slot[COMMAND_WIRE_SIZE];
    cmd_record c;
    while (ring_pop(a->cmd, slot) == 0)
        if (command_decode(slot, sizeof slot, &c) > 0)   /* arm_send encoded it */
            apply_one(a, &c, st);
}

/* Blocks (no spinning) until resumed, stopped, or a timed pause runs out.
 * Paused, the arm neither holds the others back nor takes cores (pace.h);
 * resumed, the others wait while it catches up. Still paused after a park,
 * it stays so for pace too. */
static void wait_while_paused(arm *a, arm_state *st)
{
    if (a->cfg.pace)
        pace_idle(a->cfg.pace, a->index, 1, a->t.step);
    pthread_mutex_lock(&a->mu);
    while (st->paused && !st->stop && !st->failed &&
           !atomic_load_explicit(&a->park, memory_order_acquire)) {
        if (ring_count(a->cmd) > 0) {
            pthread_mutex_unlock(&a->mu);
            apply_ring(a, st);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (st->resume_at > 0.0) {
            double now = gl_now();
            if (now >= st->resume_at) {
                pthread_mutex_unlock(&a->mu);
                st->paused = 0;
                push_event(a, EV_RESUME, "pause ran out");
                push_status(a, RUN_RUNNING);
                pthread_mutex_lock(&a->mu);
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double left = st->resume_at - now;
            ts.tv_sec += (time_t)left;
            ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        } else {
            pthread_cond_wait(&a->cv, &a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (a->cfg.pace && !st->paused)
        pace_idle(a->cfg.pace, a->index, 0, a->t.step);
}

/* The leader's boundary block: what it applied since the last one. */
static void dp_lead(arm *a, const arm_state *st, uint32_t more)
{
    a->dp_out.flags = more | (st->failed ? DP_BOUNDARY_FAILED : 0);
    dp_boundary_sync(a->t.dp, &a->dp_out);
    a->dp_out.count = 0;
}

/* A follower's step boundary: exactly what the leader applied at its own,
 * in its order (the followers' scripts and command rings are not read). */
static void dp_follow(arm *a, arm_state *st)
{
    dp_boundary b;
    do {
        /* the leader's dp_lead encoded it: a block that does not decode is
         * a broken invariant, and going on would hang both at the next sum */
        GL_ASSERT(dp_boundary_sync(a->t.dp, &b) == 0);
        for (uint32_t i = 0; i < b.count; i++)
            apply(a, &b.cmd[i], st);
        if (b.flags & DP_BOUNDARY_FAILED)
            st->failed = 1;
    } while (b.flags & DP_BOUNDARY_MORE);
}

static void apply_commands(arm *a, arm_state *st)
{
    if (dp_follower(a)) {
        dp_follow(a, st);
        return;
    }
    while (a->next_script < a->nscript && a->script[a->next_script].step <= a->t.step) {
        apply(a, &a->script[a->next_script++].cmd, st);
        a->t.commands_done = a->next_script;
    }
    apply_ring(a, st);
    if (st->paused)
        wait_while_paused(a, st);
    if (dp_leader(a))
        dp_lead(a, st, 0);
}

static int due(size_t step, size_t every, size_t last)
{
    return (every && step % every == 0) || step == last;
}

/* The first minute (issue 11): a session's first evaluations come at these
 * steps, each only when it is below --eval-every and --steps, so the curves,
 * heatmaps and agreement bars fill within seconds instead of after
 * --eval-every steps. A fixed table, not a clock: every run of the same
 * configuration (a resumed one included) evaluates at the same steps, and an
 * evaluation reads only the fixed val windows (no training RNG, no data
 * cursor), so the losses it trains are the same with or without these.
 * Experiments keep this one schedule too: their tables read final
 * checkpoints, not intermediate evaluations, their --eval-every defaults to
 * steps/10 (so only runs of 110 steps or more get early points), and one
 * schedule means `gatelab resume` of any run rebuilds it from the stored
 * arguments alone. */
static const size_t early_evals[] = {10, 25, 50};

int arm_eval_due(size_t step, size_t eval_every, size_t steps)
{
    if (due(step, eval_every, steps))
        return 1;
    for (size_t i = 0; i < sizeof early_evals / sizeof early_evals[0]; i++)
        if (step == early_evals[i] && step < eval_every && step < steps)
            return 1;
    return 0;
}

size_t arm_eval_count(size_t eval_every, size_t steps)
{
    /* the one before the first step (issue 16) comes with --eval-every */
    size_t n = eval_every ? steps / eval_every + 1 : 0;
    if (!eval_every || steps % eval_every)
        n++;   /* the last step is always evaluated */
    for (size_t i = 0; i < sizeof early_evals / sizeof early_evals[0]; i++)
        n += early_evals[i] < eval_every && early_evals[i] < steps;
    return n;
}

/* pace_hold's interrupt: a command or a park ends a wait for the others,
 * so they take effect as promptly as between any two steps. arm_send and
 * arm_park call pace_wake after making this true. */
static int pace_interrupt(void *ctx)
{
    arm *a = ctx;
    return ring_count(a->cmd) > 0 || atomic_load_explicit(&a->park, memory_order_acquire);
}

/* The thread's last word: its peers no longer wait for it. */
static void end_thread(arm *a)
{
    if (a->cfg.pace)
        pace_leave(a->cfg.pace, a->index);
    atomic_store_explicit(&a->done, 1, memory_order_release);
}

static void *arm_main(void *arg)
{
    arm *a = arg;
    trainer *t = &a->t;
    arm_state *st = &a->st;
    const model_config *mc = &t->m.cfg;
    if (!a->began) {
        a->began = 1;
        a->time_since = t->train_seconds;
        a->tok_since = (double)t->tokens_trained;
        /* a resumed run has applied these already (its checkpoint says how many) */
        a->next_script = t->commands_done < a->nscript ? t->commands_done : a->nscript;
        push_event(a, EV_START, "%s k %zu at step %zu of %zu", gate_mode_name(mc->mode), mc->k,
                   t->step, a->cfg.steps);
        a->last_saved = a->last_eval = a->saved_commands = SIZE_MAX;
        /* issue 16: a fresh run is evaluated before its first step, so the
         * untrained level (F1 of the mask against the oracle, the oracle's
         * own top-k) is measured, not assumed. It reads the val windows
         * only (no training RNG), so the steps after it are unchanged. */
        if (t->step == 0 && a->cfg.eval_every) {
            evaluate(a);
            a->last_eval = 0;
        }
    }
    for (;;) {
        apply_commands(a, st);
        if (st->stop || st->failed || t->step >= a->cfg.steps)
            break;
        if (atomic_load_explicit(&a->park, memory_order_acquire)) {
            /* at a step boundary, everything in memory: the next thread
             * (arm_start) goes on from here as if nothing happened */
            pool_park(t->m.pool);
            atomic_store_explicit(&a->parked, 1, memory_order_release);
            return NULL;
        }
        /* ahead of the slowest arm: wait for it (its cores lent to it) */
        if (a->cfg.pace && pace_hold(a->cfg.pace, a->index, pace_interrupt, a))
            continue;
        if (trainer_step(t)) {
            push_event(a, EV_DIVERGED, "loss %g, grad norm %g at step %zu", t->last_loss,
                       t->last_grad_norm, t->step + 1);
            hand_heat_at_end(a);
            push_status(a, RUN_DIVERGED);
            end_thread(a);
            return NULL;
        }
        atomic_store_explicit(&a->step, t->step, memory_order_relaxed);
        if (a->cfg.telemetry) {
            tel_record r = {.kind = REC_STEP, .step = t->step};
            r.u.step.loss = t->last_loss;
            r.u.step.grad_norm = t->last_grad_norm;
            r.u.step.lr = t->o.cfg.lr * optim_schedule(&t->o.cfg, t->step - 1);
            push(a, &r);
        }
        /* after the step's record: a peer that pace lets start a step has
         * every record (and its wall_ms) of the steps it waited for behind
         * it, which is what test_pace.sh reads the guarantee from */
        if (a->cfg.pace)
            pace_step(a->cfg.pace, a->index, t->step);
        if (arm_eval_due(t->step, a->cfg.eval_every, a->cfg.steps)) {
            evaluate(a);
            a->last_eval = t->step;
            if (st->failed)
                break;   /* --dp: the replicas' weights differ */
        }
        if (a->cfg.ckpt_dir && due(t->step, a->cfg.save_every, a->cfg.steps)) {
            if (save_checkpoint(a, "periodic")) {
                st->failed = 1;
                if (dp_leader(a))
                    dp_lead(a, st, 0);   /* the followers wait at the next boundary */
                break;
            }
            a->last_saved = t->step;
            a->saved_commands = t->commands_done;
        }
    }
    if (!st->failed && st->stop) {
        /* a stopped run stays resumable from exactly where it stopped */
        if (t->step > 0 && a->last_eval != t->step)
            evaluate(a);
        /* again when a scripted stop came after this step's periodic save:
         * the file must count it as done, or every resume would stop here.
         * At step 0 too: a run stopped before its first step (a session
         * stopped at once) is resumable like any other */
        if (!st->failed && a->cfg.ckpt_dir &&
            (a->last_saved != t->step || a->saved_commands != t->commands_done) &&
            save_checkpoint(a, "on stop"))
            st->failed = 1;
    }
    hand_heat_at_end(a);
    if (st->failed) {
        /* the error event said which write failed; training past a lost
         * checkpoint would only make results nobody can resume or trust */
        push_status(a, RUN_FAILED);
    } else if (st->stop) {
        a->cmd_id = st->stop_cmd->id;   /* a stop sent through the commands table */
        a->cmd_answered = 0;
        push_event(a, EV_STOP, "%s", source_name(st->stop_cmd));
        a->cmd_id = 0;
        push_status(a, RUN_STOPPED);
    } else {
        push_event(a, EV_FINISH, "%zu steps", t->step);
        push_status(a, RUN_FINISHED);
    }
    end_thread(a);
    return NULL;
}

arm *arm_create(uint32_t index, const char *name, trainer *t, const arm_config *cfg,
                const scripted_command *script, size_t nscript)
{
    arm *a = xcalloc(1, sizeof *a);
    a->index = index;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->t = *t;
    memset(t, 0, sizeof *t);
    a->cfg = *cfg;
    a->cfg.ckpt_dir = cfg->ckpt_dir ? xstrdup(cfg->ckpt_dir) : NULL;
    a->tel = ring_create(16384, RECORD_WIRE_MAX);
    a->cmd = ring_create(256, COMMAND_WIRE_SIZE);
    GL_ASSERT(a->tel && a->cmd);
    if (a->t.heat) {
        const heatmap_snapshot *h = a->t.heat;
        a->heat_bytes = heatmap_payload_size(h->layers, h->heads, h->T);
        GL_ASSERT(a->heat_bytes);
        a->heat = latest_create(a->heat_bytes);
        a->heat_flat = xmalloc(a->heat_bytes);
        a->heat_hand = xmalloc(a->heat_bytes);
    }
    if (nscript) {
        a->script = xmalloc(nscript * sizeof *script);
        memcpy(a->script, script, nscript * sizeof *script);
        a->nscript = nscript;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    atomic_init(&a->fork_child, NULL);
    atomic_init(&a->done, 0);
    atomic_init(&a->backpressure, 0);
    atomic_init(&a->step, a->t.step);
    atomic_init(&a->park, 0);
    atomic_init(&a->parked, 0);
    atomic_init(&a->heat_handed, 0);
    atomic_init(&a->dp_mismatch, 0);
    return a;
}

void arm_destroy(arm *a)
{
    if (!a)
        return;
    if (!a->remote)
        trainer_free(&a->t);
    /* a fork the main thread never took (the session ended first) */
    trainer *child = atomic_exchange_explicit(&a->fork_child, NULL, memory_order_acquire);
    if (child) {
        trainer_free(child);
        free(child);
    }
    free((char *)a->cfg.ckpt_dir);
    ring_destroy(a->tel);
    ring_destroy(a->cmd);
    latest_destroy(a->heat);
    free(a->heat_flat);
    free(a->heat_hand);
    free(a->script);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int arm_start(arm *a, gl_error *err)
{
    if (a->remote)
        return 0;   /* its thread runs on another rank */
    if (atomic_load_explicit(&a->parked, memory_order_acquire)) {
        /* after a park: its pool's workers first (the thread is joined) */
        if (pool_unpark(a->t.m.pool))
            return gl_fail(err, "arm %s: cannot start its pool's threads again", a->name);
        atomic_store_explicit(&a->park, 0, memory_order_relaxed);
        atomic_store_explicit(&a->parked, 0, memory_order_relaxed);
    }
    int rc = pthread_create(&a->thread, NULL, arm_main, a);
    if (rc)
        return gl_fail(err, "arm %s: cannot start its thread: %s", a->name, strerror(rc));
    a->started = 1;
    return 0;
}

void arm_join(arm *a)
{
    if (a->started) {
        pthread_join(a->thread, NULL);
        a->started = 0;
    }
}

void arm_park(arm *a)
{
    atomic_store_explicit(&a->park, 1, memory_order_release);
    /* under the mutex, like arm_send: a paused arm sees it before it waits */
    pthread_mutex_lock(&a->mu);
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->cfg.pace)
        pace_wake(a->cfg.pace);   /* an arm waiting for the others parks too */
}

void arm_park_ended(arm *a)
{
    GL_ASSERT(arm_done(a) && !a->started);
    pool_park(a->t.m.pool);
}

int arm_parked(const arm *a)
{
    return atomic_load_explicit(&a->parked, memory_order_acquire);   /* see arm.parked */
}

int arm_send(arm *a, const cmd_record *c)
{
    uint8_t slot[COMMAND_WIRE_SIZE];
    if (command_encode(c, slot, sizeof slot) != sizeof slot || ring_push(a->cmd, slot))
        return -1;
    /* under the mutex, so a paused arm cannot miss the wake-up between its
     * emptiness check and its wait */
    pthread_mutex_lock(&a->mu);
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->cfg.pace)
        pace_wake(a->cfg.pace);   /* nor one waiting for the others */
    return 0;
}

int arm_poll(arm *a, tel_record *r)
{
    uint8_t slot[RECORD_WIRE_MAX];
    if (ring_pop(a->tel, slot))
        return -1;
    /* push encoded it: a record that does not decode is a broken invariant */
    long n = record_decode(slot, sizeof slot, r, NULL);
    GL_ASSERT(n > 0);
    return 0;
}

trainer *arm_take_fork(arm *a)
{
    /* partner: the release store in apply(CMD_FORK); our release half lets
     * the arm thread store the next fork (see fork_child) */
    return atomic_exchange_explicit(&a->fork_child, NULL, memory_order_acq_rel);
}

uint32_t arm_index(const arm *a) { return a->index; }
const char *arm_name(const arm *a) { return a->name; }
const arm_config *arm_cfg(const arm *a) { return &a->cfg; }

uint64_t arm_step(const arm *a)
{
    return atomic_load_explicit(&a->step, memory_order_relaxed);   /* see arm.step */
}

int arm_done(const arm *a)
{
    return atomic_load_explicit(&a->done, memory_order_acquire);   /* see arm.done */
}

void arm_mark_done(arm *a)
{
    end_thread(a);   /* no thread: nobody waits for it */
}

int arm_dp_mismatch(const arm *a)
{
    return atomic_load_explicit(&a->dp_mismatch, memory_order_acquire);   /* see arm.dp_mismatch */
}

uint64_t arm_backpressure(const arm *a)
{
    return atomic_load_explicit(&a->backpressure, memory_order_relaxed);
}

size_t arm_heat_bytes(const arm *a)
{
    return a->heat ? a->heat_bytes : 0;
}

uint64_t arm_heat_read(arm *a, uint8_t *out)
{
    return a->heat ? latest_read(a->heat, out) : 0;
}

uint64_t arm_heat_version(const arm *a)
{
    return a->heat ? latest_version(a->heat) : 0;
}

const uint8_t *arm_heat_take(arm *a)
{
    if (!a->heat || !atomic_load_explicit(&a->heat_handed, memory_order_acquire))
        return NULL;
    return a->heat_hand;
}

void arm_heat_taken(arm *a)
{
    atomic_store_explicit(&a->heat_handed, 0, memory_order_release);
}

/* ---- remote arms: the other rank's thread, seen from rank 0's main thread ---- */

arm *arm_create_remote(uint32_t index, const char *name, const arm_config *cfg,
                       size_t heat_bytes)
{
    trainer none;
    memset(&none, 0, sizeof none);
    none.step = 0;
    arm *a = arm_create(index, name, &none, cfg, NULL, 0);
    a->remote = 1;
    if (heat_bytes) {
        a->heat_bytes = heat_bytes;
        a->heat = latest_create(heat_bytes);
        a->heat_flat = xmalloc(heat_bytes);
        a->heat_hand = xmalloc(heat_bytes);
    }
    return a;
}

int arm_is_remote(const arm *a) { return a->remote; }

int arm_remote_push(arm *a, const uint8_t *rec, size_t n)
{
    GL_ASSERT(a->remote && n <= RECORD_WIRE_MAX);
    uint8_t slot[RECORD_WIRE_MAX] = {0};
    memcpy(slot, rec, n);
    return ring_push(a->tel, slot) ? -1 : 0;
}

int arm_remote_heat(arm *a, const uint8_t *payload, size_t n, int store)
{
    GL_ASSERT(a->remote);
    if (!a->heat || n != a->heat_bytes)
        return -2;
    if (!store) {
        latest_write(a->heat, payload);
        return 0;
    }
    /* the main thread fills and takes this slot itself: no ordering needed
     * beyond program order, the atomics only keep arm_heat_take's contract */
    if (atomic_load_explicit(&a->heat_handed, memory_order_acquire))
        return -1;   /* the last one is not taken yet */
    memcpy(a->heat_hand, payload, n);
    atomic_store_explicit(&a->heat_handed, 1, memory_order_release);
    return 0;
}

void arm_remote_step(arm *a, uint64_t step)
{
    atomic_store_explicit(&a->step, step, memory_order_relaxed);
}

int arm_remote_command(arm *a, cmd_record *c)
{
    GL_ASSERT(a->remote);
    uint8_t slot[COMMAND_WIRE_SIZE];
    if (ring_pop(a->cmd, slot))
        return -1;
    long n = command_decode(slot, sizeof slot, c);
    GL_ASSERT(n > 0);   /* arm_send encoded it */
    return 0;
}
