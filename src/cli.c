/* cli: argument parsing, the dispatch and the commands run (the screen on
 * a terminal, progress lines otherwise), resume and eval; the commands that
 * read stored sessions (ls, show, replay, export) are cli_store.c.
 * Every bad input gets one line on stderr naming the input and the problem,
 * and a non-zero exit. */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "cli_help.h"
#include "cli_plot.h"
#include "plot_screen.h"
#include "common.h"
#include "data.h"
#include "dp.h"
#include "distill.h"
#include "gate.h"
#include "model.h"
#include "placement.h"
#include "progress.h"
#include "runspec.h"
#include "safetensors.h"
#include "distill_cli.h"
#include "experiment.h"
#include "live.h"
#include "store.h"
#include "trainer.h"
#include "ui.h"
#include "vec.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gatelab: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_runtime_error(const gl_error *e)
{
    fprintf(stderr, "gatelab: %s\n", e->msg);
    return EXIT_RUNTIME;
}

/* ---- run ---- */

#define MAX_SCRIPT 256

typedef struct {
    train_config tc;
    const char *preset;
    gate_mode modes[LIVE_MAX_ARMS];
    live_ffn ffn[LIVE_MAX_ARMS];
    size_t narms, experts;
    const char *db_path, *out_dir;
    int telemetry;
    int headless;                  /* --headless: no screen even on a terminal */
    int64_t compare[UI_MAX_GHOSTS];/* --compare: ghost runs for the screen */
    size_t ncompare;
    scripted_command script[MAX_SCRIPT];
    size_t nscript;
    /* the arguments that define the runs, kept for `resume` */
    char *run_argv[128];
    int run_argc;
    /* --name, --note (the session's) and --tag (every run's): not kept in
     * run_argv, since resume continues a run that has them already */
    const char *name, *note;
    live_tag tags[LIVE_MAX_TAGS];
    size_t ntags;
    size_t keep_checkpoints, heatmap_every;   /* kept in run_argv: resume keeps them */
    size_t dp;                     /* --dp N: not kept (a resume is one process) */
} run_args;

/* --compare RUN[,RUN]: stored runs drawn as ghost curves on the screen */
static int parse_compare(const char *v, run_args *ra, gl_error *e)
{
    char buf[256];
    if (!v || !*v)
        return gl_fail(e, "--compare: missing value (RUN[,RUN], run ids from gatelab ls)");
    if (strlen(v) >= sizeof buf)
        return gl_fail(e, "--compare: too long");
    strcpy(buf, v);
    if (v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,"))
        return gl_fail(e, "--compare %s: empty run id in the list", v);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (ra->ncompare == UI_MAX_GHOSTS)
            return gl_fail(e, "--compare %s: at most %d runs", v, UI_MAX_GHOSTS);
        size_t id;
        if (args_size("--compare", w, 1, INT64_MAX, &id, e))
            return -1;
        ra->compare[ra->ncompare++] = (int64_t)id;
    }
    return 0;
}

/* Shapes whose arms could never fit are refused before anything is written
 * (rather than an out-of-memory abort after the session row exists). */
static int check_memory(const run_args *ra, gl_error *e)
{
    const train_config *tc = &ra->tc;
    const model_config *c = &tc->model;
    size_t narms = ra->narms ? ra->narms : 1;
    size_t per_arm = tc->threads / narms ? tc->threads / narms : 1;
    double need = 0.0;
    for (size_t i = 0; i < narms; i++) {
        model_config mc = *c;
        mc.experts = ra->ffn[i] == LIVE_FFN_DENSE ? 0 : ra->experts;
        need += model_memory_bytes(&mc, per_arm);
    }
    double have = args_memory_limit();
    if (need <= have)
        return 0;
    return gl_fail(e, "--dim %zu --layers %zu --heads %zu --ctx %zu --batch %zu: %zu arm%s need "
                      "about %.1f GiB (weights, gradients, Adam moments, activations), more "
                      "than the %.1f GiB of memory here", c->d, c->layers, c->heads, c->T,
                   c->batch, narms, narms == 1 ? "" : "s", need / 1073741824.0,
                   have / 1073741824.0);
}

