/* SPDX-License-Identifier: MIT */
/*
 * dyetap mirror - live shadow mirroring: colored production requests are
 * sent to their lane's targets as soon as their last byte is captured,
 * each shadow response is paired with the captured production response
 * and diffed, rolling reports are rewritten, and -w records both.
 *
 * Wiring only (DESIGN.md §5): capture/source.h and capture/pipeline.h
 * (with its on_request hook) turn packets into requests and sessions,
 * replay/replay.h's engine sends (one engine per lane), replay/shadow.h
 * copies and rate-limits, analysis/diff.h and report.h compare and
 * render, store/store.h records. One thread: the capture source is read
 * without blocking and the engines run in short slices in between, so a
 * slow or dead target never stops packet reading; queues are bounded and
 * what does not fit is dropped and counted per lane and reason.
 * The manual is docs/mirror.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/diff.h"
#include "analysis/noise.h"
#include "analysis/report.h"
#include "capture/pipeline.h"
#include "capture/redact.h"
#include "capture/rules.h"
#include "capture/source.h"
#include "cli/cmds.h"
#include "common/clock.h"
#include "common/counters.h"
#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "replay/replay.h"
#include "replay/replay_guard.h"
#include "replay/shadow.h"
#include "store/store.h"

#define MIR_MAX_FILES	256
#define MIR_MAX_RULES	256
#define MIR_MAX_LANES	16
#define MIR_MAX_TARGETS 8
#define MIR_MAX_HDRS	64
#define MIR_HASH	4096
#define MIR_MAX_CTRS	1024
#define MIR_NAME_LEN	80

static struct src *mir_src;
static volatile sig_atomic_t mir_stop;

static void mir_on_signal(int sig)
{
	(void)sig;
	mir_stop = 1;
	if (mir_src)
		src_break(mir_src);
}

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: dyetap mirror (-i IFACE | -r FILE [--realtime]) [BPF FILTER]\n"
	       "                     --color LANE=MATCH[,MATCH...]... --lane LANE=URL[,URL...]...\n"
	       "                     [-w REC.dyt] [--diff] [--report-dir DIR] [options]\n"
	       "\n"
	       "Copy colored production requests to their lane's targets as soon as they are\n"
	       "captured, compare each shadow response with the production response, and\n"
	       "keep rolling reports. Production traffic is only read, never touched.\n"
	       "\n"
	       "input:\n"
	       "  -i, --interface IFACE  capture live (needs root or CAP_NET_RAW)\n"
	       "  -r, --read FILE        pcap/pcapng file instead (repeatable)\n"
	       "  --realtime             -r: play packets at their recorded pace\n"
	       "  BPF FILTER             trailing words, tcpdump syntax\n"
	       "  --snaplen BYTES, --buffer-mb MB, --promisc   live capture settings\n"
	       "  --duration S           stop after S seconds\n"
	       "lanes:\n"
	       "  --color LANE=MATCH,... color rule (docs/rules.md); repeat\n"
	       "  --rules FILE           color rules, one per line\n"
	       "  --lane LANE=URL[,URL]  targets of a lane (every request goes to each)\n"
	       "  --queue N              requests queued or in flight per lane target (1000)\n"
	       "  --lane-rate LANE=N/s   token bucket per lane (burst N/10, at least 1)\n"
	       "  --timeout DUR          per shadow request (default 10s)\n"
	       "  --drain-timeout DUR    at the end, wait this long for shadow answers (5s)\n"
	       "  --allow-writes         also mirror methods other than GET, HEAD, OPTIONS\n"
	       "  --i-know-this-is-production\n"
	       "                         send to a lane target that is the captured server\n"
	       "                         itself (else such requests are dropped and counted)\n"
	       "rewrite (as dyetap replay):\n"
	       "  --host VALUE, --set-header N:V, --del-header NAME, --path-prefix P\n"
	       "  --shadow-header N:V    marker header (default x-dyetap-shadow: 1)\n"
	       "  --no-shadow-header     send no marker header\n"
	       "output:\n"
	       "  -w, --write REC.dyt    record sessions and shadow results (kind results)\n"
	       "  --redact KIND:NAME[:mask|drop], --redact-defaults   as dyetap record: mask\n"
	       "                         secrets in what -w writes and reports show (the\n"
	       "                         shadow request itself is sent unchanged)\n"
	       "  --diff                 diff shadow against production responses\n"
	       "  --diff-rules FILE      noise rules for the diff (docs/diff-rules.md)\n"
	       "  --report-dir DIR       report.json, report.html, report.xml (implies --diff)\n"
	       "  --report-every S       rewrite the reports every S seconds (default 10)\n"
	       "  --report-memcap BYTES  memory for pairs kept for the reports (default 512M)\n"
	       "  --stats                counters on stderr at the end\n"
	       "  --json                 counters as one JSON object on stdout\n"
	       "\n"
	       "exit codes: 0 done, 2 usage or input error, 3 runtime failure\n");
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct mir_lane {
	char name[64];
	const char *urls[MIR_MAX_TARGETS];
	size_t n_urls;
	double rate; /**< --lane-rate, 0 = none */
	struct replay_engine *eng;
	struct replay_guard *guard; /**< production guard; NULL with the override flag */
	uint64_t dropped_production;
	bool warned_production;
	struct shadow_bucket bucket;
	int64_t down_until; /**< monotonic ns */
	uint64_t colored;
	uint64_t submitted;
	uint64_t dropped[SHADOW_DROP_COUNT];
};

/* One mirrored request until its production session and every shadow answer are in. */
struct mir_entry {
	struct mir_entry *chain;       /**< hash chain while waiting for the production session */
	struct mir_entry *prev, *next; /**< all live entries */
	uint64_t conn_id;
	int64_t ts_first;
	int64_t req_wall_ns; /**< when the request's last byte was captured (real clock) */
	struct mir_lane *lane;
	struct store_session *prod;
	struct store_result *res[MIR_MAX_TARGETS];
	uint32_t n_done;
};

