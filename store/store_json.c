/* SPDX-License-Identifier: MIT */
/*
 * store_json - the JSON form of session and result records
 * (docs/format.md §4), shared by `dyetap cat --json`, the reports and the
 * tests. Keys and their order are part of that contract.
 *
 * References: RFC 8259 (JSON), RFC 4648 §4 (base64), RFC 5952 (IPv6 text).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/jsonw.h"
#include "store/store.h"

void store_endpoint_str(uint8_t ip_version, const struct store_endpoint *e, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	if (!len)
		return;
	if (ip_version == 6) {
		if (!inet_ntop(AF_INET6, e->addr, a, sizeof(a)))
			a[0] = '\0';
		snprintf(buf, len, "[%s]:%u", a, (unsigned)e->port);
	} else {
		if (!inet_ntop(AF_INET, e->addr, a, sizeof(a)))
			a[0] = '\0';
		snprintf(buf, len, "%s:%u", a, (unsigned)e->port);
	}
}

static int put_slice(struct dbuf *b, const struct store_slice *s)
{
	return jsonw_str(b, s->ptr ? s->ptr : (const uint8_t *)"", s->len);
}

/* [[name, value], ...] */
static int put_fields(struct dbuf *b, const struct store_header *h, size_t n)
{
	int rc = dbuf_putc(b, '[');
	for (size_t i = 0; !rc && i < n; i++) {
		rc = dbuf_puts(b, i ? ",[" : "[");
		if (!rc)
			rc = put_slice(b, &h[i].name);
		if (!rc)
			rc = dbuf_putc(b, ',');
		if (!rc)
			rc = put_slice(b, &h[i].value);
		if (!rc)
			rc = dbuf_putc(b, ']');
	}
	return rc ? rc : dbuf_putc(b, ']');
}

static int put_message(struct dbuf *b, const struct store_message *m, int is_req, unsigned flags)
{
	int rc;
	if (!m->present)
		return dbuf_puts(b, "null");
	if (is_req) {
		rc = dbuf_puts(b, "{\"method\":");
		if (!rc)
			rc = put_slice(b, &m->method);
		if (!rc)
			rc = dbuf_puts(b, ",\"target\":");
		if (!rc)
			rc = put_slice(b, &m->target);
	} else {
		rc = dbuf_printf(b, "{\"status\":%u,\"reason\":", (unsigned)m->status);
		if (!rc)
			rc = put_slice(b, &m->reason);
	}
	if (!rc)
		rc = dbuf_printf(b, ",\"version\":\"HTTP/%u.%u\",\"headers\":",
				 (unsigned)m->version_major, (unsigned)m->version_minor);
	if (!rc)
		rc = put_fields(b, m->headers, m->n_headers);
	if (!rc)
		rc = dbuf_printf(b, ",\"body_len\":%" PRIu64 ",\"body\":", m->body_len);
	if (!rc) {
		if (flags & STORE_JSON_NO_BODY)
			rc = dbuf_puts(b, "null");
		else
			rc = jsonw_bytes(b, m->body.ptr ? m->body.ptr : (const uint8_t *)"",
					 m->body.len);
	}
	if (!rc)
		rc = dbuf_puts(b, m->truncated ? ",\"truncated\":true" : ",\"truncated\":false");
	if (!rc && m->n_trailers) { /* HTTP/2 trailer fields, only when there are some */
		rc = dbuf_puts(b, ",\"trailers\":");
		if (!rc)
			rc = put_fields(b, m->trailers, m->n_trailers);
	}
	if (!rc)
		rc = dbuf_putc(b, '}');
	return rc;
}

int store_session_json(struct dbuf *b, const struct store_session *s, unsigned flags)
{
	char src[64], dst[64];
	store_endpoint_str(s->ip_version, &s->src, src, sizeof(src));
	store_endpoint_str(s->ip_version, &s->dst, dst, sizeof(dst));
	int rc = dbuf_printf(b, "{\"id\":%" PRIu64 ",\"lane\":", s->id);
	if (!rc)
		rc = put_slice(b, &s->lane);
	if (!rc)
		rc = dbuf_printf(b,
				 ",\"conn_id\":%" PRIu64 ",\"conn_index\":%" PRIu32
				 ",\"ts_request_ns\":%" PRId64 ",\"src\":\"%s\",\"dst\":\"%s\""
				 ",\"request\":",
				 s->conn_id, s->conn_index, s->ts_req_first_ns, src, dst);
	if (!rc) {
		struct store_message req = s->req;
		req.present = true; /* a session always has its request */
		rc = put_message(b, &req, 1, flags);
	}
	if (!rc)
		rc = dbuf_puts(b, ",\"response\":");
	if (!rc)
		rc = put_message(b, &s->resp, 0, flags);
	if (!rc)
		rc = dbuf_puts(b, ",\"flags\":[");
	int first = 1;
	for (unsigned i = 0; !rc && i < 32; i++) {
		const char *name = (s->flags & (1u << i)) ? store_flag_name(1u << i) : NULL;
		if (!name)
			continue;
		rc = dbuf_printf(b, "%s\"%s\"", first ? "" : ",", name);
		first = 0;
	}
	if (!rc)
		rc = dbuf_putc(b, ']');
	if (!rc && s->proto) { /* HTTP/2: the protocol and the stream */
		const char *pn = store_proto_name(s->proto);
		rc = dbuf_printf(b, ",\"proto\":\"%s\",\"stream\":%" PRIu32, pn ? pn : "unknown",
				 s->stream_id);
	}
	if (!rc && s->ts_reset_ns)
		rc = dbuf_printf(b, ",\"ts_reset_ns\":%" PRId64 ",\"reset_code\":%" PRIu32,
				 s->ts_reset_ns, s->reset_code);
	if (!rc)
		rc = dbuf_putc(b, '}');
	return rc;
}

int store_result_json(struct dbuf *b, const struct store_result *r, unsigned flags)
{
	const char *err = store_error_name(r->error);
	int rc = dbuf_printf(b, "{\"session_id\":%" PRIu64 ",\"target\":", r->session_id);
	if (!rc)
		rc = put_slice(b, &r->target);
	if (!rc)
		rc = dbuf_puts(b, ",\"role\":");
	if (!rc)
		rc = put_slice(b, &r->role);
	if (!rc)
		rc = dbuf_printf(b,
				 ",\"ts_sent_ns\":%" PRId64 ",\"latency_ns\":%" PRIu64
				 ",\"lateness_ns\":%" PRId64 ",\"error\":\"%s\",\"error_msg\":",
				 r->ts_sent_ns, r->latency_ns, r->lateness_ns, err ? err : "other");
	if (!rc)
		rc = put_slice(b, &r->error_msg);
	if (!rc && r->causal_wait_ns)
		rc = dbuf_printf(b, ",\"causal_wait_ns\":%" PRIu64, r->causal_wait_ns);
	if (!rc)
		rc = dbuf_puts(b, ",\"response\":");
	if (!rc)
		rc = put_message(b, &r->resp, 0, flags);
	if (!rc)
		rc = dbuf_putc(b, '}');
	return rc;
}
