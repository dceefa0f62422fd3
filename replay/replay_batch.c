/* SPDX-License-Identifier: MIT */
/*
 * replay_batch - `dyetap replay` without the user interface: read
 * recordings, filter and shard, schedule each request on an absolute
 * timeline, drive one engine per thread and write a self-contained
 * results store (docs/replay.md, docs/format.md).
 *
 * Threads split the recorded connections by hash, so each connection's
 * requests stay on one event loop; every thread reads the inputs itself
 * (no queues between threads). Records go through a bounded queue
 * (replay_wq.c) to one writer thread that packs, compresses and writes
 * them, so an event loop only copies a finished result; the queue blocks
 * when full (counted as write_stalls), since a results file must be
 * complete. A session and its results are queued together, as one unit,
 * once the last target has answered (or, for a request never sent, when
 * the thread ends): in the file every session's results follow it before
 * the next session (the header says so: result_lag 0, docs/format.md), so
 * `dyetap diff` holds one session at a time however long the run. A unit
 * lives while its requests are in flight (bounded by the engine's pending
 * limit) and, once finished, while older units of its thread are not
 * (bounded by UNIT_HOLD_BYTES), so each thread files its sessions in the
 * order it queued them unless a slow request would hold too many back. A
 * session record without a result means the request was queued but not
 * sent (interrupted).
 *
 * Paced runs lower the thread's timer slack to 1 ns (prctl(2)
 * PR_SET_TIMERSLACK): the default 50 us slack otherwise delays every
 * epoll_pwait2() wake-up by up to 50 us.
 *
 * Causal order (replay_causal.h): the scan registers every session to be
 * sent with the tracker (its service, whether it writes); each thread
 * then registers its own sessions as it reads them and publishes its
 * horizon: the recorded start below which it will read no more sessions
 * that the replay sends (of any thread's share, since every thread reads
 * every session). For an input in request-time order that is the start of
 * the last session read; otherwise that minus the input's disorder D.
 *
 * The results file names what it replayed (docs/format.md §1.1): each
 * recording's file_id, name, time span, state and capture counters, the
 * targets, the shard and how many sessions each shard replays, and the
 * redactions applied to its contents; the scan before the first send
 * gathers them. Every record offered to the file and not in it at the end
 * is counted (summary.lost), and failed requests are counted by cause.
 *
 * Identifiers: a recording's session and connection ids are kept for the
 * first input and the first pass; for input file F > 0 or pass L > 0 they
 * become (F << 58) | (L << 40) | (id & (2^40 - 1)), unique in the results
 * for F < REPLAY_MAX_INPUTS, L < REPLAY_MAX_PASSES and ids below 2^40.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "replay/replay.h"
#include "replay/replay_causal.h"
#include "replay/replay_guard.h"

#define REPLAY_LOG(lvl, ...) LOG_MSG(lvl, "replay", __VA_ARGS__)

#define LOOKAHEAD_NS	    (50 * 1000000LL)
#define SLICE_NS	    (100 * 1000000LL)
#define STOP_GRACE_NS	    (1000 * 1000000LL)
#define PENDING_MIN	    4096
#define PENDING_MIN_MAX	    512 /* --max */
#define RESULTS_FLUSH_BYTES (128u * 1024)
#define UNIT_HOLD_BYTES	    (8u << 20) /* finished units waiting behind a slow one */

static atomic_int stop_flag;

void replay_batch_stop(void)
{
	atomic_store_explicit(&stop_flag, 1, memory_order_relaxed);
}

static bool stopping(void)
{
	return atomic_load_explicit(&stop_flag, memory_order_relaxed) != 0;
}

struct batch;
struct src;

/* A session waiting for its targets' results (the engine's `user`). */
struct bunit {
	struct bunit *prev, *next; /* the thread's units in flight, oldest first */
	struct replay_wq_unit *u;
	uint32_t pending; /* results still to come */
	bool done;	  /* every result came: waiting for older units */
};

struct bthread {
	struct batch *b;
	struct bunit *units, *units_tail;
	size_t units_held; /* bytes of finished units waiting for older ones */
	uint32_t idx;
	pthread_t tid;
	struct replay_engine *eng;
	struct replay_wq_prod *wq;    /* this thread's producer of result records */
	struct replay_causal_thr *ct; /* causal order; NULL when not kept */
	struct src *src;	      /* the inputs as this thread reads them */
	struct replay_stats skips;    /* skip counters of this thread's partition */
	uint64_t seq;		      /* requests scheduled (RATE pacing) */
	uint64_t queued;	      /* requests the engine took */
	int64_t first_sent;	      /* realtime of the first send, 0 none */
	int64_t last_done;	      /* realtime of the last completion */
	int64_t next_publish;
	void *red;	  /* this thread's redactor, NULL: none */
	uint64_t offered; /* records handed to the results queue (or refused by it) */
	struct replay_cause causes[2 * REPLAY_MAX_CAUSES];
	size_t n_causes;
	uint64_t causes_other;
	int rc;
	char err[256];
};

/* What the scan learns of one input, for the results metadata. */
struct origin {
	char *id, *file, *state;
	int64_t first_ns, last_ns;
	uint64_t sessions;
	struct store_counter *ctrs;
	size_t n_ctrs;
};

struct batch {
	const struct replay_batch_params *p;
	struct replay_sched sched;
	int64_t start;			/* CLOCK_MONOTONIC of offset 0 */
	int64_t rec_t0;			/* earliest recorded request */
	int64_t rec_t1;			/* latest recorded request, 0 unknown */
	uint64_t n_take;		/* sessions one pass replays (after filters), 0 unknown */
	int64_t *disorder;		/* per input: how much earlier than every record before
					   it a record may start (0: in request-time order) */
	int64_t pass_ns;		/* schedule length of one pass (RECORDED) */
	atomic_uint_fast64_t rate_slot; /* RATE: next slot of the shared schedule */
	atomic_bool hold_warned;	/* the hold limit was hit (warned once) */
	uint64_t max_pending;		/* per thread */
	enum replay_order order;	/* the order kept (never auto) */
	struct replay_causal *causal;	/* causal and strict order; else NULL */
	int64_t shift;			/* causal: recorded time one pass is shifted by */
	struct store_writer *w;
	struct replay_wq *wq; /* owns w until replay_wq_finish() */
	pthread_mutex_t lock; /* snapshots */
	struct bthread *th;
	uint32_t n_th;
	struct replay_stats *snap; /* per-thread published stats (under lock) */
	struct origin *origins;	   /* per input */
	uint64_t *shard_sessions;  /* per shard: sessions it replays (shard_n > 1) */
};

uint64_t replay_remap_id(uint64_t id, uint32_t file, uint32_t pass)
{
	if (!file && !pass)
		return id;
	return ((uint64_t)file << 58) | ((uint64_t)(pass & (REPLAY_MAX_PASSES - 1)) << 40) |
	       (id & ((1ull << 40) - 1));
}

