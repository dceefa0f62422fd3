/* SPDX-License-Identifier: MIT */
/*
 * replay_wq - a bounded queue in front of a results store writer, drained
 * by a writer thread, so an event loop only copies a finished record (no
 * msgpack packing, no zstd compression, no file writes on the loop: they
 * cost ~25 % of the loop's time and stalled pacing).
 *
 * Each producer (one per event loop) deep-copies records into its own
 * 256 KiB chunk (the record struct, its header arrays, then its bytes,
 * pointers fixed into the chunk) without any lock. A full chunk, one that
 * refers to 1 MiB of units (then the writer is signalled: units come back
 * for reuse while still in the caches, and fewer exist at once), or a
 * partial one at replay_wq_prod_flush(), is published with one atomic
 * push onto a lock-free list; the writer thread takes the whole list with
 * one atomic exchange, restores publication order, writes the records
 * through the store_writer API and returns the chunks to a spare list
 * (lock-free push; a producer takes the whole list with one exchange into
 * its private free list), so a loop neither calls malloc nor page-faults
 * on fresh memory once the first chunks exist. Producers never wait
 * for a lock the writer holds: on a loaded machine a writer preempted
 * inside a critical section would otherwise stall the loop for
 * milliseconds. The writer polls every 5 ms and is signalled early when a
 * quarter of the bound is queued. It runs at a lower priority than the
 * thread that created it (SCHED_OTHER, nice + 5; setpriority(2) acts per
 * thread on Linux): the queue absorbs its lag, while an event loop that
 * waits for the CPU sends late.
 *
 * A unit (a session and its results, replay_wq_add_unit()) is queued as
 * one item that refers to it, so its records reach the file next to each
 * other whatever other producers publish meanwhile: the results file's
 * pairing guarantee (docs/format.md "result_lag").
 *
 * The bound counts queued record bytes (a queued unit's whole buffer).
 * When it is reached the queue
 * either blocks the producer (REPLAY_WQ_BLOCK, counted as a stall; the
 * only path that sleeps on a mutex/condition variable) or refuses the
 * record (REPLAY_WQ_DROP, counted as dropped). Records of one producer
 * keep their order; records of different producers interleave by chunk.
 *
 * References: docs/replay.md ("Results writer"), store/store.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/mem.h"
#include "replay/replay.h"

#define WQ_DEFAULT_BYTES (32u * 1024 * 1024)
#define WQ_WAKE_NS	 (5 * 1000000LL)
#define WQ_STALL_NS	 (10 * 1000000LL)
#define WQ_TICK_NS	 (100 * 1000000LL)
#define WQ_CHUNK	 (256u * 1024)
#define WQ_PUBLISH_EXTRA (1024u * 1024) /* units' bytes a chunk refers to */
#define WQ_NICE_UP	 5
#define WQ_SPARE_MAX	 16 /* chunks kept for reuse */

/* A recorded session as its encoded bytes, written with new ids. */
struct wq_raw {
	struct store_raw_record rec; /* bytes.ptr points after the item */
	uint64_t id, conn_id;
	int64_t ts;
};

/* A unit, by reference: its records, packed (store_pack_*()), each after
 * a unit_rec, are in its buffer; the writer hands the unit back. */
struct wq_unit_ref {
	struct replay_wq_unit *unit;
	size_t bytes; /* counted in the queue's bound besides the item */
};

/* What precedes each packed record of a unit. */
struct unit_rec {
	uint32_t len; /* the record's bytes, then padding to 8 */
	bool session;
	int64_t ts;
};

enum { ITEM_REC, ITEM_RAW, ITEM_UNIT };

/* One record in a chunk: header arrays, then the bytes of every slice
 * follow; or (raw) a session's encoded bytes follow; or (unit) a unit
 * whose records were packed on the producer's thread. An item holds only
 * the part of the union it uses (item_head()): a result does not carry a
 * session's room, a raw session neither. */
struct wq_item {
	size_t size; /* whole item, 16-byte aligned */
	uint8_t kind;
	union {
		struct store_record rec;
		struct wq_raw raw;
		struct wq_unit_ref unit;
	} u;
};

