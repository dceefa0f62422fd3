/* SPDX-License-Identifier: MIT */
/*
 * store_writer - writes a .dyt file (docs/format.md): the header frame at
 * create, one zstd data frame per flush, the index/trailer frame at close.
 *
 * Records are packed into a pending batch (a bounded dbuf): sessions and
 * results, the hot path, by store_pack_private.h (exact size first, one
 * reservation, then plain stores); the header and trailer with msgpack-c.
 * A flush compresses the batch in one ZSTD_compress2() call with the
 * content checksum on and writes the whole frame with one write(2) loop,
 * so a crash loses at most the records added after the last flush and
 * never leaves a half-written frame behind a later whole one.
 *
 * With params.background the compression and the write(2) of a full batch
 * run on one helper thread while the caller packs the next batch into a
 * second buffer (double buffering): at most one frame is in flight, a
 * caller that fills its batch before the previous frame is out waits for
 * it (counted as store_bg_waits), and frames reach the file in order.
 * Everything else (index, counters, error text) stays on the caller's
 * thread, which collects a finished frame before it hands over the next
 * one; the helper thread never allocates. store_writer_flush() and close
 * wait for the frame, so their guarantees are those of the synchronous
 * writer; a failed background write is reported by the next call.
 *
 * A regular output file is written under a temporary name, PATH.partial,
 * with an exclusive flock(2) held until the end: a second writer of the
 * same PATH fails at once instead of interleaving its frames, and readers
 * of PATH see the previous file or the finished new one, never a half.
 * store_writer_close() renames it into place; a crash leaves PATH.partial,
 * which readers recover like any unfinished file (docs/format.md §3).
 *
 * Every record that is not in the file at the end is counted in
 * store_writer_lost(): refused ones and those of frames whose write failed
 * (a full disk), so callers print the number of records lost, not of
 * calls that failed.
 *
 * References: RFC 8878 (zstd frames), msgpack spec, docs/format.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <zstd.h>

#include "common/clock.h"
#include "common/dbuf.h"
#include "common/mem.h"
#include "dyetap_version.h"
#include "store/store.h"
#include "store/store_mp_private.h"
#include "store/store_pack_private.h"
#include "store/store_private.h"

/*
 * Index entries held in memory: past this many, they go to an unnamed
 * temporary file beside the output (O_TMPFILE) and are read back by
 * write_index(), so a long run (replay --loop) does not grow by 40 bytes
 * a frame. Without O_TMPFILE support they stay in memory. The default of
 * writers created later is store_writer_default_index_mem().
 */
#define INDEX_MEM_ENTRIES 4096
static size_t index_mem_default = INDEX_MEM_ENTRIES;

/* One index entry per data frame (docs/format.md §1.3). */
struct widx {
	uint64_t off;
	uint64_t size;
	int64_t first_ts;
	int64_t last_ts;
	uint64_t records;
};

struct store_writer {
	int fd;
	int failed; /* sticky -errno after a failed write */
	char *path; /* the file's final name (owned) */
	char *tmp;  /* PATH.partial while it is written; NULL: written directly */
	char file_id[STORE_FILE_ID_LEN + 1];
	uint64_t lost; /* records refused or in frames that failed */
	ZSTD_CCtx *cctx;
	size_t flush_bytes;
	int64_t flush_ns;

	msgpack_packer pk;
	int pack_rc;	  /* first dbuf error during the current record */
	struct dbuf pend; /* pending batch of packed records */
	uint64_t pend_records;
	int64_t pend_since; /* monotonic ns of the first pending record */
	int64_t pend_min_ts, pend_max_ts;

	uint8_t *cbuf; /* compressed frame */
	size_t ccap;

	uint64_t off;		/* bytes written so far */
	struct dbuf index;	/* array of struct widx: the entries not spilled */
	int index_fd;		/* the spilled entries, -1 none */
	uint64_t index_spilled; /* entries in index_fd, before those in index */
	bool index_nospill;	/* the temporary file could not be made */
	size_t index_mem;	/* entries held in memory before a spill */

	uint64_t records, sessions, results, frames, raw_bytes, comp_bytes, write_errors;
	uint64_t bg_waits; /* batches that waited for the previous background frame */
	char err[256];

	/* Background compression (params.background); unused otherwise. */
	bool bg_on;
	bool bg_used; /* bg_on at some point (for the trailer's counters) */
	pthread_t bg_thread;
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;
	bool bg_busy;	   /* a job is handed over and not finished (under bg_mu) */
	bool bg_quit;	   /* the thread should end (under bg_mu) */
	bool bg_done;	   /* a finished job awaits collection (caller side) */
	struct dbuf job;   /* the batch in flight; owned by the thread while busy */
	struct widx job_e; /* its index entry; size filled by the thread */
	int job_rc;	   /* 0, -errno of the write, or -EIO for zstd */
	size_t job_zerr;   /* the zstd error code when compression failed */
};

static int pack_write(void *data, const char *buf, size_t len)
{
	struct store_writer *w = data;
	int rc = dbuf_append(&w->pend, buf, len);
	if (rc && !w->pack_rc)
		w->pack_rc = rc;
	return rc;
}

static void set_err(struct store_writer *w, const char *what, int e)
{
	snprintf(w->err, sizeof(w->err), "%s: %s", what, strerror(e));
	STORE_LOG(LOG_DEBUG, "%s", w->err); /* the caller reports it */
}

static int write_all(int fd, const void *vp, size_t n)
{
	const uint8_t *p = vp;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- msgpack helpers over the writer's packer ---- */

static void pk_key(msgpack_packer *pk, const char *k)
{
	size_t n = strlen(k);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, k, n);
}

/* A key given as a string literal: its length is known at compile time. */
#define PK_KEY(pk, lit) pk_str((pk), (lit), sizeof(lit) - 1)

static void pk_str(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, p, n);
}

static void pk_cstr(msgpack_packer *pk, const char *s)
{
	pk_str(pk, s, strlen(s));
}

/* Key @p k with an array of the @p n strings of @p v (NULL packs as ""). */
static void pk_cstr_array(msgpack_packer *pk, const char *k, const char *const *v, size_t n)
{
	pk_key(pk, k);
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++)
		pk_cstr(pk, v[i] ? v[i] : "");
}

/* ---- session and result records (store_pack_private.h) ---- */

static size_t slice_size(const struct store_slice *s)
{
	return pw_str_size(s->len);
}

