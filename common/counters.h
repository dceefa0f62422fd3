/* SPDX-License-Identifier: MIT */
/*
 * counters - named counters.
 *
 * A module keeps its counters as plain uint64_t fields of a stats struct
 * (fast to bump, per thread or per lcore) and publishes a table that names
 * each field. Everything that shows counters to a user (--stats, the
 * store's trailer, `dyetap info`, reports) walks such tables, so a counter
 * added to a module reaches every surface without further code.
 */
#ifndef DYETAP_COMMON_COUNTERS_H
#define DYETAP_COMMON_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

struct ctr_desc {
	const char *name; /**< stable snake_case name, e.g. "tcp_gaps" */
	size_t offset;	  /**< offsetof() the uint64_t field in the stats struct */
	const char *help; /**< one line for --help / docs */
};

#define CTR_DESC(type, field, help)                                                                \
	{                                                                                          \
#field, offsetof(type, field), help                                                \
	}

/** Value of counter @p d in stats struct @p stats. */
static inline uint64_t ctr_get(const void *stats, const struct ctr_desc *d)
{
	return *(const uint64_t *)(const void *)((const char *)stats + d->offset);
}

/** Add every counter of @p src to @p dst (both of the type @p descs describes). */
void ctr_add_all(void *dst, const void *src, const struct ctr_desc *descs, size_t n);

#endif
