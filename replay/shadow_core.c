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

#include <assert.h>
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
/* Views kept (create's and one per reconfiguration); engines finishing. */
#define SH_MAX_VIEWS (1 + SHADOW_MAX_RECONFIGURE)
#define SH_MAX_OLD   64

enum { WARN_PRODUCTION, WARN_LOOP, WARN_KINDS };

struct sh_warning {
	int claimed;	/* atomic: a thread is writing text */
	int ready;	/* atomic (release): text is complete */
	bool given;	/* the reader handed it out */
	char pre[640];	/* the text up to the counter's name... */
	char post[128]; /* ...and from the lane's name on (the prefix is the reader's) */
};

struct sh_lane {
	char name[64];			     /* the slot's lane, for the core's life */
	const struct shadow_lane_conf *conf; /* atomic: in the newest view that had the lane */
	int active;			     /* atomic: the lane is in the view classify() uses */
	struct replay_engine *eng;	     /* owner: NULL while the lane is removed */
	struct replay_stats done;	     /* owner: outcomes of the slot's engines freed */
	struct shadow_bucket bucket;
	int64_t down_until; /* monotonic */
	uint64_t rate_bits; /* atomic: the rate asked for (a double's bits) */
	uint32_t rate_gen;  /* atomic: bumped by shadow_core_lane_set_rate() and a switch */
	uint32_t rate_seen; /* owner: the generation applied */
	int paused;	    /* atomic: shadow_core_lane_set_paused() */
	uint64_t queued;    /* atomic: requests queued or in flight, published by the owner */
	struct sh_warning warn[WARN_KINDS];
};

/*
 * One configuration of the lanes (shadow_core_create(), each
 * shadow_core_reconfigure()): a deep copy of the conf, its guards, and
 * which slot each of its lanes counts into. Immutable once published and
 * kept until shadow_core_free(): a thread in classify() may still read
 * the view before the newest one.
 */
struct sh_view {
	struct shadow_conf conf; /* its strings in `strings` */
	char *strings;
	const char *marker;			      /* header name that marks dyetap's copies */
	unsigned slot[SHADOW_MAX_LANES];	      /* lane i of conf -> slot */
	struct replay_guard *guard[SHADOW_MAX_LANES]; /* every address of lane i's targets */
};

/* A reconfiguration made ready by shadow_core_reconfigure(), switched to by the owner. */
struct sh_stage {
	struct sh_view *view;
	struct replay_engine *eng[SHADOW_MAX_LANES]; /* per lane of view: new, or NULL: keep */
	size_t n_slots;
};

/* An engine whose lane was removed or whose targets changed: it finishes
 * what it has in flight, then it is freed (owner). */
struct sh_old_engine {
	struct replay_engine *eng;
	unsigned slot;
};

/* One (lane, target URL) ever configured: counters with a target label. */
struct sh_target {
	unsigned slot;
	const char *url;	   /* in a view */
	int active;		   /* atomic: a target of the lane in the newest view */
	uint64_t sent, ok, errors; /* owner writes, relaxed */
};

struct shadow_core {
	struct shadow_hooks hooks;
	struct sh_view *view;  /* atomic (release): the view classify() uses */
	struct sh_stage *next; /* atomic: made ready, not switched to yet */
	uint32_t switches;     /* atomic: views switched to (create's included) */
	struct sh_view *views[SH_MAX_VIEWS];
	size_t n_views;
	struct sh_lane lanes[SHADOW_MAX_LANES]; /* slots */
	size_t n_slots;				/* atomic */
	struct sh_old_engine old[SH_MAX_OLD];
	size_t n_old;
	struct sh_target targets[SHADOW_MAX_TARGET_ROWS];
	size_t n_targets; /* atomic */
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
    L(h2_refused_retried, "h2_refused_retried",
      "HTTP/2 requests sent again: the target refused their stream unprocessed"),
    L(h2_cancelled_as_recorded, "h2_cancelled_as_recorded",
      "HTTP/2 streams the production client reset, cancelled likewise"),
    L(h2_grpc_deadline, "h2_grpc_deadline",
      "gRPC calls with no whole answer within their grpc-timeout (timeout errors)"),
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
    /* Not dropped_paused: an operator's choice, not a loss (docs/operations.md). */
    {"paused", offsetof(struct shadow_lane_stats, dropped) + SHADOW_DROP_PAUSED * sizeof(uint64_t),
     "not mirrored: the lane was paused (dyetap ctl)"},
};
#undef L
#undef D
const size_t shadow_lane_ctr_count =
    sizeof(shadow_lane_ctr_descs) / sizeof(shadow_lane_ctr_descs[0]);
