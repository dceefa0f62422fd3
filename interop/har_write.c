/* SPDX-License-Identifier: MIT */
/*
 * har_write - HAR 1.2 from store records (see har.h).
 *
 * Field list and types follow the HAR 1.2 specification: every required
 * field is written (cookies, headers and queryString as arrays, possibly
 * empty; headersSize -1 as the spec allows when unknown; timings send,
 * wait and receive as non-negative milliseconds, the others -1). A session
 * without a response gets the response a browser writes for a request
 * that got none: status 0, empty strings and arrays. HTTP/2 trailer fields
 * go in a custom `_trailers` array (HAR 1.2 has none).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/jsonw.h"
#include "interop/har.h"

static int iso(struct dbuf *b, int64_t ns)
{
	int64_t sec = ns / 1000000000, sub = ns % 1000000000;
	if (sub < 0) {
		sub += 1000000000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	return dbuf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
			   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			   (int)(sub / 1000000));
}

/* Milliseconds from a duration (negative: 0). */
static int ms(struct dbuf *b, int64_t ns)
{
	return dbuf_printf(b, "%.3f", ns > 0 ? (double)ns / 1e6 : 0.0);
}

static int str(struct dbuf *b, const struct store_slice *s)
{
	return jsonw_str(b, s->ptr, s->len);
}

static bool name_is(const struct store_slice *s, const char *n)
{
	return s->len == strlen(n) && !strncasecmp((const char *)s->ptr, n, s->len);
}

static const struct store_slice *header(const struct store_message *m, const char *name)
{
	for (size_t i = 0; i < m->n_headers; i++)
		if (name_is(&m->headers[i].name, name))
			return &m->headers[i].value;
	return NULL;
}

static int fields(struct dbuf *b, const char *key, const struct store_header *h, size_t n)
{
	int rc = dbuf_printf(b, "\"%s\":[", key);
	for (size_t i = 0; !rc && i < n; i++) {
		rc |= dbuf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		rc |= str(b, &h[i].name);
		rc |= dbuf_puts(b, ",\"value\":");
		rc |= str(b, &h[i].value);
		rc |= dbuf_putc(b, '}');
	}
	return rc | dbuf_putc(b, ']');
}

static int headers(struct dbuf *b, const struct store_message *m)
{
	return fields(b, "headers", m->headers, m->n_headers);
}

/* HTTP/2 trailer fields (gRPC's grpc-status, grpc-message): HAR 1.2 has no
 * place for them, so a custom field, written only when there are some. */
static int trailers(struct dbuf *b, const struct store_message *m)
{
	if (!m->n_trailers)
		return 0;
	return dbuf_putc(b, ',') | fields(b, "_trailers", m->trailers, m->n_trailers);
}

/* name=value pairs of @p p[0..n) split at @p sep (the value up to ';' for Set-Cookie). */
static int pairs(struct dbuf *b, const uint8_t *p, size_t n, char sep, bool *first, bool one)
{
	int rc = 0;
	size_t i = 0;
	while (!rc && i < n) {
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		size_t s = i;
		while (i < n && p[i] != (uint8_t)sep)
			i++;
		size_t e = i, eq = s;
		while (eq < e && p[eq] != '=')
			eq++;
		if (e > s) {
			rc |= dbuf_puts(b, *first ? "{\"name\":" : ",{\"name\":");
			rc |= jsonw_str(b, p + s, eq - s);
			rc |= dbuf_puts(b, ",\"value\":");
			rc |= jsonw_str(b, eq < e ? p + eq + 1 : p, eq < e ? e - eq - 1 : 0);
			rc |= dbuf_putc(b, '}');
			*first = false;
		}
		if (one)
			break;
		i++;
	}
	return rc;
}

static int cookies(struct dbuf *b, const struct store_message *m, bool req)
{
	int rc = dbuf_puts(b, "\"cookies\":[");
	bool first = true;
	for (size_t i = 0; !rc && i < m->n_headers; i++) {
		const struct store_header *h = &m->headers[i];
		if (req && name_is(&h->name, "cookie"))
			rc = pairs(b, h->value.ptr, h->value.len, ';', &first, false);
		else if (!req && name_is(&h->name, "set-cookie"))
			rc = pairs(b, h->value.ptr, h->value.len, ';', &first, true);
	}
	return rc | dbuf_putc(b, ']');
}

