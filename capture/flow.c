/* SPDX-License-Identifier: MIT */
/*
 * flow - bounded connection table (see flow.h).
 *
 * Layout: one array of max_flows entries allocated at creation (pages
 * are touched only as connections use them), a
 * power-of-two bucket array with chaining through the entries, and three
 * intrusive lists: free entries, open connections in least-recently-used
 * order (head = idlest, so timeouts and evictions look at the head only)
 * and closed connections in closing order. The hash is symmetric in the
 * two endpoints so both directions find the same entry.
 *
 * References: RFC 9293 §3.5 (establishment), §3.6 (closing), §3.10.7.3
 * (RST); Suricata src/flow-hash.c and src/stream-tcp.c (midstream pickup,
 * port reuse on a closed tuple, emergency eviction).
 */
#include "capture/flow.h"

#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

#define FLOW_LOG(lvl, ...) LOG_MSG(lvl, "flow", __VA_ARGS__)

enum flow_state {
	FS_FREE = 0,
	FS_OPEN = 1,
	FS_CLOSED = 2,
};

struct flow {
	struct flow *hnext;	  /* bucket chain */
	struct flow *prev, *next; /* open / closed / free list */
	uint8_t caddr[16];
	uint8_t saddr[16];
	uint16_t cport, sport, vlan;
	uint8_t ipv;
	uint8_t state;
	bool fin[2];
	bool has_isn;
	uint32_t isn; /* client ISN */
	uint32_t hash;
	int64_t last_ts;
	void *conn;
	struct reasm_stream rs[2];
};

struct flow_list {
	struct flow *head, *tail;
};

struct flow_table {
	struct flow_params p;
	struct reasm_ctx rc;
	struct flow *entries;
	struct flow **buckets;
	uint32_t mask;
	struct flow *free;
	uint32_t fresh; /* entries[fresh..max_flows) were never used */
	struct flow_list open;
	struct flow_list closed;
	size_t n_open;
	uint64_t next_conn_id;
	int64_t now;
};

const struct ctr_desc flow_ctr_descs[] = {
    CTR_DESC(struct flow_stats, created, "TCP connections opened"),
    CTR_DESC(struct flow_stats, midstream, "connections picked up without a handshake (midstream)"),
    CTR_DESC(struct flow_stats, dir_from_port,
	     "connections whose client/server roles came from the ports"),
    CTR_DESC(struct flow_stats, closed_fin, "connections closed by FIN on both sides"),
    CTR_DESC(struct flow_stats, closed_rst, "connections closed by RST"),
    CTR_DESC(struct flow_stats, timeouts, "connections closed after the idle timeout"),
    CTR_DESC(struct flow_stats, evicted,
	     "connections closed early because the flow table was full"),
    CTR_DESC(struct flow_stats, ended_eof, "connections still open when the capture ended"),
    CTR_DESC(struct flow_stats, port_reuse, "new connections on the tuple of an old one"),
    CTR_DESC(struct flow_stats, pkts_no_flow,
	     "bare ACK/FIN/RST packets of an unknown connection (ignored)"),
    CTR_DESC(struct flow_stats, pkts_after_close,
	     "packets of an already closed connection (ignored)"),
    CTR_DESC(struct flow_stats, active_peak, "most connections open at once"),
};
const size_t flow_ctr_count = sizeof(flow_ctr_descs) / sizeof(flow_ctr_descs[0]);

/* ---- lists ---- */

static void list_unlink(struct flow_list *l, struct flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		l->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		l->tail = f->prev;
	f->prev = f->next = NULL;
}

static void list_append(struct flow_list *l, struct flow *f)
{
	f->next = NULL;
	f->prev = l->tail;
	if (l->tail)
		l->tail->next = f;
	else
		l->head = f;
	l->tail = f;
}

/* ---- hashing ---- */

static inline uint64_t ep_hash(const uint8_t *addr, uint16_t port)
{
	uint64_t a, b;
	memcpy(&a, addr, 8);
	memcpy(&b, addr + 8, 8);
	return hash_fmix64(a ^ hash_fmix64(b ^ ((uint64_t)port << 1 | 1)));
}

static inline uint32_t tuple_hash(const struct decode_pkt *k)
{
	/* Sum of the endpoint hashes: the same for both directions. */
	uint64_t h = ep_hash(k->src, k->sport) + ep_hash(k->dst, k->dport);
	return (uint32_t)hash_fmix64(h ^ ((uint64_t)k->vlan << 40 | k->ip_version));
}

