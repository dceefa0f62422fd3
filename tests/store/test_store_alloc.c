/* SPDX-License-Identifier: MIT */
/*
 * test_store_alloc - allocation-failure ("torture") test of the store
 * writer and reader (curl's model, common/mem.h): with -Dfault_injection
 * the Nth allocation fails, for every N a full write + read round trip
 * needs. Each failure must give a clean error (NULL with a message,
 * -ENOMEM), never a crash, a leak (ASan builds) or a silent loss such as a
 * clean file reported cut or short. Skips without fault injection.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "store/store.h"
#include "tests/store/store_sample.h"
#include "tests/tap.h"

#define N_REC 40

#ifdef DYETAP_FAULT_INJECTION
/* 1 success, 0 a clean failure, -1 a wrong outcome. */
static int round_trip(const char *path, char *why, size_t whylen)
{
	char err[256];
	struct store_writer_params p = {.path = path, .flush_bytes = 1500};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	if (!w)
		return strstr(err, "out of memory")
			   ? 0
			   : (snprintf(why, whylen, "create: %s", err), -1);
	struct sample x;
	for (uint64_t i = 0; i < N_REC; i++) {
		sample_fill(&x, i);
		int rc = store_writer_add_session(w, &x.s);
		if (rc) {
			store_writer_free(w);
			return rc == -ENOMEM ? 0 : (snprintf(why, whylen, "add: %d", rc), -1);
		}
	}
	int rc = store_writer_close(w, NULL, 0, err, sizeof(err));
	if (rc)
		return rc == -ENOMEM ? 0 : (snprintf(why, whylen, "close: %s", err), -1);

	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r)
		return strstr(err, "out of memory") ? 0
						    : (snprintf(why, whylen, "open: %s", err), -1);
	const struct store_record *rec;
	uint64_t n = 0;
	while ((rc = store_reader_next(r, &rec)) == 1)
		n++;
	const struct store_read_status *st = store_reader_status(r);
	int out;
	if (rc == -ENOMEM)
		out = 0;
	else if (rc == 0 && n == N_REC && !st->cut && !st->damaged_frames && st->has_index)
		out = 1;
	else {
		snprintf(why, whylen, "read: rc %d, %llu records, cut %d, damaged %llu", rc,
			 (unsigned long long)n, st->cut, (unsigned long long)st->damaged_frames);
		out = -1;
	}
	store_reader_free(r);
	return out;
}
#endif

int main(void)
{
#ifndef DYETAP_FAULT_INJECTION
	TAP_SKIP_ALL("needs -Dfault_injection=true");
#else
	char path[] = "/tmp/test_store_alloc.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		printf("Bail out! mkstemp failed\n");
		return 1;
	}
	close(fd);
	log_set_level(LOG_ERROR);
	char why[300];
	mem_fail_at(0);
	int base = round_trip(path, why, sizeof(why));
	uint64_t total = mem_count();
	TAP_OK(base == 1, "round trip without failures (%llu allocations)",
	       (unsigned long long)total);
	int wrong = 0, failed = 0;
	for (uint64_t n = 1; n <= total; n++) {
		mem_fail_at(n);
		int rc = round_trip(path, why, sizeof(why));
		if (rc < 0 && wrong++ < 5)
			printf("# allocation %llu failing: %s\n", (unsigned long long)n, why);
		failed += rc == 0;
	}
	mem_fail_at(0);
	TAP_EQ_U64(wrong, 0, "every failing allocation gives a clean error");
	TAP_OK(failed > 0, "%d of %llu failure points reported out of memory", failed,
	       (unsigned long long)total);
	unlink(path);
	return tap_done();
#endif
}
