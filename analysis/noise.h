/* SPDX-License-Identifier: MIT */
/*
 * noise - explicit noise rules for `dyetap diff` (grammar: docs/diff-rules.md).
 *
 * A rules file tells the differ what not to count: header names to
 * ignore (or to compare although the default list ignores them), JSON
 * paths to ignore (with `*`, `[*]` and `..` wildcards), POSIX extended
 * regular expressions whose matches are masked in bodies or header values,
 * numeric tolerance per JSON path, and arrays to compare without order or
 * keyed by a field. Rules are global or scoped to endpoints by a
 * `[METHOD /path/template]` section (fnmatch(3) globs).
 *
 * Learned noise (primary vs secondary) lives in the analysis context, not
 * here: these are only the rules a user wrote.
 */
#ifndef DYETAP_ANALYSIS_NOISE_H
#define DYETAP_ANALYSIS_NOISE_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum noise_kind {
	NOISE_IGNORE_HEADER = 1, /**< ignore header NAME-GLOB */
	NOISE_CHECK_HEADER,	 /**< check header NAME-GLOB (undo a default ignore) */
	NOISE_IGNORE_PATH,	 /**< ignore path JSON-PATH */
	NOISE_IGNORE_STATUS,	 /**< ignore status */
	NOISE_MASK_BODY,	 /**< mask body REGEX */
	NOISE_MASK_HEADER,	 /**< mask header NAME-GLOB REGEX */
	NOISE_TOLERANCE,	 /**< tolerance JSON-PATH NUMBER[%] */
	NOISE_UNORDERED,	 /**< unordered JSON-PATH */
	NOISE_KEYED,		 /**< key JSON-PATH FIELD */
};

/** One component of a compiled JSON path pattern. */
enum noise_pc_type {
	NOISE_PC_KEY,	    /**< .name or ["name"] */
	NOISE_PC_ANY_KEY,   /**< .* */
	NOISE_PC_INDEX,	    /**< [3] */
	NOISE_PC_ANY_INDEX, /**< [*]: any element (index, keyed or unordered) */
	NOISE_PC_DESCEND,   /**< .. : zero or more components */
};

struct noise_pc {
	uint8_t type; /**< enum noise_pc_type */
	char *key;    /**< owned, NOISE_PC_KEY only */
	size_t key_len;
	uint64_t index; /**< NOISE_PC_INDEX only */
};

#define NOISE_MAX_PATH 32

struct noise_path {
	struct noise_pc pc[NOISE_MAX_PATH];
	size_t n;
};

/** A position in a JSON document while diffing (the subject of matching). */
struct noise_pos {
	uint8_t is_index;   /**< 0 object member, 1 array element */
	const uint8_t *key; /**< member name as written (escaped); borrowed */
	uint32_t key_len;
	uint64_t index;	     /**< array index (UINT64_MAX for keyed/unordered elements) */
	const uint8_t *kval; /**< keyed arrays: the key field's value as written; borrowed */
	uint32_t kval_len;
	const char *kfield; /**< keyed arrays: the key field name; borrowed */
};

struct noise_rule {
	enum noise_kind kind;
	unsigned line; /**< line in the rules text, for messages and hit lists */
	char *scope;   /**< owned endpoint glob ("GET /users/{id}"), NULL = global */
	char *header;  /**< owned lower-case header glob */
	struct noise_path path;
	bool has_re;
	regex_t re;
	char *re_src; /**< owned */
	char lit[32]; /**< literal every match starts with (prefilter), may be empty */
	size_t lit_len;
	double tol; /**< tolerance: absolute, or relative fraction when tol_rel */
	bool tol_rel;
	char *field; /**< owned key field for NOISE_KEYED */
	/** NOISE_IGNORE_STATUS of one transition ("ignore status 304 -> 200"):
	 *  the primary's and the candidate's code; -1: every change */
	int st_from, st_to;
	char *text; /**< owned: the rule as written (for reports) */
};

struct noise_rules {
	struct noise_rule *v; /**< owned */
	size_t n;
};

/**
 * Parse rules text @p text[0..len).
 * @return the rules, or NULL with "line N: why" in @p err.
 */
struct noise_rules *noise_rules_parse(const char *text, size_t len, char *err, size_t errlen);

/** Read and parse a rules file; NULL with a message in @p err. */
struct noise_rules *noise_rules_load(const char *path, char *err, size_t errlen);

/** Free rules; accepts NULL. */
void noise_rules_free(struct noise_rules *r);

/** True when rule @p r applies to endpoint @p endpoint ("GET /users/{id}"). */
bool noise_rule_applies(const struct noise_rule *r, const char *endpoint);

/**
 * Compile a JSON path pattern ("$.items[*].ts", "$..id", "$['a b']").
 * @return 0 or -EINVAL (message in @p err). Free with noise_path_release().
 */
int noise_path_compile(struct noise_path *p, const char *s, char *err, size_t errlen);

/** Free what noise_path_compile() allocated. */
void noise_path_release(struct noise_path *p);

/** True when the position stack @p pos[0..n) matches pattern @p p. */
bool noise_path_match(const struct noise_path *p, const struct noise_pos *pos, size_t n);

/** True when lower-case header name @p name[0..n) matches glob @p glob. */
bool noise_header_match(const char *glob, const char *name, size_t n);

#endif
