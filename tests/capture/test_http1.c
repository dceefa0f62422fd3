/* SPDX-License-Identifier: MIT */
/*
 * test_http1 - unit tests of the HTTP/1.x parser (capture/http1.h):
 * framing by Content-Length, chunked with trailers, close-delimited
 * bodies, HEAD/204/304, 1xx, CONNECT/Upgrade, HTTP/1.0 and 0.9, every
 * split point of pipelined messages, header and body caps (a 1 GiB body
 * streamed without memory growth), garbage input. RFC 9112.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture/http1.h"
#include "common/dbuf.h"
#include "common/mem.h"
#include "tests/tap.h"

/* A canonical text form of one message, so runs can be compared. */
static void dump_msg(struct http1_parser *p, struct dbuf *out, const char *tag)
{
	const struct store_message *m = http1_message(p);
	dbuf_printf(out, "%s ", tag);
	if (m->method.len || m->target.len)
		dbuf_printf(out, "%.*s %.*s ", (int)m->method.len, (const char *)m->method.ptr,
			    (int)m->target.len, (const char *)m->target.ptr);
	else
		dbuf_printf(out, "%u %.*s ", m->status, (int)m->reason.len,
			    (const char *)m->reason.ptr);
	dbuf_printf(out, "v%u.%u", m->version_major, m->version_minor);
	for (size_t i = 0; i < m->n_headers; i++)
		dbuf_printf(out, " [%.*s: %.*s]", (int)m->headers[i].name.len,
			    (const char *)m->headers[i].name.ptr, (int)m->headers[i].value.len,
			    (const char *)m->headers[i].value.ptr);
	size_t nt = 0;
	const struct store_header *t = http1_message_trailers(p, &nt);
	for (size_t i = 0; i < nt; i++)
		dbuf_printf(out, " T[%.*s: %.*s]", (int)t[i].name.len, (const char *)t[i].name.ptr,
			    (int)t[i].value.len, (const char *)t[i].value.ptr);
	dbuf_printf(out, " body=%llu:%.*s%s%s%s\n", (unsigned long long)m->body_len,
		    (int)m->body.len, (const char *)m->body.ptr, m->truncated ? " TRUNC" : "",
		    http1_message_interim(p) ? " INTERIM" : "",
		    http1_message_partial(p) ? " PARTIAL" : "");
}

/*
 * Feed @p n bytes cut at @p cuts (sorted offsets), record every event in
 * @p out. @p head_at: index of the response answering a HEAD (or -1).
 * Returns the number of completed messages.
 */
static int run_pieces(enum http1_type type, const char *data, size_t n, const size_t *cuts,
		      size_t ncuts, bool finish, struct dbuf *out)
{
	struct http1_params prm = {.type = type, .max_header_bytes = 4096, .max_body = 4096};
	struct http1_parser *p = http1_parser_create(&prm);
	int done = 0;
	size_t prev = 0;
	bool stop = false;
	for (size_t k = 0; k <= ncuts && !stop; k++) {
		size_t end = k < ncuts ? cuts[k] : n;
		const uint8_t *d = (const uint8_t *)data + prev;
		size_t left = end - prev;
		prev = end;
		while (!stop) {
			size_t used = 0;
			enum http1_status st = http1_feed(p, d, left, &used);
			if (used > left) {
				dbuf_puts(out, "OVERRUN\n");
				stop = true;
				break;
			}
			d += used;
			left -= used;
			if (st == HTTP1_COMPLETE) {
				dump_msg(p, out, "MSG");
				done++;
				http1_next(p);
			} else if (st == HTTP1_TUNNEL) {
				dump_msg(p, out, "TUNNEL");
				dbuf_printf(out, "REST %zu\n", left + (n - end));
				stop = true;
			} else if (st == HTTP1_ERROR) {
				dbuf_printf(out, "ERROR %s\n", http1_error(p));
				stop = true;
			} else {
				if (left)
					dbuf_puts(out, "NEED_MORE LEFT BYTES\n");
				break;
			}
		}
	}
	if (!stop && finish) {
		enum http1_status st = http1_finish(p);
		if (st == HTTP1_COMPLETE) {
			dump_msg(p, out, "FIN");
			done++;
		} else if (st == HTTP1_ERROR) {
			dump_msg(p, out, "CUT");
		}
	}
	http1_parser_free(p);
	return done;
}

