/* safetensors: reading and writing the checkpoint format (8-byte little-endian
 * header length, JSON header with "dtype":"F32", "shape" and "data_offsets",
 * then raw little-endian data; "__metadata__" is a map of string to string).
 * Only F32 tensors are written; reading rejects anything it cannot trust. */
#ifndef GATELAB_SAFETENSORS_H
#define GATELAB_SAFETENSORS_H

#include <stddef.h>

#include "common.h"

#define ST_MAX_DIMS 4

typedef struct {
    const char *name;
    const float *data;
    int ndim;
    size_t shape[ST_MAX_DIMS];
} st_tensor_out;

typedef struct {
    const char *key;
    const char *value;
} st_meta;

/* Writes atomically (temp file + rename) so a crash never leaves a half file
 * under path. */
int st_write(const char *path, const st_tensor_out *tensors, size_t ntensors,
             const st_meta *meta, size_t nmeta, gl_error *err);

/* Removes the NAME.tmp.PID files in dir whose writer (PID) no longer exists:
 * what st_write leaves when its process is killed mid-write. A live
 * process's temp file is kept. Returns how many were removed. */
size_t st_remove_stale_temps(const char *dir);

typedef struct {
    char *name;
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t numel;
    const float *data;   /* points into the file's data section */
} st_tensor_in;

typedef struct {
    st_tensor_in *tensors;
    size_t ntensors;
    st_meta *meta;       /* owned strings */
    size_t nmeta;
    unsigned char *blob; /* whole file */
    size_t blob_size;
} st_file;

/* Validates: header length within file, JSON well formed, dtype F32, offsets
 * in bounds, consistent with shapes, non-overlapping. */
int st_read(const char *path, st_file *out, gl_error *err);
void st_free(st_file *f);
const st_tensor_in *st_find(const st_file *f, const char *name);
const char *st_meta_get(const st_file *f, const char *key);

#endif
