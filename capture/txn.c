/* SPDX-License-Identifier: MIT */
/*
 * txn - HTTP/1.x transaction tracker for one TCP connection (see txn.h).
 *
 * References: RFC 9112 §9.3.2 (pipelining: responses come in request
 * order), RFC 9110 §15.2 (1xx interim responses precede the final one),
 * §9.3.6 (CONNECT), §7.8 (Upgrade/101); libhtp's connection parser (one
 * transaction list per connection, requests waiting for their responses).
 *
 * Each side (client = requests, server = responses) has an http1 parser
 * and a mode:
 *   NORMAL  bytes go to the parser;
 *   RESYNC  after a gap, a parse error or a midstream pickup: bytes are
 *           skipped (counted in resync_bytes) until a message start: a
 *           request line "METHOD SP target" at a line start (checked up to
 *           " HTTP/1.x" when the whole line is at hand), or at a known
 *           method inside a complete line ending in " HTTP/1.x" (a request
 *           right after a body tail without newline); a status line
 *           "HTTP/1.x NNN" anywhere. A candidate cut at the end of a
 *           segment is kept in a small carry buffer until the next bytes
 *           decide;
 *   HOLD    client only, after a CONNECT or Upgrade request: its following
 *           bytes are held (bounded) until the response says whether a
 *           tunnel follows (then dropped) or not (then parsed);
 *   TUNNEL  the rest is not HTTP: bytes are counted, not parsed.
 *
 * Complete requests are deep-copied into a bounded FIFO (the parser's view
 * lives only until the next message); each final response is paired with
 * the head of the FIFO and emitted at once from the parser's view, so a
 * response is never copied. A request beyond the FIFO cap is emitted at
 * once as no_response and leaves a placeholder count so that the response
 * answering it is dropped instead of shifting every later pair.
 *
 * A response that completes while the FIFO is empty but a request is still
 * being received (a server answering early, e.g. 413 or 401 before the
 * body) is copied into one "early" slot and paired when that request
 * completes. Any other response without a request is emitted as an orphan
 * (req.present = false), counted.
 *
 * Direction: decided on the first bytes of the connection (either side).
 * If the side the caller called client starts with a status line, or the
 * other side starts with a request line, roles are swapped (counted). A
 * midstream pickup decides on the first message start found in either
 * direction (until then both sides only resync, nothing is parsed).
 *
 * Gaps: inside a body whose end is known (Content-Length with enough
 * bytes left, or close-delimited) the missing bytes are counted as body
 * (http1_gap) and parsing goes on; otherwise the message is handed on as
 * it is and the side resyncs.
 *
 * Pairing after a gap (txn_pair.h): with positions (txn_conn_segment())
 * each side notes where its messages begin - the stream offset and the
 * acknowledgement their first segment carried - and what it lost before
 * them. A final response is paired with the waiting request those
 * positions name: requests whose responses the loss took are emitted
 * flagged gap + no_response, a response whose request was lost is
 * emitted alone, flagged gap, and only the messages that lost bytes are
 * flagged. Without positions, or when positions cannot settle it (a
 * pipelining client), responses pair in order and every session is
 * flagged gap until the queue drains with both sides in step ("suspect").
 *
 * Chunked bodies: a gap inside a chunk's data is bridged like a
 * Content-Length one; a gap past the chunk's end puts the side in CHUNK
 * mode: bytes are skipped until a chunk-size line at a line start (the
 * message goes on, http1_chunk_resume) or a message start (the gap took
 * the body's end: the message is handed on, flagged).
 *
 * Known limits (each case is flagged or counted, never silent): a client
 * that got a final
 * answer to "Expect: 100-continue" and sends a new request instead of the
 * announced body on the same connection is parsed as body, then resynced.
 *
 * Flags: MIDSTREAM on every session of a connection picked up without its
 * handshake; GAP on the message a gap cut, on requests whose response a
 * gap took, on responses whose request it took, and (without positions)
 * on the first message found after a gap; PARSE_ERROR on the message that failed; INCOMPLETE (+
 * RESET) on a message cut by the end of the connection; NO_RESPONSE on requests never answered;
 * TUNNEL on the transaction that switched protocols.
 */
#include "capture/txn.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "capture/http1.h"
#include "capture/txn_pair.h"
#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"

#define TXN_LOG(lvl, ...) LOG_MSG(lvl, "txn", __VA_ARGS__)

#define TXN_MAX_PENDING 32	    /* requests waiting for a response */
#define TXN_HOLD_MAX	(64 * 1024) /* client bytes held after CONNECT/Upgrade */
#define TXN_CARRY_MAX	32	    /* candidate message start cut at a segment end */
#define TXN_LINE_CHECK	8192	    /* request line length checked for " HTTP/1.x" */
#define TXN_CHUNK_LINE	256	    /* chunk-size line with extensions looked for */

const struct ctr_desc txn_ctr_descs[] = {
    CTR_DESC(struct txn_stats, requests, "http requests parsed (complete or not)"),
    CTR_DESC(struct txn_stats, responses, "http final responses parsed"),
    CTR_DESC(struct txn_stats, interim_responses, "http 1xx interim responses (skipped)"),
    CTR_DESC(struct txn_stats, sessions_emitted, "transactions emitted"),
    CTR_DESC(struct txn_stats, sessions_complete,
	     "transactions emitted with request and response and no flag but tunnel"),
    CTR_DESC(struct txn_stats, no_response, "requests without a response"),
    CTR_DESC(struct txn_stats, orphan_responses, "responses without a request"),
    CTR_DESC(struct txn_stats, parse_errors, "http parse errors (either direction)"),
    CTR_DESC(struct txn_stats, tunnels, "CONNECT/Upgrade tunnels (parsing stopped)"),
    CTR_DESC(struct txn_stats, gap_sessions, "transactions touched by a tcp gap"),
    CTR_DESC(struct txn_stats, resync_bytes, "bytes skipped to find the next http message"),
    CTR_DESC(struct txn_stats, body_truncated, "bodies cut at the body cap"),
    CTR_DESC(struct txn_stats, header_too_large, "header blocks over the header cap"),
    CTR_DESC(struct txn_stats, direction_swaps, "connections whose client/server roles swapped"),
    CTR_DESC(struct txn_stats, incomplete, "messages cut by close, reset or end of capture"),
    CTR_DESC(struct txn_stats, queue_overflow, "pipelined requests beyond the pending cap"),
    CTR_DESC(struct txn_stats, tunnel_bytes, "bytes inside tunnels (not parsed)"),
    CTR_DESC(struct txn_stats, pairs_by_position,
	     "responses paired past a lost response by tcp sequence and ack positions"),
    CTR_DESC(struct txn_stats, lost_responses,
	     "requests whose response a tcp gap took (flagged gap, no_response)"),
    CTR_DESC(struct txn_stats, http09, "http/0.9 exchanges (request line without version)"),
    CTR_DESC(struct txn_stats, cruft,
	     "byte runs that began no http message (skipped, counted as parse errors)"),
    CTR_DESC(struct txn_stats, chunk_resyncs,
	     "chunked bodies continued at the next chunk-size line after a tcp gap"),
    CTR_DESC(struct txn_stats, pairing_uncertain,
	     "responses after a loss that tcp positions could not place (paired in order, "
	     "flagged gap)"),
};
const size_t txn_ctr_count = sizeof(txn_ctr_descs) / sizeof(txn_ctr_descs[0]);

enum txn_role {
	ROLE_CLIENT = 0,
	ROLE_SERVER = 1,
};

enum txn_mode {
	MODE_NORMAL = 0,
	MODE_RESYNC,
	MODE_HOLD,
	MODE_TUNNEL,
	MODE_CHUNK, /* a chunked body lost bytes: looking for its next chunk-size line */
	MODE_RAW,   /* server: a bare HTTP/0.9 body until the connection closes */
};

enum txn_look {
	LOOK_NO = 0,
	LOOK_YES,
	LOOK_MAYBE,
};

/* A message deep-copied out of a parser (one allocation). */
struct txn_copy {
	struct store_message msg;
	void *mem;
	size_t mem_len;
	int64_t ts_first, ts_last;
	uint32_t flags;
};

