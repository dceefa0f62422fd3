/* SPDX-License-Identifier: MIT */
/*
 * reasm - TCP stream reassembly for one direction of a connection.
 *
 * Turns segments (sequence number + bytes, in capture order) into an
 * in-order byte stream with explicit gaps, the way Suricata's
 * stream-tcp-reassemble does: positions are 64-bit stream offsets, never
 * raw sequence numbers, so sequence wraparound at 2^32 is invisible to the
 * consumer and streams longer than 4 GiB work.
 *
 * Policies (also in docs/capture.md):
 * - Overlaps: first seen wins. Bytes already delivered are never replaced;
 *   a retransmission of delivered bytes is dropped (reasm_retrans_bytes).
 *   A segment that overlaps buffered out-of-order bytes keeps the buffered
 *   ones; when the overlapping bytes differ they are counted
 *   (reasm_overlap_diff, reasm_overlap_diff_bytes).
 * - Holes become gaps when the peer acknowledges past them (the receiver
 *   got bytes the capture missed), at close / eviction (reasm_flush()), or
 *   when out-of-order buffering would pass a cap.
 * - Memory: out-of-order bytes are bounded per stream (stream_cap), for
 *   all streams sharing a context (memcap), and the number of buffered
 *   pieces per stream (max_segments). Over a cap the stream stops waiting:
 *   buffered bytes are delivered with gaps for the holes, the new segment
 *   is delivered after a gap, and reasm_memcap_hits (bytes) or
 *   reasm_seg_cap_hits (pieces) counts it. In-order segments are delivered
 *   straight from the packet (no copy, no allocation).
 * - Work: buffered pieces are kept in a red-black tree keyed by stream
 *   offset, so a segment costs O(log n + pieces it overlaps) however the
 *   segments arrive (a sorted list walked from its head made a flood of
 *   one-byte segments behind a hole quadratic). Overlapped pieces are
 *   compared byte for byte, so the work of a segment is bounded by its
 *   length plus a logarithm.
 * - FIN: the flow layer decides which FIN to believe (flow.h) and may
 *   withdraw one that later data proved false (reasm_fin_cancel()).
 *
 * The delivery callback receives data or gaps in stream order; data comes
 * with what its segment carried (struct reasm_meta: capture time and the
 * sender's acknowledgement), so bytes drained from the out-of-order buffer
 * keep the acknowledgement of the segment that brought them.
 * Thread-safety: a context and its streams are used by one thread.
 */
#ifndef DYETAP_CAPTURE_REASM_H
#define DYETAP_CAPTURE_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"

/** Reassembly counters (see reasm_ctr_descs). */
struct reasm_stats {
	uint64_t segments;	   /**< segments with payload offered */
	uint64_t in_order;	   /**< ... delivered directly */
	uint64_t out_of_order;	   /**< ... buffered because bytes before them were missing */
	uint64_t retrans_segments; /**< ... entirely already delivered (dropped) */
	uint64_t retrans_bytes;	   /**< bytes offered again after delivery (dropped) */
	uint64_t overlap_diff;	   /**< segments overlapping buffered bytes with different bytes */
	uint64_t overlap_diff_bytes; /**< differing bytes in such overlaps (first seen kept) */
	uint64_t gaps;		     /**< holes declared lost */
	uint64_t gap_bytes;	     /**< bytes in those holes */
	uint64_t gaps_by_ack;	     /**< ... of which because the peer acknowledged past them */
	uint64_t memcap_hits;	     /**< out-of-order buffering stopped at a cap */
	uint64_t out_of_window;	     /**< segments too far ahead of the stream (ignored) */
	uint64_t after_fin_bytes;    /**< bytes past the FIN (ignored) */
	uint64_t delivered_bytes;    /**< bytes delivered in order */
	uint64_t buffered_peak;	     /**< highest out-of-order bytes held at once */
	uint64_t seg_cap_hits;	     /**< out-of-order buffering stopped at max_segments */
};

extern const struct ctr_desc reasm_ctr_descs[];
extern const size_t reasm_ctr_count;

struct reasm_params {
	size_t memcap;	   /**< out-of-order bytes for all streams; 0 = 64 MiB */
	size_t stream_cap; /**< out-of-order bytes per stream; 0 = 1 MiB, at most 2 GiB */
	uint32_t window;   /**< segments further ahead than this are ignored; 0 = 1 GiB */
	/** buffered pieces per stream; 0 = 4096 (a receiver holds no more, see docs/capture.md) */
	uint32_t max_segments;
};

