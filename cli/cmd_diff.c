/* SPDX-License-Identifier: MIT */
/*
 * dyetap diff - compare replayed (candidate) responses with the recorded
 * production (primary) responses of a results file (or of the shards of
 * one recording), one verdict per candidate, learn noise from a secondary
 * run, redact secrets, write the terminal summary and the JSON, JUnit and
 * HTML reports, and gate promotion with --fail-on. Manual: docs/diff.md;
 * report schema: docs/report.md; rules grammar: docs/diff-rules.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/diff.h"
#include "analysis/report.h"
#include "capture/redact.h"
#include "cli/cmds.h"
#include "common/dbuf.h"
#include "common/clock.h"
#include "common/mem.h"
#include "common/units.h"

#define DIFF_REPORT_MAX ((size_t)1 << 30)

static void diff_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: dyetap diff RESULTS.dyt [SHARD.dyt...] [--secondary RESULTS2.dyt]\n"
	    "                   [--rules FILE] [--proto DESCRIPTORS.pb] [--html FILE]\n"
	    "                   [--json FILE] [--junit FILE] [--fail-on EXPR]...\n"
	    "                   [--redact KIND:NAME[:ACTION]]... [--redact-defaults]\n"
	    "                   [--threads N] [--max-memory SIZE] [--max-window SIZE]\n"
	    "                   [--max-inflight SIZE] [--examples N] [--max-groups N]\n"
	    "                   [--max-endpoints N]\n"
	    "                   [--quiet] [--color|--no-color]\n"
	    "\n"
	    "Compare each replayed (candidate) response in RESULTS.dyt with the recorded\n"
	    "production (primary) response of the same session: status, headers and body\n"
	    "(JSON by path, text by line and word, binary by hash; gzip, deflate, br and\n"
	    "zstd are decoded first; arrays aligned by id, content, then position).\n"
	    "Differences are grouped by endpoint (GET /users/{id}) and signature (location\n"
	    "+ kind), and the groups that show the same change on several endpoints form\n"
	    "one cause; reports lead with the causes. Each candidate role (replay -t ROLE=URL, a\n"
	    "mirror lane) gets its own verdict. Several files are the shards of one\n"
	    "recording (replay --shard K/N) and merge into one report. Nothing is\n"
	    "replayed: re-run with new rules freely.\n"
	    "\n"
	    "options:\n"
	    "  --secondary FILE  results of a known-good run (baseline build, or the same\n"
	    "                    build twice) used to learn noise; results with role\n"
	    "                    \"secondary\" in RESULTS.dyt are used the same way\n"
	    "  --rules FILE      noise rules: ignore headers and JSON paths, mask regexes,\n"
	    "                    tolerances, unordered or keyed arrays (docs/diff-rules.md)\n"
	    "  --proto FILE      gRPC: a FileDescriptorSet (protoc -o FILE --include_imports\n"
	    "                    X.proto) naming message fields; without it gRPC messages\n"
	    "                    are compared by field number ($.4[*].7) (docs/diff.md)\n"
	    "  --html FILE       write one self-contained HTML report for QA\n"
	    "  --json FILE       write the JSON report (docs/report.md); '-' for stdout\n"
	    "  --junit FILE      write JUnit XML (a testcase per cause and per endpoint,\n"
	    "                    the largest first up to a cap, then one for the others)\n"
	    "  --fail-on EXPR    exit 1 when EXPR holds; repeatable. EXPR is METRIC OP NUMBER[%%]\n"
	    "                    with OP one of > >= < <= == !=, e.g. 'diff_rate>0.1%%',\n"
	    "                    'status_changes>0', 'causes>0', 'p99_latency_ratio>1.2'\n"
	    "  --no-default-ignores  also compare Date, ETag, X-Request-Id, ... headers\n"
	    "  --redact KIND:NAME[:mask|drop]  mask a secret in every report (as record's\n"
	    "                    --redact; KIND header, cookie, query, form, json, url);\n"
	    "                    the redactions written in the results files always apply\n"
	    "  --redact-defaults the default secrets: credentials headers, cookies,\n"
	    "                    password/token keys in JSON, forms and queries, user:pass@\n"
	    "  --threads N       decode and compare on N threads (1..64, default 1); the\n"
	    "                    report is the same for any N\n"
	    "  --quiet           no terminal summary and no progress line\n"
	    "  --color, --no-color  force or disable colors (default: when stdout is a tty)\n"
	    "  -h, --help        this help\n"
	    "\n"
	    "limits (docs/diff.md \"Limits\"; each one hit is counted in the reports):\n"
	    "  --max-memory SIZE memory for groups, examples, endpoints and latency\n"
	    "                    histograms (default 256M); past it new groups and endpoints\n"
	    "                    are counted under overflow entries and no example is kept\n"
	    "                    (a loss: data_incomplete; every pair is still compared)\n"
	    "  --max-window SIZE bytes of sessions held until their results come (default\n"
	    "                    64M); replay's files (result_lag 0) hold one session at a\n"
	    "                    time; a larger stated lag or none can need more: past it\n"
	    "                    sessions close early (window_closed_early, a loss)\n"
	    "  --max-inflight SIZE  with --threads: content of the frames read ahead and\n"
	    "                    held until their pairs are compared (default 64M); a frame\n"
	    "                    larger than it is read alone (frames_over_inflight)\n"
	    "  --examples N      examples kept per difference group, 1..16 (default 3)\n"
	    "  --max-groups N    difference groups per candidate (default 1000000)\n"
	    "  --max-endpoints N endpoints per candidate (default 65536)\n"
	    "\n"
	    "metrics for --fail-on:\n");
	for (int i = 0; diff_gate_metrics[i]; i++)
		fprintf(f, "  %-22s %s\n", diff_gate_metrics[i], diff_gate_metric_help[i]);
	fprintf(f,
		"\nexit status: 0 no gate tripped, 1 a gate tripped on a candidate (a gate over\n"
		"0 compared responses always trips: no evidence), 2 usage or input error,\n"
		"3 runtime failure. A run whose data is incomplete says so at the top of\n"
		"every report, naming each loss; gate it with --fail-on 'data_incomplete>0'.\n"
		"Exclusions (replay --lane, --shard, writes not allowed) are shown, not losses.\n");
}

/*
 * Reports quote request and response data: owner-only, like store files,
 * and written whole or not at all (a temporary name in the same directory,
 * renamed over PATH), so a report a CI server picks up is never cut.
 */
