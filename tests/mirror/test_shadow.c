/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of replay/shadow.h (session/result copies, token bucket,
 * drop names) and of capture's on_request hook (txn.h): a request is
 * announced when its last byte arrives, before its response, with the
 * conn_id and first-byte time its session is emitted with later, in
 * request order per connection (pipelined requests included).
 */
#include <string.h>

#include "capture/txn.h"
#include "common/mem.h"
#include "replay/shadow.h"
#include "tests/tap.h"

static int slice_is(struct store_slice s, const char *want)
{
	return s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

static struct store_slice sl(const char *s)
{
	return (struct store_slice){(const uint8_t *)s, strlen(s)};
}

static void test_dup(void)
{
	char m[] = "GET", t[] = "/a?b=1", hn[] = "Host", hv[] = "x", body[] = "hello",
	     lane[] = "blue";
	struct store_header h[2] = {{sl(hn), sl(hv)}, {sl("X-A"), sl("1")}};
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = 7;
	s.conn_id = 3;
	s.lane = sl(lane);
	s.req.present = true;
	s.req.method = sl(m);
	s.req.target = sl(t);
	s.req.headers = h;
	s.req.n_headers = 2;
	s.req.body = sl(body);
	s.resp.present = true;
	s.resp.status = 200;
	struct store_session *c = shadow_session_dup(&s);
	TAP_OK(c != NULL, "session copy");
	if (!c)
		return;
	memset(m, 'Z', 3);
	memset(hn, 'Z', 4);
	memset(body, 'Z', 5);
	memset(lane, 'Z', 4);
	TAP_OK(c->id == 7 && c->conn_id == 3 && c->resp.status == 200, "scalars copied");
	TAP_OK(slice_is(c->req.method, "GET") && slice_is(c->req.target, "/a?b=1"),
	       "request line is the copy's own");
	TAP_OK(c->req.n_headers == 2 && slice_is(c->req.headers[0].name, "Host") &&
		   slice_is(c->req.headers[1].value, "1"),
	       "headers are the copy's own");
	TAP_OK(slice_is(c->req.body, "hello") && slice_is(c->lane, "blue"), "body and lane copied");
	TAP_OK(((uintptr_t)c->req.headers & 7) == 0, "header array aligned");
	shadow_free(c);

	struct store_result r;
	memset(&r, 0, sizeof(r));
	char err[] = "boom";
	r.session_id = 9;
	r.target = sl("http://127.0.0.1:1");
	r.role = sl("blue");
	r.error_msg = sl(err);
	r.resp.present = true;
	r.resp.status = 503;
	r.resp.headers = h;
	r.resp.n_headers = 1;
	struct store_result *rc = shadow_result_dup(&r);
	TAP_OK(rc != NULL, "result copy");
	if (!rc)
		return;
	memset(err, 'Z', 4);
	TAP_OK(rc->session_id == 9 && rc->resp.status == 503 && slice_is(rc->error_msg, "boom") &&
		   slice_is(rc->role, "blue") && rc->resp.n_headers == 1,
	       "result fields copied");
	shadow_free(rc);
	shadow_free(NULL);
}

static void test_bucket(void)
{
	struct shadow_bucket b;
	shadow_bucket_init(&b, 100, 0, 0);
	int n = 0;
	for (int i = 0; i < 50; i++)
		n += shadow_bucket_take(&b, 0);
	TAP_EQ_U64(n, 10, "burst is rate/10 tokens");
	n = 0;
	for (int i = 0; i < 50; i++)
		n += shadow_bucket_take(&b, 100000000LL); /* 100 ms later: 10 more */
	TAP_EQ_U64(n, 10, "refills at the rate");
	n = 0;
	for (int i = 0; i < 50; i++)
		n += shadow_bucket_take(&b, 10000000000LL); /* much later: capped at burst */
	TAP_EQ_U64(n, 10, "never more than the burst");
	shadow_bucket_init(&b, 0, 0, 0);
	n = 0;
	for (int i = 0; i < 1000; i++)
		n += shadow_bucket_take(&b, 0);
	TAP_EQ_U64(n, 1000, "rate 0 is unlimited");
	shadow_bucket_init(&b, 2, 0, 0);
	TAP_OK(shadow_bucket_take(&b, 0) && !shadow_bucket_take(&b, 0), "small rates burst 1");
	TAP_EQ_STR(shadow_drop_name(SHADOW_DROP_QUEUE_FULL), "queue_full", "drop name");
	TAP_EQ_STR(shadow_drop_name(SHADOW_DROP_TARGET_DOWN), "target_down", "drop name");
	TAP_EQ_STR(shadow_drop_name(99), "unknown", "unknown drop name");
}

/* ---- on_request hook ---- */

struct ev {
	char kind; /* 'q' request announced, 's' session emitted */
	uint64_t conn_id;
	int64_t ts_first;
	int64_t ts_last;
	char target[32];
	int has_resp;
};

static struct ev evs[32];
static int n_evs;

static void record(char kind, const struct store_session *s)
{
	if (n_evs == 32)
		return;
	struct ev *e = &evs[n_evs++];
	e->kind = kind;
	e->conn_id = s->conn_id;
	e->ts_first = s->ts_req_first_ns;
	e->ts_last = s->ts_req_last_ns;
	size_t n = s->req.target.len < 31 ? s->req.target.len : 31;
	memcpy(e->target, s->req.target.ptr, n);
	e->target[n] = 0;
	e->has_resp = s->resp.present;
}

static void on_req(void *ctx, const struct store_session *s)
{
	(void)ctx;
	record('q', s);
}

static void on_emit(void *ctx, const struct store_session *s)
{
	(void)ctx;
	record('s', s);
}

static void feed(struct txn_conn *c, enum txn_dir d, const char *s, int64_t ts)
{
	txn_conn_data(c, d, (const uint8_t *)s, strlen(s), ts);
}

static void test_hook(void)
{
	struct txn_stats st;
	memset(&st, 0, sizeof(st));
	struct txn_params p = {.emit = on_emit, .on_request = on_req, .stats = &st};
	struct txn_conn_info info = {.ip_version = 4, .conn_id = 42};
	struct txn_conn *c = txn_conn_create(&p, &info);
	TAP_OK(c != NULL, "tracker");
	if (!c)
		return;
	/* request 1 in two segments: announced only when its last byte is in */
	feed(c, TXN_DIR_CLIENT, "GET /one HTTP/1.1\r\nHost: a\r\n", 100);
	TAP_EQ_U64(n_evs, 0, "no announcement before the last byte");
	feed(c, TXN_DIR_CLIENT, "\r\n", 110);
	TAP_EQ_U64(n_evs, 1, "announced at the last byte, before any response");
	/* requests 2 and 3 pipelined in one segment: same first-byte time */
	feed(c, TXN_DIR_CLIENT,
	     "GET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n", 120);
	TAP_EQ_U64(n_evs, 3, "pipelined requests announced at once");
	feed(c, TXN_DIR_SERVER, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 130);
	feed(c, TXN_DIR_SERVER, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", 140);
	feed(c, TXN_DIR_SERVER, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3", 150);
	txn_conn_end(c, TXN_END_FIN, 160);
	txn_conn_free(c);
	TAP_EQ_U64(n_evs, 6, "three announcements, three sessions");
	static const char *const want[] = {"/one", "/two", "/three"};
	for (int i = 0; i < 3 && n_evs == 6; i++) {
		const struct ev *q = &evs[i], *s = &evs[3 + i];
		TAP_OK(q->kind == 'q' && s->kind == 's', "order: announcements first (%d)", i);
		TAP_EQ_STR(q->target, want[i], "announcement %d in request order", i);
		TAP_EQ_STR(s->target, want[i], "session %d in request order", i);
		TAP_OK(q->conn_id == 42 && s->conn_id == 42 && q->ts_first == s->ts_first &&
			   q->ts_last == s->ts_last,
		       "announcement %d pairs with its session by conn_id and times", i);
		TAP_OK(!q->has_resp && s->has_resp, "announcement %d has no response", i);
	}
	TAP_OK(evs[0].ts_first == 100 && evs[0].ts_last == 110, "first/last byte times");

	/* without the hook nothing changes */
	n_evs = 0;
	p.on_request = NULL;
	c = txn_conn_create(&p, &info);
	feed(c, TXN_DIR_CLIENT, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1);
	feed(c, TXN_DIR_SERVER, "HTTP/1.1 204 No Content\r\n\r\n", 2);
	txn_conn_end(c, TXN_END_FIN, 3);
	txn_conn_free(c);
	TAP_OK(n_evs == 1 && evs[0].kind == 's', "no hook: sessions only");
}

int main(void)
{
	test_dup();
	test_bucket();
	test_hook();
	return tap_done();
}
