/* SPDX-License-Identifier: MIT */
/*
 * test_flood - the flow table under a hash-flooding attack, counted in
 * hash-chain probes rather than timed. Two captures written by
 * bench/gen_flows_pcap.c are read through the real source and decoder
 * into a flow table: N SYNs from ordinary IPv6 sources (the control), and
 * N SYNs whose sources all had one value under the unkeyed hash the table
 * used before (the attack put all of them in one chain: N^2 / 2 probes).
 * With the keyed hash both must cost about the same: the attack at most 3
 * times the control's probes.
 *
 * Usage: test_flood CONTROL.pcap ATTACK.pcap N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/decode.h"
#include "capture/flow.h"
#include "capture/source.h"
#include "tests/tap.h"

static void *c_open(void *ctx, const struct flow_info *i)
{
	(void)ctx;
	(void)i;
	return NULL;
}

static void c_data(void *ctx, void *conn, int dir, const uint8_t *d, size_t n,
		   const struct flow_seg *seg)
{
	(void)ctx, (void)conn, (void)dir, (void)d, (void)n, (void)seg;
}

static void c_gap(void *ctx, void *conn, int dir, uint64_t n, int64_t ts)
{
	(void)ctx, (void)conn, (void)dir, (void)n, (void)ts;
}

static void c_close(void *ctx, void *conn, enum flow_end how, int64_t ts)
{
	(void)ctx, (void)conn, (void)how, (void)ts;
}

static const struct flow_ops ops = {c_open, c_data, c_gap, c_close};

/* Feed @p path to a fresh table; the probes it took, and its flows in *created. */
static uint64_t run(const char *path, uint64_t *created)
{
	const char *files[] = {path};
	struct src_params sp = {.files = files, .n_files = 1};
	struct src_stats ss = {0};
	char err[256];
	struct src *s = src_open(&sp, &ss, err, sizeof(err));
	if (!s) {
		printf("# %s\n", err);
		return UINT64_MAX;
	}
	struct flow_stats fs = {0};
	struct reasm_stats rs = {0};
	struct decode_stats ds = {0};
	struct flow_params fp = {.max_flows = 1u << 20, .ops = &ops, .stats = &fs, .rstats = &rs};
	struct flow_table *t = flow_table_create(&fp);
	struct src_pkt pkt;
	while (t && src_next(s, &pkt, 0) == 1) {
		struct decode_pkt k;
		if (decode_packet(pkt.linktype, pkt.data, pkt.caplen, &k, &ds) == DECODE_TCP)
			flow_packet(t, &k, pkt.ts_ns);
	}
	uint64_t probes = t ? flow_table_probes(t) : UINT64_MAX;
	*created = fs.created;
	flow_finish(t);
	flow_table_free(t);
	src_close(s);
	return probes;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		printf("1..0 # SKIP usage: test_flood CONTROL.pcap ATTACK.pcap N\n");
		return 0;
	}
	uint64_t n = strtoull(argv[3], NULL, 10), c_flows = 0, a_flows = 0;
	uint64_t control = run(argv[1], &c_flows);
	uint64_t attack = run(argv[2], &a_flows);
	printf("# hash-chain probes: control %llu, attack %llu (%llu flows each)\n",
	       (unsigned long long)control, (unsigned long long)attack, (unsigned long long)n);
	TAP_EQ_U64(c_flows, n, "control: %llu connections", (unsigned long long)n);
	TAP_EQ_U64(a_flows, n, "attack: %llu connections", (unsigned long long)n);
	TAP_OK(control < UINT64_MAX && attack <= 3 * control,
	       "colliding sources cost at most 3x the probes of ordinary ones");
	TAP_OK(attack <= 4 * n, "at most 4 probes per packet on average (unkeyed: N/2)");
	return tap_done();
}
