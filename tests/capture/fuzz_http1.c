/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http1 - libFuzzer target for the HTTP/1.x parser (capture/http1.h).
 *
 * Input: byte 0 chooses the parser (bit 0: request/response), the method
 * the response answers (bits 1-2: other, HEAD, CONNECT) and the largest
 * piece size (bits 3-7); byte 1 seeds the split points; the rest is the
 * stream; about one piece in 16 is dropped as a capture gap
 * (http1_gap; a chunked body that cannot bridge it goes on at the next
 * bytes half the time, http1_chunk_resume). Checks the invariants a caller relies on: never
 * consumed beyond the input, stored body within the cap and within body_len, slices inside their
 * message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_http1_check(struct http1_parser *p)
{
	const struct store_message *m = http1_message(p);
	if (m->body.len > 256 || m->body.len > m->body_len)
		abort();
	if (m->truncated != (m->body_len > m->body.len))
		abort();
	size_t sum = m->method.len + m->target.len + m->reason.len;
	for (size_t i = 0; i < m->n_headers; i++)
		sum += m->headers[i].name.len + m->headers[i].value.len;
	if (sum > 512)
		abort();
	/* Touch every byte so ASan sees a bad slice. */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < m->n_headers; i++) {
		for (size_t k = 0; k < m->headers[i].name.len; k++)
			x ^= m->headers[i].name.ptr[k];
		for (size_t k = 0; k < m->headers[i].value.len; k++)
			x ^= m->headers[i].value.ptr[k];
	}
	for (size_t k = 0; k < m->body.len; k++)
		x ^= m->body.ptr[k];
	size_t nt = 0;
	const struct store_header *t = http1_message_trailers(p, &nt);
	for (size_t i = 0; i < nt; i++)
		for (size_t k = 0; k < t[i].value.len; k++)
			x ^= t[i].value.ptr[k];
	(void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	uint32_t seed = data[1] * 2654435761u + 1;
	data += 2;
	size -= 2;
	struct http1_params prm = {
	    .type = (mode & 1) ? HTTP1_RESPONSE : HTTP1_REQUEST,
	    .max_header_bytes = 512,
	    .max_body = 256,
	};
	struct http1_parser *p = http1_parser_create(&prm);
	if (!p)
		return 0;
	static const struct store_slice methods[3] = {
	    {(const uint8_t *)"GET", 3},
	    {(const uint8_t *)"HEAD", 4},
	    {(const uint8_t *)"CONNECT", 7},
	};
	unsigned m = (mode >> 1) & 3;
	size_t max_piece = 1 + (size_t)(mode >> 3) * 8;
	size_t off = 0;
	while (off < size) {
		if (prm.type == HTTP1_RESPONSE)
			http1_expect_response_to(p, &methods[m % 3]);
		seed = seed * 1103515245u + 12345u;
		size_t step = 1 + (seed >> 8) % max_piece;
		if (step > size - off)
			step = size - off;
		if ((seed >> 24) % 16 == 0) {
			/* A capture gap of this piece: bridged or refused. */
			enum http1_status gs = http1_gap(p, step);
			if (gs == HTTP1_COMPLETE) {
				fuzz_http1_check(p);
				http1_next(p);
			} else if (gs == HTTP1_ERROR && http1_in_chunked_body(p) &&
				   (seed >> 20) & 1) {
				/* Go on at the next bytes as a chunk-size line. */
				http1_body_lost(p);
				if (http1_chunk_resume(p) != 0)
					http1_reset(p);
			} else if (gs == HTTP1_ERROR) {
				http1_reset(p);
			}
			off += step;
			continue;
		}
		size_t used = 0;
		enum http1_status st = http1_feed(p, data + off, step, &used);
		if (used > step)
			abort();
		off += used;
		if (st == HTTP1_COMPLETE || st == HTTP1_TUNNEL) {
			fuzz_http1_check(p);
			http1_next(p);
		} else if (st == HTTP1_ERROR) {
			fuzz_http1_check(p);
			http1_reset(p);
			off++;
		} else if (used != step) {
			abort();
		}
	}
	http1_finish(p);
	fuzz_http1_check(p);
	http1_parser_free(p);
	return 0;
}
