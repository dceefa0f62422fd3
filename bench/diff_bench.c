/* SPDX-License-Identifier: MIT */
/*
 * diff_bench - throughput of the response differ on one core
 * (docs/benchmarks.md "Diff": identical 1 KiB JSON pairs >= 1 GB/s, differing pairs
 * >= 200k pairs/s). Builds N pairs of ~1 KiB JSON responses, times
 *   - identical pairs through diff_ctx_add() (bytes equal: fast path),
 *   - identical-after-masking pairs (a `mask body` rule, bytes differ),
 *   - differing pairs through diff_ctx_add() (parse both, structural diff,
 *     grouping) and through the pair engine alone,
 * and writes the same pairs for the anchors run by bench/diff.sh (cmp and
 * a jq-based diff). Prints "name value unit" lines, median of 5 runs.
 *
 * usage: diff_bench OUTDIR [N [differ|ident]]  (the last: profile one case)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff.h"
#include "analysis/diff_private.h"
#include <time.h>
#include "tests/analysis/analysis_sample.h"

#define RUNS 5

/*
 * CPU time of this thread, not wall time: the benchmark machines are
 * shared, and time spent waiting for a core is not the differ's cost.
 * bench/diff.sh measures the anchors' CPU time the same way.
 */
static int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char *make_body(unsigned i, int variant, size_t *len)
{
	char *b = malloc(2048);
	int n = snprintf(
	    b, 2048,
	    "{\"id\":%u,\"name\":\"customer %u\",\"email\":\"user%u@example.com\","
	    "\"created\":\"2026-11-%02uT10:%02u:00Z\",\"active\":%s,\"tier\":\"%s\","
	    "\"address\":{\"street\":\"%u Main Street\",\"city\":\"Springfield\",\"zip\":\"%05u\","
	    "\"country\":\"US\"},\"tags\":[\"alpha\",\"beta\",\"gamma\",\"delta\"],"
	    "\"orders\":[{\"order_id\":%u,\"total\":%u.%02u,\"items\":3,\"status\":\"shipped\"},"
	    "{\"order_id\":%u,\"total\":%u.50,\"items\":1,\"status\":\"%s\"},"
	    "{\"order_id\":%u,\"total\":12.00,\"items\":2,\"status\":\"delivered\"}],"
	    "\"prefs\":{\"newsletter\":true,\"sms\":false,\"lang\":\"en-US\",\"currency\":\"USD\"},"
	    "\"trace\":\"%08x%08x\",%s\"score\":%u.%u,\"notes\":\"Lorem ipsum dolor sit amet, "
	    "consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
	    "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi "
	    "ut "
	    "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate "
	    "velit esse cillum dolore eu fugiat nulla pariatur.\","
	    "\"flags\":[1,2,3,5,8,13,21,34],\"version\":\"2.%u.0\"}",
	    i, i, i, 1 + i % 28, i % 60, i % 3 ? "true" : "false", i % 2 ? "gold" : "silver", i,
	    i % 100000, i * 10, i % 500, i % 100, i * 10 + 1, i % 90,
	    variant == 2 ? "cancelled" : "pending", i * 10 + 2,
	    variant == 1 ? i * 2654435761u : i * 40503u, i, variant == 2 ? "" : "\"legacy\":null,",
	    i % 100, variant == 2 ? 7 : 5, i % 10);
	*len = (size_t)n;
	return b;
}

static const char *const hdrs[] = {"Content-Type: application/json", "Cache-Control: no-store",
				   "Date: Thu, 26 Nov 2026 10:00:00 GMT", NULL};

struct pairset {
	struct as_pair *p;
	char **a, **b;
	size_t *alen, *blen;
	unsigned n;
	size_t bytes; /* primary body bytes */
};

