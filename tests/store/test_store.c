/* SPDX-License-Identifier: MIT */
/*
 * test_store - the store format's promises (docs/format.md): every field
 * survives a round trip, a file cut at every byte offset opens or fails
 * cleanly and yields exactly the records of its whole frames, flipped bits
 * are detected by the checksum and reported with the damaged frame's
 * offset, seek by time works with and without the index, unknown keys and
 * newer record versions are handled as specified, files are mode 0600, a
 * writer of many frames spills its index to a temporary file and reads it
 * back whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>
#include <zstd.h>

#include "common/log.h"
#include "common/mem.h"
#include "store/store.h"
#include "store/store_private.h"
#include "tests/store/store_sample.h"
#include "tests/tap.h"

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

static int spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(p, 1, n, f);
	fclose(f);
	return w == n ? 0 : -1;
}

/* Write sessions 0..n-1 (and results for every third) with small frames,
 * compressing on the writer's background thread when @p bg. */
static int write_sample_file_bg(const char *path, uint64_t n, size_t flush_bytes, int close_it,
				bool bg)
{
	static const char *const rules[] = {"blue: header x-lane=blue", "green: path /g/*"};
	struct store_meta meta = {.kind = "recording",
				  .source = "pcap:test.pcap",
				  .filter = "tcp port 8080",
				  .rules = rules,
				  .n_rules = 2,
				  .host = "testhost",
				  .start_ns = SAMPLE_T0};
	struct store_writer_params p = {.path = path,
					.flush_bytes = flush_bytes,
					.flush_ms = 60000,
					.meta = &meta,
					.background = bg};
	char err[256];
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	if (!w)
		return -1;
	struct sample x;
	int rc = 0;
	for (uint64_t i = 0; i < n && !rc; i++) {
		sample_fill(&x, i);
		rc = store_writer_add_session(w, &x.s);
	}
	for (uint64_t i = 0; i < n && !rc; i += 3) {
		sample_fill_result(&x, i);
		rc = store_writer_add_result(w, &x.r);
	}
	if (rc) {
		store_writer_free(w);
		return -1;
	}
	if (!close_it) {
		rc = store_writer_flush(w);
		store_writer_free(w);
		return rc;
	}
	struct store_counter ctr[] = {{"packets", 1234}, {"tcp_gaps", 2}};
	return store_writer_close(w, ctr, 2, err, sizeof(err));
}

static int write_sample_file(const char *path, uint64_t n, size_t flush_bytes, int close_it)
{
	return write_sample_file_bg(path, n, flush_bytes, close_it, false);
}

/* Check that the records of @p r are the sample records (a subset, in order). */
struct check {
	uint64_t sessions, results, bad;
};

static struct check read_and_check(struct store_reader *r)
{
	struct check c = {0, 0, 0};
	const struct store_record *rec;
	struct sample x;
	while (store_reader_next(r, &rec) == 1) {
		if (rec->type == STORE_REC_SESSION) {
			sample_fill(&x, rec->u.session.id);
			if (sample_session_diff(&rec->u.session, &x.s))
				c.bad++;
			c.sessions++;
		} else {
			sample_fill_result(&x, rec->u.result.session_id);
			if (sample_result_diff(&rec->u.result, &x.r))
				c.bad++;
			c.results++;
		}
	}
	return c;
}

/* ---- round trip of every field, including the edge cases ---- */

static void test_round_trip(void)
{
	char path[512];
	path_in_tmp(path, sizeof(path), "rt.dyt");
	struct store_writer_params p = {.path = path, .flush_bytes = 2048};
	char err[256];
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	TAP_OK(w != NULL, "writer created (%.150s)", w ? "ok" : err);
	if (!w)
		return;

	/* Edge cases: many and duplicate headers, empty values, unicode, binary, large body. */
	static struct store_header many[300];
	static char names[300][16];
	for (int i = 0; i < 300; i++) {
		snprintf(names[i], sizeof(names[i]), "X-H%d", i % 50); /* duplicates */
		many[i].name = sample_cs(names[i]);
		many[i].value = i % 10 == 0 ? sample_sl(NULL, 0) : sample_cs(names[i]);
	}
	size_t big_n = 3u << 20;
	uint8_t *big = malloc(big_n);
	for (size_t i = 0; i < big_n; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	static const uint8_t binary[] = {0, 1, 2, 0xff, 0xfe, 0xc0, 0x80, '\n', 0};
	const char *uni = "\xe6\x9f\x93\xe8\x89\xb2 \xf0\x9f\x8c\x88 caf\xc3\xa9";

	struct store_session e[6];
	memset(e, 0, sizeof(e));
	for (int i = 0; i < 6; i++) {
		e[i].id = 1000 + (uint64_t)i;
		e[i].ip_version = 4;
		e[i].req.present = true;
		e[i].ts_req_first_ns = -5 + i; /* negative timestamps survive too */
	}
	/* 0: everything empty, no response */
	/* 1: many headers, unicode lane and target */
	e[1].lane = sample_cs(uni);
	e[1].req.method = sample_cs("GET");
	e[1].req.target = sample_cs("/\xe6\x9f\x93?x=\xc3\xa9");
	e[1].req.headers = many;
	e[1].req.n_headers = 300;
	e[1].req.version_major = 1;
	e[1].req.version_minor = 1;
	/* 2: binary bodies both ways, all flags, max values */
	e[2].ip_version = 6;
	memset(e[2].src.addr, 0xff, 16);
	e[2].src.port = 65535;
	e[2].vlan = 4095;
	e[2].conn_id = UINT64_MAX;
	e[2].conn_index = UINT32_MAX;
	e[2].flags = 0xff;
	e[2].ts_req_last_ns = INT64_MAX;
	e[2].ts_resp_first_ns = INT64_MIN;
	e[2].req.method = sample_cs("POST");
	e[2].req.body = sample_sl(binary, sizeof(binary));
	e[2].req.body_len = UINT64_MAX;
	e[2].req.truncated = true;
	e[2].resp.present = true;
	e[2].resp.status = 599;
	e[2].resp.reason = sample_sl(NULL, 0);
	e[2].resp.body = sample_sl(binary, sizeof(binary));
	e[2].resp.body_len = sizeof(binary);
	/* 3: large body (bigger than a flush, one record per frame) */
	e[3].resp.present = true;
	e[3].resp.status = 200;
	e[3].resp.body = sample_sl(big, big_n);
	e[3].resp.body_len = big_n;
	e[3].resp.version_major = 1;
	e[3].resp.version_minor = 0;
	/* 4: HTTP/0.9 response with no headers and an empty body */
	e[4].resp.present = true;
	e[4].resp.version_major = 0;
	e[4].resp.version_minor = 9;
	/* 5: response with many headers too */
	e[5].resp.present = true;
	e[5].resp.headers = many;
	e[5].resp.n_headers = 300;
	e[5].req.headers = many + 1;
	e[5].req.n_headers = 7;

	int rc = 0;
	for (int i = 0; i < 6; i++)
		rc |= store_writer_add_session(w, &e[i]);
	TAP_OK(rc == 0, "edge-case sessions added");
	struct sample x;
	for (uint64_t i = 0; i < 60; i++) {
		sample_fill(&x, i);
		rc |= store_writer_add_session(w, &x.s);
	}
	for (uint64_t i = 0; i < 60; i++) {
		sample_fill_result(&x, i);
		rc |= store_writer_add_result(w, &x.r);
	}
	struct store_result er;
	memset(&er, 0, sizeof(er));
	er.session_id = 1003;
	er.error = STORE_ERR_OTHER;
	er.error_msg = sample_cs(uni);
	rc |= store_writer_add_result(w, &er);
	TAP_OK(rc == 0, "sample sessions and results added");
	struct store_counter ctr[] = {{"packets", 99}, {"bytes", 1ull << 40}};
	rc = store_writer_close(w, ctr, 2, err, sizeof(err));
	TAP_OK(rc == 0, "writer closed (%.150s)", rc ? err : "ok");

	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	TAP_OK(r != NULL, "reader opened (%.150s)", r ? "ok" : err);
	if (!r) {
		free(big);
		return;
	}
	const struct store_file_meta *m = store_reader_meta(r);
	TAP_EQ_U64(m->format_version, STORE_FORMAT_VERSION, "format version");
	TAP_OK(m->tool_version && strlen(m->tool_version) > 0, "tool version defaulted");
	TAP_OK(m->kind == NULL && m->n_rules == 0, "absent metadata stays absent");
	TAP_EQ_U64(store_crc32c(0, "123456789", 9), 0xE3069283u,
		   "CRC-32C check value as in docs/format.md");

	const struct store_record *rec;
	int ok_edge = 1, ok_sample = 1, n = 0, nres = 0;
	while (store_reader_next(r, &rec) == 1) {
		if (rec->type == STORE_REC_SESSION && n < 6) {
			const char *d = sample_session_diff(&rec->u.session, &e[n]);
			if (d) {
				printf("# edge session %d differs in %s\n", n, d);
				ok_edge = 0;
			}
		} else if (rec->type == STORE_REC_SESSION) {
			sample_fill(&x, (uint64_t)n - 6);
			const char *d = sample_session_diff(&rec->u.session, &x.s);
			if (d) {
				printf("# session %d differs in %s\n", n, d);
				ok_sample = 0;
			}
		} else if (nres < 60) {
			sample_fill_result(&x, (uint64_t)nres);
			const char *d = sample_result_diff(&rec->u.result, &x.r);
			if (d) {
				printf("# result %d differs in %s\n", nres, d);
				ok_sample = 0;
			}
			nres++;
		} else {
			if (sample_result_diff(&rec->u.result, &er))
				ok_sample = 0;
			nres++;
		}
		if (rec->type == STORE_REC_SESSION)
			n++;
	}
	TAP_OK(ok_edge, "edge-case sessions equal after round trip");
	TAP_OK(ok_sample, "sample sessions and results equal after round trip");
	const struct store_read_status *st = store_reader_status(r);
	TAP_EQ_U64(st->sessions, 66, "session count");
	TAP_EQ_U64(st->results, 61, "result count");
	TAP_OK(st->has_index && !st->cut && st->damaged_frames == 0, "clean file with index");
	TAP_OK(st->frames > 3, "several frames (%llu)", (unsigned long long)st->frames);
	TAP_OK(st->raw_bytes > big_n && st->compressed_bytes < st->raw_bytes,
	       "raw and compressed bytes counted");
	int found = 0;
	for (size_t i = 0; i < st->n_counters; i++) {
		if (!strcmp(st->counters[i].name, "bytes") && st->counters[i].value == 1ull << 40)
			found++;
		if (!strcmp(st->counters[i].name, "store_records") && st->counters[i].value == 127)
			found++;
	}
	TAP_EQ_U64(found, 2, "trailer counters read back (caller's and the writer's own)");
	TAP_OK(st->first_ts_ns == -5, "first timestamp");
	store_reader_free(r);
	free(big);
}

/* ---- metadata, mode, errors ---- */

static void test_meta_mode_errors(void)
{
	char path[512], err[256];
	path_in_tmp(path, sizeof(path), "meta.dyt");
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	close(fd);
	chmod(path, 0644);
	TAP_OK(write_sample_file(path, 10, 0, 1) == 0, "sample file written over a 0644 file");
	struct stat sb;
	TAP_OK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "file mode is 0600 (%o)",
	       (unsigned)(sb.st_mode & 0777));
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	TAP_OK(r != NULL, "opened");
	if (r) {
		const struct store_file_meta *m = store_reader_meta(r);
		TAP_EQ_STR(m->kind, "recording", "meta kind");
		TAP_EQ_STR(m->source, "pcap:test.pcap", "meta source");
		TAP_EQ_STR(m->filter, "tcp port 8080", "meta filter");
		TAP_EQ_STR(m->host, "testhost", "meta host");
		TAP_OK(m->n_rules == 2 && !strcmp(m->rules[1], "green: path /g/*"), "meta rules");
		TAP_OK(m->start_ns == SAMPLE_T0, "meta start time");
		store_reader_free(r);
	}

	r = store_reader_open("/nonexistent/x.dyt", err, sizeof(err));
	TAP_OK(!r && strstr(err, "cannot open /nonexistent/x.dyt"), "missing file: %.150s", err);
	char other[512];
	path_in_tmp(other, sizeof(other), "not-a-store.txt");
	spit(other, "hello world, this is text\n", 26);
	r = store_reader_open(other, err, sizeof(err));
	TAP_OK(!r && strstr(err, "is not a dyetap store"), "text file refused: %.150s", err);
	spit(other, "", 0);
	r = store_reader_open(other, err, sizeof(err));
	TAP_OK(!r && strstr(err, "is not a dyetap store"), "empty file refused: %.150s", err);

	struct store_writer_params p = {.path = "/nonexistent/dir/x.dyt"};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	TAP_OK(!w && strstr(err, "cannot create /nonexistent/dir/x.dyt"), "create error: %.150s",
	       err);
	struct stat before, after;
	if (stat("/dev/full", &before) == 0) {
		p.path = "/dev/full";
		w = store_writer_create(&p, err, sizeof(err));
		TAP_OK(!w && strstr(err, "No space left"), "write error reported: %.150s", err);
		stat("/dev/full", &after);
		TAP_OK(before.st_mode == after.st_mode, "a device's mode is left alone");
		store_writer_free(w);
	}
	p.path = path;
	p.level = 99;
	w = store_writer_create(&p, err, sizeof(err));
	TAP_OK(!w && strstr(err, "level"), "bad level refused: %.150s", err);

	/* A newer format version is refused with a clear message. */
	size_t n;
	uint8_t *b = slurp(path, &n);
	if (b) {
		b[12] = 2; /* format version (the CRC then fails first: fix it up) */
		uint32_t hn = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
		uint32_t crc = store_crc32c(0, b + 8, hn - 4);
		memcpy(b + 8 + hn - 4, &crc, 4);
		r = store_reader_open_mem(b, n, err, sizeof(err));
		TAP_OK(!r && strstr(err, "version 2 is not supported"), "newer version: %.150s",
		       err);
		store_reader_free(r);
		free(b);
	}
}

