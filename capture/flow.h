/* SPDX-License-Identifier: MIT */
/*
 * flow - bounded TCP connection table with per-direction reassembly.
 *
 * Every decoded TCP segment is looked up by its 5-tuple (plus VLAN) in a
 * preallocated hash table; the matching connection's two reassembly
 * streams (reasm.h) turn segments into in-order bytes and gaps that go to
 * the caller's flow_ops together with the connection's life cycle:
 * open -> data/gap (client->server and server->client) -> close.
 *
 * - Order: a segment's acknowledgement is applied before its data is
 *   delivered, so bytes of the peer that the sender acknowledged and the
 *   capture missed reach the consumer as a gap before what the sender
 *   sent after receiving them (the order the endpoints saw).
 * - Direction: the SYN sender is the client; a SYN-ACK sender the server;
 *   without a handshake (midstream pickup, counted) a well-known HTTP port
 *   or else the lower port is the server. The HTTP layer may still swap
 *   roles from content.
 * - A connection opens on a SYN, a SYN-ACK or a segment with payload; a
 *   bare ACK/FIN/RST of an unknown connection is counted and ignored. The
 *   consumer's open() is called when the first byte or gap is delivered,
 *   so a connection that never carries data (a SYN flood) costs only its
 *   table entry.
 * - TCP state that one packet cannot fool (RFC 5961, the way Suricata's
 *   stream engine applies it to a passive sensor). For each side the table
 *   keeps the end of what it sent as far as the capture saw it contiguous
 *   (snd_max) and the highest acknowledgement its peer sent for it that
 *   does not pass that end. The receiver's RCV.NXT lies between the two,
 *   so an RST is accepted only with a sequence number in [acknowledged,
 *   sent] (exactly the sent end when nothing is acknowledged yet; in
 *   SYN-SENT only with an ACK of the SYN, RFC 9293 §3.10.7.3); any other
 *   RST is counted (flow_rst_ignored) and changes nothing. A FIN is
 *   accepted when its segment starts within what was sent and it is not
 *   behind what was acknowledged; a FIN after a hole waits until data
 *   fills the hole, and is dropped when data passes it; an accepted FIN
 *   that later data passes before the peer acknowledged it is withdrawn
 *   (flow_fin_ignored). Data after an acknowledged FIN is dropped
 *   (reasm_after_fin_bytes) and reported to the consumer as a gap, so the
 *   transactions it touches are flagged. A SYN with a new ISN on an open
 *   connection with data (RFC 5961 §4) replaces it only once the server
 *   answers that SYN with a SYN-ACK (flow_syn_on_open). Payload on a SYN
 *   or SYN-ACK is not delivered, as Linux does without TCP Fast Open
 *   (flow_syn_payload): the sender repeats it after the handshake.
 * - Close: an accepted RST at once; FIN when both sides sent an accepted
 *   FIN and every byte before them was delivered; idle timeout (a
 *   connection whose handshake never completed: the shorter new_timeout);
 *   eviction when the table is full (connections without a completed
 *   handshake first, then the least recently used); end of capture
 *   (flow_finish()). Holes left at close become gaps.
 * - A closed connection stays in the table for closed_timeout so late
 *   packets are recognised (counted, ignored); a new SYN on it with another
 *   ISN starts a new connection (port reuse, counted).
 * - Hashing: the bucket of a connection is SipHash-1-3 (common/hash.h)
 *   of its endpoints under a random key drawn when the table is created,
 *   so nobody can choose addresses that share a bucket.
 * - Time: the packets' capture time (flow_advance() moves it on idle
 *   links). A packet stamped more than the idle timeout ahead of or behind
 *   the table's clock starts a new epoch (flow_clock_jumps): the clock
 *   carries on from where it was instead of timing out every connection.
 *
 * Memory: max_flows entries of FLOW_ENTRY_BYTES are allocated once at
 * creation and touched as they are first used, plus 8 bytes per bucket (the
 * next power of two >= max_flows); flow_mem_bytes reports what is in use.
 * There is no allocation per packet (out-of-order bytes excepted, bounded by
 * reasm's caps).
 * Thread-safety: a table is used by one thread.
 */
#ifndef DYETAP_CAPTURE_FLOW_H
#define DYETAP_CAPTURE_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/decode.h"
#include "capture/reasm.h"
#include "common/counters.h"

/** Flow table counters (see flow_ctr_descs). */
struct flow_stats {
	uint64_t created;	   /**< connections opened */
	uint64_t midstream;	   /**< ... picked up without a handshake */
	uint64_t dir_from_port;	   /**< ... whose direction came from the port heuristic */
	uint64_t closed_fin;	   /**< closed by FIN on both sides */
	uint64_t closed_rst;	   /**< closed by RST */
	uint64_t timeouts;	   /**< closed after the idle timeout */
	uint64_t evicted;	   /**< closed early because the table was full */
	uint64_t ended_eof;	   /**< still open when the capture ended */
	uint64_t port_reuse;	   /**< new connection on the tuple of an old one */
	uint64_t pkts_no_flow;	   /**< bare ACK/FIN/RST of an unknown connection (ignored) */
	uint64_t pkts_after_close; /**< packets of a closed connection (ignored) */
	uint64_t active_peak;	   /**< most connections open at once */
	uint64_t rst_ignored;	   /**< RST outside the window (RFC 5961 §3), ignored */
	uint64_t fin_ignored;	   /**< FIN outside the window, or withdrawn by later data */
	uint64_t syn_on_open;	   /**< SYN with a new ISN on an open connection (RFC 5961 §4) */
	uint64_t syn_payload;	   /**< SYN or SYN-ACK carrying data (not delivered) */
	uint64_t clock_jumps;	   /**< timestamps a new epoch began at (beyond the idle timeout) */
	uint64_t evicted_new;	   /**< ... of evicted: connections without a completed handshake */
	uint64_t mem_bytes;	   /**< bytes of the table in use (entries touched and buckets) */
};