static size_t message_size(const struct store_message *m, int is_req)
{
	size_t n = pw_container_size(7 + (m->n_trailers != 0)) + PW_KEY_SIZE("version") + 1 +
		   pw_uint_size(m->version_major) + pw_uint_size(m->version_minor) +
		   PW_KEY_SIZE("headers") + pw_container_size(m->n_headers) + PW_KEY_SIZE("body") +
		   pw_bin_size(m->body.len) + PW_KEY_SIZE("body_len") + pw_uint_size(m->body_len) +
		   PW_KEY_SIZE("truncated") + 1;
	if (is_req)
		n += PW_KEY_SIZE("method") + slice_size(&m->method) + PW_KEY_SIZE("target") +
		     slice_size(&m->target);
	else
		n += PW_KEY_SIZE("status") + pw_uint_size(m->status) + PW_KEY_SIZE("reason") +
		     slice_size(&m->reason);
	for (size_t i = 0; i < m->n_headers; i++)
		n += 1 + slice_size(&m->headers[i].name) + slice_size(&m->headers[i].value);
	if (m->n_trailers)
		n += PW_KEY_SIZE("trailers") + pw_container_size(m->n_trailers);
	for (size_t i = 0; i < m->n_trailers; i++)
		n += 1 + slice_size(&m->trailers[i].name) + slice_size(&m->trailers[i].value);
	return n;
}

static void pw_slice(struct pw *c, const struct store_slice *s)
{
	pw_str(c, s->ptr, s->len);
}

static void pw_fields(struct pw *c, const struct store_header *h, size_t n)
{
	pw_array(c, n);
	for (size_t i = 0; i < n; i++) {
		pw_array(c, 2);
		pw_slice(c, &h[i].name);
		pw_slice(c, &h[i].value);
	}
}

static void pw_message(struct pw *c, const struct store_message *m, int is_req)
{
	pw_map(c, 7 + (m->n_trailers != 0));
	if (is_req) {
		PW_KEY(c, "method");
		pw_slice(c, &m->method);
		PW_KEY(c, "target");
		pw_slice(c, &m->target);
	} else {
		PW_KEY(c, "status");
		pw_uint(c, m->status);
		PW_KEY(c, "reason");
		pw_slice(c, &m->reason);
	}
	PW_KEY(c, "version");
	pw_array(c, 2);
	pw_uint(c, m->version_major);
	pw_uint(c, m->version_minor);
	PW_KEY(c, "headers");
	pw_fields(c, m->headers, m->n_headers);
	PW_KEY(c, "body");
	pw_bin(c, m->body.ptr, m->body.len);
	PW_KEY(c, "body_len");
	pw_uint(c, m->body_len);
	PW_KEY(c, "truncated");
	pw_bool(c, m->truncated);
	if (m->n_trailers) { /* optional, after the 7 keys: HTTP/1.x maps are unchanged */
		PW_KEY(c, "trailers");
		pw_fields(c, m->trailers, m->n_trailers);
	}
}

/* The "v" and "t" keys every record map opens with. */
#define REC_HEAD_SIZE (PW_KEY_SIZE("v") + 1 + PW_KEY_SIZE("t") + 1)

static void pw_rec_head(struct pw *c, uint8_t type, uint8_t v)
{
	_Static_assert(STORE_SCHEMA_VERSION < 128 && STORE_REC_RESULT < 128, "fixints");
	PW_KEY(c, "v");
	pw_uint(c, v);
	PW_KEY(c, "t");
	pw_uint(c, type);
}

/* The "resp" key: the response map, or nil when there was none. */
static size_t resp_size(const struct store_message *m)
{
	return PW_KEY_SIZE("resp") + (m->present ? message_size(m, 0) : 1);
}

static void pw_resp(struct pw *c, const struct store_message *m)
{
	PW_KEY(c, "resp");
	if (m->present)
		pw_message(c, m, 0);
	else
		pw_nil(c);
}

static size_t proto_len(uint32_t proto)
{
	const char *name = store_proto_name(proto);
	return name ? strlen(name) : 7;
}

/* Records holding HTTP/2 messages are version 2 (docs/format.md §2). */
static uint8_t msg_version(const struct store_message *m)
{
	return m->present && (m->version_major >= 2 || m->n_trailers) ? STORE_SCHEMA_VERSION_H2 : 1;
}

/* The keys of a session record: 18, + "vlan", + "proto" and "stream", +
 * "ts_reset_ns" and "reset_code" (docs/format.md §2.1). */
static uint32_t session_keys(const struct store_session *s)
{
	return 18 + (s->vlan != 0) + 2 * (s->proto != 0) + 2 * (s->ts_reset_ns != 0);
}

static size_t session_size(const void *rec)
{
	const struct store_session *s = rec;
	size_t addr = pw_bin_size(s->ip_version == 6 ? 16 : 4);
	size_t n = pw_container_size(session_keys(s)) + REC_HEAD_SIZE + PW_KEY_SIZE("id") +
		   pw_uint_size(s->id) + PW_KEY_SIZE("ip_version") + pw_uint_size(s->ip_version) +
		   PW_KEY_SIZE("src") + addr + PW_KEY_SIZE("src_port") + pw_uint_size(s->src.port) +
		   PW_KEY_SIZE("dst") + addr + PW_KEY_SIZE("dst_port") + pw_uint_size(s->dst.port) +
		   PW_KEY_SIZE("lane") + slice_size(&s->lane) + PW_KEY_SIZE("conn_id") +
		   pw_uint_size(s->conn_id) + PW_KEY_SIZE("conn_index") +
		   pw_uint_size(s->conn_index) + PW_KEY_SIZE("ts_req_first_ns") +
		   pw_int_size(s->ts_req_first_ns) + PW_KEY_SIZE("ts_req_last_ns") +
		   pw_int_size(s->ts_req_last_ns) + PW_KEY_SIZE("ts_resp_first_ns") +
		   pw_int_size(s->ts_resp_first_ns) + PW_KEY_SIZE("ts_resp_last_ns") +
		   pw_int_size(s->ts_resp_last_ns) + PW_KEY_SIZE("req") + message_size(&s->req, 1) +
		   resp_size(&s->resp) + PW_KEY_SIZE("flags") + pw_uint_size(s->flags);
	if (s->vlan)
		n += PW_KEY_SIZE("vlan") + pw_uint_size(s->vlan);
	if (s->proto)
		n += PW_KEY_SIZE("proto") + pw_str_size(proto_len(s->proto)) +
		     PW_KEY_SIZE("stream") + pw_uint_size(s->stream_id);
	if (s->ts_reset_ns)
		n += PW_KEY_SIZE("ts_reset_ns") + pw_int_size(s->ts_reset_ns) +
		     PW_KEY_SIZE("reset_code") + pw_uint_size(s->reset_code);
	return n;
}

