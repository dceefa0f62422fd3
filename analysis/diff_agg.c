/* SPDX-License-Identifier: MIT */
/*
 * diff_agg - what the analysis keeps of compared pairs, per candidate:
 * endpoints (counts, latency histograms, the rules that apply), difference
 * groups (counts and a bottom-k sample of examples) and the signature
 * sets of pairs (how many pairs showed each set of groups). Nothing here
 * grows with the number of pairs: it grows with distinct endpoints,
 * groups and sets, within diff_params.max_memory (docs/diff.md "Limits").
 *
 * Every aggregate merges exactly whatever pairs each part saw: counts and
 * histograms add, a bottom-k sample of the union is the bottom k of the
 * parts' samples, signature sets add their counts. The comparing threads
 * (diff_work.c) and the shards of a merge therefore report as one run.
 *
 * Examples are a bottom-k sample by a hash of the session id (Cohen and
 * Kaplan, "Summarizing data using bottom-k sketches", PODC 2007): a
 * uniform sample that is the same for any order in which the pairs come.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "analysis/pb.h"
#include "analysis/tmpl.h"
#include "common/mem.h"

#define DIFF_EP_NAME_MAX 512
#define COMBO_MAX_IDS	 256 /* groups of one pair (at most max_findings) */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

bool diff_mem_take(struct diff_part *pt, size_t n)
{
	struct diff_ctx *c = pt->ctx;
	size_t was = atomic_fetch_add_explicit(&c->mem, n, memory_order_relaxed);
	if (pt->uncapped || was + n <= c->p.max_memory)
		return true;
	atomic_fetch_sub_explicit(&c->mem, n, memory_order_relaxed);
	return false;
}

void diff_mem_give(struct diff_part *pt, size_t n)
{
	atomic_fetch_sub_explicit(&pt->ctx->mem, n, memory_order_relaxed);
}

static void ruleset_build(struct diff_part *pt, struct diff_ruleset *rs, const char *endpoint)
{
	const struct noise_rules *all = pt->ctx->p.rules;
	memset(rs, 0, sizeof(*rs));
	rs->all = all;
	rs->hits = pt->rule_hits;
	if (!all || !all->n)
		return;
	rs->v = mem_calloc(all->n, sizeof(*rs->v));
	if (!rs->v)
		return; /* no rules for this endpoint; counted as a warning */
	for (size_t i = 0; i < all->n; i++) {
		const struct noise_rule *r = &all->v[i];
		if (endpoint ? !noise_rule_applies(r, endpoint) : r->scope != NULL)
			continue;
		rs->v[rs->n++] = r;
		switch (r->kind) {
		case NOISE_IGNORE_PATH:
		case NOISE_TOLERANCE:
		case NOISE_UNORDERED:
		case NOISE_KEYED:
			rs->has_path_rules = true;
			break;
		case NOISE_MASK_BODY:
			rs->has_body_masks = true;
			break;
		case NOISE_IGNORE_STATUS:
			rs->ignore_status = true;
			break;
		default:
			break;
		}
	}
}

struct diff_cand *diff_cand_new(const char *role, size_t rlen, bool secondary)
{
	struct diff_cand *v = mem_calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->secondary = secondary;
	v->role = secondary ? mem_strdup("secondary") : mem_strndup(role, rlen);
	v->ep_buckets = 64;
	v->ep_hash = mem_calloc(v->ep_buckets, sizeof(uint32_t));
	v->gr_buckets = 256;
	v->gr_hash = mem_calloc(v->gr_buckets, sizeof(uint32_t));
	v->combos.spill_fd = -1;
	if (!v->role || !v->ep_hash || !v->gr_hash) {
		diff_cand_free(v);
		return NULL;
	}
	return v;
}

static void example_free(struct diff_example *x)
{
	mem_free(x->request);
	mem_free(x->primary);
	mem_free(x->candidate);
}

void diff_cand_free(struct diff_cand *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_ep; i++) {
		mem_free(v->ep[i].name);
		diff_hist_release(&v->ep[i].lat_p);
		diff_hist_release(&v->ep[i].lat_c);
		mem_free(v->ep[i].rs.v);
	}
	mem_free(v->ep);
	mem_free(v->ep_hash);
	for (size_t i = 0; i < v->n_gr; i++) {
		mem_free(v->gr[i].location);
		mem_free(v->gr[i].tr);
		for (size_t k = 0; k < v->gr[i].n_ex; k++)
			example_free(&v->gr[i].ex[k]);
		mem_free(v->gr[i].ex);
	}
	mem_free(v->gr);
	mem_free(v->gr_hash);
	mem_free(v->combos.t);
	mem_free(v->combos.ids);
	if (v->combos.spill_fd >= 0)
		close(v->combos.spill_fd);
	diff_hist_release(&v->all_p);
	diff_hist_release(&v->all_c);
	diff_causes_free(v->roots);
	mem_free(v->role);
	mem_free(v->target);
	mem_free(v);
}

/* Most entries of an endpoint or group array: indices are uint32_t and the
 * hash chains keep them + 1. */
#define AGG_IDX_MAX (UINT32_MAX - 1)

/*
 * Grow array *v of *cap elements of @p size to hold n + 1. Only memory
 * (--max-memory) and the index range limit it: --max-groups and
 * --max-endpoints count entries, not room (endpoint_get, group_new), so
 * the room an overflow entry makes is never taken by a capped one.
 */
static int grow(struct diff_part *pt, void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	if (n >= AGG_IDX_MAX)
		return -ENOSPC;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > AGG_IDX_MAX)
		ncap = AGG_IDX_MAX;
	if (!diff_mem_take(pt, (ncap - *cap) * size))
		return -ENOSPC;
	void *nv = mem_realloc(*v, ncap * size);
	if (!nv) {
		diff_mem_give(pt, (ncap - *cap) * size);
		return -ENOMEM;
	}
	*v = nv;
	*cap = ncap;
	return 0;
}

