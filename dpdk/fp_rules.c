/* SPDX-License-Identifier: MIT */
/*
 * fp_rules.c - color decisions for the fast path, and the bounded request
 * scanner that feeds them.
 *
 * The rules are capture/rules.h's (grammar and semantics in docs/rules.md):
 * the fast path builds a session carrying what it knows of a flow - the
 * addresses, ports and VLAN and, once the header block of the first request
 * is in, the request line and headers - and asks rules_match(). So a flow is
 * colored exactly as `dyetap record` colors its first transaction. What the
 * fast path adds is timing: a new flow is decided at its first packet when
 * every rule before the first matching one is decidable from addresses
 * (rules_l4_only() on the rule alone); otherwise it waits for its first
 * request bytes. The request scanner reads only the request line and the
 * header block (RFC 9112 §2-§5), zero-copy, over a bounded prefix.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capture/rules.h"
#include "common/mem.h"
#include "dpdk/fp_private.h"
#include "store/store.h"

void fp_rules_release(struct fp_rules *rs)
{
	rules_free(rs->all);
	for (unsigned i = 0; i < rs->nrules; i++)
		rules_free(rs->single[i]);
	for (unsigned i = 1; i <= rs->nlanes; i++)
		mem_free(rs->lane_names[i]);
	memset(rs, 0, sizeof(*rs));
}

static int lane_index(const struct fp_rules *rs, const char *name, size_t n)
{
	for (unsigned i = 1; i <= rs->nlanes; i++)
		if (strlen(rs->lane_names[i]) == n && !memcmp(rs->lane_names[i], name, n))
			return (int)i;
	return 0;
}

int fp_rules_add(struct fp_rules *rs, const char *text, char *err, size_t errlen)
{
	const char *b = text, *eq;
	size_t ln;
	int rc;

	if (rs->nrules >= FP_MAX_RULES) {
		snprintf(err, errlen, "too many rules (max %d)", FP_MAX_RULES);
		return -E2BIG;
	}
	if (!rs->all && !(rs->all = rules_create()))
		return -ENOMEM;
	rs->single[rs->nrules] = rules_create();
	if (!rs->single[rs->nrules])
		return -ENOMEM;
	/* rules_add() is the judge of the grammar; its message goes to the user. */
	rc = rules_add(rs->single[rs->nrules], text, err, errlen);
	if (rc == 0)
		rc = rules_add(rs->all, text, err, errlen);
	if (rc) {
		rules_free(rs->single[rs->nrules]);
		rs->single[rs->nrules] = NULL;
		return rc;
	}
	/* The lane: the text before '=', blanks around it ignored (docs/rules.md). */
	while (*b == ' ' || *b == '\t')
		b++;
	eq = strchr(b, '=');
	assert(eq); /* rules_add() accepted it */
	ln = (size_t)(eq - b);
	while (ln && (b[ln - 1] == ' ' || b[ln - 1] == '\t'))
		ln--;
	if (!lane_index(rs, b, ln)) {
		if (rs->nlanes >= FP_MAX_LANES) {
			snprintf(err, errlen, "too many lanes (max %d)", FP_MAX_LANES);
			rules_free(rs->single[rs->nrules]);
			rs->single[rs->nrules] = NULL;
			return -E2BIG;
		}
		rs->lane_names[rs->nlanes + 1] = mem_strndup(b, ln);
		if (!rs->lane_names[rs->nlanes + 1])
			return -ENOMEM;
		rs->nlanes++;
	}
	rs->l4only[rs->nrules] = rules_l4_only(rs->single[rs->nrules]);
	rs->any_http |= !rs->l4only[rs->nrules];
	rs->nrules++;
	return 0;
}

int fp_rules_seed(struct fp_rules *rs, const struct fp_rules *from)
{
	for (unsigned i = 1; i <= from->nlanes; i++) {
		rs->lane_names[i] = mem_strdup(from->lane_names[i]);
		if (!rs->lane_names[i])
			return -ENOMEM;
		rs->nlanes = i;
	}
	return 0;
}

int fp_rules_load_file(struct fp_rules *rs, const char *path, char *err, size_t errlen)
{
	struct rules *tmp = rules_create();
	int rc;
	if (!tmp)
		return -ENOMEM;
	rc = rules_load_file(tmp, path, err, errlen);
	for (size_t i = 0; rc == 0 && i < rules_count(tmp); i++)
		rc = fp_rules_add(rs, rules_text(tmp, i), err, errlen);
	rules_free(tmp);
	return rc;
}

/* The session of @p pk's flow with the client side first (no request). */
static void flow_session(struct store_session *s, const struct fp_pkt *pk, int client)
{
	bool swap;
	const uint8_t *c, *v;

	if (client == 0 || client == 1)
		swap = pk->dir != client;
	else
		swap = pk->sport < pk->dport; /* unknown: the higher port is the client */
	memset(s, 0, sizeof(*s));
	s->ip_version = pk->v6 ? 6 : 4;
	c = swap ? pk->dst : pk->src;
	v = swap ? pk->src : pk->dst;
	if (pk->v6) {
		memcpy(s->src.addr, c, 16);
		memcpy(s->dst.addr, v, 16);
	} else {
		memcpy(s->src.addr, c + 12, 4);
		memcpy(s->dst.addr, v + 12, 4);
	}
	s->src.port = swap ? pk->dport : pk->sport;
	s->dst.port = swap ? pk->sport : pk->dport;
	s->vlan = pk->vlan;
}

