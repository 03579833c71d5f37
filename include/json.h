/* json: the one JSON writer of the project, and a small reader of a flat
 * object's members. The writer is a growable buffer with object / array /
 * key / value calls that place the commas; strings go through one escaper;
 * floats are written as the shortest decimal that reads back to the same
 * float (floatfmt.h), so a setting typed 0.003 is stored "0.003". Used by
 * the run's config JSON, the experiments' configs, the safetensors header
 * and the run-spec table. The reader finds a top-level member of an object
 * (skipping nested values) and decodes strings and numbers; it is enough for
 * config JSON written by this writer. st_header.c stays the strict parser
 * of untrusted safetensors headers. */
#ifndef GATELAB_JSON_H
#define GATELAB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define JSON_MAX_DEPTH 16

typedef struct {
    gl_strbuf s;             /* the text: s.p NUL-terminated once anything was written */
    int depth;
    unsigned char first[JSON_MAX_DEPTH];   /* no member written yet at this depth */
    int after_key;           /* a key was written: the next value takes no comma */
} json_buf;

/* An empty buffer; json_free releases it, json_take hands the text over
 * (the caller frees it; never NULL). */
void json_init(json_buf *b);
void json_free(json_buf *b);
char *json_take(json_buf *b);

void json_object_begin(json_buf *b);
void json_object_end(json_buf *b);
void json_array_begin(json_buf *b);
void json_array_end(json_buf *b);
/* A member's key; the next value call writes its value. */
void json_key(json_buf *b, const char *key);
void json_string(json_buf *b, const char *s);   /* NULL writes null */
void json_null(json_buf *b);
void json_int(json_buf *b, int64_t v);
void json_uint(json_buf *b, uint64_t v);
void json_float(json_buf *b, float v);          /* shortest round trip */
/* Bytes appended as they are (the caller's own well-formed JSON or padding). */
void json_raw(json_buf *b, const char *s, size_t n);

/* The escaper: s as a JSON string literal (quotes included) appended to b,
 * with '"', '\\' and control characters escaped; other bytes as they are. */
void json_escape(json_buf *b, const char *s);

/* The value of member `key` of the object `json` (top level only): a
 * pointer to its first byte, NULL when json is not an object or has no such
 * member. */
const char *json_member(const char *json, const char *key);
/* The member as a number: 0, or -1 when absent or not a number. */
int json_get_number(const char *json, const char *key, double *out);
/* The member as a string, unescaped into out[n]: 0; 1 when it is null; -1
 * when absent, not a string, or too long. */
int json_get_string(const char *json, const char *key, char *out, size_t n);

#endif
