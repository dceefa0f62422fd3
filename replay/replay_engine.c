/* SPDX-License-Identifier: MIT */
/*
 * replay_engine - the sender: one epoll event loop with non-blocking
 * target connections, shared by `dyetap replay` and live shadowing.
 *
 * Model. Requests are submitted with a flow key and a due time. A flow is
 * a recorded connection (or, pooled, one shared queue per target); its
 * requests go out in order, each after the previous response, over one
 * target connection that is kept alive as long as the target allows
 * (RFC 9112 §9.3 persistence; a close by the target means a reconnect for
 * the next request, and a request that raced a keep-alive close with no
 * response byte read is resent once, as browsers do, RFC 9112 §9.3.1).
 * Flows with a due request sit in a min-heap by due time; the loop sleeps
 * in epoll_pwait2() until the earliest due time or timeout deadline, so
 * pacing has nanosecond timer resolution. Every request ends in exactly
 * one callback with a store_result: a response parsed by capture's http1
 * parser, or an error kind (refused, reset, timeout, bad response,
 * connect, tls, other). Memory is bounded by what is queued: flows are
 * freed as soon as they are empty and connection-less.
 *
 * TLS uses OpenSSL on the same non-blocking sockets (SSL_connect/read/
 * write retried on WANT_READ/WANT_WRITE), with peer verification and SNI.
 *
 * Causal order (replay_causal.h): a due flow whose head request waits for
 * a dependency leaves the due heap and is parked with the tracker; when
 * the tracker releases it (a local completion, or another thread's
 * progress signalled on its eventfd, which sits in this epoll set) it
 * returns to the due heap. The time parked is the request's causal wait,
 * reported apart from scheduling lateness. A request's finish on a target
 * is reported to the tracker before anything else happens on its
 * connection, so the next request of the same connection may depend on it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture/http1.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "replay/replay.h"
#include "replay/replay_causal.h"
#include "replay/replay_h2.h"

#define REPLAY_LOG(lvl, ...) LOG_MSG(lvl, "replay", __VA_ARGS__)

#define READ_BUF       (64 * 1024)
#define MAX_EVENTS     256
#define ENGINE_POLL_NS 20000 /* waits shorter than this poll instead of sleeping */
#define REQ_MAX_BYTES  (256u * 1024 * 1024)

/* Serialized request bytes, shared by the per-target copies of a request. */
struct rbytes {
	uint32_t refs;
	size_t len;
	union {
		struct rbytes *next_free; /* in the engine's spare list */
		size_t cap;		  /* bytes of data[] */
	} u;
	uint8_t data[];
};

struct rreq {
	struct rreq *next;
	struct rbytes *bytes;
	uint64_t session_id;
	void *user;
	int64_t due;
	char method[16];
	uint8_t method_len;
	bool retried;
	bool close;	 /* the request itself asks to close the connection */
	bool has_dep;	 /* dep is set (causal order) */
	bool dep_done;	 /* its finish was reported to the tracker */
	int64_t t_block; /* when its gate first refused it, 0 when not waiting */
	int64_t cwait;	 /* time spent waiting for dependencies */
	struct replay_dep dep;
};

enum cstate {
	C_CONNECTING,
	C_HANDSHAKE,
	C_SENDING,
	C_RECEIVING,
	C_IDLE,
};

struct rflow;

struct rconn {
	int fd;
	SSL *ssl;
	enum cstate state;
	struct rflow *flow;
	struct rreq *req;
	size_t sent_off;
	struct http1_parser *parser;
	int64_t t_start;    /* connect start or send start of the current request */
	int64_t t_sent;	    /* first request byte written */
	int64_t deadline;   /* 0: not in the deadline list */
	int64_t idle_since; /* when it went idle with an empty flow queue */
	bool reused;	    /* served a whole response before */
	bool got_bytes;	    /* response bytes seen for the current request */
	bool in_idle_list;
	bool want_write;	     /* TLS: a read wants write readiness, or vice versa */
	struct rconn *dprev, *dnext; /* deadline list */
	struct rconn *iprev, *inext; /* per-target idle list (evictable) */
	struct rconn *fnext;	     /* flow's connection list */
};

struct rflow {
	uint64_t key;
	uint32_t target;
	struct rflow *hnext;
	struct rreq *qhead, *qtail;
	struct rconn *conns;
	uint32_t nconns, busy, max_conns;
	size_t heap_idx; /* SIZE_MAX when not in the heap */
	bool waiting;	 /* in the target's wait list for a free slot */
	bool parked;	 /* its head request waits for a dependency (causal order) */
	bool had_conn;
	struct rflow *wnext;
};

struct rtarget {
	char *url;
	char *role;
	size_t url_len, role_len;
	struct replay_url u;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	SSL_CTX *ssl_ctx;
	char *sni;
	uint32_t open;			     /* connections open */
	struct rconn *idle_head, *idle_tail; /* oldest first */
	struct rflow *wait_head, *wait_tail; /* flows waiting for a slot */
};

struct replay_engine {
	struct replay_engine_params p;
	struct rtarget *targets;
	int epfd;
	int64_t real_minus_mono;
	/* flow hash table */
	struct rflow **htab;
	size_t hcap, nflows;
	/* due heap */
	struct rflow **heap;
	size_t heap_len, heap_cap;
	/* deadline list (timeout is constant, so append keeps it sorted) */
	struct rconn *dhead, *dtail;
	uint64_t queued, inflight;
	uint64_t completed_iter;
	struct dbuf reqbuf;
	uint8_t *rbuf;
	/* Spare requests and small request buffers, reused rather than freed:
	 * malloc's per-thread cache holds a few objects per size, far fewer
	 * than the requests in flight. */
	struct rreq *spare_req;
	struct rbytes *spare_bytes;
	uint32_t n_spare_req, n_spare_bytes;
	struct replay_stats st;
	struct replay_hist lat, late, cwait;
	struct replay_causal_thr *causal; /* borrowed; NULL: no causal order */
	int64_t cb_now;			  /* clock for the unpark callback */
	int causal_tag;			  /* its address marks the tracker's eventfd */
	struct replay_h2 *h2;		  /* HTTP/2 sessions (replay_h2.h); NULL until one comes */
	int h2_tag;			  /* its address marks the HTTP/2 sender's epoll fd */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

#define SPARE_MAX    1024 /* of each kind */
#define RBYTES_SMALL 480  /* data[] of a recycled request buffer */

static struct rbytes *rbytes_new(struct replay_engine *e, size_t len)
{
	struct rbytes *b = NULL;
	size_t cap = len;
	if (len <= RBYTES_SMALL) {
		cap = RBYTES_SMALL;
		if ((b = e->spare_bytes)) {
			e->spare_bytes = b->u.next_free;
			e->n_spare_bytes--;
		}
	}
	if (!b && !(b = mem_alloc(sizeof(*b) + cap)))
		return NULL;
	b->refs = 0;
	b->len = len;
	b->u.cap = cap;
	return b;
}

static void rbytes_put(struct replay_engine *e, struct rbytes *b)
{
	if (!b || --b->refs > 0)
		return;
	if (b->u.cap == RBYTES_SMALL && e->n_spare_bytes < SPARE_MAX) {
		b->u.next_free = e->spare_bytes;
		e->spare_bytes = b;
		e->n_spare_bytes++;
		return;
	}
	mem_free(b);
}

static struct rreq *req_new(struct replay_engine *e)
{
	struct rreq *r = e->spare_req;
	if (!r)
		return mem_calloc(1, sizeof(*r));
	e->spare_req = r->next;
	e->n_spare_req--;
	memset(r, 0, sizeof(*r));
	return r;
}

static void req_free(struct replay_engine *e, struct rreq *r)
{
	if (!r)
		return;
	rbytes_put(e, r->bytes);
	if (e->n_spare_req < SPARE_MAX) {
		r->next = e->spare_req;
		e->spare_req = r;
		e->n_spare_req++;
		return;
	}
	mem_free(r);
}

static void spares_free(struct replay_engine *e)
{
	while (e->spare_req) {
		struct rreq *r = e->spare_req;
		e->spare_req = r->next;
		mem_free(r);
	}
	while (e->spare_bytes) {
		struct rbytes *b = e->spare_bytes;
		e->spare_bytes = b->u.next_free;
		mem_free(b);
	}
	e->n_spare_req = e->n_spare_bytes = 0;
}

static uint64_t key_hash(uint64_t key, uint32_t target)
{
	return replay_conn_hash(key, target);
}

/* ---- heap of flows by due time of their queue head ---- */

static int64_t flow_due(const struct rflow *f)
{
	return f->qhead->due;
}

static void heap_swap(struct replay_engine *e, size_t a, size_t b)
{
	struct rflow *t = e->heap[a];
	e->heap[a] = e->heap[b];
	e->heap[b] = t;
	e->heap[a]->heap_idx = a;
	e->heap[b]->heap_idx = b;
}

static void heap_up(struct replay_engine *e, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (flow_due(e->heap[parent]) <= flow_due(e->heap[i]))
			break;
		heap_swap(e, parent, i);
		i = parent;
	}
}

