/* SPDX-License-Identifier: MIT */
/*
 * har_read - HAR 1.2 entries to exchanges of wire bytes (iop_private.h).
 *
 * Each entry's request and response are written as the HTTP/1.x messages
 * they were: request line or status line, the headers in the file's order
 * and case, the body. HTTP/2 and /3 entries become HTTP/1.1 messages
 * (pseudo-header fields dropped, Host from :authority). The body framing
 * is made to fit the body the file holds (docs/interop.md "HAR in"): a
 * chunked message is sent as one chunk, a Content-Length that disagrees
 * with the body is set to it, a request body without one gets one, a
 * response without either gets one when it was HTTP/2 or /3 (its stream's
 * end ended it), else ends with its connection. HAR bodies are
 * decoded text (HAR 1.2 §content), so a Content-Encoding header is dropped
 * unless the file is dyetap's own (it holds the bytes as on the wire).
 * The `_dyetap` object dyetap writes on every entry (docs/interop.md)
 * restores what HAR cannot say: connection, addresses, nanosecond times,
 * the exact target, the full length of a truncated body.
 *
 * References: HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/),
 * RFC 9112 (message framing), RFC 3339 (startedDateTime), RFC 4648.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "analysis/json.h"
#include "common/dbuf.h"
#include "common/mem.h"
#include "interop/iop_private.h"

struct hr {
	struct json_doc d;
	struct iop_stats *st;
	struct dbuf s;	  /* a decoded string */
	struct dbuf body; /* a decoded body */
	struct dbuf msg;  /* the message being built */
	bool dyetap;	  /* the entry has a _dyetap object */
};

static uint32_t member(const struct json_doc *d, uint32_t obj, const char *key)
{
	if (!obj && d->nodes[0].type != JSON_OBJECT)
		return 0;
	const struct json_node *o = json_node(d, obj);
	if (o->type != JSON_OBJECT)
		return 0;
	size_t kl = strlen(key);
	for (uint32_t i = o->first; i; i = json_node(d, i)->next) {
		const struct json_node *m = json_node(d, i);
		if (m->key_len == kl && !(m->esc & 2) && !memcmp(d->text + m->key_off, key, kl))
			return i;
	}
	return 0;
}

static bool is_type(const struct json_doc *d, uint32_t i, unsigned t)
{
	return i && json_node(d, i)->type == t;
}

/* The string value of node @p i decoded into h->s (NUL-terminated); false when not a string. */
static bool str_of(struct hr *h, uint32_t i, struct dbuf *out)
{
	if (!is_type(&h->d, i, JSON_STRING))
		return false;
	const struct json_node *n = json_node(&h->d, i);
	dbuf_reset(out);
	if (dbuf_reserve(out, (size_t)n->len + 1) < 0)
		return false;
	long k = json_unescape(h->d.text + n->off, n->len, out->data, out->cap - 1);
	if (k < 0)
		return false;
	out->len = (size_t)k;
	out->data[k] = 0;
	return true;
}

static bool num_f(const struct json_doc *d, uint32_t i, double *out)
{
	if (!is_type(d, i, JSON_NUMBER))
		return false;
	const struct json_node *n = json_node(d, i);
	char tmp[64];
	if (n->len >= sizeof(tmp))
		return false;
	memcpy(tmp, d->text + n->off, n->len);
	tmp[n->len] = 0;
	char *end;
	*out = strtod(tmp, &end);
	return *end == 0 && isfinite(*out);
}

/* An integer written without fraction or exponent (exact beyond 2^53). */
static bool num_i64(const struct json_doc *d, uint32_t i, int64_t *out)
{
	if (!is_type(d, i, JSON_NUMBER))
		return false;
	const struct json_node *n = json_node(d, i);
	const uint8_t *p = d->text + n->off;
	size_t len = n->len, k = p[0] == '-';
	if (k == len || len - k > 19)
		return false;
	int64_t v = 0;
	for (; k < len; k++) {
		if (p[k] < '0' || p[k] > '9' || v > (INT64_MAX - (p[k] - '0')) / 10)
			return false;
		v = v * 10 + (p[k] - '0');
	}
	*out = p[0] == '-' ? -v : v;
	return true;
}

