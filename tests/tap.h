/* SPDX-License-Identifier: MIT */
/*
 * tap - a tiny TAP (Test Anything Protocol, version 13) harness for unit
 * tests. meson runs the tests with protocol 'tap' and counts every "ok"
 * and "not ok" line, so a failed assertion is visible by name.
 *
 *     TAP_OK(x == 1, "x is one");
 *     TAP_EQ_U64(got, 42, "count");
 *     return tap_done();
 */
#ifndef DYETAP_TESTS_TAP_H
#define DYETAP_TESTS_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap_n;
static int tap_failed;

static inline int tap_check(int ok, const char *file, int line, const char *what)
{
	tap_n++;
	if (!ok)
		tap_failed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", tap_n, what);
	if (!ok)
		printf("# failed at %s:%d\n", file, line);
	fflush(stdout);
	return ok;
}

#define TAP_OK(cond, ...)                                                                          \
	do {                                                                                       \
		char tap_msg_[256];                                                                \
		snprintf(tap_msg_, sizeof(tap_msg_), __VA_ARGS__);                                 \
		tap_check(!!(cond), __FILE__, __LINE__, tap_msg_);                                 \
	} while (0)

#define TAP_EQ_U64(got, want, ...)                                                                 \
	do {                                                                                       \
		unsigned long long tap_g_ = (unsigned long long)(got);                             \
		unsigned long long tap_w_ = (unsigned long long)(want);                            \
		char tap_msg_[256];                                                                \
		snprintf(tap_msg_, sizeof(tap_msg_), __VA_ARGS__);                                 \
		if (!tap_check(tap_g_ == tap_w_, __FILE__, __LINE__, tap_msg_))                    \
			printf("# got %llu, want %llu\n", tap_g_, tap_w_);                         \
	} while (0)

#define TAP_EQ_STR(got, want, ...)                                                                 \
	do {                                                                                       \
		const char *tap_g_ = (got);                                                        \
		const char *tap_w_ = (want);                                                       \
		char tap_msg_[256];                                                                \
		snprintf(tap_msg_, sizeof(tap_msg_), __VA_ARGS__);                                 \
		int tap_ok_ = tap_g_ && tap_w_ && strcmp(tap_g_, tap_w_) == 0;                     \
		if (!tap_check(tap_ok_, __FILE__, __LINE__, tap_msg_))                             \
			printf("# got \"%s\", want \"%s\"\n", tap_g_ ? tap_g_ : "(null)",          \
			       tap_w_ ? tap_w_ : "(null)");                                        \
	} while (0)

/** Skip the whole test program (meson counts it as skipped). */
#define TAP_SKIP_ALL(reason)                                                                       \
	do {                                                                                       \
		printf("1..0 # SKIP %s\n", reason);                                                \
		return 0;                                                                          \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
