/* SPDX-License-Identifier: MIT */
/*
 * pcapng - pcapng file reader (see pcapng.h).
 *
 * Each block is read whole into one buffer that grows to the largest block
 * seen (at most PCAPNG_MAX_BLOCK), then parsed from it with bounds checks;
 * packets point into the buffer. Interfaces are per section: a Section
 * Header starts a new list.
 *
 * References: draft-ietf-opsawg-pcapng-02 §3.1 (block layout, 32-bit
 * alignment, the repeated total length), §4.1 (Section Header and its
 * byte-order magic), §4.2 (Interface Description and its options),
 * §4.3-4.4 (Enhanced and Simple Packet Blocks), Appendix A (the obsolete
 * Packet Block); Wireshark wiretap/pcapng.c.
 */
#include "capture/pcapng.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/mem.h"

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 0x00000001u
#define BT_PB  0x00000002u
#define BT_SPB 0x00000003u
#define BT_EPB 0x00000006u

#define BYTE_ORDER_MAGIC 0x1A2B3C4Du
#define MAX_IFACES	 4096 /* interfaces per section */

struct pcapng_iface {
	int linktype;
	uint32_t snaplen;
	bool pow2;	/* resolution 2^-res, else 10^-res */
	uint8_t res;	/* if_tsresol exponent */
	int64_t off_ns; /* if_tsoffset in ns */
};

struct pcapng_reader {
	FILE *f;	    /* NULL for memory */
	const uint8_t *mem; /* memory reader */
	size_t mem_len;
	uint64_t off; /* file offset of the next block */
	uint8_t *buf;
	size_t cap;
	bool swap; /* the section is in the other byte order */
	uint32_t section;
	struct pcapng_iface *ifs;
	size_t n_ifs, cap_ifs;
	int64_t last_ts;
	bool done;
	char err[160];
};

static uint32_t rd32(const struct pcapng_reader *r, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return r->swap ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const struct pcapng_reader *r, const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return r->swap ? __builtin_bswap16(v) : v;
}

static uint64_t rd64(const struct pcapng_reader *r, const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return r->swap ? __builtin_bswap64(v) : v;
}

/* Read exactly @p n bytes at the current position into buf + @p at.
 * Returns n, fewer at the end of the input, or -EIO. */
static long read_in(struct pcapng_reader *r, size_t at, size_t n)
{
	if (r->mem) {
		uint64_t left = r->off + at <= r->mem_len ? r->mem_len - (r->off + at) : 0;
		size_t k = n < left ? n : (size_t)left;
		memcpy(r->buf + at, r->mem + r->off + at, k);
		return (long)k;
	}
	size_t k = fread(r->buf + at, 1, n, r->f);
	if (k < n && ferror(r->f))
		return -EIO;
	return (long)k;
}

static int grow(struct pcapng_reader *r, size_t need)
{
	if (need <= r->cap)
		return 0;
	size_t cap = r->cap ? r->cap : 65536;
	while (cap < need)
		cap *= 2;
	uint8_t *b = mem_realloc(r->buf, cap);
	if (!b)
		return -ENOMEM;
	r->buf = b;
	r->cap = cap;
	return 0;
}

static int fail(struct pcapng_reader *r, int rc, const char *what)
{
	snprintf(r->err, sizeof(r->err), "%s at byte %llu", what, (unsigned long long)r->off);
	r->done = true;
	return rc;
}

/*
 * Read the next block into r->buf. Returns its type and sets *len, 0 at a
 * clean end of file, or a negative errno. A Section Header sets the byte
 * order before its length is read.
 */
