/* SPDX-License-Identifier: MIT */
/*
 * dyetap mirror - live shadow mirroring: colored production requests are
 * sent to their lane's targets as soon as their last byte is captured,
 * each shadow response is paired with the captured production response
 * and diffed, rolling reports are rewritten, and -w records both.
 *
 * Wiring only (docs/architecture.md): capture/source.h reads packets,
 * capture/recorder.h (the pipeline with its on_request hook, redaction,
 * the -w store) turns them into requests and sessions, replay/shadow_core.h
 * decides, sends (one replay engine per lane), limits and pairs - the same
 * core as the fast path's - and analysis/diff.h and report.h compare and
 * render. Two threads (docs/architecture.md "Threads"):
 *  - the capture thread (this file's loop) reads packets, parses, colors,
 *    records (-w), runs the shadow core's classify step and hands each
 *    accepted request, and with -w or --diff each production session of a
 *    lane, to the sender over a bounded queue (replay/shadow_sender.h): a
 *    full queue is a counted drop (mirror_sender_queue_full), never a wait
 *    (except for -r without --realtime, where waiting loses nothing);
 *    it also serves --control and --metrics, writes the shadow answers
 *    with -w and builds the reports;
 *  - the sender thread owns the lane engines: submit, send, answers,
 *    pairing. Completed pairs come back to the capture thread over a
 *    bounded list (mir_done) taken without waiting (trylock).
 * So a slow or dead target never stops packet reading. The manual is
 * docs/mirror.md.
 *
 * Operations (docs/operations.md): --control and --metrics are served by
 * common/ctl.h from the capture loop, every 10 ms at most apart, so a
 * pause (replay/shadow_ctl.h, an atomic the classify step reads) applies
 * to every request classified after its reply. `reload` compiles the
 * color rules again on the capture thread; whatever must change in the
 * shadow core itself goes through shadow_sender_call(), which runs it on
 * the sender thread while the capture thread waits, after the sender took
 * everything queued before: no request classified under the old lanes is
 * submitted under the new ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/diff.h"
#include "analysis/noise.h"
#include "analysis/report.h"
#include "capture/pipeline.h"
#include "capture/recorder.h"
#include "capture/rules.h"
#include "capture/source.h"
#include "cli/cmds.h"
#include "common/cfgfile.h"
#include "common/clock.h"
#include "common/counters.h"
#include "common/ctl.h"
#include "common/dbuf.h"
#include "common/mem.h"
#include "common/units.h"
#include "replay/replay_guard.h"
#include "replay/shadow.h"
#include "replay/shadow_core.h"
#include "replay/shadow_ctl.h"
#include "replay/shadow_sender.h"
#include "store/store.h"
#include "dyetap_version.h"

/* Live: the kernel hands packets over in blocks, at the latest after this
 * many ms (TPACKET_V3; docs/mirror.md "Capture"). */
#define MIR_BLOCK_MS 1

static struct src *mir_src;
static volatile sig_atomic_t mir_stop;
static volatile sig_atomic_t mir_hup; /* SIGHUP: reload */

static void mir_on_signal(int sig)
{
	(void)sig;
	mir_stop = 1;
	if (mir_src)
		src_break(mir_src);
}

static void mir_on_hup(int sig)
{
	(void)sig;
	mir_hup = 1;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: dyetap mirror (-i IFACE | -r FILE [--realtime]) [BPF FILTER]\n"
	    "                     --color LANE=MATCH[,MATCH...]... --lane LANE=URL[,URL...]...\n"
	    "                     [-w REC.dyt] [--diff] [--report-dir DIR] [options]\n"
	    "\n"
	    "Copy colored production requests to their lane's targets as soon as they are\n"
	    "captured, compare each shadow response with the production response, and\n"
	    "keep rolling reports. Production traffic is only read, never touched.\n"
	    "HTTP/1.x and h2c (HTTP/2 over cleartext TCP, by prior knowledge or Upgrade:\n"
	    "h2c) are captured; h2c requests go to the lanes over HTTP/2 (docs/http2.md).\n"
	    "A CONNECT or a request offering Upgrade (the one that switches a connection\n"
	    "to h2c too) is not mirrored: dropped, counted unsupported (docs/mirror.md).\n"
	    "\n"
	    "input:\n"
	    "  -i, --interface IFACE  capture live (needs root or CAP_NET_RAW)\n"
	    "  -r, --read FILE        pcap/pcapng file instead (repeatable)\n"
	    "  --realtime             -r: play packets at their recorded pace\n"
	    "  BPF FILTER             trailing words, tcpdump syntax\n"
	    "  --snaplen BYTES, --buffer-mb MB, --promisc   live capture settings\n"
	    "  --block-ms MS          live: the kernel hands packets over in blocks, at the\n"
	    "                         latest after MS ms (default 1; blocks hold far more\n"
	    "                         packets per --buffer-mb than immediate mode)\n"
	    "  --immediate            live: take each packet at once (--block-ms 0)\n"
	    "  --duration S           stop after S seconds\n"
	    "  --color LANE=MATCH,... color rule (docs/rules.md); repeat\n"
	    "  --rules FILE           color rules, one per line\n"
	    "lanes and shadow requests:\n"
	    "%s"
	    "  --sender-queue N       requests waiting for the sender thread at most\n"
	    "                         (default 4096; beyond: dropped, counted\n"
	    "                         mirror_sender_queue_full)\n"
	    "output:\n"
	    "  -w, --write REC.dyt    record sessions and shadow results (kind results)\n"
	    "  --redact KIND:NAME[:mask|drop], --redact-defaults   as dyetap record: mask\n"
	    "                         secrets in what -w writes and reports show (the\n"
	    "                         shadow request itself is sent unchanged)\n"
	    "  --diff                 diff shadow against production responses\n"
	    "  --diff-rules FILE      noise rules for the diff (docs/diff-rules.md)\n"
	    "  --report-dir DIR       report.json, report.html, report.xml (implies --diff;\n"
	    "                         created, mode 0700, when missing)\n"
	    "  --report-every S       rewrite the reports every S seconds (default 10)\n"
	    "  --report-memcap SIZE   memory for pairs kept for the reports (default 512M;\n"
	    "                         k, M or G suffix)\n"
	    "  --stats                counters on stderr at the end\n"
	    "  --json                 counters as one JSON object on stdout\n"
	    "operations (docs/operations.md):\n"
	    "  --config FILE          options from FILE, one per line: `lane blue=URL`,\n"
	    "                         `filter tcp port 80`; the command line comes after\n"
	    "  --control PATH         control socket (0600) for `dyetap ctl PATH COMMAND`:\n"
	    "                         lanes, pause, resume, rate, reload, stats\n"
	    "  SIGHUP                 reload: --config FILE, --rules FILE and the options are\n"
	    "                         read again; rules, lanes, targets and rates switch at\n"
	    "                         once (a refused file changes nothing)\n"
	    "  --metrics HOST:PORT    serve GET /metrics (Prometheus text format)\n"
	    "\n"
	    "exit codes: 0 done, 2 usage or input error, 3 runtime failure\n",
	    shadow_conf_help);
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct mir_pair {
	const struct store_session *s;
	struct store_result *r;
};

