/* SPDX-License-Identifier: MIT */
/*
 * ipfrag - IPv4 and IPv6 fragment reassembly (see ipfrag.h).
 *
 * Each datagram being put together holds its fragments' data as disjoint
 * pieces in offset order (first seen wins where they overlap, the way
 * reasm.c keeps TCP bytes) and the header of its offset-0 fragment. The
 * datagrams sit in a keyed hash table and in one list in the order they
 * began, so timeouts and memory-cap drops look at the list's head only.
 * When the last fragment has set the end and the pieces cover it, the
 * datagram is written into one buffer as a plain IP packet.
 *
 * References: RFC 791 §3.2 (IPv4 fragmentation and reassembly), RFC 815
 * (hole bookkeeping), RFC 8200 §4.5 (IPv6 Fragment header: the
 * unfragmentable part is taken from the offset-0 fragment, the Fragment
 * header removed, Payload Length recomputed), RFC 5722 (overlapping IPv6
 * fragments: receivers drop the datagram; a passive observer keeps the
 * first seen, like the TCP layer, and counts them), RFC 1071 (checksum);
 * Linux net/ipv4/ip_fragment.c (ipfrag_time 30 s, ipfrag_high_thresh
 * 4 MiB).
 */
#include "capture/ipfrag.h"

#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

#define IPF_LOG(lvl, ...) LOG_MSG(lvl, "ipfrag", __VA_ARGS__)

#define IPF_MAX_DATA   65535u /* an IP datagram's length field */
#define IPF_BUCKETS    4096u
#define IPF_MAX_HEADER 512u /* unfragmentable part kept (IPv6 extension headers) */
#define IPF_KEY_WORDS  5

const struct ctr_desc ipfrag_ctr_descs[] = {
    CTR_DESC(struct ipfrag_stats, fragments, "IP fragments offered to reassembly"),
    CTR_DESC(struct ipfrag_stats, reassembled, "IP datagrams reassembled from fragments"),
    CTR_DESC(struct ipfrag_stats, overlaps,
	     "IP fragments overlapping bytes already held (first seen kept)"),
    CTR_DESC(struct ipfrag_stats, overlap_diff, "... whose overlapping bytes differed"),
    CTR_DESC(struct ipfrag_stats, duplicates, "IP fragments adding nothing new"),
    CTR_DESC(struct ipfrag_stats, timeouts,
	     "IP datagrams dropped: not whole within the reassembly timeout"),
    CTR_DESC(struct ipfrag_stats, memcap_drops,
	     "IP datagrams dropped to stay under the reassembly memory cap"),
    CTR_DESC(struct ipfrag_stats, invalid,
	     "IP datagrams or fragments dropped: too long, too many pieces, disagreeing ends, "
	     "malformed"),
    CTR_DESC(struct ipfrag_stats, truncated, "IP fragments cut by the snap length (not usable)"),
    CTR_DESC(struct ipfrag_stats, unfinished,
	     "IP datagrams still incomplete when the capture ended (dropped)"),
    CTR_DESC(struct ipfrag_stats, held_peak, "most bytes held by IP reassembly at once"),
};
const size_t ipfrag_ctr_count = sizeof(ipfrag_ctr_descs) / sizeof(ipfrag_ctr_descs[0]);

struct ipf_piece {
	struct ipf_piece *next;
	uint32_t off, len;
	uint8_t data[];
};

struct ipf_dgram {
	struct ipf_dgram *hnext;       /* bucket chain */
	struct ipf_dgram *prev, *next; /* in the order datagrams began */
	uint64_t key[IPF_KEY_WORDS];
	int64_t first_ts;
	struct ipf_piece *pieces; /* disjoint, by offset */
	uint8_t *hdr;		  /* the offset-0 fragment's unfragmentable part */
	size_t mem;
	uint32_t hash;
	uint32_t hdr_len;
	uint32_t nh_off; /* IPv6: where in hdr the Next Header naming the Fragment header is */
	uint32_t end;	 /* data length, once the last fragment was seen */
	uint32_t have;	 /* data bytes held */
	uint32_t n_pieces;
	uint8_t ver;
	uint8_t nh; /* IPv6: the Fragment header's Next Header */
	bool has_end;
};

struct ipfrag {
	struct ipfrag_params p;
	struct ipfrag_stats *st;
	struct hash_key key;
	struct ipf_dgram *buckets[IPF_BUCKETS];
	struct ipf_dgram *head, *tail;
	uint32_t n;
	size_t held;
	int64_t now;
	bool has_now;
	uint8_t out[IPF_MAX_HEADER + IPF_MAX_DATA];
};