/* RFC 3339 date-time -> Unix-epoch ns. */
static bool parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 19)
		return false;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	const char *p = s + 19;
	int64_t frac = 0, scale = 1000000000;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++)
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5 || hh > 23 || mm > 59)
			return false;
		off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return false;
	}
	if (*p)
		return false;
	time_t t = timegm(&tm);
	int64_t secs = (int64_t)t - off;
	/* Nanoseconds since 1970 in 64 bits: years 1678 to 2261 (e.g. a year
	 * -999 would overflow). */
	if (secs <= INT64_MIN / 1000000000 || secs >= INT64_MAX / 1000000000)
		return false;
	*out = secs * 1000000000 + frac;
	return true;
}

static bool unsafe(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n' || p[i] == 0)
			return true;
	return false;
}

static int b64v(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decode base64 in place (RFC 4648, standard or URL alphabet, padding and
 * white space ignored). false on another character. */
static bool b64_decode(struct dbuf *b)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < b->len; i++) {
		uint8_t c = b->data[i];
		if (c == '=' || c == '\n' || c == '\r' || c == ' ')
			continue;
		int v = b64v(c);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			b->data[o++] = (uint8_t)(acc >> bits);
		}
	}
	b->len = o;
	return true;
}

/* "[v6]", "v4" or "v6" -> endpoint address; false when not an address. */
static bool parse_addr(const char *s, size_t n, uint8_t *ver, uint8_t addr[16])
{
	char tmp[64];
	if (n && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, tmp, addr) == 1) {
		*ver = 4;
		return true;
	}
	if (inet_pton(AF_INET6, tmp, addr) == 1) {
		*ver = 6;
		return true;
	}
	return false;
}

struct url {
	const char *host;
	size_t host_len;
	uint16_t port;
	const char *target; /* path and query, NUL-terminated in the url string */
	size_t target_len;
};

/* Split absolute URL @p u (NUL-terminated); false when it is not one. */
static bool parse_url(const char *u, struct url *out)
{
	const char *p = strstr(u, "://");
	if (!p)
		return false;
	bool tls = (size_t)(p - u) == 5 && !strncasecmp(u, "https", 5);
	const char *a = p + 3, *e = a;
	while (*e && *e != '/' && *e != '?' && *e != '#')
		e++;
	const char *at = memchr(a, '@', (size_t)(e - a));
	if (at)
		a = at + 1;
	const char *colon = NULL;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(e - a));
		if (!rb)
			return false;
		colon = rb + 1 < e && rb[1] == ':' ? rb + 1 : NULL;
		out->host_len = (size_t)(rb + 1 - a);
	} else {
		colon = memchr(a, ':', (size_t)(e - a));
		out->host_len = (size_t)((colon ? colon : e) - a);
	}
	out->host = a;
	out->port = tls ? 443 : 80;
	if (colon && colon + 1 < e) {
		unsigned v = 0;
		for (const char *q = colon + 1; q < e; q++) {
			if (*q < '0' || *q > '9' || (v = v * 10 + (unsigned)(*q - '0')) > 65535)
				return false;
		}
		out->port = (uint16_t)v;
	}
	const char *f = strchr(e, '#');
	out->target = e;
	out->target_len = f ? (size_t)(f - e) : strlen(e);
	return true;
}

/* Framing facts of a header list. */
struct framing {
	bool chunked, has_cl, conn_close, keep_alive;
	int64_t cl;
};

static bool has_token(const uint8_t *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= n; i++)
		if (!strncasecmp((const char *)v + i, tok, tl))
			return true;
	return false;
}