/* ---- tick flushes on time ---- */

static void test_tick(void)
{
	char path[512], err[256];
	path_in_tmp(path, sizeof(path), "tick.dyt");
	struct store_writer_params p = {.path = path, .flush_ms = 20};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	struct sample x;
	sample_fill(&x, 1);
	store_writer_add_session(w, &x.s);
	/* the data goes to PATH.partial until the close renames it */
	char part[600];
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	struct stat a, b;
	stat(part, &a);
	store_writer_tick(w);
	stat(part, &b);
	TAP_OK(a.st_size == b.st_size, "tick before flush_ms writes nothing");
	usleep(40000);
	store_writer_tick(w);
	stat(part, &b);
	TAP_OK(b.st_size > a.st_size, "tick after flush_ms writes the frame");
	store_writer_free(w);
	struct store_reader *r = store_reader_open(part, err, sizeof(err));
	struct check c = read_and_check(r);
	TAP_OK(c.sessions == 1 && !store_reader_status(r)->has_index,
	       "record readable from an unfinished file");
	store_reader_free(r);
}

/* ---- background compression ---- */

static uint64_t counter_of(const struct store_read_status *st, const char *name)
{
	for (size_t i = 0; i < st->n_counters; i++)
		if (!strcmp(st->counters[i].name, name))
			return st->counters[i].value;
	return UINT64_MAX;
}

static void test_background(void);

/* ---- truncation at every byte offset ---- */

struct frame_info {
	uint64_t off, size, records;
};

/* Frame boundaries of a clean file, from a full read with the index. */
static size_t frames_of(const uint8_t *b, size_t n, struct frame_info *fi, size_t max,
			uint64_t *data_start, uint64_t *index_off)
{
	/* Walk frames ourselves: header, zstd frames, index. */
	uint32_t hn = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
	uint64_t pos = 8 + (uint64_t)hn;
	*data_start = pos;
	size_t k = 0;
	while (pos < n && k < max) {
		uint32_t m =
		    b[pos] | b[pos + 1] << 8 | b[pos + 2] << 16 | (uint32_t)b[pos + 3] << 24;
		if (m != 0xFD2FB528u)
			break;
		size_t cs = ZSTD_findFrameCompressedSize(b + pos, n - pos);
		size_t ds = (size_t)ZSTD_getFrameContentSize(b + pos, cs);
		uint8_t *out = malloc(ds ? ds : 1);
		ZSTD_decompress(out, ds, b + pos, cs);
		/* Count records with msgpack-c. */
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		size_t off = 0;
		uint64_t recs = 0;
		while (msgpack_unpack_next(&u, (const char *)out, ds, &off) ==
		       MSGPACK_UNPACK_SUCCESS)
			recs++;
		msgpack_unpacked_destroy(&u);
		free(out);
		fi[k++] = (struct frame_info){pos, cs, recs};
		pos += cs;
	}
	*index_off = pos;
	return k;
}

