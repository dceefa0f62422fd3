/* SPDX-License-Identifier: MIT */
/*
 * Tests of the results writer queue (replay/replay_wq.c) with a real store
 * writer and reader on a temporary file: records come out complete and in
 * order (including records larger than a queue chunk and records from two
 * producer threads, each with its own producer); a full queue with the DROP policy refuses records
 * and counts them; with the BLOCK policy it holds the producer until the writer makes room, and
 * counts the stall; sessions queued as their recorded bytes come out with their new ids; units
 * (a session and its results) from two threads come out contiguous.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "replay/replay.h"
#include "store/store.h"
#include "tests/tap.h"

#define S(lit) ((struct store_slice){(const uint8_t *)(lit), sizeof(lit) - 1})

static char dir[] = "/tmp/dyetap-wq-XXXXXX";

static struct store_writer *open_writer(const char *path)
{
	char err[256];
	struct store_meta meta = {.kind = "results"};
	struct store_writer_params wp = {.path = path, .meta = &meta, .flush_bytes = 16384};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w)
		printf("# writer: %s\n", err);
	return w;
}

/* A result for session @p id whose body is @p len bytes of (id & 0xff). */
static int add_result(struct replay_wq_prod *q, uint64_t id, size_t len, uint8_t *body)
{
	static const struct store_header hdrs[2] = {
	    {S("Content-Type"), S("text/plain")},
	    {S("X-Seq"), S("yes")},
	};
	memset(body, (int)(id & 0xff), len);
	struct store_result r;
	memset(&r, 0, sizeof(r));
	r.session_id = id;
	r.target = S("http://127.0.0.1:1");
	r.role = S("candidate");
	r.latency_ns = id * 10;
	r.resp.present = true;
	r.resp.status = 200;
	r.resp.reason = S("OK");
	r.resp.version_major = 1;
	r.resp.version_minor = 1;
	r.resp.headers = hdrs;
	r.resp.n_headers = 2;
	r.resp.body.ptr = body;
	r.resp.body.len = len;
	r.resp.body_len = len;
	return replay_wq_add_result(q, &r);
}

static int add_session(struct replay_wq_prod *q, uint64_t id)
{
	static const struct store_header hdrs[1] = {{S("Host"), S("example.test")}};
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = id;
	s.conn_id = id / 4;
	s.ip_version = 4;
	s.lane = S("blue");
	s.ts_req_first_ns = (int64_t)id * 1000;
	s.req.present = true;
	s.req.method = S("GET");
	s.req.target = S("/x");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.req.headers = hdrs;
	s.req.n_headers = 1;
	return replay_wq_add_session(q, &s);
}

/* Read @p path back: count records, check the result bodies and that ids
 * of each kind increase when @p ordered. Returns the record count. */
static size_t read_back(const char *path, bool ordered, size_t *bad)
{
	char err[256];
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r) {
		printf("# reader: %s\n", err);
		return 0;
	}
	const struct store_record *rec;
	size_t n = 0;
	uint64_t last_s = 0, last_r = 0;
	*bad = 0;
	while (store_reader_next(r, &rec) > 0) {
		n++;
		if (rec->type == STORE_REC_SESSION) {
			const struct store_session *s = &rec->u.session;
			if ((ordered && s->id < last_s) || s->lane.len != 4 ||
			    memcmp(s->lane.ptr, "blue", 4) || s->req.n_headers != 1 ||
			    s->req.headers[0].value.len != 12)
				(*bad)++;
			last_s = s->id;
			continue;
		}
		const struct store_result *res = &rec->u.result;
		bool ok = res->resp.n_headers == 2 && res->resp.headers[1].name.len == 5 &&
			  !memcmp(res->resp.headers[1].name.ptr, "X-Seq", 5) &&
			  res->role.len == 9 && res->latency_ns == res->session_id * 10;
		for (size_t i = 0; ok && i < res->resp.body.len; i++)
			ok = res->resp.body.ptr[i] == (uint8_t)(res->session_id & 0xff);
		if (!ok || (ordered && res->session_id < last_r))
			(*bad)++;
		last_r = res->session_id;
	}
	store_reader_free(r);
	return n;
}

static uint8_t body[600 * 1024];

