/* SPDX-License-Identifier: MIT */
/*
 * shadow_core - lanes, loop protection, the production guard, admission,
 * per-lane limits, sending, pairing and counters of live shadowing
 * (replay/shadow_core.h; the behaviour is documented in docs/mirror.md).
 *
 * Who touches what: classify() reads the lanes' configuration and guards
 * (fixed after create) and writes the caller's counter block and, once
 * per lane, a warning slot claimed with an atomic exchange. Everything
 * else (engines, buckets, target-down times, the pairing table, the
 * owner's counter block) belongs to the owner thread. Counter blocks are
 * single-writer: a bump is a relaxed store of the old value plus one, so
 * a reader on another thread sees whole values (never torn, maybe late).
 *
 * References: replay/replay.h (the engine), replay/replay_guard.h (address
 * matching), replay/shadow_pair.h (pairing), RFC 9110 §5.1 (header names
 * compare case-insensitively).
 */
#include "replay/shadow_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/mem.h"
#include "replay/replay_guard.h"

#define SH_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define SH_INC(field)	 SH_ADD(field, 1)
#define SH_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* A target that refused a connection is left alone this long. */
#define SH_DOWN_NS 1000000000LL
/* Delay percentiles are recomputed at most this often. */
#define SH_DELAY_EVERY_NS 100000000LL

enum { WARN_PRODUCTION, WARN_LOOP, WARN_KINDS };

struct sh_warning {
	int claimed;	/* atomic: a thread is writing text */
	int ready;	/* atomic (release): text is complete */
	bool given;	/* the reader handed it out */
	char pre[640];	/* the text up to the counter's name... */
	char post[128]; /* ...and from the lane's name on (the prefix is the reader's) */
};

struct sh_lane {
	const struct shadow_lane_conf *conf; /* in core->conf */
	struct replay_engine *eng;
	struct replay_guard *guard; /* every address of every target */
	struct shadow_bucket bucket;
	int64_t down_until; /* monotonic */
	uint64_t rate_bits; /* atomic: the rate asked for (a double's bits) */
	uint32_t rate_gen;  /* atomic: bumped by shadow_core_lane_set_rate() */
	uint32_t rate_seen; /* owner: the generation applied */
	struct sh_warning warn[WARN_KINDS];
};

struct shadow_core {
	struct shadow_conf conf;
	struct shadow_hooks hooks;
	const char *marker; /* header name that marks dyetap's own copies */
	struct sh_lane lanes[SHADOW_MAX_LANES];
	size_t n_lanes;
	struct shadow_pairs *pairs;
	struct replay_hist delay;
	int64_t delay_next;
	struct shadow_stats st; /* the owner's block */
};

_Static_assert(sizeof(struct shadow_stats) % sizeof(uint64_t) == 0, "only uint64_t counters");

/* ------------------------------------------------------------------ */
/* Counter tables                                                      */
/* ------------------------------------------------------------------ */

#define T(f, n, h)                                                                                 \
	{                                                                                          \
		n, offsetof(struct shadow_stats, f), h                                             \
	}
const struct ctr_desc shadow_ctr_descs[] = {
    T(requests, "requests", "requests whose last byte was captured"),
    T(colored, "colored", "... colored by a rule"),
    T(no_lane, "colored_without_lane", "... for a lane without --lane"),
    T(mirrored, "mirrored", "handed to a lane's sender"),
    T(paired, "paired", "mirrored requests paired with their production session"),
    T(unpaired, "unpaired", "mirrored requests whose production session never came"),
    T(results_redact_errors, "results_redact_errors", "shadow answers left out: redaction failed"),
    T(delay_p50_us, "delay_p50_us", "request captured -> first shadow byte sent, median"),
    T(delay_p99_us, "delay_p99_us", "... 99th percentile"),
    T(delay_max_us, "delay_max_us", "... maximum"),
};
#undef T
const size_t shadow_ctr_count = sizeof(shadow_ctr_descs) / sizeof(shadow_ctr_descs[0]);

