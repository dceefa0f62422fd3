/* SPDX-License-Identifier: MIT */
/*
 * counters - helpers over named counter tables and counter sets (see
 * counters.h).
 */
#include "common/counters.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/mem.h"

void ctr_add_all(void *dst, const void *src, const struct ctr_desc *descs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t *d = (uint64_t *)(void *)((char *)dst + descs[i].offset);
		*d += ctr_get(src, &descs[i]);
	}
}

/* --- counter sets --------------------------------------------------------- */

struct ctr_set {
	struct ctr_value *v;
	char (*names)[CTR_NAME_MAX + 1];
	size_t n, cap, max;
	uint64_t lost;
};

struct ctr_set *ctr_set_create(size_t max)
{
	struct ctr_set *s = mem_calloc(1, sizeof(*s));
	if (s)
		s->max = max ? max : 4096;
	return s;
}

void ctr_set_free(struct ctr_set *s)
{
	if (!s)
		return;
	mem_free(s->v);
	mem_free(s->names);
	mem_free(s);
}

void ctr_set_clear(struct ctr_set *s)
{
	s->n = 0;
	s->lost = 0;
}

/* Room for one more entry; the value array points into the name array, so both move. */
static int grow(struct ctr_set *s)
{
	size_t nc = s->cap ? s->cap * 2 : 64;
	if (nc > s->max)
		nc = s->max;
	struct ctr_value *nv = mem_realloc(s->v, nc * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	char(*nn)[CTR_NAME_MAX + 1] = mem_realloc(s->names, nc * sizeof(*nn));
	if (!nn)
		return -ENOMEM;
	s->names = nn;
	s->cap = nc;
	for (size_t i = 0; i < s->n; i++)
		s->v[i].name = s->names[i];
	return 0;
}

static int vput(struct ctr_set *s, uint64_t value, const char *fmt, va_list ap)
{
	if (s->n == s->max) {
		s->lost++;
		return -ENOSPC;
	}
	if (s->n == s->cap) {
		int rc = grow(s);
		if (rc)
			return rc;
	}
	int len = vsnprintf(s->names[s->n], CTR_NAME_MAX + 1, fmt, ap);
	if (len < 0 || len > CTR_NAME_MAX) {
		s->lost++;
		return -ENAMETOOLONG;
	}
	s->v[s->n] = (struct ctr_value){s->names[s->n], value};
	s->n++;
	return 0;
}

int ctr_set_put(struct ctr_set *s, uint64_t value, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vput(s, value, fmt, ap);
	va_end(ap);
	return rc;
}

int ctr_set_table(struct ctr_set *s, const char *prefix, const void *stats,
		  const struct ctr_desc *d, size_t n)
{
	int first = 0;
	for (size_t i = 0; i < n; i++) {
		int rc =
		    ctr_set_put(s, ctr_get(stats, &d[i]), "%s%s", prefix ? prefix : "", d[i].name);
		if (rc && !first)
			first = rc;
	}
	return first;
}

int ctr_set_append(struct ctr_set *s, const struct ctr_set *src)
{
	int first = 0;
	for (size_t i = 0; i < src->n; i++) {
		int rc = ctr_set_put(s, src->v[i].value, "%s", src->v[i].name);
		if (rc && !first)
			first = rc;
	}
	return first;
}

size_t ctr_set_count(const struct ctr_set *s)
{
	return s->n;
}

const struct ctr_value *ctr_set_values(const struct ctr_set *s)
{
	return s->v;
}

uint64_t ctr_set_get(const struct ctr_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, name))
			return s->v[i].value;
	return 0;
}

uint64_t ctr_set_lost(const struct ctr_set *s)
{
	return s->lost;
}

int ctr_set_json(const struct ctr_set *s, struct dbuf *b)
{
	int rc = 0;
	for (size_t i = 0; i < s->n && !rc; i++) {
		if (i)
			rc = dbuf_putc(b, ',');
		if (!rc)
			rc = jsonw_cstr(b, s->v[i].name);
		if (!rc)
			rc = dbuf_printf(b, ":%" PRIu64, s->v[i].value);
	}
	return rc;
}

int ctr_set_text(const struct ctr_set *s, struct dbuf *b, int width)
{
	int rc = 0;
	for (size_t i = 0; i < s->n && !rc; i++)
		rc = dbuf_printf(b, "  %-*s %" PRIu64 "\n", width, s->v[i].name, s->v[i].value);
	return rc;
}