struct mir_pair {
	const struct store_session *s;
	struct store_result *r;
};

struct mir {
	struct mir_lane lanes[MIR_MAX_LANES];
	size_t n_lanes;
	uint64_t queue;
	bool allow_writes;
	bool diff;
	bool realtime;
	struct store_writer *w;
	struct redact *redact_res; /**< --redact rules applied to shadow responses; NULL none */
	struct mir_entry *hash[MIR_HASH];
	struct mir_entry all; /**< list head */
	bool kick;	      /**< something was submitted: run the engines now */
	int64_t real_offset;  /**< --realtime: real clock minus capture clock */
	/* kept for rolling reports */
	struct store_session **sessions;
	size_t n_sessions, cap_sessions;
	struct mir_pair *pairs;
	size_t n_pairs, cap_pairs;
	size_t kept_bytes, max_kept;
	struct replay_hist delay;
	/* counters */
	uint64_t requests, colored, no_lane, submitted, n_emitted, matched, diffed, differing;
	uint64_t not_kept, write_errors, report_errors, reports_written;
	uint64_t redact_errors;
};

static struct mir_lane *lane_find(struct mir *m, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < m->n_lanes; i++)
		if (strlen(m->lanes[i].name) == len && !memcmp(m->lanes[i].name, name, len))
			return &m->lanes[i];
	return NULL;
}

static size_t hash_of(uint64_t conn_id)
{
	return (size_t)((conn_id * 0x9E3779B97F4A7C15ULL) >> 52) % MIR_HASH;
}

static void entry_free(struct mir *m, struct mir_entry *e)
{
	(void)m;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	for (size_t i = 0; i < MIR_MAX_TARGETS; i++)
		shadow_free(e->res[i]);
	shadow_free(e->prod);
	mem_free(e);
}

static size_t result_size(const struct store_result *r)
{
	return sizeof(*r) + r->resp.body.len + r->resp.n_headers * 64;
}

/* Keep a pair for the reports (takes @p r), bounded by max_kept bytes. */
static bool keep_pair(struct mir *m, const struct store_session *s, struct store_result *r)
{
	if (m->kept_bytes + result_size(r) > m->max_kept)
		return false;
	if (m->n_pairs == m->cap_pairs) {
		size_t nc = m->cap_pairs ? m->cap_pairs * 2 : 256;
		struct mir_pair *np = mem_realloc(m->pairs, nc * sizeof(*np));
		if (!np)
			return false;
		m->pairs = np;
		m->cap_pairs = nc;
	}
	m->pairs[m->n_pairs++] = (struct mir_pair){s, r};
	m->kept_bytes += result_size(r);
	return true;
}

static bool keep_session(struct mir *m, struct store_session *s)
{
	size_t sz = sizeof(*s) + s->req.body.len + s->resp.body.len +
		    (s->req.n_headers + s->resp.n_headers) * 64;
	if (m->kept_bytes + sz > m->max_kept)
		return false;
	if (m->n_sessions == m->cap_sessions) {
		size_t nc = m->cap_sessions ? m->cap_sessions * 2 : 256;
		struct store_session **ns = mem_realloc(m->sessions, nc * sizeof(*ns));
		if (!ns)
			return false;
		m->sessions = ns;
		m->cap_sessions = nc;
	}
	m->sessions[m->n_sessions++] = s;
	m->kept_bytes += sz;
	return true;
}

/* Production session and all shadow answers are in: record, keep for the diff, free. */
static void entry_finish(struct mir *m, struct mir_entry *e)
{
	bool kept_s = false;
	if (e->prod) {
		if (m->diff)
			kept_s = keep_session(m, e->prod);
		for (size_t i = 0; i < e->lane->n_urls; i++) {
			struct store_result *r = e->res[i];
			if (!r)
				continue;
			r->session_id = e->prod->id;
			if (m->w && store_writer_add_result(m->w, r) < 0)
				m->write_errors++;
			if (!m->diff)
				continue;
			m->diffed++;
			if (kept_s && keep_pair(m, e->prod, r))
				e->res[i] = NULL;
			else
				m->not_kept++;
		}
		if (kept_s)
			e->prod = NULL;
	}
	entry_free(m, e);
}

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */
/* ------------------------------------------------------------------ */

static void drop(struct mir_lane *l, enum shadow_drop why)
{
	l->dropped[why]++;
}

/* A request ended in the capture: mirror it to its lane now. */
static void on_request(void *ctx, const struct store_session *s)
{
	struct mir *m = ctx;
	m->requests++;
	if (!s->lane.len)
		return;
	m->colored++;
	struct mir_lane *l = lane_find(m, s->lane.ptr, s->lane.len);
	if (!l) {
		m->no_lane++;
		return;
	}
	l->colored++;
	const char *prod_url =
	    l->guard ? replay_guard_match(l->guard, s->ip_version, &s->dst) : NULL;
	if (prod_url) {
		l->dropped_production++;
		if (!l->warned_production) {
			char ep[64];
			store_endpoint_str(s->ip_version, &s->dst, ep, sizeof(ep));
			fprintf(
			    stderr,
			    "dyetap mirror: lane %s: target '%s' is the captured server %s; its "
			    "shadow requests are dropped (counted lane_%s_dropped_production; %s "
			    "sends them)\n",
			    l->name, prod_url, ep, l->name, REPLAY_GUARD_FLAG);
			l->warned_production = true;
		}
		return;
	}
	enum shadow_drop why;
	if (!shadow_request_admit(s, m->allow_writes, &why)) {
		drop(l, why);
		return;
	}
	int64_t now = clk_mono_ns();
	if (now < l->down_until) {
		drop(l, SHADOW_DROP_TARGET_DOWN);
		return;
	}
	if (replay_engine_pending(l->eng) >= m->queue * l->n_urls) {
		drop(l, SHADOW_DROP_QUEUE_FULL);
		return;
	}
	if (!shadow_bucket_take(&l->bucket, now)) {
		drop(l, SHADOW_DROP_RATE_LIMITED);
		return;
	}
	struct mir_entry *e = mem_calloc(1, sizeof(*e));
	if (!e) {
		drop(l, SHADOW_DROP_NO_MEMORY);
		return;
	}
	e->conn_id = s->conn_id;
	e->ts_first = s->ts_req_first_ns;
	e->lane = l;
	e->req_wall_ns = src_is_live(mir_src) ? s->ts_req_last_ns
			 : m->realtime	      ? s->ts_req_last_ns + m->real_offset
					      : clk_real_ns();
	if (replay_engine_submit(l->eng, s, s->conn_id, now, e) < 0) {
		mem_free(e);
		drop(l, SHADOW_DROP_NO_MEMORY);
		return;
	}
	e->next = &m->all;
	e->prev = m->all.prev;
	m->all.prev->next = e;
	m->all.prev = e;
	struct mir_entry **pp = &m->hash[hash_of(e->conn_id)];
	while (*pp)
		pp = &(*pp)->chain;
	*pp = e;
	l->submitted++;
	m->submitted++;
	m->kick = true;
}