/* Count a failed request under its cause (kind and message). */
static void count_cause(struct bthread *t, const struct store_result *r)
{
	size_t ml =
	    r->error_msg.len < REPLAY_CAUSE_MSG - 1 ? r->error_msg.len : REPLAY_CAUSE_MSG - 1;
	for (size_t i = 0; i < t->n_causes; i++) {
		struct replay_cause *k = &t->causes[i];
		if (k->kind == r->error && strlen(k->msg) == ml &&
		    (!ml || !memcmp(k->msg, r->error_msg.ptr, ml))) {
			k->n++;
			return;
		}
	}
	if (t->n_causes == sizeof(t->causes) / sizeof(t->causes[0])) {
		t->causes_other++;
		return;
	}
	struct replay_cause *k = &t->causes[t->n_causes++];
	k->kind = r->error;
	if (ml)
		memcpy(k->msg, r->error_msg.ptr, ml);
	k->msg[ml] = '\0';
	k->n = 1;
}

static void unit_link(struct bthread *t, struct bunit *bu)
{
	bu->prev = t->units_tail;
	bu->next = NULL;
	if (t->units_tail)
		t->units_tail->next = bu;
	else
		t->units = bu;
	t->units_tail = bu;
}

/* Queue unit @p bu's records together and free it. */
static void unit_flush(struct bthread *t, struct bunit *bu)
{
	if (bu->prev)
		bu->prev->next = bu->next;
	else
		t->units = bu->next;
	if (bu->next)
		bu->next->prev = bu->prev;
	else
		t->units_tail = bu->prev;
	if (bu->done)
		t->units_held -= replay_wq_unit_bytes(bu->u);
	uint64_t n = replay_wq_unit_records(bu->u);
	int rc = replay_wq_add_unit(t->wq, bu->u);
	if (rc == -ENOBUFS)
		t->skips.write_dropped += n;
	else if (rc)
		t->skips.write_errors += n;
	mem_free(bu);
}

/* Write finished units in the order their sessions were queued (the file
 * then lists sessions in request-time order); a finished unit waits
 * behind a slow one only while UNIT_HOLD_BYTES of them wait: past that,
 * unit @p bu, which just finished, is written at once. (Not a walk from
 * the oldest unit for finished ones: with thousands in flight that made
 * every completion cost a walk over them.) */
static void unit_drain(struct bthread *t, struct bunit *bu)
{
	if (bu != t->units && t->units_held > UNIT_HOLD_BYTES)
		unit_flush(t, bu);
	while (t->units && t->units->done)
		unit_flush(t, t->units);
}

/* One of @p bu's results came (or will not come). */
static void unit_done(struct bthread *t, struct bunit *bu)
{
	if (bu->pending)
		bu->pending--;
	if (bu->pending || bu->done)
		return;
	bu->done = true;
	t->units_held += replay_wq_unit_bytes(bu->u);
	unit_drain(t, bu);
}

static void on_done(void *ctx, void *user, const struct store_result *r)
{
	struct bthread *t = ctx;
	struct bunit *bu = user;
	if (!t->first_sent || r->ts_sent_ns < t->first_sent)
		t->first_sent = r->ts_sent_ns;
	int64_t done = r->ts_sent_ns + (int64_t)r->latency_ns;
	if (done > t->last_done)
		t->last_done = done;
	if (r->error != STORE_ERR_NONE)
		count_cause(t, r);
	t->offered++;
	struct store_result red;
	if (t->red && r->resp.present) {
		/* A candidate may answer with secrets: they reach no file. */
		struct store_session in, out;
		memset(&in, 0, sizeof(in));
		in.resp = r->resp;
		if (t->b->p->redact->session(t->red, &in, &out)) {
			t->skips.redact_errors++;
			unit_done(t, bu);
			return;
		}
		red = *r;
		red.resp = out.resp;
		r = &red;
	}
	if (replay_wq_unit_result(bu->u, r))
		t->skips.write_errors++;
	unit_done(t, bu);
}

static void publish(struct bthread *t, bool force)
{
	int64_t now = clk_mono_ns();
	if (!force && now < t->next_publish)
		return;
	t->next_publish = now + 100 * 1000000LL;
	struct replay_stats s = *replay_engine_stats(t->eng);
	ctr_add_all(&s, &t->skips, replay_ctr_descs, replay_n_ctr_descs);
	pthread_mutex_lock(&t->b->lock);
	t->b->snap[t->idx] = s;
	pthread_mutex_unlock(&t->b->lock);
	replay_wq_prod_flush(t->wq); /* results reach the file within ~100 ms */
}

struct prog_state {
	int64_t next;
	int64_t last_t;
	uint64_t last_done;
};

static void progress(struct bthread *t, struct prog_state *ps, bool force)
{
	const struct replay_batch_params *p = t->b->p;
	if (t->idx != 0 || !p->progress)
		return;
	int64_t now = clk_mono_ns();
	if (!force && now < ps->next)
		return;
	ps->next = now + (p->progress_ns > 0 ? p->progress_ns : 250 * 1000000LL);
	struct replay_stats sum;
	memset(&sum, 0, sizeof(sum));
	pthread_mutex_lock(&t->b->lock);
	for (uint32_t i = 0; i < t->b->n_th; i++)
		ctr_add_all(&sum, &t->b->snap[i], replay_ctr_descs, replay_n_ctr_descs);
	pthread_mutex_unlock(&t->b->lock);
	struct replay_progress pr;
	memset(&pr, 0, sizeof(pr));
	pr.sent = sum.sent;
	pr.ok = sum.ok;
	pr.errors = replay_stats_errors(&sum);
	pr.skipped = replay_stats_skipped(&sum);
	pr.elapsed_s = now > t->b->start ? (double)(now - t->b->start) / 1e9 : 0;
	if (ps->last_t && now > ps->last_t)
		pr.rate = (double)(sum.sent - ps->last_done) * 1e9 / (double)(now - ps->last_t);
	ps->last_t = now;
	ps->last_done = sum.sent;
	pr.eta_s = -1;
	if (p->pace == REPLAY_PACE_RECORDED && t->b->rec_t1 && p->loops) {
		int64_t end = t->b->start + (int64_t)p->loops * t->b->pass_ns;
		if (p->duration_ns && t->b->start + p->duration_ns < end)
			end = t->b->start + p->duration_ns;
		pr.eta_s = end > now ? (double)(end - now) / 1e9 : 0;
	} else if (p->duration_ns) {
		int64_t end = t->b->start + p->duration_ns;
		pr.eta_s = end > now ? (double)(end - now) / 1e9 : 0;
	} else if (t->b->n_take && p->loops) {
		uint64_t total = t->b->n_take * p->loops * p->engine.n_targets, done = sum.sent;
		double left = done < total ? (double)(total - done) : 0;
		if (p->pace == REPLAY_PACE_RATE && p->rate > 0) {
			double end_s = (double)(t->b->n_take * p->loops) / p->rate;
			pr.eta_s = end_s > pr.elapsed_s ? end_s - pr.elapsed_s : 0;
		} else if (pr.rate > 0) {
			pr.eta_s = left / pr.rate;
		}
	}
	p->progress(p->progress_ctx, &pr);
}

/* Run the engine until @p until (or a stop), keeping progress and snapshots fresh. */
static int run_until(struct bthread *t, struct prog_state *ps, int64_t until)
{
	for (;;) {
		int64_t now = clk_mono_ns();
		if (now >= until || stopping())
			return 0;
		int64_t slice = until < now + SLICE_NS ? until : now + SLICE_NS;
		int rc = replay_engine_run(t->eng, slice);
		if (rc)
			return rc;
		publish(t, false);
		progress(t, ps, false);
	}
}

