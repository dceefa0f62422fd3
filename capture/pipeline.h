/* SPDX-License-Identifier: MIT */
/*
 * pipeline - one packet path from bytes to colored sessions
 * (docs/architecture.md "Data flow").
 *
 *   pipe_packet() -> decode [-> IP fragment reassembly -> decode] -> flow table
 *     -> TCP reassembly -> txn (HTTP/1.x)
 *     -> session id + color rules -> sink (e.g. the store writer)
 *
 * The entry point takes a borrowed packet and its link type, so the pcap
 * sources and the DPDK fast path feed the same code. Session ids are
 * assigned here (1, 2, 3... in emission order); connection ids come from
 * the flow table (1, 2, 3... in opening order). Uncolored sessions are
 * passed on or dropped (counted) by policy.
 *
 * Memory: the HTTP trackers' memory (buffered headers and bodies up to
 * their caps) is summed; over txn_memcap the least recently active
 * connections are closed early (pipe_memcap_evictions), so the total stays
 * bounded however many connections carry large bodies. Before that,
 * once the trackers hold more than txn_dormant_mem, a connection that has
 * nothing in flight after its data is put to sleep (pipe_dormant): its
 * HTTP state is freed and re-created on its next byte (pipe_woken), so a
 * million idle keep-alive connections cost little more than their flow
 * entries. Sleeping loses nothing: the sessions are the same either way.
 *
 * Every stage's counters are exported with a prefix through
 * pipe_counters(): src_ (filled by the caller), decode_, flow_, ipfrag_, reasm_,
 * txn_, pipe_, redact_ (when redaction is on) and lane_<name>_sessions per
 * lane.
 * Thread-safety: a pipeline is used by one thread.
 */
#ifndef DYETAP_CAPTURE_PIPELINE_H
#define DYETAP_CAPTURE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/redact.h"
#include "capture/rules.h"
#include "common/counters.h"
#include "store/store.h"

/** Pipeline counters of its own (see pipe_ctr_descs). */
struct pipe_stats {
	uint64_t packets;	    /**< packets offered */
	uint64_t wire_bytes;	    /**< their length on the wire */
	uint64_t sessions;	    /**< sessions emitted by the HTTP layer */
	uint64_t colored;	    /**< ... matched by a color rule */
	uint64_t uncolored;	    /**< ... matched by none (baseline lane) */
	uint64_t dropped_uncolored; /**< uncolored sessions dropped (--uncolored drop) */
	uint64_t written;	    /**< sessions accepted by the sink */
	uint64_t sink_errors;	    /**< sessions the sink failed to take (e.g. write error) */
	uint64_t conn_untracked;    /**< connections without an HTTP tracker (allocation failure) */
	uint64_t lanes_overflow;    /**< sessions of lanes past the per-lane counter table */
	uint64_t memcap_evictions;  /**< connections closed early: HTTP memory over txn_memcap */
	uint64_t txn_mem_peak;	    /**< most bytes held by HTTP trackers at once */
	uint64_t dormant;	    /**< idle connections put to sleep (HTTP state freed) */
	uint64_t woken;		    /**< sleeping connections woken by new bytes */
};

extern const struct ctr_desc pipe_ctr_descs[];
extern const size_t pipe_ctr_count;

/**
 * Receives each kept session (borrowed for the call; copy what you keep).
 * Returns 0, or -errno (counted as pipe_sink_errors).
 */
typedef int (*pipe_sink_fn)(void *ctx, const struct store_session *s);

struct pipe_params {
	uint32_t max_flows;	 /**< flow table size; 0 = default (flow.h) */
	int64_t idle_timeout_ns; /**< 0 = default */
	size_t reasm_memcap;	 /**< out-of-order bytes, all streams; 0 = default */
	size_t reasm_stream_cap; /**< out-of-order bytes per stream; 0 = default */
	size_t ipfrag_memcap;	 /**< IP fragments held for reassembly; 0 = 4 MiB (ipfrag.h) */
	size_t max_body;	 /**< stored body bytes per message; 0 = txn default */
	size_t max_header;	 /**< header block per message; 0 = txn default */
	size_t txn_memcap;	 /**< bytes held by all HTTP trackers; 0 = 1 GiB */
	/** Above this, idle connections sleep; 0 = 64 MiB, SIZE_MAX = never, 1 = always. */
	size_t txn_dormant_mem;
	const struct rules *rules; /**< borrowed; NULL = everything uncolored */
	/**
	 * Borrowed; NULL = none. Applied after coloring (rules match the
	 * original values), before the sink: the sink never sees a secret.
	 */
	struct redact *redact;
	bool drop_uncolored; /**< drop sessions no rule colors */
	pipe_sink_fn sink;
	void *sink_ctx;
	/**
	 * Optional: a request message ended (txn_params.on_request), colored
	 * by the rules (s->lane set; empty when uncolored; s->id 0). Called
	 * before the session of that request reaches the sink; pair them by
	 * conn_id and ts_req_first_ns, in order per connection. Shares sink_ctx.
	 */
	void (*on_request)(void *ctx, const struct store_session *s);
};

struct pipe;

/** Create a pipeline. NULL on allocation failure. */
struct pipe *pipe_create(const struct pipe_params *p);

/** Free; accepts NULL. Call pipe_finish() first to emit pending sessions. */
void pipe_free(struct pipe *p);

/**
 * Process one packet.
 * @param ts_ns    capture time (Unix-epoch ns)
 * @param linktype DLT_* value (decode.h)
 * @param data     borrowed for the call
 * @param caplen   captured bytes at @p data
 * @param wirelen  length on the wire
 */
void pipe_packet(struct pipe *p, int64_t ts_ns, int linktype, const uint8_t *data, uint32_t caplen,
		 uint32_t wirelen);

/** Move time on while no packets arrive (live capture): idle connections close. */
void pipe_advance(struct pipe *p, int64_t now_ns);

/** End of input: close every connection and emit what is pending. */
void pipe_finish(struct pipe *p);

/** The pipeline's own counters. */
const struct pipe_stats *pipe_get_stats(const struct pipe *p);

/**
 * Fill up to @p max counters (names borrowed from the pipeline, valid until
 * pipe_free()) in a stable order. @return the number of counters there
 * are (call with max 0 to size the array).
 */
size_t pipe_counters(const struct pipe *p, struct store_counter *out, size_t max);

#endif