/* A session (request + production response) was emitted. */
static int on_session(void *ctx, const struct store_session *s)
{
	struct mir *m = ctx;
	int rc = 0;
	m->n_emitted++;
	if (m->w)
		rc = store_writer_add_session(m->w, s);
	if (!s->req.present)
		return rc;
	struct mir_entry **pp = &m->hash[hash_of(s->conn_id)];
	while (*pp && ((*pp)->conn_id != s->conn_id || (*pp)->ts_first != s->ts_req_first_ns))
		pp = &(*pp)->chain;
	struct mir_entry *e = *pp;
	if (!e)
		return rc;
	*pp = e->chain;
	e->chain = NULL;
	m->matched++;
	e->prod = shadow_session_dup(s);
	if (e->n_done == e->lane->n_urls)
		entry_finish(m, e);
	return rc;
}

/* A shadow answer (or error) from one target of a lane. */
static void on_done(void *ctx, void *user, const struct store_result *r)
{
	struct mir *m = ctx;
	struct mir_entry *e = user;
	struct mir_lane *l = e->lane;
	uint32_t i = e->n_done++;
	if (i < MIR_MAX_TARGETS && m->redact_res) {
		/* Reports and -w keep the redacted copy only (docs/mirror.md "Redaction"). */
		struct store_session in = {.resp = r->resp}, out;
		if (redact_session(m->redact_res, &in, &out) == 0) {
			struct store_result c = *r;
			c.resp = out.resp;
			e->res[i] = shadow_result_dup(&c);
		} else {
			m->redact_errors++;
		}
	} else if (i < MIR_MAX_TARGETS) {
		e->res[i] = shadow_result_dup(r);
	}
	if (r->error == STORE_ERR_REFUSED || r->error == STORE_ERR_CONNECT)
		l->down_until = clk_mono_ns() + 1000000000LL;
	if (r->ts_sent_ns > 0 && e->req_wall_ns > 0)
		replay_hist_add(&m->delay, r->ts_sent_ns - e->req_wall_ns);
	if (e->prod && e->n_done == l->n_urls)
		entry_finish(m, e);
}

/* ------------------------------------------------------------------ */
/* Counters and reports                                                */
/* ------------------------------------------------------------------ */

struct mir_ctrs {
	struct store_counter v[MIR_MAX_CTRS];
	char names[MIR_MAX_CTRS][MIR_NAME_LEN];
	size_t n;
};

static void ctr_put(struct mir_ctrs *c, uint64_t v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ctr_put(struct mir_ctrs *c, uint64_t v, const char *fmt, ...)
{
	if (c->n == MIR_MAX_CTRS)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->names[c->n], MIR_NAME_LEN, fmt, ap);
	va_end(ap);
	c->v[c->n] = (struct store_counter){c->names[c->n], v};
	c->n++;
}

/* Capture counters (src_, pipeline's) into @p c. */
static void capture_counters(struct mir_ctrs *c, const struct src_stats *ss,
			     const struct pipe *pipe)
{
	for (size_t i = 0; i < src_ctr_count; i++)
		ctr_put(c, ctr_get(ss, &src_ctr_descs[i]), "src_%s", src_ctr_descs[i].name);
	struct store_counter tmp[512];
	size_t n = pipe_counters(pipe, tmp, 512);
	if (n > 512)
		n = 512;
	for (size_t i = 0; i < n; i++)
		ctr_put(c, tmp[i].value, "%s", tmp[i].name);
}

