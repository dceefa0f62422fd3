/* SPDX-License-Identifier: MIT */
/*
 * redact - record-time redaction of secrets in sessions
 * (docs/capture.md "Redaction").
 *
 * A rule names a value and what to do with it (names match in any case;
 * header names after trimming the spaces around them):
 *
 *   header:NAME[:ACTION]   request and response header NAME
 *   cookie:NAME[:ACTION]   cookie NAME in Cookie (request) and Set-Cookie (response)
 *   query:NAME[:ACTION]    query parameter NAME of the request-target and of
 *                          URL-valued headers (Referer, Location, Content-Location)
 *   form:NAME[:ACTION]     field NAME of an application/x-www-form-urlencoded body
 *   json:PATH[:ACTION]     JSON body member, PATH like $.password,
 *                          $.user.token, $.items[*].card, $.items[0].card, or
 *                          $..password (the key at any depth)
 *   url:userinfo[:ACTION]  the user:pass@ of an absolute URL (request-target,
 *                          Referer, Location, Content-Location)
 *
 * ACTION is "mask" (default: the value becomes the fixed marker
 * "[redacted]", its length is not revealed) or "drop" (the header, cookie,
 * parameter or JSON member is removed). Sessions are redacted after color
 * matching (rules see the original values) and before the store writer, so
 * no secret reaches the disk. A changed session gets STORE_F_REDACTED.
 *
 * JSON bodies (Content-Type containing "json", no Content-Encoding) are
 * scanned by a small bounded validating scanner (depth <= 64); a body that
 * is not valid JSON (or truncated by --max-body) is left unchanged and
 * counted in json_skipped. A changed JSON body is written back compact
 * (whitespace outside strings removed). Object keys are compared as written
 * (escapes are not decoded).
 *
 * Thread-safety: one struct redact per thread (it owns scratch buffers).
 */
#ifndef DYETAP_CAPTURE_REDACT_H
#define DYETAP_CAPTURE_REDACT_H

#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "store/store.h"

/** The marker a masked value is replaced with (query: percent-encoded). */
#define REDACT_MARKER "[redacted]"

struct redact_stats {
	uint64_t sessions;     /**< sessions changed by a rule (flagged redacted) */
	uint64_t masked;       /**< values replaced by the marker */
	uint64_t dropped;      /**< headers, cookies, parameters or members removed */
	uint64_t json_bodies;  /**< JSON bodies scanned */
	uint64_t json_skipped; /**< JSON bodies left as they were: not valid JSON, encoded or cut */
	uint64_t errors;       /**< sessions not redactable (out of memory): not written */
};

extern const struct ctr_desc redact_ctr_descs[];
extern const size_t redact_ctr_count;

struct redact;

/** Empty rule set. NULL on allocation failure. */
struct redact *redact_create(void);

/** Free; accepts NULL. */
void redact_free(struct redact *r);

/**
 * Add one rule (syntax above). @return 0, -EINVAL with a message in @p err,
 * or -ENOMEM.
 */
int redact_add(struct redact *r, const char *spec, char *err, size_t errlen);

/**
 * Add the default set: headers Authorization, Proxy-Authorization, Cookie,
 * Set-Cookie, X-Api-Key, X-Auth-Token; password, passwd, pass, token,
 * access_token, refresh_token, id_token, secret, client_secret, api_key,
 * apikey as JSON keys at any depth, form fields and query parameters;
 * url:userinfo. All masked. @return 0 or -ENOMEM.
 */
int redact_add_defaults(struct redact *r);

/** Number of rules. */
size_t redact_count(const struct redact *r);

/** Canonical text of rule @p i ("header:authorization:mask"); borrowed. */
const char *redact_text(const struct redact *r, size_t i);

/**
 * The canonical texts of all rules (borrowed) in an array for store
 * metadata; free the array with mem_free(). @p r may be NULL (no rules).
 * NULL only when the allocation failed; *n gets the count.
 */
const char **redact_text_array(const struct redact *r, size_t *n);

/**
 * Redact @p in into @p out. When nothing matches, *out is a plain copy of
 * *in. Otherwise the changed parts of *out point into scratch memory owned
 * by @p r, valid until the next call or redact_free(), and out->flags has
 * STORE_F_REDACTED. @return 0, or -ENOMEM (the session must not be written:
 * it could hold a secret).
 */
int redact_session(struct redact *r, const struct store_session *in, struct store_session *out);

/** Counters (see redact_ctr_descs). */
const struct redact_stats *redact_get_stats(const struct redact *r);

#endif
