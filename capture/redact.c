/* SPDX-License-Identifier: MIT */
/*
 * redact - record-time redaction of header, cookie, query and JSON values
 * (see redact.h; manual: docs/capture.md "Redaction").
 *
 * The session handed in is borrowed; every changed part (header arrays,
 * header values, the request-target, bodies) is built in memory kept on a
 * per-call list and freed at the next call, so the writer copies a
 * consistent session. JSON is handled by a validating recursive scanner
 * with a fixed depth bound (RFC 8259 grammar; no allocation per value):
 * the body is re-emitted compact with matched values masked or members
 * dropped, and only used when the whole body parsed.
 *
 * References: RFC 9110 §5 (fields), RFC 6265 §4 (Cookie, Set-Cookie),
 * RFC 3986 §3.4 (query), RFC 8259 (JSON).
 */
#include "capture/redact.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"

#define REDACT_LOG(lvl, ...) LOG_MSG(lvl, "redact", __VA_ARGS__)
#define REDACT_MAX_RULES     256
#define REDACT_JSON_DEPTH    64
#define REDACT_QUERY_MARKER  "%5Bredacted%5D"

enum redact_kind { RK_HEADER, RK_COOKIE, RK_QUERY, RK_JSON, RK_FORM, RK_URL, RK_COUNT };

enum { JC_KEY, JC_INDEX, JC_ANY };

struct jcomp {
	int kind;
	const char *key; /* into rule.name */
	size_t klen;
	uint64_t idx;
};

struct rrule {
	enum redact_kind kind;
	bool drop;
	char *name; /* header/cookie/query name, or the JSON path */
	size_t nlen;
	char *text; /* canonical */
	struct jcomp *comps;
	size_t ncomp;
	bool anywhere; /* "$..a.b": the path ends with .a.b at any depth */
};

struct redact {
	struct rrule rules[REDACT_MAX_RULES];
	size_t n;
	size_t n_kind[RK_COUNT];
	void **pieces; /* scratch of the last call */
	size_t n_pieces, cap_pieces;
	struct redact_stats st;
};

const struct ctr_desc redact_ctr_descs[] = {
    CTR_DESC(struct redact_stats, sessions, "sessions changed by a redaction rule"),
    CTR_DESC(struct redact_stats, masked, "values replaced by the redaction marker"),
    CTR_DESC(struct redact_stats, dropped, "headers, cookies, parameters or JSON members removed"),
    CTR_DESC(struct redact_stats, json_bodies, "JSON bodies scanned for redaction"),
    CTR_DESC(struct redact_stats, json_skipped,
	     "JSON bodies left unchanged: not valid JSON, content-encoded or cut by --max-body"),
    CTR_DESC(struct redact_stats, errors, "sessions not written: redaction ran out of memory"),
};
const size_t redact_ctr_count = sizeof(redact_ctr_descs) / sizeof(redact_ctr_descs[0]);

static const char *const kind_names[] = {"header", "cookie", "query", "json", "form", "url"};

/* ---- rules ---- */

struct redact *redact_create(void)
{
	return mem_calloc(1, sizeof(struct redact));
}

static void free_pieces(struct redact *r)
{
	for (size_t i = 0; i < r->n_pieces; i++)
		mem_free(r->pieces[i]);
	r->n_pieces = 0;
}

void redact_free(struct redact *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		mem_free(r->rules[i].name);
		mem_free(r->rules[i].text);
		mem_free(r->rules[i].comps);
	}
	free_pieces(r);
	mem_free(r->pieces);
	mem_free(r);
}

