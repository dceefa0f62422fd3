/* SPDX-License-Identifier: MIT */
/*
 * diff_file - feed a results store file (docs/format.md, kind "results")
 * into an analysis context, pairing each result with its session as the
 * file is read.
 *
 * Pairing window. A session record comes before the results that refer
 * to it; the reader holds each session until its results can no longer
 * come, and no longer (in its frame while the frame is read, then as a
 * copy: frames are reused):
 *   - the header's `result_lag` L (written by replay: 0, a session's
 *     results follow it before the next session) closes a session once
 *     more than L sessions followed it;
 *   - a file naming its replay's targets closes a session once every
 *     target's result came;
 *   - otherwise (older files, mirror's) sessions are held until
 *     diff_params.max_window bytes, then the oldest is closed early
 *     (counted: window_closed_early; a result of it that comes later is
 *     counted as an orphan, and the report says to raise --max-window).
 * So memory held is bounded by the window, not by the file. Closing a
 * session settles whether it was replayed: every target of a replay that
 * sent no result for it counts it as unreplayed; a session of a mirror's
 * file without any result is counted by lane and endpoint and settled at
 * the end of the file (its lane's candidate may appear later), as many of
 * a lane's as its trailer counts left out by choice or loop protection
 * as left out, the rest as unreplayed (settle_pending()).
 *
 * Reader damage (a cut tail, damaged frames, skipped records, a missing
 * index), the trailer counters and the chain of custody of the header
 * (the recording replayed, its state and capture counters) go into the
 * context's accounting.
 *
 * Several files are the shards of one recording (replay --shard K/N): each
 * file's results refer to its own sessions, so a file is analysed alone
 * and the merge is a sum; a shard missing from the merge counts as
 * unreplayed sessions (diff_ctx_finish()).
 *
 * The file is read frame by frame (store_reader_take_frame(), ..._settle()).
 * With diff_params.threads > 1, frames are decompressed and decoded, and
 * pairs compared, on the pool's threads (diff_work.c); pairing, pairs not
 * compared, unreplayed sessions and accounting stay on the reading thread,
 * in file order, so they are the same for any number of threads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "analysis/tmpl.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/mem.h"

#define PENDING_MAX 65536 /* (lane, endpoint) pairs of unsettled sessions */
#define PROGRESS_NS (250 * 1000000LL)

/* A session held until its results have come. */
struct held {
	struct held *hnext; /* hash chain */
	struct held *older, *newer;
	uint64_t seq;		       /* sessions read before it */
	uint64_t used;		       /* bit i: a result of candidate i referred to it */
	uint32_t n_res;		       /* results read */
	size_t size;		       /* counted against the window: as if copied */
	uint64_t frame;		       /* the frame it was read from (fstate.frames) */
	const struct store_session *s; /* in its frame, or in copy */
	void *copy; /* owned: a copy of the session once its frame is done (or redacted) */
};

struct window {
	struct held **b;
	size_t nb, n;
	struct held *oldest, *newest;
	size_t bytes, max;
	uint64_t seq;	   /* sessions read */
	int64_t lag;	   /* the header's result_lag, -1 unknown */
	uint32_t expected; /* results per session (a replay's targets), 0 unknown */
	uint64_t early;	   /* sessions closed at the cap */
	struct hash_key key;
};

/* Sessions of a file without results whose candidate is not known yet. */
struct pending {
	char *key; /* lane, NUL, endpoint name, NUL; owned */
	size_t klen;
	uint64_t n;
	uint64_t hash;
};

struct fstate {
	struct diff_ctx *c;
	struct store_frame *frame; /* one thread: the frame being read */
	struct store_decoder *dec;
	bool last;	 /* one thread: the reader said no frame follows */
	uint64_t frames; /* frames read */
	const char *path;
	bool as_secondary;
	uint64_t expected_mask; /* candidates that replayed every session */
	uint64_t orphans, unredactable, sessions;
	struct window w;
	struct pending *pend;
	size_t n_pend, cap_pend;
	uint32_t *pidx; /* open addressing over pend: index + 1 */
	size_t pcap;
	uint64_t pend_over; /* sessions settled at once: the pending table was full */
	bool by_lane;
	uint64_t other_lanes;
	/* read_records(): the file, records read and the next progress line */
	struct store_reader *r;
	uint64_t n_read;
	int64_t next_progress;
};

static bool is_secondary(const struct store_slice *role)
{
	return role->len == 9 && !memcmp(role->ptr, "secondary", 9);
}

