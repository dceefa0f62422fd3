/* SPDX-License-Identifier: MIT */
/*
 * report_html - one self-contained HTML5 file for QA: inline CSS and JS,
 * charts as inline SVG, no external resource of any kind, so it opens
 * offline and from a CI artifact store. Every text that comes from traffic
 * or the user is escaped (report_escape), and sensitive header values are
 * masked before they get here (diff_mask_header_value).
 *
 * Layout: the data-incomplete banner, the chain of custody (recording,
 * scope, exclusions), the verdicts when there are several candidates, one
 * block of sections per candidate (the first keeps the plain element ids,
 * the k-th adds "-k"), then the accounting and the rules.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "analysis/report.h"
#include "common/mem.h"
#include "dyetap_version.h"

#define HTML_MAX_EXAMPLES  200	      /* groups whose examples are shown */
#define HTML_EXAMPLE_BYTES (2u << 20) /* of example text, then values only */
#define HTML_MAX_ROWS	   1000	      /* rows of a table; the JSON has them all */
#define HTML_PAGE_ROWS	   50	      /* rows shown per page */
#define HTML_MAX_BARS	   40
#define HTML_BUCKETS	   24

static const char css[] =
    "body{font:14px/1.4 system-ui,-apple-system,Segoe "
    "UI,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}"
    "header{background:#1d2430;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}"
    ".meta{color:#b8c0cc;margin:4px 0 0}main{padding:16px 24px;max-width:1400px}"
    "section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px "
    "16px;margin:0 0 16px}"
    "h2{font-size:16px;margin:4px 0 10px}.banner{background:#fde8e8;border:1px solid "
    "#e0a0a0;color:#8a1c1c;padding:10px 16px;border-radius:6px;margin:0 0 16px}"
    ".ok{background:#e6f4ea;border-color:#9fd2ab;color:#1e5631}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid "
    "#dde1e6;border-radius:6px;padding:8px 12px;min-width:120px}"
    ".card b{display:block;font-size:20px}.card.bad b{color:#b3261e}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px "
    "8px;border-bottom:1px solid #eceef1;vertical-align:top}"
    "th{cursor:pointer;background:#f0f2f5;user-select:none}th:after{content:' "
    "\\2195';color:#9aa3af}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}"
    ".pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}"
    "pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px;overflow:auto;max-height:"
    "420px;font-size:12px;white-space:pre-wrap;word-break:break-all}"
    "details{border-top:1px solid #eceef1;padding:6px 0}summary{cursor:pointer}"
    ".tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#eef}"
    ".tag.noise{background:#fff4d6}.muted{color:#6b7280}svg text{font-size:11px;fill:#1d2430}"
    ".pager{margin:6px 0;color:#6b7280}.pager button{margin:0 6px}";

static const char js[] =
    "function page(t,p){var rows=t.tBodies[0].rows,n=+t.getAttribute('data-page'),"
    "last=Math.max(0,Math.ceil(rows.length/n)-1);p=Math.max(0,Math.min(p,last));"
    "t.setAttribute('data-p',p);for(var i=0;i<rows.length;i++)"
    "rows[i].style.display=(i>=p*n&&i<(p+1)*n)?'':'none';"
    "var g=t.nextElementSibling;if(g&&g.className==='pager')g.querySelector('span')"
    ".textContent='rows '+(rows.length?p*n+1:0)+'-'+Math.min((p+1)*n,rows.length)+' of '"
    "+rows.length;}"
    "document.querySelectorAll('table[data-page]').forEach(function(t){"
    "if(t.tBodies[0].rows.length<=+t.getAttribute('data-page'))return;"
    "var g=document.createElement('div');g.className='pager';"
    "g.innerHTML='<button>&lsaquo; previous</button> <span></span> <button>next &rsaquo;</button>';"
    "var "
    "bs=g.querySelectorAll('button');bs[0].onclick=function(){page(t,+t.getAttribute('data-p')-1);}"
    ";"
    "bs[1].onclick=function(){page(t,+t.getAttribute('data-p')+1);};"
    "t.parentNode.insertBefore(g,t.nextSibling);page(t,0);});"
    "document.querySelectorAll('table.sortable th').forEach(function(th,i){"
    "th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],"
    "rows=Array.prototype.slice.call(b.rows),asc=th.getAttribute('data-asc')!=='1';"
    "th.setAttribute('data-asc',asc?'1':'0');rows.sort(function(x,y){"
    "var a=x.cells[i].getAttribute('data-v')||x.cells[i].textContent,"
    "c=y.cells[i].getAttribute('data-v')||y.cells[i].textContent,"
    "na=parseFloat(a),nc=parseFloat(c),r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c);"
    "return asc?r:-r;});rows.forEach(function(r){b.appendChild(r);});"
    "if(t.hasAttribute('data-page'))page(t,0);});});"
    "function openHash(){var e=location.hash&&document.getElementById(location.hash.slice(1));"
    "if(e&&e.tagName==='DETAILS')e.open=true;}"
    "window.addEventListener('hashchange',openHash);openHash();";