static int rehash(uint32_t **buckets, size_t *nb, size_t n, void *arr, size_t elsize,
		  size_t hash_off, size_t next_off)
{
	if (n < *nb)
		return 0;
	size_t nnb = *nb * 2;
	uint32_t *b = mem_calloc(nnb, sizeof(uint32_t));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *el = (char *)arr + i * elsize;
		uint64_t h = *(uint64_t *)(void *)(el + hash_off);
		uint32_t *next = (uint32_t *)(void *)(el + next_off);
		*next = b[h & (nnb - 1)];
		b[h & (nnb - 1)] = (uint32_t)(i + 1);
	}
	mem_free(*buckets);
	*buckets = b;
	*nb = nnb;
	return 0;
}

/* Endpoint @p name of @p v, made when new; @p force makes it past the
 * caps: the overflow endpoint, not one of --max-endpoints (its memory is
 * still counted). */
static int endpoint_get(struct diff_part *pt, struct diff_cand *v, const char *name, size_t n,
			uint32_t *out, bool force)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ull, name, n);
	for (uint32_t i = v->ep_hash[h & (v->ep_buckets - 1)]; i; i = v->ep[i - 1].hnext) {
		struct diff_endpoint *e = &v->ep[i - 1];
		if (e->hash == h && strlen(e->name) == n && !memcmp(e->name, name, n)) {
			*out = i - 1;
			return 0;
		}
	}
	if (!force && v->n_ep_capped >= pt->ctx->p.max_endpoints) {
		v->caps_hit |= DIFF_CAP_ENDPOINTS;
		return -ENOSPC;
	}
	bool was = pt->uncapped;
	pt->uncapped |= force;
	int rc = grow(pt, (void **)&v->ep, &v->cap_ep, v->n_ep, sizeof(*v->ep));
	if (!rc && !diff_mem_take(pt, n + 1 + sizeof(uint32_t)))
		rc = -ENOSPC;
	pt->uncapped = was;
	if (rc == -ENOSPC)
		v->caps_hit |= DIFF_CAP_MEMORY;
	if (rc)
		return rc;
	struct diff_endpoint *e = &v->ep[v->n_ep];
	memset(e, 0, sizeof(*e));
	e->name = mem_strndup(name, n);
	if (!e->name)
		return -ENOMEM;
	e->hash = h;
	ruleset_build(pt, &e->rs, e->name);
	e->hnext = v->ep_hash[h & (v->ep_buckets - 1)];
	v->ep_hash[h & (v->ep_buckets - 1)] = (uint32_t)(v->n_ep + 1);
	*out = (uint32_t)v->n_ep++;
	if (!force)
		v->n_ep_capped++;
	return rehash(&v->ep_hash, &v->ep_buckets, v->n_ep, v->ep, sizeof(*v->ep),
		      offsetof(struct diff_endpoint, hash), offsetof(struct diff_endpoint, hnext));
}

int diff_endpoint_get(struct diff_part *pt, struct diff_cand *v, const char *name, size_t n,
		      uint32_t *out, uint64_t weight)
{
	bool over = n == strlen(DIFF_EP_OVER) && !memcmp(name, DIFF_EP_OVER, n);
	int rc = endpoint_get(pt, v, name, n, out, over);
	if (rc != -ENOSPC || over)
		return rc;
	/* Over a cap: counted (a loss), and compared all the same under the
	 * candidate's overflow endpoint. */
	v->endpoints_dropped += weight;
	v->sum.over_memcap += weight;
	rc = endpoint_get(pt, v, DIFF_EP_OVER, strlen(DIFF_EP_OVER), out, true);
	return rc ? rc : 1;
}

long diff_endpoint_find(const struct diff_cand *v, const char *name)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ull, name, strlen(name));
	for (uint32_t i = v->ep_hash[h & (v->ep_buckets - 1)]; i; i = v->ep[i - 1].hnext)
		if (v->ep[i - 1].hash == h && !strcmp(v->ep[i - 1].name, name))
			return (long)i - 1;
	return -1;
}

static uint64_t group_hash(uint32_t ep, uint8_t kind, const char *loc, const char *tr)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ull, &ep, sizeof(ep));
	h = hash_bytes(h, &kind, 1);
	h = hash_bytes(h, loc, strlen(loc));
	if (tr && *tr) {
		h = hash_bytes(h, "", 1);
		h = hash_bytes(h, tr, strlen(tr));
	}
	return h;
}

