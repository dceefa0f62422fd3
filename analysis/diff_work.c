/* SPDX-License-Identifier: MIT */
/*
 * diff_work - comparing pairs on several threads (diff_params.threads).
 *
 * The thread that reads the files pairs each result with its session and
 * copies both into a batch (a session once per batch, however many of
 * its results follow); full batches go through a bounded queue to the
 * comparing threads. Each thread counts what it compares in its own
 * aggregates (diff_agg.c), with its own pair engine and rule hit counts,
 * and touches nothing shared but the memory counter and the queue.
 * diff_pool_finish() merges the threads' aggregates into the context's in
 * thread order; every aggregate is a sum, a histogram or a bottom-k
 * sample, so the report does not depend on which thread compared which
 * pair, nor on the number of threads.
 *
 * Memory: at most 2 batches per thread plus one being filled, each of
 * BATCH_BYTES (or one record when a record is larger); the reader waits
 * for a free batch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

#define BATCH_BYTES ((size_t)1 << 20)
#define BATCH_PAIRS 512

/* ---- deep copies of records into one block ---- */

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

static size_t msg_bytes(const struct store_message *m)
{
	size_t n = m->method.len + m->target.len + m->reason.len + m->body.len;
	for (size_t i = 0; i < m->n_headers; i++)
		n += m->headers[i].name.len + m->headers[i].value.len;
	for (size_t i = 0; i < m->n_trailers; i++)
		n += m->trailers[i].name.len + m->trailers[i].value.len;
	return n;
}

/* Header entries of @p m: its headers, then its trailers (HTTP/2). */
static size_t msg_fields(const struct store_message *m)
{
	return m->n_headers + m->n_trailers;
}

struct cursor {
	struct store_header *hdr;
	uint8_t *bytes;
};

static void slice_copy(struct cursor *c, struct store_slice *s)
{
	if (!s->len) {
		s->ptr = c->bytes; /* empty, never NULL: callers may memcpy 0 bytes */
		return;
	}
	memcpy(c->bytes, s->ptr, s->len);
	s->ptr = c->bytes;
	c->bytes += s->len;
}

static const struct store_header *fields_copy(struct cursor *c, const struct store_header *src,
					      size_t n)
{
	if (!n)
		return NULL;
	struct store_header *h = c->hdr;
	c->hdr += n;
	for (size_t i = 0; i < n; i++) {
		h[i] = src[i];
		slice_copy(c, &h[i].name);
		slice_copy(c, &h[i].value);
	}
	return h;
}

static void msg_copy(struct cursor *c, struct store_message *m)
{
	slice_copy(c, &m->method);
	slice_copy(c, &m->target);
	slice_copy(c, &m->reason);
	slice_copy(c, &m->body);
	m->headers = fields_copy(c, m->headers, m->n_headers);
	m->trailers = fields_copy(c, m->trailers, m->n_trailers);
}

size_t diff_session_size(const struct store_session *s)
{
	size_t nh = msg_fields(&s->req) + msg_fields(&s->resp);
	return ALIGN8(sizeof(*s)) + nh * sizeof(struct store_header) + s->lane.len +
	       msg_bytes(&s->req) + msg_bytes(&s->resp);
}

struct store_session *diff_session_copy(void *dst, const struct store_session *s)
{
	struct store_session *d = dst;
	*d = *s;
	struct cursor c = {.hdr = (struct store_header *)((uint8_t *)dst + ALIGN8(sizeof(*s)))};
	c.bytes = (uint8_t *)(c.hdr + msg_fields(&s->req) + msg_fields(&s->resp));
	slice_copy(&c, &d->lane);
	msg_copy(&c, &d->req);
	msg_copy(&c, &d->resp);
	return d;
}

size_t diff_result_size(const struct store_result *r)
{
	return ALIGN8(sizeof(*r)) + msg_fields(&r->resp) * sizeof(struct store_header) +
	       r->target.len + r->role.len + r->error_msg.len + msg_bytes(&r->resp);
}

struct store_result *diff_result_copy(void *dst, const struct store_result *r)
{
	struct store_result *d = dst;
	*d = *r;
	struct cursor c = {.hdr = (struct store_header *)((uint8_t *)dst + ALIGN8(sizeof(*r)))};
	c.bytes = (uint8_t *)(c.hdr + msg_fields(&r->resp));
	slice_copy(&c, &d->target);
	slice_copy(&c, &d->role);
	slice_copy(&c, &d->error_msg);
	msg_copy(&c, &d->resp);
	return d;
}

/* ---- the pool ---- */

struct bpair {
	const struct store_session *s; /* in the batch's arena */
	const struct store_result *r;  /* in the batch's arena */
	uint32_t ci;
	bool sec;
};

