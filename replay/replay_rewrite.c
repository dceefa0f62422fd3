/* SPDX-License-Identifier: MIT */
/*
 * replay_rewrite - serialize a recorded request back to wire bytes, with
 * the rewrite rules of `dyetap replay` (RFC 9112 §3 request line, §5
 * field syntax, §6 message body framing).
 *
 * Header order and name case are kept as recorded; only values the user
 * asked to change differ. Bodies are stored de-chunked (docs/format.md),
 * so framing is always re-sent as one Content-Length: the recorded
 * Content-Length line keeps its position and name case, a recorded
 * Transfer-Encoding becomes "Content-Length" at its position. A framing
 * header recorded with whitespace before its colon ("Content-Length : 5")
 * is framing all the same: it is replaced, never sent beside a new one.
 *
 * A recording is input like any other: a request whose method, target or
 * headers would frame differently on the wire than they were recorded (CR,
 * LF or NUL, a space in the method or target, a header name that is not a
 * token) is never sent (replay_request_unsafe(), counted skipped_unsafe):
 * "GET /x\r\n\r\nDELETE /y" as a target would otherwise be two requests.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "replay/replay.h"
#include "replay/replay_tok_private.h"

#define SET_MAX 64

static bool name_is_n(const struct store_slice *s, const char *name, size_t n)
{
	return s->len == n && !strncasecmp((const char *)s->ptr, name, n);
}

static bool name_is(const struct store_slice *s, const char *name)
{
	return name_is_n(s, name, strlen(name));
}

/* name_is() for a literal: the length is known, most names fail on it. */
#define NAME_IS(s, lit) name_is_n((s), lit, sizeof(lit) - 1)

static bool tchar(uint8_t c)
{
	return replay_tchar(c);
}

static bool slice_is_token(const struct store_slice *s)
{
	if (!s->len)
		return false;
	for (size_t i = 0; i < s->len; i++)
		if (!tchar(s->ptr[i]))
			return false;
	return true;
}

/* Content-Length or Transfer-Encoding, also with blanks before the colon. */
static bool framing_name(const struct store_slice *name)
{
	struct store_slice n = *name;
	while (n.len && (n.ptr[n.len - 1] == ' ' || n.ptr[n.len - 1] == '\t'))
		n.len--;
	return NAME_IS(&n, "content-length") || NAME_IS(&n, "transfer-encoding");
}

const char *replay_request_unsafe(const struct store_message *req)
{
	if (!slice_is_token(&req->method))
		return "the method is not a token";
	for (size_t i = 0; i < req->target.len; i++) {
		uint8_t c = req->target.ptr[i];
		if (c <= ' ' || c == 0x7f)
			return "the target holds a space or a control byte (CR, LF, NUL...)";
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_header *h = &req->headers[i];
		if (!slice_is_token(&h->name) && !framing_name(&h->name))
			return "a header name is not a token (blanks before the colon, CR, LF...)";
		if (replay_has_ctl(h->value.ptr, h->value.len))
			return "a header value holds CR, LF or NUL";
	}
	return NULL;
}

/* "name: value\r\n", room checked once. */
static int put_line(struct dbuf *out, const void *name, size_t nlen, const void *val, size_t vlen)
{
	size_t n = nlen + vlen + 4;
	if (out->cap - out->len <= n) {
		int rc = dbuf_reserve(out, n);
		if (rc)
			return rc;
	}
	uint8_t *p = out->data + out->len;
	memcpy(p, name, nlen);
	p += nlen;
	*p++ = ':';
	*p++ = ' ';
	if (vlen)
		memcpy(p, val, vlen);
	p += vlen;
	*p++ = '\r';
	*p++ = '\n';
	*p = '\0';
	out->len += n;
	return 0;
}

static int put_clen(struct dbuf *out, const struct store_slice *name, uint64_t len)
{
	int rc = name ? dbuf_append(out, name->ptr, name->len) : dbuf_puts(out, "Content-Length");
	if (!rc)
		rc = dbuf_printf(out, ": %llu\r\n", (unsigned long long)len);
	return rc;
}

static int put_target(struct dbuf *out, const struct store_slice *t, const char *prefix)
{
	if (prefix && *prefix && t->len && t->ptr[0] == '/') {
		size_t plen = strlen(prefix);
		if (prefix[plen - 1] == '/')
			plen--;
		if (plen && prefix[0] != '/') {
			int rc = dbuf_putc(out, '/');
			if (rc)
				return rc;
		}
		int rc = dbuf_append(out, prefix, plen);
		if (rc)
			return rc;
	}
	return dbuf_append(out, t->ptr, t->len);
}

