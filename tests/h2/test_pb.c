/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of analysis/pb.h. Wire bytes and their meaning come from the
 * protobuf encoding guide (protobuf.dev/programming-guides/encoding:
 * "08 96 01" is field 1 = 150, "12 07 74 65 73 74 69 6e 67" field 2 =
 * "testing", "1a 03 08 96 01" field 3 = {1: 150}, packed
 * "22 06 03 8e 02 9e a7 05" field 4 = [3, 270, 86942]) and gRPC's
 * PROTOCOL-HTTP2.md (Length-Prefixed-Message). The schema is shop.proto
 * compiled by protoc -o at build time (argv[1]).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "analysis/pb.h"
#include "tests/tap.h"

static char got[8192];

static int conv(const uint8_t *d, size_t n, const struct pb_type *t)
{
	struct dbuf b;
	dbuf_init(&b, sizeof(got) - 1);
	int rc = pb_to_json(&b, d, n, t);
	snprintf(got, sizeof(got), "%.*s", (int)b.len, b.data ? (char *)b.data : "");
	dbuf_release(&b);
	return rc;
}

#define CHECK(type, want, what, ...)                                                               \
	do {                                                                                       \
		static const uint8_t in_[] = {__VA_ARGS__};                                        \
		int rc_ = conv(in_, sizeof(in_), type);                                            \
		TAP_OK(rc_ == 0 && !strcmp(got, want), "%s: %.100s", what, got);                   \
	} while (0)

static int gz_inflate(void *ctx, const char *enc, size_t enclen, const uint8_t *in, size_t n,
		      struct dbuf *out)
{
	(void)ctx;
	if (enclen != 4 || memcmp(enc, "gzip", 4))
		return -ENOTSUP;
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 31) != Z_OK)
		return -ENOMEM;
	uint8_t buf[4096];
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = buf;
	z.avail_out = sizeof(buf);
	int r = inflate(&z, Z_FINISH);
	size_t k = sizeof(buf) - z.avail_out;
	inflateEnd(&z);
	if (r != Z_STREAM_END)
		return -EBADMSG;
	dbuf_reset(out);
	return dbuf_append(out, buf, k);
}

static size_t gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	size_t k = cap - z.avail_out;
	deflateEnd(&z);
	return k;
}

static void test_schemaless(void)
{
	CHECK(NULL, "{\"1\":150}", "varint (encoding guide)", 0x08, 0x96, 0x01);
	CHECK(NULL, "{\"2\":\"testing\"}", "string (encoding guide)", 0x12, 0x07, 't', 'e', 's',
	      't', 'i', 'n', 'g');
	CHECK(NULL, "{\"3\":{\"1\":150}}", "embedded message (encoding guide)", 0x1a, 0x03, 0x08,
	      0x96, 0x01);
	CHECK(NULL, "{\"4\":\"A44CnqcF\"}", "packed field without a schema: bytes", 0x22, 0x06,
	      0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05);
	CHECK(NULL, "{\"1\":[1,2],\"2\":5}", "a repeated number is an array", 0x08, 0x01, 0x08,
	      0x02, 0x10, 0x05);
	CHECK(NULL, "{\"3\":15}", "64-bit: a double", 0x19, 0, 0, 0, 0, 0, 0, 0x2e, 0x40);
	CHECK(NULL, "{\"5\":10}", "32-bit: a float", 0x2d, 0, 0, 0x20, 0x41);
	CHECK(NULL, "{\"1\":7,\"4\":1}", "keys in field number order", 0x20, 0x01, 0x08, 0x07);
	static const uint8_t trunc[] = {0x08, 0x96};
	TAP_EQ_U64((uint64_t)-conv(trunc, sizeof(trunc), NULL), EBADMSG, "cut varint: EBADMSG");
	static const uint8_t grp[] = {0x0b, 0x0c};
	TAP_EQ_U64((uint64_t)-conv(grp, sizeof(grp), NULL), EBADMSG, "groups: EBADMSG");
	static const uint8_t zero[] = {0x00, 0x01};
	TAP_EQ_U64((uint64_t)-conv(zero, sizeof(zero), NULL), EBADMSG, "field number 0: EBADMSG");
	/* 40 nested levels: past the depth cap the inner bytes are shown as bytes */
	uint8_t deep[200];
	size_t n = 0;
	for (int i = 0; i < 40; i++) {
		deep[n++] = 0x0a;
		deep[n++] = (uint8_t)(2 * (39 - i) + 2);
	}
	deep[n++] = 0x08;
	deep[n++] = 0x01;
	TAP_OK(conv(deep, n, NULL) == 0 && strstr(got, "{\"1\":{\"1\":") && strstr(got, "\"1\":\""),
	       "40 nested levels: bounded, the innermost kept as bytes");
	TAP_OK(conv(NULL, 0, NULL) == 0 && !strcmp(got, "{}"), "an empty message is {}");
}

