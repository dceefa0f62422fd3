/* SPDX-License-Identifier: MIT */
/*
 * replay_taint - reads that come after writes the replay does not send
 * (docs/replay.md "Writes").
 *
 * Without --allow-writes a write (any method but GET, HEAD, OPTIONS) is
 * not sent, so the target never has the state it made in production: a
 * read that came after it may be answered otherwise for that reason
 * alone (a resource PUT in production is 404 at the target), and such a
 * difference, or its learned-as-noise twin, is no finding about the
 * candidate. A read is "after a write not sent" when the write's
 * recorded end (its response's last byte; its request's when it had no
 * response) is before the read's recorded start, in the same service
 * (the recorded server address and port), and:
 *  - path mode: the read's path (without the query) is the write's,
 *    lies under it ("/a/b" under "/a"), or is its parent collection
 *    ("/a" for a write to "/a/b");
 *  - service mode: any read of the service.
 *
 * Data: one open-addressing table of 64-bit keys (a keyed hash of the
 * service, a kind byte and the path; the service alone in service mode) with the
 * earliest recorded end that tainted each. Path mode keeps two kinds per
 * write: its path as a tree root (matches the path and what lies under
 * it) and its parent as an exact path. A read is looked up at each '/'
 * boundary of its path (its depth in lookups). A hash collision taints a
 * read that is not (it is then not sent, never wrongly compared). The
 * table is bounded (TAINT_MAX keys); past that every read after the
 * earliest write not yet kept is taken as tainted.
 *
 * Thread-safety: one table per thread and input (no sharing).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/hash.h"
#include "common/mem.h"
#include "replay/replay.h"

#define TAINT_MAX (1u << 20)

enum { KIND_SERVICE = 's', KIND_TREE = 't', KIND_EXACT = 'e' };

struct taint_ent {
	uint64_t key; /* 0: empty */
	int64_t end;
};

struct replay_taint {
	enum replay_after_writes mode;
	struct hash_key key; /* the paths are the traffic's: keyed (common/hash.h) */
	struct taint_ent *t;
	size_t cap, n; /* cap a power of two */
	int64_t over;  /* earliest end not kept (table full); INT64_MAX none */
};

struct replay_taint *replay_taint_new(enum replay_after_writes mode)
{
	struct replay_taint *x = mem_calloc(1, sizeof(*x));
	if (x) {
		x->mode = mode;
		x->over = INT64_MAX;
		hash_random_key(&x->key);
	}
	return x;
}

void replay_taint_free(struct replay_taint *x)
{
	if (!x)
		return;
	mem_free(x->t);
	mem_free(x);
}

/* FNV-1a of bytes, continued from @p h (a prefix's state: the prefixes of a
 * path cost one pass together) */
#define FNV_START 0xcbf29ce484222325ULL
static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* The key of the service, the kind and a path's FNV state @p ph: keyed
 * (SipHash, common/hash.h), as a recording's paths are whoever sent the
 * traffic's to choose, so the table's buckets cannot be aimed at. Two
 * paths of one FNV state are one key: that can only leave a read out. */
static uint64_t key_of(const struct replay_taint *x, const struct store_session *s, uint8_t kind,
		       uint64_t ph)
{
	uint64_t w[4];
	memcpy(w, s->dst.addr, 16);
	w[2] = (uint64_t)s->dst.port | (uint64_t)kind << 16;
	w[3] = ph;
	uint64_t h = hash_sip13_words(&x->key, w, 4);
	return h ? h : 1;
}

static struct taint_ent *slot(const struct replay_taint *x, uint64_t key)
{
	size_t m = x->cap - 1;
	for (size_t i = (size_t)key & m;; i = (i + 1) & m)
		if (!x->t[i].key || x->t[i].key == key)
			return &x->t[i];
}

static int grow(struct replay_taint *x)
{
	size_t cap = x->cap ? 2 * x->cap : 1024;
	struct taint_ent *old = x->t;
	size_t ocap = x->cap;
	x->t = mem_calloc(cap, sizeof(*x->t));
	if (!x->t) {
		x->t = old;
		return -ENOMEM;
	}
	x->cap = cap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			*slot(x, old[i].key) = old[i];
	mem_free(old);
	return 0;
}

