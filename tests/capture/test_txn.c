/* SPDX-License-Identifier: MIT */
/*
 * test_txn - unit tests of the HTTP/1.x transaction tracker
 * (capture/txn.h): pipelining, keep-alive, 100-continue, HEAD, 304,
 * chunked, close-delimited responses, RST mid-body, unanswered requests,
 * gaps with resynchronisation, response-first direction swap, CONNECT
 * tunnels, pending-queue overflow, timestamps and emission counts; with
 * TCP positions (txn_conn_segment), pairing after lost requests and
 * responses (txn_pair.h) and its limits (pipelining, unsolicited answers).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture/txn.h"
#include "capture/txn_pair.h"
#include "common/mem.h"
#include "common/dbuf.h"
#include "tests/tap.h"

struct rec {
	struct dbuf log;
	int n;
	int64_t last_rq_first, last_rq_last, last_rs_first, last_rs_last;
	uint32_t last_index;
	struct store_endpoint last_src;
};

static void on_emit(void *ctx, const struct store_session *s)
{
	struct rec *r = ctx;
	r->n++;
	dbuf_printf(&r->log, "#%u ", s->conn_index);
	if (s->req.present)
		dbuf_printf(&r->log, "%.*s %.*s body=%llu", (int)s->req.method.len,
			    (const char *)s->req.method.ptr, (int)s->req.target.len,
			    (const char *)s->req.target.ptr, (unsigned long long)s->req.body_len);
	else
		dbuf_puts(&r->log, "-");
	if (s->resp.present)
		dbuf_printf(&r->log, " -> %u body=%llu", s->resp.status,
			    (unsigned long long)s->resp.body_len);
	else
		dbuf_puts(&r->log, " -> -");
	for (unsigned b = 0; b < STORE_F_COUNT; b++)
		if (s->flags & (1u << b))
			dbuf_printf(&r->log, " %s", store_flag_name(1u << b));
	dbuf_puts(&r->log, "\n");
	r->last_rq_first = s->ts_req_first_ns;
	r->last_rq_last = s->ts_req_last_ns;
	r->last_rs_first = s->ts_resp_first_ns;
	r->last_rs_last = s->ts_resp_last_ns;
	r->last_index = s->conn_index;
	r->last_src = s->src;
}

struct fixture {
	struct rec rec;
	struct txn_stats st;
	struct txn_params prm;
	struct txn_conn *c;
	uint64_t off[2]; /* positions: bytes (and gaps) of each direction so far */
};

static void fx_init(struct fixture *f, bool midstream)
{
	memset(f, 0, sizeof(*f));
	dbuf_init(&f->rec.log, 1 << 20);
	f->prm.max_body = 1024;
	f->prm.emit = on_emit;
	f->prm.ctx = &f->rec;
	f->prm.stats = &f->st;
	struct txn_conn_info info = {.ip_version = 4, .conn_id = 7, .midstream = midstream};
	info.client.addr[0] = 10;
	info.client.port = 40000;
	info.server.addr[0] = 20;
	info.server.port = 80;
	f->c = txn_conn_create(&f->prm, &info);
}

static void fx_free(struct fixture *f)
{
	txn_conn_free(f->c);
	dbuf_release(&f->rec.log);
}

static void cli(struct fixture *f, const char *s, int64_t ts)
{
	txn_conn_data(f->c, TXN_DIR_CLIENT, (const uint8_t *)s, strlen(s), ts);
}

static void srv(struct fixture *f, const char *s, int64_t ts)
{
	txn_conn_data(f->c, TXN_DIR_SERVER, (const uint8_t *)s, strlen(s), ts);
}

/*
 * Bytes of @p dir with positions as a TCP peer sends them: at the stream's
 * current offset, acknowledging everything the other side sent so far
 * (lost bytes included: the capture lost them, the peer did not).
 */
static void at(struct fixture *f, enum txn_dir dir, const char *s, int64_t ts)
{
	struct txn_pos pos = {.off = f->off[dir], .ack = f->off[!dir], .has_ack = true};
	txn_conn_segment(f->c, dir, (const uint8_t *)s, strlen(s), ts, &pos);
	f->off[dir] += strlen(s);
}

/* @p s of @p dir sent but not captured. */
static void lost(struct fixture *f, enum txn_dir dir, const char *s, int64_t ts)
{
	txn_conn_gap(f->c, dir, strlen(s), ts);
	f->off[dir] += strlen(s);
}

static const char *fx_log(struct fixture *f)
{
	return f->rec.log.data ? (const char *)f->rec.log.data : "";
}

static void test_pipelining(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f,
	    "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
	    "POST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz",
	    100);
	TAP_EQ_U64(f.rec.n, 0, "pipelining: nothing emitted before responses");
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", 200);
	srv(&f,
	    "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nBB"
	    "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
	    300);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /a body=0 -> 200 body=1\n#1 GET /b body=0 -> 404 body=2\n"
		   "#2 POST /c body=3 -> 201 body=0\n",
		   "pipelining: three pairs in order");
	TAP_OK(f.rec.last_rq_first == 100 && f.rec.last_rs_first == 300, "timestamps of last pair");
	txn_conn_end(f.c, TXN_END_FIN, 400);
	TAP_EQ_U64(f.rec.n, 3, "end emits nothing more");
	TAP_EQ_U64(f.st.sessions_complete, 3, "three complete sessions");
	TAP_EQ_U64(f.st.requests, 3, "requests counter");
	TAP_EQ_U64(f.st.responses, 3, "responses counter");
	fx_free(&f);
}

