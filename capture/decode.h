/* SPDX-License-Identifier: MIT */
/*
 * decode - link, network and transport headers of one captured packet.
 *
 * Turns a borrowed packet (link type + bytes) into the fields the flow
 * table needs: addresses, ports, TCP sequence/ack/flags and a slice of the
 * TCP payload. Link types: Ethernet (with 802.1Q / 802.1ad / QinQ tags),
 * Linux cooked SLL and SLL2, raw IP (DLT_RAW, LINKTYPE_IPV4/IPV6), BSD
 * loopback (DLT_NULL, DLT_LOOP). Network: IPv4 (RFC 791) and IPv6 (RFC
 * 8200, extension headers walked); a fragment of either is counted and
 * handed back as DECODE_FRAGMENT with its IP packet, for ipfrag.h to
 * reassemble and the caller to decode again. Transport: TCP (RFC 9293); every other
 * protocol is counted and skipped.
 *
 * References: tcpdump.org/linktypes.html (link-layer header types),
 * IEEE 802.1Q, RFC 791, RFC 8200 §4, RFC 9293 §3.1.
 *
 * Thread-safety: stateless apart from the caller's stats struct.
 */
#ifndef DYETAP_CAPTURE_DECODE_H
#define DYETAP_CAPTURE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"

/* Link types as libpcap's pcap_datalink() reports them (DLT_*) plus the
 * LINKTYPE_* values some files carry; decode_packet() accepts all of them. */
#define DECODE_LINK_NULL  0   /**< DLT_NULL: 4-byte host-order family */
#define DECODE_LINK_ETH	  1   /**< DLT_EN10MB */
#define DECODE_LINK_RAW12 12  /**< DLT_RAW on most systems */
#define DECODE_LINK_RAW14 14  /**< DLT_RAW on OpenBSD */
#define DECODE_LINK_RAW	  101 /**< LINKTYPE_RAW */
#define DECODE_LINK_LOOP  108 /**< DLT_LOOP: 4-byte network-order family */
#define DECODE_LINK_SLL	  113 /**< DLT_LINUX_SLL */
#define DECODE_LINK_IPV4  228 /**< DLT_IPV4 */
#define DECODE_LINK_IPV6  229 /**< DLT_IPV6 */
#define DECODE_LINK_SLL2  276 /**< DLT_LINUX_SLL2 */

/* TCP flag bits (RFC 9293 §3.1). */
#define DECODE_TH_FIN 0x01
#define DECODE_TH_SYN 0x02
#define DECODE_TH_RST 0x04
#define DECODE_TH_PSH 0x08
#define DECODE_TH_ACK 0x10

/** Decoder counters (see decode_ctr_descs). */
struct decode_stats {
	uint64_t tcp;		     /**< TCP segments decoded */
	uint64_t non_ip;	     /**< frames that carry no IP (ARP, LLDP, ...) */
	uint64_t non_tcp;	     /**< IP packets of another protocol (UDP, ICMP, ...) */
	uint64_t ip_fragments;	     /**< IPv4/IPv6 fragments (handed to IP reassembly) */
	uint64_t unknown_linktype;   /**< packets of a link type we do not decode */
	uint64_t err_link_truncated; /**< link header cut short */
	uint64_t err_ip_truncated;   /**< IP header cut short */
	uint64_t err_ip_header;	     /**< bad IP version, header length or total length */
	uint64_t err_ip6_ext;	     /**< malformed or unsupported IPv6 extension header */
	uint64_t err_tcp_truncated;  /**< TCP header cut short */
	uint64_t err_tcp_header;     /**< bad TCP data offset */
	uint64_t snap_truncated;     /**< TCP payload cut by the snap length (bytes lost) */
};

extern const struct ctr_desc decode_ctr_descs[];
extern const size_t decode_ctr_count;

/** A decoded TCP segment. Slices borrow the packet bytes. */
struct decode_pkt {
	uint8_t ip_version; /**< 4 or 6 */
	uint8_t tcp_flags;  /**< DECODE_TH_* */
	uint16_t vlan;	    /**< outermost VLAN id, 0 when untagged */
	uint8_t src[16];    /**< IPv4 uses the first 4 bytes, the rest is zero */
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint32_t seq;
	uint32_t ack;
	uint16_t window;
	const uint8_t *ip;	/**< DECODE_FRAGMENT: the IP packet, borrowed */
	uint32_t ip_caplen;	/**< DECODE_FRAGMENT: its captured bytes */
	const uint8_t *payload; /**< borrowed from the packet */
	uint32_t payload_len;	/**< captured payload bytes */
	uint32_t payload_wire;	/**< payload bytes on the wire (>= payload_len) */
};

enum decode_result {
	DECODE_TCP = 0,	     /**< @p out is filled */
	DECODE_SKIP = 1,     /**< not TCP or a fragment: counted, nothing to do */
	DECODE_ERR = 2,	     /**< malformed: counted by kind */
	DECODE_FRAGMENT = 3, /**< an IP fragment: out->ip, out->ip_caplen and out->vlan are set */
};

/**
 * Decode one packet.
 * @param linktype DLT_* / LINKTYPE_* value of the capture
 * @param data     packet bytes, borrowed for the call (out's slices point into it)
 * @param caplen   captured bytes
 * @param out      filled when DECODE_TCP is returned
 * @param st       counters bumped for every outcome; must not be NULL
 */
enum decode_result decode_packet(int linktype, const uint8_t *data, size_t caplen,
				 struct decode_pkt *out, struct decode_stats *st);

/** True when decode_packet() knows @p linktype. */
int decode_linktype_supported(int linktype);

#endif
