/* SPDX-License-Identifier: MIT */
/*
 * h2 - HTTP/2 frame parser and stream tracker for one connection (see h2.h).
 *
 * References: RFC 9113 §4 (frames: 9-byte header, 24-bit length), §5.1
 * (stream states), §6 (frame definitions: which may use stream 0, fixed
 * lengths, padding), §6.10 (CONTINUATION follows HEADERS/PUSH_PROMISE with
 * nothing in between), §8.3 (pseudo-header fields); RFC 7541 (HPACK,
 * decoded by nghttp2_hd_inflate_hd2(), fed in pieces); RFC 7540 §3.2
 * (Upgrade: h2c).
 *
 * Frames are processed as their bytes arrive, never buffered whole: a
 * payload is [prefix][content][padding] where the prefix (pad length,
 * priority fields, promised stream id) is collected in a few bytes, DATA
 * content goes straight to the stream's capped body and header block
 * content straight to the HPACK inflater (which keeps partial fields
 * itself). Control frames (SETTINGS, RST_STREAM, GOAWAY, PING, ...) are
 * kept up to H2_CTRL_MAX bytes and acted on at their end; the rest of a
 * longer payload (GOAWAY debug data) is skipped. So a 16 MiB frame costs
 * no more memory than a small one, and a frame split over any number of
 * segments is parsed the same.
 *
 * Streams: one struct per open stream in a small table (a linear scan,
 * with the last stream found cached: frames of one stream come in runs);
 * header and trailer field lines are stored as offsets into one capped
 * byte buffer per message and turned into store_header arrays when the
 * stream is emitted. A stream is emitted when both sides ended it
 * (END_STREAM), when it is reset, when a GOAWAY says it was not
 * processed, or when the connection ends.
 */
#include "capture/h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <string.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"

#define H2_LOG(lvl, ...) LOG_MSG(lvl, "h2", __VA_ARGS__)

#define H2_CTRL_MAX	      256	  /* control payload bytes kept */
#define H2_TABLE_MAX	      (64u << 10) /* largest HPACK table we allow */
#define H2_FIELD_OVERHEAD     32	  /* RFC 7541 §4.1: per-field accounting */
#define H2_DEFAULT_MAX_HEADER (64u << 10)
#define H2_DEFAULT_MAX_BODY   (1u << 20)
#define H2_DEFAULT_STREAMS    1024
#define H2_FRAME_MIN	      16384u	/* SETTINGS_MAX_FRAME_SIZE: initial, least */
#define H2_FRAME_MAX	      16777215u /* ... largest (RFC 9113 §6.5.2) */

enum h2_type {
	T_DATA = 0,
	T_HEADERS = 1,
	T_PRIORITY = 2,
	T_RST_STREAM = 3,
	T_SETTINGS = 4,
	T_PUSH_PROMISE = 5,
	T_PING = 6,
	T_GOAWAY = 7,
	T_WINDOW_UPDATE = 8,
	T_CONTINUATION = 9,
};

enum {
	FL_END_STREAM = 0x1,
	FL_ACK = 0x1,
	FL_END_HEADERS = 0x4,
	FL_PADDED = 0x8,
	FL_PRIORITY = 0x20,
};

enum { R_CLIENT = 0, R_SERVER = 1 };

const struct ctr_desc h2_ctr_descs[] = {
    CTR_DESC(struct h2_stats, connections, "connections tracked as HTTP/2 (h2c)"),
    CTR_DESC(struct h2_stats, upgrades, "HTTP/2 connections upgraded from HTTP/1.1 (Upgrade: h2c)"),
    CTR_DESC(struct h2_stats, frames, "HTTP/2 frames parsed"),
    CTR_DESC(struct h2_stats, bad_frames,
	     "HTTP/2 frames breaking RFC 9113's rules, oversized ones included (skipped)"),
    CTR_DESC(struct h2_stats, unknown_frames, "HTTP/2 frames of unknown types (ignored)"),
    CTR_DESC(struct h2_stats, hpack_errors,
	     "HTTP/2 header blocks that did not decode (the direction stops)"),
    CTR_DESC(struct h2_stats, streams, "HTTP/2 streams opened"),
    CTR_DESC(struct h2_stats, streams_over_cap,
	     "HTTP/2 streams not tracked: more open at once than the cap"),
    CTR_DESC(struct h2_stats, sessions_emitted, "HTTP/2 streams emitted as sessions"),
    CTR_DESC(struct h2_stats, sessions_complete, "... of which whole on both sides, no flag"),
    CTR_DESC(struct h2_stats, no_response, "HTTP/2 streams without a response"),
    CTR_DESC(struct h2_stats, rst_streams, "RST_STREAM frames"),
    CTR_DESC(struct h2_stats, goaways, "GOAWAY frames"),
    CTR_DESC(struct h2_stats, goaway_streams, "streams above a GOAWAY's last stream id"),
    CTR_DESC(struct h2_stats, push_promises, "PUSH_PROMISE frames (pushed streams not recorded)"),
    CTR_DESC(struct h2_stats, interim_responses, "HTTP/2 1xx header blocks (skipped)"),
    CTR_DESC(struct h2_stats, unknown_stream, "HTTP/2 frames for streams not tracked"),
    CTR_DESC(struct h2_stats, gaps, "gaps in HTTP/2 connections"),
    CTR_DESC(struct h2_stats, lost_bytes, "HTTP/2 bytes not parsed after a gap or error"),
    CTR_DESC(struct h2_stats, body_truncated, "HTTP/2 bodies cut at the cap"),
    CTR_DESC(struct h2_stats, header_too_large, "HTTP/2 header lists over the cap"),
    CTR_DESC(struct h2_stats, settings, "SETTINGS frames"),
    CTR_DESC(struct h2_stats, window_updates, "WINDOW_UPDATE frames (flow control)"),
    CTR_DESC(struct h2_stats, pings, "PING frames"),
    CTR_DESC(struct h2_stats, incomplete, "HTTP/2 streams cut by the connection's end"),
    CTR_DESC(struct h2_stats, client_cancelled,
	     "HTTP/2 streams the client cancelled (RST_STREAM), answered or not: not data lost"),
};
const size_t h2_ctr_count = sizeof(h2_ctr_descs) / sizeof(h2_ctr_descs[0]);

