/* SPDX-License-Identifier: MIT */
/*
 * shadow_core - live shadowing, once, for `dyetap mirror` and
 * `dyetap-fastpath` (docs/architecture.md "Shadowing", docs/mirror.md).
 *
 * What a captured request goes through before a copy of it reaches a lane
 * target, in this order, each refusal counted per lane under its reason:
 *
 *  1. shadow_core_classify() - any thread, read-only state:
 *     the lane (the session's color) must have targets; loop protection:
 *     a request carrying the shadow marker header is dyetap's own copy and
 *     is never shadowed again (`loop`), and with no marker configured
 *     (--no-shadow-header) a request whose server is one of the lane's
 *     targets is not shadowed to that lane (`loop`); the production guard:
 *     a lane target that is the captured server itself gets nothing
 *     (`production`) unless --i-know-this-is-production; the request
 *     itself: cut by the capture (`incomplete`), a write without
 *     --allow-writes (`write_refused`), a tunnel or HTTP/0.9
 *     (`unsupported`).
 *  2. shadow_core_submit() - the owner thread (the one running the
 *     engines): a target of the lane refused a connection in the last
 *     second (`target_down`), --queue requests per target already queued
 *     or in flight (`queue_full`), over --lane-rate (`rate_limited`);
 *     otherwise the request goes to the lane's replay engine (replay.h),
 *     every target of the lane, requests of one captured connection in
 *     order on one target connection.
 *  3. The answers come back in shadow_core_run(); with pairing on, each is
 *     redacted by the caller's hook, copied, and paired with the
 *     production session (shadow_core_session()) in a bounded table
 *     (shadow_pair.h); the caller's callback gets each complete pair.
 *
 * Between 1 and 2 both programs put replay/shadow_sender.h: bounded
 * queues and one sender thread, the owner (mirror's capture thread or the
 * fast path's workers classify; the sender thread submits).
 *
 * Counters: struct shadow_stats, all uint64_t, one block per thread that
 * classifies (single writer, relaxed stores) plus the owner's own block;
 * any thread may sum them (shadow_core_sum()) and name them
 * (shadow_core_each(), shadow_core_counters()). The engines' counters are
 * copied into the owner's block after each slice of shadow_core_run(), so
 * no other thread ever reads engine memory.
 *
 * Reconfiguration (docs/operations.md "reload"): shadow_core_reconfigure()
 * prepares a new set of lanes, targets, rates and options from any one
 * thread (copies, guards, engines: everything that can fail), and the
 * owner switches to it at a safe point, the start of its next
 * shadow_core_run() or an explicit shadow_core_apply(). Counters are kept
 * per lane *name* ("slot"): a lane that keeps its name keeps its counters
 * and its pause, a removed lane keeps its final counts (reported, state
 * "removed"), a new lane starts at 0. Lane indices (classify()'s return,
 * the counter blocks, shadow_core_lanes()) are slots: they never change
 * meaning. A lane whose targets or engine settings change gets a new
 * engine; the old one finishes its requests in flight (counted in the
 * slot) and is freed; requests classified for a lane just removed are
 * counted `dropped_stopped` at submit.
 *
 * Run-time control (docs/operations.md): a lane's rate may be changed
 * from any thread (shadow_core_lane_set_rate()); the owner applies it at
 * its next submit. A lane may be paused from any thread
 * (shadow_core_lane_set_paused()): from the moment the call returns,
 * classify() counts the lane's requests `dropped_paused` and queues
 * nothing. shadow_core_lane_info() reads a lane's state from any thread.
 *
 * Options: struct shadow_conf holds the options both commands share, with
 * one parser (shadow_conf_option()) and one help text.
 *
 * Errors follow the project's rules: 0 or -errno; constructors return NULL
 * with a message in a caller buffer; nothing is printed (warnings are
 * handed out by shadow_core_warning()).
 */
#ifndef DYETAP_REPLAY_SHADOW_CORE_H
#define DYETAP_REPLAY_SHADOW_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "replay/replay.h"
#include "replay/shadow.h"
#include "replay/shadow_pair.h"
#include "store/store.h"

#define SHADOW_MAX_LANES 16 /**< --lane names */
#define SHADOW_MAX_HDRS	 64 /**< --set-header and --del-header each */
/** shadow_core_reconfigure() calls over a core's life (each keeps its conf copy). */
#define SHADOW_MAX_RECONFIGURE 64
/** Distinct (lane, target URL) pairs over a core's life (per-target counters). */
#define SHADOW_MAX_TARGET_ROWS 256
/** The marker header sent on every shadow request unless --no-shadow-header. */
#define SHADOW_MARKER_NAME  "x-dyetap-shadow"
#define SHADOW_MARKER_VALUE "1"

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

