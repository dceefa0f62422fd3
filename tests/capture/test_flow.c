/* SPDX-License-Identifier: MIT */
/*
 * test_flow - the connection table fed with decoded segments; a recording
 * consumer logs open/data/gap/close per connection. Covers: handshake and
 * FIN close, late packets after close, midstream pickup with the port
 * heuristic, SYN-ACK first, RST mid-body, port reuse, idle timeout,
 * eviction when full, gaps by ACK, unknown bare ACKs, end of capture;
 * and the hostile cases (RFC 5961): RSTs outside the window, stale and
 * ahead, in SYN-SENT; fake FINs ahead of and at the sender's position;
 * data after an acknowledged FIN; a FIN after a capture gap (also after
 * a hole in the client stream at ISNs far from 0); data on a
 * SYN; a SYN on an open connection; a clock jump of ten years; half-open
 * connections evicted and timed out first; no consumer state for a
 * connection without data; the hash chains.
 */
#include <stdio.h>
#include <string.h>

#include "capture/flow.h"
#include "tests/tap.h"

#define MAXC 8

struct conn {
	int id;
	char t[2][512];
	char end[16];
	int midstream;
	uint16_t cport, sport;
};

struct cons {
	struct conn c[MAXC];
	int n;
};

static void *c_open(void *ctx, const struct flow_info *i)
{
	struct cons *k = ctx;
	if (k->n == MAXC)
		return NULL;
	struct conn *c = &k->c[k->n++];
	memset(c, 0, sizeof(*c));
	c->id = (int)i->conn_id;
	c->midstream = i->midstream;
	c->cport = i->client_port;
	c->sport = i->server_port;
	return c;
}

static void app(char *t, size_t cap, const char *s, size_t n)
{
	size_t l = strlen(t);
	if (l + n + 1 > cap)
		n = cap - l - 1;
	memcpy(t + l, s, n);
	t[l + n] = 0;
}

static void c_data(void *ctx, void *conn, int dir, const uint8_t *d, size_t n,
		   const struct flow_seg *seg)
{
	struct conn *c = conn;
	(void)ctx;
	(void)seg;
	app(c->t[dir], sizeof(c->t[dir]), (const char *)d, n);
}

static void c_gap(void *ctx, void *conn, int dir, uint64_t n, int64_t ts)
{
	struct conn *c = conn;
	char g[32];
	(void)ctx;
	(void)ts;
	snprintf(g, sizeof(g), "[g%llu]", (unsigned long long)n);
	app(c->t[dir], sizeof(c->t[dir]), g, strlen(g));
}

static void c_close(void *ctx, void *conn, enum flow_end how, int64_t ts)
{
	struct conn *c = conn;
	static const char *names[] = {"?", "fin", "rst", "timeout", "eof"};
	(void)ctx;
	(void)ts;
	snprintf(c->end, sizeof(c->end), "%s", names[how]);
}

static const struct flow_ops ops = {c_open, c_data, c_gap, c_close};

#define CLI 40000
#define SRV 80

/* A segment from client (from_client=1) or server on 10.0.0.1:CLI <-> 10.0.0.2:SRV. */
static struct decode_pkt pk(int from_client, uint8_t flags, uint32_t seq, uint32_t ack,
			    const char *payload)
{
	struct decode_pkt p;
	memset(&p, 0, sizeof(p));
	p.ip_version = 4;
	uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
	memcpy(p.src, from_client ? a : b, 4);
	memcpy(p.dst, from_client ? b : a, 4);
	p.sport = from_client ? CLI : SRV;
	p.dport = from_client ? SRV : CLI;
	p.tcp_flags = flags;
	p.seq = seq;
	p.ack = ack;
	p.payload = (const uint8_t *)payload;
	p.payload_len = p.payload_wire = payload ? (uint32_t)strlen(payload) : 0;
	return p;
}

#define S   DECODE_TH_SYN
#define A   DECODE_TH_ACK
#define F   DECODE_TH_FIN
#define R   DECODE_TH_RST
#define SEC 1000000000LL

struct fx {
	struct cons k;
	struct flow_stats fs;
	struct reasm_stats rs;
	struct flow_table *t;
	int64_t ts;
};

