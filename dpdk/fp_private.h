/* SPDX-License-Identifier: MIT */
/*
 * fp_private.h - internals of the DPDK fast path (dyetap-fastpath).
 *
 * Shared by the files of dpdk/: the per-lcore state, the flow table entry,
 * the stats struct with its counter table, and the inline L2-L4 parser that
 * the RX loop runs on every packet. Nothing here allocates; every table is
 * sized once at init (docs/architecture.md "The fast path").
 *
 * References: IEEE 802.1Q (VLAN tags, QinQ TPIDs 0x8100/0x88a8/0x9100),
 * RFC 791 (IPv4), RFC 8200 (IPv6 and its extension headers), RFC 9293 (TCP),
 * RFC 768 (UDP), RFC 7348 (VXLAN), RFC 9112 (HTTP/1.1 message syntax).
 */
#ifndef DYETAP_DPDK_FP_PRIVATE_H
#define DYETAP_DPDK_FP_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include "capture/recorder.h"
#include "common/counters.h"
#include "common/ctl.h"
#include "common/dbuf.h"
#include "common/log.h"
#include "replay/replay.h"
#include "replay/shadow.h"
#include "replay/shadow_core.h"
#include "replay/shadow_sender.h"

#define FP_LOG(lvl, ...) LOG_MSG(lvl, "fastpath", __VA_ARGS__)

#define FP_BURST       32   /**< RX burst size */
#define FP_MAX_LANES   16   /**< distinct lanes in a rule set */
#define FP_MAX_RULES   64   /**< rules in a rule set */
#define FP_MAX_PORTS   16   /**< RX ports */
#define FP_MAX_LCORES  16   /**< RX lcores */
#define FP_MAX_WORKERS 8    /**< worker lcores */
#define FP_HOLD_MAX    16   /**< packets held per undecided flow */
#define FP_PREFIX_MAX  4096 /**< request bytes buffered per undecided flow */
#define FP_MAX_HDRS    64   /**< request headers the scanner keeps */
#define FP_MAX_RXQ     (FP_MAX_PORTS * 4)

/* Flow lane values (struct fp_flow.lane). */
#define FP_LANE_UNDECIDED (-1)
#define FP_LANE_NONE	  0 /**< decided: uncolored; lanes are 1..n */

/** Counters of one lcore; every field is a uint64_t listed in fp_ctr_descs. */
struct fp_stats {
	uint64_t rx;		       /**< packets received */
	uint64_t rx_bytes;	       /**< bytes received (frame length) */
	uint64_t colored;	       /**< packets of colored flows (mirrored or handed off) */
	uint64_t uncolored;	       /**< packets freed as uncolored (incl. held ones) */
	uint64_t mirrored;	       /**< packets accepted by the mirror TX port */
	uint64_t tx_full;	       /**< mirror packets dropped: TX queue full */
	uint64_t ring_full;	       /**< packets dropped: worker ring full */
	uint64_t nombuf;	       /**< mirror packets dropped: no mbuf for a header/clone */
	uint64_t flows;		       /**< flows created */
	uint64_t flow_table_full;      /**< packets whose flow did not fit the table */
	uint64_t undecided;	       /**< flows left uncolored: no decision in time or cap */
	uint64_t hold_overflow;	       /**< packets dropped from a full per-flow hold queue */
	uint64_t pending_full;	       /**< flows left uncolored: no free pending slot */
	uint64_t not_ip;	       /**< packets that are not IPv4/IPv6 TCP/UDP (uncolored) */
	uint64_t flows_expired;	       /**< idle flows removed from the table */
	uint64_t handed_off;	       /**< packets enqueued to worker rings */
	uint64_t worker_pkts;	       /**< packets dequeued by workers */
	uint64_t worker_written;       /**< packets recorded (pcap) or fed to the pipeline (dyt) */
	uint64_t handed_off_uncolored; /**< packets of uncolored flows enqueued to workers that
					    color each request (HTTP rules, -w FILE.dyt or --lane);
					    part of handed_off */
	uint64_t lane_pkts[FP_MAX_LANES + 1]; /**< per lane; [0] unused */
};