static void test_keepalive_timestamps(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "GET /1 HTTP/1.1\r\nHo", 10);
	cli(&f, "st: h\r\n\r\n", 11);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 20);
	srv(&f, "cd", 21);
	TAP_EQ_U64(f.rec.n, 1, "keep-alive: first transaction emitted when its response ends");
	TAP_OK(f.rec.last_rq_first == 10 && f.rec.last_rq_last == 11 && f.rec.last_rs_first == 20 &&
		   f.rec.last_rs_last == 21,
	       "timestamps: first/last byte of request and response");
	cli(&f, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 30);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 40);
	TAP_OK(f.rec.n == 2 && f.rec.last_index == 1, "second transaction: conn_index 1");
	TAP_OK(f.rec.last_src.addr[0] == 10 && f.rec.last_src.port == 40000, "src is the client");
	txn_conn_end(f.c, TXN_END_FIN, 50);
	fx_free(&f);
}

static void test_continue_head_304_chunked(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 100 Continue\r\n\r\n", 2);
	cli(&f, "hello", 3);
	srv(&f, "HTTP/1.1 204 No Content\r\n\r\n", 4);
	cli(&f,
	    "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /cond HTTP/1.1\r\nIf-None-Match: x\r\n\r\n"
	    "GET /ch HTTP/1.1\r\n\r\n",
	    5);
	srv(&f,
	    "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
	    "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n"
	    "Trailer-A: 1\r\n\r\n",
	    6);
	TAP_EQ_STR(fx_log(&f),
		   "#0 PUT /up body=5 -> 204 body=0\n#1 HEAD /h body=0 -> 200 body=0\n"
		   "#2 GET /cond body=0 -> 304 body=0\n#3 GET /ch body=0 -> 200 body=5\n",
		   "100-continue skipped, HEAD with Content-Length, 304, chunked");
	TAP_EQ_U64(f.st.interim_responses, 1, "one interim response counted");
	txn_conn_end(f.c, TXN_END_FIN, 7);
	fx_free(&f);
}

static void test_close_delimited_and_rst(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "GET /old HTTP/1.0\r\n\r\n", 1);
	srv(&f, "HTTP/1.0 200 OK\r\n\r\nuntil close", 2);
	TAP_EQ_U64(f.rec.n, 0, "close-delimited: not emitted before the end");
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /old body=0 -> 200 body=11\n",
		   "close-delimited response ended by FIN is complete");
	fx_free(&f);

	fx_init(&f, false);
	cli(&f, "GET /big HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", 2);
	txn_conn_end(f.c, TXN_END_RST, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /big body=0 -> 200 body=7 incomplete reset\n",
		   "RST mid-body: incomplete + reset");
	TAP_EQ_U64(f.st.incomplete, 1, "incomplete counted");
	fx_free(&f);

	fx_init(&f, false);
	cli(&f, "GET /x HTTP/1.0\r\n\r\n", 1);
	srv(&f, "HTTP/1.0 200 OK\r\n\r\nsome", 2);
	txn_conn_end(f.c, TXN_END_EOF, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /x body=0 -> 200 body=4 incomplete\n",
		   "close-delimited body at end of capture (no FIN): incomplete");
	fx_free(&f);
}

static void test_early_response(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", 1);
	srv(&f, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 2);
	TAP_EQ_U64(f.rec.n, 0, "early response waits for its request");
	txn_conn_end(f.c, TXN_END_RST, 3);
	TAP_EQ_STR(fx_log(&f), "#0 POST /big body=3 -> 413 body=0 incomplete reset\n",
		   "response before the request body ended is paired with it");
	TAP_EQ_U64(f.st.orphan_responses, 0, "not an orphan");
	fx_free(&f);
}

static void test_no_response(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f,
	    "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: "
	    "9\r\n\r\nab",
	    1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2);
	txn_conn_end(f.c, TXN_END_TIMEOUT, 3);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /1 body=0 -> 200 body=0\n#1 GET /2 body=0 -> - no_response\n"
		   "#2 POST /3 body=2 -> - no_response incomplete\n",
		   "requests without response at the end, cut request incomplete");
	TAP_EQ_U64(f.st.no_response, 2, "no_response counted");
	fx_free(&f);
}

