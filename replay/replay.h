/* SPDX-License-Identifier: MIT */
/*
 * replay - paced, connection-faithful replay of recorded HTTP/1.x sessions
 * against one or more targets (docs/replay.md), and the sender that live
 * shadowing reuses.
 *
 * Three layers, usable on their own:
 *  - pure helpers: target URLs, request serialization with rewrite rules,
 *    the pacing schedule, filters and sharding, latency histograms;
 *  - the engine: one epoll loop (one per thread) that accepts requests as
 *    they come (a store_session plus a send time and a flow key), keeps
 *    each flow's requests in order on one target connection, enforces
 *    timeouts, parses responses with capture's http1 parser and reports
 *    every outcome through a completion callback;
 *  - the batch driver: reads recordings, filters, shards, schedules,
 *    drives one engine per thread and writes a self-contained results
 *    store (session record, then its result records).
 *
 * References: RFC 9112 (HTTP/1.1 message syntax and connection
 * management), RFC 9110 §9.2.1 (safe methods), RFC 3986 (URIs),
 * docs/replay.md (the command's manual).
 *
 * Errors: int functions return 0 or -errno; constructors
 * return NULL and fill a caller buffer. Thread-safety: an engine is used by
 * one thread; the pure helpers are reentrant; a results writer queue
 * (replay_wq) is shared by threads that each use their own producer
 * (replay_wq_prod); replay_batch_stop() is async-signal-safe.
 */
#ifndef DYETAP_REPLAY_REPLAY_H
#define DYETAP_REPLAY_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "common/dbuf.h"
#include "store/store.h"

/* ------------------------------------------------------------------ */
/* Targets                                                             */
/* ------------------------------------------------------------------ */

/** A parsed target URL: scheme://host[:port][/ignored]. */
struct replay_url {
	bool tls;	/**< https */
	char host[256]; /**< host name or address literal, without brackets */
	uint16_t port;	/**< explicit or the scheme default (80, 443) */
};

/**
 * Parse "http://host[:port]" or "https://host[:port]" ("[v6]:port" for
 * IPv6 literals; a trailing path is accepted and ignored).
 * @return 0, or -EINVAL with a message in @p err.
 */
