/* SPDX-License-Identifier: MIT */
/*
 * reasm - TCP stream reassembly with 64-bit offsets (see reasm.h).
 *
 * A stream keeps one anchor: the sequence number of the next byte to
 * deliver (next_seq) and its 64-bit offset (next_off). Any sequence number
 * maps to an offset by the signed 32-bit distance from the anchor (RFC 9293
 * §3.4 sequence arithmetic), which is why wraparound needs no special case.
 * Out-of-order bytes are kept as disjoint pieces in a red-black tree keyed
 * by offset (Cormen et al., "Introduction to Algorithms", ch. 13, with
 * parent pointers and the leftmost piece cached, as the Linux kernel keeps
 * its TCP out-of-order queue); when a new segment overlaps them only the
 * uncovered pieces are added (first seen wins, like the "first" policy of
 * Snort/Suricata target-based reassembly).
 *
 * References: RFC 9293 §3.4 and §3.10.7.4; Suricata
 * src/stream-tcp-reassemble.c (offsets, gaps, memcap); Novak & Sturges,
 * "Target-Based TCP Stream Reassembly" (2007) for overlap policies.
 */
#include "capture/reasm.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

#define REASM_LOG(lvl, ...) LOG_MSG(lvl, "reasm", __VA_ARGS__)

struct reasm_seg {
	struct reasm_seg *parent, *left, *right;
	uint64_t off;
	int64_t ts_ns; /* the segment that brought the bytes: its time */
	uint64_t ack;  /* ... and acknowledgement (with has_ack) */
	uint32_t len;
	bool red;
	bool has_ack;
	uint8_t data[];
};

const struct ctr_desc reasm_ctr_descs[] = {
    CTR_DESC(struct reasm_stats, segments, "TCP segments with payload offered to reassembly"),
    CTR_DESC(struct reasm_stats, in_order, "segments delivered directly (in order)"),
    CTR_DESC(struct reasm_stats, out_of_order,
	     "segments buffered because earlier bytes were missing"),
    CTR_DESC(struct reasm_stats, retrans_segments, "segments already delivered (retransmissions)"),
    CTR_DESC(struct reasm_stats, retrans_bytes, "retransmitted bytes dropped (first seen wins)"),
    CTR_DESC(struct reasm_stats, overlap_diff,
	     "segments overlapping buffered bytes with different content"),
    CTR_DESC(struct reasm_stats, overlap_diff_bytes,
	     "differing overlapping bytes (the first seen were kept)"),
    CTR_DESC(struct reasm_stats, gaps, "holes in a stream declared lost (gaps)"),
    CTR_DESC(struct reasm_stats, gap_bytes, "bytes lost in gaps"),
    CTR_DESC(struct reasm_stats, gaps_by_ack,
	     "gaps declared because the peer acknowledged past them"),
    CTR_DESC(struct reasm_stats, memcap_hits,
	     "out-of-order buffering stopped at the memory cap (holes became gaps)"),
    CTR_DESC(struct reasm_stats, out_of_window, "segments too far ahead of the stream (ignored)"),
    CTR_DESC(struct reasm_stats, after_fin_bytes, "bytes after the FIN (ignored)"),
    CTR_DESC(struct reasm_stats, delivered_bytes, "stream bytes delivered to the HTTP parser"),
    CTR_DESC(struct reasm_stats, buffered_peak, "peak out-of-order memory held (bytes)"),
    CTR_DESC(struct reasm_stats, seg_cap_hits,
	     "out-of-order buffering stopped at the per-stream piece cap (holes became gaps)"),
};
const size_t reasm_ctr_count = sizeof(reasm_ctr_descs) / sizeof(reasm_ctr_descs[0]);

void reasm_ctx_init(struct reasm_ctx *c, const struct reasm_params *p, struct reasm_stats *st)
{
	c->p = p ? *p : (struct reasm_params){0};
	if (!c->p.memcap)
		c->p.memcap = 64u << 20;
	if (!c->p.stream_cap)
		c->p.stream_cap = 1u << 20;
	if (c->p.stream_cap > (size_t)INT32_MAX)
		c->p.stream_cap = (size_t)INT32_MAX; /* ooo_bytes is 32-bit */
	if (!c->p.window)
		c->p.window = 1u << 30;
	if (!c->p.max_segments)
		c->p.max_segments = 4096;
	c->stats = st;
	c->used = 0;
	c->work = 0;
}

