/* checkpoint: the model (and optionally the optimiser and data cursor) as a
 * safetensors file with DESIGN §2's tensor names and the config in
 * __metadata__. */
#ifndef GATELAB_CHECKPOINT_H
#define GATELAB_CHECKPOINT_H

#include <stddef.h>

#include "common.h"
#include "data.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"

#define CHECKPOINT_FORMAT "gatelab-1"

/* Whose checkpoint a file is (DESIGN §11): the database's id (db_info),
 * the session, the run (0 when the store had not numbered a forked arm yet)
 * and the arm's index in its session. A file written without a database
 * carries none. */
typedef struct {
    char db_id[33];
    int64_t session, run;
    uint32_t arm;
} checkpoint_owner;

/* 16 hex digits: FNV-1a of what a run never changes (shapes, experts, router,
 * seed, temperature, aux coefficient) — not the gate mode, k or frozen flag,
 * which commands change mid-run. The run-spec rows with RUNSPEC_HASH, in the
 * frozen order of checkpoint_hash_rows (their names), each as little-endian
 * bytes: integers 8, floats 4 (their bits); RUNSPEC_MOE rows 0 without
 * experts. */
extern const char *const checkpoint_hash_rows[];
extern const size_t checkpoint_hash_nrows;
void checkpoint_config_hash(const model_config *c, char out[17]);

/* What a checkpoint says besides its tensors. */
typedef struct {
    model_config model;
    int has_owner;
    checkpoint_owner owner;
    char config_hash[17];   /* "" in files written before it existed */
    size_t step;
    char data[256];
    int resumable;          /* has adam.m/adam.v tensors and cursors */
    optim_config optim;
    size_t adam_t;
    data_cursor cursor;
    size_t commands_done;   /* scripted commands applied when it was written */
} checkpoint_info;

/* o and cursor may be NULL for a weights-only file, owner NULL for a file
 * that belongs to no run. commands_done: how many of the run's scripted
 * commands had been applied (resumable files). */
int checkpoint_save(const char *path, const model *m, const optim *o, size_t step,
                    const char *data_desc, const data_cursor *cursor, size_t commands_done,
                    const checkpoint_owner *owner, gl_error *err);

/* Refuses (one line naming path, "belongs to ...") a checkpoint whose owner
 * or config hash differs from the run resuming it; files written before
 * owners existed carry none and are taken as they are. */
int checkpoint_check_owner(const checkpoint_info *info, const char *path,
                           const checkpoint_owner *want, const model_config *want_cfg,
                           gl_error *err);

/* 1 when path is a gatelab checkpoint (a safetensors file whose metadata
 * says so), 0 otherwise; reads the header only. */
int checkpoint_is_gatelab(const char *path);

/* Reads and validates the metadata of an open file. */
int checkpoint_info_read(const st_file *f, const char *path, checkpoint_info *info,
                         gl_error *err);
/* Copies every model tensor (checking presence and shape) into m. */
int checkpoint_load_weights(const st_file *f, const char *path, model *m, gl_error *err);
/* The whole load: reads path, builds m from its config (mode >= 0 replaces
 * the gate mode) with `threads` workers and copies its weights; info gets
 * the metadata. -1 with a message and nothing to free. */
int checkpoint_load_model(const char *path, int mode, size_t threads, model *m,
                          checkpoint_info *info, gl_error *err);
/* Copies the Adam moments of every tensor of m into o (resumable files only). */
int checkpoint_load_optim(const st_file *f, const char *path, const model *m, optim *o,
                          gl_error *err);

#endif