/* A request waiting for its response. */
struct txn_pending {
	struct txn_copy req;
	struct txn_start st;  /* where it began (positions) */
	uint64_t end;	      /* ... and ended */
	uint32_t skip_before; /* dropped (overflow) requests just before this one */
	bool tunnel;	      /* CONNECT or Upgrade request */
};

struct txn_side {
	struct http1_parser *p;
	enum txn_mode mode;
	bool in_msg;	     /* the parser has bytes of a message */
	bool at_bol;	     /* RESYNC: the next byte starts a line */
	bool hold_broken;    /* HOLD: bytes were lost, cannot replay */
	uint32_t next_flags; /* flags for the next message (e.g. GAP) */
	uint32_t msg_flags;  /* flags of the current message */
	int64_t ts_first, ts_last;
	uint8_t carry[TXN_CARRY_MAX];
	size_t carry_len;
	struct dbuf hold;
	/* Positions (txn_conn_segment): the stream offset of the next byte
	 * fed, the acknowledgement its segment carried, and whether it begins
	 * a segment; the same for the carried bytes. */
	uint64_t cur, cur_ack;
	bool cur_has_ack, at_seg;
	uint64_t carry_off, carry_ack;
	bool carry_has_ack, carry_seg;
	uint64_t hold_off;  /* where the held bytes begin */
	struct txn_start m; /* where the current message began */
	/* Bytes from lost_lo on were lost (a gap) or skipped after one: they
	 * may have held whole messages; the next message start takes this. */
	bool lost;
	bool resync_gap; /* RESYNC after a gap: a start inside a segment is flagged */
	bool has_last;
	bool hunt_fresh, hunt_cr, hunt_crlf; /* CHUNK: after a gap; bytes so far end in CR / CRLF */
	bool resumed;			     /* the message went on at a chunk-size line it found */
	bool raw_lost;			     /* RAW: bytes were lost, the stored body stops there */
	struct dbuf raw;		     /* RAW: the stored body (at most max_body) */
	uint64_t raw_len;		     /* RAW: the body's length */
	uint64_t hunt_lo;		     /* CHUNK: where the loss began */
	uint64_t lost_lo;
	uint64_t last_ack; /* the ack at the start of the last message */
};

struct txn_conn {
	const struct txn_params *prm;
	struct txn_stats *st;
	struct txn_conn_info info;
	struct txn_side side[2];
	bool decided; /* roles settled */
	bool ended;   /* txn_conn_end() was called */
	bool swapped; /* caller's client is our server */
	uint32_t conn_index;
	struct txn_pending *q; /* ring of q_cap entries, grown on demand up to
				  TXN_MAX_PENDING (most connections need one) */
	size_t q_cap, q_head, q_len;
	uint32_t skip_tail; /* dropped requests after the last queued one */
	bool early_valid;
	struct txn_copy early; /* a response that came before its request completed */
	/* A gap between messages may have taken a whole request or response, so
	 * responses may now answer other requests than the queue says: every
	 * session is flagged gap until the queue drains with both sides in step. */
	bool suspect;
	bool pos;		      /* every byte came with its position (txn_conn_segment) */
	bool pipelined;		      /* a request was sent before the previous one's response */
	bool cl_cruft;		      /* the client sent bytes that were no request: a response with
					 no request after them says so (parse_error) */
	struct txn_unpaired unpaired; /* server bytes that answered no seen request */
	size_t copies_mem;
};

static const uint8_t txn_empty[1];

/* ------------------------------------------------------------------ */
/* Message start detection                                             */
/* ------------------------------------------------------------------ */

static bool txn_is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

static bool txn_is_alpha(uint8_t c)
{
	return txn_is_upper(c) || (c >= 'a' && c <= 'z');
}

static bool txn_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* "METHOD SP target ... HTTP/1.x" at d? */
static enum txn_look txn_look_request(const uint8_t *d, size_t n)
{
	size_t i = 0;
	/* Upper-case methods, extension ones included (CCM_POST, M-SEARCH,
	 * X-MS-ENUMATTS, BASELINE-CONTROL): digits, '-' and '_' after the first
	 * letter. Other tokens are parsed in step, but not searched for. */
	while (
	    i < n && i < 20 &&
	    (txn_is_upper(d[i]) || (i > 0 && (d[i] == '-' || d[i] == '_' || txn_is_digit(d[i])))))
		i++;
	if (i == n)
		return i < 20 ? LOOK_MAYBE : LOOK_NO;
	if (i < 3 || d[i] != ' ')
		return LOOK_NO;
	i++;
	if (i == n)
		return LOOK_MAYBE;
	uint8_t c = d[i];
	if (c != '/' && c != '*' && !txn_is_alpha(c))
		return LOOK_NO;
	size_t lim = n - i < TXN_LINE_CHECK ? n : i + TXN_LINE_CHECK;
	const uint8_t *lf = memchr(d + i, '\n', lim - i);
	if (!lf)
		return n - i >= TXN_LINE_CHECK ? LOOK_NO : LOOK_YES;
	size_t end = (size_t)(lf - d);
	if (end > i && d[end - 1] == '\r')
		end--;
	static const char ver[] = " HTTP/1.";
	size_t vl = sizeof(ver) - 1;
	if (end < i + vl + 1 || memcmp(d + end - vl - 1, ver, vl) != 0 || !txn_is_digit(d[end - 1]))
		return LOOK_NO;
	return LOOK_YES;
}

/* "HTTP/1.x NNN" at d? */
static enum txn_look txn_look_response(const uint8_t *d, size_t n)
{
	static const char pat[] = "HTTP/1.# ###";
	size_t pl = sizeof(pat) - 1;
	for (size_t i = 0; i < pl; i++) {
		if (i == n)
			return LOOK_MAYBE;
		if (pat[i] == '#' ? !txn_is_digit(d[i]) : d[i] != (uint8_t)pat[i])
			return LOOK_NO;
	}
	return LOOK_YES;
}

static enum txn_look txn_look(enum txn_role role, const uint8_t *d, size_t n)
{
	return role == ROLE_CLIENT ? txn_look_request(d, n) : txn_look_response(d, n);
}

/* ------------------------------------------------------------------ */
/* Message copies                                                      */
/* ------------------------------------------------------------------ */

static void txn_copy_release(struct txn_conn *c, struct txn_copy *cp)
{
	c->copies_mem -= cp->mem_len;
	mem_free(cp->mem);
	memset(cp, 0, sizeof(*cp));
}

static struct store_slice txn_put(uint8_t **w, struct store_slice s)
{
	struct store_slice o = {txn_empty, s.len};
	if (s.len) {
		memcpy(*w, s.ptr, s.len);
		o.ptr = *w;
		*w += s.len;
	}
	return o;
}

