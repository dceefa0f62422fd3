/* SPDX-License-Identifier: MIT */
/*
 * fuzz_fp_classify - fuzz target for the fast path's untrusted inputs: a
 * received frame through the inline L2-L4 parser (dpdk/fp_private.h), the
 * frame's L4 payload through the bounded request scanner, and both through
 * the rule decisions (dpdk/fp_rules.c). Every byte is read from a copy of
 * exactly the input's size, so ASan sees any read past the frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "dpdk/fp_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fp_rules rules;
static int rules_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const texts[] = {
	    "blue=header:x-lane=blue",
	    "canary=cookie:lane=canary,path:/api/*",
	    "beta=sample:header:x-user-id:5%",
	    "corp=src:192.168.7.0/24,vlan:42",
	    "q=query:lane=*,method:GET,host:*.example",
	};
	char err[256];
	struct fp_pkt pk;
	struct fp_req rq;
	uint8_t *copy;

	if (!rules_ready) {
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
			if (fp_rules_add(&rules, texts[i], err, sizeof(err)))
				abort();
		rules_ready = 1;
	}
	if (size > 65535)
		return 0;
	copy = mem_alloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (fp_parse(copy, (uint32_t)size, &pk) == 0) {
		if ((size_t)pk.payload_off + pk.payload_len > size)
			abort(); /* the parser must stay inside the frame */
		(void)fp_rules_decide_l4(&rules, &pk, 2);
		if (fp_http_scan((const char *)copy + pk.payload_off, pk.payload_len, &rq) > 0)
			(void)fp_rules_decide_http(&rules, &pk, &rq);
	}
	/* The whole input as a request prefix too. */
	memset(&pk, 0, sizeof(pk));
	if (fp_http_scan((const char *)copy, size, &rq) > 0)
		(void)fp_rules_decide_http(&rules, &pk, &rq);
	mem_free(copy);
	return 0;
}