/* "$.a.b[*].c[0]" -> components; 0 or -EINVAL. */
static int parse_path(struct rrule *ru)
{
	const char *s = ru->name, *e = ru->name + ru->nlen;
	if (s == e || *s != '$')
		return -EINVAL;
	size_t max = 0;
	for (const char *q = s; q < e; q++)
		max += *q == '.' || *q == '[';
	if (!max || max > REDACT_JSON_DEPTH)
		return -EINVAL;
	ru->comps = mem_calloc(max, sizeof(*ru->comps));
	if (!ru->comps)
		return -ENOMEM;
	s++;
	/* "$..name": recursive descent, at the start only (a suffix match:
	 * linear in the path, whatever the body) */
	if (e - s >= 2 && s[0] == '.' && s[1] == '.') {
		ru->anywhere = true;
		s++;
	}
	while (s < e) {
		struct jcomp *c = &ru->comps[ru->ncomp++];
		if (*s == '.') {
			const char *k = ++s;
			while (s < e && *s != '.' && *s != '[')
				s++;
			if (s == k)
				return -EINVAL; /* ".." inside the path is not supported */
			c->kind = JC_KEY;
			c->key = k;
			c->klen = (size_t)(s - k);
		} else if (*s == '[') {
			s++;
			if (s < e && *s == '*') {
				c->kind = JC_ANY;
				s++;
			} else {
				const char *d = s;
				uint64_t v = 0;
				while (s < e && *s >= '0' && *s <= '9' && v < 100000000)
					v = v * 10 + (uint64_t)(*s++ - '0');
				if (s == d)
					return -EINVAL;
				c->kind = JC_INDEX;
				c->idx = v;
			}
			if (s == e || *s != ']')
				return -EINVAL;
			s++;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

int redact_add(struct redact *r, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	int kind = -1;
	for (int k = 0; colon && k < RK_COUNT; k++)
		if ((size_t)(colon - spec) == strlen(kind_names[k]) &&
		    !strncmp(spec, kind_names[k], (size_t)(colon - spec)))
			kind = k;
	if (kind < 0) {
		snprintf(err, errlen,
			 "'%s': give KIND:NAME[:mask|drop] with KIND header, cookie, "
			 "query, form, json or url",
			 spec);
		return -EINVAL;
	}
	const char *name = colon + 1;
	size_t nlen = strlen(name);
	bool drop = false;
	const char *last = strrchr(name, ':');
	if (last && (!strcmp(last, ":mask") || !strcmp(last, ":drop"))) {
		drop = !strcmp(last, ":drop");
		nlen = (size_t)(last - name);
	}
	if (!nlen || memchr(name, ':', nlen)) {
		snprintf(err, errlen, "'%s': empty name or unknown action (use mask or drop)",
			 spec);
		return -EINVAL;
	}
	if (r->n == REDACT_MAX_RULES) {
		snprintf(err, errlen, "too many redaction rules (max %d)", REDACT_MAX_RULES);
		return -EINVAL;
	}
	struct rrule *ru = &r->rules[r->n];
	memset(ru, 0, sizeof(*ru));
	ru->kind = (enum redact_kind)kind;
	ru->drop = drop;
	ru->name = mem_strndup(name, nlen);
	ru->nlen = nlen;
	int rc = ru->name ? 0 : -ENOMEM;
	/* names match in any case: keep the canonical text lower case */
	if (!rc && kind != RK_JSON)
		for (size_t i = 0; i < nlen; i++)
			if (ru->name[i] >= 'A' && ru->name[i] <= 'Z')
				ru->name[i] = (char)(ru->name[i] - 'A' + 'a');
	if (!rc && kind == RK_URL && strcmp(ru->name, "userinfo")) {
		snprintf(err, errlen, "'%s': the url kind knows one name, userinfo (user:pass@)",
			 spec);
		rc = -EINVAL;
	}
	if (!rc && kind == RK_JSON) {
		rc = parse_path(ru);
		if (rc == -EINVAL)
			snprintf(err, errlen,
				 "'%s': bad JSON path (use $.name, $.a.b, $.items[*].x, $.list[0], "
				 "or $..name for a key at any depth)",
				 spec);
	}
	if (!rc) {
		struct dbuf t;
		dbuf_init(&t, 4096);
		if (dbuf_printf(&t, "%s:%s:%s", kind_names[kind], ru->name,
				drop ? "drop" : "mask") == 0)
			ru->text = (char *)dbuf_detach(&t, NULL);
		dbuf_release(&t);
		if (!ru->text)
			rc = -ENOMEM;
	}
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		mem_free(ru->name);
		mem_free(ru->comps);
		mem_free(ru->text);
		return rc;
	}
	r->n_kind[kind]++;
	r->n++;
	return 0;
}

int redact_add_defaults(struct redact *r)
{
	static const char *const headers[] = {
	    "authorization", "proxy-authorization", "cookie",
	    "set-cookie",    "x-api-key",	    "x-auth-token",
	};
	/* secret names, as JSON keys at any depth, form fields and query parameters */
	static const char *const names[] = {
	    "password", "passwd", "pass",	   "token",   "access_token", "refresh_token",
	    "id_token", "secret", "client_secret", "api_key", "apikey",
	};
	char err[128], spec[64];
	int rc = 0;
	for (size_t i = 0; !rc && i < sizeof(headers) / sizeof(headers[0]); i++) {
		snprintf(spec, sizeof(spec), "header:%s", headers[i]);
		rc = redact_add(r, spec, err, sizeof(err));
	}
	static const char *const kinds[] = {"json:$..", "form:", "query:"};
	for (size_t k = 0; !rc && k < 3; k++)
		for (size_t i = 0; !rc && i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(spec, sizeof(spec), "%s%s", kinds[k], names[i]);
			rc = redact_add(r, spec, err, sizeof(err));
		}
	if (!rc)
		rc = redact_add(r, "url:userinfo", err, sizeof(err));
	if (rc < 0)
		REDACT_LOG(LOG_ERROR, "default rule %s: %s", spec, err);
	return rc;
}

size_t redact_count(const struct redact *r)
{
	return r->n;
}

const char *redact_text(const struct redact *r, size_t i)
{
	return i < r->n ? r->rules[i].text : NULL;
}

const char **redact_text_array(const struct redact *r, size_t *n)
{
	*n = r ? r->n : 0;
	const char **v = mem_calloc(*n + 1, sizeof(*v));
	for (size_t i = 0; v && i < *n; i++)
		v[i] = r->rules[i].text;
	return v;
}

const struct redact_stats *redact_get_stats(const struct redact *r)
{
	return &r->st;
}

/* ---- scratch ---- */

static void *keep(struct redact *r, void *p)
{
	if (!p)
		return NULL;
	if (r->n_pieces == r->cap_pieces) {
		size_t nc = r->cap_pieces ? r->cap_pieces * 2 : 16;
		void **np = mem_realloc(r->pieces, nc * sizeof(*np));
		if (!np) {
			mem_free(p);
			return NULL;
		}
		r->pieces = np;
		r->cap_pieces = nc;
	}
	r->pieces[r->n_pieces++] = p;
	return p;
}

/* Moves @p b's bytes into the scratch list; NULL on failure. */
static const uint8_t *keep_dbuf(struct redact *r, struct dbuf *b, size_t *len)
{
	if (!b->data && dbuf_reserve(b, 1) < 0)
		return NULL;
	uint8_t *d = dbuf_detach(b, len);
	return keep(r, d);
}

/* Keep the bytes of @p b (see keep_dbuf) and point @p dst at them. */
static int keep_into(struct redact *r, struct dbuf *b, struct store_slice *dst)
{
	size_t len;
	const uint8_t *d = keep_dbuf(r, b, &len);
	if (!d)
		return -ENOMEM;
	dst->ptr = d;
	dst->len = len;
	return 0;
}

static bool slice_ieq(struct store_slice s, const char *c, size_t n)
{
	return s.len == n && !strncasecmp((const char *)s.ptr, c, n);
}

/* A header name without the spaces and tabs around it ("Authorization :"
 * is accepted by lenient parsers and must not escape a rule). */
static struct store_slice trim(struct store_slice s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
		s.ptr++, s.len--;
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

static bool name_is(struct store_slice name, const char *c, size_t n)
{
	return slice_ieq(trim(name), c, n);
}

static bool slice_icontains(struct store_slice s, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= s.len; i++)
		if (!strncasecmp((const char *)s.ptr + i, needle, n))
			return true;
	return false;
}

/* ---- cookies and query ---- */

static const struct rrule *find_rule(const struct redact *r, enum redact_kind k, const uint8_t *n,
				     size_t len)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct rrule *ru = &r->rules[i];
		if (ru->kind == k && ru->nlen == len &&
		    !strncasecmp(ru->name, (const char *)n, len))
			return ru;
	}
	return NULL;
}