static inline bool ep_eq(const uint8_t *a, uint16_t ap, const uint8_t *b, uint16_t bp)
{
	return ap == bp && !memcmp(a, b, 16);
}

/* Find the entry of @p k; *dir is 0 when the sender is the client. */
static struct flow *lookup(struct flow_table *t, const struct decode_pkt *k, uint32_t h, int *dir)
{
	for (struct flow *f = t->buckets[h & t->mask]; f; f = f->hnext) {
		if (f->hash != h || f->vlan != k->vlan || f->ipv != k->ip_version)
			continue;
		if (ep_eq(f->caddr, f->cport, k->src, k->sport) &&
		    ep_eq(f->saddr, f->sport, k->dst, k->dport)) {
			*dir = 0;
			return f;
		}
		if (ep_eq(f->caddr, f->cport, k->dst, k->dport) &&
		    ep_eq(f->saddr, f->sport, k->src, k->sport)) {
			*dir = 1;
			return f;
		}
	}
	return NULL;
}

static void hash_remove(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->buckets[f->hash & t->mask];
	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	f->hnext = NULL;
}

/* ---- delivery ---- */

struct dir_ctx {
	struct flow_table *t;
	struct flow *f;
	int dir;
};

static void out_data(void *u, const uint8_t *data, size_t len, int64_t ts)
{
	struct dir_ctx *d = u;
	if (d->f->conn)
		d->t->p.ops->data(d->t->p.ops_ctx, d->f->conn, d->dir, data, len, ts);
}

static void out_gap(void *u, uint64_t len, int64_t ts)
{
	struct dir_ctx *d = u;
	if (d->f->conn)
		d->t->p.ops->gap(d->t->p.ops_ctx, d->f->conn, d->dir, len, ts);
}

/* ---- life cycle ---- */

static void entry_free(struct flow_table *t, struct flow *f)
{
	hash_remove(t, f);
	f->state = FS_FREE;
	f->next = t->free;
	t->free = f;
}

/* Flush both streams, tell the consumer, and either keep the entry as
 * closed (FIN, RST: late packets are recognised) or free it. */
static void flow_close(struct flow_table *t, struct flow *f, enum flow_end how, int64_t ts,
		       bool keep)
{
	for (int dir = 0; dir < 2; dir++) {
		struct dir_ctx d = {t, f, dir};
		struct reasm_out o = {out_data, out_gap, &d};
		reasm_flush(&t->rc, &f->rs[dir], ts, &o);
		reasm_stream_release(&t->rc, &f->rs[dir]);
	}
	if (f->conn)
		t->p.ops->close(t->p.ops_ctx, f->conn, how, ts);
	f->conn = NULL;
	list_unlink(&t->open, f);
	t->n_open--;
	if (keep) {
		f->state = FS_CLOSED;
		f->last_ts = ts;
		list_append(&t->closed, f);
	} else {
		entry_free(t, f);
	}
}

static void expire(struct flow_table *t)
{
	struct flow *f;
	while ((f = t->open.head) && f->last_ts + t->p.idle_timeout_ns < t->now) {
		bool fin = f->fin[0] && f->fin[1];
		if (fin)
			t->p.stats->closed_fin++;
		else
			t->p.stats->timeouts++;
		flow_close(t, f, fin ? FLOW_END_FIN : FLOW_END_TIMEOUT, t->now, false);
	}
	while ((f = t->closed.head) && f->last_ts + t->p.closed_timeout_ns < t->now) {
		list_unlink(&t->closed, f);
		entry_free(t, f);
	}
}

static struct flow *entry_alloc(struct flow_table *t, int64_t ts)
{
	struct flow *f = t->free;
	if (!f && t->fresh < t->p.max_flows)
		return &t->entries[t->fresh++];
	if (!f && t->closed.head) {
		f = t->closed.head;
		list_unlink(&t->closed, f);
		entry_free(t, f);
	}
	if (!f && t->open.head) {
		t->p.stats->evicted++;
		FLOW_LOG(LOG_DEBUG, "flow table full (%u): evicting the idlest connection",
			 t->p.max_flows);
		flow_close(t, t->open.head, FLOW_END_TIMEOUT, ts, false);
	}
	f = t->free;
	if (f)
		t->free = f->next;
	else if (t->fresh < t->p.max_flows)
		f = &t->entries[t->fresh++];
	return f;
}