static int run_whole(enum http1_type type, const char *data, bool finish, struct dbuf *out)
{
	return run_pieces(type, data, strlen(data), NULL, 0, finish, out);
}

/* Same events for byte-by-byte feeding and for every 2-piece split. */
static void check_splits(enum http1_type type, const char *data, bool finish, const char *name)
{
	size_t n = strlen(data);
	struct dbuf ref, got;
	dbuf_init(&ref, 1 << 20);
	dbuf_init(&got, 1 << 20);
	run_whole(type, data, finish, &ref);
	size_t *cuts = malloc(n * sizeof(*cuts));
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	run_pieces(type, data, n, cuts, n ? n - 1 : 0, finish, &got);
	TAP_OK(got.len == ref.len && memcmp(got.data, ref.data, ref.len) == 0,
	       "%s: byte-by-byte equals whole", name);
	if (got.len != ref.len || memcmp(got.data, ref.data, ref.len) != 0)
		printf("# whole:\n%s# bytewise:\n%s", (const char *)ref.data,
		       (const char *)got.data);
	size_t bad = 0, first_bad = 0;
	for (size_t i = 0; i <= n; i++) {
		dbuf_reset(&got);
		size_t c = i;
		run_pieces(type, data, n, &c, 1, finish, &got);
		if (got.len != ref.len || memcmp(got.data, ref.data, ref.len) != 0) {
			if (!bad)
				first_bad = i;
			bad++;
		}
	}
	TAP_OK(bad == 0, "%s: all %zu two-piece splits equal whole (first bad at %zu)", name, n + 1,
	       first_bad);
	free(cuts);
	dbuf_release(&ref);
	dbuf_release(&got);
}

static void expect_dump(enum http1_type type, const char *data, bool finish, const char *want,
			const char *name)
{
	struct dbuf out;
	dbuf_init(&out, 1 << 20);
	run_whole(type, data, finish, &out);
	TAP_EQ_STR(out.data ? (const char *)out.data : "", want, "%s", name);
	dbuf_release(&out);
}

static void test_basic(void)
{
	expect_dump(HTTP1_REQUEST,
		    "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
		    false,
		    "MSG GET /a?b=1 v1.1 [Host: x] [User-Agent: curl/8] [Accept: */*] body=0:\n",
		    "simple GET");
	expect_dump(HTTP1_REQUEST,
		    "POST /p HTTP/1.1\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello", false,
		    "MSG POST /p v1.1 [Content-Length: 5] [X-A: 1] [x-a: 2] body=5:hello\n",
		    "POST with Content-Length, duplicate headers kept in order and case");
	expect_dump(HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", false,
		    "MSG 200 OK v1.1 [Content-Length: 2] body=2:hi\n",
		    "response with Content-Length");
	expect_dump(HTTP1_REQUEST, "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n", false,
		    "MSG GET / v1.1 [X-Empty: ] [Host: h] body=0:\n", "empty header value");
	expect_dump(HTTP1_REQUEST, "GET / HTTP/1.1\r\nX-Bin: caf\xc3\xa9\x01\r\n\r\n", false,
		    "MSG GET / v1.1 [X-Bin: caf\xc3\xa9\x01] body=0:\n",
		    "lenient header value bytes are kept");
}

static void test_chunked(void)
{
	expect_dump(HTTP1_RESPONSE,
		    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t1\r\nX-Sum: abc\r\n\r\n",
		    false,
		    "MSG 200 OK v1.1 [Transfer-Encoding: chunked] T[X-Trailer: t1] T[X-Sum: abc] "
		    "body=11:hello world\n",
		    "chunked with extension and trailers (trailers kept apart)");
	expect_dump(HTTP1_REQUEST,
		    "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		    false, "MSG POST /u v1.1 [Transfer-Encoding: chunked] body=3:abc\n",
		    "chunked request without trailers");
	expect_dump(HTTP1_RESPONSE,
		    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
		    "2\r\nok\r\n0\r\n\r\n",
		    false,
		    "MSG 200 OK v1.1 [Transfer-Encoding: chunked] [Content-Length: 99] body=2:ok\n",
		    "Transfer-Encoding wins over Content-Length (lenient)");
	expect_dump(HTTP1_RESPONSE,
		    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", false,
		    "ERROR Invalid character in chunk size\n", "bad chunk size is an error");
}