struct tally {
	uint64_t masked, dropped;
};

/*
 * Rewrites a list of NAME=VALUE items split by @p sep (cookies: ';',
 * query: '&'). Returns 1 when changed (@p out filled), 0 when not, <0 error.
 */
static int rewrite_list(const struct redact *r, enum redact_kind k, const uint8_t *p, size_t n,
			char sep, const char *join, const char *marker, struct dbuf *out,
			struct tally *t)
{
	size_t i = 0;
	bool changed = false, first = true;
	int rc = 0;
	while (i <= n && !rc) {
		size_t j = i;
		while (j < n && p[j] != sep)
			j++;
		size_t a = i, b = j;
		while (k == RK_COOKIE && a < b && (p[a] == ' ' || p[a] == '\t'))
			a++;
		size_t eq = a;
		while (eq < b && p[eq] != '=')
			eq++;
		size_t ne = eq;
		while (k == RK_COOKIE && ne > a && (p[ne - 1] == ' ' || p[ne - 1] == '\t'))
			ne--;
		const struct rrule *ru = a < b ? find_rule(r, k, p + a, ne - a) : NULL;
		if (ru && ru->drop) {
			t->dropped++;
			changed = true;
		} else if (a < b) {
			if (!first)
				rc |= dbuf_puts(out, join);
			first = false;
			if (ru) {
				rc |= dbuf_append(out, p + a, ne - a);
				rc |= dbuf_putc(out, '=');
				rc |= dbuf_puts(out, marker);
				t->masked++;
				changed = true;
			} else {
				rc |= dbuf_append(out, p + a, b - a);
			}
		}
		i = j + 1;
	}
	return rc ? -ENOMEM : changed;
}

