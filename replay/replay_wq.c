/* SPDX-License-Identifier: MIT */
/*
 * replay_wq - a bounded queue in front of a results store writer, drained
 * by a writer thread, so an event loop only copies a finished record and
 * links it (no msgpack packing, no zstd compression, no file writes on the
 * loop: those stalled pacing and cost ~25 % of the loop's time).
 *
 * Each record is deep-copied into the current 256 KiB chunk (the record
 * struct, its header arrays, then its bytes, pointers fixed into the
 * chunk) under a mutex; full chunks form a FIFO list. The writer thread
 * takes all chunks at once, writes their records through the store_writer
 * API in order and returns the chunks to a free list, so the loop neither
 * allocates nor frees per record. It
 * sleeps on a condition variable with a short timeout; producers only
 * signal it when the queue passes a quarter of its byte bound, so a busy
 * loop pays no futex wake per record. When the bound is reached the queue
 * either blocks the producer (REPLAY_WQ_BLOCK, counted as a stall) or
 * refuses the record (REPLAY_WQ_DROP, counted as dropped).
 *
 * Thread-safety: any number of producer threads; the store writer is used
 * by the queue's thread only, from create until replay_wq_finish().
 * References: docs/replay.md ("Results writer"), store/store.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "replay/replay.h"

#define REPLAY_LOG(lvl, ...) LOG_MSG(lvl, "replay", __VA_ARGS__)

#define WQ_DEFAULT_BYTES (32u * 1024 * 1024)
#define WQ_WAKE_NS	 (5 * 1000000LL)
#define WQ_TICK_NS	 (100 * 1000000LL)
#define WQ_CHUNK	 (256u * 1024)
#define WQ_FREE_MAX	 8 /* spare chunks kept for reuse */

/* One record in a chunk: header arrays, then the bytes of every slice follow. */
struct wq_item {
	size_t size; /* whole item, 8-byte aligned */
	struct store_record rec;
};

struct wq_chunk {
	struct wq_chunk *next;
	size_t cap, used; /* bytes after the header */
	_Alignas(16) uint8_t data[];
};

struct replay_wq {
	struct replay_wq_params p;
	pthread_t tid;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t work;	      /* the writer waits for records, a release or the end */
	pthread_cond_t space;	      /* producers wait for room */
	struct wq_chunk *head, *tail; /* tail is the one being filled */
	struct wq_chunk *spare;	      /* free list */
	uint32_t n_spare;
	size_t bytes;		    /* queued item bytes */
	uint32_t producers_waiting; /* blocked in BLOCK policy */
	bool hold;
	bool done;
	struct replay_wq_stats st; /* under lock */
	atomic_int err;		   /* first store writer error, sticky */
	char errmsg[256];	   /* set once before err */
};

/* ---- deep copy ---- */

static size_t msg_size(const struct store_message *m, size_t *nhdr)
{
	size_t n = m->method.len + m->target.len + m->reason.len + m->body.len;
	for (size_t i = 0; i < m->n_headers; i++)
		n += m->headers[i].name.len + m->headers[i].value.len;
	*nhdr += m->n_headers;
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

static void msg_copy(struct cursor *c, struct store_message *m)
{
	slice_copy(c, &m->method);
	slice_copy(c, &m->target);
	slice_copy(c, &m->reason);
	slice_copy(c, &m->body);
	if (!m->n_headers) {
		m->headers = NULL;
		return;
	}
	struct store_header *h = c->hdr;
	c->hdr += m->n_headers;
	for (size_t i = 0; i < m->n_headers; i++) {
		h[i] = m->headers[i];
		slice_copy(c, &h[i].name);
		slice_copy(c, &h[i].value);
	}
	m->headers = h;
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
	size_t size = sizeof(struct wq_item) + nhdr * sizeof(struct store_header) + nbytes;
	return (size + 15) & ~(size_t)15;
}

static size_t n_headers(const struct store_record *src)
{
	if (src->type == STORE_REC_SESSION)
		return src->u.session.req.n_headers + src->u.session.resp.n_headers;
	return src->u.result.resp.n_headers;
}

/* Copy record @p src into @p it (item_size() bytes). */
static void item_fill(struct wq_item *it, size_t size, const struct store_record *src)
{
	it->size = size;
	it->rec = *src;
	struct cursor c = {.hdr = (struct store_header *)(it + 1)};
	c.bytes = (uint8_t *)(c.hdr + n_headers(src));
	if (src->type == STORE_REC_SESSION) {
		struct store_session *s = &it->rec.u.session;
		slice_copy(&c, &s->lane);
		msg_copy(&c, &s->req);
		msg_copy(&c, &s->resp);
	} else {
		struct store_result *r = &it->rec.u.result;
		slice_copy(&c, &r->target);
		slice_copy(&c, &r->role);
		slice_copy(&c, &r->error_msg);
		msg_copy(&c, &r->resp);
	}
}

/* ---- the writer thread ---- */

static void write_items(struct replay_wq *q, struct wq_chunk *ch, uint64_t *written,
			uint64_t *errors)
{
	for (size_t off = 0; off < ch->used;) {
		struct wq_item *it = (struct wq_item *)(ch->data + off);
		off += it->size;
		int rc = atomic_load(&q->err);
		if (!rc) {
			rc = it->rec.type == STORE_REC_SESSION
				 ? store_writer_add_session(q->p.writer, &it->rec.u.session)
				 : store_writer_add_result(q->p.writer, &it->rec.u.result);
			if (rc) {
				snprintf(q->errmsg, sizeof(q->errmsg), "cannot write results: %s",
					 store_writer_error(q->p.writer));
				atomic_store(&q->err, rc);
			}
		}
		if (rc)
			(*errors)++;
		else
			(*written)++;
	}
}

static void abs_deadline(struct timespec *ts, int64_t from_now_ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	int64_t ns = ts->tv_nsec + from_now_ns;
	ts->tv_sec += ns / 1000000000LL;
	ts->tv_nsec = ns % 1000000000LL;
}

static void *wq_main(void *arg)
{
	struct replay_wq *q = arg;
	int64_t next_tick = clk_mono_ns() + WQ_TICK_NS;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if ((!q->head || q->hold) && !q->done) {
			struct timespec ts;
			abs_deadline(&ts, WQ_WAKE_NS);
			pthread_cond_timedwait(&q->work, &q->lock, &ts);
		}
		if (q->hold && !q->done)
			continue;
		struct wq_chunk *list = q->head;
		q->head = q->tail = NULL;
		bool last = q->done && !list;
		pthread_mutex_unlock(&q->lock);
		uint64_t written = 0, errors = 0;
		size_t taken = 0;
		for (struct wq_chunk *ch = list; ch; ch = ch->next) {
			write_items(q, ch, &written, &errors);
			taken += ch->used;
		}
		int64_t now = clk_mono_ns();
		if (now >= next_tick && !atomic_load(&q->err)) {
			store_writer_tick(q->p.writer);
			next_tick = now + WQ_TICK_NS;
		}
		pthread_mutex_lock(&q->lock);
		while (list) {
			struct wq_chunk *next = list->next;
			if (q->n_spare < WQ_FREE_MAX && list->cap == WQ_CHUNK) {
				list->next = q->spare;
				q->spare = list;
				q->n_spare++;
			} else {
				mem_free(list);
			}
			list = next;
		}
		q->bytes -= taken;
		q->st.written += written;
		q->st.write_errors += errors;
		if (q->producers_waiting)
			pthread_cond_broadcast(&q->space);
		if (last)
			break;
	}
	pthread_mutex_unlock(&q->lock);
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
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&q->space, NULL);
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

