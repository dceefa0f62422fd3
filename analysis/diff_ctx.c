/* SPDX-License-Identifier: MIT */
/*
 * diff_ctx - the analysis context (see diff.h): the verdicts (one per
 * candidate role), pairs that are not compared (incomplete capture,
 * replay errors, unreplayed sessions), learned noise, latency
 * percentiles and accounting (counters classed as exclusion, loss or
 * information). Compared pairs are counted in aggregates (diff_agg.c),
 * possibly by several threads (diff_work.c) merged here at the end.
 *
 * Learned noise follows Diffy's idea (github.com/opendiffy/diffy): a
 * location (endpoint + location) whose candidate-vs-primary difference
 * rate is not clearly above its secondary-vs-primary rate is noise. The
 * thresholds are in docs/diff.md and struct diff_params.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "common/mem.h"

#define DIFF_DEF_MEMORY	   ((size_t)256 << 20)
#define DIFF_DEF_WINDOW	   ((size_t)64 << 20)
#define DIFF_DEF_INFLIGHT  ((size_t)64 << 20)
#define DIFF_DEF_EXAMPLES  3
#define DIFF_MAX_EXAMPLES  16
#define DIFF_MAX_GROUPS	   1000000u
#define DIFF_MAX_ENDPOINTS 65536u

struct diff_ctx *diff_ctx_create(const struct diff_params *p)
{
	struct diff_ctx *c = mem_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (p)
		c->p = *p;
	if (!c->p.max_memory)
		c->p.max_memory = DIFF_DEF_MEMORY;
	if (!c->p.max_window)
		c->p.max_window = DIFF_DEF_WINDOW;
	if (!c->p.max_inflight)
		c->p.max_inflight = DIFF_DEF_INFLIGHT;
	if (!c->p.examples)
		c->p.examples = DIFF_DEF_EXAMPLES;
	if (c->p.examples > DIFF_MAX_EXAMPLES)
		c->p.examples = DIFF_MAX_EXAMPLES;
	if (!c->p.max_groups)
		c->p.max_groups = DIFF_MAX_GROUPS;
	if (!c->p.max_endpoints)
		c->p.max_endpoints = DIFF_MAX_ENDPOINTS;
	if (!c->p.threads)
		c->p.threads = 1;
	atomic_init(&c->mem, 0);
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
	c->part.ctx = c;
	c->part.eng = &c->eng;
	c->part.rule_hits = c->rule_hits;
	c->part.cand = c->cand;
	c->part.sec = &c->sec;
	return c;
fail:
	diff_ctx_free(c);
	return NULL;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mem_free(v[i]);
	mem_free(v);
}

void diff_ctx_free(struct diff_ctx *c)
{
	if (!c)
		return;
	if (c->pool)
		(void)diff_pool_finish(c->pool);
	diff_engine_release(&c->eng);
	for (size_t i = 0; i < c->n_cand; i++)
		diff_cand_free(c->cand[i]);
	diff_cand_free(c->sec);
	for (size_t i = 0; i < c->n_ctr; i++) {
		mem_free(c->ctr[i].source);
		mem_free(c->ctr[i].name);
	}
	mem_free(c->ctr);
	free_strs(c->notes, c->n_notes);
	free_strs(c->infos, c->n_infos);
	free_strs(c->inputs, c->n_inputs);
	for (size_t i = 0; i < c->n_origins; i++) {
		mem_free(c->origins[i].id);
		mem_free(c->origins[i].file);
		mem_free(c->origins[i].state);
	}
	mem_free(c->origins);
	for (size_t i = 0; i < c->n_shards; i++) {
		mem_free(c->shards[i].sessions);
		mem_free(c->shards[i].input);
	}
	mem_free(c->shards);
	mem_free(c->gates);
	mem_free(c->rule_hits);
	mem_free(c->global_rs.v);
	diff_hist_release(&c->all_p);
	diff_hist_release(&c->all_c);
	mem_free(c);
}

struct diff_cand *diff_ctx_cand(struct diff_ctx *c, const char *role, size_t rlen,
				const char *target, size_t tlen, bool secondary)
{
	if (secondary && c->sec)
		return c->sec;
	if (!role || !rlen) {
		role = "candidate";
		rlen = 9;
	}
	for (size_t i = 0; !secondary && i < c->n_cand; i++) {
		struct diff_cand *v = c->cand[i];
		if (strlen(v->role) == rlen && !memcmp(v->role, role, rlen)) {
			if (!v->target && target && tlen)
				v->target = mem_strndup(target, tlen); /* NULL stays unknown */
			return v;
		}
	}
	if (!secondary && c->n_cand == DIFF_MAX_CANDIDATES)
		return NULL;
	struct diff_cand *v = diff_cand_new(role, rlen, secondary);
	if (!v)
		return NULL;
	if (target && tlen && !secondary)
		v->target = mem_strndup(target, tlen);
	if (target && tlen && !secondary && !v->target) {
		diff_cand_free(v);
		return NULL;
	}
	if (secondary)
		c->sec = v;
	else
		c->cand[c->n_cand++] = v;
	return v;
}

int diff_ctx_add_candidate(struct diff_ctx *c, const char *role, const char *target)
{
	if (c->finished)
		return -EINVAL;
	if (!diff_ctx_cand(c, role, role ? strlen(role) : 0, target, target ? strlen(target) : 0,
			   false))
		return c->n_cand == DIFF_MAX_CANDIDATES ? -ENOSPC : -ENOMEM;
	return 0;
}

#define INCOMPLETE_FLAGS                                                                           \
	(STORE_F_GAP | STORE_F_NO_RESPONSE | STORE_F_PARSE_ERROR | STORE_F_TUNNEL |                \
	 STORE_F_INCOMPLETE | STORE_F_RESET)

