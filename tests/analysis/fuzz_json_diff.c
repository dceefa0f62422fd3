/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json_diff - libFuzzer target for the JSON parser and the structural
 * differ. The input is split at its first 0x00 byte (or in the middle) into
 * a primary and a candidate body; both are parsed and diffed with a rule
 * set that exercises ignores, tolerances, unordered and keyed arrays.
 * Invariants checked: a parsed document's links stay inside its node
 * array, and a JSON body diffed with itself (other whitespace) has no
 * difference.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "analysis/json.h"
#include "analysis/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char rules_txt[] = "ignore path $..ts\n"
				"tolerance $.p 0.5\n"
				"tolerance $..price 1%\n"
				"unordered $.tags\n"
				"key $.items id\n"
				"key $..users name\n"
				"mask body [0-9]{6,}\n";

static void check_links(const struct json_doc *d)
{
	for (uint32_t i = 0; i < d->n_nodes; i++) {
		const struct json_node *n = json_node(d, i);
		if (n->next >= d->n_nodes || n->first >= d->n_nodes ||
		    (size_t)n->off + n->len > d->len || (size_t)n->key_off + n->key_len > d->len)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct noise_rules *rules;
	static const struct noise_rule *ptrs[16];
	static struct diff_ruleset rs;
	if (!rules) {
		char err[256];
		rules = noise_rules_parse(rules_txt, strlen(rules_txt), err, sizeof(err));
		if (!rules)
			abort();
		for (size_t i = 0; i < rules->n; i++)
			ptrs[rs.n++] = &rules->v[i];
		rs.v = ptrs;
		rs.all = rules;
		rs.has_path_rules = rs.has_body_masks = true;
	}
	const uint8_t *cut = memchr(data, 0, size);
	size_t alen = cut ? (size_t)(cut - data) : size / 2;
	const uint8_t *b = data + alen + (cut ? 1 : 0);
	size_t blen = size - (size_t)(b - data);

	struct json_limits lim = {.max_bytes = 1 << 20, .max_depth = 32, .max_nodes = 1 << 16};
	struct json_doc d;
	json_doc_init(&d, &lim);
	if (json_parse(&d, data, alen) == 0)
		check_links(&d);
	json_doc_release(&d);

	struct diff_params p = {.max_body = 1 << 20, .max_findings = 32};
	struct diff_engine e;
	if (diff_engine_init(&e, &p))
		return 0;
	for (int pass = 0; pass < 2; pass++) {
		e.nf = 0;
		e.rs = pass ? &rs : NULL;
		diff_engine_body(&e, "application/json", 16, data, alen, b, blen);
	}
	/* a JSON body equals itself with other whitespace around it (no fast path) */
	uint8_t *copy = malloc(alen + 2);
	if (copy) {
		copy[0] = ' ';
		memcpy(copy + 1, data, alen);
		copy[alen + 1] = '\n';
		if (json_parse(&e.ja, data, alen) == 0) {
			e.nf = 0;
			e.rs = NULL;
			diff_engine_body(&e, "application/json", 16, data, alen, copy, alen + 2);
			if (e.nf)
				abort();
		}
		free(copy);
	}
	diff_engine_release(&e);
	return 0;
}
