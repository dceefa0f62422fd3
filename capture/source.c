/* SPDX-License-Identifier: MIT */
/*
 * source - pcap files and live interfaces through libpcap (see source.h).
 *
 * Files: classic pcap through pcap_fopen_offline_with_tstamp_precision();
 * pcapng through capture/pcapng.h, which reads what Wireshark reads and
 * libpcap 1.10 refuses (interfaces of several link types, sections in
 * either byte order); the first four bytes decide. The BPF filter is
 * compiled per link type for pcapng (pcap_open_dead + pcap_offline_filter).
 * Every path is opened once up front so a typo fails before any work is
 * done. Standard input ("-") and other streams that cannot seek back (a
 * FIFO, `-r <(zcat x.pcap.gz)`) are peeked through a cookie stream that
 * hands the peeked bytes back first. Live: the handle is activated in immediate mode, or with a
 * block timeout (src_params.block_ms: TPACKET_V3 blocks, which hold far
 * more packets in the same buffer), and set non-blocking; src_next() polls
 * its selectable descriptor. A stop drains what the kernel took before it.
 *
 * References: pcap_create(3PCAP), pcap_activate(3PCAP) for the error codes
 * mapped to user messages, pcap_next_ex(3PCAP), pcap_stats(3PCAP),
 * pcap_offline_filter(3PCAP), fopencookie(3).
 */
#include "capture/source.h"

#include <errno.h>
#include <poll.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "capture/pcapng.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#define SRC_LOG(lvl, ...) LOG_MSG(lvl, "source", __VA_ARGS__)

/* A compiled filter for one link type of a pcapng file. */
struct src_bpf {
	int linktype;
	bool ok; /* compiled (else the link type cannot be filtered: no packet passes) */
	struct bpf_program prog;
};

#define SRC_MAX_BPF 16

/* A stream that cannot seek, with the bytes peeked to tell the format apart put back. */
struct src_peek {
	uint8_t b[4];
	size_t n, pos;
	FILE *in; /* closed with the cookie stream unless it is stdin */
};

struct src {
	struct src_params p;
	struct src_stats *st;
	pcap_t *pc;
	struct pcapng_reader *ng; /* the open file is pcapng */
	FILE *ng_f;
	struct src_peek peek;
	struct src_bpf bpf[SRC_MAX_BPF];
	size_t n_bpf;
	size_t file_idx; /* index of the open file */
	int nano;	 /* timestamps in ns (else us) */
	int fd;		 /* live: selectable descriptor */
	volatile sig_atomic_t stop;
	int64_t drain_until; /* live, buffered: monotonic ns the drain after stop ends */
	uint64_t done_bytes; /* sizes of the files already read */
	uint64_t total_bytes;
	char *fbuf; /* files: stdio buffer of the open file (FILE_BUF bytes) */
	char err[PCAP_ERRBUF_SIZE + 256];
};

/* libpcap reads files through stdio, whose default buffer (4 KiB) costs one
 * read(2) per 4 KiB. 64 KiB cut the capture thread's CPU time by ~15 % in
 * bench runs; 1 MiB was slower than 4 KiB (the buffer no longer stays in
 * cache between the read and libpcap's copy). */
#define FILE_BUF (64u << 10)

const struct ctr_desc src_ctr_descs[] = {
    CTR_DESC(struct src_stats, files, "capture files opened"),
    CTR_DESC(struct src_stats, packets, "packets read"),
    CTR_DESC(struct src_stats, wire_bytes, "bytes of those packets on the wire"),
    CTR_DESC(struct src_stats, cap_bytes, "bytes of those packets captured"),
    CTR_DESC(struct src_stats, truncated_files, "capture files cut short inside a packet"),
    CTR_DESC(struct src_stats, kernel_received, "live: packets received by the kernel filter"),
    CTR_DESC(struct src_stats, kernel_drops,
	     "live: packets dropped by the kernel (capture buffer full)"),
    CTR_DESC(struct src_stats, iface_drops, "live: packets dropped by the interface or driver"),
};
const size_t src_ctr_count = sizeof(src_ctr_descs) / sizeof(src_ctr_descs[0]);

static int apply_filter(struct src *s, const char *what, char *err, size_t errlen)
{
	struct bpf_program prog;
	if (!s->p.filter || !*s->p.filter)
		return 0;
	if (pcap_compile(s->pc, &prog, s->p.filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(err, errlen, "bad filter '%s': %s", s->p.filter, pcap_geterr(s->pc));
		return -EINVAL;
	}
	int rc = pcap_setfilter(s->pc, &prog);
	pcap_freecode(&prog);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot set the filter: %s", what, pcap_geterr(s->pc));
		return -EINVAL;
	}
	return 0;
}

