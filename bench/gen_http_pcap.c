/* SPDX-License-Identifier: MIT */
/*
 * gen_http_pcap - write a large, realistic HTTP/1.1 capture for the
 * capture benchmark (bench/capture.sh).
 *
 * Many keep-alive connections run interleaved (a few hundred open at a
 * time, thousands in all), each with a handshake, 1-40 transactions and a
 * FIN close. Requests carry browser/API-like headers (cookies, user agent,
 * accept, trace ids; the same client identity on every request of a
 * connection; one client in eight sends an x-lane header) and a JSON body on
 * POST; responses carry JSON bodies (items of a product catalog, as list
 * APIs return) from a few hundred bytes to ~120 KiB,
 * sent in 1448-byte segments with delayed ACKs, as on an Ethernet link.
 * TCP/IP checksums are left zero (nothing on the read side checks them).
 *
 * Usage: gen_http_pcap OUT.pcap SIZE_MB [SEED [PACE]]
 * PACE (default 1) multiplies the 1-20 us between packets: 50 spreads
 * 8 MB over ~6 s instead of ~0.12 s (bench/mirror.sh's --realtime delay).
 * Format: pcap-savefile(5), microsecond timestamps, LINKTYPE_ETHERNET.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSS	   1448
#define OPEN_CONNS 256

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint32_t rnd_n(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

struct conn {
	uint32_t caddr, saddr;
	uint16_t cport, sport;
	uint32_t cseq, sseq;
	int left;  /* transactions left */
	int state; /* 0 new, 1 open */
	/* one client behind each connection: the same identity on every request */
	uint64_t sid;
	uint32_t user, cart, ga1, ga2, ua;
	int lane;
};

static FILE *out;
static uint64_t written, ts_us = 1700000000ULL * 1000000ULL, pace = 1;
static uint8_t pkt[65536 + 128];

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

static void emit(struct conn *c, int from_client, uint8_t flags, const uint8_t *data, size_t n)
{
	uint8_t *p = pkt + 16;
	memcpy(p, "\x00\x16\x3e\x11\x22\x33\x00\x16\x3e\x44\x55\x66\x08\x00", 14);
	uint8_t *ip = p + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(40 + n));
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, from_client ? c->caddr : c->saddr);
	put32(ip + 16, from_client ? c->saddr : c->caddr);
	uint8_t *t = ip + 20;
	memset(t, 0, 20);
	put16(t, from_client ? c->cport : c->sport);
	put16(t + 2, from_client ? c->sport : c->cport);
	put32(t + 4, from_client ? c->cseq : c->sseq);
	put32(t + 8, (flags & 0x10) ? (from_client ? c->sseq : c->cseq) : 0);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 502);
	if (n)
		memcpy(t + 20, data, n);
	uint32_t len = (uint32_t)(54 + n);
	ts_us += pace * (1 + rnd_n(20));
	uint32_t hdr[4] = {(uint32_t)(ts_us / 1000000), (uint32_t)(ts_us % 1000000), len, len};
	memcpy(pkt, hdr, 16);
	fwrite(pkt, 1, 16 + len, out);
	written += 16 + len;
	if (from_client)
		c->cseq += (uint32_t)n + ((flags & 0x03) ? 1 : 0);
	else
		c->sseq += (uint32_t)n + ((flags & 0x03) ? 1 : 0);
}

static void send_stream(struct conn *c, int from_client, const uint8_t *d, size_t n)
{
	int segs = 0;
	for (size_t off = 0; off < n; off += MSS) {
		size_t k = n - off < MSS ? n - off : MSS;
		emit(c, from_client, 0x18, d + off, k);
		if (++segs % 2 == 0)
			emit(c, !from_client, 0x10, NULL, 0); /* delayed ACK */
	}
	if (segs % 2)
		emit(c, !from_client, 0x10, NULL, 0);
}

static const char *paths[] = {"/api/v1/users/%u",
			      "/api/v1/orders/%u/items",
			      "/api/v2/search?q=item%u&page=2",
			      "/static/app.%u.js",
			      "/api/v1/cart/%u",
			      "/graphql?op=Feed%u",
			      "/api/v1/products/%u/reviews",
			      "/health"};