static void pack_session(struct pw *c, const void *rec)
{
	const struct store_session *s = rec;
	size_t alen = s->ip_version == 6 ? 16 : 4;
	pw_map(c, session_keys(s));
	/* HTTP/2 sessions are version 2: a version-1 reader skips them rather
	 * than take pseudo-header fields for HTTP/1.x headers. */
	pw_rec_head(c, STORE_REC_SESSION, s->proto ? STORE_SCHEMA_VERSION_H2 : 1);
	PW_KEY(c, "id");
	pw_uint(c, s->id);
	PW_KEY(c, "ip_version");
	pw_uint(c, s->ip_version);
	PW_KEY(c, "src");
	pw_bin(c, s->src.addr, alen);
	PW_KEY(c, "src_port");
	pw_uint(c, s->src.port);
	PW_KEY(c, "dst");
	pw_bin(c, s->dst.addr, alen);
	PW_KEY(c, "dst_port");
	pw_uint(c, s->dst.port);
	if (s->vlan) {
		PW_KEY(c, "vlan");
		pw_uint(c, s->vlan);
	}
	PW_KEY(c, "lane");
	pw_slice(c, &s->lane);
	PW_KEY(c, "conn_id");
	pw_uint(c, s->conn_id);
	PW_KEY(c, "conn_index");
	pw_uint(c, s->conn_index);
	PW_KEY(c, "ts_req_first_ns");
	pw_int(c, s->ts_req_first_ns);
	PW_KEY(c, "ts_req_last_ns");
	pw_int(c, s->ts_req_last_ns);
	PW_KEY(c, "ts_resp_first_ns");
	pw_int(c, s->ts_resp_first_ns);
	PW_KEY(c, "ts_resp_last_ns");
	pw_int(c, s->ts_resp_last_ns);
	PW_KEY(c, "req");
	pw_message(c, &s->req, 1);
	pw_resp(c, &s->resp);
	PW_KEY(c, "flags");
	pw_uint(c, s->flags);
	if (s->proto) {
		const char *name = store_proto_name(s->proto);
		PW_KEY(c, "proto");
		pw_str(c, name ? name : "unknown", proto_len(s->proto));
		PW_KEY(c, "stream");
		pw_uint(c, s->stream_id);
	}
	if (s->ts_reset_ns) { /* optional: a reset HTTP/2 stream */
		PW_KEY(c, "ts_reset_ns");
		pw_int(c, s->ts_reset_ns);
		PW_KEY(c, "reset_code");
		pw_uint(c, s->reset_code);
	}
}

static size_t result_size(const void *rec)
{
	const struct store_result *r = rec;
	size_t cw =
	    r->causal_wait_ns ? PW_KEY_SIZE("causal_wait_ns") + pw_uint_size(r->causal_wait_ns) : 0;
	return cw + pw_container_size(r->causal_wait_ns ? 12 : 11) + REC_HEAD_SIZE +
	       PW_KEY_SIZE("session_id") + pw_uint_size(r->session_id) + PW_KEY_SIZE("target") +
	       slice_size(&r->target) + PW_KEY_SIZE("role") + slice_size(&r->role) +
	       PW_KEY_SIZE("ts_sent_ns") + pw_int_size(r->ts_sent_ns) + PW_KEY_SIZE("latency_ns") +
	       pw_uint_size(r->latency_ns) + PW_KEY_SIZE("lateness_ns") +
	       pw_int_size(r->lateness_ns) + PW_KEY_SIZE("error") + pw_uint_size(r->error) +
	       PW_KEY_SIZE("error_msg") + slice_size(&r->error_msg) + resp_size(&r->resp);
}

static void pack_result(struct pw *c, const void *rec)
{
	const struct store_result *r = rec;
	pw_map(c, r->causal_wait_ns ? 12 : 11);
	pw_rec_head(c, STORE_REC_RESULT, msg_version(&r->resp));
	PW_KEY(c, "session_id");
	pw_uint(c, r->session_id);
	PW_KEY(c, "target");
	pw_slice(c, &r->target);
	PW_KEY(c, "role");
	pw_slice(c, &r->role);
	PW_KEY(c, "ts_sent_ns");
	pw_int(c, r->ts_sent_ns);
	PW_KEY(c, "latency_ns");
	pw_uint(c, r->latency_ns);
	PW_KEY(c, "lateness_ns");
	pw_int(c, r->lateness_ns);
	if (r->causal_wait_ns) { /* optional: written only when the request waited */
		PW_KEY(c, "causal_wait_ns");
		pw_uint(c, r->causal_wait_ns);
	}
	PW_KEY(c, "error");
	pw_uint(c, r->error);
	PW_KEY(c, "error_msg");
	pw_slice(c, &r->error_msg);
	pw_resp(c, &r->resp);
}

/* ---- frames ---- */

/* Write a skippable frame of @p content; the caller left 8 bytes in front. */
static int write_skippable(struct store_writer *w, uint32_t magic, struct dbuf *b)
{
	store_put_le32(b->data, magic);
	store_put_le32(b->data + 4, (uint32_t)(b->len - 8));
	int rc = write_all(w->fd, b->data, b->len);
	if (rc) {
		w->write_errors++;
		return rc;
	}
	w->off += b->len;
	return 0;
}

/* Room for the compressed form of @p len bytes in w->cbuf. */
static int cbuf_reserve(struct store_writer *w, size_t len)
{
	size_t bound = ZSTD_compressBound(len);
	if (bound <= w->ccap)
		return 0;
	uint8_t *p = mem_realloc(w->cbuf, bound);
	if (!p) {
		snprintf(w->err, sizeof(w->err), "out of memory for a %zu byte frame", bound);
		return -ENOMEM;
	}
	w->cbuf = p;
	w->ccap = bound;
	return 0;
}

/* Compress @p b into w->cbuf and write it: the frame's size, or -errno / -EIO
 * (zstd error code in *zerr). Runs on either thread; touches only cbuf and fd. */
static int64_t compress_write(struct store_writer *w, const struct dbuf *b, size_t *zerr)
{
	size_t n = ZSTD_compress2(w->cctx, w->cbuf, w->ccap, b->data, b->len);
	if (ZSTD_isError(n)) {
		*zerr = n;
		return -EIO;
	}
	int rc = write_all(w->fd, w->cbuf, n);
	return rc ? rc : (int64_t)n;
}

/* Move the index entries held in memory to the temporary file. */
static void index_spill(struct store_writer *w)
{
	if (w->index_nospill)
		return;
	if (w->index_fd < 0) {
		char dir[PATH_MAX];
		const char *slash = strrchr(w->path, '/');
		size_t n = slash ? (size_t)(slash - w->path) : 0;
		if (n >= sizeof(dir)) {
			w->index_nospill = true;
			return;
		}
		memcpy(dir, w->path, n);
		if (slash && !n)
			dir[n++] = '/';
		else if (!slash)
			dir[n++] = '.';
		dir[n] = '\0';
		w->index_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (w->index_fd < 0) {
			w->index_nospill = true;
			return;
		}
	}
	uint64_t n = w->index.len / sizeof(struct widx);
	if (write_all(w->index_fd, w->index.data, w->index.len)) {
		/* keep them in memory, and every later one */
		w->index_nospill = true;
		if (ftruncate(w->index_fd, (off_t)(w->index_spilled * sizeof(struct widx))) ||
		    lseek(w->index_fd, 0, SEEK_END) < 0)
			w->index_spilled = 0; /* cannot trust the file: unreachable in practice */
		return;
	}
	w->index_spilled += n;
	dbuf_reset(&w->index);
}