static bool http_port(uint16_t p)
{
	switch (p) {
	case 80:
	case 443:
	case 3000:
	case 3128:
	case 5000:
	case 8000:
	case 8008:
	case 8080:
	case 8081:
	case 8443:
	case 8888:
	case 9000:
		return true;
	default:
		return false;
	}
}

/* Port heuristic: true when the sender of @p k looks like the server. */
static bool sender_is_server(const struct decode_pkt *k)
{
	bool hs = http_port(k->sport), hd = http_port(k->dport);
	if (hs != hd)
		return hs;
	if ((k->sport < 1024) != (k->dport < 1024))
		return k->sport < 1024;
	return k->sport < k->dport;
}

static struct flow *flow_open(struct flow_table *t, const struct decode_pkt *k, uint32_t h,
			      int64_t ts, int *dir)
{
	struct flow *f = entry_alloc(t, ts);
	if (!f)
		return NULL;
	bool syn = k->tcp_flags & DECODE_TH_SYN, ack = k->tcp_flags & DECODE_TH_ACK;
	bool midstream = !syn;
	bool server;
	if (syn)
		server = ack;
	else {
		server = sender_is_server(k);
		t->p.stats->dir_from_port++;
	}
	*f = (struct flow){0};
	*dir = server ? 1 : 0;
	memcpy(f->caddr, server ? k->dst : k->src, 16);
	memcpy(f->saddr, server ? k->src : k->dst, 16);
	f->cport = server ? k->dport : k->sport;
	f->sport = server ? k->sport : k->dport;
	f->vlan = k->vlan;
	f->ipv = k->ip_version;
	f->hash = h;
	f->state = FS_OPEN;
	f->last_ts = ts;
	reasm_stream_init(&f->rs[0]);
	reasm_stream_init(&f->rs[1]);
	f->hnext = t->buckets[h & t->mask];
	t->buckets[h & t->mask] = f;
	list_append(&t->open, f);
	if (++t->n_open > t->p.stats->active_peak)
		t->p.stats->active_peak = t->n_open;
	t->p.stats->created++;
	if (midstream)
		t->p.stats->midstream++;

	struct flow_info info = {
	    .ip_version = f->ipv,
	    .client_port = f->cport,
	    .server_port = f->sport,
	    .vlan = f->vlan,
	    .conn_id = ++t->next_conn_id,
	    .midstream = midstream,
	    .ts_ns = ts,
	};
	memcpy(info.client_addr, f->caddr, 16);
	memcpy(info.server_addr, f->saddr, 16);
	f->conn = t->p.ops->open(t->p.ops_ctx, &info);
	return f;
}

struct flow_table *flow_table_create(const struct flow_params *p)
{
	struct flow_table *t = mem_calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->p = *p;
	if (!t->p.max_flows)
		t->p.max_flows = 262144;
	if (!t->p.idle_timeout_ns)
		t->p.idle_timeout_ns = 300LL * 1000000000LL;
	if (!t->p.closed_timeout_ns)
		t->p.closed_timeout_ns = 10LL * 1000000000LL;
	uint32_t nb = 1;
	while (nb < t->p.max_flows && nb < (1u << 31))
		nb <<= 1;
	t->mask = nb - 1;
	t->buckets = mem_calloc(nb, sizeof(*t->buckets));
	t->entries = mem_calloc(t->p.max_flows, sizeof(*t->entries));
	if (!t->buckets || !t->entries) {
		flow_table_free(t);
		return NULL;
	}
	/* Entries are handed out from `fresh` on first use, so untouched
	 * pages of the array cost no memory (calloc maps them lazily). */
	reasm_ctx_init(&t->rc, &t->p.reasm, t->p.rstats);
	return t;
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	if (t->entries)
		for (struct flow *f = t->open.head; f; f = f->next)
			for (int d = 0; d < 2; d++)
				reasm_stream_release(&t->rc, &f->rs[d]);
	mem_free(t->entries);
	mem_free(t->buckets);
	mem_free(t);
}

