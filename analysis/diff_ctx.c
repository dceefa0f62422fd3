/* SPDX-License-Identifier: MIT */
/*
 * diff_ctx - the analysis context (see diff.h): per-pair comparison through
 * the engine (diff_pair.c), grouping by endpoint and signature, learned
 * noise, latency percentiles and accounting.
 *
 * Learned noise follows Diffy's idea (github.com/opendiffy/diffy): a
 * location (endpoint + location) whose candidate-vs-primary difference
 * rate is not clearly above its secondary-vs-primary rate is noise. The
 * thresholds are in docs/diff.md and struct diff_params.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "analysis/tmpl.h"
#include "common/mem.h"

#define DIFF_DEF_SAMPLES   (1u << 20)
#define DIFF_MAX_PAIRS	   (64u << 20)
#define DIFF_MAX_GROUPS	   (1u << 20)
#define DIFF_MAX_ENDPOINTS (1u << 16)
#define DIFF_EP_NAME_MAX   512

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static void ruleset_build(struct diff_ctx *c, struct diff_ruleset *rs, const char *endpoint)
{
	const struct noise_rules *all = c->p.rules;
	memset(rs, 0, sizeof(*rs));
	rs->all = all;
	rs->hits = c->rule_hits;
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

struct diff_ctx *diff_ctx_create(const struct diff_params *p)
{
	struct diff_ctx *c = mem_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (p)
		c->p = *p;
	if (!c->p.max_latency_samples)
		c->p.max_latency_samples = DIFF_DEF_SAMPLES;
	if (!c->p.max_memory)
		c->p.max_memory = (size_t)1 << 30;
	if (!(c->p.noise_ratio > 0))
		c->p.noise_ratio = 2.0;
	if (!(c->p.noise_delta > 0))
		c->p.noise_delta = 0.05;
	if (diff_engine_init(&c->eng, &c->p))
		goto fail;
	c->p = c->eng.p; /* with the engine's defaults filled in */
	if (c->p.rules && c->p.rules->n) {
		c->rule_hits = mem_calloc(c->p.rules->n, sizeof(uint64_t));
		if (!c->rule_hits)
			goto fail;
	}
	c->ep_buckets = 64;
	c->ep_hash = mem_calloc(c->ep_buckets, sizeof(uint32_t));
	c->gr_buckets = 256;
	c->gr_hash = mem_calloc(c->gr_buckets, sizeof(uint32_t));
	if (!c->ep_hash || !c->gr_hash)
		goto fail;
	return c;
fail:
	diff_ctx_free(c);
	return NULL;
}

static void example_free(struct diff_example *x)
{
	mem_free(x->request);
	mem_free(x->primary);
	mem_free(x->candidate);
}

void diff_ctx_free(struct diff_ctx *c)
{
	if (!c)
		return;
	diff_engine_release(&c->eng);
	for (size_t i = 0; i < c->n_ep; i++) {
		mem_free(c->ep[i].name);
		mem_free(c->ep[i].lat_p.v);
		mem_free(c->ep[i].lat_c.v);
		mem_free(c->ep[i].rs.v);
	}
	mem_free(c->ep);
	mem_free(c->ep_hash);
	for (size_t i = 0; i < c->n_gr; i++) {
		mem_free(c->gr[i].location);
		example_free(&c->gr[i].ex);
	}
	mem_free(c->gr);
	mem_free(c->gr_hash);
	mem_free(c->pairs);
	mem_free(c->pair_groups);
	for (size_t i = 0; i < c->n_ctr; i++) {
		mem_free(c->ctr[i].source);
		mem_free(c->ctr[i].name);
	}
	mem_free(c->ctr);
	for (size_t i = 0; i < c->n_notes; i++)
		mem_free(c->notes[i]);
	mem_free(c->notes);
	for (size_t i = 0; i < c->n_inputs; i++)
		mem_free(c->inputs[i]);
	mem_free(c->inputs);
	mem_free(c->gates);
	mem_free(c->rule_hits);
	mem_free(c->global_rs.v);
	mem_free(c->all_p.v);
	mem_free(c->all_c.v);
	mem_free(c);
}