/* Bytes of an item of @p kind before its header array or bytes (8-byte aligned). */
static size_t item_head(int kind, enum store_rec_type type)
{
	size_t n = kind == ITEM_RAW ? offsetof(struct wq_item, u.raw) + sizeof(struct wq_raw)
		   : kind == ITEM_UNIT
		       ? offsetof(struct wq_item, u.unit) + sizeof(struct wq_unit_ref)
		   : type == STORE_REC_SESSION
		       ? offsetof(struct wq_item, u.rec.u.session) + sizeof(struct store_session)
		       : offsetof(struct wq_item, u.rec.u.result) + sizeof(struct store_result);
	return (n + 7) & ~(size_t)7;
}

struct replay_wq_unit {
	struct replay_wq_unit *next; /* a producer's spares, or the queue's written units */
	struct dbuf buf;
	uint64_t n; /* records */
};

struct wq_chunk {
	struct wq_chunk *next;
	size_t cap, used; /* bytes of data[] */
	size_t extra;	  /* bytes its items refer to outside it (units) */
	uint64_t n;	  /* records */
	_Alignas(16) uint8_t data[];
};

struct replay_wq {
	struct replay_wq_params p;
	pthread_t tid;
	bool started;
	_Atomic(struct wq_chunk *) pub;		/* published chunks, newest first */
	_Atomic(struct wq_chunk *) spare;	/* written chunks for reuse */
	_Atomic(struct replay_wq_unit *) units; /* written units, for the producers */
	atomic_uint n_spare;			/* about: in spare or producers' free lists */
	atomic_size_t bytes;			/* queued (in producers' chunks or published) */
	atomic_uint waiting;			/* producers blocked for room */
	atomic_bool hold;
	atomic_bool done;
	atomic_int err;	      /* first store writer error, sticky */
	char errmsg[256];     /* set before err */
	pthread_mutex_t lock; /* only for sleeping: */
	pthread_cond_t work;  /* the writer waits for chunks */
	pthread_cond_t space; /* BLOCK producers wait for room */
	atomic_uint_fast64_t queued, written, write_errors, unwritten, stalls, dropped;
	atomic_size_t max_bytes;
};

struct replay_wq_prod {
	struct replay_wq *q;
	struct wq_chunk *cur;
	struct wq_chunk *free;		    /* private spares */
	struct replay_wq_unit *spare_units; /* queued units, kept for reuse */
	unsigned n_spare_units;
	size_t spare_unit_bytes; /* their buffers' capacity */
	size_t unit_hint;	 /* bytes a unit takes: recent largest, decaying */
};

/* ---- deep copy ---- */

static size_t msg_size(const struct store_message *m, size_t *nhdr)
{
	size_t n = m->method.len + m->target.len + m->reason.len + m->body.len;
	for (size_t i = 0; i < m->n_headers; i++)
		n += m->headers[i].name.len + m->headers[i].value.len;
	for (size_t i = 0; i < m->n_trailers; i++)
		n += m->trailers[i].name.len + m->trailers[i].value.len;
	*nhdr += m->n_headers + m->n_trailers;
	return n;
}

struct cursor {
	struct store_header *hdr;
	uint8_t *bytes;
};