extern const struct ctr_desc fp_ctr_descs[];
extern const size_t fp_ctr_count;

/*
 * ThreadSanitizer does not see the ordering DPDK's rings give (their
 * head/tail updates use barriers, not C11 atomics): in a -Db_sanitize=thread
 * build a ring hand-off is announced to it, release before the enqueue and
 * acquire after the dequeue, so what a thread wrote before handing an mbuf
 * or a shadow item over is known to come before what the next one reads
 * (tests/tsan.sh; the ring's own indexes are suppressed in tests/tsan.supp).
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define FP_HANDOFF_RELEASE(ring) __tsan_release(ring)
#define FP_HANDOFF_ACQUIRE(ring) __tsan_acquire(ring)
#else
#define FP_HANDOFF_RELEASE(ring) ((void)(ring))
#define FP_HANDOFF_ACQUIRE(ring) ((void)(ring))
#endif

/** Single-writer relaxed counter bump: readers on other lcores see whole values. */
#define FP_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define FP_INC(field)	 FP_ADD(field, 1)

/* --- flows ----------------------------------------------------------- */

/**
 * Flow key, direction-independent: the (address, port) pair that sorts
 * lower comes first. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d)
 * so one key and one CIDR matcher serve both families. Padding is explicit
 * and always zeroed: the hash reads every byte.
 */
struct fp_flow_key {
	uint8_t addr_lo[16];
	uint8_t addr_hi[16];
	uint16_t port_lo;
	uint16_t port_hi;
	uint16_t vlan; /**< outer VLAN id, 0 untagged */
	uint8_t proto;
	uint8_t pad[9]; /* to 48 bytes: rte_hash compares 48-byte keys with SIMD, 40 with memcmp */
} __rte_aligned(8);	/* the CRC hash reads it 8 bytes at a time */

_Static_assert(sizeof(struct fp_flow_key) == 48, "flow key is 48 bytes");
_Static_assert(offsetof(struct fp_flow_key, port_lo) == 32 &&
		   offsetof(struct fp_flow_key, vlan) == 36 &&
		   offsetof(struct fp_flow_key, proto) == 38,
	       "fp_parse() writes the key as words");
_Static_assert(RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN, "fp_parse() builds IPv4-mapped words");

/** What the parser extracted from one packet (host byte order). */
struct fp_pkt {
	struct fp_flow_key key;
	uint8_t src[16]; /**< IPv4-mapped for IPv4 */
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint16_t vlan;
	uint8_t proto;
	uint8_t tcp_flags;
	uint8_t dir; /**< 0: src is key.addr_lo/port_lo; 1: the other way */
	uint8_t v6;  /**< 1: IPv6 */
	uint8_t pad[2];
	uint32_t seq; /**< TCP sequence number */
	uint32_t sig; /**< rte_hash_crc() of key */
	uint16_t payload_off;
	uint16_t payload_len;
};

#define FP_TCP_FIN 0x01
#define FP_TCP_SYN 0x02
#define FP_TCP_RST 0x04
#define FP_TCP_ACK 0x10

/** One flow of an lcore's table (indexed by the rte_hash key position). */
struct fp_flow {
	int8_t lane;	 /**< FP_LANE_* or 1..n: the flow's color (mirror port) */
	uint8_t used;	 /**< entry live (positions are reused after expiry) */
	uint8_t client;	 /**< direction of the client (fp_pkt.dir), 2 = unknown */
	uint8_t worker;	 /**< worker ring for this flow */
	uint8_t per_req; /**< an HTTP rule may color one of its requests: workers
			    get it even when the flow is uncolored (fp_app.per_request) */
	uint8_t pad[3];
	uint32_t pend;	   /**< pending slot + 1 while undecided, else 0 */
	uint64_t last_tsc; /**< last packet seen (for expiry) */
};

