/* SPDX-License-Identifier: MIT */
/*
 * test_reasm - TCP reassembly fed segment by segment; the delivered data
 * and gaps are recorded as a transcript ("abc[g8]def") and compared.
 * Covers: in order, out of order, duplicates, overlaps with different
 * bytes (first seen wins), gaps by ACK and at flush, wraparound at 2^32,
 * a stream longer than 4 GiB, midstream start, FIN, the memcap policy,
 * the piece cap, random segment orders against a byte-by-byte model, and
 * the work of a flood of one-byte segments behind a hole (tree nodes
 * visited grow as n log n, not n^2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/reasm.h"
#include "tests/tap.h"

struct rec {
	char t[4096];
	size_t n;
	uint64_t bytes;
	int count_only;
};

static void rec_data(void *u, const uint8_t *p, size_t len, const struct reasm_meta *m)
{
	struct rec *r = u;
	(void)m;
	r->bytes += len;
	if (r->count_only)
		return;
	for (size_t i = 0; i < len && r->n + 1 < sizeof(r->t); i++)
		r->t[r->n++] = (char)p[i];
	r->t[r->n] = 0;
}

static void rec_gap(void *u, uint64_t len, int64_t ts)
{
	struct rec *r = u;
	(void)ts;
	int w = snprintf(r->t + r->n, sizeof(r->t) - r->n, "[g%llu]", (unsigned long long)len);
	if (w > 0 && r->n + (size_t)w < sizeof(r->t))
		r->n += (size_t)w;
}

static const struct reasm_meta meta1 = {.ts_ns = 1};

struct fx {
	struct reasm_stats st;
	struct reasm_ctx c;
	struct reasm_stream s;
	struct rec r;
	struct reasm_out o;
};

static void fx_init(struct fx *f, const struct reasm_params *p)
{
	memset(f, 0, sizeof(*f));
	reasm_ctx_init(&f->c, p, &f->st);
	reasm_stream_init(&f->s);
	f->o = (struct reasm_out){rec_data, rec_gap, &f->r};
}

static void seg(struct fx *f, uint32_t seq, const char *s)
{
	reasm_segment(&f->c, &f->s, seq, (const uint8_t *)s, strlen(s), &meta1, &f->o);
}

static void fx_end(struct fx *f)
{
	reasm_stream_release(&f->c, &f->s);
}

/* Piece cap: the 4th buffered piece of a stream capped at 3 flushes it. */
static void test_piece_cap(void)
{
	struct fx f;
	struct reasm_params p = {.max_segments = 3};
	fx_init(&f, &p);
	reasm_stream_start(&f.s, 0);
	seg(&f, 2, "a");
	seg(&f, 4, "b");
	seg(&f, 6, "c");
	TAP_EQ_U64(f.s.n_segs, 3, "three pieces buffered");
	seg(&f, 8, "d");
	TAP_EQ_STR(f.r.t, "[g2]a[g1]b[g1]c[g1]d", "fourth piece: the stream stops waiting");
	TAP_EQ_U64(f.st.seg_cap_hits, 1, "seg_cap_hits counted");
	TAP_EQ_U64(f.st.memcap_hits, 0, "not a memcap hit");
	TAP_EQ_U64(f.c.used, 0, "nothing held");
	fx_end(&f);
}

/* Random segments of a known 3000-byte stream, in random order, with
 * overlaps carrying other bytes: what comes out must equal a model that
 * keeps the first byte seen at each offset. */