void reasm_stream_init(struct reasm_stream *s)
{
	*s = (struct reasm_stream){0};
}

void reasm_stream_start(struct reasm_stream *s, uint32_t seq)
{
	s->next_seq = seq;
	s->next_off = 0;
	s->started = true;
}

/* ---- the tree of buffered pieces ---- */

static void rb_rotate_left(struct reasm_stream *s, struct reasm_seg *x)
{
	struct reasm_seg *y = x->right;
	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	y->parent = x->parent;
	if (!x->parent)
		s->root = y;
	else if (x == x->parent->left)
		x->parent->left = y;
	else
		x->parent->right = y;
	y->left = x;
	x->parent = y;
}

static void rb_rotate_right(struct reasm_stream *s, struct reasm_seg *x)
{
	struct reasm_seg *y = x->left;
	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	y->parent = x->parent;
	if (!x->parent)
		s->root = y;
	else if (x == x->parent->right)
		x->parent->right = y;
	else
		x->parent->left = y;
	y->right = x;
	x->parent = y;
}

static bool rb_red(const struct reasm_seg *g)
{
	return g && g->red;
}

static void rb_insert(struct reasm_ctx *c, struct reasm_stream *s, struct reasm_seg *z)
{
	struct reasm_seg *y = NULL, *x = s->root;
	while (x) {
		c->work++;
		y = x;
		x = z->off < x->off ? x->left : x->right;
	}
	z->parent = y;
	z->left = z->right = NULL;
	z->red = true;
	if (!y)
		s->root = z;
	else if (z->off < y->off)
		y->left = z;
	else
		y->right = z;
	if (!s->first || z->off < s->first->off)
		s->first = z;
	while (rb_red(z->parent)) {
		struct reasm_seg *p = z->parent, *g = p->parent;
		if (p == g->left) {
			struct reasm_seg *u = g->right;
			if (rb_red(u)) {
				p->red = u->red = false;
				g->red = true;
				z = g;
				continue;
			}
			if (z == p->right) {
				z = p;
				rb_rotate_left(s, z);
				p = z->parent;
			}
			p->red = false;
			g->red = true;
			rb_rotate_right(s, g);
		} else {
			struct reasm_seg *u = g->left;
			if (rb_red(u)) {
				p->red = u->red = false;
				g->red = true;
				z = g;
				continue;
			}
			if (z == p->left) {
				z = p;
				rb_rotate_right(s, z);
				p = z->parent;
			}
			p->red = false;
			g->red = true;
			rb_rotate_left(s, g);
		}
	}
	s->root->red = false;
}

/* In-order successor. */
static struct reasm_seg *rb_next(struct reasm_ctx *c, const struct reasm_seg *g)
{
	if (g->right) {
		g = g->right;
		while (g->left) {
			c->work++;
			g = g->left;
		}
		return (struct reasm_seg *)g;
	}
	const struct reasm_seg *p = g->parent;
	while (p && g == p->right) {
		c->work++;
		g = p;
		p = p->parent;
	}
	return (struct reasm_seg *)p;
}

static void rb_transplant(struct reasm_stream *s, struct reasm_seg *u, struct reasm_seg *v)
{
	if (!u->parent)
		s->root = v;
	else if (u == u->parent->left)
		u->parent->left = v;
	else
		u->parent->right = v;
	if (v)
		v->parent = u->parent;
}

static void rb_erase_fixup(struct reasm_stream *s, struct reasm_seg *x, struct reasm_seg *xp)
{
	while (x != s->root && !rb_red(x)) {
		if (x == xp->left) {
			struct reasm_seg *w = xp->right;
			if (rb_red(w)) {
				w->red = false;
				xp->red = true;
				rb_rotate_left(s, xp);
				w = xp->right;
			}
			if (!rb_red(w->left) && !rb_red(w->right)) {
				w->red = true;
				x = xp;
				xp = x->parent;
				continue;
			}
			if (!rb_red(w->right)) {
				w->left->red = false;
				w->red = true;
				rb_rotate_right(s, w);
				w = xp->right;
			}
			w->red = xp->red;
			xp->red = false;
			if (w->right)
				w->right->red = false;
			rb_rotate_left(s, xp);
		} else {
			struct reasm_seg *w = xp->left;
			if (rb_red(w)) {
				w->red = false;
				xp->red = true;
				rb_rotate_right(s, xp);
				w = xp->left;
			}
			if (!rb_red(w->left) && !rb_red(w->right)) {
				w->red = true;
				x = xp;
				xp = x->parent;
				continue;
			}
			if (!rb_red(w->left)) {
				w->right->red = false;
				w->red = true;
				rb_rotate_left(s, w);
				w = xp->left;
			}
			w->red = xp->red;
			xp->red = false;
			if (w->left)
				w->left->red = false;
			rb_rotate_right(s, xp);
		}
		x = s->root;
		break;
	}
	if (x)
		x->red = false;
}