#define L(f, n, h)                                                                                 \
	{                                                                                          \
		n, offsetof(struct shadow_lane_stats, f), h                                        \
	}
#define D(k, n, h)                                                                                 \
	{                                                                                          \
		"dropped_" n,                                                                      \
		    offsetof(struct shadow_lane_stats, dropped) + (k) * sizeof(uint64_t), h        \
	}
const struct ctr_desc shadow_lane_ctr_descs[] = {
    L(colored, "colored", "requests colored for the lane"),
    L(mirrored, "mirrored", "handed to the lane's sender"),
    L(sent, "sent", "requests sent, summed over the lane's targets"),
    L(ok, "ok", "whole responses"),
    L(errors, "errors", "errors of every kind"),
    L(err_refused, "error_refused", "connection refused"),
    L(err_reset, "error_reset", "reset or closed before a whole response"),
    L(err_timeout, "error_timeout", "no whole response within --timeout"),
    L(err_tls, "error_tls", "TLS handshake or certificate failures"),
    L(err_other, "error_other", "connect failures, bad responses, interrupted"),
    D(SHADOW_DROP_QUEUE_FULL, "queue_full", "not mirrored: --queue requests per target pending"),
    D(SHADOW_DROP_RATE_LIMITED, "rate_limited", "not mirrored: over --lane-rate"),
    D(SHADOW_DROP_TARGET_DOWN, "target_down", "not mirrored: a target refused in the last second"),
    D(SHADOW_DROP_WRITE_REFUSED, "write_refused", "not mirrored: a write without --allow-writes"),
    D(SHADOW_DROP_INCOMPLETE, "incomplete", "not mirrored: the capture cut the request"),
    D(SHADOW_DROP_UNSUPPORTED, "unsupported", "not mirrored: HTTP/0.9, CONNECT or Upgrade"),
    D(SHADOW_DROP_NO_MEMORY, "no_memory", "not mirrored: out of memory"),
    D(SHADOW_DROP_STOPPED, "stopped", "still queued when the drain time ran out"),
    D(SHADOW_DROP_PRODUCTION, "production", "not mirrored: a lane target is the captured server"),
    D(SHADOW_DROP_LOOP, "loop", "not mirrored: dyetap's own shadow traffic"),
};
#undef L
#undef D
const size_t shadow_lane_ctr_count =
    sizeof(shadow_lane_ctr_descs) / sizeof(shadow_lane_ctr_descs[0]);
_Static_assert(sizeof(shadow_lane_ctr_descs) / sizeof(shadow_lane_ctr_descs[0]) ==
		   10 + SHADOW_DROP_COUNT,
	       "one counter per drop reason");

