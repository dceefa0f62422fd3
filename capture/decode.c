/* SPDX-License-Identifier: MIT */
/*
 * decode - packet headers to a TCP segment view (see decode.h).
 *
 * Every length comes from the packet and is checked against the captured
 * bytes before it is used, so any input is safe (fuzzed by
 * tests/capture/fuzz_decode.c). The TCP payload length comes from the IP
 * total / payload length, which drops Ethernet padding; when the snap
 * length cut the payload, the captured part is returned and the loss is
 * counted (the reassembly then sees a hole and reports a gap).
 *
 * References: tcpdump.org/linktypes.html, LINKTYPE_LINUX_SLL and
 * LINKTYPE_LINUX_SLL2 pages, IEEE 802.1Q/802.1ad, RFC 791, RFC 8200 §4,
 * RFC 4302 (AH length), RFC 9293 §3.1.
 */
#include "capture/decode.h"

#include <string.h>

#define ETH_IPV4     0x0800
#define ETH_IPV6     0x86dd
#define ETH_VLAN     0x8100
#define ETH_QINQ     0x88a8
#define ETH_QINQ_OLD 0x9100
#define ETH_MAX_TAGS 4

#define IPPROTO_TCP_ 6
#define IP6_HOPOPTS  0
#define IP6_ROUTING  43
#define IP6_FRAGMENT 44
#define IP6_AH	     51
#define IP6_DSTOPTS  60
#define IP6_MOBILITY 135
#define IP6_MAX_EXT  8

const struct ctr_desc decode_ctr_descs[] = {
    CTR_DESC(struct decode_stats, tcp, "TCP segments decoded"),
    CTR_DESC(struct decode_stats, non_ip, "frames without IP (ARP, LLDP, ...) skipped"),
    CTR_DESC(struct decode_stats, non_tcp,
	     "IP packets of another protocol (UDP, ICMP, ...) skipped"),
    CTR_DESC(struct decode_stats, ip_fragments, "IP fragments (handed to IP reassembly)"),
    CTR_DESC(struct decode_stats, unknown_linktype, "packets of a link type not decoded"),
    CTR_DESC(struct decode_stats, err_link_truncated, "decode errors: link header cut short"),
    CTR_DESC(struct decode_stats, err_ip_truncated, "decode errors: IP header cut short"),
    CTR_DESC(struct decode_stats, err_ip_header, "decode errors: bad IP version or length"),
    CTR_DESC(struct decode_stats, err_ip6_ext, "decode errors: bad IPv6 extension header"),
    CTR_DESC(struct decode_stats, err_tcp_truncated, "decode errors: TCP header cut short"),
    CTR_DESC(struct decode_stats, err_tcp_header, "decode errors: bad TCP data offset"),
    CTR_DESC(struct decode_stats, snap_truncated,
	     "TCP segments whose payload was cut by the snap length"),
};
const size_t decode_ctr_count = sizeof(decode_ctr_descs) / sizeof(decode_ctr_descs[0]);

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static enum decode_result decode_tcp(const uint8_t *p, size_t caplen, size_t wire_len,
				     struct decode_pkt *out, struct decode_stats *st)
{
	if (caplen < 20 || wire_len < 20) {
		st->err_tcp_truncated++;
		return DECODE_ERR;
	}
	size_t hl = (size_t)(p[12] >> 4) * 4;
	if (hl < 20 || hl > wire_len) {
		st->err_tcp_header++;
		return DECODE_ERR;
	}
	if (hl > caplen) {
		st->err_tcp_truncated++;
		return DECODE_ERR;
	}
	out->sport = rd16(p);
	out->dport = rd16(p + 2);
	out->seq = rd32(p + 4);
	out->ack = rd32(p + 8);
	out->tcp_flags = p[13];
	out->window = rd16(p + 14);
	out->payload = p + hl;
	out->payload_wire = (uint32_t)(wire_len - hl);
	size_t have = caplen - hl;
	out->payload_len = have < out->payload_wire ? (uint32_t)have : out->payload_wire;
	if (out->payload_len < out->payload_wire)
		st->snap_truncated++;
	st->tcp++;
	return DECODE_TCP;
}

