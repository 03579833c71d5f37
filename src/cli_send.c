/* cli_send: `gatelab send SESSION CMD[:ARG][@ARM]` — steering a session
 * another process trains, through the commands table (DESIGN §12). It
 * checks everything it can before it inserts: the command word (the `--at`
 * words without the step, read by command.c's parser), the session, that a
 * live process owns it, and the arm; bad input inserts nothing. Then it
 * inserts one pending row and, unless --no-wait, waits for the owner to
 * apply or reject it and prints one line. Exit status: 0 applied (or queued
 * with --no-wait), 1 rejected or no live owner, 2 bad input, 3 still
 * pending when the wait ran out (the row stays; the owner may still apply
 * it). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "command.h"
#include "common.h"
#include "record.h"
#include "store.h"

#define SEND_WAIT_DEFAULT 10.0
#define SEND_TIMED_OUT 3
#define SEND_POLL_NS 50000000L

typedef struct {
    int64_t session;
    store_run_row *runs;
    size_t n, cap;
} session_runs;

static int keep_run(void *ctx, const store_run_row *row)
{
    session_runs *sr = ctx;
    if (sr->n == sr->cap) {
        sr->cap = sr->cap ? 2 * sr->cap : 8;
        sr->runs = gl_grow(sr->runs, sr->n, sr->cap, sizeof *sr->runs);
    }
    store_run_row *r = &sr->runs[sr->n++];
    *r = *row;
    r->config_json = NULL;   /* not ours: the walk frees it */
    return 0;
}

static void runs_free(session_runs *sr)
{
    free(sr->runs);
    sr->runs = NULL;
    sr->n = sr->cap = 0;
}

static int is_live(const store_run_row *r)
{
    return strcmp(r->status, "running") == 0 || strcmp(r->status, "paused") == 0;
}

/* How many runs of the session are still running or paused: -1 on error. */
static long live_runs(store *st, int64_t session, gl_error *e)
{
    session_runs sr = {.session = session};
    if (store_list_runs(st, session, keep_run, &sr, e) < 0) {
        runs_free(&sr);
        return -1;
    }
    long live = 0;
    for (size_t i = 0; i < sr.n; i++)
        live += is_live(&sr.runs[i]);
    runs_free(&sr);
    return live;
}

/* @ARM: an arm index or name among the session's runs; the live run of
 * that arm when there is one, else its newest. */
static int find_arm(const session_runs *sr, const char *arm, int64_t *run)
{
    int by_index = arm[strspn(arm, "0123456789")] == '\0';
    const store_run_row *best = NULL;
    for (size_t i = 0; i < sr->n; i++) {   /* newest first */
        const store_run_row *r = &sr->runs[i];
        int match = by_index ? strtoull(arm, NULL, 10) == r->arm : strcmp(arm, r->name) == 0;
        if (match && (!best || (is_live(r) && !is_live(best))))
            best = r;
    }
    if (best) {
        *run = best->id;
        return 0;
    }
    char list[512] = "";
    size_t at = 0;
    for (size_t i = sr->n; i-- > 0 && at < sizeof list;)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%u %s", at ? ", " : "",
                               sr->runs[i].arm, sr->runs[i].name);
    return cli_usage_error("send: session %lld has no arm '%s' (its arms: %s)",
                           (long long)sr->session, arm, list);
}

/* What the row became; 1 when it left pending. */
static int decided(store *st, int64_t id, store_command_row *row, gl_error *e)
{
    if (store_command_get(st, id, row, e))
        return -1;
    return strcmp(row->state, "pending") != 0;
}

static int print_decision(const store_command_row *row)
{
    if (strcmp(row->state, "applied") == 0) {
        printf("applied at step %llu", (unsigned long long)row->applied_step);
        if (row->reason[0])
            printf(" (%s)", row->reason);
        printf("\n");
        return 0;
    }
    printf("rejected: %s\n", row->reason);
    return 1;
}

