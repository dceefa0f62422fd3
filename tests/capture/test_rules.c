/* SPDX-License-Identifier: MIT */
/*
 * test_rules - unit tests of the color rules (capture/rules.h): runs every
 * example block of docs/rules.md (path given as argv[1]), the sampling
 * rate over 100k distinct keys, rules files, L4-only detection and
 * sessions without a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/rules.h"
#include "common/mem.h"
#include "tests/tap.h"

#define MAX_HDR 16

struct example {
	char rules[8][512];
	int n_rules;
	char reqline[512];
	char hdr_name[MAX_HDR][128];
	char hdr_value[MAX_HDR][512];
	int n_hdr;
	char src[128], dst[128];
	int vlan;
	char expect[128];
	char error[512];
	char hash_key[8][64];
	char hash_hex[8][32];
	int n_hash;
	int line;
};

static void slice_set(struct store_slice *s, const char *p, size_t n)
{
	s->ptr = (const uint8_t *)p;
	s->len = n;
}

static int parse_endpoint(const char *text, uint8_t *ipv, struct store_endpoint *e)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", text);
	char *colon = strrchr(buf, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	e->port = (uint16_t)strtoul(colon + 1, NULL, 10);
	char *a = buf;
	if (a[0] == '[') {
		a++;
		a[strlen(a) - 1] = '\0';
		*ipv = 6;
		return inet_pton(AF_INET6, a, e->addr) == 1 ? 0 : -1;
	}
	*ipv = 4;
	return inet_pton(AF_INET, a, e->addr) == 1 ? 0 : -1;
}

static void run_example(const struct example *ex)
{
	for (int i = 0; i < ex->n_hash; i++) {
		const char *k = ex->hash_key[i];
		char hex[32];
		snprintf(hex, sizeof(hex), "%016llx",
			 (unsigned long long)rules_sample_hash((const uint8_t *)k, strlen(k)));
		TAP_EQ_STR(hex, ex->hash_hex[i], "docs/rules.md:%d: hash of '%.40s'", ex->line, k);
	}
	if (!ex->n_rules)
		return;
	struct rules *r = rules_create();
	char err[512] = "";
	int rc = 0;
	for (int i = 0; i < ex->n_rules && !rc; i++)
		rc = rules_add(r, ex->rules[i], err, sizeof(err));
	if (ex->error[0]) {
		TAP_OK(rc == -EINVAL, "docs/rules.md:%d: '%.80s' is refused", ex->line,
		       ex->rules[ex->n_rules - 1]);
		TAP_EQ_STR(err, ex->error, "docs/rules.md:%d: error message", ex->line);
		rules_free(r);
		return;
	}
	TAP_OK(rc == 0, "docs/rules.md:%d: rules parse (%.80s)", ex->line, err);
	struct store_session s;
	memset(&s, 0, sizeof(s));
	struct store_header h[MAX_HDR];
	s.ip_version = 4;
	s.src.addr[0] = 192, s.src.addr[1] = 0, s.src.addr[2] = 2, s.src.addr[3] = 1;
	s.src.port = 50000;
	s.dst.addr[0] = 192, s.dst.addr[1] = 0, s.dst.addr[2] = 2, s.dst.addr[3] = 2;
	s.dst.port = 80;
	if (ex->src[0])
		parse_endpoint(ex->src, &s.ip_version, &s.src);
	if (ex->dst[0])
		parse_endpoint(ex->dst, &s.ip_version, &s.dst);
	s.vlan = (uint16_t)ex->vlan;
	if (ex->reqline[0]) {
		s.req.present = true;
		const char *sp1 = strchr(ex->reqline, ' ');
		const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (sp1 && sp2) {
			slice_set(&s.req.method, ex->reqline, (size_t)(sp1 - ex->reqline));
			slice_set(&s.req.target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
		}
		s.req.version_major = 1;
		s.req.version_minor = 1;
		for (int i = 0; i < ex->n_hdr; i++) {
			slice_set(&h[i].name, ex->hdr_name[i], strlen(ex->hdr_name[i]));
			slice_set(&h[i].value, ex->hdr_value[i], strlen(ex->hdr_value[i]));
		}
		s.req.headers = h;
		s.req.n_headers = (size_t)ex->n_hdr;
	}
	const char *lane = rules_match(r, &s);
	TAP_EQ_STR(lane ? lane : "none", ex->expect, "docs/rules.md:%d: %.80s -> %.40s", ex->line,
		   ex->rules[0], ex->expect);
	rules_free(r);
}

static void strip(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static void test_docs(const char *path)
{
	FILE *f = fopen(path, "r");
	TAP_OK(f != NULL, "open %s", path);
	if (!f)
		return;
	char line[1024];
	int lineno = 0, blocks = 0, errors = 0, hashes = 0;
	bool in = false;
	struct example ex;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		strip(line);
		if (!in) {
			if (strcmp(line, "```rules-test") == 0) {
				in = true;
				memset(&ex, 0, sizeof(ex));
				ex.line = lineno;
			}
			continue;
		}
		if (strcmp(line, "```") == 0) {
			in = false;
			blocks++;
			if (ex.error[0])
				errors++;
			hashes += ex.n_hash;
			run_example(&ex);
			continue;
		}
		char *colon = strchr(line, ':');
		TAP_OK(colon != NULL, "docs/rules.md:%d: example line has a key", lineno);
		if (!colon)
			continue;
		*colon = '\0';
		const char *key = line, *val = colon + 1;
		if (*val == ' ')
			val++;
		if (strcmp(key, "rule") == 0 && ex.n_rules < 8) {
			snprintf(ex.rules[ex.n_rules++], sizeof(ex.rules[0]), "%s", val);
		} else if (strcmp(key, "request") == 0) {
			snprintf(ex.reqline, sizeof(ex.reqline), "%s", val);
		} else if (strcmp(key, "header") == 0 && ex.n_hdr < MAX_HDR) {
			const char *c = strchr(val, ':');
			if (!c)
				continue;
			snprintf(ex.hdr_name[ex.n_hdr], sizeof(ex.hdr_name[0]), "%.*s",
				 (int)(c - val), val);
			c++;
			while (*c == ' ')
				c++;
			snprintf(ex.hdr_value[ex.n_hdr], sizeof(ex.hdr_value[0]), "%s", c);
			ex.n_hdr++;
		} else if (strcmp(key, "src") == 0) {
			snprintf(ex.src, sizeof(ex.src), "%s", val);
		} else if (strcmp(key, "dst") == 0) {
			snprintf(ex.dst, sizeof(ex.dst), "%s", val);
		} else if (strcmp(key, "vlan") == 0) {
			ex.vlan = (int)strtol(val, NULL, 10);
		} else if (strcmp(key, "expect") == 0) {
			snprintf(ex.expect, sizeof(ex.expect), "%s", val);
		} else if (strcmp(key, "error") == 0) {
			snprintf(ex.error, sizeof(ex.error), "%s", val);
		} else if (strcmp(key, "hash") == 0 && ex.n_hash < 8) {
			const char *sp = strchr(val, ' ');
			if (!sp)
				continue;
			snprintf(ex.hash_key[ex.n_hash], sizeof(ex.hash_key[0]), "%.*s",
				 (int)(sp - val), val);
			snprintf(ex.hash_hex[ex.n_hash], sizeof(ex.hash_hex[0]), "%s", sp + 1);
			ex.n_hash++;
		} else {
			TAP_OK(0, "docs/rules.md:%d: unknown example key '%.40s'", lineno, key);
		}
	}
	fclose(f);
	TAP_OK(!in, "every example block is closed");
	TAP_OK(blocks >= 30 && errors >= 5 && hashes >= 4,
	       "docs/rules.md has examples: %d blocks, %d errors, %d hashes", blocks, errors,
	       hashes);
}

static int sampled(const struct rules *r, const char *value)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	struct store_header h;
	slice_set(&h.name, "X-User-Id", 9);
	slice_set(&h.value, value, strlen(value));
	s.req.present = true;
	slice_set(&s.req.method, "GET", 3);
	slice_set(&s.req.target, "/", 1);
	s.req.headers = &h;
	s.req.n_headers = 1;
	return rules_match(r, &s) != NULL;
}

static void test_sampling(void)
{
	struct rules *r5 = rules_create(), *r10 = rules_create(), *rh = rules_create();
	char err[256];
	TAP_OK(rules_add(r5, "beta=sample:header:x-user-id:5%", err, sizeof(err)) == 0, "5%%");
	TAP_OK(rules_add(r10, "beta=sample:header:x-user-id:10%", err, sizeof(err)) == 0, "10%%");
	TAP_OK(rules_add(rh, "beta=sample:header:x-user-id:0.5%", err, sizeof(err)) == 0, "0.5%%");
	const int n = 100000;
	int in5 = 0, in10 = 0, inh = 0, not_subset = 0, unstable = 0;
	char key[32];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "user-%d", i);
		int a = sampled(r5, key), b = sampled(r10, key), c = sampled(rh, key);
		in5 += a;
		in10 += b;
		inh += c;
		if ((a && !b) || (c && !a))
			not_subset++;
		if (a != sampled(r5, key))
			unstable++;
	}
	printf("# sampling over %d keys: 5%% -> %d, 10%% -> %d, 0.5%% -> %d\n", n, in5, in10, inh);
	TAP_OK(in5 > 4700 && in5 < 5300, "5%% of 100k keys within +-6%% (%d)", in5);
	TAP_OK(in10 > 9500 && in10 < 10500, "10%% of 100k keys within +-5%% (%d)", in10);
	TAP_OK(inh > 400 && inh < 600, "0.5%% of 100k keys within +-20%% (%d)", inh);
	TAP_EQ_U64(not_subset, 0, "lower rates select subsets of higher rates");
	TAP_EQ_U64(unstable, 0, "same key, same decision");
	/* Numeric ids, the usual case, are as well spread. */
	int num = 0;
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%d", 1000000 + i);
		num += sampled(r5, key);
	}
	TAP_OK(num > 4700 && num < 5300, "5%% of 100k numeric ids (%d)", num);
	rules_free(r5);
	rules_free(r10);
	rules_free(rh);
}

