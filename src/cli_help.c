/* cli_help: one table of every command's synopsis, purpose and options.
 * The top-level --help, `gatelab COMMAND --help` and the --opt=value
 * normaliser read it; like the key table of the screen, it is the one place
 * a command's options are listed (the parsers check the values). */
#include "cli_help.h"

#include <string.h>

#define WIDTH 79     /* help lines fit an 80-column terminal */
#define HELP_COL 24  /* where an option's description starts */

typedef enum {
    SYN_OPTIONAL,    /* [--flag VALUE] in the synopsis */
    SYN_REQUIRED,    /* --flag VALUE in the synopsis */
    SYN_HIDDEN,      /* left out: an older spelling, or already in the positional words */
} syn_kind;

typedef struct {
    const char *flag;    /* "--steps"; NULL ends a list */
    const char *value;   /* what it takes ("N"), NULL for a flag without a value */
    const char *help;    /* one sentence, wrapped when printed */
    syn_kind syn;
} cli_option;

struct cli_command {
    const char *name;           /* "ls", "experiment moe" */
    const char *args;           /* the positional words ("RUN"), or NULL */
    const char *synopsis;       /* instead of the one built from the options, or NULL */
    const char *summary;        /* what it does */
    const cli_option *own;      /* its options, in the synopsis and in full in its help */
    const cli_option *shared;   /* the run options it shares with `run`, or NULL */
    int umbrella;               /* `experiment` without a kind: the kinds follow it */
};

#define OPT_DB {"--db", "PATH", "the database (default sessions/gatelab.db)", SYN_OPTIONAL}
#define OPT_END {NULL, NULL, NULL, SYN_OPTIONAL}

/* The run options of args.c (args_model_option) and the few that `run` and
 * `experiment` parse themselves but share (--keep-checkpoints is run's
 * alone: an experiment writes one checkpoint per arm). */
static const cli_option shared_opts[] = {
    {"--preset", "NAME", "tiny | small | paper (default tiny)", 0},
    {"--data", "PATH", "text file, directory of text files, or llm.c .bin tokens (default: "
                       "the embedded generator)", 0},
    {"--db", "PATH", "the database (default sessions/gatelab.db)", 0},
    {"--steps", "N", "training steps (default 2000)", 0},
    {"--k", "K", "keys kept per query (default T/8)", 0},
    {"--gate-temp", "T", "soft top-k temperature (default 0.25)", 0},
    {"--lr", "X", "learning rate (default 3e-3)", 0},
    {"--gate-lr", "X", "gate learning rate (default: the learning rate)", 0},
    {"--warmup", "N", "warm-up steps (default 100, or steps/10 for a run it would swallow)", 0},
    {"--weight-decay", "X", "AdamW decay on matrices and embeddings (default 0.1)", 0},
    {"--clip", "X", "global grad-norm clip, 0 to disable (default 1.0)", 0},
    {"--batch", "N", "sequences per step (overrides the preset)", 0},
    {"--ctx", "T", "context length (overrides the preset)", 0},
    {"--dim", "D", "model width (overrides the preset)", 0},
    {"--layers", "L", "layers (overrides the preset)", 0},
    {"--heads", "H", "attention heads (overrides the preset)", 0},
    {"--mlp", "M", "FFN width (default 4 D)", 0},
    {"--gate-rank", "R", "rank of the gate's projections (overrides the preset)", 0},
    {"--vocab", "V", "vocabulary size (overrides the preset; a .bin file sets V unless "
                     "given)", 0},
    {"--eval-every", "N", "steps between val evaluations (default 100)", 0},
    {"--eval-windows", "N", "val windows per evaluation, 0 = all (default 64)", 0},
    {"--threads", "N", "worker threads shared by the arms (default: cores)", 0},
    {"--name", "NAME", "a name for the session, shown by ls (ls --session takes it)", 0},
    {"--tag", "KEY=VALUE", "a tag on every run (repeatable; gatelab tag adds one later)", 0},
    {"--note", "TEXT", "a note on the session (gatelab note sets a run's later)", 0},
    {"--heatmap-every", "N", "store heatmaps at every Nth evaluation only, and the last "
                             "(default 1: every one)", 0},
    OPT_END,
};

