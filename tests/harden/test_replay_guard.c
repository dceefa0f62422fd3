/* SPDX-License-Identifier: MIT */
/*
 * Unit test of replay/replay_guard.h, the production guard (
 * docs/replay.md "Production guard"): address AND port must match, names
 * resolve to all their addresses, IPv4-mapped IPv6 compares as IPv4, and
 * scanning a real store file finds a recorded server and names it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay_guard.h"
#include "store/store.h"
#include "tests/tap.h"

static struct store_endpoint ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct store_endpoint e;
	memset(&e, 0, sizeof(e));
	e.addr[0] = a;
	e.addr[1] = b;
	e.addr[2] = c;
	e.addr[3] = d;
	e.port = port;
	return e;
}

/* A recording of one GET / whose server is @p dst. */
static int write_rec(const char *path, uint8_t ip_version, struct store_endpoint dst)
{
	char err[256];
	struct store_writer_params wp = {.path = path};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w)
		return -1;
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = 7;
	s.ip_version = ip_version;
	s.src = ep4(127, 0, 0, 1, 40000);
	s.dst = dst;
	s.req.present = true;
	s.req.method = (struct store_slice){(const uint8_t *)"GET", 3};
	s.req.target = (struct store_slice){(const uint8_t *)"/", 1};
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.ts_req_first_ns = 1;
	int rc = store_writer_add_session(w, &s);
	int rc2 = store_writer_close(w, NULL, 0, err, sizeof(err));
	return rc || rc2 ? -1 : 0;
}

int main(void)
{
	char err[512];
	struct replay_guard *g = replay_guard_create();
	TAP_OK(g != NULL, "create");

	/* Literal address: exactly that address and port. */
	TAP_EQ_U64(replay_guard_add_url(g, "http://127.0.0.1:8080", err, sizeof(err)), 0,
		   "add http://127.0.0.1:8080");
	TAP_EQ_U64(replay_guard_count(g), 1, "one endpoint");
	struct store_endpoint e = ep4(127, 0, 0, 1, 8080);
	TAP_EQ_STR(replay_guard_match(g, 4, &e), "http://127.0.0.1:8080", "same address and port");
	e.port = 8081;
	TAP_OK(!replay_guard_match(g, 4, &e), "same address, other port: not production");
	e = ep4(127, 0, 0, 2, 8080);
	TAP_OK(!replay_guard_match(g, 4, &e), "other address, same port: not production");
	/* ::ffff:127.0.0.1 is the same server as 127.0.0.1. */
	struct store_endpoint m;
	memset(&m, 0, sizeof(m));
	m.addr[10] = 0xff;
	m.addr[11] = 0xff;
	m.addr[12] = 127;
	m.addr[15] = 1;
	m.port = 8080;
	TAP_OK(replay_guard_match(g, 6, &m) != NULL, "IPv4-mapped IPv6 matches the IPv4 target");
	/* Default ports come from the scheme. */
	TAP_EQ_U64(replay_guard_add_url(g, "https://127.0.0.3", err, sizeof(err)), 0,
		   "add https://127.0.0.3");
	e = ep4(127, 0, 0, 3, 443);
	TAP_EQ_STR(replay_guard_match(g, 4, &e), "https://127.0.0.3", "https default port 443");
	e.port = 80;
	TAP_OK(!replay_guard_match(g, 4, &e), "https target does not match port 80");
	/* IPv6 literal. */
	TAP_EQ_U64(replay_guard_add_url(g, "http://[::1]:9000", err, sizeof(err)), 0,
		   "add http://[::1]:9000");
	struct store_endpoint v6;
	memset(&v6, 0, sizeof(v6));
	v6.addr[15] = 1;
	v6.port = 9000;
	TAP_EQ_STR(replay_guard_match(g, 6, &v6), "http://[::1]:9000", "IPv6 ::1 port 9000");
	v6.port = 9001;
	TAP_OK(!replay_guard_match(g, 6, &v6), "IPv6 other port");
	/* Adding the same endpoint twice keeps one. */
	size_t before = replay_guard_count(g);
	TAP_EQ_U64(replay_guard_add_url(g, "http://127.0.0.1:8080/path", err, sizeof(err)), 0,
		   "same endpoint again");
	TAP_EQ_U64(replay_guard_count(g), before, "kept once");
	/* Bad URL: a message a user can act on. */
	err[0] = 0;
	TAP_OK(replay_guard_add_url(g, "ftp://x", err, sizeof(err)) == -EINVAL &&
		   strstr(err, "http"),
	       "bad URL refused with a message");
	replay_guard_free(g);

	/* A name resolves to every address (localhost: 127.0.0.1, maybe ::1). */
	g = replay_guard_create();
	int rc = replay_guard_add_url(g, "http://localhost:8080", err, sizeof(err));
	e = ep4(127, 0, 0, 1, 8080);
	TAP_OK(rc == 0 && replay_guard_match(g, 4, &e), "localhost resolves to 127.0.0.1 (%d %s)",
	       rc, rc ? err : "");
	e.port = 8081;
	TAP_OK(!replay_guard_match(g, 4, &e), "localhost other port does not match");
	replay_guard_free(g);

	/* Scanning recordings. */
	char dir[] = "/tmp/dyetap-guard.XXXXXX";
	TAP_OK(mkdtemp(dir) != NULL, "temp dir");
	char rec[512], rec2[512];
	snprintf(rec, sizeof(rec), "%s/a.dyt", dir);
	snprintf(rec2, sizeof(rec2), "%s/b.dyt", dir);
	TAP_EQ_U64(write_rec(rec, 4, ep4(127, 0, 0, 1, 18080)), 0,
		   "recording a: server 127.0.0.1:18080");
	TAP_EQ_U64(write_rec(rec2, 4, ep4(127, 0, 0, 1, 18081)), 0,
		   "recording b: server 127.0.0.1:18081");
	g = replay_guard_create();
	const char *both[] = {rec2, rec};
	TAP_EQ_U64(replay_guard_check_files(g, both, 2, err, sizeof(err)), 0,
		   "an empty guard passes everything");
	TAP_EQ_U64(replay_guard_add_url(g, "http://127.0.0.1:18082", err, sizeof(err)), 0,
		   "target :18082");
	TAP_EQ_U64(replay_guard_check_files(g, both, 2, err, sizeof(err)), 0,
		   "another port of the recorded address passes");
	TAP_EQ_U64(replay_guard_add_url(g, "http://127.0.0.1:18080", err, sizeof(err)), 0,
		   "target :18080");
	err[0] = 0;
	rc = replay_guard_check_files(g, both, 2, err, sizeof(err));
	TAP_EQ_U64(rc, (uint64_t)-EPERM, "the recorded server of recording a is refused");
	TAP_OK(strstr(err, "http://127.0.0.1:18080") && strstr(err, "127.0.0.1:18080") &&
		   strstr(err, "a.dyt") && strstr(err, "session 7") &&
		   strstr(err, REPLAY_GUARD_FLAG),
	       "the message names target, endpoint, recording, session and the override: %s", err);
	const char *missing[] = {"/nonexistent/x.dyt"};
	err[0] = 0;
	TAP_OK(replay_guard_check_files(g, missing, 1, err, sizeof(err)) == -EINVAL && err[0],
	       "a missing recording is an input error");
	replay_guard_free(g);
	unlink(rec);
	unlink(rec2);
	rmdir(dir);
	return tap_done();
}