static void test_gap_resync(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "POST /up HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789", 1);
	txn_conn_gap(f.c, TXN_DIR_CLIENT, 500, 2);
	cli(&f, "rest of the body\r\nstill body\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", 3);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 4);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", 5);
	txn_conn_end(f.c, TXN_END_FIN, 6);
	TAP_EQ_STR(fx_log(&f),
		   "#0 POST /up body=10 -> 200 body=2 gap\n#1 GET /next body=0 -> 200 body=3 gap\n",
		   "gap past the end of a body: cut request flagged, resync at the next request");
	TAP_EQ_U64(f.st.resync_bytes, strlen("rest of the body\r\nstill body\n"),
		   "skipped bytes counted");
	TAP_EQ_U64(f.st.gap_sessions, 2, "gap sessions counted");
	fx_free(&f);

	/* A whole request lost in a gap: its response is an orphan flagged gap. */
	fx_init(&f, false);
	cli(&f, "GET /a HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2);
	txn_conn_gap(f.c, TXN_DIR_CLIENT, 19, 3);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /a body=0 -> 200 body=2\n#1 - -> 200 body=3 gap no_request\n",
		   "request lost whole in a gap: its response is flagged gap");
	TAP_EQ_U64(f.st.orphan_responses, 1, "orphan counted");
	TAP_EQ_U64(f.st.gap_sessions, 1, "gap session counted");
	fx_free(&f);

	/* A response lost whole in a gap: the later pairs are shifted by one
	 * (the queue cannot know), so each is flagged gap, never silently wrong. */
	fx_init(&f, false);
	cli(&f, "GET /1 HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 2);
	cli(&f, "GET /2 HTTP/1.1\r\n\r\n", 3);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 39, 4); /* the answer to /2 */
	cli(&f, "GET /3 HTTP/1.1\r\n\r\n", 5);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3", 6);
	cli(&f, "GET /4 HTTP/1.1\r\n\r\n", 7);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n4", 8);
	txn_conn_end(f.c, TXN_END_FIN, 9);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /1 body=0 -> 200 body=1\n#1 GET /2 body=0 -> 200 body=1 gap\n"
		   "#2 GET /3 body=0 -> 200 body=1 gap\n#3 GET /4 body=0 -> - gap no_response\n",
		   "response lost whole: every later pairing flagged gap");
	fx_free(&f);

	/* Request and response both lost: the queue stays in step, so after the
	 * first pair past the gap the flags stop. */
	fx_init(&f, false);
	cli(&f, "GET /1 HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 2);
	txn_conn_gap(f.c, TXN_DIR_CLIENT, 19, 3);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 39, 4);
	cli(&f, "GET /3 HTTP/1.1\r\n\r\n", 5);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3", 6);
	cli(&f, "GET /4 HTTP/1.1\r\n\r\n", 7);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n4", 8);
	txn_conn_end(f.c, TXN_END_FIN, 9);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /1 body=0 -> 200 body=1\n#1 GET /3 body=0 -> 200 body=1 gap\n"
		   "#2 GET /4 body=0 -> 200 body=1\n",
		   "request and response both lost: in step again after the first pair");
	fx_free(&f);

	/* A gap inside a Content-Length body is bridged: the body goes on. */
	fx_init(&f, false);
	cli(&f, "POST /b HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789", 1);
	txn_conn_gap(f.c, TXN_DIR_CLIENT, 50, 2);
	struct dbuf tail;
	dbuf_init(&tail, 1024);
	dbuf_printf(&tail, "%040d", 0);
	dbuf_puts(&tail, "GET /after HTTP/1.1\r\n\r\n");
	txn_conn_data(f.c, TXN_DIR_CLIENT, tail.data, tail.len, 3);
	srv(&f, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 5);
	txn_conn_end(f.c, TXN_END_FIN, 6);
	TAP_EQ_STR(fx_log(&f),
		   "#0 POST /b body=100 -> 201 body=0 gap\n#1 GET /after body=0 -> 200 body=0\n",
		   "gap inside a Content-Length body: counted as body, next request in step");
	TAP_EQ_U64(f.st.resync_bytes, 0, "nothing skipped");
	TAP_EQ_U64(f.st.body_truncated, 1, "stored body (prefix before the gap) is truncated");
	dbuf_release(&tail);
	fx_free(&f);

	/* Gap on the response side ending exactly at the end of a body. */
	fx_init(&f, false);
	cli(&f, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 3, 3);
	srv(&f, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /1 body=0 -> 200 body=5 gap\n#1 GET /2 body=0 -> 500 body=0\n",
		   "gap ending a response body completes it; next response paired in order");
	fx_free(&f);

	/* Close-delimited body: any gap is bridged. */
	fx_init(&f, false);
	cli(&f, "GET /stream HTTP/1.0\r\n\r\n", 1);
	srv(&f, "HTTP/1.0 200 OK\r\n\r\nhead", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 1000000, 3);
	srv(&f, "tail", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f), "#0 GET /stream body=0 -> 200 body=1000008 gap\n",
		   "gap in a close-delimited body: counted");
	fx_free(&f);

	/* A candidate start cut at a segment end is decided by the next bytes. */
	fx_init(&f, true);
	cli(&f, "tail of an earlier body\r\nGE", 1);
	cli(&f, "T /m HTTP/1.1\r\n\r\n", 2);
	srv(&f, "ody\r\nHTTP/1.", 3);
	srv(&f, "1 200 OK\r\nContent-Length: 0\r\n\r\n", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f), "#0 GET /m body=0 -> 200 body=0 midstream\n",
		   "midstream pickup: both sides resync across segment ends");
	fx_free(&f);

	/* Midstream: messages right after a body tail without newline. */
	fx_init(&f, true);
	cli(&f, "xx body tail no newlinePOST /two HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 1);
	srv(&f, "567 bytes of body tail", 2);
	srv(&f, "more tailHTTP/1.1 201 OK\r\nContent-Length: 7\r\n\r\ncreated", 3);
	txn_conn_end(f.c, TXN_END_FIN, 4);
	TAP_EQ_STR(fx_log(&f), "#0 POST /two body=0 -> 201 body=7 midstream\n",
		   "midstream: request and response found after a body tail");
	TAP_EQ_U64(f.st.resync_bytes, strlen("xx body tail no newline") + 22 + 9,
		   "tails counted as skipped");
	fx_free(&f);
}