static const cli_option run_opts[] = {
    {"--arms", "M1,M2,...", "gate modes of the arms (default soft,random,dense): dense soft "
                            "random sigmoid topk topk-random stochastic oracle; MODE+moe gives "
                            "the arm a mixture-of-experts FFN with a learned router, "
                            "MODE+moe-random one with a frozen random router", 0},
    {"--experts", "E", "experts of the +moe arms, top-1 (default 4)", 0},
    {"--moe-aux", "C", "load-balancing loss coefficient of +moe arms (default 0.01)", 0},
    {"--at", "STEP:CMD[:ARG][@ARM]", "apply a command when STEP steps are done "
                                     "(repeatable): pause[:SECONDS] resume swap:MODE freeze "
                                     "unfreeze k:K checkpoint fork:MODE stop; @ARM = arm "
                                     "index or name", 0},
    {"--seed", "S", "seed for weights, data order and gates (default 1)", 0},
    {"--save-every", "N", "steps between checkpoints (default 1000; always at the end)", 0},
    {"--keep-checkpoints", "N", "keep each run's newest N resumable checkpoints, delete "
                                "older ones (default: keep all)", 0},
    {"--out", "DIR", "checkpoint root (default: next to the database, ckpt/); each arm writes "
                     "under DIR/DBNAME-DBID/session-N/armI-NAME/", 0},
    {"--no-telemetry", NULL, "store nothing; print evaluations only", 0},
    {"--headless", NULL, "print progress lines even on a terminal (no screen)", 0},
    {"--compare", "RUN[,RUN]", "draw stored runs as dimmed ghost curves on the screen", 0},
    {"--dp", "N", "under mpirun: each arm trained by N ranks, data-parallel (each computes "
                  "B/N sequences of the batch; -np a multiple of N)", 0},
    OPT_END,
};

static const cli_option ls_opts[] = {
    OPT_DB,
    {"--session", "S", "only the runs of session S (an id or a session's --name)", 0},
    {"--status", "ST", "only runs with this status (running paused finished stopped diverged "
                       "failed crashed)", 0},
    {"--mode", "M", "only runs that started in gate mode M", 0},
    {"--tag", "KEY[=VALUE]", "only runs with tag KEY (set to VALUE)", 0},
    {"--since", "WHEN", "only runs started since WHEN: Nd, Nh or Nm ago, YYYY-MM-DD or "
                        "YYYY-MM-DDTHH:MM[:SS] (UTC)", 0},
    OPT_END,
};

static const cli_option db_only_opts[] = {OPT_DB, OPT_END};

static const cli_option resume_opts[] = {
    OPT_DB,
    {"--steps", "N", "end at step N instead of the run's own --steps: extends a finished or "
                     "stopped run, or stops it earlier (recorded as an event)", 0},
    {"--threads", "N", "worker threads (default: cores)", 0},
    {"--headless", NULL, "print progress lines even on a terminal (no screen)", 0},
    OPT_END,
};

static const cli_option eval_opts[] = {
    {"--data", "FILE|generator", "the tokens to evaluate on; generator: the embedded "
                                 "generator's val split (with RUN, default: the run's own "
                                 "data; with CKPT, required)", 0},
    {"--gate", "MODE", "evaluate under another gate mode than the checkpoint's", 0},
    {"--k", "K", "keys kept per query (default: the checkpoint's)", 0},
    {"--step", "N", "with RUN: the checkpoint written at step N (default: the newest)", 0},
    {"--threads", "N", "worker threads (default: cores)", 0},
    {"--db", "PATH", "with RUN: the database (default sessions/gatelab.db)", 0},
    OPT_END,
};