/* Grow array *v of *cap elements of @p size to hold n + 1. */
static int grow(void **v, size_t *cap, size_t n, size_t size, size_t max)
{
	if (n < *cap)
		return 0;
	if (n >= max)
		return -ENOSPC;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > max)
		ncap = max;
	void *nv = mem_realloc(*v, ncap * size);
	if (!nv)
		return -ENOMEM;
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

static int endpoint_get(struct diff_ctx *c, const char *name, size_t n, uint32_t *out)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ull, name, n);
	for (uint32_t i = c->ep_hash[h & (c->ep_buckets - 1)]; i; i = c->ep[i - 1].hnext) {
		struct diff_endpoint *e = &c->ep[i - 1];
		if (e->hash == h && !strcmp(e->name, name)) {
			*out = i - 1;
			return 0;
		}
	}
	int rc = grow((void **)&c->ep, &c->cap_ep, c->n_ep, sizeof(*c->ep), DIFF_MAX_ENDPOINTS);
	if (rc)
		return rc;
	struct diff_endpoint *e = &c->ep[c->n_ep];
	memset(e, 0, sizeof(*e));
	e->name = mem_strndup(name, n);
	if (!e->name)
		return -ENOMEM;
	e->hash = h;
	ruleset_build(c, &e->rs, e->name);
	e->hnext = c->ep_hash[h & (c->ep_buckets - 1)];
	c->ep_hash[h & (c->ep_buckets - 1)] = (uint32_t)(c->n_ep + 1);
	*out = (uint32_t)c->n_ep++;
	return rehash(&c->ep_hash, &c->ep_buckets, c->n_ep, c->ep, sizeof(*c->ep),
		      offsetof(struct diff_endpoint, hash), offsetof(struct diff_endpoint, hnext));
}

static int group_get(struct diff_ctx *c, uint32_t ep, uint8_t kind, const char *loc, uint32_t *out)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ull, &ep, sizeof(ep));
	h = hash_bytes(h, &kind, 1);
	h = hash_bytes(h, loc, strlen(loc));
	for (uint32_t i = c->gr_hash[h & (c->gr_buckets - 1)]; i; i = c->gr[i - 1].hnext) {
		struct diff_group *g = &c->gr[i - 1];
		if (g->hash == h && g->endpoint == ep && g->kind == kind &&
		    !strcmp(g->location, loc)) {
			*out = i - 1;
			return 0;
		}
	}
	int rc = grow((void **)&c->gr, &c->cap_gr, c->n_gr, sizeof(*c->gr), DIFF_MAX_GROUPS);
	if (rc)
		return rc;
	struct diff_group *g = &c->gr[c->n_gr];
	memset(g, 0, sizeof(*g));
	g->location = mem_strdup(loc);
	if (!g->location)
		return -ENOMEM;
	g->endpoint = ep;
	g->kind = kind;
	g->hash = h;
	g->hnext = c->gr_hash[h & (c->gr_buckets - 1)];
	c->gr_hash[h & (c->gr_buckets - 1)] = (uint32_t)(c->n_gr + 1);
	*out = (uint32_t)c->n_gr++;
	return rehash(&c->gr_hash, &c->gr_buckets, c->n_gr, c->gr, sizeof(*c->gr),
		      offsetof(struct diff_group, hash), offsetof(struct diff_group, hnext));
}

static void sample(struct diff_samples *s, uint64_t v, size_t max)
{
	if (grow((void **)&s->v, &s->cap, s->n, sizeof(uint64_t), max)) {
		s->dropped++;
		return;
	}
	s->v[s->n++] = v;
}

/* ---- examples ---- */

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == 0)
			return false;
	return true;
}