#define RQ(n)  "GET /" #n " HTTP/1.1\r\nHost: h\r\n\r\n"
#define RS(n)  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" #n
#define C(s)   at(&f, TXN_DIR_CLIENT, s, ts++)
#define S(s)   at(&f, TXN_DIR_SERVER, s, ts++)
#define LC(s)  lost(&f, TXN_DIR_CLIENT, s, ts++)
#define LS(s)  lost(&f, TXN_DIR_SERVER, s, ts++)
#define OK1(n) "GET /" #n " body=0 -> 200 body=1\n"
#define R408   "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"

/* Pairing after a loss from positions (docs/capture.md "Pairing after loss"). */
static void test_positions(void)
{
	struct fixture f;
	int64_t ts = 1;

	/* A client that waits: the response to /2 is lost. The order in which
	 * the flow layer delivers: /3's acknowledgement (past the lost bytes)
	 * before /3 itself. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), C(RQ(2)), LS(RS(2)), C(RQ(3)), S(RS(3)), C(RQ(4)), S(RS(4));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(fx_log(&f),
		   "#0 " OK1(1) "#1 GET /2 body=0 -> - gap no_response\n#2 " OK1(3) "#3 " OK1(4),
		   "positions: a lost response flags its request only");
	TAP_EQ_U64(f.st.lost_responses, 1, "positions: lost response counted");
	TAP_EQ_U64(f.st.pairs_by_position, 1, "positions: pair by position counted");
	TAP_EQ_U64(f.st.gap_sessions, 1, "positions: one gap session");
	fx_free(&f);

	/* The request /2 is lost: its response answers nothing seen. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), LC(RQ(2)), S(RS(2)), C(RQ(3)), S(RS(3));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(fx_log(&f), "#0 " OK1(1) "#1 - -> 200 body=1 gap no_request\n#2 " OK1(3),
		   "positions: a lost request flags its response only");
	fx_free(&f);

	/* Request and response /2 lost, then /3 (the flow layer declares the
	 * server's loss with /3's ack, the client's with /3's response's). */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1));
	f.off[TXN_DIR_CLIENT] += strlen(RQ(2));
	LS(RS(2));
	txn_conn_gap(f.c, TXN_DIR_CLIENT, strlen(RQ(2)), ts++);
	C(RQ(3)), S(RS(3)), C(RQ(4)), S(RS(4));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(fx_log(&f), "#0 " OK1(1) "#1 " OK1(3) "#2 " OK1(4),
		   "positions: a whole lost transaction flags nothing after it");
	TAP_EQ_U64(f.st.gap_sessions, 0, "positions: no gap session");
	fx_free(&f);

	/* Response /2 and request /3 lost (/3's response acknowledges /3):
	 * /2 lost its response, /3's response answers a lost request. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), C(RQ(2));
	f.off[TXN_DIR_SERVER] += strlen(RS(2)); /* the client read it before /3 */
	f.off[TXN_DIR_CLIENT] += strlen(RQ(3));
	txn_conn_gap(f.c, TXN_DIR_CLIENT, strlen(RQ(3)), ts++);
	txn_conn_gap(f.c, TXN_DIR_SERVER, strlen(RS(2)), ts++);
	S(RS(3)), C(RQ(4)), S(RS(4));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(
	    fx_log(&f),
	    "#0 " OK1(
		1) "#1 GET /2 body=0 -> - gap no_response\n#2 - -> 200 body=1 gap no_request\n"
		   "#3 " OK1(4),
	    "positions: lost response then lost request: each flagged once");
	fx_free(&f);

	/* A pipelining client: /2 and /3 sent together, the response to /2
	 * lost. Nothing says how many responses the loss took: in order,
	 * flagged, until every request is answered. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), C(RQ(2) RQ(3)), LS(RS(2)), S(RS(3)), C(RQ(4)), S(RS(4));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(
	    fx_log(&f),
	    "#0 " OK1(
		1) "#1 GET /2 body=0 -> 200 body=1 gap\n"
		   "#2 GET /3 body=0 -> 200 body=1 gap\n#3 GET /4 body=0 -> - gap no_response\n",
	    "positions: pipelining after a loss stays in order, flagged");
	TAP_EQ_U64(f.st.pairing_uncertain, 1, "positions: uncertain pairing counted");
	fx_free(&f);

	/* An answer nobody asked for (no loss): the client had already read
	 * past it when it sent /2, so it cannot be /2's. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), S(R408), C(RQ(2)), S(RS(2));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(fx_log(&f), "#0 " OK1(1) "#1 - -> 408 body=0 no_request\n#2 " OK1(2),
		   "positions: a response the client read before its request answers none");
	fx_free(&f);

	/* The same answer sent while /2 was on its way: the server had not
	 * received /2 when it began it. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1));
	{
		struct txn_pos pc = {.off = f.off[0], .ack = f.off[1], .has_ack = true};
		struct txn_pos ps = {.off = f.off[1], .ack = f.off[0], .has_ack = true};
		txn_conn_segment(f.c, TXN_DIR_CLIENT, (const uint8_t *)RQ(2), strlen(RQ(2)), ts++,
				 &pc);
		txn_conn_segment(f.c, TXN_DIR_SERVER, (const uint8_t *)R408, strlen(R408), ts++,
				 &ps);
		f.off[0] += strlen(RQ(2));
		f.off[1] += strlen(R408);
	}
	S(RS(2));
	txn_conn_end(f.c, TXN_END_FIN, ts);
	TAP_EQ_STR(fx_log(&f), "#0 " OK1(1) "#1 - -> 408 body=0 no_request\n#2 " OK1(2),
		   "positions: a response sent before the request arrived answers none");
	fx_free(&f);

	/* A response lost at the end of the capture. */
	fx_init(&f, false);
	C(RQ(1)), S(RS(1)), C(RQ(2)), LS(RS(2));
	txn_conn_end(f.c, TXN_END_EOF, ts);
	TAP_EQ_STR(fx_log(&f), "#0 " OK1(1) "#1 GET /2 body=0 -> - gap no_response\n",
		   "positions: response lost at the end: flagged gap");
	fx_free(&f);
}