static const cli_option export_opts[] = {
    {"--out", "FILE.safetensors", "the file to write (weights only)", 0},
    {"--step", "N", "with RUN: the checkpoint written at step N (default: the newest)", 0},
    {"--csv", "FILE", "instead of weights: every metric of RUN[,RUN...] (or of --session S) "
                      "at full resolution, one row per run and step: run, step, then one "
                      "column per metric key (empty where a step has none)", 0},
    {"--session", "S", "with --csv: every run of session S (an id or a --name)", 0},
    {"--db", "PATH", "with RUN: the database (default sessions/gatelab.db)", 0},
    OPT_END,
};

static const cli_option plot_opts[] = {
    {"--out", "FILE", "the file to write: .svg, .png or .pdf", SYN_REQUIRED},
    {"--session", "S", "every run of session S (an id or a --name) instead of RUN...; runs "
                       "without the metric are left out (named) rather than refused", SYN_HIDDEN},
    {"--metric", "KEY", "what to draw (default val_loss): val_loss train_loss val_ppl val_bpb "
                        "f1 mass_kept oracle_mass gate_grad_norm grad_norm lr tokens_per_s "
                        "expert_balance, or any other key the runs have", 0},
    {"--log", NULL, "logarithmic y axis", 0},
    {"--smooth", "B", "debiased EMA with factor B in [0, 1), as the screen's `s` (applied at "
                      "full resolution, before merging to the width; in log space with --log); "
                      "default 0: raw values", 0},
    {"--format", "svg|png|pdf", "the format (default: the extension of --out, else svg)", 0},
    {"--width", "PX", "chart width (default 960); a run with more points than the plot has "
                      "pixel columns is merged to one mean per column, and the chart says so",
     0},
    {"--height", "PX", "chart height (default 600)", 0},
    {"--heatmap", NULL, "one RUN's heatmaps instead: gate mask, oracle mask and attention "
                        "probabilities side by side", 0},
    {"--step", "N", "with --heatmap: the evaluation step (default: the newest stored); a step "
                    "without heatmaps is an error naming the steps that have them", 0},
    {"--layer", "L", "with --heatmap: the layer (default 0)", 0},
    {"--head", "H", "with --heatmap: the head (default 0)", 0},
    OPT_DB,
    OPT_END,
};

/* the experiment kinds list the shared options whose default differs, and
 * those a user looks for first; the rest print as "run options" */
#define EXPERIMENT_HEAD_OPTS                                                                 \
    {"--preset", "tiny|small|paper", "model shape (default tiny)", 0},                       \
    {"--seeds", "N", "seeds 1..N, one session each (default 3, at most 16)", 0},             \
    {"--steps", "N", "training steps of every arm (default 1000)", 0}
#define EXPERIMENT_TAIL_OPTS                                                                 \
    {"--data", "PATH", "text, directory or .bin tokens (default: the embedded generator)",   \
     0},                                                                                     \
    OPT_DB,                                                                                  \
    {"--threads", "N", "cores: shared by the arms while training, all of them for the "      \
                       "measurements (default: all)", 0},                                    \
    {"--eval-every", "N", "steps between val evaluations (default steps/10)", 0},            \
    {"--from", "ID", "reprint a stored experiment of this kind (ID: the experiment id or "   \
                     "any of its sessions)", 0}

static const cli_option absorption_opts[] = {
    EXPERIMENT_HEAD_OPTS,
    {"--distill-steps", "N", "gate updates of each distillation (default 300)", 0},
    EXPERIMENT_TAIL_OPTS,
    OPT_END,
};

static const cli_option moe_opts[] = {
    EXPERIMENT_HEAD_OPTS,
    {"--experts", "E", "experts of the MoE arms, top-1 (default 4)", 0},
    {"--moe-aux", "C", "load-balancing loss coefficient (default 0.01)", 0},
    EXPERIMENT_TAIL_OPTS,
    OPT_END,
};

