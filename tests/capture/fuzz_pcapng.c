/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pcapng - the pcapng reader (capture/pcapng.h) on arbitrary bytes:
 * sections in either byte order, interfaces, options, packet blocks of
 * every kind, lengths that disagree. Every packet it hands out must lie
 * inside the block it was read from and is decoded (decode.h) as the
 * source would; the reader must end (0 or an error) within a bound of
 * blocks, since each one consumes at least 12 bytes.
 */
#include <assert.h>
#include <stdint.h>
#include <stddef.h>

#include "capture/decode.h"
#include "capture/pcapng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	struct pcapng_reader *r = pcapng_open_mem(data, size, err, sizeof(err));
	if (!r)
		return 0;
	struct pcapng_pkt pk;
	struct decode_stats ds = {0};
	size_t n = 0;
	int rc;
	while ((rc = pcapng_next(r, &pk)) == 1) {
		assert(pk.caplen <= PCAPNG_MAX_BLOCK && pk.wirelen >= pk.caplen);
		assert(++n <= size / 12 + 1);
		struct decode_pkt k;
		(void)decode_packet(pk.linktype, pk.data, pk.caplen, &k, &ds);
		assert(pcapng_offset(r) <= size);
	}
	assert(rc == 0 || pcapng_error(r)[0]);
	pcapng_close(r);
	return 0;
}
