/* SPDX-License-Identifier: MIT */
/*
 * fp_main.c - `dyetap-fastpath`: EAL and port setup, lcore roles, the
 * control loop (stop conditions, periodic stats), DPDK telemetry, and the
 * final report. The per-packet work lives in fp_rx.c and fp_worker.c.
 *
 * Lcore roles: the main lcore is the control lcore; the other lcores of the
 * EAL list (-l) become RX lcores (one or more RX queues each, round-robin
 * over every port and queue) and then --workers worker lcores. With a single
 * lcore, the main lcore polls RX itself and runs the control checks between
 * bursts. Everything is allocated here, before the lcores start.
 *
 * References: DPDK examples/skeleton, examples/l3fwd (port and queue setup,
 * RSS), lib/telemetry (rte_telemetry_register_cmd), docs/dpdk.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include "capture/pipeline.h"
#include "capture/recorder.h"
#include "capture/rules.h"
#include "common/cfgfile.h"
#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "dpdk/fp_private.h"
#include "replay/replay_guard.h"
#include "replay/shadow_ctl.h"
#include "dyetap_version.h"
#include "store/store.h"

struct fp_app fp_app = {.c = {.tx_port = -1}, .ts_off = -1, .tag_off = -1};

#define C(f, h) CTR_DESC(struct fp_stats, f, h)
const struct ctr_desc fp_ctr_descs[] = {
    C(rx, "packets received"),
    C(rx_bytes, "bytes received"),
    C(colored, "packets of colored flows"),
    C(uncolored, "packets freed as uncolored"),
    C(mirrored, "packets sent out the mirror port"),
    C(tx_full, "mirror packets dropped: TX queue full"),
    C(ring_full, "packets dropped: worker ring full"),
    C(nombuf, "mirror packets dropped: no mbuf for header or clone"),
    C(flows, "flows created"),
    C(flow_table_full, "packets whose flow did not fit the flow table"),
    C(undecided, "flows left uncolored: no decision within the caps"),
    C(hold_overflow, "packets dropped from a full hold queue"),
    C(pending_full, "flows left uncolored: no free pending slot"),
    C(not_ip, "packets without a TCP/UDP header"),
    C(flows_expired, "idle flows removed"),
    C(handed_off, "packets enqueued to workers"),
    C(worker_pkts, "packets dequeued by workers"),
    C(worker_written, "packets recorded by workers"),
    C(handed_off_uncolored, "packets of uncolored flows enqueued to workers to color each request"),
};
#undef C
const size_t fp_ctr_count = RTE_DIM(fp_ctr_descs);

#define NB_RXD 1024
#define NB_TXD 1024

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: dyetap-fastpath [EAL options] -- --rx PORT[,PORT...] --color "
	    "LANE=MATCH[,MATCH...] "
	    "[options]\n"
	    "\n"
	    "Receives packets on DPDK ports, colors flows by rules, mirrors colored packets\n"
	    "out a TX port and hands them to worker lcores. EAL options come first (see\n"
	    "docs/dpdk.md); the options below go after `--`.\n"
	    "\n"
	    "  --rx PORT[,PORT...]     ports to receive on (DPDK port ids)\n"
	    "  --queues N              RX queues per port, spread over RX lcores, RSS (1)\n"
	    "  --color RULE            LANE=MATCH[,MATCH...]; repeatable, first match wins;\n"
	    "                          grammar in docs/rules.md, e.g. header:x-lane=blue\n"
	    "                          cookie:lane=canary,path:/api/* sample:header:x-user-id:5%%\n"
	    "                          src:10.0.0.0/8 dst:CIDR port:N sport:N dport:N vlan:N\n"
	    "  --rules FILE            rules file, one rule per line\n"
	    "  --mirror-tx PORT        send colored packets out PORT (one TX queue per RX lcore)\n"
	    "  --mirror-mode MODE      copy | dup | vlan=ID | vxlan=SRC,DST,VNI[,DSTMAC] (copy)\n"
	    "  --workers N             worker lcores fed over rings (0)\n"
	    "  --ring-size N           packets per RX-lcore-to-worker ring (1024)\n"
	    "  -w FILE                 workers record: FILE.dyt gets the sessions of colored\n"
	    "                          flows (capture pipeline, as dyetap record), FILE.pcap\n"
	    "                          their packets; worker i > 0 writes FILE.i\n"
	    "  --uncolored record|drop keep the sessions no rule colors among those the workers\n"
	    "                          see (record; docs/dpdk.md \"Per-request coloring\")\n"
	    "  --redact KIND:NAME[:mask|drop], --redact-defaults\n"
	    "                          as dyetap record: secrets masked in what -w and\n"
	    "                          --shadow-out write (shadow requests go unchanged)\n"
	    "shadowing (workers send colored requests to lane targets, as dyetap mirror;\n"
	    "--lane implies --workers 1):\n"
	    "%s"
	    "  --shadow-ring N         requests per worker-to-sender queue (1024)\n"
	    "  --shadow-out FILE.dyt   write each shadowed session (production response) and\n"
	    "                          its shadow results (kind results; dyetap diff reads it)\n"
	    "other:\n"
	    "  --flows N               flow table entries per RX lcore (65536)\n"
	    "  --pending N             undecided flows per RX lcore (1024)\n"
	    "  --hold-budget N         packets held for undecided flows per RX lcore (2048)\n"
	    "  --hold-ms MS            an undecided flow is left uncolored after MS (500)\n"
	    "  --flow-timeout S        idle flows leave the table after S seconds (60)\n"
	    "  --mbufs N               extra mbufs in the pool (net_pcap infinite_rx keeps the\n"
	    "                          whole capture in mbufs: give its packet count)\n"
	    "  --exit-idle MS          stop when no packet arrived for MS milliseconds\n"
	    "  --count N               stop after at least N packets\n"
	    "  --stats-every S         print counters to stderr every S seconds\n"
	    "  --json                  final counters as one JSON object\n"
	    "  --config FILE           options from FILE, one per line (`lane blue=URL`); the\n"
	    "                          command line comes after (docs/operations.md)\n"
	    "  --control PATH          control socket (0600) for `dyetap ctl PATH COMMAND`:\n"
	    "                          lanes, pause, resume, rate, reload, stats\n"
	    "  SIGHUP                  reload: --config FILE, --rules FILE and the options are\n"
	    "                          read again; rules, lanes, targets and rates switch\n"
	    "  --metrics HOST:PORT     serve GET /metrics (Prometheus text format)\n"
	    "  -h, --help              this text\n"
	    "\n"
	    "Counters are also served by DPDK telemetry as /dyetap/stats.\n"
	    "Example (no NIC, no hugepages):\n"
	    "  dyetap-fastpath --no-huge -m 256 --no-pci -l 0,1 \\\n"
	    "    --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap -- \\\n"
	    "    --rx 0 --mirror-tx 0 --color blue=header:x-lane=blue --exit-idle 500\n",
	    shadow_conf_help);
}

/*
 * Lane names and count for the counters, copied at start-up into static
 * memory: the telemetry thread may ask for them until the process exits,
 * after the rule set is freed.
 */
static char lane_name[FP_MAX_LANES + 1][72];
static unsigned nlanes; /* atomic: a reload adds lanes (names written first) */
/* reload (the control thread): counts, and every rule set switched to */
static uint64_t fp_reloads, fp_reload_errors;

/* --- counters ----------------------------------------------------------------- */

