/* SPDX-License-Identifier: MIT */
/*
 * analysis_testgen - writes results files with planted differences and
 * noise for the end-to-end test of `dyetap diff` (test_diff_e2e.py):
 *
 *   analysis_testgen DIR
 *
 * creates DIR/results.dyt (sessions + candidate results), DIR/secondary.dyt
 * (the same sessions + a known-good replay) and DIR/combined.dyt (both
 * result kinds in one file, role "secondary" for the known-good ones).
 *
 * Planted real changes (the test expects exactly these signatures):
 *   GET /users/{id}   body:$.items[1].price value_changed   (every pair)
 *   GET /users/{id}   body:$.email          missing         (every pair)
 *   GET /users/{id}   header:cache-control  value_changed   (every pair)
 *   GET /orders/{id}  status                status_changed  (order ids % 4 == 0)
 *   POST /search      body:text[4][2]       text_changed    (every pair: word 2 of line 4)
 *   GET /feed         body:$.beta           extra           (every pair, br-encoded)
 * Noise: Date and X-Request-Id headers, $.ts (timestamp), $.request_id
 * (UUID), $.served_by (not volatile-looking; only the secondary shows it
 * is noise), gzip bytes that differ but decode equal (/orders), a text
 * line "generated at ..." masked by the test's rules file.
 * Accounting: 2 sessions with a TCP gap, 1 replay timeout, trailer
 * counters tcp_gaps=2 and replay_timeouts=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <zlib.h>

#include "store/store.h"
#include "tests/analysis/analysis_sample.h"

enum run { PRIMARY, CANDIDATE, SECONDARY };

struct msgbuf {
	char hv[AS_MAX_H][128];
	uint8_t body[4096];
	size_t blen;
};

static size_t gzip_level(const char *in, size_t n, uint8_t *out, size_t cap, int level)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	size_t k = cap - z.avail_out;
	deflateEnd(&z);
	return k;
}

static void uuid(char *out, size_t cap, unsigned seed)
{
	unsigned a = seed * 2654435761u, b = seed * 40503u + 7, c = seed * 2246822519u;
	snprintf(out, cap, "%08x-%04x-4%03x-a%03x-%08x%04x", a, b & 0xffff, c & 0xfff,
		 (a >> 4) & 0xfff, c, (b >> 3) & 0xffff);
}

/* Response of session i on run @p run into @p x (headers point into mb). */
static int response(struct as_msg *x, struct msgbuf *mb, const char *ep, unsigned i, enum run run)
{
	unsigned salt = run * 1000 + i;
	char ts[40], rid[40];
	snprintf(ts, sizeof(ts), "2026-11-26T%02u:%02u:%02u.%03uZ", 10 + run, i % 60, (i * 7) % 60,
		 salt % 1000);
	uuid(rid, sizeof(rid), salt + 17);
	const char *h[AS_MAX_H];
	int nh = 0;
	snprintf(mb->hv[0], sizeof(mb->hv[0]), "Date: Thu, 26 Nov 2026 1%u:00:%02u GMT", run,
		 i % 60);
	h[nh++] = mb->hv[0];
	snprintf(mb->hv[1], sizeof(mb->hv[1]), "X-Request-Id: %s", rid);
	h[nh++] = mb->hv[1];
	uint16_t status = 200;
	char body[4096];
	int n = 0;
	if (!strcmp(ep, "users")) {
		h[nh++] = "Content-Type: application/json";
		h[nh++] =
		    run == CANDIDATE ? "Cache-Control: no-cache" : "Cache-Control: max-age=60";
		h[nh++] = "Set-Cookie: sid=secret-session-value; Path=/; HttpOnly";
		n = snprintf(
		    body, sizeof(body),
		    "{\"id\":%u,\"name\":\"user %u\",%s\"ts\":\"%s\",\"request_id\":\"%s\","
		    "\"served_by\":\"node-%u\",\"items\":[{\"sku\":\"a\",\"price\":10.5},"
		    "{\"sku\":\"b\",\"price\":%u.25}],\"active\":true}",
		    i, i, run == CANDIDATE ? "" : "\"email\":\"u@example.com\",", ts, rid,
		    run == PRIMARY ? 1 : (salt * 7) % 5, i + (run == CANDIDATE ? 1 : 0));
	} else if (!strcmp(ep, "orders")) {
		h[nh++] = "Content-Type: application/json";
		h[nh++] = "Content-Encoding: gzip";
		status = run == CANDIDATE && (i / 6) % 4 == 0 ? 500 : 200;
		char plain[512];
		int pn = snprintf(plain, sizeof(plain),
				  "{\"order\":%u,\"total\":%u.99,\"lines\":[1,2,3],\"note\":"
				  "\"the quick brown fox jumps over the lazy dog\"}",
				  i, i * 3);
		mb->blen = gzip_level(plain, (size_t)pn, mb->body, sizeof(mb->body),
				      run == CANDIDATE ? 1 : 9);
		n = -1;
	} else if (!strcmp(ep, "search")) {
		h[nh++] = "Content-Type: text/plain; charset=utf-8";
		n = snprintf(
		    body, sizeof(body),
		    "results for q%u\nline one\nline two\nscore: %s\ngenerated at %s\nend\n", i,
		    run == CANDIDATE ? "0.7" : "0.9", ts);
	} else if (!strcmp(ep, "feed")) {
		h[nh++] = "Content-Type: application/json";
		h[nh++] = "Content-Encoding: br";
		char plain[512];
		int pn = snprintf(plain, sizeof(plain), "{\"feed\":[%u,%u,%u]%s}", i, i + 1, i + 2,
				  run == CANDIDATE ? ",\"beta\":true" : "");
		size_t bn = sizeof(mb->body);
		BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, (size_t)pn, (const uint8_t *)plain,
				      &bn, mb->body);
		mb->blen = bn;
		n = -1;
	} else if (!strcmp(ep, "logo")) {
		h[nh++] = "Content-Type: image/png";
		for (int k = 0; k < 300; k++)
			body[k] = (char)(k * 37 + 1);
		n = 300;
	} else {
		h[nh++] = "Content-Type: text/plain";
		n = snprintf(body, sizeof(body), "ok\n");
	}
	if (n >= 0) {
		memcpy(mb->body, body, (size_t)n);
		mb->blen = (size_t)n;
	}
	h[nh] = NULL;
	as_resp(x, status, h, mb->body, mb->blen);
	x->m.reason = as_cs(status == 200 ? "OK" : "Internal Server Error");
	/* as_headers keeps pointers into h[] strings: those are static or in mb */
	return 0;
}