static int cand_unreplayed(struct diff_ctx *c, struct diff_cand *v, const struct store_session *s)
{
	uint32_t ep;
	int rc = diff_endpoint_of(&c->part, v, s, &ep);
	if (rc)
		return rc == -ENOSPC ? (v->sum.over_memcap++, 0) : rc;
	v->ep[ep].unreplayed++;
	v->sum.unreplayed++;
	return 0;
}

int diff_ctx_add_unreplayed_ep(struct diff_ctx *c, size_t i, const char *name, uint64_t n)
{
	uint32_t ep;
	if (c->finished || i >= c->n_cand)
		return -EINVAL;
	struct diff_cand *v = c->cand[i];
	int rc = diff_endpoint_get(&c->part, v, name, strlen(name), &ep, n);
	if (rc < 0)
		return rc;
	v->ep[ep].unreplayed += n;
	v->sum.unreplayed += n;
	return 0;
}

/* The default verdict when nothing named one (no result at all). */
static struct diff_cand *default_cand(struct diff_ctx *c)
{
	return c->n_cand ? c->cand[0] : diff_ctx_cand(c, "candidate", 9, NULL, 0, false);
}

int diff_ctx_add_unreplayed_to(struct diff_ctx *c, size_t i, const struct store_session *s)
{
	if (c->finished || i >= c->n_cand)
		return -EINVAL;
	return cand_unreplayed(c, c->cand[i], s);
}

int diff_ctx_add_unreplayed(struct diff_ctx *c, const struct store_session *s)
{
	if (c->finished)
		return -EINVAL;
	if (!default_cand(c))
		return -ENOMEM;
	for (size_t i = 0; i < c->n_cand; i++) {
		int rc = cand_unreplayed(c, c->cand[i], s);
		if (rc)
			return rc;
	}
	return 0;
}

/* Count one failed replay by its cause (kind and message). */
static void count_cause(struct diff_cand *v, const struct store_result *r)
{
	size_t ml = r->error_msg.len < DIFF_CAUSE_MSG - 1 ? r->error_msg.len : DIFF_CAUSE_MSG - 1;
	for (size_t i = 0; i < v->n_causes; i++) {
		struct diff_cause *k = &v->causes[i];
		if (k->kind == r->error && strlen(k->msg) == ml &&
		    (!ml || !memcmp(k->msg, r->error_msg.ptr, ml))) {
			k->n++;
			return;
		}
	}
	if (v->n_causes == DIFF_MAX_CAUSES) {
		v->causes_other++;
		return;
	}
	struct diff_cause *k = &v->causes[v->n_causes++];
	k->kind = (uint8_t)(r->error < STORE_ERR_COUNT ? r->error : STORE_ERR_OTHER);
	if (ml)
		memcpy(k->msg, r->error_msg.ptr, ml);
	k->msg[ml] = '\0';
	k->n = 1;
}

/* Endpoint of @p s in the context's aggregate @p v, counted in *out;
 * -ENOSPC (a cap) is counted as over_memcap. */
static struct diff_endpoint *account_ep(struct diff_ctx *c, struct diff_cand *v,
					const struct store_session *s, int *rc)
{
	uint32_t ep;
	*rc = diff_endpoint_of(&c->part, v, s, &ep);
	if (*rc == -ENOSPC) {
		v->sum.over_memcap++;
		*rc = 0;
		return NULL;
	}
	return *rc ? NULL : &v->ep[ep];
}

/*
 * A gRPC call its recorded client gave up on at its deadline (reset
 * before any response, at least 9/10 of its grpc-timeout after the
 * request) that the target ended itself with DEADLINE_EXCEEDED (code 4):
 * the same end. Which of the two comes first, the replay's cancel as
 * recorded or the target's answer at the deadline it was sent, is a race
 * (docs/http2.md "Replay"); either is the call cancelled as recorded.
 */
static bool deadline_as_recorded(const struct store_session *s, const struct store_result *r)
{
	if (s->resp.present || r->error != STORE_ERR_NONE || !r->resp.present ||
	    s->ts_reset_ns <= s->ts_req_first_ns)
		return false;
	const struct store_header *st = diff_find_field(&r->resp, "grpc-status");
	const struct store_header *to = diff_find_field(&s->req, "grpc-timeout");
	int64_t ns;
	if (!st || st->value.len != 1 || st->value.ptr[0] != '4' || !to ||
	    !store_grpc_timeout_ns(to->value.ptr, to->value.len, &ns))
		return false;
	return s->ts_reset_ns - s->ts_req_first_ns >= ns / 10 * 9;
}

