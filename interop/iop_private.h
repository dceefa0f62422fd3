/* SPDX-License-Identifier: MIT */
/*
 * iop_private - the exchange every input format is turned into before it
 * becomes packets (interop/iop.c), and the HAR reader that makes them.
 */
#ifndef DYETAP_INTEROP_IOP_PRIVATE_H
#define DYETAP_INTEROP_IOP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interop/iop.h"
#include "store/store.h"

/** One request and its response as bytes on the wire, with their connection. */
struct iop_xchg {
	const uint8_t *key; /**< connection name in the file (borrowed), NULL: its own */
	size_t key_len;
	uint64_t conn; /**< connection number from the file (_dyetap.conn), 0: none */
	uint8_t ip_version;
	struct store_endpoint cli, srv;
	uint16_t vlan;
	bool midstream;	  /**< the connection had no handshake */
	bool cli_known;	  /**< the client endpoint is from the file */
	bool has_resp;	  /**< a response follows the request */
	bool close_after; /**< the response ends with the connection */
	int64_t ts[4];	  /**< request first, last, response first, last byte (ns) */
	uint8_t *req;	  /**< owned */
	size_t req_len;
	uint8_t *resp; /**< owned */
	size_t resp_len;
	size_t seq; /**< position in the file */
};

struct har_doc {
	struct iop_xchg *x; /**< owned */
	size_t n;
};

/**
 * Parse HAR text @p text[0..len) (borrowed while @p out is used: names
 * point into it) into exchanges; entries that cannot be used are counted
 * in @p st. @return 0; -EBADMSG not a HAR document (message in @p err);
 * -E2BIG over a cap; -ENOMEM.
 */
int har_read(const uint8_t *text, size_t len, struct har_doc *out, struct iop_stats *st, char *err,
	     size_t errlen);

/** Free the exchanges of @p d. */
void har_doc_release(struct har_doc *d);

#endif