static int write_out(const char *path, const struct dbuf *b)
{
	FILE *f = stdout;
	char tmp[4096] = "";
	struct stat sb;
	bool direct = !strcmp(path, "-") || (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode));
	if (!direct) {
		snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0 && fchmod(fd, 0600) != 0) {
			close(fd);
			unlink(tmp);
			fd = -1;
		}
		f = fd >= 0 ? fdopen(fd, "wb") : NULL;
		if (!f && fd >= 0)
			close(fd);
	} else if (strcmp(path, "-")) {
		f = fopen(path, "wb");
	}
	if (!f) {
		fprintf(stderr, "dyetap diff: cannot create %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t n = b->len ? fwrite(b->data, 1, b->len, f) : 0;
	int bad = n != b->len || ferror(f);
	if (f != stdout)
		bad |= fclose(f) != 0;
	else
		bad |= fflush(f) != 0;
	if (!bad && !direct && rename(tmp, path) != 0)
		bad = 1;
	if (bad) {
		fprintf(stderr, "dyetap diff: cannot write %s: %s\n", path, strerror(errno));
		if (!direct)
			unlink(tmp);
		return -1;
	}
	return 0;
}

/* Whether report @p path can be written, checked before the analysis so
 * that a long run does not end in "cannot create" (0, or -1 after saying
 * why). A path that exists and is not a regular file (a terminal,
 * /dev/null, a pipe) is written directly; a directory is refused. */
static int out_path_ok(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode)) {
			fprintf(stderr,
				"dyetap diff: the report '%s' is a directory: name a file\n", path);
			return -1;
		}
		if (!S_ISREG(sb.st_mode))
			return 0;
	}
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr, "dyetap diff: cannot write the report '%s': directory '%s': %s\n",
			path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int render(const struct diff_ctx *c, const char *path,
		  int (*fn)(const struct diff_ctx *, struct dbuf *))
{
	struct dbuf b;
	dbuf_init(&b, DIFF_REPORT_MAX);
	int rc = fn(c, &b);
	if (rc == -E2BIG || rc == -ENOBUFS) {
		fprintf(stderr,
			"dyetap diff: the report %s would be over its cap of %zu MiB: not written; "
			"lower --max-memory, --max-groups, --max-endpoints or --examples\n",
			path, DIFF_REPORT_MAX >> 20);
		dbuf_release(&b);
		return -1;
	}
	if (rc) {
		fprintf(stderr, "dyetap diff: cannot render %s: %s\n", path, strerror(-rc));
		dbuf_release(&b);
		return -1;
	}
	rc = write_out(path, &b);
	dbuf_release(&b);
	return rc;
}

static int redact_hook(void *ctx, const struct store_session *in, struct store_session *out)
{
	return redact_session(ctx, in, out);
}

