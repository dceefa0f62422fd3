/* SPDX-License-Identifier: MIT */
/*
 * json - bounded recursive-descent JSON parser (see json.h).
 *
 * Grammar and string rules follow RFC 8259 exactly: no comments, no
 * trailing commas, no leading zeros, control characters rejected inside
 * strings, \u escapes checked (surrogates must pair), and raw bytes
 * checked as well-formed UTF-8 (RFC 3629). Recursion depth is capped by
 * json_limits.max_depth, so the C stack use is bounded too.
 */
#include "analysis/json.h"

#include <errno.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/mem.h"

#define JSON_DEF_MAX_BYTES (16u << 20)
#define JSON_DEF_MAX_DEPTH 64u
#define JSON_DEF_MAX_NODES (1u << 20)

struct parser {
	struct json_doc *d;
	const uint8_t *p;
	const uint8_t *end;
	uint32_t depth;
};

void json_doc_init(struct json_doc *d, const struct json_limits *lim)
{
	memset(d, 0, sizeof(*d));
	if (lim)
		d->lim = *lim;
	if (!d->lim.max_bytes)
		d->lim.max_bytes = JSON_DEF_MAX_BYTES;
	if (!d->lim.max_depth)
		d->lim.max_depth = JSON_DEF_MAX_DEPTH;
	if (!d->lim.max_nodes)
		d->lim.max_nodes = JSON_DEF_MAX_NODES;
	if (d->lim.max_bytes > UINT32_MAX)
		d->lim.max_bytes = UINT32_MAX;
	d->err_msg = "";
}

void json_doc_release(struct json_doc *d)
{
	mem_free(d->nodes);
	d->nodes = NULL;
	d->n_nodes = 0;
	d->cap_nodes = 0;
}

const char *json_type_name(unsigned type)
{
	switch (type) {
	case JSON_NULL:
		return "null";
	case JSON_FALSE:
	case JSON_TRUE:
		return "boolean";
	case JSON_NUMBER:
		return "number";
	case JSON_STRING:
		return "string";
	case JSON_ARRAY:
		return "array";
	case JSON_OBJECT:
		return "object";
	default:
		return "unknown";
	}
}

static int fail(struct parser *ps, int rc, const char *msg)
{
	ps->d->err_off = (size_t)(ps->p - ps->d->text);
	ps->d->err_msg = msg;
	return rc;
}

