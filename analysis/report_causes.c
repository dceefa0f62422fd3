/* SPDX-License-Identifier: MIT */
/*
 * report_causes - the causes section of the HTML report (report_html.c),
 * what a QA engineer reads first: the root causes of a verdict by
 * severity (status changes, then lost or retyped data, changed values,
 * then header-only changes), each with its endpoints and counts, the
 * request of an example, the primary and candidate responses side by side
 * with JSON bodies pretty-printed and the changed field highlighted
 * (<mark class="hl">), the diff rules that would accept the change as
 * intended with a copy button, and the groups it covers.
 *
 * Every text from traffic goes through report_escape(). Examples were
 * masked (credentials) and capped when they were kept (diff_ctx.c); a
 * body that does not parse as JSON (a capped one, text) is shown as it is.
 *
 * The section is bounded whatever the number of causes (diff_causes.h
 * "listing caps"): the largest causes of each severity, each with its
 * first groups and endpoints; a line says how many more the JSON has.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "analysis/json.h"
#include "analysis/report.h"
#include "common/mem.h"

/* Causes shown with their example open; the rest are one click away. */
#define HTML_OPEN_CAUSES 3
/* Causes shown with whole messages (request, both responses); the others
 * show the values only, so the report stays small whatever the traffic. */
#define HTML_CAUSE_MESSAGES 40

const char report_causes_css[] =
    ".cause{border:1px solid #dde1e6;border-left:6px solid #9aa3af;border-radius:6px;"
    "padding:8px 12px;margin:0 0 10px}"
    ".cause.sev-status{border-left-color:#b3261e}.cause.sev-data_lost{border-left-color:#e07000}"
    ".cause.sev-data_changed{border-left-color:#c9a400}.cause.sev-header{border-left-color:#5b7db1}"
    ".cause h3{font-size:15px;margin:2px 0 6px}.cause .sev{font-size:12px;text-transform:uppercase;"
    "letter-spacing:.04em;color:#6b7280;margin-right:6px}"
    ".cause .pat{background:#f0f2f5;border-radius:4px;padding:0 6px;font-size:12px}"
    "mark.hl{background:#ffe066;outline:1px solid #e0a800;border-radius:2px}"
    ".cause pre{position:relative}"
    ".rule{display:flex;gap:8px;align-items:flex-start}.rule pre{flex:1;margin:4px 0}"
    ".rule button{margin-top:6px;cursor:pointer}";

const char report_causes_js[] =
    "document.querySelectorAll('button[data-copy]').forEach(function(bt){"
    "bt.addEventListener('click',function(){"
    "var t=document.getElementById(bt.getAttribute('data-copy')).textContent+'\\n';"
    "if(navigator.clipboard)navigator.clipboard.writeText(t);bt.textContent='Copied';});});"
    /* a highlighted field deep in a long body: scroll its box to it */
    "document.querySelectorAll('.cause pre mark.hl').forEach(function(m){"
    "var p=m.closest('pre');p.scrollTop=Math.max(0,m.offsetTop-40);});";

static void esc(struct dbuf *b, const char *s)
{
	report_escape(b, s, strlen(s));
}

bool report_cause_pick(struct report_cause_pick *p, const struct diff_rootcause *rc,
		       uint32_t per_sev)
{
	assert(rc->severity < DIFF_SEV_COUNT);
	return p->seen[rc->noise != 0][rc->severity]++ < per_sev;
}

uint64_t report_causes_left_out(const struct diff_causes *cs, bool noise, uint32_t per_sev)
{
	struct report_cause_pick p = {{{0}}};
	uint64_t out = 0;
	for (size_t i = 0; cs && i < cs->n; i++)
		if ((cs->v[i].noise != 0) == noise && !report_cause_pick(&p, &cs->v[i], per_sev))
			out++;
	return out;
}

/* ---- locating the changed node in a body ---- */

