/* SPDX-License-Identifier: MIT */
/*
 * replay_h2 - HTTP/2 (h2c) replay over nghttp2's client session (see
 * replay_h2.h).
 *
 * References: RFC 9113 §3.3 (prior knowledge: the client preface and
 * SETTINGS are written by nghttp2), §8.2.2 (connection-specific fields
 * are not sent), §8.3.1 (request pseudo-header fields); nghttp2's
 * non-blocking client pattern (nghttp2_session_mem_recv() on what the
 * socket gives, nghttp2_session_mem_send() into the socket, the unsent
 * rest kept until EPOLLOUT); gRPC's PROTOCOL-HTTP2.md (grpc-timeout).
 *
 * Structures: a flow per (flow key, target) with a queue of requests
 * sorted by (due, recorded start, stream id) and at most one connection;
 * requests in flight are nghttp2 streams whose user data is the request.
 * Submission only queues; everything that touches a session happens in
 * replay_h2_run(), never inside an nghttp2 callback, except completion
 * (on_stream_close), which hands the result to the engine and frees.
 */
#include "replay/replay_h2.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/mem.h"
#include "replay/replay_causal.h"
#include "replay/replay_tok_private.h"

#define H2R_LOG(lvl, ...) LOG_MSG(lvl, "replay-h2", __VA_ARGS__)

#define H2R_BUCKETS	  4096
#define H2R_READ_BUF	  (64 * 1024)
#define H2R_MAX_EVENT	  64
#define H2R_WINDOW	  (1 << 24)   /* stream window we grant: bodies do not stall */
#define H2R_GATHER	  64 * 1024   /* bytes gathered per send(2) */
#define H2R_MAX_STREAMS	  256	      /* streams open per connection, whatever the target allows */
#define H2R_SPARE_MAX	  1024	      /* finished requests kept for reuse */
#define H2R_SPARE_BYTES	  (64 * 1024) /* a request whose buffers grew past this is freed */
#define H2R_INLINE_FIELDS 16	      /* response field lines kept in the request itself */
/* after a gRPC call's deadline, the time a server that ends the call itself
 * then (DEADLINE_EXCEEDED) has for its answer to come before the replay
 * ends the call as its client (grpc_expire) */
#define H2R_GRPC_GRACE_NS (20 * 1000000LL)

/* Streams open before the target's first SETTINGS frame: its
 * SETTINGS_MAX_CONCURRENT_STREAMS is not known yet (RFC 9113 §6.5.2: any
 * value, "no smaller than 100" only recommended), and one stream is the
 * only count no limit above 0 refuses. The rest of a busy connection's
 * first burst waits one round trip (the server's preface, §3.4). */
#define H2R_STREAMS_BEFORE_SETTINGS 1
/* Times a request refused unprocessed (REFUSED_STREAM, §8.7) is sent
 * again before it is reported as an error. */
#define H2R_MAX_REFUSED_RETRIES 5

struct h2flow;
struct h2conn;

struct h2r_field {
	uint32_t no, nl, vo, vl;
};

struct h2req {
	struct h2req *next;  /* flow queue, or the in-flight list */
	struct h2req *iprev; /* in-flight list */
	struct h2flow *flow;
	struct h2conn *conn; /* in flight on */
	void *user;
	uint64_t session_id;
	int64_t due, rec_ts, t_sent, deadline;
	int64_t rec_end; /* recorded end of the exchange; INT64_MAX when it never ended */
	uint32_t rec_stream;
	uint32_t slot; /* index in its connection's fl[] while in flight */
	int32_t stream;
	bool final_seen; /* a final (non-1xx) response block */
	bool in_block;	 /* receiving a header block */
	bool trailers;	 /* the block being received is the trailer block */
	bool has_dep;
	uint8_t refused; /* times the target refused it unprocessed (REFUSED_STREAM) */
	/* Recorded reset after its response began (a client that cancelled a
	 * stream, a watch): ended the same way here, with RST_STREAM(CANCEL),
	 * once the recorded response body bytes came or a stream that started
	 * after the recorded reset is due (cancel_ended()) */
	bool cancel_rec;
	bool cancel_due; /* ... its bytes came: cancel at the next turn */
	bool cancelling; /* ... RST_STREAM(CANCEL) submitted */
	uint64_t cancel_at;
	/* Recorded reset before any response came (a client that gave up
	 * waiting): cancelled this long after it is sent, the time the
	 * recorded client waited (ts_reset_ns), or when a stream that started
	 * after the recorded reset is due; 0: not such a stream */
	int64_t cancel_wait;
	/* a gRPC call's deadline: its grpc-timeout as sent (re-based), 0 when
	 * none; when it passed with no whole answer (grpc_dl, with a grace), the
	 * call ends as a gRPC client ends it, DEADLINE_EXCEEDED (grpc_expire) */
	int64_t grpc_ns, grpc_dl;
	bool grpc_expired; /* its deadline passed before it could be sent */
	uint32_t dl_idx;   /* 1 + its index in h->dl, 0 when not there */
	struct replay_causal_ent *dep;
	size_t body_off; /* request body bytes handed to nghttp2 */
	/* the response */
	uint16_t status;
	struct dbuf fields;    /* names and values */
	struct h2r_field *hdr; /* offsets into fields: hdr_in, or allocated past it */
	uint32_t nhdr, chdr, n_headers;
	struct dbuf body;
	uint64_t body_len;
	struct h2r_field hdr_in[H2R_INLINE_FIELDS];
	struct store_session s; /* the recorded request (deep copy in tail) */
	uint8_t *tail;		/* kept with the struct when it is reused */
	size_t tail_cap;
};

struct h2conn {
	int fd;
	bool connected;
	bool dead;
	nghttp2_session *ng;
	struct h2flow *flow;
	struct dbuf out; /* bytes nghttp2 gave that the socket did not take yet */
	uint32_t n_inflight;
	/* streams in flight when the target last refused one (REFUSED_STREAM):
	 * it took no more then, so no more are sent (UINT32_MAX: none refused) */
	uint32_t refused_cap;
	bool cancel_due;		   /* one of its streams is to be cancelled as recorded */
	uint32_t n_cancel_rec;		   /* streams in flight that may be (cancel_rec) */
	struct h2req *fl[H2R_MAX_STREAMS]; /* its requests in flight */
	bool want_out;
	int64_t idle_since;
};

struct h2flow {
	uint64_t key;
	uint32_t target;
	struct h2flow *hnext;
	struct h2flow *next, *prev; /* all flows */
	struct h2req *qhead, *qtail;
	struct h2conn *conn;
	bool blocked;	      /* its head waits for a stream that ended before it started */
	int64_t unblocked_at; /* when a stream its head waited for last ended */
	bool had_conn;
	/* since when its connection allows no stream at all (the target's
	 * SETTINGS_MAX_CONCURRENT_STREAMS 0, nothing in flight); 0 when not */
	int64_t none_since;
};

struct replay_h2 {
	struct replay_h2_params p;
	struct replay_h2_target *targets;
	int epfd;
	struct h2flow *htab[H2R_BUCKETS];
	struct h2flow *flows;
	uint64_t queued, inflight;
	uint64_t n_timed; /* in flight with a cancel_wait */
	/* requests in flight, by deadline (mostly send order: the timeout is
	 * constant): the head has the earliest */
	struct h2req *ihead, *itail;
	/* in flight with a gRPC deadline before their --timeout's: a binary
	 * heap on grpc_dl (deadlines differ by call, so not a sorted list) */
	struct h2req **dl;
	uint32_t n_dl, cap_dl;
	int64_t idle_check;
	uint8_t *rbuf;
	struct nvb *nvb;	 /* the field lines of the request being submitted */
	struct store_header *hv; /* the store view of a finished response's fields */
	uint32_t hv_cap;
	struct h2req *spare; /* finished requests kept for reuse, with their buffers */
	uint32_t n_spare;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt; /* H2R_STREAMS_BEFORE_SETTINGS */
	int64_t now;	     /* for callbacks */
};

/* ------------------------------------------------------------------ */
/* grpc-timeout                                                        */
/* ------------------------------------------------------------------ */