_Static_assert(sizeof(shadow_lane_ctr_descs) / sizeof(shadow_lane_ctr_descs[0]) ==
		   13 + SHADOW_DROP_COUNT,
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
/* Create, reconfigure, switch                                         */
/* ------------------------------------------------------------------ */

static void on_done(void *ctx, void *user, const struct store_result *r);

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static size_t str_size(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *str_copy(char **p, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *r = *p;
	memcpy(r, s, n);
	*p += n;
	return r;
}

static void view_free(struct sh_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->conf.n_lanes; i++)
		replay_guard_free(v->guard[i]);
	mem_free(v->strings);
	mem_free(v);
}

/* A deep copy of @p src (its strings in one block), guards not made yet. */
static struct sh_view *view_create(const struct shadow_conf *src)
{
	struct sh_view *v = mem_calloc(1, sizeof(*v));
	const struct shadow_conf *s = src;
	size_t n = 1;
	if (!v)
		return NULL;
	for (size_t i = 0; i < s->n_lanes; i++)
		for (size_t k = 0; k < s->lanes[i].n_urls; k++)
			n += str_size(s->lanes[i].urls[k]);
	n += str_size(s->ca_file) + str_size(s->sni) + str_size(s->rw.host) +
	     str_size(s->rw.path_prefix) + str_size(s->rw.shadow_name) +
	     str_size(s->rw.shadow_value);
	for (size_t i = 0; i < s->n_sets; i++)
		n += str_size(s->sets[i].name) + str_size(s->sets[i].value);
	for (size_t i = 0; i < s->n_dels; i++)
		n += str_size(s->dels[i]);
	char *p = v->strings = mem_alloc(n);
	if (!p) {
		mem_free(v);
		return NULL;
	}
	struct shadow_conf *c = &v->conf;
	*c = *s;
	for (size_t i = 0; i < c->n_lanes; i++)
		for (size_t k = 0; k < c->lanes[i].n_urls; k++)
			c->lanes[i].urls[k] = str_copy(&p, s->lanes[i].urls[k]);
	c->ca_file = str_copy(&p, s->ca_file);
	c->sni = str_copy(&p, s->sni);
	c->rw.host = str_copy(&p, s->rw.host);
	c->rw.path_prefix = str_copy(&p, s->rw.path_prefix);
	c->rw.shadow_name = str_copy(&p, s->rw.shadow_name);
	c->rw.shadow_value = str_copy(&p, s->rw.shadow_value);
	for (size_t i = 0; i < c->n_sets; i++) {
		c->sets[i].name = str_copy(&p, s->sets[i].name);
		c->sets[i].value = str_copy(&p, s->sets[i].value);
	}
	for (size_t i = 0; i < c->n_dels; i++)
		c->dels[i] = str_copy(&p, s->dels[i]);
	c->marker = (struct replay_hdr_set){c->rw.shadow_name, c->rw.shadow_value};
	/* The rewrite rules point into the conf: into this copy from now on. */
	c->rw.set = c->sets;
	c->rw.n_set = c->n_sets;
	c->rw.del = c->dels;
	c->rw.n_del = c->n_dels;
	v->marker = c->rw.shadow_name ? c->rw.shadow_name : SHADOW_MARKER_NAME;
	return v;
}

/* The settings an engine is made with, apart from its targets, are the same. */
static bool engine_conf_same(const struct shadow_conf *a, const struct shadow_conf *b)
{
	if (a->timeout_ns != b->timeout_ns || a->insecure != b->insecure ||
	    !str_eq(a->ca_file, b->ca_file) || !str_eq(a->sni, b->sni) ||
	    !str_eq(a->rw.host, b->rw.host) || !str_eq(a->rw.path_prefix, b->rw.path_prefix) ||
	    !str_eq(a->rw.shadow_name, b->rw.shadow_name) ||
	    !str_eq(a->rw.shadow_value, b->rw.shadow_value) || a->n_sets != b->n_sets ||
	    a->n_dels != b->n_dels)
		return false;
	for (size_t i = 0; i < a->n_sets; i++)
		if (!str_eq(a->sets[i].name, b->sets[i].name) ||
		    !str_eq(a->sets[i].value, b->sets[i].value))
			return false;
	for (size_t i = 0; i < a->n_dels; i++)
		if (!str_eq(a->dels[i], b->dels[i]))
			return false;
	return true;
}

static bool urls_same(const struct shadow_lane_conf *a, const struct shadow_lane_conf *b)
{
	if (a->n_urls != b->n_urls)
		return false;
	for (size_t k = 0; k < a->n_urls; k++)
		if (strcmp(a->urls[k], b->urls[k]))
			return false;
	return true;
}

/* The lane of view @p v named @p name[0..len), or -1. */
static int view_find(const struct sh_view *v, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < v->conf.n_lanes; i++) {
		const char *n = v->conf.lanes[i].name;
		if (strlen(n) == len && !memcmp(n, name, len))
			return (int)i;
	}
	return -1;
}

