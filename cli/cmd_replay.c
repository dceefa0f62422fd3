/* SPDX-License-Identifier: MIT */
/*
 * dyetap replay - replay recordings against targets into a results store.
 * Parses options, shows a one-line progress display on a terminal, prints
 * the summary (text or --json, with the top causes of failed requests) and
 * maps outcomes to exit codes: 0 done, 2 usage or input error, 3 runtime
 * failure (every request failed, none was sent, or the results could not
 * be written), 130 stopped before the first send. Redaction (--redact, and the rules the
 * recordings carry) keeps a candidate's secrets out of the results file.
 * The manual is docs/replay.md.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analysis/diff.h"
#include "analysis/noise.h"
#include "capture/redact.h"
#include "cli/cmds.h"
#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "common/units.h"
#include "replay/replay.h"
#include "replay/replay_causal.h"
#include "replay/replay_guard.h"
#include "store/store.h"

#define MAX_ITEMS 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dyetap replay REC.dyt [REC.dyt...] --target URL [--target URL...]\n"
		"                     -o RESULTS.dyt [options]\n\n"
		"Replay recorded sessions against targets, paced and connection-faithful,\n"
		"into a self-contained results store for `dyetap diff`.\n\n"
		"targets:\n"
		"  -t, --target [ROLE=]URL  http://HOST:PORT or https://HOST:PORT; repeatable.\n"
		"                           One target may go unnamed: it is the candidate;\n"
		"                           name the others (-t v2=URL -t v3=URL): each role\n"
		"                           gets its own verdict in `dyetap diff`\n"
		"      --baseline URL       known-good build, same as --target secondary=URL\n"
		"                           (used by diff to learn noise, never judged)\n"
		"  -o, --output FILE        results store to write (required)\n"
		"      --level N            zstd level of the results store (default 1;\n"
		"                           negative levels compress faster, larger files)\n"
		"      --insecure           https: do not verify certificates\n"
		"      --ca FILE            https: CA bundle to verify with\n"
		"      --sni NAME           https: server name to send and verify\n"
		"      --i-know-this-is-production\n"
		"                           allow a target that resolves to a server the\n"
		"                           recording was captured from (address and port)\n"
		"pacing (default --speed 1x):\n"
		"      --speed Nx           recorded timing divided by N (2x, 0.5x)\n"
		"      --rate N             N requests per second\n"
		"      --max                as fast as the connections allow\n"
		"order (default: causal when writes are replayed, else pace):\n"
		"      --order causal       a request waits until the requests of its service\n"
		"                           that ended before it started (in the recording)\n"
		"                           have finished; reads wait for writes only\n"
		"      --order strict       causal, and reads wait for reads too\n"
		"      --order pace         the schedule only, in recorded request order\n"
		"      --order none         the schedule only, in the order stored\n"
		"      --causal-scope S     service of the causal order: 'server' (recorded\n"
		"                           address and port, default) or 'target' (all)\n"
		"state:\n"
		"      --before CMD         run CMD (sh -c) before the first request, e.g. to\n"
		"                           restore a database snapshot; repeatable; a failure\n"
		"                           stops the replay (exit 3, nothing sent)\n"
		"      --after CMD          run CMD after the replay; repeatable; exit 3 if it\n"
		"                           fails\n"
		"connections:\n"
		"  -c, --concurrency N      max connections per target (default 256)\n"
		"      --pooled             spread requests over a pool of N connections\n"
		"      --timeout DUR        per request (default 10s; 250ms, 2s, 1m)\n"
		"      --threads N          event loops (default 1)\n"
		"      --max-body SIZE      response body cap (default 1M; k, M, G suffixes)\n"
		"rewrite:\n"
		"      --host VALUE         replace the Host header\n"
		"      --set-header N:V     set a header (repeatable)\n"
		"      --del-header NAME    remove a header (repeatable)\n"
		"      --path-prefix P      prefix every path\n"
		"      --shadow-header N:V  marker header (default x-dyetap-shadow: 1)\n"
		"      --no-shadow-header   send no marker header\n"
		"filters:\n"
		"      --lane L[,L]         lanes to replay (baseline = uncolored)\n"
		"      --method M[,M]       methods to replay\n"
		"      --path GLOB          paths to replay (query ignored)\n"
		"      --since T, --until T request time window (Unix seconds or\n"
		"                           YYYY-MM-DDTHH:MM:SS[.frac]Z)\n"
		"      --allow-writes       also send methods other than GET, HEAD, OPTIONS\n"
		"      --after-skipped-writes path|service|send\n"
		"                           without --allow-writes, a read that came after a\n"
		"                           write it does not send (recorded times, same\n"
		"                           service) may be answered otherwise for that reason\n"
		"                           alone: path (default) leaves out reads of the\n"
		"                           written path, what lies under it and its parent;\n"
		"                           service every later read of the service; send\n"
		"                           sends them all (the target sees production's data)\n"
		"scale:\n"
		"      --shard K/N          replay shard K (0-based) of N, split by connection\n"
		"      --loop N             passes over the input (0 = until --duration/Ctrl-C)\n"
		"      --duration DUR       queue no request due after DUR (queued ones still go)\n"
		"secrets (docs/replay.md \"Secrets\"):\n"
		"      --redact KIND:NAME[:mask|drop]  redact a secret in the results file, as\n"
		"                           record's --redact (header, cookie, query, form,\n"
		"                           json, url); repeatable. The recordings' own rules\n"
		"                           always apply to the targets' responses too\n"
		"      --redact-defaults    the default secrets (see dyetap record --help)\n"
		"diff in the same run (see `dyetap diff --help`):\n"
		"      --diff               after replaying, diff the results like `dyetap diff`\n"
		"      --rules FILE         diff noise rules\n"
		"      --html FILE          write the HTML report\n"
		"      --report-json FILE   write the JSON report\n"
		"      --junit FILE         write the JUnit XML report\n"
		"      --fail-on EXPR       gate, repeatable (e.g. 'diff_rate>0.1%%')\n"
		"output:\n"
		"      --json               print the summary as one JSON object\n"
		"  -q, --quiet              no progress line\n"
		"  -h, --help               this help\n\n"
		"HTTP/2 (h2c, gRPC; docs/http2.md \"Replay\"): a connection per recorded\n"
		"connection, streams in their recorded order and concurrency, grpc-timeout\n"
		"re-based; a stream the recorded client reset is cancelled the same way\n"
		"(RST_STREAM) once its recorded response bytes came, as long after sending\n"
		"as the client waited when nothing came (not scaled by --speed), or when a\n"
		"later stream of its connection is due: \"cancelled as recorded\", ok.\n\n"
		"exit codes: 0 done, 1 with --diff: a gate tripped, 2 usage or input error,\n"
		"3 runtime failure (every request failed, none was sent, or the results\n"
		"could not be written), 130 Ctrl-C before the first request (nothing sent)\n");
}

static void on_sigint(int sig)
{
	(void)sig;
	replay_batch_stop();
}

static int parse_time(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end != s && !*end && !errno && v >= 0) {
		*out = (int64_t)llround(v * 1e9);
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	double frac = 0;
	if (*p == '.') {
		frac = strtod(p, &end);
		p = end;
	}
	if (strcmp(p, "Z") && strcmp(p, ""))
		return -EINVAL;
	*out = (int64_t)timegm(&tm) * 1000000000LL + (int64_t)llround(frac * 1e9);
	return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end || errno || s[0] == '-' || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

struct prog_ctx {
	bool shown;
};

static void show_progress(void *ctx, const struct replay_progress *p)
{
	struct prog_ctx *pc = ctx;
	pc->shown = true;
	if (p->scanning) {
		fprintf(stderr, "\r\033[Kreading the recordings: %llu sessions  elapsed %.0fs",
			(unsigned long long)p->scanned, p->elapsed_s);
		fflush(stderr);
		return;
	}
	char eta[32] = "?";
	if (p->eta_s >= 0)
		snprintf(eta, sizeof(eta), "%.0fs", p->eta_s);
	fprintf(stderr,
		"\r\033[Ksent %llu  ok %llu  errors %llu  skipped %llu  %.0f req/s  "
		"elapsed %.0fs  eta %s",
		(unsigned long long)p->sent, (unsigned long long)p->ok,
		(unsigned long long)p->errors, (unsigned long long)p->skipped, p->rate,
		p->elapsed_s, eta);
	fflush(stderr);
	pc->shown = true;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* --before / --after: commands run with sh -c, their output on stderr. */