/* A field line: offsets into its message's bytes. */
struct h2_field {
	uint32_t no, nl, vo, vl;
};

struct h2_msg {
	bool present;	   /* header fields seen */
	bool headers_done; /* the header block ended: further blocks are trailers */
	bool ended;	   /* END_STREAM */
	bool too_large;
	bool truncated;
	uint8_t vmaj, vmin;
	uint16_t status;
	uint32_t mo, ml, to, tl; /* method, target: offsets into bytes */
	struct dbuf bytes;	 /* names and values */
	size_t accounted;	 /* header list size so far (RFC 7541 §4.1) */
	struct h2_field *f;
	uint32_t nf, cf;
	uint32_t n_headers; /* f[0..n_headers) headers, the rest trailers */
	struct dbuf body;
	uint64_t body_len;
	int64_t ts_first, ts_last;
};

struct h2_stream {
	uint32_t id;
	uint32_t index;
	uint32_t flags;
	int64_t ts_reset;    /* when an RST_STREAM reset it; 0: not */
	uint32_t reset_code; /* ... its error code */
	struct h2_msg m[2];  /* R_CLIENT: request, R_SERVER: response */
};

/* What the header block being decoded belongs to. */
enum blk_target {
	BLK_DISCARD = 0, /* decoded for the HPACK table only */
	BLK_HEADERS,
	BLK_TRAILERS,
};

struct h2_dir {
	nghttp2_hd_inflater *inf;
	size_t table_max;
	uint32_t max_frame; /* largest frame this side may send: the peer's setting */
	uint32_t preface;   /* client: preface bytes still expected */
	bool dead;	    /* lost its place: bytes are counted, not parsed */
	uint32_t dead_flag; /* why: STORE_F_GAP or STORE_F_PARSE_ERROR */
	/* the frame being read */
	uint8_t fh[9];
	uint8_t fh_len;
	bool in_frame;
	bool bad;
	uint8_t type, flags;
	uint32_t len, sid;
	uint32_t got;	 /* payload bytes consumed */
	uint32_t prefix; /* prefix bytes */
	uint32_t pad;	 /* padding bytes (known once the prefix is read) */
	uint8_t pre[9];
	uint8_t ctrl[H2_CTRL_MAX];
	uint32_t ctrl_len;
	/* the header block (HEADERS/PUSH_PROMISE + CONTINUATION) */
	bool in_block;
	uint32_t block_sid;
	bool block_end_stream;
	enum blk_target block_to;
	uint32_t block_nf;	/* rollback point for an interim response */
	size_t block_bytes;	/* ... */
	size_t block_accounted; /* ... */
	bool block_status_1xx;
};

struct h2_conn {
	const struct h2_params *prm;
	struct h2_stats *st;
	struct txn_conn_info info;
	bool swapped;
	bool ended;
	bool goaway;
	size_t max_header, max_body;
	uint32_t max_streams;
	struct h2_dir dir[2];
	struct h2_stream **open;
	uint32_t n_open;
	struct h2_stream *last; /* lookup cache */
	uint32_t last_client_id;
	uint32_t next_index;
	struct store_header *scratch; /* emission */
	size_t scratch_cap;
};

static const uint8_t h2_empty[1];

/* ---- allocation through common/mem.h (fault injection reaches nghttp2) ---- */

static void *h2_malloc(size_t size, void *ud)
{
	(void)ud;
	return mem_alloc(size);
}
static void h2_free(void *ptr, void *ud)
{
	(void)ud;
	mem_free(ptr);
}
static void *h2_calloc(size_t n, size_t size, void *ud)
{
	(void)ud;
	return mem_calloc(n, size);
}
static void *h2_realloc(void *ptr, size_t size, void *ud)
{
	(void)ud;
	return mem_realloc(ptr, size);
}
static nghttp2_mem h2_mem = {NULL, h2_malloc, h2_free, h2_calloc, h2_realloc};

bool h2_is_preface(const uint8_t *d, size_t n)
{
	if (n > H2_PREFACE_LEN)
		n = H2_PREFACE_LEN;
	return n >= 4 && memcmp(d, H2_PREFACE, n) == 0;
}

bool h2_is_server_preface(const uint8_t *d, size_t n)
{
	if (n < 9)
		return false;
	uint32_t len = (uint32_t)d[0] << 16 | (uint32_t)d[1] << 8 | d[2];
	return d[3] == T_SETTINGS && d[4] == 0 && !(d[5] | d[6] | d[7] | (d[8] & 0xff)) &&
	       len % 6 == 0 && len <= 6 * 64;
}

static uint32_t rd24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */
/* ------------------------------------------------------------------ */

static void msg_init(struct h2_conn *c, struct h2_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->vmaj = 2;
	dbuf_init(&m->bytes, c->max_header + 64);
	dbuf_init(&m->body, c->max_body);
}