static void test_truncation(void)
{
	char path[512], cut[512], err[256];
	path_in_tmp(path, sizeof(path), "small.dyt");
	path_in_tmp(cut, sizeof(cut), "cut.dyt");
	TAP_OK(write_sample_file(path, 16, 600, 1) == 0, "small multi-frame file written");
	log_set_level(LOG_ERROR);
	size_t n;
	uint8_t *b = slurp(path, &n);
	if (!b)
		return;
	struct frame_info fi[64];
	uint64_t ds, io;
	size_t nf = frames_of(b, n, fi, 64, &ds, &io);
	TAP_OK(nf >= 4, "file has %zu data frames (%zu bytes)", nf, n);

	int bad_open = 0, bad_count = 0, bad_cut = 0, bad_content = 0, file_checked = 0;
	for (size_t len = 0; len <= n; len++) {
		uint8_t *prefix = malloc(len ? len : 1); /* exact size: ASan sees over-reads */
		memcpy(prefix, b, len);
		struct store_reader *r = store_reader_open_mem(prefix, len, err, sizeof(err));
		if (len < ds) {
			if (r || !err[0])
				bad_open++;
			store_reader_free(r);
			free(prefix);
			continue;
		}
		if (!r) {
			bad_open++;
			free(prefix);
			continue;
		}
		uint64_t want = 0;
		int boundary = len == ds || len == n;
		for (size_t k = 0; k < nf; k++) {
			if (fi[k].off + fi[k].size <= len)
				want += fi[k].records;
			if (fi[k].off + fi[k].size == len)
				boundary = 1;
		}
		struct check c = read_and_check(r);
		const struct store_read_status *st = store_reader_status(r);
		if (c.sessions + c.results != want) {
			if (bad_count++ < 5)
				printf("# len %zu: %llu records, want %llu\n", len,
				       (unsigned long long)(c.sessions + c.results),
				       (unsigned long long)want);
		}
		if (c.bad)
			bad_content++;
		if (st->cut == boundary || st->damaged_frames) {
			if (bad_cut++ < 5)
				printf("# len %zu: cut=%d damaged=%llu boundary=%d\n", len, st->cut,
				       (unsigned long long)st->damaged_frames, boundary);
		}
		if (st->cut && st->cut_offset > len)
			bad_cut++;
		store_reader_free(r);
		if (len % 17 == 0 || boundary) {
			/* The same through a real file. */
			spit(cut, prefix, len);
			r = store_reader_open(cut, err, sizeof(err));
			struct check c2 = r ? read_and_check(r) : (struct check){0, 0, 1};
			if (c2.sessions + c2.results != want || c2.bad)
				bad_count++;
			store_reader_free(r);
			file_checked++;
		}
		free(prefix);
	}
	log_set_level(LOG_WARN);
	TAP_EQ_U64(bad_open, 0, "every prefix opens or fails cleanly as expected");
	TAP_EQ_U64(bad_count, 0, "records recovered = records of whole frames, at every cut");
	TAP_EQ_U64(bad_content, 0, "recovered records intact");
	TAP_EQ_U64(bad_cut, 0, "cut reported exactly when the file ends inside a frame");
	TAP_OK(file_checked > 10, "file-based reads of %d prefixes agree", file_checked);
	free(b);
}

/* ---- bit flips ---- */

static void run_flips(const uint8_t *b, size_t n, const struct frame_info *fi, size_t nf,
		      uint64_t ds, uint64_t io, int with_index, const char *what)
{
	char err[256];
	uint64_t total = 0;
	for (size_t k = 0; k < nf; k++)
		total += fi[k].records;
	int tried = 0, detected = 0, harmless = 0, wrong_off = 0, wrong_count = 0, corrupt = 0,
	    opened_bad = 0;
	uint8_t *c = malloc(n);
	/* Every other byte, each time another bit: ~4000 flips per file. */
	for (uint64_t pos = 0; pos < n; pos += 2) {
		memcpy(c, b, n);
		c[pos] ^= (uint8_t)(1u << (pos / 2 % 8));
		tried++;
		struct store_reader *r = store_reader_open_mem(c, n, err, sizeof(err));
		if (pos < ds) {
			/* Header bytes: refused (CRC) unless the flip is in the size field
			 * and still lands on a verifiable header, which cannot happen. */
			if (r)
				opened_bad++;
			else
				detected++;
			store_reader_free(r);
			continue;
		}
		if (!r) {
			opened_bad++;
			continue;
		}
		struct check ch = read_and_check(r);
		const struct store_read_status *st = store_reader_status(r);
		if (ch.bad)
			corrupt++; /* a record returned that differs: undetected corruption */
		size_t k = 0;
		while (k < nf && !(pos >= fi[k].off && pos < fi[k].off + fi[k].size))
			k++;
		if (pos >= io) {
			/* Index bytes: the index is reported damaged, all records still read. */
			if (st->damaged_frames && st->first_damage_offset == io &&
			    ch.sessions + ch.results == total)
				detected++;
			else if (!st->damaged_frames && ch.sessions + ch.results == total &&
				 !ch.bad)
				harmless++;
			else if (wrong_off++ < 8)
				printf(
				    "# %s index flip at %llu: damaged %llu at %llu, %llu records\n",
				    what, (unsigned long long)pos,
				    (unsigned long long)st->damaged_frames,
				    (unsigned long long)st->first_damage_offset,
				    (unsigned long long)(ch.sessions + ch.results));
		} else if (!st->damaged_frames && !st->cut) {
			if (ch.sessions + ch.results == total && !ch.bad)
				harmless++; /* a bit zstd does not interpret (RFC 8878 Unused_bit)
					     */
			else
				wrong_count++;
		} else {
			detected++;
			if (st->damaged_frames && st->first_damage_offset != fi[k].off) {
				if (wrong_off++ < 8)
					printf("# %s flip at %llu: damage at %llu, frame at %llu\n",
					       what, (unsigned long long)pos,
					       (unsigned long long)st->first_damage_offset,
					       (unsigned long long)fi[k].off);
			}
			/* With the index every other frame is read; without, at least the ones
			 * before. */
			uint64_t before = 0;
			for (size_t j = 0; j < k; j++)
				before += fi[j].records;
			uint64_t got = ch.sessions + ch.results;
			if (with_index ? got != total - fi[k].records : got < before) {
				if (wrong_count++ < 3)
					printf("# %s flip at %llu: %llu records, frame %zu\n", what,
					       (unsigned long long)pos, (unsigned long long)got, k);
			}
		}
		store_reader_free(r);
	}
	free(c);
	TAP_EQ_U64(corrupt, 0, "%s: no flipped bit yields a changed record", what);
	TAP_EQ_U64(opened_bad, 0, "%s: header flips refused, others open", what);
	TAP_EQ_U64(wrong_off, 0, "%s: damage reported at the damaged frame's offset", what);
	TAP_EQ_U64(wrong_count, 0, "%s: records of the other frames recovered", what);
	TAP_OK(detected >= tried * 95 / 100, "%s: %d of %d flips detected (%d harmless)", what,
	       detected, tried, harmless);
}

static void test_bit_flips(void)
{
	char path[512];
	path_in_tmp(path, sizeof(path), "flip.dyt");
	log_set_level(LOG_ERROR);
	for (int with_index = 1; with_index >= 0; with_index--) {
		if (write_sample_file(path, 15, 500, with_index) != 0)
			continue;
		size_t n;
		uint8_t *b = slurp(path, &n);
		struct frame_info fi[64];
		uint64_t ds, io;
		size_t nf = frames_of(b, n, fi, 64, &ds, &io);
		run_flips(b, n, fi, nf, ds, io, with_index,
			  with_index ? "with index" : "without index");
		free(b);
	}
	log_set_level(LOG_WARN);
}

/* ---- seek by time ---- */

static void test_seek(void)
{
	char path[512], err[256];
	path_in_tmp(path, sizeof(path), "seek.dyt");
	for (int with_index = 1; with_index >= 0; with_index--) {
		struct store_writer_params p = {.path = path, .flush_ms = 60000};
		struct store_writer *w = store_writer_create(&p, err, sizeof(err));
		struct sample x;
		for (uint64_t i = 0; i < 50; i++) {
			sample_fill(&x, i);
			store_writer_add_session(w, &x.s);
			if (i % 5 == 4)
				store_writer_flush(w); /* frames of ids 5k..5k+4 */
		}
		char part[600];
		snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
		if (with_index) {
			store_writer_close(w, NULL, 0, err, sizeof(err));
		} else {
			store_writer_free(w);
		}
		struct store_reader *r =
		    store_reader_open(with_index ? path : part, err, sizeof(err));
		const struct store_record *rec = NULL;
		const char *what = with_index ? "index" : "scan";
		TAP_OK(r && store_reader_status(r)->has_index == with_index, "%s: opened", what);
		if (!r)
			continue;
		int rc = store_reader_seek_time(r, SAMPLE_T0 + 23 * 1000000);
		rc |= store_reader_next(r, &rec) != 1;
		TAP_OK(!rc && rec->u.session.id == 20,
		       "%s: seek to id 23's time lands on frame of 20", what);
		rc = store_reader_seek_time(r, SAMPLE_T0 + 25 * 1000000);
		rc |= store_reader_next(r, &rec) != 1;
		TAP_OK(!rc && rec->u.session.id == 25, "%s: seek to a frame's first record", what);
		rc = store_reader_seek_time(r, 0);
		rc |= store_reader_next(r, &rec) != 1;
		TAP_OK(!rc && rec->u.session.id == 0, "%s: seek before the start", what);
		rc = store_reader_seek_time(r, SAMPLE_T0 + 1000LL * 1000000);
		TAP_OK(rc == 0 && store_reader_next(r, &rec) == 0, "%s: seek past the end", what);
		rc = store_reader_seek_time(r, SAMPLE_T0 + 48 * 1000000);
		uint64_t cnt = 0;
		while (store_reader_next(r, &rec) == 1)
			cnt++;
		TAP_EQ_U64(cnt, 5, "%s: reading on after a seek", what);
		store_reader_free(r);
	}
}

