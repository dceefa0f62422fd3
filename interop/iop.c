/* SPDX-License-Identifier: MIT */
/*
 * iop - HAR, GoReplay, pcap and pcapng files as one packet source (iop.h).
 *
 * Files are read in the order given. pcap and pcapng files go to
 * capture/source.h one at a time. A HAR file is parsed whole when the
 * source is opened (a bad file fails before anything is written), its
 * exchanges grouped by connection (`_dyetap.conn`, else the HAR
 * `connection` name, else one connection each) and turned into events
 * (open, request, response, close) sorted by time, so connections
 * interleave as they did on the wire. A GoReplay file is streamed: a
 * request opens a connection, its response (matched by id) answers and
 * closes it; requests still waiting at the end close unanswered.
 * Connections open in the order of their numbers in the file, so the
 * pipeline gives them the same connection ids as the capture did.
 * Each event's frames are queued (bounded by one message) and handed out
 * one by one, through the BPF filter like captured packets.
 */
#include "interop/iop.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/dbuf.h"
#include "common/hash.h"
#include "common/mem.h"
#include "interop/gor.h"
#include "interop/iop_private.h"
#include "interop/synth.h"

const struct ctr_desc iop_ctr_descs[] = {
    CTR_DESC(struct iop_stats, har_files, "HAR files read"),
    CTR_DESC(struct iop_stats, har_entries, "entries in the HAR files"),
    CTR_DESC(struct iop_stats, gor_files, "GoReplay files read"),
    CTR_DESC(struct iop_stats, gor_payloads, "payloads in the GoReplay files"),
    CTR_DESC(struct iop_stats, exchanges, "requests turned into packets, with their responses"),
    CTR_DESC(struct iop_stats, frames, "packets made from HAR and GoReplay files"),
    CTR_DESC(struct iop_stats, skipped_malformed,
	     "entries or payloads not used: a required field missing or bad"),
    CTR_DESC(struct iop_stats, skipped_unsafe,
	     "entries not used: CR, LF or NUL in a method, target, header or reason"),
    CTR_DESC(struct iop_stats, skipped_too_large, "GoReplay payloads over 64 MiB, not used"),
    CTR_DESC(struct iop_stats, gor_replayed, "GoReplay replayed responses (type 3), not recorded"),
    CTR_DESC(struct iop_stats, gor_orphans, "GoReplay responses without their request"),
    CTR_DESC(struct iop_stats, gor_duplicates,
	     "GoReplay requests whose id was still waiting (the older one got no response)"),
    CTR_DESC(struct iop_stats, gor_evicted,
	     "GoReplay requests closed unanswered: 65536 were waiting"),
    CTR_DESC(struct iop_stats, gor_cut, "GoReplay files that end inside a payload"),
    CTR_DESC(struct iop_stats, har_no_response, "HAR entries without a response (status 0)"),
    CTR_DESC(struct iop_stats, har_replayed,
	     "HAR entries of a replay's answers (dyetap's _dyetap.role), not recorded"),
    CTR_DESC(struct iop_stats, length_set,
	     "Content-Length headers added or set to the length of the body in the file"),
    CTR_DESC(struct iop_stats, encoding_removed,
	     "Content-Encoding headers dropped: HAR bodies are decoded"),
    CTR_DESC(struct iop_stats, padded, "truncated bodies padded back to their full length"),
    CTR_DESC(struct iop_stats, version_changed, "HTTP/2 or /3 messages written as HTTP/1.1"),
};
const size_t iop_ctr_count = sizeof(iop_ctr_descs) / sizeof(iop_ctr_descs[0]);

enum ev_kind { EV_OPEN, EV_REQ, EV_RESP, EV_CLOSE };

struct ev {
	int64_t ts;
	uint32_t conn; /* rank */
	uint32_t seq;  /* order within the connection */
	uint32_t kind;
	uint32_t x; /* exchange */
};

struct pend {
	char *id;
	uint64_t hash;
	struct synth_conn c;
	int64_t ts;
	int32_t next; /* bucket chain, or free list */
	int32_t older, newer;
};

#define PEND_BUCKETS (2 * IOP_GOR_MAX_PENDING)

