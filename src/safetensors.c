/* safetensors: owns the checkpoint file format — writing F32 tensors plus a
 * string-to-string "__metadata__" map atomically (temp file, fsync, rename),
 * and reading a file back through a strict parser that validates the header
 * (length, JSON, dtype, shapes, offsets) before any tensor is handed out.
 *
 * Layout: u64 little-endian N, N bytes of JSON (padded with spaces so that
 * 8+N is a multiple of 8), then the data section; "data_offsets" are relative
 * to the data section and tensors tile it exactly, without gaps or overlap.
 * Floats are written and read raw, which is right only on little-endian
 * machines (checked at compile time). The header JSON parser lives in
 * st_header.c, helpers shared with it in st_util.c. */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "st_header.h"
#include "st_util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors writes floats raw: little-endian hosts only");
_Static_assert(sizeof(float) == 4, "F32 is 4 bytes");

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* refuse larger JSON headers */

/* ------------------------------------------------ shared by writer and reader */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns the first string that occurs twice among n records of stride bytes
 * whose first member is the string pointer (st_tensor_out, st_tensor_in and
 * st_meta all start with it), or NULL. Sorts a copy: O(n log n), so a hostile
 * header with many keys stays cheap. */
static const char *find_duplicate(const void *records, size_t n, size_t stride)
{
    if (n < 2)
        return NULL;
    const char **sorted = xmalloc(n * sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        memcpy(&sorted[i], (const char *)records + i * stride, sizeof sorted[i]);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            dup = sorted[i];
    free(sorted);
    return dup;
}

_Static_assert(offsetof(st_tensor_out, name) == 0, "find_duplicate reads the name first");
_Static_assert(offsetof(st_tensor_in, name) == 0, "find_duplicate reads the name first");
_Static_assert(offsetof(st_meta, key) == 0, "find_duplicate reads the key first");

/* Product of dims, 0 on overflow of numel*4 (with *ok cleared). */
static size_t numel_of(const size_t *shape, int ndim, int *ok)
{
    size_t n = 1;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > SIZE_MAX / 4 / shape[i]) {
            *ok = 0;
            return 0;
        }
        n *= shape[i];
    }
    return n;
}

/* ---------------------------------------------------------------- writer */

static int check_write_args(const char *path, const st_tensor_out *tensors, size_t ntensors,
                            const st_meta *meta, size_t nmeta, gl_error *err)
{
    char nb[ST_NAME_SHOWN + 4];
    if (ntensors && !tensors)
        return gl_fail(err, "%s: %zu tensors but no tensor table", path, ntensors);
    if (nmeta && !meta)
        return gl_fail(err, "%s: %zu metadata entries but no table", path, nmeta);
    for (size_t i = 0; i < ntensors; i++) {
        const st_tensor_out *t = &tensors[i];
        if (!t->name || !t->name[0])
            return gl_fail(err, "%s: tensor %zu has no name", path, i);
        if (!st_utf8_valid((const unsigned char *)t->name, strlen(t->name)))
            return gl_fail(err, "%s: tensor %zu: name is not valid UTF-8", path, i);
        if (strcmp(t->name, "__metadata__") == 0)
            return gl_fail(err, "%s: tensor name __metadata__ is reserved", path);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return gl_fail(err, "%s: tensor %s: rank %d not in 0..%d", path,
                           st_shown(nb, t->name), t->ndim, ST_MAX_DIMS);
        int ok;
        size_t n = numel_of(t->shape, t->ndim, &ok);
        if (!ok)
            return gl_fail(err, "%s: tensor %s: size overflows", path, st_shown(nb, t->name));
        if (n && !t->data)
            return gl_fail(err, "%s: tensor %s: no data", path, st_shown(nb, t->name));
    }
    for (size_t i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return gl_fail(err, "%s: metadata entry %zu has no key or value", path, i);
        if (!st_utf8_valid((const unsigned char *)meta[i].key, strlen(meta[i].key)) ||
            !st_utf8_valid((const unsigned char *)meta[i].value, strlen(meta[i].value)))
            return gl_fail(err, "%s: metadata %s: not valid UTF-8", path,
                           st_shown(nb, meta[i].key));
    }
    const char *dup = find_duplicate(tensors, ntensors, sizeof *tensors);
    if (dup)
        return gl_fail(err, "%s: duplicate tensor name %s", path, st_shown(nb, dup));
    dup = find_duplicate(meta, nmeta, sizeof *meta);
    if (dup)
        return gl_fail(err, "%s: duplicate metadata key %s", path, st_shown(nb, dup));
    return 0;
}

/* Builds "<N><json, space-padded so 8+N is a multiple of 8>" into b; the
 * JSON comes from the project's writer (json.h). */