static void heap_down(struct replay_engine *e, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < e->heap_len && flow_due(e->heap[l]) < flow_due(e->heap[m]))
			m = l;
		if (r < e->heap_len && flow_due(e->heap[r]) < flow_due(e->heap[m]))
			m = r;
		if (m == i)
			break;
		heap_swap(e, i, m);
		i = m;
	}
}

static void heap_remove(struct replay_engine *e, struct rflow *f)
{
	size_t i = f->heap_idx;
	if (i == SIZE_MAX)
		return;
	e->heap_len--;
	if (i != e->heap_len) {
		e->heap[i] = e->heap[e->heap_len];
		e->heap[i]->heap_idx = i;
		heap_down(e, i);
		heap_up(e, i);
	}
	f->heap_idx = SIZE_MAX;
}

static int heap_push(struct replay_engine *e, struct rflow *f)
{
	if (e->heap_len == e->heap_cap) {
		size_t ncap = e->heap_cap ? 2 * e->heap_cap : 64;
		struct rflow **nh = mem_realloc(e->heap, ncap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		e->heap = nh;
		e->heap_cap = ncap;
	}
	f->heap_idx = e->heap_len;
	e->heap[e->heap_len++] = f;
	heap_up(e, f->heap_idx);
	return 0;
}

/* Put the flow in the heap iff it has a request and a free connection capacity. */
static void flow_update(struct replay_engine *e, struct rflow *f)
{
	bool want = f->qhead && f->busy < f->max_conns && !f->waiting && !f->parked;
	if (!want) {
		heap_remove(e, f);
		return;
	}
	if (f->heap_idx == SIZE_MAX) {
		if (heap_push(e, f))
			REPLAY_LOG(LOG_ERROR, "out of memory growing the due heap");
		return;
	}
	heap_down(e, f->heap_idx);
	heap_up(e, f->heap_idx);
}

/* ---- flow table ---- */

static struct rflow *flow_find(struct replay_engine *e, uint64_t key, uint32_t target)
{
	size_t b = key_hash(key, target) & (e->hcap - 1);
	for (struct rflow *f = e->htab[b]; f; f = f->hnext)
		if (f->key == key && f->target == target)
			return f;
	return NULL;
}

static int flow_table_grow(struct replay_engine *e)
{
	size_t ncap = e->hcap * 2;
	struct rflow **nt = mem_calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < e->hcap; i++) {
		struct rflow *f = e->htab[i];
		while (f) {
			struct rflow *next = f->hnext;
			size_t b = key_hash(f->key, f->target) & (ncap - 1);
			f->hnext = nt[b];
			nt[b] = f;
			f = next;
		}
	}
	mem_free(e->htab);
	e->htab = nt;
	e->hcap = ncap;
	return 0;
}

static struct rflow *flow_get(struct replay_engine *e, uint64_t key, uint32_t target)
{
	struct rflow *f = flow_find(e, key, target);
	if (f)
		return f;
	if (e->nflows + 1 > e->hcap && flow_table_grow(e))
		return NULL;
	f = mem_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->key = key;
	f->target = target;
	f->heap_idx = SIZE_MAX;
	f->max_conns = e->p.pooled ? e->p.concurrency : 1;
	size_t b = key_hash(key, target) & (e->hcap - 1);
	f->hnext = e->htab[b];
	e->htab[b] = f;
	e->nflows++;
	return f;
}

/* Free a flow that has nothing queued and no connection. */
static void flow_maybe_free(struct replay_engine *e, struct rflow *f)
{
	if (f->qhead || f->conns || f->waiting || f->parked || f->heap_idx != SIZE_MAX)
		return;
	size_t b = key_hash(f->key, f->target) & (e->hcap - 1);
	struct rflow **pp = &e->htab[b];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	e->nflows--;
	mem_free(f);
}

/* ---- lists ---- */

static void deadline_unlink(struct replay_engine *e, struct rconn *c)
{
	if (!c->deadline)
		return;
	if (c->dprev)
		c->dprev->dnext = c->dnext;
	else
		e->dhead = c->dnext;
	if (c->dnext)
		c->dnext->dprev = c->dprev;
	else
		e->dtail = c->dprev;
	c->dprev = c->dnext = NULL;
	c->deadline = 0;
}

static void deadline_set(struct replay_engine *e, struct rconn *c, int64_t when)
{
	deadline_unlink(e, c);
	c->deadline = when;
	c->dprev = e->dtail;
	c->dnext = NULL;
	if (e->dtail)
		e->dtail->dnext = c;
	else
		e->dhead = c;
	e->dtail = c;
}

static void idle_unlink(struct rtarget *t, struct rconn *c)
{
	if (!c->in_idle_list)
		return;
	if (c->iprev)
		c->iprev->inext = c->inext;
	else
		t->idle_head = c->inext;
	if (c->inext)
		c->inext->iprev = c->iprev;
	else
		t->idle_tail = c->iprev;
	c->iprev = c->inext = NULL;
	c->in_idle_list = false;
}

