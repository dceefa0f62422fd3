/* SPDX-License-Identifier: MIT */
/*
 * fuzz_reasm - one reassembly stream driven by operations decoded from the
 * input: each operation is [op][4-byte seq delta][1-byte length] followed by
 * the payload for segments. Checks after every step that the delivered
 * bytes plus gaps equal the stream offset and that memory stays within
 * the caps.
 */
#include <assert.h>
#include <stdint.h>
#include <stddef.h>

#include "capture/reasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
	uint64_t bytes;
	uint64_t gaps;
};

static void a_data(void *u, const uint8_t *p, size_t n, const struct reasm_meta *m)
{
	struct acc *a = u;
	(void)p, (void)m;
	a->bytes += n;
}

static void a_gap(void *u, uint64_t n, int64_t ts)
{
	struct acc *a = u;
	(void)ts;
	assert(n > 0);
	a->gaps += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reasm_stats st = {0};
	struct reasm_params p = {
	    .stream_cap = 2048, .memcap = 4096, .window = 1u << 20, .max_segments = 64};
	struct reasm_ctx c;
	struct reasm_stream s;
	struct acc a = {0};
	struct reasm_out o = {a_data, a_gap, &a};
	const struct reasm_meta meta = {.ts_ns = 1};
	reasm_ctx_init(&c, &p, &st);
	reasm_stream_init(&s);
	uint32_t base = 0xfffff000u; /* start near the wrap */
	if (size && (data[0] & 1))
		reasm_stream_start(&s, base);
	size_t off = 1;
	while (off + 6 <= size) {
		uint8_t op = data[off];
		uint32_t delta = (uint32_t)data[off + 1] << 24 | (uint32_t)data[off + 2] << 16 |
				 (uint32_t)data[off + 3] << 8 | data[off + 4];
		size_t len = data[off + 5];
		off += 6;
		/* Mostly small deltas so segments overlap and interleave. */
		uint32_t seq = base + ((op & 0x80) ? delta : delta % 4096);
		switch (op & 3) {
		case 0:
		case 1:
			if (len > size - off)
				len = size - off;
			reasm_segment(&c, &s, seq, data + off, len, &meta, &o);
			off += len;
			break;
		case 2:
			reasm_ack(&c, &s, seq, 1, &o);
			break;
		case 3:
			if (op & 0x40)
				reasm_fin(&s, seq);
			else if (op & 0x20)
				reasm_fin_cancel(&s);
			else
				reasm_flush(&c, &s, 1, &o);
			break;
		}
		assert(a.bytes + a.gaps == reasm_offset(&s));
		assert(c.used <= p.memcap);
		assert(s.ooo_bytes <= p.stream_cap && s.n_segs <= p.max_segments);
	}
	reasm_flush(&c, &s, 1, &o);
	assert(a.bytes + a.gaps == reasm_offset(&s));
	assert(c.used == 0);
	reasm_stream_release(&c, &s);
	return 0;
}