static void test_file(void)
{
	char path[] = "/tmp/test_rules_XXXXXX";
	int fd = mkstemp(path);
	TAP_OK(fd >= 0, "temp file");
	if (fd < 0)
		return;
	const char *text = "# lanes for the test\n"
			   "\n"
			   "  blue=header:x-lane=blue   \n"
			   "\t# indented comment\n"
			   "canary=cookie:lane=canary,path:/api/*\r\n"
			   "beta=sample:header:x-user-id:5%\n";
	TAP_OK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write rules file");
	close(fd);
	struct rules *r = rules_create();
	char err[512] = "";
	int rc = rules_load_file(r, path, err, sizeof(err));
	TAP_OK(rc == 0, "rules file loads (%.80s)", err);
	TAP_EQ_U64(rules_count(r), 3, "three rules, comments and blanks skipped");
	TAP_EQ_STR(rules_text(r, 0), "blue=header:x-lane=blue", "text kept (trimmed)");
	TAP_EQ_STR(rules_text(r, 1), "canary=cookie:lane=canary,path:/api/*", "CRLF line");
	TAP_OK(rules_text(r, 3) == NULL, "out of range text is NULL");
	TAP_OK(!rules_l4_only(r), "header rules are not L4-only");
	rules_free(r);

	FILE *f = fopen(path, "w");
	fputs("ok=port:80\n# fine\nbad=hedaer:x\n", f);
	fclose(f);
	r = rules_create();
	rc = rules_load_file(r, path, err, sizeof(err));
	char want[512];
	snprintf(want, sizeof(want),
		 "%s:3: rule 'bad=hedaer:x': unknown matcher 'hedaer' (expected header, cookie, "
		 "query, host, method, path, src, dst, port, sport, dport, vlan, sample)",
		 path);
	TAP_OK(rc == -EINVAL, "bad line refused");
	TAP_EQ_STR(err, want, "error names file and line");
	rules_free(r);
	unlink(path);

	r = rules_create();
	rc = rules_load_file(r, "/nonexistent/lanes.rules", err, sizeof(err));
	TAP_OK(rc == -ENOENT, "missing file: -ENOENT");
	TAP_EQ_STR(err,
		   "/nonexistent/lanes.rules: cannot open rules file: No such file or directory",
		   "missing file message");
	rules_free(r);
}

