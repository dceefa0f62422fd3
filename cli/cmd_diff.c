/* SPDX-License-Identifier: MIT */
/*
 * dyetap diff - compare replayed (candidate) responses with the recorded
 * production (primary) responses of a results file, learn noise from a
 * secondary run, write the terminal summary and the JSON, JUnit and HTML
 * reports, and gate promotion with --fail-on. Manual: docs/diff.md;
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
#include "cli/cmds.h"
#include "common/dbuf.h"
#include "common/mem.h"

#define DIFF_REPORT_MAX ((size_t)1 << 30)

static void diff_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: dyetap diff RESULTS.dyt [--secondary RESULTS2.dyt] [--rules FILE]\n"
	    "                   [--proto DESCRIPTORS.pb] [--html FILE] [--json FILE] [--junit "
	    "FILE]\n"
	    "                   [--fail-on EXPR]... [--quiet] [--color|--no-color]\n"
	    "\n"
	    "Compare each replayed (candidate) response in RESULTS.dyt with the recorded\n"
	    "production (primary) response of the same session: status, headers and body\n"
	    "(JSON by path, text by line, binary by hash; gzip, deflate, br and zstd are\n"
	    "decoded first). Differences are grouped by endpoint (GET /users/{id}) and\n"
	    "signature (location + kind). Nothing is replayed: re-run with new rules freely.\n"
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
	    "  --junit FILE      write JUnit XML (one testcase per endpoint)\n"
	    "  --fail-on EXPR    exit 1 when EXPR holds; repeatable. EXPR is METRIC OP NUMBER[%%]\n"
	    "                    with OP one of > >= < <= == !=, e.g. 'diff_rate>0.1%%',\n"
	    "                    'status_changes>0', 'p99_latency_ratio>1.2'\n"
	    "  --no-default-ignores  also compare Date, ETag, X-Request-Id, ... headers\n"
	    "  --quiet           no terminal summary\n"
	    "  --color, --no-color  force or disable colors (default: when stdout is a tty)\n"
	    "  -h, --help        this help\n"
	    "\n"
	    "metrics for --fail-on:\n");
	for (int i = 0; diff_gate_metrics[i]; i++)
		fprintf(f, "  %-22s %s\n", diff_gate_metrics[i], diff_gate_metric_help[i]);
	fprintf(f, "\nexit status: 0 no gate tripped, 1 a gate tripped, 2 usage or input error,\n"
		   "3 runtime failure. A run whose data is incomplete says so at the top of\n"
		   "every report; gate it with --fail-on 'data_incomplete>0'.\n");
}

static int write_out(const char *path, const struct dbuf *b)
{
	/* Reports quote request and response data: owner-only, like store files. */
	FILE *f = stdout;
	if (strcmp(path, "-")) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0 && fchmod(fd, 0600) != 0) {
			close(fd);
			fd = -1;
		}
		f = fd >= 0 ? fdopen(fd, "wb") : NULL;
		if (!f && fd >= 0)
			close(fd);
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
	if (bad) {
		fprintf(stderr, "dyetap diff: cannot write %s: %s\n", path, strerror(errno));
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
	if (rc) {
		fprintf(stderr, "dyetap diff: cannot render %s: %s\n", path, strerror(-rc));
		dbuf_release(&b);
		return -1;
	}
	rc = write_out(path, &b);
	dbuf_release(&b);
	return rc;
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
	char err[512];
	int o;
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
				return 2;
			}
			if (diff_gate_parse(&gates[n_gates], optarg, err, sizeof(err))) {
				fprintf(stderr, "dyetap diff: --fail-on: %s\n", err);
				return 2;
			}
			n_gates++;
			break;
		case 'N':
			no_defaults = true;
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
			return 0;
		default:
			fprintf(stderr, "dyetap diff: try 'dyetap diff --help'\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, optind >= argc ? "dyetap diff: missing RESULTS.dyt\n"
					       : "dyetap diff: exactly one RESULTS.dyt expected\n");
		diff_usage(stderr);
		return 2;
	}
	const char *results = argv[optind];
	const char *outs[] = {html, json, junit};
	for (size_t i = 0; i < 3; i++) {
		const char *in = NULL;
		if (!outs[i] || !strcmp(outs[i], "-"))
			continue;
		if (cli_same_file(outs[i], results))
			in = results;
		else if (secondary && cli_same_file(outs[i], secondary))
			in = secondary;
		else if (rules_path && cli_same_file(outs[i], rules_path))
			in = rules_path;
		if (in) {
			fprintf(stderr,
				"dyetap diff: the report '%s' is also an input ('%s'): writing it "
				"would overwrite it\n",
				outs[i], in);
			return 2;
		}
	}
	struct noise_rules *rules = NULL;
	if (rules_path) {
		rules = noise_rules_load(rules_path, err, sizeof(err));
		if (!rules) {
			fprintf(stderr, "dyetap diff: %s\n", err);
			return 2;
		}
	}
	struct pb_schema *proto = NULL;
	if (proto_path) {
		proto = pb_schema_load(proto_path, err, sizeof(err));
		if (!proto) {
			fprintf(stderr, "dyetap diff: --proto %s\n", err);
			noise_rules_free(rules);
			return 2;
		}
	}
	struct diff_params p = {.rules = rules, .no_default_ignores = no_defaults, .proto = proto};
	struct diff_ctx *c = diff_ctx_create(&p);
	int ret = 3;
	if (!c) {
		fprintf(stderr, "dyetap diff: out of memory\n");
		goto out;
	}
	int rc = diff_ctx_add_file(c, results, false, err, sizeof(err));
	if (!rc && secondary)
		rc = diff_ctx_add_file(c, secondary, true, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "dyetap diff: %s\n", err);
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	if (diff_ctx_finish(c)) {
		fprintf(stderr, "dyetap diff: cannot finish the analysis\n");
		goto out;
	}
	bool tripped = false;
	for (size_t i = 0; i < n_gates; i++) {
		double v;
		bool t = diff_gate_eval(c, &gates[i], &v);
		tripped |= t;
		if (diff_ctx_add_gate_result(c, &gates[i], v, t)) {
			fprintf(stderr, "dyetap diff: out of memory\n");
			goto out;
		}
	}
	if ((json && render(c, json, report_json)) || (junit && render(c, junit, report_junit)) ||
	    (html && render(c, html, report_html)))
		goto out;
	if (!quiet) {
		struct dbuf t;
		dbuf_init(&t, DIFF_REPORT_MAX);
		report_text(c, &t, color < 0 ? isatty(STDOUT_FILENO) : color);
		/* with --json - the JSON owns stdout */
		FILE *f = json && !strcmp(json, "-") ? stderr : stdout;
		if (t.len)
			fwrite(t.data, 1, t.len, f);
		if (html)
			fprintf(f, "HTML report: %s\n", html);
		dbuf_release(&t);
	}
	ret = tripped ? 1 : 0;
out:
	diff_ctx_free(c);
	noise_rules_free(rules);
	pb_schema_free(proto);
	return ret;
}