/* Write the headers of array @p arr to h->msg; -1 unsafe, -2 malformed. */
static int write_headers(struct hr *h, uint32_t arr, bool req, bool drop_encoding, bool no_body,
			 size_t body_len, bool *added_host, struct framing *fr,
			 struct dbuf *authority)
{
	memset(fr, 0, sizeof(*fr));
	bool has_host = false;
	struct dbuf name, val;
	dbuf_init(&name, 1u << 20);
	dbuf_init(&val, 64u << 20);
	int rc = 0;
	if (arr && !is_type(&h->d, arr, JSON_ARRAY))
		rc = -2;
	for (uint32_t i = arr && !rc ? json_node(&h->d, arr)->first : 0; i && !rc;
	     i = json_node(&h->d, i)->next) {
		if (!str_of(h, member(&h->d, i, "name"), &name) ||
		    !str_of(h, member(&h->d, i, "value"), &val)) {
			rc = -2;
			break;
		}
		if (!name.len || unsafe(name.data, name.len) || unsafe(val.data, val.len) ||
		    memchr(name.data, ':', name.len) != NULL) {
			if (name.len && name.data[0] == ':') { /* HTTP/2 pseudo-header */
				if (!strcmp((char *)name.data, ":authority") &&
				    !unsafe(val.data, val.len)) {
					dbuf_reset(authority);
					dbuf_append(authority, val.data, val.len);
				}
				continue;
			}
			rc = -1;
			break;
		}
		const char *nm = (const char *)name.data;
		if (!strcasecmp(nm, "host"))
			has_host = true;
		if (!strcasecmp(nm, "transfer-encoding") && has_token(val.data, val.len, "chunked"))
			fr->chunked = true;
		if (!strcasecmp(nm, "connection")) {
			fr->conn_close |= has_token(val.data, val.len, "close");
			fr->keep_alive |= has_token(val.data, val.len, "keep-alive");
		}
		if (!strcasecmp(nm, "content-encoding") && drop_encoding) {
			h->st->encoding_removed++;
			continue;
		}
		if (!strcasecmp(nm, "content-length") && !no_body) {
			char *end;
			long long v = strtoll((char *)val.data, &end, 10);
			if (fr->has_cl || *end || end == (char *)val.data || v < 0 ||
			    (uint64_t)v != body_len) {
				if (fr->has_cl) /* a second one: keep one */
					continue;
				fr->has_cl = true;
				fr->cl = (int64_t)body_len;
				h->st->length_set++;
				dbuf_printf(&h->msg, "%s: %zu\r\n", nm, body_len);
				continue;
			}
			fr->has_cl = true;
			fr->cl = v;
		}
		dbuf_append(&h->msg, name.data, name.len);
		dbuf_puts(&h->msg, ": ");
		dbuf_append(&h->msg, val.data, val.len);
		dbuf_puts(&h->msg, "\r\n");
	}
	*added_host = false;
	if (!rc && req && !has_host && authority->len) {
		dbuf_puts(&h->msg, "Host: ");
		dbuf_append(&h->msg, authority->data, authority->len);
		dbuf_puts(&h->msg, "\r\n");
		*added_host = true;
	}
	dbuf_release(&name);
	dbuf_release(&val);
	return rc;
}

/* The body of @p holder's text (postData or content) into h->body; false when malformed. */
static bool body_of(struct hr *h, uint32_t holder, bool req)
{
	dbuf_reset(&h->body);
	if (!holder)
		return true;
	uint32_t t = member(&h->d, holder, "text");
	if (t && !is_type(&h->d, t, JSON_NULL)) {
		if (!str_of(h, t, &h->body))
			return false;
		struct dbuf enc;
		dbuf_init(&enc, 256);
		bool b64 = false;
		if (str_of(h, member(&h->d, holder, "encoding"), &enc) ||
		    str_of(h, member(&h->d, holder, "_encoding"), &enc))
			b64 = !strcasecmp((char *)enc.data, "base64");
		dbuf_release(&enc);
		return !b64 || b64_decode(&h->body);
	}
	uint32_t params = req ? member(&h->d, holder, "params") : 0;
	if (is_type(&h->d, params, JSON_ARRAY)) {
		struct dbuf v;
		dbuf_init(&v, 64u << 20);
		bool first = true;
		for (uint32_t i = json_node(&h->d, params)->first; i;
		     i = json_node(&h->d, i)->next) {
			if (!str_of(h, member(&h->d, i, "name"), &v))
				continue;
			if (!first)
				dbuf_putc(&h->body, '&');
			first = false;
			dbuf_append(&h->body, v.data, v.len);
			if (str_of(h, member(&h->d, i, "value"), &v)) {
				dbuf_putc(&h->body, '=');
				dbuf_append(&h->body, v.data, v.len);
			}
		}
		dbuf_release(&v);
	}
	return dbuf_error(&h->body) == 0;
}

/* "HTTP/1.0" or "HTTP/1.1" as given, else HTTP/1.1 (counted). */
static const char *version_of(struct hr *h, uint32_t msg)
{
	if (str_of(h, member(&h->d, msg, "httpVersion"), &h->s)) {
		if (!strcasecmp((char *)h->s.data, "HTTP/1.0"))
			return "HTTP/1.0";
		if (!strcasecmp((char *)h->s.data, "HTTP/1.1"))
			return "HTTP/1.1";
	}
	h->st->version_changed++;
	return "HTTP/1.1";
}

