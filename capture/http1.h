/* SPDX-License-Identifier: MIT */
/*
 * http1 - incremental HTTP/1.x message parser (RFC 9112), shared by
 * capture (both directions of a reassembled connection) and replay
 * (responses from targets). Built as its own static library (dyhttp1) so
 * replay/ can link it without the rest of capture/.
 *
 * Bytes are fed in arbitrary pieces; the parser stops at the end of each
 * message so the caller can take it (http1_message()) before feeding the
 * rest. The message view is zero-copy into the parser's own bounded
 * buffers: header block (capped), body (capped; bytes beyond the cap are
 * counted in body_len and the message is marked truncated, so a 1 GiB body
 * costs no more than the cap).
 *
 * Lenient on real-world junk where browsers and servers are; errors are
 * returned, never crashed on. Thread-safety: one parser per thread.
 */
#ifndef DYETAP_CAPTURE_HTTP1_H
#define DYETAP_CAPTURE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

enum http1_type {
	HTTP1_REQUEST = 1,
	HTTP1_RESPONSE = 2,
};

struct http1_params {
	enum http1_type type;
	size_t max_header_bytes; /**< cap of the request/status line + header block; 0 = 64 KiB */
	size_t max_body;	 /**< cap of stored body bytes; 0 = 1 MiB */
};

/** Result of one feed call. */
enum http1_status {
	HTTP1_NEED_MORE = 0, /**< all input consumed, message not complete */
	HTTP1_COMPLETE = 1,  /**< a message completed; take it, then http1_next() */
	HTTP1_TUNNEL = 2,    /**< CONNECT / Upgrade: the rest is not HTTP. For a request
			      *   parser: a CONNECT or Upgrade request (complete); whether
			      *   a tunnel follows depends on the response. http1_next()
			      *   resumes HTTP parsing, for when the peer refused. */
	HTTP1_ERROR = -1,    /**< malformed; see http1_error() */
};

struct http1_parser;

/** Create a parser. NULL on allocation failure. */
struct http1_parser *http1_parser_create(const struct http1_params *p);

/** Free; accepts NULL. */
void http1_parser_free(struct http1_parser *p);

/**
 * Feed up to @p len bytes. Parsing stops right after a complete message.
 * @param consumed  bytes used (the caller feeds the rest after http1_next()).
 * @return one of enum http1_status.
 */
enum http1_status http1_feed(struct http1_parser *p, const uint8_t *data, size_t len,
			     size_t *consumed);

/**
 * The connection closed (FIN) in this direction: completes a
 * close-delimited body. Returns HTTP1_COMPLETE when that finished a
 * message, HTTP1_NEED_MORE when nothing was in progress, HTTP1_ERROR when
 * a message was cut short (it is still available, marked incomplete).
 */
enum http1_status http1_finish(struct http1_parser *p);

/**
 * The current (complete or, after an error/finish, partial) message.
 * Borrowed: valid until http1_next() or http1_parser_free().
 */
const struct store_message *http1_message(const struct http1_parser *p);

/** True when the current message is only partly parsed (cut, error). */
bool http1_message_partial(const struct http1_parser *p);

/** Forget the current message and get ready for the next one. */
void http1_next(struct http1_parser *p);

/**
 * For responses: the request this response answers was HEAD (no body
 * follows whatever Content-Length says) / was CONNECT. Call before feeding
 * the response.
 */
void http1_expect_response_to(struct http1_parser *p, const struct store_slice *method);

/**
 * True when the complete request is an HTTP/0.9 simple request (a request
 * line without version, no header fields): its answer is a bare body until
 * the server closes, which this parser does not parse (the caller does).
 */
bool http1_message_http09(const struct http1_parser *p);

/** True when the message was a 1xx interim response (100-continue etc.). */
bool http1_message_interim(const struct http1_parser *p);

/**
 * @p n bytes of the stream are missing (a capture gap). When the parser is
 * inside a body whose end it knows - Content-Length with at least @p n
 * bytes left, a chunk's data with at least @p n bytes left, or a body
 * delimited by the connection close - the missing
 * bytes are counted in body_len (the stored body stays the prefix before
 * the gap, marked truncated) and parsing goes on.
 * @return HTTP1_NEED_MORE (bridged), HTTP1_COMPLETE (bridged and the gap
 *         ended the message: take it, then http1_next()), HTTP1_ERROR (the
 *         gap cannot be bridged; the parser is unchanged, the caller resets
 *         and resynchronises).
 */
enum http1_status http1_gap(struct http1_parser *p, uint64_t n);

/** True when the current message's head is parsed and its body is chunked. */
bool http1_in_chunked_body(const struct http1_parser *p);

/**
 * Bytes of the current message's body were lost (a gap that could not be
 * bridged): the stored body stays the prefix before them (truncated once
 * body_len counts more). When the loss began inside a chunk's data, the
 * rest of that chunk is counted in body_len (it was body); chunks the loss
 * took whole are not.
 */
void http1_body_lost(struct http1_parser *p);

/**
 * After bytes of a chunked body were lost: go on with the same message at
 * a chunk-size line (the caller found one, RFC 9112 §7.1). The message's
 * head, stored body and counts are kept; the next bytes fed must start
 * with the chunk size. @return 0, -EINVAL when the message is not a
 * chunked body in progress, -EBADMSG on an internal parser error.
 */
int http1_chunk_resume(struct http1_parser *p);

/**
 * Trailer fields of the current chunked message (after the body), kept
 * apart from message->headers. Borrowed like http1_message().
 * @param n  set to the number of trailer fields (0: returns NULL).
 */
const struct store_header *http1_message_trailers(const struct http1_parser *p, size_t *n);

/**
 * Kind of the last HTTP1_ERROR: 0 none, -EBADMSG malformed or cut short,
 * -E2BIG the request/status line + header block (or trailers) went over
 * max_header_bytes, -ENOMEM allocation failure.
 */
int http1_errno(const struct http1_parser *p);

/** Approximate bytes held by the parser (for memcaps). */
size_t http1_parser_mem(const struct http1_parser *p);

/** Short reason of the last HTTP1_ERROR, e.g. "invalid header token". Borrowed, static. */
const char *http1_error(const struct http1_parser *p);

/**
 * Reset completely (e.g. to resynchronise after a gap): drops the current
 * message and parser state.
 */
void http1_reset(struct http1_parser *p);

#endif