static size_t cand_index(const struct diff_ctx *c, const struct diff_cand *v)
{
	for (size_t i = 0; i < c->n_cand; i++)
		if (c->cand[i] == v)
			return i;
	return 0;
}

static int add_origins(struct diff_ctx *c, const struct store_file_meta *m)
{
	c->origins = mem_calloc(m->n_origins ? m->n_origins : 1, sizeof(*c->origins));
	if (!c->origins)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		struct diff_origin *d = &c->origins[i];
		c->n_origins = i + 1;
		d->id = mem_strdup(o->id ? o->id : "");
		d->file = mem_strdup(o->file ? o->file : "");
		d->state = mem_strdup(o->state ? o->state : "");
		d->first_ns = o->first_ns;
		d->last_ns = o->last_ns;
		d->sessions = o->sessions;
		if (!d->id || !d->file || !d->state)
			return -ENOMEM;
	}
	return 0;
}

/* Do @p m's recordings equal those already in @p c (by id, in order)? */
static bool same_origins(const struct diff_ctx *c, const struct store_file_meta *m)
{
	if (c->n_origins != m->n_origins)
		return false;
	for (size_t i = 0; i < m->n_origins; i++)
		if (!m->origins[i].id || !*m->origins[i].id ||
		    strcmp(c->origins[i].id, m->origins[i].id))
			return false;
	return true;
}

static void describe_origins(const struct store_file_meta *m, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < m->n_origins && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s (id %s)", i ? ", " : "",
				      m->origins[i].file ? m->origins[i].file : "?",
				      m->origins[i].id && *m->origins[i].id ? m->origins[i].id
									    : "none");
	if (!m->n_origins)
		snprintf(out, len, "no recording id (an older file, or not written by replay)");
}

/*
 * The header's chain of custody: which recording this file replayed, its
 * state and capture counters, its shard; checked against the files
 * already added (one recording per report). 0, -EINVAL with @p err, -ENOMEM.
 */