int diff_ctx_account(struct diff_ctx *c, struct diff_cand *v, const struct store_session *s,
		     const struct store_result *r)
{
	bool cand = !v->secondary;
	int rc = 0;
	if (cand)
		v->sum.results++;
	/* a stream its client cancelled, cancelled here as recorded: nothing
	 * to compare and nothing lost (a replay that failed is a replay
	 * error; one the target ended before the cancel, with an error answer
	 * say, stays incomplete: nobody can tell that it is fine) */
	bool cancelled = store_session_client_cancelled(s);
	if (cancelled && (store_result_cancelled(r) || deadline_as_recorded(s, r))) {
		if (!cand)
			return 1;
		struct diff_endpoint *e = account_ep(c, v, s, &rc);
		if (rc)
			return rc;
		if (e) /* listed with its count, though nothing was compared */
			e->cancelled++;
		v->sum.cancelled++;
		return 1;
	}
	/* incomplete capture: reported as such, never as a difference */
	uint32_t bad = s->flags & INCOMPLETE_FLAGS;
	cancelled &= r->error != STORE_ERR_NONE; /* failed: a replay error below */
	if (!cancelled && (bad || !s->req.present || !s->resp.present || s->resp.truncated)) {
		if (!cand)
			return 1;
		struct diff_endpoint *e = account_ep(c, v, s, &rc);
		if (rc)
			return rc;
		if (e)
			e->incomplete++;
		v->sum.incomplete++;
		for (unsigned b = 0; b < STORE_F_COUNT; b++)
			if (bad & (1u << b))
				v->incomplete_by_flag[b]++;
		if (!bad && !s->resp.present)
			v->incomplete_by_flag[2]++; /* no_response */
		if (!bad && s->resp.present && s->resp.truncated)
			v->incomplete_rec_trunc++; /* no flag: the recorder's body cap */
		return 1;
	}
	/* a gRPC call the replay ended at its deadline: compared as the
	 * DEADLINE_EXCEEDED a client had (diff_part_compare) */
	if ((r->error != STORE_ERR_NONE || !r->resp.present || r->resp.truncated) &&
	    !store_result_grpc_deadline(r)) {
		if (!cand)
			return 1;
		struct diff_endpoint *e = account_ep(c, v, s, &rc);
		if (rc)
			return rc;
		if (r->error == STORE_ERR_NONE && r->resp.present) {
			v->incomplete_cand_trunc++;
			if (e)
				e->incomplete++;
			v->sum.incomplete++;
			return 1;
		}
		if (e)
			e->errors++;
		v->sum.replay_errors++;
		v->errors_by_kind[r->error < STORE_ERR_COUNT ? r->error : STORE_ERR_OTHER]++;
		count_cause(v, r);
		return 1;
	}
	return 0;
}

int diff_ctx_add(struct diff_ctx *c, const struct store_session *s, const struct store_result *r,
		 enum diff_role role)
{
	bool cand = role == DIFF_ROLE_CANDIDATE;
	if (c->finished)
		return -EINVAL;
	struct diff_cand *v = diff_ctx_cand(c, (const char *)r->role.ptr, r->role.len,
					    (const char *)r->target.ptr, r->target.len, !cand);
	if (!v) {
		if (cand && c->n_cand == DIFF_MAX_CANDIDATES) {
			c->over_candidates++;
			return 0;
		}
		return -ENOMEM;
	}
	int rc = diff_ctx_account(c, v, s, r);
	if (rc)
		return rc < 0 ? rc : 0;
	return diff_part_compare(&c->part, v, s, r);
}

/* ---- accounting ---- */

/*
 * Counter classes (docs/report.md "Accounting"). Names are matched on their
 * last part ("capture" trailers prefix them: pipe_, src_, flow_, ...).
 * Exclusions are choices the user made; info names say nothing was lost
 * although a loss word is in them; the rest is judged by its words, so an
 * unknown counter that sounds like loss counts as loss.
 */
static bool ends_with(const char *n, const char *suffix)
{
	size_t a = strlen(n), b = strlen(suffix);
	return a >= b && !strcmp(n + a - b, suffix) && (a == b || n[a - b - 1] == '_');
}

enum diff_ctr_class diff_counter_class(const char *n)
{
	static const char *const exclusions[] = {
	    "skipped_filter",	    /* replay --lane/--method/--path/--since/--until */
	    "skipped_shard",	    /* replay --shard: other shards' connections */
	    "skipped_lane",	    /* diff: sessions of lanes a mirror did not shadow */
	    "skipped_writes",	    /* replay without --allow-writes */
	    "skipped_after_writes", /* ... and the reads those writes touch */
	    "h2_push_promises",	    /* server push: not recorded (docs/http2.md) */
	    "dropped_uncolored",    /* record/mirror --uncolored drop */
	    "dropped_production",   /* mirror: a lane that is the recorded server */
	    "paused",		    /* mirror: dyetap ctl pause; older: dropped_paused */
	    "dropped_rate_limited", /* mirror --lane-rate */
	    "dropped_write_refused" /* mirror without --allow-writes, as skipped_writes */
	};
	static const char *const results[] = {
	    "err_refused",	  "err_reset",	    "err_timeout",
	    "err_bad_response",	  "err_connect",    "err_tls",
	    "err_other",	  "resp_truncated", "groups_over_cap",
	    "endpoints_over_cap", /* diff's caps: that candidate's loss */
	};
	static const char *const infos[] = {
	    "flow_timeouts",	   /* idle connections closed: normal */
	    "evictions",	   /* replay: idle target connections closed for a slot */
	    "redact_dropped",	   /* values removed by redaction */
	    "redact_json_skipped", /* bodies the redactor could not parse */
	    "write_stalls",	   /* replay waited for its writer: nothing lost */
	    "store_bg_waits",
	    "latency_lost",	    /* latency samples without memory: the pairs were compared */
	    "frames_over_inflight", /* frames over --max-inflight, read alone: nothing lost */
	    /* diff: the secondary's caps cost noise learning, no candidate's pair */
	    "secondary_groups_over_cap",
	    "secondary_endpoints_over_cap",
	};
	/* matched on their end, as the exclusions: lane_L_... */
	static const char *const info_ends[] = {
	    "dropped_loop", /* mirror: its own shadow copies captured again, not production's */
	    /* HTTP/2 requests refused unprocessed (REFUSED_STREAM) and sent
	     * again: answered, or a reset error past 5 tries (RFC 9113 §8.7) */
	    "h2_refused_retried",
	};
	static const char *const losses[] = {
	    "window_closed_early", /* diff: sessions closed before their results came */
	    "fp_ring_full",	   /* fast path: packets the workers' pipelines never saw */
	};
	static const char *const words[] = {
	    "drop",	 "gap",	     "timeout",	 "skip",   "error",	 "trunc",   "lost",
	    "fail",	 "overflow", "memcap",	 "cut",	   "damaged",	 "refused", "reset",
	    "untracked", "evict",    "not_sent", "orphan", "no_response"};
	for (size_t i = 0; i < sizeof(exclusions) / sizeof(exclusions[0]); i++)
		if (ends_with(n, exclusions[i]))
			return DIFF_CTR_EXCLUSION;
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		if (!strcmp(n, results[i]))
			return DIFF_CTR_RESULT;
	for (size_t i = 0; i < sizeof(infos) / sizeof(infos[0]); i++)
		if (!strcmp(n, infos[i]))
			return DIFF_CTR_INFO;
	for (size_t i = 0; i < sizeof(info_ends) / sizeof(info_ends[0]); i++)
		if (ends_with(n, info_ends[i]))
			return DIFF_CTR_INFO;
	for (size_t i = 0; i < sizeof(losses) / sizeof(losses[0]); i++)
		if (!strcmp(n, losses[i]))
			return DIFF_CTR_LOSS;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(n, words[i]))
			return DIFF_CTR_LOSS;
	return DIFF_CTR_INFO;
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
		memset(d, 0, sizeof(*d));
		d->source = mem_strdup(source ? source : "");
		d->name = mem_strdup(v[i].name ? v[i].name : "");
		if (!d->source || !d->name) {
			mem_free(d->source);
			mem_free(d->name);
			return -ENOMEM;
		}
		d->value = v[i].value;
		d->cls = (uint8_t)(v[i].value ? diff_counter_class(d->name) : DIFF_CTR_INFO);
		d->loss = d->cls == DIFF_CTR_LOSS || d->cls == DIFF_CTR_RESULT;
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

