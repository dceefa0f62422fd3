/* SPDX-License-Identifier: MIT */
/*
 * synth - TCP/IP packets for HTTP exchanges read from files that hold no
 * packets (HAR, GoReplay), so that their messages go through the capture
 * pipeline exactly as captured traffic does: decode, flow table,
 * reassembly, the HTTP/1.x parser and its limits, color rules, redaction
 * and every counter (docs/interop.md "How input is recorded").
 *
 * A connection is a client and a server endpoint; synth_open() writes the
 * three-way handshake, synth_data() a message in order (the first bytes at
 * its first time, the last byte at its last time, so the session keeps
 * both), synth_close() the FIN exchange. Frames are Ethernet II (with an
 * 802.1Q tag when the connection has a VLAN id), IPv4 or IPv6, TCP with
 * correct lengths and checksums. Frames are handed to a callback and are
 * borrowed for the call.
 *
 * References: RFC 791, RFC 8200, RFC 9293 (header layout), IEEE 802.1Q.
 * Thread-safety: a synth is used by one thread.
 */
#ifndef DYETAP_INTEROP_SYNTH_H
#define DYETAP_INTEROP_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/** Payload bytes per segment. */
#define SYNTH_MSS 32768

/** A frame: @p frame borrowed for the call, link type DLT_EN10MB. */
typedef void (*synth_emit_fn)(void *ctx, int64_t ts_ns, const uint8_t *frame, uint32_t len);

/** One connection (embedded by the caller; no resources). */
struct synth_conn {
	uint8_t ip_version;	   /**< 4 or 6 */
	struct store_endpoint cli; /**< client address and port */
	struct store_endpoint srv; /**< server */
	uint16_t vlan;		   /**< 0: untagged */
	uint32_t seq[2];	   /**< next sequence number: [0] client, [1] server */
};

struct synth {
	synth_emit_fn emit;
	void *ctx;
	uint8_t frame[SYNTH_MSS + 128];
};

/** Set up @p s to hand frames to @p emit with @p ctx. */
void synth_init(struct synth *s, synth_emit_fn emit, void *ctx);

/** Set up connection @p c (sequence numbers derived from @p seed). */
void synth_conn_init(struct synth_conn *c, uint8_t ip_version, const struct store_endpoint *cli,
		     const struct store_endpoint *srv, uint16_t vlan, uint64_t seed);

/** The three-way handshake at @p ts_ns. */
void synth_open(struct synth *s, struct synth_conn *c, int64_t ts_ns);

/**
 * Bytes @p p[0..n) from the client (@p dir 0) or the server (1): every
 * byte but the last at @p ts_first, the last at @p ts_last (all at
 * @p ts_first when they are equal), in segments of at most SYNTH_MSS.
 */
void synth_data(struct synth *s, struct synth_conn *c, int dir, const uint8_t *p, size_t n,
		int64_t ts_first, int64_t ts_last);

/** Client FIN, then server FIN at @p ts_ns (the last ACK would come after the close). */
void synth_close(struct synth *s, struct synth_conn *c, int64_t ts_ns);

#endif