/** An undecided flow's held packets and request prefix (pool per lcore). */
struct fp_pending {
	uint32_t flow_pos;
	uint16_t nheld;
	uint16_t plen;
	uint32_t next_seq; /**< next expected client sequence number */
	uint8_t seq_known;
	uint8_t pad[3];
	uint64_t first_tsc;
	struct rte_mbuf *held[FP_HOLD_MAX];
	char prefix[FP_PREFIX_MAX];
};

/* --- rules ----------------------------------------------------------- */

struct rules;

/**
 * The color rules as the fast path uses them. The grammar and every match
 * are capture/rules.h's (docs/rules.md), so a flow is colored exactly as
 * `dyetap record` colors its first transaction. Beside the whole set, each
 * rule is also compiled alone, to know whether it can be decided from
 * addresses (rules_l4_only) and, if so, to decide a new flow at once.
 */
struct fp_rules {
	unsigned nrules;
	unsigned nlanes;
	bool any_http;
	struct rules *all;		    /**< every rule, in order */
	struct rules *single[FP_MAX_RULES]; /**< rule i alone */
	bool l4only[FP_MAX_RULES];
	char *lane_names[FP_MAX_LANES + 1]; /**< [0] unused */
};

/** A slice of the request prefix. */
struct fp_slice {
	const char *p;
	size_t n;
};

/** The scanned start of one HTTP request. */
struct fp_req {
	struct fp_slice method;
	struct fp_slice target; /**< request-target as on the wire */
	uint8_t version_minor;
	struct fp_slice path;  /**< target up to '?' */
	struct fp_slice query; /**< after '?', may be empty */
	unsigned nh;
	bool complete; /**< the header block ended (CRLF CRLF) */
	struct fp_slice hname[FP_MAX_HDRS];
	struct fp_slice hval[FP_MAX_HDRS];
};

/** Result of a rule evaluation before HTTP is known. */
#define FP_DECIDE_LATER (-2)

/**
 * Parse and append one rule "LANE=MATCH[,MATCH...]" (docs/rules.md).
 * @return 0, -EINVAL with rules_add()'s message in @p err, -E2BIG over
 * FP_MAX_RULES or FP_MAX_LANES, -ENOMEM.
 */
int fp_rules_add(struct fp_rules *rs, const char *text, char *err, size_t errlen);

/**
 * Start @p rs (zeroed) with the lane names of @p from in the same order,
 * so the rules added next give those lanes the same numbers (a reload).
 * @return 0 or -ENOMEM.
 */
int fp_rules_seed(struct fp_rules *rs, const struct fp_rules *from);

/** Append the rules of a rules file (rules_load_file()). Errors as fp_rules_add(). */
int fp_rules_load_file(struct fp_rules *rs, const char *path, char *err, size_t errlen);

/** Release what @p rs holds (the struct itself is the caller's). */
void fp_rules_release(struct fp_rules *rs);

/**
 * Decide a flow from L3/L4 fields alone. @p client is the client's
 * direction if known (2 = unknown: src/dst taken from @p pk as seen).
 * @return lane 1..n, FP_LANE_NONE, or FP_DECIDE_LATER when a rule with HTTP
 * matchers could still match and comes before any L4 rule that matches.
 */
int fp_rules_decide_l4(const struct fp_rules *rs, const struct fp_pkt *pk, int client);

/**
 * Decide with the scanned request @p rq (client's view: @p pk is a client
 * packet). @return lane 1..n or FP_LANE_NONE.
 */
int fp_rules_decide_http(const struct fp_rules *rs, const struct fp_pkt *pk,
			 const struct fp_req *rq);

/**
 * Scan the start of an HTTP/1.x request in @p p[0..n).
 * @return 1 when the header block is complete, 0 when more bytes are needed,
 * -EBADMSG when the bytes are not an HTTP request.
 */
int fp_http_scan(const char *p, size_t n, struct fp_req *rq);

/** True when @p p[0..n) starts like an HTTP request (method token + space). */
bool fp_http_looks_like_request(const char *p, size_t n);

/* --- inline parser ------------------------------------------------------ */