static void slice_copy(struct cursor *c, struct store_slice *s)
{
	if (!s->len) {
		s->ptr = NULL;
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

/* Bytes of the item holding record @p src and everything it points to. */
static size_t item_size(const struct store_record *src)
{
	size_t nhdr = 0, nbytes = 0;
	if (src->type == STORE_REC_SESSION) {
		const struct store_session *s = &src->u.session;
		nbytes = s->lane.len + msg_size(&s->req, &nhdr) + msg_size(&s->resp, &nhdr);
	} else {
		const struct store_result *r = &src->u.result;
		nbytes = r->target.len + r->role.len + r->error_msg.len + msg_size(&r->resp, &nhdr);
	}
	size_t size = item_head(ITEM_REC, src->type) + nhdr * sizeof(struct store_header) + nbytes;
	return (size + 15) & ~(size_t)15;
}

static size_t n_headers(const struct store_record *src)
{
	if (src->type == STORE_REC_SESSION)
		return src->u.session.req.n_headers + src->u.session.resp.n_headers +
		       src->u.session.req.n_trailers + src->u.session.resp.n_trailers;
	return src->u.result.resp.n_headers + src->u.result.resp.n_trailers;
}

/* Copy record @p src into @p it (item_size() bytes). */
static void item_fill(struct wq_item *it, size_t size, const struct store_record *src)
{
	it->size = size;
	it->kind = ITEM_REC;
	/* Only the used member: the item may end before the union does. */
	it->u.rec.type = src->type;
	if (src->type == STORE_REC_SESSION)
		it->u.rec.u.session = src->u.session;
	else
		it->u.rec.u.result = src->u.result;
	struct cursor c = {
	    .hdr = (struct store_header *)((uint8_t *)it + item_head(ITEM_REC, src->type))};
	c.bytes = (uint8_t *)(c.hdr + n_headers(src));
	if (src->type == STORE_REC_SESSION) {
		struct store_session *s = &it->u.rec.u.session;
		slice_copy(&c, &s->lane);
		msg_copy(&c, &s->req);
		msg_copy(&c, &s->resp);
	} else {
		struct store_result *r = &it->u.rec.u.result;
		slice_copy(&c, &r->target);
		slice_copy(&c, &r->role);
		slice_copy(&c, &r->error_msg);
		msg_copy(&c, &r->resp);
	}
}
size_t replay_session_tail_size(const struct store_session *s)
{
	size_t nhdr = 0;
	size_t nbytes = s->lane.len + msg_size(&s->req, &nhdr) + msg_size(&s->resp, &nhdr);
	return (nhdr * sizeof(struct store_header) + nbytes + 7) & ~(size_t)7;
}

void replay_session_copy(struct store_session *dst, const struct store_session *src, void *tail)
{
	*dst = *src;
	struct cursor c = {.hdr = tail};
	c.bytes = (uint8_t *)(c.hdr + src->req.n_headers + src->resp.n_headers +
			      src->req.n_trailers + src->resp.n_trailers);
	slice_copy(&c, &dst->lane);
	msg_copy(&c, &dst->req);
	msg_copy(&c, &dst->resp);
}

/* ---- the writer thread ---- */

/* A written unit goes back to the producers (lock-free push; they take
 * the whole list at once, so there is no ABA). */
static void unit_give_back(struct replay_wq *q, struct replay_wq_unit *u)
{
	u->next = atomic_load(&q->units);
	while (!atomic_compare_exchange_weak(&q->units, &u->next, u))
		;
}

/* Write a unit's records; counts into @p ok, @p bad, @p skipped. */
static void write_unit(struct replay_wq *q, const struct wq_item *it, uint64_t *ok, uint64_t *bad,
		       uint64_t *skipped)
{
	struct replay_wq_unit *u = it->u.unit.unit;
	const uint8_t *p = u->buf.data;
	const uint8_t *end = p + u->buf.len;
	while (p < end) {
		const struct unit_rec *ur = (const struct unit_rec *)p;
		p += sizeof(*ur);
		int rc = atomic_load(&q->err);
		if (rc) {
			(*skipped)++;
		} else if ((rc = store_writer_add_packed(q->p.writer, p, ur->len, ur->ts,
							 ur->session))) {
			snprintf(q->errmsg, sizeof(q->errmsg), "cannot write results: %s",
				 store_writer_error(q->p.writer));
			atomic_store(&q->err, rc);
		}
		if (rc)
			(*bad)++;
		else
			(*ok)++;
		p += ((size_t)ur->len + 7) & ~(size_t)7;
	}
}

static void write_chunk(struct replay_wq *q, const struct wq_chunk *ch)
{
	uint64_t ok = 0, bad = 0, skipped = 0;
	for (size_t off = 0; off < ch->used;) {
		const struct wq_item *it = (const struct wq_item *)(ch->data + off);
		off += it->size;
		if (it->kind == ITEM_UNIT) {
			write_unit(q, it, &ok, &bad, &skipped);
			atomic_fetch_sub(&q->bytes, it->u.unit.bytes);
			unit_give_back(q, it->u.unit.unit);
			continue;
		}
		int rc = atomic_load(&q->err);
		skipped += rc != 0; /* never given to the writer: it counts no loss for them */
		if (!rc) {
			const struct store_record *rec = &it->u.rec;
			if (it->kind == ITEM_RAW)
				rc = store_writer_add_session_raw(q->p.writer, &it->u.raw.rec,
								  it->u.raw.id, it->u.raw.conn_id,
								  it->u.raw.ts);
			else if (rec->type == STORE_REC_SESSION)
				rc = store_writer_add_session(q->p.writer, &rec->u.session);
			else
				rc = store_writer_add_result(q->p.writer, &rec->u.result);
			if (rc) {
				snprintf(q->errmsg, sizeof(q->errmsg), "cannot write results: %s",
					 store_writer_error(q->p.writer));
				atomic_store(&q->err, rc);
			}
		}
		if (rc)
			bad++;
		else
			ok++;
	}
	atomic_fetch_add(&q->written, ok);
	atomic_fetch_add(&q->write_errors, bad);
	atomic_fetch_add(&q->unwritten, skipped);
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *m, int64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t t = ts.tv_nsec + ns;
	ts.tv_sec += t / 1000000000LL;
	ts.tv_nsec = t % 1000000000LL;
	pthread_cond_timedwait(cv, m, &ts);
}

/* Yield to the event loops: leave a real-time class, raise the nice value. */
static void lower_priority(void)
{
	int pol = 0;
	struct sched_param sp;
	if (!pthread_getschedparam(pthread_self(), &pol, &sp) && pol != SCHED_OTHER) {
		sp.sched_priority = 0;
		(void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	}
	id_t tid = (id_t)syscall(SYS_gettid);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, tid);
	if (errno == 0)
		(void)setpriority(PRIO_PROCESS, tid, nice + WQ_NICE_UP);
}

static void *wq_main(void *arg)
{
	struct replay_wq *q = arg;
	lower_priority();
	int64_t next_tick = clk_mono_ns() + WQ_TICK_NS;
	for (;;) {
		bool done = atomic_load(&q->done);
		struct wq_chunk *list = NULL;
		if (!atomic_load(&q->hold) || done)
			list = atomic_exchange(&q->pub, NULL);
		if (!list) {
			if (done)
				break;
			pthread_mutex_lock(&q->lock);
			timed_wait(&q->work, &q->lock, WQ_WAKE_NS);
			pthread_mutex_unlock(&q->lock);
			continue;
		}
		struct wq_chunk *fifo = NULL; /* reverse: oldest first */
		while (list) {
			struct wq_chunk *next = list->next;
			list->next = fifo;
			fifo = list;
			list = next;
		}
		while (fifo) {
			struct wq_chunk *next = fifo->next;
			write_chunk(q, fifo);
			atomic_fetch_sub(&q->bytes, fifo->used);
			if (fifo->cap == WQ_CHUNK && atomic_load(&q->n_spare) < WQ_SPARE_MAX) {
				atomic_fetch_add(&q->n_spare, 1);
				fifo->next = atomic_load(&q->spare);
				while (!atomic_compare_exchange_weak(&q->spare, &fifo->next, fifo))
					;
			} else {
				mem_free(fifo);
			}
			fifo = next;
			if (atomic_load(&q->waiting)) {
				pthread_mutex_lock(&q->lock);
				pthread_cond_broadcast(&q->space);
				pthread_mutex_unlock(&q->lock);
			}
		}
		int64_t now = clk_mono_ns();
		if (now >= next_tick && !atomic_load(&q->err)) {
			store_writer_tick(q->p.writer);
			next_tick = now + WQ_TICK_NS;
		}
	}
	return NULL;
}

/* ---- public API ---- */

struct replay_wq *replay_wq_create(const struct replay_wq_params *p, char *err, size_t errlen)
{
	if (!p->writer) {
		snprintf(err, errlen, "no results writer given");
		return NULL;
	}
	struct replay_wq *q = mem_calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->p = *p;
	if (!q->p.max_bytes)
		q->p.max_bytes = WQ_DEFAULT_BYTES;
	atomic_init(&q->pub, NULL);
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work, &ca);
	pthread_cond_init(&q->space, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&q->tid, NULL, wq_main, q);
	if (rc) {
		snprintf(err, errlen, "cannot start the results writer thread: %s", strerror(rc));
		pthread_cond_destroy(&q->work);
		pthread_cond_destroy(&q->space);
		pthread_mutex_destroy(&q->lock);
		mem_free(q);
		return NULL;
	}
	q->started = true;
	return q;
}

struct replay_wq_prod *replay_wq_prod_create(struct replay_wq *q)
{
	struct replay_wq_prod *pr = mem_calloc(1, sizeof(*pr));
	if (pr)
		pr->q = q;
	return pr;
}

void replay_wq_prod_flush(struct replay_wq_prod *pr)
{
	struct wq_chunk *ch = pr->cur;
	if (!ch)
		return;
	pr->cur = NULL;
	struct replay_wq *q = pr->q;
	ch->next = atomic_load(&q->pub);
	while (!atomic_compare_exchange_weak(&q->pub, &ch->next, ch))
		;
}

static void wait_for_room(struct replay_wq *q, size_t size)
{
	pthread_mutex_lock(&q->lock);
	atomic_fetch_add(&q->waiting, 1);
	pthread_cond_signal(&q->work);
	for (;;) {
		size_t b = atomic_load(&q->bytes);
		if (!b || b + size <= q->p.max_bytes || atomic_load(&q->done))
			break;
		timed_wait(&q->space, &q->lock, WQ_STALL_NS);
	}
	atomic_fetch_sub(&q->waiting, 1);
	pthread_mutex_unlock(&q->lock);
}

/* Room for an item of @p size bytes in the producer's chunk, with @p extra
 * bytes outside it that count in the bound (NULL: *rc). */
static struct wq_item *prod_reserve_x(struct replay_wq_prod *pr, size_t size, size_t extra, int *rc)
{
	struct replay_wq *q = pr->q;
	int werr = atomic_load(&q->err);
	*rc = werr ? werr : atomic_load(&q->done) ? -EPIPE : 0;
	if (*rc)
		return NULL;
	size_t b = atomic_load(&q->bytes);
	/* An item larger than the bound still passes an empty queue. */
	if (b && b + size + extra > q->p.max_bytes) {
		if (q->p.policy == REPLAY_WQ_DROP) {
			atomic_fetch_add(&q->dropped, 1);
			*rc = -ENOBUFS;
			return NULL;
		}
		atomic_fetch_add(&q->stalls, 1);
		replay_wq_prod_flush(pr); /* the writer can only drain published chunks */
		wait_for_room(q, size + extra);
	}
	struct wq_chunk *ch = pr->cur;
	if (!ch || ch->cap - ch->used < size) {
		replay_wq_prod_flush(pr);
		size_t cap = size > WQ_CHUNK ? size : WQ_CHUNK;
		if (cap == WQ_CHUNK && !pr->free)
			pr->free = atomic_exchange(&q->spare, NULL);
		if (cap == WQ_CHUNK && pr->free) {
			ch = pr->free;
			pr->free = ch->next;
			atomic_fetch_sub(&q->n_spare, 1);
		} else {
			ch = mem_alloc(sizeof(*ch) + cap);
		}
		if (!ch) {
			*rc = -ENOMEM;
			return NULL;
		}
		ch->next = NULL;
		ch->cap = cap;
		ch->used = 0;
		ch->extra = 0;
		ch->n = 0;
		pr->cur = ch;
	}
	return (struct wq_item *)(ch->data + ch->used);
}

static struct wq_item *prod_reserve(struct replay_wq_prod *pr, size_t size, int *rc)
{
	return prod_reserve_x(pr, size, 0, rc);
}

/* The item holding @p n records that prod_reserve_x() returned room for
 * (@p size bytes, @p extra outside the chunk) is filled: queue it. */
static void prod_commit_n(struct replay_wq_prod *pr, size_t size, size_t extra, uint64_t n)
{
	struct replay_wq *q = pr->q;
	struct wq_chunk *ch = pr->cur;
	ch->used += size;
	ch->extra += extra;
	ch->n += n;
	atomic_fetch_add_explicit(&q->queued, n, memory_order_relaxed);
	size_t before = atomic_fetch_add(&q->bytes, size + extra);
	size_t now = before + size + extra, hw = atomic_load(&q->max_bytes);
	while (now > hw && !atomic_compare_exchange_weak(&q->max_bytes, &hw, now))
		;
	/* Wake the writer early once the chunk refers to 1 MiB of units or
	 * a quarter of the bound is queued. */
	bool wake = ch->extra >= WQ_PUBLISH_EXTRA ||
		    (before < q->p.max_bytes / 4 && now >= q->p.max_bytes / 4);
	if (wake || ch->used == ch->cap)
		replay_wq_prod_flush(pr);
	if (wake)
		pthread_cond_signal(&q->work);
}

static void prod_commit(struct replay_wq_prod *pr, size_t size)
{
	prod_commit_n(pr, size, 0, 1);
}

static int prod_add(struct replay_wq_prod *pr, const struct store_record *rec)
{
	size_t size = item_size(rec);
	int rc;
	struct wq_item *it = prod_reserve(pr, size, &rc);
	if (!it)
		return rc;
	item_fill(it, size, rec);
	prod_commit(pr, size);
	return 0;
}

int replay_wq_add_session(struct replay_wq_prod *pr, const struct store_session *s)
{
	struct store_record rec = {.type = STORE_REC_SESSION};
	rec.u.session = *s;
	return prod_add(pr, &rec);
}

/* Copy a raw session item into @p dst (its size bytes). */
static void raw_fill(struct wq_item *dst, size_t size, const struct store_raw_record *raw,
		     uint64_t id, uint64_t conn_id, int64_t ts)
{
	size_t head = item_head(ITEM_RAW, STORE_REC_SESSION);
	dst->size = size;
	dst->kind = ITEM_RAW;
	dst->u.raw = (struct wq_raw){.rec = *raw, .id = id, .conn_id = conn_id, .ts = ts};
	if (raw->bytes.len) {
		memcpy((uint8_t *)dst + head, raw->bytes.ptr, raw->bytes.len);
		dst->u.raw.rec.bytes.ptr = (const uint8_t *)dst + head;
	}
}

static size_t raw_size(const struct store_raw_record *raw)
{
	return (item_head(ITEM_RAW, STORE_REC_SESSION) + raw->bytes.len + 15) & ~(size_t)15;
}

int replay_wq_add_session_raw(struct replay_wq_prod *pr, const struct store_raw_record *raw,
			      uint64_t id, uint64_t conn_id, int64_t ts)
{
	size_t size = raw_size(raw);
	int rc;
	struct wq_item *it = prod_reserve(pr, size, &rc);
	if (!it)
		return rc;
	raw_fill(it, size, raw, id, conn_id, ts);
	prod_commit(pr, size);
	return 0;
}

int replay_wq_add_result(struct replay_wq_prod *pr, const struct store_result *r)
{
	struct store_record rec = {.type = STORE_REC_RESULT};
	rec.u.result = *r;
	return prod_add(pr, &rec);
}

/* ---- units ---- */

/*
 * A unit is packed as it grows, on the producer's thread, into one buffer
 * (its session, then each result, each after a unit_rec), and queued by
 * reference: the item in the chunk points to the unit, whose bytes are
 * copied once, into the store writer's frame, and the writer thread only
 * appends and compresses. Written units go back to a list of the queue's
 * that producers take whole into their spares, so a steady run allocates
 * none (a copy into the chunk cost ~4 % of an h2c replay's CPU).
 */
#define UNIT_MAX	 ((size_t)1 << 30) /* a unit's bytes (each record is far smaller) */
#define UNIT_SPARE_MAX	 2048		   /* units a producer keeps for reuse */
#define UNIT_SPARE_BYTES (64u * 1024)	   /* larger buffers are not kept */
#define UNIT_SPARE_TOTAL (16u << 20)	   /* nor more than this in all */
#define UNIT_FIRST_BYTES 256		   /* a unit's buffer at least */

static void unit_recycle(struct replay_wq_prod *pr, struct replay_wq_unit *u);

static struct replay_wq_unit *unit_get(struct replay_wq_prod *pr)
{
	if (pr && !pr->spare_units) {
		struct replay_wq_unit *back = atomic_exchange(&pr->q->units, NULL);
		while (back) {
			struct replay_wq_unit *next = back->next;
			unit_recycle(pr, back);
			back = next;
		}
	}
	/* Room for what units take lately, so that a unit is not grown from
	 * 64 bytes by doubling (a realloc each time); the dbuf keeps a byte
	 * for its NUL. */
	size_t want = pr && pr->unit_hint > UNIT_FIRST_BYTES ? pr->unit_hint : UNIT_FIRST_BYTES;
	struct replay_wq_unit *u = pr ? pr->spare_units : NULL;
	if (u) {
		pr->spare_units = u->next;
		pr->n_spare_units--;
		pr->spare_unit_bytes -= u->buf.cap;
		u->next = NULL;
		u->n = 0;
		dbuf_reset(&u->buf);
		if (u->buf.cap < want)
			(void)dbuf_reserve(&u->buf, want - 1);
		return u;
	}
	u = mem_calloc(1, sizeof(*u));
	if (u) {
		dbuf_init(&u->buf, UNIT_MAX);
		(void)dbuf_reserve(&u->buf, want - 1);
	}
	return u;
}

/* A unit of @p len bytes was filled: the size new units start at follows
 * the largest of late (at once upwards, by 1/64 of the gap downwards). */
static void unit_hint_update(struct replay_wq_prod *pr, size_t len)
{
	if (len + 1 > pr->unit_hint)
		pr->unit_hint = len + 1;
	else
		pr->unit_hint -= (pr->unit_hint - len - 1) / 64;
	if (pr->unit_hint > UNIT_SPARE_BYTES)
		pr->unit_hint = UNIT_SPARE_BYTES;
}

/* Append a record packed by @p pack to @p u. 0 or -errno (u unchanged). */
static int unit_pack(struct replay_wq_unit *u, bool session, int64_t ts,
		     int (*pack)(struct dbuf *, const void *), const void *rec)
{
	size_t at = u->buf.len;
	struct unit_rec ur = {.session = session, .ts = ts};
	int rc = dbuf_append(&u->buf, &ur, sizeof(ur));
	if (!rc)
		rc = pack(&u->buf, rec);
	size_t len = u->buf.len - at - sizeof(ur);
	static const uint8_t pad[8];
	if (!rc && len > UINT32_MAX)
		rc = -E2BIG;
	if (!rc)
		rc = dbuf_append(&u->buf, pad, (8 - (len & 7)) & 7);
	if (rc) {
		u->buf.len = at;
		return rc;
	}
	((struct unit_rec *)(u->buf.data + at))->len = (uint32_t)len;
	u->n++;
	return 0;
}

static int pack_session_cb(struct dbuf *b, const void *rec)
{
	return store_pack_session(b, rec);
}

static int pack_result_cb(struct dbuf *b, const void *rec)
{
	return store_pack_result(b, rec);
}

struct raw_args {
	const struct store_raw_record *raw;
	uint64_t id, conn_id;
};

static int pack_raw_cb(struct dbuf *b, const void *rec)
{
	const struct raw_args *a = rec;
	return store_pack_session_raw(b, a->raw, a->id, a->conn_id);
}

struct replay_wq_unit *replay_wq_unit_session(struct replay_wq_prod *pr,
					      const struct store_session *s)
{
	struct replay_wq_unit *u = unit_get(pr);
	if (u && unit_pack(u, true, s->ts_req_first_ns, pack_session_cb, s)) {
		replay_wq_unit_free(u);
		u = NULL;
	}
	return u;
}

struct replay_wq_unit *replay_wq_unit_session_raw(struct replay_wq_prod *pr,
						  const struct store_raw_record *raw, uint64_t id,
						  uint64_t conn_id, int64_t ts)
{
	struct replay_wq_unit *u = unit_get(pr);
	struct raw_args a = {raw, id, conn_id};
	if (u && unit_pack(u, true, ts, pack_raw_cb, &a)) {
		replay_wq_unit_free(u);
		u = NULL;
	}
	return u;
}

int replay_wq_unit_result(struct replay_wq_unit *u, const struct store_result *r)
{
	return unit_pack(u, false, r->ts_sent_ns, pack_result_cb, r);
}

size_t replay_wq_unit_records(const struct replay_wq_unit *u)
{
	return u ? u->n : 0;
}

/* The unit's item in a chunk, and the bytes it counts outside it. */
static size_t unit_item_size(void)
{
	return (item_head(ITEM_UNIT, STORE_REC_SESSION) + 15) & ~(size_t)15;
}

/* A queued unit holds its whole buffer: the bound counts its capacity. */
static size_t unit_extra(const struct replay_wq_unit *u)
{
	return u->buf.cap;
}

size_t replay_wq_unit_bytes(const struct replay_wq_unit *u)
{
	return u ? unit_item_size() + unit_extra(u) : 0;
}

void replay_wq_unit_free(struct replay_wq_unit *u)
{
	if (!u)
		return;
	dbuf_release(&u->buf);
	mem_free(u);
}

/* A queued or refused unit: back to the producer's spares, or freed. */
static void unit_recycle(struct replay_wq_prod *pr, struct replay_wq_unit *u)
{
	if (pr->n_spare_units >= UNIT_SPARE_MAX || u->buf.cap > UNIT_SPARE_BYTES ||
	    pr->spare_unit_bytes + u->buf.cap > UNIT_SPARE_TOTAL) {
		replay_wq_unit_free(u);
		return;
	}
	u->next = pr->spare_units;
	pr->spare_units = u;
	pr->n_spare_units++;
	pr->spare_unit_bytes += u->buf.cap;
}

int replay_wq_add_unit(struct replay_wq_prod *pr, struct replay_wq_unit *u)
{
	int rc;
	unit_hint_update(pr, u->buf.len);
	size_t size = unit_item_size(), extra = unit_extra(u);
	struct wq_item *it = prod_reserve_x(pr, size, extra, &rc);
	if (it) {
		it->size = size;
		it->kind = ITEM_UNIT;
		it->u.unit = (struct wq_unit_ref){.unit = u, .bytes = extra};
		prod_commit_n(pr, size, extra, u->n); /* the writer hands u back */
		return 0;
	}
	if (rc == -ENOBUFS) /* the whole unit is refused: one count per record */
		atomic_fetch_add(&pr->q->dropped, u->n - 1);
	unit_recycle(pr, u);
	return rc;
}

void replay_wq_prod_free(struct replay_wq_prod *pr)
{
	if (!pr)
		return;
	replay_wq_prod_flush(pr);
	while (pr->spare_units) {
		struct replay_wq_unit *u = pr->spare_units;
		pr->spare_units = u->next;
		replay_wq_unit_free(u);
	}
	while (pr->free) {
		struct wq_chunk *next = pr->free->next;
		atomic_fetch_sub(&pr->q->n_spare, 1);
		mem_free(pr->free);
		pr->free = next;
	}
	mem_free(pr);
}

int replay_wq_error(const struct replay_wq *q, char *msg, size_t msglen)
{
	int rc = atomic_load(&((struct replay_wq *)q)->err);
	if (rc && msg && msglen)
		snprintf(msg, msglen, "%s", q->errmsg);
	return rc;
}

void replay_wq_hold(struct replay_wq *q, bool hold)
{
	atomic_store(&q->hold, hold);
	if (!hold)
		pthread_cond_signal(&q->work);
}

void replay_wq_get_stats(struct replay_wq *q, struct replay_wq_stats *out)
{
	out->queued = atomic_load(&q->queued);
	out->written = atomic_load(&q->written);
	out->write_errors = atomic_load(&q->write_errors);
	out->unwritten = atomic_load(&q->unwritten);
	out->stalls = atomic_load(&q->stalls);
	out->dropped = atomic_load(&q->dropped);
	out->max_bytes = atomic_load(&q->max_bytes);
	out->queued_bytes = atomic_load(&q->bytes);
}

int replay_wq_finish(struct replay_wq *q)
{
	if (q->started) {
		atomic_store(&q->done, true);
		pthread_mutex_lock(&q->lock);
		pthread_cond_signal(&q->work);
		pthread_cond_broadcast(&q->space);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->tid, NULL);
		q->started = false;
	}
	return atomic_load(&q->err);
}

void replay_wq_free(struct replay_wq *q)
{
	if (!q)
		return;
	(void)replay_wq_finish(q);
	/* Spares, and chunks published after the writer stopped (a producer
	 * freed late), with the units they refer to. */
	for (int i = 0; i < 2; i++) {
		struct wq_chunk *ch = atomic_exchange(i ? &q->pub : &q->spare, NULL);
		while (ch) {
			struct wq_chunk *next = ch->next;
			for (size_t off = 0; i && off < ch->used;) {
				const struct wq_item *it = (const struct wq_item *)(ch->data + off);
				off += it->size;
				if (it->kind == ITEM_UNIT)
					replay_wq_unit_free(it->u.unit.unit);
			}
			mem_free(ch);
			ch = next;
		}
	}
	struct replay_wq_unit *u = atomic_exchange(&q->units, NULL);
	while (u) {
		struct replay_wq_unit *next = u->next;
		replay_wq_unit_free(u);
		u = next;
	}
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->space);
	pthread_mutex_destroy(&q->lock);
	mem_free(q);
}