int diff_ctx_note_info(struct diff_ctx *c, const char *line)
{
	return push_str(&c->infos, &c->n_infos, line);
}

int diff_ctx_add_input(struct diff_ctx *c, const char *name)
{
	return push_str(&c->inputs, &c->n_inputs, name);
}

/* ---- finish ---- */

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

static const struct diff_cand *sort_cand;

static int cmp_group_loc(const void *a, const void *b)
{
	const struct diff_group *x = &sort_cand->gr[*(const uint32_t *)a];
	const struct diff_group *y = &sort_cand->gr[*(const uint32_t *)b];
	if (x->endpoint != y->endpoint)
		return x->endpoint < y->endpoint ? -1 : 1;
	return strcmp(x->location, y->location);
}

static int cmp_str_tr(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

/* The secondary's groups by endpoint and location (learn_noise). */
struct sec_index {
	const struct diff_cand *s;
	uint32_t *idx; /* s's groups, by endpoint then location */
	size_t n;
};

/* The run of the secondary's groups on endpoint @p ep at @p loc: [*lo, *hi). */
static void sec_run(const struct sec_index *si, uint32_t ep, const char *loc, size_t *lo,
		    size_t *hi)
{
	size_t a = 0, b = si->n;
	while (a < b) { /* the first not before (ep, loc) */
		size_t m = a + (b - a) / 2;
		const struct diff_group *g = &si->s->gr[si->idx[m]];
		int r = g->endpoint != ep ? (g->endpoint < ep ? -1 : 1) : strcmp(g->location, loc);
		if (r < 0)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	while (a < si->n && si->s->gr[si->idx[a]].endpoint == ep &&
	       !strcmp(si->s->gr[si->idx[a]].location, loc))
		a++;
	*hi = a;
}

/* The secondary's pairs on endpoint @p name, and its pairs differing at
 * @p loc (all kinds and transitions), and with exactly @p kind and
 * transition @p tr there. */
static void secondary_counts(const struct diff_ctx *c, const struct sec_index *si, const char *name,
			     const char *loc, uint8_t kind, const char *tr, uint64_t *pairs,
			     uint64_t *at_loc, uint64_t *at_sig)
{
	*pairs = *at_loc = *at_sig = 0;
	const struct diff_cand *s = c->sec;
	long ep = s ? diff_endpoint_find(s, name) : -1;
	if (ep < 0)
		return;
	*pairs = s->ep[ep].sec_pairs;
	size_t lo, hi;
	sec_run(si, (uint32_t)ep, loc, &lo, &hi);
	for (size_t i = lo; i < hi; i++) {
		const struct diff_group *g = &s->gr[si->idx[i]];
		*at_loc += g->sec;
		if (g->kind == kind && !cmp_str_tr(g->tr, tr))
			*at_sig += g->sec;
	}
}

static void learn_noise(struct diff_ctx *c, struct diff_cand *v)
{
	uint32_t *idx = mem_alloc((v->n_gr ? v->n_gr : 1) * sizeof(uint32_t));
	struct sec_index si = {c->sec, NULL, 0};
	if (c->sec) {
		si.idx = mem_alloc((c->sec->n_gr ? c->sec->n_gr : 1) * sizeof(uint32_t));
		si.n = c->sec->n_gr;
	}
	if (!idx || (c->sec && !si.idx)) {
		mem_free(idx);
		mem_free(si.idx);
		DIFF_LOG(LOG_WARN, "out of memory: noise not learned");
		return;
	}
	for (size_t i = 0; i < si.n; i++)
		si.idx[i] = (uint32_t)i;
	sort_cand = c->sec;
	if (si.n)
		qsort(si.idx, si.n, sizeof(uint32_t), cmp_group_loc);
	for (size_t i = 0; i < v->n_gr; i++)
		idx[i] = (uint32_t)i;
	sort_cand = v;
	qsort(idx, v->n_gr, sizeof(uint32_t), cmp_group_loc);
	for (size_t i = 0; i < v->n_gr;) {
		size_t j = i;
		uint64_t cnt = 0;
		const struct diff_group *gi = &v->gr[idx[i]];
		while (j < v->n_gr && v->gr[idx[j]].endpoint == gi->endpoint &&
		       !strcmp(v->gr[idx[j]].location, gi->location)) {
			cnt += v->gr[idx[j]].count;
			j++;
		}
		const struct diff_endpoint *e = &v->ep[gi->endpoint];
		uint64_t sec_pairs, sec, sig;
		secondary_counts(c, &si, e->name, gi->location, gi->kind, gi->tr, &sec_pairs, &sec,
				 &sig);
		double cr = e->pairs ? (double)cnt / (double)e->pairs : 0;
		double sr = sec_pairs ? (double)sec / (double)sec_pairs : 0;
		if (cr > 1)
			cr = 1;
		if (sr > 1)
			sr = 1;
		bool learned = sec_pairs > 0 && sec > 0 &&
			       !(cr >= c->p.noise_ratio * sr && cr - sr >= c->p.noise_delta);
		for (size_t k = i; k < j; k++) {
			struct diff_group *g = &v->gr[idx[k]];
			secondary_counts(c, &si, e->name, g->location, g->kind, g->tr, &sec_pairs,
					 &sec, &sig);
			g->sec = sig;
			g->loc_rate = cr;
			g->sec_rate = sr;
			g->rate = e->pairs ? (double)g->count / (double)e->pairs : 0;
			bool glearned = learned;
			if (g->tr && *g->tr) {
				/* a status transition is learned from the secondary's
				 * same transition alone: 304 -> 200 between primary and
				 * secondary says nothing of a candidate's 206 -> 200 */
				double gc = g->rate > 1 ? 1 : g->rate;
				double gs = sec_pairs ? (double)sig / (double)sec_pairs : 0;
				if (gs > 1)
					gs = 1;
				g->loc_rate = gc;
				g->sec_rate = gs;
				glearned =
				    sec_pairs > 0 && sig > 0 &&
				    !(gc >= c->p.noise_ratio * gs && gc - gs >= c->p.noise_delta);
			}
			if (!strcmp(g->location, DIFF_LOC_OVER))
				g->noise = DIFF_NOISE_NONE; /* unknown differences: real */
			else if (glearned)
				g->noise = DIFF_NOISE_LEARNED;
			else if (!sec_pairs && g->vol * 2 > g->count)
				g->noise = DIFF_NOISE_VOLATILE;
			else
				g->noise = DIFF_NOISE_NONE;
		}
		i = j;
	}
	mem_free(idx);
	mem_free(si.idx);
}

static void percentiles(const struct diff_hist *h, uint64_t *p50, uint64_t *p99)
{
	*p50 = diff_hist_pct(h, 0.50);
	*p99 = diff_hist_pct(h, 0.99);
}

/* A loss every verdict shares: counters, notes, missing shards. */
static bool shared_loss(const struct diff_ctx *c)
{
	bool loss = c->n_notes || c->shard_unreplayed || c->over_candidates;
	for (size_t i = 0; i < c->n_ctr; i++)
		loss |= c->ctr[i].cls == DIFF_CTR_LOSS;
	return loss;
}

bool diff_cand_incomplete(const struct diff_ctx *c, const struct diff_cand *v)
{
	return v->sum.data_incomplete || shared_loss(c);
}

static int cmp_ep_name(const void *a, const void *b)
{
	return strcmp(sort_cand->ep[*(const uint32_t *)a].name,
		      sort_cand->ep[*(const uint32_t *)b].name);
}

/* Endpoints in name order, so reports do not depend on the order pairs came
 * in (a merge of shards reports as the unsharded run). */
static void sort_endpoints(struct diff_cand *v)
{
	if (v->n_ep < 2)
		return;
	uint32_t *order = mem_alloc(v->n_ep * sizeof(uint32_t));
	uint32_t *where = mem_alloc(v->n_ep * sizeof(uint32_t));
	struct diff_endpoint *ne = mem_alloc(v->n_ep * sizeof(*ne));
	if (!order || !where || !ne) {
		mem_free(order);
		mem_free(where);
		mem_free(ne);
		return; /* out of memory: the order of appearance stays */
	}
	for (size_t i = 0; i < v->n_ep; i++)
		order[i] = (uint32_t)i;
	sort_cand = v;
	qsort(order, v->n_ep, sizeof(uint32_t), cmp_ep_name);
	for (size_t i = 0; i < v->n_ep; i++) {
		ne[i] = v->ep[order[i]];
		where[order[i]] = (uint32_t)i;
	}
	memcpy(v->ep, ne, v->n_ep * sizeof(*ne));
	for (size_t i = 0; i < v->n_gr; i++)
		v->gr[i].endpoint = where[v->gr[i].endpoint];
	diff_cand_rehash(v);
	mem_free(order);
	mem_free(where);
	mem_free(ne);
}

static int finish_cand(struct diff_ctx *c, struct diff_cand *v)
{
	sort_endpoints(v);
	learn_noise(c, v);
	struct diff_summary *s = &v->sum;
	int rc = diff_cand_count_pairs(v);
	for (size_t i = 0; i < v->n_gr; i++) {
		if (v->gr[i].count == 0)
			continue; /* seen only between primary and secondary */
		if (v->gr[i].noise)
			s->noise_groups++;
		else
			s->groups++;
	}
	for (size_t i = 0; i < v->n_ep; i++) {
		struct diff_endpoint *e = &v->ep[i];
		/* the secondary's pairs of this endpoint, for the reports */
		long se = c->sec ? diff_endpoint_find(c->sec, e->name) : -1;
		e->sec_pairs = se < 0 ? 0 : c->sec->ep[se].sec_pairs;
		percentiles(&e->lat_p, &e->p50_p, &e->p99_p);
		percentiles(&e->lat_c, &e->p50_c, &e->p99_c);
		diff_hist_merge(&v->all_p, &e->lat_p);
		diff_hist_merge(&v->all_c, &e->lat_c);
	}
	percentiles(&v->all_p, &v->p50_p, &v->p99_p);
	percentiles(&v->all_c, &v->p50_c, &v->p99_c);
	s->unreplayed += c->shard_unreplayed;
	/* requests the capture cut, which the replay did not send (it would
	 * have sent another request): incomplete sessions like those it sent,
	 * though not in the file, so under no endpoint */
	for (size_t i = 0; i < c->n_ctr; i++)
		if (!strcmp(c->ctr[i].name, "skipped_truncated")) {
			s->incomplete += c->ctr[i].value;
			v->incomplete_req_cut += c->ctr[i].value;
		}
	s->secondary_pairs = c->sec ? c->sec->sum.secondary_pairs : 0;
	s->endpoints = v->n_ep;
	s->diff_rate = s->compared ? (double)s->differing / (double)s->compared : 0;
	s->p50_latency_ratio = v->p50_p ? (double)v->p50_c / (double)v->p50_p : 0;
	s->p99_latency_ratio = v->p99_p ? (double)v->p99_c / (double)v->p99_p : 0;
	s->no_evidence = s->compared == 0;
	s->data_incomplete = s->incomplete || s->replay_errors || s->unreplayed || s->over_memcap;
	s->data_incomplete |= shared_loss(c);
	return rc;
}

/*
 * The shards given (docs/diff.md "Merging shards"): one shard alone is a
 * report on that shard (the others' sessions are an exclusion); two or
 * more are the recording, so a shard missing from the set is unreplayed
 * sessions and the shard exclusions cancel out.
 */
static int finish_shards(struct diff_ctx *c)
{
	char line[512];
	if (c->n_shards == 1) {
		snprintf(line, sizeof(line),
			 "scope: %s is shard %u/%u of its recording; the other shards' sessions "
			 "are excluded (give every shard's results to diff them together)",
			 c->shards[0].input, c->shards[0].k, c->shards[0].n);
		return diff_ctx_note_info(c, line);
	}
	if (c->n_shards < 2)
		return 0;
	c->shard_merge = true;
	uint32_t n = c->shards[0].n;
	const uint64_t *sessions = NULL;
	for (size_t i = 0; i < c->n_shards; i++)
		if (c->shards[i].sessions)
			sessions = c->shards[i].sessions;
	size_t o = (size_t)snprintf(line, sizeof(line), "merged %zu of %u shards:", c->n_shards, n);
	for (size_t i = 0; i < c->n_shards && o < sizeof(line); i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, " %u/%u (%s)", c->shards[i].k, n,
				      c->shards[i].input);
	int rc = diff_ctx_note_info(c, line);
	for (uint32_t k = 0; !rc && k < n; k++) {
		bool have = false;
		for (size_t i = 0; i < c->n_shards && !have; i++)
			have = c->shards[i].k == k;
		if (have)
			continue;
		uint64_t m = sessions ? sessions[k] : 0;
		c->shard_unreplayed += m;
		if (sessions)
			snprintf(
			    line, sizeof(line),
			    "shard %u/%u is missing from the merge: its %llu sessions were not "
			    "replayed",
			    k, n, (unsigned long long)m);
		else
			snprintf(line, sizeof(line),
				 "shard %u/%u is missing from the merge: its sessions were not "
				 "replayed (how many is unknown)",
				 k, n);
		rc = diff_ctx_note_incomplete(c, line);
	}
	/* Every shard's skipped_shard is another shard's work. */
	for (size_t i = 0; i < c->n_ctr; i++)
		if (c->ctr[i].cls == DIFF_CTR_EXCLUSION && !strcmp(c->ctr[i].name, "skipped_shard"))
			c->ctr[i].covered = true;
	return rc;
}

/*
 * The analysis's own caps and work, as counters of source "diff" in the
 * accounting (docs/diff.md "Limits"): a cap that cost data is a loss of
 * the candidate it hit (over_memcap in its summary: groups_over_cap and
 * endpoints_over_cap are the candidates' alone, so they add up to the
 * summaries), the secondary's are named apart and are information (it
 * only teaches noise), the others are information.
 */
static int own_counters(struct diff_ctx *c)
{
	uint64_t groups = 0, eps = 0, sec_groups = 0, sec_eps = 0, ex = 0, spilled = 0,
		 lat_lost = 0;
	const struct diff_cand *all[DIFF_MAX_CANDIDATES + 1];
	size_t n = 0;
	for (size_t i = 0; i < c->n_cand; i++)
		all[n++] = c->cand[i];
	if (c->sec)
		all[n++] = c->sec;
	for (size_t i = 0; i < n; i++) {
		const struct diff_cand *v = all[i];
		if (v->secondary) {
			sec_groups += v->groups_dropped;
			sec_eps += v->endpoints_dropped;
		} else {
			groups += v->groups_dropped;
			eps += v->endpoints_dropped;
		}
		ex += v->examples_not_kept;
		spilled += v->combos.spilled;
		for (size_t k = 0; k < v->n_ep; k++)
			lat_lost += v->ep[k].lat_p.lost + v->ep[k].lat_c.lost;
	}
	const struct store_counter v[] = {
	    {"groups_over_cap", groups},
	    {"endpoints_over_cap", eps},
	    {"secondary_groups_over_cap", sec_groups},
	    {"secondary_endpoints_over_cap", sec_eps},
	    {"examples_over_cap", ex},
	    {"signature_sets_spilled", spilled},
	    {"window_closed_early", c->window_early},
	    {"window_orphans", c->window_orphans},
	    {"latency_lost", lat_lost},
	    {"frames_over_inflight", c->frames_over_inflight},
	};
	struct store_counter nz[sizeof(v) / sizeof(v[0])];
	size_t k = 0;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (v[i].value)
			nz[k++] = v[i];
	return k ? diff_ctx_add_counters(c, "diff", nz, k) : 0;
}

/* Root causes of every verdict (diff_causes.h), once groups are final. */
static int finish_causes(struct diff_ctx *c)
{
	for (size_t i = 0; i < c->n_cand; i++) {
		struct diff_cand *v = c->cand[i];
		if (diff_causes_build(v))
			return -ENOMEM;
		v->sum.causes = v->roots->real;
		v->sum.noise_causes = v->roots->noise;
		c->sum.causes += v->sum.causes;
		c->sum.noise_causes += v->sum.noise_causes;
	}
	return 0;
}

int diff_ctx_finish(struct diff_ctx *c)
{
	if (c->finished)
		return -EINVAL;
	c->finished = true;
	if (c->pool) {
		int prc = diff_pool_finish(c->pool);
		c->pool = NULL;
		if (prc)
			return prc;
	}
	if (!default_cand(c) || finish_shards(c) || own_counters(c))
		return -ENOMEM;
	struct diff_summary *t = &c->sum;
	uint64_t findings = c->eng.dropped;
	int rc = 0;
	for (size_t i = 0; i < c->n_cand; i++) {
		struct diff_cand *v = c->cand[i];
		int frc = finish_cand(c, v);
		rc = rc ? rc : frc;
		const struct diff_summary *s = &v->sum;
		t->results += s->results;
		t->compared += s->compared;
		t->differing += s->differing;
		t->noisy_only += s->noisy_only;
		t->incomplete += s->incomplete;
		t->replay_errors += s->replay_errors;
		t->unreplayed += s->unreplayed;
		t->cancelled += s->cancelled;
		t->status_changes += s->status_changes;
		t->groups += s->groups;
		t->noise_groups += s->noise_groups;
		t->over_memcap += s->over_memcap;
		t->endpoints = s->endpoints > t->endpoints ? s->endpoints : t->endpoints;
		t->data_incomplete |= s->data_incomplete;
		t->no_evidence |= s->no_evidence;
		if (c->n_cand > 1) {
			diff_hist_merge(&c->all_p, &v->all_p);
			diff_hist_merge(&c->all_c, &v->all_c);
		}
	}
	if (c->n_cand == 1) {
		c->p50_p = c->cand[0]->p50_p, c->p99_p = c->cand[0]->p99_p;
		c->p50_c = c->cand[0]->p50_c, c->p99_c = c->cand[0]->p99_c;
	} else {
		percentiles(&c->all_p, &c->p50_p, &c->p99_p);
		percentiles(&c->all_c, &c->p50_c, &c->p99_c);
	}
	for (size_t i = 0; i < c->n_cand; i++)
		c->cand[i]->sum.findings_dropped = c->n_cand == 1 ? findings : 0;
	t->secondary_pairs = c->sec ? c->sec->sum.secondary_pairs : 0;
	t->findings_dropped = findings;
	t->diff_rate = t->compared ? (double)t->differing / (double)t->compared : 0;
	t->p50_latency_ratio = c->p50_p ? (double)c->p50_c / (double)c->p50_p : 0;
	t->p99_latency_ratio = c->p99_p ? (double)c->p99_c / (double)c->p99_p : 0;
	t->data_incomplete |= shared_loss(c);
	if (rc)
		DIFF_LOG(LOG_ERROR, "cannot read back the signature sets spilled to disk");
	if (!rc)
		rc = finish_causes(c);
	return rc == -EIO ? -EIO : rc ? -ENOMEM : 0;
}

const struct diff_summary *diff_ctx_summary(const struct diff_ctx *c)
{
	return &c->sum;
}

size_t diff_ctx_n_candidates(const struct diff_ctx *c)
{
	return c->n_cand;
}

const char *diff_ctx_candidate_role(const struct diff_ctx *c, size_t i)
{
	return i < c->n_cand ? c->cand[i]->role : NULL;
}

const struct diff_summary *diff_ctx_candidate_summary(const struct diff_ctx *c, size_t i)
{
	return i < c->n_cand ? &c->cand[i]->sum : NULL;
}

const char *diff_cand_verdict(const struct diff_ctx *c, size_t i)
{
	const struct diff_cand *v = c->cand[i];
	for (size_t k = 0; k < c->n_gates; k++)
		if (c->gates[k].cand == i && c->gates[k].tripped)
			return "fail";
	if (!v->sum.compared)
		return "no_evidence";
	if (v->sum.data_incomplete)
		return "incomplete";
	if (v->sum.differing)
		return "differences";
	return "pass";
}

const char *diff_exclusion_meaning(const char *name)
{
	static const char *const m[][2] = {
	    {"skipped_filter", "left out by replay --lane/--method/--path/--since/--until"},
	    {"skipped_shard", "belong to other shards (replay --shard)"},
	    {"skipped_lane", "of lanes without a target: not shadowed (lane selection)"},
	    {"skipped_writes", "writes not sent without replay --allow-writes"},
	    {"skipped_after_writes", "reads after writes not sent, of what those wrote (replay "
				     "--after-skipped-writes)"},
	    {"h2_push_promises", "HTTP/2 server pushes: pushed responses are not recorded, so "
				 "not compared"},
	    {"dropped_uncolored", "uncolored sessions not kept (--uncolored drop)"},
	    {"dropped_production", "not mirrored: the lane is the recorded server"},
	    {"dropped_rate_limited", "not mirrored over --lane-rate"},
	    {"dropped_write_refused", "writes not mirrored without --allow-writes"},
	    {"paused", "not mirrored while the lane was paused (dyetap ctl pause)"},
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (ends_with(name, m[i][0]))
			return m[i][1];
	return "";
}

static void fmt_utc(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	if (ns <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
}

int diff_ctx_custody(const struct diff_ctx *c, struct dbuf *out)
{
	for (size_t i = 0; i < c->n_origins; i++) {
		const struct diff_origin *o = &c->origins[i];
		char a[40], b[40];
		fmt_utc(o->first_ns, a, sizeof(a));
		fmt_utc(o->last_ns, b, sizeof(b));
		dbuf_printf(out, "recording %s (id %s, %llu sessions, %s .. %s, %s)\n", o->file,
			    *o->id ? o->id : "none", (unsigned long long)o->sessions, a, b,
			    *o->state ? o->state : "state unknown");
	}
	return dbuf_error(out);
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
	const struct diff_group *x = &sort_cand->gr[*(const uint32_t *)a];
	const struct diff_group *y = &sort_cand->gr[*(const uint32_t *)b];
	if ((x->noise != 0) != (y->noise != 0))
		return x->noise ? 1 : -1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int r = strcmp(sort_cand->ep[x->endpoint].name, sort_cand->ep[y->endpoint].name);
	if (r)
		return r;
	r = strcmp(x->location, y->location);
	if (r)
		return r;
	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	return cmp_str_tr(x->tr, y->tr);
}

size_t diff_cand_sorted_groups(const struct diff_cand *v, uint32_t **out)
{
	uint32_t *idx = mem_alloc((v->n_gr ? v->n_gr : 1) * sizeof(uint32_t));
	size_t n = 0;
	*out = idx;
	if (!idx)
		return 0;
	for (size_t i = 0; i < v->n_gr; i++)
		if (v->gr[i].count)
			idx[n++] = (uint32_t)i;
	sort_cand = v;
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

/* Reasons of @p v's own data, each line starting with @p prefix. */
static void own_reasons(const struct diff_ctx *c, const struct diff_cand *v, const char *prefix,
			struct dbuf *out)
{
	const struct diff_summary *s = &v->sum;
	if (s->incomplete) {
		dbuf_printf(out, "%s%llu sessions not compared because their data is incomplete (",
			    prefix, (unsigned long long)s->incomplete);
		bool first = put_named_counts(out, v->incomplete_by_flag, STORE_F_COUNT,
					      diff_flag_name, "flag");
		const struct {
			const char *what;
			uint64_t n;
		} more[] = {
		    {"candidate body truncated", v->incomplete_cand_trunc},
		    {"recorded body truncated (record --max-body)", v->incomplete_rec_trunc},
		    {"request cut by the capture, not sent", v->incomplete_req_cut}};
		for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
			if (more[i].n) {
				dbuf_printf(out, "%s%s: %llu", first ? "" : ", ", more[i].what,
					    (unsigned long long)more[i].n);
				first = false;
			}
		dbuf_puts(out, ")\n");
	}
	if (s->replay_errors) {
		dbuf_printf(out, "%s%llu replayed requests failed (", prefix,
			    (unsigned long long)s->replay_errors);
		put_named_counts(out, v->errors_by_kind, STORE_ERR_COUNT, diff_error_name, "error");
		dbuf_puts(out, ")\n");
	}
	/* sessions of missing shards are a shared note */
	uint64_t own_unreplayed =
	    s->unreplayed > c->shard_unreplayed ? s->unreplayed - c->shard_unreplayed : 0;
	if (own_unreplayed)
		dbuf_printf(out, "%s%llu recorded sessions have no replay result\n", prefix,
			    (unsigned long long)own_unreplayed);
	if (s->over_memcap) {
		/* the caps that refused an entry: raising another does nothing */
		char caps[64] = "";
		static const struct {
			uint8_t bit;
			const char *opt;
		} cap_opts[] = {{DIFF_CAP_GROUPS, "--max-groups"},
				{DIFF_CAP_ENDPOINTS, "--max-endpoints"},
				{DIFF_CAP_MEMORY, "--max-memory"}};
		for (size_t i = 0; i < sizeof(cap_opts) / sizeof(cap_opts[0]); i++)
			if (v->caps_hit & cap_opts[i].bit)
				snprintf(caps + strlen(caps), sizeof(caps) - strlen(caps), "%s%s",
					 caps[0] ? ", " : "", cap_opts[i].opt);
		dbuf_printf(out,
			    "%s%llu pairs or differences over a cap (%s): compared and counted "
			    "under the overflow entries, without their own group or examples\n",
			    prefix, (unsigned long long)s->over_memcap,
			    caps[0] ? caps : "--max-groups, --max-endpoints or --max-memory");
	}
}

static void shared_reasons(const struct diff_ctx *c, struct dbuf *out)
{
	for (size_t i = 0; i < c->n_ctr; i++)
		if (c->ctr[i].cls == DIFF_CTR_LOSS || c->ctr[i].cls == DIFF_CTR_RESULT)
			dbuf_printf(out, "%s: %s = %llu\n", c->ctr[i].source, c->ctr[i].name,
				    (unsigned long long)c->ctr[i].value);
	if (c->over_candidates)
		dbuf_printf(out,
			    "%llu results of candidate roles beyond the first %d not analysed\n",
			    (unsigned long long)c->over_candidates, DIFF_MAX_CANDIDATES);
	for (size_t i = 0; i < c->n_notes; i++)
		dbuf_printf(out, "%s\n", c->notes[i]);
}

int diff_cand_reasons(const struct diff_ctx *c, const struct diff_cand *v, struct dbuf *out)
{
	own_reasons(c, v, "", out);
	shared_reasons(c, out);
	return dbuf_error(out);
}

int diff_ctx_reasons(const struct diff_ctx *c, struct dbuf *out)
{
	for (size_t i = 0; i < c->n_cand; i++) {
		char prefix[128] = "";
		if (c->n_cand > 1)
			snprintf(prefix, sizeof(prefix), "candidate %s: ", c->cand[i]->role);
		own_reasons(c, c->cand[i], prefix, out);
	}
	shared_reasons(c, out);
	return dbuf_error(out);
}
