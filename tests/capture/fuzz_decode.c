/* SPDX-License-Identifier: MIT */
/*
 * fuzz_decode - packet decoder, flow table and the whole pipeline on
 * arbitrary bytes. Input: byte 0 picks the link type, then records of
 * [2-byte big-endian length][packet bytes]. Every packet goes through a
 * small flow table with its own consumer (checking the delivery contract)
 * and through a pipeline (decode, flows, reassembly, HTTP tracker, color
 * rules) whose sessions are checked for increasing ids. Bit 7 of byte 0
 * makes the pipeline put every idle connection to sleep (txn_dormant_mem
 * 1), so the sleep and wake paths see the same hostile input.
 */
#include <assert.h>
#include <stdint.h>
#include <stddef.h>

#include "capture/decode.h"
#include "capture/flow.h"
#include "capture/pipeline.h"
#include "capture/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t last_id;

static int p_sink(void *ctx, const struct store_session *s)
{
	(void)ctx;
	assert(s->id == last_id + 1);
	last_id = s->id;
	assert(s->req.present || s->resp.present);
	return 0;
}

static void *f_open(void *ctx, const struct flow_info *i)
{
	(void)i;
	return ctx;
}

static void f_data(void *ctx, void *c, int dir, const uint8_t *d, size_t n,
		   const struct flow_seg *seg)
{
	(void)ctx, (void)c, (void)seg, (void)dir; /* dir is only read by assert() */
	assert(dir == 0 || dir == 1);
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < n; i++)
		sink ^= d[i];
	(void)sink;
}

static void f_gap(void *ctx, void *c, int dir, uint64_t n, int64_t ts)
{
	(void)ctx, (void)c, (void)dir, (void)n, (void)ts;
}

static void f_close(void *ctx, void *c, enum flow_end how, int64_t ts)
{
	(void)ctx, (void)c, (void)how, (void)ts;
}

static const struct flow_ops ops = {f_open, f_data, f_gap, f_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int links[] = {DECODE_LINK_ETH,  DECODE_LINK_RAW, DECODE_LINK_NULL,
				    DECODE_LINK_LOOP, DECODE_LINK_SLL, DECODE_LINK_SLL2,
				    DECODE_LINK_IPV4, DECODE_LINK_IPV6};
	if (size < 1)
		return 0;
	int lt = links[data[0] % (sizeof(links) / sizeof(links[0]))];
	struct decode_stats ds = {0};
	struct flow_stats fs = {0};
	struct reasm_stats rs = {0};
	struct flow_params p = {.max_flows = 4,
				.reasm = {.stream_cap = 4096, .memcap = 16384},
				.ops = &ops,
				.ops_ctx = &ds,
				.stats = &fs,
				.rstats = &rs};
	struct flow_table *t = flow_table_create(&p);
	if (!t)
		return 0;
	static struct rules *rules;
	if (!rules) {
		char err[128];
		rules = rules_create();
		if (rules)
			rules_add(rules, "blue=header:x-lane=blue", err, sizeof(err));
	}
	struct pipe_params pp = {.max_flows = 4,
				 .reasm_stream_cap = 4096,
				 .max_body = 2048,
				 .txn_memcap = 1 << 16,
				 .txn_dormant_mem = (data[0] & 0x80) ? 1 : 0,
				 .rules = rules,
				 .sink = p_sink};
	struct pipe *pipe = pipe_create(&pp);
	last_id = 0;
	size_t off = 1;
	int64_t ts = 1;
	while (off + 2 <= size) {
		size_t n = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (n > size - off)
			n = size - off;
		struct decode_pkt pkt;
		if (decode_packet(lt, data + off, n, &pkt, &ds) == DECODE_TCP) {
			assert(pkt.payload_len <= pkt.payload_wire);
			assert(pkt.payload_len == 0 ||
			       (pkt.payload >= data + off &&
				pkt.payload + pkt.payload_len <= data + off + n));
			flow_packet(t, &pkt, ts);
		}
		if (pipe)
			pipe_packet(pipe, ts, lt, data + off, (uint32_t)n, (uint32_t)n);
		ts += 1000000000LL;
		off += n;
	}
	flow_finish(t);
	flow_table_free(t);
	if (pipe) {
		pipe_finish(pipe);
		pipe_free(pipe);
	}
	return 0;
}
