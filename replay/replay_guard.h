/* SPDX-License-Identifier: MIT */
/*
 * replay_guard - the production guard (docs/replay.md
 * "Production guard"): replay and live shadowing must not send recorded
 * traffic back to the servers it was captured from.
 *
 * A guard holds every (address, port) a set of target URLs resolves to
 * (getaddrinfo, all addresses of the host). A recorded server endpoint
 * (store_session.dst) matches when its address AND port equal one of them:
 * tests record traffic on 127.0.0.1 and replay it to another 127.0.0.1
 * port, which is not production. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
 * compare as the IPv4 address.
 *
 * The guard only answers "is this production?"; the caller decides what to
 * do (`dyetap replay` refuses to start, `dyetap mirror` drops the shadow
 * request and counts it) and which flag overrides it
 * (--i-know-this-is-production).
 *
 * Errors: 0 or -errno, messages in a caller buffer. Thread-safety: build on one thread; once built,
 * replay_guard_match() may be called from any thread.
 */
#ifndef DYETAP_REPLAY_REPLAY_GUARD_H
#define DYETAP_REPLAY_REPLAY_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/** The option that overrides the guard, for messages. */
#define REPLAY_GUARD_FLAG "--i-know-this-is-production"

/** Most endpoints one guard holds (all addresses of all its targets). */
#define REPLAY_GUARD_MAX 256

struct replay_guard;

/** An empty guard (matches nothing). NULL on allocation failure. */
struct replay_guard *replay_guard_create(void);

/** Free; accepts NULL. */
void replay_guard_free(struct replay_guard *g);

/**
 * Resolve target @p url ("http://host[:port]", as replay_url_parse()) and
 * add every address it resolves to, with the URL's port.
 * @param url  copied.
 * @return 0; -EINVAL (bad URL, cannot resolve) with a message in @p err;
 *         -E2BIG (over REPLAY_GUARD_MAX endpoints); -ENOMEM.
 */
int replay_guard_add_url(struct replay_guard *g, const char *url, char *err, size_t errlen);

/**
 * Add one endpoint directly (@p ip_version 4 or 6, @p addr as in
 * struct store_endpoint) under the name @p url (copied). For tests and
 * callers that resolved already. @return 0, -EINVAL, -E2BIG or -ENOMEM.
 */
int replay_guard_add_endpoint(struct replay_guard *g, const char *url, uint8_t ip_version,
			      const struct store_endpoint *ep);

/** Endpoints held. */
size_t replay_guard_count(const struct replay_guard *g);

/**
 * Does server endpoint @p server (of a session with @p ip_version) equal a
 * resolved target endpoint?
 * @return the target URL that matched (borrowed, valid until
 *         replay_guard_free()), or NULL.
 */
const char *replay_guard_match(const struct replay_guard *g, uint8_t ip_version,
			       const struct store_endpoint *server);

/**
 * Check one recorded session @p s of recording @p path (for the message).
 * @return 0 when its server does not match; -EPERM when it does, with the
 *         message of replay_guard_check_files() in @p err.
 */
int replay_guard_check_session(const struct replay_guard *g, const struct store_session *s,
			       const char *path, char *err, size_t errlen);

/**
 * Scan the sessions of recordings @p paths for a server endpoint that
 * matches the guard (stops at the first match).
 * @return 0 when none matches; -EPERM when one does, with a message in
 *         @p err naming the target, the endpoint, the recording and the
 *         override flag; -EINVAL when a file cannot be opened (message in
 *         @p err); -ENOMEM.
 */
int replay_guard_check_files(const struct replay_guard *g, const char *const *paths, size_t n_paths,
			     char *err, size_t errlen);

#endif
