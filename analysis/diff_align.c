/* SPDX-License-Identifier: MIT */
/*
 * diff_align - match the elements of two JSON arrays by identity, content
 * or position before they are compared; see diff_align.h for the rules
 * and docs/diff.md "Arrays" for what users see.
 *
 * Work is linear in the elements plus the nodes hashed (each node visit
 * takes one unit of the pair's comparison budget), and O(n log n) for the
 * longest increasing subsequence that judges the order. Scratch memory is
 * on the stack for small arrays, else one allocation per call, freed
 * before returning.
 */
#include <errno.h>
#include <string.h>

#include "analysis/diff_align.h"
#include "common/mem.h"

#define SMALL 32 /* elements per side handled without allocating */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Content hash of node @p i: object members in any order, array elements in order. */
static uint64_t node_hash(const struct json_doc *d, uint32_t i, size_t *budget)
{
	const struct json_node *n = json_node(d, i);
	if (*budget)
		(*budget)--;
	switch (n->type) {
	case JSON_NULL:
	case JSON_FALSE:
	case JSON_TRUE:
		return mix(n->type + 1);
	case JSON_NUMBER:
	case JSON_STRING:
		return mix(fnv(d->text + n->off, n->len) ^ n->type);
	case JSON_ARRAY: {
		uint64_t h = mix(JSON_ARRAY);
		for (uint32_t c = n->first; c && *budget; c = json_node(d, c)->next)
			h = mix(h ^ node_hash(d, c, budget));
		return h;
	}
	default: {
		uint64_t sum = 0;
		for (uint32_t c = n->first; c && *budget; c = json_node(d, c)->next) {
			const struct json_node *cn = json_node(d, c);
			sum += mix(fnv(d->text + cn->key_off, cn->key_len) ^
				   (node_hash(d, c, budget) * 31));
		}
		return mix(sum ^ JSON_OBJECT);
	}
	}
}

/* 0 not id-like; else a rank, lower is preferred. */
static int id_rank(const uint8_t *k, size_t n)
{
	static const struct {
		const char *s;
		uint8_t n, rank;
	} exact[] = {{"id", 2, 1},   {"_id", 3, 1}, {"uuid", 4, 2},
		     {"guid", 4, 2}, {"key", 3, 2}, {"slug", 4, 2}};
	if (n < 2 || n > 64)
		return 0;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (exact[i].n == n && !memcmp(exact[i].s, k, n))
			return exact[i].rank;
	if (n > 2 && k[n - 2] == 'I' && (k[n - 1] == 'd' || k[n - 1] == 'D'))
		return 3;
	if (n > 3 && k[n - 3] == '_' && k[n - 2] == 'i' && k[n - 1] == 'd')
		return 3;
	return 0;
}

/* The member named @p k of object node @p el holding a non-null scalar, or 0. */
static uint32_t member(const struct json_doc *d, uint32_t el, const uint8_t *k, size_t kn)
{
	const struct json_node *n = json_node(d, el);
	if (n->type != JSON_OBJECT)
		return 0;
	for (uint32_t c = n->first; c; c = json_node(d, c)->next) {
		const struct json_node *cn = json_node(d, c);
		if (cn->key_len == kn && !memcmp(d->text + cn->key_off, k, kn))
			return cn->type > JSON_NULL && cn->type < JSON_ARRAY ? c : 0;
	}
	return 0;
}

static bool same_text(const struct json_doc *da, uint32_t x, const struct json_doc *db, uint32_t y)
{
	const struct json_node *a = json_node(da, x), *b = json_node(db, y);
	return a->len == b->len && !memcmp(da->text + a->off, db->text + b->off, a->len);
}

/* Scratch of one call: per element hashes, key nodes, and an open-addressing
 * table over b (slot = element index + 1) with chains for equal hashes. */
struct scratch {
	uint64_t *ha, *hb;
	uint32_t *ka, *kb;
	uint32_t *slot, *chain, *tails;
	uint32_t mask;
};

static uint32_t *lookup(struct scratch *s, const uint64_t *h, uint64_t want)
{
	uint32_t *p = &s->slot[want & s->mask];
	for (uint32_t k = (uint32_t)(want & s->mask); *p; k = (k + 1) & s->mask, p = &s->slot[k])
		if (h[*p - 1] == want)
			return p;
	return p; /* the empty slot where it goes */
}

