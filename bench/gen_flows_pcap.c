/* SPDX-License-Identifier: MIT */
/*
 * gen_flows_pcap - write a capture in which N HTTP connections are all open
 * at the same time, for the flow-memory benchmark (bench/flows.sh).
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
 * Usage: gen_flows_pcap OUT.pcap N [pending|idle]
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

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4 ||
	    (argc == 4 && strcmp(argv[3], "pending") && strcmp(argv[3], "idle"))) {
		fprintf(stderr, "usage: gen_flows_pcap OUT.pcap N [pending|idle]\n");
		return 2;
	}
	int idle = argc == 4 && !strcmp(argv[3], "idle");
	uint32_t n = (uint32_t)strtoul(argv[2], NULL, 10);
	out = fopen(argv[1], "wb");
	if (!out || !n) {
		fprintf(stderr, "gen_flows_pcap: cannot create %s or N is 0\n", argv[1]);
		return 1;
	}
	uint32_t gh[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
	fwrite(gh, 1, 24, out);
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
	if (fclose(out) != 0) {
		fprintf(stderr, "gen_flows_pcap: write error\n");
		return 1;
	}
	fprintf(stderr, "gen_flows_pcap: %" PRIu64 " bytes, %u connections\n", written, n);
	return 0;
}
