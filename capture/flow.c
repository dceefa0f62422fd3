/* SPDX-License-Identifier: MIT */
/*
 * flow - bounded connection table (see flow.h).
 *
 * Layout: one array of max_flows entries allocated at creation (pages
 * are touched only as connections use them), a power-of-two bucket array
 * with chaining through the entries, and four intrusive lists: free
 * entries, connections whose handshake is not complete ("new"), open
 * connections in least-recently-used order (head = idlest, so timeouts and
 * evictions look at the heads only) and closed connections in closing
 * order. The bucket is a keyed hash of the endpoints in a fixed order, so
 * both directions find the same entry and nobody can aim at one chain.
 *
 * TCP state per side (struct flow_side): snd_max, the end of what the side
 * sent as far as the capture saw it without a hole (SYN and FIN count one,
 * data the bytes reassembly could deliver in order), and ack_max, the
 * highest acknowledgement the side sent that does not pass the peer's
 * snd_max. Only packets that fit these move them, so one blind packet can
 * neither close a connection nor widen what the next one may do. What the
 * capture missed makes the window stricter, never looser: an RST sent
 * after bytes the capture lost is ignored (counted) and the connection
 * ends at its idle timeout instead.
 *
 * References: RFC 9293 §3.5 (establishment), §3.6 (closing), §3.10.7.3
 * (RST in SYN-SENT); RFC 5961 §3 (RST), §4 (SYN), §5 (ACK); Suricata
 * src/flow-hash.c and src/stream-tcp.c (midstream pickup, port reuse on a
 * closed tuple, emergency eviction, StreamTcpValidateRst); Linux
 * net/ipv4/tcp_input.c (data on a SYN is dropped unless TCP Fast Open
 * accepted it); Crosby and Wallach 2003 (algorithmic complexity attacks).
 */
#include "capture/flow.h"

#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

#define FLOW_LOG(lvl, ...) LOG_MSG(lvl, "flow", __VA_ARGS__)

/*
 * Sequence comparisons (RFC 9293 §3.4) by unsigned distance within 1 GiB,
 * so that no number is both ahead of and behind another (with signed
 * 32-bit differences, two numbers 2^31 apart are each "before" the other:
 * a forged RST exactly 2^31 away passed a window check).
 */
#define SEQ_NEAR (1u << 30)

/* @p a is ahead of @p b (by less than SEQ_NEAR). */
static inline bool seq_ahead(uint32_t a, uint32_t b)
{
	uint32_t d = a - b;
	return d != 0 && d < SEQ_NEAR;
}

/* @p a is at or behind @p b (by less than SEQ_NEAR). */
static inline bool seq_upto(uint32_t a, uint32_t b)
{
	return b - a < SEQ_NEAR;
}

enum flow_state {
	FS_FREE = 0,
	FS_NEW = 1,  /* handshake not complete, no data */
	FS_OPEN = 2, /* established */
	FS_CLOSED = 3,
};

/* What one side sent and acknowledged (see the file comment). */
struct flow_side {
	uint32_t snd_max;  /* end of the contiguous sequence space sent */
	uint32_t seen_max; /* end of what was seen, also after a hole (<= slack ahead) */
	uint32_t ack_max;  /* highest acknowledgement sent, <= the peer's seen_max */
	uint32_t fin_seq;  /* sequence number of its FIN (accepted or pending) */
	bool has_snd, has_ack;
	bool fin_pending; /* a FIN after a hole: accepted when the hole fills */
	bool fin_acked;	  /* the peer acknowledged the accepted FIN */
};

struct flow {
	struct flow *hnext;	  /* bucket chain */
	struct flow *prev, *next; /* new / open / closed / free list */
	uint8_t caddr[16];
	uint8_t saddr[16];
	uint64_t conn_id;
	int64_t last_ts; /* on the table's clock */
	void *conn;
	struct reasm_stream rs[2];
	struct flow_side sd[2];
	uint32_t hash;
	uint32_t isn;	  /* client ISN */
	uint32_t new_isn; /* a SYN on the open tuple waiting for its SYN-ACK */
	uint16_t cport, sport, vlan;
	uint8_t ipv;
	uint8_t state;
	bool fin[2]; /* an accepted FIN per direction */
	bool has_isn;
	bool opened; /* the consumer's open() was called */
	bool midstream;
	bool has_new_syn;
};

