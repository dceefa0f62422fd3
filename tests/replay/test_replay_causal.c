/* SPDX-License-Identifier: MIT */
/*
 * test_replay_causal - the causal order tracker (replay/replay_causal.h)
 * on hand-made sessions: which gates open when, parking and release,
 * targets, strict order, services, two threads with their horizons and
 * eventfd wake-ups, dropped requests, abandon.
 */
#include <poll.h>
#include <string.h>

#include "replay/replay_causal.h"
#include "tests/tap.h"

#define SZ(s) ((struct store_slice){(const uint8_t *)(s), strlen(s)})

static struct store_session sess(const char *method, int64_t a_ms, int64_t b_ms, uint16_t port)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.ip_version = 4;
	s.dst.addr[0] = 10;
	s.dst.addr[3] = 2;
	s.dst.port = port;
	s.req.present = true;
	s.req.method = SZ(method);
	s.ts_req_first_ns = a_ms * 1000000;
	s.ts_resp_last_ns = b_ms < 0 ? 0 : b_ms * 1000000;
	return s;
}

static int released;
static void *last_obj;

static void on_release(void *ctx, void *obj)
{
	(void)ctx;
	released++;
	last_obj = obj;
}

static struct replay_causal *mk(uint32_t threads, uint32_t targets, bool strict,
				const struct store_session *ss, size_t n)
{
	struct replay_causal_params p = {
	    .n_threads = threads, .n_targets = targets, .strict = strict};
	struct replay_causal *c = replay_causal_create(&p);
	for (size_t i = 0; c && i < n; i++)
		replay_causal_scan(c, &ss[i]);
	if (c && replay_causal_start(c, 0)) {
		replay_causal_free(c);
		return NULL;
	}
	return c;
}

static void test_parse(void)
{
	enum replay_order o;
	TAP_OK(!replay_order_parse("causal", &o) && o == REPLAY_ORDER_CAUSAL &&
		   !replay_order_parse("strict", &o) && o == REPLAY_ORDER_STRICT &&
		   !replay_order_parse("pace", &o) && o == REPLAY_ORDER_PACE &&
		   !replay_order_parse("none", &o) && o == REPLAY_ORDER_NONE &&
		   replay_order_parse("Causal", &o) && replay_order_parse("", &o),
	       "--order values parse, others are refused");
	TAP_OK(!strcmp(replay_order_name(REPLAY_ORDER_STRICT), "strict") &&
		   !strcmp(replay_order_name(REPLAY_ORDER_AUTO), "auto"),
	       "order names");
}

static void test_one_thread(void)
{
	/* Q: PUT 0..10 ms; C: GET 5..8 (concurrent); R: GET 20..; W: POST 30..; X: GET 40. */
	struct store_session ss[] = {sess("PUT", 0, 10, 80), sess("GET", 5, 8, 80),
				     sess("GET", 20, 25, 80), sess("POST", 30, 35, 80),
				     sess("GET", 40, 41, 80)};
	struct replay_causal *c = mk(1, 1, false, ss, 5);
	struct replay_causal_thr *ct = c ? replay_causal_thr_create(c, 0) : NULL;
	TAP_OK(ct && replay_causal_any_write(c) && replay_causal_n_tracked(c) == 1 &&
		   replay_causal_fd(ct) == -1,
	       "one service with writes is tracked; one thread needs no eventfd");
	if (!ct)
		return;
	struct replay_dep d[5];
	for (int i = 0; i < 5; i++)
		replay_causal_read(ct, &ss[i], 0, &d[i]);
	TAP_OK(d[0].write && !d[1].write && d[3].write && d[0].ent && d[2].svc == d[0].svc,
	       "writes and reads are told apart");
	TAP_OK(replay_causal_ready(ct, &d[0], 0) && replay_causal_ready(ct, &d[1], 0) &&
		   !replay_causal_ready(ct, &d[2], 0) && !replay_causal_ready(ct, &d[3], 0),
	       "concurrent requests may go, the read after the write waits");
	int obj_r = 2, obj_w = 3;
	replay_causal_park(ct, &d[2], 0, &obj_r);
	replay_causal_park(ct, &d[3], 0, &obj_w);
	released = 0;
	TAP_OK(replay_causal_release(ct, on_release, NULL, false) == 0 && released == 0 &&
		   replay_causal_n_parked(ct) == 2,
	       "nothing is released before the write finished");
	replay_causal_done(ct, d[1].ent, 0); /* the concurrent read */
	replay_causal_done(ct, d[0].ent, 0); /* the write */
	TAP_OK(
	    replay_causal_release(ct, on_release, NULL, false) == 1 && last_obj == &obj_r &&
		replay_causal_n_parked(ct) == 1,
	    "the write's finish releases the read, not the later write (the read is in its way)");
	TAP_OK(!replay_causal_ready(ct, &d[4], 0), "a read after a pending write waits");
	replay_causal_done(ct, d[2].ent, 0);
	TAP_OK(replay_causal_release(ct, on_release, NULL, false) == 1 && last_obj == &obj_w,
	       "the read's finish releases the write");
	replay_causal_done(ct, d[3].ent, 0);
	TAP_OK(replay_causal_ready(ct, &d[4], 0), "and the write's the last read");
	replay_causal_thr_free(ct);
	replay_causal_free(c);
}

