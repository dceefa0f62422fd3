/* SPDX-License-Identifier: MIT */
/*
 * shadow_sender - the queues and the sender thread around the shadow core
 * (replay/shadow_sender.h).
 *
 * Each producer has a ring of item slots with a head the producer alone
 * writes and a tail the sender alone writes (C11 acquire/release: the
 * slot is written before the head is published and read before the tail
 * is), so neither side ever locks or waits on the other. An item holds a
 * shadow_session_dup() copy; the sender frees it after handing it to the
 * core (requests: submit copies what it needs) or hands it over (sessions:
 * shadow_core_session_take()).
 *
 * The sender thread cannot be woken out of the engines' epoll (their fds
 * are theirs), so it looks at the queues between slices: 200 us while
 * requests arrived in the last 10 ms, 1 ms when idle (as the fast path's
 * sender, dpdk/fp_shadow.c). Calls from the control thread use a mutex
 * and a condition variable; the sender only looks at an atomic flag
 * unless a call is posted.
 *
 * References: replay/shadow_core.h, C11 7.17 (atomics), pthreads.
 */
#include "replay/shadow_sender.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/mem.h"
#include "replay/shadow.h"

#define SD_INC(field)	 __atomic_store_n(&(field), (field) + 1, __ATOMIC_RELAXED)
#define SD_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

#define SD_WAIT_BUSY 200000LL
#define SD_WAIT_IDLE 1000000LL
#define SD_BUSY_NS   10000000LL

struct sd_item {
	struct store_session *s; /* shadow_session_dup() copy, owned */
	uint64_t flow_key;
	int64_t req_ns;
	uint32_t lane;
	uint32_t session; /* 1: a production session for pairing */
};

struct sd_queue {
	size_t head __attribute__((aligned(64))); /* producer: next slot to fill */
	size_t tail __attribute__((aligned(64))); /* sender: next slot to take */
	struct sd_item *slots;
	struct shadow_stats core; /* producer: what its classify counted */
	struct shadow_sender_stats st;
};

struct shadow_sender {
	struct shadow_sender_params p;
	size_t cap;  /* items a queue holds */
	size_t mask; /* slots - 1 (a power of two >= cap) */
	struct sd_queue *q;
	int backpressure; /* atomic: full queues make producers wait */
	int stop;	  /* atomic */
	int alive;	  /* atomic: the sender thread takes the queues */
	bool running;	  /* the creating thread's view */
	pthread_t thread;
	struct shadow_sender_stats st; /* the sender thread's */
	/* shadow_sender_call() */
	pthread_mutex_t call_mu; /* one caller at a time */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int call_posted; /* atomic: a call waits for the sender */
	int (*call_fn)(struct shadow_core *c, void *ctx);
	void *call_ctx;
	int call_rc;
	bool call_done;
};

#define T(f, n, h)                                                                                 \
	{                                                                                          \
		n, offsetof(struct shadow_sender_stats, f), h                                      \
	}
const struct ctr_desc shadow_sender_ctr_descs[] = {
    T(queued, "sender_queued", "requests handed from the capture to the sender thread"),
    T(queue_full, "sender_queue_full",
      "requests dropped: the queue to the sender thread was full (also the lane's "
      "dropped_queue_full)"),
    T(sessions_lost, "sender_sessions_lost",
      "production sessions not handed to the sender thread (queue full or memory): their "
      "requests end unpaired"),
    T(queue_high, "sender_queue_high", "most requests waiting for the sender thread at once"),
    T(sender_slices, "sender_slices", "engine slices run by the sender thread"),
    T(sender_calls, "sender_calls", "control calls run on the sender thread (reload)"),
};
#undef T
const size_t shadow_sender_ctr_count =
    sizeof(shadow_sender_ctr_descs) / sizeof(shadow_sender_ctr_descs[0]);