int replay_h2_grpc_timeout(const uint8_t *v, size_t n, int64_t late_ns, char *out, size_t cap,
			   int64_t *ns_out)
{
	static const struct {
		char unit;
		int64_t ns;
	} units[] = {{'H', 3600000000000LL}, {'M', 60000000000LL}, {'S', 1000000000LL},
		     {'m', 1000000LL},	     {'u', 1000LL},	   {'n', 1}};
	int64_t ns;
	if (!store_grpc_timeout_ns(v, n, &ns))
		return -EINVAL;
	if (late_ns > 0)
		ns = ns > late_ns ? ns - late_ns : 0;
	if (ns_out)
		*ns_out = ns; /* 0: ran out (the value written is its least) */
	/* the coarsest unit that keeps the value exact within 8 digits, else
	 * the finest that fits in 8 digits */
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		int64_t u = units[i].ns;
		if (ns % u == 0 && ns / u <= 99999999) {
			snprintf(out, cap, "%" PRId64 "%c", ns / u ? ns / u : 1, units[i].unit);
			if (ns == 0)
				snprintf(out, cap, "1n");
			return 0;
		}
	}
	for (size_t i = sizeof(units) / sizeof(units[0]); i-- > 0;) {
		int64_t u = units[i].ns;
		if ((ns + u - 1) / u <= 99999999) {
			snprintf(out, cap, "%" PRId64 "%c", (ns + u - 1) / u, units[i].unit);
			return 0;
		}
	}
	snprintf(out, cap, "99999999H");
	return 0;
}

static bool tchar(uint8_t c)
{
	return replay_tchar(c);
}

static bool token(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!tchar(p[i]))
			return false;
	return n > 0;
}

/* gRPC metadata in "true binary" form: a "-bin" field whose value starts
 * with a NUL byte, the raw bytes after it. gRPC's C core sends binary
 * metadata so to a peer whose SETTINGS hold GRPC_ALLOW_TRUE_BINARY_METADATA
 * (0xfe03 = 1; grpcio clients and servers both do), else base64 encoded
 * (PROTOCOL-HTTP2.md "Binary-Header"). The replay's client does not send
 * that setting, so such a value is sent base64 encoded, unpadded as
 * PROTOCOL-HTTP2.md asks, which every gRPC peer accepts. */
static bool grpc_true_binary(const struct store_header *f)
{
	return f->name.len > 4 &&
	       !strncasecmp((const char *)f->name.ptr + f->name.len - 4, "-bin", 4) &&
	       f->value.len && f->value.ptr[0] == 0;
}