void shadow_stats_drop(struct shadow_stats *st, unsigned lane, enum shadow_drop why)
{
	if (lane < SHADOW_MAX_LANES && (unsigned)why < SHADOW_DROP_COUNT)
		SH_INC(st->lane[lane].dropped[why]);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

const char shadow_conf_help[] =
    "  --lane LANE=URL[,URL]  targets of a lane (every request goes to each); repeat\n"
    "  --lane-rate LANE=N/s   token bucket per lane (burst N/10, at least 1)\n"
    "  --queue N              requests queued or in flight per lane target (1000)\n"
    "  --timeout DUR          per shadow request (default 10s)\n"
    "  --drain-timeout DUR    at the end, wait this long for shadow answers (5s)\n"
    "  --allow-writes         also send methods other than GET, HEAD, OPTIONS\n"
    "  --i-know-this-is-production\n"
    "                         send to a lane target that is the captured server\n"
    "                         itself (else such requests are dropped and counted)\n"
    "  --insecure             https targets: do not verify certificates\n"
    "  --ca FILE              https targets: CA bundle to verify with\n"
    "  --sni NAME             https targets: server name to send and verify\n"
    "  --host VALUE, --set-header N:V, --del-header NAME, --path-prefix P\n"
    "                         rewrite shadow requests, as dyetap replay\n"
    "  --shadow-header N:V    marker header on every shadow request (default\n"
    "                         x-dyetap-shadow: 1); a captured request carrying it\n"
    "                         is never shadowed again (loop protection)\n"
    "  --no-shadow-header     send no marker; then captured traffic to a lane's\n"
    "                         own targets is never shadowed to that lane\n";

void shadow_conf_init(struct shadow_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->queue = 1000;
	c->drain_ns = 5000000000LL;
	c->rw.shadow_name = SHADOW_MARKER_NAME;
	c->rw.shadow_value = SHADOW_MARKER_VALUE;
}

/* The lane named before '=' in "LANE=..." (created if new); *rest after '='. */
static int lane_of_arg(struct shadow_conf *c, const char *opt, char *arg, char **rest,
		       struct shadow_lane_conf **out, char *err, size_t errlen)
{
	size_t len;
	if (shadow_lane_arg(arg, &len, rest)) {
		snprintf(err, errlen, "--%s '%s': expected LANE=...", opt, arg);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_lanes; i++)
		if (strlen(c->lanes[i].name) == len && !memcmp(c->lanes[i].name, arg, len)) {
			*out = &c->lanes[i];
			return 0;
		}
	if (len >= sizeof(c->lanes[0].name)) {
		snprintf(err, errlen, "--%s: lane name '%.*s' is too long (at most %zu bytes)", opt,
			 (int)len, arg, sizeof(c->lanes[0].name) - 1);
		return -EINVAL;
	}
	if (c->n_lanes == SHADOW_MAX_LANES) {
		snprintf(err, errlen, "--%s: at most %d lanes", opt, SHADOW_MAX_LANES);
		return -EINVAL;
	}
	*out = &c->lanes[c->n_lanes++];
	memcpy((*out)->name, arg, len);
	(*out)->name[len] = 0;
	return 0;
}

static int opt_lane(struct shadow_conf *c, char *arg, char *err, size_t errlen)
{
	const char *urls[SHADOW_MAX_TARGETS];
	struct shadow_lane_conf *l;
	char *rest, e[512];
	size_t len, n = 0;
	int rc;

	if (shadow_lane_arg(arg, &len, &rest)) {
		snprintf(err, errlen, "--lane '%s': expected LANE=URL[,URL...]", arg);
		return -EINVAL;
	}
	/* The URLs first: a refused --lane leaves no lane behind. */
	rc = shadow_lane_urls(rest, urls, &n, SHADOW_MAX_TARGETS);
	if (rc) {
		snprintf(err, errlen, "--lane: lane %.*s: %s", (int)len, arg,
			 rc == -E2BIG ? "too many targets"
				      : "empty target URL (LANE=URL[,URL...])");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		struct replay_url u;
		if (replay_url_parse(urls[i], &u, e, sizeof(e))) {
			snprintf(err, errlen, "--lane: lane %.*s: %s", (int)len, arg, e);
			return -EINVAL;
		}
	}
	if ((rc = lane_of_arg(c, "lane", arg, &rest, &l, err, errlen)))
		return rc;
	if (l->n_urls + n > SHADOW_MAX_TARGETS) {
		snprintf(err, errlen, "--lane: lane %s: at most %d targets", l->name,
			 SHADOW_MAX_TARGETS);
		return -EINVAL;
	}
	memcpy(l->urls + l->n_urls, urls, n * sizeof(urls[0]));
	l->n_urls += n;
	return 0;
}

static int bad(char *err, size_t errlen, const char *opt, const char *arg, const char *want)
{
	snprintf(err, errlen, "bad --%s '%s' (%s)", opt, arg ? arg : "", want);
	return -EINVAL;
}

int shadow_conf_option(struct shadow_conf *c, const char *name, char *arg, char *err, size_t errlen)
{
	if (!strcmp(name, "lane"))
		return opt_lane(c, arg, err, errlen) ? -EINVAL : 1;
	if (!strcmp(name, "lane-rate")) {
		struct shadow_lane_conf *l;
		char *num;
		if (lane_of_arg(c, name, arg, &num, &l, err, errlen))
			return -EINVAL;
		if (shadow_rate_parse(num, &l->rate))
			return bad(err, errlen, name, num, "a rate N or N/s above 0");
		return 1;
	}
	if (!strcmp(name, "queue")) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || *arg == '-' || !v || v > 10000000)
			return bad(err, errlen, name, arg, "1..10000000");
		c->queue = v;
		return 1;
	}
	if (!strcmp(name, "timeout")) {
		if (replay_parse_duration(arg, &c->timeout_ns) || c->timeout_ns <= 0)
			return bad(err, errlen, name, arg, "a duration such as 10s or 500ms");
		return 1;
	}
	if (!strcmp(name, "drain-timeout")) {
		if (replay_parse_duration(arg, &c->drain_ns) || c->drain_ns < 0)
			return bad(err, errlen, name, arg, "a duration such as 5s, or 0");
		return 1;
	}
	if (!strcmp(name, "allow-writes"))
		return c->allow_writes = true, 1;
	if (!strcmp(name, "i-know-this-is-production"))
		return c->production = true, 1;
	if (!strcmp(name, "insecure"))
		return c->insecure = true, 1;
	if (!strcmp(name, "ca"))
		return c->ca_file = arg, 1;
	if (!strcmp(name, "sni"))
		return c->sni = arg, 1;
	if (!strcmp(name, "host"))
		return c->rw.host = arg, 1;
	if (!strcmp(name, "path-prefix"))
		return c->rw.path_prefix = arg, 1;
	if (!strcmp(name, "set-header")) {
		if (c->n_sets == SHADOW_MAX_HDRS)
			return bad(err, errlen, name, arg, "at most 64");
		if (replay_hdr_set_parse(arg, &c->sets[c->n_sets]))
			return bad(err, errlen, name, arg, "NAME:VALUE");
		c->n_sets++;
		return 1;
	}
	if (!strcmp(name, "del-header")) {
		if (c->n_dels == SHADOW_MAX_HDRS)
			return bad(err, errlen, name, arg, "at most 64");
		c->dels[c->n_dels++] = arg;
		return 1;
	}
	if (!strcmp(name, "shadow-header")) {
		if (replay_hdr_set_parse(arg, &c->marker))
			return bad(err, errlen, name, arg, "NAME:VALUE");
		c->rw.shadow_name = c->marker.name;
		c->rw.shadow_value = c->marker.value;
		return 1;
	}
	if (!strcmp(name, "no-shadow-header")) {
		c->rw.shadow_name = NULL;
		c->rw.shadow_value = NULL;
		return 1;
	}
	return 0;
}

