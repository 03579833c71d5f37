/* cli_watch: `gatelab watch [SESSION] [--db PATH]` — follow a session that
 * another gatelab process is writing. On a terminal, the screen (ui_watch);
 * otherwise (a pipe, a log, a script) one line per evaluation of each arm,
 * as `run --headless` prints them, one per event and per ended arm, and a
 * last line when the session has ended, then exit 0. Both read the
 * database through a store_tail, a few times a second. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "plot_screen.h"
#include "session_view.h"
#include "store.h"
#include "store_tail.h"
#include "ui.h"

#define POLL_NS (1000000000L / 4)   /* four polls a second */

typedef struct {
    char names[LIVE_MAX_ARMS][REC_NAME];
    run_status status[LIVE_MAX_ARMS];
    int out_errno;                  /* stdout failed (EPIPE: the reader is gone), or 0 */
} watch_lines;

void cli_print_eval_head(const tel_record *r, const char *name)
{
    /* no train loss before the first step (the step-0 evaluation): "-" */
    char train[32];
    snprintf(train, sizeof train, isnan(r->u.eval.train_loss) ? "-" : "%.4f",
             r->u.eval.train_loss);
    printf("step %6llu | %-8s | train %s | val %.4f ppl %8.3f", (unsigned long long)r->step,
           name, train, r->u.eval.val_loss, r->u.eval.val_ppl);
    if (!isnan(r->u.eval.bits_per_byte))
        printf(" bpb %.3f", r->u.eval.bits_per_byte);
    if (!isnan(r->u.eval.f1))
        printf(" | f1 %.3f mass %.3f", r->u.eval.f1, r->u.eval.mass_kept);
    if (!isnan(r->u.eval.expert_balance))
        printf(" | experts balance %.3f", r->u.eval.expert_balance);
}

static int print_record(void *ctx, int64_t run, const tel_record *r)
{
    watch_lines *w = ctx;
    if (r->kind == REC_SESSION_END || r->arm >= LIVE_MAX_ARMS)
        return 0;
    const char *name = w->names[r->arm];
    switch ((rec_kind)r->kind) {
    case REC_RUN_BEGIN:
        snprintf(w->names[r->arm], sizeof w->names[r->arm], "%s", r->u.run.name);
        printf("arm %u %s | run %lld", r->arm, r->u.run.name, (long long)run);
        if (r->u.run.parent_arm != UINT32_MAX)
            printf(" | forked from arm %u at step %llu", r->u.run.parent_arm,
                   (unsigned long long)r->step);
        printf("\n");
        break;
    case REC_EVAL: {
        cli_print_eval_head(r, name);
        if (!isnan(r->u.eval.oracle_mass))
            printf(" | oracle mass %.3f", r->u.eval.oracle_mass);
        if (!isnan(r->u.eval.gate_grad_norm))
            printf(" | gate grad %.3g", r->u.eval.gate_grad_norm);
        if (!isnan(r->u.eval.tokens_per_s))
            printf(" | %.0f tok/s", r->u.eval.tokens_per_s);
        printf("\n");
        break;
    }
    case REC_EVENT: {
        event_kind k = (event_kind)r->u.event.kind;
        if (k != EV_CHECKPOINT)
            printf("event step %llu | %s | %s %s\n", (unsigned long long)r->step, name,
                   event_kind_name(k), r->u.event.detail);
        break;
    }
    case REC_STATUS: {
        run_status s = (run_status)r->u.status.status;
        if (s != w->status[r->arm] && s != RUN_RUNNING)
            printf("arm %u %s | %s at step %llu\n", r->arm, name, run_status_name(s),
                   (unsigned long long)r->step);
        w->status[r->arm] = s;
        break;
    }
    default:
        break;
    }
    if (fflush(stdout) == EOF || ferror(stdout))
        w->out_errno = errno ? errno : EIO;
    return w->out_errno != 0;
}

/* Exit status: 0 once the session ended, 128 + the signal that stopped us,
 * 141 when the reader of stdout went away. */
static int watch_lines_run(const char *db, int64_t session)
{
    gl_error e;
    store *s = store_open(db, STORE_BROWSE, &e);
    if (!s)
        return cli_runtime_error(&e);
    store_tail *t = store_tail_open(s, session, &e);
    if (!t) {
        store_close(s);
        return cli_runtime_error(&e);
    }
    static watch_lines w;
    memset(&w, 0, sizeof w);
    printf("watching session %lld%s of %s\n", (long long)store_tail_session(t),
           store_tail_newest(t) ? " (the newest)" : "", db);
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    int status = 0, sig = 0;
    for (;;) {
        int rc = store_tail_poll(t, print_record, &w, &e);
        if (rc < 0) {
            status = cli_runtime_error(&e);
            break;
        }
        if (w.out_errno) {
            status = w.out_errno == EPIPE ? 128 + SIGPIPE : 1;
            break;
        }
        if (store_tail_ended(t)) {
            printf("session %lld has ended\n", (long long)store_tail_session(t));
            break;
        }
        int64_t gone = store_tail_owner_gone(t);
        if (gone) {
            printf("session %lld has lost its process %lld (killed?); the next open of the "
                   "database marks its runs crashed\n",
                   (long long)store_tail_session(t), (long long)gone);
            break;
        }
        struct timespec wait = {0, POLL_NS};
        sig = sigtimedwait(&sigs, NULL, &wait);
        if (sig > 0) {
            status = 128 + sig;
            break;
        }
    }
    fflush(stdout);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    store_tail_close(t);
    store_close(s);
    return status;
}

int cli_session_view(int argc, char **argv, const char *cmd, cli_screen_fn screen,
                     const char *instead, int (*text)(const char *db, int64_t session))
{
    const char *db;
    char *rest[64];
    int nrest;
    if (argc > 60)
        return cli_usage_error("%s: too many arguments", cmd);
    int rc = cli_take_db(argc, argv, &db, rest, &nrest, cmd);
    if (rc)
        return rc;
    if (nrest > 1)
        return cli_usage_error("%s: unexpected argument '%s'", cmd, rest[1]);
    int64_t session = 0;
    if (nrest && rest[0][strspn(rest[0], "0123456789")] == '\0') {
        size_t v;
        gl_error pe;
        if (args_size("SESSION", rest[0], 1, INT64_MAX, &v, &pe))
            return cli_usage_error("%s: %s (a session id or name: gatelab ls shows both)",
                                   cmd, pe.msg);
        session = (int64_t)v;
    } else if (nrest) {
        /* a name: the newest session of that name, looked up once */
        gl_error e;
        store *st = store_open(db, STORE_BROWSE, &e);
        if (!st)
            return cli_runtime_error(&e);
        rc = cli_find_session(st, cmd, rest[0], db, &session);
        store_close(st);
        if (rc)
            return rc;
    }
    if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        ui_options uo = {.db_path = db, .write = plot_screen_write};
        int fallback, sig;
        gl_error e;
        rc = screen(db, session, &uo, &fallback, &sig, &e);
        if (rc == 0)
            return sig ? 128 + sig : 0;
        if (!fallback)
            return rc == UI_SCREEN_TOO_SMALL ? cli_usage_error("%s", e.msg)
                                             : cli_runtime_error(&e);
        fprintf(stderr, "gatelab: %s: printing %s instead\n", e.msg, instead);
    }
    return text(db, session);
}

int cli_watch(int argc, char **argv)
{
    return cli_session_view(argc, argv, "watch", ui_watch, "lines", watch_lines_run);
}
