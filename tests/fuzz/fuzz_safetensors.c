/* fuzz_safetensors: libFuzzer target for the checkpoint reader st_read
 * (src/safetensors.c, src/st_header.c): the file behind `gatelab resume`,
 * `export` and `eval`. Run it from the repo root with
 *   make fuzz FUZZ_TARGETS=fuzz_safetensors FUZZ_SECONDS=60
 * or reproduce one input with
 *   build/fuzz/bin/fuzz_safetensors CRASH_FILE
 *
 * Each input is written whole to a file in a per-process scratch directory
 * and read back. The reader must either refuse it (-1 and one line naming
 * the path) or return 0 with the file's size as blob_size, every tensor's
 * floats aligned and inside the data section, numel the product of the
 * shape, names and metadata keys that st_find and st_meta_get find again.
 * Every float is read, so ASan sees any tensor that overruns the blob.
 * Never a crash, a leak or a hang. Seeds: a micro model's exported weights
 * and its resumable checkpoint (tests/fuzz/make_corpus.sh). */
#include "safetensors.h"

#include "fuzz_util.h"

static void check_tensor(const st_file *st, const st_tensor_in *t)
{
    const unsigned char *lo = st->blob + 8, *hi = st->blob + st->blob_size;
    const unsigned char *p = (const unsigned char *)t->data;
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "%s: ndim %d", t->name, t->ndim);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= t->shape[d];
    FUZZ_CHECK(numel == t->numel, "%s: numel %zu, shape gives %zu", t->name, t->numel, numel);
    FUZZ_CHECK((uintptr_t)p % sizeof(float) == 0, "%s: floats not aligned", t->name);
    FUZZ_CHECK(t->numel == 0 || (p >= lo && (size_t)(hi - p) / sizeof(float) >= t->numel),
               "%s: %zu floats outside the data section", t->name, t->numel);
    FUZZ_CHECK(st_find(st, t->name) == t, "st_find(%s) found another tensor", t->name);
    volatile float sink = 0.0f;
    for (size_t j = 0; j < t->numel; j++)
        sink += t->data[j];
    (void)sink;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_init("fuzz_safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    fuzz_path(path, sizeof path, "x.safetensors");
    fuzz_write_file(path, data, size);

    st_file st;
    gl_error e = {{0}};
    if (st_read(path, &st, &e)) {
        fuzz_check_error(&e, path);
        return 0;
    }
    FUZZ_CHECK(st.blob_size == size, "blob_size %zu, file %zu", st.blob_size, size);
    for (size_t i = 0; i < st.ntensors; i++)
        check_tensor(&st, &st.tensors[i]);
    for (size_t i = 0; i < st.nmeta; i++)
        FUZZ_CHECK(st_meta_get(&st, st.meta[i].key) == st.meta[i].value,
                   "st_meta_get(%s) found another value", st.meta[i].key);
    st_free(&st);
    return 0;
}
