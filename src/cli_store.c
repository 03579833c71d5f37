/* cli_store: the commands that read or tidy stored sessions: ls (with its
 * filters), show, replay (the screen, or a text summary without a terminal)
 * and export; tag and note (labels added afterwards) and rm (runs, their
 * rows and their checkpoint files), with the argument helpers they share
 * with `resume` and `eval` (--db, RUN ids, a run's checkpoint). Like cli.c
 * they print; errors go through cli_usage_error / cli_runtime_error. */
#include "cli.h"
#include "cli_plot.h"
#include "plot_screen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* --since WHEN as the ISO-8601 UTC text runs.started_at is compared with:
 * Nd, Nh or Nm (days, hours, minutes before now), YYYY-MM-DD (midnight UTC)
 * or YYYY-MM-DDTHH:MM[:SS] (UTC). 0, or -1 with a message. */
static int parse_since(const char *v, char out[32], gl_error *e)
{
    size_t len = v ? strlen(v) : 0;
    if (!len)
        return gl_fail(e, "--since: missing value (e.g. 2d, 3h, 30m or 2026-12-01)");
    char unit = v[len - 1];
    if (len >= 2 && (unit == 'd' || unit == 'h' || unit == 'm') &&
        strspn(v, "0123456789") == len - 1) {
        unsigned long long n = strtoull(v, NULL, 10);
        if (n > 100000)
            return gl_fail(e, "--since %s: too far back", v);
        double secs = (double)n * (unit == 'd' ? 86400.0 : unit == 'h' ? 3600.0 : 60.0);
        time_t t = time(NULL) - (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        return 0;
    }
    struct tm tm = {0};
    int used = 0;
    int n = sscanf(v, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &used);
    if (n == 3 && v[used] == 'T') {
        int u2 = 0;
        n = sscanf(v + used, "T%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &u2);
        if (n == 2) {
            used += u2;
            if (v[used] == ':' && sscanf(v + used, ":%2d%n", &tm.tm_sec, &u2) == 1)
                used += u2;
            else if (v[used] == ':')
                n = 0;
        }
        if (n == 2 && v[used] == 'Z')
            used++;
        n = n == 2 ? 3 : 0;
    }
    if (n != 3 || v[used] != '\0' || len < 10)
        return gl_fail(e, "--since %s: not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] UTC) or "
                          "an age (2d, 3h, 30m)", v);
    struct tm want = tm;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    /* a day or time that does not exist (2026-02-30, 25:00) comes back changed */
    if (back.tm_year + 1900 != want.tm_year || back.tm_mon + 1 != want.tm_mon ||
        back.tm_mday != want.tm_mday || back.tm_hour != want.tm_hour ||
        back.tm_min != want.tm_min || back.tm_sec != want.tm_sec)
        return gl_fail(e, "--since %s: no such date or time", v);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &back);
    return 0;
}

static void fmt_bytes(char *buf, size_t n, double b)
{
    if (b >= 1073741824.0)
        snprintf(buf, n, "%.2f GB", b / 1073741824.0);
    else if (b >= 1048576.0)
        snprintf(buf, n, "%.1f MB", b / 1048576.0);
    else if (b >= 1024.0)
        snprintf(buf, n, "%.1f kB", b / 1024.0);
    else
        snprintf(buf, n, "%.0f B", b);
}

static int ls_row(void *ctx, const store_ls_row *r)
{
    size_t *count = ctx;
    char val[32], ppl[32], best[32], name[200];
    fmt_num(val, sizeof val, "%.4f", r->final_val_loss);
    fmt_num(ppl, sizeof ppl, "%.3f", r->final_val_ppl);
    fmt_num(best, sizeof best, "%.4f", r->best_val_loss);
    /* a named session's runs read NAME/arm */
    if (r->session_name[0])
        snprintf(name, sizeof name, "%s/%s", r->session_name, r->name);
    else
        snprintf(name, sizeof name, "%s", r->name);
    printf("%5lld %7lld %3u  %-20s %-11s %-8s %7llu  %8s %9s %8s  %s%s%s\n", (long long)r->id,
           (long long)r->session, r->arm, name, r->mode, r->status,
           (unsigned long long)r->steps, val, ppl, best, r->started, r->tags[0] ? "  " : "",
           r->tags);
    (*count)++;
    return 0;
}

/* `gatelab ls [--db PATH] [--session S] [--status ST] [--mode M]
 * [--tag KEY[=VALUE]] [--since WHEN]`: S is a session id or name. */
int cli_ls(int argc, char **argv)
{
    const char *db = "sessions/gatelab.db";
    store_ls_filter f = {0};
    char since[32], tag_key[64];
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(o, "--db") == 0 || strcmp(o, "--session") == 0 ||
                    strcmp(o, "--status") == 0 || strcmp(o, "--mode") == 0 ||
                    strcmp(o, "--tag") == 0 || strcmp(o, "--since") == 0;
        if (!takes)
            return cli_usage_error(o[0] == '-' ? "%s: unknown option for ls"
                                               : "ls: unexpected argument '%s'", o);
        if (!v || !*v)
            return cli_usage_error("%s: missing value", o);
        i++;
        if (strcmp(o, "--db") == 0) {
            db = v;
        } else if (strcmp(o, "--session") == 0) {
            if (v[strspn(v, "0123456789")] == '\0') {
                size_t id;
                if (args_size(o, v, 1, INT64_MAX, &id, &e))
                    return cli_usage_error("%s", e.msg);
                f.session = (int64_t)id;
            } else {
                f.session_name = v;
            }
        } else if (strcmp(o, "--status") == 0) {
            run_status rs;
            if (run_status_parse(v, &rs))
                return cli_usage_error("--status %s: unknown status (running paused finished "
                                       "stopped diverged crashed failed)", v);
            f.status = v;
        } else if (strcmp(o, "--mode") == 0) {
            gate_mode gm;
            if (gate_mode_parse(v, &gm))
                return cli_usage_error("--mode %s: unknown gate mode (%s)", v, gate_mode_list());
            f.mode = v;
        } else if (strcmp(o, "--tag") == 0) {
            const char *eq = strchr(v, '=');
            size_t klen = eq ? (size_t)(eq - v) : strlen(v);
            if (!klen || klen >= sizeof tag_key)
                return cli_usage_error("--tag %s: expected KEY or KEY=VALUE (a key of 1..%zu "
                                       "bytes)", v, sizeof tag_key - 1);
            memcpy(tag_key, v, klen);
            tag_key[klen] = '\0';
            f.tag_key = tag_key;
            f.tag_value = eq ? eq + 1 : NULL;
        } else {
            if (parse_since(v, since, &e))
                return cli_usage_error("%s", e.msg);
            f.since = since;
        }
    }
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    printf("%5s %7s %3s  %-20s %-11s %-8s %7s  %8s %9s %8s  %s\n", "run", "session", "arm",
           "name", "mode", "status", "steps", "val", "ppl", "best", "started");
    size_t count = 0;
    int rc = store_list_runs_filtered(st, &f, ls_row, &count, &e);
    if (!rc) {
        int64_t dbb, walb;
        char total[32], file[32], wal[32];
        store_file_size(st, &dbb, &walb);
        fmt_bytes(total, sizeof total, (double)(dbb + walb));
        fmt_bytes(file, sizeof file, (double)dbb);
        fmt_bytes(wal, sizeof wal, (double)walb);
        /* not a leading number: scripts count the lines that start with a run id */
        printf("database %s: %s (file %s + wal %s) | %zu run%s listed\n", db, total, file, wal,
               count, count == 1 ? "" : "s");
    }
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

/* one row of the co-adaptation trace (issue 16), under its heading; "-"
 * where a value is absent (no drift at the first evaluation, no index
 * without a step-0 evaluation) */
static int show_absorption(void *ctx, const store_absorption_row *r)
{
    int *any = ctx;
    if (!*any)
        printf("co-adaptation trace (F1 and mass kept of the mask vs the oracle, chance F1, "
               "oracle drift since the last evaluation, absorption index (F1-F1_0)/(1-F1_0)):\n");
    *any = 1;
    char where[24], drift[24], index[24];
    if (r->layer < 0)
        snprintf(where, sizeof where, "model");
    else
        snprintf(where, sizeof where, "layer %d", r->layer);
    snprintf(drift, sizeof drift, isnan(r->oracle_drift) ? "-" : "%.4f", r->oracle_drift);
    snprintf(index, sizeof index, isnan(r->index) ? "-" : "%.4f", r->index);
    printf("  step %6llu | %-8s | f1 %.4f | mass %.4f | chance %.4f | drift %s | index %s\n",
           (unsigned long long)r->step, where, r->f1, r->mass_kept, r->chance, drift, index);
    return 0;
}

/* One pair of the learned_vs_random views, as the database compares it. */
static int print_comparison(void *ctx, const store_comparison_row *c)
{
    (void)ctx;
    printf("  %s (seed %lld): runs %lld / %lld", c->what, (long long)c->seed,
           (long long)c->learned_run, (long long)c->random_run);
    if (c->dense_run)
        printf(" / dense %lld", (long long)c->dense_run);
    if (!c->has_step || isnan(c->learned_ppl) || isnan(c->random_ppl)) {
        printf(" | %s\n", c->status);
        return 0;
    }
    printf(" | step %llu: ppl %.3f vs %.3f", (unsigned long long)c->step, c->learned_ppl,
           c->random_ppl);
    if (!isnan(c->dense_ppl))
        printf(" vs dense %.3f", c->dense_ppl);
    printf(" | benefit %+.3f ppl", c->benefit);
    if (!isnan(c->relative))
        printf(" = %.2f of random-dense", c->relative);
    else if (c->note[0])
        printf(" (relative: %s)", c->note);
    printf(" | %s\n", c->status);
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
    store_labels lb;
    if (store_run_labels(st, id, &lb, &e)) {
        store_run_row_free(&r);
        store_close(st);
        return cli_runtime_error(&e);
    }
    if (lb.session_name[0])
        printf("name %s/%s\n", lb.session_name, r.name);
    if (lb.tags[0])
        printf("tags %s\n", lb.tags);
    if (lb.session_note[0])
        printf("session note: %s\n", lb.session_note);
    if (lb.run_note[0])
        printf("note: %s\n", lb.run_note);
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
    if (!rc) {
        printf("routing comparisons (learned vs random at one step):\n");
        rc = store_list_comparisons(st, 0, id, print_comparison, NULL, &e);
    }
    if (!rc) {
        int any = 0;
        rc = store_list_absorption(st, id, 0, show_absorption, &any, &e);
    }
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

/* ---- tag, note: labels added afterwards ---- */

/* RUN and the words after it, with --db taken out; the database may be
 * written by a live session meanwhile: each call is one short statement
 * under store_open's busy timeout. */
static int label_words(const char *cmd, int argc, char **argv, const char **db, int64_t *id,
                       char **rest, int *nrest)
{
    *db = "sessions/gatelab.db";
    *nrest = 0;
    const char *run_word = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("--db: missing value");
            *db = argv[++i];
        } else if (!run_word) {
            if (argv[i][0] == '-')
                return cli_usage_error("%s: unknown option for %s", argv[i], cmd);
            run_word = argv[i];
        } else {
            rest[(*nrest)++] = argv[i];
        }
    }
    return cli_parse_run_id(cmd, run_word, id);
}