static void test_random_model(void)
{
	enum { N = 3000 };
	static char truth[N], model[N + 1];
	static bool seen[N];
	unsigned seed = 12345;
	int bad = 0;
	for (int round = 0; round < 40; round++) {
		struct fx f;
		struct reasm_params p = {.stream_cap = 1u << 20, .max_segments = 100000};
		fx_init(&f, &p);
		f.r.count_only = 0;
		for (int i = 0; i < N; i++)
			truth[i] = (char)('a' + rand_r(&seed) % 26);
		memset(seen, 0, sizeof(seen));
		reasm_stream_start(&f.s, 7000);
		for (int k = 0; k < 400; k++) {
			int a = 1 + rand_r(&seed) % (N - 1), len = 1 + rand_r(&seed) % 40;
			if (a + len > N)
				len = N - a;
			char buf[64];
			bool liar = rand_r(&seed) % 5 == 0;
			for (int i = 0; i < len; i++) {
				buf[i] = liar ? 'X' : truth[a + i];
				if (!seen[a + i]) {
					seen[a + i] = true;
					model[a + i] = buf[i];
				}
			}
			reasm_segment(&f.c, &f.s, 7000u + (uint32_t)a, (const uint8_t *)buf,
				      (size_t)len, &meta1, &f.o);
		}
		TAP_OK(f.r.n == 0, "round %d: nothing delivered while byte 0 is missing", round);
		/* byte 0 last: everything contiguous after it comes out */
		seen[0] = true;
		model[0] = truth[0];
		reasm_segment(&f.c, &f.s, 7000u, (const uint8_t *)truth, 1, &meta1, &f.o);
		reasm_flush(&f.c, &f.s, 1, &f.o);
		/* expected transcript: model bytes, holes as gaps */
		char want[2 * N + 1024];
		size_t w = 0;
		for (int i = 0; i < N;) {
			if (seen[i]) {
				want[w++] = model[i++];
				continue;
			}
			int j = i;
			while (j < N && !seen[j])
				j++;
			bool tail = j == N;
			if (!tail)
				w += (size_t)snprintf(want + w, sizeof(want) - w, "[g%d]", j - i);
			i = j;
		}
		want[w] = 0;
		if (strcmp(f.r.t, want) != 0)
			bad++;
		TAP_EQ_U64(f.s.n_segs, 0, "round %d: tree empty after flush", round);
		fx_end(&f);
		TAP_EQ_U64(f.c.used, 0, "round %d: memory released", round);
	}
	TAP_EQ_U64(bad, 0, "40 random rounds equal the first-seen model");
}

/* n one-byte segments behind a hole (the flood), caps raised so
 * every one is buffered: nodes visited per segment must stay logarithmic. */
static uint64_t flood_work(uint32_t n)
{
	struct fx f;
	struct reasm_params p = {
	    .stream_cap = 1u << 30, .memcap = (size_t)1 << 34, .max_segments = 1u << 30};
	fx_init(&f, &p);
	f.r.count_only = 1;
	reasm_stream_start(&f.s, 1);
	for (uint32_t i = 1; i <= n; i++)
		reasm_segment(&f.c, &f.s, 1 + i, (const uint8_t *)"x", 1, &meta1, &f.o);
	reasm_segment(&f.c, &f.s, 1, (const uint8_t *)"y", 1, &meta1, &f.o);
	uint64_t work = f.c.work;
	bool all = f.r.bytes == (uint64_t)n + 1;
	fx_end(&f);
	TAP_OK(all, "%u one-byte segments behind a hole all delivered", n);
	return work;
}

static void test_flood_work(void)
{
	uint64_t w_small = flood_work(25000), w_big = flood_work(250000);
	/* n log2 n: 250 000 * 18 = 4.5 M; a list walked from the head did
	 * n^2 / 2 = 31 G steps. Generous bound: 4 n log2 n. */
	printf("# nodes visited: 25k segments %llu, 250k segments %llu\n",
	       (unsigned long long)w_small, (unsigned long long)w_big);
	TAP_OK(w_big <= 4ULL * 250000 * 18, "250k-segment flood within 4 n log2 n tree steps");
	TAP_OK(w_big <= 15 * w_small,
	       "10x the segments cost at most 15x the work (n log n; a list: 100x)");
}