static const char *uas[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 "
    "Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0", "python-requests/2.31.0", "curl/8.4.0"};
static const char *words[] = {"alpha", "delta",	  "shipped", "pending",	 "blue",     "standard",
			      "green", "express", "refund",  "active",	 "inactive", "premium",
			      "basic", "euro",	  "dollar",  "warehouse"};

/* A product catalog: API responses list items of it, as real ones do. */
#define CATALOG 4096
static struct {
	unsigned id, sku, price;
	const char *w1, *w2, *status;
} catalog[CATALOG];

static void catalog_init(void)
{
	for (int i = 0; i < CATALOG; i++) {
		catalog[i].id = 100000 + rnd_n(900000);
		catalog[i].sku = rnd_n(100000);
		catalog[i].price = rnd_n(50000);
		catalog[i].w1 = words[rnd_n(16)];
		catalog[i].w2 = words[rnd_n(16)];
		catalog[i].status = words[rnd_n(16)];
	}
}

/* A JSON body of about @p n bytes. */
static size_t json_body(char *b, size_t cap, size_t n)
{
	size_t o = (size_t)snprintf(b, cap, "{\"items\":[");
	unsigned i = 0;
	unsigned first = rnd_n(CATALOG);
	while (o + 200 < cap && o < n) {
		unsigned k = (first + i * 7) % CATALOG;
		o += (size_t)snprintf(b + o, cap - o,
				      "%s{\"id\":%u,\"sku\":\"SKU-%05u\",\"name\":\"%s %s\","
				      "\"price\":%u.%02u,\"qty\":%u,\"status\":\"%s\","
				      "\"updated\":\"2023-11-%02uT%02u:%02u:%02uZ\"}",
				      i ? "," : "", catalog[k].id, catalog[k].sku, catalog[k].w1,
				      catalog[k].w2, catalog[k].price / 100, catalog[k].price % 100,
				      1 + rnd_n(9), catalog[k].status, 1 + rnd_n(28), rnd_n(24),
				      rnd_n(60), rnd_n(60));
		i++;
	}
	o += (size_t)snprintf(b + o, cap - o, "],\"count\":%u}", i);
	return o;
}

static size_t body_size(void)
{
	uint32_t r = rnd_n(100);
	if (r < 50)
		return 200 + rnd_n(1800);
	if (r < 85)
		return 2000 + rnd_n(14000);
	if (r < 97)
		return 16000 + rnd_n(48000);
	return 64000 + rnd_n(60000);
}

static char reqbuf[8192], respbuf[131072], bodybuf[131072];

