/* SPDX-License-Identifier: MIT */
/*
 * replay_url - parse the target URLs of `dyetap replay` (RFC 3986 §3.2:
 * scheme, authority with host and port; IPv6 literals in brackets). Only
 * the scheme, host and port matter: the request target comes from the
 * recording.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "replay/replay.h"

int replay_url_parse(const char *url, struct replay_url *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *p;
	if (!strncasecmp(url, "http://", 7)) {
		p = url + 7;
		out->port = 80;
	} else if (!strncasecmp(url, "https://", 8)) {
		p = url + 8;
		out->tls = true;
		out->port = 443;
	} else {
		snprintf(err, errlen, "target '%s': use http://HOST[:PORT] or https://HOST[:PORT]",
			 url);
		return -EINVAL;
	}
	const char *host = p, *host_end;
	if (*p == '[') {
		host = p + 1;
		host_end = strchr(host, ']');
		if (!host_end) {
			snprintf(err, errlen, "target '%s': unterminated [ipv6] literal", url);
			return -EINVAL;
		}
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/?#");
		p = host_end;
	}
	size_t hlen = (size_t)(host_end - host);
	if (hlen == 0 || hlen >= sizeof(out->host)) {
		snprintf(err, errlen, "target '%s': missing or too long host", url);
		return -EINVAL;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (*p == ':') {
		char *end;
		errno = 0;
		long port = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno || port < 1 || port > 65535 ||
		    (*end && !strchr("/?#", *end))) {
			snprintf(err, errlen, "target '%s': bad port", url);
			return -EINVAL;
		}
		out->port = (uint16_t)port;
	} else if (*p && !strchr("/?#", *p)) {
		snprintf(err, errlen, "target '%s': unexpected '%c' after the host", url, *p);
		return -EINVAL;
	}
	return 0;
}