/* Account a frame of @p raw bytes written as @p e (e->size set), or its failure. */
static int frame_done(struct store_writer *w, struct widx *e, size_t raw, int64_t n, size_t zerr)
{
	if (n == -EIO && zerr) {
		snprintf(w->err, sizeof(w->err), "zstd compression failed: %s",
			 ZSTD_getErrorName(zerr));
		STORE_LOG(LOG_DEBUG, "%s", w->err); /* the caller reports it */
		w->failed = -EIO;
		w->lost += e->records;
		return -EIO;
	}
	if (n < 0) {
		w->write_errors++;
		w->failed = -EIO;
		w->lost += e->records;
		set_err(w, "cannot write store file", (int)-n);
		return -EIO;
	}
	e->size = (uint64_t)n;
	int rc = dbuf_append(&w->index, e, sizeof(*e));
	if (rc) {
		snprintf(w->err, sizeof(w->err), "index full (%zu frames)",
			 w->index.len / sizeof(*e));
		w->failed = rc; /* the frame is in the file but cannot be indexed */
		return rc;
	}
	if (w->index.len >= w->index_mem * sizeof(*e))
		index_spill(w);
	w->off += (uint64_t)n;
	w->frames++;
	w->raw_bytes += raw;
	w->comp_bytes += (uint64_t)n;
	return 0;
}

static void *bg_main(void *arg)
{
	struct store_writer *w = arg;
	pthread_mutex_lock(&w->bg_mu);
	for (;;) {
		while (!w->bg_busy && !w->bg_quit)
			pthread_cond_wait(&w->bg_cv, &w->bg_mu);
		if (!w->bg_busy)
			break;
		pthread_mutex_unlock(&w->bg_mu);
		size_t zerr = 0;
		int64_t n = compress_write(w, &w->job, &zerr);
		pthread_mutex_lock(&w->bg_mu);
		w->job_rc = n < 0 ? (int)n : 0;
		w->job_e.size = n < 0 ? 0 : (uint64_t)n;
		w->job_zerr = zerr;
		w->bg_busy = false;
		pthread_cond_broadcast(&w->bg_cv);
	}
	pthread_mutex_unlock(&w->bg_mu);
	return NULL;
}

/* Wait for the frame in flight and account it. */
static int bg_collect(struct store_writer *w)
{
	pthread_mutex_lock(&w->bg_mu);
	while (w->bg_busy)
		pthread_cond_wait(&w->bg_cv, &w->bg_mu);
	pthread_mutex_unlock(&w->bg_mu);
	if (!w->bg_done)
		return w->failed;
	w->bg_done = false;
	int64_t n = w->job_rc ? w->job_rc : (int64_t)w->job_e.size;
	int rc = frame_done(w, &w->job_e, w->job.len, n, w->job_zerr);
	dbuf_reset(&w->job);
	return rc;
}

static void pend_clear(struct store_writer *w)
{
	dbuf_reset(&w->pend);
	w->pend_records = 0;
}

/* Hand the pending batch to the background thread (after the previous frame). */
static int bg_submit(struct store_writer *w)
{
	pthread_mutex_lock(&w->bg_mu);
	bool busy = w->bg_busy;
	pthread_mutex_unlock(&w->bg_mu);
	if (busy)
		w->bg_waits++;
	int rc = bg_collect(w);
	if (!rc)
		rc = cbuf_reserve(w, w->pend.len);
	if (rc)
		return rc;
	struct dbuf t = w->job;
	w->job = w->pend;
	w->pend = t;
	w->job_e = (struct widx){w->off, 0, w->pend_min_ts, w->pend_max_ts, w->pend_records};
	pend_clear(w);
	w->bg_done = true;
	pthread_mutex_lock(&w->bg_mu);
	w->bg_busy = true;
	pthread_cond_signal(&w->bg_cv);
	pthread_mutex_unlock(&w->bg_mu);
	return 0;
}

/* Write the pending batch as a data frame (handed over when in background mode). */
static int flush_frame(struct store_writer *w)
{
	if (w->failed)
		return w->failed;
	if (!w->pend.len)
		return 0;
	if (w->bg_on)
		return bg_submit(w);
	int rc = cbuf_reserve(w, w->pend.len);
	if (rc)
		return rc;
	struct widx e = {w->off, 0, w->pend_min_ts, w->pend_max_ts, w->pend_records};
	size_t zerr = 0;
	int64_t n = compress_write(w, &w->pend, &zerr);
	rc = frame_done(w, &e, w->pend.len, n, zerr);
	if (!rc || w->failed)
		pend_clear(w); /* written, or counted lost with its frame */
	return rc;
}

/* flush_frame(), then wait until the frame is in the file. */
static int flush_frame_wait(struct store_writer *w)
{
	int rc = flush_frame(w);
	if (w->bg_on) {
		int rc2 = bg_collect(w);
		if (!rc)
			rc = rc2;
	}
	return rc;
}

/* The "origins" key: one map per recording replayed (docs/format.md §1.1). */
static void pack_origins(msgpack_packer *pk, const struct store_origin *o, size_t n)
{
	PK_KEY(pk, "origins");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(pk, 7);
		PK_KEY(pk, "id");
		pk_cstr(pk, o[i].id ? o[i].id : "");
		PK_KEY(pk, "file");
		pk_cstr(pk, o[i].file ? o[i].file : "");
		PK_KEY(pk, "first_ns");
		msgpack_pack_int64(pk, o[i].first_ns);
		PK_KEY(pk, "last_ns");
		msgpack_pack_int64(pk, o[i].last_ns);
		PK_KEY(pk, "sessions");
		msgpack_pack_uint64(pk, o[i].sessions);
		PK_KEY(pk, "state");
		pk_cstr(pk, o[i].state ? o[i].state : "");
		PK_KEY(pk, "counters");
		size_t nc = 0;
		for (size_t k = 0; k < o[i].n_counters; k++)
			nc += o[i].counters[k].name != NULL;
		msgpack_pack_map(pk, nc);
		for (size_t k = 0; k < o[i].n_counters; k++) {
			if (!o[i].counters[k].name)
				continue;
			pk_cstr(pk, o[i].counters[k].name);
			msgpack_pack_uint64(pk, o[i].counters[k].value);
		}
	}
}