static void test_order(void)
{
	char path[64], err[256];
	snprintf(path, sizeof(path), "%s/order.dyt", dir);
	struct store_writer *w = open_writer(path);
	struct replay_wq_params p = {.writer = w, .max_bytes = 1u << 20};
	struct replay_wq *q = w ? replay_wq_create(&p, err, sizeof(err)) : NULL;
	TAP_OK(q != NULL, "queue created");
	if (!q)
		return;
	struct replay_wq_prod *pr = replay_wq_prod_create(q);
	int fails = 0;
	for (uint64_t i = 1; i <= 3000; i++) {
		fails += add_session(pr, i) != 0;
		/* Every 500th body is bigger than a 256 KiB chunk. */
		fails += add_result(pr, i, i % 500 == 0 ? 300 * 1024 : (size_t)(i % 97), body) != 0;
		if (i == 1500)
			replay_wq_prod_flush(pr); /* a partly filled chunk in the middle */
	}
	TAP_EQ_U64(fails, 0, "6000 records queued");
	replay_wq_prod_flush(pr);
	TAP_EQ_U64(replay_wq_finish(q), 0, "finish: no writer error");
	struct replay_wq_stats st;
	replay_wq_get_stats(q, &st);
	TAP_EQ_U64(st.queued, 6000, "queued counter");
	TAP_EQ_U64(st.written, 6000, "written counter");
	TAP_EQ_U64(st.queued_bytes, 0, "nothing left queued");
	TAP_OK(st.max_bytes > 0 && st.max_bytes <= (1u << 20) + 400 * 1024,
	       "high-water mark within the bound (+ one oversized record): %zu", st.max_bytes);
	TAP_OK(add_session(pr, 1) == -EPIPE, "adds after finish are refused");
	replay_wq_prod_free(pr);
	replay_wq_free(q);
	TAP_EQ_U64(store_writer_close(w, NULL, 0, err, sizeof(err)), 0, "writer closed");
	size_t bad = 0;
	TAP_EQ_U64(read_back(path, true, &bad), 6000, "all 6000 records in the file");
	TAP_EQ_U64(bad, 0, "records complete and in order");
	unlink(path);
}

static void test_drop(void)
{
	char path[64], err[256];
	snprintf(path, sizeof(path), "%s/drop.dyt", dir);
	struct store_writer *w = open_writer(path);
	struct replay_wq_params p = {.writer = w, .max_bytes = 8192, .policy = REPLAY_WQ_DROP};
	struct replay_wq *q = w ? replay_wq_create(&p, err, sizeof(err)) : NULL;
	TAP_OK(q != NULL, "drop queue created");
	if (!q)
		return;
	replay_wq_hold(q, true); /* the writer takes nothing: the queue fills */
	struct replay_wq_prod *pr = replay_wq_prod_create(q);
	uint64_t ok = 0, refused = 0, other = 0;
	for (uint64_t i = 1; i <= 100; i++) {
		int rc = add_result(pr, i, 1000, body);
		if (rc == 0)
			ok++;
		else if (rc == -ENOBUFS)
			refused++;
		else
			other++;
	}
	TAP_OK(ok >= 4 && ok <= 8, "about 8 KiB of 1 KiB records accepted (%llu)",
	       (unsigned long long)ok);
	TAP_EQ_U64(ok + refused, 100, "the rest refused with -ENOBUFS");
	TAP_EQ_U64(other, 0, "no other errors");
	struct replay_wq_stats st;
	replay_wq_get_stats(q, &st);
	TAP_EQ_U64(st.dropped, refused, "dropped counter matches the refusals");
	TAP_EQ_U64(st.queued, ok, "queued counter matches the accepted");
	TAP_EQ_U64(st.written, 0, "held: nothing written yet");
	replay_wq_prod_free(pr);
	replay_wq_hold(q, false);
	TAP_EQ_U64(replay_wq_finish(q), 0, "finish after release");
	replay_wq_get_stats(q, &st);
	TAP_EQ_U64(st.written, ok, "every accepted record written");
	replay_wq_free(q);
	store_writer_close(w, NULL, 0, err, sizeof(err));
	size_t bad = 0;
	TAP_EQ_U64(read_back(path, true, &bad), ok, "the file holds exactly the accepted records");
	TAP_EQ_U64(bad, 0, "accepted records intact");
	unlink(path);
}

struct producer {
	struct replay_wq *q;
	uint64_t first, n;
	atomic_uint_fast64_t done;
	int fails;
	uint8_t body[2048];
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	struct replay_wq_prod *h = replay_wq_prod_create(pr->q);
	for (uint64_t i = 0; i < pr->n; i++) {
		pr->fails += add_result(h, pr->first + i, 1000, pr->body) != 0;
		atomic_fetch_add(&pr->done, 1);
	}
	replay_wq_prod_free(h);
	return NULL;
}