static void test_close_delimited(void)
{
	expect_dump(HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nServer: s\r\n\r\nall of this until FIN",
		    true, "FIN 200 OK v1.1 [Server: s] body=21:all of this until FIN\n",
		    "close-delimited body completes on finish");
	expect_dump(HTTP1_RESPONSE, "HTTP/1.0 200 OK\r\n\r\nold", true,
		    "FIN 200 OK v1.0 body=3:old\n", "HTTP/1.0 response without length");
	expect_dump(HTTP1_REQUEST, "GET /old HTTP/1.0\r\n\r\n", true, "MSG GET /old v1.0 body=0:\n",
		    "HTTP/1.0 request");
	expect_dump(HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true,
		    "CUT 200 OK v1.1 [Content-Length: 10] body=3:abc PARTIAL\n",
		    "finish inside a Content-Length body: cut, partial message kept");
	expect_dump(HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Le", true,
		    "CUT 200 OK v1.1 [Content-Le: ] body=0: PARTIAL\n",
		    "finish inside headers: cut, partial");
	struct dbuf out;
	dbuf_init(&out, 1 << 16);
	struct http1_params prm = {.type = HTTP1_RESPONSE};
	struct http1_parser *p = http1_parser_create(&prm);
	TAP_OK(http1_finish(p) == HTTP1_NEED_MORE, "finish with nothing in progress");
	http1_parser_free(p);
	dbuf_release(&out);
}

static void test_no_body_responses(void)
{
	/* HEAD: Content-Length describes the GET body, none follows. */
	struct http1_params prm = {.type = HTTP1_RESPONSE};
	struct http1_parser *p = http1_parser_create(&prm);
	const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
			"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
	struct store_slice head = {(const uint8_t *)"HEAD", 4};
	struct store_slice get = {(const uint8_t *)"get", 3};
	http1_expect_response_to(p, &head);
	size_t used = 0;
	enum http1_status st = http1_feed(p, (const uint8_t *)r, strlen(r), &used);
	TAP_OK(st == HTTP1_COMPLETE, "HEAD response completes at end of headers");
	TAP_EQ_U64(used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
		   "HEAD response consumed only its header");
	TAP_EQ_U64(http1_message(p)->body_len, 0, "HEAD response has no body");
	http1_next(p);
	http1_expect_response_to(p, &get);
	size_t used2 = 0;
	st = http1_feed(p, (const uint8_t *)r + used, strlen(r) - used, &used2);
	TAP_OK(st == HTTP1_COMPLETE && http1_message(p)->body_len == 3,
	       "next response (to GET) has its body");
	http1_parser_free(p);

	expect_dump(HTTP1_RESPONSE,
		    "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
		    "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\nETag: \"e\"\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
		    false,
		    "MSG 204 No Content v1.1 [Content-Length: 7] body=0:\n"
		    "MSG 304 Not Modified v1.1 [Content-Length: 9] [ETag: \"e\"] body=0:\n"
		    "MSG 200 OK v1.1 [Content-Length: 1] body=1:z\n",
		    "204 and 304 carry no body whatever Content-Length says");
}

static void test_interim(void)
{
	expect_dump(HTTP1_RESPONSE,
		    "HTTP/1.1 100 Continue\r\n\r\n"
		    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
		    "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
		    false,
		    "MSG 100 Continue v1.1 body=0: INTERIM\n"
		    "MSG 103 Early Hints v1.1 [Link: </s.css>] body=0: INTERIM\n"
		    "MSG 201 Created v1.1 [Content-Length: 0] body=0:\n",
		    "1xx interim responses before the final one");
	expect_dump(HTTP1_REQUEST,
		    "PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
		    false,
		    "MSG PUT /f v1.1 [Expect: 100-continue] [Content-Length: 4] body=4:data\n",
		    "request with Expect: 100-continue");
}