/* Deep copy of @p m (one allocation). Returns 0 or -ENOMEM. */
static int txn_copy_make(struct txn_conn *c, struct txn_copy *cp, const struct store_message *m)
{
	size_t bytes = m->method.len + m->target.len + m->reason.len + m->body.len;
	for (size_t i = 0; i < m->n_headers; i++)
		bytes += m->headers[i].name.len + m->headers[i].value.len;
	size_t hsz = m->n_headers * sizeof(struct store_header);
	size_t total = hsz + bytes;
	uint8_t *mem = mem_alloc(total ? total : 1);
	if (!mem)
		return -ENOMEM;
	memset(cp, 0, sizeof(*cp));
	cp->msg = *m;
	struct store_header *h = (struct store_header *)(void *)mem;
	uint8_t *w = mem + hsz;
	cp->msg.method = txn_put(&w, m->method);
	cp->msg.target = txn_put(&w, m->target);
	cp->msg.reason = txn_put(&w, m->reason);
	for (size_t i = 0; i < m->n_headers; i++) {
		h[i].name = txn_put(&w, m->headers[i].name);
		h[i].value = txn_put(&w, m->headers[i].value);
	}
	cp->msg.headers = m->n_headers ? h : NULL;
	cp->msg.body = txn_put(&w, m->body);
	cp->mem = mem;
	cp->mem_len = total;
	c->copies_mem += total;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Emission                                                            */
/* ------------------------------------------------------------------ */

static void txn_emit(struct txn_conn *c, const struct store_message *req, int64_t rq_first,
		     int64_t rq_last, const struct store_message *resp, int64_t rs_first,
		     int64_t rs_last, uint32_t flags)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.ip_version = c->info.ip_version;
	s.src = c->swapped ? c->info.server : c->info.client;
	s.dst = c->swapped ? c->info.client : c->info.server;
	s.vlan = c->info.vlan;
	s.lane.ptr = txn_empty;
	s.conn_id = c->info.conn_id;
	s.conn_index = c->conn_index++;
	if (c->info.midstream)
		flags |= STORE_F_MIDSTREAM;
	if (c->suspect)
		flags |= STORE_F_GAP;
	if (req && req->present) {
		s.req = *req;
		s.ts_req_first_ns = rq_first;
		s.ts_req_last_ns = rq_last;
	} else {
		flags &= ~(uint32_t)STORE_F_NO_RESPONSE;
		if (resp && resp->present)
			flags |= STORE_F_NO_REQUEST;
	}
	if (resp && resp->present) {
		s.resp = *resp;
		s.ts_resp_first_ns = rs_first;
		s.ts_resp_last_ns = rs_last;
	} else if (req && req->present) {
		flags |= STORE_F_NO_RESPONSE;
	}
	s.flags = flags;
	c->st->sessions_emitted++;
	/* an orphan response is no transaction; a switch of protocols (CONNECT,
	 * Upgrade: its flag tunnel) loses nothing: its exchange is whole */
	if (!(flags & ~(uint32_t)STORE_F_TUNNEL) && req && req->present)
		c->st->sessions_complete++;
	if (flags & STORE_F_GAP)
		c->st->gap_sessions++;
	if (flags & STORE_F_NO_RESPONSE)
		c->st->no_response++;
	if (c->prm->emit)
		c->prm->emit(c->prm->ctx, &s);
}

/* Hand a finished request to the on_request hook (mirroring sends it early). */
static void txn_announce(struct txn_conn *c, const struct store_message *req, int64_t rq_first,
			 int64_t rq_last, uint32_t flags)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.ip_version = c->info.ip_version;
	s.src = c->swapped ? c->info.server : c->info.client;
	s.dst = c->swapped ? c->info.client : c->info.server;
	s.vlan = c->info.vlan;
	s.lane.ptr = txn_empty;
	s.conn_id = c->info.conn_id;
	s.conn_index = c->conn_index;
	s.req = *req;
	s.ts_req_first_ns = rq_first;
	s.ts_req_last_ns = rq_last;
	s.flags = flags | (c->info.midstream ? STORE_F_MIDSTREAM : 0);
	c->prm->on_request(c->prm->ctx, &s);
}

static struct txn_pending *txn_q_head(struct txn_conn *c)
{
	return c->q_len ? &c->q[c->q_head] : NULL;
}

static void txn_q_pop(struct txn_conn *c)
{
	struct txn_pending *h = &c->q[c->q_head];
	txn_copy_release(c, &h->req);
	h->skip_before = 0;
	h->tunnel = false;
	c->q_head = (c->q_head + 1) % c->q_cap;
	c->q_len--;
}

/* Room for one more pending request: grow the ring (1, 2, 4 ... TXN_MAX_PENDING
 * entries). false at the cap or without memory. */
static bool txn_q_room(struct txn_conn *c)
{
	if (c->q_len < c->q_cap)
		return true;
	if (c->q_cap >= TXN_MAX_PENDING)
		return false;
	size_t ncap = c->q_cap ? c->q_cap * 2 : 1;
	if (ncap > TXN_MAX_PENDING)
		ncap = TXN_MAX_PENDING;
	struct txn_pending *nq = mem_calloc(ncap, sizeof(*nq));
	if (!nq)
		return false;
	for (size_t i = 0; i < c->q_len; i++)
		nq[i] = c->q[(c->q_head + i) % c->q_cap];
	mem_free(c->q);
	c->q = nq;
	c->q_cap = ncap;
	c->q_head = 0;
	return true;
}

/* Tell the response parser what the next response answers. */
static void txn_server_expect(struct txn_conn *c)
{
	struct txn_pending *h = txn_q_head(c);
	if (h && h->skip_before == 0)
		http1_expect_response_to(c->side[ROLE_SERVER].p, &h->req.msg.method);
}

/* Can the waiting requests be placed by positions (txn_pair.h)? */
static bool txn_q_has_positions(struct txn_conn *c)
{
	if (!c->pos || c->skip_tail || c->early_valid)
		return false;
	for (size_t i = 0; i < c->q_len; i++) {
		const struct txn_pending *e = &c->q[(c->q_head + i) % c->q_cap];
		if (!e->st.has_ack || e->skip_before)
			return false;
	}
	return true;
}

/*
 * Which waiting request the final response starting at @p rs answers.
 * false when the queue is empty or positions are missing (then: in order).
 */
static bool txn_pick(struct txn_conn *c, const struct txn_start *rs, struct txn_pair_out *out)
{
	if (!c->q_len || !rs->has_ack || !txn_q_has_positions(c))
		return false;
	const struct txn_start *reqs[TXN_MAX_PENDING];
	for (size_t i = 0; i < c->q_len; i++)
		reqs[i] = &c->q[(c->q_head + i) % c->q_cap].st;
	struct txn_pair_in in = {.reqs = reqs,
				 .n = c->q_len,
				 .resp = rs,
				 .unpaired = c->unpaired,
				 .pipelined = c->pipelined};
	/* Client bytes lost after the newest waiting request, not its own tail. */
	const struct txn_side *cl = &c->side[ROLE_CLIENT];
	const struct txn_pending *last = &c->q[(c->q_head + c->q_len - 1) % c->q_cap];
	struct txn_start tail = {0};
	bool lost = cl->lost || (cl->in_msg && cl->m.lost);
	tail.off = cl->lost ? cl->lost_lo : cl->m.lost_lo;
	if (lost && tail.off >= last->end &&
	    (tail.off > last->end || !(last->req.flags & STORE_F_GAP)))
		in.lost_tail = &tail;
	txn_pair_pick(&in, out);
	return true;
}

/* A response begins at @p rs after a loss: tell the parser what it answers. */
static void txn_server_expect_at(struct txn_conn *c, const struct txn_start *rs)
{
	struct txn_pair_out po;
	if (!txn_pick(c, rs, &po) || po.orphan)
		return;
	const struct txn_pending *e = &c->q[(c->q_head + po.drop) % c->q_cap];
	http1_expect_response_to(c->side[ROLE_SERVER].p, &e->req.msg.method);
}

/* Server bytes [lo, hi) answered no request the capture saw. */
static void txn_unpaired(struct txn_conn *c, uint64_t lo, uint64_t hi)
{
	c->unpaired = (struct txn_unpaired){.lo = lo, .hi = hi, .valid = true};
}

/* Count what a finished message says about caps. */
static void txn_count_msg(struct txn_conn *c, const struct store_message *m)
{
	if (m->truncated)
		c->st->body_truncated++;
}

/* ------------------------------------------------------------------ */
/* Side handling                                                       */
/* ------------------------------------------------------------------ */

static void txn_side_data(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n,
			  int64_t ts);

static void txn_side_resync(struct txn_side *sd, bool at_bol)
{
	sd->mode = MODE_RESYNC;
	sd->at_bol = at_bol;
	sd->carry_len = 0;
	sd->in_msg = false;
}

/* Message done on a side: reset per-message state. */
static void txn_side_msg_done(struct txn_side *sd)
{
	sd->in_msg = false;
	sd->msg_flags = 0;
	sd->resumed = false;
}