static inline uint16_t fp_rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t fp_rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/**
 * Parse Ethernet / 802.1Q / QinQ / IPv4 / IPv6 (+ extension headers) /
 * TCP / UDP from the first @p len bytes at @p d.
 * @return 0 and fills @p pk (key zero-padded), or -1 when the packet has no
 * parsable TCP/UDP header (not IP, fragment, truncated, other protocol).
 */
static inline int fp_parse(const uint8_t *d, uint32_t len, struct fp_pkt *pk)
{
	uint32_t off = 14, l4, end;
	uint64_t s0, s1, d0, d1; /* addresses as native words (IPv4 mapped) */
	uint16_t et;
	uint8_t proto;

	if (len < 14)
		return -1;
	et = fp_rd16(d + 12);
	pk->vlan = 0;
	for (int tags = 0; (et == 0x8100 || et == 0x88a8 || et == 0x9100) && tags < 2; tags++) {
		if (len < off + 4)
			return -1;
		if (tags == 0)
			pk->vlan = fp_rd16(d + off) & 0x0fff;
		et = fp_rd16(d + off + 2);
		off += 4;
	}
	if (et == 0x0800) {
		uint32_t ihl, tot;
		if (len < off + 20 || (d[off] >> 4) != 4)
			return -1;
		ihl = (uint32_t)(d[off] & 0x0f) * 4;
		tot = fp_rd16(d + off + 2);
		if (ihl < 20 || tot < ihl || len < off + ihl)
			return -1;
		/* A fragment other than the first has no L4 header. */
		if (fp_rd16(d + off + 6) & 0x1fff)
			return -1;
		proto = d[off + 9];
		uint32_t a;
		s0 = d0 = 0;
		memcpy(&a, d + off + 12, 4);
		s1 = 0xffff0000ull | (uint64_t)a << 32; /* ::ffff:a.b.c.d, little-endian */
		memcpy(&a, d + off + 16, 4);
		d1 = 0xffff0000ull | (uint64_t)a << 32;
		end = off + tot;
		l4 = off + ihl;
	} else if (et == 0x86dd) {
		uint32_t nxt_off;
		if (len < off + 40 || (d[off] >> 4) != 6)
			return -1;
		memcpy(&s0, d + off + 8, 8);
		memcpy(&s1, d + off + 16, 8);
		memcpy(&d0, d + off + 24, 8);
		memcpy(&d1, d + off + 32, 8);
		end = off + 40 + fp_rd16(d + off + 4);
		proto = d[off + 6];
		nxt_off = off + 40;
		for (int i = 0; i < 8; i++) {
			if (proto == 0 || proto == 43 || proto == 60) {
				if (len < nxt_off + 8)
					return -1;
				proto = d[nxt_off];
				nxt_off += 8 + (uint32_t)d[nxt_off + 1] * 8;
			} else if (proto == 44) {
				if (len < nxt_off + 8)
					return -1;
				if (fp_rd16(d + nxt_off + 2) & 0xfff8)
					return -1; /* not the first fragment */
				proto = d[nxt_off];
				nxt_off += 8;
			} else if (proto == 51) {
				if (len < nxt_off + 8)
					return -1;
				proto = d[nxt_off];
				nxt_off += ((uint32_t)d[nxt_off + 1] + 2) * 4;
			} else {
				break;
			}
		}
		l4 = nxt_off;
	} else {
		return -1;
	}
	if (end > len)
		end = len; /* truncated capture: use what is there */
	pk->proto = proto;
	pk->v6 = et == 0x86dd;
	pk->tcp_flags = 0;
	pk->seq = 0;
	if (proto == 6) {
		uint32_t doff;
		if (end < l4 + 20)
			return -1;
		doff = (uint32_t)(d[l4 + 12] >> 4) * 4;
		if (doff < 20 || end < l4 + doff)
			return -1;
		pk->tcp_flags = d[l4 + 13];
		pk->seq = fp_rd32(d + l4 + 4);
		pk->payload_off = (uint16_t)(l4 + doff);
		pk->payload_len = (uint16_t)(end - l4 - doff);
	} else if (proto == 17) {
		if (end < l4 + 8)
			return -1;
		pk->payload_off = (uint16_t)(l4 + 8);
		pk->payload_len = (uint16_t)(end - l4 - 8);
	} else {
		return -1;
	}
	pk->sport = fp_rd16(d + l4);
	pk->dport = fp_rd16(d + l4 + 2);

	/* Direction-independent key: the lower (address, port) first. */
	/*
	 * Direction-independent key, the lower (address, port) first; any total
	 * order will do as long as both directions agree: native words. The key
	 * is written and hashed as whole 64-bit words: narrower stores read back
	 * by the CRC as words would stall store-to-load forwarding.
	 */
	uint64_t w[6], pw;
	memcpy(pk->src, &s0, 8);
	memcpy(pk->src + 8, &s1, 8);
	memcpy(pk->dst, &d0, 8);
	memcpy(pk->dst + 8, &d1, 8);
	pk->dir = (uint8_t)(s0 != d0 ? s0 > d0 : s1 != d1 ? s1 > d1 : pk->sport > pk->dport);
	if (!pk->dir) {
		w[0] = s0, w[1] = s1, w[2] = d0, w[3] = d1;
		pw = pk->sport | (uint64_t)pk->dport << 16;
	} else {
		w[0] = d0, w[1] = d1, w[2] = s0, w[3] = s1;
		pw = pk->dport | (uint64_t)pk->sport << 16;
	}
	/* port_lo, port_hi, vlan, proto, pad: the layout of struct fp_flow_key. */
	w[4] = pw | (uint64_t)pk->vlan << 32 | (uint64_t)proto << 48;
	w[5] = 0;
	memcpy(&pk->key, w, sizeof(w));
	uint32_t h = 0;
	for (int i = 0; i < 6; i++)
		h = rte_hash_crc_8byte(w[i], h);
	pk->sig = h; /* == rte_hash_crc(&pk->key, 48, 0) */
	return 0;
}

