/* safetensors: owns the checkpoint file format — writing F32 tensors plus a
 * string-to-string "__metadata__" map atomically (temp file, fsync, rename),
 * and reading a file back through a strict parser that validates the header
 * (length, JSON, dtype, shapes, offsets) before any tensor is handed out.
 *
 * Layout: u64 little-endian N, N bytes of JSON (padded with spaces so that
 * 8+N is a multiple of 8), then the data section; "data_offsets" are relative
 * to the data section and tensors tile it exactly, without gaps or overlap.
 * Floats are written and read raw, which is right only on little-endian
 * machines (checked at compile time). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors writes floats raw: little-endian hosts only");
_Static_assert(sizeof(float) == 4, "F32 is 4 bytes");

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* refuse larger JSON headers */
#define ST_NAME_SHOWN 64                            /* bytes of a name shown in errors */

/* ---------------------------------------------------------------- shared */

/* Returns 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Copies a (possibly hostile) name into buf for an error message: at most
 * ST_NAME_SHOWN bytes, control characters replaced so the message stays one line. */
static const char *shown(char buf[ST_NAME_SHOWN + 4], const char *name)
{
    size_t i = 0;
    for (; name[i] && i < ST_NAME_SHOWN; i++)
        buf[i] = ((unsigned char)name[i] < 0x20 || name[i] == 0x7F) ? '?' : name[i];
    if (name[i])
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

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

typedef struct {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = xmalloc(cap);
        if (b->len)
            memcpy(p, b->p, b->len);
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Appends s as a JSON string literal: quotes, backslashes and control
 * characters escaped; other bytes (already checked to be UTF-8) raw. */
static void sb_json_string(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)&c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

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
        if (!utf8_valid((const unsigned char *)t->name, strlen(t->name)))
            return gl_fail(err, "%s: tensor %zu: name is not valid UTF-8", path, i);
        if (strcmp(t->name, "__metadata__") == 0)
            return gl_fail(err, "%s: tensor name __metadata__ is reserved", path);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return gl_fail(err, "%s: tensor %s: rank %d not in 0..%d", path,
                           shown(nb, t->name), t->ndim, ST_MAX_DIMS);
        int ok;
        size_t n = numel_of(t->shape, t->ndim, &ok);
        if (!ok)
            return gl_fail(err, "%s: tensor %s: size overflows", path, shown(nb, t->name));
        if (n && !t->data)
            return gl_fail(err, "%s: tensor %s: no data", path, shown(nb, t->name));
    }
    for (size_t i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return gl_fail(err, "%s: metadata entry %zu has no key or value", path, i);
        if (!utf8_valid((const unsigned char *)meta[i].key, strlen(meta[i].key)) ||
            !utf8_valid((const unsigned char *)meta[i].value, strlen(meta[i].value)))
            return gl_fail(err, "%s: metadata %s: not valid UTF-8", path,
                           shown(nb, meta[i].key));
    }
    const char *dup = find_duplicate(tensors, ntensors, sizeof *tensors);
    if (dup)
        return gl_fail(err, "%s: duplicate tensor name %s", path, shown(nb, dup));
    dup = find_duplicate(meta, nmeta, sizeof *meta);
    if (dup)
        return gl_fail(err, "%s: duplicate metadata key %s", path, shown(nb, dup));
    return 0;
}

/* Builds "<N><json, space-padded so 8+N is a multiple of 8>" into b. */
static void build_header(strbuf *b, const st_tensor_out *tensors, size_t ntensors,
                         const st_meta *meta, size_t nmeta)
{
    char num[64];
    sb_put(b, "\0\0\0\0\0\0\0\0", 8); /* length, filled in below */
    sb_str(b, "{");
    if (nmeta) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i)
                sb_str(b, ",");
            sb_json_string(b, meta[i].key);
            sb_str(b, ":");
            sb_json_string(b, meta[i].value);
        }
        sb_str(b, "}");
    }
    size_t off = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const st_tensor_out *t = &tensors[i];
        int ok;
        size_t bytes = numel_of(t->shape, t->ndim, &ok) * 4;
        if (nmeta || i)
            sb_str(b, ",");
        sb_json_string(b, t->name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%zu", d ? "," : "", t->shape[d]);
            sb_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        sb_str(b, num);
        off += bytes;
    }
    sb_str(b, "}");
    while (b->len % 8)
        sb_str(b, " ");
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

    strbuf hdr = {0};
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

