/* SPDX-License-Identifier: MIT */
/*
 * pipeline - glue from packets to colored sessions (see pipeline.h).
 *
 * The flow table's consumer interface is implemented here over the HTTP
 * transaction tracker: a connection opening creates a txn_conn, stream
 * bytes and gaps go to it by direction, the close ends and frees it. The
 * tracker's sessions get their file-wide id and lane here and go to the
 * sink. No allocation per packet: the flow table is preallocated and the
 * only per-connection allocation is the tracker, made when the connection's
 * first byte arrives (flow.h) and counted in the HTTP memory from then on,
 * so every byte a connection holds outside its flow entry is under
 * txn_memcap.
 *
 * References: docs/architecture.md ("Data flow", "Where the caps live");
 * capture/txn.h, capture/rules.h.
 */
#include "capture/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "capture/decode.h"
#include "capture/flow.h"
#include "capture/h2.h"
#include "capture/ipfrag.h"
#include "capture/reasm.h"
#include "capture/txn.h"
#include "common/log.h"
#include "common/mem.h"

#define PIPE_LOG(lvl, ...) LOG_MSG(lvl, "pipeline", __VA_ARGS__)
#define PIPE_MAX_LANES	   64
#define PIPE_NAME_MAX	   80

struct pipe_lane {
	const char *name; /* borrowed from rules_match() once seen, else NULL */
	char text[PIPE_NAME_MAX];
	uint64_t sessions;
};

struct pipe_ctr {
	char name[PIPE_NAME_MAX];
	const uint64_t *value;
};

/* Per connection: the tracker and the memory last reported for it. */
struct pipe_conn {
	struct txn_conn *t;    /* NULL while the connection sleeps, or when HTTP/2 from the start */
	struct txn_dormant *z; /* allocated the first time it may sleep */
	struct h2_conn *h2;    /* HTTP/2 (prior knowledge or Upgrade: h2c); never sleeps */
	size_t mem;
	bool h2_decided; /* HTTP/1.x or HTTP/2 settled by the first bytes */
	bool h2_swapped; /* the flow's server side is the HTTP/2 client */
	uint8_t held_dir;
	uint16_t held_len;
	uint8_t *held; /* a server's first SETTINGS, until the client's first bytes */
	int64_t held_ts;
	struct txn_pos held_pos; /* where the held bytes sit in their stream */
};

#define PIPE_H2_HOLD_MAX 1024

struct pipe {
	struct pipe_params p;
	size_t txn_mem; /* sum of pipe_conn.mem */
	struct pipe_stats st;
	struct decode_stats ds;
	struct flow_stats fs;
	struct reasm_stats rs;
	struct txn_stats ts;
	struct txn_params tp;
	struct ipfrag_stats fgs;
	struct ipfrag *frag;
	struct h2_stats hs;
	struct h2_params hp;
	struct pipe_conn *cur; /* the connection whose bytes are being parsed */
	struct flow_table *flows;
	uint64_t next_id;
	struct pipe_lane lanes[PIPE_MAX_LANES];
	size_t n_lanes;
	struct pipe_ctr *ctrs;
	size_t n_ctrs;
};

const struct ctr_desc pipe_ctr_descs[] = {
    CTR_DESC(struct pipe_stats, packets, "packets offered to the pipeline"),
    CTR_DESC(struct pipe_stats, wire_bytes, "bytes of those packets on the wire"),
    CTR_DESC(struct pipe_stats, sessions, "HTTP sessions (transactions) emitted"),
    CTR_DESC(struct pipe_stats, colored, "sessions matched by a color rule"),
    CTR_DESC(struct pipe_stats, uncolored, "sessions matched by no rule (baseline lane)"),
    CTR_DESC(struct pipe_stats, dropped_uncolored, "uncolored sessions dropped (--uncolored drop)"),
    CTR_DESC(struct pipe_stats, written, "sessions written to the output"),
    CTR_DESC(struct pipe_stats, sink_errors, "sessions lost because the output failed"),
    CTR_DESC(struct pipe_stats, conn_untracked,
	     "connections not parsed because a tracker could not be allocated"),
    CTR_DESC(struct pipe_stats, lanes_overflow, "sessions of lanes beyond the per-lane table"),
    CTR_DESC(struct pipe_stats, memcap_evictions,
	     "connections closed early because HTTP buffers passed the memory cap"),
    CTR_DESC(struct pipe_stats, txn_mem_peak, "most memory held by HTTP trackers at once (bytes)"),
    CTR_DESC(struct pipe_stats, dormant,
	     "idle connections put to sleep to save memory (nothing lost; woken on new bytes)"),
    CTR_DESC(struct pipe_stats, woken, "sleeping connections woken by new bytes"),
};
const size_t pipe_ctr_count = sizeof(pipe_ctr_descs) / sizeof(pipe_ctr_descs[0]);