static bool same_tr(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

const struct diff_group *diff_group_find(const struct diff_cand *v, uint32_t ep, uint8_t kind,
					 const char *loc, const char *tr)
{
	uint64_t h = group_hash(ep, kind, loc, tr);
	for (uint32_t i = v->gr_hash[h & (v->gr_buckets - 1)]; i; i = v->gr[i - 1].hnext) {
		const struct diff_group *g = &v->gr[i - 1];
		if (g->hash == h && g->endpoint == ep && g->kind == kind &&
		    !strcmp(g->location, loc) && same_tr(g->tr, tr))
			return g;
	}
	return NULL;
}

static int group_new(struct diff_part *pt, struct diff_cand *v, uint32_t ep, uint8_t kind,
		     const char *loc, const char *tr, uint32_t *out, bool force)
{
	const struct diff_group *f = diff_group_find(v, ep, kind, loc, tr);
	if (f) {
		*out = (uint32_t)(f - v->gr);
		return 0;
	}
	uint64_t h = group_hash(ep, kind, loc, tr);
	size_t ll = strlen(loc), tl = tr && *tr ? strlen(tr) + 1 : 0;
	if (!force && v->n_gr_capped >= pt->ctx->p.max_groups) {
		v->caps_hit |= DIFF_CAP_GROUPS;
		return -ENOSPC;
	}
	bool was = pt->uncapped;
	pt->uncapped |= force;
	int rc = grow(pt, (void **)&v->gr, &v->cap_gr, v->n_gr, sizeof(*v->gr));
	if (!rc && !diff_mem_take(pt, ll + 1 + tl + sizeof(uint32_t)))
		rc = -ENOSPC;
	pt->uncapped = was;
	if (rc == -ENOSPC)
		v->caps_hit |= DIFF_CAP_MEMORY;
	if (rc)
		return rc;
	struct diff_group *g = &v->gr[v->n_gr];
	memset(g, 0, sizeof(*g));
	g->location = mem_strndup(loc, ll);
	g->tr = tl ? mem_strdup(tr) : NULL;
	if (!g->location || (tl && !g->tr)) {
		mem_free(g->location);
		mem_free(g->tr);
		return -ENOMEM;
	}
	g->endpoint = ep;
	g->kind = kind;
	g->hash = h;
	g->hnext = v->gr_hash[h & (v->gr_buckets - 1)];
	v->gr_hash[h & (v->gr_buckets - 1)] = (uint32_t)(v->n_gr + 1);
	*out = (uint32_t)v->n_gr++;
	if (!force)
		v->n_gr_capped++;
	return rehash(&v->gr_hash, &v->gr_buckets, v->n_gr, v->gr, sizeof(*v->gr),
		      offsetof(struct diff_group, hash), offsetof(struct diff_group, hnext));
}

/* Group (ep, kind, loc, tr) of @p v: 0; over a cap, counted (@p weight
 * differences, a loss) and the endpoint's overflow group of that kind
 * instead (no transition), so the pair still counts as differing (and a
 * status change as one): 1, as for the overflow group itself; -ENOMEM. */
static int group_get(struct diff_part *pt, struct diff_cand *v, uint32_t ep, uint8_t kind,
		     const char *loc, const char *tr, uint32_t *out, uint64_t weight)
{
	bool over = !strcmp(loc, DIFF_LOC_OVER); /* merging an overflow group */
	int rc = group_new(pt, v, ep, kind, loc, over ? NULL : tr, out, over);
	if (rc != -ENOSPC || over)
		return rc ? rc : over;
	v->groups_dropped += weight;
	v->sum.over_memcap += weight;
	rc = group_new(pt, v, ep, kind, DIFF_LOC_OVER, NULL, out, true);
	return rc ? rc : 1;
}

/* Note the pattern of a candidate's change @p f in group @p g: whether all
 * its changes showed one (diff_group_pattern). */
static void note_pattern(struct diff_group *g, const struct diff_finding *f)
{
	if (g->pmixed)
		return;
	uint64_t h = diff_finding_pattern_hash(f->kind, f->loc, f->pval, f->cval);
	if (!g->phash)
		g->phash = h;
	else if (h != g->phash)
		g->pmixed = true;
}

void diff_cand_rehash(struct diff_cand *v)
{
	memset(v->ep_hash, 0, v->ep_buckets * sizeof(uint32_t));
	for (size_t i = 0; i < v->n_ep; i++) {
		uint32_t bk = (uint32_t)(v->ep[i].hash & (v->ep_buckets - 1));
		v->ep[i].hnext = v->ep_hash[bk];
		v->ep_hash[bk] = (uint32_t)(i + 1);
	}
	memset(v->epc, 0, sizeof(v->epc));
	/* group hashes include the endpoint index */
	memset(v->gr_hash, 0, v->gr_buckets * sizeof(uint32_t));
	for (size_t i = 0; i < v->n_gr; i++) {
		struct diff_group *g = &v->gr[i];
		g->hash = group_hash(g->endpoint, g->kind, g->location, g->tr);
		uint32_t bk = (uint32_t)(g->hash & (v->gr_buckets - 1));
		g->hnext = v->gr_hash[bk];
		v->gr_hash[bk] = (uint32_t)(i + 1);
	}
}

int diff_endpoint_of(struct diff_part *pt, struct diff_cand *v, const struct store_session *s,
		     uint32_t *ep)
{
	char name[DIFF_EP_NAME_MAX];
	size_t n;
	struct diff_ep_cache *ce = NULL;
	if (s->req.present && s->req.method.len) {
		/* the path without its query decides the template */
		const uint8_t *t = s->req.target.ptr;
		size_t tl = s->req.target.len, ml = s->req.method.len;
		const uint8_t *q = tl ? memchr(t, '?', tl) : NULL;
		if (q)
			tl = (size_t)(q - t);
		if (ml + 1 + tl <= DIFF_EP_CACHE_KEY) {
			uint64_t h = hash_bytes(0xcbf29ce484222325ull, s->req.method.ptr, ml);
			h = hash_bytes(h, t, tl);
			ce = &v->epc[h % DIFF_EP_CACHE];
			if (ce->ep && ce->h == h && ce->len == ml + 1 + tl &&
			    !memcmp(ce->key, s->req.method.ptr, ml) &&
			    (!tl || !memcmp(ce->key + ml + 1, t, tl))) {
				*ep = ce->ep - 1;
				return 0;
			}
			ce->ep = 0;
			ce->h = h;
			ce->len = (uint16_t)(ml + 1 + tl);
			memcpy(ce->key, s->req.method.ptr, ml);
			ce->key[ml] = ' ';
			if (tl)
				memcpy(ce->key + ml + 1, t, tl);
		}
	}
	if (s->req.present && s->req.method.len)
		n = tmpl_endpoint((const char *)s->req.method.ptr, s->req.method.len,
				  (const char *)s->req.target.ptr, s->req.target.len, name,
				  sizeof(name));
	else
		n = (size_t)snprintf(name, sizeof(name), "(no request)");
	int rc = diff_endpoint_get(pt, v, name, n, ep, 1);
	if (!rc && ce)
		ce->ep = *ep + 1; /* not the overflow endpoint: each pair is counted */
	return rc < 0 ? rc : 0;
}

/* ---- examples ---- */

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == 0)
			return false;
	return true;
}