/* Is member @p k a unique identity of every element of one side? Fills
 * keys[] and hashes[]. */
static bool side_keys(struct scratch *s, const struct json_doc *d, const uint32_t *el, uint32_t n,
		      const uint8_t *k, size_t kn, uint32_t *keys, uint64_t *h)
{
	memset(s->slot, 0, (size_t)(s->mask + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = member(d, el[i], k, kn);
		if (!keys[i])
			return false;
		const struct json_node *kn_ = json_node(d, keys[i]);
		h[i] = fnv(d->text + kn_->off, kn_->len);
		uint32_t *p = lookup(s, h, h[i]);
		if (*p) {
			if (same_text(d, keys[*p - 1], d, keys[i]))
				return false; /* not unique */
			/* a hash collision of different keys: too rare to handle, give up */
			return false;
		}
		*p = i + 1;
	}
	return true;
}

/* Longest strictly increasing subsequence of the matched b positions, in a's order. */
static uint32_t lis(const struct diff_alignment *al, uint32_t *tails)
{
	uint32_t len = 0;
	for (uint32_t i = 0; i < al->na; i++) {
		if (!al->ma[i])
			continue;
		uint32_t v = al->ma[i] - 1, lo = 0, hi = len;
		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;
			if (tails[mid] < v)
				lo = mid + 1;
			else
				hi = mid;
		}
		tails[lo] = v;
		if (lo == len)
			len++;
	}
	return len;
}

static bool try_keys(struct diff_alignment *al, struct scratch *s, const struct json_doc *da,
		     const struct json_doc *db)
{
	const struct json_node *first = json_node(da, al->ea[0]);
	if (first->type != JSON_OBJECT)
		return false;
	/* the id-like members of a's first element, best rank first (in member
	 * order within a rank), at most 4 tried */
	uint32_t cand[4];
	int rank[4], nc = 0;
	for (uint32_t c = first->first; c; c = json_node(da, c)->next) {
		const struct json_node *cn = json_node(da, c);
		int r = id_rank(da->text + cn->key_off, cn->key_len);
		if (!r || (nc == 4 && r >= rank[3]))
			continue;
		int at = nc < 4 ? nc++ : 3;
		while (at > 0 && rank[at - 1] > r) {
			cand[at] = cand[at - 1];
			rank[at] = rank[at - 1];
			at--;
		}
		cand[at] = c;
		rank[at] = r;
	}
	for (int ci = 0; ci < nc; ci++) {
		const struct json_node *cn = json_node(da, cand[ci]);
		const uint8_t *k = da->text + cn->key_off;
		if (!side_keys(s, db, al->eb, al->nb, k, cn->key_len, s->kb, s->hb) ||
		    !side_keys(s, da, al->ea, al->na, k, cn->key_len, s->ka, s->ha))
			continue;
		/* the table now holds a's keys: look b's up in it */
		uint32_t matched = 0;
		for (uint32_t j = 0; j < al->nb; j++) {
			uint32_t *p = lookup(s, s->ha, s->hb[j]);
			if (*p && same_text(da, s->ka[*p - 1], db, s->kb[j])) {
				al->ma[*p - 1] = j + 1;
				al->mb[j] = *p;
				matched++;
			}
		}
		if (!matched)
			continue;
		al->how = DIFF_ALIGN_KEY;
		al->kfield = k;
		al->kfield_len = cn->key_len;
		al->matched = matched;
		return true;
	}
	return false;
}

