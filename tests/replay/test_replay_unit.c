/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of replay's pure helpers: the pacing schedule (absolute,
 * speed and rate arithmetic), sharding determinism and exact partition,
 * request serialization with rewrite rules (exact bytes), filters, URL
 * parsing and histogram percentiles; and the choice among a target's
 * addresses, against real sockets on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/dbuf.h"
#include "replay/replay.h"
#include "tests/tap.h"

#define S(lit)	((struct store_slice){(const uint8_t *)(lit), sizeof(lit) - 1})
#define H(n, v) ((struct store_header){S(n), S(v)})

static void test_sched(void)
{
	struct replay_sched s = {.mode = REPLAY_PACE_RECORDED, .speed = 1.0, .rec_t0_ns = 1000};
	TAP_EQ_U64(replay_sched_offset(&s, 1000, 0), 0, "1x: t0 maps to 0");
	TAP_EQ_U64(replay_sched_offset(&s, 1000 + 5000000000LL, 7), 5000000000LL,
		   "1x: 5 s after t0 is due at 5 s");
	TAP_EQ_U64(replay_sched_offset(&s, 500, 0), 0, "earlier than t0 clamps to 0");
	s.speed = 2.0;
	TAP_EQ_U64(replay_sched_offset(&s, 1000 + 5000000000LL, 0), 2500000000LL,
		   "2x halves the offset");
	s.speed = 0.5;
	TAP_EQ_U64(replay_sched_offset(&s, 1000 + 3000000000LL, 0), 6000000000LL,
		   "0.5x doubles the offset");
	/* Absolute: the millionth request at 3x has no accumulated rounding. */
	s.speed = 3.0;
	int64_t ts = 1000 + 1000000LL * 1000; /* 1e6 requests 1 ms apart */
	TAP_EQ_U64(replay_sched_offset(&s, ts, 999999), 333333333LL, "no drift after 1e6 steps");

	struct replay_sched r = {.mode = REPLAY_PACE_RATE, .rate = 1000};
	TAP_EQ_U64(replay_sched_offset(&r, 123, 0), 0, "rate: first request at 0");
	TAP_EQ_U64(replay_sched_offset(&r, 999, 1), 1000000, "rate 1000/s: 1 ms apart");
	TAP_EQ_U64(replay_sched_offset(&r, 0, 10000), 10000000000LL, "rate: request 10000 at 10 s");
	r.rate = 3;
	TAP_EQ_U64(replay_sched_offset(&r, 0, 1000000), 333333333333333LL, "rate 3/s: absolute");
	struct replay_sched m = {.mode = REPLAY_PACE_MAX};
	TAP_EQ_U64(replay_sched_offset(&m, 1LL << 60, 99), 0, "max: everything due now");

	double v = 0;
	TAP_OK(replay_parse_speed("2x", &v) == 0 && v == 2.0, "speed 2x");
	TAP_OK(replay_parse_speed("0.5x", &v) == 0 && v == 0.5, "speed 0.5x");
	TAP_OK(replay_parse_speed("1", &v) == 0 && v == 1.0, "speed 1");
	TAP_OK(replay_parse_speed("0x", &v) == -EINVAL, "speed 0x refused");
	TAP_OK(replay_parse_speed("fast", &v) == -EINVAL, "speed word refused");
	TAP_OK(replay_parse_speed("2xx", &v) == -EINVAL, "speed 2xx refused");
	int64_t d = 0;
	TAP_OK(replay_parse_duration("250ms", &d) == 0 && d == 250000000, "duration 250ms");
	TAP_OK(replay_parse_duration("1.5", &d) == 0 && d == 1500000000, "duration 1.5");
	TAP_OK(replay_parse_duration("2m", &d) == 0 && d == 120000000000LL, "duration 2m");
	TAP_OK(replay_parse_duration("2y", &d) == -EINVAL, "duration 2y refused");
	TAP_OK(replay_parse_duration("-1", &d) == -EINVAL, "negative duration refused");
}