/*
 * Request-time order. Recordings are written in completion order, so a
 * session can follow sessions that started after it (a slow request
 * completes late). The scan measures, per input, the largest such step
 * back D; reading then holds sessions in a heap ordered by request time
 * and hands one out once no later record can start before it (its time
 * <= the latest time read - D). An input in order (D = 0) is handed out as
 * read, without copies. Held sessions are deep copies, bounded by
 * HOLD_MAX_BYTES: past that the earliest is handed out anyway (it may
 * then be sent after a later one, and late; a warning says so).
 */
#define HOLD_MAX_BYTES (256u << 20)

struct held {
	int64_t ts;
	uint64_t seq; /* read order: ties keep it */
	size_t cap;   /* bytes allocated (a power of two from HELD_MIN_CAP) */
	struct held *next_spare;
	struct replay_dep dep; /* causal order */
	struct store_session s;
	struct store_raw_record raw;
	_Alignas(8) uint8_t tail[]; /* the session's tail, then the raw bytes */
};

struct src {
	struct store_reader *r;
	uint32_t file;
	uint32_t pass;
	int64_t disorder, max_ts;
	int64_t max_all; /* causal: latest start read of a session sent by any thread */
	int64_t hz;	 /* causal: its horizon (shifted by pass) */
	uint64_t nread;
	bool eof, warned;
	struct held **heap;
	size_t n, cap, bytes;
	struct held *cur;		 /* handed out; recycled on the next call */
	struct held *spare;		 /* recycled blocks, for the next hold() */
	size_t spare_bytes;		 /* their capacity */
	struct store_raw_record cur_raw; /* of the session handed out */
	struct replay_dep cur_dep;	 /* of the session handed out */
	struct replay_taint *taint;	 /* writes not sent; NULL: none tracked */
};

/* Causal order: input @p x's horizon moved; publish the thread's (the
 * lowest of its inputs'). */
static void horizon_update(struct bthread *t, struct src *x, int64_t hz)
{
	x->hz = hz;
	int64_t h = INT64_MAX;
	for (size_t i = 0; i < t->b->p->n_inputs; i++)
		if (t->src[i].hz < h)
			h = t->src[i].hz;
	replay_causal_horizon(t->ct, h);
}

/* Causal order: a session that the replay sends (by any thread) was read from @p x. */
static void note_taken(struct bthread *t, struct src *x, int64_t ts)
{
	if (ts <= x->max_all)
		return;
	x->max_all = ts;
	horizon_update(t, x, (int64_t)x->pass * t->b->shift + ts - x->disorder);
}

/* Causal order: input @p x reached its end in this pass. */
static void note_eof(struct bthread *t, struct src *x)
{
	const struct replay_batch_params *p = t->b->p;
	bool more = !p->loops || x->pass + 1 < p->loops;
	horizon_update(t, x,
		       more ? (int64_t)(x->pass + 1) * t->b->shift + t->b->rec_t0 : INT64_MAX);
}

/* Next session of input @p x that this thread replays (filters applied,
 * skips counted). With causal order, the other threads' sessions move the
 * horizon. */
static const struct store_session *next_session(struct bthread *t, struct src *x, int *rc)
{
	const struct replay_batch_params *p = t->b->p;
	uint32_t shard_n = p->filter.shard_n > 1 ? p->filter.shard_n : 1;
	for (;;) {
		const struct store_record *rec;
		int n = store_reader_next(x->r, &rec);
		if (n <= 0) {
			*rc = n;
			if (!n && t->ct)
				note_eof(t, x);
			return NULL;
		}
		if (rec->type != STORE_REC_SESSION)
			continue;
		const struct store_session *s = &rec->u.session;
		/* every thread sees every write not sent: it may touch a read
		 * of its own share (replay_taint.c) */
		if (x->taint && replay_taint_write(x->taint, s)) {
			*rc = -ENOMEM;
			return NULL;
		}
		if (t->b->n_th > 1 &&
		    (replay_conn_hash(s->conn_id, x->file) / shard_n) % t->b->n_th != t->idx) {
			if (t->ct && replay_filter_check(&p->filter, s, x->file) == REPLAY_TAKE)
				note_taken(t, x, s->ts_req_first_ns);
			continue;
		}
		enum replay_verdict v = replay_filter_check(&p->filter, s, x->file);
		if (v == REPLAY_TAKE && replay_taint_read(x->taint, s))
			v = REPLAY_SKIP_AFTER_WRITE;
		switch (v) {
		case REPLAY_TAKE:
			if (t->ct)
				note_taken(t, x, s->ts_req_first_ns);
			return s;
		case REPLAY_SKIP_FILTER:
			t->skips.skipped_filter++;
			break;
		case REPLAY_SKIP_SHARD:
			t->skips.skipped_shard++;
			break;
		case REPLAY_SKIP_WRITE:
			t->skips.skipped_writes++;
			break;
		case REPLAY_SKIP_TRUNCATED:
			t->skips.skipped_truncated++;
			break;
		case REPLAY_SKIP_UNSAFE:
			t->skips.skipped_unsafe++;
			break;
		case REPLAY_SKIP_AFTER_WRITE:
			t->skips.skipped_after_writes++;
			break;
		case REPLAY_SKIP_UNSUPPORTED:
		default:
			t->skips.skipped_unsupported++;
			break;
		}
	}
}

/* Causal order: register own session @p s; its dependencies go to @p dep. */
static int causal_read(struct bthread *t, struct src *x, const struct store_session *s,
		       struct replay_dep *dep)
{
	memset(dep, 0, sizeof(*dep));
	dep->svc = REPLAY_CAUSAL_NONE;
	if (!t->ct)
		return 0;
	return replay_causal_read(t->ct, s, x->pass, dep);
}

static bool held_before(const struct held *a, const struct held *b)
{
	return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

static void heap_push(struct src *x, struct held *h)
{
	size_t i = x->n++;
	while (i) {
		size_t up = (i - 1) / 2;
		if (!held_before(h, x->heap[up]))
			break;
		x->heap[i] = x->heap[up];
		i = up;
	}
	x->heap[i] = h;
}

static struct held *heap_pop(struct src *x)
{
	struct held *top = x->heap[0], *last = x->heap[--x->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= x->n)
			break;
		if (c + 1 < x->n && held_before(x->heap[c + 1], x->heap[c]))
			c++;
		if (!held_before(x->heap[c], last))
			break;
		x->heap[i] = x->heap[c];
		i = c;
	}
	if (x->n)
		x->heap[i] = last;
	return top;
}

/*
 * Held blocks are recycled: every session of a disordered input passes
 * through one, and a malloc() and free() per session (with the page
 * faults of a heap that grows and shrinks) cost more than the copy.
 * Blocks are sized in powers of two; blocks of up to HELD_SPARE_CAP
 * bytes are kept per input, up to HELD_SPARE_TOTAL bytes in all.
 */
#define HELD_MIN_CAP	 4096u
#define HELD_SPARE_CAP	 (64u * 1024)
#define HELD_SPARE_TOTAL (8u << 20)

