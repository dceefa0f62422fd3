/* SPDX-License-Identifier: MIT */
/*
 * fp_shadow.c - shadowing in the fast path (`--lane LANE=URL`): colored
 * requests seen by the workers' capture pipelines are sent to their lane's
 * targets by the shadow sender, the replay engine of `dyetap replay` and
 * `dyetap mirror` (replay/replay.h, replay/shadow.h).
 *
 * Who does what:
 *  - a worker's pipeline calls fp_shadow_on_request() at a request's last
 *    captured byte (pipe_params.on_request). The worker checks it
 *    (shadow_request_admit: cut, write method, tunnel), copies it
 *    (shadow_session_dup) and enqueues the copy on its own bounded SP/SC
 *    ring to the sender. It never waits: a full ring drops the request and
 *    counts it (`ring_full`, and the lane's `queue_full`).
 *  - the sender is one ordinary thread (rte_ctrl_thread_create: on the
 *    CPUs left to control threads, never an RX or worker lcore). It drains
 *    the rings, applies the lane's limits (target down in the last second,
 *    --queue per target, --lane-rate token bucket) and submits to the
 *    lane's engine, one engine per lane, every target of the lane getting
 *    each request; requests of one captured connection go in order on one
 *    target connection (flow key = worker and pipeline connection id).
 *    Between rings it runs the engines in short slices (epoll).
 *  - RX lcores never see any of it: shadowing only costs worker time.
 *
 * Counters: one struct fp_sh_stats per thread (each worker, the sender),
 * single writer, relaxed stores; readers (control lcore, telemetry) sum.
 * The engines' own counters are copied into the sender's struct after each
 * slice, so no other thread reads engine memory.
 *
 * Stop: after the workers stopped (every request is in a ring), the sender
 * takes the rest of the rings, waits up to --drain-timeout for the answers,
 * then drops what is still queued (`stopped`) and fails what is in flight.
 *
 * References: DPDK lib/ring (SP/SC), lib/eal rte_ctrl_thread_create,
 * replay/replay.h (engine), replay/shadow.h, docs/mirror.md (same drop
 * reasons and counters), docs/dpdk.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include "common/clock.h"
#include "common/mem.h"
#include "dpdk/fp_private.h"

#define SH_BURST 32
/*
 * How long the sender waits in epoll before looking at the rings again:
 * 200 us while requests came in the last 10 ms, else 1 ms (an idle sender
 * then wakes 1000 times a second, not 5000).
 */
#define SH_WAIT_BUSY 200000
#define SH_WAIT_IDLE 1000000
#define SH_BUSY_NS   10000000

/* --- options ---------------------------------------------------------------- */

static struct fp_sh_lane *lane_find(const uint8_t *name, size_t len)
{
	struct fp_shadow *sh = &fp_app.sh;
	for (unsigned i = 0; i < sh->nlanes; i++)
		if (strlen(sh->lanes[i].name) == len && !memcmp(sh->lanes[i].name, name, len))
			return &sh->lanes[i];
	return NULL;
}

/* The lane named before '=' in "LANE=..." (created if new); *rest after '='. */
static int lane_of_arg(char *arg, char **rest, struct fp_sh_lane **out, char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	size_t len;

	if (shadow_lane_arg(arg, &len, rest)) {
		snprintf(err, errlen, "'%s': expected LANE=...", arg);
		return -EINVAL;
	}
	*out = lane_find((const uint8_t *)arg, len);
	if (*out)
		return 0;
	if (len >= sizeof(sh->lanes[0].name)) {
		snprintf(err, errlen, "lane name '%.*s' is too long", (int)len, arg);
		return -EINVAL;
	}
	if (sh->nlanes == FP_MAX_LANES) {
		snprintf(err, errlen, "at most %d lanes", FP_MAX_LANES);
		return -E2BIG;
	}
	*out = &sh->lanes[sh->nlanes++];
	memcpy((*out)->name, arg, len);
	(*out)->name[len] = 0;
	return 0;
}