static ssize_t peek_read(void *cookie, char *buf, size_t n)
{
	struct src_peek *pk = cookie;
	if (pk->pos < pk->n) {
		size_t k = pk->n - pk->pos < n ? pk->n - pk->pos : n;
		memcpy(buf, pk->b + pk->pos, k);
		pk->pos += k;
		return (ssize_t)k;
	}
	size_t k = fread(buf, 1, n, pk->in);
	return k == 0 && ferror(pk->in) ? -1 : (ssize_t)k;
}

static int peek_close(void *cookie)
{
	struct src_peek *pk = cookie;
	int rc = pk->in && pk->in != stdin ? fclose(pk->in) : 0;
	pk->in = NULL;
	return rc;
}

/* A stream over @p in whose first bytes are the @p n peeked ones (NULL:
 * out of memory, @p in closed unless it is stdin). */
static FILE *unpeeked(struct src *s, FILE *in, const uint8_t *b, size_t n)
{
	memcpy(s->peek.b, b, n);
	s->peek.n = n;
	s->peek.pos = 0;
	s->peek.in = in;
	cookie_io_functions_t io = {.read = peek_read, .close = peek_close};
	FILE *f = fopencookie(&s->peek, "rb", io);
	if (!f)
		peek_close(&s->peek);
	return f;
}

static void bpf_release(struct src *s)
{
	for (size_t i = 0; i < s->n_bpf; i++)
		if (s->bpf[i].ok)
			pcap_freecode(&s->bpf[i].prog);
	s->n_bpf = 0;
}

static void close_current(struct src *s)
{
	if (s->pc)
		pcap_close(s->pc);
	s->pc = NULL;
	pcapng_close(s->ng);
	s->ng = NULL;
	if (s->ng_f)
		fclose(s->ng_f);
	s->ng_f = NULL;
	bpf_release(s);
}

/* The filter for packets of @p linktype in a pcapng file (compiled once per type). */
static const struct src_bpf *bpf_for(struct src *s, int linktype)
{
	for (size_t i = 0; i < s->n_bpf; i++)
		if (s->bpf[i].linktype == linktype)
			return &s->bpf[i];
	if (s->n_bpf == SRC_MAX_BPF)
		bpf_release(s); /* a file with that many link types: start over */
	struct src_bpf *b = &s->bpf[s->n_bpf++];
	b->linktype = linktype;
	b->ok = false;
	pcap_t *dead = pcap_open_dead(linktype, 262144);
	if (dead) {
		b->ok = pcap_compile(dead, &b->prog, s->p.filter, 1, PCAP_NETMASK_UNKNOWN) == 0;
		if (!b->ok)
			SRC_LOG(LOG_WARN, "%s: filter '%s' does not apply to link type %d: %s",
				s->p.files[s->file_idx], s->p.filter, linktype, pcap_geterr(dead));
		pcap_close(dead);
	}
	return b;
}

static int open_file(struct src *s, size_t i, char *err, size_t errlen)
{
	char eb[PCAP_ERRBUF_SIZE] = "";
	const char *path = s->p.files[i];
	bool is_stdin = !strcmp(path, "-");
	FILE *in = is_stdin ? stdin : fopen(path, "rb"), *fp = NULL;
	uint8_t magic[4];
	size_t got = 0;
	if (in) {
		if (!is_stdin) {
			if (!s->fbuf)
				s->fbuf = mem_alloc(FILE_BUF);
			if (s->fbuf)
				setvbuf(in, s->fbuf, _IOFBF, FILE_BUF);
		}
		got = fread(magic, 1, sizeof(magic), in);
		if (!is_stdin && fseek(in, 0, SEEK_SET) == 0)
			fp = in;
		else
			fp = unpeeked(s, in, magic, got);
	}
	uint32_t m = 0;
	if (got == 4)
		memcpy(&m, magic, 4);
	if (fp && m == PCAPNG_MAGIC) {
		s->ng = pcapng_open(fp, eb, sizeof(eb));
		if (!s->ng)
			fclose(fp);
		else
			s->ng_f = fp;
	} else if (fp) {
		s->pc =
		    pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, eb);
		if (!s->pc)
			fclose(fp); /* not closed by libpcap when it fails */
	} else {
		snprintf(eb, sizeof(eb), "%s", strerror(errno));
	}
	if (!s->pc && !s->ng) {
		struct stat sb;
		if (!is_stdin && stat(path, &sb) != 0)
			snprintf(err, errlen, "%s: %s (check the path given to -r)", path,
				 strerror(errno));
		else
			snprintf(err, errlen, "%s: not a readable pcap or pcapng file: %s", path,
				 eb);
		return -ENOENT;
	}
	s->file_idx = i;
	s->st->files++;
	if (s->ng)
		return 0; /* filters are compiled per link type as packets come */
	s->nano = pcap_get_tstamp_precision(s->pc) == PCAP_TSTAMP_PRECISION_NANO;
	int rc = apply_filter(s, path, err, errlen);
	if (rc < 0)
		close_current(s);
	return rc;
}

