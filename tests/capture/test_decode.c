/* SPDX-License-Identifier: MIT */
/*
 * test_decode - packets built byte by byte for every link type and the
 * IPv4/IPv6 cases: tags, cooked headers, extension headers, fragments,
 * non-TCP, padding, snap-length truncation and malformed headers.
 */
#include <string.h>

#include "capture/decode.h"
#include "tests/tap.h"

static size_t put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

/* TCP header (20 bytes) + payload at p; returns length. */
static size_t tcp(uint8_t *p, const char *payload)
{
	memset(p, 0, 20);
	put16(p, 40000);
	put16(p + 2, 80);
	p[4] = 0x12, p[5] = 0x34, p[6] = 0x56, p[7] = 0x78; /* seq */
	p[8] = 0, p[9] = 0, p[10] = 0, p[11] = 9;	    /* ack */
	p[12] = 5 << 4;
	p[13] = DECODE_TH_ACK | DECODE_TH_PSH;
	put16(p + 14, 512);
	size_t n = strlen(payload);
	memcpy(p + 20, payload, n);
	return 20 + n;
}

static size_t ipv4(uint8_t *p, uint8_t proto, uint16_t frag, const char *payload)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	p[8] = 64;
	p[9] = proto;
	put16(p + 6, frag);
	uint8_t s[4] = {192, 168, 1, 10}, d[4] = {192, 168, 1, 20};
	memcpy(p + 12, s, 4);
	memcpy(p + 16, d, 4);
	size_t n = tcp(p + 20, payload);
	put16(p + 2, (uint16_t)(20 + n));
	return 20 + n;
}

/* IPv6 with the given chain of extension headers (8 bytes each). */
static size_t ipv6(uint8_t *p, const uint8_t *ext, int n_ext, const char *payload)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = n_ext ? ext[0] : 6;
	p[7] = 64;
	p[8] = 0x20, p[9] = 0x01, p[23] = 1;
	p[24] = 0x20, p[25] = 0x01, p[39] = 2;
	size_t off = 40;
	for (int i = 0; i < n_ext; i++) {
		memset(p + off, 0, 8);
		p[off] = i + 1 < n_ext ? ext[i + 1] : 6;
		off += 8;
	}
	size_t n = tcp(p + off, payload);
	put16(p + 4, (uint16_t)(off - 40 + n));
	return off + n;
}

static struct decode_stats st;
static struct decode_pkt out;

static enum decode_result dec(int lt, const uint8_t *p, size_t n)
{
	memset(&out, 0xaa, sizeof(out));
	return decode_packet(lt, p, n, &out, &st);
}

static int payload_is(const char *s)
{
	return out.payload_len == strlen(s) && !memcmp(out.payload, s, out.payload_len);
}

