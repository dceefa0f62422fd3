/* SPDX-License-Identifier: MIT */
/*
 * fp_rules.c - color rules compiled for the fast path, and the bounded
 * request scanner that feeds them.
 *
 * The grammar is the one of docs/rules.md (capture/rules.h): a rule is
 * "LANE=MATCH[,MATCH...]", the first matching rule wins. The fast path
 * needs one thing the shared rule set does not offer: deciding a flow from
 * L3/L4 fields at its first packet, and knowing when a rule with HTTP
 * matchers could still match (then the flow waits for its first request
 * bytes). So the rules are compiled here into flat matcher arrays; the
 * request scanner reads only the request line and the header block
 * (RFC 9112 §2-§5), zero-copy, over a bounded prefix.
 *
 * Sampling hashes the key's value with 64-bit FNV-1a and keeps it when
 * hash % 10000 is below the percentage in hundredths: the same users are
 * sampled every time, on every lcore and every run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "common/mem.h"
#include "dpdk/fp_private.h"

static char *keep(struct fp_rules *rs, const char *s, size_t n)
{
	char *d;
	if (rs->nstrings >= RTE_DIM(rs->strings))
		return NULL;
	d = mem_strndup(s, n);
	if (d)
		rs->strings[rs->nstrings++] = d;
	return d;
}

void fp_rules_release(struct fp_rules *rs)
{
	for (unsigned i = 0; i < rs->nstrings; i++)
		mem_free(rs->strings[i]);
	for (unsigned i = 1; i <= rs->nlanes; i++)
		mem_free(rs->lane_names[i]);
	for (unsigned i = 0; i < rs->nrules; i++)
		mem_free(rs->texts[i]);
	memset(rs, 0, sizeof(*rs));
}

static int parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint32_t v = 0;
	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_cidr(const char *s, size_t n, struct fp_matcher *m)
{
	char buf[64];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	uint32_t plen;
	uint8_t a4[4];

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, a4) == 1) {
		fp_v4_mapped(m->addr, a4);
		plen = 32;
		if (slash && parse_u32(slash + 1, n - alen - 1, 32, &plen))
			return -1;
		m->plen = (uint8_t)(96 + plen);
	} else if (inet_pton(AF_INET6, buf, m->addr) == 1) {
		plen = 128;
		if (slash && parse_u32(slash + 1, n - alen - 1, 128, &plen))
			return -1;
		m->plen = (uint8_t)plen;
	} else {
		return -1;
	}
	return 0;
}

/* NAME[=VALUE] for header/cookie/query. */
static int parse_named(struct fp_rules *rs, const char *s, size_t n, struct fp_matcher *m)
{
	const char *eq = memchr(s, '=', n);
	size_t nl = eq ? (size_t)(eq - s) : n;
	if (nl == 0)
		return -1;
	m->name = keep(rs, s, nl);
	m->name_len = nl;
	if (!m->name)
		return -1;
	if (eq) {
		m->value = keep(rs, eq + 1, n - nl - 1);
		m->value_len = n - nl - 1;
		if (!m->value)
			return -1;
	}
	return 0;
}

