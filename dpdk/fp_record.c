/* SPDX-License-Identifier: MIT */
/*
 * fp_record.c - the fast path's recordings, through the recorder that
 * `dyetap record` and `dyetap mirror` use (capture/recorder.h): each
 * worker's capture pipeline (and its -w FILE.dyt), and the sender's
 * --shadow-out file. So their files carry the same metadata as
 * `dyetap record`'s - source (`dpdk:rx=PORTS`), color rules, redactions,
 * host, start time - and a trailer of counters: the pipeline's (for
 * --shadow-out, the workers' summed), the fast path's totals (`fp_`) and
 * the shadow counters (`fp_shadow_`). The workers' pipeline counters are
 * plain fields of their threads: each worker publishes a copy (struct
 * fp_cap) that any thread may sum, for the reports, telemetry and metrics.
 *
 * References: capture/recorder.h, docs/format.md (metadata, trailer),
 * docs/dpdk.md "Workers and recording".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "capture/recorder.h"
#include "common/counters.h"
#include "dpdk/fp_private.h"

/* "dpdk:rx=0,1": what the metadata calls the source. */
static void source_of(char *buf, size_t len)
{
	const struct fp_conf *c = &fp_app.c;
	size_t n = (size_t)snprintf(buf, len, "dpdk:rx=");
	for (unsigned i = 0; i < c->nrx_ports && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%u", i ? "," : "", c->rx_ports[i]);
}

/* A session the worker's pipeline kept (and wrote): --shadow-out pairs it. */
static int worker_session(void *ctx, const struct store_session *s)
{
	fp_shadow_on_session(ctx, s);
	return 0;
}

static int open_one(struct recorder_params *rp, struct recorder **out, char *err, size_t errlen)
{
	const struct fp_conf *c = &fp_app.c;
	char source[256];
	int rc;

	source_of(source, sizeof(source));
	rp->rules = c->rules.all;
	rp->conf = &c->rec;
	rp->source = source;
	rc = recorder_open(rp, out, err, errlen);
	if (!rc)
		rc = recorder_create_file(*out, err, errlen);
	return rc;
}

int fp_record_open_worker(struct fp_worker *wk, bool file, char *err, size_t errlen)
{
	struct recorder_params rp = {
	    .drop_uncolored = fp_app.c.drop_uncolored,
	    .path = file ? wk->path : NULL,
	    .kind = "recording",
	    .on_session = fp_app.sh.out_path ? worker_session : NULL,
	    .on_request = fp_app.sh.nlanes ? fp_shadow_on_request : NULL,
	    .ctx = wk,
	};
	return open_one(&rp, &wk->rec, err, errlen);
}

int fp_record_open_shadow_out(char *err, size_t errlen)
{
	struct recorder_params rp = {
	    .redact_results = true,
	    .path = fp_app.sh.out_path,
	    .kind = "results",
	    .no_pipeline = true,
	};
	return open_one(&rp, &fp_app.sh.out, err, errlen);
}

void fp_record_publish(struct fp_worker *w)
{
	struct fp_cap *c = &w->cap;
	uint32_t old = c->n;
	size_t n;

	if (!w->rec)
		return;
	n = RTE_MIN(pipe_counters(recorder_pipe(w->rec), c->tmp, FP_CAP_MAX), (size_t)FP_CAP_MAX);
	for (size_t i = 0; i < n; i++) {
		if (i >= old)
			snprintf(c->name[i], FP_CAP_NAME, "%s", c->tmp[i].name);
		__atomic_store_n(&c->v[i], c->tmp[i].value, __ATOMIC_RELAXED);
	}
	if (n > old)
		__atomic_store_n(&c->n, (uint32_t)n, __ATOMIC_RELEASE);
}

int fp_record_capture_counters(struct ctr_set *set)
{
	/* Workers list the same counters in the same order, but for lanes
	 * one of them has not seen yet (a reload): summed by name. */
	const char *name[FP_CAP_MAX];
	uint64_t sum[FP_CAP_MAX];
	size_t n = 0;
	int rc = 0;

	for (unsigned k = 0; k < fp_app.nwk; k++) {
		const struct fp_cap *c = &fp_app.wk[k]->cap;
		uint32_t m = __atomic_load_n(&c->n, __ATOMIC_ACQUIRE);
		for (uint32_t i = 0; i < m; i++) {
			uint64_t v = __atomic_load_n(&c->v[i], __ATOMIC_RELAXED);
			size_t j = i;
			if (j >= n || strcmp(name[j], c->name[i]))
				for (j = 0; j < n && strcmp(name[j], c->name[i]); j++)
					;
			if (j == n) {
				if (n == FP_CAP_MAX) {
					rc = -ENOSPC;
					continue;
				}
				name[n] = c->name[i];
				sum[n++] = 0;
			}
			sum[j] += v;
		}
	}
	for (size_t j = 0; j < n; j++) {
		int e = ctr_set_put(set, sum[j], "%s", name[j]);
		if (e && !rc)
			rc = e;
	}
	return rc;
}

static void put_shadow(void *ctx, const char *lane, const char *name, uint64_t v)
{
	if (lane)
		ctr_set_put(ctx, v, "fp_shadow_%s_%s", lane, name);
	else
		ctr_set_put(ctx, v, "fp_shadow_%s", name);
}

int fp_record_close(struct recorder *r, char *msg, size_t msglen)
{
	struct ctr_set *set;
	struct fp_stats t;
	uint64_t lost;
	int rc;

	if (!r || !recorder_has_file(r))
		return 0;
	set = ctr_set_create(0);
	if (!set) {
		snprintf(msg, msglen, "out of memory for the trailer");
		recorder_close(r, NULL, msg, msglen);
		return -EIO;
	}
	fp_stats_sum(&t);
	/* --shadow-out has no pipeline: its sessions are the workers', so are their losses. */
	rc = recorder_pipe(r) ? recorder_counters(r, NULL, set) : fp_record_capture_counters(set);
	rc |= ctr_set_table(set, "fp_", &t, fp_ctr_descs, fp_ctr_count);
	fp_shadow_report(put_shadow, set);
	rc |= recorder_result_counters(r, "fp_shadow_", set);
	lost = recorder_lost(r);
	if (lost)
		snprintf(msg, msglen, "%" PRIu64 " records could not be written (%s)", lost,
			 *recorder_error(r) ? recorder_error(r) : "see redact_errors");
	else if (rc || ctr_set_lost(set))
		snprintf(msg, msglen, "some counters are missing from the trailer (out of memory)");
	rc = recorder_close(r, set, msg, msglen) ? -EIO : lost || rc || ctr_set_lost(set) ? 1 : 0;
	ctr_set_free(set);
	return rc;
}