/* Pairs waiting for the capture thread at most (beyond: mirror_pairs_lost). */
#define MIR_DONE_MAX 65536

/** A completed pair handed back from the sender thread (on_pair). */
struct mir_done {
	struct mir_done *next;
	struct store_session *prod; /* owned */
	struct store_result *res[SHADOW_MAX_TARGETS];
	unsigned n_res;
};

struct mir {
	struct shadow_core *core;
	struct shadow_sender *snd;
	struct recorder *rec;
	bool diff;
	bool live;
	bool realtime;
	/* completed pairs: the sender thread appends, the capture thread takes */
	pthread_mutex_t done_mu;
	struct mir_done *done_head, **done_tail;
	size_t done_n;	     /* atomic: pairs in the list */
	uint64_t pairs_lost; /* sender thread: over MIR_DONE_MAX or out of memory */
	int64_t real_offset; /**< --realtime: real clock minus capture clock */
	/* kept for rolling reports */
	struct store_session **sessions;
	size_t n_sessions, cap_sessions;
	struct mir_pair *pairs;
	size_t n_pairs, cap_pairs;
	size_t kept_bytes, max_kept;
	/* counters of mirror's own */
	uint64_t n_emitted, diffed, differing, not_kept, report_errors, reports_written;
	/* operations: --control, --metrics, reload */
	struct ctl_server *ctl;
	const struct src_stats *ss;
	int argc; /* the command line, parsed again by each reload */
	char **argv;
	struct rules *reloaded[64]; /* every set ever in use: lane names stay valid */
	size_t n_reloaded;
	uint64_t reloads, reload_errors;
};

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

/* ------------------------------------------------------------------ */
/* Hooks                                                               */
/* ------------------------------------------------------------------ */

/* A request ended in the capture: the shadow core decides and sends now. */
static void on_request(void *ctx, const struct store_session *s)
{
	struct mir *m = ctx;
	/* When the request's last byte was captured, on the real clock (mirror_delay_*). */
	int64_t req_ns = m->live       ? s->ts_req_last_ns
			 : m->realtime ? s->ts_req_last_ns + m->real_offset
				       : clk_real_ns();
	(void)shadow_sender_request(m->snd, 0, s, s->conn_id, req_ns);
}

/* A session (request + production response) was emitted, and written with -w. */
static int on_session(void *ctx, const struct store_session *s)
{
	struct mir *m = ctx;
	m->n_emitted++;
	shadow_sender_session(m->snd, 0, s->conn_id, s);
	return 0;
}

/*
 * Sender thread: a mirrored request's production session and every shadow
 * answer are in. They are handed to the capture thread, which owns the
 * recording (-w) and the reports (done_take()).
 */
static void on_pair(void *ctx, struct shadow_pair *p)
{
	struct mir *m = ctx;
	struct mir_done *d;
	if (!p->prod)
		return; /* never paired (counted mirror_unpaired): no session to link to */
	if (__atomic_load_n(&m->done_n, __ATOMIC_RELAXED) >= MIR_DONE_MAX ||
	    !(d = mem_calloc(1, sizeof(*d)))) {
		__atomic_store_n(&m->pairs_lost, m->pairs_lost + 1, __ATOMIC_RELAXED);
		return;
	}
	d->prod = p->prod;
	p->prod = NULL;
	for (unsigned i = 0; i < p->n_res && i < SHADOW_MAX_TARGETS; i++) {
		d->res[d->n_res++] = p->res[i];
		p->res[i] = NULL;
	}
	pthread_mutex_lock(&m->done_mu);
	*m->done_tail = d;
	m->done_tail = &d->next;
	__atomic_store_n(&m->done_n, m->done_n + 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&m->done_mu);
}

/* Capture thread: write and keep one completed pair; frees @p d. */
static void done_one(struct mir *m, struct mir_done *d)
{
	bool kept_s = false;
	if (m->diff)
		kept_s = keep_session(m, d->prod);
	for (unsigned i = 0; i < d->n_res; i++) {
		struct store_result *r = d->res[i];
		if (!r)
			continue;
		r->session_id = d->prod->id;
		if (recorder_has_file(m->rec))
			(void)recorder_add_result(m->rec, r); /* a refusal is counted there */
		if (m->diff) {
			m->diffed++;
			if (kept_s && keep_pair(m, d->prod, r))
				r = NULL;
			else
				m->not_kept++;
		}
		shadow_free(r);
	}
	if (!kept_s)
		shadow_free(d->prod);
	mem_free(d);
}