struct hooks {
	const char *before[MAX_ITEMS], *after[MAX_ITEMS];
	size_t n_before, n_after;
	const char *results;
	const struct replay_target *targets;
	size_t n_targets;
};

/*
 * Run @p cmd with /bin/sh -c, standard output sent to standard error (so
 * that --json keeps stdout one object), with DYETAP_PHASE (@p phase),
 * DYETAP_RESULTS and DYETAP_TARGETS (the target URLs, space-separated) in
 * its environment. @return 0 when it exited 0, else -ECANCELED with a
 * message in @p err.
 */
static int run_hook(const struct hooks *h, const char *opt, const char *cmd, char *err,
		    size_t errlen)
{
	char targets[4096];
	size_t tl = 0;
	targets[0] = '\0';
	for (size_t i = 0; i < h->n_targets && tl < sizeof(targets); i++)
		tl += (size_t)snprintf(targets + tl, sizeof(targets) - tl, "%s%s", i ? " " : "",
				       h->targets[i].url);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "%s '%s': cannot start it: %s", opt, cmd, strerror(errno));
		return -ECANCELED;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		setenv("DYETAP_PHASE", opt + 2, 1);
		setenv("DYETAP_RESULTS", h->results, 1);
		setenv("DYETAP_TARGETS", targets, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "%s '%s': %s", opt, cmd, strerror(errno));
			return -ECANCELED;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		snprintf(err, errlen, "%s '%s' exited with status %d", opt, cmd, WEXITSTATUS(st));
	else
		snprintf(err, errlen, "%s '%s' was killed by signal %d", opt, cmd,
			 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return -ECANCELED;
}

/* replay_before_fn: every --before in order, up to the first that fails. */
static int run_before(void *ctx, char *err, size_t errlen)
{
	const struct hooks *h = ctx;
	for (size_t i = 0; i < h->n_before; i++) {
		int rc = run_hook(h, "--before", h->before[i], err, errlen);
		if (rc) {
			size_t l = strlen(err);
			snprintf(err + l, errlen - l,
				 ": nothing was sent, no results file written");
			return rc;
		}
	}
	return 0;
}

