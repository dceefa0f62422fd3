/* SPDX-License-Identifier: MIT */
/*
 * test_redact - unit tests of capture/redact.h: rule syntax, header,
 * cookie, Set-Cookie, query and JSON masking and dropping, bodies that
 * are left alone (not JSON, cut, encoded, too deep) and the counters.
 * docs/capture.md "Redaction".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "capture/redact.h"
#include "tests/tap.h"

#define S(x) ((struct store_slice){(const uint8_t *)(x), sizeof(x) - 1})

static char got[8192];

static const char *str(struct store_slice s)
{
	snprintf(got, sizeof(got), "%.*s", (int)s.len, (const char *)s.ptr);
	return got;
}

static struct redact *mk(const char *const *specs)
{
	char err[256];
	struct redact *r = redact_create();
	for (size_t i = 0; r && specs[i]; i++)
		if (redact_add(r, specs[i], err, sizeof(err)) < 0)
			printf("# %s: %s\n", specs[i], err);
	return r;
}

/* A session whose request has @p body as JSON and the given target. */
static struct store_session sess(struct store_header *h, size_t nh, const char *target,
				 const char *body)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.req.present = true;
	s.req.method = S("POST");
	s.req.target = (struct store_slice){(const uint8_t *)target, strlen(target)};
	s.req.headers = h;
	s.req.n_headers = nh;
	s.req.body = (struct store_slice){(const uint8_t *)body, strlen(body)};
	s.req.body_len = s.req.body.len;
	return s;
}

static const char *body_after(struct redact *r, const char *body, uint32_t *flags)
{
	struct store_header h[] = {{S("Content-Type"), S("application/json; charset=utf-8")}};
	struct store_session in = sess(h, 1, "/", body), out;
	int rc = redact_session(r, &in, &out);
	*flags = out.flags;
	return rc ? "(error)" : str(out.req.body);
}

static void test_syntax(void)
{
	char err[256];
	struct redact *r = redact_create();
	TAP_OK(redact_add(r, "header:Authorization", err, sizeof(err)) == 0, "header rule");
	TAP_EQ_STR(redact_text(r, 0), "header:authorization:mask", "canonical text, lower case");
	TAP_OK(redact_add(r, "json:$.items[*].card:drop", err, sizeof(err)) == 0, "json drop");
	TAP_EQ_STR(redact_text(r, 1), "json:$.items[*].card:drop", "json canonical text");
	TAP_OK(redact_add(r, "body:x", err, sizeof(err)) == -EINVAL, "unknown kind refused");
	TAP_OK(redact_add(r, "json:password", err, sizeof(err)) == -EINVAL, "path without $");
	TAP_OK(redact_add(r, "json:$.a[x]", err, sizeof(err)) == -EINVAL, "bad index");
	TAP_OK(redact_add(r, "header:", err, sizeof(err)) == -EINVAL, "empty name");
	TAP_OK(redact_add(r, "cookie:a:zap", err, sizeof(err)) == -EINVAL, "unknown action");
	TAP_EQ_U64(redact_count(r), 2, "refused rules are not added");
	TAP_OK(redact_add_defaults(r) == 0 && redact_count(r) > 15, "defaults added");
	redact_free(r);
}

static void test_headers_cookies_query(void)
{
	struct redact *r =
	    mk((const char *const[]){"header:authorization", "header:x-secret:drop", "cookie:sid",
				     "cookie:trk:drop", "query:token", "query:key:drop", NULL});
	struct store_header h[] = {
	    {S("AUTHORIZATION"), S("Basic c2VjcmV0")},
	    {S("X-Secret"), S("s3")},
	    {S("Cookie"), S("a=1; sid=abc;trk=zz ; b=2")},
	    {S("Accept"), S("*/*")},
	};
	struct store_session in = sess(h, 4, "/p?x=1&token=T0K&key=K&y=2#frag", ""), out;
	TAP_OK(redact_session(r, &in, &out) == 0, "session redacted");
	TAP_OK(out.flags & STORE_F_REDACTED, "flagged redacted");
	TAP_EQ_U64(out.req.n_headers, 3, "dropped header removed");
	TAP_EQ_STR(str(out.req.headers[0].value), "[redacted]", "header masked (any case)");
	TAP_EQ_STR(str(out.req.headers[1].value), "a=1; sid=[redacted]; b=2",
		   "cookie masked, dropped cookie removed");
	TAP_EQ_STR(str(out.req.headers[2].value), "*/*", "other header kept");
	TAP_EQ_STR(str(out.req.target), "/p?x=1&token=%5Bredacted%5D&y=2#frag",
		   "query masked (percent-encoded marker) and dropped");
	TAP_EQ_STR(str(in.req.headers[0].value), "Basic c2VjcmV0", "input session untouched");

	struct store_session in2 = sess(NULL, 0, "/q?key=1", ""), out2;
	redact_session(r, &in2, &out2);
	TAP_EQ_STR(str(out2.req.target), "/q", "every parameter dropped: no '?'");

	struct store_header sc[] = {{S("Set-Cookie"), S("sid=xyz; Path=/; HttpOnly")},
				    {S("Set-Cookie"), S("trk=1; Max-Age=9")},
				    {S("Set-Cookie"), S("ok=1")}};
	struct store_session in3 = sess(NULL, 0, "/", ""), out3;
	in3.resp.present = true;
	in3.resp.headers = sc;
	in3.resp.n_headers = 3;
	redact_session(r, &in3, &out3);
	TAP_EQ_U64(out3.resp.n_headers, 2, "Set-Cookie of a dropped cookie removed");
	TAP_EQ_STR(str(out3.resp.headers[0].value), "sid=[redacted]; Path=/; HttpOnly",
		   "Set-Cookie masked, attributes kept");

	struct store_session in4 = sess(NULL, 0, "/plain", ""), out4;
	redact_session(r, &in4, &out4);
	TAP_OK(!(out4.flags & STORE_F_REDACTED), "nothing matched: not flagged");
	const struct redact_stats *st = redact_get_stats(r);
	TAP_EQ_U64(st->sessions, 3, "sessions counter: three of four changed");
	redact_free(r);
}