/*
 * Capture thread: take the completed pairs. @p wait false: only when the
 * list is free this instant (the capture thread never waits on the sender).
 */
static void done_take(struct mir *m, bool wait)
{
	struct mir_done *d;
	if (!__atomic_load_n(&m->done_n, __ATOMIC_RELAXED))
		return;
	if (wait)
		pthread_mutex_lock(&m->done_mu);
	else if (pthread_mutex_trylock(&m->done_mu))
		return;
	d = m->done_head;
	m->done_head = NULL;
	m->done_tail = &m->done_head;
	__atomic_store_n(&m->done_n, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&m->done_mu);
	while (d) {
		struct mir_done *next = d->next;
		done_one(m, d);
		d = next;
	}
}

/* ------------------------------------------------------------------ */
/* Counters and reports                                                */
/* ------------------------------------------------------------------ */

/* The shadow core's counters (mirror_*, lane_L_*), then mirror's own. */
static int mirror_counters(const struct mir *m, struct ctr_set *c)
{
	struct shadow_stats t;
	struct shadow_sender_stats ss;
	shadow_sender_sum(m->snd, &t);
	shadow_sender_stats(m->snd, &ss);
	int rc = shadow_core_counters(m->core, &t, "mirror_", "lane_", c);
	rc |= ctr_set_table(c, "mirror_", &ss, shadow_sender_ctr_descs, shadow_sender_ctr_count);
	rc |=
	    ctr_set_put(c, __atomic_load_n(&m->pairs_lost, __ATOMIC_RELAXED), "mirror_pairs_lost");
	rc |= ctr_set_put(c, m->n_emitted, "mirror_sessions");
	rc |= ctr_set_put(c, m->diffed, "mirror_diffed");
	rc |= ctr_set_put(c, m->differing, "mirror_differing");
	rc |= ctr_set_put(c, m->not_kept, "mirror_report_pairs_over_memcap");
	rc |= ctr_set_put(c, recorder_write_errors(m->rec), "mirror_write_errors");
	rc |= recorder_result_counters(m->rec, "mirror_", c);
	rc |= ctr_set_put(c, m->reloads, "mirror_reloads");
	rc |= ctr_set_put(c, m->reload_errors, "mirror_reload_errors");
	if (m->ctl)
		rc |= ctr_set_table(c, "ctl_", ctl_server_stats(m->ctl), ctl_ctr_descs,
				    ctl_ctr_count);
	return rc ? -ENOMEM : 0;
}

/* ------------------------------------------------------------------ */
/* Operations: the control socket and /metrics (common/ctl.h)          */
/* ------------------------------------------------------------------ */

/* Every counter as the end of the run shows them, as they are now. */
static int live_counters(struct mir *m, struct ctr_set *set)
{
	int rc = recorder_counters(m->rec, m->ss, set);
	rc |= mirror_counters(m, set);
	rc |= ctr_set_put(set, m->reports_written, "mirror_reports_written");
	rc |= ctr_set_put(set, m->report_errors, "mirror_report_errors");
	return rc ? -ENOMEM : 0;
}

static int mir_reload(struct mir *m, struct dbuf *out, char *err, size_t errlen);

static int on_ctl(void *ctx, int argc, char **argv, struct dbuf *out, char *err, size_t errlen)
{
	struct mir *m = ctx;
	struct shadow_stats t;
	shadow_sender_sum(m->snd, &t);
	int rc = shadow_ctl_command(m->core, &t, argc, argv, out, err, errlen);
	if (rc != -ENOENT)
		return rc;
	if (!strcmp(argv[0], "stats")) {
		struct ctr_set *set = ctr_set_create(0);
		rc = set ? live_counters(m, set) : -ENOMEM;
		if (!rc && !(rc = dbuf_putc(out, '{')) && !(rc = ctr_set_json(set, out)))
			rc = dbuf_puts(out, "}\n");
		ctr_set_free(set);
		if (rc)
			snprintf(err, errlen, "out of memory");
		return rc;
	}
	if (!strcmp(argv[0], "reload")) {
		if ((rc = mir_reload(m, out, err, errlen)) < 0) {
			fprintf(stderr, "dyetap mirror: reload: %s\n", err);
			return rc;
		}
		fprintf(stderr, "dyetap mirror: reload: %.*s", (int)out->len,
			(const char *)out->data);
		return 0;
	}
	if (!strcmp(argv[0], "help")) {
		dbuf_puts(out, shadow_ctl_help);
		return 0;
	}
	snprintf(err, errlen, "unknown command '%s' (try: help)", argv[0]);
	return -EINVAL;
}

static int on_metrics(void *ctx, struct dbuf *out)
{
	struct mir *m = ctx;
	struct ctr_set *set = ctr_set_create(0);
	struct ctl_prom *p = ctl_prom_create();
	const char *lanes[SHADOW_MAX_LANES];
	size_t n = shadow_core_lanes(m->core);
	int rc = -ENOMEM;
	if (!set || !p)
		goto out;
	for (size_t i = 0; i < n; i++)
		lanes[i] = shadow_core_lane_name(m->core, (unsigned)i);
	if ((rc = live_counters(m, set)) < 0 ||
	    (rc = ctl_prom_add_set(p, set, "lane_", lanes, n)) < 0 ||
	    (rc = shadow_ctl_prom(m->core, p)) < 0 ||
	    (rc = ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_build_info",
			       "the running program and its version", "program", "mirror",
			       "version", DYETAP_VERSION, 1)) < 0)
		goto out;
	rc = ctl_prom_render(p, out);