static const cli_option temperature_opts[] = {
    EXPERIMENT_HEAD_OPTS,
    {"--temps", "T,T,...", "soft top-k temperatures, a learned and a frozen-random arm each "
                           "(default 2,1,0.5,0.25,0.1,0.05; at most 16)", 0},
    EXPERIMENT_TAIL_OPTS,
    OPT_END,
};

static const cli_option crossdeploy_opts[] = {
    OPT_DB,
    {"--threads", "N", "worker threads of the evaluations (default: cores)", 0},
    {"--from", "ID", "reprint a stored crossdeploy experiment (ID: its session)", 0},
    OPT_END,
};

/* --distill-steps is the one name of "distillation updates" (experiment
 * absorption's --steps is the training); --steps stays as an alias */
static const cli_option distill_opts[] = {
    OPT_DB,
    {"--distill-steps", "N", "gate updates (default 300)", 0},
    {"--steps", "N", "older spelling of --distill-steps, still accepted", SYN_HIDDEN},
    {"--data", "PATH", "the data (default: the run's own)", 0},
    {"--threads", "N", "worker threads (default: cores)", 0},
    {"--eval-windows", "N", "val windows of the evaluations (default: the run's own, else 64)",
     0},
    {"--lr", "X", "learning rate of the gate (default 0.01)", 0},
    {"--warmup", "N", "warm-up updates (default: a tenth of the updates)", 0},
    {"--seed", "S", "seed of the fresh gate and the batches (default: the run's)", 0},
    {"--forward", "oracle|dense", "the forward pass the gate learns from (default oracle)", 0},
    {"--name", "NAME", "a name for the distillation's session, shown by ls", 0},
    {"--tag", "KEY=VALUE", "a tag on the new run (repeatable)", 0},
    {"--note", "TEXT", "a note on the distillation's session", 0},
    OPT_END,
};

static const cli_option send_opts[] = {
    OPT_DB,
    {"--wait", "SECONDS", "wait that long for the owner to apply or reject it (default 10)",
     SYN_OPTIONAL},
    {"--no-wait", NULL, "insert the command and return at once", SYN_OPTIONAL},
    OPT_END,
};

static const cli_option rm_opts[] = {
    {"--session", "S", "every run of session S instead of one run", SYN_HIDDEN},
    {"--dry-run", NULL, "print what would be deleted and freed; delete nothing", 0},
    OPT_DB,
    OPT_END,
};

