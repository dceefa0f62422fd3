/* SPDX-License-Identifier: MIT */
/*
 * diff_work - reading and comparing on several threads
 * (diff_params.threads).
 *
 * N threads read a file together: the thread that calls diff_pool_read()
 * and N - 1 started by the pool. Each decodes and compares frames, and
 * one at a time has the turn (the pairing turn, diff_pool.turn_held):
 * it walks the file and takes its data frames, each a copy of the
 * compressed bytes (store_reader_take_frame()), settles the decoded
 * frames in file order (store_reader_settle(), the same damage, counters
 * and records as one thread reading) and pairs their records with the
 * window of diff_file.c (diff_pool_pair_fn); the pairs of a frame,
 * pointers into its records, are queued to be compared. Any thread may
 * decompress and decode a taken frame (store_frame_decode()) and compare
 * a paired one.
 *
 * Where things run is chosen for the caches, since handing a frame's
 * buffers from one core to another costs more than the handing over
 * itself: each slot of frames has a preferred thread that decodes and
 * compares the frames it holds, and the turn goes to whichever thread is
 * free when a frame is decoded, most often the one that decoded it, so
 * a frame is decoded, paired and compared on one core. A thread waits
 * only when there is nothing to do (n_idle), and is woken only then:
 * when a frame is queued, not once per state change.
 *
 * Frames are kept in a ring of slots, oldest first: taken (to decode),
 * decoded, being paired, queued for comparison, compared. A slot is
 * reused (retired) only when it and every older one are compared, so the
 * records a pair points to, and the sessions copied out of the window
 * (diff_pool_defer()) that it may point to, live until then. Memory: at
 * most 2 N + 2 frames, and no frame is taken while the frames in flight
 * hold diff_params.max_inflight bytes of content or more (so at most
 * that plus one frame); a frame larger than it alone has no frame read
 * ahead of it (counted in diff_file.c: frames_over_inflight).
 *
 * An error (of decoding, pairing or comparing, or -ENOMEM when a copied
 * session cannot be deferred) fails the run: it is kept in diff_pool.err,
 * no turn is taken and no pair is compared any more, and the threads that
 * wait are woken to stop the read. diff_pool_defer() then frees its block
 * once the compares under way are over (n_comparing is 0): the pairs
 * that point to it are never compared. It is called while pairing (with
 * the turn, which no thread takes while it compares) or by the reading
 * thread after a read, never while comparing: it waits on others only.
 *
 * What pairing touches (the reader, the window and the context's counts
 * of diff_file.c, the ring) is touched only by the thread that has the
 * turn; the turn is taken and given back under mu, which orders one turn
 * after the other. Each thread counts what it compares in its own
 * aggregates (diff_agg.c), with its own pair engine and rule hit counts,
 * and touches nothing shared but the memory counter and the queues. diff_pool_finish() merges the
 * threads' aggregates into the context's in thread order; every aggregate
 * is a sum, a histogram or a bottom-k sample, so the report does not
 * depend on which thread compared which pair, nor on the number of
 * threads.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

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

struct dpair {
	const struct store_session *s;
	const struct store_result *r;
	uint32_t ci;
	bool sec;
};

enum slot_state {
	S_FREE = 0,
	S_TAKEN,     /* queued to be decoded */
	S_DECODING,  /* a thread decodes it */
	S_DECODED,   /* waits for the reading thread */
	S_PAIRING,   /* the reading thread pairs its records */
	S_COMPARING, /* its pairs are queued or being compared */
	S_DONE,	     /* compared: retired once the older slots are */
};

/* Memory of copied results: chunks, freed when the slot is retired. */
struct chunk {
	struct chunk *next;
	size_t used, cap;
	uint8_t b[]; /* 8-aligned: after three 8-byte fields */
};

struct slot {
	struct store_frame *sf;
	enum slot_state st;
	int rc; /* of decoding */
	size_t bytes;
	struct dpair *pairs;
	size_t n_pairs, cap_pairs;
	void **defer; /* blocks to free when retired */
	size_t n_defer, cap_defer;
	struct chunk *chunks;
	struct slot *qnext;
};

struct worker {
	struct diff_pool *pl;
	pthread_t tid;
	bool started;
	struct diff_engine eng;
	struct store_decoder *dec;
	uint64_t *hits;
	struct diff_cand *cand[DIFF_MAX_CANDIDATES];
	struct diff_cand *sec;
	struct diff_part part;
	int rc;
};