static void transaction(struct conn *c)
{
	char path[128];
	unsigned id = rnd_n(1000000);
	snprintf(path, sizeof(path), paths[rnd_n(8)], id);
	int post = rnd_n(5) == 0;
	size_t blen = post ? json_body(bodybuf, sizeof(bodybuf), 100 + rnd_n(900)) : 0;
	size_t n = (size_t)snprintf(
	    reqbuf, sizeof(reqbuf),
	    "%s %s HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: %s\r\n"
	    "Accept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.9\r\n"
	    "Accept-Encoding: gzip, deflate, br\r\nCookie: sid=%016" PRIx64
	    "; cart=%u; theme=dark; _ga=GA1.2.%u.%u\r\n"
	    "X-Request-Id: %08x-%04x-%04x-%04x-%012" PRIx64 "\r\nX-User-Id: %u\r\n%s"
	    "Connection: keep-alive\r\n",
	    post ? "POST" : "GET", path, uas[c->ua], c->sid, c->cart, c->ga1, c->ga2,
	    (unsigned)rnd(), rnd_n(65536), rnd_n(65536), rnd_n(65536),
	    (uint64_t)(rnd() & 0xffffffffffffULL), c->user, c->lane ? "X-Lane: blue\r\n" : "");
	if (post)
		n += (size_t)snprintf(reqbuf + n, sizeof(reqbuf) - n,
				      "Content-Type: application/json\r\nContent-Length: %zu\r\n",
				      blen);
	n += (size_t)snprintf(reqbuf + n, sizeof(reqbuf) - n, "\r\n");
	if (post && n + blen < sizeof(reqbuf)) {
		memcpy(reqbuf + n, bodybuf, blen);
		n += blen;
	}
	send_stream(c, 1, (const uint8_t *)reqbuf, n);

	size_t rb = json_body(bodybuf, sizeof(bodybuf) - 1024, body_size());
	size_t m = (size_t)snprintf(
	    respbuf, sizeof(respbuf),
	    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 Nov 2023 22:13:%02u GMT\r\n"
	    "Content-Type: application/json; charset=utf-8\r\nContent-Length: %zu\r\n"
	    "Connection: keep-alive\r\nCache-Control: no-store\r\nX-Request-Id: %08x\r\n"
	    "Strict-Transport-Security: max-age=31536000\r\nVary: Accept-Encoding\r\n\r\n",
	    rnd_n(60), rb, (unsigned)rnd());
	memcpy(respbuf + m, bodybuf, rb);
	send_stream(c, 0, (const uint8_t *)respbuf, m + rb);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: gen_http_pcap OUT.pcap SIZE_MB [SEED [PACE]]\n");
		return 2;
	}
	uint64_t target = strtoull(argv[2], NULL, 10) << 20;
	if (argc > 3)
		rng_state ^= strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ULL;
	if (argc > 4 && (pace = strtoull(argv[4], NULL, 10)) == 0)
		pace = 1;
	out = fopen(argv[1], "wb");
	if (!out) {
		perror(argv[1]);
		return 1;
	}
	static char iobuf[1 << 20];
	setvbuf(out, iobuf, _IOFBF, sizeof(iobuf));
	uint32_t ghdr[6] = {0xa1b2c3d4, 2 | (4u << 16), 0, 0, 262144, 1};
	fwrite(ghdr, 1, 24, out);
	catalog_init();
	static struct conn conns[OPEN_CONNS];
	uint32_t next_port = 0;
	uint64_t n_conns = 0;
	while (written < target) {
		struct conn *c = &conns[rnd_n(OPEN_CONNS)];
		if (c->state == 0) {
			c->caddr =
			    0x0a000000u | (next_port % 250 + 1) << 8 | (next_port / 250) % 250;
			c->saddr = 0x0a640001u + rnd_n(4);
			c->cport = (uint16_t)(20000 + (next_port++ % 40000));
			c->sport = rnd_n(4) ? 80 : 8080;
			c->cseq = (uint32_t)rnd();
			c->sseq = (uint32_t)rnd();
			c->left = 1 + (int)rnd_n(40);
			c->sid = rnd();
			c->user = rnd_n(5000000);
			c->cart = rnd_n(99999);
			c->ga1 = rnd_n(1u << 30);
			c->ga2 = rnd_n(1u << 30);
			c->ua = rnd_n(5);
			c->lane = rnd_n(8) == 0;
			emit(c, 1, 0x02, NULL, 0);
			emit(c, 0, 0x12, NULL, 0);
			emit(c, 1, 0x10, NULL, 0);
			c->state = 1;
			n_conns++;
		}
		transaction(c);
		if (--c->left == 0) {
			emit(c, 1, 0x11, NULL, 0);
			emit(c, 0, 0x11, NULL, 0);
			emit(c, 1, 0x10, NULL, 0);
			c->state = 0;
		}
	}
	for (int i = 0; i < OPEN_CONNS; i++)
		if (conns[i].state) {
			emit(&conns[i], 1, 0x11, NULL, 0);
			emit(&conns[i], 0, 0x11, NULL, 0);
			emit(&conns[i], 1, 0x10, NULL, 0);
		}
	if (fclose(out) != 0) {
		perror(argv[1]);
		return 1;
	}
	fprintf(stderr, "gen_http_pcap: %" PRIu64 " bytes, %" PRIu64 " connections\n", written,
		n_conns);
	return 0;
}