/* Member @p k[0..n) of object @p o, or 0. */
static uint32_t member(const struct json_doc *d, uint32_t o, const char *k, size_t n)
{
	const struct json_node *on = json_node(d, o);
	if (on->type != JSON_OBJECT)
		return 0;
	for (uint32_t c = on->first; c; c = json_node(d, c)->next) {
		const struct json_node *cn = json_node(d, c);
		if (cn->key_len == n && !memcmp(d->text + cn->key_off, k, n))
			return c;
	}
	return 0;
}

/*
 * The node at location @p loc ("$.a[2].b", "$[id=7]", "$[\"x y\"]", "[*]"
 * = the first element) of @p d; UINT32_MAX when the location is not in
 * this body.
 */
static uint32_t locate(const struct json_doc *d, const char *loc)
{
	if (loc[0] != '$')
		return UINT32_MAX;
	uint32_t cur = 0;
	const char *p = loc + 1;
	while (*p) {
		const struct json_node *n = json_node(d, cur);
		if (*p == '.') {
			const char *k = ++p;
			while (*p && *p != '.' && *p != '[')
				p++;
			cur = member(d, cur, k, (size_t)(p - k));
		} else if (p[0] == '[' && p[1] == '"') {
			const char *k = p + 2, *e = strstr(k, "\"]");
			if (!e)
				return UINT32_MAX;
			cur = member(d, cur, k, (size_t)(e - k));
			p = e + 2;
		} else if (*p == '[') {
			const char *e = strchr(p, ']');
			if (!e || n->type != JSON_ARRAY)
				return UINT32_MAX;
			const char *eq = memchr(p, '=', (size_t)(e - p));
			uint32_t el = n->first, found = 0;
			if (p[1] == '*') {
				found = el;
			} else if (eq) { /* [field=value] */
				for (; el && !found; el = json_node(d, el)->next) {
					uint32_t m = member(d, el, p + 1, (size_t)(eq - p - 1));
					const struct json_node *mn = m ? json_node(d, m) : NULL;
					if (mn && mn->len == (size_t)(e - eq - 1) &&
					    !memcmp(d->text + mn->off, eq + 1, mn->len))
						found = el;
				}
			} else {
				unsigned long i = 0;
				for (const char *q = p + 1; q < e; q++) {
					if (!isdigit((unsigned char)*q) || i > 100000000ul)
						return UINT32_MAX;
					i = i * 10 + (unsigned long)(*q - '0');
				}
				for (; el && i; i--)
					el = json_node(d, el)->next;
				found = el;
			}
			cur = found;
			p = e + 1;
		} else {
			return UINT32_MAX;
		}
		if (!cur)
			return UINT32_MAX;
	}
	return cur;
}

/* ---- pretty-printing ---- */

static void indent(struct dbuf *b, int depth)
{
	for (int i = 0; i < depth && i < 32; i++)
		dbuf_puts(b, "  ");
}

/* JSON node @p i of @p d, indented, escaped for HTML; node @p hl marked. */
static void pretty(struct dbuf *b, const struct json_doc *d, uint32_t i, int depth, uint32_t hl)
{
	const struct json_node *n = json_node(d, i);
	if (i == hl)
		dbuf_puts(b, "<mark class=\"hl\">");
	switch (n->type) {
	case JSON_STRING:
		dbuf_putc(b, '"');
		report_escape(b, d->text + n->off, n->len);
		dbuf_putc(b, '"');
		break;
	case JSON_ARRAY:
	case JSON_OBJECT: {
		bool obj = n->type == JSON_OBJECT;
		dbuf_putc(b, obj ? '{' : '[');
		if (!n->n) {
			dbuf_putc(b, obj ? '}' : ']');
			break;
		}
		for (uint32_t c = n->first; c; c = json_node(d, c)->next) {
			const struct json_node *cn = json_node(d, c);
			dbuf_putc(b, '\n');
			indent(b, depth + 1);
			if (obj) {
				dbuf_putc(b, '"');
				report_escape(b, d->text + cn->key_off, cn->key_len);
				dbuf_puts(b, "\": ");
			}
			pretty(b, d, c, depth + 1, hl);
			if (cn->next)
				dbuf_putc(b, ',');
		}
		dbuf_putc(b, '\n');
		indent(b, depth);
		dbuf_putc(b, obj ? '}' : ']');
		break;
	}
	default:
		report_escape(b, d->text + n->off, n->len);
	}
	if (i == hl)
		dbuf_puts(b, "</mark>");
}

