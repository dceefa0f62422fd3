/* SPDX-License-Identifier: MIT */
/*
 * fuzz_store_reader - the store reader on arbitrary bytes: open from
 * memory, read every record, render it as JSON, seek by time and read on.
 * Must never crash, hang, leak or read out of bounds (docs/format.md §3);
 * every record's raw bytes (store_reader_raw()) are readable and hold its
 * id spans, and every session can be copied as bytes with new ids
 * (store_writer_add_session_raw() into /dev/null).
 * Seed corpus: tests/store/corpus/ (made by tests/store/make-corpus.sh).
 *
 * The same bytes are also read with the frame API (store_reader_take_frame(),
 * store_frame_decode(), store_reader_settle(); several frames taken ahead,
 * as `dyetap diff --threads N` reads), sometimes under a small record cap:
 * the records and the status must be those of store_reader_next().
 *
 * Inputs starting with 'M' are raw record bytes: the target wraps them in a
 * valid header and one checksummed data frame first, so the fuzzer reaches
 * the msgpack record decoder instead of stopping at zstd's checksum
 * (corpus files records-*.bin: `zstd -d -c x.dyt` prints a file's records).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "store/store.h"
#include "store/store_private.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t raw_sink;

/* A writer into /dev/null for the raw copies, made once for the whole run. */
static struct store_writer *null_writer(void)
{
	static struct store_writer *w;
	static bool tried;
	if (!tried) {
		char err[256];
		struct store_writer_params p = {.path = "/dev/null"};
		tried = true;
		w = store_writer_create(&p, err, sizeof(err));
	}
	return w;
}

static void drain(struct store_reader *r, struct dbuf *out, int limit)
{
	const struct store_record *rec;
	while (limit-- > 0 && store_reader_next(r, &rec) == 1) {
		/* The record's bytes are readable (ASan checks) and hold its id spans. */
		struct store_raw_record raw = store_reader_raw(r);
		for (size_t i = 0; i < raw.bytes.len; i++)
			raw_sink ^= raw.bytes.ptr[i];
		if (!raw.bytes.len || raw.id_off + raw.id_len > raw.bytes.len ||
		    raw.conn_id_off + raw.conn_id_len > raw.bytes.len)
			abort();
		dbuf_reset(out);
		if (rec->type == STORE_REC_SESSION) {
			/* Whatever session the reader returns, the writer copies it
			 * as bytes (the spans it reports are always valid). */
			const struct store_session *s = &rec->u.session;
			struct store_writer *w = null_writer();
			if (w && store_writer_add_session_raw(w, &raw, s->id + 1, s->conn_id + 1,
							      s->ts_req_first_ns) == -EINVAL)
				abort();
		}
		if (rec->type == STORE_REC_SESSION)
			store_session_json(out, &rec->u.session, 0);
		else
			store_result_json(out, &rec->u.result, STORE_JSON_NO_BODY);
	}
}

/* A store image around @p rec: header frame (empty metadata) + one data frame. */
static uint8_t *wrap_records(const uint8_t *rec, size_t n, size_t *out_len)
{
	size_t cap = 8 + 13 + ZSTD_compressBound(n);
	uint8_t *b = malloc(cap);
	if (!b)
		return NULL;
	store_put_le32(b, STORE_MAGIC_HEADER);
	store_put_le32(b + 4, 13);
	memcpy(b + 8, STORE_HEADER_TAG, 4);
	store_put_le32(b + 12, STORE_FORMAT_VERSION);
	b[16] = 0x80; /* empty map */
	store_put_le32(b + 17, store_crc32c(0, b + 8, 9));
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	size_t z = ZSTD_compress2(cc, b + 21, cap - 21, rec, n);
	ZSTD_freeCCtx(cc);
	if (ZSTD_isError(z)) {
		free(b);
		return NULL;
	}
	*out_len = 21 + z;
	return b;
}

static void render(struct dbuf *out, const struct store_record *rec)
{
	if (rec->type == STORE_REC_SESSION)
		store_session_json(out, &rec->u.session, 0);
	else
		store_result_json(out, &rec->u.result, 0);
	dbuf_putc(out, '\n');
}

static struct store_reader *open_capped(const uint8_t *data, size_t size, uint64_t cap)
{
	char err[256];
	struct store_reader *r = store_reader_open_mem(data, size, err, sizeof(err));
	if (r && cap) {
		struct store_read_limits l = {.max_records = cap};
		store_reader_set_limits(r, &l);
	}
	return r;
}