/* ---- JSON ---- */

struct jframe {
	bool is_key;
	const uint8_t *key;
	size_t klen;
	uint64_t idx;
};

struct jscan {
	const struct redact *r;
	const uint8_t *p, *end;
	struct dbuf *out;
	struct jframe st[REDACT_JSON_DEPTH];
	int depth;
	int err; /* dbuf failure */
	struct tally t;
};

static void js_ws(struct jscan *js)
{
	while (js->p < js->end &&
	       (*js->p == ' ' || *js->p == '\t' || *js->p == '\n' || *js->p == '\r'))
		js->p++;
}

static void js_emit(struct jscan *js, bool emit, const void *d, size_t n)
{
	if (emit && dbuf_append(js->out, d, n) < 0)
		js->err = -ENOMEM;
}

/* -1 no rule for the current path, 0 mask, 1 drop. Keys match in any case;
 * a "$.." rule matches the end of the path at any depth. */
static int js_match(const struct jscan *js)
{
	const struct redact *r = js->r;
	for (size_t i = 0; i < r->n; i++) {
		const struct rrule *ru = &r->rules[i];
		if (ru->kind != RK_JSON || ru->ncomp > (size_t)js->depth ||
		    (!ru->anywhere && ru->ncomp != (size_t)js->depth))
			continue;
		size_t base = (size_t)js->depth - ru->ncomp;
		bool ok = true;
		for (size_t d = 0; ok && d < ru->ncomp; d++) {
			const struct jcomp *c = &ru->comps[d];
			const struct jframe *f = &js->st[base + d];
			if (c->kind == JC_KEY)
				ok = f->is_key && f->klen == c->klen &&
				     !strncasecmp((const char *)f->key, c->key, c->klen);
			else if (c->kind == JC_INDEX)
				ok = !f->is_key && f->idx == c->idx;
			else
				ok = !f->is_key;
		}
		if (ok)
			return ru->drop ? 1 : 0;
	}
	return -1;
}

static bool js_string(struct jscan *js, bool emit, const uint8_t **s, size_t *n)
{
	const uint8_t *start = js->p;
	if (js->p == js->end || *js->p != '"')
		return false;
	js->p++;
	for (;;) {
		if (js->p == js->end || *js->p < 0x20)
			return false;
		uint8_t c = *js->p++;
		if (c == '"')
			break;
		if (c != '\\')
			continue;
		if (js->p == js->end)
			return false;
		c = *js->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, js->p++)
				if (js->p == js->end || !((*js->p >= '0' && *js->p <= '9') ||
							  (*js->p >= 'a' && *js->p <= 'f') ||
							  (*js->p >= 'A' && *js->p <= 'F')))
					return false;
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
	if (s) {
		*s = start + 1;
		*n = (size_t)(js->p - start - 2);
	}
	js_emit(js, emit, start, (size_t)(js->p - start));
	return true;
}