static void test_l4_and_orphans(void)
{
	struct rules *r = rules_create();
	char err[256];
	TAP_OK(rules_l4_only(r), "empty set is L4-only");
	TAP_OK(rules_match(r, &(struct store_session){0}) == NULL, "empty set matches nothing");
	TAP_OK(rules_add(r, "net=src:10.0.0.0/8,dport:80-89,vlan:0", err, sizeof(err)) == 0,
	       "L4 rule");
	TAP_OK(rules_add(r, "v6=dst:::1", err, sizeof(err)) == 0, "v6 host rule (%.80s)", err);
	TAP_OK(rules_l4_only(r), "address/port/vlan rules are L4-only");
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.ip_version = 4;
	s.src.addr[0] = 10;
	s.src.addr[3] = 9;
	s.dst.port = 85;
	TAP_EQ_STR(rules_match(r, &s), "net", "L4 rule matches a session without request");
	s.ip_version = 6;
	memset(s.dst.addr, 0, 16);
	s.dst.addr[15] = 1;
	TAP_EQ_STR(rules_match(r, &s), "v6", "::1 host matches");
	TAP_OK(rules_add(r, "h=header:x", err, sizeof(err)) == 0, "header rule");
	TAP_OK(!rules_l4_only(r), "one HTTP matcher: not L4-only");
	struct rules *h = rules_create();
	rules_add(h, "h=!header:x", err, sizeof(err));
	TAP_OK(rules_match(h, &s) == NULL, "negated HTTP matcher on an orphan response: no match");
	rules_free(h);
	rules_free(r);

	/* Long and odd inputs are refused with a message, never crash. */
	r = rules_create();
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[1] = '=';
	TAP_OK(rules_add(r, big, err, sizeof(err)) == -EINVAL && strstr(err, "longer than"),
	       "overlong rule refused");
	const char *bad[] = {"=x",
			     "a=",
			     "a=,",
			     "a=!",
			     "a=header:",
			     "a=header:=v",
			     "a=sample:",
			     "a=sample:header:x:101%",
			     "a=sample:header:x:1.23456%",
			     "a=vlan:5000",
			     "a=port:9-1",
			     "a=src:1.2.3",
			     "a=src:::1/129",
			     "a=method:",
			     "a=method:G T",
			     "a=cookie:na me=v",
			     "a=Header:x"};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (rules_add(r, bad[i], err, sizeof(err)) == -EINVAL &&
		    strncmp(err, "rule '", 6) == 0)
			refused++;
		else
			printf("# accepted or no message: %s (%s)\n", bad[i], err);
	}
	TAP_EQ_U64(refused, sizeof(bad) / sizeof(bad[0]), "malformed rules refused with a message");
	TAP_EQ_U64(rules_count(r), 0, "refused rules are not added");
	rules_free(r);
}