/** One --lane. */
struct shadow_lane_conf {
	char name[64];
	const char *urls[SHADOW_MAX_TARGETS]; /**< borrowed (the option's argument, split) */
	size_t n_urls;
	double rate; /**< --lane-rate per second; 0 = none */
};

/** The options `dyetap mirror` and `dyetap-fastpath` share (docs/mirror.md "Options"). */
struct shadow_conf {
	struct shadow_lane_conf lanes[SHADOW_MAX_LANES];
	size_t n_lanes;
	uint64_t queue;	     /**< --queue: queued + in flight per lane target (1000) */
	int64_t timeout_ns;  /**< --timeout per request (10 s) */
	int64_t drain_ns;    /**< --drain-timeout at the end (5 s) */
	bool allow_writes;   /**< --allow-writes */
	bool production;     /**< --i-know-this-is-production: the production guard is off */
	bool insecure;	     /**< --insecure: https targets' certificates not verified */
	const char *ca_file; /**< --ca FILE */
	const char *sni;     /**< --sni NAME */
	/** Rewrite rules (--host, --set-header, --del-header, --path-prefix) and
	 *  the marker (--shadow-header, --no-shadow-header: shadow_name NULL).
	 *  set/del point into the arrays below. */
	struct replay_rewrite rw;
	struct replay_hdr_set sets[SHADOW_MAX_HDRS];
	size_t n_sets;
	const char *dels[SHADOW_MAX_HDRS];
	size_t n_dels;
	struct replay_hdr_set marker;
};

/** Defaults: queue 1000, timeout 10 s, drain 5 s, marker x-dyetap-shadow: 1. */
void shadow_conf_init(struct shadow_conf *c);

/**
 * Apply the long option @p name (without the dashes: "lane", "queue",
 * ...) with its argument @p arg (NULL for flags; modified in place and
 * borrowed for the conf's life). Recognized: lane, lane-rate, queue,
 * timeout, drain-timeout, allow-writes, i-know-this-is-production,
 * insecure, ca, sni, host, set-header, del-header, path-prefix,
 * shadow-header, no-shadow-header.
 * @return 1 handled, 0 not one of these, -EINVAL with a message naming
 *         the option in @p err.
 */
int shadow_conf_option(struct shadow_conf *c, const char *name, char *arg, char *err,
		       size_t errlen);

/**
 * After the options: every lane named by --lane-rate has targets and at
 * least one lane exists; the rewrite rules are valid (replay_rewrite_check()).
 * @return 0 or -EINVAL with a message.
 */
int shadow_conf_check(struct shadow_conf *c, char *err, size_t errlen);

/** The options' --help lines (two-space indent, 80 columns). */
extern const char shadow_conf_help[];

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

/** Counters of one lane (shadow_lane_ctr_descs names them). */
struct shadow_lane_stats {
	uint64_t colored;	     /**< classify: requests colored for the lane */
	uint64_t mirrored;	     /**< owner: handed to the lane's engine */
	uint64_t sent;		     /**< owner: engine outcomes, summed over the lane's targets */
	uint64_t ok;		     /**< ... whole responses */
	uint64_t errors;	     /**< ... errors of every kind */
	uint64_t err_refused;	     /**< ... connection refused */
	uint64_t err_reset;	     /**< ... reset or closed early */
	uint64_t err_timeout;	     /**< ... no whole answer within --timeout */
	uint64_t err_tls;	     /**< ... TLS handshake or certificate */
	uint64_t err_other;	     /**< ... connect, bad response, interrupted, ... */
	uint64_t h2_refused_retried; /**< ... HTTP/2 streams refused unprocessed, sent again */
	uint64_t h2_cancelled_as_recorded;   /**< ... HTTP/2 streams cancelled as captured */
	uint64_t h2_grpc_deadline;	     /**< ... gRPC calls ended at their deadline */
	uint64_t dropped[SHADOW_DROP_COUNT]; /**< not mirrored, by reason */
};

/** Counters of one thread (classify) or of the owner (everything else). */
struct shadow_stats {
	uint64_t requests;		/**< requests announced (last byte captured) */
	uint64_t colored;		/**< ... colored by a rule */
	uint64_t no_lane;		/**< ... for a lane without --lane */
	uint64_t mirrored;		/**< owner: handed to a lane's engine */
	uint64_t paired;		/**< owner: sent requests paired with their session */
	uint64_t unpaired;		/**< owner: ... whose session never came */
	uint64_t results_redact_errors; /**< owner: answers not kept: redaction failed */
	uint64_t delay_p50_us;		/**< owner: request captured -> first shadow byte sent */
	uint64_t delay_p99_us;
	uint64_t delay_max_us;
	struct shadow_lane_stats lane[SHADOW_MAX_LANES];
};

