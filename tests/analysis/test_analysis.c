/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for analysis/: the JSON parser (valid, invalid, caps), path
 * templates, noise rules and path patterns, the structural JSON differ,
 * headers, content decoders (gzip, deflate, br, zstd), volatile values,
 * noise learning, grouping, accounting and gates.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include "analysis/diff.h"
#include "analysis/diff_causes.h"
#include "analysis/diff_private.h"
#include "analysis/json.h"
#include "analysis/noise.h"
#include "analysis/report.h"
#include "analysis/tmpl.h"
#include "tests/analysis/analysis_sample.h"
#include "tests/tap.h"

static int parse(const char *s)
{
	struct json_doc d;
	json_doc_init(&d, NULL);
	int rc = json_parse(&d, (const uint8_t *)s, strlen(s));
	json_doc_release(&d);
	return rc;
}

static void test_json_parser(void)
{
	static const char *const valid[] = {
	    "{}",
	    "[]",
	    "0",
	    "-0.5e+10",
	    "\"a\\u00e9\\ud83d\\ude00\"",
	    " {\"a\":[1,2,{\"b\":null}]} ",
	    "true",
	    "false",
	    "null",
	    "\"h\xc3\xa9\"",
	    "[1e5,2E-3,0.0]",
	};
	static const char *const invalid[] = {
	    "",	    "{",    "[1,]",	"{\"a\":1,}",  "01",	       "1.",	    ".5",
	    "-",    "+1",   "\"\\x\"",	"\"a",	       "[1 2]",	       "{\"a\" 1}", "{a:1}",
	    "tru",  "nul",  "\"\x01\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\xff\"",  "\"\xc0\xaf\"",
	    "[1]x", "{}{}", "NaN",	"[\"a\",]",
	};
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		TAP_OK(parse(valid[i]) == 0, "valid JSON %zu parses", i);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		TAP_OK(parse(invalid[i]) == -EBADMSG, "invalid JSON %zu rejected", i);

	struct json_doc d;
	struct json_limits lim = {.max_depth = 8, .max_bytes = 64, .max_nodes = 10};
	json_doc_init(&d, &lim);
	const char *deep8 = "[[[[[[[[1]]]]]]]]", *deep9 = "[[[[[[[[[1]]]]]]]]]";
	TAP_OK(json_parse(&d, (const uint8_t *)deep8, strlen(deep8)) == 0, "depth 8 within cap");
	TAP_OK(json_parse(&d, (const uint8_t *)deep9, strlen(deep9)) == -E2BIG, "depth 9 over cap");
	char big[80];
	memset(big, ' ', sizeof(big));
	big[0] = '1';
	TAP_OK(json_parse(&d, (const uint8_t *)big, sizeof(big)) == -E2BIG, "size cap");
	const char *many = "[1,2,3,4,5,6,7,8,9,10]";
	TAP_OK(json_parse(&d, (const uint8_t *)many, strlen(many)) == -E2BIG, "node cap");
	const char *ok = "{\"k\":[true,\"s\"]}";
	TAP_OK(json_parse(&d, (const uint8_t *)ok, strlen(ok)) == 0, "parse after failures");
	TAP_EQ_U64(d.n_nodes, 4, "node count");
	const struct json_node *root = json_node(&d, 0);
	TAP_OK(root->type == JSON_OBJECT && root->n == 1, "root object with one member");
	const struct json_node *arr = json_node(&d, root->first);
	TAP_OK(arr->type == JSON_ARRAY && arr->n == 2 && arr->key_len == 1, "member is an array");
	const struct json_node *s = json_node(&d, json_node(&d, arr->first)->next);
	TAP_OK(s->type == JSON_STRING && s->len == 1 && d.text[s->off] == 's', "string slice");
	json_doc_release(&d);

	uint8_t out[16];
	const char *esc = "a\\n\\u00e9\\ud83d\\ude00";
	long n = json_unescape((const uint8_t *)esc, strlen(esc), out, sizeof(out));
	TAP_OK(n == 8 && !memcmp(out, "a\n\xc3\xa9\xf0\x9f\x98\x80", 8), "unescape");
	TAP_OK(json_unescape((const uint8_t *)"abcdef", 6, out, 3) == -E2BIG, "unescape cap");
}