struct sess {
	struct as_pair p;
	struct msgbuf mprim, mcand, msec;
	char target[64];
	struct as_msg sec;
};

static const char *endpoint_of(unsigned i, const char **method, char *target, size_t cap)
{
	static const char *const eps[] = {"users", "orders", "search", "feed", "logo", "health"};
	const char *ep = eps[i % 6];
	*method = !strcmp(ep, "search") ? "POST" : "GET";
	if (!strcmp(ep, "users"))
		snprintf(target, cap, "/users/%u?expand=items", 1000 + i);
	else if (!strcmp(ep, "orders"))
		snprintf(target, cap, "/orders/%u", i / 6);
	else if (!strcmp(ep, "search"))
		snprintf(target, cap, "/search");
	else if (!strcmp(ep, "feed"))
		snprintf(target, cap, "/feed");
	else if (!strcmp(ep, "logo"))
		snprintf(target, cap, "/static/logo.png");
	else
		snprintf(target, cap, "/health");
	return ep;
}

#define N_SESSIONS 240

static int write_file(const char *path, int mode /* 0 cand, 1 sec, 2 both */)
{
	char err[256];
	struct store_meta meta = {.kind = "results", .source = "replay:test.dyt"};
	struct store_writer_params wp = {.path = path, .meta = &meta};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	static const char *const req_h[] = {"Host: api.example.com",
					    "Authorization: Bearer secret-token-123",
					    "Cookie: sid=secret-cookie; theme=dark", NULL};
	struct sess *all = calloc(N_SESSIONS, sizeof(*all));
	if (!all)
		return 1;
	for (unsigned i = 0; i < N_SESSIONS; i++) {
		struct sess *x = &all[i];
		const char *method;
		const char *ep = endpoint_of(i, &method, x->target, sizeof(x->target));
		as_pair_init(&x->p, i + 1, method, x->target, req_h);
		response(&x->p.prim, &x->mprim, ep, i, PRIMARY);
		response(&x->p.cand, &x->mcand, ep, i, CANDIDATE);
		response(&x->sec, &x->msec, ep, i, SECONDARY);
		as_pair_link(&x->p);
		if (i == 7 || i == 13)
			x->p.s.flags = STORE_F_GAP;
		if (store_writer_add_session(w, &x->p.s))
			return 1;
	}
	for (unsigned i = 0; i < N_SESSIONS; i++) {
		struct sess *x = &all[i];
		struct store_result r = x->p.r;
		r.latency_ns = 1000000 + (uint64_t)(i % 10) * 100000;
		if (mode != 1) {
			if (i == 20) {
				r.error = STORE_ERR_TIMEOUT;
				r.error_msg = as_cs("no response within 5000 ms");
				r.resp.present = false;
			}
			if (store_writer_add_result(w, &r))
				return 1;
		}
		if (mode != 0) {
			r = x->p.r;
			r.role = as_cs("secondary");
			r.resp = x->sec.m;
			r.latency_ns = 1000000;
			if (store_writer_add_result(w, &r))
				return 1;
		}
	}
	struct store_counter ctr[] = {{"tcp_gaps", 2}, {"replay_timeouts", mode == 1 ? 0 : 1}};
	int rc = store_writer_close(w, ctr, 2, err, sizeof(err));
	free(all);
	if (rc)
		fprintf(stderr, "%s\n", err);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: analysis_testgen DIR\n");
		return 2;
	}
	char p[4096];
	snprintf(p, sizeof(p), "%s/results.dyt", argv[1]);
	if (write_file(p, 0))
		return 1;
	snprintf(p, sizeof(p), "%s/secondary.dyt", argv[1]);
	if (write_file(p, 1))
		return 1;
	snprintf(p, sizeof(p), "%s/combined.dyt", argv[1]);
	return write_file(p, 2);
}
