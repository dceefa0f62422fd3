/* SPDX-License-Identifier: MIT */
/*
 * gen_flows_pcap - write a capture in which N HTTP connections are all open
 * at the same time, for the flow-memory benchmark (bench/flows.sh), and the
 * hostile captures of bench/hostile.sh and tests/capture/hostile_flows.py.
 *
 * Phase 1 opens every connection (SYN, SYN/ACK, ACK) and sends its request
 * (a GET with browser-like headers, about 330 bytes), so that after phase 1
 * the recorder holds N flows, each with a parsed request waiting for its
 * response ("pending", the default). Phase 2 answers every request (a small
 * JSON body) and closes every connection with FIN in both directions. With
 * "idle" the response comes in phase 1 too: the recorder then holds N
 * open keep-alive connections with nothing in flight, as a busy front end
 * has; phase 2 only closes them. Client addresses are
 * 10.128.0.0/9 x ports 1024..65023, the server 10.0.0.1:80 (addresses in a
 * file only; nothing is sent anywhere). TCP/IP checksums are left zero.
 *
 * Hostile shapes (one packet per flow unless said):
 *   syn      - N SYN-only connections (a SYN flood; IPv4 addresses as above)
 *   syn6     - N SYN-only IPv6 connections from 2001:db8::/64 + i (the
 *              control of "collide")
 *   collide  - N SYN-only IPv6 connections whose source addresses all give
 *              the same value under the flow hash dyetap used before its
 *              keyed one (endpoint hash fmix64(a ^ fmix64(b ^ port))
 *              summed, fmix64 being MurmurHash3's invertible finalizer):
 *              every one of them landed in one bucket chain
 *   ooo      - one connection whose POST body of N bytes arrives as N - 1
 *              one-byte segments behind a one-byte hole, then the missing
 *              byte, then the response (an out-of-order flood)
 *   inorder  - the same connection with the N body bytes in order, one
 *              byte per segment (the control of "ooo")
 *
 * Usage: gen_flows_pcap OUT.pcap|- N [pending|idle|syn|syn6|collide|ooo|inorder]
 * Format: pcap-savefile(5), microsecond timestamps, LINKTYPE_ETHERNET.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;
static uint64_t ts_us = 1700000000ULL * 1000000ULL, written;
static uint8_t pkt[2048];

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* One packet of flow i: client 10.128.0.0 + i / 64000 : 1024 + i % 64000,
 * server 10.0.0.1:80. */
static void emit(uint32_t i, int from_client, uint8_t flags, uint32_t seq, uint32_t ack,
		 const char *data, size_t n)
{
	uint32_t caddr = 0x0a800000u + i / 64000, saddr = 0x0a000001u;
	uint16_t cport = (uint16_t)(1024 + i % 64000), sport = 80;
	uint8_t *p = pkt + 16;
	memcpy(p, "\x00\x16\x3e\x11\x22\x33\x00\x16\x3e\x44\x55\x66\x08\x00", 14);
	uint8_t *ip = p + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(40 + n));
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, from_client ? caddr : saddr);
	put32(ip + 16, from_client ? saddr : caddr);
	uint8_t *t = ip + 20;
	memset(t, 0, 20);
	put16(t, from_client ? cport : sport);
	put16(t + 2, from_client ? sport : cport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 502);
	memcpy(t + 20, data, n);
	uint32_t len = (uint32_t)(54 + n);
	ts_us += 3;
	uint32_t hdr[4] = {(uint32_t)(ts_us / 1000000), (uint32_t)(ts_us % 1000000), len, len};
	memcpy(pkt, hdr, 16);
	fwrite(pkt, 1, 16 + len, out);
	written += 16 + len;
}