static void test_block(void)
{
	char path[64], err[256];
	snprintf(path, sizeof(path), "%s/block.dyt", dir);
	struct store_writer *w = open_writer(path);
	struct replay_wq_params p = {.writer = w, .max_bytes = 8192, .policy = REPLAY_WQ_BLOCK};
	struct replay_wq *q = w ? replay_wq_create(&p, err, sizeof(err)) : NULL;
	TAP_OK(q != NULL, "block queue created");
	if (!q)
		return;
	replay_wq_hold(q, true);
	static struct producer a, b;
	a.q = b.q = q;
	a.first = 1;
	b.first = 1001;
	a.n = b.n = 50;
	pthread_t ta, tb;
	pthread_create(&ta, NULL, produce, &a);
	pthread_create(&tb, NULL, produce, &b);
	usleep(300 * 1000);
	uint64_t done = atomic_load(&a.done) + atomic_load(&b.done);
	TAP_OK(done < 100, "producers are held while the queue is full (%llu of 100 added)",
	       (unsigned long long)done);
	struct replay_wq_stats st;
	replay_wq_get_stats(q, &st);
	TAP_EQ_U64(st.stalls, 2, "each blocked producer counted one stall");
	TAP_EQ_U64(st.dropped, 0, "nothing dropped");
	replay_wq_hold(q, false);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	TAP_EQ_U64(a.fails + b.fails, 0, "every add succeeded once room was made");
	TAP_EQ_U64(replay_wq_finish(q), 0, "finish");
	replay_wq_get_stats(q, &st);
	TAP_EQ_U64(st.written, 100, "all 100 records written");
	TAP_OK(st.stalls >= 2, "stall counter kept (%llu)", (unsigned long long)st.stalls);
	replay_wq_free(q);
	store_writer_close(w, NULL, 0, err, sizeof(err));
	size_t bad = 0;
	/* Two producers interleave, so only completeness is checked here. */
	TAP_EQ_U64(read_back(path, false, &bad), 100, "the file holds all 100 records");
	TAP_EQ_U64(bad, 0, "records intact");
	unlink(path);
}

/* Sessions queued as their recorded bytes (replay_wq_add_session_raw) reach
 * the file with the new ids, every other field intact, in queue order with
 * the results around them. */
static void test_raw(void)
{
	char src[64], path[64], err[256];
	snprintf(src, sizeof(src), "%s/raw-src.dyt", dir);
	snprintf(path, sizeof(path), "%s/raw.dyt", dir);
	struct store_writer *sw = open_writer(src);
	struct replay_wq_params sp = {.writer = sw};
	struct replay_wq *sq = sw ? replay_wq_create(&sp, err, sizeof(err)) : NULL;
	struct replay_wq_prod *spr = sq ? replay_wq_prod_create(sq) : NULL;
	int fails = !spr;
	for (uint64_t i = 1; spr && i <= 500; i++)
		fails += add_session(spr, i) != 0;
	replay_wq_prod_free(spr);
	replay_wq_free(sq);
	fails += !sw || store_writer_close(sw, NULL, 0, err, sizeof(err)) != 0;
	TAP_EQ_U64(fails, 0, "raw: 500 source sessions written");

	struct store_writer *w = open_writer(path);
	struct replay_wq_params p = {.writer = w, .max_bytes = 64 * 1024};
	struct replay_wq *q = w ? replay_wq_create(&p, err, sizeof(err)) : NULL;
	struct replay_wq_prod *pr = q ? replay_wq_prod_create(q) : NULL;
	struct store_reader *r = pr ? store_reader_open(src, err, sizeof(err)) : NULL;
	const struct store_record *rec;
	size_t n = 0;
	while (r && store_reader_next(r, &rec) > 0) {
		const struct store_session *ss = &rec->u.session;
		struct store_raw_record raw = store_reader_raw(r);
		fails += replay_wq_add_session_raw(pr, &raw, ss->id + 100000, ss->conn_id + 7,
						   ss->ts_req_first_ns) != 0;
		fails += add_result(pr, ss->id + 100000, (size_t)(ss->id % 50), body) != 0;
		n++;
	}
	store_reader_free(r);
	TAP_OK(n == 500 && !fails, "raw: 500 sessions and 500 results queued (%zu, %d failed)", n,
	       fails);
	replay_wq_prod_free(pr);
	TAP_EQ_U64(q ? replay_wq_finish(q) : 1, 0, "raw: finish without a writer error");
	replay_wq_free(q);
	TAP_EQ_U64(w ? store_writer_close(w, NULL, 0, err, sizeof(err)) : 1, 0,
		   "raw: writer closed");
	size_t bad = 0;
	TAP_EQ_U64(read_back(path, true, &bad), 1000, "raw: 1000 records in the file");
	TAP_EQ_U64(bad, 0, "raw: records complete, each kind in order");
	/* Each session carries its new ids and is followed by its result. */
	r = store_reader_open(path, err, sizeof(err));
	uint64_t expect = 100001, wrong = 0, prev_session = 0;
	while (r && store_reader_next(r, &rec) > 0) {
		if (rec->type == STORE_REC_SESSION) {
			const struct store_session *ss = &rec->u.session;
			wrong += ss->id != expect || ss->conn_id != (ss->id - 100000) / 4 + 7 ||
				 ss->ts_req_first_ns != (int64_t)(ss->id - 100000) * 1000;
			prev_session = ss->id;
		} else {
			wrong += rec->u.result.session_id != prev_session;
			expect++;
		}
	}
	store_reader_free(r);
	TAP_EQ_U64(wrong, 0, "raw: new ids, timestamps kept, each session before its result");
	unlink(src);
	unlink(path);
}