int main(void)
{
	uint8_t b[2048];
	size_t n;

	/* Ethernet + IPv4, with padding to 60 bytes that must not count. */
	memset(b, 0, sizeof(b));
	put16(b + 12, 0x0800);
	n = 14 + ipv4(b + 14, 6, 0, "hi");
	TAP_OK(dec(DECODE_LINK_ETH, b, 60) == DECODE_TCP, "ethernet ipv4 tcp");
	TAP_OK(payload_is("hi"), "payload trimmed to the IP length");
	TAP_EQ_U64(out.ip_version, 4, "ipv4");
	TAP_EQ_U64(out.src[0], 192, "src address");
	TAP_EQ_U64(out.src[4], 0, "ipv4 address zero-padded");
	TAP_EQ_U64(out.sport, 40000, "sport");
	TAP_EQ_U64(out.dport, 80, "dport");
	TAP_EQ_U64(out.seq, 0x12345678, "seq");
	TAP_EQ_U64(out.ack, 9, "ack");
	TAP_EQ_U64(out.vlan, 0, "untagged");
	TAP_EQ_U64(out.tcp_flags, DECODE_TH_ACK | DECODE_TH_PSH, "flags");

	/* Snap length cut the payload. */
	TAP_OK(dec(DECODE_LINK_ETH, b, n - 1) == DECODE_TCP, "snap-truncated still decodes");
	TAP_EQ_U64(out.payload_len, 1, "captured part");
	TAP_EQ_U64(out.payload_wire, 2, "wire length");
	TAP_EQ_U64(st.snap_truncated, 1, "snap truncation counted");

	/* 802.1Q and QinQ. */
	memset(b, 0, sizeof(b));
	put16(b + 12, 0x88a8);
	put16(b + 14, 100);
	put16(b + 16, 0x8100);
	put16(b + 18, 200);
	put16(b + 20, 0x0800);
	n = 22 + ipv4(b + 22, 6, 0, "qinq");
	TAP_OK(dec(DECODE_LINK_ETH, b, n) == DECODE_TCP && payload_is("qinq"), "qinq");
	TAP_EQ_U64(out.vlan, 100, "outer vlan id");
	put16(b + 12, 0x8100);
	put16(b + 14, 0x2000 | 42);
	put16(b + 16, 0x0800);
	n = 18 + ipv4(b + 18, 6, 0, "vlan");
	TAP_OK(dec(DECODE_LINK_ETH, b, n) == DECODE_TCP && payload_is("vlan"), "802.1q");
	TAP_EQ_U64(out.vlan, 42, "vlan id without priority bits");

	/* Linux cooked v1 and v2. */
	memset(b, 0, sizeof(b));
	put16(b + 14, 0x0800);
	n = 16 + ipv4(b + 16, 6, 0, "sll");
	TAP_OK(dec(DECODE_LINK_SLL, b, n) == DECODE_TCP && payload_is("sll"), "sll");
	memset(b, 0, sizeof(b));
	put16(b, 0x86dd);
	n = 20 + ipv6(b + 20, NULL, 0, "sll2");
	TAP_OK(dec(DECODE_LINK_SLL2, b, n) == DECODE_TCP && payload_is("sll2"), "sll2 ipv6");
	TAP_EQ_U64(out.ip_version, 6, "ipv6");
	TAP_EQ_U64(out.dst[15], 2, "ipv6 dst");

	/* Raw IP, both DLT_RAW values, LINKTYPE_RAW, IPV4/IPV6. */
	n = ipv4(b, 6, 0, "raw");
	TAP_OK(dec(DECODE_LINK_RAW12, b, n) == DECODE_TCP && payload_is("raw"), "dlt_raw 12");
	TAP_OK(dec(DECODE_LINK_RAW14, b, n) == DECODE_TCP, "dlt_raw 14");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_TCP, "linktype_raw 101");
	TAP_OK(dec(DECODE_LINK_IPV4, b, n) == DECODE_TCP, "linktype ipv4");
	n = ipv6(b, NULL, 0, "raw6");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_TCP && payload_is("raw6"), "raw ipv6");
	TAP_OK(dec(DECODE_LINK_IPV6, b, n) == DECODE_TCP, "linktype ipv6");

	/* BSD null (host order) and loop (network order). */
	b[0] = 2, b[1] = b[2] = b[3] = 0;
	n = 4 + ipv4(b + 4, 6, 0, "null");
	TAP_OK(dec(DECODE_LINK_NULL, b, n) == DECODE_TCP && payload_is("null"), "null le");
	b[0] = b[1] = b[2] = 0, b[3] = 2;
	TAP_OK(dec(DECODE_LINK_NULL, b, n) == DECODE_TCP, "null be");
	TAP_OK(dec(DECODE_LINK_LOOP, b, n) == DECODE_TCP, "loop");
	b[3] = 30;
	n = 4 + ipv6(b + 4, NULL, 0, "mac6");
	TAP_OK(dec(DECODE_LINK_LOOP, b, n) == DECODE_TCP && payload_is("mac6"), "loop ipv6 (30)");
	b[3] = 99;
	TAP_OK(dec(DECODE_LINK_LOOP, b, n) == DECODE_SKIP, "unknown family skipped");

	/* IPv6 extension headers: hop-by-hop, routing, destination options. */
	{
		uint8_t ext[] = {0, 43, 60};
		n = ipv6(b, ext, 3, "ext");
		TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_TCP && payload_is("ext"),
		       "ipv6 extension header chain walked");
		uint8_t frag[] = {0, 44};
		n = ipv6(b, frag, 2, "frag");
		uint64_t before = st.ip_fragments;
		TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_FRAGMENT && out.ip == b &&
			   out.ip_caplen == n,
		       "ipv6 fragment handed back with its IP packet");
		TAP_EQ_U64(st.ip_fragments - before, 1, "ipv6 fragment counted");
		uint8_t loop9[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
		n = ipv6(b, loop9, 9, "x");
		uint64_t e = st.err_ip6_ext;
		TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_ERR, "too many extension headers");
		TAP_EQ_U64(st.err_ip6_ext - e, 1, "counted as ip6 ext error");
		n = ipv6(b, ext, 3, "ext");
		TAP_OK(dec(DECODE_LINK_RAW, b, 50) == DECODE_ERR, "extension header cut short");
	}

	/* IPv4 fragments, non-TCP, errors. */
	n = ipv4(b, 6, 0x2000, "mf");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_FRAGMENT && out.ip == b && out.ip_caplen == n,
	       "ipv4 first fragment handed back");
	n = ipv4(b, 6, 0x0010, "off");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_FRAGMENT, "ipv4 later fragment handed back");
	n = ipv4(b, 6, 0x4000, "df");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_TCP, "DF alone is not a fragment");
	TAP_EQ_U64(st.ip_fragments, 3, "fragments counted");
	n = ipv4(b, 17, 0, "udp");
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_SKIP, "udp skipped");
	TAP_EQ_U64(st.non_tcp, 1, "non_tcp counted");
	memset(b, 0, 64);
	put16(b + 12, 0x0806);
	TAP_OK(dec(DECODE_LINK_ETH, b, 60) == DECODE_SKIP, "arp skipped");
	TAP_EQ_U64(st.non_ip, 2, "non_ip counted");
	TAP_OK(dec(DECODE_LINK_ETH, b, 10) == DECODE_ERR, "short ethernet");
	TAP_OK(dec(DECODE_LINK_SLL2, b, 19) == DECODE_ERR, "short sll2");
	TAP_EQ_U64(st.err_link_truncated, 2, "link truncation counted");
	n = ipv4(b, 6, 0, "x");
	TAP_OK(dec(DECODE_LINK_RAW, b, 19) == DECODE_ERR, "short ipv4");
	TAP_OK(dec(DECODE_LINK_RAW, b, 30) == DECODE_ERR, "short tcp");
	TAP_EQ_U64(st.err_tcp_truncated, 1, "tcp truncation counted");
	b[0] = 0x43;
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_ERR, "ihl < 5 rejected");
	b[0] = 0x45;
	b[20 + 12] = 2 << 4;
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_ERR, "tcp data offset < 5 rejected");
	TAP_EQ_U64(st.err_tcp_header, 1, "tcp header error counted");
	b[20 + 12] = 15 << 4;
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_ERR, "tcp data offset past the packet");
	b[0] = 0x75;
	TAP_OK(dec(DECODE_LINK_RAW, b, n) == DECODE_ERR, "ip version 7 rejected");
	TAP_OK(dec(147, b, n) == DECODE_SKIP, "unknown link type skipped");
	TAP_EQ_U64(st.unknown_linktype, 1, "unknown link type counted");
	TAP_OK(!decode_linktype_supported(147) && decode_linktype_supported(276),
	       "supported link types");
	return tap_done();
}
