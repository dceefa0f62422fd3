/* SPDX-License-Identifier: MIT */
/*
 * txn - HTTP/1.x transaction tracker for one TCP connection.
 *
 * The flow layer feeds the two reassembled byte streams of a connection
 * (client->server and server->client), in stream order, with explicit gaps
 * and the way the connection ended. The tracker parses both directions
 * with http1, pairs each request with its response (pipelining and
 * keep-alive: responses answer requests in order; 1xx interim responses are
 * skipped), and emits one session per transaction through a callback.
 *
 * Every transaction ends up emitted exactly once, complete or flagged
 * (gap, midstream, no_response, parse_error, tunnel, incomplete, reset), so
 * nothing is lost silently. After a gap the direction resynchronises at the
 * next line that starts a message where it can; bytes skipped while doing
 * so are counted. With TCP positions (txn_conn_segment()) a response after
 * a gap is paired with the request it answers, so only the transactions
 * that lost bytes are flagged (txn_pair.h).
 *
 * Direction: the caller passes TXN_DIR_CLIENT for bytes from the endpoint
 * it believes is the client (SYN sender, else a heuristic). The first
 * bytes of the connection (whichever side sends first) settle the roles:
 * when the "client" side starts with a status line ("HTTP/1.x NNN") or
 * the "server" side with a request line, the tracker swaps roles (counted).
 * A midstream connection may start inside a body: its roles are settled by
 * the first message start found on either side.
 *
 * Thread-safety: one tracker is used by one thread.
 */
#ifndef DYETAP_CAPTURE_TXN_H
#define DYETAP_CAPTURE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "store/store.h"

enum txn_dir {
	TXN_DIR_CLIENT = 0, /**< bytes sent by the client (requests) */
	TXN_DIR_SERVER = 1, /**< bytes sent by the server (responses) */
};

enum txn_end {
	TXN_END_FIN = 1,     /**< both sides closed normally */
	TXN_END_RST = 2,     /**< reset */
	TXN_END_TIMEOUT = 3, /**< evicted by the flow table (idle, memcap) */
	TXN_END_EOF = 4,     /**< the capture ended with the connection open */
};

/** Counters of all trackers sharing one txn_stats (see txn_ctr_descs). */
struct txn_stats {
	uint64_t requests;	    /**< requests parsed (complete or not) */
	uint64_t responses;	    /**< final responses parsed */
	uint64_t interim_responses; /**< 1xx */
	uint64_t sessions_emitted;  /**< sessions handed to the callback */
	uint64_t sessions_complete; /**< ... of which request + response, no flag but tunnel */
	uint64_t no_response;	    /**< request without a response */
	uint64_t orphan_responses;  /**< response without a request (emitted, never complete) */
	uint64_t parse_errors;	    /**< HTTP parse errors (either direction) */
	uint64_t tunnels;	    /**< CONNECT / Upgrade: parsing stopped */
	uint64_t gap_sessions;	    /**< sessions touched by a gap */
	uint64_t resync_bytes;	    /**< bytes skipped to resynchronise after gaps/errors */
	uint64_t body_truncated;    /**< bodies cut at the cap */
	uint64_t header_too_large;  /**< header blocks over the cap */
	uint64_t direction_swaps;   /**< client/server roles swapped from content */
	uint64_t incomplete;	    /**< messages cut by close/reset/end */
	uint64_t queue_overflow;    /**< pipelined requests beyond the pending cap, emitted
				     *   at once as no_response (their responses dropped) */
	uint64_t tunnel_bytes;	    /**< bytes inside tunnels, not parsed */
	uint64_t pairs_by_position; /**< responses paired past a lost response by TCP positions */
	uint64_t lost_responses;    /**< requests whose response a gap took (gap, no_response) */
	uint64_t http09;	    /**< HTTP/0.9 exchanges */
	uint64_t cruft;		    /**< byte runs that began no message (skipped) */
	uint64_t chunk_resyncs; /**< chunked bodies continued at a chunk-size line after a gap */
	uint64_t pairing_uncertain; /**< responses after a loss that positions could not place:
				     *   paired in order, flagged gap (pipelining) */
};

/** Name table for struct txn_stats (for --stats, trailers, reports). */
extern const struct ctr_desc txn_ctr_descs[];
extern const size_t txn_ctr_count;

/**
 * Called once per transaction. @p s and everything it points to are
 * borrowed for the duration of the call (copy what you keep). s->lane is
 * empty; the caller colors it. s->id is 0: the tracker does not know
 * file-wide ids, the caller (pipeline) assigns them. s->conn_index counts
 * the sessions of this connection in emission order (= request order).
 */
typedef void (*txn_emit_fn)(void *ctx, const struct store_session *s);

