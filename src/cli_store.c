/* cli_store: the commands that read stored sessions: ls, show, replay
 * (the screen, or a text summary without a terminal) and export, with the
 * argument helpers they share with `resume` (--db, RUN ids). Like cli.c they
 * print; errors go through cli_usage_error / cli_runtime_error. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "common.h"
#include "gate.h"
#include "live.h"
#include "model.h"
#include "record.h"
#include "safetensors.h"
#include "store.h"
#include "ui.h"

/* ---- the database: ls, show ---- */

/* --db PATH among the words; everything else is left in rest[]. */
int cli_take_db(int argc, char **argv, const char **db, char **rest, int *nrest, const char *cmd)
{
    *db = "sessions/gatelab.db";
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("--db: missing value");
            *db = argv[++i];
        } else if (argv[i][0] == '-' && strcmp(argv[i], "--step") && strcmp(argv[i], "--out")) {
            return cli_usage_error("%s: unknown option for %s", argv[i], cmd);
        } else {
            rest[(*nrest)++] = argv[i];
        }
    }
    return 0;
}

int cli_parse_run_id(const char *cmd, const char *word, int64_t *out)
{
    size_t v;
    gl_error e;
    if (!word)
        return cli_usage_error("%s: missing RUN (a run id from gatelab ls)", cmd);
    if (args_size("RUN", word, 1, INT64_MAX, &v, &e))
        return cli_usage_error("%s: %s", cmd, e.msg);
    *out = (int64_t)v;
    return 0;
}

static void fmt_num(char *buf, size_t n, const char *fmt, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, fmt, v);
}

static int ls_row(void *ctx, const store_run_row *r)
{
    (void)ctx;
    char val[32], ppl[32], best[32];
    fmt_num(val, sizeof val, "%.4f", r->final_val_loss);
    fmt_num(ppl, sizeof ppl, "%.3f", r->final_val_ppl);
    fmt_num(best, sizeof best, "%.4f", r->best_val_loss);
    printf("%5lld %7lld %3u  %-16.16s %-11s %-8s %7llu  %8s %9s %8s  %s\n", (long long)r->id,
           (long long)r->session, r->arm, r->name, r->mode, r->status,
           (unsigned long long)r->steps, val, ppl, best, r->started);
    return 0;
}

