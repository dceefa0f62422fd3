/* SPDX-License-Identifier: MIT */
/*
 * shadow - small pieces of live shadow mirroring (docs/mirror.md,
 * docs/architecture.md "Shadowing") that sit beside the replay engine:
 * self-contained copies of sessions and results (a live request is kept
 * until its production response and its shadow responses are both in),
 * a per-lane token bucket (--lane-rate), and the drop reasons a lane
 * counts when a shadow request is not sent.
 *
 * The engine itself (replay.h) does the sending and the shadow core
 * (shadow_core.h) the rest; this module knows nothing of capture or
 * analysis.
 * Thread-safety: plain data; one user per object.
 */
#ifndef DYETAP_REPLAY_SHADOW_H
#define DYETAP_REPLAY_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/**
 * A copy of @p s in one allocation (headers, bodies and strings inside);
 * free it with shadow_free(). NULL on allocation failure.
 */
struct store_session *shadow_session_dup(const struct store_session *s);

/** A copy of @p r in one allocation; free with shadow_free(). NULL on failure. */
struct store_result *shadow_result_dup(const struct store_result *r);

/** Free a copy made above; accepts NULL. */
void shadow_free(void *copy);

/** Token bucket: @p rate tokens per second, at most @p burst stored. */
struct shadow_bucket {
	double rate;  /**< tokens per second; <= 0 means unlimited */
	double burst; /**< capacity */
	double tokens;
	int64_t last_ns;
};

/** Start full. @p rate <= 0: unlimited. @p burst 0: max(1, rate / 10). */
void shadow_bucket_init(struct shadow_bucket *b, double rate, double burst, int64_t now_ns);

/** Take one token at time @p now_ns (monotonic). @return true when one was there. */
bool shadow_bucket_take(struct shadow_bucket *b, int64_t now_ns);

/** Why a colored request was not mirrored to a lane. */
enum shadow_drop {
	SHADOW_DROP_QUEUE_FULL = 0, /**< the lane's bounded queue was full */
	SHADOW_DROP_RATE_LIMITED,   /**< over the lane's --lane-rate */
	SHADOW_DROP_TARGET_DOWN,    /**< a target refused connections in the last second */
	SHADOW_DROP_WRITE_REFUSED,  /**< not GET/HEAD/OPTIONS and no --allow-writes */
	SHADOW_DROP_INCOMPLETE,	    /**< the captured request is cut (gap, loss, cap) */
	SHADOW_DROP_UNSUPPORTED,    /**< HTTP/0.9, CONNECT/Upgrade */
	SHADOW_DROP_NO_MEMORY,	    /**< allocation failed */
	SHADOW_DROP_STOPPED,	    /**< still queued when the drain time ran out */
	SHADOW_DROP_PRODUCTION,	    /**< a lane target is the captured server (production guard) */
	SHADOW_DROP_LOOP,	    /**< dyetap's own shadow traffic (loop protection) */
	SHADOW_DROP_PAUSED,	    /**< the lane was paused (`dyetap ctl SOCK pause LANE`) */
	SHADOW_DROP_COUNT,
};

/** Stable lower-case name of @p why ("queue_full", ...). */
const char *shadow_drop_name(unsigned why);

/**
 * May the request of @p s, as announced at its last captured byte
 * (pipe_params.on_request: no response yet), be sent to a lane? No when
 * it is a tunnel (STORE_F_TUNNEL) or may become one (a CONNECT, a request
 * with an Upgrade field: its 101 is not known yet) -> SHADOW_DROP_UNSUPPORTED; when the
 * capture cut it (any other flag but STORE_F_MIDSTREAM and
 * STORE_F_NO_RESPONSE; a body over the cap) -> SHADOW_DROP_INCOMPLETE;
 * a method other than GET/HEAD/OPTIONS without @p allow_writes ->
 * SHADOW_DROP_WRITE_REFUSED; no request line, HTTP/0.9, CONNECT or
 * Upgrade -> SHADOW_DROP_UNSUPPORTED (replay_filter_check()'s rules).
 * @return true when it may; else false with the reason in @p why.
 */
bool shadow_request_admit(const struct store_session *s, bool allow_writes, enum shadow_drop *why);

/*
 * Lane options shared by `dyetap mirror` and `dyetap-fastpath`:
 * --lane LANE=URL[,URL...] and --lane-rate LANE=N[/s].
 */

/**
 * Split "LANE=REST": the name is @p arg[0 .. *name_len), @p *rest points
 * after the '='. -EINVAL when there is no '=' or no name.
 */
int shadow_lane_arg(char *arg, size_t *name_len, char **rest);

/**
 * Append the comma-separated URLs of @p rest (split in place, borrowed)
 * to @p urls, which holds @p *n of at most @p max. -EINVAL for an empty
 * URL or list, -E2BIG past @p max (the URLs are not checked here).
 */
int shadow_lane_urls(char *rest, const char **urls, size_t *n, size_t max);

/** "N" or "N/s" with N > 0 into @p rate. -EINVAL otherwise. */
int shadow_rate_parse(const char *s, double *rate);

#endif