/* Enum fields (shop.proto: Item.status / Item.history of the top-level
 * enum Stock, Tag.kind of the nested enum Tag.Kind): the value's name as
 * a string, a number the enum does not declare the integer (protobuf's
 * JSON mapping, proto3 guide "JSON Mapping"). */
static void test_enums(const struct pb_type *item)
{
	CHECK(item, "{\"status\":\"DISCONTINUED\"}", "enum: the value's name", 0x50, 0x02);
	CHECK(item, "{\"status\":\"STOCK_UNKNOWN\"}", "enum: zero sent: its name", 0x50, 0x00);
	CHECK(item, "{\"status\":7}", "enum: an undeclared number stays a number", 0x50, 0x07);
	CHECK(item, "{\"status\":-1}", "enum: an undeclared negative number (ten-byte varint)",
	      0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	CHECK(item, "{\"history\":[\"AVAILABLE\",\"BACKORDER\",9]}", "enum: repeated, packed", 0x5a,
	      0x03, 0x01, 0x03, 0x09);
	CHECK(item, "{\"history\":[\"DISCONTINUED\",\"STOCK_UNKNOWN\",\"AVAILABLE\"]}",
	      "enum: repeated, unpacked then packed", 0x58, 0x02, 0x58, 0x00, 0x5a, 0x01, 0x01);
	/* a packed occurrence first, then unpacked ones: each read as it came (the
	 * unpacked ones were read as packed, from bytes they do not have) */
	CHECK(item, "{\"history\":[\"AVAILABLE\",\"DISCONTINUED\",\"BACKORDER\",5]}",
	      "repeated scalar: packed then unpacked", 0x5a, 0x02, 0x01, 0x02, 0x58, 0x03, 0x58,
	      0x05);
	CHECK(item, "{\"tags\":[{\"name\":\"x\",\"kind\":\"PROMO\"},{\"kind\":3}]}",
	      "enum: nested enum type (Tag.Kind)", 0x22, 0x05, 0x0a, 0x01, 'x', 0x40, 0x01, 0x22,
	      0x02, 0x40, 0x03);
	CHECK(item, "{\"status\":\"x\"}", "enum: wire type not a varint: decoded as found", 0x52,
	      0x01, 'x');
	CHECK(NULL, "{\"10\":2}", "enum without a schema: the number", 0x50, 0x02);
	/* crafted: field e of an enum type no file declares, field f of enum E
	 * { A = 1; B = 1; } (allow_alias): the first name of a number */
	static const uint8_t fds[] = {
	    0x0a, 0x35, 0x22, 0x20, 0x0a, 0x01, 'M',  0x12, 0x0e, 0x0a, 0x01, 'e',  0x18, 0x01,
	    0x28, 0x0e, 0x32, 0x05, '.',  'N',	'o',  'p',  'e',  0x12, 0x0b, 0x0a, 0x01, 'f',
	    0x18, 0x02, 0x28, 0x0e, 0x32, 0x02, '.',  'E',  0x2a, 0x11, 0x0a, 0x01, 'E',  0x12,
	    0x05, 0x0a, 0x01, 'A',  0x10, 0x01, 0x12, 0x05, 0x0a, 0x01, 'B',  0x10, 0x01};
	char err[256];
	struct pb_schema *s = pb_schema_parse(fds, sizeof(fds), err, sizeof(err));
	TAP_OK(s != NULL, "enum: crafted schema parses (%.100s)", s ? "ok" : err);
	if (!s)
		return;
	CHECK(pb_schema_type(s, "M"), "{\"e\":2,\"f\":\"A\"}",
	      "enum: an unresolved enum type a number, an alias its first name", 0x08, 0x02, 0x10,
	      0x01);
	pb_schema_free(s);
}

static void test_schema(const char *path)
{
	char err[256];
	struct pb_schema *s = pb_schema_load(path, err, sizeof(err));
	TAP_OK(s != NULL, "schema: loaded (%.100s)", s ? "ok" : err);
	if (!s)
		return;
	TAP_OK(pb_schema_types(s) == 3 && pb_schema_methods(s) == 1,
	       "schema: 3 message types, 1 method");
	const char *m = "/shop.Shop/GetItem";
	const struct pb_type *out = pb_schema_method(s, (const uint8_t *)m, strlen(m), true);
	const struct pb_type *in = pb_schema_method(s, (const uint8_t *)m, strlen(m), false);
	TAP_OK(out && out == pb_schema_type(s, "shop.Item") &&
		   in == pb_schema_type(s, "shop.ItemRequest"),
	       "schema: the method's output and input types");
	TAP_OK(!pb_schema_method(s, (const uint8_t *)"/shop.Shop/Nope", 15, true),
	       "schema: an unknown method has no type");
	/* Item{id 7, name "item-7", price 17.0, tags [{new,3},{sale,1}], served_at_ms 5,
	 * in_stock false (absent), field 9 unknown} */
	static const uint8_t item[] = {
	    0x08, 0x07, 0x12, 0x06, 'i',  't',	'e',  'm',  '-',  '7',	0x19, 0,    0,	  0,
	    0,	  0,	0,    0x31, 0x40, 0x22, 0x07, 0x0a, 0x03, 'n',	'e',  'w',  0x38, 0x03,
	    0x22, 0x08, 0x0a, 0x04, 's',  'a',	'l',  'e',  0x38, 0x01, 0x28, 0x05, 0x48, 0x02};
	TAP_OK(conv(item, sizeof(item), out) == 0 &&
		   !strcmp(got,
			   "{\"id\":7,\"name\":\"item-7\",\"price\":17,\"tags\":[{\"name\":\"new\","
			   "\"weight\":3},{\"name\":\"sale\",\"weight\":1}],\"served_at_ms\":5,"
			   "\"9\":2}"),
	       "schema: field names, a repeated message always an array, unknown fields by "
	       "number: %.100s",
	       got);
	static const uint8_t one_tag[] = {0x22, 0x02, 0x38, 0x03};
	TAP_OK(conv(one_tag, sizeof(one_tag), out) == 0 &&
		   !strcmp(got, "{\"tags\":[{\"weight\":3}]}"),
	       "schema: a repeated field seen once is still an array");
	static const uint8_t neg[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0xff, 0xff, 0xff, 0xff, 0x01};
	TAP_OK(conv(neg, sizeof(neg), out) == 0 && !strcmp(got, "{\"id\":-1}"),
	       "schema: int32 -1 (ten-byte varint)");
	static const uint8_t wrong[] = {0x12, 0x02, 0x08, 0x01, 0x30, 0x01};
	TAP_OK(conv(wrong, sizeof(wrong), out) == 0 && !strcmp(got, "{\"name\":\"\\u0008\\u0001\","
								    "\"in_stock\":true}"),
	       "schema: string bytes kept as a string, bool: %.100s", got);
	test_enums(out);
	pb_schema_free(s);
	static const uint8_t junk[] = {0xff, 0xff};
	TAP_OK(!pb_schema_parse(junk, 2, err, sizeof(err)) && strstr(err, "protoc -o"),
	       "schema: junk refused with advice: %.100s", err);
	TAP_OK(!pb_schema_load("/nonexistent.pb", err, sizeof(err)) && strstr(err, "cannot open"),
	       "schema: a missing file: %.100s", err);
}

/* map<K, V> fields (maps.proto): one object keyed by K whatever the entries'
 * wire order, the last entry of a key counting, absent keys and values
 * their defaults (protobuf's encoding guide "Maps", its JSON mapping). */
static void test_maps(const char *path)
{
	char err[256];
	struct pb_schema *s = pb_schema_load(path, err, sizeof(err));
	TAP_OK(s != NULL, "maps: schema loaded (%.100s)", s ? "ok" : err);
	if (!s)
		return;
	const struct pb_type *inv = pb_schema_type(s, "maps.Inv");
	/* counts {"b": 2, "a": 1} in that wire order, then the other */
	CHECK(inv, "{\"counts\":{\"a\":1,\"b\":2}}", "maps: string keys, wire order b a", 0x0a,
	      0x05, 0x0a, 0x01, 'b', 0x10, 0x02, 0x0a, 0x05, 0x0a, 0x01, 'a', 0x10, 0x01);
	CHECK(inv, "{\"counts\":{\"a\":1,\"b\":2}}", "maps: the same map in wire order a b", 0x0a,
	      0x05, 0x0a, 0x01, 'a', 0x10, 0x01, 0x0a, 0x05, 0x0a, 0x01, 'b', 0x10, 0x02);
	CHECK(inv, "{\"counts\":{\"a\":5}}", "maps: a key given twice: the last entry counts", 0x0a,
	      0x05, 0x0a, 0x01, 'a', 0x10, 0x01, 0x0a, 0x05, 0x0a, 0x01, 'a', 0x10, 0x05);
	/* by_id {7: {name "x"}, -1: {}} (the second entry without a value) */
	CHECK(inv, "{\"by_id\":{\"-1\":{},\"7\":{\"name\":\"x\"}}}",
	      "maps: int64 keys as strings, message values, an absent value its default", 0x12,
	      0x07, 0x08, 0x07, 0x12, 0x03, 0x0a, 0x01, 'x', 0x12, 0x0b, 0x08, 0xff, 0xff, 0xff,
	      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	/* flags {true: "y", (no key): "n"} */
	CHECK(inv, "{\"flags\":{\"false\":\"n\",\"true\":\"y\"}}",
	      "maps: bool keys, an absent key its default", 0x1a, 0x05, 0x08, 0x01, 0x12, 0x01, 'y',
	      0x1a, 0x03, 0x12, 0x01, 'n');
	/* levels {"c": 5, "a": HIGH, "b": (no value)} */
	CHECK(inv, "{\"levels\":{\"a\":\"HIGH\",\"b\":\"LEVEL_NONE\",\"c\":5}}",
	      "maps: enum values their names, an absent one the zero value's, an undeclared a "
	      "number",
	      0x22, 0x05, 0x0a, 0x01, 'c', 0x10, 0x05, 0x22, 0x05, 0x0a, 0x01, 'a', 0x10, 0x02,
	      0x22, 0x03, 0x0a, 0x01, 'b');
	CHECK(inv, "{\"counts\":[{\"key\":1}]}",
	      "maps: an entry whose key is not as declared: the entries as a list", 0x0a, 0x02,
	      0x08, 0x01);
	pb_schema_free(s);
}

static void test_grpc(void)
{
	struct dbuf b, tmp;
	dbuf_init(&b, 1 << 16);
	dbuf_init(&tmp, 1 << 16);
	static const uint8_t one[] = {0, 0, 0, 0, 3, 0x08, 0x96, 0x01};
	int rc = pb_grpc_to_json(&b, one, sizeof(one), NULL, NULL, 0, NULL, NULL, &tmp);
	TAP_OK(rc == 0 && b.len == 9 && !memcmp(b.data, "{\"1\":150}", 9), "grpc: one message");
	static const uint8_t two[] = {0, 0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 0, 2, 0x08, 0x02};
	dbuf_reset(&b);
	rc = pb_grpc_to_json(&b, two, sizeof(two), NULL, NULL, 0, NULL, NULL, &tmp);
	TAP_OK(rc == 0 && b.len == 17 && !memcmp(b.data, "[{\"1\":1},{\"1\":2}]", 17),
	       "grpc: two messages are an array");
	dbuf_reset(&b);
	rc = pb_grpc_to_json(&b, NULL, 0, NULL, NULL, 0, NULL, NULL, &tmp);
	TAP_OK(rc == 0 && b.len == 2 && !memcmp(b.data, "[]", 2), "grpc: no message: []");
	static const uint8_t cut[] = {0, 0, 0, 0, 9, 0x08};
	dbuf_reset(&b);
	TAP_EQ_U64(
	    (uint64_t)-pb_grpc_to_json(&b, cut, sizeof(cut), NULL, NULL, 0, NULL, NULL, &tmp),
	    EBADMSG, "grpc: a cut message is EBADMSG");
	uint8_t z[128] = {1, 0, 0, 0, 0};
	static const uint8_t msg[] = {0x08, 0x96, 0x01};
	size_t zl = gzip(msg, sizeof(msg), z + 5, sizeof(z) - 5);
	z[4] = (uint8_t)zl;
	dbuf_reset(&b);
	rc = pb_grpc_to_json(&b, z, 5 + zl, NULL, "gzip", 4, gz_inflate, NULL, &tmp);
	TAP_OK(rc == 0 && b.len == 9 && !memcmp(b.data, "{\"1\":150}", 9),
	       "grpc: the compressed flag: inflated with grpc-encoding gzip");
	dbuf_reset(&b);
	TAP_EQ_U64((uint64_t)-pb_grpc_to_json(&b, z, 5 + zl, NULL, NULL, 0, gz_inflate, NULL, &tmp),
		   ENOTSUP, "grpc: compressed without grpc-encoding: ENOTSUP");
	TAP_OK(pb_is_grpc_type("application/grpc", 16) &&
		   pb_is_grpc_type("application/grpc+proto", 22) &&
		   !pb_is_grpc_type("application/grpc-web", 20) && !pb_is_grpc_type("text/html", 9),
	       "grpc: content types");
	dbuf_release(&b);
	dbuf_release(&tmp);
}

int main(int argc, char **argv)
{
	test_schemaless();
	test_grpc();
	if (argc > 1)
		test_schema(argv[1]);
	else
		TAP_OK(1, "# SKIP schema tests: no protoc");
	if (argc > 2)
		test_maps(argv[2]);
	return tap_done();
}