/* ---- versioning: unknown keys, newer versions, unknown types, bad fields ---- */

static int pk_buf(void *data, const char *buf, size_t len)
{
	return dbuf_append(data, buf, len);
}

static void pk_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
	msgpack_pack_str_with_body(pk, v, strlen(v));
}

/* A file at @p path with only a header frame (what a writer writes first). */
static void write_header_only(const char *path)
{
	char err[256], part[600];
	struct store_writer_params p = {.path = path};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	store_writer_flush(w);
	store_writer_free(w);
	/* an unfinished writer leaves PATH.partial: give it its name */
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	rename(part, path);
}

/* Append the records packed in @p b to @p path as one checksummed data frame. */
static void append_data_frame(const char *path, const struct dbuf *b)
{
	size_t cap = ZSTD_compressBound(b->len);
	uint8_t *z = malloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	size_t zn = z ? ZSTD_compress2(cc, z, cap, b->data, b->len) : 0;
	ZSTD_freeCCtx(cc);
	FILE *f = fopen(path, "ab");
	if (f && z && !ZSTD_isError(zn))
		fwrite(z, 1, zn, f);
	if (f)
		fclose(f);
	free(z);
}

/* ---- key order: the reader's fast path (the writer's own order) and its
 * general loop (any order) decode the same records ---- */

/* Pack @p o with the entries of maps down to @p depth in reverse order. */
static void pack_reversed(msgpack_packer *pk, const msgpack_object *o, int depth)
{
	if (o->type == MSGPACK_OBJECT_MAP && depth > 0) {
		msgpack_pack_map(pk, o->via.map.size);
		for (uint32_t i = o->via.map.size; i-- > 0;) {
			msgpack_pack_object(pk, o->via.map.ptr[i].key);
			pack_reversed(pk, &o->via.map.ptr[i].val, depth - 1);
		}
		return;
	}
	msgpack_pack_object(pk, *o);
}

static void test_key_order(void)
{
	char src[512], rev[512], err[256];
	path_in_tmp(src, sizeof(src), "order-src.dyt");
	path_in_tmp(rev, sizeof(rev), "order-rev.dyt");
	TAP_OK(write_sample_file(src, 60, 4000, 1) == 0, "key order: sample file written");
	/* Rewrite every record with its map keys (and its messages' keys) reversed. */
	struct dbuf b;
	dbuf_init(&b, 1 << 24);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b, pk_buf);
	struct store_reader *r = store_reader_open(src, err, sizeof(err));
	const struct store_record *rec;
	uint64_t n_in = 0;
	while (r && store_reader_next(r, &rec) == 1) {
		struct store_raw_record raw = store_reader_raw(r);
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		if (msgpack_unpack_next(&u, (const char *)raw.bytes.ptr, raw.bytes.len, NULL) ==
		    MSGPACK_UNPACK_SUCCESS)
			pack_reversed(&pk, &u.data, 2);
		msgpack_unpacked_destroy(&u);
		n_in++;
	}
	store_reader_free(r);
	write_header_only(rev);
	append_data_frame(rev, &b);
	dbuf_release(&b);
	r = store_reader_open(rev, err, sizeof(err));
	struct check c = r ? read_and_check(r) : (struct check){0, 0, 1};
	TAP_OK(c.sessions + c.results == n_in && c.sessions == 60 && !c.bad,
	       "key order: reversed keys decode to the same records (%" PRIu64 " sessions, %" PRIu64
	       " results, %" PRIu64 " differ)",
	       c.sessions, c.results, c.bad);
	TAP_EQ_U64(r ? store_reader_status(r)->skipped_records : 1, 0,
		   "key order: nothing skipped");
	store_reader_free(r);
}

static void test_versioning(void)
{
	char path[512], err[256];
	path_in_tmp(path, sizeof(path), "ver.dyt");
	write_header_only(path);

	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b, pk_buf);
	/* 1: a session with extra unknown keys (nested) and "t" before "v". */
	msgpack_pack_map(&pk, 6);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "zz_future", 9);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	pk_kv_str(&pk, "a", "b");
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "id", 2);
	msgpack_pack_uint64(&pk, 7);
	pk_kv_str(&pk, "lane", "blue");
	msgpack_pack_str_with_body(&pk, "req", 3);
	msgpack_pack_map(&pk, 2);
	pk_kv_str(&pk, "method", "GET");
	pk_kv_str(&pk, "x_new", "ignored");
	/* 2: a session of a newer schema version than the reader's: skipped */
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, STORE_SCHEMA_VERSION + 1);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "id", 2);
	msgpack_pack_uint64(&pk, 8);
	/* 3: an unknown record type: skipped */
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 9);
	/* 4: a field of the wrong type: skipped */
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 1);
	pk_kv_str(&pk, "id", "not a number");
	/* 5: not a map: skipped */
	msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	/* 6: a result with bin strings instead of str */
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 2);
	msgpack_pack_str_with_body(&pk, "session_id", 10);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_str_with_body(&pk, "role", 4);
	msgpack_pack_bin_with_body(&pk, "candidate", 9);

	append_data_frame(path, &b);
	dbuf_release(&b);

	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	int n = 0, ok = 1;
	while (r && store_reader_next(r, &rec) == 1) {
		n++;
		if (n == 1)
			ok &= rec->type == STORE_REC_SESSION && rec->u.session.id == 7 &&
			      rec->u.session.lane.len == 4 && rec->u.session.req.method.len == 3;
		if (n == 2)
			ok &= rec->type == STORE_REC_RESULT && rec->u.result.session_id == 7 &&
			      rec->u.result.role.len == 9;
	}
	TAP_OK(n == 2 && ok, "unknown keys ignored, bin accepted for strings (%d records)", n);
	TAP_EQ_U64(r ? store_reader_status(r)->skipped_records : 0, 4,
		   "newer version, unknown type, bad field, non-map skipped and counted");
	TAP_EQ_U64(r ? store_reader_status(r)->damaged_frames : 1, 0, "no damage reported");
	store_reader_free(r);
}

/* ---- sessions copied as bytes (store_reader_raw + store_writer_add_session_raw) ---- */

static struct store_writer *raw_writer(const char *path)
{
	struct store_writer_params p = {.path = path, .flush_bytes = 700};
	char err[256];
	return store_writer_create(&p, err, sizeof(err));
}

static uint64_t new_conn_id(uint64_t i)
{
	return (1ull << 40) + i; /* a longer encoding than the sample's */
}

static void test_raw_copy(void)
{
	char src[512], same[512], moved[512], err[256];
	path_in_tmp(src, sizeof(src), "raw-src.dyt");
	path_in_tmp(same, sizeof(same), "raw-same.dyt");
	path_in_tmp(moved, sizeof(moved), "raw-moved.dyt");
	TAP_OK(write_sample_file(src, 40, 1500, 1) == 0, "raw copy: sample file written");
	struct store_reader *r = store_reader_open(src, err, sizeof(err));
	struct store_writer *ws = raw_writer(same), *wm = raw_writer(moved);
	struct dbuf orig;
	dbuf_init(&orig, 1 << 20);
	const struct store_record *rec;
	uint64_t sessions = 0, results = 0, bad_span = 0, add_err = 0;
	while (r && ws && wm && store_reader_next(r, &rec) == 1) {
		struct store_raw_record raw = store_reader_raw(r);
		if (rec->type != STORE_REC_SESSION) {
			results++;
			bad_span += raw.id_len || raw.conn_id_len || !raw.bytes.len;
			continue;
		}
		const struct store_session *s = &rec->u.session;
		sessions++;
		/* The spans hold the ids the reader decoded. */
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		size_t off = 0;
		bool id_ok = raw.id_len &&
			     msgpack_unpack_next(&u, (const char *)raw.bytes.ptr + raw.id_off,
						 raw.id_len, &off) == MSGPACK_UNPACK_SUCCESS &&
			     off == raw.id_len && u.data.via.u64 == s->id;
		off = 0;
		bool conn_ok =
		    raw.conn_id_len &&
		    msgpack_unpack_next(&u, (const char *)raw.bytes.ptr + raw.conn_id_off,
					raw.conn_id_len, &off) == MSGPACK_UNPACK_SUCCESS &&
		    off == raw.conn_id_len && u.data.via.u64 == s->conn_id;
		msgpack_unpacked_destroy(&u);
		bad_span += !id_ok || !conn_ok;
		dbuf_append(&orig, raw.bytes.ptr, raw.bytes.len);
		add_err += store_writer_add_session_raw(ws, &raw, s->id, s->conn_id,
							s->ts_req_first_ns) != 0;
		add_err +=
		    store_writer_add_session_raw(wm, &raw, s->id + 1000, new_conn_id(s->conn_id),
						 s->ts_req_first_ns) != 0;
	}
	TAP_EQ_U64(sessions, 40, "raw copy: every session read");
	TAP_EQ_U64(bad_span, 0, "raw copy: id spans decode to the ids; results have none");
	TAP_EQ_U64(add_err, 0, "raw copy: every session added");
	store_reader_free(r);
	TAP_OK(ws && store_writer_close(ws, NULL, 0, err, sizeof(err)) == 0, "raw copy: closed");
	TAP_OK(wm && store_writer_close(wm, NULL, 0, err, sizeof(err)) == 0, "raw copy: closed");

	/* Same ids: the very bytes of the source's records. */
	struct dbuf copy;
	dbuf_init(&copy, 1 << 20);
	r = store_reader_open(same, err, sizeof(err));
	while (r && store_reader_next(r, &rec) == 1) {
		struct store_raw_record raw = store_reader_raw(r);
		dbuf_append(&copy, raw.bytes.ptr, raw.bytes.len);
	}
	TAP_OK(r && copy.len == orig.len && !memcmp(copy.data, orig.data, orig.len),
	       "raw copy with the same ids is byte for byte the source (%zu bytes)", orig.len);
	TAP_EQ_U64(r ? store_reader_status(r)->sessions : 0, 40, "raw copy: index counts sessions");
	store_reader_free(r);

	/* New ids: every other field as before. */
	r = store_reader_open(moved, err, sizeof(err));
	uint64_t n = 0, diff = 0;
	struct sample x;
	while (r && store_reader_next(r, &rec) == 1) {
		const struct store_session *s = &rec->u.session;
		sample_fill(&x, s->id - 1000);
		x.s.id += 1000;
		x.s.conn_id = new_conn_id(x.s.conn_id);
		const char *why = sample_session_diff(s, &x.s);
		if (why && !diff++)
			printf("# session %" PRIu64 ": %s\n", s->id, why);
		n++;
	}
	TAP_OK(n == 40 && !diff,
	       "raw copy with new ids: ids replaced, the rest intact (%" PRIu64
	       " sessions, %" PRIu64 " differ)",
	       n, diff);
	store_reader_free(r);
	dbuf_release(&orig);
	dbuf_release(&copy);
}