int cli_send(int argc, char **argv)
{
    const char *db = "sessions/gatelab.db", *session_word = NULL, *word = NULL;
    double wait = SEND_WAIT_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--db") == 0 || strcmp(f, "--wait") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            const char *v = argv[++i];
            if (f[2] == 'd') {
                db = v;
                continue;
            }
            char *end;
            errno = 0;
            wait = strtod(v, &end);
            if (*end || errno || !isfinite(wait) || wait < 0.0 || wait > 86400.0)
                return cli_usage_error("--wait %s: must be seconds from 0 to 86400", v);
        } else if (strcmp(f, "--no-wait") == 0) {
            wait = 0.0;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for send", f);
        } else if (!session_word) {
            session_word = f;
        } else if (!word) {
            word = f;
        } else {
            return cli_usage_error("send: unexpected argument '%s'", f);
        }
    }
    if (!session_word || !word)
        return cli_usage_error("send: expected SESSION CMD[:ARG][@ARM] (e.g. gatelab send 3 "
                               "swap:random@1)");
    /* the word first: a typo costs no database */
    scripted_command sc;
    gl_error e;
    if (command_parse_word(word, &sc, &e))
        return cli_usage_error("send: %s", e.msg);
    char kind[32], arg[64] = "";
    size_t klen = strcspn(word, ":@");
    snprintf(kind, sizeof kind, "%.*s", (int)klen, word);
    if (word[klen] == ':')
        snprintf(arg, sizeof arg, "%.*s", (int)strcspn(word + klen + 1, "@"), word + klen + 1);

    /* a writer: it inserts, and marks crashed the runs whose owner is gone */
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    session_runs sr = {0};
    int status = cli_find_session(st, "send", session_word, db, &sr.session);
    if (status)
        goto out;
    if (store_list_runs(st, sr.session, keep_run, &sr, &e) < 0) {
        status = cli_runtime_error(&e);
        goto out;
    }
    size_t live = 0;
    for (size_t i = 0; i < sr.n; i++)
        live += is_live(&sr.runs[i]);
    int64_t run = 0;
    if (sc.arm[0] && (status = find_arm(&sr, sc.arm, &run)))
        goto out;
    if (!live) {
        /* only the owner applies: a row nobody would read is not inserted */
        fprintf(stderr, "gatelab: send: session %lld: no live process owns it (%s); "
                        "nothing sent\n",
                (long long)sr.session, sr.n ? "its runs have ended" : "it has no runs");
        status = 1;
        goto out;
    }
    int64_t id;
    if (store_command_add(st, sr.session, run, kind, arg, &id, &e)) {
        status = cli_runtime_error(&e);
        goto out;
    }
    if (wait <= 0.0) {
        printf("command %lld queued for session %lld\n", (long long)id, (long long)sr.session);
        goto out;
    }
    store_command_row row;
    double until = gl_now() + wait;
    int d;
    for (unsigned polls = 1; (d = decided(st, id, &row, &e)) == 0 && gl_now() < until; polls++) {
        /* The owner rejects what is pending when its session ends, but a
         * row inserted just after that sweep (its last run's end was not
         * yet committed when we looked), or one whose owner was killed, has
         * nobody left to decide it. Every half second: the owners checked
         * as store_open checks them (a dead one's runs marked crashed) and,
         * once no run of the session is live, our row rejected as the next
         * process to open the file would. A decision the owner made first
         * stands (only a pending row changes). */
        if (polls % 10 == 0) {
            long live = store_recheck_owners(st, &e) ? -1 : live_runs(st, sr.session, &e);
            char why[64];
            snprintf(why, sizeof why, "no live process owns session %lld",
                     (long long)sr.session);
            if (live < 0 || (!live && store_command_rejected(st, id, why, NULL, &e))) {
                d = -1;
                break;
            }
            if (!live)
                continue;   /* read back whichever decision stands */
        }
        nanosleep(&(struct timespec){0, SEND_POLL_NS}, NULL);
    }
    if (d < 0) {
        status = cli_runtime_error(&e);
    } else if (d) {
        status = print_decision(&row);
    } else {
        printf("still pending after %g s: command %lld (the owner applies it at the arm's next "
               "step; see the commands table)\n", wait, (long long)id);
        status = SEND_TIMED_OUT;
    }
out:
    runs_free(&sr);
    store_close(st);
    return status;
}
