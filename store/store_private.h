/* SPDX-License-Identifier: MIT */
/*
 * store_private - constants and helpers shared by the store writer and
 * reader. The numbers here are the ones docs/format.md specifies; change
 * both together.
 */
#ifndef DYETAP_STORE_STORE_PRIVATE_H
#define DYETAP_STORE_STORE_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define STORE_LOG(lvl, ...) LOG_MSG(lvl, "store", __VA_ARGS__)

/** zstd skippable frame magics (RFC 8878 §3.1.2) used by the format. */
#define STORE_MAGIC_HEADER   0x184D2A5Du
#define STORE_MAGIC_INDEX    0x184D2A5Eu
#define STORE_MAGIC_SKIP_LO  0x184D2A50u
#define STORE_MAGIC_SKIP_MSK 0xFFFFFFF0u
#define STORE_MAGIC_ZSTD     0xFD2FB528u

#define STORE_HEADER_TAG    "DYTH"
#define STORE_INDEX_TAG	    "DYTI"
#define STORE_INDEX_END_TAG "DYTE"

/** Header frame content: "DYTH" + u32 version + map + u32 crc. */
#define STORE_HEADER_MIN 12u
#define STORE_HEADER_MAX (1u << 20)
/** Index frame content: "DYTI" + map + u32 crc + u32 total + "DYTE". */
#define STORE_INDEX_MIN 16u
#define STORE_INDEX_MAX (64u << 20)

/** Cap on a data frame's decompressed size (docs/format.md §1.2). */
#define STORE_MAX_FRAME_CONTENT (64u << 20)
/** Default and maximum flush sizes of the writer. */
#define STORE_DEFAULT_FLUSH_BYTES (1u << 20)
#define STORE_MAX_FLUSH_BYTES	  (16u << 20)
#define STORE_DEFAULT_FLUSH_MS	  1000u
#define STORE_DEFAULT_LEVEL	  1

/** CRC-32C (Castagnoli) of @p n bytes, continuing from @p crc (start with 0). */
uint32_t store_crc32c(uint32_t crc, const void *p, size_t n);

static inline void store_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t store_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