/* A request (complete or partial, with @p flags) is ready: queue it. */
static void txn_request_ready(struct txn_conn *c, uint32_t flags, bool tunnel)
{
	struct txn_side *sd = &c->side[ROLE_CLIENT];
	const struct store_message *m = http1_message(sd->p);
	c->st->requests++;
	txn_count_msg(c, m);
	flags |= sd->msg_flags;
	c->cl_cruft = false; /* a request came after it */
	if (http1_message_http09(sd->p)) {
		flags |= STORE_F_HTTP09;
		c->st->http09++;
	}
	if (c->prm->on_request && m->present)
		txn_announce(c, m, sd->ts_first, sd->ts_last, flags);
	if (c->early_valid && c->q_len == 0 && c->skip_tail == 0) {
		/* The server answered before the request was whole. */
		txn_emit(c, m, sd->ts_first, sd->ts_last, &c->early.msg, c->early.ts_first,
			 c->early.ts_last, flags | c->early.flags);
		txn_copy_release(c, &c->early);
		c->early_valid = false;
		return;
	}
	struct txn_pending *e = NULL;
	if (txn_q_room(c)) {
		e = &c->q[(c->q_head + c->q_len) % c->q_cap];
		if (txn_copy_make(c, &e->req, m) != 0)
			e = NULL;
	}
	if (!e) {
		/* Over the cap (or out of memory): emit now, drop its response later. */
		c->st->queue_overflow++;
		txn_emit(c, m, sd->ts_first, sd->ts_last, NULL, 0, 0, flags | STORE_F_NO_RESPONSE);
		c->skip_tail++;
		return;
	}
	e->req.ts_first = sd->ts_first;
	e->req.ts_last = sd->ts_last;
	e->req.flags = flags;
	e->st = sd->m;
	e->st.explained = e->st.lost && txn_pair_lost_explained(&e->st, NULL, &c->unpaired);
	e->end = sd->cur;
	if (c->q_len) {
		/* Sent before the previous request's response arrived: the
		 * client pipelines (its ack did not move). */
		const struct txn_pending *p = &c->q[(c->q_head + c->q_len - 1) % c->q_cap];
		if (p->st.has_ack && e->st.has_ack && e->st.ack <= p->st.ack)
			c->pipelined = true;
	}
	e->skip_before = c->skip_tail;
	e->tunnel = tunnel;
	c->skip_tail = 0;
	c->q_len++;
	if (c->q_len == 1 && !c->side[ROLE_SERVER].in_msg)
		txn_server_expect(c);
}

/* Bytes inside a tunnel: offered to on_tunnel_data, else counted. */
static void txn_tunnel_out(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n,
			   int64_t ts)
{
	if (!n)
		return;
	enum txn_dir dir = role == ROLE_CLIENT ? TXN_DIR_CLIENT : TXN_DIR_SERVER;
	if (!c->prm->on_tunnel_data || !c->prm->on_tunnel_data(c->prm->ctx, dir, d, n, ts))
		c->st->tunnel_bytes += n;
}

/* Stop the client's HOLD after the response to a CONNECT/Upgrade request. */
static void txn_client_release_hold(struct txn_conn *c, bool tunnel, int64_t ts)
{
	struct txn_side *cl = &c->side[ROLE_CLIENT];
	if (cl->mode != MODE_HOLD)
		return;
	if (tunnel) {
		cl->mode = MODE_TUNNEL;
		if (!cl->hold_broken)
			txn_tunnel_out(c, ROLE_CLIENT, cl->hold.data, cl->hold.len, ts);
		dbuf_release(&cl->hold);
		cl->mode = MODE_TUNNEL;
		return;
	}
	http1_next(cl->p);
	txn_side_msg_done(cl);
	if (cl->hold_broken) {
		dbuf_release(&cl->hold);
		cl->hold_broken = false;
		cl->next_flags |= STORE_F_GAP;
		txn_side_resync(cl, true);
		return;
	}
	cl->mode = MODE_NORMAL;
	size_t len = 0;
	uint8_t *held = dbuf_detach(&cl->hold, &len);
	if (held) {
		/* Parsed where they were; their acknowledgements are gone. */
		uint64_t cur = cl->cur;
		bool has_ack = cl->cur_has_ack, seg = cl->at_seg;
		cl->cur = cl->hold_off;
		cl->cur_has_ack = false;
		cl->at_seg = false;
		txn_side_data(c, ROLE_CLIENT, held, len, ts);
		cl->cur = cur;
		cl->cur_has_ack = has_ack;
		cl->at_seg = seg;
		mem_free(held);
	}
}

/*
 * A final response (complete, partial, or tunnel) is ready: pair it with
 * the head request and emit (or keep it as early, or emit it as orphan).
 */
static void txn_response_ready(struct txn_conn *c, uint32_t flags, bool tunnel, int64_t ts)
{
	struct txn_side *sd = &c->side[ROLE_SERVER];
	const struct store_message *m = http1_message(sd->p);
	c->st->responses++;
	txn_count_msg(c, m);
	flags |= sd->msg_flags;
	struct txn_pending *h = txn_q_head(c);
	if (h && h->skip_before) {
		h->skip_before--;
		return; /* answers a request emitted at overflow */
	}
	if (!h && c->skip_tail) {
		c->skip_tail--;
		return;
	}
	const struct txn_start *rs = &sd->m;
	bool lost_before = rs->lost; /* server bytes before this response were lost */
	sd->m.lost = false;	     /* taken into account here, once */
	if (!h) {
		struct txn_side *cl = &c->side[ROLE_CLIENT];
		bool early = cl->in_msg && cl->mode == MODE_NORMAL && !c->early_valid && !tunnel;
		if (early && c->pos && rs->has_ack && cl->m.has_ack && !txn_pair_causal(&cl->m, rs))
			early = false; /* the request being received came after it */
		if (early && txn_copy_make(c, &c->early, m) == 0) {
			c->early.ts_first = sd->ts_first;
			c->early.ts_last = sd->ts_last;
			c->early.flags = flags;
			c->early_valid = true;
			return;
		}
		/* Its request may be the one a client-side gap took, or bytes
		 * that were no request: say so. */
		uint32_t lost = cl->next_flags & STORE_F_GAP;
		if (c->pos && (cl->lost || (cl->in_msg && cl->m.lost)))
			lost = STORE_F_GAP;
		if (c->cl_cruft)
			lost |= STORE_F_PARSE_ERROR;
		c->cl_cruft = false;
		c->st->orphan_responses++;
		txn_emit(c, NULL, 0, 0, m, sd->ts_first, sd->ts_last,
			 flags | (tunnel ? STORE_F_TUNNEL : 0) | lost);
		if (rs->has_ack)
			txn_unpaired(c, lost_before ? rs->lost_lo : rs->off, sd->cur);
		c->suspect = false; /* nothing waits: requests and responses are in step */
		return;
	}
	struct txn_start at = *rs;
	at.lost = lost_before;
	struct txn_pair_out po;
	if (txn_pick(c, &at, &po)) {
		/* A request the capture missed: before the oldest waiting one,
		 * or after all of them (then their responses were lost too). */
		bool missed = po.orphan && (po.drop == c->q_len ? true : h->st.lost);
		for (size_t i = 0; i < po.drop; i++) {
			/* Its response was among the lost bytes. */
			h = txn_q_head(c);
			c->st->lost_responses++;
			txn_emit(c, &h->req.msg, h->req.ts_first, h->req.ts_last, NULL, 0, 0,
				 h->req.flags | STORE_F_GAP | STORE_F_NO_RESPONSE);
			txn_q_pop(c);
		}
		if (po.by_position)
			c->st->pairs_by_position++;
		if (po.orphan) {
			c->st->orphan_responses++;
			txn_emit(c, NULL, 0, 0, m, sd->ts_first, sd->ts_last,
				 flags | (tunnel ? STORE_F_TUNNEL : 0) |
				     (missed ? STORE_F_GAP : 0));
			txn_unpaired(c, lost_before ? at.lost_lo : at.off, sd->cur);
			return;
		}
		h = txn_q_head(c);
		if (po.uncertain) {
			c->st->pairing_uncertain++;
			flags |= STORE_F_GAP;
			c->suspect = true; /* until every request is answered */
		} else if (lost_before && !po.drop) {
			/* The lost server bytes answered no waiting request. */
			txn_unpaired(c, at.lost_lo, at.off);
		}
	}
	bool was_tunnel_req = h->tunnel;
	if (tunnel)
		flags |= STORE_F_TUNNEL;
	txn_emit(c, &h->req.msg, h->req.ts_first, h->req.ts_last, m, sd->ts_first, sd->ts_last,
		 flags | h->req.flags);
	txn_q_pop(c);
	if (!c->q_len && !c->early_valid)
		c->suspect = false; /* every request answered: back in step */
	if (was_tunnel_req || tunnel)
		txn_client_release_hold(c, tunnel, ts);
}