void fp_stats_sum(struct fp_stats *t)
{
	const struct fp_stats *src[FP_MAX_LCORES + FP_MAX_WORKERS];
	unsigned n = 0;

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < fp_app.nrx; i++)
		src[n++] = &fp_app.rx[i]->st;
	for (unsigned i = 0; i < fp_app.nwk; i++)
		src[n++] = &fp_app.wk[i]->st;
	for (unsigned s = 0; s < n; s++) {
		for (size_t d = 0; d < fp_ctr_count; d++) {
			uint64_t *dst = (uint64_t *)(void *)((char *)t + fp_ctr_descs[d].offset);
			const uint64_t *v =
			    (const uint64_t *)(const void *)((const char *)src[s] +
							     fp_ctr_descs[d].offset);
			*dst += __atomic_load_n(v, __ATOMIC_RELAXED);
		}
		for (unsigned l = 1; l <= nlanes; l++)
			t->lane_pkts[l] += __atomic_load_n(&src[s]->lane_pkts[l], __ATOMIC_RELAXED);
	}
}

static uint64_t start_tsc; /* when the lcores were launched */

/* Sessions stored by the workers' pipelines; read only after they stopped. */
static uint64_t sessions_final = UINT64_MAX;

/* --- shadow counters in each output ------------------------------------------ */

struct sh_out {
	struct dbuf *b;	 /* JSON */
	FILE *f;	 /* text */
	const char *cur; /* JSON: the lane whose object is open */
	bool first;	 /* JSON: no member written yet in the open object */
	struct rte_tel_data *tel;
};

static void sh_json(void *ctx, const char *lane, const char *name, uint64_t v)
{
	struct sh_out *o = ctx;
	if (lane != o->cur) {
		/* Totals first, then one object per lane in "lanes". */
		dbuf_puts(o->b, o->cur ? "}," : ",\"lanes\":{");
		jsonw_cstr(o->b, lane);
		dbuf_puts(o->b, ":{");
		o->cur = lane;
		o->first = true;
	}
	if (!o->first)
		dbuf_putc(o->b, ',');
	o->first = false;
	jsonw_cstr(o->b, name);
	dbuf_printf(o->b, ":%" PRIu64, v);
}

static void sh_text(void *ctx, const char *lane, const char *name, uint64_t v)
{
	struct sh_out *o = ctx;
	char key[160];
	snprintf(key, sizeof(key), "shadow_%s%s%s", lane ? lane : "", lane ? "_" : "", name);
	fprintf(o->f, "%-16s %" PRIu64 "\n", key, v);
}

static void sh_tel(void *ctx, const char *lane, const char *name, uint64_t v)
{
	struct sh_out *o = ctx;
	char key[RTE_TEL_MAX_STRING_LEN];
	snprintf(key, sizeof(key), "%s%s%s", lane ? lane : "", lane ? "_" : "", name);
	rte_tel_data_add_dict_u64(o->tel, key, v);
}

/*
 * The workers' capture counters (fp_record_capture_counters()) in a new
 * set; NULL without pipelines, or memory: the report goes on without them.
 */
static struct ctr_set *capture_counters(void)
{
	struct ctr_set *set = fp_app.nwk && fp_app.wk[0]->rec ? ctr_set_create(0) : NULL;
	if (set)
		(void)fp_record_capture_counters(set);
	return set;
}

/* Every counter as one JSON object and a newline into @p b (any thread). */
static void stats_json(struct dbuf *b)
{
	struct fp_stats t;
	uint64_t ms = start_tsc ? (rte_rdtsc() - start_tsc) * 1000 / rte_get_tsc_hz() : 0;
	struct ctr_set *cap = capture_counters();
	fp_stats_sum(&t);
	dbuf_putc(b, '{');
	for (size_t d = 0; d < fp_ctr_count; d++)
		dbuf_printf(b, "%s\"%s\":%" PRIu64, d ? "," : "", fp_ctr_descs[d].name,
			    ctr_get(&t, &fp_ctr_descs[d]));
	if (cap && ctr_set_count(cap)) {
		dbuf_putc(b, ',');
		ctr_set_json(cap, b);
	}
	dbuf_puts(b, ",\"lanes\":{");
	for (unsigned l = 1; l <= nlanes; l++) {
		if (l > 1)
			dbuf_putc(b, ',');
		jsonw_cstr(b, lane_name[l]);
		dbuf_printf(b, ":%" PRIu64, t.lane_pkts[l]);
	}
	dbuf_printf(
	    b, "},\"elapsed_ms\":%" PRIu64 ",\"reloads\":%" PRIu64 ",\"reload_errors\":%" PRIu64,
	    ms, __atomic_load_n(&fp_reloads, __ATOMIC_RELAXED),
	    __atomic_load_n(&fp_reload_errors, __ATOMIC_RELAXED));
	if (fp_app.sh.nlanes) {
		struct sh_out o = {.b = b, .first = true};
		dbuf_puts(b, ",\"shadow\":{");
		fp_shadow_report(sh_json, &o);
		dbuf_puts(b, o.cur ? "}}}" : "}");
	}
	if (sessions_final != UINT64_MAX)
		dbuf_printf(b, ",\"sessions\":%" PRIu64, sessions_final);
	dbuf_puts(b, "}\n");
	ctr_set_free(cap);
}

static void stats_print(FILE *out, bool json)
{
	struct fp_stats t;
	uint64_t ms = start_tsc ? (rte_rdtsc() - start_tsc) * 1000 / rte_get_tsc_hz() : 0;
	fp_stats_sum(&t);
	if (json) {
		struct dbuf b;
		dbuf_init(&b, 1 << 16);
		stats_json(&b);
		fwrite(b.data, 1, b.len, out);
		dbuf_release(&b);
	} else {
		struct ctr_set *cap = capture_counters();
		for (size_t d = 0; d < fp_ctr_count; d++)
			fprintf(out, "%-16s %" PRIu64 "\n", fp_ctr_descs[d].name,
				ctr_get(&t, &fp_ctr_descs[d]));
		for (size_t i = 0; cap && i < ctr_set_count(cap); i++)
			fprintf(out, "%-16s %" PRIu64 "\n", ctr_set_values(cap)[i].name,
				ctr_set_values(cap)[i].value);
		ctr_set_free(cap);
		for (unsigned l = 1; l <= nlanes; l++)
			fprintf(out, "lane %-11s %" PRIu64 "\n", lane_name[l], t.lane_pkts[l]);
		fprintf(out, "%-16s %" PRIu64 "\n", "elapsed_ms", ms);
		if (fp_app.sh.nlanes) {
			struct sh_out o = {.f = out};
			fp_shadow_report(sh_text, &o);
		}
		if (sessions_final != UINT64_MAX)
			fprintf(out, "%-16s %" PRIu64 "\n", "sessions", sessions_final);
	}
	fflush(out);
}

static int telemetry_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct fp_stats t;
	struct rte_tel_data *lanes = rte_tel_data_alloc();
	(void)cmd;
	(void)params;
	fp_stats_sum(&t);
	rte_tel_data_start_dict(d);
	for (size_t i = 0; i < fp_ctr_count; i++)
		rte_tel_data_add_dict_u64(d, fp_ctr_descs[i].name, ctr_get(&t, &fp_ctr_descs[i]));
	struct ctr_set *cap = capture_counters();
	for (size_t i = 0; cap && i < ctr_set_count(cap); i++)
		rte_tel_data_add_dict_u64(d, ctr_set_values(cap)[i].name,
					  ctr_set_values(cap)[i].value);
	ctr_set_free(cap);
	if (lanes) {
		rte_tel_data_start_dict(lanes);
		for (unsigned l = 1; l <= nlanes; l++)
			rte_tel_data_add_dict_u64(lanes, lane_name[l], t.lane_pkts[l]);
		if (rte_tel_data_add_dict_container(d, "lanes", lanes, 0))
			rte_tel_data_free(lanes);
	}
	if (fp_app.sh.nlanes) {
		struct sh_out o = {.tel = rte_tel_data_alloc()};
		if (o.tel) {
			rte_tel_data_start_dict(o.tel);
			fp_shadow_report(sh_tel, &o);
			if (rte_tel_data_add_dict_container(d, "shadow", o.tel, 0))
				rte_tel_data_free(o.tel);
		}
	}
	return 0;
}

