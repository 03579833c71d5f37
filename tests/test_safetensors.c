/* test_safetensors: round trips through st_write/st_read, the byte layout
 * (alignment, escaping), an independent Python reader on our output,
 * one-line errors for every kind of corrupt file and for failed writes, and a
 * random-mutation loop that must never crash (run it under MODE=asan). */
#include "safetensors.h"

#include "check.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char dir[64];
} fixture;

static void path_in(const fixture *fx, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", fx->dir, name);
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    size_t cap = 1 << 16;
    unsigned char *p = xmalloc(cap);
    size_t r;
    while ((r = fread(p + *n, 1, cap - *n, f)) > 0) {
        *n += r;
        if (*n == cap) {
            unsigned char *q = xmalloc(cap * 2);
            memcpy(q, p, *n);
            free(p);
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    return p;
}

/* A file from "another writer": 8-byte length, the JSON exactly as given (no
 * padding unless the JSON has it), then data. */
static int write_raw_st(const char *path, const char *json, const void *data, size_t ndata)
{
    size_t n = strlen(json);
    unsigned char *b = xmalloc(8 + n + ndata);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    if (ndata)
        memcpy(b + 8 + n, data, ndata);
    int rc = write_bytes(path, b, 8 + n + ndata);
    free(b);
    return rc;
}

static uint64_t header_len(const unsigned char *b)
{
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)b[i] << (8 * i);
    return n;
}

/* st_read must fail with a message naming the path (and containing want, if
 * given) and leave *out empty. */
static void expect_bad(const char *path, const char *want, const char *label)
{
    st_file f;
    gl_error err = {{0}};
    int rc = st_read(path, &f, &err);
    CHECK(rc == -1 && strstr(err.msg, path) && (!want || strstr(err.msg, want)) &&
              !strchr(err.msg, '\n') && f.tensors == NULL && f.blob == NULL,
          "%s: rc %d, \"%s\"", label, rc, err.msg);
    if (rc == 0)
        st_free(&f);
}

static void expect_bad_json(const fixture *fx, const char *json, const void *data, size_t n,
                            const char *want, const char *label)
{
    char path[128];
    path_in(fx, "bad.safetensors", path, sizeof path);
    write_raw_st(path, json, data, n);
    expect_bad(path, want, label);
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int has_temp_file(const char *dir)
{
    DIR *d = opendir(dir);
    int found = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp."))
            found = 1;
    closedir(d);
    return found;
}

static int run_ok(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ---------------------------------------------------------------- data */

enum { NA = 5, NB = 12, NC = 12 };

typedef struct {
    float a[NA], b[NB], c[NC], s[1];
    st_tensor_out t[5];
    st_meta m[6];
} sample;

static void sample_init(sample *sm)
{
    for (int i = 0; i < NA; i++)
        sm->a[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < NB; i++)
        sm->b[i] = (float)(i * i) / 7.0f;
    for (int i = 0; i < NC; i++)
        sm->c[i] = -(float)i * 1e-3f;
    sm->c[3] = -0.0f;
    sm->s[0] = 3.25f;
    sm->t[0] = (st_tensor_out){"wte", sm->a, 1, {NA}};
    sm->t[1] = (st_tensor_out){"h.0.attn.qkv.weight", sm->b, 2, {3, 4}};
    sm->t[2] = (st_tensor_out){"h.0.gate.q.weight", sm->c, 3, {2, 3, 2}};
    sm->t[3] = (st_tensor_out){"empty", NULL, 2, {0, 3}};
    sm->t[4] = (st_tensor_out){"scalar \"q\" \\ caf\xc3\xa9", sm->s, 0, {0}};
    sm->m[0] = (st_meta){"preset", "tiny"};
    sm->m[1] = (st_meta){"config", "{\"d\":64,\"path\":\"C:\\\\x\"}"};
    sm->m[2] = (st_meta){"multi", "line1\nline2\ttab\r\x01\x1f end"};
    sm->m[3] = (st_meta){"unicode", "na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5 \xf0\x9f\x98\x80"};
    sm->m[4] = (st_meta){"k\"ey\\", "v"};
    sm->m[5] = (st_meta){"empty", ""};
}

/* ---------------------------------------------------------------- tests */

static void test_round_trip(const fixture *fx)
{
    sample sm;
    sample_init(&sm);
    char path[128], path2[128];
    path_in(fx, "rt.safetensors", path, sizeof path);
    path_in(fx, "rt2.safetensors", path2, sizeof path2);
    gl_error err = {{0}};

    int rc = st_write(path, sm.t, 5, sm.m, 6, &err);
    CHECK(rc == 0, "st_write 5 tensors, 6 metadata: %s", rc ? err.msg : "ok");
    CHECK(!has_temp_file(fx->dir), "no temp file left after a successful write");

    size_t size;
    unsigned char *raw = read_bytes(path, &size);
    uint64_t n = raw && size >= 8 ? header_len(raw) : 0;
    CHECK(raw && (8 + n) % 8 == 0 && 8 + n <= size, "header padded: 8+N = %llu",
          (unsigned long long)(8 + n));
    size_t want_data = (NA + NB + NC + 1) * 4;
    CHECK(size == 8 + n + want_data, "file is header + %zu data bytes (size %zu)", want_data,
          size);
    int same = raw && size == 8 + n + want_data;
    if (same) {
        const unsigned char *d = raw + 8 + n;
        same = !memcmp(d, sm.a, sizeof sm.a) && !memcmp(d + sizeof sm.a, sm.b, sizeof sm.b) &&
               !memcmp(d + sizeof sm.a + sizeof sm.b, sm.c, sizeof sm.c) &&
               !memcmp(d + sizeof sm.a + sizeof sm.b + sizeof sm.c, sm.s, sizeof sm.s);
    }
    CHECK(same, "data section is the tensors' bytes, in order, no gaps");
    int spaces = 1;
    if (raw && n) {
        uint64_t e = n;
        while (e > 0 && raw[8 + e - 1] == ' ')
            e--;
        spaces = e > 0 && raw[8 + e - 1] == '}';
    }
    CHECK(spaces, "header JSON ends with '}' then only spaces");
    CHECK(raw && memmem(raw + 8, n, "\"line1\\nline2\\ttab\\r\\u0001\\u001f end\"", 35),
          "newline, tab, CR and control characters escaped in the JSON");
    CHECK(raw && memmem(raw + 8, n, "\"k\\\"ey\\\\\":\"v\"", 13),
          "quote and backslash escaped in a key");

    st_file f;
    rc = st_read(path, &f, &err);
    CHECK(rc == 0, "st_read back: %s", rc ? err.msg : "ok");
    if (rc == 0) {
        CHECK(f.ntensors == 5 && f.nmeta == 6, "5 tensors, 6 metadata (%zu, %zu)", f.ntensors,
              f.nmeta);
        CHECK(f.blob_size == size, "blob_size %zu is the file size", f.blob_size);
        int ok = 1;
        for (int i = 0; i < 5; i++) {
            const st_tensor_in *t = st_find(&f, sm.t[i].name);
            int ok_i = t && t->ndim == sm.t[i].ndim;
            size_t numel = 1;
            for (int d = 0; ok_i && d < t->ndim; d++) {
                ok_i = t->shape[d] == sm.t[i].shape[d];
                numel *= sm.t[i].shape[d];
            }
            ok_i = ok_i && t->numel == numel && ((uintptr_t)t->data % 4) == 0 &&
                   (numel == 0 || !memcmp(t->data, sm.t[i].data, numel * 4));
            CHECK(ok_i, "tensor %s: rank %d, shape, numel %zu and bytes identical",
                  sm.t[i].name, sm.t[i].ndim, numel);
            ok = ok && ok_i;
        }
        CHECK(ok && f.tensors[0].data && f.tensors[1].data == f.tensors[0].data + NA,
              "tensors are read in file order and point into the blob");
        int meta_ok = 1;
        for (int i = 0; i < 6; i++) {
            const char *v = st_meta_get(&f, sm.m[i].key);
            int ok_i = v && strcmp(v, sm.m[i].value) == 0;
            CHECK(ok_i, "metadata \"%s\" round trips", sm.m[i].key);
            meta_ok = meta_ok && ok_i;
        }
        CHECK(st_find(&f, "nope") == NULL && st_meta_get(&f, "nope") == NULL &&
                  st_find(&f, "wt") == NULL,
              "st_find / st_meta_get return NULL for absent names");

        /* Writing what was read gives the identical file. */
        st_tensor_out again[5];
        st_meta meta_again[6];
        for (size_t i = 0; i < f.ntensors && i < 5; i++) {
            again[i] = (st_tensor_out){f.tensors[i].name, f.tensors[i].data, f.tensors[i].ndim,
                                       {0}};
            memcpy(again[i].shape, f.tensors[i].shape, sizeof again[i].shape);
        }
        for (size_t i = 0; i < f.nmeta && i < 6; i++)
            meta_again[i] = f.meta[i];
        rc = st_write(path2, again, f.ntensors, meta_again, f.nmeta, &err);
        size_t size2;
        unsigned char *raw2 = read_bytes(path2, &size2);
        CHECK(rc == 0 && raw2 && size2 == size && !memcmp(raw, raw2, size),
              "re-writing a read file reproduces it byte for byte");
        free(raw2);

        st_free(&f);
        CHECK(f.tensors == NULL && f.ntensors == 0 && f.meta == NULL && f.nmeta == 0 &&
                  f.blob == NULL && f.blob_size == 0,
              "st_free zeroes the struct");
        st_free(&f); /* a second free is harmless */
    }
    free(raw);

    /* Overwriting an existing file replaces it. */
    rc = st_write(path, sm.t, 1, NULL, 0, &err);
    rc = rc ? rc : st_read(path, &f, &err);
    CHECK(rc == 0 && f.ntensors == 1 && f.nmeta == 0, "overwrite replaces the old file: %s",
          rc ? err.msg : "ok");
    if (rc == 0)
        st_free(&f);

    /* No tensors and no metadata: a valid "{}" file. */
    rc = st_write(path, NULL, 0, NULL, 0, &err);
    raw = read_bytes(path, &size);
    CHECK(rc == 0 && raw && size == 16 && header_len(raw) == 8 && !memcmp(raw + 8, "{}      ", 8),
          "empty file is {} padded to 8 bytes");
    free(raw);
    rc = st_read(path, &f, &err);
    CHECK(rc == 0 && f.ntensors == 0 && f.nmeta == 0, "empty file reads back: %s",
          rc ? err.msg : "ok");
    if (rc == 0)
        st_free(&f);
}

/* Every padding remainder: names of lengths 1..8 move 8+N through all residues. */
static void test_alignment(const fixture *fx)
{
    char path[128], name[16];
    path_in(fx, "align.safetensors", path, sizeof path);
    float v[3] = {1.0f, 2.0f, 3.0f};
    int ok = 1;
    for (int len = 1; len <= 8; len++) {
        memset(name, 'x', (size_t)len);
        name[len] = '\0';
        st_tensor_out t = {name, v, 1, {3}};
        gl_error err = {{0}};
        size_t size;
        int rc = st_write(path, &t, 1, NULL, 0, &err);
        unsigned char *raw = read_bytes(path, &size);
        ok = ok && rc == 0 && raw && (8 + header_len(raw)) % 8 == 0 &&
             size == 8 + header_len(raw) + sizeof v;
        free(raw);
    }
    CHECK(ok, "(8+N) %% 8 == 0 for names of 8 different lengths");
}

static void test_python_reader(const fixture *fx)
{
    sample sm;
    sample_init(&sm);
    char path[128], cmd[1024], hex[2 * sizeof sm.b + 1];
    path_in(fx, "py.safetensors", path, sizeof path);
    gl_error err = {{0}};
    int rc = st_write(path, sm.t, 5, sm.m, 6, &err);
    CHECK(rc == 0, "st_write for the Python reader: %s", rc ? err.msg : "ok");

    const unsigned char *b = (const unsigned char *)sm.b;
    for (size_t i = 0; i < sizeof sm.b; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    snprintf(cmd, sizeof cmd,
             "python3 tests/st_reader.py '%s' --tensor h.0.attn.qkv.weight --expect-hex %s "
             "--meta preset=tiny --meta empty=",
             path, hex);
    CHECK(run_ok(cmd), "st_reader.py validates the header and finds the qkv bytes");

    snprintf(cmd, sizeof cmd,
             "python3 tests/st_reader.py '%s' --tensor wte --expect-floats -1,-0.5,0,0.5,1 "
             ">/dev/null",
             path);
    CHECK(run_ok(cmd), "st_reader.py reads wte as -1,-0.5,0,0.5,1");

    /* The reader must be able to say no. */
    hex[0] = hex[0] == '0' ? '1' : '0';
    snprintf(cmd, sizeof cmd,
             "python3 tests/st_reader.py '%s' --tensor h.0.attn.qkv.weight --expect-hex %s "
             ">/dev/null 2>&1",
             path, hex);
    CHECK(!run_ok(cmd), "st_reader.py fails on one wrong byte");
    snprintf(cmd, sizeof cmd,
             "python3 tests/st_reader.py '%s' --tensor wte --expect-floats -1,-0.5,0,0.5,2 "
             ">/dev/null 2>&1",
             path);
    CHECK(!run_ok(cmd), "st_reader.py fails on one wrong float");
    snprintf(cmd, sizeof cmd, "python3 tests/st_reader.py '%s' --meta preset=big >/dev/null 2>&1",
             path);
    CHECK(!run_ok(cmd), "st_reader.py fails on a wrong metadata value");

    size_t size;
    unsigned char *raw = read_bytes(path, &size);
    char cut[128];
    path_in(fx, "py_cut.safetensors", cut, sizeof cut);
    write_bytes(cut, raw, size - 1);
    snprintf(cmd, sizeof cmd, "python3 tests/st_reader.py '%s' >/dev/null 2>&1", cut);
    CHECK(!run_ok(cmd), "st_reader.py rejects a file one byte short");
    free(raw);
    unlink(cut);
}

static void test_truncated(const fixture *fx)
{
    sample sm;
    sample_init(&sm);
    char src[128], path[128], label[64];
    path_in(fx, "full.safetensors", src, sizeof src);
    path_in(fx, "cut.safetensors", path, sizeof path);
    gl_error err = {{0}};
    st_write(src, sm.t, 5, sm.m, 6, &err);
    size_t size;
    unsigned char *raw = read_bytes(src, &size);
    if (!raw) {
        CHECK(0, "could not read %s", src);
        return;
    }
    size_t hend = 8 + (size_t)header_len(raw);
    struct {
        size_t len;
        const char *want;
    } cuts[] = {
        {0, "truncated: 0 bytes"},
        {4, "truncated: 4 bytes"},
        {7, "truncated: 7 bytes"},
        {8, "exceeds file size 8"},
        {20, "exceeds file size 20"},
        {hend - 1, "exceeds file size"},
        {hend, "beyond data size 0"},
        {hend + (size - hend) / 2, NULL},
        {size - 1, NULL},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(path, raw, cuts[i].len);
        snprintf(label, sizeof label, "file cut at %zu of %zu bytes", cuts[i].len, size);
        expect_bad(path, cuts[i].want, label);
    }

    /* Header length field corrupted. */
    unsigned char *b = xmalloc(size);
    memcpy(b, raw, size);
    b[7] = 0x40; /* 2^62 + N */
    write_bytes(path, b, size);
    expect_bad(path, "exceeds file size", "header length 2^62");
    memcpy(b, raw, size);
    b[0] = (unsigned char)(b[0] - 1); /* N-1: the last byte of the JSON falls into data */
    write_bytes(path, b, size);
    expect_bad(path, NULL, "header length one short");
    free(b);

    /* Trailing bytes after the last tensor. */
    b = xmalloc(size + 4);
    memcpy(b, raw, size);
    memset(b + size, 0, 4);
    write_bytes(path, b, size + 4);
    expect_bad(path, "data section is", "4 extra bytes after the data");
    free(b);

    /* A header length over the 100 MB limit that still fits in the file. */
    size_t big = 100 * 1000 * 1000 + 8;
    unsigned char *huge = xcalloc(8 + big, 1);
    for (int i = 0; i < 8; i++)
        huge[i] = (unsigned char)((uint64_t)big >> (8 * i));
    huge[8] = '{';
    huge[9] = '}';
    write_bytes(path, huge, 8 + big);
    free(huge);
    expect_bad(path, "exceeds limit", "header length over 100 MB");
    unlink(path);

    expect_bad("/nonexistent/dir/x.safetensors", "open: No such file", "missing file");
    expect_bad(fx->dir, "not a regular file", "a directory");
    /* a FIFO with no writer: refused at once, not waited on; a device that
     * never ends (/dev/zero) is refused before a byte is read */
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/ck.fifo", fx->dir);
    if (mkfifo(fifo, 0600) == 0) {
        expect_bad(fifo, "not a regular file", "a FIFO");
        unlink(fifo);
    }
    expect_bad("/dev/zero", "not a regular file", "/dev/zero");
    free(raw);
}

static void test_bad_headers(const fixture *fx)
{
    static const float d[6] = {1, 2, 3, 4, 5, 6};
    struct {
        const char *json;
        size_t ndata;
        const char *want;
        const char *label;
    } cases[] = {
        {"", 0, "header JSON", "empty header"},
        {"not json", 0, "header JSON", "garbage"},
        {"{", 0, "header JSON", "lone {"},
        {"[]", 0, "header JSON", "array at top level"},
        {"{\"a\":}", 0, "header JSON", "missing value"},
        {"{\"a\" {}}", 0, "expected ':'", "missing colon"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "header JSON",
         "trailing comma"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "trailing",
         "bytes after the object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\n\0", 8, "trailing",
         "NUL after the object"},
        {"{\"a", 0, "unterminated", "unterminated string"},
        {"{\"a\\q\":{}}", 0, "bad escape", "bad escape"},
        {"{\"a\\ud800\":{}}", 0, "surrogate", "lone high surrogate"},
        {"{\"a\\udc00\":{}}", 0, "surrogate", "lone low surrogate"},
        {"{\"a\\u00\":{}}", 0, "escape", "short \\u escape"},
        {"{\"a\\u0000\":{}}", 0, "\\u0000", "\\u0000 in a name"},
        {"{\"a\tb\":{}}", 0, "control character", "raw tab in a string"},
        {"{\"a\xff\":{}}", 0, "UTF-8", "invalid UTF-8"},
        {"{\"a\xc0\xaf\":{}}", 0, "UTF-8", "overlong UTF-8"},
        {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         "tensor a: dtype BF16 not supported", "dtype BF16"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
         "dtype F64 not supported", "dtype F64"},
        {"{\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected string",
         "dtype not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,400]}}", 8, "beyond",
         "offsets past the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end 0 < begin 8",
         "end before begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "8 bytes for 3 elements", "shape/offset mismatch"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "duplicate tensor name a", "duplicate names"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlaps", "overlapping tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "gap", "gap between tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap",
         "data not starting at 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "rank 5 exceeds 4", "rank 5"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer", "negative dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer", "fractional dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer", "exponent dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero",
         "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer", "true as a dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
         4, "too large", "dim over 2^64"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         4, "shape too large", "numel overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "2 values",
         "one offset"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "too many",
         "three offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "missing data_offsets",
         "missing offsets"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing dtype", "missing dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "repeated key", "repeated key"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         "unexpected", "unknown key"},
        {"{\"a\":[1]}", 4, "expected '{'", "tensor entry not an object"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name",
         "empty name"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "metadata k: value is not a string",
         "metadata number"},
        {"{\"__metadata__\":{\"k\":null}}", 0, "not a string", "metadata null"},
        {"{\"__metadata__\":{\"k\":true}}", 0, "not a string", "metadata true"},
        {"{\"__metadata__\":{\"k\":{}}}", 0, "not a string", "metadata object"},
        {"{\"__metadata__\":[]}", 0, "expected '{'", "metadata array"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key k",
         "duplicate metadata key"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__",
         "two __metadata__"},
        {"{}", 8, "data section is 8 bytes", "data but no tensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].json);
        /* the "NUL after the object" case embeds its NUL in the length */
        if (strstr(cases[i].label, "NUL"))
            len += 1;
        char path[128];
        path_in(fx, "bad.safetensors", path, sizeof path);
        unsigned char *b = xmalloc(8 + len + cases[i].ndata);
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)((uint64_t)len >> (8 * k));
        memcpy(b + 8, cases[i].json, len);
        memcpy(b + 8 + len, d, cases[i].ndata);
        write_bytes(path, b, 8 + len + cases[i].ndata);
        free(b);
        expect_bad(path, cases[i].want, cases[i].label);
    }
    /* Names in messages are cleaned so the message stays one line. */
    expect_bad_json(fx, "{\"a\\nb\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,4]}}", d,
                    4, "tensor a?b: dtype", "newline in a bad tensor's name");
}

/* Files from other writers: unpadded headers, whitespace, escapes. */
static void test_foreign_files(const fixture *fx)
{
    static const float d[7] = {1.5f, -2.0f, 3.0f, 0.25f, 5.0f, 6.0f, 7.0f};
    char path[128];
    path_in(fx, "foreign.safetensors", path, sizeof path);
    /* 8+N must hit residues 1..7 mod 8: pad the JSON with 0..7 extra spaces. */
    const char *base = " {\n\t\"__metadata__\" : { \"s\" : \"caf\\u00e9 \\ud83d\\ude00 \\/\\\"\" } ,"
                       "\"caf\\u00e9\":{\"data_offsets\":[0,12],\"shape\":[3],\"dtype\":\"F32\"},"
                       "\"z\" : {\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[12,28]},"
                       "\"zero\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[28,28]}}";
    for (int extra = 0; extra < 8; extra++) {
        char json[1024];
        snprintf(json, sizeof json, "%s%.*s", base, extra, "        ");
        write_raw_st(path, json, d, sizeof d);
        st_file f;
        gl_error err = {{0}};
        int rc = st_read(path, &f, &err);
        size_t start = 8 + strlen(json);
        int ok = rc == 0 && f.ntensors == 3 && f.nmeta == 1;
        const st_tensor_in *a = ok ? st_find(&f, "caf\xc3\xa9") : NULL;
        const st_tensor_in *z = ok ? st_find(&f, "z") : NULL;
        const char *s = ok ? st_meta_get(&f, "s") : NULL;
        ok = ok && a && z && a->numel == 3 && z->numel == 4 && z->ndim == 2 &&
             !memcmp(a->data, d, 12) && !memcmp(z->data, d + 3, 16) &&
             ((uintptr_t)a->data % 8) == 0 && s &&
             strcmp(s, "caf\xc3\xa9 \xf0\x9f\x98\x80 /\"") == 0 && st_find(&f, "zero") &&
             st_find(&f, "zero")->numel == 0;
        CHECK(ok, "foreign file, data at offset %zu (%%8 = %zu): %s", start, start % 8,
              rc ? err.msg : "values, escapes and alignment ok");
        if (rc == 0)
            st_free(&f);
    }
}

static void test_write_errors(const fixture *fx)
{
    float v[4] = {1, 2, 3, 4};
    st_tensor_out t = {"w", v, 1, {4}};
    gl_error err = {{0}};
    char path[128];

    const char *missing = "/nonexistent/dir/out.safetensors";
    int rc = st_write(missing, &t, 1, NULL, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, missing) && strstr(err.msg, "No such file"),
          "missing directory: \"%s\"", err.msg);

    /* rename() over a directory fails after the data is written: the temp
     * file must be removed. */
    path_in(fx, "adir", path, sizeof path);
    mkdir(path, 0755);
    int before = count_dir_entries(fx->dir);
    rc = st_write(path, &t, 1, NULL, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, path) && strstr(err.msg, "rename"),
          "rename onto a directory: \"%s\"", err.msg);
    CHECK(count_dir_entries(fx->dir) == before && !has_temp_file(fx->dir),
          "temp file removed after a failed rename");
    rmdir(path);

    /* A write that fails half way (file size limit standing in for a full
     * disk): error names the path, the old file survives, no temp file. */
    path_in(fx, "keep.safetensors", path, sizeof path);
    rc = st_write(path, &t, 1, NULL, 0, &err);
    size_t old_size;
    unsigned char *old = read_bytes(path, &old_size);
    enum { BIG = 1 << 16 };
    float *big = xcalloc(BIG, sizeof *big);
    st_tensor_out tb = {"big", big, 1, {BIG}};
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    int limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
    rc = st_write(path, &tb, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    CHECK(limited && rc == -1 && strstr(err.msg, path) && strstr(err.msg, "write") &&
              strstr(err.msg, "File too large") && !strchr(err.msg, '\n'),
          "write beyond the file size limit: \"%s\"", err.msg);
    size_t now_size;
    unsigned char *now = read_bytes(path, &now_size);
    CHECK(old && now && now_size == old_size && !memcmp(old, now, old_size) &&
              !has_temp_file(fx->dir),
          "failed write leaves the old file intact and no temp file");
    free(old);
    free(now);
    free(big);

    /* Read-only directory: permissions do not stop root, so only as a user. */
    if (geteuid() != 0) {
        char ro[128], p2[160];
        path_in(fx, "ro", ro, sizeof ro);
        mkdir(ro, 0555);
        snprintf(p2, sizeof p2, "%s/x.safetensors", ro);
        rc = st_write(p2, &t, 1, NULL, 0, &err);
        CHECK(rc == -1 && strstr(err.msg, p2) && strstr(err.msg, "Permission denied"),
              "read-only directory: \"%s\"", err.msg);
        rmdir(ro);
    } else {
        SKIP("read-only directory: running as root, which permissions do not stop");
    }

    /* Bad arguments are refused before anything touches the disk. */
    path_in(fx, "args.safetensors", path, sizeof path);
    st_tensor_out dup[2] = {{"w", v, 1, {4}}, {"w", v, 1, {4}}};
    rc = st_write(path, dup, 2, NULL, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, "duplicate tensor name w"), "duplicate names: \"%s\"",
          err.msg);
    st_tensor_out reserved = {"__metadata__", v, 1, {4}};
    rc = st_write(path, &reserved, 1, NULL, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, "reserved"), "__metadata__ as a name: \"%s\"", err.msg);
    st_tensor_out rank5 = {"r", v, 5, {1, 1, 1, 1}};
    rc = st_write(path, &rank5, 1, NULL, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, "rank"), "rank 5: \"%s\"", err.msg);
    st_meta badutf = {"k", "\xff"};
    rc = st_write(path, &t, 1, &badutf, 1, &err);
    CHECK(rc == -1 && strstr(err.msg, "UTF-8"), "invalid UTF-8 metadata: \"%s\"", err.msg);
    st_meta dupm[2] = {{"k", "1"}, {"k", "2"}};
    rc = st_write(path, &t, 1, dupm, 2, &err);
    CHECK(rc == -1 && strstr(err.msg, "duplicate metadata key k"), "duplicate keys: \"%s\"",
          err.msg);
    CHECK(access(path, F_OK) != 0, "refused writes created no file");
}