/* A hand-made session with no "conn_id", "id" late and an unknown key; and
 * calls that must be refused. */
static void test_raw_edges(void)
{
	char path[512], err[256];
	struct dbuf b;
	dbuf_init(&b, 1 << 16);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b, pk_buf);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	pk_kv_str(&pk, "zz_future", "kept");
	pk_kv_str(&pk, "lane", "blue");
	msgpack_pack_str_with_body(&pk, "id", 2);
	msgpack_pack_uint64(&pk, 300);
	size_t id_off = b.len - 3; /* 0xcd 0x01 0x2c */
	path_in_tmp(path, sizeof(path), "raw-edges.dyt");
	struct store_writer *w = raw_writer(path);
	struct store_raw_record raw = {.bytes = {b.data, b.len}, .id_off = id_off, .id_len = 3};
	TAP_OK(w && store_writer_add_session_raw(w, &raw, 7, 1u << 20, 5) == 0,
	       "raw: a session without conn_id is added");
	struct store_raw_record bad = raw;
	bad.id_off = 2; /* "t"'s key: not an integer */
	int rc = w ? store_writer_add_session_raw(w, &bad, 1, 1, 5) : 0;
	TAP_OK(rc == -EINVAL, "raw: an id span that is no integer is refused: %s",
	       store_writer_error(w));
	bad = raw;
	bad.id_off = b.len;
	TAP_OK(w && store_writer_add_session_raw(w, &bad, 1, 1, 5) == -EINVAL,
	       "raw: an id span past the bytes is refused");
	bad = raw;
	bad.conn_id_off = id_off + 1;
	bad.conn_id_len = 1;
	TAP_OK(w && store_writer_add_session_raw(w, &bad, 1, 1, 5) == -EINVAL,
	       "raw: overlapping id spans are refused");
	uint8_t arr[] = {0x91, 0x01};
	bad = (struct store_raw_record){.bytes = {arr, sizeof(arr)}};
	TAP_OK(w && store_writer_add_session_raw(w, &bad, 1, 1, 5) == -EINVAL,
	       "raw: bytes that are no map are refused");
	TAP_OK(w && store_writer_close(w, NULL, 0, err, sizeof(err)) == 0,
	       "raw: the writer is still usable after refusals");
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	int n = 0, ok = 0;
	while (r && store_reader_next(r, &rec) == 1) {
		n++;
		struct store_raw_record got = store_reader_raw(r);
		const struct store_session *s = &rec->u.session;
		ok = rec->type == STORE_REC_SESSION && s->id == 7 && s->conn_id == (1u << 20) &&
		     s->lane.len == 4 && !memcmp(s->lane.ptr, "blue", 4) &&
		     memmem(got.bytes.ptr, got.bytes.len, "zz_future\xa4kept", 14) != NULL;
	}
	TAP_OK(n == 1 && ok, "raw: id replaced, conn_id added, unknown key kept (%d records)", n);
	store_reader_free(r);
	dbuf_release(&b);
}

/* The background writer writes the very same data frames as the synchronous
 * one; flush and close wait for them; a failed background write is
 * reported by a later call, never lost. */
static void test_background(void)
{
	char ps[512], pb[512], err[256];
	path_in_tmp(ps, sizeof(ps), "sync.dyt");
	path_in_tmp(pb, sizeof(pb), "bg.dyt");
	TAP_OK(write_sample_file_bg(ps, 400, 3000, 1, false) == 0, "synchronous file written");
	TAP_OK(write_sample_file_bg(pb, 400, 3000, 1, true) == 0, "background file written");
	size_t ns = 0, nb = 0;
	uint8_t *bs = slurp(ps, &ns), *bb = slurp(pb, &nb);
	struct frame_info fs[512], fb[512];
	uint64_t ds = 0, db = 0, is = 0, ib = 0;
	size_t ks = bs ? frames_of(bs, ns, fs, 512, &ds, &is) : 0;
	size_t kb = bb ? frames_of(bb, nb, fb, 512, &db, &ib) : 0;
	TAP_OK(ks > 20 && ks == kb, "same number of data frames (%zu, %zu)", ks, kb);
	/* the headers differ in their random file_id only */
	size_t hs =
	    bs && ns >= 8 ? 8 + (bs[4] | bs[5] << 8 | bs[6] << 16 | (size_t)bs[7] << 24) : 0;
	size_t hb =
	    bb && nb >= 8 ? 8 + (bb[4] | bb[5] << 8 | bb[6] << 16 | (size_t)bb[7] << 24) : 1;
	TAP_OK(is == ib && hs == hb && hs < is && bs && bb && !memcmp(bs + hs, bb + hs, is - hs),
	       "data frames identical byte for byte (%" PRIu64 " bytes)", is - hs);
	TAP_OK(hs == hb && bs && bb && memcmp(bs, bb, hs),
	       "headers of equal size, each with its own file id");
	free(bs);
	free(bb);
	struct store_reader *r = store_reader_open(pb, err, sizeof(err));
	struct check c = r ? read_and_check(r) : (struct check){0, 0, 1};
	const struct store_read_status *st = r ? store_reader_status(r) : NULL;
	TAP_OK(c.sessions == 400 && c.results == 134 && !c.bad && st && st->has_index,
	       "every record read back from the background file");
	TAP_OK(st && counter_of(st, "store_bg_waits") != UINT64_MAX &&
		   counter_of(st, "store_frames") == ks,
	       "trailer has store_bg_waits=%" PRIu64 " and the frame count",
	       st ? counter_of(st, "store_bg_waits") : 0);
	store_reader_free(r);

	/* flush() waits: the frame is in the file when it returns. */
	struct store_writer_params p = {.path = pb, .flush_ms = 60000, .background = true};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	struct sample x;
	sample_fill(&x, 7);
	struct stat a, b;
	char pbp[600];
	snprintf(pbp, sizeof(pbp), "%s%s", pb, STORE_PARTIAL_SUFFIX);
	stat(pbp, &a);
	int rc = w ? store_writer_add_session(w, &x.s) : -1;
	rc = rc ? rc : store_writer_flush(w);
	stat(pbp, &b);
	TAP_OK(!rc && b.st_size > a.st_size, "flush returns with the frame written");
	store_writer_free(w);
	r = store_reader_open(pbp, err, sizeof(err));
	c = r ? read_and_check(r) : (struct check){0, 0, 1};
	TAP_OK(c.sessions == 1 && !c.bad, "flushed record readable without a trailer");
	store_reader_free(r);

	/* A write error on the background thread reaches the caller. A pipe
	 * whose reader is gone gives EPIPE (SIGPIPE ignored here). */
	int fds[2];
	if (pipe(fds) != 0) {
		TAP_OK(0, "pipe: %s", strerror(errno));
		return;
	}
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", fds[1]);
	signal(SIGPIPE, SIG_IGN);
	p = (struct store_writer_params){
	    .path = fdpath, .flush_bytes = 2048, .flush_ms = 60000, .background = true};
	/* The header fits in the pipe buffer; then both ends go away. */
	w = store_writer_create(&p, err, sizeof(err));
	close(fds[1]);
	close(fds[0]);
	rc = w ? 0 : -1;
	int first_err = 0;
	for (uint64_t i = 0; i < 200 && w; i++) {
		sample_fill(&x, i);
		rc = store_writer_add_session(w, &x.s);
		if (rc) {
			first_err = rc;
			break;
		}
	}
	if (w && !first_err)
		first_err = store_writer_flush(w);
	TAP_OK(first_err == -EIO && strstr(store_writer_error(w), "cannot write store file"),
	       "background write error reported: %d %.150s", first_err,
	       w ? store_writer_error(w) : err);
	TAP_OK(w && store_writer_add_session(w, &x.s) == -EIO, "later calls fail too");
	TAP_OK(w && store_writer_close(w, NULL, 0, err, sizeof(err)) != 0 && err[0],
	       "close reports it: %.150s", err);
}

