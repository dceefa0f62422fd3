/* SPDX-License-Identifier: MIT */
/*
 * replay_causal - happens-before from the capture, kept by replay: per
 * (service, target, kind) watermarks over the recorded response ends of
 * the requests that have not finished yet (the contract and the threading
 * model are in replay_causal.h; the user's view in docs/replay.md
 * "Causal order").
 *
 * Safe methods (RFC 9110 §9.2.1) do not change state, so reads do not
 * order each other unless strict: a read waits for the writes that ended
 * before it started, a write for every request that did.
 *
 * Data: a service table (open addressing on the recorded server address
 * and port) built by the scan and read-only afterwards; per thread and
 * (tracked service, target) a local slot with two min-heaps of the
 * thread's own unfinished requests by recorded end ("all" and "writes")
 * and two min-heaps of parked objects by recorded start; shared, per
 * thread, the tops it published and its horizon.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/mem.h"
#include "replay/replay_causal.h"

#define K_ALL 0
#define K_W   1

struct replay_causal_ent {
	int64_t end;   /* recorded response end (shifted) */
	uint64_t done; /* bit t: finished on target t */
	uint32_t svc;  /* tracked service */
	uint32_t refs; /* heap memberships */
	bool write, queued;
	struct replay_causal_ent *next; /* in the spare list */
};

struct ent_heap {
	struct replay_causal_ent **a;
	uint32_t n, cap;
};

struct park_item {
	int64_t start;
	void *obj;
};

struct park_heap {
	struct park_item *a;
	uint32_t n, cap;
};

/* One thread's view of one (tracked service, target). */
struct slot {
	struct ent_heap h[2];	  /* K_ALL, K_W: own unfinished requests by end */
	struct park_heap p[2];	  /* parked waiting on K_ALL (writes) / K_W (reads) */
	int64_t pub[2];		  /* values last published */
	struct slot *next_active; /* slots with parked objects */
	bool active;
};

struct pub_pair {
	_Atomic int64_t v[2];
};

struct svc {
	uint8_t ver, addr[16];
	uint16_t port;
	bool used, writes;
	uint32_t tracked; /* tracked index or REPLAY_CAUSAL_NONE */
};

struct thr_shared {
	_Alignas(64) _Atomic int64_t horizon;
	_Atomic int waiting;
	int efd;
};

struct replay_causal {
	struct replay_causal_params p;
	struct svc *svcs;
	uint32_t cap, n;
	uint32_t n_tracked;
	bool any_write;
	int64_t t0, end_max, shift;
	bool started;
	struct pub_pair *pub;  /* [thread][tracked][target], thread stride padded */
	void *pub_mem;	       /* pub's allocation (pub is aligned to 64 bytes in it) */
	size_t pub_stride;     /* pub_pairs per thread */
	struct thr_shared *th; /* aligned to 64 bytes in th_mem */
	void *th_mem;
	_Atomic bool off;
};

struct replay_causal_thr {
	struct replay_causal *c;
	uint32_t idx;
	struct slot *slots; /* [tracked][target] */
	struct slot *active;
	size_t n_parked;
	int64_t horizon;
	bool dirty;
	struct replay_causal_ent *spare;
	uint32_t n_spare;
	/* every entry this thread created and still tracks, for reading_done() */
	size_t n_live;
};

/* ------------------------------------------------------------------ */

int replay_order_parse(const char *s, enum replay_order *out)
{
	static const struct {
		const char *name;
		enum replay_order o;
	} t[] = {{"causal", REPLAY_ORDER_CAUSAL},
		 {"strict", REPLAY_ORDER_STRICT},
		 {"pace", REPLAY_ORDER_PACE},
		 {"none", REPLAY_ORDER_NONE}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].name)) {
			*out = t[i].o;
			return 0;
		}
	return -EINVAL;
}

const char *replay_order_name(enum replay_order o)
{
	switch (o) {
	case REPLAY_ORDER_CAUSAL:
		return "causal";
	case REPLAY_ORDER_STRICT:
		return "strict";
	case REPLAY_ORDER_PACE:
		return "pace";
	case REPLAY_ORDER_NONE:
		return "none";
	case REPLAY_ORDER_AUTO:
	default:
		return "auto";
	}
}

static bool meth_is(const struct store_slice *m, const char *lit)
{
	size_t n = strlen(lit);
	return m->len == n && !memcmp(m->ptr, lit, n);
}