static inline int new_node(struct parser *ps, uint16_t type, uint32_t *idx)
{
	struct json_doc *d = ps->d;
	if (d->n_nodes >= d->lim.max_nodes)
		return fail(ps, -E2BIG, "too many values");
	if (d->n_nodes == d->cap_nodes) {
		uint32_t ncap = d->cap_nodes ? d->cap_nodes * 2 : 64;
		if (ncap > d->lim.max_nodes)
			ncap = d->lim.max_nodes;
		struct json_node *nn = mem_realloc(d->nodes, (size_t)ncap * sizeof(*nn));
		if (!nn)
			return fail(ps, -ENOMEM, "out of memory");
		d->nodes = nn;
		d->cap_nodes = ncap;
	}
	*idx = d->n_nodes++;
	d->nodes[*idx] = (struct json_node){.type = type};
	return 0;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
		ps->p++;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex4(const uint8_t *p, const uint8_t *end, unsigned *out)
{
	if (end - p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), 0 if bad. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	if ((size_t)(end - p) < n)
		return 0;
	return jsonw_utf8_valid(p, n) ? n : 0;
}

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when one of the 8 bytes of @p v is '"', '\\', < 0x20 or >= 0x80. */
static inline bool special8(uint64_t v)
{
	uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
	uint64_t ctl = (v - ONES * 0x20) & ~v;
	uint64_t isq = (q - ONES) & ~q, isb = (b - ONES) & ~b;
	return ((ctl | isq | isb) & HIGHS) || (v & HIGHS);
}

/* Scan a string after its opening quote; sets *esc when it has escapes. */
static int scan_string(struct parser *ps, uint32_t *off, uint32_t *len, uint8_t *esc)
{
	/* a local cursor: uint8_t stores may alias ps->p, which would force
	 * the compiler to reload and store it on every byte */
	const uint8_t *p = ps->p, *const end = ps->end, *const start = p;
	uint8_t e = 0;
	while (p < end) {
		/* plain ASCII runs 8 bytes at a time (SWAR; a false alarm only
		 * sends the next byte through the exact code below) */
		while (end - p >= 8) {
			uint64_t v;
			memcpy(&v, p, 8);
			if (special8(v))
				break;
			p += 8;
		}
		if (p >= end)
			break;
		uint8_t c = *p;
		if (c == '"') {
			*off = (uint32_t)(start - ps->d->text);
			*len = (uint32_t)(p - start);
			*esc = e;
			ps->p = p + 1;
			return 0;
		}
		if (c >= 0x20 && c != '\\' && c < 0x80) {
			p++;
			continue;
		}
		ps->p = p;
		if (c < 0x20)
			return fail(ps, -EBADMSG, "control character in string");
		if (c == '\\') {
			e = 1;
			if (end - p < 2)
				break;
			uint8_t x = p[1];
			if (x == 'u') {
				unsigned u;
				if (hex4(p + 2, end, &u))
					return fail(ps, -EBADMSG, "bad \\u escape");
				p += 6;
				ps->p = p;
				if (u >= 0xdc00 && u <= 0xdfff)
					return fail(ps, -EBADMSG, "lone low surrogate");
				if (u >= 0xd800 && u <= 0xdbff) {
					unsigned lo;
					if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
					    hex4(p + 2, end, &lo) || lo < 0xdc00 || lo > 0xdfff)
						return fail(ps, -EBADMSG, "unpaired surrogate");
					p += 6;
				}
				continue;
			}
			if (x == 0 || !strchr("\"\\/bfnrt", x))
				return fail(ps, -EBADMSG, "bad escape");
			p += 2;
			continue;
		}
		size_t n = utf8_seq(p, end);
		if (!n)
			return fail(ps, -EBADMSG, "invalid UTF-8 in string");
		p += n;
	}
	ps->p = p;
	return fail(ps, -EBADMSG, "unterminated string");
}

static int scan_number(struct parser *ps)
{
	const uint8_t *p = ps->p, *end = ps->end;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		goto bad;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		goto bad;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	ps->p = p;
	return 0;
bad:
	ps->p = p;
	return fail(ps, -EBADMSG, "bad number");
}

static int parse_value(struct parser *ps, uint32_t *out);

static int literal(struct parser *ps, const char *word, uint16_t type, uint32_t *out)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, -EBADMSG, "unexpected token");
	int rc = new_node(ps, type, out);
	if (rc)
		return rc;
	struct json_node *nd = &ps->d->nodes[*out];
	nd->off = (uint32_t)(ps->p - ps->d->text);
	nd->len = (uint32_t)n;
	ps->p += n;
	return 0;
}

static int parse_container(struct parser *ps, bool obj, uint32_t *out)
{
	int rc;
	if (++ps->depth > ps->d->lim.max_depth)
		return fail(ps, -E2BIG, "nesting too deep");
	rc = new_node(ps, obj ? JSON_OBJECT : JSON_ARRAY, out);
	if (rc)
		return rc;
	uint32_t self = *out, prev = 0, count = 0;
	uint8_t close = obj ? '}' : ']';
	ps->p++; /* the opening bracket */
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		uint32_t koff = 0, klen = 0;
		uint8_t kesc = 0;
		skip_ws(ps);
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, -EBADMSG, "expected member name");
			ps->p++;
			rc = scan_string(ps, &koff, &klen, &kesc);
			if (rc)
				return rc;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, -EBADMSG, "expected ':'");
			ps->p++;
			skip_ws(ps);
		}
		uint32_t child;
		rc = parse_value(ps, &child);
		if (rc)
			return rc;
		struct json_node *cn = &ps->d->nodes[child];
		cn->key_off = koff;
		cn->key_len = klen;
		cn->esc |= (uint16_t)(kesc << 1);
		if (prev)
			ps->d->nodes[prev].next = child;
		else
			ps->d->nodes[self].first = child;
		prev = child;
		count++;
		skip_ws(ps);
		if (ps->p >= ps->end)
			return fail(ps, -EBADMSG, "unterminated container");
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == close) {
			ps->p++;
			break;
		}
		return fail(ps, -EBADMSG, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	ps->d->nodes[self].n = count;
	ps->depth--;
	return 0;
}

