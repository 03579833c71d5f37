/* fuzz_safetensors: libFuzzer entry point for st_read. Not built by `make`.
 * st_read takes a path, so each input is written to a per-process temp file
 * first; the reader must return 0 (and then every tensor must lie inside the
 * blob) or -1 with a message naming the path, never crash or leak.
 *
 * Build and run from the repo root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *       tests/fuzz/fuzz_safetensors.c src/safetensors.c src/st_header.c src/st_util.c \
 *       src/common.c -o fuzz_safetensors
 *   mkdir -p /tmp/st_corpus && ./fuzz_safetensors -max_total_time=60 /tmp/st_corpus
 * Seed the corpus with a few real checkpoints for faster coverage. */
#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_safetensors.%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();

    st_file st;
    gl_error err = {{0}};
    if (st_read(path, &st, &err) == 0) {
        if (st.blob_size != size)
            abort();
        volatile float sink = 0.0f;
        for (size_t i = 0; i < st.ntensors; i++) {
            const st_tensor_in *t = &st.tensors[i];
            if (st_find(&st, t->name) != t)
                abort();
            for (size_t j = 0; j < t->numel; j++)
                sink += t->data[j];
        }
        for (size_t i = 0; i < st.nmeta; i++)
            if (!st_meta_get(&st, st.meta[i].key))
                abort();
        (void)sink;
        st_free(&st);
    } else if (!err.msg[0] || !strstr(err.msg, path) || strchr(err.msg, '\n')) {
        abort();
    }
    return 0;
}
