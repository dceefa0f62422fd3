/* SPDX-License-Identifier: MIT */
/*
 * gor - a reader of GoReplay's file format (`gor --output-file`), read as
 * a stream, payload by payload.
 *
 * A file is a sequence of payloads, each followed by the separator
 * "\n🐵🙈🙉\n" (a newline, the three monkeys in UTF-8, a newline). A
 * payload starts with a header line "TYPE ID TIMESTAMP[ LATENCY[ ...]]\n":
 * TYPE 1 a request, 2 the original response, 3 a response GoReplay got
 * when it replayed the request; ID the request's id (hex), the same in its
 * responses; TIMESTAMP Unix-epoch nanoseconds; LATENCY nanoseconds (a
 * response's round trip; absent or -1 otherwise). Fields past the fourth
 * (some versions add the client address) are ignored. The rest of the
 * payload is the HTTP message as it was on the wire.
 *
 * Untrusted input: a header line is at most GOR_MAX_LINE bytes, a payload
 * at most the reader's cap; a payload over it is skipped to its separator
 * and reported, a bad header line is reported and its payload skipped. A
 * file that ends without a separator yields its last payload, flagged cut.
 *
 * Reference: GoReplay's proto package (PayloadHeader, PayloadSeparator)
 * and its wiki page "Saving and Replaying from file".
 * Thread-safety: a reader is used by one thread.
 */
#ifndef DYETAP_INTEROP_GOR_H
#define DYETAP_INTEROP_GOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** The separator that follows every payload. */
#define GOR_SEPARATOR	  "\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"
#define GOR_SEPARATOR_LEN 14
/** Longest header line. */
#define GOR_MAX_LINE 1024
/** Longest id kept (longer ids are a bad header line). */
#define GOR_MAX_ID 256

enum gor_type {
	GOR_REQUEST = 1,
	GOR_RESPONSE = 2,
	GOR_REPLAYED = 3,
};

/** One payload; the pointers are borrowed until the next gor_next(). */
struct gor_payload {
	int type;	/**< enum gor_type */
	const char *id; /**< NUL-terminated */
	size_t id_len;
	int64_t ts_ns;	     /**< TIMESTAMP */
	int64_t latency_ns;  /**< LATENCY, -1 when absent */
	const uint8_t *data; /**< the HTTP message */
	size_t len;
	bool cut; /**< the file ended before this payload's separator */
};

struct gor_reader;

/**
 * Read from @p f (borrowed; read from its current position) payloads of at
 * most @p max_payload bytes (0: 64 MiB). NULL when out of memory.
 */
struct gor_reader *gor_open(FILE *f, size_t max_payload);

/**
 * The next payload.
 * @return 1 a payload in @p out; 0 end of file; -EBADMSG a payload with a
 *         bad header line was skipped; -E2BIG a payload over the cap was
 *         skipped; (for both, call again) -EIO a read error; -ENOMEM.
 */
int gor_next(struct gor_reader *r, struct gor_payload *out);

/** Bytes consumed so far (progress). */
uint64_t gor_offset(const struct gor_reader *r);

/** Free; accepts NULL (the file is not closed). */
void gor_close(struct gor_reader *r);

/**
 * True when @p b[0..n) (a file's first bytes) looks like a GoReplay file: a
 * header line "1|2|3 ID TIMESTAMP" with a hex id and a decimal timestamp.
 */
bool gor_sniff(const uint8_t *b, size_t n);

#endif