static void rb_erase(struct reasm_ctx *c, struct reasm_stream *s, struct reasm_seg *z)
{
	if (s->first == z)
		s->first = rb_next(c, z);
	struct reasm_seg *y = z, *x, *xp;
	bool y_red = y->red;
	if (!z->left) {
		x = z->right;
		xp = z->parent;
		rb_transplant(s, z, z->right);
	} else if (!z->right) {
		x = z->left;
		xp = z->parent;
		rb_transplant(s, z, z->left);
	} else {
		y = z->right;
		while (y->left)
			y = y->left;
		y_red = y->red;
		x = y->right;
		if (y->parent == z) {
			xp = y;
		} else {
			xp = y->parent;
			rb_transplant(s, y, y->right);
			y->right = z->right;
			y->right->parent = y;
		}
		rb_transplant(s, z, y);
		y->left = z->left;
		y->left->parent = y;
		y->red = z->red;
	}
	if (!y_red)
		rb_erase_fixup(s, x, xp);
}

/* The first piece whose end is after @p pos (it holds pos or starts after it). */
static struct reasm_seg *rb_find_end_after(struct reasm_ctx *c, const struct reasm_stream *s,
					   uint64_t pos)
{
	struct reasm_seg *best = NULL, *x = s->root;
	while (x) {
		c->work++;
		if (x->off + x->len > pos) {
			best = x;
			x = x->left;
		} else {
			x = x->right;
		}
	}
	return best;
}

/* ---- delivery ---- */

/* Offset of @p seq; may be negative (before the stream start). */
static inline int64_t seq_off(const struct reasm_stream *s, uint32_t seq)
{
	return (int64_t)s->next_off + (int32_t)(seq - s->next_seq);
}

static inline void advance(struct reasm_stream *s, uint64_t n)
{
	s->next_off += n;
	s->next_seq += (uint32_t)n;
}

static void emit_data(struct reasm_ctx *c, struct reasm_stream *s, const uint8_t *p, size_t n,
		      const struct reasm_meta *m, const struct reasm_out *out)
{
	c->stats->delivered_bytes += n;
	advance(s, n);
	out->data(out->u, p, n, m);
}

static void emit_gap(struct reasm_ctx *c, struct reasm_stream *s, uint64_t n, int64_t ts,
		     const struct reasm_out *out)
{
	c->stats->gaps++;
	c->stats->gap_bytes += n;
	advance(s, n);
	out->gap(out->u, n, ts);
}

static void seg_free(struct reasm_ctx *c, struct reasm_stream *s, struct reasm_seg *g)
{
	rb_erase(c, s, g);
	s->ooo_bytes -= g->len;
	s->n_segs--;
	c->used -= sizeof(*g) + g->len;
	mem_free(g);
}

/* Deliver the first piece (it starts at or before next_off) and free it. */
static void pop_head(struct reasm_ctx *c, struct reasm_stream *s, const struct reasm_out *out)
{
	struct reasm_seg *g = s->first;
	uint64_t end = g->off + g->len;
	if (end > s->next_off) {
		uint64_t skip = s->next_off - g->off;
		struct reasm_meta m = {.ts_ns = g->ts_ns, .ack = g->ack, .has_ack = g->has_ack};
		emit_data(c, s, g->data + skip, (size_t)(end - s->next_off), &m, out);
	}
	seg_free(c, s, g);
}

/* Deliver buffered pieces that became contiguous. */
static void drain(struct reasm_ctx *c, struct reasm_stream *s, const struct reasm_out *out)
{
	while (s->first && s->first->off <= s->next_off)
		pop_head(c, s, out);
}

/* Deliver everything buffered, holes as gaps. */
static void flush_all(struct reasm_ctx *c, struct reasm_stream *s, int64_t ts,
		      const struct reasm_out *out)
{
	while (s->first) {
		if (s->first->off > s->next_off)
			emit_gap(c, s, s->first->off - s->next_off, ts, out);
		pop_head(c, s, out);
	}
}