static void msg_release(struct h2_msg *m)
{
	dbuf_release(&m->bytes);
	dbuf_release(&m->body);
	mem_free(m->f);
}

static size_t stream_mem(const struct h2_stream *s)
{
	size_t n = sizeof(*s);
	for (int r = 0; r < 2; r++)
		n += s->m[r].bytes.cap + s->m[r].body.cap + s->m[r].cf * sizeof(struct h2_field);
	return n;
}

static struct h2_stream *stream_find(struct h2_conn *c, uint32_t id)
{
	if (c->last && c->last->id == id)
		return c->last;
	for (uint32_t i = 0; i < c->n_open; i++)
		if (c->open[i]->id == id)
			return c->last = c->open[i];
	return NULL;
}

static struct h2_stream *stream_open(struct h2_conn *c, uint32_t id)
{
	if (c->n_open >= c->max_streams) {
		c->st->streams_over_cap++;
		return NULL;
	}
	if (!c->open) {
		c->open = mem_calloc(c->max_streams, sizeof(*c->open));
		if (!c->open)
			return NULL;
	}
	struct h2_stream *s = mem_calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->index = c->next_index++;
	/* a direction that lost its place will not show this stream's part:
	 * the stream has the loss's flag, as those open at the loss have */
	for (int r = 0; r < 2; r++)
		if (c->dir[r].dead)
			s->flags |= c->dir[r].dead_flag;
	msg_init(c, &s->m[R_CLIENT]);
	msg_init(c, &s->m[R_SERVER]);
	c->open[c->n_open++] = s;
	c->st->streams++;
	return c->last = s;
}

static void stream_close(struct h2_conn *c, struct h2_stream *s)
{
	for (uint32_t i = 0; i < c->n_open; i++)
		if (c->open[i] == s) {
			c->open[i] = c->open[--c->n_open];
			break;
		}
	if (c->last == s)
		c->last = NULL;
	msg_release(&s->m[R_CLIENT]);
	msg_release(&s->m[R_SERVER]);
	mem_free(s);
}

static struct store_slice msg_slice(const struct h2_msg *m, uint32_t off, uint32_t len)
{
	if (!len || !m->bytes.data)
		return (struct store_slice){h2_empty, 0};
	return (struct store_slice){m->bytes.data + off, len};
}