/* A chunked body that loses bytes past its chunk goes on at the next
 * chunk-size line; a line that only looks like one is passed over. */
static void test_chunked_gap(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "GET /c HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 20, 3); /* past the chunk's end */
	/* "\r\n5\r\n" in the lost chunk's tail: 5 bytes later there is no
	 * CRLF, so it is no size line. */
	srv(&f, "tail\r\n5\r\nnot crlf\r\n4\r\nwxyz\r\n0\r\n\r\n", 4);
	cli(&f, "GET /n HTTP/1.1\r\n\r\n", 5);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 6);
	txn_conn_end(f.c, TXN_END_FIN, 7);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /c body=0 -> 200 body=9 gap\n#1 GET /n body=0 -> 200 body=2\n",
		   "chunked gap: resumed at the next true size line, next pair in step");
	TAP_EQ_U64(f.st.chunk_resyncs, 1, "chunked gap: resumption counted");
	fx_free(&f);

	/* A line that looks like a size line whose data runs past the bytes at
	 * hand is taken; the next response beginning a segment shows it was
	 * data: the chunked body ended in the lost bytes. */
	fx_init(&f, false);
	cli(&f, "GET /c HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 20, 3);
	srv(&f, "tail\r\nabc\r\nmore", 4);
	cli(&f, "GET /n HTTP/1.1\r\n\r\n", 5);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 6);
	txn_conn_end(f.c, TXN_END_FIN, 7);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /c body=0 -> 200 body=9 gap\n#1 GET /n body=0 -> 200 body=2 gap\n",
		   "chunked gap: a false size line is undone by the next response (fed without "
		   "positions: the next pair is flagged too)");
	fx_free(&f);

	/* A second gap while looking: still the same message. */
	fx_init(&f, false);
	cli(&f, "GET /c HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 20, 3);
	srv(&f, "xx\r", 4);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 7, 5);
	srv(&f, "3\r\nxyz\r\n0\r\n\r\n", 6);
	txn_conn_end(f.c, TXN_END_FIN, 7);
	TAP_EQ_STR(fx_log(&f), "#0 GET /c body=0 -> 200 body=8 gap\n",
		   "chunked gap: a size line right after a second gap");
	fx_free(&f);

	/* The end lost, the connection closes: cut, flagged. */
	fx_init(&f, false);
	cli(&f, "GET /c HTTP/1.1\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 2);
	txn_conn_gap(f.c, TXN_DIR_SERVER, 20, 3);
	txn_conn_end(f.c, TXN_END_FIN, 4);
	TAP_EQ_STR(fx_log(&f), "#0 GET /c body=0 -> 200 body=5 gap incomplete\n",
		   "chunked gap: the end lost, cut at the close");
	fx_free(&f);
}

/* Responses without a request that a log would still show: the answer to
 * an HTTP/0.9 request, and answers after bytes that were no message. */
static void test_http09_cruft(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "GET /old.txt\r\n", 1);
	srv(&f, "alpha\n", 2);
	srv(&f, "beta\n", 3);
	txn_conn_end(f.c, TXN_END_FIN, 4);
	TAP_EQ_STR(fx_log(&f), "#0 GET /old.txt body=0 -> 0 body=11 http09\n",
		   "http/0.9: the bare body until the close answers the request");
	TAP_OK(f.rec.last_rs_first == 2 && f.rec.last_rs_last == 3, "http/0.9: response times");
	TAP_EQ_U64(f.st.http09, 1, "http/0.9 counted");
	fx_free(&f);

	fx_init(&f, false);
	cli(&f, "GET /old.txt\r\n", 1);
	srv(&f, "alpha", 2);
	txn_conn_end(f.c, TXN_END_RST, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /old.txt body=0 -> 0 body=5 incomplete reset http09\n",
		   "http/0.9: a reset cuts the answer");
	fx_free(&f);

	/* A server answering 0.9 with a status line is parsed as HTTP/1.x. */
	fx_init(&f, false);
	cli(&f, "GET /old.txt\r\n", 1);
	srv(&f, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /old.txt body=0 -> 200 body=2 http09\n",
		   "http/0.9 request, HTTP/1.0 answer");
	fx_free(&f);

	/* A TLS hello to an HTTP port: nginx answers 400; the answer has no
	 * request, and says the client's bytes were no request. */
	fx_init(&f, false);
	txn_conn_data(f.c, TXN_DIR_CLIENT, (const uint8_t *)"\x16\x03\x01\x02\x00\x01\x00", 7, 1);
	srv(&f, "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad", 2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f), "#0 - -> 400 body=3 parse_error no_request\n",
		   "cruft: the answer to a TLS hello is flagged parse_error, no_request");
	TAP_EQ_U64(f.st.cruft, 1, "cruft counted");
	fx_free(&f);

	/* A banner before the response: the response keeps its request. */
	fx_init(&f, false);
	cli(&f, "GET /a HTTP/1.1\r\n\r\n", 1);
	srv(&f, "*** welcome ***\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", 2);
	cli(&f, "GET /b HTTP/1.1\r\n\r\n", 3);
	srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /a body=0 -> 200 body=1 parse_error\n#1 GET /b body=0 -> 200 body=1\n",
		   "cruft before a response: paired with its request, flagged");
	fx_free(&f);
}