static struct held *held_get(struct src *x, size_t size)
{
	size_t cap = HELD_MIN_CAP;
	while (cap < size)
		cap *= 2;
	/* Spares are one size class in practice (sessions of a recording are
	 * alike); a spare too small is dropped rather than searched past. */
	while (x->spare) {
		struct held *h = x->spare;
		x->spare = h->next_spare;
		x->spare_bytes -= h->cap;
		if (h->cap >= size)
			return h;
		mem_free(h);
	}
	struct held *h = mem_alloc(cap);
	if (h)
		h->cap = cap;
	return h;
}

static void held_put(struct src *x, struct held *h)
{
	if (!h)
		return;
	if (h->cap > HELD_SPARE_CAP || x->spare_bytes + h->cap > HELD_SPARE_TOTAL) {
		mem_free(h);
		return;
	}
	h->next_spare = x->spare;
	x->spare = h;
	x->spare_bytes += h->cap;
}

static void held_free_spares(struct src *x)
{
	while (x->spare) {
		struct held *h = x->spare;
		x->spare = h->next_spare;
		mem_free(h);
	}
	x->spare_bytes = 0;
}

/* Copy the reader's current session @p s into the heap. 0 or -ENOMEM. */
static int hold(struct bthread *t, struct src *x, const struct store_session *s)
{
	struct store_raw_record raw = store_reader_raw(x->r);
	size_t tail = replay_session_tail_size(s);
	size_t size = sizeof(struct held) + tail + raw.bytes.len;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 64;
		struct held **nh = mem_realloc(x->heap, cap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		x->heap = nh;
		x->cap = cap;
	}
	struct held *h = held_get(x, size);
	if (!h)
		return -ENOMEM;
	if (causal_read(t, x, s, &h->dep)) {
		held_put(x, h);
		return -ENOMEM;
	}
	h->ts = s->ts_req_first_ns;
	h->seq = x->nread;
	replay_session_copy(&h->s, s, h->tail);
	h->raw = raw;
	h->raw.bytes.ptr = h->tail + tail;
	if (raw.bytes.len)
		memcpy(h->tail + tail, raw.bytes.ptr, raw.bytes.len);
	heap_push(x, h);
	x->bytes += h->cap;
	return 0;
}

static void src_reset(struct src *x)
{
	held_put(x, x->cur);
	x->cur = NULL;
	while (x->n)
		held_put(x, heap_pop(x));
	x->bytes = 0;
	x->eof = false;
	x->max_ts = INT64_MIN;
	x->max_all = INT64_MIN;
}

/* The next session of input @p x in request-time order (its raw bytes in
 * x->cur_raw), valid until the next call; NULL at the end or on error
 * (*rc < 0). */
static const struct store_session *src_next(struct bthread *t, struct src *x, int *rc)
{
	*rc = 0;
	held_put(x, x->cur);
	x->cur = NULL;
	if (!x->disorder) {
		const struct store_session *s = next_session(t, x, rc);
		if (s) {
			x->cur_raw = store_reader_raw(x->r);
			if ((*rc = causal_read(t, x, s, &x->cur_dep)))
				return NULL;
		}
		return s;
	}
	while (!x->eof && (!x->n || x->heap[0]->ts > x->max_ts - x->disorder)) {
		if (x->bytes >= HOLD_MAX_BYTES) {
			if (!x->warned && !atomic_exchange(&t->b->hold_warned, true))
				REPLAY_LOG(
				    LOG_WARN,
				    "%s: more than %u MiB of sessions held to restore request "
				    "order; some are sent late and out of order",
				    t->b->p->inputs[x->file], HOLD_MAX_BYTES >> 20);
			x->warned = true;
			/* Sessions now go out before ones that start earlier: a
			 * dependency could be read after its dependent, so the
			 * causal order cannot be kept. */
			if (t->ct && replay_causal_abandon(t->b->causal)) {
				t->skips.causal_abandoned++;
				REPLAY_LOG(LOG_WARN, "causal order abandoned: sessions are sent "
						     "without waiting for their dependencies");
			}
			break;
		}
		const struct store_session *s = next_session(t, x, rc);
		if (!s) {
			if (*rc < 0)
				return NULL;
			x->eof = true;
			break;
		}
		x->nread++;
		if (s->ts_req_first_ns > x->max_ts)
			x->max_ts = s->ts_req_first_ns;
		if ((*rc = hold(t, x, s)))
			return NULL;
	}
	if (!x->n)
		return NULL;
	x->cur = heap_pop(x);
	x->bytes -= x->cur->cap;
	x->cur_raw = x->cur->raw;
	x->cur_dep = x->cur->dep;
	return &x->cur->s;
}

