/* SPDX-License-Identifier: MIT */
/*
 * replay_causal - causal order of a replay: happens-before taken from the
 * capture, kept while replaying (docs/replay.md "Causal order").
 *
 * Rule. Request R depends on request Q of the same service (the recorded
 * server address and port, or one service for everything with
 * one_service) when Q's recorded response ended before R's request
 * started (ts_resp_last_ns < ts_req_first_ns) and at least one of them is
 * a write (a method other than GET, HEAD, OPTIONS; with strict every
 * request counts as a write, so reads order each other too). Replay
 * sends R to a target only when every Q it depends on has finished on
 * that target: answered, failed or timed out (a failure releases its
 * dependents like a response, so nothing waits longer than the request
 * timeout per dependency, and nothing deadlocks). Requests whose
 * recorded intervals overlap stay concurrent.
 *
 * Watermark, not pairs. A gate never lists the requests it waits for. It
 * compares R's recorded start with one number per (service, target, kind):
 * the earliest recorded end among requests that have not finished yet
 * (kind "all" for writes to wait on, kind "writes" for reads). R may go
 * when that watermark is at or after R's start. Each thread keeps the
 * requests it owns (its recorded connections) in a min-heap by recorded
 * end per (service, target, kind) and publishes the heap's top; requests
 * a thread has not read yet are covered by its horizon, a lower bound of
 * the recorded start of everything it will still read (a request ends
 * after it starts). Cost per request: one heap push and pop per target
 * and kind (the heaps hold what is in flight, not the recording), one
 * atomic store when a top or the horizon moves, and per gate check one
 * relaxed-cost load of each other thread's top and horizon.
 *
 * Threads. Shared state is only atomics: per thread, its horizon and its
 * published tops (padded per thread so that writers never share a cache
 * line), a "waiting" flag and an eventfd. A thread that has parked
 * requests sets its flag before it sleeps and rechecks; a thread that
 * publishes progress wakes (eventfd) every thread whose flag it clears.
 * Both sides use sequentially consistent operations, so a wake-up is
 * never lost (either the sleeper sees the new value or the publisher sees
 * the flag). With one thread none of this is used.
 *
 * Passes (--loop): pass P's times are shifted by P times the recording's
 * span (from the first request start to the last response end, plus one
 * ns), so every request of pass P waits for what it depends on in pass
 * P - 1 and before.
 *
 * Thread-safety: the scan functions and replay_causal_start() are called by
 * one thread before the replay threads start; each replay_causal_thr is
 * used by its own thread only; replay_causal_abandon() by any thread.
 */
#ifndef DYETAP_REPLAY_REPLAY_CAUSAL_H
#define DYETAP_REPLAY_REPLAY_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/** The order a replay keeps (--order). */
enum replay_order {
	REPLAY_ORDER_AUTO = 0, /**< causal when the replayed sessions contain a write, else pace */
	REPLAY_ORDER_CAUSAL,   /**< pace plus happens-before (writes order everything) */
	REPLAY_ORDER_STRICT,   /**< causal, with reads ordering each other too */
	REPLAY_ORDER_PACE,     /**< request-time order and the schedule only */
	REPLAY_ORDER_NONE,     /**< the order the recording stores, the schedule only */
};

/** Parse "causal", "strict", "pace", "none". @return 0 or -EINVAL. */
int replay_order_parse(const char *s, enum replay_order *out);

/** The option's name of @p o ("auto" for REPLAY_ORDER_AUTO). */
const char *replay_order_name(enum replay_order o);

/** Most targets one causal tracker follows (bits of a mask). */
#define REPLAY_CAUSAL_MAX_TARGETS 64

struct replay_causal_params {
	uint32_t n_threads; /**< replay threads, >= 1 */
	uint32_t n_targets; /**< targets, 1..REPLAY_CAUSAL_MAX_TARGETS */
	bool strict;	    /**< reads order each other too (every request is a write) */
	bool one_service;   /**< every session belongs to one service */
};

struct replay_causal;
struct replay_causal_thr;
struct replay_causal_ent;

/** No gate: the request waits for nothing (dep.svc). */
#define REPLAY_CAUSAL_NONE UINT32_MAX

/** What one request waits for, and what waits for it. */
struct replay_dep {
	uint32_t svc;  /**< tracked service index, REPLAY_CAUSAL_NONE: no gate */
	bool write;    /**< waits for every earlier request, else for earlier writes */
	int64_t start; /**< recorded request start, shifted by pass */
	/** The request's entry for those that wait for it; NULL when nobody
	 *  can (no recorded response end). Owned by the tracker: valid until
	 *  replay_causal_done() was called for every target. */
	struct replay_causal_ent *ent;
};

/** Create the shared state. @return NULL on bad parameters or out of memory. */
struct replay_causal *replay_causal_create(const struct replay_causal_params *p);

