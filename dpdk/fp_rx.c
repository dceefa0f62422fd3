/* SPDX-License-Identifier: MIT */
/*
 * fp_rx.c - the RX lcore loop of the fast path: receive a burst, parse
 * L2-L4, look the flows up in bulk, decide color, mirror colored packets
 * out the TX port and hand them to worker rings; free the rest.
 *
 * Policy for packets that arrive before a flow is decided (the handshake,
 * the first request segments while its header block is incomplete): they
 * are held, in order, in the flow's pending slot (at most FP_HOLD_MAX per
 * flow and --hold-budget per lcore) and released on the decision: mirrored
 * and handed off when colored, freed when not. A flow with no decision after
 * --hold-ms, whose request prefix exceeds FP_PREFIX_MAX or has a sequence
 * gap, is left uncolored and counted in `undecided`. Packets beyond the hold
 * caps are freed and counted (`hold_overflow`), never waited for.
 *
 * Per-request coloring: when the workers run capture pipelines (-w
 * FILE.dyt, --lane) and a rule has an HTTP matcher, a flow that an HTTP
 * rule may color (fp_flow.per_req) goes to its worker whatever its own
 * color, held packets included, so the worker's pipeline colors each
 * request of a keep-alive connection by itself, as `dyetap record` does.
 * The flow's color still decides what the mirror port sends.
 *
 * Nothing here allocates or locks: tables come from fp_rx_init(), mbufs for
 * VLAN/VXLAN headers and clones from the one pool sized at init, and a full
 * TX queue or ring drops and counts (tx_full, ring_full, nombuf).
 *
 * References: DPDK examples/l3fwd (bursts, bulk lookups), examples/
 * ipv4_multicast (header mbuf + indirect clone), RFC 7348 (VXLAN).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "common/mem.h"
#include "dpdk/fp_private.h"

int fp_rx_init(struct fp_lcore *lc, char *err, size_t errlen)
{
	const struct fp_conf *c = &fp_app.c;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
	    .name = name,
	    .entries = c->flows,
	    .key_len = sizeof(struct fp_flow_key),
	    .hash_func = rte_hash_crc,
	    .hash_func_init_val = 0,
	    .socket_id = (int)rte_lcore_to_socket_id(lc->lcore_id),
	};

	snprintf(name, sizeof(name), "fp_flows_%u", lc->idx);
	lc->h = rte_hash_create(&hp);
	/* Plain heap for the per-flow arrays: init time only, seen by ASan. */
	lc->nflows = c->flows;
	lc->flows = mem_calloc(c->flows, sizeof(*lc->flows));
	lc->npend = c->pending;
	lc->pend = mem_calloc(c->pending, sizeof(*lc->pend));
	lc->pend_free = mem_calloc(c->pending, sizeof(*lc->pend_free));
	if (!lc->h || !lc->flows || !lc->pend || !lc->pend_free) {
		snprintf(err, errlen, "out of memory for the flow table of lcore %u (--flows %u)",
			 lc->lcore_id, c->flows);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->pending; i++) {
		lc->pend[i].flow_pos = UINT32_MAX;
		lc->pend_free[i] = c->pending - 1 - i;
	}
	lc->npend_free = c->pending;
	lc->hold_tsc = rte_get_tsc_hz() / 1000 * c->hold_ms;
	lc->flow_tsc = rte_get_tsc_hz() * c->flow_timeout_s;
	return 0;
}

void fp_rx_release(struct fp_lcore *lc)
{
	rte_hash_free(lc->h);
	mem_free(lc->flows);
	mem_free(lc->pend);
	mem_free(lc->pend_free);
}

/* --- output batches -------------------------------------------------------- */

static void flush_tx(struct fp_lcore *lc)
{
	uint16_t sent;
	if (!lc->ntx)
		return;
	sent = rte_eth_tx_burst((uint16_t)fp_app.c.tx_port, lc->txq, lc->txb, (uint16_t)lc->ntx);
	FP_ADD(lc->st.mirrored, sent);
	if (sent < lc->ntx) {
		FP_ADD(lc->st.tx_full, lc->ntx - sent);
		rte_pktmbuf_free_bulk(lc->txb + sent, lc->ntx - sent);
	}
	lc->ntx = 0;
}