static bool js_digits(struct jscan *js)
{
	const uint8_t *d = js->p;
	while (js->p < js->end && *js->p >= '0' && *js->p <= '9')
		js->p++;
	return js->p > d;
}

static bool js_number(struct jscan *js, bool emit)
{
	const uint8_t *start = js->p;
	if (js->p < js->end && *js->p == '-')
		js->p++;
	if (js->p < js->end && *js->p == '0')
		js->p++;
	else if (!js_digits(js))
		return false;
	if (js->p < js->end && *js->p == '.') {
		js->p++;
		if (!js_digits(js))
			return false;
	}
	if (js->p < js->end && (*js->p == 'e' || *js->p == 'E')) {
		js->p++;
		if (js->p < js->end && (*js->p == '+' || *js->p == '-'))
			js->p++;
		if (!js_digits(js))
			return false;
	}
	js_emit(js, emit, start, (size_t)(js->p - start));
	return true;
}

static bool js_value(struct jscan *js, bool emit);

static bool js_member(struct jscan *js, bool emit, bool *first)
{
	int act = emit ? js_match(js) : -1;
	const struct jframe *f = &js->st[js->depth - 1];
	if (act == 1) {
		js->t.dropped++;
		return js_value(js, false);
	}
	if (!*first)
		js_emit(js, emit, ",", 1);
	*first = false;
	if (f->is_key) {
		js_emit(js, emit, f->key - 1, f->klen + 2);
		js_emit(js, emit, ":", 1);
	}
	if (act == 0) {
		js->t.masked++;
		js_emit(js, emit, "\"" REDACT_MARKER "\"", sizeof(REDACT_MARKER) + 1);
		return js_value(js, false);
	}
	return js_value(js, emit);
}

static bool js_container(struct jscan *js, bool emit, bool obj)
{
	if (js->depth == REDACT_JSON_DEPTH)
		return false;
	js->p++;
	js_emit(js, emit, obj ? "{" : "[", 1);
	js_ws(js);
	bool first = true;
	if (js->p < js->end && *js->p == (obj ? '}' : ']')) {
		js->p++;
		js_emit(js, emit, obj ? "}" : "]", 1);
		return true;
	}
	struct jframe *f = &js->st[js->depth++];
	memset(f, 0, sizeof(*f));
	f->is_key = obj;
	for (uint64_t i = 0;; i++) {
		js_ws(js);
		if (obj) {
			if (!js_string(js, false, &f->key, &f->klen))
				return false;
			js_ws(js);
			if (js->p == js->end || *js->p++ != ':')
				return false;
		} else {
			f->idx = i;
		}
		if (!js_member(js, emit, &first))
			return false;
		js_ws(js);
		if (js->p == js->end)
			return false;
		uint8_t c = *js->p++;
		if (c == ',')
			continue;
		if (c != (obj ? '}' : ']'))
			return false;
		break;
	}
	js->depth--;
	js_emit(js, emit, obj ? "}" : "]", 1);
	return true;
}

static bool js_value(struct jscan *js, bool emit)
{
	js_ws(js);
	if (js->p == js->end)
		return false;
	switch (*js->p) {
	case '{':
		return js_container(js, emit, true);
	case '[':
		return js_container(js, emit, false);
	case '"':
		return js_string(js, emit, NULL, NULL);
	case 't':
	case 'f':
	case 'n': {
		static const char *const lits[] = {"true", "false", "null"};
		for (int i = 0; i < 3; i++) {
			size_t l = strlen(lits[i]);
			if ((size_t)(js->end - js->p) >= l && !memcmp(js->p, lits[i], l)) {
				js_emit(js, emit, js->p, l);
				js->p += l;
				return true;
			}
		}
		return false;
	}
	default:
		return js_number(js, emit);
	}
}