/* One pass over the inputs. Returns 1 to continue with another pass, 0 done, -errno. */
static int run_pass(struct bthread *t, struct prog_state *ps, uint32_t pass, struct src *src)
{
	struct batch *b = t->b;
	const struct replay_batch_params *p = b->p;
	size_t ni = p->n_inputs;
	const struct store_session **head = mem_calloc(ni, sizeof(*head));
	int rc = 0;
	if (!head) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ni; i++) {
		/* Later passes rewind the open readers (no reopen per pass). */
		src_reset(&src[i]);
		src[i].pass = pass;
		if (t->ct) /* nothing of this pass starts before its first request */
			horizon_update(t, &src[i], (int64_t)pass * b->shift + b->rec_t0);
		if (pass && (rc = store_reader_seek_time(src[i].r, INT64_MIN))) {
			snprintf(t->err, sizeof(t->err), "%s: cannot rewind", p->inputs[i]);
			goto out;
		}
		int nrc = 0;
		head[i] = src_next(t, &src[i], &nrc);
		if (nrc < 0) {
			snprintf(t->err, sizeof(t->err), "%s: %s", p->inputs[i],
				 nrc == -ENOMEM ? "out of memory" : "read error");
			rc = nrc;
			goto out;
		}
	}
	int64_t pass_off = p->pace == REPLAY_PACE_RECORDED ? (int64_t)pass * b->pass_ns : 0;
	for (;;) {
		if (stopping())
			break;
		/* Merge the inputs by request timestamp. */
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < ni; i++)
			if (head[i] && (best == SIZE_MAX ||
					head[i]->ts_req_first_ns < head[best]->ts_req_first_ns))
				best = i;
		if (best == SIZE_MAX)
			break;
		const struct store_session *s = head[best];
		int64_t due = b->start + pass_off +
			      replay_sched_offset(&b->sched, s->ts_req_first_ns,
						  p->pace == REPLAY_PACE_RATE
						      ? atomic_fetch_add(&b->rate_slot, 1)
						      : t->seq);
		if (p->duration_ns && (due - b->start >= p->duration_ns ||
				       clk_mono_ns() - b->start >= p->duration_ns)) {
			rc = 0;
			goto done_all;
		}
		if (p->pace == REPLAY_PACE_MAX) {
			/* One loop turn at a time: refill as requests complete, never in
			 * bursts that would stall the connections for milliseconds. */
			while (replay_engine_pending(t->eng) >= b->max_pending && !stopping()) {
				if ((rc = replay_engine_run(t->eng, clk_mono_ns() + SLICE_NS)))
					goto out;
				publish(t, false);
				progress(t, ps, false);
			}
		} else {
			while (due - LOOKAHEAD_NS > clk_mono_ns() && !stopping())
				if ((rc = run_until(t, ps, due - LOOKAHEAD_NS)))
					goto out;
			while (replay_engine_pending(t->eng) >= b->max_pending && !stopping())
				if ((rc = run_until(t, ps, clk_mono_ns() + SLICE_NS)))
					goto out;
		}
		if (stopping())
			break;
		/* Under --max nothing is scheduled: a request is due when it is
		 * handed to the engine, so its lateness is the time it waited
		 * there (behind its connection's earlier requests, for a free
		 * connection), not the time since the start of the run. */
		if (p->pace == REPLAY_PACE_MAX)
			due = clk_mono_ns();
		struct store_session ss = *s;
		ss.id = replay_remap_id(s->id, (uint32_t)best, pass);
		ss.conn_id = replay_remap_id(s->conn_id, (uint32_t)best, pass);
		/* The session goes to the results as recorded, bytes copied (no
		 * decode-and-repack), only its ids remapped. */
		struct store_raw_record raw = src[best].cur_raw;
		t->offered++;
		/* The session waits in a unit for its results (see the top). */
		struct bunit *bu = mem_calloc(1, sizeof(*bu));
		if (bu && t->red && p->redact->sessions) {
			/* Rules the recording did not apply: redact the copy written. */
			struct store_session out;
			if (p->redact->session(t->red, &ss, &out)) {
				/* never written unredacted, so not sent either: nothing
				 * may wait for it in causal order */
				t->skips.redact_errors++;
				if (t->ct)
					replay_causal_drop(t->ct, src[best].cur_dep.ent);
				mem_free(bu);
				goto next;
			}
			bu->u = replay_wq_unit_session(t->wq, &out);
		} else if (bu) {
			bu->u = replay_wq_unit_session_raw(t->wq, &raw, ss.id, ss.conn_id,
							   ss.ts_req_first_ns);
		}
		int wrc = replay_wq_error(b->wq, t->err, sizeof(t->err));
		if (!bu || !bu->u || wrc) {
			t->skips.write_errors++;
			rc = wrc ? wrc : -ENOMEM;
			if (!wrc)
				snprintf(t->err, sizeof(t->err),
					 "cannot queue a session for the results: out of memory or "
					 "a malformed record");
			if (bu)
				replay_wq_unit_free(bu->u);
			mem_free(bu);
			goto out;
		}
		bu->pending = (uint32_t)p->engine.n_targets;
		unit_link(t, bu);
		struct replay_dep *dep = &src[best].cur_dep;
		int subrc =
		    replay_engine_submit_dep(t->eng, &ss, ss.conn_id, due, bu, t->ct ? dep : NULL);
		if (!subrc)
			t->queued++;
		else if (t->ct)
			replay_causal_drop(t->ct, dep->ent); /* nobody may wait for it */
		/* Not sent: written alone now. An out-of-memory submit may have
		 * queued some targets' requests, which still point at the unit:
		 * it is written when the thread ends. */
		if (subrc && subrc != -ENOMEM) {
			bu->pending = 0;
			bu->done = true;
			t->units_held += replay_wq_unit_bytes(bu->u);
			unit_drain(t, bu);
		}
		if (subrc == -EINVAL)
			t->skips.skipped_unsupported++;
		else if (subrc) {
			snprintf(t->err, sizeof(t->err), "out of memory queueing a request");
			rc = subrc;
			goto out;
		}
	next:
		t->seq++;
		int nrc = 0;
		head[best] = src_next(t, &src[best], &nrc);
		if (nrc < 0) {
			snprintf(t->err, sizeof(t->err), "%s: %s", p->inputs[best],
				 nrc == -ENOMEM ? "out of memory" : "read error");
			rc = nrc;
			goto out;
		}
		publish(t, false);
		progress(t, ps, false);
	}
	rc = stopping() ? 0 : 1;
	goto out;
done_all:
	rc = 0;
out:
	mem_free(head);
	return rc;
}

/* Are reads after writes not sent left out? */
static bool taint_on(const struct replay_batch_params *p)
{
	return !p->filter.allow_writes && p->filter.after_writes != REPLAY_AFTER_WRITES_SEND;
}

static void *thread_main(void *arg)
{
	struct bthread *t = arg;
	const struct replay_batch_params *p = t->b->p;
	struct prog_state ps = {0};
	int rc = 0;
	if (p->pace != REPLAY_PACE_MAX)
		(void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	struct src *src = mem_calloc(p->n_inputs, sizeof(*src));
	if (!src) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		rc = -ENOMEM;
	}
	t->src = src;
	for (size_t i = 0; src && i < p->n_inputs; i++) {
		src[i].max_all = INT64_MIN;
		src[i].hz = t->b->rec_t0;
	}
	if (!rc && p->redact && !(t->red = p->redact->create(p->redact->ctx))) {
		snprintf(t->err, sizeof(t->err), "out of memory for a redactor");
		rc = -ENOMEM;
	}
	for (size_t i = 0; src && i < p->n_inputs && !rc; i++) {
		src[i].file = (uint32_t)i;
		src[i].disorder = t->b->disorder[i];
		if (taint_on(p) && !(src[i].taint = replay_taint_new(p->filter.after_writes))) {
			snprintf(t->err, sizeof(t->err), "out of memory");
			rc = -ENOMEM;
			break;
		}
		if (!(src[i].r = store_reader_open(p->inputs[i], t->err, sizeof(t->err))))
			rc = -ENOENT;
	}
	for (uint32_t pass = 0; !rc && (!p->loops || pass < p->loops); pass++) {
		uint64_t queued0 = t->queued;
		rc = run_pass(t, &ps, pass, src);
		if (rc <= 0)
			break;
		rc = 0;
		/* A pass that queued nothing (everything filtered, or this thread's
		 * share empty) would queue nothing again: do not spin through the
		 * inputs until --duration or Ctrl-C. */
		if (t->queued == queued0)
			break;
		if (p->duration_ns && clk_mono_ns() - t->b->start >= p->duration_ns)
			break;
		if (pass + 1 == REPLAY_MAX_PASSES) {
			if (!p->loops && t->idx == 0) /* endless: say why it ends */
				REPLAY_LOG(LOG_WARN,
					   "stopped after %u passes: more would repeat session ids",
					   REPLAY_MAX_PASSES);
			break;
		}
	}
	/* No more reading: what was read and not queued will not be sent. */
	if (t->ct)
		replay_causal_reading_done(t->ct);
	if (src)
		for (size_t i = 0; i < p->n_inputs; i++) {
			src_reset(&src[i]);
			held_free_spares(&src[i]);
			mem_free(src[i].heap);
			store_reader_free(src[i].r);
			replay_taint_free(src[i].taint);
		}
	mem_free(src);
	/* Drain: wait for what is queued and in flight; on a stop, a short grace. */
	int64_t grace_end = 0;
	while (rc >= 0 && replay_engine_pending(t->eng)) {
		if (stopping()) {
			if (!grace_end) {
				/* Nothing new goes out; what is in flight gets a grace period. */
				grace_end = clk_mono_ns() + STOP_GRACE_NS;
				replay_engine_drop_queued(t->eng);
			}
			if (clk_mono_ns() >= grace_end)
				break;
		}
		int64_t until = clk_mono_ns() + SLICE_NS;
		if (stopping() && grace_end < until)
			until = grace_end;
		rc = replay_engine_run(t->eng, until);
		if (rc) {
			snprintf(t->err, sizeof(t->err), "event loop: %s", strerror(-rc));
			break;
		}
		publish(t, false);
		progress(t, &ps, false);
	}
	replay_engine_abort(t->eng);
	replay_engine_close_idle(t->eng);
	/* No callback comes after the abort: the sessions whose requests were
	 * never sent (a stop, --duration) are written without results. */
	while (t->units)
		unit_flush(t, t->units);
	replay_wq_prod_flush(t->wq);
	publish(t, true);
	progress(t, &ps, true);
	/* No completion comes after the abort: the redactor can go. */
	if (t->red)
		p->redact->destroy(t->red);
	t->red = NULL;
	t->rc = rc < 0 ? rc : 0;
	return NULL;
}

