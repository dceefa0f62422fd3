/* SPDX-License-Identifier: MIT */
/*
 * Runs every example of docs/diff-rules.md: each ```rules block must
 * parse, each ```rules-invalid block must be rejected with a line number,
 * and each ```check block diffs its primary and candidate JSON under the
 * rules block before it and must report exactly its expect list.
 *
 * usage: test_rules_doc docs/diff-rules.md
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "analysis/noise.h"
#include "tests/tap.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	if (b)
		b[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* Value of "key:" line in a check block, trimmed; "" when absent. */
static void field(const char *blk, const char *key, char *out, size_t cap)
{
	out[0] = '\0';
	const char *p = strstr(blk, key);
	if (!p)
		return;
	p += strlen(key);
	while (*p == ' ')
		p++;
	const char *e = strchr(p, '\n');
	size_t n = e ? (size_t)(e - p) : strlen(p);
	while (n && p[n - 1] == ' ')
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static void run_check(const struct noise_rules *r, const char *blk, int idx)
{
	char a[1024], b[1024], want[1024], got[2048];
	field(blk, "primary:", a, sizeof(a));
	field(blk, "candidate:", b, sizeof(b));
	field(blk, "expect:", want, sizeof(want));
	static const struct noise_rule *ptrs[64];
	struct diff_ruleset rs = {.v = ptrs, .all = r};
	for (size_t i = 0; r && i < r->n && i < 64; i++) {
		ptrs[rs.n++] = &r->v[i];
		rs.has_path_rules = true;
		rs.has_body_masks |= r->v[i].kind == NOISE_MASK_BODY;
	}
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	e.nf = 0;
	e.rs = &rs;
	diff_engine_body(&e, "application/json", 16, (const uint8_t *)a, strlen(a),
			 (const uint8_t *)b, strlen(b));
	size_t o = 0;
	got[0] = '\0';
	for (uint32_t i = 0; i < e.nf; i++)
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%s %s", i ? "; " : "",
				      e.f[i].loc, diff_kind_name(e.f[i].kind));
	TAP_EQ_STR(got, want, "check block %d gives the documented differences", idx);
	diff_engine_release(&e);
}

int main(int argc, char **argv)
{
	size_t len;
	char *doc = argc > 1 ? slurp(argv[1], &len) : NULL;
	if (!doc)
		TAP_SKIP_ALL("docs/diff-rules.md not found");
	struct noise_rules *last = NULL;
	int n_rules = 0, n_invalid = 0, n_check = 0;
	char *p = doc;
	while ((p = strstr(p, "\n```")) != NULL) {
		p += 4;
		char *eol = strchr(p, '\n');
		if (!eol)
			break;
		char tag[32] = "";
		size_t tl = (size_t)(eol - p);
		if (tl < sizeof(tag)) {
			memcpy(tag, p, tl);
			tag[tl] = '\0';
		}
		char *body = eol + 1;
		char *end = strstr(body, "```");
		if (!end)
			break;
		*end = '\0';
		char err[256];
		if (!strcmp(tag, "rules")) {
			noise_rules_free(last);
			last = noise_rules_parse(body, strlen(body), err, sizeof(err));
			n_rules++;
			if (!last)
				printf("# %s\n", err);
			TAP_OK(last != NULL, "rules example %d parses", n_rules);
		} else if (!strcmp(tag, "rules-invalid")) {
			struct noise_rules *r =
			    noise_rules_parse(body, strlen(body), err, sizeof(err));
			n_invalid++;
			printf("# %s\n", err);
			TAP_OK(!r && strstr(err, "line "), "invalid example %d rejected",
			       n_invalid);
			noise_rules_free(r);
		} else if (!strcmp(tag, "check")) {
			n_check++;
			run_check(last, body, n_check);
		}
		p = end + 3;
	}
	TAP_OK(n_rules >= 10 && n_invalid >= 3 && n_check >= 6,
	       "the document has its examples (%d rules, %d invalid, %d checks)", n_rules,
	       n_invalid, n_check);
	noise_rules_free(last);
	free(doc);
	return tap_done();
}
