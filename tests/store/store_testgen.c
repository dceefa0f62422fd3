/* SPDX-License-Identifier: MIT */
/*
 * store_testgen - writes store files for the store tests:
 *
 *   store_testgen crash FILE      write sessions, flushing every 10, print
 *                                 "flushed N" after each flush; after 55
 *                                 sessions print "pending 55" and wait to
 *                                 be killed (the SIGKILL test)
 *   store_testgen stream FILE     write sessions forever, flushing every 7
 *                                 and printing "flushed N" (killed at a
 *                                 random moment)
 *   store_testgen sample FILE     a small known recording plus results, for
 *                                 the `dyetap info` / `dyetap cat` tests
 *   store_testgen unordered FILE  a results file whose sessions 0..11 come in
 *                                 the order a concurrent replay finished them
 *                                 (3, 0, 1, 2, 7, 4, ...), each followed by its
 *                                 candidate result
 *   store_testgen corpus DIR      the reader fuzz seed corpus: valid, cut,
 *                                 damaged and unfinished files
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/store/store_sample.h"

static struct store_writer *open_writer_kind(const char *path, size_t flush_bytes, const char *kind)
{
	static const char *const rules[] = {"blue: header x-lane=blue",
					    "green: header x-lane=green"};
	struct store_meta meta = {.kind = kind,
				  .source = "pcap:sample.pcap",
				  .filter = "tcp port 8080",
				  .rules = rules,
				  .n_rules = 2,
				  .host = "testhost",
				  .start_ns = SAMPLE_T0};
	struct store_writer_params p = {
	    .path = path, .flush_bytes = flush_bytes, .flush_ms = 60000, .meta = &meta};
	char err[256];
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	if (!w)
		fprintf(stderr, "store_testgen: %s\n", err);
	return w;
}

static struct store_writer *open_writer(const char *path, size_t flush_bytes)
{
	return open_writer_kind(path, flush_bytes, "recording");
}

static int crash(const char *path, int forever)
{
	struct store_writer *w = open_writer(path, 1 << 20);
	if (!w)
		return 1;
	struct sample x;
	int every = forever ? 7 : 10;
	for (uint64_t i = 0;; i++) {
		sample_fill(&x, i);
		if (store_writer_add_session(w, &x.s) != 0)
			return 1;
		if ((i + 1) % (uint64_t)every == 0) {
			if (store_writer_flush(w) != 0)
				return 1;
			printf("flushed %llu\n", (unsigned long long)(i + 1));
			fflush(stdout);
		}
		if (forever && i > 500000)
			return 0; /* never outlive a test that forgot to kill us */
		if (!forever && i + 1 == 55) {
			printf("pending 55\n");
			fflush(stdout);
			for (;;)
				pause();
		}
	}
}

static int sample(const char *path)
{
	struct store_writer *w = open_writer(path, 1500);
	if (!w)
		return 1;
	struct sample x;
	int rc = 0;
	for (uint64_t i = 0; i < 20; i++) {
		sample_fill(&x, i);
		rc |= store_writer_add_session(w, &x.s);
	}
	for (uint64_t i = 0; i < 20; i += 4) {
		sample_fill_result(&x, i);
		rc |= store_writer_add_result(w, &x.r);
	}
	struct store_counter ctr[] = {{"packets", 4242}, {"tcp_gaps", 3}};
	char err[256];
	rc |= store_writer_close(w, ctr, 2, err, sizeof(err));
	return rc ? 1 : 0;
}

/* Sessions out of id order, as `replay -o` writes them (docs/format.md §2). */
static int unordered(const char *path)
{
	struct store_writer *w = open_writer_kind(path, 1500, "results");
	if (!w)
		return 1;
	static const uint64_t order[] = {3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10};
	struct sample x;
	int rc = 0;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		sample_fill(&x, order[k]);
		rc |= store_writer_add_session(w, &x.s);
		sample_fill_result(&x, order[k]);
		x.r.role = sample_cs("candidate");
		x.r.error = STORE_ERR_NONE;
		x.r.error_msg = sample_cs("");
		x.r.resp = x.s.resp;
		x.r.resp.present = true;
		rc |= store_writer_add_result(w, &x.r);
	}
	char err[256];
	rc |= store_writer_close(w, NULL, 0, err, sizeof(err));
	return rc ? 1 : 0;
}