static void idle_append(struct rtarget *t, struct rconn *c, int64_t now)
{
	idle_unlink(t, c);
	c->idle_since = now;
	c->iprev = t->idle_tail;
	c->inext = NULL;
	if (t->idle_tail)
		t->idle_tail->inext = c;
	else
		t->idle_head = c;
	t->idle_tail = c;
	c->in_idle_list = true;
}

/* ------------------------------------------------------------------ */
/* causal order                                                        */
/* ------------------------------------------------------------------ */

/* May request @p r go to target @p ti now (its dependencies finished)? */
static bool causal_ok(struct replay_engine *e, const struct rreq *r, uint32_t ti)
{
	return !r->has_dep || replay_causal_ready(e->causal, &r->dep, ti);
}

/* Report request @p r's finish on target @p ti (once): its dependents may go. */
static void causal_finish(struct replay_engine *e, struct rreq *r, uint32_t ti)
{
	if (!r->has_dep || r->dep_done)
		return;
	r->dep_done = true;
	replay_causal_done(e->causal, r->dep.ent, ti);
}

/* The tracker releases a parked flow: back to the due heap. */
static void causal_unpark(void *ctx, void *obj)
{
	struct replay_engine *e = ctx;
	struct rflow *f = obj;
	f->parked = false;
	struct rreq *r = f->qhead;
	if (r && r->t_block) {
		r->cwait += e->cb_now - r->t_block;
		r->t_block = 0;
	}
	flow_update(e, f);
}

/* Park flow @p f, whose head request waits for a dependency. False when
 * it cannot be parked (out of memory): it then goes without waiting. */
static bool causal_park(struct replay_engine *e, struct rflow *f, int64_t now)
{
	struct rreq *r = f->qhead;
	if (replay_causal_park(e->causal, &r->dep, f->target, f))
		return false;
	if (!r->t_block)
		r->t_block = now;
	f->parked = true;
	flow_update(e, f);
	return true;
}

/* ------------------------------------------------------------------ */
/* completion                                                          */
/* ------------------------------------------------------------------ */

static void count_error(struct replay_stats *st, uint32_t kind)
{
	switch (kind) {
	case STORE_ERR_REFUSED:
		st->err_refused++;
		break;
	case STORE_ERR_RESET:
		st->err_reset++;
		break;
	case STORE_ERR_TIMEOUT:
		st->err_timeout++;
		break;
	case STORE_ERR_BAD_RESPONSE:
		st->err_bad_response++;
		break;
	case STORE_ERR_CONNECT:
		st->err_connect++;
		break;
	case STORE_ERR_TLS:
		st->err_tls++;
		break;
	default:
		st->err_other++;
		break;
	}
}

/* One outcome to the callback, counted. */
static void report_result(struct replay_engine *e, uint32_t ti, uint64_t session_id, void *user,
			  int64_t due, int64_t cwait, int64_t t_sent, int64_t now, uint32_t kind,
			  const char *msg, const struct store_message *resp, bool partial)
{
	struct rtarget *t = &e->targets[ti];
	struct store_result res;
	memset(&res, 0, sizeof(res));
	res.session_id = session_id;
	res.target.ptr = (const uint8_t *)t->url;
	res.target.len = t->url_len;
	res.role.ptr = (const uint8_t *)t->role;
	res.role.len = t->role_len;
	int64_t sent_at = t_sent ? t_sent : now;
	res.ts_sent_ns = sent_at + e->real_minus_mono;
	res.latency_ns = now > sent_at ? (uint64_t)(now - sent_at) : 0;
	res.lateness_ns = sent_at - due;
	res.causal_wait_ns = cwait > 0 ? (uint64_t)cwait : 0;
	res.error = kind;
	if (msg) {
		res.error_msg.ptr = (const uint8_t *)msg;
		res.error_msg.len = strlen(msg);
	}
	if (resp)
		res.resp = *resp;
	e->st.sent++;
	/* Scheduling lateness: what waiting for dependencies does not explain. */
	replay_hist_add(&e->late, res.lateness_ns - (int64_t)res.causal_wait_ns);
	if (res.causal_wait_ns) {
		e->st.causal_waits++;
		replay_hist_add(&e->cwait, (int64_t)res.causal_wait_ns);
	}
	if (kind == STORE_ERR_NONE) {
		e->st.ok++;
		if (!partial) /* a stream cancelled as recorded: how long it was open */
			replay_hist_add(&e->lat, (int64_t)res.latency_ns);
		if (resp && resp->truncated)
			e->st.resp_truncated++;
	} else {
		count_error(&e->st, kind);
	}
	e->completed_iter++;
	e->p.on_done(e->p.ctx, user, &res);
}

/* Report request @p r of target @p ti; @p resp NULL on error. Frees r. */
static void complete(struct replay_engine *e, uint32_t ti, struct rreq *r, int64_t t_sent,
		     int64_t now, uint32_t kind, const char *msg, const struct store_message *resp)
{
	causal_finish(e, r, ti);
	report_result(e, ti, r->session_id, r->user, r->due, r->cwait, t_sent, now, kind, msg, resp,
		      false);
	req_free(e, r);
}

/* An HTTP/2 request finished (replay_h2.h): report it like the others. */
static void h2_done(void *ctx, const struct replay_h2_out *o)
{
	struct replay_engine *e = ctx;
	if (o->dep && e->causal)
		replay_causal_done(e->causal, o->dep, o->target);
	if (o->kind == UINT32_MAX)
		return; /* dropped before it was sent: counted not_sent */
	report_result(e, o->target, o->session_id, o->user, o->due, 0, o->t_sent, o->now, o->kind,
		      o->msg, o->resp, o->cancelled);
}

