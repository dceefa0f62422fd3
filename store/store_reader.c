/* SPDX-License-Identifier: MIT */
/*
 * store_reader - reads a .dyt file (docs/format.md) frame by frame, with
 * the recovery rules of docs/format.md §3: a cut file is read up to its
 * last whole frame, a damaged frame is detected by zstd's content checksum
 * and skipped where its end is known, the index is used to seek by time
 * and to resynchronise, and nothing on disk is trusted without a bound.
 *
 * Records are decoded by a small bounds-checked msgpack cursor
 * (store_mp_private.h) straight from the decompressed frame: byte fields are
 * slices into the frame buffer (borrowed until the next call), no object
 * tree is built. bench/store.sh compares it with msgpack_unpack_next().
 *
 * The file is read with pread(2) into a bounded buffer rather than
 * mmap(2), so a file truncated while it is being read gives a short read
 * (reported as a cut), never SIGBUS.
 *
 * References: RFC 8878 (zstd frames, skippable frames), msgpack spec.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "common/mem.h"
#include "store/store.h"
#include "store/store_mp_private.h"
#include "store/store_private.h"

/* A compressed frame never needs more than this (zstd's bound of the content cap). */
#define MAX_FRAME_COMPRESSED (STORE_MAX_FRAME_CONTENT + (STORE_MAX_FRAME_CONTENT >> 7) + 65536)
#define READ_CHUNK	     (4u << 20)

/*
 * Decoding state: the header table records point into, and where a
 * session's ids sit in its bytes. The reader has one for the record it
 * returns; a frame decoded apart (store_frame_decode()) has its own, and
 * its records' tables follow each other in it (from hbase; hend is where
 * the last record's end).
 */
struct store_dec {
	struct store_header *hdrs;
	size_t hdr_cap;
	size_t hbase, hend;
	struct store_slice id_val, conn_val; /* a session's id/conn_id values */
};

struct ridx {
	uint64_t off;
	uint64_t size;
	int64_t first_ts;
	int64_t last_ts;
	uint64_t records;
};

struct store_reader {
	int fd;		    /* -1 for an in-memory reader */
	const uint8_t *mem; /* in-memory reader: borrowed bytes */
	uint64_t size;

	uint8_t *in; /* file mode: bytes [in_off, in_off + in_len) of the file */
	size_t in_cap, in_len;
	uint64_t in_off;

	ZSTD_DCtx *dctx;
	uint8_t *out; /* the current decompressed frame */
	size_t out_cap, out_len, out_pos;
	uint64_t frame_off; /* file offset of the current frame */

	uint64_t data_start, data_end, pos;
	bool index_suspect;	 /* the tail says "index" but it did not verify */
	uint64_t tail_frame_off; /* start of a skippable frame that ends the file, or 0 */
	bool eof, resync, quiet;
	bool oom;	   /* a buffer could not grow: the walk stops with -ENOMEM */
	bool after_damage; /* the previous frame was damaged: a bad magic here is its tail */

	struct ridx *idx;
	size_t n_idx;

	struct store_file_meta meta;
	char **rules;
	char **redactions;
	struct store_origin *origins; /* strings and counters owned */
	size_t n_origins;
	struct store_target *targets; /* strings owned */
	size_t n_targets;
	uint64_t *shard_sessions;
	uint32_t n_shard_sessions;
	struct store_counter *ctrs;

	struct store_read_status st;
	bool have_ts;
	struct store_read_limits lim; /* 0 fields: defaults */
	uint64_t over_ratio_read;     /* content of frames read over the default ratio cap */
	uint64_t n_work;	      /* records decoded (returned, skipped or scanned) */
	/* frames handed out by store_reader_take_frame() */
	uint64_t taken, settled;
	bool block; /* the last frame taken must be settled before the walk goes on */

	struct store_record rec;
	struct store_slice rec_raw; /* rec's encoded bytes, a slice of out */
	struct store_dec dec;	    /* rec's header tables and id spans */
};

/* ------------------------------------------------------------------ */
/* record decoding                                                     */
/* ------------------------------------------------------------------ */

enum { DEC_BAD = -1 }; /* a field of the wrong type: the record is skipped */

