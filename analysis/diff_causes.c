/* SPDX-License-Identifier: MIT */
/*
 * diff_causes - join a verdict's difference groups into root causes (see
 * diff_causes.h; docs/report.md "Causes" for the user's view). One pass
 * over the groups with a hash table on the signature
 * (kind, noise, location, pattern), then a sort. Work and memory are
 * linear in the groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "common/mem.h"

static const char *const sev_names[DIFF_SEV_COUNT] = {"status", "data_lost", "data_changed",
						      "header"};

const char *diff_severity_name(unsigned s)
{
	return s < DIFF_SEV_COUNT ? sev_names[s] : "unknown";
}

const struct diff_example *diff_group_example(const struct diff_group *g)
{
	return g->n_ex ? &g->ex[0] : NULL;
}

void diff_causes_free(struct diff_causes *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->n; i++) {
		mem_free(cs->v[i].location);
		mem_free(cs->v[i].pattern);
		mem_free(cs->v[i].groups);
		mem_free(cs->v[i].eps);
	}
	mem_free(cs->v);
	mem_free(cs);
}

/* The cause's location: a header's word (header:x[2]) is the header, a
 * text body's line or word (body:text[4][2]) is the text body. */
static size_t cause_loc(const char *loc)
{
	size_t n = strlen(loc);
	if (!strncmp(loc, "body:text", 9))
		return 9;
	if (!strncmp(loc, "header:", 7) && n && loc[n - 1] == ']') {
		size_t k = n - 1;
		while (k > 7 && loc[k - 1] >= '0' && loc[k - 1] <= '9')
			k--;
		if (k > 7 && k < n - 1 && loc[k - 1] == '[')
			return k - 1;
	}
	return n;
}

/* The JSON type of a rendered value. */
static const char *vtype(const char *v)
{
	switch (v[0]) {
	case '"':
		return "string";
	case '{':
		return "object";
	case '[':
		return "array";
	case 't':
	case 'f':
		return "boolean";
	case 'n':
		return "null";
	case '\0':
		return "absent";
	default:
		return "number";
	}
}

/* Whether a change of @p kind at @p loc has a pattern (docs/diff.md "Causes"). */
static bool has_pattern(uint8_t kind, const char *loc)
{
	return kind == DIFF_K_STATUS || kind == DIFF_K_TYPE ||
	       (kind == DIFF_K_VALUE && !strncmp(loc, "header:", 7));
}

/* The pattern of one change of @p kind from @p pval to @p cval. */
static void pattern_text(uint8_t kind, const char *pval, const char *cval, char *out, size_t cap)
{
	if (kind == DIFF_K_TYPE)
		snprintf(out, cap, "%s -> %s", vtype(pval), vtype(cval));
	else
		snprintf(out, cap, "%s -> %s", pval, cval);
}