/* The HTTP/2 sender, created with the first HTTP/2 session. */
static int h2_start(struct replay_engine *e)
{
	if (e->h2)
		return 0;
	struct replay_h2_target *t = mem_calloc(e->p.n_targets, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < e->p.n_targets; i++) {
		const struct rtarget *rt = &e->targets[i];
		t[i].addr = rt->addr;
		t[i].addrlen = rt->addrlen;
		t[i].tls = rt->u.tls;
		snprintf(t[i].authority, sizeof(t[i].authority),
			 strchr(rt->u.host, ':') ? "[%s]:%u" : "%s:%u", rt->u.host, rt->u.port);
	}
	struct replay_h2_params hp = {
	    .targets = t,
	    .n_targets = e->p.n_targets,
	    .timeout_ns = e->p.timeout_ns,
	    .idle_ns = e->p.idle_ns,
	    .max_body = e->p.max_body,
	    .max_header_bytes = e->p.max_header_bytes,
	    .rewrite = e->p.rewrite,
	    .done = h2_done,
	    .ctx = e,
	    .stats = &e->st,
	};
	char err[128];
	e->h2 = replay_h2_create(&hp, err, sizeof(err));
	mem_free(t);
	if (!e->h2)
		return -ENOMEM;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->h2_tag};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, replay_h2_fd(e->h2), &ev) < 0) {
		replay_h2_free(e->h2);
		e->h2 = NULL;
		return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */
/* ------------------------------------------------------------------ */

static void conn_close(struct replay_engine *e, struct rconn *c)
{
	struct rflow *f = c->flow;
	struct rtarget *t = &e->targets[f->target];
	deadline_unlink(e, c);
	idle_unlink(t, c);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	http1_parser_free(c->parser);
	if (c->req) {
		f->busy--;
		e->inflight--;
	}
	struct rconn **pp = &f->conns;
	while (*pp && *pp != c)
		pp = &(*pp)->fnext;
	if (*pp)
		*pp = c->fnext;
	f->nconns--;
	t->open--;
	mem_free(c);
	/* A slot is free: wake the first flow waiting for one. */
	if (t->wait_head) {
		struct rflow *w = t->wait_head;
		t->wait_head = w->wnext;
		if (!t->wait_head)
			t->wait_tail = NULL;
		w->wnext = NULL;
		w->waiting = false;
		flow_update(e, w);
	}
	flow_update(e, f);
	flow_maybe_free(e, f);
}

/* RFC 9110 §9.2.2: only these may be resent without knowing whether the
 * target acted on the first attempt. */
static bool idempotent(const struct rreq *r)
{
	static const char *const m[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strlen(m[i]) == r->method_len && !memcmp(m[i], r->method, r->method_len))
			return true;
	return false;
}

/* Fail the connection's request (or retry it once) and close. */
static void conn_fail(struct replay_engine *e, struct rconn *c, uint32_t kind, const char *msg,
		      int64_t now)
{
	struct rreq *r = c->req;
	struct rflow *f = c->flow;
	if (r && c->reused && !c->got_bytes && !r->retried && kind == STORE_ERR_RESET &&
	    idempotent(r)) {
		/* Keep-alive race: the target closed an idle connection as we
		 * reused it. Resend once on a fresh connection, at the front. */
		r->retried = true;
		c->req = NULL;
		f->busy--;
		e->inflight--;
		e->queued++;
		r->next = f->qhead;
		f->qhead = r;
		if (!f->qtail)
			f->qtail = r;
		e->st.retries++;
		conn_close(e, c);
		return;
	}
	int64_t t_sent = c->t_sent;
	c->req = NULL;
	if (r) {
		f->busy--;
		e->inflight--;
	}
	uint32_t ti = f->target;
	conn_close(e, c);
	if (r)
		complete(e, ti, r, t_sent, now, kind, msg, NULL);
}

static int conn_write(struct rconn *c, const uint8_t *p, size_t n, int *err)
{
	if (c->ssl) {
		ERR_clear_error();
		int w = SSL_write(c->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		if (w > 0)
			return w;
		int se = SSL_get_error(c->ssl, w);
		if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ) {
			*err = EAGAIN;
			return -1;
		}
		*err = (se == SSL_ERROR_SYSCALL && errno) ? errno : EPROTO;
		return -1;
	}
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
	if (w >= 0)
		return (int)w;
	*err = errno;
	return -1;
}

/* Returns bytes read, 0 at EOF, -1 with *err (EAGAIN: nothing now). */
static ssize_t conn_read(struct rconn *c, uint8_t *p, size_t n, int *err)
{
	if (c->ssl) {
		ERR_clear_error();
		int r = SSL_read(c->ssl, p, (int)n);
		if (r > 0)
			return r;
		int se = SSL_get_error(c->ssl, r);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
			*err = EAGAIN;
			return -1;
		}
		if (se == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (se == SSL_ERROR_SYSCALL && errno == 0)
			return 0;
		*err = (se == SSL_ERROR_SYSCALL && errno) ? errno : EPROTO;
		return -1;
	}
	ssize_t r = recv(c->fd, p, n, 0);
	if (r >= 0)
		return r;
	*err = errno;
	return -1;
}

/* Connection option tokens of interest (RFC 9110 §7.6.1). */
enum { TOK_CLOSE = 1, TOK_KEEP_ALIVE = 2 };

/* The TOK_* bits of the comma-separated tokens in header value @p v (one pass). */
static unsigned conn_tokens(const struct store_slice *v)
{
	unsigned found = 0;
	size_t i = 0;
	while (i < v->len) {
		while (i < v->len && (v->ptr[i] == ' ' || v->ptr[i] == '\t' || v->ptr[i] == ','))
			i++;
		size_t s = i;
		while (i < v->len && v->ptr[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v->ptr[e - 1] == ' ' || v->ptr[e - 1] == '\t'))
			e--;
		const char *t = (const char *)v->ptr + s;
		if (e - s == 5 && !strncasecmp(t, "close", 5))
			found |= TOK_CLOSE;
		else if (e - s == 10 && !strncasecmp(t, "keep-alive", 10))
			found |= TOK_KEEP_ALIVE;
	}
	return found;
}

/* Is @p n "Connection" (any case)? */
static bool is_connection(const struct store_slice *n)
{
	return n->len == 10 && (n->ptr[0] | 0x20) == 'c' &&
	       !strncasecmp((const char *)n->ptr, "connection", 10);
}

/* Does the response (and request) let the connection be reused? RFC 9112 §9.3. */
static bool keep_alive(const struct store_message *m)
{
	unsigned tok = 0;
	for (size_t i = 0; i < m->n_headers; i++)
		if (is_connection(&m->headers[i].name))
			tok |= conn_tokens(&m->headers[i].value);
	if (tok & TOK_CLOSE)
		return false;
	if (m->version_major == 1 && m->version_minor == 0)
		return tok & TOK_KEEP_ALIVE;
	return true;
}

static void conn_start(struct replay_engine *e, struct rconn *c, struct rreq *r, int64_t now,
		       size_t pre_off);

/* A whole final response arrived. */
static void conn_response(struct replay_engine *e, struct rconn *c, int64_t now, bool at_eof)
{
	struct rreq *r = c->req;
	struct rflow *f = c->flow;
	const struct store_message *m = http1_message(c->parser);
	bool reuse = !at_eof && !r->close && keep_alive(m);
	int64_t t_sent = c->t_sent;
	/* First: the next request of this connection may depend on this one. */
	causal_finish(e, r, f->target);
	c->req = NULL;
	f->busy--;
	e->inflight--;
	deadline_unlink(e, c);
	c->reused = true;
	c->state = C_IDLE;
	/* Plain TCP: put the flow's next due request on the wire before filing
	 * this result, so the target works while the result is written. Only a
	 * first attempt; errors are left to conn_send() below, which meets them
	 * again. */
	size_t pre_off = 0;
	int64_t pre_t = 0;
	if (reuse && !c->ssl && f->qhead && f->qhead->due <= now && !f->parked &&
	    causal_ok(e, f->qhead, f->target)) {
		const struct rbytes *nb = f->qhead->bytes;
		pre_t = clk_mono_ns();
		ssize_t w = send(c->fd, nb->data, nb->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			pre_off = (size_t)w;
			e->st.bytes_sent += (uint64_t)w;
		}
	}
	complete(e, f->target, r, t_sent, now, STORE_ERR_NONE, NULL, m);
	http1_next(c->parser);
	if (!reuse) {
		conn_close(e, c);
		return;
	}
	if (f->qhead && f->qhead->due <= now && !f->parked &&
	    (pre_off || causal_ok(e, f->qhead, f->target))) {
		/* The flow's next request is due: send it on this connection now
		 * rather than at the next loop turn, so the round trip does not
		 * include the rest of this event batch. */
		struct rreq *nr = f->qhead;
		f->qhead = nr->next;
		if (!f->qhead)
			f->qtail = NULL;
		nr->next = NULL;
		e->queued--;
		f->busy++;
		e->inflight++;
		flow_update(e, f);
		conn_start(e, c, nr, pre_off ? pre_t : clk_mono_ns(), pre_off);
		return;
	}
	struct rtarget *t = &e->targets[f->target];
	if (t->wait_head &&
	    (!f->qhead || f->qhead->due > now || f->parked || !causal_ok(e, f->qhead, f->target))) {
		/* Another recorded connection waits for a slot and this one has
		 * nothing due: hand the slot over (fair when the recording has more
		 * concurrent connections than --concurrency). */
		e->st.evictions++;
		conn_close(e, c);
		return;
	}
	idle_append(t, c, now);
	flow_update(e, f);
}

/* @p peer_closed: the event said the target shut its side (EPOLLRDHUP or
 * EPOLLHUP): read on to the end of file even after a short read. */
static void conn_on_readable(struct replay_engine *e, struct rconn *c, int64_t now,
			     bool peer_closed)
{
	for (;;) {
		int err = 0;
		ssize_t n = conn_read(c, e->rbuf, READ_BUF, &err);
		if (n < 0) {
			if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
				return;
			if (c->state == C_IDLE || !c->req) {
				conn_close(e, c);
				return;
			}
			conn_fail(e, c, err == EPROTO && c->ssl ? STORE_ERR_TLS : STORE_ERR_RESET,
				  err == ECONNRESET ? "connection reset by the target"
						    : strerror(err),
				  now);
			return;
		}
		if (n == 0) {
			if (c->state != C_RECEIVING && c->state != C_SENDING) {
				conn_close(e, c); /* the target closed an idle connection */
				return;
			}
			enum http1_status hs =
			    c->got_bytes ? http1_finish(c->parser) : HTTP1_NEED_MORE;
			if (hs == HTTP1_COMPLETE && !http1_message_interim(c->parser)) {
				conn_response(e, c, now, true);
				return;
			}
			conn_fail(e, c, STORE_ERR_RESET,
				  c->got_bytes ? "connection closed inside the response"
					       : "connection closed before a response",
				  now);
			return;
		}
		e->st.bytes_received += (uint64_t)n;
		/* A short read drained the socket: with edge-triggered epoll the next
		 * arrival raises a new event, so no extra recv() to see EAGAIN (as nginx).
		 * Not when the target has closed: its FIN may have come with the
		 * last bytes, in the same edge, and only another recv() sees it. */
		bool drained = !c->ssl && (size_t)n < READ_BUF && !peer_closed;
		if (c->state != C_RECEIVING && c->state != C_SENDING) {
			/* Bytes nobody asked for: the connection is out of sync. */
			conn_close(e, c);
			return;
		}
		c->got_bytes = true;
		size_t off = 0;
		while (off < (size_t)n) {
			size_t used = 0;
			enum http1_status hs =
			    http1_feed(c->parser, e->rbuf + off, (size_t)n - off, &used);
			off += used;
			if (hs == HTTP1_NEED_MORE) {
				if (used == 0)
					break;
				continue;
			}
			drained = false;
			if (hs == HTTP1_ERROR) {
				char msg[160];
				snprintf(msg, sizeof(msg), "bad response: %s",
					 http1_error(c->parser));
				conn_fail(e, c, STORE_ERR_BAD_RESPONSE, msg, now);
				return;
			}
			if (hs == HTTP1_COMPLETE && http1_message_interim(c->parser)) {
				e->st.resp_interim++;
				http1_next(c->parser);
				struct store_slice meth = {(const uint8_t *)c->req->method,
							   c->req->method_len};
				http1_expect_response_to(c->parser, &meth);
				continue;
			}
			/* COMPLETE (final) or TUNNEL (101): the exchange is over. */
			bool extra = off < (size_t)n || hs == HTTP1_TUNNEL;
			/* A FIN that came with the response: the connection is done. */
			conn_response(e, c, now, extra || peer_closed);
			return;
		}
		if (drained)
			return;
	}
}

/* Returns 1 all sent, 0 would block, -1 the connection was closed (freed). */
static int conn_send(struct replay_engine *e, struct rconn *c, int64_t now)
{
	struct rreq *r = c->req;
	while (c->sent_off < r->bytes->len) {
		int err = 0;
		int w =
		    conn_write(c, r->bytes->data + c->sent_off, r->bytes->len - c->sent_off, &err);
		if (w < 0) {
			if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
				return 0;
			conn_fail(e, c, c->ssl && err == EPROTO ? STORE_ERR_TLS : STORE_ERR_RESET,
				  err == EPIPE || err == ECONNRESET
				      ? "connection reset by the target"
				      : strerror(err),
				  now);
			return -1;
		}
		if (c->sent_off == 0)
			c->t_sent = now;
		c->sent_off += (size_t)w;
		e->st.bytes_sent += (uint64_t)w;
	}
	c->state = C_RECEIVING;
	return 1;
}

static void tls_error_msg(struct rconn *c, char *msg, size_t len)
{
	long vr = SSL_get_verify_result(c->ssl);
	unsigned long ee = ERR_get_error();
	if (vr != X509_V_OK)
		snprintf(msg, len, "tls: certificate verification failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (ee)
		snprintf(msg, len, "tls: %s",
			 ERR_reason_error_string(ee) ? ERR_reason_error_string(ee)
						     : "handshake failed");
	else
		snprintf(msg, len, "tls: handshake failed");
}

static void conn_drive(struct replay_engine *e, struct rconn *c, uint32_t events, int64_t now)
{
	if (c->state == C_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			conn_fail(
			    e, c, soerr == ECONNREFUSED ? STORE_ERR_REFUSED : STORE_ERR_CONNECT,
			    soerr == ECONNREFUSED ? "connection refused" : strerror(soerr), now);
			return;
		}
		c->state = c->ssl ? C_HANDSHAKE : C_SENDING;
	}
	if (c->state == C_HANDSHAKE) {
		ERR_clear_error();
		int rc = SSL_connect(c->ssl);
		if (rc != 1) {
			int se = SSL_get_error(c->ssl, rc);
			if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
				return;
			char msg[256];
			if (se == SSL_ERROR_SYSCALL && (errno == ECONNRESET || errno == 0)) {
				conn_fail(e, c, STORE_ERR_RESET,
					  "connection reset during tls handshake", now);
				return;
			}
			tls_error_msg(c, msg, sizeof(msg));
			conn_fail(e, c, STORE_ERR_TLS, msg, now);
			return;
		}
		c->state = C_SENDING;
	}
	if (c->state == C_SENDING) {
		if (conn_send(e, c, now) <= 0)
			return; /* waiting for EPOLLOUT, or closed */
	}
	if (c->state == C_RECEIVING || c->state == C_IDLE) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP) || c->ssl)
			conn_on_readable(e, c, now, events & (EPOLLRDHUP | EPOLLHUP));
	}
}

