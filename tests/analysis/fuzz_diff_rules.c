/* SPDX-License-Identifier: MIT */
/*
 * fuzz_diff_rules - libFuzzer target for the noise rules parser
 * (docs/diff-rules.md). Parsed rules are then applied to a fixed pair of
 * responses through a whole analysis context, so masks, scopes, header
 * globs and path patterns run too.
 */
#include <string.h>

#include "analysis/diff.h"
#include "analysis/noise.h"
#include "tests/analysis/analysis_sample.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	if (size > 4096)
		return 0; /* long regexes only make the run slow */
	struct noise_rules *r = noise_rules_parse((const char *)data, size, err, sizeof(err));
	if (!r)
		return 0;
	struct diff_params p = {.rules = r};
	struct diff_ctx *c = diff_ctx_create(&p);
	if (c) {
		static const char *const ph[] = {"Content-Type: application/json",
						 "X-Trace-Id: abc", "Cache-Control: max-age=1",
						 NULL};
		static const char *const ch[] = {"Content-Type: application/json",
						 "X-Trace-Id: def", "Cache-Control: no-cache",
						 NULL};
		static const char pb[] =
		    "{\"items\":[{\"id\":1,\"ts\":5,\"price\":1.5}],\"tags\":[1,"
		    "2],\"n\":\"x-123\"}";
		static const char cb[] =
		    "{\"items\":[{\"id\":1,\"ts\":6,\"price\":1.6}],\"tags\":[2,"
		    "1],\"n\":\"x-456\"}";
		static const char tp[] = "line 1\nid 1234\nend\n", tc[] = "line 1\nid 5678\nend\n";
		for (int i = 0; i < 4; i++) {
			struct as_pair x;
			as_pair_init(&x, (uint64_t)i, i % 2 ? "POST" : "GET",
				     i < 2 ? "/users/42" : "/text", NULL);
			if (i < 2) {
				as_resp(&x.prim, 200, ph, pb, strlen(pb));
				as_resp(&x.cand, 201, ch, cb, strlen(cb));
			} else {
				as_resp(&x.prim, 200, NULL, tp, strlen(tp));
				as_resp(&x.cand, 200, NULL, tc, strlen(tc));
			}
			as_pair_link(&x);
			diff_ctx_add(c, &x.s, &x.r,
				     i == 3 ? DIFF_ROLE_SECONDARY : DIFF_ROLE_CANDIDATE);
		}
		diff_ctx_finish(c);
		diff_ctx_free(c);
	}
	noise_rules_free(r);
	return 0;
}