/* ---- HTTP/2 sessions: proto, stream, trailers; version 2 records ---- */

static bool hdr_is(const struct store_header *h, const char *n, const char *v)
{
	return h->name.len == strlen(n) && !memcmp(h->name.ptr, n, h->name.len) &&
	       h->value.len == strlen(v) && !memcmp(h->value.ptr, v, h->value.len);
}

#define S(x) ((struct store_slice){(const uint8_t *)(x), sizeof(x) - 1})

static void test_h2_read(const char *path, const struct dbuf *packed, msgpack_packer *pk);

static void test_h2_records(void)
{
	char path[300], err[256];
	path_in_tmp(path, sizeof(path), "h2.dyt");
	struct store_writer_params wp = {.path = path};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	TAP_OK(w != NULL, "h2: writer created");
	if (!w)
		return;
	struct store_header rq[] = {{S(":method"), S("POST")},
				    {S(":path"), S("/shop.Shop/GetItem")},
				    {S("x-lane"), S("blue")}};
	struct store_header rs[] = {{S(":status"), S("200")},
				    {S("content-type"), S("application/grpc")}};
	struct store_header tr[] = {{S("grpc-status"), S("0")}, {S("grpc-message"), S("")}};
	struct store_session s = {.id = 1,
				  .ip_version = 4,
				  .conn_id = 3,
				  .conn_index = 2,
				  .ts_req_first_ns = 100,
				  .proto = STORE_PROTO_H2C,
				  .stream_id = 5};
	s.req = (struct store_message){.present = true,
				       .method = S("POST"),
				       .target = S("/shop.Shop/GetItem"),
				       .version_major = 2,
				       .headers = rq,
				       .n_headers = 3,
				       .body = S("\0\0\0\0\2\x08\x01"),
				       .body_len = 7};
	s.resp = (struct store_message){.present = true,
					.status = 200,
					.version_major = 2,
					.headers = rs,
					.n_headers = 2,
					.trailers = tr,
					.n_trailers = 2};
	struct store_session h1 = {.id = 2, .ip_version = 4, .conn_id = 4, .ts_req_first_ns = 200};
	h1.req = (struct store_message){.present = true,
					.method = S("GET"),
					.target = S("/"),
					.version_major = 1,
					.version_minor = 1};
	struct store_result r = {.session_id = 1,
				 .target = S("http://127.0.0.1:1"),
				 .role = S("candidate"),
				 .ts_sent_ns = 300};
	r.resp = s.resp;
	int rc = store_writer_add_session(w, &s) || store_writer_add_session(w, &h1) ||
		 store_writer_add_result(w, &r);
	TAP_OK(rc == 0 && store_writer_close(w, NULL, 0, err, sizeof(err)) == 0,
	       "h2: sessions and a result written");
	/* The same records packed apart from the writer (store_pack_*()), and
	 * with every map's keys reversed (the reader's general loop instead
	 * of its fast path), for the checks below. */
	struct dbuf packed[3], rev;
	for (int i = 0; i < 3; i++)
		dbuf_init(&packed[i], 1 << 20);
	dbuf_init(&rev, 1 << 20);
	rc = store_pack_session(&packed[0], &s) || store_pack_session(&packed[1], &h1) ||
	     store_pack_result(&packed[2], &r);
	TAP_OK(rc == 0, "h2: records packed apart from the writer");
	msgpack_packer pk;
	msgpack_packer_init(&pk, &rev, pk_buf);
	char rpath[300];
	path_in_tmp(rpath, sizeof(rpath), "h2-rev.dyt");
	test_h2_read(path, packed, &pk);
	write_header_only(rpath);
	append_data_frame(rpath, &rev);
	test_h2_read(rpath, NULL, NULL);
	for (int i = 0; i < 3; i++)
		dbuf_release(&packed[i]);
	dbuf_release(&rev);
	struct dbuf j;
	dbuf_init(&j, 1 << 20);
	rc = store_session_json(&j, &s, 0);
	TAP_OK(rc == 0 && j.data && strstr((char *)j.data, "\"proto\":\"h2c\",\"stream\":5}") &&
		   strstr((char *)j.data, "\"trailers\":[[\"grpc-status\",\"0\"]"),
	       "h2: JSON form has proto, stream and trailers");
	dbuf_release(&j);
}

/* ts_reset_ns (docs/format.md §2.1): written only for a reset stream, read
 * back whether the map has "vlan" or not (the reader's general loop), kept
 * by a session copied as bytes, in the JSON form; absent reads as 0. */
static void test_h2_reset_time(void)
{
	char path[300], cpath[300], err[256];
	path_in_tmp(path, sizeof(path), "h2-reset.dyt");
	path_in_tmp(cpath, sizeof(cpath), "h2-reset-copy.dyt");
	struct store_writer_params wp = {.path = path};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	TAP_OK(w != NULL, "reset time: writer created");
	if (!w)
		return;
	struct store_session s[3];
	for (int i = 0; i < 3; i++) {
		s[i] = (struct store_session){.id = (uint64_t)i + 1,
					      .ip_version = 4,
					      .conn_id = 1,
					      .conn_index = (uint32_t)i,
					      .ts_req_first_ns = 1000,
					      .ts_req_last_ns = 1500,
					      .proto = STORE_PROTO_H2C,
					      .stream_id = 2u * (uint32_t)i + 1};
		s[i].req = (struct store_message){.present = true,
						  .method = S("POST"),
						  .target = S("/shop.Shop/Watch"),
						  .version_major = 2};
	}
	s[0].flags = s[1].flags = STORE_F_RESET | STORE_F_NO_RESPONSE;
	s[0].ts_reset_ns = 301500;
	s[0].reset_code = 8;
	s[1].ts_reset_ns = 7000000001;
	s[1].vlan = 7;
	int rc = 0;
	for (int i = 0; i < 3; i++)
		rc |= store_writer_add_session(w, &s[i]);
	TAP_OK(rc == 0 && store_writer_close(w, NULL, 0, err, sizeof(err)) == 0,
	       "reset time: sessions written");
	struct store_writer_params cp = {.path = cpath};
	struct store_writer *wc = store_writer_create(&cp, err, sizeof(err));
	struct store_reader *rd = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	int64_t got[3] = {-1, -1, -1};
	uint16_t vlan = 0;
	int n = 0;
	while (rd && wc && n < 3 && store_reader_next(rd, &rec) == 1) {
		got[n] = rec->u.session.ts_reset_ns;
		if (n == 1)
			vlan = rec->u.session.vlan;
		struct store_raw_record raw = store_reader_raw(rd);
		rc |= store_writer_add_session_raw(wc, &raw, rec->u.session.id, 9,
						   rec->u.session.ts_req_first_ns);
		n++;
	}
	store_reader_free(rd);
	TAP_OK(n == 3 && got[0] == 301500 && got[1] == 7000000001 && vlan == 7 && got[2] == 0,
	       "reset time: read back (with and without vlan), 0 where absent");
	TAP_OK(wc && rc == 0 && store_writer_close(wc, NULL, 0, err, sizeof(err)) == 0,
	       "reset time: sessions copied as bytes");
	rd = store_reader_open(cpath, err, sizeof(err));
	n = 0;
	int same = 0;
	while (rd && store_reader_next(rd, &rec) == 1) {
		same += n < 3 && rec->u.session.ts_reset_ns == s[n].ts_reset_ns &&
			rec->u.session.conn_id == 9;
		n++;
	}
	store_reader_free(rd);
	TAP_OK(n == 3 && same == 3, "reset time: kept by a session copied as bytes");
	struct dbuf j;
	dbuf_init(&j, 1 << 16);
	rc = store_session_json(&j, &s[0], 0);
	bool has = rc == 0 && j.data &&
		   strstr((char *)j.data, "\"stream\":1,\"ts_reset_ns\":301500,\"reset_code\":8}");
	dbuf_reset(&j);
	rc = store_session_json(&j, &s[2], 0);
	bool none = rc == 0 && j.data && !strstr((char *)j.data, "ts_reset_ns");
	TAP_OK(has && none, "reset time: in the JSON form after stream, only when reset");
	dbuf_release(&j);
}