/* Open a new connection for flow @p f. NULL on immediate failure (reported). */
/*
 * Open a new connection for flow @p f carrying request @p r (already
 * counted in f->busy and e->inflight). Failures are reported against @p r;
 * @p f may be freed on return.
 */
static void conn_open(struct replay_engine *e, struct rflow *f, struct rreq *r, int64_t now)
{
	struct rtarget *t = &e->targets[f->target];
	struct rconn *c = mem_calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	struct http1_params hp = {.type = HTTP1_RESPONSE,
				  .max_header_bytes = e->p.max_header_bytes,
				  .max_body = e->p.max_body};
	c->parser = http1_parser_create(&hp);
	if (!c->parser) {
		mem_free(c);
		goto nomem;
	}
	struct store_slice meth = {(const uint8_t *)r->method, r->method_len};
	http1_expect_response_to(c->parser, &meth); /* HEAD: no body follows */
	c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->flow = f;
	c->fnext = f->conns;
	f->conns = c;
	f->nconns++;
	t->open++;
	e->st.connects++;
	if (f->had_conn)
		e->st.reconnects++;
	f->had_conn = true;
	/* The request is attached right away so a failure is reported against it. */
	c->req = r;
	c->t_start = now;
	deadline_set(e, c, now + e->p.timeout_ns);
	if (c->fd < 0) {
		conn_fail(e, c, STORE_ERR_CONNECT, strerror(errno), now);
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (t->ssl_ctx) {
		c->ssl = SSL_new(t->ssl_ctx);
		if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
			conn_fail(e, c, STORE_ERR_TLS, "tls: cannot create a session", now);
			return;
		}
		if (t->sni)
			SSL_set_tlsext_host_name(c->ssl, t->sni);
		if (!e->p.insecure) {
			/* Verify the name asked for (--sni), else the URL's host or address. */
			struct in6_addr a6;
			if (e->p.sni)
				SSL_set1_host(c->ssl, e->p.sni);
			else if (inet_pton(AF_INET, t->u.host, &a6) == 1 ||
				 inet_pton(AF_INET6, t->u.host, &a6) == 1)
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), t->u.host);
			else
				SSL_set1_host(c->ssl, t->u.host);
		}
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.ptr = c};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_fail(e, c, STORE_ERR_OTHER, strerror(errno), now);
		return;
	}
	c->state = C_CONNECTING;
	if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 &&
	    errno != EINPROGRESS) {
		int er = errno;
		conn_fail(e, c, er == ECONNREFUSED ? STORE_ERR_REFUSED : STORE_ERR_CONNECT,
			  er == ECONNREFUSED ? "connection refused" : strerror(er), now);
	}
	return;