static void build(struct pairset *s, unsigned n, int cand_variant)
{
	s->n = n;
	s->p = calloc(n, sizeof(*s->p));
	s->a = calloc(n, sizeof(char *));
	s->b = calloc(n, sizeof(char *));
	s->alen = calloc(n, sizeof(size_t));
	s->blen = calloc(n, sizeof(size_t));
	s->bytes = 0;
	for (unsigned i = 0; i < n; i++) {
		s->a[i] = make_body(i, 0, &s->alen[i]);
		s->b[i] = make_body(i, cand_variant, &s->blen[i]);
		struct as_pair *p = &s->p[i];
		as_pair_init(p, i, "GET", "/customers/12345", NULL);
		as_resp(&p->prim, 200, hdrs, s->a[i], s->alen[i]);
		as_resp(&p->cand, 200, hdrs, s->b[i], s->blen[i]);
		as_pair_link(p);
		s->bytes += s->alen[i];
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median seconds of RUNS passes of @p reps over the set through a fresh context. */
static double time_ctx(struct pairset *s, const struct noise_rules *rules, unsigned reps,
		       uint64_t *groups)
{
	double t[RUNS];
	for (int r = 0; r < RUNS; r++) {
		struct diff_params prm = {.rules = rules};
		struct diff_ctx *c = diff_ctx_create(&prm);
		int64_t t0 = cpu_ns();
		for (unsigned k = 0; k < reps; k++)
			for (unsigned i = 0; i < s->n; i++)
				diff_ctx_add(c, &s->p[i].s, &s->p[i].r, DIFF_ROLE_CANDIDATE);
		t[r] = (double)(cpu_ns() - t0) / 1e9;
		diff_ctx_finish(c);
		*groups = diff_ctx_summary(c)->groups;
		diff_ctx_free(c);
	}
	qsort(t, RUNS, sizeof(double), cmp_d);
	return t[RUNS / 2];
}

static double time_engine(struct pairset *s, unsigned reps)
{
	double t[RUNS];
	struct diff_engine e;
	diff_engine_init(&e, NULL);
	for (int r = 0; r < RUNS; r++) {
		int64_t t0 = cpu_ns();
		for (unsigned k = 0; k < reps; k++)
			for (unsigned i = 0; i < s->n; i++)
				diff_engine_compare(&e, NULL, &s->p[i].prim.m, &s->p[i].cand.m);
		t[r] = (double)(cpu_ns() - t0) / 1e9;
	}
	diff_engine_release(&e);
	qsort(t, RUNS, sizeof(double), cmp_d);
	return t[RUNS / 2];
}

static void dump(const char *dir, const char *name, struct pairset *s, int side)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	for (unsigned i = 0; f && i < s->n; i++) {
		if (side == 0)
			fwrite(s->a[i], 1, s->alen[i], f);
		else if (side == 1)
			fwrite(s->b[i], 1, s->blen[i], f);
		else
			fprintf(f, "[%s,%s]\n", s->a[i], s->b[i]);
	}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: diff_bench OUTDIR [N]\n");
		return 2;
	}
	unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 20000;
	const char *only = argc > 3 ? argv[3] : "";
	struct pairset ident, masked, differ;
	build(&ident, n, 0);
	build(&masked, n, 1);
	build(&differ, n, 2);
	dump(argv[1], "ident_a.json", &ident, 0);
	dump(argv[1], "ident_b.json", &ident, 1);
	dump(argv[1], "pairs_ident.jsonl", &ident, 2);
	dump(argv[1], "pairs_differ.jsonl", &differ, 2);
	char err[256];
	const char *mask = "mask body \"trace\":\"[0-9a-f]+\"\n";
	struct noise_rules *rules = noise_rules_parse(mask, strlen(mask), err, sizeof(err));
	uint64_t groups = 0;
	if (!strcmp(only, "differ")) {
		/* profiling aid: only the differing pairs through the context */
		for (int k = 0; k < 5; k++)
			time_ctx(&differ, NULL, 1, &groups);
		return 0;
	}
	if (!strcmp(only, "ident")) {
		time_ctx(&ident, NULL, 50, &groups);
		return 0;
	}
	printf("pairs %u\nbody_bytes_avg %.0f\n", n, (double)ident.bytes / n);
	double t = time_ctx(&ident, NULL, 50, &groups);
	printf("identical_ctx_GBps %.2f\nidentical_ctx_pairs_per_s %.0f\n",
	       (double)ident.bytes * 50 / t / 1e9, (double)n * 50 / t);
	/* the same on 1000 pairs (2 MiB, cache-resident) repeated */
	struct pairset hot = ident;
	hot.n = n < 1000 ? n : 1000;
	hot.bytes = 0;
	for (unsigned i = 0; i < hot.n; i++)
		hot.bytes += hot.alen[i];
	t = time_ctx(&hot, NULL, 500, &groups);
	printf("identical_hot_ctx_GBps %.2f\n", (double)hot.bytes * 500 / t / 1e9);
	t = time_ctx(&masked, rules, 1, &groups);
	printf(
	    "masked_equal_ctx_GBps %.3f\nmasked_equal_ctx_pairs_per_s %.0f\nmasked_groups %llu\n",
	    (double)masked.bytes / t / 1e9, (double)n / t, (unsigned long long)groups);
	t = time_ctx(&differ, NULL, 1, &groups);
	printf("differing_ctx_pairs_per_s %.0f\ndiffering_groups %llu\n", (double)n / t,
	       (unsigned long long)groups);
	t = time_engine(&differ, 1);
	printf("differing_engine_pairs_per_s %.0f\n", (double)n / t);
	noise_rules_free(rules);
	return 0;
}
