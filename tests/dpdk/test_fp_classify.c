/* SPDX-License-Identifier: MIT */
/*
 * test_fp_classify - unit tests of the fast path's classification pieces
 * (dpdk/fp_private.h, dpdk/fp_rules.c) without EAL: the inline L2-L4 parser
 * on hand-built frames (802.1Q, QinQ, IPv6 extension headers, fragments,
 * truncation), the direction-independent flow key, the rule grammar and its
 * errors, L3/L4 decisions with "decide later" for HTTP rules, and the
 * bounded request scanner.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "dpdk/fp_private.h"
#include "tests/tap.h"

static size_t eth(uint8_t *f, const uint16_t *tags, int ntags, uint16_t et)
{
	size_t o = 12;
	memset(f, 0x02, 12);
	for (int i = 0; i < ntags; i++) {
		f[o] = (uint8_t)(tags[2 * i] >> 8);
		f[o + 1] = (uint8_t)tags[2 * i];
		f[o + 2] = (uint8_t)(tags[2 * i + 1] >> 8);
		f[o + 3] = (uint8_t)tags[2 * i + 1];
		o += 4;
	}
	f[o] = (uint8_t)(et >> 8);
	f[o + 1] = (uint8_t)et;
	return o + 2;
}

static size_t tcp(uint8_t *p, uint16_t sp, uint16_t dp, uint8_t flags, const char *payload)
{
	size_t n = strlen(payload);
	memset(p, 0, 20);
	p[0] = (uint8_t)(sp >> 8);
	p[1] = (uint8_t)sp;
	p[2] = (uint8_t)(dp >> 8);
	p[3] = (uint8_t)dp;
	p[4] = 0x12; /* seq 0x12345678 */
	p[5] = 0x34;
	p[6] = 0x56;
	p[7] = 0x78;
	p[12] = 5 << 4;
	p[13] = flags;
	memcpy(p + 20, payload, n);
	return 20 + n;
}

static size_t ipv4_tcp(uint8_t *f, size_t o, const uint8_t src[4], const uint8_t dst[4],
		       uint16_t sp, uint16_t dp, const char *payload, uint16_t frag)
{
	size_t l4 = tcp(f + o + 20, sp, dp, FP_TCP_ACK, payload);
	memset(f + o, 0, 20);
	f[o] = 0x45;
	f[o + 2] = (uint8_t)((20 + l4) >> 8);
	f[o + 3] = (uint8_t)(20 + l4);
	f[o + 6] = (uint8_t)(frag >> 8);
	f[o + 7] = (uint8_t)frag;
	f[o + 8] = 64;
	f[o + 9] = 6;
	memcpy(f + o + 12, src, 4);
	memcpy(f + o + 16, dst, 4);
	return o + 20 + l4;
}