struct txn_params {
	size_t max_header_bytes; /**< per message; 0 = 64 KiB */
	size_t max_body;	 /**< stored body bytes per message; 0 = 1 MiB */
	txn_emit_fn emit;
	void *ctx;
	/**
	 * Optional: called when a request message ends (complete or flagged),
	 * before its session is emitted, with a session holding only the
	 * request (no response, s->id 0, conn_index not final). The session
	 * emitted later for this request carries the same conn_id and
	 * ts_req_first_ns; per connection they come in the same order.
	 */
	txn_emit_fn on_request;
	/**
	 * Optional: after a protocol switch (101 Switching Protocols, or a
	 * CONNECT answered 2xx; the switching session is emitted first) the
	 * bytes each side sends are offered here, @p role TXN_DIR_CLIENT for
	 * the side that sent the requests. Return true when taken (e.g. by the
	 * HTTP/2 tracker after "Upgrade: h2c"), false to have them counted as
	 * tunnel_bytes.
	 */
	bool (*on_tunnel_data)(void *ctx, enum txn_dir role, const uint8_t *d, size_t n,
			       int64_t ts_ns);
	struct txn_stats *stats; /**< borrowed, shared by many trackers; must not be NULL */
};

/** What the flow layer knows about the connection. Copied at creation. */
struct txn_conn_info {
	uint8_t ip_version;
	struct store_endpoint client;
	struct store_endpoint server;
	uint16_t vlan;
	uint64_t conn_id;
	bool midstream; /**< no handshake seen */
};

struct txn_conn;

/** Create a tracker (NULL on allocation failure). @p p is borrowed for the tracker's life. */
struct txn_conn *txn_conn_create(const struct txn_params *p, const struct txn_conn_info *info);

/**
 * In-order bytes of direction @p dir; @p ts_ns is the capture time of the
 * segment. Without positions: after a gap responses are paired in order
 * and flagged until the connection is back in step (txn_conn_segment()).
 */
void txn_conn_data(struct txn_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		   int64_t ts_ns);

/**
 * Where bytes given to txn_conn_segment() sit in their stream (flow.h,
 * struct flow_seg): their offset, and the other direction's offset that
 * their sender had acknowledged.
 */
struct txn_pos {
	uint64_t off; /**< stream offset of the first byte (bytes and gaps of the direction) */
	uint64_t ack; /**< with has_ack: the other direction's acknowledged offset */
	bool has_ack;
};

/**
 * txn_conn_data() with the bytes' place in the stream (@p pos, borrowed for
 * the call). With positions, a response after a capture gap is paired with
 * the request it answers by where each side's stream stood (txn_pair.h,
 * docs/capture.md "Pairing after loss"), so only the transactions that
 * lost bytes are flagged; a connection fed once without positions is
 * paired by order alone from then on.
 */
void txn_conn_segment(struct txn_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		      int64_t ts_ns, const struct txn_pos *pos);

/** @p len bytes of direction @p dir are missing (lost in capture). */
void txn_conn_gap(struct txn_conn *c, enum txn_dir dir, uint64_t len, int64_t ts_ns);

/** The connection ended: emit everything still pending, flagged as appropriate. */
void txn_conn_end(struct txn_conn *c, enum txn_end how, int64_t ts_ns);

/** Free; accepts NULL. Does not emit (call txn_conn_end() first). */
void txn_conn_free(struct txn_conn *c);

/** What the tracker was created with (borrowed, valid until txn_conn_free()). */
const struct txn_conn_info *txn_conn_get_info(const struct txn_conn *c);

/** Approximate bytes held by the tracker (for the flow layer's memcap). */
size_t txn_conn_mem(const struct txn_conn *c);

/**
 * What a dormant connection keeps: enough to re-create its tracker so that
 * the next transaction continues exactly as if it had stayed awake.
 */
struct txn_dormant {
	struct txn_conn_info info;
	uint32_t conn_index; /**< transactions seen so far */
	uint64_t cur[2];     /**< stream offsets reached (client, server roles) */
	bool decided;	     /**< client/server roles settled */
	bool swapped;	     /**< and swapped by content */
	bool no_positions;   /**< bytes came without positions (txn_conn_data()) */
};

/**
 * Put an idle connection to sleep: when nothing is in flight (no message
 * being parsed on either side, no request waiting for its response, no
 * held or carried bytes, no pending flags), fill @p d, free @p c and
 * return true. Otherwise return false and leave @p c as it was.
 */
bool txn_conn_sleep(struct txn_conn *c, struct txn_dormant *d);

/** Re-create a tracker put to sleep (NULL on allocation failure). */
struct txn_conn *txn_conn_wake(const struct txn_params *p, const struct txn_dormant *d);

#endif
