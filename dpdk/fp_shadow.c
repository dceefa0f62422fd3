/* SPDX-License-Identifier: MIT */
/*
 * fp_shadow.c - shadowing in the fast path (`--lane LANE=URL`): colored
 * requests seen by the workers' capture pipelines go through the shadow
 * core of `dyetap mirror` (replay/shadow_core.h: loop protection, the
 * production guard, admission, per-lane limits, the replay engine,
 * pairing, counters); this file adds the rings and the sender thread.
 *
 * Who does what:
 *  - a worker's pipeline calls fp_shadow_on_request() at a request's last
 *    captured byte. The worker runs the core's first step
 *    (shadow_core_classify(): lane, loop, production guard, cut, write
 *    method, tunnel) into its own counter block, copies an accepted
 *    request (shadow_session_dup) and enqueues the copy on its own bounded
 *    SP/SC ring to the sender. It never waits: a full ring drops the
 *    request and counts it (`ring_full`, and the lane's `queue_full`).
 *  - the sender is one ordinary thread (rte_ctrl_thread_create: on the
 *    CPUs left to control threads, never an RX or worker lcore). It owns
 *    the core's engines: it drains the rings into shadow_core_submit()
 *    (target down, --queue, --lane-rate, send) and runs the engines in
 *    short slices in between (epoll).
 *  - with --shadow-out the workers also pass each production session of a
 *    lane with targets over the same ring; the core pairs it with the
 *    shadow answers and the sender writes both (fp_record.c's recorder).
 *  - RX lcores never see any of it: shadowing only costs worker time.
 *
 * Counters: the core's (one block per worker, the sender's inside the
 * core) and the fast path's own (struct fp_sh_stats); readers (control
 * lcore, telemetry) sum them under a mutex that also guards the core's
 * lifetime, since telemetry may ask until the process exits.
 *
 * Stop: after the workers stopped (every request is in a ring), the sender
 * takes the rest of the rings, waits up to --drain-timeout for the answers,
 * then drops what is still queued (`stopped`) and fails what is in flight.
 *
 * References: DPDK lib/ring (SP/SC), lib/eal rte_ctrl_thread_create,
 * replay/shadow_core.h, docs/mirror.md (same drop reasons and counters),
 * docs/dpdk.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include "capture/recorder.h"
#include "common/clock.h"
#include "common/mem.h"
#include "dpdk/fp_private.h"
#include "replay/shadow_ctl.h"

#define SH_BURST 32
/*
 * How long the sender waits in epoll before looking at the rings again:
 * 200 us while requests came in the last 10 ms, else 1 ms (an idle sender
 * then wakes 1000 times a second, not 5000).
 */
#define SH_WAIT_BUSY 200000
#define SH_WAIT_IDLE 1000000
#define SH_BUSY_NS   10000000

/* Guards fp_app.sh.core against readers while it is freed (telemetry). */
static pthread_mutex_t sh_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- setup ------------------------------------------------------------------ */

static void on_pair(void *ctx, struct shadow_pair *p);

int fp_shadow_setup(char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	char e[512];

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
	struct shadow_hooks hooks = {
	    .on_pair = sh->out ? on_pair : NULL,
	    .redact = sh->out && recorder_redacts(sh->out) ? recorder_redact_result : NULL,
	    .redact_ctx = sh->out,
	};
	struct shadow_core *core = shadow_core_create(&sh->conf, &hooks, e, sizeof(e));
	if (!core) {
		snprintf(err, errlen, "%s", e);
		return -EINVAL;
	}
	pthread_mutex_lock(&sh_lock);
	sh->core = core;
	pthread_mutex_unlock(&sh_lock);
	return 0;
}

/* --- worker side -------------------------------------------------------------- */

void fp_shadow_on_request(void *ctx, const struct store_session *s)
{
	struct fp_worker *w = ctx;
	struct fp_sh_stats *st = &w->sh;
	struct fp_sh_item *it;
	int lane = shadow_core_classify(fp_app.sh.core, s, &st->core);

	if (lane < 0)
		return;
	/* Cheap early test; the enqueue below decides. */
	if (!rte_ring_free_count(w->shring))
		goto full;
	it = mem_alloc(sizeof(*it));
	if (!it || !(it->s = shadow_session_dup(s))) {
		mem_free(it);
		shadow_stats_drop(&st->core, (unsigned)lane, SHADOW_DROP_NO_MEMORY);
		return;
	}
	it->flow_key = (uint64_t)w->idx << 56 ^ s->conn_id;
	it->req_ns = clk_real_ns();
	it->lane = (unsigned)lane;
	it->session = false;
	FP_HANDOFF_RELEASE(w->shring);
	if (rte_ring_sp_enqueue(w->shring, it)) {
		shadow_free(it->s);
		mem_free(it);
		goto full;
	}
	FP_INC(st->queued);
	return;
full:
	FP_INC(st->ring_full);
	shadow_stats_drop(&st->core, (unsigned)lane, SHADOW_DROP_QUEUE_FULL);
}