/* 1 changed (@p out holds the new body), 0 unchanged, -EINVAL not JSON, -ENOMEM. */
static int redact_json(const struct redact *r, struct store_slice body, struct dbuf *out,
		       struct tally *t)
{
	struct jscan js = {.r = r, .p = body.ptr, .end = body.ptr + body.len, .out = out};
	bool ok = js_value(&js, true);
	js_ws(&js);
	if (js.err)
		return -ENOMEM;
	if (!ok || js.p != js.end)
		return -EINVAL;
	t->masked += js.t.masked;
	t->dropped += js.t.dropped;
	return js.t.masked || js.t.dropped;
}

/* ---- sessions ---- */

static const struct store_header *find_header(const struct store_message *m, const char *name)
{
	for (size_t i = 0; i < m->n_headers; i++)
		if (name_is(m->headers[i].name, name, strlen(name)))
			return &m->headers[i];
	return NULL;
}

/* A body dyetap can rewrite: present, not cut by --max-body, not encoded. */
static bool plain_body(const struct store_message *m)
{
	const struct store_header *ce = find_header(m, "content-encoding");
	return !m->truncated && (!ce || slice_ieq(trim(ce->value), "identity", 8));
}

/* application/x-www-form-urlencoded bodies: form rules, like a query. */
static int do_form(struct redact *r, struct store_message *m, bool *changed, struct tally *t)
{
	if (!r->n_kind[RK_FORM] || !m->body.len)
		return 0;
	const struct store_header *ct = find_header(m, "content-type");
	if (!ct || !slice_icontains(ct->value, "application/x-www-form-urlencoded"))
		return 0;
	if (!plain_body(m)) {
		r->st.json_skipped++; /* the same blind spot: count it with the JSON ones */
		return 0;
	}
	struct dbuf out;
	dbuf_init(&out, m->body.len * 2 + 64);
	int rc = rewrite_list(r, RK_FORM, m->body.ptr, m->body.len, '&', "&", REDACT_QUERY_MARKER,
			      &out, t);
	if (rc == 1) {
		rc = keep_into(r, &out, &m->body);
		if (!rc) {
			m->body_len = m->body.len;
			*changed = true;
		}
	}
	dbuf_release(&out);
	return rc < 0 ? rc : 0;
}

static int do_body(struct redact *r, struct store_message *m, bool *changed, struct tally *t)
{
	int rc = do_form(r, m, changed, t);
	if (rc || !r->n_kind[RK_JSON] || !m->body.len)
		return rc;
	const struct store_header *ct = find_header(m, "content-type");
	if (!ct || !slice_icontains(ct->value, "json"))
		return 0;
	r->st.json_bodies++;
	if (!plain_body(m)) {
		r->st.json_skipped++;
		return 0;
	}
	struct dbuf out;
	dbuf_init(&out, m->body.len * 16 + 64);
	rc = redact_json(r, m->body, &out, t);
	if (rc == -EINVAL) {
		r->st.json_skipped++;
		rc = 0;
	} else if (rc == 1) {
		rc = keep_into(r, &out, &m->body);
		if (!rc) {
			m->body_len = m->body.len;
			*changed = true;
		}
	}
	dbuf_release(&out);
	return rc;
}

/*
 * A URL (a request-target, a Referer or Location value): the userinfo of an
 * absolute URL (url:userinfo) and the query parameters (query rules).
 * 1 changed (@p out holds it), 0 unchanged, -ENOMEM.
 */