static void test_parse(void)
{
	static const uint8_t a[4] = {10, 0, 0, 2}, b[4] = {10, 1, 0, 1};
	uint8_t f[512], g[512];
	struct fp_pkt pk, pk2;
	uint16_t tags[4] = {0x8100, 0x2007, 0x8100, 0x0009};
	size_t n;

	n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), a, b, 40000, 80, "GET / HTTP/1.1\r\n", 0);
	memset(f + n, 0, 6); /* Ethernet padding is not payload */
	TAP_OK(fp_parse(f, (uint32_t)n + 6, &pk) == 0, "ipv4/tcp parses");
	TAP_EQ_U64(pk.sport, 40000, "source port");
	TAP_EQ_U64(pk.dport, 80, "destination port");
	TAP_EQ_U64(pk.payload_len, 16, "payload length from the IP total length, not the frame");
	TAP_EQ_U64(pk.seq, 0x12345678, "tcp sequence number");
	TAP_OK(pk.src[10] == 0xff && pk.src[11] == 0xff && !memcmp(pk.src + 12, a, 4),
	       "ipv4 address stored ipv4-mapped");

	/* The reply direction gives the same key and the other dir. */
	n = ipv4_tcp(g, eth(g, NULL, 0, 0x0800), b, a, 80, 40000, "", 0);
	TAP_OK(fp_parse(g, (uint32_t)n, &pk2) == 0, "reply parses");
	TAP_OK(!memcmp(&pk.key, &pk2.key, sizeof(pk.key)), "both directions share one flow key");
	TAP_EQ_U64(pk.sig, rte_hash_crc(&pk.key, sizeof(pk.key), 0),
		   "the signature is rte_hash_crc() of the key");
	TAP_EQ_U64(pk.sig, pk2.sig, "and is the same both ways");
	TAP_OK(pk.dir != pk2.dir, "and have opposite directions");

	n = ipv4_tcp(f, eth(f, tags, 2, 0x0800), a, b, 1234, 443, "x", 0);
	TAP_OK(fp_parse(f, (uint32_t)n, &pk) == 0, "QinQ frame parses");
	TAP_EQ_U64(pk.vlan, 7, "outer VLAN id kept (PCP bits dropped)");
	TAP_EQ_U64(pk.key.vlan, 7, "VLAN id is part of the key");

	n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), a, b, 1, 2, "", 0x0010);
	TAP_OK(fp_parse(f, (uint32_t)n, &pk) != 0, "non-first IPv4 fragment has no L4");
	n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), a, b, 1, 2, "", 0x2000);
	TAP_OK(fp_parse(f, (uint32_t)n, &pk) == 0, "first fragment (MF set) still parses");
	for (size_t cut = 0; cut < 14 + 20 + 20; cut++)
		if (fp_parse(f, (uint32_t)cut, &pk) == 0) {
			TAP_OK(0, "truncated frame of %zu bytes rejected", cut);
			break;
		}
	TAP_OK(1, "every truncation before the end of the TCP header is rejected");

	/* IPv6 with hop-by-hop and destination options before UDP. */
	memset(f, 0, sizeof(f));
	n = eth(f, NULL, 0, 0x86dd);
	f[n] = 0x60;
	f[n + 5] = 16 + 8 + 4; /* payload length */
	f[n + 6] = 0;	       /* hop-by-hop */
	f[n + 8 + 15] = 1;
	f[n + 24 + 15] = 2;
	f[n + 40] = 60; /* next: destination options */
	f[n + 48] = 17; /* next: UDP */
	f[n + 56] = 0x13;
	f[n + 57] = 0x88; /* 5000 */
	f[n + 59] = 53;
	f[n + 61] = 12;
	TAP_OK(fp_parse(f, (uint32_t)(n + 40 + 16 + 12), &pk) == 0,
	       "ipv6 + two ext headers parses");
	TAP_EQ_U64(pk.proto, 17, "udp found after extension headers");
	TAP_EQ_U64(pk.sport, 5000, "udp source port");
	TAP_EQ_U64(pk.payload_len, 4, "udp payload length");
	f[n + 48] = 44; /* fragment header, offset 8 */
	f[n + 56] = 17;
	f[n + 58] = 0;
	f[n + 59] = 8 << 3;
	TAP_OK(fp_parse(f, (uint32_t)(n + 40 + 24 + 8), &pk) != 0, "ipv6 non-first fragment");

	n = eth(f, NULL, 0, 0x0806);
	TAP_OK(fp_parse(f, 60, &pk) != 0, "ARP is not parsed");
}