static void test_variants(void)
{
	/* Reads only: nothing tracked unless strict. */
	struct store_session rr[] = {sess("GET", 0, 10, 80), sess("GET", 20, 21, 80)};
	struct replay_causal *c = mk(1, 1, false, rr, 2);
	struct replay_causal_thr *ct = replay_causal_thr_create(c, 0);
	struct replay_dep d[2];
	replay_causal_read(ct, &rr[0], 0, &d[0]);
	replay_causal_read(ct, &rr[1], 0, &d[1]);
	TAP_OK(!replay_causal_any_write(c) && d[1].svc == REPLAY_CAUSAL_NONE &&
		   replay_causal_ready(ct, &d[1], 0),
	       "causal: a read does not wait for a read");
	replay_causal_thr_free(ct);
	replay_causal_free(c);
	c = mk(1, 1, true, rr, 2);
	ct = replay_causal_thr_create(c, 0);
	replay_causal_read(ct, &rr[0], 0, &d[0]);
	replay_causal_read(ct, &rr[1], 0, &d[1]);
	TAP_OK(replay_causal_n_tracked(c) == 1 && !replay_causal_ready(ct, &d[1], 0),
	       "strict: it does");
	replay_causal_done(ct, d[0].ent, 0);
	TAP_OK(replay_causal_ready(ct, &d[1], 0), "strict: until the first read finished");
	replay_causal_thr_free(ct);
	replay_causal_free(c);

	/* Two targets: each has its own watermark. */
	struct store_session wr[] = {sess("DELETE", 0, 10, 80), sess("GET", 20, 21, 80),
				     sess("PATCH", 0, 10, 81), sess("GET", 20, 21, 81)};
	c = mk(1, 2, false, wr, 4);
	ct = replay_causal_thr_create(c, 0);
	struct replay_dep e[4];
	for (int i = 0; i < 4; i++)
		replay_causal_read(ct, &wr[i], 0, &e[i]);
	replay_causal_done(ct, e[0].ent, 1);
	TAP_OK(!replay_causal_ready(ct, &e[1], 0) && replay_causal_ready(ct, &e[1], 1),
	       "a finish on one target opens that target's gate only");
	TAP_OK(replay_causal_n_tracked(c) == 2 && e[2].svc != e[0].svc &&
		   !replay_causal_ready(ct, &e[3], 1),
	       "services (server ports 80 and 81) are apart");
	replay_causal_done(ct, e[2].ent, 0);
	replay_causal_done(ct, e[2].ent, 1);
	TAP_OK(replay_causal_ready(ct, &e[3], 1) && !replay_causal_ready(ct, &e[1], 0),
	       "the other service's write opens its own reads only");
	/* --loop: pass 1 waits for pass 0. */
	struct replay_dep p1;
	replay_causal_read(ct, &wr[0], 1, &p1);
	TAP_OK(p1.start > e[1].start && !replay_causal_ready(ct, &p1, 0),
	       "pass 1's write waits for pass 0's unfinished requests");
	replay_causal_drop(ct, e[0].ent); /* finished everywhere; done twice on target 1 */
	replay_causal_done(ct, e[1].ent, 0);
	replay_causal_done(ct, e[1].ent, 1);
	TAP_OK(replay_causal_ready(ct, &p1, 0), "and goes once they finished");
	replay_causal_thr_free(ct);
	replay_causal_free(c);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1;
}

