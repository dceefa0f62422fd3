/* SPDX-License-Identifier: MIT */
/*
 * shadow_sender - a sender thread around the shadow core (shadow_core.h),
 * so that the threads that capture never do the sender's work
 * (docs/architecture.md "Threads", docs/mirror.md "Threads").
 *
 * Roles and what each may call:
 *  - producers (capture threads; `dyetap mirror` has one): each has its
 *    own bounded single-producer, single-consumer queue, given by index.
 *    shadow_sender_request() runs the core's first step
 *    (shadow_core_classify(), into the producer's own counter block),
 *    copies an accepted request and queues the copy;
 *    shadow_sender_session() queues a copy of a production session for
 *    pairing. Neither ever waits while the capture runs: a full queue
 *    drops the request and counts it (`queue_full`, and the lane's
 *    `dropped_queue_full`) or the session (`sessions_lost`; its request
 *    is then counted `unpaired`). Only after shadow_sender_backpressure()
 *    do they wait for room: when the input can wait (a file read as fast
 *    as possible) or has ended (nothing is read any more).
 *  - the sender thread: owns the core's engines, buckets and pairing table
 *    from shadow_sender_start() to shadow_sender_stop(). It takes the
 *    queues into shadow_core_submit() / shadow_core_session_take() and
 *    runs the engines in short slices in between (epoll, at most 200 us
 *    while requests arrive, 1 ms when idle). The core's hooks (on_pair,
 *    redact) run on it.
 *  - a control thread (one at a time, not during shadow_sender_stop()):
 *    the core's any-thread functions directly (shadow_core_lane_set_rate(),
 *    _set_paused(), _lane_info(), shadow_ctl_command()), the counters
 *    (shadow_sender_sum(), shadow_sender_stats()), and anything that needs
 *    the owner (a core-level reload of lanes or targets) through
 *    shadow_sender_call(), which runs a function on the sender thread
 *    between two slices and waits for it.
 * Before start and after stop, the thread that created the sender is the
 * core's owner again.
 *
 * Ordering: a producer's requests and sessions are taken in the order
 * they were queued, so a request always reaches the core before its
 * production session.
 *
 * Errors: 0 or -errno; create returns NULL with a message in a caller
 * buffer; nothing is printed.
 */
#ifndef DYETAP_REPLAY_SHADOW_SENDER_H
#define DYETAP_REPLAY_SHADOW_SENDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "replay/shadow_core.h"
#include "store/store.h"

#define SHADOW_SENDER_MAX_PRODUCERS 64
#define SHADOW_SENDER_QUEUE_DEFAULT 4096

struct shadow_sender_params {
	/** Borrowed; must outlive the sender. Owned by the sender thread
	 *  between shadow_sender_start() and shadow_sender_stop(). */
	struct shadow_core *core;
	unsigned n_producers; /**< 1..SHADOW_SENDER_MAX_PRODUCERS */
	size_t queue;	      /**< items each producer's queue holds (1..2^26); 0 = 4096 */
	/** Pass production sessions (shadow_sender_session()): the core pairs
	 *  (it has an on_pair hook). false: shadow_sender_session() does nothing. */
	bool pairing;
	/** Called on the sender thread after each slice and at its end (optional). */
	void (*tick)(void *ctx);
	void *ctx;
	/** Starts the thread (the fast path: rte_ctrl_thread_create(), so it
	 *  runs on the control CPUs); NULL: pthread_create(). @return 0 or an errno. */
	int (*thread_create)(pthread_t *t, void *(*fn)(void *), void *arg);
};

/** Counters of the hand-over, one block per producer (shadow_sender_ctr_descs). */
struct shadow_sender_stats {
	uint64_t queued;	/**< requests handed to the sender thread */
	uint64_t queue_full;	/**< requests dropped: the producer's queue was full */
	uint64_t sessions_lost; /**< production sessions not handed over (queue full, memory) */
	uint64_t queue_high;	/**< most slots in use at once, over the producers' queues */
	uint64_t sender_slices; /**< sender thread: engine slices run */
	uint64_t sender_calls;	/**< sender thread: shadow_sender_call() functions run */
};

extern const struct ctr_desc shadow_sender_ctr_descs[];
extern const size_t shadow_sender_ctr_count;

struct shadow_sender;

/** @return the sender (not started), or NULL with a message in @p err. */
struct shadow_sender *shadow_sender_create(const struct shadow_sender_params *p, char *err,
					   size_t errlen);

/** Start the sender thread. @return 0 or -errno with a message in @p err. */
int shadow_sender_start(struct shadow_sender *s, char *err, size_t errlen);

/**
 * Producer @p producer: step 1 for captured request @p sess (borrowed; as
 * announced at its last byte, colored), then a copy queued for the sender.
 * @p flow_key orders the requests of one captured connection; @p req_ns is
 * when its last byte was captured (real clock; 0 unknown).
 * @return the lane's index when queued, -1 when not (counted).
 */
int shadow_sender_request(struct shadow_sender *s, unsigned producer,
			  const struct store_session *sess, uint64_t flow_key, int64_t req_ns);

/** Producer: production session @p sess (borrowed) for pairing; copied when
 *  its lane has targets and pairing is on. */
void shadow_sender_session(struct shadow_sender *s, unsigned producer, uint64_t flow_key,
			   const struct store_session *sess);

/**
 * Any thread: from now on a full queue makes its producer wait for the
 * sender thread to take items (while it runs) instead of dropping. For
 * input that can wait (a file read as fast as possible) and for the end
 * of a live capture (the pending sessions emitted at the stop).
 */
void shadow_sender_backpressure(struct shadow_sender *s);

/**
 * Control thread: run @p fn(core, @p ctx) on the sender thread between two
 * slices and wait for it (about a slice, at most a millisecond or two,
 * plus what @p fn takes); on the calling thread when the sender is not
 * running. Not concurrently with shadow_sender_stop().
 * @return what @p fn returned.
 */
int shadow_sender_call(struct shadow_sender *s, int (*fn)(struct shadow_core *c, void *ctx),
		       void *ctx);

/**
 * The creating thread, after the producers' last call: the sender thread
 * takes what is queued, waits up to the core's drain time for the answers
 * (shadow_core_drain()), completes every pair (shadow_core_finish()) and
 * ends; joined here. No-op when not running.
 */
void shadow_sender_stop(struct shadow_sender *s);

/** Stop, free what is still queued (counted nowhere: only without start). Accepts NULL. */
void shadow_sender_free(struct shadow_sender *s);

/** Any thread: the core's counters, the producers' blocks included (relaxed reads). */
void shadow_sender_sum(const struct shadow_sender *s, struct shadow_stats *out);

/** Any thread: the hand-over counters summed over the producers. */
void shadow_sender_stats(const struct shadow_sender *s, struct shadow_sender_stats *out);

#endif