/* One fragment, parsed. */
struct ipf_frag {
	uint64_t key[IPF_KEY_WORDS];
	const uint8_t *hdr; /* unfragmentable part */
	const uint8_t *data;
	uint32_t hdr_len, nh_off, off, len;
	uint8_t ver, nh;
	bool more;
};

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void key_addrs(uint64_t *w, const uint8_t *src, const uint8_t *dst, size_t alen)
{
	uint8_t a[32] = {0};
	memcpy(a, src, alen);
	memcpy(a + 16, dst, alen);
	memcpy(w, a, sizeof(a));
}

/* 1: a usable fragment in *fr; 0: not one; -1: cut by the snap length (counted). */
static int parse_v4(struct ipfrag *f, const uint8_t *p, size_t caplen, uint16_t vlan,
		    struct ipf_frag *fr)
{
	if (caplen < 20)
		return 0;
	uint32_t ihl = (uint32_t)(p[0] & 15) * 4, total = rd16(p + 2);
	uint16_t frag = rd16(p + 6);
	if (ihl < 20 || total < ihl || !(frag & 0x3fff))
		return 0;
	if (caplen < total) {
		f->st->truncated++;
		return -1;
	}
	fr->ver = 4;
	fr->hdr = p;
	fr->hdr_len = ihl;
	fr->data = p + ihl;
	fr->len = total - ihl;
	fr->off = (uint32_t)(frag & 0x1fff) * 8;
	fr->more = frag & 0x2000;
	fr->key[0] = 4 | (uint64_t)vlan << 8 | (uint64_t)p[9] << 24 | (uint64_t)rd16(p + 4) << 32;
	key_addrs(fr->key + 1, p + 12, p + 16, 4);
	return 1;
}

static int parse_v6(struct ipfrag *f, const uint8_t *p, size_t caplen, uint16_t vlan,
		    struct ipf_frag *fr)
{
	if (caplen < 40)
		return 0;
	uint32_t total = 40u + rd16(p + 4);
	if (caplen < total) {
		f->st->truncated++;
		return -1;
	}
	uint8_t nh = p[6];
	uint32_t off = 40, nh_off = 6;
	/* The unfragmentable part: Hop-by-Hop, Routing and Destination
	 * Options headers before the Fragment header (RFC 8200 §4.5). */
	for (int i = 0; nh != 44; i++) {
		if ((nh != 0 && nh != 43 && nh != 60) || i == 8 || off + 8 > total)
			return 0;
		nh_off = off;
		nh = p[off];
		off += ((uint32_t)p[off + 1] + 1) * 8;
	}
	if (off + 8 > total || off > IPF_MAX_HEADER)
		return 0;
	uint16_t fo = rd16(p + off + 2);
	fr->ver = 6;
	fr->hdr = p;
	fr->hdr_len = off;
	fr->nh_off = nh_off;
	fr->nh = p[off];
	fr->data = p + off + 8;
	fr->len = total - off - 8;
	fr->off = fo & 0xfff8u;
	fr->more = fo & 1;
	fr->key[0] = 6 | (uint64_t)vlan << 8 | (uint64_t)rd32(p + off + 4) << 32;
	key_addrs(fr->key + 1, p + 8, p + 24, 16);
	return 1;
}

static void list_unlink(struct ipfrag *f, struct ipf_dgram *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		f->head = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		f->tail = d->prev;
}

static void dgram_free(struct ipfrag *f, struct ipf_dgram *d)
{
	struct ipf_dgram **pp = &f->buckets[d->hash & (IPF_BUCKETS - 1)];
	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	list_unlink(f, d);
	struct ipf_piece *g = d->pieces;
	while (g) {
		struct ipf_piece *nx = g->next;
		mem_free(g);
		g = nx;
	}
	mem_free(d->hdr);
	f->held -= d->mem;
	f->n--;
	mem_free(d);
}

static void expire(struct ipfrag *f)
{
	while (f->head && f->head->first_ts + f->p.timeout_ns < f->now) {
		f->st->timeouts++;
		dgram_free(f, f->head);
	}
}

/* The clock moves with the packets, never back. */
static void clock_to(struct ipfrag *f, int64_t ts)
{
	if (!f->has_now || ts > f->now) {
		f->now = ts;
		f->has_now = true;
		expire(f);
	}
}