static int open_live(struct src *s, char *err, size_t errlen)
{
	char eb[PCAP_ERRBUF_SIZE] = "";
	const char *ifc = s->p.iface;
	s->pc = pcap_create(ifc, eb);
	if (!s->pc) {
		snprintf(err, errlen, "%s: cannot open the interface: %s", ifc, eb);
		return -ENODEV;
	}
	pcap_set_snaplen(s->pc, s->p.snaplen > 0 ? s->p.snaplen : 262144);
	pcap_set_promisc(s->pc, s->p.promisc);
	if (s->p.block_ms > 0)
		pcap_set_timeout(s->pc, s->p.block_ms);
	else
		pcap_set_immediate_mode(s->pc, 1);
	pcap_set_buffer_size(s->pc, (s->p.buffer_mb > 0 ? s->p.buffer_mb : 64) << 20);
	pcap_set_tstamp_precision(s->pc, PCAP_TSTAMP_PRECISION_NANO);
	int rc = pcap_activate(s->pc);
	if (rc < 0) {
		switch (rc) {
		case PCAP_ERROR_PERM_DENIED:
			snprintf(err, errlen,
				 "%s: permission denied: run as root or give CAP_NET_RAW "
				 "(setcap cap_net_raw+ep $(command -v dyetap))",
				 ifc);
			break;
		case PCAP_ERROR_NO_SUCH_DEVICE:
			snprintf(err, errlen, "%s: no such interface (see `ip link`)", ifc);
			break;
		case PCAP_ERROR_IFACE_NOT_UP:
			snprintf(err, errlen, "%s: the interface is down (ip link set %s up)", ifc,
				 ifc);
			break;
		default:
			snprintf(err, errlen, "%s: cannot capture: %s", ifc, pcap_geterr(s->pc));
		}
		pcap_close(s->pc);
		s->pc = NULL;
		return rc == PCAP_ERROR_PERM_DENIED ? -EPERM : -ENODEV;
	}
	if (rc > 0)
		SRC_LOG(LOG_WARN, "%s: %s", ifc, pcap_statustostr(rc));
	s->nano = pcap_get_tstamp_precision(s->pc) == PCAP_TSTAMP_PRECISION_NANO;
	if (pcap_setnonblock(s->pc, 1, eb) < 0) {
		snprintf(err, errlen, "%s: cannot set non-blocking mode: %s", ifc, eb);
		return -EIO;
	}
	s->fd = pcap_get_selectable_fd(s->pc);
	if (s->fd < 0) {
		snprintf(err, errlen, "%s: no selectable descriptor for this interface", ifc);
		return -ENOTSUP;
	}
	return apply_filter(s, ifc, err, errlen);
}

struct src *src_open(const struct src_params *p, struct src_stats *st, char *err, size_t errlen)
{
	struct src *s = mem_calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->st = st;
	s->fd = -1;
	int rc;
	if (p->iface) {
		rc = open_live(s, err, errlen);
	} else if (!p->n_files) {
		snprintf(err, errlen, "no input: give -r FILE or -i IFACE");
		rc = -EINVAL;
	} else {
		/* Check every file now; keep the first one open. */
		rc = 0;
		for (size_t i = p->n_files; rc == 0 && i-- > 0;) {
			struct stat sb;
			if (s->pc || s->ng) {
				close_current(s);
				st->files--;
			}
			rc = open_file(s, i, err, errlen);
			if (rc == 0 && stat(p->files[i], &sb) == 0)
				s->total_bytes += (uint64_t)sb.st_size;
		}
	}
	if (rc < 0) {
		src_close(s);
		return NULL;
	}
	return s;
}

static void file_done(struct src *s)
{
	struct stat sb;
	if (stat(s->p.files[s->file_idx], &sb) == 0)
		s->done_bytes += (uint64_t)sb.st_size;
	close_current(s);
}

/* Capture seconds and sub-second units to Unix-epoch ns, saturated. */
static int64_t ts_ns_of(int64_t sec, int64_t sub, int64_t unit_ns)
{
	__int128 ns = (__int128)sec * 1000000000 + (__int128)sub * unit_ns;
	return ns > INT64_MAX ? INT64_MAX : ns < INT64_MIN ? INT64_MIN : (int64_t)ns;
}