static void by_content(struct diff_alignment *al, struct scratch *s, const struct json_doc *da,
		       const struct json_doc *db, size_t *budget)
{
	for (uint32_t i = 0; i < al->na; i++)
		s->ha[i] = node_hash(da, al->ea[i], budget);
	for (uint32_t j = 0; j < al->nb; j++)
		s->hb[j] = node_hash(db, al->eb[j], budget);
	if (!*budget)
		return; /* hashes of cut walks mean nothing: by position */
	if (al->na == al->nb) {
		uint32_t i = 0;
		while (i < al->na && s->ha[i] == s->hb[i])
			i++;
		if (i == al->na) { /* the usual case: equal in order */
			for (i = 0; i < al->na; i++)
				al->ma[i] = al->mb[i] = i + 1;
			al->matched = al->na;
			al->how = DIFF_ALIGN_CONTENT;
			return;
		}
	}
	/* b's elements by hash: a slot holds the first element of its hash (for
	 * probing), ka[] of that element the next one not yet taken, chain[] the
	 * one after it with the same hash (index + 1, 0 = none) */
	memset(s->slot, 0, (size_t)(s->mask + 1) * sizeof(uint32_t));
	for (uint32_t j = al->nb; j-- > 0;) {
		uint32_t *p = lookup(s, s->hb, s->hb[j]);
		if (!*p) {
			*p = j + 1;
			s->chain[j] = 0;
		} else {
			s->chain[j] = s->ka[*p - 1];
		}
		s->ka[*p - 1] = j + 1;
	}
	uint32_t matched = 0;
	for (uint32_t i = 0; i < al->na; i++) {
		uint32_t *p = lookup(s, s->hb, s->ha[i]);
		if (!*p || !s->ka[*p - 1])
			continue;
		uint32_t j = s->ka[*p - 1] - 1;
		s->ka[*p - 1] = s->chain[j];
		al->ma[i] = j + 1;
		al->mb[j] = i + 1;
		matched++;
	}
	if (matched) {
		al->how = DIFF_ALIGN_CONTENT;
		al->matched = matched;
	}
}

int diff_align(struct diff_alignment *al, const struct json_doc *da, const struct json_doc *db,
	       size_t *budget)
{
	al->how = DIFF_ALIGN_POSITION;
	al->kfield = NULL;
	al->kfield_len = 0;
	al->matched = al->moved = 0;
	memset(al->ma, 0, al->na * sizeof(uint32_t));
	memset(al->mb, 0, al->nb * sizeof(uint32_t));

	if (al->na && al->nb && al->na <= DIFF_ALIGN_MAX && al->nb <= DIFF_ALIGN_MAX && *budget) {
		uint32_t n = al->na > al->nb ? al->na : al->nb;
		uint32_t cap = 8;
		while (cap < 2 * n)
			cap <<= 1;
		uint64_t sh[4 * SMALL];
		uint32_t sk[4 * SMALL + 4 * SMALL + 2 * SMALL + SMALL];
		void *heap = NULL;
		struct scratch s;
		if (n <= SMALL) {
			s.ha = sh;
			s.hb = sh + SMALL;
			s.ka = sk;
			s.kb = sk + SMALL;
			s.slot = sk + 2 * SMALL; /* cap <= 2 * 2 * SMALL */
			s.chain = sk + 6 * SMALL;
			s.tails = sk + 7 * SMALL;
		} else {
			size_t bytes = 2 * (size_t)n * sizeof(uint64_t) + (4 * (size_t)n + cap) * 4;
			heap = mem_alloc(bytes);
			if (!heap)
				return -ENOMEM;
			s.ha = heap;
			s.hb = s.ha + n;
			s.ka = (uint32_t *)(s.hb + n);
			s.kb = s.ka + n;
			s.chain = s.kb + n;
			s.tails = s.chain + n;
			s.slot = s.tails + n;
		}
		s.mask = cap - 1;
		if (!try_keys(al, &s, da, db)) {
			memset(al->ma, 0, al->na * sizeof(uint32_t));
			memset(al->mb, 0, al->nb * sizeof(uint32_t));
			by_content(al, &s, da, db, budget);
		}
		if (al->matched)
			al->moved = al->matched - lis(al, s.tails);
		mem_free(heap);
	}
	if (al->how == DIFF_ALIGN_KEY)
		return 0; /* different identities are different elements */
	/* what is left pairs by position */
	uint32_t x = 0, y = 0;
	for (;;) {
		while (x < al->na && al->ma[x])
			x++;
		while (y < al->nb && al->mb[y])
			y++;
		if (x >= al->na || y >= al->nb)
			break;
		al->ma[x] = y + 1;
		al->mb[y] = x + 1;
	}
	return 0;
}
