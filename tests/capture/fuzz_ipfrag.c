/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ipfrag - IP fragment reassembly (capture/ipfrag.h) driven by
 * fragments taken from the input: each record is [flags][len hi][len lo]
 * and len bytes of an IP packet (bit 0 of flags: advance the clock by 31 s
 * first; bits 1-2: the VLAN id). Small caps make every limit reachable.
 * Checks that a reassembled datagram is a whole IP packet within its
 * length field, and that the memory held stays under the cap.
 */
#include <stdint.h>
#include <stdlib.h>

#include "capture/ipfrag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipfrag_stats st = {0};
	struct ipfrag_params p = {.memcap = 16384, .max_datagrams = 8, .max_pieces = 16};
	struct ipfrag *f = ipfrag_create(&p, &st);
	if (!f)
		return 0;
	int64_t now = 1000000000LL;
	size_t off = 0;
	while (off + 3 <= size) {
		uint8_t fl = data[off];
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		if (fl & 1)
			now += 31LL * 1000000000LL;
		const uint8_t *out;
		size_t out_len;
		if (ipfrag_offer(f, data + off, len, (fl >> 1) & 3, now, &out, &out_len)) {
			if (out_len > 65535 + 512 || out_len < 20)
				abort();
			volatile uint8_t x = 0;
			for (size_t i = 0; i < out_len; i++)
				x ^= out[i];
			(void)x;
		}
		if (ipfrag_held(f) > p.memcap)
			abort();
		off += len;
	}
	ipfrag_finish(f);
	if (ipfrag_held(f) != 0)
		abort();
	ipfrag_free(f);
	return 0;
}
