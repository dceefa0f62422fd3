/* SPDX-License-Identifier: MIT */
/*
 * test_ipfrag - IP fragment reassembly (capture/ipfrag.h): IPv4 and IPv6
 * datagrams cut into fragments offered in 30 random orders with
 * duplicates come back byte for byte (headers fixed as RFC 791 and RFC
 * 8200 say); first seen wins on overlaps with different bytes; timeouts,
 * the memory cap, the piece cap, disagreeing ends, fragments cut by the
 * snap length and fragments of other datagrams interleaved.
 */
#include <stdlib.h>
#include <string.h>

#include "capture/ipfrag.h"
#include "tests/tap.h"

#define S 1000000000LL

static uint8_t pkt[70000];

/* An IPv4 datagram of @p n payload bytes (protocol 6), header checksum 0. */
static size_t v4_dgram(uint8_t *d, size_t n, uint16_t id)
{
	memset(d, 0, 20);
	d[0] = 0x45;
	d[2] = (uint8_t)((20 + n) >> 8);
	d[3] = (uint8_t)(20 + n);
	d[4] = (uint8_t)(id >> 8);
	d[5] = (uint8_t)id;
	d[8] = 64;
	d[9] = 6;
	memcpy(d + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	for (size_t i = 0; i < n; i++)
		d[20 + i] = (uint8_t)(i * 31 + id);
	return 20 + n;
}

/* Fragment @p len payload bytes at @p off of the IPv4 datagram @p d into @p f. */
static size_t v4_frag(uint8_t *f, const uint8_t *d, size_t off, size_t len, int more)
{
	memcpy(f, d, 20);
	f[2] = (uint8_t)((20 + len) >> 8);
	f[3] = (uint8_t)(20 + len);
	uint16_t fo = (uint16_t)((more ? 0x2000 : 0) | (off / 8));
	f[6] = (uint8_t)(fo >> 8);
	f[7] = (uint8_t)fo;
	memcpy(f + 20, d + 20 + off, len);
	return 20 + len;
}

/* IPv6 with a Hop-by-Hop header (8 bytes) before the Fragment header. */
static size_t v6_frag(uint8_t *f, const uint8_t *payload, size_t off, size_t len, int more,
		      uint32_t id)
{
	memset(f, 0, 56);
	f[0] = 0x60;
	size_t plen = 8 + 8 + len;
	f[4] = (uint8_t)(plen >> 8);
	f[5] = (uint8_t)plen;
	f[6] = 0; /* Hop-by-Hop */
	f[7] = 64;
	f[23] = 1;
	f[39] = 2;
	f[40] = 44; /* next: Fragment */
	f[41] = 0;
	f[48] = 6; /* Fragment header: next TCP */
	uint16_t fo = (uint16_t)(off | (more ? 1 : 0));
	f[50] = (uint8_t)(fo >> 8);
	f[51] = (uint8_t)fo;
	f[52] = (uint8_t)(id >> 24);
	f[53] = (uint8_t)(id >> 16);
	f[54] = (uint8_t)(id >> 8);
	f[55] = (uint8_t)id;
	memcpy(f + 56, payload + off, len);
	return 56 + len;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void test_v4_orders(void)
{
	static uint8_t d[4000], f[2000];
	size_t n = v4_dgram(d, 3000, 77) - 20;
	int good = 0;
	for (int round = 0; round < 30; round++) {
		struct ipfrag_stats st = {0};
		struct ipfrag *fr = ipfrag_create(NULL, &st);
		size_t offs[64], lens[64], k = 0;
		for (size_t o = 0; o < n;) {
			size_t l = 8 * (1 + rnd() % 60);
			if (o + l > n)
				l = n - o;
			offs[k] = o;
			lens[k++] = l;
			o += l;
		}
		for (size_t i = k; i > 1; i--) { /* shuffle */
			size_t j = rnd() % i, to = offs[i - 1], tl = lens[i - 1];
			offs[i - 1] = offs[j], lens[i - 1] = lens[j];
			offs[j] = to, lens[j] = tl;
		}
		const uint8_t *out = NULL;
		size_t out_len = 0, done = 0;
		for (size_t i = 0; i < k; i++) {
			size_t fl = v4_frag(f, d, offs[i], lens[i], offs[i] + lens[i] < n);
			if (i + 1 < k && rnd() % 4 == 0) /* a duplicate first */
				done += ipfrag_offer(fr, f, fl, 0, S, &out, &out_len);
			done += ipfrag_offer(fr, f, fl, 0, S, &out, &out_len);
		}
		d[2] = (uint8_t)((20 + n) >> 8), d[3] = (uint8_t)(20 + n);
		bool same = done == 1 && out_len == 20 + n && !memcmp(out + 20, d + 20, n) &&
			    out[6] == 0 && out[7] == 0 && out[2] == d[2] && out[3] == d[3];
		/* the header checksum of the result verifies */
		uint32_t sum = 0;
		for (int i = 0; i < 20; i += 2)
			sum += (uint32_t)(out ? out[i] << 8 | out[i + 1] : 0);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		good += same && sum == 0xffff && st.reassembled == 1 && ipfrag_held(fr) == 0;
		ipfrag_free(fr);
	}
	TAP_EQ_U64(good, 30, "ipv4: 30 random orders with duplicates give the datagram back");
}

static void test_v6(void)
{
	static uint8_t payload[3000], f[2000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	struct ipfrag_stats st = {0};
	struct ipfrag *fr = ipfrag_create(NULL, &st);
	const uint8_t *out = NULL;
	size_t out_len = 0;
	size_t l = v6_frag(f, payload, 2400, 600, 0, 9);
	TAP_OK(!ipfrag_offer(fr, f, l, 0, S, &out, &out_len), "ipv6: last first, held");
	l = v6_frag(f, payload, 1200, 1200, 1, 9);
	TAP_OK(!ipfrag_offer(fr, f, l, 0, S, &out, &out_len), "ipv6: middle, held");
	l = v6_frag(f, payload, 0, 1200, 1, 9);
	bool done = ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	TAP_OK(done && out_len == 48 + 3000 && !memcmp(out + 48, payload, 3000) && out[40] == 6 &&
		   out[4] == (3008 >> 8) && out[5] == (3008 & 0xff),
	       "ipv6: whole, Fragment header removed, next header and payload length fixed");
	ipfrag_free(fr);
}

static void test_overlap_first_wins(void)
{
	static uint8_t d[200], f[200];
	struct ipfrag_stats st = {0};
	struct ipfrag *fr = ipfrag_create(NULL, &st);
	size_t n = v4_dgram(d, 64, 5) - 20;
	const uint8_t *out = NULL;
	size_t out_len = 0;
	size_t l = v4_frag(f, d, 16, 32, 1);
	ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	l = v4_frag(f, d, 0, 48, 1);
	memset(f + 20 + 16, 'X', 32); /* differs where it overlaps */
	ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	l = v4_frag(f, d, 48, n - 48, 0);
	bool done = ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	TAP_OK(done && !memcmp(out + 20, d + 20, n), "overlap: the first seen bytes are kept");
	TAP_OK(st.overlaps == 1 && st.overlap_diff == 1, "overlap with other bytes counted");
	ipfrag_free(fr);
}

static void test_limits(void)
{
	static uint8_t d[70000], f[2000];
	size_t n = v4_dgram(d, 1600, 9) - 20;
	const uint8_t *out;
	size_t out_len;
	struct ipfrag_stats st = {0};
	struct ipfrag *fr = ipfrag_create(NULL, &st);
	size_t l = v4_frag(f, d, 0, 800, 1);
	ipfrag_offer(fr, f, l, 0, 1 * S, &out, &out_len);
	ipfrag_advance(fr, 32 * S);
	TAP_OK(st.timeouts == 1 && ipfrag_held(fr) == 0, "timeout: dropped after 30 s, counted");
	l = v4_frag(f, d, 800, n - 800, 0);
	TAP_OK(!ipfrag_offer(fr, f, l, 0, 33 * S, &out, &out_len),
	       "timeout: the rest alone does not make a datagram");
	ipfrag_finish(fr);
	TAP_EQ_U64(st.unfinished, 1, "finish: the incomplete datagram counted");
	ipfrag_free(fr);

	memset(&st, 0, sizeof(st));
	fr = ipfrag_create(&(struct ipfrag_params){.memcap = 3000}, &st);
	for (uint16_t id = 0; id < 4; id++) {
		v4_dgram(d, 1600, id);
		l = v4_frag(f, d, 0, 1200, 1);
		ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	}
	TAP_OK(st.memcap_drops >= 2 && ipfrag_held(fr) <= 3000,
	       "memory cap: the oldest datagrams dropped, counted");
	ipfrag_free(fr);

	memset(&st, 0, sizeof(st));
	fr = ipfrag_create(&(struct ipfrag_params){.max_pieces = 4}, &st);
	v4_dgram(d, 1600, 11);
	for (size_t o = 0; o < 48; o += 8) {
		l = v4_frag(f, d, o, 8, 1);
		ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	}
	TAP_OK(st.invalid >= 1 && ipfrag_held(fr) < 200, "piece cap: the datagram dropped");
	ipfrag_free(fr);

	memset(&st, 0, sizeof(st));
	fr = ipfrag_create(NULL, &st);
	v4_dgram(d, 1600, 12);
	l = v4_frag(f, d, 800, 800, 0);
	ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	l = v4_frag(f, d, 800, 808, 0);
	ipfrag_offer(fr, f, l, 0, S, &out, &out_len);
	TAP_OK(st.invalid == 1 && ipfrag_held(fr) == 0, "two different ends: dropped");
	l = v4_frag(f, d, 0, 12, 1);
	TAP_OK(!ipfrag_offer(fr, f, l, 0, S, &out, &out_len) && st.invalid == 2,
	       "a non-last fragment not a multiple of 8: refused");
	l = v4_frag(f, d, 0, 800, 1);
	TAP_OK(!ipfrag_offer(fr, f, l - 100, 0, S, &out, &out_len) && st.truncated == 1,
	       "a fragment cut by the snap length: not used, counted");
	v4_dgram(d, 65000, 13);
	l = v4_frag(f, d, 65528, 8, 0);
	memcpy(f + 20, "12345678", 8);
	TAP_OK(!ipfrag_offer(fr, f, l, 0, S, &out, &out_len) && st.invalid == 3,
	       "a fragment past 65535 bytes: refused");
	ipfrag_free(fr);

	/* Two datagrams interleaved, one in each VLAN with the same id. */
	memset(&st, 0, sizeof(st));
	fr = ipfrag_create(NULL, &st);
	static uint8_t d2[2000];
	v4_dgram(d, 1600, 20);
	v4_dgram(d2, 1600, 20);
	d2[20] ^= 0xff;
	int done = 0;
	for (size_t o = 0; o < 1600; o += 800) {
		l = v4_frag(f, d, o, 800, o == 0);
		done += ipfrag_offer(fr, f, l, 1, S, &out, &out_len) && out[20] == d[20];
		l = v4_frag(f, d2, o, 800, o == 0);
		done += ipfrag_offer(fr, f, l, 2, S, &out, &out_len) && out[20] == d2[20];
	}
	TAP_OK(done == 2 && st.reassembled == 2, "the VLAN tells two datagrams with one id apart");
	ipfrag_free(fr);
	(void)n;
}

int main(void)
{
	TAP_OK(ipfrag_ctr_count == 11, "counter table names every field");
	test_v4_orders();
	test_v6();
	test_overlap_first_wins();
	test_limits();
	(void)pkt;
	return tap_done();
}
