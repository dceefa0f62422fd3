/* SPDX-License-Identifier: MIT */
/*
 * shadow_pair - pairing of production sessions and shadow answers
 * (replay/shadow_pair.h).
 *
 * Every entry is on one of two lists: `flight` while an answer is still
 * due, `waiting` once every target answered and only the session is
 * missing. Entries that want a session are also in a hash by (flow key,
 * first-byte time) until it comes; each bucket is a FIFO (head and tail),
 * so the n-th session of a key meets the n-th request of that key. The
 * waiting list is in answer order: over the cap its head, the oldest, is
 * completed unpaired in O(1).
 */
#include "replay/shadow_pair.h"

#include <errno.h>
#include <string.h>

#include "common/mem.h"
#include "replay/shadow.h"

struct pair_entry {
	struct shadow_pair p; /* first: the callback's view */
	struct pair_entry *hprev, *hnext;
	struct pair_entry *prev, *next;
	size_t bucket;
	bool want;	   /* waits for a session */
	bool have_session; /* the session came (p.prod may still be NULL: no memory) */
	bool in_hash;
	bool on_waiting;
};

struct pair_bucket {
	struct pair_entry *head, *tail;
};

struct shadow_pairs {
	struct shadow_pairs_params p;
	struct pair_bucket *hash;
	size_t nbuckets; /* a power of two */
	struct pair_entry flight, waiting;
	struct shadow_pairs_stats st;
};

static void list_init(struct pair_entry *h)
{
	h->prev = h->next = h;
}

static void list_add_tail(struct pair_entry *h, struct pair_entry *e)
{
	e->next = h;
	e->prev = h->prev;
	h->prev->next = e;
	h->prev = e;
}