static int write_header(struct store_writer *w, const struct store_meta *m)
{
	struct dbuf b;
	uint8_t v[4];
	dbuf_init(&b, STORE_HEADER_MAX + 8);
	/* The map is packed into the (still empty) pending batch, then moved into b. */
	store_put_le32(v, STORE_FORMAT_VERSION);
	if (dbuf_append(&b, "\0\0\0\0\0\0\0\0" STORE_HEADER_TAG, 12) || dbuf_append(&b, v, 4)) {
		dbuf_release(&b);
		snprintf(w->err, sizeof(w->err), "out of memory");
		return -ENOMEM;
	}

	msgpack_packer *pk = &w->pk;
	size_t n = 2 + (m && m->kind) + (m && m->source) + (m && m->filter) + (m && m->n_rules) +
		   (m && m->host) + (m && m->start_ns) + (m && m->n_redactions) +
		   (m && m->n_origins) + (m && m->n_targets) + 2 * (m && m->shard_n) +
		   (m && m->has_result_lag) + (m && m->pace);
	msgpack_pack_map(pk, n);
	PK_KEY(pk, "tool_version");
	pk_cstr(pk, m && m->tool_version ? m->tool_version : DYETAP_VERSION);
	PK_KEY(pk, "file_id");
	pk_cstr(pk, w->file_id);
	if (m && m->n_origins)
		pack_origins(pk, m->origins, m->n_origins);
	if (m && m->n_targets) {
		PK_KEY(pk, "targets");
		msgpack_pack_array(pk, m->n_targets);
		for (size_t i = 0; i < m->n_targets; i++) {
			msgpack_pack_array(pk, 2);
			pk_cstr(pk, m->targets[i].role ? m->targets[i].role : "");
			pk_cstr(pk, m->targets[i].url ? m->targets[i].url : "");
		}
	}
	if (m && m->shard_n) {
		PK_KEY(pk, "shard");
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint32(pk, m->shard_k);
		msgpack_pack_uint32(pk, m->shard_n);
		PK_KEY(pk, "shard_sessions");
		msgpack_pack_array(pk, m->shard_sessions ? m->shard_n : 0);
		for (uint32_t i = 0; m->shard_sessions && i < m->shard_n; i++)
			msgpack_pack_uint64(pk, m->shard_sessions[i]);
	}
	if (m && m->has_result_lag) {
		PK_KEY(pk, "result_lag");
		msgpack_pack_uint64(pk, m->result_lag);
	}
	if (m && m->pace) {
		PK_KEY(pk, "pace");
		pk_cstr(pk, m->pace);
	}
	if (m && m->kind) {
		PK_KEY(pk, "kind");
		pk_cstr(pk, m->kind);
	}
	if (m && m->source) {
		PK_KEY(pk, "source");
		pk_cstr(pk, m->source);
	}
	if (m && m->filter) {
		PK_KEY(pk, "filter");
		pk_cstr(pk, m->filter);
	}
	if (m && m->n_rules)
		pk_cstr_array(pk, "rules", m->rules, m->n_rules);
	if (m && m->n_redactions)
		pk_cstr_array(pk, "redactions", m->redactions, m->n_redactions);
	if (m && m->host) {
		PK_KEY(pk, "host");
		pk_cstr(pk, m->host);
	}
	if (m && m->start_ns) {
		PK_KEY(pk, "start_ns");
		msgpack_pack_int64(pk, m->start_ns);
	}
	int rc = w->pack_rc;
	if (!rc)
		rc = dbuf_append(&b, w->pend.data, w->pend.len);
	dbuf_reset(&w->pend);
	w->pack_rc = 0;
	if (!rc) {
		store_put_le32(v, store_crc32c(0, b.data + 8, b.len - 8));
		rc = dbuf_append(&b, v, 4);
	}
	if (rc) {
		dbuf_release(&b);
		if (rc == -E2BIG)
			snprintf(w->err, sizeof(w->err), "metadata too large (limit %u bytes)",
				 STORE_HEADER_MAX);
		else
			snprintf(w->err, sizeof(w->err), "out of memory");
		return rc;
	}
	rc = write_skippable(w, STORE_MAGIC_HEADER, &b);
	dbuf_release(&b);
	if (rc)
		set_err(w, "cannot write store header", -rc);
	return rc;
}

static int bg_start(struct store_writer *w, char *err, size_t errlen)
{
	int e = pthread_mutex_init(&w->bg_mu, NULL);
	if (!e) {
		e = pthread_cond_init(&w->bg_cv, NULL);
		if (e)
			pthread_mutex_destroy(&w->bg_mu);
	}
	if (!e) {
		e = pthread_create(&w->bg_thread, NULL, bg_main, w);
		if (e) {
			pthread_cond_destroy(&w->bg_cv);
			pthread_mutex_destroy(&w->bg_mu);
		}
	}
	if (e) {
		snprintf(err, errlen, "cannot start the store's compression thread: %s",
			 strerror(e));
		return -e;
	}
	w->bg_on = true;
	w->bg_used = true;
	return 0;
}

/* End the compression thread after the frame in flight (if any) is written. */
static void bg_stop(struct store_writer *w)
{
	if (!w->bg_on)
		return;
	pthread_mutex_lock(&w->bg_mu);
	w->bg_quit = true;
	pthread_cond_signal(&w->bg_cv);
	pthread_mutex_unlock(&w->bg_mu);
	pthread_join(w->bg_thread, NULL);
	pthread_cond_destroy(&w->bg_cv);
	pthread_mutex_destroy(&w->bg_mu);
	w->bg_on = false;
}

/* 128 random bits as 32 lower-case hex digits (getrandom(2), urandom pool). */
static int new_file_id(char out[STORE_FILE_ID_LEN + 1])
{
	uint8_t r[STORE_FILE_ID_LEN / 2];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[STORE_FILE_ID_LEN] = '\0';
	return 0;
}

/*
 * Open the output: a regular file (or a new one) through PATH.partial,
 * locked; anything else (a FIFO, /dev/stdout) directly. A symbolic link is
 * followed, so the file it names is the one replaced at the end.
 */