static const cli_command commands[] = {
    {"run", NULL, "gatelab [run] [OPTIONS]",
     "Train arms side by side and store them: the screen on a terminal, progress lines "
     "otherwise or with --headless (the default command).",
     run_opts, shared_opts, 0},
    {"ls", NULL, NULL,
     "List the stored runs (id, session, arm, name, mode, status, steps, val loss and ppl, "
     "start), filtered by the options, and the database size.",
     ls_opts, NULL, 0},
    {"show", "RUN", NULL, "One run: config, gate segments, metrics, events, checkpoints.",
     db_only_opts, NULL, 0},
    {"replay", "[SESSION]", NULL,
     "Draw a stored session on the screen (a text summary without a terminal); default: the "
     "newest session.",
     db_only_opts, NULL, 0},
    {"watch", "[SESSION]", NULL,
     "Follow a session another gatelab process is writing, on the live screen (its steering "
     "keys send commands to that process; q leaves the watcher only); without a terminal, "
     "one line per evaluation of each arm until the session ends. SESSION: an id or a name "
     "(the newest of that name); default: the newest session.",
     db_only_opts, NULL, 0},
    {"resume", "RUN", NULL,
     "Continue a stopped, crashed or failed run from its newest resumable checkpoint, or "
     "move its end with --steps.",
     resume_opts, NULL, 0},
    {"eval", "RUN|CKPT", NULL,
     "Evaluate a checkpoint file, or a stored run's checkpoint, and print one line: loss, "
     "ppl, tokens.",
     eval_opts, NULL, 0},
    {"export", "RUN|CKPT, or RUN[,RUN...]|--session S with --csv", NULL,
     "Write a checkpoint's weights only (no Adam moments, not resumable) to a new "
     "safetensors file; or, with --csv, every stored metric of runs as a CSV table.",
     export_opts, NULL, 0},
    {"plot", "RUN[,RUN...]|--session S", NULL,
     "Draw a stored metric of runs as a chart (SVG, PNG or PDF, with Cairo): axes with "
     "units, a colour and legend entry per run, the event markers S P K Z F X R of the "
     "screen; or, with --heatmap, one run's masks at a step.",
     plot_opts, NULL, 0},
    {"experiment", "absorption|moe|crossdeploy|temperature",
     "gatelab experiment absorption|moe|crossdeploy|temperature [OPTIONS]",
     "The experiments, headless, stored, printed as a table; under mpirun -np N the "
     "sessions' arms and the measurements (distillations, evaluations, crossdeploy's "
     "cells) spread over the ranks.",
     NULL, NULL, 1},
    {"experiment absorption", NULL, NULL,
     "The paper's four lines of evidence: per seed one session of six arms (dense soft "
     "random sigmoid topk stochastic), then measurements on their checkpoints; stored and "
     "printed as a table beside the paper's figures.",
     absorption_opts, shared_opts, 0},
    {"experiment moe", NULL, NULL,
     "Learned vs frozen random mixture-of-experts router: per seed one session of a dense "
     "FFN, a learned and a random router, then the learned router reset to its init; stored "
     "and printed as a table.",
     moe_opts, shared_opts, 0},
    {"experiment temperature", NULL, NULL,
     "Soft top-k temperature from soft to hard: per seed and temperature one session of a "
     "learned and a frozen-random soft arm, plus one of topk, topk-random and dense; a table "
     "per temperature of ppl, gap, routing benefit, the learned gate's gradient norm and its "
     "mask's entropy, stored.",
     temperature_opts, shared_opts, 0},
    {"experiment crossdeploy", "SESSION", NULL,
     "The cross-deployment matrix: every run of a stored session with a checkpoint "
     "evaluated in its own mode and under dense soft random topk topk-random oracle "
     "stochastic, on the val windows the session evaluated on; ppl and ratio to the "
     "diagonal, stored as an experiment and printed as a table.",
     crossdeploy_opts, NULL, 0},
    {"distill", "RUN", NULL,
     "Train a fresh gate to predict a stored run's oracle masks on its frozen model; saved "
     "next to the run's checkpoint and stored as a new run.",
     distill_opts, NULL, 0},
    {"tag", "RUN KEY=VALUE...", NULL,
     "Set tags on a stored run (a KEY it already has gets the new VALUE).", db_only_opts, NULL,
     0},
    {"note", "RUN TEXT...", NULL,
     "Set a stored run's note: the words joined by spaces, in place of any earlier note.",
     db_only_opts, NULL, 0},
    {"rm", "RUN|--session S", NULL,
     "Delete a run, or every run of a session, with the checkpoint files it owns, printing "
     "what is freed; a live run is refused.",
     rm_opts, NULL, 0},
    {"send", "SESSION CMD[:ARG][@ARM]", NULL,
     "Steer a session another process trains: pause[:SECONDS] resume swap:MODE freeze "
     "unfreeze k:K checkpoint fork:MODE stop, for arm ARM (an index or name) or every arm; "
     "prints 'applied at step N' or 'rejected: why' (exit 0 applied, 1 rejected, 3 still "
     "pending after --wait).",
     send_opts, NULL, 0},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- looking commands and options up ---- */

const cli_command *cli_help_named(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

const cli_command *cli_help_find(int argc, char **argv, int *words)
{
    *words = 0;
    if (argc < 2 || argv[1][0] == '-')
        return cli_help_named("run");
    const cli_command *c = cli_help_named(argv[1]);
    if (!c || strchr(argv[1], ' '))
        return NULL;
    *words = 1;
    if (c->umbrella && argc >= 3 && argv[2][0] != '-') {
        char name[64];
        snprintf(name, sizeof name, "%s %s", c->name, argv[2]);
        const cli_command *kind = cli_help_named(name);
        if (kind) {
            *words = 2;
            return kind;
        }
    }
    return c;
}

static const cli_option *find_option(const cli_option *list, const char *opt, size_t len)
{
    for (; list && list->flag; list++)
        if (strlen(list->flag) == len && strncmp(list->flag, opt, len) == 0)
            return list;
    return NULL;
}

int cli_help_takes_value(const void *ctx, const char *opt, size_t len)
{
    const cli_command *c = ctx;
    const cli_option *o = find_option(c->own, opt, len);
    if (!o)
        o = find_option(c->shared, opt, len);
    return o ? o->value != NULL : -1;
}

const char *cli_help_names(void)
{
    static char names[256];
    if (!names[0]) {
        size_t n = 0;
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (!strchr(commands[i].name, ' '))
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "",
                                      commands[i].name);
    }
    return names;
}

/* ---- printing ---- */

/* Words of text from column `col` on, wrapped at WIDTH with continuation
 * lines indented to `indent`; returns the column after the last word. */
static size_t put_words(FILE *f, const char *text, size_t col, size_t indent)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n)
            break;
        if (col > indent && col + 1 + n > WIDTH) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, n, f);
        col += n;
        p += n;
    }
    return col;
}