static struct replay_engine *engine_create(struct shadow_core *c, const struct sh_view *v,
					   size_t li, char *err, size_t errlen)
{
	const struct shadow_lane_conf *lc = &v->conf.lanes[li];
	struct replay_target t[SHADOW_MAX_TARGETS];
	for (size_t k = 0; k < lc->n_urls; k++)
		t[k] = (struct replay_target){.url = lc->urls[k], .role = lc->name};
	struct replay_engine_params ep = {
	    .targets = t,
	    .n_targets = lc->n_urls,
	    .timeout_ns = v->conf.timeout_ns,
	    .rewrite = &v->conf.rw,
	    .insecure = v->conf.insecure,
	    .ca_file = v->conf.ca_file,
	    .sni = v->conf.sni,
	    .on_done = on_done,
	    .ctx = c,
	};
	return replay_engine_create(&ep, err, errlen);
}

static void stage_free(struct sh_stage *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < SHADOW_MAX_LANES; i++)
		replay_engine_free(st->eng[i]);
	view_free(st->view);
	mem_free(st);
}

static int target_row(const struct shadow_core *c, size_t n, unsigned slot, const char *url)
{
	for (size_t i = 0; i < n; i++)
		if (c->targets[i].slot == slot && !strcmp(c->targets[i].url, url))
			return (int)i;
	return -1;
}