/* Room for @p n store_header entries in the emission scratch. */
static int scratch_reserve(struct h2_conn *c, size_t n)
{
	if (n <= c->scratch_cap)
		return 0;
	size_t cap = c->scratch_cap ? c->scratch_cap : 32;
	while (cap < n)
		cap *= 2;
	struct store_header *h = mem_realloc(c->scratch, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	c->scratch = h;
	c->scratch_cap = cap;
	return 0;
}

/* The store view of @p m; its field lines go to @p h. */
static void msg_view(const struct h2_msg *m, struct store_message *out, struct store_header *h)
{
	memset(out, 0, sizeof(*out));
	out->present = m->present;
	if (!m->present)
		return;
	for (uint32_t i = 0; i < m->nf; i++) {
		h[i].name = msg_slice(m, m->f[i].no, m->f[i].nl);
		h[i].value = msg_slice(m, m->f[i].vo, m->f[i].vl);
	}
	out->headers = m->n_headers ? h : NULL;
	out->n_headers = m->n_headers;
	out->trailers = m->nf > m->n_headers ? h + m->n_headers : NULL;
	out->n_trailers = m->nf - m->n_headers;
	out->method = msg_slice(m, m->mo, m->ml);
	out->target = msg_slice(m, m->to, m->tl);
	out->status = m->status;
	out->version_major = m->vmaj;
	out->version_minor = m->vmin;
	out->body = m->body.len ? (struct store_slice){m->body.data, m->body.len}
				: (struct store_slice){h2_empty, 0};
	out->body_len = m->body_len;
	out->truncated = m->truncated;
}

static void session_base(const struct h2_conn *c, const struct h2_stream *s,
			 struct store_session *out)
{
	memset(out, 0, sizeof(*out));
	out->ip_version = c->info.ip_version;
	out->src = c->swapped ? c->info.server : c->info.client;
	out->dst = c->swapped ? c->info.client : c->info.server;
	out->vlan = c->info.vlan;
	out->lane.ptr = h2_empty;
	out->conn_id = c->info.conn_id;
	out->conn_index = s->index;
	out->proto = STORE_PROTO_H2C;
	out->stream_id = s->id;
}

/* The request of @p s ended: tell the on_request hook (mirroring). */
static void stream_announce(struct h2_conn *c, struct h2_stream *s)
{
	if (!c->prm->on_request)
		return;
	const struct h2_msg *q = &s->m[R_CLIENT];
	if (scratch_reserve(c, q->nf))
		return;
	struct store_session out;
	session_base(c, s, &out);
	msg_view(q, &out.req, c->scratch);
	out.ts_req_first_ns = q->ts_first;
	out.ts_req_last_ns = q->ts_last;
	out.flags = s->flags | (c->info.midstream ? STORE_F_MIDSTREAM : 0);
	c->prm->on_request(c->prm->ctx, &out);
}

/* Emit @p s with @p flags added, and forget it. */
static void stream_emit(struct h2_conn *c, struct h2_stream *s, uint32_t flags)
{
	struct h2_msg *q = &s->m[R_CLIENT], *r = &s->m[R_SERVER];
	flags |= s->flags;
	if (c->info.midstream)
		flags |= STORE_F_MIDSTREAM;
	if (!r->present)
		flags |= STORE_F_NO_RESPONSE;
	if ((q->present && !q->ended) || (r->present && !r->ended))
		flags |= STORE_F_INCOMPLETE;
	if (q->too_large || r->too_large)
		flags |= STORE_F_PARSE_ERROR;
	struct store_session out;
	session_base(c, s, &out);
	if (scratch_reserve(c, (size_t)q->nf + r->nf) == 0) {
		msg_view(q, &out.req, c->scratch);
		msg_view(r, &out.resp, c->scratch ? c->scratch + q->nf : NULL);
	} else {
		flags |= STORE_F_PARSE_ERROR; /* out of memory: the fields are lost */
		struct h2_msg bare = *q;
		bare.nf = bare.n_headers = 0;
		msg_view(&bare, &out.req, NULL);
	}
	out.ts_req_first_ns = q->ts_first;
	out.ts_req_last_ns = q->ts_last;
	if (r->present) {
		out.ts_resp_first_ns = r->ts_first;
		out.ts_resp_last_ns = r->ts_last;
	}
	out.flags = flags;
	out.ts_reset_ns = s->ts_reset;
	out.reset_code = s->reset_code;
	c->st->sessions_emitted++;
	if (!flags)
		c->st->sessions_complete++;
	if (store_session_client_cancelled(&out))
		c->st->client_cancelled++; /* its client's choice, no loss */
	else if (flags & STORE_F_NO_RESPONSE)
		c->st->no_response++;
	c->prm->emit(c->prm->ctx, &out);
	stream_close(c, s);
}

/* Both sides done: emit. */
static void stream_check_done(struct h2_conn *c, struct h2_stream *s)
{
	if (s->m[R_CLIENT].ended && s->m[R_SERVER].ended)
		stream_emit(c, s, 0);
}

/* ------------------------------------------------------------------ */
/* Header blocks                                                       */
/* ------------------------------------------------------------------ */

static bool name_is(const nghttp2_nv *nv, const char *lit)
{
	size_t n = strlen(lit);
	return nv->namelen == n && memcmp(nv->name, lit, n) == 0;
}

static void on_field(struct h2_conn *c, struct h2_dir *dd, int role, const nghttp2_nv *nv)
{
	if (dd->block_to == BLK_DISCARD)
		return;
	struct h2_stream *s = stream_find(c, dd->block_sid);
	if (!s)
		return;
	struct h2_msg *m = &s->m[role];
	if (m->too_large)
		return;
	size_t add = nv->namelen + nv->valuelen + H2_FIELD_OVERHEAD;
	if (m->accounted + add > c->max_header) {
		m->too_large = true;
		c->st->header_too_large++;
		return;
	}
	if (m->nf == m->cf) {
		uint32_t cap = m->cf ? m->cf * 2 : 16;
		struct h2_field *f = mem_realloc(m->f, cap * sizeof(*f));
		if (!f) {
			m->too_large = true;
			return;
		}
		m->f = f;
		m->cf = cap;
	}
	struct h2_field *f = &m->f[m->nf];
	f->no = (uint32_t)m->bytes.len;
	f->nl = (uint32_t)nv->namelen;
	if (dbuf_append(&m->bytes, nv->name, nv->namelen) ||
	    dbuf_append(&m->bytes, nv->value, nv->valuelen)) {
		m->too_large = true;
		c->st->header_too_large++;
		return;
	}
	f->vo = f->no + f->nl;
	f->vl = (uint32_t)nv->valuelen;
	m->nf++;
	m->accounted += add;
	if (dd->block_to != BLK_HEADERS)
		return;
	if (role == R_CLIENT && name_is(nv, ":method")) {
		m->mo = f->vo;
		m->ml = f->vl;
	} else if (role == R_CLIENT && name_is(nv, ":path")) {
		m->to = f->vo;
		m->tl = f->vl;
	} else if (role == R_SERVER && name_is(nv, ":status")) {
		unsigned v = 0;
		for (size_t i = 0; i < nv->valuelen && i < 3; i++)
			v = nv->valuelen == 3 && nv->value[i] >= '0' && nv->value[i] <= '9'
				? v * 10 + (unsigned)(nv->value[i] - '0')
				: 0;
		m->status = (uint16_t)v;
		dd->block_status_1xx = v >= 100 && v < 200;
	}
}

static void dir_kill(struct h2_conn *c, struct h2_dir *dd, uint32_t flag)
{
	if (dd->in_block && dd->block_to == BLK_HEADERS) {
		/* Keep what decoded of the header block as headers. A response
		 * head without a final :status is no response (as an HTTP/1.x
		 * response whose status line was lost): its fields are dropped,
		 * and so is an interim one's block. */
		struct h2_stream *s = stream_find(c, dd->block_sid);
		int role = dd == &c->dir[R_SERVER];
		struct h2_msg *m = s ? &s->m[role] : NULL;
		if (m && role == R_SERVER && (!m->status || dd->block_status_1xx)) {
			m->nf = dd->block_nf;
			m->bytes.len = dd->block_bytes;
			m->accounted = dd->block_accounted;
			m->status = 0;
			if (!m->nf && !m->body_len)
				m->present = false;
		}
		if (m)
			m->n_headers = m->nf;
	}
	dd->dead = true;
	dd->dead_flag = flag;
	dd->in_frame = false;
	dd->in_block = false;
	for (uint32_t i = 0; i < c->n_open; i++)
		c->open[i]->flags |= flag;
}

/* Feed header block bytes to the inflater; @p final at the block's end. */
static int inflate(struct h2_conn *c, struct h2_dir *dd, int role, const uint8_t *in, size_t inlen,
		   bool final)
{
	for (;;) {
		nghttp2_nv nv;
		int fl = 0;
		ssize_t rv = nghttp2_hd_inflate_hd2(dd->inf, &nv, &fl, in, inlen, final);
		if (rv < 0)
			return -EBADMSG;
		in += rv;
		inlen -= (size_t)rv;
		if (fl & NGHTTP2_HD_INFLATE_EMIT)
			on_field(c, dd, role, &nv);
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(dd->inf);
			return inlen ? -EBADMSG : 0;
		}
		if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && inlen == 0)
			return 0;
	}
}