/* One unit of a synopsis ("[--step N]"): kept on one line. */
static size_t put_unit(FILE *f, const char *unit, size_t col, size_t indent)
{
    size_t n = strlen(unit);
    if (col > indent && col + 1 + n > WIDTH) {
        fprintf(f, "\n%*s", (int)indent, "");
        col = indent;
    } else if (col > indent) {
        fputc(' ', f);
        col++;
    }
    fputs(unit, f);
    return col + n;
}

/* "gatelab NAME ARGS [--opt V] ... [run options]", wrapped under its first
 * argument; lead is what precedes it on the first line ("usage: "). */
static void put_synopsis(FILE *f, const cli_command *c, const char *lead)
{
    fputs(lead, f);
    size_t col = strlen(lead);
    if (c->synopsis) {
        fprintf(f, "%s\n", c->synopsis);
        return;
    }
    char head[96];
    snprintf(head, sizeof head, "gatelab %s", c->name);
    fprintf(f, "%s ", head);
    col += strlen(head) + 1;
    const size_t indent = col;   /* the first unit follows without a second space */
    if (c->args)
        col = put_unit(f, c->args, col, indent);
    for (const cli_option *o = c->own; o && o->flag; o++) {
        if (o->syn == SYN_HIDDEN)
            continue;
        char unit[96];
        const char *l = o->syn == SYN_REQUIRED ? "" : "[", *r = o->syn == SYN_REQUIRED ? "" : "]";
        if (o->value)
            snprintf(unit, sizeof unit, "%s%s %s%s", l, o->flag, o->value, r);
        else
            snprintf(unit, sizeof unit, "%s%s%s", l, o->flag, r);
        col = put_unit(f, unit, col, indent);
    }
    if (c->shared)
        put_unit(f, "[run options]", col, indent);
    fputc('\n', f);
}

static void put_option(FILE *f, const cli_option *o)
{
    char left[64];
    snprintf(left, sizeof left, "  %s%s%s", o->flag, o->value ? " " : "",
             o->value ? o->value : "");
    fputs(left, f);
    size_t col = strlen(left);
    if (col + 1 > HELP_COL) {
        fprintf(f, "\n%*s", HELP_COL, "");
    } else {
        fprintf(f, "%*s", (int)(HELP_COL - col), "");
    }
    put_words(f, o->help, HELP_COL, HELP_COL);
    fputc('\n', f);
}

static void put_options(FILE *f, const cli_option *list)
{
    for (const cli_option *o = list; o && o->flag; o++)
        put_option(f, o);
}