/* ---- sessions ---- */

static void count_lane(struct pipe *p, const char *lane)
{
	for (size_t i = 0; i < p->n_lanes; i++) {
		struct pipe_lane *l = &p->lanes[i];
		if (l->name == lane || !strcmp(l->text, lane)) {
			l->name = lane;
			l->sessions++;
			return;
		}
	}
	if (p->n_lanes == PIPE_MAX_LANES) {
		p->st.lanes_overflow++;
		return;
	}
	struct pipe_lane *l = &p->lanes[p->n_lanes++];
	l->name = lane;
	snprintf(l->text, sizeof(l->text), "%s", lane);
	l->sessions = 1;
}

/* Does the header list hold @p name with the token @p tok (case-insensitive)? */
static bool has_token(const struct store_message *m, const char *name, const char *tok)
{
	size_t nl = strlen(name), tl = strlen(tok);
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct store_header *h = &m->headers[i];
		if (h->name.len != nl || strncasecmp((const char *)h->name.ptr, name, nl))
			continue;
		const uint8_t *v = h->value.ptr, *end = v + h->value.len;
		while (v < end) {
			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			const uint8_t *e = v;
			while (e < end && *e != ',' && *e != ' ' && *e != '\t')
				e++;
			if ((size_t)(e - v) == tl && !strncasecmp((const char *)v, tok, tl))
				return true;
			v = e;
		}
	}
	return false;
}

/*
 * "Upgrade: h2c" answered by 101 (RFC 7540 §3.2): the connection goes on
 * as HTTP/2 and the request is stream 1's, so its session comes from the
 * HTTP/2 tracker (with the response), not from here. true when taken.
 */
static bool h2_upgrade(struct pipe *p, const struct store_session *s)
{
	struct pipe_conn *c = p->cur;
	if (!c || c->h2 || !c->t || !(s->flags & STORE_F_TUNNEL) || !s->resp.present ||
	    s->resp.status != 101 || !has_token(&s->resp, "upgrade", "h2c"))
		return false;
	const struct txn_conn_info *ti = txn_conn_get_info(c->t);
	bool swapped = s->src.port != ti->client.port || memcmp(s->src.addr, ti->client.addr, 16);
	struct h2_conn *h = h2_conn_create(&p->hp, ti, swapped);
	if (!h)
		return false;
	uint32_t keep = s->flags & (STORE_F_GAP | STORE_F_PARSE_ERROR | STORE_F_REDACTED);
	if (h2_conn_upgrade(h, &s->req, s->ts_req_first_ns, s->ts_req_last_ns, keep) < 0) {
		h2_conn_end(h, TXN_END_EOF, s->ts_resp_last_ns);
		h2_conn_free(h);
		return false;
	}
	c->h2 = h;
	c->h2_swapped = swapped;
	return true;
}

/* Bytes after a protocol switch: HTTP/2's when the switch was to h2c. */
static bool on_tunnel_data(void *ctx, enum txn_dir role, const uint8_t *d, size_t n, int64_t ts)
{
	struct pipe *p = ctx;
	struct pipe_conn *c = p->cur;
	if (!c || !c->h2)
		return false;
	bool client = (role == TXN_DIR_CLIENT) != c->h2_swapped; /* back to the flow's view */
	h2_conn_data(c->h2, client ? TXN_DIR_CLIENT : TXN_DIR_SERVER, d, n, ts);
	return true;
}

