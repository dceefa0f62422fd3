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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
	mem_free(d->stk);
	d->stk = NULL;
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
		/* plain ASCII runs 16 or 8 bytes at a time (SSE2 where the
		 * target has it, else SWAR; a false alarm only sends the next
		 * byte through the exact code below) */
#ifdef __SSE2__
		while (end - p >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
			__m128i m = _mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
					 _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
			    /* signed: bytes >= 0x80 are negative, so < 0x20 catches both */
			    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
			int mask = _mm_movemask_epi8(m);
			if (mask) {
				p += __builtin_ctz((unsigned)mask);
				break;
			}
			p += 16;
		}
#endif
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

/*
 * The parser proper: iterative, with the open containers on a stack of at
 * most max_depth entries, and the cursor in a local variable so it stays
 * in a register (it is synced to ps.p only around the scan helpers).
 */
int json_parse(struct json_doc *d, const uint8_t *text, size_t len)
{
	struct parser ps = {.d = d, .p = text, .end = text + len, .depth = 0};
	const uint8_t *p = text, *const end = text + len;
	uint32_t depth = 0, pend_koff = 0, pend_klen = 0;
	uint16_t pend_kesc = 0;
	int rc;
	d->text = text;
	d->len = len;
	d->n_nodes = 0;
	d->err_off = 0;
	d->err_msg = "";
#define FAIL(code, msg)                                                                            \
	do {                                                                                       \
		ps.p = p;                                                                          \
		rc = fail(&ps, (code), (msg));                                                     \
		goto out;                                                                          \
	} while (0)
#define WS()                                                                                       \
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))                   \
	p++
	if (len > d->lim.max_bytes)
		FAIL(-E2BIG, "document too large");
	if (!d->stk) {
		d->stk = mem_alloc(2 * ((size_t)d->lim.max_depth + 1) * sizeof(uint32_t));
		if (!d->stk)
			FAIL(-ENOMEM, "out of memory");
	}
	uint32_t *cont = d->stk, *last = d->stk + d->lim.max_depth + 1;
	for (;;) {
		/* a value */
		uint32_t idx;
		WS();
		if (p >= end)
			FAIL(-EBADMSG, "unexpected end of input");
		uint8_t c = *p;
		uint16_t type;
		uint32_t off = 0, vlen = 0;
		uint16_t esc = 0;
		switch (c) {
		case '{':
		case '[':
			type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
			break;
		case '"': {
			uint8_t e;
			ps.p = p + 1;
			if ((rc = scan_string(&ps, &off, &vlen, &e)))
				goto out;
			p = ps.p;
			esc = e;
			type = JSON_STRING;
			break;
		}
		case 't':
		case 'f':
		case 'n': {
			const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
			size_t wl = c == 'f' ? 5 : 4;
			if ((size_t)(end - p) < wl || memcmp(p, w, wl))
				FAIL(-EBADMSG, "unexpected token");
			type = c == 't' ? JSON_TRUE : c == 'f' ? JSON_FALSE : JSON_NULL;
			off = (uint32_t)(p - text);
			vlen = (uint32_t)wl;
			p += wl;
			break;
		}
		default:
			ps.p = p;
			if ((rc = scan_number(&ps)))
				goto out;
			off = (uint32_t)(p - text);
			vlen = (uint32_t)(ps.p - p);
			p = ps.p;
			type = JSON_NUMBER;
			break;
		}
		if ((rc = new_node(&ps, type, &idx))) {
			ps.p = p;
			d->err_off = (size_t)(p - text);
			goto out;
		}
		struct json_node *nd = &d->nodes[idx];
		nd->off = off;
		nd->len = vlen;
		nd->esc = esc;
		if (depth) {
			uint32_t parent = cont[depth - 1];
			nd->key_off = pend_koff;
			nd->key_len = pend_klen;
			nd->esc |= pend_kesc;
			if (last[depth - 1])
				d->nodes[last[depth - 1]].next = idx;
			else
				d->nodes[parent].first = idx;
			last[depth - 1] = idx;
			d->nodes[parent].n++;
		}
		if (type == JSON_OBJECT || type == JSON_ARRAY) {
			if (depth >= d->lim.max_depth)
				FAIL(-E2BIG, "nesting too deep");
			cont[depth] = idx;
			last[depth] = 0;
			depth++;
			p++;
			WS();
			if (p < end && *p == (type == JSON_OBJECT ? '}' : ']')) {
				p++;
				depth--;
			} else if (type == JSON_OBJECT) {
				goto member;
			} else {
				continue;
			}
		}
		/* after a value: ',' or the end of containers */
		for (;;) {
			if (!depth) {
				WS();
				if (p != end)
					FAIL(-EBADMSG, "trailing data after the value");
				rc = 0;
				goto out;
			}
			WS();
			if (p >= end)
				FAIL(-EBADMSG, "unterminated container");
			bool obj = d->nodes[cont[depth - 1]].type == JSON_OBJECT;
			if (*p == ',') {
				p++;
				if (obj)
					goto member;
				break; /* next array element */
			}
			if (*p != (obj ? '}' : ']'))
				FAIL(-EBADMSG, obj ? "expected ',' or '}'" : "expected ',' or ']'");
			p++;
			depth--;
		}
		continue;
	member:
		/* an object member's name and ':' */
		WS();
		if (p >= end || *p != '"')
			FAIL(-EBADMSG, "expected member name");
		{
			uint8_t e;
			ps.p = p + 1;
			if ((rc = scan_string(&ps, &pend_koff, &pend_klen, &e)))
				goto out;
			p = ps.p;
			pend_kesc = (uint16_t)(e << 1);
		}
		WS();
		if (p >= end || *p != ':')
			FAIL(-EBADMSG, "expected ':'");
		p++;
	}
out:
	if (rc)
		d->n_nodes = 0;
	return rc;
#undef FAIL
#undef WS
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
		size_t n = 1; /* one output byte, except for a "u" escape */
		if (s[i] != '\\') {
			tmp[0] = s[i++];
		} else {
			if (i + 1 >= len)
				return -EBADMSG;
			uint8_t e = s[i + 1];
			i += 2;
			switch (e) {
			case 'b':
				tmp[0] = '\b';
				break;
			case 'f':
				tmp[0] = '\f';
				break;
			case 'n':
				tmp[0] = '\n';
				break;
			case 'r':
				tmp[0] = '\r';
				break;
			case 't':
				tmp[0] = '\t';
				break;
			case '"':
			case '\\':
			case '/':
				tmp[0] = e;
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
