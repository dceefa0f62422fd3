/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline_pcap - the edge-case captures written by gen_pcap.py go
 * through the real source, decode, flow, reassembly, HTTP tracker and
 * color rules; the emitted sessions and the counters are checked per case.
 * Argument: the directory gen_pcap.py wrote.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "capture/pipeline.h"
#include "capture/rules.h"
#include "capture/source.h"
#include "tests/tap.h"

#define MAXS 16

struct sess {
	char method[16];
	char target[64];
	char lane[16];
	unsigned status;
	uint64_t req_body, resp_body;
	uint32_t flags;
	uint64_t id, conn_id;
	uint32_t conn_index;
	uint16_t vlan;
	uint8_t ipv;
	int resp_has_x;
};

struct run {
	struct sess s[MAXS];
	int n;
	struct store_counter ctr[512];
	size_t n_ctr;
	struct src_stats ss;
};

static int sink(void *ctx, const struct store_session *s)
{
	struct run *r = ctx;
	if (r->n == MAXS)
		return -ENOSPC;
	struct sess *o = &r->s[r->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->method, sizeof(o->method), "%.*s", (int)s->req.method.len,
		 (const char *)s->req.method.ptr);
	snprintf(o->target, sizeof(o->target), "%.*s", (int)s->req.target.len,
		 (const char *)s->req.target.ptr);
	snprintf(o->lane, sizeof(o->lane), "%.*s", (int)s->lane.len, (const char *)s->lane.ptr);
	o->status = s->resp.present ? s->resp.status : 0;
	o->req_body = s->req.body_len;
	o->resp_body = s->resp.body_len;
	o->flags = s->flags;
	o->id = s->id;
	o->conn_id = s->conn_id;
	o->conn_index = s->conn_index;
	o->vlan = s->vlan;
	o->ipv = s->ip_version;
	o->resp_has_x = s->resp.body.len && memchr(s->resp.body.ptr, 'X', s->resp.body.len);
	return 0;
}

static uint64_t ctr(const struct run *r, const char *name)
{
	for (size_t i = 0; i < r->n_ctr; i++)
		if (!strcmp(r->ctr[i].name, name))
			return r->ctr[i].value;
	if (!strncmp(name, "src_", 4))
		for (size_t i = 0; i < src_ctr_count; i++)
			if (!strcmp(src_ctr_descs[i].name, name + 4))
				return ctr_get(&r->ss, &src_ctr_descs[i]);
	printf("# no counter %s\n", name);
	return UINT64_MAX;
}