static void on_session(void *ctx, const struct store_session *s)
{
	struct pipe *p = ctx;
	if (s->proto == STORE_PROTO_HTTP1 && h2_upgrade(p, s))
		return;
	struct store_session c = *s;
	p->st.sessions++;
	const char *lane = p->p.rules ? rules_match(p->p.rules, s) : NULL;
	if (lane) {
		p->st.colored++;
		count_lane(p, lane);
		c.lane.ptr = (const uint8_t *)lane;
		c.lane.len = strlen(lane);
	} else {
		p->st.uncolored++;
		if (p->p.drop_uncolored) {
			p->st.dropped_uncolored++;
			return;
		}
		c.lane.ptr = NULL;
		c.lane.len = 0;
	}
	c.id = ++p->next_id;
	if (p->p.redact) {
		struct store_session in = c;
		if (redact_session(p->p.redact, &in, &c) < 0) {
			p->st.sink_errors++; /* never write an unredacted session */
			return;
		}
	}
	if (!p->p.sink) {
		p->st.written++;
		return;
	}
	int rc = p->p.sink(p->p.sink_ctx, &c);
	if (rc < 0)
		p->st.sink_errors++;
	else
		p->st.written++;
}

static void on_request(void *ctx, const struct store_session *s)
{
	struct pipe *p = ctx;
	struct store_session c = *s;
	const char *lane = p->p.rules ? rules_match(p->p.rules, s) : NULL;
	c.lane.ptr = (const uint8_t *)lane;
	c.lane.len = lane ? strlen(lane) : 0;
	p->p.on_request(p->p.sink_ctx, &c);
}

/* ---- flow consumer over txn ---- */

static void *conn_open(void *ctx, const struct flow_info *fi)
{
	struct pipe *p = ctx;
	struct txn_conn_info ti = {
	    .ip_version = fi->ip_version,
	    .vlan = fi->vlan,
	    .conn_id = fi->conn_id,
	    .midstream = fi->midstream,
	};
	memcpy(ti.client.addr, fi->client_addr, 16);
	memcpy(ti.server.addr, fi->server_addr, 16);
	ti.client.port = fi->client_port;
	ti.server.port = fi->server_port;
	struct pipe_conn *c = mem_alloc(sizeof(*c));
	if (c)
		c->t = txn_conn_create(&p->tp, &ti);
	if (!c || !c->t) {
		mem_free(c);
		p->st.conn_untracked++;
		return NULL;
	}
	c->z = NULL;
	c->h2 = NULL;
	c->mem = 0;
	c->h2_decided = c->h2_swapped = false;
	c->held = NULL;
	c->held_len = 0;
	return c;
}

/* Bytes held while HTTP/2 was undecided go where the decision says. */
static void unhold(struct pipe_conn *c)
{
	if (!c->held)
		return;
	enum txn_dir d = c->held_dir ? TXN_DIR_SERVER : TXN_DIR_CLIENT;
	if (c->h2)
		h2_conn_data(c->h2, d, c->held, c->held_len, c->held_ts);
	else if (c->t)
		txn_conn_segment(c->t, d, c->held, c->held_len, c->held_ts, &c->held_pos);
	mem_free(c->held);
	c->held = NULL;
	c->held_len = 0;
}

/*
 * A connection whose first bytes are the HTTP/2 client preface (prior
 * knowledge, RFC 9113 §3.3) goes to the HTTP/2 tracker for good. A server
 * may send its SETTINGS before the client's preface arrives: those first
 * bytes are held (bounded) until the other side's first bytes decide.
 * Returns 1 when the bytes are HTTP/2's, 0 when HTTP/1.x's, 2 when held.
 */