static int parse_sample(struct fp_rules *rs, const char *s, size_t n, struct fp_matcher *m)
{
	/* KIND:NAME:P% with P a decimal with up to two fraction digits. */
	const char *c1 = memchr(s, ':', n), *c2, *pct;
	uint32_t whole = 0, frac = 0;
	size_t i;

	if (!c1)
		return -1;
	if ((size_t)(c1 - s) == 6 && !memcmp(s, "header", 6))
		m->sub = FP_M_HEADER;
	else if ((size_t)(c1 - s) == 6 && !memcmp(s, "cookie", 6))
		m->sub = FP_M_COOKIE;
	else if ((size_t)(c1 - s) == 5 && !memcmp(s, "query", 5))
		m->sub = FP_M_QUERY;
	else
		return -1;
	c2 = memrchr(c1 + 1, ':', n - (size_t)(c1 + 1 - s));
	if (!c2 || c2 == c1 + 1 || s[n - 1] != '%')
		return -1;
	m->name = keep(rs, c1 + 1, (size_t)(c2 - c1 - 1));
	m->name_len = (size_t)(c2 - c1 - 1);
	if (!m->name)
		return -1;
	pct = c2 + 1;
	i = 0;
	while (pct + i < s + n - 1 && pct[i] >= '0' && pct[i] <= '9' && i < 3)
		whole = whole * 10 + (uint32_t)(pct[i++] - '0');
	if (i == 0)
		return -1;
	if (pct + i < s + n - 1) {
		unsigned fd = 0;
		if (pct[i++] != '.')
			return -1;
		while (pct + i < s + n - 1 && fd < 2 && pct[i] >= '0' && pct[i] <= '9') {
			frac = frac * 10 + (uint32_t)(pct[i++] - '0');
			fd++;
		}
		if (fd == 0 || pct + i != s + n - 1)
			return -1;
		if (fd == 1)
			frac *= 10;
	}
	m->permyriad = whole * 100 + frac;
	return m->permyriad <= 10000 ? 0 : -1;
}

static int parse_matcher(struct fp_rules *rs, const char *s, size_t n, struct fp_matcher *m)
{
	static const struct {
		const char *name;
		enum fp_match_kind kind;
	} kinds[] = {
	    {"src", FP_M_SRC},	     {"dst", FP_M_DST},	      {"port", FP_M_PORT},
	    {"sport", FP_M_SPORT},   {"dport", FP_M_DPORT},   {"vlan", FP_M_VLAN},
	    {"header", FP_M_HEADER}, {"cookie", FP_M_COOKIE}, {"query", FP_M_QUERY},
	    {"path", FP_M_PATH},     {"method", FP_M_METHOD}, {"host", FP_M_HOST},
	    {"sample", FP_M_SAMPLE},
	};
	const char *colon = memchr(s, ':', n);
	size_t kl, al;
	const char *arg;
	uint32_t v;

	if (!colon)
		return -1;
	kl = (size_t)(colon - s);
	arg = colon + 1;
	al = n - kl - 1;
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < RTE_DIM(kinds); i++)
		if (strlen(kinds[i].name) == kl && !memcmp(kinds[i].name, s, kl))
			m->kind = kinds[i].kind;
	if (al == 0)
		return -1;
	switch (m->kind) {
	case FP_M_SRC:
	case FP_M_DST:
		return parse_cidr(arg, al, m);
	case FP_M_PORT:
	case FP_M_SPORT:
	case FP_M_DPORT:
		if (parse_u32(arg, al, 65535, &v))
			return -1;
		m->num = (uint16_t)v;
		return 0;
	case FP_M_VLAN:
		if (parse_u32(arg, al, 4095, &v))
			return -1;
		m->num = (uint16_t)v;
		return 0;
	case FP_M_HEADER:
	case FP_M_COOKIE:
	case FP_M_QUERY:
		return parse_named(rs, arg, al, m);
	case FP_M_PATH:
	case FP_M_METHOD:
	case FP_M_HOST:
		m->value = keep(rs, arg, al);
		m->value_len = al;
		return m->value ? 0 : -1;
	case FP_M_SAMPLE:
		return parse_sample(rs, arg, al, m);
	}
	return -1;
}