/* --- control ------------------------------------------------------------------ */

static void on_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&fp_app.quit, 1, __ATOMIC_RELAXED);
}

static uint64_t ctl_last_total, ctl_last_change, ctl_last_stats, ctl_last_warn;

static void print_warnings(void)
{
	char msg[1024];
	while (fp_shadow_warning(msg, sizeof(msg)))
		fprintf(stderr, "dyetap-fastpath: %s\n", msg);
}

bool fp_control_tick(uint64_t now)
{
	uint64_t hz = rte_get_tsc_hz();
	uint64_t tot = __atomic_load_n(&fp_app.rx_total, __ATOMIC_RELAXED);

	if (tot != ctl_last_total) {
		ctl_last_total = tot;
		ctl_last_change = now;
	}
	if (fp_app.sh.nlanes && now - ctl_last_warn >= hz / 10) {
		ctl_last_warn = now;
		print_warnings(); /* the production guard or loop protection met a target */
	}
	if (fp_app.c.stats_every && now - ctl_last_stats >= hz * fp_app.c.stats_every) {
		ctl_last_stats = now;
		stats_print(stderr, fp_app.c.json);
	}
	if (fp_app.c.exit_idle_ms && now - ctl_last_change >= hz / 1000 * fp_app.c.exit_idle_ms)
		return true;
	return __atomic_load_n(&fp_app.quit, __ATOMIC_RELAXED) != 0;
}

/* --- operations: --control and --metrics (docs/operations.md) ------------------- */

/*
 * One control thread (rte_ctrl_thread_create: the CPUs left to control
 * threads, never an RX or worker lcore) serves both sockets. What it reads
 * is what telemetry reads: counters summed with relaxed loads, the shadow
 * core under its lock (fp_shadow_ctl, fp_shadow_metrics). It is stopped
 * when the RX lcores are, before the final counters are assembled.
 */
static const char *opt_control, *opt_metrics;
static struct ctl_server *fp_ctl;
static pthread_t fp_ctl_tid;
static bool fp_ctl_running;
static int fp_ctl_quit;
static volatile sig_atomic_t fp_hup; /* SIGHUP: reload, on the control thread */

static void on_hup(int sig)
{
	(void)sig;
	fp_hup = 1;
}

static int fp_reload_logged(struct dbuf *out, char *err, size_t errlen);

static int on_ctl(void *ctx, int argc, char **argv, struct dbuf *out, char *err, size_t errlen)
{
	(void)ctx;
	int rc = fp_shadow_ctl(argc, argv, out, err, errlen);
	if (rc != -ENOENT)
		return rc;
	if (!strcmp(argv[0], "stats")) {
		stats_json(out);
		return 0;
	}
	if (!strcmp(argv[0], "help")) {
		dbuf_puts(out, shadow_ctl_help);
		return 0;
	}
	if (!strcmp(argv[0], "reload"))
		return fp_reload_logged(out, err, errlen);
	if (!fp_app.sh.nlanes && (!strcmp(argv[0], "lanes") || !strcmp(argv[0], "pause") ||
				  !strcmp(argv[0], "resume") || !strcmp(argv[0], "rate"))) {
		snprintf(err, errlen, "no shadow lanes: started without --lane");
		return -EINVAL;
	}
	snprintf(err, errlen, "unknown command '%s' (try: help)", argv[0]);
	return -EINVAL;
}

static int on_metrics(void *ctx, struct dbuf *out)
{
	struct fp_stats t;
	const char *lanes[SHADOW_MAX_LANES + FP_MAX_LANES];
	size_t n = 0;
	int rc = -ENOMEM;
	(void)ctx;
	struct ctr_set *set = ctr_set_create(0);
	struct ctl_prom *p = ctl_prom_create();
	if (!set || !p)
		goto out;
	fp_stats_sum(&t);
	rc = ctr_set_table(set, "fp_", &t, fp_ctr_descs, fp_ctr_count);
	rc |= fp_record_capture_counters(set); /* as dyetap mirror's */
	for (unsigned l = 1; l <= nlanes; l++)
		rc |= ctr_set_put(set, t.lane_pkts[l], "lane_%s_packets", lane_name[l]);
	rc |= ctr_set_table(set, "fp_ctl_", ctl_server_stats(fp_ctl), ctl_ctr_descs, ctl_ctr_count);
	rc |= ctr_set_put(set, __atomic_load_n(&fp_reloads, __ATOMIC_RELAXED), "fp_reloads");
	rc |= ctr_set_put(set, __atomic_load_n(&fp_reload_errors, __ATOMIC_RELAXED),
			  "fp_reload_errors");
	rc |= fp_shadow_metrics(set, p, lanes, &n);
	/* the color rules' lanes, which may have no --lane */
	for (unsigned l = 1; l <= nlanes && n < sizeof(lanes) / sizeof(lanes[0]); l++)
		lanes[n++] = lane_name[l];
	if (rc || (rc = ctl_prom_add_set(p, set, "lane_", lanes, n)) < 0 ||
	    (rc = ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_build_info",
			       "the running program and its version", "program", "fastpath",
			       "version", DYETAP_VERSION, 1)) < 0)
		goto out;
	rc = ctl_prom_render(p, out);
out:
	ctl_prom_free(p);
	ctr_set_free(set);
	return rc ? -ENOMEM : 0;
}

static void *ctl_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&fp_ctl_quit, __ATOMIC_ACQUIRE)) {
		if (fp_ctl)
			(void)ctl_server_poll(fp_ctl, 20);
		else
			rte_delay_us_sleep(20000);
		if (fp_hup) { /* SIGHUP: the same reload as the command, logged */
			char err[1200];
			struct dbuf out;
			fp_hup = 0;
			dbuf_init(&out, 1u << 16);
			(void)fp_reload_logged(&out, err, sizeof(err));
			dbuf_release(&out);
		}
	}
	return NULL;
}

static int ctl_start(void)
{
	char err[512];
	struct ctl_server_params cp = {
	    .control_path = opt_control,
	    .metrics_addr = opt_metrics,
	    .on_command = on_ctl,
	    .on_metrics = on_metrics,
	};
	/* Without --control and --metrics the thread only serves SIGHUP. */
	fp_ctl = opt_control || opt_metrics ? ctl_server_create(&cp, err, sizeof(err)) : NULL;
	if (!fp_ctl && (opt_control || opt_metrics)) {
		fprintf(stderr, "dyetap-fastpath: %s\n", err);
		return -EINVAL;
	}
	int rc = rte_ctrl_thread_create(&fp_ctl_tid, "dyetap-ctl", NULL, ctl_main, NULL);
	if (rc) {
		fprintf(stderr, "dyetap-fastpath: cannot start the control thread: %s\n",
			strerror(rc > 0 ? rc : -rc));
		ctl_server_free(fp_ctl);
		fp_ctl = NULL;
		return -EINVAL;
	}
	fp_ctl_running = true;
	return 0;
}

static void ctl_stop(void)
{
	if (!fp_ctl_running)
		return;
	__atomic_store_n(&fp_ctl_quit, 1, __ATOMIC_RELEASE);
	pthread_join(fp_ctl_tid, NULL);
	fp_ctl_running = false;
	ctl_server_free(fp_ctl);
	fp_ctl = NULL;
}