static int add_custody(struct diff_ctx *c, const char *path, const struct store_file_meta *m,
		       bool as_secondary, char *err, size_t errlen)
{
	char a[512], b[512];
	bool first = c->n_inputs == 0;
	if (!first && (c->n_origins || m->n_origins) && !same_origins(c, m)) {
		describe_origins(m, b, sizeof(b));
		size_t o = 0;
		a[0] = '\0';
		for (size_t i = 0; i < c->n_origins && o < sizeof(a); i++)
			o += (size_t)snprintf(a + o, sizeof(a) - o, "%s%s (id %s)", i ? ", " : "",
					      c->origins[i].file,
					      *c->origins[i].id ? c->origins[i].id : "none");
		snprintf(err, errlen, "%s replayed %s, but %s replayed %s: %s", path, b,
			 c->inputs[0], c->n_origins ? a : "no recording id",
			 as_secondary ? "a --secondary must replay the same recording"
				      : "only shards of one recording merge into one report");
		return -EINVAL;
	}
	if (!first && !as_secondary && !m->shard_n) {
		snprintf(err, errlen,
			 "%s is not a shard (replay --shard K/N): several results files merge "
			 "into one report only as the shards of one recording",
			 path);
		return -EINVAL;
	}
	if (!as_secondary && m->shard_n) {
		for (size_t i = 0; i < c->n_shards; i++) {
			if (c->shards[i].n != m->shard_n) {
				snprintf(err, errlen,
					 "%s is shard %u/%u but %s is shard %u/%u: shards of one "
					 "merge must split the recording the same way",
					 path, m->shard_k, m->shard_n, c->shards[i].input,
					 c->shards[i].k, c->shards[i].n);
				return -EINVAL;
			}
			if (c->shards[i].k == m->shard_k) {
				snprintf(err, errlen, "%s and %s are both shard %u/%u", path,
					 c->shards[i].input, m->shard_k, m->shard_n);
				return -EINVAL;
			}
		}
		if (!first && !c->n_shards) {
			snprintf(err, errlen,
				 "%s is not a shard (replay --shard K/N): several results files "
				 "merge into one report only as the shards of one recording",
				 c->inputs[0]);
			return -EINVAL;
		}
		struct diff_shard *ns = mem_realloc(c->shards, (c->n_shards + 1) * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		c->shards = ns;
		struct diff_shard *d = &ns[c->n_shards];
		memset(d, 0, sizeof(*d));
		d->k = m->shard_k;
		d->n = m->shard_n;
		d->input = mem_strdup(path);
		if (!d->input)
			return -ENOMEM;
		c->n_shards++;
		if (m->shard_sessions) {
			d->sessions = mem_calloc(m->shard_n, sizeof(uint64_t));
			if (!d->sessions)
				return -ENOMEM;
			memcpy(d->sessions, m->shard_sessions, m->shard_n * sizeof(uint64_t));
		}
	}
	if (as_secondary)
		return 0;
	for (size_t i = 0; i < m->n_targets; i++) {
		const struct store_target *t = &m->targets[i];
		if (t->role && !strcmp(t->role, "secondary"))
			continue;
		int rc = diff_ctx_add_candidate(c, t->role, t->url);
		if (rc == -ENOMEM)
			return rc;
	}
	if (!first)
		return 0;
	int rc = add_origins(c, m);
	for (size_t i = 0; !rc && i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		char src[512];
		snprintf(src, sizeof(src), "recording %s", o->file ? o->file : "?");
		rc = diff_ctx_add_counters(c, src, o->counters, o->n_counters);
		const char *why = NULL;
		if (!rc && o->state && !strcmp(o->state, "cut"))
			why = "was cut short (a crash or a copy cut): sessions after the cut were "
			      "never replayed";
		else if (!rc && o->state && !strcmp(o->state, "damaged"))
			why = "has damaged frames: their sessions were never replayed";
		else if (!rc && o->state && !strcmp(o->state, "suspect"))
			why = "holds data after an index frame (files joined, two writers)";
		else if (!rc && o->state && !strcmp(o->state, "unfinished"))
			why = "has no trailer (its writer did not finish): its capture counters "
			      "are unknown";
		if (why) {
			char note[768];
			snprintf(note, sizeof(note), "recording %s %s", o->file ? o->file : "?",
				 why);
			rc = diff_ctx_note_incomplete(c, note);
		}
	}
	return rc;
}

/* ---- the window ---- */

static size_t bucket(const struct window *w, uint64_t id)
{
	return (size_t)hash_sip13_words(&w->key, &id, 1) & (w->nb - 1);
}

static int win_init(struct window *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->nb = 64;
	w->b = mem_calloc(w->nb, sizeof(*w->b));
	w->max = max;
	w->lag = -1;
	hash_random_key(&w->key);
	return w->b ? 0 : -ENOMEM;
}

static struct held *win_find(const struct window *w, uint64_t id)
{
	for (struct held *k = w->b[bucket(w, id)]; k; k = k->hnext)
		if (k->s->id == id)
			return k;
	return NULL;
}

/*
 * Hold session @p s of the frame being read: it stays there until the
 * frame is done (copy_out()), unless @p stable is false (a redacted
 * session, in the redactor's memory): then it is copied now.
 */
static int win_add(struct window *w, const struct store_session *s, bool stable, uint64_t frame,
		   struct held **out)
{
	if (w->n >= w->nb) {
		size_t nnb = w->nb * 2;
		struct held **nb = mem_calloc(nnb, sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		struct held **old = w->b;
		size_t onb = w->nb;
		w->b = nb;
		w->nb = nnb;
		for (size_t i = 0; i < onb; i++)
			for (struct held *k = old[i], *nx; k; k = nx) {
				nx = k->hnext;
				size_t bk = bucket(w, k->s->id);
				k->hnext = nb[bk];
				nb[bk] = k;
			}
		mem_free(old);
	}
	size_t head = (sizeof(struct held) + 7) & ~(size_t)7;
	size_t ss = diff_session_size(s);
	struct held *k = mem_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	memset(k, 0, sizeof(*k));
	k->s = s;
	if (!stable) {
		if (!(k->copy = mem_alloc(ss))) {
			mem_free(k);
			return -ENOMEM;
		}
		k->s = diff_session_copy(k->copy, s);
	}
	size_t size = head + ss;
	k->size = size;
	k->frame = frame;
	k->seq = w->seq++;
	size_t bk = bucket(w, s->id);
	k->hnext = w->b[bk];
	w->b[bk] = k;
	k->older = w->newest;
	if (w->newest)
		w->newest->newer = k;
	else
		w->oldest = k;
	w->newest = k;
	w->n++;
	w->bytes += size;
	*out = k;
	return 0;
}

static void win_remove(struct window *w, struct held *k)
{
	struct held **pp = &w->b[bucket(w, k->s->id)];
	while (*pp && *pp != k)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = k->hnext;
	if (k->older)
		k->older->newer = k->newer;
	else
		w->oldest = k->newer;
	if (k->newer)
		k->newer->older = k->older;
	else
		w->newest = k->older;
	w->n--;
	w->bytes -= k->size;
}

/* ---- settling unreplayed sessions ---- */

static size_t endpoint_name(const struct store_session *s, char *out, size_t cap)
{
	if (s->req.present && s->req.method.len)
		return tmpl_endpoint((const char *)s->req.method.ptr, s->req.method.len,
				     (const char *)s->req.target.ptr, s->req.target.len, out, cap);
	return (size_t)snprintf(out, cap, "(no request)");
}

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)k[i]) * 0x100000001b3ull;
	return h;
}

