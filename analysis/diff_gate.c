/* SPDX-License-Identifier: MIT */
/*
 * diff_gate - `--fail-on` promotion gates: METRIC OP NUMBER[%] evaluated
 * on a finished analysis context (see diff.h; metric list in docs/diff.md).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

const char *const diff_gate_metrics[] = {
    "diff_rate",
    "differing",
    "status_changes",
    "causes",
    "noise_causes",
    "groups",
    "noise_groups",
    "compared",
    "incomplete",
    "incomplete_rate",
    "replay_errors",
    "error_rate",
    "unreplayed",
    "data_incomplete",
    "p50_latency_ratio",
    "p99_latency_ratio",
    "max_p99_latency_ratio",
    NULL,
};

const char *const diff_gate_metric_help[] = {
    "fraction of compared pairs with at least one real difference",
    "number of compared pairs with at least one real difference",
    "number of pairs whose status code changed (not noise)",
    "number of real root causes (the same change joined across endpoints)",
    "number of root causes judged noise (learned or likely)",
    "number of real difference groups (signatures)",
    "number of groups judged noise (learned or likely)",
    "number of pairs compared",
    "number of sessions not compared because the capture was incomplete",
    "incomplete / (compared + incomplete + replay_errors)",
    "number of replayed requests that failed (timeout, refused, reset, ...)",
    "replay_errors / (compared + incomplete + replay_errors)",
    "number of recorded sessions that were not replayed",
    "1 when any data was missing (counters, damaged files, errors), else 0",
    "candidate p50 latency / primary p50 latency, over all pairs",
    "candidate p99 latency / primary p99 latency, over all pairs",
    "the largest per-endpoint p99 latency ratio",
    NULL,
};

int diff_gate_parse(struct diff_gate *g, const char *expr, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->text, sizeof(g->text), "%s", expr);
	const char *p = expr;
	while (isspace((unsigned char)*p))
		p++;
	size_t n = 0;
	while (isalnum((unsigned char)p[n]) || p[n] == '_')
		n++;
	int known = -1;
	for (int i = 0; diff_gate_metrics[i]; i++)
		if (strlen(diff_gate_metrics[i]) == n && !strncmp(diff_gate_metrics[i], p, n))
			known = i;
	if (known < 0) {
		snprintf(err, errlen,
			 "unknown metric '%.*s' in '%s' (known: diff_rate, differing, "
			 "status_changes, causes, noise_causes, groups, noise_groups, compared, "
			 "incomplete, "
			 "incomplete_rate, replay_errors, error_rate, unreplayed, data_incomplete, "
			 "p50_latency_ratio, p99_latency_ratio, max_p99_latency_ratio)",
			 (int)n, p, expr);
		return -EINVAL;
	}
	snprintf(g->metric, sizeof(g->metric), "%s", diff_gate_metrics[known]);
	p += n;
	while (isspace((unsigned char)*p))
		p++;
	if (p[0] == '>' && p[1] == '=')
		g->op = DIFF_OP_GE, p += 2;
	else if (p[0] == '<' && p[1] == '=')
		g->op = DIFF_OP_LE, p += 2;
	else if (p[0] == '=' && p[1] == '=')
		g->op = DIFF_OP_EQ, p += 2;
	else if (p[0] == '!' && p[1] == '=')
		g->op = DIFF_OP_NE, p += 2;
	else if (p[0] == '>')
		g->op = DIFF_OP_GT, p += 1;
	else if (p[0] == '<')
		g->op = DIFF_OP_LT, p += 1;
	else if (p[0] == '=')
		g->op = DIFF_OP_EQ, p += 1;
	else {
		snprintf(err, errlen, "expected one of > >= < <= == != after '%s' in '%s'",
			 g->metric, expr);
		return -EINVAL;
	}
	while (isspace((unsigned char)*p))
		p++;
	char *end;
	g->threshold = strtod(p, &end);
	if (end == p) {
		snprintf(err, errlen, "expected a number in '%s'", expr);
		return -EINVAL;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end == '%') {
		g->threshold /= 100.0;
		end++;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end) {
		snprintf(err, errlen, "unexpected '%s' at the end of '%s'", end, expr);
		return -EINVAL;
	}
	return 0;
}

static double metric(const struct diff_cand *v, const char *m)
{
	const struct diff_summary *s = &v->sum;
	double all = (double)(s->compared + s->incomplete + s->replay_errors);
	if (!strcmp(m, "diff_rate"))
		return s->diff_rate;
	if (!strcmp(m, "differing"))
		return (double)s->differing;
	if (!strcmp(m, "status_changes"))
		return (double)s->status_changes;
	if (!strcmp(m, "causes"))
		return (double)s->causes;
	if (!strcmp(m, "noise_causes"))
		return (double)s->noise_causes;
	if (!strcmp(m, "groups"))
		return (double)s->groups;
	if (!strcmp(m, "noise_groups"))
		return (double)s->noise_groups;
	if (!strcmp(m, "compared"))
		return (double)s->compared;
	if (!strcmp(m, "incomplete"))
		return (double)s->incomplete;
	if (!strcmp(m, "incomplete_rate"))
		return all > 0 ? (double)s->incomplete / all : 0;
	if (!strcmp(m, "replay_errors"))
		return (double)s->replay_errors;
	if (!strcmp(m, "error_rate"))
		return all > 0 ? (double)s->replay_errors / all : 0;
	if (!strcmp(m, "unreplayed"))
		return (double)s->unreplayed;
	if (!strcmp(m, "data_incomplete"))
		return s->data_incomplete ? 1 : 0;
	if (!strcmp(m, "p50_latency_ratio"))
		return s->p50_latency_ratio;
	if (!strcmp(m, "p99_latency_ratio"))
		return s->p99_latency_ratio;
	if (!strcmp(m, "max_p99_latency_ratio")) {
		double mx = 0;
		for (size_t i = 0; i < v->n_ep; i++) {
			const struct diff_endpoint *e = &v->ep[i];
			if (e->p99_p && e->p99_c) {
				double r = (double)e->p99_c / (double)e->p99_p;
				if (r > mx)
					mx = r;
			}
		}
		return mx;
	}
	return 0;
}

bool diff_gate_eval(const struct diff_ctx *c, size_t cand, const struct diff_gate *g, double *value,
		    bool *no_evidence)
{
	if (no_evidence)
		*no_evidence = false;
	if (cand >= c->n_cand) {
		if (value)
			*value = 0;
		if (no_evidence)
			*no_evidence = true;
		return true;
	}
	const struct diff_cand *vc = c->cand[cand];
	double v = metric(vc, g->metric);
	if (value)
		*value = v;
	/* Fail closed: a gate over nothing compared proves nothing. */
	if (!vc->sum.compared) {
		if (no_evidence)
			*no_evidence = true;
		return true;
	}
	switch (g->op) {
	case DIFF_OP_GT:
		return v > g->threshold;
	case DIFF_OP_GE:
		return v >= g->threshold;
	case DIFF_OP_LT:
		return v < g->threshold;
	case DIFF_OP_LE:
		return v <= g->threshold;
	case DIFF_OP_EQ:
		return v == g->threshold;
	case DIFF_OP_NE:
		return v != g->threshold;
	}
	return false;
}

int diff_ctx_gates(struct diff_ctx *c, const struct diff_gate *g, size_t n, bool *tripped)
{
	*tripped = false;
	if (!c->finished)
		return -EINVAL;
	for (size_t k = 0; k < c->n_cand; k++)
		for (size_t i = 0; i < n; i++) {
			struct diff_gate_result *nv =
			    mem_realloc(c->gates, (c->n_gates + 1) * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			c->gates = nv;
			struct diff_gate_result *r = &nv[c->n_gates++];
			memset(r, 0, sizeof(*r));
			r->g = g[i];
			r->cand = (uint32_t)k;
			r->tripped = diff_gate_eval(c, k, &g[i], &r->value, &r->no_evidence);
			*tripped |= r->tripped;
		}
	return 0;
}