/* A HEADERS frame starts a block: find what it belongs to. */
static void block_begin(struct h2_conn *c, struct h2_dir *dd, int role, int64_t ts)
{
	dd->in_block = true;
	dd->block_sid = dd->sid;
	dd->block_end_stream = dd->type == T_HEADERS && (dd->flags & FL_END_STREAM);
	dd->block_to = BLK_DISCARD;
	dd->block_status_1xx = false;
	if (dd->type != T_HEADERS)
		return; /* PUSH_PROMISE: decoded for the table only */
	struct h2_stream *s = stream_find(c, dd->sid);
	if (!s && role == R_CLIENT && (dd->sid & 1) && dd->sid > c->last_client_id) {
		c->last_client_id = dd->sid;
		s = stream_open(c, dd->sid);
	}
	if (!s) {
		c->st->unknown_stream++;
		return;
	}
	struct h2_msg *m = &s->m[role];
	if (m->ended) {
		c->st->bad_frames++; /* HEADERS after END_STREAM */
		return;
	}
	dd->block_to = m->headers_done ? BLK_TRAILERS : BLK_HEADERS;
	dd->block_nf = m->nf;
	dd->block_bytes = m->bytes.len;
	dd->block_accounted = m->accounted;
	if (!m->present) {
		m->present = true;
		m->ts_first = ts;
	}
	m->ts_last = ts;
}

/* The block ended (END_HEADERS seen and decoded). */
static void block_end(struct h2_conn *c, struct h2_dir *dd, int role, int64_t ts)
{
	dd->in_block = false;
	if (dd->block_to == BLK_DISCARD)
		return;
	struct h2_stream *s = stream_find(c, dd->block_sid);
	if (!s)
		return;
	struct h2_msg *m = &s->m[role];
	m->ts_last = ts;
	if (dd->block_to == BLK_HEADERS && role == R_SERVER && dd->block_status_1xx) {
		/* interim response: forget it, the final one follows */
		c->st->interim_responses++;
		m->nf = dd->block_nf;
		m->bytes.len = dd->block_bytes;
		m->accounted = dd->block_accounted;
		m->status = 0;
		if (!m->nf)
			m->present = false;
		return;
	}
	if (dd->block_to == BLK_HEADERS) {
		m->headers_done = true;
		m->n_headers = m->nf;
	}
	if (dd->block_end_stream) {
		m->ended = true;
		if (role == R_CLIENT)
			stream_announce(c, s);
		stream_check_done(c, s);
	}
}

/* ------------------------------------------------------------------ */
/* Frames                                                              */
/* ------------------------------------------------------------------ */

/* Prefix bytes of the frame in @p dd (pad length, priority, promised id). */
static uint32_t frame_prefix(const struct h2_dir *dd)
{
	uint32_t n = 0;
	switch (dd->type) {
	case T_DATA:
		n = (dd->flags & FL_PADDED) ? 1 : 0;
		break;
	case T_HEADERS:
		n = ((dd->flags & FL_PADDED) ? 1 : 0) + ((dd->flags & FL_PRIORITY) ? 5 : 0);
		break;
	case T_PUSH_PROMISE:
		n = ((dd->flags & FL_PADDED) ? 1 : 0) + 4;
		break;
	default:
		break;
	}
	return n;
}

static bool is_ctrl(uint8_t type)
{
	return type != T_DATA && type != T_HEADERS && type != T_PUSH_PROMISE &&
	       type != T_CONTINUATION;
}

/* A frame header is complete: check it and get ready for its payload. */
static void frame_begin(struct h2_conn *c, struct h2_dir *dd, int role, int64_t ts)
{
	dd->len = rd24(dd->fh);
	dd->type = dd->fh[3];
	dd->flags = dd->fh[4];
	dd->sid = rd32(dd->fh + 5) & 0x7fffffffu;
	dd->got = 0;
	dd->pad = 0;
	dd->ctrl_len = 0;
	dd->in_frame = true;
	dd->prefix = frame_prefix(dd);
	c->st->frames++;
	bool bad = false;
	if (dd->in_block && (dd->type != T_CONTINUATION || dd->sid != dd->block_sid)) {
		/* §6.10: nothing may come between a block's frames. The block is
		 * lost, and with it the HPACK table's state. */
		c->st->bad_frames++;
		c->st->hpack_errors++;
		struct h2_stream *s = stream_find(c, dd->block_sid);
		if (s)
			s->flags |= STORE_F_PARSE_ERROR;
		dir_kill(c, dd, STORE_F_PARSE_ERROR);
		return;
	}
	/* §4.2: longer than the receiver's SETTINGS_MAX_FRAME_SIZE allows, of
	 * any type (garbage taken for a frame header mostly is): skipped */
	if (dd->len > dd->max_frame) {
		c->st->bad_frames++;
		dd->bad = true;
		return;
	}
	switch (dd->type) {
	case T_DATA:
	case T_HEADERS:
	case T_PUSH_PROMISE:
	case T_RST_STREAM:
		bad = dd->sid == 0 || dd->len < dd->prefix ||
		      (dd->type == T_RST_STREAM && dd->len != 4);
		break;
	case T_CONTINUATION:
		bad = !dd->in_block;
		break;
	case T_PRIORITY:
		bad = dd->sid == 0 || dd->len != 5;
		break;
	case T_SETTINGS:
		bad = dd->sid != 0 || dd->len % 6 != 0 || ((dd->flags & FL_ACK) && dd->len);
		break;
	case T_PING:
		bad = dd->sid != 0 || dd->len != 8;
		break;
	case T_GOAWAY:
		bad = dd->sid != 0 || dd->len < 8;
		break;
	case T_WINDOW_UPDATE:
		bad = dd->len != 4;
		break;
	default:
		c->st->unknown_frames++;
		break;
	}
	dd->bad = bad;
	if (bad) {
		c->st->bad_frames++;
		return;
	}
	if (dd->type == T_HEADERS || dd->type == T_PUSH_PROMISE)
		block_begin(c, dd, role, ts);
	if (dd->type == T_PUSH_PROMISE)
		c->st->push_promises++;
}