static void esc(struct dbuf *b, const char *s)
{
	report_escape(b, s, strlen(s));
}

static void card(struct dbuf *b, const char *label, const char *value, bool bad)
{
	dbuf_printf(b, "<div class=\"card%s\"><b>", bad ? " bad" : "");
	esc(b, value);
	dbuf_puts(b, "</b>");
	esc(b, label);
	dbuf_puts(b, "</div>");
}

static void rate_chart(struct dbuf *b, const struct diff_cand *c, const char *sfx)
{
	/* endpoints by difference rate, highest first */
	uint32_t order[HTML_MAX_BARS];
	size_t n = 0;
	for (size_t i = 0; i < c->n_ep; i++) {
		const struct diff_endpoint *e = &c->ep[i];
		double r = e->pairs ? (double)e->differing / (double)e->pairs : 0;
		size_t pos = n;
		while (pos > 0) {
			const struct diff_endpoint *o = &c->ep[order[pos - 1]];
			double ro = o->pairs ? (double)o->differing / (double)o->pairs : 0;
			if (ro >= r)
				break;
			pos--;
		}
		if (pos >= HTML_MAX_BARS)
			continue;
		size_t last = n < HTML_MAX_BARS ? n : HTML_MAX_BARS - 1;
		memmove(order + pos + 1, order + pos, (last - pos) * sizeof(order[0]));
		order[pos] = (uint32_t)i;
		if (n < HTML_MAX_BARS)
			n++;
	}
	int h = (int)n * 22 + 30, lw = 300, bw = 380;
	dbuf_printf(b,
		    "<svg id=\"chart-rate%s\" role=\"img\" aria-label=\"difference rate per "
		    "endpoint\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
		    sfx, lw + bw + 80, h, lw + bw + 80, h);
	for (int t = 0; t <= 4; t++) {
		int x = lw + bw * t / 4;
		dbuf_printf(b,
			    "<line x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"%d\" stroke=\"#e5e7eb\"/>"
			    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d%%</text>",
			    x, x, h - 18, x, h - 4, t * 25);
	}
	for (size_t k = 0; k < n; k++) {
		const struct diff_endpoint *e = &c->ep[order[k]];
		double r = e->pairs ? (double)e->differing / (double)e->pairs : 0;
		int y = (int)k * 22 + 4;
		dbuf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 13);
		esc(b, e->name);
		dbuf_printf(b,
			    "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"16\" "
			    "fill=\"%s\"><title>",
			    lw, y, (int)lrint(r * bw) > 0 ? (int)lrint(r * bw) : 1,
			    r > 0 ? "#d9534f" : "#5cb85c");
		esc(b, e->name);
		dbuf_printf(b, ": %llu of %llu differ</title></rect>",
			    (unsigned long long)e->differing, (unsigned long long)e->pairs);
		dbuf_printf(b, "<text x=\"%d\" y=\"%d\">%.1f%%</text>", lw + (int)lrint(r * bw) + 6,
			    y + 13, r * 100);
	}
	dbuf_puts(b, "</svg>");
}

struct lat_fold {
	double llo, lhi;
	uint64_t cnt[HTML_BUCKETS];
};