static int read_block(struct pcapng_reader *r, uint32_t *type, uint32_t *len)
{
	int rc = grow(r, 12);
	if (rc)
		return fail(r, rc, "out of memory");
	long k = read_in(r, 0, 8);
	if (k < 0)
		return fail(r, -EIO, "read error");
	if (k == 0)
		return 0;
	if (k < 8)
		return fail(r, -EPIPE, "file cut inside a block header");
	uint32_t raw;
	memcpy(&raw, r->buf, 4);
	if (raw == BT_SHB) { /* a palindrome: the byte-order magic decides */
		k = read_in(r, 8, 4);
		if (k < 0)
			return fail(r, -EIO, "read error");
		if (k < 4)
			return fail(r, -EPIPE, "file cut inside a section header");
		uint32_t bom;
		memcpy(&bom, r->buf + 8, 4);
		if (bom == BYTE_ORDER_MAGIC)
			r->swap = false;
		else if (bom == __builtin_bswap32(BYTE_ORDER_MAGIC))
			r->swap = true;
		else
			return fail(r, -EBADMSG, "section header with an unknown byte-order magic");
	}
	*type = rd32(r, r->buf);
	*len = rd32(r, r->buf + 4);
	if (*len < 12 || *len % 4 || *len > PCAPNG_MAX_BLOCK)
		return fail(r, -EBADMSG, "block with an impossible length");
	rc = grow(r, *len);
	if (rc)
		return fail(r, rc, "out of memory");
	size_t have = raw == BT_SHB ? 12 : 8;
	k = read_in(r, have, *len - have);
	if (k < 0)
		return fail(r, -EIO, "read error");
	if ((size_t)k < *len - have)
		return fail(r, -EPIPE, "file cut inside a block");
	if (rd32(r, r->buf + *len - 4) != *len)
		return fail(r, -EBADMSG, "block whose two length fields differ");
	return 1;
}

/* Start a section from the Section Header in r->buf. */
static int section_start(struct pcapng_reader *r, uint32_t len)
{
	if (len < 28)
		return fail(r, -EBADMSG, "section header too short");
	if (rd16(r, r->buf + 12) != 1)
		return fail(r, -EBADMSG, "pcapng major version other than 1");
	r->n_ifs = 0;
	if (r->off)
		r->section++;
	return 0;
}

/* Options of an Interface Description: if_tsresol (9) and if_tsoffset (14). */
static void iface_options(struct pcapng_reader *r, struct pcapng_iface *ifc, const uint8_t *p,
			  const uint8_t *end)
{
	while (end - p >= 4) {
		uint16_t code = rd16(r, p), olen = rd16(r, p + 2);
		p += 4;
		if (code == 0 || (size_t)(end - p) < olen)
			return;
		if (code == 9 && olen >= 1) {
			ifc->pow2 = p[0] & 0x80;
			ifc->res = p[0] & 0x7f;
		} else if (code == 14 && olen >= 8) {
			int64_t s = (int64_t)rd64(r, p);
			__int128 ns = (__int128)s * 1000000000;
			ifc->off_ns = ns > INT64_MAX   ? INT64_MAX
				      : ns < INT64_MIN ? INT64_MIN
						       : (int64_t)ns;
		}
		p += (olen + 3u) & ~3u;
	}
}

static int iface_add(struct pcapng_reader *r, uint32_t len)
{
	if (len < 20)
		return fail(r, -EBADMSG, "interface description too short");
	if (r->n_ifs == MAX_IFACES)
		return fail(r, -EBADMSG, "more than 4096 interfaces in a section");
	if (r->n_ifs == r->cap_ifs) {
		size_t nc = r->cap_ifs ? r->cap_ifs * 2 : 4;
		struct pcapng_iface *n = mem_realloc(r->ifs, nc * sizeof(*n));
		if (!n)
			return fail(r, -ENOMEM, "out of memory");
		r->ifs = n;
		r->cap_ifs = nc;
	}
	struct pcapng_iface *ifc = &r->ifs[r->n_ifs++];
	*ifc = (struct pcapng_iface){.linktype = rd16(r, r->buf + 8),
				     .snaplen = rd32(r, r->buf + 12),
				     .res = 6}; /* default: microseconds */
	iface_options(r, ifc, r->buf + 16, r->buf + len - 4);
	return 0;
}

/* Timestamp units of @p ifc to Unix-epoch ns, saturated. */
static int64_t to_ns(const struct pcapng_iface *ifc, uint64_t units)
{
	__int128 ns;
	if (ifc->pow2) {
		ns = ifc->res >= 64 ? 0 : ((__int128)units * 1000000000) >> ifc->res;
	} else if (ifc->res <= 9) {
		__int128 m = 1;
		for (int i = ifc->res; i < 9; i++)
			m *= 10;
		ns = (__int128)units * m;
	} else {
		__int128 d = 1;
		for (int i = 9; i < ifc->res && d < ((__int128)1 << 80); i++)
			d *= 10;
		ns = (__int128)units / d;
	}
	ns += ifc->off_ns;
	return ns > INT64_MAX ? INT64_MAX : ns < INT64_MIN ? INT64_MIN : (int64_t)ns;
}