struct batch {
	struct batch *next;
	uint8_t *arena;
	size_t used, cap;
	struct bpair v[BATCH_PAIRS];
	size_t n;
	const struct store_session *last_src; /* the caller's session copied last */
	const struct store_session *last_copy;
};

struct worker {
	struct diff_pool *pl;
	pthread_t tid;
	bool started;
	struct diff_engine eng;
	uint64_t *hits;
	struct diff_cand *cand[DIFF_MAX_CANDIDATES];
	struct diff_cand *sec;
	struct diff_part part;
	int rc;
};

struct diff_pool {
	struct diff_ctx *ctx;
	pthread_mutex_t mu;
	pthread_cond_t work; /* a batch is queued, or quit */
	pthread_cond_t room; /* a batch is free */
	struct batch *head, *tail;
	struct batch *spare;
	unsigned n_batches, max_batches;
	bool quit;
	int err; /* the first error of a thread */
	struct batch *cur;
	unsigned n;
	struct worker w[];
};

static void batch_free(struct batch *b)
{
	if (b) {
		mem_free(b->arena);
		mem_free(b);
	}
}

/* Compare one batch in worker @p w's aggregates. */
static int run_batch(struct worker *w, struct batch *b)
{
	struct diff_ctx *c = w->pl->ctx;
	for (size_t i = 0; i < b->n; i++) {
		const struct bpair *p = &b->v[i];
		struct diff_cand **slot = p->sec ? &w->sec : &w->cand[p->ci];
		if (!*slot) {
			const char *role = p->sec ? "secondary" : c->cand[p->ci]->role;
			*slot = diff_cand_new(role, strlen(role), p->sec);
			if (!*slot)
				return -ENOMEM;
		}
		int rc = diff_part_compare(&w->part, *slot, p->s, p->r);
		if (rc)
			return rc;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct diff_pool *pl = w->pl;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (!pl->head && !pl->quit)
			pthread_cond_wait(&pl->work, &pl->mu);
		struct batch *b = pl->head;
		if (!b)
			break; /* quit, and nothing left */
		pl->head = b->next;
		if (!pl->head)
			pl->tail = NULL;
		pthread_mutex_unlock(&pl->mu);
		int rc = w->rc ? 0 : run_batch(w, b);
		b->n = 0;
		b->used = 0;
		b->last_src = b->last_copy = NULL;
		pthread_mutex_lock(&pl->mu);
		if (rc && !w->rc) {
			w->rc = rc;
			if (!pl->err)
				pl->err = rc;
		}
		b->next = pl->spare;
		pl->spare = b;
		pthread_cond_signal(&pl->room);
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

static void stop_workers(struct diff_pool *pl)
{
	pthread_mutex_lock(&pl->mu);
	pl->quit = true;
	pthread_cond_broadcast(&pl->work);
	pthread_mutex_unlock(&pl->mu);
	for (unsigned i = 0; i < pl->n; i++)
		if (pl->w[i].started) {
			pthread_join(pl->w[i].tid, NULL);
			pl->w[i].started = false;
		}
}

static void pool_free(struct diff_pool *pl)
{
	for (unsigned i = 0; i < pl->n; i++) {
		struct worker *w = &pl->w[i];
		diff_engine_release(&w->eng);
		for (size_t k = 0; k < DIFF_MAX_CANDIDATES; k++)
			diff_cand_free(w->cand[k]);
		diff_cand_free(w->sec);
		mem_free(w->hits);
	}
	batch_free(pl->cur);
	for (struct batch *b = pl->spare, *nx; b; b = nx) {
		nx = b->next;
		batch_free(b);
	}
	for (struct batch *b = pl->head, *nx; b; b = nx) {
		nx = b->next;
		batch_free(b);
	}
	pthread_cond_destroy(&pl->work);
	pthread_cond_destroy(&pl->room);
	pthread_mutex_destroy(&pl->mu);
	mem_free(pl);
}

struct diff_pool *diff_pool_create(struct diff_ctx *c, unsigned n)
{
	struct diff_pool *pl = mem_calloc(1, sizeof(*pl) + n * sizeof(struct worker));
	if (!pl)
		return NULL;
	pl->ctx = c;
	pl->n = n;
	pl->max_batches = 2 * n + 1;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->work, NULL);
	pthread_cond_init(&pl->room, NULL);
	size_t nrules = c->p.rules ? c->p.rules->n : 0;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &pl->w[i];
		w->pl = pl;
		if (diff_engine_init(&w->eng, &c->p) ||
		    (nrules && !(w->hits = mem_calloc(nrules, sizeof(uint64_t))))) {
			pl->n = i + 1;
			goto fail;
		}
		w->part.ctx = c;
		w->part.eng = &w->eng;
		w->part.rule_hits = w->hits;
		w->part.cand = w->cand;
		w->part.sec = &w->sec;
	}
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&pl->w[i].tid, NULL, worker_main, &pl->w[i]))
			goto fail;
		pl->w[i].started = true;
	}
	return pl;