/* The body as content text: UTF-8 as is, else base64 with @p enc_key set. */
static int body(struct dbuf *b, const struct store_slice *s, const char *enc_key)
{
	if (jsonw_utf8_valid(s->ptr, s->len))
		return dbuf_puts(b, "\"text\":") | str(b, s);
	return dbuf_printf(b, "\"%s\":\"base64\",\"text\":\"", enc_key) |
	       jsonw_base64(b, s->ptr, s->len) | dbuf_putc(b, '"');
}

static int mime(struct dbuf *b, const struct store_message *m, const char *dflt)
{
	const struct store_slice *ct = header(m, "content-type");
	return dbuf_puts(b, "\"mimeType\":") | (ct ? str(b, ct) : jsonw_cstr(b, dflt));
}

static const char *version(const struct store_message *m, char *buf, size_t n)
{
	snprintf(buf, n, "HTTP/%u.%u", (unsigned)m->version_major, (unsigned)m->version_minor);
	return buf;
}

static int url(struct dbuf *b, const struct store_session *s)
{
	const struct store_slice *t = &s->req.target;
	if (t->len >= 7 && !strncasecmp((const char *)t->ptr, "http://", 7))
		return str(b, t);
	if (t->len >= 8 && !strncasecmp((const char *)t->ptr, "https://", 8))
		return str(b, t);
	struct dbuf u;
	dbuf_init(&u, b->max);
	const struct store_slice *host = header(&s->req, "host");
	if (!host)
		host = header(&s->req, ":authority");
	int rc = dbuf_puts(&u, "http://");
	if (host) {
		rc |= dbuf_append(&u, host->ptr, host->len);
	} else {
		char ep[64];
		store_endpoint_str(s->ip_version, &s->dst, ep, sizeof(ep));
		rc |= dbuf_puts(&u, ep);
	}
	if (!t->len || t->ptr[0] != '/')
		rc |= dbuf_putc(&u, '/');
	if (!(t->len == 1 && t->ptr[0] == '*'))
		rc |= dbuf_append(&u, t->ptr, t->len);
	rc |= jsonw_str(b, u.data, u.len);
	dbuf_release(&u);
	return rc;
}

static int query(struct dbuf *b, const struct store_slice *t)
{
	int rc = dbuf_puts(b, "\"queryString\":[");
	const uint8_t *q = t->len ? memchr(t->ptr, '?', t->len) : NULL;
	if (q) {
		size_t n = t->len - (size_t)(q + 1 - t->ptr);
		const uint8_t *h = memchr(q + 1, '#', n);
		bool first = true;
		rc |= pairs(b, q + 1, h ? (size_t)(h - q - 1) : n, '&', &first, false);
	}
	return rc | dbuf_putc(b, ']');
}

static int request(struct dbuf *b, const struct store_session *s)
{
	char vb[32];
	const struct store_message *m = &s->req;
	int rc = dbuf_puts(b, "\"request\":{\"method\":") | str(b, &m->method);
	rc |= dbuf_puts(b, ",\"url\":") | url(b, s);
	rc |= dbuf_puts(b, ",\"httpVersion\":") | jsonw_cstr(b, version(m, vb, sizeof(vb)));
	rc |= dbuf_putc(b, ',') | cookies(b, m, true);
	rc |= dbuf_putc(b, ',') | headers(b, m) | trailers(b, m);
	rc |= dbuf_putc(b, ',') | query(b, &m->target);
	if (m->body_len || m->body.len || header(m, "content-length") ||
	    header(m, "transfer-encoding")) {
		rc |= dbuf_puts(b, ",\"postData\":{") | mime(b, m, "");
		rc |= dbuf_putc(b, ',') | body(b, &m->body, "_encoding") | dbuf_putc(b, '}');
	}
	rc |= dbuf_printf(b, ",\"headersSize\":-1,\"bodySize\":%" PRIu64 "}", m->body_len);
	return rc;
}

