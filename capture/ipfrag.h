/* SPDX-License-Identifier: MIT */
/*
 * ipfrag - IPv4 and IPv6 fragment reassembly ahead of decode.
 *
 * A fragment (an IPv4 packet with MF set or a non-zero offset, RFC 791
 * §3.2; an IPv6 packet with a Fragment header, RFC 8200 §4.5) is kept until
 * its datagram is whole; the datagram is then handed back as one IP packet
 * (the first fragment's header, length and fragment fields fixed; for IPv6
 * the Fragment header removed) for decode to read like any other.
 *
 * Policies (docs/capture.md, "IP fragments"):
 * - A datagram is identified by version, addresses, identification,
 *   protocol (IPv4) and the caller's VLAN id.
 * - Overlaps: first seen wins, as in TCP reassembly (reasm.h); overlapping
 *   fragments are counted (ipfrag_overlaps), and those whose overlapping
 *   bytes differ too (ipfrag_overlap_diff).
 * - A datagram not whole within the timeout (30 s, Linux's ipfrag_time)
 *   is dropped (ipfrag_timeouts); so is one over 65535 bytes, with more
 *   than max_pieces fragments, or whose fragments disagree about its end
 *   (ipfrag_invalid). A fragment cut by the snap length cannot be used
 *   (ipfrag_truncated). TCP then sees the datagram's bytes as a gap.
 * - Memory: the bytes held by all datagrams are bounded (memcap, 4 MiB
 *   like Linux's ipfrag_high_thresh); over it the least recently touched
 *   datagrams are dropped (ipfrag_memcap_drops), and the number of
 *   datagrams held at once is bounded (max_datagrams).
 * - Work: a fragment costs a keyed hash lookup (SipHash-1-3, common/hash.h,
 *   so nobody can aim at one chain) and a walk of its datagram's pieces
 *   (at most max_pieces).
 *
 * Thread-safety: a reassembler is used by one thread.
 */
#ifndef DYETAP_CAPTURE_IPFRAG_H
#define DYETAP_CAPTURE_IPFRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"

/** Reassembly counters (see ipfrag_ctr_descs). */
struct ipfrag_stats {
	uint64_t fragments;    /**< fragments offered */
	uint64_t reassembled;  /**< datagrams made whole and handed back */
	uint64_t overlaps;     /**< fragments overlapping bytes already held (first seen kept) */
	uint64_t overlap_diff; /**< ... with different bytes */
	uint64_t duplicates;   /**< fragments adding nothing */
	uint64_t timeouts;     /**< datagrams dropped, not whole within the timeout */
	uint64_t memcap_drops; /**< datagrams dropped to stay under the memory cap */
	uint64_t invalid;      /**< datagrams or fragments dropped: too long, too many pieces,
				*   disagreeing ends, malformed headers */
	uint64_t truncated;    /**< fragments cut by the snap length (not usable) */
	uint64_t unfinished;   /**< datagrams still incomplete at ipfrag_finish() */
	uint64_t held_peak;    /**< most bytes held at once */
};

extern const struct ctr_desc ipfrag_ctr_descs[];
extern const size_t ipfrag_ctr_count;

struct ipfrag_params {
	size_t memcap;		/**< bytes held by all datagrams; 0 = 4 MiB */
	int64_t timeout_ns;	/**< 0 = 30 s */
	uint32_t max_datagrams; /**< held at once; 0 = 4096 */
	uint32_t max_pieces;	/**< fragments per datagram; 0 = 256 */
};

struct ipfrag;

/** Create a reassembler; @p st borrowed for its life. NULL on allocation failure. */
struct ipfrag *ipfrag_create(const struct ipfrag_params *p, struct ipfrag_stats *st);

/** Free; accepts NULL. */
void ipfrag_free(struct ipfrag *f);

/**
 * Offer one fragment: @p ip is the IP packet (from its first header byte;
 * borrowed for the call), @p caplen the bytes captured of it, @p vlan the
 * caller's VLAN id, @p ts_ns its capture time (also moves the
 * reassembler's clock: datagrams older than the timeout are dropped).
 * @return true when the fragment completed its datagram: *out and
 * *out_len are the whole IP packet, borrowed until the next call.
 */
bool ipfrag_offer(struct ipfrag *f, const uint8_t *ip, size_t caplen, uint16_t vlan, int64_t ts_ns,
		  const uint8_t **out, size_t *out_len);

/** Move the clock to @p now_ns (live capture without packets): drop timed-out datagrams. */
void ipfrag_advance(struct ipfrag *f, int64_t now_ns);

/** The capture ended: drop (and count) every datagram still incomplete. */
void ipfrag_finish(struct ipfrag *f);

/** Bytes held now (fragments kept, with overhead). */
size_t ipfrag_held(const struct ipfrag *f);

#endif
