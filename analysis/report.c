/* SPDX-License-Identifier: MIT */
/*
 * report - terminal, JSON (docs/report.md) and JUnit XML renderings of a
 * finished analysis context. JUnit follows the de-facto schema used by
 * Jenkins, GitLab and most CI servers (testsuites > testsuite > testcase
 * with failure/error/skipped children). The HTML report is report_html.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "analysis/report.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "dyetap_version.h"

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
		if (i + len <= n && jsonw_utf8_valid(p + i, len)) {
			rc = dbuf_append(out, p + i, len);
			i += len;
		} else {
			rc = dbuf_puts(out, "\xef\xbf\xbd");
			i++;
		}
	}
	return rc;
}

static int esc(struct dbuf *out, const char *s)
{
	return report_escape(out, s, strlen(s));
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
		 size_t np, size_t nc)
{
	dbuf_printf(b, "{\"primary_samples\":%zu,\"candidate_samples\":%zu,\"primary_p50_ms\":", np,
		    nc);
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
	dbuf_printf(b, "],\"data_incomplete\":%s,\"incomplete_reasons\":[",
		    s->data_incomplete ? "true" : "false");
	const char *w = why.data ? (const char *)why.data : "";
	for (bool first = true; *w;) {
		const char *nl = strchr(w, '\n');
		size_t n = nl ? (size_t)(nl - w) : strlen(w);
		if (!first)
			dbuf_putc(b, ',');
		jsonw_str(b, w, n);
		first = false;
		w += n + (nl ? 1 : 0);
	}
	dbuf_release(&why);
	dbuf_printf(b,
		    "],\"summary\":{\"results\":%llu,\"compared\":%llu,\"differing\":%llu,"
		    "\"noisy_only\":%llu,\"diff_rate\":",
		    (unsigned long long)s->results, (unsigned long long)s->compared,
		    (unsigned long long)s->differing, (unsigned long long)s->noisy_only);
	jnum(b, s->diff_rate);
	dbuf_printf(b,
		    ",\"status_changes\":%llu,\"groups\":%llu,\"noise_groups\":%llu,"
		    "\"incomplete\":%llu,\"replay_errors\":%llu,\"unreplayed\":%llu,"
		    "\"secondary_pairs\":%llu,\"endpoints\":%llu,\"findings_dropped\":%llu,"
		    "\"over_memcap\":%llu,\"latency\":",
		    (unsigned long long)s->status_changes, (unsigned long long)s->groups,
		    (unsigned long long)s->noise_groups, (unsigned long long)s->incomplete,
		    (unsigned long long)s->replay_errors, (unsigned long long)s->unreplayed,
		    (unsigned long long)s->secondary_pairs, (unsigned long long)s->endpoints,
		    (unsigned long long)s->findings_dropped, (unsigned long long)s->over_memcap);
	jlat(b, c->p50_p, c->p99_p, c->p50_c, c->p99_c, c->all_p.n, c->all_c.n);
	dbuf_puts(b, "},\"accounting\":{\"incomplete_by_reason\":{");
	bool first = true;
	for (unsigned k = 0; k < STORE_F_COUNT; k++)
		if (c->incomplete_by_flag[k]) {
			dbuf_printf(b, "%s\"%s\":%llu", first ? "" : ",", diff_flag_name(k),
				    (unsigned long long)c->incomplete_by_flag[k]);
			first = false;
		}
	dbuf_printf(b, "},\"candidate_truncated\":%llu,\"replay_errors_by_kind\":{",
		    (unsigned long long)c->incomplete_cand_trunc);
	first = true;
	for (unsigned k = 0; k < STORE_ERR_COUNT; k++)
		if (c->errors_by_kind[k]) {
			dbuf_printf(b, "%s\"%s\":%llu", first ? "" : ",", diff_error_name(k),
				    (unsigned long long)c->errors_by_kind[k]);
			first = false;
		}
	dbuf_puts(b, "},\"counters\":[");
	for (size_t i = 0; i < c->n_ctr; i++) {
		dbuf_puts(b, i ? ",{\"source\":" : "{\"source\":");
		jsonw_cstr(b, c->ctr[i].source);
		dbuf_puts(b, ",\"name\":");
		jsonw_cstr(b, c->ctr[i].name);
		dbuf_printf(b, ",\"value\":%llu,\"loss\":%s}", (unsigned long long)c->ctr[i].value,
			    c->ctr[i].loss ? "true" : "false");
	}
	dbuf_puts(b, "]},\"gates\":[");
	for (size_t i = 0; i < c->n_gates; i++) {
		const struct diff_gate_result *g = &c->gates[i];
		dbuf_puts(b, i ? ",{\"expr\":" : "{\"expr\":");
		jsonw_cstr(b, g->g.text);
		dbuf_puts(b, ",\"metric\":");
		jsonw_cstr(b, g->g.metric);
		dbuf_printf(b, ",\"op\":\"%s\",\"threshold\":", op_str(g->g.op));
		jnum(b, g->g.threshold);
		dbuf_puts(b, ",\"value\":");
		jnum(b, g->value);
		dbuf_printf(b, ",\"tripped\":%s}", g->tripped ? "true" : "false");
	}
	dbuf_puts(b, "],\"endpoints\":[");
	for (size_t i = 0; i < c->n_ep; i++) {
		const struct diff_endpoint *e = &c->ep[i];
		dbuf_puts(b, i ? ",{\"endpoint\":" : "{\"endpoint\":");
		jsonw_cstr(b, e->name);
		dbuf_printf(b, ",\"compared\":%llu,\"differing\":%llu,\"diff_rate\":",
			    (unsigned long long)e->pairs, (unsigned long long)e->differing);
		jnum(b, e->pairs ? (double)e->differing / (double)e->pairs : 0);
		dbuf_printf(b,
			    ",\"status_changes\":%llu,\"incomplete\":%llu,\"replay_errors\":%llu,"
			    "\"unreplayed\":%llu,\"secondary_pairs\":%llu,\"latency\":",
			    (unsigned long long)e->status_chg, (unsigned long long)e->incomplete,
			    (unsigned long long)e->errors, (unsigned long long)e->unreplayed,
			    (unsigned long long)e->sec_pairs);
		jlat(b, e->p50_p, e->p99_p, e->p50_c, e->p99_c, e->lat_p.n, e->lat_c.n);
		dbuf_putc(b, '}');
	}
	dbuf_puts(b, "],\"differences\":[");
	uint32_t *idx;
	size_t n = diff_ctx_sorted_groups(c, &idx);
	for (size_t i = 0; i < n; i++) {
		const struct diff_group *g = &c->gr[idx[i]];
		dbuf_puts(b, i ? ",{\"endpoint\":" : "{\"endpoint\":");
		jsonw_cstr(b, c->ep[g->endpoint].name);
		dbuf_puts(b, ",\"location\":");
		jsonw_cstr(b, g->location);
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
		if (g->has_ex) {
			dbuf_printf(b, "{\"session_id\":%llu,\"primary_value\":",
				    (unsigned long long)g->ex.session_id);
			jsonw_cstr(b, g->ex.pval);
			dbuf_puts(b, ",\"candidate_value\":");
			jsonw_cstr(b, g->ex.cval);
			dbuf_puts(b, ",\"request\":");
			jsonw_cstr(b, g->ex.request);
			dbuf_puts(b, ",\"primary\":");
			jsonw_cstr(b, g->ex.primary);
			dbuf_puts(b, ",\"candidate\":");
			jsonw_cstr(b, g->ex.candidate);
			dbuf_putc(b, '}');
		} else {
			dbuf_puts(b, "null");
		}
		dbuf_putc(b, '}');
	}
	mem_free(idx);
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
	return dbuf_puts(b, "]}\n");
}

/* ------------------------------------------------------------------ */
/* JUnit XML                                                           */
/* ------------------------------------------------------------------ */