int replay_hdr_set_parse(char *arg, struct replay_hdr_set *h)
{
	char *colon = strchr(arg, ':');
	if (!colon || colon == arg)
		return -EINVAL;
	*colon = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	h->name = arg;
	h->value = v;
	return 0;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

static bool is_field_value(const char *s)
{
	return !strpbrk(s, "\r\n");
}

static bool framing(const char *name)
{
	return !strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding");
}

int replay_rewrite_check(const struct replay_rewrite *rw, char *err, size_t errlen)
{
	if (rw->host && (!*rw->host || !is_field_value(rw->host))) {
		snprintf(err, errlen, "--host: an empty value or one with CR or LF");
		return -EINVAL;
	}
	if (rw->shadow_name && (!is_token(rw->shadow_name) || !is_field_value(rw->shadow_value))) {
		snprintf(err, errlen,
			 "--shadow-header: '%s' is not a header name, or its value "
			 "has CR or LF",
			 rw->shadow_name);
		return -EINVAL;
	}
	if (rw->shadow_name && (framing(rw->shadow_name) || !strcasecmp(rw->shadow_name, "host"))) {
		snprintf(err, errlen, "--shadow-header %s: pick another name (this one is %s)",
			 rw->shadow_name,
			 framing(rw->shadow_name) ? "the message framing" : "the Host header");
		return -EINVAL;
	}
	for (size_t i = 0; i < rw->n_set; i++) {
		const char *n = rw->set[i].name;
		if (!is_token(n) || !is_field_value(rw->set[i].value)) {
			snprintf(err, errlen,
				 "--set-header '%s': not a header name, or the value "
				 "has CR or LF",
				 n);
			return -EINVAL;
		}
		if (framing(n)) {
			snprintf(err, errlen,
				 "--set-header %s: replay writes the message framing "
				 "itself (one Content-Length from the recorded body)",
				 n);
			return -EINVAL;
		}
		if (rw->shadow_name && !strcasecmp(n, rw->shadow_name)) {
			snprintf(err, errlen,
				 "--set-header %s: that is the shadow marker; set it "
				 "with --shadow-header NAME:VALUE",
				 n);
			return -EINVAL;
		}
		if (rw->host && !strcasecmp(n, "host")) {
			snprintf(err, errlen, "--set-header %s with --host: give one of them", n);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(n, rw->set[j].name)) {
				snprintf(err, errlen, "--set-header %s given twice", n);
				return -EINVAL;
			}
	}
	for (size_t i = 0; i < rw->n_del; i++)
		if (!is_token(rw->del[i])) {
			snprintf(err, errlen, "--del-header '%s': not a header name", rw->del[i]);
			return -EINVAL;
		}
	return 0;
}

int replay_request_build(struct dbuf *out, const struct store_message *req,
			 const struct replay_rewrite *rw)
{
	static const struct replay_rewrite none;
	if (!rw)
		rw = &none;
	if (!req->present || !req->method.len || !req->target.len)
		return -EINVAL;
	if (replay_request_unsafe(req))
		return -EBADMSG;
	size_t n_set = rw->n_set < SET_MAX ? rw->n_set : SET_MAX;
	bool set_done[SET_MAX] = {false};
	bool shadow_done = false, host_done = false, framing_done = false;
	bool body_needed = req->body.len > 0;
	size_t shadow_len = rw->shadow_name ? strlen(rw->shadow_name) : 0;

	for (size_t i = 0; i < req->n_headers && !body_needed; i++)
		if (framing_name(&req->headers[i].name))
			body_needed = true;

	int rc = dbuf_append(out, req->method.ptr, req->method.len);
	if (!rc)
		rc = dbuf_putc(out, ' ');
	if (!rc)
		rc = put_target(out, &req->target, rw->path_prefix);
	if (!rc) {
		/* Hot path: no printf. Versions are single digits (RFC 9112 §2.3). */
		char ver[] = " HTTP/1.1\r\n";
		ver[6] = (char)('0' + req->version_major % 10);
		ver[8] = (char)('0' + req->version_minor % 10);
		rc = dbuf_append(out, ver, sizeof(ver) - 1);
	}

	for (size_t i = 0; i < req->n_headers && !rc; i++) {
		const struct store_slice *name = &req->headers[i].name;
		const struct store_slice *val = &req->headers[i].value;
		bool deleted = false;
		for (size_t j = 0; j < rw->n_del && !deleted; j++)
			deleted = name_is(name, rw->del[j]);
		if (deleted)
			continue;
		if (framing_name(name)) {
			if (!framing_done && body_needed)
				rc = put_clen(out, NAME_IS(name, "content-length") ? name : NULL,
					      req->body.len);
			framing_done = true;
			continue;
		}
		if (rw->shadow_name && name_is_n(name, rw->shadow_name, shadow_len)) {
			if (!shadow_done)
				rc = put_line(out, name->ptr, name->len, rw->shadow_value,
					      strlen(rw->shadow_value));
			shadow_done = true;
			continue;
		}
		bool handled = false;
		for (size_t j = 0; j < n_set && !handled; j++) {
			if (!name_is(name, rw->set[j].name))
				continue;
			handled = true;
			if (!set_done[j])
				rc = put_line(out, name->ptr, name->len, rw->set[j].value,
					      strlen(rw->set[j].value));
			set_done[j] = true;
		}
		if (handled)
			continue;
		if (rw->host && NAME_IS(name, "host")) {
			if (!host_done)
				rc =
				    put_line(out, name->ptr, name->len, rw->host, strlen(rw->host));
			host_done = true;
			continue;
		}
		rc = put_line(out, name->ptr, name->len, val->ptr, val->len);
	}
	if (!rc && rw->host && !host_done)
		rc = put_line(out, "Host", 4, rw->host, strlen(rw->host));
	for (size_t j = 0; j < n_set && !rc; j++)
		if (!set_done[j])
			rc = put_line(out, rw->set[j].name, strlen(rw->set[j].name),
				      rw->set[j].value, strlen(rw->set[j].value));
	if (!rc && rw->shadow_name && !shadow_done)
		rc = put_line(out, rw->shadow_name, shadow_len, rw->shadow_value,
			      strlen(rw->shadow_value));
	if (!rc && body_needed && !framing_done)
		rc = put_clen(out, NULL, req->body.len);
	if (!rc)
		rc = dbuf_append(out, "\r\n", 2);
	if (!rc && req->body.len)
		rc = dbuf_append(out, req->body.ptr, req->body.len);
	return rc;
}
