/* SPDX-License-Identifier: MIT */
/*
 * fuzz_h2 - libFuzzer target for the HTTP/2 frame parser and stream
 * tracker (capture/h2.h), HPACK decoding included.
 *
 * Input: byte 0: bit 0 = the flow's server side is the HTTP/2 client,
 * bit 1 = the connection was upgraded (stream 1 carries a fixed HTTP/1.1
 * request). Then operations: one control byte c and a 16-bit big-endian
 * length n: c & 1 is the direction, (c >> 1) & 7 the kind (0-5 data: the
 * next n bytes; 6 a gap of n bytes; 7 the end, how = 1 + ((c >> 4) & 3)).
 * Checks: every stream opened is emitted exactly once (callback count,
 * counters), slices are readable, bodies and header lists stay within
 * their caps. Seeds (tests/h2/corpus-h2) are the fixtures' connections,
 * made by tests/h2/make_seeds.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY	256
#define FUZZ_MAX_HEADER 512

static void fuzz_h2_touch(const struct store_header *h, size_t n, volatile uint8_t *x)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < h[i].name.len; j++)
			*x ^= h[i].name.ptr[j];
		for (size_t j = 0; j < h[i].value.len; j++)
			*x ^= h[i].value.ptr[j];
	}
}

static void fuzz_h2_emit(void *ctx, const struct store_session *s)
{
	uint64_t *n = ctx;
	(*n)++;
	volatile uint8_t x = 0;
	const struct store_message *m[2] = {&s->req, &s->resp};
	if (s->proto != STORE_PROTO_H2C || !s->stream_id)
		abort();
	for (int k = 0; k < 2; k++) {
		fuzz_h2_touch(m[k]->headers, m[k]->n_headers, &x);
		fuzz_h2_touch(m[k]->trailers, m[k]->n_trailers, &x);
		for (size_t j = 0; j < m[k]->body.len; j++)
			x ^= m[k]->body.ptr[j];
		for (size_t j = 0; j < m[k]->target.len; j++)
			x ^= m[k]->target.ptr[j];
		if (m[k]->body.len > FUZZ_MAX_BODY || m[k]->body.len > m[k]->body_len)
			abort();
	}
	(void)x;
}

static void fuzz_h2_request(void *ctx, const struct store_session *s)
{
	(void)ctx;
	if (s->resp.present)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint64_t emitted = 0;
	struct h2_stats st;
	memset(&st, 0, sizeof(st));
	struct h2_params prm = {.max_header_bytes = FUZZ_MAX_HEADER,
				.max_body = FUZZ_MAX_BODY,
				.max_streams = 8,
				.emit = fuzz_h2_emit,
				.on_request = fuzz_h2_request,
				.ctx = &emitted,
				.stats = &st};
	struct txn_conn_info info = {.ip_version = 4, .conn_id = 1};
	struct h2_conn *c = h2_conn_create(&prm, &info, data[0] & 1);
	if (!c)
		return 0;
	if (data[0] & 2) {
		static const struct store_header h[] = {
		    {{(const uint8_t *)"host", 4}, {(const uint8_t *)"a", 1}},
		    {{(const uint8_t *)"upgrade", 7}, {(const uint8_t *)"h2c", 3}}};
		struct store_message req = {.present = true,
					    .method = {(const uint8_t *)"GET", 3},
					    .target = {(const uint8_t *)"/", 1},
					    .version_major = 1,
					    .version_minor = 1,
					    .headers = h,
					    .n_headers = 2};
		if (h2_conn_upgrade(c, &req, 1, 1, 0) < 0)
			abort();
	}
	size_t off = 1;
	int64_t ts = 0;
	bool ended = false;
	while (off + 3 <= size && !ended) {
		uint8_t ctl = data[off];
		size_t n = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		enum txn_dir dir = (ctl & 1) ? TXN_DIR_SERVER : TXN_DIR_CLIENT;
		unsigned kind = (ctl >> 1) & 7;
		ts += 1000;
		if (kind <= 5) {
			if (n > size - off)
				n = size - off;
			h2_conn_data(c, dir, data + off, n, ts);
			off += n;
		} else if (kind == 6) {
			h2_conn_gap(c, dir, n, ts);
		} else {
			h2_conn_end(c, (enum txn_end)(1 + ((ctl >> 4) & 3)), ts);
			ended = true;
		}
	}
	if (!ended)
		h2_conn_end(c, TXN_END_EOF, ts);
	if (emitted != st.sessions_emitted || st.sessions_emitted != st.streams)
		abort();
	if (h2_conn_mem(c) > (size_t)64 << 20)
		abort();
	h2_conn_free(c);
	return 0;
}