int shadow_core_reconfigure(struct shadow_core *c, const struct shadow_conf *conf, char *err,
			    size_t errlen)
{
	char e[512];
	int rc = -EINVAL;
	if (__atomic_load_n(&c->next, __ATOMIC_ACQUIRE)) {
		snprintf(err, errlen, "the previous reload is not applied yet: try again");
		return -EBUSY;
	}
	if (c->n_views == SH_MAX_VIEWS) {
		snprintf(err, errlen, "reloaded %d times already: restart to reload again",
			 SHADOW_MAX_RECONFIGURE);
		return -ENOSPC;
	}
	if (!conf->n_lanes) {
		snprintf(err, errlen, "no lane: give at least one lane LANE=URL");
		return -EINVAL;
	}
	const struct sh_view *cur = __atomic_load_n(&c->view, __ATOMIC_ACQUIRE);
	struct sh_stage *st = mem_calloc(1, sizeof(*st));
	struct sh_view *v = st ? view_create(conf) : NULL;
	if (!v) {
		mem_free(st);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	st->view = v;
	st->n_slots = __atomic_load_n(&c->n_slots, __ATOMIC_ACQUIRE);
	size_t rows = __atomic_load_n(&c->n_targets, __ATOMIC_ACQUIRE), new_rows = 0;
	for (size_t i = 0; i < v->conf.n_lanes; i++) {
		const struct shadow_lane_conf *lc = &v->conf.lanes[i];
		size_t s;
		for (s = 0; s < st->n_slots && strcmp(c->lanes[s].name, lc->name); s++)
			;
		if (s == st->n_slots) {
			if (st->n_slots == SHADOW_MAX_LANES) {
				snprintf(err, errlen,
					 "lane %s: at most %d lane names over a run (removed "
					 "lanes count): restart to add it",
					 lc->name, SHADOW_MAX_LANES);
				goto fail;
			}
			st->n_slots++;
		}
		v->slot[i] = (unsigned)s;
		if (!(v->guard[i] = replay_guard_create())) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (size_t k = 0; k < lc->n_urls; k++) {
			if (replay_guard_add_url(v->guard[i], lc->urls[k], e, sizeof(e)) < 0) {
				snprintf(err, errlen, "lane %s: %s", lc->name, e);
				goto fail;
			}
			if (s >= rows || target_row(c, rows, (unsigned)s, lc->urls[k]) < 0)
				new_rows++;
		}
		/* A lane that stays with the same targets and settings keeps its engine:
		 * its requests in flight and its connections go on. */
		int ci = cur ? view_find(cur, (const uint8_t *)lc->name, strlen(lc->name)) : -1;
		if (ci >= 0 && urls_same(&cur->conf.lanes[ci], lc) &&
		    engine_conf_same(&cur->conf, &v->conf))
			continue;
		if (!(st->eng[i] = engine_create(c, v, i, e, sizeof(e)))) {
			snprintf(err, errlen, "lane %s: %s", lc->name, e);
			goto fail;
		}
	}
	if (rows + new_rows > SHADOW_MAX_TARGET_ROWS) {
		snprintf(err, errlen, "at most %d lane targets over a run: restart to add more",
			 SHADOW_MAX_TARGET_ROWS);
		goto fail;
	}
	__atomic_store_n(&c->next, st, __ATOMIC_RELEASE);
	return 0;
fail:
	stage_free(st);
	return rc;
}

_Static_assert(sizeof(struct replay_stats) % sizeof(uint64_t) == 0, "only uint64_t counters");

static void stats_add(struct replay_stats *d, const struct replay_stats *s)
{
	uint64_t *a = (uint64_t *)(void *)d;
	const uint64_t *b = (const uint64_t *)(const void *)s;
	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		a[i] += b[i];
}

/* Slot @p s's engine stops taking requests; it finishes what it holds. */
static void engine_retire(struct shadow_core *c, unsigned s)
{
	struct sh_lane *l = &c->lanes[s];
	if (!l->eng)
		return;
	if (c->n_old == SH_MAX_OLD) {
		/* No room to let it finish: what it holds is counted `stopped`. */
		uint64_t before = replay_engine_stats(l->eng)->not_sent;
		replay_engine_abort(l->eng);
		SH_ADD(c->st.lane[s].dropped[SHADOW_DROP_STOPPED],
		       replay_engine_stats(l->eng)->not_sent - before);
		stats_add(&l->done, replay_engine_stats(l->eng));
		replay_engine_free(l->eng);
	} else {
		c->old[c->n_old++] = (struct sh_old_engine){l->eng, s};
	}
	l->eng = NULL;
}

static void publish(struct shadow_core *c, bool force);

int shadow_core_apply(struct shadow_core *c)
{
	struct sh_stage *st = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
	if (!st)
		return 0;
	struct sh_view *v = st->view;
	int64_t now = clk_mono_ns();
	for (size_t s = __atomic_load_n(&c->n_slots, __ATOMIC_RELAXED); s < st->n_slots; s++)
		for (size_t i = 0; i < v->conf.n_lanes; i++)
			if (v->slot[i] == s)
				snprintf(c->lanes[s].name, sizeof(c->lanes[s].name), "%s",
					 v->conf.lanes[i].name);
	for (unsigned s = 0; s < st->n_slots; s++) {
		struct sh_lane *l = &c->lanes[s];
		int li = -1;
		for (size_t i = 0; i < v->conf.n_lanes && li < 0; i++)
			if (v->slot[i] == s)
				li = (int)i;
		if (li < 0) {
			/* Removed: it takes nothing more; a lane added again starts running. */
			engine_retire(c, s);
			__atomic_store_n(&l->active, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&l->paused, 0, __ATOMIC_RELEASE);
			continue;
		}
		const struct shadow_lane_conf *lc = &v->conf.lanes[li];
		if (st->eng[li]) {
			engine_retire(c, s);
			l->eng = st->eng[li];
			st->eng[li] = NULL;
			l->down_until = 0;
		}
		if (!__atomic_load_n(&l->active, __ATOMIC_RELAXED))
			shadow_bucket_init(&l->bucket, lc->rate, 0, now);
		uint64_t bits;
		memcpy(&bits, &lc->rate, sizeof(bits));
		__atomic_store_n(&l->rate_bits, bits, __ATOMIC_RELAXED);
		__atomic_add_fetch(&l->rate_gen, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&l->conf, lc, __ATOMIC_RELEASE);
		__atomic_store_n(&l->active, 1, __ATOMIC_RELEASE);
	}
	/* Target rows: new ones appended, each marked as in the new view or not. */
	size_t rows = __atomic_load_n(&c->n_targets, __ATOMIC_RELAXED);
	for (size_t r = 0; r < rows; r++)
		__atomic_store_n(&c->targets[r].active, 0, __ATOMIC_RELAXED);
	for (size_t i = 0; i < v->conf.n_lanes; i++)
		for (size_t k = 0; k < v->conf.lanes[i].n_urls; k++) {
			int r = target_row(c, rows, v->slot[i], v->conf.lanes[i].urls[k]);
			if (r < 0 && rows < SHADOW_MAX_TARGET_ROWS) {
				r = (int)rows++;
				c->targets[r] = (struct sh_target){.slot = v->slot[i],
								   .url = v->conf.lanes[i].urls[k]};
			}
			if (r >= 0)
				__atomic_store_n(&c->targets[r].active, 1, __ATOMIC_RELAXED);
		}
	__atomic_store_n(&c->n_targets, rows, __ATOMIC_RELEASE);
	__atomic_store_n(&c->n_slots, st->n_slots, __ATOMIC_RELEASE);
	c->views[c->n_views++] = v;
	__atomic_store_n(&c->view, v, __ATOMIC_RELEASE);
	st->view = NULL;
	stage_free(st);
	__atomic_store_n(&c->next, NULL, __ATOMIC_RELEASE);
	__atomic_add_fetch(&c->switches, 1, __ATOMIC_RELEASE);
	if (c->pairs)
		publish(c, true);
	return 1;
}

bool shadow_core_pending_switch(const struct shadow_core *c)
{
	return __atomic_load_n(&c->next, __ATOMIC_ACQUIRE) != NULL;
}

struct shadow_core *shadow_core_create(const struct shadow_conf *conf, const struct shadow_hooks *h,
				       char *err, size_t errlen)
{
	struct shadow_core *c = mem_calloc(1, sizeof(*c));
	uint64_t targets = 0;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (h)
		c->hooks = *h;
	for (size_t i = 0; i < conf->n_lanes; i++)
		targets += conf->lanes[i].n_urls;
	struct shadow_pairs_params pp = {
	    .max_waiting =
		c->hooks.max_waiting ? c->hooks.max_waiting : 4 * conf->queue * targets + 4096,
	    .on_complete = c->hooks.on_pair,
	    .ctx = c->hooks.ctx,
	};
	if (shadow_core_reconfigure(c, conf, err, errlen) < 0)
		goto fail;
	(void)shadow_core_apply(c);
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
	/* First the engines: freeing one drops its requests without callback. */
	for (size_t i = 0; i < SHADOW_MAX_LANES; i++)
		replay_engine_free(c->lanes[i].eng);
	for (size_t i = 0; i < c->n_old; i++)
		replay_engine_free(c->old[i].eng);
	stage_free(c->next);
	for (size_t i = 0; i < c->n_views; i++)
		view_free(c->views[i]);
	shadow_pairs_free(c->pairs);
	mem_free(c);
}

uint32_t shadow_core_switches(const struct shadow_core *c)
{
	return __atomic_load_n(&c->switches, __ATOMIC_ACQUIRE);
}

size_t shadow_core_lanes(const struct shadow_core *c)
{
	return __atomic_load_n(&c->n_slots, __ATOMIC_ACQUIRE);
}

const char *shadow_core_lane_name(const struct shadow_core *c, unsigned lane)
{
	return lane < shadow_core_lanes(c) ? c->lanes[lane].name : "";
}

int shadow_core_lane_find(const struct shadow_core *c, const uint8_t *name, size_t len)
{
	const struct sh_view *v = __atomic_load_n(&c->view, __ATOMIC_ACQUIRE);
	int i = v ? view_find(v, name, len) : -1;
	return i < 0 ? -1 : (int)v->slot[i];
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
	char ep[64], name[sizeof(l->name)];
	if (__atomic_exchange_n(&w->claimed, 1, __ATOMIC_RELAXED))
		return;
	store_endpoint_str(s->ip_version, &s->dst, ep, sizeof(ep));
	memcpy(name, l->name, sizeof(name)); /* not the struct the text goes into */
	if (kind == WARN_PRODUCTION) {
		snprintf(w->pre, sizeof(w->pre),
			 "lane %s: target '%s' is the captured server %s; its shadow requests are "
			 "dropped (counted ",
			 name, url, ep);
		snprintf(w->post, sizeof(w->post), "%s_dropped_production; %s sends them)", name,
			 REPLAY_GUARD_FLAG);
	} else {
		snprintf(w->pre, sizeof(w->pre),
			 "lane %s: captured traffic goes to the lane's own target '%s' (%s); "
			 "with --no-shadow-header it cannot be told from dyetap's own copies, "
			 "so it is not shadowed to the lane (counted ",
			 name, url, ep);
		snprintf(w->post, sizeof(w->post), "%s_dropped_loop)", name);
	}
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
}

int shadow_core_classify(struct shadow_core *c, const struct store_session *s,
			 struct shadow_stats *st)
{
	/* One view for the whole decision: a switch meanwhile applies to the next request. */
	const struct sh_view *v = __atomic_load_n(&c->view, __ATOMIC_ACQUIRE);
	enum shadow_drop why;
	const char *url;
	struct sh_lane *l;
	unsigned slot;
	int li;

	SH_INC(st->requests);
	if (!s->lane.len)
		return -1;
	SH_INC(st->colored);
	li = view_find(v, s->lane.ptr, s->lane.len);
	if (li < 0) {
		SH_INC(st->no_lane);
		return -1;
	}
	slot = v->slot[li];
	l = &c->lanes[slot];
	SH_INC(st->lane[slot].colored);
	/* A paused lane takes nothing from the moment the pause is stored. */
	if (__atomic_load_n(&l->paused, __ATOMIC_ACQUIRE)) {
		why = SHADOW_DROP_PAUSED;
		goto drop;
	}
	/* Loop protection: dyetap's own copies are never shadowed again. */
	if (has_header(&s->req, v->marker)) {
		why = SHADOW_DROP_LOOP;
		goto drop;
	}
	url = replay_guard_match(v->guard[li], s->ip_version, &s->dst);
	if (url && !v->conf.rw.shadow_name) {
		/* No marker to tell them apart: traffic to the target may be our copies. */
		warn_once(l, WARN_LOOP, url, s);
		why = SHADOW_DROP_LOOP;
		goto drop;
	}
	if (url && !v->conf.production) {
		warn_once(l, WARN_PRODUCTION, url, s);
		why = SHADOW_DROP_PRODUCTION;
		goto drop;
	}
	if (shadow_request_admit(s, v->conf.allow_writes, &why))
		return (int)slot;
drop:
	SH_INC(st->lane[slot].dropped[why]);
	return -1;
}

int shadow_core_warning(struct shadow_core *c, const char *lane_prefix, char *msg, size_t msglen)
{
	for (size_t i = 0; i < shadow_core_lanes(c); i++)
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
	if (lane >= shadow_core_lanes(c) || !(rate >= 0) || rate > 1e9)
		return -EINVAL;
	memcpy(&bits, &rate, sizeof(bits));
	__atomic_store_n(&c->lanes[lane].rate_bits, bits, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->lanes[lane].rate_gen, 1, __ATOMIC_RELEASE);
	return 0;
}

int shadow_core_lane_set_paused(struct shadow_core *c, unsigned lane, bool paused)
{
	if (lane >= shadow_core_lanes(c) ||
	    !__atomic_load_n(&c->lanes[lane].active, __ATOMIC_ACQUIRE))
		return -EINVAL;
	__atomic_store_n(&c->lanes[lane].paused, paused ? 1 : 0, __ATOMIC_RELEASE);
	return 0;
}

int shadow_core_lane_info(const struct shadow_core *c, unsigned lane, struct shadow_lane_info *out)
{
	if (lane >= shadow_core_lanes(c))
		return -EINVAL;
	const struct sh_lane *l = &c->lanes[lane];
	const struct shadow_lane_conf *lc = __atomic_load_n(&l->conf, __ATOMIC_ACQUIRE);
	uint64_t bits = __atomic_load_n(&l->rate_bits, __ATOMIC_RELAXED);
	memset(out, 0, sizeof(*out));
	out->name = l->name;
	out->urls = lc->urls;
	out->n_urls = lc->n_urls;
	out->removed = !__atomic_load_n(&l->active, __ATOMIC_ACQUIRE);
	out->paused = __atomic_load_n(&l->paused, __ATOMIC_ACQUIRE) != 0;
	memcpy(&out->rate, &bits, sizeof(out->rate));
	out->queued = __atomic_load_n(&l->queued, __ATOMIC_RELAXED);
	return 0;
}

size_t shadow_core_targets(const struct shadow_core *c)
{
	return __atomic_load_n(&c->n_targets, __ATOMIC_ACQUIRE);
}

int shadow_core_target_info(const struct shadow_core *c, size_t row, struct shadow_target_info *out)
{
	if (row >= shadow_core_targets(c))
		return -EINVAL;
	const struct sh_target *t = &c->targets[row];
	out->lane = c->lanes[t->slot].name;
	out->url = t->url;
	out->active = __atomic_load_n(&t->active, __ATOMIC_RELAXED) != 0;
	out->sent = __atomic_load_n(&t->sent, __ATOMIC_RELAXED);
	out->ok = __atomic_load_n(&t->ok, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&t->errors, __ATOMIC_RELAXED);
	return 0;
}

int shadow_core_submit(struct shadow_core *c, unsigned lane, const struct store_session *s,
		       uint64_t flow_key, int64_t req_ns)
{
	struct sh_lane *l = &c->lanes[lane];
	struct shadow_lane_stats *ls = &c->st.lane[lane];
	const struct sh_view *v = c->view; /* the owner switches it: its own read */
	int64_t now = clk_mono_ns();
	enum shadow_drop why;
	struct shadow_pair *e;

	assert(lane < SHADOW_MAX_LANES);
	apply_rate(l, now);
	if (!l->eng) {
		why = SHADOW_DROP_STOPPED; /* classified before a reload removed its lane */
	} else if (now < l->down_until) {
		why = SHADOW_DROP_TARGET_DOWN;
	} else if (replay_engine_pending(l->eng) >= v->conf.queue * l->conf->n_urls) {
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
	/* The target's own counters (a target label in the metrics). */
	for (size_t i = 0; i < c->n_targets; i++) {
		struct sh_target *t = &c->targets[i];
		if (t->slot != e->lane || strlen(t->url) != r->target.len ||
		    memcmp(t->url, r->target.ptr, r->target.len))
			continue;
		SH_INC(t->sent);
		if (r->error == STORE_ERR_NONE)
			SH_INC(t->ok);
		else
			SH_INC(t->errors);
		break;
	}
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
	/* An HTTP/2 stream reset in production (a client that cancelled a
	 * watch): its copy on the lane, mirrored when the request ended, is
	 * cancelled too, not left open until --timeout. */
	int lane = copy->lane.len ? shadow_core_lane_find(c, copy->lane.ptr, copy->lane.len) : -1;
	if (lane >= 0 && c->lanes[lane].eng)
		replay_engine_cancel_as_recorded(c->lanes[lane].eng, copy, flow_key);
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
	for (size_t i = 0; i < shadow_core_lanes(c); i++) {
		struct sh_lane *l = &c->lanes[i];
		struct replay_stats rs = l->done;
		uint64_t queued = 0;
		if (l->eng) {
			stats_add(&rs, replay_engine_stats(l->eng));
			queued += replay_engine_pending(l->eng);
		}
		for (size_t k = 0; k < c->n_old; k++)
			if (c->old[k].slot == i) {
				stats_add(&rs, replay_engine_stats(c->old[k].eng));
				queued += replay_engine_pending(c->old[k].eng);
			}
		struct shadow_lane_stats *ls = &c->st.lane[i];
		SH_SET(ls->sent, rs.sent);
		SH_SET(ls->ok, rs.ok);
		SH_SET(ls->errors, replay_stats_errors(&rs));
		SH_SET(ls->err_refused, rs.err_refused);
		SH_SET(ls->err_reset, rs.err_reset);
		SH_SET(ls->err_timeout, rs.err_timeout);
		SH_SET(ls->err_tls, rs.err_tls);
		SH_SET(ls->err_other, rs.err_connect + rs.err_bad_response + rs.err_other);
		SH_SET(ls->h2_refused_retried, rs.h2_refused_retried);
		SH_SET(ls->h2_cancelled_as_recorded, rs.h2_cancelled_as_recorded);
		SH_SET(ls->h2_grpc_deadline, rs.h2_grpc_deadline);
		__atomic_store_n(&l->queued, queued, __ATOMIC_RELAXED);
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

/* Engines that no longer take requests and hold none are freed (their
 * outcomes stay in their slot's counters). */
static void reap_old(struct shadow_core *c)
{
	for (size_t k = 0; k < c->n_old;) {
		struct sh_old_engine *o = &c->old[k];
		if (replay_engine_pending(o->eng)) {
			k++;
			continue;
		}
		stats_add(&c->lanes[o->slot].done, replay_engine_stats(o->eng));
		replay_engine_free(o->eng);
		c->old[k] = c->old[--c->n_old];
	}
}

int shadow_core_run(struct shadow_core *c, int64_t until_ns)
{
	int rc = 0;
	bool first = true;
	(void)shadow_core_apply(c);
	for (size_t i = 0; i < shadow_core_lanes(c) + c->n_old; i++) {
		size_t ns = shadow_core_lanes(c);
		struct replay_engine *e = i < ns ? c->lanes[i].eng : c->old[i - ns].eng;
		if (!e)
			continue;
		/* Only the first waits: an `until` in the past would return before epoll. */
		int64_t u = first ? until_ns : clk_mono_ns() + 1000;
		first = false;
		int r = replay_engine_run(e, u);
		if (r && !rc)
			rc = r;
	}
	publish(c, false);
	reap_old(c);
	return rc;
}

uint64_t shadow_core_pending(const struct shadow_core *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < shadow_core_lanes(c); i++)
		if (c->lanes[i].eng)
			n += replay_engine_pending(c->lanes[i].eng);
	for (size_t k = 0; k < c->n_old; k++)
		n += replay_engine_pending(c->old[k].eng);
	return n;
}

/* Drop what engine @p e of slot @p s still queues (`stopped`), fail what is in flight. */
static void abort_engine(struct shadow_core *c, struct replay_engine *e, size_t s)
{
	uint64_t before = replay_engine_stats(e)->not_sent;
	replay_engine_abort(e);
	SH_ADD(c->st.lane[s].dropped[SHADOW_DROP_STOPPED],
	       replay_engine_stats(e)->not_sent - before);
}

void shadow_core_drain(struct shadow_core *c)
{
	int64_t end = clk_mono_ns() + c->view->conf.drain_ns;
	while (shadow_core_pending(c) && clk_mono_ns() < end) {
		int64_t u = clk_mono_ns() + 10000000LL;
		shadow_core_run(c, u < end ? u : end);
	}
	for (size_t i = 0; i < shadow_core_lanes(c); i++)
		if (c->lanes[i].eng)
			abort_engine(c, c->lanes[i].eng, i);
	for (size_t k = 0; k < c->n_old; k++)
		abort_engine(c, c->old[k].eng, c->old[k].slot);
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
	for (size_t l = 0; l < shadow_core_lanes(c); l++)
		for (size_t i = 0; i < shadow_lane_ctr_count; i++)
			fn(ctx, c->lanes[l].name, shadow_lane_ctr_descs[i].name,
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
