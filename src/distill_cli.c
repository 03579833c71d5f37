/* distill_cli: `gatelab distill RUN`, and storing a distillation as an
 * ordinary run (its metrics, checkpoint and events) for it and for line 3 of
 * `experiment absorption`. The distillation itself is distill.c. */
#include "distill_cli.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "distill.h"
#include "experiment.h"
#include "gate.h"
#include "json.h"
#include "metrics.h"
#include "record.h"
#include "runspec.h"
#include "safetensors.h"
#include "store.h"

/* ---- storing a distillation as a run ---- */

/* A new run in `session` (arm index `arm`), parent the source run, mode
 * distilled, finished at the source step: its metrics are the deployed
 * evaluation (val_loss, val_ppl, f1, mass_kept, oracle_mass, per-layer
 * layer_metrics) plus the distillation's own figures (distill_loss_first /
 * _last, precision, recall, chance_f1, heldout_topk_f1, heldout_thr_*,
 * source_val_ppl); the distilled file is its checkpoint. */
int64_t distill_cli_store(store *st, int64_t session, int64_t arm, const distill_cli_record *d,
                          gl_error *err)
{
    const distill_result *r = d->res;
    const distill_config *c = d->cfg;
    char name[64];
    snprintf(name, sizeof name, "%.40s>distilled", d->source_name);
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    json_key(&b, "name");
    json_string(&b, name);
    json_key(&b, "mode");
    json_string(&b, "distilled");
    json_key(&b, "source_run");
    json_int(&b, d->source_run);
    json_key(&b, "source_mode");
    json_string(&b, r->source_mode);
    json_key(&b, "source_step");
    json_uint(&b, r->source_step);
    json_key(&b, "source_checkpoint");
    json_string(&b, d->source_ckpt);
    json_key(&b, "steps");
    json_uint(&b, c->steps);
    json_key(&b, "batch");
    json_uint(&b, c->batch);
    json_key(&b, "lr");
    json_float(&b, c->lr);
    json_key(&b, "warmup");
    json_uint(&b, c->warmup);
    json_key(&b, "weight_decay");
    json_float(&b, c->weight_decay);
    json_key(&b, "clip");
    json_float(&b, c->clip);
    json_key(&b, "forward");
    json_string(&b, gate_mode_name(c->forward));
    json_key(&b, "seed");
    json_uint(&b, c->seed);
    json_key(&b, "data");
    json_string(&b, d->data_path);
    json_key(&b, "eval_windows");
    json_uint(&b, d->eval_windows);
    json_key(&b, "checkpoint");
    json_string(&b, d->out_ckpt);
    json_object_end(&b);
    char *cfgjson = json_take(&b);
    const metrics_state *ms = &r->deployed;
    store_run_desc desc = {.arm = (uint32_t)arm,
                           .name = name,
                           .mode = gate_mode_name(GATE_DISTILLED),
                           .k = (uint32_t)ms->k,
                           .seed = c->seed,
                           .config_json = cfgjson,
                           .parent_run = d->source_run,
                           .start_step = r->source_step};
    if (store_begin(st, err)) {
        free(cfgjson);
        return -1;
    }
    int64_t run = store_run_begin(st, session, &desc, err);
    free(cfgjson);
    if (run < 0) {
        store_abort(st);
        return -1;
    }
    const uint64_t step = r->source_step;
    tel_record ev = {.kind = REC_EVENT, .step = step, .wall_ms = gl_wall_ms()};
    ev.u.event.kind = EV_START;
    ev.u.event.mode = GATE_DISTILLED;
    ev.u.event.k = (uint32_t)ms->k;
    snprintf(ev.u.event.detail, sizeof ev.u.event.detail,
             "distil a fresh gate onto run %lld (%s, step %zu): %zu updates, %s forward",
             (long long)d->source_run, r->source_mode, r->source_step, c->steps,
             gate_mode_name(c->forward));
    int rc = store_write(st, run, &ev, err);
    for (size_t l = 0; !rc && l < ms->L; l++)
        for (size_t h = 0; !rc && h < ms->H; h++) {
            tel_record lr = {.kind = REC_LAYER, .step = step, .wall_ms = gl_wall_ms()};
            lr.u.layer.layer = (uint32_t)l;
            lr.u.layer.head = (uint32_t)h;
            for (int k = 0; k < METRIC_COUNT; k++)
                lr.u.layer.value[k] = k == METRIC_GATE_GRAD_NORM
                                          ? NAN
                                          : metrics_value(ms, l, h, (metric_key)k);
            rc = store_write(st, run, &lr, err);
        }
    if (!rc) {
        tel_record e = {.kind = REC_EVAL, .step = step, .wall_ms = gl_wall_ms()};
        e.u.eval.val_loss = r->val_loss;
        e.u.eval.val_ppl = r->val_ppl;
        e.u.eval.bits_per_byte = NAN;
        e.u.eval.f1 = r->f1;
        e.u.eval.mass_kept = r->mass_kept;
        e.u.eval.oracle_mass = metrics_model_value(ms, ms->L, METRIC_ORACLE_MASS);
        e.u.eval.gate_grad_norm = NAN;
        e.u.eval.tokens_per_s = NAN;
        e.u.eval.train_loss = NAN;
        e.u.eval.expert_balance = NAN;
        rc = store_write(st, run, &e, err);
    }
    const struct {
        const char *key;
        double v;
    } extra[] = {
        {"distill_loss_first", r->loss_first},   {"distill_loss_last", r->loss_last},
        {"precision", r->precision},             {"recall", r->recall},
        {"chance_f1", r->chance},                {"heldout_topk_f1", r->held_out.topk_f1},
        {"heldout_thr_precision", r->held_out.thr_p},
        {"heldout_thr_recall", r->held_out.thr_r},
        {"heldout_thr_f1", r->held_out.thr_f1},  {"source_val_ppl", r->source_val_ppl},
        {"distill_seconds", r->seconds},
    };
    for (size_t i = 0; !rc && i < sizeof extra / sizeof extra[0]; i++)
        rc = store_put_metric(st, run, extra[i].key, step, extra[i].v, err);
    if (!rc) {
        tel_record ck = {.kind = REC_CHECKPOINT, .step = step, .wall_ms = gl_wall_ms()};
        snprintf(ck.u.checkpoint.path, sizeof ck.u.checkpoint.path, "%s", d->out_ckpt);
        rc = store_write(st, run, &ck, err);
    }
    if (!rc) {
        tel_record fin = {.kind = REC_EVENT, .step = step, .wall_ms = gl_wall_ms()};
        fin.u.event.kind = EV_FINISH;
        fin.u.event.mode = GATE_DISTILLED;
        fin.u.event.k = (uint32_t)ms->k;
        snprintf(fin.u.event.detail, sizeof fin.u.event.detail,
                 "BCE %.4f -> %.4f; deployed F1 %.3f, val ppl %.3f", r->loss_first, r->loss_last,
                 r->f1, r->val_ppl);
        rc = store_write(st, run, &fin, err);
    }
    if (!rc) {
        tel_record s = {.kind = REC_STATUS, .step = step, .wall_ms = gl_wall_ms()};
        s.u.status.status = RUN_FINISHED;
        rc = store_write(st, run, &s, err);
    }
    if (rc) {
        store_abort(st);   /* all or nothing: no half-stored distillation */
        return -1;
    }
    if (store_commit(st, err))
        return -1;
    return run;
}