static int response(struct dbuf *b, const struct store_message *m)
{
	char vb[32];
	if (!m->present)
		return dbuf_puts(b,
				 "\"response\":{\"status\":0,\"statusText\":\"\",\"httpVersion\":"
				 "\"\",\"cookies\":[],\"headers\":[],\"content\":{\"size\":0,"
				 "\"mimeType\":\"x-unknown\"},\"redirectURL\":\"\",\"headersSize\":"
				 "-1,\"bodySize\":-1}");
	int rc = dbuf_printf(b, "\"response\":{\"status\":%u,\"statusText\":", (unsigned)m->status);
	rc |= str(b, &m->reason);
	rc |= dbuf_puts(b, ",\"httpVersion\":") | jsonw_cstr(b, version(m, vb, sizeof(vb)));
	rc |= dbuf_putc(b, ',') | cookies(b, m, false);
	rc |= dbuf_putc(b, ',') | headers(b, m) | trailers(b, m);
	rc |= dbuf_printf(b, ",\"content\":{\"size\":%" PRIu64 ",", m->body_len);
	rc |= mime(b, m, "x-unknown") | dbuf_putc(b, ',') | body(b, &m->body, "encoding");
	rc |= dbuf_puts(b, "},\"redirectURL\":");
	const struct store_slice *loc = header(m, "location");
	rc |= loc ? str(b, loc) : dbuf_puts(b, "\"\"");
	rc |= dbuf_printf(b, ",\"headersSize\":-1,\"bodySize\":%" PRIu64 "}", m->body_len);
	return rc;
}

static int timings(struct dbuf *b, int64_t send, int64_t wait, int64_t recv)
{
	return dbuf_puts(b, "\"timings\":{\"blocked\":-1,\"dns\":-1,\"connect\":-1,\"send\":") |
	       ms(b, send) | dbuf_puts(b, ",\"wait\":") | ms(b, wait) |
	       dbuf_puts(b, ",\"receive\":") | ms(b, recv) | dbuf_puts(b, ",\"ssl\":-1}");
}

static int addr(struct dbuf *b, uint8_t ver, const struct store_endpoint *ep)
{
	char s[64];
	struct store_endpoint a = *ep;
	a.port = 0;
	store_endpoint_str(ver, &a, s, sizeof(s));
	/* "1.2.3.4:0" or "[::1]:0": the address alone */
	char *c = strrchr(s, ':');
	if (c)
		*c = 0;
	if (s[0] == '[') {
		size_t n = strlen(s);
		if (n > 1 && s[n - 1] == ']')
			s[n - 1] = 0;
		return jsonw_cstr(b, s + 1);
	}
	return jsonw_cstr(b, s);
}

/* The session's own facts. */
static int dyetap(struct dbuf *b, const struct store_session *s)
{
	int rc = dbuf_printf(b, "\"_dyetap\":{\"session_id\":%" PRIu64 ",\"lane\":", s->id);
	rc |= str(b, &s->lane) | dbuf_puts(b, ",\"flags\":[");
	bool first = true;
	for (unsigned i = 0; i < 32; i++) {
		const char *n = (s->flags & (1u << i)) ? store_flag_name(1u << i) : NULL;
		if (!n)
			continue;
		rc |= dbuf_puts(b, first ? "" : ",") | jsonw_cstr(b, n);
		first = false;
	}
	rc |= dbuf_printf(b, "],\"conn\":%" PRIu64 ",\"index\":%" PRIu32 ",\"client\":", s->conn_id,
			  s->conn_index);
	rc |= addr(b, s->ip_version, &s->src);
	rc |= dbuf_printf(b, ",\"client_port\":%u,\"server\":", (unsigned)s->src.port);
	rc |= addr(b, s->ip_version, &s->dst);
	rc |= dbuf_printf(b,
			  ",\"server_port\":%u,\"vlan\":%u,\"ts_ns\":[%" PRId64 ",%" PRId64
			  ",%" PRId64 ",%" PRId64 "],\"target\":",
			  (unsigned)s->dst.port, (unsigned)s->vlan, s->ts_req_first_ns,
			  s->ts_req_last_ns, s->ts_resp_first_ns, s->ts_resp_last_ns);
	rc |= str(b, &s->req.target);
	const char *proto = store_proto_name(s->proto);
	rc |= dbuf_puts(b, ",\"proto\":") | jsonw_cstr(b, proto ? proto : "http/1.1");
	rc |= dbuf_printf(b, ",\"truncated\":[%s,%s]", s->req.truncated ? "true" : "false",
			  s->resp.truncated ? "true" : "false");
	return rc;
}