/* Append the body with its framing; returns false when out of memory. */
static void frame_body(struct hr *h, const struct framing *fr, bool req, bool no_body,
		       bool *close_after)
{
	size_t n = h->body.len;
	if (no_body)
		return;
	if (fr->chunked) {
		if (n)
			dbuf_printf(&h->msg, "%zx\r\n", n);
		dbuf_append(&h->msg, h->body.data, n);
		dbuf_puts(&h->msg, n ? "\r\n0\r\n\r\n" : "0\r\n\r\n");
		return;
	}
	if (!fr->has_cl && !req)
		*close_after = true;
	dbuf_append(&h->msg, h->body.data, n);
}

/* Pad the body to @p full bytes (a body the writer truncated). */
static void pad_body(struct hr *h, int64_t full)
{
	if (full <= (int64_t)h->body.len || full - (int64_t)h->body.len > (int64_t)IOP_PAD_MAX)
		return;
	size_t add = (size_t)full - h->body.len;
	if (dbuf_reserve(&h->body, add) < 0)
		return;
	memset(h->body.data + h->body.len, 0, add);
	h->body.len += add;
	h->st->padded++;
}

/* The request of entry @p e into h->msg; 0, -1 unsafe, -2 malformed. */
static int request_bytes(struct hr *h, uint32_t e, uint32_t dy, struct url *u, char **method)
{
	uint32_t rq = member(&h->d, e, "request");
	if (!str_of(h, member(&h->d, rq, "method"), &h->s) || !h->s.len)
		return -2;
	if (unsafe(h->s.data, h->s.len) || memchr(h->s.data, ' ', h->s.len))
		return -1;
	*method = mem_strndup((char *)h->s.data, h->s.len);
	if (!*method)
		return -2;
	dbuf_reset(&h->msg);
	dbuf_append(&h->msg, h->s.data, h->s.len);
	dbuf_putc(&h->msg, ' ');
	struct dbuf url;
	dbuf_init(&url, 64u << 20);
	int rc = 0;
	if (str_of(h, member(&h->d, dy, "target"), &url)) {
		/* the exact request-target */
	} else if (!str_of(h, member(&h->d, rq, "url"), &url)) {
		rc = -2;
	}
	struct url tu;
	if (!rc) {
		if (!parse_url((char *)url.data, &tu)) {
			if (url.len && url.data[0] == '/' && member(&h->d, dy, "target"))
				memset(&tu, 0, sizeof(tu));
			else
				rc = -2;
			tu.target = (const char *)url.data;
			tu.target_len = url.len;
		}
	}
	const char *tgt = NULL;
	size_t tl = 0;
	if (!rc) {
		if (member(&h->d, dy, "target")) {
			tgt = (const char *)url.data;
			tl = url.len;
		} else {
			tgt = tu.target_len ? tu.target : "/";
			tl = tu.target_len ? tu.target_len : 1;
		}
		if (unsafe((const uint8_t *)tgt, tl) || memchr(tgt, ' ', tl))
			rc = -1;
	}
	if (!rc) {
		dbuf_append(&h->msg, tgt, tl);
		dbuf_putc(&h->msg, ' ');
		dbuf_puts(&h->msg, version_of(h, rq));
		dbuf_puts(&h->msg, "\r\n");
		/* the URL's host and port, for the server endpoint */
		if (str_of(h, member(&h->d, rq, "url"), &h->s) && parse_url((char *)h->s.data, u)) {
			/* u points into h->s, reused below: keep only the port and an address */
		} else {
			memset(u, 0, sizeof(*u));
		}
	}
	dbuf_release(&url);
	if (rc)
		return rc;
	uint32_t pd = member(&h->d, rq, "postData");
	if (!body_of(h, pd, true))
		return -2;
	int64_t full;
	if (h->dyetap && num_i64(&h->d, member(&h->d, rq, "bodySize"), &full))
		pad_body(h, full);
	struct framing fr;
	bool added_host;
	struct dbuf auth;
	dbuf_init(&auth, 1u << 16);
	rc = write_headers(h, member(&h->d, rq, "headers"), true, false, false, h->body.len,
			   &added_host, &fr, &auth);
	dbuf_release(&auth);
	if (rc)
		return rc;
	if (!fr.chunked && !fr.has_cl && h->body.len) {
		dbuf_printf(&h->msg, "Content-Length: %zu\r\n", h->body.len);
		h->st->length_set++;
	}
	dbuf_puts(&h->msg, "\r\n");
	bool dummy = false;
	frame_body(h, &fr, true, false, &dummy);
	return 0;
}