static void print_json(const struct replay_summary *s, const char *output)
{
	const struct replay_stats *st = &s->stats;
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	dbuf_printf(&b, "{\"sent\":%llu,\"ok\":%llu,\"skipped\":%llu,",
		    (unsigned long long)st->sent, (unsigned long long)st->ok,
		    (unsigned long long)replay_stats_skipped(st));
	dbuf_printf(&b,
		    "\"errors\":{\"total\":%llu,\"refused\":%llu,\"reset\":%llu,\"timeout\":%llu,"
		    "\"bad_response\":%llu,\"connect\":%llu,\"tls\":%llu,\"other\":%llu},",
		    (unsigned long long)replay_stats_errors(st),
		    (unsigned long long)st->err_refused, (unsigned long long)st->err_reset,
		    (unsigned long long)st->err_timeout, (unsigned long long)st->err_bad_response,
		    (unsigned long long)st->err_connect, (unsigned long long)st->err_tls,
		    (unsigned long long)st->err_other);
	dbuf_printf(&b, "\"achieved_rps\":%.1f,\"elapsed_s\":%.3f,", s->achieved_rps, s->elapsed_s);
	/* under --max nothing is paced: lateness is the wait behind the
	 * connection's earlier requests (docs/replay.md) */
	dbuf_printf(&b, "\"pace\":\"%s\",",
		    s->pace == REPLAY_PACE_MAX	  ? "max"
		    : s->pace == REPLAY_PACE_RATE ? "rate"
						  : "recorded");
	dbuf_printf(&b, "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
		    ms(replay_hist_pct(&s->latency, 50)), ms(replay_hist_pct(&s->latency, 90)),
		    ms(replay_hist_pct(&s->latency, 99)), ms(s->latency.max_ns));
	dbuf_printf(&b, "\"lateness_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
		    ms(replay_hist_pct(&s->lateness, 50)), ms(replay_hist_pct(&s->lateness, 99)),
		    ms(s->lateness.max_ns));
	dbuf_puts(&b, "\"error_causes\":[");
	for (size_t i = 0; i < REPLAY_MAX_CAUSES && s->causes[i].n; i++) {
		dbuf_printf(&b, "%s{\"count\":%llu,\"kind\":\"%s\",\"message\":", i ? "," : "",
			    (unsigned long long)s->causes[i].n,
			    store_error_name(s->causes[i].kind));
		jsonw_cstr(&b, s->causes[i].msg);
		dbuf_putc(&b, '}');
	}
	dbuf_printf(&b, "],\"error_causes_other\":%llu,\"lost\":%llu,\"file_id\":",
		    (unsigned long long)s->causes_other, (unsigned long long)s->lost);
	jsonw_cstr(&b, s->file_id);
	dbuf_putc(&b, ',');
	dbuf_printf(&b, "\"order\":\"%s\",\"causal_services\":%u,",
		    replay_order_name((enum replay_order)s->order), s->causal_services);
	dbuf_printf(&b,
		    "\"causal_delay_ms\":{\"waited\":%llu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
		    (unsigned long long)s->causal_wait.n, ms(replay_hist_pct(&s->causal_wait, 50)),
		    ms(replay_hist_pct(&s->causal_wait, 99)), ms(s->causal_wait.max_ns));
	dbuf_printf(&b, "\"interrupted\":%s,\"results\":", s->interrupted ? "true" : "false");
	jsonw_cstr(&b, output);
	dbuf_puts(&b, ",\"counters\":{");
	for (size_t i = 0; i < replay_n_ctr_descs; i++)
		dbuf_printf(&b, "%s\"%s\":%llu", i ? "," : "", replay_ctr_descs[i].name,
			    (unsigned long long)ctr_get(st, &replay_ctr_descs[i]));
	dbuf_puts(&b, "}}\n");
	fwrite(b.data, 1, b.len, stdout);
	dbuf_release(&b);
}

/* "45 tls: certificate verification failed: self-signed certificate" */
static void print_causes(FILE *f, const struct replay_summary *s, const char *indent)
{
	for (size_t i = 0; i < REPLAY_MAX_CAUSES && s->causes[i].n; i++) {
		const struct replay_cause *c = &s->causes[i];
		const char *kind = store_error_name(c->kind);
		size_t kl = kind ? strlen(kind) : 0;
		if (!c->msg[0])
			fprintf(f, "%s%llu %s\n", indent, (unsigned long long)c->n, kind);
		else if (kind && !strncmp(c->msg, kind, kl) && c->msg[kl] == ':')
			fprintf(f, "%s%llu %s\n", indent, (unsigned long long)c->n, c->msg);
		else
			fprintf(f, "%s%llu %s: %s\n", indent, (unsigned long long)c->n,
				kind ? kind : "error", c->msg);
	}
	if (s->causes_other)
		fprintf(f, "%s%llu of other causes\n", indent, (unsigned long long)s->causes_other);
}

static void print_text(const struct replay_summary *s, const char *output)
{
	const struct replay_stats *st = &s->stats;
	printf("replay %s: %s (file id %s)\n", s->interrupted ? "interrupted" : "done", output,
	       s->file_id);
	printf("  sent %llu  ok %llu  skipped %llu  errors %llu", (unsigned long long)st->sent,
	       (unsigned long long)st->ok, (unsigned long long)replay_stats_skipped(st),
	       (unsigned long long)replay_stats_errors(st));
	if (st->h2_cancelled_as_recorded) /* ok ones the replay ended itself */
		printf("  (of the ok, %llu HTTP/2 streams cancelled as recorded)",
		       (unsigned long long)st->h2_cancelled_as_recorded);
	printf("\n");
	if (st->h2_grpc_deadline) /* timeouts of a kind diff compares */
		printf("  of the timeouts, %llu gRPC calls had no whole answer within their "
		       "grpc-timeout (DEADLINE_EXCEEDED)\n",
		       (unsigned long long)st->h2_grpc_deadline);
	printf("  errors: refused %llu  reset %llu  timeout %llu  bad_response %llu  connect %llu"
	       "  tls %llu  other %llu\n",
	       (unsigned long long)st->err_refused, (unsigned long long)st->err_reset,
	       (unsigned long long)st->err_timeout, (unsigned long long)st->err_bad_response,
	       (unsigned long long)st->err_connect, (unsigned long long)st->err_tls,
	       (unsigned long long)st->err_other);
	printf("  skipped: filter %llu  shard %llu  writes %llu  after_writes %llu  truncated %llu"
	       "  unsupported %llu  unsafe %llu\n",
	       (unsigned long long)st->skipped_filter, (unsigned long long)st->skipped_shard,
	       (unsigned long long)st->skipped_writes, (unsigned long long)st->skipped_after_writes,
	       (unsigned long long)st->skipped_truncated,
	       (unsigned long long)st->skipped_unsupported, (unsigned long long)st->skipped_unsafe);
	printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
	       ms(replay_hist_pct(&s->latency, 50)), ms(replay_hist_pct(&s->latency, 90)),
	       ms(replay_hist_pct(&s->latency, 99)), ms(s->latency.max_ns));
	printf("  achieved %.1f req/s over %.3f s;  %s ms: p50 %.3f  p99 %.3f%s\n", s->achieved_rps,
	       s->elapsed_s, s->pace == REPLAY_PACE_MAX ? "queue wait" : "lateness",
	       ms(replay_hist_pct(&s->lateness, 50)), ms(replay_hist_pct(&s->lateness, 99)),
	       s->pace == REPLAY_PACE_MAX
		   ? " (--max: from read to sent, waiting for a connection; not pacing)"
		   : "");
	printf("  connections %llu (reconnects %llu, retries %llu)\n",
	       (unsigned long long)st->connects, (unsigned long long)st->reconnects,
	       (unsigned long long)st->retries);
	enum replay_order o = (enum replay_order)s->order;
	if (o == REPLAY_ORDER_CAUSAL || o == REPLAY_ORDER_STRICT)
		printf("  order %s (%u services with writes): %llu waited for dependencies;"
		       "  causal delay ms: p50 %.3f  p99 %.3f  max %.3f%s\n",
		       replay_order_name(o), s->causal_services,
		       (unsigned long long)s->causal_wait.n,
		       ms(replay_hist_pct(&s->causal_wait, 50)),
		       ms(replay_hist_pct(&s->causal_wait, 99)), ms(s->causal_wait.max_ns),
		       st->causal_abandoned ? " (abandoned: see the warning)" : "");
	else
		printf("  order %s\n", replay_order_name(o));
	if (s->causes[0].n) {
		printf("  failed requests by cause:\n");
		print_causes(stdout, s, "    ");
	}
}