static void test_shard(void)
{
	uint32_t k, n;
	TAP_OK(replay_parse_shard("0/4", &k, &n) == 0 && k == 0 && n == 4, "shard 0/4");
	TAP_OK(replay_parse_shard("3/4", &k, &n) == 0 && k == 3, "shard 3/4");
	TAP_OK(replay_parse_shard("4/4", &k, &n) == -EINVAL, "shard 4/4 refused (K < N)");
	TAP_OK(replay_parse_shard("1/0", &k, &n) == -EINVAL, "shard 1/0 refused");
	TAP_OK(replay_parse_shard("1-4", &k, &n) == -EINVAL, "shard 1-4 refused");

	/* Known value: the hash is part of the contract between machines. */
	TAP_EQ_U64(replay_conn_hash(1, 0), replay_conn_hash(1, 0), "hash is deterministic");
	TAP_OK(replay_conn_hash(1, 0) != replay_conn_hash(1, 1), "file index changes the hash");
	TAP_EQ_U64(replay_conn_hash(0, 0), 0xe220a8397b1dcdafull,
		   "hash(0,0) is SplitMix64(golden)");

	/* Every connection in exactly one of N shards; shards roughly even. */
	enum { N = 5, CONNS = 10000 };
	uint32_t per[N] = {0};
	unsigned bad = 0;
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.req.present = true;
	s.req.method = S("GET");
	s.req.target = S("/");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	for (uint64_t c = 0; c < CONNS; c++) {
		s.conn_id = c * 7919 + 3;
		unsigned hits = 0;
		for (uint32_t i = 0; i < N; i++) {
			struct replay_filter f = {.shard_k = i, .shard_n = N};
			if (replay_filter_check(&f, &s, 0) == REPLAY_TAKE) {
				hits++;
				per[i]++;
			}
		}
		if (hits != 1)
			bad++;
	}
	TAP_EQ_U64(bad, 0, "each connection belongs to exactly one shard");
	bool even = true;
	for (uint32_t i = 0; i < N; i++)
		even &= per[i] > CONNS / N * 8 / 10 && per[i] < CONNS / N * 12 / 10;
	TAP_OK(even, "shards within 20%% of even (%u %u %u %u %u)", per[0], per[1], per[2], per[3],
	       per[4]);
}

static const char *build(const struct store_message *m, const struct replay_rewrite *rw)
{
	static struct dbuf b;
	dbuf_release(&b);
	dbuf_init(&b, 1 << 20);
	if (replay_request_build(&b, m, rw))
		return "(error)";
	return b.len ? (const char *)b.data : "";
}

