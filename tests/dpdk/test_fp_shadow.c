/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of shadow_request_admit() (replay/shadow.h), the check the
 * fast path's workers run on every colored request before copying it to
 * the shadow sender (dpdk/fp_shadow.c): what a capture cut, a write
 * method without --allow-writes, or a tunnel/HTTP/0.9 request gives.
 */
#include <string.h>

#include "replay/shadow.h"
#include "tests/tap.h"

static struct store_slice sl(const char *s)
{
	return (struct store_slice){(const uint8_t *)s, strlen(s)};
}

static struct store_session req(const char *method)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.req.present = true;
	s.req.method = sl(method);
	s.req.target = sl("/a");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.flags = STORE_F_NO_RESPONSE; /* as announced at the request's last byte */
	return s;
}

static void check(const struct store_session *s, bool writes, bool want_ok, unsigned want_why,
		  const char *what)
{
	enum shadow_drop why = SHADOW_DROP_COUNT;
	bool got = shadow_request_admit(s, writes, &why);
	TAP_OK(got == want_ok && (want_ok || why == want_why), "%s (got %d, %s)", what, got,
	       got ? "-" : shadow_drop_name(why));
}

int main(void)
{
	struct store_session s = req("GET");
	check(&s, false, true, 0, "GET without response yet is admitted");
	s.flags |= STORE_F_MIDSTREAM;
	check(&s, false, true, 0, "midstream pickup is admitted");
	s = req("HEAD");
	check(&s, false, true, 0, "HEAD is admitted");
	s = req("OPTIONS");
	check(&s, false, true, 0, "OPTIONS is admitted");
	s = req("options");
	check(&s, false, false, SHADOW_DROP_WRITE_REFUSED,
	      "methods are case-sensitive (RFC 9110 9.1): 'options' is refused");
	s = req("POST");
	check(&s, false, false, SHADOW_DROP_WRITE_REFUSED, "POST without allow_writes: refused");
	check(&s, true, true, 0, "POST with allow_writes is admitted");
	s = req("GET");
	s.flags |= STORE_F_GAP;
	check(&s, true, false, SHADOW_DROP_INCOMPLETE, "a request with a gap is incomplete");
	s = req("PUT");
	s.req.body_len = 100;
	s.req.body = sl("short");
	s.req.truncated = true;
	check(&s, true, false, SHADOW_DROP_INCOMPLETE, "a cut body is incomplete");
	s = req("GET");
	s.req.version_major = 0;
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED, "HTTP/0.9 is unsupported");
	s = req("CONNECT");
	s.flags |= STORE_F_TUNNEL;
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED, "CONNECT/Upgrade tunnel: unsupported");
	s.flags |= STORE_F_GAP;
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED, "a tunnel with a gap: unsupported first");
	/* Announced before any response: a CONNECT or an Upgrade offer may yet
	 * become a tunnel (an h2c or websocket upgrade answered 101). */
	s = req("CONNECT");
	s.req.target = sl("example.com:443");
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED, "CONNECT before its answer: unsupported");
	struct store_header up[] = {{sl("Host"), sl("a")},
				    {sl("Connection"), sl("Upgrade, HTTP2-Settings")},
				    {sl("UPGRADE"), sl("h2c")},
				    {sl("HTTP2-Settings"), sl("AAMAAABkAAQAAP__")}};
	s = req("GET");
	s.req.headers = up;
	s.req.n_headers = 4;
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED,
	      "Upgrade: h2c before its answer: unsupported (any case)");
	s.req.n_headers = 2; /* "Connection: Upgrade" alone offers nothing */
	check(&s, false, true, 0, "a Connection field naming upgrade without Upgrade is admitted");
	s = req("GET");
	s.req.present = false;
	check(&s, true, false, SHADOW_DROP_UNSUPPORTED, "no request: unsupported");
	return tap_done();
}
