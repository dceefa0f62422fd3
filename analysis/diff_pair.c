/* SPDX-License-Identifier: MIT */
/*
 * diff_pair - compare one primary response with one candidate response:
 * status, headers (by name, multi-value aware, RFC 9110 §5.3 combining),
 * and body by content type — JSON structurally by path (RFC 8259, paths
 * written like RFC 9535 JSONPath), other text line by line with context,
 * binary by length and FNV-1a hash. Content encodings are decoded first
 * (diff_decode.c). Noise rules (noise.h) apply here; learned noise is
 * decided later over all pairs (diff_ctx.c).
 *
 * Every loop is bounded: headers per message, findings per pair, and a
 * comparison budget per pair for the quadratic cases (object member
 * lookup, order-insensitive arrays).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_align.h"
#include "analysis/diff_private.h"
#include "common/jsonw.h"
#include "common/mem.h"

#define DIFF_DEF_MAX_BODY	(16u << 20)
#define DIFF_DEF_MAX_EXAMPLE	4096
#define DIFF_DEF_MAX_FINDINGS	64
#define DIFF_BUDGET		(1u << 24)
#define DIFF_TEXT_CONTEXT	3
#define DIFF_TEXT_LINES		12
#define DIFF_TEXT_LINE_FINDINGS 8 /* lines compared one by one in a changed region */

static const char *const kind_names[DIFF_K_COUNT] = {
    "status_changed", "value_changed",	"type_changed", "missing",     "extra",
    "text_changed",   "binary_changed", "not_json",	"undecodable", "order_changed",
};

const char *diff_kind_name(unsigned kind)
{
	return kind < DIFF_K_COUNT ? kind_names[kind] : "unknown";
}

/* Sorted for bsearch: the default ignore list (docs/diff.md). */
static const char *const default_ignored[] = {
    "age",
    "b3",
    "cf-ray",
    "connection",
    "content-length",
    "date",
    "etag",
    "expires",
    "keep-alive",
    "last-modified",
    "nel",
    "report-to",
    "request-id",
    "server-timing",
    "traceparent",
    "tracestate",
    "transfer-encoding",
    "via",
    "x-amz-cf-id",
    "x-amzn-requestid",
    "x-amzn-trace-id",
    "x-b3-flags",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-cache",
    "x-cache-hits",
    "x-correlation-id",
    "x-envoy-upstream-service-time",
    "x-request-id",
    "x-response-time",
    "x-runtime",
    "x-served-by",
    "x-timer",
    "x-trace-id",
};

