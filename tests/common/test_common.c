/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/: bounded buffers, JSON emission, base64, UTF-8,
 * counter sets, SipHash (the reference vectors of the SipHash paper's
 * implementation).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/counters.h"
#include "common/dbuf.h"
#include "common/hash.h"
#include "common/jsonw.h"
#include "common/units.h"
#include "tests/tap.h"

static void test_dbuf_cap(void)
{
	struct dbuf b;
	dbuf_init(&b, 10);
	TAP_OK(dbuf_append(&b, "0123456789", 10) == 0, "append up to the cap");
	TAP_OK(dbuf_append(&b, "x", 1) == -E2BIG, "one byte over the cap is -E2BIG");
	TAP_EQ_U64(b.len, 10, "failed append leaves length unchanged");
	TAP_OK(b.cap <= 11, "allocation never exceeds cap + 1 (got %zu)", b.cap);
	dbuf_consume(&b, 4);
	TAP_EQ_STR((char *)b.data, "456789", "consume drops the front");
	TAP_OK(dbuf_printf(&b, "%d", 1234) == 0, "printf within cap");
	TAP_OK(dbuf_printf(&b, "%d", 1) == -E2BIG, "printf over cap");
	TAP_EQ_STR((char *)b.data, "4567891234", "content after printf");
	size_t n;
	uint8_t *p = dbuf_detach(&b, &n);
	TAP_EQ_U64(n, 10, "detach hands out the length");
	TAP_OK(b.data == NULL && b.len == 0, "detach empties the buffer");
	free(p);
	dbuf_release(&b);
}

/* The first failure sticks: a renderer checks once at the end (issue 15 item 8). */
static void test_dbuf_sticky(void)
{
	struct dbuf b;
	dbuf_init(&b, 8);
	TAP_OK(dbuf_error(&b) == 0, "a new buffer has no error");
	TAP_OK(dbuf_puts(&b, "abcdef") == 0 && dbuf_error(&b) == 0, "append within the cap");
	TAP_OK(dbuf_puts(&b, "ghijk") == -E2BIG, "append over the cap fails");
	TAP_OK(dbuf_putc(&b, 'g') == 0, "a later small append still fits");
	TAP_OK(dbuf_error(&b) == -E2BIG, "the first failure is kept after a success");
	TAP_OK(dbuf_reserve(&b, 100) == -E2BIG && dbuf_error(&b) == -E2BIG,
	       "a second failure keeps the first");
	dbuf_reset(&b);
	TAP_OK(dbuf_error(&b) == 0, "reset forgets the error with the content");
	TAP_OK(dbuf_printf(&b, "%s", "123456789") == -E2BIG && dbuf_error(&b) == -E2BIG,
	       "printf over the cap sets it");
	dbuf_release(&b);
	TAP_OK(dbuf_error(&b) == 0, "release forgets it");
}

/* One size syntax for every command (issue 16: replay --max-body 1k was refused). */
static void test_units(void)
{
	static const struct {
		const char *in;
		uint64_t want;
	} good[] = {{"0", 0},	       {"1048576", 1048576}, {"1k", 1024},
		    {"64K", 65536},    {"64KiB", 65536},     {"1M", 1u << 20},
		    {"1MB", 1u << 20}, {"2g", 2ull << 30},   {"3GiB", 3ull << 30},
		    {"10B", 10}};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 7;
		TAP_OK(units_parse_size(good[i].in, &v) == 0 && v == good[i].want, "size %s = %llu",
		       good[i].in, (unsigned long long)v);
	}
	static const char *const bad[] = {"",
					  "k",
					  "-1",
					  " 1",
					  "1x",
					  "1kk",
					  "1 k",
					  "1iB",
					  "99999999999999999999",
					  "18014398509481984k"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v;
		TAP_OK(units_parse_size(bad[i], &v) == -EINVAL, "size '%s' refused", bad[i]);
	}
}

static const char *json_of(struct dbuf *b, const void *p, size_t n)
{
	dbuf_reset(b);
	jsonw_str(b, p, n);
	return (const char *)b->data;
}

