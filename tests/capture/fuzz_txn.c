/* SPDX-License-Identifier: MIT */
/*
 * fuzz_txn - libFuzzer target for the transaction tracker (capture/txn.h).
 *
 * Input: byte 0 bit 0 = midstream, bit 1 = TCP positions (txn_conn_segment:
 * each direction's offset, an ack lagging the other's by 5 * (c >> 4));
 * then operations, each one control byte c and a length byte n: c & 1 is
 * the direction, (c >> 1) & 7 the kind (0-5 data: the next n bytes; 6 gap
 * of n bytes; 7 end, how = c >> 4).
 * Checks every session is emitted once (callback count equals the
 * counter) and slices are readable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_txn_emit(void *ctx, const struct store_session *s)
{
	uint64_t *n = ctx;
	(*n)++;
	volatile uint8_t x = 0;
	const struct store_message *m[2] = {&s->req, &s->resp};
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < m[k]->n_headers; i++)
			for (size_t j = 0; j < m[k]->headers[i].value.len; j++)
				x ^= m[k]->headers[i].value.ptr[j];
		for (size_t j = 0; j < m[k]->body.len; j++)
			x ^= m[k]->body.ptr[j];
		for (size_t j = 0; j < m[k]->target.len; j++)
			x ^= m[k]->target.ptr[j];
		if (m[k]->body.len > 128)
			abort();
	}
	(void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint64_t emitted = 0;
	struct txn_stats st;
	memset(&st, 0, sizeof(st));
	struct txn_params prm = {.max_header_bytes = 256,
				 .max_body = 128,
				 .emit = fuzz_txn_emit,
				 .ctx = &emitted,
				 .stats = &st};
	struct txn_conn_info info = {.ip_version = 4, .conn_id = 1, .midstream = data[0] & 1};
	struct txn_conn *c = txn_conn_create(&prm, &info);
	if (!c)
		return 0;
	size_t off = 1;
	int64_t ts = 0;
	bool positions = data[0] & 2;
	uint64_t pos[2] = {0, 0};
	bool ended = false;
	while (off + 2 <= size && !ended) {
		uint8_t ctl = data[off], n = data[off + 1];
		off += 2;
		enum txn_dir dir = (ctl & 1) ? TXN_DIR_SERVER : TXN_DIR_CLIENT;
		unsigned kind = (ctl >> 1) & 7;
		ts++;
		if (kind <= 5) {
			size_t len = n;
			if (len > size - off)
				len = size - off;
			uint64_t lag = 5u * (ctl >> 4), other = pos[!dir];
			struct txn_pos p = {
			    .off = pos[dir], .ack = other > lag ? other - lag : 0, .has_ack = true};
			txn_conn_segment(c, dir, data + off, len, ts, positions ? &p : NULL);
			pos[dir] += len;
			off += len;
		} else if (kind == 6) {
			txn_conn_gap(c, dir, n, ts);
			pos[dir] += n;
		} else {
			txn_conn_end(c, (enum txn_end)(1 + ((ctl >> 4) & 3)), ts);
			ended = true;
		}
	}
	if (!ended)
		txn_conn_end(c, TXN_END_EOF, ts + 1);
	/* Exactly once: every request and every unpaired response, nothing else. */
	if (emitted != st.sessions_emitted || emitted != st.requests + st.orphan_responses)
		abort();
	txn_conn_free(c);
	return 0;
}
