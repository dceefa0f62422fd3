/* SPDX-License-Identifier: MIT */
/*
 * counters - helpers over named counter tables (see counters.h).
 */
#include "common/counters.h"

void ctr_add_all(void *dst, const void *src, const struct ctr_desc *descs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t *d = (uint64_t *)(void *)((char *)dst + descs[i].offset);
		*d += ctr_get(src, &descs[i]);
	}
}