out:
	ctl_prom_free(p);
	ctr_set_free(set);
	return rc;
}

/* Write @p b as DIR/NAME through a temporary name: readers never see half a
 * report. Owner-only (0600), like store files and dyetap diff's reports. */
static int write_atomic(const char *dir, const char *name, const struct dbuf *b)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) != 0) {
		int rc = -errno;
		close(fd);
		unlink(tmp);
		return rc;
	}
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	size_t n = b->len ? fwrite(b->data, 1, b->len, f) : 0;
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

/* --report-dir: created (0700) when missing, refused when it is not a
 * writable directory, before the capture starts. */
static int report_dir_ready(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "--report-dir %s: cannot create it: %s", dir,
			 strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--report-dir %s: not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "--report-dir %s: cannot write there: %s", dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct mir_report_in {
	const char *dir;
	const struct noise_rules *rules;
	const struct src_stats *ss;
	bool final;
};

/* Counters of @p set for the analysis context under @p source. */
static int add_counters(struct diff_ctx *c, const char *source, const struct ctr_set *set)
{
	size_t n;
	struct store_counter *v = recorder_store_counters(set, &n);
	int rc = v ? diff_ctx_add_counters(c, source, v, n) : -ENOMEM;
	mem_free(v);
	return rc;
}

/* Build a fresh analysis context from the kept pairs and render every report. */
static int mir_report(struct mir *m, const struct mir_report_in *in)
{
	struct diff_params dp = {.rules = in->rules};
	struct diff_ctx *c = diff_ctx_create(&dp);
	struct ctr_set *ctrs = ctr_set_create(0);
	int rc = -ENOMEM;
	if (!c || !ctrs)
		goto out;
	for (size_t i = 0; i < m->n_pairs; i++)
		if ((rc = diff_ctx_add(c, m->pairs[i].s, m->pairs[i].r, DIFF_ROLE_CANDIDATE)) < 0)
			goto out;
	if ((rc = recorder_counters(m->rec, in->ss, ctrs)) < 0 ||
	    (rc = add_counters(c, "capture", ctrs)) < 0)
		goto out;
	ctr_set_clear(ctrs);
	if ((rc = mirror_counters(m, ctrs)) < 0 || (rc = add_counters(c, "mirror", ctrs)) < 0)
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
	ctr_set_free(ctrs);
	diff_ctx_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

struct mir_opts {
	struct recorder_conf rc; /* input, rules, redaction (shared with record) */
	bool realtime;
	const char *out;
	bool diff;
	const char *diff_rules;
	const char *report_dir;
	int64_t report_every_ns;
	int64_t duration_ns;
	uint64_t report_memcap;
	uint64_t block_ms;     /* live: block timeout (TPACKET_V3); 0 = immediate mode */
	uint64_t sender_queue; /* --sender-queue: capture -> sender thread */
	bool stats, json;
	const char *control;
	const char *metrics;
	struct cfg cfg;	  /* --config: the strings the options borrow */
	char *cfg_filter; /* its `filter` line */
	struct shadow_conf sc;
};

enum {
	O_REALTIME = 256,
	O_REC_OPT,    /* every option of capture/recorder.h: looked up by name */
	O_SHADOW_OPT, /* every option of replay/shadow_core.h: looked up by name */
	O_DIFF,
	O_DIFF_RULES,
	O_REPORT_DIR,
	O_REPORT_EVERY,
	O_STATS,
	O_JSON,
	O_DURATION,
	O_REPORT_MEMCAP,
	O_BLOCK_MS,
	O_IMMEDIATE,
	O_CONTROL,
	O_METRICS,
	O_CONFIG,
	O_SENDER_QUEUE,
};

static const struct option mir_longopts[] = {
    {"interface", required_argument, NULL, O_REC_OPT},
    {"read", required_argument, NULL, O_REC_OPT},
    {"write", required_argument, NULL, 'w'},
    {"realtime", no_argument, NULL, O_REALTIME},
    {"color", required_argument, NULL, O_REC_OPT},
    {"rules", required_argument, NULL, O_REC_OPT},
    {"lane", required_argument, NULL, O_SHADOW_OPT},
    {"queue", required_argument, NULL, O_SHADOW_OPT},
    {"lane-rate", required_argument, NULL, O_SHADOW_OPT},
    {"timeout", required_argument, NULL, O_SHADOW_OPT},
    {"drain-timeout", required_argument, NULL, O_SHADOW_OPT},
    {"allow-writes", no_argument, NULL, O_SHADOW_OPT},
    {"i-know-this-is-production", no_argument, NULL, O_SHADOW_OPT},
    {"insecure", no_argument, NULL, O_SHADOW_OPT},
    {"ca", required_argument, NULL, O_SHADOW_OPT},
    {"sni", required_argument, NULL, O_SHADOW_OPT},
    {"host", required_argument, NULL, O_SHADOW_OPT},
    {"set-header", required_argument, NULL, O_SHADOW_OPT},
    {"del-header", required_argument, NULL, O_SHADOW_OPT},
    {"path-prefix", required_argument, NULL, O_SHADOW_OPT},
    {"shadow-header", required_argument, NULL, O_SHADOW_OPT},
    {"no-shadow-header", no_argument, NULL, O_SHADOW_OPT},
    {"diff", no_argument, NULL, O_DIFF},
    {"diff-rules", required_argument, NULL, O_DIFF_RULES},
    {"report-dir", required_argument, NULL, O_REPORT_DIR},
    {"report-every", required_argument, NULL, O_REPORT_EVERY},
    {"stats", no_argument, NULL, O_STATS},
    {"json", no_argument, NULL, O_JSON},
    {"snaplen", required_argument, NULL, O_REC_OPT},
    {"buffer-mb", required_argument, NULL, O_REC_OPT},
    {"promisc", no_argument, NULL, O_REC_OPT},
    {"block-ms", required_argument, NULL, O_BLOCK_MS},
    {"immediate", no_argument, NULL, O_IMMEDIATE},
    {"duration", required_argument, NULL, O_DURATION},
    {"redact", required_argument, NULL, O_REC_OPT},
    {"redact-defaults", no_argument, NULL, O_REC_OPT},
    {"report-memcap", required_argument, NULL, O_REPORT_MEMCAP},
    {"control", required_argument, NULL, O_CONTROL},
    {"metrics", required_argument, NULL, O_METRICS},
    {"config", required_argument, NULL, O_CONFIG},
    {"sender-queue", required_argument, NULL, O_SENDER_QUEUE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Refuse the options with a message in the caller's err/errlen (in scope). */
#define BAD(...)                                                                                   \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		return 2;                                                                          \
	} while (0)

/*
 * Apply option @p c (its long name @p name) with @p arg, from the command
 * line or a --config line. @return 0, or -EINVAL with a message in @p err.
 */
static int apply_opt(struct mir_opts *o, int c, const char *name, char *arg, char *err,
		     size_t errlen)
{
	const char *rec = c == 'r' ? "read" : c == 'i' ? "interface" : c == O_REC_OPT ? name : NULL;
	if (rec)
		return recorder_conf_option(&o->rc, rec, arg, err, errlen) < 0 ? -EINVAL : 0;
	switch (c) {
	case 'w':
		o->out = arg;
		return 0;
	case O_REALTIME:
		o->realtime = true;
		return 0;
	case O_SHADOW_OPT:
		return shadow_conf_option(&o->sc, name, arg, err, errlen) < 0 ? -EINVAL : 0;
	case O_DURATION:
		if (replay_parse_duration(arg, &o->duration_ns) || o->duration_ns <= 0)
			goto bad;
		return 0;
	case O_REPORT_EVERY:
		if (replay_parse_duration(arg, &o->report_every_ns) || o->report_every_ns <= 0)
			goto bad;
		return 0;
	case O_DIFF:
		o->diff = true;
		return 0;
	case O_DIFF_RULES:
		o->diff_rules = arg;
		return 0;
	case O_REPORT_DIR:
		o->report_dir = arg;
		o->diff = true;
		return 0;
	case O_STATS:
		o->stats = true;
		return 0;
	case O_JSON:
		o->json = true;
		return 0;
	case O_REPORT_MEMCAP:
		if (units_parse_size(arg, &o->report_memcap) ||
		    o->report_memcap > ((uint64_t)1 << 40)) {
			snprintf(err, errlen,
				 "bad --report-memcap '%s' (" UNITS_SIZE_HELP ", at most 1T)", arg);
			return -EINVAL;
		}
		return 0;
	case O_BLOCK_MS: {
		char *end;
		errno = 0;
		unsigned long v = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || *arg == '-' || v > 1000) {
			snprintf(err, errlen, "bad --block-ms '%s' (0 to 1000)", arg);
			return -EINVAL;
		}
		o->block_ms = v;
		return 0;
	}
	case O_IMMEDIATE:
		o->block_ms = 0;
		return 0;
	case O_SENDER_QUEUE: {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || *arg == '-' || !v || v > 1000000) {
			snprintf(err, errlen, "bad --sender-queue '%s' (1 to 1000000)", arg);
			return -EINVAL;
		}
		o->sender_queue = v;
		return 0;
	}
	case O_CONTROL:
		o->control = arg;
		return 0;
	case O_METRICS:
		o->metrics = arg;
		return 0;
	case O_CONFIG:
		return 0; /* read before the other options */
	default:
		snprintf(err, errlen, "unknown option '%s'", name);
		return -EINVAL;
	}
bad:
	snprintf(err, errlen, "bad --%s '%s'", name, arg);
	return -EINVAL;
}

/*
 * --config FILE (docs/operations.md "Config file"): its lines are applied
 * first, with the options' own parser; the command line comes after, so a
 * single-valued option there replaces the file's and a repeatable one
 * (--color, --lane, --redact, ...) adds to them. Errors name file and line.
 */
static int apply_config(struct mir_opts *o, const char *path, char *err, size_t errlen)
{
	char e[900];
	if (cfg_load(path, &o->cfg, e, sizeof(e)) < 0)
		BAD("--config %s", e);
	for (size_t i = 0; i < o->cfg.n; i++) {
		const struct cfg_entry *en = &o->cfg.entries[i];
		const struct option *opt = NULL;
		for (size_t k = 0; mir_longopts[k].name && !opt; k++)
			if (!strcmp(mir_longopts[k].name, en->name))
				opt = &mir_longopts[k];
		if (!strcmp(en->name, "filter")) {
			o->cfg_filter = en->value;
			continue;
		}
		if (!opt || opt->val == 'h' || opt->val == O_CONFIG)
			BAD("%s:%u: '%s' is not an option of dyetap mirror here (see --help)", path,
			    en->line, en->name);
		if (opt->has_arg == required_argument && !en->value)
			BAD("%s:%u: %s needs a value: '%s VALUE'", path, en->line, en->name,
			    en->name);
		if (opt->has_arg == no_argument && en->value)
			BAD("%s:%u: %s takes no value", path, en->line, en->name);
		if (apply_opt(o, opt->val, opt->name, en->value, e, sizeof(e)) < 0)
			BAD("%s:%u: %s", path, en->line, e);
	}
	return 0;
}

/*
 * The options: --config FILE first, then the command line. Run at start and
 * again by each reload (@p reload: getopt quiet; the command line was
 * accepted at start). @return 0, or 2 with a message in @p err.
 */
static int parse_args(int argc, char **argv, struct mir_opts *o, bool reload, char *err,
		      size_t errlen)
{
	char e[1024];
	int c, li = -1;
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *path = !strcmp(argv[i], "--config") && i + 1 < argc ? argv[i + 1]
				   : !strncmp(argv[i], "--config=", 9)		? argv[i] + 9
										: NULL;
		if (path) {
			if (o->cfg.text)
				BAD("--config given twice");
			if (apply_config(o, path, err, errlen))
				return 2;
		}
	}
	optind = 0; /* a full restart of getopt: a reload parses again */
	opterr = !reload;
	while ((c = getopt_long(argc, argv, "i:r:w:h", mir_longopts, &li)) != -1) {
		if (c == 'h' && !reload) {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || c == 'h') {
			if (!reload)
				usage(stderr);
			BAD("bad command line (see --help)");
		}
		const char *name = li >= 0    ? mir_longopts[li].name
				   : c == 'r' ? "read"
				   : c == 'i' ? "interface"
					      : "write";
		if (apply_opt(o, c, name, optarg, e, sizeof(e)) < 0)
			BAD("%s", e);
		li = -1;
	}
	char *cfilter[1] = {o->cfg_filter};
	if (argc - optind == 0 && o->cfg_filter) {
		if (recorder_conf_filter(&o->rc, 1, cfilter) < 0)
			BAD("filter too long");
	} else if (recorder_conf_filter(&o->rc, argc - optind, argv + optind) < 0) {
		BAD("filter too long");
	}
	if (recorder_conf_check(&o->rc, o->out, e, sizeof(e)))
		BAD("%s (see --help)", e);
	if (o->realtime && o->rc.iface)
		BAD("--realtime is for -r files");
	if (shadow_conf_check(&o->sc, e, sizeof(e)))
		BAD("%s", e);
	if (!o->rc.n_colors && !o->rc.rules_file)
		BAD("give at least one --color rule (nothing would be mirrored)");
	return 0;
}

