/* SPDX-License-Identifier: MIT */
/*
 * source - packets from pcap/pcapng files or a live interface (libpcap).
 *
 * Files are read in the order given, one after the other, each with the
 * same BPF filter (compiled per file since link types may differ).
 * Timestamps are read at nanosecond precision. A file cut short (a crash
 * while capturing) ends that file with a counted warning, not the run.
 *
 * Live capture: pcap_create, immediate mode,
 * non-blocking, and poll() on the selectable descriptor so the caller
 * regains control when traffic stops (a blocking pcap_next_ex would not
 * return). Kernel drops come from pcap_stats().
 *
 * Packets are borrowed from libpcap until the next src_next() call.
 * References: pcap(3PCAP), pcap_create(3PCAP), pcap_set_immediate_mode,
 * pcap_get_selectable_fd(3PCAP), pcap-savefile(5), pcapng (RFC draft
 * draft-ietf-opsawg-pcapng).
 * Thread-safety: a source is used by one thread; src_break() may be
 * called from a signal handler.
 */
#ifndef DYETAP_CAPTURE_SOURCE_H
#define DYETAP_CAPTURE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"

/** Source counters (see src_ctr_descs). */
struct src_stats {
	uint64_t files;		  /**< files opened */
	uint64_t packets;	  /**< packets read */
	uint64_t wire_bytes;	  /**< their length on the wire */
	uint64_t cap_bytes;	  /**< their captured length */
	uint64_t truncated_files; /**< files that ended inside a record (cut short) */
	uint64_t kernel_received; /**< live: packets the kernel passed to the filter */
	uint64_t kernel_drops;	  /**< live: dropped because the capture buffer was full */
	uint64_t iface_drops;	  /**< live: dropped by the interface or driver */
};

extern const struct ctr_desc src_ctr_descs[];
extern const size_t src_ctr_count;

struct src_params {
	const char *const *files; /**< pcap/pcapng paths, read in order (borrowed) */
	size_t n_files;
	const char *iface;  /**< live interface instead of files */
	const char *filter; /**< BPF filter expression or NULL */
	int snaplen;	    /**< live: 0 = 262144 */
	int buffer_mb;	    /**< live: kernel buffer; 0 = 64 MiB */
	int promisc;	    /**< live: promiscuous mode */
	/**
	 * live: 0 = immediate mode (every packet as soon as it arrives; for
	 * mirroring); > 0 = the kernel hands packets over in blocks, at the
	 * latest after this many ms. Blocks pack packets tightly, so the same
	 * buffer holds many more (immediate mode gives each packet a slot as
	 * large as the biggest possible packet). After src_break() a buffered
	 * source keeps reading for about twice this long, so the packets the
	 * kernel had taken before the stop are still delivered.
	 */
	int block_ms;
};

/** One packet; data is borrowed until the next src_next() or src_close(). */
struct src_pkt {
	int64_t ts_ns; /**< capture time, Unix-epoch ns */
	int linktype;  /**< DLT_* of the file or interface */
	const uint8_t *data;
	uint32_t caplen;
	uint32_t wirelen;
};

struct src;

/**
 * Open the files (all are checked at once: missing, unreadable, not a
 * capture, bad filter) or the interface (permission, no such device).
 * @return the source, or NULL with a message in @p err saying what to do.
 * @p st is borrowed for the source's life.
 */
struct src *src_open(const struct src_params *p, struct src_stats *st, char *err, size_t errlen);

/**
 * Next packet.
 * @param timeout_ms live only: how long to wait for traffic (poll)
 * @return 1 packet in @p out, 0 none yet (live timeout or interrupted),
 *         -ENODATA end of input (all files read, or src_break()),
 *         -EIO read error (message in src_error()).
 */
int src_next(struct src *s, struct src_pkt *out, int timeout_ms);

/** Refresh the live counters from pcap_stats() (no-op for files). */
void src_update_stats(struct src *s);

/** Make src_next() return -ENODATA soon. Async-signal-safe. */
void src_break(struct src *s);

/** True for a live interface. */
int src_is_live(const struct src *s);

/** Bytes of the current input file read so far and the total of all files (progress). */
void src_progress(const struct src *s, uint64_t *done, uint64_t *total);

/** Message of the last error ("" when none). Borrowed. */
const char *src_error(const struct src *s);

/** Close; accepts NULL. */
void src_close(struct src *s);

#endif