static int h2_start(struct pipe *p, struct pipe_conn *c, int dir, const uint8_t *d, size_t n,
		    int64_t ts, const struct txn_pos *pos)
{
	if (c->h2)
		return 1;
	if (c->h2_decided || !c->t || (c->held && c->held_dir == dir)) {
		c->h2_decided = true;
		unhold(c);
		return 0;
	}
	if (h2_is_preface(d, n)) {
		c->h2 = h2_conn_create(&p->hp, txn_conn_get_info(c->t), dir != 0);
		c->h2_decided = true;
		if (!c->h2) {
			unhold(c); /* parsed as HTTP/1.x: parse_error sessions, not a silent loss */
			return 0;
		}
		c->h2_swapped = dir != 0;
		txn_conn_free(c->t);
		c->t = NULL;
		unhold(c);
		return 1;
	}
	if (!c->held && n <= PIPE_H2_HOLD_MAX && h2_is_server_preface(d, n)) {
		c->held = mem_alloc(n);
		if (c->held) {
			memcpy(c->held, d, n);
			c->held_len = (uint16_t)n;
			c->held_dir = (uint8_t)dir;
			c->held_ts = ts;
			c->held_pos = *pos;
			return 2;
		}
	}
	c->h2_decided = true;
	unhold(c);
	return 0;
}

/* A sleeping connection gets bytes: re-create its tracker. false without memory. */
static bool wake(struct pipe *p, struct pipe_conn *c)
{
	if (c->t || c->h2)
		return true;
	c->t = txn_conn_wake(&p->tp, c->z);
	if (!c->t) {
		p->st.conn_untracked++; /* these bytes are lost; the next ones retry */
		return false;
	}
	p->st.woken++;
	return true;
}

/* Keep the sum of tracker memory current after the tracker ran; under
 * memory pressure, put the connection to sleep if nothing is in flight. */
static void account(struct pipe *p, struct pipe_conn *c)
{
	if (p->txn_mem > p->p.txn_dormant_mem && !c->h2 && !c->held) {
		if (!c->z)
			c->z = mem_alloc(sizeof(*c->z));
		if (c->z && txn_conn_sleep(c->t, c->z)) {
			c->t = NULL;
			p->st.dormant++;
			p->txn_mem = p->txn_mem - c->mem + sizeof(*c->z) + sizeof(*c);
			c->mem = sizeof(*c->z) + sizeof(*c);
			return;
		}
	}
	size_t m = (c->t ? txn_conn_mem(c->t) : 0) + (c->h2 ? h2_conn_mem(c->h2) : 0) +
		   (c->z ? sizeof(*c->z) : 0) + c->held_len + sizeof(*c);
	p->txn_mem = p->txn_mem - c->mem + m;
	c->mem = m;
	if (p->txn_mem > p->st.txn_mem_peak)
		p->st.txn_mem_peak = p->txn_mem;
}

static void conn_data(void *ctx, void *conn, int dir, const uint8_t *d, size_t n,
		      const struct flow_seg *seg)
{
	struct pipe *p = ctx;
	struct pipe_conn *c = conn;
	if (!wake(ctx, c))
		return;
	struct txn_pos pos = {.off = seg->off, .ack = seg->ack, .has_ack = seg->has_ack};
	p->cur = c;
	int to = h2_start(p, c, dir, d, n, seg->ts_ns, &pos);
	if (to == 1)
		h2_conn_data(c->h2, dir ? TXN_DIR_SERVER : TXN_DIR_CLIENT, d, n, seg->ts_ns);
	else if (to == 0)
		txn_conn_segment(c->t, dir ? TXN_DIR_SERVER : TXN_DIR_CLIENT, d, n, seg->ts_ns,
				 &pos);
	p->cur = NULL;
	account(ctx, c);
}

static void conn_gap(void *ctx, void *conn, int dir, uint64_t n, int64_t ts)
{
	struct pipe *p = ctx;
	struct pipe_conn *c = conn;
	if (!wake(ctx, c))
		return;
	c->h2_decided = true; /* a preface after lost bytes is not the connection's start */
	p->cur = c;
	unhold(c);
	if (c->h2)
		h2_conn_gap(c->h2, dir ? TXN_DIR_SERVER : TXN_DIR_CLIENT, n, ts);
	else
		txn_conn_gap(c->t, dir ? TXN_DIR_SERVER : TXN_DIR_CLIENT, n, ts);
	p->cur = NULL;
	account(ctx, c);
}