const char *replay_h2_request_unsafe(const struct store_message *req)
{
	if (!token(req->method.ptr, req->method.len))
		return "the method is not a token";
	for (size_t i = 0; i < req->target.len; i++) {
		uint8_t c = req->target.ptr[i];
		if (c <= ' ' || c == 0x7f)
			return "the target holds a space or a control byte (CR, LF, NUL...)";
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct store_header *h = &req->headers[i];
		bool pseudo = h->name.len > 1 && h->name.ptr[0] == ':';
		if (!token(h->name.ptr + pseudo, h->name.len - pseudo))
			return "a field name is not a token";
		if (!grpc_true_binary(h) && replay_has_ctl(h->value.ptr, h->value.len))
			return "a field value holds CR, LF or NUL"; /* binary: base64 */
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Requests and flows                                                  */
/* ------------------------------------------------------------------ */

static void req_free(struct h2req *r)
{
	if (!r)
		return;
	dbuf_release(&r->fields);
	dbuf_release(&r->body);
	if (r->hdr != r->hdr_in)
		mem_free(r->hdr);
	mem_free(r->tail);
	mem_free(r);
}

/* A finished request: kept for reuse (a steady run then allocates nothing
 * per stream) unless enough are kept or its buffers grew large. */
static void req_put(struct replay_h2 *h, struct h2req *r)
{
	if (!r)
		return;
	if (h->n_spare >= H2R_SPARE_MAX || r->tail_cap > H2R_SPARE_BYTES ||
	    r->fields.cap > H2R_SPARE_BYTES || r->body.cap > H2R_SPARE_BYTES ||
	    r->chdr > 4 * H2R_INLINE_FIELDS) {
		req_free(r);
		return;
	}
	r->next = h->spare;
	h->spare = r;
	h->n_spare++;
}

/* A request with its state zeroed: a spare one (buffers kept) or a new one. */
static struct h2req *req_get(struct replay_h2 *h, size_t tail)
{
	struct h2req *r = h->spare;
	if (r) {
		h->spare = r->next;
		h->n_spare--;
		struct dbuf fields = r->fields, body = r->body;
		struct h2r_field *hdr = r->hdr;
		uint32_t chdr = r->chdr;
		uint8_t *t = r->tail;
		size_t tcap = r->tail_cap;
		memset(r, 0, sizeof(*r));
		dbuf_reset(&fields);
		dbuf_reset(&body);
		r->fields = fields;
		r->body = body;
		r->hdr = hdr;
		r->chdr = chdr;
		r->tail = t;
		r->tail_cap = tcap;
	} else {
		r = mem_calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		dbuf_init(&r->fields, h->p.max_header_bytes + 1);
		dbuf_init(&r->body, h->p.max_body);
		r->hdr = r->hdr_in;
		r->chdr = H2R_INLINE_FIELDS;
	}
	if (tail > r->tail_cap) {
		uint8_t *n = mem_realloc(r->tail, tail);
		if (!n) {
			req_free(r);
			return NULL;
		}
		r->tail = n;
		r->tail_cap = tail;
	}
	return r;
}

static struct h2flow *flow_get(struct replay_h2 *h, uint64_t key, uint32_t ti, bool create)
{
	size_t b = (size_t)((key * 0x9e3779b97f4a7c15ULL + ti) >> 52) % H2R_BUCKETS;
	for (struct h2flow *f = h->htab[b]; f; f = f->hnext)
		if (f->key == key && f->target == ti)
			return f;
	if (!create)
		return NULL;
	struct h2flow *f = mem_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->key = key;
	f->target = ti;
	f->hnext = h->htab[b];
	h->htab[b] = f;
	f->next = h->flows;
	if (h->flows)
		h->flows->prev = f;
	h->flows = f;
	return f;
}

static void flow_free(struct replay_h2 *h, struct h2flow *f)
{
	size_t b = (size_t)((f->key * 0x9e3779b97f4a7c15ULL + f->target) >> 52) % H2R_BUCKETS;
	for (struct h2flow **pp = &h->htab[b]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	if (f->prev)
		f->prev->next = f->next;
	else
		h->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	mem_free(f);
}

static void flow_maybe_free(struct replay_h2 *h, struct h2flow *f)
{
	if (!f->qhead && !f->conn)
		flow_free(h, f);
}

/* Report request @p r (removed from every list) and free it. */
static void finish(struct replay_h2 *h, struct h2req *r, uint32_t kind, const char *msg,
		   const struct store_message *resp)
{
	struct replay_h2_out o = {.user = r->user,
				  .session_id = r->session_id,
				  .target = r->flow->target,
				  .due = r->due,
				  .t_sent = r->t_sent,
				  .now = h->now,
				  .kind = kind,
				  .msg = msg,
				  .resp = resp,
				  .dep = r->has_dep ? r->dep : NULL,
				  .cancelled = kind == STORE_ERR_NONE && r->cancelling};
	h->p.done(h->p.ctx, &o);
	req_put(h, r);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/* The gRPC deadline heap (h->dl, on grpc_dl; dl_idx is 1 + the index). */
static void dl_set(struct replay_h2 *h, uint32_t i, struct h2req *r)
{
	h->dl[i] = r;
	r->dl_idx = i + 1;
}

static void dl_up(struct replay_h2 *h, uint32_t i)
{
	struct h2req *r = h->dl[i];
	while (i) {
		uint32_t up = (i - 1) / 2;
		if (h->dl[up]->grpc_dl <= r->grpc_dl)
			break;
		dl_set(h, i, h->dl[up]);
		i = up;
	}
	dl_set(h, i, r);
}

static void dl_down(struct replay_h2 *h, uint32_t i)
{
	struct h2req *r = h->dl[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n_dl)
			break;
		if (c + 1 < h->n_dl && h->dl[c + 1]->grpc_dl < h->dl[c]->grpc_dl)
			c++;
		if (h->dl[c]->grpc_dl >= r->grpc_dl)
			break;
		dl_set(h, i, h->dl[c]);
		i = c;
	}
	dl_set(h, i, r);
}

/* Room for one more in the heap. 0 or -ENOMEM. */
static int dl_reserve(struct replay_h2 *h)
{
	if (h->n_dl < h->cap_dl)
		return 0;
	uint32_t cap = h->cap_dl ? 2 * h->cap_dl : 64;
	struct h2req **n = mem_realloc(h->dl, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	h->dl = n;
	h->cap_dl = cap;
	return 0;
}

static void dl_push(struct replay_h2 *h, struct h2req *r)
{
	h->dl[h->n_dl++] = r; /* dl_reserve() made room */
	dl_up(h, h->n_dl - 1);
}

static void dl_del(struct replay_h2 *h, struct h2req *r)
{
	uint32_t i = r->dl_idx - 1;
	r->dl_idx = 0;
	struct h2req *last = h->dl[--h->n_dl];
	if (i == h->n_dl)
		return;
	dl_set(h, i, last);
	if (i && h->dl[(i - 1) / 2]->grpc_dl > last->grpc_dl)
		dl_up(h, i);
	else
		dl_down(h, i);
}

static void inflight_add(struct replay_h2 *h, struct h2conn *c, struct h2req *r)
{
	r->conn = c;
	struct h2req *p = h->itail; /* insert after the last with no later deadline */
	while (p && p->deadline > r->deadline)
		p = p->iprev;
	r->iprev = p;
	r->next = p ? p->next : h->ihead;
	if (r->next)
		r->next->iprev = r;
	else
		h->itail = r;
	if (p)
		p->next = r;
	else
		h->ihead = r;
	r->slot = c->n_inflight;
	c->fl[c->n_inflight++] = r;
	c->n_cancel_rec += r->cancel_rec;
	h->n_timed += r->cancel_wait != 0;
	h->inflight++;
}

static void inflight_del(struct replay_h2 *h, struct h2req *r)
{
	if (r->iprev)
		r->iprev->next = r->next;
	else
		h->ihead = r->next;
	if (r->next)
		r->next->iprev = r->iprev;
	else
		h->itail = r->iprev;
	r->next = r->iprev = NULL;
	if (r->dl_idx)
		dl_del(h, r);
	struct h2conn *c = r->conn;
	struct h2req *last = c->fl[--c->n_inflight];
	c->fl[r->slot] = last;
	last->slot = r->slot;
	c->n_cancel_rec -= r->cancel_rec;
	h->n_timed -= r->cancel_wait != 0;
	/* the head, and the requests due behind it, waited for this end: the
	 * recorded client made them after it (their deadlines run from it) */
	if (c->flow->blocked)
		c->flow->unblocked_at = h->now;
	c->flow->blocked = false; /* a stream it may wait for ended */
	h->inflight--;
}

static void conn_close(struct replay_h2 *h, struct h2conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	if (c->ng)
		nghttp2_session_del(c->ng); /* may call on_stream_close: none left */
	dbuf_release(&c->out);
	c->flow->conn = NULL; /* the flow is freed by the next sweep when empty */
	mem_free(c);
}

/* Fail every request in flight on @p c, then close it. */
static void conn_fail(struct replay_h2 *h, struct h2conn *c, uint32_t kind, const char *msg)
{
	c->dead = true;
	for (struct h2req *r = h->ihead, *nr; r && c->n_inflight; r = nr) {
		nr = r->next;
		if (r->conn != c)
			continue;
		inflight_del(h, r);
		if (c->ng && r->stream > 0)
			nghttp2_session_set_stream_user_data(c->ng, r->stream, NULL);
		finish(h, r, kind, msg, NULL); /* may add requests: never to the dead c */
	}
	conn_close(h, c);
}

static void conn_events(struct replay_h2 *h, struct h2conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0u), .data.ptr = c};
	epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what nghttp2 has to send, gathered into up to H2R_GATHER bytes per
 * send(2); what the socket does not take waits for EPOLLOUT. */
static int conn_flush(struct replay_h2 *h, struct h2conn *c)
{
	if (!c->connected)
		return 0;
	for (;;) {
		while (c->out.len < H2R_GATHER) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(c->ng, &d);
			if (n < 0)
				return -EPROTO;
			if (n == 0)
				break;
			if (dbuf_append(&c->out, d, (size_t)n))
				return -ENOMEM;
		}
		if (!c->out.len)
			break;
		ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0)
			return -errno;
		h->p.stats->bytes_sent += (uint64_t)w;
		dbuf_consume(&c->out, (size_t)w);
	}
	bool want = c->out.len > 0;
	if (want != c->want_out) {
		c->want_out = want;
		conn_events(h, c);
	}
	return 0;
}

/* ---- nghttp2 callbacks ---- */

static struct h2req *stream_req(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static int cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	(void)ud;
	struct h2req *r = stream_req(ng, fr->hd.stream_id);
	if (!r || fr->hd.type != NGHTTP2_HEADERS)
		return 0;
	r->in_block = true;
	r->trailers = r->final_seen;
	if (!r->final_seen) { /* a new response block replaces an interim one */
		r->nhdr = 0;
		dbuf_reset(&r->fields);
		r->status = 0;
		if (!r->fields.cap)
			dbuf_reserve(&r->fields, 383); /* one allocation for most field blocks */
	}
	return 0;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags;
	struct replay_h2 *h = ud;
	struct h2r_field f;
	struct h2req *r = stream_req(ng, fr->hd.stream_id);
	if (!r || !r->in_block)
		return 0;
	if (r->fields.len + nl + vl > h->p.max_header_bytes)
		return 0; /* over the cap: dropped (the response is still whole) */
	if (r->nhdr == r->chdr) {
		uint32_t cap = r->chdr ? r->chdr * 2 : 16;
		struct h2r_field *n =
		    mem_realloc(r->hdr == r->hdr_in ? NULL : r->hdr, cap * sizeof(*n));
		if (!n)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		if (r->hdr == r->hdr_in)
			memcpy(n, r->hdr_in, sizeof(r->hdr_in));
		r->hdr = n;
		r->chdr = cap;
	}
	f.no = (uint32_t)r->fields.len;
	f.nl = (uint32_t)nl;
	f.vo = f.no + f.nl;
	f.vl = (uint32_t)vl;
	if (dbuf_append(&r->fields, name, nl) || dbuf_append(&r->fields, value, vl))
		return 0;
	r->hdr[r->nhdr++] = f;
	if (!r->trailers && nl == 7 && !memcmp(name, ":status", 7) && vl == 3) {
		r->status =
		    (uint16_t)((value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0'));
	}
	return 0;
}

/* A stream recorded as reset mid-response has as much of its response as
 * the recording had (and it goes on): cancel it at the next turn
 * (conn_io), not from inside nghttp2. */
static void cancel_check(struct h2req *r, const nghttp2_frame *fr)
{
	if (r->cancel_rec && !r->cancel_wait && !r->cancelling && r->final_seen && r->conn &&
	    !(fr->hd.flags & NGHTTP2_FLAG_END_STREAM) && r->body_len >= r->cancel_at)
		r->cancel_due = r->conn->cancel_due = true;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	(void)ud;
	if (fr->hd.type == NGHTTP2_DATA) {
		struct h2req *r = stream_req(ng, fr->hd.stream_id);
		if (r)
			cancel_check(r, fr);
		return 0;
	}
	if (fr->hd.type != NGHTTP2_HEADERS || !(fr->hd.flags & NGHTTP2_FLAG_END_HEADERS))
		return 0;
	struct h2req *r = stream_req(ng, fr->hd.stream_id);
	if (!r || !r->in_block)
		return 0;
	r->in_block = false;
	if (!r->trailers) {
		if (r->status >= 100 && r->status < 200)
			return 0; /* interim: the final block replaces it */
		r->final_seen = true;
		r->n_headers = r->nhdr;
		cancel_check(r, fr);
	}
	return 0;
}

static int cb_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		   void *ud)
{
	(void)flags;
	struct replay_h2 *h = ud;
	struct h2req *r = stream_req(ng, id);
	if (!r)
		return 0;
	h->p.stats->bytes_received += n;
	r->body_len += n;
	size_t room = r->body.max - r->body.len;
	if (room)
		dbuf_append(&r->body, d, n < room ? n : room);
	return 0;
}

static struct store_slice fslice(const struct h2req *r, uint32_t off, uint32_t len)
{
	return (struct store_slice){len ? r->fields.data + off : (const uint8_t *)"", len};
}

/* Does @p a go before @p b in the recorded order? */
static bool before(const struct h2req *a, const struct h2req *b)
{
	if (a->due != b->due)
		return a->due < b->due;
	if (a->rec_ts != b->rec_ts)
		return a->rec_ts < b->rec_ts;
	return a->rec_stream < b->rec_stream;
}

/* Put @p r into its flow's queue, in recorded order (due, then recorded
 * start, then stream id); sessions come in completion order, so mostly
 * at the tail. */
static void queue_add(struct h2flow *f, struct h2req *r)
{
	if (!f->qtail || !before(r, f->qtail)) {
		r->next = NULL;
		if (f->qtail)
			f->qtail->next = r;
		else
			f->qhead = r;
		f->qtail = r;
		return;
	}
	struct h2req **pp = &f->qhead;
	while (*pp && !before(r, *pp))
		pp = &(*pp)->next;
	r->next = *pp;
	*pp = r;
}

/*
 * The target closed @p r's stream with REFUSED_STREAM before any response:
 * RST_STREAM(REFUSED_STREAM), or a GOAWAY whose last stream id is below it
 * (nghttp2 closes those, and requests it could not send after a GOAWAY,
 * with that code). The request was not processed and is safe to send
 * again (RFC 9113 §8.7, §6.8): back into its flow's queue, in recorded
 * order, where it waits like a new one (its timeout restarts when it goes
 * again). Its connection takes no more streams than it had in flight when
 * the target refused: a target that refuses below its advertised
 * SETTINGS_MAX_CONCURRENT_STREAMS is not sent to faster than it answers.
 */
static void requeue_refused(struct replay_h2 *h, struct h2req *r)
{
	struct h2conn *c = r->conn;
	uint32_t cap = c->n_inflight ? c->n_inflight : 1;
	if (cap < c->refused_cap)
		c->refused_cap = cap;
	r->refused++;
	r->conn = NULL;
	r->stream = 0;
	r->t_sent = r->deadline = 0;
	r->grpc_ns = r->grpc_dl = 0;
	r->body_off = 0;
	r->in_block = r->trailers = false;
	r->cancel_due = r->cancelling = false;
	r->status = 0;
	r->nhdr = r->n_headers = 0;
	dbuf_reset(&r->fields);
	dbuf_reset(&r->body);
	r->body_len = 0;
	queue_add(r->flow, r);
	h->queued++;
	h->p.stats->h2_refused_retried++;
}

/* The store view @p m of @p r's response (its fields in h->hv, reused). */
static int resp_view(struct replay_h2 *h, const struct h2req *r, struct store_message *m)
{
	if (r->nhdr > h->hv_cap) {
		struct store_header *n = mem_realloc(h->hv, r->nhdr * sizeof(*n));
		if (!n)
			return -ENOMEM;
		h->hv = n;
		h->hv_cap = r->nhdr;
	}
	struct store_header *hv = h->hv;
	for (uint32_t i = 0; i < r->nhdr; i++) {
		hv[i].name = fslice(r, r->hdr[i].no, r->hdr[i].nl);
		hv[i].value = fslice(r, r->hdr[i].vo, r->hdr[i].vl);
	}
	*m = (struct store_message){
	    .present = true,
	    .status = r->status,
	    .version_major = 2,
	    .headers = r->n_headers ? hv : NULL,
	    .n_headers = r->n_headers,
	    .trailers = r->nhdr > r->n_headers ? hv + r->n_headers : NULL,
	    .n_trailers = r->nhdr - r->n_headers,
	    .body = {r->body.len ? r->body.data : (const uint8_t *)"", r->body.len},
	    .body_len = r->body_len,
	    .truncated = r->body_len > r->body.len,
	};
	return 0;
}

static int cb_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct replay_h2 *h = ud;
	struct h2req *r = stream_req(ng, id);
	if (!r)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	inflight_del(h, r);
	if (!r->final_seen && code == NGHTTP2_REFUSED_STREAM &&
	    r->refused < H2R_MAX_REFUSED_RETRIES) {
		requeue_refused(h, r);
		return 0;
	}
	if (r->cancelling && code == NGHTTP2_CANCEL) {
		/* ended by us as the recording ended it: not an error, even
		 * before the target answered (a later stream was due); the
		 * response so far, if any, goes with it (diff compares no
		 * session recorded reset: docs/diff.md) */
		char msg[160];
		struct store_message m;
		h->p.stats->h2_cancelled_as_recorded++;
		if (r->cancel_wait)
			snprintf(msg, sizeof(msg),
				 STORE_CANCELLED_AS_RECORDED
				 ": the recorded client reset the stream "
				 "%.3f s after its request, before any response; %" PRIu64
				 " response body bytes came here",
				 (double)r->cancel_wait / 1e9, r->body_len);
		else
			snprintf(msg, sizeof(msg),
				 STORE_CANCELLED_AS_RECORDED
				 ": the recorded stream was reset after %" PRIu64
				 " response body bytes; %" PRIu64 " came here",
				 r->cancel_at, r->body_len);
		bool view = r->final_seen && !resp_view(h, r, &m);
		finish(h, r, STORE_ERR_NONE, msg, view ? &m : NULL);
		return 0;
	}
	if (!r->final_seen) {
		char msg[128], again[48] = "";
		if (code == NGHTTP2_REFUSED_STREAM)
			snprintf(again, sizeof(again), " (refused %u times: not sent again)",
				 r->refused + 1u);
		snprintf(msg, sizeof(msg), "stream closed by the target before a response: %s%s",
			 nghttp2_http2_strerror(code), again);
		finish(h, r, STORE_ERR_RESET, msg, NULL);
		return 0;
	}
	struct store_message m;
	if (code != NGHTTP2_NO_ERROR) {
		char msg[128];
		snprintf(msg, sizeof(msg), "stream reset during the response: %s",
			 nghttp2_http2_strerror(code));
		finish(h, r, STORE_ERR_RESET, msg, NULL);
		return 0;
	}
	if (resp_view(h, r, &m)) {
		finish(h, r, STORE_ERR_OTHER, "out of memory", NULL);
		return 0;
	}
	finish(h, r, STORE_ERR_NONE, NULL, &m);
	return 0;
}

/* ---- sending a request ---- */

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	(void)ud;
	struct h2req *r = src->ptr;
	const struct store_message *q = &r->s.req;
	size_t left = q->body.len - r->body_off;
	size_t k = left < len ? left : len;
	if (k)
		memcpy(buf, q->body.ptr + r->body_off, k);
	r->body_off += k;
	if (r->body_off == q->body.len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (q->n_trailers) {
			nghttp2_nv nv[64];
			size_t nn = 0;
			for (size_t i = 0; i < q->n_trailers && nn < 64; i++)
				nv[nn++] =
				    (nghttp2_nv){(uint8_t *)(uintptr_t)q->trailers[i].name.ptr,
						 (uint8_t *)(uintptr_t)q->trailers[i].value.ptr,
						 q->trailers[i].name.len, q->trailers[i].value.len,
						 NGHTTP2_NV_FLAG_NONE};
			if (nghttp2_submit_trailer(ng, id, nv, nn) == 0)
				*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		}
	}
	return (ssize_t)k;
}