int cli_ls(int argc, char **argv)
{
    const char *db;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("ls: too many arguments");
    int rc = cli_take_db(argc, argv, &db, rest, &nrest, "ls");
    if (rc)
        return rc;
    if (nrest)
        return cli_usage_error("ls: unexpected argument '%s'", rest[0]);
    gl_error e;
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    printf("%5s %7s %3s  %-16s %-11s %-8s %7s  %8s %9s %8s  %s\n", "run", "session", "arm",
           "name", "mode", "status", "steps", "val", "ppl", "best", "started");
    rc = store_list_runs(st, 0, ls_row, NULL, &e);
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

static int show_segment(void *ctx, const store_segment_row *r)
{
    (void)ctx;
    char to[32];
    if (r->to_step == UINT64_MAX)
        snprintf(to, sizeof to, "...");
    else
        snprintf(to, sizeof to, "%llu", (unsigned long long)r->to_step);
    printf("  %7llu .. %-7s %-11s k %-4u%s\n", (unsigned long long)r->from_step, to, r->mode,
           r->k, r->frozen ? " frozen" : "");
    return 0;
}

static int show_event(void *ctx, const store_event_row *r)
{
    (void)ctx;
    printf("  %7llu  %-10s %s  %s\n", (unsigned long long)r->step, r->kind, r->time, r->detail);
    return 0;
}

static int show_summary(void *ctx, const store_summary_row *r)
{
    (void)ctx;
    printf("  %-16s %12.6g @%-7llu %12.6g @%-7llu %12.6g @%llu\n", r->key, r->last,
           (unsigned long long)r->last_step, r->min, (unsigned long long)r->min_step, r->max,
           (unsigned long long)r->max_step);
    return 0;
}

static int show_checkpoint(void *ctx, const store_checkpoint_row *r)
{
    (void)ctx;
    printf("  %7llu  %s%s\n", (unsigned long long)r->step, r->path,
           r->resumable ? "" : "  (weights only)");
    return 0;
}

int cli_show(int argc, char **argv)
{
    const char *db;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("show: too many arguments");
    int rc = cli_take_db(argc, argv, &db, rest, &nrest, "show");
    if (rc)
        return rc;
    if (nrest > 1)
        return cli_usage_error("show: unexpected argument '%s'", rest[1]);
    int64_t id;
    if ((rc = cli_parse_run_id("show", nrest ? rest[0] : NULL, &id)))
        return rc;
    gl_error e;
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    store_run_row r;
    if (store_get_run(st, id, &r, &e)) {
        store_close(st);
        return cli_runtime_error(&e);
    }
    printf("run %lld | session %lld | arm %u %s | status %s | mode at start %s k %u | seed %llu\n",
           (long long)r.id, (long long)r.session, r.arm, r.name, r.status, r.mode, r.k,
           (unsigned long long)r.seed);
    if (r.parent_run)
        printf("forked from run %lld\n", (long long)r.parent_run);
    printf("started %s | ended %s | pid %lld | %llu steps\n", r.started,
           r.ended[0] ? r.ended : "-", (long long)r.pid, (unsigned long long)r.steps);
    printf("config %s\n", r.config_json ? r.config_json : "{}");
    store_run_row_free(&r);
    printf("segments (from .. to, gate in force):\n");
    rc = store_list_segments(st, id, show_segment, NULL, &e);
    if (!rc) {
        printf("metrics (last, min, max with their steps):\n");
        rc = store_list_summaries(st, id, show_summary, NULL, &e);
    }
    if (!rc) {
        printf("events:\n");
        rc = store_list_events(st, id, show_event, NULL, &e);
    }
    if (!rc) {
        printf("checkpoints:\n");
        rc = store_list_checkpoints(st, id, show_checkpoint, NULL, &e);
    }
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

/* ---- replay: the screen, or a text summary without a terminal ---- */

typedef struct {
    store_run_row rows[LIVE_MAX_ARMS];
    size_t n, more;
} replay_runs;

static int replay_collect(void *ctx, const store_run_row *r)
{
    replay_runs *l = ctx;
    if (l->n == LIVE_MAX_ARMS) {
        l->more++;
        return 0;
    }
    l->rows[l->n] = *r;
    l->rows[l->n].config_json = NULL;    /* not needed; the walk frees its own */
    l->n++;
    return 0;
}

static int replay_by_arm(const void *a, const void *b)
{
    const store_run_row *x = a, *y = b;
    return x->arm < y->arm ? -1 : x->arm > y->arm;
}

static int replay_event(void *ctx, const store_event_row *r)
{
    (void)ctx;
    printf("    %7llu  %-10s %s\n", (unsigned long long)r->step, r->kind, r->detail);
    return 0;
}

static int replay_text(const char *db, int64_t session)
{
    gl_error e;
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    int rc = 0;
    if (session == 0) {
        session = store_last_session(st, &e);
        if (session == 0)
            gl_fail(&e, "%s has no sessions to replay", db);
        rc = session <= 0 ? -1 : 0;
    }
    store_session_row srow = {0};
    if (!rc)
        rc = store_get_session(st, session, &srow, &e);
    static replay_runs runs;
    runs.n = runs.more = 0;
    if (!rc) {
        printf("session %lld | started %s | ended %s | %zu runs\n", (long long)srow.id,
               srow.started, srow.ended[0] ? srow.ended : "-", srow.runs);
        printf("command %s\n", srow.command);
        store_session_row_free(&srow);
        rc = store_list_runs(st, session, replay_collect, &runs, &e);
    }
    if (!rc)
        qsort(runs.rows, runs.n, sizeof runs.rows[0], replay_by_arm);
    for (size_t i = 0; i < runs.n && !rc; i++) {
        const store_run_row *r = &runs.rows[i];
        printf("run %lld | arm %u %s | %s | %llu steps", (long long)r->id, r->arm, r->name,
               r->status, (unsigned long long)r->steps);
        if (!isnan(r->final_val_loss))
            printf(" | final val %.4f ppl %.3f | best val %.4f at step %llu", r->final_val_loss,
                   r->final_val_ppl, r->best_val_loss, (unsigned long long)r->best_val_step);
        printf("\n  events:\n");
        rc = store_list_events(st, r->id, replay_event, NULL, &e);
    }
    if (!rc && runs.more)
        printf("(%zu more runs not shown)\n", runs.more);
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

int cli_replay(int argc, char **argv)
{
    const char *db;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("replay: too many arguments");
    int rc = cli_take_db(argc, argv, &db, rest, &nrest, "replay");
    if (rc)
        return rc;
    if (nrest > 1)
        return cli_usage_error("replay: unexpected argument '%s'", rest[1]);
    int64_t session = 0;
    if (nrest) {
        size_t v;
        gl_error pe;
        if (args_size("SESSION", rest[0], 1, INT64_MAX, &v, &pe))
            return cli_usage_error("replay: %s (a session id: the second column of gatelab ls)",
                                   pe.msg);
        session = (int64_t)v;
    }
    if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        ui_options uo = {.db_path = db};
        int fallback, sig;
        gl_error e;
        if (ui_replay(db, session, &uo, &fallback, &sig, &e) == 0)
            return sig ? 128 + sig : 0;
        if (!fallback)
            return strstr(e.msg, "too small") ? cli_usage_error("%s", e.msg)
                                              : cli_runtime_error(&e);
        fprintf(stderr, "gatelab: %s: printing a summary instead\n", e.msg);
    }
    return replay_text(db, session);
}

/* ---- export ---- */

/* export writes a new regular file or replaces a plain one: never a device,
 * FIFO or directory (rename would put a file in its place), never a gatelab
 * checkpoint (a run's own resumable file would become weights-only). */
static int export_target_check(const char *out, gl_error *e)
{
    struct stat sb;
    if (stat(out, &sb) != 0)
        return errno == ENOENT ? 0 : gl_fail(e, "--out %s: %s", out, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return gl_fail(e, "--out %s: not a regular file", out);
    if (checkpoint_is_gatelab(out))
        return gl_fail(e, "--out %s: is a gatelab checkpoint; export writes a new file or "
                          "replaces one that is not a checkpoint", out);
    return 0;
}

int cli_export(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *db = "sessions/gatelab.db", *step_word = NULL;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--out") == 0 || strcmp(f, "--db") == 0 || strcmp(f, "--step") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'o' ? &out : f[2] == 'd' ? &db : &step_word) = argv[++i];
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for export", f);
        } else if (!src) {
            src = f;
        } else {
            return cli_usage_error("export: unexpected argument '%s'", f);
        }
    }
    if (!src)
        return cli_usage_error(
            "export: missing RUN or checkpoint (gatelab export RUN|CKPT --out FILE)");
    if (!out)
        return cli_usage_error("export: missing --out FILE.safetensors");
    gl_error e;
    if (export_target_check(out, &e))
        return cli_runtime_error(&e);
    /* a run id when it is a number and no such file exists */
    char ckpt_path[REC_TEXT];
    struct stat sb;
    if (src[strspn(src, "0123456789")] == 0 && stat(src, &sb) != 0) {
        int64_t id;
        int rc = cli_parse_run_id("export", src, &id);
        if (rc)
            return rc;
        size_t max_step = SIZE_MAX;
        if (step_word && args_size("--step", step_word, 0, SIZE_MAX - 1, &max_step, &e))
            return cli_usage_error("%s", e.msg);
        store *st = store_open(db, STORE_BROWSE, &e);
        if (!st)
            return cli_runtime_error(&e);
        store_checkpoint_row ck;
        store_run_row row;
        rc = store_get_run(st, id, &row, &e);   /* "no run N" before "no checkpoint" */
        if (!rc) {
            store_run_row_free(&row);
            rc = store_find_checkpoint(st, id, step_word ? (uint64_t)max_step : UINT64_MAX, 0,
                                       &ck, &e);
        }
        store_close(st);
        if (rc)
            return cli_runtime_error(&e);
        if (step_word && ck.step != max_step) {
            gl_fail(&e, "run %lld has no checkpoint at step %zu (nearest before: %llu)",
                    (long long)id, max_step, (unsigned long long)ck.step);
            return cli_runtime_error(&e);
        }
        snprintf(ckpt_path, sizeof ckpt_path, "%s", ck.path);
        src = ckpt_path;
    } else if (step_word) {
        return cli_usage_error("--step: only with a RUN id, not a checkpoint file");
    }
    st_file f;
    checkpoint_info info;
    if (cli_open_checkpoint(src, &f, &info, &e))
        return cli_runtime_error(&e);
    model m;
    model_config mc = info.model;
    size_t ntensors = 0;
    int rc = model_init(&m, &mc, 1, &e);
    if (!rc) {
        rc = checkpoint_load_weights(&f, src, &m, &e);
        if (!rc)
            rc = checkpoint_save(out, &m, NULL, info.step, info.data, NULL, 0, NULL, &e);
        ntensors = m.ntensors;
        model_free(&m);
    }
    st_free(&f);
    if (rc)
        return cli_runtime_error(&e);
    printf("exported %s step %zu (%s, %zu tensors) to %s\n", src, info.step,
           gate_mode_name(mc.mode), ntensors, out);
    return 0;
}