/* The response of entry @p e into h->msg: 1 made, 0 none, -1 unsafe, -2 malformed. */
static int response_bytes(struct hr *h, uint32_t e, const char *method, bool *close_after)
{
	uint32_t rs = member(&h->d, e, "response");
	int64_t status;
	if (!rs)
		return 0;
	if (!num_i64(&h->d, member(&h->d, rs, "status"), &status))
		return -2;
	if (status == 0)
		return 0; /* the browser got none (blocked, failed, aborted) */
	if (status < 100 || status > 999)
		return -2;
	dbuf_reset(&h->msg);
	/* an HTTP/2 or /3 answer ended with its stream: its body is whole, so
	 * it gets a Content-Length rather than ending its connection (the
	 * entries after it on that connection stay on it) */
	bool whole = str_of(h, member(&h->d, rs, "httpVersion"), &h->s) &&
		     (!strncasecmp((char *)h->s.data, "HTTP/2", 6) ||
		      !strncasecmp((char *)h->s.data, "HTTP/3", 6) ||
		      !strcasecmp((char *)h->s.data, "h2") || !strcasecmp((char *)h->s.data, "h3"));
	const char *ver = version_of(h, rs);
	dbuf_printf(&h->msg, "%s %d", ver, (int)status);
	if (str_of(h, member(&h->d, rs, "statusText"), &h->s) && h->s.len) {
		if (unsafe(h->s.data, h->s.len))
			return -1;
		dbuf_putc(&h->msg, ' ');
		dbuf_append(&h->msg, h->s.data, h->s.len);
	}
	dbuf_puts(&h->msg, "\r\n");
	uint32_t content = member(&h->d, rs, "content");
	if (!body_of(h, content, false))
		return -2;
	int64_t full;
	if (h->dyetap && num_i64(&h->d, member(&h->d, content, "size"), &full))
		pad_body(h, full);
	bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304 ||
		       !strcasecmp(method, "HEAD");
	struct framing fr;
	bool added_host;
	struct dbuf auth;
	dbuf_init(&auth, 1u << 16);
	int rc = write_headers(h, member(&h->d, rs, "headers"), false,
			       !h->dyetap && h->body.len && !no_body, no_body, h->body.len,
			       &added_host, &fr, &auth);
	dbuf_release(&auth);
	if (rc)
		return rc;
	if (whole && !no_body && !fr.chunked && !fr.has_cl) {
		dbuf_printf(&h->msg, "Content-Length: %zu\r\n", h->body.len);
		fr.has_cl = true;
		h->st->length_set++;
	}
	dbuf_puts(&h->msg, "\r\n");
	frame_body(h, &fr, false, no_body, close_after);
	if (fr.conn_close || (!strcmp(ver, "HTTP/1.0") && !fr.keep_alive))
		*close_after = true;
	return 1;
}

/* A copy of the message built (NULL when building it failed or out of memory). */
static uint8_t *detach(struct dbuf *b, size_t *len)
{
	if (dbuf_error(b))
		return NULL;
	uint8_t *p = mem_alloc(b->len ? b->len : 1);
	if (p && b->len)
		memcpy(p, b->data, b->len);
	*len = b->len;
	return p;
}

/* Endpoint @p addr_key / @p port_key of _dyetap; false when absent or bad. */
static bool dy_endpoint(struct hr *h, uint32_t dy, const char *addr_key, const char *port_key,
			uint8_t *ver, struct store_endpoint *ep)
{
	int64_t port;
	if (!str_of(h, member(&h->d, dy, addr_key), &h->s) ||
	    !num_i64(&h->d, member(&h->d, dy, port_key), &port) || port < 0 || port > 65535)
		return false;
	if (!parse_addr((char *)h->s.data, h->s.len, ver, ep->addr))
		return false;
	ep->port = (uint16_t)port;
	return true;
}