static void test_rules(void)
{
	struct fp_rules rs;
	char err[256];
	memset(&rs, 0, sizeof(rs));

	TAP_OK(fp_rules_add(&rs, "blue=header:x-lane=blue", err, sizeof(err)) == 0,
	       "header rule parses");
	TAP_OK(fp_rules_add(&rs, "canary=cookie:lane=canary,path:/api/*", err, sizeof(err)) == 0,
	       "cookie + path rule parses");
	TAP_OK(fp_rules_add(&rs, "beta=sample:header:x-user-id:5%", err, sizeof(err)) == 0,
	       "sample rule parses");
	TAP_OK(fp_rules_add(&rs, "corp=src:192.168.7.0/24", err, sizeof(err)) == 0,
	       "src CIDR rule parses");
	TAP_OK(fp_rules_add(&rs, "v6=dst:2001:db8::/32,dport:443", err, sizeof(err)) == 0,
	       "ipv6 CIDR + dport rule parses");
	TAP_OK(fp_rules_add(&rs, "blue=vlan:42", err, sizeof(err)) == 0, "a lane may repeat");
	TAP_EQ_U64(rs.nlanes, 5, "lanes are distinct names");
	TAP_OK(fp_rules_add(&rs, "bad=src:10.0.0.0/33", err, sizeof(err)) == -EINVAL &&
		   strstr(err, "src:10.0.0.0/33"),
	       "bad prefix length named in the error");
	TAP_OK(fp_rules_add(&rs, "bad=sample:header:x:101%", err, sizeof(err)) == -EINVAL,
	       "sample over 100%% refused");
	TAP_OK(fp_rules_add(&rs, "nolane", err, sizeof(err)) == -EINVAL, "rule without '='");
	TAP_OK(fp_rules_add(&rs, "x=port:", err, sizeof(err)) == -EINVAL, "empty argument");

	/* L3/L4 decisions. */
	static const uint8_t c7[4] = {192, 168, 7, 9}, s[4] = {10, 1, 0, 1};
	uint8_t f[256];
	struct fp_pkt pk;
	size_t n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), c7, s, 40000, 80, "", 0);
	fp_parse(f, (uint32_t)n, &pk);
	TAP_EQ_U64(fp_rules_decide_l4(&rs, &pk, pk.dir), (uint64_t)(int64_t)FP_DECIDE_LATER,
		   "an HTTP rule before the CIDR rule makes the flow wait for its request");
	n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), s, c7, 80, 40000, "", 0);
	fp_parse(f, (uint32_t)n, &pk);

	struct fp_rules l4;
	memset(&l4, 0, sizeof(l4));
	fp_rules_add(&l4, "corp=src:192.168.7.0/24", err, sizeof(err));
	fp_rules_add(&l4, "web=dport:80", err, sizeof(err));
	TAP_EQ_U64(fp_rules_decide_l4(&l4, &pk, !pk.dir), 1,
		   "src means the client even on a server packet");
	TAP_EQ_U64(fp_rules_decide_l4(&l4, &pk, 2), 1,
		   "unknown client: the higher port is taken as the client");
	TAP_EQ_U64(fp_rules_decide_l4(&l4, &pk, pk.dir), FP_LANE_NONE,
		   "taken the other way round, neither src nor dport:80 match");
	fp_rules_release(&l4);

	/* HTTP decisions. */
	const char *req = "GET /api/cart?x=1 HTTP/1.1\r\nHost: Shop\r\nCookie: a=b; lane=canary\r\n"
			  "x-user-id: u1\r\n\r\n";
	struct fp_req rq;
	TAP_EQ_U64(fp_http_scan(req, strlen(req), &rq), 1, "complete request scanned");
	TAP_EQ_U64(rq.nh, 3, "three headers");
	TAP_OK(rq.path.n == 9 && !memcmp(rq.path.p, "/api/cart", 9), "path without the query");
	n = ipv4_tcp(f, eth(f, NULL, 0, 0x0800), s, s, 40000, 80, "", 0);
	fp_parse(f, (uint32_t)n, &pk);
	TAP_EQ_U64(fp_rules_decide_http(&rs, &pk, &rq), 2, "cookie + path glob give canary");
	for (size_t cut = 1; cut < strlen(req); cut++) {
		int r = fp_http_scan(req, cut, &rq);
		if (r != 0) {
			TAP_OK(0, "prefix of %zu bytes: need more (got %d)", cut, r);
			break;
		}
	}
	TAP_OK(1, "every proper prefix of the request asks for more bytes");
	TAP_OK(fp_http_scan("\x16\x03\x01\x02", 4, &rq) == -EBADMSG, "TLS is not HTTP");
	TAP_OK(fp_http_scan("GET / HTTP/1.1\r\nbad header\r\n\r\n", 30, &rq) == -EBADMSG,
	       "header without colon is an error");

	/* Sampling is a pure function of the key: about 5% of 10000 users. */
	unsigned hits = 0;
	for (int u = 0; u < 10000; u++) {
		char buf[128];
		int len =
		    snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nx-user-id: user%d\r\n\r\n", u);
		fp_http_scan(buf, (size_t)len, &rq);
		hits += fp_rules_decide_http(&rs, &pk, &rq) == 3;
	}
	TAP_OK(hits > 400 && hits < 600, "sample:...:5%% keeps about 5%% of users (%u)", hits);
	fp_rules_release(&rs);
}

int main(void)
{
	test_parse();
	test_rules();
	return tap_done();
}