static int hdr_reserve(struct store_dec *r, size_t need)
{
	if (need <= r->hdr_cap)
		return 0;
	size_t cap = r->hdr_cap ? r->hdr_cap : 64;
	while (cap < need)
		cap *= 2;
	struct store_header *h = mem_realloc(r->hdrs, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	r->hdrs = h;
	r->hdr_cap = cap;
	return 0;
}

/*
 * Fast paths: a record in the writer's own key order (store_writer.c
 * pack_session and pw_message) decodes in a straight line, each key checked
 * with one fixed-size compare instead of being parsed and looked up. Any
 * other order, a missing or extra key, or a value of another type returns
 * 0 and the caller decodes the same bytes again with the general loop,
 * which accepts every order and skips unknown keys (docs/format.md §4).
 */

#define FAST_INLINE static inline __attribute__((always_inline))

FAST_INLINE uint64_t ld64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

FAST_INLINE uint32_t ld32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

FAST_INLINE uint16_t ld16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* memcmp(p, k, n) == 0 for a literal @p k: up to 16 bytes as two
 * overlapping word compares (the literal's words fold to constants). */
FAST_INLINE bool same16(const uint8_t *p, const char *k, size_t n)
{
	if (n > 16)
		return memcmp(p, k, n) == 0;
	if (n >= 8)
		return ld64(p) == ld64(k) && ld64(p + n - 8) == ld64(k + n - 8);
	if (n >= 4)
		return ld32(p) == ld32(k) && ld32(p + n - 4) == ld32(k + n - 4);
	if (n >= 2)
		return ld16(p) == ld16(k) && ld16(p + n - 2) == ld16(k + n - 2);
	return n == 0 || p[0] == (uint8_t)k[0];
}

/* Consume key @p k (@p n < 32 bytes, packed as a fixstr) when it is next. */
FAST_INLINE bool fast_key(struct mp *c, const char *k, size_t n)
{
	if (mp_left(c) < n + 1 || c->p[0] != (0xa0 | n) || !same16(c->p + 1, k, n))
		return false;
	c->p += n + 1;
	return true;
}
#define FAST_KEY(c, lit) fast_key((c), lit, sizeof(lit) - 1)

/* A [name, value] array in the writer's form into r->hdrs[*nh ...): 1
 * decoded (@p *count pairs), 0 not that form, -ENOMEM. */
static int dec_fields_fast(struct store_dec *r, struct mp *c, size_t *nh, size_t *count)
{
	uint32_t a;
	if (!mp_container(c, false, &a))
		return 0;
	if (hdr_reserve(r, *nh + a))
		return -ENOMEM;
	struct store_header *h = a ? r->hdrs + *nh : NULL;
	for (uint32_t j = 0; j < a; j++) {
		if (!mp_left(c) || *c->p != 0x92)
			return 0;
		c->p++;
		if (!mp_bytes(c, &h[j].name) || !mp_bytes(c, &h[j].value))
			return 0;
	}
	*nh += a;
	*count = a;
	return 1;
}

/* A message map in the writer's order (its 7 keys, then "trailers" when
 * it has any: HTTP/2): 1 decoded, 0 not that order, -ENOMEM. The trailers'
 * first index goes to @p tfirst. */
static int dec_message_fast(struct store_dec *r, struct mp *c, struct store_message *m, size_t *nh,
			    size_t *tfirst)
{
	uint64_t u = 0, maj = 0, min = 0;
	uint32_t a;
	if (!mp_left(c) || (*c->p != 0x87 && *c->p != 0x88)) /* the writer's 7 or 8 keys */
		return 0;
	bool trailers = *c->p == 0x88;
	c->p++;
	if (FAST_KEY(c, "method")) {
		if (!mp_bytes(c, &m->method) || !FAST_KEY(c, "target") || !mp_bytes(c, &m->target))
			return 0;
	} else if (FAST_KEY(c, "status")) {
		if (!mp_uint_max(c, UINT16_MAX, &u) || !FAST_KEY(c, "reason") ||
		    !mp_bytes(c, &m->reason))
			return 0;
		m->status = (uint16_t)u;
	} else {
		return 0;
	}
	if (!FAST_KEY(c, "version") || !mp_container(c, false, &a) || a != 2 ||
	    !mp_uint_max(c, 255, &maj) || !mp_uint_max(c, 255, &min))
		return 0;
	m->version_major = (uint8_t)maj;
	m->version_minor = (uint8_t)min;
	if (!FAST_KEY(c, "headers"))
		return 0;
	int rc = dec_fields_fast(r, c, nh, &m->n_headers);
	if (rc <= 0)
		return rc;
	if (!FAST_KEY(c, "body") || !mp_bytes(c, &m->body) || !FAST_KEY(c, "body_len") ||
	    !mp_uint(c, &m->body_len) || !FAST_KEY(c, "truncated") || !mp_bool(c, &m->truncated))
		return 0;
	if (trailers) {
		*tfirst = *nh;
		if (!FAST_KEY(c, "trailers"))
			return 0;
		return dec_fields_fast(r, c, nh, &m->n_trailers);
	}
	return 1;
}

/* An array of [name, value] pairs into r->hdrs[*nh ...). */
static int dec_fields(struct store_dec *r, struct mp *c, size_t *nh, size_t *count)
{
	uint32_t a;
	if (!mp_container(c, false, &a))
		return DEC_BAD;
	if (hdr_reserve(r, *nh + a))
		return -ENOMEM;
	/* No pointer arithmetic on a NULL table (a == 0). */
	struct store_header *h = a ? r->hdrs + *nh : NULL;
	for (uint32_t j = 0; j < a; j++) {
		/* Each header is a two-element array, almost always 0x92. */
		uint32_t two = 2;
		if (mp_left(c) && *c->p == 0x92)
			c->p++;
		else if (!mp_container(c, false, &two))
			return DEC_BAD;
		if (two != 2 || !mp_bytes(c, &h[j].name) || !mp_bytes(c, &h[j].value))
			return DEC_BAD;
	}
	*nh += a;
	*count = a;
	return 0;
}

/*
 * Decode a message map; its headers go to r->hdrs[*nh ...), its trailers
 * after them (first index in *tfirst; pointers are set by the caller once
 * the table no longer moves).
 */
static int dec_message(struct store_dec *r, struct mp *c, struct store_message *m, size_t *nh,
		       size_t *first, size_t *tfirst)
{
	uint32_t n;
	struct mp start = *c;
	size_t nh_start = *nh;
	memset(m, 0, sizeof(*m));
	*first = *nh;
	int fast = dec_message_fast(r, c, m, nh, tfirst);
	if (fast < 0)
		return fast;
	if (fast) {
		m->present = true;
		return 0;
	}
	*c = start;
	*nh = nh_start;
	memset(m, 0, sizeof(*m));
	if (!mp_container(c, true, &n))
		return DEC_BAD;
	m->present = true;
	bool have_headers = false, have_trailers = false;
	for (uint32_t i = 0; i < n; i++) {
		struct store_slice k;
		uint64_t u = 0;
		bool ok = true;
		if (!mp_bytes(c, &k))
			return DEC_BAD;
		switch (k.len) {
		case 4:
			ok = KEY(&k, "body") ? mp_bytes(c, &m->body) : mp_skip(c, 2);
			break;
		case 6:
			if (KEY(&k, "method")) {
				ok = mp_bytes(c, &m->method);
			} else if (KEY(&k, "target")) {
				ok = mp_bytes(c, &m->target);
			} else if (KEY(&k, "status")) {
				ok = mp_uint_max(c, UINT16_MAX, &u);
				m->status = (uint16_t)u;
			} else if (KEY(&k, "reason")) {
				ok = mp_bytes(c, &m->reason);
			} else {
				ok = mp_skip(c, 2);
			}
			break;
		case 7:
			if (KEY(&k, "headers")) {
				if (have_headers)
					return DEC_BAD; /* one table per message */
				have_headers = true;
				*first = *nh;
				int rc = dec_fields(r, c, nh, &m->n_headers);
				if (rc)
					return rc;
			} else if (KEY(&k, "version")) {
				uint32_t a;
				uint64_t maj = 0, min = 0;
				ok = mp_container(c, false, &a) && a == 2 &&
				     mp_uint_max(c, 255, &maj) && mp_uint_max(c, 255, &min);
				m->version_major = (uint8_t)maj;
				m->version_minor = (uint8_t)min;
			} else {
				ok = mp_skip(c, 2);
			}
			break;
		case 8:
			if (KEY(&k, "body_len")) {
				ok = mp_uint(c, &m->body_len);
			} else if (KEY(&k, "trailers")) {
				if (have_trailers)
					return DEC_BAD;
				have_trailers = true;
				*tfirst = *nh;
				int rc = dec_fields(r, c, nh, &m->n_trailers);
				if (rc)
					return rc;
			} else {
				ok = mp_skip(c, 2);
			}
			break;
		case 9:
			ok = KEY(&k, "truncated") ? mp_bool(c, &m->truncated) : mp_skip(c, 2);
			break;
		default:
			ok = mp_skip(c, 2);
			break;
		}
		if (!ok)
			return DEC_BAD;
	}
	return 0;
}

static bool dec_addr(struct mp *c, struct store_endpoint *e)
{
	struct store_slice s;
	if (!mp_bytes(c, &s))
		return false;
	if (s.len == 4) /* fixed sizes: inline copies */
		memcpy(e->addr, s.ptr, 4);
	else if (s.len == 16)
		memcpy(e->addr, s.ptr, 16);
	else
		return false;
	return true;
}

/* Decode a message value that may be nil (absent). */
static int dec_opt_message(struct store_dec *r, struct mp *c, struct store_message *m, size_t *nh,
			   size_t *first, size_t *tfirst)
{
	if (mp_nil(c)) {
		memset(m, 0, sizeof(*m));
		return 0;
	}
	return dec_message(r, c, m, nh, first, tfirst);
}

/* Point a decoded message's tables into r->hdrs (which no longer moves). */
static void fix_tables(struct store_dec *r, struct store_message *m, size_t first, size_t tfirst)
{
	if (!m->present)
		return;
	m->headers = r->hdrs ? r->hdrs + first : NULL;
	m->trailers = r->hdrs && m->n_trailers ? r->hdrs + tfirst : NULL;
}

/* An unsigned value whose bytes @p v records (a session's id spans). */
static bool uint_span(struct mp *c, uint64_t *u, struct store_slice *v)
{
	v->ptr = c->p;
	if (!mp_uint(c, u))
		return false;
	v->len = (size_t)(c->p - v->ptr);
	return true;
}

/* A session in the writer's order: 1 decoded, 0 not that order, -ENOMEM. */
static int dec_session_fast(struct store_dec *r, struct mp *c, uint32_t n, struct store_session *s)
{
	size_t nh = r->hbase, req_first = 0, resp_first = 0, req_t = 0, resp_t = 0;
	uint64_t u = 0;
	/* + 1 with "vlan", + 2 with "proto" and "stream" (HTTP/2); a reset
	 * stream's "ts_reset_ns" is rare enough for the general loop */
	if (n < 18 || n > 21)
		return 0;
	bool vlan = (n - 18) & 1, proto = n >= 20;
	if (!FAST_KEY(c, "v") || !mp_uint(c, &u) || !FAST_KEY(c, "t") || !mp_uint(c, &u) ||
	    !FAST_KEY(c, "id") || !uint_span(c, &s->id, &r->id_val) || !FAST_KEY(c, "ip_version") ||
	    !mp_uint_max(c, 255, &u))
		return 0;
	s->ip_version = (uint8_t)u;
	if (!FAST_KEY(c, "src") || !dec_addr(c, &s->src) || !FAST_KEY(c, "src_port") ||
	    !mp_uint_max(c, UINT16_MAX, &u))
		return 0;
	s->src.port = (uint16_t)u;
	if (!FAST_KEY(c, "dst") || !dec_addr(c, &s->dst) || !FAST_KEY(c, "dst_port") ||
	    !mp_uint_max(c, UINT16_MAX, &u))
		return 0;
	s->dst.port = (uint16_t)u;
	if (vlan) {
		if (!FAST_KEY(c, "vlan") || !mp_uint_max(c, UINT16_MAX, &u))
			return 0;
		s->vlan = (uint16_t)u;
	}
	if (!FAST_KEY(c, "lane") || !mp_bytes(c, &s->lane) || !FAST_KEY(c, "conn_id") ||
	    !uint_span(c, &s->conn_id, &r->conn_val) || !FAST_KEY(c, "conn_index") ||
	    !mp_uint_max(c, UINT32_MAX, &u))
		return 0;
	s->conn_index = (uint32_t)u;
	if (!FAST_KEY(c, "ts_req_first_ns") || !mp_int(c, &s->ts_req_first_ns) ||
	    !FAST_KEY(c, "ts_req_last_ns") || !mp_int(c, &s->ts_req_last_ns) ||
	    !FAST_KEY(c, "ts_resp_first_ns") || !mp_int(c, &s->ts_resp_first_ns) ||
	    !FAST_KEY(c, "ts_resp_last_ns") || !mp_int(c, &s->ts_resp_last_ns) ||
	    !FAST_KEY(c, "req"))
		return 0;
	int rc = dec_message(r, c, &s->req, &nh, &req_first, &req_t);
	if (rc)
		return rc == -ENOMEM ? rc : 0;
	if (!FAST_KEY(c, "resp"))
		return 0;
	rc = dec_opt_message(r, c, &s->resp, &nh, &resp_first, &resp_t);
	if (rc)
		return rc == -ENOMEM ? rc : 0;
	if (!FAST_KEY(c, "flags") || !mp_uint_max(c, UINT32_MAX, &u))
		return 0;
	s->flags = (uint32_t)u;
	if (proto) {
		struct store_slice pv;
		if (!FAST_KEY(c, "proto") || !mp_bytes(c, &pv))
			return 0;
		if (KEY(&pv, "h2c"))
			s->proto = STORE_PROTO_H2C;
		else if (!KEY(&pv, "http/1.1"))
			return 0; /* the general loop refuses it */
		if (!FAST_KEY(c, "stream") || !mp_uint_max(c, UINT32_MAX, &u))
			return 0;
		s->stream_id = (uint32_t)u;
	}
	fix_tables(r, &s->req, req_first, req_t);
	fix_tables(r, &s->resp, resp_first, resp_t);
	r->hend = nh;
	return 1;
}

static int dec_session(struct store_dec *r, struct mp *c, uint32_t n, struct store_session *s)
{
	size_t nh = r->hbase, req_first = 0, resp_first = 0, req_t = 0, resp_t = 0;
	struct mp start = *c;
	memset(s, 0, sizeof(*s));
	r->id_val = r->conn_val = (struct store_slice){0};
	int fast = dec_session_fast(r, c, n, s);
	if (fast)
		return fast < 0 ? fast : 0;
	*c = start;
	memset(s, 0, sizeof(*s));
	r->id_val = r->conn_val = (struct store_slice){0};
	for (uint32_t i = 0; i < n; i++) {
		struct store_slice k;
		uint64_t u = 0;
		bool ok = true;
		int rc = 0;
		if (!mp_bytes(c, &k))
			return DEC_BAD;
		switch (k.len) {
		case 1: /* "v", "t": checked by the caller */
		default:
		skip:
			ok = mp_skip(c, 1);
			break;
		case 2:
			if (!KEY(&k, "id"))
				goto skip;
			r->id_val.ptr = c->p;
			ok = mp_uint(c, &s->id);
			r->id_val.len = (size_t)(c->p - r->id_val.ptr);
			break;
		case 3:
			if (KEY(&k, "src"))
				ok = dec_addr(c, &s->src);
			else if (KEY(&k, "dst"))
				ok = dec_addr(c, &s->dst);
			else if (KEY(&k, "req"))
				rc = dec_message(r, c, &s->req, &nh, &req_first, &req_t);
			else
				goto skip;
			break;
		case 4:
			if (KEY(&k, "lane")) {
				ok = mp_bytes(c, &s->lane);
			} else if (KEY(&k, "vlan")) {
				ok = mp_uint_max(c, UINT16_MAX, &u);
				s->vlan = (uint16_t)u;
			} else if (KEY(&k, "resp")) {
				rc = dec_opt_message(r, c, &s->resp, &nh, &resp_first, &resp_t);
			} else {
				goto skip;
			}
			break;
		case 5:
			if (KEY(&k, "proto")) {
				struct store_slice pv;
				ok = mp_bytes(c, &pv);
				if (ok && KEY(&pv, "h2c"))
					s->proto = STORE_PROTO_H2C;
				else if (ok && !KEY(&pv, "http/1.1"))
					return DEC_BAD; /* a protocol this reader cannot replay */
				break;
			}
			if (!KEY(&k, "flags"))
				goto skip;
			ok = mp_uint_max(c, UINT32_MAX, &u);
			s->flags = (uint32_t)u;
			break;
		case 6:
			if (!KEY(&k, "stream"))
				goto skip;
			ok = mp_uint_max(c, UINT32_MAX, &u);
			s->stream_id = (uint32_t)u;
			break;
		case 11:
			if (!KEY(&k, "ts_reset_ns"))
				goto skip;
			ok = mp_int(c, &s->ts_reset_ns);
			break;
		case 7:
			if (!KEY(&k, "conn_id"))
				goto skip;
			r->conn_val.ptr = c->p;
			ok = mp_uint(c, &s->conn_id);
			r->conn_val.len = (size_t)(c->p - r->conn_val.ptr);
			break;
		case 8:
			if (KEY(&k, "src_port")) {
				ok = mp_uint_max(c, UINT16_MAX, &u);
				s->src.port = (uint16_t)u;
			} else if (KEY(&k, "dst_port")) {
				ok = mp_uint_max(c, UINT16_MAX, &u);
				s->dst.port = (uint16_t)u;
			} else {
				goto skip;
			}
			break;
		case 10:
			if (KEY(&k, "reset_code")) {
				ok = mp_uint_max(c, UINT32_MAX, &u);
				s->reset_code = (uint32_t)u;
			} else if (KEY(&k, "ip_version")) {
				ok = mp_uint_max(c, 255, &u);
				s->ip_version = (uint8_t)u;
			} else if (KEY(&k, "conn_index")) {
				ok = mp_uint_max(c, UINT32_MAX, &u);
				s->conn_index = (uint32_t)u;
			} else {
				goto skip;
			}
			break;
		case 14:
			if (KEY(&k, "ts_req_last_ns"))
				ok = mp_int(c, &s->ts_req_last_ns);
			else
				goto skip;
			break;
		case 15:
			if (KEY(&k, "ts_req_first_ns"))
				ok = mp_int(c, &s->ts_req_first_ns);
			else
				ok = KEY(&k, "ts_resp_last_ns") ? mp_int(c, &s->ts_resp_last_ns)
								: mp_skip(c, 1);
			break;
		case 16:
			if (!KEY(&k, "ts_resp_first_ns"))
				goto skip;
			ok = mp_int(c, &s->ts_resp_first_ns);
			break;
		}
		if (rc)
			return rc;
		if (!ok)
			return DEC_BAD;
	}
	fix_tables(r, &s->req, req_first, req_t);
	fix_tables(r, &s->resp, resp_first, resp_t);
	r->hend = nh;
	return 0;
}

static int dec_result(struct store_dec *r, struct mp *c, uint32_t n, struct store_result *res)
{
	size_t nh = r->hbase, first = 0, tfirst = 0;
	memset(res, 0, sizeof(*res));
	for (uint32_t i = 0; i < n; i++) {
		struct store_slice k;
		uint64_t u = 0;
		bool ok;
		int rc = 0;
		if (!mp_bytes(c, &k))
			return DEC_BAD;
		if (KEY(&k, "session_id")) {
			ok = mp_uint(c, &res->session_id);
		} else if (KEY(&k, "target")) {
			ok = mp_bytes(c, &res->target);
		} else if (KEY(&k, "role")) {
			ok = mp_bytes(c, &res->role);
		} else if (KEY(&k, "ts_sent_ns")) {
			ok = mp_int(c, &res->ts_sent_ns);
		} else if (KEY(&k, "latency_ns")) {
			ok = mp_uint(c, &res->latency_ns);
		} else if (KEY(&k, "lateness_ns")) {
			ok = mp_int(c, &res->lateness_ns);
		} else if (KEY(&k, "causal_wait_ns")) {
			ok = mp_uint(c, &res->causal_wait_ns);
		} else if (KEY(&k, "error")) {
			ok = mp_uint_max(c, UINT32_MAX, &u);
			res->error = (uint32_t)u;
		} else if (KEY(&k, "error_msg")) {
			ok = mp_bytes(c, &res->error_msg);
		} else if (KEY(&k, "resp")) {
			ok = true;
			rc = dec_opt_message(r, c, &res->resp, &nh, &first, &tfirst);
		} else {
			ok = mp_skip(c, 1);
		}
		if (rc)
			return rc;
		if (!ok)
			return DEC_BAD;
	}
	fix_tables(r, &res->resp, first, tfirst);
	r->hend = nh;
	return 0;
}

/*
 * Decode one record at @p c into @p rec.
 * Returns 1 a record, 0 a record skipped (unknown type or version, or a
 * field of the wrong type; the cursor is past it), -EBADMSG when the bytes
 * are not msgpack (the rest of the frame is lost), -ENOMEM.
 */
static int dec_record(struct store_dec *r, struct mp *c, struct store_record *rec)
{
	struct mp start = *c;
	uint32_t n;
	uint64_t v = 0, t = 0;
	if (!mp_container(c, true, &n))
		goto bad;
	/* Find "v" and "t"; the writer puts them first, so this is two keys. */
	struct mp scan = *c;
	bool have_t = false, have_v = false;
	for (uint32_t i = 0; i < n && !(have_t && have_v); i++) {
		struct store_slice k;
		if (!mp_bytes(&scan, &k))
			goto bad;
		if (KEY(&k, "v"))
			have_v = mp_uint(&scan, &v);
		else if (KEY(&k, "t"))
			have_t = mp_uint(&scan, &t);
		else if (!mp_skip(&scan, 1))
			goto bad;
	}
	int rc = DEC_BAD;
	if (have_t && v <= STORE_SCHEMA_VERSION) {
		if (t == STORE_REC_SESSION) {
			rec->type = STORE_REC_SESSION;
			rc = dec_session(r, c, n, &rec->u.session);
		} else if (t == STORE_REC_RESULT) {
			rec->type = STORE_REC_RESULT;
			rc = dec_result(r, c, n, &rec->u.result);
		}
	}
	if (rc == 0)
		return 1;
	if (rc == -ENOMEM)
		return rc;
bad:
	*c = start;
	return mp_skip(c, 0) ? 0 : -EBADMSG;
}

/* ------------------------------------------------------------------ */
/* file access                                                         */
/* ------------------------------------------------------------------ */

/* Make [off, off + want) available at *pp; returns how many bytes are (less at EOF). */
static size_t src_get(struct store_reader *r, uint64_t off, size_t want, const uint8_t **pp)
{
	if (off >= r->size)
		return 0;
	if (want > r->size - off)
		want = (size_t)(r->size - off);
	if (r->mem) {
		*pp = r->mem + off;
		return want;
	}
	if (off >= r->in_off && off - r->in_off <= r->in_len &&
	    r->in_len - (off - r->in_off) >= want) {
		*pp = r->in + (off - r->in_off);
		return want;
	}
	size_t need = want > READ_CHUNK ? want : READ_CHUNK;
	if (need > r->size - off)
		need = (size_t)(r->size - off);
	if (need > r->in_cap) {
		uint8_t *p = mem_realloc(r->in, need);
		if (!p) {
			r->oom = true;
			r->eof = true;
			return 0;
		}
		r->in = p;
		r->in_cap = need;
	}
	size_t got = 0;
	while (got < need) {
		ssize_t k = pread(r->fd, r->in + got, need - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	r->in_off = off;
	r->in_len = got;
	*pp = r->in;
	return got < want ? got : want;
}

/* Limits set for every new reader (store_reader_default_limits()). */
static struct store_read_limits default_limits;

static uint32_t ratio_cap(const struct store_reader *r)
{
	return r->lim.max_frame_ratio ? r->lim.max_frame_ratio : STORE_DEFAULT_FRAME_RATIO;
}

/*
 * Under the default ratio cap, a frame over it is still read when it holds
 * at most STORE_OVER_RATIO_FRAME of content and the frames so read add up
 * to at most STORE_OVER_RATIO_TOTAL: the writer makes such frames itself
 * from one body of a few MB that compresses past the ratio (a run of one
 * byte), and refusing them would lose a session dyetap wrote. The work a
 * hostile file gets out of it stays bounded per file (docs/format.md).
 * An explicit --max-frame-ratio is kept strictly. Counts the frame (a
 * frame allowed is taken: no step retries it).
 */
static bool over_ratio_allowed(struct store_reader *r, unsigned long long fcs)
{
	if (r->lim.max_frame_ratio || fcs > STORE_OVER_RATIO_FRAME ||
	    r->over_ratio_read + fcs > STORE_OVER_RATIO_TOTAL)
		return false;
	r->over_ratio_read += fcs;
	return true;
}

static uint64_t record_cap(const struct store_reader *r)
{
	if (r->lim.max_records)
		return r->lim.max_records;
	return r->size > 1000000 ? r->size : 1000000;
}

static void note_damage(struct store_reader *r, uint64_t off, const char *why)
{
	if (r->quiet || r->oom)
		return;
	if (!r->st.damaged_frames)
		r->st.first_damage_offset = off;
	r->st.damaged_frames++;
	STORE_LOG(LOG_WARN, "damaged frame at offset %" PRIu64 ": %s", off, why);
}

/* A frame out of place (docs/format.md §3 rule 8): its data is read anyway. */
static void note_suspect(struct store_reader *r, uint64_t off, const char *why)
{
	if (r->quiet || r->oom)
		return;
	if (!r->st.suspect_frames)
		r->st.first_suspect_offset = off;
	r->st.suspect_frames++;
	STORE_LOG(LOG_WARN, "suspect frame at offset %" PRIu64 ": %s", off, why);
}

/* An index frame at @p pos verified during the walk: when bytes follow it,
 * they are not skipped (two files joined, two writers): read on. */
static void index_met(struct store_reader *r, uint64_t pos, uint64_t total)
{
	if (pos + total < r->size) {
		r->data_end = r->size;
		note_suspect(r, pos, "data follows an index frame");
	}
}

static void note_cut(struct store_reader *r, uint64_t off)
{
	r->eof = true;
	if (r->quiet || r->oom)
		return;
	r->st.cut = true;
	r->st.cut_offset = off;
	STORE_LOG(LOG_INFO, "file cut at offset %" PRIu64 " of %" PRIu64 " (inside a frame)", off,
		  r->size);
}

/* Where to continue after a damaged frame at @p off whose end is unknown. */
static void resync_from(struct store_reader *r, uint64_t off)
{
	if (r->n_idx) {
		for (size_t i = 0; i < r->n_idx; i++) {
			if (r->idx[i].off > off) {
				r->pos = r->idx[i].off;
				return;
			}
		}
		r->pos = r->data_end;
		return;
	}
	/* Scan for the next zstd or skippable frame magic; candidates are tried quietly. */
	uint64_t p = off + 1;
	while (p + 4 <= r->data_end) {
		const uint8_t *b;
		size_t n = src_get(r, p, READ_CHUNK, &b);
		if (n < 4)
			break;
		for (size_t i = 0; i + 4 <= n; i++) {
			uint32_t m = store_get_le32(b + i);
			if (m == STORE_MAGIC_ZSTD ||
			    (m & STORE_MAGIC_SKIP_MSK) == STORE_MAGIC_SKIP_LO) {
				r->pos = p + i;
				r->resync = true;
				return;
			}
		}
		p += n - 3;
	}
	r->pos = r->data_end;
}

static int parse_index(struct store_reader *r, const uint8_t *p, size_t n, uint64_t index_off);
static void frame_failed(struct store_reader *r, uint64_t pos, size_t cs, bool in_resync,
			 const char *why);

/* A data frame found by the walk, checked as far as it can be without
 * decompressing it; p is borrowed from the read buffer until the next
 * src_get(). */
struct floc {
	uint64_t pos;
	size_t cs;  /* compressed size */
	size_t fcs; /* declared content size */
	const uint8_t *p;
	bool in_resync; /* found while resynchronising after damage */
};

/*
 * One step of the walk at r->pos (docs/format.md §3). Returns 1 with
 * @p loc when a data frame that passes the checks made before
 * decompressing starts there (r->pos is past it), 2 after any other step
 * (a skippable frame read, damage noted, a resynchronisation: step
 * again), 0 at the end (r->eof), -ENOMEM. With @p pure, a step that would
 * do anything but find such a frame is not taken: -EAGAIN, nothing
 * changed (store_reader_take_frame() while frames are outstanding).
 */
static int walk_step(struct store_reader *r, struct floc *loc, bool pure)
{
	uint64_t pos = r->pos;
	const uint8_t *p;
	if (pos >= r->data_end) {
		if (pure)
			return -EAGAIN;
		if (r->index_suspect && !r->st.damaged_frames && !r->st.has_index)
			note_damage(r,
				    r->tail_frame_off ? r->tail_frame_off
				    : r->size >= 8    ? r->size - 8
						      : 0,
				    "index frame does not verify");
		r->eof = true;
		return 0;
	}
	size_t avail = src_get(r, pos, 8, &p);
	if (avail < 4) {
		if (pure)
			return r->oom ? -ENOMEM : -EAGAIN;
		if (!r->resync)
			note_cut(r, pos);
		r->eof = true;
		return 0;
	}
	uint32_t magic = store_get_le32(p);
	if (pure && magic != STORE_MAGIC_ZSTD)
		return -EAGAIN;
	/* pure: no flag is set while frames are outstanding (only the steps
	 * that are not pure and settling the last frame set them) */
	assert(!pure || (!r->resync && !r->after_damage));
	bool in_resync = r->resync, in_damage = r->after_damage;
	r->resync = false;
	r->after_damage = false;
	if ((magic & STORE_MAGIC_SKIP_MSK) == STORE_MAGIC_SKIP_LO) {
		if (avail < 8) {
			if (in_resync)
				resync_from(r, pos);
			else
				note_cut(r, pos);
			return 2;
		}
		uint64_t total = 8 + (uint64_t)store_get_le32(p + 4);
		if (magic == STORE_MAGIC_INDEX && r->index_suspect && !in_resync &&
		    total > r->data_end - pos) {
			note_damage(r, pos, "index frame size damaged");
			r->eof = true;
			return 0;
		}
		if (total > r->data_end - pos) {
			if (in_resync)
				resync_from(r, pos);
			else if (r->n_idx)
				note_damage(r, pos, "skippable frame runs past the data"),
				    resync_from(r, pos);
			else
				note_cut(r, pos);
			return 2;
		}
		if (in_resync) {
			/* Only a verifiable frame ends a resync. */
			if (magic != STORE_MAGIC_INDEX || total > STORE_INDEX_MAX + 8 ||
			    src_get(r, pos, (size_t)total, &p) != total ||
			    parse_index(r, p, (size_t)total, pos) != 0) {
				resync_from(r, pos);
				return 2;
			}
			index_met(r, pos, total);
		} else if (magic == STORE_MAGIC_INDEX && !r->n_idx) {
			/* An index where none was found from the end: check it. */
			if (total > STORE_INDEX_MAX + 8 ||
			    src_get(r, pos, (size_t)total, &p) != total ||
			    parse_index(r, p, (size_t)total, pos) != 0) {
				note_damage(r, pos, "index frame does not verify");
				r->after_damage = true;
			} else {
				index_met(r, pos, total);
			}
		} else if (magic == STORE_MAGIC_INDEX) {
			/* The index at the end describes the data before it: an
			 * index inside that data belongs to something else. */
			note_suspect(r, pos, "an index frame inside the data");
		} else if (magic == STORE_MAGIC_HEADER) {
			note_suspect(r, pos, "a second store header (files joined?)");
		}
		if (pos + total == r->size)
			r->tail_frame_off = pos;
		r->pos = pos + total;
		return 2;
	}
	if (magic != STORE_MAGIC_ZSTD) {
		if (!in_resync && !in_damage)
			note_damage(r, pos, "no frame starts here (bad magic)");
		resync_from(r, pos);
		return 2;
	}
	/* Find the frame's end from its block headers, reading more as needed. */
	uint64_t left = r->data_end - pos;
	size_t want = left < 65536 ? (size_t)left : 65536;
	size_t cs;
	for (;;) {
		avail = src_get(r, pos, want, &p);
		cs = ZSTD_findFrameCompressedSize(p, avail);
		if (!ZSTD_isError(cs) || ZSTD_getErrorCode(cs) != ZSTD_error_srcSize_wrong ||
		    avail < want || want >= left || want >= MAX_FRAME_COMPRESSED)
			break;
		want = want * 4 < left ? want * 4 : (size_t)left;
		if (want > MAX_FRAME_COMPRESSED)
			want = MAX_FRAME_COMPRESSED;
	}
	if (pure && r->oom)
		return -ENOMEM;
	if (ZSTD_isError(cs)) {
		if (pure)
			return -EAGAIN;
		bool runs_out = ZSTD_getErrorCode(cs) == ZSTD_error_srcSize_wrong &&
				avail == left && want >= left;
		if (in_resync) {
			resync_from(r, pos);
		} else if (runs_out && !r->n_idx) {
			note_cut(r, pos);
		} else {
			note_damage(r, pos, ZSTD_getErrorName(cs));
			resync_from(r, pos);
		}
		return 2;
	}
	unsigned long long fcs = ZSTD_getFrameContentSize(p, cs);
	const char *why = NULL;
	bool over_ratio = false;
	/* Frame_Header_Descriptor bit 2: Content_Checksum_flag (RFC 8878 §3.1.1.1.1). */
	if (cs < 5 || !(p[4] & 0x04))
		why = "frame without a content checksum";
	else if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs == ZSTD_CONTENTSIZE_ERROR)
		why = "frame without a content size";
	else if (fcs > STORE_MAX_FRAME_CONTENT)
		why = "declared content size over the 64 MiB cap";
	else if ((fcs / ratio_cap(r) > cs || (fcs / ratio_cap(r) == cs && fcs % ratio_cap(r))) &&
		 !over_ratio_allowed(r, fcs)) {
		/* Bounded work per input byte: a frame of 20 bytes must not
		 * make the reader decode 64 MiB of records. */
		why = "content more than --max-frame-ratio times the frame's size (bodies of one "
		      "repeated byte? for a file you trust: --max-frame-ratio none, or "
		      "DYETAP_MAX_FRAME_RATIO=none for any command)";
		over_ratio = true;
	}
	if (why) {
		if (pure)
			return -EAGAIN;
		if (over_ratio && !in_resync && !r->quiet)
			r->st.frames_over_ratio++;
		frame_failed(r, pos, cs, in_resync, why);
		return 2;
	}
	loc->pos = pos;
	loc->cs = cs;
	loc->fcs = (size_t)fcs;
	loc->p = p;
	loc->in_resync = in_resync;
	r->pos = pos + cs;
	return 1;
}

/* Decompress a checked frame: NULL, or why it is damaged. */
static const char *frame_decompress(ZSTD_DCtx *dctx, uint8_t *out, size_t fcs, const uint8_t *in,
				    size_t cs)
{
	size_t d = ZSTD_decompressDCtx(dctx, out, fcs, in, cs);
	if (ZSTD_isError(d))
		return ZSTD_getErrorName(d);
	if (d != fcs)
		return "content size differs from the frame header";
	return NULL;
}

/* The frame at @p pos (@p cs bytes) is damaged: note it and move on. */
static void frame_failed(struct store_reader *r, uint64_t pos, size_t cs, bool in_resync,
			 const char *why)
{
	if (!in_resync)
		note_damage(r, pos, why);
	if (in_resync || r->n_idx) {
		resync_from(r, pos);
	} else {
		r->pos = pos + cs;
		r->after_damage = true;
	}
}

/* A frame decoded: count it. */
static void frame_ok(struct store_reader *r, uint64_t pos, size_t cs, size_t d)
{
	r->frame_off = pos;
	if (!r->quiet) {
		r->st.frames++;
		r->st.compressed_bytes += cs;
		r->st.raw_bytes += d;
	}
}

/* Grow @p *buf to hold @p need bytes (powers of two from 64 KiB). */
static int out_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 65536;
	while (c < need)
		c *= 2;
	uint8_t *o = mem_realloc(*buf, c);
	if (!o)
		return -ENOMEM;
	*buf = o;
	*cap = c;
	return 0;
}

/*
 * Decode the next data frame into r->out.
 * Returns 1 a frame, 0 the end (clean, cut or damaged tail), -ENOMEM.
 */
static int next_frame(struct store_reader *r)
{
	while (!r->eof) {
		struct floc loc;
		int rc = walk_step(r, &loc, false);
		if (rc == 2)
			continue;
		if (rc <= 0) {
			if (rc < 0)
				return rc;
			break;
		}
		if (out_reserve(&r->out, &r->out_cap, loc.fcs))
			return -ENOMEM;
		const char *why = frame_decompress(r->dctx, r->out, loc.fcs, loc.p, loc.cs);
		if (why) {
			frame_failed(r, loc.pos, loc.cs, loc.in_resync, why);
			continue;
		}
		frame_ok(r, loc.pos, loc.cs, loc.fcs);
		r->out_len = loc.fcs;
		r->out_pos = 0;
		return 1;
	}
	return r->oom ? -ENOMEM : 0;
}

/* ------------------------------------------------------------------ */
/* header and index                                                    */
/* ------------------------------------------------------------------ */

static int dup_str(const struct store_slice *s, const char **out)
{
	char *d = mem_strndup((const char *)(s->ptr ? s->ptr : (const uint8_t *)""), s->len);
	if (!d)
		return -ENOMEM;
	mem_free((void *)*out);
	*out = d;
	return 0;
}

/* Read a msgpack array of strings into a new array @p *arr that the reader
 * owns; the meta gets its view @p *view and count @p *count. */
static int parse_str_array(struct mp *c, char ***arr, const char *const **view, size_t *count)
{
	uint32_t a;
	if (!mp_container(c, false, &a))
		return -EBADMSG;
	*arr = mem_calloc(a ? a : 1, sizeof(char *));
	if (!*arr)
		return -ENOMEM;
	*count = a;
	*view = (const char *const *)*arr;
	int rc = 0;
	for (uint32_t j = 0; j < a && !rc; j++) {
		struct store_slice v;
		if (!mp_bytes(c, &v))
			return -EBADMSG;
		rc = dup_str(&v, (const char **)&(*arr)[j]);
	}
	return rc;
}

/* A map of str -> uint into a new counter array (names owned). */
static int parse_counter_map(struct mp *c, struct store_counter **out, size_t *n)
{
	uint32_t a;
	if (!mp_container(c, true, &a))
		return -EBADMSG;
	*out = mem_calloc(a ? a : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (uint32_t j = 0; j < a; j++) {
		struct store_slice name;
		uint64_t v;
		if (!mp_bytes(c, &name) || !mp_uint(c, &v))
			return -EBADMSG;
		int rc = dup_str(&name, &(*out)[j].name);
		if (rc)
			return rc;
		(*out)[j].value = v;
		*n = j + 1;
	}
	return 0;
}

/* "origins": an array of maps (docs/format.md §1.1); unknown keys skipped. */
static int parse_origins(struct store_reader *r, struct mp *c)
{
	uint32_t a;
	if (!mp_container(c, false, &a))
		return -EBADMSG;
	r->origins = mem_calloc(a ? a : 1, sizeof(*r->origins));
	if (!r->origins)
		return -ENOMEM;
	for (uint32_t i = 0; i < a; i++) {
		struct store_origin *o = &r->origins[i];
		r->n_origins = i + 1;
		uint32_t m;
		if (!mp_container(c, true, &m))
			return -EBADMSG;
		for (uint32_t j = 0; j < m; j++) {
			struct store_slice k, v;
			int rc = 0;
			if (!mp_bytes(c, &k))
				return -EBADMSG;
			const char **dst = KEY(&k, "id")      ? &o->id
					   : KEY(&k, "file")  ? &o->file
					   : KEY(&k, "state") ? &o->state
							      : NULL;
			if (dst) {
				if (!mp_bytes(c, &v))
					return -EBADMSG;
				rc = dup_str(&v, dst);
			} else if (KEY(&k, "first_ns")) {
				if (!mp_int(c, &o->first_ns))
					return -EBADMSG;
			} else if (KEY(&k, "last_ns")) {
				if (!mp_int(c, &o->last_ns))
					return -EBADMSG;
			} else if (KEY(&k, "sessions")) {
				if (!mp_uint(c, &o->sessions))
					return -EBADMSG;
			} else if (KEY(&k, "counters") && !o->counters) {
				struct store_counter *v2 = NULL;
				rc = parse_counter_map(c, &v2, &o->n_counters);
				o->counters = v2;
			} else if (!mp_skip(c, 1)) {
				return -EBADMSG;
			}
			if (rc)
				return rc;
		}
	}
	r->meta.origins = r->origins;
	r->meta.n_origins = r->n_origins;
	return 0;
}

/* "targets": an array of [role, url]. */
static int parse_targets(struct store_reader *r, struct mp *c)
{
	uint32_t a;
	if (!mp_container(c, false, &a))
		return -EBADMSG;
	r->targets = mem_calloc(a ? a : 1, sizeof(*r->targets));
	if (!r->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < a; i++) {
		uint32_t two;
		struct store_slice role, url;
		r->n_targets = i + 1;
		if (!mp_container(c, false, &two) || two != 2 || !mp_bytes(c, &role) ||
		    !mp_bytes(c, &url))
			return -EBADMSG;
		int rc = dup_str(&role, &r->targets[i].role);
		if (!rc)
			rc = dup_str(&url, &r->targets[i].url);
		if (rc)
			return rc;
	}
	r->meta.targets = r->targets;
	r->meta.n_targets = r->n_targets;
	return 0;
}

static int parse_meta(struct store_reader *r, const uint8_t *p, size_t n)
{
	struct mp c = {p, p + n};
	uint32_t m;
	if (!mp_container(&c, true, &m))
		return -EBADMSG;
	for (uint32_t i = 0; i < m; i++) {
		struct store_slice k, v;
		int64_t iv;
		int rc = 0;
		if (!mp_bytes(&c, &k))
			return -EBADMSG;
		const char **dst = NULL;
		if (KEY(&k, "tool_version"))
			dst = &r->meta.tool_version;
		else if (KEY(&k, "kind"))
			dst = &r->meta.kind;
		else if (KEY(&k, "source"))
			dst = &r->meta.source;
		else if (KEY(&k, "filter"))
			dst = &r->meta.filter;
		else if (KEY(&k, "host"))
			dst = &r->meta.host;
		else if (KEY(&k, "file_id"))
			dst = &r->meta.file_id;
		else if (KEY(&k, "pace"))
			dst = &r->meta.pace;
		if (dst) {
			if (!mp_bytes(&c, &v))
				return -EBADMSG;
			rc = dup_str(&v, dst);
		} else if (KEY(&k, "start_ns")) {
			if (!mp_int(&c, &iv))
				return -EBADMSG;
			r->meta.start_ns = iv;
		} else if (KEY(&k, "rules") && !r->rules) {
			rc = parse_str_array(&c, &r->rules, &r->meta.rules, &r->meta.n_rules);
		} else if (KEY(&k, "redactions") && !r->redactions) {
			rc = parse_str_array(&c, &r->redactions, &r->meta.redactions,
					     &r->meta.n_redactions);
		} else if (KEY(&k, "origins") && !r->origins) {
			rc = parse_origins(r, &c);
		} else if (KEY(&k, "targets") && !r->targets) {
			rc = parse_targets(r, &c);
		} else if (KEY(&k, "shard")) {
			uint32_t a;
			uint64_t sk, sn;
			if (!mp_container(&c, false, &a) || a != 2 || !mp_uint(&c, &sk) ||
			    !mp_uint(&c, &sn) || sn > UINT32_MAX || sk >= sn)
				return -EBADMSG;
			r->meta.shard_k = (uint32_t)sk;
			r->meta.shard_n = (uint32_t)sn;
		} else if (KEY(&k, "result_lag")) {
			uint64_t lag;
			if (!mp_uint(&c, &lag))
				return -EBADMSG;
			r->meta.has_result_lag = true;
			r->meta.result_lag = lag;
		} else if (KEY(&k, "shard_sessions") && !r->shard_sessions) {
			uint32_t a;
			if (!mp_container(&c, false, &a))
				return -EBADMSG;
			r->shard_sessions = mem_calloc(a ? a : 1, sizeof(uint64_t));
			if (!r->shard_sessions)
				return -ENOMEM;
			for (uint32_t j = 0; j < a; j++)
				if (!mp_uint(&c, &r->shard_sessions[j]))
					return -EBADMSG;
			r->n_shard_sessions = a;
		} else if (!mp_skip(&c, 1)) {
			return -EBADMSG;
		}
		if (rc)
			return rc;
	}
	/* shard_sessions only with a shard of the same size */
	if (r->shard_sessions && r->n_shard_sessions == r->meta.shard_n && r->meta.shard_n)
		r->meta.shard_sessions = r->shard_sessions;
	return 0;
}

/* Verify and load the index frame @p p[0..n) found at @p index_off. */
static int parse_index(struct store_reader *r, const uint8_t *p, size_t n, uint64_t index_off)
{
	if (n < 8 + STORE_INDEX_MIN || store_get_le32(p) != STORE_MAGIC_INDEX ||
	    store_get_le32(p + 4) != n - 8 || memcmp(p + 8, STORE_INDEX_TAG, 4) != 0 ||
	    store_get_le32(p + n - 8) != n || memcmp(p + n - 4, STORE_INDEX_END_TAG, 4) != 0)
		return -EBADMSG;
	if (store_crc32c(0, p + 8, n - 20) != store_get_le32(p + n - 12))
		return -EBADMSG;
	struct mp c = {p + 12, p + n - 12};
	uint32_t m;
	struct ridx *idx = NULL;
	size_t n_idx = 0;
	struct store_counter *ctrs = NULL;
	size_t n_ctrs = 0;
	int rc = -EBADMSG;
	if (!mp_container(&c, true, &m))
		return -EBADMSG;
	for (uint32_t i = 0; i < m; i++) {
		struct store_slice k;
		if (!mp_bytes(&c, &k))
			goto out;
		if (KEY(&k, "frames") && !idx) {
			uint32_t a;
			if (!mp_container(&c, false, &a))
				goto out;
			idx = mem_calloc(a ? a : 1, sizeof(*idx));
			if (!idx) {
				rc = -ENOMEM;
				goto out;
			}
			uint64_t prev_end = r->data_start;
			for (uint32_t j = 0; j < a; j++) {
				struct ridx *e = &idx[j];
				uint32_t five;
				if (!mp_container(&c, false, &five) || five != 5 ||
				    !mp_uint(&c, &e->off) || !mp_uint(&c, &e->size) ||
				    !mp_int(&c, &e->first_ts) || !mp_int(&c, &e->last_ts) ||
				    !mp_uint(&c, &e->records))
					goto out;
				if (e->off < prev_end || e->size == 0 || e->off > index_off ||
				    e->size > index_off - e->off)
					goto out;
				prev_end = e->off + e->size;
			}
			/* The writer puts the index right after the last data frame: an
			 * index whose frames end elsewhere is not this file's. */
			if (a && prev_end != index_off)
				goto out;
			n_idx = a;
		} else if (KEY(&k, "counters") && !ctrs) {
			uint32_t a;
			if (!mp_container(&c, true, &a))
				goto out;
			ctrs = mem_calloc(a ? a : 1, sizeof(*ctrs));
			if (!ctrs) {
				rc = -ENOMEM;
				goto out;
			}
			for (uint32_t j = 0; j < a; j++) {
				struct store_slice name;
				if (!mp_bytes(&c, &name) || !mp_uint(&c, &ctrs[j].value))
					goto out;
				n_ctrs = j + 1;
				if (dup_str(&name, &ctrs[j].name)) {
					rc = -ENOMEM;
					goto out;
				}
			}
		} else if (!mp_skip(&c, 1)) {
			goto out;
		}
	}
	/* Accepted: replace what the reader had. */
	mem_free(r->idx);
	r->idx = idx;
	r->n_idx = n_idx;
	idx = NULL;
	for (size_t j = 0; j < r->st.n_counters; j++)
		mem_free((void *)r->ctrs[j].name);
	mem_free(r->ctrs);
	r->ctrs = ctrs;
	r->st.counters = ctrs;
	r->st.n_counters = n_ctrs;
	ctrs = NULL;
	n_ctrs = 0;
	r->st.has_index = true;
	r->data_end = index_off;
	rc = 0;
out:
	mem_free(idx);
	for (size_t j = 0; j < n_ctrs; j++)
		mem_free((void *)ctrs[j].name);
	mem_free(ctrs);
	return rc;
}

/* Look for a valid index frame at the end of the file. */
static int find_index(struct store_reader *r)
{
	const uint8_t *p;
	if (r->size < r->data_start + 8 + STORE_INDEX_MIN)
		return 0;
	if (src_get(r, r->size - 8, 8, &p) != 8 || memcmp(p + 4, STORE_INDEX_END_TAG, 4) != 0)
		return 0;
	uint64_t total = store_get_le32(p);
	uint64_t off = r->size - total;
	int rc = -EBADMSG;
	if (total >= 8 + STORE_INDEX_MIN && total <= STORE_INDEX_MAX + 8 &&
	    total <= r->size - r->data_start) {
		if (src_get(r, off, (size_t)total, &p) == total)
			rc = parse_index(r, p, (size_t)total, off);
	}
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		/*
		 * A tail that says "index" but does not verify. The walk reports it at
		 * the index frame's real offset when it gets there (the size in the
		 * tail may be the damaged part), or at the end if nothing else was.
		 */
		r->index_suspect = true;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* public API                                                          */
/* ------------------------------------------------------------------ */

static struct store_reader *reader_new(void)
{
	struct store_reader *r = mem_calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fd = -1;
	r->lim = default_limits;
	r->dctx = ZSTD_createDCtx();
	if (!r->dctx) {
		mem_free(r);
		return NULL;
	}
	return r;
}

/* Read the header frame and the index; @p name is used in messages. */
static struct store_reader *reader_start(struct store_reader *r, const char *name, char *err,
					 size_t errlen)
{
	const uint8_t *p;
	r->st.file_bytes = r->size;
	r->st.max_records = record_cap(r);
	size_t avail = src_get(r, 0, 12, &p);
	if (r->oom) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	if (avail < 4 || store_get_le32(p) != STORE_MAGIC_HEADER ||
	    (avail >= 12 && memcmp(p + 8, STORE_HEADER_TAG, 4) != 0)) {
		snprintf(err, errlen,
			 "%s is not a dyetap store (no store header; expected a .dyt file "
			 "written by dyetap record or replay)",
			 name);
		goto fail;
	}
	if (avail < 12) {
		snprintf(err, errlen,
			 "%s: cut inside the store header (%zu bytes); nothing to read", name,
			 avail);
		goto fail;
	}
	uint32_t n = store_get_le32(p + 4);
	if (n < STORE_HEADER_MIN || n > STORE_HEADER_MAX) {
		snprintf(err, errlen, "%s: store header damaged (size %" PRIu32 " out of range)",
			 name, n);
		goto fail;
	}
	if (src_get(r, 0, 8 + (size_t)n, &p) != 8 + (size_t)n) {
		if (r->oom) {
			snprintf(err, errlen, "%s: out of memory", name);
			goto fail;
		}
		snprintf(err, errlen,
			 "%s: cut inside the store header (%" PRIu64 " of %" PRIu32
			 " bytes); nothing to read",
			 name, r->size, 8 + n);
		goto fail;
	}
	if (store_crc32c(0, p + 8, n - 4) != store_get_le32(p + 8 + n - 4)) {
		snprintf(err, errlen, "%s: store header damaged (checksum mismatch)", name);
		goto fail;
	}
	r->meta.format_version = store_get_le32(p + 12);
	if (r->meta.format_version != STORE_FORMAT_VERSION) {
		snprintf(err, errlen,
			 "%s: store format version %" PRIu32
			 " is not supported (this dyetap reads version %d; use a newer dyetap)",
			 name, r->meta.format_version, STORE_FORMAT_VERSION);
		goto fail;
	}
	int rc = parse_meta(r, p + 16, n - 12);
	if (rc) {
		snprintf(err, errlen, "%s: %s", name,
			 rc == -ENOMEM ? "out of memory" : "store header metadata undecodable");
		goto fail;
	}
	r->data_start = 8 + (uint64_t)n;
	r->data_end = r->size;
	r->pos = r->data_start;
	if (find_index(r) != 0 || r->oom) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	return r;
fail:
	store_reader_free(r);
	return NULL;
}

struct store_reader *store_reader_open(const char *path, char *err, size_t errlen)
{
	struct store_reader *r = reader_new();
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		int e = errno;
		char partial[4096];
		struct stat ps;
		snprintf(partial, sizeof(partial), "%s%s", path, STORE_PARTIAL_SUFFIX);
		if (e == ENOENT && stat(partial, &ps) == 0)
			snprintf(err, errlen,
				 "cannot open %s: %s; its writer has not finished: the data "
				 "written so far is in %s (dyetap info %s)",
				 path, strerror(e), partial, partial);
		else
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		store_reader_free(r);
		return NULL;
	}
	struct stat sb;
	if (fstat(r->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		store_reader_free(r);
		return NULL;
	}
	r->size = (uint64_t)sb.st_size;
	/* Frames are read front to back: ask for aggressive read-ahead (a hint only). */
	(void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return reader_start(r, path, err, errlen);
}

struct store_reader *store_reader_open_mem(const void *data, size_t len, char *err, size_t errlen)
{
	struct store_reader *r = reader_new();
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->mem = data ? data : (const uint8_t *)"";
	r->size = data ? len : 0;
	return reader_start(r, "input", err, errlen);
}

const struct store_file_meta *store_reader_meta(const struct store_reader *r)
{
	return &r->meta;
}

static int64_t rec_ts(const struct store_record *rec)
{
	return rec->type == STORE_REC_SESSION ? rec->u.session.ts_req_first_ns
					      : rec->u.result.ts_sent_ns;
}

int store_reader_next(struct store_reader *r, const struct store_record **rec)
{
	for (;;) {
		if (r->out_pos < r->out_len && r->n_work >= record_cap(r)) {
			/* Bounded work per file: a frame of a million empty maps
			 * decodes a million skipped records. */
			r->st.record_cap_hit = true;
			note_damage(r, r->frame_off, "record cap reached (--max-records)");
			r->out_pos = r->out_len;
			r->eof = true;
			return 0;
		}
		if (r->out_pos < r->out_len) {
			r->n_work++;
			struct mp c = {r->out + r->out_pos, r->out + r->out_len};
			int rc = dec_record(&r->dec, &c, &r->rec);
			if (rc == -ENOMEM)
				return rc;
			if (rc < 0) {
				char why[96];
				snprintf(why, sizeof(why),
					 "record at byte %zu of the frame is not msgpack",
					 r->out_pos);
				note_damage(r, r->frame_off, why);
				r->out_pos = r->out_len;
				continue;
			}
			r->rec_raw.ptr = r->out + r->out_pos;
			r->rec_raw.len = (size_t)(c.p - r->out) - r->out_pos;
			r->out_pos = (size_t)(c.p - r->out);
			if (rc == 0) {
				r->st.skipped_records++;
				continue;
			}
			if (r->rec.type == STORE_REC_SESSION)
				r->st.sessions++;
			else
				r->st.results++;
			int64_t ts = rec_ts(&r->rec);
			if (!r->have_ts || ts < r->st.first_ts_ns)
				r->st.first_ts_ns = ts;
			if (!r->have_ts || ts > r->st.last_ts_ns)
				r->st.last_ts_ns = ts;
			r->have_ts = true;
			*rec = &r->rec;
			return 1;
		}
		int rc = next_frame(r);
		if (rc <= 0)
			return rc;
	}
}

/* ------------------------------------------------------------------ */
/* frames decoded apart (reading on several threads)                   */
/* ------------------------------------------------------------------ */

/* Per decoded record: records skipped before it, and where its messages'
 * tables start in the frame's header table (index + 1, 0: none). */
struct rfix {
	uint32_t skip;
	uint32_t h[4]; /* session: req headers, req trailers, resp headers, resp trailers;
			  result: resp headers, resp trailers */
};

struct store_frame {
	uint64_t seq; /* order taken */
	uint64_t pos;
	size_t cs, fcs;
	bool in_resync;
	uint64_t budget; /* record attempts the decode may make (the record cap) */
	uint8_t *in;	 /* the compressed frame */
	size_t in_cap;
	uint8_t *out; /* its content */
	size_t out_cap;
	/* what decoding found */
	int rc;		 /* -ENOMEM, or 0 */
	const char *why; /* damaged: why (static string), NULL when not */
	struct store_record *rec;
	struct rfix *fix;
	size_t n_rec, cap_rec;
	uint64_t skip_tail; /* records skipped after the last decoded one */
	bool bad;	    /* a record that is not msgpack ended the frame ... */
	size_t bad_off;	    /* ... at this byte */
	bool more;	    /* decoding stopped at the budget with bytes left */
	size_t n_keep;	    /* records settled (fewer at the record cap) */
	struct store_dec dec;
};

struct store_decoder {
	ZSTD_DCtx *dctx;
};

struct store_frame *store_frame_create(void)
{
	return mem_calloc(1, sizeof(struct store_frame));
}

void store_frame_free(struct store_frame *f)
{
	if (!f)
		return;
	mem_free(f->in);
	mem_free(f->out);
	mem_free(f->rec);
	mem_free(f->fix);
	mem_free(f->dec.hdrs);
	mem_free(f);
}

struct store_decoder *store_decoder_create(void)
{
	struct store_decoder *d = mem_calloc(1, sizeof(*d));
	if (d && !(d->dctx = ZSTD_createDCtx())) {
		mem_free(d);
		d = NULL;
	}
	return d;
}

void store_decoder_free(struct store_decoder *d)
{
	if (d) {
		ZSTD_freeDCtx(d->dctx);
		mem_free(d);
	}
}

/* Offset of the first data frame after @p off in the index, or data_end. */
static uint64_t idx_after(const struct store_reader *r, uint64_t off)
{
	size_t lo = 0, hi = r->n_idx;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->idx[mid].off > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < r->n_idx ? r->idx[lo].off : r->data_end;
}

int store_reader_take_frame(struct store_reader *r, struct store_frame *f)
{
	while (!r->eof) {
		bool pure = r->settled < r->taken;
		if (pure && r->block)
			return -EAGAIN;
		struct floc loc;
		int rc = walk_step(r, &loc, pure);
		if (rc == 2)
			continue;
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		if (out_reserve(&f->in, &f->in_cap, loc.cs))
			return -ENOMEM;
		memcpy(f->in, loc.p, loc.cs);
		f->seq = r->taken++;
		f->pos = loc.pos;
		f->cs = loc.cs;
		f->fcs = loc.fcs;
		f->in_resync = loc.in_resync;
		uint64_t cap = record_cap(r);
		f->budget = cap > r->n_work ? cap - r->n_work : 0;
		f->rc = 0;
		f->why = NULL;
		f->n_rec = f->n_keep = 0;
		f->skip_tail = 0;
		f->bad = f->more = false;
		/* Where the walk goes on after this frame depends on whether it
		 * decodes when it was found resynchronising, or when the index
		 * would send the walk elsewhere after damage (frame_failed()):
		 * then it is settled before the walk takes another step. */
		r->block = loc.in_resync || (r->n_idx && idx_after(r, loc.pos) != loc.pos + loc.cs);
		return 1;
	}
	return r->oom ? -ENOMEM : 0;
}

size_t store_frame_size(const struct store_frame *f)
{
	return f->fcs;
}

/* Table offset (index + 1) of @p t in @p d's table, 0 for none. */
static uint32_t tab_off(const struct store_dec *d, const struct store_header *t)
{
	return t ? (uint32_t)(t - d->hdrs) + 1 : 0;
}

static const struct store_header *tab_ptr(const struct store_dec *d, uint32_t off)
{
	return off ? d->hdrs + off - 1 : NULL;
}

int store_frame_decode(struct store_frame *f, struct store_decoder *dd)
{
	if (out_reserve(&f->out, &f->out_cap, f->fcs))
		return f->rc = -ENOMEM;
	f->why = frame_decompress(dd->dctx, f->out, f->fcs, f->in, f->cs);
	if (f->why)
		return 0;
	struct store_dec *d = &f->dec;
	size_t pos = 0, nh = 0;
	uint64_t tries = 0;
	uint32_t skip = 0;
	while (pos < f->fcs) {
		if (tries == f->budget) {
			f->more = true;
			break;
		}
		tries++;
		if (f->n_rec == f->cap_rec) {
			size_t nc = f->cap_rec ? f->cap_rec * 2 : 256;
			struct store_record *nr = mem_realloc(f->rec, nc * sizeof(*nr));
			if (!nr)
				return f->rc = -ENOMEM;
			f->rec = nr;
			struct rfix *nf = mem_realloc(f->fix, nc * sizeof(*nf));
			if (!nf)
				return f->rc = -ENOMEM;
			f->fix = nf;
			f->cap_rec = nc;
		}
		struct mp c = {f->out + pos, f->out + f->fcs};
		struct store_record *rec = &f->rec[f->n_rec];
		d->hbase = nh;
		int rc = dec_record(d, &c, rec);
		if (rc == -ENOMEM)
			return f->rc = rc;
		if (rc < 0) {
			f->bad = true;
			f->bad_off = pos;
			break;
		}
		pos = (size_t)(c.p - f->out);
		if (rc == 0) {
			skip++;
			continue;
		}
		/* The table may move as later records grow it: keep offsets. */
		struct rfix *x = &f->fix[f->n_rec++];
		memset(x, 0, sizeof(*x));
		x->skip = skip;
		skip = 0;
		if (rec->type == STORE_REC_SESSION) {
			x->h[0] = tab_off(d, rec->u.session.req.headers);
			x->h[1] = tab_off(d, rec->u.session.req.trailers);
			x->h[2] = tab_off(d, rec->u.session.resp.headers);
			x->h[3] = tab_off(d, rec->u.session.resp.trailers);
		} else {
			x->h[0] = tab_off(d, rec->u.result.resp.headers);
			x->h[1] = tab_off(d, rec->u.result.resp.trailers);
		}
		nh = d->hend;
	}
	f->skip_tail = skip;
	for (size_t i = 0; i < f->n_rec; i++) {
		struct store_record *rec = &f->rec[i];
		const struct rfix *x = &f->fix[i];
		if (rec->type == STORE_REC_SESSION) {
			rec->u.session.req.headers = tab_ptr(d, x->h[0]);
			rec->u.session.req.trailers = tab_ptr(d, x->h[1]);
			rec->u.session.resp.headers = tab_ptr(d, x->h[2]);
			rec->u.session.resp.trailers = tab_ptr(d, x->h[3]);
		} else {
			rec->u.result.resp.headers = tab_ptr(d, x->h[0]);
			rec->u.result.resp.trailers = tab_ptr(d, x->h[1]);
		}
	}
	return 0;
}

/* One more record decoded (returned, skipped or undecodable): false when
 * the record cap stops reading first (as store_reader_next() does). */
static bool work_one(struct store_reader *r)
{
	if (r->n_work >= record_cap(r)) {
		r->st.record_cap_hit = true;
		note_damage(r, r->frame_off, "record cap reached (--max-records)");
		r->eof = true;
		return false;
	}
	r->n_work++;
	return true;
}

static void count_record(struct store_reader *r, const struct store_record *rec)
{
	if (rec->type == STORE_REC_SESSION)
		r->st.sessions++;
	else
		r->st.results++;
	int64_t ts = rec_ts(rec);
	if (!r->have_ts || ts < r->st.first_ts_ns)
		r->st.first_ts_ns = ts;
	if (!r->have_ts || ts > r->st.last_ts_ns)
		r->st.last_ts_ns = ts;
	r->have_ts = true;
}

int store_reader_settle(struct store_reader *r, struct store_frame *f)
{
	assert(f->seq == r->settled && r->settled < r->taken);
	r->settled++;
	bool last = r->settled == r->taken;
	if (last)
		r->block = false;
	f->n_keep = 0;
	if (f->rc)
		return f->rc;
	if (f->why) {
		if (last)
			frame_failed(r, f->pos, f->cs, f->in_resync, f->why);
		else /* not blocking: the walk already went on at pos + cs */
			note_damage(r, f->pos, f->why);
		return 1;
	}
	frame_ok(r, f->pos, f->cs, f->fcs);
	for (size_t i = 0; i <= f->n_rec; i++) {
		uint64_t skip = i < f->n_rec ? f->fix[i].skip : f->skip_tail;
		for (uint64_t k = 0; k < skip; k++) {
			if (!work_one(r))
				return 0;
			r->st.skipped_records++;
		}
		if (i == f->n_rec)
			break;
		if (!work_one(r))
			return 0;
		count_record(r, &f->rec[i]);
		f->n_keep = i + 1;
	}
	if (f->bad || f->more) {
		if (!work_one(r))
			return 0;
		/* the budget is never below what the cap leaves */
		assert(f->bad);
		char why[96];
		snprintf(why, sizeof(why), "record at byte %zu of the frame is not msgpack",
			 f->bad_off);
		note_damage(r, r->frame_off, why);
	}
	return 1;
}

size_t store_frame_records(const struct store_frame *f, const struct store_record **v)
{
	*v = f->rec;
	return f->n_keep;
}

static size_t off_in(const struct store_slice *rec, const struct store_slice *v)
{
	return v->len ? (size_t)(v->ptr - rec->ptr) : 0;
}

struct store_raw_record store_reader_raw(const struct store_reader *r)
{
	struct store_raw_record raw = {.bytes = r->rec_raw};
	if (r->rec_raw.len && r->rec.type == STORE_REC_SESSION) {
		raw.id_off = off_in(&r->rec_raw, &r->dec.id_val);
		raw.id_len = r->dec.id_val.len;
		raw.conn_id_off = off_in(&r->rec_raw, &r->dec.conn_val);
		raw.conn_id_len = r->dec.conn_val.len;
	}
	return raw;
}

int store_reader_seek_time(struct store_reader *r, int64_t ts_ns)
{
	/* The record cap bounds the work of one read-through of the file; a
	 * seek starts another, so the records decoded by earlier ones no
	 * longer count (else the pass of replay --loop that crossed the cap
	 * ended early, as a damaged frame, and every later pass was empty).
	 * So does the content read from frames over the ratio cap. */
	r->n_work = 0;
	r->over_ratio_read = 0;
	r->out_len = r->out_pos = 0;
	r->rec_raw = (struct store_slice){0};
	r->resync = false;
	r->eof = false;
	if (r->n_idx) {
		r->pos = r->data_end;
		for (size_t i = 0; i < r->n_idx; i++) {
			if (r->idx[i].last_ts >= ts_ns) {
				r->pos = r->idx[i].off;
				break;
			}
		}
		return 0;
	}
	/* No index: decode frames quietly until one may hold a record at or after ts_ns. */
	struct store_read_status saved = r->st;
	r->pos = r->data_start;
	r->quiet = true;
	int rc = 0;
	uint64_t found = UINT64_MAX;
	while (found == UINT64_MAX && (rc = next_frame(r)) == 1) {
		if (!r->out_len)
			continue; /* an empty frame (r->out may still be NULL) */
		struct mp c = {r->out, r->out + r->out_len};
		while (mp_left(&c) && r->n_work < record_cap(r)) {
			r->n_work++;
			int d = dec_record(&r->dec, &c, &r->rec);
			if (d < 0)
				break;
			if (d == 1 && rec_ts(&r->rec) >= ts_ns) {
				found = r->frame_off;
				break;
			}
		}
	}
	r->quiet = false;
	r->over_ratio_read = 0; /* the scan was not the read-through */
	/* An index met while scanning replaced the counters: keep the new ones. */
	saved.has_index = r->st.has_index;
	saved.counters = r->st.counters;
	saved.n_counters = r->st.n_counters;
	r->st = saved;
	r->out_len = r->out_pos = 0;
	r->resync = false;
	r->eof = false;
	r->pos = found != UINT64_MAX ? found : r->data_end;
	return rc < 0 ? rc : 0;
}

const struct store_read_status *store_reader_status(const struct store_reader *r)
{
	return &r->st;
}

const char *store_read_state(const struct store_read_status *st)
{
	if (st->damaged_frames)
		return "damaged";
	if (st->cut)
		return "cut";
	if (st->suspect_frames)
		return "suspect";
	if (!st->has_index)
		return "unfinished";
	return "complete";
}

void store_reader_set_limits(struct store_reader *r, const struct store_read_limits *l)
{
	r->lim = *l;
	r->st.max_records = record_cap(r);
}

void store_reader_default_limits(const struct store_read_limits *l)
{
	default_limits = *l;
}

void store_reader_free(struct store_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	ZSTD_freeDCtx(r->dctx);
	mem_free(r->in);
	mem_free(r->out);
	mem_free(r->idx);
	mem_free(r->dec.hdrs);
	for (size_t j = 0; j < r->st.n_counters; j++)
		mem_free((void *)r->ctrs[j].name);
	mem_free(r->ctrs);
	for (size_t j = 0; j < r->meta.n_rules; j++)
		mem_free(r->rules[j]);
	mem_free(r->rules);
	for (size_t j = 0; r->redactions && j < r->meta.n_redactions; j++)
		mem_free(r->redactions[j]);
	mem_free(r->redactions);
	mem_free((void *)r->meta.kind);
	mem_free((void *)r->meta.source);
	mem_free((void *)r->meta.filter);
	mem_free((void *)r->meta.host);
	mem_free((void *)r->meta.tool_version);
	mem_free((void *)r->meta.file_id);
	mem_free((void *)r->meta.pace);
	for (size_t j = 0; r->origins && j < r->n_origins; j++) {
		struct store_origin *o = &r->origins[j];
		mem_free((void *)o->id);
		mem_free((void *)o->file);
		mem_free((void *)o->state);
		for (size_t k = 0; o->counters && k < o->n_counters; k++)
			mem_free((void *)o->counters[k].name);
		mem_free((void *)o->counters);
	}
	mem_free(r->origins);
	for (size_t j = 0; r->targets && j < r->n_targets; j++) {
		mem_free((void *)r->targets[j].role);
		mem_free((void *)r->targets[j].url);
	}
	mem_free(r->targets);
	mem_free(r->shard_sessions);
	mem_free(r);
}
