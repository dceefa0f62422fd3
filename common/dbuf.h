/* SPDX-License-Identifier: MIT */
/*
 * dbuf - a growable byte buffer with a hard maximum (after curl's dynbuf).
 *
 * Every growable buffer in dyetap has a cap: appending past it fails with
 * -E2BIG and leaves the buffer unchanged, so callers count the event and
 * decide (truncate, drop, error). The content is always NUL-terminated
 * (one spare byte beyond len) so text can be used as a C string.
 *
 * The first failure is also kept (dbuf_error()): a renderer that appends
 * many pieces without checking each one checks once at the end, and a
 * document with a piece missing is never taken for a whole one. The
 * error stays until dbuf_reset(), dbuf_release() or dbuf_detach().
 */
#ifndef DYETAP_COMMON_DBUF_H
#define DYETAP_COMMON_DBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>

struct dbuf {
	uint8_t *data; /**< owned; NULL until the first append */
	size_t len;    /**< bytes in use */
	size_t cap;    /**< bytes allocated (excluding nothing: cap >= len + 1) */
	size_t max;    /**< hard maximum for len */
	int err;       /**< first failed append or reserve (-E2BIG, -ENOMEM), sticky; 0 none */
};

/** Initialise an empty buffer that may grow to @p max bytes. */
void dbuf_init(struct dbuf *b, size_t max);

/** Free the memory; the buffer is left empty and reusable. */
void dbuf_release(struct dbuf *b);

/** Forget the content and the sticky error, keep the allocation. */
void dbuf_reset(struct dbuf *b);

/** dbuf_append() when the buffer must grow (or is over its max). */
int dbuf_append_grow(struct dbuf *b, const void *p, size_t n);

/**
 * Append @p n bytes (copied). Inline: packers and parsers append many
 * small pieces, and the common case (room left) is a copy.
 * @return 0, -E2BIG when len + n would exceed max (nothing appended),
 *         -ENOMEM when growing failed (nothing appended).
 */
static inline int dbuf_append(struct dbuf *b, const void *p, size_t n)
{
	/* Room for n bytes and the NUL; cap <= max + 1 keeps len + n <= max. */
	if (b->cap - b->len <= n)
		return dbuf_append_grow(b, p, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/**
 * The first error of an append, printf or reserve since the buffer was
 * initialised, reset, released or detached: 0, -E2BIG or -ENOMEM. Later
 * successful appends do not clear it (first failure wins).
 */
static inline int dbuf_error(const struct dbuf *b)
{
	return b->err;
}

/** Append a NUL-terminated string; errors as dbuf_append(). */
int dbuf_puts(struct dbuf *b, const char *s);

/** Append one byte; errors as dbuf_append(). */
int dbuf_putc(struct dbuf *b, uint8_t c);

/** printf-style append; errors as dbuf_append(). */
int dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** vprintf-style append; errors as dbuf_append(). */
int dbuf_vprintf(struct dbuf *b, const char *fmt, va_list ap);

/**
 * Make room for @p n more bytes without changing len.
 * @return 0, -E2BIG or -ENOMEM.
 */
int dbuf_reserve(struct dbuf *b, size_t n);

/**
 * Hand the memory out (transferred to the caller, free with mem_free()).
 * The buffer is left empty. @p len_out may be NULL. Returns NULL when empty.
 */
uint8_t *dbuf_detach(struct dbuf *b, size_t *len_out);

/** Drop the first @p n bytes (memmove of the rest). */
void dbuf_consume(struct dbuf *b, size_t n);

#endif