static void test_rewrite(void)
{
	struct store_header hs[] = {H("Host", "prod.example"), H("User-Agent", "curl/7.88"),
				    H("x-lane", "blue"),       H("Accept", "*/*"),
				    H("X-Request-Id", "abc"),  H("Accept", "text/html")};
	struct store_message m;
	memset(&m, 0, sizeof(m));
	m.present = true;
	m.method = S("GET");
	m.target = S("/users/42?x=1");
	m.version_major = 1;
	m.version_minor = 1;
	m.headers = hs;
	m.n_headers = 6;
	TAP_EQ_STR(build(&m, NULL),
		   "GET /users/42?x=1 HTTP/1.1\r\nHost: prod.example\r\nUser-Agent: curl/7.88\r\n"
		   "x-lane: blue\r\nAccept: */*\r\nX-Request-Id: abc\r\nAccept: text/html\r\n\r\n",
		   "verbatim: order, case and duplicates kept");

	struct replay_hdr_set set[] = {{"x-request-id", "new"}, {"X-Added", "1"}};
	const char *del[] = {"user-agent"};
	struct replay_rewrite rw = {.host = "cand:8080",
				    .set = set,
				    .n_set = 2,
				    .del = del,
				    .n_del = 1,
				    .path_prefix = "/v2/",
				    .shadow_name = "x-dyetap-shadow",
				    .shadow_value = "1"};
	TAP_EQ_STR(build(&m, &rw),
		   "GET /v2/users/42?x=1 HTTP/1.1\r\nHost: cand:8080\r\nx-lane: blue\r\n"
		   "Accept: */*\r\nX-Request-Id: new\r\nAccept: text/html\r\nX-Added: 1\r\n"
		   "x-dyetap-shadow: 1\r\n\r\n",
		   "rewrite: host, set in place + appended, delete, prefix, shadow last");

	/* Set replaces all duplicates by one line at the first position. */
	struct replay_hdr_set acc[] = {{"accept", "application/json"}};
	struct replay_rewrite rw2 = {.set = acc, .n_set = 1};
	TAP_EQ_STR(build(&m, &rw2),
		   "GET /users/42?x=1 HTTP/1.1\r\nHost: prod.example\r\nUser-Agent: curl/7.88\r\n"
		   "x-lane: blue\r\nAccept: application/json\r\nX-Request-Id: abc\r\n\r\n",
		   "set collapses duplicates at the first position, keeps its case");

	/* Recorded chunked body: re-sent with Content-Length at the TE position. */
	struct store_header ph[] = {H("Host", "h"), H("Transfer-Encoding", "chunked"),
				    H("Content-Type", "text/plain"), H("x-dyetap-shadow", "old")};
	struct store_message p;
	memset(&p, 0, sizeof(p));
	p.present = true;
	p.method = S("POST");
	p.target = S("/in");
	p.version_major = 1;
	p.version_minor = 1;
	p.headers = ph;
	p.n_headers = 4;
	p.body = S("hello world");
	p.body_len = 11;
	struct replay_rewrite rw3 = {.shadow_name = "X-Dyetap-Shadow", .shadow_value = "1"};
	TAP_EQ_STR(build(&p, &rw3),
		   "POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n"
		   "Content-Type: text/plain\r\nx-dyetap-shadow: 1\r\n\r\nhello world",
		   "chunked -> Content-Length in place; existing shadow header replaced");

	/* Content-Length: 0 on a POST is kept; its case is kept. */
	struct store_header zh[] = {H("content-length", "0"), H("Host", "h")};
	p.headers = zh;
	p.n_headers = 2;
	p.body = S("");
	p.body_len = 0;
	TAP_EQ_STR(build(&p, NULL), "POST /in HTTP/1.1\r\ncontent-length: 0\r\nHost: h\r\n\r\n",
		   "empty body with Content-Length keeps the header and its case");
	/* Body without a recorded framing header (HTTP/1.0 style): one is added. */
	struct store_header nh[] = {H("Host", "h")};
	p.headers = nh;
	p.n_headers = 1;
	p.version_minor = 0;
	p.body = S("abc");
	p.body_len = 3;
	struct replay_rewrite rw4 = {.host = "new"};
	TAP_EQ_STR(build(&p, &rw4),
		   "POST /in HTTP/1.0\r\nHost: new\r\nContent-Length: 3\r\n\r\nabc",
		   "HTTP/1.0 body gets a Content-Length");
	/* Host added when absent and asked for. */
	p.n_headers = 0;
	p.body = S("");
	p.body_len = 0;
	TAP_EQ_STR(build(&p, &rw4), "POST /in HTTP/1.0\r\nHost: new\r\n\r\n", "host added");
	struct replay_rewrite rw5 = {.path_prefix = "api"};
	m.n_headers = 0;
	TAP_EQ_STR(build(&m, &rw5), "GET /api/users/42?x=1 HTTP/1.1\r\n\r\n",
		   "prefix without leading slash gets one");
	m.target = S("*");
	m.method = S("OPTIONS");
	TAP_EQ_STR(build(&m, &rw5), "OPTIONS * HTTP/1.1\r\n\r\n", "asterisk-form not prefixed");
	m.present = false;
	TAP_EQ_STR(build(&m, NULL), "(error)", "no request: error");
	build(&m, NULL); /* leaves the static buffer released below */
	struct dbuf tiny;
	dbuf_init(&tiny, 8);
	m.present = true;
	TAP_OK(replay_request_build(&tiny, &m, NULL) == -E2BIG, "over the buffer cap: -E2BIG");
	dbuf_release(&tiny);
}

