/* st_header: owns parsing of the safetensors JSON header. A strict
 * recursive-descent parser follows the schema directly: a top-level object
 * whose values are either the "__metadata__" object of strings or tensor
 * objects with exactly "dtype" (only "F32"), "shape" and "data_offsets". Any
 * other JSON (true/false/null, fractions, unknown keys), invalid UTF-8,
 * lone surrogates and \u0000 are rejected with the byte offset they were
 * found at. Duplicate names and the data layout are checked by the reader. */
#include "st_header.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_util.h"

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

static void put_utf8(gl_strbuf *b, uint32_t cp)
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
    gl_strbuf_put(b, u, n);
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
    gl_strbuf b = {0};
    gl_strbuf_put(&b, "", 0);
    for (;;) {
        if (p->i >= p->n) {
            free(b.p);
            return jfail(p, "unterminated string");
        }
        size_t run = p->i;
        while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && p->s[p->i] >= 0x20)
            p->i++;
        if (!st_utf8_valid(p->s + run, p->i - run)) {
            p->i = run;
            free(b.p);
            return jfail(p, "invalid UTF-8 in string");
        }
        gl_strbuf_put(&b, (const char *)p->s + run, p->i - run);
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
        case '"': gl_strbuf_put(&b, "\"", 1); break;
        case '\\': gl_strbuf_put(&b, "\\", 1); break;
        case '/': gl_strbuf_put(&b, "/", 1); break;
        case 'b': gl_strbuf_put(&b, "\b", 1); break;
        case 'f': gl_strbuf_put(&b, "\f", 1); break;
        case 'n': gl_strbuf_put(&b, "\n", 1); break;
        case 'r': gl_strbuf_put(&b, "\r", 1); break;
        case 't': gl_strbuf_put(&b, "\t", 1); break;
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
/* An object member's key and the colon after it; *out is the caller's to
 * free on success. */
static int jkey(jparser *p, char **out)
{
    if (jstring(p, out))
        return -1;
    if (jexpect(p, ':')) {
        free(*out);
        return -1;
    }
    return 0;
}

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

void st_header_free(st_header *h)
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
        if (jkey(p, &key))
            return -1;
        jws(p);
        if (p->i < p->n && p->s[p->i] != '"') {
            char nb[ST_NAME_SHOWN + 4];
            gl_fail(p->err, "%s: metadata %s: value is not a string (byte %zu)", p->path,
                    st_shown(nb, key), p->i);
            free(key);
            return -1;
        }
        if (jstring(p, &val)) {
            free(key);
            return -1;
        }
        if (h->nmeta == h->metacap) {
            h->metacap = h->metacap ? h->metacap * 2 : 16;
            h->meta = gl_grow(h->meta, h->nmeta, h->metacap, sizeof *h->meta);
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
            if (jkey(p, &key))
                return -1;
            int rc = 0;
            if (strcmp(key, "dtype") == 0 && !have_dtype) {
                char *dt;
                have_dtype = 1;
                rc = jstring(p, &dt);
                if (!rc && strcmp(dt, "F32") != 0) {
                    char db[ST_NAME_SHOWN + 4];
                    rc = gl_fail(p->err, "%s: tensor %s: dtype %s not supported", p->path,
                                 st_shown(nb, t->name), st_shown(db, dt));
                }
                free(dt);
            } else if (strcmp(key, "shape") == 0 && !have_shape) {
                have_shape = 1;
                size_t dims[ST_MAX_DIMS + 1];
                int nd;
                rc = juint_array(p, dims, ST_MAX_DIMS + 1, &nd);
                if (!rc && nd > ST_MAX_DIMS)
                    rc = gl_fail(p->err, "%s: tensor %s: rank %d exceeds %d", p->path,
                                 st_shown(nb, t->name), nd, ST_MAX_DIMS);
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
                                 st_shown(nb, t->name));
                if (!rc) {
                    h->begin[idx] = off[0];
                    h->end[idx] = off[1];
                }
            } else {
                char kb[ST_NAME_SHOWN + 4];
                rc = gl_fail(p->err, "%s: tensor %s: unexpected or repeated key %s", p->path,
                             st_shown(nb, t->name), st_shown(kb, key));
            }
            free(key);
            if (rc)
                return -1;
        } while (jaccept(p, ','));
        if (jexpect(p, '}'))
            return -1;
    }
    if (!have_dtype || !have_shape || !have_off)
        return gl_fail(p->err, "%s: tensor %s: missing %s", p->path, st_shown(nb, t->name),
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
            if (jkey(p, &key))
                return -1;
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
                h->t = gl_grow(h->t, h->n, h->cap, sizeof *h->t);
                h->begin = gl_grow(h->begin, h->n, h->cap, sizeof *h->begin);
                h->end = gl_grow(h->end, h->n, h->cap, sizeof *h->end);
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

int st_header_parse(const unsigned char *json, size_t len, const char *path, st_header *out,
                    gl_error *err)
{
    jparser p = {json, len, 0, path, err};
    memset(out, 0, sizeof *out);
    if (parse_header(&p, out) == 0)
        return 0;
    st_header_free(out);
    return -1;
}
