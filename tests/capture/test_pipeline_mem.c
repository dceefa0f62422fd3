/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline_mem - the pipeline's memory caps with packets built in
 * memory: many connections in the middle of large bodies must not hold
 * more than txn_memcap (the idlest are closed early and counted, their
 * sessions still emitted), and the flow table never holds more than
 * max_flows connections.
 */
#include <string.h>

#include "capture/decode.h"
#include "capture/pipeline.h"
#include "tests/tap.h"

static uint8_t pkt[70000];

/* Raw IPv4 + TCP segment from 10.0.0.1:port to 10.0.0.2:80 or back. */
static size_t seg(uint16_t port, int from_client, uint8_t flags, uint32_t seq, uint32_t ack,
		  const void *data, size_t n)
{
	uint8_t *ip = pkt, *t = pkt + 20;
	memset(pkt, 0, 40);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((40 + n) >> 8);
	ip[3] = (uint8_t)(40 + n);
	ip[8] = 64;
	ip[9] = 6;
	uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
	memcpy(ip + 12, from_client ? a : b, 4);
	memcpy(ip + 16, from_client ? b : a, 4);
	uint16_t sp = from_client ? port : 80, dp = from_client ? 80 : port;
	t[0] = (uint8_t)(sp >> 8), t[1] = (uint8_t)sp, t[2] = (uint8_t)(dp >> 8),
	t[3] = (uint8_t)dp;
	for (int i = 0; i < 4; i++) {
		t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
		t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
	}
	t[12] = 5 << 4;
	t[13] = flags;
	if (n)
		memcpy(t + 20, data, n);
	return 40 + n;
}

static uint64_t sessions, flagged;

static int sink(void *ctx, const struct store_session *s)
{
	(void)ctx;
	sessions++;
	flagged += s->flags != 0;
	return 0;
}

static uint64_t ctr(struct pipe *p, const char *name)
{
	struct store_counter c[256];
	size_t n = pipe_counters(p, c, 256);
	for (size_t i = 0; i < n && i < 256; i++)
		if (!strcmp(c[i].name, name))
			return c[i].value;
	return UINT64_MAX;
}

int main(void)
{
	static char body[60000];
	memset(body, 'b', sizeof(body));
	const char *req = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *hdr = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
	size_t cap = 256 << 10;
	struct pipe_params pp = {.txn_memcap = cap, .max_flows = 16, .sink = sink};
	struct pipe *p = pipe_create(&pp);
	TAP_OK(p != NULL, "pipeline created");
	int64_t ts = 1700000000LL * 1000000000LL;
	for (uint16_t i = 0; i < 20; i++) {
		uint16_t port = (uint16_t)(30000 + i);
		uint32_t c = 1000, s = 9000;
		size_t n;
		n = seg(port, 1, DECODE_TH_SYN, c, 0, NULL, 0);
		pipe_packet(p, ts++, DECODE_LINK_RAW, pkt, (uint32_t)n, (uint32_t)n);
		n = seg(port, 0, DECODE_TH_SYN | DECODE_TH_ACK, s, c + 1, NULL, 0);
		pipe_packet(p, ts++, DECODE_LINK_RAW, pkt, (uint32_t)n, (uint32_t)n);
		c++, s++;
		n = seg(port, 1, DECODE_TH_ACK, c, s, req, strlen(req));
		pipe_packet(p, ts++, DECODE_LINK_RAW, pkt, (uint32_t)n, (uint32_t)n);
		c += (uint32_t)strlen(req);
		n = seg(port, 0, DECODE_TH_ACK, s, c, hdr, strlen(hdr));
		pipe_packet(p, ts++, DECODE_LINK_RAW, pkt, (uint32_t)n, (uint32_t)n);
		s += (uint32_t)strlen(hdr);
		n = seg(port, 0, DECODE_TH_ACK, s, c, body, sizeof(body));
		pipe_packet(p, ts++, DECODE_LINK_RAW, pkt, (uint32_t)n, (uint32_t)n);
	}
	uint64_t peak = ctr(p, "pipe_txn_mem_peak");
	TAP_OK(ctr(p, "pipe_memcap_evictions") >= 10,
	       "connections evicted at the memory cap (%llu)",
	       (unsigned long long)ctr(p, "pipe_memcap_evictions"));
	TAP_OK(peak <= cap + 2 * sizeof(body), "tracker memory stayed near the cap (peak %llu)",
	       (unsigned long long)peak);
	TAP_OK(peak >= 100000, "bodies were really buffered (peak %llu)", (unsigned long long)peak);
	TAP_OK(ctr(p, "flow_active_peak") <= 16, "flow table within max_flows");
	pipe_finish(p);
	TAP_EQ_U64(sessions, 20, "every transaction emitted, evicted ones too");
	TAP_EQ_U64(flagged, 20, "all flagged incomplete (bodies cut)");
	TAP_EQ_U64(ctr(p, "pipe_written"), 20, "written counter");
	pipe_free(p);
	return tap_done();
}
