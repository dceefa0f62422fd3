/* SPDX-License-Identifier: MIT */
/*
 * rules - color rules: parse "LANE=MATCH[,MATCH...]" and match sessions
 * (see rules.h; the grammar, matcher semantics and the sampling hash are
 * specified in docs/rules.md, whose examples tests/capture/test_rules.c
 * runs).
 *
 * References: RFC 9110 §5.1 (field names are case-insensitive), RFC 6265
 * §5.4 (Cookie header: "name=value" pairs separated by "; "), RFC 3986
 * §3.4 (query), RFC 4632 / RFC 4291 §2.3 (CIDR prefixes), FNV-1a (Fowler,
 * Noll, Vo) and MurmurHash3's fmix64 finalizer for consistent sampling.
 *
 * A rule set is compiled once (strings copied, addresses parsed) and then
 * only read, so it may be shared by threads. Matching never allocates.
 */
#include "capture/rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

#define RULES_LOG(lvl, ...) LOG_MSG(lvl, "rules", __VA_ARGS__)

#define RULES_MAX_TEXT	   4096 /* one rule */
#define RULES_MAX_MATCHERS 64	/* per rule */
#define RULES_MAX_LANE	   64	/* lane name length */
#define RULES_MAX_RULES	   100000
#define RULES_SAMPLE_SCALE 1000000u /* rates in millionths (0.0001 %) */

enum rules_kind {
	RK_HEADER,
	RK_COOKIE,
	RK_QUERY,
	RK_HOST,
	RK_METHOD,
	RK_PATH,
	RK_SRC,
	RK_DST,
	RK_PORT,
	RK_SPORT,
	RK_DPORT,
	RK_VLAN,
	RK_SAMPLE,
};

static const char *const rules_kind_names[] = {
    "header", "cookie", "query", "host",  "method", "path",   "src",
    "dst",    "port",	"sport", "dport", "vlan",   "sample",
};
#define RULES_KIND_COUNT (sizeof(rules_kind_names) / sizeof(rules_kind_names[0]))
#define RULES_EXPECTED                                                                             \
	"expected header, cookie, query, host, method, path, src, dst, port, sport, dport, vlan, " \
	"sample"

enum rules_op {
	OP_PRESENT, /* NAME */
	OP_EQ,	    /* =VALUE */
	OP_PREFIX,  /* ^=VALUE */
	OP_GLOB,    /* ~GLOB, or host:/path: GLOB */
};

struct rules_matcher {
	enum rules_kind kind;
	enum rules_op op;
	bool neg;
	enum rules_kind src_kind; /* sample: header, cookie or query */
	char *name;		  /* header/cookie/query name (owned) */
	size_t name_len;
	char *value; /* owned */
	size_t value_len;
	uint8_t ipv;  /* src/dst: 4 or 6 */
	uint8_t plen; /* prefix length */
	uint8_t addr[16];
	uint32_t lo, hi; /* port range, vlan */
	uint32_t rate;	 /* sample: threshold in millionths */
};

struct rules_rule {
	char *text;
	char *lane;
	struct rules_matcher *m;
	size_t n;
	bool l4;
};

