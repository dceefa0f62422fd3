/* SPDX-License-Identifier: MIT */
/*
 * replay_testtool - fixtures for the replay end-to-end tests.
 *
 *   replay_testtool mkrec OUT.dyt < SPEC   write a recording from SPEC
 *   replay_testtool dump FILE               print every record as a JSON
 *                                           line, then a status line
 *
 * SPEC has one session per line, tab-separated:
 *   conn_id  ts_ms  method  target  lane  body  flags  headers  [resp_ms  [port]]
 * flags: "-" or a comma list of "trunc" (body cut by the cap), "nobody"
 * (Content-Length larger than the stored body), "noreq" (a response
 * without its request, request time 0, as `dyetap record` writes one
 * seen mid-connection); headers: "-" or
 * "Name: value|Name: value" appended after Host and X-Seq. Each session
 * gets a recorded production response "200 OK" with body "prod <target>".
 * resp_ms: when the recorded response ended, in ms after the request
 * started ("-" or absent: 1; "none": no response recorded); port: the
 * recorded server port (default 80; the server address is 10.0.0.2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbuf.h"
#include "store/store.h"

#define SL(p, n) ((struct store_slice){(const uint8_t *)(p), (n)})
#define SZ(s)	 SL((s), strlen(s))

static int mkrec(const char *path)
{
	char err[256];
	struct store_meta meta = {.kind = "recording", .source = "test:spec", .start_ns = 1};
	struct store_writer_params wp = {.path = path, .meta = &meta};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "mkrec: %s\n", err);
		return 2;
	}
	char line[8192];
	uint64_t id = 0;
	uint32_t conn_index[4096] = {0};
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		char *f[10] = {0};
		char *save = NULL, *p = line;
		int nf = 0;
		for (; nf < 10; nf++) {
			char *tab = strchr(p, '\t');
			f[nf] = p;
			if (!tab) {
				nf++;
				break;
			}
			*tab = '\0';
			p = tab + 1;
		}
		(void)save;
		if (nf < 7) {
			fprintf(stderr, "mkrec: bad line (need 7+ fields)\n");
			store_writer_free(w);
			return 2;
		}
		uint64_t conn = strtoull(f[0], NULL, 10);
		double ts_ms = strtod(f[1], NULL);
		const char *body = strcmp(f[5], "-") ? f[5] : "";
		struct store_header hs[32];
		size_t nh = 0;
		char seq[32], clen[32];
		snprintf(seq, sizeof(seq), "%llu", (unsigned long long)id + 1);
		hs[nh++] = (struct store_header){SZ("Host"), SZ("prod.example")};
		hs[nh++] = (struct store_header){SZ("X-Seq"), SZ(seq)};
		bool trunc = strstr(f[6], "trunc") != NULL, cut = strstr(f[6], "nobody") != NULL;
		size_t blen = strlen(body);
		if (blen || cut) {
			snprintf(clen, sizeof(clen), "%zu", cut ? blen + 10 : blen);
			hs[nh++] = (struct store_header){SZ("Content-Length"), SZ(clen)};
		}
		if (nf >= 8 && strcmp(f[7], "-")) {
			char *q = f[7];
			while (q && *q && nh < 30) {
				char *bar = strchr(q, '|');
				if (bar)
					*bar = '\0';
				char *colon = strchr(q, ':');
				if (colon) {
					*colon = '\0';
					char *v = colon + 1;
					while (*v == ' ')
						v++;
					hs[nh++] = (struct store_header){SZ(q), SZ(v)};
				}
				q = bar ? bar + 1 : NULL;
			}
		}
		struct store_session s;
		memset(&s, 0, sizeof(s));
		s.id = ++id;
		s.ip_version = 4;
		s.src.addr[0] = 10;
		s.src.addr[3] = 1;
		s.src.port = (uint16_t)(40000 + conn);
		s.dst.addr[0] = 10;
		s.dst.addr[3] = 2;
		s.dst.port = 80;
		s.lane = strcmp(f[4], "-") ? SZ(f[4]) : SL("", 0);
		s.conn_id = conn;
		s.conn_index = conn < 4096 ? conn_index[conn]++ : 0;
		s.ts_req_first_ns = 1764158400000000000LL + (int64_t)(ts_ms * 1e6);
		s.ts_req_last_ns = s.ts_req_first_ns;
		s.ts_resp_first_ns = s.ts_req_first_ns + 1000000;
		s.ts_resp_last_ns = s.ts_resp_first_ns;
		bool noresp = nf >= 9 && !strcmp(f[8], "none");
		if (nf >= 9 && strcmp(f[8], "-") && !noresp)
			s.ts_resp_first_ns = s.ts_resp_last_ns =
			    s.ts_req_first_ns + (int64_t)(strtod(f[8], NULL) * 1e6);
		if (nf >= 10 && strcmp(f[9], "-"))
			s.dst.port = (uint16_t)strtoul(f[9], NULL, 10);
		s.req.present = true;
		s.req.method = SZ(f[2]);
		s.req.target = SZ(f[3]);
		s.req.version_major = 1;
		s.req.version_minor = 1;
		s.req.headers = hs;
		s.req.n_headers = nh;
		s.req.body = SL(body, blen);
		s.req.body_len = trunc ? blen + 100 : blen;
		s.req.truncated = trunc;
		char rbody[4200];
		snprintf(rbody, sizeof(rbody), "prod %.4190s",
			 f[3]); /* bounded for -Wformat-truncation */
		struct store_header rh[] = {{SZ("Content-Type"), SZ("text/plain")}};
		s.resp.present = true;
		s.resp.status = 200;
		s.resp.reason = SZ("OK");
		s.resp.version_major = 1;
		s.resp.version_minor = 1;
		s.resp.headers = rh;
		s.resp.n_headers = 1;
		s.resp.body = SZ(rbody);
		s.resp.body_len = strlen(rbody);
		if (noresp) {
			memset(&s.resp, 0, sizeof(s.resp));
			s.ts_resp_first_ns = s.ts_resp_last_ns = 0;
			s.flags |= STORE_F_NO_RESPONSE;
		}
		if (strstr(f[6], "noreq")) {
			memset(&s.req, 0, sizeof(s.req));
			s.ts_req_first_ns = s.ts_req_last_ns = 0;
		}
		if (store_writer_add_session(w, &s)) {
			fprintf(stderr, "mkrec: %s\n", store_writer_error(w));
			store_writer_free(w);
			return 2;
		}
	}
	if (store_writer_close(w, NULL, 0, err, sizeof(err))) {
		fprintf(stderr, "mkrec: %s\n", err);
		return 2;
	}
	return 0;
}

