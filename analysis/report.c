/* SPDX-License-Identifier: MIT */
/*
 * report - terminal, JSON (docs/report.md) and JUnit XML renderings of a
 * finished analysis context: one verdict per candidate role, the chain of
 * custody of the data (the recording, its capture counters, the replay's),
 * exclusions apart from losses. JUnit follows the de-facto schema used by
 * Jenkins, GitLab and most CI servers (testsuites > testsuite > testcase
 * with failure/error/skipped children), one testsuite per candidate. The
 * HTML report is report_html.c.
 *
 * The terminal summary and the JUnit list the largest causes and groups
 * only (diff_causes.h "listing caps", docs/diff.md "Report size"): a
 * reader gets through them in a minute whatever the run's size; the JSON
 * has every cause and group.
 *
 * Renderers append without checking each piece; the buffer's sticky error
 * (dbuf_error()) is their result, so a report cut by its cap is an error,
 * never a document that merely looks whole.
 *
 * XML 1.0 (§2.2 Char) allows tab, LF, CR, U+0020..U+D7FF, U+E000..U+FFFD
 * and U+10000..U+10FFFF; report_escape() replaces anything else (other C0
 * controls, U+FFFE, U+FFFF, invalid UTF-8) with U+FFFD.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "analysis/report.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "dyetap_version.h"

/* Groups listed per kind (differences, noise) in the terminal summary. */
#define TEXT_MAX_GROUPS 10

static const char *noise_reason(uint8_t n)
{
	return n == DIFF_NOISE_LEARNED ? "learned" : n == DIFF_NOISE_VOLATILE ? "volatile" : NULL;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static const char *op_str(enum diff_gate_op op)
{
	static const char *const s[] = {">", ">=", "<", "<=", "==", "!="};
	return s[op];
}

int report_escape(struct dbuf *out, const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0;
	int rc = 0;
	while (i < n && !rc) {
		uint8_t c = p[i];
		const char *rep = NULL;
		switch (c) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			break;
		}
		if (rep) {
			rc = dbuf_puts(out, rep);
			i++;
			continue;
		}
		if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
			/* XML 1.0 forbids most control characters even as references */
			rc = dbuf_puts(out, "\xef\xbf\xbd");
			i++;
			continue;
		}
		if (c < 0x80) {
			/* copy a run of plain ASCII at once */
			size_t j = i;
			while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '&' && p[j] != '<' &&
			       p[j] != '>' && p[j] != '"' && p[j] != '\'')
				j++;
			if (j == i)
				j = i + 1;
			rc = dbuf_append(out, p + i, j - i);
			i = j;
			continue;
		}
		size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		/* U+FFFE and U+FFFF (EF BF BE/BF) are not XML characters */
		bool nonchar = len == 3 && i + 3 <= n && c == 0xef && p[i + 1] == 0xbf &&
			       (p[i + 2] == 0xbe || p[i + 2] == 0xbf);
		if (!nonchar && i + len <= n && jsonw_utf8_valid(p + i, len)) {
			rc = dbuf_append(out, p + i, len);
			i += len;
		} else {
			rc = dbuf_puts(out, "\xef\xbf\xbd");
			i += nonchar ? 3 : 1;
		}
	}
	return rc;
}