static void test_tmpl(void)
{
	static const char *const cases[][3] = {
	    {"GET", "/users/123", "GET /users/{id}"},
	    {"GET", "/users/123/orders/9?x=1", "GET /users/{id}/orders/{id}"},
	    {"PUT", "/items/3fa85f64-5717-4562-b3fc-2c963f66afa6", "PUT /items/{id}"},
	    {"GET", "/blobs/deadbeef0123", "GET /blobs/{id}"},
	    {"GET", "/static/app.js", "GET /static/app.js"},
	    {"GET", "/", "GET /"},
	    {"GET", "http://example.com/a/42", "GET /a/{id}"},
	    {"GET", "/search?q=1", "GET /search"},
	    {"GET", "/t/AbCdEfGhIjKlMnOpQrSt12", "GET /t/{id}"},
	    {"GET", "/v1/health", "GET /v1/health"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		tmpl_endpoint(cases[i][0], strlen(cases[i][0]), cases[i][1], strlen(cases[i][1]),
			      out, sizeof(out));
		TAP_EQ_STR(out, cases[i][2], "template of %s", cases[i][1]);
	}
	char small[8];
	tmpl_endpoint("GET", 3, "/abcdefgh", 9, small, sizeof(small));
	TAP_EQ_STR(small, "GET /ab", "truncated to the buffer");
}

static void test_rules(void)
{
	char err[256];
	const char *txt = "# comment\n"
			  "ignore header x-trace-*\n"
			  "ignore path $.items[*].ts\n"
			  "mask body [0-9a-f]{32}\n"
			  "[GET /users/*]\n"
			  "tolerance $.price 0.01\n"
			  "unordered $.tags\n"
			  "key $.items id\n"
			  "[*]\n"
			  "check header etag\n";
	struct noise_rules *r = noise_rules_parse(txt, strlen(txt), err, sizeof(err));
	TAP_OK(r != NULL, "rules parse (%s)", r ? "" : err);
	if (!r)
		return;
	TAP_EQ_U64(r->n, 7, "seven rules");
	TAP_OK(r->v[0].kind == NOISE_IGNORE_HEADER && !r->v[0].scope, "global header rule");
	TAP_OK(r->v[3].scope && !strcmp(r->v[3].scope, "GET /users/*"), "scoped rule");
	TAP_OK(noise_rule_applies(&r->v[3], "GET /users/{id}"), "scope matches");
	TAP_OK(!noise_rule_applies(&r->v[3], "POST /users/{id}"), "scope does not match");
	TAP_OK(r->v[6].scope == NULL && r->v[6].kind == NOISE_CHECK_HEADER, "[*] back to global");
	TAP_EQ_U64(r->v[3].line, 6, "line numbers kept");
	noise_rules_free(r);

	static const char *const bad[] = {
	    "ignore nothing x",	 "mask body (",	     "tolerance $.a x", "key $.a",
	    "ignore path a.b",	 "unordered $.a..",  "frobnicate",	"[GET /x",
	    "ignore header a b", "tolerance $.a -1", "mask body a++",	"mask body (a{50}){200}",
	    "mask body x*{3}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		r = noise_rules_parse(bad[i], strlen(bad[i]), err, sizeof(err));
		TAP_OK(!r && !strncmp(err, "line 1: ", 8), "bad rule '%s' rejected: %s", bad[i],
		       err);
		noise_rules_free(r);
	}

	struct noise_path p;
	TAP_OK(noise_path_compile(&p, "$.items[*].ts", err, sizeof(err)) == 0, "compile path");
	struct noise_pos pos[3] = {
	    {.is_index = 0, .key = (const uint8_t *)"items", .key_len = 5},
	    {.is_index = 1, .index = 4},
	    {.is_index = 0, .key = (const uint8_t *)"ts", .key_len = 2},
	};
	TAP_OK(noise_path_match(&p, pos, 3), "$.items[*].ts matches $.items[4].ts");
	TAP_OK(!noise_path_match(&p, pos, 2), "does not match $.items[4]");
	noise_path_release(&p);
	TAP_OK(noise_path_compile(&p, "$..ts", err, sizeof(err)) == 0, "compile $..ts");
	TAP_OK(noise_path_match(&p, pos, 3), "$..ts matches at depth 3");
	TAP_OK(noise_path_match(&p, pos + 2, 1), "$..ts matches at depth 1");
	noise_path_release(&p);
	TAP_OK(noise_path_compile(&p, "$['items'][4].*", err, sizeof(err)) == 0, "compile quoted");
	TAP_OK(noise_path_match(&p, pos, 3), "quoted name, index and .* match");
	noise_path_release(&p);
}

/* Findings of diffing JSON a vs b with optional rules, as "loc kind" lines. */
static char result[4096];
static char e_pval[512], e_cval[512]; /* values of the first finding of the last jdiff() */
static bool e_vol;		      /* and whether it looked volatile */
static const struct noise_rule *rule_ptrs[32];

static const char *jdiff(const char *a, const char *b, const char *rules_txt)
{
	struct diff_engine e;
	char err[256];
	struct noise_rules *rules = NULL;
	struct diff_ruleset rs;
	memset(&rs, 0, sizeof(rs));
	if (rules_txt) {
		rules = noise_rules_parse(rules_txt, strlen(rules_txt), err, sizeof(err));
		if (!rules) {
			snprintf(result, sizeof(result), "rules error: %s", err);
			return result;
		}
		rs.v = rule_ptrs;
		for (size_t i = 0; i < rules->n; i++) {
			rule_ptrs[rs.n++] = &rules->v[i];
			rs.has_path_rules = true;
			rs.has_body_masks |= rules->v[i].kind == NOISE_MASK_BODY;
		}
		rs.all = rules;
	}
	diff_engine_init(&e, NULL);
	e.nf = 0;
	e.rs = rules ? &rs : NULL;
	diff_engine_body(&e, "application/json", 16, (const uint8_t *)a, strlen(a),
			 (const uint8_t *)b, strlen(b));
	size_t o = 0;
	result[0] = '\0';
	for (uint32_t i = 0; i < e.nf; i++)
		o += (size_t)snprintf(result + o, sizeof(result) - o, "%s%s%s%s%s %s",
				      i ? "; " : "", e.f[i].loc, e.f[i].iloc[0] ? " (" : "",
				      e.f[i].iloc + (e.f[i].iloc[0] ? 5 : 0),
				      e.f[i].iloc[0] ? ")" : "", diff_kind_name(e.f[i].kind));
	snprintf(e_pval, sizeof(e_pval), "%s", e.nf ? e.f[0].pval : "");
	snprintf(e_cval, sizeof(e_cval), "%s", e.nf ? e.f[0].cval : "");
	e_vol = e.nf && e.f[0].vol;
	diff_engine_release(&e);
	noise_rules_free(rules);
	return result;
}

/* Array alignment (analysis/diff_align.h, docs/diff.md "Arrays"). */
static void test_align(void)
{
	TAP_EQ_STR(jdiff("[{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"},{\"id\":3,\"t\":\"c\"}]",
			 "[{\"id\":0,\"t\":\"z\"},{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"},"
			 "{\"id\":3,\"t\":\"c\"}]",
			 NULL),
		   "body:$[*] ($[0]) extra",
		   "one element inserted first is one difference (by id)");
	TAP_EQ_STR(jdiff("[{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"},{\"id\":3,\"t\":\"c\"}]",
			 "[{\"id\":1,\"t\":\"a\"},{\"id\":3,\"t\":\"c\"}]", NULL),
		   "body:$[*] ($[1]) missing", "one element removed is one difference (by id)");
	TAP_EQ_STR(jdiff("[\"x\",\"y\",\"z\",\"w\"]", "[\"x\",\"z\",\"w\"]", NULL),
		   "body:$[*] ($[1]) missing", "scalars aligned by content");
	TAP_EQ_STR(jdiff("[{\"id\":1,\"v\":5},{\"id\":2,\"v\":6},{\"id\":3,\"v\":7}]",
			 "[{\"id\":3,\"v\":7},{\"id\":2,\"v\":6},{\"id\":1,\"v\":5}]", NULL),
		   "body:$ order_changed", "the same elements in another order: one order_changed");
	TAP_EQ_STR(e_pval, "[1,2,3]", "order_changed: the primary order of the ids");
	TAP_EQ_STR(e_cval, "[3,2,1]", "order_changed: the candidate order of the ids");
	TAP_EQ_STR(jdiff("{\"t\":[1,2,3,4]}", "{\"t\":[4,1,2,3]}", NULL), "body:$.t order_changed",
		   "scalars moved: order_changed by content");
	TAP_EQ_STR(e_cval, "[3,0,1,2]",
		   "order_changed by content: primary indexes in candidate order");
	TAP_EQ_STR(jdiff("[{\"id\":1,\"n\":\"a\"},{\"id\":2,\"n\":\"b\"}]",
			 "[{\"id\":\"1\",\"n\":\"a\"},{\"id\":\"2\",\"n\":\"b\"}]", NULL),
		   "body:$[*].id ($[0].id) type_changed; body:$[*].id ($[1].id) type_changed",
		   "ids that became strings still identify the elements");
	TAP_EQ_STR(jdiff("[{\"a\":1,\"b\":1},{\"a\":2,\"b\":2}]",
			 "[{\"a\":1,\"b\":1},{\"a\":2,\"b\":3}]", NULL),
		   "body:$[*].b ($[1].b) value_changed",
		   "a changed element is compared by position");
	TAP_EQ_STR(jdiff("[{\"id\":1,\"n\":1},{\"id\":1,\"n\":2}]",
			 "[{\"id\":1,\"n\":1},{\"id\":1,\"n\":3}]", NULL),
		   "body:$[*].n ($[1].n) value_changed", "an id that is not unique is no identity");
	TAP_EQ_STR(jdiff("[0,1,2,3,9]", "[0,3,1,2,9]", NULL), "body:$ order_changed",
		   "equal ends are not aligned: the move in the middle is found");
	TAP_EQ_STR(e_pval, "[1,2,3]", "order_changed: indexes of the whole array (primary)");
	TAP_EQ_STR(e_cval, "[3,1,2]", "order_changed: indexes of the whole array (candidate)");
	TAP_EQ_STR(jdiff("[{\"id\":1,\"v\":1},{\"id\":2,\"v\":2},{\"id\":3,\"v\":3}]",
			 "[{\"id\":1,\"v\":1},{\"id\":2,\"v\":5},{\"id\":3,\"v\":3}]", NULL),
		   "body:$[*].v ($[1].v) value_changed", "one changed element between equal ones");
	TAP_EQ_STR(jdiff("[[1,2],[3,4]]", "[[3,4],[1,2],[5]]", NULL),
		   "body:$ order_changed; body:$[*] ($[2]) extra",
		   "nested arrays: moved and inserted");
	TAP_EQ_STR(jdiff("{\"t\":[3,1,2]}", "{\"t\":[1,2,3]}", "unordered $.t"), "",
		   "an unordered rule accepts an order change");
	TAP_EQ_STR(jdiff("{\"t\":[3,1,2]}", "{\"t\":[1,2,3]}", "ignore path $.t"), "",
		   "an ignored array reports no order change");
	/* a long array with one element inserted: one difference, whatever the length */
	static char a[40000], b[40000];
	size_t oa = 0, ob = 0;
	a[oa++] = b[ob++] = '[';
	ob += (size_t)snprintf(b + ob, sizeof(b) - ob, "{\"id\":\"new\",\"v\":0},");
	for (int i = 0; i < 1000; i++) {
		oa += (size_t)snprintf(a + oa, sizeof(a) - oa, "%s{\"id\":%d,\"v\":%d}",
				       i ? "," : "", i, i * 7);
		ob += (size_t)snprintf(b + ob, sizeof(b) - ob, "%s{\"id\":%d,\"v\":%d}",
				       i ? "," : "", i, i * 7);
	}
	a[oa++] = b[ob++] = ']';
	a[oa] = b[ob] = '\0';
	TAP_EQ_STR(jdiff(a, b, NULL), "body:$[*] ($[0]) extra",
		   "1000 elements, one inserted first: one difference");
}