static bool ieq(const struct store_slice *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && !strncasecmp((const char *)s->ptr, lit, n);
}

/* Fields RFC 9113 §8.2.2 forbids, and what framing replaces. */
static bool connection_specific(const struct store_slice *n)
{
	return ieq(n, "connection") || ieq(n, "keep-alive") || ieq(n, "proxy-connection") ||
	       ieq(n, "transfer-encoding") || ieq(n, "upgrade") || ieq(n, "http2-settings") ||
	       ieq(n, "host") || ieq(n, "content-length");
}

/* The field lines of the request being submitted: sized for each request
 * before it is built (nvb_reserve), so no field is left out and no name
 * or value points outside what was kept. The arrays grow as requests
 * need and stay for the next one. */
struct nvb {
	nghttp2_nv *v;
	size_t n, cap;
	char *buf; /* names lowered and values built here */
	size_t used, buf_cap;
};

static void nvb_release(struct nvb *b)
{
	if (b) {
		mem_free(b->v);
		mem_free(b->buf);
	}
}

/* Room for @p n fields and @p bytes of kept text: 0 or -ENOMEM. */
static int nvb_reserve(struct nvb *b, size_t n, size_t bytes)
{
	b->n = b->used = 0;
	if (n > b->cap) {
		nghttp2_nv *v = mem_realloc(b->v, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = n;
	}
	if (bytes > b->buf_cap) {
		char *d = mem_realloc(b->buf, bytes);
		if (!d)
			return -ENOMEM;
		b->buf = d;
		b->buf_cap = bytes;
	}
	return 0;
}

static void nv_add(struct nvb *b, const void *name, size_t nl, const void *val, size_t vl)
{
	assert(b->n < b->cap); /* nvb_reserve counted every field */
	b->v[b->n++] = (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)val, nl, vl,
				    NGHTTP2_NV_FLAG_NONE};
}

