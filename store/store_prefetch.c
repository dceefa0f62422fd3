/* SPDX-License-Identifier: MIT */
/*
 * store_prefetch - decompresses the next data frame of a store file on a
 * helper thread while the reader's caller decodes the current one.
 *
 * It is only an accelerator: the helper reads with its own buffers and
 * zstd context, and hands over a frame only when it is a whole zstd frame
 * that decompressed with its content checksum and declared size. Anything
 * else (a skippable frame, damage, a cut, a failed allocation) is simply
 * not handed over, and the reader takes its ordinary path at that offset,
 * which finds and reports the problem exactly as without prefetching.
 *
 * One job is in flight at a time. The caller owns the result buffer once
 * it takes it and gives its previous frame buffer in exchange, so the
 * helper never writes into memory the caller's records point into.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "common/mem.h"
#include "store/store_prefetch_private.h"
#include "store/store_private.h"

struct store_prefetch {
	int fd;
	uint64_t data_end;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy; /* a job is requested and not finished (under mu) */
	bool quit; /* under mu */
	bool have; /* a job was requested since the last take (caller side) */

	/* The job: written by the caller before busy is set, by the helper while busy. */
	uint64_t pos;
	bool ok;
	size_t cs, d;

	ZSTD_DCtx *dctx;
	uint8_t *in;
	size_t in_cap;
	uint8_t *out;
	size_t out_cap;
};

/* pread @p n bytes at @p off into p->in; the number read. */
static size_t read_at(struct store_prefetch *p, uint64_t off, size_t n)
{
	if (n > p->in_cap) {
		uint8_t *b = mem_realloc(p->in, n);
		if (!b)
			return 0;
		p->in = b;
		p->in_cap = n;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(p->fd, p->in + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

/* Decompress the frame at p->pos into p->out: true when it is whole and verified. */
static bool do_job(struct store_prefetch *p)
{
	uint64_t left = p->data_end - p->pos;
	size_t want = left < 65536 ? (size_t)left : 65536, avail, cs;
	for (;;) {
		avail = read_at(p, p->pos, want);
		if (avail < 8 || store_get_le32(p->in) != STORE_MAGIC_ZSTD)
			return false;
		cs = ZSTD_findFrameCompressedSize(p->in, avail);
		if (!ZSTD_isError(cs) || avail < want || want >= left ||
		    want >= STORE_MAX_FRAME_COMPRESSED)
			break;
		want = want * 4 < left ? want * 4 : (size_t)left;
		if (want > STORE_MAX_FRAME_COMPRESSED)
			want = STORE_MAX_FRAME_COMPRESSED;
	}
	if (ZSTD_isError(cs) || cs < 5 || !(p->in[4] & 0x04))
		return false; /* the reader's own path names the problem */
	unsigned long long fcs = ZSTD_getFrameContentSize(p->in, cs);
	if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs == ZSTD_CONTENTSIZE_ERROR ||
	    fcs > STORE_MAX_FRAME_CONTENT)
		return false;
	if (fcs > p->out_cap) {
		size_t cap = p->out_cap ? p->out_cap : 65536;
		while (cap < fcs)
			cap *= 2;
		uint8_t *o = mem_realloc(p->out, cap);
		if (!o)
			return false;
		p->out = o;
		p->out_cap = cap;
	}
	size_t d = ZSTD_decompressDCtx(p->dctx, p->out, (size_t)fcs, p->in, cs);
	if (ZSTD_isError(d) || d != fcs)
		return false;
	p->cs = cs;
	p->d = d;
	return true;
}

static void *pf_main(void *arg)
{
	struct store_prefetch *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->busy && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit)
			break;
		pthread_mutex_unlock(&p->mu);
		bool ok = do_job(p);
		pthread_mutex_lock(&p->mu);
		p->ok = ok;
		p->busy = false;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct store_prefetch *store_prefetch_start(int fd, uint64_t data_end, char *err, size_t errlen)
{
	struct store_prefetch *p = mem_calloc(1, sizeof(*p));
	if (!p || !(p->dctx = ZSTD_createDCtx())) {
		mem_free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->fd = fd;
	p->data_end = data_end;
	int e = pthread_mutex_init(&p->mu, NULL);
	if (!e) {
		e = pthread_cond_init(&p->cv, NULL);
		if (e)
			pthread_mutex_destroy(&p->mu);
	}
	if (!e) {
		e = pthread_create(&p->thread, NULL, pf_main, p);
		if (e) {
			pthread_cond_destroy(&p->cv);
			pthread_mutex_destroy(&p->mu);
		}
	}
	if (e) {
		snprintf(err, errlen, "cannot start the store's prefetch thread: %s", strerror(e));
		ZSTD_freeDCtx(p->dctx);
		mem_free(p);
		return NULL;
	}
	return p;
}

/* Wait until no job is in flight. */
static void wait_idle(struct store_prefetch *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->busy)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void store_prefetch_request(struct store_prefetch *p, uint64_t pos)
{
	wait_idle(p);
	if (pos >= p->data_end) {
		p->have = false;
		return;
	}
	p->pos = pos;
	p->have = true;
	pthread_mutex_lock(&p->mu);
	p->busy = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

bool store_prefetch_take(struct store_prefetch *p, uint64_t pos, uint8_t **buf, size_t *cap,
			 size_t *d, size_t *cs)
{
	if (!p->have)
		return false;
	wait_idle(p);
	p->have = false;
	if (p->pos != pos || !p->ok)
		return false;
	uint8_t *b = *buf;
	size_t c = *cap;
	*buf = p->out;
	*cap = p->out_cap;
	p->out = b;
	p->out_cap = c;
	*d = p->d;
	*cs = p->cs;
	return true;
}

void store_prefetch_stop(struct store_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	ZSTD_freeDCtx(p->dctx);
	mem_free(p->in);
	mem_free(p->out);
	mem_free(p);
}