extern const struct ctr_desc flow_ctr_descs[];
extern const size_t flow_ctr_count;

/** How a connection ended. */
enum flow_end {
	FLOW_END_FIN = 1,
	FLOW_END_RST = 2,
	FLOW_END_TIMEOUT = 3, /**< idle timeout or eviction */
	FLOW_END_EOF = 4,     /**< the capture ended */
};

/** What is known about a connection when it opens. Copied by the callee. */
struct flow_info {
	uint8_t ip_version;
	uint8_t client_addr[16];
	uint8_t server_addr[16];
	uint16_t client_port;
	uint16_t server_port;
	uint16_t vlan;
	uint64_t conn_id; /**< 1, 2, 3... in the order connections open */
	bool midstream;	  /**< no handshake seen */
	int64_t ts_ns;	  /**< time of the first byte delivered */
};

/**
 * Where delivered bytes sit in their stream and what their segment carried
 * (borrowed for the data() call). Offsets count from the stream's start:
 * the first byte after the SYN, or the first byte or acknowledgement seen
 * of a connection picked up midstream; gaps count as bytes.
 */
struct flow_seg {
	int64_t ts_ns; /**< capture time of the segment */
	uint64_t off;  /**< stream offset of the first byte */
	/**
	 * With has_ack: the offset of the other direction's stream that the
	 * sender of these bytes had acknowledged when it sent them (its TCP
	 * acknowledgement number in that stream's offsets), which says how
	 * much of the peer's data it had received (docs/capture.md, "Pairing").
	 */
	uint64_t ack;
	bool has_ack;
};

/**
 * The consumer of connections. dir is 0 for client->server bytes, 1 for
 * server->client. open() is called before the first byte or gap of the
 * connection is delivered (never for one that carries none) and returns
 * the consumer's per-connection state (NULL: the connection is tracked but
 * nothing is delivered); close() is called for every connection opened
 * this way, ends it and must release it.
 */
struct flow_ops {
	void *(*open)(void *ctx, const struct flow_info *info);
	void (*data)(void *ctx, void *conn, int dir, const uint8_t *data, size_t len,
		     const struct flow_seg *seg);
	void (*gap)(void *ctx, void *conn, int dir, uint64_t len, int64_t ts_ns);
	void (*close)(void *ctx, void *conn, enum flow_end how, int64_t ts_ns);
};

/** Bytes of one table entry (the cost of a connection that carries no data). */
#define FLOW_ENTRY_BYTES 248

struct flow_params {
	uint32_t max_flows;	    /**< table size; 0 = 262144 */
	int64_t idle_timeout_ns;    /**< 0 = 300 s */
	int64_t new_timeout_ns;	    /**< handshake not completed; 0 = 60 s (at most the idle one) */
	int64_t closed_timeout_ns;  /**< 0 = 10 s */
	struct reasm_params reasm;  /**< caps of out-of-order buffering */
	const struct flow_ops *ops; /**< borrowed for the table's life */
	void *ops_ctx;
	struct flow_stats *stats;   /**< borrowed, must not be NULL */
	struct reasm_stats *rstats; /**< borrowed, must not be NULL */
};

struct flow_table;

/** Create a table (allocates max_flows entries). NULL on allocation failure. */
struct flow_table *flow_table_create(const struct flow_params *p);

/** Free; accepts NULL. Open connections are dropped without close (call flow_finish()). */
void flow_table_free(struct flow_table *t);

/** Process one decoded segment captured at @p ts_ns. */
void flow_packet(struct flow_table *t, const struct decode_pkt *pkt, int64_t ts_ns);

/** Move time to @p now_ns: close idle connections. */
void flow_advance(struct flow_table *t, int64_t now_ns);

/**
 * Close the least recently active connection early (FLOW_END_TIMEOUT,
 * counted in evicted): the caller's memory cap is over. Must not be called
 * from a flow_ops callback. @return false when no connection is open.
 */
bool flow_evict_idlest(struct flow_table *t);

/** Close every open connection (FLOW_END_EOF) and empty the table. */
void flow_finish(struct flow_table *t);

/** Connections open now. */
size_t flow_active(const struct flow_table *t);

/**
 * Entries compared in hash chains by all lookups so far: a cost measure
 * for tests and benchmarks (a chain-flooding input shows up here).
 */
uint64_t flow_table_probes(const struct flow_table *t);

#endif