static void test_tunnels(void)
{
	expect_dump(HTTP1_REQUEST,
		    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
		    false,
		    "TUNNEL CONNECT example.com:443 v1.1 [Host: example.com:443] body=0:\nREST 3\n",
		    "CONNECT request is a tunnel candidate");
	expect_dump(HTTP1_REQUEST,
		    "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05",
		    false,
		    "TUNNEL GET /ws v1.1 [Connection: Upgrade] [Upgrade: websocket] body=0:\n"
		    "REST 2\n",
		    "Upgrade request is a tunnel candidate");
	expect_dump(
	    HTTP1_RESPONSE,
	    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
	    "Upgrade: websocket\r\n\r\n\x81\x05hello",
	    false,
	    "TUNNEL 101 Switching Protocols v1.1 [Connection: Upgrade] [Upgrade: websocket] "
	    "body=0:\nREST 7\n",
	    "101 response: tunnel");

	expect_dump(HTTP1_RESPONSE, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nPRI",
		    false, "TUNNEL 101 Switching Protocols v1.1 [Upgrade: h2c] body=0:\nREST 3\n",
		    "101 without Connection: upgrade is still a tunnel");

	/* 200 to CONNECT: tunnel; the same bytes to a GET would be a body. */
	struct http1_params prm = {.type = HTTP1_RESPONSE};
	struct http1_parser *p = http1_parser_create(&prm);
	const char *r = "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03";
	struct store_slice connect = {(const uint8_t *)"CONNECT", 7};
	http1_expect_response_to(p, &connect);
	size_t used = 0;
	enum http1_status st = http1_feed(p, (const uint8_t *)r, strlen(r), &used);
	TAP_OK(st == HTTP1_TUNNEL, "200 to CONNECT is a tunnel");
	TAP_EQ_U64(used, strlen(r) - 3, "tunnel bytes not consumed");
	http1_parser_free(p);

	/* Upgrade refused: the request parser goes on after http1_next(). */
	p = http1_parser_create(&(struct http1_params){.type = HTTP1_REQUEST});
	const char *q = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
			"GET /next HTTP/1.1\r\n\r\n";
	st = http1_feed(p, (const uint8_t *)q, strlen(q), &used);
	TAP_OK(st == HTTP1_TUNNEL, "upgrade request");
	http1_next(p);
	size_t used2 = 0;
	st = http1_feed(p, (const uint8_t *)q + used, strlen(q) - used, &used2);
	TAP_OK(st == HTTP1_COMPLETE && http1_message(p)->target.len == 5 &&
		   memcmp(http1_message(p)->target.ptr, "/next", 5) == 0,
	       "after a refused upgrade the next request parses");
	http1_parser_free(p);
}

static void test_http09(void)
{
	/* RFC 1945 §4.1: a simple request ends at its line end; the next one
	 * (a client that reconnected would not, but the stream says so) parses. */
	expect_dump(HTTP1_REQUEST, "GET /old\r\nGET /new HTTP/1.1\r\n\r\n", true,
		    "MSG GET /old v0.9 body=0:\nMSG GET /new v1.1 body=0:\n",
		    "HTTP/0.9 simple request: complete at its line end");
	check_splits(HTTP1_REQUEST, "GET /old\r\nGET /new HTTP/1.1\r\n\r\n", true, "HTTP/0.9");
	struct http1_parser *p = http1_parser_create(&(struct http1_params){.type = HTTP1_REQUEST});
	size_t used;
	const char *q = "GET /old\nrest";
	TAP_OK(http1_feed(p, (const uint8_t *)q, strlen(q), &used) == HTTP1_COMPLETE && used == 9 &&
		   http1_message_http09(p),
	       "HTTP/0.9: consumed up to its LF, flagged");
	http1_next(p);
	TAP_OK(!http1_message_http09(p), "HTTP/0.9: flag cleared by next");
	http1_parser_free(p);
}