/* --- application state ------------------------------------------------ */

enum fp_mirror_mode {
	FP_MIRROR_COPY = 0, /**< the received mbuf itself (refcount when also handed off) */
	FP_MIRROR_DUP,	    /**< a private copy (rte_pktmbuf_copy) */
	FP_MIRROR_VLAN,
	FP_MIRROR_VXLAN,
};

/** Options after `--` (see fp_usage() in fp_main.c). */
struct fp_conf {
	uint16_t rx_ports[FP_MAX_PORTS];
	unsigned nrx_ports;
	int tx_port; /**< -1: no mirror */
	enum fp_mirror_mode mode;
	uint16_t vlan_id;
	uint8_t vx_src[4], vx_dst[4]; /**< VXLAN outer addresses (network order) */
	uint8_t vx_dmac[6];
	uint32_t vni;
	unsigned workers;
	unsigned ring_size;
	const char *wpath;   /**< -w: FILE.dyt (sessions) or FILE.pcap (packets); NULL: count */
	bool drop_uncolored; /**< --uncolored drop: sessions no rule colors are not stored */
	struct recorder_conf rec; /**< --redact, --redact-defaults (capture/recorder.h) */
	uint64_t exit_idle_ms;
	uint64_t count;
	unsigned stats_every;
	bool json;
	unsigned queues;      /**< RX queues per port */
	unsigned flows;	      /**< flow table entries per RX lcore */
	unsigned pending;     /**< undecided-flow slots per RX lcore */
	unsigned hold_budget; /**< held mbufs per RX lcore */
	unsigned hold_ms;
	unsigned flow_timeout_s;
	unsigned min_mbufs; /**< added to the computed pool size */
	struct fp_rules rules;
};

#define FP_TXB 64 /**< mirror / ring batch capacity before a flush */
_Static_assert(FP_TXB <= 64, "fp_lcore.wbu marks a ring batch in one 64-bit word");

struct fp_rxq {
	uint16_t port;
	uint16_t queue;
};