void flow_packet(struct flow_table *t, const struct decode_pkt *k, int64_t ts)
{
	if (ts > t->now) {
		t->now = ts;
		expire(t);
	}
	uint8_t fl = k->tcp_flags;
	bool syn = fl & DECODE_TH_SYN, ack = fl & DECODE_TH_ACK;
	bool rst = fl & DECODE_TH_RST, fin = fl & DECODE_TH_FIN;
	uint32_t h = tuple_hash(k);
	int dir = 0;
	struct flow *f = lookup(t, k, h, &dir);

	if (f && f->state == FS_CLOSED) {
		if (syn && !ack && !rst && !(dir == 0 && f->has_isn && k->seq == f->isn)) {
			t->p.stats->port_reuse++;
			list_unlink(&t->closed, f);
			entry_free(t, f);
			f = NULL;
		} else {
			t->p.stats->pkts_after_close++;
			return;
		}
	} else if (f && syn && !ack && !rst && !(dir == 0 && f->has_isn && k->seq == f->isn)) {
		/* A new handshake on an open tuple: the old connection is over. */
		t->p.stats->port_reuse++;
		bool both_fin = f->fin[0] && f->fin[1];
		if (both_fin)
			t->p.stats->closed_fin++;
		else
			t->p.stats->timeouts++;
		flow_close(t, f, both_fin ? FLOW_END_FIN : FLOW_END_TIMEOUT, ts, false);
		f = NULL;
	}
	if (!f) {
		if (rst || (!syn && !k->payload_len)) {
			t->p.stats->pkts_no_flow++;
			return;
		}
		f = flow_open(t, k, h, ts, &dir);
		if (!f)
			return;
	} else {
		f->last_ts = ts;
		list_unlink(&t->open, f);
		list_append(&t->open, f);
	}

	if (syn) {
		if (!ack && dir == 0 && !f->has_isn) {
			f->isn = k->seq;
			f->has_isn = true;
		}
		if (!f->rs[dir].started)
			reasm_stream_start(&f->rs[dir], k->seq + 1);
		if (ack && !f->rs[1 - dir].started)
			reasm_stream_start(&f->rs[1 - dir], k->ack);
	}
	if (rst) {
		t->p.stats->closed_rst++;
		flow_close(t, f, FLOW_END_RST, ts, true);
		return;
	}
	uint32_t seq = k->seq + (syn ? 1 : 0);
	if (k->payload_len) {
		struct dir_ctx d = {t, f, dir};
		struct reasm_out o = {out_data, out_gap, &d};
		reasm_segment(&t->rc, &f->rs[dir], seq, k->payload, k->payload_len, ts, &o);
	}
	if (ack && !f->rs[1 - dir].started) {
		/* No byte of the peer seen yet: what this side acknowledges is where
		 * the peer's stream stands, so later acknowledgements of bytes the
		 * capture never shows become gaps (e.g. one direction missing). */
		reasm_stream_start(&f->rs[1 - dir], k->ack);
	} else if (ack) {
		struct dir_ctx d = {t, f, 1 - dir};
		struct reasm_out o = {out_data, out_gap, &d};
		reasm_ack(&t->rc, &f->rs[1 - dir], k->ack, ts, &o);
	}
	if (fin) {
		reasm_fin(&f->rs[dir], seq + k->payload_wire);
		f->fin[dir] = true;
	}
	if (f->fin[0] && f->fin[1] && reasm_complete(&f->rs[0]) && reasm_complete(&f->rs[1])) {
		t->p.stats->closed_fin++;
		flow_close(t, f, FLOW_END_FIN, ts, true);
	}
}

void flow_advance(struct flow_table *t, int64_t now_ns)
{
	if (now_ns > t->now) {
		t->now = now_ns;
		expire(t);
	}
}

bool flow_evict_idlest(struct flow_table *t)
{
	if (!t->open.head)
		return false;
	t->p.stats->evicted++;
	flow_close(t, t->open.head, FLOW_END_TIMEOUT, t->now, false);
	return true;
}

void flow_finish(struct flow_table *t)
{
	struct flow *f;
	while ((f = t->open.head)) {
		t->p.stats->ended_eof++;
		flow_close(t, f, FLOW_END_EOF, t->now, false);
	}
	while ((f = t->closed.head)) {
		list_unlink(&t->closed, f);
		entry_free(t, f);
	}
}

size_t flow_active(const struct flow_table *t)
{
	return t->n_open;
}