static int parse_run(int argc, char **argv, run_args *ra, gl_error *e)
{
    memset(ra, 0, sizeof *ra);
    train_config *tc = &ra->tc;
    if (args_preset_defaults(argc, argv, &ra->preset, tc, e))
        return -1;
    tc->threads = args_default_threads();
    ra->db_path = "sessions/gatelab.db";
    ra->telemetry = 1;
    ra->modes[0] = GATE_SOFT;
    ra->modes[1] = GATE_RANDOM;
    ra->modes[2] = GATE_DENSE;
    ra->narms = 3;
    ra->experts = 4;
    model_config *mc = &tc->model;
    args_set set = {.eval_every_min = 0};
    int save_set = 0;

    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, takes = 1, keep = 1;
        if (strcmp(f, "--preset") == 0) {
            /* handled above */
        } else if (strcmp(f, "--arms") == 0) {
            rc = args_parse_arms(v, ra->modes, ra->ffn, &ra->narms, e);
            keep = 0;
        } else if (strcmp(f, "--at") == 0) {
            if (!v)
                return gl_fail(e, "--at: missing value (STEP:COMMAND[:ARG][@ARM])");
            if (ra->nscript == MAX_SCRIPT)
                return gl_fail(e, "--at: at most %d scripted commands", MAX_SCRIPT);
            rc = command_parse(v, &ra->script[ra->nscript++], e);
            keep = 0;
        } else if (strcmp(f, "--db") == 0) {
            if (!v || !*v)
                return gl_fail(e, "--db: missing value");
            ra->db_path = v;
            keep = 0;
        } else if (strcmp(f, "--no-telemetry") == 0) {
            ra->telemetry = 0;
            takes = 0;
            keep = 0;
        } else if (strcmp(f, "--out") == 0) {
            if (!v || !*v)
                return gl_fail(e, "--out: missing value");
            if (strlen(v) > 100)
                return gl_fail(e, "--out %.40s...: path longer than 100 bytes", v);
            ra->out_dir = v;
            keep = 0;
        } else if (strcmp(f, "--seed") == 0 || strcmp(f, "--moe-aux") == 0 ||
                   strcmp(f, "--save-every") == 0) {
            /* run options of `run` alone (the run-spec table's rows) */
            rc = runspec_parse(runspec_find_flag(f), v, tc, e);
            save_set |= strcmp(f, "--save-every") == 0;
        } else if (strcmp(f, "--experts") == 0) {
            /* per arm: the +moe arms get it (live.c) */
            rc = runspec_parse_into(runspec_find_flag(f), v, &ra->experts, e);
        } else if (strcmp(f, "--headless") == 0) {
            ra->headless = 1;
            takes = 0;
            keep = 0;
        } else if (strcmp(f, "--compare") == 0) {
            rc = parse_compare(v, ra, e);
            keep = 0;
        } else if ((rc = args_label_option(f, v, &ra->name, &ra->note, ra->tags, &ra->ntags,
                                           e)) != 0) {
            rc = rc < 0 ? -1 : 0;   /* --name, --note, --tag: the session's, not resume's */
            keep = 0;
        } else if (strcmp(f, "--dp") == 0) {
            rc = args_size(f, v, 1, 256, &ra->dp, e);
            keep = 0;
        } else if (strcmp(f, "--keep-checkpoints") == 0) {
            rc = args_size(f, v, 1, 1000000, &ra->keep_checkpoints, e);
        } else if (strcmp(f, "--heatmap-every") == 0) {
            rc = args_size(f, v, 1, 1000000, &ra->heatmap_every, e);
        } else if ((rc = args_model_option(f, v, tc, &set, e)) != 0) {
            rc = rc < 0 ? -1 : 0;   /* one of the run options args.c shares */
        } else if (f[0] == '-') {
            return gl_fail(e, "%s: unknown option (see gatelab --help)", f);
        } else {
            return gl_fail(e, "run: unexpected argument '%s' (see gatelab --help)", f);
        }
        if (rc)
            return -1;
        if (keep && ra->run_argc + 2 <= (int)(sizeof ra->run_argv / sizeof ra->run_argv[0])) {
            ra->run_argv[ra->run_argc++] = argv[i];
            if (takes)
                ra->run_argv[ra->run_argc++] = argv[i + 1];
        }
        i += takes;
    }
    args_finish_defaults(tc, &set);
    /* the default period would leave a short run with only its final save */
    if (!save_set && tc->save_every >= tc->steps)
        tc->save_every = 0;
    if (model_config_check(mc, e) || check_memory(ra, e))
        return -1;
    /* the database and checkpoint metadata keep the path as UTF-8 text, and
     * resume reads it back from there */
    if (tc->data_path && !args_is_utf8(tc->data_path))
        return gl_fail(e, "--data %s: the path is not valid UTF-8; rename the file",
                       tc->data_path);
    return ra->out_dir ? args_check_out_dir(ra->out_dir, e) : 0;
}

/* ---- headless observer: progress lines and the summary ---- */

typedef struct {
    double best, best_step_d;
    uint64_t best_step, steps;
    tel_record last_eval;
    int has_eval;
    double tok_sum;
    size_t tok_n;
    run_status status;
    char name[64];
    uint64_t at, target;           /* steps done (any record), --steps */
    int ended;                     /* a final status arrived */
    progress_pace pace;            /* from the records' own wall clock */
} arm_seen;

typedef struct {
    arm_seen arms[LIVE_MAX_ARMS];
    size_t narms;
    int out_errno;                 /* stdout failed (EPIPE: the reader is gone), or 0 */
    progress_bar bar;              /* stderr, on a terminal only */
    int bar_ready;                 /* bar initialised (at the first record printed) */
    int quiet;                     /* the screen is up: keep what the summary needs, print
                                      nothing (a detach prints from then on) */
    const char *db_path;           /* for the line a detach prints */
} headless;

/* The session's share done (an ended arm has no work left) and the time
 * until its slowest running arm finishes at its recent pace (NaN: unknown). */