bool diff_default_ignored(const char *name, size_t n)
{
	size_t lo = 0, hi = sizeof(default_ignored) / sizeof(default_ignored[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *d = default_ignored[mid];
		size_t dl = strlen(d);
		int c = memcmp(name, d, n < dl ? n : dl);
		if (c == 0)
			c = n < dl ? -1 : n > dl ? 1 : 0;
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

int diff_engine_init(struct diff_engine *e, const struct diff_params *p)
{
	memset(e, 0, sizeof(*e));
	if (p)
		e->p = *p;
	if (!e->p.max_body)
		e->p.max_body = DIFF_DEF_MAX_BODY;
	if (!e->p.max_example)
		e->p.max_example = DIFF_DEF_MAX_EXAMPLE;
	if (!e->p.max_findings)
		e->p.max_findings = DIFF_DEF_MAX_FINDINGS;
	struct json_limits lim = {.max_bytes = e->p.max_body};
	json_doc_init(&e->ja, &lim);
	json_doc_init(&e->jb, &lim);
	dbuf_init(&e->dec_a, e->p.max_body);
	dbuf_init(&e->dec_b, e->p.max_body);
	dbuf_init(&e->tmp, e->p.max_body * 2);
	dbuf_init(&e->marks, e->p.max_body * 2);
	dbuf_init(&e->mask_a, e->p.max_body * 2);
	dbuf_init(&e->mask_b, e->p.max_body * 2);
	/* two strings of a body each, unescaped (str_equal()) */
	dbuf_init(&e->scratch, e->p.max_body * 2 + 2);
	dbuf_init(&e->hva, 64 * 1024);
	dbuf_init(&e->hvb, 64 * 1024);
	dbuf_init(&e->hbin, 96 * 1024);
	dbuf_init(&e->pb_a, e->p.max_body * 4);
	dbuf_init(&e->pb_b, e->p.max_body * 4);
	e->f = mem_calloc(e->p.max_findings, sizeof(*e->f));
	return e->f ? 0 : -ENOMEM;
}

void diff_engine_release(struct diff_engine *e)
{
	json_doc_release(&e->ja);
	json_doc_release(&e->jb);
	dbuf_release(&e->dec_a);
	dbuf_release(&e->dec_b);
	dbuf_release(&e->tmp);
	dbuf_release(&e->marks);
	dbuf_release(&e->mask_a);
	dbuf_release(&e->mask_b);
	dbuf_release(&e->scratch);
	dbuf_release(&e->hva);
	dbuf_release(&e->hvb);
	dbuf_release(&e->hbin);
	dbuf_release(&e->pb_a);
	dbuf_release(&e->pb_b);
	mem_free(e->f);
	mem_free(e->mark);
	e->f = NULL;
	e->mark = NULL;
}

/* ------------------------------------------------------------------ */
/* Volatile values                                                     */
/* ------------------------------------------------------------------ */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

static bool hexc(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool diff_looks_volatile(const char *s, size_t n)
{
	/* strip quotes of a JSON string */
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
		s++, n -= 2;
	/* Identifiers have bounded lengths (a SHA-512 in hex is 128, a JWT has
	 * dots and is no token here); a longer value is content, an encoded
	 * blob or a document, and a change in it is not judged noise by its
	 * look. */
	if (n < 8 || n > DIFF_VOLATILE_MAX)
		return false;
	/* epoch seconds, ms, us or ns between 2001 and 2286 */
	if (all_digits(s, n) && (n == 10 || n == 13 || n == 16 || n == 19) && s[0] == '1')
		return true;
	/* ISO 8601 / RFC 3339 date-time: dddd-dd-ddTdd:dd */
	if (n >= 16 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
	    all_digits(s + 8, 2) && (s[10] == 'T' || s[10] == ' ') && all_digits(s + 11, 2) &&
	    s[13] == ':')
		return true;
	/* RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (n == 29 && s[3] == ',' && !memcmp(s + 26, "GMT", 3))
		return true;
	/* UUID */
	if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-') {
		bool ok = true;
		for (size_t i = 0; i < n && ok; i++)
			if (i != 8 && i != 13 && i != 18 && i != 23)
				ok = hexc(s[i]);
		if (ok)
			return true;
	}
	/* random hex (16+), or a random token (20+) mixing cases and digits */
	size_t hex = 0, dig = 0, up = 0, lo = 0, other = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			dig++;
		else if (c >= 'A' && c <= 'Z')
			up++;
		else if (c >= 'a' && c <= 'z')
			lo++;
		else if (c != '-' && c != '_' && c != '+' && c != '/' && c != '=')
			other++;
		if (hexc(c))
			hex++;
	}
	if (n >= 16 && hex == n && dig > 0 && dig < n)
		return true;
	if (n >= 20 && !other && dig > 0 && up > 0 && lo > 0)
		return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Findings                                                            */
/* ------------------------------------------------------------------ */

static void copy_val(char *dst, const void *src, size_t n)
{
	if (n >= DIFF_VAL_MAX) {
		/* keep the start, mark the cut (no split UTF-8 cleanup: jsonw fixes it) */
		memcpy(dst, src, DIFF_VAL_MAX - 4);
		memcpy(dst + DIFF_VAL_MAX - 4, "...", 4);
		return;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static struct diff_finding *add_finding(struct diff_engine *e, uint8_t kind)
{
	if (e->nf >= e->p.max_findings) {
		e->dropped++;
		return NULL;
	}
	struct diff_finding *f = &e->f[e->nf++];
	f->kind = kind;
	f->vol = false;
	f->loc[0] = f->iloc[0] = f->pval[0] = f->cval[0] = '\0';
	return f;
}

static void finding_vals(struct diff_engine *e, struct diff_finding *f, const void *pv, size_t pn,
			 const void *cv, size_t cn)
{
	copy_val(f->pval, pv, pn);
	copy_val(f->cval, cv, cn);
	f->vol = !e->p.no_volatile && pn && cn && diff_looks_volatile(pv, pn) &&
		 diff_looks_volatile(cv, cn);
}

/* ------------------------------------------------------------------ */
/* Words: text lines and header values compared token by token         */
/* ------------------------------------------------------------------ */

/*
 * A line or a header value is a sequence of tokens: runs of whitespace,
 * single separators (= , ; quotes brackets | &) and words (everything
 * else: a timestamp, a version, a path or a number is one word). Two
 * values with the same separators and some, not all, of their words
 * different are compared word by word (docs/diff.md "Words"), so a
 * volatile word is learned or judged volatile alone and a deterministic
 * change next to it is still reported.
 */
#define DIFF_MAX_TOKENS 256

struct tok {
	uint32_t off, len;
	bool word;
};

static bool tok_sep(uint8_t c)
{
	return c == '=' || c == ',' || c == ';' || c == '"' || c == '\'' || c == '(' || c == ')' ||
	       c == '[' || c == ']' || c == '{' || c == '}' || c == '<' || c == '>' || c == '|' ||
	       c == '&';
}

static bool tok_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Tokens of @p p[0..n) into @p t; their number, or SIZE_MAX when over the cap. */
static size_t tokenize(const uint8_t *p, size_t n, struct tok *t)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		if (k == DIFF_MAX_TOKENS)
			return SIZE_MAX;
		size_t j = i + 1;
		bool word = false;
		if (tok_space(p[i])) {
			while (j < n && tok_space(p[j]))
				j++;
		} else if (!tok_sep(p[i])) {
			while (j < n && !tok_space(p[j]) && !tok_sep(p[j]))
				j++;
			word = true;
		}
		t[k++] = (struct tok){(uint32_t)i, (uint32_t)(j - i), word};
		i = j;
	}
	return k;
}

/*
 * Compare @p a and @p b word by word. Returns the number of differing
 * words and sets @p diff[k] for each, or 0 when they cannot be compared
 * so (other separators, a different number of tokens, over the cap, or
 * every word differs: then the value is one difference as a whole).
 * @p words receives the index of each token among the words.
 */
static size_t word_diff(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, struct tok *ta,
			struct tok *tb, bool *diff, size_t *n_tok)
{
	if (an > UINT32_MAX || bn > UINT32_MAX)
		return 0;
	size_t na = tokenize(a, an, ta), nb = tokenize(b, bn, tb);
	if (na == SIZE_MAX || na != nb)
		return 0;
	size_t words = 0, d = 0;
	for (size_t k = 0; k < na; k++) {
		diff[k] = false;
		bool same =
		    ta[k].len == tb[k].len && !memcmp(a + ta[k].off, b + tb[k].off, ta[k].len);
		if (ta[k].word != tb[k].word || (!ta[k].word && !same))
			return 0;
		if (!ta[k].word)
			continue;
		words++;
		if (!same) {
			diff[k] = true;
			d++;
		}
	}
	*n_tok = na;
	return d < words ? d : 0;
}

/* ------------------------------------------------------------------ */
/* Headers                                                             */
/* ------------------------------------------------------------------ */

const struct store_header *diff_find_header(const struct store_message *m, const char *name)
{
	size_t n = strlen(name);
	size_t nh = m->n_headers < DIFF_MAX_HDRS ? m->n_headers : DIFF_MAX_HDRS;
	for (size_t i = 0; i < nh; i++)
		if (m->headers[i].name.len == n &&
		    strncasecmp((const char *)m->headers[i].name.ptr, name, n) == 0)
			return &m->headers[i];
	return NULL;
}

static bool name_eq(const struct store_slice *a, const struct store_slice *b)
{
	return a->len == b->len &&
	       strncasecmp((const char *)a->ptr, (const char *)b->ptr, a->len) == 0;
}

size_t diff_mask_header_value(const char *lname, size_t nlen, const uint8_t *v, size_t vlen,
			      char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return 0;
#define OUT(p, n)                                                                                  \
	do {                                                                                       \
		size_t n_ = (n);                                                                   \
		if (n_ > cap - 1 - o)                                                              \
			n_ = cap - 1 - o;                                                          \
		if (n_)                                                                            \
			memcpy(out + o, (p), n_);                                                  \
		o += n_;                                                                           \
	} while (0)
	if ((nlen == 13 && !memcmp(lname, "authorization", 13)) ||
	    (nlen == 19 && !memcmp(lname, "proxy-authorization", 19))) {
		size_t i = 0;
		while (i < vlen && v[i] != ' ')
			i++;
		if (i < vlen) {
			OUT(v, i + 1);
		}
		OUT("<masked>", 8);
	} else if (nlen == 6 && !memcmp(lname, "cookie", 6)) {
		size_t i = 0;
		while (i < vlen) {
			size_t s = i;
			while (i < vlen && v[i] != '=' && v[i] != ';')
				i++;
			OUT(v + s, i - s);
			if (i < vlen && v[i] == '=')
				OUT("=<masked>", 9);
			while (i < vlen && v[i] != ';')
				i++;
			if (i < vlen) {
				OUT("; ", 2);
				i++;
				while (i < vlen && v[i] == ' ')
					i++;
			}
		}
	} else if (nlen == 10 && !memcmp(lname, "set-cookie", 10)) {
		size_t i = 0;
		while (i < vlen && v[i] != '=' && v[i] != ';')
			i++;
		OUT(v, i);
		if (i < vlen && v[i] == '=')
			OUT("=<masked>", 9);
		while (i < vlen && v[i] != ';')
			i++;
		OUT(v + i, vlen - i);
	} else {
		OUT(v, vlen);
	}
#undef OUT
	out[o] = '\0';
	return o;
}

/* Set-Cookie: only the cookie names are compared (values are session noise). */
static void cookie_name(const struct store_slice *v, struct dbuf *out)
{
	size_t i = 0;
	while (i < v->len && v->ptr[i] != '=' && v->ptr[i] != ';')
		i++;
	dbuf_append(out, v->ptr, i);
}

static bool header_ignored(struct diff_engine *e, const char *lname, size_t n)
{
	const struct diff_ruleset *rs = e->rs;
	if (rs)
		for (size_t i = 0; i < rs->n; i++) {
			const struct noise_rule *r = rs->v[i];
			if (r->kind != NOISE_IGNORE_HEADER && r->kind != NOISE_CHECK_HEADER)
				continue;
			if (!noise_header_match(r->header, lname, n))
				continue;
			if (rs->hits)
				rs->hits[r - rs->all->v]++;
			return r->kind == NOISE_IGNORE_HEADER;
		}
	return !e->p.no_default_ignores && diff_default_ignored(lname, n);
}

/*
 * Find the non-empty matches of rule @p r in @p src[0..len), in order; for
 * each call @p fn(@p arg, start, end). An empty match masks nothing (the
 * search goes on one byte further). Returns 1 when something matched, 0
 * when not, or @p fn's error. @p src must be followed by a readable NUL
 * (dbuf data is).
 */
static int each_match(const struct noise_rule *r, const uint8_t *src, size_t len,
		      int (*fn)(void *, size_t, size_t), void *arg)
{
	const regex_t *re = &r->re;
	size_t off = 0;
	int any = 0, rc;
	while (off < len) {
		size_t from = off;
		if (r->lit_len) {
			/* every match starts with the literal: jump to it */
			const uint8_t *hit = memmem(src + off, len - off, r->lit, r->lit_len);
			if (!hit)
				break;
			from = (size_t)(hit - src);
		}
		regmatch_t m = {.rm_so = (regoff_t)from, .rm_eo = (regoff_t)len};
		if (regexec(re, (const char *)src, 1, &m, REG_STARTEND | (from ? REG_NOTBOL : 0)))
			break;
		if (m.rm_eo == m.rm_so) {
			off = (size_t)m.rm_so + 1;
			continue;
		}
		any = 1;
		if ((rc = fn(arg, (size_t)m.rm_so, (size_t)m.rm_eo)))
			return rc;
		off = (size_t)m.rm_eo;
	}
	return any;
}

struct mask_out {
	const uint8_t *src;
	size_t done; /* bytes of src already handled */
	struct dbuf *dst;
};

static int mask_one(void *arg, size_t so, size_t eo)
{
	struct mask_out *o = arg;
	int rc = dbuf_append(o->dst, o->src + o->done, so - o->done);
	if (!rc)
		rc = dbuf_puts(o->dst, "<masked>");
	o->done = eo;
	return rc;
}

/*
 * Replace every non-empty match of @p r in @p src[0..len) by "<masked>",
 * appending to @p dst. Returns 1 when something matched, 0 when not, or a
 * dbuf error. @p src must be followed by a readable NUL (dbuf data is).
 */
static int mask_re(const struct noise_rule *r, const uint8_t *src, size_t len, struct dbuf *dst)
{
	struct mask_out o = {src, 0, dst};
	int any = each_match(r, src, len, mask_one, &o);
	if (any > 0 && o.done < len) {
		int rc = dbuf_append(dst, src + o.done, len - o.done);
		if (rc)
			return rc;
	}
	return any;
}

/* Apply `mask header` rules for @p lname to value @p v, appending to @p out. */
static void header_value(struct diff_engine *e, const char *lname, size_t n,
			 const struct store_slice *v, struct dbuf *out)
{
	const struct diff_ruleset *rs = e->rs;
	if (rs)
		for (size_t i = 0; i < rs->n; i++) {
			const struct noise_rule *r = rs->v[i];
			if (r->kind != NOISE_MASK_HEADER ||
			    !noise_header_match(r->header, lname, n))
				continue;
			/* regexec needs a NUL after the value: copy it */
			char buf[4096];
			size_t l = v->len < sizeof(buf) - 1 ? v->len : sizeof(buf) - 1;
			memcpy(buf, v->ptr, l);
			buf[l] = '\0';
			size_t mark = out->len;
			int m = mask_re(r, (const uint8_t *)buf, l, out);
			if (m > 0) {
				if (rs->hits)
					rs->hits[r - rs->all->v]++;
				return;
			}
			out->len = mark;
			if (out->data)
				out->data[mark] = '\0';
		}
	dbuf_append(out, v->ptr, v->len);
}

/* The fields of a message compared as headers: its header fields, then
 * its trailer fields (HTTP/2; a chunked HTTP/1.1 message's are not kept).
 * A gRPC server's trailing metadata is in its trailers, or in its one
 * header block when the answer is Trailers-Only (PROTOCOL-HTTP2.md), so
 * both are one set of fields. */
struct fields {
	const struct store_message *m;
	size_t nh, n; /* header fields looked at; with the trailer fields */
};

static struct fields fields_of(const struct store_message *m)
{
	size_t nh = m->n_headers < DIFF_MAX_HDRS ? m->n_headers : DIFF_MAX_HDRS;
	size_t nt = m->n_trailers < DIFF_MAX_HDRS ? m->n_trailers : DIFF_MAX_HDRS;
	return (struct fields){m, nh, nh + nt};
}

static const struct store_header *field_at(const struct fields *f, size_t i)
{
	return i < f->nh ? &f->m->headers[i] : &f->m->trailers[i - f->nh];
}

/* gRPC binary metadata ("-bin" names) is base64 encoded, padded or not
 * (PROTOCOL-HTTP2.md "Binary-Header"), or, between gRPC C core peers that
 * both sent SETTINGS 0xfe03 (GRPC_ALLOW_TRUE_BINARY_METADATA), the raw
 * bytes after a NUL byte. A recording of two such peers holds the raw
 * form, a replay's answer (its client sends no 0xfe03) the base64 one:
 * both are compared, and shown, as padded base64 of the bytes. */
static bool bin_name(const char *lname, size_t n)
{
	return n > 4 && !memcmp(lname + n - 4, "-bin", 4);
}

static void bin_value(const struct store_slice *v, struct dbuf *out)
{
	dbuf_reset(out);
	if (v->len && v->ptr[0] == 0) {
		jsonw_base64(out, v->ptr + 1, v->len - 1);
		return;
	}
	dbuf_append(out, v->ptr, v->len);
	for (size_t k = v->len; k % 4 && k % 4 != 1; k++)
		dbuf_putc(out, '=');
}

static void collect(struct diff_engine *e, const struct fields *fs, const struct store_slice *name,
		    const char *lname, size_t ln, bool setcookie, struct dbuf *out, int *count)
{
	bool bin = bin_name(lname, ln);
	*count = 0;
	for (size_t i = 0; i < fs->n; i++) {
		const struct store_header *h = field_at(fs, i);
		if (!name_eq(&h->name, name))
			continue;
		if ((*count)++)
			dbuf_puts(out, setcookie ? "; " : ", ");
		if (setcookie) {
			cookie_name(&h->value, out);
		} else if (bin) {
			bin_value(&h->value, &e->hbin);
			struct store_slice v = {e->hbin.data, e->hbin.len};
			header_value(e, lname, ln, &v, out);
		} else {
			header_value(e, lname, ln, &h->value, out);
		}
	}
}

static void header_finding(struct diff_engine *e, uint8_t kind, const char *lname, size_t ln,
			   const struct dbuf *pa, const struct dbuf *pb)
{
	char ma[DIFF_VAL_MAX], mb[DIFF_VAL_MAX];
	const uint8_t *va = pa->data ? pa->data : (const uint8_t *)"";
	const uint8_t *vb = pb->data ? pb->data : (const uint8_t *)"";
	size_t la = diff_mask_header_value(lname, ln, va, pa->len, ma, sizeof(ma));
	size_t lb = diff_mask_header_value(lname, ln, vb, pb->len, mb, sizeof(mb));
	struct tok ta[DIFF_MAX_TOKENS], tb[DIFF_MAX_TOKENS];
	bool dif[DIFF_MAX_TOKENS];
	size_t nt = 0;
	/* word by word when only some words changed (not for masked values) */
	if (kind == DIFF_K_VALUE && la == pa->len && !memcmp(ma, va, la) &&
	    word_diff(va, pa->len, vb, pb->len, ta, tb, dif, &nt)) {
		for (size_t k = 0, w = 0; k < nt; k++) {
			if (!ta[k].word)
				continue;
			w++;
			if (!dif[k])
				continue;
			struct diff_finding *f = add_finding(e, kind);
			if (!f)
				return;
			snprintf(f->loc, sizeof(f->loc), "header:%.*s[%zu]", (int)ln, lname, w);
			finding_vals(e, f, va + ta[k].off, ta[k].len, vb + tb[k].off, tb[k].len);
			/* show the whole values, judge the word */
			copy_val(f->pval, ma, la);
			copy_val(f->cval, mb, lb);
		}
		return;
	}
	struct diff_finding *f = add_finding(e, kind);
	if (!f)
		return;
	snprintf(f->loc, sizeof(f->loc), "header:%.*s", (int)ln, lname);
	finding_vals(e, f, ma, la, mb, lb);
}

/* grpc-status and grpc-message are compared like a status (compare_grpc_status) */
static bool grpc_status_name(const char *lname, size_t n)
{
	return (n == 11 && !memcmp(lname, "grpc-status", 11)) ||
	       (n == 12 && !memcmp(lname, "grpc-message", 12));
}

/* Fields of a gRPC response with a message that a Trailers-Only answer
 * cannot have: gRPC's PROTOCOL-HTTP2.md gives Response-Headers as
 * HTTP-Status [Message-Encoding] [Message-Accept-Encoding] Content-Type
 * *Custom-Metadata and Trailers-Only as HTTP-Status Content-Type Trailers. */
static bool grpc_message_field(const char *lname, size_t n)
{
	return (n == 13 && !memcmp(lname, "grpc-encoding", 13)) ||
	       (n == 20 && !memcmp(lname, "grpc-accept-encoding", 20));
}

static bool auth_equal(const struct diff_engine *e, const uint8_t *a, size_t na, const uint8_t *b,
		       size_t nb);

static void compare_headers(struct diff_engine *e, const struct store_message *a,
			    const struct store_message *b)
{
	struct fields fa = fields_of(a), fb = fields_of(b);
	size_t na = fa.n, nb = fb.n;
	/* fast path: the same field lines byte for byte cannot differ */
	if (fa.nh == fb.nh && na == nb) {
		size_t i = 0;
		for (; i < na; i++) {
			const struct store_header *x = field_at(&fa, i), *y = field_at(&fb, i);
			if (x->name.len != y->name.len || x->value.len != y->value.len ||
			    memcmp(x->name.ptr, y->name.ptr, x->name.len) ||
			    (x->value.len && memcmp(x->value.ptr, y->value.ptr, x->value.len)))
				break;
		}
		if (i == na)
			return;
	}
	struct dbuf va = e->hva, vb = e->hvb;
	for (int side = 0; side < 2; side++) {
		const struct fields *m = side ? &fb : &fa, *o = side ? &fa : &fb;
		for (size_t i = 0; i < m->n; i++) {
			const struct store_slice *name = &field_at(m, i)->name;
			bool seen = false;
			for (size_t j = 0; j < i && !seen; j++)
				seen = name_eq(&field_at(m, j)->name, name);
			/* HTTP/2 pseudo-header fields are no headers (":status" is
			 * the status, compared above) */
			if (seen || name->len == 0 || name->len >= 128 || name->ptr[0] == ':')
				continue;
			if (side) {
				/* candidate-only names: present in primary were handled */
				bool in_a = false;
				for (size_t j = 0; j < o->n && !in_a; j++)
					in_a = name_eq(&field_at(o, j)->name, name);
				if (in_a)
					continue;
			}
			char lname[128];
			size_t ln = name->len;
			for (size_t k = 0; k < ln; k++)
				lname[k] = (char)tolower(name->ptr[k]);
			lname[ln] = '\0';
			if (header_ignored(e, lname, ln) || grpc_status_name(lname, ln))
				continue;
			bool sc = ln == 10 && !memcmp(lname, "set-cookie", 10);
			int ca, cb;
			dbuf_reset(&va);
			dbuf_reset(&vb);
			collect(e, &fa, name, lname, ln, sc, &va, &ca);
			collect(e, &fb, name, lname, ln, sc, &vb, &cb);
			/* a Trailers-Only answer lacks its message's fields by
			 * the grammar: the status change or the missing
			 * messages say it (diff_engine_compare); only that
			 * side's lack is excused */
			if (((!ca && (e->grpc_trailers_only & 1)) ||
			     (!cb && (e->grpc_trailers_only & 2))) &&
			    grpc_message_field(lname, ln))
				continue;
			if (ca && !cb)
				header_finding(e, DIFF_K_MISSING, lname, ln, &va, &vb);
			else if (!ca && cb)
				header_finding(e, DIFF_K_EXTRA, lname, ln, &va, &vb);
			else if ((va.len != vb.len ||
				  (va.len && memcmp(va.data, vb.data, va.len))) &&
				 !auth_equal(e, va.data, va.len, vb.data, vb.len))
				header_finding(e, DIFF_K_VALUE, lname, ln, &va, &vb);
		}
	}
	e->hva = va; /* keep the allocations for the next pair */
	e->hvb = vb;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

/* A protobuf field number (gRPC bodies): $.3 rather than $["3"] */
static bool field_number(const uint8_t *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit(k[i]))
			return false;
	return n > 0;
}

static bool ident(const uint8_t *k, size_t n)
{
	if (!n || !(isalpha(k[0]) || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum(k[i]) || k[i] == '_' || k[i] == '-'))
			return false;
	return true;
}

/* Append @p n bytes to out[*o] within cap (keeping a NUL). */
static void loc_put(char *out, size_t cap, size_t *o, const void *p, size_t n)
{
	if (*o >= cap - 1)
		return;
	if (n > cap - 1 - *o)
		n = cap - 1 - *o;
	memcpy(out + *o, p, n);
	*o += n;
	out[*o] = '\0';
}

static void loc_index(char *out, size_t cap, size_t *o, uint64_t v)
{
	char num[24];
	size_t k = sizeof(num);
	do {
		num[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	loc_put(out, cap, o, "[", 1);
	loc_put(out, cap, o, num + k, sizeof(num) - k);
	loc_put(out, cap, o, "]", 1);
}

/*
 * The location of the current position: @p out with every array element
 * written [*] (the location a group is keyed on, so that one change of
 * every element is one group), @p iout the element's own location
 * ($[3].id, $.items[id=7].price), left "" when it reads the same.
 */
static void build_loc(struct diff_engine *e, char *out, char *iout, size_t cap)
{
	/* hand-rolled: this runs for every difference, snprintf showed in profiles */
	size_t o = 0, io = 0;
	bool idx = false;
	loc_put(out, cap, &o, "body:$", 6);
	loc_put(iout, cap, &io, "body:$", 6);
	for (size_t i = 0; i < e->npos; i++) {
		const struct noise_pos *p = &e->pos[i];
		if (!p->is_index && (ident(p->key, p->key_len) ||
				     (e->grpc_paths && field_number(p->key, p->key_len)))) {
			loc_put(out, cap, &o, ".", 1);
			loc_put(out, cap, &o, p->key, p->key_len);
			loc_put(iout, cap, &io, ".", 1);
			loc_put(iout, cap, &io, p->key, p->key_len);
		} else if (!p->is_index) {
			loc_put(out, cap, &o, "[\"", 2);
			loc_put(out, cap, &o, p->key, p->key_len);
			loc_put(out, cap, &o, "\"]", 2);
			loc_put(iout, cap, &io, "[\"", 2);
			loc_put(iout, cap, &io, p->key, p->key_len);
			loc_put(iout, cap, &io, "\"]", 2);
		} else {
			/* every element [*] ($.4[*].7 in gRPC too); the example
			 * has the element's own index */
			loc_put(out, cap, &o, "[*]", 3);
			if (p->kfield) {
				loc_put(iout, cap, &io, "[", 1);
				loc_put(iout, cap, &io, p->kfield, strlen(p->kfield));
				loc_put(iout, cap, &io, "=", 1);
				loc_put(iout, cap, &io, p->kval, p->kval_len);
				loc_put(iout, cap, &io, "]", 1);
				idx = true;
			} else if (p->index == UINT64_MAX) {
				loc_put(iout, cap, &io, "[*]", 3);
			} else {
				loc_index(iout, cap, &io, p->index);
				idx = true;
			}
		}
	}
	if (o >= cap - 1 && cap > 4)
		memcpy(out + cap - 4, "...", 4);
	if (!idx)
		iout[0] = '\0';
	else if (io >= cap - 1 && cap > 4)
		memcpy(iout + cap - 4, "...", 4);
}

/* Append @p n bytes of @p p to @p b, or, past @p lim, the start and "...":
 * a value longer than the scratch buffer must show cut, never empty. */
static bool render_cut(struct dbuf *b, const void *p, size_t n, size_t lim)
{
	size_t room = lim > b->len ? lim - b->len : 0;
	if (n <= room) {
		dbuf_append(b, p, n);
		return false;
	}
	dbuf_append(b, p, room);
	dbuf_puts(b, "...");
	return true;
}

/* Render a JSON value compactly into @p b, stopping once it holds @p lim
 * bytes (a string, key or number is cut there and ends with "..."). */
static void render_to(const struct json_doc *d, uint32_t i, struct dbuf *b, int depth, size_t lim)
{
	const struct json_node *n = json_node(d, i);
	if (b->len > lim)
		return;
	switch (n->type) {
	case JSON_STRING:
		dbuf_putc(b, '"');
		if (!render_cut(b, d->text + n->off, n->len, lim))
			dbuf_putc(b, '"');
		return;
	case JSON_ARRAY:
	case JSON_OBJECT: {
		bool obj = n->type == JSON_OBJECT;
		dbuf_putc(b, obj ? '{' : '[');
		if (depth > 8 && n->n) {
			dbuf_puts(b, "...");
		} else {
			for (uint32_t c = n->first; c; c = json_node(d, c)->next) {
				if (c != n->first)
					dbuf_putc(b, ',');
				if (obj) {
					const struct json_node *cn = json_node(d, c);
					dbuf_putc(b, '"');
					if (render_cut(b, d->text + cn->key_off, cn->key_len, lim))
						return;
					dbuf_puts(b, "\":");
				}
				render_to(d, c, b, depth + 1, lim);
				if (b->len > lim)
					return;
			}
		}
		dbuf_putc(b, obj ? '}' : ']');
		return;
	}
	default:
		render_cut(b, d->text + n->off, n->len, lim);
	}
}

/* Render a value after what @p b holds, at most about DIFF_VAL_MAX bytes of it. */
static void render(const struct json_doc *d, uint32_t i, struct dbuf *b, int depth)
{
	render_to(d, i, b, depth, b->len + DIFF_VAL_MAX);
}

/* A scalar's text as written (a string without its quotes) looks volatile;
 * an object or array never does. */
static bool node_volatile(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	if (n->type == JSON_OBJECT || n->type == JSON_ARRAY)
		return false;
	return diff_looks_volatile((const char *)d->text + n->off, n->len);
}

/* Where two long strings first differ, when a rendering from their start
 * would not show it (both the same first DIFF_VAL_MAX bytes: a bytes field
 * of a large gRPC message whose end changed): the offset to render them
 * from, a little before that byte and not inside a UTF-8 sequence; else 0. */
static size_t str_window(const struct json_doc *da, uint32_t ai, const struct json_doc *db,
			 uint32_t bi)
{
	if (ai == UINT32_MAX || bi == UINT32_MAX)
		return 0;
	const struct json_node *x = json_node(da, ai), *y = json_node(db, bi);
	if (x->type != JSON_STRING || y->type != JSON_STRING)
		return 0;
	const uint8_t *p = da->text + x->off, *q = db->text + y->off;
	size_t n = x->len < y->len ? x->len : y->len, k = 0;
	while (k < n && p[k] == q[k])
		k++;
	if (k < DIFF_VAL_MAX / 2)
		return 0;
	k -= 32;
	while (k < n && (p[k] & 0xc0) == 0x80)
		k++;
	return k;
}

/* A string from byte @p from of its text: "...rest", cut as render() cuts. */
static void render_from(const struct json_doc *d, uint32_t i, size_t from, struct dbuf *b)
{
	const struct json_node *n = json_node(d, i);
	size_t lim = b->len + DIFF_VAL_MAX - 8;
	dbuf_puts(b, "\"...");
	if (!render_cut(b, d->text + n->off + from, n->len - from, lim))
		dbuf_putc(b, '"');
}

static void json_finding(struct diff_engine *e, uint8_t kind, uint32_t ai, uint32_t bi)
{
	struct diff_finding *f = add_finding(e, kind);
	if (!f)
		return;
	build_loc(e, f->loc, f->iloc, sizeof(f->loc));
	struct dbuf *s = &e->scratch;
	dbuf_reset(s);
	size_t from = str_window(&e->ja, ai, &e->jb, bi);
	if (from)
		render_from(&e->ja, ai, from, s);
	else if (ai != UINT32_MAX)
		render(&e->ja, ai, s, 0);
	size_t la = s->len;
	if (from)
		render_from(&e->jb, bi, from, s);
	else if (bi != UINT32_MAX)
		render(&e->jb, bi, s, 0);
	const char *base = s->data ? (const char *)s->data : "";
	copy_val(f->pval, base, la);
	copy_val(f->cval, base + la, s->len - la);
	/* judged on the whole values (a rendering may be cut), once */
	f->vol = !e->p.no_volatile && ai != UINT32_MAX && bi != UINT32_MAX &&
		 node_volatile(&e->ja, ai) && node_volatile(&e->jb, bi);
}

static const struct noise_rule *path_rule(struct diff_engine *e, enum noise_kind kind)
{
	const struct diff_ruleset *rs = e->rs;
	if (!rs || !rs->has_path_rules)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		const struct noise_rule *r = rs->v[i];
		if (r->kind == kind && noise_path_match(&r->path, e->pos, e->npos)) {
			if (rs->hits)
				rs->hits[r - rs->all->v]++;
			return r;
		}
	}
	return NULL;
}

static int type_class(uint8_t t)
{
	return t == JSON_TRUE ? JSON_FALSE : t;
}

static double num(const struct json_doc *d, const struct json_node *n)
{
	char buf[64];
	size_t l = n->len < sizeof(buf) - 1 ? n->len : sizeof(buf) - 1;
	memcpy(buf, d->text + n->off, l);
	buf[l] = '\0';
	return strtod(buf, NULL);
}

/*
 * @p b[0..nb) is @p a[0..na) with the replay target's authority where the
 * recorded one was (e->auth_c for e->auth_p): a server that names itself
 * in an absolute URL (a Location, a self link) names the address it was
 * reached at, which the replay changed, not the code. One pass, no copy.
 */
static bool auth_equal(const struct diff_engine *e, const uint8_t *a, size_t na, const uint8_t *b,
		       size_t nb)
{
	const struct store_slice *p = &e->auth_p, *c = &e->auth_c;
	if (!p->len || !c->len || (p->len == c->len && !memcmp(p->ptr, c->ptr, p->len)))
		return false;
	size_t i = 0, j = 0;
	bool swapped = false;
	while (i < na && j < nb) {
		if (nb - j >= c->len && na - i >= p->len && !memcmp(b + j, c->ptr, c->len) &&
		    !memcmp(a + i, p->ptr, p->len)) {
			i += p->len;
			j += c->len;
			swapped = true;
			continue;
		}
		if (a[i] != b[j])
			return false;
		i++;
		j++;
	}
	return swapped && i == na && j == nb;
}

static bool str_equal(struct diff_engine *e, const struct json_doc *da, const struct json_node *a,
		      const struct json_doc *db, const struct json_node *b)
{
	if (a->len == b->len && !memcmp(da->text + a->off, db->text + b->off, a->len))
		return true;
	if (!((a->esc | b->esc) & 1))
		return auth_equal(e, (const uint8_t *)da->text + a->off, a->len,
				  (const uint8_t *)db->text + b->off, b->len);
	/* escapes may spell the same text differently */
	struct dbuf *s = &e->scratch;
	dbuf_reset(s);
	if (dbuf_reserve(s, (size_t)a->len + b->len + 2))
		return false;
	long la = json_unescape(da->text + a->off, a->len, s->data, a->len);
	long lb = json_unescape(db->text + b->off, b->len, s->data + a->len, b->len);
	return la >= 0 && lb >= 0 &&
	       ((la == lb && !memcmp(s->data, s->data + a->len, (size_t)la)) ||
		auth_equal(e, s->data, (size_t)la, s->data + a->len, (size_t)lb));
}

static bool deep_equal(struct diff_engine *e, uint32_t ai, uint32_t bi)
{
	const struct json_node *a = json_node(&e->ja, ai), *b = json_node(&e->jb, bi);
	if (!e->budget)
		return false;
	e->budget--;
	if (type_class(a->type) != type_class(b->type))
		return false;
	switch (a->type) {
	case JSON_NULL:
		return true;
	case JSON_TRUE:
	case JSON_FALSE:
		return a->type == b->type;
	case JSON_NUMBER:
		return (a->len == b->len &&
			!memcmp(e->ja.text + a->off, e->jb.text + b->off, a->len)) ||
		       num(&e->ja, a) == num(&e->jb, b);
	case JSON_STRING:
		return str_equal(e, &e->ja, a, &e->jb, b);
	case JSON_ARRAY: {
		if (a->n != b->n)
			return false;
		for (uint32_t x = a->first, y = b->first; x && y;
		     x = json_node(&e->ja, x)->next, y = json_node(&e->jb, y)->next)
			if (!deep_equal(e, x, y))
				return false;
		return true;
	}
	case JSON_OBJECT: {
		if (a->n != b->n)
			return false;
		/* members usually come in the same order: look from where the
		 * previous one was found, then from the start */
		uint32_t cursor = b->first;
		for (uint32_t x = a->first; x; x = json_node(&e->ja, x)->next) {
			const struct json_node *xn = json_node(&e->ja, x);
			uint32_t found = 0;
			for (int pass = 0; pass < 2 && !found; pass++) {
				for (uint32_t y = pass ? b->first : cursor; y && !found;
				     y = json_node(&e->jb, y)->next) {
					const struct json_node *yn = json_node(&e->jb, y);
					if (!e->budget)
						return false;
					e->budget--;
					if (xn->key_len == yn->key_len &&
					    !memcmp(e->ja.text + xn->key_off,
						    e->jb.text + yn->key_off, xn->key_len))
						found = y;
				}
			}
			if (!found || !deep_equal(e, x, found))
				return false;
			cursor = json_node(&e->jb, found)->next;
		}
		return true;
	}
	}
	return false;
}

static void jdiff(struct diff_engine *e, uint32_t ai, uint32_t bi);

static bool push(struct diff_engine *e, const struct noise_pos *p)
{
	if (e->npos >= sizeof(e->pos) / sizeof(e->pos[0]))
		return false;
	e->pos[e->npos++] = *p;
	return true;
}

static void diff_object(struct diff_engine *e, const struct json_node *a, const struct json_node *b)
{
	uint32_t cursor = b->first;
	for (uint32_t x = a->first; x; x = json_node(&e->ja, x)->next) {
		const struct json_node *xn = json_node(&e->ja, x);
		const uint8_t *k = e->ja.text + xn->key_off;
		uint32_t match = 0;
		/* members usually come in the same order: try the cursor first */
		for (uint32_t y = cursor, pass = 0; pass < 2; pass++, y = b->first) {
			for (; y; y = json_node(&e->jb, y)->next) {
				const struct json_node *yn = json_node(&e->jb, y);
				if (!e->budget)
					break;
				e->budget--;
				if (!e->mark[y] && yn->key_len == xn->key_len &&
				    !memcmp(e->jb.text + yn->key_off, k, xn->key_len)) {
					match = y;
					break;
				}
			}
			if (match || !e->budget)
				break;
		}
		struct noise_pos p = {.is_index = 0, .key = k, .key_len = xn->key_len};
		if (!push(e, &p))
			return;
		if (match) {
			e->mark[match] = 1;
			cursor = json_node(&e->jb, match)->next;
			jdiff(e, x, match);
		} else if (!path_rule(e, NOISE_IGNORE_PATH)) {
			json_finding(e, DIFF_K_MISSING, x, UINT32_MAX);
		}
		e->npos--;
	}
	for (uint32_t y = b->first; y; y = json_node(&e->jb, y)->next) {
		if (e->mark[y])
			continue;
		const struct json_node *yn = json_node(&e->jb, y);
		struct noise_pos p = {
		    .is_index = 0, .key = e->jb.text + yn->key_off, .key_len = yn->key_len};
		if (!push(e, &p))
			return;
		if (!path_rule(e, NOISE_IGNORE_PATH))
			json_finding(e, DIFF_K_EXTRA, UINT32_MAX, y);
		e->npos--;
	}
}

/* The key field's value of array element @p el, or 0. */
static uint32_t key_of(const struct json_doc *d, uint32_t el, const char *field, size_t flen)
{
	const struct json_node *n = json_node(d, el);
	if (n->type != JSON_OBJECT)
		return 0;
	for (uint32_t c = n->first; c; c = json_node(d, c)->next) {
		const struct json_node *cn = json_node(d, c);
		if (cn->key_len == flen && !memcmp(d->text + cn->key_off, field, flen))
			return cn->type < JSON_ARRAY ? c : 0;
	}
	return 0;
}

static void diff_aligned(struct diff_engine *e, uint32_t ai, uint32_t bi);
static void diff_positional(struct diff_engine *e, const struct json_node *a,
			    const struct json_node *b);

static void diff_array(struct diff_engine *e, uint32_t ai, uint32_t bi, const struct json_node *a,
		       const struct json_node *b)
{
	const struct noise_rule *unord = path_rule(e, NOISE_UNORDERED);
	const struct noise_rule *keyed = unord ? NULL : path_rule(e, NOISE_KEYED);
	if (keyed) {
		size_t flen = strlen(keyed->field);
		for (uint32_t x = a->first; x; x = json_node(&e->ja, x)->next) {
			uint32_t kx = key_of(&e->ja, x, keyed->field, flen);
			if (!kx)
				continue;
			const struct json_node *kn = json_node(&e->ja, kx);
			uint32_t match = 0;
			for (uint32_t y = b->first; y && e->budget;
			     y = json_node(&e->jb, y)->next) {
				e->budget--;
				uint32_t ky =
				    e->mark[y] ? 0 : key_of(&e->jb, y, keyed->field, flen);
				if (!ky)
					continue;
				const struct json_node *km = json_node(&e->jb, ky);
				if (km->type == kn->type && km->len == kn->len &&
				    !memcmp(e->jb.text + km->off, e->ja.text + kn->off, kn->len)) {
					match = y;
					break;
				}
			}
			struct noise_pos p = {.is_index = 1,
					      .index = UINT64_MAX,
					      .kfield = keyed->field,
					      .kval = e->ja.text + kn->off,
					      .kval_len = kn->len};
			if (!push(e, &p))
				return;
			if (match) {
				e->mark[match] = 1;
				jdiff(e, x, match);
			} else if (!path_rule(e, NOISE_IGNORE_PATH)) {
				json_finding(e, DIFF_K_MISSING, x, UINT32_MAX);
			}
			e->npos--;
		}
		for (uint32_t y = b->first; y; y = json_node(&e->jb, y)->next) {
			uint32_t ky = key_of(&e->jb, y, keyed->field, flen);
			if (e->mark[y] || !ky)
				continue;
			const struct json_node *km = json_node(&e->jb, ky);
			struct noise_pos p = {.is_index = 1,
					      .index = UINT64_MAX,
					      .kfield = keyed->field,
					      .kval = e->jb.text + km->off,
					      .kval_len = km->len};
			if (!push(e, &p))
				return;
			if (!path_rule(e, NOISE_IGNORE_PATH))
				json_finding(e, DIFF_K_EXTRA, UINT32_MAX, y);
			e->npos--;
		}
		/* elements without the key field fall through to the unordered pass */
	}
	if (unord || keyed) {
		struct noise_pos p = {.is_index = 1, .index = UINT64_MAX};
		if (!push(e, &p))
			return;
		bool ign = path_rule(e, NOISE_IGNORE_PATH) != NULL;
		size_t flen = keyed ? strlen(keyed->field) : 0;
		for (uint32_t x = a->first; x; x = json_node(&e->ja, x)->next) {
			if (keyed && key_of(&e->ja, x, keyed->field, flen))
				continue;
			uint32_t match = 0;
			for (uint32_t y = b->first; y && e->budget; y = json_node(&e->jb, y)->next)
				if (!e->mark[y] &&
				    (!keyed || !key_of(&e->jb, y, keyed->field, flen)) &&
				    deep_equal(e, x, y)) {
					match = y;
					break;
				}
			if (match)
				e->mark[match] = 1;
			else if (!ign)
				json_finding(e, DIFF_K_MISSING, x, UINT32_MAX);
		}
		for (uint32_t y = b->first; y; y = json_node(&e->jb, y)->next)
			if (!e->mark[y] && (!keyed || !key_of(&e->jb, y, keyed->field, flen)) &&
			    !ign)
				json_finding(e, DIFF_K_EXTRA, UINT32_MAX, y);
		e->npos--;
		return;
	}
	if (!e->grpc_paths)
		diff_aligned(e, ai, bi);
	else
		diff_positional(e, a, b);
}

/* Elements compared by position (gRPC repeated fields; arrays too long or
 * too costly to align). */
static void diff_positional(struct diff_engine *e, const struct json_node *a,
			    const struct json_node *b)
{
	uint32_t x = a->first, y = b->first;
	uint64_t i = 0;
	for (; x || y; i++) {
		struct noise_pos p = {.is_index = 1, .index = i};
		if (!push(e, &p))
			return;
		if (x && y)
			jdiff(e, x, y);
		else if (!path_rule(e, NOISE_IGNORE_PATH))
			json_finding(e, x ? DIFF_K_MISSING : DIFF_K_EXTRA, x ? x : UINT32_MAX,
				     y ? y : UINT32_MAX);
		e->npos--;
		if (x)
			x = json_node(&e->ja, x)->next;
		if (y)
			y = json_node(&e->jb, y)->next;
		if (e->nf >= e->p.max_findings && !(x && y)) {
			/* long tails of missing/extra elements: count, stop walking */
			for (; x || y; x = x ? json_node(&e->ja, x)->next : 0,
				       y = y ? json_node(&e->jb, y)->next : 0)
				e->dropped++;
		}
	}
}

/* Append the identities of @p n elements in order (@p el, of @p d) to @p s,
 * as a JSON array: key values as written, or element indexes (@p idx). */
static void order_list(struct dbuf *s, const struct json_doc *d, const uint32_t *el, uint32_t n,
		       const struct diff_alignment *al, const uint32_t *idx)
{
	size_t start = s->len;
	dbuf_putc(s, '[');
	for (uint32_t i = 0; i < n && s->len - start < DIFF_VAL_MAX; i++) {
		if (i)
			dbuf_putc(s, ',');
		uint32_t k = 0;
		if (al->how == DIFF_ALIGN_KEY) {
			const struct json_node *o = json_node(d, el[i]);
			for (uint32_t c = o->first; c && !k; c = json_node(d, c)->next) {
				const struct json_node *cn = json_node(d, c);
				if (cn->key_len == al->kfield_len &&
				    !memcmp(d->text + cn->key_off, al->kfield, al->kfield_len))
					k = c;
			}
		}
		if (k) {
			render(d, k, s, 0);
		} else {
			char num[24];
			int l = snprintf(num, sizeof(num), "%u", idx ? idx[i] : i);
			dbuf_append(s, num, (size_t)l);
		}
	}
	dbuf_putc(s, ']');
}

/* One order_changed finding at the array: primary order, candidate order. */
static void order_finding(struct diff_engine *e, const struct diff_alignment *al, uint32_t pre)
{
	struct diff_finding *f = add_finding(e, DIFF_K_ORDER);
	if (!f)
		return;
	build_loc(e, f->loc, f->iloc, sizeof(f->loc));
	struct dbuf *s = &e->scratch;
	dbuf_reset(s);
	/* the matched elements only: primary order, then the same ones in the
	 * candidate's order (by content: as primary indexes) */
	uint32_t n = 0;
	bool key = al->how == DIFF_ALIGN_KEY;
	for (uint32_t i = 0; i < al->na; i++)
		if (al->ma[i])
			al->tmp[n++] = key ? al->ea[i] : pre + i;
	order_list(s, &e->ja, al->tmp, n, al, key ? NULL : al->tmp);
	size_t la = s->len;
	n = 0;
	for (uint32_t j = 0; j < al->nb; j++)
		if (al->mb[j])
			al->tmp[n++] = key ? al->ea[al->mb[j] - 1] : pre + al->mb[j] - 1;
	order_list(s, &e->ja, al->tmp, n, al, key ? NULL : al->tmp);
	const char *base = s->data ? (const char *)s->data : "";
	copy_val(f->pval, base, la < DIFF_VAL_MAX ? la : DIFF_VAL_MAX);
	copy_val(f->cval, base + la, s->len - la < DIFF_VAL_MAX ? s->len - la : DIFF_VAL_MAX);
}

/*
 * An array without a rule: elements aligned by identity, content or
 * position (diff_align.h), then matched pairs compared, the rest missing
 * or extra, and one order_changed when matched elements moved.
 */
static void diff_aligned(struct diff_engine *e, uint32_t ai, uint32_t bi)
{
	const struct json_node *a = json_node(&e->ja, ai), *b = json_node(&e->jb, bi);
	size_t n = (size_t)a->n + b->n;
	uint32_t stk[5 * 24];
	uint32_t *mem = n <= 24 ? stk : mem_alloc(5 * n * sizeof(uint32_t));
	if (!mem) {
		diff_positional(e, a, b);
		return;
	}
	uint32_t *ea = mem, *eb = mem + a->n, na = 0, nb = 0;
	for (uint32_t x = a->first; x; x = json_node(&e->ja, x)->next)
		ea[na++] = x;
	for (uint32_t y = b->first; y; y = json_node(&e->jb, y)->next)
		eb[nb++] = y;
	/* elements equal in place at both ends need no alignment (the usual
	 * case: most of a list unchanged); only the middle is aligned */
	uint32_t pre = 0, suf = 0;
	while (pre < na && pre < nb && deep_equal(e, ea[pre], eb[pre]))
		pre++;
	while (suf < na - pre && suf < nb - pre &&
	       deep_equal(e, ea[na - 1 - suf], eb[nb - 1 - suf]))
		suf++;
	if (pre == na && pre == nb)
		goto out;
	struct diff_alignment al = {.ea = ea + pre,
				    .eb = eb + pre,
				    .na = na - pre - suf,
				    .nb = nb - pre - suf,
				    .ma = mem + n,
				    .mb = mem + n + a->n,
				    .tmp = mem + 2 * n};
	memset(al.ma, 0, al.na * sizeof(uint32_t));
	memset(al.mb, 0, al.nb * sizeof(uint32_t));
	if (diff_align(&al, &e->ja, &e->jb, &e->budget)) {
		diff_positional(e, a, b);
		goto out;
	}
	if (al.moved && !path_rule(e, NOISE_IGNORE_PATH))
		order_finding(e, &al, pre);
	for (uint32_t i = 0; i < al.na; i++) {
		if (e->nf >= e->p.max_findings && !al.ma[i]) {
			e->dropped++;
			continue;
		}
		struct noise_pos p = {.is_index = 1, .index = pre + i};
		if (!push(e, &p))
			goto out;
		if (al.ma[i])
			jdiff(e, al.ea[i], al.eb[al.ma[i] - 1]);
		else if (!path_rule(e, NOISE_IGNORE_PATH))
			json_finding(e, DIFF_K_MISSING, al.ea[i], UINT32_MAX);
		e->npos--;
	}
	for (uint32_t j = 0; j < al.nb; j++) {
		if (al.mb[j])
			continue;
		if (e->nf >= e->p.max_findings) {
			e->dropped++;
			continue;
		}
		struct noise_pos p = {.is_index = 1, .index = pre + j};
		if (!push(e, &p))
			goto out;
		if (!path_rule(e, NOISE_IGNORE_PATH))
			json_finding(e, DIFF_K_EXTRA, UINT32_MAX, al.eb[j]);
		e->npos--;
	}
out:
	if (mem != stk)
		mem_free(mem);
}

static void jdiff(struct diff_engine *e, uint32_t ai, uint32_t bi)
{
	const struct json_node *a = json_node(&e->ja, ai), *b = json_node(&e->jb, bi);
	if (!e->budget)
		return;
	e->budget--;
	if (e->rs && e->rs->has_path_rules && path_rule(e, NOISE_IGNORE_PATH))
		return;
	if (type_class(a->type) != type_class(b->type)) {
		json_finding(e, DIFF_K_TYPE, ai, bi);
		return;
	}
	switch (a->type) {
	case JSON_NULL:
		return;
	case JSON_TRUE:
	case JSON_FALSE:
		if (a->type != b->type)
			json_finding(e, DIFF_K_VALUE, ai, bi);
		return;
	case JSON_NUMBER: {
		if (a->len == b->len && !memcmp(e->ja.text + a->off, e->jb.text + b->off, a->len))
			return;
		double x = num(&e->ja, a), y = num(&e->jb, b);
		if (x == y)
			return;
		const struct noise_rule *t = path_rule(e, NOISE_TOLERANCE);
		if (t) {
			double lim = t->tol_rel ? t->tol * fmax(fabs(x), fabs(y)) : t->tol;
			if (fabs(x - y) <= lim)
				return;
		}
		json_finding(e, DIFF_K_VALUE, ai, bi);
		return;
	}
	case JSON_STRING:
		if (!str_equal(e, &e->ja, a, &e->jb, b))
			json_finding(e, DIFF_K_VALUE, ai, bi);
		return;
	case JSON_OBJECT:
		diff_object(e, a, b);
		return;
	case JSON_ARRAY:
		diff_array(e, ai, bi, a, b);
		return;
	}
}

static int diff_json_docs(struct diff_engine *e)
{
	if (e->mark_cap < e->jb.n_nodes) {
		size_t ncap = e->jb.n_nodes < 1024 ? 1024 : e->jb.n_nodes;
		uint8_t *m = mem_realloc(e->mark, ncap);
		if (!m)
			return -ENOMEM;
		e->mark = m;
		e->mark_cap = ncap;
	}
	memset(e->mark, 0, e->jb.n_nodes);
	e->npos = 0;
	e->budget = DIFF_BUDGET;
	jdiff(e, 0, 0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Text and binary                                                     */
/* ------------------------------------------------------------------ */

static const uint8_t *line_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl + 1 : end;
}

static size_t count_lines(const uint8_t *p, const uint8_t *end)
{
	size_t n = 0;
	while (p < end) {
		p = line_end(p, end);
		n++;
	}
	return n;
}

/* Start of line @p k (0-based) of [p, end). */
static const uint8_t *nth_line(const uint8_t *p, const uint8_t *end, size_t k)
{
	while (k-- && p < end)
		p = line_end(p, end);
	return p;
}

static void hunk(struct dbuf *o, const uint8_t *t, const uint8_t *end, size_t from, size_t to,
		 size_t nlines, char sign)
{
	size_t c0 = from > DIFF_TEXT_CONTEXT ? from - DIFF_TEXT_CONTEXT : 0;
	size_t c1 = to + DIFF_TEXT_CONTEXT < nlines ? to + DIFF_TEXT_CONTEXT : nlines;
	dbuf_printf(o, "@@ line %zu @@\n", from + 1);
	const uint8_t *p = nth_line(t, end, c0);
	size_t shown = 0;
	for (size_t k = c0; k < c1 && p < end; k++) {
		const uint8_t *le = line_end(p, end);
		bool changed = k >= from && k < to;
		if (changed && shown >= DIFF_TEXT_LINES) {
			if (shown++ == DIFF_TEXT_LINES)
				dbuf_printf(o, "%c ... (%zu more lines)\n", sign,
					    to - from - DIFF_TEXT_LINES);
			p = le;
			continue;
		}
		if (changed)
			shown++;
		dbuf_putc(o, changed ? (uint8_t)sign : ' ');
		dbuf_putc(o, ' ');
		size_t n = (size_t)(le - p);
		if (n > 200)
			n = 200;
		dbuf_append(o, p, n);
		if (!n || p[n - 1] != '\n')
			dbuf_putc(o, '\n');
		p = le;
	}
}

/* Lines @p la and @p lb (line number @p line, 1-based) differ: word by word
 * when some of their words changed, else as whole lines. */
static void text_line(struct diff_engine *e, size_t line, const uint8_t *la, size_t na,
		      const uint8_t *lb, size_t nb)
{
	while (na && (la[na - 1] == '\n' || la[na - 1] == '\r'))
		na--;
	while (nb && (lb[nb - 1] == '\n' || lb[nb - 1] == '\r'))
		nb--;
	struct tok ta[DIFF_MAX_TOKENS], tb[DIFF_MAX_TOKENS];
	bool dif[DIFF_MAX_TOKENS];
	size_t nt = 0;
	if (word_diff(la, na, lb, nb, ta, tb, dif, &nt)) {
		for (size_t k = 0, w = 0; k < nt; k++) {
			if (!ta[k].word)
				continue;
			w++;
			if (!dif[k])
				continue;
			struct diff_finding *f = add_finding(e, DIFF_K_TEXT);
			if (!f)
				return;
			snprintf(f->loc, sizeof(f->loc), "body:text[%zu][%zu]", line, w);
			finding_vals(e, f, la + ta[k].off, ta[k].len, lb + tb[k].off, tb[k].len);
			copy_val(f->pval, la, na);
			copy_val(f->cval, lb, nb);
		}
		return;
	}
	struct diff_finding *f = add_finding(e, DIFF_K_TEXT);
	if (!f)
		return;
	snprintf(f->loc, sizeof(f->loc), "body:text[%zu]", line);
	finding_vals(e, f, la, na, lb, nb);
}

static void diff_text(struct diff_engine *e, const uint8_t *a, size_t alen, const uint8_t *b,
		      size_t blen)
{
	const uint8_t *ae = a + alen, *be = b + blen;
	/* common prefix, in whole lines */
	const uint8_t *pa = a, *pb = b;
	size_t pre = 0;
	while (pa < ae && pb < be) {
		const uint8_t *la = line_end(pa, ae), *lb = line_end(pb, be);
		if (la - pa != lb - pb || memcmp(pa, pb, (size_t)(la - pa)))
			break;
		pa = la, pb = lb, pre++;
	}
	if (pa == ae && pb == be)
		return;
	/* common suffix, in whole lines, not overlapping the prefix */
	size_t na = count_lines(a, ae), nb = count_lines(b, be);
	size_t suf = 0;
	const uint8_t *sa = ae, *sb = be;
	while (na - suf > pre && nb - suf > pre) {
		const uint8_t *qa = nth_line(a, ae, na - suf - 1),
			      *qb = nth_line(b, be, nb - suf - 1);
		if (sa - qa != sb - qb || memcmp(qa, qb, (size_t)(sa - qa)))
			break;
		sa = qa, sb = qb, suf++;
		if (suf > 4096)
			break; /* bounded: the hunk just gets longer */
	}
	/* Lines changed in place (as many on both sides, a few): line by line,
	 * word by word within each; otherwise one hunk for the region. */
	size_t ra = na - suf - pre, rb = nb - suf - pre;
	if (ra == rb && ra && ra <= DIFF_TEXT_LINE_FINDINGS) {
		for (size_t k = 0; k < ra; k++) {
			const uint8_t *xa = pa, *xb = pb;
			pa = line_end(pa, ae);
			pb = line_end(pb, be);
			if (pa - xa == pb - xb && !memcmp(xa, xb, (size_t)(pa - xa)))
				continue;
			text_line(e, pre + k + 1, xa, (size_t)(pa - xa), xb, (size_t)(pb - xb));
		}
		return;
	}
	struct diff_finding *f = add_finding(e, DIFF_K_TEXT);
	if (!f)
		return;
	snprintf(f->loc, sizeof(f->loc), "body:text");
	struct dbuf *s = &e->scratch;
	dbuf_reset(s);
	hunk(s, a, ae, pre, na - suf, na, '-');
	size_t l1 = s->len;
	hunk(s, b, be, pre, nb - suf, nb, '+');
	const char *base = s->data ? (const char *)s->data : "";
	copy_val(f->pval, base, l1);
	copy_val(f->cval, base + l1, s->len - l1);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void diff_binary(struct diff_engine *e, const uint8_t *a, size_t alen, const uint8_t *b,
			size_t blen)
{
	struct diff_finding *f = add_finding(e, DIFF_K_BINARY);
	if (!f)
		return;
	snprintf(f->loc, sizeof(f->loc), "body:binary");
	snprintf(f->pval, sizeof(f->pval), "%zu bytes, fnv1a64 %016llx", alen,
		 (unsigned long long)fnv1a(a, alen));
	snprintf(f->cval, sizeof(f->cval), "%zu bytes, fnv1a64 %016llx", blen,
		 (unsigned long long)fnv1a(b, blen));
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */
/* ------------------------------------------------------------------ */

static bool ct_is(const char *ct, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && strncasecmp(ct, lit, l) == 0;
}

/* The media type without parameters, e.g. "application/json". */
static size_t media_len(const char *ct, size_t n)
{
	size_t i = 0;
	while (i < n && ct[i] != ';' && ct[i] != ' ')
		i++;
	return i;
}

static bool is_json_type(const char *ct, size_t n)
{
	n = media_len(ct, n);
	return (n == 16 && ct_is(ct, n, "application/json")) ||
	       (n == 9 && ct_is(ct, n, "text/json")) ||
	       (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

static bool is_text_type(const char *ct, size_t n)
{
	n = media_len(ct, n);
	return ct_is(ct, n, "text/") || ct_is(ct, n, "application/xml") ||
	       ct_is(ct, n, "application/javascript") ||
	       ct_is(ct, n, "application/x-www-form-urlencoded") ||
	       (n > 4 && !strncasecmp(ct + n - 4, "+xml", 4));
}

static bool looks_json(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
		i++;
	return i < n && (p[i] == '{' || p[i] == '[');
}

static bool looks_text(const uint8_t *p, size_t n)
{
	return !memchr(p, 0, n) && jsonw_utf8_valid(p, n);
}

static int mark_one(void *arg, size_t so, size_t eo)
{
	memset((uint8_t *)arg + so, 1, eo - so);
	return 0;
}

/*
 * Replace `mask body` matches in @p in with "<masked>" into @p out. Every
 * rule runs on the original text and marks the bytes it matches; each run
 * of marked bytes becomes one "<masked>". Masking never feeds on its own
 * output, so rules cannot multiply the text (the result is under 4.5x the
 * input), and adjacent matches (of one rule or several) are one mask.
 */
static int mask_body(struct diff_engine *e, const uint8_t *in, size_t n, struct dbuf *out)
{
	const struct diff_ruleset *rs = e->rs;
	dbuf_reset(out);
	dbuf_reset(&e->tmp);
	dbuf_reset(&e->marks);
	int rc = dbuf_append(&e->tmp, in, n); /* a NUL-terminated copy for regexec */
	if (!rc)
		rc = dbuf_reserve(&e->marks, n);
	if (rc)
		return rc;
	uint8_t *marks = e->marks.data;
	if (n)
		memset(marks, 0, n);
	bool any = false;
	for (size_t i = 0; i < rs->n; i++) {
		const struct noise_rule *r = rs->v[i];
		if (r->kind != NOISE_MASK_BODY)
			continue;
		rc = each_match(r, e->tmp.data, n, mark_one, marks);
		if (rc < 0)
			return rc;
		if (!rc)
			continue;
		any = true;
		if (rs->hits)
			rs->hits[r - rs->all->v]++;
	}
	if (!any)
		return dbuf_append(out, in, n);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		if (marks[i]) {
			while (j < n && marks[j])
				j++;
			rc = dbuf_puts(out, "<masked>");
		} else {
			while (j < n && !marks[j])
				j++;
			rc = dbuf_append(out, in + i, j - i);
		}
		if (rc)
			return rc;
		i = j;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* gRPC                                                                */
/* ------------------------------------------------------------------ */

/* A gRPC field (grpc-status, grpc-message): trailers first, then headers
 * (a Trailers-Only response carries them in its only header block). */
const struct store_header *diff_find_field(const struct store_message *m, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < m->n_trailers; i++)
		if (m->trailers[i].name.len == n &&
		    !strncasecmp((const char *)m->trailers[i].name.ptr, name, n))
			return &m->trailers[i];
	return diff_find_header(m, name);
}

/* A gRPC answer in one header block: grpc-status there, no trailers. */
static bool trailers_only(const struct store_message *m)
{
	return !m->n_trailers && diff_find_header(m, "grpc-status");
}

static bool same_value(const struct store_header *x, const struct store_header *y);

/* The two answers' grpc-status codes differ (one may have none). */
static bool grpc_code_changed(const struct store_message *a, const struct store_message *b)
{
	const struct store_header *sa = diff_find_field(a, "grpc-status");
	const struct store_header *sb = diff_find_field(b, "grpc-status");
	return !same_value(sa, sb) || (!sa) != (!sb);
}

static bool is_grpc(const struct store_message *m)
{
	const struct store_header *ct = diff_find_header(m, "content-type");
	return (ct && pb_is_grpc_type((const char *)ct->value.ptr, ct->value.len)) ||
	       diff_find_field(m, "grpc-status");
}

static bool same_value(const struct store_header *x, const struct store_header *y)
{
	size_t xl = x ? x->value.len : 0, yl = y ? y->value.len : 0;
	return xl == yl && (!xl || !memcmp(x->value.ptr, y->value.ptr, xl));
}

/*
 * grpc-status and grpc-message compared like an HTTP status: a changed
 * code is one status_changed finding at "grpc-status" whose values carry
 * the messages ("5 item retired"); a message that changed alone is one at
 * "grpc-message". @return true when the code changed.
 */
bool diff_status_ignored(const struct diff_ruleset *rs, int from, int to)
{
	if (!rs || !rs->ignore_status)
		return false;
	for (size_t i = 0; i < rs->n; i++) {
		const struct noise_rule *r = rs->v[i];
		if (r->kind != NOISE_IGNORE_STATUS ||
		    (r->st_from >= 0 && (r->st_from != from || r->st_to != to)))
			continue;
		if (rs->hits)
			rs->hits[r - rs->all->v]++;
		return true;
	}
	return false;
}

/* A grpc-status value as a code; -1 when none or not a number. */
static int grpc_code(const struct store_header *h)
{
	if (!h || !h->value.len || h->value.len > 3)
		return -1;
	int v = 0;
	for (size_t i = 0; i < h->value.len; i++) {
		if (h->value.ptr[i] < '0' || h->value.ptr[i] > '9')
			return -1;
		v = v * 10 + (h->value.ptr[i] - '0');
	}
	return v;
}

static bool compare_grpc_status(struct diff_engine *e, const struct store_message *a,
				const struct store_message *b)
{
	const struct store_header *sa = diff_find_field(a, "grpc-status");
	const struct store_header *sb = diff_find_field(b, "grpc-status");
	const struct store_header *ma = diff_find_field(a, "grpc-message");
	const struct store_header *mb = diff_find_field(b, "grpc-message");
	bool code = grpc_code_changed(a, b);
	if (!code && same_value(ma, mb))
		return false;
	/* ignore status: gRPC's status is the call's (docs/diff-rules.md) */
	if (diff_status_ignored(e->rs, grpc_code(sa), grpc_code(sb)))
		return false;
	struct diff_finding *f = add_finding(e, DIFF_K_STATUS);
	if (!f)
		return code;
	snprintf(f->loc, sizeof(f->loc), "%s", code ? "grpc-status" : "grpc-message");
	const struct store_header *v[2][2] = {{sa, ma}, {sb, mb}};
	char txt[2][DIFF_VAL_MAX];
	for (int i = 0; i < 2; i++) {
		const struct store_header *st = v[i][0], *ms = v[i][1];
		if (!code)
			snprintf(txt[i], sizeof(txt[i]), "%.*s", ms ? (int)ms->value.len : 0,
				 ms ? (const char *)ms->value.ptr : "");
		else if (!st)
			snprintf(txt[i], sizeof(txt[i]), "(none)");
		else
			snprintf(txt[i], sizeof(txt[i]), "%.*s%s%.*s", (int)st->value.len,
				 (const char *)st->value.ptr, ms && ms->value.len ? " " : "",
				 ms ? (int)ms->value.len : 0,
				 ms ? (const char *)ms->value.ptr : "");
	}
	finding_vals(e, f, txt[0], strlen(txt[0]), txt[1], strlen(txt[1]));
	return code;
}

static int grpc_inflate(void *ctx, const char *enc, size_t enclen, const uint8_t *in, size_t n,
			struct dbuf *out)
{
	struct diff_engine *e = ctx;
	return diff_decode(enc, enclen, in, n, out, &e->tmp);
}

/* The Length-Prefixed-Messages of gRPC body @p b[0..n): how many
 * (*count) and the length of the first @p k of them (*len). false when
 * the framing is cut or bad (the decoder then says why). */
static bool grpc_frames(const uint8_t *b, size_t n, size_t k, size_t *count, size_t *len)
{
	size_t at = 0, c = 0;
	*len = 0;
	while (at < n) {
		if (n - at < 5 || b[at] > 1) /* the compressed flag is 0 or 1 */
			return false;
		uint32_t ml = (uint32_t)b[at + 1] << 24 | (uint32_t)b[at + 2] << 16 |
			      (uint32_t)b[at + 3] << 8 | b[at + 4];
		if (ml > n - at - 5)
			return false;
		at += 5 + (size_t)ml;
		if (++c == k)
			*len = at;
	}
	*count = c;
	if (c <= k)
		*len = n;
	return true;
}

/* Did answer @p m end with an error: a grpc-status other than 0, or none? */
static bool grpc_error(const struct store_message *m)
{
	const struct store_header *st = diff_find_field(m, "grpc-status");
	return !st || st->value.len != 1 || st->value.ptr[0] != '0';
}

/* gRPC bodies as JSON (analysis/pb.h) in e->pb_a / e->pb_b. 1 when both
 * decoded (then diffed), 0 when neither did, -errno. When the status code
 * changed (@p code), a stream the error ended early (or a stream where
 * the other side's error came) is compared over the messages both sides
 * have: the missing rest follows from the status change. Not when the
 * shorter side ended well: the longer one's extra messages came before
 * its error, no error cut the shorter one. Cut to one message, a stream
 * stays an array: its locations are those of the call's other pairs. */
static int grpc_body(struct diff_engine *e, const struct store_message *prim,
		     const struct store_message *cand, const uint8_t *a, size_t alen,
		     const uint8_t *b, size_t blen, bool code)
{
	size_t ca, cb, la, lb;
	bool array = false;
	if (code && grpc_frames(a, alen, SIZE_MAX, &ca, &la) &&
	    grpc_frames(b, blen, SIZE_MAX, &cb, &lb) && ca != cb &&
	    grpc_error(ca < cb ? prim : cand)) {
		size_t k = ca < cb ? ca : cb;
		if (!k)
			return 1; /* one side has no message: its status said it all */
		array = k == 1;
		grpc_frames(a, alen, k, &ca, &alen);
		grpc_frames(b, blen, k, &cb, &blen);
	}
	const struct pb_type *t = NULL;
	if (e->p.proto && e->req)
		t = pb_schema_method(e->p.proto, e->req->target.ptr, e->req->target.len, true);
	const struct store_message *m[2] = {prim, cand};
	const uint8_t *body[2] = {a, b};
	size_t len[2] = {alen, blen};
	struct dbuf *out[2] = {&e->pb_a, &e->pb_b};
	int rc[2];
	for (int i = 0; i < 2; i++) {
		const struct store_header *enc = diff_find_field(m[i], "grpc-encoding");
		dbuf_reset(out[i]);
		rc[i] = array ? dbuf_putc(out[i], '[') : 0;
		if (!rc[i])
			rc[i] = pb_grpc_to_json(
			    out[i], body[i], len[i], t, enc ? (const char *)enc->value.ptr : NULL,
			    enc ? enc->value.len : 0, grpc_inflate, e, &e->dec_a);
		if (!rc[i] && array)
			rc[i] = dbuf_putc(out[i], ']');
		if (rc[i] == -ENOMEM)
			return rc[i];
	}
	if (rc[0] || rc[1]) {
		if (rc[0] && rc[1])
			return 0;
		struct diff_finding *f = add_finding(e, DIFF_K_UNDECODABLE);
		if (f) {
			int bad = rc[0] ? 0 : 1, r = rc[bad];
			snprintf(f->loc, sizeof(f->loc), "body:grpc");
			const char *why = r == -ENOTSUP ? "compressed, unknown grpc-encoding"
					  : r == -E2BIG ? "over a cap"
							: "not protobuf messages";
			copy_val(bad ? f->pval : f->cval, "decodable", 9);
			copy_val(bad ? f->cval : f->pval, why, strlen(why));
		}
		return 1;
	}
	int ra = json_parse(&e->ja, e->pb_a.data ? e->pb_a.data : (const uint8_t *)"", e->pb_a.len);
	int rb = json_parse(&e->jb, e->pb_b.data ? e->pb_b.data : (const uint8_t *)"", e->pb_b.len);
	if (ra == -ENOMEM || rb == -ENOMEM)
		return -ENOMEM;
	if (ra || rb)
		return 0;
	e->grpc_paths = true;
	int r = diff_json_docs(e);
	e->grpc_paths = false;
	return r ? r : 1;
}

int diff_engine_body(struct diff_engine *e, const char *ct, size_t ctlen, const uint8_t *a,
		     size_t alen, const uint8_t *b, size_t blen)
{
	if (alen == blen && (!alen || !memcmp(a, b, alen)))
		return 0;
	if (e->rs && e->rs->has_body_masks) {
		int ra = mask_body(e, a, alen, &e->mask_a);
		int rb = ra ? ra : mask_body(e, b, blen, &e->mask_b);
		if (ra == -ENOMEM || rb == -ENOMEM)
			return -ENOMEM;
		if (!ra && !rb) {
			a = e->mask_a.data ? e->mask_a.data : (const uint8_t *)"";
			alen = e->mask_a.len;
			b = e->mask_b.data ? e->mask_b.data : (const uint8_t *)"";
			blen = e->mask_b.len;
			/* fast path: equal after masking */
			if (alen == blen && (!alen || !memcmp(a, b, alen)))
				return 0;
		}
	}
	bool json = ct && ctlen ? is_json_type(ct, ctlen) : false;
	if (!json && (!ct || !ctlen || ct_is(ct, ctlen, "text/plain")) && looks_json(a, alen))
		json = true;
	if (json) {
		int ra = json_parse(&e->ja, a, alen);
		int rb = json_parse(&e->jb, b, blen);
		if (ra == -ENOMEM || rb == -ENOMEM)
			return -ENOMEM;
		if (!ra && !rb)
			return diff_json_docs(e);
		if ((ra == 0) != (rb == 0) && ra != -E2BIG && rb != -E2BIG) {
			struct diff_finding *f = add_finding(e, DIFF_K_NOT_JSON);
			if (f) {
				snprintf(f->loc, sizeof(f->loc), "body:$");
				const struct json_doc *bad = ra ? &e->ja : &e->jb;
				char msg[DIFF_VAL_MAX];
				/* a 304 or 204 has no content (RFC 9110 §15.4.5,
				 * §15.3.5): no body, not a broken one */
				if (!(ra ? alen : blen))
					snprintf(msg, sizeof(msg), "no body");
				else
					snprintf(msg, sizeof(msg), "invalid JSON: %s at byte %zu",
						 bad->err_msg, bad->err_off);
				copy_val(ra ? f->pval : f->cval, msg, strlen(msg));
				copy_val(ra ? f->cval : f->pval, "valid JSON", 10);
			}
			return 0;
		}
		/* neither side is JSON (or too large): compare as text or binary */
	}
	bool text = ct && ctlen ? is_text_type(ct, ctlen) || json : false;
	if (text || (looks_text(a, alen) && looks_text(b, blen)))
		diff_text(e, a, alen, b, blen);
	else
		diff_binary(e, a, alen, b, blen);
	return 0;
}

int diff_engine_compare(struct diff_engine *e, const struct diff_ruleset *rs,
			const struct store_message *prim, const struct store_message *cand)
{
	e->nf = 0;
	e->rs = rs;
	if (prim->status != cand->status && !diff_status_ignored(rs, prim->status, cand->status)) {
		struct diff_finding *f = add_finding(e, DIFF_K_STATUS);
		if (f) {
			snprintf(f->loc, sizeof(f->loc), "status");
			snprintf(f->pval, sizeof(f->pval), "%u", prim->status);
			snprintf(f->cval, sizeof(f->cval), "%u", cand->status);
		}
	}
	bool grpc = is_grpc(prim) || is_grpc(cand);
	/* a Trailers-Only answer has no message, whatever its code: what it
	 * lacks by the grammar is no difference (compare_headers); bit 0 the
	 * primary, bit 1 the candidate */
	e->grpc_trailers_only =
	    grpc ? (uint8_t)(trailers_only(prim) | trailers_only(cand) << 1) : 0;
	compare_headers(e, prim, cand);
	bool grpc_code = grpc && compare_grpc_status(e, prim, cand);

	const uint8_t *a = prim->body.ptr ? prim->body.ptr : (const uint8_t *)"";
	const uint8_t *b = cand->body.ptr ? cand->body.ptr : (const uint8_t *)"";
	size_t alen = prim->body.len, blen = cand->body.len;
	const struct store_header *ea = diff_find_header(prim, "content-encoding");
	const struct store_header *eb = diff_find_header(cand, "content-encoding");
	bool same_enc = (!ea && !eb) || (ea && eb && ea->value.len == eb->value.len &&
					 !memcmp(ea->value.ptr, eb->value.ptr, ea->value.len));
	/* fast path: the same bytes under the same encoding */
	if (same_enc && alen == blen && (!alen || !memcmp(a, b, alen)))
		return 0;
	if (ea && alen) {
		int rc = diff_decode((const char *)ea->value.ptr, ea->value.len, a, alen, &e->dec_a,
				     &e->tmp);
		if (rc == -ENOMEM)
			return rc;
		if (!rc) {
			a = e->dec_a.data ? e->dec_a.data : (const uint8_t *)"";
			alen = e->dec_a.len;
		}
	}
	if (eb && blen) {
		int rc = diff_decode((const char *)eb->value.ptr, eb->value.len, b, blen, &e->dec_b,
				     &e->tmp);
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			struct diff_finding *f = add_finding(e, DIFF_K_UNDECODABLE);
			if (f) {
				snprintf(f->loc, sizeof(f->loc), "body:encoding");
				copy_val(f->pval, "decodable", 9);
				snprintf(f->cval, sizeof(f->cval), "%.*s: %s",
					 (int)(eb->value.len > 64 ? 64 : eb->value.len),
					 (const char *)eb->value.ptr,
					 rc == -E2BIG	  ? "larger than the body cap"
					 : rc == -ENOTSUP ? "unknown encoding"
							  : "corrupt data");
			}
			return 0;
		}
		b = e->dec_b.data ? e->dec_b.data : (const uint8_t *)"";
		blen = e->dec_b.len;
	}
	if (alen == blen && (!alen || !memcmp(a, b, alen)))
		return 0;
	if (grpc && grpc_code && (!alen || !blen))
		return 0; /* an error answer has no message: its status said it all */
	if (grpc) {
		int rc = grpc_body(e, prim, cand, a, alen, b, blen, grpc_code);
		if (rc)
			return rc < 0 ? rc : 0;
		/* neither side is protobuf: compared as bytes below */
	}
	const struct store_header *ct = diff_find_header(prim, "content-type");
	if (!ct)
		ct = diff_find_header(cand, "content-type");
	return diff_engine_body(e, ct ? (const char *)ct->value.ptr : NULL, ct ? ct->value.len : 0,
				a, alen, b, blen);
}
