/* SPDX-License-Identifier: MIT */
/*
 * Forced store limits (docs/testing.md "Forced limits"): the data
 * frame batch (flush_bytes) and the 64 MiB frame content cap, hit at chosen
 * points through store/store.h. A record over the cap is refused with
 * -E2BIG and a message, nothing of it is written, and the writer goes on:
 * the file reads back complete with every other record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "store/store.h"
#include "tests/tap.h"

static struct store_session mk(uint64_t id, const uint8_t *body, size_t len)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = id;
	s.ip_version = 4;
	s.dst.port = 80;
	s.conn_id = id;
	s.ts_req_first_ns = 1764158400000000000LL + (int64_t)id;
	s.req.present = true;
	s.req.method = (struct store_slice){(const uint8_t *)"POST", 4};
	s.req.target = (struct store_slice){(const uint8_t *)"/up", 3};
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.req.body = (struct store_slice){body, len};
	s.req.body_len = len;
	return s;
}

int main(void)
{
	char dir[] = "/tmp/dyetap-storelim.XXXXXX", path[512], err[256];
	if (!mkdtemp(dir))
		TAP_SKIP_ALL("no temp dir");
	snprintf(path, sizeof(path), "%s/lim.dyt", dir);
	/* 1100-byte bodies with flush_bytes 4096: 3 records stay below, the 4th passes it. */
	uint8_t small[1100];
	memset(small, 'b', sizeof(small));
	struct store_writer_params wp = {.path = path, .flush_bytes = 4096, .flush_ms = 3600000};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	TAP_OK(w != NULL, "writer created");
	if (!w)
		return tap_done();
	int rc = 0;
	for (uint64_t i = 1; i <= 5; i++) {
		struct store_session s = mk(i, small, sizeof(small));
		rc |= store_writer_add_session(w, &s);
	}
	TAP_EQ_U64(rc, 0, "5 small records added");
	/* One record over the 64 MiB frame content cap. */
	size_t big_len = (size_t)65 << 20;
	uint8_t *big = mem_alloc(big_len);
	TAP_OK(big != NULL, "65 MiB body allocated");
	if (big) {
		memset(big, 'x', big_len);
		struct store_session s = mk(6, big, big_len);
		TAP_EQ_U64(store_writer_add_session(w, &s), (uint64_t)-E2BIG,
			   "a 65 MiB record is refused with -E2BIG");
		TAP_OK(strstr(store_writer_error(w), "frame limit") != NULL,
		       "the writer says why: %s", store_writer_error(w));
		mem_free(big);
	}
	rc = 0;
	for (uint64_t i = 7; i <= 11; i++) {
		struct store_session s = mk(i, small, sizeof(small));
		rc |= store_writer_add_session(w, &s);
	}
	TAP_EQ_U64(rc, 0, "the writer goes on: 5 more records added");
	TAP_EQ_U64(store_writer_close(w, NULL, 0, err, sizeof(err)), 0, "closed with its trailer");

	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	TAP_OK(r != NULL, "reopened");
	if (!r)
		return tap_done();
	const struct store_record *rec;
	uint64_t n = 0, ids = 0;
	while (store_reader_next(r, &rec) == 1) {
		n++;
		ids += rec->u.session.id;
	}
	const struct store_read_status *st = store_reader_status(r);
	TAP_EQ_U64(n, 10, "10 records read back, the refused one is not there");
	TAP_EQ_U64(ids, 1 + 2 + 3 + 4 + 5 + 7 + 8 + 9 + 10 + 11, "ids 1-5 and 7-11");
	TAP_OK(st->has_index && !st->cut && !st->damaged_frames, "complete, nothing damaged");
	/* Batches: a frame is written once a record brings the batch to 4096
	 * bytes (records 1-4, 7-10); the refused record first flushes the
	 * pending batch (record 5) to retry alone in an empty one; 11 at close. */
	TAP_EQ_U64(st->frames, 4, "4 data frames: 1-4, 5, 7-10, 11 (flush_bytes 4096)");
	store_reader_free(r);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
