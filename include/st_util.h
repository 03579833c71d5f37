/* st_util: small helpers shared by the safetensors writer/reader
 * (src/safetensors.c) and the header parser (src/st_header.c): UTF-8
 * validation and safe display of hostile names (the string buffer and
 * table growth are common.h's gl_strbuf and gl_grow). Internal to the
 * safetensors modules. */
#ifndef GATELAB_ST_UTIL_H
#define GATELAB_ST_UTIL_H

#include <stddef.h>

#define ST_NAME_SHOWN 64 /* bytes of a name shown in errors */

/* Returns 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
int st_utf8_valid(const unsigned char *s, size_t n);

/* Copies a (possibly hostile) name into buf for an error message: at most
 * ST_NAME_SHOWN bytes, control characters replaced so the message stays one
 * line. Returns buf. */
const char *st_shown(char buf[ST_NAME_SHOWN + 4], const char *name);

#endif
