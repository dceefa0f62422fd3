/* SPDX-License-Identifier: MIT */
/*
 * dyetap record - capture HTTP traffic from pcap files or an interface,
 * color the transactions and write them as sessions to a store file.
 *
 * Wiring only: capture/source.h reads packets, capture/recorder.h (the
 * pipeline, redaction and the store writer with its metadata, shared
 * with `dyetap mirror` and the fast path) turns them into colored
 * sessions in a store file. SIGINT/SIGTERM
 * stop the capture; pending sessions are then emitted and the store is
 * closed with its trailer (the run's counters), so an interrupted capture
 * is a complete file. The manual is docs/capture.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "capture/pipeline.h"
#include "capture/recorder.h"
#include "capture/source.h"
#include "cli/cmds.h"
#include "common/clock.h"
#include "common/counters.h"
#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "common/units.h"
#include "interop/iop.h"
#include "store/store.h"

static struct src *rec_src;
static struct iop_src *rec_iop; /* HAR or GoReplay among the -r files (interop/iop.h) */
static volatile sig_atomic_t rec_stop;

static void rec_on_signal(int sig)
{
	(void)sig;
	rec_stop = 1;
	if (rec_src)
		src_break(rec_src);
	if (rec_iop)
		iop_src_break(rec_iop);
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: dyetap record (-r FILE [-r FILE...] | -i IFACE) [BPF FILTER] -w OUT.dyt\n"
	    "                     [--color LANE=MATCH[,MATCH...]]... [--rules FILE]\n"
	    "                     [--uncolored record|drop] [--max-body BYTES]\n"
	    "                     [--redact KIND:NAME[:mask|drop]]... [--redact-defaults]\n"
	    "                     [--duration S] [--count N] [--stats] [--json]\n"
	    "\n"
	    "Capture HTTP/1.x and h2c traffic (HTTP/2 over cleartext TCP, by prior\n"
	    "knowledge or Upgrade: h2c; docs/http2.md), color each transaction (each\n"
	    "HTTP/2 stream) by the rules and write the sessions to a store file (read it\n"
	    "with `dyetap cat` / `dyetap info`).\n"
	    "HAR 1.2 and GoReplay (.gor) files are read too (docs/interop.md).\n"
	    "\n"
	    "input:\n"
	    "  -r, --read FILE        pcap, pcapng, HAR or GoReplay file (told apart by their\n"
	    "                         content); repeat to read several in order\n"
	    "  -i, --interface IFACE  capture live (needs root or CAP_NET_RAW)\n"
	    "  BPF FILTER             trailing words, tcpdump syntax, e.g. 'tcp port 80'\n"
	    "  --count N              stop after N packets\n"
	    "  --duration S           stop after S seconds (live capture)\n"
	    "  --snaplen BYTES        live: bytes kept per packet (default 262144)\n"
	    "  --buffer-mb MB         live: kernel capture buffer (default 64)\n"
	    "  --promisc              live: promiscuous mode\n"
	    "  --immediate            live: take each packet at once instead of in blocks of\n"
	    "                         up to 20 ms (blocks hold far more packets per buffer)\n"
	    "output:\n"
	    "  -w, --write OUT.dyt    store file to create (replaced if it exists)\n"
	    "  --color LANE=MATCH,... color rule (docs/rules.md), first match wins; repeat\n"
	    "  --rules FILE           color rules, one per line\n"
	    "  --uncolored record|drop  keep sessions no rule matches (default record)\n"
	    "  --max-body BYTES       body bytes stored per message (default 1M; k/M/G)\n"
	    "  --level N              zstd level of the store (default 1; negative levels\n"
	    "                         are faster and make larger files)\n"
	    "  --redact KIND:NAME[:mask|drop]  remove a secret before it is written; KIND is\n"
	    "                         header, cookie, query, form, json (NAME a path like\n"
	    "                         $.user.token, $.items[*].card or $..token) or url\n"
	    "                         (NAME userinfo); mask (default) writes [redacted],\n"
	    "                         drop removes it; repeat\n"
	    "  --redact-defaults      Authorization, Cookie, Set-Cookie and common token and\n"
	    "                         password fields (docs/capture.md \"Redaction\")\n"
	    "limits:\n"
	    "  --max-flows N          connections tracked at once (default 262144)\n"
	    "  --idle-timeout S       close idle connections after S seconds (default 300)\n"
	    "  --reasm-memcap BYTES   out-of-order bytes buffered in all (default 64M)\n"
	    "  --http-memcap BYTES    headers and bodies buffered in all (default 1G); over it\n"
	    "                         the idlest connections are closed early (counted)\n"
	    "  --http-sleep-mem BYTES above this much HTTP memory, idle connections free their\n"
	    "                         parser state until their next byte (default 64M;\n"
	    "                         0 = always); nothing is lost\n"
	    "report:\n"
	    "  --stats                print every counter to stderr at the end\n"
	    "  --json                 print the counters as one JSON object to stdout\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "examples:\n"
	    "  dyetap record -r prod.pcap -w prod.dyt --color 'blue=header:x-lane=blue' --stats\n"
	    "  dyetap record -i eth0 'tcp port 8080' -w live.dyt --uncolored drop \\\n"
	    "      --color 'canary=cookie:lane=canary,path:/api/*'\n"
	    "\n"
	    "Stop a live capture with Ctrl-C: the file is closed cleanly. Counters and\n"
	    "policies are described in docs/capture.md.\n");
}

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