static void render_headers(struct dbuf *b, const struct store_message *m)
{
	for (size_t i = 0; i < m->n_headers && i < DIFF_MAX_HDRS; i++) {
		const struct store_header *h = &m->headers[i];
		char lname[128], val[1024];
		size_t ln = h->name.len < sizeof(lname) - 1 ? h->name.len : sizeof(lname) - 1;
		for (size_t k = 0; k < ln; k++)
			lname[k] =
			    (char)(h->name.ptr[k] |
				   (h->name.ptr[k] >= 'A' && h->name.ptr[k] <= 'Z' ? 0x20 : 0));
		lname[ln] = '\0';
		diff_mask_header_value(lname, ln, h->value.ptr, h->value.len, val, sizeof(val));
		dbuf_append(b, h->name.ptr, h->name.len);
		dbuf_puts(b, ": ");
		dbuf_puts(b, val);
		dbuf_putc(b, '\n');
	}
}

static void render_body(struct diff_ctx *c, struct dbuf *b, const struct store_message *m)
{
	const uint8_t *p = m->body.ptr;
	size_t n = m->body.len;
	struct dbuf dec, tmp;
	dbuf_init(&dec, c->p.max_body);
	dbuf_init(&tmp, c->p.max_body);
	const struct store_header *enc = diff_find_header(m, "content-encoding");
	if (enc && n &&
	    !diff_decode((const char *)enc->value.ptr, enc->value.len, p, n, &dec, &tmp)) {
		p = dec.data;
		n = dec.len;
		dbuf_printf(b, "[decoded from %.*s]\n",
			    (int)(enc->value.len > 32 ? 32 : enc->value.len),
			    (const char *)enc->value.ptr);
	}
	if (n && !printable(p, n)) {
		dbuf_printf(b, "[%zu bytes of binary data]", n);
	} else if (n) {
		size_t k = n < c->p.max_example ? n : c->p.max_example;
		dbuf_append(b, p, k);
		if (k < n)
			dbuf_printf(b, "\n[... %zu more bytes]", n - k);
	}
	if (m->truncated)
		dbuf_printf(b, "\n[body truncated at record time: %llu of %llu bytes kept]",
			    (unsigned long long)m->body.len, (unsigned long long)m->body_len);
	dbuf_release(&dec);
	dbuf_release(&tmp);
}

static char *render_msg(struct diff_ctx *c, const struct store_message *m, bool req)
{
	struct dbuf b;
	dbuf_init(&b, c->p.max_example * 2 + 64 * 1024);
	if (req)
		dbuf_printf(&b, "%.*s %.*s HTTP/%u.%u\n", (int)m->method.len,
			    (const char *)m->method.ptr, (int)m->target.len,
			    (const char *)m->target.ptr, m->version_major, m->version_minor);
	else
		dbuf_printf(&b, "HTTP/%u.%u %u %.*s\n", m->version_major, m->version_minor,
			    m->status, (int)m->reason.len, (const char *)m->reason.ptr);
	render_headers(&b, m);
	dbuf_putc(&b, '\n');
	render_body(c, &b, m);
	char *s = (char *)dbuf_detach(&b, NULL);
	return s ? s : mem_strdup("");
}

static void keep_example(struct diff_ctx *c, struct diff_group *g, const struct store_session *s,
			 const struct store_result *r, const struct diff_finding *f)
{
	g->ex.session_id = s->id;
	g->ex.request = render_msg(c, &s->req, true);
	g->ex.primary = render_msg(c, &s->resp, false);
	g->ex.candidate = render_msg(c, &r->resp, false);
	memcpy(g->ex.pval, f->pval, sizeof(g->ex.pval));
	memcpy(g->ex.cval, f->cval, sizeof(g->ex.cval));
	g->has_ex = g->ex.request && g->ex.primary && g->ex.candidate;
	if (!g->has_ex) {
		example_free(&g->ex);
		memset(&g->ex, 0, sizeof(g->ex));
	}
}

/* ---- adding pairs ---- */

#define INCOMPLETE_FLAGS                                                                           \
	(STORE_F_GAP | STORE_F_NO_RESPONSE | STORE_F_PARSE_ERROR | STORE_F_TUNNEL |                \
	 STORE_F_INCOMPLETE | STORE_F_RESET)