/* Units from two producer threads reach the file contiguous: every result
 * directly follows its session or a result of the same session (the
 * results file's result_lag 0, docs/format.md). */
struct unit_arg {
	struct replay_wq *q;
	uint64_t first;
	int fails;
};

static void *unit_thread(void *arg)
{
	struct unit_arg *a = arg;
	struct replay_wq_prod *pr = replay_wq_prod_create(a->q);
	static const struct store_header hdrs[1] = {{S("Host"), S("example.test")}};
	static const struct store_header rh[2] = {
	    {S("Content-Type"), S("text/plain")},
	    {S("X-Seq"), S("yes")},
	};
	static uint8_t bodies[2][400 * 1024];
	uint8_t *b = bodies[a->first > 1];
	for (uint64_t i = a->first; pr && i < a->first + 2000; i++) {
		struct store_session s;
		memset(&s, 0, sizeof(s));
		s.id = i;
		s.ip_version = 4;
		s.lane = S("blue");
		s.req.present = true;
		s.req.method = S("GET");
		s.req.target = S("/x");
		s.req.headers = hdrs;
		s.req.n_headers = 1;
		struct replay_wq_unit *u = replay_wq_unit_session(pr, &s);
		/* two results, every 400th larger than a queue chunk */
		size_t len = i % 400 == 0 ? 300 * 1024 : (size_t)(i % 61);
		memset(b, (int)(i & 0xff), len);
		for (int k = 0; u && k < 2; k++) {
			struct store_result r;
			memset(&r, 0, sizeof(r));
			r.session_id = i;
			r.role = S("candidate");
			r.latency_ns = i * 10;
			r.resp.present = true;
			r.resp.status = 200;
			r.resp.headers = rh;
			r.resp.n_headers = 2;
			r.resp.body.ptr = b;
			r.resp.body.len = len;
			a->fails += replay_wq_unit_result(u, &r) != 0;
		}
		a->fails += !u || replay_wq_unit_records(u) != 3;
		a->fails += u ? replay_wq_add_unit(pr, u) != 0 : 1;
	}
	a->fails += !pr;
	replay_wq_prod_free(pr);
	return NULL;
}

static void test_units(void)
{
	char path[64], err[256];
	snprintf(path, sizeof(path), "%s/units.dyt", dir);
	struct store_writer *w = open_writer(path);
	struct replay_wq_params p = {.writer = w, .max_bytes = 512 * 1024};
	struct replay_wq *q = w ? replay_wq_create(&p, err, sizeof(err)) : NULL;
	TAP_OK(q != NULL, "units: queue created");
	if (!q)
		return;
	struct unit_arg a[2] = {{.q = q, .first = 1}, {.q = q, .first = 1000001}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, unit_thread, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	TAP_EQ_U64((uint64_t)(a[0].fails + a[1].fails), 0, "units: 4000 units of 3 records queued");
	TAP_EQ_U64(replay_wq_finish(q), 0, "units: finish without a writer error");
	replay_wq_free(q);
	TAP_EQ_U64(store_writer_close(w, NULL, 0, err, sizeof(err)), 0, "units: writer closed");
	size_t bad = 0;
	TAP_EQ_U64(read_back(path, false, &bad), 12000, "units: 12000 records in the file");
	TAP_EQ_U64(bad, 0, "units: records complete");
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	uint64_t cur = 0, run = 0, apart = 0, short_units = 0;
	while (r && store_reader_next(r, &rec) > 0) {
		if (rec->type == STORE_REC_SESSION) {
			short_units += cur && run != 2;
			cur = rec->u.session.id;
			run = 0;
		} else {
			apart += rec->u.result.session_id != cur;
			run++;
		}
	}
	short_units += run != 2;
	store_reader_free(r);
	TAP_EQ_U64(apart, 0, "units: every result directly after its session");
	TAP_EQ_U64(short_units, 0, "units: each session followed by both its results");
	unlink(path);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP cannot create a temporary directory\n");
		return 0;
	}
	test_order();
	test_drop();
	test_block();
	test_raw();
	test_units();
	rmdir(dir);
	return tap_done();
}