/* @p a then @p c (@p cl bytes), NUL-terminated, kept in @p b. */
static char *nv_keep2(struct nvb *b, const char *a, size_t al, const void *c, size_t cl)
{
	assert(b->used + al + cl + 1 <= b->buf_cap); /* nvb_reserve counted it */
	char *d = b->buf + b->used;
	if (al)
		memcpy(d, a, al);
	if (cl)
		memcpy(d + al, c, cl);
	d[al + cl] = 0;
	b->used += al + cl + 1;
	return d;
}

static const char *nv_keep(struct nvb *b, const char *s, size_t n)
{
	return nv_keep2(b, s, n, NULL, 0);
}

/* What build_fields() may keep for @p q: fields and bytes. */
static int nvb_size(struct nvb *b, const struct store_message *q, const struct replay_rewrite *rw)
{
	size_t n = 4 + q->n_headers, bytes = 0;
	if (rw) {
		n += rw->n_set + 1;
		if (rw->path_prefix)
			bytes += 1 + strlen(rw->path_prefix) + q->target.len + 1;
	}
	for (size_t i = 0; i < q->n_headers; i++) {
		bytes += q->headers[i].name.len + 1 + 32; /* lowered name; a grpc-timeout value */
		if (grpc_true_binary(&q->headers[i]))
			bytes += jsonw_base64_len(q->headers[i].value.len - 1, false) + 1;
	}
	return nvb_reserve(b, n, bytes);
}

/* The request's field lines, rewritten, into @p b. */
static void build_fields(struct replay_h2 *h, struct h2req *r, int64_t now, struct nvb *b)
{
	const struct store_message *q = &r->s.req;
	const struct replay_rewrite *rw = h->p.rewrite;
	const struct replay_h2_target *t = &h->targets[r->flow->target];
	struct store_slice auth = {(const uint8_t *)t->authority, strlen(t->authority)};
	struct store_slice scheme = {(const uint8_t *)"http", 4};
	for (size_t i = 0; i < q->n_headers; i++) {
		const struct store_header *f = &q->headers[i];
		if (ieq(&f->name, ":authority") || (ieq(&f->name, "host") && q->version_major < 2))
			auth = f->value;
	}
	if (rw && rw->host)
		auth = (struct store_slice){(const uint8_t *)rw->host, strlen(rw->host)};
	/* pseudo-header fields first (RFC 9113 §8.3) */
	nv_add(b, ":method", 7, q->method.ptr, q->method.len);
	nv_add(b, ":scheme", 7, scheme.ptr, scheme.len);
	nv_add(b, ":authority", 10, auth.ptr, auth.len);
	if (rw && rw->path_prefix && q->target.len && q->target.ptr[0] == '/') {
		/* as HTTP/1.x's request line (replay_rewrite.c put_target):
		 * "v2" and "/v2/" are "/v2" (a :path that does not start
		 * with '/' is malformed, RFC 9113 §8.3.1) */
		const char *pre = rw->path_prefix;
		size_t pl = strlen(pre);
		if (pl && pre[pl - 1] == '/')
			pl--;
		size_t lead = pl && pre[0] != '/', len = lead + pl + q->target.len;
		assert(b->used + len + 1 <= b->buf_cap); /* nvb_size counted it */
		char *p = b->buf + b->used;
		p[0] = '/';
		memcpy(p + lead, pre, pl);
		memcpy(p + lead + pl, q->target.ptr, q->target.len);
		p[len] = 0;
		b->used += len + 1;
		nv_add(b, ":path", 5, p, len);
	} else {
		nv_add(b, ":path", 5, q->target.ptr, q->target.len);
	}
	for (size_t i = 0; i < q->n_headers; i++) {
		const struct store_header *f = &q->headers[i];
		if (f->name.len && f->name.ptr[0] == ':')
			continue; /* written above */
		if (connection_specific(&f->name))
			continue;
		if (ieq(&f->name, "te") && !ieq(&f->value, "trailers"))
			continue;
		bool drop = false;
		for (size_t k = 0; rw && k < rw->n_del && !drop; k++)
			drop = ieq(&f->name, rw->del[k]);
		for (size_t k = 0; rw && k < rw->n_set && !drop; k++)
			drop = ieq(&f->name, rw->set[k].name);
		if (drop)
			continue;
		if (ieq(&f->name, "grpc-timeout")) {
			char v[16];
			/* the recorded client made a call that waited for an
			 * earlier stream's end (or came after one that did)
			 * after that end: its deadline ran from then, not from
			 * the recorded time (a call due later waited for nothing) */
			int64_t from = r->due, ns;
			if (r->flow->unblocked_at > from)
				from = r->flow->unblocked_at;
			if (!replay_h2_grpc_timeout(f->value.ptr, f->value.len, now - from, v,
						    sizeof(v), &ns)) {
				/* one recorded as cancelled ends as it ended */
				r->grpc_ns = r->cancel_rec ? 0 : ns;
				r->grpc_expired = !r->cancel_rec && !ns;
				const char *kept = nv_keep(b, v, strlen(v));
				nv_add(b, "grpc-timeout", 12, kept, strlen(kept));
				continue;
			}
		}
		const uint8_t *val = f->value.ptr;
		size_t vl = f->value.len;
		if (grpc_true_binary(f)) {
			char *d = b->buf + b->used;
			/* nvb_size counted it */
			assert(b->used + jsonw_base64_len(vl - 1, false) + 1 <= b->buf_cap);
			size_t o = jsonw_base64_to(d, val + 1, vl - 1, false);
			d[o] = 0;
			b->used += o + 1;
			val = (const uint8_t *)d;
			vl = o;
		}
		/* HTTP/2 field names are lower case (RFC 9113 §8.2.1): an
		 * upgraded HTTP/1.1 request's may not be */
		const uint8_t *nm = f->name.ptr;
		size_t k = 0;
		while (k < f->name.len && !(nm[k] >= 'A' && nm[k] <= 'Z'))
			k++;
		if (k < f->name.len) {
			char *lname = nv_keep2(b, (const char *)nm, f->name.len, NULL, 0);
			for (; k < f->name.len; k++)
				if (lname[k] >= 'A' && lname[k] <= 'Z')
					lname[k] = (char)(lname[k] + 32);
			nm = (const uint8_t *)lname;
		}
		nv_add(b, nm, f->name.len, val, vl);
	}
	for (size_t k = 0; rw && k < rw->n_set; k++)
		nv_add(b, rw->set[k].name, strlen(rw->set[k].name), rw->set[k].value,
		       strlen(rw->set[k].value));
	if (rw && rw->shadow_name)
		nv_add(b, rw->shadow_name, strlen(rw->shadow_name), rw->shadow_value,
		       strlen(rw->shadow_value ? rw->shadow_value : ""));
}