/* A recording is input: anything that would frame otherwise on the wire
 * is refused (skipped_unsafe); a framing header spelled with blanks before
 * its colon is replaced, never sent beside a new one. */
static void test_unsafe(void)
{
	struct store_header hs[] = {H("Host", "h")};
	struct store_message m;
	memset(&m, 0, sizeof(m));
	m.present = true;
	m.method = S("GET");
	m.version_major = 1;
	m.version_minor = 1;
	m.headers = hs;
	m.n_headers = 1;
	struct replay_filter f = {.allow_writes = false};
	struct store_session s;
	memset(&s, 0, sizeof(s));
	static const struct {
		const char *method, *target;
		size_t tlen;
	} bad[] = {{"GET", "/x\r\n\r\nDELETE /api/users/42", 0},
		   {"GET", "/x\nHost: evil", 0},
		   {"GET", "/a b", 0},
		   {"GET", "/x\0y", 4},
		   {"GET\r\nDELETE", "/x", 0},
		   {"G ET", "/x", 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.method = S(bad[i].method);
		m.target = bad[i].tlen
			       ? (struct store_slice){(const uint8_t *)bad[i].target, bad[i].tlen}
			       : S(bad[i].target);
		s.req = m;
		TAP_OK(replay_request_unsafe(&m) != NULL, "unsafe request %zu detected", i);
		TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_UNSAFE,
		       "unsafe request %zu: REPLAY_SKIP_UNSAFE", i);
		TAP_EQ_STR(build(&m, NULL), "(error)", "unsafe request %zu: nothing built", i);
	}
	m.method = S("GET");
	m.target = S("/ok");
	struct store_header vh[][2] = {{H("Host", "h"), H("X-A", "1\r\nX-Injected: 1")},
				       {H("Host", "h"), H("X-A ", "1")},
				       {H("Host", "h"), H(" X-A", "1")},
				       {H("Host", "h"), H("X:A", "1")},
				       {H("Host", "h"), {S("X-A"), {(const uint8_t *)"1\0", 2}}}};
	for (size_t i = 0; i < sizeof(vh) / sizeof(vh[0]); i++) {
		m.headers = vh[i];
		m.n_headers = 2;
		TAP_OK(replay_request_unsafe(&m) != NULL, "unsafe header %zu detected", i);
	}
	/* Framing header with blanks before the colon: normalized, not doubled. */
	struct store_header fh[] = {H("Host", "h"), H("Content-Length ", "5"),
				    H("content-length", "5")};
	struct store_message p = m;
	p.method = S("POST");
	p.target = S("/in");
	p.headers = fh;
	p.n_headers = 3;
	p.body = S("hello");
	p.body_len = 5;
	TAP_OK(replay_request_unsafe(&p) == NULL, "a framing name with a blank is not unsafe");
	TAP_EQ_STR(build(&p, NULL),
		   "POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		   "'Content-Length : 5' becomes one 'Content-Length: 5'");
	struct store_header th[] = {H("Host", "h"), H("Transfer-Encoding\t", "chunked")};
	p.headers = th;
	p.n_headers = 2;
	TAP_EQ_STR(build(&p, NULL),
		   "POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		   "'Transfer-Encoding<TAB>: chunked' becomes Content-Length");
	m.headers = hs;
	m.n_headers = 1;
	m.target = S("/caf\xc3\xa9?q=%20");
	TAP_OK(replay_request_unsafe(&m) == NULL, "obs-text and escapes in a target are fine");
}

/* replay_rewrite_check(): every rule set that would put a header twice,
 * touch the framing or inject a line is refused, with the option named. */
static void test_rewrite_check(void)
{
	char err[256];
	struct replay_hdr_set cl = {"Content-Length", "99"}, te = {"transfer-encoding", "x"},
			      sh = {"X-Dyetap-Shadow", "2"}, host = {"host", "o"}, a = {"X-A", "1"},
			      a2 = {"x-a", "2"}, crlf = {"X-B", "1\r\nEvil: 1"},
			      badname = {"X B", "1"};
	struct replay_rewrite ok = {.host = "h",
				    .set = &a,
				    .n_set = 1,
				    .shadow_name = "x-dyetap-shadow",
				    .shadow_value = "1"};
	TAP_OK(replay_rewrite_check(&ok, err, sizeof(err)) == 0, "host, one set, marker: ok");
	struct {
		struct replay_hdr_set set[2];
		size_t n;
		const char *host, *shadow, *del, *want;
	} bad[] = {
	    {{cl}, 1, NULL, NULL, NULL, "--set-header Content-Length"},
	    {{te}, 1, NULL, NULL, NULL, "--set-header transfer-encoding"},
	    {{sh}, 1, NULL, "x-dyetap-shadow", NULL, "shadow marker"},
	    {{host}, 1, "h", NULL, NULL, "with --host"},
	    {{a, a2}, 2, NULL, NULL, NULL, "given twice"},
	    {{crlf}, 1, NULL, NULL, NULL, "CR or LF"},
	    {{badname}, 1, NULL, NULL, NULL, "not a header name"},
	    {{a}, 1, "h\r\nX: y", NULL, NULL, "--host"},
	    {{a}, 1, NULL, "Content-Length", NULL, "--shadow-header Content-Length"},
	    {{a}, 1, "h", "Host", NULL, "--shadow-header Host"},
	    {{a}, 1, NULL, NULL, "bad name", "--del-header"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *dels[1] = {bad[i].del};
		struct replay_rewrite rw = {.host = bad[i].host,
					    .set = bad[i].set,
					    .n_set = bad[i].n,
					    .del = dels,
					    .n_del = bad[i].del ? 1 : 0,
					    .shadow_name = bad[i].shadow,
					    .shadow_value = "1"};
		err[0] = '\0';
		int rc = replay_rewrite_check(&rw, err, sizeof(err));
		TAP_OK(rc == -EINVAL && strstr(err, bad[i].want), "refused, message has '%s' (%s)",
		       bad[i].want, err);
	}
}

/* Remapped ids stay distinct across inputs and passes, up to the limits. */
static void test_remap(void)
{
	TAP_OK(replay_remap_id(42, 0, 0) == 42, "file 0 pass 0: id kept");
	uint32_t passes[] = {0, 1, 65535, 65536, 65537, REPLAY_MAX_PASSES - 1};
	uint32_t files[] = {0, 1, 2, 17, REPLAY_MAX_INPUTS - 1};
	uint64_t ids[] = {1, 2, (1ull << 40) - 1};
	uint64_t seen[6 * 5 * 3];
	size_t n = 0, dup = 0;
	for (size_t f = 0; f < 5; f++)
		for (size_t p = 0; p < 6; p++)
			for (size_t i = 0; i < 3; i++) {
				uint64_t v = replay_remap_id(ids[i], files[f], passes[p]);
				for (size_t k = 0; k < n; k++)
					dup += seen[k] == v;
				seen[n++] = v;
			}
	TAP_OK(n > 60 && dup == 0,
	       "%zu remapped ids over files, passes 0..2^18-1 and ids: distinct", n);
}

/* A bound but not listening socket's port: connecting there is refused. */
static int closed_port(int *fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, l) ||
	    getsockname(*fd, (struct sockaddr *)&a, &l))
		return -1;
	return ntohs(a.sin_port);
}

static void test_pick_addr(void)
{
	int cfd, lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(la);
	int cport = closed_port(&cfd);
	if (lfd < 0 || cport < 0 || bind(lfd, (struct sockaddr *)&la, l) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&la, &l)) {
		TAP_OK(0, "loopback sockets for the address probe");
		return;
	}
	struct sockaddr_in ca = la;
	ca.sin_port = htons((uint16_t)cport);
	struct addrinfo second = {.ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM,
				  .ai_addrlen = sizeof(la),
				  .ai_addr = (struct sockaddr *)&la};
	struct addrinfo first = second;
	first.ai_addr = (struct sockaddr *)&ca;
	first.ai_next = &second;
	TAP_OK(replay_pick_addr(&first) == &second,
	       "the first address refuses, the second listens: the second is used");
	TAP_OK(replay_pick_addr(&second) == &second, "a listening first address is kept");
	struct addrinfo only_closed = first;
	only_closed.ai_next = NULL;
	TAP_OK(replay_pick_addr(&only_closed) == NULL, "none accepts: NULL");
	close(lfd);
	close(cfd);
}