static void on_settings(struct h2_conn *c, struct h2_dir *dd, int role)
{
	c->st->settings++;
	if (dd->flags & FL_ACK)
		return;
	/* Settings a side sends govern what the other side's encoder may use. */
	struct h2_dir *peer = &c->dir[!role];
	for (uint32_t i = 0; i + 6 <= dd->ctrl_len; i += 6) {
		uint16_t id = (uint16_t)(dd->ctrl[i] << 8 | dd->ctrl[i + 1]);
		uint32_t v = rd32(dd->ctrl + i + 2);
		if (id == 5 /* SETTINGS_MAX_FRAME_SIZE */) {
			/* never lower: frames sent before the ACK may be larger */
			if (v <= H2_FRAME_MAX && v > peer->max_frame)
				peer->max_frame = v;
			continue;
		}
		if (id != 1 /* SETTINGS_HEADER_TABLE_SIZE */)
			continue;
		if (v > H2_TABLE_MAX)
			v = H2_TABLE_MAX;
		/* Never lower: a block encoded before the encoder saw the new
		 * value must still decode; lowering is signalled in HPACK. */
		if (v > peer->table_max && peer->inf &&
		    nghttp2_hd_inflate_change_table_size(peer->inf, v) == 0)
			peer->table_max = v;
	}
}

static void on_rst(struct h2_conn *c, struct h2_dir *dd, int role, int64_t ts)
{
	c->st->rst_streams++;
	struct h2_stream *s = stream_find(c, dd->sid);
	if (!s) {
		c->st->unknown_stream++;
		return;
	}
	/* Any code resets the stream. A stream both sides had ended was
	 * emitted already, so even NO_ERROR, sent after a whole response to
	 * stop the client's upload (RFC 9113 §8.1), cuts a request short:
	 * stream_emit() flags it incomplete, as an HTTP/1.x request body cut
	 * by a reset. */
	s->flags |= STORE_F_RESET;
	s->ts_reset = ts; /* replay cancels a client's reset at this time */
	s->reset_code = rd32(dd->ctrl);
	if (role == R_SERVER) /* not a client that gave up: replay does not cancel it */
		s->flags |= STORE_F_SERVER_RESET;
	if (s->m[R_CLIENT].present && !s->m[R_CLIENT].ended)
		stream_announce(c, s);
	stream_emit(c, s, 0);
}

static void on_goaway(struct h2_conn *c, struct h2_dir *dd, int role)
{
	c->st->goaways++;
	c->goaway = true;
	if (role != R_SERVER)
		return;
	uint32_t last = rd32(dd->ctrl) & 0x7fffffffu;
	/* Client streams above last were not processed (RFC 9113 §6.8). */
	for (uint32_t i = 0; i < c->n_open;) {
		struct h2_stream *s = c->open[i];
		if ((s->id & 1) && s->id > last) {
			c->st->goaway_streams++;
			stream_emit(c, s, STORE_F_GOAWAY);
			continue; /* the table moved the last entry here */
		}
		i++;
	}
}

/* The frame's payload is all consumed. */
static void frame_end(struct h2_conn *c, struct h2_dir *dd, int role, int64_t ts)
{
	dd->in_frame = false;
	dd->fh_len = 0;
	if (dd->bad)
		return;
	switch (dd->type) {
	case T_DATA: {
		struct h2_stream *s = stream_find(c, dd->sid);
		if (s && (dd->flags & FL_END_STREAM)) {
			s->m[role].ended = true;
			s->m[role].ts_last = ts;
			if (role == R_CLIENT)
				stream_announce(c, s);
			stream_check_done(c, s);
		}
		break;
	}
	case T_HEADERS:
	case T_PUSH_PROMISE:
	case T_CONTINUATION:
		if (dd->flags & FL_END_HEADERS) {
			static const uint8_t none[1];
			if (inflate(c, dd, role, none, 0, true) < 0) {
				c->st->hpack_errors++;
				struct h2_stream *s = stream_find(c, dd->block_sid);
				if (s)
					s->flags |= STORE_F_PARSE_ERROR;
				dir_kill(c, dd, STORE_F_PARSE_ERROR);
				return;
			}
			block_end(c, dd, role, ts);
		}
		break;
	case T_SETTINGS:
		on_settings(c, dd, role);
		break;
	case T_RST_STREAM:
		on_rst(c, dd, role, ts);
		break;
	case T_GOAWAY:
		on_goaway(c, dd, role);
		break;
	case T_WINDOW_UPDATE:
		c->st->window_updates++;
		break;
	case T_PING:
		c->st->pings++;
		break;
	default:
		break;
	}
}