/* One histogram bucket into the chart's log-spaced buckets, by its middle. */
static void fold(void *arg, uint64_t lo, uint64_t width, uint64_t count)
{
	struct lat_fold *f = arg;
	double v = (double)lo + (double)width / 2;
	if (v < 1)
		v = 1;
	int k = (int)((log(v) - f->llo) / (f->lhi - f->llo) * HTML_BUCKETS);
	k = k < 0 ? 0 : k >= HTML_BUCKETS ? HTML_BUCKETS - 1 : k;
	f->cnt[k] += count;
}

static void latency_chart(struct dbuf *b, const struct diff_cand *c, const char *sfx)
{
	const struct diff_hist *sp = &c->all_p, *sc = &c->all_c;
	if (!sp->n && !sc->n) {
		dbuf_puts(b, "<p class=\"muted\">no latency samples</p>");
		return;
	}
	/* log-spaced buckets between the smallest and largest value of both */
	uint64_t lo = UINT64_MAX, hi = 0;
	if (sp->n)
		lo = sp->min, hi = sp->max;
	if (sc->n) {
		lo = sc->min < lo ? sc->min : lo;
		hi = sc->max > hi ? sc->max : hi;
	}
	if (lo < 1000)
		lo = 1000;
	if (hi <= lo)
		hi = lo * 2;
	double llo = log((double)lo), lhi = log((double)hi) + 1e-9;
	struct lat_fold fp = {llo, lhi, {0}}, fc = {llo, lhi, {0}};
	diff_hist_each(sp, fold, &fp);
	diff_hist_each(sc, fold, &fc);
	const uint64_t *cnt[2] = {fp.cnt, fc.cnt};
	double mx = 0;
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < HTML_BUCKETS; k++) {
			uint64_t tot = s ? sc->n : sp->n;
			double f = tot ? (double)cnt[s][k] / (double)tot : 0;
			mx = f > mx ? f : mx;
		}
	int W = 760, H = 220, left = 40, bottom = 40, bw = (W - left) / HTML_BUCKETS;
	dbuf_printf(b,
		    "<svg id=\"chart-latency%s\" role=\"img\" aria-label=\"latency distribution "
		    "primary vs candidate\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
		    sfx, W, H + 20, W, H + 20);
	for (int k = 0; k < HTML_BUCKETS; k++) {
		for (int s = 0; s < 2; s++) {
			uint64_t tot = s ? sc->n : sp->n;
			double f = tot ? (double)cnt[s][k] / (double)tot : 0;
			int bh = mx > 0 ? (int)lrint(f / mx * (H - bottom - 10)) : 0;
			dbuf_printf(
			    b,
			    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">"
			    "<title>%s: %llu</title></rect>",
			    left + k * bw + s * (bw / 2), H - bottom - bh, bw / 2 - 1, bh,
			    s ? "#f0ad4e" : "#337ab7", s ? "candidate" : "primary",
			    (unsigned long long)cnt[s][k]);
		}
		if (k % 4 == 0) {
			double edge = exp(llo + (lhi - llo) * k / HTML_BUCKETS) / 1e6;
			dbuf_printf(b, "<text x=\"%d\" y=\"%d\">%.3g ms</text>", left + k * bw,
				    H - bottom + 14, edge);
		}
	}
	dbuf_printf(b,
		    "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#337ab7\"/><text "
		    "x=\"%d\" y=\"%d\">primary (recorded)</text><rect x=\"%d\" y=\"%d\" "
		    "width=\"10\" height=\"10\" fill=\"#f0ad4e\"/><text x=\"%d\" "
		    "y=\"%d\">candidate</text></svg>",
		    left, H - 8, left + 14, H + 1, left + 160, H - 8, left + 174, H + 1);
}

