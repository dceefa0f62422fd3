/* SPDX-License-Identifier: MIT */
/*
 * pcapng - a reader of pcapng capture files (draft-ietf-opsawg-pcapng) that
 * reads what Wireshark reads and libpcap 1.10 refuses: several interfaces
 * of different link types in one section, and several sections, each in
 * its own byte order (files joined with cat(1), or written on machines of
 * either endianness).
 *
 * Blocks read: Section Header (byte order and a new set of interfaces),
 * Interface Description (link type, snap length, if_tsresol, if_tsoffset),
 * Enhanced Packet, Simple Packet (interface 0, the time of the previous
 * packet: it carries none) and the obsolete Packet Block; every other
 * block is skipped by its length.
 *
 * Timestamps are converted to Unix-epoch nanoseconds from any resolution
 * (10^-n or 2^-n seconds) and offset in 128-bit arithmetic and saturated
 * to the int64 range, so a hostile file cannot overflow them.
 *
 * Bad input never crashes, hangs or allocates without bound: a block is
 * at most PCAPNG_MAX_BLOCK bytes; a block whose length fields disagree, an
 * unknown byte order or version, or a packet of an interface not described
 * ends the file with -EBADMSG and a message; a file that ends inside a
 * block ends with -EPIPE (cut short, as a capture killed mid-write is).
 *
 * References: draft-ietf-opsawg-pcapng-02 §4 (blocks), §4.2 (if_tsresol,
 * if_tsoffset); Wireshark wiretap/pcapng.c (sections in either byte order,
 * per-interface link types).
 * Thread-safety: a reader is used by one thread.
 */
#ifndef DYETAP_CAPTURE_PCAPNG_H
#define DYETAP_CAPTURE_PCAPNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** First four bytes of a pcapng file (a Section Header Block, either byte order). */
#define PCAPNG_MAGIC 0x0A0D0D0Au

/** Largest block read (Wireshark's and libpcap's limit for a packet block). */
#define PCAPNG_MAX_BLOCK (16u << 20)

/** One packet; data is borrowed until the next pcapng_next() or pcapng_close(). */
struct pcapng_pkt {
	int64_t ts_ns;	  /**< Unix-epoch ns, saturated */
	int linktype;	  /**< LINKTYPE_* of its interface */
	uint32_t iface;	  /**< interface index within the section */
	uint32_t section; /**< 0-based section number */
	const uint8_t *data;
	uint32_t caplen;
	uint32_t wirelen;
};

struct pcapng_reader;

/**
 * Read from @p f (borrowed; the caller closes it after pcapng_close()),
 * positioned at the start of the file. Reads the first Section Header.
 * @return the reader, or NULL with a message in @p err (not pcapng,
 *         unknown byte order or version, out of memory).
 */
struct pcapng_reader *pcapng_open(FILE *f, char *err, size_t errlen);

/** Same over @p len bytes at @p data (borrowed until pcapng_close()); for the fuzz target. */
struct pcapng_reader *pcapng_open_mem(const void *data, size_t len, char *err, size_t errlen);

/**
 * Next packet.
 * @return 1 a packet in @p out, 0 the end of the file, -EPIPE the file is
 *         cut inside a block, -EBADMSG a damaged block, -EIO a read
 *         error, -ENOMEM (messages in pcapng_error()).
 */
int pcapng_next(struct pcapng_reader *r, struct pcapng_pkt *out);

/** Bytes of the file consumed so far (progress). */
uint64_t pcapng_offset(const struct pcapng_reader *r);

/** Message of the last error ("" when none). Borrowed. */
const char *pcapng_error(const struct pcapng_reader *r);

/** Close; accepts NULL. Does not close the FILE. */
void pcapng_close(struct pcapng_reader *r);

#endif