static void test_json_diff(void)
{
	TAP_EQ_STR(jdiff("{\"a\":1}", "{\"a\":1}", NULL), "", "equal");
	TAP_EQ_STR(jdiff("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1.0}", NULL), "",
		   "member order and number spelling do not matter");
	TAP_EQ_STR(jdiff("{\"a\":\"\\u00e9\"}", "{\"a\":\"\xc3\xa9\"}", NULL), "",
		   "escapes spelling the same text are equal");
	TAP_EQ_STR(jdiff("{\"a\":1}", "{\"a\":2}", NULL), "body:$.a value_changed", "value");
	TAP_EQ_STR(jdiff("{\"a\":1}", "{\"a\":\"1\"}", NULL), "body:$.a type_changed", "type");
	TAP_EQ_STR(jdiff("{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":2}", NULL),
		   "body:$.b missing; body:$.c extra", "missing and extra keys");
	TAP_EQ_STR(
	    jdiff("{\"items\":[{\"p\":1},{\"p\":2}]}", "{\"items\":[{\"p\":1},{\"p\":3}]}", NULL),
	    "body:$.items[*].p ($.items[1].p) value_changed",
	    "arrays: elements as [*], own index kept");
	TAP_EQ_STR(jdiff("[1,2]", "[1,2,3]", NULL), "body:$[*] ($[2]) extra", "longer array");
	TAP_EQ_STR(jdiff("[1,2,3]", "[1]", NULL),
		   "body:$[*] ($[1]) missing; body:$[*] ($[2]) missing", "shorter array");
	TAP_EQ_STR(jdiff("{\"a b\":true}", "{\"a b\":false}", NULL),
		   "body:$[\"a b\"] value_changed", "non-identifier key quoted");
	TAP_EQ_STR(jdiff("{\"t\":[1,2,3]}", "{\"t\":[3,1,2]}", "unordered $.t"), "",
		   "unordered array");
	TAP_EQ_STR(jdiff("{\"t\":[1,2,3]}", "{\"t\":[3,1,4]}", "unordered $.t"),
		   "body:$.t[*] missing; body:$.t[*] extra", "unordered array with a change");
	TAP_EQ_STR(jdiff("{\"u\":[{\"id\":1,\"n\":\"a\"},{\"id\":2,\"n\":\"b\"}]}",
			 "{\"u\":[{\"id\":2,\"n\":\"B\"},{\"id\":1,\"n\":\"a\"},{\"id\":3}]}",
			 "key $.u id"),
		   "body:$.u[*].n ($.u[id=2].n) value_changed; body:$.u[*] ($.u[id=3]) extra",
		   "keyed array");
	TAP_EQ_STR(jdiff("{\"p\":10.00}", "{\"p\":10.004}", "tolerance $.p 0.01"), "",
		   "within absolute tolerance");
	TAP_EQ_STR(jdiff("{\"p\":10.00}", "{\"p\":10.02}", "tolerance $.p 0.01"),
		   "body:$.p value_changed", "over absolute tolerance");
	TAP_EQ_STR(jdiff("{\"p\":100}", "{\"p\":104}", "tolerance $.p 5%"), "",
		   "within relative tolerance");
	TAP_EQ_STR(jdiff("{\"items\":[{\"ts\":1,\"v\":1},{\"ts\":2,\"v\":2}]}",
			 "{\"items\":[{\"ts\":5,\"v\":1},{\"ts\":6,\"v\":3}]}",
			 "ignore path $.items[*].ts"),
		   "body:$.items[*].v ($.items[1].v) value_changed", "ignored wildcard path");
	TAP_EQ_STR(jdiff("{\"a\":1}", "not json", NULL), "body:$ not_json", "candidate not JSON");
	TAP_EQ_STR(jdiff("{\"id\":\"x-1\"}", "{\"id\":\"x-2\"}", "mask body x-[0-9]"), "",
		   "masked body equal");
	TAP_EQ_STR(jdiff("{\"a\":\"id=x id=12 id=5\"}", "{\"a\":\"id=x id=34 id=6\"}",
			 "mask body id=[0-9]+"),
		   "", "mask with a literal prefix finds later matches");
	TAP_EQ_STR(
	    jdiff("{\"a\":\"id=x1 id=12\"}", "{\"a\":\"id=x2 id=34\"}", "mask body id=[0-9]+"),
	    "body:$.a value_changed", "unmasked text still compared");
	TAP_EQ_STR(jdiff("{\"a\":\"ac\",\"b\":\"abbbc\"}", "{\"a\":\"ac\",\"b\":\"ac\"}",
			 "mask body ab*c"),
		   "", "optional last literal is not required by the prefilter");
	TAP_EQ_STR(jdiff("{\"n\":\"123\"}", "{\"n\":\"4567\"}", "mask body [0-9]"), "",
		   "adjacent matches are one <masked> (3 digits against 4)");
	TAP_EQ_STR(jdiff("{\"a\":1}", "{\"a\":2}", "mask body x*"), "body:$.a value_changed",
		   "a regex matching only the empty string masks nothing");
	TAP_EQ_STR(jdiff("{\"a\":\"k7x\"}", "{\"a\":\"k8y\"}", "mask body k[0-9]\nmask body >[xy]"),
		   "body:$.a value_changed",
		   "rules match the original text, not the \"<masked>\" of earlier rules");
	/* text bodies */
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	const char *ta = "l1\nl2\nl3\nl4\nl5\nl6\n", *tb = "l1\nl2\nl3\nX4\nl5\nl6\n";
	e.nf = 0;
	e.rs = NULL;
	diff_engine_body(&e, "text/plain", 10, (const uint8_t *)ta, strlen(ta), (const uint8_t *)tb,
			 strlen(tb));
	TAP_OK(e.nf == 1 && !strcmp(e.f[0].loc, "body:text[4]") && e.f[0].kind == DIFF_K_TEXT &&
		   !strcmp(e.f[0].pval, "l4") && !strcmp(e.f[0].cval, "X4"),
	       "a line changed in place: body:text[4], the two lines");
	/* a deterministic word next to a volatile one: two locations, judged apart */
	const char *wa = "report\nat 2026-11-26T10:00:00Z refunds 3\nend\n",
		   *wb = "report\nat 2026-11-26T11:30:07Z refunds 4\nend\n";
	e.nf = 0;
	diff_engine_body(&e, "text/plain", 10, (const uint8_t *)wa, strlen(wa), (const uint8_t *)wb,
			 strlen(wb));
	TAP_OK(e.nf == 2 && !strcmp(e.f[0].loc, "body:text[2][2]") && e.f[0].vol &&
		   !strcmp(e.f[1].loc, "body:text[2][4]") && !e.f[1].vol &&
		   strstr(e.f[1].cval, "refunds 4"),
	       "word by word: the timestamp volatile alone, 3 -> 4 a real change (%.40s, %.40s)",
	       e.nf > 0 ? e.f[0].loc : "", e.nf > 1 ? e.f[1].loc : "");
	/* lines inserted: one hunk for the region, with line number and context */
	const char *ha = "l1\nl2\nl3\nl4\nl5\nl6\n", *hb = "l1\nl2\nl3\nX4\nY4\nl5\nl6\n";
	e.nf = 0;
	diff_engine_body(&e, "text/plain", 10, (const uint8_t *)ha, strlen(ha), (const uint8_t *)hb,
			 strlen(hb));
	TAP_OK(e.nf == 1 && !strcmp(e.f[0].loc, "body:text") &&
		   strstr(e.f[0].pval, "@@ line 4 @@") && strstr(e.f[0].pval, "- l4") &&
		   strstr(e.f[0].cval, "+ X4") && strstr(e.f[0].cval, "+ Y4") &&
		   strstr(e.f[0].cval, "  l3"),
	       "lines added: one text hunk with line number and context");
	/* a header value: word by word the same way */
	struct store_header pa[] = {
	    {{(const uint8_t *)"X-Info", 6}, {(const uint8_t *)"build=41; at=1764151200", 23}}};
	struct store_header pb[] = {
	    {{(const uint8_t *)"X-Info", 6}, {(const uint8_t *)"build=42; at=1764155555", 23}}};
	struct store_message ma = {.present = true, .status = 200, .headers = pa, .n_headers = 1};
	struct store_message mb = {.present = true, .status = 200, .headers = pb, .n_headers = 1};
	diff_engine_compare(&e, NULL, &ma, &mb);
	TAP_OK(e.nf == 2 && !strcmp(e.f[0].loc, "header:x-info[2]") && !e.f[0].vol &&
		   !strcmp(e.f[1].loc, "header:x-info[4]") && e.f[1].vol,
	       "header value word by word: build real, epoch volatile (%.40s)",
	       e.nf ? e.f[0].loc : "");
	e.nf = 0;
	diff_engine_body(&e, "application/octet-stream", 24, (const uint8_t *)"\x00\x01", 2,
			 (const uint8_t *)"\x00\x02\x03", 3);
	TAP_OK(e.nf == 1 && !strcmp(e.f[0].loc, "body:binary") && strstr(e.f[0].cval, "3 bytes"),
	       "binary by length and hash");
	diff_engine_release(&e);
}

static void test_volatile(void)
{
	static const char *const yes[] = {
	    "2026-11-26T13:00:00Z",
	    "\"2026-11-26T13:00:00.123+01:00\"",
	    "Thu, 26 Nov 2026 13:00:00 GMT",
	    "3fa85f64-5717-4562-b3fc-2c963f66afa6",
	    "1764158400",
	    "1764158400123",
	    "9f86d081884c7d65",
	    "aZ3kQ9xT7mP2vR8wL5nB",
	};
	static const char *const no[] = {"200",	     "hello world",	 "true",	"42",
					 "/users/1", "application/json", "deadbeefcafe"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		TAP_OK(diff_looks_volatile(yes[i], strlen(yes[i])), "volatile: %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		TAP_OK(!diff_looks_volatile(no[i], strlen(no[i])), "not volatile: %s", no[i]);
	/* length: a random token up to 256 characters (base64 of 192 bytes) is
	 * an identifier; base64 content longer than that (a protobuf bytes
	 * field, an encoded image) is not, so a change in it stays real */
	static const char b64[] = "aZ3kQ9xT7mP2vR8wL5nB+/";
	char tok[1024 + 3];
	for (size_t i = 0; i < 1024; i++)
		tok[i + 1] = b64[(i * 7 + i / 5) % (sizeof(b64) - 1)];
	tok[0] = '"';
	memcpy(tok + 1 + 256, "\"", 2);
	TAP_OK(diff_looks_volatile(tok, 258), "volatile: a 256-character token (quoted)");
	TAP_OK(diff_looks_volatile(tok + 1, 256), "volatile: a 256-character token");
	tok[1 + 256] = b64[0];
	TAP_OK(!diff_looks_volatile(tok + 1, 257), "not volatile: a 257-character token");
	TAP_OK(!diff_looks_volatile(tok + 1, 1024), "not volatile: 1024 characters of base64");
	memset(tok + 1, 'a', 300);
	memcpy(tok + 1, "0123456789", 10);
	TAP_OK(!diff_looks_volatile(tok + 1, 300), "not volatile: 300 characters of hex");
}

static size_t gz(const char *in, uint8_t *out, size_t cap, int wbits)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)strlen(in);
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

static void test_decode(void)
{
	const char *plain = "{\"hello\":\"world\",\"n\":[1,2,3,4,5,6,7,8,9,10]}";
	uint8_t buf[512];
	struct dbuf out, tmp;
	dbuf_init(&out, 1 << 20);
	dbuf_init(&tmp, 1 << 20);
	size_t n = gz(plain, buf, sizeof(buf), 15 + 16);
	TAP_OK(diff_decode("gzip", 4, buf, n, &out, &tmp) == 0 && out.len == strlen(plain) &&
		   !memcmp(out.data, plain, out.len),
	       "gzip");
	n = gz(plain, buf, sizeof(buf), 15);
	TAP_OK(diff_decode("deflate", 7, buf, n, &out, &tmp) == 0 && out.len == strlen(plain),
	       "deflate (zlib)");
	n = gz(plain, buf, sizeof(buf), -15);
	TAP_OK(diff_decode("deflate", 7, buf, n, &out, &tmp) == 0 && out.len == strlen(plain),
	       "deflate (raw)");
	size_t bn = sizeof(buf);
	BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, strlen(plain), (const uint8_t *)plain, &bn,
			      buf);
	TAP_OK(diff_decode("br", 2, buf, bn, &out, &tmp) == 0 && out.len == strlen(plain) &&
		   !memcmp(out.data, plain, out.len),
	       "br");
	n = ZSTD_compress(buf, sizeof(buf), plain, strlen(plain), 3);
	TAP_OK(diff_decode("zstd", 4, buf, n, &out, &tmp) == 0 && out.len == strlen(plain), "zstd");
	TAP_OK(diff_decode("zstd", 4, buf, n - 3, &out, &tmp) == -EBADMSG, "truncated zstd");
	/* gzip then br: decoded right to left */
	uint8_t g[512];
	size_t gn = gz(plain, g, sizeof(g), 15 + 16);
	bn = sizeof(buf);
	BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, gn, g, &bn, buf);
	TAP_OK(diff_decode("gzip, br", 8, buf, bn, &out, &tmp) == 0 && out.len == strlen(plain),
	       "stacked encodings");
	n = gz(plain, buf, sizeof(buf), 15 + 16);
	TAP_OK(diff_decode("gzip", 4, buf, n - 5, &out, &tmp) == -EBADMSG, "truncated gzip");
	TAP_OK(diff_decode("compress", 8, buf, n, &out, &tmp) == -ENOTSUP, "unknown encoding");
	/* bomb: 1 MiB of zeros into a 64 KiB cap */
	static char zeros[1 << 20];
	memset(zeros, 'a', sizeof(zeros) - 1);
	static uint8_t bomb[1 << 16];
	size_t bomb_n = gz(zeros, bomb, sizeof(bomb), 15 + 16);
	struct dbuf small;
	dbuf_init(&small, 65536);
	TAP_OK(diff_decode("gzip", 4, bomb, bomb_n, &small, &tmp) == -E2BIG && small.len <= 65536,
	       "output bounded by the cap");
	dbuf_release(&small);
	dbuf_release(&out);
	dbuf_release(&tmp);
}