/* The command line after the EAL's, and what its options' strings point into. */
static int fp_argc;
static char **fp_argv;
static struct fp_rules *rules_sets[64]; /* the sets switched to by reloads */
static size_t n_rules_sets;

/* --- options ------------------------------------------------------------------ */

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static int parse_mode(const char *s, struct fp_conf *c)
{
	uint64_t v;
	if (!strcmp(s, "copy")) {
		c->mode = FP_MIRROR_COPY;
		return 0;
	}
	if (!strcmp(s, "dup")) {
		c->mode = FP_MIRROR_DUP;
		return 0;
	}
	if (!strncmp(s, "vlan=", 5)) {
		c->mode = FP_MIRROR_VLAN;
		if (parse_num(s + 5, 4095, &v) || v == 0)
			return -1;
		c->vlan_id = (uint16_t)v;
		return 0;
	}
	if (!strncmp(s, "vxlan=", 6)) {
		char buf[128], *save = NULL, *tok[4] = {0};
		int n = 0;
		if (strlen(s + 6) >= sizeof(buf))
			return -1;
		memcpy(buf, s + 6, strlen(s + 6) + 1);
		for (char *t = strtok_r(buf, ",", &save); t && n < 4;
		     t = strtok_r(NULL, ",", &save))
			tok[n++] = t;
		if (n < 3 || inet_pton(AF_INET, tok[0], c->vx_src) != 1 ||
		    inet_pton(AF_INET, tok[1], c->vx_dst) != 1 || parse_num(tok[2], 0xffffff, &v))
			return -1;
		c->vni = (uint32_t)v;
		memset(c->vx_dmac, 0xff, 6);
		if (n == 4 && parse_mac(tok[3], c->vx_dmac))
			return -1;
		c->mode = FP_MIRROR_VXLAN;
		return 0;
	}
	return -1;
}