/** One RX lcore. Only its own lcore writes it (stats are read relaxed). */
struct fp_lcore {
	unsigned lcore_id;
	unsigned idx;
	unsigned nq;
	struct fp_rxq q[FP_MAX_RXQ];
	uint16_t txq; /**< its queue on the mirror port */
	struct rte_hash *h;
	struct fp_flow *flows;
	uint32_t nflows;
	struct fp_pending *pend;
	uint32_t *pend_free;
	uint32_t npend, npend_free;
	uint32_t held_total;
	uint32_t sweep_pend;
	uint32_t sweep_flow;
	uint64_t hold_tsc;
	uint64_t flow_tsc;
	struct rte_ring *rings[FP_MAX_WORKERS];
	unsigned ntx;
	struct rte_mbuf *txb[FP_TXB];
	unsigned nwb[FP_MAX_WORKERS];
	struct rte_mbuf *wb[FP_MAX_WORKERS][FP_TXB];
	uint64_t wbu[FP_MAX_WORKERS]; /**< bit i: wb[w][i] is a per-request (uncolored) hand-off */
	unsigned nfree;
	struct rte_mbuf *freeb[FP_TXB];
	struct fp_stats st __rte_cache_aligned;
} __rte_cache_aligned;

/* --- shadowing (fp_shadow.c) and recording (fp_record.c) ----------------- */

/**
 * The fast path's own shadow counters (--shadow-out), written by the
 * sender thread (FP_INC), beside the shadow core's (struct shadow_stats)
 * and the hand-over's (struct shadow_sender_stats: queued, ring_full,
 * out_lost). Only uint64_t fields.
 */
struct fp_sh_stats {
	uint64_t out_sessions; /**< sender: sessions written to --shadow-out */
	uint64_t out_results;  /**< sender: results written to --shadow-out */
	uint64_t out_errors;   /**< sender: records the --shadow-out writer refused */
};

_Static_assert(sizeof(struct fp_sh_stats) % sizeof(uint64_t) == 0, "only uint64_t counters");

/** Shadowing: the shared options, the core, the sender (replay/shadow_sender.h). */
struct fp_shadow {
	struct shadow_conf conf;   /**< --lane, --queue, ... (replay/shadow_core.h) */
	unsigned nlanes;	   /**< conf.n_lanes, once the options are checked */
	struct shadow_core *core;  /**< classify: workers; the rest: the sender thread */
	struct shadow_sender *snd; /**< one queue per worker (producer = worker idx), the thread */
	unsigned ring_size;	   /**< --shadow-ring: requests per worker-to-sender queue */
	const char *out_path;	   /**< --shadow-out FILE.dyt, NULL: none */
	struct recorder *out;	   /**< its writer-only recorder: the sender thread's */
	uint64_t next_id;	   /**< session ids in --shadow-out */
	bool running;		   /**< the sender thread runs (reload is applied by it); sh_lock */
	struct fp_sh_stats st __rte_cache_aligned; /**< the sender thread's counters */
};

struct recorder;

#define FP_CAP_MAX  256 /**< capture counters a worker publishes (pipe_counters()) */
#define FP_CAP_NAME 96	/**< their names' storage ("lane_NAME_sessions" included) */

/**
 * A worker's capture counters (its pipeline's: decode_, flow_, ipfrag_,
 * reasm_, txn_, h2_, pipe_, redact_, lane_L_sessions) as it last published
 * them for the other threads (fp_record_publish()). The pipeline's own
 * counters are plain fields of the worker's thread; these are the copy
 * that telemetry, --metrics, --control and the reports read. A slot's name
 * is written once, before @p n is released past it (pipe_counters() only
 * appends: lanes), and never changes; values are relaxed stores.
 */
struct fp_cap {
	uint32_t n;		/**< published slots (release / acquire) */
	uint64_t tsc;		/**< last publication (the worker's own) */
	uint64_t v[FP_CAP_MAX]; /**< relaxed */
	char name[FP_CAP_MAX][FP_CAP_NAME];
	struct store_counter tmp[FP_CAP_MAX]; /**< the worker's pipe_counters() buffer */
};