/* While scanning: a progress line every interval (checked every 4096 sessions). */
static void scan_progress(const struct replay_batch_params *p, uint64_t scanned, int64_t t0,
			  int64_t *next)
{
	if (!p->progress || scanned % 4096)
		return;
	int64_t now = clk_mono_ns();
	if (now < *next)
		return;
	*next = now + (p->progress_ns > 0 ? p->progress_ns : 250 * 1000000LL);
	struct replay_progress pr = {.elapsed_s = (double)(now - t0) / 1e9,
				     .eta_s = -1,
				     .scanning = true,
				     .scanned = scanned};
	p->progress(p->progress_ctx, &pr);
}

/*
 * One pass over the inputs before the first send: the earliest and latest
 * request timestamps, the sessions to replay (for the ETA), each input's
 * disorder (struct src) and the production guard's check of every session.
 */
/* Keep what the scan of input @p i learnt for the results metadata. */
static int keep_origin(struct batch *b, size_t i, const struct store_reader *r)
{
	const struct store_file_meta *m = store_reader_meta(r);
	const struct store_read_status *st = store_reader_status(r);
	struct origin *o = &b->origins[i];
	o->id = mem_strdup(m->file_id ? m->file_id : "");
	o->file = mem_strdup(b->p->inputs[i]);
	o->state = mem_strdup(store_read_state(st));
	o->first_ns = st->first_ts_ns;
	o->last_ns = st->last_ts_ns;
	o->sessions = st->sessions;
	o->ctrs = mem_calloc(st->n_counters ? st->n_counters : 1, sizeof(*o->ctrs));
	if (!o->id || !o->file || !o->state || !o->ctrs)
		return -ENOMEM;
	for (size_t k = 0; k < st->n_counters; k++) {
		o->ctrs[k].value = st->counters[k].value;
		if (!(o->ctrs[k].name = mem_strdup(st->counters[k].name)))
			return -ENOMEM;
		o->n_ctrs = k + 1;
	}
	return 0;
}

static void free_origins(struct batch *b)
{
	for (size_t i = 0; b->origins && i < b->p->n_inputs; i++) {
		struct origin *o = &b->origins[i];
		mem_free(o->id);
		mem_free(o->file);
		mem_free(o->state);
		for (size_t k = 0; k < o->n_ctrs; k++)
			mem_free((void *)o->ctrs[k].name);
		mem_free(o->ctrs);
	}
	mem_free(b->origins);
	b->origins = NULL;
}

