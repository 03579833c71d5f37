/* runspec: the run-spec table. Each field of the model, optimiser and
 * training configuration (model_config, optim_config, train_config) is one
 * row: its name (the key in the run's config JSON), its key in checkpoint
 * metadata, type, place (struct and offsetof), command-line flag, range,
 * default, the value each preset gives it, and the documents it is written
 * to. The table drives the shared run options' parsing and range checks
 * (args.c), the defaults and presets, the run's and the experiments' config
 * JSON, checkpoint metadata (written and read) and the screen's reading of
 * a stored config (runspec_read.h). Adding a field is one row plus its
 * struct member. Numbers are parsed from text and written back as the same
 * text: a float as the shortest decimal that reads back to it (0.003). */
#ifndef GATELAB_RUNSPEC_H
#define GATELAB_RUNSPEC_H

#include <stddef.h>

#include "common.h"
#include "json.h"
#include "runspec_read.h"
#include "safetensors.h"
#include "trainer.h"

typedef enum {
    RUNSPEC_SIZE,     /* size_t, decimal */
    RUNSPEC_U64,      /* uint64_t, decimal */
    RUNSPEC_FLOAT,    /* float, shortest decimal */
    RUNSPEC_BOOL,     /* int, 0 or 1 */
    RUNSPEC_MODE,     /* gate_mode by name (gate.h) */
    RUNSPEC_ROUTER,   /* int router_frozen: "learned" (0) or "random" (1) */
    RUNSPEC_TEXT,     /* char[size] */
    RUNSPEC_PATH,     /* const char * borrowed from argv; JSON null when NULL */
} runspec_type;

typedef enum { RUNSPEC_MODEL, RUNSPEC_OPTIM, RUNSPEC_TRAIN } runspec_struct;

/* Where a row is written and read (its `where` bits). */
enum {
    RUNSPEC_JSON = 1u << 0,        /* the run's config JSON (live.c) */
    RUNSPEC_META = 1u << 1,        /* every checkpoint's metadata */
    RUNSPEC_META_RESUME = 1u << 2, /* resumable checkpoints' metadata */
    RUNSPEC_MOE = 1u << 3,         /* written only with experts (absent: dense) */
    RUNSPEC_OPTIONAL = 1u << 4,    /* may be missing from older checkpoints */
    RUNSPEC_SHARED = 1u << 5,      /* a run option every training command takes */
    RUNSPEC_EXPERIMENT = 1u << 6,  /* an experiment's config JSON */
    RUNSPEC_ZERO_OFF = 1u << 7,    /* 0 means off (dense FFN), outside the flag's range */
    RUNSPEC_HASH = 1u << 8,        /* in the checkpoint's config hash (checkpoint.c's order) */
};

#define RUNSPEC_NPRESETS 3
extern const char *const runspec_preset_names[RUNSPEC_NPRESETS];   /* tiny, small, paper */

typedef struct {
    const char *name;            /* config JSON key */
    const char *meta;            /* checkpoint metadata key (same as name unless set) */
    runspec_type type;
    runspec_struct in;
    size_t offset, size;         /* offsetof / sizeof the member */
    const char *flag;            /* NULL: not set from the command line */
    double min, max;             /* the flag's range (numbers) */
    const char *def;             /* default, as typed; NULL: set by the command */
    const char *preset[RUNSPEC_NPRESETS];   /* NULL: the default */
    unsigned where;
} runspec_row;

extern const runspec_row runspec_rows[];
extern const size_t runspec_nrows;

const runspec_row *runspec_find(const char *name);
const runspec_row *runspec_find_flag(const char *flag);
/* The metadata key of a row. */
const char *runspec_meta_key(const runspec_row *r);

/* cfg from a preset: every model row its preset value (or default); -1 if
 * the name is none of runspec_preset_names. */
int runspec_preset(const char *name, model_config *cfg);
/* tc zeroed, the model from the preset, every other row its default (rows
 * without one stay 0: threads, data). -1 for an unknown preset. */
int runspec_defaults(const char *preset, train_config *tc);

/* Parses text s for row r into dst (a member of r's type, outside the
 * structs too: run's --experts), checking the flag's range: -1 with a
 * one-line message naming the flag and the range. */
int runspec_parse_into(const runspec_row *r, const char *s, void *dst, gl_error *e);
/* The same into the row's member of tc. */
int runspec_parse(const runspec_row *r, const char *s, train_config *tc, gl_error *e);
/* The row's value in tc as text (what metadata holds) into out[n]. */
const char *runspec_format(const runspec_row *r, const train_config *tc, char *out, size_t n);
/* Every row's value within its range (0 allowed for RUNSPEC_ZERO_OFF);
 * -1 naming the first flag (or name) that is not. */
int runspec_check(const train_config *tc, gl_error *e);
/* The model rows only (model_config_check adds the checks across rows). */
int runspec_check_model(const model_config *m, gl_error *e);

/* Appends the members of the rows with any bit of `where` set, in table
 * order (RUNSPEC_MOE rows only when tc->model.experts). */
void runspec_write_json(json_buf *b, const train_config *tc, unsigned where);
/* One row's member. */
void runspec_write_field(json_buf *b, const runspec_row *r, const train_config *tc);
/* Reads the JSON rows present in the config JSON into tc; rows absent are
 * left as they are. -1 naming the key of a value its row refuses. */
int runspec_read_json(const char *json, train_config *tc, gl_error *e);

/* Checkpoint metadata: the rows with RUNSPEC_META (and RUNSPEC_META_RESUME
 * when resumable) as key/value pairs appended to meta[*n] (at most max);
 * the values live in vals[max][RUNSPEC_META_VALUE]. */
#define RUNSPEC_META_VALUE 128
void runspec_meta_write(const train_config *tc, int resumable, st_meta *meta,
                        char (*vals)[RUNSPEC_META_VALUE], size_t *n, size_t max);
/* Reads those rows back from an open file into tc (rows missing from older
 * files: RUNSPEC_OPTIONAL keep tc's value, RUNSPEC_MOE rows are read only
 * when "experts" is there); -1 with a message starting with path. */
int runspec_meta_read(const st_file *f, const char *path, int resumable, train_config *tc,
                      gl_error *e);

#endif
