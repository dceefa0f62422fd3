/* SPDX-License-Identifier: MIT */
/*
 * units - one parser for the size options of every command (--max-body,
 * memcaps, --report-memcap), so they all accept the same suffixes.
 *
 * A size is a decimal integer, optionally followed by k, M or G (any case,
 * binary multiples: 1k = 1024 bytes), optionally followed by B or iB:
 * "1048576", "64k", "64KiB", "1M", "2GB".
 */
#ifndef DYETAP_COMMON_UNITS_H
#define DYETAP_COMMON_UNITS_H

#include <stdint.h>

/**
 * Parse size @p s into *out (bytes).
 * @return 0, or -EINVAL (not a size, an unknown suffix, a sign, or beyond
 *         UINT64_MAX bytes).
 */
int units_parse_size(const char *s, uint64_t *out);

/** The help text for a size argument, for --help lines and messages. */
#define UNITS_SIZE_HELP "bytes; k, M or G suffix (1024-based), e.g. 64k, 1M"

#endif