/* Read test_h2_records' file @p path and check its three records; with
 * @p packed, their bytes equal these; with @p pk, each record is packed
 * again with its keys reversed. */
static void test_h2_read(const char *path, const struct dbuf *packed, msgpack_packer *pk)
{
	char err[256];
	struct store_reader *rd = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	int n = 0, same = 0;
	while (rd && store_reader_next(rd, &rec) == 1) {
		struct store_raw_record raw = store_reader_raw(rd);
		if (packed && n < 3)
			same += raw.bytes.len == packed[n].len &&
				!memcmp(raw.bytes.ptr, packed[n].data, raw.bytes.len);
		if (pk) {
			msgpack_unpacked u;
			msgpack_unpacked_init(&u);
			if (msgpack_unpack_next(&u, (const char *)raw.bytes.ptr, raw.bytes.len,
						NULL) == MSGPACK_UNPACK_SUCCESS)
				pack_reversed(pk, &u.data, 2);
			msgpack_unpacked_destroy(&u);
		}
		/* every record map opens with "v": fixstr "v" then the version */
		size_t at = raw.bytes.len && raw.bytes.ptr[0] == 0xde ? 5 : 3; /* map16 / fixmap */
		unsigned v = raw.bytes.len > at ? raw.bytes.ptr[at] : 0;
		n++;
		if (n == 1) {
			const struct store_session *g = &rec->u.session;
			TAP_OK(g->proto == STORE_PROTO_H2C && g->stream_id == 5,
			       "h2: proto and stream read back");
			TAP_OK(
			    g->req.n_headers == 3 &&
				hdr_is(&g->req.headers[1], ":path", "/shop.Shop/GetItem"),
			    "h2: request fields read back in order, pseudo-header fields included");
			TAP_OK(g->resp.n_trailers == 2 && g->resp.n_headers == 2 &&
				   hdr_is(&g->resp.trailers[0], "grpc-status", "0") &&
				   hdr_is(&g->resp.headers[1], "content-type", "application/grpc"),
			       "h2: response trailers apart from its headers");
			TAP_OK(g->req.n_trailers == 0 && g->req.body.len == 7,
			       "h2: request without trailers");
			if (packed) /* reversed, "v" is last */
				TAP_EQ_U64(v, 2, "h2: an HTTP/2 session record is version 2");
		} else if (n == 2) {
			TAP_OK(rec->u.session.proto == STORE_PROTO_HTTP1 &&
				   rec->u.session.stream_id == 0 && !rec->u.session.resp.n_trailers,
			       "h2: an HTTP/1.1 session stays HTTP/1.1");
			if (packed) /* reversed, "v" is last */
				TAP_EQ_U64(v, 1, "h2: an HTTP/1.1 session record stays version 1");
		} else {
			TAP_OK(rec->type == STORE_REC_RESULT &&
				   rec->u.result.resp.n_trailers == 2 &&
				   hdr_is(&rec->u.result.resp.trailers[1], "grpc-message", ""),
			       "h2: result trailers read back");
			if (packed) /* reversed, "v" is last */
				TAP_EQ_U64(v, 2,
					   "h2: a result with an HTTP/2 response is version 2");
		}
	}
	TAP_EQ_U64(n, 3, "h2: all records read");
	if (packed)
		TAP_EQ_U64(same, 3,
			   "h2: records packed apart from the writer are the writer's bytes");
	store_reader_free(rd);
}

/* ---- identity, custody metadata, exclusive writing, lost records ---- */