/* Mirror counters: totals, then per lane. */
static void mirror_counters(struct mir_ctrs *c, const struct mir *m)
{
	ctr_put(c, m->requests, "mirror_requests");
	ctr_put(c, m->colored, "mirror_colored");
	ctr_put(c, m->no_lane, "mirror_colored_without_lane");
	ctr_put(c, m->submitted, "mirror_mirrored");
	ctr_put(c, m->n_emitted, "mirror_sessions");
	ctr_put(c, m->matched, "mirror_paired");
	ctr_put(c, m->diffed, "mirror_diffed");
	ctr_put(c, m->differing, "mirror_differing");
	ctr_put(c, m->not_kept, "mirror_report_pairs_over_memcap");
	ctr_put(c, m->write_errors, "mirror_write_errors");
	if (m->redact_res) {
		const struct redact_stats *rs = redact_get_stats(m->redact_res);
		ctr_put(c, rs->sessions, "mirror_results_redacted");
		ctr_put(c, rs->masked, "mirror_results_redact_masked");
		ctr_put(c, rs->dropped, "mirror_results_redact_dropped");
		ctr_put(c, m->redact_errors, "mirror_results_redact_errors");
	}
	ctr_put(c, replay_hist_pct(&m->delay, 50) / 1000, "mirror_delay_p50_us");
	ctr_put(c, replay_hist_pct(&m->delay, 99) / 1000, "mirror_delay_p99_us");
	ctr_put(c, m->delay.max_ns / 1000, "mirror_delay_max_us");
	for (size_t i = 0; i < m->n_lanes; i++) {
		const struct mir_lane *l = &m->lanes[i];
		const struct replay_stats *rs = replay_engine_stats(l->eng);
		ctr_put(c, l->colored, "lane_%s_colored", l->name);
		ctr_put(c, l->submitted, "lane_%s_mirrored", l->name);
		ctr_put(c, rs->sent, "lane_%s_sent", l->name);
		ctr_put(c, rs->ok, "lane_%s_ok", l->name);
		ctr_put(c, replay_stats_errors(rs), "lane_%s_errors", l->name);
		ctr_put(c, rs->err_refused, "lane_%s_error_refused", l->name);
		ctr_put(c, rs->err_reset, "lane_%s_error_reset", l->name);
		ctr_put(c, rs->err_timeout, "lane_%s_error_timeout", l->name);
		ctr_put(c, rs->err_connect + rs->err_tls + rs->err_bad_response + rs->err_other,
			"lane_%s_error_other", l->name);
		for (unsigned d = 0; d < SHADOW_DROP_COUNT; d++)
			ctr_put(c, l->dropped[d], "lane_%s_dropped_%s", l->name,
				shadow_drop_name(d));
		ctr_put(c, l->dropped_production, "lane_%s_dropped_production", l->name);
	}
}

static int write_atomic(const char *dir, const char *name, const struct dbuf *b)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return -errno;
	size_t n = fwrite(b->data, 1, b->len, f);
	if (fclose(f) != 0 || n != b->len) {
		unlink(tmp);
		return -EIO;
	}
	if (rename(tmp, path) != 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

struct mir_report_in {
	const char *dir;
	const struct noise_rules *rules;
	const struct src_stats *ss;
	const struct pipe *pipe;
	bool final;
};

/* Build a fresh analysis context from the kept pairs and render every report. */
static int mir_report(struct mir *m, const struct mir_report_in *in)
{
	struct diff_params dp = {.rules = in->rules};
	struct diff_ctx *c = diff_ctx_create(&dp);
	struct mir_ctrs *ctrs = mem_calloc(1, sizeof(*ctrs));
	int rc = -ENOMEM;
	if (!c || !ctrs)
		goto out;
	for (size_t i = 0; i < m->n_pairs; i++)
		if ((rc = diff_ctx_add(c, m->pairs[i].s, m->pairs[i].r, DIFF_ROLE_CANDIDATE)) < 0)
			goto out;
	capture_counters(ctrs, in->ss, in->pipe);
	if ((rc = diff_ctx_add_counters(c, "capture", ctrs->v, ctrs->n)) < 0)
		goto out;
	ctrs->n = 0;
	mirror_counters(ctrs, m);
	if ((rc = diff_ctx_add_counters(c, "mirror", ctrs->v, ctrs->n)) < 0)
		goto out;
	if (m->not_kept && (rc = diff_ctx_note_incomplete(
				c, "some mirrored pairs were over the report memory cap")) < 0)
		goto out;
	if (!in->final && (rc = diff_ctx_note_incomplete(c, "mirror still running")) < 0)
		goto out;
	if ((rc = diff_ctx_finish(c)) < 0)
		goto out;
	m->differing = diff_ctx_summary(c)->differing;
	if (!in->dir)
		goto out;
	static const struct {
		const char *name;
		int (*fn)(const struct diff_ctx *, struct dbuf *);
	} outs[] = {{"report.json", report_json},
		    {"report.html", report_html},
		    {"report.xml", report_junit}};
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		struct dbuf b;
		dbuf_init(&b, (size_t)1 << 30);
		rc = outs[i].fn(c, &b);
		if (!rc)
			rc = write_atomic(in->dir, outs[i].name, &b);
		dbuf_release(&b);
		if (rc < 0)
			goto out;
	}
	m->reports_written++;
out:
	if (rc < 0)
		m->report_errors++;
	mem_free(ctrs);
	diff_ctx_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

struct mir_opts {
	const char *files[MIR_MAX_FILES];
	size_t n_files;
	const char *iface;
	bool realtime;
	const char *colors[MIR_MAX_RULES];
	size_t n_colors;
	const char *rules_file;
	const char *out;
	bool diff;
	const char *diff_rules;
	const char *report_dir;
	int64_t report_every_ns;
	int64_t timeout_ns;
	int64_t drain_ns;
	int64_t duration_ns;
	uint64_t queue;
	bool production;
	const char *redacts[MIR_MAX_RULES];
	size_t n_redacts;
	bool redact_defaults;
	uint64_t snaplen, buffer_mb;
	bool promisc;
	bool stats, json;
	struct replay_rewrite rw;
	struct replay_hdr_set sets[MIR_MAX_HDRS];
	size_t n_sets;
	const char *dels[MIR_MAX_HDRS];
	size_t n_dels;
	struct replay_hdr_set shadow;
	struct dbuf filter;
};

enum {
	O_REALTIME = 256,
	O_COLOR,
	O_RULES,
	O_LANE,
	O_QUEUE,
	O_LANE_RATE,
	O_TIMEOUT,
	O_DRAIN,
	O_WRITES,
	O_HOST,
	O_SETH,
	O_DELH,
	O_PREFIX,
	O_SHADOW,
	O_NOSHADOW,
	O_DIFF,
	O_DIFF_RULES,
	O_REPORT_DIR,
	O_REPORT_EVERY,
	O_STATS,
	O_JSON,
	O_SNAPLEN,
	O_BUFFER,
	O_PROMISC,
	O_DURATION,
	O_PRODUCTION,
	O_REDACT,
	O_REDACT_DEFAULTS,
	O_REPORT_MEMCAP,
};

static const struct option mir_longopts[] = {
    {"interface", required_argument, NULL, 'i'},
    {"read", required_argument, NULL, 'r'},
    {"write", required_argument, NULL, 'w'},
    {"realtime", no_argument, NULL, O_REALTIME},
    {"color", required_argument, NULL, O_COLOR},
    {"rules", required_argument, NULL, O_RULES},
    {"lane", required_argument, NULL, O_LANE},
    {"queue", required_argument, NULL, O_QUEUE},
    {"lane-rate", required_argument, NULL, O_LANE_RATE},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"drain-timeout", required_argument, NULL, O_DRAIN},
    {"allow-writes", no_argument, NULL, O_WRITES},
    {"host", required_argument, NULL, O_HOST},
    {"set-header", required_argument, NULL, O_SETH},
    {"del-header", required_argument, NULL, O_DELH},
    {"path-prefix", required_argument, NULL, O_PREFIX},
    {"shadow-header", required_argument, NULL, O_SHADOW},
    {"no-shadow-header", no_argument, NULL, O_NOSHADOW},
    {"diff", no_argument, NULL, O_DIFF},
    {"diff-rules", required_argument, NULL, O_DIFF_RULES},
    {"report-dir", required_argument, NULL, O_REPORT_DIR},
    {"report-every", required_argument, NULL, O_REPORT_EVERY},
    {"stats", no_argument, NULL, O_STATS},
    {"json", no_argument, NULL, O_JSON},
    {"snaplen", required_argument, NULL, O_SNAPLEN},
    {"buffer-mb", required_argument, NULL, O_BUFFER},
    {"promisc", no_argument, NULL, O_PROMISC},
    {"duration", required_argument, NULL, O_DURATION},
    {"i-know-this-is-production", no_argument, NULL, O_PRODUCTION},
    {"redact", required_argument, NULL, O_REDACT},
    {"redact-defaults", no_argument, NULL, O_REDACT_DEFAULTS},
    {"report-memcap", required_argument, NULL, O_REPORT_MEMCAP},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define BAD(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "dyetap mirror: " __VA_ARGS__);                                    \
		fputc('\n', stderr);                                                               \
		return 2;                                                                          \
	} while (0)

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static struct mir_lane *lane_get(struct mir *m, const char *name, size_t len)
{
	struct mir_lane *l = lane_find(m, (const uint8_t *)name, len);
	if (l || m->n_lanes == MIR_MAX_LANES || len == 0 || len >= sizeof(l->name))
		return l;
	l = &m->lanes[m->n_lanes++];
	memcpy(l->name, name, len);
	l->name[len] = 0;
	return l;
}

