/* SPDX-License-Identifier: MIT */
/*
 * source - pcap files and live interfaces through libpcap (see source.h).
 *
 * Files: pcap_open_offline_with_tstamp_precision() reads pcap and pcapng
 * alike; every path is opened once up front so a typo fails before any
 * work is done. Live: the handle is activated in immediate mode, or with a
 * block timeout (src_params.block_ms: TPACKET_V3 blocks, which hold far
 * more packets in the same buffer), and set non-blocking; src_next() polls
 * its selectable descriptor. A stop drains what the kernel took before it.
 *
 * References: pcap_create(3PCAP), pcap_activate(3PCAP) for the error codes
 * mapped to user messages, pcap_next_ex(3PCAP), pcap_stats(3PCAP).
 */
#include "capture/source.h"

#include <errno.h>
#include <poll.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#define SRC_LOG(lvl, ...) LOG_MSG(lvl, "source", __VA_ARGS__)

struct src {
	struct src_params p;
	struct src_stats *st;
	pcap_t *pc;
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

static int open_file(struct src *s, size_t i, char *err, size_t errlen)
{
	char eb[PCAP_ERRBUF_SIZE] = "";
	const char *path = s->p.files[i];
	FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : NULL;
	if (fp) {
		if (!s->fbuf)
			s->fbuf = mem_alloc(FILE_BUF);
		if (s->fbuf)
			setvbuf(fp, s->fbuf, _IOFBF, FILE_BUF);
		s->pc =
		    pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, eb);
		if (!s->pc)
			fclose(fp); /* not closed by libpcap when it fails */
	} else if (!strcmp(path, "-")) {
		s->pc =
		    pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, eb);
	} else {
		snprintf(eb, sizeof(eb), "%s", strerror(errno));
	}
	if (!s->pc) {
		struct stat sb;
		if (stat(path, &sb) != 0)
			snprintf(err, errlen, "%s: %s (check the path given to -r)", path,
				 strerror(errno));
		else
			snprintf(err, errlen, "%s: not a readable pcap or pcapng file: %s", path,
				 eb);
		return -ENOENT;
	}
	s->nano = pcap_get_tstamp_precision(s->pc) == PCAP_TSTAMP_PRECISION_NANO;
	s->file_idx = i;
	s->st->files++;
	int rc = apply_filter(s, path, err, errlen);
	if (rc < 0) {
		pcap_close(s->pc);
		s->pc = NULL;
	}
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
			if (s->pc) {
				pcap_close(s->pc);
				s->pc = NULL;
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
	pcap_close(s->pc);
	s->pc = NULL;
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
		if (!s->pc) {
			if (s->p.iface || s->file_idx + 1 >= s->p.n_files)
				return -ENODATA;
			if (open_file(s, s->file_idx + 1, s->err, sizeof(s->err)) < 0)
				return -EIO;
		}
		int rc = pcap_next_ex(s->pc, &h, &data);
		if (rc == 1) {
			out->ts_ns = (int64_t)h->ts.tv_sec * 1000000000LL +
				     (int64_t)h->ts.tv_usec * (s->nano ? 1 : 1000);
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
	if (s->pc && !s->p.iface) {
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
	if (s->pc)
		pcap_close(s->pc);
	mem_free(s->fbuf);
	mem_free(s);
}