static struct ipf_dgram *lookup(struct ipfrag *f, const struct ipf_frag *fr, uint32_t h)
{
	for (struct ipf_dgram *d = f->buckets[h & (IPF_BUCKETS - 1)]; d; d = d->hnext)
		if (d->hash == h && !memcmp(d->key, fr->key, sizeof(d->key)))
			return d;
	return NULL;
}

/* Room for @p need more bytes: drop the oldest datagrams but @p keep. */
static bool make_room(struct ipfrag *f, size_t need, const struct ipf_dgram *keep)
{
	while (f->held + need > f->p.memcap) {
		struct ipf_dgram *v = f->head;
		if (v == keep)
			v = v->next;
		if (!v)
			return false;
		f->st->memcap_drops++;
		dgram_free(f, v);
	}
	return true;
}

static void account(struct ipfrag *f, struct ipf_dgram *d, size_t n)
{
	d->mem += n;
	f->held += n;
	if (f->held > f->st->held_peak)
		f->st->held_peak = f->held;
}

/* Add [off, off + len) of @p data, first seen wins. false: drop the datagram. */
static bool add_data(struct ipfrag *f, struct ipf_dgram *d, const struct ipf_frag *fr)
{
	struct ipf_piece **pp = &d->pieces;
	uint32_t pos = fr->off, end = fr->off + fr->len;
	bool overlap = false, diff = false, added = false;
	while (pos < end) {
		while (*pp && (*pp)->off + (*pp)->len <= pos)
			pp = &(*pp)->next;
		struct ipf_piece *g = *pp;
		if (g && g->off <= pos) { /* held already: compare, keep */
			uint32_t ov_end = g->off + g->len < end ? g->off + g->len : end;
			overlap = true;
			diff |= memcmp(g->data + (pos - g->off), fr->data + (pos - fr->off),
				       ov_end - pos) != 0;
			pos = ov_end;
			continue;
		}
		uint32_t lim = g && g->off < end ? g->off : end;
		uint32_t n = lim - pos;
		if (d->n_pieces >= f->p.max_pieces || !make_room(f, sizeof(*g) + n, d))
			return false;
		struct ipf_piece *np = mem_alloc(sizeof(*np) + n);
		if (!np)
			return false;
		np->off = pos;
		np->len = n;
		memcpy(np->data, fr->data + (pos - fr->off), n);
		np->next = g;
		*pp = np;
		pp = &np->next;
		d->n_pieces++;
		d->have += n;
		account(f, d, sizeof(*np) + n);
		added = true;
		pos = lim;
	}
	if (overlap)
		f->st->overlaps++;
	if (diff)
		f->st->overlap_diff++;
	if (!added)
		f->st->duplicates++;
	return true;
}

/* The datagram is whole: write it as one IP packet into f->out. */
static size_t assemble(struct ipfrag *f, const struct ipf_dgram *d)
{
	uint8_t *o = f->out;
	memcpy(o, d->hdr, d->hdr_len);
	size_t n = d->hdr_len;
	for (const struct ipf_piece *g = d->pieces; g; g = g->next) {
		memcpy(o + n, g->data, g->len);
		n += g->len;
	}
	if (d->ver == 4) {
		o[2] = (uint8_t)(n >> 8);
		o[3] = (uint8_t)n;
		o[6] = 0; /* no fragment offset, no MF (DF as sent is dropped too) */
		o[7] = 0;
		o[10] = o[11] = 0;
		uint32_t sum = 0;
		for (uint32_t i = 0; i < d->hdr_len; i += 2)
			sum += rd16(o + i);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		o[10] = (uint8_t)(~sum >> 8);
		o[11] = (uint8_t)~sum;
	} else {
		size_t plen = n - 40;
		o[4] = (uint8_t)(plen >> 8);
		o[5] = (uint8_t)plen;
		o[d->nh_off] = d->nh; /* the Fragment header is gone */
	}
	return n;
}