int shadow_conf_check(struct shadow_conf *c, char *err, size_t errlen)
{
	if (!c->n_lanes) {
		snprintf(err, errlen, "give at least one --lane LANE=URL");
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_lanes; i++)
		if (!c->lanes[i].n_urls) {
			snprintf(err, errlen, "--lane-rate for lane '%s' without --lane %s=URL",
				 c->lanes[i].name, c->lanes[i].name);
			return -EINVAL;
		}
	c->rw.set = c->sets;
	c->rw.n_set = c->n_sets;
	c->rw.del = c->dels;
	c->rw.n_del = c->n_dels;
	return replay_rewrite_check(&c->rw, err, errlen) ? -EINVAL : 0;
}

/* ------------------------------------------------------------------ */
/* Create                                                              */
/* ------------------------------------------------------------------ */

static void on_done(void *ctx, void *user, const struct store_result *r);

struct shadow_core *shadow_core_create(const struct shadow_conf *conf, const struct shadow_hooks *h,
				       char *err, size_t errlen)
{
	struct shadow_core *c = mem_calloc(1, sizeof(*c));
	char e[512];
	uint64_t targets = 0;
	int64_t now = clk_mono_ns();

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->conf = *conf;
	/* The rewrite rules point into the conf: into this copy from now on. */
	c->conf.rw.set = c->conf.sets;
	c->conf.rw.n_set = c->conf.n_sets;
	c->conf.rw.del = c->conf.dels;
	c->conf.rw.n_del = c->conf.n_dels;
	if (h)
		c->hooks = *h;
	c->marker = c->conf.rw.shadow_name ? c->conf.rw.shadow_name : SHADOW_MARKER_NAME;
	c->n_lanes = c->conf.n_lanes;
	for (size_t i = 0; i < c->n_lanes; i++) {
		struct sh_lane *l = &c->lanes[i];
		const struct shadow_lane_conf *lc = &c->conf.lanes[i];
		struct replay_target t[SHADOW_MAX_TARGETS];
		l->conf = lc;
		targets += lc->n_urls;
		l->guard = replay_guard_create();
		if (!l->guard) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (size_t k = 0; k < lc->n_urls; k++) {
			t[k] = (struct replay_target){.url = lc->urls[k], .role = lc->name};
			if (replay_guard_add_url(l->guard, lc->urls[k], e, sizeof(e)) < 0) {
				snprintf(err, errlen, "lane %s: %s", lc->name, e);
				goto fail;
			}
		}
		struct replay_engine_params ep = {
		    .targets = t,
		    .n_targets = lc->n_urls,
		    .timeout_ns = c->conf.timeout_ns,
		    .rewrite = &c->conf.rw,
		    .insecure = c->conf.insecure,
		    .ca_file = c->conf.ca_file,
		    .sni = c->conf.sni,
		    .on_done = on_done,
		    .ctx = c,
		};
		l->eng = replay_engine_create(&ep, e, sizeof(e));
		if (!l->eng) {
			snprintf(err, errlen, "lane %s: %s", lc->name, e);
			goto fail;
		}
		shadow_bucket_init(&l->bucket, lc->rate, 0, now);
	}
	struct shadow_pairs_params pp = {
	    .max_waiting =
		c->hooks.max_waiting ? c->hooks.max_waiting : 4 * c->conf.queue * targets + 4096,
	    .on_complete = c->hooks.on_pair,
	    .ctx = c->hooks.ctx,
	};
	c->pairs = shadow_pairs_create(&pp);
	if (!c->pairs) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return c;
fail:
	shadow_core_free(c);
	return NULL;
}

