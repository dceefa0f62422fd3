/* SPDX-License-Identifier: MIT */
/*
 * clock - nanosecond clocks. Monotonic for intervals and pacing,
 * realtime for timestamps written to files.
 */
#ifndef DYETAP_COMMON_CLOCK_H
#define DYETAP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in ns. */
static inline int64_t clk_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** CLOCK_REALTIME in ns since the Unix epoch. */
static inline int64_t clk_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