static int send_req(struct replay_h2 *h, struct h2conn *c, struct h2req *r, int64_t now)
{
	struct nvb *b = h->nvb; /* one request is built at a time */
	if (nvb_size(b, &r->s.req, h->p.rewrite) < 0 || dl_reserve(h))
		return -ENOMEM;
	r->grpc_ns = 0;
	r->grpc_expired = false;
	build_fields(h, r, now, b);
	if (r->grpc_expired) /* a gRPC client does not send a call past its deadline */
		return 1;
	nghttp2_data_provider dp = {.source.ptr = r, .read_callback = body_read};
	bool body = r->s.req.body.len || r->s.req.n_trailers;
	int32_t id = nghttp2_submit_request(c->ng, NULL, b->v, b->n, body ? &dp : NULL, r);
	if (id < 0)
		return -EPROTO;
	r->stream = id;
	r->t_sent = now;
	if (!r->deadline) /* else it ran in the queue (queue_expire) */
		r->deadline = now + h->p.timeout_ns;
	inflight_add(h, c, r);
	if (r->grpc_ns && r->grpc_ns < INT64_MAX - now - H2R_GRPC_GRACE_NS &&
	    now + r->grpc_ns + H2R_GRPC_GRACE_NS < r->deadline) {
		r->grpc_dl = now + r->grpc_ns + H2R_GRPC_GRACE_NS;
		dl_push(h, r);
	}
	return 0;
}

static struct h2conn *conn_open(struct replay_h2 *h, struct h2flow *f, char *why, size_t wl)
{
	const struct replay_h2_target *t = &h->targets[f->target];
	struct h2conn *c = mem_calloc(1, sizeof(*c));
	if (!c) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	dbuf_init(&c->out, 64u << 20);
	c->flow = f;
	c->refused_cap = UINT32_MAX;
	if (c->fd < 0 || nghttp2_session_client_new2(&c->ng, h->cbs, h, h->opt) != 0) {
		snprintf(why, wl, "cannot create a connection: %s", strerror(errno));
		goto fail;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, wl, "connect: %s", strerror(errno));
		goto fail;
	}
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
				       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2R_WINDOW}};
	nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2);
	nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, 1 << 30);
	c->want_out = true;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		snprintf(why, wl, "epoll: %s", strerror(errno));
		goto fail;
	}
	h->p.stats->connects++;
	if (f->had_conn)
		h->p.stats->reconnects++;
	f->had_conn = true;
	f->conn = c;
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	if (c->ng)
		nghttp2_session_del(c->ng);
	dbuf_release(&c->out);
	mem_free(c);
	return NULL;
}

/* The flow's connection has as many streams open as the target allows:
 * its SETTINGS_MAX_CONCURRENT_STREAMS as last received, read at every
 * send (H2R_STREAMS_BEFORE_SETTINGS until its first SETTINGS frame came),
 * at most H2R_MAX_STREAMS, at most refused_cap. The rest waits in our
 * queue, where its timeout has not started. A connection that takes no
 * new stream (GOAWAY received) is full until its streams ended, then
 * replaced (flow_dispatch). */
static bool at_capacity(const struct h2flow *f)
{
	const struct h2conn *c = f->conn;
	if (!c || c->dead)
		return false;
	if (!nghttp2_session_check_request_allowed(c->ng))
		return c->n_inflight > 0;
	uint32_t max =
	    nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	if (max > H2R_MAX_STREAMS)
		max = H2R_MAX_STREAMS;
	if (max > c->refused_cap)
		max = c->refused_cap;
	return c->n_inflight >= max;
}

static struct h2req *pop(struct h2flow *f)
{
	struct h2req *r = f->qhead;
	f->qhead = r->next;
	if (!f->qhead)
		f->qtail = NULL;
	r->next = NULL;
	return r;
}

/*
 * The recorded order between streams of one connection: a stream is sent
 * only after every stream that had ended before it started in the
 * recording has ended here too (as an HTTP/1.1 request waits for the
 * response before it), while streams that overlapped in the recording
 * overlap here. So the recorded concurrency is kept at any speed.
 */
static bool waits_for_earlier(const struct h2flow *f, const struct h2req *r)
{
	const struct h2conn *c = f->conn;
	if (!c || c->dead)
		return false;
	for (uint32_t i = 0; i < c->n_inflight; i++)
		if (c->fl[i]->rec_end <= r->rec_ts && !c->fl[i]->cancelling)
			return true;
	return false;
}

static void cancel_stream(struct h2conn *c, struct h2req *r)
{
	r->cancel_due = false;
	if (nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, r->stream, NGHTTP2_CANCEL) == 0)
		r->cancelling = true;
}

/* The streams of @p c to cancel as recorded: those whose recorded bytes
 * came (cancel_due), and, when @p r is to be sent, those recorded reset
 * before it started (the recording's client had given up on them). */
static void cancel_ended(struct h2conn *c, const struct h2req *r)
{
	if (!c || c->dead || !c->n_cancel_rec)
		return;
	c->cancel_due = false;
	for (uint32_t i = 0; i < c->n_inflight; i++) {
		struct h2req *q = c->fl[i];
		if (q->cancel_rec && !q->cancelling &&
		    (q->cancel_due || (r && q->rec_end <= r->rec_ts)))
			cancel_stream(c, q);
	}
}

/* The error of a request whose timeout ran out in the queue (queue_expire). */
static const char *none_msg(const struct replay_h2 *h, char *buf, size_t n)
{
	snprintf(buf, n,
		 "not sent within %.3f s: the target allows no streams "
		 "(SETTINGS_MAX_CONCURRENT_STREAMS 0)",
		 (double)h->p.timeout_ns / 1e9);
	return buf;
}

/* Send the due requests of flow @p f, in recorded order and concurrency,
 * as many at once as the target allows. */
static void flow_dispatch(struct replay_h2 *h, struct h2flow *f, int64_t now)
{
	/* before the capacity test: a stream to cancel may be what fills it */
	cancel_ended(f->conn, f->qhead);
	while (f->qhead && f->qhead->due <= now && !at_capacity(f)) {
		struct h2req *r = f->qhead;
		cancel_ended(f->conn, r);
		if (waits_for_earlier(f, r)) {
			f->blocked = true; /* until one of its streams ends */
			break;
		}
		if (h->targets[f->target].tls) {
			pop(f);
			h->queued--;
			finish(h, r, STORE_ERR_TLS,
			       "HTTP/2 over TLS (h2) is not supported: replay h2c sessions to an "
			       "http:// target",
			       NULL);
			continue;
		}
		if (r->deadline && r->deadline <= now) { /* ran out in the queue */
			char msg[160];
			pop(f);
			h->queued--;
			finish(h, r, STORE_ERR_TIMEOUT, none_msg(h, msg, sizeof(msg)), NULL);
			continue;
		}
		if (f->conn && !f->conn->dead &&
		    !nghttp2_session_check_request_allowed(f->conn->ng))
			conn_close(h, f->conn); /* GOAWAY received, nothing left on it */
		if (!f->conn || f->conn->dead) {
			char why[160];
			if (!conn_open(h, f, why, sizeof(why))) {
				pop(f);
				h->queued--;
				finish(h, r, STORE_ERR_CONNECT, why, NULL);
				continue;
			}
		}
		pop(f);
		h->queued--;
		int sr = send_req(h, f->conn, r, now);
		if (sr < 0) {
			finish(h, r, STORE_ERR_OTHER, "cannot submit the request", NULL);
			continue;
		}
		if (sr > 0) {
			h->p.stats->h2_grpc_deadline++;
			finish(h, r, STORE_ERR_TIMEOUT,
			       STORE_GRPC_DEADLINE
			       ": its grpc-timeout ran out before it could be sent "
			       "(not sent, as a gRPC client does not send it)",
			       NULL);
			continue;
		}
	}
	if (f->conn && conn_flush(h, f->conn) < 0)
		conn_fail(h, f->conn, STORE_ERR_RESET, "connection lost while sending");
}