static void opts_init(struct mir_opts *o)
{
	recorder_conf_init(&o->rc);
	shadow_conf_init(&o->sc);
	o->report_every_ns = 10000000000LL;
	o->report_memcap = (uint64_t)512 << 20;
	o->block_ms = MIR_BLOCK_MS;
	o->sender_queue = SHADOW_SENDER_QUEUE_DEFAULT;
}

static void opts_free(struct mir_opts *o)
{
	if (o) {
		recorder_conf_release(&o->rc);
		cfg_release(&o->cfg);
	}
	mem_free(o);
}

/*
 * `reload` and SIGHUP (docs/operations.md "reload"): read --config FILE and
 * the command line again, exactly as at start, compile the color rules
 * (--color, --rules FILE) and prepare the shadow core's new lanes,
 * targets and rates; only when all of it is accepted do both switch, here,
 * between two packets: the pipeline colors what it emits from then on
 * with the new rules (flows, reassembly and pending requests go on) and
 * the core sends to the new lanes. A refusal changes nothing. Options
 * other than rules, lanes and shadow settings (input, -w, reports,
 * redaction) keep the values they started with.
 */
/* On the sender thread (shadow_sender_call): the prepared switch. */
static int mir_apply(struct shadow_core *c, void *ctx)
{
	(void)ctx;
	return shadow_core_apply(c);
}