/* xorshift64*: the test's own random stream, independent of src/rng.c. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Random mutations of a valid file: st_read either succeeds with tensors
 * that lie inside the blob, or fails with a message naming the path. */
static void test_mutations(const fixture *fx)
{
    sample sm;
    sample_init(&sm);
    char src[128], path[128];
    path_in(fx, "fuzz_src.safetensors", src, sizeof src);
    path_in(fx, "fuzz.safetensors", path, sizeof path);
    gl_error err = {{0}};
    st_write(src, sm.t, 5, sm.m, 6, &err);
    size_t size;
    unsigned char *raw = read_bytes(src, &size);
    if (!raw) {
        CHECK(0, "could not read %s", src);
        return;
    }
    size_t hend = 8 + (size_t)header_len(raw);
    static const char interesting[] = "{}[]\",:0123456789\\u eE.-tfn";
    unsigned char *b = xmalloc(size);
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    int bad = 0, accepted = 0, iters = 2000;
    char first_bad[600] = "";
    for (int it = 0; it < iters; it++) {
        memcpy(b, raw, size);
        size_t len = size;
        uint64_t kind = next_rand(&seed) % 8;
        int flips = 1 + (int)(next_rand(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            /* three quarters of the hits land in the header */
            size_t pos = next_rand(&seed) % 4 ? next_rand(&seed) % hend : next_rand(&seed) % size;
            if (kind < 4)
                b[pos] ^= (unsigned char)(1u << (next_rand(&seed) % 8));
            else if (kind < 6)
                b[pos] = (unsigned char)interesting[next_rand(&seed) % (sizeof interesting - 1)];
            else
                b[pos] = (unsigned char)next_rand(&seed);
        }
        if (next_rand(&seed) % 10 == 0)
            len = (size_t)(next_rand(&seed) % size);
        write_bytes(path, b, len);
        st_file f;
        gl_error e = {{0}};
        int rc = st_read(path, &f, &e);
        int ok;
        if (rc == 0) {
            accepted++;
            /* touch every float so ASan sees any pointer outside the blob */
            float sum = 0.0f;
            ok = f.blob_size == len;
            for (size_t i = 0; i < f.ntensors; i++) {
                const st_tensor_in *t = &f.tensors[i];
                ok = ok && st_find(&f, t->name) == t &&
                     (const unsigned char *)t->data >= f.blob &&
                     (const unsigned char *)(t->data + t->numel) <= f.blob + f.blob_size;
                for (size_t j = 0; j < t->numel; j++)
                    sum += t->data[j];
            }
            for (size_t i = 0; i < f.nmeta; i++)
                ok = ok && st_meta_get(&f, f.meta[i].key) != NULL;
            volatile float sink = sum;
            (void)sink;
            st_free(&f);
        } else {
            ok = rc == -1 && e.msg[0] && strstr(e.msg, path) && !strchr(e.msg, '\n') &&
                 f.tensors == NULL && f.blob == NULL;
        }
        if (!ok) {
            if (!bad)
                snprintf(first_bad, sizeof first_bad, "iteration %d: rc %d \"%s\"", it, rc,
                         e.msg);
            bad++;
        }
    }
    CHECK(bad == 0, "%d mutated files: %d accepted, rest refused with a message; %d bad %s",
          iters, accepted, bad, first_bad);
    CHECK(accepted > 0 && accepted < iters, "mutations hit both outcomes (%d accepted)",
          accepted);
    free(b);
    free(raw);
    unlink(path);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    fixture fx;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/gatelab_st_XXXXXX");
    if (!mkdtemp(fx.dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("safetensors (files in %s)\n", fx.dir);
    test_round_trip(&fx);
    test_alignment(&fx);
    test_python_reader(&fx);
    test_truncated(&fx);
    test_bad_headers(&fx);
    test_foreign_files(&fx);
    test_write_errors(&fx);
    test_mutations(&fx);
    remove_tree(fx.dir);
    return check_finish();
}