/*
 * One rendered message (status line, headers, blank line, body) as
 * <pre>: the status line marked for a status cause, the header line for a
 * header cause, the node at the location for a JSON cause (body
 * pretty-printed). *marked says whether something was.
 */
static void message(struct dbuf *b, const char *msg, const char *loc, uint8_t kind, bool *marked)
{
	*marked = false;
	const char *head_end = strstr(msg, "\n\n");
	size_t hl = head_end ? (size_t)(head_end - msg) : strlen(msg);
	const char *body = head_end ? head_end + 2 : "";
	dbuf_puts(b, "<pre>");
	/* head, line by line */
	/* gRPC's status is a field (grpc-status, grpc-message): its line */
	bool grpc = !strcmp(loc, "grpc-status") || !strcmp(loc, "grpc-message");
	const char *hname = !strncmp(loc, "header:", 7) ? loc + 7 : grpc ? loc : NULL;
	size_t hnl = hname ? strcspn(hname, "[") : 0;
	for (const char *l = msg; l < msg + hl;) {
		const char *e = memchr(l, '\n', (size_t)(msg + hl - l));
		size_t n = e ? (size_t)(e - l) : (size_t)(msg + hl - l);
		bool mark = (kind == DIFF_K_STATUS && !grpc && l == msg) ||
			    (hname && n > hnl && l[hnl] == ':' && !strncasecmp(l, hname, hnl));
		if (mark) {
			dbuf_puts(b, "<mark class=\"hl\">");
			*marked = true;
		}
		report_escape(b, l, n);
		if (mark)
			dbuf_puts(b, "</mark>");
		dbuf_putc(b, '\n');
		l += n + 1;
	}
	if (head_end)
		dbuf_putc(b, '\n');
	/* body: pretty JSON with the node marked, else as it is */
	const char *jloc = !strncmp(loc, "body:$", 6) ? loc + 5 : NULL;
	struct json_doc d;
	json_doc_init(&d, NULL);
	size_t blen = strlen(body);
	if (blen && (body[0] == '{' || body[0] == '[') &&
	    !json_parse(&d, (const uint8_t *)body, blen)) {
		uint32_t at = jloc && kind != DIFF_K_NOT_JSON ? locate(&d, jloc) : UINT32_MAX;
		*marked |= at != UINT32_MAX;
		pretty(b, &d, 0, 0, at);
	} else {
		report_escape(b, body, blen);
	}
	json_doc_release(&d);
	dbuf_puts(b, "</pre>");
}

/* ---- the section ---- */