/* An IPv6 TCP segment from src:sport to [2001:db8::80]:80 (no payload). */
static void emit6(const uint8_t src[16], uint16_t sport, uint8_t flags, uint32_t seq)
{
	uint8_t *p = pkt + 16;
	memcpy(p, "\x00\x16\x3e\x11\x22\x33\x00\x16\x3e\x44\x55\x66\x86\xdd", 14);
	uint8_t *ip = p + 14;
	memset(ip, 0, 40);
	ip[0] = 0x60;
	put16(ip + 4, 20);
	ip[6] = 6;
	ip[7] = 64;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x80", 16);
	uint8_t *t = ip + 40;
	memset(t, 0, 20);
	put16(t, sport);
	put16(t + 2, 80);
	put32(t + 4, seq);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 64240);
	uint32_t len = 74;
	ts_us += 3;
	uint32_t hdr[4] = {(uint32_t)(ts_us / 1000000), (uint32_t)(ts_us % 1000000), len, len};
	memcpy(pkt, hdr, 16);
	fwrite(pkt, 1, 16 + len, out);
	written += 16 + len;
}

/* MurmurHash3's fmix64 and its inverse (odd multipliers are invertible mod 2^64). */
static uint64_t fmix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t inv_mul(uint64_t a)
{
	uint64_t x = a; /* Newton's iteration: x = x (2 - a x), doubling the correct bits */
	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t unfmix(uint64_t h)
{
	h ^= h >> 33;
	h *= inv_mul(0xc4ceb9fe1a85ec53ULL);
	h ^= h >> 33;
	h *= inv_mul(0xff51afd7ed558ccdULL);
	h ^= h >> 33;
	return h;
}

static void put64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* N SYNs from IPv6 sources: ordinary ones, or all with one old-hash value. */
static void syn6(uint32_t n, int collide)
{
	const uint16_t sport = 40000;
	const uint64_t target = 0x5eed5eed5eed5eedULL; /* any value */
	for (uint32_t i = 0; i < n; i++) {
		uint8_t src[16];
		uint64_t b = 0x0100000000000000ULL | i; /* interface identifier, varying */
		uint64_t a = 0xb80d0120u;		/* 2001:db8::/32 as loaded little-endian */
		if (collide)				/* fmix(a ^ fmix(b ^ port)) == target */
			a = unfmix(target) ^ fmix(b ^ ((uint64_t)sport << 1 | 1));
		put64le(src, a);
		put64le(src + 8, b);
		emit6(src, sport, 0x02, 1000 + i);
	}
}

/* One POST whose n-byte body comes one byte per segment, in order or with
 * byte 0 last (every other byte waits behind the hole). */
static void ooo(uint32_t n, int in_order)
{
	char hdr[160], resp[128];
	int h = snprintf(hdr, sizeof(hdr),
			 "POST /upload HTTP/1.1\r\nHost: api.example.test\r\n"
			 "Content-Length: %u\r\n\r\n",
			 n);
	int r = snprintf(resp, sizeof(resp), "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	const uint32_t c0 = 1000, s0 = 5000;
	uint32_t body = c0 + 1 + (uint32_t)h;
	emit(0, 1, 0x02, c0, 0, "", 0);
	emit(0, 0, 0x12, s0, c0 + 1, "", 0);
	emit(0, 1, 0x10, c0 + 1, s0 + 1, "", 0);
	emit(0, 1, 0x18, c0 + 1, s0 + 1, hdr, (size_t)h);
	for (uint32_t i = in_order ? 0 : 1; i < n; i++)
		emit(0, 1, 0x10, body + i, s0 + 1, &"abcdefghijklmnopqrstuvwxyz"[i % 26], 1);
	if (!in_order)
		emit(0, 1, 0x18, body, s0 + 1, "a", 1);
	uint32_t ce = body + n;
	emit(0, 0, 0x18, s0 + 1, ce, resp, (size_t)r);
	uint32_t se = s0 + 1 + (uint32_t)r;
	emit(0, 1, 0x11, ce, se, "", 0);
	emit(0, 0, 0x11, se, ce + 1, "", 0);
	emit(0, 1, 0x10, ce + 1, se + 1, "", 0);
}

/* The request of flow i into @p buf; its length. */
static size_t request(char *buf, size_t cap, uint32_t i)
{
	int k = snprintf(buf, cap,
			 "GET /api/v1/users/%u/profile HTTP/1.1\r\n"
			 "Host: api.example.test\r\n"
			 "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/119.0\r\n"
			 "Accept: application/json\r\n"
			 "Accept-Encoding: gzip, deflate, br\r\n"
			 "Cookie: sid=%08x%08x; cart=%u\r\n"
			 "x-request-id: %016" PRIx64 "\r\n"
			 "x-lane: %s\r\n\r\n",
			 i, i * 2654435761u, ~i, i % 977, (uint64_t)(i * 0x9e3779b97f4a7c15ULL),
			 i % 8 ? "base" : "blue");
	return k > 0 ? (size_t)k : 0;
}

/* The pending and idle shapes (see the top of the file). */
static void gen_http(uint32_t n, int idle)
{
	char req[512], resp[256], body[96];
	const uint32_t c0 = 1000, s0 = 5000; /* initial sequence numbers */
	for (int phase = 1; phase <= 2; phase++) {
		for (uint32_t i = 0; i < n; i++) {
			size_t q = request(req, sizeof(req), i);
			int b =
			    snprintf(body, sizeof(body),
				     "{\"id\":%u,\"name\":\"user%u\",\"tier\":%u}", i, i, i % 3);
			int k = snprintf(resp, sizeof(resp),
					 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					 "Content-Length: %d\r\n\r\n%s",
					 b, body);
			uint32_t ce = c0 + 1 + (uint32_t)q, se = s0 + 1 + (uint32_t)k;
			if (phase == 1) {
				emit(i, 1, 0x02, c0, 0, "", 0);
				emit(i, 0, 0x12, s0, c0 + 1, "", 0);
				emit(i, 1, 0x10, c0 + 1, s0 + 1, "", 0);
				emit(i, 1, 0x18, c0 + 1, s0 + 1, req, q);
			}
			if (phase == 1 + !idle)
				emit(i, 0, 0x18, s0 + 1, ce, resp, (size_t)k);
			if (phase == 2) {
				emit(i, 1, 0x11, ce, se, "", 0);
				emit(i, 0, 0x11, se, ce + 1, "", 0);
				emit(i, 1, 0x10, ce + 1, se + 1, "", 0);
			}
		}
	}
}

int main(int argc, char **argv)
{
	static const char *const shapes[] = {"pending", "idle", "syn",	  "syn6",
					     "collide", "ooo",	"inorder"};
	const char *shape = argc == 4 ? argv[3] : "pending";
	int known = 0;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		known |= !strcmp(shape, shapes[i]);
	if (argc < 3 || argc > 4 || !known) {
		fprintf(stderr, "usage: gen_flows_pcap OUT.pcap|- N "
				"[pending|idle|syn|syn6|collide|ooo|inorder]\n");
		return 2;
	}
	int idle = !strcmp(shape, "idle");
	uint32_t n = (uint32_t)strtoul(argv[2], NULL, 10);
	out = strcmp(argv[1], "-") ? fopen(argv[1], "wb") : stdout;
	if (!out || !n) {
		fprintf(stderr, "gen_flows_pcap: cannot create %s or N is 0\n", argv[1]);
		return 1;
	}
	uint32_t gh[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
	fwrite(gh, 1, 24, out);
	if (!strcmp(shape, "syn")) {
		for (uint32_t i = 0; i < n; i++)
			emit(i, 1, 0x02, 1000 + i, 0, "", 0);
	} else if (!strcmp(shape, "syn6") || !strcmp(shape, "collide")) {
		syn6(n, !strcmp(shape, "collide"));
	} else if (!strcmp(shape, "ooo") || !strcmp(shape, "inorder")) {
		ooo(n, !strcmp(shape, "inorder"));
	} else {
		gen_http(n, idle);
	}
	if (fclose(out) != 0) {
		fprintf(stderr, "gen_flows_pcap: write error\n");
		return 1;
	}
	fprintf(stderr, "gen_flows_pcap: %" PRIu64 " bytes, %s x %u\n", written, shape, n);
	return 0;
}