static void list_del(struct pair_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static size_t bucket_of(const struct shadow_pairs *t, uint64_t key, int64_t ts)
{
	return (size_t)(((key ^ (uint64_t)ts) * 0x9E3779B97F4A7C15ULL) >> 32) & (t->nbuckets - 1);
}

static void hash_del(struct shadow_pairs *t, struct pair_entry *e)
{
	struct pair_bucket *b = &t->hash[e->bucket];
	if (e->hprev)
		e->hprev->hnext = e->hnext;
	else
		b->head = e->hnext;
	if (e->hnext)
		e->hnext->hprev = e->hprev;
	else
		b->tail = e->hprev;
	e->hprev = e->hnext = NULL;
	e->in_hash = false;
}

struct shadow_pairs *shadow_pairs_create(const struct shadow_pairs_params *p)
{
	struct shadow_pairs *t = mem_calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->p = *p;
	if (!t->p.max_waiting)
		t->p.max_waiting = 4096;
	t->nbuckets = 1024;
	while (t->nbuckets < t->p.max_waiting / 2 && t->nbuckets < 65536)
		t->nbuckets *= 2;
	t->hash = mem_calloc(t->nbuckets, sizeof(*t->hash));
	if (!t->hash) {
		mem_free(t);
		return NULL;
	}
	list_init(&t->flight);
	list_init(&t->waiting);
	return t;
}

static void entry_free(struct pair_entry *e)
{
	for (unsigned i = 0; i < SHADOW_MAX_TARGETS; i++)
		shadow_free(e->p.res[i]);
	shadow_free(e->p.prod);
	mem_free(e);
}

/* Take @p e out of the hash and its list. */
static void unlink_entry(struct shadow_pairs *t, struct pair_entry *e)
{
	if (e->in_hash)
		hash_del(t, e);
	if (e->on_waiting)
		t->st.waiting--;
	list_del(e);
	t->st.live--;
}

static void complete(struct shadow_pairs *t, struct pair_entry *e)
{
	unlink_entry(t, e);
	if (e->want && !e->p.prod)
		t->st.unpaired++;
	if (t->p.on_complete)
		t->p.on_complete(t->p.ctx, &e->p);
	entry_free(e);
}

void shadow_pairs_free(struct shadow_pairs *t)
{
	if (!t)
		return;
	struct pair_entry *lists[2] = {&t->flight, &t->waiting};
	for (int i = 0; i < 2; i++)
		while (lists[i]->next != lists[i]) {
			struct pair_entry *e = lists[i]->next;
			list_del(e);
			entry_free(e);
		}
	mem_free(t->hash);
	mem_free(t);
}

struct shadow_pair *shadow_pairs_add(struct shadow_pairs *t, uint64_t flow_key, int64_t ts_first,
				     unsigned lane, unsigned n_targets, bool want_session)
{
	struct pair_entry *e = mem_calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->p.lane = lane;
	e->p.n_targets = n_targets ? n_targets : 1;
	e->p.flow_key = flow_key;
	e->p.ts_first = ts_first;
	e->want = want_session;
	list_add_tail(&t->flight, e);
	if (want_session) {
		struct pair_bucket *b;
		e->bucket = bucket_of(t, flow_key, ts_first);
		b = &t->hash[e->bucket];
		e->hprev = b->tail;
		if (b->tail)
			b->tail->hnext = e;
		else
			b->head = e;
		b->tail = e;
		e->in_hash = true;
	}
	t->st.added++;
	t->st.live++;
	return &e->p;
}

void shadow_pairs_cancel(struct shadow_pairs *t, struct shadow_pair *p)
{
	struct pair_entry *e = (struct pair_entry *)p;
	unlink_entry(t, e);
	t->st.added--;
	entry_free(e);
}

static bool done(const struct pair_entry *e)
{
	return e->p.n_res >= e->p.n_targets && (!e->want || e->have_session);
}

void shadow_pairs_result(struct shadow_pairs *t, struct shadow_pair *p, struct store_result *copy)
{
	struct pair_entry *e = (struct pair_entry *)p;
	if (e->p.n_res < SHADOW_MAX_TARGETS)
		e->p.res[e->p.n_res] = copy;
	else
		shadow_free(copy);
	e->p.n_res++;
	if (done(e)) {
		complete(t, e);
		return;
	}
	if (e->p.n_res != e->p.n_targets)
		return;
	/* Every answer is in; only the session is missing. */
	list_del(e);
	list_add_tail(&t->waiting, e);
	e->on_waiting = true;
	t->st.waiting++;
	while (t->st.waiting > t->p.max_waiting) {
		t->st.trimmed++;
		complete(t, t->waiting.next);
	}
}

/* The oldest entry waiting for the session of (@p key, @p ts), or NULL. */
static struct pair_entry *find(struct shadow_pairs *t, uint64_t key, int64_t ts)
{
	struct pair_entry *e = t->hash[bucket_of(t, key, ts)].head;
	while (e && (e->p.flow_key != key || e->p.ts_first != ts))
		e = e->hnext;
	return e;
}

static int matched(struct shadow_pairs *t, struct pair_entry *e, struct store_session *copy)
{
	hash_del(t, e);
	e->have_session = true;
	e->p.prod = copy;
	if (copy)
		t->st.paired++;
	if (done(e))
		complete(t, e);
	return copy ? 1 : -ENOMEM;
}

int shadow_pairs_session(struct shadow_pairs *t, uint64_t flow_key, const struct store_session *s)
{
	struct pair_entry *e = find(t, flow_key, s->ts_req_first_ns);
	if (!e) {
		t->st.ignored++;
		return 0;
	}
	return matched(t, e, shadow_session_dup(s));
}

int shadow_pairs_session_take(struct shadow_pairs *t, uint64_t flow_key, struct store_session *copy)
{
	struct pair_entry *e = find(t, flow_key, copy->ts_req_first_ns);
	if (!e) {
		t->st.ignored++;
		shadow_free(copy);
		return 0;
	}
	return matched(t, e, copy);
}

void shadow_pairs_flush(struct shadow_pairs *t)
{
	while (t->waiting.next != &t->waiting)
		complete(t, t->waiting.next);
	while (t->flight.next != &t->flight)
		complete(t, t->flight.next);
}

const struct shadow_pairs_stats *shadow_pairs_get_stats(const struct shadow_pairs *t)
{
	return &t->st;
}
