/* SPDX-License-Identifier: MIT */
/*
 * store_pack_private - a msgpack writer for the store's hot records
 * (sessions and results). Internal to store/.
 *
 * msgpack-c's packer calls a write callback for every piece (a string's
 * header, then its bytes), which made the callback and its bookkeeping the
 * largest user-space cost of `record` and of replay's writer thread. Here
 * the writer first computes a record's exact packed size (the *_size()
 * functions), reserves it once in the batch, and then writes the pieces
 * through a plain cursor with no checks left to do.
 *
 * The encodings are the ones msgpack-c chooses (smallest form; str8 for
 * strings of 32-255 bytes; signed forms only for negative values), so files
 * are byte-identical to those packed with msgpack-c; test_store_pack
 * compares every boundary value against msgpack-c.
 */
#ifndef DYETAP_STORE_STORE_PACK_PRIVATE_H
#define DYETAP_STORE_STORE_PACK_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A write cursor into memory already reserved for the whole record. */
struct pw {
	uint8_t *p;
};

static inline void pw_be16(struct pw *c, uint8_t tag, uint16_t v)
{
	c->p[0] = tag;
	c->p[1] = (uint8_t)(v >> 8);
	c->p[2] = (uint8_t)v;
	c->p += 3;
}

static inline void pw_be32(struct pw *c, uint8_t tag, uint32_t v)
{
	c->p[0] = tag;
	for (int i = 0; i < 4; i++)
		c->p[1 + i] = (uint8_t)(v >> (24 - 8 * i));
	c->p += 5;
}

static inline void pw_be64(struct pw *c, uint8_t tag, uint64_t v)
{
	c->p[0] = tag;
	for (int i = 0; i < 8; i++)
		c->p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
	c->p += 9;
}

/* ---- sizes ---- */

static inline size_t pw_uint_size(uint64_t v)
{
	return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static inline size_t pw_int_size(int64_t v)
{
	if (v >= 0)
		return pw_uint_size((uint64_t)v);
	return v >= -32 ? 1 : v >= -128 ? 2 : v >= -32768 ? 3 : v >= INT32_MIN ? 5 : 9;
}

/* Header of a str (@p is_bin 0) or bin (1) of @p n bytes. */
static inline size_t pw_raw_head_size(size_t n, int is_bin)
{
	if (!is_bin && n < 32)
		return 1;
	return n < 256 ? 2 : n < 65536 ? 3 : 5;
}

/* Header of a map or array of @p n entries. */
static inline size_t pw_container_size(size_t n)
{
	return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

static inline size_t pw_str_size(size_t n)
{
	return pw_raw_head_size(n, 0) + n;
}

static inline size_t pw_bin_size(size_t n)
{
	return pw_raw_head_size(n, 1) + n;
}

/* ---- writers ---- */

static inline void pw_uint(struct pw *c, uint64_t v)
{
	if (v < 128)
		*c->p++ = (uint8_t)v;
	else if (v < 256) {
		c->p[0] = 0xcc;
		c->p[1] = (uint8_t)v;
		c->p += 2;
	} else if (v < 65536)
		pw_be16(c, 0xcd, (uint16_t)v);
	else if (v <= UINT32_MAX)
		pw_be32(c, 0xce, (uint32_t)v);
	else
		pw_be64(c, 0xcf, v);
}

static inline void pw_int(struct pw *c, int64_t v)
{
	if (v >= 0)
		pw_uint(c, (uint64_t)v);
	else if (v >= -32)
		*c->p++ = (uint8_t)(int8_t)v;
	else if (v >= -128) {
		c->p[0] = 0xd0;
		c->p[1] = (uint8_t)(int8_t)v;
		c->p += 2;
	} else if (v >= -32768)
		pw_be16(c, 0xd1, (uint16_t)(int16_t)v);
	else if (v >= INT32_MIN)
		pw_be32(c, 0xd2, (uint32_t)(int32_t)v);
	else
		pw_be64(c, 0xd3, (uint64_t)v);
}

static inline void pw_container(struct pw *c, size_t n, uint8_t fix, uint8_t t16)
{
	if (n < 16)
		*c->p++ = (uint8_t)(fix | n);
	else if (n < 65536)
		pw_be16(c, t16, (uint16_t)n);
	else
		pw_be32(c, (uint8_t)(t16 + 1), (uint32_t)n);
}

static inline void pw_map(struct pw *c, size_t n)
{
	pw_container(c, n, 0x80, 0xde);
}

static inline void pw_array(struct pw *c, size_t n)
{
	pw_container(c, n, 0x90, 0xdc);
}

/* A str or bin header and its bytes. */
static inline void pw_raw(struct pw *c, const void *p, size_t n, int is_bin)
{
	if (!is_bin && n < 32)
		*c->p++ = (uint8_t)(0xa0 | n);
	else if (n < 256) {
		c->p[0] = is_bin ? 0xc4 : 0xd9;
		c->p[1] = (uint8_t)n;
		c->p += 2;
	} else if (n < 65536)
		pw_be16(c, is_bin ? 0xc5 : 0xda, (uint16_t)n);
	else
		pw_be32(c, is_bin ? 0xc6 : 0xdb, (uint32_t)n);
	if (n)
		memcpy(c->p, p, n);
	c->p += n;
}

static inline void pw_str(struct pw *c, const void *p, size_t n)
{
	pw_raw(c, p, n, 0);
}

static inline void pw_bin(struct pw *c, const void *p, size_t n)
{
	pw_raw(c, p, n, 1);
}

static inline void pw_bool(struct pw *c, int v)
{
	*c->p++ = v ? 0xc3 : 0xc2;
}

static inline void pw_nil(struct pw *c)
{
	*c->p++ = 0xc0;
}

/* A key given as a string literal (under 32 bytes: one fixstr). */
#define PW_KEY(c, lit)                                                                             \
	do {                                                                                       \
		_Static_assert(sizeof(lit) - 1 < 32, "keys are fixstr");                           \
		*(c)->p++ = (uint8_t)(0xa0 | (sizeof(lit) - 1));                                   \
		memcpy((c)->p, (lit), sizeof(lit) - 1);                                            \
		(c)->p += sizeof(lit) - 1;                                                         \
	} while (0)

/* Packed size of a literal key. */
#define PW_KEY_SIZE(lit) (sizeof(lit))

#endif