static void test_json(void)
{
	struct redact *r = mk((const char *const[]){
	    "json:$.password", "json:$.user.token", "json:$.items[*].card", "json:$.list[1]",
	    "json:$.debug:drop", "json:$.arr[0]:drop", NULL});
	uint32_t fl;
	TAP_EQ_STR(body_after(r, "{ \"password\" : \"pw\", \"a\": 1 }", &fl),
		   "{\"password\":\"[redacted]\",\"a\":1}", "top-level member masked, compact");
	TAP_OK(fl & STORE_F_REDACTED, "json change flags the session");
	TAP_EQ_STR(body_after(r, "{\"user\":{\"token\":{\"x\":[1,2]},\"id\":7}}", &fl),
		   "{\"user\":{\"token\":\"[redacted]\",\"id\":7}}",
		   "nested object value masked whole");
	TAP_EQ_STR(body_after(r, "{\"items\":[{\"card\":\"1\"},{\"n\":2,\"card\":3}]}", &fl),
		   "{\"items\":[{\"card\":\"[redacted]\"},{\"n\":2,\"card\":\"[redacted]\"}]}",
		   "[*] matches every element");
	TAP_EQ_STR(body_after(r, "{\"list\":[\"a\",\"b\",\"c\"]}", &fl),
		   "{\"list\":[\"a\",\"[redacted]\",\"c\"]}", "[1] matches one element");
	TAP_EQ_STR(body_after(r, "{\"debug\":1,\"a\":2,\"arr\":[9,8]}", &fl),
		   "{\"a\":2,\"arr\":[8]}", "drop removes the member and the array element");
	TAP_EQ_STR(body_after(r, "{\"a\":2,\"debug\":\"x\"}", &fl), "{\"a\":2}",
		   "drop of the last member leaves valid JSON");
	const char *same = "{ \"other\": \"v\" }";
	TAP_EQ_STR(body_after(r, same, &fl), same, "no match: body unchanged byte for byte");
	TAP_OK(!(fl & STORE_F_REDACTED), "no match: not flagged");
	uint64_t skipped = redact_get_stats(r)->json_skipped;
	const char *bad[] = {"{\"password\":\"x\"",
			     "{\"password\":01}",
			     "{\"password\":\"\\q\"}",
			     "{\"password\":tru}",
			     "[1,]",
			     "{\"password\":1} x",
			     "\"\x01\""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_STR(body_after(r, bad[i], &fl), bad[i], "invalid JSON %zu left as is", i);
	TAP_EQ_U64(redact_get_stats(r)->json_skipped, skipped + 7, "json_skipped counts them");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	deep[0] = '[';
	char deep_s[201];
	memcpy(deep_s, deep, 200);
	deep_s[200] = 0;
	TAP_EQ_STR(body_after(r, deep_s, &fl), deep_s, "nesting over the bound left as is");

	struct store_header h[] = {{S("Content-Type"), S("application/json")},
				   {S("Content-Encoding"), S("gzip")}};
	struct store_session in = sess(h, 2, "/", "{\"password\":\"x\"}"), out;
	redact_session(r, &in, &out);
	TAP_EQ_STR(str(out.req.body), "{\"password\":\"x\"}", "encoded body left as is");
	struct store_header t[] = {{S("Content-Type"), S("text/plain")}};
	in = sess(t, 1, "/", "{\"password\":\"x\"}");
	redact_session(r, &in, &out);
	TAP_EQ_STR(str(out.req.body), "{\"password\":\"x\"}", "non-JSON content type not scanned");
	redact_free(r);
}

/* What issue 16 found escaping redaction, each checked against the defaults. */
static void test_escapes(void)
{
	struct redact *r = redact_create();
	TAP_OK(r && redact_add_defaults(r) == 0, "defaults");
	/* "Authorization : Bearer" (space before the colon, accepted by lenient parsers) */
	struct store_header h1[] = {
	    {S("Authorization "), S("Bearer sekrit-1")},
	    {S(" X-Api-Key\t"), S("sekrit-2")},
	    {S("Referer"), S("https://bob:sekrit-3@shop.example/a?token=sekrit-4&x=1")},
	    {S("Content-Type"), S("application/x-www-form-urlencoded")}};
	struct store_session in =
	    sess(h1, 4, "http://alice:sekrit-5@shop.example/login?TOKEN=sekrit-6&q=ok",
		 "user=al&password=sekrit-7&Access_Token=sekrit-8&keep=1");
	struct store_session out;
	TAP_OK(redact_session(r, &in, &out) == 0 && (out.flags & STORE_F_REDACTED), "redacted");
	char all[4096];
	size_t o = 0;
	for (size_t i = 0; i < out.req.n_headers; i++)
		o += (size_t)snprintf(
		    all + o, sizeof(all) - o, "%.*s: %.*s\n", (int)out.req.headers[i].name.len,
		    (const char *)out.req.headers[i].name.ptr, (int)out.req.headers[i].value.len,
		    (const char *)out.req.headers[i].value.ptr);
	o += (size_t)snprintf(all + o, sizeof(all) - o, "%.*s\n%.*s\n", (int)out.req.target.len,
			      (const char *)out.req.target.ptr, (int)out.req.body.len,
			      (const char *)out.req.body.ptr);
	TAP_OK(!strstr(all, "sekrit"), "no secret left in headers, target or form body");
	if (strstr(all, "sekrit"))
		printf("# %.200s\n", strstr(all, "sekrit"));
	TAP_OK(strstr(all, "Authorization : [redacted]\n") &&
		   strstr(all, " X-Api-Key\t: [redacted]"),
	       "header names matched after trimming, written as on the wire");
	TAP_OK(strstr(all, "https://%5Bredacted%5D@shop.example/a?token=%5Bredacted%5D&x=1") !=
		   NULL,
	       "Referer: user:pass@ and token masked, the rest kept");
	TAP_OK(strstr(all, "http://%5Bredacted%5D@shop.example/login?TOKEN=%5Bredacted%5D&q=ok") !=
		   NULL,
	       "absolute-form target: userinfo and upper-case TOKEN masked");
	TAP_OK(strstr(all, "user=al&password=%5Bredacted%5D&Access_Token=%5Bredacted%5D&keep=1") !=
		   NULL,
	       "form body: password and Access_Token masked in any case");
	/* nested JSON keys at any depth, in any case, in a response */
	struct store_header h2[] = {{S("Content-Type"), S("application/json")},
				    {S("Location"), S("/next?access_token=sekrit-9")},
				    {S("Set-Cookie"), S("sid=sekrit-10; Path=/")}};
	struct store_session in2;
	memset(&in2, 0, sizeof(in2));
	in2.resp.present = true;
	in2.resp.status = 200;
	in2.resp.headers = h2;
	in2.resp.n_headers = 3;
	const char *body = "{\"user\":{\"name\":\"al\",\"Password\":\"sekrit-11\","
			   "\"creds\":[{\"token\":\"sekrit-12\"}]},\"ok\":true}";
	in2.resp.body = (struct store_slice){(const uint8_t *)body, strlen(body)};
	in2.resp.body_len = in2.resp.body.len;
	TAP_OK(redact_session(r, &in2, &out) == 0, "response redacted");
	o = 0;
	for (size_t i = 0; i < out.resp.n_headers; i++)
		o += (size_t)snprintf(all + o, sizeof(all) - o, "%.*s\n",
				      (int)out.resp.headers[i].value.len,
				      (const char *)out.resp.headers[i].value.ptr);
	snprintf(all + o, sizeof(all) - o, "%.*s", (int)out.resp.body.len,
		 (const char *)out.resp.body.ptr);
	TAP_OK(!strstr(all, "sekrit"),
	       "no secret left: nested JSON keys, Location token, Set-Cookie");
	if (strstr(all, "sekrit"))
		printf("# %.200s\n", strstr(all, "sekrit"));
	TAP_OK(strstr(all, "\"name\":\"al\"") && strstr(all, "\"ok\":true"),
	       "other JSON members kept");
	char err[256];
	TAP_OK(redact_add(r, "url:host", err, sizeof(err)) == -EINVAL && strstr(err, "userinfo"),
	       "url knows userinfo only: %.150s", err);
	TAP_OK(redact_add(r, "json:$.a..b", err, sizeof(err)) == -EINVAL,
	       "'..' only at the start of a path");
	redact_free(r);
}

int main(void)
{
	test_syntax();
	test_headers_cookies_query();
	test_json();
	test_escapes();
	return tap_done();
}