void shadow_core_free(struct shadow_core *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_lanes; i++) {
		/* First the engines: freeing one drops its requests without callback. */
		replay_engine_free(c->lanes[i].eng);
		replay_guard_free(c->lanes[i].guard);
	}
	shadow_pairs_free(c->pairs);
	mem_free(c);
}

size_t shadow_core_lanes(const struct shadow_core *c)
{
	return c->n_lanes;
}

const char *shadow_core_lane_name(const struct shadow_core *c, unsigned lane)
{
	return lane < c->n_lanes ? c->lanes[lane].conf->name : "";
}

int shadow_core_lane_find(const struct shadow_core *c, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < c->n_lanes; i++) {
		const char *n = c->lanes[i].conf->name;
		if (strlen(n) == len && !memcmp(n, name, len))
			return (int)i;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Step 1: classify (any thread)                                       */
/* ------------------------------------------------------------------ */

static bool has_header(const struct store_message *m, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < m->n_headers; i++)
		if (m->headers[i].name.len == n &&
		    !strncasecmp((const char *)m->headers[i].name.ptr, name, n))
			return true;
	return false;
}

/* Write lane @p l's warning of @p kind once (the first thread to claim it). */
static void warn_once(struct sh_lane *l, int kind, const char *url, const struct store_session *s)
{
	struct sh_warning *w = &l->warn[kind];
	char ep[64];
	if (__atomic_exchange_n(&w->claimed, 1, __ATOMIC_RELAXED))
		return;
	store_endpoint_str(s->ip_version, &s->dst, ep, sizeof(ep));
	if (kind == WARN_PRODUCTION) {
		snprintf(w->pre, sizeof(w->pre),
			 "lane %s: target '%s' is the captured server %s; its shadow requests are "
			 "dropped (counted ",
			 l->conf->name, url, ep);
		snprintf(w->post, sizeof(w->post), "%s_dropped_production; %s sends them)",
			 l->conf->name, REPLAY_GUARD_FLAG);
	} else {
		snprintf(w->pre, sizeof(w->pre),
			 "lane %s: captured traffic goes to the lane's own target '%s' (%s); "
			 "with --no-shadow-header it cannot be told from dyetap's own copies, "
			 "so it is not shadowed to the lane (counted ",
			 l->conf->name, url, ep);
		snprintf(w->post, sizeof(w->post), "%s_dropped_loop)", l->conf->name);
	}
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
}

