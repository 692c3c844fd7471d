/* SPDX-License-Identifier: MIT */
/* json.h - a small strict JSON parser (RFC 8259) for safetensors headers. Internal to spool.
 *
 * Strict because the header comes from a file that may be hostile: valid UTF-8 only, no lone
 * surrogates, no control characters in strings, no duplicate keys in an object, no trailing
 * commas or garbage, bounded nesting. Numbers keep their integer value when they are integers
 * that fit an int64 (shapes and offsets need nothing else).
 */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SJ_NULL, SJ_BOOL, SJ_NUM, SJ_STR, SJ_ARR, SJ_OBJ } sj_type;

typedef struct sj_value {
    sj_type type;
    int boolean;
    int is_int;            /* SJ_NUM: an integer literal (no fraction/exponent) within int64 */
    int64_t i;
    char *s;               /* SJ_STR: decoded, NUL-terminated (may contain NULs: see len) */
    size_t len;
    int n;                 /* SJ_ARR / SJ_OBJ: number of items */
    struct sj_value *items;
    char **keys;           /* SJ_OBJ: decoded keys, parallel to items */
    size_t *key_lens;
} sj_value;

/* Parses text[0..len) as one JSON value with optional surrounding whitespace. NULL on error with
 * a message (including the byte offset) in err. */
sj_value *sp__json_parse(const char *text, size_t len, char *err, size_t errlen);
void sp__json_free(sj_value *v);
/* The member of an object by key, or NULL. */
const sj_value *sp__json_get(const sj_value *obj, const char *key);
/* 1 if buf[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int sp__utf8_valid(const char *buf, size_t len);

#endif