struct rules {
	struct rules_rule *v;
	size_t n, cap;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static uint8_t rules_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

static bool rules_ieq(const uint8_t *a, size_t al, const char *b, size_t bl)
{
	if (al != bl)
		return false;
	for (size_t i = 0; i < al; i++)
		if (rules_lower(a[i]) != rules_lower((uint8_t)b[i]))
			return false;
	return true;
}

/* Glob with '*' (any run) and '?' (one byte); linear backtracking. */
static bool rules_glob(const char *pat, size_t pl, const uint8_t *s, size_t sl, bool icase)
{
	size_t p = 0, i = 0, star = (size_t)-1, mark = 0;
	while (i < sl) {
		if (p < pl && pat[p] == '*') {
			star = p++;
			mark = i;
		} else if (p < pl && (pat[p] == '?' ||
				      (icase ? rules_lower((uint8_t)pat[p]) == rules_lower(s[i])
					     : (uint8_t)pat[p] == s[i]))) {
			p++;
			i++;
		} else if (star != (size_t)-1) {
			p = star + 1;
			i = ++mark;
		} else {
			return false;
		}
	}
	while (p < pl && pat[p] == '*')
		p++;
	return p == pl;
}

static bool rules_value_ok(const struct rules_matcher *m, const uint8_t *v, size_t vl, bool icase)
{
	switch (m->op) {
	case OP_PRESENT:
		return true;
	case OP_EQ:
		return icase ? rules_ieq(v, vl, m->value, m->value_len)
			     : (vl == m->value_len && memcmp(v, m->value, vl) == 0);
	case OP_PREFIX:
		return vl >= m->value_len &&
		       (icase ? rules_ieq(v, m->value_len, m->value, m->value_len)
			      : memcmp(v, m->value, m->value_len) == 0);
	case OP_GLOB:
		return rules_glob(m->value, m->value_len, v, vl, icase);
	}
	return false;
}

static void rules_trim(const uint8_t **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* ------------------------------------------------------------------ */
/* Extracting values from a session                                    */
/* ------------------------------------------------------------------ */

/* Calls @p fn for each value (header, cookie or query parameter named
 * @p name) until it returns true. */
typedef bool (*rules_val_fn)(const struct rules_matcher *m, const uint8_t *v, size_t vl);

static bool rules_each_header(const struct store_message *req, const char *name, size_t nl,
			      const struct rules_matcher *m, rules_val_fn fn)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_header *h = &req->headers[i];
		if (!rules_ieq(h->name.ptr, h->name.len, name, nl))
			continue;
		const uint8_t *v = h->value.ptr;
		size_t vl = h->value.len;
		rules_trim(&v, &vl);
		if (fn(m, v, vl))
			return true;
	}
	return false;
}

static bool rules_each_cookie(const struct store_message *req, const struct rules_matcher *m,
			      rules_val_fn fn)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_header *h = &req->headers[i];
		if (!rules_ieq(h->name.ptr, h->name.len, "cookie", 6))
			continue;
		const uint8_t *p = h->value.ptr, *end = p + h->value.len;
		while (p < end) {
			const uint8_t *semi = memchr(p, ';', (size_t)(end - p));
			const uint8_t *pe = semi ? semi : end;
			const uint8_t *eq = memchr(p, '=', (size_t)(pe - p));
			const uint8_t *n = p;
			size_t nl = (size_t)((eq ? eq : pe) - p);
			rules_trim(&n, &nl);
			if (eq && nl == m->name_len && memcmp(n, m->name, nl) == 0) {
				const uint8_t *v = eq + 1;
				size_t vl = (size_t)(pe - v);
				rules_trim(&v, &vl);
				if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
					v++;
					vl -= 2;
				}
				if (fn(m, v, vl))
					return true;
			}
			p = semi ? semi + 1 : end;
		}
	}
	return false;
}

static bool rules_each_query(const struct store_message *req, const struct rules_matcher *m,
			     rules_val_fn fn)
{
	const uint8_t *t = req->target.ptr, *end = t + req->target.len;
	const uint8_t *q = t ? memchr(t, '?', req->target.len) : NULL;
	if (!q)
		return false;
	const uint8_t *hash = memchr(q, '#', (size_t)(end - q));
	if (hash)
		end = hash;
	const uint8_t *p = q + 1;
	while (p <= end) {
		const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
		const uint8_t *pe = amp ? amp : end;
		const uint8_t *eq = memchr(p, '=', (size_t)(pe - p));
		size_t nl = (size_t)((eq ? eq : pe) - p);
		if (nl == m->name_len && memcmp(p, m->name, nl) == 0) {
			const uint8_t *v = eq ? eq + 1 : pe;
			if (fn(m, v, (size_t)(pe - v)))
				return true;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return false;
}

/* Host without port: the Host header (HTTP/2: ":authority"), else the
 * authority of an absolute target. */
static bool rules_host(const struct store_message *req, const uint8_t **h, size_t *hl)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_slice *n = &req->headers[i].name;
		if (rules_ieq(n->ptr, n->len, "host", 4) ||
		    rules_ieq(n->ptr, n->len, ":authority", 10)) {
			*h = req->headers[i].value.ptr;
			*hl = req->headers[i].value.len;
			rules_trim(h, hl);
			return true;
		}
	}
	const uint8_t *t = req->target.ptr;
	size_t tl = req->target.len;
	const uint8_t *sep = tl >= 3 ? memmem(t, tl, "://", 3) : NULL;
	if (!sep)
		return false;
	const uint8_t *a = sep + 3, *end = t + tl;
	const uint8_t *slash = memchr(a, '/', (size_t)(end - a));
	*h = a;
	*hl = (size_t)((slash ? slash : end) - a);
	return true;
}