/* Add rule @p text unless a rule with the same canonical text is there. */
static int redact_add_once(struct redact *r, const char *text, char *err, size_t errlen)
{
	for (size_t i = 0; i < redact_count(r); i++)
		if (!strcmp(redact_text(r, i), text))
			return 0;
	return redact_add(r, text, err, errlen);
}

/* The redactions written in the inputs' headers (the recording's rules
 * carried by replay), added to @p r. Returns how many were new, -errno. */
static int inputs_redactions(struct redact *r, char **inputs, size_t n, char *err, size_t errlen)
{
	size_t before = redact_count(r);
	for (size_t i = 0; i < n; i++) {
		struct store_reader *rd = store_reader_open(inputs[i], err, errlen);
		if (!rd)
			return -EINVAL;
		const struct store_file_meta *m = store_reader_meta(rd);
		int rc = 0;
		for (size_t k = 0; !rc && k < m->n_redactions; k++)
			rc = redact_add_once(r, m->redactions[k], err, errlen);
		store_reader_free(rd);
		if (rc)
			return rc;
	}
	return (int)(redact_count(r) - before);
}

enum {
	O_REDACT = 256,
	O_REDACT_DEFAULTS,
	O_THREADS,
	O_MAX_MEMORY,
	O_MAX_WINDOW,
	O_MAX_INFLIGHT,
	O_EXAMPLES,
	O_MAX_GROUPS,
	O_MAX_ENDPOINTS
};