static void flush_ring(struct fp_lcore *lc, unsigned w)
{
	unsigned n = lc->nwb[w], done;
	if (!n)
		return;
	FP_HANDOFF_RELEASE(lc->rings[w]);
	done = rte_ring_sp_enqueue_burst(lc->rings[w], (void *const *)lc->wb[w], n, NULL);
	FP_ADD(lc->st.handed_off, done);
	/* The ring takes a prefix of the batch: count the uncolored packets in it. */
	if (lc->wbu[w])
		FP_ADD(lc->st.handed_off_uncolored,
		       (unsigned)__builtin_popcountll(done < 64 ? lc->wbu[w] & ((1ull << done) - 1)
								: lc->wbu[w]));
	lc->wbu[w] = 0;
	if (done < n) {
		FP_ADD(lc->st.ring_full, n - done);
		rte_pktmbuf_free_bulk(lc->wb[w] + done, n - done);
	}
	lc->nwb[w] = 0;
}

static void flush_free(struct fp_lcore *lc)
{
	if (lc->nfree)
		rte_pktmbuf_free_bulk(lc->freeb, lc->nfree);
	lc->nfree = 0;
}

static inline void drop(struct fp_lcore *lc, struct rte_mbuf *m)
{
	if (lc->nfree == FP_TXB)
		flush_free(lc);
	lc->freeb[lc->nfree++] = m;
}

static inline void put_tx(struct fp_lcore *lc, struct rte_mbuf *m)
{
	if (lc->ntx == FP_TXB)
		flush_tx(lc);
	lc->txb[lc->ntx++] = m;
}

/*
 * VLAN and VXLAN mirror: a small header mbuf chained to an indirect clone
 * of the received packet, so the payload is never copied and the worker
 * keeps reading the original untouched (rte_vlan_insert would need a
 * private copy, refcnt 1).
 */
static struct rte_mbuf *encap(struct fp_lcore *lc, struct rte_mbuf *m, uint32_t flow_hash)
{
	const struct fp_conf *c = &fp_app.c;
	struct rte_mbuf *hdr = rte_pktmbuf_alloc(fp_app.pool);
	struct rte_mbuf *cl = hdr ? rte_pktmbuf_clone(m, fp_app.pool) : NULL;
	uint8_t *h;

	if (!cl) {
		FP_INC(lc->st.nombuf);
		rte_pktmbuf_free(hdr);
		return NULL;
	}
	if (c->mode == FP_MIRROR_VLAN) {
		const uint8_t *eth = rte_pktmbuf_mtod(m, const uint8_t *);
		h = (uint8_t *)rte_pktmbuf_append(hdr, 16);
		assert(h); /* a fresh mbuf has room */
		memcpy(h, eth, 12);
		h[12] = 0x81;
		h[13] = 0x00;
		h[14] = (uint8_t)(c->vlan_id >> 8);
		h[15] = (uint8_t)c->vlan_id;
		rte_pktmbuf_adj(cl, 12);
	} else {
		uint32_t inner = rte_pktmbuf_pkt_len(m);
		struct rte_ipv4_hdr *ip;
		h = (uint8_t *)rte_pktmbuf_append(hdr, 50);
		assert(h);
		memcpy(h, c->vx_dmac, 6);
		memcpy(h + 6, fp_app.tx_mac, 6);
		h[12] = 0x08;
		h[13] = 0x00;
		ip = (struct rte_ipv4_hdr *)(void *)(h + 14);
		memset(ip, 0, 20);
		ip->version_ihl = 0x45;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + 8 + 8 + inner));
		ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
		ip->time_to_live = 64;
		ip->next_proto_id = 17;
		memcpy(&ip->src_addr, c->vx_src, 4);
		memcpy(&ip->dst_addr, c->vx_dst, 4);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		/* UDP: source port from the inner flow (RFC 7348 §5), no checksum. */
		uint16_t sp = (uint16_t)(49152 + flow_hash % 16384);
		h[34] = (uint8_t)(sp >> 8);
		h[35] = (uint8_t)sp;
		h[36] = 4789 >> 8;
		h[37] = 4789 & 0xff;
		h[38] = (uint8_t)((8 + 8 + inner) >> 8);
		h[39] = (uint8_t)(8 + 8 + inner);
		h[40] = h[41] = 0;
		memset(h + 42, 0, 8);
		h[42] = 0x08; /* I flag: VNI valid */
		h[46] = (uint8_t)(c->vni >> 16);
		h[47] = (uint8_t)(c->vni >> 8);
		h[48] = (uint8_t)c->vni;
	}
	if (rte_pktmbuf_chain(hdr, cl)) {
		FP_INC(lc->st.nombuf);
		rte_pktmbuf_free(hdr);
		rte_pktmbuf_free(cl);
		return NULL;
	}
	return hdr;
}

