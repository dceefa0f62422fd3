/* SPDX-License-Identifier: MIT */
/*
 * ctl - the operations interface of the long-running programs (`dyetap
 * mirror`, `dyetap-fastpath`; docs/operations.md): a control socket that
 * answers a line protocol, an HTTP listener that serves `GET /metrics` in
 * the Prometheus text exposition format (version 0.0.4), the builder of
 * that text, and the client side of the protocol (`dyetap ctl`).
 *
 * The control socket is a Unix stream socket created owner-only (0600).
 * A client writes one command per line (words separated by blanks, at
 * most CTL_LINE_MAX bytes); each command gets one reply: a first line
 * `ok` or `error: MESSAGE`, any payload lines, then an empty line. So it
 * can be driven with socat: `echo lanes | socat - UNIX-CONNECT:SOCK`.
 *
 * The server never blocks: ctl_server_poll() accepts, reads and writes
 * what is ready and calls the caller's handlers on the calling thread, so
 * a program calls it from the one thread that may touch its state (the
 * mirror loop, the fast path's control thread). Connections are bounded
 * (CTL_MAX_CLIENTS; one over is accepted and closed, counted `refused`),
 * so are their buffers (a longer line or HTTP header is answered with an
 * error and the connection closed, counted `bad_requests`), and a
 * connection idle for CTL_IDLE_MS is closed (`timeouts`).
 *
 * References: Prometheus "Exposition formats" (text format 0.0.4),
 * RFC 9112 §3 (request line), unix(7).
 */
#ifndef DYETAP_COMMON_CTL_H
#define DYETAP_COMMON_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "common/dbuf.h"

#define CTL_LINE_MAX	4096  /**< longest command line, and longest HTTP request head */
#define CTL_MAX_CLIENTS 16    /**< connections open at once, both listeners together */
#define CTL_IDLE_MS	10000 /**< a connection idle this long is closed */
#define CTL_MAX_ARGS	8     /**< words of a command line */

/** Counters of a server (ctl_ctr_descs names them). */
struct ctl_stats {
	uint64_t commands;     /**< command lines answered */
	uint64_t errors;       /**< ... answered `error:` */
	uint64_t scrapes;      /**< GET /metrics answered 200 */
	uint64_t bad_requests; /**< over-long lines, bad HTTP requests */
	uint64_t refused;      /**< connections over CTL_MAX_CLIENTS */
	uint64_t timeouts;     /**< connections closed idle */
};
extern const struct ctr_desc ctl_ctr_descs[];
extern const size_t ctl_ctr_count;

/**
 * Answer one command: @p argv[0..argc) are its words (borrowed for the
 * call). Append the payload to @p out (lines, each ending "\n"). @return 0
 * for `ok`, or -errno with a message (lower case) in @p err for `error:`.
 */
typedef int (*ctl_command_fn)(void *ctx, int argc, char **argv, struct dbuf *out, char *err,
			      size_t errlen);

/** Append the metrics page to @p out. @return 0 or -errno (answered 500). */
typedef int (*ctl_metrics_fn)(void *ctx, struct dbuf *out);

struct ctl_server_params {
	const char *control_path; /**< Unix socket to create (0600); NULL = none */
	const char *metrics_addr; /**< HOST:PORT to listen on for /metrics; NULL = none */
	ctl_command_fn on_command;
	ctl_metrics_fn on_metrics;
	void *ctx;
};

struct ctl_server;

/**
 * Create the listeners. A stale socket file (nobody listening) is
 * replaced; a live one is refused. @return the server, or NULL with a
 * message naming the path or address in @p err.
 */
struct ctl_server *ctl_server_create(const struct ctl_server_params *p, char *err, size_t errlen);

/** Close the listeners and connections, remove the socket file. Accepts NULL. */
void ctl_server_free(struct ctl_server *s);

/**
 * Serve whatever is ready, waiting up to @p timeout_ms (0: do not wait)
 * for something. Handlers run on the calling thread. @return the number
 * of commands and scrapes answered, or -errno from poll(2).
 */
int ctl_server_poll(struct ctl_server *s, int timeout_ms);

/** The server's counters (the caller's thread). */
const struct ctl_stats *ctl_server_stats(const struct ctl_server *s);

/**
 * Split @p line (modified in place) into at most CTL_MAX_ARGS words at
 * blanks. @return the number of words, or -E2BIG for more.
 */
int ctl_split(char *line, char **argv);

/**
 * Parse an HTTP/1.x request head @p p[0..n) (up to and including the
 * empty line): the method and target are returned as slices into @p p.
 * @return 0, or -EBADMSG when it is not a request line of RFC 9112 §3.
 */
int ctl_http_request(const char *p, size_t n, const char **method, size_t *mlen,
		     const char **target, size_t *tlen);

/**
 * Client: connect to the control socket @p path, send @p line, read the
 * reply into @p out (the payload, without the status line and the final
 * empty line). @return 0 for `ok`; -EBADMSG for `error:` (its message in
 * @p err); other -errno with a message in @p err when the socket cannot
 * be reached or the reply is not one (@p timeout_ms for the whole call).
 */
int ctl_request(const char *path, const char *line, int timeout_ms, struct dbuf *out, char *err,
		size_t errlen);

/**
 * Tell the service manager @p state ("READY=1", "STOPPING=1") over
 * $NOTIFY_SOCKET (sd_notify(3)'s protocol: one datagram to a Unix socket,
 * '@' for the abstract namespace). Nothing when the variable is unset.
 * @return 1 sent, 0 not under a service manager, -errno.
 */
int ctl_notify(const char *state);

/* ------------------------------------------------------------------ */
/* Prometheus text format                                              */
/* ------------------------------------------------------------------ */

enum ctl_prom_type { CTL_PROM_COUNTER, CTL_PROM_GAUGE };

struct ctl_prom;

/** An empty page; NULL when out of memory. */
struct ctl_prom *ctl_prom_create(void);
void ctl_prom_free(struct ctl_prom *p);

/**
 * Add sample @p value of family @p family (a name matching
 * [a-zA-Z_:][a-zA-Z0-9_:]*, counters ending in "_total"; copied) with up
 * to two labels (@p l1 = @p v1, @p l2 = @p v2; NULL for none; values
 * escaped and copied). @p help is borrowed until ctl_prom_render().
 * @return 0, -EINVAL for a bad name, -ENOMEM.
 */
int ctl_prom_add(struct ctl_prom *p, enum ctl_prom_type type, const char *family, const char *help,
		 const char *l1, const char *v1, const char *l2, const char *v2, double value);

/**
 * Add every counter of @p set as `dyetap_NAME_total` (NAME made a valid
 * metric name). A name `PREFIX L_REST` where L is one of @p lanes (@p
 * lane_prefix "lane_") becomes `dyetap_lane_REST_total{lane="L"}`, and
 * REST `dropped_REASON` becomes `dyetap_lane_dropped_total{lane="L",
 * reason="REASON"}`. Names ending in "_us" (percentiles, maxima) are
 * gauges without "_total". @return 0 or the first error.
 */
int ctl_prom_add_set(struct ctl_prom *p, const struct ctr_set *set, const char *lane_prefix,
		     const char *const *lanes, size_t n_lanes);

/** Append the page to @p out, each family's HELP and TYPE once, then its samples. */
int ctl_prom_render(struct ctl_prom *p, struct dbuf *out);

#endif