struct iop_file {
	const char *path;
	enum iop_format fmt;
	uint8_t *text; /* HAR: the file (exchanges point into it) */
	struct har_doc har;
};

struct iop_src {
	struct src_params p;
	struct src_stats *ss;
	struct iop_stats *st;
	struct iop_file *files;
	size_t n_files, cur;
	bool started; /* the current file is open */
	struct src *pc;
	/* packets made and not handed out: [int64 ts][uint32 len][frame] ... */
	struct dbuf q;
	size_t q_pos;
	struct synth syn;
	uint64_t conn_ord; /* client endpoints of connections without one */
	/* HAR */
	struct ev *ev;
	size_t n_ev, ev_pos;
	struct synth_conn *conns;
	/* GoReplay */
	FILE *gf;
	struct gor_reader *gr;
	struct pend *pend;
	int32_t *buckets;
	int32_t free_head, oldest, newest;
	struct hash_key hkey; /* keyed: ids are chosen by whoever wrote the file */
	size_t n_pend;
	/* the BPF filter, for the frames made here */
	pcap_t *dead;
	struct bpf_program prog;
	bool filter;
	volatile sig_atomic_t stop;
	uint8_t *pkt; /* the frame handed out */
	char err[1024];
};

const char *iop_format_name(enum iop_format f)
{
	switch (f) {
	case IOP_PCAP:
		return "pcap";
	case IOP_HAR:
		return "har";
	case IOP_GOR:
		return "gor";
	default:
		return "unknown";
	}
}

enum iop_format iop_sniff(const uint8_t *b, size_t n)
{
	if (n >= 4) {
		uint32_t m =
		    (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		if (m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1 ||
		    m == 0x0a0d0d0a)
			return IOP_PCAP;
	}
	if (gor_sniff(b, n))
		return IOP_GOR;
	size_t i = 0;
	if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf)
		i = 3; /* UTF-8 byte order mark */
	while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
		i++;
	if (i < n && b[i] == '{')
		return IOP_HAR;
	return IOP_UNKNOWN;
}

