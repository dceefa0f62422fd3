/* SPDX-License-Identifier: MIT */
/*
 * store_bench - throughput and size of the store writer and reader on
 * realistic HTTP session records, beside the zstd and gzip command-line
 * tools on the same msgpack payload bytes, measured in the same run
 * (docs/benchmarks.md "Store"; run it with bench/store.sh).
 *
 * Records: browser and API-client header sets (cookies, bearer tokens,
 * trace ids: high-entropy values), JSON bodies from 100 B to 30 KiB, HTML
 * pages, and a share of already-compressed bodies (gzip-encoded responses,
 * images) that no compressor can shrink. Generated from a fixed seed.
 *
 * Times are CPU seconds (this process, or the children for the CLI tools),
 * not wall-clock: the development machine is shared, and CPU time is what
 * "on one core" means.
 *
 * Usage: store_bench [-n RECORDS] [-l LEVEL] [-f FLUSH_KIB] [-r RUNS] [-d DIR] [-A]
 * (-A: only zstd -3 as the size anchor, for level and flush-size sweeps)
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zstd.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"
#include "store/store.h"

/* ---- deterministic generator ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned rndn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static const char *pick(const char *const *v, size_t n)
{
	return v[rndn((unsigned)n)];
}
#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

static const char *const first_names[] = {
    "Alice",   "Bob",	"Carol", "Dave",  "Erin",   "Frank",  "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Oscar", "Peggy", "Trent", "Victor", "Walter", "Li",    "Wei",	"Yuki", "Amara"};
static const char *const last_names[] = {"Smith",  "Jones", "Garcia", "Chen", "Wang",	"Kumar",
					 "Müller", "Rossi", "Silva",  "Kim",  "Nguyen", "Okafor"};
static const char *const words[] = {
    "order",  "item",	 "cart",    "user",   "account", "invoice",  "shipping",  "payment",
    "review", "product", "catalog", "search", "price",	 "discount", "warehouse", "session"};
static const char *const statuses[] = {"active", "pending", "shipped", "cancelled", "refunded"};
static const char *const agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
};

struct gen {
	struct dbuf arena; /* all strings and bodies of all records */
	struct store_session *s;
	struct store_header *h;
	size_t n_h;
	uint64_t payload_hint;
};

/* Store text in the arena; returns its offset (pointers fixed up after generation). */
static size_t put(struct gen *g, const void *p, size_t n)
{
	size_t off = g->arena.len;
	if (dbuf_append(&g->arena, p, n) != 0) {
		fprintf(stderr, "store_bench: out of memory\n");
		exit(3);
	}
	return off;
}

static size_t putf(struct gen *g, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t putf(struct gen *g, size_t *len, const char *fmt, ...)
{
	size_t off = g->arena.len;
	va_list ap;
	va_start(ap, fmt);
	if (dbuf_vprintf(&g->arena, fmt, ap) != 0) {
		fprintf(stderr, "store_bench: out of memory\n");
		exit(3);
	}
	va_end(ap);
	*len = g->arena.len - off;
	return off;
}

/* Slices hold arena offsets in .ptr until fix_slice(). */
static struct store_slice sl_off(size_t off, size_t len)
{
	struct store_slice s = {(const uint8_t *)(uintptr_t)off, len};
	return s;
}

static struct store_slice sl_fmt(struct gen *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct store_slice sl_fmt(struct gen *g, const char *fmt, ...)
{
	size_t off = g->arena.len;
	va_list ap;
	va_start(ap, fmt);
	if (dbuf_vprintf(&g->arena, fmt, ap) != 0) {
		fprintf(stderr, "store_bench: out of memory\n");
		exit(3);
	}
	va_end(ap);
	struct store_slice s = {(const uint8_t *)(uintptr_t)off, g->arena.len - off};
	return s;
}

static struct store_slice sl_text(struct gen *g, const char *t)
{
	size_t n = strlen(t);
	return sl_off(put(g, t, n), n);
}

static struct store_slice sl_hex(struct gen *g, size_t n)
{
	char b[256];
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n && i < sizeof(b); i++)
		b[i] = hx[rnd() & 15];
	return sl_off(put(g, b, n), n);
}

static struct store_slice sl_b64(struct gen *g, size_t n)
{
	char b[512];
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	for (size_t i = 0; i < n && i < sizeof(b); i++)
		b[i] = t[rnd() & 63];
	return sl_off(put(g, b, n), n);
}

static struct store_slice sl_random_bytes(struct gen *g, size_t n)
{
	size_t off = g->arena.len;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rnd();
		put(g, &v, n - i < 8 ? n - i : 8);
	}
	return sl_off(off, n);
}