/* The rules of txn_pair_pick() on hand-made positions. */
static void test_pair_rules(void)
{
	/* Requests at client offsets 0, 10, 20 with acks 0, 50, 100 (a waiting
	 * client); server bytes from 40 on were lost before a response at 150. */
	struct txn_start r[3] = {
	    {.off = 0, .ack = 0, .has_ack = true},
	    {.off = 10, .ack = 50, .has_ack = true},
	    {.off = 20, .ack = 100, .has_ack = true},
	};
	const struct txn_start *rp[3] = {&r[0], &r[1], &r[2]};
	struct txn_start rs = {.off = 150, .ack = 30, .has_ack = true, .lost = true, .lost_lo = 40};
	struct txn_pair_in in = {.reqs = rp, .n = 3, .resp = &rs};
	struct txn_pair_out out;
	txn_pair_pick(&in, &out);
	TAP_OK(out.drop == 2 && !out.orphan && !out.uncertain && out.by_position,
	       "pair rules: a waiting client's two lost responses are skipped");
	rs.ack = 15; /* the server had not read the third request */
	txn_pair_pick(&in, &out);
	TAP_OK(out.drop == 1 && !out.uncertain, "pair rules: the server's ack bounds the answer");
	rs.ack = 30;
	rs.lost_lo = 120; /* lost bytes after the client read the third request's ack */
	txn_pair_pick(&in, &out);
	TAP_OK(out.drop == 0 && out.uncertain,
	       "pair rules: lost bytes not where the skipped responses were: uncertain");
	rs.lost_lo = 40;
	r[1].ack = 0; /* pipelined */
	txn_pair_pick(&in, &out);
	TAP_OK(out.drop == 0 && out.uncertain, "pair rules: pipelined requests: uncertain");
	r[1].ack = 50;
	rs.lost = false;
	txn_pair_pick(&in, &out);
	TAP_OK(out.drop == 0 && !out.uncertain, "pair rules: nothing lost: the oldest");
	rs.off = 0;
	r[0].ack = 5;
	txn_pair_pick(&in, &out);
	TAP_OK(out.orphan && out.drop == 0, "pair rules: read past by the client: an orphan");
	struct txn_start a = {.off = 50, .ack = 11}, b = {.off = 49, .ack = 11},
			 c = {.off = 50, .ack = 10};
	TAP_OK(txn_pair_causal(&r[1], &a) && !txn_pair_causal(&r[1], &b) &&
		   !txn_pair_causal(&r[1], &c),
	       "pair rules: causality at its bounds");
}

static void test_parse_error(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f,
	    "GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nBad Header\r\n\r\nGET /after "
	    "HTTP/1.1\r\n\r\n",
	    1);
	srv(&f,
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 400 Bad\r\nContent-Length: "
	    "0\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	    2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /ok body=0 -> 200 body=0\n#1 GET /bad body=0 -> 400 body=0 parse_error\n"
		   "#2 GET /after body=0 -> 200 body=0\n",
		   "malformed request flagged, paired with the 400, next request parsed");
	TAP_EQ_U64(f.st.parse_errors, 1, "parse error counted");
	fx_free(&f);
}