/* Header lines of a rendered message: at most this many bytes of them. */
#define EX_HEADERS_MAX 4096

/* The header fields of @p m, then its trailer fields (HTTP/2, chunked
 * HTTP/1.1: gRPC's grpc-status) after a line "[trailers]": diff compares
 * them as one set, so they are shown with the head. */
static void render_headers(struct dbuf *b, const struct store_message *m)
{
	size_t start = b->len;
	size_t nh = m->n_headers < DIFF_MAX_HDRS ? m->n_headers : DIFF_MAX_HDRS;
	size_t nt = m->n_trailers < DIFF_MAX_HDRS ? m->n_trailers : DIFF_MAX_HDRS;
	for (size_t i = 0; i < nh + nt; i++) {
		const struct store_header *h = i < nh ? &m->headers[i] : &m->trailers[i - nh];
		char lname[128], val[1024];
		if (b->len - start >= EX_HEADERS_MAX) {
			dbuf_printf(b, "[... %zu more header lines]\n", nh + nt - i);
			break;
		}
		if (i == nh)
			dbuf_puts(b, "[trailers]\n");
		size_t ln = h->name.len < sizeof(lname) - 1 ? h->name.len : sizeof(lname) - 1;
		for (size_t k = 0; k < ln; k++)
			lname[k] =
			    (char)(h->name.ptr[k] |
				   (h->name.ptr[k] >= 'A' && h->name.ptr[k] <= 'Z' ? 0x20 : 0));
		lname[ln] = '\0';
		diff_mask_header_value(lname, ln, h->value.ptr, h->value.len, val, sizeof(val));
		dbuf_append(b, h->name.ptr, ln);
		dbuf_puts(b, ": ");
		dbuf_puts(b, val);
		dbuf_putc(b, '\n');
	}
}

static int render_inflate(void *ctx, const char *enc, size_t enclen, const uint8_t *in, size_t n,
			  struct dbuf *out)
{
	return diff_decode(enc, enclen, in, n, out, ctx);
}

/* A gRPC body's messages as the JSON diff compared (analysis/pb.h; names
 * from --proto for method @p path), into @p out. false when it is not
 * gRPC or does not decode (then it is shown as bytes). */
static bool render_grpc(const struct diff_params *p, const struct store_message *m,
			const struct store_slice *path, bool req, struct dbuf *out)
{
	const struct store_header *ct = diff_find_header(m, "content-type");
	if (!m->body.len || !ct || !pb_is_grpc_type((const char *)ct->value.ptr, ct->value.len))
		return false;
	const struct pb_type *t = p->proto && path && path->len
				      ? pb_schema_method(p->proto, path->ptr, path->len, !req)
				      : NULL;
	const struct store_header *enc = diff_find_header(m, "grpc-encoding");
	struct dbuf tmp, dec;
	dbuf_init(&tmp, p->max_body);
	dbuf_init(&dec, p->max_body);
	int rc = pb_grpc_to_json(out, m->body.ptr, m->body.len, t,
				 enc ? (const char *)enc->value.ptr : NULL,
				 enc ? enc->value.len : 0, render_inflate, &tmp, &dec);
	dbuf_release(&tmp);
	dbuf_release(&dec);
	return !rc && out->len;
}

static void render_body(const struct diff_params *p, struct dbuf *b, const struct store_message *m,
			const struct store_slice *path, bool req)
{
	const uint8_t *d = m->body.ptr;
	size_t n = m->body.len;
	struct dbuf dec, tmp;
	dbuf_init(&dec, p->max_body);
	dbuf_init(&tmp, p->max_body);
	const struct store_header *enc = diff_find_header(m, "content-encoding");
	if (!m->truncated && render_grpc(p, m, path, req, &dec)) {
		d = dec.data;
		n = dec.len;
	} else if (enc && n &&
		   !diff_decode((const char *)enc->value.ptr, enc->value.len, d, n, &dec, &tmp)) {
		d = dec.data;
		n = dec.len;
		dbuf_printf(b, "[decoded from %.*s]\n",
			    (int)(enc->value.len > 32 ? 32 : enc->value.len),
			    (const char *)enc->value.ptr);
	}
	if (n && !printable(d, n)) {
		dbuf_printf(b, "[%zu bytes of binary data]", n);
	} else if (n) {
		size_t k = n < p->max_example ? n : p->max_example;
		dbuf_append(b, d, k);
		if (k < n)
			dbuf_printf(b, "\n[... %zu more bytes]", n - k);
	}
	if (m->truncated)
		dbuf_printf(b, "\n[body truncated at record time: %llu of %llu bytes kept]",
			    (unsigned long long)m->body.len, (unsigned long long)m->body_len);
	dbuf_release(&dec);
	dbuf_release(&tmp);
}

static char *render_msg(const struct diff_params *p, const struct store_message *m, bool req,
			const struct store_slice *path, size_t *len)
{
	struct dbuf b;
	dbuf_init(&b, p->max_example * 2 + EX_HEADERS_MAX + 4096);
	if (req)
		dbuf_printf(
		    &b, "%.*s %.*s HTTP/%u.%u\n", (int)(m->method.len > 64 ? 64 : m->method.len),
		    (const char *)m->method.ptr, (int)(m->target.len > 2048 ? 2048 : m->target.len),
		    (const char *)m->target.ptr, m->version_major, m->version_minor);
	else
		dbuf_printf(&b, "HTTP/%u.%u %u %.*s\n", m->version_major, m->version_minor,
			    m->status, (int)(m->reason.len > 256 ? 256 : m->reason.len),
			    (const char *)m->reason.ptr);
	render_headers(&b, m);
	dbuf_putc(&b, '\n');
	render_body(p, &b, m, path, req);
	size_t n = 0;
	char *s = (char *)dbuf_detach(&b, &n);
	*len = s ? n + 1 : 1;
	return s ? s : mem_strdup("");
}

