/* SPDX-License-Identifier: MIT */
/*
 * txn_pair - which waiting request a response answers, from TCP positions
 * (see txn_pair.h).
 *
 * Why the two inequalities of txn_pair_causal() hold on the wire (RFC 9293
 * §3.4: an acknowledgement number is the receiver's RCV.NXT when it sent
 * the segment, and never passes what the peer sent): the client's ack A on
 * request R is at most the server's SND.NXT when R left; the server writes
 * the response to R after reading R, so the response begins at or after
 * A. The server's ack B on the response's first segment is its RCV.NXT,
 * which is past R's first byte since it read R. Retransmissions keep both:
 * first seen wins in reassembly, and a later copy carries a later ack that
 * still precedes what it answers.
 *
 * The waiting-client signature: when request R2 follows R1 and the client
 * waited for R1's response, R2's ack is past that whole response, so it is
 * strictly greater than R1's ack. A response that could answer R1 or R2
 * (causal for both) then answers R2 if the client waited, because R2 was
 * sent before the response began (its ack is not past the response's
 * start) while a waiting client sends R2 only after R1's response. The
 * response to R1 must then be among the bytes the capture lost between
 * the two acks. A pipelining client sends R1 and R2 with the same ack, and
 * nothing says how many of their responses the loss took: uncertain.
 *
 * References: RFC 9112 §9.3.2 (responses in request order), RFC 9293 §3.4
 * (sequence and acknowledgement numbers).
 */
#include "capture/txn_pair.h"

bool txn_pair_causal(const struct txn_start *req, const struct txn_start *resp)
{
	return req->ack <= resp->off && req->off < resp->ack;
}

bool txn_pair_lost_explained(const struct txn_start *req, const struct txn_start *resp,
			     const struct txn_unpaired *u)
{
	uint64_t after = req->has_prev ? req->prev_ack : 0;
	if (u->valid && u->hi <= req->ack && u->hi > after)
		return true;
	/* The server bytes lost just before @p resp began before the client
	 * sent @p req, after it sent the request before the loss. */
	return resp && resp->lost && resp->lost_lo < req->ack && req->ack <= resp->off &&
	       req->ack > after;
}

void txn_pair_pick(const struct txn_pair_in *in, struct txn_pair_out *out)
{
	const struct txn_start *rs = in->resp;
	*out = (struct txn_pair_out){0};
	size_t ncausal = 0;
	while (ncausal < in->n && txn_pair_causal(in->reqs[ncausal], rs))
		ncausal++;
	if (!ncausal) {
		/* It answers a request before the oldest one seen: one the
		 * capture missed (or, without any loss, none at all). */
		out->orphan = true;
		return;
	}
	if (ncausal == in->n && in->lost_tail && rs->lost && in->lost_tail->off < rs->ack) {
		/* The server had received bytes the capture lost after every
		 * waiting request when it began this response, and lost bytes
		 * of its own before it: a waiting client sends a request only
		 * after the previous response, so all the waiting requests'
		 * responses were lost and this one answers a lost request. */
		bool waited =
		    !in->pipelined && in->reqs[in->n - 1]->ack < rs->off && rs->lost_lo < rs->off;
		for (size_t l = 0; l + 1 < in->n && waited; l++) {
			const struct txn_start *a = in->reqs[l], *b = in->reqs[l + 1];
			waited = b->ack > a->ack && rs->lost_lo < b->ack && a->ack < rs->off;
		}
		if (waited) {
			out->drop = in->n;
			out->orphan = true;
			out->by_position = true;
		} else {
			out->uncertain = true;
		}
		return;
	}
	size_t pick = 0;
	if (ncausal > 1 && rs->lost) {
		/* Responses may be lost: skip the requests a waiting client
		 * sent before receiving their (lost) responses. */
		size_t last = ncausal - 1;
		bool waited = true;
		for (size_t l = 0; l < last && waited; l++) {
			const struct txn_start *a = in->reqs[l], *b = in->reqs[l + 1];
			waited = b->ack > a->ack && rs->lost_lo < b->ack && a->ack < rs->off;
		}
		if (waited) {
			pick = last;
			out->by_position = true;
		} else {
			out->uncertain = true;
		}
	}
	/* Requests lost on the client's side just before the chosen one:
	 * their responses come first unless the positions show they came
	 * already (lost requests before a skipped one do not matter: a
	 * waiting client read that one's response before the next request). */
	const struct txn_start *q = in->reqs[pick];
	if (q->lost && !q->explained && !txn_pair_lost_explained(q, rs, &in->unpaired))
		out->uncertain = true;
	if (out->uncertain) {
		pick = 0;
		out->by_position = false;
	}
	out->drop = pick;
}
