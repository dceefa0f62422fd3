/* SPDX-License-Identifier: MIT */
/*
 * rules - color rules (grammar and semantics in docs/rules.md).
 *
 * A rule names a lane and a conjunction of matchers; the first rule that
 * matches a transaction wins; a transaction no rule matches is uncolored
 * (baseline lane). The same grammar is used on the command line
 * (`--color 'blue=header:x-lane=blue'`) and in a rules file (one rule per
 * line, '#' comments). A lane maps to targets separately (`--lane`).
 *
 * Thread-safety: a compiled rule set is immutable and may be shared by
 * threads.
 */
#ifndef DYETAP_CAPTURE_RULES_H
#define DYETAP_CAPTURE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct rules;

/** Create an empty rule set (matches nothing). NULL on allocation failure. */
struct rules *rules_create(void);

/** Free; accepts NULL. */
void rules_free(struct rules *r);

/**
 * Parse and append one rule "LANE=MATCH[,MATCH...]".
 * @return 0, -EINVAL with a message naming the bad part in @p err, -ENOMEM.
 */
int rules_add(struct rules *r, const char *text, char *err, size_t errlen);

/**
 * Append the rules of a file (one per line, blank lines and '#' comments
 * ignored). @return 0 or -errno with "FILE:LINE: message" in @p err.
 */
int rules_load_file(struct rules *r, const char *path, char *err, size_t errlen);

/** Number of rules. */
size_t rules_count(const struct rules *r);

/** The text of rule @p i as given (borrowed). */
const char *rules_text(const struct rules *r, size_t i);

/**
 * The texts of all rules (borrowed) in an array for store metadata; free the
 * array with mem_free(). @p r may be NULL (no rules). NULL only when the
 * allocation failed; *n gets the count.
 */
const char **rules_text_array(const struct rules *r, size_t *n);

/**
 * Lane of the first rule matching @p s, or NULL when none matches.
 * The result is borrowed from the rule set.
 */
const char *rules_match(const struct rules *r, const struct store_session *s);

/**
 * True when every rule can be decided from L3/L4 fields alone (addresses,
 * ports, vlan), so a fast path needs no HTTP parsing to color a flow.
 */
bool rules_l4_only(const struct rules *r);

/**
 * The sampling hash of docs/rules.md ("Sampling"): FNV-1a 64 of the key's
 * value bytes, then MurmurHash3's fmix64. A value is in a `sample:...:R%`
 * rule when rules_sample_hash(value) % 1000000 < R * 10000.
 */
uint64_t rules_sample_hash(const uint8_t *v, size_t n);

#endif
