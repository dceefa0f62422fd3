/* SPDX-License-Identifier: MIT */
/*
 * hash - hash functions shared by the flow table and the sampling rules.
 *
 * hash_fmix64 is the 64-bit finalizer of MurmurHash3 (Austin Appleby,
 * public domain): every input bit affects every output bit. It is
 * unkeyed, so it is only for values an attacker does not choose or where
 * collisions cost nothing (the sampling rules need the same answer on
 * every machine).
 *
 * hash_sip13_words is SipHash-1-3 (Aumasson and Bernstein, "SipHash: a
 * fast short-input PRF", 2012; the 1-3 round counts are the ones Rust's
 * and Python's hash tables use) under a secret 128-bit key: without the
 * key nobody can choose inputs that land in one bucket, which is what a
 * table indexed by packet contents needs (a flow table fed from a SPAN
 * port sees whatever the internet sends). hash_random_key draws a key
 * from the kernel (getrandom(2)).
 *
 * References: https://www.aumasson.jp/siphash/siphash.pdf; Crosby and
 * Wallach, "Denial of Service via Algorithmic Complexity Attacks" (2003).
 */
#ifndef DYETAP_COMMON_HASH_H
#define DYETAP_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/** MurmurHash3's fmix64 finalizer. */
static inline uint64_t hash_fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/** A SipHash key: two 64-bit words (k0 = bytes 0..7, k1 = bytes 8..15, little-endian). */
struct hash_key {
	uint64_t k0, k1;
};

#define HASH_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void hash_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = HASH_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = HASH_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = HASH_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = HASH_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = HASH_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = HASH_ROTL(v[2], 32);
}

/**
 * SipHash-1-3 of @p n 64-bit words: the same value as SipHash-1-3 of the
 * 8 * n bytes of the words in little-endian order (a fixed-size key, such
 * as a flow tuple, needs no byte handling).
 */
static inline uint64_t hash_sip13_words(const struct hash_key *k, const uint64_t *w, size_t n)
{
	uint64_t v[4] = {k->k0 ^ 0x736f6d6570736575ULL, k->k1 ^ 0x646f72616e646f6dULL,
			 k->k0 ^ 0x6c7967656e657261ULL, k->k1 ^ 0x7465646279746573ULL};
	for (size_t i = 0; i < n; i++) {
		v[3] ^= w[i];
		hash_sipround(v);
		v[0] ^= w[i];
	}
	uint64_t b = (uint64_t)(n * 8) << 56;
	v[3] ^= b;
	hash_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	hash_sipround(v);
	hash_sipround(v);
	hash_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/**
 * SipHash-c-d of @p len bytes at @p data (the reference definition, for
 * tests and byte strings): c compression and d finalization rounds.
 */
uint64_t hash_siphash(int c, int d, const struct hash_key *k, const void *data, size_t len);

/**
 * Fill @p k with 16 random bytes from getrandom(2). Where the kernel has
 * none to give (very early boot, seccomp), the key is mixed from the
 * clocks, the process id and addresses (ASLR): weaker, still unknown to a
 * remote sender.
 */
void hash_random_key(struct hash_key *k);

#endif
