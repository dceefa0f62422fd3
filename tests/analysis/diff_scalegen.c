/* SPDX-License-Identifier: MIT */
/*
 * diff_scalegen - writes a results file of N pairs for the memory-bound
 * test of `dyetap diff` (test_diff_scale.py) and the diff scale benchmark
 * (bench/diff_scale.sh):
 *
 *   diff_scalegen OUT.dyt N [--mode plain|hostile] [--lag L] [--no-lag]
 *                 [--body BYTES] [--differ EVERY] [--bodies FILE] [--flush BYTES]
 *                 [--unreplayed EVERY]
 *
 * Each session is GET /api/v1/items/<id> with a JSON response of about
 * BODY bytes (default 1024); its candidate result follows it as replay
 * writes them (header result_lag 0). Every EVERY-th pair (default 4)
 * differs:
 *   plain    $.price value_changed: one difference group in all;
 *   hostile  a key named after the session is missing and another is
 *            extra, and the endpoint's first segment is unique per pair:
 *            every differing pair is a new group and a new endpoint, as a
 *            file made to exhaust the differ's memory would be.
 * Latencies vary over three decades so histograms fill many buckets.
 * --lag L writes results L sessions after their session and says so in
 * the header; --no-lag does the same without saying it (a file of an
 * older writer), so the reader has to rely on its window. --bodies FILE
 * also writes the primary bodies, concatenated, for the benchmark's `cmp`
 * anchor (the bytes dyetap compares). --flush BYTES makes data frames of
 * about that many record bytes (the writer's flush size; default 1 MiB):
 * small frames give many frames and many pairs split across two frames.
 * --unreplayed EVERY leaves out the result of every EVERY-th session (a
 * replay that sent it nothing back: the differ counts it unreplayed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tests/analysis/analysis_sample.h"

struct slot {
	struct as_pair p;
	char target[96];
	char pb[8192], cb[8192];
};

static size_t body(char *out, size_t cap, uint64_t id, size_t len, int what, bool hostile)
{
	/* what: 0 primary, 1 candidate equal, 2 candidate differing */
	int n = snprintf(out, cap, "{\"id\":%llu,\"name\":\"item %llu\",\"price\":%s,",
			 (unsigned long long)id, (unsigned long long)id,
			 what == 2 && !hostile ? "10.5" : "9.5");
	if (hostile && what == 2)
		n += snprintf(out + n, cap - (size_t)n, "\"extra_%llu\":true,",
			      (unsigned long long)id);
	else if (hostile)
		n += snprintf(out + n, cap - (size_t)n, "\"only_%llu\":true,",
			      (unsigned long long)id);
	n += snprintf(out + n, cap - (size_t)n, "\"pad\":\"");
	while ((size_t)n + 3 < len && (size_t)n + 3 < cap) {
		out[n] = (char)('a' + (id + (uint64_t)n) % 26);
		n++;
	}
	n += snprintf(out + n, cap - (size_t)n, "\"}");
	return (size_t)n;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: diff_scalegen OUT.dyt N [--mode plain|hostile] [--lag L] "
				"[--no-lag] [--body BYTES] [--differ EVERY] [--bodies FILE] "
				"[--unreplayed EVERY] "
				"[--flush BYTES]\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t n = strtoull(argv[2], NULL, 10);
	bool hostile = false, say_lag = true;
	uint64_t lag = 0, every = 4, unrep = 0;
	size_t blen = 1024, flush = 0;
	const char *bodies = NULL;
	for (int i = 3; i + 1 < argc + 1; i++) {
		if (!strcmp(argv[i], "--no-lag")) {
			say_lag = false;
		} else if (i + 1 < argc && !strcmp(argv[i], "--mode")) {
			hostile = !strcmp(argv[++i], "hostile");
		} else if (i + 1 < argc && !strcmp(argv[i], "--lag")) {
			lag = strtoull(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(argv[i], "--body")) {
			blen = strtoull(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(argv[i], "--differ")) {
			every = strtoull(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(argv[i], "--unreplayed")) {
			unrep = strtoull(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(argv[i], "--flush")) {
			flush = strtoull(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(argv[i], "--bodies")) {
			bodies = argv[++i];
		} else {
			fprintf(stderr, "diff_scalegen: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (blen < 64 || blen > 8000 || !n || !every || lag > 100000) {
		fprintf(stderr, "diff_scalegen: N >= 1, --body 64..8000, --lag <= 100000\n");
		return 2;
	}
	static const struct store_target tg[] = {{"candidate", "http://127.0.0.1:8081"}};
	struct store_meta meta = {.kind = "results",
				  .source = "replay:scale.dyt",
				  .targets = tg,
				  .n_targets = 1,
				  .has_result_lag = say_lag,
				  .result_lag = lag};
	char err[256];
	struct store_writer_params wp = {.path = path, .meta = &meta, .flush_bytes = flush};
	struct store_writer *w = store_writer_create(&wp, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "diff_scalegen: %s\n", err);
		return 1;
	}
	static const char *const req_h[] = {"Host: api.example.com", "Accept: application/json",
					    NULL};
	static const char *const resp_h[] = {"Content-Type: application/json", NULL};
	struct slot *ring = calloc(lag + 1, sizeof(*ring));
	FILE *bf = bodies ? fopen(bodies, "wb") : NULL;
	if (!ring || (bodies && !bf)) {
		fprintf(stderr, "diff_scalegen: cannot start (out of memory or %s)\n",
			bodies ? bodies : "-");
		return 1;
	}
	int bad = 0;
	for (uint64_t id = 1; id <= n + lag && !bad; id++) {
		if (id <= n) {
			struct slot *x = &ring[id % (lag + 1)];
			bool differ = id % every == 0;
			if (hostile && differ)
				snprintf(x->target, sizeof(x->target), "/s%llu/items/%llu",
					 (unsigned long long)id, (unsigned long long)id);
			else
				snprintf(x->target, sizeof(x->target), "/api/v1/items/%llu",
					 (unsigned long long)id);
			as_pair_init(&x->p, id, "GET", x->target, req_h);
			size_t lp = body(x->pb, sizeof(x->pb), id, blen, 0, hostile);
			size_t lc = body(x->cb, sizeof(x->cb), id, blen, differ ? 2 : 1, hostile);
			as_resp(&x->p.prim, 200, resp_h, x->pb, lp);
			if (bf && fwrite(x->pb, 1, lp, bf) != lp)
				bad = 1;
			as_resp(&x->p.cand, 200, resp_h, x->cb, lc);
			as_pair_link(&x->p);
			/* 0.1 ms .. 100 ms, spread over the decades */
			x->p.r.latency_ns = 100000ULL << (id % 10);
			x->p.s.ts_resp_last_ns =
			    x->p.s.ts_req_first_ns + (int64_t)(90000ULL << (id * 7 % 10));
			bad |= store_writer_add_session(w, &x->p.s) != 0;
		}
		if (id > lag && !(unrep && (id - lag) % unrep == 0))
			bad |= store_writer_add_result(w, &ring[(id - lag) % (lag + 1)].p.r) != 0;
	}
	if (bad)
		fprintf(stderr, "diff_scalegen: cannot write a record\n");
	if (store_writer_close(w, NULL, 0, err, sizeof(err))) {
		fprintf(stderr, "diff_scalegen: %s\n", err);
		bad = 1;
	}
	if (bf && fclose(bf))
		bad = 1;
	free(ring);
	return bad;
}