static bool is_hex_id(const char *s)
{
	if (!s || strlen(s) != STORE_FILE_ID_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void test_identity_and_custody(void)
{
	char a[512], b[512], err[256];
	path_in_tmp(a, sizeof(a), "id-a.dyt");
	path_in_tmp(b, sizeof(b), "id-b.dyt");
	static const struct store_counter rc[] = {{"src_kernel_drops", 7}, {"pipe_sessions", 9}};
	static const struct store_origin org[] = {{.id = "00112233445566778899aabbccddeeff",
						   .file = "rec.dyt",
						   .first_ns = 11,
						   .last_ns = 22,
						   .sessions = 9,
						   .state = "complete",
						   .counters = rc,
						   .n_counters = 2}};
	static const struct store_target tg[] = {{"candidate", "http://127.0.0.1:1"},
						 {"v3", "http://127.0.0.1:2"}};
	static const uint64_t per_shard[] = {4, 5};
	struct store_meta m = {.kind = "results",
			       .origins = org,
			       .n_origins = 1,
			       .targets = tg,
			       .n_targets = 2,
			       .shard_k = 1,
			       .shard_n = 2,
			       .shard_sessions = per_shard};
	struct store_writer_params p = {.path = a, .meta = &m};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	char id_a[STORE_FILE_ID_LEN + 1] = "";
	if (w)
		snprintf(id_a, sizeof(id_a), "%s", store_writer_file_id(w));
	TAP_OK(w && is_hex_id(id_a), "a new file gets a 128-bit hex id (%s)", id_a);
	struct stat sb;
	TAP_OK(stat(a, &sb) != 0, "while written, the file is not at its name yet");
	/* a second writer of the same file fails at once, naming the reason */
	struct store_writer_params p2 = {.path = a};
	struct store_writer *w2 = store_writer_create(&p2, err, sizeof(err));
	TAP_OK(!w2 && strstr(err, "being written by another process") && strstr(err, ".partial"),
	       "a second writer is refused: %.200s", err);
	store_writer_free(w2);
	TAP_OK(w && store_writer_close(w, NULL, 0, err, sizeof(err)) == 0, "close");
	char part[600];
	snprintf(part, sizeof(part), "%s%s", a, STORE_PARTIAL_SUFFIX);
	TAP_OK(stat(a, &sb) == 0 && (sb.st_mode & 0777) == 0600 && stat(part, &sb) != 0,
	       "close renamed the .partial into place, mode 0600");
	w2 = store_writer_create(&p2, err, sizeof(err));
	TAP_OK(w2 != NULL, "after the close, a new writer may replace the file");
	store_writer_free(w2); /* leaves a.partial; a is still the first file */
	unlink(part);
	TAP_OK(write_sample_file(b, 3, 0, 1) == 0, "a second file");
	struct store_reader *ra = store_reader_open(a, err, sizeof(err));
	struct store_reader *rb = store_reader_open(b, err, sizeof(err));
	const struct store_file_meta *ma = ra ? store_reader_meta(ra) : NULL;
	const struct store_file_meta *mb = rb ? store_reader_meta(rb) : NULL;
	TAP_OK(ma && mb && ma->file_id && !strcmp(ma->file_id, id_a) && is_hex_id(mb->file_id) &&
		   strcmp(ma->file_id, mb->file_id),
	       "the reader gives each file its own id");
	const struct store_origin *o = ma && ma->n_origins == 1 ? &ma->origins[0] : NULL;
	TAP_OK(o && !strcmp(o->id, org[0].id) && !strcmp(o->file, "rec.dyt") && o->first_ns == 11 &&
		   o->last_ns == 22 && o->sessions == 9 && !strcmp(o->state, "complete") &&
		   o->n_counters == 2 && !strcmp(o->counters[0].name, "src_kernel_drops") &&
		   o->counters[0].value == 7,
	       "the recording's identity and capture counters round-trip");
	TAP_OK(ma && ma->n_targets == 2 && !strcmp(ma->targets[1].role, "v3") &&
		   !strcmp(ma->targets[1].url, "http://127.0.0.1:2"),
	       "targets round-trip");
	TAP_OK(ma && ma->shard_k == 1 && ma->shard_n == 2 && ma->shard_sessions &&
		   ma->shard_sessions[0] == 4 && ma->shard_sessions[1] == 5,
	       "shard and sessions per shard round-trip");
	TAP_OK(mb && !mb->n_origins && !mb->n_targets && !mb->shard_n && !mb->shard_sessions,
	       "a recording has none of them");
	store_reader_free(ra);
	store_reader_free(rb);
}

/* Run in a child under a file size limit: every record not in the file is counted. */
static void test_lost_on_full_disk(void)
{
	char path[512], part[600];
	path_in_tmp(path, sizeof(path), "full.dyt");
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	int fds[2];
	if (pipe(fds) != 0) {
		TAP_OK(0, "pipe");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {64 * 1024, 64 * 1024};
		setrlimit(RLIMIT_FSIZE, &rl);
		char err[512];
		struct store_writer_params p = {.path = path, .flush_bytes = 4096, .level = -5};
		struct store_writer *w = store_writer_create(&p, err, sizeof(err));
		uint64_t refused = 0;
		struct sample x;
		for (uint64_t i = 0; w && i < 300; i++) {
			sample_fill(&x, i);
			/* incompressible bodies: every frame is about its record bytes */
			uint8_t body[1500];
			for (size_t k = 0; k < sizeof(body); k++)
				body[k] = (uint8_t)rand();
			x.s.resp.body.ptr = body;
			x.s.resp.body.len = sizeof(body);
			x.s.resp.body_len = sizeof(body);
			refused += store_writer_add_session(w, &x.s) != 0;
		}
		int rc = w ? store_writer_finish(w, NULL, 0, err, sizeof(err)) : -1;
		unsigned long long lost = w ? (unsigned long long)store_writer_lost(w) : 0;
		store_writer_free(w);
		dprintf(fds[1], "%d %llu %llu %s\n", rc, lost, (unsigned long long)refused, err);
		_exit(0);
	}
	close(fds[1]);
	char buf[1024] = "";
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	waitpid(pid, NULL, 0);
	buf[n > 0 ? n : 0] = '\0';
	int rc = 0;
	unsigned long long lost = 0, refused = 0;
	int off = 0;
	sscanf(buf, "%d %llu %llu %n", &rc, &lost, &refused, &off);
	char err[512];
	struct store_reader *r = store_reader_open(part, err, sizeof(err));
	uint64_t got = 0;
	const struct store_record *rec;
	while (r && store_reader_next(r, &rec) == 1)
		got++;
	TAP_OK(rc < 0 && strstr(buf + off, "records lost") && strstr(buf + off, ".partial"),
	       "closing on a full disk fails and says where the data is: %.150s", buf + off);
	TAP_OK(got > 0 && got < 300,
	       "the partial file holds the records before the disk filled "
	       "(%" PRIu64 ")",
	       got);
	TAP_EQ_U64(lost + got, 300, "lost = every record not in the file (lost %llu, refused %llu)",
		   lost, refused);
	TAP_OK(lost > refused, "more were lost than refused: accepted records died with a frame");
	store_reader_free(r);
}

/* Open files of this process whose name is under the test directory and
 * deleted: the writer's spilled index (O_TMPFILE). */
static int spill_files(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++) {
		char lp[64], target[1024];
		snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
		ssize_t k = readlink(lp, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		n += !strncmp(target, tmpdir, strlen(tmpdir)) && strstr(target, "(deleted)");
	}
	return n;
}

/* A writer of many frames keeps at most a few thousand index entries in
 * memory: the rest go to a temporary file and come back in the index. */
static void test_index_spill(void)
{
	char path[512], err[256];
	path_in_tmp(path, sizeof(path), "spill.dyt");
	struct store_writer_params p = {.path = path, .flush_ms = 60000};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	struct sample x;
	int fails = !w, spilled_mid = 0;
	for (uint64_t i = 0; w && i < 10000; i++) {
		sample_fill(&x, i);
		fails += store_writer_add_session(w, &x.s) != 0;
		fails += store_writer_flush(w) != 0; /* one frame per record */
		if (i == 5000)
			spilled_mid = spill_files();
	}
	TAP_EQ_U64(fails, 0, "spill: 10000 frames written");
	TAP_OK(spilled_mid == 1, "spill: index entries went to a temporary file (%d)", spilled_mid);
	TAP_EQ_U64(w ? store_writer_close(w, NULL, 0, err, sizeof(err)) : 1, 0, "spill: closed");
	TAP_EQ_U64(spill_files(), 0, "spill: the temporary file is gone");
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	TAP_OK(r && store_reader_status(r)->has_index, "spill: the index is valid");
	const struct store_record *rec = NULL;
	uint64_t ids[] = {7, 4095, 4096, 8191, 8192, 9999};
	int wrong = !r;
	for (size_t k = 0; r && k < sizeof(ids) / sizeof(ids[0]); k++) {
		int rc = store_reader_seek_time(r, SAMPLE_T0 + (int64_t)ids[k] * 1000000);
		rc |= store_reader_next(r, &rec) != 1;
		wrong += rc || rec->u.session.id != ids[k];
	}
	TAP_EQ_U64(wrong, 0, "spill: seeks through the index land on the right frames");
	uint64_t n = 0;
	if (r && !store_reader_seek_time(r, 0))
		while (store_reader_next(r, &rec) == 1)
			n++;
	TAP_OK(n == 10000 && r && !store_reader_status(r)->damaged_frames,
	       "spill: 10000 records, no frame damaged (%llu)", (unsigned long long)n);
	store_reader_free(r);
	unlink(path);
}

/* A file of @p n sessions whose response bodies are @p body_mib MiB of
 * one byte, each flushed into a frame of its own (past the ratio cap),
 * then one ordinary session. */
static void write_runs(const char *path, int n, size_t body_mib, const uint8_t *run)
{
	char err[256];
	struct store_writer_params p = {.path = path, .flush_ms = 60000};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	struct sample x;
	int fails = !w;
	for (int i = 0; w && i <= n; i++) {
		sample_fill(&x, 1); /* frames alike: each as far past the cap */
		x.s.id = (uint64_t)i + 1;
		if (i < n) {
			x.s.resp.body = (struct store_slice){run, body_mib << 20};
			x.s.resp.body_len = body_mib << 20;
		}
		fails += store_writer_add_session(w, &x.s) != 0;
		fails += store_writer_flush(w) != 0;
	}
	fails += w ? store_writer_close(w, NULL, 0, err, sizeof(err)) != 0 : 0;
	TAP_EQ_U64(fails, 0,
		   "ratio: written: %d x %zu MiB of one byte, one frame each, then one "
		   "session",
		   n, body_mib);
}

/* Sessions read from @p path; *over gets frames_over_ratio. */
static uint64_t read_all(const char *path, uint32_t ratio, int passes, uint64_t *over)
{
	char err[256];
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r)
		return 0;
	struct store_read_limits l = {.max_frame_ratio = ratio};
	store_reader_set_limits(r, &l);
	const struct store_record *rec;
	uint64_t n = 0;
	for (int k = 0; k < passes; k++) {
		if (k && store_reader_seek_time(r, INT64_MIN))
			break;
		while (store_reader_next(r, &rec) == 1)
			n++;
	}
	*over = store_reader_status(r)->frames_over_ratio;
	store_reader_free(r);
	return n;
}

/* docs/format.md "Limits": the writer makes frames over the ratio cap from
 * one body of a few MB of one byte; the reader takes those, bounded. */
static void test_over_ratio(void)
{
	char path[512];
	uint64_t over = 0, n;
	uint8_t *run = malloc(40u << 20);
	if (!run)
		abort();
	memset(run, 'x', 40u << 20);
	path_in_tmp(path, sizeof(path), "ratio.dyt");
	write_runs(path, 1, 5, run);
	n = read_all(path, 0, 1, &over);
	TAP_OK(n == 2 && over == 0,
	       "ratio: a 5 MiB body of one byte, past the ratio cap: read "
	       "(%llu sessions, %llu frames refused)",
	       (unsigned long long)n, (unsigned long long)over);
	n = read_all(path, STORE_DEFAULT_FRAME_RATIO, 1, &over);
	TAP_OK(n == 1 && over == 1,
	       "ratio: with --max-frame-ratio 4096 given, kept strictly "
	       "(%llu sessions, %llu refused)",
	       (unsigned long long)n, (unsigned long long)over);
	unlink(path);
	write_runs(path, 9, 30, run);
	n = read_all(path, STORE_DEFAULT_FRAME_RATIO, 1, &over);
	TAP_OK(n == 1 && over == 9,
	       "ratio: 9 frames of 30 MiB of one byte, each past the cap "
	       "(%llu refused with 4096 given)",
	       (unsigned long long)over);
	n = read_all(path, 0, 1, &over);
	TAP_OK(n == 9 && over == 1,
	       "ratio: of them 8 read (240 of the 256 MiB a file may take), 1 refused "
	       "(%llu sessions, %llu refused)",
	       (unsigned long long)n, (unsigned long long)over);
	n = read_all(path, 0, 3, &over);
	TAP_OK(n == 27 && over == 3,
	       "ratio: each pass after a seek takes as much again "
	       "(3 passes: %llu sessions, %llu refused)",
	       (unsigned long long)n, (unsigned long long)over);
	unlink(path);
	write_runs(path, 1, 40, run);
	n = read_all(path, 0, 1, &over);
	TAP_OK(n == 1 && over == 1,
	       "ratio: a frame of 40 MiB of one byte (over 32 MiB) refused "
	       "(%llu sessions, %llu refused)",
	       (unsigned long long)n, (unsigned long long)over);
	n = read_all(path, UINT32_MAX, 1, &over);
	TAP_OK(n == 2 && over == 0, "ratio: read with no cap (none) (%llu sessions)",
	       (unsigned long long)n);
	unlink(path);
	free(run);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! cannot create a temporary directory\n");
		return 1;
	}
	test_round_trip();
	test_meta_mode_errors();
	test_tick();
	test_background();
	test_truncation();
	test_bit_flips();
	test_seek();
	test_versioning();
	test_key_order();
	test_raw_copy();
	test_raw_edges();
	test_h2_records();
	test_h2_reset_time();
	test_identity_and_custody();
	test_lost_on_full_disk();
	test_index_spill();
	test_over_ratio();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