static int redact_url(const struct redact *r, const uint8_t *p, size_t n, struct dbuf *out,
		      struct tally *t)
{
	size_t at = 0; /* bytes of p already handled */
	bool changed = false;
	int rc = 0;
	const struct rrule *ui =
	    r->n_kind[RK_URL] ? find_rule(r, RK_URL, (const uint8_t *)"userinfo", 8) : NULL;
	/* scheme "://" authority: the userinfo ends at the last '@' before the path */
	size_t i = 0;
	while (i < n && i < 32 && (isalnum(p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	size_t auth = i + 3 <= n && i && !memcmp(p + i, "://", 3) ? i + 3 : 0;
	size_t path = auth;
	if (auth) {
		while (path < n && p[path] != '/' && p[path] != '?' && p[path] != '#')
			path++;
		const uint8_t *ua = memrchr(p + auth, '@', path - auth);
		if (ui && ua) {
			rc |= dbuf_append(out, p, auth);
			if (!ui->drop) {
				rc |= dbuf_puts(out, REDACT_QUERY_MARKER "@");
				t->masked++;
			} else {
				t->dropped++;
			}
			at = (size_t)(ua - p) + 1;
			changed = true;
		}
	}
	const uint8_t *q = r->n_kind[RK_QUERY] && path < n ? memchr(p + path, '?', n - path) : NULL;
	if (q) {
		size_t qs = (size_t)(q - p) + 1;
		const uint8_t *hash = memchr(p + qs, '#', n - qs);
		size_t qe = hash ? (size_t)(hash - p) : n;
		size_t mark = out->len;
		rc |= dbuf_append(out, p + at, qs - at);
		size_t before = out->len;
		int lr = rewrite_list(r, RK_QUERY, p + qs, qe - qs, '&', "&", REDACT_QUERY_MARKER,
				      out, t);
		if (lr < 0)
			return lr;
		if (lr == 1) {
			if (out->len == before) /* every parameter dropped: drop the '?' */
				out->len--;
			at = qe;
			changed = true;
		} else {
			out->len = mark; /* nothing there: undo */
		}
	}
	if (!changed)
		return rc ? -ENOMEM : 0;
	rc |= dbuf_append(out, p + at, n - at);
	return rc ? -ENOMEM : 1;
}

/* Headers whose value is a URL that may carry a token or user:pass@. */
static bool url_header(struct store_slice name)
{
	return name_is(name, "referer", 7) || name_is(name, "location", 8) ||
	       name_is(name, "content-location", 16);
}

static int do_headers(struct redact *r, struct store_message *m, bool is_req, bool body_changed,
		      bool *changed, struct tally *t)
{
	if (!m->n_headers || (!r->n_kind[RK_HEADER] && !r->n_kind[RK_COOKIE] &&
			      !r->n_kind[RK_QUERY] && !r->n_kind[RK_URL] && !body_changed))
		return 0;
	struct store_header *nh = keep(r, mem_calloc(m->n_headers, sizeof(*nh)));
	if (!nh)
		return -ENOMEM;
	size_t n = 0;
	bool any = false;
	for (size_t i = 0; i < m->n_headers; i++) {
		struct store_header h = m->headers[i];
		const struct rrule *hr = NULL;
		for (size_t j = 0; j < r->n && !hr; j++)
			if (r->rules[j].kind == RK_HEADER &&
			    name_is(h.name, r->rules[j].name, r->rules[j].nlen))
				hr = &r->rules[j];
		if (hr && hr->drop) {
			t->dropped++;
			any = true;
			continue;
		}
		if (hr) {
			h.value.ptr = (const uint8_t *)REDACT_MARKER;
			h.value.len = sizeof(REDACT_MARKER) - 1;
			t->masked++;
			any = true;
		} else if (body_changed && name_is(h.name, "content-length", 14)) {
			char num[24];
			int l = snprintf(num, sizeof(num), "%zu", m->body.len);
			uint8_t *v = keep(r, mem_strndup(num, (size_t)l));
			if (!v)
				return -ENOMEM;
			h.value.ptr = v;
			h.value.len = (size_t)l;
		} else if ((r->n_kind[RK_QUERY] || r->n_kind[RK_URL]) && url_header(h.name)) {
			struct dbuf out;
			dbuf_init(&out, h.value.len * 2 + 64);
			int rc = redact_url(r, h.value.ptr, h.value.len, &out, t);
			if (rc == 1) {
				rc = keep_into(r, &out, &h.value);
				any = true;
			}
			dbuf_release(&out);
			if (rc < 0)
				return rc;
		} else if (r->n_kind[RK_COOKIE] &&
			   name_is(h.name, is_req ? "cookie" : "set-cookie", is_req ? 6 : 10)) {
			struct dbuf out;
			dbuf_init(&out, h.value.len * 2 + 64);
			int rc;
			if (is_req) {
				rc = rewrite_list(r, RK_COOKIE, h.value.ptr, h.value.len, ';', "; ",
						  REDACT_MARKER, &out, t);
			} else {
				/* Only the first pair is the cookie; the rest are attributes. */
				const uint8_t *semi = memchr(h.value.ptr, ';', h.value.len);
				size_t first = semi ? (size_t)(semi - h.value.ptr) : h.value.len;
				rc = rewrite_list(r, RK_COOKIE, h.value.ptr, first, ';', "; ",
						  REDACT_MARKER, &out, t);
				if (rc == 1 && !out.len) { /* dropped: drop the whole header */
					dbuf_release(&out);
					any = true;
					continue;
				}
				if (rc == 1 && semi)
					rc = dbuf_append(&out, semi, h.value.len - first) ? -ENOMEM
											  : 1;
			}
			if (rc == 1) {
				if (!out.len) { /* every cookie dropped: drop the header */
					dbuf_release(&out);
					any = true;
					continue;
				}
				if (keep_into(r, &out, &h.value))
					rc = -ENOMEM;
				any = true;
			}
			dbuf_release(&out);
			if (rc < 0)
				return rc;
		}
		nh[n++] = h;
	}
	m->headers = nh;
	m->n_headers = n;
	*changed |= any;
	return 0;
}

/* The request-target: query parameters, and the userinfo of an absolute form. */
static int do_target(struct redact *r, struct store_message *m, bool *changed, struct tally *t)
{
	if ((!r->n_kind[RK_QUERY] && !r->n_kind[RK_URL]) || !m->target.len)
		return 0;
	struct dbuf out;
	dbuf_init(&out, m->target.len * 2 + 64);
	int rc = redact_url(r, m->target.ptr, m->target.len, &out, t);
	if (rc == 1) {
		rc = keep_into(r, &out, &m->target);
		if (!rc)
			*changed = true;
	}
	dbuf_release(&out);
	return rc < 0 ? rc : 0;
}

/* HTTP/2: the ":path" field repeats the target; after the query was
 * redacted it must say the same, or the secret stays in the field. */
static int sync_path(struct redact *r, struct store_message *m)
{
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct store_header *h = &m->headers[i];
		if (!slice_ieq(h->name, ":path", 5))
			continue;
		if (h->value.len == m->target.len &&
		    (!h->value.len || !memcmp(h->value.ptr, m->target.ptr, h->value.len)))
			return 0;
		struct store_header *nh = keep(r, mem_calloc(m->n_headers, sizeof(*nh)));
		if (!nh)
			return -ENOMEM;
		memcpy(nh, m->headers, m->n_headers * sizeof(*nh));
		nh[i].value = m->target;
		m->headers = nh;
		return 0;
	}
	return 0;
}

static int do_message(struct redact *r, struct store_message *m, bool is_req, bool *changed,
		      struct tally *t)
{
	bool body_changed = false;
	int rc = do_body(r, m, &body_changed, t);
	if (!rc)
		rc = do_headers(r, m, is_req, body_changed, changed, t);
	if (!rc && m->n_trailers) {
		/* HTTP/2 trailer fields: the header rules apply to them too */
		struct store_message tm = {.headers = m->trailers, .n_headers = m->n_trailers};
		rc = do_headers(r, &tm, is_req, false, changed, t);
		m->trailers = tm.n_headers ? tm.headers : NULL;
		m->n_trailers = tm.n_headers;
	}
	if (!rc && is_req)
		rc = do_target(r, m, changed, t);
	if (!rc && is_req)
		rc = sync_path(r, m);
	*changed |= body_changed;
	return rc;
}

int redact_session(struct redact *r, const struct store_session *in, struct store_session *out)
{
	free_pieces(r);
	*out = *in;
	if (!r->n)
		return 0;
	bool changed = false;
	struct tally t = {0, 0};
	int rc = 0;
	if (out->req.present)
		rc = do_message(r, &out->req, true, &changed, &t);
	if (!rc && out->resp.present)
		rc = do_message(r, &out->resp, false, &changed, &t);
	if (rc < 0) {
		r->st.errors++;
		free_pieces(r);
		*out = *in;
		return rc;
	}
	if (changed) {
		out->flags |= STORE_F_REDACTED;
		r->st.sessions++;
		r->st.masked += t.masked;
		r->st.dropped += t.dropped;
	}
	return 0;
}