static const char exit_status_text[] =
    "exit status: 0 done, 1 runtime error or a diverged arm, 2 usage error, 130 / 143 "
    "stopped by SIGINT / SIGTERM, 141 stdout closed (runs stored as stopped); SIGHUP detaches: "
    "the session trains on, its output in <db>-session-N.log";

/* issue 15: what to pass to mpirun (README: MPI) */
static const char mpi_text[] =
    "under MPI (a build with Open MPI): mpirun -np N gatelab run ... spreads the arms over "
    "the ranks (arm i on rank i % N; rank 0 keeps the database, the output and the screen, "
    "which it opens on the terminal with mpirun --stdin none); --threads is per rank. On a "
    "cluster: --hostfile FILE with --map-by node (one rank per node) or --map-by socket "
    "--bind-to socket, checkpoints on a filesystem every node sees; on one machine "
    "--oversubscribe, as root --allow-run-as-root; --enable-recovery keeps the other ranks "
    "alive when one dies (its runs are marked crashed either way). mpirun -np N gatelab "
    "experiment absorption|moe|temperature ... spreads each seed's session the same way "
    "and farms the measurements on checkpoints (distillations included) over the ranks; "
    "experiment crossdeploy SESSION farms its cells (rank 0 prints and stores the same "
    "table). Other commands run without mpirun.";

static const char forms_text[] =
    "Every command answers --help (or -h) with its usage; an option that takes a value is "
    "written --opt VALUE or --opt=VALUE.";

void cli_help_print(FILE *f, const cli_command *c)
{
    if (c->umbrella) {
        const char *lead = "usage: ";
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (strncmp(commands[i].name, c->name, strlen(c->name)) == 0 &&
                commands[i].name[strlen(c->name)] == ' ') {
                put_synopsis(f, &commands[i], lead);
                lead = "       ";
            }
        fputc('\n', f);
        put_words(f, c->summary, 0, 0);
        fprintf(f, "\n`gatelab %s KIND --help` gives a kind's options.\n", c->name);
        return;
    }
    put_synopsis(f, c, "usage: ");
    fputc('\n', f);
    put_words(f, c->summary, 0, 0);
    fputs("\n\noptions:\n", f);
    put_options(f, c->own);
    const int run = c->own == run_opts;
    if (c->shared && !run) {
        /* the experiment kinds: the other run options by name, described
         * once, in run's help */
        fputs("run options, as for `gatelab run` (see gatelab run --help):\n  ", f);
        size_t col = 2;
        for (const cli_option *o = c->shared; o->flag; o++)
            if (!find_option(c->own, o->flag, strlen(o->flag))) {
                char unit[64];
                snprintf(unit, sizeof unit, "%s%s%s", o->flag, o->value ? " " : "",
                         o->value ? o->value : "");
                col = put_unit(f, unit, col, 2);
            }
        fputc('\n', f);
    } else if (c->shared) {
        fputs("run options (experiment takes them too):\n", f);
        put_options(f, c->shared);
    }
    if (run) {
        fputc('\n', f);
        put_words(f, exit_status_text, 0, 0);
        fputc('\n', f);
    }
}

void cli_help_print_all(FILE *f)
{
    fputs("usage: gatelab [COMMAND] [OPTIONS]\n"
          "       gatelab COMMAND --help\n"
          "       gatelab --help | --version\n\n",
          f);
    put_words(f, forms_text, 0, 0);
    fputs("\n\ncommands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const cli_command *c = &commands[i];
        if (c->umbrella)
            continue;
        put_synopsis(f, c, "  ");
        fputs("      ", f);
        put_words(f, c->summary, 6, 6);
        fputc('\n', f);
    }
    const cli_command *run = cli_help_named("run");
    fputs("\nrun options:\n", f);
    put_options(f, run->own);
    put_options(f, run->shared);
    fputc('\n', f);
    put_words(f, exit_status_text, 0, 0);
    fputs("\n\n", f);
    put_words(f, mpi_text, 0, 0);
    fputc('\n', f);
}