/*
 * The production guard (docs/replay.md "Production guard"): refuse when a
 * target resolves to the server (address and port) of a recorded session.
 * Builds the guard into @p out (NULL when off); replay_batch_run() checks
 * every session with it before the first send, in the pass that counts
 * them. Returns 0 to go on, else the exit code (2 bad target, 3 out of
 * memory) after printing why.
 */
static int make_guard(const struct replay_target *targets, size_t n_targets, bool production,
		      struct replay_guard **out)
{
	*out = NULL;
	if (production) {
		fprintf(stderr, "dyetap replay: production guard off (%s)\n", REPLAY_GUARD_FLAG);
		return 0;
	}
	char err[1024] = "";
	struct replay_guard *g = replay_guard_create();
	int rc = g ? 0 : -ENOMEM;
	for (size_t i = 0; i < n_targets && !rc; i++)
		rc = replay_guard_add_url(g, targets[i].url, err, sizeof(err));
	if (!rc) {
		*out = g;
		return 0;
	}
	replay_guard_free(g);
	fprintf(stderr, "dyetap replay: %s\n", err[0] ? err : strerror(-rc));
	return rc == -ENOMEM ? 3 : 2;
}

/*
 * One target may go without ROLE=: it is the candidate. A second unnamed
 * target is refused, never silently made a secondary (whose answers only
 * teach noise): each role gets its own verdict, so the user names them.
 * Two targets with one role would file two answers per request under one
 * name: refused. Returns 0 or exit code 2 after printing why.
 */
static int assign_roles(struct replay_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (t[i].role && t[j].role && !strcmp(t[i].role, t[j].role)) {
				fprintf(
				    stderr,
				    "dyetap replay: two targets have the role '%s' (%s and %s); "
				    "give each its own ROLE=\n",
				    t[i].role, t[j].url, t[i].url);
				return 2;
			}
	size_t unnamed = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		if (t[i].role)
			continue;
		if (unnamed != SIZE_MAX) {
			fprintf(stderr,
				"dyetap replay: two targets have no role (%s and %s): name each, "
				"e.g. -t v2=%s -t v3=%s (every role gets its own verdict), or give "
				"a known-good build as --baseline URL (used to learn noise)\n",
				t[unnamed].url, t[i].url, t[unnamed].url, t[i].url);
			return 2;
		}
		unnamed = i;
	}
	if (unnamed != SIZE_MAX) {
		for (size_t j = 0; j < n; j++)
			if (t[j].role && !strcmp(t[j].role, "candidate")) {
				fprintf(stderr,
					"dyetap replay: %s has no role and 'candidate' is taken by "
					"%s: name it (-t v2=%s)\n",
					t[unnamed].url, t[j].url, t[unnamed].url);
				return 2;
			}
		t[unnamed].role = "candidate";
	}
	bool judged = false;
	for (size_t i = 0; i < n; i++)
		judged = judged || strcmp(t[i].role, "secondary");
	if (!judged)
		fprintf(stderr, "dyetap replay: warning: every target is the secondary: `dyetap "
				"diff` judges candidates and will find none\n");
	return 0;
}

/* ---- secrets: struct redact is one per thread, so each loop gets its own ---- */

struct redact_spec {
	const char **rules; /* canonical texts */
	size_t n;
};

static void *redactor_create(void *ctx)
{
	const struct redact_spec *sp = ctx;
	struct redact *r = redact_create();
	char err[256];
	for (size_t i = 0; r && i < sp->n; i++)
		if (redact_add(r, sp->rules[i], err, sizeof(err))) {
			redact_free(r);
			r = NULL;
		}
	return r;
}

static void redactor_destroy(void *r)
{
	redact_free(r);
}

static int redactor_session(void *r, const struct store_session *in, struct store_session *out)
{
	return redact_session(r, in, out);
}

/*
 * The rules a replay applies: --redact and --redact-defaults (in @p own),
 * then every rule an input recording carries. The recorded sessions are
 * redacted again only when some rule was not applied by every input.
 * Returns 0, or the exit code after printing why.
 */
