/* SPDX-License-Identifier: MIT */
/*
 * mem - fault injection state for the allocation wrapper (see mem.h).
 * Compiled to nothing useful unless -Dfault_injection=true.
 */
#include "common/mem.h"

#ifdef DYETAP_FAULT_INJECTION
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static _Atomic uint64_t mem_calls;
static _Atomic uint64_t mem_fail_n;
static atomic_int mem_env_read;

static const char *mem_count_file;

/* Test hook: write the run's allocation count where tests/torture.sh asks. */
static void mem_write_count(void)
{
	FILE *f = fopen(mem_count_file, "w");
	if (f) {
		fprintf(f, "%llu\n", (unsigned long long)atomic_load(&mem_calls));
		fclose(f);
	}
}

static void mem_read_env(void)
{
	mem_count_file = getenv("DYETAP_ALLOC_COUNT_FILE");
	if (mem_count_file && *mem_count_file)
		atexit(mem_write_count);
	const char *s = getenv("DYETAP_FAIL_ALLOC");
	if (s && *s) {
		char *end;
		unsigned long long v = strtoull(s, &end, 10);
		if (*end == '\0')
			atomic_store(&mem_fail_n, (uint64_t)v);
	}
}

int mem_should_fail(void)
{
	if (!atomic_exchange(&mem_env_read, 1))
		mem_read_env();
	uint64_t n = atomic_fetch_add(&mem_calls, 1) + 1;
	uint64_t f = atomic_load(&mem_fail_n);
	return f != 0 && n == f;
}

void mem_fail_at(uint64_t n)
{
	atomic_store(&mem_env_read, 1);
	atomic_store(&mem_calls, 0);
	atomic_store(&mem_fail_n, n);
}

uint64_t mem_count(void)
{
	return atomic_load(&mem_calls);
}
#else
/* Keep the translation unit non-empty under -Wpedantic. */
typedef int mem_unused_t;
#endif