static const char *const json_ct[] = {"Content-Type: application/json", "Date: Mon, 1", NULL};

static void add_json_pair(struct diff_ctx *c, uint64_t id, const char *target, const char *pb,
			  const char *cb, enum diff_role role)
{
	struct as_pair p;
	as_pair_init(&p, id, "GET", target, NULL);
	as_resp(&p.prim, 200, json_ct, pb, strlen(pb));
	as_resp(&p.cand, 200, json_ct, cb, strlen(cb));
	if (role == DIFF_ROLE_SECONDARY)
		p.r.role = as_cs("secondary");
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, role);
}

static const struct diff_group *find_group(const struct diff_ctx *ctx, const char *loc)
{
	const struct diff_cand *c = ctx->cand[0];
	for (size_t i = 0; i < c->n_gr; i++)
		if (!strcmp(c->gr[i].location, loc) && c->gr[i].count)
			return &c->gr[i];
	return NULL;
}

/* {"id":1,"title":"<@p n bytes from @p seed>"}: letters that never repeat
 * within 26 bytes, so a prefix names its value. */
static char *long_title(size_t n, char seed)
{
	static const char head[] = "{\"id\":1,\"title\":\"";
	char *s = malloc(sizeof(head) + n + 2);
	if (!s)
		abort();
	memcpy(s, head, sizeof(head) - 1);
	char *v = s + sizeof(head) - 1;
	for (size_t i = 0; i < n; i++)
		v[i] = (char)(seed + (char)((i * 7 + i / 26) % 26));
	memcpy(v + n, "\"}", 3);
	return s;
}

/* An example value is at most 511 bytes, a longer one its first bytes and
 * "..." (docs/report.md "Example object"): @p v shows the first string
 * value of JSON @p doc that way. */
static bool shows_cut(const char *v, const char *doc)
{
	const char *t = strstr(doc, ":\"") + 1;
	size_t l = strlen(v);
	return l >= 400 && l <= 511 && !strcmp(v + l - 3, "...") && !strncmp(v, t, l - 3);
}

/* A changed string of megabytes (more than the differ's scratch buffer
 * once held), on either side: its example is the value cut, not "" (a
 * different value); escapes of a long string compare like short ones. */