static enum iop_format sniff_file(const char *path)
{
	uint8_t b[IOP_SNIFF_BYTES];
	struct stat sb;
	/* Standard input, a FIFO, `<(zcat x.pcap.gz)`: reading would take bytes
	 * nobody can put back; capture/source.h peeks those itself. */
	if (!strcmp(path, "-") || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
		return IOP_PCAP;
	FILE *f = fopen(path, "rb");
	if (!f)
		return IOP_UNKNOWN;
	size_t n = fread(b, 1, sizeof(b), f);
	fclose(f);
	return iop_sniff(b, n);
}

int iop_source(struct dbuf *b, const char *const *files, size_t n)
{
	int rc = dbuf_puts(b, "files:");
	for (size_t i = 0; !rc && i < n; i++) {
		enum iop_format f = sniff_file(files[i]);
		rc = dbuf_printf(b, "%s%s:%s", i ? "," : "",
				 iop_format_name(f == IOP_UNKNOWN ? IOP_PCAP : f), files[i]);
	}
	return rc;
}

bool iop_any(const char *const *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum iop_format f = sniff_file(files[i]);
		if (f == IOP_HAR || f == IOP_GOR)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* frames                                                              */
/* ------------------------------------------------------------------ */

static void on_frame(void *ctx, int64_t ts, const uint8_t *frame, uint32_t len)
{
	struct iop_src *s = ctx;
	if (s->filter) {
		struct pcap_pkthdr h = {.caplen = len, .len = len};
		if (!pcap_offline_filter(&s->prog, &h, frame))
			return;
	}
	dbuf_append(&s->q, &ts, sizeof(ts));
	dbuf_append(&s->q, &len, sizeof(len));
	dbuf_append(&s->q, frame, len);
}

/* A client endpoint for a connection the file names none for. */
static void cli_for(struct iop_src *s, uint8_t ver, struct store_endpoint *cli)
{
	uint64_t k = s->conn_ord++;
	memset(cli, 0, sizeof(*cli));
	cli->port = (uint16_t)(1024 + k % 64000);
	uint8_t *a = ver == 6 ? cli->addr + 12 : cli->addr;
	k /= 64000;
	a[1] = (uint8_t)(k >> 16);
	a[2] = (uint8_t)(k >> 8);
	a[3] = (uint8_t)k;
}

/* ------------------------------------------------------------------ */
/* HAR                                                                 */
/* ------------------------------------------------------------------ */

static const struct iop_xchg *cmp_x;

static int key_cmp(const void *a, const void *b)
{
	const struct iop_xchg *x = &cmp_x[*(const uint32_t *)a], *y = &cmp_x[*(const uint32_t *)b];
	int kx = x->conn ? 0 : x->key ? 1 : 2, ky = y->conn ? 0 : y->key ? 1 : 2;
	if (kx != ky)
		return kx - ky;
	if (kx == 0 && x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	if (kx == 1) {
		size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
		int c = memcmp(x->key, y->key, n);
		if (c || x->key_len != y->key_len)
			return c ? c : x->key_len < y->key_len ? -1 : 1;
	}
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool same_conn(const struct iop_xchg *x, const struct iop_xchg *y)
{
	if (x->conn || y->conn)
		return x->conn == y->conn;
	if (!x->key || !y->key)
		return false;
	return x->key_len == y->key_len && !memcmp(x->key, y->key, x->key_len);
}

struct cinfo {
	uint64_t conn;
	int64_t first;
	uint32_t id; /* group number before ranking */
};

static int cinfo_cmp(const void *a, const void *b)
{
	const struct cinfo *x = a, *y = b;
	if (x->conn != y->conn) /* numbered connections first, in their order */
		return x->conn && (!y->conn || x->conn < y->conn) ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Group the exchanges into connections and sort their events. */
static int har_events(struct iop_src *s, struct har_doc *d)
{
	size_t n = d->n;
	uint32_t *idx = mem_calloc(n ? n : 1, sizeof(*idx));
	uint32_t *grp = mem_calloc(n ? n : 1, sizeof(*grp));
	struct cinfo *ci = mem_calloc(n ? n : 1, sizeof(*ci));
	uint32_t *rank = mem_calloc(n ? n : 1, sizeof(*rank));
	s->ev = mem_calloc(4 * n + 1, sizeof(*s->ev));
	s->conns = mem_calloc(n ? n : 1, sizeof(*s->conns));
	int rc = 0;
	if (!idx || !grp || !ci || !rank || !s->ev || !s->conns) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	cmp_x = d->x;
	qsort(idx, n, sizeof(*idx), key_cmp);
	/* groups: runs of one connection, split after a response that ends it
	 * and after a request without a response (HTTP/1.x pairs responses
	 * with requests in order: the next response would be taken as its) */
	uint32_t ng = 0;
	for (size_t i = 0; i < n; i++) {
		const struct iop_xchg *x = &d->x[idx[i]];
		const struct iop_xchg *p = i ? &d->x[idx[i - 1]] : NULL;
		if (!p || !same_conn(p, x) || p->close_after || !p->has_resp) {
			ci[ng].conn = x->conn;
			ci[ng].first = x->ts[0];
			ci[ng].id = ng;
			ng++;
		}
		grp[idx[i]] = ng - 1;
		if (x->ts[0] < ci[ng - 1].first)
			ci[ng - 1].first = x->ts[0];
	}
	qsort(ci, ng, sizeof(*ci), cinfo_cmp);
	for (uint32_t r = 0; r < ng; r++)
		rank[ci[r].id] = r;
	/* connections open in rank order: each no later than the next one */
	int64_t *open = (int64_t *)mem_calloc(ng ? ng : 1, sizeof(int64_t));
	int64_t *last = (int64_t *)mem_calloc(ng ? ng : 1, sizeof(int64_t));
	uint32_t *nseq = mem_calloc(ng ? ng : 1, sizeof(uint32_t));
	if (!open || !last || !nseq) {
		mem_free(open);
		mem_free(last);
		mem_free(nseq);
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t r = ng; r-- > 0;)
		open[r] = r + 1 < ng && open[r + 1] < ci[r].first ? open[r + 1] : ci[r].first;
	size_t ne = 0;
	for (size_t i = 0; i < n; i++) {
		const struct iop_xchg *x = &d->x[idx[i]];
		uint32_t r = rank[grp[idx[i]]];
		if (nseq[r] == 0) {
			struct store_endpoint cli = x->cli;
			if (!x->cli_known)
				cli_for(s, x->ip_version, &cli);
			synth_conn_init(&s->conns[r], x->ip_version, &cli, &x->srv, x->vlan,
					s->conn_ord * 7919 + r);
			last[r] = open[r];
			s->ev[ne++] = (struct ev){open[r], r, nseq[r]++,
						  x->midstream ? EV_CLOSE + 1 : EV_OPEN, idx[i]};
		}
		int64_t t = x->ts[0] > last[r] ? x->ts[0] : last[r];
		s->ev[ne++] = (struct ev){t, r, nseq[r]++, EV_REQ, idx[i]};
		last[r] = x->ts[1] > t ? x->ts[1] : t;
		if (x->has_resp) {
			t = x->ts[2] > last[r] ? x->ts[2] : last[r];
			s->ev[ne++] = (struct ev){t, r, nseq[r]++, EV_RESP, idx[i]};
			last[r] = x->ts[3] > t ? x->ts[3] : t;
		}
	}
	for (uint32_t r = 0; r < ng; r++)
		s->ev[ne++] = (struct ev){last[r], r, UINT32_MAX, EV_CLOSE, 0};
	qsort(s->ev, ne, sizeof(*s->ev), ev_cmp);
	s->n_ev = ne;
	s->ev_pos = 0;
	mem_free(open);
	mem_free(last);
	mem_free(nseq);
out:
	mem_free(idx);
	mem_free(grp);
	mem_free(ci);
	mem_free(rank);
	return rc;
}

/* Frames of the next HAR event; false at the end of the file. */

/* @p t plus the span from @p a to @p b when positive, saturated: times read
 * from a file may be anything (their sum must not overflow). */
static int64_t ts_after(int64_t t, int64_t a, int64_t b)
{
	int64_t d, r;
	if (__builtin_sub_overflow(b, a, &d) || d <= 0)
		return t;
	return __builtin_add_overflow(t, d, &r) ? INT64_MAX : r;
}

static bool har_step(struct iop_src *s, struct har_doc *d)
{
	if (s->ev_pos >= s->n_ev)
		return false;
	const struct ev *e = &s->ev[s->ev_pos++];
	struct synth_conn *c = &s->conns[e->conn];
	const struct iop_xchg *x = &d->x[e->x];
	switch (e->kind) {
	case EV_OPEN:
		synth_open(&s->syn, c, e->ts);
		break;
	case EV_REQ:
		s->st->exchanges++;
		synth_data(&s->syn, c, 0, x->req, x->req_len, e->ts,
			   ts_after(e->ts, x->ts[0], x->ts[1]));
		break;
	case EV_RESP:
		synth_data(&s->syn, c, 1, x->resp, x->resp_len, e->ts,
			   ts_after(e->ts, x->ts[2], x->ts[3]));
		break;
	case EV_CLOSE:
		synth_close(&s->syn, c, e->ts);
		break;
	default: /* a midstream connection: no handshake */
		break;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* GoReplay                                                            */
/* ------------------------------------------------------------------ */

static void pend_unlink(struct iop_src *s, int32_t i)
{
	struct pend *p = &s->pend[i];
	int32_t *pp = &s->buckets[p->hash % PEND_BUCKETS];
	while (*pp != i)
		pp = &s->pend[*pp].next;
	*pp = p->next;
	if (p->older >= 0)
		s->pend[p->older].newer = p->newer;
	else
		s->oldest = p->newer;
	if (p->newer >= 0)
		s->pend[p->newer].older = p->older;
	else
		s->newest = p->older;
	mem_free(p->id);
	p->id = NULL;
	p->next = s->free_head;
	s->free_head = i;
	s->n_pend--;
}

static int32_t pend_find(struct iop_src *s, const char *id, size_t len, uint64_t h)
{
	for (int32_t i = s->buckets[h % PEND_BUCKETS]; i >= 0; i = s->pend[i].next)
		if (s->pend[i].hash == h && !strcmp(s->pend[i].id, id))
			return i;
	(void)len;
	return -1;
}

/* Close the oldest waiting request unanswered. */
static void pend_close(struct iop_src *s, int32_t i, int64_t ts)
{
	struct pend *p = &s->pend[i];
	synth_close(&s->syn, &p->c, ts > p->ts ? ts : p->ts);
	pend_unlink(s, i);
}

static int gor_request(struct iop_src *s, const struct gor_payload *g)
{
	uint64_t h = hash_siphash(2, 4, &s->hkey, g->id, g->id_len);
	int32_t old = pend_find(s, g->id, g->id_len, h);
	if (old >= 0) {
		s->st->gor_duplicates++;
		pend_close(s, old, g->ts_ns);
	}
	if (s->n_pend == IOP_GOR_MAX_PENDING) {
		s->st->gor_evicted++;
		pend_close(s, s->oldest, g->ts_ns);
	}
	int32_t i = s->free_head;
	struct pend *p = &s->pend[i];
	p->id = mem_strndup(g->id, g->id_len);
	if (!p->id)
		return -ENOMEM;
	s->free_head = p->next;
	p->hash = h;
	p->ts = g->ts_ns;
	p->next = s->buckets[h % PEND_BUCKETS];
	s->buckets[h % PEND_BUCKETS] = i;
	p->older = s->newest;
	p->newer = -1;
	if (s->newest >= 0)
		s->pend[s->newest].newer = i;
	else
		s->oldest = i;
	s->newest = i;
	s->n_pend++;
	struct store_endpoint cli, srv;
	memset(&srv, 0, sizeof(srv));
	srv.port = 80;
	cli_for(s, 4, &cli);
	synth_conn_init(&p->c, 4, &cli, &srv, 0, s->conn_ord);
	synth_open(&s->syn, &p->c, g->ts_ns);
	synth_data(&s->syn, &p->c, 0, g->data, g->len, g->ts_ns, g->ts_ns);
	s->st->exchanges++;
	return 0;
}

static void gor_response(struct iop_src *s, const struct gor_payload *g)
{
	int32_t i = pend_find(s, g->id, g->id_len, hash_siphash(2, 4, &s->hkey, g->id, g->id_len));
	if (i < 0) {
		s->st->gor_orphans++;
		return;
	}
	struct pend *p = &s->pend[i];
	int64_t ts = g->ts_ns > p->ts ? g->ts_ns : p->ts;
	synth_data(&s->syn, &p->c, 1, g->data, g->len, ts, ts);
	synth_close(&s->syn, &p->c, ts);
	pend_unlink(s, i);
}

static void gor_release(struct iop_src *s)
{
	gor_close(s->gr);
	s->gr = NULL;
	if (s->gf)
		fclose(s->gf);
	s->gf = NULL;
	for (size_t i = 0; s->pend && i < IOP_GOR_MAX_PENDING; i++)
		mem_free(s->pend[i].id);
	mem_free(s->pend);
	mem_free(s->buckets);
	s->pend = NULL;
	s->buckets = NULL;
}

static int gor_start(struct iop_src *s, const char *path)
{
	s->gf = fopen(path, "rb");
	s->pend = mem_calloc(IOP_GOR_MAX_PENDING, sizeof(*s->pend));
	s->buckets = mem_alloc(PEND_BUCKETS * sizeof(*s->buckets));
	if (!s->gf) {
		snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
		return -EIO;
	}
	s->gr = s->pend && s->buckets ? gor_open(s->gf, IOP_GOR_MAX_PAYLOAD) : NULL;
	if (!s->gr) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -ENOMEM;
	}
	for (int32_t i = 0; i < PEND_BUCKETS; i++)
		s->buckets[i] = -1;
	for (int32_t i = 0; i < IOP_GOR_MAX_PENDING; i++)
		s->pend[i].next = i + 1 < IOP_GOR_MAX_PENDING ? i + 1 : -1;
	s->free_head = 0;
	s->hkey.k0 = (uint64_t)clk_mono_ns() ^ (uint64_t)(uintptr_t)s;
	s->hkey.k1 = hash_fmix64(s->hkey.k0 + (uint64_t)clk_real_ns());
	s->oldest = s->newest = -1;
	s->n_pend = 0;
	s->st->gor_files++;
	return 0;
}

/* Frames of the next payload: 1, 0 at the end of the file, -errno. */
static int gor_step(struct iop_src *s, const char *path)
{
	struct gor_payload g;
	int rc = gor_next(s->gr, &g);
	if (rc == 0) {
		while (s->oldest >= 0)
			pend_close(s, s->oldest, s->pend[s->oldest].ts);
		return 0;
	}
	if (rc == -EBADMSG || rc == -E2BIG) {
		s->st->gor_payloads++;
		if (rc == -EBADMSG)
			s->st->skipped_malformed++;
		else
			s->st->skipped_too_large++;
		return 1;
	}
	if (rc < 0) {
		snprintf(s->err, sizeof(s->err), "%s: %s", path,
			 rc == -ENOMEM ? "out of memory" : "read error");
		return rc;
	}
	s->st->gor_payloads++;
	if (g.cut)
		s->st->gor_cut++;
	if (g.type == GOR_REQUEST)
		return gor_request(s, &g) < 0 ? -ENOMEM : 1;
	if (g.type == GOR_RESPONSE)
		gor_response(s, &g);
	else
		s->st->gor_replayed++;
	return 1;
}

/* ------------------------------------------------------------------ */
/* the source                                                          */
/* ------------------------------------------------------------------ */

static int load_har(struct iop_src *s, struct iop_file *f, char *err, size_t errlen)
{
	FILE *in = fopen(f->path, "rb");
	struct stat sb;
	if (!in || fstat(fileno(in), &sb) != 0) {
		snprintf(err, errlen, "%s: %s (check the path given to -r)", f->path,
			 strerror(errno));
		if (in)
			fclose(in);
		return -ENOENT;
	}
	if ((uint64_t)sb.st_size > IOP_HAR_MAX_BYTES) {
		fclose(in);
		snprintf(err, errlen, "%s: HAR file larger than %llu MiB (split it)", f->path,
			 IOP_HAR_MAX_BYTES >> 20);
		return -E2BIG;
	}
	size_t n = (size_t)sb.st_size;
	f->text = mem_alloc(n ? n : 1);
	if (!f->text || fread(f->text, 1, n, in) != n) {
		fclose(in);
		snprintf(err, errlen, "%s: %s", f->path, f->text ? "read error" : "out of memory");
		return -EIO;
	}
	fclose(in);
	char e2[512];
	int rc = har_read(f->text, n, &f->har, s->st, e2, sizeof(e2));
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", f->path, e2);
		return rc;
	}
	s->st->har_files++;
	return 0;
}

struct iop_src *iop_src_open(const struct src_params *p, struct src_stats *ss, struct iop_stats *st,
			     char *err, size_t errlen)
{
	struct iop_src *s = mem_calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->ss = ss;
	s->st = st;
	dbuf_init(&s->q, (size_t)IOP_HAR_MAX_BYTES * 2);
	synth_init(&s->syn, on_frame, s);
	s->files = mem_calloc(p->n_files ? p->n_files : 1, sizeof(*s->files));
	s->pkt = mem_alloc(SYNTH_MSS + 256);
	if (!s->files || !s->pkt) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (p->iface || !p->n_files) {
		snprintf(err, errlen, "HAR and GoReplay input is read from files (-r)");
		goto fail;
	}
	s->n_files = p->n_files;
	if (p->filter && *p->filter) {
		s->dead = pcap_open_dead(DLT_EN10MB, 262144);
		if (!s->dead ||
		    pcap_compile(s->dead, &s->prog, p->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			snprintf(err, errlen, "bad filter '%s': %s", p->filter,
				 s->dead ? pcap_geterr(s->dead) : "out of memory");
			goto fail;
		}
		s->filter = true;
	}
	for (size_t i = 0; i < p->n_files; i++) {
		struct iop_file *f = &s->files[i];
		f->path = p->files[i];
		f->fmt = sniff_file(f->path);
		if (f->fmt == IOP_HAR) {
			if (load_har(s, f, err, errlen) < 0)
				goto fail;
		} else if (f->fmt != IOP_GOR) {
			/* pcap, pcapng or unknown: capture/source.h checks it now */
			struct src_params one = *p;
			struct src_stats tmp = {0};
			one.files = &p->files[i];
			one.n_files = 1;
			struct src *t = src_open(&one, &tmp, err, errlen);
			if (!t)
				goto fail;
			src_close(t);
			f->fmt = IOP_PCAP;
		} else {
			FILE *g = fopen(f->path, "rb");
			if (!g) {
				snprintf(err, errlen, "%s: %s (check the path given to -r)",
					 f->path, strerror(errno));
				goto fail;
			}
			fclose(g);
		}
	}
	return s;
fail:
	iop_src_close(s);
	return NULL;
}

static void end_file(struct iop_src *s)
{
	struct iop_file *f = &s->files[s->cur];
	src_close(s->pc);
	s->pc = NULL;
	gor_release(s);
	mem_free(s->ev);
	mem_free(s->conns);
	s->ev = NULL;
	s->conns = NULL;
	har_doc_release(&f->har);
	mem_free(f->text);
	f->text = NULL;
	s->started = false;
	s->cur++;
}

/* Open the current file; 0 or -errno (message in s->err). */
static int start_file(struct iop_src *s)
{
	struct iop_file *f = &s->files[s->cur];
	s->started = true;
	if (f->fmt == IOP_PCAP) {
		struct src_params one = s->p;
		one.files = &s->p.files[s->cur];
		one.n_files = 1;
		s->pc = src_open(&one, s->ss, s->err, sizeof(s->err));
		return s->pc ? 0 : -EIO;
	}
	if (f->fmt == IOP_GOR)
		return gor_start(s, f->path);
	int rc = har_events(s, &f->har);
	if (rc < 0)
		snprintf(s->err, sizeof(s->err), "%s: out of memory", f->path);
	return rc;
}

int iop_src_next(struct iop_src *s, struct src_pkt *out)
{
	for (;;) {
		if (s->stop)
			return -ENODATA;
		if (s->q_pos < s->q.len) {
			int64_t ts;
			uint32_t len;
			memcpy(&ts, s->q.data + s->q_pos, sizeof(ts));
			memcpy(&len, s->q.data + s->q_pos + sizeof(ts), sizeof(len));
			memcpy(s->pkt, s->q.data + s->q_pos + sizeof(ts) + sizeof(len), len);
			s->q_pos += sizeof(ts) + sizeof(len) + len;
			out->ts_ns = ts;
			out->linktype = DLT_EN10MB;
			out->data = s->pkt;
			out->caplen = out->wirelen = len;
			s->st->frames++;
			return 1;
		}
		if (dbuf_error(&s->q)) {
			snprintf(s->err, sizeof(s->err), "out of memory");
			return -EIO;
		}
		dbuf_reset(&s->q);
		s->q_pos = 0;
		if (s->cur >= s->n_files)
			return -ENODATA;
		if (!s->started && start_file(s) < 0)
			return -EIO;
		struct iop_file *f = &s->files[s->cur];
		if (f->fmt == IOP_PCAP) {
			int rc = src_next(s->pc, out, 0);
			if (rc == 1)
				return 1;
			if (rc != -ENODATA) {
				snprintf(s->err, sizeof(s->err), "%s", src_error(s->pc));
				return -EIO;
			}
			end_file(s);
		} else if (f->fmt == IOP_GOR) {
			int rc = gor_step(s, f->path);
			if (rc < 0)
				return -EIO;
			if (rc == 0)
				end_file(s);
		} else if (!har_step(s, &f->har)) {
			end_file(s);
		}
	}
}

void iop_src_break(struct iop_src *s)
{
	s->stop = 1;
}

const char *iop_src_error(const struct iop_src *s)
{
	return s->err;
}

void iop_src_close(struct iop_src *s)
{
	if (!s)
		return;
	while (s->files && s->cur < s->n_files)
		end_file(s);
	if (s->filter)
		pcap_freecode(&s->prog);
	if (s->dead)
		pcap_close(s->dead);
	dbuf_release(&s->q);
	mem_free(s->files);
	mem_free(s->pkt);
	mem_free(s);
}