_Static_assert(sizeof(struct flow) <= FLOW_ENTRY_BYTES, "FLOW_ENTRY_BYTES is the documented cost");

struct flow_list {
	struct flow *head, *tail;
};

struct flow_table {
	struct flow_params p;
	struct reasm_ctx rc;
	struct hash_key key;
	struct flow *entries;
	struct flow **buckets;
	uint32_t mask;
	struct flow *free;
	uint32_t fresh; /* entries[fresh..max_flows) were never used */
	struct flow_list new_;
	struct flow_list open;
	struct flow_list closed;
	size_t n_open;
	uint64_t next_conn_id;
	uint64_t probes;
	int64_t now;	   /* the table's clock */
	int64_t epoch_off; /* packet time - table time */
	bool has_now;
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
    CTR_DESC(struct flow_stats, rst_ignored,
	     "RST segments outside the window (RFC 5961), ignored: the connection goes on"),
    CTR_DESC(struct flow_stats, fin_ignored,
	     "FIN segments outside the window or passed by later data, ignored"),
    CTR_DESC(struct flow_stats, syn_on_open,
	     "SYN with a new ISN on an open connection: replaced only once a SYN-ACK answers it"),
    CTR_DESC(struct flow_stats, syn_payload,
	     "SYN or SYN-ACK segments carrying data (not delivered, as without TCP Fast Open)"),
    CTR_DESC(struct flow_stats, clock_jumps,
	     "packet timestamps beyond the idle timeout from the clock (a new epoch began)"),
    CTR_DESC(struct flow_stats, evicted_new,
	     "of flow_evicted: connections without a completed handshake (evicted first)"),
    CTR_DESC(struct flow_stats, mem_bytes, "bytes held by the flow table (entries used, buckets)"),
};
const size_t flow_ctr_count = sizeof(flow_ctr_descs) / sizeof(flow_ctr_descs[0]);

/* ---- time ---- */