/* --lane LANE=URL[,URL...] (optarg is modified). */
/* The lane named before '=' in "LANE=..." (created if new); *rest after '='. */
static struct mir_lane *lane_of_arg(struct mir *m, char *arg, char **rest)
{
	size_t len;
	return shadow_lane_arg(arg, &len, rest) ? NULL : lane_get(m, arg, len);
}

static int parse_lane(struct mir *m, char *arg)
{
	char *p;
	struct mir_lane *l = lane_of_arg(m, arg, &p);
	return l ? shadow_lane_urls(p, l->urls, &l->n_urls, MIR_MAX_TARGETS) : -EINVAL;
}

/* --lane-rate LANE=N[/s] */
static int parse_lane_rate(struct mir *m, char *arg)
{
	char *num;
	struct mir_lane *l = lane_of_arg(m, arg, &num);
	return l ? shadow_rate_parse(num, &l->rate) : -EINVAL;
}

static int parse_args(int argc, char **argv, struct mir_opts *o, struct mir *m)
{
	int c;
	uint64_t v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:r:w:h", mir_longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->iface = optarg;
			break;
		case 'r':
			if (o->n_files == MIR_MAX_FILES)
				BAD("too many -r files");
			o->files[o->n_files++] = optarg;
			break;
		case 'w':
			o->out = optarg;
			break;
		case O_REALTIME:
			o->realtime = true;
			break;
		case O_COLOR:
			if (o->n_colors == MIR_MAX_RULES)
				BAD("too many --color rules");
			o->colors[o->n_colors++] = optarg;
			break;
		case O_RULES:
			o->rules_file = optarg;
			break;
		case O_LANE:
			if (parse_lane(m, optarg))
				BAD("bad --lane '%s' (LANE=URL[,URL...], at most %d lanes of %d "
				    "targets)",
				    optarg, MIR_MAX_LANES, MIR_MAX_TARGETS);
			break;
		case O_LANE_RATE:
			if (parse_lane_rate(m, optarg))
				BAD("bad --lane-rate '%s' (LANE=N/s)", optarg);
			break;
		case O_QUEUE:
			if (parse_u64(optarg, &v) || v == 0 || v > 10000000)
				BAD("bad --queue '%s' (1..10000000)", optarg);
			o->queue = v;
			break;
		case O_TIMEOUT:
			if (replay_parse_duration(optarg, &o->timeout_ns) || o->timeout_ns <= 0)
				BAD("bad --timeout '%s'", optarg);
			break;
		case O_DRAIN:
			if (replay_parse_duration(optarg, &o->drain_ns) || o->drain_ns < 0)
				BAD("bad --drain-timeout '%s'", optarg);
			break;
		case O_DURATION:
			if (replay_parse_duration(optarg, &o->duration_ns) || o->duration_ns <= 0)
				BAD("bad --duration '%s'", optarg);
			break;
		case O_REPORT_EVERY:
			if (replay_parse_duration(optarg, &o->report_every_ns) ||
			    o->report_every_ns <= 0)
				BAD("bad --report-every '%s'", optarg);
			break;
		case O_WRITES:
			m->allow_writes = true;
			break;
		case O_HOST:
			o->rw.host = optarg;
			break;
		case O_SETH:
			if (o->n_sets == MIR_MAX_HDRS ||
			    replay_hdr_set_parse(optarg, &o->sets[o->n_sets]))
				BAD("bad --set-header (NAME:VALUE)");
			o->n_sets++;
			break;
		case O_DELH:
			if (o->n_dels == MIR_MAX_HDRS)
				BAD("too many --del-header");
			o->dels[o->n_dels++] = optarg;
			break;
		case O_PREFIX:
			o->rw.path_prefix = optarg;
			break;
		case O_SHADOW:
			if (replay_hdr_set_parse(optarg, &o->shadow))
				BAD("bad --shadow-header (NAME:VALUE)");
			o->rw.shadow_name = o->shadow.name;
			o->rw.shadow_value = o->shadow.value;
			break;
		case O_NOSHADOW:
			o->rw.shadow_name = NULL;
			break;
		case O_DIFF:
			o->diff = true;
			break;
		case O_DIFF_RULES:
			o->diff_rules = optarg;
			break;
		case O_REPORT_DIR:
			o->report_dir = optarg;
			o->diff = true;
			break;
		case O_STATS:
			o->stats = true;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_SNAPLEN:
			if (parse_u64(optarg, &o->snaplen) || o->snaplen > 262144)
				BAD("bad --snaplen '%s'", optarg);
			break;
		case O_BUFFER:
			if (parse_u64(optarg, &o->buffer_mb) || o->buffer_mb > 4096)
				BAD("bad --buffer-mb '%s'", optarg);
			break;
		case O_PROMISC:
			o->promisc = true;
			break;
		case O_PRODUCTION:
			o->production = true;
			break;
		case O_REDACT:
			if (o->n_redacts == MIR_MAX_RULES)
				BAD("too many --redact rules (max %d)", MIR_MAX_RULES);
			o->redacts[o->n_redacts++] = optarg;
			break;
		case O_REDACT_DEFAULTS:
			o->redact_defaults = true;
			break;
		case O_REPORT_MEMCAP:
			if (parse_u64(optarg, &v) || v > ((uint64_t)1 << 40))
				BAD("bad --report-memcap '%s' (bytes)", optarg);
			m->max_kept = (size_t)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++)
		if (dbuf_printf(&o->filter, "%s%s", i > optind ? " " : "", argv[i]) < 0)
			BAD("filter too long");
	if (!o->iface == !o->n_files)
		BAD("give either -i IFACE or -r FILE (see --help)");
	for (size_t i = 0; o->out && i < o->n_files; i++)
		if (cli_same_file(o->files[i], o->out))
			BAD("the output '%s' is also an input ('%s'): writing it would overwrite "
			    "the capture",
			    o->out, o->files[i]);
	if (o->realtime && o->iface)
		BAD("--realtime is for -r files");
	if (!m->n_lanes)
		BAD("give at least one --lane LANE=URL");
	for (size_t i = 0; i < m->n_lanes; i++)
		if (!m->lanes[i].n_urls)
			BAD("--lane-rate for lane '%s' without --lane %s=URL", m->lanes[i].name,
			    m->lanes[i].name);
	if (!o->n_colors && !o->rules_file)
		BAD("give at least one --color rule (nothing would be mirrored)");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Run                                                                 */