static void build_header(gl_strbuf *b, const st_tensor_out *tensors, size_t ntensors,
                         const st_meta *meta, size_t nmeta)
{
    json_buf j;
    json_init(&j);
    json_object_begin(&j);
    if (nmeta) {
        json_key(&j, "__metadata__");
        json_object_begin(&j);
        for (size_t i = 0; i < nmeta; i++) {
            json_key(&j, meta[i].key);
            json_string(&j, meta[i].value);
        }
        json_object_end(&j);
    }
    size_t off = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const st_tensor_out *t = &tensors[i];
        int ok;
        size_t bytes = numel_of(t->shape, t->ndim, &ok) * 4;
        json_key(&j, t->name);
        json_object_begin(&j);
        json_key(&j, "dtype");
        json_string(&j, "F32");
        json_key(&j, "shape");
        json_array_begin(&j);
        for (int d = 0; d < t->ndim; d++)
            json_uint(&j, t->shape[d]);
        json_array_end(&j);
        json_key(&j, "data_offsets");
        json_array_begin(&j);
        json_uint(&j, off);
        json_uint(&j, off + bytes);
        json_array_end(&j);
        json_object_end(&j);
        off += bytes;
    }
    json_object_end(&j);
    gl_strbuf_put(b, "\0\0\0\0\0\0\0\0", 8); /* length, filled in below */
    gl_strbuf_put(b, j.s.p, j.s.len);
    json_free(&j);
    while (b->len % 8)
        gl_strbuf_put(b, " ", 1);
    uint64_t n = (uint64_t)(b->len - 8);
    for (int i = 0; i < 8; i++)
        b->p[i] = (char)(unsigned char)(n >> (8 * i));
}

/* Writes all n bytes; returns 0 or an errno value. */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Best effort: makes the rename durable. Some file systems refuse fsync on a
 * directory; the file itself is already safe, so errors are ignored. */
static void fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrdup(path) : xstrdup(".");
    if (slash)
        dir[slash == path ? 1 : (size_t)(slash - path)] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_write(const char *path, const st_tensor_out *tensors, size_t ntensors,
             const st_meta *meta, size_t nmeta, gl_error *err)
{
    if (!path || !path[0])
        return gl_fail(err, "safetensors: empty output path");
    if (check_write_args(path, tensors, ntensors, meta, nmeta, err))
        return -1;

    gl_strbuf hdr = {0};
    build_header(&hdr, tensors, ntensors, meta, nmeta);

    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    const char *what = "create temp file";
    int e = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
        free(hdr.p);
        free(tmp);
        return gl_fail(err, "%s: %s: %s", path, what, strerror(e));
    }
    what = "write";
    e = write_all(fd, hdr.p, hdr.len);
    for (size_t i = 0; i < ntensors && !e; i++) {
        int ok;
        size_t bytes = numel_of(tensors[i].shape, tensors[i].ndim, &ok) * 4;
        if (bytes)
            e = write_all(fd, tensors[i].data, bytes);
    }
    if (!e && fsync(fd) != 0) {
        e = errno;
        what = "fsync";
    }
    if (close(fd) != 0 && !e) {
        e = errno;
        what = "close";
    }
    if (!e && rename(tmp, path) != 0) {
        e = errno;
        what = "rename";
    }
    free(hdr.p);
    if (e) {
        unlink(tmp);
        free(tmp);
        return gl_fail(err, "%s: %s: %s", path, what, strerror(e));
    }
    free(tmp);
    fsync_parent_dir(path);
    return 0;
}

size_t st_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tag = strstr(e->d_name, ".tmp.");
        if (!tag)
            continue;
        char *end;
        long pid = strtol(tag + 5, &end, 10);
        if (end == tag + 5 || *end || pid <= 0 || pid == (long)getpid())
            continue;
        /* EPERM: the process exists but is another user's */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* ---------------------------------------------------------------- reader */

static int cmp_span(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    if (x[1] != y[1])
        return x[1] < y[1] ? -1 : 1;
    return 0;
}

/* Checks every tensor's span against its shape and the data section, then
 * that the spans tile [0, data_size) exactly (sorted: no overlap, no gap). */