int fp_rules_add(struct fp_rules *rs, const char *text, char *err, size_t errlen)
{
	const char *eq = strchr(text, '=');
	const char *p, *end = text + strlen(text);
	struct fp_rule *r;
	size_t ll;
	int lane = 0;

	if (rs->nrules >= FP_MAX_RULES) {
		snprintf(err, errlen, "too many rules (max %d)", FP_MAX_RULES);
		return -E2BIG;
	}
	if (!eq || eq == text || eq + 1 == end) {
		snprintf(err, errlen, "rule '%s': expected LANE=MATCH[,MATCH...]", text);
		return -EINVAL;
	}
	ll = (size_t)(eq - text);
	for (unsigned i = 1; i <= rs->nlanes; i++)
		if (strlen(rs->lane_names[i]) == ll && !memcmp(rs->lane_names[i], text, ll))
			lane = (int)i;
	if (!lane) {
		if (rs->nlanes >= FP_MAX_LANES) {
			snprintf(err, errlen, "too many lanes (max %d)", FP_MAX_LANES);
			return -E2BIG;
		}
		rs->lane_names[rs->nlanes + 1] = mem_strndup(text, ll);
		if (!rs->lane_names[rs->nlanes + 1])
			return -ENOMEM;
		lane = (int)++rs->nlanes;
	}
	r = &rs->r[rs->nrules];
	memset(r, 0, sizeof(*r));
	r->lane = lane;
	for (p = eq + 1; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
		if (r->nm >= FP_MAX_MATCHERS) {
			snprintf(err, errlen, "rule '%s': too many matchers (max %d)", text,
				 FP_MAX_MATCHERS);
			return -E2BIG;
		}
		if (parse_matcher(rs, p, n, &r->m[r->nm])) {
			snprintf(err, errlen, "rule '%s': bad matcher '%.*s'", text, (int)n, p);
			return -EINVAL;
		}
		if (r->m[r->nm].kind >= FP_M_HEADER)
			r->needs_http = true;
		r->nm++;
		p += n + 1;
	}
	rs->texts[rs->nrules] = mem_strdup(text);
	if (!rs->texts[rs->nrules])
		return -ENOMEM;
	rs->any_http |= r->needs_http;
	rs->nrules++;
	return 0;
}

static bool cidr_match(const struct fp_matcher *m, const uint8_t *a)
{
	unsigned full = m->plen / 8, rest = m->plen % 8;
	if (memcmp(m->addr, a, full))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((m->addr[full] & mask) != (a[full] & mask))
			return false;
	}
	return true;
}

/* Orient @p pk so that c_* is the client side. */
struct fp_orient {
	const uint8_t *csrc, *cdst;
	uint16_t cs, cd;
};

static void orient(const struct fp_pkt *pk, int client, struct fp_orient *o)
{
	bool swap;
	if (client == 0 || client == 1)
		swap = pk->dir != client;
	else
		swap = pk->sport < pk->dport; /* unknown: the higher port is the client */
	o->csrc = swap ? pk->dst : pk->src;
	o->cdst = swap ? pk->src : pk->dst;
	o->cs = swap ? pk->dport : pk->sport;
	o->cd = swap ? pk->sport : pk->dport;
}

static bool l4_match(const struct fp_matcher *m, const struct fp_pkt *pk, const struct fp_orient *o)
{
	switch (m->kind) {
	case FP_M_SRC:
		return cidr_match(m, o->csrc);
	case FP_M_DST:
		return cidr_match(m, o->cdst);
	case FP_M_PORT:
		return o->cs == m->num || o->cd == m->num;
	case FP_M_SPORT:
		return o->cs == m->num;
	case FP_M_DPORT:
		return o->cd == m->num;
	case FP_M_VLAN:
		return pk->vlan == m->num;
	default:
		return true; /* HTTP matchers are decided elsewhere */
	}
}

int fp_rules_decide_l4(const struct fp_rules *rs, const struct fp_pkt *pk, int client)
{
	struct fp_orient o;
	orient(pk, client, &o);
	for (unsigned i = 0; i < rs->nrules; i++) {
		const struct fp_rule *r = &rs->r[i];
		bool ok = true;
		if (r->needs_http && pk->proto != 6)
			continue;
		for (unsigned j = 0; j < r->nm && ok; j++)
			ok = l4_match(&r->m[j], pk, &o);
		if (!ok)
			continue;
		return r->needs_http ? FP_DECIDE_LATER : r->lane;
	}
	return FP_LANE_NONE;
}

