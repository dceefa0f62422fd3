/* SPDX-License-Identifier: MIT */
/*
 * tmpl - path templating for endpoint grouping (see tmpl.h).
 */
#include "analysis/tmpl.h"

#include <string.h>

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex(s[i])) {
			return false;
		}
	}
	return true;
}

bool tmpl_is_id(const char *s, size_t n)
{
	if (n == 0)
		return false;
	size_t digits = 0, hex = 0, alpha = 0, other = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			digits++;
		else if (is_hex(c))
			hex++;
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			alpha++;
		else if (c != '-' && c != '_')
			other++;
	}
	if (digits == n)
		return true;
	if (is_uuid(s, n))
		return true;
	if (n >= 8 && digits + hex == n && digits > 0)
		return true;
	if (n >= 20 && other == 0 && digits > 0 && alpha + hex > 0)
		return true;
	return false;
}

size_t tmpl_endpoint(const char *method, size_t mlen, const char *target, size_t tlen, char *out,
		     size_t outlen)
{
	size_t o = 0;
	if (!outlen)
		return 0;
#define PUT(p, n)                                                                                  \
	do {                                                                                       \
		size_t n_ = (n);                                                                   \
		if (n_ > outlen - 1 - o)                                                           \
			n_ = outlen - 1 - o;                                                       \
		memcpy(out + o, (p), n_);                                                          \
		o += n_;                                                                           \
	} while (0)
	PUT(method, mlen);
	PUT(" ", 1);
	/* absolute-form: drop scheme and authority */
	const char *t = target, *end = target + tlen;
	const char *ss = memchr(t, ':', tlen);
	if (ss && end - ss > 2 && ss[1] == '/' && ss[2] == '/' &&
	    (const char *)memchr(t, '/', tlen) > ss) {
		const char *slash = memchr(ss + 3, '/', (size_t)(end - ss - 3));
		t = slash ? slash : end;
	}
	const char *q = t;
	while (q < end && *q != '?' && *q != '#')
		q++;
	end = q;
	if (t == end) {
		PUT("/", 1);
	}
	while (t < end) {
		if (*t == '/') {
			PUT("/", 1);
			t++;
			continue;
		}
		const char *seg = t;
		while (t < end && *t != '/')
			t++;
		size_t n = (size_t)(t - seg);
		if (tmpl_is_id(seg, n))
			PUT("{id}", 4);
		else
			PUT(seg, n);
	}
#undef PUT
	out[o] = '\0';
	return o;
}