static void test_long_values(void)
{
	char *pa = long_title((3u << 20) / 2, 'a'), *ca = long_title((3u << 20) / 2, 'A');
	char *pshort = long_title(10, 'a'), *c2 = long_title(2u << 20, 'A');
	TAP_EQ_STR(jdiff(pa, ca, NULL), "body:$.title value_changed", "1.5 MiB title changed");
	TAP_OK(shows_cut(e_pval, pa), "primary example: the real start, cut (%.24s...)", e_pval);
	TAP_OK(shows_cut(e_cval, ca), "candidate example: the real start, cut (%.24s...)", e_cval);
	TAP_EQ_STR(jdiff(pshort, c2, NULL), "body:$.title value_changed", "10 bytes against 2 MiB");
	TAP_EQ_STR(e_pval, "\"ahovcjqxel\"", "short primary whole");
	TAP_OK(shows_cut(e_cval, c2), "2 MiB candidate: the real start, cut (%.24s...)", e_cval);
	TAP_EQ_STR(jdiff(c2, pshort, NULL), "body:$.title value_changed", "2 MiB against 10 bytes");
	TAP_OK(shows_cut(e_pval, c2), "2 MiB primary: the real start, cut (%.24s...)", e_pval);
	TAP_EQ_STR(e_cval, "\"ahovcjqxel\"", "short candidate whole");

	TAP_OK(!e_vol, "letters only: not volatile");
	/* volatile is judged on the whole values, not on the cut ones: a long
	 * run of token characters mixing cases and digits is content, not an
	 * identifier (longer than DIFF_VOLATILE_MAX), though its cut start
	 * looks like one (docs/diff.md "Likely noise") */
	size_t tn = 700u << 10;
	char *ta = malloc(tn + 16), *tb = malloc(tn + 16);
	if (!ta || !tb)
		abort();
	static const char tok[] = "aZ3kQ9xT7mP2vR8wL5nB";
	for (size_t i = 0; i < tn; i++) {
		ta[i] = tok[(i * 3 + i / 20) % 20];
		tb[i] = tok[(i * 7 + i / 20) % 20];
	}
	memcpy(ta, "{\"t\":\"", 6);
	memcpy(tb, "{\"t\":\"", 6);
	memcpy(ta + tn, "\"}", 3);
	memcpy(tb + tn, "\"}", 3);
	TAP_EQ_STR(jdiff(ta, tb, NULL), "body:$.t value_changed", "700 KiB tokens changed");
	TAP_OK(!e_vol && shows_cut(e_pval, ta) && shows_cut(e_cval, tb) &&
		   diff_looks_volatile(e_pval + 1, 200),
	       "700 KiB of token characters: not volatile (its first 200 would be), "
	       "examples cut");
	free(ta);
	free(tb);

	/* escapes spelling the same long text: equal, whatever the length */
	size_t en = 300000;
	char *ea = malloc(en * 6 + 16), *eb = malloc(en * 2 + 16);
	if (!ea || !eb)
		abort();
	memcpy(ea, "{\"t\":\"", 6);
	memcpy(eb, "{\"t\":\"", 6);
	for (size_t i = 0; i < en; i++) {
		memcpy(ea + 6 + i * 6, "\\u00e9", 6);
		memcpy(eb + 6 + i * 2, "\xc3\xa9", 2);
	}
	memcpy(ea + 6 + en * 6, "\"}", 3);
	memcpy(eb + 6 + en * 2, "\"}", 3);
	TAP_EQ_STR(jdiff(ea, eb, NULL), "", "300000 \\u00e9 against 300000 raw: equal");
	free(ea);
	free(eb);

	/* two long strings that differ late (a large gRPC bytes field whose
	 * end changed): shown from a little before the change, not from their
	 * common start, which would look the same on both sides */
	char *la = long_title(100000, 'a'), *lb = long_title(100000, 'a');
	lb[17 + 99990] = '#';
	TAP_EQ_STR(jdiff(la, lb, NULL), "body:$.title value_changed", "100 KB title, byte 99990");
	TAP_OK(!strncmp(e_pval, "\"...", 4) && !strncmp(e_cval, "\"...", 4) &&
		   !strncmp(e_pval + 4, la + 17 + 99958, 32) && strchr(e_cval, '#') &&
		   strlen(e_cval) == 4 + 42 + 1 && e_cval[4 + 32] == '#',
	       "late change: both examples from 32 bytes before it (%.40s -> %.40s)", e_pval,
	       e_cval);
	free(la);
	free(lb);

	/* the same through grouping into the JSON report */
	struct diff_ctx *c = diff_ctx_create(NULL);
	add_json_pair(c, 1, "/posts/1", pa, ca, DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	const struct diff_group *g = find_group(c, "body:$.title");
	const struct diff_example *x = g ? diff_group_example(g) : NULL;
	TAP_OK(x && shows_cut(x->pval, pa) && shows_cut(x->cval, ca),
	       "group example: both values cut, not empty (%.24s -> %.24s)", x ? x->pval : "",
	       x ? x->cval : "");
	struct dbuf b;
	dbuf_init(&b, 16u << 20);
	char want[64];
	snprintf(want, sizeof(want), "\"primary_value\":\"\\\"%.20s", pa + 17);
	TAP_OK(report_json(c, &b) == 0 && b.data && strstr((const char *)b.data, want),
	       "report JSON: primary_value starts with the title (%s)", want);
	dbuf_reset(&b);
	TAP_OK(report_text(c, &b, false) == 0 && b.data &&
		   strstr((const char *)b.data, "\"ahovcjqxelszgnub"),
	       "terminal summary: the example starts with the title");
	dbuf_release(&b);
	diff_ctx_free(c);
	free(pa);
	free(ca);
	free(pshort);
	free(c2);
}

static void test_ctx(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	char buf[256];
	/* 20 pairs: "n" always real-changed, "ts" random in both runs, "seq" volatile-looking */
	for (int i = 0; i < 20; i++) {
		char pb[200], cb[200], sb[200];
		snprintf(pb, sizeof(pb), "{\"n\":1,\"ts\":%d,\"ok\":true}", i);
		snprintf(cb, sizeof(cb), "{\"n\":2,\"ts\":%d,\"ok\":true}", i + 100);
		snprintf(sb, sizeof(sb), "{\"n\":1,\"ts\":%d,\"ok\":true}", i + 200);
		snprintf(buf, sizeof(buf), "/users/%d", i);
		add_json_pair(c, (uint64_t)i, buf, pb, cb, DIFF_ROLE_CANDIDATE);
		add_json_pair(c, (uint64_t)i, buf, pb, sb, DIFF_ROLE_SECONDARY);
	}
	diff_ctx_finish(c);
	const struct diff_summary *s = diff_ctx_summary(c);
	TAP_EQ_U64(s->compared, 20, "compared");
	TAP_EQ_U64(s->secondary_pairs, 20, "secondary pairs");
	TAP_EQ_U64(s->endpoints, 1, "one endpoint by template");
	TAP_EQ_STR(c->cand[0]->ep[0].name, "GET /users/{id}", "endpoint name");
	const struct diff_group *gn = find_group(c, "body:$.n"), *gt = find_group(c, "body:$.ts");
	TAP_OK(gn && gn->count == 20 && gn->noise == DIFF_NOISE_NONE, "real change reported");
	TAP_OK(gt && gt->count == 20 && gt->noise == DIFF_NOISE_LEARNED, "learned noise");
	TAP_OK(!find_group(c, "header:date"), "Date ignored by default");
	TAP_EQ_U64(s->differing, 20, "all pairs differ");
	TAP_EQ_U64(s->groups, 1, "one real group");
	TAP_EQ_U64(s->noise_groups, 1, "one noise group");
	TAP_OK(!s->data_incomplete, "complete data");
	TAP_OK(gn && gn->n_ex && strstr(gn->ex[0].request, "GET /users/") &&
		   !strcmp(gn->ex[0].pval, "1") && !strcmp(gn->ex[0].cval, "2"),
	       "example kept");
	diff_ctx_free(c);

	/* without a secondary: a volatile-looking field is likely noise, not dropped */
	c = diff_ctx_create(NULL);
	for (int i = 0; i < 10; i++) {
		char pb[200], cb[200];
		snprintf(pb, sizeof(pb), "{\"at\":\"2026-11-26T10:00:%02dZ\",\"v\":1}", i);
		snprintf(cb, sizeof(cb), "{\"at\":\"2026-11-26T11:00:%02dZ\",\"v\":%d}", i,
			 i < 5 ? 1 : 2);
		add_json_pair(c, (uint64_t)i, "/x", pb, cb, DIFF_ROLE_CANDIDATE);
	}
	diff_ctx_finish(c);
	s = diff_ctx_summary(c);
	const struct diff_group *ga = find_group(c, "body:$.at"), *gv = find_group(c, "body:$.v");
	TAP_OK(ga && ga->noise == DIFF_NOISE_VOLATILE && ga->count == 10, "volatile likely noise");
	TAP_OK(gv && gv->noise == DIFF_NOISE_NONE && gv->count == 5, "real change at 50%%");
	TAP_OK(gv && gv->rate > 0.49 && gv->rate < 0.51, "rate");
	TAP_EQ_U64(s->differing, 5, "differing excludes noise-only pairs");
	TAP_EQ_U64(s->noisy_only, 5, "noise-only pairs counted");
	struct diff_gate g;
	char err[512];
	double v;
	TAP_OK(diff_gate_parse(&g, "diff_rate>0.1%", err, sizeof(err)) == 0, "parse gate");
	TAP_OK(diff_gate_eval(c, 0, &g, &v, NULL) && v > 0.49, "diff_rate gate trips");
	TAP_OK(diff_gate_parse(&g, "status_changes > 0", err, sizeof(err)) == 0, "parse spaced");
	TAP_OK(!diff_gate_eval(c, 0, &g, &v, NULL) && v == 0, "status gate holds");
	TAP_OK(diff_gate_parse(&g, "p99_latency_ratio>1.2", err, sizeof(err)) == 0, "latency gate");
	TAP_OK(!diff_gate_eval(c, 0, &g, &v, NULL) && v > 1.19 && v < 1.21, "p99 ratio is 1.2: %g",
	       v);
	TAP_OK(diff_gate_parse(&g, "p99_latency_ratio>=1.2", err, sizeof(err)) == 0 &&
		   diff_gate_eval(c, 0, &g, &v, NULL),
	       ">= trips at equality");
	TAP_OK(diff_gate_parse(&g, "bogus>1", err, sizeof(err)) == -EINVAL &&
		   strstr(err, "diff_rate"),
	       "unknown metric lists the known ones");
	TAP_OK(diff_gate_parse(&g, "diff_rate>", err, sizeof(err)) == -EINVAL, "missing number");
	TAP_OK(diff_gate_parse(&g, "diff_rate~1", err, sizeof(err)) == -EINVAL, "bad operator");
	TAP_OK(diff_gate_parse(&g, "diff_rate>1x", err, sizeof(err)) == -EINVAL, "trailing junk");
	TAP_OK(diff_gate_parse(&g, "data_incomplete>0", err, sizeof(err)) == 0 &&
		   !diff_gate_eval(c, 0, &g, &v, NULL),
	       "data_incomplete gate holds on complete data");
	diff_ctx_free(c);
}

static void test_headers_and_accounting(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	static const char *const ph[] = {
	    "Content-Type: text/plain", "Cache-Control: max-age=60", "Vary: a",	   "Vary: b",
	    "Set-Cookie: s=1; Path=/",	"X-Request-Id: 1",	     "X-Old: yes", NULL};
	static const char *const ch[] = {"content-type: text/plain",
					 "Cache-Control: no-cache",
					 "Vary: a, b",
					 "Set-Cookie: s=2; Path=/",
					 "X-Request-Id: 2",
					 "X-New: yes",
					 NULL};
	struct as_pair p;
	as_pair_init(&p, 1, "GET", "/h", NULL);
	as_resp(&p.prim, 200, ph, "same", 4);
	as_resp(&p.cand, 503, ch, "same", 4);
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	/* an incomplete session and a replay error: counted, not compared */
	p.s.id = 2;
	p.s.flags = STORE_F_GAP;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	p.s.flags = 0;
	p.s.id = 3;
	p.r.error = STORE_ERR_TIMEOUT;
	p.r.resp.present = false;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	struct store_counter ctr[] = {{"tcp_gaps", 3}, {"sessions", 10}};
	diff_ctx_add_counters(c, "capture", ctr, 2);
	diff_ctx_finish(c);
	const struct diff_summary *s = diff_ctx_summary(c);
	TAP_OK(find_group(c, "status") != NULL, "status change");
	TAP_OK(find_group(c, "header:cache-control") != NULL, "header value change");
	TAP_OK(!find_group(c, "header:vary"), "multi-value header combined equal");
	TAP_OK(!find_group(c, "header:set-cookie"), "Set-Cookie values ignored, names compared");
	TAP_OK(!find_group(c, "header:x-request-id"), "request id ignored by default");
	const struct diff_group *go = find_group(c, "header:x-old");
	const struct diff_group *gn = find_group(c, "header:x-new");
	TAP_OK(go && go->kind == DIFF_K_MISSING, "missing header");
	TAP_OK(gn && gn->kind == DIFF_K_EXTRA, "extra header");
	TAP_EQ_U64(s->compared, 1, "one compared");
	TAP_EQ_U64(s->incomplete, 1, "one incomplete");
	TAP_EQ_U64(s->replay_errors, 1, "one replay error");
	TAP_EQ_U64(s->status_changes, 1, "status changes");
	TAP_OK(s->data_incomplete, "data incomplete");
	struct dbuf why;
	dbuf_init(&why, 1 << 16);
	diff_ctx_reasons(c, &why);
	TAP_OK(why.data && strstr((char *)why.data, "gap: 1") &&
		   strstr((char *)why.data, "timeout: 1") &&
		   strstr((char *)why.data, "capture: tcp_gaps = 3") &&
		   !strstr((char *)why.data, "sessions = 10"),
	       "reasons name the causes");
	dbuf_release(&why);
	diff_ctx_free(c);

	char out[128];
	diff_mask_header_value("authorization", 13, (const uint8_t *)"Bearer abc.def", 14, out,
			       sizeof(out));
	TAP_EQ_STR(out, "Bearer <masked>", "authorization masked");
	diff_mask_header_value("cookie", 6, (const uint8_t *)"a=1; b=2", 8, out, sizeof(out));
	TAP_EQ_STR(out, "a=<masked>; b=<masked>", "cookie masked");
	diff_mask_header_value("set-cookie", 10, (const uint8_t *)"sid=xyz; Path=/; HttpOnly", 25,
			       out, sizeof(out));
	TAP_EQ_STR(out, "sid=<masked>; Path=/; HttpOnly", "set-cookie masked");
}

/* An HTTP/2 stream its client cancelled (RST_STREAM from the client, its
 * time recorded) is counted as cancelled, not compared and no loss; a
 * stream reset by the server, one without ts_reset_ns (reset with its
 * connection, or a file from before the key), one with a gap, stay
 * incomplete; a cancelled one whose replay failed is a replay error. */
static void test_client_cancelled(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	static const char *const h[] = {"content-type: text/plain", NULL};
	struct as_pair p;
	as_pair_init(&p, 1, "POST", "/shop.Shop/Watch", NULL);
	as_resp(&p.prim, 200, h, "same", 4);
	as_resp(&p.cand, 200, h, "same", 4);
	as_pair_link(&p);
	p.s.proto = STORE_PROTO_H2C;
	p.s.ts_reset_ns = 5;
	p.s.flags = STORE_F_RESET | STORE_F_INCOMPLETE;
	/* the target ended it before the recorded cancel (an error answer,
	 * say): nobody can tell that it is fine, incomplete */
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	p.r.error_msg = as_cs("cancelled as recorded: the recorded stream was reset after 9 bytes");
	p.s.id = 7;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* cancelled */
	p.s.id = 8;
	p.s.reset_code = 0x1; /* PROTOCOL_ERROR: the exchange went wrong */
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* incomplete */
	p.s.reset_code = 0x8;				  /* CANCEL */
	p.s.id = 2;
	p.s.flags = STORE_F_RESET | STORE_F_NO_RESPONSE;
	p.s.resp.present = false;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* cancelled before any answer */
	p.s.resp.present = true;
	p.s.id = 3;
	p.s.flags = STORE_F_RESET | STORE_F_SERVER_RESET;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* incomplete */
	p.s.id = 4;
	p.s.flags = STORE_F_RESET | STORE_F_INCOMPLETE | STORE_F_GAP;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* incomplete */
	p.s.id = 5;
	p.s.flags = STORE_F_RESET;
	p.s.ts_reset_ns = 0;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* incomplete */
	p.s.id = 6;
	p.s.ts_reset_ns = 5;
	p.r.error = STORE_ERR_CONNECT;
	p.r.resp.present = false;
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE); /* replay error */
	diff_ctx_finish(c);
	const struct diff_summary *s = diff_ctx_summary(c);
	TAP_EQ_U64(s->cancelled, 2, "client cancelled: 2 cancelled");
	TAP_EQ_U64(s->incomplete, 5,
		   "client cancelled: server reset, gap, no reset time, ended by the target, "
		   "PROTOCOL_ERROR: incomplete");
	TAP_EQ_U64(s->replay_errors, 1, "client cancelled: a failed replay is a replay error");
	TAP_EQ_U64(s->compared, 0, "client cancelled: none compared");
	diff_ctx_free(c);
	c = diff_ctx_create(NULL);
	as_pair_init(&p, 1, "POST", "/shop.Shop/Watch", NULL);
	as_resp(&p.prim, 200, h, "same", 4);
	as_resp(&p.cand, 200, h, "same", 4);
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	p.s.id = 2;
	p.s.proto = STORE_PROTO_H2C;
	p.s.ts_reset_ns = 5;
	p.s.flags = STORE_F_RESET | STORE_F_INCOMPLETE;
	p.r.error_msg = as_cs("cancelled as recorded: the recorded stream was reset after 9 bytes");
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	s = diff_ctx_summary(c);
	TAP_OK(s->compared == 1 && s->cancelled == 1 && !s->data_incomplete,
	       "client cancelled: no data lost (data_incomplete false)");
	/* the HTML accounting adds up: results = compared + cancelled */
	struct dbuf b;
	dbuf_init(&b, 1 << 24);
	TAP_OK(
	    report_html(c, &b) == 0 && b.data &&
		strstr((const char *)b.data, "<td>cancelled</td><td class=\"n\">1</td><td></td>"),
	    "client cancelled: a row of the HTML accounting, not a loss");
	dbuf_release(&b);
	diff_ctx_free(c);
}

