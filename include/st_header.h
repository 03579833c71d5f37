/* st_header: the strict parser for a safetensors JSON header. It turns the
 * header bytes into tensor entries (name, shape, data_offsets) and the
 * "__metadata__" string map; layout checks against the data section are the
 * reader's job (src/safetensors.c). */
#ifndef GATELAB_ST_HEADER_H
#define GATELAB_ST_HEADER_H

#include <stddef.h>

#include "common.h"
#include "safetensors.h"

typedef struct {
    st_tensor_in *t;
    size_t n, cap;
    size_t *begin, *end; /* data_offsets, parallel to t */
    st_meta *meta;
    size_t nmeta, metacap;
    int saw_meta;
} st_header;

/* Parses json[0..len) into *out (zeroed first). Only names, shapes, offsets
 * and metadata are filled in; numel and data are left 0. On failure returns
 * -1 with a message starting with path in err, and *out is freed and zeroed. */
int st_header_parse(const unsigned char *json, size_t len, const char *path, st_header *out,
                    gl_error *err);

/* Frees everything *h owns and zeroes it. */
void st_header_free(st_header *h);

#endif
