/* SPDX-License-Identifier: MIT */
/*
 * store_mp_private - a bounds-checked msgpack cursor (msgpack spec,
 * "formats") for the store reader: every read checks the bytes left, every
 * count is bounded by the bytes left, nesting is capped, and byte strings
 * come back as slices into the input (zero copy). Internal to store/.
 */
#ifndef DYETAP_STORE_STORE_MP_PRIVATE_H
#define DYETAP_STORE_STORE_MP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/store.h"

#define MP_MAX_DEPTH 32

/* ------------------------------------------------------------------ */

struct mp {
	const uint8_t *p, *end;
};

static inline size_t mp_left(const struct mp *c)
{
	return (size_t)(c->end - c->p);
}

/* A big-endian unsigned integer of @p n (1, 2, 4 or 8) bytes. */
static inline uint64_t be(const uint8_t *p, unsigned n)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
#else
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	switch (n) {
	case 1:
		return p[0];
	case 2:
		memcpy(&v16, p, 2);
		return __builtin_bswap16(v16);
	case 4:
		memcpy(&v32, p, 4);
		return __builtin_bswap32(v32);
	default:
		memcpy(&v64, p, 8);
		return __builtin_bswap64(v64);
	}
#endif
}

/* Any msgpack integer as int64 (uint64 above INT64_MAX fails). */
static inline __attribute__((always_inline)) bool mp_int(struct mp *c, int64_t *v)
{
	if (!mp_left(c))
		return false;
	uint8_t t = *c->p;
	if (t <= 0x7f || t >= 0xe0) {
		*v = (int8_t)t;
		c->p++;
		return true;
	}
	/* 0xcc..0xcf: uint 8/16/32/64; 0xd0..0xd3: int 8/16/32/64. */
	if (t < 0xcc || t > 0xd3)
		return false;
	bool sgn = t >= 0xd0;
	unsigned n = 1u << (t - (sgn ? 0xd0 : 0xcc));
	if (mp_left(c) < 1 + n)
		return false;
	uint64_t u = be(c->p + 1, n);
	c->p += 1 + n;
	if (sgn) {
		if (n < 8 && (u >> (8 * n - 1)))
			u |= ~(uint64_t)0 << (8 * n);
		*v = (int64_t)u;
		return true;
	}
	if (u > INT64_MAX)
		return false;
	*v = (int64_t)u;
	return true;
}

/* A non-negative msgpack integer. */
static inline __attribute__((always_inline)) bool mp_uint(struct mp *c, uint64_t *v)
{
	if (!mp_left(c))
		return false;
	uint8_t t = *c->p;
	if (t <= 0x7f) {
		*v = t;
		c->p++;
		return true;
	}
	if (t == 0xcf) {
		if (mp_left(c) < 9)
			return false;
		*v = be(c->p + 1, 8);
		c->p += 9;
		return true;
	}
	int64_t s;
	struct mp save = *c;
	if (!mp_int(c, &s) || s < 0) {
		*c = save;
		return false;
	}
	*v = (uint64_t)s;
	return true;
}

static inline __attribute__((always_inline)) bool mp_uint_max(struct mp *c, uint64_t max,
							      uint64_t *v)
{
	return mp_uint(c, v) && *v <= max;
}

/* str, bin or nil (empty): the general case. */
static inline bool mp_bytes_slow(struct mp *c, struct store_slice *s)
{
	if (!mp_left(c))
		return false;
	uint8_t t = *c->p;
	size_t hl, n;
	unsigned w;
	if (t == 0xc0) {
		c->p++;
		s->ptr = NULL;
		s->len = 0;
		return true;
	}
	switch (t) {
	case 0xd9:
	case 0xc4:
		w = 1;
		break;
	case 0xda:
	case 0xc5:
		w = 2;
		break;
	case 0xdb:
	case 0xc6:
		w = 4;
		break;
	default:
		return false;
	}
	if (mp_left(c) < 1 + w)
		return false;
	hl = 1 + w, n = (size_t)be(c->p + 1, w);
	if (mp_left(c) - hl < n)
		return false;
	s->ptr = c->p + hl;
	s->len = n;
	c->p += hl + n;
	return true;
}