static void conn_close(void *ctx, void *conn, enum flow_end how, int64_t ts)
{
	struct pipe *p = ctx;
	struct pipe_conn *c = conn;
	enum txn_end e;
	switch (how) {
	case FLOW_END_FIN:
		e = TXN_END_FIN;
		break;
	case FLOW_END_RST:
		e = TXN_END_RST;
		break;
	case FLOW_END_TIMEOUT:
		e = TXN_END_TIMEOUT;
		break;
	default:
		e = TXN_END_EOF;
		break;
	}
	p->cur = c;
	unhold(c);
	if (c->t) { /* a sleeping connection has nothing to emit */
		txn_conn_end(c->t, e, ts);
		txn_conn_free(c->t);
	}
	if (c->h2) {
		h2_conn_end(c->h2, e, ts);
		h2_conn_free(c->h2);
	}
	p->cur = NULL;
	mem_free(c->z);
	p->txn_mem -= c->mem;
	mem_free(c);
}

static const struct flow_ops pipe_flow_ops = {conn_open, conn_data, conn_gap, conn_close};

/* ---- counters ---- */

struct ctr_group {
	const char *prefix;
	const struct ctr_desc *descs;
	size_t n;
	const void *stats;
};

static int build_counters(struct pipe *p)
{
	const struct ctr_group g[] = {
	    {"pipe_", pipe_ctr_descs, pipe_ctr_count, &p->st},
	    {"decode_", decode_ctr_descs, decode_ctr_count, &p->ds},
	    {"flow_", flow_ctr_descs, flow_ctr_count, &p->fs},
	    {"ipfrag_", ipfrag_ctr_descs, ipfrag_ctr_count, &p->fgs},
	    {"reasm_", reasm_ctr_descs, reasm_ctr_count, &p->rs},
	    {"txn_", txn_ctr_descs, txn_ctr_count, &p->ts},
	    {"h2_", h2_ctr_descs, h2_ctr_count, &p->hs},
	    {"redact_", redact_ctr_descs, redact_ctr_count,
	     p->p.redact ? redact_get_stats(p->p.redact) : NULL},
	};
	size_t ng = sizeof(g) / sizeof(g[0]) - !p->p.redact;
	size_t n = PIPE_MAX_LANES;
	for (size_t i = 0; i < ng; i++)
		n += g[i].n;
	p->ctrs = mem_calloc(n, sizeof(*p->ctrs));
	if (!p->ctrs)
		return -ENOMEM;
	for (size_t i = 0; i < ng; i++)
		for (size_t j = 0; j < g[i].n; j++) {
			struct pipe_ctr *c = &p->ctrs[p->n_ctrs++];
			snprintf(c->name, sizeof(c->name), "%s%s", g[i].prefix, g[i].descs[j].name);
			c->value = (const uint64_t *)(const void *)((const char *)g[i].stats +
								    g[i].descs[j].offset);
		}
	return 0;
}

/* Lanes named by the rules get a counter even when they see no session. */
static void preload_lanes(struct pipe *p)
{
	size_t n = p->p.rules ? rules_count(p->p.rules) : 0;
	for (size_t i = 0; i < n && p->n_lanes < PIPE_MAX_LANES; i++) {
		const char *t = rules_text(p->p.rules, i);
		const char *eq = t ? strchr(t, '=') : NULL;
		if (!eq)
			continue;
		char lane[PIPE_NAME_MAX];
		snprintf(lane, sizeof(lane), "%.*s", (int)(eq - t), t);
		bool dup = false;
		for (size_t j = 0; j < p->n_lanes; j++)
			dup |= !strcmp(p->lanes[j].text, lane);
		if (!dup)
			snprintf(p->lanes[p->n_lanes++].text, PIPE_NAME_MAX, "%s", lane);
	}
}