nomem:
	f->busy--;
	e->inflight--;
	complete(e, f->target, r, 0, now, STORE_ERR_OTHER, "out of memory", NULL);
	flow_update(e, f);
	flow_maybe_free(e, f);
}

/*
 * Start request @p r (counted in busy/inflight) on idle connection @p c,
 * whose first @p pre_off bytes were already written at @p now; c may be freed.
 */
static void conn_start(struct replay_engine *e, struct rconn *c, struct rreq *r, int64_t now,
		       size_t pre_off)
{
	struct rflow *f = c->flow;
	idle_unlink(&e->targets[f->target], c);
	c->req = r;
	c->sent_off = pre_off;
	c->t_sent = pre_off ? now : 0;
	c->got_bytes = false;
	c->t_start = now;
	c->state = C_SENDING;
	deadline_set(e, c, now + e->p.timeout_ns);
	/* The parser was readied by http1_next() after the previous response. */
	struct store_slice meth = {(const uint8_t *)r->method, r->method_len};
	http1_expect_response_to(c->parser, &meth);
	(void)conn_send(e, c, now);
}

/*
 * Take the head request of @p f and send it. Returns false if it must wait
 * for a slot. On true, @p f may have been freed.
 */
static bool flow_dispatch(struct replay_engine *e, struct rflow *f, int64_t now)
{
	struct rtarget *t = &e->targets[f->target];
	if (!causal_ok(e, f->qhead, f->target) && causal_park(e, f, now))
		return false;
	struct rconn *idle = NULL;
	for (struct rconn *c = f->conns; c; c = c->fnext)
		if (!c->req && c->state == C_IDLE) {
			idle = c;
			break;
		}
	if (!idle && t->open >= e->p.concurrency) {
		/* Evict the least recently used idle connection. */
		struct rconn *v = t->idle_head;
		if (!v) {
			f->waiting = true;
			f->wnext = NULL;
			if (t->wait_tail)
				t->wait_tail->wnext = f;
			else
				t->wait_head = f;
			t->wait_tail = f;
			flow_update(e, f);
			return false;
		}
		e->st.evictions++;
		conn_close(e, v);
	}
	struct rreq *r = f->qhead;
	f->qhead = r->next;
	if (!f->qhead)
		f->qtail = NULL;
	r->next = NULL;
	e->queued--;
	f->busy++;
	e->inflight++;
	flow_update(e, f);
	if (idle)
		conn_start(e, idle, r, now, 0);
	else
		conn_open(e, f, r, now);
	return true;
}

/* ------------------------------------------------------------------ */
/* public API                                                          */
/* ------------------------------------------------------------------ */

#define PROBE_MS 1000

const struct addrinfo *replay_pick_addr(const struct addrinfo *ai)
{
	for (const struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
		if (!ok && errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			ok = poll(&pfd, 1, PROBE_MS) == 1 &&
			     !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) && !soerr;
		}
		close(fd);
		if (ok)
			return a;
	}
	return NULL;
}

