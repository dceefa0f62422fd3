/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rules - libFuzzer target for the color rules parser and matcher
 * (capture/rules.h).
 *
 * Input: lines. Lines before the first empty line are rules (each given to
 * rules_add, refused ones must leave a message starting "rule '"); the
 * rest is a request: "METHOD TARGET" then "Name: value" headers, matched
 * against the rule set with a few address variants.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/rules.h"
#include "common/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_RULES_HDR 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = mem_strndup((const char *)data, size);
	if (!text)
		return 0;
	struct rules *r = rules_create();
	if (!r) {
		mem_free(text);
		return 0;
	}
	char *p = text, *end = text + size;
	char err[256];
	/* rules */
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		*le = '\0';
		if (le == p) {
			p = le + 1;
			break;
		}
		err[0] = '\0';
		int rc = rules_add(r, p, err, sizeof(err));
		if (rc == -EINVAL && strncmp(err, "rule '", 6) != 0)
			abort();
		if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
			abort();
		p = le + 1;
	}
	/* request */
	struct store_session s;
	memset(&s, 0, sizeof(s));
	struct store_header h[FUZZ_RULES_HDR];
	size_t nh = 0;
	bool first = true;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		size_t ll = (size_t)(le - p);
		if (first) {
			char *sp = memchr(p, ' ', ll);
			s.req.present = true;
			s.req.method.ptr = (const uint8_t *)p;
			s.req.method.len = sp ? (size_t)(sp - p) : ll;
			s.req.target.ptr = (const uint8_t *)(sp ? sp + 1 : le);
			s.req.target.len = sp ? (size_t)(le - sp - 1) : 0;
			first = false;
		} else if (nh < FUZZ_RULES_HDR) {
			char *c = memchr(p, ':', ll);
			h[nh].name.ptr = (const uint8_t *)p;
			h[nh].name.len = c ? (size_t)(c - p) : ll;
			h[nh].value.ptr = (const uint8_t *)(c ? c + 1 : le);
			h[nh].value.len = c ? (size_t)(le - c - 1) : 0;
			nh++;
		}
		p = le + 1;
	}
	s.req.headers = h;
	s.req.n_headers = nh;
	for (int v = 0; v < 3; v++) {
		s.ip_version = v == 2 ? 6 : 4;
		s.src.addr[0] = (uint8_t)(10 * v);
		s.src.port = (uint16_t)(80 + v);
		s.dst.port = (uint16_t)(8080 - v);
		s.vlan = (uint16_t)(v * 100);
		const char *lane = rules_match(r, &s);
		if (lane && !*lane)
			abort();
	}
	(void)rules_l4_only(r);
	for (size_t i = 0; i < rules_count(r); i++)
		if (!rules_text(r, i))
			abort();
	rules_free(r);
	mem_free(text);
	return 0;
}