/* ---------------------------------------------------------------- parser */

/* Strict recursive-descent parser over the header bytes. It follows the
 * safetensors schema directly: a top-level object whose values are either
 * the "__metadata__" object of strings or tensor objects with exactly
 * "dtype", "shape" and "data_offsets". Any other JSON (true/false/null,
 * fractions, unknown keys) is rejected with the byte offset it was found at. */
typedef struct {
    const unsigned char *s;
    size_t n, i;
    const char *path;
    gl_error *err;
} jparser;

static int jfail(jparser *p, const char *what)
{
    return gl_fail(p->err, "%s: header JSON: %s at byte %zu", p->path, what, p->i);
}

static void jws(jparser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* Skips whitespace, then consumes c if it is next. */
static int jaccept(jparser *p, char c)
{
    jws(p);
    if (p->i < p->n && p->s[p->i] == (unsigned char)c) {
        p->i++;
        return 1;
    }
    return 0;
}

static int jexpect(jparser *p, char c)
{
    if (jaccept(p, c))
        return 0;
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return jfail(p, what);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int jhex4(jparser *p, uint32_t *out)
{
    if (p->n - p->i < 4)
        return jfail(p, "short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0)
            return jfail(p, "bad \\u escape");
        v = v << 4 | (uint32_t)h;
    }
    p->i += 4;
    *out = v;
    return 0;
}

static void put_utf8(strbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_put(b, u, n);
}

/* Parses a string literal into a new NUL-terminated buffer (*out, owned by
 * the caller). Rejects raw control characters, invalid UTF-8, lone
 * surrogates and \u0000 (names and values are C strings). */
static int jstring(jparser *p, char **out)
{
    *out = NULL;
    jws(p);
    if (p->i >= p->n || p->s[p->i] != '"')
        return jfail(p, "expected string");
    p->i++;
    strbuf b = {0};
    sb_put(&b, "", 0);
    for (;;) {
        if (p->i >= p->n) {
            free(b.p);
            return jfail(p, "unterminated string");
        }
        size_t run = p->i;
        while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && p->s[p->i] >= 0x20)
            p->i++;
        if (!utf8_valid(p->s + run, p->i - run)) {
            p->i = run;
            free(b.p);
            return jfail(p, "invalid UTF-8 in string");
        }
        sb_put(&b, (const char *)p->s + run, p->i - run);
        if (p->i >= p->n)
            continue;
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            *out = b.p;
            return 0;
        }
        if (c < 0x20) {
            free(b.p);
            return jfail(p, "control character in string");
        }
        /* backslash escape */
        p->i++;
        if (p->i >= p->n) {
            free(b.p);
            return jfail(p, "unterminated escape");
        }
        c = p->s[p->i++];
        uint32_t cp = 0;
        switch (c) {
        case '"': sb_put(&b, "\"", 1); break;
        case '\\': sb_put(&b, "\\", 1); break;
        case '/': sb_put(&b, "/", 1); break;
        case 'b': sb_put(&b, "\b", 1); break;
        case 'f': sb_put(&b, "\f", 1); break;
        case 'n': sb_put(&b, "\n", 1); break;
        case 'r': sb_put(&b, "\r", 1); break;
        case 't': sb_put(&b, "\t", 1); break;
        case 'u':
            if (jhex4(p, &cp)) {
                free(b.p);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    free(b.p);
                    return jfail(p, "unpaired surrogate");
                }
                p->i += 2;
                if (jhex4(p, &lo)) {
                    free(b.p);
                    return -1;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(b.p);
                    return jfail(p, "unpaired surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(b.p);
                return jfail(p, "unpaired surrogate");
            } else if (cp == 0) {
                free(b.p);
                return jfail(p, "\\u0000 in string");
            }
            put_utf8(&b, cp);
            break;
        default:
            p->i--;
            free(b.p);
            return jfail(p, "bad escape");
        }
    }
}

/* Parses a non-negative integer literal (JSON grammar: no leading zeros, no
 * sign, fraction or exponent) that fits in size_t. */
static int juint(jparser *p, size_t *out)
{
    jws(p);
    size_t start = p->i;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        return jfail(p, "expected non-negative integer");
    size_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        size_t d = (size_t)(p->s[p->i] - '0');
        if (v > (SIZE_MAX - d) / 10) {
            p->i = start;
            return jfail(p, "integer too large");
        }
        v = v * 10 + d;
        p->i++;
    }
    if (p->s[start] == '0' && p->i - start > 1) {
        p->i = start;
        return jfail(p, "leading zero in integer");
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        return jfail(p, "expected non-negative integer");
    *out = v;
    return 0;
}

/* "[" uint ("," uint)* "]" or "[]"; at most max values. */
static int juint_array(jparser *p, size_t *vals, int max, int *count)
{
    *count = 0;
    if (jexpect(p, '['))
        return -1;
    if (jaccept(p, ']'))
        return 0;
    do {
        if (*count == max)
            return jfail(p, "too many array elements");
        if (juint(p, &vals[*count]))
            return -1;
        (*count)++;
    } while (jaccept(p, ','));
    return jexpect(p, ']');
}

typedef struct {
    st_tensor_in *t;
    size_t n, cap;
    size_t *begin, *end; /* data_offsets, parallel to t */
    st_meta *meta;
    size_t nmeta, metacap;
    int saw_meta;
} st_header;

static void hdr_free(st_header *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->t[i].name);
    for (size_t i = 0; i < h->nmeta; i++) {
        free((char *)h->meta[i].key);
        free((char *)h->meta[i].value);
    }
    free(h->t);
    free(h->begin);
    free(h->end);
    free(h->meta);
    memset(h, 0, sizeof *h);
}