/* `gatelab tag RUN KEY=VALUE [KEY=VALUE...] [--db PATH]` */
int cli_tag(int argc, char **argv)
{
    const char *db;
    int64_t id;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("tag: too many arguments");
    int rc = label_words("tag", argc, argv, &db, &id, rest, &nrest);
    if (rc)
        return rc;
    if (!nrest)
        return cli_usage_error("tag: missing KEY=VALUE (gatelab tag RUN KEY=VALUE)");
    live_tag tags[60];
    gl_error e;
    for (int i = 0; i < nrest; i++)   /* every word checked before anything is written */
        if (args_parse_tag(rest[i], &tags[i], &e))
            return cli_usage_error("tag: %s", e.msg);
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    store_run_row row;
    rc = store_get_run(st, id, &row, &e);
    if (!rc)
        store_run_row_free(&row);
    for (int i = 0; !rc && i < nrest; i++)
        rc = store_tag_set(st, id, tags[i].key, tags[i].value, &e);
    store_close(st);
    if (rc)
        return cli_runtime_error(&e);
    for (int i = 0; i < nrest; i++)
        printf("run %lld: tag %s=%s\n", (long long)id, tags[i].key, tags[i].value);
    return 0;
}

/* `gatelab note RUN TEXT... [--db PATH]`: the words joined by spaces
 * replace the run's note; an empty TEXT ("") clears it. */
