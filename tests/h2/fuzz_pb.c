/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pb - libFuzzer target for the protobuf wire decoder and the gRPC
 * framing (analysis/pb.h), with and without a schema, and the
 * FileDescriptorSet parser.
 *
 * Input: byte 0 selects: 0-63 a gRPC body decoded without a schema,
 * 64-127 a bare message with the shop schema built in below (Item), 128-191
 * a FileDescriptorSet to parse (and, when it parses, the rest of the bytes
 * decoded with each of its types), 192-255 a bare message without schema.
 * Checks the output is valid JSON for the differ (it parses) and stays in
 * its cap. Seeds: tests/h2/corpus-pb.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/json.h"
#include "analysis/pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* shop.proto's FileDescriptorSet (protoc -o), enough for Item and Tag. */
static const uint8_t shop_fds[] = {
#include "shop_fds.inc"
};

static struct pb_schema *shop;

static void check(struct dbuf *b, int rc)
{
	if (rc)
		return;
	struct json_doc d;
	json_doc_init(&d, NULL);
	if (json_parse(&d, b->data ? b->data : (const uint8_t *)"", b->len) == -EBADMSG)
		abort(); /* the differ must be able to read what we write */
	json_doc_release(&d);
}

static int fz_inflate(void *ctx, const char *enc, size_t enclen, const uint8_t *in, size_t n,
		      struct dbuf *out)
{
	(void)ctx;
	(void)enc;
	(void)enclen;
	dbuf_reset(out);
	return dbuf_append(out, in, n); /* "identity" */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char err[256];
	if (!shop)
		shop = pb_schema_parse(shop_fds, sizeof(shop_fds), err, sizeof(err));
	uint8_t sel = data[0];
	data++;
	size--;
	struct dbuf b, tmp;
	dbuf_init(&b, 1 << 20);
	dbuf_init(&tmp, 1 << 20);
	if (sel < 64) {
		check(&b, pb_grpc_to_json(&b, data, size, NULL, "x", 1, fz_inflate, NULL, &tmp));
	} else if (sel < 128) {
		check(&b, pb_to_json(&b, data, size, pb_schema_type(shop, "shop.Item")));
	} else if (sel < 192) {
		size_t k = size / 2;
		struct pb_schema *s = pb_schema_parse(data, k, err, sizeof(err));
		if (s) {
			const char *m = "/shop.Shop/GetItem";
			const struct pb_type *t =
			    pb_schema_method(s, (const uint8_t *)m, strlen(m), true);
			check(&b, pb_to_json(&b, data + k, size - k, t));
		}
		pb_schema_free(s);
	} else {
		check(&b, pb_to_json(&b, data, size, NULL));
	}
	dbuf_release(&b);
	dbuf_release(&tmp);
	return 0;
}