static int endpoint_of(struct diff_ctx *c, const struct store_session *s, uint32_t *ep)
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
			ce = &c->epc[h % DIFF_EP_CACHE];
			if (ce->ep && ce->h == h && ce->len == ml + 1 + tl &&
			    !memcmp(ce->key, s->req.method.ptr, ml) &&
			    !memcmp(ce->key + ml + 1, t, tl)) {
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
	int rc = endpoint_get(c, name, n, ep);
	if (!rc && ce)
		ce->ep = *ep + 1;
	return rc;
}

int diff_ctx_add_unreplayed(struct diff_ctx *c, const struct store_session *s)
{
	uint32_t ep;
	if (c->finished)
		return -EINVAL;
	int rc = endpoint_of(c, s, &ep);
	if (rc)
		return rc == -ENOSPC ? (c->sum.over_memcap++, 0) : rc;
	c->ep[ep].unreplayed++;
	c->sum.unreplayed++;
	return 0;
}

int diff_ctx_add(struct diff_ctx *c, const struct store_session *s, const struct store_result *r,
		 enum diff_role role)
{
	uint32_t ep;
	bool cand = role == DIFF_ROLE_CANDIDATE;
	if (c->finished)
		return -EINVAL;
	int rc = endpoint_of(c, s, &ep);
	if (rc)
		return rc == -ENOSPC ? (c->sum.over_memcap++, 0) : rc;
	struct diff_endpoint *e = &c->ep[ep];
	if (cand)
		c->sum.results++;
	/* incomplete capture: reported as such, never as a difference */
	uint32_t bad = s->flags & INCOMPLETE_FLAGS;
	if (bad || !s->req.present || !s->resp.present || s->resp.truncated) {
		if (!cand)
			return 0;
		e->incomplete++;
		c->sum.incomplete++;
		for (unsigned b = 0; b < STORE_F_COUNT; b++)
			if (bad & (1u << b))
				c->incomplete_by_flag[b]++;
		if (!bad && !s->resp.present)
			c->incomplete_by_flag[2]++; /* no_response */
		if (!bad && s->resp.present && s->resp.truncated)
			c->incomplete_by_flag[5]++; /* incomplete */
		return 0;
	}
	if (r->error != STORE_ERR_NONE || !r->resp.present || r->resp.truncated) {
		if (!cand)
			return 0;
		if (r->error == STORE_ERR_NONE && r->resp.present) {
			c->incomplete_cand_trunc++;
			e->incomplete++;
			c->sum.incomplete++;
			return 0;
		}
		e->errors++;
		c->sum.replay_errors++;
		c->errors_by_kind[r->error < STORE_ERR_COUNT ? r->error : STORE_ERR_OTHER]++;
		return 0;
	}
	rc = diff_engine_compare(&c->eng, &e->rs, &s->resp, &r->resp);
	if (rc)
		return rc;
	e = &c->ep[ep];
	uint32_t ids[256];
	size_t nid = 0;
	for (uint32_t i = 0; i < c->eng.nf; i++) {
		const struct diff_finding *f = &c->eng.f[i];
		uint32_t gi;
		rc = group_get(c, ep, f->kind, f->loc, &gi);
		if (rc == -ENOSPC) {
			c->sum.over_memcap++;
			continue;
		}
		if (rc)
			return rc;
		bool dup = false;
		for (size_t k = 0; k < nid && !dup; k++)
			dup = ids[k] == gi;
		if (dup || nid == sizeof(ids) / sizeof(ids[0]))
			continue;
		ids[nid++] = gi;
		struct diff_group *g = &c->gr[gi];
		if (!cand) {
			g->sec++;
			continue;
		}
		g->count++;
		if (f->vol)
			g->vol++;
		if (!g->has_ex)
			keep_example(c, g, s, r, f);
	}
	if (!cand) {
		e->sec_pairs++;
		c->sum.secondary_pairs++;
		return 0;
	}
	e->pairs++;
	c->sum.compared++;
	if (s->ts_resp_last_ns > s->ts_req_first_ns && s->ts_req_first_ns > 0)
		sample(&e->lat_p, (uint64_t)(s->ts_resp_last_ns - s->ts_req_first_ns),
		       c->p.max_latency_samples);
	if (r->latency_ns)
		sample(&e->lat_c, r->latency_ns, c->p.max_latency_samples);
	if (!nid)
		return 0;
	if (grow((void **)&c->pairs, &c->cap_pairs, c->n_pairs, sizeof(*c->pairs),
		 DIFF_MAX_PAIRS) ||
	    c->n_pg + nid > DIFF_MAX_PAIRS * 4) {
		c->sum.over_memcap++;
		return 0;
	}
	while (c->n_pg + nid > c->cap_pg) {
		size_t ncap = c->cap_pg ? c->cap_pg * 2 : 1024;
		uint32_t *nv = mem_realloc(c->pair_groups, ncap * sizeof(uint32_t));
		if (!nv)
			return -ENOMEM;
		c->pair_groups = nv;
		c->cap_pg = ncap;
	}
	struct diff_pairrec *pr = &c->pairs[c->n_pairs++];
	pr->endpoint = ep;
	pr->first = (uint32_t)c->n_pg;
	pr->n = (uint16_t)nid;
	memcpy(c->pair_groups + c->n_pg, ids, nid * sizeof(uint32_t));
	c->n_pg += nid;
	return 0;
}