struct rec_opts {
	struct recorder_conf rc; /* input, rules, redaction (shared with mirror) */
	const char *out;
	bool drop_uncolored;
	uint64_t max_body;
	uint64_t duration_s;
	uint64_t count;
	uint64_t max_flows;
	uint64_t idle_s;
	uint64_t memcap;
	uint64_t http_memcap;
	uint64_t http_sleep_mem; /* 0: default; UINT64_MAX: given as 0 (always) */
	int level;
	bool stats;
	bool json;
	bool immediate; /* live: immediate mode instead of 20 ms blocks */
};

static int bad(const char *what, const char *val)
{
	fprintf(stderr, "dyetap record: bad %s '%s' (see dyetap record --help)\n", what, val);
	return 2;
}

/* 0 ok, 1 help printed, 2 usage error (message printed). */
static int parse_args(int argc, char **argv, struct rec_opts *o)
{
	enum {
		O_REC_OPT = 256, /* every option of capture/recorder.h: looked up by name */
		O_UNCOLORED,
		O_MAX_BODY,
		O_DURATION,
		O_COUNT,
		O_STATS,
		O_JSON,
		O_MAX_FLOWS,
		O_IDLE,
		O_MEMCAP,
		O_IMMEDIATE,
		O_LEVEL,
		O_HTTP_MEMCAP,
		O_HTTP_SLEEP_MEM,
	};
	static const struct option longopts[] = {
	    {"read", required_argument, NULL, O_REC_OPT},
	    {"interface", required_argument, NULL, O_REC_OPT},
	    {"write", required_argument, NULL, 'w'},
	    {"color", required_argument, NULL, O_REC_OPT},
	    {"rules", required_argument, NULL, O_REC_OPT},
	    {"uncolored", required_argument, NULL, O_UNCOLORED},
	    {"max-body", required_argument, NULL, O_MAX_BODY},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"count", required_argument, NULL, O_COUNT},
	    {"stats", no_argument, NULL, O_STATS},
	    {"json", no_argument, NULL, O_JSON},
	    {"max-flows", required_argument, NULL, O_MAX_FLOWS},
	    {"idle-timeout", required_argument, NULL, O_IDLE},
	    {"reasm-memcap", required_argument, NULL, O_MEMCAP},
	    {"snaplen", required_argument, NULL, O_REC_OPT},
	    {"buffer-mb", required_argument, NULL, O_REC_OPT},
	    {"promisc", no_argument, NULL, O_REC_OPT},
	    {"immediate", no_argument, NULL, O_IMMEDIATE},
	    {"level", required_argument, NULL, O_LEVEL},
	    {"http-memcap", required_argument, NULL, O_HTTP_MEMCAP},
	    {"http-sleep-mem", required_argument, NULL, O_HTTP_SLEEP_MEM},
	    {"redact", required_argument, NULL, O_REC_OPT},
	    {"redact-defaults", no_argument, NULL, O_REC_OPT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char err[512];
	int c, li = -1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "r:i:w:h", longopts, &li)) != -1) {
		const char *name = c == 'r' ? "read" : c == 'i' ? "interface" : NULL;
		if (c == O_REC_OPT)
			name = longopts[li].name;
		li = -1;
		if (name) {
			if (recorder_conf_option(&o->rc, name, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "dyetap record: %s (see dyetap record --help)\n",
					err);
				return 2;
			}
			continue;
		}
		switch (c) {
		case 'w':
			o->out = optarg;
			break;
		case O_UNCOLORED:
			if (!strcmp(optarg, "drop"))
				o->drop_uncolored = true;
			else if (!strcmp(optarg, "record"))
				o->drop_uncolored = false;
			else
				return bad("--uncolored (record or drop)", optarg);
			break;
		case O_MAX_BODY:
			if (units_parse_size(optarg, &o->max_body) < 0)
				return bad("--max-body", optarg);
			break;
		case O_DURATION:
			if (parse_u64(optarg, &o->duration_s) < 0)
				return bad("--duration (seconds)", optarg);
			break;
		case O_COUNT:
			if (parse_u64(optarg, &o->count) < 0)
				return bad("--count", optarg);
			break;
		case O_STATS:
			o->stats = true;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_MAX_FLOWS:
			if (parse_u64(optarg, &o->max_flows) < 0 || !o->max_flows ||
			    o->max_flows > (1u << 30))
				return bad("--max-flows", optarg);
			break;
		case O_IDLE:
			if (parse_u64(optarg, &o->idle_s) < 0 || !o->idle_s)
				return bad("--idle-timeout (seconds)", optarg);
			break;
		case O_MEMCAP:
			if (units_parse_size(optarg, &o->memcap) < 0 || !o->memcap)
				return bad("--reasm-memcap", optarg);
			break;
		case O_HTTP_MEMCAP:
			if (units_parse_size(optarg, &o->http_memcap) < 0 || !o->http_memcap)
				return bad("--http-memcap", optarg);
			break;
		case O_HTTP_SLEEP_MEM:
			if (units_parse_size(optarg, &o->http_sleep_mem) < 0)
				return bad("--http-sleep-mem", optarg);
			if (!o->http_sleep_mem)
				o->http_sleep_mem = UINT64_MAX;
			break;
		case O_IMMEDIATE:
			o->immediate = true;
			break;
		case O_LEVEL:
			if (store_parse_level(optarg, &o->level))
				return bad("--level (zstd level, -100..22, not 0)", optarg);
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			if (optopt && optopt < 256)
				fprintf(stderr,
					"dyetap record: option -%c needs a value or is unknown\n",
					optopt);
			else
				fprintf(stderr,
					"dyetap record: unknown option or missing value: %s\n",
					argv[optind - 1]);
			fprintf(stderr, "try: dyetap record --help\n");
			return 2;
		}
	}
	if (recorder_conf_filter(&o->rc, argc - optind, argv + optind) < 0)
		return bad("BPF filter (too long)", argv[optind]);
	if (recorder_conf_check(&o->rc, o->out, err, sizeof(err))) {
		fprintf(stderr, "dyetap record: %s\ntry: dyetap record --help\n", err);
		return 2;
	}
	if (!o->out) {
		fprintf(stderr, "dyetap record: give the output file with -w OUT.dyt\n");
		return 2;
	}
	return 0;
}