int cli_note(int argc, char **argv)
{
    const char *db;
    int64_t id;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("note: too many arguments");
    int rc = label_words("note", argc, argv, &db, &id, rest, &nrest);
    if (rc)
        return rc;
    if (!nrest)
        return cli_usage_error("note: missing TEXT (gatelab note RUN TEXT)");
    char *text = cli_join_words(rest[0], nrest - 1, rest + 1);
    gl_error e;
    if (text[0] && args_check_label("note", text, 1000, &e)) {
        free(text);
        return cli_usage_error("%s", e.msg);
    }
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st) {
        free(text);
        return cli_runtime_error(&e);
    }
    store_run_row row;
    rc = store_get_run(st, id, &row, &e);
    if (!rc) {
        store_run_row_free(&row);
        rc = store_note_set(st, id, text[0] ? text : NULL, &e);
    }
    store_close(st);
    if (!rc)
        printf("run %lld: note %s\n", (long long)id, text[0] ? text : "cleared");
    free(text);
    return rc ? cli_runtime_error(&e) : 0;
}

/* ---- rm: runs, their rows and their checkpoint files ---- */

/* Removes dir when it is empty (rmdir refuses otherwise: nothing else is
 * ever deleted), then its parent the same way: the armI-NAME directory and
 * its session-N directory. */