/* Keep @p key with end @p end (the earliest of it). */
static int put(struct replay_taint *x, uint64_t key, int64_t end)
{
	if (x->cap && x->t) {
		struct taint_ent *e = slot(x, key);
		if (e->key) {
			if (end < e->end)
				e->end = end;
			return 0;
		}
	}
	if (x->n >= TAINT_MAX) {
		if (end < x->over)
			x->over = end;
		return 0;
	}
	if ((x->n + 1) * 2 > x->cap && grow(x))
		return -ENOMEM;
	struct taint_ent *e = slot(x, key);
	e->key = key;
	e->end = end;
	x->n++;
	return 0;
}

/* Is @p key kept with an end before @p ts? */
static bool before(const struct replay_taint *x, uint64_t key, int64_t ts)
{
	if (!x->n)
		return false;
	const struct taint_ent *e = slot(x, key);
	return e->key && e->end < ts;
}

/* The path of @p q's target: up to '?' or '#'. */
static size_t path_len(const struct store_message *q)
{
	size_t n = 0;
	while (n < q->target.len && q->target.ptr[n] != '?' && q->target.ptr[n] != '#')
		n++;
	while (n > 1 && q->target.ptr[n - 1] == '/')
		n--; /* "/a/" is "/a" */
	return n;
}

bool replay_is_read(const struct store_message *q)
{
	static const char *const reads[] = {"GET", "HEAD", "OPTIONS"};
	for (size_t i = 0; i < 3; i++)
		if (q->method.len == strlen(reads[i]) &&
		    !memcmp(q->method.ptr, reads[i],
			    q->method.len)) /* case matters: RFC 9110 §9.1 */
			return true;
	return false;
}

int replay_taint_write(struct replay_taint *x, const struct store_session *s)
{
	if (!x || x->mode == REPLAY_AFTER_WRITES_SEND || !s->req.present || replay_is_read(&s->req))
		return 0;
	int64_t end = s->ts_resp_last_ns  ? s->ts_resp_last_ns
		      : s->ts_req_last_ns ? s->ts_req_last_ns
					  : s->ts_req_first_ns;
	if (x->mode == REPLAY_AFTER_WRITES_SERVICE)
		return put(x, key_of(x, s, KIND_SERVICE, FNV_START), end);
	const uint8_t *p = s->req.target.ptr;
	size_t n = path_len(&s->req);
	size_t up = n;
	while (up > 0 && p[up - 1] != '/')
		up--;
	if (up > 1)
		up--; /* "/a/b" -> "/a"; "/a" -> "/" */
	uint64_t hu = fnv(FNV_START, p, up);
	int rc = put(x, key_of(x, s, KIND_TREE, fnv(hu, p + up, n - up)), end);
	if (!rc && up > 0 && up < n)
		rc = put(x, key_of(x, s, KIND_EXACT, hu), end);
	return rc;
}

bool replay_taint_read(const struct replay_taint *x, const struct store_session *s)
{
	if (!x || x->mode == REPLAY_AFTER_WRITES_SEND || !s->req.present)
		return false;
	int64_t ts = s->ts_req_first_ns;
	if (x->over < ts)
		return true;
	if (x->mode == REPLAY_AFTER_WRITES_SERVICE)
		return before(x, key_of(x, s, KIND_SERVICE, FNV_START), ts);
	if (!x->n)
		return false; /* no write yet */
	const uint8_t *p = s->req.target.ptr;
	size_t n = path_len(&s->req);
	/* each prefix ending at a '/' boundary, and the path: under a write's
	 * path ("/" is the ancestor of every path: "/a" lies under a write to
	 * "/"); the path itself: a write's parent collection. One pass. */
	uint64_t h = FNV_START;
	for (size_t k = 1; k <= n; k++) {
		h = fnv(h, p + k - 1, 1);
		if ((k == n || p[k] == '/' || (k == 1 && p[0] == '/')) &&
		    before(x, key_of(x, s, KIND_TREE, h), ts))
			return true;
	}
	return n && before(x, key_of(x, s, KIND_EXACT, h), ts);
}