static void group_rows(struct dbuf *b, const struct diff_cand *c, const uint32_t *idx, size_t n,
		       bool noise, const char *sfx)
{
	dbuf_printf(b,
		    "<table class=\"sortable\" data-page=\"%d\" id=\"%s%s\"><thead><tr>"
		    "<th>endpoint</th><th>location</th><th>kind</th><th>count</th><th>rate</th>"
		    "%s<th>example</th></tr></thead><tbody>",
		    HTML_PAGE_ROWS, noise ? "noise-table" : "diff-table", sfx,
		    noise ? "<th>why</th>" : "");
	size_t rows = 0, more = 0;
	for (size_t i = 0; i < n; i++) {
		const struct diff_group *g = &c->gr[idx[i]];
		if ((g->noise != 0) != noise)
			continue;
		if (rows == HTML_MAX_ROWS) {
			more++;
			continue;
		}
		rows++;
		dbuf_puts(b, "<tr><td>");
		esc(b, c->ep[g->endpoint].name);
		dbuf_puts(b, "</td><td><code>");
		esc(b, g->location);
		dbuf_printf(b,
			    "</code></td><td>%s</td><td class=\"n\">%llu</td><td class=\"n\" "
			    "data-v=\"%.6f\">%.2f%%</td>",
			    diff_kind_name(g->kind), (unsigned long long)g->count, g->rate,
			    g->rate * 100);
		if (noise)
			dbuf_printf(b, "<td><span class=\"tag noise\">%s</span></td>",
				    g->noise == DIFF_NOISE_LEARNED ? "learned from secondary"
								   : "values look volatile");
		if (g->n_ex && i < HTML_MAX_EXAMPLES)
			dbuf_printf(b, "<td><a href=\"#ex%s-%zu\">session %llu</a></td></tr>", sfx,
				    i, (unsigned long long)g->ex[0].session_id);
		else
			dbuf_puts(b, "<td></td></tr>");
	}
	dbuf_puts(b, "</tbody></table>");
	if (more)
		dbuf_printf(
		    b,
		    "<p class=\"muted\">%zu more groups (as many pairs each or fewer) are in the "
		    "JSON report.</p>",
		    more);
}

static void pre(struct dbuf *b, const char *s)
{
	dbuf_puts(b, "<pre>");
	esc(b, s ? s : "");
	dbuf_puts(b, "</pre>");
}

static void li(void *arg, const char *s, size_t n)
{
	struct dbuf *b = arg;
	dbuf_puts(b, "<li>");
	report_escape(b, s, n);
	dbuf_puts(b, "</li>");
}

static void lines_ul(struct dbuf *b, const struct dbuf *text)
{
	const char *w = text->data ? (const char *)text->data : "";
	dbuf_puts(b, "<ul>");
	while (*w) {
		const char *nl = strchr(w, '\n');
		size_t n = nl ? (size_t)(nl - w) : strlen(w);
		li(b, w, n);
		w += n + (nl ? 1 : 0);
	}
	dbuf_puts(b, "</ul>");
}