static int target_init(struct replay_engine *e, struct rtarget *t, const struct replay_target *src,
		       size_t idx, char *err, size_t errlen)
{
	if (replay_url_parse(src->url, &t->u, err, errlen))
		return -EINVAL;
	t->url = mem_strdup(src->url);
	const char *role = src->role;
	char defrole[32];
	if (!role) {
		snprintf(defrole, sizeof(defrole), "%s",
			 idx == 0   ? "candidate"
			 : idx == 1 ? "secondary"
				    : "target");
		if (idx > 1)
			snprintf(defrole, sizeof(defrole), "target%zu", idx + 1);
		role = defrole;
	}
	t->role = mem_strdup(role);
	if (!t->url || !t->role) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->url_len = strlen(t->url);
	t->role_len = strlen(t->role);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", t->u.port);
	int gai = getaddrinfo(t->u.host, port, &hints, &ai);
	if (gai || !ai) {
		snprintf(err, errlen, "target '%s': cannot resolve '%s': %s", src->url, t->u.host,
			 gai_strerror(gai));
		return -EINVAL;
	}
	const struct addrinfo *use = ai;
	if (ai->ai_next) {
		use = replay_pick_addr(ai);
		if (!use) {
			use = ai;
			REPLAY_LOG(LOG_WARN,
				   "target '%s': no address of '%s' accepts connections yet; "
				   "using the first",
				   src->url, t->u.host);
		}
	}
	memcpy(&t->addr, use->ai_addr, use->ai_addrlen);
	t->addrlen = use->ai_addrlen;
	freeaddrinfo(ai);
	if (!t->u.tls)
		return 0;
	t->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ssl_ctx) {
		snprintf(err, errlen, "tls: cannot create a context");
		return -ENOMEM;
	}
	SSL_CTX_set_mode(t->ssl_ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	SSL_CTX_set_options(t->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	if (e->p.insecure) {
		SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
		int ok = e->p.ca_file
			     ? SSL_CTX_load_verify_locations(t->ssl_ctx, e->p.ca_file, NULL)
			     : SSL_CTX_set_default_verify_paths(t->ssl_ctx);
		if (ok != 1) {
			snprintf(err, errlen, "tls: cannot load CA certificates from '%s'",
				 e->p.ca_file ? e->p.ca_file : "the system store");
			return -EINVAL;
		}
	}
	struct in6_addr a6;
	const char *sni = e->p.sni;
	if (!sni && inet_pton(AF_INET, t->u.host, &a6) != 1 &&
	    inet_pton(AF_INET6, t->u.host, &a6) != 1)
		sni = t->u.host; /* RFC 6066 §3: no SNI for address literals */
	if (sni && !(t->sni = mem_strdup(sni))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

struct replay_engine *replay_engine_create(const struct replay_engine_params *p, char *err,
					   size_t errlen)
{
	if (!p->n_targets || !p->on_done) {
		snprintf(err, errlen, "no target given");
		return NULL;
	}
	struct replay_engine *e = mem_calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->p = *p;
	e->epfd = -1;
	if (!e->p.concurrency)
		e->p.concurrency = 256;
	if (e->p.timeout_ns <= 0)
		e->p.timeout_ns = 10 * 1000000000LL;
	if (e->p.idle_ns <= 0)
		e->p.idle_ns = 30 * 1000000000LL;
	if (!e->p.max_body)
		e->p.max_body = 1u << 20;
	if (!e->p.max_header_bytes)
		e->p.max_header_bytes = 64u << 10;
	e->real_minus_mono = clk_real_ns() - clk_mono_ns();
	dbuf_init(&e->reqbuf, REQ_MAX_BYTES);
	e->hcap = 1024;
	e->htab = mem_calloc(e->hcap, sizeof(*e->htab));
	e->rbuf = mem_alloc(READ_BUF);
	e->targets = mem_calloc(p->n_targets, sizeof(*e->targets));
	if (!e->htab || !e->rbuf || !e->targets) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < p->n_targets; i++)
		if (target_init(e, &e->targets[i], &p->targets[i], i, err, errlen))
			goto fail;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	e->causal = p->causal;
	if (e->causal && replay_causal_fd(e->causal) >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->causal_tag};
		if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, replay_causal_fd(e->causal), &ev) < 0) {
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			goto fail;
		}
	}
	return e;
fail:
	replay_engine_free(e);
	return NULL;
}

int replay_engine_submit(struct replay_engine *e, const struct store_session *s, uint64_t flow_key,
			 int64_t due_ns, void *user)
{
	return replay_engine_submit_dep(e, s, flow_key, due_ns, user, NULL);
}

int replay_engine_submit_dep(struct replay_engine *e, const struct store_session *s,
			     uint64_t flow_key, int64_t due_ns, void *user,
			     const struct replay_dep *dep)
{
	if (!e->causal)
		dep = NULL;
	if (s->proto == STORE_PROTO_H2C) { /* HTTP/2: streams over replay_h2 */
		if (!e->p.checked && replay_h2_request_unsafe(&s->req))
			return -EBADMSG; /* as replay_request_build() refuses HTTP/1.x */
		int rc = h2_start(e);
		if (!rc)
			rc = replay_h2_submit(e->h2, s, e->p.pooled ? 0 : flow_key, due_ns, user,
					      dep);
		if (!rc && dep)
			replay_causal_queued(dep->ent);
		return rc;
	}
	dbuf_reset(&e->reqbuf);
	int rc = replay_request_build(&e->reqbuf, &s->req, e->p.rewrite);
	if (rc)
		return rc == -E2BIG || rc == -EBADMSG ? -EINVAL : rc;
	struct rbytes *b = rbytes_new(e, e->reqbuf.len);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, e->reqbuf.data, b->len);
	uint64_t key = e->p.pooled ? 0 : flow_key;
	/* The recorded request asks to close (RFC 9112 §9.6): do so after its response. */
	bool close = s->req.version_major == 1 && s->req.version_minor == 0;
	for (size_t i = 0; i < s->req.n_headers; i++) {
		if (!is_connection(&s->req.headers[i].name))
			continue;
		unsigned tok = conn_tokens(&s->req.headers[i].value);
		close = (tok & TOK_CLOSE) || (close && !(tok & TOK_KEEP_ALIVE));
	}
	for (uint32_t ti = 0; ti < e->p.n_targets; ti++) {
		struct rreq *r = req_new(e);
		struct rflow *f = r ? flow_get(e, key, ti) : NULL;
		if (!f) {
			mem_free(r);
			if (!b->refs) {
				b->refs = 1;
				rbytes_put(e, b);
			}
			return -ENOMEM;
		}
		b->refs++;
		r->bytes = b;
		r->session_id = s->id;
		r->user = user;
		r->due = due_ns;
		size_t ml = s->req.method.len < sizeof(r->method) ? s->req.method.len
								  : sizeof(r->method) - 1;
		memcpy(r->method, s->req.method.ptr, ml);
		r->method_len = (uint8_t)ml;
		r->close = close;
		if (dep) {
			r->has_dep = true;
			r->dep = *dep;
		}
		if (f->qtail)
			f->qtail->next = r;
		else
			f->qhead = r;
		f->qtail = r;
		e->queued++;
		flow_update(e, f);
	}
	if (dep)
		replay_causal_queued(dep->ent);
	return 0;
}

static void expire(struct replay_engine *e, int64_t now)
{
	while (e->dhead && e->dhead->deadline <= now) {
		struct rconn *c = e->dhead;
		char msg[96];
		snprintf(msg, sizeof(msg), "no whole response within %.3f s",
			 (double)e->p.timeout_ns / 1e9);
		conn_fail(e, c, STORE_ERR_TIMEOUT, msg, now);
	}
	for (uint32_t ti = 0; ti < e->p.n_targets; ti++) {
		struct rtarget *t = &e->targets[ti];
		while (t->idle_head && now - t->idle_head->idle_since >= e->p.idle_ns)
			conn_close(e, t->idle_head);
	}
}

static int64_t next_wake(const struct replay_engine *e)
{
	int64_t w = INT64_MAX;
	if (e->heap_len)
		w = flow_due(e->heap[0]);
	if (e->dhead && e->dhead->deadline < w)
		w = e->dhead->deadline;
	for (uint32_t ti = 0; ti < e->p.n_targets; ti++) {
		const struct rtarget *t = &e->targets[ti];
		if (t->idle_head && t->idle_head->idle_since + e->p.idle_ns < w)
			w = t->idle_head->idle_since + e->p.idle_ns;
	}
	if (e->h2) {
		int64_t h = replay_h2_next_wake(e->h2);
		if (h < w)
			w = h;
	}
	return w;
}