static uint64_t count_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t d = 0;
	if (!memcmp(a, b, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		d += a[i] != b[i];
	return d;
}

/* New bytes [start, end) at next_off: deliver them, buffered bytes win
 * where they overlap. */
static void deliver_merge(struct reasm_ctx *c, struct reasm_stream *s, const uint8_t *data,
			  uint64_t start, uint64_t end, const struct reasm_meta *m,
			  const struct reasm_out *out)
{
	uint64_t diff = 0;
	while (s->next_off < end) {
		struct reasm_seg *g = s->first;
		uint64_t pos = s->next_off;
		if (g && g->off <= pos) {
			uint64_t g_end = g->off + g->len;
			uint64_t ov_end = g_end < end ? g_end : end;
			if (ov_end > pos)
				diff += count_diff(g->data + (pos - g->off), data + (pos - start),
						   (size_t)(ov_end - pos));
			pop_head(c, s, out);
		} else {
			uint64_t lim = g && g->off < end ? g->off : end;
			emit_data(c, s, data + (pos - start), (size_t)(lim - pos), m, out);
		}
	}
	drain(c, s, out);
	if (diff) {
		c->stats->overlap_diff++;
		c->stats->overlap_diff_bytes += diff;
	}
}

static int insert_piece(struct reasm_ctx *c, struct reasm_stream *s, const uint8_t *p, uint64_t off,
			size_t n, const struct reasm_meta *m)
{
	struct reasm_seg *g = mem_alloc(sizeof(*g) + n);
	if (!g)
		return -ENOMEM;
	g->off = off;
	g->len = (uint32_t)n;
	g->ts_ns = m->ts_ns;
	g->ack = m->ack;
	g->has_ack = m->has_ack;
	memcpy(g->data, p, n);
	rb_insert(c, s, g);
	s->ooo_bytes += (uint32_t)n;
	s->n_segs++;
	c->used += sizeof(*g) + n;
	if (c->used > c->stats->buffered_peak)
		c->stats->buffered_peak = c->used;
	return 0;
}

/* Over a cap: stop waiting for the holes, deliver what there is. */
static void give_up_waiting(struct reasm_ctx *c, struct reasm_stream *s, const uint8_t *data,
			    uint64_t start, uint64_t end, const struct reasm_meta *m,
			    const struct reasm_out *out)
{
	int64_t ts = m->ts_ns;
	REASM_LOG(LOG_DEBUG, "cap hit: %u bytes in %u pieces buffered in the stream, %zu in all",
		  s->ooo_bytes, s->n_segs, c->used);
	flush_all(c, s, ts, out);
	if (end <= s->next_off)
		return;
	if (start < s->next_off) {
		data += s->next_off - start;
		start = s->next_off;
	} else if (start > s->next_off) {
		emit_gap(c, s, start - s->next_off, ts, out);
	}
	emit_data(c, s, data, (size_t)(end - start), m, out);
}

static void buffer_ooo(struct reasm_ctx *c, struct reasm_stream *s, const uint8_t *data,
		       uint64_t start, uint64_t end, const struct reasm_meta *m,
		       const struct reasm_out *out)
{
	size_t need = (size_t)(end - start);
	if (s->ooo_bytes + need > c->p.stream_cap ||
	    c->used + need + sizeof(struct reasm_seg) > c->p.memcap) {
		c->stats->memcap_hits++;
		give_up_waiting(c, s, data, start, end, m, out);
		return;
	}
	struct reasm_seg *g = rb_find_end_after(c, s, start);
	uint64_t pos = start, diff = 0;
	while (pos < end) {
		if (g && g->off <= pos) {
			/* g holds pos: the buffered bytes stay. */
			uint64_t g_end = g->off + g->len;
			uint64_t ov_end = g_end < end ? g_end : end;
			diff += count_diff(g->data + (pos - g->off), data + (pos - start),
					   (size_t)(ov_end - pos));
			pos = ov_end;
			g = rb_next(c, g);
			continue;
		}
		uint64_t lim = g && g->off < end ? g->off : end;
		if (s->n_segs >= c->p.max_segments) {
			c->stats->seg_cap_hits++;
			give_up_waiting(c, s, data, start, end, m, out);
			return;
		}
		/* A segment that fills several holes becomes several pieces, each
		 * with its own header: the check above counted one. */
		if (c->used + (size_t)(lim - pos) + sizeof(struct reasm_seg) > c->p.memcap ||
		    insert_piece(c, s, data + (pos - start), pos, (size_t)(lim - pos), m) < 0) {
			c->stats->memcap_hits++;
			give_up_waiting(c, s, data, start, end, m, out);
			return;
		}
		pos = lim;
	}
	if (diff) {
		c->stats->overlap_diff++;
		c->stats->overlap_diff_bytes += diff;
	}
}

void reasm_segment(struct reasm_ctx *c, struct reasm_stream *s, uint32_t seq, const uint8_t *data,
		   size_t len, const struct reasm_meta *m, const struct reasm_out *out)
{
	if (!len)
		return;
	c->stats->segments++;
	if (!s->started)
		reasm_stream_start(s, seq);
	int64_t start = seq_off(s, seq);
	int64_t end = start + (int64_t)len;
	if (s->has_fin && end > (int64_t)s->fin_off) {
		int64_t keep_end = start > (int64_t)s->fin_off ? start : (int64_t)s->fin_off;
		c->stats->after_fin_bytes += (uint64_t)(end - keep_end);
		end = keep_end;
		if (end <= start)
			return;
	}
	int64_t next = (int64_t)s->next_off;
	if (end <= next) {
		c->stats->retrans_segments++;
		c->stats->retrans_bytes += (uint64_t)(end > start ? end - start : 0);
		return;
	}
	if (start < next) {
		c->stats->retrans_bytes += (uint64_t)(next - start);
		data += next - start;
		start = next;
	}
	if ((uint64_t)(start - next) > c->p.window) {
		c->stats->out_of_window++;
		return;
	}
	if (start == next) {
		c->stats->in_order++;
		deliver_merge(c, s, data, (uint64_t)start, (uint64_t)end, m, out);
	} else {
		c->stats->out_of_order++;
		buffer_ooo(c, s, data, (uint64_t)start, (uint64_t)end, m, out);
	}
}

bool reasm_seq_offset(const struct reasm_stream *s, uint32_t seq, uint64_t *off)
{
	if (!s->started)
		return false;
	int64_t o = seq_off(s, seq);
	if (o < 0)
		return false;
	*off = (uint64_t)o;
	return true;
}

void reasm_fin(struct reasm_stream *s, uint32_t seq)
{
	if (!s->started)
		reasm_stream_start(s, seq);
	int64_t off = seq_off(s, seq);
	if (s->has_fin && s->fin_off >= s->next_off)
		return; /* the first FIN position stays */
	s->fin_off = off < (int64_t)s->next_off ? s->next_off : (uint64_t)off;
	s->has_fin = true;
}

void reasm_ack(struct reasm_ctx *c, struct reasm_stream *s, uint32_t ack, int64_t ts_ns,
	       const struct reasm_out *out)
{
	if (!s->started)
		return;
	int64_t off = seq_off(s, ack);
	if (s->has_fin && off > (int64_t)s->fin_off)
		off = (int64_t)s->fin_off; /* the FIN itself takes one sequence number */
	if (off <= (int64_t)s->next_off || (uint64_t)off - s->next_off > c->p.window)
		return;
	uint64_t target = (uint64_t)off;
	while (s->next_off < target) {
		struct reasm_seg *g = s->first;
		if (g && g->off <= s->next_off) {
			pop_head(c, s, out);
			continue;
		}
		uint64_t lim = g && g->off < target ? g->off : target;
		c->stats->gaps_by_ack++;
		emit_gap(c, s, lim - s->next_off, ts_ns, out);
	}
	drain(c, s, out);
}

void reasm_flush(struct reasm_ctx *c, struct reasm_stream *s, int64_t ts_ns,
		 const struct reasm_out *out)
{
	flush_all(c, s, ts_ns, out);
	if (s->has_fin && s->fin_off > s->next_off)
		emit_gap(c, s, s->fin_off - s->next_off, ts_ns, out);
}

void reasm_fin_cancel(struct reasm_stream *s)
{
	s->has_fin = false;
	s->fin_off = 0;
}

bool reasm_complete(const struct reasm_stream *s)
{
	return s->has_fin && s->next_off >= s->fin_off;
}

void reasm_stream_release(struct reasm_ctx *c, struct reasm_stream *s)
{
	while (s->first)
		seg_free(c, s, s->first);
	reasm_stream_init(s);
}