static int dump(const char *path)
{
	char err[256];
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "dump: %s\n", err);
		return 2;
	}
	struct dbuf b;
	dbuf_init(&b, 64u << 20);
	const struct store_record *rec;
	int n;
	while ((n = store_reader_next(r, &rec)) > 0) {
		dbuf_reset(&b);
		if (rec->type == STORE_REC_SESSION) {
			dbuf_puts(&b, "{\"session\":");
			store_session_json(&b, &rec->u.session, 0);
		} else {
			dbuf_puts(&b, "{\"result\":");
			store_result_json(&b, &rec->u.result, 0);
		}
		dbuf_puts(&b, "}\n");
		fwrite(b.data, 1, b.len, stdout);
	}
	const struct store_read_status *st = store_reader_status(r);
	const struct store_file_meta *m = store_reader_meta(r);
	printf("{\"status\":{\"kind\":\"%s\",\"has_index\":%s,\"cut\":%s,\"sessions\":%llu,"
	       "\"results\":%llu,\"counters\":{",
	       m->kind ? m->kind : "", st->has_index ? "true" : "false", st->cut ? "true" : "false",
	       (unsigned long long)st->sessions, (unsigned long long)st->results);
	for (size_t i = 0; i < st->n_counters; i++)
		printf("%s\"%s\":%llu", i ? "," : "", st->counters[i].name,
		       (unsigned long long)st->counters[i].value);
	printf("}}}\n");
	dbuf_release(&b);
	store_reader_free(r);
	return n < 0 ? 3 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "mkrec"))
		return mkrec(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "dump"))
		return dump(argv[2]);
	fprintf(stderr, "usage: replay_testtool mkrec OUT.dyt < SPEC | dump FILE\n");
	return 2;
}
