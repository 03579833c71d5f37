/* live: the session loop of DESIGN §5 and what observers read of it. The
 * main thread starts the arms and the store thread, then drains every arm's
 * telemetry ring, hands each record to the observer and forwards it to the
 * store, adopts forks, and stops every arm on a signal, a failed store or
 * the observer's word. Only the main thread creates arms (forks included),
 * so arm indices and rings have a single producer and consumer each. The
 * store thread is live_store.c, the arm registry live_arms.c. */
#include "live_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"

/* ---- what observers read ---- */

size_t live_arm_count(const live *lv) { return lv->narms; }

const char *live_arm_label(const live *lv, size_t i)
{
    return i < lv->narms ? arm_name(lv->arms[i]) : NULL;
}

size_t live_arm_target(const live *lv, size_t i)
{
    return i < lv->narms ? arm_cfg(lv->arms[i])->steps : 0;
}

uint64_t live_arm_step(const live *lv, size_t i)
{
    return i < lv->narms ? arm_step(lv->arms[i]) : 0;
}

int64_t live_run_id(const live *lv, size_t i)
{
    /* partners: the release stores in begin_run and live_run (resume) */
    return i < lv->narms
               ? atomic_load_explicit(&((live *)lv)->run_ids[i], memory_order_acquire)
               : 0;
}

int64_t live_session(const live *lv) { return lv->session; }

int live_send(live *lv, size_t i, const cmd_record *c)
{
    if (i >= lv->narms || arm_done(lv->arms[i]))
        return -1;
    return arm_send(lv->arms[i], c);
}

/* The payload buffer for an arm's heat slot, grown to bytes. */
static uint8_t *heat_buffer(live *lv, size_t bytes)
{
    if (lv->heat_cap < bytes) {
        free(lv->heat_flat);
        lv->heat_flat = xmalloc(bytes);
        lv->heat_cap = bytes;
    }
    return lv->heat_flat;
}

uint64_t live_heat_read(live *lv, size_t i, uint64_t seen, heatmap_snapshot *out)
{
    arm *a = i < lv->narms ? lv->arms[i] : NULL;
    size_t bytes = a ? arm_heat_bytes(a) : 0;
    if (!bytes)
        return 0;
    uint64_t ver = arm_heat_version(a);
    if (!ver || ver == seen)
        return 0;
    uint8_t *flat = heat_buffer(lv, bytes);
    ver = arm_heat_read(a, flat);
    /* the slot holds the session's shape; anything else is not ours to draw */
    if (!ver || heatmap_decode(flat, bytes, out))
        return 0;
    return ver;
}

uint64_t live_heat_version(const live *lv, size_t i)
{
    return i < lv->narms ? arm_heat_version(lv->arms[i]) : 0;
}

void live_shape(const live_config *cfg, session_shape *out)
{
    const model_config *m = &cfg->tc.model;
    memset(out, 0, sizeof *out);
    out->layers = m->layers;
    out->heads = m->heads;
    out->T = m->T;
    out->batch = m->batch;
    out->k = (uint32_t)m->k;
    out->frozen = (uint32_t)m->gate_frozen;
    out->steps = cfg->tc.steps;
    out->narms = cfg->narms < LIVE_MAX_ARMS ? cfg->narms : LIVE_MAX_ARMS;
    for (size_t i = 0; i < out->narms; i++) {
        out->modes[i] = (uint32_t)cfg->modes[i];
        args_arm_name(cfg, i, out->names[i], sizeof out->names[i]);
    }
    out->db_path = cfg->db_path;
}

/* ---- the session ---- */

