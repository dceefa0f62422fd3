/* SPDX-License-Identifier: MIT */
/*
 * dbuf - bounded growable buffer (see dbuf.h). Growth doubles the
 * allocation, clamped to max + 1 so a buffer never holds more than its cap.
 */
#include "common/dbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

void dbuf_init(struct dbuf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = 0;
}

void dbuf_release(struct dbuf *b)
{
	mem_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

void dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Keep the first failure (dbuf_error()) and return it to the caller too. */
static int fail(struct dbuf *b, int rc)
{
	if (!b->err)
		b->err = rc;
	return rc;
}

int dbuf_reserve(struct dbuf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return fail(b, -E2BIG);
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	uint8_t *p = mem_realloc(b->data, ncap);
	if (!p)
		return fail(b, -ENOMEM);
	b->data = p;
	b->cap = ncap;
	return 0;
}

int dbuf_append_grow(struct dbuf *b, const void *p, size_t n)
{
	int rc = dbuf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int dbuf_puts(struct dbuf *b, const char *s)
{
	return dbuf_append(b, s, strlen(s));
}

int dbuf_putc(struct dbuf *b, uint8_t c)
{
	return dbuf_append(b, &c, 1);
}

int dbuf_vprintf(struct dbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return fail(b, -EINVAL);
	int rc = dbuf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = dbuf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

uint8_t *dbuf_detach(struct dbuf *b, size_t *len_out)
{
	uint8_t *p = b->data;
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
	return p;
}

void dbuf_consume(struct dbuf *b, size_t n)
{
	if (n >= b->len) {
		dbuf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}