int report_junit(const struct diff_ctx *c, struct dbuf *b)
{
	if (!c->finished)
		return -EINVAL;
	const struct diff_summary *s = &c->sum;
	uint32_t *idx;
	size_t ng = diff_ctx_sorted_groups(c, &idx);
	size_t tests = c->n_ep + 1 + c->n_gates, failures = 0, errors = 0, skipped = 0;
	for (size_t i = 0; i < c->n_ep; i++) {
		const struct diff_endpoint *e = &c->ep[i];
		if (e->differing)
			failures++;
		else if (e->errors || e->incomplete)
			errors++;
		else if (!e->pairs)
			skipped++;
	}
	if (s->data_incomplete)
		failures++;
	for (size_t i = 0; i < c->n_gates; i++)
		failures += c->gates[i].tripped;
	dbuf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	dbuf_printf(b,
		    "<testsuites name=\"dyetap diff\" tests=\"%zu\" failures=\"%zu\" "
		    "errors=\"%zu\" skipped=\"%zu\" time=\"0\">\n",
		    tests, failures, errors, skipped);
	dbuf_printf(b,
		    "  <testsuite name=\"dyetap diff\" tests=\"%zu\" failures=\"%zu\" "
		    "errors=\"%zu\" skipped=\"%zu\" time=\"0\">\n    <properties>\n",
		    tests, failures, errors, skipped);
	dbuf_printf(b,
		    "      <property name=\"compared\" value=\"%llu\"/>\n"
		    "      <property name=\"differing\" value=\"%llu\"/>\n"
		    "      <property name=\"diff_rate\" value=\"%.6g\"/>\n"
		    "      <property name=\"data_incomplete\" value=\"%s\"/>\n    </properties>\n",
		    (unsigned long long)s->compared, (unsigned long long)s->differing, s->diff_rate,
		    s->data_incomplete ? "true" : "false");
	/* data completeness first: a clean run on missing data must not look clean */
	dbuf_puts(
	    b, "    <testcase classname=\"dyetap.diff\" name=\"data completeness\" time=\"0\">\n");
	if (s->data_incomplete) {
		struct dbuf why;
		dbuf_init(&why, 1 << 20);
		diff_ctx_reasons(c, &why);
		dbuf_puts(b, "      <failure type=\"incomplete\" message=\"data incomplete\">");
		report_escape(b, why.data ? why.data : (const uint8_t *)"", why.len);
		dbuf_puts(b, "</failure>\n");
		dbuf_release(&why);
	}
	dbuf_puts(b, "    </testcase>\n");
	for (size_t i = 0; i < c->n_ep; i++) {
		const struct diff_endpoint *e = &c->ep[i];
		dbuf_puts(b, "    <testcase classname=\"dyetap.diff.endpoint\" name=\"");
		esc(b, e->name);
		dbuf_puts(b, "\" time=\"0\">\n");
		if (e->differing) {
			size_t nsig = 0;
			for (size_t k = 0; k < ng; k++)
				nsig += c->gr[idx[k]].endpoint == i && !c->gr[idx[k]].noise;
			dbuf_printf(b,
				    "      <failure type=\"difference\" message=\"%llu of %llu "
				    "responses differ; %zu signatures\">",
				    (unsigned long long)e->differing, (unsigned long long)e->pairs,
				    nsig);
			for (size_t k = 0; k < ng; k++) {
				const struct diff_group *g = &c->gr[idx[k]];
				if (g->endpoint != i || g->noise)
					continue;
				dbuf_puts(b, "\n");
				esc(b, e->name);
				dbuf_puts(b, " ");
				esc(b, g->location);
				dbuf_printf(b, " %s: %llu (%.2f%%)", diff_kind_name(g->kind),
					    (unsigned long long)g->count, g->rate * 100);
				if (g->has_ex) {
					dbuf_printf(b, "\n  example session %llu: primary ",
						    (unsigned long long)g->ex.session_id);
					esc(b, g->ex.pval);
					dbuf_puts(b, " / candidate ");
					esc(b, g->ex.cval);
				}
			}
			dbuf_puts(b, "</failure>\n");
		} else if (e->errors || e->incomplete) {
			dbuf_printf(
			    b,
			    "      <error type=\"incomplete\" message=\"%llu replay errors, "
			    "%llu incomplete sessions\"/>\n",
			    (unsigned long long)e->errors, (unsigned long long)e->incomplete);
		} else if (!e->pairs) {
			dbuf_puts(b, "      <skipped message=\"no pair compared\"/>\n");
		}
		dbuf_puts(b, "    </testcase>\n");
	}
	for (size_t i = 0; i < c->n_gates; i++) {
		const struct diff_gate_result *g = &c->gates[i];
		dbuf_puts(b, "    <testcase classname=\"dyetap.diff.gate\" name=\"");
		esc(b, g->g.text);
		dbuf_puts(b, "\" time=\"0\">\n");
		if (g->tripped) {
			dbuf_puts(b, "      <failure type=\"gate\" message=\"");
			esc(b, g->g.metric);
			dbuf_printf(b, " = %.6g\"/>\n", g->value);
		}
		dbuf_puts(b, "    </testcase>\n");
	}
	mem_free(idx);
	dbuf_puts(b, "    <system-out>");
	struct dbuf t;
	dbuf_init(&t, 4u << 20);
	report_text(c, &t, false);
	report_escape(b, t.data ? t.data : (const uint8_t *)"", t.len);
	dbuf_release(&t);
	dbuf_puts(b, "</system-out>\n  </testsuite>\n");
	return dbuf_puts(b, "</testsuites>\n");
}