struct shadow_sender *shadow_sender_create(const struct shadow_sender_params *p, char *err,
					   size_t errlen)
{
	size_t slots = p->queue ? p->queue : SHADOW_SENDER_QUEUE_DEFAULT, n = 1;
	struct shadow_sender *s;

	if (!p->core || !p->n_producers || p->n_producers > SHADOW_SENDER_MAX_PRODUCERS ||
	    slots > ((size_t)1 << 26)) {
		snprintf(err, errlen,
			 "shadow sender: bad parameters (1..%d producers, queue 1..%zu)",
			 SHADOW_SENDER_MAX_PRODUCERS, (size_t)1 << 26);
		return NULL;
	}
	while (n < slots)
		n <<= 1;
	s = mem_calloc(1, sizeof(*s));
	if (!s || !(s->q = mem_calloc(p->n_producers, sizeof(*s->q)))) {
		mem_free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->cap = slots;
	s->mask = n - 1;
	for (unsigned i = 0; i < p->n_producers; i++)
		if (!(s->q[i].slots = mem_calloc(n, sizeof(struct sd_item)))) {
			shadow_sender_free(s);
			snprintf(err, errlen, "out of memory (shadow sender queue of %zu)", n);
			return NULL;
		}
	pthread_mutex_init(&s->call_mu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	return s;
}

/* --- producers --------------------------------------------------------------- */

/* Room for one more item in @p q, waiting for it once the input ended. */
static bool room(struct shadow_sender *s, struct sd_queue *q)
{
	for (;;) {
		size_t used = q->head - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
		if (used < s->cap) {
			if (used + 1 > q->st.queue_high)
				SD_SET(q->st.queue_high, used + 1);
			return true;
		}
		/* A full queue is a drop, unless the input may wait: then the
		 * sender thread (when it runs) makes room. */
		if (!__atomic_load_n(&s->backpressure, __ATOMIC_ACQUIRE) ||
		    !__atomic_load_n(&s->alive, __ATOMIC_ACQUIRE))
			return false;
		struct timespec ts = {0, 50000};
		nanosleep(&ts, NULL);
	}
}

static void push(struct sd_queue *q, size_t mask, const struct sd_item *it)
{
	q->slots[q->head & mask] = *it;
	__atomic_store_n(&q->head, q->head + 1, __ATOMIC_RELEASE);
}

int shadow_sender_request(struct shadow_sender *s, unsigned producer,
			  const struct store_session *sess, uint64_t flow_key, int64_t req_ns)
{
	struct sd_queue *q = &s->q[producer];
	int lane = shadow_core_classify(s->p.core, sess, &q->core);
	struct sd_item it;

	if (lane < 0)
		return -1;
	/* Only this thread adds: room now is room at the push below. */
	if (!room(s, q)) {
		SD_INC(q->st.queue_full);
		shadow_stats_drop(&q->core, (unsigned)lane, SHADOW_DROP_QUEUE_FULL);
		return -1;
	}
	it = (struct sd_item){.s = shadow_session_dup(sess),
			      .flow_key = flow_key,
			      .req_ns = req_ns,
			      .lane = (uint32_t)lane};
	if (!it.s) {
		shadow_stats_drop(&q->core, (unsigned)lane, SHADOW_DROP_NO_MEMORY);
		return -1;
	}
	push(q, s->mask, &it);
	SD_INC(q->st.queued);
	return lane;
}

void shadow_sender_session(struct shadow_sender *s, unsigned producer, uint64_t flow_key,
			   const struct store_session *sess)
{
	struct sd_queue *q = &s->q[producer];
	struct sd_item it;
	int lane;

	/* Sessions go to the core for pairing, and an HTTP/2 stream the
	 * production client reset (a cancelled watch) for its lane copy to be
	 * cancelled likewise (shadow_core_session_take()). */
	if ((!s->p.pairing && !replay_client_reset(sess)) || !sess->lane.len ||
	    !sess->req.present ||
	    (lane = shadow_core_lane_find(s->p.core, sess->lane.ptr, sess->lane.len)) < 0)
		return;
	if (!room(s, q) || !(it.s = shadow_session_dup(sess))) {
		SD_INC(q->st.sessions_lost);
		return;
	}
	it.flow_key = flow_key;
	it.req_ns = 0;
	it.lane = (uint32_t)lane;
	it.session = 1;
	push(q, s->mask, &it);
}

void shadow_sender_backpressure(struct shadow_sender *s)
{
	__atomic_store_n(&s->backpressure, 1, __ATOMIC_RELEASE);
}

/* --- the sender thread -------------------------------------------------------- */

/* Everything queued now, every producer. @return the number of items. */
static size_t take(struct shadow_sender *s)
{
	size_t got = 0;
	for (unsigned i = 0; i < s->p.n_producers; i++) {
		struct sd_queue *q = &s->q[i];
		size_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
		for (size_t t = q->tail; t != h; t++) {
			struct sd_item it = q->slots[t & s->mask];
			/* The slot is copied out: the producer may fill it again. */
			__atomic_store_n(&q->tail, t + 1, __ATOMIC_RELEASE);
			if (it.session) {
				shadow_core_session_take(s->p.core, it.flow_key, it.s);
			} else {
				(void)shadow_core_submit(s->p.core, it.lane, it.s, it.flow_key,
							 it.req_ns);
				shadow_free(it.s);
			}
			got++;
		}
	}
	return got;
}

/* A posted shadow_sender_call(): run it here, on the owner thread. */
static void serve_call(struct shadow_sender *s)
{
	if (!__atomic_load_n(&s->call_posted, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&s->mu);
	if (s->call_fn && !s->call_done) {
		s->call_rc = s->call_fn(s->p.core, s->call_ctx);
		s->call_done = true;
		SD_INC(s->st.sender_calls);
		pthread_cond_broadcast(&s->cv);
	}
	__atomic_store_n(&s->call_posted, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&s->mu);
}

static void *sender_main(void *arg)
{
	struct shadow_sender *s = arg;
	int64_t last_got = 0;

	for (;;) {
		/* The flag first: what was queued before it is taken below. */
		int stop = __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
		size_t got = take(s);
		int64_t now = clk_mono_ns(), wait;
		serve_call(s);
		if (stop)
			break;
		if (got) {
			last_got = now;
			wait = 1000; /* what is ready now, then the queues again */
		} else {
			wait = now - last_got < SD_BUSY_NS ? SD_WAIT_BUSY : SD_WAIT_IDLE;
		}
		(void)shadow_core_run(s->p.core, now + wait);
		SD_INC(s->st.sender_slices);
		if (s->p.tick)
			s->p.tick(s->p.ctx);
	}
	/* The producers are done: answers for a bounded time, then every pair. */
	shadow_core_drain(s->p.core);
	take(s); /* nothing is queued after the stop flag; kept for safety */
	shadow_core_finish(s->p.core);
	if (s->p.tick)
		s->p.tick(s->p.ctx);
	return NULL;
}

int shadow_sender_start(struct shadow_sender *s, char *err, size_t errlen)
{
	int rc;
	if (s->running)
		return 0;
	__atomic_store_n(&s->alive, 1, __ATOMIC_RELEASE);
	rc = s->p.thread_create ? s->p.thread_create(&s->thread, sender_main, s)
				: pthread_create(&s->thread, NULL, sender_main, s);
	if (rc) {
		__atomic_store_n(&s->alive, 0, __ATOMIC_RELEASE);
		snprintf(err, errlen, "cannot start the shadow sender thread: %s", strerror(rc));
		return -rc;
	}
	s->running = true;
	return 0;
}

int shadow_sender_call(struct shadow_sender *s, int (*fn)(struct shadow_core *c, void *ctx),
		       void *ctx)
{
	int rc;
	if (!s->running)
		return fn(s->p.core, ctx);
	pthread_mutex_lock(&s->call_mu);
	pthread_mutex_lock(&s->mu);
	s->call_fn = fn;
	s->call_ctx = ctx;
	s->call_done = false;
	__atomic_store_n(&s->call_posted, 1, __ATOMIC_RELEASE);
	while (!s->call_done)
		pthread_cond_wait(&s->cv, &s->mu);
	rc = s->call_rc;
	s->call_fn = NULL;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->call_mu);
	return rc;
}

void shadow_sender_stop(struct shadow_sender *s)
{
	if (!s || !s->running)
		return;
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->thread, NULL);
	__atomic_store_n(&s->alive, 0, __ATOMIC_RELEASE);
	s->running = false;
}

void shadow_sender_free(struct shadow_sender *s)
{
	if (!s)
		return;
	shadow_sender_stop(s);
	for (unsigned i = 0; s->q && i < s->p.n_producers; i++) {
		struct sd_queue *q = &s->q[i];
		for (size_t t = q->tail; q->slots && t != q->head; t++)
			shadow_free(q->slots[t & s->mask].s);
		mem_free(q->slots);
	}
	if (s->q) {
		pthread_mutex_destroy(&s->call_mu);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
	}
	mem_free(s->q);
	mem_free(s);
}

/* --- counters ------------------------------------------------------------------ */

void shadow_sender_sum(const struct shadow_sender *s, struct shadow_stats *out)
{
	const struct shadow_stats *blocks[SHADOW_SENDER_MAX_PRODUCERS];
	for (unsigned i = 0; i < s->p.n_producers; i++)
		blocks[i] = &s->q[i].core;
	shadow_core_sum(s->p.core, blocks, s->p.n_producers, out);
}

void shadow_sender_stats(const struct shadow_sender *s, struct shadow_sender_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->sender_slices = __atomic_load_n(&s->st.sender_slices, __ATOMIC_RELAXED);
	out->sender_calls = __atomic_load_n(&s->st.sender_calls, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < s->p.n_producers; i++) {
		const struct shadow_sender_stats *b = &s->q[i].st;
		uint64_t hi = __atomic_load_n(&b->queue_high, __ATOMIC_RELAXED);
		out->queued += __atomic_load_n(&b->queued, __ATOMIC_RELAXED);
		out->queue_full += __atomic_load_n(&b->queue_full, __ATOMIC_RELAXED);
		out->sessions_lost += __atomic_load_n(&b->sessions_lost, __ATOMIC_RELAXED);
		if (hi > out->queue_high)
			out->queue_high = hi;
	}
}