/* DATA content bytes for the frame's stream. */
static void data_content(struct h2_conn *c, struct h2_dir *dd, int role, const uint8_t *d, size_t n,
			 int64_t ts)
{
	struct h2_stream *s = stream_find(c, dd->sid);
	if (!s) {
		if (dd->got == dd->prefix) /* count each frame once */
			c->st->unknown_stream++;
		return;
	}
	struct h2_msg *m = &s->m[role];
	if (!m->present) {
		/* DATA before HEADERS: a protocol error; keep the bytes, flag it */
		s->flags |= STORE_F_PARSE_ERROR;
		m->present = true;
		m->ts_first = ts;
	}
	m->ts_last = ts;
	m->body_len += n;
	size_t room = m->body.max - m->body.len;
	size_t k = n < room ? n : room;
	if (k && dbuf_append(&m->body, d, k) != 0)
		k = 0;
	if (k < n && !m->truncated) {
		m->truncated = true;
		c->st->body_truncated++;
	}
}

/* Payload bytes of the current frame: [prefix][content][padding]. */
static void frame_payload(struct h2_conn *c, struct h2_dir *dd, int role, const uint8_t *d,
			  size_t n, int64_t ts)
{
	while (n) {
		if (dd->bad || is_ctrl(dd->type)) {
			size_t k = dd->len - dd->got < n ? dd->len - dd->got : n;
			if (!dd->bad && dd->ctrl_len < H2_CTRL_MAX) {
				size_t keep =
				    H2_CTRL_MAX - dd->ctrl_len < k ? H2_CTRL_MAX - dd->ctrl_len : k;
				memcpy(dd->ctrl + dd->ctrl_len, d, keep);
				dd->ctrl_len += (uint32_t)keep;
			}
			dd->got += (uint32_t)k;
			return;
		}
		if (dd->got < dd->prefix) {
			size_t k = dd->prefix - dd->got < n ? dd->prefix - dd->got : n;
			memcpy(dd->pre + dd->got, d, k);
			dd->got += (uint32_t)k;
			d += k;
			n -= k;
			if (dd->got == dd->prefix && (dd->flags & FL_PADDED)) {
				dd->pad = dd->pre[0];
				if (dd->pad > dd->len - dd->prefix) {
					/* §6.1: padding past the payload */
					c->st->bad_frames++;
					dd->bad = true;
					if (dd->in_block && dd->type != T_DATA) {
						c->st->hpack_errors++;
						dir_kill(c, dd, STORE_F_PARSE_ERROR);
						return;
					}
				}
			}
			continue;
		}
		uint32_t content_end = dd->len - dd->pad;
		if (dd->got < content_end) {
			size_t k = content_end - dd->got < n ? content_end - dd->got : n;
			if (dd->type == T_DATA) {
				data_content(c, dd, role, d, k, ts);
			} else if (inflate(c, dd, role, d, k, false) < 0) {
				c->st->hpack_errors++;
				struct h2_stream *s = stream_find(c, dd->block_sid);
				if (s)
					s->flags |= STORE_F_PARSE_ERROR;
				dir_kill(c, dd, STORE_F_PARSE_ERROR);
				c->st->lost_bytes += n - k;
				return;
			}
			dd->got += (uint32_t)k;
			d += k;
			n -= k;
			continue;
		}
		size_t k = dd->len - dd->got < n ? dd->len - dd->got : n; /* padding */
		dd->got += (uint32_t)k;
		return;
	}
}