/* Both sides stop parsing: the connection switched protocols. */
static void txn_enter_tunnel(struct txn_conn *c, int64_t ts)
{
	c->st->tunnels++;
	for (int r = 0; r < 2; r++) {
		struct txn_side *sd = &c->side[r];
		bool held = sd->mode == MODE_HOLD && !sd->hold_broken;
		sd->mode = MODE_TUNNEL;
		sd->carry_len = 0;
		if (held)
			txn_tunnel_out(c, (enum txn_role)r, sd->hold.data, sd->hold.len, ts);
		dbuf_release(&sd->hold);
	}
}

/* After an error or cut on @p role: drop the parser state, look for the next message. */
static void txn_side_after_error(struct txn_conn *c, enum txn_role role)
{
	struct txn_side *sd = &c->side[role];
	http1_reset(sd->p);
	txn_side_msg_done(sd);
	txn_side_resync(sd, false);
	if (role == ROLE_SERVER)
		txn_server_expect(c);
}

static void txn_on_error(struct txn_conn *c, enum txn_role role, int64_t ts)
{
	struct txn_side *sd = &c->side[role];
	c->st->parse_errors++;
	if (http1_errno(sd->p) == -E2BIG)
		c->st->header_too_large++;
	TXN_LOG(LOG_DEBUG, "conn %llu %s: parse error: %s", (unsigned long long)c->info.conn_id,
		role == ROLE_CLIENT ? "request" : "response", http1_error(sd->p));
	const struct store_message *m = http1_message(sd->p);
	bool cruft = role == ROLE_CLIENT ? !m->method.len && !m->target.len
					 : !m->status && !m->version_major && !m->version_minor;
	if (cruft) {
		/* Not even the start of a message (a TLS hello to an HTTP port,
		 * a banner): no transaction of its own. A response after it on
		 * this side, or answering it, is flagged parse_error. */
		c->st->cruft++;
		if (role == ROLE_CLIENT)
			c->cl_cruft = true;
		else
			sd->next_flags |= STORE_F_PARSE_ERROR;
	} else if (m->present) {
		if (role == ROLE_CLIENT)
			txn_request_ready(c, STORE_F_PARSE_ERROR, false);
		else
			txn_response_ready(c, STORE_F_PARSE_ERROR, false, ts);
	}
	txn_side_after_error(c, role);
}

/* The parser of @p role completed a message: hand it on, get ready for the next. */
static void txn_side_complete(struct txn_conn *c, enum txn_role role, int64_t ts)
{
	struct txn_side *sd = &c->side[role];
	if (role == ROLE_CLIENT) {
		txn_request_ready(c, 0, false);
		http1_next(sd->p);
		txn_side_msg_done(sd);
	} else if (http1_message_interim(sd->p)) {
		c->st->interim_responses++;
		if (sd->m.lost) { /* the loss before it is the final response's to judge */
			sd->lost = true;
			sd->lost_lo = sd->m.lost_lo;
		}
		http1_next(sd->p);
		txn_side_msg_done(sd);
	} else {
		txn_response_ready(c, 0, false, ts);
		http1_next(sd->p);
		txn_side_msg_done(sd);
		txn_server_expect(c);
	}
}

/* Where a message beginning at the side's next byte begins. */
static void txn_side_start_here(const struct txn_conn *c, const struct txn_side *sd,
				struct txn_start *m)
{
	*m = (struct txn_start){
	    .off = sd->cur,
	    .ack = sd->cur_ack,
	    .lost_lo = sd->lost_lo,
	    .prev_ack = sd->last_ack,
	    .has_ack = c->pos && sd->cur_has_ack,
	    .lost = sd->lost,
	    .has_prev = sd->has_last,
	    .boundary = sd->at_seg,
	};
}

/* One http1_feed step in NORMAL mode; returns bytes consumed. */
static size_t txn_side_step(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n,
			    int64_t ts)
{
	struct txn_side *sd = &c->side[role];
	size_t used = 0;
	struct txn_start m;
	if (!sd->in_msg) {
		txn_side_start_here(c, sd, &m);
		if (role == ROLE_SERVER && (m.lost || c->side[ROLE_CLIENT].lost))
			txn_server_expect_at(c, &m);
	}
	enum http1_status st = http1_feed(sd->p, d, n, &used);
	sd->cur += used;
	if (used)
		sd->at_seg = false;
	if (used && !sd->in_msg) {
		sd->in_msg = true;
		sd->ts_first = ts;
		sd->msg_flags = sd->next_flags;
		sd->next_flags = 0;
		sd->m = m;
		sd->lost = false;
		if (sd->resync_gap && !m.boundary)
			sd->msg_flags |= STORE_F_GAP; /* found inside a segment: not sure */
		sd->resync_gap = false;
		if (m.has_ack) {
			sd->last_ack = m.ack;
			sd->has_last = true;
		}
		if (role == ROLE_CLIENT && c->unpaired.valid && m.has_ack && !m.lost &&
		    m.ack >= c->unpaired.hi)
			c->unpaired.valid = false; /* can no longer explain a later loss */
	}
	if (used)
		sd->ts_last = ts;
	switch (st) {
	case HTTP1_NEED_MORE:
		return n; /* all consumed */
	case HTTP1_COMPLETE:
		if (!sd->in_msg) {
			/* Completed without new bytes (cannot happen with
			 * llhttp); avoid emitting with stale timestamps. */
			sd->ts_first = sd->ts_last = ts;
		}
		txn_side_complete(c, role, ts);
		return used;
	case HTTP1_TUNNEL:
		if (role == ROLE_CLIENT) {
			txn_request_ready(c, 0, true);
			sd->mode = MODE_HOLD;
			sd->hold_broken = false;
			sd->hold_off = sd->cur;
			dbuf_init(&sd->hold, TXN_HOLD_MAX);
			/* in_msg stays set until the response decides */
		} else {
			txn_response_ready(c, 0, true, ts);
			txn_enter_tunnel(c, ts);
		}
		return used;
	case HTTP1_ERROR:
		txn_on_error(c, role, ts);
		return used; /* the side is in RESYNC now: no loop on 0 */
	}
	return n;
}

/* Methods a request found in the middle of a line may start with. */
static const char *const txn_mid_methods[] = {
    "GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
};

/* Does the complete line [d, d + n) end in " HTTP/1.x" (CR stripped)? */
static bool txn_line_has_version(const uint8_t *d, size_t n)
{
	if (n && d[n - 1] == '\r')
		n--;
	return n >= 9 && memcmp(d + n - 9, " HTTP/1.", 8) == 0 && txn_is_digit(d[n - 1]);
}

/*
 * Client RESYNC: a request starts at a line start, or in the middle of a
 * complete line that ends in " HTTP/1.x" (a request right after a body
 * tail without newline) at a known method. Returns the offset of the
 * start, or n when none (then *carry is set for a candidate cut at the end).
 */
static size_t txn_scan_client(struct txn_side *sd, const uint8_t *d, size_t n, bool *carry)
{
	size_t i = 0;
	*carry = false;
	while (i < n) {
		if (sd->at_bol) {
			enum txn_look lk = txn_look_request(d + i, n - i);
			if (lk == LOOK_YES)
				return i;
			if (lk == LOOK_MAYBE && n - i <= TXN_CARRY_MAX) {
				*carry = true;
				return i;
			}
			sd->at_bol = false;
		}
		const uint8_t *lf = memchr(d + i, '\n', n - i);
		if (!lf)
			break;
		size_t le = (size_t)(lf - d);
		if (txn_line_has_version(d + i, le - i)) {
			size_t best = le;
			for (size_t m = 0; m < sizeof(txn_mid_methods) / sizeof(txn_mid_methods[0]);
			     m++) {
				size_t ml = strlen(txn_mid_methods[m]);
				const uint8_t *f = memmem(d + i, le - i, txn_mid_methods[m], ml);
				while (f && (size_t)(f - d) < best) {
					size_t k = (size_t)(f - d);
					if ((k == 0 || !txn_is_upper(d[k - 1])) &&
					    txn_look_request(d + k, n - k) == LOOK_YES) {
						best = k;
						break;
					}
					f = memmem(f + 1, (size_t)(d + le - f - 1),
						   txn_mid_methods[m], ml);
				}
			}
			if (best < le)
				return best;
		}
		i = le + 1;
		sd->at_bol = true;
	}
	return n;
}