/* Grows a parallel-array table; dst receives the new allocation. */
static void *grow(void *old, size_t n, size_t newcap, size_t elem)
{
    void *p = xmalloc(newcap * elem);
    if (n)
        memcpy(p, old, n * elem);
    free(old);
    return p;
}

/* The "__metadata__" value: an object of string to string. */
static int parse_metadata(jparser *p, st_header *h)
{
    if (h->saw_meta)
        return jfail(p, "duplicate __metadata__");
    h->saw_meta = 1;
    if (jexpect(p, '{'))
        return -1;
    if (jaccept(p, '}'))
        return 0;
    do {
        char *key, *val;
        if (jstring(p, &key))
            return -1;
        if (jexpect(p, ':')) {
            free(key);
            return -1;
        }
        jws(p);
        if (p->i < p->n && p->s[p->i] != '"') {
            char nb[ST_NAME_SHOWN + 4];
            gl_fail(p->err, "%s: metadata %s: value is not a string (byte %zu)", p->path,
                    shown(nb, key), p->i);
            free(key);
            return -1;
        }
        if (jstring(p, &val)) {
            free(key);
            return -1;
        }
        if (h->nmeta == h->metacap) {
            h->metacap = h->metacap ? h->metacap * 2 : 16;
            h->meta = grow(h->meta, h->nmeta, h->metacap, sizeof *h->meta);
        }
        h->meta[h->nmeta].key = key;
        h->meta[h->nmeta].value = val;
        h->nmeta++;
    } while (jaccept(p, ','));
    return jexpect(p, '}');
}

/* A tensor value: {"dtype":"F32","shape":[...],"data_offsets":[b,e]} in any
 * key order, each key exactly once. The entry is already appended to h. */