static void rules_strip_port(const uint8_t *h, size_t *hl)
{
	if (*hl && h[0] == '[') { /* [v6]:port */
		const uint8_t *rb = memchr(h, ']', *hl);
		if (rb)
			*hl = (size_t)(rb - h) + 1;
		return;
	}
	const uint8_t *colon = memchr(h, ':', *hl);
	if (colon)
		*hl = (size_t)(colon - h);
}

/* Path of the request target: origin-form up to '?', absolute-form after the authority. */
static void rules_path(const struct store_message *req, const uint8_t **p, size_t *pl)
{
	if (!req->target.len || !req->target.ptr) {
		*p = (const uint8_t *)"";
		*pl = 0;
		return;
	}
	const uint8_t *t = req->target.ptr, *end = t + req->target.len;
	const uint8_t *sep =
	    req->target.len >= 3 && t[0] != '/' ? memmem(t, req->target.len, "://", 3) : NULL;
	if (sep) {
		const uint8_t *slash = memchr(sep + 3, '/', (size_t)(end - sep - 3));
		t = slash ? slash : end;
	}
	const uint8_t *q = memchr(t, '?', (size_t)(end - t));
	*p = t;
	*pl = (size_t)((q ? q : end) - t);
}

/* FNV-1a 64 then MurmurHash3 fmix64 (docs/rules.md, "Sampling"). */
static uint64_t rules_hash(const uint8_t *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= v[i];
		h *= 0x100000001b3ull;
	}
	return hash_fmix64(h);
}

static bool rules_cb_value(const struct rules_matcher *m, const uint8_t *v, size_t vl)
{
	return rules_value_ok(m, v, vl, false);
}

static bool rules_cb_sample(const struct rules_matcher *m, const uint8_t *v, size_t vl)
{
	return rules_hash(v, vl) % RULES_SAMPLE_SCALE < m->rate;
}

static bool rules_addr_in(const struct rules_matcher *m, uint8_t ipv,
			  const struct store_endpoint *e)
{
	if (ipv != m->ipv)
		return false;
	size_t full = m->plen / 8;
	if (memcmp(e->addr, m->addr, full) != 0)
		return false;
	unsigned rest = m->plen % 8;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (e->addr[full] & mask) == (m->addr[full] & mask);
}

static bool rules_port_in(const struct rules_matcher *m, uint16_t port)
{
	return port >= m->lo && port <= m->hi;
}