static void dir_data(struct h2_conn *c, int role, const uint8_t *d, size_t n, int64_t ts)
{
	struct h2_dir *dd = &c->dir[role];
	while (n) {
		if (dd->dead) {
			c->st->lost_bytes += n;
			return;
		}
		if (dd->preface) {
			size_t off = H2_PREFACE_LEN - dd->preface;
			size_t k = dd->preface < n ? dd->preface : n;
			if (memcmp(d, H2_PREFACE + off, k) != 0) {
				c->st->bad_frames++;
				dir_kill(c, dd, STORE_F_PARSE_ERROR);
				continue;
			}
			dd->preface -= (uint32_t)k;
			d += k;
			n -= k;
			continue;
		}
		if (!dd->in_frame) {
			size_t want = (size_t)(9 - dd->fh_len);
			size_t k = want < n ? want : n;
			memcpy(dd->fh + dd->fh_len, d, k);
			dd->fh_len += (uint8_t)k;
			d += k;
			n -= k;
			if (dd->fh_len < 9)
				return;
			frame_begin(c, dd, role, ts);
			if (dd->dead)
				continue;
			if (dd->len == 0)
				frame_end(c, dd, role, ts);
			continue;
		}
		size_t k = dd->len - dd->got < n ? dd->len - dd->got : n;
		frame_payload(c, dd, role, d, k, ts);
		if (dd->dead) {
			d += k;
			n -= k;
			continue; /* the rest is counted as lost */
		}
		d += k;
		n -= k;
		if (dd->got == dd->len)
			frame_end(c, dd, role, ts);
	}
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

struct h2_conn *h2_conn_create(const struct h2_params *p, const struct txn_conn_info *info,
			       bool swapped)
{
	struct h2_conn *c = mem_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->prm = p;
	c->st = p->stats;
	c->info = *info;
	c->swapped = swapped;
	c->max_header = p->max_header_bytes ? p->max_header_bytes : H2_DEFAULT_MAX_HEADER;
	c->max_body = p->max_body ? p->max_body : H2_DEFAULT_MAX_BODY;
	c->max_streams = p->max_streams ? p->max_streams : H2_DEFAULT_STREAMS;
	for (int r = 0; r < 2; r++) {
		if (nghttp2_hd_inflate_new2(&c->dir[r].inf, &h2_mem) != 0) {
			h2_conn_free(c);
			return NULL;
		}
		c->dir[r].table_max = 4096; /* RFC 9113 §6.5.2 initial value */
		c->dir[r].max_frame = H2_FRAME_MIN;
	}
	c->dir[R_CLIENT].preface = H2_PREFACE_LEN;
	c->st->connections++;
	return c;
}

int h2_conn_upgrade(struct h2_conn *c, const struct store_message *req, int64_t ts_first,
		    int64_t ts_last, uint32_t flags)
{
	c->st->upgrades++;
	c->last_client_id = 1;
	/* The client's HTTP2-Settings may have raised the server's frame size
	 * (RFC 7540 §3.2.1); it is not decoded, so any size is taken. */
	c->dir[R_SERVER].max_frame = H2_FRAME_MAX;
	struct h2_stream *s = stream_open(c, 1);
	if (!s)
		return -ENOMEM;
	struct h2_msg *m = &s->m[R_CLIENT];
	m->present = m->headers_done = m->ended = true;
	m->vmaj = req->version_major;
	m->vmin = req->version_minor;
	m->ts_first = ts_first;
	m->ts_last = ts_last;
	s->flags = flags;
	/* Copy the HTTP/1.1 request: method, target, header lines, body. */
	m->mo = 0;
	m->ml = (uint32_t)req->method.len;
	m->to = m->ml;
	m->tl = (uint32_t)req->target.len;
	if (dbuf_append(&m->bytes, req->method.ptr, req->method.len) ||
	    dbuf_append(&m->bytes, req->target.ptr, req->target.len))
		return -ENOMEM;
	for (size_t i = 0; i < req->n_headers; i++) {
		nghttp2_nv nv = {(uint8_t *)(uintptr_t)req->headers[i].name.ptr,
				 (uint8_t *)(uintptr_t)req->headers[i].value.ptr,
				 req->headers[i].name.len, req->headers[i].value.len, 0};
		struct h2_dir tmp = {.block_to = BLK_TRAILERS, .block_sid = 1};
		on_field(c, &tmp, R_CLIENT, &nv);
	}
	m->n_headers = m->nf;
	if (req->body.len && dbuf_append(&m->body, req->body.ptr, req->body.len))
		return -ENOMEM;
	m->body_len = req->body_len;
	m->truncated = req->truncated;
	return 0; /* announced already, as the HTTP/1.1 request it was */
}

void h2_conn_data(struct h2_conn *c, enum txn_dir dir, const uint8_t *data, size_t len,
		  int64_t ts_ns)
{
	if (!len || c->ended)
		return;
	int role = (dir == TXN_DIR_CLIENT) != c->swapped ? R_CLIENT : R_SERVER;
	dir_data(c, role, data, len, ts_ns);
}

void h2_conn_gap(struct h2_conn *c, enum txn_dir dir, uint64_t len, int64_t ts_ns)
{
	if (c->ended)
		return;
	int role = (dir == TXN_DIR_CLIENT) != c->swapped ? R_CLIENT : R_SERVER;
	struct h2_dir *dd = &c->dir[role];
	c->st->gaps++;
	if (dd->dead) {
		c->st->lost_bytes += len;
		return;
	}
	/* Inside DATA content: count the bytes as body, keep our place. */
	if (dd->in_frame && !dd->bad && dd->type == T_DATA && dd->got >= dd->prefix &&
	    len <= dd->len - dd->got) {
		uint32_t content_end = dd->len - dd->pad;
		uint64_t body = dd->got < content_end ? content_end - dd->got : 0;
		if (body > len)
			body = len;
		struct h2_stream *s = stream_find(c, dd->sid);
		if (s) {
			struct h2_msg *m = &s->m[role];
			s->flags |= STORE_F_GAP;
			m->body_len += body;
			m->ts_last = ts_ns;
			if (body && !m->truncated) {
				/* the stored body misses bytes: it is no longer the body */
				m->truncated = true;
			}
		}
		dd->got += (uint32_t)len;
		if (dd->got == dd->len)
			frame_end(c, dd, role, ts_ns);
		return;
	}
	c->st->lost_bytes += len;
	dir_kill(c, dd, STORE_F_GAP);
}

void h2_conn_end(struct h2_conn *c, enum txn_end how, int64_t ts_ns)
{
	(void)ts_ns;
	if (c->ended)
		return;
	c->ended = true;
	uint32_t flags =
	    (how == TXN_END_RST ? STORE_F_RESET : 0) | (c->goaway ? STORE_F_GOAWAY : 0);
	while (c->n_open) {
		struct h2_stream *s = c->open[0];
		c->st->incomplete++;
		stream_emit(c, s, flags);
	}
}

void h2_conn_free(struct h2_conn *c)
{
	if (!c)
		return;
	while (c->n_open)
		stream_close(c, c->open[0]);
	for (int r = 0; r < 2; r++)
		if (c->dir[r].inf)
			nghttp2_hd_inflate_del(c->dir[r].inf);
	mem_free(c->open);
	mem_free(c->scratch);
	mem_free(c);
}

size_t h2_conn_mem(const struct h2_conn *c)
{
	size_t n = sizeof(*c) + c->scratch_cap * sizeof(struct store_header) +
		   (c->open ? c->max_streams * sizeof(*c->open) : 0) + c->dir[0].table_max +
		   c->dir[1].table_max;
	for (uint32_t i = 0; i < c->n_open; i++)
		n += stream_mem(c->open[i]);
	return n;
}