bool replay_causal_is_write(const struct store_session *s)
{
	const struct store_slice *m = &s->req.method;
	return !meth_is(m, "GET") && !meth_is(m, "HEAD") && !meth_is(m, "OPTIONS");
}

struct replay_causal *replay_causal_create(const struct replay_causal_params *p)
{
	if (!p->n_threads || !p->n_targets || p->n_targets > REPLAY_CAUSAL_MAX_TARGETS)
		return NULL;
	struct replay_causal *c = mem_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->p = *p;
	c->cap = 64;
	c->svcs = mem_calloc(c->cap, sizeof(*c->svcs));
	if (!c->svcs) {
		mem_free(c);
		return NULL;
	}
	c->end_max = INT64_MIN;
	return c;
}

void replay_causal_free(struct replay_causal *c)
{
	if (!c)
		return;
	if (c->th)
		for (uint32_t i = 0; i < c->p.n_threads; i++)
			if (c->th[i].efd >= 0)
				close(c->th[i].efd);
	mem_free(c->th_mem);
	mem_free(c->pub_mem);
	mem_free(c->svcs);
	mem_free(c);
}

static uint64_t svc_hash(uint8_t ver, const uint8_t *addr, uint16_t port)
{
	uint64_t h = 1469598103934665603ull ^ ver;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 1099511628211ull;
	h = (h ^ port) * 1099511628211ull;
	return h ^ (h >> 29);
}

/* The table slot of (ver, addr, port): a used one that matches or the free one to use. */
static struct svc *svc_slot(struct svc *t, uint32_t cap, uint8_t ver, const uint8_t *addr,
			    uint16_t port)
{
	uint32_t i = (uint32_t)svc_hash(ver, addr, port) & (cap - 1);
	for (;;) {
		struct svc *v = &t[i];
		if (!v->used ||
		    (v->ver == ver && v->port == port && !memcmp(v->addr, addr, sizeof(v->addr))))
			return v;
		i = (i + 1) & (cap - 1);
	}
}

static void svc_key(const struct replay_causal *c, const struct store_session *s, uint8_t *ver,
		    uint8_t *addr, uint16_t *port)
{
	memset(addr, 0, 16);
	if (c->p.one_service) {
		*ver = 0;
		*port = 0;
		return;
	}
	*ver = s->ip_version;
	memcpy(addr, s->dst.addr, s->ip_version == 4 ? 4 : 16);
	*port = s->dst.port;
}

static int svc_grow(struct replay_causal *c)
{
	uint32_t ncap = c->cap * 2;
	struct svc *nt = mem_calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->cap; i++)
		if (c->svcs[i].used)
			*svc_slot(nt, ncap, c->svcs[i].ver, c->svcs[i].addr, c->svcs[i].port) =
			    c->svcs[i];
	mem_free(c->svcs);
	c->svcs = nt;
	c->cap = ncap;
	return 0;
}

int replay_causal_scan(struct replay_causal *c, const struct store_session *s)
{
	if (c->started)
		return -EINVAL;
	if ((c->n + 1) * 2 > c->cap && svc_grow(c))
		return -ENOMEM;
	uint8_t ver, addr[16];
	uint16_t port;
	svc_key(c, s, &ver, addr, &port);
	struct svc *v = svc_slot(c->svcs, c->cap, ver, addr, port);
	if (!v->used) {
		v->used = true;
		v->ver = ver;
		memcpy(v->addr, addr, sizeof(v->addr));
		v->port = port;
		c->n++;
	}
	if (replay_causal_is_write(s)) {
		v->writes = true;
		c->any_write = true;
	}
	int64_t end =
	    s->ts_resp_last_ns > s->ts_req_first_ns ? s->ts_resp_last_ns : s->ts_req_first_ns;
	if (end > c->end_max)
		c->end_max = end;
	return 0;
}

bool replay_causal_any_write(const struct replay_causal *c)
{
	return c->any_write;
}

uint32_t replay_causal_n_tracked(const struct replay_causal *c)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->cap; i++)
		n += c->svcs[i].used && (c->svcs[i].writes || c->p.strict);
	return n;
}