static double headless_progress(const headless *h, double *eta)
{
    double done = 0.0, total = 0.0;
    *eta = 0.0;
    for (size_t i = 0; i < h->narms; i++) {
        const arm_seen *a = &h->arms[i];
        uint64_t at = a->at < a->target ? a->at : a->target;
        total += (double)a->target;
        done += a->ended ? (double)a->target : (double)at;
        if (!a->ended) {
            double t = progress_eta(&a->pace, a->target - at);
            *eta = isnan(t) || isnan(*eta) ? NAN : fmax(*eta, t);
        }
    }
    return total > 0.0 ? done / total : 0.0;
}

/* Progress lines nobody can read any more (a closed pipe, a full disk) are
 * no reason to train on: the first failed write is kept, and on_tick asks
 * the session to stop. */
static void headless_flush(headless *h)
{
    if (h->out_errno)
        return;
    if (fflush(stdout) == EOF || ferror(stdout))
        h->out_errno = errno ? errno : EIO;
}

static int headless_tick(void *ctx, live *lv)
{
    (void)lv;
    return ((headless *)ctx)->out_errno != 0;
}

/* Exit status of a session whose stdout failed: 141 (128 + SIGPIPE, what the
 * shell shows for a process a closed pipe kills) when the reader went away,
 * 1 for any other error. */
static int stdout_status(int err)
{
    return err == EPIPE ? 128 + SIGPIPE : EXIT_RUNTIME;
}

/* What the summary needs of an evaluation or a status. */
static void headless_note(arm_seen *a, const tel_record *r)
{
    if (r->kind == REC_EVAL) {
        a->last_eval = *r;
        a->has_eval = 1;
        a->steps = r->step;
        if (r->u.eval.val_loss < a->best) {
            a->best = r->u.eval.val_loss;
            a->best_step = r->step;
        }
        if (r->u.eval.tokens_per_s > 0) {
            a->tok_sum += r->u.eval.tokens_per_s;
            a->tok_n++;
        }
    } else if (r->kind == REC_STATUS) {
        a->status = (run_status)r->u.status.status;
        a->steps = r->step;
        a->ended = a->status != RUN_RUNNING && a->status != RUN_PAUSED;
    }
}

static void headless_record(void *ctx, live *lv, const tel_record *r)
{
    headless *h = ctx;
    errno = 0;   /* what a failed write sets is what headless_flush keeps */
    if (r->arm >= LIVE_MAX_ARMS)
        return;
    arm_seen *a = &h->arms[r->arm];
    if (!h->bar_ready && !h->quiet) {
        progress_bar_init(&h->bar);
        h->bar_ready = 1;
    }
    if (r->arm >= h->narms) {
        for (size_t i = h->narms; i <= r->arm; i++) {
            h->arms[i].best = INFINITY;
            h->arms[i].status = RUN_RUNNING;
            snprintf(h->arms[i].name, sizeof h->arms[i].name, "%s", live_arm_label(lv, i));
            /* fixed before the arm's thread started, like its name */
            h->arms[i].target = live_arm_target(lv, i);
        }
        h->narms = r->arm + 1;
    }
    const char *name = a->name;
    if (r->kind == REC_STEP || r->kind == REC_EVAL ||
        (r->kind == REC_EVENT && r->u.event.kind == EV_START)) {
        a->at = r->step;
        progress_pace_feed(&a->pace, r->step, r->wall_ms / 1000.0);
    }
    if (h->quiet) {
        headless_note(a, r);
        return;
    }
    /* the bar shares the terminal with these lines: off while one prints */
    if (r->kind == REC_EVAL || r->kind == REC_EVENT || r->kind == REC_CHECKPOINT ||
        r->kind == REC_RUN_BEGIN)
        progress_bar_clear(&h->bar);
    switch ((rec_kind)r->kind) {
    case REC_EVAL: {
        headless_note(a, r);
        cli_print_eval_head(r, name);
        double eta, frac = headless_progress(h, &eta);
        char done[48];
        progress_fmt(done, sizeof done, frac, eta);
        printf(" | oracle mass %.3f", r->u.eval.oracle_mass);
        /* NaN: the mode in force has no gate (dense, stochastic, oracle) */
        if (!isnan(r->u.eval.gate_grad_norm))
            printf(" | gate grad %.3g", r->u.eval.gate_grad_norm);
        printf(" | %.0f tok/s | %s\n", r->u.eval.tokens_per_s, done);
        break;
    }
    case REC_EVENT: {
        event_kind k = (event_kind)r->u.event.kind;
        if (k == EV_START) {
            int64_t run = live_run_id(lv, r->arm);
            printf("arm %u %s", r->arm, name);
            if (run > 0)
                printf(" | run %lld", (long long)run);
            printf(" | %s\n", r->u.event.detail);
        } else if (k == EV_ERROR || k == EV_DIVERGED) {
            fprintf(stderr, "gatelab: arm %s: %s at step %llu: %s\n", name, event_kind_name(k),
                    (unsigned long long)r->step, r->u.event.detail);
        } else if (k != EV_CHECKPOINT) {
            printf("event step %llu | %s | %s %s", (unsigned long long)r->step, name,
                   event_kind_name(k), r->u.event.detail);
            /* no space bar here: an open-ended pause ends through the database */
            if (k == EV_PAUSE && !strstr(r->u.event.detail, ", for ") && live_session(lv) > 0)
                printf(" | until gatelab send %lld resume@%u", (long long)live_session(lv),
                       r->arm);
            printf("\n");
        }
        break;
    }
    case REC_CHECKPOINT:
        printf("checkpoint %s%s\n", r->u.checkpoint.dropped ? "dropped " : "",
               r->u.checkpoint.path);
        break;
    case REC_STATUS:
        headless_note(a, r);
        break;
    case REC_RUN_BEGIN:
        printf("arm %u %s | forked from arm %u at step %llu\n", r->arm, live_arm_label(lv, r->arm),
               r->u.run.parent_arm, (unsigned long long)r->step);
        break;
    default:
        break;
    }
    headless_flush(h);
    int all_ended = h->narms > 0;
    for (size_t i = 0; i < h->narms; i++)
        all_ended &= h->arms[i].ended;
    if (all_ended) {
        progress_bar_clear(&h->bar);
    } else if (!h->out_errno) {
        double eta, frac = headless_progress(h, &eta);
        char label[48];
        snprintf(label, sizeof label, "%zu arm%s", h->narms, h->narms == 1 ? "" : "s");
        progress_bar_draw(&h->bar, frac, eta, label);
    }
}