static struct store_slice json_body(struct gen *g, size_t target)
{
	size_t off = g->arena.len, len;
	putf(g, &len, "{\"%s\":[", PICK(words));
	for (int k = 0; g->arena.len - off < target; k++) {
		const char *fn = PICK(first_names), *ln = PICK(last_names);
		putf(g, &len,
		     "%s{\"id\":%u,\"name\":\"%s %s\",\"email\":\"%c.%s%u@example.com\","
		     "\"status\":\"%s\",\"price\":%u.%02u,\"created_at\":\"2025-11-%02uT%02u:%02u:%"
		     "02uZ\","
		     "\"tags\":[\"%s\",\"%s\"],\"score\":%u}",
		     k ? "," : "", rndn(10000000), fn, ln, fn[0] | 0x20, ln, rndn(1000),
		     PICK(statuses), rndn(2000), rndn(100), 1 + rndn(28), rndn(24), rndn(60),
		     rndn(60), PICK(words), PICK(words), rndn(100000));
	}
	putf(g, &len, "],\"total\":%u,\"page\":%u}", rndn(100000), rndn(50));
	return sl_off(off, g->arena.len - off);
}

static struct store_slice html_body(struct gen *g, size_t target)
{
	size_t off = g->arena.len, len;
	putf(g, &len,
	     "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s %s - "
	     "Shop</title><link rel=\"stylesheet\" href=\"/static/css/app.%s.css\"></head>\n<body>"
	     "<header class=\"nav\"><a href=\"/\">Home</a> <a href=\"/%s\">%s</a></header>\n<main>",
	     PICK(words), PICK(words), "3f9a1c", PICK(words), PICK(words));
	while (g->arena.len - off < target) {
		const char *w = PICK(words);
		putf(g, &len,
		     "<div class=\"card product\" data-id=\"%u\"><img src=\"/img/%s/%u.jpg\" "
		     "alt=\"%s\"><h3>%s %s</h3><p class=\"price\">$%u.%02u</p><button "
		     "class=\"btn add-to-cart\">Add to cart</button></div>\n",
		     rndn(1000000), w, rndn(100000), w, PICK(first_names), w, rndn(500), rndn(100));
	}
	putf(g, &len, "</main><footer>&copy; 2025</footer></body></html>\n");
	return sl_off(off, g->arena.len - off);
}