static int open_output(struct store_writer *w, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char real[PATH_MAX];
	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && realpath(path, real))
		path = real;
	bool exists = stat(path, &sb) == 0;
	w->path = mem_strdup(path);
	if (!w->path) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (exists && !S_ISREG(sb.st_mode)) {
		w->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (w->fd < 0) {
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
			return -errno;
		}
		return 0;
	}
	size_t n = strlen(path) + sizeof(STORE_PARTIAL_SUFFIX);
	w->tmp = mem_alloc(n);
	if (!w->tmp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(w->tmp, n, "%s%s", path, STORE_PARTIAL_SUFFIX);
	/* The finishing writer renames the .partial away while holding its lock:
	 * after locking, check that the name still leads to the file locked. */
	for (int tries = 0; tries < 8; tries++) {
		int fd = open(w->tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create %s: %s", w->tmp, strerror(errno));
			return -errno;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			int e = errno;
			close(fd);
			if (e == EWOULDBLOCK) {
				snprintf(err, errlen,
					 "%s is being written by another process (its data goes "
					 "to %s): wait for it to finish or write another file",
					 path, w->tmp);
				return -EBUSY;
			}
			snprintf(err, errlen, "cannot lock %s: %s", w->tmp, strerror(e));
			return -e;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(w->tmp, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			w->fd = fd;
			break;
		}
		close(fd);
	}
	if (w->fd < 0) {
		snprintf(err, errlen, "cannot create %s: it keeps being replaced", w->tmp);
		return -EBUSY;
	}
	/* An old .partial left by a crash is ours now: start it afresh, private
	 * even when it was not (regular files only). */
	if (ftruncate(w->fd, 0) != 0 || fchmod(w->fd, 0600) != 0) {
		snprintf(err, errlen, "cannot prepare %s (mode 0600): %s", w->tmp, strerror(errno));
		return -errno;
	}
	return 0;
}

struct store_writer *store_writer_create(const struct store_writer_params *p, char *err,
					 size_t errlen)
{
	if (!p || !p->path || !*p->path) {
		snprintf(err, errlen, "no output file given");
		return NULL;
	}
	struct store_writer *w = mem_calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->fd = -1;
	w->index_fd = -1;
	w->index_mem = p->index_mem_frames ? p->index_mem_frames : index_mem_default;
	dbuf_init(&w->pend, STORE_MAX_FRAME_CONTENT);
	dbuf_init(&w->job, STORE_MAX_FRAME_CONTENT);
	dbuf_init(&w->index, (size_t)1 << 30);
	msgpack_packer_init(&w->pk, w, pack_write);
	w->flush_bytes = p->flush_bytes ? p->flush_bytes : STORE_DEFAULT_FLUSH_BYTES;
	if (w->flush_bytes > STORE_MAX_FLUSH_BYTES)
		w->flush_bytes = STORE_MAX_FLUSH_BYTES;
	w->flush_ns = (int64_t)(p->flush_ms ? p->flush_ms : STORE_DEFAULT_FLUSH_MS) * 1000000;
	int level = p->level ? p->level : STORE_DEFAULT_LEVEL;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
		snprintf(err, errlen, "compression level %d out of range (%d..%d)", level,
			 ZSTD_minCLevel(), ZSTD_maxCLevel());
		goto fail;
	}
	w->cctx = ZSTD_createCCtx();
	if (!w->cctx ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1))) {
		snprintf(err, errlen, "cannot set up zstd compression");
		goto fail;
	}
	if (new_file_id(w->file_id) != 0) {
		snprintf(err, errlen, "cannot draw a random file id: %s", strerror(errno));
		goto fail;
	}
	if (open_output(w, p->path, err, errlen) != 0)
		goto fail;
	if (write_header(w, p->meta) != 0) {
		snprintf(err, errlen, "%s: %s", p->path, w->err);
		goto fail;
	}
	if (p->background && bg_start(w, err, errlen) != 0)
		goto fail;
	return w;
fail:
	/* Nothing useful was written: remove the .partial this call created. */
	if (w->tmp && w->fd >= 0)
		unlink(w->tmp);
	store_writer_free(w);
	return NULL;
}

const char *store_writer_file_id(const struct store_writer *w)
{
	return w->file_id;
}

uint64_t store_writer_lost(const struct store_writer *w)
{
	return w->lost + w->pend_records + (w->bg_done ? w->job_e.records : 0);
}

/* A writer whose file failed refuses further records (the file is no longer whole). */
static int rec_begin(struct store_writer *w)
{
	w->pack_rc = 0;
	return w->failed;
}

/* Finish a record packed from @p start: roll back on error, flush when due. */
static int rec_end(struct store_writer *w, size_t start, int64_t ts, int is_session)
{
	if (w->pack_rc) {
		int rc = w->pack_rc;
		w->pend.len = start;
		w->pack_rc = 0;
		return rc;
	}
	int64_t now = clk_mono_ns();
	if (!w->pend_records) {
		w->pend_since = now;
		w->pend_min_ts = w->pend_max_ts = ts;
	} else {
		if (ts < w->pend_min_ts)
			w->pend_min_ts = ts;
		if (ts > w->pend_max_ts)
			w->pend_max_ts = ts;
	}
	w->pend_records++;
	w->records++;
	if (is_session)
		w->sessions++;
	else
		w->results++;
	if (w->pend.len >= w->flush_bytes || now - w->pend_since >= w->flush_ns)
		return flush_frame(w);
	return 0;
}

/* Reserve a record's exact size in the batch, flushing the batch first when
 * it cannot take the record. */
static int rec_reserve(struct store_writer *w, size_t size, size_t *start)
{
	int rc = dbuf_reserve(&w->pend, size);
	if (rc == -E2BIG && w->pend.len > 0) {
		rc = flush_frame(w);
		if (!rc)
			rc = dbuf_reserve(&w->pend, size);
	}
	*start = w->pend.len;
	return rc;
}

static int add_record(struct store_writer *w, size_t (*size_fn)(const void *),
		      void (*pack)(struct pw *, const void *), const void *rec, int64_t ts,
		      int is_session)
{
	int rc = rec_begin(w);
	if (rc) {
		w->lost++;
		return rc;
	}
	size_t size = size_fn(rec), start;
	rc = rec_reserve(w, size, &start);
	if (!rc) {
		struct pw c = {w->pend.data + start};
		pack(&c, rec);
		if ((size_t)(c.p - (w->pend.data + start)) != size) {
			/* A sizing bug: never write a record that may be cut. */
			snprintf(w->err, sizeof(w->err),
				 "internal error: record size %zu, packed %zu", size,
				 (size_t)(c.p - (w->pend.data + start)));
			w->lost++;
			return -EIO;
		}
		w->pend.len = start + size;
		w->pend.data[w->pend.len] = '\0';
	}
	w->pack_rc = rc;
	uint64_t before = w->records;
	rc = rec_end(w, start, ts, is_session);
	if (rc && w->records == before)
		w->lost++; /* refused; one accepted into a failed frame is counted with it */
	if (rc == -E2BIG)
		snprintf(w->err, sizeof(w->err), "record larger than the frame limit (%u bytes)",
			 STORE_MAX_FRAME_CONTENT);
	else if (rc == -ENOMEM)
		snprintf(w->err, sizeof(w->err), "out of memory");
	return rc;
}