/* Cause @p i of @p v, the @p nth block of the section. */
static void cause_block(struct dbuf *b, const struct diff_cand *v, size_t i, size_t nth,
			const char *sfx, struct dbuf *rules)
{
	const struct diff_rootcause *rc = &v->roots->v[i];
	const char *sev = diff_severity_name(rc->severity);
	dbuf_printf(
	    b, "<div class=\"cause sev-%s\" id=\"cause-c%zu%s\" data-kind=\"%s\" data-location=\"",
	    sev, i + 1, sfx, diff_kind_name(rc->kind));
	esc(b, rc->location);
	dbuf_printf(b,
		    "\" data-noise=\"%s\"><h3><span class=\"sev\">%s</span>c%zu <code>%s</code> "
		    "<code class=\"loc\">",
		    rc->noise ? "true" : "false", sev, i + 1, diff_kind_name(rc->kind));
	esc(b, rc->location);
	dbuf_puts(b, "</code>");
	if (rc->pattern[0]) {
		dbuf_puts(b, " <span class=\"pat\">");
		esc(b, rc->pattern);
		dbuf_puts(b, "</span>");
	}
	if (rc->noise)
		dbuf_printf(b, " <span class=\"tag noise\">%s</span>",
			    rc->noise == DIFF_NOISE_LEARNED ? "learned from secondary"
							    : "values look volatile");
	dbuf_printf(b, "</h3><p>%llu of %llu responses (%.2f%%) on %u endpoint%s: ",
		    (unsigned long long)rc->count, (unsigned long long)rc->pairs, rc->rate * 100,
		    rc->n_eps, rc->n_eps == 1 ? "" : "s");
	for (uint32_t e = 0; e < rc->n_eps && e < REPORT_CAUSE_ROWS; e++) {
		dbuf_puts(b, e ? ", <code>" : "<code>");
		esc(b, v->ep[rc->eps[e]].name);
		dbuf_puts(b, "</code>");
	}
	if (rc->n_eps > REPORT_CAUSE_ROWS)
		dbuf_printf(b, " and %u more (in the JSON report)", rc->n_eps - REPORT_CAUSE_ROWS);
	dbuf_puts(b, "</p>");

	const struct diff_group *g0 = rc->n_groups ? &v->gr[rc->groups[0]] : NULL;
	const struct diff_example *x = g0 ? diff_group_example(g0) : NULL;
	if (x) {
		const char *loc = x->iloc[0] ? x->iloc : g0->location;
		dbuf_printf(b,
			    "<details class=\"example\"%s><summary>Example: session %llu, <code>",
			    nth < HTML_OPEN_CAUSES && !rc->noise ? " open" : "",
			    (unsigned long long)x->session_id);
		esc(b, v->ep[g0->endpoint].name);
		dbuf_puts(b, "</code> at <code>");
		esc(b, loc);
		dbuf_puts(b, "</code>: <code>");
		esc(b, x->pval[0] ? x->pval : "(absent)");
		dbuf_puts(b, "</code> &rarr; <code>");
		esc(b, x->cval[0] ? x->cval : "(absent)");
		if (nth >= HTML_CAUSE_MESSAGES) {
			dbuf_printf(
			    b,
			    "</code></summary><p class=\"muted\">Whole messages are shown "
			    "for the first %d causes; this one's are in the group's example "
			    "below.</p></details>",
			    HTML_CAUSE_MESSAGES);
			goto rules;
		}
		dbuf_puts(b, "</code></summary><h4>Request</h4><pre class=\"request\">");
		esc(b, x->request ? x->request : "");
		dbuf_puts(b, "</pre><div class=\"pair\"><div><h4>Primary (recorded)</h4>");
		bool mp, mc;
		message(b, x->primary ? x->primary : "", loc, rc->kind, &mp);
		dbuf_puts(b, "</div><div><h4>Candidate</h4>");
		message(b, x->candidate ? x->candidate : "", loc, rc->kind, &mc);
		dbuf_puts(b, "</div></div>");
		if (!mp || !mc)
			dbuf_printf(b, "<p class=\"muted\">%s</p>",
				    !mp && !mc ? "The location is in neither shown body."
				    : !mp      ? "Not in the primary response."
					       : "Not in the candidate response.");
		dbuf_puts(b, "</details>");
	}
rules:
	dbuf_reset(rules);
	diff_cause_rules(v, rc, rules);
	if (rules->len > REPORT_RULE_BYTES) {
		/* a section per endpoint: too long to read here, and a cut one would
		 * accept less than it says */
		dbuf_printf(b,
			    "<p class=\"muted\">Its diff rules, a section for each of its %u "
			    "endpoints, are in the JSON report (the cause's <code>rule</code>)."
			    "</p>",
			    rc->n_eps);
	} else if (rules->len) {
		dbuf_printf(b,
			    "<h4>Accept it as intended: diff rules (<code>--rules</code>)</h4>"
			    "<div class=\"rule\"><pre id=\"rule-c%zu%s\"><code>",
			    i + 1, sfx);
		report_escape(b, rules->data, rules->len);
		dbuf_printf(b,
			    "</code></pre><button type=\"button\" data-copy=\"rule-c%zu%s\" "
			    "title=\"copy the diff rules that accept this change as intended\">"
			    "Copy rule</button></div>",
			    i + 1, sfx);
	}
	dbuf_printf(b,
		    "<details class=\"groups\"><summary>%u difference group%s</summary><table>"
		    "<thead><tr><th>endpoint</th><th>location</th><th>kind</th><th>count</th>"
		    "<th>rate</th></tr></thead><tbody>",
		    rc->n_groups, rc->n_groups == 1 ? "" : "s");
	for (uint32_t k = 0; k < rc->n_groups && k < REPORT_CAUSE_ROWS; k++) {
		const struct diff_group *g = &v->gr[rc->groups[k]];
		dbuf_puts(b, "<tr><td>");
		esc(b, v->ep[g->endpoint].name);
		dbuf_puts(b, "</td><td><code>");
		esc(b, g->location);
		dbuf_printf(b,
			    "</code></td><td>%s</td><td class=\"n\">%llu</td><td class=\"n\">%.2f%%"
			    "</td></tr>",
			    diff_kind_name(g->kind), (unsigned long long)g->count, g->rate * 100);
	}
	dbuf_puts(b, "</tbody></table>");
	if (rc->n_groups > REPORT_CAUSE_ROWS)
		dbuf_printf(b,
			    "<p class=\"muted\">%u more groups (as many pairs each or fewer) are "
			    "in the JSON "
			    "report.</p>",
			    rc->n_groups - REPORT_CAUSE_ROWS);
	dbuf_puts(b, "</details></div>");
}