/* Mark @p m as a packet of a colored flow (1) or not (0), for the workers' pcap. */
static inline void tag(struct rte_mbuf *m, uint8_t colored)
{
	if (fp_app.tag_off >= 0)
		*RTE_MBUF_DYNFIELD(m, fp_app.tag_off, uint8_t *) = colored;
}

/* Queue @p m for worker @p w; @p uncolored: a per-request hand-off (handed_off_uncolored). */
static inline void to_ring(struct fp_lcore *lc, unsigned w, struct rte_mbuf *m, bool uncolored)
{
	if (lc->nwb[w] == FP_TXB)
		flush_ring(lc, w);
	lc->wbu[w] |= (uint64_t)uncolored << lc->nwb[w];
	lc->wb[w][lc->nwb[w]++] = m;
}

/*
 * A packet of an uncolored flow whose requests an HTTP rule may still
 * color one by one: to its worker only (per-request coloring), consuming @p m.
 */
static void handoff(struct fp_lcore *lc, struct rte_mbuf *m, const struct fp_flow *f)
{
	FP_INC(lc->st.uncolored);
	tag(m, 0);
	to_ring(lc, f->worker, m, true);
}

/* A packet of a colored flow: mirror and/or hand off, consuming @p m. */
static void emit(struct fp_lcore *lc, struct rte_mbuf *m, const struct fp_flow *f,
		 uint32_t flow_hash)
{
	const struct fp_conf *c = &fp_app.c;
	bool to_worker = fp_app.nwk > 0;

	FP_INC(lc->st.colored);
	FP_INC(lc->st.lane_pkts[f->lane]);
	tag(m, 1);
	if (c->tx_port >= 0) {
		if (c->mode == FP_MIRROR_COPY) {
			/* The same mbuf goes out and to the worker: one more reference. */
			if (to_worker)
				rte_mbuf_refcnt_update(m, 1);
			put_tx(lc, m);
		} else if (c->mode == FP_MIRROR_DUP) {
			struct rte_mbuf *e = rte_pktmbuf_copy(m, fp_app.pool, 0, UINT32_MAX);
			if (e)
				put_tx(lc, e);
			else
				FP_INC(lc->st.nombuf);
		} else {
			struct rte_mbuf *e = encap(lc, m, flow_hash);
			if (e)
				put_tx(lc, e);
		}
	}
	if (to_worker)
		to_ring(lc, f->worker, m, false);
	else if (c->tx_port < 0 || c->mode != FP_MIRROR_COPY) {
		drop(lc, m);
	}
}

/* --- decisions -------------------------------------------------------------- */

static void pend_put(struct fp_lcore *lc, struct fp_flow *f)
{
	uint32_t i = f->pend - 1;
	lc->pend[i].flow_pos = UINT32_MAX;
	lc->pend_free[lc->npend_free++] = i;
	f->pend = 0;
}

/* The packet @p m of decided flow @p f: mirror and hand off, hand off, or free. */
static void settled(struct fp_lcore *lc, struct fp_flow *f, struct rte_mbuf *m, uint32_t flow_hash)
{
	if (f->lane > 0) {
		emit(lc, m, f, flow_hash);
	} else if (f->per_req) {
		handoff(lc, m, f);
	} else {
		FP_INC(lc->st.uncolored);
		drop(lc, m);
	}
}

/* Settle @p f to @p lane (1..n or FP_LANE_NONE) and release its held packets. */
static void decide(struct fp_lcore *lc, struct fp_flow *f, int lane, uint32_t flow_hash)
{
	f->lane = (int8_t)lane;
	if (!f->pend)
		return;
	struct fp_pending *p = &lc->pend[f->pend - 1];
	for (unsigned i = 0; i < p->nheld; i++)
		settled(lc, f, p->held[i], flow_hash);
	lc->held_total -= p->nheld;
	p->nheld = 0;
	pend_put(lc, f);
}

