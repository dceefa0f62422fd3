/* SPDX-License-Identifier: MIT */
/*
 * iop - input files of other tools as a packet source: HAR 1.2 (browsers,
 * proxies, API tools) and GoReplay `.gor` files beside pcap and pcapng,
 * told apart by their content, never by their name.
 *
 * The exchanges of a HAR or .gor file are turned into TCP/IP packets
 * (interop/synth.h) and handed out like the packets of a capture, so
 * `dyetap record -r` runs them through the same pipeline: decode, flows,
 * reassembly, the HTTP/1.x parser and its limits, color rules, redaction
 * and counters. The BPF filter applies to those packets too. pcap and
 * pcapng files among the inputs are read by capture/source.h.
 *
 * Every entry or payload that cannot be used is counted with its reason
 * (iop_ctr_descs, shown with the prefix `interop_`). The mapping of each
 * format is docs/interop.md.
 * Only regular files are looked at: standard input and FIFOs are read as
 * captures (their bytes cannot be read twice).
 * Thread-safety: a source is used by one thread; iop_src_break() may be
 * called from a signal handler.
 */
#ifndef DYETAP_INTEROP_IOP_H
#define DYETAP_INTEROP_IOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/source.h"
#include "common/counters.h"
#include "common/dbuf.h"

/** What a file holds, from its first bytes. */
enum iop_format {
	IOP_UNKNOWN = 0, /**< none of these (read as pcap: libpcap says why not) */
	IOP_PCAP = 1,	 /**< pcap or pcapng */
	IOP_HAR = 2,	 /**< a JSON document (HAR 1.2) */
	IOP_GOR = 3,	 /**< a GoReplay file */
};

/** Bytes iop_sniff() looks at. */
#define IOP_SNIFF_BYTES 256

/** The format of a file whose first bytes are @p b[0..n). */
enum iop_format iop_sniff(const uint8_t *b, size_t n);

/** Stable name of @p f: "pcap", "har", "gor", "unknown". */
const char *iop_format_name(enum iop_format f);

/** Caps: a HAR file is parsed whole; a .gor payload is read whole. */
#define IOP_HAR_MAX_BYTES   (1024ull << 20)
#define IOP_GOR_MAX_PAYLOAD (64u << 20)
/** A truncated body is padded back to its full length up to this many bytes. */
#define IOP_PAD_MAX (64u << 20)
/** GoReplay requests waiting for their response; past it the oldest gets none. */
#define IOP_GOR_MAX_PENDING 65536

/** Counters (see iop_ctr_descs; prefix `interop_`). */
struct iop_stats {
	uint64_t har_files;	    /**< HAR files read */
	uint64_t har_entries;	    /**< entries in them */
	uint64_t gor_files;	    /**< GoReplay files read */
	uint64_t gor_payloads;	    /**< payloads in them */
	uint64_t exchanges;	    /**< requests turned into packets (with their responses) */
	uint64_t frames;	    /**< packets made */
	uint64_t skipped_malformed; /**< entries or payloads unusable: a field missing or bad */
	uint64_t skipped_unsafe;    /**< entries with CR, LF or NUL in a method, target or header */
	uint64_t skipped_too_large; /**< payloads over the cap */
	uint64_t gor_replayed;	    /**< GoReplay replayed responses (type 3): not recorded */
	uint64_t gor_orphans;	    /**< GoReplay responses without their request */
	uint64_t gor_duplicates;    /**< GoReplay requests whose id was still waiting */
	uint64_t gor_evicted;	    /**< GoReplay requests closed unanswered: too many waiting */
	uint64_t gor_cut;	    /**< GoReplay files that end inside a payload */
	uint64_t har_no_response;   /**< HAR entries without a response (status 0) */
	uint64_t har_replayed; /**< entries of a results file's HAR (_dyetap.role): not recorded */
	uint64_t length_set;   /**< Content-Length added or set to the body in the file */
	uint64_t encoding_removed; /**< Content-Encoding dropped: the HAR body is decoded */
	uint64_t padded;	   /**< truncated bodies padded back to their full length */
	uint64_t version_changed;  /**< messages of HTTP/2 or /3 entries written as HTTP/1.1 */
};

extern const struct ctr_desc iop_ctr_descs[];
extern const size_t iop_ctr_count;

struct iop_src;

/**
 * Open the files of @p p (p->files; an interface is refused). Every file
 * is checked now: missing, unreadable, not a capture, HAR or .gor file, a
 * HAR file that does not parse. pcap files are counted in @p ss (borrowed,
 * as capture/source.h), the others in @p st (borrowed).
 * @return the source, or NULL with a message in @p err.
 */
struct iop_src *iop_src_open(const struct src_params *p, struct src_stats *ss, struct iop_stats *st,
			     char *err, size_t errlen);

/**
 * The next packet (borrowed until the next call).
 * @return 1, -ENODATA at the end, -EIO (message in iop_src_error()).
 */
int iop_src_next(struct iop_src *s, struct src_pkt *out);

/** Make iop_src_next() return -ENODATA. Async-signal-safe. */
void iop_src_break(struct iop_src *s);

/** Message of the last error; borrowed. */
const char *iop_src_error(const struct iop_src *s);

/** Close; accepts NULL. */
void iop_src_close(struct iop_src *s);

/**
 * Describe the input files for the recording's metadata: "files:" then
 * FORMAT:PATH for each, comma separated ("files:har:a.har,pcap:b.pcap").
 * @return 0 or the buffer's error.
 */
int iop_source(struct dbuf *b, const char *const *files, size_t n);

/**
 * True when any of @p files is a HAR or .gor file (read their first bytes;
 * unreadable files are left to the source's own checks).
 */
bool iop_any(const char *const *files, size_t n);

#endif
