/* SPDX-License-Identifier: MIT */
/*
 * json - a small, bounded JSON parser (RFC 8259) for response bodies.
 *
 * The parser builds a flat node array over the input text: values are
 * zero-copy slices of the text (strings without their quotes, still
 * escaped; numbers as written), containers link their children by index.
 * Every resource is capped (input bytes, nesting depth, node count), so a
 * hostile body costs at most the caps. A json_doc is reused across bodies
 * so the hot path allocates only while the node array grows.
 *
 * Thread-safety: a json_doc is used by one thread at a time.
 */
#ifndef DYETAP_ANALYSIS_JSON_H
#define DYETAP_ANALYSIS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type {
	JSON_NULL = 0,
	JSON_FALSE = 1,
	JSON_TRUE = 2,
	JSON_NUMBER = 3,
	JSON_STRING = 4,
	JSON_ARRAY = 5,
	JSON_OBJECT = 6,
};

/** One value. Index 0 is the root, so 0 also means "none" for links. */
struct json_node {
	/* 16-bit, not uint8_t: char-typed stores may alias the parser's
	 * cursor and would force the compiler to reload it on every node */
	uint16_t type;	  /**< enum json_type */
	uint16_t esc;	  /**< strings: bit 0 value has escapes, bit 1 key has escapes */
	uint32_t next;	  /**< next sibling, 0 = last */
	uint32_t first;	  /**< first child (containers), 0 = empty */
	uint32_t n;	  /**< number of children (containers) */
	uint32_t key_off; /**< object members: key offset into the text (escaped, unquoted) */
	uint32_t key_len;
	uint32_t off; /**< scalars: value offset into the text (strings unquoted) */
	uint32_t len;
};

/** Caps; a zero field takes the default in brackets. */
struct json_limits {
	size_t max_bytes;   /**< input size [16 MiB]; larger input is -E2BIG */
	uint32_t max_depth; /**< nesting depth [64]; deeper is -E2BIG */
	uint32_t max_nodes; /**< values [1 M]; more is -E2BIG */
};

struct json_doc {
	const uint8_t *text; /**< borrowed: the parsed input, valid while the caller keeps it */
	size_t len;
	struct json_node *nodes; /**< owned */
	uint32_t n_nodes;
	uint32_t cap_nodes;
	struct json_limits lim;
	uint32_t *stk;	/**< owned: open containers and their last child, 2 x (max_depth + 1) */
	size_t err_off; /**< where parsing failed */
	const char *err_msg; /**< static message of the last failure, "" when none */
};

/** Initialise an empty document with limits @p lim (copied; may be NULL for defaults). */
void json_doc_init(struct json_doc *d, const struct json_limits *lim);

/** Free the node array; the document can be parsed into again. */
void json_doc_release(struct json_doc *d);

/**
 * Parse @p text[0..len) (borrowed until the next parse or release).
 * @return 0; -EBADMSG malformed (err_off/err_msg say where and why);
 *         -E2BIG a cap was hit; -ENOMEM.
 */
int json_parse(struct json_doc *d, const uint8_t *text, size_t len);

/** Node @p i of @p d. */
static inline const struct json_node *json_node(const struct json_doc *d, uint32_t i)
{
	return &d->nodes[i];
}

/**
 * Decode a JSON string body (escaped, unquoted) into @p out (at most
 * @p cap bytes, UTF-8). @return the decoded length, or -E2BIG when it
 * does not fit, -EBADMSG for a bad escape.
 */
long json_unescape(const uint8_t *s, size_t len, uint8_t *out, size_t cap);

/** Stable name of @p type: "null", "boolean", "number", "string", "array", "object". */
const char *json_type_name(unsigned type);

#endif