static void test_threads(void)
{
	/* Thread 0 owns the write Q (0..10 ms), thread 1 the read R (20 ms). */
	struct store_session ss[] = {sess("PUT", 0, 10, 80), sess("GET", 20, 21, 80),
				     sess("GET", 50, 51, 80)};
	struct replay_causal *c = mk(2, 1, false, ss, 3);
	struct replay_causal_thr *t0 = replay_causal_thr_create(c, 0),
				 *t1 = replay_causal_thr_create(c, 1);
	TAP_OK(t0 && t1 && replay_causal_fd(t0) >= 0 && replay_causal_fd(t1) >= 0,
	       "two threads: an eventfd each");
	if (!t0 || !t1)
		return;
	struct replay_dep q, r;
	replay_causal_read(t1, &ss[1], 0, &r);
	replay_causal_horizon(t1, 20000000);
	TAP_OK(!replay_causal_ready(t1, &r, 0),
	       "a read waits while the other thread has not read up to its start");
	replay_causal_read(t0, &ss[0], 0, &q);
	replay_causal_horizon(t0, 50000000); /* thread 0 read up to 50 ms */
	TAP_OK(!replay_causal_ready(t1, &r, 0),
	       "... and while the other thread's write is pending");
	int obj = 1;
	replay_causal_park(t1, &r, 0, &obj);
	released = 0;
	TAP_OK(replay_causal_release(t1, on_release, NULL, true) == 0 &&
		   !readable(replay_causal_fd(t1)),
	       "parked; thread 1 says it waits");
	replay_causal_done(t0, q.ent, 0);
	TAP_OK(readable(replay_causal_fd(t1)), "the write's finish on thread 0 wakes thread 1");
	replay_causal_kick(t1);
	TAP_OK(replay_causal_release(t1, on_release, NULL, false) == 1 && last_obj == &obj &&
		   !readable(replay_causal_fd(t1)),
	       "thread 1 releases the read");

	/* A write thread 1 read but never queued: reading_done drops it. */
	struct store_session w2 = sess("POST", 30, 40, 80);
	struct replay_dep d2, x;
	replay_causal_read(t1, &w2, 0, &d2);
	replay_causal_read(t0, &ss[2], 0, &x);
	TAP_OK(!replay_causal_ready(t0, &x, 0), "a read waits for the other thread's read write");
	replay_causal_reading_done(t1);
	TAP_OK(replay_causal_ready(t0, &x, 0),
	       "reading_done: a write read and not queued is waited for by nobody");

	struct store_session w3 = sess("PUT", 60, 70, 80), r3 = sess("GET", 80, 81, 80);
	struct replay_dep d3, e3;
	replay_causal_read(t0, &w3, 0, &d3);
	replay_causal_queued(d3.ent);
	replay_causal_read(t0, &r3, 0, &e3);
	TAP_OK(!replay_causal_ready(t0, &e3, 0), "a queued write is waited for");
	TAP_OK(replay_causal_abandon(c) && !replay_causal_abandon(c) &&
		   replay_causal_abandoned(c) && replay_causal_ready(t0, &e3, 0) &&
		   readable(replay_causal_fd(t1)),
	       "abandon opens every gate once and wakes every thread");
	replay_causal_thr_free(t0);
	replay_causal_thr_free(t1);
	replay_causal_free(c);
}

int main(void)
{
	test_parse();
	test_one_thread();
	test_variants();
	test_threads();
	return tap_done();
}