static int parse_value(struct parser *ps, uint32_t *out)
{
	int rc;
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, -EBADMSG, "unexpected end of input");
	switch (*ps->p) {
	case '{':
		return parse_container(ps, true, out);
	case '[':
		return parse_container(ps, false, out);
	case '"': {
		uint32_t off, len;
		uint8_t esc;
		ps->p++;
		rc = scan_string(ps, &off, &len, &esc);
		if (rc)
			return rc;
		rc = new_node(ps, JSON_STRING, out);
		if (rc)
			return rc;
		struct json_node *n = &ps->d->nodes[*out];
		n->off = off;
		n->len = len;
		n->esc = esc;
		return 0;
	}
	case 't':
		return literal(ps, "true", JSON_TRUE, out);
	case 'f':
		return literal(ps, "false", JSON_FALSE, out);
	case 'n':
		return literal(ps, "null", JSON_NULL, out);
	default: {
		const uint8_t *start = ps->p;
		rc = scan_number(ps);
		if (rc)
			return rc;
		rc = new_node(ps, JSON_NUMBER, out);
		if (rc)
			return rc;
		struct json_node *n = &ps->d->nodes[*out];
		n->off = (uint32_t)(start - ps->d->text);
		n->len = (uint32_t)(ps->p - start);
		return 0;
	}
	}
}

int json_parse(struct json_doc *d, const uint8_t *text, size_t len)
{
	struct parser ps = {.d = d, .p = text, .end = text + len, .depth = 0};
	d->text = text;
	d->len = len;
	d->n_nodes = 0;
	d->err_off = 0;
	d->err_msg = "";
	if (len > d->lim.max_bytes)
		return fail(&ps, -E2BIG, "document too large");
	uint32_t root;
	int rc = parse_value(&ps, &root);
	if (rc) {
		d->n_nodes = 0;
		return rc;
	}
	skip_ws(&ps);
	if (ps.p != ps.end) {
		d->n_nodes = 0;
		return fail(&ps, -EBADMSG, "trailing data after the value");
	}
	return 0;
}

static size_t put_utf8(uint8_t *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

long json_unescape(const uint8_t *s, size_t len, uint8_t *out, size_t cap)
{
	size_t i = 0, o = 0;
	while (i < len) {
		uint8_t tmp[4];
		size_t n = 0;
		if (s[i] != '\\') {
			tmp[0] = s[i++];
			n = 1;
		} else {
			if (i + 1 >= len)
				return -EBADMSG;
			uint8_t e = s[i + 1];
			i += 2;
			switch (e) {
			case 'b':
				tmp[0] = '\b';
				n = 1;
				break;
			case 'f':
				tmp[0] = '\f';
				n = 1;
				break;
			case 'n':
				tmp[0] = '\n';
				n = 1;
				break;
			case 'r':
				tmp[0] = '\r';
				n = 1;
				break;
			case 't':
				tmp[0] = '\t';
				n = 1;
				break;
			case '"':
			case '\\':
			case '/':
				tmp[0] = e;
				n = 1;
				break;
			case 'u': {
				unsigned cp;
				if (hex4(s + i, s + len, &cp))
					return -EBADMSG;
				i += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					unsigned lo;
					if (i + 6 > len || s[i] != '\\' || s[i + 1] != 'u' ||
					    hex4(s + i + 2, s + len, &lo) || lo < 0xdc00 ||
					    lo > 0xdfff)
						return -EBADMSG;
					i += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -EBADMSG;
				}
				n = put_utf8(tmp, cp);
				break;
			}
			default:
				return -EBADMSG;
			}
		}
		if (o + n > cap)
			return -E2BIG;
		memcpy(out + o, tmp, n);
		o += n;
	}
	return (long)o;
}