/* The sections of verdict @p ci; element ids end with @p sfx. */
static void cand_sections(struct dbuf *b, const struct diff_ctx *ctx, size_t ci, const char *sfx)
{
	const struct diff_cand *c = ctx->cand[ci];
	const struct diff_summary *s = &c->sum;
	char v[64];
	dbuf_printf(b, "<section id=\"summary%s\"><h2>", sfx);
	if (ctx->n_cand > 1) {
		dbuf_puts(b, "Candidate ");
		esc(b, c->role);
		if (c->target) {
			dbuf_puts(b, " <span class=\"muted\">");
			esc(b, c->target);
			dbuf_puts(b, "</span>");
		}
		dbuf_printf(b, " &middot; %s", diff_cand_verdict(ctx, ci));
	} else {
		dbuf_puts(b, "Summary");
	}
	dbuf_puts(b, "</h2>");
	if (s->data_incomplete && !ctx->sum.data_incomplete)
		dbuf_puts(b, "<div class=\"banner\">Data incomplete for this candidate.</div>");
	if (s->no_evidence)
		dbuf_printf(b,
			    "<div class=\"banner\" id=\"no-evidence%s\"><strong>No evidence:"
			    "</strong> 0 responses compared; every gate trips.</div>",
			    sfx);
	dbuf_puts(b, "<div class=\"cards\">");
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->compared);
	card(b, "responses compared", v, s->compared == 0);
	snprintf(v, sizeof(v), "%llu (%.2f%%)", (unsigned long long)s->differing,
		 s->diff_rate * 100);
	card(b, "differ", v, s->differing > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->causes);
	card(b, "causes", v, s->causes > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->status_changes);
	card(b, "status changes", v, s->status_changes > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->groups);
	card(b, "difference groups", v, s->groups > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->noise_groups);
	card(b, "likely noise groups", v, false);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->incomplete);
	card(b, "incomplete sessions", v, s->incomplete > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->replay_errors);
	card(b, "replay errors", v, s->replay_errors > 0);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)s->unreplayed);
	card(b, "not replayed", v, s->unreplayed > 0);
	if (s->cancelled) { /* no loss: shown only when there are some */
		snprintf(v, sizeof(v), "%llu", (unsigned long long)s->cancelled);
		card(b, "cancelled by their client", v, false);
	}
	snprintf(v, sizeof(v), "x%.2f", s->p99_latency_ratio);
	card(b, "p99 latency ratio", v, s->p99_latency_ratio > 1.2);
	dbuf_printf(b, "</div><p id=\"summary-text%s\">", sfx);
	struct dbuf t;
	dbuf_init(&t, 4096);
	dbuf_printf(&t,
		    "compared %llu responses on %llu endpoints: %llu differ (%.2f%%), %llu causes, "
		    "%llu status changes, %llu difference groups, %llu noise groups",
		    (unsigned long long)s->compared, (unsigned long long)s->endpoints,
		    (unsigned long long)s->differing, s->diff_rate * 100,
		    (unsigned long long)s->causes, (unsigned long long)s->status_changes,
		    (unsigned long long)s->groups, (unsigned long long)s->noise_groups);
	report_escape(b, t.data, t.len);
	dbuf_release(&t);
	dbuf_puts(b, "</p>");
	if (c->n_causes) {
		dbuf_puts(b, "<h3>Replay errors by cause</h3><table><tbody>");
		for (size_t i = 0; i < c->n_causes; i++) {
			const struct diff_cause *k = &c->causes[i];
			dbuf_printf(b, "<tr><td class=\"n\">%llu</td><td>%s</td><td>",
				    (unsigned long long)k->n, diff_error_name(k->kind));
			esc(b, k->msg);
			dbuf_puts(b, "</td></tr>");
		}
		dbuf_puts(b, "</tbody></table>");
	}
	bool any_gate = false;
	for (size_t i = 0; i < ctx->n_gates; i++)
		any_gate |= ctx->gates[i].cand == ci;
	if (any_gate) {
		dbuf_printf(b,
			    "<table id=\"gates%s\"><thead><tr><th>gate</th><th>value</th>"
			    "<th>result</th></tr></thead><tbody>",
			    sfx);
		for (size_t i = 0; i < ctx->n_gates; i++) {
			const struct diff_gate_result *g = &ctx->gates[i];
			if (g->cand != ci)
				continue;
			dbuf_puts(b, "<tr><td><code>");
			esc(b, g->g.text);
			dbuf_printf(b, "</code></td><td class=\"n\">%.6g</td><td>%s</td></tr>",
				    g->value,
				    g->no_evidence ? "<b>TRIPPED: no evidence, 0 responses "
						     "compared</b>"
				    : g->tripped   ? "<b>TRIPPED</b>"
						   : "ok");
		}
		dbuf_puts(b, "</tbody></table>");
	}
	dbuf_puts(b, "</section>");
	report_html_causes(b, c, sfx); /* what changed, before how much */
	dbuf_printf(b, "<section id=\"charts%s\"><h2>Difference rate per endpoint</h2>", sfx);
	rate_chart(b, c, sfx);
	dbuf_puts(b, "<h2>Latency distribution, primary vs candidate</h2>");
	latency_chart(b, c, sfx);
	dbuf_puts(b, "</section>");

	uint32_t *idx;
	size_t ng = diff_cand_sorted_groups(c, &idx);
	if (!idx) {
		if (!b->err)
			b->err = -ENOMEM;
		return;
	}
	dbuf_printf(b, "<section id=\"differences%s\"><h2>Differences</h2>", sfx);
	if (s->groups)
		group_rows(b, c, idx, ng, false, sfx);
	else
		dbuf_puts(b, "<p>No difference outside noise.</p>");
	dbuf_printf(b,
		    "</section><section id=\"noise%s\"><h2>Likely noise</h2><p class=\"muted\">"
		    "Shown, not counted: locations that differ as often between primary and "
		    "secondary, or whose values look like timestamps, UUIDs or random ids.</p>",
		    sfx);
	if (s->noise_groups)
		group_rows(b, c, idx, ng, true, sfx);
	dbuf_puts(b, "</section>");

	dbuf_printf(b,
		    "<section id=\"endpoints%s\"><h2>Endpoints</h2><table class=\"sortable\" "
		    "data-page=\"50\">"
		    "<thead><tr><th>endpoint</th><th>compared</th><th>differ</th><th>rate</th>"
		    "<th>status changes</th><th>incomplete</th><th>errors</th>%s"
		    "<th>p50 primary ms</th><th>p50 candidate ms</th><th>p99 primary ms</th>"
		    "<th>p99 candidate ms</th></tr></thead><tbody>",
		    sfx, s->cancelled ? "<th>cancelled</th>" : "");
	for (size_t i = 0; i < c->n_ep && i < HTML_MAX_ROWS; i++) {
		const struct diff_endpoint *e = &c->ep[i];
		double r = e->pairs ? (double)e->differing / (double)e->pairs : 0;
		dbuf_puts(b, "<tr><td>");
		esc(b, e->name);
		dbuf_printf(
		    b,
		    "</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td><td class=\"n\" "
		    "data-v=\"%.6f\">%.2f%%</td><td class=\"n\">%llu</td><td "
		    "class=\"n\">%llu</td><td class=\"n\">%llu</td>",
		    (unsigned long long)e->pairs, (unsigned long long)e->differing, r, r * 100,
		    (unsigned long long)e->status_chg, (unsigned long long)e->incomplete,
		    (unsigned long long)e->errors);
		/* streams their client cancelled: a column only when there are some */
		if (s->cancelled)
			dbuf_printf(b, "<td class=\"n\">%llu</td>",
				    (unsigned long long)e->cancelled);
		dbuf_printf(b,
			    "<td class=\"n\">%.3f</td><td class=\"n\">%.3f</td><td "
			    "class=\"n\">%.3f</td><td class=\"n\">%.3f</td></tr>",
			    (double)e->p50_p / 1e6, (double)e->p50_c / 1e6, (double)e->p99_p / 1e6,
			    (double)e->p99_c / 1e6);
	}
	dbuf_puts(b, "</tbody></table>");
	if (c->n_ep > HTML_MAX_ROWS)
		dbuf_printf(b,
			    "<p class=\"muted\">%zu more endpoints (in name order) are in the JSON "
			    "report.</p>",
			    c->n_ep - HTML_MAX_ROWS);
	dbuf_puts(b, "</section>");

	dbuf_printf(b, "<section id=\"examples%s\"><h2>Examples</h2>", sfx);
	size_t ex_bytes = 0, ex_cut = 0;
	for (size_t i = 0; i < ng && i < HTML_MAX_EXAMPLES; i++) {
		const struct diff_group *g = &c->gr[idx[i]];
		if (!g->n_ex)
			continue;
		dbuf_printf(b, "<details id=\"ex%s-%zu\"><summary>", sfx, i);
		esc(b, c->ep[g->endpoint].name);
		dbuf_puts(b, " &middot; <code>");
		esc(b, g->location);
		dbuf_printf(b, "</code> &middot; %s &middot; %u sampled %s%s</summary>",
			    diff_kind_name(g->kind), g->n_ex, g->n_ex == 1 ? "pair" : "pairs",
			    g->noise ? " <span class=\"tag noise\">likely noise</span>" : "");
		for (size_t k = 0; k < g->n_ex; k++) {
			const struct diff_example *x = &g->ex[k];
			dbuf_printf(b, "<h4>session %llu</h4>", (unsigned long long)x->session_id);
			dbuf_puts(b, "<div class=\"pair\"><div><h4>primary value</h4>");
			pre(b, x->pval);
			dbuf_puts(b, "</div><div><h4>candidate value</h4>");
			pre(b, x->cval);
			dbuf_puts(b, "</div>");
			/* whole messages while the page stays small; values after that */
			if (ex_bytes + x->bytes > HTML_EXAMPLE_BYTES) {
				ex_cut++;
				dbuf_puts(
				    b, "</div><p class=\"muted\">whole messages not shown here "
				       "(the page stays small); the JSON report has those of each "
				       "group's first example</p>");
				continue;
			}
			ex_bytes += x->bytes;
			dbuf_puts(b, "<div><h4>primary response (recorded)</h4>");
			pre(b, x->primary);
			dbuf_puts(b, "</div><div><h4>candidate response</h4>");
			pre(b, x->candidate);
			dbuf_puts(b, "</div></div><h4>request</h4>");
			pre(b, x->request);
		}
		dbuf_puts(b, "</details>");
	}
	if (ng > HTML_MAX_EXAMPLES || ex_cut)
		dbuf_printf(b,
			    "<p class=\"muted\">Examples are shown for the first %d groups, with "
			    "whole messages for the first %u KiB of them; the JSON report has an "
			    "example of every group.</p>",
			    HTML_MAX_EXAMPLES, HTML_EXAMPLE_BYTES >> 10);
	mem_free(idx);
	dbuf_puts(b, "</section>");
}