/** One worker lcore: drains the rings of every RX lcore toward it. */
struct fp_worker {
	unsigned lcore_id;
	unsigned idx;
	unsigned nrings;
	struct rte_ring *rings[FP_MAX_LCORES];
	void *pcap;	      /**< pcap_t (dead handle) or NULL */
	void *dumper;	      /**< pcap_dumper_t or NULL */
	struct recorder *rec; /**< capture pipeline (and -w FILE.dyt) or NULL */
	char path[4096];
	struct fp_stats st __rte_cache_aligned;
	uint32_t rules_seen;		       /**< fp_app.rules_gen its pipeline colors with */
	struct fp_cap cap __rte_cache_aligned; /**< with a pipeline (rec) */
} __rte_cache_aligned;

struct fp_app {
	struct fp_conf c;
	struct rte_mempool *pool;
	struct fp_lcore *rx[FP_MAX_LCORES];
	unsigned nrx;
	struct fp_worker *wk[FP_MAX_WORKERS];
	unsigned nwk;
	uint8_t tx_mac[6];
	int ts_off;			   /**< RX timestamp dynfield offset, -1 none */
	uint64_t ts_flag;		   /**< its ol_flags bit */
	uint32_t ts_mul[RTE_MAX_ETHPORTS]; /**< RX timestamp unit in ns per port, 0: unknown */
	uint64_t rx_total;		   /**< relaxed, all RX lcores (for --count) */
	/**
	 * Workers run capture pipelines and a rule has an HTTP matcher: every
	 * TCP flow an HTTP rule may color goes to the workers, whose pipelines
	 * color each request (the mirror port stays flow-scoped).
	 */
	bool per_request;
	int tag_off;	     /**< mbuf dynfield: 1 = packet of a colored flow (-w .pcap); -1 none */
	int quit;	     /**< relaxed flag: RX lcores stop */
	int workers_stop;    /**< relaxed flag: workers drain and stop */
	struct fp_shadow sh; /**< --lane: shadow sender */
	/**
	 * The color rules in use: c.rules at start, a new set after each reload
	 * (docs/operations.md). RX lcores read it per burst (fp_rules_cur());
	 * workers give it to their pipelines when rules_gen moves. Every set
	 * stays allocated until exit, and keeps the lane numbers of the sets
	 * before it (fp_rules_seed()), so a flow's lane index never changes
	 * meaning.
	 */
	const struct fp_rules *rules; /**< atomic (release by the control thread) */
	uint32_t rules_gen;	      /**< atomic: bumped after each switch */
};

extern struct fp_app fp_app;

/** The color rules in use (any lcore; see fp_app.rules). */
static inline const struct fp_rules *fp_rules_cur(void)
{
	return __atomic_load_n(&fp_app.rules, __ATOMIC_ACQUIRE);
}

/** Set up @p lc's tables (init time). @return 0 or -ENOMEM with @p err. */
int fp_rx_init(struct fp_lcore *lc, char *err, size_t errlen);

/** Free @p lc's tables; flows' held mbufs must have been released. */
void fp_rx_release(struct fp_lcore *lc);

/** RX lcore loop (rte_eal_remote_launch); @p arg is a struct fp_lcore. */
int fp_rx_main(void *arg);

/** Worker lcore loop; @p arg is a struct fp_worker. */
int fp_worker_main(void *arg);

/**
 * Create the shadow core (lanes, guards, engines) from fp_app.sh.conf and
 * its sender (one queue per worker; init time, after the workers exist).
 * @return 0 or -errno with a message in @p err.
 */
int fp_shadow_setup(char *err, size_t errlen);

/** Start the sender thread. @return 0 or -errno with a message in @p err. */
int fp_shadow_start(char *err, size_t errlen);

/**
 * After the workers stopped: the sender takes what is left in the queues,
 * waits up to --drain-timeout for answers, drops the rest (`stopped`),
 * writes what --shadow-out pairs are left and ends; joined here.
 */
void fp_shadow_stop(void);

/** Free the sender (stopping it), whatever is still queued, and the core (accepts a partial setup).
 */
void fp_shadow_release(void);

