/* SPDX-License-Identifier: MIT */
/*
 * tmpl - endpoint names: HTTP method plus a path template.
 *
 * Requests are grouped by endpoint so that `/users/123` and `/users/456`
 * count as one: the query string and fragment are dropped and each path
 * segment that looks like an identifier becomes `{id}` — all digits, a
 * UUID (RFC 9562 text form), a hex string of 8+ characters with at least
 * one digit, or a 20+ character token mixing letters and digits (opaque
 * ids, base64url). Absolute-form targets (`http://host/path`) lose the
 * scheme and authority. docs/diff.md lists the rules with examples.
 */
#ifndef DYETAP_ANALYSIS_TMPL_H
#define DYETAP_ANALYSIS_TMPL_H

#include <stdbool.h>
#include <stddef.h>

/** True when the path segment @p s[0..n) is replaced by `{id}`. */
bool tmpl_is_id(const char *s, size_t n);

/**
 * Write "METHOD /path/{id}" for a request into @p out (NUL-terminated,
 * truncated to @p outlen - 1). Returns the length written.
 */
size_t tmpl_endpoint(const char *method, size_t mlen, const char *target, size_t tlen, char *out,
		     size_t outlen);

#endif