static const char *pipeline_req =
    "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
    "PUT /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\nT: v\r\n\r\n"
    "\r\nDELETE /4 HTTP/1.1\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n";

static const char *pipeline_resp = "HTTP/1.1 100 Continue\r\n\r\n"
				   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
				   "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
				   "4\r\nnope\r\n0\r\n\r\n"
				   "HTTP/1.1 204 No Content\r\n\r\n"
				   "HTTP/1.0 200 OK\r\n\r\nuntil the end";

static void test_splits(void)
{
	struct dbuf out;
	dbuf_init(&out, 1 << 16);
	int n = run_whole(HTTP1_REQUEST, pipeline_req, false, &out);
	TAP_EQ_U64(n, 4, "pipelined requests: 4 messages");
	dbuf_reset(&out);
	n = run_whole(HTTP1_RESPONSE, pipeline_resp, true, &out);
	TAP_EQ_U64(n, 5, "pipelined responses: 5 messages (one interim, last close-delimited)");
	dbuf_release(&out);
	check_splits(HTTP1_REQUEST, pipeline_req, false, "pipelined requests");
	check_splits(HTTP1_RESPONSE, pipeline_resp, true, "pipelined responses");
	check_splits(HTTP1_RESPONSE,
		     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		     false, "chunked with trailer");
	check_splits(HTTP1_REQUEST,
		     "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01\x02\x00", false,
		     "CONNECT");
}

static void test_header_cap(void)
{
	struct http1_params prm = {.type = HTTP1_REQUEST, .max_header_bytes = 256};
	struct http1_parser *p = http1_parser_create(&prm);
	char req[2048];
	int len = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
	while (len < 1000)
		req[len++] = 'a';
	memcpy(req + len, "\r\n\r\n", 4);
	len += 4;
	size_t used = 0;
	enum http1_status st = http1_feed(p, (const uint8_t *)req, (size_t)len, &used);
	TAP_OK(st == HTTP1_ERROR, "header block over the cap is an error");
	TAP_EQ_U64((uint64_t)(-http1_errno(p)), E2BIG, "errno is -E2BIG");
	TAP_EQ_STR(http1_error(p), "header block too large", "error message");
	TAP_OK(http1_message_partial(p) && http1_message(p)->present, "partial message available");
	TAP_OK(http1_parser_mem(p) < 256 * 8, "memory stays near the cap (%zu)",
	       http1_parser_mem(p));
	/* Many tiny headers: also bounded. */
	http1_reset(p);
	char many[8192];
	len = snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
	while (len < 8000) {
		memcpy(many + len, "a:\r\n", 4);
		len += 4;
	}
	st = http1_feed(p, (const uint8_t *)many, (size_t)len, &used);
	TAP_OK(st == HTTP1_ERROR && http1_errno(p) == -E2BIG, "many empty headers hit the cap");
	/* Just under the cap parses. */
	http1_reset(p);
	const char *ok = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	st = http1_feed(p, (const uint8_t *)ok, strlen(ok), &used);
	TAP_OK(st == HTTP1_COMPLETE, "after reset a small request parses");
	http1_parser_free(p);
}