static void headless_summary(headless *h, live_result *res)
{
    (void)res;
    progress_bar_clear(&h->bar);
    for (size_t i = 0; i < h->narms; i++) {
        const arm_seen *a = &h->arms[i];
        printf("summary: arm %s | %s | %llu steps", a->name, run_status_name(a->status),
               (unsigned long long)a->steps);
        if (a->has_eval)
            printf(" | final val %.4f ppl %.3f | best val %.4f at step %llu",
                   a->last_eval.u.eval.val_loss, a->last_eval.u.eval.val_ppl, a->best,
                   (unsigned long long)a->best_step);
        if (a->tok_n)
            printf(" | %.0f tok/s", a->tok_sum / (double)a->tok_n);
        printf("\n");
    }
}

/* ---- detach (live_detach.c): the line that says where the session went ---- */

static void say_detached(const char *why, const char *where, int64_t session, long pid,
                         const char *log, const char *db)
{
    if (session > 0)
        fprintf(stderr, "gatelab: %s: session %lld trains on %s (process %ld); output: %s; "
                        "re-attach: gatelab watch %lld --db %s\n",
                why, (long long)session, where, pid, log, (long long)session, db);
    else
        fprintf(stderr, "gatelab: %s: the session trains on %s (process %ld); output: %s\n",
                why, where, pid, log);
    fflush(stderr);
}

/* A hangup without the screen: the bar's terminal is gone, and so is what
 * failed writing to it. */
static void headless_detach(void *ctx, live *lv, int how, const char *log)
{
    headless *h = ctx;
    if (how != LIVE_DETACH_HANGUP)
        return;
    progress_bar_clear(&h->bar);
    h->bar.tty = 0;
    h->out_errno = 0;
    say_detached("SIGHUP", "without its terminal", live_session(lv), (long)getpid(), log, h->db_path);
}

/* The screen with the headless printer beside it, quiet, so that a session
 * that detaches goes on printing progress lines (to its log) and ends with
 * the whole summary. */
typedef struct {
    live_observer screen;
    headless *h;
    ui_live *ui;
} screen_tee;

static void tee_record(void *ctx, live *lv, const tel_record *r)
{
    screen_tee *t = ctx;
    t->screen.on_record(t->screen.ctx, lv, r);
    t->h->quiet = 1;
    headless_record(t->h, lv, r);
    t->h->quiet = 0;
}

static int tee_tick(void *ctx, live *lv)
{
    screen_tee *t = ctx;
    return t->screen.on_tick(t->screen.ctx, lv);
}

static void tee_detach(void *ctx, live *lv, int how, const char *log)
{
    screen_tee *t = ctx;
    if (how == LIVE_DETACH_HANGUP) {
        /* the terminal is back as it was (if it is still there), then the
         * line, before the output moves */
        ui_live_stop(t->ui);
        say_detached("SIGHUP", "without its terminal", live_session(lv), (long)getpid(), log, t->h->db_path);
    } else {
        /* the child: the screen is the parent's to close; a fatal error
         * here must not draw it into the log */
        gl_set_fatal_hook(NULL);
    }
}

/* After the screen closes: the same summary lines headless runs end with. */
static void screen_summary(const ui_state *st)
{
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        printf("summary: arm %s | %s | %llu steps", a->name, run_status_name(a->status),
               (unsigned long long)a->step);
        if (a->val.count)
            printf(" | final val %.4f ppl %.3f | best val %.4f at step %llu", a->val.last,
                   exp(a->val.last), a->val.min, (unsigned long long)a->val.min_step);
        if (!isnan(a->eval_tok_s) && a->eval_tok_s > 0)
            printf(" | %.0f tok/s", a->eval_tok_s);
        printf("\n");
    }
}