void distill_cli_print(const char *indent, const distill_result *r)
{
    printf("%sdistillation BCE %.4f -> %.4f over %zu updates (%.1f s)\n", indent, r->loss_first,
           r->loss_last, r->steps, r->seconds);
    printf("%sheld out, distillation forward: top-k F1 %.3f | thresholded (sigmoid > 1/2) "
           "P %.3f R %.3f F1 %.3f | chance %.3f\n",
           indent, r->held_out.topk_f1, r->held_out.thr_p, r->held_out.thr_r, r->held_out.thr_f1,
           r->held_out.chance);
    printf("%sdeployed (mode distilled, top-k of the gate): P %.3f R %.3f F1 %.3f vs oracle "
           "(chance %.3f) | mass kept %.3f of oracle %.3f\n",
           indent, r->precision, r->recall, r->f1, r->chance, r->mass_kept, r->oracle_mass);
    printf("%sdeployed val ppl %.4f (the checkpoint as trained, %s: %.4f)\n", indent, r->val_ppl,
           r->source_mode, r->source_val_ppl);
    fflush(stdout);
}

void distill_cli_on_progress(void *ctx, size_t step, size_t steps, double loss)
{
    distill_cli_progress *p = ctx;
    if (!p->bar_ready) {
        progress_bar_init(&p->bar);
        p->bar_ready = 1;
    }
    /* the pace of every update so far: they all cost the same */
    double frac = steps ? (double)step / (double)steps : 1.0;
    double spent = gl_now() - p->t0;
    double eta = step ? spent / (double)step * (double)(steps - step) : NAN;
    size_t every = p->every ? p->every : 1;
    if (step % every == 0 || step == steps) {
        char done[48];
        progress_fmt(done, sizeof done, frac, eta);
        progress_bar_clear(&p->bar);
        printf("%sdistill update %zu/%zu | BCE %.4f | %s\n", p->prefix, step, steps, loss, done);
        fflush(stdout);
    }
    if (step == steps)
        progress_bar_clear(&p->bar);
    else
        progress_bar_draw(&p->bar, frac, eta, "distillation");
}