static int esc(struct dbuf *out, const char *s)
{
	return report_escape(out, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* Shared pieces                                                       */
/* ------------------------------------------------------------------ */

/* A piece could not be made (out of memory): the report fails. */
static void fail_nomem(struct dbuf *b)
{
	if (!b->err)
		b->err = -ENOMEM;
}

/* Call @p fn for each line of @p text (without its newline). */
static void each_line(const struct dbuf *text, void (*fn)(void *, const char *, size_t), void *arg)
{
	const char *w = text->data ? (const char *)text->data : "";
	while (*w) {
		const char *nl = strchr(w, '\n');
		size_t n = nl ? (size_t)(nl - w) : strlen(w);
		fn(arg, w, n);
		w += n + (nl ? 1 : 0);
	}
}

static const char *cause_text(const struct diff_cause *k, char *buf, size_t len)
{
	/* "tls: certificate verification failed: ..." already names its kind */
	const char *kind = diff_error_name(k->kind);
	size_t kl = kind ? strlen(kind) : 0;
	if (!k->msg[0])
		snprintf(buf, len, "%s", kind ? kind : "error");
	else if (kind && !strncmp(k->msg, kind, kl) && k->msg[kl] == ':')
		snprintf(buf, len, "%s", k->msg);
	else
		snprintf(buf, len, "%s: %s", kind ? kind : "error", k->msg);
	return buf;
}

/* Causes of @p v sorted by count (descending), into @p idx; the number. */
static size_t sorted_causes(const struct diff_cand *v, size_t *idx)
{
	size_t n = v->n_causes;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v->causes[idx[j]].n > v->causes[idx[j - 1]].n; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	return n;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void jnum(struct dbuf *b, double v)
{
	if (v != v || v > 1e300 || v < -1e300)
		v = 0;
	dbuf_printf(b, "%.6g", v);
}

static void jlat(struct dbuf *b, uint64_t p50p, uint64_t p99p, uint64_t p50c, uint64_t p99c,
		 uint64_t np, uint64_t nc)
{
	dbuf_printf(b, "{\"primary_samples\":%llu,\"candidate_samples\":%llu,\"primary_p50_ms\":",
		    (unsigned long long)np, (unsigned long long)nc);
	jnum(b, ms(p50p));
	dbuf_puts(b, ",\"primary_p99_ms\":");
	jnum(b, ms(p99p));
	dbuf_puts(b, ",\"candidate_p50_ms\":");
	jnum(b, ms(p50c));
	dbuf_puts(b, ",\"candidate_p99_ms\":");
	jnum(b, ms(p99c));
	dbuf_puts(b, ",\"p50_ratio\":");
	jnum(b, p50p ? (double)p50c / (double)p50p : 0);
	dbuf_puts(b, ",\"p99_ratio\":");
	jnum(b, p99p ? (double)p99c / (double)p99p : 0);
	dbuf_putc(b, '}');
}

static void jline(void *arg, const char *s, size_t n)
{
	struct dbuf *b = arg;
	if (b->len && b->data[b->len - 1] != '[')
		dbuf_putc(b, ',');
	jsonw_str(b, s, n);
}

/* "key":[one string per line of @p text] */
static void jlines(struct dbuf *b, const char *key, const struct dbuf *text)
{
	dbuf_printf(b, "\"%s\":[", key);
	each_line(text, jline, b);
	dbuf_putc(b, ']');
}

static void jsummary(struct dbuf *b, const struct diff_summary *s, uint64_t p50p, uint64_t p99p,
		     uint64_t p50c, uint64_t p99c, uint64_t np, uint64_t nc)
{
	dbuf_printf(b,
		    "{\"results\":%llu,\"compared\":%llu,\"differing\":%llu,"
		    "\"noisy_only\":%llu,\"diff_rate\":",
		    (unsigned long long)s->results, (unsigned long long)s->compared,
		    (unsigned long long)s->differing, (unsigned long long)s->noisy_only);
	jnum(b, s->diff_rate);
	dbuf_printf(b, ",\"causes\":%llu,\"noise_causes\":%llu", (unsigned long long)s->causes,
		    (unsigned long long)s->noise_causes);
	dbuf_printf(b,
		    ",\"status_changes\":%llu,\"groups\":%llu,\"noise_groups\":%llu,"
		    "\"incomplete\":%llu,\"replay_errors\":%llu,\"unreplayed\":%llu,"
		    "\"cancelled\":%llu,"
		    "\"secondary_pairs\":%llu,\"endpoints\":%llu,\"findings_dropped\":%llu,"
		    "\"over_memcap\":%llu,\"no_evidence\":%s,\"latency\":",
		    (unsigned long long)s->status_changes, (unsigned long long)s->groups,
		    (unsigned long long)s->noise_groups, (unsigned long long)s->incomplete,
		    (unsigned long long)s->replay_errors, (unsigned long long)s->unreplayed,
		    (unsigned long long)s->cancelled, (unsigned long long)s->secondary_pairs,
		    (unsigned long long)s->endpoints, (unsigned long long)s->findings_dropped,
		    (unsigned long long)s->over_memcap, s->no_evidence ? "true" : "false");
	jlat(b, p50p, p99p, p50c, p99c, np, nc);
	dbuf_putc(b, '}');
}

static void jcounts(struct dbuf *b, const uint64_t *v, unsigned n, const char *(*name)(unsigned))
{
	bool first = true;
	dbuf_putc(b, '{');
	for (unsigned k = 0; k < n; k++)
		if (v[k]) {
			dbuf_printf(b, "%s\"%s\":%llu", first ? "" : ",", name(k),
				    (unsigned long long)v[k]);
			first = false;
		}
	dbuf_putc(b, '}');
}

static void jcauses(struct dbuf *b, const struct diff_cand *v)
{
	size_t idx[DIFF_MAX_CAUSES];
	size_t n = sorted_causes(v, idx);
	dbuf_putc(b, '[');
	for (size_t i = 0; i < n; i++) {
		const struct diff_cause *k = &v->causes[idx[i]];
		dbuf_printf(b, "%s{\"count\":%llu,\"kind\":\"%s\",\"message\":", i ? "," : "",
			    (unsigned long long)k->n, diff_error_name(k->kind));
		jsonw_cstr(b, k->msg);
		dbuf_putc(b, '}');
	}
	if (v->causes_other)
		dbuf_printf(b,
			    "%s{\"count\":%llu,\"kind\":\"other\",\"message\":\"(other causes)\"}",
			    n ? "," : "", (unsigned long long)v->causes_other);
	dbuf_putc(b, ']');
}

static void jgate(struct dbuf *b, const struct diff_ctx *c, const struct diff_gate_result *g)
{
	dbuf_puts(b, "{\"expr\":");
	jsonw_cstr(b, g->g.text);
	dbuf_puts(b, ",\"candidate\":");
	jsonw_cstr(b, c->cand[g->cand]->role);
	dbuf_puts(b, ",\"metric\":");
	jsonw_cstr(b, g->g.metric);
	dbuf_printf(b, ",\"op\":\"%s\",\"threshold\":", op_str(g->g.op));
	jnum(b, g->g.threshold);
	dbuf_puts(b, ",\"value\":");
	jnum(b, g->value);
	dbuf_printf(b, ",\"tripped\":%s,\"no_evidence\":%s}", g->tripped ? "true" : "false",
		    g->no_evidence ? "true" : "false");
}

static void jendpoints(struct dbuf *b, const struct diff_cand *v, bool *first)
{
	for (size_t i = 0; i < v->n_ep; i++) {
		const struct diff_endpoint *e = &v->ep[i];
		dbuf_puts(b, *first ? "{\"candidate\":" : ",{\"candidate\":");
		*first = false;
		jsonw_cstr(b, v->role);
		dbuf_puts(b, ",\"endpoint\":");
		jsonw_cstr(b, e->name);
		dbuf_printf(b, ",\"compared\":%llu,\"differing\":%llu,\"diff_rate\":",
			    (unsigned long long)e->pairs, (unsigned long long)e->differing);
		jnum(b, e->pairs ? (double)e->differing / (double)e->pairs : 0);
		dbuf_printf(b,
			    ",\"status_changes\":%llu,\"incomplete\":%llu,\"replay_errors\":%llu,"
			    "\"unreplayed\":%llu,\"cancelled\":%llu,\"secondary_pairs\":%llu,"
			    "\"latency\":",
			    (unsigned long long)e->status_chg, (unsigned long long)e->incomplete,
			    (unsigned long long)e->errors, (unsigned long long)e->unreplayed,
			    (unsigned long long)e->cancelled, (unsigned long long)e->sec_pairs);
		jlat(b, e->p50_p, e->p99_p, e->p50_c, e->p99_c, e->lat_p.n, e->lat_c.n);
		dbuf_putc(b, '}');
	}
}

static void jgroups(struct dbuf *b, const struct diff_cand *v, bool *first)
{
	uint32_t *idx;
	size_t n = diff_cand_sorted_groups(v, &idx);
	if (!idx) {
		fail_nomem(b);
		return;
	}
	char pat[2 * DIFF_VAL_MAX + 8];
	for (size_t i = 0; i < n; i++) {
		const struct diff_group *g = &v->gr[idx[i]];
		dbuf_puts(b, *first ? "{\"candidate\":" : ",{\"candidate\":");
		*first = false;
		jsonw_cstr(b, v->role);
		dbuf_puts(b, ",\"endpoint\":");
		jsonw_cstr(b, v->ep[g->endpoint].name);
		dbuf_puts(b, ",\"location\":");
		jsonw_cstr(b, g->location);
		diff_group_pattern(g, pat, sizeof(pat));
		dbuf_puts(b, ",\"pattern\":");
		jsonw_cstr(b, pat);
		dbuf_printf(b, ",\"kind\":\"%s\",\"count\":%llu,\"rate\":", diff_kind_name(g->kind),
			    (unsigned long long)g->count);
		jnum(b, g->rate);
		dbuf_printf(b, ",\"noise\":%s,\"noise_reason\":", g->noise ? "true" : "false");
		if (g->noise)
			dbuf_printf(b, "\"%s\"", noise_reason(g->noise));
		else
			dbuf_puts(b, "null");
		dbuf_printf(b,
			    ",\"volatile_count\":%llu,\"secondary_count\":%llu,\"location_rate\":",
			    (unsigned long long)g->vol, (unsigned long long)g->sec);
		jnum(b, g->loc_rate);
		dbuf_puts(b, ",\"secondary_rate\":");
		jnum(b, g->sec_rate);
		dbuf_puts(b, ",\"example\":");
		if (g->n_ex) {
			dbuf_printf(b, "{\"session_id\":%llu,\"primary_value\":",
				    (unsigned long long)g->ex[0].session_id);
			jsonw_cstr(b, g->ex[0].pval);
			dbuf_puts(b, ",\"candidate_value\":");
			jsonw_cstr(b, g->ex[0].cval);
			dbuf_puts(b, ",\"request\":");
			jsonw_cstr(b, g->ex[0].request);
			dbuf_puts(b, ",\"primary\":");
			jsonw_cstr(b, g->ex[0].primary);
			dbuf_puts(b, ",\"candidate\":");
			jsonw_cstr(b, g->ex[0].candidate);
			dbuf_putc(b, '}');
		} else {
			dbuf_puts(b, "null");
		}
		/* the whole sample: values only (the first is "example") */
		dbuf_puts(b, ",\"examples\":[");
		for (size_t k = 0; k < g->n_ex; k++) {
			dbuf_printf(b, "%s{\"session_id\":%llu,\"primary_value\":", k ? "," : "",
				    (unsigned long long)g->ex[k].session_id);
			jsonw_cstr(b, g->ex[k].pval);
			dbuf_puts(b, ",\"candidate_value\":");
			jsonw_cstr(b, g->ex[k].cval);
			dbuf_putc(b, '}');
		}
		dbuf_puts(b, "]}");
	}
	mem_free(idx);
}

/* Root causes of verdict @p v (docs/report.md "Causes"). */
static void jroots(struct dbuf *b, const struct diff_cand *v, bool *first)
{
	const struct diff_causes *cs = v->roots;
	struct dbuf rules;
	char pat[2 * DIFF_VAL_MAX + 8];
	dbuf_init(&rules, 1 << 20);
	for (size_t i = 0; cs && i < cs->n; i++) {
		const struct diff_rootcause *rc = &cs->v[i];
		dbuf_puts(b, *first ? "{\"candidate\":" : ",{\"candidate\":");
		*first = false;
		jsonw_cstr(b, v->role);
		dbuf_printf(b, ",\"id\":\"c%zu\",\"severity\":\"%s\",\"kind\":\"%s\",\"location\":",
			    i + 1, diff_severity_name(rc->severity), diff_kind_name(rc->kind));
		jsonw_cstr(b, rc->location);
		dbuf_puts(b, ",\"pattern\":");
		jsonw_cstr(b, rc->pattern);
		dbuf_puts(b, ",\"endpoints\":[");
		for (uint32_t e = 0; e < rc->n_eps; e++) {
			if (e)
				dbuf_putc(b, ',');
			jsonw_cstr(b, v->ep[rc->eps[e]].name);
		}
		dbuf_printf(b, "],\"count\":%llu,\"pairs\":%llu,\"rate\":",
			    (unsigned long long)rc->count, (unsigned long long)rc->pairs);
		jnum(b, rc->rate);
		dbuf_printf(b, ",\"noise\":%s,\"noise_reason\":", rc->noise ? "true" : "false");
		if (rc->noise)
			dbuf_printf(b, "\"%s\"", noise_reason(rc->noise));
		else
			dbuf_puts(b, "null");
		dbuf_reset(&rules);
		diff_cause_rules(v, rc, &rules);
		dbuf_puts(b, ",\"rule\":");
		if (rules.len)
			jsonw_str(b, rules.data, rules.len);
		else
			dbuf_puts(b, "null");
		dbuf_puts(b, ",\"examples\":[");
		for (uint32_t k = 0, n = 0; k < rc->n_groups && n < DIFF_CAUSE_EXAMPLES; k++) {
			const struct diff_group *g = &v->gr[rc->groups[k]];
			const struct diff_example *x = diff_group_example(g);
			if (!x)
				continue;
			dbuf_puts(b, n++ ? ",{\"endpoint\":" : "{\"endpoint\":");
			jsonw_cstr(b, v->ep[g->endpoint].name);
			dbuf_printf(b, ",\"session_id\":%llu,\"location\":",
				    (unsigned long long)x->session_id);
			jsonw_cstr(b, x->iloc[0] ? x->iloc : g->location);
			dbuf_puts(b, ",\"primary_value\":");
			jsonw_cstr(b, x->pval);
			dbuf_puts(b, ",\"candidate_value\":");
			jsonw_cstr(b, x->cval);
			/* the whole messages are the group's example, once in the report */
			dbuf_putc(b, '}');
		}
		dbuf_puts(b, "],\"groups\":[");
		for (uint32_t k = 0; k < rc->n_groups; k++) {
			const struct diff_group *g = &v->gr[rc->groups[k]];
			dbuf_puts(b, k ? ",{\"endpoint\":" : "{\"endpoint\":");
			jsonw_cstr(b, v->ep[g->endpoint].name);
			dbuf_puts(b, ",\"location\":");
			jsonw_cstr(b, g->location);
			diff_group_pattern(g, pat, sizeof(pat));
			dbuf_puts(b, ",\"pattern\":");
			jsonw_cstr(b, pat);
			dbuf_printf(b, ",\"kind\":\"%s\",\"count\":%llu,\"rate\":",
				    diff_kind_name(g->kind), (unsigned long long)g->count);
			jnum(b, g->rate);
			dbuf_putc(b, '}');
		}
		dbuf_puts(b, "]}");
	}
	if (dbuf_error(&rules))
		fail_nomem(b);
	dbuf_release(&rules);
}

static void jcandidate(struct dbuf *b, const struct diff_ctx *c, size_t i)
{
	const struct diff_cand *v = c->cand[i];
	dbuf_puts(b, "{\"role\":");
	jsonw_cstr(b, v->role);
	dbuf_puts(b, ",\"target\":");
	if (v->target)
		jsonw_cstr(b, v->target);
	else
		dbuf_puts(b, "null");
	dbuf_printf(b, ",\"verdict\":\"%s\",\"data_incomplete\":%s,", diff_cand_verdict(c, i),
		    v->sum.data_incomplete ? "true" : "false");
	struct dbuf why;
	dbuf_init(&why, 1 << 20);
	diff_cand_reasons(c, v, &why);
	jlines(b, "incomplete_reasons", &why);
	dbuf_release(&why);
	dbuf_puts(b, ",\"summary\":");
	jsummary(b, &v->sum, v->p50_p, v->p99_p, v->p50_c, v->p99_c, v->all_p.n, v->all_c.n);
	dbuf_puts(b, ",\"accounting\":{\"incomplete_by_reason\":");
	jcounts(b, v->incomplete_by_flag, STORE_F_COUNT, diff_flag_name);
	dbuf_printf(
	    b,
	    ",\"candidate_truncated\":%llu,\"recorded_truncated\":%llu,\"requests_cut\":%llu,"
	    "\"replay_errors_by_kind\":",
	    (unsigned long long)v->incomplete_cand_trunc,
	    (unsigned long long)v->incomplete_rec_trunc, (unsigned long long)v->incomplete_req_cut);
	jcounts(b, v->errors_by_kind, STORE_ERR_COUNT, diff_error_name);
	dbuf_puts(b, ",\"error_causes\":");
	jcauses(b, v);
	dbuf_puts(b, "},\"gates\":[");
	bool first = true;
	for (size_t k = 0; k < c->n_gates; k++)
		if (c->gates[k].cand == i) {
			if (!first)
				dbuf_putc(b, ',');
			first = false;
			jgate(b, c, &c->gates[k]);
		}
	dbuf_puts(b, "],\"causes\":[");
	first = true;
	jroots(b, v, &first);
	dbuf_puts(b, "],\"endpoints\":[");
	first = true;
	jendpoints(b, v, &first);
	dbuf_puts(b, "],\"differences\":[");
	first = true;
	jgroups(b, v, &first);
	dbuf_puts(b, "]}");
}

static const char *class_name(uint8_t cls)
{
	static const char *const n[] = {"info", "exclusion", "loss", "loss"};
	return cls < 4 ? n[cls] : "info";
}

int report_json(const struct diff_ctx *c, struct dbuf *b)
{
	if (!c->finished)
		return -EINVAL;
	const struct diff_summary *s = &c->sum;
	struct dbuf why;
	dbuf_init(&why, 1 << 20);
	diff_ctx_reasons(c, &why);
	dbuf_puts(b, "{\"schema\":\"dyetap-diff-report/1\",\"tool_version\":");
	jsonw_cstr(b, DYETAP_VERSION);
	dbuf_puts(b, ",\"inputs\":[");
	for (size_t i = 0; i < c->n_inputs; i++) {
		if (i)
			dbuf_putc(b, ',');
		jsonw_cstr(b, c->inputs[i]);
	}
	dbuf_puts(b, "],\"recordings\":[");
	for (size_t i = 0; i < c->n_origins; i++) {
		const struct diff_origin *o = &c->origins[i];
		dbuf_puts(b, i ? ",{\"id\":" : "{\"id\":");
		jsonw_cstr(b, o->id);
		dbuf_puts(b, ",\"file\":");
		jsonw_cstr(b, o->file);
		dbuf_printf(b, ",\"first_ns\":%lld,\"last_ns\":%lld,\"sessions\":%llu,\"state\":",
			    (long long)o->first_ns, (long long)o->last_ns,
			    (unsigned long long)o->sessions);
		jsonw_cstr(b, o->state);
		dbuf_putc(b, '}');
	}
	dbuf_puts(b, "],\"shards\":");
	if (c->n_shards) {
		dbuf_printf(b, "{\"n\":%u,\"merged\":%s,\"present\":[", c->shards[0].n,
			    c->shard_merge ? "true" : "false");
		for (size_t i = 0; i < c->n_shards; i++)
			dbuf_printf(b, "%s%u", i ? "," : "", c->shards[i].k);
		dbuf_printf(b, "],\"unreplayed_missing\":%llu}",
			    (unsigned long long)c->shard_unreplayed);
	} else {
		dbuf_puts(b, "null");
	}
	struct dbuf info;
	dbuf_init(&info, 1 << 20);
	for (size_t i = 0; i < c->n_infos; i++)
		dbuf_printf(&info, "%s\n", c->infos[i]);
	dbuf_putc(b, ',');
	jlines(b, "scope", &info);
	dbuf_release(&info);
	dbuf_printf(b, ",\"data_incomplete\":%s,", s->data_incomplete ? "true" : "false");
	jlines(b, "incomplete_reasons", &why);
	dbuf_release(&why);
	dbuf_puts(b, ",\"exclusions\":[");
	bool first = true;
	for (size_t i = 0; i < c->n_ctr; i++) {
		const struct diff_counter *k = &c->ctr[i];
		if (k->cls != DIFF_CTR_EXCLUSION || k->covered)
			continue;
		dbuf_puts(b, first ? "{\"source\":" : ",{\"source\":");
		first = false;
		jsonw_cstr(b, k->source);
		dbuf_puts(b, ",\"name\":");
		jsonw_cstr(b, k->name);
		dbuf_printf(b, ",\"value\":%llu,\"meaning\":", (unsigned long long)k->value);
		jsonw_cstr(b, diff_exclusion_meaning(k->name));
		dbuf_putc(b, '}');
	}
	dbuf_puts(b, "],\"summary\":");
	jsummary(b, s, c->p50_p, c->p99_p, c->p50_c, c->p99_c,
		 c->n_cand == 1 ? c->cand[0]->all_p.n : c->all_p.n,
		 c->n_cand == 1 ? c->cand[0]->all_c.n : c->all_c.n);
	uint64_t flags[STORE_F_COUNT] = {0}, kinds[STORE_ERR_COUNT] = {0}, trunc = 0, rtrunc = 0,
		 cut = 0;
	for (size_t i = 0; i < c->n_cand; i++) {
		for (unsigned k = 0; k < STORE_F_COUNT; k++)
			flags[k] += c->cand[i]->incomplete_by_flag[k];
		for (unsigned k = 0; k < STORE_ERR_COUNT; k++)
			kinds[k] += c->cand[i]->errors_by_kind[k];
		trunc += c->cand[i]->incomplete_cand_trunc;
		rtrunc += c->cand[i]->incomplete_rec_trunc;
		cut += c->cand[i]->incomplete_req_cut;
	}
	dbuf_puts(b, ",\"accounting\":{\"incomplete_by_reason\":");
	jcounts(b, flags, STORE_F_COUNT, diff_flag_name);
	dbuf_printf(
	    b,
	    ",\"candidate_truncated\":%llu,\"recorded_truncated\":%llu,\"requests_cut\":%llu,"
	    "\"replay_errors_by_kind\":",
	    (unsigned long long)trunc, (unsigned long long)rtrunc, (unsigned long long)cut);
	jcounts(b, kinds, STORE_ERR_COUNT, diff_error_name);
	dbuf_puts(b, ",\"counters\":[");
	for (size_t i = 0; i < c->n_ctr; i++) {
		dbuf_puts(b, i ? ",{\"source\":" : "{\"source\":");
		jsonw_cstr(b, c->ctr[i].source);
		dbuf_puts(b, ",\"name\":");
		jsonw_cstr(b, c->ctr[i].name);
		dbuf_printf(b, ",\"value\":%llu,\"loss\":%s,\"class\":\"%s\"}",
			    (unsigned long long)c->ctr[i].value, c->ctr[i].loss ? "true" : "false",
			    class_name(c->ctr[i].cls));
	}
	dbuf_puts(b, "]},\"gates\":[");
	for (size_t i = 0; i < c->n_gates; i++) {
		if (i)
			dbuf_putc(b, ',');
		jgate(b, c, &c->gates[i]);
	}
	dbuf_puts(b, "],\"causes\":[");
	first = true;
	for (size_t i = 0; i < c->n_cand; i++)
		jroots(b, c->cand[i], &first);
	dbuf_puts(b, "],\"endpoints\":[");
	first = true;
	for (size_t i = 0; i < c->n_cand; i++)
		jendpoints(b, c->cand[i], &first);
	dbuf_puts(b, "],\"differences\":[");
	first = true;
	for (size_t i = 0; i < c->n_cand; i++)
		jgroups(b, c->cand[i], &first);
	dbuf_puts(b, "],\"candidates\":[");
	for (size_t i = 0; i < c->n_cand; i++) {
		if (i)
			dbuf_putc(b, ',');
		jcandidate(b, c, i);
	}
	dbuf_puts(b, "],\"rules\":[");
	const struct noise_rules *rs = c->p.rules;
	for (size_t i = 0; rs && i < rs->n; i++) {
		dbuf_printf(b, "%s{\"line\":%u,\"rule\":", i ? "," : "", rs->v[i].line);
		jsonw_cstr(b, rs->v[i].text);
		dbuf_puts(b, ",\"scope\":");
		if (rs->v[i].scope)
			jsonw_cstr(b, rs->v[i].scope);
		else
			dbuf_puts(b, "null");
		dbuf_printf(b, ",\"hits\":%llu}",
			    (unsigned long long)(c->rule_hits ? c->rule_hits[i] : 0));
	}
	dbuf_puts(b, "]}\n");
	return dbuf_error(b);
}

/* ------------------------------------------------------------------ */
/* JUnit XML                                                           */
/* ------------------------------------------------------------------ */

/* The failed testcases of @p v's real causes: one per listed cause, and one
 * for those left out when there are any. */
static size_t junit_n_causes(const struct diff_cand *v)
{
	const struct diff_causes *cs = v->roots;
	if (!cs || !cs->real)
		return 0;
	uint64_t out = report_causes_left_out(cs, false, REPORT_CAUSES_PER_SEV);
	return (size_t)(cs->real - out) + (out ? 1 : 0);
}

/* One failed testcase per listed real cause, before the endpoints: what
 * changed, where, an example, and the rules that would accept it; then one
 * for the causes left out (junit_n_causes() in all). */
static void junit_causes(struct dbuf *b, const struct diff_cand *v)
{
	const struct diff_causes *cs = v->roots;
	struct report_cause_pick pick = {{{0}}};
	struct dbuf rules;
	dbuf_init(&rules, 1 << 20);
	for (size_t i = 0; cs && i < cs->n; i++) {
		const struct diff_rootcause *rc = &cs->v[i];
		if (rc->noise || !report_cause_pick(&pick, rc, REPORT_CAUSES_PER_SEV))
			continue;
		dbuf_printf(b, "    <testcase classname=\"dyetap.diff.cause\" name=\"c%zu %s ",
			    i + 1, diff_kind_name(rc->kind));
		esc(b, rc->location);
		if (rc->pattern[0]) {
			dbuf_puts(b, " (");
			esc(b, rc->pattern);
			dbuf_putc(b, ')');
		}
		dbuf_printf(b,
			    "\" time=\"0\">\n      <failure type=\"%s\" message=\"%llu of %llu "
			    "responses on %u endpoints\">",
			    diff_severity_name(rc->severity), (unsigned long long)rc->count,
			    (unsigned long long)rc->pairs, rc->n_eps);
		for (uint32_t k = 0; k < rc->n_groups && k < REPORT_CAUSE_ROWS; k++) {
			const struct diff_group *g = &v->gr[rc->groups[k]];
			dbuf_puts(b, k ? "\n" : "");
			esc(b, v->ep[g->endpoint].name);
			dbuf_puts(b, " ");
			esc(b, g->location);
			dbuf_printf(b, " %s: %llu (%.2f%%)", diff_kind_name(g->kind),
				    (unsigned long long)g->count, g->rate * 100);
		}
		if (rc->n_groups > REPORT_CAUSE_ROWS)
			dbuf_printf(
			    b, "\n%u more groups (as many pairs each or fewer) in the JSON report",
			    rc->n_groups - REPORT_CAUSE_ROWS);
		const struct diff_example *x =
		    rc->n_groups ? diff_group_example(&v->gr[rc->groups[0]]) : NULL;
		if (x) {
			dbuf_printf(b, "\nexample session %llu at ",
				    (unsigned long long)x->session_id);
			esc(b, x->iloc[0] ? x->iloc : v->gr[rc->groups[0]].location);
			dbuf_puts(b, ": primary ");
			esc(b, x->pval);
			dbuf_puts(b, " / candidate ");
			esc(b, x->cval);
		}
		dbuf_reset(&rules);
		diff_cause_rules(v, rc, &rules);
		if (rules.len > REPORT_RULE_BYTES) {
			dbuf_printf(
			    b,
			    "\nto accept it as intended: its diff rules, a section for each "
			    "of its %u endpoints, are in the JSON report",
			    rc->n_eps);
		} else if (rules.len) {
			dbuf_puts(b, "\nto accept it as intended (diff rules):\n");
			report_escape(b, rules.data, rules.len);
		}
		dbuf_puts(b, "</failure>\n    </testcase>\n");
	}
	uint64_t more = report_causes_left_out(cs, false, REPORT_CAUSES_PER_SEV);
	if (more)
		dbuf_printf(
		    b,
		    "    <testcase classname=\"dyetap.diff.cause\" name=\"%llu more causes\" "
		    "time=\"0\">\n      <failure type=\"more_causes\" message=\"%llu more "
		    "causes\">%llu more real causes (the testcases above are the %d largest "
		    "of each severity) are in the JSON report</failure>\n    </testcase>\n",
		    (unsigned long long)more, (unsigned long long)more, (unsigned long long)more,
		    REPORT_CAUSES_PER_SEV);
	if (dbuf_error(&rules))
		fail_nomem(b);
	dbuf_release(&rules);
}

struct junit_counts {
	size_t tests, failures, errors, skipped;
};

/* Outcome of an endpoint's testcase. */
enum junit_outcome { JU_PASS, JU_FAIL, JU_ERROR, JU_SKIP };

static enum junit_outcome junit_ep_outcome(const struct diff_endpoint *e)
{
	if (e->differing)
		return JU_FAIL;
	if (e->errors || e->incomplete)
		return JU_ERROR;
	return e->pairs ? JU_PASS : JU_SKIP;
}

static const struct diff_endpoint *junit_sort_eps;

/* Most telling first: differing (most first), then with errors or
 * incomplete sessions (most first), then by pairs; ties by name, so the
 * order does not depend on the order endpoints were met in. */
static int cmp_junit_ep(const void *a, const void *b)
{
	const struct diff_endpoint *x = &junit_sort_eps[*(const uint32_t *)a];
	const struct diff_endpoint *y = &junit_sort_eps[*(const uint32_t *)b];
	if (x->differing != y->differing)
		return x->differing > y->differing ? -1 : 1;
	uint64_t xe = x->errors + x->incomplete, ye = y->errors + y->incomplete;
	if (xe != ye)
		return xe > ye ? -1 : 1;
	if (x->pairs != y->pairs)
		return x->pairs > y->pairs ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The endpoints of @p v that get their own testcase, in the order listed
 * (at most REPORT_JUNIT_ENDPOINTS; *@p n their number); NULL when out of
 * memory. Called from one thread (reports are rendered by the caller). */
static uint32_t *junit_eps(const struct diff_cand *v, size_t *n)
{
	uint32_t *o = mem_alloc((v->n_ep ? v->n_ep : 1) * sizeof(uint32_t));
	if (!o)
		return NULL;
	for (size_t i = 0; i < v->n_ep; i++)
		o[i] = (uint32_t)i;
	*n = v->n_ep;
	if (v->n_ep > REPORT_JUNIT_ENDPOINTS) {
		junit_sort_eps = v->ep;
		qsort(o, v->n_ep, sizeof(uint32_t), cmp_junit_ep);
		junit_sort_eps = NULL;
		*n = REPORT_JUNIT_ENDPOINTS;
	}
	return o;
}

/* The outcome of the testcase "N more endpoints": the worst of theirs. */
static enum junit_outcome junit_more_outcome(const struct diff_cand *v, const uint32_t *o,
					     size_t listed, uint64_t *differing, uint64_t *errors)
{
	enum junit_outcome w = JU_PASS;
	*differing = *errors = 0;
	for (size_t i = listed; i < v->n_ep; i++) {
		const struct diff_endpoint *e = &v->ep[o[i]];
		enum junit_outcome x = junit_ep_outcome(e);
		*differing += x == JU_FAIL;
		*errors += x == JU_ERROR;
		if (x == JU_FAIL || (x == JU_ERROR && w != JU_FAIL))
			w = x;
	}
	return w;
}

/* The testcases junit_suite() writes for candidate @p ci, by outcome. */
static struct junit_counts junit_suite_counts(const struct diff_ctx *c, size_t ci)
{
	const struct diff_cand *v = c->cand[ci];
	const struct diff_summary *s = &v->sum;
	struct junit_counts n = {1, 0, 0, 0}; /* data completeness */
	size_t listed = 0;
	uint32_t *o = junit_eps(v, &listed);
	for (size_t i = 0; o && i < listed; i++) {
		enum junit_outcome x = junit_ep_outcome(&v->ep[o[i]]);
		n.tests++;
		n.failures += x == JU_FAIL;
		n.errors += x == JU_ERROR;
		n.skipped += x == JU_SKIP;
	}
	if (o && listed < v->n_ep) { /* the testcase "N more endpoints" */
		uint64_t d, e;
		enum junit_outcome x = junit_more_outcome(v, o, listed, &d, &e);
		n.tests++;
		n.failures += x == JU_FAIL;
		n.errors += x == JU_ERROR;
	}
	mem_free(o);
	if (s->data_incomplete || s->no_evidence)
		n.failures++;
	for (size_t i = 0; i < c->n_gates; i++) {
		n.tests += c->gates[i].cand == ci;
		n.failures += c->gates[i].cand == ci && c->gates[i].tripped;
	}
	size_t n_causes = junit_n_causes(v); /* failed testcases all */
	n.tests += n_causes;
	n.failures += n_causes;
	return n;
}

/* Candidate @p ci's testsuite, whose testcases @p n counts (junit_suite_counts()). */
static void junit_suite(struct dbuf *b, const struct diff_ctx *c, size_t ci,
			const struct junit_counts *n)
{
	const struct diff_cand *v = c->cand[ci];
	const struct diff_summary *s = &v->sum;
	uint32_t *idx;
	size_t ng = diff_cand_sorted_groups(v, &idx);
	if (!idx) {
		fail_nomem(b);
		return;
	}
	/* the real groups of each endpoint, largest first: first[e], then next[k]
	 * (positions in idx; UINT32_MAX ends a list), without a pass over every
	 * group per endpoint */
	uint32_t *first = mem_alloc((v->n_ep ? v->n_ep : 1) * sizeof(uint32_t));
	uint32_t *next = mem_alloc((ng ? ng : 1) * sizeof(uint32_t));
	if (!first || !next) {
		mem_free(first);
		mem_free(next);
		mem_free(idx);
		fail_nomem(b);
		return;
	}
	for (size_t i = 0; i < v->n_ep; i++)
		first[i] = UINT32_MAX;
	for (size_t k = ng; k-- > 0;) {
		const struct diff_group *g = &v->gr[idx[k]];
		if (g->noise)
			continue;
		next[k] = first[g->endpoint];
		first[g->endpoint] = (uint32_t)k;
	}
	dbuf_puts(b, "  <testsuite name=\"dyetap diff");
	if (c->n_cand > 1) {
		dbuf_putc(b, ' ');
		esc(b, v->role);
	}
	dbuf_printf(b,
		    "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
		    "time=\"0\">\n    <properties>\n",
		    n->tests, n->failures, n->errors, n->skipped);
	dbuf_puts(b, "      <property name=\"candidate\" value=\"");
	esc(b, v->role);
	dbuf_puts(b, "\"/>\n      <property name=\"target\" value=\"");
	esc(b, v->target ? v->target : "");
	dbuf_printf(b,
		    "\"/>\n"
		    "      <property name=\"verdict\" value=\"%s\"/>\n"
		    "      <property name=\"compared\" value=\"%llu\"/>\n"
		    "      <property name=\"differing\" value=\"%llu\"/>\n"
		    "      <property name=\"diff_rate\" value=\"%.6g\"/>\n"
		    "      <property name=\"data_incomplete\" value=\"%s\"/>\n    </properties>\n",
		    diff_cand_verdict(c, ci), (unsigned long long)s->compared,
		    (unsigned long long)s->differing, s->diff_rate,
		    s->data_incomplete ? "true" : "false");
	/* data completeness first: a clean run on missing data must not look clean */
	dbuf_puts(
	    b, "    <testcase classname=\"dyetap.diff\" name=\"data completeness\" time=\"0\">\n");
	if (s->data_incomplete || s->no_evidence) {
		struct dbuf why;
		dbuf_init(&why, 1 << 20);
		if (s->no_evidence)
			dbuf_puts(&why, "no evidence: 0 responses compared\n");
		diff_cand_reasons(c, v, &why);
		dbuf_printf(b, "      <failure type=\"incomplete\" message=\"%s\">",
			    s->data_incomplete ? "data incomplete" : "no evidence");
		report_escape(b, why.data ? why.data : (const uint8_t *)"", why.len);
		dbuf_puts(b, "</failure>\n");
		dbuf_release(&why);
	}
	dbuf_puts(b, "    </testcase>\n");
	junit_causes(b, v);
	size_t n_listed = 0;
	uint32_t *eo = junit_eps(v, &n_listed);
	if (!eo) {
		mem_free(first);
		mem_free(next);
		mem_free(idx);
		fail_nomem(b);
		return;
	}
	for (size_t li = 0; li < n_listed; li++) {
		size_t i = eo[li];
		const struct diff_endpoint *e = &v->ep[i];
		dbuf_puts(b, "    <testcase classname=\"dyetap.diff.endpoint\" name=\"");
		esc(b, e->name);
		dbuf_puts(b, "\" time=\"0\">\n");
		if (e->differing) {
			size_t nsig = 0;
			for (uint32_t k = first[i]; k != UINT32_MAX; k = next[k])
				nsig++;
			dbuf_printf(b,
				    "      <failure type=\"difference\" message=\"%llu of %llu "
				    "responses differ; %zu signatures\">",
				    (unsigned long long)e->differing, (unsigned long long)e->pairs,
				    nsig);
			size_t listed = 0;
			for (uint32_t k = first[i]; k != UINT32_MAX && listed < REPORT_CAUSE_ROWS;
			     k = next[k], listed++) {
				const struct diff_group *g = &v->gr[idx[k]];
				dbuf_puts(b, "\n");
				esc(b, e->name);
				dbuf_puts(b, " ");
				esc(b, g->location);
				dbuf_printf(b, " %s: %llu (%.2f%%)", diff_kind_name(g->kind),
					    (unsigned long long)g->count, g->rate * 100);
				if (g->n_ex) {
					dbuf_printf(b, "\n  example session %llu: primary ",
						    (unsigned long long)g->ex[0].session_id);
					esc(b, g->ex[0].pval);
					dbuf_puts(b, " / candidate ");
					esc(b, g->ex[0].cval);
				}
			}
			if (nsig > listed)
				dbuf_printf(b,
					    "\n%zu more signatures (as many responses each or "
					    "fewer) in the JSON report",
					    nsig - listed);
			dbuf_puts(b, "</failure>\n");
		} else if (e->errors || e->incomplete) {
			dbuf_printf(
			    b,
			    "      <error type=\"incomplete\" message=\"%llu replay errors, "
			    "%llu incomplete sessions\"/>\n",
			    (unsigned long long)e->errors, (unsigned long long)e->incomplete);
		} else if (!e->pairs && e->cancelled) {
			dbuf_printf(
			    b,
			    "      <skipped message=\"no pair compared: %llu streams cancelled "
			    "by their client\"/>\n",
			    (unsigned long long)e->cancelled);
		} else if (!e->pairs) {
			dbuf_puts(b, "      <skipped message=\"no pair compared\"/>\n");
		}
		dbuf_puts(b, "    </testcase>\n");
	}
	if (n_listed < v->n_ep) {
		uint64_t d, er;
		enum junit_outcome x = junit_more_outcome(v, eo, n_listed, &d, &er);
		dbuf_printf(b,
			    "    <testcase classname=\"dyetap.diff.endpoint\" name=\"%zu more "
			    "endpoints\" time=\"0\">\n",
			    v->n_ep - n_listed);
		if (x == JU_FAIL)
			dbuf_printf(b,
				    "      <failure type=\"difference\" message=\"%llu of these "
				    "%zu endpoints have differences, %llu more replay errors or "
				    "incomplete sessions: the JSON report lists them\"/>\n",
				    (unsigned long long)d, v->n_ep - n_listed,
				    (unsigned long long)er);
		else if (x == JU_ERROR)
			dbuf_printf(b,
				    "      <error type=\"incomplete\" message=\"%llu of these %zu "
				    "endpoints have replay errors or incomplete sessions: the "
				    "JSON report lists them\"/>\n",
				    (unsigned long long)er, v->n_ep - n_listed);
		dbuf_puts(b, "    </testcase>\n");
	}
	mem_free(eo);
	for (size_t i = 0; i < c->n_gates; i++) {
		const struct diff_gate_result *g = &c->gates[i];
		if (g->cand != ci)
			continue;
		dbuf_puts(b, "    <testcase classname=\"dyetap.diff.gate\" name=\"");
		esc(b, g->g.text);
		dbuf_puts(b, "\" time=\"0\">\n");
		if (g->tripped && g->no_evidence) {
			dbuf_puts(b, "      <failure type=\"gate\" message=\"no evidence: 0 "
				     "responses compared\"/>\n");
		} else if (g->tripped) {
			dbuf_puts(b, "      <failure type=\"gate\" message=\"");
			esc(b, g->g.metric);
			dbuf_printf(b, " = %.6g\"/>\n", g->value);
		}
		dbuf_puts(b, "    </testcase>\n");
	}
	mem_free(first);
	mem_free(next);
	mem_free(idx);
	dbuf_puts(b, "    <system-out>");
	struct dbuf t;
	dbuf_init(&t, 4u << 20);
	report_text(c, &t, false);
	report_escape(b, t.data ? t.data : (const uint8_t *)"", t.len);
	dbuf_release(&t);
	dbuf_puts(b, "</system-out>\n  </testsuite>\n");
}

int report_junit(const struct diff_ctx *c, struct dbuf *b)
{
	if (!c->finished)
		return -EINVAL;
	/* the totals of the suites below: the sums of theirs */
	struct junit_counts n[DIFF_MAX_CANDIDATES], t = {0, 0, 0, 0};
	for (size_t ci = 0; ci < c->n_cand; ci++) {
		n[ci] = junit_suite_counts(c, ci);
		t.tests += n[ci].tests;
		t.failures += n[ci].failures;
		t.errors += n[ci].errors;
		t.skipped += n[ci].skipped;
	}
	dbuf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	dbuf_printf(b,
		    "<testsuites name=\"dyetap diff\" tests=\"%zu\" failures=\"%zu\" "
		    "errors=\"%zu\" skipped=\"%zu\" time=\"0\">\n",
		    t.tests, t.failures, t.errors, t.skipped);
	for (size_t ci = 0; ci < c->n_cand; ci++)
		junit_suite(b, c, ci, &n[ci]);
	dbuf_puts(b, "</testsuites>\n");
	return dbuf_error(b);
}

/* ------------------------------------------------------------------ */
/* Terminal                                                            */
/* ------------------------------------------------------------------ */

/*
 * Text from traffic on a terminal: valid UTF-8 only, and no control
 * character (a candidate's ESC [ or C1 CSI must not drive the user's
 * terminal): tab, CR and LF become spaces, other C0 and C1 controls, DEL
 * and invalid bytes U+FFFD. At most @p max source bytes, "..." after a cut.
 */
static void tput(struct dbuf *b, const char *str, size_t n, size_t max)
{
	const uint8_t *p = (const uint8_t *)str;
	size_t i = 0;
	while (i < n && i < max) {
		uint8_t ch = p[i];
		if (ch == '\n' || ch == '\r' || ch == '\t') {
			dbuf_putc(b, ' ');
			i++;
			continue;
		}
		if (ch < 0x20 || ch == 0x7f) {
			dbuf_puts(b, "\xef\xbf\xbd");
			i++;
			continue;
		}
		if (ch < 0x80) {
			dbuf_putc(b, ch);
			i++;
			continue;
		}
		size_t len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
		bool c1 = ch == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f;
		if (!c1 && i + len <= n && jsonw_utf8_valid(p + i, len)) {
			dbuf_append(b, p + i, len);
			i += len;
		} else {
			dbuf_puts(b, "\xef\xbf\xbd");
			i += c1 ? 2 : 1;
		}
	}
	if (i < n)
		dbuf_puts(b, "...");
}

static void tputs(struct dbuf *b, const char *s)
{
	tput(b, s, strlen(s), SIZE_MAX);
}

static void one_line(struct dbuf *b, const char *s, size_t max)
{
	tput(b, s, strlen(s), max);
}

struct tline {
	struct dbuf *b;
	const char *prefix;
};

static void text_line(void *arg, const char *s, size_t n)
{
	struct tline *t = arg;
	dbuf_puts(t->b, t->prefix);
	tput(t->b, s, n, SIZE_MAX);
	dbuf_putc(t->b, '\n');
}

/* The real causes, most severe first: what changed, how often, where;
 * the largest REPORT_TEXT_CAUSES_PER_SEV of each severity. */
static void text_causes(struct dbuf *b, const struct diff_cand *v, const char *bold,
			const char *off)
{
	const struct diff_causes *cs = v->roots;
	if (!cs || !cs->real)
		return;
	dbuf_printf(b, "\n%scauses (%llu; %llu more judged noise), most severe first:%s\n", bold,
		    (unsigned long long)cs->real, (unsigned long long)cs->noise, off);
	struct report_cause_pick pick = {{{0}}};
	for (size_t i = 0; i < cs->n; i++) {
		const struct diff_rootcause *rc = &cs->v[i];
		if (rc->noise || !report_cause_pick(&pick, rc, REPORT_TEXT_CAUSES_PER_SEV))
			continue;
		dbuf_printf(b, "  c%-3zu %-14s ", i + 1, diff_kind_name(rc->kind));
		tputs(b, rc->location);
		if (rc->pattern[0]) {
			dbuf_puts(b, "  ");
			one_line(b, rc->pattern, 80);
		}
		dbuf_printf(b, "\n        %llu of %llu responses (%.2f%%) on %u endpoint%s: ",
			    (unsigned long long)rc->count, (unsigned long long)rc->pairs,
			    rc->rate * 100, rc->n_eps, rc->n_eps == 1 ? "" : "s");
		for (uint32_t e = 0; e < rc->n_eps && e < 3; e++) {
			if (e)
				dbuf_puts(b, ", ");
			tputs(b, v->ep[rc->eps[e]].name);
		}
		if (rc->n_eps > 3)
			dbuf_printf(b, " and %u more", rc->n_eps - 3);
		dbuf_putc(b, '\n');
		const struct diff_example *x =
		    rc->n_groups ? diff_group_example(&v->gr[rc->groups[0]]) : NULL;
		if (x && !rc->pattern[0]) {
			dbuf_printf(b, "        e.g. session %llu ",
				    (unsigned long long)x->session_id);
			tputs(b, x->iloc[0] ? x->iloc : v->gr[rc->groups[0]].location);
			dbuf_puts(b, ": ");
			one_line(b, x->pval, 50);
			dbuf_puts(b, "  ->  ");
			one_line(b, x->cval, 50);
			dbuf_putc(b, '\n');
		}
	}
	uint64_t more = report_causes_left_out(cs, false, REPORT_TEXT_CAUSES_PER_SEV);
	if (more)
		dbuf_printf(b,
			    "  ... %llu more causes (the %d largest of each severity are above): "
			    "the JSON report (--json) has them all\n",
			    (unsigned long long)more, REPORT_TEXT_CAUSES_PER_SEV);
}

static void text_cand(const struct diff_ctx *c, size_t ci, struct dbuf *b, bool color)
{
	const struct diff_cand *v = c->cand[ci];
	const struct diff_summary *s = &v->sum;
	const char *red = color ? "\033[1;31m" : "", *yel = color ? "\033[33m" : "",
		   *bold = color ? "\033[1m" : "", *off = color ? "\033[0m" : "";
	if (c->n_cand > 1) {
		dbuf_printf(b, "\n%s== candidate ", bold);
		tputs(b, v->role);
		if (v->target) {
			dbuf_puts(b, " (");
			tputs(b, v->target);
			dbuf_putc(b, ')');
		}
		dbuf_printf(b, ": %s ==%s\n", diff_cand_verdict(c, ci), off);
		if (s->data_incomplete && !c->sum.data_incomplete)
			dbuf_printf(b, "%sDATA INCOMPLETE%s\n", red, off);
	}
	if (s->no_evidence)
		dbuf_printf(b, "%sno evidence: 0 responses compared%s\n", red, off);
	dbuf_printf(b,
		    "%scompared %llu responses on %llu endpoints: %llu differ (%.2f%%), %llu "
		    "causes, %llu status changes, %llu difference groups, %llu noise groups%s\n",
		    bold, (unsigned long long)s->compared, (unsigned long long)s->endpoints,
		    (unsigned long long)s->differing, s->diff_rate * 100,
		    (unsigned long long)s->causes, (unsigned long long)s->status_changes,
		    (unsigned long long)s->groups, (unsigned long long)s->noise_groups, off);
	dbuf_printf(b,
		    "not compared: %llu incomplete sessions, %llu replay errors, %llu not "
		    "replayed",
		    (unsigned long long)s->incomplete, (unsigned long long)s->replay_errors,
		    (unsigned long long)s->unreplayed);
	if (s->cancelled) /* no loss: said only when there are some */
		dbuf_printf(b, ", %llu cancelled by their client (as recorded)",
			    (unsigned long long)s->cancelled);
	dbuf_printf(b, "; %llu secondary pairs used for noise learning\n",
		    (unsigned long long)s->secondary_pairs);
	if (v->n_causes) {
		size_t idx[DIFF_MAX_CAUSES];
		size_t n = sorted_causes(v, idx);
		dbuf_puts(b, "replay errors by cause:\n");
		for (size_t i = 0; i < n && i < 5; i++) {
			char t[DIFF_CAUSE_MSG + 32];
			dbuf_printf(b, "  %llu ", (unsigned long long)v->causes[idx[i]].n);
			tputs(b, cause_text(&v->causes[idx[i]], t, sizeof(t)));
			dbuf_putc(b, '\n');
		}
		if (n > 5 || v->causes_other) {
			uint64_t rest = v->causes_other;
			for (size_t i = 5; i < n; i++)
				rest += v->causes[idx[i]].n;
			dbuf_printf(b, "  %llu other causes\n", (unsigned long long)rest);
		}
	}
	dbuf_printf(b,
		    "latency p50 %.3f ms -> %.3f ms (x%.2f), p99 %.3f ms -> %.3f ms (x%.2f) "
		    "(primary -> candidate)\n",
		    ms(v->p50_p), ms(v->p50_c), s->p50_latency_ratio, ms(v->p99_p), ms(v->p99_c),
		    s->p99_latency_ratio);
	text_causes(b, v, bold, off);
	uint32_t *idx;
	size_t ng = diff_cand_sorted_groups(v, &idx);
	for (int pass = 0; pass < 2; pass++) {
		bool any = false;
		size_t more = 0, listed = 0;
		for (size_t i = 0; i < ng; i++) {
			const struct diff_group *g = &v->gr[idx[i]];
			if ((g->noise != 0) != (pass == 1))
				continue;
			if (listed == TEXT_MAX_GROUPS) { /* the largest first */
				more++;
				continue;
			}
			listed++;
			if (!any)
				dbuf_printf(b, "\n%s%s%s\n", pass ? yel : bold,
					    pass ? "likely noise (not counted as differences):"
						 : "differences:",
					    off);
			any = true;
			dbuf_printf(b, "  %6llu %6.2f%%  ", (unsigned long long)g->count,
				    g->rate * 100);
			tputs(b, v->ep[g->endpoint].name);
			dbuf_puts(b, "  ");
			tputs(b, g->location);
			dbuf_printf(b, "  %s", diff_kind_name(g->kind));
			if (g->noise)
				dbuf_printf(b, "  [%s]", noise_reason(g->noise));
			dbuf_putc(b, '\n');
			if (g->n_ex) {
				dbuf_printf(b, "         e.g. session %llu: ",
					    (unsigned long long)g->ex[0].session_id);
				one_line(b, g->ex[0].pval, 60);
				dbuf_puts(b, "  ->  ");
				one_line(b, g->ex[0].cval, 60);
				dbuf_putc(b, '\n');
			}
		}
		if (more)
			dbuf_printf(
			    b,
			    "  ... %zu more %s (as many responses each or fewer): the JSON report "
			    "(--json) has them all\n",
			    more, pass ? "noise groups" : "difference groups");
	}
	mem_free(idx);
	for (size_t i = 0; i < c->n_gates; i++) {
		const struct diff_gate_result *g = &c->gates[i];
		if (g->cand != ci)
			continue;
		dbuf_printf(b, "%sgate ", g->tripped ? red : "");
		tputs(b, g->g.text);
		dbuf_printf(b, ": %s", g->tripped ? "TRIPPED" : "ok");
		if (g->no_evidence)
			dbuf_puts(b, " (no evidence: 0 responses compared)");
		else
			dbuf_printf(b, " (value %.6g)", g->value);
		dbuf_printf(b, "%s\n", g->tripped ? off : "");
	}
}

int report_text(const struct diff_ctx *c, struct dbuf *b, bool color)
{
	if (!c->finished)
		return -EINVAL;
	const struct diff_summary *s = &c->sum;
	const char *red = color ? "\033[1;31m" : "", *off = color ? "\033[0m" : "";
	if (s->data_incomplete) {
		struct dbuf why;
		dbuf_init(&why, 1 << 20);
		diff_ctx_reasons(c, &why);
		dbuf_printf(b, "%sDATA INCOMPLETE%s: this result does not cover all traffic\n", red,
			    off);
		struct tline t = {b, "  - "};
		each_line(&why, text_line, &t);
		dbuf_release(&why);
	}
	struct dbuf custody;
	dbuf_init(&custody, 1 << 20);
	diff_ctx_custody(c, &custody);
	for (size_t i = 0; i < c->n_infos; i++)
		dbuf_printf(&custody, "%s\n", c->infos[i]);
	struct tline t = {b, ""};
	each_line(&custody, text_line, &t);
	dbuf_release(&custody);
	bool first = true;
	for (size_t i = 0; i < c->n_ctr; i++) {
		const struct diff_counter *k = &c->ctr[i];
		if (k->cls != DIFF_CTR_EXCLUSION || k->covered)
			continue;
		if (first)
			dbuf_puts(b, "excluded by choice (not a loss):\n");
		first = false;
		const char *m = diff_exclusion_meaning(k->name);
		dbuf_puts(b, "  ");
		tputs(b, k->source);
		dbuf_puts(b, ": ");
		tputs(b, k->name);
		dbuf_printf(b, " = %llu%s%s\n", (unsigned long long)k->value, *m ? ": " : "", m);
	}
	if (c->n_cand > 1)
		dbuf_printf(b,
			    "%zu candidates, judged each on its own (compared %llu responses in "
			    "all)\n",
			    c->n_cand, (unsigned long long)s->compared);
	for (size_t i = 0; i < c->n_cand; i++)
		text_cand(c, i, b, color);
	return dbuf_error(b);
}