int store_writer_add_session(struct store_writer *w, const struct store_session *s)
{
	return add_record(w, session_size, pack_session, s, s->ts_req_first_ns, 1);
}

/* A session given as its encoded map, its "id" and "conn_id" values given anew. */
struct raw_session {
	const struct store_raw_record *raw;
	size_t head; /* bytes of the input's map header */
	uint32_t n;  /* entries in the input */
	struct span {
		size_t off, len; /* len 0: missing, appended */
		uint64_t v;
		const char *key;
	} sp[2]; /* in byte order */
};

/* Is [off, off + len) of @p b one msgpack unsigned integer? */
static bool uint_at(const struct store_slice *b, size_t off, size_t len)
{
	if (!len)
		return true;
	if (off > b->len || len > b->len - off)
		return false;
	struct mp c = {b->ptr + off, b->ptr + off + len};
	uint64_t v;
	return mp_uint(&c, &v) && c.p == c.end;
}

static bool raw_session_init(struct raw_session *rs, const struct store_raw_record *raw,
			     uint64_t id, uint64_t conn_id)
{
	struct mp c = {raw->bytes.ptr, raw->bytes.ptr + raw->bytes.len};
	if (!mp_container(&c, true, &rs->n) || !uint_at(&raw->bytes, raw->id_off, raw->id_len) ||
	    !uint_at(&raw->bytes, raw->conn_id_off, raw->conn_id_len))
		return false;
	rs->raw = raw;
	rs->head = (size_t)(c.p - raw->bytes.ptr);
	struct span a = {raw->id_off, raw->id_len, id, "id"};
	struct span b = {raw->conn_id_off, raw->conn_id_len, conn_id, "conn_id"};
	bool swap = b.len && (!a.len || b.off < a.off);
	rs->sp[0] = swap ? b : a;
	rs->sp[1] = swap ? a : b;
	for (int i = 0; i < 2; i++)
		if (rs->sp[i].len && rs->sp[i].off < rs->head)
			return false;
	/* Two present spans must not overlap. */
	return !(rs->sp[0].len && rs->sp[1].len && rs->sp[0].off + rs->sp[0].len > rs->sp[1].off);
}

static size_t raw_session_size(const void *rec)
{
	const struct raw_session *rs = rec;
	uint32_t missing = 0;
	size_t size = rs->raw->bytes.len - rs->head;
	for (int i = 0; i < 2; i++) {
		const struct span *sp = &rs->sp[i];
		size = size - sp->len + pw_uint_size(sp->v);
		if (!sp->len) {
			size += 1 + strlen(sp->key);
			missing++;
		}
	}
	return size + pw_container_size(rs->n + missing);
}

static void pack_raw_session(struct pw *o, const void *rec)
{
	const struct raw_session *rs = rec;
	const uint8_t *in = rs->raw->bytes.ptr;
	pw_map(o, rs->n + !rs->sp[0].len + !rs->sp[1].len);
	size_t at = rs->head;
	for (int i = 0; i < 2; i++) {
		const struct span *sp = &rs->sp[i];
		if (!sp->len)
			continue;
		memcpy(o->p, in + at, sp->off - at);
		o->p += sp->off - at;
		pw_uint(o, sp->v);
		at = sp->off + sp->len;
	}
	memcpy(o->p, in + at, rs->raw->bytes.len - at);
	o->p += rs->raw->bytes.len - at;
	for (int i = 0; i < 2; i++) {
		const struct span *sp = &rs->sp[i];
		if (!sp->len) {
			pw_str(o, sp->key, strlen(sp->key));
			pw_uint(o, sp->v);
		}
	}
}

int store_writer_add_session_raw(struct store_writer *w, const struct store_raw_record *raw,
				 uint64_t id, uint64_t conn_id, int64_t ts)
{
	struct raw_session rs;
	if (!raw_session_init(&rs, raw, id, conn_id)) {
		w->lost++;
		snprintf(w->err, sizeof(w->err),
			 "a session given as bytes is not a msgpack map with integer ids");
		return -EINVAL;
	}
	return add_record(w, raw_session_size, pack_raw_session, &rs, ts, 1);
}

int store_writer_add_result(struct store_writer *w, const struct store_result *r)
{
	return add_record(w, result_size, pack_result, r, r->ts_sent_ns, 0);
}

/* ---- packing apart from writing ---- */

/* Append record @p rec packed by @p pack (@p size bytes) to @p out. */
static int pack_into(struct dbuf *out, size_t size, void (*pack)(struct pw *, const void *),
		     const void *rec)
{
	int rc = dbuf_reserve(out, size);
	if (rc)
		return rc;
	struct pw c = {out->data + out->len};
	pack(&c, rec);
	if ((size_t)(c.p - (out->data + out->len)) != size)
		return -EIO; /* a sizing bug: never hand out a record that may be cut */
	out->len += size;
	out->data[out->len] = '\0';
	return 0;
}

int store_pack_session(struct dbuf *out, const struct store_session *s)
{
	return pack_into(out, session_size(s), pack_session, s);
}

int store_pack_session_raw(struct dbuf *out, const struct store_raw_record *raw, uint64_t id,
			   uint64_t conn_id)
{
	struct raw_session rs;
	if (!raw_session_init(&rs, raw, id, conn_id))
		return -EINVAL;
	return pack_into(out, raw_session_size(&rs), pack_raw_session, &rs);
}

int store_pack_result(struct dbuf *out, const struct store_result *r)
{
	return pack_into(out, result_size(r), pack_result, r);
}

/* Packed bytes as a record for add_record(). */
static size_t packed_size(const void *rec)
{
	return ((const struct store_slice *)rec)->len;
}

static void pack_packed(struct pw *o, const void *rec)
{
	const struct store_slice *b = rec;
	memcpy(o->p, b->ptr, b->len);
	o->p += b->len;
}

int store_writer_add_packed(struct store_writer *w, const void *rec, size_t len, int64_t ts,
			    bool is_session)
{
	struct store_slice b = {rec, len};
	return add_record(w, packed_size, pack_packed, &b, ts, is_session);
}

int store_writer_tick(struct store_writer *w)
{
	if (!w->pend_records)
		return 0;
	if (clk_mono_ns() - w->pend_since < w->flush_ns)
		return 0;
	return flush_frame(w);
}

int store_writer_flush(struct store_writer *w)
{
	return flush_frame_wait(w);
}

void store_writer_default_index_mem(size_t frames)
{
	index_mem_default = frames ? frames : INDEX_MEM_ENTRIES;
}

