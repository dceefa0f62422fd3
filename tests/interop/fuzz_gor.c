/* SPDX-License-Identifier: MIT */
/*
 * fuzz_gor - libFuzzer target for the GoReplay reader (interop/gor.h).
 *
 * The input is a .gor file, read through a 4 KiB payload cap so the
 * over-the-cap path is reached. Checks what a caller relies on: payloads
 * within the cap and inside the input, ids within GOR_MAX_ID, types 1..3,
 * and that reading ends (every call consumes or ends the file).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interop/gor.h"
#include "interop/iop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)iop_sniff(data, size);
	(void)gor_sniff(data, size);
	if (!size)
		return 0; /* fmemopen needs a byte */
	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		return 0;
	struct gor_reader *r = gor_open(f, 4096);
	if (!r) {
		fclose(f);
		return 0;
	}
	struct gor_payload p;
	int rc;
	uint64_t last = 0;
	size_t calls = 0;
	while ((rc = gor_next(r, &p)) != 0 && rc != -EIO && rc != -ENOMEM) {
		if (++calls > size + 2)
			abort(); /* no progress */
		if (gor_offset(r) < last || gor_offset(r) > size)
			abort();
		last = gor_offset(r);
		if (rc != 1)
			continue;
		if (p.type < 1 || p.type > 3 || p.id_len > GOR_MAX_ID || strlen(p.id) != p.id_len)
			abort();
		if (p.len > 4096 + GOR_MAX_LINE || p.len > size)
			abort();
		volatile uint8_t x = 0;
		for (size_t i = 0; i < p.len; i++)
			x ^= p.data[i];
		(void)x;
	}
	gor_close(r);
	fclose(f);
	return 0;
}