static bool rules_matcher_ok(const struct rules_matcher *m, const struct store_session *s)
{
	const struct store_message *req = &s->req;
	switch (m->kind) {
	case RK_SRC:
		return rules_addr_in(m, s->ip_version, &s->src);
	case RK_DST:
		return rules_addr_in(m, s->ip_version, &s->dst);
	case RK_PORT:
		return rules_port_in(m, s->src.port) || rules_port_in(m, s->dst.port);
	case RK_SPORT:
		return rules_port_in(m, s->src.port);
	case RK_DPORT:
		return rules_port_in(m, s->dst.port);
	case RK_VLAN:
		return s->vlan >= m->lo && s->vlan <= m->hi;
	default:
		break;
	}
	if (!req->present)
		return false;
	switch (m->kind) {
	case RK_HEADER:
		return rules_each_header(req, m->name, m->name_len, m, rules_cb_value);
	case RK_COOKIE:
		return rules_each_cookie(req, m, rules_cb_value);
	case RK_QUERY:
		return rules_each_query(req, m, rules_cb_value);
	case RK_HOST: {
		const uint8_t *h;
		size_t hl;
		if (!rules_host(req, &h, &hl))
			return false;
		if (!memchr(m->value, ':', m->value_len))
			rules_strip_port(h, &hl);
		return rules_value_ok(m, h, hl, true);
	}
	case RK_METHOD:
		return rules_ieq(req->method.ptr, req->method.len, m->value, m->value_len);
	case RK_PATH: {
		const uint8_t *p;
		size_t pl;
		rules_path(req, &p, &pl);
		return rules_value_ok(m, p, pl, false);
	}
	case RK_SAMPLE:
		if (m->src_kind == RK_HEADER)
			return rules_each_header(req, m->name, m->name_len, m, rules_cb_sample);
		if (m->src_kind == RK_COOKIE)
			return rules_each_cookie(req, m, rules_cb_sample);
		return rules_each_query(req, m, rules_cb_sample);
	default:
		return false;
	}
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

struct rules_perr {
	char *err;
	size_t errlen;
	const char *text;
};

__attribute__((format(printf, 2, 3))) static int rules_fail(struct rules_perr *pe, const char *fmt,
							    ...)
{
	if (pe->err && pe->errlen) {
		int n = snprintf(pe->err, pe->errlen, "rule '%.80s%s': ", pe->text,
				 strlen(pe->text) > 80 ? "..." : "");
		if (n >= 0 && (size_t)n < pe->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(pe->err + n, pe->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

static int rules_parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	if (n == 0 || n > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* "N" or "N-M" */
static int rules_parse_range(const char *s, size_t n, uint32_t max, uint32_t *lo, uint32_t *hi)
{
	const char *dash = memchr(s, '-', n);
	if (!dash) {
		if (rules_parse_u32(s, n, max, lo))
			return -1;
		*hi = *lo;
		return 0;
	}
	if (rules_parse_u32(s, (size_t)(dash - s), max, lo) ||
	    rules_parse_u32(dash + 1, n - (size_t)(dash - s) - 1, max, hi) || *hi < *lo)
		return -1;
	return 0;
}

static int rules_parse_cidr(struct rules_matcher *m, const char *s, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *slash = strchr(buf, '/');
	uint32_t plen = 0;
	if (slash) {
		*slash = '\0';
		if (rules_parse_u32(slash + 1, strlen(slash + 1), 128, &plen))
			return -1;
	}
	memset(m->addr, 0, sizeof(m->addr));
	if (inet_pton(AF_INET, buf, m->addr) == 1) {
		m->ipv = 4;
		if (!slash)
			plen = 32;
		if (plen > 32)
			return -1;
	} else if (inet_pton(AF_INET6, buf, m->addr) == 1) {
		m->ipv = 6;
		if (!slash)
			plen = 128;
	} else {
		return -1;
	}
	m->plen = (uint8_t)plen;
	return 0;
}

/* "5", "0.5", "12.25" (up to 4 decimals) with a trailing '%': millionths. */
static int rules_parse_rate(const char *s, size_t n, uint32_t *out)
{
	if (n < 2 || s[n - 1] != '%')
		return -1;
	n--;
	uint64_t v = 0;
	size_t i = 0, digits = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > 100)
			return -1;
	}
	if (!digits)
		return -1;
	unsigned dec = 0;
	if (i < n && s[i] == '.') {
		i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (++dec > 4)
				return -1;
			v = v * 10 + (uint64_t)(s[i] - '0');
		}
		if (!dec)
			return -1;
	}
	if (i != n)
		return -1;
	while (dec++ < 4)
		v *= 10;
	if (v > 1000000)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static bool rules_token_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|", c);
}

static int rules_set_str(char **dst, size_t *dlen, const char *s, size_t n)
{
	*dst = mem_strndup(s, n);
	if (!*dst)
		return -ENOMEM;
	*dlen = n;
	return 0;
}

/* NAME[=VALUE | ^=PREFIX | ~GLOB] for header/cookie/query. */
static int rules_parse_named(struct rules_perr *pe, struct rules_matcher *m, const char *kind,
			     const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] != '=' && s[i] != '~')
		i++;
	size_t nl = i;
	if (i < n && s[i] == '=' && i > 0 && s[i - 1] == '^') {
		m->op = OP_PREFIX;
		nl = i - 1;
	} else if (i < n) {
		m->op = s[i] == '=' ? OP_EQ : OP_GLOB;
	} else {
		m->op = OP_PRESENT;
	}
	if (nl == 0)
		return rules_fail(pe, "%s matcher needs a name, e.g. '%s:x-lane=blue'", kind, kind);
	for (size_t k = 0; k < nl; k++)
		if (!rules_token_char((uint8_t)s[k]) || s[k] == '^')
			return rules_fail(pe, "bad character '%c' in %s name '%.*s'", s[k], kind,
					  (int)nl, s);
	if (rules_set_str(&m->name, &m->name_len, s, nl))
		return -ENOMEM;
	if (m->op == OP_PRESENT)
		return 0;
	size_t vs = i + 1;
	return rules_set_str(&m->value, &m->value_len, s + vs, n - vs) ? -ENOMEM : 0;
}

static int rules_parse_matcher(struct rules_perr *pe, struct rules_matcher *m, const char *s,
			       size_t n)
{
	memset(m, 0, sizeof(*m));
	if (n && s[0] == '!') {
		m->neg = true;
		s++;
		n--;
	}
	size_t k = 0;
	while (k < n && s[k] >= 'a' && s[k] <= 'z')
		k++;
	if (k == 0)
		return rules_fail(pe, "empty or malformed matcher '%.*s' (%s)", (int)n, s,
				  RULES_EXPECTED);
	size_t kind = 0;
	while (kind < RULES_KIND_COUNT &&
	       !(strlen(rules_kind_names[kind]) == k && memcmp(rules_kind_names[kind], s, k) == 0))
		kind++;
	if (kind == RULES_KIND_COUNT)
		return rules_fail(pe, "unknown matcher '%.*s' (%s)", (int)k, s, RULES_EXPECTED);
	m->kind = (enum rules_kind)kind;
	const char *kn = rules_kind_names[kind];
	const char *rest = s + k;
	size_t rl = n - k;
	/* Operator right after the kind. */
	enum rules_op op;
	if (rl >= 1 && rest[0] == ':') {
		op = OP_GLOB;
		rest++, rl--;
	} else if (rl >= 2 && rest[0] == '^' && rest[1] == '=' &&
		   (m->kind == RK_HOST || m->kind == RK_PATH)) {
		op = OP_PREFIX;
		rest += 2, rl -= 2;
	} else if (rl >= 1 && rest[0] == '=' &&
		   (m->kind == RK_HOST || m->kind == RK_PATH || m->kind == RK_METHOD)) {
		op = OP_EQ;
		rest++, rl--;
	} else {
		return rules_fail(pe, "expected ':' after '%s' in '%.*s'", kn, (int)n, s);
	}
	switch (m->kind) {
	case RK_HEADER:
	case RK_COOKIE:
	case RK_QUERY:
		return rules_parse_named(pe, m, kn, rest, rl);
	case RK_HOST:
	case RK_PATH:
		if (rl == 0)
			return rules_fail(pe, "%s matcher needs a value", kn);
		m->op = op;
		return rules_set_str(&m->value, &m->value_len, rest, rl) ? -ENOMEM : 0;
	case RK_METHOD:
		if (rl == 0)
			return rules_fail(pe, "method matcher needs a method, e.g. 'method:GET'");
		for (size_t i = 0; i < rl; i++)
			if (!rules_token_char((uint8_t)rest[i]))
				return rules_fail(pe, "bad method '%.*s'", (int)rl, rest);
		m->op = OP_EQ;
		return rules_set_str(&m->value, &m->value_len, rest, rl) ? -ENOMEM : 0;
	case RK_SRC:
	case RK_DST:
		if (rules_parse_cidr(m, rest, rl))
			return rules_fail(
			    pe, "bad address '%.*s' (expected e.g. 10.0.0.0/8 or 2001:db8::/32)",
			    (int)rl, rest);
		return 0;
	case RK_PORT:
	case RK_SPORT:
	case RK_DPORT:
		if (rules_parse_range(rest, rl, 65535, &m->lo, &m->hi))
			return rules_fail(pe, "bad port '%.*s' (expected 0-65535 or a range N-M)",
					  (int)rl, rest);
		return 0;
	case RK_VLAN:
		if (rules_parse_range(rest, rl, 4095, &m->lo, &m->hi))
			return rules_fail(pe, "bad vlan '%.*s' (expected 0-4095 or a range N-M)",
					  (int)rl, rest);
		return 0;
	case RK_SAMPLE: {
		/* SOURCE:NAME:RATE% */
		const char *c1 = memchr(rest, ':', rl);
		const char *c2 = NULL;
		for (size_t i = rl; i > 0; i--)
			if (rest[i - 1] == ':') {
				c2 = rest + i - 1;
				break;
			}
		if (!c1 || c2 == c1)
			return rules_fail(pe, "sample needs SOURCE:NAME:RATE%%, e.g. "
					      "'sample:header:x-user-id:5%%'");
		size_t sl = (size_t)(c1 - rest);
		if (sl == 6 && memcmp(rest, "header", 6) == 0)
			m->src_kind = RK_HEADER;
		else if (sl == 6 && memcmp(rest, "cookie", 6) == 0)
			m->src_kind = RK_COOKIE;
		else if (sl == 5 && memcmp(rest, "query", 5) == 0)
			m->src_kind = RK_QUERY;
		else
			return rules_fail(
			    pe, "unknown sample source '%.*s' (expected header, cookie, query)",
			    (int)sl, rest);
		const char *nm = c1 + 1;
		size_t nl = (size_t)(c2 - nm);
		for (size_t i = 0; i < nl; i++)
			if (!rules_token_char((uint8_t)nm[i]))
				return rules_fail(pe, "bad character '%c' in sample key name",
						  nm[i]);
		if (nl == 0)
			return rules_fail(pe, "sample needs a key name");
		const char *rt = c2 + 1;
		size_t rtl = rl - (size_t)(rt - rest);
		if (rules_parse_rate(rt, rtl, &m->rate))
			return rules_fail(pe,
					  "bad sample rate '%.*s' (expected a percentage 0%%-100%% "
					  "with up to 4 decimals, e.g. 5%% or 0.5%%)",
					  (int)rtl, rt);
		return rules_set_str(&m->name, &m->name_len, nm, nl) ? -ENOMEM : 0;
	}
	}
	return -EINVAL;
}

static void rules_rule_release(struct rules_rule *r)
{
	for (size_t i = 0; i < r->n; i++) {
		mem_free(r->m[i].name);
		mem_free(r->m[i].value);
	}
	mem_free(r->m);
	mem_free(r->text);
	mem_free(r->lane);
	memset(r, 0, sizeof(*r));
}

static bool rules_kind_l4(enum rules_kind k)
{
	return k == RK_SRC || k == RK_DST || k == RK_PORT || k == RK_SPORT || k == RK_DPORT ||
	       k == RK_VLAN;
}

/* Split on unescaped ',', resolve "\," and "\\", trim blanks, parse each matcher. */
static int rules_parse_list(struct rules_perr *pe, struct rules_rule *r, const char *s)
{
	char piece[RULES_MAX_TEXT];
	size_t len = 0;
	const char *p = s;
	for (;;) {
		char c = *p;
		if (c == '\\' && (p[1] == ',' || p[1] == '\\')) {
			piece[len++] = p[1];
			p += 2;
			continue;
		}
		if (c != ',' && c != '\0') {
			piece[len++] = c;
			p++;
			continue;
		}
		const uint8_t *t = (const uint8_t *)piece;
		size_t tl = len;
		rules_trim(&t, &tl);
		if (tl == 0)
			return rules_fail(pe, "empty matcher (%s)", RULES_EXPECTED);
		if (r->n == RULES_MAX_MATCHERS)
			return rules_fail(pe, "more than %d matchers", RULES_MAX_MATCHERS);
		int rc = rules_parse_matcher(pe, &r->m[r->n], (const char *)t, tl);
		if (rc) {
			/* the failed matcher may hold a name */
			mem_free(r->m[r->n].name);
			mem_free(r->m[r->n].value);
			return rc;
		}
		if (!rules_kind_l4(r->m[r->n].kind))
			r->l4 = false;
		r->n++;
		len = 0;
		if (c == '\0')
			return 0;
		p++;
	}
}

struct rules *rules_create(void)
{
	return mem_calloc(1, sizeof(struct rules));
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rules_rule_release(&r->v[i]);
	mem_free(r->v);
	mem_free(r);
}

int rules_add(struct rules *rs, const char *text, char *err, size_t errlen)
{
	struct rules_perr pe = {err, errlen, text};
	if (err && errlen)
		err[0] = '\0';
	size_t tl = strlen(text);
	if (tl >= RULES_MAX_TEXT)
		return rules_fail(&pe, "longer than %d bytes", RULES_MAX_TEXT - 1);
	if (rs->n >= RULES_MAX_RULES)
		return rules_fail(&pe, "more than %d rules", RULES_MAX_RULES);
	const uint8_t *t = (const uint8_t *)text;
	rules_trim(&t, &tl);
	const char *eq = memchr(t, '=', tl);
	if (!eq)
		return rules_fail(&pe, "expected LANE=MATCH[,MATCH...]");
	size_t ll = (size_t)(eq - (const char *)t);
	if (ll == 0)
		return rules_fail(&pe, "empty lane name before '='");
	if (ll > RULES_MAX_LANE)
		return rules_fail(&pe, "lane name longer than %d characters", RULES_MAX_LANE);
	for (size_t i = 0; i < ll; i++) {
		uint8_t c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return rules_fail(&pe,
					  "bad character '%c' in lane name '%.*s' (allowed: "
					  "letters, digits, '-', '_', '.')",
					  c, (int)ll, (const char *)t);
	}
	if (rs->n == rs->cap) {
		size_t ncap = rs->cap ? rs->cap * 2 : 8;
		struct rules_rule *nv = mem_realloc(rs->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		rs->v = nv;
		rs->cap = ncap;
	}
	struct rules_rule r;
	memset(&r, 0, sizeof(r));
	r.l4 = true;
	r.text = mem_strndup((const char *)t, tl);
	r.lane = mem_strndup((const char *)t, ll);
	r.m = mem_calloc(RULES_MAX_MATCHERS, sizeof(*r.m));
	if (!r.text || !r.lane || !r.m) {
		rules_rule_release(&r);
		return -ENOMEM;
	}
	/* text is NUL-terminated: parse the matchers after '=' */
	int rc = rules_parse_list(&pe, &r, r.text + ll + 1);
	if (rc) {
		rules_rule_release(&r);
		return rc;
	}
	rs->v[rs->n++] = r;
	return 0;
}

int rules_load_file(struct rules *r, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open rules file: %s", path, strerror(e));
		return -e;
	}
	char line[RULES_MAX_TEXT + 2];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t n = strlen(line);
		if (n == sizeof(line) - 1 && line[n - 1] != '\n' && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				 RULES_MAX_TEXT - 1);
			rc = -EINVAL;
			break;
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		const char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		char msg[512];
		rc = rules_add(r, p, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
			break;
		}
	}
	if (!rc && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
	}
	fclose(f);
	return rc;
}

size_t rules_count(const struct rules *r)
{
	return r->n;
}

const char *rules_text(const struct rules *r, size_t i)
{
	return i < r->n ? r->v[i].text : NULL;
}

const char **rules_text_array(const struct rules *r, size_t *n)
{
	*n = r ? r->n : 0;
	const char **v = mem_calloc(*n + 1, sizeof(*v));
	for (size_t i = 0; v && i < *n; i++)
		v[i] = r->v[i].text;
	return v;
}

const char *rules_match(const struct rules *r, const struct store_session *s)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct rules_rule *rr = &r->v[i];
		bool ok = true;
		for (size_t k = 0; k < rr->n && ok; k++) {
			const struct rules_matcher *m = &rr->m[k];
			if (!s->req.present && !rules_kind_l4(m->kind))
				ok = false; /* HTTP matchers need a request, negated or not */
			else
				ok = rules_matcher_ok(m, s) != m->neg;
		}
		if (ok)
			return rr->lane;
	}
	return NULL;
}

bool rules_l4_only(const struct rules *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (!r->v[i].l4)
			return false;
	return true;
}

uint64_t rules_sample_hash(const uint8_t *v, size_t n)
{
	return rules_hash(v, n);
}