/* ------------------------------------------------------------------ */
/* Terminal                                                            */
/* ------------------------------------------------------------------ */

static void one_line(struct dbuf *b, const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n] && n < max; n++)
		dbuf_putc(b, s[n] == '\n' || s[n] == '\r' || s[n] == '\t' ? ' ' : (uint8_t)s[n]);
	if (s[n])
		dbuf_puts(b, "...");
}

int report_text(const struct diff_ctx *c, struct dbuf *b, bool color)
{
	if (!c->finished)
		return -EINVAL;
	const struct diff_summary *s = &c->sum;
	const char *red = color ? "\033[1;31m" : "", *yel = color ? "\033[33m" : "",
		   *bold = color ? "\033[1m" : "", *off = color ? "\033[0m" : "";
	if (s->data_incomplete) {
		struct dbuf why;
		dbuf_init(&why, 1 << 20);
		diff_ctx_reasons(c, &why);
		dbuf_printf(b, "%sDATA INCOMPLETE%s: this result does not cover all traffic\n", red,
			    off);
		const char *w = why.data ? (const char *)why.data : "";
		while (*w) {
			const char *nl = strchr(w, '\n');
			size_t n = nl ? (size_t)(nl - w) : strlen(w);
			dbuf_printf(b, "  - %.*s\n", (int)n, w);
			w += n + (nl ? 1 : 0);
		}
		dbuf_release(&why);
	}
	dbuf_printf(b,
		    "%scompared %llu responses on %llu endpoints: %llu differ (%.2f%%), %llu "
		    "status changes, %llu difference groups, %llu noise groups%s\n",
		    bold, (unsigned long long)s->compared, (unsigned long long)s->endpoints,
		    (unsigned long long)s->differing, s->diff_rate * 100,
		    (unsigned long long)s->status_changes, (unsigned long long)s->groups,
		    (unsigned long long)s->noise_groups, off);
	dbuf_printf(b,
		    "not compared: %llu incomplete sessions, %llu replay errors, %llu not "
		    "replayed; %llu secondary pairs used for noise learning\n",
		    (unsigned long long)s->incomplete, (unsigned long long)s->replay_errors,
		    (unsigned long long)s->unreplayed, (unsigned long long)s->secondary_pairs);
	dbuf_printf(b,
		    "latency p50 %.3f ms -> %.3f ms (x%.2f), p99 %.3f ms -> %.3f ms (x%.2f) "
		    "(primary -> candidate)\n",
		    ms(c->p50_p), ms(c->p50_c), s->p50_latency_ratio, ms(c->p99_p), ms(c->p99_c),
		    s->p99_latency_ratio);
	uint32_t *idx;
	size_t ng = diff_ctx_sorted_groups(c, &idx);
	for (int pass = 0; pass < 2; pass++) {
		bool any = false;
		for (size_t i = 0; i < ng; i++) {
			const struct diff_group *g = &c->gr[idx[i]];
			if ((g->noise != 0) != (pass == 1))
				continue;
			if (!any)
				dbuf_printf(b, "\n%s%s%s\n", pass ? yel : bold,
					    pass ? "likely noise (not counted as differences):"
						 : "differences:",
					    off);
			any = true;
			dbuf_printf(b, "  %6llu %6.2f%%  %s  %s  %s", (unsigned long long)g->count,
				    g->rate * 100, c->ep[g->endpoint].name, g->location,
				    diff_kind_name(g->kind));
			if (g->noise)
				dbuf_printf(b, "  [%s]", noise_reason(g->noise));
			dbuf_putc(b, '\n');
			if (g->has_ex) {
				dbuf_printf(b, "         e.g. session %llu: ",
					    (unsigned long long)g->ex.session_id);
				one_line(b, g->ex.pval, 60);
				dbuf_puts(b, "  ->  ");
				one_line(b, g->ex.cval, 60);
				dbuf_putc(b, '\n');
			}
		}
	}
	mem_free(idx);
	for (size_t i = 0; i < c->n_gates; i++) {
		const struct diff_gate_result *g = &c->gates[i];
		dbuf_printf(b, "%sgate %s: %s (value %.6g)%s\n", g->tripped ? red : "", g->g.text,
			    g->tripped ? "TRIPPED" : "ok", g->value, g->tripped ? off : "");
	}
	return 0;
}
