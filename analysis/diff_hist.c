/* SPDX-License-Identifier: MIT */
/*
 * diff_hist - fixed-size log-linear latency histograms (the layout of
 * HdrHistogram, Gil Tene: a power-of-two range split into equal
 * sub-buckets), so a latency distribution costs the same memory for ten
 * pairs or ten million, and two histograms merge by adding counts (the
 * merge of --threads partials and of shards is exact and order-free).
 *
 * Values below 32 ns have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is split into 32 buckets of width 2^(e-5), so a bucket's
 * width is at most 1/32 of the values in it. Each bucket keeps its count
 * and the sum of its values; a percentile is the mean of the bucket that
 * holds the nearest-rank sample: within 1/32 (3.1 %) of the exact
 * nearest-rank value, and exact when the values of that bucket are equal
 * (a constant latency reports that latency). Sums are integers, so a
 * merge gives the same figures in any order.
 *
 * The 32 buckets of a power of two are allocated when its first value
 * arrives (512 bytes each; a latency spread over 0.1 ms .. 1 s touches 14
 * of them); a histogram that could not get memory for one counts the
 * value in `lost` instead.
 */
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

#define SUB_BITS 5
#define SUB	 (1u << SUB_BITS)
#define CHUNK	 (2 * SUB) /* counts, then sums */

/* Octave and sub-bucket of @p v: octave 0 holds 0..31 exactly, octave
 * o >= 1 the values with their top bit at o + 4. */
static void locate(uint64_t v, unsigned *oct, unsigned *sub)
{
	if (v < SUB) {
		*oct = 0;
		*sub = (unsigned)v;
		return;
	}
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	*oct = e - SUB_BITS + 1;
	*sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
}

/* Lowest value of bucket (oct, sub) and its width. */
static void bucket_range(unsigned oct, unsigned sub, uint64_t *lo, uint64_t *width)
{
	if (!oct) {
		*lo = sub;
		*width = 1;
		return;
	}
	unsigned e = oct + SUB_BITS - 1;
	*width = (uint64_t)1 << (e - SUB_BITS);
	*lo = ((uint64_t)(SUB + sub)) << (e - SUB_BITS);
}

/* @p *sum += @p v, sticking at UINT64_MAX (the bucket's middle is used then). */
static void add_sum(uint64_t *sum, uint64_t v)
{
	if (__builtin_add_overflow(*sum, v, sum))
		*sum = UINT64_MAX;
}

size_t diff_hist_add(struct diff_hist *h, uint64_t v)
{
	unsigned oct, sub;
	size_t grown = 0;
	locate(v, &oct, &sub);
	if (!h->oct[oct]) {
		h->oct[oct] = mem_calloc(CHUNK, sizeof(uint64_t));
		if (!h->oct[oct]) {
			h->lost++;
			return 0;
		}
		grown = CHUNK * sizeof(uint64_t);
	}
	h->oct[oct][sub]++;
	add_sum(&h->oct[oct][SUB + sub], v);
	if (!h->n || v < h->min)
		h->min = v;
	if (!h->n || v > h->max)
		h->max = v;
	h->n++;
	return grown;
}

size_t diff_hist_merge(struct diff_hist *dst, const struct diff_hist *src)
{
	size_t grown = 0;
	for (unsigned o = 0; o < DIFF_HIST_OCTAVES; o++) {
		if (!src->oct[o])
			continue;
		if (!dst->oct[o]) {
			dst->oct[o] = mem_calloc(CHUNK, sizeof(uint64_t));
			if (!dst->oct[o]) {
				for (unsigned s = 0; s < SUB; s++)
					dst->lost += src->oct[o][s];
				continue;
			}
			grown += CHUNK * sizeof(uint64_t);
		}
		for (unsigned s = 0; s < SUB; s++) {
			dst->oct[o][s] += src->oct[o][s];
			add_sum(&dst->oct[o][SUB + s], src->oct[o][SUB + s]);
		}
	}
	if (src->n && (!dst->n || src->min < dst->min))
		dst->min = src->min;
	if (src->n && (!dst->n || src->max > dst->max))
		dst->max = src->max;
	dst->n += src->n;
	dst->lost += src->lost;
	return grown;
}

uint64_t diff_hist_pct(const struct diff_hist *h, double q)
{
	uint64_t n = h->n; /* values that found no memory are in h->lost, not in n */
	if (!n)
		return 0;
	/* nearest rank, as diff_percentile() */
	uint64_t k = (uint64_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	uint64_t seen = 0;
	for (unsigned o = 0; o < DIFF_HIST_OCTAVES; o++) {
		if (!h->oct[o])
			continue;
		for (unsigned s = 0; s < SUB; s++) {
			seen += h->oct[o][s];
			if (seen < k)
				continue;
			uint64_t lo, w, sum = h->oct[o][SUB + s];
			bucket_range(o, s, &lo, &w);
			uint64_t est = sum == UINT64_MAX ? lo + w / 2 : sum / h->oct[o][s];
			return est < h->min ? h->min : est > h->max ? h->max : est;
		}
	}
	return h->max;
}

size_t diff_hist_bytes(const struct diff_hist *h)
{
	size_t n = 0;
	for (unsigned o = 0; o < DIFF_HIST_OCTAVES; o++)
		n += h->oct[o] ? CHUNK * sizeof(uint64_t) : 0;
	return n;
}

void diff_hist_each(const struct diff_hist *h,
		    void (*fn)(void *arg, uint64_t lo, uint64_t width, uint64_t count), void *arg)
{
	for (unsigned o = 0; o < DIFF_HIST_OCTAVES; o++) {
		if (!h->oct[o])
			continue;
		for (unsigned s = 0; s < SUB; s++) {
			if (!h->oct[o][s])
				continue;
			uint64_t lo, w;
			bucket_range(o, s, &lo, &w);
			fn(arg, lo, w, h->oct[o][s]);
		}
	}
}

void diff_hist_release(struct diff_hist *h)
{
	for (unsigned o = 0; o < DIFF_HIST_OCTAVES; o++)
		mem_free(h->oct[o]);
	memset(h, 0, sizeof(*h));
}
