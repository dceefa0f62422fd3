/* SPDX-License-Identifier: MIT */
/*
 * gen_hostile_dyt - hand-made .dyt files no recorder writes, for
 * tests/harden/hostile_e2e.py (docs/replay.md "Unsafe requests",
 * docs/format.md "Work limits"):
 *
 *   gen_hostile_dyt split OUT      a GET whose target holds CR LF and a
 *                                  second request line
 *                                  ("/x\r\n\r\nDELETE /api/users/42"), a GET
 *                                  with a NUL in a header value, one with
 *                                  "X-Note : 1" (blank before the colon),
 *                                  and a clean GET /ok on its own connection
 *   gen_hostile_dyt framing OUT    POSTs recorded with "Content-Length : 5"
 *                                  alone and beside "content-length: 5"
 *   gen_hostile_dyt bomb OUT N MIB one clean session, then N data frames of
 *                                  MIB MiB of empty msgpack maps each (a
 *                                  decompression bomb: ~30000x)
 *   gen_hostile_dyt records OUT N  one clean session, then N data frames of
 *                                  1 MiB of one-byte records, with enough
 *                                  random ones that each frame stays under
 *                                  the default ratio cap (a record bomb)
 *   gen_hostile_dyt extreme OUT    a results file whose session's request
 *                                  is stamped -5e18 ns and its response
 *                                  +5e18 ns, with a candidate result (the
 *                                  differences overflowed int64)
 *
 * The bombs are an unfinished file (header and data frames, no index, as
 * after a crash) whose extra frames are ordinary zstd frames with content
 * size and checksum, made with libzstd: any reader must take them.
 * Every session's server is 10.0.0.2:80, never a loopback address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/store.h"

#define SL(p, n) ((struct store_slice){(const uint8_t *)(p), (n)})
#define SZ(s)	 SL((s), strlen(s))

static struct store_writer *open_writer(const char *path, const char *kind)
{
	char err[256];
	struct store_meta meta = {.kind = kind, .source = "test:hostile", .start_ns = 1};
	struct store_writer_params wp = {.path = path, .meta = &meta};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w)
		fprintf(stderr, "gen_hostile_dyt: %s\n", err);
	return w;
}

/* One session on connection @p conn with request @p m and a 200 answer. */
static int add(struct store_writer *w, uint64_t id, uint64_t conn, struct store_message m)
{
	struct store_header rh[] = {{SZ("Content-Length"), SZ("2")}};
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = id;
	s.ip_version = 4;
	s.src.addr[0] = 10;
	s.src.addr[3] = 1;
	s.src.port = (uint16_t)(40000 + conn);
	s.dst.addr[0] = 10;
	s.dst.addr[3] = 2;
	s.dst.port = 80;
	s.conn_id = conn;
	s.ts_req_first_ns = 1764158400000000000LL + (int64_t)id * 1000000;
	s.ts_req_last_ns = s.ts_req_first_ns;
	s.ts_resp_first_ns = s.ts_resp_last_ns = s.ts_req_first_ns + 500000;
	m.present = true;
	m.version_major = 1;
	m.version_minor = 1;
	s.req = m;
	s.resp.present = true;
	s.resp.status = 200;
	s.resp.reason = SZ("OK");
	s.resp.version_major = s.resp.version_minor = 1;
	s.resp.headers = rh;
	s.resp.n_headers = 1;
	s.resp.body = SZ("ok");
	s.resp.body_len = 2;
	if (store_writer_add_session(w, &s)) {
		fprintf(stderr, "gen_hostile_dyt: %s\n", store_writer_error(w));
		return 1;
	}
	return 0;
}

static int finish(struct store_writer *w)
{
	char err[256];
	if (store_writer_close(w, NULL, 0, err, sizeof(err))) {
		fprintf(stderr, "gen_hostile_dyt: %s\n", err);
		return 1;
	}
	return 0;
}

static int split(const char *path)
{
	struct store_writer *w = open_writer(path, "recording");
	if (!w)
		return 1;
	struct store_header h[] = {{SZ("Host"), SZ("prod.example")}};
	struct store_header nul[] = {{SZ("Host"), SZ("prod.example")},
				     {SZ("X-Note"), SL("a\0b", 3)}};
	struct store_header blank[] = {{SZ("Host"), SZ("prod.example")}, {SZ("X-Note "), SZ("1")}};
	const char *evil = "/x\r\n\r\nDELETE /api/users/42";
	int rc = add(w, 1, 1,
		     (struct store_message){
			 .method = SZ("GET"), .target = SZ(evil), .headers = h, .n_headers = 1});
	rc |= add(w, 2, 2,
		  (struct store_message){
		      .method = SZ("GET"), .target = SZ("/nul"), .headers = nul, .n_headers = 2});
	rc |=
	    add(w, 3, 3,
		(struct store_message){
		    .method = SZ("GET"), .target = SZ("/blank"), .headers = blank, .n_headers = 2});
	rc |= add(w, 4, 4,
		  (struct store_message){
		      .method = SZ("GET"), .target = SZ("/ok"), .headers = h, .n_headers = 1});
	return rc | finish(w);
}

