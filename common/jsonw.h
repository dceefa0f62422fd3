/* SPDX-License-Identifier: MIT */
/*
 * jsonw - helpers to emit JSON text (RFC 8259) into a dbuf: string
 * escaping, UTF-8 validation, base64 (RFC 4648) for binary bodies.
 * All functions return 0 or the dbuf error (-E2BIG, -ENOMEM).
 */
#ifndef DYETAP_COMMON_JSONW_H
#define DYETAP_COMMON_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"

/** True when @p p[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool jsonw_utf8_valid(const uint8_t *p, size_t n);

/**
 * Append @p p[0..n) as a quoted JSON string. Invalid UTF-8 bytes are
 * written as U+FFFD so the output is always valid JSON.
 */
int jsonw_str(struct dbuf *b, const void *p, size_t n);

/** jsonw_str() of a NUL-terminated string. */
int jsonw_cstr(struct dbuf *b, const char *s);

/** Append the base64 encoding (no quotes) of @p p[0..n). */
int jsonw_base64(struct dbuf *b, const void *p, size_t n);

/**
 * Append bytes as JSON: a string when valid UTF-8, else {"base64": "..."}.
 */
int jsonw_bytes(struct dbuf *b, const void *p, size_t n);

#endif
