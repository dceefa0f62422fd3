/* SPDX-License-Identifier: MIT */
/*
 * shadow_pair - the bounded table that pairs each shadowed request's
 * production session with its shadow answers (docs/architecture.md
 * "Shadowing", docs/mirror.md steps 3-4).
 *
 * A shadowed request is known three times, in an order the network
 * decides: when it is sent (shadow_pairs_add()), when each target of its
 * lane answers or fails (shadow_pairs_result(), once per target), and -
 * when pairing is wanted - when the capture emits its session with the
 * production response (shadow_pairs_session()). An entry is complete when
 * every target has answered and, if it wants one, its session is in; it
 * is then handed to the completion callback once, and freed.
 *
 * Sessions find their entry by (flow key, request first-byte time), first
 * in, first out per key: the order in which the capture emits the
 * sessions of one connection (two pipelined requests in one packet share
 * their time; FIFO keeps them apart). A session no entry waits for is
 * ignored: its request was not sent.
 *
 * Bounds: entries still waiting for an answer belong to the sender and
 * are bounded by its queue; entries that have every answer and wait only
 * for their session are at most max_waiting: over it, the oldest is
 * completed unpaired (its session was lost on the way: a full ring, an
 * eviction). Nothing here waits for anything or grows without a cap.
 *
 * Thread-safety: one thread (the sender that owns the engines).
 */
#ifndef DYETAP_REPLAY_SHADOW_PAIR_H
#define DYETAP_REPLAY_SHADOW_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/** Most targets of one lane (answers kept per entry). */
#define SHADOW_MAX_TARGETS 8

/** One shadowed request, as the completion callback sees it. */
struct shadow_pair {
	unsigned lane;	    /**< the lane's index (shadow_core) */
	unsigned n_targets; /**< answers expected */
	unsigned n_res;	    /**< answers received (res[] holds the first SHADOW_MAX_TARGETS) */
	uint64_t flow_key;
	int64_t ts_first; /**< the request's first-byte time (capture clock) */
	int64_t req_ns;	  /**< when the request was captured (real clock; 0 unknown) */
	/**
	 * The production session (a shadow_session_dup() copy), NULL when
	 * unpaired (pairing not wanted, or the session never came). The
	 * callback may take it: set the pointer to NULL and shadow_free() it
	 * later.
	 */
	struct store_session *prod;
	/** The answers in arrival order (shadow_result_dup() copies; NULL where
	 *  none was kept). The callback may take them as @p prod. */
	struct store_result *res[SHADOW_MAX_TARGETS];
};

/** Completion: @p p is freed after the call (with what the callback left in it). */
typedef void (*shadow_pair_fn)(void *ctx, struct shadow_pair *p);

struct shadow_pairs_params {
	size_t max_waiting; /**< answered entries waiting for their session; 0 = 4096 */
	shadow_pair_fn on_complete;
	void *ctx;
};

struct shadow_pairs_stats {
	uint64_t added;	   /**< entries created */
	uint64_t paired;   /**< sessions matched to an entry */
	uint64_t unpaired; /**< entries that wanted a session and completed without one */
	uint64_t trimmed;  /**< ... of which completed early, over max_waiting */
	uint64_t ignored;  /**< sessions no entry waited for */
	uint64_t live;	   /**< entries now */
	uint64_t waiting;  /**< ... of which answered, waiting for their session */
};

struct shadow_pairs;

/** An empty table. NULL when out of memory. */
struct shadow_pairs *shadow_pairs_create(const struct shadow_pairs_params *p);

/** Free every entry (no callback) and the table; accepts NULL. */
void shadow_pairs_free(struct shadow_pairs *t);

/**
 * A request was sent to @p n_targets targets (1..). With @p want_session
 * the entry also waits for the session of (@p flow_key, @p ts_first).
 * @return the entry (the sender's `user` pointer for its answers), or NULL
 *         when out of memory.
 */
struct shadow_pair *shadow_pairs_add(struct shadow_pairs *t, uint64_t flow_key, int64_t ts_first,
				     unsigned lane, unsigned n_targets, bool want_session);

/** Forget entry @p e (its request could not be sent after all): no callback, not counted. */
void shadow_pairs_cancel(struct shadow_pairs *t, struct shadow_pair *e);

/**
 * One target's answer for entry @p e: @p copy (a shadow_result_dup() copy,
 * transferred; NULL when none is kept) is stored and the entry completes
 * when it was the last thing missing. @p e must not be used afterwards
 * unless more answers are due.
 */
void shadow_pairs_result(struct shadow_pairs *t, struct shadow_pair *e, struct store_result *copy);

/**
 * The capture emitted session @p s (borrowed) of (@p flow_key,
 * s->ts_req_first_ns). The oldest entry waiting for that key gets a copy.
 * @return 1 matched, 0 no entry waits for it, -ENOMEM (the entry then
 *         completes unpaired).
 */
int shadow_pairs_session(struct shadow_pairs *t, uint64_t flow_key, const struct store_session *s);

/** As shadow_pairs_session() with a copy made by the caller (transferred: freed when unmatched). */
int shadow_pairs_session_take(struct shadow_pairs *t, uint64_t flow_key,
			      struct store_session *copy);

/** Complete every entry now (the end of a run): those without a session as unpaired. */
void shadow_pairs_flush(struct shadow_pairs *t);

/** Counters. */
const struct shadow_pairs_stats *shadow_pairs_get_stats(const struct shadow_pairs *t);

#endif