/* Counter classes (docs/report.md "data_incomplete"): what a user chose,
 * what is information, what is a loss. */
static void test_counter_classes(void)
{
	static const struct {
		const char *name;
		enum diff_ctr_class cls;
	} v[] = {
	    {"lane_blue_dropped_write_refused", DIFF_CTR_EXCLUSION}, /* no --allow-writes */
	    {"skipped_writes", DIFF_CTR_EXCLUSION},
	    {"skipped_after_writes", DIFF_CTR_EXCLUSION}, /* reads of what they wrote */
	    {"h2_push_promises", DIFF_CTR_EXCLUSION},	  /* pushed: not recorded */
	    {"skipped_truncated", DIFF_CTR_LOSS},	  /* cut by the capture */
	    {"lane_blue_dropped_rate_limited", DIFF_CTR_EXCLUSION},
	    {"lane_blue_dropped_loop", DIFF_CTR_INFO},
	    {"h2_client_cancelled", DIFF_CTR_INFO},
	    {"interop_har_replayed", DIFF_CTR_INFO},
	    {"h2_no_response", DIFF_CTR_LOSS},
	    {"fp_ring_full", DIFF_CTR_LOSS},
	    {"lane_blue_dropped_queue_full", DIFF_CTR_LOSS},
	    {"h2_gaps", DIFF_CTR_LOSS},
	};
	int good = 0;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		bool same = diff_counter_class(v[i].name) == v[i].cls;
		if (!same)
			printf("# %s: class %d, want %d\n", v[i].name,
			       (int)diff_counter_class(v[i].name), (int)v[i].cls);
		good += same;
	}
	TAP_EQ_U64(good, sizeof(v) / sizeof(v[0]),
		   "counter classes: exclusions, information, losses");
}

static void test_rules_in_ctx(void)
{
	char err[256];
	const char *txt = "ignore header cache-control\n"
			  "mask header x-build v[0-9]+\n"
			  "[POST *]\n"
			  "ignore status\n";
	struct noise_rules *r = noise_rules_parse(txt, strlen(txt), err, sizeof(err));
	struct diff_params prm = {.rules = r};
	struct diff_ctx *c = diff_ctx_create(&prm);
	static const char *const ph[] = {"Cache-Control: a", "X-Build: v1 ok", NULL};
	static const char *const ch[] = {"Cache-Control: b", "X-Build: v2 ok", NULL};
	struct as_pair p;
	as_pair_init(&p, 1, "POST", "/p", NULL);
	as_resp(&p.prim, 200, ph, "", 0);
	as_resp(&p.cand, 500, ch, "", 0);
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	as_pair_init(&p, 2, "GET", "/p", NULL);
	as_resp(&p.prim, 200, ph, "", 0);
	as_resp(&p.cand, 500, ch, "", 0);
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	const struct diff_cand *v0 = c->cand[0];
	TAP_EQ_U64(v0->n_gr, 1, "only the GET status change is left");
	TAP_OK(v0->n_gr == 1 && !strcmp(v0->ep[v0->gr[0].endpoint].name, "GET /p"),
	       "scoped ignore status applies to POST only");
	TAP_OK(c->rule_hits[0] == 2 && c->rule_hits[1] >= 2 && c->rule_hits[2] == 1,
	       "rule hits counted, ignore status's too (%llu %llu %llu)",
	       (unsigned long long)c->rule_hits[0], (unsigned long long)c->rule_hits[1],
	       (unsigned long long)c->rule_hits[2]);
	diff_ctx_free(c);
	noise_rules_free(r);
}

static void test_html_escaping(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	static const char *const h[] = {"Content-Type: text/html", NULL};
	const char *pb = "<p>hello</p>\n", *cb = "</pre><script>alert(1)</script>\n";
	struct as_pair p;
	as_pair_init(&p, 1, "GET", "/x?a=<b>&c=\"d\"", NULL);
	as_resp(&p.prim, 200, h, pb, strlen(pb));
	as_resp(&p.cand, 200, h, cb, strlen(cb));
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	struct dbuf b;
	dbuf_init(&b, 1 << 24);
	TAP_OK(report_html(c, &b) == 0, "html renders");
	const char *html = (const char *)b.data;
	TAP_OK(html && !strstr(html, "<script>alert") && strstr(html, "&lt;script&gt;alert(1)"),
	       "traffic text is escaped in HTML");
	TAP_OK(html && !strstr(html, "a=<b>") && strstr(html, "a=&lt;b&gt;&amp;c=&quot;d&quot;"),
	       "request target escaped");
	TAP_OK(html && !strstr(html, "src=\"http") && !strstr(html, "href=\"http") &&
		   !strstr(html, "url(http") && !strstr(html, "src=\"//") &&
		   !strstr(html, "href=\"//"),
	       "no network reference in HTML");
	dbuf_reset(&b);
	TAP_OK(report_junit(c, &b) == 0 && !strstr((char *)b.data, "<script>"), "junit escaped");
	dbuf_reset(&b);
	report_escape(&b,
		      "a\x01"
		      "b\xff<",
		      5);
	TAP_EQ_STR((char *)b.data,
		   "a\xef\xbf\xbd"
		   "b\xef\xbf\xbd&lt;",
		   "control bytes and invalid UTF-8 replaced");
	dbuf_release(&b);
	diff_ctx_free(c);
}

/* A report cut by its buffer's cap is an error, never a success with a
 * broken document (issue 15 item 8: report_json returned 0 with invalid JSON). */