/* docs/replay.md "Writes": which reads after a write not sent are left out */
static void test_taint(void)
{
	struct store_session w, r;
	memset(&w, 0, sizeof(w));
	w.req.present = true;
	w.req.method = S("POST");
	w.ts_req_first_ns = 100;
	w.ts_resp_last_ns = 200;
	r = w;
	r.req.method = S("GET");
	r.ts_req_first_ns = 300;
	static const struct {
		const char *write, *read;
		bool out;
	} cases[] = {
	    {"/a/b", "/a/b?x=1", true}, {"/a/b", "/a/b/c", true}, {"/a/b", "/a", true},
	    {"/a/b", "/a/", true},	{"/a/b", "/a/bc", false}, {"/a/b", "/x", false},
	    {"/a/b", "/", false},	{"/", "/", true},	  {"/", "/a", true},
	    {"/", "/a/b?q", true},	{"/?x=1", "/a", true},	  {"/a%2Fb", "/a/b", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct replay_taint *x = replay_taint_new(REPLAY_AFTER_WRITES_PATH);
		w.req.target =
		    (struct store_slice){(const uint8_t *)cases[i].write, strlen(cases[i].write)};
		r.req.target =
		    (struct store_slice){(const uint8_t *)cases[i].read, strlen(cases[i].read)};
		TAP_OK(x && replay_taint_write(x, &w) == 0 &&
			   replay_taint_read(x, &r) == cases[i].out,
		       "path mode: a read of %s after a write to %s is %s", cases[i].read,
		       cases[i].write, cases[i].out ? "left out" : "sent");
		r.ts_req_first_ns = 150; /* before the write's end */
		TAP_OK(!replay_taint_read(x, &r), "... not when it started before the write ended");
		r.ts_req_first_ns = 300;
		replay_taint_free(x);
	}
}

static void test_filter(void)
{
	struct store_header h[] = {H("Host", "h"), H("Content-Length", "5")};
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.req.present = true;
	s.req.method = S("GET");
	s.req.target = S("/api/users/1?q=2");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.lane = S("blue");
	s.ts_req_first_ns = 5000;
	struct replay_filter f = {0};
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "GET passes an empty filter");
	f.lanes = "red,blue";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "lane in list");
	f.lanes = "red,baseline";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_FILTER, "lane not in list");
	s.lane = S("");
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "baseline matches the empty lane");
	f.lanes = NULL;
	f.methods = "get,head";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "method list case-insensitive");
	f.methods = "HEAD";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_FILTER, "method not in list");
	f.methods = NULL;
	f.path_glob = "/api/*";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "path glob matches (query ignored)");
	f.path_glob = "/api/users/[0-9]";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "path glob with class");
	f.path_glob = "/static/*";
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_FILTER, "path glob mismatch");
	f.path_glob = NULL;
	f.since_ns = 5000;
	f.until_ns = 6000;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "since inclusive");
	f.since_ns = 5001;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_FILTER, "before since");
	f.since_ns = 0;
	f.until_ns = 5000;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_FILTER, "until exclusive");
	f.until_ns = 0;
	s.req.method = S("POST");
	s.req.headers = h;
	s.req.n_headers = 2;
	s.req.body = S("hello");
	s.req.body_len = 5;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_WRITE, "POST refused by default");
	s.req.method = S("DELETE");
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_WRITE, "DELETE refused by default");
	f.allow_writes = true;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_TAKE, "--allow-writes lets it through");
	s.req.truncated = true;
	s.req.body_len = 5000;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_TRUNCATED, "capped body skipped");
	s.req.truncated = false;
	s.req.body = S("hel");
	s.req.body_len = 3;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_TRUNCATED,
	       "body shorter than its Content-Length skipped");
	s.req.present = false;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_UNSUPPORTED, "no request");
	s.req.present = true;
	s.flags = STORE_F_TUNNEL;
	TAP_OK(replay_filter_check(&f, &s, 0) == REPLAY_SKIP_UNSUPPORTED, "tunnel skipped");
}

