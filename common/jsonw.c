/* SPDX-License-Identifier: MIT */
/*
 * jsonw - JSON text emission (RFC 8259) and base64 (RFC 4648 §4).
 * UTF-8 validation follows RFC 3629's table of well-formed sequences.
 */
#include "common/jsonw.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		if (n >= 2 && (p[1] & 0xc0) == 0x80)
			return 2;
		return 0;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

bool jsonw_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

int jsonw_str(struct dbuf *b, const void *vp, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = vp;
	int rc = dbuf_putc(b, '"');
	size_t i = 0;

	while (!rc && i < n) {
		size_t run = i;
		/* Copy runs of plain printable ASCII in one go. */
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			rc = dbuf_append(b, p + i, run - i);
			i = run;
			continue;
		}
		uint8_t c = p[i];
		if (c >= 0x80) {
			size_t k = utf8_seq(p + i, n - i);
			if (k) {
				rc = dbuf_append(b, p + i, k);
				i += k;
			} else {
				rc = dbuf_append(b, "\xef\xbf\xbd", 3);
				i++;
			}
			continue;
		}
		switch (c) {
		case '"':
			rc = dbuf_append(b, "\\\"", 2);
			break;
		case '\\':
			rc = dbuf_append(b, "\\\\", 2);
			break;
		case '\n':
			rc = dbuf_append(b, "\\n", 2);
			break;
		case '\r':
			rc = dbuf_append(b, "\\r", 2);
			break;
		case '\t':
			rc = dbuf_append(b, "\\t", 2);
			break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			rc = dbuf_append(b, u, 6);
		}
		}
		i++;
	}
	if (!rc)
		rc = dbuf_putc(b, '"');
	return rc;
}

int jsonw_cstr(struct dbuf *b, const char *s)
{
	return jsonw_str(b, s, strlen(s));
}

size_t jsonw_base64_to(char *out, const void *vp, size_t n, bool pad)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = vp;
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = tab[(v >> 6) & 63];
		else if (pad)
			*o++ = '=';
		if (pad)
			*o++ = '=';
	}
	return (size_t)(o - out);
}

int jsonw_base64(struct dbuf *b, const void *p, size_t n)
{
	int rc = dbuf_reserve(b, jsonw_base64_len(n, true));
	if (rc)
		return rc;
	b->len += jsonw_base64_to((char *)b->data + b->len, p, n, true);
	b->data[b->len] = '\0';
	return 0;
}

int jsonw_bytes(struct dbuf *b, const void *p, size_t n)
{
	if (jsonw_utf8_valid(p, n))
		return jsonw_str(b, p, n);
	int rc = dbuf_puts(b, "{\"base64\":\"");
	if (!rc)
		rc = jsonw_base64(b, p, n);
	if (!rc)
		rc = dbuf_puts(b, "\"}");
	return rc;
}
