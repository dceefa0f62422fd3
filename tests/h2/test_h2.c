/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of capture/h2.h: frames built by hand (RFC 9113 §6 layouts)
 * with header blocks from nghttp2's HPACK deflater (the encoder real
 * peers use), fed whole and one byte at a time. Real traffic is covered
 * by tests/h2/h2_e2e.py on the captured fixtures.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "capture/h2.h"
#include "capture/redact.h"
#include "common/dbuf.h"
#include "tests/tap.h"

/* ---- building byte streams ---- */

static nghttp2_hd_deflater *dfl[2];
static struct dbuf wire[2]; /* 0: client -> server, 1: server -> client */

static void put_frame(int side, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	uint8_t h[9] = {
	    (uint8_t)(n >> 16),	  (uint8_t)(n >> 8),	(uint8_t)n,	     type,	  flags,
	    (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
	dbuf_append(&wire[side], h, 9);
	if (n)
		dbuf_append(&wire[side], p, n);
}

/* HPACK-encode "name", "value", ..., NULL with side's deflater. */
static size_t hpack(int side, uint8_t *out, size_t cap, const char *const *nv)
{
	nghttp2_nv v[32];
	size_t n = 0;
	for (; nv[2 * n]; n++)
		v[n] = (nghttp2_nv){(uint8_t *)(uintptr_t)nv[2 * n],
				    (uint8_t *)(uintptr_t)nv[2 * n + 1], strlen(nv[2 * n]),
				    strlen(nv[2 * n + 1]), NGHTTP2_NV_FLAG_NONE};
	ssize_t r = nghttp2_hd_deflate_hd(dfl[side], out, cap, v, n);
	return r < 0 ? 0 : (size_t)r;
}

static void headers(int side, uint32_t sid, uint8_t flags, const char *const *nv)
{
	uint8_t b[4096];
	size_t n = hpack(side, b, sizeof(b), nv);
	put_frame(side, 1, flags | 0x4, sid, b, n);
}

static void data(int side, uint32_t sid, uint8_t flags, const char *s)
{
	put_frame(side, 0, flags, sid, s, strlen(s));
}

static void start(void)
{
	for (int i = 0; i < 2; i++) {
		if (dfl[i])
			nghttp2_hd_deflate_del(dfl[i]);
		nghttp2_hd_deflate_new(&dfl[i], 4096);
		dbuf_release(&wire[i]);
		dbuf_init(&wire[i], 1 << 24);
	}
	dbuf_append(&wire[0], H2_PREFACE, H2_PREFACE_LEN);
	put_frame(0, 4, 0, 0, NULL, 0);
	put_frame(1, 4, 0, 0, NULL, 0);
}

/* ---- running and recording what was emitted ---- */

struct got {
	char text[64][512];
	int n;
	int requests;
};

static void put_fields(char *t, size_t cap, const char *tag, const struct store_header *h, size_t n)
{
	size_t l = strlen(t);
	snprintf(t + l, cap - l, " %s[", tag);
	for (size_t i = 0; i < n; i++) {
		l = strlen(t);
		snprintf(t + l, cap - l, "%s%.*s=%.*s", i ? "," : "", (int)h[i].name.len,
			 (const char *)h[i].name.ptr, (int)h[i].value.len,
			 (const char *)h[i].value.ptr);
	}
	l = strlen(t);
	snprintf(t + l, cap - l, "]");
}

static void on_emit(void *ctx, const struct store_session *s)
{
	struct got *g = ctx;
	if (g->n == 64)
		return;
	char *t = g->text[g->n++];
	snprintf(t, 512, "s%u i%u %.*s %.*s -> %u body %llu/%llu:%.*s%s flags %x", s->stream_id,
		 s->conn_index, (int)s->req.method.len, (const char *)s->req.method.ptr,
		 (int)s->req.target.len, (const char *)s->req.target.ptr, s->resp.status,
		 (unsigned long long)s->resp.body.len, (unsigned long long)s->resp.body_len,
		 (int)s->resp.body.len, (const char *)s->resp.body.ptr,
		 s->resp.truncated ? " (cut)" : "", s->flags);
	if (s->req.body_len) {
		size_t l = strlen(t);
		snprintf(t + l, 512 - l, " reqbody %.*s", (int)s->req.body.len,
			 (const char *)s->req.body.ptr);
	}
	if (s->req.n_trailers)
		put_fields(t, 512, "rqt", s->req.trailers, s->req.n_trailers);
	if (s->resp.n_trailers)
		put_fields(t, 512, "rst", s->resp.trailers, s->resp.n_trailers);
}

static void on_request(void *ctx, const struct store_session *s)
{
	struct got *g = ctx;
	(void)s;
	g->requests++;
}

static struct h2_stats st;
static struct h2_params prm;

/* Feed the two streams (client first, then server, or alternating in steps). */
static struct h2_conn *run(struct got *g, size_t step, bool interleave)
{
	memset(g, 0, sizeof(*g));
	memset(&st, 0, sizeof(st));
	prm.emit = on_emit;
	prm.on_request = on_request;
	prm.ctx = g;
	prm.stats = &st;
	struct txn_conn_info info = {.ip_version = 4, .conn_id = 9};
	struct h2_conn *c = h2_conn_create(&prm, &info, false);
	size_t off[2] = {0, 0};
	if (!interleave) {
		for (int s = 0; s < 2; s++)
			for (; off[s] < wire[s].len; off[s] += step) {
				size_t n =
				    wire[s].len - off[s] < step ? wire[s].len - off[s] : step;
				h2_conn_data(c, s ? TXN_DIR_SERVER : TXN_DIR_CLIENT,
					     wire[s].data + off[s], n, 1000);
			}
	}
	return c;
}

static void finish(struct h2_conn *c, enum txn_end how)
{
	h2_conn_end(c, how, 2000);
	h2_conn_free(c);
}

static bool has(const struct got *g, const char *needle)
{
	for (int i = 0; i < g->n; i++)
		if (strstr(g->text[i], needle))
			return true;
	return false;
}

static void dump(const struct got *g)
{
	for (int i = 0; i < g->n; i++)
		printf("# %s\n", g->text[i]);
}

/* ---- cases ---- */

static const char *const get_a[] = {":method",	  "GET", ":path",  "/a",   ":scheme", "http",
				    ":authority", "h",	 "x-lane", "blue", NULL};
static const char *const post_b[] = {":method", "POST",	      ":path", "/b", ":scheme",
				     "http",	":authority", "h",     NULL};
static const char *const st200[] = {":status", "200", "content-type", "text/plain", NULL};
static const char *const st103[] = {":status", "103", "link", "</s.css>", NULL};
static const char *const grpc_ok[] = {"grpc-status", "0", "grpc-message", "", NULL};
static const char *const trq[] = {"x-t", "1", NULL};

static void build_basic(void)
{
	start();
	headers(0, 1, 0x1, get_a); /* END_STREAM */
	headers(0, 3, 0, post_b);
	data(0, 3, 0, "hel");
	data(0, 3, 0, "lo");
	headers(0, 3, 0x1, trq); /* trailers end the request */
	headers(1, 3, 0, st200);
	data(1, 3, 0x1, "ok");
	headers(1, 1, 0, st103);
	headers(1, 1, 0, st200);
	uint8_t padded[1 + 3 + 4] = {4, 'a', 'b', 'c', 0, 0, 0, 0};
	put_frame(1, 0, 0x8, 1, padded, sizeof(padded)); /* PADDED */
	headers(1, 1, 0x1, grpc_ok);
}

static void test_basic(void)
{
	struct got g, g1;
	build_basic();
	finish(run(&g, 1 << 20, false), TXN_END_FIN);
	dump(&g);
	TAP_EQ_U64(g.n, 2, "basic: two streams, two sessions");
	TAP_OK(g.n == 2 &&
		   strstr(g.text[0], "s3 i1 POST /b -> 200 body 2/2:ok flags 0 reqbody hello "
				     "rqt[x-t=1]"),
	       "basic: stream 3 first (it finished first), its body and request trailers");
	TAP_OK(g.n == 2 && strstr(g.text[1], "s1 i0 GET /a -> 200 body 3/3:abc flags 0 "
					     "rst[grpc-status=0,grpc-message=]"),
	       "basic: stream 1: padding removed, 103 skipped, response trailers");
	TAP_EQ_U64(st.interim_responses, 1, "basic: interim response counted");
	TAP_EQ_U64(st.sessions_complete, 2, "basic: both complete");
	TAP_EQ_U64(g.requests, 2, "basic: each request announced once");
	TAP_EQ_U64(st.bad_frames + st.hpack_errors, 0, "basic: no bad frame");
	finish(run(&g1, 1, false), TXN_END_FIN);
	bool same = g1.n == g.n;
	for (int i = 0; same && i < g.n; i++)
		same = !strcmp(g.text[i], g1.text[i]);
	TAP_OK(same, "basic: fed one byte at a time, the same sessions");
}

static void test_continuation(void)
{
	struct got g;
	start();
	uint8_t b[4096];
	static const char *const big[] = {
	    ":method", "GET",	     ":path", "/cont",	":scheme",
	    "http",    ":authority", "h",     "x-long", "0123456789012345678901234567890123456789",
	    NULL};
	size_t n = hpack(0, b, sizeof(b), big);
	put_frame(0, 1, 0x1, 1, b, 10); /* HEADERS without END_HEADERS */
	put_frame(0, 9, 0, 1, b + 10, 10);
	put_frame(0, 9, 0x4, 1, b + 20, n - 20);
	uint8_t pri[5 + 64];
	memset(pri, 0, 5);
	size_t m = hpack(1, pri + 5, sizeof(pri) - 5, st200);
	put_frame(1, 1, 0x20 | 0x4 | 0x1, 1, pri, 5 + m); /* PRIORITY fields, END_STREAM */
	finish(run(&g, 7, false), TXN_END_FIN);
	dump(&g);
	TAP_OK(g.n == 1 && strstr(g.text[0], "s1 i0 GET /cont -> 200 body 0/0: flags 0"),
	       "continuation: a block over HEADERS + 2 CONTINUATION; priority fields skipped");
}

static void test_rst_goaway(void)
{
	struct got g;
	start();
	headers(0, 1, 0x1, get_a);
	headers(0, 3, 0, post_b);
	headers(0, 5, 0x1, get_a);
	headers(0, 7, 0x1, get_a);
	uint8_t cancel[4] = {0, 0, 0, 8};
	put_frame(1, 3, 0, 1, cancel, 4); /* server resets stream 1 */
	headers(1, 3, 0, st200);
	put_frame(0, 3, 0, 3, cancel, 4); /* client resets stream 3 mid-response */
	uint8_t ga[8] = {0, 0, 0, 5, 0, 0, 0, 0};
	put_frame(1, 7, 0, 0, ga, 8); /* GOAWAY last stream 5: 7 not processed */
	headers(1, 5, 0x1, st200);
	finish(run(&g, 1 << 20, false), TXN_END_FIN);
	dump(&g);
	char w[64];
	snprintf(w, sizeof(w), "s1 i0 GET /a -> 0 body 0/0: flags %x",
		 STORE_F_RESET | STORE_F_SERVER_RESET | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "rst: stream reset by the server: reset, server_reset, no_response");
	/* The client side is fed first: its RST_STREAM comes before the
	 * server's HEADERS, which then find the stream closed. */
	snprintf(w, sizeof(w), "s3 i1 POST /b -> 0 body 0/0: flags %x",
		 STORE_F_RESET | STORE_F_INCOMPLETE | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "rst: stream reset by the client mid-request: reset, incomplete");
	TAP_EQ_U64(st.unknown_stream, 1, "rst: the answer to a reset stream is not tracked");
	snprintf(w, sizeof(w), "s7 i3 GET /a -> 0 body 0/0: flags %x",
		 STORE_F_GOAWAY | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "goaway: a stream above the last id: goaway, no_response");
	TAP_OK(has(&g, "s5 i2 GET /a -> 200 body 0/0: flags 0"),
	       "goaway: a stream below the last id completes");
	TAP_EQ_U64(st.rst_streams, 2, "rst: counted");
	TAP_EQ_U64(st.goaway_streams, 1, "goaway: unprocessed streams counted");
	TAP_EQ_U64(g.n, 4, "rst/goaway: every stream emitted once");
}

static void test_bad_frames(void)
{
	struct got g;
	start();
	uint8_t z[16] = {0};
	put_frame(0, 6, 0, 0, z, 7);	/* PING of 7 bytes */
	put_frame(0, 4, 0, 1, z, 6);	/* SETTINGS on a stream */
	put_frame(0, 8, 0, 0, z, 3);	/* WINDOW_UPDATE of 3 bytes */
	put_frame(0, 0, 0, 0, z, 4);	/* DATA on stream 0 */
	put_frame(0, 0xfa, 0, 0, z, 5); /* unknown type: ignored */
	put_frame(0, 9, 0x4, 1, z, 2);	/* CONTINUATION with no block open */
	uint8_t badpad[3] = {9, 'x', 'y'};
	put_frame(0, 0, 0x8, 1, badpad, 3); /* padding past the payload */
	headers(0, 1, 0x1, get_a);
	headers(1, 1, 0x1, st200);
	finish(run(&g, 3, false), TXN_END_FIN);
	dump(&g);
	TAP_EQ_U64(st.bad_frames, 6, "bad frames: each counted");
	TAP_EQ_U64(st.unknown_frames, 1, "bad frames: unknown type counted apart");
	TAP_OK(g.n == 1 && strstr(g.text[0], "s1 i0 GET /a -> 200 body 0/0: flags 0"),
	       "bad frames: skipped by length, the stream after them parses");
}

static void test_broken_block(void)
{
	struct got g;
	start();
	uint8_t b[512];
	size_t n = hpack(0, b, sizeof(b), get_a);
	put_frame(0, 1, 0x1, 1, b, n / 2); /* no END_HEADERS */
	put_frame(0, 6, 0, 0, b, 8);	   /* a PING where a CONTINUATION must be */
	headers(0, 3, 0x1, get_a);
	headers(1, 1, 0x1, st200);
	finish(run(&g, 1 << 20, false), TXN_END_FIN);
	dump(&g);
	TAP_EQ_U64(st.hpack_errors, 1, "broken block: counted as an HPACK loss");
	TAP_OK(st.lost_bytes > 0, "broken block: the client side's later bytes counted lost");
	char w[80];
	snprintf(w, sizeof(w), "s1 i0 GET /a -> 200 body 0/0: flags %x",
		 STORE_F_PARSE_ERROR | STORE_F_INCOMPLETE);
	TAP_OK(g.n == 1 && !strcmp(g.text[0], w),
	       "broken block: stream 1 emitted with parse_error, the fields decoded and its "
	       "response kept");
}

static void test_gaps(void)
{
	struct got g;
	start();
	headers(0, 1, 0x1, get_a);
	headers(1, 1, 0, st200);
	struct got g2;
	(void)g2;
	struct h2_conn *c = run(&g, 1 << 20, false);
	/* a DATA frame of 10 bytes, 4 of them lost */
	uint8_t fh[9] = {0, 0, 10, 0, 1, 0, 0, 0, 1};
	h2_conn_data(c, TXN_DIR_SERVER, fh, 9, 1500);
	h2_conn_data(c, TXN_DIR_SERVER, (const uint8_t *)"abc", 3, 1500);
	h2_conn_gap(c, TXN_DIR_SERVER, 4, 1500);
	h2_conn_data(c, TXN_DIR_SERVER, (const uint8_t *)"xyz", 3, 1500);
	dump(&g);
	char w[80];
	snprintf(w, sizeof(w), "s1 i0 GET /a -> 200 body 6/10:abcxyz (cut) flags %x", STORE_F_GAP);
	TAP_OK(has(&g, w), "gap inside DATA: counted as body, flagged gap, parsing goes on");
	/* a gap in a frame header: the direction is lost */
	dbuf_reset(&wire[0]);
	headers(0, 3, 0x1, get_a);
	h2_conn_data(c, TXN_DIR_CLIENT, wire[0].data, wire[0].len, 1600);
	h2_conn_gap(c, TXN_DIR_SERVER, 5, 1600);
	h2_conn_data(c, TXN_DIR_SERVER, (const uint8_t *)"junkjunk", 8, 1600);
	/* a stream opened after the loss: its response is in bytes not parsed */
	dbuf_reset(&wire[0]);
	headers(0, 5, 0x1, get_a);
	h2_conn_data(c, TXN_DIR_CLIENT, wire[0].data, wire[0].len, 1700);
	finish(c, TXN_END_FIN);
	dump(&g);
	snprintf(w, sizeof(w), "s3 i1 GET /a -> 0 body 0/0: flags %x",
		 STORE_F_GAP | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "gap outside DATA: open streams flagged gap, emitted at the end");
	snprintf(w, sizeof(w), "s5 i2 GET /a -> 0 body 0/0: flags %x",
		 STORE_F_GAP | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "gap outside DATA: a stream opened after it is flagged gap too");
	TAP_EQ_U64(st.lost_bytes, 5 + 8, "gap outside DATA: the bytes after it counted lost");
}

static void test_caps(void)
{
	struct got g;
	start();
	char av[121];
	memset(av, 'a', 120);
	av[120] = 0;
	const char *const huge[] = {":method", "GET", ":path", "/h", "x-big", av, NULL};
	headers(0, 1, 0x1, huge);
	headers(0, 3, 0x1, get_a);
	headers(0, 5, 0x1, get_a);
	headers(1, 3, 0, st200);
	data(1, 3, 0x1, "0123456789");
	headers(1, 1, 0x1, st200);
	prm.max_header_bytes = 230; /* get_a is 209 by RFC 7541 §4.1's count, huge 238 */
	prm.max_body = 4;
	prm.max_streams = 2;
	finish(run(&g, 1 << 20, false), TXN_END_FIN);
	prm.max_header_bytes = prm.max_body = prm.max_streams = 0;
	dump(&g);
	TAP_EQ_U64(st.header_too_large, 1, "caps: header list over the cap counted");
	char w[80];
	snprintf(w, sizeof(w), "s1 i0 GET /h -> 200 body 0/0: flags %x", STORE_F_PARSE_ERROR);
	TAP_OK(has(&g, w), "caps: its session flagged parse_error");
	TAP_OK(has(&g, "s3 i1 GET /a -> 200 body 4/10:0123 (cut) flags 0"),
	       "caps: body kept to the cap, full length and truncation recorded");
	TAP_EQ_U64(st.streams_over_cap, 1, "caps: the third concurrent stream is over the cap");
	TAP_EQ_U64(g.n, 2, "caps: the tracked streams emitted");
}

static void test_end(void)
{
	struct got g;
	start();
	headers(0, 1, 0x1, get_a);
	headers(0, 3, 0, post_b);
	data(0, 3, 0, "part");
	finish(run(&g, 1 << 20, false), TXN_END_RST);
	dump(&g);
	char w[80];
	snprintf(w, sizeof(w), "s1 i0 GET /a -> 0 body 0/0: flags %x",
		 STORE_F_RESET | STORE_F_NO_RESPONSE);
	TAP_OK(has(&g, w), "end: a request never answered: no_response, reset");
	snprintf(w, sizeof(w), "s3 i1 POST /b -> 0 body 0/0: flags %x reqbody part",
		 STORE_F_RESET | STORE_F_NO_RESPONSE | STORE_F_INCOMPLETE);
	TAP_OK(has(&g, w), "end: a request cut: incomplete too");
	TAP_EQ_U64(st.incomplete, 2, "end: counted");
}

static void test_table_size(void)
{
	struct got g;
	start();
	/* The client allows a 64 KiB table; the server's encoder uses it. */
	uint8_t set[6] = {0, 1, 0, 1, 0, 0};
	put_frame(0, 4, 0, 0, set, 6);
	nghttp2_hd_deflate_change_table_size(dfl[1], 65536);
	char v[3000];
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	const char *const big[] = {":status", "200", "x-a", v, "x-b", v, NULL};
	headers(0, 1, 0x1, get_a);
	headers(0, 3, 0x1, get_a);
	headers(1, 1, 0x1, big);
	headers(1, 3, 0x1, big); /* indexed from the big table */
	finish(run(&g, 1 << 20, false), TXN_END_FIN);
	TAP_OK(g.n == 2 && st.hpack_errors == 0,
	       "table size: a larger table from SETTINGS decodes");
}

static void test_preface(void)
{
	TAP_OK(h2_is_preface((const uint8_t *)H2_PREFACE, 24), "preface: whole");
	TAP_OK(h2_is_preface((const uint8_t *)"PRI * HT", 8), "preface: a prefix");
	TAP_OK(!h2_is_preface((const uint8_t *)"PRI", 3), "preface: too short to tell");
	TAP_OK(!h2_is_preface((const uint8_t *)"GET / HTTP/1.1\r\n", 16), "preface: HTTP/1.1");
	uint8_t s[15] = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100};
	TAP_OK(h2_is_server_preface(s, 15), "server preface: SETTINGS on stream 0");
	s[8] = 1;
	TAP_OK(!h2_is_server_preface(s, 15), "server preface: not on a stream");
}

/* Redaction reaches what HTTP/2 adds: the ":path" field and trailer fields. */
static void test_redact(void)
{
#define SL(x) ((struct store_slice){(const uint8_t *)(x), sizeof(x) - 1})
	struct store_header rq[] = {{SL(":method"), SL("GET")},
				    {SL(":path"), SL("/a?token=s3cret&x=1")},
				    {SL("authorization"), SL("Bearer s3cret")}};
	struct store_header tr[] = {{SL("grpc-status"), SL("0")}, {SL("x-api-key"), SL("s3cret")}};
	struct store_session in = {.proto = STORE_PROTO_H2C, .stream_id = 1};
	in.req = (struct store_message){.present = true,
					.method = SL("GET"),
					.target = SL("/a?token=s3cret&x=1"),
					.version_major = 2,
					.headers = rq,
					.n_headers = 3};
	in.resp = (struct store_message){
	    .present = true, .status = 200, .version_major = 2, .trailers = tr, .n_trailers = 2};
	char err[128];
	struct redact *r = redact_create();
	int rc = r ? redact_add(r, "query:token", err, sizeof(err)) |
			 redact_add(r, "header:authorization", err, sizeof(err)) |
			 redact_add(r, "header:x-api-key", err, sizeof(err))
		   : -1;
	struct store_session out;
	rc |= r ? redact_session(r, &in, &out) : -1;
	bool leak = false;
	const struct store_message *m[2] = {&out.req, &out.resp};
	for (int k = 0; k < 2 && !rc; k++) {
		for (size_t i = 0; i < m[k]->n_headers; i++)
			leak |= memmem(m[k]->headers[i].value.ptr, m[k]->headers[i].value.len,
				       "s3cret", 6) != NULL;
		for (size_t i = 0; i < m[k]->n_trailers; i++)
			leak |= memmem(m[k]->trailers[i].value.ptr, m[k]->trailers[i].value.len,
				       "s3cret", 6) != NULL;
	}
	leak |= !rc && memmem(out.req.target.ptr, out.req.target.len, "s3cret", 6) != NULL;
	TAP_OK(!rc && !leak && (out.flags & STORE_F_REDACTED),
	       "redact: :path, headers and trailer fields of an HTTP/2 session masked");
	TAP_OK(!rc && out.req.n_headers == 3 &&
		   out.req.headers[1].value.len == out.req.target.len &&
		   !memcmp(out.req.headers[1].value.ptr, out.req.target.ptr, out.req.target.len),
	       "redact: :path says what the redacted target says");
	redact_free(r);
#undef SL
}

int main(void)
{
	test_preface();
	test_redact();
	test_basic();
	test_continuation();
	test_rst_goaway();
	test_bad_frames();
	test_broken_block();
	test_gaps();
	test_caps();
	test_end();
	test_table_size();
	for (int i = 0; i < 2; i++) {
		nghttp2_hd_deflate_del(dfl[i]);
		dbuf_release(&wire[i]);
	}
	return tap_done();
}