/* ------------------------------------------------------------------ */

/* Run every engine until @p until_ns (the first one may block until then). */
static void engines_run(struct mir *m, int64_t until_ns)
{
	for (size_t i = 0; i < m->n_lanes; i++) {
		int64_t u = i == 0 ? until_ns : clk_mono_ns() + 1000;
		(void)replay_engine_run(m->lanes[i].eng, u);
	}
	m->kick = false;
}

static uint64_t engines_pending(const struct mir *m)
{
	uint64_t n = 0;
	for (size_t i = 0; i < m->n_lanes; i++)
		n += replay_engine_pending(m->lanes[i].eng);
	return n;
}

static void print_stats(const struct mir_ctrs *c, double secs)
{
	fprintf(stderr, "dyetap mirror: counters (%.2f s):\n", secs);
	for (size_t i = 0; i < c->n; i++)
		fprintf(stderr, "  %-40s %" PRIu64 "\n", c->v[i].name, c->v[i].value);
}

static void print_json(const struct mir_ctrs *c)
{
	struct dbuf b;
	int rc = 0;
	dbuf_init(&b, 1u << 20);
	rc |= dbuf_putc(&b, '{');
	for (size_t i = 0; i < c->n; i++) {
		if (i)
			rc |= dbuf_putc(&b, ',');
		rc |= jsonw_cstr(&b, c->v[i].name);
		rc |= dbuf_printf(&b, ":%" PRIu64, c->v[i].value);
	}
	rc |= dbuf_puts(&b, "}\n");
	if (!rc)
		fwrite(b.data, 1, b.len, stdout);
	dbuf_release(&b);
}