void fp_shadow_on_session(struct fp_worker *w, const struct store_session *s)
{
	struct fp_sh_item *it;
	int lane;

	if (!s->lane.len || !s->req.present ||
	    (lane = shadow_core_lane_find(fp_app.sh.core, s->lane.ptr, s->lane.len)) < 0)
		return;
	it = mem_alloc(sizeof(*it));
	if (!it || !(it->s = shadow_session_dup(s))) {
		mem_free(it);
		FP_INC(w->sh.out_lost);
		return;
	}
	it->flow_key = (uint64_t)w->idx << 56 ^ s->conn_id;
	it->lane = (unsigned)lane;
	it->session = true;
	FP_HANDOFF_RELEASE(w->shring);
	if (rte_ring_sp_enqueue(w->shring, it)) {
		shadow_free(it->s);
		mem_free(it);
		FP_INC(w->sh.out_lost);
	}
}

/* --- sender ----------------------------------------------------------------- */

/*
 * --shadow-out: a sent request's production session and every answer are
 * in: the session (new id, connection id unique over workers), then one
 * result per target, as `dyetap mirror -w` writes them.
 */
static void on_pair(void *ctx, struct shadow_pair *p)
{
	struct fp_shadow *sh = &fp_app.sh;
	(void)ctx;
	if (!p->prod)
		return; /* counted `unpaired` by the core */
	p->prod->id = ++sh->next_id;
	p->prod->conn_id = p->flow_key;
	if (recorder_add_session(sh->out, p->prod) < 0)
		FP_INC(sh->st.out_errors);
	else
		FP_INC(sh->st.out_sessions);
	for (unsigned i = 0; i < p->n_res && i < SHADOW_MAX_TARGETS; i++) {
		if (!p->res[i])
			continue;
		p->res[i]->session_id = p->prod->id;
		if (recorder_add_result(sh->out, p->res[i]) < 0)
			FP_INC(sh->st.out_errors);
		else
			FP_INC(sh->st.out_results);
	}
}

/* One item from a ring: a request to send, or a production session to pair. Frees @p it. */
static void take(struct fp_sh_item *it)
{
	struct shadow_core *core = fp_app.sh.core;
	if (it->session) {
		shadow_core_session_take(core, it->flow_key, it->s);
	} else {
		(void)shadow_core_submit(core, it->lane, it->s, it->flow_key, it->req_ns);
		shadow_free(it->s);
	}
	mem_free(it);
}

/* Take what the rings hold. @return the number of items taken. */
static unsigned take_rings(void)
{
	struct fp_sh_item *its[SH_BURST];
	unsigned got = 0;

	for (unsigned w = 0; w < fp_app.nwk; w++) {
		unsigned n;
		do {
			n = rte_ring_sc_dequeue_burst(fp_app.wk[w]->shring, (void **)its, SH_BURST,
						      NULL);
			if (n)
				FP_HANDOFF_ACQUIRE(fp_app.wk[w]->shring);
			for (unsigned i = 0; i < n; i++)
				take(its[i]);
			got += n;
		} while (n == SH_BURST);
	}
	return got;
}

static void *sender_main(void *arg)
{
	struct fp_shadow *sh = &fp_app.sh;
	int64_t last_got = 0, wait;
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
		if (got)
			wait = 1000; /* collect what is ready, look at the rings again */
		else if (now - last_got < SH_BUSY_NS)
			wait = SH_WAIT_BUSY;
		else
			wait = SH_WAIT_IDLE;
		(void)shadow_core_run(sh->core, now + wait);
		if (sh->out)
			(void)recorder_tick(sh->out);
	}
	/* Workers are done: wait for the answers, a bounded time, then write what is paired. */
	shadow_core_drain(sh->core);
	take_rings(); /* nothing new is enqueued after the stop flag; kept for safety */
	shadow_core_finish(sh->core);
	return NULL;
}

int fp_shadow_start(char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	int rc;

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
	pthread_mutex_lock(&sh_lock);
	struct shadow_core *core = sh->core;
	sh->core = NULL;
	pthread_mutex_unlock(&sh_lock);
	shadow_core_free(core);
}

/* --- counters --------------------------------------------------------------- */

static void add_from(struct fp_sh_stats *t, const struct fp_sh_stats *s)
{
	uint64_t *d = (uint64_t *)(void *)t;
	const uint64_t *v = (const uint64_t *)(const void *)s;
	for (size_t i = 0; i < offsetof(struct fp_sh_stats, core) / sizeof(uint64_t); i++)
		d[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
}

struct report {
	void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v);
	void *ctx;
	const struct fp_sh_stats *t;
	bool own_done;
};