int shadow_core_classify(struct shadow_core *c, const struct store_session *s,
			 struct shadow_stats *st)
{
	enum shadow_drop why;
	const char *url;
	struct sh_lane *l;
	int li;

	SH_INC(st->requests);
	if (!s->lane.len)
		return -1;
	SH_INC(st->colored);
	li = shadow_core_lane_find(c, s->lane.ptr, s->lane.len);
	if (li < 0) {
		SH_INC(st->no_lane);
		return -1;
	}
	l = &c->lanes[li];
	SH_INC(st->lane[li].colored);
	/* Loop protection: dyetap's own copies are never shadowed again. */
	if (has_header(&s->req, c->marker)) {
		why = SHADOW_DROP_LOOP;
		goto drop;
	}
	url = replay_guard_match(l->guard, s->ip_version, &s->dst);
	if (url && !c->conf.rw.shadow_name) {
		/* No marker to tell them apart: traffic to the target may be our copies. */
		warn_once(l, WARN_LOOP, url, s);
		why = SHADOW_DROP_LOOP;
		goto drop;
	}
	if (url && !c->conf.production) {
		warn_once(l, WARN_PRODUCTION, url, s);
		why = SHADOW_DROP_PRODUCTION;
		goto drop;
	}
	if (shadow_request_admit(s, c->conf.allow_writes, &why))
		return li;
drop:
	SH_INC(st->lane[li].dropped[why]);
	return -1;
}