static int enqueue(struct replay_wq *q, const struct store_record *rec)
{
	int werr = atomic_load(&q->err);
	if (werr)
		return werr;
	size_t size = item_size(rec);
	pthread_mutex_lock(&q->lock);
	if (q->done) {
		pthread_mutex_unlock(&q->lock);
		return -EPIPE;
	}
	bool stalled = false;
	/* An item larger than the bound still passes an empty queue. */
	while (q->bytes && q->bytes + size > q->p.max_bytes) {
		if (q->p.policy == REPLAY_WQ_DROP) {
			q->st.dropped++;
			pthread_mutex_unlock(&q->lock);
			return -ENOBUFS;
		}
		if (!stalled)
			q->st.stalls++;
		stalled = true;
		pthread_cond_signal(&q->work);
		q->producers_waiting++;
		pthread_cond_wait(&q->space, &q->lock);
		q->producers_waiting--;
	}
	struct wq_chunk *ch = q->tail;
	if (!ch || ch->cap - ch->used < size) {
		if (size <= WQ_CHUNK && q->spare) {
			ch = q->spare;
			q->spare = ch->next;
			q->n_spare--;
		} else {
			size_t cap = size > WQ_CHUNK ? size : WQ_CHUNK;
			ch = mem_alloc(sizeof(*ch) + cap);
			if (!ch) {
				pthread_mutex_unlock(&q->lock);
				return -ENOMEM;
			}
			ch->cap = cap;
		}
		ch->next = NULL;
		ch->used = 0;
		if (q->tail)
			q->tail->next = ch;
		else
			q->head = ch;
		q->tail = ch;
	}
	item_fill((struct wq_item *)(ch->data + ch->used), size, rec);
	ch->used += size;
	size_t before = q->bytes;
	q->bytes += size;
	q->st.queued++;
	if (q->bytes > q->st.max_bytes)
		q->st.max_bytes = q->bytes;
	/* Wake the writer early once a quarter of the bound is queued. */
	if (before < q->p.max_bytes / 4 && q->bytes >= q->p.max_bytes / 4)
		pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

int replay_wq_add_session(struct replay_wq *q, const struct store_session *s)
{
	struct store_record rec = {.type = STORE_REC_SESSION};
	rec.u.session = *s;
	return enqueue(q, &rec);
}

int replay_wq_add_result(struct replay_wq *q, const struct store_result *r)
{
	struct store_record rec = {.type = STORE_REC_RESULT};
	rec.u.result = *r;
	return enqueue(q, &rec);
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
	pthread_mutex_lock(&q->lock);
	q->hold = hold;
	if (!hold)
		pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
}

void replay_wq_get_stats(struct replay_wq *q, struct replay_wq_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->st;
	out->queued_bytes = q->bytes;
	pthread_mutex_unlock(&q->lock);
}

int replay_wq_finish(struct replay_wq *q)
{
	if (q->started) {
		pthread_mutex_lock(&q->lock);
		q->done = true;
		q->hold = false;
		pthread_cond_signal(&q->work);
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
	while (q->spare) {
		struct wq_chunk *next = q->spare->next;
		mem_free(q->spare);
		q->spare = next;
	}
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->space);
	pthread_mutex_destroy(&q->lock);
	mem_free(q);
}
