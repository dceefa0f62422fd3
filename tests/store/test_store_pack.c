/* SPDX-License-Identifier: MIT */
/*
 * The store's record packer (store/store_pack_private.h) against msgpack-c:
 * for every encoding boundary of every kind the bytes must be identical
 * (files stay byte-identical to those packed with msgpack-c) and the size
 * functions must give the number of bytes written.
 */
#include <stdlib.h>

#include <msgpack.h>

#include "store/store_pack_private.h"
#include "tests/tap.h"

static msgpack_sbuffer ref;
static msgpack_packer rpk;
static uint8_t out[(1 << 17) + 16];

static void ref_reset(void)
{
	msgpack_sbuffer_clear(&ref);
}

/* Compare what the cursor wrote from out[0] with msgpack-c's bytes. */
static int same(const struct pw *c, size_t want_size)
{
	size_t n = (size_t)(c->p - out);
	return n == ref.size && n == want_size && memcmp(out, ref.data, n) == 0;
}

static const uint64_t uints[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX - 1, UINT64_MAX};
static const int64_t ints[] = {0,	  -1,	  -32,	  -33,	     -128,
			       -129,	  -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
			       INT64_MIN, 127,	  128,	  65536,     INT64_MAX};
static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};

int main(void)
{
	msgpack_sbuffer_init(&ref);
	msgpack_packer_init(&rpk, &ref, msgpack_sbuffer_write);
	uint8_t *bytes = malloc(70000);
	if (!bytes)
		TAP_SKIP_ALL("out of memory");
	for (size_t i = 0; i < 70000; i++)
		bytes[i] = (uint8_t)(i * 7);

	int bad = 0;
	for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) {
		struct pw c = {out};
		ref_reset();
		msgpack_pack_uint64(&rpk, uints[i]);
		pw_uint(&c, uints[i]);
		if (!same(&c, pw_uint_size(uints[i]))) {
			bad++;
			printf("# uint %llu differs\n", (unsigned long long)uints[i]);
		}
	}
	TAP_EQ_U64(bad, 0, "unsigned integers: msgpack-c's bytes at every boundary");

	bad = 0;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		struct pw c = {out};
		ref_reset();
		msgpack_pack_int64(&rpk, ints[i]);
		pw_int(&c, ints[i]);
		if (!same(&c, pw_int_size(ints[i]))) {
			bad++;
			printf("# int %lld differs\n", (long long)ints[i]);
		}
	}
	TAP_EQ_U64(bad, 0, "signed integers: msgpack-c's bytes at every boundary");

	/* The narrower msgpack-c calls the writer uses choose the same forms. */
	bad = 0;
	for (uint32_t v = 0; v < 70000; v++) {
		struct pw c = {out};
		ref_reset();
		if (v <= UINT16_MAX)
			msgpack_pack_uint16(&rpk, (uint16_t)v);
		else
			msgpack_pack_uint32(&rpk, v);
		pw_uint(&c, v);
		bad += !same(&c, pw_uint_size(v));
	}
	TAP_EQ_U64(bad, 0, "uint16/uint32 values 0-69999 as msgpack_pack_uint16/32");

	int bad_str = 0, bad_bin = 0;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct pw c = {out};
		ref_reset();
		msgpack_pack_str(&rpk, lens[i]);
		msgpack_pack_str_body(&rpk, bytes, lens[i]);
		pw_str(&c, bytes, lens[i]);
		bad_str += !same(&c, pw_str_size(lens[i]));
		c.p = out;
		ref_reset();
		msgpack_pack_bin(&rpk, lens[i]);
		msgpack_pack_bin_body(&rpk, bytes, lens[i]);
		pw_bin(&c, bytes, lens[i]);
		bad_bin += !same(&c, pw_bin_size(lens[i]));
	}
	TAP_EQ_U64(bad_str, 0, "str of 0, 31, 32, 255, 256, 65535, 65536, 70000 bytes");
	TAP_EQ_U64(bad_bin, 0, "bin of the same lengths");

	int bad_map = 0, bad_arr = 0;
	const size_t counts[] = {0, 15, 16, 65535, 65536, 1u << 20};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct pw c = {out};
		ref_reset();
		msgpack_pack_map(&rpk, counts[i]);
		pw_map(&c, counts[i]);
		bad_map += !same(&c, pw_container_size(counts[i]));
		c.p = out;
		ref_reset();
		msgpack_pack_array(&rpk, counts[i]);
		pw_array(&c, counts[i]);
		bad_arr += !same(&c, pw_container_size(counts[i]));
	}
	TAP_EQ_U64(bad_map, 0, "map headers of 0, 15, 16, 65535, 65536, 2^20 entries");
	TAP_EQ_U64(bad_arr, 0, "array headers of the same counts");

	struct pw c = {out};
	ref_reset();
	msgpack_pack_true(&rpk);
	msgpack_pack_false(&rpk);
	msgpack_pack_nil(&rpk);
	msgpack_pack_str(&rpk, 10);
	msgpack_pack_str_body(&rpk, "session_id", 10);
	pw_bool(&c, 1);
	pw_bool(&c, 0);
	pw_nil(&c);
	PW_KEY(&c, "session_id");
	TAP_OK(same(&c, 3 + PW_KEY_SIZE("session_id")), "true, false, nil and a literal key");

	free(bytes);
	msgpack_sbuffer_destroy(&ref);
	return tap_done();
}