static void test_big_body(void)
{
	const size_t cap = 64 * 1024;
	const uint64_t total = 1ull << 30;
	struct http1_params prm = {.type = HTTP1_RESPONSE, .max_body = cap};
	struct http1_parser *p = http1_parser_create(&prm);
	const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
	size_t used = 0;
	enum http1_status st = http1_feed(p, (const uint8_t *)h, strlen(h), &used);
	TAP_OK(st == HTTP1_NEED_MORE && used == strlen(h), "headers of the 1 GiB response");
	static uint8_t piece[256 * 1024];
	for (size_t i = 0; i < sizeof(piece); i++)
		piece[i] = (uint8_t)('a' + i % 26);
	uint64_t sent = 0;
	size_t mem_max = 0;
	while (sent < total && st == HTTP1_NEED_MORE) {
		st = http1_feed(p, piece, sizeof(piece), &used);
		sent += used;
		size_t m = http1_parser_mem(p);
		if (m > mem_max)
			mem_max = m;
	}
	const struct store_message *m = http1_message(p);
	TAP_OK(st == HTTP1_COMPLETE, "1 GiB body completes");
	TAP_EQ_U64(m->body_len, total, "body_len counts all bytes");
	TAP_OK(m->body.len <= cap && m->body.len == cap, "stored body is at the cap (%zu)",
	       m->body.len);
	TAP_OK(m->truncated, "truncated flag");
	TAP_OK(mem_max < cap + 16 * 1024, "parser memory stays under cap + overhead (%zu)",
	       mem_max);
	TAP_OK(memcmp(m->body.ptr, piece, 26) == 0, "stored prefix is the first bytes");

	/* The same through close-delimited framing, ended by finish. */
	http1_reset(p);
	const char *h2 = "HTTP/1.0 200 OK\r\n\r\n";
	st = http1_feed(p, (const uint8_t *)h2, strlen(h2), &used);
	for (int i = 0; i < 64; i++)
		st = http1_feed(p, piece, sizeof(piece), &used);
	TAP_OK(st == HTTP1_NEED_MORE, "close-delimited body needs more");
	st = http1_finish(p);
	TAP_OK(st == HTTP1_COMPLETE && http1_message(p)->body_len == 64ull * sizeof(piece) &&
		   http1_message(p)->body.len == cap,
	       "close-delimited 16 MiB body: counted, stored at cap");
	http1_parser_free(p);
}

static void test_gap(void)
{
	struct http1_parser *p =
	    http1_parser_create(&(struct http1_params){.type = HTTP1_RESPONSE, .max_body = 64});
	const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nabcd";
	size_t used;
	TAP_OK(http1_gap(p, 4) == HTTP1_ERROR, "gap before any message: not bridged");
	TAP_OK(http1_feed(p, (const uint8_t *)h, strlen(h), &used) == HTTP1_NEED_MORE, "head");
	TAP_OK(http1_gap(p, 17) == HTTP1_ERROR, "gap longer than the rest of the body: refused");
	TAP_OK(http1_gap(p, 10) == HTTP1_NEED_MORE, "gap inside the body: bridged");
	TAP_OK(http1_feed(p, (const uint8_t *)"wxyz", 4, &used) == HTTP1_NEED_MORE && used == 4,
	       "body continues after the gap");
	TAP_OK(http1_gap(p, 2) == HTTP1_COMPLETE, "gap up to the end completes the message");
	const struct store_message *m = http1_message(p);
	TAP_OK(m->body_len == 20 && m->body.len == 4 && memcmp(m->body.ptr, "abcd", 4) == 0 &&
		   m->truncated,
	       "body_len counts the gap, stored body is the prefix before it");
	http1_next(p);
	const char *c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nab";
	TAP_OK(http1_feed(p, (const uint8_t *)c, strlen(c), &used) == HTTP1_NEED_MORE, "chunked");
	TAP_OK(http1_gap(p, 1) == HTTP1_NEED_MORE, "gap inside a chunk's data: bridged");
	const char *c2 = "xy\r\n4\r\nwxyz\r\n0\r\n\r\n";
	TAP_OK(http1_feed(p, (const uint8_t *)c2, strlen(c2), &used) == HTTP1_COMPLETE &&
		   used == strlen(c2),
	       "the chunked body goes on after the gap");
	m = http1_message(p);
	TAP_OK(m->body_len == 9 && m->body.len == 2 && m->truncated, "body_len counts the gap");
	http1_next(p);
	TAP_OK(http1_feed(p, (const uint8_t *)c, strlen(c), &used) == HTTP1_NEED_MORE,
	       "chunked again");
	TAP_OK(http1_gap(p, 10) == HTTP1_ERROR, "gap past the chunk's end: not bridged");
	TAP_OK(http1_in_chunked_body(p), "inside a chunked body");
	http1_body_lost(p);
	TAP_OK(http1_chunk_resume(p) == 0, "resume at a chunk-size line");
	const char *c3 = "3\r\nxyz\r\n0\r\nX-T: 1\r\n\r\n";
	TAP_OK(http1_feed(p, (const uint8_t *)c3, strlen(c3), &used) == HTTP1_COMPLETE &&
		   used == strlen(c3),
	       "the message completes after the resumed chunks");
	m = http1_message(p);
	size_t nt = 0;
	const struct store_header *tr = http1_message_trailers(p, &nt);
	TAP_OK(m->status == 200 && m->n_headers == 2 && m->headers[1].name.len == 3 &&
		   m->body_len == 8 && m->body.len == 2 && !memcmp(m->body.ptr, "ab", 2) &&
		   m->truncated && nt == 1 && tr[0].name.len == 3,
	       "head, stored prefix and trailers kept; body_len counts what was seen and the "
	       "rest of the chunk the gap began in");
	http1_next(p);
	TAP_OK(http1_chunk_resume(p) == -EINVAL, "resume outside a chunked body: refused");
	http1_reset(p);
	const char *hd = "HTTP/1.1 200 OK\r\nServer: x";
	TAP_OK(http1_feed(p, (const uint8_t *)hd, strlen(hd), &used) == HTTP1_NEED_MORE, "headers");
	TAP_OK(http1_gap(p, 1) == HTTP1_ERROR, "gap in headers: not bridged");
	http1_parser_free(p);
}