static int ms_ns(const struct json_doc *d, uint32_t timings, const char *k, int64_t *acc)
{
	double v;
	if (num_f(d, member(d, timings, k), &v) && v > 0 && v < 1e12)
		*acc += (int64_t)llround(v * 1e6);
	return 0;
}

/* One entry; 1 an exchange in @p x, 0 skipped (counted), -ENOMEM. */
static int entry(struct hr *h, uint32_t e, struct iop_xchg *x)
{
	memset(x, 0, sizeof(*x));
	uint32_t dy = member(&h->d, e, "_dyetap");
	h->dyetap = is_type(&h->d, dy, JSON_OBJECT);
	if (!h->dyetap)
		dy = 0;
	/* `dyetap cat --har` of a results file: an entry with a role is what a
	 * replay's target answered, not production traffic (as GoReplay's
	 * type 3 payloads); recorded, it would be replayed as a request again */
	if (dy && member(&h->d, dy, "role")) {
		h->st->har_replayed++;
		return 0;
	}
	struct url u;
	char *method = NULL;
	int rc = request_bytes(h, e, dy, &u, &method);
	if (rc == 0 && dbuf_error(&h->msg) == -E2BIG)
		rc = -2; /* headers and body over the cap */
	if (rc == 0) {
		x->req = detach(&h->msg, &x->req_len);
		rc = x->req ? response_bytes(h, e, method, &x->close_after) : -3;
		if (rc == 1 && dbuf_error(&h->msg) == -E2BIG)
			rc = -2;
		if (rc == 1) {
			x->has_resp = true;
			x->resp = detach(&h->msg, &x->resp_len);
			rc = x->resp ? 0 : -3;
		} else if (rc == 0) {
			h->st->har_no_response++;
		}
	}
	mem_free(method);
	if (rc == -3)
		return -ENOMEM;
	if (rc == -1 || rc == -2) {
		if (rc == -1)
			h->st->skipped_unsafe++;
		else
			h->st->skipped_malformed++;
		mem_free(x->req);
		mem_free(x->resp);
		memset(x, 0, sizeof(*x));
		return 0;
	}
	/* times */
	uint32_t ts = member(&h->d, dy, "ts_ns");
	bool have_ts = false;
	if (is_type(&h->d, ts, JSON_ARRAY) && json_node(&h->d, ts)->n == 4) {
		have_ts = true;
		uint32_t i = json_node(&h->d, ts)->first;
		for (int k = 0; k < 4; k++, i = json_node(&h->d, i)->next)
			have_ts &= num_i64(&h->d, i, &x->ts[k]);
	}
	if (!have_ts) {
		int64_t t0;
		if (!str_of(h, member(&h->d, e, "startedDateTime"), &h->s) ||
		    !parse_time((char *)h->s.data, &t0)) {
			h->st->skipped_malformed++;
			mem_free(x->req);
			mem_free(x->resp);
			memset(x, 0, sizeof(*x));
			return 0;
		}
		uint32_t tm = member(&h->d, e, "timings");
		int64_t pre = 0, send = 0, wait = 0, recv = 0;
		ms_ns(&h->d, tm, "blocked", &pre);
		ms_ns(&h->d, tm, "dns", &pre);
		ms_ns(&h->d, tm, "connect", &pre);
		ms_ns(&h->d, tm, "send", &send);
		ms_ns(&h->d, tm, "wait", &wait);
		ms_ns(&h->d, tm, "receive", &recv);
		x->ts[0] = t0 + pre;
		x->ts[1] = x->ts[0] + send;
		x->ts[2] = x->ts[1] + wait;
		x->ts[3] = x->ts[2] + recv;
	}
	if (!x->has_resp)
		x->ts[2] = x->ts[3] = 0;
	/* endpoints: _dyetap, else serverIPAddress or the URL's host, and the URL's port */
	uint8_t v1 = 4, v2 = 4;
	x->srv.port = u.port ? u.port : 80;
	if (dy_endpoint(h, dy, "server", "server_port", &v1, &x->srv)) {
		x->ip_version = v1;
		if (dy_endpoint(h, dy, "client", "client_port", &v2, &x->cli) && v2 == v1)
			x->cli_known = true;
	} else if (str_of(h, member(&h->d, e, "serverIPAddress"), &h->s) &&
		   parse_addr((char *)h->s.data, h->s.len, &v1, x->srv.addr)) {
		x->ip_version = v1;
	} else {
		struct dbuf urlb;
		dbuf_init(&urlb, 64u << 20);
		struct url u2;
		uint32_t rq = member(&h->d, e, "request");
		x->ip_version = 4;
		if (str_of(h, member(&h->d, rq, "url"), &urlb) &&
		    parse_url((char *)urlb.data, &u2) &&
		    parse_addr(u2.host, u2.host_len, &v1, x->srv.addr))
			x->ip_version = v1;
		dbuf_release(&urlb);
	}
	int64_t v;
	if (num_i64(&h->d, member(&h->d, dy, "vlan"), &v) && v > 0 && v < 4096)
		x->vlan = (uint16_t)v;
	if (num_i64(&h->d, member(&h->d, dy, "conn"), &v) && v > 0)
		x->conn = (uint64_t)v;
	uint32_t fl = member(&h->d, dy, "flags");
	if (is_type(&h->d, fl, JSON_ARRAY))
		for (uint32_t i = json_node(&h->d, fl)->first; i; i = json_node(&h->d, i)->next)
			if (str_of(h, i, &h->s) && !strcmp((char *)h->s.data, "midstream"))
				x->midstream = true;
	uint32_t cn = member(&h->d, e, "connection");
	if (!x->conn && is_type(&h->d, cn, JSON_STRING) && json_node(&h->d, cn)->len) {
		x->key = h->d.text + json_node(&h->d, cn)->off;
		x->key_len = json_node(&h->d, cn)->len;
	}
	return 1;
}