/* --max-memory, --max-window, --max-inflight: a size with an optional k/M/G suffix. */
static int size_opt(const char *name, const char *arg, size_t *out)
{
	uint64_t v;
	if (units_parse_size(arg, &v) || v < 4096 || v > SIZE_MAX / 2) {
		fprintf(stderr,
			"dyetap diff: --%s '%s': give a size of at least 4k, such as 64M or 1G\n",
			name, arg);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

/* --threads, --examples, --max-groups, --max-endpoints: a count. */
static int count_opt(int o, const char *arg, struct diff_params *p)
{
	static const struct {
		const char *name;
		unsigned long lo, hi;
	} r[] = {{"threads", 1, 64},
		 {"examples", 1, 16},
		 {"max-groups", 1, 100000000},
		 {"max-endpoints", 1, 10000000}};
	int i = o == O_THREADS ? 0 : o == O_EXAMPLES ? 1 : o == O_MAX_GROUPS ? 2 : 3;
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < r[i].lo || v > r[i].hi) {
		fprintf(stderr, "dyetap diff: --%s '%s': give a number from %lu to %lu\n",
			r[i].name, arg, r[i].lo, r[i].hi);
		return -1;
	}
	if (i == 0)
		p->threads = (uint32_t)v;
	else if (i == 1)
		p->examples = (uint32_t)v;
	else if (i == 2)
		p->max_groups = (uint32_t)v;
	else
		p->max_endpoints = (uint32_t)v;
	return 0;
}

struct prog_ctx {
	bool shown;
};

/* The progress line on a terminal (stderr), for diffs over a few seconds. */
static void show_progress(void *ctx, const struct diff_progress *d)
{
	struct prog_ctx *pc = ctx;
	if (d->elapsed_s < 2.0 && !pc->shown)
		return;
	pc->shown = true;
	double pct = d->file_bytes ? 100.0 * (double)d->bytes_read / (double)d->file_bytes : 0;
	const char *slash = strrchr(d->file, '/');
	fprintf(stderr, "\r\033[K%s: %.0f%%  %llu results  %.0f/s  elapsed %.0fs",
		slash ? slash + 1 : d->file, pct > 100 ? 100 : pct, (unsigned long long)d->pairs,
		d->elapsed_s > 0 ? (double)d->pairs / d->elapsed_s : 0, d->elapsed_s);
	fflush(stderr);
}

int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"secondary", required_argument, NULL, 's'},
	    {"rules", required_argument, NULL, 'r'},
	    {"proto", required_argument, NULL, 'P'},
	    {"html", required_argument, NULL, 'H'},
	    {"json", required_argument, NULL, 'j'},
	    {"junit", required_argument, NULL, 'J'},
	    {"fail-on", required_argument, NULL, 'f'},
	    {"no-default-ignores", no_argument, NULL, 'N'},
	    {"redact", required_argument, NULL, O_REDACT},
	    {"redact-defaults", no_argument, NULL, O_REDACT_DEFAULTS},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"max-memory", required_argument, NULL, O_MAX_MEMORY},
	    {"max-window", required_argument, NULL, O_MAX_WINDOW},
	    {"max-inflight", required_argument, NULL, O_MAX_INFLIGHT},
	    {"examples", required_argument, NULL, O_EXAMPLES},
	    {"max-groups", required_argument, NULL, O_MAX_GROUPS},
	    {"max-endpoints", required_argument, NULL, O_MAX_ENDPOINTS},
	    {"quiet", no_argument, NULL, 'q'},
	    {"color", no_argument, NULL, 'c'},
	    {"no-color", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *secondary = NULL, *rules_path = NULL, *html = NULL, *json = NULL, *junit = NULL;
	const char *proto_path = NULL;
	struct diff_gate gates[DIFF_MAX_GATES];
	size_t n_gates = 0;
	bool quiet = false, no_defaults = false;
	int color = -1;
	char err[1024];
	int o, ret = 2;
	struct noise_rules *rules = NULL;
	struct diff_ctx *c = NULL;
	struct diff_params p = {0};
	struct prog_ctx pc = {0};
	struct pb_schema *proto = NULL;
	struct redact *red = redact_create();
	if (!red) {
		fprintf(stderr, "dyetap diff: out of memory\n");
		return 3;
	}
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			secondary = optarg;
			break;
		case 'r':
			rules_path = optarg;
			break;
		case 'P':
			proto_path = optarg;
			break;
		case 'H':
			html = optarg;
			break;
		case 'j':
			json = optarg;
			break;
		case 'J':
			junit = optarg;
			break;
		case 'f':
			if (n_gates == DIFF_MAX_GATES) {
				fprintf(stderr, "dyetap diff: at most %d --fail-on expressions\n",
					DIFF_MAX_GATES);
				goto out;
			}
			if (diff_gate_parse(&gates[n_gates], optarg, err, sizeof(err))) {
				fprintf(stderr, "dyetap diff: --fail-on: %s\n", err);
				goto out;
			}
			n_gates++;
			break;
		case 'N':
			no_defaults = true;
			break;
		case O_REDACT:
			if (redact_add_once(red, optarg, err, sizeof(err))) {
				fprintf(stderr, "dyetap diff: --redact %s\n", err);
				goto out;
			}
			break;
		case O_REDACT_DEFAULTS:
			if (redact_add_defaults(red)) {
				fprintf(stderr, "dyetap diff: out of memory\n");
				ret = 3;
				goto out;
			}
			break;
		case O_THREADS:
		case O_EXAMPLES:
		case O_MAX_GROUPS:
		case O_MAX_ENDPOINTS:
			if (count_opt(o, optarg, &p))
				goto out;
			break;
		case O_MAX_MEMORY:
		case O_MAX_WINDOW:
			if (size_opt(o == O_MAX_MEMORY ? "max-memory" : "max-window", optarg,
				     o == O_MAX_MEMORY ? &p.max_memory : &p.max_window))
				goto out;
			break;
		case O_MAX_INFLIGHT:
			if (size_opt("max-inflight", optarg, &p.max_inflight))
				goto out;
			break;
		case 'q':
			quiet = true;
			break;
		case 'c':
			color = 1;
			break;
		case 'C':
			color = 0;
			break;
		case 'h':
			diff_usage(stdout);
			ret = 0;
			goto out;
		default:
			fprintf(stderr, "dyetap diff: try 'dyetap diff --help'\n");
			goto out;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "dyetap diff: missing RESULTS.dyt\n");
		diff_usage(stderr);
		goto out;
	}
	char **inputs = argv + optind;
	size_t n_inputs = (size_t)(argc - optind);
	const char *outs[] = {html, json, junit};
	static const char *const out_opts[] = {"--html", "--json", "--junit"};
	for (size_t i = 0; i < 3; i++) {
		const char *in = NULL;
		if (outs[i] && !outs[i][0]) {
			fprintf(stderr, "dyetap diff: %s needs a file name (or - for stdout)\n",
				out_opts[i]);
			goto out;
		}
		for (size_t k = 0; outs[i] && k < i; k++)
			if (outs[k] && cli_same_file(outs[i], outs[k])) {
				fprintf(stderr,
					"dyetap diff: %s and %s name the same file ('%s'): one "
					"report would overwrite the other%s\n",
					out_opts[k], out_opts[i], outs[i],
					strcmp(outs[i], "-") ? ""
							     : " (one report may go to stdout)");
				goto out;
			}
		if (!outs[i] || !strcmp(outs[i], "-"))
			continue;
		for (size_t k = 0; k < n_inputs && !in; k++)
			if (cli_same_file(outs[i], inputs[k]))
				in = inputs[k];
		if (!in && secondary && cli_same_file(outs[i], secondary))
			in = secondary;
		else if (!in && rules_path && cli_same_file(outs[i], rules_path))
			in = rules_path;
		if (in) {
			fprintf(stderr,
				"dyetap diff: the report '%s' is also an input ('%s'): writing it "
				"would overwrite it\n",
				outs[i], in);
			goto out;
		}
		if (out_path_ok(outs[i]))
			goto out;
	}
	for (size_t i = 0; i < n_inputs; i++)
		for (size_t k = 0; k < i; k++)
			if (cli_same_file(inputs[i], inputs[k])) {
				fprintf(stderr, "dyetap diff: '%s' is given twice ('%s')\n",
					inputs[i], inputs[k]);
				goto out;
			}
	if (rules_path) {
		rules = noise_rules_load(rules_path, err, sizeof(err));
		if (!rules) {
			fprintf(stderr, "dyetap diff: %s\n", err);
			goto out;
		}
	}
	size_t given = redact_count(red);
	int from_files = inputs_redactions(red, inputs, n_inputs, err, sizeof(err));
	if (from_files >= 0 && secondary) {
		int k = inputs_redactions(red, (char **)&secondary, 1, err, sizeof(err));
		from_files = k < 0 ? k : from_files + k;
	}
	if (from_files < 0) {
		fprintf(stderr, "dyetap diff: %s\n", err);
		ret = from_files == -ENOMEM ? 3 : 2;
		goto out;
	}
	p.rules = rules;
	p.no_default_ignores = no_defaults;
	if (!quiet && isatty(STDERR_FILENO)) {
		p.progress = show_progress;
		p.progress_ctx = &pc;
	}
	if (redact_count(red)) {
		p.redact = redact_hook;
		p.redact_ctx = red;
	}
	if (proto_path) {
		proto = pb_schema_load(proto_path, err, sizeof(err));
		if (!proto) {
			fprintf(stderr, "dyetap diff: --proto %s\n", err);
			ret = 2;
			goto out;
		}
		p.proto = proto;
	}
	c = diff_ctx_create(&p);
	ret = 3;
	if (!c) {
		fprintf(stderr, "dyetap diff: out of memory\n");
		goto out;
	}
	if (redact_count(red)) {
		snprintf(err, sizeof(err),
			 "redacted with %zu rules (%zu given here, %d from the results files)",
			 redact_count(red), given, from_files);
		if (diff_ctx_note_info(c, err)) {
			fprintf(stderr, "dyetap diff: out of memory\n");
			goto out;
		}
	}
	int rc = 0;
	for (size_t i = 0; !rc && i < n_inputs; i++)
		rc = diff_ctx_add_file(c, inputs[i], false, err, sizeof(err));
	if (!rc && secondary)
		rc = diff_ctx_add_file(c, secondary, true, err, sizeof(err));
	if (pc.shown)
		fprintf(stderr, "\r\033[K");
	if (rc) {
		fprintf(stderr, "dyetap diff: %s\n", err);
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	bool tripped = false;
	if (diff_ctx_finish(c) || diff_ctx_gates(c, gates, n_gates, &tripped)) {
		fprintf(stderr, "dyetap diff: out of memory\n");
		goto out;
	}
	/* Each report on its own: one that cannot be written (over its cap,
	 * a full disk) does not keep the others or the summary from the user;
	 * the exit status says it (3). */
	bool out_failed = false;
	if (json && render(c, json, report_json))
		out_failed = true;
	if (junit && render(c, junit, report_junit))
		out_failed = true;
	if (html && render(c, html, report_html)) {
		out_failed = true;
		html = NULL;
	}
	if (!quiet) {
		struct dbuf t;
		dbuf_init(&t, DIFF_REPORT_MAX);
		int trc = report_text(c, &t, color < 0 ? isatty(STDOUT_FILENO) : color);
		/* a report written to stdout (-) owns it: the summary goes to stderr */
		bool to_stdout = false;
		for (size_t i = 0; i < 3; i++)
			to_stdout |= outs[i] && !strcmp(outs[i], "-");
		FILE *f = to_stdout ? stderr : stdout;
		if (t.len)
			fwrite(t.data, 1, t.len, f);
		if (trc)
			fprintf(f, "dyetap diff: the summary is cut short: %s\n", strerror(-trc));
		if (html && strcmp(html, "-"))
			fprintf(f, "HTML report: %s\n", html);
		dbuf_release(&t);
	}
	ret = out_failed ? 3 : tripped ? 1 : 0;
out:
	diff_ctx_free(c);
	noise_rules_free(rules);
	pb_schema_free(proto);
	redact_free(red);
	return ret;
}