/* The line after a capped list of causes. */
static void more_causes(struct dbuf *b, uint64_t more, const char *what, const char *id,
			const char *sfx)
{
	if (more)
		dbuf_printf(b,
			    "<p class=\"muted more-causes\" id=\"%s%s\">%llu more %scauses (the "
			    "%d largest of each severity are shown) are in the JSON report.</p>",
			    id, sfx, (unsigned long long)more, what, REPORT_CAUSES_PER_SEV);
}

void report_html_causes(struct dbuf *b, const struct diff_cand *v, const char *sfx)
{
	const struct diff_causes *cs = v->roots;
	dbuf_printf(b,
		    "<section id=\"causes%s\" class=\"causes\"><h2>Causes <span class=\"muted\">"
		    "(%llu real, %llu judged noise; most severe first)</span></h2>",
		    sfx, (unsigned long long)(cs ? cs->real : 0),
		    (unsigned long long)(cs ? cs->noise : 0));
	if (!cs || !cs->real)
		dbuf_puts(b, "<p class=\"muted\">No real difference.</p>");
	struct dbuf rules;
	dbuf_init(&rules, 1 << 20);
	struct report_cause_pick pick = {{{0}}};
	size_t shown = 0;
	for (size_t i = 0; cs && i < cs->n; i++)
		if (!cs->v[i].noise && report_cause_pick(&pick, &cs->v[i], REPORT_CAUSES_PER_SEV))
			cause_block(b, v, i, shown++, sfx, &rules);
	more_causes(b, report_causes_left_out(cs, false, REPORT_CAUSES_PER_SEV), "", "more-causes",
		    sfx);
	if (cs && cs->noise) {
		dbuf_printf(b,
			    "<details id=\"noise-causes%s\"><summary>%llu causes judged noise"
			    "</summary>",
			    sfx, (unsigned long long)cs->noise);
		for (size_t i = 0; i < cs->n; i++)
			if (cs->v[i].noise &&
			    report_cause_pick(&pick, &cs->v[i], REPORT_CAUSES_PER_SEV))
				cause_block(b, v, i, shown++, sfx, &rules);
		more_causes(b, report_causes_left_out(cs, true, REPORT_CAUSES_PER_SEV), "noise ",
			    "more-noise-causes", sfx);
		dbuf_puts(b, "</details>");
	}
	if (dbuf_error(&rules) && !b->err)
		b->err = -ENOMEM;
	dbuf_release(&rules);
	dbuf_puts(b, "</section>");
}
