/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of replay/shadow_pair.h, the bounded table that pairs each
 * shadowed request's production session with its shadow answers (used by
 * `dyetap mirror` and the fast path's --shadow-out through the shadow
 * core): every arrival order, several targets, FIFO per key (two
 * pipelined requests captured in one packet share key and time), sessions
 * nobody waits for, answers without pairing, the cap on answered entries
 * waiting for a lost session, flush at the end, cancel, and the callback
 * taking what it keeps. Run under ASan: a copy freed twice or never shows.
 */
#include <string.h>

#include "common/mem.h"
#include "replay/shadow.h"
#include "replay/shadow_pair.h"
#include "tests/tap.h"

struct seen {
	unsigned n;
	uint64_t prod_id[16]; /* 0: unpaired */
	int status[16][2];    /* the first two answers' status (0 none) */
	unsigned n_res[16];
	bool take; /* the callback keeps prod and res[0] */
	struct store_session *kept_s[16];
	struct store_result *kept_r[16];
};

static void on_complete(void *ctx, struct shadow_pair *p)
{
	struct seen *v = ctx;
	unsigned i = v->n++;
	if (i >= 16)
		return;
	v->prod_id[i] = p->prod ? p->prod->id : 0;
	v->n_res[i] = p->n_res;
	for (int k = 0; k < 2; k++)
		v->status[i][k] = p->res[k] ? p->res[k]->resp.status : 0;
	if (v->take) {
		v->kept_s[i] = p->prod;
		v->kept_r[i] = p->res[0];
		p->prod = NULL;
		p->res[0] = NULL;
	}
}

static struct store_session sess(uint64_t id, int64_t ts)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = id;
	s.ts_req_first_ns = ts;
	s.req.present = true;
	s.req.method = (struct store_slice){(const uint8_t *)"GET", 3};
	return s;
}

static struct store_result *answer(int status)
{
	struct store_result r;
	memset(&r, 0, sizeof(r));
	r.resp.present = true;
	r.resp.status = status;
	return shadow_result_dup(&r);
}

static struct shadow_pairs *table(struct seen *v, size_t max_waiting)
{
	memset(v, 0, sizeof(*v));
	struct shadow_pairs_params p = {
	    .max_waiting = max_waiting, .on_complete = on_complete, .ctx = v};
	return shadow_pairs_create(&p);
}

static void test_orders(void)
{
	struct seen v;
	struct shadow_pairs *t = table(&v, 0);
	TAP_OK(t != NULL, "table created");
	if (!t)
		return;
	/* Answer first, then the session. */
	struct shadow_pair *a = shadow_pairs_add(t, 7, 100, 0, 1, true);
	shadow_pairs_result(t, a, answer(201));
	TAP_OK(v.n == 0 && shadow_pairs_get_stats(t)->waiting == 1,
	       "answered, waiting for its session: not complete yet");
	struct store_session s = sess(11, 100);
	TAP_OK(shadow_pairs_session(t, 7, &s) == 1, "its session matches");
	TAP_OK(v.n == 1 && v.prod_id[0] == 11 && v.status[0][0] == 201 && v.n_res[0] == 1,
	       "complete: production session 11 with answer 201");
	/* Session first, then the answers of two targets. */
	struct shadow_pair *b = shadow_pairs_add(t, 7, 200, 1, 2, true);
	s = sess(12, 200);
	TAP_OK(shadow_pairs_session(t, 7, &s) == 1 && v.n == 1,
	       "session before the answers: matched, not complete");
	shadow_pairs_result(t, b, answer(500));
	TAP_OK(v.n == 1, "one target of two answered: not complete");
	shadow_pairs_result(t, b, answer(200));
	TAP_OK(v.n == 2 && v.prod_id[1] == 12 && v.status[1][0] == 500 && v.status[1][1] == 200,
	       "complete after both targets, answers in arrival order");
	/* A session nobody waits for (its request was dropped). */
	s = sess(13, 300);
	TAP_OK(shadow_pairs_session(t, 7, &s) == 0 && shadow_pairs_get_stats(t)->ignored == 1,
	       "a session no entry waits for is ignored and counted");
	struct store_session *c = shadow_session_dup(&s);
	TAP_OK(shadow_pairs_session_take(t, 9, c) == 0, "an unmatched taken copy is freed");
	const struct shadow_pairs_stats *st = shadow_pairs_get_stats(t);
	TAP_OK(st->added == 2 && st->paired == 2 && st->unpaired == 0 && st->live == 0,
	       "counters: 2 added, 2 paired, none live");
	shadow_pairs_free(t);
}