static void test_json(void)
{
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	TAP_EQ_STR(json_of(&b, "a\"b\\c\n\x01", 7), "\"a\\\"b\\\\c\\n\\u0001\"", "escapes");
	TAP_EQ_STR(json_of(&b, "h\xc3\xa9", 3), "\"h\xc3\xa9\"", "valid UTF-8 passes through");
	TAP_EQ_STR(json_of(&b, "\xff", 1), "\"\xef\xbf\xbd\"", "invalid byte becomes U+FFFD");
	TAP_OK(!jsonw_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3), "surrogate is invalid");
	TAP_OK(!jsonw_utf8_valid((const uint8_t *)"\xc0\xaf", 2), "overlong is invalid");
	TAP_OK(jsonw_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4), "4-byte emoji valid");
	const char *cases[][2] = {{"", ""},
				  {"f", "Zg=="},
				  {"fo", "Zm8="},
				  {"foo", "Zm9v"},
				  {"foob", "Zm9vYg=="},
				  {"fooba", "Zm9vYmE="},
				  {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dbuf_reset(&b);
		jsonw_base64(&b, cases[i][0], strlen(cases[i][0]));
		TAP_EQ_STR(b.len ? (char *)b.data : "", cases[i][1], "base64 of \"%s\" (RFC 4648)",
			   cases[i][0]);
		/* unpadded (gRPC's Binary-Header): the same without '=' */
		char raw[16], want[16];
		size_t n = jsonw_base64_to(raw, cases[i][0], strlen(cases[i][0]), false);
		raw[n] = 0;
		size_t wl = strcspn(cases[i][1], "=");
		memcpy(want, cases[i][1], wl);
		want[wl] = 0;
		TAP_OK(!strcmp(raw, want) && n == jsonw_base64_len(strlen(cases[i][0]), false),
		       "unpadded base64 of \"%s\"", cases[i][0]);
	}
	dbuf_reset(&b);
	jsonw_bytes(&b, "\x00\xff", 2);
	TAP_EQ_STR((char *)b.data, "{\"base64\":\"AP8=\"}", "binary bytes become a base64 object");
	dbuf_release(&b);
}

struct two {
	uint64_t a, b;
};

static void test_ctr_set(void)
{
	static const struct ctr_desc d[] = {CTR_DESC(struct two, a, "first"),
					    CTR_DESC(struct two, b, "second")};
	struct two t = {3, 5};
	struct ctr_set *s = ctr_set_create(4);
	struct dbuf b;
	dbuf_init(&b, 1 << 16);
	TAP_OK(s != NULL, "counter set created");
	if (!s)
		return;
	TAP_OK(ctr_set_table(s, "x_", &t, d, 2) == 0, "a table goes in with a prefix");
	TAP_OK(ctr_set_put(s, 7, "lane_%s_%s", "blue", "sent") == 0, "a formatted name goes in");
	char longname[CTR_NAME_MAX + 2];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	TAP_OK(ctr_set_put(s, 1, "%s", longname) == -ENAMETOOLONG,
	       "a name over CTR_NAME_MAX is refused, not cut");
	TAP_OK(ctr_set_put(s, 9, "last") == 0, "fourth counter fits");
	TAP_OK(ctr_set_put(s, 9, "over") == -ENOSPC && ctr_set_lost(s) == 2,
	       "past the max: refused and counted (2 lost)");
	const struct ctr_value *v = ctr_set_values(s);
	TAP_OK(ctr_set_count(s) == 4 && !strcmp(v[0].name, "x_a") && v[1].value == 5 &&
		   !strcmp(v[2].name, "lane_blue_sent") && ctr_set_get(s, "last") == 9,
	       "names and values in order");
	TAP_OK(ctr_set_json(s, &b) == 0, "json members written");
	TAP_EQ_STR((char *)b.data, "\"x_a\":3,\"x_b\":5,\"lane_blue_sent\":7,\"last\":9",
		   "json members");
	struct ctr_set *big = ctr_set_create(0);
	for (int i = 0; big && i < 300; i++)
		ctr_set_put(big, (uint64_t)i, "c%d", i);
	TAP_OK(big && ctr_set_count(big) == 300 && !strcmp(ctr_set_values(big)[0].name, "c0") &&
		   !strcmp(ctr_set_values(big)[299].name, "c299"),
	       "names stay valid while the set grows");
	TAP_OK(big && ctr_set_append(big, s) == 0 && ctr_set_get(big, "x_b") == 5,
	       "one set appended to another");
	ctr_set_clear(s);
	TAP_OK(ctr_set_count(s) == 0 && ctr_set_lost(s) == 0, "clear empties the set");
	ctr_set_free(big);
	ctr_set_free(s);
	dbuf_release(&b);
}

/* SipHash-2-4 with key 00..0f over messages 00..n-1: vectors.h of the
 * reference implementation (github.com/veorq/SipHash), read as little-endian. */
static void test_siphash(void)
{
	static const struct {
		size_t len;
		uint64_t want;
	} v[] = {{0, 0x726fdb47dd0e0e31ULL},
		 {1, 0x74f839c593dc67fdULL},
		 {2, 0x0d6c8009d9a94f5aULL},
		 {8, 0x93f5f5799a932462ULL},
		 {15, 0xa129ca6149be45e5ULL}};
	struct hash_key k = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
	uint8_t msg[64];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		TAP_OK(hash_siphash(2, 4, &k, msg, v[i].len) == v[i].want,
		       "siphash-2-4 reference vector, %zu bytes", v[i].len);
	uint64_t w[5];
	memcpy(w, msg, sizeof(w));
	TAP_OK(hash_sip13_words(&k, w, 5) == hash_siphash(1, 3, &k, msg, 40),
	       "word-wise siphash-1-3 equals the byte-wise one");
	struct hash_key a, b;
	hash_random_key(&a);
	hash_random_key(&b);
	TAP_OK(a.k0 != b.k0 || a.k1 != b.k1, "two random keys differ");
}

int main(void)
{
	test_dbuf_cap();
	test_dbuf_sticky();
	test_units();
	test_json();
	test_ctr_set();
	test_siphash();
	return tap_done();
}