/* The candidate named like lane @p lane, or SIZE_MAX. */
static size_t lane_cand(const struct diff_ctx *c, const char *lane, size_t n)
{
	for (size_t j = 0; j < c->n_cand; j++)
		if (strlen(c->cand[j]->role) == n && (!n || !memcmp(c->cand[j]->role, lane, n)))
			return j;
	return SIZE_MAX;
}

/* Settle @p n sessions of lane @p lane, endpoint @p ep: unreplayed by the
 * candidate named like the lane (else the first), or a lane no candidate
 * shadows (a mirror's file: an exclusion). */
static int settle(struct fstate *f, const char *lane, size_t ln, const char *ep, uint64_t n)
{
	struct diff_ctx *c = f->c;
	size_t ci = lane_cand(c, lane, ln);
	if (ci == SIZE_MAX && f->by_lane) {
		f->other_lanes += n;
		return 0;
	}
	return diff_ctx_add_unreplayed_ep(c, ci == SIZE_MAX ? 0 : ci, ep, n);
}

/*
 * A mirror's lane leaves some requests out by the user's choice
 * (--lane-rate, writes without --allow-writes, a pause, the production
 * guard) or because they are its own copies captured again (loop
 * protection): their sessions are in the file without a result, like a
 * lost one. The file says how many, per lane and reason (the trailer
 * counters lane_L_REASON, shadow_core.c), not which.
 */
static const char *const left_out_reasons[] = {
    "dropped_rate_limited", "dropped_write_refused", "dropped_production", "paused",
    "dropped_paused", /* the name of paused in older files */
    "dropped_loop",
};
#define N_LEFT_OUT (sizeof(left_out_reasons) / sizeof(left_out_reasons[0]))

/* Lane @p lane's counts of @p st per reason (left_out_reasons order): their sum. */
static uint64_t lane_left_out(const struct store_read_status *st, const char *lane,
			      uint64_t by[N_LEFT_OUT])
{
	size_t ln = strlen(lane);
	uint64_t sum = 0;
	memset(by, 0, N_LEFT_OUT * sizeof(by[0]));
	for (size_t i = 0; i < st->n_counters; i++) {
		const char *n = st->counters[i].name;
		if (!n || strncmp(n, "lane_", 5) || strncmp(n + 5, lane, ln) || n[5 + ln] != '_')
			continue;
		for (size_t k = 0; k < N_LEFT_OUT; k++)
			if (!strcmp(n + 6 + ln, left_out_reasons[k])) {
				by[k] += st->counters[i].value;
				sum += st->counters[i].value;
			}
	}
	return sum;
}

/*
 * Settle the sessions of a mirror's file left without a result (f->pend,
 * in the order their (lane, endpoint) was first seen). Of a lane's, as
 * many as its trailer counts as left out are not unreplayed: those
 * counters already list them (an exclusion, or information for loop),
 * and a scope line says how many sessions they settled. The rest were
 * lost (queue_full, target_down, stopped, ...): unreplayed. When a lane
 * has both, the file does not say which endpoints the lost ones were
 * on: the left-out count is taken from the endpoints first seen first.
 */