int replay_causal_start(struct replay_causal *c, int64_t t0)
{
	if (c->started)
		return -EINVAL;
	c->n_tracked = 0;
	for (uint32_t i = 0; i < c->cap; i++) {
		struct svc *v = &c->svcs[i];
		v->tracked =
		    v->used && (v->writes || c->p.strict) ? c->n_tracked++ : REPLAY_CAUSAL_NONE;
	}
	c->t0 = t0;
	c->shift = (c->end_max > t0 ? c->end_max - t0 : 0) + 1;
	uint32_t nt = c->p.n_threads;
	c->th_mem = mem_calloc(1, nt * sizeof(*c->th) + 64);
	if (!c->th_mem)
		return -ENOMEM;
	c->th = (struct thr_shared *)(((uintptr_t)c->th_mem + 63) & ~(uintptr_t)63);
	for (uint32_t i = 0; i < nt; i++) {
		c->th[i].efd = -1;
		atomic_init(&c->th[i].horizon, t0);
		atomic_init(&c->th[i].waiting, 0);
	}
	/* Each thread's published tops start on their own cache line. */
	size_t per = (size_t)c->n_tracked * c->p.n_targets;
	c->pub_stride = (per + 3) & ~(size_t)3; /* 4 pairs = 64 bytes */
	if (nt > 1 && c->pub_stride) {
		c->pub_mem = mem_alloc(nt * c->pub_stride * sizeof(*c->pub) + 64);
		if (!c->pub_mem)
			return -ENOMEM;
		c->pub = (struct pub_pair *)(((uintptr_t)c->pub_mem + 63) & ~(uintptr_t)63);
		for (size_t i = 0; i < nt * c->pub_stride; i++) {
			atomic_init(&c->pub[i].v[K_ALL], INT64_MAX);
			atomic_init(&c->pub[i].v[K_W], INT64_MAX);
		}
		for (uint32_t i = 0; i < nt; i++) {
			c->th[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (c->th[i].efd < 0)
				return -errno;
		}
	}
	atomic_init(&c->off, false);
	c->started = true;
	return 0;
}

int64_t replay_causal_pass_shift(const struct replay_causal *c)
{
	return c->shift;
}

bool replay_causal_abandon(struct replay_causal *c)
{
	if (atomic_exchange(&c->off, true))
		return false;
	if (c->th)
		for (uint32_t i = 0; i < c->p.n_threads; i++)
			if (c->th[i].efd >= 0) {
				uint64_t one = 1;
				(void)!write(c->th[i].efd, &one, sizeof(one));
			}
	return true;
}

bool replay_causal_abandoned(const struct replay_causal *c)
{
	return atomic_load_explicit(&c->off, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* heaps                                                               */
/* ------------------------------------------------------------------ */

static int eh_push(struct ent_heap *h, struct replay_causal_ent *e)
{
	if (h->n == h->cap) {
		uint32_t ncap = h->cap ? 2 * h->cap : 16;
		struct replay_causal_ent **na = mem_realloc(h->a, ncap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		h->a = na;
		h->cap = ncap;
	}
	uint32_t i = h->n++;
	while (i) {
		uint32_t up = (i - 1) / 2;
		if (h->a[up]->end <= e->end)
			break;
		h->a[i] = h->a[up];
		i = up;
	}
	h->a[i] = e;
	return 0;
}

static struct replay_causal_ent *eh_pop(struct ent_heap *h)
{
	struct replay_causal_ent *top = h->a[0], *last = h->a[--h->n];
	uint32_t i = 0;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->a[c + 1]->end < h->a[c]->end)
			c++;
		if (h->a[c]->end >= last->end)
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

static int ph_push(struct park_heap *h, int64_t start, void *obj)
{
	if (h->n == h->cap) {
		uint32_t ncap = h->cap ? 2 * h->cap : 16;
		struct park_item *na = mem_realloc(h->a, ncap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		h->a = na;
		h->cap = ncap;
	}
	uint32_t i = h->n++;
	while (i) {
		uint32_t up = (i - 1) / 2;
		if (h->a[up].start <= start)
			break;
		h->a[i] = h->a[up];
		i = up;
	}
	h->a[i].start = start;
	h->a[i].obj = obj;
	return 0;
}

static void *ph_pop(struct park_heap *h)
{
	void *top = h->a[0].obj;
	struct park_item last = h->a[--h->n];
	uint32_t i = 0;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->a[c + 1].start < h->a[c].start)
			c++;
		if (h->a[c].start >= last.start)
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

/* ------------------------------------------------------------------ */
/* threads                                                             */
/* ------------------------------------------------------------------ */

struct replay_causal_thr *replay_causal_thr_create(struct replay_causal *c, uint32_t idx)
{
	if (!c->started || idx >= c->p.n_threads)
		return NULL;
	struct replay_causal_thr *ct = mem_calloc(1, sizeof(*ct));
	if (!ct)
		return NULL;
	ct->c = c;
	ct->idx = idx;
	ct->horizon = c->t0;
	size_t n = (size_t)c->n_tracked * c->p.n_targets;
	if (n) {
		ct->slots = mem_calloc(n, sizeof(*ct->slots));
		if (!ct->slots) {
			mem_free(ct);
			return NULL;
		}
		for (size_t i = 0; i < n; i++)
			ct->slots[i].pub[K_ALL] = ct->slots[i].pub[K_W] = INT64_MAX;
	}
	return ct;
}

static void ent_free(struct replay_causal_thr *ct, struct replay_causal_ent *e)
{
	ct->n_live--;
	if (ct->n_spare < 4096) {
		e->next = ct->spare;
		ct->spare = e;
		ct->n_spare++;
		return;
	}
	mem_free(e);
}

void replay_causal_thr_free(struct replay_causal_thr *ct)
{
	if (!ct)
		return;
	size_t n = (size_t)ct->c->n_tracked * ct->c->p.n_targets;
	for (size_t i = 0; i < n; i++) {
		struct slot *sl = &ct->slots[i];
		for (int k = 0; k < 2; k++) {
			for (uint32_t j = 0; j < sl->h[k].n; j++) {
				struct replay_causal_ent *e = sl->h[k].a[j];
				if (--e->refs == 0)
					mem_free(e);
			}
			mem_free(sl->h[k].a);
			mem_free(sl->p[k].a);
		}
	}
	while (ct->spare) {
		struct replay_causal_ent *e = ct->spare;
		ct->spare = e->next;
		mem_free(e);
	}
	mem_free(ct->slots);
	mem_free(ct);
}

static struct slot *slot_of(struct replay_causal_thr *ct, uint32_t svc, uint32_t target)
{
	return &ct->slots[(size_t)svc * ct->c->p.n_targets + target];
}

/* Wake every other thread that waits (after publishing progress). */
static void wake_others(struct replay_causal_thr *ct)
{
	struct replay_causal *c = ct->c;
	for (uint32_t j = 0; j < c->p.n_threads; j++) {
		if (j == ct->idx || !atomic_load(&c->th[j].waiting))
			continue;
		if (atomic_exchange(&c->th[j].waiting, 0)) {
			uint64_t one = 1;
			(void)!write(c->th[j].efd, &one, sizeof(one));
		}
	}
}

static int64_t top_end(const struct ent_heap *h)
{
	return h->n ? h->a[0]->end : INT64_MAX;
}

/* Publish slot @p sl's tops if they changed; wake waiters when one rose. */
static void publish(struct replay_causal_thr *ct, struct slot *sl, uint32_t svc, uint32_t target)
{
	struct replay_causal *c = ct->c;
	bool rose = false;
	for (int k = 0; k < 2; k++) {
		int64_t v = top_end(&sl->h[k]);
		if (v == sl->pub[k])
			continue;
		rose = rose || v > sl->pub[k];
		sl->pub[k] = v;
		if (c->pub)
			atomic_store(
			    &c->pub[ct->idx * c->pub_stride + (size_t)svc * c->p.n_targets + target]
				 .v[k],
			    v);
	}
	if (rose) {
		ct->dirty = true;
		if (c->pub)
			wake_others(ct);
	}
}

int replay_causal_read(struct replay_causal_thr *ct, const struct store_session *s, uint32_t pass,
		       struct replay_dep *dep)
{
	struct replay_causal *c = ct->c;
	int64_t off = (int64_t)pass * c->shift;
	dep->svc = REPLAY_CAUSAL_NONE;
	dep->write = replay_causal_is_write(s) || c->p.strict;
	dep->start = s->ts_req_first_ns + off;
	dep->ent = NULL;
	uint8_t ver, addr[16];
	uint16_t port;
	svc_key(c, s, &ver, addr, &port);
	struct svc *v = svc_slot(c->svcs, c->cap, ver, addr, port);
	if (!v->used || v->tracked == REPLAY_CAUSAL_NONE)
		return 0; /* nothing to wait for (no write to this service) */
	dep->svc = v->tracked;
	if (s->ts_resp_last_ns <= 0)
		return 0; /* no recorded end: nobody can depend on it */
	struct replay_causal_ent *e = ct->spare;
	if (e) {
		ct->spare = e->next;
		ct->n_spare--;
	} else if (!(e = mem_alloc(sizeof(*e)))) {
		dep->svc = REPLAY_CAUSAL_NONE;
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	/* An end recorded before the start (clock steps) would make the
	 * request wait for itself. */
	e->end =
	    (s->ts_resp_last_ns > s->ts_req_first_ns ? s->ts_resp_last_ns : s->ts_req_first_ns) +
	    off;
	e->svc = v->tracked;
	e->write = dep->write;
	ct->n_live++;
	for (uint32_t t = 0; t < c->p.n_targets; t++) {
		struct slot *sl = slot_of(ct, e->svc, t);
		for (int k = 0; k < (e->write && !c->p.strict ? 2 : 1); k++) {
			if (eh_push(&sl->h[k], e)) {
				/* Out of memory: finish it at once everywhere. */
				e->done = ~0ull;
				replay_causal_drop(ct, e);
				dep->svc = REPLAY_CAUSAL_NONE;
				return -ENOMEM;
			}
			e->refs++;
		}
		publish(ct, sl, e->svc, t);
	}
	dep->ent = e;
	return 0;
}

void replay_causal_horizon(struct replay_causal_thr *ct, int64_t h)
{
	if (h <= ct->horizon)
		return;
	ct->horizon = h;
	struct replay_causal *c = ct->c;
	if (c->pub) {
		atomic_store(&c->th[ct->idx].horizon, h);
		wake_others(ct);
	}
}

/* Pop finished tops of slot @p sl (target @p t); publish. */
static void slot_settle(struct replay_causal_thr *ct, struct slot *sl, uint32_t svc, uint32_t t)
{
	for (int k = 0; k < 2; k++) {
		struct ent_heap *h = &sl->h[k];
		while (h->n && (h->a[0]->done >> t) & 1) {
			struct replay_causal_ent *e = eh_pop(h);
			if (--e->refs == 0)
				ent_free(ct, e);
		}
	}
	publish(ct, sl, svc, t);
}

void replay_causal_done(struct replay_causal_thr *ct, struct replay_causal_ent *e, uint32_t target)
{
	if (!e || ((e->done >> target) & 1))
		return;
	e->done |= 1ull << target;
	uint32_t svc = e->svc;
	/* e may be freed by the settle. */
	slot_settle(ct, slot_of(ct, svc, target), svc, target);
}

void replay_causal_drop(struct replay_causal_thr *ct, struct replay_causal_ent *e)
{
	if (!e)
		return;
	uint32_t svc = e->svc, nt = ct->c->p.n_targets;
	e->done = nt >= 64 ? ~0ull : (1ull << nt) - 1;
	e->refs++; /* keep it while settling every target */
	for (uint32_t t = 0; t < nt; t++)
		slot_settle(ct, slot_of(ct, svc, t), svc, t);
	if (--e->refs == 0)
		ent_free(ct, e);
}

void replay_causal_queued(struct replay_causal_ent *e)
{
	if (e)
		e->queued = true;
}

void replay_causal_reading_done(struct replay_causal_thr *ct)
{
	struct replay_causal *c = ct->c;
	size_t n = (size_t)c->n_tracked * c->p.n_targets;
	uint64_t all = c->p.n_targets >= 64 ? ~0ull : (1ull << c->p.n_targets) - 1;
	/* Mark first (an entry sits in several heaps), then settle. */
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 2; k++)
			for (uint32_t j = 0; j < ct->slots[i].h[k].n; j++) {
				struct replay_causal_ent *e = ct->slots[i].h[k].a[j];
				if (!e->queued)
					e->done = all;
			}
	for (uint32_t s = 0; s < c->n_tracked; s++)
		for (uint32_t t = 0; t < c->p.n_targets; t++)
			slot_settle(ct, slot_of(ct, s, t), s, t);
	replay_causal_horizon(ct, INT64_MAX);
	ct->dirty = true;
}

/* ------------------------------------------------------------------ */
/* gates                                                               */
/* ------------------------------------------------------------------ */

/* The watermark of (svc, target, kind): the earliest recorded end of a
 * request not finished yet, as far as every thread says. */
static int64_t watermark(struct replay_causal_thr *ct, uint32_t svc, uint32_t target, int k,
			 int64_t need)
{
	struct replay_causal *c = ct->c;
	int64_t w = top_end(&slot_of(ct, svc, target)->h[k]);
	if (w < need || !c->pub)
		return w;
	size_t off = (size_t)svc * c->p.n_targets + target;
	for (uint32_t j = 0; j < c->p.n_threads; j++) {
		if (j == ct->idx)
			continue;
		int64_t h = atomic_load(&c->th[j].horizon);
		if (h < w)
			w = h;
		int64_t v = atomic_load(&c->pub[j * c->pub_stride + off].v[k]);
		if (v < w)
			w = v;
		if (w < need)
			break;
	}
	return w;
}

static int kind_of(const struct replay_causal *c, const struct replay_dep *d)
{
	return d->write || c->p.strict ? K_ALL : K_W;
}

bool replay_causal_ready(struct replay_causal_thr *ct, const struct replay_dep *d, uint32_t target)
{
	if (d->svc == REPLAY_CAUSAL_NONE || replay_causal_abandoned(ct->c))
		return true;
	return watermark(ct, d->svc, target, kind_of(ct->c, d), d->start) >= d->start;
}

int replay_causal_park(struct replay_causal_thr *ct, const struct replay_dep *d, uint32_t target,
		       void *obj)
{
	struct slot *sl = slot_of(ct, d->svc, target);
	int rc = ph_push(&sl->p[kind_of(ct->c, d)], d->start, obj);
	if (rc)
		return rc;
	ct->n_parked++;
	if (!sl->active) {
		sl->active = true;
		sl->next_active = ct->active;
		ct->active = sl;
	}
	return 0;
}

size_t replay_causal_release(struct replay_causal_thr *ct, replay_causal_fn fn, void *ctx,
			     bool before_sleep)
{
	struct replay_causal *c = ct->c;
	if (!ct->n_parked)
		return 0;
	if (before_sleep && c->pub)
		atomic_store(&c->th[ct->idx].waiting, 1); /* then recheck: no lost wake-up */
	else if (!ct->dirty && !before_sleep)
		return 0;
	ct->dirty = false;
	bool off = replay_causal_abandoned(c);
	size_t released = 0;
	struct slot **pp = &ct->active;
	while (*pp) {
		struct slot *sl = *pp;
		size_t idx = (size_t)(sl - ct->slots);
		uint32_t svc = (uint32_t)(idx / c->p.n_targets),
			 t = (uint32_t)(idx % c->p.n_targets);
		for (int k = 0; k < 2; k++) {
			struct park_heap *h = &sl->p[k];
			while (h->n) {
				int64_t need = h->a[0].start;
				if (!off && watermark(ct, svc, t, k, need) < need)
					break;
				void *obj = ph_pop(h);
				ct->n_parked--;
				released++;
				fn(ctx, obj);
			}
		}
		if (!sl->p[K_ALL].n && !sl->p[K_W].n) {
			sl->active = false;
			*pp = sl->next_active;
		} else {
			pp = &sl->next_active;
		}
	}
	if (released && before_sleep && c->pub)
		atomic_store(&c->th[ct->idx].waiting, 0);
	return released;
}

void replay_causal_unpark_all(struct replay_causal_thr *ct)
{
	while (ct->active) {
		struct slot *sl = ct->active;
		sl->p[K_ALL].n = sl->p[K_W].n = 0;
		sl->active = false;
		ct->active = sl->next_active;
	}
	ct->n_parked = 0;
}

size_t replay_causal_n_parked(const struct replay_causal_thr *ct)
{
	return ct->n_parked;
}

int replay_causal_fd(const struct replay_causal_thr *ct)
{
	return ct->c->th ? ct->c->th[ct->idx].efd : -1;
}

void replay_causal_kick(struct replay_causal_thr *ct)
{
	int fd = replay_causal_fd(ct);
	uint64_t v;
	if (fd >= 0)
		(void)!read(fd, &v, sizeof(v));
	ct->dirty = true;
}