bool ipfrag_offer(struct ipfrag *f, const uint8_t *ip, size_t caplen, uint16_t vlan, int64_t ts_ns,
		  const uint8_t **out, size_t *out_len)
{
	clock_to(f, ts_ns);
	if (!caplen)
		return false;
	f->st->fragments++;
	struct ipf_frag fr;
	int ok = (ip[0] >> 4) == 4   ? parse_v4(f, ip, caplen, vlan, &fr)
		 : (ip[0] >> 4) == 6 ? parse_v6(f, ip, caplen, vlan, &fr)
				     : 0;
	if (ok <= 0) {
		f->st->invalid += ok == 0;
		return false;
	}
	uint32_t end = fr.off + fr.len;
	/* A fragment other than the last carries a multiple of 8 bytes
	 * (RFC 791, RFC 8200); the datagram fits its length field. */
	if (!fr.len || (fr.more && fr.len % 8) || end > IPF_MAX_DATA ||
	    (fr.ver == 6 && fr.hdr_len - 40 + end > IPF_MAX_DATA) ||
	    (fr.ver == 4 && fr.hdr_len + end > IPF_MAX_DATA)) {
		f->st->invalid++;
		return false;
	}
	uint32_t h = (uint32_t)hash_sip13_words(&f->key, fr.key, IPF_KEY_WORDS);
	struct ipf_dgram *d = lookup(f, &fr, h);
	if (!d) {
		if (f->n >= f->p.max_datagrams) {
			f->st->memcap_drops++;
			dgram_free(f, f->head);
		}
		if (!make_room(f, sizeof(*d), NULL) || !(d = mem_calloc(1, sizeof(*d)))) {
			f->st->memcap_drops++;
			return false;
		}
		memcpy(d->key, fr.key, sizeof(d->key));
		d->hash = h;
		d->ver = fr.ver;
		d->first_ts = f->now;
		d->hnext = f->buckets[h & (IPF_BUCKETS - 1)];
		f->buckets[h & (IPF_BUCKETS - 1)] = d;
		d->prev = f->tail;
		if (f->tail)
			f->tail->next = d;
		else
			f->head = d;
		f->tail = d;
		f->n++;
		account(f, d, sizeof(*d));
	}
	bool bad = (!fr.more && d->has_end && end != d->end) || (d->has_end && end > d->end);
	if (!bad && !fr.more) {
		for (const struct ipf_piece *g = d->pieces; g; g = g->next)
			bad |= g->off + g->len > end;
		d->has_end = true;
		d->end = end;
	}
	if (!bad && fr.off == 0 && !d->hdr) {
		if (!make_room(f, fr.hdr_len, d) || !(d->hdr = mem_alloc(fr.hdr_len))) {
			f->st->memcap_drops++;
			dgram_free(f, d);
			return false;
		}
		memcpy(d->hdr, fr.hdr, fr.hdr_len);
		d->hdr_len = fr.hdr_len;
		d->nh_off = fr.nh_off;
		d->nh = fr.nh;
		account(f, d, fr.hdr_len);
	}
	if (bad || !add_data(f, d, &fr)) {
		IPF_LOG(LOG_DEBUG, "datagram dropped: invalid or over its limits");
		f->st->invalid++;
		dgram_free(f, d);
		return false;
	}
	if (!d->has_end || d->have != d->end || !d->hdr)
		return false;
	if ((d->ver == 4 && d->hdr_len + d->end > IPF_MAX_DATA) ||
	    (d->ver == 6 && d->hdr_len - 40 + d->end > IPF_MAX_DATA)) {
		f->st->invalid++; /* its length field cannot say it */
		dgram_free(f, d);
		return false;
	}
	*out_len = assemble(f, d);
	*out = f->out;
	f->st->reassembled++;
	dgram_free(f, d);
	return true;
}

void ipfrag_advance(struct ipfrag *f, int64_t now_ns)
{
	if (f->has_now)
		clock_to(f, now_ns);
}

void ipfrag_finish(struct ipfrag *f)
{
	while (f->head) {
		f->st->unfinished++;
		dgram_free(f, f->head);
	}
}

size_t ipfrag_held(const struct ipfrag *f)
{
	return f->held;
}

struct ipfrag *ipfrag_create(const struct ipfrag_params *p, struct ipfrag_stats *st)
{
	struct ipfrag *f = mem_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->p = p ? *p : (struct ipfrag_params){0};
	if (!f->p.memcap)
		f->p.memcap = (size_t)4 << 20;
	if (!f->p.timeout_ns)
		f->p.timeout_ns = 30LL * 1000000000LL;
	if (!f->p.max_datagrams)
		f->p.max_datagrams = 4096;
	if (!f->p.max_pieces)
		f->p.max_pieces = 256;
	f->st = st;
	hash_random_key(&f->key);
	return f;
}

void ipfrag_free(struct ipfrag *f)
{
	if (!f)
		return;
	while (f->head)
		dgram_free(f, f->head);
	mem_free(f);
}