char *cli_join_words(const char *head, int argc, char **argv)
{
    size_t n = strlen(head) + 1;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = xmalloc(n);
    strcpy(s, head);
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static int exit_status(const live_result *res)
{
    if (res->signal)
        return 128 + res->signal;
    return res->diverged || res->failed ? EXIT_RUNTIME : 0;
}

/* The MPI job (include/world.h) as cli_main was given it, handed to the
 * commands that spread over its ranks (run, resume, experiment). Ranks
 * other than 0 print nothing of their own (rank 0 speaks for the session):
 * their stdout and stderr go to /dev/null, and what only they know (a
 * failure of their own) goes to rank_err, the stderr mpirun gave them. */
typedef struct {
    const world *w;     /* NULL: a job of one */
    FILE *rank_err;     /* ranks other than 0 */
} cli_job;

/* Under mpirun rank 0's stdin and stdout are mpirun's pipes; the person is
 * at the controlling terminal, /dev/tty. Rank 0 is not in its foreground
 * process group (mpirun is), so it makes its own group the foreground one
 * (SIGTTOU ignored for that: a background tcsetpgrp would stop it) and
 * gives it back at the end (cli_tty_release). mpirun must not read the
 * terminal meanwhile: only with `mpirun --stdin none` (rank 0's stdin is
 * then /dev/null, not mpirun's pipe) does rank 0 take it. NULL: no terminal
 * (a batch job) or mpirun's stdin pipe: the session runs headless. */
static FILE *cli_tty;
static pid_t cli_tty_fg = -1;

static FILE *cli_tty_open(void)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    /* mpirun forwards its stdin to rank 0 through a pipe unless told
     * --stdin none; it would then read the terminal too, and stop there
     * (SIGTTIN) once rank 0 holds it */
    struct stat in;
    if (fstat(STDIN_FILENO, &in) == 0 && S_ISFIFO(in.st_mode)) {
        close(fd);
        fprintf(stderr, "gatelab: the screen under mpirun needs mpirun --stdin none; printing "
                        "progress lines (gatelab watch shows the screen from any terminal)\n");
        return NULL;
    }
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGTTOU, &ign, &old);
    pid_t fg = tcgetpgrp(fd);
    int ok = fg > 0 && (fg == getpgrp() || tcsetpgrp(fd, getpgrp()) == 0);
    sigaction(SIGTTOU, &old, NULL);
    FILE *f = ok ? fdopen(fd, "r+") : NULL;
    if (!f) {
        close(fd);
        return NULL;
    }
    cli_tty_fg = fg == getpgrp() ? -1 : fg;
    cli_tty = f;
    return f;
}

static void cli_tty_release(void)
{
    if (!cli_tty)
        return;
    if (cli_tty_fg > 0) {
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGTTOU, &ign, &old);
        tcsetpgrp(fileno(cli_tty), cli_tty_fg);   /* back to mpirun */
        sigaction(SIGTTOU, &old, NULL);
    }
    fclose(cli_tty);
    cli_tty = NULL;
}