int har_begin(struct dbuf *b, const char *ver)
{
	return dbuf_puts(b, "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"dyetap\","
			    "\"version\":") |
	       jsonw_cstr(b, ver) | dbuf_puts(b, "},\"entries\":[");
}

static int entry_head(struct dbuf *b, const char *pageref, bool first, int64_t started,
		      int64_t total)
{
	int rc = dbuf_puts(b, first ? "\n{" : ",\n{");
	if (pageref)
		rc |= dbuf_puts(b, "\"pageref\":") | jsonw_cstr(b, pageref) | dbuf_putc(b, ',');
	rc |= dbuf_puts(b, "\"startedDateTime\":") | iso(b, started);
	rc |= dbuf_puts(b, ",\"time\":") | ms(b, total) | dbuf_putc(b, ',');
	return rc;
}

static int entry_tail(struct dbuf *b, const struct store_session *s)
{
	int rc =
	    dbuf_puts(b, ",\"cache\":{},\"serverIPAddress\":") | addr(b, s->ip_version, &s->dst);
	rc |= dbuf_printf(b, ",\"connection\":\"%" PRIu64 "\",", s->conn_id);
	return rc;
}

int har_session(struct dbuf *b, const struct store_session *s, const char *pageref, bool first)
{
	bool resp = s->resp.present;
	int64_t send = s->ts_req_last_ns - s->ts_req_first_ns;
	int64_t wait = resp ? s->ts_resp_first_ns - s->ts_req_last_ns : 0;
	int64_t recv = resp ? s->ts_resp_last_ns - s->ts_resp_first_ns : 0;
	send = send > 0 ? send : 0;
	wait = wait > 0 ? wait : 0;
	recv = recv > 0 ? recv : 0;
	/* "time" is the sum of the timings (HAR 1.2), in the same rounding */
	int64_t total = send + wait + recv;
	int rc = entry_head(b, pageref, first, s->ts_req_first_ns, total);
	rc |= request(b, s) | dbuf_putc(b, ',') | response(b, &s->resp);
	rc |= dbuf_putc(b, ',') | timings(b, send, wait, recv);
	rc |= entry_tail(b, s) | dyetap(b, s) | dbuf_puts(b, "}}");
	return rc;
}

int har_result(struct dbuf *b, const struct store_session *s, const struct store_result *r,
	       const char *pageref, bool first)
{
	int64_t wait = r->latency_ns > 0 && r->latency_ns < INT64_MAX ? (int64_t)r->latency_ns : 0;
	int rc = entry_head(b, pageref, first, r->ts_sent_ns, wait);
	rc |= request(b, s) | dbuf_putc(b, ',') | response(b, &r->resp);
	rc |= dbuf_putc(b, ',') | timings(b, 0, wait, 0);
	rc |= entry_tail(b, s) | dyetap(b, s);
	rc |= dbuf_puts(b, ",\"role\":") | str(b, &r->role) | dbuf_puts(b, ",\"target_url\":");
	rc |= str(b, &r->target) | dbuf_puts(b, ",\"error\":");
	const char *e = store_error_name(r->error);
	rc |= jsonw_cstr(b, e ? e : "other") | dbuf_puts(b, ",\"error_msg\":") |
	      str(b, &r->error_msg);
	return rc | dbuf_puts(b, "}}");
}

int har_end(struct dbuf *b, const char *const *pages, const int64_t *started_ns, size_t n)
{
	int rc = dbuf_puts(b, "\n]");
	if (n) {
		rc |= dbuf_puts(b, ",\"pages\":[");
		for (size_t i = 0; i < n; i++) {
			rc |= dbuf_puts(b, i ? ",{\"startedDateTime\":" : "{\"startedDateTime\":");
			rc |= iso(b, started_ns[i]) | dbuf_puts(b, ",\"id\":") |
			      jsonw_cstr(b, pages[i]);
			rc |= dbuf_puts(b, ",\"title\":") | jsonw_cstr(b, pages[i]);
			rc |= dbuf_puts(b, ",\"pageTimings\":{}}");
		}
		rc |= dbuf_putc(b, ']');
	}
	return rc | dbuf_puts(b, "}}\n");
}
