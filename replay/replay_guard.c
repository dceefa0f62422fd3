/* SPDX-License-Identifier: MIT */
/*
 * replay_guard - refuse to send recorded traffic back to the servers it
 * was captured from (docs/replay.md "Production guard").
 *
 * Targets are resolved with getaddrinfo(3) to all their addresses (a name
 * such as "localhost" gives 127.0.0.1 and ::1); a recorded server matches
 * on address and port together. The endpoint list is small (a handful of
 * targets), so a linear scan per session costs less than hashing.
 * References: RFC 3986 §3.2 (authority), RFC 4291 §2.5.5.2 (IPv4-mapped
 * IPv6 addresses).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/mem.h"
#include "replay/replay.h"
#include "replay/replay_guard.h"

struct guard_ep {
	uint8_t ip_version; /* 4 or 6, after unmapping ::ffff:a.b.c.d */
	uint8_t addr[16];
	uint16_t port;
	const char *url; /* owned by the guard's url list */
};

struct replay_guard {
	struct guard_ep eps[REPLAY_GUARD_MAX];
	size_t n;
	char *urls[REPLAY_GUARD_MAX];
	size_t n_urls;
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Canonical form: IPv4 in the first 4 bytes (rest zero), mapped IPv6 unmapped. */
static void canon(uint8_t ip_version, const uint8_t in[16], uint8_t *ver, uint8_t out[16])
{
	memset(out, 0, 16);
	if (ip_version == 6 && !memcmp(in, v4_mapped_prefix, 12)) {
		*ver = 4;
		memcpy(out, in + 12, 4);
	} else if (ip_version == 6) {
		*ver = 6;
		memcpy(out, in, 16);
	} else {
		*ver = 4;
		memcpy(out, in, 4);
	}
}

struct replay_guard *replay_guard_create(void)
{
	return mem_calloc(1, sizeof(struct replay_guard));
}

void replay_guard_free(struct replay_guard *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_urls; i++)
		mem_free(g->urls[i]);
	mem_free(g);
}

size_t replay_guard_count(const struct replay_guard *g)
{
	return g->n;
}

/* The guard's copy of @p url (one per distinct URL). NULL on failure. */
static const char *url_copy(struct replay_guard *g, const char *url)
{
	for (size_t i = 0; i < g->n_urls; i++)
		if (!strcmp(g->urls[i], url))
			return g->urls[i];
	if (g->n_urls == REPLAY_GUARD_MAX)
		return NULL;
	char *c = mem_strdup(url);
	if (c)
		g->urls[g->n_urls++] = c;
	return c;
}

int replay_guard_add_endpoint(struct replay_guard *g, const char *url, uint8_t ip_version,
			      const struct store_endpoint *ep)
{
	if (ip_version != 4 && ip_version != 6)
		return -EINVAL;
	struct guard_ep e;
	memset(&e, 0, sizeof(e));
	canon(ip_version, ep->addr, &e.ip_version, e.addr);
	e.port = ep->port;
	for (size_t i = 0; i < g->n; i++)
		if (g->eps[i].ip_version == e.ip_version && g->eps[i].port == e.port &&
		    !memcmp(g->eps[i].addr, e.addr, 16))
			return 0; /* already there (two targets naming one server) */
	if (g->n == REPLAY_GUARD_MAX)
		return -E2BIG;
	e.url = url_copy(g, url);
	if (!e.url)
		return g->n_urls == REPLAY_GUARD_MAX ? -E2BIG : -ENOMEM;
	g->eps[g->n++] = e;
	return 0;
}

int replay_guard_add_url(struct replay_guard *g, const char *url, char *err, size_t errlen)
{
	struct replay_url u;
	int rc = replay_url_parse(url, &u, err, errlen);
	if (rc < 0)
		return rc;
	struct addrinfo hints, *ai = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int gai = getaddrinfo(u.host, NULL, &hints, &ai);
	if (gai || !ai) {
		snprintf(err, errlen, "target '%s': cannot resolve '%s': %s", url, u.host,
			 gai_strerror(gai));
		return -EINVAL;
	}
	rc = 0;
	for (const struct addrinfo *a = ai; a && !rc; a = a->ai_next) {
		struct store_endpoint ep;
		memset(&ep, 0, sizeof(ep));
		ep.port = u.port;
		if (a->ai_family == AF_INET) {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)a->ai_addr;
			memcpy(ep.addr, &s4->sin_addr, 4);
			rc = replay_guard_add_endpoint(g, url, 4, &ep);
		} else if (a->ai_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a->ai_addr;
			memcpy(ep.addr, &s6->sin6_addr, 16);
			rc = replay_guard_add_endpoint(g, url, 6, &ep);
		}
	}
	freeaddrinfo(ai);
	if (rc == -E2BIG)
		snprintf(err, errlen, "target '%s': more than %d target addresses", url,
			 REPLAY_GUARD_MAX);
	else if (rc < 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

const char *replay_guard_match(const struct replay_guard *g, uint8_t ip_version,
			       const struct store_endpoint *server)
{
	uint8_t ver, addr[16];
	canon(ip_version, server->addr, &ver, addr);
	for (size_t i = 0; i < g->n; i++) {
		const struct guard_ep *e = &g->eps[i];
		if (e->port == server->port && e->ip_version == ver && !memcmp(e->addr, addr, 16))
			return e->url;
	}
	return NULL;
}

int replay_guard_check_session(const struct replay_guard *g, const struct store_session *s,
			       const char *path, char *err, size_t errlen)
{
	const char *url = replay_guard_match(g, s->ip_version, &s->dst);
	if (!url)
		return 0;
	char ep[64];
	store_endpoint_str(s->ip_version, &s->dst, ep, sizeof(ep));
	snprintf(err, errlen,
		 "refusing to replay to production: target '%s' resolves to %s, "
		 "the server of recorded session %llu in '%s'; pass %s to send "
		 "there anyway",
		 url, ep, (unsigned long long)s->id, path, REPLAY_GUARD_FLAG);
	return -EPERM;
}

int replay_guard_check_files(const struct replay_guard *g, const char *const *paths, size_t n_paths,
			     char *err, size_t errlen)
{
	if (!g->n)
		return 0;
	for (size_t i = 0; i < n_paths; i++) {
		struct store_reader *r = store_reader_open(paths[i], err, errlen);
		if (!r)
			return -EINVAL;
		const struct store_record *rec;
		int rc;
		while ((rc = store_reader_next(r, &rec)) == 1) {
			if (rec->type == STORE_REC_SESSION &&
			    replay_guard_check_session(g, &rec->u.session, paths[i], err, errlen)) {
				store_reader_free(r);
				return -EPERM;
			}
		}
		store_reader_free(r);
		if (rc < 0) {
			snprintf(err, errlen, "'%s': out of memory while checking targets",
				 paths[i]);
			return rc;
		}
	}
	return 0;
}