int replay_engine_run(struct replay_engine *e, int64_t until_ns)
{
	struct epoll_event evs[MAX_EVENTS];
	e->completed_iter = 0;
	for (;;) {
		int64_t now = clk_mono_ns();
		if (e->causal) {
			e->cb_now = now;
			replay_causal_release(e->causal, causal_unpark, e, false);
		}
		while (e->heap_len && flow_due(e->heap[0]) <= now) {
			(void)flow_dispatch(e, e->heap[0], now);
		}
		if (e->h2)
			replay_h2_run(e->h2, now);
		expire(e, now);
		if (e->completed_iter || now >= until_ns)
			return 0;
		int64_t wake = next_wake(e);
		if (wake > until_ns)
			wake = until_ns;
		/* Parked flows: say we sleep (other threads' progress then wakes
		 * us), and recheck once so that no release is missed. */
		if (e->causal && replay_causal_n_parked(e->causal) && wake > now) {
			e->cb_now = now;
			if (replay_causal_release(e->causal, causal_unpark, e, true))
				continue;
		}
		int64_t wait = wake - now;
		/* A wait this short is a poll: a timed sleep would arm a timer and
		 * switch tasks, and the timer slack (50 us) would stretch it. */
		if (wait < ENGINE_POLL_NS)
			wait = 0;
		struct timespec ts = {.tv_sec = wait / 1000000000LL,
				      .tv_nsec = wait % 1000000000LL};
		int n = epoll_pwait2(e->epfd, evs, MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno == ENOSYS) /* kernels before 5.11: ms resolution */
			n = epoll_wait(e->epfd, evs, MAX_EVENTS, (int)((wait + 999999) / 1000000));
		if (n < 0) {
			if (errno == EINTR)
				return 0;
			return -errno;
		}
		now = clk_mono_ns();
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &e->causal_tag) {
				replay_causal_kick(e->causal);
				continue;
			}
			if (evs[i].data.ptr == &e->h2_tag)
				continue; /* replay_h2_run() at the top of the loop */
			struct rconn *c = evs[i].data.ptr;
			conn_drive(e, c, evs[i].events, now);
		}
		if (n > 0)
			continue;
	}
}

uint64_t replay_engine_pending(const struct replay_engine *e)
{
	return e->queued + e->inflight + (e->h2 ? replay_h2_pending(e->h2) : 0);
}

int64_t replay_engine_next_due(const struct replay_engine *e)
{
	int64_t d = e->heap_len ? flow_due(e->heap[0]) : INT64_MAX;
	int64_t h = e->h2 ? replay_h2_next_due(e->h2) : INT64_MAX;
	return h < d ? h : d;
}

void replay_engine_cancel_as_recorded(struct replay_engine *e, const struct store_session *s,
				      uint64_t flow_key)
{
	if (!e->h2 || !replay_client_reset(s))
		return;
	/* reset before any response: as long after sending as production waited */
	int64_t wait = replay_reset_wait(s), end = wait ? s->ts_reset_ns : s->ts_resp_last_ns;
	replay_h2_cancel(e->h2, e->p.pooled ? 0 : flow_key, s->ts_req_first_ns, end,
			 s->resp.body_len, wait);
}

void replay_engine_drop_queued(struct replay_engine *e)
{
	if (e->h2)
		replay_h2_drop_queued(e->h2);
	if (!e->htab || !e->targets)
		return; /* a half-created engine (allocation failed) holds no requests */
	for (size_t b = 0; b < e->hcap; b++) {
		struct rflow *f = e->htab[b];
		while (f) {
			struct rflow *next = f->hnext;
			heap_remove(e, f);
			while (f->qhead) {
				struct rreq *r = f->qhead;
				f->qhead = r->next;
				e->queued--;
				e->st.not_sent++;
				causal_finish(e, r,
					      f->target); /* never sent: nobody waits for it */
				req_free(e, r);
			}
			f->qtail = NULL;
			f->waiting = false;
			f->parked = false;
			f->wnext = NULL;
			flow_maybe_free(e, f);
			f = next;
		}
	}
	for (uint32_t ti = 0; ti < e->p.n_targets; ti++)
		e->targets[ti].wait_head = e->targets[ti].wait_tail = NULL;
	if (e->causal)
		replay_causal_unpark_all(e->causal);
}

static void close_all(struct replay_engine *e, bool report)
{
	int64_t now = clk_mono_ns();
	replay_engine_drop_queued(e);
	if (e->h2)
		replay_h2_close_all(e->h2, report);
	/* Now close every connection; each close may free its flow. */
	for (size_t b = 0; b < e->hcap; b++) {
		struct rflow *f = e->htab[b];
		while (f) {
			struct rflow *next = f->hnext;
			while (f->conns) {
				struct rconn *c = f->conns;
				bool last = c->fnext == NULL;
				if (c->req && report)
					conn_fail(e, c, STORE_ERR_OTHER, "interrupted", now);
				else if (c->req) {
					req_free(e, c->req);
					c->req = NULL;
					f->busy--;
					e->inflight--;
					conn_close(e, c);
				} else
					conn_close(e, c);
				if (last)
					break; /* the flow may be freed now */
			}
			f = next;
		}
	}
}

void replay_engine_abort(struct replay_engine *e)
{
	close_all(e, true);
}

void replay_engine_close_idle(struct replay_engine *e)
{
	if (e->h2)
		replay_h2_close_idle(e->h2);
	for (uint32_t ti = 0; ti < e->p.n_targets; ti++)
		while (e->targets[ti].idle_head)
			conn_close(e, e->targets[ti].idle_head);
}

const struct replay_stats *replay_engine_stats(const struct replay_engine *e)
{
	return &e->st;
}

const struct replay_hist *replay_engine_latency(const struct replay_engine *e)
{
	return &e->lat;
}

const struct replay_hist *replay_engine_lateness(const struct replay_engine *e)
{
	return &e->late;
}

const struct replay_hist *replay_engine_causal_wait(const struct replay_engine *e)
{
	return &e->cwait;
}

void replay_engine_free(struct replay_engine *e)
{
	if (!e)
		return;
	if (e->htab) {
		close_all(e, false);
		for (size_t b = 0; b < e->hcap; b++) {
			struct rflow *f = e->htab[b];
			while (f) {
				struct rflow *next = f->hnext;
				mem_free(f);
				f = next;
			}
		}
	}
	if (e->targets) {
		for (size_t i = 0; i < e->p.n_targets; i++) {
			mem_free(e->targets[i].url);
			mem_free(e->targets[i].role);
			mem_free(e->targets[i].sni);
			if (e->targets[i].ssl_ctx)
				SSL_CTX_free(e->targets[i].ssl_ctx);
		}
	}
	replay_h2_free(e->h2);
	if (e->epfd >= 0)
		close(e->epfd);
	mem_free(e->targets);
	mem_free(e->htab);
	mem_free(e->heap);
	mem_free(e->rbuf);
	dbuf_release(&e->reqbuf);
	spares_free(e);
	mem_free(e);
}