static void hold(struct fp_lcore *lc, struct fp_flow *f, struct rte_mbuf *m)
{
	struct fp_pending *p = &lc->pend[f->pend - 1];
	if (p->nheld == FP_HOLD_MAX || lc->held_total >= fp_app.c.hold_budget) {
		FP_INC(lc->st.hold_overflow);
		drop(lc, m);
		return;
	}
	p->held[p->nheld++] = m;
	lc->held_total++;
}

/*
 * Feed a client payload of an undecided flow. Returns the lane decided, or
 * FP_DECIDE_LATER while the header block is incomplete.
 */
static int feed(struct fp_lcore *lc, struct fp_flow *f, const struct fp_pkt *pk, struct rte_mbuf *m)
{
	const struct fp_rules *rs = fp_rules_cur();
	struct fp_req rq;
	const char *data;
	uint32_t n = pk->payload_len;
	struct fp_pending *p = f->pend ? &lc->pend[f->pend - 1] : NULL;
	int r;

	if (!p || !p->seq_known) {
		/* First request bytes: scan them in place; most requests fit one segment. */
		data = rte_pktmbuf_mtod_offset(m, const char *, pk->payload_off);
		if (pk->payload_off + n > m->data_len)
			n = m->data_len - pk->payload_off;
		r = fp_http_scan(data, n, &rq);
		if (r < 0)
			return FP_LANE_NONE; /* not HTTP: no HTTP rule can match */
		if (r > 0)
			return fp_rules_decide_http(rs, pk, &rq);
		if (!p)
			return FP_DECIDE_LATER; /* caller takes a slot, then feeds again */
		p->seq_known = 1;
		p->next_seq = pk->seq;
	}
	if (pk->seq != p->next_seq) {
		if ((int32_t)(pk->seq - p->next_seq) < 0)
			return FP_DECIDE_LATER; /* retransmission of bytes we have */
		FP_INC(lc->st.undecided);	/* gap in the request prefix */
		return FP_LANE_NONE;
	}
	if (p->plen + n > FP_PREFIX_MAX) {
		FP_INC(lc->st.undecided);
		return FP_LANE_NONE;
	}
	const void *src = rte_pktmbuf_read(m, pk->payload_off, n, p->prefix + p->plen);
	if (!src)
		return FP_LANE_NONE;
	if (src != p->prefix + p->plen)
		memcpy(p->prefix + p->plen, src, n);
	p->plen = (uint16_t)(p->plen + n);
	p->next_seq = pk->seq + n;
	r = fp_http_scan(p->prefix, p->plen, &rq);
	if (r < 0)
		return FP_LANE_NONE;
	if (r > 0)
		return fp_rules_decide_http(rs, pk, &rq);
	if (p->plen == FP_PREFIX_MAX) {
		FP_INC(lc->st.undecided);
		return FP_LANE_NONE;
	}
	return FP_DECIDE_LATER;
}

static bool pend_get(struct fp_lcore *lc, struct fp_flow *f, uint32_t pos, uint64_t now)
{
	struct fp_pending *p;
	if (!lc->npend_free)
		return false;
	f->pend = lc->pend_free[--lc->npend_free] + 1;
	p = &lc->pend[f->pend - 1];
	p->flow_pos = pos;
	p->nheld = 0;
	p->plen = 0;
	p->seq_known = 0;
	p->first_tsc = now;
	return true;
}