/** recorder on_request hook of a worker's pipeline; @p ctx is the struct fp_worker. */
void fp_shadow_on_request(void *ctx, const struct store_session *s);

/**
 * --shadow-out: pass production session @p s (borrowed) of a lane with
 * targets from worker @p w to the sender, which pairs it with the shadow
 * results of its request (by connection and request time) and writes both.
 */
void fp_shadow_on_session(struct fp_worker *w, const struct store_session *s);

/**
 * Every shadow counter, summed over the workers and the sender (relaxed
 * reads; any thread, until the process exits): fn(ctx, lane or NULL,
 * name, value), the totals first ("requests", ..., "queued", ...), then
 * each lane's ("sent", ..., "dropped_REASON"). Nothing without --lane.
 */
void fp_shadow_report(void (*fn)(void *ctx, const char *lane, const char *name, uint64_t v),
		      void *ctx);

/**
 * A warning of the shadow core not handed out yet, in @p msg (counters
 * named as in the text output). @return 1 when one was copied, else 0.
 * One reader thread (the control lcore).
 */
int fp_shadow_warning(char *msg, size_t msglen);

/**
 * The lane commands of the control protocol (replay/shadow_ctl.h) on the
 * shadow core, under the lock that guards its lifetime; any thread (the
 * control thread). @return as shadow_ctl_command(); -ENOENT also when
 * there is no shadow core (no --lane).
 */
int fp_shadow_ctl(int argc, char **argv, struct dbuf *out, char *err, size_t errlen);

/**
 * Metrics of the shadow core into @p p: the totals as `fp_shadow_NAME`
 * and each lane's as `lane_L_NAME` counters of @p set (the caller turns
 * the set into metrics), and the lanes' state gauges into @p p.
 * @p lanes gets the lanes' names (static storage), @p n_lanes their count.
 * @return 0 or -ENOMEM. Nothing without --lane.
 */
int fp_shadow_metrics(struct ctr_set *set, struct ctl_prom *p, const char **lanes, size_t *n_lanes);

/**
 * Reload (control thread): switch the shadow core to the lanes, targets
 * and rates of @p conf (shadow_core_reconfigure()) and wait, up to 2 s,
 * for the sender thread to switch. @return 0, or -errno with a message.
 */
int fp_shadow_reconfigure(const struct shadow_conf *conf, char *err, size_t errlen);

/**
 * A worker's recorder (capture pipeline; with -w FILE.dyt also its store
 * file) with the fast path's metadata, and, with --shadow-out, the
 * sender's writer-only recorder. @return 0 or -errno with a message.
 */
int fp_record_open_worker(struct fp_worker *wk, bool file, char *err, size_t errlen);
int fp_record_open_shadow_out(char *err, size_t errlen);

/**
 * Publish worker @p w's capture counters (struct fp_cap): its own thread,
 * about every millisecond while it runs and once more after the end of
 * input. Nothing without a pipeline.
 */
void fp_record_publish(struct fp_worker *w);

/**
 * The capture counters every worker published last, summed by name, as
 * `dyetap mirror` names them (decode_..., h2_gaps, lane_L_sessions...),
 * appended to @p set (any thread; nothing without pipelines). Peaks
 * (`_peak`) add up too: a bound of the whole. @return 0 or the set's error.
 */
int fp_record_capture_counters(struct ctr_set *set);

/**
 * Close recorder @p r's file (if any) with the trailer: the pipeline's
 * counters (for --shadow-out, which has none, the workers' summed:
 * fp_record_capture_counters()), the fast path's totals (fp_) and the
 * shadow counters (fp_shadow_). @return 0; 1 when the file is whole but
 * records are missing from it or from its trailer; -EIO when the file
 * could not be finished; with a message in @p msg for 1 and -EIO.
 */
int fp_record_close(struct recorder *r, char *msg, size_t msglen);

/** Sum of every RX lcore's and worker's counters (relaxed reads; any thread). */
void fp_stats_sum(struct fp_stats *t);

/** Called about every millisecond by the control lcore; true: stop now. */
bool fp_control_tick(uint64_t now_tsc);

#endif
