/* SPDX-License-Identifier: MIT */
/*
 * har - HAR 1.2 out: a store file's sessions (and a results file's
 * answers) as a HAR log that browser developer tools, proxies and API
 * tools open, and that `dyetap record -r` reads back to the same sessions
 * (docs/interop.md "HAR out").
 *
 * The log is written in pieces: har_begin(), one har_session() or
 * har_result() per record, har_end() with the pages. Each entry carries
 * the session's own facts in a `_dyetap` object (HAR 1.2 allows custom
 * fields that start with an underscore): session id, lane, flags,
 * connection id and index, both endpoints, the four timestamps in
 * nanoseconds, the exact request target, the protocol. Bodies are the
 * stored bytes as on the wire (content encodings kept): UTF-8 as text,
 * anything else base64 with `encoding` set.
 *
 * Reference: HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/).
 * All functions return 0 or the buffer's error (-E2BIG, -ENOMEM).
 */
#ifndef DYETAP_INTEROP_HAR_H
#define DYETAP_INTEROP_HAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "store/store.h"

/** The log's opening: version, creator (@p version: dyetap's), "entries": [ */
int har_begin(struct dbuf *b, const char *version);

/**
 * One entry for session @p s (borrowed) in page @p pageref (NULL: none);
 * @p first: the first entry of the log (no comma before it).
 */
int har_session(struct dbuf *b, const struct store_session *s, const char *pageref, bool first);

/**
 * One entry for result @p r of session @p s: the session's request and
 * the result's response (or status 0 with the error in `_dyetap`), timed
 * from the result's send time and latency, in page @p pageref.
 */
int har_result(struct dbuf *b, const struct store_session *s, const struct store_result *r,
	       const char *pageref, bool first);

/**
 * Close the entries and write the pages @p pages[0..n) (ids and titles),
 * each started at @p started_ns[i]; the log's end.
 */
int har_end(struct dbuf *b, const char *const *pages, const int64_t *started_ns, size_t n);

#endif