static bool glob_match(const char *pat, size_t pn, const char *s, size_t sn, bool icase)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;
	while (si < sn) {
		if (pi < pn && pat[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pn &&
			   (pat[pi] == '?' || pat[pi] == s[si] ||
			    (icase && (pat[pi] | 0x20) == (s[si] | 0x20) && pat[pi] >= 'A'))) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pn && pat[pi] == '*')
		pi++;
	return pi == pn;
}

static bool slice_ieq(struct fp_slice a, const char *b, size_t bn)
{
	return a.n == bn && strncasecmp(a.p, b, bn) == 0;
}

/* Visit NAME=VALUE pairs separated by @p sep (';' cookies, '&' query). */
static bool find_pair(struct fp_slice s, char sep, const char *name, size_t nl,
		      struct fp_slice *val)
{
	const char *p = s.p, *end = s.p + s.n;
	while (p < end) {
		const char *e = memchr(p, sep, (size_t)(end - p));
		const char *q;
		if (!e)
			e = end;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		q = memchr(p, '=', (size_t)(e - p));
		if (q && (size_t)(q - p) == nl && !memcmp(p, name, nl)) {
			val->p = q + 1;
			val->n = (size_t)(e - q - 1);
			while (val->n && (val->p[val->n - 1] == ' ' || val->p[val->n - 1] == '\t'))
				val->n--;
			return true;
		}
		p = e + 1;
	}
	return false;
}

/* Value of the key a header/cookie/query matcher names; false when absent. */
static bool lookup_key(const struct fp_req *rq, int kind, const char *name, size_t nl,
		       struct fp_slice *val)
{
	for (unsigned i = 0; i < rq->nh; i++) {
		if (kind == FP_M_HEADER && slice_ieq(rq->hname[i], name, nl)) {
			*val = rq->hval[i];
			return true;
		}
		if (kind == FP_M_COOKIE && slice_ieq(rq->hname[i], "cookie", 6) &&
		    find_pair(rq->hval[i], ';', name, nl, val))
			return true;
	}
	if (kind == FP_M_QUERY)
		return find_pair(rq->query, '&', name, nl, val);
	return false;
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool http_match(const struct fp_matcher *m, const struct fp_req *rq)
{
	struct fp_slice v;
	switch (m->kind) {
	case FP_M_HEADER:
	case FP_M_COOKIE:
	case FP_M_QUERY:
		if (!lookup_key(rq, m->kind, m->name, m->name_len, &v))
			return false;
		return !m->value || glob_match(m->value, m->value_len, v.p, v.n, false);
	case FP_M_PATH:
		return glob_match(m->value, m->value_len, rq->path.p, rq->path.n, false);
	case FP_M_METHOD:
		return rq->method.n == m->value_len &&
		       !memcmp(rq->method.p, m->value, m->value_len);
	case FP_M_HOST:
		if (!lookup_key(rq, FP_M_HEADER, "host", 4, &v))
			return false;
		return glob_match(m->value, m->value_len, v.p, v.n, true);
	case FP_M_SAMPLE:
		if (!lookup_key(rq, m->sub, m->name, m->name_len, &v))
			return false;
		return fnv1a(v.p, v.n) % 10000 < m->permyriad;
	default:
		return true;
	}
}

int fp_rules_decide_http(const struct fp_rules *rs, const struct fp_pkt *pk,
			 const struct fp_req *rq)
{
	struct fp_orient o;
	orient(pk, pk->dir, &o);
	for (unsigned i = 0; i < rs->nrules; i++) {
		const struct fp_rule *r = &rs->r[i];
		bool ok = true;
		for (unsigned j = 0; j < r->nm && ok; j++)
			ok = r->m[j].kind >= FP_M_HEADER ? rq && http_match(&r->m[j], rq)
							 : l4_match(&r->m[j], pk, &o);
		if (ok)
			return r->lane;
	}
	return FP_LANE_NONE;
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
