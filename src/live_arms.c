/* live_arms: the session's arm registry — every arm's index, name, checkpoint
 * directory and owner, its run's configuration as JSON and its REC_RUN_BEGIN
 * record, made on the main thread before the arm's thread starts (so neither
 * the store thread nor anyone else reads a running trainer for them), and
 * the forks an arm hands over (arm_take_fork) adopted as new arms. */
#include "live_int.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "gate.h"
#include "json.h"
#include "runspec.h"

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
    args_arm_spec(&t->m.cfg, arm_word, sizeof arm_word);
    json_string(&b, "--arms");
    json_string(&b, arm_word);
    for (size_t i = 0; i < nscript; i++) {
        char spec[96];
        command_format(script[i].step, &script[i].cmd, spec, sizeof spec);
        json_string(&b, "--at");
        json_string(&b, spec);
    }
    json_array_end(&b);
    json_object_end(&b);
    return json_take(&b);
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
    if (!lv->st && !lv->db_id[0])
        return;
    /* another rank than 0 has the id rank 0 told it (live_remote.c) */
    snprintf(o->db_id, sizeof o->db_id, "%s", lv->st ? store_db_id(lv->st) : lv->db_id);
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
    /* a --dp follower applies what its leader hands it, not a script */
    if (parent == UINT32_MAX && live_remote_leads(lv, idx))
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
                     .run_id = &lv->run_ids[idx],
                     .pace = lv->pace};
    set_owner(lv, idx, &t->owner);
    arm_info *in = &lv->info[idx];
    in->config_json = config_json(lv, t, name, t->m.cfg.mode, mine, nmine, has_dir ? ckdir : NULL);
    /* the run as it begins, taken now, while this thread alone holds the
     * trainer: the store thread writes the run's row from this record */
    const model_config *m = &t->m.cfg;
    size_t json_len = strlen(in->config_json);
    GL_ASSERT(json_len <= UINT32_MAX);
    in->begin = (tel_record){.kind = REC_RUN_BEGIN, .arm = idx, .step = t->step,
                             .payload = (uint32_t)json_len};
    in->begin.u.run.mode = (uint32_t)m->mode;
    in->begin.u.run.k = (uint32_t)m->k;
    in->begin.u.run.frozen = (uint32_t)m->gate_frozen;
    in->begin.u.run.parent_arm = parent;
    in->begin.u.run.seed = m->seed;
    snprintf(in->begin.u.run.name, sizeof in->begin.u.run.name, "%s", name);
    /* paced from its first step: a fork starts level with its parent */
    pace_join(lv->pace, idx, t->step, t->m.pool);
    lv->arms[idx] = arm_create(idx, name, t, &ac, mine, nmine);   /* copies ckdir */
    free(mine);
    lv->narms++;
    return 0;
}

void live_arms_free(live *lv, size_t i)
{
    arm *a = lv->arms[i];
    if (!a)
        return;
    if (lv->pace)
        pace_leave(lv->pace, i);   /* a parked arm's slot still names its pool */
    arm_destroy(a);
    free(lv->info[i].config_json);
    lv->info[i].config_json = NULL;
    lv->arms[i] = NULL;
}

/* A fork arrived: the new arm gets the next index, a run row and a thread. */
void live_arms_adopt_fork(live *lv, trainer *child, const tel_record *r,
                          const live_observer *obs)
{
    gl_error e;
    char name[64];
    snprintf(name, sizeof name, "%.30s>%s", arm_name(lv->arms[r->arm]),
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
        live_store_put(lv, &ev, NULL);
        return;
    }
    free(child);
    uint32_t idx = (uint32_t)lv->narms - 1;
    tel_record rb = lv->info[idx].begin;
    rb.step = r->step;
    rb.wall_ms = gl_wall_ms();
    live_store_put(lv, &rb, lv->info[idx].config_json);
    if (obs->on_record)
        obs->on_record(obs->ctx, lv, &rb);
    if (arm_start(lv->arms[idx], &e)) {
        /* no thread: report it as a stopped run so nothing waits for it */
        arm_mark_done(lv->arms[idx]);
        tel_record st = {.kind = REC_STATUS, .arm = idx, .step = r->step,
                         .wall_ms = gl_wall_ms()};
        st.u.status.status = RUN_STOPPED;
        live_store_put(lv, &st, NULL);
    }
}

/* BASE/<db name>-<db id>/session-N: the database's id makes two databases
 * of one name, or in one directory, write apart, and the session number two
 * sessions of one database (DESIGN §11). BASE is --out, or ckpt/ beside the
 * database. Without a database, --out gets a directory of its own. */
int live_arms_checkpoint_root(live *lv, const char *cwd, gl_error *e)
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

int live_arms_make(live *lv, gl_error *e)
{
    const live_config *cfg = lv->cfg;
    size_t total = cfg->tc.threads ? cfg->tc.threads : 1;
    /* Every arm's pool has a thread per core, and pace decides how many of
     * them work: one per running arm, the cores of arms that wait for the
     * slowest lent to the arms behind (pace.h). Before, each arm had
     * total / arms threads and the kernel shared the cores out evenly, so
     * a cheaper arm ran ahead of the others. Under mpirun --threads is per
     * rank and pace holds together the arms this rank trains. */
    lv->threads_per_arm = total;
    lv->pace = pace_create(total, pace_slack(cfg->tc.eval_every));
    for (size_t i = 0; i < cfg->narms; i++) {
        if (!live_remote_local(lv, i)) {
            live_arms_add_remote(lv, i);
            continue;
        }
        train_config tc = cfg->tc;
        tc.model.mode = cfg->modes[i];
        tc.model.experts = cfg->ffn[i] == LIVE_FFN_DENSE ? 0 : cfg->experts;
        tc.model.router_frozen = cfg->ffn[i] == LIVE_FFN_MOE_RANDOM;
        tc.threads = lv->threads_per_arm;
        tc.heatmaps = cfg->telemetry && cfg->db_path;
        trainer t;
        if (trainer_init(&t, &tc, e))
            return -1;
        if (live_remote_dp_make(lv, i, &t, e)) {   /* --dp: one replica of the arm */
            trainer_free(&t);
            return -1;
        }
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
        args_arm_name(cfg, i, name, sizeof name);
        if (add_arm(lv, &t, name, UINT32_MAX, dir, e)) {
            trainer_free(&t);
            return -1;
        }
    }
    return 0;
}

void live_arms_add_remote(live *lv, size_t i)
{
    const live_config *cfg = lv->cfg;
    const model_config *m = &cfg->tc.model;
    GL_ASSERT(lv->narms == i && i < LIVE_MAX_ARMS);
    char name[64];
    args_arm_name(cfg, i, name, sizeof name);
    arm_config ac = {.steps = cfg->tc.steps,
                     .eval_every = cfg->tc.eval_every,
                     .save_every = cfg->tc.save_every,
                     .telemetry = cfg->telemetry,
                     .keep_checkpoints = cfg->keep_checkpoints,
                     .heatmap_every = cfg->heatmap_every,
                     .run_id = &lv->run_ids[i]};
    /* rank 0 keeps the training rank's heatmaps (the trainer's shape) */
    size_t heat = live_remote_rank(lv) == 0 && cfg->telemetry && cfg->db_path
                      ? heatmap_payload_size((uint32_t)m->layers, (uint32_t)m->heads,
                                             (uint32_t)m->T)
                      : 0;
    lv->arms[i] = arm_create_remote((uint32_t)i, name, &ac, heat);
    lv->narms++;
}