extern const struct ctr_desc shadow_ctr_descs[]; /**< struct shadow_stats' totals */
extern const size_t shadow_ctr_count;
extern const struct ctr_desc shadow_lane_ctr_descs[]; /**< struct shadow_lane_stats */
extern const size_t shadow_lane_ctr_count;

/** Count a drop of @p lane for @p why decided by the caller (e.g. its ring was full). */
void shadow_stats_drop(struct shadow_stats *st, unsigned lane, enum shadow_drop why);

/* ------------------------------------------------------------------ */
/* The core                                                            */
/* ------------------------------------------------------------------ */

/** What the caller does with the results (all optional). */
struct shadow_hooks {
	/** Pairing: each sent request's production session and answers, once
	 *  complete (called on the owner thread). NULL: answers are only counted. */
	shadow_pair_fn on_pair;
	void *ctx;
	/** Redaction of an answer before it is kept (recorder_redact_result()
	 *  fits); -errno: the answer is not kept (results_redact_errors). */
	int (*redact)(void *ctx, const struct store_result *in, struct store_result *out);
	void *redact_ctx;
	/** Answered requests waiting for their session; 0 = 4 x queue x targets + 4096. */
	size_t max_waiting;
};

struct shadow_core;

/**
 * Resolve every lane's targets (the guards; getaddrinfo), create one
 * engine per lane (TLS set up). @p c is copied, its strings too.
 * @return the core, or NULL with a message naming the lane in @p err.
 */
struct shadow_core *shadow_core_create(const struct shadow_conf *c, const struct shadow_hooks *h,
				       char *err, size_t errlen);

/** Free (in-flight requests dropped without callback; pairs freed). Accepts NULL. */
void shadow_core_free(struct shadow_core *c);

/**
 * Prepare a switch to the lanes, targets, rates and options of @p conf
 * (checked with shadow_conf_check(); copied, strings too). Any one thread
 * at a time. Everything that can fail is done here (target resolution,
 * engines, limits); the owner switches at its next shadow_core_run() or
 * shadow_core_apply(), all lanes at once. Lanes are matched by name:
 * one that stays keeps its counters, pause and (same targets and engine
 * settings) its engine; its rate becomes @p conf's.
 * @return 0 prepared; -EBUSY the previous one is not switched to yet;
 *         -ENOSPC SHADOW_MAX_RECONFIGURE reached, or more than
 *         SHADOW_MAX_LANES lane names or SHADOW_MAX_TARGET_ROWS lane
 *         targets over the core's life; -EINVAL a target that does not
 *         resolve, an engine refused; -ENOMEM. A message in @p err; on
 *         error nothing changes.
 */
int shadow_core_reconfigure(struct shadow_core *c, const struct shadow_conf *conf, char *err,
			    size_t errlen);

/**
 * Owner, at a safe point (no classify() result of its own thread pending
 * submit is lost: one classified for a removed lane is counted
 * `dropped_stopped`): switch to the prepared configuration, if any.
 * shadow_core_run() calls it first. @return 1 switched, 0 nothing prepared.
 */
int shadow_core_apply(struct shadow_core *c);

/** Any thread: a prepared configuration waits for the owner's switch. */
bool shadow_core_pending_switch(const struct shadow_core *c);

/** Any thread: configurations switched to (1 after create). */
uint32_t shadow_core_switches(const struct shadow_core *c);

/**
 * Number of lane slots (every lane name configured over the core's life,
 * removed ones included), a slot's lane name (the core's life), the slot
 * of the lane named @p name[0..len) in the current configuration (-1: none).
 */
size_t shadow_core_lanes(const struct shadow_core *c);
const char *shadow_core_lane_name(const struct shadow_core *c, unsigned lane);
int shadow_core_lane_find(const struct shadow_core *c, const uint8_t *name, size_t len);

/**
 * Step 1 for captured request @p s (as announced at its last byte,
 * colored). Any thread; counts into @p st (the caller's block).
 * @return the lane's index, or -1 when it is not to be shadowed (counted).
 */
int shadow_core_classify(struct shadow_core *c, const struct store_session *s,
			 struct shadow_stats *st);

/**
 * Step 2 (owner thread): send the request of @p s (copied; may be freed
 * on return) to lane @p lane, classified before. @p flow_key orders the
 * requests of one captured connection; @p req_ns is when its last byte
 * was captured (real clock, for mirror_delay; 0 unknown).
 * @return 0 sent, or the enum shadow_drop it was dropped for (counted).
 */