int fp_shadow_parse_lane(char *arg, char *err, size_t errlen)
{
	struct fp_sh_lane *l;
	char *p;
	int rc = lane_of_arg(arg, &p, &l, err, errlen);
	size_t n;

	if (rc)
		return rc;
	n = l->n_urls;
	rc = shadow_lane_urls(p, l->urls, &n, FP_SH_TARGETS);
	if (rc == -E2BIG) {
		snprintf(err, errlen, "lane %s: at most %d targets", l->name, FP_SH_TARGETS);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "lane %s: empty target URL", l->name);
		return rc;
	}
	for (size_t i = l->n_urls; i < n; i++) {
		struct replay_url u;
		rc = replay_url_parse(l->urls[i], &u, err, errlen);
		if (rc)
			return rc;
	}
	l->n_urls = (unsigned)n;
	return 0;
}

int fp_shadow_parse_rate(char *arg, char *err, size_t errlen)
{
	struct fp_sh_lane *l;
	char *num;
	int rc = lane_of_arg(arg, &num, &l, err, errlen);

	if (rc)
		return rc;
	if (shadow_rate_parse(num, &l->rate)) {
		snprintf(err, errlen, "'%s': expected a rate N or N/s above 0", num);
		return -EINVAL;
	}
	return 0;
}

/* --- setup ------------------------------------------------------------------ */

static void on_done(void *ctx, void *user, const struct store_result *r);

