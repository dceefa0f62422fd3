/* SPDX-License-Identifier: MIT */
/*
 * shadow - copies of sessions/results, the lane token bucket and drop
 * reason names for live mirroring (replay/shadow.h, docs/mirror.md).
 * A copy is one allocation: the struct, then the header arrays, then the
 * bytes of every slice, so it is freed with one call.
 */
#include "replay/shadow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"
#include "replay/replay.h"

static size_t msg_bytes(const struct store_message *m)
{
	size_t n = m->method.len + m->target.len + m->reason.len + m->body.len;
	n += m->n_headers * sizeof(struct store_header);
	for (size_t i = 0; i < m->n_headers; i++)
		n += m->headers[i].name.len + m->headers[i].value.len;
	n += m->n_trailers * sizeof(struct store_header) + 8; /* + alignment */
	for (size_t i = 0; i < m->n_trailers; i++)
		n += m->trailers[i].name.len + m->trailers[i].value.len;
	return n + 8;
}

struct shadow_writer {
	uint8_t *p;
};

static struct store_slice put(struct shadow_writer *w, struct store_slice s)
{
	struct store_slice o = {w->p, s.len};
	if (s.len)
		memcpy(w->p, s.ptr, s.len);
	w->p += s.len;
	return o;
}

static const struct store_header *fields_copy(struct shadow_writer *w,
					      const struct store_header *src, size_t n)
{
	if (!n)
		return NULL;
	uintptr_t a = ((uintptr_t)w->p + 7) & ~(uintptr_t)7;
	w->p = (uint8_t *)a;
	struct store_header *h = (struct store_header *)w->p;
	w->p += n * sizeof(*h);
	for (size_t i = 0; i < n; i++) {
		h[i].name = put(w, src[i].name);
		h[i].value = put(w, src[i].value);
	}
	return h;
}

static void msg_copy(struct shadow_writer *w, struct store_message *dst,
		     const struct store_message *src)
{
	*dst = *src;
	dst->headers = fields_copy(w, src->headers, src->n_headers);
	dst->trailers = fields_copy(w, src->trailers, src->n_trailers);
	dst->method = put(w, src->method);
	dst->target = put(w, src->target);
	dst->reason = put(w, src->reason);
	dst->body = put(w, src->body);
}

struct store_session *shadow_session_dup(const struct store_session *s)
{
	size_t n = sizeof(*s) + 8 + s->lane.len + msg_bytes(&s->req) + msg_bytes(&s->resp);
	struct store_session *c = mem_alloc(n);
	if (!c)
		return NULL;
	*c = *s;
	struct shadow_writer w = {(uint8_t *)(c + 1)};
	c->lane = put(&w, s->lane);
	msg_copy(&w, &c->req, &s->req);
	msg_copy(&w, &c->resp, &s->resp);
	return c;
}

struct store_result *shadow_result_dup(const struct store_result *r)
{
	size_t n =
	    sizeof(*r) + 8 + r->target.len + r->role.len + r->error_msg.len + msg_bytes(&r->resp);
	struct store_result *c = mem_alloc(n);
	if (!c)
		return NULL;
	*c = *r;
	struct shadow_writer w = {(uint8_t *)(c + 1)};
	c->target = put(&w, r->target);
	c->role = put(&w, r->role);
	c->error_msg = put(&w, r->error_msg);
	msg_copy(&w, &c->resp, &r->resp);
	return c;
}

void shadow_free(void *copy)
{
	mem_free(copy);
}

void shadow_bucket_init(struct shadow_bucket *b, double rate, double burst, int64_t now_ns)
{
	b->rate = rate;
	if (burst <= 0)
		burst = rate / 10 > 1 ? rate / 10 : 1;
	b->burst = burst;
	b->tokens = burst;
	b->last_ns = now_ns;
}

bool shadow_bucket_take(struct shadow_bucket *b, int64_t now_ns)
{
	if (b->rate <= 0)
		return true;
	if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * b->rate / 1e9;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ns = now_ns;
	}
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

static const char *const shadow_drop_names[SHADOW_DROP_COUNT] = {
    "queue_full", "rate_limited", "target_down", "write_refused", "incomplete", "unsupported",
    "no_memory",  "stopped",	  "production",	 "loop",	  "paused",
};

const char *shadow_drop_name(unsigned why)
{
	return why < SHADOW_DROP_COUNT ? shadow_drop_names[why] : "unknown";
}

/*
 * A request announced at its last byte does not know its response yet: a
 * CONNECT (RFC 9110 §9.3.6) or a request offering an Upgrade (§7.8, e.g.
 * "Upgrade: h2c" or "websocket") may turn its connection into a tunnel or
 * another protocol, which the lane's HTTP/1.x copy cannot follow (an
 * answer of 101 and no body, compared with production's real response).
 */
static bool tunnel_request(const struct store_message *req)
{
	if (req->method.len == 7 && !memcmp(req->method.ptr, "CONNECT", 7))
		return true;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_slice *n = &req->headers[i].name;
		if (n->len == 7 && !strncasecmp((const char *)n->ptr, "upgrade", 7))
			return true;
	}
	return false;
}

bool shadow_request_admit(const struct store_session *s, bool allow_writes, enum shadow_drop *why)
{
	const struct replay_filter f = {.allow_writes = allow_writes};

	if ((s->flags & STORE_F_TUNNEL) || (s->req.present && tunnel_request(&s->req))) {
		*why = SHADOW_DROP_UNSUPPORTED;
		return false;
	}
	if (s->flags & ~(uint32_t)(STORE_F_MIDSTREAM | STORE_F_NO_RESPONSE)) {
		*why = SHADOW_DROP_INCOMPLETE;
		return false;
	}
	switch (replay_filter_check(&f, s, 0)) {
	case REPLAY_TAKE:
		return true;
	case REPLAY_SKIP_WRITE:
		*why = SHADOW_DROP_WRITE_REFUSED;
		return false;
	case REPLAY_SKIP_TRUNCATED:
		*why = SHADOW_DROP_INCOMPLETE;
		return false;
	default:
		*why = SHADOW_DROP_UNSUPPORTED;
		return false;
	}
}

int shadow_lane_arg(char *arg, size_t *name_len, char **rest)
{
	char *eq = strchr(arg, '=');
	if (!eq || eq == arg)
		return -EINVAL;
	*name_len = (size_t)(eq - arg);
	*rest = eq + 1;
	return 0;
}

int shadow_lane_urls(char *rest, const char **urls, size_t *n, size_t max)
{
	char *p = rest;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		if (!*p)
			return -EINVAL;
		if (*n == max)
			return -E2BIG;
		urls[(*n)++] = p;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

int shadow_rate_parse(const char *s, double *rate)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !(v > 0) || (*end && strcmp(end, "/s")))
		return -EINVAL;
	*rate = v;
	return 0;
}
