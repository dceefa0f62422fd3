/* SPDX-License-Identifier: MIT */
/*
 * replay_hist - fixed-size log-linear histograms for latency and pacing
 * lateness (the HdrHistogram idea, Gil Tene): microsecond units, exact
 * below 2*SUB us, then SUB buckets per power of two, so the relative
 * error is below 1/SUB and memory stays constant however long a replay
 * runs. Percentiles use the nearest-rank definition.
 */
#include <math.h>
#include <string.h>

#include "replay/replay.h"

static size_t bucket_of(uint64_t us)
{
	if (us < 2 * REPLAY_HIST_SUB)
		return (size_t)us;
	/* us >= 128: e = floor(log2(us)) - 6 >= 1, mantissa in [64, 128). */
	unsigned e = (unsigned)(63 - __builtin_clzll(us)) - 6;
	uint64_t mant = us >> e;
	size_t idx = 2 * REPLAY_HIST_SUB + (size_t)(e - 1) * REPLAY_HIST_SUB +
		     (size_t)(mant - REPLAY_HIST_SUB);
	return idx < REPLAY_HIST_BUCKETS ? idx : REPLAY_HIST_BUCKETS - 1;
}

/* Lowest value (us) of bucket @p idx and its width. */
static void bucket_range(size_t idx, uint64_t *lo, uint64_t *width)
{
	if (idx < 2 * REPLAY_HIST_SUB) {
		*lo = idx;
		*width = 1;
		return;
	}
	size_t k = idx - 2 * REPLAY_HIST_SUB;
	unsigned e = (unsigned)(k / REPLAY_HIST_SUB) + 1;
	uint64_t mant = REPLAY_HIST_SUB + k % REPLAY_HIST_SUB;
	*lo = mant << e;
	*width = 1ull << e;
}

void replay_hist_add(struct replay_hist *h, int64_t v_ns)
{
	uint64_t v = v_ns > 0 ? (uint64_t)v_ns : 0;
	h->n++;
	h->sum_ns += v;
	if (v > h->max_ns)
		h->max_ns = v;
	h->counts[bucket_of(v / 1000)]++;
}

uint64_t replay_hist_pct(const struct replay_hist *h, double p)
{
	if (!h->n)
		return 0;
	if (p <= 0)
		p = 1e-9;
	if (p > 100)
		p = 100;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
	if (rank < 1)
		rank = 1;
	uint64_t cum = 0;
	for (size_t i = 0; i < REPLAY_HIST_BUCKETS; i++) {
		cum += h->counts[i];
		if (cum >= rank) {
			uint64_t lo, width;
			bucket_range(i, &lo, &width);
			uint64_t v = lo * 1000 + width * 500;
			return v < h->max_ns ? v : h->max_ns;
		}
	}
	return h->max_ns;
}

void replay_hist_merge(struct replay_hist *dst, const struct replay_hist *src)
{
	dst->n += src->n;
	dst->sum_ns += src->sum_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
	for (size_t i = 0; i < REPLAY_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
}