static void test_report_caps(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	for (int i = 0; i < 4; i++)
		add_json_pair(c, (uint64_t)i, "/cap", "{\"a\":1}", "{\"a\":2}",
			      DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	static const struct {
		const char *name;
		int (*fn)(const struct diff_ctx *, struct dbuf *);
	} r[] = {{"report_json", report_json},
		 {"report_junit", report_junit},
		 {"report_html", report_html}};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		struct dbuf b;
		dbuf_init(&b, 1 << 24);
		int whole = r[i].fn(c, &b);
		size_t len = b.len;
		dbuf_release(&b);
		dbuf_init(&b, len / 2);
		int cut = r[i].fn(c, &b);
		TAP_OK(whole == 0 && cut == -E2BIG, "%s: whole 0, cut at half its size -E2BIG (%d)",
		       r[i].name, cut);
		dbuf_release(&b);
	}
	struct dbuf b;
	dbuf_init(&b, 64);
	TAP_OK(report_text(c, &b, false) == -E2BIG, "report_text: cut -E2BIG");
	dbuf_release(&b);
	diff_ctx_free(c);
}

/* gRPC answers for the stream tests: @p n messages {1: from + i, 2: "x"
 * or "y"}, framed (Length-Prefixed-Messages), in @p buf. */
static size_t grpc_msgs(uint8_t *buf, int from, int n, char v)
{
	size_t o = 0;
	for (int i = from; i < from + n; i++) {
		const uint8_t m[] = {0, 0, 0, 0, 5, 0x08, (uint8_t)i, 0x12, 1, (uint8_t)v};
		memcpy(buf + o, m, sizeof(m));
		o += sizeof(m);
	}
	return o;
}

/* The findings of @p e as "loc kind; ..." */
static const char *findings(const struct diff_engine *e)
{
	static char out[512];
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < e->nf && o < sizeof(out); i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s %d", i ? "; " : "",
				      e->f[i].loc, (int)e->f[i].kind);
	return out;
}

static struct store_header hf(const char *name, const char *value)
{
	return (struct store_header){{(const uint8_t *)name, strlen(name)},
				     {(const uint8_t *)value, strlen(value)}};
}

/* A body on one side only (a 304 has no content: RFC 9110 §15.4.5): the
 * status change, and the body's difference named as no body, not as
 * invalid JSON at byte 0. */
static void test_status_empty_body(void)
{
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	static const char doc[] = "{\"id\":1}";
	struct store_header ct[] = {hf("content-type", "application/json")};
	struct store_message nm = {.present = true,
				   .status = 304,
				   .version_major = 1,
				   .version_minor = 1,
				   .headers = ct,
				   .n_headers = 1};
	struct store_message full = nm;
	full.status = 200;
	full.body = (struct store_slice){(const uint8_t *)doc, sizeof(doc) - 1};
	full.body_len = sizeof(doc) - 1;
	diff_engine_compare(&e, NULL, &nm, &full);
	TAP_OK(e.nf == 2 && e.f[0].kind == DIFF_K_STATUS && e.f[1].kind == DIFF_K_NOT_JSON &&
		   !strcmp(e.f[1].pval, "no body") && !strcmp(e.f[1].cval, "valid JSON"),
	       "304 -> 200 with a JSON body: the status, and 'no body' -> 'valid JSON'");
	diff_engine_compare(&e, NULL, &full, &nm);
	TAP_OK(e.nf == 2 && !strcmp(e.f[1].cval, "no body"),
	       "200 with a JSON body -> 304: the body named as no body");
	diff_engine_release(&e);
}

/* A pair on @p target: the primary answers @p ps with header @p ph, the
 * candidate (or the secondary) @p cs with @p ch. */
static void add_status_pair(struct diff_ctx *c, uint64_t id, const char *target, uint16_t ps,
			    const char *ph, uint16_t cs, const char *ch, enum diff_role role)
{
	const char *const hp[] = {ph, NULL}, *const hc[] = {ch, NULL};
	struct as_pair p;
	as_pair_init(&p, id, "GET", target, NULL);
	as_resp(&p.prim, ps, ph ? hp : NULL, "", 0);
	as_resp(&p.cand, cs, ch ? hc : NULL, "", 0);
	if (role == DIFF_ROLE_SECONDARY)
		p.r.role = as_cs("secondary");
	as_pair_link(&p);
	diff_ctx_add(c, &p.s, &p.r, role);
}

/* The status group of @p v on endpoint @p ep with transition @p tr. */
static const struct diff_group *status_group(const struct diff_cand *v, const char *ep,
					     const char *tr)
{
	long e = diff_endpoint_find(v, ep);
	return e < 0 ? NULL : diff_group_find(v, (uint32_t)e, DIFF_K_STATUS, "status", tr);
}

/* The real cause of @p v at @p loc with pattern @p pat, or NULL. */
static const struct diff_rootcause *cause_of(const struct diff_cand *v, const char *loc,
					     const char *pat)
{
	for (size_t i = 0; v->roots && i < v->roots->n; i++) {
		const struct diff_rootcause *rc = &v->roots->v[i];
		if (!strcmp(rc->location, loc) && !strcmp(rc->pattern, pat))
			return rc;
	}
	return NULL;
}

/* Status changes are grouped per transition (docs/diff.md "Causes"): a
 * group and its cause are one change, whatever the order of the pairs; a
 * header whose pairs changed differently has no pattern; the secondary's
 * transitions count per transition; --max-groups still bounds them. */