/* One packet of a flow that is still undecided. Consumes @p m. */
static void undecided_pkt(struct fp_lcore *lc, struct fp_flow *f, uint32_t pos,
			  const struct fp_pkt *pk, struct rte_mbuf *m, uint64_t now,
			  uint32_t flow_hash)
{
	const struct fp_rules *rs = fp_rules_cur();
	int d;

	if (pk->proto == 6 && f->client == 2) {
		if ((pk->tcp_flags & (FP_TCP_SYN | FP_TCP_ACK)) == FP_TCP_SYN)
			f->client = pk->dir;
		else if ((pk->tcp_flags & (FP_TCP_SYN | FP_TCP_ACK)) == (FP_TCP_SYN | FP_TCP_ACK))
			f->client = (uint8_t)!pk->dir;
	}
	if (f->client == 2 && pk->payload_len) {
		/* Midstream: the first payload says who the client is, if HTTP. */
		const char *data = rte_pktmbuf_mtod_offset(m, const char *, pk->payload_off);
		uint32_t n =
		    RTE_MIN((uint32_t)pk->payload_len, (uint32_t)(m->data_len - pk->payload_off));
		if (fp_http_looks_like_request(data, n))
			f->client = pk->dir;
	}
	d = fp_rules_decide_l4(rs, pk, f->client);
	if (d == FP_DECIDE_LATER && fp_app.per_request)
		f->per_req = 1; /* whatever the flow's color, its requests are colored one by one */
	if (d == FP_DECIDE_LATER && pk->payload_len) {
		if (f->client == pk->dir)
			d = feed(lc, f, pk, m);
		else if (f->client == 2 || !f->pend || !lc->pend[f->pend - 1].seq_known)
			d = FP_LANE_NONE; /* the server spoke first, or not HTTP */
		if (d == FP_DECIDE_LATER && !f->pend) {
			if (!pend_get(lc, f, pos, now)) {
				FP_INC(lc->st.pending_full);
				d = FP_LANE_NONE;
			} else {
				d = feed(lc, f, pk, m);
			}
		}
	}
	if (d != FP_DECIDE_LATER) {
		decide(lc, f, d, flow_hash);
		settled(lc, f, m, flow_hash);
		return;
	}
	if (!f->pend && !pend_get(lc, f, pos, now)) {
		FP_INC(lc->st.pending_full);
		decide(lc, f, FP_LANE_NONE, flow_hash);
		settled(lc, f, m, flow_hash);
		return;
	}
	hold(lc, f, m);
}

/* --- the loop ------------------------------------------------------------------ */

static void process_burst(struct fp_lcore *lc, struct rte_mbuf **pkts, uint16_t nb, uint64_t now)
{
	const struct fp_rules *rs = fp_rules_cur();
	struct fp_pkt pk[FP_BURST];
	const void *keys[FP_BURST];
	int32_t pos[FP_BURST];
	hash_sig_t sig[FP_BURST];
	uint16_t idx[FP_BURST];
	unsigned nk = 0;
	uint64_t bytes = 0;

	for (uint16_t i = 0; i < nb; i++) {
		struct rte_mbuf *m = pkts[i];
		if (i + 1 < nb)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		bytes += rte_pktmbuf_pkt_len(m);
		if (fp_parse(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, &pk[i]) == 0) {
			keys[nk] = &pk[i].key;
			sig[nk] = pk[i].sig;
			idx[nk++] = i;
		} else {
			FP_INC(lc->st.not_ip);
			FP_INC(lc->st.uncolored);
			drop(lc, m);
		}
	}
	FP_ADD(lc->st.rx, nb);
	FP_ADD(lc->st.rx_bytes, bytes);
	if (nk)
		rte_hash_lookup_with_hash_bulk(lc->h, keys, sig, nk, pos);

	for (unsigned k = 0; k < nk; k++) {
		unsigned i = idx[k];
		struct rte_mbuf *m = pkts[i];
		uint32_t fh = sig[k];
		struct fp_flow *f;
		int32_t p = pos[k];

		if (p < 0) {
			p = rte_hash_add_key_with_hash(lc->h, &pk[i].key, fh);
			if (p < 0) {
				/* Table full: stateless, L3/L4 rules only (per request in the
				 * workers). */
				int d = fp_rules_decide_l4(rs, &pk[i], 2);
				struct fp_flow tmp = {
				    .lane = (int8_t)(d > 0 ? d : FP_LANE_NONE),
				    .per_req = d == FP_DECIDE_LATER && fp_app.per_request,
				    .worker = (uint8_t)(fh % RTE_MAX(fp_app.nwk, 1u))};
				FP_INC(lc->st.flow_table_full);
				settled(lc, &tmp, m, fh);
				continue;
			}
		}
		RTE_ASSERT((uint32_t)p < lc->nflows);
		f = &lc->flows[p];
		if (unlikely(!f->used)) {
			/* New flow (or a second packet of one added earlier in this burst). */
			memset(f, 0, sizeof(*f));
			f->used = 1;
			f->lane = FP_LANE_UNDECIDED;
			f->client = 2;
			f->worker = (uint8_t)(fh % RTE_MAX(fp_app.nwk, 1u));
			FP_INC(lc->st.flows);
		}
		f->last_tsc = now;
		if (likely(f->lane != FP_LANE_UNDECIDED)) {
			settled(lc, f, m, fh);
			continue;
		}
		undecided_pkt(lc, f, (uint32_t)p, &pk[i], m, now, fh);
	}
}

