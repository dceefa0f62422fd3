/* SPDX-License-Identifier: MIT */
/*
 * counters - named counters.
 *
 * A module keeps its counters as plain uint64_t fields of a stats struct
 * (fast to bump, per thread or per lcore) and publishes a table that names
 * each field. Everything that shows counters to a user (--stats, the
 * store's trailer, `dyetap info`, reports) walks such tables, so a counter
 * added to a module reaches every surface without further code.
 *
 * A counter set (struct ctr_set) is what those surfaces are built from: a
 * flat, ordered list of (name, value) whose names are formatted when the
 * set is filled ("lane_blue_sent", "src_packets") and owned by the set.
 * `dyetap record`, `dyetap mirror` and `dyetap-fastpath` fill one from
 * their modules' tables and hand it to the store trailer, --stats, --json
 * and the reports. Thread-safety: a set is used by one thread.
 */
#ifndef DYETAP_COMMON_COUNTERS_H
#define DYETAP_COMMON_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"

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

/** One named value of a counter set (name owned by the set). */
struct ctr_value {
	const char *name;
	uint64_t value;
};

/** Longest counter name a set stores (longer ones are refused). */
#define CTR_NAME_MAX 127

struct ctr_set;

/**
 * An empty set that holds at most @p max counters (0: 4096).
 * @return the set, or NULL when out of memory.
 */
struct ctr_set *ctr_set_create(size_t max);

/** Free; accepts NULL. */
void ctr_set_free(struct ctr_set *s);

/** Forget every counter (the memory is kept for the next fill). */
void ctr_set_clear(struct ctr_set *s);

/**
 * Append counter @p value named by @p fmt (printf format).
 * @return 0; -ENOSPC past the set's max or -ENAMETOOLONG past CTR_NAME_MAX
 *         (nothing added, counted in ctr_set_lost()); -ENOMEM.
 */
int ctr_set_put(struct ctr_set *s, uint64_t value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Append every counter of table @p d (@p n entries) read from @p stats,
 * each named @p prefix followed by the table's name ("src_" + "packets").
 * @return 0 or the first error of ctr_set_put() (the others are still added).
 */
int ctr_set_table(struct ctr_set *s, const char *prefix, const void *stats,
		  const struct ctr_desc *d, size_t n);

/** Append every counter of @p src, in order. @return as ctr_set_table(). */
int ctr_set_append(struct ctr_set *s, const struct ctr_set *src);

/** Number of counters in the set. */
size_t ctr_set_count(const struct ctr_set *s);

/** The counters, in the order added; borrowed until the next change to @p s. */
const struct ctr_value *ctr_set_values(const struct ctr_set *s);

/** Value of the counter named @p name; 0 when there is none. */
uint64_t ctr_set_get(const struct ctr_set *s, const char *name);

/** Counters refused since creation or the last clear (over the max, name too long). */
uint64_t ctr_set_lost(const struct ctr_set *s);

/**
 * Append the counters to @p b as the members of a JSON object,
 * `"name":value` separated by commas (no braces, nothing for an empty set).
 * @return 0 or the buffer's error (-E2BIG, -ENOMEM).
 */
int ctr_set_json(const struct ctr_set *s, struct dbuf *b);

/**
 * Append the counters to @p b as text, one `  NAME VALUE` line each with
 * the names padded to @p width. @return 0 or the buffer's error.
 */
int ctr_set_text(const struct ctr_set *s, struct dbuf *b, int width);

#endif