fail:
	stop_workers(pl);
	pool_free(pl);
	return NULL;
}

/* Queue the batch being filled. */
static void submit(struct diff_pool *pl)
{
	struct batch *b = pl->cur;
	if (!b)
		return;
	pl->cur = NULL;
	if (!b->n) {
		pthread_mutex_lock(&pl->mu);
		b->next = pl->spare;
		pl->spare = b;
		pthread_mutex_unlock(&pl->mu);
		return;
	}
	b->next = NULL;
	pthread_mutex_lock(&pl->mu);
	if (pl->tail)
		pl->tail->next = b;
	else
		pl->head = b;
	pl->tail = b;
	pthread_cond_signal(&pl->work);
	pthread_mutex_unlock(&pl->mu);
}

/* A batch to fill with room for @p need bytes: a spare, a new one (up to
 * max_batches), or wait for one. NULL on allocation failure. */
static struct batch *take_batch(struct diff_pool *pl, size_t need)
{
	pthread_mutex_lock(&pl->mu);
	while (!pl->spare && pl->n_batches >= pl->max_batches)
		pthread_cond_wait(&pl->room, &pl->mu);
	struct batch *b = pl->spare;
	if (b)
		pl->spare = b->next;
	else
		pl->n_batches++;
	pthread_mutex_unlock(&pl->mu);
	if (!b && !(b = mem_calloc(1, sizeof(*b))))
		return NULL;
	size_t want = need > BATCH_BYTES ? need : BATCH_BYTES;
	if (b->cap < want || (b->cap > BATCH_BYTES && want == BATCH_BYTES)) {
		/* a batch grown for one big record goes back to the usual size */
		mem_free(b->arena);
		b->arena = mem_alloc(want);
		b->cap = b->arena ? want : 0;
		if (!b->arena) {
			batch_free(b);
			return NULL;
		}
	}
	b->next = NULL;
	b->used = 0;
	b->n = 0;
	b->last_src = b->last_copy = NULL;
	return b;
}

int diff_pool_add(struct diff_pool *pl, const struct store_session *s, const struct store_result *r,
		  size_t ci, bool secondary)
{
	pthread_mutex_lock(&pl->mu);
	int err = pl->err;
	pthread_mutex_unlock(&pl->mu);
	if (err)
		return err;
	size_t rs = ALIGN8(diff_result_size(r));
	size_t ss = ALIGN8(diff_session_size(s));
	struct batch *b = pl->cur;
	bool have_s = b && b->last_src == s;
	size_t need = rs + (have_s ? 0 : ss);
	if (b && (b->n == BATCH_PAIRS || b->cap - b->used < need)) {
		submit(pl);
		b = NULL;
	}
	if (!b) {
		if (!(b = take_batch(pl, rs + ss)))
			return -ENOMEM;
		pl->cur = b;
	}
	if (b->last_src != s) {
		b->last_copy = diff_session_copy(b->arena + b->used, s);
		b->last_src = s;
		b->used += ss;
	}
	struct bpair *p = &b->v[b->n++];
	p->s = b->last_copy;
	p->r = diff_result_copy(b->arena + b->used, r);
	b->used += rs;
	p->ci = (uint32_t)ci;
	p->sec = secondary;
	return 0;
}

void diff_pool_forget(struct diff_pool *pl, const struct store_session *s)
{
	if (pl->cur && pl->cur->last_src == s)
		pl->cur->last_src = NULL;
}

int diff_pool_finish(struct diff_pool *pl)
{
	struct diff_ctx *c = pl->ctx;
	submit(pl);
	stop_workers(pl);
	int rc = pl->err;
	/* merge in thread order; memory moves from the threads' aggregates */
	c->part.uncapped = true;
	for (unsigned i = 0; !rc && i < pl->n; i++) {
		struct worker *w = &pl->w[i];
		for (size_t k = 0; !rc && k < DIFF_MAX_CANDIDATES; k++) {
			if (!w->cand[k])
				continue;
			rc = diff_cand_merge(&c->part, c->cand[k], w->cand[k]);
		}
		if (!rc && w->sec) {
			struct diff_cand *sec = diff_ctx_cand(c, NULL, 0, NULL, 0, true);
			rc = sec ? diff_cand_merge(&c->part, sec, w->sec) : -ENOMEM;
		}
		for (size_t k = 0; c->rule_hits && k < c->p.rules->n; k++)
			c->rule_hits[k] += w->hits[k];
		c->eng.dropped += w->eng.dropped;
	}
	c->part.uncapped = false;
	pool_free(pl);
	return rc;
}