/*
 * Server RESYNC: "HTTP/1.x NNN" is distinctive enough to be taken anywhere
 * (a response often follows a body tail that has no newline).
 */
static size_t txn_scan_server(const uint8_t *d, size_t n, bool *carry)
{
	size_t i = 0;
	*carry = false;
	while (i < n) {
		const uint8_t *h = memchr(d + i, 'H', n - i);
		if (!h)
			break;
		size_t k = (size_t)(h - d);
		enum txn_look lk = txn_look_response(d + k, n - k);
		if (lk == LOOK_YES)
			return k;
		if (lk == LOOK_MAYBE) {
			*carry = true;
			return k;
		}
		i = k + 1;
	}
	return n;
}

/*
 * RESYNC: skip to the next message start. Returns the bytes of @p d
 * examined (skipped, or kept in the carry); the side is NORMAL when a
 * start was found at the returned offset.
 */
static size_t txn_side_scan(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n)
{
	struct txn_side *sd = &c->side[role];
	bool carry = false;
	size_t k =
	    role == ROLE_CLIENT ? txn_scan_client(sd, d, n, &carry) : txn_scan_server(d, n, &carry);
	if (k == n) {
		c->st->resync_bytes += n;
		return n;
	}
	c->st->resync_bytes += k;
	if (carry) {
		memcpy(sd->carry, d + k, n - k);
		sd->carry_len = n - k;
		sd->carry_off = sd->cur + k;
		sd->carry_ack = sd->cur_ack;
		sd->carry_has_ack = sd->cur_has_ack;
		sd->carry_seg = sd->at_seg && k == 0;
		return n;
	}
	sd->mode = MODE_NORMAL;
	return k;
}

/*
 * The side lost bytes from @p lo on: with positions the next message found
 * carries the loss (txn_pair.h decides what it means for the pairing);
 * without, the next message is flagged and every session after it until
 * the connection is back in step.
 */
static void txn_side_lose(struct txn_conn *c, struct txn_side *sd, uint64_t lo)
{
	if (!c->pos) {
		sd->next_flags |= STORE_F_GAP;
		c->suspect = true;
		return;
	}
	if (!sd->lost) {
		sd->lost = true;
		sd->lost_lo = lo;
	}
	sd->resync_gap = true;
}

/* The side's position moves on by @p n bytes (not parsed as a message). */
static void txn_side_skip(struct txn_side *sd, size_t n)
{
	sd->cur += n;
	if (n)
		sd->at_seg = false;
}

/* Is the oldest waiting request an HTTP/0.9 one (answered by a bare body)? */
static bool txn_head_http09(struct txn_conn *c)
{
	const struct txn_pending *h = txn_q_head(c);
	return h && !h->skip_before && (h->req.flags & STORE_F_HTTP09);
}

/* RAW mode: the bare body of an HTTP/0.9 answer grows. */
static void txn_raw_add(struct txn_side *sd, const uint8_t *d, size_t n, int64_t ts)
{
	sd->raw_len += n;
	sd->ts_last = ts;
	size_t room = sd->raw.max - sd->raw.len;
	if (!sd->raw_lost && room && dbuf_append(&sd->raw, d, n < room ? n : room) != 0)
		sd->raw_lost = true; /* no memory: keep counting */
}

/* The connection ended an HTTP/0.9 answer: pair it with its request. */
static void txn_raw_done(struct txn_conn *c, uint32_t cut)
{
	struct txn_side *sv = &c->side[ROLE_SERVER];
	struct txn_pending *h = txn_q_head(c);
	struct store_message r = {
	    .present = true,
	    .method = {txn_empty, 0},
	    .target = {txn_empty, 0},
	    .reason = {txn_empty, 0},
	    .version_minor = 9,
	    .body = {sv->raw.len ? sv->raw.data : txn_empty, sv->raw.len},
	    .body_len = sv->raw_len,
	    .truncated = sv->raw_len > sv->raw.len,
	};
	c->st->responses++;
	txn_count_msg(c, &r);
	uint32_t flags = sv->msg_flags | STORE_F_HTTP09 | cut;
	if (h) {
		txn_emit(c, &h->req.msg, h->req.ts_first, h->req.ts_last, &r, sv->ts_first,
			 sv->ts_last, flags | h->req.flags);
		txn_q_pop(c);
	} else {
		c->st->orphan_responses++;
		txn_emit(c, NULL, 0, 0, &r, sv->ts_first, sv->ts_last, flags);
	}
	dbuf_release(&sv->raw);
	txn_side_msg_done(sv);
}

/*
 * A chunk-size line at d (RFC 9112 §7.1: HEXDIG+ [ext] CRLF, at most
 * TXN_CHUNK_LINE bytes)? When the chunk's data and its CRLF are at hand
 * too, the CRLF must be where the size says.
 */
static bool txn_chunk_line(const uint8_t *d, size_t n)
{
	size_t i = 0;
	uint64_t size = 0;
	while (i < n && i < 16 && isxdigit(d[i])) {
		size =
		    size * 16 + (uint64_t)(isdigit(d[i]) ? d[i] - '0' : (d[i] | 0x20) - 'a' + 10);
		i++;
	}
	if (!i || i == n)
		return false;
	while (i < n && i < TXN_CHUNK_LINE && d[i] != '\r' && d[i] != '\n') {
		if (d[i] != ';' && d[i] != ' ' && d[i] != '\t' && d[i] < 0x21)
			return false; /* control bytes: no chunk extension */
		if (i == 0 || (d[i - 1] != ';' && isxdigit(d[i - 1]) && d[i] != ';' &&
			       d[i] != ' ' && d[i] != '\t'))
			return false; /* after the size only an extension may follow */
		while (i < n && i < TXN_CHUNK_LINE && d[i] != '\r' && d[i] != '\n')
			i++;
	}
	if (i + 1 >= n || d[i] != '\r' || d[i + 1] != '\n')
		return false;
	i += 2;
	if (size && size <= n - i && n - i - size >= 2)
		return d[i + size] == '\r' && d[i + size + 1] == '\n';
	return true;
}

/*
 * CHUNK mode: the offset in d where the chunked body goes on (a chunk-size
 * line at a line start: *chunk) or where a new message of this side begins
 * (the lost bytes held the body's end); n when neither is in d.
 */
static size_t txn_hunt(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n,
		       bool *chunk)
{
	struct txn_side *sd = &c->side[role];
	size_t i = 0;
	bool line = sd->hunt_fresh || sd->hunt_crlf;
	while (i < n) {
		if (line || (i == 1 && sd->hunt_cr && d[0] == '\n')) {
			bool msg = role == ROLE_SERVER ? txn_look_response(d + i, n - i) == LOOK_YES
						       : txn_look_request(d + i, n - i) == LOOK_YES;
			if (msg || txn_chunk_line(d + i, n - i)) {
				*chunk = !msg;
				return i;
			}
		}
		const uint8_t *lf = memchr(d + i, '\n', n - i);
		if (!lf)
			break;
		size_t k = (size_t)(lf - d);
		line = k > 0 && d[k - 1] == '\r';
		i = k + 1;
	}
	sd->hunt_fresh = false;
	sd->hunt_crlf =
	    n >= 2 ? d[n - 2] == '\r' && d[n - 1] == '\n' : (n == 1 && sd->hunt_cr && d[0] == '\n');
	sd->hunt_cr = n && d[n - 1] == '\r';
	return n;
}

/* CHUNK mode found no chunk-size line before a new message: the lost
 * bytes held the body's end (and maybe whole messages). */
static void txn_chunk_give_up(struct txn_conn *c, enum txn_role role, int64_t ts)
{
	struct txn_side *sd = &c->side[role];
	if (role == ROLE_CLIENT)
		txn_request_ready(c, STORE_F_GAP, false);
	else
		txn_response_ready(c, STORE_F_GAP, false, ts);
	txn_side_lose(c, sd, sd->hunt_lo);
	http1_reset(sd->p);
	txn_side_msg_done(sd);
	sd->mode = MODE_NORMAL;
	if (role == ROLE_SERVER)
		txn_server_expect(c);
}

