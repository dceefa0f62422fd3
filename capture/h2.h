/* SPDX-License-Identifier: MIT */
/*
 * h2 - HTTP/2 over cleartext TCP (h2c): frame parser and stream tracker
 * for one connection, the HTTP/2 counterpart of txn.h.
 *
 * The flow layer's two reassembled byte streams are fed in stream order
 * (with explicit gaps and the way the connection ended), as for txn. The
 * tracker splits them into frames (RFC 9113 §4), decodes header blocks
 * with nghttp2's HPACK inflater (RFC 7541; one dynamic table per
 * direction, fed every block so it stays in step), and follows each stream
 * (§5.1) to one session: request header fields, DATA, trailer fields;
 * response header fields (1xx interim ones skipped), DATA, trailer fields.
 * Sessions are emitted through the txn_emit_fn callback, like txn's, with
 * proto STORE_PROTO_H2C, the stream id, version 2.0, method/target/status
 * from the pseudo-header fields and every field line (pseudo-header fields
 * included) in wire order.
 *
 * A connection becomes HTTP/2 in two ways: prior knowledge (the client's
 * first bytes are the connection preface, h2_is_preface()), or an HTTP/1.1
 * request with "Upgrade: h2c" answered by 101 (h2_conn_upgrade(): that
 * request is stream 1's, its response comes as HTTP/2).
 *
 * Every stream ends up emitted exactly once, complete or flagged:
 * RST_STREAM -> reset (and no_response / incomplete when cut); a GOAWAY
 * whose last stream id is below the stream -> goaway + no_response; lost
 * bytes -> gap; the connection ending first -> incomplete / no_response
 * (reset when it was reset); an undecodable header block -> parse_error.
 * Flow control is passive: WINDOW_UPDATE frames are parsed and counted,
 * DATA is never held back. Frames that break the RFC's rules (longer
 * than the receiver's SETTINGS_MAX_FRAME_SIZE, a wrong length, a wrong
 * stream 0 use, padding past the payload, an unexpected
 * CONTINUATION) are counted in bad_frames and skipped by their length, so
 * framing stays in step; nothing crashes, nothing grows past its cap.
 *
 * After a gap a direction's frame boundaries and HPACK table are lost:
 * unless the gap falls inside a DATA payload (then its bytes are counted
 * as body and parsing goes on), the direction stops parsing (its bytes
 * are counted in lost_bytes) and its open streams are flagged gap.
 *
 * References: RFC 9113 (HTTP/2), RFC 7541 (HPACK), RFC 7540 §3.2
 * (Upgrade: h2c, obsoleted in RFC 9113 but still sent by clients),
 * gRPC's PROTOCOL-HTTP2.md (trailers, Trailers-Only responses).
 * Thread-safety: one tracker is used by one thread.
 */
#ifndef DYETAP_CAPTURE_H2_H
#define DYETAP_CAPTURE_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/txn.h"
#include "common/counters.h"
#include "store/store.h"

/** The client connection preface (RFC 9113 §3.4): 24 bytes. */
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/** Counters of all trackers sharing one h2_stats (see h2_ctr_descs). */
struct h2_stats {
	uint64_t connections;	    /**< connections tracked as HTTP/2 */
	uint64_t upgrades;	    /**< ... of which by Upgrade: h2c */
	uint64_t frames;	    /**< frames parsed */
	uint64_t bad_frames;	    /**< frames breaking RFC 9113's rules, skipped */
	uint64_t unknown_frames;    /**< frames of unknown types, ignored (§4.1) */
	uint64_t hpack_errors;	    /**< header blocks that did not decode */
	uint64_t streams;	    /**< streams opened */
	uint64_t streams_over_cap;  /**< streams beyond max_streams open, not tracked */
	uint64_t sessions_emitted;  /**< sessions handed to the callback */
	uint64_t sessions_complete; /**< ... of which request and response whole, no flag */
	uint64_t no_response;	    /**< streams without a response */
	uint64_t rst_streams;	    /**< RST_STREAM frames */
	uint64_t goaways;	    /**< GOAWAY frames */
	uint64_t goaway_streams;    /**< streams above a GOAWAY's last stream id */
	uint64_t push_promises;	    /**< PUSH_PROMISE frames (pushed streams not recorded) */
	uint64_t interim_responses; /**< 1xx header blocks skipped */
	uint64_t unknown_stream;    /**< frames for streams not tracked (closed, pushed) */
	uint64_t gaps;		    /**< gaps in either direction */
	uint64_t lost_bytes;	    /**< bytes not parsed after a direction lost its place */
	uint64_t body_truncated;    /**< bodies cut at the cap */
	uint64_t header_too_large;  /**< header lists over the cap (fields dropped) */
	uint64_t settings;	    /**< SETTINGS frames */
	uint64_t window_updates;    /**< WINDOW_UPDATE frames */
	uint64_t pings;		    /**< PING frames */
	uint64_t incomplete;	    /**< streams cut by the connection's end */
	uint64_t client_cancelled;  /**< streams the client reset (RST_STREAM): not no_response */
};

extern const struct ctr_desc h2_ctr_descs[];
extern const size_t h2_ctr_count;

struct h2_params {
	size_t max_header_bytes; /**< decoded field lines per message; 0 = 64 KiB */
	size_t max_body;	 /**< stored body bytes per message; 0 = 1 MiB */
	uint32_t max_streams;	 /**< open streams tracked per connection; 0 = 1024 */
	txn_emit_fn emit;	 /**< required: one call per stream */
	void *ctx;
	/** Optional: a request ended (END_STREAM, or cut), before its session. */
	txn_emit_fn on_request;
	struct h2_stats *stats; /**< borrowed, shared; must not be NULL */
};

struct h2_conn;

/**
 * Do the first bytes of a direction, @p d / @p n, start with the client
 * preface? A prefix of it at least 4 bytes long counts when @p n is short.
 */
bool h2_is_preface(const uint8_t *d, size_t n);

/**
 * Do the first bytes of a direction start with a SETTINGS frame on stream
 * 0 (the server connection preface, RFC 9113 §3.4, which a server may
 * send before the client's preface arrives)?
 */
bool h2_is_server_preface(const uint8_t *d, size_t n);

/**
 * Create a tracker (NULL on allocation failure). @p p is borrowed for the
 * tracker's life. @p swapped: the side @p info calls the server is the
 * HTTP/2 client (it sent the preface).
 */
struct h2_conn *h2_conn_create(const struct h2_params *p, const struct txn_conn_info *info,
			       bool swapped);

/**
 * The connection was upgraded from HTTP/1.1 (RFC 7540 §3.2): @p req
 * (copied) is stream 1's request, which ended at @p ts_last. Call before
 * feeding the HTTP/2 bytes. @return 0 or -ENOMEM.
 */
int h2_conn_upgrade(struct h2_conn *c, const struct store_message *req, int64_t ts_first,
		    int64_t ts_last, uint32_t flags);

/** In-order bytes of direction @p dir (as the flow layer sees it). */
void h2_conn_data(struct h2_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		  int64_t ts_ns);

/** @p len bytes of direction @p dir are missing. */
void h2_conn_gap(struct h2_conn *c, enum txn_dir dir, uint64_t len, int64_t ts_ns);

/** The connection ended: emit every stream still open, flagged. */
void h2_conn_end(struct h2_conn *c, enum txn_end how, int64_t ts_ns);

/** Free; accepts NULL. Does not emit (call h2_conn_end() first). */
void h2_conn_free(struct h2_conn *c);

/** Approximate bytes held (streams, buffers, HPACK tables). */
size_t h2_conn_mem(const struct h2_conn *c);

#endif
