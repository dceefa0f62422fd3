/* SPDX-License-Identifier: MIT */
/*
 * The store's record packer (store/store_pack_private.h) against msgpack-c:
 * for every encoding boundary of every kind the bytes must be identical
 * (files stay byte-identical to those packed with msgpack-c) and the size
 * functions must give the number of bytes written.
 */
#include <stdlib.h>
#include <unistd.h>

#include <msgpack.h>

#include "store/store.h"
#include "store/store_pack_private.h"
#include "tests/store/store_sample.h"
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

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	*n = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long sz = ftell(f);
		if (sz > 0 && (b = malloc((size_t)sz)) != NULL) {
			rewind(f);
			*n = fread(b, 1, (size_t)sz, f);
		}
	}
	fclose(f);
	return b;
}

/* 40 sessions and results written directly (@p packed 0) or packed first. */
static int write_file(const char *path, int packed)
{
	char err[256];
	struct store_writer_params p = {.path = path, .flush_bytes = 8192};
	struct store_writer *w = store_writer_create(&p, err, sizeof(err));
	if (!w)
		return -1;
	int rc = 0;
	struct sample x;
	for (uint64_t i = 0; i < 40; i++) {
		sample_fill(&x, i);
		sample_fill_result(&x, i);
		struct store_record rs = {.type = STORE_REC_SESSION, .u.session = x.s};
		struct store_record rr = {.type = STORE_REC_RESULT, .u.result = x.r};
		if (!packed) {
			rc |= store_writer_add_session(w, &x.s);
			rc |= store_writer_add_result(w, &x.r);
			continue;
		}
		const struct store_record *recs[2] = {&rs, &rr};
		for (int k = 0; k < 2; k++) {
			size_t n = store_record_packed_size(recs[k]);
			uint8_t *b = malloc(n);
			if (!b)
				return -1;
			store_record_pack(recs[k], b);
			rc |= store_writer_add_packed(
			    w, recs[k]->type, k ? x.r.ts_sent_ns : x.s.ts_req_first_ns, b, n);
			free(b);
		}
	}
	rc |= store_writer_close(w, NULL, 0, err, sizeof(err));
	return rc;
}

static void test_packed_records(void)
{
	char a[] = "/tmp/dyetap-pack-a.XXXXXX", b[] = "/tmp/dyetap-pack-b.XXXXXX";
	int fa = mkstemp(a), fb = mkstemp(b);
	if (fa < 0 || fb < 0) {
		TAP_OK(0, "temporary files");
		return;
	}
	close(fa);
	close(fb);
	TAP_OK(write_file(a, 0) == 0 && write_file(b, 1) == 0,
	       "40 sessions and results written both ways");
	size_t na, nb;
	uint8_t *da = slurp(a, &na), *db = slurp(b, &nb);
	TAP_OK(da && db && na > 1000 && na == nb && !memcmp(da, db, na),
	       "store_record_pack() + store_writer_add_packed(): the same file byte for byte "
	       "(%zu and %zu bytes)",
	       na, nb);
	free(da);
	free(db);
	unlink(a);
	unlink(b);
}

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

	test_packed_records();

	free(bytes);
	msgpack_sbuffer_destroy(&ref);
	return tap_done();
}