static enum decode_result decode_ipv4(const uint8_t *p, size_t caplen, struct decode_pkt *out,
				      struct decode_stats *st)
{
	if (caplen < 20) {
		st->err_ip_truncated++;
		return DECODE_ERR;
	}
	size_t ihl = (size_t)(p[0] & 0x0f) * 4;
	size_t total = rd16(p + 2);
	if ((p[0] >> 4) != 4 || ihl < 20 || total < ihl) {
		st->err_ip_header++;
		return DECODE_ERR;
	}
	if (ihl > caplen) {
		st->err_ip_truncated++;
		return DECODE_ERR;
	}
	uint16_t frag = rd16(p + 6);
	if (frag & 0x3fff) { /* MF set or a non-zero offset */
		st->ip_fragments++;
		out->ip = p;
		out->ip_caplen = (uint32_t)(caplen < total ? caplen : total);
		return DECODE_FRAGMENT;
	}
	if (p[9] != IPPROTO_TCP_) {
		st->non_tcp++;
		return DECODE_SKIP;
	}
	out->ip_version = 4;
	memset(out->src, 0, sizeof(out->src));
	memset(out->dst, 0, sizeof(out->dst));
	memcpy(out->src, p + 12, 4);
	memcpy(out->dst, p + 16, 4);
	size_t cap_l4 = caplen - ihl;
	/* total == 0 happens with TSO on the capturing host: trust the capture. */
	size_t wire_l4 = total ? total - ihl : cap_l4;
	return decode_tcp(p + ihl, cap_l4 < wire_l4 ? cap_l4 : wire_l4, wire_l4, out, st);
}

static enum decode_result decode_ipv6(const uint8_t *p, size_t caplen, struct decode_pkt *out,
				      struct decode_stats *st)
{
	if (caplen < 40) {
		st->err_ip_truncated++;
		return DECODE_ERR;
	}
	if ((p[0] >> 4) != 6) {
		st->err_ip_header++;
		return DECODE_ERR;
	}
	size_t plen = rd16(p + 4);
	size_t cap_rest = caplen - 40;
	/* plen == 0: jumbogram or TSO; take what was captured. */
	size_t wire_rest = plen ? plen : cap_rest;
	uint8_t nh = p[6];
	size_t off = 40;
	for (int i = 0;; i++) {
		if (nh == IPPROTO_TCP_)
			break;
		if (nh != IP6_HOPOPTS && nh != IP6_ROUTING && nh != IP6_FRAGMENT && nh != IP6_AH &&
		    nh != IP6_DSTOPTS && nh != IP6_MOBILITY) {
			st->non_tcp++; /* UDP, ICMPv6, ESP, no-next-header, ... */
			return DECODE_SKIP;
		}
		if (i == IP6_MAX_EXT || off - 40 + 8 > wire_rest || off + 8 > caplen) {
			st->err_ip6_ext++;
			return DECODE_ERR;
		}
		const uint8_t *e = p + off;
		size_t elen;
		if (nh == IP6_FRAGMENT) {
			st->ip_fragments++;
			out->ip = p;
			out->ip_caplen =
			    (uint32_t)(caplen < 40 + wire_rest ? caplen : 40 + wire_rest);
			return DECODE_FRAGMENT;
		}
		if (nh == IP6_AH)
			elen = ((size_t)e[1] + 2) * 4; /* RFC 4302 §2.2 */
		else
			elen = ((size_t)e[1] + 1) * 8;
		nh = e[0];
		off += elen;
		if (off - 40 > wire_rest || off > caplen) {
			st->err_ip6_ext++;
			return DECODE_ERR;
		}
	}
	out->ip_version = 6;
	memcpy(out->src, p + 8, 16);
	memcpy(out->dst, p + 24, 16);
	size_t cap_l4 = caplen - off;
	size_t wire_l4 = wire_rest - (off - 40);
	return decode_tcp(p + off, cap_l4 < wire_l4 ? cap_l4 : wire_l4, wire_l4, out, st);
}

static enum decode_result decode_ip(const uint8_t *p, size_t caplen, struct decode_pkt *out,
				    struct decode_stats *st)
{
	if (caplen < 1) {
		st->err_ip_truncated++;
		return DECODE_ERR;
	}
	switch (p[0] >> 4) {
	case 4:
		return decode_ipv4(p, caplen, out, st);
	case 6:
		return decode_ipv6(p, caplen, out, st);
	default:
		st->err_ip_header++;
		return DECODE_ERR;
	}
}