static size_t remove_empty_dirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    size_t removed = 0;
    for (int level = 0; level < 2; level++) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = '\0';
        if (rmdir(dir) != 0)
            break;
        removed++;
    }
    return removed;
}

/* `gatelab rm RUN|--session S [--dry-run] [--db PATH]` */
int cli_rm(int argc, char **argv)
{
    const char *db = "sessions/gatelab.db", *run_word = NULL, *session = NULL;
    int dry = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--db") == 0 || strcmp(f, "--session") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'd' ? &db : &session) = argv[++i];
        } else if (strcmp(f, "--dry-run") == 0) {
            dry = 1;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for rm", f);
        } else if (!run_word) {
            run_word = f;
        } else {
            return cli_usage_error("rm: unexpected argument '%s'", f);
        }
    }
    int64_t id = 0;
    if (run_word && session)
        return cli_usage_error("rm: give RUN or --session S, not both");
    if (!session) {
        int rc = cli_parse_run_id("rm", run_word, &id);
        if (rc)
            return rc;
    }
    gl_error e;
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    store_rm_plan p;
    int rc = store_rm_plan_make(st, id, session, &p, &e);
    if (rc) {
        store_rm_plan_free(&p);
        store_close(st);
        /* no such run or session, or a live one: the input is wrong */
        return rc > 0 ? cli_usage_error("rm: %s", e.msg) : cli_runtime_error(&e);
    }
    /* the files' sizes before anything goes */
    double bytes = 0.0;
    size_t files = 0;
    for (size_t i = 0; i < p.npaths; i++) {
        struct stat sb;
        if (stat(p.paths[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            bytes += (double)sb.st_size;
            files++;
        }
    }
    if (!dry)
        rc = store_rm_apply(st, &p, &e);
    store_close(st);
    if (rc) {
        store_rm_plan_free(&p);
        return rc > 0 ? cli_usage_error("rm: %s", e.msg) : cli_runtime_error(&e);
    }
    /* rows first, files after: a file that cannot go is reported, and no row
     * ever names a file that is gone */
    size_t dirs = 0, kept = 0;
    for (size_t i = 0; !dry && i < p.npaths; i++) {
        struct stat sb;
        if (lstat(p.paths[i], &sb) != 0)
            continue;   /* already gone: nothing to free */
        if (!S_ISREG(sb.st_mode) || !checkpoint_is_gatelab(p.paths[i])) {
            fprintf(stderr, "gatelab: rm: %s is not a gatelab checkpoint; left in place\n",
                    p.paths[i]);
            bytes -= S_ISREG(sb.st_mode) ? (double)sb.st_size : 0.0;
            files -= S_ISREG(sb.st_mode) ? 1 : 0;
            kept++;
            continue;
        }
        if (unlink(p.paths[i]) != 0) {
            fprintf(stderr, "gatelab: rm: cannot delete %s: %s\n", p.paths[i], strerror(errno));
            bytes -= (double)sb.st_size;
            files--;
            kept++;
            continue;
        }
        dirs += remove_empty_dirs(p.paths[i]);
    }
    int64_t rows = 0;
    char what[64];
    if (session)
        snprintf(what, sizeof what, "session %s (%zu run%s)", session, p.nruns,
                 p.nruns == 1 ? "" : "s");
    else
        snprintf(what, sizeof what, "run %lld", (long long)id);
    printf("%s %s:\n  rows:", dry ? "rm --dry-run: would delete" : "rm: deleted", what);
    for (size_t i = 0; i < p.ncounts; i++) {
        printf("%s %s %lld", i ? "," : "", p.counts[i].table, (long long)p.counts[i].rows);
        rows += p.counts[i].rows;
    }
    char b[32];
    fmt_bytes(b, sizeof b, bytes);
    printf("\n  files: %zu checkpoint%s, %s", files, files == 1 ? "" : "s", b);
    if (!dry && dirs)
        printf(", %zu empty director%s removed", dirs, dirs == 1 ? "y" : "ies");
    printf("\n%s %lld rows and %zu files (%s)%s\n", dry ? "would free" : "freed",
           (long long)rows, files, b,
           dry ? "; nothing deleted (--dry-run)"
               : "; the database file keeps its size until VACUUM (sqlite3 DB VACUUM)");
    store_rm_plan_free(&p);
    return kept ? 1 : 0;
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
    if (!rc) {
        printf("routing comparisons (learned vs random at one step):\n");
        rc = store_list_comparisons(st, session, 0, print_comparison, NULL, &e);
    }
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

int cli_replay(int argc, char **argv)
{
    return cli_session_view(argc, argv, "replay", ui_replay, "a summary", replay_text);
}

/* ---- export (and eval): a run id or a checkpoint file ---- */

int cli_resolve_checkpoint(const char *cmd, const char *src, const char *step_word,
                           const char *db, char *path, size_t n, int64_t *run_out)
{
    gl_error e;
    struct stat sb;
    if (run_out)
        *run_out = 0;
    /* a run id when it is a number and no such file exists */
    if (!(src[strspn(src, "0123456789")] == 0 && stat(src, &sb) != 0)) {
        if (step_word)
            return cli_usage_error("--step: only with a RUN id, not a checkpoint file");
        snprintf(path, n, "%s", src);
        return 0;
    }
    int64_t id;
    int rc = cli_parse_run_id(cmd, src, &id);
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
        rc = store_find_checkpoint(st, id, step_word ? (uint64_t)max_step : UINT64_MAX, 0, &ck,
                                   &e);
    }
    store_close(st);
    if (rc)
        return cli_runtime_error(&e);
    if (step_word && ck.step != max_step) {
        gl_fail(&e, "run %lld has no checkpoint at step %zu (nearest before: %llu)",
                (long long)id, max_step, (unsigned long long)ck.step);
        return cli_runtime_error(&e);
    }
    snprintf(path, n, "%s", ck.path);
    if (run_out)
        *run_out = id;
    return 0;
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
    const char *csv = NULL, *session = NULL;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--out") == 0 || strcmp(f, "--db") == 0 || strcmp(f, "--step") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'o' ? &out : f[2] == 'd' ? &db : &step_word) = argv[++i];
        } else if (strcmp(f, "--csv") == 0 || strcmp(f, "--session") == 0) {
            /* the metrics as a table (cli_plot.c) */
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'c' ? &csv : &session) = argv[++i];
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for export", f);
        } else if (!src) {
            src = f;
        } else {
            return cli_usage_error("export: unexpected argument '%s'", f);
        }
    }
    if (csv) {
        if (out || step_word)
            return cli_usage_error("export --csv: --out and --step are for a checkpoint's "
                                   "weights (export RUN --out FILE.safetensors)");
        if (!src && !session)
            return cli_usage_error("export --csv: missing RUN[,RUN...] or --session S");
        return cli_export_csv(db, src, session, csv);
    }
    if (session)
        return cli_usage_error("export --session: only with --csv FILE (the weights are "
                               "exported one run at a time)");
    if (!src)
        return cli_usage_error(
            "export: missing RUN or checkpoint (gatelab export RUN|CKPT --out FILE)");
    if (!out)
        return cli_usage_error("export: missing --out FILE.safetensors");
    gl_error e;
    if (export_target_check(out, &e))
        return cli_runtime_error(&e);
    char ckpt_path[4096];
    int rc = cli_resolve_checkpoint("export", src, step_word, db, ckpt_path, sizeof ckpt_path,
                                    NULL);
    if (rc)
        return rc;
    src = ckpt_path;
    st_file f;
    checkpoint_info info;
    if (cli_open_checkpoint(src, &f, &info, &e))
        return cli_runtime_error(&e);
    model m;
    model_config mc = info.model;
    size_t ntensors = 0;
    rc = model_init(&m, &mc, 1, &e);
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

static int newest_named(void *ctx, const store_ls_row *row)
{
    *(int64_t *)ctx = row->session;
    return 1;   /* newest first: the first is the one */
}

int cli_find_session(store *st, const char *cmd, const char *word, const char *db, int64_t *out)
{
    gl_error e;
    if (word[strspn(word, "0123456789")] == '\0') {
        size_t v;
        if (args_size("SESSION", word, 1, INT64_MAX, &v, &e))
            return cli_usage_error("%s: %s", cmd, e.msg);
        store_session_row row;
        if (store_get_session(st, (int64_t)v, &row, &e))
            return cli_usage_error("%s: %s", cmd, e.msg);
        store_session_row_free(&row);
        *out = (int64_t)v;
        return 0;
    }
    store_ls_filter f = {.session_name = word};
    int64_t id = 0;
    if (store_list_runs_filtered(st, &f, newest_named, &id, &e) < 0)
        return cli_runtime_error(&e);
    if (!id)
        return cli_usage_error("%s: no session %s in %s", cmd, word, db);
    *out = id;
    return 0;
}