static int run_session(run_args *ra, live_config *lc, int argc, char **argv,
                       const cli_job *job)
{
    gl_error e;
    const world *w = job->w;
    lc->world = w;
    if (w && w->rank > 0) {
        /* another rank: its share of the arms, no screen, no lines */
        live_observer quiet = {0};
        live_result res;
        if (live_run(lc, &quiet, &res, &e)) {
            if (e.msg[0])
                fprintf(job->rank_err, "gatelab: rank %d: %s\n", w->rank, e.msg);
            return EXIT_RUNTIME;
        }
        return res.signal ? 128 + res.signal : exit_status(&res);
    }
    train_config *tc = &ra->tc;
    int screen = !ra->headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    /* rank 0 of several: the screen on the controlling terminal, if any */
    FILE *tty = !screen && !ra->headless && w && w->size > 1 ? cli_tty_open() : NULL;
    screen |= tty != NULL;
    /* the data is checked before anything is written to the database */
    data_source *d = data_open(tc->data_path, tc->model.T, tc->model.seed, &e);
    if (!d)
        return cli_runtime_error(&e);
    if (tc->vocab_from_data && data_kind_of(d) == DATA_BIN)
        tc->model.V = lc->tc.model.V = data_vocab(d);
    const model_config *c = &tc->model;
    printf("gatelab %s | preset %s | %zu params | V=%zu T=%zu d=%zu L=%zu H=%zu r=%zu k=%zu | "
           "batch %zu | %zu threads\n",
           GL_VERSION, c->preset, model_count_params(c), c->V, c->T, c->d, c->layers, c->heads,
           c->r, c->k, c->batch, tc->threads);
    printf("data %s | unigram entropy %.4f nats/token | val %zu windows\n", data_describe(d),
           data_unigram_entropy(d), data_val_windows(d));
    data_close(d);
    headless h = {.narms = 0};
    errno = 0;
    headless_flush(&h);
    if (h.out_errno) {
        /* nobody reads us: better no session than one stopped at once */
        fprintf(stderr, "gatelab: stdout: %s\n", strerror(h.out_errno));
        return stdout_status(h.out_errno);
    }
    h.db_path = lc->db_path;
    live_observer obs = {.on_record = headless_record, .on_tick = headless_tick, .ctx = &h,
                         .on_detach = headless_detach};
    const live_observer printer = obs;   /* what a detached screen session goes on with */
    screen_tee tee = {.h = &h};
    /* the screen when a person is at a terminal, else progress lines */
    ui_live *ui = NULL;
    if (screen) {
        ui_options uo = {.db_path = ra->db_path, .compare = ra->compare,
                         .ncompare = ra->ncompare, .write = plot_screen_write,
                         .in = tty, .out = tty};
        int fallback;
        session_shape shape;
        live_shape(lc, &shape);
        if (!(ui = ui_live_create(&shape, &uo, &e)))
            return cli_runtime_error(&e);
        if (ui_live_start(ui, &fallback, &e)) {
            ui_live_free(ui);
            if (!fallback)
                return cli_usage_error("%s", e.msg);
            fprintf(stderr, "gatelab: %s: printing progress lines instead\n", e.msg);
            ui = NULL;
        } else {
            tee.screen = ui_live_observer(ui);
            tee.ui = ui;
            obs = (live_observer){.on_record = tee_record, .on_tick = tee_tick, .ctx = &tee,
                                  .on_detach = tee_detach, .detached = &printer};
        }
    } else if (ra->ncompare) {
        fprintf(stderr, "gatelab: --compare draws on the screen only; ignored without it\n");
    }
    live_result res;
    char *cmdline = cli_join_words("gatelab", argc, argv);
    lc->command_line = cmdline;
    int rc = live_run(lc, &obs, &res, &e);
    free(cmdline);
    if (res.detached == LIVE_DETACH_PARENT) {
        /* the child trains on: this process only gives the terminal back */
        ui_live_stop(ui);
        ui_live_free(ui);
        say_detached("detached", "in the background", res.session, res.detached_pid, res.log_path, lc->db_path);
        return 0;
    }
    if (res.detached == LIVE_DETACH_CHILD)
        ui = NULL;   /* the parent's terminal: never touched here (nor freed) */
    if (res.detached == LIVE_DETACH_HANGUP && ui) {
        ui_live_free(ui);   /* closed at the hangup; the printer saw the rest */
        ui = NULL;
    }
    int linger_signal = 0;
    if (ui) {
        if (rc == 0)
            linger_signal = ui_live_linger(ui, &res);
        ui_live_stop(ui);
    }
    if (rc) {
        ui_live_free(ui);
        return cli_runtime_error(&e);
    }
    if (ui) {
        screen_summary(ui_live_state(ui));
        ui_live_free(ui);
    } else if (!h.out_errno) {
        headless_summary(&h, &res);
    }
    if (res.session > 0 && !h.out_errno)
        printf("session %lld in %s\n", (long long)res.session, lc->db_path);
    if (res.signal)
        fprintf(stderr, "gatelab: %s: runs stopped and stored\n", gl_signal_name(res.signal));
    if (h.out_errno)
        fprintf(stderr, "gatelab: stdout: %s%s\n", strerror(h.out_errno),
                res.stop_asked && !res.signal ? "; runs stopped and stored" : "");
    if (linger_signal)
        return 128 + linger_signal;
    if (h.out_errno && !res.signal)
        return stdout_status(h.out_errno);
    return exit_status(&res);
}

static int cmd_run(int argc, char **argv, const cli_job *job)
{
    static run_args ra;
    gl_error e;
    if (parse_run(argc, argv, &ra, &e))
        return cli_usage_error("%s", e.msg);
    live_config lc = {.tc = ra.tc,
                      .narms = ra.narms,
                      .db_path = ra.telemetry ? ra.db_path : NULL,
                      .out_dir = ra.out_dir,
                      .telemetry = ra.telemetry,
                      .script = ra.script,
                      .nscript = ra.nscript,
                      .run_argv = ra.run_argv,
                      .run_argc = ra.run_argc,
                      .name = ra.name,
                      .note = ra.note,
                      .tags = ra.tags,
                      .ntags = ra.ntags,
                      .keep_checkpoints = ra.keep_checkpoints,
                      .heatmap_every = ra.heatmap_every,
                      .dp = ra.dp};
    memcpy(lc.modes, ra.modes, sizeof lc.modes);
    memcpy(lc.ffn, ra.ffn, sizeof lc.ffn);
    lc.experts = ra.experts;
    if (args_check_script(&lc, &e))
        return cli_usage_error("%s", e.msg);
    if (ra.dp > 1) {
        /* the job's shape and the batch's split, before anything is written */
        placement pl;
        size_t row0, rows;
        if (placement_init(&pl, job->w ? job->w->size : 1, (int)ra.dp, &e) ||
            dp_slice(ra.tc.model.batch, (int)ra.dp, 0, &row0, &rows, &e))
            return cli_usage_error("%s", e.msg);
    }
    if (!ra.telemetry && (ra.name || ra.note || ra.ntags))
        return cli_usage_error("--name, --note and --tag are stored with the runs; "
                               "not with --no-telemetry");
    return run_session(&ra, &lc, argc, argv, job);
}

/* The whole check of run's words (options, --arms, --at against them), with
 * nothing run or written: what a fuzzer drives. */