static void fx_init(struct fx *f, uint32_t max_flows)
{
	memset(f, 0, sizeof(*f));
	struct flow_params p = {.max_flows = max_flows,
				.ops = &ops,
				.ops_ctx = &f->k,
				.stats = &f->fs,
				.rstats = &f->rs};
	f->t = flow_table_create(&p);
	f->ts = 1000 * SEC;
}

static void send(struct fx *f, struct decode_pkt p)
{
	f->ts += 1000;
	flow_packet(f->t, &p, f->ts);
}

static void handshake(struct fx *f, uint32_t cisn, uint32_t sisn)
{
	send(f, pk(1, S, cisn, 0, NULL));
	send(f, pk(0, S | A, sisn, cisn + 1, NULL));
	send(f, pk(1, A, cisn + 1, sisn + 1, NULL));
}

static void fx_end(struct fx *f)
{
	flow_finish(f->t);
	flow_table_free(f->t);
}

/* Handshake and one exchange: client 101..119, server 5001..5020, both acked. */
static void exchange(struct fx *f)
{
	handshake(f, 100, 5000);
	send(f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n\r\n"));
	send(f, pk(0, A, 5001, 119, "HTTP/1.1 200 OK\r\n\r\n"));
	send(f, pk(1, A, 119, 5020, NULL));
}

static void test_hostile_rst(void)
{
	struct fx f;
	fx_init(&f, 16);
	exchange(&f);
	send(&f, pk(0, R, 5020 + 1000000000u, 0, NULL));
	send(&f, pk(0, R, 5020 + 0x80000000u, 0, NULL)); /* both ahead and behind in int32 */
	send(&f, pk(1, R | A, 19, 5020, NULL)); /* 100 bytes behind the client's position */
	send(&f, pk(0, R, 5023, 0, NULL));	/* 3 bytes ahead of the server's */
	send(&f, pk(1, R, 0, 0, NULL));
	TAP_EQ_U64(f.fs.rst_ignored, 5, "far, 2^31 away, stale, ahead and zero RSTs ignored");
	TAP_EQ_U64(f.fs.closed_rst, 0, "connection not closed");
	send(&f, pk(1, A, 119, 5020, "GET /2 HTTP/1.1\r\n\r\n"));
	TAP_EQ_STR(f.k.c[0].t[0], "GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
		   "the next request after the spoofed RSTs is delivered");
	TAP_EQ_U64(f.fs.pkts_after_close, 0, "nothing counted as after close");
	/* in flight: 19 request bytes not acknowledged yet: an RST anywhere
	 * between the server's last ACK and what the client sent is possible */
	send(&f, pk(1, R, 130, 0, NULL));
	TAP_EQ_STR(f.k.c[0].end, "rst", "RST between acknowledged and sent: accepted");
	fx_end(&f);

	/* SYN-SENT: only an RST that acknowledges the SYN ends the attempt. */
	fx_init(&f, 16);
	send(&f, pk(1, S, 100, 0, NULL));
	send(&f, pk(0, R, 0, 0, NULL));
	send(&f, pk(0, R | A, 0, 999, NULL));
	TAP_EQ_U64(f.fs.rst_ignored, 2, "RST without ACK / acking something else: ignored");
	send(&f, pk(0, R | A, 0, 101, NULL));
	TAP_EQ_U64(f.fs.closed_rst, 1, "RST|ACK of the SYN: connection refused");
	TAP_EQ_U64(f.k.n, 0, "no consumer state for a connection without data");
	fx_end(&f);
}

static void test_hostile_fin(void)
{
	struct fx f;
	/* A fake FIN 20 bytes ahead: the real data continues past it. */
	fx_init(&f, 16);
	exchange(&f);
	send(&f, pk(1, F | A, 139, 5020, NULL));
	TAP_EQ_U64(f.fs.fin_ignored, 0, "a FIN after a hole waits");
	send(&f, pk(1, A, 119, 5020, "GET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.fs.fin_ignored, 1, "data past it: the FIN is dropped");
	TAP_EQ_U64(f.rs.after_fin_bytes, 0, "no byte dropped as after the FIN");
	TAP_OK(strstr(f.k.c[0].t[0], "GET /3") != NULL, "all of the client stream delivered");
	/* A fake FIN exactly where the client stands, passed by data before the
	 * server acknowledged it: withdrawn. */
	send(&f, pk(1, F | A, 157, 5020, NULL));
	send(&f, pk(1, A, 157, 5020, "GET /4 HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.fs.fin_ignored, 2, "FIN passed by data before its ACK: withdrawn");
	TAP_OK(strstr(f.k.c[0].t[0], "GET /4") != NULL, "data after it delivered");
	/* A real FIN, acknowledged; bytes after it are dropped and reported as a gap. */
	send(&f, pk(1, F | A, 176, 5020, NULL));
	send(&f, pk(0, A, 5020, 177, NULL));
	send(&f, pk(1, A, 177, 5020, "late"));
	TAP_EQ_U64(f.rs.after_fin_bytes, 4, "bytes after an acknowledged FIN dropped");
	TAP_OK(strstr(f.k.c[0].t[0], "[g4]") != NULL, "... and reported to the consumer as a gap");
	send(&f, pk(0, F | A, 5020, 177, NULL));
	send(&f, pk(1, A, 177, 5021, NULL));
	TAP_EQ_STR(f.k.c[0].end, "fin", "closed by FIN");
	fx_end(&f);

	/* A FIN after bytes the capture lost: believed once the peer
	 * acknowledges past the hole. */
	fx_init(&f, 16);
	exchange(&f);
	send(&f, pk(0, A, 5020, 119, "HTTP/1.1 200 OK\r\n"));
	send(&f, pk(0, A, 5047, 119, "tail"));
	send(&f, pk(0, F | A, 5051, 119, NULL));
	send(&f, pk(1, A, 119, 5052, NULL));
	send(&f, pk(1, F | A, 119, 5052, NULL));
	send(&f, pk(0, A, 5052, 120, NULL));
	TAP_EQ_STR(f.k.c[0].end, "fin", "closed by FIN despite the hole");
	TAP_EQ_U64(f.rs.gap_bytes, 10, "the 10 lost bytes are one gap, the FIN is none");
	TAP_EQ_U64(f.fs.fin_ignored, 0, "no FIN ignored");
	fx_end(&f);
}

/* The same after a hole in the client's stream, at any initial sequence
 * number: what the sides were seen to send starts at the SYN, so an ISN
 * 2^30 or more from 0 must not leave the peer's acknowledgements
 * unbelieved (the FIN would wait forever and its own sequence number be
 * reported lost). */
static void test_fin_after_hole_isn(uint32_t cisn, uint32_t sisn)
{
	struct fx f;
	fx_init(&f, 16);
	handshake(&f, cisn, sisn);
	uint32_t c = cisn + 1, s = sisn + 1;
	send(&f, pk(1, A, c, s, "GET /ab HTTP/1.1\r\n\r\n"));
	send(&f, pk(0, A, s, c + 20, "HTTP/1.1 200 OK\r\n\r\n"));
	/* the client's next request (20 bytes) is lost; its answer acks it */
	send(&f, pk(0, A, s + 19, c + 40, "HTTP/1.1 200 OK\r\n\r\n"));
	send(&f, pk(1, A, c + 40, s + 38, "GET /cd HTTP/1.1\r\n\r\n"));
	send(&f, pk(0, A, s + 38, c + 60, "HTTP/1.1 200 OK\r\n\r\n"));
	send(&f, pk(1, F | A, c + 60, s + 57, NULL));
	send(&f, pk(0, F | A, s + 57, c + 61, NULL));
	send(&f, pk(1, A, c + 61, s + 58, NULL));
	TAP_EQ_STR(f.k.c[0].end, "fin", "ISNs %08x/%08x: closed by FIN after a client hole", cisn,
		   sisn);
	TAP_OK(f.rs.gaps == 1 && f.rs.gap_bytes == 20,
	       "ISNs %08x/%08x: one gap of the 20 lost bytes (gaps %llu, bytes %llu)", cisn, sisn,
	       (unsigned long long)f.rs.gaps, (unsigned long long)f.rs.gap_bytes);
	fx_end(&f);
}

static void test_syn(void)
{
	struct fx f;
	/* Data on a SYN is not delivered; the real request at those sequence
	 * numbers is. */
	fx_init(&f, 16);
	send(&f, pk(1, S, 100, 0, "GET /evil HTTP/1.1\r\n\r\n"));
	send(&f, pk(0, S | A, 5000, 101, NULL));
	send(&f, pk(1, A, 101, 5001, NULL));
	send(&f, pk(1, A, 101, 5001, "GET /real HTTP/1.1\r\n\r\n"));
	TAP_EQ_STR(f.k.c[0].t[0], "GET /real HTTP/1.1\r\n\r\n", "the real request wins");
	TAP_EQ_U64(f.fs.syn_payload, 1, "syn_payload counted");
	fx_end(&f);

	/* A SYN with a new ISN on a connection with data: ignored until the
	 * server answers it. */
	fx_init(&f, 16);
	exchange(&f);
	send(&f, pk(1, S, 777, 0, NULL));
	TAP_EQ_U64(f.fs.syn_on_open, 1, "syn_on_open counted");
	TAP_EQ_U64(f.fs.port_reuse, 0, "no port reuse yet");
	send(&f, pk(1, A, 119, 5020, "GET /2 HTTP/1.1\r\n\r\n"));
	TAP_OK(strstr(f.k.c[0].t[0], "GET /2") != NULL, "the old connection goes on");
	send(&f, pk(0, S | A, 9000, 778, NULL));
	TAP_EQ_U64(f.fs.port_reuse, 1, "a SYN-ACK of the new SYN: port reuse");
	TAP_EQ_STR(f.k.c[0].end, "timeout", "the old connection is over");
	send(&f, pk(1, A, 778, 9001, "GET /new HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.k.n, 2, "a second connection");
	TAP_EQ_STR(f.k.c[1].t[0], "GET /new HTTP/1.1\r\n\r\n", "its bytes");
	TAP_EQ_U64(f.k.c[1].midstream, 0, "with its handshake");
	fx_end(&f);
}

static void test_clock_and_new(void)
{
	struct fx f;
	fx_init(&f, 16);
	exchange(&f);
	{
		struct decode_pkt p = pk(1, S, 1, 0, NULL);
		p.sport = 41000;
		flow_packet(f.t, &p, f.ts + 10 * 365LL * 86400 * SEC); /* ten years ahead */
	}
	TAP_EQ_U64(f.fs.clock_jumps, 1, "a jump beyond the idle timeout: a new epoch");
	TAP_EQ_U64(f.fs.timeouts, 0, "the open connection is not timed out by it");
	send(&f, pk(1, A, 119, 5020, "GET /2 HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.fs.clock_jumps, 2, "the jump back is one too");
	TAP_OK(strstr(f.k.c[0].t[0], "GET /2") != NULL, "the connection goes on");
	flow_advance(f.t, f.ts + 61 * SEC);
	TAP_EQ_U64(f.fs.timeouts, 1, "the half-open connection times out after 60 s");
	TAP_EQ_STR(f.k.c[0].end, "", "the idle established one does not");
	flow_advance(f.t, f.ts + 301 * SEC);
	TAP_EQ_STR(f.k.c[0].end, "timeout", "... until 300 s");
	{
		struct decode_pkt p = pk(1, A, 1, 1, "x");
		flow_packet(f.t, &p, INT64_MAX);
		p.sport = 1;
		flow_packet(f.t, &p, INT64_MIN);
	}
	TAP_EQ_U64(f.fs.clock_jumps, 4, "extreme timestamps are epochs, no overflow");
	fx_end(&f);

	/* Full table: a half-open connection is evicted before an idle one
	 * with traffic. */
	fx_init(&f, 2);
	exchange(&f);
	for (int i = 0; i < 2; i++) {
		struct decode_pkt p = pk(1, S, 100, 0, NULL);
		p.sport = (uint16_t)(50000 + i);
		send(&f, p);
	}
	TAP_EQ_U64(f.fs.evicted, 1, "one eviction");
	TAP_EQ_U64(f.fs.evicted_new, 1, "of the half-open connection");
	TAP_EQ_STR(f.k.c[0].end, "", "the connection with traffic stays");
	TAP_EQ_U64(f.k.n, 1, "SYN-only connections never reach the consumer");
	TAP_OK(f.fs.mem_bytes > 2 * 200 && f.fs.mem_bytes <= 2 * FLOW_ENTRY_BYTES + 2 * 8,
	       "mem_bytes: two entries and two buckets (%llu)", (unsigned long long)f.fs.mem_bytes);
	fx_end(&f);
}

int main(void)
{
	struct fx f;

	/* Full connection with FIN close. */
	fx_init(&f, 16);
	handshake(&f, 100, 5000);
	send(&f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n\r\n"));
	send(&f, pk(0, A, 5001, 119, "HTTP/1.1 200 OK\r\n\r\n"));
	send(&f, pk(1, F | A, 119, 5020, NULL));
	send(&f, pk(0, F | A, 5020, 120, NULL));
	TAP_EQ_U64(f.k.n, 1, "one connection");
	TAP_EQ_STR(f.k.c[0].t[0], "GET / HTTP/1.1\r\n\r\n", "client bytes");
	TAP_EQ_STR(f.k.c[0].t[1], "HTTP/1.1 200 OK\r\n\r\n", "server bytes");
	TAP_EQ_STR(f.k.c[0].end, "fin", "closed by FIN");
	TAP_EQ_U64(f.k.c[0].midstream, 0, "not midstream");
	TAP_EQ_U64(f.k.c[0].cport, CLI, "client port from the SYN");
	TAP_EQ_U64(f.fs.closed_fin, 1, "closed_fin counted");
	send(&f, pk(1, A, 120, 5021, NULL));
	TAP_EQ_U64(f.fs.pkts_after_close, 1, "last ACK after close counted");
	TAP_EQ_U64(flow_active(f.t), 0, "nothing open");
	/* Port reuse: a new SYN with another ISN on the closed tuple. */
	handshake(&f, 9000, 7000);
	send(&f, pk(1, A, 9001, 7001, "GET /2 HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.fs.port_reuse, 1, "port reuse counted");
	TAP_EQ_U64(f.k.n, 2, "second connection on the same tuple");
	TAP_EQ_U64(f.k.c[1].id, 2, "conn_id 2");
	TAP_EQ_STR(f.k.c[1].t[0], "GET /2 HTTP/1.1\r\n\r\n", "second connection's bytes");
	flow_finish(f.t);
	TAP_EQ_STR(f.k.c[1].end, "eof", "open at end of capture: eof");
	TAP_EQ_U64(f.fs.ended_eof, 1, "ended_eof counted");
	flow_table_free(f.t);

	/* Midstream: the server speaks first; port 80 makes it the server. */
	fx_init(&f, 16);
	send(&f, pk(0, A, 7000, 300, "HTTP/1.1 200 OK\r\n"));
	send(&f, pk(1, A, 300, 7017, "GET /next HTTP/1.1\r\n"));
	TAP_EQ_U64(f.fs.midstream, 1, "midstream counted");
	TAP_EQ_U64(f.fs.dir_from_port, 1, "direction from ports counted");
	TAP_EQ_U64(f.k.c[0].midstream, 1, "consumer told midstream");
	TAP_EQ_U64(f.k.c[0].sport, SRV, "port 80 is the server");
	TAP_EQ_STR(f.k.c[0].t[1], "HTTP/1.1 200 OK\r\n", "server bytes in dir 1");
	TAP_EQ_STR(f.k.c[0].t[0], "GET /next HTTP/1.1\r\n", "client bytes in dir 0");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* RST mid-body. */
	fx_init(&f, 16);
	handshake(&f, 100, 5000);
	send(&f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n\r\n"));
	send(&f, pk(0, A, 5001, 119, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"));
	send(&f, pk(0, R | A, 5050, 119, NULL));
	TAP_EQ_STR(f.k.c[0].end, "", "RST 3 bytes past what the server sent: ignored");
	TAP_EQ_U64(f.fs.rst_ignored, 1, "rst_ignored counted");
	send(&f, pk(0, R | A, 5047, 119, NULL));
	TAP_EQ_STR(f.k.c[0].end, "rst", "closed by RST");
	TAP_EQ_U64(f.fs.closed_rst, 1, "closed_rst counted");
	TAP_OK(strstr(f.k.c[0].t[1], "partial") != NULL, "bytes before the RST delivered");
	send(&f, pk(1, A, 119, 5050, "more"));
	TAP_EQ_U64(f.fs.pkts_after_close, 1, "data after RST ignored and counted");
	TAP_EQ_U64(f.k.n, 1, "no new connection from late data");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* Gap by ACK: the server acknowledges bytes the capture missed. */
	fx_init(&f, 16);
	handshake(&f, 100, 5000);
	send(&f, pk(1, A, 101, 5001, "GET /a"));
	send(&f, pk(1, A, 111, 5001, "1.1\r\n\r\n"));
	send(&f, pk(0, A, 5001, 118, "HTTP/1.1 200 OK\r\n"));
	TAP_EQ_STR(f.k.c[0].t[0], "GET /a[g4]1.1\r\n\r\n", "gap in the client stream");
	TAP_EQ_U64(f.rs.gaps_by_ack, 1, "gap by ack counted");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* Only the client's packets captured: its ACKs expose the server's
	 * missing bytes as gaps. */
	fx_init(&f, 16);
	send(&f, pk(1, S, 100, 0, NULL));
	send(&f, pk(1, A, 101, 5001, NULL));
	send(&f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n\r\n"));
	send(&f, pk(1, A, 119, 5031, NULL));
	TAP_EQ_STR(f.k.c[0].t[1], "[g30]", "server bytes never captured become a gap");
	TAP_EQ_U64(f.rs.gaps_by_ack, 1, "found by the client's ack");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* SYN-ACK first: roles from the SYN-ACK, client stream starts at its ack. */
	fx_init(&f, 16);
	send(&f, pk(0, S | A, 5000, 101, NULL));
	send(&f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n\r\n"));
	TAP_EQ_U64(f.k.c[0].midstream, 0, "SYN-ACK seen: not midstream");
	TAP_EQ_STR(f.k.c[0].t[0], "GET / HTTP/1.1\r\n\r\n", "client bytes after SYN-ACK");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* Unknown bare ACK, idle timeout. */
	fx_init(&f, 16);
	send(&f, pk(1, A, 1, 1, NULL));
	TAP_EQ_U64(f.fs.pkts_no_flow, 1, "bare ACK of an unknown connection ignored");
	TAP_EQ_U64(f.k.n, 0, "no connection opened");
	handshake(&f, 100, 5000);
	send(&f, pk(1, A, 101, 5001, "GET / HTTP/1.1\r\n"));
	flow_advance(f.t, f.ts + 301 * SEC);
	TAP_EQ_STR(f.k.c[0].end, "timeout", "idle timeout");
	TAP_EQ_U64(f.fs.timeouts, 1, "timeouts counted");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* Eviction when the table is full. */
	fx_init(&f, 2);
	for (int i = 0; i < 3; i++) {
		struct decode_pkt p = pk(1, A, 100, 0, "GET / HTTP/1.1\r\n");
		p.sport = (uint16_t)(50000 + i);
		send(&f, p);
	}
	TAP_EQ_U64(f.fs.evicted, 1, "one connection evicted");
	TAP_EQ_STR(f.k.c[0].end, "timeout", "the idlest one");
	TAP_EQ_U64(flow_active(f.t), 2, "table holds max_flows");
	TAP_EQ_U64(f.fs.active_peak, 2, "peak");
	flow_finish(f.t);
	flow_table_free(f.t);

	/* IPv6 and VLAN are part of the key. */
	fx_init(&f, 16);
	{
		struct decode_pkt p = pk(1, A, 1, 1, "x");
		send(&f, p);
		p.vlan = 7;
		send(&f, p);
		p.vlan = 0;
		p.ip_version = 6;
		send(&f, p);
		TAP_EQ_U64(f.fs.created, 3, "vlan and ip version separate connections");
	}
	flow_finish(f.t);
	flow_table_free(f.t);

	test_hostile_rst();
	test_hostile_fin();
	test_fin_after_hole_isn(100, 5000);
	test_fin_after_hole_isn(0x50000000u, 0xc0000000u);
	test_fin_after_hole_isn(0xfffffff0u, 0x3ffffff0u);
	test_syn();
	test_clock_and_new();
	return tap_done();
}