int fp_shadow_setup(char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	int64_t now = clk_mono_ns();

	for (unsigned w = 0; w < fp_app.nwk; w++) {
		char name[RTE_RING_NAMESIZE];
		snprintf(name, sizeof(name), "fp_shadow_%u", w);
		fp_app.wk[w]->shring =
		    rte_ring_create(name, sh->ring_size, (int)rte_socket_id(),
				    RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
		if (!fp_app.wk[w]->shring) {
			snprintf(err, errlen, "cannot create ring %s: %s", name,
				 rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < sh->nlanes; i++) {
		struct fp_sh_lane *l = &sh->lanes[i];
		struct replay_target t[FP_SH_TARGETS];
		char e[512];
		for (unsigned k = 0; k < l->n_urls; k++)
			t[k] = (struct replay_target){.url = l->urls[k], .role = l->name};
		struct replay_engine_params ep = {
		    .targets = t,
		    .n_targets = l->n_urls,
		    .timeout_ns = sh->timeout_ns,
		    .rewrite = &sh->rw,
		    .on_done = on_done,
		    .ctx = l,
		};
		l->eng = replay_engine_create(&ep, e, sizeof(e));
		if (!l->eng) {
			snprintf(err, errlen, "lane %s: %s", l->name, e);
			return -EINVAL;
		}
		shadow_bucket_init(&l->bucket, l->rate, 0, now);
	}
	return 0;
}

/* --- worker side -------------------------------------------------------------- */

static inline void drop(struct fp_sh_stats *st, unsigned lane, enum shadow_drop why)
{
	FP_INC(st->lane[lane].dropped[why]);
}

void fp_shadow_on_request(void *ctx, const struct store_session *s)
{
	struct fp_worker *w = ctx;
	struct fp_sh_stats *st = &w->sh;
	struct fp_sh_lane *l;
	struct fp_sh_item *it;
	enum shadow_drop why;
	unsigned li;

	FP_INC(st->requests);
	if (!s->lane.len)
		return;
	FP_INC(st->colored);
	l = lane_find(s->lane.ptr, s->lane.len);
	if (!l) {
		FP_INC(st->no_lane);
		return;
	}
	li = (unsigned)(l - fp_app.sh.lanes);
	FP_INC(st->lane[li].colored);
	if (!shadow_request_admit(s, fp_app.sh.allow_writes, &why)) {
		drop(st, li, why);
		return;
	}
	/* Cheap early test; the enqueue below decides. */
	if (!rte_ring_free_count(w->shring)) {
		FP_INC(st->ring_full);
		drop(st, li, SHADOW_DROP_QUEUE_FULL);
		return;
	}
	it = mem_alloc(sizeof(*it));
	if (!it || !(it->s = shadow_session_dup(s))) {
		mem_free(it);
		drop(st, li, SHADOW_DROP_NO_MEMORY);
		return;
	}
	it->flow_key = (uint64_t)w->idx << 56 ^ s->conn_id;
	it->lane = li;
	it->session = false;
	if (rte_ring_sp_enqueue(w->shring, it)) {
		shadow_free(it->s);
		mem_free(it);
		FP_INC(st->ring_full);
		drop(st, li, SHADOW_DROP_QUEUE_FULL);
		return;
	}
	FP_INC(st->queued);
}

void fp_shadow_on_session(struct fp_worker *w, const struct store_session *s)
{
	struct fp_sh_lane *l;
	struct fp_sh_item *it;

	if (!s->lane.len || !s->req.present || !(l = lane_find(s->lane.ptr, s->lane.len)))
		return;
	it = mem_alloc(sizeof(*it));
	if (!it || !(it->s = shadow_session_dup(s))) {
		mem_free(it);
		FP_INC(w->sh.out_lost);
		return;
	}
	it->flow_key = (uint64_t)w->idx << 56 ^ s->conn_id;
	it->lane = (unsigned)(l - fp_app.sh.lanes);
	it->session = true;
	if (rte_ring_sp_enqueue(w->shring, it)) {
		shadow_free(it->s);
		mem_free(it);
		FP_INC(w->sh.out_lost);
	}
}

/* --- sender: --shadow-out pairing --------------------------------------------- */

/*
 * One request sent with --shadow-out, until its production session (from
 * the worker's sink, after the response) and every target's answer are in;
 * then both are written (session, then its results), as `dyetap mirror -w`.
 */
struct sh_entry {
	struct sh_entry *chain;	      /* hash chain while waiting for the production session */
	struct sh_entry *prev, *next; /* every live entry */
	uint64_t flow_key;
	int64_t ts_first;
	unsigned lane;
	unsigned n_done;
	struct store_session *prod;
	struct store_result *res[FP_SH_TARGETS];
};

#define SH_HASH 4096
static struct sh_entry *sh_hash[SH_HASH];
static struct sh_entry sh_all = {.prev = &sh_all, .next = &sh_all};
static uint64_t sh_next_id;
static uint64_t sh_live;     /* entries in sh_all */
static uint64_t sh_live_max; /* answered entries still waiting are written unpaired over it */

static size_t hash_of(uint64_t flow_key, int64_t ts)
{
	return (size_t)(((flow_key ^ (uint64_t)ts) * 0x9E3779B97F4A7C15ULL) >> 52) % SH_HASH;
}

static struct sh_entry **hash_slot(uint64_t flow_key, int64_t ts)
{
	struct sh_entry **pp = &sh_hash[hash_of(flow_key, ts)];
	while (*pp && ((*pp)->flow_key != flow_key || (*pp)->ts_first != ts))
		pp = &(*pp)->chain;
	return pp;
}

/* Write what @p e holds (nothing without its production session) and free it. */
static void entry_finish(struct sh_entry *e)
{
	struct fp_shadow *sh = &fp_app.sh;
	if (e->prod) {
		e->prod->id = ++sh_next_id;
		e->prod->conn_id = e->flow_key; /* unique over workers */
		if (store_writer_add_session(sh->out, e->prod) < 0)
			FP_INC(sh->st.out_errors);
		else
			FP_INC(sh->st.out_sessions);
		for (unsigned i = 0; i < e->n_done && i < FP_SH_TARGETS; i++) {
			if (!e->res[i])
				continue;
			e->res[i]->session_id = e->prod->id;
			if (store_writer_add_result(sh->out, e->res[i]) < 0)
				FP_INC(sh->st.out_errors);
			else
				FP_INC(sh->st.out_results);
		}
	} else {
		FP_INC(sh->st.out_unpaired);
	}
	e->prev->next = e->next;
	e->next->prev = e->prev;
	sh_live--;
	for (unsigned i = 0; i < FP_SH_TARGETS; i++)
		shadow_free(e->res[i]);
	shadow_free(e->prod);
	mem_free(e);
}

/* A production session: pair it with its request's entry, or drop it. Frees @p it. */
static void take_session(struct fp_sh_item *it)
{
	struct sh_entry **pp = hash_slot(it->flow_key, it->s->ts_req_first_ns);
	struct sh_entry *e = *pp;

	if (!e) { /* its request was not sent (dropped) */
		shadow_free(it->s);
		mem_free(it);
		return;
	}
	*pp = e->chain;
	e->chain = NULL;
	e->prod = it->s;
	mem_free(it);
	if (e->n_done == fp_app.sh.lanes[e->lane].n_urls)
		entry_finish(e);
}

/*
 * Bound the entries: a production session lost on the way (out_lost) would
 * leave its request's entry waiting until the end. Over sh_live_max, the
 * oldest entries whose targets all answered stop waiting (out_unpaired);
 * entries still in flight are the engine's (bounded by --queue).
 */
static void entries_trim(void)
{
	struct sh_entry *e = sh_all.next;
	while (sh_live > sh_live_max && e != &sh_all) {
		struct sh_entry *next = e->next;
		if (!e->prod && e->n_done == fp_app.sh.lanes[e->lane].n_urls) {
			struct sh_entry **pp = &sh_hash[hash_of(e->flow_key, e->ts_first)];
			while (*pp && *pp != e)
				pp = &(*pp)->chain;
			if (*pp)
				*pp = e->chain;
			entry_finish(e);
		}
		e = next;
	}
}

/* At the end: write what every entry holds. */
static void entries_flush(void)
{
	memset(sh_hash, 0, sizeof(sh_hash));
	while (sh_all.next != &sh_all)
		entry_finish(sh_all.next);
}

/* --- sender ----------------------------------------------------------------- */

/* A shadow answer or error from one target of lane @p ctx; @p user: its entry or NULL. */
static void on_done(void *ctx, void *user, const struct store_result *r)
{
	struct fp_sh_lane *l = ctx;
	struct sh_entry *e = user;
	if (r->error == STORE_ERR_REFUSED || r->error == STORE_ERR_CONNECT)
		l->down_until = clk_mono_ns() + 1000000000LL;
	if (!e)
		return;
	if (e->n_done < FP_SH_TARGETS)
		e->res[e->n_done] = shadow_result_dup(r);
	e->n_done++;
	if (e->prod && e->n_done == l->n_urls)
		entry_finish(e);
}

/* Copy the engines' counters into the sender's (readers never touch an engine). */
static void publish(void)
{
	struct fp_shadow *sh = &fp_app.sh;
	for (unsigned i = 0; i < sh->nlanes; i++) {
		const struct replay_stats *rs = replay_engine_stats(sh->lanes[i].eng);
		struct fp_sh_lane_ctr *c = &sh->st.lane[i];
		__atomic_store_n(&c->sent, rs->sent, __ATOMIC_RELAXED);
		__atomic_store_n(&c->ok, rs->ok, __ATOMIC_RELAXED);
		__atomic_store_n(&c->errors, replay_stats_errors(rs), __ATOMIC_RELAXED);
		__atomic_store_n(&c->err_refused, rs->err_refused, __ATOMIC_RELAXED);
		__atomic_store_n(&c->err_reset, rs->err_reset, __ATOMIC_RELAXED);
		__atomic_store_n(&c->err_timeout, rs->err_timeout, __ATOMIC_RELAXED);
		__atomic_store_n(&c->err_other,
				 rs->err_connect + rs->err_tls + rs->err_bad_response +
				     rs->err_other,
				 __ATOMIC_RELAXED);
	}
}

/* Submit one request from a ring, or drop it with its reason; frees @p it. */
static void submit(struct fp_sh_item *it)
{
	struct fp_shadow *sh = &fp_app.sh;
	struct fp_sh_lane *l = &sh->lanes[it->lane];
	int64_t now = clk_mono_ns();
	struct sh_entry *e = NULL;

	if (it->session) {
		take_session(it);
		return;
	}
	if (now < l->down_until)
		drop(&sh->st, it->lane, SHADOW_DROP_TARGET_DOWN);
	else if (replay_engine_pending(l->eng) >= sh->queue * l->n_urls)
		drop(&sh->st, it->lane, SHADOW_DROP_QUEUE_FULL);
	else if (!shadow_bucket_take(&l->bucket, now))
		drop(&sh->st, it->lane, SHADOW_DROP_RATE_LIMITED);
	else if (sh->out && !(e = mem_calloc(1, sizeof(*e))))
		drop(&sh->st, it->lane, SHADOW_DROP_NO_MEMORY);
	else if (replay_engine_submit(l->eng, it->s, it->flow_key, now, e) < 0) {
		mem_free(e);
		drop(&sh->st, it->lane, SHADOW_DROP_NO_MEMORY);
	} else {
		FP_INC(sh->st.lane[it->lane].mirrored);
		if (e) {
			struct sh_entry **pp = hash_slot(it->flow_key, it->s->ts_req_first_ns);
			e->flow_key = it->flow_key;
			e->ts_first = it->s->ts_req_first_ns;
			e->lane = it->lane;
			*pp = e; /* at the chain's end: in request order per connection */
			e->next = &sh_all;
			e->prev = sh_all.prev;
			sh_all.prev->next = e;
			sh_all.prev = e;
			sh_live++;
		}
	}
	shadow_free(it->s);
	mem_free(it);
}

/* Take what the rings hold. @return the number of requests taken. */
static unsigned take_rings(void)
{
	struct fp_sh_item *its[SH_BURST];
	unsigned got = 0;

	for (unsigned w = 0; w < fp_app.nwk; w++) {
		unsigned n;
		do {
			n = rte_ring_sc_dequeue_burst(fp_app.wk[w]->shring, (void **)its, SH_BURST,
						      NULL);
			for (unsigned i = 0; i < n; i++)
				submit(its[i]);
			got += n;
		} while (n == SH_BURST);
	}
	return got;
}

static uint64_t pending(void)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < fp_app.sh.nlanes; i++)
		n += replay_engine_pending(fp_app.sh.lanes[i].eng);
	return n;
}

/*
 * One slice of every engine; the first may wait in epoll until @p until_ns,
 * the others only collect what is ready (an `until` in the past would
 * return before epoll: 1 us ahead).
 */
static void run_engines(int64_t until_ns)
{
	struct fp_shadow *sh = &fp_app.sh;
	for (unsigned i = 0; i < sh->nlanes; i++)
		(void)replay_engine_run(sh->lanes[i].eng, i == 0 ? until_ns : clk_mono_ns() + 1000);
	publish();
}

static void *sender_main(void *arg)
{
	struct fp_shadow *sh = &fp_app.sh;
	int64_t drain_end, last_got = 0, wait;
	(void)arg;

	for (;;) {
		/* Read the flag first: what was enqueued before it is taken below. */
		int stop = __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
		unsigned got = take_rings();
		int64_t now = clk_mono_ns();
		if (stop)
			break;
		if (got)
			last_got = now;
		if (sh->out && sh_live > sh_live_max)
			entries_trim();
		if (got)
			wait = 1000; /* collect what is ready, look at the rings again */
		else if (now - last_got < SH_BUSY_NS)
			wait = SH_WAIT_BUSY;
		else
			wait = SH_WAIT_IDLE;
		run_engines(now + wait);
	}
	/* Workers are done: wait for the answers, a bounded time. */
	drain_end = clk_mono_ns() + sh->drain_ns;
	while (pending() && clk_mono_ns() < drain_end) {
		int64_t u = clk_mono_ns() + 10000000LL;
		run_engines(u < drain_end ? u : drain_end);
	}
	for (unsigned i = 0; i < sh->nlanes; i++) {
		struct replay_engine *e = sh->lanes[i].eng;
		uint64_t before = replay_engine_stats(e)->not_sent;
		replay_engine_abort(e);
		FP_ADD(sh->st.lane[i].dropped[SHADOW_DROP_STOPPED],
		       replay_engine_stats(e)->not_sent - before);
	}
	if (sh->out) {
		take_rings(); /* production sessions of the last answers */
		entries_flush();
	}
	publish();
	return NULL;
}

int fp_shadow_start(char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	uint64_t targets = 0;
	int rc;

	for (unsigned i = 0; i < sh->nlanes; i++)
		targets += sh->lanes[i].n_urls;
	sh_live_max = 4 * sh->queue * targets + 4096;
	rc = rte_ctrl_thread_create(&sh->thread, "fp-shadow", NULL, sender_main, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the shadow sender thread: %s", strerror(rc));
		return -rc;
	}
	sh->running = true;
	return 0;
}

void fp_shadow_stop(void)
{
	struct fp_shadow *sh = &fp_app.sh;
	if (!sh->running)
		return;
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	pthread_join(sh->thread, NULL);
	sh->running = false;
}

void fp_shadow_release(void)
{
	struct fp_shadow *sh = &fp_app.sh;
	void *it;

	fp_shadow_stop();
	for (unsigned w = 0; w < fp_app.nwk; w++) {
		struct rte_ring *r = fp_app.wk[w]->shring;
		if (!r)
			continue;
		while (rte_ring_sc_dequeue(r, &it) == 0) { /* the sender never ran */
			shadow_free(((struct fp_sh_item *)it)->s);
			mem_free(it);
		}
		rte_ring_free(r);
		fp_app.wk[w]->shring = NULL;
	}
	for (unsigned i = 0; i < sh->nlanes; i++) {
		replay_engine_free(sh->lanes[i].eng);
		sh->lanes[i].eng = NULL;
	}
}

/* --- counters --------------------------------------------------------------- */

static void add_from(struct fp_sh_stats *t, const struct fp_sh_stats *s)
{
	uint64_t *d = (uint64_t *)(void *)t;
	const uint64_t *v = (const uint64_t *)(const void *)s;
	for (size_t i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
		d[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
}

void fp_shadow_sum(struct fp_sh_stats *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned w = 0; w < fp_app.nwk; w++)
		add_from(t, &fp_app.wk[w]->sh);
	add_from(t, &fp_app.sh.st);
}

void fp_shadow_each(const struct fp_sh_stats *t,
		    void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v),
		    void *ctx)
{
	const struct fp_shadow *sh = &fp_app.sh;
	char name[64];

	fn(ctx, NULL, "requests", t->requests);
	fn(ctx, NULL, "colored", t->colored);
	fn(ctx, NULL, "colored_without_lane", t->no_lane);
	fn(ctx, NULL, "queued", t->queued);
	fn(ctx, NULL, "ring_full", t->ring_full);
	if (sh->out_path) {
		fn(ctx, NULL, "out_sessions", t->out_sessions);
		fn(ctx, NULL, "out_results", t->out_results);
		fn(ctx, NULL, "out_unpaired", t->out_unpaired);
		fn(ctx, NULL, "out_lost", t->out_lost);
		fn(ctx, NULL, "out_errors", t->out_errors);
	}
	for (unsigned i = 0; i < sh->nlanes; i++) {
		const struct fp_sh_lane_ctr *c = &t->lane[i];
		const char *l = sh->lanes[i].name;
		fn(ctx, l, "colored", c->colored);
		fn(ctx, l, "mirrored", c->mirrored);
		fn(ctx, l, "sent", c->sent);
		fn(ctx, l, "ok", c->ok);
		fn(ctx, l, "errors", c->errors);
		fn(ctx, l, "error_refused", c->err_refused);
		fn(ctx, l, "error_reset", c->err_reset);
		fn(ctx, l, "error_timeout", c->err_timeout);
		fn(ctx, l, "error_other", c->err_other);
		for (unsigned d = 0; d < SHADOW_DROP_COUNT; d++) {
			snprintf(name, sizeof(name), "dropped_%s", shadow_drop_name(d));
			fn(ctx, l, name, c->dropped[d]);
		}
	}
}