static int parse_tensor(jparser *p, st_header *h, size_t idx)
{
    st_tensor_in *t = &h->t[idx];
    char nb[ST_NAME_SHOWN + 4];
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (jexpect(p, '{'))
        return -1;
    if (!jaccept(p, '}')) {
        do {
            char *key;
            if (jstring(p, &key))
                return -1;
            if (jexpect(p, ':')) {
                free(key);
                return -1;
            }
            int rc = 0;
            if (strcmp(key, "dtype") == 0 && !have_dtype) {
                char *dt;
                have_dtype = 1;
                rc = jstring(p, &dt);
                if (!rc && strcmp(dt, "F32") != 0) {
                    char db[ST_NAME_SHOWN + 4];
                    rc = gl_fail(p->err, "%s: tensor %s: dtype %s not supported", p->path,
                                 shown(nb, t->name), shown(db, dt));
                }
                free(dt);
            } else if (strcmp(key, "shape") == 0 && !have_shape) {
                have_shape = 1;
                size_t dims[ST_MAX_DIMS + 1];
                int nd;
                rc = juint_array(p, dims, ST_MAX_DIMS + 1, &nd);
                if (!rc && nd > ST_MAX_DIMS)
                    rc = gl_fail(p->err, "%s: tensor %s: rank %d exceeds %d", p->path,
                                 shown(nb, t->name), nd, ST_MAX_DIMS);
                if (!rc) {
                    t->ndim = nd;
                    memcpy(t->shape, dims, (size_t)nd * sizeof dims[0]);
                }
            } else if (strcmp(key, "data_offsets") == 0 && !have_off) {
                have_off = 1;
                size_t off[2];
                int no;
                rc = juint_array(p, off, 2, &no);
                if (!rc && no != 2)
                    rc = gl_fail(p->err, "%s: tensor %s: data_offsets needs 2 values", p->path,
                                 shown(nb, t->name));
                if (!rc) {
                    h->begin[idx] = off[0];
                    h->end[idx] = off[1];
                }
            } else {
                char kb[ST_NAME_SHOWN + 4];
                rc = gl_fail(p->err, "%s: tensor %s: unexpected or repeated key %s", p->path,
                             shown(nb, t->name), shown(kb, key));
            }
            free(key);
            if (rc)
                return -1;
        } while (jaccept(p, ','));
        if (jexpect(p, '}'))
            return -1;
    }
    if (!have_dtype || !have_shape || !have_off)
        return gl_fail(p->err, "%s: tensor %s: missing %s", p->path, shown(nb, t->name),
                       !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return 0;
}

static int parse_header(jparser *p, st_header *h)
{
    if (jexpect(p, '{'))
        return -1;
    if (!jaccept(p, '}')) {
        do {
            char *key;
            if (jstring(p, &key))
                return -1;
            if (jexpect(p, ':')) {
                free(key);
                return -1;
            }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (parse_metadata(p, h))
                    return -1;
                continue;
            }
            if (!key[0]) {
                free(key);
                return jfail(p, "empty tensor name");
            }
            if (h->n == h->cap) {
                h->cap = h->cap ? h->cap * 2 : 64;
                h->t = grow(h->t, h->n, h->cap, sizeof *h->t);
                h->begin = grow(h->begin, h->n, h->cap, sizeof *h->begin);
                h->end = grow(h->end, h->n, h->cap, sizeof *h->end);
            }
            memset(&h->t[h->n], 0, sizeof h->t[h->n]);
            h->t[h->n].name = key;
            h->n++;
            if (parse_tensor(p, h, h->n - 1))
                return -1;
        } while (jaccept(p, ','));
        if (jexpect(p, '}'))
            return -1;
    }
    jws(p);
    if (p->i != p->n)
        return jfail(p, "trailing bytes after header object");
    return 0;
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
            return gl_fail(err, "%s: tensor %s: shape too large", path, shown(nb, t->name));
        if (h->end[i] < h->begin[i])
            return gl_fail(err, "%s: tensor %s: data_offsets end %zu < begin %zu", path,
                           shown(nb, t->name), h->end[i], h->begin[i]);
        if (h->end[i] > data_size)
            return gl_fail(err, "%s: tensor %s: data_offsets [%zu,%zu] beyond data size %zu",
                           path, shown(nb, t->name), h->begin[i], h->end[i], data_size);
        if (h->end[i] - h->begin[i] != t->numel * 4)
            return gl_fail(err, "%s: tensor %s: %zu bytes for %zu elements", path,
                           shown(nb, t->name), h->end[i] - h->begin[i], t->numel);
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
                         shown(nb, name));
        else if (span[3 * i] > at)
            rc = gl_fail(err, "%s: tensor %s: gap before its data (offset %zu, expected %zu)",
                         path, shown(nb, name), span[3 * i], at);
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gl_fail(err, "%s: open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 4096;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1; /* +1 so EOF is seen without growing */
    unsigned char *p = xmalloc(cap);
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            p = grow(p, n, cap, 1);
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
    jparser p = {blob + 8, n, 0, path, err};
    st_header h = {0};
    if (parse_header(&p, &h) == 0) {
        const char *dup = find_duplicate(h.t, h.n, sizeof *h.t);
        char nb[ST_NAME_SHOWN + 4];
        if (dup)
            gl_fail(err, "%s: duplicate tensor name %s", path, shown(nb, dup));
        else if ((dup = find_duplicate(h.meta, h.nmeta, sizeof *h.meta)))
            gl_fail(err, "%s: duplicate metadata key %s", path, shown(nb, dup));
        else if (check_layout(path, &h, size - 8 - n, err) == 0)
            goto valid;
    }
    hdr_free(&h);
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