static int lane_of(const struct fp_rules *rs, const char *name)
{
	return name ? lane_index(rs, name, strlen(name)) : FP_LANE_NONE;
}

int fp_rules_decide_l4(const struct fp_rules *rs, const struct fp_pkt *pk, int client)
{
	struct store_session s;
	flow_session(&s, pk, client);
	for (unsigned i = 0; i < rs->nrules; i++) {
		if (!rs->l4only[i]) {
			if (pk->proto == 6)
				return FP_DECIDE_LATER; /* this rule needs the request */
			continue;			/* no HTTP over UDP */
		}
		const char *lane = rules_match(rs->single[i], &s);
		if (lane)
			return lane_of(rs, lane);
	}
	return FP_LANE_NONE;
}

int fp_rules_decide_http(const struct fp_rules *rs, const struct fp_pkt *pk,
			 const struct fp_req *rq)
{
	struct store_header h[FP_MAX_HDRS];
	struct store_session s;

	flow_session(&s, pk, pk->dir);
	if (rq) {
		for (unsigned i = 0; i < rq->nh; i++) {
			h[i].name =
			    (struct store_slice){(const uint8_t *)rq->hname[i].p, rq->hname[i].n};
			h[i].value =
			    (struct store_slice){(const uint8_t *)rq->hval[i].p, rq->hval[i].n};
		}
		s.req.present = true;
		s.req.method = (struct store_slice){(const uint8_t *)rq->method.p, rq->method.n};
		s.req.target = (struct store_slice){(const uint8_t *)rq->target.p, rq->target.n};
		s.req.version_major = 1;
		s.req.version_minor = rq->version_minor;
		s.req.headers = h;
		s.req.n_headers = rq->nh;
	}
	return lane_of(rs, rules_match(rs->all, &s));
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool fp_http_looks_like_request(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && i < 16 && p[i] >= 'A' && p[i] <= 'Z')
		i++;
	/* A short prefix of capitals may still become a method. */
	return (i == n && n < 16) || (i >= 3 && i < n && p[i] == ' ');
}

/* One line ending at LF (CR before it is dropped); -1 when none yet. */
static ssize_t line_end(const char *p, size_t n, size_t from, size_t *next)
{
	const char *lf = memchr(p + from, '\n', n - from);
	size_t e;
	if (!lf)
		return -1;
	e = (size_t)(lf - p);
	*next = e + 1;
	if (e > from && p[e - 1] == '\r')
		e--;
	return (ssize_t)e;
}

int fp_http_scan(const char *p, size_t n, struct fp_req *rq)
{
	size_t pos = 0, next, i;
	ssize_t e;
	const char *sp1, *sp2;

	memset(rq, 0, offsetof(struct fp_req, hname));
	if (n && !fp_http_looks_like_request(p, n))
		return -EBADMSG;
	e = line_end(p, n, 0, &next);
	if (e < 0)
		return 0;
	sp1 = memchr(p, ' ', (size_t)e);
	if (!sp1)
		return -EBADMSG;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(p + e - sp1 - 1));
	if (!sp2 || (size_t)(p + e - sp2 - 1) < 8 || memcmp(sp2 + 1, "HTTP/1.", 7))
		return -EBADMSG;
	rq->method = (struct fp_slice){p, (size_t)(sp1 - p)};
	rq->target = (struct fp_slice){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	rq->version_minor = (uint8_t)(sp2[8] >= '0' && sp2[8] <= '9' ? sp2[8] - '0' : 0);
	rq->path = (struct fp_slice){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	for (i = 0; i < rq->path.n; i++)
		if (rq->path.p[i] == '?') {
			rq->query = (struct fp_slice){rq->path.p + i + 1, rq->path.n - i - 1};
			rq->path.n = i;
			break;
		}
	pos = next;
	for (;;) {
		const char *colon, *v, *ve;
		e = line_end(p, n, pos, &next);
		if (e < 0)
			return 0;
		if ((size_t)e == pos) {
			rq->complete = true;
			return 1;
		}
		colon = memchr(p + pos, ':', (size_t)e - pos);
		if (!colon || colon == p + pos)
			return -EBADMSG;
		for (const char *c = p + pos; c < colon; c++)
			if (!is_tchar(*c))
				return -EBADMSG;
		v = colon + 1;
		ve = p + e;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (rq->nh < FP_MAX_HDRS) {
			rq->hname[rq->nh] = (struct fp_slice){p + pos, (size_t)(colon - p - pos)};
			rq->hval[rq->nh] = (struct fp_slice){v, (size_t)(ve - v)};
			rq->nh++;
		}
		pos = next;
	}
}