int shadow_core_warning(struct shadow_core *c, const char *lane_prefix, char *msg, size_t msglen)
{
	for (size_t i = 0; i < c->n_lanes; i++)
		for (int k = 0; k < WARN_KINDS; k++) {
			struct sh_warning *w = &c->lanes[i].warn[k];
			if (w->given || !__atomic_load_n(&w->ready, __ATOMIC_ACQUIRE))
				continue;
			w->given = true;
			snprintf(msg, msglen, "%s%s%s", w->pre, lane_prefix, w->post);
			return 1;
		}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Step 2: submit (owner)                                              */
/* ------------------------------------------------------------------ */

/* A rate set from another thread since the last submit: start a new bucket. */
static void apply_rate(struct sh_lane *l, int64_t now)
{
	uint32_t gen = __atomic_load_n(&l->rate_gen, __ATOMIC_ACQUIRE);
	if (gen == l->rate_seen)
		return;
	uint64_t bits = __atomic_load_n(&l->rate_bits, __ATOMIC_RELAXED);
	double rate;
	memcpy(&rate, &bits, sizeof(rate));
	shadow_bucket_init(&l->bucket, rate, 0, now);
	l->rate_seen = gen;
}

int shadow_core_lane_set_rate(struct shadow_core *c, unsigned lane, double rate)
{
	uint64_t bits;
	if (lane >= c->n_lanes || !(rate >= 0) || rate > 1e9)
		return -EINVAL;
	memcpy(&bits, &rate, sizeof(bits));
	__atomic_store_n(&c->lanes[lane].rate_bits, bits, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->lanes[lane].rate_gen, 1, __ATOMIC_RELEASE);
	return 0;
}

int shadow_core_submit(struct shadow_core *c, unsigned lane, const struct store_session *s,
		       uint64_t flow_key, int64_t req_ns)
{
	struct sh_lane *l = &c->lanes[lane];
	struct shadow_lane_stats *ls = &c->st.lane[lane];
	int64_t now = clk_mono_ns();
	enum shadow_drop why;
	struct shadow_pair *e;

	apply_rate(l, now);
	if (now < l->down_until) {
		why = SHADOW_DROP_TARGET_DOWN;
	} else if (replay_engine_pending(l->eng) >= c->conf.queue * l->conf->n_urls) {
		why = SHADOW_DROP_QUEUE_FULL;
	} else if (!shadow_bucket_take(&l->bucket, now)) {
		why = SHADOW_DROP_RATE_LIMITED;
	} else if (!(e = shadow_pairs_add(c->pairs, flow_key, s->ts_req_first_ns, lane,
					  (unsigned)l->conf->n_urls, c->hooks.on_pair != NULL))) {
		why = SHADOW_DROP_NO_MEMORY;
	} else {
		e->req_ns = req_ns;
		if (replay_engine_submit(l->eng, s, flow_key, now, e) == 0) {
			SH_INC(ls->mirrored);
			SH_INC(c->st.mirrored);
			return 0;
		}
		shadow_pairs_cancel(c->pairs, e);
		why = SHADOW_DROP_NO_MEMORY;
	}
	SH_INC(ls->dropped[why]);
	return (int)why;
}

/* One target's answer or error for the request of entry @p user. */
static void on_done(void *ctx, void *user, const struct store_result *r)
{
	struct shadow_core *c = ctx;
	struct shadow_pair *e = user;
	struct sh_lane *l = &c->lanes[e->lane];
	struct store_result *copy = NULL;

	if (r->error == STORE_ERR_REFUSED || r->error == STORE_ERR_CONNECT)
		l->down_until = clk_mono_ns() + SH_DOWN_NS;
	if (r->ts_sent_ns > 0 && e->req_ns > 0)
		replay_hist_add(&c->delay, r->ts_sent_ns - e->req_ns);
	if (c->hooks.on_pair && e->n_res < SHADOW_MAX_TARGETS) {
		/* Only a redacted copy is ever kept (docs/mirror.md "Redaction"). */
		struct store_result red;
		if (c->hooks.redact && c->hooks.redact(c->hooks.redact_ctx, r, &red) < 0)
			SH_INC(c->st.results_redact_errors);
		else
			copy = shadow_result_dup(c->hooks.redact ? &red : r);
	}
	shadow_pairs_result(c->pairs, e, copy);
}

void shadow_core_session(struct shadow_core *c, uint64_t flow_key, const struct store_session *s)
{
	if (c->hooks.on_pair && s->req.present)
		(void)shadow_pairs_session(c->pairs, flow_key, s);
}

void shadow_core_session_take(struct shadow_core *c, uint64_t flow_key, struct store_session *copy)
{
	if (c->hooks.on_pair)
		(void)shadow_pairs_session_take(c->pairs, flow_key, copy);
	else
		shadow_free(copy);
}

/* ------------------------------------------------------------------ */
/* Running (owner)                                                     */
/* ------------------------------------------------------------------ */

/* Copy the engines' and the pairing's counters into the owner's block. */
static void publish(struct shadow_core *c, bool force)
{
	for (size_t i = 0; i < c->n_lanes; i++) {
		const struct replay_stats *rs = replay_engine_stats(c->lanes[i].eng);
		struct shadow_lane_stats *ls = &c->st.lane[i];
		SH_SET(ls->sent, rs->sent);
		SH_SET(ls->ok, rs->ok);
		SH_SET(ls->errors, replay_stats_errors(rs));
		SH_SET(ls->err_refused, rs->err_refused);
		SH_SET(ls->err_reset, rs->err_reset);
		SH_SET(ls->err_timeout, rs->err_timeout);
		SH_SET(ls->err_tls, rs->err_tls);
		SH_SET(ls->err_other, rs->err_connect + rs->err_bad_response + rs->err_other);
	}
	const struct shadow_pairs_stats *ps = shadow_pairs_get_stats(c->pairs);
	SH_SET(c->st.paired, ps->paired);
	SH_SET(c->st.unpaired, ps->unpaired);
	int64_t now = clk_mono_ns();
	if (force || now >= c->delay_next) {
		c->delay_next = now + SH_DELAY_EVERY_NS;
		SH_SET(c->st.delay_p50_us, replay_hist_pct(&c->delay, 50) / 1000);
		SH_SET(c->st.delay_p99_us, replay_hist_pct(&c->delay, 99) / 1000);
		SH_SET(c->st.delay_max_us, c->delay.max_ns / 1000);
	}
}

int shadow_core_run(struct shadow_core *c, int64_t until_ns)
{
	int rc = 0;
	for (size_t i = 0; i < c->n_lanes; i++) {
		/* Only the first waits: an `until` in the past would return before epoll. */
		int64_t u = i == 0 ? until_ns : clk_mono_ns() + 1000;
		int r = replay_engine_run(c->lanes[i].eng, u);
		if (r && !rc)
			rc = r;
	}
	publish(c, false);
	return rc;
}

uint64_t shadow_core_pending(const struct shadow_core *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->n_lanes; i++)
		n += replay_engine_pending(c->lanes[i].eng);
	return n;
}

