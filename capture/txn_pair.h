/* SPDX-License-Identifier: MIT */
/*
 * txn_pair - which waiting request a response answers, from TCP positions.
 *
 * In order (RFC 9112 §9.3.2) a response answers the oldest request still
 * waiting. After the capture lost bytes that order is no longer enough: a
 * lost response leaves its request waiting, so every later response would
 * be paired with the request before its own; a lost request makes its
 * response answer nothing that was seen. The TCP acknowledgement numbers
 * carried by the messages' first segments settle it:
 *
 * - a request's ack (how much of the server's stream the client had
 *   received when it sent the request) is at most where the response to it
 *   begins: a server answers only what it received, after what it had
 *   sent before;
 * - a response's ack (how much of the client's stream the server had
 *   received when it began answering) is past the start of the request it
 *   answers.
 *
 * A client that waits for each response before it sends the next request
 * (most clients: browsers, curl, wrk, libraries without pipelining) leaves
 * a signature: every request's ack is past the previous response. When
 * the requests a response would skip show that signature and their
 * responses fell into the bytes the capture lost, the skipped requests are
 * the ones whose responses were lost, exactly; otherwise (a pipelining
 * client after a loss) the pairing stays in order and is reported
 * uncertain, so the caller flags it.
 *
 * A pure function over positions (stream offsets, see flow.h struct
 * flow_seg), so its rules are tested apart from the parser
 * (tests/capture/test_txn_pair.c). docs/capture.md, "Pairing after loss",
 * states the rules and their limits for users.
 */
#ifndef DYETAP_CAPTURE_TXN_PAIR_H
#define DYETAP_CAPTURE_TXN_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Where a message began, and whether messages may have been lost just before it. */
struct txn_start {
	uint64_t off; /**< stream offset of its first byte */
	uint64_t ack; /**< the other stream's offset acknowledged by that byte's segment */
	/** with lost: bytes [lost_lo, off) of this stream were lost or skipped */
	uint64_t lost_lo;
	/** with lost and has_prev: the ack of the last message that began before them */
	uint64_t prev_ack;
	bool has_ack; /**< off and ack are known (false: pair by order alone) */
	bool lost;    /**< a capture gap: whole messages may be missing just before this one */
	bool has_prev;
	bool explained; /**< lost, and txn_pair_lost_explained() held when it began */
	bool boundary;	/**< its first byte began a segment */
};

/** Server bytes that answered no request the capture saw (an orphan, or lost). */
struct txn_unpaired {
	uint64_t lo, hi; /**< [lo, hi) of the server's stream */
	bool valid;
};

struct txn_pair_in {
	const struct txn_start *const *reqs; /**< waiting requests, oldest first */
	size_t n;			     /**< at least 1 */
	const struct txn_start *resp;	     /**< the final response to place */
	struct txn_unpaired unpaired;	     /**< the latest such server bytes */
	/**
	 * Client bytes lost after the newest waiting request (off: where the
	 * loss began, after that request's end), which may have held requests
	 * of their own; NULL when none.
	 */
	const struct txn_start *lost_tail;
	bool pipelined; /**< the client was seen sending a request before the previous
			 *   one's response (then a lost tail cannot be placed) */
};

struct txn_pair_out {
	size_t drop; /**< oldest requests whose responses were lost (answer = reqs[drop]) */
	/**
	 * After the drop, the response answers none of the waiting requests: a
	 * request the capture missed (drop == n: one in the lost tail;
	 * reqs[0]->lost: one before them) or none at all.
	 */
	bool orphan;
	bool by_position; /**< drop > 0: the positions moved the answer past the oldest */
	bool uncertain;	  /**< positions could not settle it: in order, flag the pairing */
};

/**
 * Place @p in->resp among @p in->reqs. Needs in->n >= 1 and positions
 * (has_ack) on the response and every request; otherwise the caller
 * pairs in order. Pure: reads @p in, fills @p out.
 */
void txn_pair_pick(const struct txn_pair_in *in, struct txn_pair_out *out);

/**
 * Could the response starting at @p resp answer the request starting at
 * @p req (both with positions)? The client had not yet received the
 * response's first byte when it sent the request, and the server had
 * received the request's first byte when it began the response.
 */
bool txn_pair_causal(const struct txn_start *req, const struct txn_start *resp);

/**
 * Is a loss of requests just before @p req (req->lost) explained? True when
 * server bytes that answered no seen request (@p u, or the loss @p resp
 * follows) ended after the client sent the request before the loss and
 * before it sent @p req: a waiting client read the answer to the lost
 * request before sending @p req, so the response after that answers @p req.
 */
bool txn_pair_lost_explained(const struct txn_start *req, const struct txn_start *resp,
			     const struct txn_unpaired *u);

#endif