static int settle_pending(struct fstate *f, const struct store_read_status *st)
{
	struct diff_ctx *c = f->c;
	uint64_t left[DIFF_MAX_CANDIDATES] = {0}, used[DIFF_MAX_CANDIDATES] = {0};
	uint64_t by[DIFF_MAX_CANDIDATES][N_LEFT_OUT];
	int rc = 0;
	if (f->by_lane)
		for (size_t j = 0; j < c->n_cand && j < DIFF_MAX_CANDIDATES; j++)
			left[j] = lane_left_out(st, c->cand[j]->role, by[j]);
	for (size_t i = 0; !rc && i < f->n_pend; i++) {
		const struct pending *p = &f->pend[i];
		size_t ln = strlen(p->key);
		size_t ci = f->by_lane ? lane_cand(c, p->key, ln) : SIZE_MAX;
		uint64_t n = p->n;
		if (ci < DIFF_MAX_CANDIDATES && left[ci]) {
			uint64_t take = n < left[ci] ? n : left[ci];
			left[ci] -= take;
			used[ci] += take;
			n -= take;
		}
		if (n)
			rc = settle(f, p->key, ln, p->key + ln + 1, n);
	}
	for (size_t j = 0; !rc && j < c->n_cand && j < DIFF_MAX_CANDIDATES; j++) {
		if (!used[j])
			continue;
		char line[768];
		const char *sep = ": ";
		int o = snprintf(line, sizeof(line),
				 "%s: lane %s: %llu recorded sessions without a result were left "
				 "out by the mirror, not lost (its counters",
				 f->path, c->cand[j]->role, (unsigned long long)used[j]);
		for (size_t k = 0; k < N_LEFT_OUT && o > 0 && (size_t)o < sizeof(line); k++)
			if (by[j][k]) {
				o += snprintf(line + o, sizeof(line) - (size_t)o, "%s%s %llu", sep,
					      left_out_reasons[k], (unsigned long long)by[j][k]);
				sep = ", ";
			}
		if (o > 0 && (size_t)o < sizeof(line))
			snprintf(line + o, sizeof(line) - (size_t)o, ")");
		rc = diff_ctx_note_info(c, line);
	}
	return rc;
}

/* A session of a file without replay targets got no result: count it by
 * lane and endpoint until the end of the file. */
