/* SPDX-License-Identifier: MIT */
/*
 * hash - the byte-string SipHash and the random key (see hash.h).
 *
 * References: the SipHash paper (Aumasson, Bernstein 2012) and its
 * reference implementation's test vectors (key 00..0f, messages 00..n-1),
 * which tests/common checks; getrandom(2).
 */
#include "common/hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t load_le64(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint64_t hash_siphash(int c, int d, const struct hash_key *k, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v[4] = {k->k0 ^ 0x736f6d6570736575ULL, k->k1 ^ 0x646f72616e646f6dULL,
			 k->k0 ^ 0x6c7967656e657261ULL, k->k1 ^ 0x7465646279746573ULL};
	size_t full = len / 8 * 8;
	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = load_le64(p + i, 8);
		v[3] ^= m;
		for (int r = 0; r < c; r++)
			hash_sipround(v);
		v[0] ^= m;
	}
	uint64_t b = (uint64_t)len << 56 | load_le64(p + full, len - full);
	v[3] ^= b;
	for (int r = 0; r < c; r++)
		hash_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < d; r++)
		hash_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void hash_random_key(struct hash_key *k)
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, GRND_NONBLOCK);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == sizeof(b)) {
		k->k0 = load_le64(b, 8);
		k->k1 = load_le64(b + 8, 8);
		return;
	}
	struct timespec a, m;
	clock_gettime(CLOCK_REALTIME, &a);
	clock_gettime(CLOCK_MONOTONIC, &m);
	uint64_t s = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
	uint64_t t = (uint64_t)m.tv_sec * 1000000000u + (uint64_t)m.tv_nsec;
	k->k0 = hash_fmix64(s ^ (uint64_t)(uintptr_t)k ^ ((uint64_t)getpid() << 32));
	k->k1 = hash_fmix64(t ^ (uint64_t)(uintptr_t)&hash_random_key ^ k->k0);
}