static void txn_side_data(struct txn_conn *c, enum txn_role role, const uint8_t *d, size_t n,
			  int64_t ts)
{
	struct txn_side *sd = &c->side[role];
	while (n) {
		switch (sd->mode) {
		case MODE_TUNNEL:
			txn_side_skip(sd, n);
			txn_tunnel_out(c, role, d, n, ts);
			return;
		case MODE_HOLD:
			txn_side_skip(sd, n);
			if (!sd->hold_broken && dbuf_append(&sd->hold, d, n) != 0) {
				/* Too much before the answer: lose it, resync later. */
				c->st->resync_bytes += sd->hold.len + n;
				dbuf_release(&sd->hold);
				sd->hold_broken = true;
			} else if (sd->hold_broken) {
				c->st->resync_bytes += n;
			}
			return;
		case MODE_RESYNC:
			if (sd->carry_len) {
				uint8_t tmp[TXN_CARRY_MAX + 96];
				size_t k = n < 96 ? n : 96;
				memcpy(tmp, sd->carry, sd->carry_len);
				memcpy(tmp + sd->carry_len, d, k);
				enum txn_look lk = txn_look(role, tmp, sd->carry_len + k);
				if (lk == LOOK_MAYBE && k == n &&
				    sd->carry_len + n <= TXN_CARRY_MAX) {
					memcpy(sd->carry + sd->carry_len, d, n);
					sd->carry_len += n;
					txn_side_skip(sd, n);
					return;
				}
				if (lk == LOOK_YES) {
					/* Parse the carried bytes where they were, then
					 * go on with these. */
					uint8_t local[TXN_CARRY_MAX];
					size_t ln = sd->carry_len;
					uint64_t cur = sd->cur, ack = sd->cur_ack;
					bool has_ack = sd->cur_has_ack, seg = sd->at_seg;
					memcpy(local, sd->carry, ln);
					sd->carry_len = 0;
					sd->mode = MODE_NORMAL;
					sd->cur = sd->carry_off;
					sd->cur_ack = sd->carry_ack;
					sd->cur_has_ack = sd->carry_has_ack;
					sd->at_seg = sd->carry_seg;
					txn_side_data(c, role, local, ln, ts);
					sd->cur = cur;
					sd->cur_ack = ack;
					sd->cur_has_ack = has_ack;
					sd->at_seg = seg;
					continue;
				}
				c->st->resync_bytes += sd->carry_len;
				sd->carry_len = 0;
				sd->at_bol = false;
			}
			{
				size_t k = txn_side_scan(c, role, d, n);
				txn_side_skip(sd, k);
				d += k;
				n -= k;
			}
			break;
		case MODE_CHUNK: {
			bool chunk = false;
			size_t k = txn_hunt(c, role, d, n, &chunk);
			c->st->resync_bytes += k;
			txn_side_skip(sd, k);
			d += k;
			n -= k;
			if (!n)
				break;
			sd->ts_last = ts;
			if (chunk && http1_chunk_resume(sd->p) == 0) {
				c->st->chunk_resyncs++;
				sd->mode = MODE_NORMAL; /* the same message goes on */
				sd->resumed = true;
			} else {
				txn_chunk_give_up(c, role, ts);
			}
			break;
		}
		case MODE_RAW:
			txn_raw_add(sd, d, n, ts);
			txn_side_skip(sd, n);
			return;
		case MODE_NORMAL: {
			if (role == ROLE_SERVER && !sd->in_msg && txn_head_http09(c) &&
			    txn_look_response(d, n) != LOOK_YES) {
				/* The answer to an HTTP/0.9 request: a bare body
				 * until the server closes (RFC 1945 §4.1). */
				txn_side_start_here(c, sd, &sd->m);
				sd->in_msg = true;
				sd->ts_first = ts;
				sd->msg_flags = sd->next_flags;
				sd->next_flags = 0;
				sd->mode = MODE_RAW;
				sd->raw_len = 0;
				sd->raw_lost = false;
				dbuf_init(&sd->raw,
					  c->prm->max_body ? c->prm->max_body : 1024 * 1024);
				break;
			}
			if (sd->resumed && sd->in_msg && sd->at_seg &&
			    txn_look(role, d, n) == LOOK_YES) {
				/* A message begins a segment while the resumed body
				 * still wants bytes: the size line it went on at was
				 * data, the body ended in the lost bytes. */
				txn_chunk_give_up(c, role, ts);
				break;
			}
			size_t k = txn_side_step(c, role, d, n, ts); /* moves sd->cur */
			d += k;
			n -= k;
			break;
		}
		}
	}
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

struct txn_conn *txn_conn_create(const struct txn_params *p, const struct txn_conn_info *info)
{
	struct txn_conn *c = mem_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->prm = p;
	c->st = p->stats;
	c->info = *info;
	c->pos = true; /* until bytes come without positions */
	for (int r = 0; r < 2; r++) {
		struct http1_params hp = {
		    .type = r == ROLE_CLIENT ? HTTP1_REQUEST : HTTP1_RESPONSE,
		    .max_header_bytes = p->max_header_bytes,
		    .max_body = p->max_body,
		};
		c->side[r].p = http1_parser_create(&hp);
		if (!c->side[r].p) {
			txn_conn_free(c);
			return NULL;
		}
		dbuf_init(&c->side[r].hold, TXN_HOLD_MAX);
		if (info->midstream)
			txn_side_resync(&c->side[r], true);
	}
	return c;
}

void txn_conn_free(struct txn_conn *c)
{
	if (!c)
		return;
	while (c->q_len)
		txn_q_pop(c);
	if (c->early_valid)
		txn_copy_release(c, &c->early);
	for (int r = 0; r < 2; r++) {
		http1_parser_free(c->side[r].p);
		dbuf_release(&c->side[r].hold);
		dbuf_release(&c->side[r].raw);
	}
	mem_free(c->q);
	mem_free(c);
}

/* Settle client/server roles from the first bytes seen. */
static void txn_swap(struct txn_conn *c)
{
	c->swapped = true;
	c->st->direction_swaps++;
	TXN_LOG(LOG_DEBUG, "conn %llu: client and server roles swapped by content",
		(unsigned long long)c->info.conn_id);
}

/* Does [d, d + n) hold a request start (line start or after a body tail)? */
static bool txn_has_request(const uint8_t *d, size_t n)
{
	struct txn_side probe;
	memset(&probe, 0, sizeof(probe));
	probe.at_bol = true;
	bool carry;
	return txn_scan_client(&probe, d, n, &carry) < n && !carry;
}

static bool txn_has_response(const uint8_t *d, size_t n)
{
	bool carry;
	return txn_scan_server(d, n, &carry) < n && !carry;
}

/*
 * Settle client/server roles from content. A connection with its
 * handshake starts with a message: its first bytes decide. A midstream
 * pickup may start inside a body: roles stay open (both sides resync,
 * nothing parsed) until a chunk holds a message start of either kind.
 */
static void txn_decide(struct txn_conn *c, enum txn_dir dir, const uint8_t *d, size_t n)
{
	bool as_client = dir == TXN_DIR_CLIENT;
	if (!c->info.midstream) {
		c->decided = true;
		bool swap = as_client ? txn_look_response(d, n) == LOOK_YES
				      : txn_look_request(d, n) == LOOK_YES &&
					    txn_look_response(d, n) != LOOK_YES;
		if (swap)
			txn_swap(c);
		return;
	}
	if (c->side[0].mode != MODE_RESYNC || c->side[1].mode != MODE_RESYNC) {
		c->decided = true; /* a side already found its messages */
		return;
	}
	bool fits = as_client ? txn_has_request(d, n) : txn_has_response(d, n);
	bool other = !fits && (as_client ? txn_has_response(d, n) : txn_has_request(d, n));
	if (!fits && !other)
		return; /* still nothing to go by */
	c->decided = true;
	if (other) {
		txn_swap(c);
		for (int r = 0; r < 2; r++) {
			c->st->resync_bytes += c->side[r].carry_len;
			txn_side_resync(&c->side[r], true);
		}
	}
}

static enum txn_role txn_role_of(const struct txn_conn *c, enum txn_dir dir)
{
	bool client = dir == TXN_DIR_CLIENT;
	if (c->swapped)
		client = !client;
	return client ? ROLE_CLIENT : ROLE_SERVER;
}

void txn_conn_segment(struct txn_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		      int64_t ts_ns, const struct txn_pos *pos)
{
	if (!len || c->ended)
		return;
	if (!c->decided)
		txn_decide(c, dir, data, len);
	struct txn_side *sd = &c->side[txn_role_of(c, dir)];
	if (pos) {
		sd->cur = pos->off;
		sd->cur_ack = pos->ack;
		sd->cur_has_ack = pos->has_ack;
	} else {
		c->pos = false; /* pair by order alone from now on */
		sd->cur_has_ack = false;
	}
	sd->at_seg = true;
	txn_side_data(c, txn_role_of(c, dir), data, len, ts_ns);
}

void txn_conn_data(struct txn_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		   int64_t ts_ns)
{
	txn_conn_segment(c, dir, data, len, ts_ns, NULL);
}

void txn_conn_gap(struct txn_conn *c, enum txn_dir dir, uint64_t len, int64_t ts_ns)
{
	if (c->ended)
		return;
	enum txn_role role = txn_role_of(c, dir);
	struct txn_side *sd = &c->side[role];
	uint64_t at = sd->cur;
	sd->cur += len;
	sd->at_seg = true; /* what comes next begins a segment */
	switch (sd->mode) {
	case MODE_TUNNEL:
		return;
	case MODE_HOLD:
		c->st->resync_bytes += sd->hold.len;
		dbuf_release(&sd->hold);
		sd->hold_broken = true;
		return;
	case MODE_RESYNC:
		c->st->resync_bytes += sd->carry_len;
		sd->carry_len = 0;
		sd->at_bol = true;
		txn_side_lose(c, sd, at);
		return;
	case MODE_CHUNK:
		sd->hunt_fresh = true; /* the next bytes may start anywhere */
		sd->hunt_cr = sd->hunt_crlf = false;
		return;
	case MODE_RAW: /* a close-delimited body: the bytes count, the rest goes on */
		sd->raw_len += len;
		sd->raw_lost = true;
		sd->msg_flags |= STORE_F_GAP;
		sd->ts_last = ts_ns;
		return;
	case MODE_NORMAL:
		break;
	}
	if (sd->in_msg) {
		/* Inside a body of known end: count the bytes as body, go on. */
		enum http1_status st = http1_gap(sd->p, len);
		if (st == HTTP1_NEED_MORE || st == HTTP1_COMPLETE) {
			sd->msg_flags |= STORE_F_GAP;
			sd->ts_last = ts_ns;
			if (st == HTTP1_COMPLETE)
				txn_side_complete(c, role, ts_ns);
			return;
		}
	}
	if (sd->in_msg && http1_in_chunked_body(sd->p)) {
		/* A chunked body lost bytes past its current chunk: look for the
		 * next chunk-size line and go on with the same message. */
		http1_body_lost(sd->p);
		sd->msg_flags |= STORE_F_GAP;
		sd->ts_last = ts_ns;
		sd->mode = MODE_CHUNK;
		sd->hunt_fresh = true;
		sd->hunt_cr = sd->hunt_crlf = false;
		sd->hunt_lo = at;
		return;
	}
	if (sd->in_msg && http1_message(sd->p)->present) {
		/* The message lost bytes: hand it on as it is, flagged. */
		sd->ts_last = ts_ns;
		if (role == ROLE_CLIENT)
			txn_request_ready(c, STORE_F_GAP, false);
		else
			txn_response_ready(c, STORE_F_GAP, false, ts_ns);
	}
	txn_side_lose(c, sd, at); /* whole messages may be gone too */
	http1_reset(sd->p);
	txn_side_msg_done(sd);
	txn_side_resync(sd, true);
	if (role == ROLE_SERVER)
		txn_server_expect(c);
}

void txn_conn_end(struct txn_conn *c, enum txn_end how, int64_t ts_ns)
{
	uint32_t cut = STORE_F_INCOMPLETE | (how == TXN_END_RST ? STORE_F_RESET : 0);
	uint32_t rst = how == TXN_END_RST ? STORE_F_RESET : 0;

	/* Client first: a request cut short is still waiting for its response. */
	struct txn_side *cl = &c->side[ROLE_CLIENT];
	if (c->ended)
		return;
	c->ended = true;
	if ((cl->mode == MODE_NORMAL || cl->mode == MODE_CHUNK) && cl->in_msg &&
	    http1_message(cl->p)->present) {
		c->st->incomplete++;
		txn_request_ready(c, cut, false);
		http1_reset(cl->p);
		txn_side_msg_done(cl);
	}

	struct txn_side *sv = &c->side[ROLE_SERVER];
	if (sv->mode == MODE_RAW) /* the close ends an HTTP/0.9 answer; a reset cuts it */
		txn_raw_done(c, how == TXN_END_FIN ? 0 : cut);
	if ((sv->mode == MODE_NORMAL || sv->mode == MODE_CHUNK) && sv->in_msg &&
	    http1_message(sv->p)->present) {
		enum http1_status st = HTTP1_ERROR;
		if (how == TXN_END_FIN)
			st = http1_finish(sv->p); /* close-delimited body ends here */
		if (st == HTTP1_COMPLETE) {
			if (http1_message_interim(sv->p))
				c->st->interim_responses++;
			else
				txn_response_ready(c, 0, false, ts_ns);
		} else {
			c->st->incomplete++;
			txn_response_ready(c, cut, false, ts_ns);
		}
		http1_reset(sv->p);
		txn_side_msg_done(sv);
	}

	if (c->early_valid) {
		c->st->orphan_responses++;
		txn_emit(c, NULL, 0, 0, &c->early.msg, c->early.ts_first, c->early.ts_last,
			 c->early.flags | rst);
		txn_copy_release(c, &c->early);
		c->early_valid = false;
	}
	/* Server bytes lost after the last response may have held the answers. */
	uint32_t lost = c->pos && sv->lost ? STORE_F_GAP : 0;
	while (c->q_len) {
		struct txn_pending *h = txn_q_head(c);
		if (lost)
			c->st->lost_responses++;
		txn_emit(c, &h->req.msg, h->req.ts_first, h->req.ts_last, NULL, 0, 0,
			 h->req.flags | STORE_F_NO_RESPONSE | rst | lost);
		txn_q_pop(c);
	}
	c->skip_tail = 0;
	for (int r = 0; r < 2; r++) {
		c->side[r].mode = MODE_TUNNEL; /* nothing more is parsed */
		dbuf_release(&c->side[r].hold);
	}
}

bool txn_conn_sleep(struct txn_conn *c, struct txn_dormant *d)
{
	if (c->q_len || c->early_valid || c->skip_tail || c->ended || c->suspect ||
	    c->unpaired.valid)
		return false;
	for (int r = 0; r < 2; r++) {
		const struct txn_side *sd = &c->side[r];
		if (sd->mode != MODE_NORMAL || sd->in_msg || sd->carry_len || sd->hold.len ||
		    sd->next_flags || sd->msg_flags || sd->lost || sd->resync_gap)
			return false;
	}
	*d = (struct txn_dormant){.info = c->info,
				  .conn_index = c->conn_index,
				  .cur = {c->side[0].cur, c->side[1].cur},
				  .decided = c->decided,
				  .swapped = c->swapped,
				  .no_positions = !c->pos};
	txn_conn_free(c);
	return true;
}

struct txn_conn *txn_conn_wake(const struct txn_params *p, const struct txn_dormant *d)
{
	struct txn_conn *c = txn_conn_create(p, &d->info);
	if (!c)
		return NULL;
	for (int r = 0; r < 2; r++)
		c->side[r].mode = MODE_NORMAL; /* it slept between messages */
	c->conn_index = d->conn_index;
	c->decided = d->decided;
	c->swapped = d->swapped;
	c->pos = !d->no_positions;
	for (int r = 0; r < 2; r++)
		c->side[r].cur = d->cur[r];
	return c;
}

const struct txn_conn_info *txn_conn_get_info(const struct txn_conn *c)
{
	return &c->info;
}

size_t txn_conn_mem(const struct txn_conn *c)
{
	return sizeof(*c) + c->q_cap * sizeof(*c->q) + c->copies_mem +
	       http1_parser_mem(c->side[0].p) + http1_parser_mem(c->side[1].p) +
	       c->side[0].hold.cap + c->side[1].hold.cap + c->side[1].raw.cap;
}