/** Free (after every thread's tracker). Accepts NULL. */
void replay_causal_free(struct replay_causal *c);

/** Is session @p s a write (a method other than GET, HEAD, OPTIONS)? */
bool replay_causal_is_write(const struct store_session *s);

/**
 * Scan phase: account session @p s, which the replay will send (its
 * service, whether it writes, its recorded end). @return 0 or -ENOMEM.
 */
int replay_causal_scan(struct replay_causal *c, const struct store_session *s);

/** After the scan: did any scanned session write? */
bool replay_causal_any_write(const struct replay_causal *c);

/** After the scan: services whose requests are ordered (with writes, or all when strict). */
uint32_t replay_causal_n_tracked(const struct replay_causal *c);

/**
 * End of the scan: @p t0 is the earliest recorded request start of the
 * sessions scanned. Allocates the shared state and, with several
 * threads, one eventfd per thread. @return 0, -ENOMEM, or -errno of eventfd(2).
 */
int replay_causal_start(struct replay_causal *c, int64_t t0);

/** Recorded time one pass is shifted by (--loop), > 0 after start. */
int64_t replay_causal_pass_shift(const struct replay_causal *c);

/** Create thread @p idx's tracker (idx < n_threads). @return NULL when out of memory. */
struct replay_causal_thr *replay_causal_thr_create(struct replay_causal *c, uint32_t idx);

/** Free a tracker: its entries and parked objects are forgotten. Accepts NULL. */
void replay_causal_thr_free(struct replay_causal_thr *ct);

/* ---- reader side (the thread that reads its share of the recording) ---- */

/**
 * Session @p s of pass @p pass, one of this thread's, was read and will
 * be submitted: fill @p dep (and track the request's end for the ones
 * that depend on it). Call as soon as the session is read: before any
 * session that starts after it is submitted.
 * @return 0, or -ENOMEM (then @p dep has no gate and no entry).
 */
int replay_causal_read(struct replay_causal_thr *ct, const struct store_session *s, uint32_t pass,
		       struct replay_dep *dep);

/**
 * Every session of this thread not read yet starts at or after recorded
 * time @p h (shifted by pass); INT64_MAX at the end of the input.
 * Monotone: a lower value is ignored.
 */
void replay_causal_horizon(struct replay_causal_thr *ct, int64_t h);

/** The request of @p ent will not be sent (or finished on every target at once). NULL ok. */
void replay_causal_drop(struct replay_causal_thr *ct, struct replay_causal_ent *ent);

/** The entry was handed to the engine: replay_causal_reading_done() leaves it. */
void replay_causal_queued(struct replay_causal_ent *ent);

/**
 * This thread reads no more: its horizon becomes INT64_MAX and the
 * requests it read but did not queue (replay_causal_queued()) are dropped.
 */
void replay_causal_reading_done(struct replay_causal_thr *ct);

/* ---- engine side (the same thread) ---- */

/** May the request of @p d go to target @p target now? */
bool replay_causal_ready(struct replay_causal_thr *ct, const struct replay_dep *d, uint32_t target);

/** Park @p obj until the request of @p d may go to @p target. @return 0 or -ENOMEM. */
int replay_causal_park(struct replay_causal_thr *ct, const struct replay_dep *d, uint32_t target,
		       void *obj);

typedef void (*replay_causal_fn)(void *ctx, void *obj);

/**
 * Hand every parked object whose request may go now to @p fn (which may
 * call replay_causal_ready() and _done(), not _park()). Does nothing unless
 * something changed since the last call, or @p before_sleep: then the
 * thread is also marked as waiting, so that other threads' progress
 * wakes it through replay_causal_fd(). @return the number released.
 */
size_t replay_causal_release(struct replay_causal_thr *ct, replay_causal_fn fn, void *ctx,
			     bool before_sleep);

/** Forget every parked object (their requests are dropped). */
void replay_causal_unpark_all(struct replay_causal_thr *ct);

/** Objects parked now. */
size_t replay_causal_n_parked(const struct replay_causal_thr *ct);

/** The request of @p ent finished on @p target (response or error). NULL ok. */
void replay_causal_done(struct replay_causal_thr *ct, struct replay_causal_ent *ent,
			uint32_t target);

/** Readable when another thread made progress; -1 with one thread. */
int replay_causal_fd(const struct replay_causal_thr *ct);

/** replay_causal_fd() was readable: consume it and recheck parked objects. */
void replay_causal_kick(struct replay_causal_thr *ct);

/**
 * Stop ordering: every gate opens from now on and every thread is woken.
 * For a recording whose order could not be restored (the hold cap). Any
 * thread; idempotent. @return true for the call that switched it off.
 */
bool replay_causal_abandon(struct replay_causal *c);

/** Was the order abandoned? */
bool replay_causal_abandoned(const struct replay_causal *c);

#endif