size_t pipe_counters(const struct pipe *p, struct store_counter *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_ctrs; i++, n++)
		if (n < max)
			out[n] = (struct store_counter){p->ctrs[i].name, *p->ctrs[i].value};
	/* Lane counters use the spare slots after the fixed ones. */
	for (size_t i = 0; i < p->n_lanes; i++, n++) {
		if (n >= max)
			continue;
		struct pipe_ctr *c = &p->ctrs[p->n_ctrs + i];
		snprintf(c->name, sizeof(c->name), "lane_%s_sessions", p->lanes[i].text);
		out[n] = (struct store_counter){c->name, p->lanes[i].sessions};
	}
	return n;
}

/* ---- life cycle ---- */

struct pipe *pipe_create(const struct pipe_params *pp)
{
	struct pipe *p = mem_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->p = *pp;
	if (!p->p.txn_memcap)
		p->p.txn_memcap = (size_t)1 << 30;
	if (!p->p.txn_dormant_mem)
		p->p.txn_dormant_mem = (size_t)64 << 20;
	p->tp = (struct txn_params){
	    .max_header_bytes = pp->max_header,
	    .max_body = pp->max_body,
	    .emit = on_session,
	    .ctx = p,
	    .on_request = pp->on_request ? on_request : NULL,
	    .on_tunnel_data = on_tunnel_data,
	    .stats = &p->ts,
	};
	p->hp = (struct h2_params){
	    .max_header_bytes = pp->max_header,
	    .max_body = pp->max_body,
	    .emit = on_session,
	    .ctx = p,
	    .on_request = pp->on_request ? on_request : NULL,
	    .stats = &p->hs,
	};
	struct flow_params fp = {
	    .max_flows = pp->max_flows,
	    .idle_timeout_ns = pp->idle_timeout_ns,
	    .reasm = {.memcap = pp->reasm_memcap, .stream_cap = pp->reasm_stream_cap},
	    .ops = &pipe_flow_ops,
	    .ops_ctx = p,
	    .stats = &p->fs,
	    .rstats = &p->rs,
	};
	p->flows = flow_table_create(&fp);
	struct ipfrag_params ip = {.memcap = pp->ipfrag_memcap};
	p->frag = ipfrag_create(&ip, &p->fgs);
	if (!p->flows || !p->frag || build_counters(p) < 0) {
		pipe_free(p);
		return NULL;
	}
	preload_lanes(p);
	return p;
}

void pipe_free(struct pipe *p)
{
	if (!p)
		return;
	flow_table_free(p->flows);
	ipfrag_free(p->frag);
	mem_free(p->ctrs);
	mem_free(p);
}

void pipe_packet(struct pipe *p, int64_t ts_ns, int linktype, const uint8_t *data, uint32_t caplen,
		 uint32_t wirelen)
{
	struct decode_pkt pkt;
	p->st.packets++;
	p->st.wire_bytes += wirelen;
	enum decode_result r = decode_packet(linktype, data, caplen, &pkt, &p->ds);
	if (r == DECODE_FRAGMENT) {
		/* An IP fragment: when it completes its datagram, decode that. */
		const uint8_t *dg;
		size_t n;
		uint16_t vlan = pkt.vlan;
		if (!ipfrag_offer(p->frag, pkt.ip, pkt.ip_caplen, vlan, ts_ns, &dg, &n))
			return;
		r = decode_packet(DECODE_LINK_RAW, dg, n, &pkt, &p->ds);
		pkt.vlan = vlan;
	}
	if (r != DECODE_TCP)
		return;
	flow_packet(p->flows, &pkt, ts_ns);
	while (p->txn_mem > p->p.txn_memcap && flow_evict_idlest(p->flows))
		p->st.memcap_evictions++;
}

void pipe_advance(struct pipe *p, int64_t now_ns)
{
	ipfrag_advance(p->frag, now_ns);
	flow_advance(p->flows, now_ns);
}

void pipe_finish(struct pipe *p)
{
	ipfrag_finish(p->frag);
	flow_finish(p->flows);
}

const struct pipe_stats *pipe_get_stats(const struct pipe *p)
{
	return &p->st;
}
