/* SPDX-License-Identifier: MIT */
/*
 * gor - GoReplay file reader (see gor.h).
 *
 * The file is read in 64 KiB blocks into one buffer that holds at most a
 * payload and a block; the separator is searched only in bytes not yet
 * searched, so a file costs linear time whatever its payloads look like.
 * A payload longer than the cap is skipped without being kept.
 */
#include "interop/gor.h"

#include <errno.h>
#include <string.h>

#include "common/mem.h"

#define GOR_BLOCK (64u << 10)

struct gor_reader {
	FILE *f;
	size_t max_payload;
	uint8_t *buf;
	size_t cap;
	size_t start; /* first byte of the current payload */
	size_t len;   /* bytes in buf */
	size_t scan;  /* the separator is not in [start, scan) */
	bool eof;
	bool skipping; /* inside a payload over the cap */
	uint64_t consumed;
	char id[GOR_MAX_ID + 1];
};

struct gor_reader *gor_open(FILE *f, size_t max_payload)
{
	struct gor_reader *r = mem_calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->f = f;
	r->max_payload = max_payload ? max_payload : (64u << 20);
	return r;
}

void gor_close(struct gor_reader *r)
{
	if (!r)
		return;
	mem_free(r->buf);
	mem_free(r);
}

uint64_t gor_offset(const struct gor_reader *r)
{
	return r->consumed;
}

/* Read a block; 0, or -EIO / -ENOMEM. */
static int fill(struct gor_reader *r)
{
	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->scan -= r->start;
		r->start = 0;
	}
	if (r->cap - r->len < GOR_BLOCK) {
		size_t want = r->len + GOR_BLOCK;
		uint8_t *nb = mem_realloc(r->buf, want);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = want;
	}
	size_t got = fread(r->buf + r->len, 1, GOR_BLOCK, r->f);
	if (got == 0) {
		if (ferror(r->f))
			return -EIO;
		r->eof = true;
	}
	r->len += got;
	return 0;
}

static bool parse_i64(const char *s, size_t n, int64_t *out)
{
	bool neg = n && s[0] == '-';
	size_t i = neg;
	if (i == n || n - i > 19)
		return false;
	int64_t v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

/* Split the header line of @p p[0..n): 1 and @p out filled, or 0 when bad. */
static int header(struct gor_reader *r, const uint8_t *p, size_t n, struct gor_payload *out)
{
	size_t lim = n < GOR_MAX_LINE ? n : GOR_MAX_LINE;
	const uint8_t *nl = memchr(p, '\n', lim);
	if (!nl)
		return 0;
	size_t ll = (size_t)(nl - p);
	if (ll && p[ll - 1] == '\r')
		ll--;
	const char *f[4];
	size_t fl[4], nf = 0, i = 0;
	while (i < ll && nf < 4) {
		while (i < ll && p[i] == ' ')
			i++;
		if (i == ll)
			break;
		f[nf] = (const char *)p + i;
		while (i < ll && p[i] != ' ')
			i++;
		fl[nf] = (size_t)((const char *)p + i - f[nf]);
		nf++;
	}
	if (nf < 3 || fl[0] != 1 || f[0][0] < '1' || f[0][0] > '3' || fl[1] > GOR_MAX_ID)
		return 0;
	for (size_t k = 0; k < fl[1]; k++)
		if ((uint8_t)f[1][k] < 0x21 || (uint8_t)f[1][k] > 0x7e)
			return 0; /* ids are printable (hex in practice): no NUL in the table's keys
				   */
	if (!parse_i64(f[2], fl[2], &out->ts_ns) || out->ts_ns < 0)
		return 0;
	out->latency_ns = -1;
	if (nf > 3 && !parse_i64(f[3], fl[3], &out->latency_ns))
		return 0;
	out->type = f[0][0] - '0';
	memcpy(r->id, f[1], fl[1]);
	r->id[fl[1]] = 0;
	out->id = r->id;
	out->id_len = fl[1];
	out->data = nl + 1;
	out->len = n - (size_t)(nl + 1 - p);
	return 1;
}

int gor_next(struct gor_reader *r, struct gor_payload *out)
{
	for (;;) {
		size_t from = r->scan > r->start ? r->scan : r->start;
		uint8_t *sep = NULL;
		if (r->len > from)
			sep =
			    memmem(r->buf + from, r->len - from, GOR_SEPARATOR, GOR_SEPARATOR_LEN);
		size_t end; /* payload end */
		bool cut = false;
		if (sep) {
			end = (size_t)(sep - r->buf);
		} else if (r->eof) {
			if (r->start >= r->len)
				return 0;
			end = r->len;
			cut = true;
		} else {
			r->scan = r->len >= GOR_SEPARATOR_LEN ? r->len - GOR_SEPARATOR_LEN + 1 : 0;
			if (r->len - r->start > r->max_payload + GOR_MAX_LINE) {
				/* over the cap: drop what was read, keep a possible separator start
				 */
				size_t keep = GOR_SEPARATOR_LEN - 1;
				size_t drop = r->len - r->start - keep;
				r->consumed += drop;
				r->start += drop;
				r->scan = r->start;
				r->skipping = true;
			}
			int rc = fill(r);
			if (rc < 0)
				return rc;
			continue;
		}
		size_t next = sep ? end + GOR_SEPARATOR_LEN : r->len;
		const uint8_t *p = r->buf + r->start;
		size_t n = end - r->start;
		r->consumed += next - r->start;
		r->start = next;
		r->scan = next;
		if (r->skipping) {
			r->skipping = false;
			return -E2BIG;
		}
		if (n == 0 && !sep)
			return 0;
		if (!header(r, p, n, out))
			return -EBADMSG;
		out->cut = cut;
		return 1;
	}
}

bool gor_sniff(const uint8_t *b, size_t n)
{
	if (n < 6 || b[0] < '1' || b[0] > '3' || b[1] != ' ')
		return false;
	size_t i = 2, id = 0;
	while (i < n && b[i] != ' ') {
		uint8_t c = b[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
		i++;
		id++;
	}
	if (i == n || !id)
		return false;
	size_t d = 0;
	for (i++; i < n && b[i] >= '0' && b[i] <= '9'; i++)
		d++;
	return d > 0 && (i == n || b[i] == ' ' || b[i] == '\n' || b[i] == '\r');
}