/* str, bin or nil; fixstr (keys, short values), str8 and bin8 inline. */
static inline __attribute__((always_inline)) bool mp_bytes(struct mp *c, struct store_slice *s)
{
	size_t left = mp_left(c), hl, n;
	if (left && (*c->p & 0xe0) == 0xa0) {
		hl = 1, n = *c->p & 0x1f;
	} else if (left >= 2 && (*c->p == 0xd9 || *c->p == 0xc4)) { /* str8, bin8 */
		hl = 2, n = c->p[1];
	} else {
		return mp_bytes_slow(c, s);
	}
	if (left - hl < n)
		return false;
	s->ptr = c->p + hl;
	s->len = n;
	c->p += hl + n;
	return true;
}

static inline bool mp_bool(struct mp *c, bool *b)
{
	if (mp_left(c) && (*c->p == 0xc2 || *c->p == 0xc3)) {
		*b = *c->p == 0xc3;
		c->p++;
		return true;
	}
	uint64_t v;
	if (!mp_uint(c, &v))
		return false;
	*b = v != 0;
	return true;
}

/* Map (is_map) or array header; the count is bounded by the bytes left. */
static inline __attribute__((always_inline)) bool mp_container(struct mp *c, bool is_map,
							       uint32_t *n)
{
	if (!mp_left(c))
		return false;
	uint8_t t = *c->p;
	uint8_t fix = is_map ? 0x80 : 0x90, t16 = is_map ? 0xde : 0xdc, t32 = is_map ? 0xdf : 0xdd;
	if ((t & 0xf0) == fix) {
		*n = t & 0x0f;
		c->p++;
	} else if (t == t16 || t == t32) {
		unsigned w = t == t16 ? 2 : 4;
		if (mp_left(c) < 1 + w)
			return false;
		*n = (uint32_t)be(c->p + 1, w);
		c->p += 1 + w;
	} else {
		return false;
	}
	/* Each element takes at least one byte (two for a map entry). */
	return ((size_t)*n << is_map) <= mp_left(c);
}

static inline bool mp_nil(struct mp *c)
{
	if (mp_left(c) && *c->p == 0xc0) {
		c->p++;
		return true;
	}
	return false;
}

/* Skip one object of any type, nesting at most MP_MAX_DEPTH. */
static inline bool mp_skip(struct mp *c, int depth)
{
	if (!mp_left(c) || depth > MP_MAX_DEPTH)
		return false;
	uint8_t t = *c->p;
	size_t hl = 1, n = 0;
	uint32_t cnt;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
		c->p++;
		return true;
	}
	if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf || (t & 0xf0) == 0x90 || t == 0xdc ||
	    t == 0xdd) {
		bool is_map = (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
		if (!mp_container(c, is_map, &cnt))
			return false;
		uint64_t items = (uint64_t)cnt * (is_map ? 2 : 1);
		for (uint64_t i = 0; i < items; i++)
			if (!mp_skip(c, depth + 1))
				return false;
		return true;
	}
	if ((t >= 0xa0 && t <= 0xbf) || t == 0xd9 || t == 0xda || t == 0xdb || t == 0xc4 ||
	    t == 0xc5 || t == 0xc6) {
		struct store_slice s;
		return mp_bytes(c, &s);
	}
	switch (t) {
	case 0xcc:
	case 0xd0:
		n = 1;
		break;
	case 0xcd:
	case 0xd1:
		n = 2;
		break;
	case 0xca:
	case 0xce:
	case 0xd2:
		n = 4;
		break;
	case 0xcb:
	case 0xcf:
	case 0xd3:
		n = 8;
		break;
	case 0xd4:
		n = 2;
		break; /* fixext: type + data */
	case 0xd5:
		n = 3;
		break;
	case 0xd6:
		n = 5;
		break;
	case 0xd7:
		n = 9;
		break;
	case 0xd8:
		n = 17;
		break;
	case 0xc7:
	case 0xc8:
	case 0xc9: {
		unsigned w = t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4;
		if (mp_left(c) < 1 + w)
			return false;
		hl = 1 + w;
		n = (size_t)be(c->p + 1, w) + 1; /* + type byte */
		break;
	}
	default:
		return false; /* 0xc1 is never used */
	}
	if (mp_left(c) < hl || mp_left(c) - hl < n)
		return false;
	c->p += hl + n;
	return true;
}

static inline bool key_is(const struct store_slice *k, const char *s, size_t n)
{
	return k->len == n && memcmp(k->ptr, s, n) == 0;
}
#define KEY(k, lit) key_is((k), lit, sizeof(lit) - 1)

#endif