static int gather_redactions(struct redact *own, const char **inputs, size_t n_inputs,
			     struct redact_spec *spec, bool *sessions)
{
	char err[1024];
	*sessions = false;
	for (size_t i = 0; i < n_inputs; i++) {
		struct store_reader *r = store_reader_open(inputs[i], err, sizeof(err));
		if (!r) {
			fprintf(stderr, "dyetap replay: %s\n", err);
			return 2;
		}
		const struct store_file_meta *m = store_reader_meta(r);
		int rc = 0;
		for (size_t k = 0; !rc && k < m->n_redactions; k++) {
			bool have = false;
			for (size_t j = 0; j < redact_count(own) && !have; j++)
				have = !strcmp(redact_text(own, j), m->redactions[k]);
			if (!have)
				rc = redact_add(own, m->redactions[k], err, sizeof(err));
		}
		store_reader_free(r);
		if (rc) {
			fprintf(stderr, "dyetap replay: %s: its redaction %s\n", inputs[i], err);
			return rc == -ENOMEM ? 3 : 2;
		}
	}
	spec->rules = redact_text_array(own, &spec->n);
	if (!spec->rules) {
		fprintf(stderr, "dyetap replay: out of memory\n");
		return 3;
	}
	/* a rule some recording did not apply to its sessions: apply it now */
	for (size_t i = 0; i < n_inputs && !*sessions; i++) {
		struct store_reader *r = store_reader_open(inputs[i], err, sizeof(err));
		const struct store_file_meta *m = r ? store_reader_meta(r) : NULL;
		for (size_t k = 0; m && k < spec->n && !*sessions; k++) {
			bool applied = false;
			for (size_t j = 0; j < m->n_redactions && !applied; j++)
				applied = !strcmp(m->redactions[j], spec->rules[k]);
			*sessions = !applied;
		}
		store_reader_free(r);
	}
	return 0;
}

enum {
	O_SPEED = 256,
	O_RATE,
	O_MAX,
	O_POOLED,
	O_TIMEOUT,
	O_THREADS,
	O_MAXBODY,
	O_HOST,
	O_SETH,
	O_DELH,
	O_PREFIX,
	O_SHADOW,
	O_NOSHADOW,
	O_LANE,
	O_METHOD,
	O_PATH,
	O_SINCE,
	O_UNTIL,
	O_WRITES,
	O_AFTER_WRITES,
	O_SHARD,
	O_LOOP,
	O_DURATION,
	O_JSON,
	O_INSECURE,
	O_CA,
	O_SNI,
	O_BASELINE,
	O_DIFF,
	O_RULES,
	O_HTML,
	O_RJSON,
	O_JUNIT,
	O_FAILON,
	O_PRODUCTION,
	O_LEVEL,
	O_REDACT,
	O_REDACT_DEFAULTS,
	O_ORDER,
	O_SCOPE,
	O_BEFORE,
	O_AFTER,
};

static const struct option opts[] = {
    {"target", required_argument, NULL, 't'},
    {"output", required_argument, NULL, 'o'},
    {"speed", required_argument, NULL, O_SPEED},
    {"rate", required_argument, NULL, O_RATE},
    {"max", no_argument, NULL, O_MAX},
    {"concurrency", required_argument, NULL, 'c'},
    {"pooled", no_argument, NULL, O_POOLED},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"threads", required_argument, NULL, O_THREADS},
    {"max-body", required_argument, NULL, O_MAXBODY},
    {"host", required_argument, NULL, O_HOST},
    {"set-header", required_argument, NULL, O_SETH},
    {"del-header", required_argument, NULL, O_DELH},
    {"path-prefix", required_argument, NULL, O_PREFIX},
    {"shadow-header", required_argument, NULL, O_SHADOW},
    {"no-shadow-header", no_argument, NULL, O_NOSHADOW},
    {"lane", required_argument, NULL, O_LANE},
    {"method", required_argument, NULL, O_METHOD},
    {"path", required_argument, NULL, O_PATH},
    {"since", required_argument, NULL, O_SINCE},
    {"until", required_argument, NULL, O_UNTIL},
    {"allow-writes", no_argument, NULL, O_WRITES},
    {"after-skipped-writes", required_argument, NULL, O_AFTER_WRITES},
    {"shard", required_argument, NULL, O_SHARD},
    {"loop", required_argument, NULL, O_LOOP},
    {"duration", required_argument, NULL, O_DURATION},
    {"json", no_argument, NULL, O_JSON},
    {"insecure", no_argument, NULL, O_INSECURE},
    {"ca", required_argument, NULL, O_CA},
    {"sni", required_argument, NULL, O_SNI},
    {"baseline", required_argument, NULL, O_BASELINE},
    {"diff", no_argument, NULL, O_DIFF},
    {"rules", required_argument, NULL, O_RULES},
    {"html", required_argument, NULL, O_HTML},
    {"report-json", required_argument, NULL, O_RJSON},
    {"junit", required_argument, NULL, O_JUNIT},
    {"fail-on", required_argument, NULL, O_FAILON},
    {"i-know-this-is-production", no_argument, NULL, O_PRODUCTION},
    {"level", required_argument, NULL, O_LEVEL},
    {"redact", required_argument, NULL, O_REDACT},
    {"redact-defaults", no_argument, NULL, O_REDACT_DEFAULTS},
    {"order", required_argument, NULL, O_ORDER},
    {"causal-scope", required_argument, NULL, O_SCOPE},
    {"before", required_argument, NULL, O_BEFORE},
    {"after", required_argument, NULL, O_AFTER},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define BAD(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "dyetap replay: " __VA_ARGS__);                                    \
		fputc('\n', stderr);                                                               \
		return 2;                                                                          \
	} while (0)

