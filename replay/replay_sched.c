/* SPDX-License-Identifier: MIT */
/*
 * replay_sched - the pacing schedule, filters and sharding.
 *
 * The schedule is absolute: every request's due time is computed from the
 * replay start and its recorded timestamp (or its sequence number), never
 * from the previous request, so timer slack and slow responses never
 * accumulate into drift; how late a request actually went out is measured
 * (lateness) instead. Sharding hashes the recorded connection with
 * SplitMix64 (Steele, Lea, Flood 2014) so a connection's requests stay on
 * one machine and N machines split a recording exactly.
 * Safe methods: RFC 9110 §9.2.1.
 */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "replay/replay.h"
#include "replay/replay_h2.h"

int64_t replay_sched_offset(const struct replay_sched *s, int64_t rec_ts_ns, uint64_t seq)
{
	switch (s->mode) {
	case REPLAY_PACE_RECORDED: {
		if (rec_ts_ns <= s->rec_t0_ns)
			return 0;
		double speed = s->speed > 0 ? s->speed : 1.0;
		return (int64_t)llround((double)(rec_ts_ns - s->rec_t0_ns) / speed);
	}
	case REPLAY_PACE_RATE:
		if (s->rate <= 0)
			return 0;
		return (int64_t)llround((double)seq * 1e9 / s->rate);
	case REPLAY_PACE_MAX:
	default:
		return 0;
	}
}

int replay_parse_speed(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno)
		return -EINVAL;
	if (*end == 'x' || *end == 'X')
		end++;
	if (*end || !(v > 0) || v > 1e6 || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int replay_parse_duration(const char *s, int64_t *out_ns)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0) || !isfinite(v))
		return -EINVAL;
	double mul = 1e9;
	if (!strcmp(end, "ms"))
		mul = 1e6;
	else if (!strcmp(end, "us"))
		mul = 1e3;
	else if (!strcmp(end, "m"))
		mul = 60e9;
	else if (!strcmp(end, "h"))
		mul = 3600e9;
	else if (*end && strcmp(end, "s"))
		return -EINVAL;
	if (v * mul > 9e18)
		return -EINVAL;
	*out_ns = (int64_t)llround(v * mul);
	return 0;
}

int replay_parse_shard(const char *s, uint32_t *k, uint32_t *n)
{
	char *end;
	errno = 0;
	unsigned long kk = strtoul(s, &end, 10);
	if (end == s || *end != '/' || errno || s[0] == '-')
		return -EINVAL;
	const char *q = end + 1;
	unsigned long nn = strtoul(q, &end, 10);
	if (end == q || *end || errno || q[0] == '-' || nn == 0 || nn > 1000000 || kk >= nn)
		return -EINVAL;
	*k = (uint32_t)kk;
	*n = (uint32_t)nn;
	return 0;
}

uint64_t replay_conn_hash(uint64_t conn_id, uint32_t file_idx)
{
	uint64_t z = conn_id + (uint64_t)file_idx * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static bool slice_eq(const struct store_slice *s, const char *lit, bool nocase)
{
	size_t n = strlen(lit);
	if (s->len != n)
		return false;
	return nocase ? !strncasecmp((const char *)s->ptr, lit, n) : !memcmp(s->ptr, lit, n);
}

/* Does @p v match one item of comma list @p list? */
static bool list_has(const char *list, const struct store_slice *v, bool nocase,
		     bool empty_is_baseline)
{
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ",");
		char item[256];
		if (n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (empty_is_baseline && v->len == 0 && !strcmp(item, "baseline"))
				return true;
			if (slice_eq(v, item, nocase))
				return true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static bool header_value_num(const struct store_message *m, const char *name, uint64_t *out)
{
	for (size_t i = 0; i < m->n_headers; i++) {
		if (!slice_eq(&m->headers[i].name, name, true))
			continue;
		const struct store_slice *v = &m->headers[i].value;
		uint64_t x = 0;
		size_t j = 0;
		while (j < v->len && (v->ptr[j] == ' ' || v->ptr[j] == '\t'))
			j++;
		if (j == v->len)
			return false;
		for (; j < v->len && v->ptr[j] >= '0' && v->ptr[j] <= '9'; j++) {
			if (x > UINT64_MAX / 10 - 1)
				return false;
			x = x * 10 + (uint64_t)(v->ptr[j] - '0');
		}
		*out = x;
		return true;
	}
	return false;
}

enum replay_verdict replay_filter_check(const struct replay_filter *f,
					const struct store_session *s, uint32_t file_idx)
{
	const struct store_message *req = &s->req;
	/* HTTP/2 streams (an upgraded one's request is HTTP/1.1) go to replay_h2 */
	bool h2 = s->proto == STORE_PROTO_H2C;
	if (!req->present || req->method.len == 0 || req->target.len == 0 ||
	    (req->version_major != 1 && !h2) || (s->flags & STORE_F_TUNNEL))
		return REPLAY_SKIP_UNSUPPORTED;
	if (f->shard_n > 1 && replay_conn_hash(s->conn_id, file_idx) % f->shard_n != f->shard_k)
		return REPLAY_SKIP_SHARD;
	if (f->lanes && !list_has(f->lanes, &s->lane, false, true))
		return REPLAY_SKIP_FILTER;
	if (f->methods && !list_has(f->methods, &req->method, true, false))
		return REPLAY_SKIP_FILTER;
	if (f->since_ns && s->ts_req_first_ns < f->since_ns)
		return REPLAY_SKIP_FILTER;
	if (f->until_ns && s->ts_req_first_ns >= f->until_ns)
		return REPLAY_SKIP_FILTER;
	if (f->path_glob) {
		char path[4096];
		size_t n = 0;
		while (n < req->target.len && n < sizeof(path) - 1 && req->target.ptr[n] != '?')
			n++;
		memcpy(path, req->target.ptr, n);
		path[n] = '\0';
		if (fnmatch(f->path_glob, path, 0) != 0)
			return REPLAY_SKIP_FILTER;
	}
	if (h2 ? replay_h2_request_unsafe(req) : replay_request_unsafe(req))
		return REPLAY_SKIP_UNSAFE;
	if (!f->allow_writes && !replay_is_read(req))
		return REPLAY_SKIP_WRITE;
	/* A cut body must not be replayed: the target would see a different request. */
	uint64_t clen;
	if (req->truncated || req->body.len < req->body_len ||
	    (header_value_num(req, "content-length", &clen) && clen != req->body_len))
		return REPLAY_SKIP_TRUNCATED;
	return REPLAY_TAKE;
}