static void gen_session(struct gen *g, uint64_t i, struct store_session *s)
{
	static const char *const lanes[] = {"", "", "blue", "green"};
	static const char *const methods[] = {"GET", "GET", "GET",  "GET",  "GET",
					      "GET", "GET", "POST", "POST", "PUT"};
	memset(s, 0, sizeof(*s));
	s->id = i;
	s->ip_version = 4;
	uint32_t a = 0x0a000000u | rndn(1u << 16), b = 0x0a010002u;
	memcpy(s->src.addr, &a, 4);
	memcpy(s->dst.addr, &b, 4);
	s->src.port = (uint16_t)(32768 + rndn(28000));
	s->dst.port = 8080;
	s->lane = sl_text(g, PICK(lanes));
	s->conn_id = i / 4;
	s->conn_index = (uint32_t)(i % 4);
	s->ts_req_first_ns = 1764158400000000000LL + (int64_t)i * 731000 + rndn(500000);
	s->ts_req_last_ns = s->ts_req_first_ns + rndn(100000);
	s->ts_resp_first_ns = s->ts_req_last_ns + 200000 + rndn(5000000);
	s->ts_resp_last_ns = s->ts_resp_first_ns + rndn(2000000);

	struct store_message *q = &s->req, *r = &s->resp;
	q->present = r->present = true;
	q->method = sl_text(g, PICK(methods));
	size_t len;
	int api = rndn(10) < 7;
	q->target = api ? sl_fmt(g, "/api/v2/%s/%u/%s?page=%u&limit=%u&sort=%s", PICK(words),
				 rndn(10000000), PICK(words), rndn(20), 10 + rndn(90), PICK(words))
			: sl_fmt(g, "/%s/%s-%u.html", PICK(words), PICK(words), rndn(100000));
	q->version_major = r->version_major = 1;
	q->version_minor = r->version_minor = 1;

	/* request headers */
	size_t h0 = g->n_h;
	struct store_header *h = g->h + g->n_h;
	size_t k = 0;
	h[k++] = (struct store_header){sl_text(g, "Host"), sl_text(g, "shop.example.com")};
	h[k++] = (struct store_header){sl_text(g, "User-Agent"), sl_text(g, PICK(agents))};
	h[k++] = (struct store_header){
	    sl_text(g, "Accept"), sl_text(g, api ? "application/json"
						 : "text/html,application/xhtml+xml,application/"
						   "xml;q=0.9,*/*;q=0.8")};
	h[k++] =
	    (struct store_header){sl_text(g, "Accept-Encoding"), sl_text(g, "gzip, deflate, br")};
	h[k++] = (struct store_header){sl_text(g, "Accept-Language"), sl_text(g, "en-US,en;q=0.9")};
	size_t c0 = g->arena.len;
	putf(g, &len, "sid=");
	sl_hex(g, 32);
	putf(g, &len, "; _ga=GA1.2.%u.%u; theme=dark", rndn(1000000000), rndn(1000000000));
	h[k++] = (struct store_header){sl_text(g, "Cookie"), sl_off(c0, g->arena.len - c0)};
	if (api) {
		size_t a0 = g->arena.len;
		putf(g, &len, "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
		sl_b64(g, 180);
		putf(g, &len, ".");
		sl_b64(g, 86);
		h[k++] = (struct store_header){sl_text(g, "Authorization"),
					       sl_off(a0, g->arena.len - a0)};
	}
	size_t t0 = g->arena.len;
	putf(g, &len, "00-");
	sl_hex(g, 32);
	putf(g, &len, "-");
	sl_hex(g, 16);
	putf(g, &len, "-01");
	h[k++] = (struct store_header){sl_text(g, "traceparent"), sl_off(t0, g->arena.len - t0)};
	h[k++] = (struct store_header){sl_text(g, "X-Request-Id"), sl_hex(g, 32)};
	if (s->lane.len)
		h[k++] = (struct store_header){sl_text(g, "x-lane"), s->lane};
	if (q->method.len == 4 || q->method.len == 3 /* POST, PUT */) {
		if (((const char *)g->arena.data + (uintptr_t)q->method.ptr)[0] != 'G') {
			q->body = json_body(g, 80 + rndn(1500));
			q->body_len = q->body.len;
			h[k++] = (struct store_header){sl_text(g, "Content-Type"),
						       sl_text(g, "application/json")};
			h[k++] = (struct store_header){sl_text(g, "Content-Length"),
						       sl_fmt(g, "%zu", q->body.len)};
		}
	}
	q->headers = (const struct store_header *)(uintptr_t)h0;
	q->n_headers = k;
	g->n_h += k;

	/* response */
	h0 = g->n_h;
	h = g->h + g->n_h;
	k = 0;
	unsigned kind = rndn(100);
	unsigned status = rndn(100) < 93 ? 200 : rndn(2) ? 404 : 500;
	r->status = (uint16_t)status;
	r->reason = sl_text(g, status == 200   ? "OK"
			       : status == 404 ? "Not Found"
					       : "Internal Server Error");
	h[k++] = (struct store_header){
	    sl_text(g, "Date"), sl_fmt(g, "Wed, 26 Nov 2025 12:%02u:%02u GMT", rndn(60), rndn(60))};
	h[k++] = (struct store_header){sl_text(g, "Server"), sl_text(g, "nginx/1.22.1")};
	const char *ctype;
	if (kind < 55) { /* API JSON, mostly small, some large */
		size_t sz = rndn(10) < 8 ? 100 + rndn(3000) : 4000 + rndn(28000);
		r->body = json_body(g, sz);
		ctype = "application/json";
	} else if (kind < 75) { /* HTML pages */
		r->body = html_body(g, 2000 + rndn(30000));
		ctype = "text/html; charset=utf-8";
	} else if (kind < 90) { /* gzip-encoded JSON: incompressible */
		r->body = sl_random_bytes(g, 300 + rndn(6000));
		ctype = "application/json";
		h[k++] = (struct store_header){sl_text(g, "Content-Encoding"), sl_text(g, "gzip")};
	} else if (kind < 95) { /* images: incompressible */
		r->body = sl_random_bytes(g, 2000 + rndn(30000));
		ctype = "image/jpeg";
	} else { /* empty 204-like answers and redirects */
		ctype = "text/plain";
	}
	r->body_len = r->body.len;
	h[k++] = (struct store_header){sl_text(g, "Content-Type"), sl_text(g, ctype)};
	h[k++] = (struct store_header){sl_text(g, "Content-Length"), sl_fmt(g, "%zu", r->body.len)};
	h[k++] = (struct store_header){sl_text(g, "Cache-Control"),
				       sl_text(g, api ? "no-store" : "public, max-age=300")};
	h[k++] =
	    (struct store_header){sl_text(g, "ETag"), sl_fmt(g, "W/\"%016" PRIx64 "\"", rnd())};
	h[k++] = (struct store_header){sl_text(g, "X-Trace-Id"), sl_hex(g, 32)};
	if (rndn(10) == 0) {
		size_t s0 = g->arena.len;
		putf(g, &len, "sid=");
		sl_hex(g, 32);
		putf(g, &len, "; Path=/; HttpOnly; Secure; SameSite=Lax");
		h[k++] =
		    (struct store_header){sl_text(g, "Set-Cookie"), sl_off(s0, g->arena.len - s0)};
	}
	r->headers = (const struct store_header *)(uintptr_t)h0;
	r->n_headers = k;
	g->n_h += k;
}

/* Turn arena offsets into pointers once the arena stopped moving. */
static void fix_slice(const struct gen *g, struct store_slice *s)
{
	s->ptr = g->arena.data + (uintptr_t)s->ptr;
}

static void fix_msg(struct gen *g, struct store_message *m)
{
	fix_slice(g, &m->method);
	fix_slice(g, &m->target);
	fix_slice(g, &m->reason);
	fix_slice(g, &m->body);
	struct store_header *h = g->h + (uintptr_t)m->headers;
	for (size_t i = 0; i < m->n_headers; i++) {
		fix_slice(g, &h[i].name);
		fix_slice(g, &h[i].value);
	}
	m->headers = h;
}

/* ---- measurements ---- */

/* CPU time of this process in ns. */
static int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CPU time of the waited-for children in ns. */
static int64_t child_cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

struct wres {
	double secs;
	uint64_t raw, size;
};

static struct wres write_store(const char *path, struct store_session *s, size_t n, int level,
			       size_t flush)
{
	struct store_writer_params p = {.path = path, .level = level, .flush_bytes = flush};
	char err[256];
	int64_t t0 = cpu_ns();
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(3);
	}
	for (size_t i = 0; i < n; i++)
		if (store_writer_add_session(w, &s[i]) != 0) {
			fprintf(stderr, "store_bench: %s\n", store_writer_error(w));
			exit(3);
		}
	if (store_writer_close(w, NULL, 0, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(3);
	}
	struct wres r = {(double)(cpu_ns() - t0) / 1e9, 0, file_size(path)};
	struct store_reader *rd = store_reader_open(path, err, sizeof(err));
	const struct store_record *rec;
	while (rd && store_reader_next(rd, &rec) == 1)
		;
	r.raw = rd ? store_reader_status(rd)->raw_bytes : 0;
	store_reader_free(rd);
	return r;
}

static double read_store(const char *path, uint64_t *sum_out)
{
	char err[256];
	int64_t t0 = cpu_ns();
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(3);
	}
	const struct store_record *rec;
	uint64_t sum = 0;
	while (store_reader_next(r, &rec) == 1) {
		const struct store_session *s = &rec->u.session;
		sum += s->req.n_headers + s->resp.n_headers + s->resp.body.len + s->req.target.len;
	}
	store_reader_free(r);
	*sum_out = sum;
	return (double)(cpu_ns() - t0) / 1e9;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = mem_alloc(sz > 0 ? (size_t)sz : 1);
	if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
		mem_free(p);
		p = NULL;
	}
	fclose(f);
	*n = (size_t)sz;
	return p;
}