struct diff_pool {
	struct diff_ctx *ctx;
	pthread_mutex_t mu;
	pthread_cond_t work;	    /* to idle threads: a slot is queued, a read ends, quit */
	pthread_cond_t done;	    /* to done_waiting: a slot was decoded or compared */
	struct slot *qhead, *qtail; /* frames to decode */
	struct slot *chead, *ctail; /* frames to compare */
	unsigned n_idle;	    /* threads waiting on work */
	unsigned n_comparing;	    /* threads in run_pairs(), never one with the turn */
	bool done_waiting;	    /* a thread waits on done for a slot */
	bool quit;
	int err; /* the first error of a thread */

	/* a file being read (diff_pool_read()): one thread at a time has the
	 * turn to walk, settle and pair */
	struct store_reader *r;
	diff_pool_pair_fn fn;
	void *arg;
	bool reading;	/* a file is read: turns are taken */
	bool turn_held; /* a thread has the turn */
	bool turn_due;	/* a slot was decoded or compared since the last turn began */

	/* the ring, touched by the thread that has the turn, or by the one
	 * that called diff_pool_read() when no file is read (states under mu) */
	struct slot *slots;
	unsigned n_slots;
	unsigned head;	  /* oldest slot in use */
	unsigned n_used;  /* slots in use from head */
	unsigned n_seq;	  /* of those, paired (the next to pair is head + n_seq) */
	size_t inflight;  /* content bytes of the slots in use */
	struct slot *cur; /* being paired */
	bool walk_end, walk_blocked;

	unsigned n; /* threads that decode and compare: the reading thread (w[0]) too */
	struct worker w[];
};

static void *chunk_alloc(struct slot *sl, size_t n)
{
	struct chunk *c = sl->chunks;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		c = mem_alloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = sl->chunks;
		sl->chunks = c;
	}
	void *p = c->b + c->used;
	c->used += ALIGN8(n);
	if (c->used > c->cap)
		c->used = c->cap;
	return p;
}

/* Free what slot @p sl holds for its pairs (not its frame buffers). */
static void slot_clear(struct slot *sl)
{
	for (size_t i = 0; i < sl->n_defer; i++)
		mem_free(sl->defer[i]);
	sl->n_defer = 0;
	for (struct chunk *c = sl->chunks, *nx; c; c = nx) {
		nx = c->next;
		mem_free(c);
	}
	sl->chunks = NULL;
	sl->n_pairs = 0;
}

