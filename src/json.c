/* json: the project's JSON writer and flat-object reader (json.h). */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "floatfmt.h"

/* ---------------------------------------------------------------- writer */

void json_init(json_buf *b)
{
    memset(b, 0, sizeof *b);
    b->first[0] = 1;
}

void json_free(json_buf *b)
{
    free(b->s.p);
    json_init(b);
}

char *json_take(json_buf *b)
{
    char *p = b->s.p ? b->s.p : xstrdup("");
    b->s.p = NULL;
    json_init(b);
    return p;
}

void json_raw(json_buf *b, const char *s, size_t n)
{
    gl_strbuf_put(&b->s, s, n);
}

static void put(json_buf *b, const char *s)
{
    json_raw(b, s, strlen(s));
}

/* Before any value or key: the comma that separates it from the last one,
 * unless it is the value of the key just written. */
static void sep(json_buf *b)
{
    if (b->after_key) {
        b->after_key = 0;
        return;
    }
    if (!b->first[b->depth])
        put(b, ",");
    b->first[b->depth] = 0;
}

static void open(json_buf *b, const char *c)
{
    sep(b);
    put(b, c);
    GL_ASSERT(b->depth + 1 < JSON_MAX_DEPTH);
    b->first[++b->depth] = 1;
}

static void close_(json_buf *b, const char *c)
{
    GL_ASSERT(b->depth > 0 && !b->after_key);
    b->depth--;
    put(b, c);
}

void json_object_begin(json_buf *b) { open(b, "{"); }
void json_object_end(json_buf *b) { close_(b, "}"); }
void json_array_begin(json_buf *b) { open(b, "["); }
void json_array_end(json_buf *b) { close_(b, "]"); }

void json_escape(json_buf *b, const char *s)
{
    put(b, "\"");
    const char *run = s;   /* bytes that need no escape go in one piece */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        json_raw(b, run, (size_t)(s - run));
        run = s + 1;
        char esc[8];
        switch (c) {
        case '"': put(b, "\\\""); break;
        case '\\': put(b, "\\\\"); break;
        case '\n': put(b, "\\n"); break;
        case '\r': put(b, "\\r"); break;
        case '\t': put(b, "\\t"); break;
        case '\b': put(b, "\\b"); break;
        case '\f': put(b, "\\f"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc);
        }
    }
    json_raw(b, run, (size_t)(s - run));
    put(b, "\"");
}

void json_key(json_buf *b, const char *key)
{
    GL_ASSERT(!b->after_key);
    sep(b);
    json_escape(b, key);
    put(b, ":");
    b->after_key = 1;
}

void json_string(json_buf *b, const char *s)
{
    if (!s) {
        json_null(b);
        return;
    }
    sep(b);
    json_escape(b, s);
}

void json_null(json_buf *b)
{
    sep(b);
    put(b, "null");
}

void json_int(json_buf *b, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v);
    sep(b);
    put(b, num);
}

void json_uint(json_buf *b, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, v);
    sep(b);
    put(b, num);
}

void json_float(json_buf *b, float v)
{
    char num[FLOATFMT_SIZE];
    sep(b);
    /* JSON has no NaN or infinity */
    put(b, v == v && v - v == 0.0f ? floatfmt_shortest(v, num, sizeof num) : "null");
}

/* ---------------------------------------------------------------- reader */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Past the string literal at p ('"'), or NULL when it is unterminated. */
static const char *skip_string(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && !*++p)
            return NULL;
    return *p ? p + 1 : NULL;
}

/* Past the value at p: a string, or a nested object/array (brackets counted
 * outside strings), or a bare word (number, true, false, null). */
static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                if (!(p = skip_string(p)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p > s ? p : NULL;
}

/* Decodes the string literal at p into out[n]: 0, or -1 when malformed or
 * too long. */
static int unescape(const char *p, char *out, size_t n)
{
    size_t o = 0;
    for (p++; *p != '"'; p++) {
        unsigned c = (unsigned char)*p;
        int from_u = 0;
        if (!c)
            return -1;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"': case '\\': case '/': c = (unsigned char)*p; break;
            case 'u': {
                char hex[5] = {0};
                for (int i = 0; i < 4; i++)
                    if (!(hex[i] = p[1 + i]))
                        return -1;
                char *end;
                c = (unsigned)strtoul(hex, &end, 16);
                if (*end)
                    return -1;
                p += 4;
                from_u = 1;
                break;
            }
            default: return -1;
            }
        }
        /* a \u escape above 0x7f as UTF-8 (this writer never makes one) */
        unsigned char enc[3];
        size_t k = 0;
        if (c < 0x80 || !from_u) {
            enc[k++] = (unsigned char)c;
        } else if (c < 0x800) {
            enc[k++] = (unsigned char)(0xc0 | c >> 6);
            enc[k++] = (unsigned char)(0x80 | (c & 0x3f));
        } else {
            enc[k++] = (unsigned char)(0xe0 | c >> 12);
            enc[k++] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
            enc[k++] = (unsigned char)(0x80 | (c & 0x3f));
        }
        if (o + k >= n)
            return -1;
        memcpy(out + o, enc, k);
        o += k;
    }
    out[o] = '\0';
    return 0;
}

const char *json_member(const char *json, const char *key)
{
    if (!json)
        return NULL;
    const char *p = skip_ws(json);
    if (*p != '{')
        return NULL;
    p = skip_ws(p + 1);
    const size_t klen = strlen(key);
    while (*p == '"') {
        const char *kend = skip_string(p);
        if (!kend)
            return NULL;
        /* keys written by json_key escape nothing an identifier holds, so
         * the raw bytes compare */
        int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
        p = skip_ws(kend);
        if (*p != ':')
            return NULL;
        p = skip_ws(p + 1);
        if (match)
            return p;
        if (!(p = skip_value(p)))
            return NULL;
        p = skip_ws(p);
        if (*p != ',')
            return NULL;
        p = skip_ws(p + 1);
    }
    return NULL;
}

int json_get_number(const char *json, const char *key, double *out)
{
    const char *v = json_member(json, key);
    if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
        return -1;
    char *end;
    double x = strtod(v, &end);
    if (end == v)
        return -1;
    *out = x;
    return 0;
}

int json_get_string(const char *json, const char *key, char *out, size_t n)
{
    const char *v = json_member(json, key);
    if (v && strncmp(v, "null", 4) == 0)
        return 1;
    if (!v || *v != '"' || !skip_string(v))
        return -1;
    return unescape(v, out, n);
}
