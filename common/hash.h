/* SPDX-License-Identifier: MIT */
/*
 * hash - small integer hash helpers shared by the flow table and the
 * sampling rules. hash_fmix64 is the 64-bit finalizer of MurmurHash3
 * (Austin Appleby, public domain): every input bit affects every output bit.
 */
#ifndef DYETAP_COMMON_HASH_H
#define DYETAP_COMMON_HASH_H

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

#endif