enum {
	O_RX = 256,
	O_TX,
	O_MODE,
	O_COLOR,
	O_WORKERS,
	O_RING,
	O_IDLE,
	O_COUNT,
	O_STATS,
	O_JSON,
	O_QUEUES,
	O_FLOWS,
	O_PENDING,
	O_BUDGET,
	O_HOLDMS,
	O_FTO,
	O_MBUFS,
	O_RULES,
	O_UNCOLORED,
	O_SHADOW_OPT, /* every option of replay/shadow_core.h: looked up by name */
	O_SHRING,
	O_SHOUT,
	O_REC_OPT, /* --redact, --redact-defaults (capture/recorder.h) */
	O_CONTROL,
	O_METRICS,
	O_CONFIG,
};
static const struct option fp_opts[] = {
    {"rx", required_argument, NULL, O_RX},
    {"mirror-tx", required_argument, NULL, O_TX},
    {"mirror-mode", required_argument, NULL, O_MODE},
    {"color", required_argument, NULL, O_COLOR},
    {"workers", required_argument, NULL, O_WORKERS},
    {"ring-size", required_argument, NULL, O_RING},
    {"exit-idle", required_argument, NULL, O_IDLE},
    {"count", required_argument, NULL, O_COUNT},
    {"stats-every", required_argument, NULL, O_STATS},
    {"json", no_argument, NULL, O_JSON},
    {"queues", required_argument, NULL, O_QUEUES},
    {"flows", required_argument, NULL, O_FLOWS},
    {"pending", required_argument, NULL, O_PENDING},
    {"hold-budget", required_argument, NULL, O_BUDGET},
    {"hold-ms", required_argument, NULL, O_HOLDMS},
    {"flow-timeout", required_argument, NULL, O_FTO},
    {"mbufs", required_argument, NULL, O_MBUFS},
    {"rules", required_argument, NULL, O_RULES},
    {"uncolored", required_argument, NULL, O_UNCOLORED},
    {"lane", required_argument, NULL, O_SHADOW_OPT},
    {"lane-rate", required_argument, NULL, O_SHADOW_OPT},
    {"queue", required_argument, NULL, O_SHADOW_OPT},
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
    {"shadow-ring", required_argument, NULL, O_SHRING},
    {"shadow-out", required_argument, NULL, O_SHOUT},
    {"redact", required_argument, NULL, O_REC_OPT},
    {"redact-defaults", no_argument, NULL, O_REC_OPT},
    {"control", required_argument, NULL, O_CONTROL},
    {"metrics", required_argument, NULL, O_METRICS},
    {"config", required_argument, NULL, O_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/*
 * --config FILE (docs/operations.md "Config file"): the file's lines become
 * options placed before the command line's (`--NAME=VALUE`), so one
 * parser reads both, a single-valued option of the command line replaces
 * the file's and a repeatable one adds to them. line[i] is the file line
 * of argv[i] (0: the command line's), for messages.
 */
struct fp_cfgargs {
	struct cfg cfg;
	int argc;
	char **argv;	/* argv[0], the file's options, the command line's */
	unsigned *line; /* per argv[i] */
	char **owned;	/* the strings made for the file's options */
	size_t n_owned;
};

static void cfgargs_release(struct fp_cfgargs *ca)
{
	for (size_t i = 0; i < ca->n_owned; i++)
		mem_free(ca->owned[i]);
	mem_free(ca->owned);
	mem_free(ca->argv);
	mem_free(ca->line);
	cfg_release(&ca->cfg);
	memset(ca, 0, sizeof(*ca));
}

static struct fp_cfgargs fp_cfg; /* the start's: the options point into it until exit */

/* Where the option getopt just returned came from: "FILE:LINE: " or "". */
static const char *cfgargs_where(const struct fp_cfgargs *ca, char *buf, size_t len)
{
	int i = optind - 1;
	buf[0] = 0;
	if (ca->line && i > 0 && i < ca->argc && ca->line[i])
		snprintf(buf, len, "%s:%u: ", ca->cfg.path, ca->line[i]);
	return buf;
}

static int cfgargs_build(struct fp_cfgargs *ca, int argc, char **argv, char *err, size_t errlen)
{
	const char *path = NULL;
	memset(ca, 0, sizeof(*ca));
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *p = !strcmp(argv[i], "--config") && i + 1 < argc ? argv[i + 1]
				: !strncmp(argv[i], "--config=", 9)	     ? argv[i] + 9
									     : NULL;
		if (p && path) {
			snprintf(err, errlen, "--config given twice");
			return -EINVAL;
		}
		if (p)
			path = p;
	}
	if (path && cfg_load(path, &ca->cfg, err, errlen) < 0) {
		char e[1024];
		snprintf(e, sizeof(e), "--config %s", err);
		snprintf(err, errlen, "%s", e);
		return -EINVAL;
	}
	size_t n = (size_t)argc + ca->cfg.n;
	ca->argv = mem_calloc(n + 1, sizeof(*ca->argv));
	ca->line = mem_calloc(n + 1, sizeof(*ca->line));
	ca->owned = mem_calloc(ca->cfg.n + 1, sizeof(*ca->owned));
	if (!ca->argv || !ca->line || !ca->owned)
		goto nomem;
	ca->argv[ca->argc++] = argv[0];
	for (size_t i = 0; i < ca->cfg.n; i++) {
		const struct cfg_entry *en = &ca->cfg.entries[i];
		const struct option *opt = NULL;
		for (size_t k = 0; fp_opts[k].name && !opt; k++)
			if (!strcmp(fp_opts[k].name, en->name))
				opt = &fp_opts[k];
		if (!opt || opt->val == 'h' || opt->val == O_CONFIG) {
			snprintf(
			    err, errlen,
			    "%s:%u: '%s' is not an option of dyetap-fastpath here (see --help)",
			    ca->cfg.path, en->line, en->name);
			goto fail;
		}
		if (opt->has_arg == required_argument && !en->value) {
			snprintf(err, errlen, "%s:%u: %s needs a value: '%s VALUE'", ca->cfg.path,
				 en->line, en->name, en->name);
			goto fail;
		}
		if (opt->has_arg == no_argument && en->value) {
			snprintf(err, errlen, "%s:%u: %s takes no value", ca->cfg.path, en->line,
				 en->name);
			goto fail;
		}
		size_t len = strlen(en->name) + (en->value ? strlen(en->value) : 0) + 4;
		char *a = mem_alloc(len);
		if (!a)
			goto nomem;
		ca->owned[ca->n_owned++] = a;
		if (en->value)
			snprintf(a, len, "--%s=%s", en->name, en->value);
		else
			snprintf(a, len, "--%s", en->name);
		ca->line[ca->argc] = en->line;
		ca->argv[ca->argc++] = a;
	}
	for (int i = 1; i < argc; i++)
		ca->argv[ca->argc++] = argv[i];
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	cfgargs_release(ca);
	return -EINVAL;
}

/* Refuse with a message in err/errlen, led by the config file's line when it came from there. */
#define FAIL(...)                                                                                  \
	do {                                                                                       \
		char w_[600], m_[600];                                                             \
		snprintf(m_, sizeof(m_), __VA_ARGS__);                                             \
		snprintf(err, errlen, "%s%s", cfgargs_where(&ca, w_, sizeof(w_)), m_);             \
		return -EINVAL;                                                                    \
	} while (0)

/*
 * The options into @p c and @p sh (defaults first): at start, and again
 * into scratch structs by each reload (@p reload: getopt quiet, --control
 * and --metrics untouched). *cfg_out gets what the options' strings point
 * into (release with cfgargs_release()). @return 0 or -EINVAL with a message.
 */
static int parse_args(int argc, char **argv, struct fp_conf *c, struct fp_shadow *sh, bool reload,
		      struct fp_cfgargs *cfg_out, char *err, size_t errlen)
{
	char e[512];
	uint64_t v;
	int o, rc, li = -1;
	struct fp_cfgargs ca;

	c->ring_size = 1024;
	c->queues = 1;
	c->flows = 65536;
	c->pending = 1024;
	c->hold_budget = 2048;
	c->hold_ms = 500;
	c->flow_timeout_s = 60;
	shadow_conf_init(&sh->conf);
	recorder_conf_init(&c->rec);
	sh->ring_size = 1024;
	if ((rc = cfgargs_build(&ca, argc, argv, err, errlen)) < 0)
		return rc;
	argc = ca.argc;
	argv = ca.argv;
	*cfg_out = ca;
	optind = 0; /* a full restart of getopt: a reload parses again */
	opterr = !reload;
	while ((o = getopt_long(argc, argv, "hw:", fp_opts, &li)) != -1) {
		switch (o) {
		case O_RX: {
			char buf[256], *save = NULL;
			if (strlen(optarg) >= sizeof(buf))
				goto bad;
			memcpy(buf, optarg, strlen(optarg) + 1);
			for (char *t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (c->nrx_ports == FP_MAX_PORTS || parse_num(t, 65535, &v))
					goto bad;
				c->rx_ports[c->nrx_ports++] = (uint16_t)v;
			}
			break;
		}
		case O_TX:
			if (parse_num(optarg, 65535, &v))
				goto bad;
			c->tx_port = (int)v;
			break;
		case O_MODE:
			if (parse_mode(optarg, c))
				goto bad;
			break;
		case O_COLOR:
			rc = fp_rules_add(&c->rules, optarg, e, sizeof(e));
			if (rc)
				FAIL("--color: %s", e);
			break;
		case O_RULES:
			rc = fp_rules_load_file(&c->rules, optarg, e, sizeof(e));
			if (rc)
				FAIL("--rules: %s", e);
			break;
		case O_UNCOLORED:
			if (!strcmp(optarg, "drop"))
				c->drop_uncolored = true;
			else if (strcmp(optarg, "record"))
				goto bad;
			break;
		case O_WORKERS:
			if (parse_num(optarg, FP_MAX_WORKERS, &v))
				goto bad;
			c->workers = (unsigned)v;
			break;
		case O_RING:
			if (parse_num(optarg, 1u << 20, &v) || v < 8)
				goto bad;
			c->ring_size = (unsigned)v;
			break;
		case 'w':
			c->wpath = optarg;
			break;
		case O_IDLE:
			if (parse_num(optarg, 86400000, &c->exit_idle_ms))
				goto bad;
			break;
		case O_COUNT:
			if (parse_num(optarg, UINT64_MAX, &c->count))
				goto bad;
			break;
		case O_STATS:
			if (parse_num(optarg, 86400, &v))
				goto bad;
			c->stats_every = (unsigned)v;
			break;
		case O_JSON:
			c->json = true;
			break;
		case O_QUEUES:
			if (parse_num(optarg, 4, &v) || !v)
				goto bad;
			c->queues = (unsigned)v;
			break;
		case O_FLOWS:
			if (parse_num(optarg, 1u << 24, &v) || v < 64)
				goto bad;
			c->flows = (unsigned)v;
			break;
		case O_PENDING:
			if (parse_num(optarg, 1u << 20, &v) || !v)
				goto bad;
			c->pending = (unsigned)v;
			break;
		case O_BUDGET:
			if (parse_num(optarg, 1u << 20, &v))
				goto bad;
			c->hold_budget = (unsigned)v;
			break;
		case O_HOLDMS:
			if (parse_num(optarg, 3600000, &v))
				goto bad;
			c->hold_ms = (unsigned)v;
			break;
		case O_FTO:
			if (parse_num(optarg, 86400, &v) || !v)
				goto bad;
			c->flow_timeout_s = (unsigned)v;
			break;
		case O_MBUFS:
			if (parse_num(optarg, 1u << 26, &v))
				goto bad;
			c->min_mbufs = (unsigned)v;
			break;
		case O_SHADOW_OPT:
			if (shadow_conf_option(&sh->conf, fp_opts[li].name, optarg, e, sizeof(e)) <
			    0)
				FAIL("%s", e);
			break;
		case O_SHRING:
			if (parse_num(optarg, 1u << 20, &v) || !v)
				goto bad;
			sh->ring_size = (unsigned)v;
			break;
		case O_REC_OPT:
			if (recorder_conf_option(&c->rec, fp_opts[li].name, optarg, e, sizeof(e)) <
			    0)
				FAIL("%s", e);
			break;
		case O_SHOUT:
			sh->out_path = optarg;
			break;
		case O_CONTROL:
			if (!reload) /* a reload changes neither: they may point into its file */
				opt_control = optarg;
			break;
		case O_METRICS:
			if (!reload)
				opt_metrics = optarg;
			break;
		case O_CONFIG:
			break; /* read first, by cfgargs_build() */
		case 'h':
			if (!reload) {
				usage(stdout);
				exit(0);
			}
			FAIL("bad command line");
		default:
			if (!reload)
				usage(stderr);
			FAIL("bad command line (see --help)");
		}
	}
	if (optind < argc)
		FAIL("unexpected argument '%s'", argv[optind]);
	if (!c->nrx_ports)
		FAIL("--rx PORT is required (try --help)");
	if (!c->rules.nrules && !reload)
		fprintf(stderr, "dyetap-fastpath: warning: no --color rule, nothing is colored\n");
	if (sh->out_path && !sh->conf.n_lanes)
		FAIL("--shadow-out needs --lane LANE=URL");
	if (sh->conf.n_lanes && shadow_conf_check(&sh->conf, e, sizeof(e)))
		FAIL("%s", e);
	sh->nlanes = (unsigned)sh->conf.n_lanes;
	for (unsigned i = 0; i < sh->nlanes && !reload; i++) {
		bool known = false;
		for (unsigned l = 1; l <= c->rules.nlanes; l++)
			known |= !strcmp(c->rules.lane_names[l], sh->conf.lanes[i].name);
		if (!known)
			fprintf(stderr,
				"dyetap-fastpath: warning: no --color rule gives lane '%s'; its "
				"targets get nothing\n",
				sh->conf.lanes[i].name);
	}
	if ((c->wpath || sh->nlanes) && !c->workers)
		c->workers = 1;
	return 0;
bad:
	FAIL("bad value '%s' for --%s (try --help)", optarg, li >= 0 ? fp_opts[li].name : "w");
}

#undef FAIL

/* --- reload (docs/operations.md "reload") ----------------------------------------- */

/*
 * `reload` and SIGHUP, on the control thread (never an RX or worker lcore):
 * read --config FILE and the command line again into scratch structs with
 * the start's own parser, the new rules numbered as the old ones
 * (fp_rules_seed()), and only when all of it is accepted switch: the
 * shadow core first (the sender switches at its next slice and this waits
 * for it), then the rules (RX lcores at their next burst, workers'
 * pipelines at their next loop). Flows, the recordings and the counters
 * go on. A refusal changes nothing. Other options keep their start values.
 */
static int fp_reload(struct dbuf *out, char *err, size_t errlen)
{
	struct fp_conf *c = mem_calloc(1, sizeof(*c));
	struct fp_shadow *sh = mem_calloc(1, sizeof(*sh));
	struct fp_rules *nr = mem_calloc(1, sizeof(*nr));
	const struct fp_rules *cur = fp_rules_cur();
	struct fp_cfgargs ca = {0};
	char e[1200];
	int rc = -EINVAL;

	if (n_rules_sets == RTE_DIM(rules_sets)) {
		snprintf(err, errlen, "reloaded %zu times already: restart dyetap-fastpath",
			 n_rules_sets);
		rc = -ENOSPC;
		goto out;
	}
	if (!c || !sh || !nr || fp_rules_seed(&c->rules, cur) < 0) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (parse_args(fp_argc, fp_argv, c, sh, true, &ca, e, sizeof(e))) {
		snprintf(err, errlen, "%s (nothing changed)", e);
		goto out;
	}
	if (c->rules.any_http != cur->any_http) {
		snprintf(err, errlen,
			 "the rules %s HTTP matchers (header:, path:, ...): that needs a restart "
			 "(nothing changed)",
			 c->rules.any_http ? "add" : "drop every one of the");
		goto out;
	}
	if (!sh->conf.n_lanes != !fp_app.sh.nlanes) {
		snprintf(err, errlen, "%s (nothing changed)",
			 fp_app.sh.nlanes ? "no lane left: pause lanes instead, or restart"
					  : "started without --lane: lanes need a restart");
		goto out;
	}
	/* -ETIMEDOUT: prepared, the sender switches late; the rules go on. */
	if (sh->conf.n_lanes && (rc = fp_shadow_reconfigure(&sh->conf, e, sizeof(e))) < 0 &&
	    rc != -ETIMEDOUT) {
		snprintf(err, errlen, "%s (nothing changed)", e);
		goto out;
	}
	if (rc == -ETIMEDOUT)
		fprintf(stderr, "dyetap-fastpath: reload: %s\n", e);
	*nr = c->rules;
	memset(&c->rules, 0, sizeof(c->rules));
	for (unsigned l = __atomic_load_n(&nlanes, __ATOMIC_RELAXED) + 1; l <= nr->nlanes; l++)
		snprintf(lane_name[l], sizeof(lane_name[l]), "%s", nr->lane_names[l]);
	__atomic_store_n(&nlanes, nr->nlanes, __ATOMIC_RELEASE);
	rules_sets[n_rules_sets++] = nr;
	__atomic_store_n(&fp_app.rules, nr, __ATOMIC_RELEASE);
	__atomic_add_fetch(&fp_app.rules_gen, 1, __ATOMIC_RELEASE);
	dbuf_printf(out, "reloaded: %u rules, lanes", nr->nrules);
	for (size_t i = 0; i < sh->conf.n_lanes; i++)
		dbuf_printf(out, " %s", sh->conf.lanes[i].name);
	dbuf_putc(out, '\n');
	nr = NULL;
	rc = 0;
out:
	if (c) {
		fp_rules_release(&c->rules);
		recorder_conf_release(&c->rec);
	}
	cfgargs_release(&ca);
	mem_free(nr);
	mem_free(sh);
	mem_free(c);
	__atomic_add_fetch(rc ? &fp_reload_errors : &fp_reloads, 1, __ATOMIC_RELAXED);
	return rc;
}

static int fp_reload_logged(struct dbuf *out, char *err, size_t errlen)
{
	int rc = fp_reload(out, err, errlen);
	if (rc < 0)
		fprintf(stderr, "dyetap-fastpath: reload: %s\n", err);
	else
		fprintf(stderr, "dyetap-fastpath: reload: %.*s", (int)out->len,
			(const char *)out->data);
	return rc;
}

/* --- ports -------------------------------------------------------------------- */

static int port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, bool multiseg)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t nrxd = NB_RXD, ntxd = NB_TXD;
	int rc;

	if (!rte_eth_dev_is_valid_port(port)) {
		fprintf(stderr, "dyetap-fastpath: no port %u (%u ports found; check --vdev/-a)\n",
			port, rte_eth_dev_count_avail());
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(port, &info);
	if (rc)
		return rc;
	if (nrxq > info.max_rx_queues || ntxq > info.max_tx_queues) {
		fprintf(stderr,
			"dyetap-fastpath: port %u has %u rx / %u tx queues, %u / %u needed "
			"(one TX queue per RX lcore on the mirror port)\n",
			port, info.max_rx_queues, info.max_tx_queues, nrxq, ntxq);
		return -EINVAL;
	}
	memset(&conf, 0, sizeof(conf));
	if (nrxq > 1) {
		/* Symmetric key: both directions of a flow land on the same queue. */
		static uint8_t key[52];
		for (size_t i = 0; i < sizeof(key); i += 2) {
			key[i] = 0x6d;
			key[i + 1] = 0x5a;
		}
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = key;
		conf.rx_adv_conf.rss_conf.rss_key_len =
		    info.hash_key_size ? info.hash_key_size : 40;
		conf.rx_adv_conf.rss_conf.rss_hf =
		    (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
		    info.flow_type_rss_offloads;
	}
	if (nrxq && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
	/* net_pcap always stamps the capture's own time, in microseconds. */
	if (info.driver_name && !strcmp(info.driver_name, "net_pcap"))
		fp_app.ts_mul[port] = 1000;
	if (multiseg && ntxq) {
		if (!(info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
			fprintf(stderr,
				"dyetap-fastpath: warning: port %u does not announce multi-segment "
				"TX; vlan/vxlan mirror sends chained mbufs\n",
				port);
		else
			conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	}
	rc = rte_eth_dev_configure(port, nrxq, ntxq, &conf);
	if (rc) {
		fprintf(stderr, "dyetap-fastpath: port %u: configure failed: %s\n", port,
			rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrxd, &ntxd);
	if (rc)
		return rc;
	for (uint16_t q = 0; q < nrxq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, nrxd, rte_eth_dev_socket_id(port), NULL,
					    fp_app.pool);
		if (rc) {
			fprintf(stderr, "dyetap-fastpath: port %u: rx queue %u: %s\n", port, q,
				rte_strerror(-rc));
			return rc;
		}
	}
	for (uint16_t q = 0; q < ntxq; q++) {
		rc = rte_eth_tx_queue_setup(port, q, ntxd, rte_eth_dev_socket_id(port), NULL);
		if (rc) {
			fprintf(stderr, "dyetap-fastpath: port %u: tx queue %u: %s\n", port, q,
				rte_strerror(-rc));
			return rc;
		}
	}
	rc = rte_eth_dev_start(port);
	if (rc) {
		fprintf(stderr, "dyetap-fastpath: port %u: start failed: %s\n", port,
			rte_strerror(-rc));
		return rc;
	}
	rte_eth_promiscuous_enable(port);
	return 0;
}

static bool is_rx_port(uint16_t p)
{
	for (unsigned i = 0; i < fp_app.c.nrx_ports; i++)
		if (fp_app.c.rx_ports[i] == p)
			return true;
	return false;
}

/*
 * Lcore state lives in static memory, not in DPDK's heap: the telemetry
 * thread may read the counters at any time, up to the process's exit.
 */
static struct fp_lcore lcore_mem[FP_MAX_LCORES];
static struct fp_worker worker_mem[FP_MAX_WORKERS];

/* Ports configured, in order, for shutdown. */
static uint16_t used_ports[FP_MAX_PORTS + 1];
static unsigned nused;

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* -w: a pcap dumper, or the capture pipeline's store file (fp_record.c). */
static int open_recording(struct fp_worker *wk, char *err, size_t errlen)
{
	if (ends_with(fp_app.c.wpath, ".pcap")) {
		wk->pcap = pcap_open_dead(DLT_EN10MB, 65535);
		wk->dumper = wk->pcap ? pcap_dump_open(wk->pcap, wk->path) : NULL;
		if (!wk->dumper) {
			snprintf(err, errlen, "cannot write %s: %s", wk->path,
				 wk->pcap ? pcap_geterr(wk->pcap) : "out of memory");
			return -EIO;
		}
		return 0;
	}
	return fp_record_open_worker(wk, true, err, errlen);
}

static int setup_all(void)
{
	struct fp_conf *c = &fp_app.c;
	unsigned lcores[RTE_MAX_LCORE], navail = 0, lc_id, nrx, ntasks;
	struct fp_rxq tasks[FP_MAX_RXQ];
	char err[256];
	uint64_t nmbuf;
	int rc;

	RTE_LCORE_FOREACH_WORKER(lc_id)
	lcores[navail++] = lc_id;
	ntasks = 0;
	for (unsigned p = 0; p < c->nrx_ports; p++)
		for (unsigned q = 0; q < c->queues; q++) {
			if (ntasks == FP_MAX_RXQ)
				break;
			tasks[ntasks++] = (struct fp_rxq){c->rx_ports[p], (uint16_t)q};
		}
	if (navail == 0) {
		if (c->workers) {
			fprintf(stderr, "dyetap-fastpath: workers (--workers, -w, --lane) need "
					"more lcores (-l)\n");
			return -EINVAL;
		}
		nrx = 1;
	} else {
		if (navail < 1 + c->workers) {
			fprintf(stderr,
				"dyetap-fastpath: %u lcores besides the main one; need at least %u "
				"(1 RX + %u workers), widen -l\n",
				navail, 1 + c->workers, c->workers);
			return -EINVAL;
		}
		nrx = RTE_MIN(ntasks, navail - c->workers);
		nrx = RTE_MIN(nrx, (unsigned)FP_MAX_LCORES);
	}

	/* One pool, sized for every place an mbuf can wait. */
	nmbuf = (uint64_t)ntasks * NB_RXD;
	nmbuf += (uint64_t)nrx * (c->hold_budget + FP_BURST + 2 * FP_TXB + c->workers * FP_TXB);
	nmbuf += (uint64_t)nrx * c->workers * c->ring_size + c->workers * FP_BURST;
	if (c->tx_port >= 0)
		nmbuf += (uint64_t)nrx * (NB_TXD + FP_TXB) * (c->mode == FP_MIRROR_COPY ? 1 : 3);
	nmbuf += (uint64_t)(nrx + c->workers + 1) * 256 + 1024;
	nmbuf += c->min_mbufs;
	fp_app.pool = rte_pktmbuf_pool_create("fp_pool", (unsigned)nmbuf, 256, 0,
					      RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (!fp_app.pool) {
		fprintf(stderr,
			"dyetap-fastpath: cannot create a pool of %" PRIu64
			" mbufs: %s (raise -m or use hugepages)\n",
			nmbuf, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	if (rte_mbuf_dyn_rx_timestamp_register(&fp_app.ts_off, &fp_app.ts_flag))
		fp_app.ts_off = -1;

	for (unsigned i = 0; i < nrx; i++) {
		struct fp_lcore *lc = &lcore_mem[i];
		fp_app.rx[fp_app.nrx++] = lc;
		lc->idx = i;
		lc->lcore_id = navail ? lcores[i] : rte_get_main_lcore();
		lc->txq = (uint16_t)i;
		rc = fp_rx_init(lc, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "dyetap-fastpath: %s\n", err);
			return rc;
		}
	}
	for (unsigned t = 0; t < ntasks; t++) {
		struct fp_lcore *lc = fp_app.rx[t % nrx];
		lc->q[lc->nq++] = tasks[t];
	}
	for (unsigned w = 0; w < c->workers; w++) {
		struct fp_worker *wk = &worker_mem[w];
		fp_app.wk[fp_app.nwk++] = wk;
		wk->idx = w;
		wk->lcore_id = lcores[nrx + w];
		for (unsigned i = 0; i < nrx; i++) {
			char name[RTE_RING_NAMESIZE];
			struct rte_ring *r;
			snprintf(name, sizeof(name), "fp_ring_%u_%u", i, w);
			r = rte_ring_create(name, c->ring_size, (int)rte_socket_id(),
					    RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
			if (!r) {
				fprintf(stderr, "dyetap-fastpath: cannot create ring %s: %s\n",
					name, rte_strerror(rte_errno));
				return -ENOMEM;
			}
			fp_app.rx[i]->rings[w] = r;
			wk->rings[wk->nrings++] = r;
		}
		if (c->wpath) {
			if (w == 0)
				snprintf(wk->path, sizeof(wk->path), "%s", c->wpath);
			else
				snprintf(wk->path, sizeof(wk->path), "%s.%u", c->wpath, w);
			rc = open_recording(wk, err, sizeof(err));
			if (rc) {
				fprintf(stderr, "dyetap-fastpath: %s\n", err);
				return rc;
			}
		}
		if (fp_app.sh.nlanes && !wk->rec &&
		    fp_record_open_worker(wk, false, err, sizeof(err))) {
			fprintf(stderr, "dyetap-fastpath: worker %u: %s\n", w, err);
			return -ENOMEM;
		}
	}
	/* Pipelines in the workers and an HTTP rule: requests are colored one by one. */
	fp_app.per_request = c->rules.any_http && fp_app.nwk && fp_app.wk[0]->rec;
	if (fp_app.per_request && fp_app.wk[0]->dumper) {
		/* -w FILE.pcap keeps the packets of colored flows only: mark them. */
		static const struct rte_mbuf_dynfield tag = {
		    .name = "dyetap_colored_flow", .size = 1, .align = 1};
		fp_app.tag_off = rte_mbuf_dynfield_register(&tag);
		if (fp_app.tag_off < 0) {
			fprintf(stderr, "dyetap-fastpath: cannot register an mbuf field: %s\n",
				rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	if (fp_app.sh.out_path && fp_record_open_shadow_out(err, sizeof(err))) {
		fprintf(stderr, "dyetap-fastpath: %s\n", err);
		return -EIO;
	}
	if (fp_app.sh.nlanes) {
		rc = fp_shadow_setup(err, sizeof(err));
		if (rc) {
			fprintf(stderr, "dyetap-fastpath: %s\n", err);
			return rc;
		}
	}

	/* Ports: RX ports with --queues queues; the mirror port one TX queue per RX lcore. */
	for (unsigned i = 0; i < c->nrx_ports; i++) {
		uint16_t p = c->rx_ports[i];
		bool dup = false;
		for (unsigned j = 0; j < nused; j++)
			dup |= used_ports[j] == p;
		if (dup)
			continue;
		rc = port_setup(p, (uint16_t)c->queues, (int)p == c->tx_port ? (uint16_t)nrx : 0,
				c->mode >= FP_MIRROR_VLAN);
		if (rc)
			return rc;
		used_ports[nused++] = p;
	}
	if (c->tx_port >= 0 && !is_rx_port((uint16_t)c->tx_port)) {
		rc = port_setup((uint16_t)c->tx_port, 0, (uint16_t)nrx, c->mode >= FP_MIRROR_VLAN);
		if (rc)
			return rc;
		used_ports[nused++] = (uint16_t)c->tx_port;
	}
	if (c->tx_port >= 0) {
		struct rte_ether_addr a;
		if (rte_eth_macaddr_get((uint16_t)c->tx_port, &a) == 0)
			memcpy(fp_app.tx_mac, a.addr_bytes, 6);
	}
	return 0;
}

static int close_recording(struct recorder *r, const char *path)
{
	char msg[1024] = "";
	int rc = fp_record_close(r, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "dyetap-fastpath: %s: %s\n", path, msg);
	return rc;
}

static int teardown(void)
{
	int rc = 0;
	for (unsigned i = 0; i < nused; i++) {
		rte_eth_dev_stop(used_ports[i]);
		rte_eth_dev_close(used_ports[i]);
	}
	/* The trailers carry the shadow counters: close the files before the core goes. */
	fp_shadow_stop();
	if (close_recording(fp_app.sh.out, fp_app.sh.out_path))
		rc = -EIO;
	for (unsigned w = 0; w < fp_app.nwk; w++)
		if (close_recording(fp_app.wk[w]->rec, fp_app.wk[w]->path))
			rc = -EIO;
	fp_shadow_release();
	recorder_free(fp_app.sh.out);
	fp_app.sh.out = NULL;
	for (unsigned w = 0; w < fp_app.nwk; w++) {
		struct fp_worker *wk = fp_app.wk[w];
		recorder_free(wk->rec);
		wk->rec = NULL;
		if (wk->dumper)
			pcap_dump_close(wk->dumper);
		if (wk->pcap)
			pcap_close(wk->pcap);
		for (unsigned r = 0; r < wk->nrings; r++)
			rte_ring_free(wk->rings[r]);
	}
	for (unsigned i = 0; i < fp_app.nrx; i++)
		fp_rx_release(fp_app.rx[i]);
	rte_mempool_free(fp_app.pool);
	fp_rules_release(&fp_app.c.rules);
	recorder_conf_release(&fp_app.c.rec);
	return rc;
}

static bool wants_help(int argc, char **argv)
{
	bool app = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			app = true;
		else if ((app || i == 1) && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	int rc;

	if (wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("dyetap-fastpath %s\n", DYETAP_VERSION);
		return 0;
	}
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "dyetap-fastpath: EAL init failed: %s (see docs/dpdk.md)\n",
			rte_strerror(rte_errno));
		return 1;
	}
	argc -= rc;
	argv += rc;
	fp_argc = argc;
	fp_argv = argv;
	char perr[1200];
	rc = parse_args(argc, argv, &fp_app.c, &fp_app.sh, false, &fp_cfg, perr, sizeof(perr));
	if (rc) {
		fprintf(stderr, "dyetap-fastpath: %s\n", perr);
		fp_rules_release(&fp_app.c.rules);
		recorder_conf_release(&fp_app.c.rec);
		cfgargs_release(&fp_cfg);
		rte_eal_cleanup();
		return 2;
	}
	fp_app.rules = &fp_app.c.rules;
	for (unsigned l = 1; l <= fp_app.c.rules.nlanes; l++)
		snprintf(lane_name[l], sizeof(lane_name[l]), "%s", fp_app.c.rules.lane_names[l]);
	nlanes = fp_app.c.rules.nlanes;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_hup);
	signal(SIGPIPE, SIG_IGN); /* a shadow target closing its socket is counted, not fatal */
	rte_telemetry_register_cmd("/dyetap/stats", telemetry_stats,
				   "dyetap-fastpath counters, totals over lcores. No parameters");

	rc = setup_all();
	if (rc == 0 && fp_app.sh.nlanes) {
		char err[256];
		if (fp_app.sh.conf.production)
			fprintf(stderr, "dyetap-fastpath: production guard off (%s)\n",
				REPLAY_GUARD_FLAG);
		rc = fp_shadow_start(err, sizeof(err));
		if (rc)
			fprintf(stderr, "dyetap-fastpath: %s\n", err);
	}
	if (rc == 0) {
		uint64_t now = rte_rdtsc();
		ctl_last_change = ctl_last_stats = start_tsc = now;
		/* After start_tsc: the control thread reads it (stats). */
		rc = ctl_start();
	}
	if (rc == 0) {
		/* DPDK's launch and wait order the lcores' work against main's; the
		 * releases and acquires tell ThreadSanitizer so (fp_private.h). */
		for (unsigned w = 0; w < fp_app.nwk; w++) {
			FP_HANDOFF_RELEASE(fp_app.wk[w]);
			rte_eal_remote_launch(fp_worker_main, fp_app.wk[w], fp_app.wk[w]->lcore_id);
		}
		(void)ctl_notify("READY=1"); /* systemd Type=notify: the lcores run */
		if (fp_app.rx[0]->lcore_id == rte_get_main_lcore()) {
			fp_rx_main(fp_app.rx[0]);
		} else {
			for (unsigned i = 0; i < fp_app.nrx; i++) {
				FP_HANDOFF_RELEASE(fp_app.rx[i]);
				rte_eal_remote_launch(fp_rx_main, fp_app.rx[i],
						      fp_app.rx[i]->lcore_id);
			}
			while (!fp_control_tick(rte_rdtsc()))
				rte_delay_us_sleep(1000);
			__atomic_store_n(&fp_app.quit, 1, __ATOMIC_RELAXED);
			for (unsigned i = 0; i < fp_app.nrx; i++) {
				rte_eal_wait_lcore(fp_app.rx[i]->lcore_id);
				FP_HANDOFF_ACQUIRE(fp_app.rx[i]);
			}
		}
		ctl_stop();
		/* RX is done: workers drain what is queued, then stop. */
		__atomic_store_n(&fp_app.workers_stop, 1, __ATOMIC_RELEASE);
		for (unsigned w = 0; w < fp_app.nwk; w++) {
			rte_eal_wait_lcore(fp_app.wk[w]->lcore_id);
			FP_HANDOFF_ACQUIRE(fp_app.wk[w]);
			if (fp_app.wk[w]->rec) {
				if (sessions_final == UINT64_MAX)
					sessions_final = 0;
				sessions_final +=
				    pipe_get_stats(recorder_pipe(fp_app.wk[w]->rec))->written;
			}
		}
		/* Every request is in a ring now: the sender drains, a bounded time. */
		fp_shadow_stop();
		print_warnings();
		stats_print(stdout, fp_app.c.json);
	}
	ctl_stop();
	if (teardown() && rc == 0)
		rc = -EIO;
	for (size_t i = 0; i < n_rules_sets; i++) {
		fp_rules_release(rules_sets[i]);
		mem_free(rules_sets[i]);
	}
	cfgargs_release(&fp_cfg);
	rte_eal_cleanup();
	return rc ? 1 : 0;
}