static void count_row(struct dbuf *b, const char *src, const char *name, uint64_t v,
		      const char *cls)
{
	dbuf_puts(b, "<tr><td>");
	esc(b, src);
	dbuf_puts(b, "</td><td>");
	esc(b, name);
	dbuf_printf(b, "</td><td class=\"n\">%llu</td><td>%s</td></tr>", (unsigned long long)v,
		    cls);
}

int report_html(const struct diff_ctx *c, struct dbuf *b)
{
	if (!c->finished)
		return -EINVAL;
	const struct diff_summary *s = &c->sum;
	dbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		     "<title>dyetap diff report</title><style>");
	dbuf_puts(b, css);
	dbuf_puts(b, report_causes_css);
	dbuf_puts(b, "</style></head><body><header><h1>dyetap diff report</h1><p class=\"meta\">");
	for (size_t i = 0; i < c->n_inputs; i++) {
		if (i)
			dbuf_puts(b, " &middot; ");
		esc(b, c->inputs[i]);
	}
	dbuf_printf(b, " &middot; dyetap %s</p></header><main>", DYETAP_VERSION);
	if (s->data_incomplete) {
		struct dbuf why;
		dbuf_init(&why, 1 << 20);
		diff_ctx_reasons(c, &why);
		dbuf_puts(
		    b, "<div class=\"banner\" id=\"incomplete\"><strong>Data incomplete:</strong> "
		       "this result does not cover all traffic.");
		lines_ul(b, &why);
		dbuf_puts(b, "</div>");
		dbuf_release(&why);
	}
	struct dbuf custody;
	dbuf_init(&custody, 1 << 20);
	diff_ctx_custody(c, &custody);
	for (size_t i = 0; i < c->n_infos; i++)
		dbuf_printf(&custody, "%s\n", c->infos[i]);
	for (size_t i = 0; i < c->n_ctr; i++) {
		const struct diff_counter *k = &c->ctr[i];
		if (k->cls != DIFF_CTR_EXCLUSION || k->covered)
			continue;
		const char *m = diff_exclusion_meaning(k->name);
		dbuf_printf(&custody, "excluded by choice (not a loss): %s: %s = %llu%s%s\n",
			    k->source, k->name, (unsigned long long)k->value, *m ? ": " : "", m);
	}
	if (custody.len) {
		dbuf_puts(b, "<section id=\"custody\"><h2>Data</h2>");
		lines_ul(b, &custody);
		dbuf_puts(b, "</section>");
	}
	dbuf_release(&custody);
	if (c->n_cand > 1) {
		dbuf_puts(b, "<section id=\"candidates\"><h2>Verdicts</h2><table><thead><tr>"
			     "<th>candidate</th><th>target</th><th>verdict</th><th>compared</th>"
			     "<th>differ</th><th>data</th></tr></thead><tbody>");
		for (size_t i = 0; i < c->n_cand; i++) {
			const struct diff_cand *v = c->cand[i];
			char sfx[24] = "";
			if (i)
				snprintf(sfx, sizeof(sfx), "-%zu", i);
			dbuf_printf(b, "<tr><td><a href=\"#summary%s\">", sfx);
			esc(b, v->role);
			dbuf_puts(b, "</a></td><td>");
			esc(b, v->target ? v->target : "");
			dbuf_printf(b,
				    "</td><td>%s</td><td class=\"n\">%llu</td><td "
				    "class=\"n\">%llu</td><td>%s</td></tr>",
				    diff_cand_verdict(c, i), (unsigned long long)v->sum.compared,
				    (unsigned long long)v->sum.differing,
				    v->sum.data_incomplete ? "incomplete" : "complete");
		}
		dbuf_puts(b, "</tbody></table></section>");
	}
	for (size_t i = 0; i < c->n_cand; i++) {
		char sfx[24] = "";
		if (i)
			snprintf(sfx, sizeof(sfx), "-%zu", i);
		cand_sections(b, c, i, sfx);
	}

	dbuf_puts(b, "<section id=\"accounting\"><h2>Accounting</h2><table class=\"sortable\">"
		     "<thead><tr><th>source</th><th>counter</th><th>value</th><th>class</th></tr>"
		     "</thead><tbody>");
	for (size_t ci = 0; ci < c->n_cand; ci++) {
		const struct diff_cand *v = c->cand[ci];
		const struct diff_summary *vs = &v->sum;
		char src[160];
		snprintf(src, sizeof(src), "diff %s", v->role);
		count_row(b, src, "results", vs->results, "");
		count_row(b, src, "compared", vs->compared, "");
		count_row(b, src, "incomplete", vs->incomplete, vs->incomplete ? "loss" : "");
		count_row(b, src, "replay_errors", vs->replay_errors,
			  vs->replay_errors ? "loss" : "");
		count_row(b, src, "unreplayed", vs->unreplayed, vs->unreplayed ? "loss" : "");
		if (vs->cancelled) /* no loss: as the summary card, only when some */
			count_row(b, src, "cancelled", vs->cancelled, "");
		count_row(b, src, "secondary_pairs", vs->secondary_pairs, "");
		count_row(b, src, "findings_dropped", vs->findings_dropped, "");
		for (unsigned k = 0; k < STORE_F_COUNT; k++)
			if (v->incomplete_by_flag[k]) {
				char n[64];
				snprintf(n, sizeof(n), "incomplete: %s", diff_flag_name(k));
				count_row(b, src, n, v->incomplete_by_flag[k], "loss");
			}
		if (v->incomplete_rec_trunc)
			count_row(b, src, "incomplete: recorded body truncated",
				  v->incomplete_rec_trunc, "loss");
		if (v->incomplete_req_cut)
			count_row(b, src, "incomplete: request cut by the capture",
				  v->incomplete_req_cut, "loss");
		if (v->incomplete_cand_trunc)
			count_row(b, src, "incomplete: candidate body truncated",
				  v->incomplete_cand_trunc, "loss");
		for (unsigned k = 0; k < STORE_ERR_COUNT; k++)
			if (v->errors_by_kind[k]) {
				char n[64];
				snprintf(n, sizeof(n), "replay error: %s", diff_error_name(k));
				count_row(b, src, n, v->errors_by_kind[k], "loss");
			}
	}
	for (size_t i = 0; i < c->n_ctr; i++) {
		static const char *const cls[] = {"", "exclusion", "loss", "loss"};
		const struct diff_counter *k = &c->ctr[i];
		count_row(b, k->source, k->name, k->value,
			  k->covered ? "exclusion (covered by the merge)" : cls[k->cls & 3]);
	}
	dbuf_puts(b, "</tbody></table></section>");
	const struct noise_rules *rs = c->p.rules;
	if (rs && rs->n) {
		dbuf_puts(b, "<section id=\"rules\"><h2>Noise rules</h2><table class=\"sortable\">"
			     "<thead><tr><th>line</th><th>scope</th><th>rule</th><th>hits</th></tr>"
			     "</thead><tbody>");
		for (size_t i = 0; i < rs->n; i++) {
			dbuf_printf(b, "<tr><td class=\"n\">%u</td><td>", rs->v[i].line);
			esc(b, rs->v[i].scope ? rs->v[i].scope : "(all)");
			dbuf_puts(b, "</td><td><code>");
			esc(b, rs->v[i].text);
			dbuf_printf(b, "</code></td><td class=\"n\">%llu</td></tr>",
				    (unsigned long long)(c->rule_hits ? c->rule_hits[i] : 0));
		}
		dbuf_puts(b, "</tbody></table></section>");
	}
	dbuf_puts(b, "</main><script>");
	dbuf_puts(b, js);
	dbuf_puts(b, report_causes_js);
	dbuf_puts(b, "</script></body></html>\n");
	return dbuf_error(b);
}