static int copy_part(const char *src, const char *dst, long len, long flip_at)
{
	FILE *f = fopen(src, "rb");
	if (!f)
		return 1;
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (len < 0 || (size_t)len > n)
		len = (long)n;
	if (flip_at >= 0 && flip_at < len)
		buf[flip_at] ^= 0x10;
	f = fopen(dst, "wb");
	if (!f)
		return 1;
	fwrite(buf, 1, (size_t)len, f);
	return fclose(f) != 0;
}

static int corpus(const char *dir)
{
	char full[512], p[512];
	snprintf(full, sizeof(full), "%s/valid.dyt", dir);
	struct store_writer *w = open_writer(full, 400);
	if (!w)
		return 1;
	struct sample x;
	for (uint64_t i = 0; i < 8; i++) {
		sample_fill(&x, i);
		store_writer_add_session(w, &x.s);
	}
	sample_fill_result(&x, 2);
	store_writer_add_result(w, &x.r);
	char err[256];
	struct store_counter ctr[] = {{"packets", 10}};
	if (store_writer_close(w, ctr, 1, err, sizeof(err)) != 0)
		return 1;
	FILE *f = fopen(full, "rb");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	int rc = 0;
	snprintf(p, sizeof(p), "%s/cut-in-data.dyt", dir);
	rc |= copy_part(full, p, n * 2 / 3, -1);
	snprintf(p, sizeof(p), "%s/cut-in-index.dyt", dir);
	rc |= copy_part(full, p, n - 10, -1);
	snprintf(p, sizeof(p), "%s/cut-in-header.dyt", dir);
	rc |= copy_part(full, p, 30, -1);
	snprintf(p, sizeof(p), "%s/flip-data.dyt", dir);
	rc |= copy_part(full, p, -1, n / 2);
	snprintf(p, sizeof(p), "%s/flip-index.dyt", dir);
	rc |= copy_part(full, p, -1, n - 30);
	snprintf(p, sizeof(p), "%s/flip-header.dyt", dir);
	rc |= copy_part(full, p, -1, 20);

	snprintf(p, sizeof(p), "%s/unfinished.dyt", dir);
	w = open_writer(p, 300);
	if (!w)
		return 1;
	for (uint64_t i = 0; i < 6; i++) {
		sample_fill(&x, i + 100);
		store_writer_add_session(w, &x.s);
	}
	store_writer_flush(w);
	store_writer_free(w);
	/* What a crashed writer leaves is PATH.partial; a user copies it out. */
	char part[600];
	snprintf(part, sizeof(part), "%s%s", p, STORE_PARTIAL_SUFFIX);
	rc |= rename(part, p) != 0;
	snprintf(p, sizeof(p), "%s/crashed.dyt", dir);
	w = open_writer(p, 300);
	if (!w)
		return 1;
	for (uint64_t i = 0; i < 4; i++) {
		sample_fill(&x, i + 200);
		store_writer_add_session(w, &x.s);
	}
	store_writer_flush(w);
	store_writer_free(w); /* leaves crashed.dyt.partial, no crashed.dyt */
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: store_testgen crash|stream|sample|unordered|corpus PATH\n");
		return 2;
	}
	if (!strcmp(argv[1], "crash"))
		return crash(argv[2], 0);
	if (!strcmp(argv[1], "stream"))
		return crash(argv[2], 1);
	if (!strcmp(argv[1], "sample"))
		return sample(argv[2]);
	if (!strcmp(argv[1], "unordered"))
		return unordered(argv[2]);
	if (!strcmp(argv[1], "corpus"))
		return corpus(argv[2]);
	fprintf(stderr, "store_testgen: unknown mode %s\n", argv[1]);
	return 2;
}