static int scan_inputs(struct batch *b, char *err, size_t errlen)
{
	const struct replay_batch_params *p = b->p;
	b->rec_t0 = 0;
	b->rec_t1 = 0;
	bool any = false;
	uint64_t scanned = 0;
	int64_t t0 = clk_mono_ns(), next = t0 + 250 * 1000000LL;
	/* The filter without the shard: which shard each taken session is in. */
	struct replay_filter whole = p->filter;
	whole.shard_n = 0;
	uint32_t shard_n = p->filter.shard_n > 1 ? p->filter.shard_n : 0;
	for (size_t i = 0; i < p->n_inputs; i++) {
		struct store_reader *r = store_reader_open(p->inputs[i], err, errlen);
		if (!r)
			return -ENOENT;
		const struct store_file_meta *m = store_reader_meta(r);
		if (m->kind && strcmp(m->kind, "recording") && strcmp(m->kind, "results"))
			REPLAY_LOG(LOG_WARN, "%s: unexpected store kind '%s'", p->inputs[i],
				   m->kind);
		const struct store_record *rec;
		int n;
		int64_t max_ts = INT64_MIN;
		/* the reads the replay leaves out after writes it does not send,
		 * as next_session() will (the same file order) */
		struct replay_taint *taint = NULL;
		if (taint_on(p) && !(taint = replay_taint_new(p->filter.after_writes))) {
			store_reader_free(r);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		while ((n = store_reader_next(r, &rec)) > 0) {
			if (rec->type != STORE_REC_SESSION)
				continue;
			if (stopping()) {
				replay_taint_free(taint);
				store_reader_free(r);
				snprintf(err, errlen,
					 "interrupted while reading the recordings: "
					 "nothing was sent, no results file written");
				return -EINTR;
			}
			const struct store_session *s = &rec->u.session;
			if (p->guard &&
			    replay_guard_check_session(p->guard, s, p->inputs[i], err, errlen)) {
				replay_taint_free(taint);
				store_reader_free(r);
				return -EPERM;
			}
			scan_progress(p, ++scanned, t0, &next);
			if (taint && replay_taint_write(taint, s)) {
				replay_taint_free(taint);
				store_reader_free(r);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			bool after = replay_taint_read(taint, s);
			if (shard_n && !after &&
			    replay_filter_check(&whole, s, (uint32_t)i) == REPLAY_TAKE)
				b->shard_sessions[replay_conn_hash(s->conn_id, (uint32_t)i) %
						  shard_n]++;
			/* Span and order count the sessions that will be sent only: one
			 * recorded without a request (time 0) must not move the start
			 * back 56 years or make every session wait behind it. */
			if (after || replay_filter_check(&p->filter, s, (uint32_t)i) != REPLAY_TAKE)
				continue;
			b->n_take++;
			if (b->causal && replay_causal_scan(b->causal, s)) {
				replay_taint_free(taint);
				store_reader_free(r);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			int64_t ts = s->ts_req_first_ns;
			if (!any || ts < b->rec_t0)
				b->rec_t0 = ts;
			if (!any || ts > b->rec_t1)
				b->rec_t1 = ts;
			if (max_ts > ts && max_ts - ts > b->disorder[i])
				b->disorder[i] = max_ts - ts;
			if (ts > max_ts)
				max_ts = ts;
			any = true;
		}
		replay_taint_free(taint);
		int orc = n < 0 ? 0 : keep_origin(b, i, r);
		store_reader_free(r);
		if (n < 0) {
			snprintf(err, errlen, "%s: read error", p->inputs[i]);
			return n;
		}
		if (orc) {
			snprintf(err, errlen, "out of memory");
			return orc;
		}
	}
	return 0;
}

static void summarize(struct batch *b, struct replay_summary *out)
{
	int64_t first = 0, last = 0;
	for (uint32_t i = 0; i < b->n_th; i++) {
		struct bthread *t = &b->th[i];
		if (!t->eng)
			continue;
		ctr_add_all(&out->stats, replay_engine_stats(t->eng), replay_ctr_descs,
			    replay_n_ctr_descs);
		ctr_add_all(&out->stats, &t->skips, replay_ctr_descs, replay_n_ctr_descs);
		replay_hist_merge(&out->latency, replay_engine_latency(t->eng));
		replay_hist_merge(&out->lateness, replay_engine_lateness(t->eng));
		replay_hist_merge(&out->causal_wait, replay_engine_causal_wait(t->eng));
		if (t->first_sent && (!first || t->first_sent < first))
			first = t->first_sent;
		if (t->last_done > last)
			last = t->last_done;
	}
	out->elapsed_s = last > first ? (double)(last - first) / 1e9 : 0;
	out->achieved_rps = out->elapsed_s > 0 ? (double)out->stats.sent / out->elapsed_s : 0;
	out->interrupted = stopping();
	/* Causes of all threads: merge, then keep the most frequent. */
	struct replay_cause all[2 * REPLAY_MAX_CAUSES];
	size_t n = 0;
	uint64_t other = 0;
	for (uint32_t i = 0; i < b->n_th; i++) {
		const struct bthread *t = &b->th[i];
		out->offered += t->offered;
		other += t->causes_other;
		for (size_t k = 0; k < t->n_causes; k++) {
			const struct replay_cause *c = &t->causes[k];
			size_t j = 0;
			while (j < n && (all[j].kind != c->kind || strcmp(all[j].msg, c->msg)))
				j++;
			if (j < n)
				all[j].n += c->n;
			else if (n < sizeof(all) / sizeof(all[0]))
				all[n++] = *c;
			else
				other += c->n;
		}
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && all[j].n > all[j - 1].n; j--) {
			struct replay_cause x = all[j];
			all[j] = all[j - 1];
			all[j - 1] = x;
		}
	for (size_t i = 0; i < n; i++) {
		if (i < REPLAY_MAX_CAUSES)
			out->causes[i] = all[i];
		else
			other += all[i].n;
	}
	out->causes_other = other;
}

int replay_batch_run(const struct replay_batch_params *p, struct replay_summary *out, char *err,
		     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	atomic_store(&stop_flag, 0);
	if (p->n_inputs > REPLAY_MAX_INPUTS) {
		snprintf(err, errlen, "%zu inputs: at most %d per replay", p->n_inputs,
			 REPLAY_MAX_INPUTS);
		out->input_error = true;
		return -EINVAL;
	}
	if (!p->n_inputs || !p->output) {
		snprintf(err, errlen, "no input or no output given");
		out->input_error = true;
		return -EINVAL;
	}
	struct batch b;
	memset(&b, 0, sizeof(b));
	b.p = p;
	b.n_th = p->threads ? p->threads : 1;
	pthread_mutex_init(&b.lock, NULL);
	/* The scan gives the span (needed to chain passes), the count (the
	 * progress line's ETA), each input's disorder, and is where the guard
	 * looks. */
	b.order = (enum replay_order)p->order;
	if (b.order == REPLAY_ORDER_AUTO || b.order == REPLAY_ORDER_CAUSAL ||
	    b.order == REPLAY_ORDER_STRICT) {
		struct replay_causal_params cp = {.n_threads = b.n_th,
						  .n_targets = (uint32_t)p->engine.n_targets,
						  .strict = b.order == REPLAY_ORDER_STRICT,
						  .one_service = p->causal_one_service};
		if (p->engine.n_targets > REPLAY_CAUSAL_MAX_TARGETS) {
			snprintf(err, errlen, "causal order follows at most %d targets",
				 REPLAY_CAUSAL_MAX_TARGETS);
			out->input_error = true;
			pthread_mutex_destroy(&b.lock);
			return -EINVAL;
		}
		b.causal = replay_causal_create(&cp);
	}
	b.disorder = mem_calloc(p->n_inputs, sizeof(*b.disorder));
	b.origins = mem_calloc(p->n_inputs, sizeof(*b.origins));
	b.shard_sessions =
	    mem_calloc(p->filter.shard_n > 1 ? p->filter.shard_n : 1, sizeof(uint64_t));
	bool oom = !b.disorder || !b.origins || !b.shard_sessions ||
		   (b.order <= REPLAY_ORDER_STRICT && !b.causal);
	int rc = !oom ? scan_inputs(&b, err, errlen) : -ENOMEM;
	if (oom)
		snprintf(err, errlen, "out of memory");
	if (!rc && b.order == REPLAY_ORDER_AUTO)
		b.order =
		    replay_causal_any_write(b.causal) ? REPLAY_ORDER_CAUSAL : REPLAY_ORDER_PACE;
	if (!rc && b.order != REPLAY_ORDER_CAUSAL && b.order != REPLAY_ORDER_STRICT) {
		replay_causal_free(b.causal);
		b.causal = NULL;
	}
	if (!rc && b.order == REPLAY_ORDER_NONE) /* as stored: no request-time sort */
		memset(b.disorder, 0, p->n_inputs * sizeof(*b.disorder));
	if (!rc && b.causal) {
		rc = replay_causal_start(b.causal, b.rec_t0);
		if (rc)
			snprintf(err, errlen, "causal order: %s", strerror(-rc));
		b.shift = replay_causal_pass_shift(b.causal);
		out->causal_services = replay_causal_n_tracked(b.causal);
	}
	out->order = b.order;
	out->pace = p->pace;
	/* Before the first request, after the inputs passed every check. */
	bool before_failed = false;
	if (!rc && p->before)
		before_failed = (rc = p->before(p->before_ctx, err, errlen)) != 0;
	if (rc) {
		free_origins(&b);
		mem_free(b.shard_sessions);
		replay_causal_free(b.causal);
		mem_free(b.disorder);
		/* Out of memory and a failed --before are runtime failures (exit 3). */
		out->input_error = rc != -EINTR && rc != -ENOMEM && !before_failed;
		out->interrupted = rc == -EINTR;
		pthread_mutex_destroy(&b.lock);
		return rc;
	}
	b.sched.mode = p->pace;
	b.sched.speed = p->speed > 0 ? p->speed : 1.0;
	b.sched.rate = p->rate; /* one schedule: the threads take its slots in turn */
	b.sched.rec_t0_ns = b.rec_t0;
	b.pass_ns = b.rec_t1 > b.rec_t0 ? replay_sched_offset(&b.sched, b.rec_t1, 0) + 1000000LL
					: 1000000LL;
	uint32_t conc = p->engine.concurrency ? p->engine.concurrency : 256;
	uint64_t nt = p->engine.n_targets ? p->engine.n_targets : 1;
	if (p->pace == REPLAY_PACE_MAX) {
		/* Nothing waits for its time: the engine needs only enough to
		 * refill every connection as its requests complete. More read
		 * ahead only holds sessions (and their results units) longer,
		 * out of the caches: 4096 cost ~15 % of the CPU of an h2c
		 * replay (docs/benchmarks.md "HTTP/2"). */
		b.max_pending = 2ull * conc * nt;
		if (b.max_pending < PENDING_MIN_MAX)
			b.max_pending = PENDING_MIN_MAX;
	} else {
		b.max_pending = 4ull * conc * nt;
		if (b.max_pending < PENDING_MIN)
			b.max_pending = PENDING_MIN;
	}

	b.th = mem_calloc(b.n_th, sizeof(*b.th));
	b.snap = mem_calloc(b.n_th, sizeof(*b.snap));
	if (!b.th || !b.snap) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < b.n_th; i++) {
		struct replay_engine_params ep = p->engine;
		ep.on_done = on_done;
		ep.checked = true; /* src_next() hands out filtered sessions only */
		ep.ctx = &b.th[i];
		b.th[i].b = &b;
		b.th[i].idx = i;
		if (b.causal && !(b.th[i].ct = replay_causal_thr_create(b.causal, i))) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
		ep.causal = b.th[i].ct;
		b.th[i].eng = replay_engine_create(&ep, err, errlen);
		if (!b.th[i].eng) {
			out->input_error = true;
			rc = -EINVAL;
			goto out;
		}
	}

	char source[1024];
	size_t sl = 0;
	sl += (size_t)snprintf(source, sizeof(source), "replay:");
	for (size_t i = 0; i < p->n_inputs && sl < sizeof(source); i++)
		sl += (size_t)snprintf(source + sl, sizeof(source) - sl, "%s%s", i ? "," : "",
				       p->inputs[i]);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct store_origin *orgs = mem_calloc(p->n_inputs, sizeof(*orgs));
	struct store_target *tgts =
	    mem_calloc(p->engine.n_targets ? p->engine.n_targets : 1, sizeof(*tgts));
	if (!orgs || !tgts) {
		mem_free(orgs);
		mem_free(tgts);
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->n_inputs; i++) {
		const struct origin *o = &b.origins[i];
		orgs[i] = (struct store_origin){o->id,	     o->file,  o->first_ns, o->last_ns,
						o->sessions, o->state, o->ctrs,	    o->n_ctrs};
	}
	for (size_t i = 0; i < p->engine.n_targets; i++)
		tgts[i] =
		    (struct store_target){p->engine.targets[i].role, p->engine.targets[i].url};
	struct store_meta meta = {.kind = "results",
				  .source = source,
				  .host = host,
				  .start_ns = clk_real_ns(),
				  .origins = orgs,
				  .n_origins = p->n_inputs,
				  .targets = tgts,
				  .n_targets = p->engine.n_targets,
				  .redactions = p->redact ? p->redact->rules : NULL,
				  .n_redactions = p->redact ? p->redact->n_rules : 0,
				  /* every session's results follow it at once (units) */
				  .has_result_lag = true,
				  .result_lag = 0,
				  .pace = p->pace == REPLAY_PACE_MAX	? "max"
					  : p->pace == REPLAY_PACE_RATE ? "rate"
									: "recorded"};
	if (p->filter.shard_n > 1) {
		meta.shard_k = p->filter.shard_k;
		meta.shard_n = p->filter.shard_n;
		meta.shard_sessions = b.shard_sessions;
	}
	/* Small data frames: compressing one stalls the event loop, and at
	 * 10k req/s a 1 MiB frame would cost milliseconds of pacing. */
	struct store_writer_params wp = {.path = p->output,
					 .meta = &meta,
					 .flush_bytes = RESULTS_FLUSH_BYTES,
					 .level = p->level};
	b.w = store_writer_create(&wp, err, errlen);
	mem_free(orgs);
	mem_free(tgts);
	if (!b.w) {
		/* another writer holds the file: a usage problem, not a runtime one */
		out->input_error = strstr(err, "being written by another process") != NULL;
		rc = -EIO;
		goto out;
	}
	snprintf(out->file_id, sizeof(out->file_id), "%s", store_writer_file_id(b.w));
	struct replay_wq_params qp = {.writer = b.w, .policy = REPLAY_WQ_BLOCK};
	b.wq = replay_wq_create(&qp, err, errlen);
	if (!b.wq) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < b.n_th; i++) {
		if (!(b.th[i].wq = replay_wq_prod_create(b.wq))) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
	}

	b.start = clk_mono_ns() + 10 * 1000000LL; /* a little time for threads to start */
	for (uint32_t i = 1; i < b.n_th; i++) {
		if (pthread_create(&b.th[i].tid, NULL, thread_main, &b.th[i])) {
			snprintf(err, errlen, "cannot start thread %u", i);
			replay_batch_stop();
			for (uint32_t j = 1; j < i; j++)
				pthread_join(b.th[j].tid, NULL);
			rc = -EAGAIN;
			goto out;
		}
	}
	thread_main(&b.th[0]);
	for (uint32_t i = 1; i < b.n_th; i++)
		pthread_join(b.th[i].tid, NULL);

	summarize(&b, out);
	for (uint32_t i = 0; i < b.n_th && !rc; i++) {
		if (b.th[i].rc) {
			rc = b.th[i].rc;
			snprintf(err, errlen, "%s", b.th[i].err);
			out->input_error = rc == -ENOENT || rc == -EBADMSG;
		}
	}
	/* Everything queued reaches the writer before the trailer is written. */
	for (uint32_t i = 0; i < b.n_th; i++) {
		replay_wq_prod_free(b.th[i].wq);
		b.th[i].wq = NULL;
	}
	/* records the loops could not queue (the writer had failed) or redact */
	uint64_t loop_refused =
	    out->stats.write_errors + out->stats.write_dropped + out->stats.redact_errors;
	int wrc = replay_wq_finish(b.wq);
	struct replay_wq_stats ws;
	replay_wq_get_stats(b.wq, &ws);
	/* Records the writer failed on after the loops had queued them (the
	 * loops count the ones refused once the error was known). */
	out->stats.write_errors += ws.write_errors;
	out->stats.write_stalls += ws.stalls;
	if (!rc && wrc) {
		rc = wrc;
		replay_wq_error(b.wq, err, errlen);
	}
	struct store_counter ctrs[64];
	size_t nc = 0;
	for (size_t i = 0; i < replay_n_ctr_descs && nc < 64; i++) {
		ctrs[nc].name = replay_ctr_descs[i].name;
		ctrs[nc].value = ctr_get(&out->stats, &replay_ctr_descs[i]);
		nc++;
	}
	char cerr[512];
	int crc = store_writer_finish(b.w, ctrs, nc, cerr, sizeof(cerr));
	/* Lost: what the writer lost, what the queue never gave it after its
	 * failure, and what the event loops could not queue. */
	out->lost = store_writer_lost(b.w) + ws.unwritten + loop_refused;
	if (crc && !rc) {
		rc = crc;
		snprintf(err, errlen, "%s", store_writer_error(b.w));
	}
	store_writer_free(b.w);
	b.w = NULL;
	if (rc && out->lost) {
		size_t l = strlen(err);
		snprintf(err + l, errlen - l,
			 "; %llu of the %llu records (sessions and results) are not in the "
			 "results file; what was written is in %s%s",
			 (unsigned long long)out->lost, (unsigned long long)out->offered, p->output,
			 STORE_PARTIAL_SUFFIX);
	}
out:
	if (b.th)
		for (uint32_t i = 0; i < b.n_th; i++)
			replay_wq_prod_free(b.th[i].wq);
	replay_wq_free(b.wq); /* stops the thread before the writer goes */
	if (b.w)
		store_writer_free(b.w);
	if (b.th)
		for (uint32_t i = 0; i < b.n_th; i++) {
			replay_engine_free(b.th[i].eng); /* before its tracker */
			replay_causal_thr_free(b.th[i].ct);
		}
	replay_causal_free(b.causal);
	mem_free(b.th);
	mem_free(b.snap);
	mem_free(b.disorder);
	free_origins(&b);
	mem_free(b.shard_sessions);
	pthread_mutex_destroy(&b.lock);
	return rc;
}
