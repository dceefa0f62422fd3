/* SPDX-License-Identifier: MIT */
/*
 * diff_decode - undo Content-Encoding before comparing bodies (RFC 9110
 * §8.4): gzip (RFC 1952) and deflate (RFC 1950 zlib wrapper, or raw
 * RFC 1951 as some servers send) with zlib, br (RFC 7932) with
 * libbrotlidec, zstd (RFC 8878) with libzstd. Output is bounded by the
 * output buffer's cap: a decompression bomb stops at -E2BIG.
 */
#include <errno.h>
#include <string.h>

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include "analysis/diff_private.h"

#define CHUNK 16384

static int grow_out(struct dbuf *out, uint8_t **p, size_t *avail)
{
	int rc = dbuf_reserve(out, CHUNK);
	if (rc == -E2BIG) {
		/* take what is left below the cap; none left means over the cap */
		size_t left = out->max - out->len;
		if (!left)
			return -E2BIG;
		rc = dbuf_reserve(out, left);
		if (rc)
			return rc;
		*p = out->data + out->len;
		*avail = left;
		return 0;
	}
	if (rc)
		return rc;
	*p = out->data + out->len;
	*avail = CHUNK;
	return 0;
}

static int inflate_to(const uint8_t *in, size_t n, struct dbuf *out, int wbits)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, wbits) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	int rc = 0;
	size_t left_in = n;
	for (;;) {
		uint8_t *p;
		size_t avail;
		rc = grow_out(out, &p, &avail);
		if (rc)
			break;
		if (avail > UINT32_MAX)
			avail = UINT32_MAX;
		uInt feed = left_in > UINT32_MAX ? UINT32_MAX : (uInt)left_in;
		z.avail_in = feed;
		z.next_out = p;
		z.avail_out = (uInt)avail;
		int zr = inflate(&z, Z_NO_FLUSH);
		left_in -= feed - z.avail_in;
		out->len += avail - z.avail_out;
		if (zr == Z_STREAM_END) {
			rc = 0;
			break;
		}
		if (zr == Z_BUF_ERROR && left_in == 0 && z.avail_out != 0) {
			rc = -EBADMSG; /* input ended early */
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			rc = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
	}
	inflateEnd(&z);
	if (out->data)
		out->data[out->len] = '\0';
	return rc;
}

static int brotli_to(const uint8_t *in, size_t n, struct dbuf *out)
{
	BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	if (!s)
		return -ENOMEM;
	size_t avail_in = n;
	const uint8_t *next_in = in;
	int rc = 0;
	for (;;) {
		uint8_t *p;
		size_t avail;
		rc = grow_out(out, &p, &avail);
		if (rc)
			break;
		size_t avail_out = avail;
		BrotliDecoderResult r =
		    BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &p, NULL);
		out->len += avail - avail_out;
		if (r == BROTLI_DECODER_RESULT_SUCCESS) {
			rc = 0;
			break;
		}
		if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
			continue;
		rc = -EBADMSG; /* error or input ended early */
		break;
	}
	BrotliDecoderDestroyInstance(s);
	if (out->data)
		out->data[out->len] = '\0';
	return rc;
}

static int zstd_to(const uint8_t *in, size_t n, struct dbuf *out)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	if (!z)
		return -ENOMEM;
	/* RFC 8878 §3: HTTP decoders may limit the window to 8 MiB */
	ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, 23);
	ZSTD_inBuffer ib = {in, n, 0};
	int rc = 0;
	size_t last = 1;
	for (;;) {
		uint8_t *p;
		size_t avail;
		if (ib.pos == ib.size && last == 0)
			break;
		rc = grow_out(out, &p, &avail);
		if (rc)
			break;
		ZSTD_outBuffer ob = {p, avail, 0};
		last = ZSTD_decompressStream(z, &ob, &ib);
		out->len += ob.pos;
		if (ZSTD_isError(last)) {
			rc = -EBADMSG;
			break;
		}
		if (ib.pos == ib.size && last != 0 && ob.pos < ob.size) {
			rc = -EBADMSG; /* truncated frame */
			break;
		}
	}
	ZSTD_freeDCtx(z);
	if (out->data)
		out->data[out->len] = '\0';
	return rc;
}

static int decode_one(const char *name, size_t nlen, const uint8_t *in, size_t n, struct dbuf *out)
{
#define IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(name, lit, nlen) == 0)
	dbuf_reset(out);
	if (IS("gzip") || IS("x-gzip"))
		return inflate_to(in, n, out, 15 + 16);
	if (IS("deflate")) {
		int rc = inflate_to(in, n, out, 15);
		if (rc == -EBADMSG) {
			dbuf_reset(out);
			rc = inflate_to(in, n, out, -15);
		}
		return rc;
	}
	if (IS("br"))
		return brotli_to(in, n, out);
	if (IS("zstd"))
		return zstd_to(in, n, out);
	if (IS("identity")) {
		return dbuf_append(out, in, n);
	}
	return -ENOTSUP;
#undef IS
}

int diff_decode(const char *enc, size_t enclen, const uint8_t *in, size_t n, struct dbuf *out,
		struct dbuf *tmp)
{
	/* tokens of the list, applied left to right, so decode right to left */
	const char *tok[8];
	size_t toklen[8];
	size_t nt = 0;
	size_t i = 0;
	while (i < enclen) {
		while (i < enclen && (enc[i] == ' ' || enc[i] == '\t' || enc[i] == ','))
			i++;
		size_t s = i;
		while (i < enclen && enc[i] != ',' && enc[i] != ' ' && enc[i] != '\t')
			i++;
		if (i > s) {
			if (nt == 8)
				return -ENOTSUP;
			tok[nt] = enc + s;
			toklen[nt] = i - s;
			nt++;
		}
	}
	dbuf_reset(out);
	if (nt == 0)
		return dbuf_append(out, in, n);
	const uint8_t *src = in;
	size_t srclen = n;
	for (size_t k = nt; k-- > 0;) {
		/* alternate buffers: the last step must land in out */
		struct dbuf *dst = ((nt - 1 - k) % 2 == (nt - 1) % 2) ? out : tmp;
		int rc = decode_one(tok[k], toklen[k], src, srclen, dst);
		if (rc)
			return rc;
		src = dst->data ? dst->data : (const uint8_t *)"";
		srclen = dst->len;
	}
	return 0;
}