static int write_index(struct store_writer *w, const struct store_counter *counters,
		       size_t n_counters)
{
	const char *own[7] = {"store_records", "store_frames", "store_raw_bytes",
			      "store_compressed_bytes", "store_write_errors"};
	uint64_t ownv[7] = {w->records, w->frames, w->raw_bytes, w->comp_bytes, w->write_errors};
	size_t n_own = 5;
	/* store_bg_waits only for a writer that compressed in the background,
	 * store_index_spilled only for one that spilled its index */
	if (w->bg_used) {
		own[n_own] = "store_bg_waits";
		ownv[n_own++] = w->bg_waits;
	}
	if (w->index_spilled) {
		own[n_own] = "store_index_spilled";
		ownv[n_own++] = w->index_spilled;
	}
	size_t nmem = w->index.len / sizeof(struct widx);
	size_t nf = (size_t)w->index_spilled + nmem;
	msgpack_packer *pk = &w->pk;

	dbuf_reset(&w->pend);
	w->pack_rc = 0;
	if (dbuf_append(&w->pend, "\0\0\0\0\0\0\0\0" STORE_INDEX_TAG, 12)) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return -ENOMEM;
	}
	msgpack_pack_map(pk, 7);
	PK_KEY(pk, "v");
	msgpack_pack_uint8(pk, 1);
	PK_KEY(pk, "frames");
	msgpack_pack_array(pk, nf);
	struct widx chunk[256];
	size_t in_chunk = 0, at = 0;
	for (size_t i = 0; i < nf; i++) {
		struct widx e;
		if (i < w->index_spilled) {
			/* the spilled entries, read back a chunk at a time */
			if (at == in_chunk) {
				size_t want = (size_t)w->index_spilled - i;
				want = want < 256 ? want : 256;
				ssize_t got = pread(w->index_fd, chunk, want * sizeof(e),
						    (off_t)(i * sizeof(e)));
				if (got != (ssize_t)(want * sizeof(e))) {
					set_err(w, "cannot read back the store index",
						got < 0 ? errno : EIO);
					dbuf_reset(&w->pend);
					return -EIO;
				}
				in_chunk = want;
				at = 0;
			}
			e = chunk[at++];
		} else {
			memcpy(&e, w->index.data + (i - w->index_spilled) * sizeof(e), sizeof(e));
		}
		msgpack_pack_array(pk, 5);
		msgpack_pack_uint64(pk, e.off);
		msgpack_pack_uint64(pk, e.size);
		msgpack_pack_int64(pk, e.first_ts);
		msgpack_pack_int64(pk, e.last_ts);
		msgpack_pack_uint64(pk, e.records);
	}
	PK_KEY(pk, "records");
	msgpack_pack_uint64(pk, w->records);
	PK_KEY(pk, "sessions");
	msgpack_pack_uint64(pk, w->sessions);
	PK_KEY(pk, "results");
	msgpack_pack_uint64(pk, w->results);
	PK_KEY(pk, "raw_bytes");
	msgpack_pack_uint64(pk, w->raw_bytes);
	PK_KEY(pk, "counters");
	size_t nc = 0;
	for (size_t i = 0; i < n_counters; i++)
		nc += counters[i].name != NULL;
	msgpack_pack_map(pk, nc + n_own);
	for (size_t i = 0; i < n_counters; i++) {
		if (!counters[i].name)
			continue;
		pk_cstr(pk, counters[i].name);
		msgpack_pack_uint64(pk, counters[i].value);
	}
	for (size_t i = 0; i < n_own; i++) {
		pk_cstr(pk, own[i]);
		msgpack_pack_uint64(pk, ownv[i]);
	}
	uint8_t tail[12];
	int rc = w->pack_rc;
	if (!rc && w->pend.len + 12 - 8 > STORE_INDEX_MAX)
		rc = -E2BIG;
	if (!rc) {
		store_put_le32(tail, store_crc32c(0, w->pend.data + 8, w->pend.len - 8));
		store_put_le32(tail + 4, (uint32_t)(w->pend.len + 12));
		memcpy(tail + 8, STORE_INDEX_END_TAG, 4);
		rc = dbuf_append(&w->pend, tail, 12);
	}
	if (rc) {
		if (rc == -E2BIG)
			snprintf(w->err, sizeof(w->err), "index too large (%zu frames)", nf);
		else
			snprintf(w->err, sizeof(w->err), "out of memory");
		dbuf_reset(&w->pend);
		return rc;
	}
	rc = write_skippable(w, STORE_MAGIC_INDEX, &w->pend);
	dbuf_reset(&w->pend);
	if (rc)
		set_err(w, "cannot write store index", -rc);
	return rc;
}

int store_writer_finish(struct store_writer *w, const struct store_counter *counters,
			size_t n_counters, char *err, size_t errlen)
{
	if (!w)
		return 0;
	if (w->fd < 0) {
		snprintf(err, errlen, "%s", "the store file is already closed");
		return -EBADF;
	}
	int rc = flush_frame_wait(w);
	bg_stop(w);
	if (!rc)
		rc = write_index(w, counters, n_counters);
	/* Rename while the lock is held: a writer waiting for PATH.partial must
	 * never lock and truncate the finished file before it has its name. */
	bool renamed = false;
	if (!rc && w->tmp) {
		renamed = rename(w->tmp, w->path) == 0;
		if (!renamed) {
			rc = -errno;
			snprintf(w->err, sizeof(w->err), "cannot rename %s to %s: %s", w->tmp,
				 w->path, strerror(errno));
		}
	}
	if (close(w->fd) != 0 && !rc) {
		rc = -errno;
		set_err(w, "cannot close store file", errno);
	}
	w->fd = -1; /* the lock goes with it */
	if (rc && err && errlen) {
		int k = snprintf(err, errlen, "%s", w->err[0] ? w->err : strerror(-rc));
		if (w->tmp && k >= 0 && (size_t)k < errlen)
			snprintf(err + k, errlen - (size_t)k,
				 " (%llu records lost; what was written is in %s)",
				 (unsigned long long)store_writer_lost(w),
				 renamed ? w->path : w->tmp);
	} else if (err && errlen) {
		err[0] = '\0';
	}
	return rc;
}

int store_writer_close(struct store_writer *w, const struct store_counter *counters,
		       size_t n_counters, char *err, size_t errlen)
{
	if (!w)
		return 0;
	int rc = store_writer_finish(w, counters, n_counters, err, errlen);
	store_writer_free(w);
	return rc;
}

void store_writer_free(struct store_writer *w)
{
	if (!w)
		return;
	bg_stop(w);
	if (w->fd >= 0)
		close(w->fd);
	ZSTD_freeCCtx(w->cctx);
	mem_free(w->path);
	mem_free(w->tmp);
	dbuf_release(&w->pend);
	dbuf_release(&w->job);
	dbuf_release(&w->index);
	if (w->index_fd >= 0)
		close(w->index_fd);
	mem_free(w->cbuf);
	mem_free(w);
}

const char *store_writer_error(const struct store_writer *w)
{
	return w ? w->err : "";
}