static enum decode_result decode_ethertype(uint16_t type, const uint8_t *p, size_t caplen,
					   struct decode_pkt *out, struct decode_stats *st)
{
	if (type == ETH_IPV4)
		return decode_ipv4(p, caplen, out, st);
	if (type == ETH_IPV6)
		return decode_ipv6(p, caplen, out, st);
	st->non_ip++;
	return DECODE_SKIP;
}

static enum decode_result decode_eth(const uint8_t *p, size_t caplen, struct decode_pkt *out,
				     struct decode_stats *st)
{
	if (caplen < 14) {
		st->err_link_truncated++;
		return DECODE_ERR;
	}
	uint16_t type = rd16(p + 12);
	size_t off = 14;
	for (int tags = 0; type == ETH_VLAN || type == ETH_QINQ || type == ETH_QINQ_OLD; tags++) {
		if (tags == ETH_MAX_TAGS || off + 4 > caplen) {
			st->err_link_truncated++;
			return DECODE_ERR;
		}
		if (tags == 0)
			out->vlan = rd16(p + off) & 0x0fff;
		type = rd16(p + off + 2);
		off += 4;
	}
	return decode_ethertype(type, p + off, caplen - off, out, st);
}

/* BSD loopback: the address family is 4 bytes, host order (NULL) or
 * network order (LOOP); the value for IPv6 differs between systems. */
static enum decode_result decode_null(const uint8_t *p, size_t caplen, int loop,
				      struct decode_pkt *out, struct decode_stats *st)
{
	if (caplen < 4) {
		st->err_link_truncated++;
		return DECODE_ERR;
	}
	uint32_t be = rd32(p);
	uint32_t le = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
	uint32_t fam = loop ? be : (be < 256 ? be : le);
	switch (fam) {
	case 2:
		return decode_ipv4(p + 4, caplen - 4, out, st);
	case 10: /* Linux */
	case 24: /* NetBSD, OpenBSD */
	case 28: /* FreeBSD */
	case 30: /* macOS */
		return decode_ipv6(p + 4, caplen - 4, out, st);
	default:
		st->non_ip++;
		return DECODE_SKIP;
	}
}

int decode_linktype_supported(int linktype)
{
	switch (linktype) {
	case DECODE_LINK_NULL:
	case DECODE_LINK_ETH:
	case DECODE_LINK_RAW12:
	case DECODE_LINK_RAW14:
	case DECODE_LINK_RAW:
	case DECODE_LINK_LOOP:
	case DECODE_LINK_SLL:
	case DECODE_LINK_IPV4:
	case DECODE_LINK_IPV6:
	case DECODE_LINK_SLL2:
		return 1;
	default:
		return 0;
	}
}

enum decode_result decode_packet(int linktype, const uint8_t *data, size_t caplen,
				 struct decode_pkt *out, struct decode_stats *st)
{
	out->vlan = 0;
	switch (linktype) {
	case DECODE_LINK_ETH:
		return decode_eth(data, caplen, out, st);
	case DECODE_LINK_RAW12:
	case DECODE_LINK_RAW14:
	case DECODE_LINK_RAW:
		return decode_ip(data, caplen, out, st);
	case DECODE_LINK_IPV4:
		return decode_ipv4(data, caplen, out, st);
	case DECODE_LINK_IPV6:
		return decode_ipv6(data, caplen, out, st);
	case DECODE_LINK_NULL:
		return decode_null(data, caplen, 0, out, st);
	case DECODE_LINK_LOOP:
		return decode_null(data, caplen, 1, out, st);
	case DECODE_LINK_SLL: /* 16 bytes, protocol type at 14 */
		if (caplen < 16) {
			st->err_link_truncated++;
			return DECODE_ERR;
		}
		return decode_ethertype(rd16(data + 14), data + 16, caplen - 16, out, st);
	case DECODE_LINK_SLL2: /* 20 bytes, protocol type at 0 */
		if (caplen < 20) {
			st->err_link_truncated++;
			return DECODE_ERR;
		}
		return decode_ethertype(rd16(data), data + 20, caplen - 20, out, st);
	default:
		st->unknown_linktype++;
		return DECODE_SKIP;
	}
}