/* With -Dfault_injection=true: every allocation of a run fails once in turn. */
static void test_alloc_failures(void)
{
#ifdef DYETAP_FAULT_INJECTION
	static const char *const texts[] = {"blue=header:x-lane=blue",
					    "canary=cookie:lane=canary,path:/api/*",
					    "beta=sample:header:x-user-id:5%"};
	int bad = 0, failures_seen = 0;
	for (uint64_t n = 1; n < 200; n++) {
		mem_fail_at(n);
		struct rules *r = rules_create();
		if (!r) {
			failures_seen++;
			continue;
		}
		for (size_t i = 0; i < 3; i++) {
			size_t before = rules_count(r);
			char err[256];
			int rc = rules_add(r, texts[i], err, sizeof(err));
			if (rc == -ENOMEM)
				failures_seen++;
			if ((rc == 0) != (rules_count(r) == before + 1) || (rc && rc != -ENOMEM))
				bad++;
		}
		(void)rules_match(r, &(struct store_session){0});
		rules_free(r);
	}
	mem_fail_at(0);
	TAP_OK(bad == 0 && failures_seen > 0,
	       "allocation failures: -ENOMEM, nothing half-added (%d failures)", failures_seen);
#endif
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("not ok 1 - usage: test_rules docs/rules.md\n1..1\n");
		return 1;
	}
	test_docs(argv[1]);
	test_sampling();
	test_file();
	test_l4_and_orphans();
	test_alloc_failures();
	return tap_done();
}