int har_read(const uint8_t *text, size_t len, struct har_doc *out, struct iop_stats *st, char *err,
	     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len > IOP_HAR_MAX_BYTES) {
		snprintf(err, errlen, "larger than %llu MiB (split the HAR file)",
			 IOP_HAR_MAX_BYTES >> 20);
		return -E2BIG;
	}
	struct hr h;
	memset(&h, 0, sizeof(h));
	h.st = st;
	struct json_limits lim = {
	    .max_bytes = IOP_HAR_MAX_BYTES,
	    .max_depth = 64,
	    .max_nodes = len + 2 < UINT32_MAX / 2 ? (uint32_t)len + 2 : UINT32_MAX / 2,
	};
	json_doc_init(&h.d, &lim);
	dbuf_init(&h.s, 64u << 20);
	dbuf_init(&h.body, (size_t)IOP_HAR_MAX_BYTES + IOP_PAD_MAX);
	dbuf_init(&h.msg, (size_t)IOP_HAR_MAX_BYTES + IOP_PAD_MAX + (1u << 20));
	int rc = json_parse(&h.d, text, len);
	uint32_t entries = 0;
	if (rc == -ENOMEM) {
		snprintf(err, errlen, "out of memory");
	} else if (rc < 0) {
		snprintf(err, errlen, "not a HAR file: JSON %s at byte %zu", h.d.err_msg,
			 h.d.err_off);
		rc = rc == -E2BIG ? -E2BIG : -EBADMSG;
	} else {
		entries = member(&h.d, member(&h.d, 0, "log"), "entries");
		if (!is_type(&h.d, entries, JSON_ARRAY)) {
			snprintf(err, errlen, "not a HAR file: no log.entries array");
			rc = -EBADMSG;
		}
	}
	if (!rc) {
		uint32_t n = json_node(&h.d, entries)->n;
		out->x = mem_calloc(n ? n : 1, sizeof(*out->x));
		if (!out->x)
			rc = -ENOMEM;
		for (uint32_t i = rc ? 0 : json_node(&h.d, entries)->first; i;
		     i = json_node(&h.d, i)->next) {
			st->har_entries++;
			int k = entry(&h, i, &out->x[out->n]);
			if (k < 0) {
				rc = k;
				break;
			}
			if (k == 1) {
				out->x[out->n].seq = out->n;
				out->n++;
			}
		}
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
	}
	json_doc_release(&h.d);
	dbuf_release(&h.s);
	dbuf_release(&h.body);
	dbuf_release(&h.msg);
	if (rc)
		har_doc_release(out);
	return rc;
}

void har_doc_release(struct har_doc *d)
{
	for (size_t i = 0; d->x && i < d->n; i++) {
		mem_free(d->x[i].req);
		mem_free(d->x[i].resp);
	}
	mem_free(d->x);
	memset(d, 0, sizeof(*d));
}