static void test_status_transitions(void)
{
	struct diff_ctx *c = diff_ctx_create(NULL);
	/* GET /b: 304 -> 200 once, 206 -> 200 twice, 200 -> 206 once, 200 once */
	add_status_pair(c, 1, "/b", 200, NULL, 206, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 2, "/b", 304, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 3, "/b", 206, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 4, "/b", 206, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 5, "/b", 200, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	/* GET /a: 304 -> 200, the same change on another endpoint */
	add_status_pair(c, 6, "/a", 304, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	/* a header changed two ways on /h, one way on /k and /m */
	add_status_pair(c, 7, "/h", 200, "X-V: a", 200, "X-V: b", DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 8, "/h", 200, "X-V: c", 200, "X-V: d", DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 9, "/k", 200, "X-V: a", 200, "X-V: b", DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 10, "/m", 200, "X-V: a", 200, "X-V: b", DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	const struct diff_cand *v = c->cand[0];
	const struct diff_group *g1 = status_group(v, "GET /b", "304 -> 200");
	const struct diff_group *g2 = status_group(v, "GET /b", "206 -> 200");
	const struct diff_group *g3 = status_group(v, "GET /b", "200 -> 206");
	TAP_OK(g1 && g2 && g3 && g1->count == 1 && g2->count == 2 && g3->count == 1,
	       "GET /b: a status group per transition (304 -> 200: 1, 206 -> 200: 2, 200 -> 206: "
	       "1)");
	TAP_OK(!status_group(v, "GET /b", NULL), "no status group without its transition");
	TAP_EQ_U64(diff_ctx_summary(c)->status_changes, 5, "5 pairs with a status change");
	const struct diff_rootcause *r1 = cause_of(v, "status", "304 -> 200");
	const struct diff_rootcause *r2 = cause_of(v, "status", "206 -> 200");
	const struct diff_rootcause *r3 = cause_of(v, "status", "200 -> 206");
	TAP_OK(r1 && r1->count == 2 && r1->n_eps == 2 && r1->n_groups == 2,
	       "304 -> 200 is one cause on GET /a and GET /b");
	TAP_OK(r2 && r2->count == 2 && r2->n_eps == 1 && r3 && r3->count == 1 && r3->n_eps == 1,
	       "206 -> 200 and 200 -> 206 are a cause each");
	char pat[64];
	diff_group_pattern(g2, pat, sizeof(pat));
	TAP_EQ_STR(pat, "206 -> 200", "a group's pattern is its transition");
	const struct diff_rootcause *rh = cause_of(v, "header:x-v", "");
	const struct diff_rootcause *rk = cause_of(v, "header:x-v", "a -> b");
	TAP_OK(rh && rh->n_eps == 1 && rh->count == 2 && !strcmp(v->ep[rh->eps[0]].name, "GET /h"),
	       "a header changed two ways (a -> b, c -> d) claims no pattern");
	TAP_OK(rk && rk->n_eps == 2 && rk->count == 2,
	       "one changed a -> b everywhere: its pattern");
	diff_ctx_free(c);

	/* the secondary's status changes, per transition: 200 -> 503 as often
	 * on the candidate as on the secondary is learned noise, its group's
	 * secondary count that of 200 -> 503 alone; 200 -> 404 is real */
	c = diff_ctx_create(NULL);
	for (uint64_t i = 0; i < 20; i++) {
		uint16_t cs = i < 4 ? 503 : i == 4 ? 404 : 200;
		uint16_t ss = i >= 10 && i < 14 ? 503 : i == 14 ? 502 : 200;
		add_status_pair(c, i + 1, "/n", 200, NULL, cs, NULL, DIFF_ROLE_CANDIDATE);
		add_status_pair(c, i + 1, "/n", 200, NULL, ss, NULL, DIFF_ROLE_SECONDARY);
	}
	diff_ctx_finish(c);
	v = c->cand[0];
	const struct diff_group *n503 = status_group(v, "GET /n", "200 -> 503");
	const struct diff_group *n404 = status_group(v, "GET /n", "200 -> 404");
	TAP_OK(n503 && n503->count == 4 && n503->sec == 4 && n404 && n404->count == 1 &&
		   n404->sec == 0,
	       "secondary counts per transition (200 -> 503: 4, 200 -> 404: 0)");
	TAP_OK(n503 && n404 && n503->noise == DIFF_NOISE_LEARNED && n404->noise == DIFF_NOISE_NONE,
	       "learned per transition: 200 -> 503 4 of 20 as on the secondary is noise; 200 -> "
	       "404, which the secondary never showed (its 200 -> 502 is another), is real");
	TAP_OK(n503 && n503->loc_rate > 0.19 && n503->loc_rate < 0.21 && n503->sec_rate > 0.19 &&
		   n503->sec_rate < 0.21,
	       "a transition's rates are its own (4 of 20 on both sides)");
	diff_ctx_free(c);

	/* --max-groups: a transition past the cap is the overflow group's,
	 * still a status change */
	struct diff_params prm = {.max_groups = 2};
	c = diff_ctx_create(&prm);
	add_status_pair(c, 1, "/b", 200, NULL, 206, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 2, "/b", 304, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 3, "/b", 206, NULL, 200, NULL, DIFF_ROLE_CANDIDATE);
	add_status_pair(c, 4, "/b", 206, NULL, 500, NULL, DIFF_ROLE_CANDIDATE);
	diff_ctx_finish(c);
	v = c->cand[0];
	long eb = diff_endpoint_find(v, "GET /b");
	const struct diff_group *over =
	    eb < 0 ? NULL : diff_group_find(v, (uint32_t)eb, DIFF_K_STATUS, DIFF_LOC_OVER, NULL);
	TAP_OK(v->n_gr == 3 && over && over->count == 2 && v->groups_dropped == 2,
	       "--max-groups 2: two transitions kept, two in the overflow group");
	TAP_EQ_U64(diff_ctx_summary(c)->status_changes, 4, "every status change still counted");
	diff_ctx_free(c);
}

/* A value naming the server by the authority it was reached at (a
 * Location, a self link) is the same when only that authority differs:
 * the replay's target for the recorded one. */
/* ignore status CODE -> CODE: one transition, HTTP's or gRPC's */
static void test_ignore_transition(void)
{
	char err[128];
	static const char *const bad[] = {"ignore status 304\n", "ignore status 304 -> x\n",
					  "ignore status 1000 -> 200\n", "ignore status 304 200\n",
					  "ignore status 304 -> 200 x\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct noise_rules *r = noise_rules_parse(bad[i], strlen(bad[i]), err, sizeof(err));
		TAP_OK(!r && strstr(err, "line 1"), "refused: %.*s (%s)", (int)strlen(bad[i]) - 1,
		       bad[i], err);
		noise_rules_free(r);
	}
	static const char txt[] = "ignore status 0 -> 4\n";
	struct noise_rules *r = noise_rules_parse(txt, strlen(txt), err, sizeof(err));
	TAP_OK(r && r->n == 1 && r->v[0].st_from == 0 && r->v[0].st_to == 4,
	       "ignore status 0 -> 4: one transition");
	const struct noise_rule *one = r ? &r->v[0] : NULL;
	uint64_t hits[1] = {0};
	struct diff_ruleset rs = {.v = &one, .n = 1, .hits = hits, .all = r, .ignore_status = true};
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	struct store_header hd[] = {hf("content-type", "application/grpc")};
	struct store_header ok0[] = {hf("grpc-status", "0")};
	struct store_header dl4[] = {hf("grpc-status", "4"),
				     hf("grpc-message", "Deadline Exceeded")};
	struct store_header nf5[] = {hf("grpc-status", "5"), hf("grpc-message", "not found")};
	struct store_message a = {.present = true,
				  .status = 200,
				  .version_major = 2,
				  .headers = hd,
				  .n_headers = 1,
				  .trailers = ok0,
				  .n_trailers = 1};
	struct store_message b = a;
	b.trailers = dl4;
	b.n_trailers = 2;
	diff_engine_compare(&e, r ? &rs : NULL, &a, &b);
	TAP_OK(e.nf == 0 && hits[0] == 1, "grpc-status 0 -> 4 ignored, a hit counted");
	b.trailers = nf5;
	diff_engine_compare(&e, r ? &rs : NULL, &a, &b);
	TAP_EQ_STR(findings(&e), "grpc-status 0", "grpc-status 0 -> 5 still a status change");
	diff_engine_release(&e);
	noise_rules_free(r);
}

static void test_authority(void)
{
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	static const char ja[] = "{\"self\":\"http://shop:8080/items/1\",\"n\":\"shop:8080\"}";
	static const char jb[] = "{\"self\":\"http://10.0.0.9:9000/items/1\",\"n\":\"shop:80\"}";
	struct store_header la[] = {hf("location", "http://shop:8080/items/1")};
	struct store_header lb[] = {hf("location", "http://10.0.0.9:9000/items/1")};
	struct store_message a = {.present = true,
				  .status = 200,
				  .version_major = 1,
				  .headers = la,
				  .n_headers = 1,
				  .body = {(const uint8_t *)ja, sizeof(ja) - 1}};
	struct store_message b = a;
	b.headers = lb;
	b.body = (struct store_slice){(const uint8_t *)jb, sizeof(jb) - 1};
	diff_engine_compare(&e, NULL, &a, &b);
	TAP_EQ_STR(findings(&e), "header:location 1; body:$.self 1; body:$.n 1",
		   "no authorities known: the Location and the self link differ");
	e.auth_p = (struct store_slice){(const uint8_t *)"shop:8080", 9};
	e.auth_c = (struct store_slice){(const uint8_t *)"10.0.0.9:9000", 13};
	diff_engine_compare(&e, NULL, &a, &b);
	TAP_EQ_STR(findings(&e), "body:$.n 1",
		   "target 10.0.0.9:9000 for shop:8080: the Location and the self link are the "
		   "same; another value still differs");
	diff_engine_release(&e);
}

static void test_grpc_early_end(void)
{
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	static uint8_t a[1024], b[1024];
	struct store_header hd[] = {hf("content-type", "application/grpc")};
	struct store_header ok[] = {hf("grpc-status", "0")};
	struct store_header err[] = {hf("grpc-status", "13")};
	struct store_message ma = {.present = true,
				   .status = 200,
				   .version_major = 2,
				   .headers = hd,
				   .n_headers = 1,
				   .trailers = ok,
				   .n_trailers = 1};
	struct store_message mb = ma;
	mb.trailers = err;
	/* the candidate ended early by its error: the messages it did not send
	 * follow from the status change */
	ma.body = (struct store_slice){a, grpc_msgs(a, 0, 5, 'x')};
	mb.body = (struct store_slice){b, grpc_msgs(b, 0, 3, 'x')};
	diff_engine_compare(&e, NULL, &ma, &mb);
	TAP_EQ_STR(findings(&e), "grpc-status 0", "grpc stream: an error after 3 of 5: the status");
	/* the candidate sent 3 more messages than production, then failed: no
	 * error cut production's answer, the 3 are differences of their own */
	mb.body = (struct store_slice){b, grpc_msgs(b, 0, 8, 'x')};
	diff_engine_compare(&e, NULL, &ma, &mb);
	TAP_EQ_STR(findings(&e), "grpc-status 0; body:$[*] 4; body:$[*] 4; body:$[*] 4",
		   "grpc stream: 3 messages more, then an error: the 3 are extra");
	/* cut to one message, a stream is still an array: the locations are
	 * those of the same call's other pairs (and their learned noise) */
	mb.body = (struct store_slice){b, grpc_msgs(b, 0, 1, 'y')};
	diff_engine_compare(&e, NULL, &ma, &mb);
	TAP_EQ_STR(findings(&e), "grpc-status 0; body:$[*].2 1",
		   "grpc stream: an error after 1 of 5: the first compared at body:$[*].2");
	/* Trailers-Only: the message-encoding fields its grammar has no place
	 * for are not missing from it; missing from the side with a message,
	 * they still are */
	struct store_header full[] = {hf("content-type", "application/grpc"),
				      hf("grpc-accept-encoding", "identity, gzip")};
	struct store_header only[] = {hf("content-type", "application/grpc"),
				      hf("grpc-status", "5")};
	struct store_header only_ae[] = {hf("content-type", "application/grpc"),
					 hf("grpc-accept-encoding", "identity, gzip"),
					 hf("grpc-status", "5")};
	struct store_message to = {
	    .present = true, .status = 200, .version_major = 2, .headers = only, .n_headers = 2};
	ma.headers = full;
	ma.n_headers = 2;
	ma.body = (struct store_slice){a, grpc_msgs(a, 0, 1, 'x')};
	diff_engine_compare(&e, NULL, &ma, &to);
	TAP_EQ_STR(findings(&e), "grpc-status 0",
		   "Trailers-Only NOT_FOUND: its missing grpc-accept-encoding is not reported");
	to.headers = only_ae;
	to.n_headers = 3;
	ma.headers = hd;
	ma.n_headers = 1;
	diff_engine_compare(&e, NULL, &to, &ma);
	TAP_EQ_STR(findings(&e), "header:grpc-accept-encoding 3; grpc-status 0",
		   "Trailers-Only with grpc-accept-encoding, the answer with a message without: "
		   "missing from the latter");
	diff_engine_release(&e);
}

int main(void)
{
	test_json_parser();
	test_tmpl();
	test_rules();
	test_json_diff();
	test_align();
	test_volatile();
	test_long_values();
	test_decode();
	test_report_caps();
	test_ctx();
	test_headers_and_accounting();
	test_client_cancelled();
	test_counter_classes();
	test_rules_in_ctx();
	test_html_escaping();
	test_status_empty_body();
	test_authority();
	test_ignore_transition();
	test_grpc_early_end();
	test_status_transitions();
	return tap_done();
}