/* Compare slot @p sl's pairs in worker @p w's aggregates. */
static int run_pairs(struct worker *w, const struct slot *sl)
{
	struct diff_ctx *c = w->pl->ctx;
	for (size_t i = 0; i < sl->n_pairs; i++) {
		const struct dpair *p = &sl->pairs[i];
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

/* Queue @p sl (under mu): to decode when taken, else to compare. An idle
 * thread is woken, if there is one: a busy one looks at the queues before
 * it waits. */
static void enqueue(struct diff_pool *pl, struct slot *sl)
{
	struct slot **h = sl->st == S_TAKEN ? &pl->qhead : &pl->chead;
	struct slot **t = sl->st == S_TAKEN ? &pl->qtail : &pl->ctail;
	sl->qnext = NULL;
	if (*t)
		(*t)->qnext = sl;
	else
		*h = sl;
	*t = sl;
	if (pl->n_idle)
		pthread_cond_signal(&pl->work);
}

/* Remove @p sl from the queue of frames to decode (under mu): false when
 * it is not there. */
static bool dequeue(struct diff_pool *pl, struct slot *sl)
{
	struct slot *prev = NULL;
	for (struct slot *q = pl->qhead; q; prev = q, q = q->qnext) {
		if (q != sl)
			continue;
		if (prev)
			prev->qnext = q->qnext;
		else
			pl->qhead = q->qnext;
		if (pl->qtail == q)
			pl->qtail = prev;
		return true;
	}
	return false;
}

/*
 * Unlink and return the first slot of list @p h/@p t that prefers thread
 * @p me (slot index modulo the number of threads), or with @p any the
 * first slot; NULL when there is none (under mu).
 */
static struct slot *take_from(struct diff_pool *pl, struct slot **h, struct slot **t, unsigned me,
			      bool any)
{
	struct slot *prev = NULL;
	for (struct slot *q = *h; q; prev = q, q = q->qnext) {
		if (!any && (unsigned)(q - pl->slots) % pl->n != me)
			continue;
		if (prev)
			prev->qnext = q->qnext;
		else
			*h = q->qnext;
		if (*t == q)
			*t = prev;
		return q;
	}
	return NULL;
}

/*
 * Thread @p me's next slot (under mu). Each slot has a preferred thread,
 * the same one for decoding and comparing and for every frame the slot
 * holds in turn: its buffers stay in one core's caches. Frames to decode
 * come first (pairing waits for them); another thread's slot is taken
 * only when there is none of one's own.
 */
static struct slot *next_slot(struct diff_pool *pl, unsigned me)
{
	struct slot *sl = take_from(pl, &pl->qhead, &pl->qtail, me, false);
	if (!sl)
		sl = take_from(pl, &pl->chead, &pl->ctail, me, false);
	if (!sl)
		sl = take_from(pl, &pl->qhead, &pl->qtail, me, true);
	if (!sl)
		sl = take_from(pl, &pl->chead, &pl->ctail, me, true);
	return sl;
}

/* Decode or compare slot @p sl, taken from a queue, on thread @p w (under
 * mu, released while it works). A turn is due: the next frame may be
 * ready to pair, or there may be room to take more. */
static void work_on(struct diff_pool *pl, struct worker *w, struct slot *sl)
{
	bool decode = sl->st == S_TAKEN;
	/* after an error the run fails: pairs are no longer compared (they
	 * may point to memory freed on the error's way out) */
	bool compare = !decode && !w->rc && !pl->err;
	if (decode)
		sl->st = S_DECODING;
	pl->n_comparing += compare;
	pthread_mutex_unlock(&pl->mu);
	int rc = 0;
	if (decode)
		rc = store_frame_decode(sl->sf, w->dec);
	else if (compare)
		rc = run_pairs(w, sl);
	pthread_mutex_lock(&pl->mu);
	pl->n_comparing -= compare;
	if (decode) {
		sl->rc = rc;
		sl->st = S_DECODED;
	} else {
		sl->st = S_DONE;
		if (rc && !w->rc) {
			w->rc = rc;
			if (!pl->err) {
				pl->err = rc;
				pthread_cond_broadcast(&pl->work); /* the read stops */
			}
		}
	}
	pl->turn_due = true;
	if (pl->done_waiting)
		pthread_cond_signal(&pl->done);
}

static void *worker_main(void *arg);

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
		store_decoder_free(w->dec);
		for (size_t k = 0; k < DIFF_MAX_CANDIDATES; k++)
			diff_cand_free(w->cand[k]);
		diff_cand_free(w->sec);
		mem_free(w->hits);
	}
	for (unsigned i = 0; pl->slots && i < pl->n_slots; i++) {
		struct slot *sl = &pl->slots[i];
		slot_clear(sl);
		store_frame_free(sl->sf);
		mem_free(sl->pairs);
		mem_free(sl->defer);
	}
	mem_free(pl->slots);
	pthread_cond_destroy(&pl->work);
	pthread_cond_destroy(&pl->done);
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
	pl->n_slots = 2 * n + 2;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->work, NULL);
	pthread_cond_init(&pl->done, NULL);
	pl->slots = mem_calloc(pl->n_slots, sizeof(*pl->slots));
	if (!pl->slots) {
		pl->n = 0;
		goto fail;
	}
	size_t nrules = c->p.rules ? c->p.rules->n : 0;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &pl->w[i];
		w->pl = pl;
		if (diff_engine_init(&w->eng, &c->p) || !(w->dec = store_decoder_create()) ||
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
	/* w[0] is the reading thread's */
	for (unsigned i = 1; i < n; i++) {
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

static struct slot *slot_at(struct diff_pool *pl, unsigned i)
{
	return &pl->slots[(pl->head + i) % pl->n_slots];
}

/* The frame being paired is paired: queue its pairs (or call it done). */
static void pairing_done(struct diff_pool *pl)
{
	struct slot *sl = pl->cur;
	if (!sl)
		return;
	pl->cur = NULL;
	pthread_mutex_lock(&pl->mu);
	if (sl->n_pairs) {
		sl->st = S_COMPARING;
		enqueue(pl, sl);
	} else {
		sl->st = S_DONE;
	}
	pthread_mutex_unlock(&pl->mu);
}

/* Retire the compared slots at the head of the ring (reading thread). */
static void retire(struct diff_pool *pl)
{
	size_t keep = pl->ctx->p.max_inflight / pl->n_slots;
	while (pl->n_seq) {
		struct slot *sl = slot_at(pl, 0);
		pthread_mutex_lock(&pl->mu);
		bool done = sl->st == S_DONE;
		pthread_mutex_unlock(&pl->mu);
		if (!done)
			break;
		slot_clear(sl);
		if (sl->bytes > keep) { /* a large frame's buffers are not kept */
			store_frame_free(sl->sf);
			sl->sf = NULL;
		}
		pl->inflight -= sl->bytes;
		sl->bytes = 0;
		sl->st = S_FREE;
		pl->head = (pl->head + 1) % pl->n_slots;
		pl->n_used--;
		pl->n_seq--;
	}
}

/* Take frames ahead while there is room: slots and the content budget. */
static int fill(struct diff_pool *pl, struct store_reader *r)
{
	while (!pl->walk_end && !pl->walk_blocked && pl->n_used < pl->n_slots &&
	       pl->inflight < pl->ctx->p.max_inflight) {
		struct slot *sl = slot_at(pl, pl->n_used);
		if (!sl->sf && !(sl->sf = store_frame_create()))
			return -ENOMEM;
		int rc = store_reader_take_frame(r, sl->sf);
		if (rc == -EAGAIN) {
			pl->walk_blocked = true;
			break;
		}
		if (rc < 0)
			return rc;
		if (rc == 0) {
			pl->walk_end = true;
			break;
		}
		sl->bytes = store_frame_size(sl->sf);
		sl->rc = 0;
		pl->inflight += sl->bytes;
		pl->n_used++;
		pthread_mutex_lock(&pl->mu);
		sl->st = S_TAKEN;
		enqueue(pl, sl);
		pthread_mutex_unlock(&pl->mu);
	}
	return 0;
}

/* Frames taken after the first @p keep slots are not part of the read
 * (the record cap, an error): wait for their decoding, free their slots. */
static void drop_taken(struct diff_pool *pl, unsigned keep)
{
	while (pl->n_used > keep) {
		struct slot *sl = slot_at(pl, pl->n_used - 1);
		pthread_mutex_lock(&pl->mu);
		if (sl->st == S_TAKEN)
			dequeue(pl, sl);
		while (sl->st == S_DECODING) {
			pl->done_waiting = true;
			pthread_cond_wait(&pl->done, &pl->mu);
			pl->done_waiting = false;
		}
		sl->st = S_FREE;
		pthread_mutex_unlock(&pl->mu);
		pl->inflight -= sl->bytes;
		sl->bytes = 0;
		pl->n_used--;
	}
}

/*
 * A turn (without mu): retire what is compared, take frames while there
 * is room, and settle and pair the next frames in file order while they
 * are decoded. 0 when it waits for a frame to be decoded or compared, 1
 * at the end of the read (every frame taken is paired), or an error.
 */
static int take_turn(struct diff_pool *pl)
{
	for (;;) {
		retire(pl);
		int rc = fill(pl, pl->r);
		if (rc)
			return rc;
		if (pl->n_seq < pl->n_used) {
			struct slot *sl = slot_at(pl, pl->n_seq);
			pthread_mutex_lock(&pl->mu);
			bool ready = sl->st == S_DECODED;
			pthread_mutex_unlock(&pl->mu);
			if (!ready)
				return 0;
			rc = sl->rc;
			if (!rc)
				rc = store_reader_settle(pl->r, sl->sf);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				drop_taken(pl, pl->n_seq + 1);
				pl->walk_end = true;
			}
			if (pl->n_seq + 1 == pl->n_used)
				pl->walk_blocked = false;
			pthread_mutex_lock(&pl->mu);
			sl->st = S_PAIRING;
			pthread_mutex_unlock(&pl->mu);
			pl->n_seq++;
			pl->cur = sl;
			rc = pl->fn(pl->arg, sl->sf);
			pairing_done(pl);
			if (rc)
				return rc < 0 ? rc : -EIO;
			continue;
		}
		if (pl->walk_end)
			return 1;
		if (!pl->walk_blocked)
			return 0;	  /* no room: wait for the oldest to be compared */
		pl->walk_blocked = false; /* every frame taken is settled: walk on */
	}
}

/*
 * One step of thread @p me (under mu, released while it works): the turn
 * when one is due and free, else a slot to decode or compare, its own
 * first. False when there is nothing to do. The turn goes to whichever
 * thread is free when a frame is decoded, most often the one that
 * decoded it, so the frame's records are paired and then compared where
 * they were decoded.
 */
static bool step(struct diff_pool *pl, unsigned me)
{
	if (pl->reading && pl->turn_due && !pl->turn_held && !pl->err) {
		pl->turn_held = true;
		pl->turn_due = false;
		pthread_mutex_unlock(&pl->mu);
		int rc = take_turn(pl);
		pthread_mutex_lock(&pl->mu);
		pl->turn_held = false;
		if (rc < 0 && !pl->err)
			pl->err = rc;
		if (rc)
			pl->reading = false;
		if (rc || pl->err)
			pthread_cond_broadcast(&pl->work); /* to diff_pool_read() */
		return true;
	}
	struct slot *sl = next_slot(pl, me);
	if (!sl)
		return false;
	work_on(pl, &pl->w[me], sl);
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct diff_pool *pl = w->pl;
	unsigned me = (unsigned)(w - pl->w);
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		if (step(pl, me))
			continue;
		if (pl->quit)
			break;
		pl->n_idle++;
		pthread_cond_wait(&pl->work, &pl->mu);
		pl->n_idle--;
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

int diff_pool_read(struct diff_pool *pl, struct store_reader *r, diff_pool_pair_fn fn, void *arg)
{
	pthread_mutex_lock(&pl->mu);
	pl->r = r;
	pl->fn = fn;
	pl->arg = arg;
	pl->walk_end = pl->walk_blocked = false;
	pl->reading = !pl->err;
	pl->turn_due = true;
	/* an error stops the read once the turn is back */
	while ((pl->reading && !pl->err) || pl->turn_held) {
		if (step(pl, 0))
			continue;
		pl->n_idle++;
		pthread_cond_wait(&pl->work, &pl->mu);
		pl->n_idle--;
	}
	pl->reading = false;
	int rc = pl->err;
	pthread_mutex_unlock(&pl->mu);
	return rc;
}

int diff_pool_add(struct diff_pool *pl, const struct store_session *s, const struct store_result *r,
		  size_t ci, bool secondary, bool copy)
{
	struct slot *sl = pl->cur;
	if (copy) {
		struct store_result *d = chunk_alloc(sl, diff_result_size(r));
		if (!d)
			return -ENOMEM;
		r = diff_result_copy(d, r);
	}
	if (sl->n_pairs == sl->cap_pairs) {
		size_t nc = sl->cap_pairs ? sl->cap_pairs * 2 : 512;
		struct dpair *np = mem_realloc(sl->pairs, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		sl->pairs = np;
		sl->cap_pairs = nc;
	}
	sl->pairs[sl->n_pairs++] = (struct dpair){s, r, (uint32_t)ci, secondary};
	return 0;
}

int diff_pool_defer(struct diff_pool *pl, void *block)
{
	/* the newest slot paired holds the newest pairs: once it is retired,
	 * every slot that may point to the block is */
	struct slot *sl = pl->cur;
	if (!sl && pl->n_seq)
		sl = slot_at(pl, pl->n_seq - 1);
	if (!sl) {
		mem_free(block);
		return 0;
	}
	if (sl->n_defer == sl->cap_defer) {
		size_t nc = sl->cap_defer ? sl->cap_defer * 2 : 16;
		void **nd = mem_realloc(sl->defer, nc * sizeof(*nd));
		if (!nd) {
			/* the run fails: once the compares under way are over,
			 * no pair that may point to the block is compared */
			pthread_mutex_lock(&pl->mu);
			if (!pl->err) {
				pl->err = -ENOMEM;
				pthread_cond_broadcast(&pl->work);
			}
			while (pl->n_comparing) {
				pl->done_waiting = true;
				pthread_cond_wait(&pl->done, &pl->mu);
				pl->done_waiting = false;
			}
			pthread_mutex_unlock(&pl->mu);
			mem_free(block);
			return -ENOMEM;
		}
		sl->defer = nd;
		sl->cap_defer = nc;
	}
	sl->defer[sl->n_defer++] = block;
	return 0;
}

int diff_pool_drain(struct diff_pool *pl)
{
	pairing_done(pl);
	drop_taken(pl, pl->n_seq); /* taken, never paired: an error stopped the file */
	for (;;) {
		retire(pl);
		if (!pl->n_used)
			break;
		pthread_mutex_lock(&pl->mu);
		if (!step(pl, 0)) {
			pl->done_waiting = true; /* every slot left is worked on */
			pthread_cond_wait(&pl->done, &pl->mu);
			pl->done_waiting = false;
		}
		pthread_mutex_unlock(&pl->mu);
	}
	pl->walk_end = pl->walk_blocked = false;
	pthread_mutex_lock(&pl->mu);
	int err = pl->err;
	pthread_mutex_unlock(&pl->mu);
	return err;
}

int diff_pool_finish(struct diff_pool *pl)
{
	struct diff_ctx *c = pl->ctx;
	int rc = diff_pool_drain(pl);
	stop_workers(pl);
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