static void print_progress(struct src *src, const struct pipe *pipe, int64_t t0)
{
	uint64_t done, total;
	src_progress(src, &done, &total);
	const struct pipe_stats *ps = pipe_get_stats(pipe);
	double secs = (double)(clk_mono_ns() - t0) / 1e9;
	double mb = src_is_live(src) ? (double)ps->wire_bytes / 1e6 : (double)done / 1e6;
	fprintf(stderr, "\r%" PRIu64 " packets, %.1f MB", ps->packets, mb);
	if (total)
		fprintf(stderr, " (%.0f%%)", 100.0 * (double)done / (double)total);
	fprintf(stderr, ", %" PRIu64 " sessions, %.1f MB/s   ", ps->written,
		secs > 0 ? mb / secs : 0.0);
}

/* CPU milliseconds (user + sys) of the calling thread or of the process. */
static uint64_t cpu_ms(int who)
{
	struct rusage ru;
	if (getrusage(who, &ru) != 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* --stats (stderr table) and --json (stdout object): the counters, and for
 * --json the CPU time of the capture thread (this one) and of the whole
 * process (plus the store's compression thread); not counters, so they
 * stay out of the file's trailer. */
static int print_counters(const struct rec_opts *o, const struct ctr_set *c, double secs)
{
	struct dbuf b;
	int rc = 0;
	dbuf_init(&b, 1u << 20);
	if (o->stats) {
		rc = ctr_set_text(c, &b, 36);
		if (!rc)
			fprintf(stderr, "dyetap record: counters (%.2f s):\n%s", secs,
				b.len ? (const char *)b.data : "");
		dbuf_reset(&b);
	}
	if (o->json) {
		rc |= dbuf_putc(&b, '{');
		rc |= ctr_set_json(c, &b);
		rc |= dbuf_printf(
		    &b, "%s\"cpu_capture_thread_ms\":%" PRIu64 ",\"cpu_total_ms\":%" PRIu64 "}\n",
		    ctr_set_count(c) ? "," : "", cpu_ms(RUSAGE_THREAD), cpu_ms(RUSAGE_SELF));
		if (!rc)
			fwrite(b.data, 1, b.len, stdout);
	}
	dbuf_release(&b);
	return rc ? -ENOMEM : 0;
}

static int run(struct rec_opts *o)
{
	char err[1024] = "";
	int ret = 3;
	struct recorder *rec = NULL;
	struct ctr_set *ctrs = ctr_set_create(0);
	struct src_stats ss = {0};
	struct dbuf source_desc;
	dbuf_init(&source_desc, 1u << 16);
	if (!ctrs) {
		fprintf(stderr, "dyetap record: out of memory\n");
		goto out;
	}
	struct src_params sp;
	recorder_conf_src(&o->rc, &sp);
	sp.block_ms = o->immediate ? 0 : 20;
	bool interop = !sp.iface && iop_any(sp.files, sp.n_files);
	if ((interop ? iop_source(&source_desc, sp.files, sp.n_files)
		     : recorder_source(&source_desc, "", &sp)) < 0) {
		fprintf(stderr, "dyetap record: out of memory\n");
		goto out;
	}
	struct recorder_params rp = {
	    .conf = &o->rc,
	    .drop_uncolored = o->drop_uncolored,
	    .limits =
		{
		    .max_flows = (uint32_t)o->max_flows,
		    .idle_timeout_ns = (int64_t)o->idle_s * 1000000000LL,
		    .reasm_memcap = (size_t)o->memcap,
		    .txn_memcap = (size_t)o->http_memcap,
		    .txn_dormant_mem =
			o->http_sleep_mem == UINT64_MAX ? 1 : (size_t)o->http_sleep_mem,
		    .max_body = (size_t)o->max_body,
		},
	    .source = (const char *)source_desc.data,
	    .filter = sp.filter,
	    .path = o->out,
	    .kind = "recording",
	    .level = o->level,
	    .background = true,
	};
	/* Rules and redactions first, then the input, then the output file. */
	int rc = recorder_open(&rp, &rec, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "dyetap record: %s%s\n", err,
			rc == -ENOMEM ? " (try a smaller --max-flows)" : "");
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	struct iop_stats is;
	memset(&is, 0, sizeof(is));
	if (interop)
		rec_iop = iop_src_open(&sp, &ss, &is, err, sizeof(err));
	else
		rec_src = src_open(&sp, &ss, err, sizeof(err));
	if (!rec_src && !rec_iop) {
		fprintf(stderr, "dyetap record: %s\n", err);
		ret = 2;
		goto out;
	}
	if ((rc = recorder_create_file(rec, err, sizeof(err))) < 0) {
		fprintf(stderr, "dyetap record: %s\n", err);
		ret = rc == -ENOMEM ? 3 : 2;
		goto out;
	}
	struct pipe *pipe = recorder_pipe(rec);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rec_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	bool tty = isatty(STDERR_FILENO);
	bool live = sp.iface != NULL;
	if (live) /* from here on every packet is captured (tests wait for this line) */
		fprintf(stderr, "dyetap record: capturing on %s, Ctrl-C to stop\n", sp.iface);
	int64_t t0 = clk_mono_ns(), next_progress = t0 + 500000000LL;
	int64_t deadline = o->duration_s ? t0 + (int64_t)o->duration_s * 1000000000LL : 0;
	uint64_t n = 0;
	ret = 0;
	/* A stop (signal or --duration) goes through src_break(): a live source
	 * then still delivers what the kernel took before it, until -ENODATA. */
	for (;;) {
		struct src_pkt pkt;
		rc = interop ? iop_src_next(rec_iop, &pkt) : src_next(rec_src, &pkt, 100);
		if (rc == 1) {
			pipe_packet(pipe, pkt.ts_ns, pkt.linktype, pkt.data, pkt.caplen,
				    pkt.wirelen);
			n++;
			if (o->count && n >= o->count)
				break;
			if (!live && (n & 1023))
				continue;
		} else if (rc == 0) {
			pipe_advance(pipe, clk_real_ns());
		} else if (rc == -ENODATA) {
			break;
		} else {
			fprintf(stderr, "dyetap record: %s\n",
				interop ? iop_src_error(rec_iop) : src_error(rec_src));
			ret = 3;
			break;
		}
		if (recorder_tick(rec) < 0) {
			fprintf(stderr, "dyetap record: writing %s: %s\n", o->out,
				recorder_error(rec));
			ret = 3;
			break;
		}
		int64_t now = clk_mono_ns();
		if (deadline && now >= deadline) {
			if (interop)
				iop_src_break(rec_iop);
			else
				src_break(rec_src);
			deadline = 0;
		}
		if (tty && !interop && now >= next_progress) {
			print_progress(rec_src, pipe, t0);
			next_progress = now + 500000000LL;
		}
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	recorder_end_input(rec);
	if (!interop)
		src_update_stats(rec_src);

	if (recorder_counters(rec, &ss, ctrs) < 0 ||
	    (interop && ctr_set_table(ctrs, "interop_", &is, iop_ctr_descs, iop_ctr_count) < 0)) {
		fprintf(stderr, "dyetap record: out of memory\n");
		ret = 3;
		goto out;
	}
	const struct pipe_stats *ps = pipe_get_stats(pipe);
	bool write_failed = false;
	if (recorder_close(rec, ctrs, err, sizeof(err)) < 0) {
		fprintf(stderr, "dyetap record: closing %s: %s\n", o->out, err);
		ret = 3;
		write_failed = true;
	}
	uint64_t lost = recorder_lost(rec);
	double secs = (double)(clk_mono_ns() - t0) / 1e9;
	if ((o->stats || o->json) && print_counters(o, ctrs, secs) < 0) {
		fprintf(stderr, "dyetap record: out of memory while printing the counters\n");
		ret = 3;
	}
	if (!o->stats && !o->json) {
		if (write_failed)
			/* Sessions handed to the writer may have been in a frame that failed. */
			fprintf(stderr,
				"dyetap record: %" PRIu64
				" packets; %s is incomplete: `dyetap info "
				"%s` shows what it holds\n",
				ps->packets, o->out, o->out);
		else
			fprintf(stderr,
				"dyetap record: %" PRIu64 " packets, %" PRIu64
				" sessions written to %s (%" PRIu64 " uncolored dropped)\n",
				ps->packets, ps->written, o->out, ps->dropped_uncolored);
	}
	if (ps->sink_errors || lost) {
		/* Sessions were parsed but are not in the file: say so, and fail. */
		fprintf(
		    stderr, "dyetap record: %" PRIu64 " sessions could not be written to %s (%s)\n",
		    lost, o->out, *recorder_error(rec) ? recorder_error(rec) : "see redact_errors");
		if (!ret)
			ret = 3;
	}
	if (live && ss.kernel_drops)
		fprintf(stderr,
			"dyetap record: warning: the kernel dropped %" PRIu64
			" packets (raise --buffer-mb or narrow the filter)\n",
			ss.kernel_drops);
out:
	src_close(rec_src);
	rec_src = NULL;
	iop_src_close(rec_iop);
	rec_iop = NULL;
	recorder_free(rec);
	ctr_set_free(ctrs);
	dbuf_release(&source_desc);
	return ret;
}

int cmd_record(int argc, char **argv)
{
	struct rec_opts o;
	memset(&o, 0, sizeof(o));
	recorder_conf_init(&o.rc);
	int rc = parse_args(argc, argv, &o);
	if (rc == 0)
		rc = run(&o);
	else if (rc == 1)
		rc = 0;
	recorder_conf_release(&o.rc);
	return rc;
}
