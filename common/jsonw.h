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

/** Length of the base64 (RFC 4648 §4) of @p n bytes, with or without '=' padding. */
static inline size_t jsonw_base64_len(size_t n, bool pad)
{
	return pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/**
 * Write the base64 of @p p[0..n) to @p out (jsonw_base64_len(n, pad) bytes,
 * no NUL), padded with '=' or not; returns the length written.
 */
size_t jsonw_base64_to(char *out, const void *p, size_t n, bool pad);

/**
 * Append bytes as JSON: a string when valid UTF-8, else {"base64": "..."}.
 */
int jsonw_bytes(struct dbuf *b, const void *p, size_t n);

#endif