static int run(struct mir_opts *o, struct mir *m)
{
	char err[1024] = "";
	int ret = 3;
	struct rules *rules = rules_create();
	struct noise_rules *nrules = NULL;
	struct pipe *pipe = NULL;
	struct mir_ctrs *ctrs = mem_calloc(1, sizeof(*ctrs));
	struct src_stats ss = {0};
	const char **rule_texts = NULL;
	const char **redact_texts = NULL;
	struct redact *redact = NULL;
	if (!rules || !ctrs) {
		fprintf(stderr, "dyetap mirror: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < o->n_colors; i++)
		if (rules_add(rules, o->colors[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "dyetap mirror: --color '%s': %s\n", o->colors[i], err);
			ret = 2;
			goto out;
		}
	if (o->rules_file && rules_load_file(rules, o->rules_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "dyetap mirror: --rules: %s\n", err);
		ret = 2;
		goto out;
	}
	if (o->diff_rules && !(nrules = noise_rules_load(o->diff_rules, err, sizeof(err)))) {
		fprintf(stderr, "dyetap mirror: --diff-rules: %s\n", err);
		ret = 2;
		goto out;
	}
	if (o->n_redacts || o->redact_defaults) {
		/* One rule set for sessions (in the pipeline), a copy for shadow responses. */
		redact = redact_create();
		m->redact_res = redact_create();
		if (!redact || !m->redact_res) {
			fprintf(stderr, "dyetap mirror: out of memory\n");
			goto out;
		}
		for (size_t i = 0; i < o->n_redacts; i++)
			if (redact_add(redact, o->redacts[i], err, sizeof(err)) < 0 ||
			    redact_add(m->redact_res, o->redacts[i], err, sizeof(err)) < 0) {
				fprintf(stderr, "dyetap mirror: --redact %s\n", err);
				ret = 2;
				goto out;
			}
		if (o->redact_defaults &&
		    (redact_add_defaults(redact) < 0 || redact_add_defaults(m->redact_res) < 0)) {
			fprintf(stderr, "dyetap mirror: out of memory\n");
			goto out;
		}
	}
	o->rw.set = o->sets;
	o->rw.n_set = o->n_sets;
	o->rw.del = o->dels;
	o->rw.n_del = o->n_dels;
	int64_t now0 = clk_mono_ns();
	for (size_t i = 0; i < m->n_lanes; i++) {
		struct mir_lane *l = &m->lanes[i];
		struct replay_target t[MIR_MAX_TARGETS];
		for (size_t k = 0; k < l->n_urls; k++)
			t[k] = (struct replay_target){.url = l->urls[k], .role = l->name};
		struct replay_engine_params ep = {
		    .targets = t,
		    .n_targets = l->n_urls,
		    .timeout_ns = o->timeout_ns,
		    .rewrite = &o->rw,
		    .on_done = on_done,
		    .ctx = m,
		};
		l->eng = replay_engine_create(&ep, err, sizeof(err));
		if (!l->eng) {
			fprintf(stderr, "dyetap mirror: lane %s: %s\n", l->name, err);
			ret = 2;
			goto out;
		}
		shadow_bucket_init(&l->bucket, l->rate, 0, now0);
		if (o->production)
			continue;
		/* Production guard: the captured servers are learned per request. */
		l->guard = replay_guard_create();
		if (!l->guard) {
			fprintf(stderr, "dyetap mirror: out of memory\n");
			goto out;
		}
		for (size_t k = 0; k < l->n_urls; k++)
			if (replay_guard_add_url(l->guard, l->urls[k], err, sizeof(err)) < 0) {
				fprintf(stderr, "dyetap mirror: lane %s: %s\n", l->name, err);
				ret = 2;
				goto out;
			}
	}
	if (o->production)
		fprintf(stderr, "dyetap mirror: production guard off (%s)\n", REPLAY_GUARD_FLAG);

	struct src_params sp = {
	    .files = o->files,
	    .n_files = o->n_files,
	    .iface = o->iface,
	    .filter = o->filter.len ? (const char *)o->filter.data : NULL,
	    .snaplen = (int)o->snaplen,
	    .buffer_mb = (int)o->buffer_mb,
	    .promisc = o->promisc,
	};
	mir_src = src_open(&sp, &ss, err, sizeof(err));
	if (!mir_src) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = 2;
		goto out;
	}
	if (o->out) {
		size_t n_rules, n_redact;
		rule_texts = rules_text_array(rules, &n_rules);
		redact_texts = redact_text_array(redact, &n_redact);
		if (!rule_texts || !redact_texts) {
			fprintf(stderr, "dyetap mirror: out of memory\n");
			goto out;
		}
		char host[256] = "", source[512];
		gethostname(host, sizeof(host) - 1);
		snprintf(source, sizeof(source), "mirror:%s%s",
			 o->iface ? "iface:" : "pcap:", o->iface ? o->iface : o->files[0]);
		struct store_meta meta = {
		    .kind = "results",
		    .source = source,
		    .filter = sp.filter,
		    .rules = rule_texts,
		    .n_rules = n_rules,
		    .host = host,
		    .start_ns = clk_real_ns(),
		    .redactions = redact_texts,
		    .n_redactions = n_redact,
		};
		struct store_writer_params wp = {.path = o->out, .meta = &meta, .background = true};
		m->w = store_writer_create(&wp, err, sizeof(err));
		if (!m->w) {
			fprintf(stderr, "dyetap mirror: %s\n", err);
			ret = 2;
			goto out;
		}
	}
	struct pipe_params pp = {
	    .rules = rules,
	    .redact = redact,
	    .sink = on_session,
	    .sink_ctx = m,
	    .on_request = on_request,
	};
	pipe = pipe_create(&pp);
	if (!pipe) {
		fprintf(stderr, "dyetap mirror: out of memory\n");
		goto out;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mir_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	bool live = o->iface != NULL;
	if (live) /* from here on every packet is captured (tests wait for this line) */
		fprintf(stderr, "dyetap mirror: capturing on %s, Ctrl-C to stop\n", o->iface);
	struct mir_report_in ri = {.dir = o->report_dir, .rules = nrules, .ss = &ss, .pipe = pipe};
	int64_t t0 = clk_mono_ns();
	int64_t deadline = o->duration_ns ? t0 + o->duration_ns : INT64_MAX;
	int64_t next_tick = t0 + 100000000LL;
	int64_t next_report = t0 + o->report_every_ns;
	int64_t rt_mono0 = 0, rt_ts0 = 0;
	bool rt_started = false;
	uint64_t n = 0;
	ret = 0;
	while (!mir_stop) {
		struct src_pkt pkt;
		int rc = src_next(mir_src, &pkt, 0);
		if (rc == 1) {
			if (o->realtime) {
				if (!rt_started) {
					rt_started = true;
					rt_mono0 = clk_mono_ns();
					rt_ts0 = pkt.ts_ns;
					m->real_offset = clk_real_ns() - pkt.ts_ns;
				}
				int64_t due = rt_mono0 + (pkt.ts_ns - rt_ts0);
				while (!mir_stop && clk_mono_ns() < due) {
					int64_t u = clk_mono_ns() + 1000000;
					engines_run(m, u < due ? u : due);
				}
			}
			pipe_packet(pipe, pkt.ts_ns, pkt.linktype, pkt.data, pkt.caplen,
				    pkt.wirelen);
			n++;
			if (m->kick || !(n & 63))
				engines_run(m, clk_mono_ns() + 1000);
		} else if (rc == 0) {
			engines_run(m, clk_mono_ns() + 1000000);
		} else if (rc == -ENODATA) {
			break;
		} else {
			fprintf(stderr, "dyetap mirror: %s\n", src_error(mir_src));
			ret = 3;
			break;
		}
		int64_t now = clk_mono_ns();
		if (now >= next_tick) {
			next_tick = now + 100000000LL;
			if (live)
				pipe_advance(pipe, clk_real_ns());
			if (m->w)
				(void)store_writer_tick(m->w);
			src_update_stats(mir_src);
			if (now >= deadline)
				break;
		}
		if (m->diff && o->report_dir && now >= next_report) {
			next_report = now + o->report_every_ns;
			if (mir_report(m, &ri) < 0)
				fprintf(stderr, "dyetap mirror: cannot write reports in %s\n",
					o->report_dir);
		}
	}
	src_update_stats(mir_src);
	/* End of capture: pending sessions are emitted, then shadow answers drain. */
	pipe_finish(pipe);
	int64_t drain_end = clk_mono_ns() + o->drain_ns;
	while (engines_pending(m) && clk_mono_ns() < drain_end)
		engines_run(m, clk_mono_ns() + 10000000LL);
	for (size_t i = 0; i < m->n_lanes; i++) {
		struct mir_lane *l = &m->lanes[i];
		uint64_t before = replay_engine_stats(l->eng)->not_sent;
		replay_engine_abort(l->eng);
		l->dropped[SHADOW_DROP_STOPPED] += replay_engine_stats(l->eng)->not_sent - before;
	}
	/* Entries left: requests never answered (dropped at the stop) or never paired. */
	while (m->all.next != &m->all) {
		struct mir_entry *e = m->all.next;
		struct mir_entry **hp = &m->hash[hash_of(e->conn_id)];
		while (*hp && *hp != e)
			hp = &(*hp)->chain;
		if (*hp)
			*hp = e->chain;
		entry_finish(m, e);
	}
	ri.final = true;
	if (m->diff && mir_report(m, &ri) < 0) {
		if (o->report_dir)
			fprintf(stderr, "dyetap mirror: cannot write reports in %s\n",
				o->report_dir);
		ret = 3;
	}
	ctrs->n = 0;
	capture_counters(ctrs, &ss, pipe);
	mirror_counters(ctrs, m);
	ctr_put(ctrs, m->reports_written, "mirror_reports_written");
	ctr_put(ctrs, m->report_errors, "mirror_report_errors");
	uint64_t lost = pipe_get_stats(pipe)->sink_errors + m->write_errors;
	if (m->w && lost) {
		/* Records were made but are not in the file: say so, and fail. */
		fprintf(stderr,
			"dyetap mirror: %" PRIu64 " records could not be written to %s (%s)\n",
			lost, o->out,
			*store_writer_error(m->w) ? store_writer_error(m->w) : "see redact_errors");
		ret = 3;
	}
	if (m->w) {
		int rc = store_writer_close(m->w, ctrs->v, ctrs->n, err, sizeof(err));
		m->w = NULL;
		if (rc < 0) {
			fprintf(stderr, "dyetap mirror: %s\n", err);
			ret = 3;
		}
	}
	if (o->stats)
		print_stats(ctrs, (double)(clk_mono_ns() - t0) / 1e9);
	if (o->json)
		print_json(ctrs);
out:
	for (size_t i = 0; i < m->n_lanes; i++) {
		replay_engine_free(m->lanes[i].eng);
		replay_guard_free(m->lanes[i].guard);
	}
	for (size_t i = 0; i < m->n_pairs; i++)
		shadow_free(m->pairs[i].r);
	for (size_t i = 0; i < m->n_sessions; i++)
		shadow_free(m->sessions[i]);
	mem_free(m->pairs);
	mem_free(m->sessions);
	store_writer_free(m->w);
	pipe_free(pipe);
	src_close(mir_src);
	mir_src = NULL;
	noise_rules_free(nrules);
	rules_free(rules);
	mem_free(rule_texts);
	mem_free(redact_texts);
	redact_free(redact);
	redact_free(m->redact_res);
	mem_free(ctrs);
	return ret;
}

int cmd_mirror(int argc, char **argv)
{
	struct mir_opts *o = mem_calloc(1, sizeof(*o));
	struct mir *m = mem_calloc(1, sizeof(*m));
	int ret = 3;
	if (!o || !m) {
		fprintf(stderr, "dyetap mirror: out of memory\n");
		goto out;
	}
	dbuf_init(&o->filter, 1u << 16);
	o->rw.shadow_name = "x-dyetap-shadow";
	o->rw.shadow_value = "1";
	o->queue = 1000;
	o->drain_ns = 5000000000LL;
	o->report_every_ns = 10000000000LL;
	m->all.next = m->all.prev = &m->all;
	m->max_kept = (size_t)512 << 20;
	ret = parse_args(argc, argv, o, m);
	if (ret)
		goto out;
	m->queue = o->queue;
	m->diff = o->diff;
	m->realtime = o->realtime;
	ret = run(o, m);
out:
	if (o)
		dbuf_release(&o->filter);
	mem_free(o);
	mem_free(m);
	return ret;
}
