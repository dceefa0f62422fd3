/* SPDX-License-Identifier: MIT */
/*
 * fuzz_har - libFuzzer target for the HAR reader (interop/iop_private.h
 * har_read) and the whole HAR and GoReplay input path.
 *
 * The input is parsed as a HAR document; every exchange must hold a
 * request whose bytes start with its method and contain no bare line
 * break before the header block ends (an entry with CR or LF in a field
 * must have been refused). Then the same bytes are written to a file and
 * read through the packet source (interop/iop.h) into a capture pipeline,
 * as `dyetap record -r` does, so the framing of the messages made, the
 * packets and the pipeline are exercised too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/pipeline.h"
#include "interop/iop.h"
#include "interop/iop_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *ctx, const struct store_session *s)
{
	(void)ctx;
	if (s->req.body.len > s->req.body_len || s->resp.body.len > s->resp.body_len)
		abort();
	return 0;
}

static void check(const struct har_doc *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct iop_xchg *x = &d->x[i];
		if (!x->req || !x->req_len || (x->has_resp && !x->resp))
			abort();
		const uint8_t *end = memmem(x->req, x->req_len, "\r\n\r\n", 4);
		if (!end)
			abort();
		for (const uint8_t *p = x->req; p < end; p++)
			if ((*p == '\n' && (p == x->req || p[-1] != '\r')) || *p == 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iop_stats st;
	memset(&st, 0, sizeof(st));
	struct har_doc d;
	char err[256];
	if (har_read(data, size, &d, &st, err, sizeof(err)) == 0) {
		check(&d);
		har_doc_release(&d);
	}
	char path[] = "/tmp/fuzz_har_XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	struct pipe_params pp = {.sink = sink, .max_body = 1024, .max_flows = 64};
	struct pipe *pipe = pipe_create(&pp);
	const char *files[1] = {path};
	struct src_params sp = {.files = files, .n_files = 1};
	struct src_stats ss;
	memset(&ss, 0, sizeof(ss));
	struct iop_src *s = pipe ? iop_src_open(&sp, &ss, &st, err, sizeof(err)) : NULL;
	struct src_pkt pkt;
	while (s && iop_src_next(s, &pkt) == 1)
		pipe_packet(pipe, pkt.ts_ns, pkt.linktype, pkt.data, pkt.caplen, pkt.wirelen);
	if (pipe)
		pipe_finish(pipe);
	iop_src_close(s);
	pipe_free(pipe);
	unlink(path);
	return 0;
}