int cli_check_run_args(int argc, char **argv, gl_error *e)
{
    static run_args ra;
    if (parse_run(argc, argv, &ra, e))
        return -1;
    live_config lc = {.tc = ra.tc, .narms = ra.narms, .script = ra.script,
                      .nscript = ra.nscript, .experts = ra.experts};
    memcpy(lc.modes, ra.modes, sizeof lc.modes);
    memcpy(lc.ffn, ra.ffn, sizeof lc.ffn);
    return args_check_script(&lc, e);
}

/* ---- resume ---- */

/* argv with the value of flag set to value: replaced where the flag is, or
 * appended (2 more words; argv has room). */
static void set_flag(char **argv, int *argc, const char *flag, char *value)
{
    for (int i = 0; i + 1 < *argc; i++)
        if (strcmp(argv[i], flag) == 0) {
            argv[i + 1] = value;
            return;
        }
    argv[(*argc)++] = (char *)flag;
    argv[(*argc)++] = value;
}

/* `gatelab resume RUN [--steps N] [--threads N] [--headless] [--db PATH]`:
 * continues a stopped, crashed, failed (or, with more --steps, finished)
 * run from its newest resumable checkpoint. --steps sets the run's new
 * total: beyond the old one extends it, below it ends it earlier (never
 * before the checkpoint's step). The optimizer's schedule is recomputed
 * for the new total (README "resume"). */
static int cmd_resume(int argc, char **argv, const cli_job *job)
{
    const char *db = "sessions/gatelab.db", *run_word = NULL;
    char *steps_word = NULL, *threads_word = NULL;
    int headless = 0;
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (strcmp(f, "--db") == 0) {
            if (!v || !*v)
                return cli_usage_error("--db: missing value");
            db = v;
            i++;
        } else if (strcmp(f, "--steps") == 0 || strcmp(f, "--threads") == 0) {
            if (runspec_parse_into(runspec_find_flag(f), v, &n, &e))   /* run's ranges */
                return cli_usage_error("%s", e.msg);
            *(f[2] == 's' ? &steps_word : &threads_word) = argv[++i];
        } else if (strcmp(f, "--headless") == 0) {
            headless = 1;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for resume (--steps N, --threads N, "
                                   "--headless, --db PATH)", f);
        } else if (!run_word) {
            run_word = f;
        } else {
            return cli_usage_error("resume: unexpected argument '%s'", f);
        }
    }
    int64_t id;
    int rc;
    if ((rc = cli_parse_run_id("resume", run_word, &id)))
        return rc;
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    store_run_row row;
    store_checkpoint_row ck;
    char **rargv = NULL;
    int rargc = 0;
    if (store_get_run(st, id, &row, &e)) {
        store_close(st);
        return cli_runtime_error(&e);
    }
    /* failed: a checkpoint could not be written; with the disk fixed, the run
     * goes on from its last good one. finished: only to go beyond its steps */
    int finished = strcmp(row.status, "finished") == 0;
    if (strcmp(row.status, "stopped") && strcmp(row.status, "crashed") &&
        strcmp(row.status, "failed") && !finished) {
        gl_fail(&e, "run %lld is %s; only stopped, crashed, failed or (with --steps) finished "
                    "runs can be resumed", (long long)id, row.status);
        rc = -1;
    }
    if (!rc)
        rc = store_find_checkpoint(st, id, UINT64_MAX, 1, &ck, &e);
    if (!rc)
        rc = store_json_argv(row.config_json ? row.config_json : "{}", &rargv, &rargc, &e);
    store_close(st);
    char name[64];
    snprintf(name, sizeof name, "%s", row.name);
    uint32_t arm_index = row.arm;
    store_run_row_free(&row);
    if (rc)
        return cli_runtime_error(&e);
    static run_args ra;
    int status = 0;
    size_t old_steps = 0;
    /* the stored words, with --steps / --threads replaced: room for both */
    char **words = xcalloc((size_t)rargc + 5, sizeof *words);
    int nwords = rargc;
    memcpy(words, rargv, (size_t)rargc * sizeof *words);
    if (parse_run(rargc, rargv, &ra, &e)) {
        status = cli_runtime_error(&e);
        goto done;
    }
    old_steps = ra.tc.steps;
    if (steps_word)
        set_flag(words, &nwords, "--steps", steps_word);
    if (threads_word)
        set_flag(words, &nwords, "--threads", threads_word);
    if (parse_run(nwords, words, &ra, &e)) {
        status = cli_usage_error("%s", e.msg);
        goto done;
    }
    if (finished && !steps_word) {
        status = cli_usage_error("resume: run %lld finished its %zu steps; --steps N (more "
                                 "than %llu) extends it", (long long)id, old_steps,
                                 (unsigned long long)ck.step);
        goto done;
    }
    if (ra.tc.steps <= ck.step) {
        status = cli_usage_error("--steps %zu: run %lld resumes from its checkpoint at step "
                                 "%llu; give more steps than that", ra.tc.steps, (long long)id,
                                 (unsigned long long)ck.step);
        goto done;
    }
    ra.headless |= headless;
    printf("resuming run %lld (%s) from %s", (long long)id, name, ck.path);
    if (ra.tc.steps != old_steps)
        printf(" | --steps %zu -> %zu", old_steps, ra.tc.steps);
    printf("\n");
    live_config lc = {.tc = ra.tc,
                      .narms = 1,
                      .db_path = db,
                      .telemetry = 1,
                      .script = ra.script,
                      .nscript = ra.nscript,
                      .run_argv = ra.run_argv,
                      .run_argc = ra.run_argc,
                      .resume_run = id,
                      .resume_ckpt = ck.path,
                      .resume_name = name,
                      .resume_arm = arm_index,
                      .resume_old_steps = old_steps,
                      .keep_checkpoints = ra.keep_checkpoints,
                      .heatmap_every = ra.heatmap_every};
    lc.modes[0] = ra.modes[0];
    lc.ffn[0] = ra.ffn[0];
    lc.experts = ra.experts;
    status = run_session(&ra, &lc, argc + 1, argv - 1, job);
