/* SPDX-License-Identifier: MIT */
/*
 * mem - the one allocation wrapper of dyetap.
 *
 * Every allocation in the tree goes through these functions so that a build
 * with -Dfault_injection=true can make the Nth allocation fail (curl's
 * "torture" model): tests then walk N over every allocation of a run and
 * prove that each failure gives a clear error, no crash and no leak.
 *
 * Without fault injection the functions are thin inline calls to libc.
 */
#ifndef DYETAP_COMMON_MEM_H
#define DYETAP_COMMON_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef DYETAP_FAULT_INJECTION
/** Returns true when the current allocation must fail (counts every call). */
int mem_should_fail(void);
/**
 * Make the @p n-th allocation from now fail (1 = the next one); 0 disables.
 * The environment variable DYETAP_FAIL_ALLOC=N does the same at start-up;
 * DYETAP_ALLOC_COUNT_FILE=PATH writes mem_count() to PATH at exit (for
 * tests/torture.sh, which walks N from 1 to that count).
 */
void mem_fail_at(uint64_t n);
/** Number of allocations made since start-up or the last mem_fail_at(). */
uint64_t mem_count(void);
#else
static inline int mem_should_fail(void)
{
	return 0;
}
#endif

/** malloc(); returns NULL on failure. Free with mem_free(). */
static inline void *mem_alloc(size_t n)
{
	return mem_should_fail() ? NULL : malloc(n);
}

/** calloc(); returns NULL on failure or overflow. */
static inline void *mem_calloc(size_t nmemb, size_t size)
{
	return mem_should_fail() ? NULL : calloc(nmemb, size);
}

/** realloc(); on failure returns NULL and leaves @p p untouched. */
static inline void *mem_realloc(void *p, size_t n)
{
	return mem_should_fail() ? NULL : realloc(p, n);
}

/** free(); accepts NULL. */
static inline void mem_free(void *p)
{
	free(p);
}

/** Copy of @p len bytes of @p s plus a terminating NUL; NULL on failure. */
static inline char *mem_strndup(const char *s, size_t len)
{
	char *d = (char *)mem_alloc(len + 1);
	if (d) {
		if (len)
			memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/** Copy of a NUL-terminated string; NULL on failure. */
static inline char *mem_strdup(const char *s)
{
	return mem_strndup(s, strlen(s));
}

#endif