static int framing(const char *path)
{
	struct store_writer *w = open_writer(path, "recording");
	if (!w)
		return 1;
	struct store_header a[] = {{SZ("Host"), SZ("prod.example")},
				   {SZ("Content-Length "), SZ("5")}};
	struct store_header b[] = {{SZ("Host"), SZ("prod.example")},
				   {SZ("Content-Length "), SZ("5")},
				   {SZ("content-length"), SZ("5")}};
	int rc = add(w, 1, 1,
		     (struct store_message){.method = SZ("POST"),
					    .target = SZ("/one"),
					    .headers = a,
					    .n_headers = 2,
					    .body = SZ("hello"),
					    .body_len = 5});
	rc |= add(w, 2, 1,
		  (struct store_message){.method = SZ("POST"),
					 .target = SZ("/two"),
					 .headers = b,
					 .n_headers = 3,
					 .body = SZ("hello"),
					 .body_len = 5});
	return rc | finish(w);
}

static int extreme(const char *path)
{
	struct store_writer *w = open_writer(path, "results");
	if (!w)
		return 1;
	struct store_header h[] = {{SZ("Host"), SZ("prod.example")}};
	int rc = add(w, 1, 1,
		     (struct store_message){
			 .method = SZ("GET"), .target = SZ("/t"), .headers = h, .n_headers = 1});
	/* add() stamps ordinary times; a second session carries the extreme ones */
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.id = 2;
	s.ip_version = 4;
	s.dst.addr[0] = 10;
	s.dst.port = 80;
	s.conn_id = 2;
	s.ts_req_first_ns = s.ts_req_last_ns = -5000000000000000000LL;
	s.ts_resp_first_ns = s.ts_resp_last_ns = 5000000000000000000LL;
	s.req = (struct store_message){.present = true,
				       .method = SZ("GET"),
				       .target = SZ("/t"),
				       .version_major = 1,
				       .version_minor = 1,
				       .headers = h,
				       .n_headers = 1};
	s.resp = (struct store_message){.present = true,
					.status = 200,
					.reason = SZ("OK"),
					.version_major = 1,
					.version_minor = 1};
	rc |= store_writer_add_session(w, &s) != 0;
	for (uint64_t id = 1; id <= 2; id++) {
		struct store_result res = {.session_id = id,
					   .target = SZ("http://127.0.0.1:9"),
					   .role = SZ("candidate"),
					   .ts_sent_ns = 5000000000000000000LL,
					   .latency_ns = 1000,
					   .resp = s.resp};
		rc |= store_writer_add_result(w, &res) != 0;
	}
	return rc | finish(w);
}

/* An unfinished file with one clean session, then @p n frames of @p fill(). */
static int bomb(const char *path, unsigned n, size_t content, int records)
{
	struct store_writer *w = open_writer(path, "recording");
	if (!w)
		return 1;
	struct store_header h[] = {{SZ("Host"), SZ("prod.example")}};
	if (add(w, 1, 1,
		(struct store_message){
		    .method = SZ("GET"), .target = SZ("/ok"), .headers = h, .n_headers = 1}) ||
	    store_writer_flush(w)) {
		store_writer_free(w);
		return 1;
	}
	store_writer_free(w); /* no trailer: the frames below follow the last flush */
	/* an unfinished writer leaves PATH.partial (docs/format.md): name it PATH */
	char part[4096];
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	if (rename(part, path) != 0) {
		fprintf(stderr, "gen_hostile_dyt: cannot rename %s\n", part);
		return 1;
	}
	uint8_t *raw = malloc(content);
	size_t cap = ZSTD_compressBound(content);
	uint8_t *z = malloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	FILE *f = fopen(path, "ab");
	if (!raw || !z || !cc || !f) {
		fprintf(stderr, "gen_hostile_dyt: out of memory or cannot append to %s\n", path);
		return 1;
	}
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	unsigned seed = 7;
	for (unsigned i = 0; i < n; i++) {
		memset(raw, 0x80, content); /* fixmap 0: an empty record, skipped */
		if (records) /* positive fixints (records of the wrong type) at random */
			for (size_t k = 0; k < 400; k++)
				raw[(size_t)rand_r(&seed) % content] =
				    (uint8_t)(rand_r(&seed) & 0x7f);
		size_t zn = ZSTD_compress2(cc, z, cap, raw, content);
		if (ZSTD_isError(zn) || fwrite(z, 1, zn, f) != zn) {
			fprintf(stderr, "gen_hostile_dyt: cannot write a frame\n");
			return 1;
		}
	}
	ZSTD_freeCCtx(cc);
	free(raw);
	free(z);
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "split"))
		return split(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "framing"))
		return framing(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "bomb"))
		return bomb(argv[2], (unsigned)strtoul(argv[3], NULL, 10),
			    (size_t)strtoul(argv[4], NULL, 10) << 20, 0);
	if (argc == 3 && !strcmp(argv[1], "extreme"))
		return extreme(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "records"))
		return bomb(argv[2], (unsigned)strtoul(argv[3], NULL, 10), (size_t)1 << 20, 1);
	fprintf(stderr, "usage: gen_hostile_dyt split|framing|extreme OUT | bomb OUT N MIB | "
			"records OUT N\n");
	return 2;
}