static double run_cmd(const char *cmd)
{
	int64_t t0 = child_cpu_ns();
	if (system(cmd) != 0) {
		fprintf(stderr, "store_bench: '%s' failed\n", cmd);
		return -1;
	}
	return (double)(child_cpu_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	size_t n = 20000, flush_kib = 0;
	int level = 0, runs = 5, c, anchors = 1;
	const char *dir = "/tmp";
	while ((c = getopt(argc, argv, "n:l:f:r:d:A")) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'l':
			level = (int)strtol(optarg, NULL, 10);
			break;
		case 'f':
			flush_kib = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			runs = (int)strtol(optarg, NULL, 10);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'A':
			anchors = 0; /* writer and reader only (for sweeps) */
			break;
		default:
			fprintf(stderr, "usage: store_bench [-n RECORDS] [-l LEVEL] [-f FLUSH_KIB] "
					"[-r RUNS] [-d DIR] [-A]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 50)
		runs = 5;
	struct gen g = {0};
	dbuf_init(&g.arena, (size_t)4 << 30);
	g.s = mem_calloc(n, sizeof(*g.s));
	g.h = mem_calloc(n * 40, sizeof(*g.h));
	if (!g.s || !g.h)
		return 3;
	for (size_t i = 0; i < n; i++)
		gen_session(&g, i, &g.s[i]);
	for (size_t i = 0; i < n; i++) {
		fix_slice(&g, &g.s[i].lane);
		fix_msg(&g, &g.s[i].req);
		fix_msg(&g, &g.s[i].resp);
	}

	char path[512], payload[512], cmd[1400];
	snprintf(path, sizeof(path), "%s/store_bench.dyt", dir);
	snprintf(payload, sizeof(payload), "%s/store_bench.msgpack", dir);
	size_t flush = flush_kib * 1024;

	/* writer at the chosen level, median of runs */
	double wt[50], rt[50];
	struct wres w = {0};
	for (int i = 0; i < runs; i++) {
		w = write_store(path, g.s, n, level, flush);
		wt[i] = w.secs;
	}
	double wmed = median(wt, runs);
	uint64_t sum = 0;
	for (int i = 0; i < runs; i++)
		rt[i] = read_store(path, &sum);
	double rmed = median(rt, runs);

	/* decompression alone (the whole file is valid zstd input) and the payload file */
	size_t fsz = 0;
	uint8_t *file = slurp(path, &fsz);
	uint8_t *raw = mem_alloc(w.raw);
	double dt[50];
	for (int i = 0; i < runs; i++) {
		int64_t t0 = cpu_ns();
		size_t d = ZSTD_decompress(raw, w.raw, file, fsz);
		dt[i] = (double)(cpu_ns() - t0) / 1e9;
		if (ZSTD_isError(d) || d != w.raw) {
			fprintf(stderr, "store_bench: decompressing the store failed\n");
			return 3;
		}
	}
	double dmed = median(dt, runs);

	/* frame by frame into one reused buffer, as the reader does: the decode anchor */
	size_t fb_cap = 17u << 20;
	uint8_t *fb = mem_alloc(fb_cap);
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	double ft[50];
	for (int i = 0; i < runs; i++) {
		int64_t t0 = cpu_ns();
		size_t pos = 0;
		while (pos + 8 <= fsz) {
			uint32_t m = (uint32_t)file[pos] | (uint32_t)file[pos + 1] << 8 |
				     (uint32_t)file[pos + 2] << 16 | (uint32_t)file[pos + 3] << 24;
			if ((m & 0xFFFFFFF0u) == 0x184D2A50u) {
				pos += 8 + ((uint32_t)file[pos + 4] | (uint32_t)file[pos + 5] << 8 |
					    (uint32_t)file[pos + 6] << 16 |
					    (uint32_t)file[pos + 7] << 24);
				continue;
			}
			size_t cs = ZSTD_findFrameCompressedSize(file + pos, fsz - pos);
			if (ZSTD_isError(cs))
				break;
			ZSTD_decompressDCtx(dctx, fb, fb_cap, file + pos, cs);
			pos += cs;
		}
		ft[i] = (double)(cpu_ns() - t0) / 1e9;
	}
	double fmed = median(ft, runs);
	ZSTD_freeDCtx(dctx);
	mem_free(fb);
	FILE *f = fopen(payload, "wb");
	if (!f || fwrite(raw, 1, w.raw, f) != w.raw || fclose(f) != 0) {
		fprintf(stderr, "store_bench: cannot write %s\n", payload);
		return 3;
	}

	/* compression alone: the payload in flush-sized chunks, one ZSTD_compress2 each */
	size_t chunk = flush ? flush : (size_t)1 << 20;
	size_t zcap = ZSTD_compressBound(chunk);
	uint8_t *zb = mem_alloc(zcap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level ? level : 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	double ct[50];
	for (int i = 0; i < runs; i++) {
		int64_t t0 = cpu_ns();
		for (size_t off = 0; off < w.raw; off += chunk) {
			size_t len = w.raw - off < chunk ? w.raw - off : chunk;
			ZSTD_compress2(cctx, zb, zcap, raw + off, len);
		}
		ct[i] = (double)(cpu_ns() - t0) / 1e9;
	}
	double cmed = median(ct, runs);
	ZSTD_freeCCtx(cctx);
	mem_free(zb);

	/* msgpack_unpack_next over the same payload (object tree, no struct mapping) */
	double ut[50];
	for (int i = 0; i < runs; i++) {
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		size_t off = 0;
		uint64_t cnt = 0;
		int64_t t0 = cpu_ns();
		while (msgpack_unpack_next(&u, (const char *)raw, w.raw, &off) ==
		       MSGPACK_UNPACK_SUCCESS)
			cnt++;
		ut[i] = (double)(cpu_ns() - t0) / 1e9;
		msgpack_unpacked_destroy(&u);
		if (cnt != n)
			fprintf(stderr, "store_bench: unpacked %" PRIu64 " records\n", cnt);
	}
	double umed = median(ut, runs);

	double mb = (double)w.raw / 1e6;
	printf("records: %zu, msgpack payload %.1f MB (%.0f B/record), level %d, flush %zu KiB, "
	       "median of %d runs\n\n",
	       n, mb, (double)w.raw / (double)n, level ? level : 1,
	       flush ? flush_kib : (size_t)1024, runs);
	printf("| what | MB/s of payload | records/s | size | size vs zstd -3 |\n");
	printf("|---|---|---|---|---|\n");

	/* anchors: CLI tools on the same payload bytes */
	static const char *const tools[][2] = {
	    {"zstd -1", "zstd -q -1 -T1 -c"},
	    {"zstd -3", "zstd -q -3 -T1 -c"},
	    {"gzip -6", "gzip -6 -c"},
	};
	double tsec[3], ts[50];
	uint64_t tsize[3];
	char outp[600];
	for (int t = 0; t < 3; t++) {
		tsec[t] = 1;
		tsize[t] = 1;
		if (!anchors && t != 1)
			continue;
		snprintf(outp, sizeof(outp), "%s.out", payload);
		snprintf(cmd, sizeof(cmd), "%s '%s' > '%s'", tools[t][1], payload, outp);
		for (int i = 0; i < runs; i++)
			ts[i] = run_cmd(cmd);
		tsec[t] = median(ts, runs);
		tsize[t] = file_size(outp);
		unlink(outp);
	}
	double z3 = (double)tsize[1];
	printf("| store writer (level %d) | %.0f | %.0f | %" PRIu64 " | %+.1f %% |\n",
	       level ? level : 1, mb / wmed, (double)n / wmed, w.size,
	       ((double)w.size / z3 - 1) * 100);
	printf("| store reader (decompress + decode) | %.0f | %.0f | | |\n", mb / rmed,
	       (double)n / rmed);
	for (int t = 0; t < 3; t++)
		printf("| `%s` on the payload | %.0f | | %" PRIu64 " | %+.1f %% |\n", tools[t][0],
		       mb / tsec[t], tsize[t], ((double)tsize[t] / z3 - 1) * 100);
	printf("\nreader breakdown: zstd decompression of the whole file in one call %.0f MB/s, "
	       "frame by frame into one buffer %.0f MB/s; record decode (reader minus frame-wise "
	       "decompression) %.0f MB/s; msgpack_unpack_next object tree alone %.0f MB/s\n",
	       mb / dmed, mb / fmed, rmed > fmed ? mb / (rmed - fmed) : 0.0, mb / umed);
	printf("writer breakdown: zstd level %d compression alone in %zu KiB chunks %.0f MB/s "
	       "(the writer reaches %.0f %% of it)\n",
	       level ? level : 1, chunk >> 10, mb / cmed, cmed / wmed * 100);
	printf("ratio payload/store: %.2f; checksum of fields read: %" PRIu64 "\n",
	       (double)w.raw / (double)w.size, sum);

	unlink(path);
	unlink(payload);
	mem_free(file);
	mem_free(raw);
	mem_free(g.s);
	mem_free(g.h);
	dbuf_release(&g.arena);
	return 0;
}