/** Shared state of many streams: caps and counters. */
struct reasm_ctx {
	struct reasm_params p;	   /**< copied, defaults filled */
	struct reasm_stats *stats; /**< borrowed */
	size_t used;		   /**< out-of-order bytes held (with overhead) */
	uint64_t work;		   /**< tree nodes visited (a cost measure for tests and bench/) */
};

struct reasm_seg;

/**
 * One direction of a connection. Embedded in the flow entry; fields are
 * private to reasm.c (use the functions).
 */
struct reasm_stream {
	uint64_t next_off;	 /**< stream bytes delivered or declared lost */
	uint64_t fin_off;	 /**< stream length when has_fin */
	struct reasm_seg *root;	 /**< buffered out-of-order pieces: red-black tree by offset */
	struct reasm_seg *first; /**< ... its leftmost piece */
	uint32_t next_seq;	 /**< sequence number of next_off */
	uint32_t ooo_bytes;	 /**< payload bytes buffered */
	uint32_t n_segs;	 /**< pieces buffered */
	bool started;		 /**< next_seq is known */
	bool has_fin;
};

/**
 * What a segment carried besides its bytes; kept with buffered bytes and
 * handed back with them. The acknowledgement is the sender's, as an offset
 * of the peer's stream (the caller converts it, reasm_seq_offset()).
 */
struct reasm_meta {
	int64_t ts_ns; /**< capture time */
	uint64_t ack;  /**< with has_ack: the peer stream's offset the sender acknowledged */
	bool has_ack;
};

/** Where a stream's output goes; @p u is the caller's context. @p m is borrowed for the call. */
struct reasm_out {
	void (*data)(void *u, const uint8_t *data, size_t len, const struct reasm_meta *m);
	void (*gap)(void *u, uint64_t len, int64_t ts_ns);
	void *u;
};

/** Initialise @p c with @p p (copied; NULL = defaults) and counters @p st (borrowed). */
void reasm_ctx_init(struct reasm_ctx *c, const struct reasm_params *p, struct reasm_stats *st);

/** An empty stream whose start is unknown. */
void reasm_stream_init(struct reasm_stream *s);

/** Set the stream start: @p seq is the first data byte's sequence number (ISN + 1). */
void reasm_stream_start(struct reasm_stream *s, uint32_t seq);

/**
 * Offer a segment of @p len bytes at sequence @p seq (SYN already
 * excluded) that carried @p m (copied). Delivers what became in order
 * through @p out. When the stream has no start yet, this segment starts it
 * (midstream pickup).
 */
void reasm_segment(struct reasm_ctx *c, struct reasm_stream *s, uint32_t seq, const uint8_t *data,
		   size_t len, const struct reasm_meta *m, const struct reasm_out *out);

/** The stream ends at sequence @p seq (the FIN's sequence number + payload length). */
void reasm_fin(struct reasm_stream *s, uint32_t seq);

/** Withdraw the FIN: data past it showed it was not the sender's (flow.h). */
void reasm_fin_cancel(struct reasm_stream *s);

/**
 * The peer acknowledged everything before @p ack: holes before it are
 * declared as gaps and buffered data after them is delivered.
 */
void reasm_ack(struct reasm_ctx *c, struct reasm_stream *s, uint32_t ack, int64_t ts_ns,
	       const struct reasm_out *out);

/** Deliver everything buffered, holes as gaps (up to the FIN when known). */
void reasm_flush(struct reasm_ctx *c, struct reasm_stream *s, int64_t ts_ns,
		 const struct reasm_out *out);

/** True when a FIN was seen and every byte before it was delivered or declared lost. */
bool reasm_complete(const struct reasm_stream *s);

/**
 * The stream offset of sequence number @p seq (e.g. an acknowledgement of
 * this stream) in @p off. false when the stream has no start yet or @p seq
 * lies before it or more than 2 GiB from where the stream stands.
 */
bool reasm_seq_offset(const struct reasm_stream *s, uint32_t seq, uint64_t *off);

/** Stream offset up to which bytes were delivered or declared lost. */
static inline uint64_t reasm_offset(const struct reasm_stream *s)
{
	return s->next_off;
}

/** Free buffered segments (without delivering) and reset to reasm_stream_init(). */
void reasm_stream_release(struct reasm_ctx *c, struct reasm_stream *s);

#endif