int shadow_core_submit(struct shadow_core *c, unsigned lane, const struct store_session *s,
		       uint64_t flow_key, int64_t req_ns);

/** Pairing (owner): the capture emitted session @p s (borrowed; copied when waited for). */
void shadow_core_session(struct shadow_core *c, uint64_t flow_key, const struct store_session *s);

/** As shadow_core_session() with a shadow_session_dup() copy (transferred). */
void shadow_core_session_take(struct shadow_core *c, uint64_t flow_key, struct store_session *copy);

/**
 * Owner: run every engine until CLOCK_MONOTONIC @p until_ns (the first may
 * wait in epoll until then; the others only take what is ready), then
 * publish the counters. @return 0 or an epoll error.
 */
int shadow_core_run(struct shadow_core *c, int64_t until_ns);

/** Requests queued or in flight, all lanes (owner). */
uint64_t shadow_core_pending(const struct shadow_core *c);

/**
 * Owner, at the end: wait up to the conf's drain time for the answers,
 * then drop what is still queued (`stopped`) and fail what is in flight.
 */
void shadow_core_drain(struct shadow_core *c);

/** Owner, after the last session: complete every pair (unpaired ones too). */
void shadow_core_finish(struct shadow_core *c);

/** The owner's counter block (a one-thread caller classifies into it too). */
struct shadow_stats *shadow_core_stats(struct shadow_core *c);

/** @p out = the owner's block + @p n blocks of @p blocks (relaxed reads; any thread). */
void shadow_core_sum(const struct shadow_core *c, const struct shadow_stats *const *blocks,
		     size_t n, struct shadow_stats *out);

/**
 * Every counter of @p t: the totals (@p lane NULL), then each lane's, in
 * the tables' order: fn(ctx, lane name or NULL, counter name, value).
 */
void shadow_core_each(const struct shadow_core *c, const struct shadow_stats *t,
		      void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v),
		      void *ctx);

/**
 * Append the counters of @p t to @p set, the totals named @p total_prefix +
 * name ("mirror_requests") and each lane's @p lane_prefix + lane + "_" +
 * name ("lane_blue_sent"). @return 0 or the set's first error.
 */
int shadow_core_counters(const struct shadow_core *c, const struct shadow_stats *t,
			 const char *total_prefix, const char *lane_prefix, struct ctr_set *set);

/**
 * Any thread: set @p lane's rate (requests per second, 0 = unlimited);
 * the owner applies it at its next submit. @return 0 or -EINVAL.
 */
int shadow_core_lane_set_rate(struct shadow_core *c, unsigned lane, double rate);

/**
 * Any thread: pause (@p paused true) or resume lane @p lane. Requests
 * classified after the call returns see it (dropped_paused); requests
 * classified before are sent as usual. @return 0 or -EINVAL.
 */
int shadow_core_lane_set_paused(struct shadow_core *c, unsigned lane, bool paused);

/** A lane's state as shadow_core_lane_info() reads it. */
struct shadow_lane_info {
	const char *name;	 /**< borrowed (the core's life) */
	const char *const *urls; /**< borrowed (the core's life); the last ones when removed */
	size_t n_urls;
	bool removed; /**< not in the current configuration (a reload removed it) */
	bool paused;
	double rate;	 /**< requests per second asked for; 0 = unlimited */
	uint64_t queued; /**< queued or in flight at the owner's last run slice */
};

/** Any thread: the state of lane @p lane into @p out. @return 0 or -EINVAL. */
int shadow_core_lane_info(const struct shadow_core *c, unsigned lane, struct shadow_lane_info *out);

/** One lane target's counters (shadow_core_target_info()). */
struct shadow_target_info {
	const char *lane;	   /**< borrowed (the core's life) */
	const char *url;	   /**< borrowed (the core's life) */
	bool active;		   /**< a target of the lane in the current configuration */
	uint64_t sent, ok, errors; /**< answers and errors of this target */
};

/** Any thread: (lane, target) rows ever configured; row @p row's counters. -EINVAL: none. */
size_t shadow_core_targets(const struct shadow_core *c);
int shadow_core_target_info(const struct shadow_core *c, size_t row,
			    struct shadow_target_info *out);

/**
 * A warning not handed out yet (the production guard or loop protection
 * met a lane's target for the first time), copied to @p msg; it names the
 * counter as @p lane_prefix + lane + "_dropped_REASON".
 * @return 1 when one was copied, 0 when none is pending. One reader thread.
 */
int shadow_core_warning(struct shadow_core *c, const char *lane_prefix, char *msg, size_t msglen);

#endif