static void test_url(void)
{
	struct replay_url u;
	char err[128];
	TAP_OK(replay_url_parse("http://127.0.0.1:8080", &u, err, sizeof(err)) == 0 && !u.tls &&
		   u.port == 8080 && !strcmp(u.host, "127.0.0.1"),
	       "http with port");
	TAP_OK(replay_url_parse("https://cand.example/", &u, err, sizeof(err)) == 0 && u.tls &&
		   u.port == 443 && !strcmp(u.host, "cand.example"),
	       "https default port, trailing slash");
	TAP_OK(replay_url_parse("http://[::1]:81/x", &u, err, sizeof(err)) == 0 && u.port == 81 &&
		   !strcmp(u.host, "::1"),
	       "ipv6 literal");
	TAP_OK(replay_url_parse("ftp://x", &u, err, sizeof(err)) == -EINVAL && strstr(err, "http"),
	       "other scheme refused with a hint");
	TAP_OK(replay_url_parse("http://h:99999", &u, err, sizeof(err)) == -EINVAL, "bad port");
	TAP_OK(replay_url_parse("http://:80", &u, err, sizeof(err)) == -EINVAL, "empty host");
}

static void test_hist(void)
{
	static struct replay_hist h;
	memset(&h, 0, sizeof(h));
	TAP_EQ_U64(replay_hist_pct(&h, 50), 0, "empty histogram: 0");
	for (int i = 1; i <= 100; i++)
		replay_hist_add(&h, (int64_t)i * 1000); /* 1..100 us, exact buckets */
	TAP_EQ_U64(replay_hist_pct(&h, 50), 50500, "p50 of 1..100 us (bucket midpoint)");
	TAP_EQ_U64(replay_hist_pct(&h, 99), 99500, "p99 of 1..100 us");
	TAP_EQ_U64(replay_hist_pct(&h, 100), 100000, "p100 is the max");
	TAP_EQ_U64(h.max_ns, 100000, "max");

	memset(&h, 0, sizeof(h));
	for (int i = 1; i <= 10000; i++)
		replay_hist_add(&h, (int64_t)i * 100000); /* 0.1 ms .. 1 s */
	uint64_t p50 = replay_hist_pct(&h, 50), p90 = replay_hist_pct(&h, 90),
		 p99 = replay_hist_pct(&h, 99);
	TAP_OK(llabs((long long)p50 - 500000000LL) <= 500000000LL / 64,
	       "p50 within 1/64 of 500 ms (got %llu)", (unsigned long long)p50);
	TAP_OK(llabs((long long)p90 - 900000000LL) <= 900000000LL / 64,
	       "p90 within 1/64 of 900 ms (got %llu)", (unsigned long long)p90);
	TAP_OK(llabs((long long)p99 - 990000000LL) <= 990000000LL / 64,
	       "p99 within 1/64 of 990 ms (got %llu)", (unsigned long long)p99);
	TAP_OK(p50 <= p90 && p90 <= p99 && p99 <= h.max_ns, "percentiles are monotonic");

	static struct replay_hist a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	replay_hist_add(&a, -5);
	replay_hist_add(&b, 3000000000000LL); /* 3000 s: top buckets */
	replay_hist_merge(&a, &b);
	TAP_EQ_U64(a.n, 2, "merge adds counts");
	TAP_EQ_U64(replay_hist_pct(&a, 50), 500,
		   "negative lateness counts as 0 (bucket 0 midpoint)");
	TAP_EQ_U64(replay_hist_pct(&a, 100), 3000000000000ULL, "huge value capped at max");
}

int main(void)
{
	test_sched();
	test_shard();
	test_rewrite();
	test_rewrite_check();
	test_unsafe();
	test_remap();
	test_pick_addr();
	test_filter();
	test_taint();
	test_url();
	test_hist();
	return tap_done();
}
