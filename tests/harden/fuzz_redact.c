/* SPDX-License-Identifier: MIT */
/*
 * fuzz_redact - libFuzzer target for capture/redact.c: the input is used
 * as a JSON request body, as the query of the request-target and as a
 * Cookie and Set-Cookie value, against the default rules plus array,
 * index and drop paths. Checks that a changed body is still accepted by
 * the scanner (redacting twice changes nothing more). Seeds: corpus-redact/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/redact.h"
#include "common/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct redact *rules(void)
{
	static const char *const extra[] = {"json:$.items[*].card", "json:$.a[0].b:drop",
					    "json:$.user.token",    "json:$.debug:drop",
					    "cookie:trk:drop",	    "query:sig:drop"};
	char err[128];
	struct redact *r = redact_create();
	if (!r)
		return NULL;
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (redact_add(r, extra[i], err, sizeof(err)) < 0)
			abort();
	if (redact_add_defaults(r) < 0)
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct redact *r = rules();
	if (!r)
		return 0;
	char *target = mem_alloc(size + 3);
	if (!target) {
		redact_free(r);
		return 0;
	}
	memcpy(target, "/?", 2);
	if (size)
		memcpy(target + 2, data, size);
	struct store_slice in = {data, size};
	struct store_header h[] = {
	    {{(const uint8_t *)"Content-Type", 12}, {(const uint8_t *)"application/json", 16}},
	    {{(const uint8_t *)"Cookie", 6}, in},
	};
	struct store_header rh[] = {
	    {{(const uint8_t *)"Content-Type", 12}, {(const uint8_t *)"application/json", 16}},
	    {{(const uint8_t *)"Set-Cookie", 10}, in},
	};
	struct store_session s, out, again;
	memset(&s, 0, sizeof(s));
	s.req.present = true;
	s.req.target = (struct store_slice){(const uint8_t *)target, size + 2};
	s.req.headers = h;
	s.req.n_headers = 2;
	s.req.body = in;
	s.req.body_len = size;
	s.resp.present = true;
	s.resp.headers = rh;
	s.resp.n_headers = 2;
	s.resp.body = in;
	s.resp.body_len = size;
	if (redact_session(r, &s, &out) == 0 && out.req.body.ptr != data) {
		/* A rewritten body is valid JSON with nothing left to redact. */
		uint8_t *copy = mem_alloc(out.req.body.len + 1);
		if (copy) {
			memcpy(copy, out.req.body.ptr, out.req.body.len);
			struct store_session s2 = s;
			s2.req.body = (struct store_slice){copy, out.req.body.len};
			uint64_t skipped = redact_get_stats(r)->json_skipped;
			if (redact_session(r, &s2, &again) == 0) {
				/* The request body parses again and stays byte for byte. */
				if (redact_get_stats(r)->json_skipped != skipped)
					abort();
				if (again.req.body.len != s2.req.body.len ||
				    memcmp(again.req.body.ptr, copy, s2.req.body.len) != 0)
					abort();
			}
			mem_free(copy);
		}
	}
	mem_free(target);
	redact_free(r);
	return 0;
}