/* RFC 9110 §9.1: any token is a method; llhttp knows only the registered ones. */
static void test_extension_methods(void)
{
	const char *ccm = "CCM_POST /cgi HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
			  "get /lower HTTP/1.1\r\n\r\n"
			  "\r\nM-SEARCH * HTTP/1.1\r\nMan: \"ssdp:discover\"\r\n\r\n"
			  "X-MS-ENUMATTS /x HTTP/1.1\r\n\r\n"
			  "BREW! /pot#1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
	expect_dump(HTTP1_REQUEST, ccm, false,
		    "MSG CCM_POST /cgi v1.1 [Content-Length: 3] body=3:abc\n"
		    "MSG get /lower v1.1 body=0:\n"
		    "MSG M-SEARCH * v1.1 [Man: \"ssdp:discover\"] body=0:\n"
		    "MSG X-MS-ENUMATTS /x v1.1 body=0:\n"
		    "MSG BREW! /pot#1 v1.1 [Content-Length: 1] body=1:z\n",
		    "extension methods are recorded as sent, bodies framed as usual");
	check_splits(HTTP1_REQUEST, ccm, false, "extension methods");
	char longm[200];
	memset(longm, 'A', 65);
	snprintf(longm + 65, sizeof(longm) - 65, " / HTTP/1.1\r\n\r\n");
	expect_dump(HTTP1_REQUEST, longm, false, "ERROR Invalid method encountered\n",
		    "a method over 64 bytes is left to llhttp: an error");
	memmove(longm + 64, longm + 65, strlen(longm + 65) + 1);
	expect_dump(HTTP1_REQUEST, longm, false,
		    "MSG AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / v1.1 "
		    "body=0:\n",
		    "a 64-byte method is recorded");
	expect_dump(HTTP1_REQUEST, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false,
		    "ERROR Pause on PRI/Upgrade\n", "PRI (the HTTP/2 preface) stays an error");
	expect_dump(HTTP1_REQUEST, "CCM_POST /cut", true,
		    "CUT CCM_POST /cut v0.0 body=0: PARTIAL\n",
		    "a request cut after an extension method");
	expect_dump(HTTP1_REQUEST, "CCM_PO", true, "CUT CCM_PO  v0.0 body=0: PARTIAL\n",
		    "a request cut inside its method keeps what was read");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_garbage(void)
{
	expect_dump(HTTP1_REQUEST, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false,
		    "ERROR Invalid method encountered\n", "TLS ClientHello is an error");
	expect_dump(HTTP1_RESPONSE, "SSH-2.0-OpenSSH_9.2\r\n", false, "ERROR Expected HTTP/\n",
		    "SSH banner is an error");
	struct http1_params prm = {.type = HTTP1_REQUEST};
	struct http1_parser *p = http1_parser_create(&prm);
	size_t used;
	const char *g = "NOT(A)METHOD / HTTP/1.1\r\n\r\n";
	TAP_OK(http1_feed(p, (const uint8_t *)g, strlen(g), &used) == HTTP1_ERROR &&
		   http1_errno(p) == -EBADMSG && http1_error(p)[0],
	       "a method that is no token: error with a reason (%s)", http1_error(p));
	TAP_OK(http1_feed(p, (const uint8_t *)g, strlen(g), &used) == HTTP1_ERROR && used == 0,
	       "error is sticky until next/reset");
	http1_next(p);
	const char *ok = "GET / HTTP/1.1\r\n\r\n";
	TAP_OK(http1_feed(p, (const uint8_t *)ok, strlen(ok), &used) == HTTP1_COMPLETE,
	       "after next() a valid request parses");
	http1_parser_free(p);

	/* Random and mutated input: never crash, never consume beyond input. */
	int bad = 0;
	uint8_t buf[512];
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = rng() % sizeof(buf);
		const char *base = (iter & 1) ? pipeline_req : pipeline_resp;
		size_t bl = strlen(base);
		for (size_t i = 0; i < n; i++)
			buf[i] = (iter % 3) ? (uint8_t)base[i % bl] : (uint8_t)rng();
		for (int k = 0; k < 4 && n; k++)
			buf[rng() % n] = (uint8_t)rng();
		p = http1_parser_create(
		    &(struct http1_params){.type = (iter & 1) ? HTTP1_REQUEST : HTTP1_RESPONSE,
					   .max_header_bytes = 128,
					   .max_body = 64});
		size_t off = 0;
		for (int guard = 0; guard < 1000 && off < n; guard++) {
			size_t step = 1 + rng() % 64;
			if (step > n - off)
				step = n - off;
			enum http1_status st = http1_feed(p, buf + off, step, &used);
			if (used > step)
				bad++;
			off += used;
			if (st == HTTP1_COMPLETE || st == HTTP1_TUNNEL) {
				const struct store_message *m = http1_message(p);
				if (m->body.len > 64 || m->body.len > m->body_len)
					bad++;
				http1_next(p);
			} else if (st == HTTP1_ERROR) {
				http1_reset(p);
				off++;
			}
		}
		http1_finish(p);
		(void)http1_message(p);
		http1_parser_free(p);
	}
	TAP_EQ_U64(bad, 0, "3000 random/mutated inputs: no overrun, bodies within cap");
}