static void test_direction_swap(void)
{
	struct fixture f;
	fx_init(&f, false);
	/* The caller got the roles wrong: "client" bytes are responses. */
	txn_conn_data(f.c, TXN_DIR_SERVER, (const uint8_t *)"GET /s HTTP/1.1\r\n\r\n", 19, 1);
	txn_conn_data(f.c, TXN_DIR_CLIENT,
		      (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38, 2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f), "#0 GET /s body=0 -> 200 body=0\n", "swapped roles paired");
	TAP_EQ_U64(f.st.direction_swaps, 1, "swap counted");
	TAP_OK(f.rec.last_src.addr[0] == 20, "src is the real client (caller's server)");
	fx_free(&f);

	fx_init(&f, false);
	txn_conn_data(f.c, TXN_DIR_CLIENT,
		      (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38, 1);
	txn_conn_end(f.c, TXN_END_FIN, 2);
	TAP_EQ_STR(fx_log(&f), "#0 - -> 200 body=0 no_request\n",
		   "response first: swapped, orphan response");
	TAP_EQ_U64(f.st.orphan_responses, 1, "orphan counted");
	TAP_EQ_U64(f.st.sessions_emitted, 1, "orphan emitted");
	TAP_EQ_U64(f.st.sessions_complete, 0, "an orphan response is not a complete transaction");
	fx_free(&f);

	/* Midstream with the roles guessed wrong: the first bytes are a body
	 * tail, the roles are settled by the first message start seen. */
	fx_init(&f, true);
	txn_conn_data(f.c, TXN_DIR_SERVER, (const uint8_t *)"tail of a request body", 22, 1);
	txn_conn_data(f.c, TXN_DIR_CLIENT, (const uint8_t *)"end of a response body", 22, 2);
	TAP_EQ_U64(f.st.direction_swaps, 0, "midstream: undecided while nothing is recognisable");
	const char *resp = "more body\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	txn_conn_data(f.c, TXN_DIR_CLIENT, (const uint8_t *)resp, strlen(resp), 3);
	TAP_EQ_U64(f.st.direction_swaps, 1, "midstream: a response on the client side swaps");
	const char *req = "GET /next HTTP/1.1\r\n\r\n";
	txn_conn_data(f.c, TXN_DIR_SERVER, (const uint8_t *)req, strlen(req), 4);
	const char *resp2 = "HTTP/1.1 204 No Content\r\n\r\n";
	txn_conn_data(f.c, TXN_DIR_CLIENT, (const uint8_t *)resp2, strlen(resp2), 5);
	txn_conn_end(f.c, TXN_END_FIN, 6);
	TAP_EQ_STR(fx_log(&f),
		   "#0 - -> 200 body=2 midstream no_request\n#1 GET /next body=0 -> 204 body=0 "
		   "midstream\n",
		   "midstream swap: orphan first response, then pairs");
	TAP_OK(f.rec.last_src.addr[0] == 20, "src is the caller's server side");
	fx_free(&f);
}

static void test_tunnel(void)
{
	struct fixture f;
	fx_init(&f, false);
	cli(&f, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 1);
	cli(&f, "\x16\x03\x01 client hello", 2);
	srv(&f, "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03 server hello", 3);
	cli(&f, "\x17\x03\x03 more", 4);
	txn_conn_end(f.c, TXN_END_FIN, 5);
	TAP_EQ_STR(fx_log(&f), "#0 CONNECT example.com:443 body=0 -> 200 body=0 tunnel\n",
		   "CONNECT tunnel: one session flagged tunnel");
	TAP_EQ_U64(f.st.tunnels, 1, "tunnel counted");
	TAP_EQ_U64(f.st.parse_errors, 0, "tunnel bytes not parsed");
	TAP_OK(f.st.tunnel_bytes > 20, "tunnel bytes counted (%llu)",
	       (unsigned long long)f.st.tunnel_bytes);
	fx_free(&f);

	/* Refused upgrade: the held request bytes are parsed after all. */
	fx_init(&f, false);
	cli(&f,
	    "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	    "GET /after HTTP/1.1\r\n\r\n",
	    1);
	srv(&f,
	    "HTTP/1.1 400 No\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
	    "0\r\n\r\n",
	    2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_STR(fx_log(&f),
		   "#0 GET /ws body=0 -> 400 body=0\n#1 GET /after body=0 -> 200 body=0\n",
		   "refused upgrade: parsing goes on");
	fx_free(&f);

	fx_init(&f, false);
	cli(&f, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1);
	srv(&f, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi", 2);
	cli(&f, "\x81\x82\x00\x00\x00\x00hi", 3);
	txn_conn_end(f.c, TXN_END_FIN, 4);
	TAP_EQ_STR(fx_log(&f), "#0 GET /ws body=0 -> 101 body=0 tunnel\n", "101 upgrade: tunnel");
	fx_free(&f);
}

static void test_overflow(void)
{
	struct fixture f;
	fx_init(&f, false);
	struct dbuf q;
	dbuf_init(&q, 1 << 20);
	for (int i = 0; i < 40; i++)
		dbuf_printf(&q, "GET /%d HTTP/1.1\r\n\r\n", i);
	txn_conn_data(f.c, TXN_DIR_CLIENT, q.data, q.len, 1);
	TAP_EQ_U64(f.st.queue_overflow, 8, "requests beyond 32 pending emitted at once");
	TAP_EQ_U64(f.rec.n, 8, "... as no_response");
	{
		/* The newest are the ones cut: /32../39, in order, each without a
		 * response (docs/testing.md "Forced limits"). */
		struct dbuf want;
		dbuf_init(&want, 1 << 16);
		for (int i = 32; i < 40; i++)
			dbuf_printf(&want, "#%d GET /%d body=0 -> - no_response\n", i - 32, i);
		TAP_EQ_STR(fx_log(&f), (const char *)want.data,
			   "the 8 emitted at once are the newest requests, /32 to /39");
		dbuf_release(&want);
	}
	dbuf_reset(&q);
	for (int i = 0; i < 40; i++)
		dbuf_printf(&q, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%*s", i % 10, i % 10,
			    "");
	txn_conn_data(f.c, TXN_DIR_SERVER, q.data, q.len, 2);
	txn_conn_end(f.c, TXN_END_FIN, 3);
	TAP_EQ_U64(f.rec.n, 40, "every request emitted exactly once");
	TAP_EQ_U64(f.st.sessions_complete, 32, "32 paired");
	const char *log = fx_log(&f);
	TAP_OK(strstr(log, "GET /31 body=0 -> 200 body=1\n") != NULL,
	       "the 32nd request keeps its own response (body 1)");
	TAP_OK(strstr(log, "GET /0 body=0 -> 200 body=0\n") != NULL &&
		   strstr(log, "GET /7 body=0 -> 200 body=7\n") != NULL,
	       "the oldest keep theirs (/0 body 0, /7 body 7)");
	TAP_EQ_U64(f.st.orphan_responses, 0, "responses of dropped requests are not orphans");
	dbuf_release(&q);
	fx_free(&f);
}

/* The same conversation fed in pieces of any size gives the same sessions. */
static void test_pieces(void)
{
	const char *req =
	    "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	    "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
	    "PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody"
	    "POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
	const char *resp =
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
	    "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
	const char *want = "#0 GET /a body=0 -> 200 body=3\n#1 HEAD /b body=0 -> 200 body=0\n"
			   "#2 PUT /c body=4 -> 201 body=0\n#3 POST /d body=3 -> 200 body=2\n";
	static const size_t sizes[] = {1, 2, 3, 7, 13, 64, 4096};
	int bad = 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct fixture f;
		fx_init(&f, false);
		size_t ql = strlen(req), rl = strlen(resp), qo = 0, ro = 0;
		/* Alternate: the client runs ahead, the server follows. */
		while (qo < ql || ro < rl) {
			size_t n = sizes[k];
			if (qo < ql) {
				size_t m = n < ql - qo ? n : ql - qo;
				txn_conn_data(f.c, TXN_DIR_CLIENT, (const uint8_t *)req + qo, m, 1);
				qo += m;
			}
			if (ro < rl && (qo == ql || ro + n <= qo / 2)) {
				size_t m = n < rl - ro ? n : rl - ro;
				txn_conn_data(f.c, TXN_DIR_SERVER, (const uint8_t *)resp + ro, m,
					      2);
				ro += m;
			}
		}
		txn_conn_end(f.c, TXN_END_FIN, 3);
		if (strcmp(fx_log(&f), want) != 0) {
			bad++;
			printf("# pieces of %zu:\n%s", sizes[k], fx_log(&f));
		}
		fx_free(&f);
	}
	TAP_EQ_U64(bad, 0, "pieces of 1..4096 bytes: same sessions");
}

static void test_garbage(void)
{
	uint64_t x = 88172645463325252ull;
	int bad = 0;
	for (int iter = 0; iter < 300; iter++) {
		struct fixture f;
		fx_init(&f, iter & 1);
		uint8_t buf[300];
		for (int op = 0; op < 20; op++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t n = x % sizeof(buf);
			const char *src = (x >> 20) & 1
					      ? "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
					      : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
			size_t sl = strlen(src);
			for (size_t i = 0; i < n; i++)
				buf[i] =
				    (x >> 30) & 1 ? (uint8_t)src[i % sl] : (uint8_t)(x >> (i % 56));
			if ((x >> 40) % 11 == 0)
				txn_conn_gap(f.c, (enum txn_dir)((x >> 8) & 1), 10, op);
			else
				txn_conn_data(f.c, (enum txn_dir)((x >> 8) & 1), buf, n, op);
		}
		int before = f.rec.n;
		txn_conn_end(f.c, (enum txn_end)(1 + iter % 4), 99);
		if ((uint64_t)f.rec.n != f.st.sessions_emitted || f.rec.n < before)
			bad++;
		if (f.st.requests + f.st.orphan_responses != (uint64_t)f.rec.n)
			bad++;
		fx_free(&f);
	}
	TAP_EQ_U64(bad, 0, "random streams: no crash, emitted counts consistent");
}

/* With -Dfault_injection=true: every allocation of a run fails once in turn. */
static void test_alloc_failures(void)
{
#ifdef DYETAP_FAULT_INJECTION
	int bad = 0, runs = 0;
	for (uint64_t n = 1; n < 120; n++) {
		struct fixture f;
		fx_init(&f, false); /* the log buffer allocates too: fail after it */
		dbuf_reserve(&f.rec.log, 4096);
		mem_fail_at(n);
		if (!f.c) {
			mem_fail_at(0);
			fx_free(&f);
			continue;
		}
		cli(&f,
		    "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: "
		    "3\r\n\r\nabc",
		    1);
		srv(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2);
		srv(&f, "HTTP/1.1 201 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		    3);
		txn_conn_end(f.c, TXN_END_FIN, 4);
		mem_fail_at(0);
		runs++;
		if ((uint64_t)f.rec.n != f.st.sessions_emitted || f.rec.n < 2)
			bad++;
		fx_free(&f);
	}
	TAP_OK(bad == 0 && runs > 0,
	       "allocation failures: every request still emitted once (%d runs)", runs);
#endif
}

int main(void)
{
	TAP_OK(txn_ctr_count >= 17 && strcmp(txn_ctr_descs[0].name, "requests") == 0,
	       "counter table names every field");
	test_pipelining();
	test_keepalive_timestamps();
	test_continue_head_304_chunked();
	test_close_delimited_and_rst();
	test_no_response();
	test_early_response();
	test_gap_resync();
	test_positions();
	test_pair_rules();
	test_chunked_gap();
	test_http09_cruft();
	test_parse_error();
	test_direction_swap();
	test_tunnel();
	test_overflow();
	test_pieces();
	test_garbage();
	test_alloc_failures();
	return tap_done();
}