static int pend_add(struct fstate *f, const struct store_session *s)
{
	char key[1024];
	size_t ln = s->lane.len < 256 ? s->lane.len : 256;
	if (ln)
		memcpy(key, s->lane.ptr, ln);
	key[ln] = '\0';
	size_t en = endpoint_name(s, key + ln + 1, sizeof(key) - ln - 1);
	size_t klen = ln + 1 + en;
	uint64_t h = key_hash(key, klen);
	size_t slot = 0;
	for (slot = f->pcap ? h & (f->pcap - 1) : 0; f->pcap && f->pidx[slot];
	     slot = (slot + 1) & (f->pcap - 1)) {
		struct pending *q = &f->pend[f->pidx[slot] - 1];
		if (q->hash == h && q->klen == klen && !memcmp(q->key, key, klen)) {
			q->n++;
			return 0;
		}
	}
	if (f->n_pend == PENDING_MAX) {
		/* no room to wait for the lane's candidate: settle with what is known */
		f->pend_over++;
		if (!f->c->n_cand && diff_ctx_add_candidate(f->c, "candidate", NULL))
			return -ENOMEM;
		return settle(f, key, ln, key + ln + 1, 1);
	}
	if (f->n_pend == f->cap_pend) {
		size_t nc = f->cap_pend ? f->cap_pend * 2 : 16;
		struct pending *np = mem_realloc(f->pend, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		f->pend = np;
		f->cap_pend = nc;
	}
	struct pending *p = &f->pend[f->n_pend];
	p->key = mem_alloc(klen + 1);
	if (!p->key)
		return -ENOMEM;
	memcpy(p->key, key, klen);
	p->key[klen] = '\0';
	p->klen = klen;
	p->n = 1;
	p->hash = h;
	f->n_pend++;
	if (f->n_pend * 2 > f->pcap) {
		size_t nc = f->pcap ? f->pcap * 2 : 64;
		uint32_t *ni = mem_calloc(nc, sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		for (size_t i = 0; i < f->n_pend; i++) {
			size_t k = f->pend[i].hash & (nc - 1);
			while (ni[k])
				k = (k + 1) & (nc - 1);
			ni[k] = (uint32_t)(i + 1);
		}
		mem_free(f->pidx);
		f->pidx = ni;
		f->pcap = nc;
	} else {
		f->pidx[slot] = (uint32_t)f->n_pend;
	}
	return 0;
}

/* Free held session @p k (removed from the window). A copy may still be
 * referred to by pairs queued for the comparing threads: it goes when
 * they are compared. */
static int held_free(struct diff_ctx *c, struct held *k)
{
	int rc = 0;
	if (k->copy && c->pool)
		rc = diff_pool_defer(c->pool, k->copy);
	else
		mem_free(k->copy);
	mem_free(k);
	return rc;
}

/* Session @p k can get no more results: settle it and free it. Closed
 * @p early (the window is full, not the file's word), its missing results
 * may still come: it is not settled as unreplayed, only counted as
 * window_closed_early (a loss), and a result that comes later as an
 * orphan. */
static int win_close(struct fstate *f, struct held *k, bool early)
{
	struct diff_ctx *c = f->c;
	int rc = 0;
	win_remove(&f->w, k);
	if (!f->as_secondary && !early) {
		if (f->expected_mask) {
			for (size_t ci = 0; ci < c->n_cand && !rc; ci++)
				if ((f->expected_mask & (1ull << ci)) && !(k->used & (1ull << ci)))
					rc = diff_ctx_add_unreplayed_to(c, ci, k->s);
		} else if (!k->used) {
			rc = pend_add(f, k->s);
		}
	}
	int frc = held_free(c, k); /* out of the window: freed on error too */
	return rc ? rc : frc;
}

/* The frame just read is done with: copy the sessions of it still held. */
static int copy_out(struct fstate *f)
{
	for (struct held *k = f->w.newest; k && k->frame == f->frames; k = k->older) {
		if (k->copy)
			continue;
		size_t ss = diff_session_size(k->s);
		if (!(k->copy = mem_alloc(ss)))
			return -ENOMEM;
		k->s = diff_session_copy(k->copy, k->s);
	}
	return 0;
}

/* Pair (@p s, @p r): counted here when it is not compared, else compared
 * here or queued for a comparing thread. */
static int add_pair(struct fstate *f, struct held *k, const struct store_result *r, bool sec,
		    bool stable)
{
	struct diff_ctx *c = f->c;
	struct diff_cand *v = diff_ctx_cand(c, (const char *)r->role.ptr, r->role.len,
					    (const char *)r->target.ptr, r->target.len, sec);
	if (!v) {
		if (!sec && c->n_cand == DIFF_MAX_CANDIDATES) {
			c->over_candidates++;
			return 0;
		}
		return -ENOMEM;
	}
	size_t ci = sec ? 0 : cand_index(c, v);
	if (!sec)
		k->used |= 1ull << ci;
	int rc = diff_ctx_account(c, v, k->s, r);
	if (rc)
		return rc < 0 ? rc : 0;
	if (c->pool)
		return diff_pool_add(c->pool, k->s, r, ci, sec, !stable);
	return diff_part_compare(&c->part, v, k->s, r);
}

static void progress(struct fstate *f, struct store_reader *r, int64_t *next, bool force)
{
	struct diff_ctx *c = f->c;
	if (!c->p.progress)
		return;
	int64_t now = clk_mono_ns();
	if (!force && now < *next)
		return;
	*next = now + PROGRESS_NS;
	const struct store_read_status *st = store_reader_status(r);
	struct diff_progress p = {
	    .file = f->path,
	    .bytes_read = st->compressed_bytes,
	    .file_bytes = st->file_bytes,
	    .pairs = c->pairs_read,
	    .elapsed_s = c->t0 ? (double)(now - c->t0) / 1e9 : 0,
	};
	c->p.progress(c->p.progress_ctx, &p);
}

/* One record of the frame being read: hold a session, pair a result. */
static int read_record(struct fstate *f, struct store_reader *r, const struct store_record *rec,
		       uint64_t *n, int64_t *next)
{
	struct diff_ctx *c = f->c;
	const struct diff_params *p = &c->p;
	int rc = 0;
	if ((++*n & 4095) == 0)
		progress(f, r, next, false);
	if (rec->type == STORE_REC_SESSION) {
		const struct store_session *s = &rec->u.session;
		struct store_session red;
		if (p->redact) {
			if (p->redact(p->redact_ctx, s, &red)) {
				f->unredactable++;
				return 0;
			}
			s = &red;
		}
		f->sessions++;
		struct window *w = &f->w;
		/* the file says older sessions can get no more results */
		while (!rc && w->lag >= 0 && w->oldest &&
		       w->oldest->seq + (uint64_t)w->lag < w->seq)
			rc = win_close(f, w->oldest, false);
		struct held *k;
		if (!rc)
			rc = win_add(w, s, s != &red, f->frames, &k);
		while (!rc && w->bytes > w->max && w->oldest != w->newest) {
			w->early++;
			rc = win_close(f, w->oldest, true);
		}
		if (w->bytes > c->window_peak)
			c->window_peak = w->bytes;
		return rc;
	}
	const struct store_result *res = &rec->u.result;
	c->pairs_read++;
	struct held *k = win_find(&f->w, res->session_id);
	if (!k) {
		f->orphans++;
		return 0;
	}
	bool sec = f->as_secondary || is_secondary(&res->role);
	struct store_result rr;
	const struct store_result *use = res;
	if (p->redact && res->resp.present) {
		struct store_session in, out;
		memset(&in, 0, sizeof(in));
		in.resp = res->resp;
		if (p->redact(p->redact_ctx, &in, &out)) {
			f->unredactable++;
			return 0;
		}
		rr = *res;
		rr.resp = out.resp; /* in the redactor's memory: not stable */
		use = &rr;
	}
	k->n_res++;
	rc = add_pair(f, k, use, sec, use == res);
	if (!rc && f->w.expected && k->n_res >= f->w.expected)
		rc = win_close(f, k, false); /* every target answered */
	return rc;
}

/* The next frame of @p r (one thread), settled, in *@p out: 1, 0 at the
 * end of the data, -ENOMEM. */
static int next_frame(struct fstate *f, struct store_reader *r, struct store_frame **out)
{
	struct store_frame *fr = f->frame;
	if (f->last)
		return 0;
	/* nothing is outstanding, so the reader never says -EAGAIN */
	int rc = store_reader_take_frame(r, fr);
	if (rc == 1 && !(rc = store_frame_decode(fr, f->dec))) {
		rc = store_reader_settle(r, fr);
		if (rc == 0) {
			f->last = true; /* the record cap: this frame is the last */
			rc = 1;
		}
	}
	*out = fr;
	return rc;
}

/* Pair the records of settled frame @p fr (diff_pool_pair_fn: with
 * threads, on any of them, one at a time and in file order). */
static int pair_frame(void *arg, struct store_frame *fr)
{
	struct fstate *f = arg;
	struct diff_ctx *c = f->c;
	const struct store_record *recs;
	f->frames++;
	if (store_frame_size(fr) > c->p.max_inflight)
		c->frames_over_inflight++;
	size_t n = store_frame_records(fr, &recs);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = read_record(f, f->r, &recs[i], &f->n_read, &f->next_progress);
	return rc ? rc : copy_out(f);
}

static int read_records(struct fstate *f, struct store_reader *r)
{
	struct store_frame *fr;
	int rc;
	f->r = r;
	f->n_read = 0;
	f->next_progress = clk_mono_ns() + PROGRESS_NS;
	if (f->c->pool) {
		rc = diff_pool_read(f->c->pool, r, pair_frame, f);
	} else {
		while ((rc = next_frame(f, r, &fr)) == 1)
			if ((rc = pair_frame(f, fr)))
				break;
	}
	while (rc >= 0 && f->w.oldest) {
		int crc = win_close(f, f->w.oldest, false);
		rc = rc ? rc : crc;
	}
	progress(f, r, &f->next_progress, true);
	return rc;
}

/* Notes of the file's read status and pairing for the reports. */
static int file_notes(struct fstate *f, struct store_reader *r, const struct store_file_meta *meta)
{
	struct diff_ctx *c = f->c;
	const char *path = f->path;
	const struct store_read_status *st = store_reader_status(r);
	char note[768];
	int rc = 0;
	if (meta && meta->kind && strcmp(meta->kind, "results") && !f->as_secondary)
		DIFF_LOG(LOG_WARN, "%s: kind is '%s', not 'results'", path, meta->kind);
	if (st->cut) {
		snprintf(note, sizeof(note),
			 "%s: file is cut short at byte %llu of %llu (records after it are lost)",
			 path, (unsigned long long)st->cut_offset,
			 (unsigned long long)st->file_bytes);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && st->damaged_frames) {
		snprintf(note, sizeof(note), "%s: %llu damaged frames (first at byte %llu)", path,
			 (unsigned long long)st->damaged_frames,
			 (unsigned long long)st->first_damage_offset);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && st->suspect_frames) {
		snprintf(note, sizeof(note),
			 "%s: data after an index frame or a second header at byte %llu (files "
			 "joined or two writers): read, but the file is not one whole run",
			 path, (unsigned long long)st->first_suspect_offset);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && st->skipped_records) {
		snprintf(note, sizeof(note), "%s: %llu records skipped as undecodable", path,
			 (unsigned long long)st->skipped_records);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && !st->has_index && !st->cut) {
		snprintf(note, sizeof(note),
			 "%s: no trailer (the writer did not finish; counters unknown)", path);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && f->orphans && f->w.early) {
		c->window_orphans += f->orphans;
		snprintf(
		    note, sizeof(note),
		    "%s: %llu results refer to sessions not in the file or no longer held: "
		    "%llu sessions were closed at the pairing window's cap of %zu bytes before "
		    "the file's end (raise --max-window)",
		    path, (unsigned long long)f->orphans, (unsigned long long)f->w.early, f->w.max);
		rc = diff_ctx_note_incomplete(c, note);
	} else if (!rc && f->orphans) {
		snprintf(note, sizeof(note), "%s: %llu results refer to sessions not in the file",
			 path, (unsigned long long)f->orphans);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && f->unredactable) {
		snprintf(note, sizeof(note),
			 "%s: %llu records not analysed because redaction failed (out of memory)",
			 path, (unsigned long long)f->unredactable);
		rc = diff_ctx_note_incomplete(c, note);
	}
	c->window_early += f->w.early;
	return rc;
}

int diff_ctx_add_file(struct diff_ctx *c, const char *path, bool as_secondary, char *err,
		      size_t errlen)
{
	if (c->finished) {
		snprintf(err, errlen, "the analysis is finished");
		return -EINVAL;
	}
	struct store_reader *r = store_reader_open(path, err, errlen);
	if (!r)
		return -EINVAL;
	if (!c->t0)
		c->t0 = clk_mono_ns();
	struct fstate f = {.c = c, .path = path, .as_secondary = as_secondary};
	const struct store_file_meta *meta = store_reader_meta(r);
	if (meta->kind && !strcmp(meta->kind, "recording")) {
		/* Its sessions have no results: every one would count as not
		 * replayed, a report of nothing compared. */
		snprintf(err, errlen,
			 "%s is a recording, not results: replay it first (dyetap replay %s "
			 "--target URL -o RESULTS.dyt), then diff RESULTS.dyt",
			 path, path);
		store_reader_free(r);
		return -EINVAL;
	}
	int rc = win_init(&f.w, c->p.max_window);
	if (!rc)
		rc = add_custody(c, path, meta, as_secondary, err, errlen);
	if (rc == -EINVAL)
		goto out;
	if (!rc)
		rc = diff_ctx_add_input(c, path);
	if (!rc && c->p.threads > 1 && !c->pool && !(c->pool = diff_pool_create(c, c->p.threads)))
		rc = -ENOMEM;
	if (!rc && !c->pool &&
	    (!(f.frame = store_frame_create()) || !(f.dec = store_decoder_create())))
		rc = -ENOMEM;
	/* Unreplayed: a replay sends every session to each of its targets, so
	 * each target's missing results count for it; a mirror sends a session
	 * to its lane only, so a session without any result counts for the
	 * candidate named like its lane (else the first). */
	for (size_t t = 0; !rc && t < meta->n_targets; t++) {
		const char *role = meta->targets[t].role;
		for (size_t ci = 0; role && ci < c->n_cand; ci++)
			if (!strcmp(c->cand[ci]->role, role))
				f.expected_mask |= 1ull << ci;
	}
	/* A mirror's file (not written by replay): a session of a lane that no
	 * candidate shadows was left out by lane selection, an exclusion. */
	f.by_lane = !f.expected_mask && !(meta->source && !strncmp(meta->source, "replay:", 7));
	if (meta->has_result_lag)
		f.w.lag = (int64_t)(meta->result_lag > INT64_MAX ? INT64_MAX : meta->result_lag);
	if (meta->source && !strncmp(meta->source, "replay:", 7) && meta->n_targets)
		f.w.expected = (uint32_t)meta->n_targets;
	if (!rc)
		rc = read_records(&f, r);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 rc == -ENOMEM ? "out of memory" : "cannot analyse this file");
		goto out;
	}
	rc = file_notes(&f, r, meta);
	if (!rc)
		rc = diff_ctx_add_counters(c, path, store_reader_status(r)->counters,
					   store_reader_status(r)->n_counters);
	if (!rc && !as_secondary && !c->n_cand && f.sessions)
		rc = diff_ctx_add_candidate(c, "candidate", NULL);
	if (!rc)
		rc = settle_pending(&f, store_reader_status(r));
	if (!rc && f.other_lanes) {
		struct store_counter lc = {"skipped_lane", f.other_lanes};
		rc = diff_ctx_add_counters(c, path, &lc, 1);
	}
	if (rc)
		snprintf(err, errlen, "out of memory");
out:
	/* every pair of this file compared: nothing refers to its frames or
	 * sessions any more */
	if (c->pool) {
		int drc = diff_pool_drain(c->pool);
		if (drc && !rc) {
			snprintf(err, errlen, "%s: %s", path,
				 drc == -ENOMEM ? "out of memory" : "cannot analyse this file");
			rc = drc;
		}
	}
	while (f.w.oldest) {
		struct held *k = f.w.oldest;
		win_remove(&f.w, k);
		mem_free(k->copy);
		mem_free(k);
	}
	store_frame_free(f.frame);
	store_decoder_free(f.dec);
	mem_free(f.w.b);
	for (size_t i = 0; i < f.n_pend; i++)
		mem_free(f.pend[i].key);
	mem_free(f.pend);
	mem_free(f.pidx);
	store_reader_free(r);
	return rc;
}
