/* SPDX-License-Identifier: MIT */
/*
 * fp_shadow.c - shadowing in the fast path (`--lane LANE=URL`): colored
 * requests seen by the workers' capture pipelines go through the shadow
 * core of `dyetap mirror` (replay/shadow_core.h: loop protection, the
 * production guard, admission, per-lane limits, the replay engine,
 * pairing, counters) and its sender thread (replay/shadow_sender.h, the
 * same queues and thread as mirror's); this file wires them to the
 * workers, --shadow-out, the counters and the control thread.
 *
 * Who does what:
 *  - a worker's pipeline calls fp_shadow_on_request() at a request's last
 *    captured byte. The worker is producer `idx` of the sender: it runs
 *    the core's first step (shadow_core_classify(): lane, loop,
 *    production guard, cut, write method, tunnel) into its own counter
 *    block, copies an accepted request and queues the copy on its own
 *    bounded single-producer queue. It never waits: a full queue drops
 *    the request and counts it (`ring_full`, and the lane's `queue_full`).
 *  - the sender is one ordinary thread (started with
 *    rte_ctrl_thread_create: on the CPUs left to control threads, never
 *    an RX or worker lcore). It owns the core's engines: it takes the
 *    queues into shadow_core_submit() (target down, --queue, --lane-rate,
 *    send) and runs the engines in short slices in between (epoll).
 *  - with --shadow-out the workers also pass each production session of a
 *    lane with targets over the same queue; the core pairs it with the
 *    shadow answers and the sender writes both (fp_record.c's recorder).
 *  - RX lcores never see any of it: shadowing only costs worker time.
 *
 * Counters: the core's (one block per worker inside the sender, the
 * sender thread's inside the core), the hand-over's (shadow_sender_stats:
 * `queued`, `ring_full`, `out_lost` here) and --shadow-out's own (struct
 * fp_sh_stats); readers (control lcore, telemetry) sum them under a mutex
 * that also guards the core's lifetime, since telemetry may ask until the
 * process exits.
 *
 * Stop: after the workers stopped (every request is queued), the sender
 * takes the rest of the queues, waits up to --drain-timeout for the
 * answers, then drops what is still queued (`stopped`) and fails what is
 * in flight.
 *
 * References: replay/shadow_sender.h, replay/shadow_core.h, DPDK lib/eal
 * rte_ctrl_thread_create, docs/mirror.md (same drop reasons and
 * counters), docs/dpdk.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_lcore.h>

#include "capture/recorder.h"
#include "common/clock.h"
#include "common/mem.h"
#include "dpdk/fp_private.h"
#include "replay/shadow_ctl.h"

/* Guards fp_app.sh.core and .snd against readers while they are freed (telemetry). */
static pthread_mutex_t sh_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- setup ------------------------------------------------------------------ */

static void on_pair(void *ctx, struct shadow_pair *p);

/* The sender thread on the control CPUs, as DPDK's own control threads. */
static int ctrl_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int rc = rte_ctrl_thread_create(t, "fp-shadow", NULL, fn, arg);
	return rc < 0 ? -rc : rc;
}

/* Sender thread, after each slice: --shadow-out's frames. */
static void tick(void *ctx)
{
	(void)ctx;
	if (fp_app.sh.out)
		(void)recorder_tick(fp_app.sh.out);
}

int fp_shadow_setup(char *err, size_t errlen)
{
	struct fp_shadow *sh = &fp_app.sh;
	char e[512];

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
	struct shadow_sender_params sp = {
	    .core = core,
	    .n_producers = fp_app.nwk ? fp_app.nwk : 1,
	    .queue = sh->ring_size,
	    .pairing = sh->out != NULL,
	    .tick = tick,
	    .thread_create = ctrl_thread,
	};
	struct shadow_sender *snd = shadow_sender_create(&sp, e, sizeof(e));
	if (!snd) {
		shadow_core_free(core);
		snprintf(err, errlen, "%s", e);
		return -ENOMEM;
	}
	pthread_mutex_lock(&sh_lock);
	sh->core = core;
	sh->snd = snd;
	pthread_mutex_unlock(&sh_lock);
	return 0;
}

/* --- worker side -------------------------------------------------------------- */

void fp_shadow_on_request(void *ctx, const struct store_session *s)
{
	struct fp_worker *w = ctx;
	(void)shadow_sender_request(fp_app.sh.snd, w->idx, s, (uint64_t)w->idx << 56 ^ s->conn_id,
				    clk_real_ns());
}

void fp_shadow_on_session(struct fp_worker *w, const struct store_session *s)
{
	shadow_sender_session(fp_app.sh.snd, w->idx, (uint64_t)w->idx << 56 ^ s->conn_id, s);
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

int fp_shadow_start(char *err, size_t errlen)
{
	return shadow_sender_start(fp_app.sh.snd, err, errlen);
}

void fp_shadow_stop(void)
{
	shadow_sender_stop(fp_app.sh.snd);
}

void fp_shadow_release(void)
{
	struct fp_shadow *sh = &fp_app.sh;

	pthread_mutex_lock(&sh_lock);
	struct shadow_sender *snd = sh->snd;
	struct shadow_core *core = sh->core;
	sh->snd = NULL;
	sh->core = NULL;
	pthread_mutex_unlock(&sh_lock);
	shadow_sender_free(snd); /* stops the thread first */
	shadow_core_free(core);
}

/* --- counters --------------------------------------------------------------- */

struct report {
	void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v);
	void *ctx;
	const struct shadow_sender_stats *hand; /* the hand-over's */
	const struct fp_sh_stats *out;		/* --shadow-out's */
	bool own_done;
};

/* The fast path's own totals, after the core's and before any lane's. */
static void report_own(struct report *r)
{
	r->own_done = true;
	r->fn(r->ctx, NULL, "queued", r->hand->queued);
	r->fn(r->ctx, NULL, "ring_full", r->hand->queue_full);
	if (!fp_app.sh.out_path)
		return;
	r->fn(r->ctx, NULL, "out_sessions",
	      __atomic_load_n(&r->out->out_sessions, __ATOMIC_RELAXED));
	r->fn(r->ctx, NULL, "out_results", __atomic_load_n(&r->out->out_results, __ATOMIC_RELAXED));
	r->fn(r->ctx, NULL, "out_lost", r->hand->sessions_lost);
	r->fn(r->ctx, NULL, "out_errors", __atomic_load_n(&r->out->out_errors, __ATOMIC_RELAXED));
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
	static struct shadow_stats ct; /* big: not on a control thread's stack */
	struct shadow_sender_stats hand;
	struct report r = {fn, ctx, &hand, &fp_app.sh.st, false};

	pthread_mutex_lock(&sh_lock);
	if (fp_app.sh.core) {
		shadow_sender_stats(fp_app.sh.snd, &hand);
		shadow_sender_sum(fp_app.sh.snd, &ct);
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
	shadow_sender_sum(fp_app.sh.snd, ct);
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
		/* The names live in fp_app.sh.conf, which outlives the core. */
		for (size_t i = 0; i < shadow_core_lanes(c) && i < SHADOW_MAX_LANES; i++)
			lanes[(*n_lanes)++] = fp_app.sh.conf.lanes[i].name;
	}
	pthread_mutex_unlock(&sh_lock);
	return rc ? -ENOMEM : 0;
}