static int mir_reload(struct mir *m, struct dbuf *out, char *err, size_t errlen)
{
	char e[1200];
	int rc = -EINVAL;
	struct rules *r = NULL;
	struct mir_opts *o = mem_calloc(1, sizeof(*o));
	if (m->n_reloaded == sizeof(m->reloaded) / sizeof(m->reloaded[0])) {
		snprintf(err, errlen, "reloaded %zu times already: restart dyetap mirror",
			 m->n_reloaded);
		rc = -ENOSPC;
		goto fail;
	}
	if (!o || !(r = rules_create())) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	opts_init(o);
	if (parse_args(m->argc, m->argv, o, true, e, sizeof(e))) {
		snprintf(err, errlen, "%s (nothing changed)", e);
		goto fail;
	}
	for (size_t i = 0; i < o->rc.n_colors; i++)
		if ((rc = rules_add(r, o->rc.colors[i], e, sizeof(e))) < 0) {
			snprintf(err, errlen, "--color '%s': %s (nothing changed)", o->rc.colors[i],
				 e);
			goto fail;
		}
	if (o->rc.rules_file && (rc = rules_load_file(r, o->rc.rules_file, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "%s (nothing changed)", e);
		goto fail;
	}
	if ((rc = shadow_core_reconfigure(m->core, &o->sc, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "%s (nothing changed)", e);
		goto fail;
	}
	/*
	 * Both switch before the next packet is read: the core on its owner,
	 * the sender thread, after what is queued (classified under the old
	 * lanes) was taken; this thread waits, so nothing is classified between.
	 */
	(void)shadow_sender_call(m->snd, mir_apply, NULL);
	pipe_set_rules(recorder_pipe(m->rec), r);
	m->reloaded[m->n_reloaded++] = r;
	m->reloads++;
	dbuf_printf(out, "reloaded: %zu rules, lanes", rules_count(r));
	for (size_t i = 0; i < o->sc.n_lanes; i++)
		dbuf_printf(out, " %s", o->sc.lanes[i].name);
	dbuf_putc(out, '\n');
	opts_free(o);
	return 0;
fail:
	rules_free(r);
	opts_free(o);
	m->reload_errors++;
	return rc < 0 ? rc : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Run                                                                 */
/* ------------------------------------------------------------------ */

/* --realtime: sleep until CLOCK_MONOTONIC @p due (the sender thread sends meanwhile). */
static void sleep_until(int64_t due)
{
	int64_t now;
	while (!mir_stop && (now = clk_mono_ns()) < due) {
		int64_t d = due - now < 1000000 ? due - now : 1000000;
		struct timespec ts = {0, (long)d};
		nanosleep(&ts, NULL);
	}
}

static void print_warnings(struct mir *m)
{
	char msg[1024];
	while (shadow_core_warning(m->core, "lane_", msg, sizeof(msg)))
		fprintf(stderr, "dyetap mirror: %s\n", msg);
}

static void print_counters(const struct mir_opts *o, const struct ctr_set *c, double secs)
{
	struct dbuf b;
	dbuf_init(&b, 1u << 20);
	if (o->stats && !ctr_set_text(c, &b, 40))
		fprintf(stderr, "dyetap mirror: counters (%.2f s):\n%s", secs,
			b.len ? (const char *)b.data : "");
	dbuf_reset(&b);
	if (o->json && !dbuf_putc(&b, '{') && !ctr_set_json(c, &b) && !dbuf_puts(&b, "}\n"))
		fwrite(b.data, 1, b.len, stdout);
	dbuf_release(&b);
}

static int run(struct mir_opts *o, struct mir *m)
{
	char err[1024] = "";
	int ret = 3, rc;
	struct noise_rules *nrules = NULL;
	struct ctr_set *ctrs = ctr_set_create(0);
	struct src_stats ss = {0};
	struct dbuf source_desc;
	dbuf_init(&source_desc, 1u << 16);
	if (!ctrs) {
		fprintf(stderr, "dyetap mirror: out of memory\n");
		goto out;
	}
	/* Everything that can be refused is checked before the capture starts. */
	struct src_params sp;
	recorder_conf_src(&o->rc, &sp);
	sp.block_ms = (int)o->block_ms;
	if (recorder_source(&source_desc, "mirror:", &sp) < 0) {
		fprintf(stderr, "dyetap mirror: out of memory\n");
		goto out;
	}
	struct recorder_params rp = {
	    .conf = &o->rc,
	    .redact_results = true,
	    .source = (const char *)source_desc.data,
	    .filter = sp.filter,
	    .path = o->out,
	    .kind = "results",
	    .background = true,
	    .on_session = on_session,
	    .on_request = on_request,
	    .ctx = m,
	};
	if ((rc = recorder_open(&rp, &m->rec, err, sizeof(err))) < 0) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	if (o->diff_rules && !(nrules = noise_rules_load(o->diff_rules, err, sizeof(err)))) {
		fprintf(stderr, "dyetap mirror: --diff-rules: %s\n", err);
		ret = 2;
		goto out;
	}
	if (o->report_dir && report_dir_ready(o->report_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = 2;
		goto out;
	}
	/* Pairing only for what uses pairs: the -w recording and the diff. */
	bool pairing = o->out || m->diff;
	struct shadow_hooks hooks = {
	    .on_pair = pairing ? on_pair : NULL,
	    .ctx = m,
	    .redact = recorder_redacts(m->rec) ? recorder_redact_result : NULL,
	    .redact_ctx = m->rec,
	};
	m->core = shadow_core_create(&o->sc, &hooks, err, sizeof(err));
	if (!m->core) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = 2;
		goto out;
	}
	struct shadow_sender_params sdp = {
	    .core = m->core,
	    .n_producers = 1,
	    .queue = (size_t)o->sender_queue,
	    .pairing = pairing,
	};
	m->snd = shadow_sender_create(&sdp, err, sizeof(err));
	if (!m->snd) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		goto out;
	}
	if (o->sc.production)
		fprintf(stderr, "dyetap mirror: production guard off (%s)\n", REPLAY_GUARD_FLAG);
	m->ss = &ss;
	if (o->control || o->metrics) {
		struct ctl_server_params cp = {
		    .control_path = o->control,
		    .metrics_addr = o->metrics,
		    .on_command = on_ctl,
		    .on_metrics = on_metrics,
		    .ctx = m,
		};
		m->ctl = ctl_server_create(&cp, err, sizeof(err));
		if (!m->ctl) {
			fprintf(stderr, "dyetap mirror: %s\n", err);
			ret = 2;
			goto out;
		}
	}
	mir_src = src_open(&sp, &ss, err, sizeof(err));
	if (!mir_src) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = 2;
		goto out;
	}
	if ((rc = recorder_create_file(m->rec, err, sizeof(err))) < 0) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	struct pipe *pipe = recorder_pipe(m->rec);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mir_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = mir_on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (shadow_sender_start(m->snd, err, sizeof(err)) < 0) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		goto out;
	}
	m->live = sp.iface != NULL;
	/* A file read as fast as possible may wait for the sender (nothing is
	 * lost by waiting); live capture and --realtime never do. */
	if (!m->live && !m->realtime)
		shadow_sender_backpressure(m->snd);
	if (m->live) /* from here on every packet is captured (tests wait for this line) */
		fprintf(stderr, "dyetap mirror: capturing on %s, Ctrl-C to stop\n", sp.iface);
	(void)ctl_notify("READY=1"); /* systemd Type=notify: the capture runs */
	struct mir_report_in ri = {.dir = o->report_dir, .rules = nrules, .ss = &ss};
	int64_t t0 = clk_mono_ns();
	int64_t deadline = o->duration_ns ? t0 + o->duration_ns : INT64_MAX;
	int64_t next_tick = t0 + 100000000LL;
	int64_t next_report = t0 + o->report_every_ns;
	int64_t next_ctl = t0;
	int64_t rt_mono0 = 0, rt_ts0 = 0;
	bool rt_started = false;
	uint64_t n = 0;
	ret = 0;
	while (!mir_stop) {
		struct src_pkt pkt;
		/* Live: wait a little for traffic (the sender runs on its own). */
		rc = src_next(mir_src, &pkt, 5);
		if (rc == 1) {
			if (o->realtime) {
				if (!rt_started) {
					rt_started = true;
					rt_mono0 = clk_mono_ns();
					rt_ts0 = pkt.ts_ns;
					m->real_offset = clk_real_ns() - pkt.ts_ns;
				}
				sleep_until(rt_mono0 + (pkt.ts_ns - rt_ts0));
			}
			pipe_packet(pipe, pkt.ts_ns, pkt.linktype, pkt.data, pkt.caplen,
				    pkt.wirelen);
			n++;
		} else if (rc == 0) {
			/* no packet within the wait: look at control, pairs, ticks */
		} else if (rc == -ENODATA) {
			break;
		} else {
			fprintf(stderr, "dyetap mirror: %s\n", src_error(mir_src));
			ret = 3;
			break;
		}
		int64_t now = clk_mono_ns();
		done_take(m, false);
		if (mir_hup) {
			struct dbuf rb;
			mir_hup = 0;
			dbuf_init(&rb, 1u << 16);
			if (mir_reload(m, &rb, err, sizeof(err)) < 0)
				fprintf(stderr, "dyetap mirror: reload: %s\n", err);
			else
				fprintf(stderr, "dyetap mirror: reload: %.*s", (int)rb.len,
					(const char *)rb.data);
			dbuf_release(&rb);
		}
		if (m->ctl && now >= next_ctl) {
			next_ctl = now + 10000000LL;
			(void)ctl_server_poll(m->ctl, 0);
		}
		if (now >= next_tick) {
			next_tick = now + 100000000LL;
			if (m->live)
				pipe_advance(pipe, clk_real_ns());
			(void)recorder_tick(m->rec);
			src_update_stats(mir_src);
			print_warnings(m);
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
	(void)ctl_notify("STOPPING=1");
	src_update_stats(mir_src);
	/* End of capture: pending sessions are emitted (now the hand-over may
	 * wait for room), then the sender thread drains the shadow answers and
	 * completes every pair, unanswered and unpaired ones too. */
	shadow_sender_backpressure(m->snd);
	recorder_end_input(m->rec);
	shadow_sender_stop(m->snd);
	done_take(m, true);
	print_warnings(m);
	ri.final = true;
	if (m->diff && mir_report(m, &ri) < 0) {
		if (o->report_dir)
			fprintf(stderr, "dyetap mirror: cannot write reports in %s\n",
				o->report_dir);
		ret = 3;
	}
	rc = recorder_counters(m->rec, &ss, ctrs);
	rc |= mirror_counters(m, ctrs);
	rc |= ctr_set_put(ctrs, m->reports_written, "mirror_reports_written");
	rc |= ctr_set_put(ctrs, m->report_errors, "mirror_report_errors");
	if (rc)
		fprintf(stderr, "dyetap mirror: out of memory: some counters are missing\n");
	uint64_t lost = recorder_lost(m->rec);
	if (recorder_has_file(m->rec) && lost) {
		/* Records were made but are not in the file: say so, and fail. */
		fprintf(stderr,
			"dyetap mirror: %" PRIu64 " records could not be written to %s (%s)\n",
			lost, o->out,
			*recorder_error(m->rec) ? recorder_error(m->rec) : "see redact_errors");
		ret = 3;
	}
	if (recorder_close(m->rec, ctrs, err, sizeof(err)) < 0) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		ret = 3;
	}
	print_counters(o, ctrs, (double)(clk_mono_ns() - t0) / 1e9);
	if (m->live && ss.kernel_drops)
		fprintf(stderr,
			"dyetap mirror: warning: the kernel dropped %" PRIu64
			" packets (raise --buffer-mb or narrow the filter)\n",
			ss.kernel_drops);
out:
	ctl_server_free(m->ctl);
	m->ctl = NULL;
	/* The sender first (it stops its thread), then the core: freeing its
	 * engines drops requests without callbacks. */
	shadow_sender_free(m->snd);
	shadow_core_free(m->core);
	for (struct mir_done *d = m->done_head, *next; d; d = next) {
		next = d->next; /* pairs of a run that failed: nothing writes them now */
		for (unsigned i = 0; i < d->n_res; i++)
			shadow_free(d->res[i]);
		shadow_free(d->prod);
		mem_free(d);
	}
	m->done_head = NULL;
	for (size_t i = 0; i < m->n_pairs; i++)
		shadow_free(m->pairs[i].r);
	for (size_t i = 0; i < m->n_sessions; i++)
		shadow_free(m->sessions[i]);
	mem_free(m->pairs);
	mem_free(m->sessions);
	src_close(mir_src);
	mir_src = NULL;
	recorder_free(m->rec);
	for (size_t i = 0; i < m->n_reloaded; i++)
		rules_free(m->reloaded[i]);
	noise_rules_free(nrules);
	ctr_set_free(ctrs);
	dbuf_release(&source_desc);
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
	pthread_mutex_init(&m->done_mu, NULL);
	m->done_tail = &m->done_head;
	opts_init(o);
	char err[1200];
	ret = parse_args(argc, argv, o, false, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "dyetap mirror: %s\n", err);
		goto out;
	}
	m->argc = argc;
	m->argv = argv;
	m->diff = o->diff;
	m->realtime = o->realtime;
	m->max_kept = (size_t)o->report_memcap;
	ret = run(o, m);
out:
	if (o && m)
		pthread_mutex_destroy(&m->done_mu);
	opts_free(o);
	mem_free(m);
	return ret;
}
