/* SPDX-License-Identifier: MIT */
/*
 * replay_h2 - the HTTP/2 (h2c) side of the sender: recorded HTTP/2
 * sessions (store_session.proto == STORE_PROTO_H2C) replayed over
 * nghttp2's client session, for replay_engine (internal to replay/).
 *
 * One HTTP/2 connection per recorded connection (flow key) and target;
 * its requests are multiplexed as streams in the recorded order (due
 * time, then recorded start, then stream id), each sent when due, so
 * paced replay keeps the recorded concurrency; at top speed every due
 * stream goes at once, as many concurrently as the target's
 * SETTINGS_MAX_CONCURRENT_STREAMS allows (one until the target's first
 * SETTINGS frame came; the rest waits in our queue; when the target
 * allows none at all, SETTINGS_MAX_CONCURRENT_STREAMS 0, the queued
 * requests' timeout runs from their due time). A stream the target
 * refuses unprocessed (REFUSED_STREAM, or above a GOAWAY's last stream
 * id: RFC 9113 §8.7) is queued again, up to 5 times (counted
 * h2_refused_retried); a connection that received GOAWAY takes no new
 * stream and is replaced once its streams ended.
 * Request field lines go as recorded (pseudo-header fields first,
 * connection-specific fields dropped, RFC 9113 §8.2.2), rewritten like
 * HTTP/1 requests (host -> :authority, set/remove headers, path prefix,
 * shadow marker); a request upgraded from HTTP/1.1 gets its pseudo-header
 * fields from its request line and Host. A recorded grpc-timeout is
 * re-based to the replay's clock: what the request lost to lateness
 * (send time - due time) is taken off it, so the target sees the deadline
 * the recorded client had. Responses keep their header fields (":status"
 * included), DATA (capped) and trailer fields; a stream reset (other
 * than a refusal sent again) is an error ("reset") with the HTTP/2 error
 * code named.
 *
 * Runs inside replay_engine's loop: its own epoll fd (replay_h2_fd()) sits
 * in the engine's epoll set; replay_h2_run() sends what is due, handles
 * ready sockets without blocking and expires timeouts. Causal order is
 * not applied to HTTP/2 streams (their finish is still reported, so
 * HTTP/1.x requests that depend on them go). https targets are not
 * supported for HTTP/2 sessions (each such request fails as "tls").
 * Thread-safety: one per engine thread.
 */
#ifndef DYETAP_REPLAY_REPLAY_H2_H
#define DYETAP_REPLAY_REPLAY_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "replay/replay.h"
#include "store/store.h"

/** One finished request (response or error), borrowed for the call. */
struct replay_h2_out {
	void *user;
	uint64_t session_id;
	uint32_t target;
	int64_t due, t_sent, now;	  /**< CLOCK_MONOTONIC; t_sent 0 when never sent */
	uint32_t kind;			  /**< enum store_error_kind */
	const char *msg;		  /**< NULL when none */
	const struct store_message *resp; /**< NULL on error */
	struct replay_causal_ent *dep;	  /**< the causal entry to report done, or NULL */
	bool cancelled; /**< ended by us as recorded (kind none, @p resp what came) */
};

typedef void (*replay_h2_done_fn)(void *ctx, const struct replay_h2_out *o);

struct replay_h2_target {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;	     /**< https: not supported for HTTP/2 */
	char authority[272]; /**< "host:port" for :authority when nothing else gives one */
};

struct replay_h2_params {
	const struct replay_h2_target *targets; /**< copied */
	size_t n_targets;
	int64_t timeout_ns;
	int64_t idle_ns;
	size_t max_body;
	size_t max_header_bytes;
	const struct replay_rewrite *rewrite; /**< borrowed for the life of the sender */
	replay_h2_done_fn done;
	void *ctx;
	struct replay_stats *stats; /**< borrowed: connects, bytes, not_sent are counted there */
};

struct replay_h2;

/** Create (NULL with a message in @p err). */
struct replay_h2 *replay_h2_create(const struct replay_h2_params *p, char *err, size_t errlen);

/** The epoll fd to watch for readiness (level-triggered). */
int replay_h2_fd(const struct replay_h2 *h);

/**
 * Queue session @p s (copied) for every target, due at CLOCK_MONOTONIC
 * @p due_ns, on the connection of @p flow_key. @p dep (copied, may be
 * NULL): its entry is reported done per target at completion.
 * @return 0, -ENOMEM.
 */
int replay_h2_submit(struct replay_h2 *h, const struct store_session *s, uint64_t flow_key,
		     int64_t due_ns, void *user, const struct replay_dep *dep);

/** Send due requests, handle ready sockets (never blocks), expire timeouts. */
void replay_h2_run(struct replay_h2 *h, int64_t now);

/** The next time replay_h2_run() has timed work (INT64_MAX when none). */
int64_t replay_h2_next_wake(const struct replay_h2 *h);

/** The earliest queued request's due time (INT64_MAX when none). */
int64_t replay_h2_next_due(const struct replay_h2 *h);

/** Requests queued or in flight. */
uint64_t replay_h2_pending(const struct replay_h2 *h);

/** Drop queued requests (counted not_sent, their causal entries reported done). */
void replay_h2_drop_queued(struct replay_h2 *h);

/**
 * The request of flow @p flow_key that started at @p rec_ts (its session's
 * ts_req_first_ns), on every target, turned out reset in production (live
 * mirroring submits a request before its session is whole): in flight, its
 * stream is cancelled now with RST_STREAM(CANCEL); still queued, it is
 * cancelled as a recorded reset is in replay, once @p rec_bytes response
 * body bytes came or a stream of its connection that started after
 * @p rec_end (the production response's last byte, or its reset when it had
 * no response; 0: unknown) is due, or, with @p wait_ns (a production
 * stream reset before any response), that long after it is sent. Its
 * result is "cancelled as recorded" (not an error; h2_cancelled_as_recorded).
 */
void replay_h2_cancel(struct replay_h2 *h, uint64_t flow_key, int64_t rec_ts, int64_t rec_end,
		      uint64_t rec_bytes, int64_t wait_ns);

/** Drop queued, fail in-flight ones ("interrupted" when @p report), close all. */
void replay_h2_close_all(struct replay_h2 *h, bool report);

/** Close connections with nothing queued or in flight. */
void replay_h2_close_idle(struct replay_h2 *h);

/** Free; in-flight requests are dropped without callback. Accepts NULL. */
void replay_h2_free(struct replay_h2 *h);

/**
 * replay_request_unsafe() for an HTTP/2 request: the same rules (method a
 * token, no space or control byte in the target, field names tokens, no
 * CR, LF or NUL in values: RFC 9113 §8.2.1 forbids them too) except that
 * a field name may start with ':' (pseudo-header fields). A static
 * string, or NULL when the request can be sent.
 */
const char *replay_h2_request_unsafe(const struct store_message *req);

/**
 * Rebase a grpc-timeout value (gRPC PROTOCOL-HTTP2.md: 1-8 digits and a
 * unit H M S m u n) by @p late_ns of lateness: the recorded timeout less
 * the lateness (at least 1 unit), written to @p out in the unit that
 * keeps 8 digits; the time left in ns to @p ns_out (may be NULL; 0 when the
 * lateness took it all, though "1n" is written).
 * @return 0, or -EINVAL when @p v is no grpc-timeout.
 */
int replay_h2_grpc_timeout(const uint8_t *v, size_t n, int64_t late_ns, char *out, size_t cap,
			   int64_t *ns_out);

#endif