/* Expire pending slots past --hold-ms and flows idle past --flow-timeout. */
static void sweep(struct fp_lcore *lc, uint64_t now, bool all)
{
	unsigned budget = all ? lc->npend : 8;
	for (unsigned j = 0; j < budget && lc->npend; j++) {
		struct fp_pending *p = &lc->pend[lc->sweep_pend];
		lc->sweep_pend = (lc->sweep_pend + 1) % lc->npend;
		if (p->flow_pos == UINT32_MAX)
			continue;
		if (all || now - p->first_tsc > lc->hold_tsc) {
			struct fp_flow *f = &lc->flows[p->flow_pos];
			FP_INC(lc->st.undecided);
			decide(lc, f, FP_LANE_NONE, 0);
		}
	}
	if (all)
		return;
	for (unsigned j = 0; j < 8; j++) {
		const void *key;
		void *data;
		int32_t pos = rte_hash_iterate(lc->h, &key, &data, &lc->sweep_flow);
		if (pos < 0) {
			lc->sweep_flow = 0;
			break;
		}
		struct fp_flow *f = &lc->flows[pos];
		if (f->lane != FP_LANE_UNDECIDED && now - f->last_tsc > lc->flow_tsc) {
			rte_hash_del_key(lc->h, key);
			f->used = 0;
			FP_INC(lc->st.flows_expired);
		}
	}
}

static void flush_all(struct fp_lcore *lc)
{
	if (fp_app.c.tx_port >= 0)
		flush_tx(lc);
	for (unsigned w = 0; w < fp_app.nwk; w++)
		flush_ring(lc, w);
	flush_free(lc);
}

int fp_rx_main(void *arg)
{
	struct fp_lcore *lc = arg;
	struct rte_mbuf *pkts[FP_BURST];
	bool control = rte_lcore_id() == rte_get_main_lcore();

	FP_HANDOFF_ACQUIRE(lc); /* what main set up before the launch */
	uint64_t now = rte_rdtsc(), last_tick = now, tick = rte_get_tsc_hz() / 1000;
	unsigned bursts = 0;

	while (!__atomic_load_n(&fp_app.quit, __ATOMIC_RELAXED)) {
		uint64_t got = 0;
		for (unsigned q = 0; q < lc->nq; q++) {
			uint16_t nb =
			    rte_eth_rx_burst(lc->q[q].port, lc->q[q].queue, pkts, FP_BURST);
			if (!nb)
				continue;
			now = rte_rdtsc();
			process_burst(lc, pkts, nb, now);
			flush_all(lc);
			got += nb;
		}
		if (got) {
			uint64_t tot = __atomic_add_fetch(&fp_app.rx_total, got, __ATOMIC_RELAXED);
			if (fp_app.c.count && tot >= fp_app.c.count)
				__atomic_store_n(&fp_app.quit, 1, __ATOMIC_RELAXED);
		} else {
			now = rte_rdtsc();
		}
		if (!got || ++bursts % 64 == 0) {
			sweep(lc, now, false);
			flush_all(lc);
		}
		if (control && now - last_tick >= tick) {
			last_tick = now;
			if (fp_control_tick(now))
				__atomic_store_n(&fp_app.quit, 1, __ATOMIC_RELAXED);
		}
	}
	/* Stop: flows still undecided are settled uncolored, their packets freed. */
	sweep(lc, now, true);
	flush_all(lc);
	FP_HANDOFF_RELEASE(lc); /* for main, after rte_eal_wait_lcore() */
	return 0;
}