/* A deterministic order of sessions for choosing examples: the same pairs
 * give the same examples whatever order they come in (a merge of shards
 * or threads equals the one-thread run), and a stream in any order
 * replaces an example O(k log n) times on average. */
static uint64_t example_key(uint64_t id)
{
	uint64_t x = id + 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static bool ex_before(uint64_t ka, uint64_t ida, uint64_t kb, uint64_t idb)
{
	return ka < kb || (ka == kb && ida < idb);
}

/* Where an example of (key, id) goes in @p g's sample, or -1: not kept. */
static int ex_slot(const struct diff_group *g, uint32_t k, uint64_t key, uint64_t id)
{
	int pos = g->n_ex;
	while (pos > 0 && ex_before(key, id, g->ex[pos - 1].key, g->ex[pos - 1].session_id))
		pos--;
	if (pos > 0 && g->ex[pos - 1].key == key && g->ex[pos - 1].session_id == id)
		return -1; /* the same session again (another result of it) */
	return (uint32_t)pos < k ? pos : -1;
}

/* Put example @p x at @p pos of @p g's sample of at most @p k (the one
 * pushed out, if any, is freed). */
static void ex_insert(struct diff_part *pt, struct diff_group *g, uint32_t k, int pos,
		      struct diff_example *x)
{
	if (g->n_ex == k) {
		diff_mem_give(pt, g->ex[k - 1].bytes);
		example_free(&g->ex[k - 1]);
		g->n_ex--;
	}
	memmove(&g->ex[pos + 1], &g->ex[pos], (g->n_ex - (size_t)pos) * sizeof(*g->ex));
	g->ex[pos] = *x;
	g->n_ex++;
}

static void keep_example(struct diff_part *pt, struct diff_cand *v, struct diff_group *g,
			 const struct store_session *s, const struct store_result *r,
			 const struct diff_finding *f)
{
	const struct diff_params *p = &pt->ctx->p;
	uint32_t k = p->examples;
	uint64_t key = example_key(s->id);
	int pos = ex_slot(g, k, key, s->id);
	if (pos < 0)
		return;
	if (!g->ex) {
		if (!diff_mem_take(pt, k * sizeof(*g->ex))) {
			v->examples_not_kept++;
			return;
		}
		g->ex = mem_calloc(k, sizeof(*g->ex));
		if (!g->ex) {
			diff_mem_give(pt, k * sizeof(*g->ex));
			v->examples_not_kept++;
			return;
		}
	}
	struct diff_example x;
	memset(&x, 0, sizeof(x));
	x.session_id = s->id;
	x.key = key;
	size_t a, b, c;
	x.request = render_msg(p, &s->req, true, &s->req.target, &a);
	x.primary = render_msg(p, &s->resp, false, &s->req.target, &b);
	if (store_result_grpc_deadline(r)) { /* no answer to show: what ended it */
		int m = (int)(r->error_msg.len > 512 ? 512 : r->error_msg.len);
		c = (size_t)m + 64;
		x.candidate = mem_alloc(c);
		if (x.candidate)
			snprintf(x.candidate, c, "(ended by the replay, as a gRPC client: %.*s)\n",
				 m, (const char *)r->error_msg.ptr);
	} else {
		x.candidate = render_msg(p, &r->resp, false, &s->req.target, &c);
	}
	x.bytes = a + b + c;
	memcpy(x.iloc, f->iloc, sizeof(x.iloc));
	memcpy(x.pval, f->pval, sizeof(x.pval));
	memcpy(x.cval, f->cval, sizeof(x.cval));
	if (!x.request || !x.primary || !x.candidate || !diff_mem_take(pt, x.bytes)) {
		example_free(&x); /* keep the ones we had */
		v->examples_not_kept++;
		return;
	}
	ex_insert(pt, g, k, pos, &x);
}

/* ---- signature sets ---- */

static uint64_t combo_hash(const uint32_t *ids, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	for (size_t i = 0; i < n; i++) {
		h ^= ids[i];
		h *= 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return h ? h : 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* A temporary file for signature sets that find no room in memory
 * ($TMPDIR, else /tmp; unlinked at once). -errno when none can be made. */
static int spill_open(struct diff_combos *cb)
{
	if (cb->spill_fd >= 0)
		return 0;
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/dyetap-diff-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	unlink(path);
	cb->spill_fd = fd;
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Spill record: u32 n, u32 ids[n] (count 1). */
static int spill_one(struct diff_combos *cb, const uint32_t *ids, uint32_t n)
{
	int rc = spill_open(cb);
	if (!rc)
		rc = write_all(cb->spill_fd, &n, sizeof(n));
	if (!rc)
		rc = write_all(cb->spill_fd, ids, n * sizeof(*ids));
	if (!rc)
		cb->spilled++;
	return rc;
}

static struct diff_combo *combo_slot(struct diff_combos *cb, const uint32_t *ids, size_t n,
				     uint64_t h)
{
	for (size_t i = h & (cb->cap - 1);; i = (i + 1) & (cb->cap - 1)) {
		struct diff_combo *e = &cb->t[i];
		if (!e->n ||
		    (e->hash == h && e->n == n && !memcmp(cb->ids + e->off, ids, n * sizeof(*ids))))
			return e;
	}
}

static int combo_grow(struct diff_part *pt, struct diff_combos *cb)
{
	size_t ncap = cb->cap ? cb->cap * 2 : 64;
	if (!diff_mem_take(pt, ncap * sizeof(*cb->t)))
		return -ENOSPC;
	struct diff_combo *nt = mem_calloc(ncap, sizeof(*nt));
	if (!nt) {
		diff_mem_give(pt, ncap * sizeof(*cb->t));
		return -ENOMEM;
	}
	for (size_t i = 0; i < cb->cap; i++) {
		struct diff_combo *e = &cb->t[i];
		if (!e->n)
			continue;
		size_t j = e->hash & (ncap - 1);
		while (nt[j].n)
			j = (j + 1) & (ncap - 1);
		nt[j] = *e;
	}
	diff_mem_give(pt, cb->cap * sizeof(*cb->t));
	mem_free(cb->t);
	cb->t = nt;
	cb->cap = ncap;
	return 0;
}

/* Count one more pair (or @p count) with group set @p ids[0..n) (sorted). */
static int combo_add(struct diff_part *pt, struct diff_combos *cb, const uint32_t *ids, size_t n,
		     uint64_t count)
{
	uint64_t h = combo_hash(ids, n);
	if (cb->cap) {
		struct diff_combo *e = combo_slot(cb, ids, n, h);
		if (e->n) {
			e->count += count;
			return 0;
		}
	}
	int rc = 0;
	if (cb->n + 1 > cb->cap / 2)
		rc = combo_grow(pt, cb);
	if (!rc && cb->n_ids + n > cb->cap_ids) {
		size_t ncap = cb->cap_ids ? cb->cap_ids * 2 : 256;
		while (ncap < cb->n_ids + n)
			ncap *= 2;
		if (!diff_mem_take(pt, (ncap - cb->cap_ids) * sizeof(uint32_t))) {
			rc = -ENOSPC;
		} else {
			uint32_t *ni = mem_realloc(cb->ids, ncap * sizeof(uint32_t));
			if (!ni) {
				diff_mem_give(pt, (ncap - cb->cap_ids) * sizeof(uint32_t));
				rc = -ENOMEM;
			} else {
				cb->ids = ni;
				cb->cap_ids = ncap;
			}
		}
	}
	if (rc == -ENOSPC || (rc == -ENOMEM && cb->cap)) {
		/* no room: on disk, read back at the end (exact either way) */
		for (uint64_t i = 0; i < count; i++)
			if ((rc = spill_one(cb, ids, (uint32_t)n)))
				return rc;
		return 0;
	}
	if (rc)
		return rc;
	struct diff_combo *e = combo_slot(cb, ids, n, h);
	e->hash = h;
	e->count = count;
	e->off = (uint32_t)cb->n_ids;
	e->n = (uint16_t)n;
	memcpy(cb->ids + cb->n_ids, ids, n * sizeof(*ids));
	cb->n_ids += n;
	cb->n++;
	return 0;
}

/* ---- one compared pair ---- */

/* The authority (host[:port]) of URL @p u ("http://127.0.0.1:8081/x"):
 * what lies between "://" and the next '/'; empty when none. */
static struct store_slice url_authority(const struct store_slice *u)
{
	const uint8_t *p = u->ptr, *end = u->ptr + u->len;
	for (; p + 3 <= end; p++)
		if (p[0] == ':' && p[1] == '/' && p[2] == '/')
			break;
	if (!u->len || p + 3 > end)
		return (struct store_slice){0};
	p += 3;
	const uint8_t *q = p;
	while (q < end && *q != '/' && *q != '?' && *q != '#')
		q++;
	return (struct store_slice){p, (size_t)(q - p)};
}

/* grpc-status and grpc-message fields of a view (deadline_view) */
static bool grpc_status_field(const struct store_header *h)
{
	return (h->name.len == 11 && !strncasecmp((const char *)h->name.ptr, "grpc-status", 11)) ||
	       (h->name.len == 12 && !strncasecmp((const char *)h->name.ptr, "grpc-message", 12));
}

#define DEADLINE_VIEW_FIELDS 64

/*
 * What a gRPC client had from a call the replay ended at its deadline
 * (store_result_grpc_deadline): status DEADLINE_EXCEEDED, code 4, with
 * the message gRPC's clients give it, "Deadline Exceeded", and no message
 * (gRPC's doc/statuscodes.md). Compared against the primary's answer it
 * is built on (its fields, grpc-status and grpc-message replaced where the
 * primary has them: trailers, or a Trailers-Only header block), it is one
 * status change at grpc-status, or none when the primary's call ended so
 * too. @p f holds the fields of the block it replaces. false when that
 * block has more fields than fit.
 */
static bool deadline_view(const struct store_message *prim, struct store_message *out,
			  struct store_header *f)
{
	static const struct store_header st[2] = {
	    {{(const uint8_t *)"grpc-status", 11}, {(const uint8_t *)"4", 1}},
	    {{(const uint8_t *)"grpc-message", 12}, {(const uint8_t *)"Deadline Exceeded", 17}}};
	*out = *prim;
	out->body = (struct store_slice){(const uint8_t *)"", 0};
	out->body_len = 0;
	out->truncated = false;
	bool in_headers = !prim->n_trailers; /* Trailers-Only, or no gRPC status at all */
	const struct store_header *src = in_headers ? prim->headers : prim->trailers;
	size_t n = in_headers ? prim->n_headers : prim->n_trailers, k = 0;
	if (!in_headers || diff_find_header(prim, "grpc-status")) {
		for (size_t i = 0; i < n; i++) {
			if (grpc_status_field(&src[i]))
				continue;
			if (k == DEADLINE_VIEW_FIELDS - 2)
				return false;
			f[k++] = src[i];
		}
	} else { /* no grpc-status: the status goes in trailers */
		in_headers = false;
	}
	f[k++] = st[0];
	f[k++] = st[1];
	if (in_headers) {
		out->headers = f;
		out->n_headers = k;
	} else {
		out->trailers = f;
		out->n_trailers = k;
	}
	return true;
}

int diff_part_compare(struct diff_part *pt, struct diff_cand *v, const struct store_session *s,
		      const struct store_result *r)
{
	struct diff_ctx *c = pt->ctx;
	struct diff_engine *eng = pt->eng;
	bool cand = !v->secondary;
	uint32_t ep;
	int rc = diff_endpoint_of(pt, v, s, &ep);
	if (rc)
		return rc == -ENOSPC ? (v->sum.over_memcap++, v->caps_hit |= DIFF_CAP_MEMORY, 0)
				     : rc;
	struct diff_endpoint *e = &v->ep[ep];
	eng->req = &s->req; /* gRPC: the method names the message type */
	/* the authority the client addressed and the one the replay did */
	const struct store_header *host = diff_find_header(&s->req, ":authority");
	if (!host)
		host = diff_find_header(&s->req, "host");
	eng->auth_p = host ? host->value : (struct store_slice){0};
	eng->auth_c = url_authority(&r->target);
	const struct store_message *cm = &r->resp;
	struct store_message dv;
	struct store_header dvf[DEADLINE_VIEW_FIELDS];
	if (store_result_grpc_deadline(r)) {
		if (!deadline_view(&s->resp, &dv, dvf)) { /* 62 trailers: not compared */
			if (cand) {
				e->errors++;
				v->sum.replay_errors++;
				v->errors_by_kind[STORE_ERR_TIMEOUT]++;
			}
			return 0;
		}
		cm = &dv;
	}
	rc = diff_engine_compare(eng, &e->rs, &s->resp, cm);
	if (rc)
		return rc;
	uint32_t ids[COMBO_MAX_IDS];
	size_t nid = 0;
	for (uint32_t i = 0; i < eng->nf; i++) {
		const struct diff_finding *f = &eng->f[i];
		uint32_t gi;
		char tr[2 * DIFF_VAL_MAX + 8];
		diff_finding_transition(f->kind, f->loc, f->pval, f->cval, tr, sizeof(tr));
		rc = group_get(pt, v, ep, f->kind, f->loc, tr, &gi, 1);
		if (rc < 0)
			return rc;
		struct diff_group *g = &v->gr[gi];
		if (cand)
			note_pattern(g, f);
		bool dup = false;
		for (size_t k = 0; k < nid && !dup; k++)
			dup = ids[k] == gi;
		if (dup && rc == 1) {
			/* an overflow group counts each difference of groups_over_cap
			 * (the groups they stand for are several), so a merge of
			 * threads, which adds its groups' counts, gives the same */
			if (cand)
				g->count++;
			else
				g->sec++;
			continue;
		}
		if (dup || nid == COMBO_MAX_IDS)
			continue;
		ids[nid++] = gi;
		if (!cand) {
			g->sec++;
			continue;
		}
		g->count++;
		if (f->vol)
			g->vol++;
		keep_example(pt, v, g, s, r, f);
	}
	e = &v->ep[ep];
	if (!cand) {
		e->sec_pairs++;
		v->sum.secondary_pairs++;
		return 0;
	}
	e->pairs++;
	v->sum.compared++;
	size_t grown = 0;
	if (s->ts_resp_last_ns > s->ts_req_first_ns && s->ts_req_first_ns > 0)
		grown += diff_hist_add(&e->lat_p,
				       (uint64_t)s->ts_resp_last_ns - (uint64_t)s->ts_req_first_ns);
	if (r->latency_ns)
		grown += diff_hist_add(&e->lat_c, r->latency_ns);
	if (grown && !pt->uncapped)
		atomic_fetch_add_explicit(&c->mem, grown, memory_order_relaxed);
	if (!nid)
		return 0;
	qsort(ids, nid, sizeof(ids[0]), cmp_u32);
	return combo_add(pt, &v->combos, ids, nid, 1);
}

/* ---- merge ---- */

/* Merge @p src's sample of examples into @p dst's (a bottom-k of both). */
static void merge_examples(struct diff_part *pt, struct diff_cand *dv, struct diff_group *dst,
			   struct diff_group *src)
{
	uint32_t k = pt->ctx->p.examples;
	for (size_t i = 0; i < src->n_ex; i++) {
		struct diff_example *x = &src->ex[i];
		int pos = ex_slot(dst, k, x->key, x->session_id);
		if (pos >= 0 && !dst->ex) {
			dst->ex = mem_calloc(k, sizeof(*dst->ex));
			if (dst->ex)
				diff_mem_take(pt, k * sizeof(*dst->ex));
		}
		if (pos < 0 || !dst->ex) {
			if (pos >= 0)
				dv->examples_not_kept++;
			diff_mem_give(pt, x->bytes);
			example_free(x);
			continue;
		}
		ex_insert(pt, dst, k, pos, x); /* moves its memory over */
	}
	if (src->ex)
		diff_mem_give(pt, k * sizeof(*src->ex));
	mem_free(src->ex);
	src->ex = NULL;
	src->n_ex = 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Each spilled set of @p cb, in order: fn(arg, ids, n). */
static int spill_each(struct diff_combos *cb, int (*fn)(void *arg, uint32_t *ids, uint32_t n),
		      void *arg)
{
	if (cb->spill_fd < 0)
		return 0;
	if (lseek(cb->spill_fd, 0, SEEK_SET) < 0)
		return -EIO;
	uint32_t ids[COMBO_MAX_IDS];
	for (uint64_t i = 0; i < cb->spilled; i++) {
		uint32_t n;
		int rc = read_all(cb->spill_fd, &n, sizeof(n));
		if (!rc && (n == 0 || n > COMBO_MAX_IDS))
			rc = -EIO;
		if (!rc)
			rc = read_all(cb->spill_fd, ids, n * sizeof(uint32_t));
		if (!rc)
			rc = fn(arg, ids, n);
		if (rc)
			return rc;
	}
	return 0;
}

struct remap {
	struct diff_part *pt;
	struct diff_cand *dst;
	const uint32_t *map; /* src group -> dst group */
};

static int remap_add(struct remap *m, const uint32_t *ids, size_t n, uint64_t count)
{
	uint32_t t[COMBO_MAX_IDS];
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (m->map[ids[i]] != UINT32_MAX)
			t[k++] = m->map[ids[i]];
	if (!k)
		return 0;
	qsort(t, k, sizeof(t[0]), cmp_u32);
	return combo_add(m->pt, &m->dst->combos, t, k, count);
}

static int remap_spilled(void *arg, uint32_t *ids, uint32_t n)
{
	return remap_add(arg, ids, n, 1);
}

int diff_cand_merge(struct diff_part *pt, struct diff_cand *dst, struct diff_cand *src)
{
	uint32_t *epmap = mem_alloc((src->n_ep ? src->n_ep : 1) * sizeof(uint32_t));
	uint32_t *grmap = mem_alloc((src->n_gr ? src->n_gr : 1) * sizeof(uint32_t));
	int rc = epmap && grmap ? 0 : -ENOMEM;
	for (size_t i = 0; !rc && i < src->n_ep; i++) {
		struct diff_endpoint *se = &src->ep[i];
		uint32_t di;
		/* a refused endpoint: every session counted in it is a loss */
		rc = diff_endpoint_get(pt, dst, se->name, strlen(se->name), &di,
				       se->pairs + se->sec_pairs + se->incomplete + se->errors +
					   se->unreplayed + se->cancelled);
		if (rc < 0)
			break;
		rc = 0;
		epmap[i] = di;
		struct diff_endpoint *de = &dst->ep[di];
		de->pairs += se->pairs;
		de->sec_pairs += se->sec_pairs;
		de->incomplete += se->incomplete;
		de->errors += se->errors;
		de->unreplayed += se->unreplayed;
		de->cancelled += se->cancelled;
		size_t grown = diff_hist_merge(&de->lat_p, &se->lat_p);
		grown += diff_hist_merge(&de->lat_c, &se->lat_c);
		(void)grown; /* the source's buckets are given back below */
	}
	for (size_t i = 0; !rc && i < src->n_gr; i++) {
		struct diff_group *sg = &src->gr[i];
		uint32_t gi;
		grmap[i] = UINT32_MAX;
		if (epmap[sg->endpoint] == UINT32_MAX)
			continue;
		rc = group_get(pt, dst, epmap[sg->endpoint], sg->kind, sg->location, sg->tr, &gi,
			       sg->count + sg->sec);
		if (rc < 0)
			break;
		rc = 0;
		grmap[i] = gi;
		struct diff_group *dg = &dst->gr[gi];
		dg->count += sg->count;
		dg->sec += sg->sec;
		dg->vol += sg->vol;
		/* one pattern when both had the same one (or one had none) */
		dg->pmixed |= sg->pmixed || (dg->phash && sg->phash && dg->phash != sg->phash);
		if (!dg->phash)
			dg->phash = sg->phash;
		merge_examples(pt, dst, dg, sg);
	}
	struct remap m = {pt, dst, grmap};
	for (size_t i = 0; !rc && i < src->combos.cap; i++) {
		const struct diff_combo *e = &src->combos.t[i];
		if (e->n)
			rc = remap_add(&m, src->combos.ids + e->off, e->n, e->count);
	}
	if (!rc)
		rc = spill_each(&src->combos, remap_spilled, &m);
	if (!rc) {
		struct diff_summary *d = &dst->sum, *s = &src->sum;
		d->results += s->results;
		d->compared += s->compared;
		d->incomplete += s->incomplete;
		d->replay_errors += s->replay_errors;
		d->unreplayed += s->unreplayed;
		d->cancelled += s->cancelled;
		d->secondary_pairs += s->secondary_pairs;
		d->over_memcap += s->over_memcap;
		dst->caps_hit |= src->caps_hit;
		dst->groups_dropped += src->groups_dropped;
		dst->endpoints_dropped += src->endpoints_dropped;
		dst->examples_not_kept += src->examples_not_kept;
	}
	mem_free(epmap);
	mem_free(grmap);
	return rc;
}

/* ---- counting pairs once noise is known ---- */

static int count_set(void *arg, uint32_t *ids, uint32_t n);

struct counting {
	struct diff_cand *v;
	uint64_t count;
};

static void count_ids(struct diff_cand *v, const uint32_t *ids, size_t n, uint64_t count)
{
	bool real = false, status = false;
	for (size_t k = 0; k < n; k++) {
		const struct diff_group *g = &v->gr[ids[k]];
		if (g->noise == DIFF_NOISE_NONE) {
			real = true;
			status |= g->kind == DIFF_K_STATUS;
		}
	}
	struct diff_endpoint *e = &v->ep[v->gr[ids[0]].endpoint];
	if (real) {
		e->differing += count;
		v->sum.differing += count;
	} else {
		v->sum.noisy_only += count;
	}
	if (status) {
		e->status_chg += count;
		v->sum.status_changes += count;
	}
}

static int count_set(void *arg, uint32_t *ids, uint32_t n)
{
	struct counting *k = arg;
	count_ids(k->v, ids, n, 1);
	return 0;
}

int diff_cand_count_pairs(struct diff_cand *v)
{
	const struct diff_combos *cb = &v->combos;
	for (size_t i = 0; i < cb->cap; i++) {
		const struct diff_combo *e = &cb->t[i];
		if (e->n)
			count_ids(v, cb->ids + e->off, e->n, e->count);
	}
	struct counting k = {v, 1};
	return spill_each(&v->combos, count_set, &k);
}