/* dirname(ckpt)/distilled-stepNNNNNN-seedS-uU[-dense].safetensors: the
 * settings that decide the distilled gate are in the name, so another
 * distillation of the same checkpoint never overwrites this one */
int distill_cli_out_path(const char *ckpt, size_t step, const distill_config *dc, char *out,
                         size_t n, gl_error *err)
{
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s", ckpt) >= (int)sizeof dir)
        return gl_fail(err, "%s: path too long", ckpt);
    if (snprintf(out, n, "%s/distilled-step%06zu-seed%llu-u%zu%s.safetensors", dirname(dir), step,
                 (unsigned long long)dc->seed, dc->steps,
                 dc->forward == GATE_DENSE ? "-dense" : "") >= (int)n)
        return gl_fail(err, "%s: path too long", ckpt);
    /* the checkpoints table keeps paths of a telemetry record's size */
    if (strlen(out) >= REC_TEXT)
        return gl_fail(err, "%s: path of %zu bytes is too long to store (at most %d)", out,
                       strlen(out), REC_TEXT - 1);
    return 0;
}
/* ---- gatelab distill RUN ---- */

int distill_cli_main(int argc, char **argv)
{
    const char *db = EXPERIMENT_DEFAULT_DB, *run_word = NULL, *data = NULL;
    size_t threads = args_default_threads(), windows = 0;
    int windows_set = 0, data_set = 0;
    distill_config dc;
    distill_default_config(&dc);
    int warmup_set = 0, seed_set = 0;
    const char *steps_flag = NULL;   /* --distill-steps or its alias --steps */
    /* --name, --note: the new session's; --tag: its run's (as for run) */
    const char *name = NULL, *note = NULL;
    live_tag tags[LIVE_MAX_TAGS];
    size_t ntags = 0;
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if ((rc = args_label_option(f, v, &name, &note, tags, &ntags, &e)) != 0) {
            rc = rc < 0 ? -1 : 0;
        } else if (strcmp(f, "--db") == 0) {
            if (!v || !*v)
                return cli_usage_error("--db: missing value");
            db = v;
        } else if (strcmp(f, "--data") == 0) {
            if (!v || !*v)
                return cli_usage_error("--data: missing value");
            data = v;
            data_set = 1;
        } else if (strcmp(f, "--distill-steps") == 0 || strcmp(f, "--steps") == 0) {
            /* one name for distillation updates in distill and experiment
             * absorption; --steps is the older spelling, kept as an alias —
             * both at once would leave one silently ignored */
            if (steps_flag && strcmp(steps_flag, f) != 0)
                return cli_usage_error("%s: the same as %s (distillation updates); give one",
                                       f, steps_flag);
            steps_flag = f;
            rc = args_size(f, v, 1, 10000000, &dc.steps, &e);
        } else if (strcmp(f, "--threads") == 0) {
            rc = runspec_parse_into(runspec_find_flag(f), v, &threads, &e);
        } else if (strcmp(f, "--eval-windows") == 0) {
            rc = runspec_parse_into(runspec_find_flag(f), v, &windows, &e);
            windows_set = 1;
        } else if (strcmp(f, "--lr") == 0) {
            rc = runspec_parse_into(runspec_find_flag(f), v, &dc.lr, &e);
        } else if (strcmp(f, "--warmup") == 0) {
            rc = args_size(f, v, 0, 10000000, &dc.warmup, &e);
            warmup_set = 1;
        } else if (strcmp(f, "--seed") == 0) {
            rc = runspec_parse_into(runspec_find_flag(f), v, &dc.seed, &e);
            seed_set = 1;
        } else if (strcmp(f, "--forward") == 0) {
            gate_mode m;
            if (!v || gate_mode_parse(v, &m) || (m != GATE_ORACLE && m != GATE_DENSE))
                return cli_usage_error("--forward %s: must be oracle or dense", v ? v : "");
            dc.forward = m;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for distill", f);
        } else if (!run_word) {
            run_word = f;
            continue;
        } else {
            return cli_usage_error("distill: unexpected argument '%s'", f);
        }
        if (rc)
            return cli_usage_error("%s", e.msg);
        i++;
    }
    if (!run_word)
        return cli_usage_error("distill: missing RUN (a run id from gatelab ls)");
    size_t run_id;
    if (args_size("RUN", run_word, 1, INT64_MAX, &run_id, &e))
        return cli_usage_error("distill: %s", e.msg);
    if (!warmup_set)
        dc.warmup = dc.steps / 10;

    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    store_run_row row;
    store_checkpoint_row ck;
    if (store_get_run(st, (int64_t)run_id, &row, &e)) {
        store_close(st);
        return cli_runtime_error(&e);
    }
    int rc = store_find_checkpoint(st, (int64_t)run_id, UINT64_MAX, 0, &ck, &e);
    /* the run's own data and eval windows, unless given here */
    char **rargv = NULL;
    int rargc = 0;
    gl_error ignore;
    if (!rc && store_json_argv(row.config_json, &rargv, &rargc, &ignore) == 0) {
        for (int i = 0; i + 1 < rargc; i++) {
            if (!data_set && strcmp(rargv[i], "--data") == 0)
                data = rargv[i + 1];
            if (!windows_set && strcmp(rargv[i], "--eval-windows") == 0)
                args_size("--eval-windows", rargv[i + 1], 0, 1000000, &windows, &ignore);
        }
    }
    if (!windows_set && !windows)
        windows = 64;
    if (!seed_set)
        dc.seed = row.seed;
    char out[1024];
    if (!rc)
        rc = distill_cli_out_path(ck.path, ck.step, &dc, out, sizeof out, &e);
    int status = 0;
    distill_result res;
    memset(&res, 0, sizeof res);
    if (!rc) {
        printf("distill run %lld (%s, %s) from %s (step %llu) | %zu updates of batch %zu, lr %g, "
               "%s forward | data %s | %zu val windows\n",
               (long long)row.id, row.name, row.mode, ck.path, (unsigned long long)ck.step,
               dc.steps, dc.batch, (double)dc.lr, gate_mode_name(dc.forward),
               data ? data : "generator", windows);
        fflush(stdout);
        distill_cli_progress pr = {.prefix = "",
                                   .every = dc.steps >= 10 ? dc.steps / 10 : 1,
                                   .t0 = gl_now()};
        /* the model's own batch caps the distillation batch */
        st_file f;
        checkpoint_info info;
        rc = st_read(ck.path, &f, &e);
        if (!rc) {
            rc = checkpoint_info_read(&f, ck.path, &info, &e);
            st_free(&f);
        }
        if (!rc && dc.batch > info.model.batch)
            dc.batch = info.model.batch;
        if (!rc)
            rc = distill_checkpoint(ck.path, data, &dc, windows, threads, out,
                                    distill_cli_on_progress, &pr, 1, &res, &e);
        if (pr.bar_ready)
            progress_bar_clear(&pr.bar);
    }
    if (!rc) {
        distill_cli_print("", &res);
        printf("checkpoint %s (gate mode distilled; gatelab eval %s --data FILE)\n", out, out);
        char *cmd = cli_join_words("gatelab distill", argc, argv);
        int64_t session = store_session_begin(st, cmd, &e);
        free(cmd);
        distill_cli_record d = {.source_run = row.id, .source_name = row.name,
                                .source_ckpt = ck.path, .out_ckpt = out,
                                .data_path = data, .eval_windows = windows,
                                .cfg = &dc, .res = &res};
        int64_t run = session < 0 ? -1 : distill_cli_store(st, session, 0, &d, &e);
        if (run >= 0 && (name || note) &&
            store_session_set_name_note(st, session, name, note, &e))
            run = -1;
        for (size_t t = 0; run >= 0 && t < ntags; t++)
            if (store_tag_set(st, run, tags[t].key, tags[t].value, &e))
                run = -1;
        if (run < 0 || store_session_end(st, session, &e))
            rc = -1;
        else
            printf("stored as run %lld (session %lld) in %s\n", (long long)run,
                   (long long)session, db);
    }
    if (rc)
        status = cli_runtime_error(&e);
    distill_result_free(&res);
    for (int i = 0; i < rargc; i++)
        free(rargv[i]);
    free(rargv);
    store_run_row_free(&row);
    store_close(st);
    return status;
}