static void conn_io(struct replay_h2 *h, struct h2conn *c, uint32_t ev)
{
	if (!c->connected && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			char msg[128];
			snprintf(msg, sizeof(msg), "connect: %s", strerror(err));
			conn_fail(h, c, err == ECONNREFUSED ? STORE_ERR_REFUSED : STORE_ERR_CONNECT,
				  msg);
			return;
		}
		c->connected = true;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = recv(c->fd, h->rbuf, H2R_READ_BUF, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				conn_fail(h, c, STORE_ERR_RESET,
					  n == 0 ? "connection closed by the target"
						 : "connection reset by the target");
				return;
			}
			h->p.stats->bytes_received += (uint64_t)n;
			ssize_t k = nghttp2_session_mem_recv(c->ng, h->rbuf, (size_t)n);
			if (k < 0) {
				char msg[128];
				snprintf(msg, sizeof(msg), "HTTP/2 error from the target: %s",
					 nghttp2_strerror((int)k));
				conn_fail(h, c, STORE_ERR_BAD_RESPONSE, msg);
				return;
			}
			if ((size_t)n < H2R_READ_BUF)
				break;
		}
	}
	if (c->cancel_due)
		cancel_ended(c, NULL);
	if (conn_flush(h, c) < 0) {
		conn_fail(h, c, STORE_ERR_RESET, "connection lost while sending");
		return;
	}
	if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
	    !c->n_inflight) {
		conn_close(h, c); /* GOAWAY handled and nothing left */
		return;
	}
	if (!c->n_inflight && !c->flow->qhead && !c->idle_since)
		c->idle_since = h->now;
	if (c->n_inflight)
		c->idle_since = 0;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */
/* ------------------------------------------------------------------ */

struct replay_h2 *replay_h2_create(const struct replay_h2_params *p, char *err, size_t errlen)
{
	struct replay_h2 *h = mem_calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->p = *p;
	h->epfd = -1;
	h->targets = mem_alloc(p->n_targets * sizeof(*h->targets));
	h->rbuf = mem_alloc(H2R_READ_BUF);
	h->nvb = mem_calloc(1, sizeof(*h->nvb));
	if (!h->targets || !h->rbuf || !h->nvb || nghttp2_session_callbacks_new(&h->cbs) != 0 ||
	    nghttp2_option_new(&h->opt) != 0) {
		snprintf(err, errlen, "out of memory");
		replay_h2_free(h);
		return NULL;
	}
	memcpy(h->targets, p->targets, p->n_targets * sizeof(*h->targets));
	nghttp2_option_set_peer_max_concurrent_streams(h->opt, H2R_STREAMS_BEFORE_SETTINGS);
	nghttp2_session_callbacks_set_on_begin_headers_callback(h->cbs, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(h->cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(h->cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h->cbs, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(h->cbs, cb_close);
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		replay_h2_free(h);
		return NULL;
	}
	return h;
}

int replay_h2_fd(const struct replay_h2 *h)
{
	return h->epfd;
}

int replay_h2_submit(struct replay_h2 *h, const struct store_session *s, uint64_t flow_key,
		     int64_t due_ns, void *user, const struct replay_dep *dep)
{
	/* recorded reset by the client after its response began: ended the
	 * same way (a reset by the server is the target's to repeat or not);
	 * before any response: at the time the recorded client gave up, when
	 * the recording says when that was */
	int64_t cancel_wait = replay_reset_wait(s);
	bool cancel_rec = replay_client_reset(s) && (s->resp.present || cancel_wait);
	uint64_t cancel_at = s->resp.body_len;
	int64_t rec_end = cancel_wait	       ? s->ts_reset_ns
			  : s->ts_resp_last_ns ? s->ts_resp_last_ns
					       : INT64_MAX;
	struct store_session q = *s; /* the request is all a stream needs */
	q.resp = (struct store_message){0};
	q.lane = (struct store_slice){0};
	s = &q;
	size_t tail = replay_session_tail_size(s);
	for (uint32_t ti = 0; ti < h->p.n_targets; ti++) {
		struct h2flow *f = flow_get(h, flow_key, ti, true);
		struct h2req *r = f ? req_get(h, tail) : NULL;
		if (!r) {
			if (f)
				flow_maybe_free(h, f);
			return -ENOMEM;
		}
		replay_session_copy(&r->s, s, r->tail);
		r->flow = f;
		r->user = user;
		r->session_id = s->id;
		r->due = due_ns;
		r->rec_ts = s->ts_req_first_ns;
		r->rec_end = rec_end;
		r->rec_stream = s->stream_id;
		r->cancel_rec = cancel_rec;
		r->cancel_at = cancel_at;
		r->cancel_wait = cancel_wait;
		if (dep && dep->ent) {
			r->has_dep = true;
			r->dep = dep->ent;
		}
		queue_add(f, r);
		h->queued++;
	}
	return 0;
}

/* The flow's connection is open but allows no stream at all: the target's
 * SETTINGS_MAX_CONCURRENT_STREAMS is 0 and nothing is in flight, so no
 * stream that ends will make room. */
static bool allows_none(const struct h2flow *f)
{
	return f->conn && !f->conn->dead && !f->conn->n_inflight && at_capacity(f);
}

/* When due request @p r of a flow that allows no stream times out. */
static int64_t queue_deadline(const struct replay_h2 *h, const struct h2flow *f,
			      const struct h2req *r)
{
	if (r->deadline)
		return r->deadline;
	return (r->due > f->none_since ? r->due : f->none_since) + h->p.timeout_ns;
}

/*
 * A target that allows no stream (SETTINGS_MAX_CONCURRENT_STREAMS 0) and
 * keeps the connection open would leave @p f's queue waiting for ever: its
 * due requests have their timeout running from when they were due (or the
 * target stopped allowing streams), keep what is left of it if the target
 * raises the limit in time, and end as timeouts when it runs out.
 */
static void queue_expire(struct replay_h2 *h, struct h2flow *f, int64_t now)
{
	/* cheap tests first: this runs for every flow at every turn */
	if (!f->qhead || f->qhead->due > now || !allows_none(f)) {
		f->none_since = 0;
		return;
	}
	if (!f->none_since)
		f->none_since = now;
	struct h2req *gone = NULL, **gtail = &gone, *prev = NULL;
	for (struct h2req *r = f->qhead, *nr; r && r->due <= now; r = nr) {
		nr = r->next;
		r->deadline = queue_deadline(h, f, r);
		if (r->deadline > now) {
			prev = r;
			continue;
		}
		if (prev)
			prev->next = nr;
		else
			f->qhead = nr;
		if (f->qtail == r)
			f->qtail = prev;
		h->queued--;
		r->next = NULL;
		*gtail = r;
		gtail = &r->next;
	}
	char msg[160];
	none_msg(h, msg, sizeof(msg));
	for (struct h2req *r = gone, *nr; r; r = nr) {
		nr = r->next;
		finish(h, r, STORE_ERR_TIMEOUT, msg, NULL); /* may queue requests: not in gone */
	}
}

static void expire(struct replay_h2 *h, int64_t now)
{
	while (h->ihead && h->ihead->deadline <= now) {
		struct h2req *r = h->ihead;
		struct h2conn *c = r->conn;
		nghttp2_session_set_stream_user_data(c->ng, r->stream, NULL);
		nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, r->stream, NGHTTP2_CANCEL);
		inflight_del(h, r);
		char msg[96];
		snprintf(msg, sizeof(msg), "no whole response within %.3f s",
			 (double)h->p.timeout_ns / 1e9);
		finish(h, r, STORE_ERR_TIMEOUT, msg, NULL);
		if (conn_flush(h, c) < 0)
			conn_fail(h, c, STORE_ERR_RESET, "connection lost while sending");
	}
	if (now < h->idle_check)
		return;
	h->idle_check = now + 1000000; /* idle connections: looked at every ms */
	for (struct h2flow *f = h->flows; f; f = f->next) {
		struct h2conn *c = f->conn;
		if (c && !c->n_inflight && !f->qhead && c->idle_since &&
		    now - c->idle_since >= h->p.idle_ns)
			conn_close(h, c); /* the flow goes in the next sweep */
	}
}

/*
 * gRPC calls whose deadline passed (grpc_dl: the grpc-timeout sent, and
 * H2R_GRPC_GRACE_NS for a server that ends the call itself at its
 * deadline to be heard first) with no whole answer: ended as a gRPC
 * client ends them, RST_STREAM(CANCEL) and DEADLINE_EXCEEDED. The result
 * is a timeout whose message starts STORE_GRPC_DEADLINE: diff compares it
 * as that status, not as a failed replay (docs/http2.md "Replay").
 */
static void grpc_expire(struct replay_h2 *h, int64_t now)
{
	while (h->n_dl && h->dl[0]->grpc_dl <= now) {
		struct h2req *r = h->dl[0];
		dl_del(h, r);
		if (r->cancelling)
			continue; /* being cancelled as recorded */
		struct h2conn *c = r->conn;
		nghttp2_session_set_stream_user_data(c->ng, r->stream, NULL);
		nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, r->stream, NGHTTP2_CANCEL);
		inflight_del(h, r);
		h->p.stats->h2_grpc_deadline++;
		char msg[200];
		snprintf(msg, sizeof(msg),
			 STORE_GRPC_DEADLINE ": no whole answer within the call's grpc-timeout "
					     "(%.3f s as sent, %.3f s grace); %" PRIu64
					     " response body bytes came",
			 (double)r->grpc_ns / 1e9, (double)H2R_GRPC_GRACE_NS / 1e9, r->body_len);
		finish(h, r, STORE_ERR_TIMEOUT, msg, NULL);
		if (conn_flush(h, c) < 0)
			conn_fail(h, c, STORE_ERR_RESET, "connection lost while sending");
	}
}