static void test_fifo(void)
{
	struct seen v;
	struct shadow_pairs *t = table(&v, 0);
	if (!t)
		return;
	/* Two pipelined requests in one packet: same connection, same time. */
	struct shadow_pair *a = shadow_pairs_add(t, 3, 500, 0, 1, true);
	struct shadow_pair *b = shadow_pairs_add(t, 3, 500, 0, 1, true);
	/* Another connection in between, whose key may share a bucket. */
	struct shadow_pair *x = shadow_pairs_add(t, 4, 500, 0, 1, true);
	shadow_pairs_result(t, b, answer(202));
	shadow_pairs_result(t, a, answer(201));
	shadow_pairs_result(t, x, answer(299));
	struct store_session s1 = sess(21, 500), s2 = sess(22, 500), s3 = sess(23, 500);
	shadow_pairs_session(t, 3, &s1);
	shadow_pairs_session(t, 4, &s3);
	shadow_pairs_session(t, 3, &s2);
	TAP_OK(v.n == 3 && v.prod_id[0] == 21 && v.status[0][0] == 201 && v.prod_id[1] == 23 &&
		   v.status[1][0] == 299 && v.prod_id[2] == 22 && v.status[2][0] == 202,
	       "same key and time: the n-th session meets the n-th request (FIFO)");
	/* Many keys, sessions in reverse key order. */
	struct shadow_pair *e[200];
	for (int i = 0; i < 200; i++) {
		e[i] = shadow_pairs_add(t, (uint64_t)i, 1000 + i, 0, 1, true);
		shadow_pairs_result(t, e[i], answer(200 + (i % 50)));
	}
	bool good = true;
	for (int i = 199; i >= 0; i--) {
		struct store_session s = sess(1000 + (uint64_t)i, 1000 + i);
		unsigned before = v.n;
		good &= shadow_pairs_session(t, (uint64_t)i, &s) == 1 && v.n == before + 1;
	}
	TAP_OK(good && shadow_pairs_get_stats(t)->live == 0, "200 keys paired in any order");
	shadow_pairs_free(t);
}

static void test_no_pairing(void)
{
	struct seen v;
	struct shadow_pairs *t = table(&v, 0);
	if (!t)
		return;
	struct shadow_pair *a = shadow_pairs_add(t, 1, 1, 2, 2, false);
	shadow_pairs_result(t, a, NULL);
	shadow_pairs_result(t, a, NULL);
	struct store_session s = sess(5, 1);
	TAP_OK(v.n == 1 && v.prod_id[0] == 0 && shadow_pairs_session(t, 1, &s) == 0,
	       "without pairing an entry completes on its answers; a session is ignored");
	TAP_OK(shadow_pairs_get_stats(t)->unpaired == 0, "... and is not counted unpaired");
	shadow_pairs_free(t);
}

static void test_cap(void)
{
	struct seen v;
	struct shadow_pairs *t = table(&v, 2);
	if (!t)
		return;
	struct shadow_pair *e[4];
	for (int i = 0; i < 4; i++)
		e[i] = shadow_pairs_add(t, 9, 10 * (i + 1), 0, 1, true);
	/* e[3] never gets an answer: it belongs to the sender, never trimmed. */
	shadow_pairs_result(t, e[0], answer(200));
	shadow_pairs_result(t, e[1], answer(200));
	TAP_OK(v.n == 0, "two answered entries waiting: at the cap, nothing dropped");
	shadow_pairs_result(t, e[2], answer(200));
	const struct shadow_pairs_stats *st = shadow_pairs_get_stats(t);
	TAP_OK(v.n == 1 && v.prod_id[0] == 0 && st->trimmed == 1 && st->unpaired == 1 &&
		   st->waiting == 2,
	       "a third: the oldest stops waiting, completed unpaired and counted");
	struct store_session s = sess(31, 10);
	TAP_OK(shadow_pairs_session(t, 9, &s) == 0, "its late session finds nobody");
	s = sess(32, 20);
	TAP_OK(shadow_pairs_session(t, 9, &s) == 1 && v.n == 2 && v.prod_id[1] == 32,
	       "the next one is still paired");
	shadow_pairs_flush(t);
	TAP_OK(v.n == 4 && v.prod_id[2] == 0 && v.prod_id[3] == 0 && v.n_res[3] == 0 &&
		   st->unpaired == 3 && st->live == 0,
	       "flush completes the rest, the unanswered one too, as unpaired");
	shadow_pairs_free(t);
}

static void test_take_and_cancel(void)
{
	struct seen v;
	struct shadow_pairs *t = table(&v, 0);
	if (!t)
		return;
	v.take = true;
	struct shadow_pair *a = shadow_pairs_add(t, 1, 1, 0, 1, true);
	struct store_session s = sess(41, 1);
	shadow_pairs_session(t, 1, &s);
	shadow_pairs_result(t, a, answer(204));
	TAP_OK(v.n == 1 && v.kept_s[0] && v.kept_s[0]->id == 41 && v.kept_r[0] &&
		   v.kept_r[0]->resp.status == 204,
	       "the callback keeps the session and the answer (still valid after it)");
	shadow_free(v.kept_s[0]);
	shadow_free(v.kept_r[0]);
	struct shadow_pair *b = shadow_pairs_add(t, 1, 2, 0, 1, true);
	shadow_pairs_cancel(t, b);
	s = sess(42, 2);
	TAP_OK(v.n == 1 && shadow_pairs_session(t, 1, &s) == 0 &&
		   shadow_pairs_get_stats(t)->live == 0,
	       "a cancelled entry is gone without a callback");
	/* Entries left at free: no callback, no leak. */
	a = shadow_pairs_add(t, 2, 2, 0, 2, true);
	shadow_pairs_result(t, a, answer(200));
	shadow_pairs_free(t);
	TAP_OK(v.n == 1, "free drops what is left without callbacks");
}

int main(void)
{
	test_orders();
	test_fifo();
	test_no_pairing();
	test_cap();
	test_take_and_cancel();
	return tap_done();
}
