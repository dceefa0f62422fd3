/* SPDX-License-Identifier: MIT */
/*
 * pb - protobuf wire format (https://protobuf.dev/programming-guides/
 * encoding/) and gRPC message framing (gRPC's PROTOCOL-HTTP2.md:
 * Length-Prefixed-Message = compressed flag, 4-byte big-endian length,
 * message) turned into JSON text, so that gRPC bodies are compared,
 * grouped and learned as noise by the JSON differ, path by path.
 *
 * Without a schema a message becomes an object keyed by field numbers:
 * `{"1": 7, "2": "item-7", "4": [{"1": "new", "7": 3}, ...]}`, so paths
 * read `$.2`, `$.4[*].7`. A field number seen more than once in a message
 * is an array; varints are unsigned integers; 64- and 32-bit fields are
 * numbers when they read as a plausible double / float, else unsigned
 * integers; a length-delimited field is a string when it is printable
 * UTF-8, else a nested message when it parses as one exactly, else
 * base64 bytes (the same guesses `protoc --decode_raw` makes).
 *
 * With a schema (a FileDescriptorSet written by `protoc -o FILE
 * --include_imports`) the message type of a gRPC call comes from its path
 * ("/package.Service/Method": the method's output type for a response,
 * input type for a request) and fields get their names and types:
 * `{"id": 7, "name": "item-7", "tags": [{"name": "new", "weight": 3}]}`;
 * repeated fields are always arrays (packed ones unpacked), signed and
 * zigzag integers, doubles, floats, bools, strings and bytes are decoded
 * as declared; an enum field is its value's name as a string (protobuf's
 * JSON mapping: `"status": "DISCONTINUED"`), a number its enum does not
 * declare the integer; a map<K, V> field is one object keyed by K
 * (protobuf's JSON mapping: its entries' wire order is undefined, so they
 * are not a list), the last entry of a key counting; fields the schema
 * does not know keep their numbers.
 *
 * Bounded: nesting depth, output size and fields per message are capped;
 * anything malformed is -EBADMSG, never a crash. Thread-safety: a schema
 * is read-only after loading and may be shared.
 */
#ifndef DYETAP_ANALYSIS_PB_H
#define DYETAP_ANALYSIS_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"

struct pb_schema;
struct pb_type;

/**
 * Load a FileDescriptorSet from @p path.
 * @return the schema, or NULL with a message in @p err.
 */
struct pb_schema *pb_schema_load(const char *path, char *err, size_t errlen);

/** The same from @p n bytes at @p d (copied what it keeps). */
struct pb_schema *pb_schema_parse(const uint8_t *d, size_t n, char *err, size_t errlen);

/** Free; accepts NULL. */
void pb_schema_free(struct pb_schema *s);

/** Message types and methods the schema holds. */
size_t pb_schema_types(const struct pb_schema *s);
size_t pb_schema_methods(const struct pb_schema *s);

/**
 * The message type of gRPC method @p path ("/pkg.Service/Method", as in
 * :path): its output type when @p response, else its input type. NULL
 * when the schema has no such method (the message is then decoded
 * without names).
 */
const struct pb_type *pb_schema_method(const struct pb_schema *s, const uint8_t *path, size_t n,
				       bool response);

/** A message type by full name ("pkg.Msg"); NULL when unknown. */
const struct pb_type *pb_schema_type(const struct pb_schema *s, const char *name);

/**
 * Append message @p msg[0..n) as a JSON object to @p out (its max caps
 * the output). @p type may be NULL (no schema).
 * @return 0, -EBADMSG not a protobuf message, -E2BIG a cap, -ENOMEM.
 */
int pb_to_json(struct dbuf *out, const uint8_t *msg, size_t n, const struct pb_type *type);

/**
 * Decompress a gRPC message whose compressed flag is set; gives the
 * encoding name of the grpc-encoding header and the message, writes
 * the result to @p out (reset first). @return 0, -ENOTSUP, -EBADMSG,
 * -E2BIG, -ENOMEM.
 */
typedef int (*pb_inflate_fn)(void *ctx, const char *enc, size_t enclen, const uint8_t *in, size_t n,
			     struct dbuf *out);

/**
 * Append gRPC body @p body[0..n) (Length-Prefixed-Messages) as JSON:
 * one message as its object, none or several as an array of objects.
 * A message with the compressed flag is inflated by @p inflate with
 * encoding @p enc (the grpc-encoding header; NULL/0 when absent: then
 * -ENOTSUP) into @p tmp first.
 * @return 0, -EBADMSG (cut or malformed framing or message), -ENOTSUP,
 *         -E2BIG, -ENOMEM.
 */
int pb_grpc_to_json(struct dbuf *out, const uint8_t *body, size_t n, const struct pb_type *type,
		    const char *enc, size_t enclen, pb_inflate_fn inflate, void *ctx,
		    struct dbuf *tmp);

/** Is @p ct (a content-type value) gRPC's ("application/grpc", "+proto", ";...")? */
bool pb_is_grpc_type(const char *ct, size_t n);

#endif