/* When stream @p r, recorded reset before any response, is cancelled. */
static int64_t cancel_time(const struct h2req *r)
{
	return r->t_sent + r->cancel_wait;
}

/* Cancel the streams recorded reset before any response whose recorded
 * client's wait is over (cancel_wait). */
static void cancel_timed(struct replay_h2 *h, int64_t now)
{
	for (struct h2flow *f = h->flows; f; f = f->next) {
		struct h2conn *c = f->conn;
		if (!c || c->dead || !c->n_cancel_rec)
			continue;
		bool any = false;
		for (uint32_t i = 0; i < c->n_inflight; i++) {
			struct h2req *q = c->fl[i];
			if (q->cancel_wait && !q->cancelling && cancel_time(q) <= now) {
				cancel_stream(c, q);
				any = true;
			}
		}
		if (any && conn_flush(h, c) < 0)
			conn_fail(h, c, STORE_ERR_RESET, "connection lost while sending");
	}
}

void replay_h2_run(struct replay_h2 *h, int64_t now)
{
	h->now = now;
	struct epoll_event ev[H2R_MAX_EVENT];
	int n = epoll_wait(h->epfd, ev, H2R_MAX_EVENT, 0);
	for (int i = 0; i < n; i++)
		conn_io(h, ev[i].data.ptr, ev[i].events);
	/* after the answers: streams they closed make room */
	for (struct h2flow *f = h->flows; f; f = f->next)
		if (f->qhead && f->qhead->due <= now)
			flow_dispatch(h, f, now);
	if (h->n_timed)
		cancel_timed(h, now);
	for (struct h2flow *f = h->flows; f; f = f->next)
		queue_expire(h, f, now);
	expire(h, now);
	grpc_expire(h, now);
	for (struct h2flow *f = h->flows, *nf; f; f = nf) { /* sweep */
		nf = f->next;
		flow_maybe_free(h, f);
	}
}

int64_t replay_h2_next_due(const struct replay_h2 *h)
{
	int64_t w = INT64_MAX;
	for (const struct h2flow *f = h->flows; f; f = f->next)
		if (f->qhead && f->qhead->due < w && !at_capacity(f) && !f->blocked)
			w = f->qhead->due; /* a full or waiting connection: woken by answers */
	return w;
}

int64_t replay_h2_next_wake(const struct replay_h2 *h)
{
	int64_t w = replay_h2_next_due(h);
	if (h->ihead && h->ihead->deadline < w)
		w = h->ihead->deadline;
	if (h->n_dl && h->dl[0]->grpc_dl < w)
		w = h->dl[0]->grpc_dl;
	for (const struct h2flow *f = h->flows; f; f = f->next) {
		const struct h2conn *c = f->conn;
		if (f->none_since) /* allows no stream: its due requests time out */
			for (const struct h2req *r = f->qhead; r; r = r->next) {
				int64_t d = queue_deadline(h, f, r);
				if (d < w)
					w = d;
			}
		if (c && c->idle_since && !c->n_inflight && c->idle_since + h->p.idle_ns < w)
			w = c->idle_since + h->p.idle_ns;
		for (uint32_t i = 0;
		     h->n_timed && c && !c->dead && c->n_cancel_rec && i < c->n_inflight; i++) {
			const struct h2req *q = c->fl[i];
			if (q->cancel_wait && !q->cancelling && cancel_time(q) < w)
				w = cancel_time(q);
		}
	}
	return w;
}

uint64_t replay_h2_pending(const struct replay_h2 *h)
{
	return h->queued + h->inflight;
}

void replay_h2_cancel(struct replay_h2 *h, uint64_t flow_key, int64_t rec_ts, int64_t rec_end,
		      uint64_t rec_bytes, int64_t wait_ns)
{
	for (uint32_t ti = 0; ti < h->p.n_targets; ti++) {
		struct h2flow *f = flow_get(h, flow_key, ti, false);
		for (struct h2req *r = f ? f->qhead : NULL; r; r = r->next) {
			if (r->rec_ts != rec_ts)
				continue;
			r->cancel_rec = true;
			r->cancel_at = rec_bytes;
			r->cancel_wait = wait_ns > 0 ? wait_ns : 0;
			if (rec_end)
				r->rec_end = rec_end;
		}
		struct h2conn *c = f ? f->conn : NULL;
		if (!c || c->dead)
			continue;
		bool any = false;
		for (uint32_t i = 0; i < c->n_inflight; i++) {
			struct h2req *r = c->fl[i];
			if (r->rec_ts != rec_ts || r->cancelling)
				continue;
			if (!r->cancel_rec) {
				r->cancel_rec = true; /* as if known at submit (inflight_del) */
				c->n_cancel_rec++;
			}
			r->cancel_at = rec_bytes;
			cancel_stream(c, r);
			any = true;
		}
		if (any && conn_flush(h, c) < 0)
			conn_fail(h, c, STORE_ERR_RESET, "connection lost while sending");
	}
}

void replay_h2_drop_queued(struct replay_h2 *h)
{
	for (struct h2flow *f = h->flows, *nf; f; f = nf) {
		nf = f->next;
		while (f->qhead) {
			struct h2req *r = pop(f);
			h->queued--;
			h->p.stats->not_sent++;
			struct replay_h2_out o = {.target = f->target,
						  .dep = r->has_dep ? r->dep : NULL,
						  .kind = UINT32_MAX};
			h->p.done(h->p.ctx, &o); /* not sent: only its causal entry is reported */
			req_free(r);
		}
		flow_maybe_free(h, f);
	}
}

void replay_h2_close_all(struct replay_h2 *h, bool report)
{
	replay_h2_drop_queued(h);
	while (h->flows) {
		struct h2flow *f = h->flows;
		if (!f->conn) {
			flow_free(h, f);
			continue;
		}
		if (report) {
			conn_fail(h, f->conn, STORE_ERR_OTHER, "interrupted");
			flow_maybe_free(h, f);
			continue;
		}
		struct h2conn *c = f->conn;
		for (struct h2req *r = h->ihead, *nr; r && c->n_inflight; r = nr) {
			nr = r->next;
			if (r->conn != c)
				continue;
			inflight_del(h, r);
			if (r->stream > 0)
				nghttp2_session_set_stream_user_data(c->ng, r->stream, NULL);
			req_free(r);
		}
		conn_close(h, c);
		flow_maybe_free(h, f);
	}
}

void replay_h2_close_idle(struct replay_h2 *h)
{
	for (struct h2flow *f = h->flows, *nf; f; f = nf) {
		nf = f->next;
		if (f->conn && !f->conn->n_inflight && !f->qhead)
			conn_close(h, f->conn);
		flow_maybe_free(h, f);
	}
}

void replay_h2_free(struct replay_h2 *h)
{
	if (!h)
		return;
	if (h->epfd >= 0) {
		replay_h2_close_all(h, false);
		close(h->epfd);
	}
	if (h->cbs)
		nghttp2_session_callbacks_del(h->cbs);
	if (h->opt)
		nghttp2_option_del(h->opt);
	mem_free(h->targets);
	mem_free(h->rbuf);
	nvb_release(h->nvb);
	mem_free(h->nvb);
	mem_free(h->hv);
	mem_free(h->dl);
	while (h->spare) {
		struct h2req *r = h->spare;
		h->spare = r->next;
		req_free(r);
	}
	mem_free(h);
}