static void stop_all(live *lv, int source)
{
    cmd_record c = {.kind = CMD_STOP, .scripted = (uint32_t)source};
    for (size_t i = 0; i < lv->narms; i++)
        if (!arm_done(lv->arms[i]))
            while (arm_send(lv->arms[i], &c))
                nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* The heatmaps an arm handed over for the store (arm_heat_take), into the
 * store's queue; taken even without a store, so the arm never waits. */
static void forward_heatmap(live *lv, arm *a)
{
    const uint8_t *flat = arm_heat_take(a);
    if (!flat)
        return;
    size_t bytes = arm_heat_bytes(a);
    uint64_t step;
    uint32_t layers, heads, T;
    if (lv->store_ring && !heatmap_decode_head(flat, bytes, &step, &layers, &heads, &T)) {
        GL_ASSERT(bytes <= UINT32_MAX);
        tel_record r = {.kind = REC_HEATMAP, .arm = arm_index(a), .step = step,
                        .wall_ms = gl_wall_ms(), .payload = (uint32_t)bytes};
        r.u.heatmap.layers = layers;
        r.u.heatmap.heads = heads;
        r.u.heatmap.T = T;
        live_store_put(lv, &r, flat);   /* copies the payload */
    }
    arm_heat_taken(a);
}

int live_drain(live *lv, const live_observer *obs, live_result *res, int stopping)
{
    int all_done = 1;
    for (size_t i = 0; i < lv->narms; i++) {
        arm *a = lv->arms[i];
        /* read done first: a record pushed before done is then still seen */
        int done = arm_done(a);
        tel_record r;
        while (arm_poll(a, &r) == 0) {
            if (r.kind == REC_FORKED) {
                /* the trainer waits in the arm's handoff slot, one per record */
                trainer *child = arm_take_fork(a);
                GL_ASSERT(child);
                if (stopping) {
                    trainer_free(child);
                    free(child);
                } else {
                    live_arms_adopt_fork(lv, child, &r, obs);
                }
                continue;
            }
            /* an evaluation's heatmaps are handed over before its record */
            forward_heatmap(lv, a);
            if (r.kind == REC_STATUS && r.u.status.status == RUN_DIVERGED)
                res->diverged++;
            if (r.kind == REC_STATUS && r.u.status.status == RUN_FAILED)
                res->failed++;
            if (obs->on_record)
                obs->on_record(obs->ctx, lv, &r);
            live_store_put(lv, &r, NULL);
        }
        all_done &= done;
    }
    return all_done;
}

static void teardown(live *lv)
{
    live_store_finish(lv);
    for (size_t i = 0; i < lv->narms; i++)
        live_arms_free(lv, i);
    pace_destroy(lv->pace);   /* after the arms: they leave it as they end */
    lv->pace = NULL;
    live_store_close(lv);
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
    atomic_init(&lv->store_park, 0);

    /* The stop signals (SIGINT, SIGTERM, SIGHUP) are taken synchronously by
     * the main loop (sigtimedwait); every thread created from here on
     * inherits the blocked mask. */
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);

    int rc = -1, detach_failed = 0, dp_failed = 0;
    gl_error detach_err = {0};
    if (args_check_script(cfg, err) || live_remote_open(lv, err) ||
        (cfg->db_path && !lv->remote && live_store_open(lv, err)))
        goto out;
    res->session = lv->session;
    /* absolute, so stored checkpoint paths work from any directory */
    char cwd[1024] = "";
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = 0;
    if (lv->remote) {
        /* several ranks: the same steps, with the ranks (live_remote.c) */
        if (live_remote_begin(lv, cwd, err))
            goto out;
        res->session = live_remote_rank(lv) == 0 ? lv->session : 0;
        goto begun;
    }
    if (live_arms_checkpoint_root(lv, cwd, err))
        goto out;
    if (live_arms_make(lv, err))
        goto out;
    for (size_t i = 0; i < lv->narms; i++)
        if (arm_check_dir(lv->arms[i], err))
            goto out;
    if (lv->st) {
        if (cfg->resume_run) {
            /* with a new --steps the stored config follows the resumed one,
             * so a later resume parses what this one trains to */
            if (store_run_reopen(lv->st, cfg->resume_run, lv->info[0].begin.step, err) ||
                (cfg->resume_old_steps && cfg->resume_old_steps != cfg->tc.steps &&
                 store_run_set_config(lv->st, cfg->resume_run, lv->info[0].config_json, err)))
                goto out;
            /* partners: the acquire loads named at live.run_ids */
            atomic_store_explicit(&lv->run_ids[0], cfg->resume_run, memory_order_release);
        } else {
            for (uint32_t i = 0; i < lv->narms; i++)
                if (live_store_begin_run(lv, &lv->info[i].begin, lv->info[i].config_json, err))
                    goto out;
        }
        if (live_store_start(lv, err))
            goto out;
    }
begun:
    if (cfg->resume_run) {
        /* the gate and step the run resumes with, from its begin record */
        const tel_record *b = &lv->info[0].begin;
        tel_record ev = {.kind = REC_EVENT, .arm = 0, .step = b->step, .wall_ms = gl_wall_ms()};
        ev.u.event.kind = EV_RESUMED;
        ev.u.event.mode = b->u.run.mode;
        ev.u.event.k = b->u.run.k;
        ev.u.event.frozen = b->u.run.frozen;
        size_t want = cfg->tc.steps, had = cfg->resume_old_steps;
        if (had && had != want)
            snprintf(ev.u.event.detail, sizeof ev.u.event.detail,
                     "--steps %zu -> %zu (%s) from %.100s", had, want,
                     want > had ? "extended" : "ends earlier", cfg->resume_ckpt);
        else
            snprintf(ev.u.event.detail, sizeof ev.u.event.detail, "from %.140s",
                     cfg->resume_ckpt);
        live_store_put(lv, &ev, NULL);
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
    if (live_remote_rank(lv) > 0) {
        /* the other ranks: their arms to rank 0's session loop */
        if (live_remote_work(lv, &sigs, res, err) == 0)
            rc = 0;
        goto out;
    }

    const live_observer *now = obs;   /* after a detach: obs->detached */
    int stopping = 0;
    for (;;) {
        /* remote arms' records in, their commands out; a dead rank ends it */
        if (lv->remote && live_remote_pump(lv, now, stopping))
            break;
        int all_done = live_drain(lv, now, res, stopping);
        if (all_done)
            break;
        /* --dp: an arm that failed (its replicas' weights differed, or its
         * leader could not save) stops the session: its error event says why */
        if (!stopping && cfg->dp > 1 && res->failed) {
            stopping = 1;
            dp_failed = 1;
            stop_all(lv, 2);
        }
        /* partner: the release store in store_fail */
        if (!stopping && atomic_load_explicit(&lv->store_failed, memory_order_acquire)) {
            stopping = 1;
            stop_all(lv, 2);
        }
        /* commands from other processes, handed over by the store thread */
        live_steer_deliver(lv);
        /* a signal first: a hangup must move the output before a write to
         * the terminal that is gone fails and the observer asks to stop */
        int sig = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0});
        int ask = sig <= 0 && !stopping && now->on_tick ? now->on_tick(now->ctx, lv) : 0;
        if (ask == LIVE_ASK_DETACH && lv->remote)
            ask = 0;   /* the ranks cannot follow a fork: watch it with gatelab watch */
        if (ask == LIVE_ASK_DETACH) {
            /* the `d` key: the parent ends here, the child goes on */
            int how = live_detach(lv, obs, res, &sigs, &detach_err);
            if (how == LIVE_DETACH_PARENT) {
                /* every thread is joined and the store closed: what is left
                 * is this process's memory, freed as at any end (nothing of
                 * it touches the database the child now owns) */
                rc = 0;
                goto out;
            }
            if (how == LIVE_DETACH_CHILD)
                now = obs->detached ? obs->detached : obs;
            else
                detach_failed = 1;
            ask = 0;
        }
        if (ask) {
            res->stop_asked = ask;
            stopping = 1;
            stop_all(lv, 2);
        }
        if (sig <= 0)
            sig = sigtimedwait(&sigs, NULL, &(struct timespec){0, 10000000});
        /* a hangup (the terminal closed, ssh dropped) while arms train: the
         * session goes on, its output in the log file (DESIGN §12) */
        if (sig == SIGHUP && !stopping) {
            if (live_hangup(lv, obs, res, &sigs, &detach_err) == 0)
                now = obs->detached ? obs->detached : obs;
            else
                detach_failed = 1;
            sig = 0;
        }
        if (detach_failed && !stopping) {
            /* the session was put back as it was: it stops, and says why */
            res->detach_failed = 1;
            stopping = 1;
            stop_all(lv, 2);
        }
        /* every other signal in the set stops every arm */
        if (sig > 0) {
            if (!res->signal)
                res->signal = sig;   /* the first: what stopped the session */
            if (!stopping) {
                stopping = 1;
                stop_all(lv, 2);
            }
        }
    }
    for (size_t i = 0; i < lv->narms; i++) {
        arm_join(lv->arms[i]);
        res->backpressure += arm_backpressure(lv->arms[i]);
    }
    live_store_finish(lv);
    res->backpressure += lv->store_backpressure;
    rc = 0;
out:
    if (rc == 0 && live_remote_fault(lv))
        rc = gl_fail(err, "%s", live_remote_fault(lv));
    if (rc == 0 && dp_failed)
        rc = gl_fail(err, "--dp %zu: an arm failed (its error event says why: replicas whose "
                          "weights differ, or a checkpoint not written); every arm stopped",
                     cfg->dp);
    teardown(lv);
    live_remote_close(lv);
    /* the store thread is joined: its stores are all seen */
    if (rc == 0 && atomic_load_explicit(&lv->store_failed, memory_order_acquire))
        rc = gl_fail(err, "%s", lv->store_error);   /* the store's message names the path */
    if (rc == 0 && res->detach_failed)
        rc = gl_fail(err, "%s; runs stopped and stored", detach_err.msg);
    free(lv->heat_flat);
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