int main(void)
{
	struct fx f;

	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "GET ");
	seg(&f, 1004, "/ HTTP/1.1");
	TAP_EQ_STR(f.r.t, "GET / HTTP/1.1", "in order");
	TAP_EQ_U64(f.st.in_order, 2, "in_order counted");
	TAP_EQ_U64(reasm_offset(&f.s), 14, "offset after in-order data");
	fx_end(&f);

	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1008, "ijkl");
	seg(&f, 1004, "efgh");
	TAP_EQ_STR(f.r.t, "", "nothing delivered before the hole is filled");
	seg(&f, 1000, "abcd");
	TAP_EQ_STR(f.r.t, "abcdefghijkl", "out of order reassembled");
	TAP_EQ_U64(f.st.out_of_order, 2, "out_of_order counted");
	TAP_EQ_U64(f.c.used, 0, "no buffered memory left");
	fx_end(&f);

	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "abcd");
	seg(&f, 1000, "abcd");
	seg(&f, 1004, "ef");
	seg(&f, 1004, "ef");
	TAP_EQ_STR(f.r.t, "abcdef", "duplicates dropped");
	TAP_EQ_U64(f.st.retrans_segments, 2, "duplicates counted as retransmissions");
	TAP_EQ_U64(f.st.retrans_bytes, 6, "retransmitted bytes");
	fx_end(&f);

	/* Overlap with delivered bytes that differ: first seen wins. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "abcd");
	seg(&f, 1002, "XXef");
	TAP_EQ_STR(f.r.t, "abcdef", "delivered bytes never replaced");
	TAP_EQ_U64(f.st.retrans_bytes, 2, "overlapping delivered bytes dropped");
	fx_end(&f);

	/* Overlap with buffered bytes that differ: the buffered ones stay. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1008, "IJKL");
	seg(&f, 1006, "ghZZZZmn");
	seg(&f, 1000, "abcdef");
	TAP_EQ_STR(f.r.t, "abcdefghIJKLmn", "first seen bytes kept in an out-of-order overlap");
	TAP_EQ_U64(f.st.overlap_diff, 1, "overlap with different bytes counted");
	TAP_EQ_U64(f.st.overlap_diff_bytes, 4, "differing bytes counted");
	fx_end(&f);

	/* An in-order segment that runs over buffered bytes with other content. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 0);
	seg(&f, 4, "EFGH");
	seg(&f, 0, "abcdxxgh");
	TAP_EQ_STR(f.r.t, "abcdEFGH", "in-order segment yields to buffered bytes");
	TAP_EQ_U64(f.st.overlap_diff_bytes, 4, "four differing bytes");
	fx_end(&f);

	/* Gap declared when the peer acknowledges past a hole. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "ab");
	seg(&f, 1010, "cd");
	reasm_ack(&f.c, &f.s, 1005, 1, &f.o);
	TAP_EQ_STR(f.r.t, "ab[g3]", "ack into the hole: gap up to the ack");
	reasm_ack(&f.c, &f.s, 1012, 1, &f.o);
	TAP_EQ_STR(f.r.t, "ab[g3][g5]cd", "ack past the hole: rest of gap then buffered data");
	TAP_EQ_U64(f.st.gaps, 2, "gaps counted");
	TAP_EQ_U64(f.st.gap_bytes, 8, "gap bytes counted");
	TAP_EQ_U64(f.st.gaps_by_ack, 2, "gaps by ack counted");
	reasm_ack(&f.c, &f.s, 1012, 1, &f.o);
	reasm_ack(&f.c, &f.s, 900, 1, &f.o);
	TAP_EQ_STR(f.r.t, "ab[g3][g5]cd", "old and duplicate acks change nothing");
	fx_end(&f);

	/* Gap at close. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "ab");
	seg(&f, 1010, "cd");
	reasm_fin(&f.s, 1020);
	reasm_flush(&f.c, &f.s, 1, &f.o);
	TAP_EQ_STR(f.r.t, "ab[g8]cd[g8]", "flush: holes and the missing tail before FIN are gaps");
	TAP_OK(reasm_complete(&f.s), "complete after flush");
	fx_end(&f);

	/* FIN: bytes after it ignored, its ACK (fin + 1) makes no gap. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 1000);
	seg(&f, 1000, "abc");
	reasm_fin(&f.s, 1003);
	seg(&f, 1003, "zz");
	reasm_ack(&f.c, &f.s, 1004, 1, &f.o);
	TAP_EQ_STR(f.r.t, "abc", "nothing after FIN, ack of FIN no gap");
	TAP_EQ_U64(f.st.after_fin_bytes, 2, "bytes after FIN counted");
	TAP_OK(reasm_complete(&f.s), "complete at FIN");
	fx_end(&f);

	/* Wraparound of the sequence space, out of order across 2^32. */
	fx_init(&f, NULL);
	reasm_stream_start(&f.s, 0xfffffff8u);
	seg(&f, 0xfffffff8u, "0123");
	seg(&f, 0x00000000u, "89ab");
	seg(&f, 0xfffffffcu, "4567");
	seg(&f, 0x00000004u, "cdef");
	TAP_EQ_STR(f.r.t, "0123456789abcdef", "wraparound across 2^32");
	TAP_EQ_U64(reasm_offset(&f.s), 16, "offset counts bytes, not sequence numbers");
	TAP_EQ_U64(f.st.gaps, 0, "no gap at the wrap");
	fx_end(&f);

	/* A stream longer than 4 GiB: offsets keep counting past 2^32. */
	{
		static uint8_t big[65536];
		fx_init(&f, NULL);
		f.r.count_only = 1;
		uint32_t seq = 123456789u;
		reasm_stream_start(&f.s, seq);
		uint64_t total = (5ULL << 30) / sizeof(big);
		for (uint64_t i = 0; i < total; i++) {
			reasm_segment(&f.c, &f.s, seq, big, sizeof(big), &meta1, &f.o);
			seq += sizeof(big);
		}
		seg(&f, seq + 4, "late");
		f.r.count_only = 0;
		seg(&f, seq, "abcd");
		TAP_EQ_U64(reasm_offset(&f.s), (5ULL << 30) + 8, "offset past 4 GiB");
		TAP_EQ_STR(f.r.t, "abcdlate", "reordering still works after several wraps");
		TAP_EQ_U64(f.st.gaps, 0, "no gaps in a long stream");
		fx_end(&f);
	}

	/* Midstream: the first segment seen starts the stream. */
	fx_init(&f, NULL);
	seg(&f, 5000, "xyz");
	seg(&f, 4990, "0123456789");
	seg(&f, 5003, "!");
	TAP_EQ_STR(f.r.t, "xyz!", "midstream start, earlier bytes dropped");
	TAP_EQ_U64(f.st.retrans_segments, 1, "bytes before the pickup counted as retransmission");
	fx_end(&f);

	/* Memcap: over the stream cap the holes become gaps at once. */
	{
		struct reasm_params p = {.stream_cap = 16};
		fx_init(&f, &p);
		reasm_stream_start(&f.s, 0);
		seg(&f, 10, "AAAAAAAA");
		TAP_EQ_STR(f.r.t, "", "buffered under the cap");
		seg(&f, 30, "BBBBBBBBBB");
		TAP_EQ_STR(f.r.t, "[g10]AAAAAAAA[g12]BBBBBBBBBB", "cap hit: flushed with gaps");
		TAP_EQ_U64(f.st.memcap_hits, 1, "memcap hit counted");
		TAP_EQ_U64(f.c.used, 0, "memory released");
		seg(&f, 40, "ok");
		TAP_EQ_STR(f.r.t, "[g10]AAAAAAAA[g12]BBBBBBBBBBok", "stream continues after");
		fx_end(&f);
	}
	{
		struct reasm_params p = {.memcap = 100};
		fx_init(&f, &p);
		struct reasm_stream s2;
		reasm_stream_init(&s2);
		reasm_stream_start(&f.s, 0);
		reasm_stream_start(&s2, 0);
		char fill[41];
		memset(fill, 'x', 40);
		fill[40] = 0;
		seg(&f, 10, fill);
		TAP_EQ_U64(f.st.memcap_hits, 0, "first stream buffers");
		reasm_segment(&f.c, &s2, 10, (const uint8_t *)fill, 40, &meta1, &f.o);
		TAP_EQ_U64(f.st.memcap_hits, 1, "second stream hits the shared memcap");
		TAP_OK(f.st.buffered_peak <= 100, "peak buffered within the memcap");
		reasm_stream_release(&f.c, &s2);
		fx_end(&f);
		TAP_EQ_U64(f.c.used, 0, "release frees all");
	}

	/* Far ahead of the window: ignored. */
	{
		struct reasm_params p = {.window = 1000};
		fx_init(&f, &p);
		reasm_stream_start(&f.s, 0);
		seg(&f, 5000, "far");
		TAP_EQ_U64(f.st.out_of_window, 1, "segment beyond the window ignored");
		TAP_EQ_U64(f.c.used, 0, "nothing buffered");
		fx_end(&f);
	}
	test_piece_cap();
	test_random_model();
	test_flood_work();
	return tap_done();
}