void shadow_core_drain(struct shadow_core *c)
{
	int64_t end = clk_mono_ns() + c->conf.drain_ns;
	while (shadow_core_pending(c) && clk_mono_ns() < end) {
		int64_t u = clk_mono_ns() + 10000000LL;
		shadow_core_run(c, u < end ? u : end);
	}
	for (size_t i = 0; i < c->n_lanes; i++) {
		struct replay_engine *e = c->lanes[i].eng;
		uint64_t before = replay_engine_stats(e)->not_sent;
		replay_engine_abort(e);
		SH_ADD(c->st.lane[i].dropped[SHADOW_DROP_STOPPED],
		       replay_engine_stats(e)->not_sent - before);
	}
	publish(c, true);
}

void shadow_core_finish(struct shadow_core *c)
{
	shadow_pairs_flush(c->pairs);
	publish(c, true);
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

struct shadow_stats *shadow_core_stats(struct shadow_core *c)
{
	return &c->st;
}

static void add_block(struct shadow_stats *out, const struct shadow_stats *b)
{
	uint64_t *d = (uint64_t *)(void *)out;
	const uint64_t *v = (const uint64_t *)(const void *)b;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		d[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
}

void shadow_core_sum(const struct shadow_core *c, const struct shadow_stats *const *blocks,
		     size_t n, struct shadow_stats *out)
{
	memset(out, 0, sizeof(*out));
	add_block(out, &c->st);
	for (size_t i = 0; i < n; i++)
		add_block(out, blocks[i]);
}

void shadow_core_each(const struct shadow_core *c, const struct shadow_stats *t,
		      void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v),
		      void *ctx)
{
	for (size_t i = 0; i < shadow_ctr_count; i++)
		fn(ctx, NULL, shadow_ctr_descs[i].name, ctr_get(t, &shadow_ctr_descs[i]));
	for (size_t l = 0; l < c->n_lanes; l++)
		for (size_t i = 0; i < shadow_lane_ctr_count; i++)
			fn(ctx, c->lanes[l].conf->name, shadow_lane_ctr_descs[i].name,
			   ctr_get(&t->lane[l], &shadow_lane_ctr_descs[i]));
}

struct to_set {
	struct ctr_set *set;
	const char *total_prefix, *lane_prefix;
	int rc;
};

static void put_one(void *ctx, const char *lane, const char *name, uint64_t v)
{
	struct to_set *o = ctx;
	int rc = lane ? ctr_set_put(o->set, v, "%s%s_%s", o->lane_prefix, lane, name)
		      : ctr_set_put(o->set, v, "%s%s", o->total_prefix, name);
	if (rc && !o->rc)
		o->rc = rc;
}

int shadow_core_counters(const struct shadow_core *c, const struct shadow_stats *t,
			 const char *total_prefix, const char *lane_prefix, struct ctr_set *set)
{
	struct to_set o = {set, total_prefix, lane_prefix, 0};
	shadow_core_each(c, t, put_one, &o);
	return o.rc;
}