/* ---- accounting ---- */

static bool loss_name(const char *n)
{
	static const char *const words[] = {"drop",  "gap",	"timeout", "skip",     "error",
					    "trunc", "lost",	"fail",	   "overflow", "memcap",
					    "cut",   "damaged", "refused", "reset"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(n, words[i]))
			return true;
	return false;
}

int diff_ctx_add_counters(struct diff_ctx *c, const char *source, const struct store_counter *v,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t cap = c->n_ctr;
		struct diff_counter *nv = mem_realloc(c->ctr, (cap + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->ctr = nv;
		struct diff_counter *d = &c->ctr[c->n_ctr];
		d->source = mem_strdup(source ? source : "");
		d->name = mem_strdup(v[i].name ? v[i].name : "");
		if (!d->source || !d->name) {
			mem_free(d->source);
			mem_free(d->name);
			return -ENOMEM;
		}
		d->value = v[i].value;
		d->loss = v[i].value && loss_name(d->name);
		c->n_ctr++;
	}
	return 0;
}

static int push_str(char ***v, size_t *n, const char *s)
{
	char **nv = mem_realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = mem_strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int diff_ctx_note_incomplete(struct diff_ctx *c, const char *why)
{
	return push_str(&c->notes, &c->n_notes, why);
}

int diff_ctx_add_input(struct diff_ctx *c, const char *name)
{
	return push_str(&c->inputs, &c->n_inputs, name);
}

int diff_ctx_add_gate_result(struct diff_ctx *c, const struct diff_gate *g, double value,
			     bool tripped)
{
	struct diff_gate_result *nv = mem_realloc(c->gates, (c->n_gates + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	c->gates = nv;
	nv[c->n_gates].g = *g;
	nv[c->n_gates].value = value;
	nv[c->n_gates].tripped = tripped;
	c->n_gates++;
	return 0;
}

/* ---- finish ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t diff_percentile(const uint64_t *v, size_t n, double q)
{
	if (!n)
		return 0;
	/* nearest rank */
	size_t k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static const struct diff_ctx *sort_ctx;

static int cmp_group_loc(const void *a, const void *b)
{
	const struct diff_group *x = &sort_ctx->gr[*(const uint32_t *)a];
	const struct diff_group *y = &sort_ctx->gr[*(const uint32_t *)b];
	if (x->endpoint != y->endpoint)
		return x->endpoint < y->endpoint ? -1 : 1;
	return strcmp(x->location, y->location);
}

static void learn_noise(struct diff_ctx *c)
{
	uint32_t *idx = mem_alloc((c->n_gr ? c->n_gr : 1) * sizeof(uint32_t));
	if (!idx) {
		DIFF_LOG(LOG_WARN, "out of memory: noise not learned");
		return;
	}
	for (size_t i = 0; i < c->n_gr; i++)
		idx[i] = (uint32_t)i;
	sort_ctx = c;
	qsort(idx, c->n_gr, sizeof(uint32_t), cmp_group_loc);
	for (size_t i = 0; i < c->n_gr;) {
		size_t j = i;
		uint64_t cnt = 0, sec = 0;
		const struct diff_group *gi = &c->gr[idx[i]];
		while (j < c->n_gr && c->gr[idx[j]].endpoint == gi->endpoint &&
		       !strcmp(c->gr[idx[j]].location, gi->location)) {
			cnt += c->gr[idx[j]].count;
			sec += c->gr[idx[j]].sec;
			j++;
		}
		const struct diff_endpoint *e = &c->ep[gi->endpoint];
		double cr = e->pairs ? (double)cnt / (double)e->pairs : 0;
		double sr = e->sec_pairs ? (double)sec / (double)e->sec_pairs : 0;
		if (cr > 1)
			cr = 1;
		if (sr > 1)
			sr = 1;
		bool learned = e->sec_pairs > 0 && sec > 0 &&
			       !(cr >= c->p.noise_ratio * sr && cr - sr >= c->p.noise_delta);
		for (size_t k = i; k < j; k++) {
			struct diff_group *g = &c->gr[idx[k]];
			g->loc_rate = cr;
			g->sec_rate = sr;
			g->rate = e->pairs ? (double)g->count / (double)e->pairs : 0;
			if (learned)
				g->noise = DIFF_NOISE_LEARNED;
			else if (!e->sec_pairs && g->vol * 2 > g->count)
				g->noise = DIFF_NOISE_VOLATILE;
			else
				g->noise = DIFF_NOISE_NONE;
		}
		i = j;
	}
	mem_free(idx);
}

static void percentiles(struct diff_samples *s, uint64_t *p50, uint64_t *p99)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
	*p50 = diff_percentile(s->v, s->n, 0.50);
	*p99 = diff_percentile(s->v, s->n, 0.99);
}

static void pool(struct diff_samples *dst, const struct diff_samples *src)
{
	for (size_t i = 0; i < src->n; i++)
		sample(dst, src->v[i], (size_t)64 << 20);
}

int diff_ctx_finish(struct diff_ctx *c)
{
	if (c->finished)
		return -EINVAL;
	c->finished = true;
	learn_noise(c);
	struct diff_summary *s = &c->sum;
	for (size_t i = 0; i < c->n_pairs; i++) {
		const struct diff_pairrec *pr = &c->pairs[i];
		bool real = false, status = false;
		for (uint16_t k = 0; k < pr->n; k++) {
			const struct diff_group *g = &c->gr[c->pair_groups[pr->first + k]];
			if (g->noise == DIFF_NOISE_NONE) {
				real = true;
				status |= g->kind == DIFF_K_STATUS;
			}
		}
		if (real) {
			c->ep[pr->endpoint].differing++;
			s->differing++;
		} else {
			s->noisy_only++;
		}
		if (status) {
			c->ep[pr->endpoint].status_chg++;
			s->status_changes++;
		}
	}
	for (size_t i = 0; i < c->n_gr; i++) {
		if (c->gr[i].count == 0)
			continue; /* seen only between primary and secondary */
		if (c->gr[i].noise)
			s->noise_groups++;
		else
			s->groups++;
	}
	for (size_t i = 0; i < c->n_ep; i++) {
		struct diff_endpoint *e = &c->ep[i];
		percentiles(&e->lat_p, &e->p50_p, &e->p99_p);
		percentiles(&e->lat_c, &e->p50_c, &e->p99_c);
		pool(&c->all_p, &e->lat_p);
		pool(&c->all_c, &e->lat_c);
	}
	percentiles(&c->all_p, &c->p50_p, &c->p99_p);
	percentiles(&c->all_c, &c->p50_c, &c->p99_c);
	s->endpoints = c->n_ep;
	s->findings_dropped = c->eng.dropped;
	s->diff_rate = s->compared ? (double)s->differing / (double)s->compared : 0;
	s->p50_latency_ratio = c->p50_p ? (double)c->p50_c / (double)c->p50_p : 0;
	s->p99_latency_ratio = c->p99_p ? (double)c->p99_c / (double)c->p99_p : 0;
	bool loss = false;
	for (size_t i = 0; i < c->n_ctr; i++)
		loss |= c->ctr[i].loss;
	s->data_incomplete = loss || c->n_notes || s->incomplete || s->replay_errors ||
			     s->unreplayed || s->over_memcap;
	return 0;
}

const struct diff_summary *diff_ctx_summary(const struct diff_ctx *c)
{
	return &c->sum;
}

/* Names as in docs/format.md, from the store module. */
const char *diff_flag_name(unsigned bit)
{
	return bit < STORE_F_COUNT ? store_flag_name(1u << bit) : NULL;
}

const char *diff_error_name(unsigned kind)
{
	return store_error_name(kind);
}

static int cmp_group_report(const void *a, const void *b)
{
	const struct diff_group *x = &sort_ctx->gr[*(const uint32_t *)a];
	const struct diff_group *y = &sort_ctx->gr[*(const uint32_t *)b];
	if ((x->noise != 0) != (y->noise != 0))
		return x->noise ? 1 : -1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int r = strcmp(sort_ctx->ep[x->endpoint].name, sort_ctx->ep[y->endpoint].name);
	if (r)
		return r;
	r = strcmp(x->location, y->location);
	return r ? r : (int)x->kind - (int)y->kind;
}

size_t diff_ctx_sorted_groups(const struct diff_ctx *c, uint32_t **out)
{
	uint32_t *idx = mem_alloc((c->n_gr ? c->n_gr : 1) * sizeof(uint32_t));
	size_t n = 0;
	*out = idx;
	if (!idx)
		return 0;
	for (size_t i = 0; i < c->n_gr; i++)
		if (c->gr[i].count)
			idx[n++] = (uint32_t)i;
	sort_ctx = c;
	qsort(idx, n, sizeof(uint32_t), cmp_group_report);
	return n;
}

/* Append "name: count" for each non-zero count of @p v, comma separated;
 * @p fallback names an index @p name does not know. Returns true when
 * nothing was appended. */
static bool put_named_counts(struct dbuf *out, const uint64_t *v, unsigned n,
			     const char *(*name)(unsigned), const char *fallback)
{
	bool first = true;
	for (unsigned i = 0; i < n; i++)
		if (v[i]) {
			const char *nm = name(i);
			dbuf_printf(out, "%s%s: %llu", first ? "" : ", ", nm ? nm : fallback,
				    (unsigned long long)v[i]);
			first = false;
		}
	return first;
}

int diff_ctx_reasons(const struct diff_ctx *c, struct dbuf *out)
{
	const struct diff_summary *s = &c->sum;
	if (s->incomplete) {
		dbuf_printf(out, "%llu sessions not compared because their data is incomplete (",
			    (unsigned long long)s->incomplete);
		bool first = put_named_counts(out, c->incomplete_by_flag, STORE_F_COUNT,
					      diff_flag_name, "flag");
		if (c->incomplete_cand_trunc)
			dbuf_printf(out, "%scandidate body truncated: %llu", first ? "" : ", ",
				    (unsigned long long)c->incomplete_cand_trunc);
		dbuf_puts(out, ")\n");
	}
	if (s->replay_errors) {
		dbuf_printf(out, "%llu replayed requests failed (",
			    (unsigned long long)s->replay_errors);
		put_named_counts(out, c->errors_by_kind, STORE_ERR_COUNT, diff_error_name, "error");
		dbuf_puts(out, ")\n");
	}
	if (s->unreplayed)
		dbuf_printf(out, "%llu recorded sessions have no replay result\n",
			    (unsigned long long)s->unreplayed);
	if (s->over_memcap)
		dbuf_printf(out, "%llu pairs or differences not kept because a cap was hit\n",
			    (unsigned long long)s->over_memcap);
	for (size_t i = 0; i < c->n_ctr; i++)
		if (c->ctr[i].loss)
			dbuf_printf(out, "%s: %s = %llu\n", c->ctr[i].source, c->ctr[i].name,
				    (unsigned long long)c->ctr[i].value);
	for (size_t i = 0; i < c->n_notes; i++)
		dbuf_printf(out, "%s\n", c->notes[i]);
	return 0;
}