/* With -Dfault_injection=true: every allocation of a run fails once in turn. */
static void test_alloc_failures(void)
{
#ifdef DYETAP_FAULT_INJECTION
	const char *req = "POST /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
			  "E: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\nJ: 10\r\nK: 11\r\nL: 12\r\n"
			  "M: 13\r\nN: 14\r\nO: 15\r\nP: 16\r\nQ: 17\r\n"
			  "Content-Length: 10\r\n\r\n0123456789";
	int bad = 0, enomem = 0, complete = 0;
	for (uint64_t n = 1; n < 40; n++) {
		mem_fail_at(n);
		struct http1_parser *p =
		    http1_parser_create(&(struct http1_params){.type = HTTP1_REQUEST});
		if (!p) {
			mem_fail_at(0);
			continue;
		}
		size_t used;
		enum http1_status st = http1_feed(p, (const uint8_t *)req, strlen(req), &used);
		if (st == HTTP1_ERROR && http1_errno(p) == -ENOMEM)
			enomem++;
		else if (st == HTTP1_COMPLETE)
			complete++;
		else
			bad++;
		const struct store_message *m = http1_message(p);
		if (st == HTTP1_COMPLETE && m->body_len != 10)
			bad++;
		mem_fail_at(0);
		http1_parser_free(p);
	}
	TAP_OK(bad == 0 && enomem > 0 && complete > 0,
	       "allocation failures: -ENOMEM error or complete (%d / %d)", enomem, complete);
#endif
}

int main(void)
{
	test_basic();
	test_chunked();
	test_close_delimited();
	test_no_body_responses();
	test_interim();
	test_tunnels();
	test_http09();
	test_splits();
	test_header_cap();
	test_big_body();
	test_gap();
	test_garbage();
	test_extension_methods();
	test_alloc_failures();
	return tap_done();
}