/* Next packet of a pcapng file: 1, 0 at its end (the file is done). */
static int next_pcapng(struct src *s, struct src_pkt *out)
{
	struct pcapng_pkt pk;
	for (;;) {
		int rc = pcapng_next(s->ng, &pk);
		if (rc < 0) {
			s->st->truncated_files++;
			SRC_LOG(LOG_WARN, "%s: %s (the rest of the file is skipped)",
				s->p.files[s->file_idx], pcapng_error(s->ng));
		}
		if (rc <= 0) {
			file_done(s);
			return 0;
		}
		if (s->p.filter && *s->p.filter) {
			const struct src_bpf *b = bpf_for(s, pk.linktype);
			struct pcap_pkthdr h = {.caplen = pk.caplen, .len = pk.wirelen};
			if (!b->ok || !pcap_offline_filter(&b->prog, &h, pk.data))
				continue;
		}
		out->ts_ns = pk.ts_ns;
		out->linktype = pk.linktype;
		out->data = pk.data;
		out->caplen = pk.caplen;
		out->wirelen = pk.wirelen;
		s->st->packets++;
		s->st->wire_bytes += pk.wirelen;
		s->st->cap_bytes += pk.caplen;
		return 1;
	}
}

int src_next(struct src *s, struct src_pkt *out, int timeout_ms)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	for (;;) {
		if (s->stop) {
			if (!s->p.iface || s->p.block_ms <= 0 || !s->pc)
				return -ENODATA;
			/* Buffered live capture: read on until the kernel has handed over
			 * the block it was filling when the stop came. */
			int64_t now = clk_mono_ns();
			if (!s->drain_until)
				s->drain_until = now + (2 * (int64_t)s->p.block_ms + 20) * 1000000;
			if (now >= s->drain_until)
				return -ENODATA;
			int left_ms = (int)((s->drain_until - now) / 1000000) + 1;
			if (timeout_ms < 0 || timeout_ms > left_ms)
				timeout_ms = left_ms;
		}
		if (!s->pc && !s->ng) {
			if (s->p.iface || s->file_idx + 1 >= s->p.n_files)
				return -ENODATA;
			if (open_file(s, s->file_idx + 1, s->err, sizeof(s->err)) < 0)
				return -EIO;
		}
		if (s->ng) {
			if (next_pcapng(s, out))
				return 1;
			continue;
		}
		int rc = pcap_next_ex(s->pc, &h, &data);
		if (rc == 1) {
			out->ts_ns = ts_ns_of(h->ts.tv_sec, h->ts.tv_usec, s->nano ? 1 : 1000);
			out->linktype = pcap_datalink(s->pc);
			out->data = data;
			out->caplen = h->caplen;
			out->wirelen = h->len;
			s->st->packets++;
			s->st->wire_bytes += h->len;
			s->st->cap_bytes += h->caplen;
			return 1;
		}
		if (rc == 0) { /* live, nothing buffered */
			struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
			int n = poll(&pfd, 1, timeout_ms);
			if (n <= 0)
				return s->stop && clk_mono_ns() >= s->drain_until ? -ENODATA : 0;
			if (pfd.revents & (POLLERR | POLLNVAL)) {
				snprintf(s->err, sizeof(s->err), "%s: capture descriptor failed",
					 s->p.iface);
				return -EIO;
			}
			continue;
		}
		if (rc == PCAP_ERROR_BREAK) {
			if (s->p.iface)
				return -ENODATA;
			file_done(s);
			continue;
		}
		/* PCAP_ERROR: for files a cut-short record; live: a device error. */
		if (s->p.iface) {
			snprintf(s->err, sizeof(s->err), "%s: %s", s->p.iface, pcap_geterr(s->pc));
			return -EIO;
		}
		s->st->truncated_files++;
		SRC_LOG(LOG_WARN, "%s: %s (the rest of the file is skipped)",
			s->p.files[s->file_idx], pcap_geterr(s->pc));
		file_done(s);
	}
}

void src_update_stats(struct src *s)
{
	struct pcap_stat ps;
	if (!s->p.iface || !s->pc || pcap_stats(s->pc, &ps) < 0)
		return;
	s->st->kernel_received = ps.ps_recv;
	s->st->kernel_drops = ps.ps_drop;
	s->st->iface_drops = ps.ps_ifdrop;
}

void src_break(struct src *s)
{
	s->stop = 1;
}

int src_is_live(const struct src *s)
{
	return s->p.iface != NULL;
}

void src_progress(const struct src *s, uint64_t *done, uint64_t *total)
{
	uint64_t cur = 0;
	if (s->ng) {
		cur = pcapng_offset(s->ng);
	} else if (s->pc && !s->p.iface) {
		FILE *f = pcap_file(s->pc);
		long pos = f ? ftell(f) : -1;
		if (pos > 0)
			cur = (uint64_t)pos;
	}
	*done = s->done_bytes + cur;
	*total = s->total_bytes;
}

const char *src_error(const struct src *s)
{
	return s->err;
}

void src_close(struct src *s)
{
	if (!s)
		return;
	close_current(s);
	mem_free(s->fbuf);
	mem_free(s);
}