done:
    free(words);
    for (int i = 0; i < rargc; i++)
        free(rargv[i]);
    free(rargv);
    return status;
}

static int dispatch(int argc, char **argv, const cli_job *job)
{
    if (argc < 2 || argv[1][0] == '-')
        return cmd_run(argc - 1, argv + 1, job);
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2, job);
    if (strcmp(cmd, "experiment") == 0)
        return experiment_main(argc - 2, argv + 2, job->w);
    if (job->w && job->w->size > 1)
        /* sessions and experiments spread over the ranks; nothing else
         * does (README) */
        return cli_usage_error("%s: under mpirun with %d ranks only gatelab run and gatelab "
                               "experiment spread over the ranks; run gatelab %s without mpirun",
                               cmd, job->w->size, cmd);
    if (strcmp(cmd, "eval") == 0)
        return cli_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0)
        return cli_export(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0)
        return cli_plot(argc - 2, argv + 2);
    if (strcmp(cmd, "ls") == 0)
        return cli_ls(argc - 2, argv + 2);
    if (strcmp(cmd, "show") == 0)
        return cli_show(argc - 2, argv + 2);
    if (strcmp(cmd, "resume") == 0)
        return cmd_resume(argc - 2, argv + 2, job);
    if (strcmp(cmd, "replay") == 0)
        return cli_replay(argc - 2, argv + 2);
    if (strcmp(cmd, "watch") == 0)
        return cli_watch(argc - 2, argv + 2);
    if (strcmp(cmd, "distill") == 0)
        return distill_cli_main(argc - 2, argv + 2);
    /* names, tags, notes and housekeeping (cli_store.c) */
    if (strcmp(cmd, "tag") == 0)
        return cli_tag(argc - 2, argv + 2);
    if (strcmp(cmd, "note") == 0)
        return cli_note(argc - 2, argv + 2);
    if (strcmp(cmd, "rm") == 0)
        return cli_rm(argc - 2, argv + 2);
    if (strcmp(cmd, "send") == 0)
        return cli_send(argc - 2, argv + 2);
    return cli_usage_error("%s: unknown command (%s; see gatelab --help)", cmd,
                           cli_help_names());
}

/* --help or -h among the words from `from` on, values of options skipped
 * (so `--note -h` is a note) */
static int help_asked(const cli_command *c, int from, int argc, char **argv)
{
    for (int i = from; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (cli_help_takes_value(c, argv[i], strlen(argv[i])) == 1)
            i++;
    }
    return 0;
}

int cli_main(int argc, char **argv, const world *wld)
{
    cli_job job = {.w = wld, .rank_err = stderr};
    if (wld && wld->rank > 0) {
        /* rank 0 says everything once (see cli_job) */
        int fd = dup(STDERR_FILENO);
        FILE *err = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (err && freopen("/dev/null", "w", stdout) && freopen("/dev/null", "w", stderr))
            job.rank_err = err;
    }
    /* parallelism comes from each model's pool; OpenBLAS threads would
     * compete with it for the same cores */
    openblas_set_num_threads(1);
    gl_route_stop_signals();
    /* the element-wise path (GATELAB_VEC), fixed before any thread starts */
    gl_error ve;
    if (vec_init(&ve))
        return cli_usage_error("%s", ve.msg);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      (strcmp(argv[1], "help") == 0 && argc == 2))) {
        cli_help_print_all(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("gatelab %s\n", GL_VERSION);
        return 0;
    }
    int words;
    if (argc >= 3 && strcmp(argv[1], "help") == 0) {   /* gatelab help COMMAND [KIND] */
        const cli_command *c = cli_help_find(argc - 1, argv + 1, &words);
        if (!c)
            return dispatch(argc - 1, argv + 1, &job);   /* names the unknown command */
        cli_help_print(stdout, c);
        return 0;
    }
    const cli_command *c = cli_help_find(argc, argv, &words);
    if (!c) {
        int status = dispatch(argc, argv, &job);
        cli_tty_release();
        return status;
    }
    /* --opt=value becomes --opt value once, here, for every parser */
    char **w;
    int n;
    gl_error e;
    if (args_split_equals(argc, argv, cli_help_takes_value, c, &n, &w, &e))
        return cli_usage_error("%s", e.msg);
    int status;
    if (help_asked(c, 1 + words, n, w)) {
        cli_help_print(stdout, c);
        status = 0;
    } else {
        status = dispatch(n, w, &job);
    }
    free(w);
    cli_tty_release();
    return status;
}