static int packet(struct pcapng_reader *r, uint32_t type, uint32_t len, struct pcapng_pkt *out)
{
	const uint8_t *b = r->buf;
	uint32_t ifi, caplen, wirelen, hdr;
	uint64_t units = 0;
	if (type == BT_EPB || type == BT_PB) {
		if (len < 32)
			return fail(r, -EBADMSG, "packet block too short");
		ifi = type == BT_EPB ? rd32(r, b + 8) : rd16(r, b + 8);
		units = (uint64_t)rd32(r, b + 12) << 32 | rd32(r, b + 16);
		caplen = rd32(r, b + 20);
		wirelen = rd32(r, b + 24);
		hdr = 28;
	} else { /* SPB */
		if (len < 16)
			return fail(r, -EBADMSG, "simple packet block too short");
		ifi = 0;
		wirelen = rd32(r, b + 8);
		caplen = len - 16;
		hdr = 12;
	}
	if (ifi >= r->n_ifs)
		return fail(r, -EBADMSG, "packet of an interface not described");
	const struct pcapng_iface *ifc = &r->ifs[ifi];
	if (type == BT_SPB) {
		if (caplen > wirelen)
			caplen = wirelen;
		if (ifc->snaplen && caplen > ifc->snaplen)
			caplen = ifc->snaplen;
	} else if (caplen > len - hdr - 4) {
		return fail(r, -EBADMSG, "packet longer than its block");
	}
	out->ts_ns = type == BT_SPB ? r->last_ts : to_ns(ifc, units);
	r->last_ts = out->ts_ns;
	out->linktype = ifc->linktype;
	out->iface = ifi;
	out->section = r->section;
	out->data = b + hdr;
	out->caplen = caplen;
	out->wirelen = wirelen < caplen ? caplen : wirelen;
	return 1;
}

int pcapng_next(struct pcapng_reader *r, struct pcapng_pkt *out)
{
	while (!r->done) {
		uint32_t type = 0, len = 0;
		int rc = read_block(r, &type, &len);
		if (rc <= 0) {
			r->done = true;
			return rc;
		}
		int prc = 0;
		switch (type) {
		case BT_SHB:
			prc = section_start(r, len);
			break;
		case BT_IDB:
			prc = iface_add(r, len);
			break;
		case BT_EPB:
		case BT_PB:
		case BT_SPB:
			prc = packet(r, type, len, out);
			break;
		default:
			break; /* name resolution, statistics, custom...: skipped */
		}
		r->off += len;
		if (prc)
			return prc;
	}
	return 0;
}

static struct pcapng_reader *open_common(struct pcapng_reader *r, char *err, size_t errlen)
{
	uint32_t type = 0, len = 0;
	int rc = read_block(r, &type, &len);
	if (rc == 0)
		rc = fail(r, -EBADMSG, "empty file");
	else if (rc == 1 && type != BT_SHB)
		rc = fail(r, -EBADMSG, "no section header at the start");
	else if (rc == 1)
		rc = section_start(r, len);
	if (rc < 0) {
		snprintf(err, errlen, "not a readable pcapng file: %s", r->err);
		pcapng_close(r);
		return NULL;
	}
	r->off += len;
	return r;
}

struct pcapng_reader *pcapng_open(FILE *f, char *err, size_t errlen)
{
	struct pcapng_reader *r = mem_calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->f = f;
	return open_common(r, err, errlen);
}

struct pcapng_reader *pcapng_open_mem(const void *data, size_t len, char *err, size_t errlen)
{
	struct pcapng_reader *r = mem_calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->mem = data ? data : (const uint8_t *)"";
	r->mem_len = data ? len : 0;
	return open_common(r, err, errlen);
}

uint64_t pcapng_offset(const struct pcapng_reader *r)
{
	return r->off;
}

const char *pcapng_error(const struct pcapng_reader *r)
{
	return r->err;
}

void pcapng_close(struct pcapng_reader *r)
{
	if (!r)
		return;
	mem_free(r->buf);
	mem_free(r->ifs);
	mem_free(r);
}