static int check_layout(const char *path, st_header *h, size_t data_size, gl_error *err)
{
    char nb[ST_NAME_SHOWN + 4];
    for (size_t i = 0; i < h->n; i++) {
        st_tensor_in *t = &h->t[i];
        int ok;
        t->numel = numel_of(t->shape, t->ndim, &ok);
        if (!ok)
            return gl_fail(err, "%s: tensor %s: shape too large", path, st_shown(nb, t->name));
        if (h->end[i] < h->begin[i])
            return gl_fail(err, "%s: tensor %s: data_offsets end %zu < begin %zu", path,
                           st_shown(nb, t->name), h->end[i], h->begin[i]);
        if (h->end[i] > data_size)
            return gl_fail(err, "%s: tensor %s: data_offsets [%zu,%zu] beyond data size %zu",
                           path, st_shown(nb, t->name), h->begin[i], h->end[i], data_size);
        if (h->end[i] - h->begin[i] != t->numel * 4)
            return gl_fail(err, "%s: tensor %s: %zu bytes for %zu elements", path,
                           st_shown(nb, t->name), h->end[i] - h->begin[i], t->numel);
    }
    /* (begin, end, index) triples sorted by span */
    size_t *span = xmalloc((h->n ? h->n : 1) * 3 * sizeof *span);
    for (size_t i = 0; i < h->n; i++) {
        span[3 * i] = h->begin[i];
        span[3 * i + 1] = h->end[i];
        span[3 * i + 2] = i;
    }
    qsort(span, h->n, 3 * sizeof *span, cmp_span);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < h->n && !rc; i++) {
        const char *name = h->t[span[3 * i + 2]].name;
        if (span[3 * i] < at)
            rc = gl_fail(err, "%s: tensor %s: data overlaps another tensor", path,
                         st_shown(nb, name));
        else if (span[3 * i] > at)
            rc = gl_fail(err, "%s: tensor %s: gap before its data (offset %zu, expected %zu)",
                         path, st_shown(nb, name), span[3 * i], at);
        at = span[3 * i + 1];
    }
    free(span);
    if (rc)
        return rc;
    if (at != data_size)
        return gl_fail(err, "%s: data section is %zu bytes but tensors cover %zu", path,
                       data_size, at);
    return 0;
}

/* Reads the whole file into a fresh buffer. */
static int read_file(const char *path, unsigned char **buf, size_t *size, gl_error *err)
{
    *buf = NULL;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; a device or a
     * FIFO is refused before a byte is read (/dev/zero never ends) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return gl_fail(err, "%s: open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gl_fail(err, "%s: stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gl_fail(err, "%s: not a regular file", path);
    }
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096; /* +1: EOF without growing */
    unsigned char *p = xmalloc(cap);
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            p = gl_grow(p, n, cap, 1);
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            free(p);
            return gl_fail(err, "%s: read: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *buf = p;
    *size = n;
    return 0;
}

int st_read(const char *path, st_file *out, gl_error *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *blob;
    size_t size;
    if (read_file(path, &blob, &size, err))
        return -1;
    if (size < 8) {
        free(blob);
        return gl_fail(err, "%s: truncated: %zu bytes", path, size);
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)blob[i] << (8 * i);
    if (hlen > (uint64_t)(size - 8) || hlen > ST_MAX_HEADER) {
        free(blob);
        if (hlen > (uint64_t)(size - 8))
            return gl_fail(err, "%s: header length %llu exceeds file size %zu", path,
                           (unsigned long long)hlen, size);
        return gl_fail(err, "%s: header length %llu exceeds limit %llu", path,
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    }
    size_t n = (size_t)hlen;
    st_header h;
    if (st_header_parse(blob + 8, n, path, &h, err) == 0) {
        const char *dup = find_duplicate(h.t, h.n, sizeof *h.t);
        char nb[ST_NAME_SHOWN + 4];
        if (dup)
            gl_fail(err, "%s: duplicate tensor name %s", path, st_shown(nb, dup));
        else if ((dup = find_duplicate(h.meta, h.nmeta, sizeof *h.meta)))
            gl_fail(err, "%s: duplicate metadata key %s", path, st_shown(nb, dup));
        else if (check_layout(path, &h, size - 8 - n, err) == 0)
            goto valid;
    }
    st_header_free(&h);
    free(blob);
    return -1;

valid:;
    /* Floats need aligned storage. Our writer pads so the data section starts
     * at a multiple of 8; for other writers' unpadded files, move the data
     * down over the (already parsed) header tail. blob_size stays the file size. */
    size_t start = 8 + n;
    if (start % 8) {
        size_t to = start - start % 8;
        memmove(blob + to, blob + start, size - start);
        start = to;
    }
    for (size_t i = 0; i < h.n; i++)
        h.t[i].data = (const float *)(const void *)(blob + start + h.begin[i]);
    out->tensors = h.t;
    out->ntensors = h.n;
    out->meta = h.meta;
    out->nmeta = h.nmeta;
    out->blob = blob;
    out->blob_size = size;
    free(h.begin);
    free(h.end);
    return 0;
}

void st_free(st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    for (size_t i = 0; i < f->nmeta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->blob);
    memset(f, 0, sizeof *f);
}

const st_tensor_in *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_meta_get(const st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}
