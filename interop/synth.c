/* SPDX-License-Identifier: MIT */
/*
 * synth - TCP/IP frames for HTTP exchanges without packets (see synth.h).
 *
 * The frames are what a capture on the wire would hold: the pipeline cannot
 * tell them from captured ones, which is the point (one code path for every
 * input). Checksums follow RFC 1071 over the pseudo-header (RFC 9293 §3.1,
 * RFC 8200 §8.1) so tshark reads the frames as well.
 */
#include "interop/synth.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

void synth_init(struct synth *s, synth_emit_fn emit, void *ctx)
{
	s->emit = emit;
	s->ctx = ctx;
}

void synth_conn_init(struct synth_conn *c, uint8_t ip_version, const struct store_endpoint *cli,
		     const struct store_endpoint *srv, uint16_t vlan, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->ip_version = ip_version == 6 ? 6 : 4;
	c->cli = *cli;
	c->srv = *srv;
	c->vlan = vlan;
	seed = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	c->seq[0] = (uint32_t)(seed >> 32);
	c->seq[1] = (uint32_t)seed ^ 0x5bd1e995u;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	for (; n > 1; p += 2, n -= 2)
		acc += (uint32_t)p[0] << 8 | p[1];
	if (n)
		acc += (uint32_t)p[0] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* One segment from @p dir with @p flags and payload @p p[0..n) (n <= SYNTH_MSS). */
static void segment(struct synth *s, struct synth_conn *c, int dir, uint8_t flags, const uint8_t *p,
		    size_t n, int64_t ts)
{
	const struct store_endpoint *from = dir ? &c->srv : &c->cli;
	const struct store_endpoint *to = dir ? &c->cli : &c->srv;
	uint8_t *f = s->frame;
	size_t off = 0;
	static const uint8_t mac_c[6] = {0x02, 0, 0, 0, 0, 1}, mac_s[6] = {0x02, 0, 0, 0, 0, 2};
	memcpy(f, dir ? mac_c : mac_s, 6);
	memcpy(f + 6, dir ? mac_s : mac_c, 6);
	off = 12;
	if (c->vlan) {
		put16(f + off, 0x8100);
		put16(f + off + 2, c->vlan & 0x0fff);
		off += 4;
	}
	put16(f + off, c->ip_version == 6 ? 0x86dd : 0x0800);
	off += 2;
	uint8_t *ip = f + off;
	size_t iplen = c->ip_version == 6 ? 40 : 20;
	uint8_t *tcp = ip + iplen;
	size_t tcplen = 20 + n;
	uint32_t acc = 0;
	if (c->ip_version == 6) {
		memset(ip, 0, 40);
		ip[0] = 0x60;
		put16(ip + 4, (uint32_t)tcplen);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, from->addr, 16);
		memcpy(ip + 24, to->addr, 16);
		acc = sum16(ip + 8, 32, 0) + (uint32_t)tcplen + 6;
	} else {
		memset(ip, 0, 20);
		ip[0] = 0x45;
		put16(ip + 2, (uint32_t)(20 + tcplen));
		put16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, from->addr, 4);
		memcpy(ip + 16, to->addr, 4);
		put16(ip + 10, fold(sum16(ip, 20, 0)));
		acc = sum16(ip + 12, 8, 0) + (uint32_t)tcplen + 6;
	}
	put16(tcp, from->port);
	put16(tcp + 2, to->port);
	put32(tcp + 4, c->seq[dir]);
	put32(tcp + 8, (flags & TCP_ACK) ? c->seq[!dir] : 0);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	put16(tcp + 16, 0);
	put16(tcp + 18, 0);
	if (n)
		memcpy(tcp + 20, p, n);
	put16(tcp + 16, fold(sum16(tcp, tcplen, acc)));
	c->seq[dir] += (uint32_t)n + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
	s->emit(s->ctx, ts, f, (uint32_t)(off + iplen + tcplen));
}

void synth_open(struct synth *s, struct synth_conn *c, int64_t ts_ns)
{
	segment(s, c, 0, TCP_SYN, NULL, 0, ts_ns);
	segment(s, c, 1, TCP_SYN | TCP_ACK, NULL, 0, ts_ns);
	segment(s, c, 0, TCP_ACK, NULL, 0, ts_ns);
}

static void chunks(struct synth *s, struct synth_conn *c, int dir, const uint8_t *p, size_t n,
		   int64_t ts)
{
	while (n) {
		size_t k = n < SYNTH_MSS ? n : SYNTH_MSS;
		segment(s, c, dir, TCP_ACK | TCP_PSH, p, k, ts);
		p += k;
		n -= k;
	}
}

void synth_data(struct synth *s, struct synth_conn *c, int dir, const uint8_t *p, size_t n,
		int64_t ts_first, int64_t ts_last)
{
	if (!n)
		return;
	if (ts_last != ts_first && n > 1) {
		chunks(s, c, dir, p, n - 1, ts_first);
		chunks(s, c, dir, p + n - 1, 1, ts_last);
	} else {
		chunks(s, c, dir, p, n, ts_first);
	}
}

void synth_close(struct synth *s, struct synth_conn *c, int64_t ts_ns)
{
	segment(s, c, 0, TCP_FIN | TCP_ACK, NULL, 0, ts_ns);
	segment(s, c, 1, TCP_FIN | TCP_ACK, NULL, 0, ts_ns);
}