size_t diff_finding_transition(uint8_t kind, const char *loc, const char *pval, const char *cval,
			       char *out, size_t cap)
{
	out[0] = '\0';
	if (kind != DIFF_K_STATUS)
		return 0;
	int n = 0;
	if (!strcmp(loc, "status")) /* the codes */
		n = snprintf(out, cap, "%s -> %s", pval, cval);
	else if (!strcmp(loc, "grpc-status")) /* the codes, not the messages after them */
		n = snprintf(out, cap, "%.*s -> %.*s", (int)strcspn(pval, " "), pval,
			     (int)strcspn(cval, " "), cval);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

uint64_t diff_finding_pattern_hash(uint8_t kind, const char *loc, const char *pval,
				   const char *cval)
{
	if (!has_pattern(kind, loc))
		return 0;
	char pat[2 * DIFF_VAL_MAX + 8];
	pattern_text(kind, pval, cval, pat, sizeof(pat));
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = pat; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return h ? h : 1;
}

void diff_group_pattern(const struct diff_group *g, char *out, size_t cap)
{
	const struct diff_example *x = diff_group_example(g);
	out[0] = '\0';
	if (!has_pattern(g->kind, g->location))
		return;
	if (x && !g->pmixed) /* every pair showed this one */
		pattern_text(g->kind, x->pval, x->cval, out, cap);
	else if (g->tr) /* the transition its pairs share */
		snprintf(out, cap, "%s", g->tr);
}

static uint8_t severity_of(uint8_t kind, const char *loc)
{
	if (kind == DIFF_K_STATUS)
		return DIFF_SEV_STATUS;
	if (!strncmp(loc, "header:", 7))
		return DIFF_SEV_HEADER;
	switch (kind) {
	case DIFF_K_MISSING:
	case DIFF_K_TYPE:
	case DIFF_K_NOT_JSON:
	case DIFF_K_UNDECODABLE:
		return DIFF_SEV_BROKEN;
	default:
		return DIFF_SEV_CHANGED;
	}
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

static const struct diff_cand *sort_v; /* for the comparators (one sort at a time) */

static int cmp_group_count(const void *a, const void *b)
{
	const struct diff_group *x = &sort_v->gr[*(const uint32_t *)a];
	const struct diff_group *y = &sort_v->gr[*(const uint32_t *)b];
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int r = strcmp(sort_v->ep[x->endpoint].name, sort_v->ep[y->endpoint].name);
	if (r)
		return r;
	r = strcmp(x->location, y->location);
	return r ? r : strcmp(x->tr ? x->tr : "", y->tr ? y->tr : "");
}

static int cmp_ep(const void *a, const void *b)
{
	return strcmp(sort_v->ep[*(const uint32_t *)a].name, sort_v->ep[*(const uint32_t *)b].name);
}

static int cmp_cause(const void *a, const void *b)
{
	const struct diff_rootcause *x = a, *y = b;
	if ((x->noise != 0) != (y->noise != 0))
		return x->noise ? 1 : -1;
	if (x->severity != y->severity)
		return x->severity < y->severity ? -1 : 1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int r = strcmp(x->location, y->location);
	if (r)
		return r;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->pattern, y->pattern);
}

/* Fill in a cause's endpoints, counts and order of groups. */
static int finish_cause(struct diff_cand *v, struct diff_rootcause *rc)
{
	sort_v = v;
	qsort(rc->groups, rc->n_groups, sizeof(uint32_t), cmp_group_count);
	rc->eps = mem_alloc(rc->n_groups * sizeof(uint32_t));
	if (!rc->eps)
		return -ENOMEM;
	/* groups of one cause on one endpoint (words of one header) are the
	 * same pairs at most: count the largest */
	for (uint32_t k = 0; k < rc->n_groups; k++) {
		const struct diff_group *g = &v->gr[rc->groups[k]];
		bool seen = false;
		for (uint32_t e = 0; e < rc->n_eps && !seen; e++)
			seen = rc->eps[e] == g->endpoint;
		if (seen)
			continue;
		rc->eps[rc->n_eps++] = g->endpoint;
		rc->count +=
		    g->count; /* groups are by count: the first of an endpoint is its largest */
		rc->pairs += v->ep[g->endpoint].pairs;
	}
	qsort(rc->eps, rc->n_eps, sizeof(uint32_t), cmp_ep);
	rc->rate = rc->pairs ? (double)rc->count / (double)rc->pairs : 0;
	return 0;
}

int diff_causes_build(struct diff_cand *v)
{
	diff_causes_free(v->roots);
	v->roots = mem_calloc(1, sizeof(*v->roots));
	if (!v->roots)
		return -ENOMEM;
	struct diff_causes *cs = v->roots;
	size_t n = 0;
	for (size_t i = 0; i < v->n_gr; i++)
		n += v->gr[i].count > 0;
	if (!n)
		return 0;
	size_t nb = 16;
	while (nb < 2 * n)
		nb <<= 1;
	uint32_t *slot = mem_calloc(nb, sizeof(uint32_t)); /* cause index + 1 */
	uint64_t *hash = mem_alloc(n * sizeof(uint64_t));
	uint32_t *cause_of = mem_alloc(v->n_gr * sizeof(uint32_t));
	cs->v = mem_calloc(n, sizeof(*cs->v));
	int rc = -ENOMEM;
	if (!slot || !hash || !cause_of || !cs->v)
		goto out;
	char pat[2 * DIFF_VAL_MAX + 8];
	for (size_t i = 0; i < v->n_gr; i++) {
		const struct diff_group *g = &v->gr[i];
		cause_of[i] = UINT32_MAX;
		if (!g->count)
			continue; /* seen only between primary and secondary */
		size_t ll = cause_loc(g->location);
		diff_group_pattern(g, pat, sizeof(pat));
		uint8_t noise = g->noise;
		uint64_t h = fnv(0xcbf29ce484222325ull, &g->kind, 1);
		h = fnv(h, &noise, 1);
		h = fnv(h, g->location, ll);
		h = fnv(h, "\0", 1);
		h = fnv(h, pat, strlen(pat));
		size_t k = h & (nb - 1);
		for (; slot[k]; k = (k + 1) & (nb - 1)) {
			const struct diff_rootcause *c = &cs->v[slot[k] - 1];
			if (hash[slot[k] - 1] == h && c->kind == g->kind && c->noise == noise &&
			    strlen(c->location) == ll && !memcmp(c->location, g->location, ll) &&
			    !strcmp(c->pattern, pat))
				break;
		}
		if (!slot[k]) {
			struct diff_rootcause *c = &cs->v[cs->n];
			c->kind = g->kind;
			c->noise = noise;
			c->severity = severity_of(g->kind, g->location);
			c->location = mem_alloc(ll + 1);
			c->pattern = mem_strdup(pat);
			if (!c->location || !c->pattern) {
				mem_free(c->location);
				mem_free(c->pattern);
				c->location = c->pattern = NULL;
				goto out;
			}
			memcpy(c->location, g->location, ll);
			c->location[ll] = '\0';
			hash[cs->n] = h;
			slot[k] = (uint32_t)++cs->n;
		}
		cause_of[i] = slot[k] - 1;
		cs->v[slot[k] - 1].n_groups++;
	}
	for (size_t i = 0; i < cs->n; i++) {
		cs->v[i].groups = mem_alloc(cs->v[i].n_groups * sizeof(uint32_t));
		if (!cs->v[i].groups)
			goto out;
		cs->v[i].n_groups = 0;
	}
	for (size_t i = 0; i < v->n_gr; i++)
		if (cause_of[i] != UINT32_MAX) {
			struct diff_rootcause *c = &cs->v[cause_of[i]];
			c->groups[c->n_groups++] = (uint32_t)i;
		}
	for (size_t i = 0; i < cs->n; i++) {
		if (finish_cause(v, &cs->v[i]))
			goto out;
		if (cs->v[i].noise)
			cs->noise++;
		else
			cs->real++;
	}
	qsort(cs->v, cs->n, sizeof(*cs->v), cmp_cause);
	rc = 0;
out:
	mem_free(slot);
	mem_free(hash);
	mem_free(cause_of);
	return rc;
}

/* A section line for endpoint @p name: glob characters escaped. */
static void section(struct dbuf *out, const char *name)
{
	dbuf_putc(out, '[');
	for (const char *p = name; *p; p++) {
		if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
			dbuf_putc(out, '\\');
		dbuf_putc(out, *p);
	}
	dbuf_puts(out, "]\n");
}

void diff_cause_rules(const struct diff_cand *v, const struct diff_rootcause *rc, struct dbuf *out)
{
	char rule[DIFF_LOC_MAX + 32];
	const char *loc = rc->location;
	size_t ll = strlen(loc);
	bool cut = ll >= 3 && !strcmp(loc + ll - 3, "...");
	int from, to, used = 0;
	if (rc->kind == DIFF_K_STATUS && rc->pattern &&
	    sscanf(rc->pattern, "%3d -> %3d%n", &from, &to, &used) == 2 && used > 0)
		/* the transition alone: a later 200 -> 500 there still shows */
		snprintf(rule, sizeof(rule), "ignore status %d -> %d", from, to);
	else if (rc->kind == DIFF_K_STATUS)
		snprintf(rule, sizeof(rule), "ignore status");
	else if (!strncmp(loc, "header:", 7))
		snprintf(rule, sizeof(rule), "ignore header %s", loc + 7);
	else if (!strncmp(loc, "body:$", 6) && !cut)
		snprintf(rule, sizeof(rule), "%s %s",
			 rc->kind == DIFF_K_ORDER ? "unordered" : "ignore path", loc + 5);
	else if (!strncmp(loc, "body:", 5) && !cut)
		snprintf(rule, sizeof(rule), "mask body .+"); /* the whole body, this endpoint */
	else
		return;
	size_t live = 0;
	for (size_t i = 0; i < v->n_ep; i++)
		live += v->ep[i].pairs > 0;
	bool global = rc->n_eps >= live && rc->kind != DIFF_K_STATUS && strncmp(rule, "mask", 4);
	if (global) {
		dbuf_puts(out, "[*]\n");
		dbuf_puts(out, rule);
		return;
	}
	for (uint32_t e = 0; e < rc->n_eps; e++) {
		if (e)
			dbuf_putc(out, '\n');
		section(out, v->ep[rc->eps[e]].name);
		dbuf_puts(out, rule);
	}
}