static bool same_status(const struct store_read_status *a, const struct store_read_status *b)
{
	return a->frames == b->frames && a->compressed_bytes == b->compressed_bytes &&
	       a->raw_bytes == b->raw_bytes && a->sessions == b->sessions &&
	       a->results == b->results && a->skipped_records == b->skipped_records &&
	       a->has_index == b->has_index && a->cut == b->cut && a->cut_offset == b->cut_offset &&
	       a->damaged_frames == b->damaged_frames &&
	       a->first_damage_offset == b->first_damage_offset &&
	       a->first_ts_ns == b->first_ts_ns && a->last_ts_ns == b->last_ts_ns &&
	       a->n_counters == b->n_counters && a->suspect_frames == b->suspect_frames &&
	       a->first_suspect_offset == b->first_suspect_offset &&
	       a->frames_over_ratio == b->frames_over_ratio &&
	       a->record_cap_hit == b->record_cap_hit;
}

#define AHEAD 3

/* Read @p data with store_reader_next() and with frames taken up to
 * AHEAD ahead; abort() when records or status differ. */
static void parallel_same(const uint8_t *data, size_t size, uint64_t cap)
{
	struct store_reader *a = open_capped(data, size, cap);
	struct store_reader *b = open_capped(data, size, cap);
	struct store_frame *f[AHEAD] = {0};
	struct store_decoder *d = store_decoder_create();
	struct dbuf x, y;
	dbuf_init(&x, 64 << 20);
	dbuf_init(&y, 64 << 20);
	bool ok = a && b && d;
	for (size_t i = 0; ok && i < AHEAD; i++)
		ok = (f[i] = store_frame_create()) != NULL;
	if (!ok)
		goto out;
	const struct store_record *rec;
	int ra;
	while ((ra = store_reader_next(a, &rec)) == 1)
		render(&x, rec);
	/* a ring of frames: [head, head + n) taken, oldest first */
	size_t head = 0, n = 0;
	int rb = 0;
	bool end = false;
	while (!end || n) {
		while (!end && n < AHEAD) {
			struct store_frame *fr = f[(head + n) % AHEAD];
			int t = store_reader_take_frame(b, fr);
			if (t == -EAGAIN)
				break;
			if (t <= 0) {
				rb = t;
				end = true;
				break;
			}
			n++;
		}
		if (!n) {
			if (!end)
				abort(); /* -EAGAIN with nothing outstanding */
			break;
		}
		struct store_frame *fr = f[head];
		head = (head + 1) % AHEAD;
		n--;
		if (store_frame_decode(fr, d)) {
			rb = -ENOMEM;
			break;
		}
		int s = store_reader_settle(b, fr);
		if (s < 0) {
			rb = s;
			break;
		}
		const struct store_record *v;
		size_t k = store_frame_records(fr, &v);
		for (size_t i = 0; i < k; i++)
			render(&y, &v[i]);
		if (s == 0) { /* the record cap: frames taken after it are not read */
			n = 0;
			end = true;
		}
	}
	if (ra == -ENOMEM || rb == -ENOMEM || x.err || y.err)
		goto out; /* out of memory in one of them: nothing to compare */
	if (ra != rb || x.len != y.len || (x.len && memcmp(x.data, y.data, x.len)) ||
	    !same_status(store_reader_status(a), store_reader_status(b)))
		abort();
out:
	dbuf_release(&x);
	dbuf_release(&y);
	for (size_t i = 0; i < AHEAD; i++)
		store_frame_free(f[i]);
	store_decoder_free(d);
	store_reader_free(a);
	store_reader_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	uint8_t *img = NULL;
	log_set_level(LOG_ERROR);
	if (size && data[0] == 'M') {
		img = wrap_records(data + 1, size - 1, &size);
		if (!img)
			return 0;
		data = img;
	}
	struct store_reader *r = store_reader_open_mem(data, size, err, sizeof(err));
	if (!r) {
		free(img);
		return 0;
	}
	const struct store_file_meta *m = store_reader_meta(r);
	size_t n = 0;
	for (size_t i = 0; i < m->n_rules; i++)
		n += m->rules[i][0] != 0;
	(void)n;
	struct dbuf out;
	dbuf_init(&out, 1 << 20);
	drain(r, &out, 100000);
	const struct store_read_status *st = store_reader_status(r);
	int64_t mid = st->first_ts_ns / 2 + st->last_ts_ns / 2;
	for (size_t i = 0; i < st->n_counters; i++)
		n += st->counters[i].name[0] != 0;
	store_reader_seek_time(r, mid);
	drain(r, &out, 100000);
	store_reader_seek_time(r, INT64_MIN);
	drain(r, &out, 3);
	dbuf_release(&out);
	store_reader_free(r);
	parallel_same(data, size, (data[size - 1] & 3) == 0 ? 1 + data[size - 1] % 13 : 0);
	free(img);
	return 0;
}