/* The fast path's own totals, after the core's and before any lane's. */
static void report_own(struct report *r)
{
	r->own_done = true;
	r->fn(r->ctx, NULL, "queued", r->t->queued);
	r->fn(r->ctx, NULL, "ring_full", r->t->ring_full);
	if (!fp_app.sh.out_path)
		return;
	r->fn(r->ctx, NULL, "out_sessions", r->t->out_sessions);
	r->fn(r->ctx, NULL, "out_results", r->t->out_results);
	r->fn(r->ctx, NULL, "out_lost", r->t->out_lost);
	r->fn(r->ctx, NULL, "out_errors", r->t->out_errors);
}

static void report_one(void *ctx, const char *lane, const char *name, uint64_t v)
{
	struct report *r = ctx;
	if (lane && !r->own_done)
		report_own(r);
	r->fn(r->ctx, lane, name, v);
}

void fp_shadow_report(void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v),
		      void *ctx)
{
	const struct shadow_stats *blocks[FP_MAX_WORKERS];
	struct fp_sh_stats t;
	struct shadow_stats ct;
	struct report r = {fn, ctx, &t, false};

	pthread_mutex_lock(&sh_lock);
	if (fp_app.sh.core) {
		memset(&t, 0, sizeof(t));
		for (unsigned w = 0; w < fp_app.nwk; w++) {
			add_from(&t, &fp_app.wk[w]->sh);
			blocks[w] = &fp_app.wk[w]->sh.core;
		}
		add_from(&t, &fp_app.sh.st);
		shadow_core_sum(fp_app.sh.core, blocks, fp_app.nwk, &ct);
		shadow_core_each(fp_app.sh.core, &ct, report_one, &r);
		if (!r.own_done)
			report_own(&r);
	}
	pthread_mutex_unlock(&sh_lock);
}

int fp_shadow_warning(char *msg, size_t msglen)
{
	int got = 0;
	pthread_mutex_lock(&sh_lock);
	if (fp_app.sh.core)
		got = shadow_core_warning(fp_app.sh.core, "shadow_", msg, msglen);
	pthread_mutex_unlock(&sh_lock);
	return got;
}

/* --- control and metrics (the control thread) --------------------------------- */

/* Sum of the core's counter blocks; the caller holds sh_lock and a core exists. */
static void core_sum(struct shadow_stats *ct)
{
	const struct shadow_stats *blocks[FP_MAX_WORKERS];
	for (unsigned w = 0; w < fp_app.nwk; w++)
		blocks[w] = &fp_app.wk[w]->sh.core;
	shadow_core_sum(fp_app.sh.core, blocks, fp_app.nwk, ct);
}

int fp_shadow_ctl(int argc, char **argv, struct dbuf *out, char *err, size_t errlen)
{
	static struct shadow_stats ct; /* big: not on the control thread's stack */
	int rc = -ENOENT;
	pthread_mutex_lock(&sh_lock);
	if (fp_app.sh.core) {
		core_sum(&ct);
		rc = shadow_ctl_command(fp_app.sh.core, &ct, argc, argv, out, err, errlen);
	}
	pthread_mutex_unlock(&sh_lock);
	return rc;
}

int fp_shadow_metrics(struct ctr_set *set, struct ctl_prom *p, const char **lanes, size_t *n_lanes)
{
	static struct shadow_stats ct;
	int rc = 0;
	*n_lanes = 0;
	pthread_mutex_lock(&sh_lock);
	if (fp_app.sh.core) {
		struct shadow_core *c = fp_app.sh.core;
		core_sum(&ct);
		rc |= shadow_core_counters(c, &ct, "fp_shadow_", "lane_", set);
		rc |= shadow_ctl_prom(c, p);
		/* Copied: a reload may add lanes, and the core goes before the process. */
		static char names[SHADOW_MAX_LANES][64];
		for (size_t i = 0; i < shadow_core_lanes(c) && i < SHADOW_MAX_LANES; i++) {
			snprintf(names[i], sizeof(names[i]), "%s",
				 shadow_core_lane_name(c, (unsigned)i));
			lanes[(*n_lanes)++] = names[i];
		}
	}
	pthread_mutex_unlock(&sh_lock);
	return rc ? -ENOMEM : 0;
}

int fp_shadow_reconfigure(const struct shadow_conf *conf, char *err, size_t errlen)
{
	int rc = -EINVAL;
	/* The lock only for the call: the control thread is stopped before the
	 * core is freed, and telemetry must not wait for the sender's switch. */
	pthread_mutex_lock(&sh_lock);
	struct shadow_core *c = fp_app.sh.core;
	if (!c || !fp_app.sh.running)
		snprintf(err, errlen, "no shadow sender runs: lanes need --lane at start");
	else
		rc = shadow_core_reconfigure(c, conf, err, errlen);
	pthread_mutex_unlock(&sh_lock);
	if (rc < 0)
		return rc;
	/* The sender switches at the start of its next run slice (1 ms at most apart). */
	for (int i = 0; i < 2000 && shadow_core_pending_switch(c); i++)
		rte_delay_us_sleep(1000);
	if (shadow_core_pending_switch(c)) {
		snprintf(err, errlen,
			 "the shadow sender did not switch within 2 s: it will at its next run");
		return -ETIMEDOUT;
	}
	return 0;
}