static int64_t sat64(__int128 v)
{
	return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* Packet time of the table's clock reading @p now. */
static int64_t real_time(const struct flow_table *t, int64_t now)
{
	return sat64((__int128)now + t->epoch_off);
}

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

static struct flow_list *list_of(struct flow_table *t, const struct flow *f)
{
	return f->state == FS_NEW ? &t->new_ : &t->open;
}

/* ---- hashing ---- */

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Keyed and symmetric: the endpoints go in in a fixed order. */
static inline uint32_t tuple_hash(const struct flow_table *t, const struct decode_pkt *k)
{
	const uint8_t *a = k->src, *b = k->dst;
	uint16_t pa = k->sport, pb = k->dport;
	int c = memcmp(a, b, 16);
	if (c > 0 || (c == 0 && pa > pb)) {
		a = k->dst;
		b = k->src;
		pa = k->dport;
		pb = k->sport;
	}
	uint64_t tail =
	    (uint64_t)pa << 48 | (uint64_t)pb << 32 | (uint64_t)k->vlan << 16 | k->ip_version;
	if (k->ip_version == 4) { /* the addresses are 4 bytes (decode.h): two words */
		uint32_t a4, b4;
		memcpy(&a4, a, 4);
		memcpy(&b4, b, 4);
		uint64_t w4[2] = {(uint64_t)a4 | (uint64_t)b4 << 32, tail};
		return (uint32_t)hash_sip13_words(&t->key, w4, 2);
	}
	uint64_t w[5] = {load64(a), load64(a + 8), load64(b), load64(b + 8), tail};
	return (uint32_t)hash_sip13_words(&t->key, w, 5);
}

static inline bool ep_eq(const uint8_t *a, uint16_t ap, const uint8_t *b, uint16_t bp)
{
	return ap == bp && !memcmp(a, b, 16);
}

/* Find the entry of @p k; *dir is 0 when the sender is the client. */
static struct flow *lookup(struct flow_table *t, const struct decode_pkt *k, uint32_t h, int *dir)
{
	for (struct flow *f = t->buckets[h & t->mask]; f; f = f->hnext) {
		t->probes++;
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

/* The consumer learns of a connection with its first byte or gap. */
static void consumer_open(struct flow_table *t, struct flow *f, int64_t ts)
{
	f->opened = true;
	struct flow_info info = {
	    .ip_version = f->ipv,
	    .client_port = f->cport,
	    .server_port = f->sport,
	    .vlan = f->vlan,
	    .conn_id = f->conn_id,
	    .midstream = f->midstream,
	    .ts_ns = ts,
	};
	memcpy(info.client_addr, f->caddr, 16);
	memcpy(info.server_addr, f->saddr, 16);
	f->conn = t->p.ops->open(t->p.ops_ctx, &info);
}

static void side_sent(struct flow_side *x, uint32_t end);

static void out_data(void *u, const uint8_t *data, size_t len, const struct reasm_meta *m)
{
	struct dir_ctx *d = u;
	struct flow *f = d->f;
	int64_t ts = m->ts_ns;
	/* Bytes delivered right after what the side was seen to send extend
	 * it (a reordered segment drained from the buffer); bytes after a gap
	 * do not: a gap may have been declared by a forged acknowledgement. */
	struct flow_side *x = &f->sd[d->dir];
	uint32_t end = f->rs[d->dir].next_seq;
	if (x->has_snd && seq_upto(end - (uint32_t)len, x->snd_max))
		side_sent(x, end);
	if (!f->opened)
		consumer_open(d->t, f, ts);
	if (f->conn) {
		struct flow_seg seg = {
		    .ts_ns = ts,
		    .off = f->rs[d->dir].next_off - len,
		    .ack = m->ack,
		    .has_ack = m->has_ack,
		};
		d->t->p.ops->data(d->t->p.ops_ctx, f->conn, d->dir, data, len, &seg);
	}
}

static void out_gap(void *u, uint64_t len, int64_t ts)
{
	struct dir_ctx *d = u;
	if (!d->f->opened)
		consumer_open(d->t, d->f, ts);
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
 * closed (FIN, RST: late packets are recognised) or free it. @p ts is
 * packet time. */
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
	list_unlink(list_of(t, f), f);
	t->n_open--;
	if (keep) {
		f->state = FS_CLOSED;
		f->last_ts = t->now;
		list_append(&t->closed, f);
	} else {
		entry_free(t, f);
	}
}

/* Close @p f because it sat idle (or is evicted): FIN when both sides
 * closed and the last ACK was not seen, else a timeout. */
static void close_idle(struct flow_table *t, struct flow *f, int64_t ts)
{
	bool fin = f->fin[0] && f->fin[1];
	if (fin)
		t->p.stats->closed_fin++;
	else
		t->p.stats->timeouts++;
	flow_close(t, f, fin ? FLOW_END_FIN : FLOW_END_TIMEOUT, ts, false);
}

static void expire(struct flow_table *t)
{
	struct flow *f;
	int64_t real = real_time(t, t->now);
	while ((f = t->open.head) && f->last_ts + t->p.idle_timeout_ns < t->now)
		close_idle(t, f, real);
	while ((f = t->new_.head) && f->last_ts + t->p.new_timeout_ns < t->now)
		close_idle(t, f, real);
	while ((f = t->closed.head) && f->last_ts + t->p.closed_timeout_ns < t->now) {
		list_unlink(&t->closed, f);
		entry_free(t, f);
	}
}

static void count_mem(struct flow_table *t)
{
	t->p.stats->mem_bytes = (uint64_t)t->fresh * sizeof(struct flow) +
				((uint64_t)t->mask + 1) * sizeof(*t->buckets);
}

static struct flow *entry_alloc(struct flow_table *t, int64_t ts)
{
	struct flow *f = t->free;
	if (!f && t->fresh < t->p.max_flows) {
		f = &t->entries[t->fresh++];
		count_mem(t);
		return f;
	}
	if (!f && t->closed.head) {
		f = t->closed.head;
		list_unlink(&t->closed, f);
		entry_free(t, f);
	}
	if (!f && (t->new_.head || t->open.head)) {
		/* Full: a half-open connection (a SYN flood's) goes before any
		 * connection that carries traffic. */
		struct flow *v = t->new_.head ? t->new_.head : t->open.head;
		t->p.stats->evicted++;
		if (v->state == FS_NEW)
			t->p.stats->evicted_new++;
		FLOW_LOG(LOG_DEBUG, "flow table full (%u): evicting the idlest connection",
			 t->p.max_flows);
		flow_close(t, v, FLOW_END_TIMEOUT, ts, false);
	}
	f = t->free;
	if (f)
		t->free = f->next;
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
			      int *dir)
{
	struct flow *f = entry_alloc(t, real_time(t, t->now));
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
	f->midstream = midstream;
	f->conn_id = ++t->next_conn_id;
	f->state = midstream ? FS_OPEN : FS_NEW;
	f->last_ts = t->now;
	reasm_stream_init(&f->rs[0]);
	reasm_stream_init(&f->rs[1]);
	f->hnext = t->buckets[h & t->mask];
	t->buckets[h & t->mask] = f;
	list_append(list_of(t, f), f);
	if (++t->n_open > t->p.stats->active_peak)
		t->p.stats->active_peak = t->n_open;
	t->p.stats->created++;
	if (midstream)
		t->p.stats->midstream++;
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
	if (!t->p.new_timeout_ns)
		t->p.new_timeout_ns = 60LL * 1000000000LL;
	if (t->p.new_timeout_ns > t->p.idle_timeout_ns)
		t->p.new_timeout_ns = t->p.idle_timeout_ns;
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
	hash_random_key(&t->key);
	count_mem(t);
	return t;
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	if (t->entries) {
		struct flow_list *ls[2] = {&t->new_, &t->open};
		for (int i = 0; i < 2; i++)
			for (struct flow *f = ls[i]->head; f; f = f->next)
				for (int d = 0; d < 2; d++)
					reasm_stream_release(&t->rc, &f->rs[d]);
	}
	mem_free(t->entries);
	mem_free(t->buckets);
	mem_free(t);
}

/* ---- TCP state checks ---- */

/*
 * How far ahead of what a side was seen to send a segment may start and
 * still count as seen (a segment the capture lost before it). A blind
 * sender lands there with odds FLOW_SEQ_SLACK / 2^32 per guess, and what
 * it gains is only that the peer's acknowledgement of it is believed.
 */
#define FLOW_SEQ_SLACK (256u << 10)

/* Is an RST from side @p dir acceptable? (RFC 5961 §3.2 seen from the wire:
 * the receiver's RCV.NXT is between what it acknowledged and what was sent.) */
static bool rst_in_window(const struct flow *f, int dir, const struct decode_pkt *k)
{
	const struct flow_side *x = &f->sd[dir], *y = &f->sd[1 - dir];
	if (x->has_snd) {
		uint32_t hi = x->snd_max;
		uint32_t lo = y->has_ack && seq_upto(y->ack_max, hi) ? y->ack_max : hi;
		return k->seq - lo <= hi - lo;
	}
	/* Nothing seen from the sender: only the answer to a SYN (SYN-SENT,
	 * RFC 9293 §3.10.7.3: acceptable when it acknowledges the SYN). */
	return y->has_snd && !y->has_ack && (k->tcp_flags & DECODE_TH_ACK) && k->ack == y->snd_max;
}

/* The side's stream grew in order: move snd_max (and seen_max) along.
 * The first position anchors both: seen_max is compared by distance, so
 * left at 0 it would stay behind an ISN 2^30 or more away for good. */
static void side_sent(struct flow_side *x, uint32_t end)
{
	if (!x->has_snd) {
		x->snd_max = x->seen_max = end;
		x->has_snd = true;
		return;
	}
	if (seq_ahead(end, x->snd_max))
		x->snd_max = end;
	if (seq_ahead(x->snd_max, x->seen_max))
		x->seen_max = x->snd_max;
}

/* A segment of the side occupying [start, end) was seen (maybe after a hole). */
static void side_seen(struct flow_side *x, uint32_t start, uint32_t end)
{
	if (!x->has_snd) {
		x->snd_max = x->seen_max = start; /* midstream: the first bytes anchor it */
		x->has_snd = true;
	}
	if (seq_upto(start, x->snd_max))
		side_sent(x, end); /* in order: every byte on the wire counts */
	else if (start - x->snd_max <= FLOW_SEQ_SLACK && seq_ahead(end, x->seen_max))
		x->seen_max = end;
}

static void accept_fin(struct flow *f, int dir, uint32_t p)
{
	struct flow_side *x = &f->sd[dir];
	reasm_fin(&f->rs[dir], p);
	f->fin[dir] = true;
	x->fin_seq = p;
	x->fin_pending = false;
	x->fin_acked = false;
	side_sent(x, p + 1);
}

/*
 * An acknowledgement from @p acker of side @p od's stream: believed only
 * when it does not pass what that side was seen to send (RFC 5961 §5).
 * Then the side did send it all: a hole before it was the capture's loss.
 */
static void side_acked(struct flow *f, struct flow_side *acker, int od, uint32_t ack)
{
	struct flow_side *owner = &f->sd[od];
	if (owner->has_snd && !seq_upto(ack, owner->seen_max))
		return;
	if (!acker->has_ack || seq_ahead(ack, acker->ack_max)) {
		acker->ack_max = ack;
		acker->has_ack = true;
	}
	if (!owner->has_snd)
		return;
	side_sent(owner, ack);
	if (owner->fin_pending && seq_upto(owner->fin_seq + 1, owner->snd_max))
		accept_fin(f, od, owner->fin_seq);
	if (f->fin[od] && seq_upto(owner->fin_seq + 1, ack))
		owner->fin_acked = true;
}

/* A FIN of side @p dir whose segment starts at @p start; the FIN is at @p p. */
static void on_fin(struct flow_table *t, struct flow *f, int dir, uint32_t start, uint32_t p)
{
	struct flow_side *x = &f->sd[dir], *y = &f->sd[1 - dir];
	if (f->fin[dir]) {
		if (p != x->fin_seq)
			t->p.stats->fin_ignored++;
		return; /* a retransmission, or a second FIN elsewhere */
	}
	if (y->has_ack && seq_ahead(y->ack_max, p + 1)) {
		t->p.stats->fin_ignored++; /* behind what the peer acknowledged */
		return;
	}
	if (!x->has_snd || seq_upto(start, x->snd_max)) {
		accept_fin(f, dir, p);
		return;
	}
	if (start - x->snd_max > FLOW_SEQ_SLACK) {
		t->p.stats->fin_ignored++; /* far ahead: no sender's */
		return;
	}
	/* After a hole: wait until the hole fills or the peer acknowledges it. */
	if (x->fin_pending && x->fin_seq != p)
		t->p.stats->fin_ignored++;
	x->fin_pending = true;
	x->fin_seq = p;
	if (seq_ahead(p + 1, x->seen_max))
		x->seen_max = p + 1;
}

/* Data of side @p dir reached [.., end): a FIN it passes was not real. */
static void data_passes_fin(struct flow_table *t, struct flow *f, int dir, uint32_t end)
{
	struct flow_side *x = &f->sd[dir];
	if (x->fin_pending && seq_ahead(end, x->fin_seq)) {
		x->fin_pending = false;
		t->p.stats->fin_ignored++;
	}
	if (f->fin[dir] && !x->fin_acked && seq_ahead(end, x->fin_seq)) {
		reasm_fin_cancel(&f->rs[dir]);
		f->fin[dir] = false;
		t->p.stats->fin_ignored++;
	}
}

/* ---- the clock ---- */

/* Packet time @p ts on the table's clock; a jump beyond the idle timeout
 * either way starts a new epoch instead of moving the clock. */
static int64_t clock_of(struct flow_table *t, int64_t ts)
{
	if (!t->has_now) {
		t->has_now = true;
		t->now = 0;
		t->epoch_off = ts;
		return 0;
	}
	/* In 128 bits: a hostile timestamp may be anywhere in int64. */
	__int128 it = (__int128)ts - t->epoch_off;
	__int128 d = it - t->now;
	if (d > t->p.idle_timeout_ns || d < -(__int128)t->p.idle_timeout_ns) {
		t->p.stats->clock_jumps++;
		t->epoch_off = sat64((__int128)ts - t->now);
		FLOW_LOG(LOG_DEBUG, "capture clock jumped by %lld s: a new epoch",
			 (long long)(d / 1000000000));
		return t->now;
	}
	if (it > t->now) {
		t->now = (int64_t)it;
		expire(t);
	}
	return t->now;
}

/* ---- packets ---- */

void flow_packet(struct flow_table *t, const struct decode_pkt *k, int64_t ts)
{
	clock_of(t, ts);
	uint8_t fl = k->tcp_flags;
	bool syn = fl & DECODE_TH_SYN, ack = fl & DECODE_TH_ACK;
	bool rst = fl & DECODE_TH_RST, fin = fl & DECODE_TH_FIN;
	uint32_t h = tuple_hash(t, k);
	int dir = 0;
	struct flow *f = lookup(t, k, h, &dir);
	bool new_syn = f && syn && !ack && !rst && !(dir == 0 && f->has_isn && k->seq == f->isn);

	if (f && f->state == FS_CLOSED) {
		if (new_syn) {
			t->p.stats->port_reuse++;
			list_unlink(&t->closed, f);
			entry_free(t, f);
			f = NULL;
		} else {
			t->p.stats->pkts_after_close++;
			return;
		}
	} else if (new_syn && f->state == FS_NEW) {
		/* A new handshake where the old one never completed. */
		t->p.stats->port_reuse++;
		close_idle(t, f, ts);
		f = NULL;
	} else if (new_syn) {
		/* RFC 5961 §4: the old connection carries on unless the server
		 * answers this SYN with a SYN-ACK (then the old one is gone). */
		if (!f->has_new_syn || f->new_isn != k->seq)
			t->p.stats->syn_on_open++;
		f->has_new_syn = true;
		f->new_isn = k->seq;
		return;
	} else if (f && syn && ack && !rst && dir == 1 && f->has_new_syn &&
		   k->ack == f->new_isn + 1) {
		uint32_t cisn = f->new_isn;
		t->p.stats->port_reuse++;
		close_idle(t, f, ts);
		f = flow_open(t, k, h, &dir);
		if (!f)
			return;
		f->isn = cisn;
		f->has_isn = true;
		side_sent(&f->sd[0], cisn + 1);
		reasm_stream_start(&f->rs[0], cisn + 1);
	}
	if (!f) {
		if (rst || (!syn && !k->payload_len)) {
			t->p.stats->pkts_no_flow++;
			return;
		}
		f = flow_open(t, k, h, &dir);
		if (!f)
			return;
	}
	struct flow_side *x = &f->sd[dir], *y = &f->sd[1 - dir];

	if (rst) {
		if (!rst_in_window(f, dir, k)) {
			t->p.stats->rst_ignored++;
			FLOW_LOG(LOG_DEBUG, "conn %llu: RST outside the window ignored",
				 (unsigned long long)f->conn_id);
			return;
		}
		t->p.stats->closed_rst++;
		flow_close(t, f, FLOW_END_RST, ts, true);
		return;
	}
	f->last_ts = t->now;
	list_unlink(list_of(t, f), f);

	if (syn) {
		if (!ack && dir == 0 && !f->has_isn) {
			f->isn = k->seq;
			f->has_isn = true;
		}
		if (!f->rs[dir].started)
			reasm_stream_start(&f->rs[dir], k->seq + 1);
		side_sent(x, k->seq + 1);
		if (ack && !f->rs[1 - dir].started)
			reasm_stream_start(&f->rs[1 - dir], k->ack);
		if (k->payload_len)
			t->p.stats->syn_payload++;
	}
	/* The acknowledgement first: the sender had received what it
	 * acknowledges before it sent this segment's data, so a hole in the
	 * peer's stream it proves lost reaches the consumer before the data
	 * (a response whose request the capture missed follows that gap). */
	if (ack) {
		side_acked(f, x, 1 - dir, k->ack);
		if (!f->rs[1 - dir].started) {
			/* No byte of the peer seen yet: what this side acknowledges is
			 * where the peer's stream stands, so later acknowledgements of
			 * bytes the capture never shows become gaps (e.g. one
			 * direction missing). */
			reasm_stream_start(&f->rs[1 - dir], k->ack);
		} else {
			struct dir_ctx d = {t, f, 1 - dir};
			struct reasm_out o = {out_data, out_gap, &d};
			reasm_ack(&t->rc, &f->rs[1 - dir], k->ack, ts, &o);
		}
	}
	uint32_t seq = k->seq + (syn ? 1 : 0);
	if (k->payload_len && !syn) {
		data_passes_fin(t, f, dir, seq + k->payload_wire);
		side_seen(x, seq, seq + k->payload_wire);
		struct dir_ctx d = {t, f, dir};
		struct reasm_out o = {out_data, out_gap, &d};
		struct reasm_meta m = {.ts_ns = ts};
		m.has_ack = ack && reasm_seq_offset(&f->rs[1 - dir], k->ack, &m.ack);
		uint64_t after = t->p.rstats->after_fin_bytes;
		reasm_segment(&t->rc, &f->rs[dir], seq, k->payload, k->payload_len, &m, &o);
		uint64_t lost = t->p.rstats->after_fin_bytes - after;
		if (lost && f->opened && f->conn) /* bytes after a real FIN: flag what they touch */
			t->p.ops->gap(t->p.ops_ctx, f->conn, dir, lost, ts);
		if (x->fin_pending && seq_upto(x->fin_seq, x->snd_max))
			accept_fin(f, dir, x->fin_seq);
	}
	if (fin)
		on_fin(t, f, dir, syn ? seq + k->payload_wire : seq, seq + k->payload_wire);
	if (f->state == FS_NEW && (k->payload_len || (ack && y->has_ack)))
		f->state = FS_OPEN; /* the handshake completed, or data flows */
	list_append(list_of(t, f), f);
	if (f->fin[0] && f->fin[1] && reasm_complete(&f->rs[0]) && reasm_complete(&f->rs[1])) {
		t->p.stats->closed_fin++;
		flow_close(t, f, FLOW_END_FIN, ts, true);
	}
}

void flow_advance(struct flow_table *t, int64_t now_ns)
{
	/* The caller's clock (live capture's wall time) is trusted: no epochs. */
	if (!t->has_now)
		return;
	__int128 it = (__int128)now_ns - t->epoch_off;
	if (it > t->now) {
		t->now = sat64(it);
		expire(t);
	}
}

bool flow_evict_idlest(struct flow_table *t)
{
	if (!t->open.head)
		return false;
	t->p.stats->evicted++;
	flow_close(t, t->open.head, FLOW_END_TIMEOUT, real_time(t, t->now), false);
	return true;
}

void flow_finish(struct flow_table *t)
{
	struct flow *f;
	int64_t real = real_time(t, t->now);
	while ((f = t->open.head) || (f = t->new_.head)) {
		t->p.stats->ended_eof++;
		flow_close(t, f, FLOW_END_EOF, real, false);
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

uint64_t flow_table_probes(const struct flow_table *t)
{
	return t->probes;
}