int cmd_replay(int argc, char **argv)
{
	struct replay_target targets[MAX_ITEMS];
	size_t n_targets = 0;
	struct replay_hdr_set sets[MAX_ITEMS];
	size_t n_sets = 0;
	const char *dels[MAX_ITEMS];
	size_t n_dels = 0;
	struct replay_rewrite rw = {.shadow_name = "x-dyetap-shadow", .shadow_value = "1"};
	struct replay_batch_params bp;
	memset(&bp, 0, sizeof(bp));
	bp.loops = 1;
	bp.pace = REPLAY_PACE_RECORDED;
	bp.speed = 1.0;
	int pace_opts = 0;
	bool json = false, quiet = false, diff = false, production = false;
	char *diff_args[MAX_ITEMS * 2 + 2];
	size_t n_diff_args = 0;
	struct replay_hdr_set shadow;
	static struct hooks hooks;
	memset(&hooks, 0, sizeof(hooks));
	enum replay_order order = REPLAY_ORDER_AUTO;
	bool after_writes_given = false;
	int c;
	char rerr[256];
	/* static: reachable at exit whatever path returns (the leak checker) */
	static struct redact *own_redact;
	redact_free(own_redact);
	if (!(own_redact = redact_create())) {
		fprintf(stderr, "dyetap replay: out of memory\n");
		return 3;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:o:c:qh", opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			if (n_targets == MAX_ITEMS)
				BAD("too many targets");
			char *arg = optarg, *eq = strstr(arg, "=");
			char *scheme = strstr(arg, "://");
			targets[n_targets].role = NULL;
			targets[n_targets].url = arg;
			if (eq && scheme && eq < scheme) {
				*eq = '\0';
				targets[n_targets].role = arg;
				targets[n_targets].url = eq + 1;
			}
			n_targets++;
			break;
		}
		case 'o':
			bp.output = optarg;
			break;
		case O_SPEED:
			if (replay_parse_speed(optarg, &bp.speed))
				BAD("bad --speed '%s' (e.g. 1x, 2x, 0.5x)", optarg);
			bp.pace = REPLAY_PACE_RECORDED;
			pace_opts++;
			break;
		case O_RATE: {
			char *end;
			bp.rate = strtod(optarg, &end);
			if (end == optarg || *end || !(bp.rate > 0) || bp.rate > 1e8)
				BAD("bad --rate '%s' (requests per second > 0)", optarg);
			bp.pace = REPLAY_PACE_RATE;
			pace_opts++;
			break;
		}
		case O_MAX:
			bp.pace = REPLAY_PACE_MAX;
			pace_opts++;
			break;
		case 'c':
			if (parse_u32(optarg, 1, 1000000, &bp.engine.concurrency))
				BAD("bad --concurrency '%s'", optarg);
			break;
		case O_POOLED:
			bp.engine.pooled = true;
			break;
		case O_TIMEOUT:
			if (replay_parse_duration(optarg, &bp.engine.timeout_ns) ||
			    !bp.engine.timeout_ns)
				BAD("bad --timeout '%s' (e.g. 2s, 500ms)", optarg);
			break;
		case O_THREADS:
			if (parse_u32(optarg, 1, 256, &bp.threads))
				BAD("bad --threads '%s' (1..256)", optarg);
			break;
		case O_LEVEL:
			if (store_parse_level(optarg, &bp.level))
				BAD("bad --level '%s' (zstd level, -100..22, not 0)", optarg);
			break;
		case O_MAXBODY: {
			uint64_t v;
			if (units_parse_size(optarg, &v) || !v || v > (1u << 30))
				BAD("bad --max-body '%s' (" UNITS_SIZE_HELP "; 1 to 1G)", optarg);
			bp.engine.max_body = (uint32_t)v;
			break;
		}
		case O_REDACT:
			if (redact_add(own_redact, optarg, rerr, sizeof(rerr)))
				BAD("--redact %s", rerr);
			break;
		case O_REDACT_DEFAULTS:
			if (redact_add_defaults(own_redact))
				BAD("out of memory");
			break;
		case O_HOST:
			rw.host = optarg;
			break;
		case O_SETH:
			if (n_sets == MAX_ITEMS || replay_hdr_set_parse(optarg, &sets[n_sets]))
				BAD("bad --set-header (NAME:VALUE)");
			n_sets++;
			break;
		case O_DELH:
			if (n_dels == MAX_ITEMS)
				BAD("too many --del-header");
			dels[n_dels++] = optarg;
			break;
		case O_PREFIX:
			rw.path_prefix = optarg;
			break;
		case O_SHADOW:
			if (replay_hdr_set_parse(optarg, &shadow))
				BAD("bad --shadow-header (NAME:VALUE)");
			rw.shadow_name = shadow.name;
			rw.shadow_value = shadow.value;
			break;
		case O_NOSHADOW:
			rw.shadow_name = NULL;
			break;
		case O_LANE:
			bp.filter.lanes = optarg;
			break;
		case O_METHOD: {
			/* A comma list of method tokens; an empty item matches nothing. */
			const char *tok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					  "0123456789!#$%&'*+-.^_`|~";
			for (const char *m = optarg;; m++) {
				size_t n = strspn(m, tok);
				if (!n || (m[n] && m[n] != ','))
					BAD("bad --method '%s' (METHOD[,METHOD...], e.g. GET,HEAD)",
					    optarg);
				m += n;
				if (!*m)
					break;
			}
			bp.filter.methods = optarg;
			break;
		}
		case O_PATH:
			bp.filter.path_glob = optarg;
			break;
		case O_SINCE:
			if (parse_time(optarg, &bp.filter.since_ns))
				BAD("bad --since '%s'", optarg);
			break;
		case O_UNTIL:
			if (parse_time(optarg, &bp.filter.until_ns))
				BAD("bad --until '%s'", optarg);
			break;
		case O_AFTER_WRITES:
			after_writes_given = true;
			if (!strcmp(optarg, "path"))
				bp.filter.after_writes = REPLAY_AFTER_WRITES_PATH;
			else if (!strcmp(optarg, "service"))
				bp.filter.after_writes = REPLAY_AFTER_WRITES_SERVICE;
			else if (!strcmp(optarg, "send"))
				bp.filter.after_writes = REPLAY_AFTER_WRITES_SEND;
			else
				BAD("bad --after-skipped-writes '%s' (path, service or send)",
				    optarg);
			break;
		case O_WRITES:
			bp.filter.allow_writes = true;
			break;
		case O_SHARD:
			if (replay_parse_shard(optarg, &bp.filter.shard_k, &bp.filter.shard_n))
				BAD("bad --shard '%s' (K/N with 0 <= K < N)", optarg);
			break;
		case O_LOOP:
			if (parse_u32(optarg, 0, REPLAY_MAX_PASSES, &bp.loops))
				BAD("bad --loop '%s' (0 = endless, up to %u)", optarg,
				    REPLAY_MAX_PASSES);
			break;
		case O_DURATION:
			if (replay_parse_duration(optarg, &bp.duration_ns) || !bp.duration_ns)
				BAD("bad --duration '%s'", optarg);
			break;
		case O_JSON:
			json = true;
			break;
		case O_INSECURE:
			bp.engine.insecure = true;
			break;
		case O_CA:
			bp.engine.ca_file = optarg;
			break;
		case O_SNI:
			bp.engine.sni = optarg;
			break;
		case O_BASELINE:
			if (n_targets == MAX_ITEMS)
				BAD("too many targets");
			targets[n_targets].role = "secondary";
			targets[n_targets].url = optarg;
			n_targets++;
			break;
		case O_DIFF:
			diff = true;
			break;
		case O_RULES:
		case O_HTML:
		case O_RJSON:
		case O_JUNIT:
		case O_FAILON: {
			/* Passed on to `dyetap diff` as its own options. */
			static const char *const names[] = {"--rules", "--html", "--json",
							    "--junit", "--fail-on"};
			if (n_diff_args + 2 > MAX_ITEMS * 2)
				BAD("too many diff options");
			/* Checked now, not after a replay of possibly hours. */
			char derr[256];
			struct diff_gate g;
			if (c == O_FAILON && diff_gate_parse(&g, optarg, derr, sizeof(derr)))
				BAD("--fail-on: %s", derr);
			if (c == O_RULES) {
				struct noise_rules *nr =
				    noise_rules_load(optarg, derr, sizeof(derr));
				if (!nr)
					BAD("--rules: %s", derr);
				noise_rules_free(nr);
			}
			diff_args[n_diff_args++] = (char *)names[c - O_RULES];
			diff_args[n_diff_args++] = optarg;
			break;
		}
		case O_PRODUCTION:
			production = true;
			break;
		case O_ORDER:
			if (replay_order_parse(optarg, &order))
				BAD("bad --order '%s' (causal, strict, pace or none)", optarg);
			break;
		case O_SCOPE:
			if (!strcmp(optarg, "server") || !strcmp(optarg, "target"))
				bp.causal_one_service = !strcmp(optarg, "target");
			else
				BAD("bad --causal-scope '%s' (server or target)", optarg);
			break;
		case O_BEFORE:
		case O_AFTER:
			if ((c == O_BEFORE ? hooks.n_before : hooks.n_after) == MAX_ITEMS)
				BAD("too many %s", c == O_BEFORE ? "--before" : "--after");
			if (!*optarg)
				BAD("empty %s command", c == O_BEFORE ? "--before" : "--after");
			if (c == O_BEFORE)
				hooks.before[hooks.n_before++] = optarg;
			else
				hooks.after[hooks.n_after++] = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	const char **inputs = (const char **)(argv + optind);
	size_t n_inputs = (size_t)(argc - optind);
	if (!n_inputs)
		BAD("no recording given (try --help)");
	if (after_writes_given && bp.filter.allow_writes)
		fprintf(stderr, "dyetap replay: warning: --after-skipped-writes has no effect with "
				"--allow-writes (every write is sent, no read is left out)\n");
	if (!n_targets)
		BAD("no --target given");
	int arc = assign_roles(targets, n_targets);
	if (arc)
		return arc;
	if (!bp.output)
		BAD("no -o RESULTS.dyt given");
	if (pace_opts > 1)
		BAD("--speed, --rate and --max exclude each other");
	if (n_diff_args && !diff)
		BAD("--rules, --html, --report-json, --junit and --fail-on need --diff");
	/* The diff's files, checked now rather than after the replay: a report
	 * must not overwrite an input or the results, the results not the rules. */
	size_t n_gates = 0;
	for (size_t i = 0; i < n_diff_args; i += 2) {
		const char *opt = diff_args[i], *path = diff_args[i + 1];
		if (!strcmp(opt, "--fail-on") && ++n_gates > DIFF_MAX_GATES)
			BAD("at most %d --fail-on", DIFF_MAX_GATES);
		if (!strcmp(opt, "--rules")) {
			if (bp.output && cli_same_file(path, bp.output))
				BAD("-o '%s' is also the --rules file", bp.output);
			continue;
		}
		if (!strcmp(opt, "--fail-on") || !strcmp(path, "-"))
			continue;
		if (!strcmp(opt, "--json"))
			opt = "--report-json"; /* passed to the diff as its --json */
		if (bp.output && cli_same_file(path, bp.output))
			BAD("%s '%s' is also the results file (-o)", opt, path);
		for (size_t k = 0; k < n_inputs; k++)
			if (cli_same_file(path, inputs[k]))
				BAD("%s '%s' is also an input ('%s'): the report would overwrite "
				    "it",
				    opt, path, inputs[k]);
	}
	/* Also under another name: opening the output truncates it. */
	for (size_t i = 0; i < n_inputs; i++) {
		if (cli_same_file(inputs[i], bp.output))
			BAD("the output '%s' is also an input ('%s'): replaying into it would "
			    "overwrite the recording",
			    bp.output, inputs[i]);
	}
	if (bp.filter.since_ns && bp.filter.until_ns && bp.filter.until_ns <= bp.filter.since_ns)
		BAD("--until must be after --since");
	rw.set = sets;
	rw.n_set = n_sets;
	rw.del = dels;
	rw.n_del = n_dels;
	char rwerr[256];
	if (replay_rewrite_check(&rw, rwerr, sizeof(rwerr)))
		BAD("%s", rwerr);
	for (size_t i = 0; i < n_dels; i++)
		if (!strcasecmp(dels[i], "host"))
			fprintf(stderr,
				"dyetap replay: warning: --del-header %s sends HTTP/1.1 "
				"requests without Host, which servers answer with 400 "
				"(RFC 9112 §3.2)\n",
				dels[i]);
	struct replay_guard *guard = NULL;
	int grc = make_guard(targets, n_targets, production, &guard);
	if (grc)
		return grc;
	bp.guard = guard;
	if (!bp.loops && !bp.duration_ns)
		fprintf(stderr, "dyetap replay: --loop 0 runs until Ctrl-C\n");
	bp.inputs = inputs;
	bp.n_inputs = n_inputs;
	bp.engine.targets = targets;
	bp.engine.n_targets = n_targets;
	bp.engine.rewrite = &rw;
	bp.order = (int)order;
	hooks.results = bp.output;
	hooks.targets = targets;
	hooks.n_targets = n_targets;
	if (hooks.n_before) {
		bp.before = run_before;
		bp.before_ctx = &hooks;
	}
	struct prog_ctx pc = {false};
	if (!quiet && isatty(STDERR_FILENO)) {
		bp.progress = show_progress;
		bp.progress_ctx = &pc;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* One descriptor per target connection: allow as many as the hard limit. */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	static struct replay_summary sum;
	char err[1024] = "";
	/* Secrets: the rules given here and the recordings' own. */
	static struct redact_spec rspec;
	mem_free(rspec.rules);
	rspec.rules = NULL;
	struct replay_redact rr = {.create = redactor_create,
				   .destroy = redactor_destroy,
				   .session = redactor_session,
				   .ctx = &rspec};
	int rrc = gather_redactions(own_redact, inputs, n_inputs, &rspec, &rr.sessions);
	if (rrc) {
		replay_guard_free(guard);
		return rrc;
	}
	rr.rules = rspec.rules;
	rr.n_rules = rspec.n;
	if (rspec.n)
		bp.redact = &rr;
	int rc = replay_batch_run(&bp, &sum, err, sizeof(err));
	replay_guard_free(guard);
	if (pc.shown)
		fputc('\n', stderr);
	if (rc) {
		fprintf(stderr, "dyetap replay: %s\n", err[0] ? err : strerror(-rc));
		if (sum.causes[0].n) {
			fprintf(stderr, "dyetap replay: failed requests by cause:\n");
			print_causes(stderr, &sum, "  ");
		}
		if (rc == -EINTR)
			return 130; /* stopped before the first send: 128 + SIGINT */
		if (sum.input_error)
			return 2;
		/* A runtime failure after the targets were touched: --after still
		 * runs (it may stop or clean up what --before started). */
		for (size_t i = 0; rc != -ECANCELED && i < hooks.n_after; i++)
			if (run_hook(&hooks, "--after", hooks.after[i], err, sizeof(err)))
				fprintf(stderr, "dyetap replay: %s\n", err);
		return 3;
	}
	if (json)
		print_json(&sum, bp.output);
	else
		print_text(&sum, bp.output);
	/* Fail closed: a replay where nothing got an answer is no result. */
	bool all_failed = sum.stats.sent > 0 && sum.stats.ok == 0 && !sum.interrupted;
	if (all_failed) {
		fprintf(stderr,
			"dyetap replay: every request failed (%llu of %llu): nothing to compare; "
			"causes:\n",
			(unsigned long long)sum.stats.sent, (unsigned long long)sum.stats.sent);
		print_causes(stderr, &sum, "  ");
	}
	/* Nor is one that sent nothing: every session skipped (or none), unless
	 * only --shard left this shard empty (the other shards have them). */
	const struct replay_stats *st = &sum.stats;
	uint64_t skipped = replay_stats_skipped(st);
	bool none_sent = !sum.interrupted && st->sent == 0 &&
			 !(st->skipped_shard && skipped == st->skipped_shard);
	if (none_sent && !skipped) {
		fprintf(stderr, "dyetap replay: no request was sent: the recordings hold no "
				"session (none was read): nothing to compare\n");
	} else if (none_sent) {
		fprintf(stderr,
			"dyetap replay: no request was sent: %llu sessions read, all skipped "
			"(filter %llu, writes %llu, after writes %llu, truncated %llu, unsupported "
			"%llu, unsafe %llu, shard %llu): nothing to compare%s%s\n",
			(unsigned long long)skipped, (unsigned long long)st->skipped_filter,
			(unsigned long long)st->skipped_writes,
			(unsigned long long)st->skipped_after_writes,
			(unsigned long long)st->skipped_truncated,
			(unsigned long long)st->skipped_unsupported,
			(unsigned long long)st->skipped_unsafe,
			(unsigned long long)st->skipped_shard,
			st->skipped_writes ? "; --allow-writes sends methods other than GET, HEAD, "
					     "OPTIONS (to a target whose data may change)"
					   : "",
			st->skipped_after_writes
			    ? "; --after-skipped-writes send sends the reads after writes not sent "
			      "(to a target that sees production's data)"
			    : "");
	}
	all_failed |= none_sent;
	for (size_t i = 0; i < hooks.n_after; i++) {
		if (run_hook(&hooks, "--after", hooks.after[i], err, sizeof(err))) {
			fprintf(stderr, "dyetap replay: %s%s\n", err,
				diff && !sum.interrupted ? ": not diffing" : "");
			return 3;
		}
	}
	if (!diff || sum.interrupted)
		return all_failed ? 3 : 0;
	/* Replay and diff in one run: the same code as `dyetap diff RESULTS`. */
	char *dargv[MAX_ITEMS * 2 + 5];
	int dargc = 0;
	dargv[dargc++] = "diff";
	dargv[dargc++] = (char *)bp.output;
	for (size_t i = 0; i < n_diff_args; i++)
		dargv[dargc++] = diff_args[i];
	if (json)
		dargv[dargc++] = "--quiet"; /* keep stdout one JSON object */
	dargv[dargc] = NULL;
	fflush(stdout);
	int drc = cmd_diff(dargc, dargv);
	return all_failed ? 3 : drc;
}
