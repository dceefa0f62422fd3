/* SPDX-License-Identifier: MIT */
/*
 * diff_align - match the elements of two JSON arrays before they are
 * compared (docs/diff.md "Arrays"), so that one element inserted or
 * removed is one difference, not a shift of every later element, and the
 * same elements in another order are one `order_changed` difference.
 *
 * Elements are matched, in this order of preference:
 *   1. by identity: a member with an id-like name ("id", "_id", "uuid",
 *      "key", "slug", "...Id", "..._id") that every element of both arrays
 *      has as a scalar, unique within each array; its values are compared
 *      as written, so 1 and "1" are the same element (a type change of the
 *      id is then reported at `$[*].id`);
 *   2. by content: a hash of each element (object members in any order),
 *      equal elements matched in order;
 *   3. by position: what is left unmatched on both sides is paired in
 *      order, so an element whose content changed is compared field by
 *      field.
 * The order is judged on the pairs matched in steps 1 and 2: the longest
 * increasing subsequence of their candidate positions (the LCS of the two
 * sequences of keys) stays in place, the rest moved.
 *
 * Internal to the analysis module; not a public contract.
 */
#ifndef DYETAP_ANALYSIS_DIFF_ALIGN_H
#define DYETAP_ANALYSIS_DIFF_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/json.h"

/* Arrays longer than this on either side are compared by position. */
#define DIFF_ALIGN_MAX 65536u

enum diff_align_how {
	DIFF_ALIGN_POSITION = 0, /* no identity, no equal content: by position */
	DIFF_ALIGN_KEY = 1,	 /* by an identity member (kfield) */
	DIFF_ALIGN_CONTENT = 2,	 /* by content hash */
};

/*
 * The alignment of arrays a (na elements) and b (nb elements). Arrays are
 * owned by the caller (sized na and nb): ea/eb hold the element node
 * indices in order, ma[i] receives the index in b + 1 of a's element i (0:
 * missing from b), mb[j] likewise for b (0: extra in b).
 */
struct diff_alignment {
	uint32_t na, nb;
	uint32_t *ea, *eb;
	uint32_t *ma, *mb;
	uint32_t *tmp; /* na + nb entries of scratch for the caller */
	enum diff_align_how how;
	const uint8_t *kfield; /* identity member name as written in a's text; borrowed */
	uint32_t kfield_len;
	uint32_t matched; /* pairs matched by identity or content */
	uint32_t moved;	  /* of those: not in the longest in-order subsequence */
};

/*
 * Align elements @p al->ea[0..na) of @p da with @p al->eb[0..nb) of @p db
 * (set by the caller, with ma, mb and tmp) into al->ma, al->mb and the
 * rest of @p al. @p budget: node visits left for the pair, decremented
 * (an exhausted budget falls back to position). @return 0 or -ENOMEM.
 */
int diff_align(struct diff_alignment *al, const struct json_doc *da, const struct json_doc *db,
	       size_t *budget);

#endif