int replay_url_parse(const char *url, struct replay_url *out, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Rewrite and request serialization                                   */
/* ------------------------------------------------------------------ */

/** A header to set: replaces the first header of that name in place. */
struct replay_hdr_set {
	const char *name;  /**< borrowed */
	const char *value; /**< borrowed */
};

/**
 * Parse "NAME:VALUE" (the --set-header / --shadow-header argument) in place:
 * the colon is replaced by a NUL, blanks after it skipped; @p h then
 * borrows from @p arg. @return 0, or -EINVAL when there is no name.
 */
int replay_hdr_set_parse(char *arg, struct replay_hdr_set *h);

/** Rewrite rules applied while serializing. All pointers borrowed. */
struct replay_rewrite {
	const char *host;		  /**< new Host value; NULL keeps the recorded one */
	const struct replay_hdr_set *set; /**< n_set headers to set (added when absent) */
	size_t n_set;
	const char *const *del; /**< n_del header names to remove (case-insensitive) */
	size_t n_del;
	const char *path_prefix;  /**< prepended to origin-form targets; NULL none */
	const char *shadow_name;  /**< marker header; NULL sends none */
	const char *shadow_value; /**< its value */
};

/**
 * Check rewrite rules @p rw before use: header names are tokens and values
 * carry no CR, LF or NUL (RFC 9110 §5.1, §5.5); the framing headers
 * (Content-Length, Transfer-Encoding) are not set (replay writes them
 * from the recorded body); no header is set twice: two --set-header of one
 * name, --set-header of the shadow marker's name, or Host by both --host
 * and a set rule or the marker.
 * @return 0, or -EINVAL with a message naming the option in @p err.
 */
int replay_rewrite_check(const struct replay_rewrite *rw, char *err, size_t errlen);

/**
 * Why recorded request @p req cannot be sent as it was recorded, or NULL
 * when it can: its method is not a token (RFC 9110 §5.6.2), its target
 * holds a space or a control byte, a header name is not a token (blanks
 * before the colon are accepted only on Content-Length and
 * Transfer-Encoding, which replay rewrites), or a header value holds CR,
 * LF or NUL. Any of these would change how the bytes on the wire are
 * framed (a CR LF in a target makes a second request). Returns a static
 * string.
 */
const char *replay_request_unsafe(const struct store_message *req);

/**
 * Append the wire bytes of recorded request @p req, rewritten by @p rw
 * (may be NULL), to @p out: the request line and headers in recorded order
 * and case; set headers replaced in place (later duplicates dropped) or
 * appended; the shadow marker last; Transfer-Encoding and Content-Length
 * (also recorded with blanks before the colon) replaced by one
 * Content-Length at the position of the first of them (kept when the
 * recorded request had one or a body, since the recorded body is stored
 * de-chunked); then the body.
 * @return 0, -EINVAL (no request line), -EBADMSG (replay_request_unsafe()),
 *         or the dbuf error.
 */
int replay_request_build(struct dbuf *out, const struct store_message *req,
			 const struct replay_rewrite *rw);

/* ------------------------------------------------------------------ */
/* Pacing                                                              */
/* ------------------------------------------------------------------ */

enum replay_pace {
	REPLAY_PACE_RECORDED = 0, /**< recorded timestamps divided by a speed factor */
	REPLAY_PACE_RATE = 1,	  /**< a fixed number of requests per second */
	REPLAY_PACE_MAX = 2,	  /**< as fast as connections allow */
};

/** The schedule: pure arithmetic, no state beyond the parameters. */
struct replay_sched {
	enum replay_pace mode;
	double speed;	   /**< RECORDED: 2.0 plays twice as fast */
	double rate;	   /**< RATE: requests per second */
	int64_t rec_t0_ns; /**< recorded timestamp that maps to offset 0 */
};

/**
 * Offset in ns after the replay start at which a request is due.
 * RECORDED: (rec_ts_ns - rec_t0_ns) / speed, 0 when earlier than t0;
 * RATE: seq / rate (seq = 0-based number of the request in the run);
 * MAX: 0. Computed from the start every time, so errors never accumulate.
 */
int64_t replay_sched_offset(const struct replay_sched *s, int64_t rec_ts_ns, uint64_t seq);

/** Parse a speed "2x", "0.5x", "1" (> 0, <= 1e6). @return 0 or -EINVAL. */
int replay_parse_speed(const char *s, double *out);

/**
 * Parse a duration "1.5", "250ms", "2s", "3m", "1h" into ns (plain numbers
 * are seconds). @return 0 or -EINVAL.
 */
int replay_parse_duration(const char *s, int64_t *out_ns);

/* ------------------------------------------------------------------ */
/* Filters and sharding                                                */
/* ------------------------------------------------------------------ */

/** Which sessions to replay. Strings borrowed; NULL means "any". */
/** What a replay without allow_writes does with the reads that come after
 * writes it does not send (replay_taint.c, docs/replay.md "Writes"). */
enum replay_after_writes {
	REPLAY_AFTER_WRITES_PATH =
	    0,			     /**< not sent: reads of a written path, under it, its parent */
	REPLAY_AFTER_WRITES_SERVICE, /**< not sent: every read of the written service */
	REPLAY_AFTER_WRITES_SEND,    /**< sent and compared (the target has production's data) */
};

struct replay_taint;

/** A tracker of writes not sent, in @p mode; NULL when out of memory. */
struct replay_taint *replay_taint_new(enum replay_after_writes mode);
void replay_taint_free(struct replay_taint *x);
/** Session @p s, when it is a write, is not sent: note what it taints.
 *  Sessions come in recorded order of their ends (a recording's order).
 *  @return 0 or -ENOMEM. */
int replay_taint_write(struct replay_taint *x, const struct store_session *s);
/** Does a write not sent before read @p s (by the recorded times) touch
 *  what it reads? false for a NULL tracker. */
bool replay_taint_read(const struct replay_taint *x, const struct store_session *s);
/** A read: GET, HEAD or OPTIONS (what a replay without allow_writes sends). */
bool replay_is_read(const struct store_message *q);

struct replay_filter {
	const char *lanes;     /**< comma list; "baseline" matches the uncolored lane */
	const char *methods;   /**< comma list, case-insensitive */
	const char *path_glob; /**< fnmatch() on the path without the query */
	int64_t since_ns;      /**< request ts >= since (0: no bound) */
	int64_t until_ns;      /**< request ts < until (0: no bound) */
	bool allow_writes;     /**< else only GET, HEAD, OPTIONS are sent */
	/** without allow_writes: the reads after writes not sent (batch replay) */
	enum replay_after_writes after_writes;
	uint32_t shard_k; /**< this shard, 0 <= k < n */
	uint32_t shard_n; /**< number of shards; 0 or 1: no sharding */
};

enum replay_verdict {
	REPLAY_TAKE = 0,
	REPLAY_SKIP_FILTER,	 /**< excluded by lane/method/path/time */
	REPLAY_SKIP_SHARD,	 /**< belongs to another shard */
	REPLAY_SKIP_WRITE,	 /**< a method other than GET/HEAD/OPTIONS without allow_writes */
	REPLAY_SKIP_TRUNCATED,	 /**< the recorded request body is cut (cap, loss) */
	REPLAY_SKIP_UNSUPPORTED, /**< no request, HTTP/0.9, CONNECT/Upgrade tunnel */
	REPLAY_SKIP_UNSAFE, /**< would be framed otherwise on the wire (replay_request_unsafe()) */
	REPLAY_SKIP_AFTER_WRITE /**< a read after a write not sent (replay_taint_read()) */
};

/** Deterministic 64-bit hash of a recorded connection (stable across runs and machines). */
uint64_t replay_conn_hash(uint64_t conn_id, uint32_t file_idx);

/** Decide whether session @p s of input file @p file_idx is replayed. */
enum replay_verdict replay_filter_check(const struct replay_filter *f,
					const struct store_session *s, uint32_t file_idx);

/** Parse "K/N" with 0 <= K < N. @return 0 or -EINVAL. */
int replay_parse_shard(const char *s, uint32_t *k, uint32_t *n);

/* ------------------------------------------------------------------ */
/* Histograms (latency, lateness)                                      */
/* ------------------------------------------------------------------ */

/** Log-linear buckets over microseconds: exact below 128 us, then <= 1/64 relative width. */
#define REPLAY_HIST_SUB	    64
#define REPLAY_HIST_BUCKETS (2 * REPLAY_HIST_SUB + 40 * REPLAY_HIST_SUB)

struct replay_hist {
	uint64_t n;
	uint64_t max_ns;
	uint64_t sum_ns;
	uint64_t counts[REPLAY_HIST_BUCKETS];
};

/** Record one value (ns; negative values count as 0). */
void replay_hist_add(struct replay_hist *h, int64_t v_ns);

/**
 * Nearest-rank percentile @p p (0 < p <= 100) in ns: the midpoint of the
 * bucket holding the rank (1 us wide below 128 us), never above the maximum.
 * 0 when empty.
 */
uint64_t replay_hist_pct(const struct replay_hist *h, double p);

/** Add @p src into @p dst. */
void replay_hist_merge(struct replay_hist *dst, const struct replay_hist *src);

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

/** Counters of an engine or a whole run (see replay_ctr_descs). */
struct replay_stats {
	uint64_t sent;		   /**< requests attempted (ok + errors) */
	uint64_t ok;		   /**< whole responses received */
	uint64_t err_refused;	   /**< connection refused */
	uint64_t err_reset;	   /**< reset or closed before a whole response */
	uint64_t err_timeout;	   /**< no whole response within the timeout */
	uint64_t err_bad_response; /**< response did not parse */
	uint64_t err_connect;	   /**< other connect failures */
	uint64_t err_tls;	   /**< TLS handshake or verification failures */
	uint64_t err_other;	   /**< interrupted, out of memory, ... */
	uint64_t skipped_filter;
	uint64_t skipped_shard;
	uint64_t skipped_writes;
	uint64_t skipped_truncated;
	uint64_t skipped_unsupported;
	uint64_t skipped_unsafe;       /**< requests that cannot be sent as recorded */
	uint64_t skipped_after_writes; /**< reads after writes not sent (replay_taint_read()) */
	uint64_t connects;	       /**< target connections opened */
	uint64_t reconnects;	       /**< ... for a flow that had one before */
	uint64_t retries;	       /**< requests resent once after a keep-alive close race */
	uint64_t h2_refused_retried;   /**< HTTP/2 streams refused unprocessed, sent again */
	uint64_t h2_cancelled_as_recorded; /**< HTTP/2 streams recorded reset mid-response,
					    *   cancelled here likewise (not errors) */
	uint64_t h2_grpc_deadline;	   /**< gRPC calls ended at their grpc-timeout with no
					    *   whole answer (timeout errors, DEADLINE_EXCEEDED) */
	uint64_t evictions;	   /**< idle connections closed to free a concurrency slot */
	uint64_t resp_truncated;   /**< response bodies over the body cap (kept to the cap) */
	uint64_t resp_interim;	   /**< 1xx responses skipped */
	uint64_t bytes_sent;	   /**< request bytes written */
	uint64_t bytes_received;   /**< response bytes read */
	uint64_t not_sent;	   /**< queued requests dropped by a stop */
	uint64_t write_errors;	   /**< results the store writer refused */
	uint64_t write_stalls;	   /**< times an event loop waited for the results writer */
	uint64_t write_dropped;	   /**< results dropped because the writer queue was full */
	uint64_t causal_waits;	   /**< requests that waited for a dependency (causal order) */
	uint64_t causal_abandoned; /**< causal order given up (the recording's order could not
				      be restored); 0 or 1 */
	uint64_t redact_errors;	   /**< records not written: redaction ran out of memory */
};

extern const struct ctr_desc replay_ctr_descs[];
extern const size_t replay_n_ctr_descs;

/** Errors of all kinds in @p s. */
uint64_t replay_stats_errors(const struct replay_stats *s);

/** Skips of all kinds in @p s. */
uint64_t replay_stats_skipped(const struct replay_stats *s);

/* ------------------------------------------------------------------ */
/* Engine (the sender)                                                 */
/* ------------------------------------------------------------------ */

/**
 * Completion callback: one call per submitted request and target.
 * @param user  the pointer given to replay_engine_submit()
 * @param r     the outcome; borrowed, valid during the call only
 *              (r->resp points into the parser).
 * The callback may call replay_engine_submit(); it must not call
 * replay_engine_abort(), replay_engine_drop_queued() or replay_engine_free().
 */
typedef void (*replay_done_fn)(void *ctx, void *user, const struct store_result *r);

/** One target: where and under which role name results are filed. */
struct replay_target {
	const char *url;  /**< borrowed during create, copied */
	const char *role; /**< "candidate", "secondary", a lane; copied */
};

struct replay_engine_params {
	const struct replay_target *targets; /**< n_targets >= 1; every request goes to each */
	size_t n_targets;
	uint32_t concurrency;	 /**< max open connections per target; 0 = 256 */
	bool pooled;		 /**< spread over a pool of `concurrency` connections */
	int64_t timeout_ns;	 /**< per request, from connect start; 0 = 10 s */
	int64_t idle_ns;	 /**< idle keep-alive connections closed after; 0 = 30 s */
	size_t max_body;	 /**< response body cap; 0 = 1 MiB */
	size_t max_header_bytes; /**< response header cap; 0 = 64 KiB */
	const struct replay_rewrite *rewrite; /**< copied by reference: must outlive the engine */
	bool insecure;			      /**< https: do not verify the certificate */
	const char *ca_file;		      /**< https: CA bundle instead of the system's */
	const char *sni;		      /**< https: server name (default: the URL's host) */
	/** Every request submitted passed replay_filter_check() (whose
	 *  checks include the safety one): HTTP/2 requests are not checked
	 *  again on submit. */
	bool checked;
	replay_done_fn on_done; /**< required */
	void *ctx;
	/** Causal order (replay_causal.h): this engine's thread's tracker,
	 *  borrowed, must outlive the engine; NULL: requests wait for nothing
	 *  but their due time and their flow. */
	struct replay_causal_thr *causal;
};

struct replay_engine;
struct replay_dep;
struct replay_guard;
struct addrinfo;

/**
 * Of the addresses @p ai of a target (a list from getaddrinfo(3)), the
 * first that accepts a TCP connection within a second (the probe is
 * closed at once), so that a name with several addresses (localhost as
 * ::1 and 127.0.0.1) reaches a server that listens on one of them only.
 * replay_engine_create() uses it when a target has more than one address.
 * @return that entry, or NULL when none accepts.
 */
const struct addrinfo *replay_pick_addr(const struct addrinfo *ai);

/**
 * Create an engine: resolves targets, sets up TLS contexts, epoll.
 * @return the engine, or NULL with a message in @p err.
 */
struct replay_engine *replay_engine_create(const struct replay_engine_params *p, char *err,
					   size_t errlen);

/**
 * Queue the request of @p s (serialized now; @p s may be freed after the
 * call) for every target, due at CLOCK_MONOTONIC @p due_ns. Requests with
 * the same @p flow_key go in submission order over one target connection
 * (unless pooled), each after the previous response.
 * @param user  handed back in the callback (once per target).
 * @return 0, -EINVAL (no request), -ENOMEM.
 */
int replay_engine_submit(struct replay_engine *e, const struct store_session *s, uint64_t flow_key,
			 int64_t due_ns, void *user);

/**
 * replay_engine_submit() with causal dependencies: the request goes to a
 * target only once replay_causal_ready() says so for that target (waiting
 * for it is measured as the result's causal_wait_ns), and its finish on
 * each target (response or error, also when dropped unsent) is reported
 * with replay_causal_done(). @p dep is copied; NULL or an engine without
 * a tracker: as replay_engine_submit().
 */
int replay_engine_submit_dep(struct replay_engine *e, const struct store_session *s,
			     uint64_t flow_key, int64_t due_ns, void *user,
			     const struct replay_dep *dep);

/**
 * Run the event loop until CLOCK_MONOTONIC @p until_ns, returning early
 * after an iteration that completed at least one request. Sends due
 * requests, handles I/O, expires timeouts.
 * @return 0, or -errno on an epoll failure.
 */
int replay_engine_run(struct replay_engine *e, int64_t until_ns);

/** Requests queued or in flight (summed over targets). */
uint64_t replay_engine_pending(const struct replay_engine *e);

/**
 * Is @p s an HTTP/2 stream reset other than by the server (a client that
 * cancelled it, a watch)? Replay and mirror end such a stream the same way
 * (docs/http2.md "Replay"); a server's reset is the target's to repeat.
 */
static inline bool replay_client_reset(const struct store_session *s)
{
	return s->proto == STORE_PROTO_H2C && (s->flags & STORE_F_RESET) &&
	       !(s->flags & STORE_F_SERVER_RESET);
}

/**
 * For a session the client reset before any response came, with the time
 * of the reset recorded (ts_reset_ns): how long the client waited after its
 * request, at least 1 ns; a replay cancels the stream that long after it
 * sent it. 0 for any other session.
 */
static inline int64_t replay_reset_wait(const struct store_session *s)
{
	if (!replay_client_reset(s) || s->resp.present || s->ts_reset_ns <= 0)
		return 0;
	int64_t from = s->ts_req_last_ns > 0 ? s->ts_req_last_ns : s->ts_req_first_ns;
	return s->ts_reset_ns > from ? s->ts_reset_ns - from : 1;
}

/**
 * Session @p s of flow @p flow_key, whose request was submitted before it
 * was known whole (live mirroring), ended with a reset (an HTTP/2 stream
 * the client cancelled, a watch): its request still in flight is cancelled
 * the same way (replay_h2_cancel()). Nothing for other sessions.
 */
void replay_engine_cancel_as_recorded(struct replay_engine *e, const struct store_session *s,
				      uint64_t flow_key);

/** CLOCK_MONOTONIC time of the earliest queued request, INT64_MAX when none. */
int64_t replay_engine_next_due(const struct replay_engine *e);

/** Drop queued requests (counted not_sent, no callback); in-flight ones continue. */
void replay_engine_drop_queued(struct replay_engine *e);

/**
 * Stop: drop queued requests (counted not_sent, no callback), fail the
 * ones in flight with STORE_ERR_OTHER "interrupted", close connections.
 */
void replay_engine_abort(struct replay_engine *e);

/** Close idle keep-alive connections (e.g. at the end of input). */
void replay_engine_close_idle(struct replay_engine *e);

/** Counters (borrowed, updated by run). */
const struct replay_stats *replay_engine_stats(const struct replay_engine *e);

/** Latency (ok responses), scheduling lateness (all sent: lateness minus
 *  causal wait) and causal wait (requests that waited for a dependency)
 *  histograms; borrowed. */
const struct replay_hist *replay_engine_latency(const struct replay_engine *e);
const struct replay_hist *replay_engine_lateness(const struct replay_engine *e);
const struct replay_hist *replay_engine_causal_wait(const struct replay_engine *e);

/** Free; in-flight requests are dropped without callback. Accepts NULL. */
void replay_engine_free(struct replay_engine *e);

/* ------------------------------------------------------------------ */
/* Results writer queue                                                */
/* ------------------------------------------------------------------ */

/** What a full queue does with a new record. */
enum replay_wq_policy {
	REPLAY_WQ_BLOCK = 0, /**< the producer waits for room (counted in stalls) */
	REPLAY_WQ_DROP = 1,  /**< the record is refused with -ENOBUFS (counted in dropped) */
};

struct replay_wq_params {
	struct store_writer *writer; /**< used only by the queue's thread until finish */
	size_t max_bytes;	     /**< bound on queued record copies; 0 = 32 MiB */
	enum replay_wq_policy policy;
};

struct replay_wq_stats {
	uint64_t queued;       /**< records accepted */
	uint64_t written;      /**< records the store writer took */
	uint64_t write_errors; /**< records not written because the writer failed */
	uint64_t unwritten;    /**< of those, records never given to it (after its failure) */
	uint64_t stalls;       /**< adds that waited for room (BLOCK) */
	uint64_t dropped;      /**< adds refused for lack of room (DROP) */
	size_t max_bytes;      /**< high-water mark of queued bytes */
	size_t queued_bytes;   /**< queued now */
};

struct replay_wq;
struct replay_wq_prod;

/**
 * Start a writer thread that drains a bounded queue of records into
 * @p p->writer. @return the queue, or NULL with a message in @p err.
 */
struct replay_wq *replay_wq_create(const struct replay_wq_params *p, char *err, size_t errlen);

/**
 * A producer: one per thread that adds records (not thread-safe itself;
 * producers of one queue run concurrently without locks). Its records
 * reach the writer in the order added, in chunks: when a chunk fills, at
 * replay_wq_prod_flush() and at replay_wq_prod_free().
 * @return the producer, or NULL (out of memory).
 */
struct replay_wq_prod *replay_wq_prod_create(struct replay_wq *q);

/**
 * Queue a copy of @p s / @p r (the caller's memory may be reused on return).
 * @return 0, -ENOBUFS (DROP policy, full), -ENOMEM, -EPIPE (after finish),
 *         or the writer's first error (sticky, see replay_wq_error()).
 */
int replay_wq_add_session(struct replay_wq_prod *pr, const struct store_session *s);
int replay_wq_add_result(struct replay_wq_prod *pr, const struct store_result *r);
/** A recorded session as its encoded bytes (store_reader_raw()), written with
 *  @p id and @p conn_id (store_writer_add_session_raw()); errors as above. */
int replay_wq_add_session_raw(struct replay_wq_prod *pr, const struct store_raw_record *raw,
			      uint64_t id, uint64_t conn_id, int64_t ts);

/**
 * A unit: a session and its results, queued together so that they reach
 * the file as consecutive records (docs/format.md "result_lag" 0: a
 * session's results follow it before the next session). The unit holds
 * its records packed (store_pack_*(), on the caller's thread) until
 * replay_wq_add_unit(). It is taken from producer @p pr's spares (units
 * written before; @p pr may be NULL: a new one) and used by that
 * producer's thread only.
 */
struct replay_wq_unit;

/** A unit starting with session @p s (packed). NULL: out of memory. */
struct replay_wq_unit *replay_wq_unit_session(struct replay_wq_prod *pr,
					      const struct store_session *s);
/** A unit starting with a recorded session as its encoded bytes (copied),
 *  written with @p id and @p conn_id. NULL: out of memory, or the bytes
 *  are not a msgpack map with integer ids. */
struct replay_wq_unit *replay_wq_unit_session_raw(struct replay_wq_prod *pr,
						  const struct store_raw_record *raw, uint64_t id,
						  uint64_t conn_id, int64_t ts);
/** Append result @p r (packed) to @p u. @return 0, -E2BIG or -ENOMEM. */
int replay_wq_unit_result(struct replay_wq_unit *u, const struct store_result *r);
/** Records held by @p u (its session and results). */
size_t replay_wq_unit_records(const struct replay_wq_unit *u);
/** Bytes @p u takes in the queue. */
size_t replay_wq_unit_bytes(const struct replay_wq_unit *u);
/**
 * Queue unit @p u's records, to be written one after the other, and take
 * @p u (whatever the result: the writer thread hands it back to the
 * producers' spares once written; a refused one goes to @p pr's spares or
 * is freed).
 * @return as replay_wq_add_session(); on an error none of its records is
 * queued.
 */
int replay_wq_add_unit(struct replay_wq_prod *pr, struct replay_wq_unit *u);
/** Free a unit without queueing it. Accepts NULL. */
void replay_wq_unit_free(struct replay_wq_unit *u);

/** Hand the producer's partly filled chunk to the writer now. */
void replay_wq_prod_flush(struct replay_wq_prod *pr);

/** Flush and free a producer (before replay_wq_finish()). Accepts NULL. */
void replay_wq_prod_free(struct replay_wq_prod *pr);

/** First store writer error (0 none); its message is copied to @p msg. */
int replay_wq_error(const struct replay_wq *q, char *msg, size_t msglen);

/** Pause (true) or resume (false) the writer thread; records queue up meanwhile. */
void replay_wq_hold(struct replay_wq *q, bool hold);

/** A consistent snapshot of the counters. */
void replay_wq_get_stats(struct replay_wq *q, struct replay_wq_stats *out);

/**
 * Write everything published and stop the thread (ends a hold); free the
 * producers first. The store writer is the caller's again afterwards.
 * @return 0 or the writer's first error.
 */
int replay_wq_finish(struct replay_wq *q);

/** Finish (if not yet) and free. Accepts NULL. */
void replay_wq_free(struct replay_wq *q);

/** Bytes replay_session_copy() puts after the copied struct (header arrays
 *  and every slice's bytes; a multiple of 8). */
size_t replay_session_tail_size(const struct store_session *s);

/** Deep-copy session @p src into @p dst, whose header arrays and bytes go to
 *  @p tail (replay_session_tail_size() bytes, 8-byte aligned). */
void replay_session_copy(struct store_session *dst, const struct store_session *src, void *tail);

/* ------------------------------------------------------------------ */
/* Batch driver: recordings -> targets -> results store                */
/* ------------------------------------------------------------------ */

/** A snapshot for progress displays. */
struct replay_progress {
	uint64_t sent;
	uint64_t ok;
	uint64_t errors;
	uint64_t skipped;
	double elapsed_s;
	double rate;	  /**< requests completed per second over the last interval */
	double eta_s;	  /**< < 0 when unknown */
	bool scanning;	  /**< still reading the recordings before the first send */
	uint64_t scanned; /**< sessions read so far while scanning */
};

typedef void (*replay_progress_fn)(void *ctx, const struct replay_progress *p);

/**
 * Redaction of what a replay writes (docs/replay.md "Secrets"): every
 * target's response, and the recorded sessions when @p sessions (rules
 * the recordings did not apply themselves). Secrets reach no results file.
 */
struct replay_redact {
	/** A redactor for one event loop (redactors are one per thread); NULL: no memory. */
	void *(*create)(void *ctx);
	void (*destroy)(void *redactor);
	/** Redact @p in into @p out (parts valid until the next call); 0 or -errno. */
	int (*session)(void *redactor, const struct store_session *in, struct store_session *out);
	void *ctx;
	bool sessions;
	const char *const *rules; /**< canonical texts, written to the results metadata */
	size_t n_rules;
};

/** One cause of failed requests: its kind, message and count. */
#define REPLAY_CAUSE_MSG 160
struct replay_cause {
	uint32_t kind; /**< enum store_error_kind */
	char msg[REPLAY_CAUSE_MSG];
	uint64_t n;
};
#define REPLAY_MAX_CAUSES 8

/** Most inputs of one replay (their index takes 6 bits of a remapped id). */
#define REPLAY_MAX_INPUTS 64
/** Most passes (--loop) over the inputs (18 bits of a remapped id): past
 *  this, ids would repeat, so an endless loop stops there (a warning). */
#define REPLAY_MAX_PASSES (1u << 18)

/**
 * The id a recorded session or connection id @p id of input @p file gets in
 * pass @p pass: unchanged for file 0 pass 0, else
 * (file << 58) | (pass << 40) | (id mod 2^40), distinct for distinct
 * (file < REPLAY_MAX_INPUTS, pass < REPLAY_MAX_PASSES, id < 2^40).
 */
uint64_t replay_remap_id(uint64_t id, uint32_t file, uint32_t pass);

/**
 * Called once after the pass over the inputs and before the first request
 * (and before the targets are resolved): e.g. run --before commands that
 * reset the targets' state. Return 0 to go on, else -errno with a message
 * in @p err: the replay then sends nothing and writes no results file.
 */
typedef int (*replay_before_fn)(void *ctx, char *err, size_t errlen);

struct replay_batch_params {
	const char *const *inputs; /**< recordings, n_inputs >= 1 */
	size_t n_inputs;
	const char *output;		    /**< results store path */
	int level;			    /**< its zstd level; 0 = the store's default (1) */
	struct replay_engine_params engine; /**< on_done/ctx are set by the driver */
	struct replay_filter filter;
	enum replay_pace pace;
	double speed;	     /**< RECORDED; 0 = 1.0 */
	double rate;	     /**< RATE */
	uint32_t loops;	     /**< passes over the input; 0 = until duration or stop; default 1 */
	int64_t duration_ns; /**< stop sending after this long; 0 = no limit */
	uint32_t threads;    /**< event loops; 0 = 1 */
	/** Order kept (replay_causal.h enum replay_order): 0 = auto, causal
	 *  when the sessions replayed contain a write, else pace. */
	int order;
	bool causal_one_service; /**< causal order: one service for everything (per target) */
	replay_before_fn before; /**< may be NULL */
	void *before_ctx;
	/** Refuse, before sending anything, when a recorded server matches it
	 *  (replay_guard.h; checked in the same pass that counts the input);
	 *  NULL: no check. */
	const struct replay_guard *guard;
	replay_progress_fn progress; /**< called from the first thread; may be NULL */
	void *progress_ctx;
	int64_t progress_ns;		    /**< interval; 0 = 250 ms */
	const struct replay_redact *redact; /**< NULL: nothing redacted */
};

struct replay_summary {
	struct replay_stats stats;
	struct replay_hist latency;
	struct replay_hist lateness;	/**< scheduling lateness (without causal waits) */
	struct replay_hist causal_wait; /**< waits for dependencies, of the requests that waited */
	int order;			/**< the order kept (enum replay_order, never auto) */
	int pace; /**< enum replay_pace of the run: under MAX, lateness is queue wait */
	uint32_t causal_services; /**< services whose requests were ordered */
	double elapsed_s;	  /**< first send to last completion */
	double achieved_rps;	  /**< sent / elapsed */
	bool interrupted;	  /**< replay_batch_stop() was called */
	bool input_error;	  /**< on failure: an input/usage problem (exit 2), else runtime */
	/** The most frequent causes of failed requests, most first (n 0: unused). */
	struct replay_cause causes[REPLAY_MAX_CAUSES];
	uint64_t causes_other; /**< failed requests of the other causes */
	uint64_t offered;      /**< records (sessions, results) handed to the results file */
	uint64_t lost;	       /**< of those, records not in it (a full disk; docs/format.md) */
	char file_id[40];      /**< the results file's id */
};

/**
 * Replay @p p->inputs into @p p->output. Blocks until done or stopped.
 * @return 0 (the results file is complete), or -errno with a message in
 *         @p err and out->input_error telling input errors from runtime ones.
 */
int replay_batch_run(const struct replay_batch_params *p, struct replay_summary *out, char *err,
		     size_t errlen);

/** Ask a running replay_batch_run() to stop cleanly. Async-signal-safe. */
void replay_batch_stop(void);

#endif