static int run_case(const char *dir, const char *name, struct run *r)
{
	char path[1024], err[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(r, 0, sizeof(*r));
	const char *files[] = {path};
	struct src_params sp = {.files = files, .n_files = 1};
	struct src *src = src_open(&sp, &r->ss, err, sizeof(err));
	if (!src) {
		printf("# %s\n", err);
		return -1;
	}
	struct rules *rules = rules_create();
	if (rules_add(rules, "blue=header:x-lane=blue", err, sizeof(err)) < 0)
		printf("# rules: %s\n", err);
	struct pipe_params pp = {.rules = rules, .sink = sink, .sink_ctx = r};
	struct pipe *p = pipe_create(&pp);
	struct src_pkt pkt;
	int rc;
	while ((rc = src_next(src, &pkt, 0)) == 1)
		pipe_packet(p, pkt.ts_ns, pkt.linktype, pkt.data, pkt.caplen, pkt.wirelen);
	pipe_finish(p);
	r->n_ctr = pipe_counters(p, r->ctr, sizeof(r->ctr) / sizeof(r->ctr[0]));
	/* names are borrowed from the pipeline: copy the ones we read later */
	static char names[512][80];
	for (size_t i = 0; i < r->n_ctr; i++) {
		snprintf(names[i], sizeof(names[i]), "%s", r->ctr[i].name);
		r->ctr[i].name = names[i];
	}
	pipe_free(p);
	rules_free(rules);
	src_close(src);
	return rc == -ENODATA ? 0 : -1;
}

/* The two transactions of gen_pcap.py's basic() conversation. */
static void check_basic(const char *name, const struct run *r)
{
	TAP_EQ_U64(r->n, 2, "%s: two sessions", name);
	if (r->n < 2)
		return;
	TAP_EQ_STR(r->s[0].method, "GET", "%s: GET", name);
	TAP_EQ_STR(r->s[0].target, "/one", "%s: /one", name);
	TAP_EQ_U64(r->s[0].status, 200, "%s: 200", name);
	TAP_EQ_U64(r->s[0].resp_body, 2500, "%s: response body length", name);
	TAP_EQ_U64(r->s[0].flags, 0, "%s: first session complete", name);
	TAP_EQ_STR(r->s[0].lane, "", "%s: first session uncolored", name);
	TAP_EQ_STR(r->s[1].method, "POST", "%s: POST", name);
	TAP_EQ_STR(r->s[1].target, "/two", "%s: /two", name);
	TAP_EQ_U64(r->s[1].status, 201, "%s: 201", name);
	TAP_EQ_U64(r->s[1].req_body, 7, "%s: request body length", name);
	TAP_EQ_U64(r->s[1].flags, 0, "%s: second session complete", name);
	TAP_EQ_STR(r->s[1].lane, "blue", "%s: second session colored blue", name);
	TAP_OK(r->s[0].id == 1 && r->s[1].id == 2, "%s: session ids 1, 2", name);
	TAP_OK(r->s[0].conn_id == 1 && r->s[1].conn_id == 1, "%s: one connection", name);
	TAP_OK(r->s[0].conn_index == 0 && r->s[1].conn_index == 1, "%s: conn_index", name);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		TAP_SKIP_ALL("usage: test_pipeline_pcap DIR");
	const char *dir = argv[1];
	static struct run r;

	static const char *plain[] = {"basic.pcap", "sll.pcap",	     "raw.pcap",
				      "null.pcap",  "reorder.pcap",  "duplicate.pcap",
				      "noise.pcap", "pcapng.pcapng", "truncated.pcap"};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		TAP_OK(run_case(dir, plain[i], &r) == 0, "%s: read to the end", plain[i]);
		check_basic(plain[i], &r);
		TAP_EQ_U64(r.s[0].ipv, 4, "%s: ipv4", plain[i]);
		TAP_EQ_U64(ctr(&r, "reasm_gaps"), 0, "%s: no gaps", plain[i]);
		TAP_EQ_U64(ctr(&r, "flow_closed_fin"), 1, "%s: closed by FIN", plain[i]);
		TAP_EQ_U64(ctr(&r, "lane_blue_sessions"), 1, "%s: blue lane counter", plain[i]);
	}
	run_case(dir, "reorder.pcap", &r);
	TAP_OK(ctr(&r, "reasm_out_of_order") >= 1, "reorder: out-of-order segments counted");
	run_case(dir, "duplicate.pcap", &r);
	TAP_OK(ctr(&r, "reasm_retrans_segments") >= 3, "duplicate: retransmissions counted");
	run_case(dir, "noise.pcap", &r);
	TAP_EQ_U64(ctr(&r, "decode_non_tcp"), 1, "noise: udp counted");
	TAP_EQ_U64(ctr(&r, "decode_ip_fragments"), 1, "noise: fragment counted");
	TAP_EQ_U64(ctr(&r, "decode_non_ip"), 1, "noise: arp counted");
	run_case(dir, "truncated.pcap", &r);
	TAP_EQ_U64(ctr(&r, "src_truncated_files"), 1, "truncated: cut file counted");

	static const char *v6[] = {"sll2.pcap", "loop6.pcap", "ipv6-ext.pcap"};
	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		TAP_OK(run_case(dir, v6[i], &r) == 0, "%s: read", v6[i]);
		check_basic(v6[i], &r);
		TAP_EQ_U64(r.s[0].ipv, 6, "%s: ipv6", v6[i]);
	}

	run_case(dir, "vlan.pcap", &r);
	check_basic("vlan", &r);
	TAP_EQ_U64(r.s[0].vlan, 42, "vlan: id 42");
	run_case(dir, "qinq.pcap", &r);
	check_basic("qinq", &r);
	TAP_EQ_U64(r.s[0].vlan, 100, "qinq: outer id 100");

	run_case(dir, "overlap-diff.pcap", &r);
	TAP_EQ_U64(r.n, 2, "overlap-diff: two sessions");
	TAP_EQ_U64(r.s[0].resp_body, 2500, "overlap-diff: body length intact");
	TAP_OK(r.s[0].resp_has_x, "overlap-diff: first-seen bytes kept");
	TAP_EQ_U64(ctr(&r, "reasm_overlap_diff"), 2, "overlap-diff: two differing overlaps");
	TAP_OK(ctr(&r, "reasm_retrans_bytes") >= 50, "overlap-diff: late rewrite dropped");
	TAP_EQ_U64(ctr(&r, "reasm_gaps"), 0, "overlap-diff: no gap");

	run_case(dir, "gap.pcap", &r);
	TAP_EQ_U64(r.n, 2, "gap: two sessions");
	TAP_OK(r.s[0].flags & STORE_F_GAP, "gap: first session flagged gap");
	TAP_EQ_STR(r.s[1].target, "/two", "gap: second request recorded");
	TAP_EQ_U64(r.s[1].flags, 0, "gap: second session complete");
	TAP_EQ_U64(ctr(&r, "reasm_gaps"), 1, "gap: one gap");
	TAP_EQ_U64(ctr(&r, "reasm_gap_bytes"), 1000, "gap: 1000 bytes lost");
	TAP_EQ_U64(ctr(&r, "reasm_gaps_by_ack"), 1, "gap: found by the ACK");

	run_case(dir, "wraparound.pcap", &r);
	TAP_EQ_U64(r.n, 2, "wraparound: two sessions");
	TAP_EQ_STR(r.s[0].target, "/wrap", "wraparound: first");
	TAP_EQ_U64(r.s[0].resp_body, 2500, "wraparound: body across 2^32");
	TAP_EQ_U64(r.s[0].flags | r.s[1].flags, 0, "wraparound: complete");
	TAP_EQ_STR(r.s[1].target, "/after", "wraparound: second");

	run_case(dir, "midstream.pcap", &r);
	TAP_EQ_U64(ctr(&r, "flow_midstream"), 1, "midstream: counted");
	int found = 0;
	for (int i = 0; i < r.n; i++)
		if (!strcmp(r.s[i].target, "/two") && r.s[i].status == 201 &&
		    (r.s[i].flags & STORE_F_MIDSTREAM))
			found = 1;
	TAP_OK(found, "midstream: the whole transaction recorded, flagged midstream");
	found = 0;
	for (int i = 0; i < r.n; i++)
		if (!strcmp(r.s[i].target, "/two") && (r.s[i].flags & STORE_F_MIDSTREAM))
			found = 1;
	TAP_OK(found, "midstream: the request recorded, flagged midstream");

	run_case(dir, "rst-mid-body.pcap", &r);
	TAP_EQ_U64(r.n, 1, "rst: one session");
	TAP_EQ_U64(r.s[0].status, 200, "rst: response seen");
	TAP_OK(r.s[0].flags & STORE_F_RESET, "rst: flagged reset");
	TAP_OK(r.s[0].flags & STORE_F_INCOMPLETE, "rst: flagged incomplete");
	TAP_EQ_U64(ctr(&r, "flow_closed_rst"), 1, "rst: counted");

	run_case(dir, "port-reuse.pcap", &r);
	TAP_EQ_U64(r.n, 3, "port reuse: three sessions");
	TAP_EQ_U64(ctr(&r, "flow_port_reuse"), 1, "port reuse: counted");
	TAP_OK(r.n == 3 && r.s[2].conn_id == 2 && r.s[2].conn_index == 0,
	       "port reuse: new connection id");
	return tap_done();
}
