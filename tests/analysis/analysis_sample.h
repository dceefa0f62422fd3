/* SPDX-License-Identifier: MIT */
/*
 * analysis_sample - builders of in-memory sessions and results for the
 * analysis tests and benchmark: a request, a primary response and a
 * candidate response from C strings. Header-only.
 */
#ifndef DYETAP_TESTS_ANALYSIS_SAMPLE_H
#define DYETAP_TESTS_ANALYSIS_SAMPLE_H

#include <string.h>

#include "store/store.h"

#define AS_MAX_H 16

struct as_msg {
	struct store_message m;
	struct store_header h[AS_MAX_H];
};

struct as_pair {
	struct as_msg req, prim, cand;
	struct store_session s;
	struct store_result r;
};

static inline struct store_slice as_sl(const void *p, size_t n)
{
	struct store_slice s = {(const uint8_t *)p, n};
	return s;
}

static inline struct store_slice as_cs(const char *p)
{
	return as_sl(p, p ? strlen(p) : 0);
}

/* Headers as "Name: value" strings, NULL-terminated list. */
static inline void as_headers(struct as_msg *x, const char *const *hdrs)
{
	x->m.n_headers = 0;
	for (size_t i = 0; hdrs && hdrs[i] && i < AS_MAX_H; i++) {
		const char *colon = strchr(hdrs[i], ':');
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		x->h[i].name = as_sl(hdrs[i], (size_t)(colon - hdrs[i]));
		x->h[i].value = as_cs(v);
		x->m.n_headers++;
	}
	x->m.headers = x->h;
}

static inline void as_resp(struct as_msg *x, uint16_t status, const char *const *hdrs,
			   const void *body, size_t blen)
{
	memset(&x->m, 0, sizeof(x->m));
	x->m.present = true;
	x->m.status = status;
	x->m.reason = as_cs(status == 200 ? "OK" : "Other");
	x->m.version_major = 1;
	x->m.version_minor = 1;
	as_headers(x, hdrs);
	x->m.body = as_sl(body, blen);
	x->m.body_len = blen;
}

/* A whole pair; the candidate latency is @p cand_lat_ns, primary 1 ms. */
static inline void as_pair_init(struct as_pair *p, uint64_t id, const char *method,
				const char *target, const char *const *req_h)
{
	memset(p, 0, sizeof(*p));
	p->req.m.present = true;
	p->req.m.method = as_cs(method);
	p->req.m.target = as_cs(target);
	p->req.m.version_major = 1;
	p->req.m.version_minor = 1;
	as_headers(&p->req, req_h);
	p->s.id = id;
	p->s.ts_req_first_ns = 1764158400000000000LL + (int64_t)id * 1000000;
	p->s.ts_req_last_ns = p->s.ts_req_first_ns + 1000;
	p->s.ts_resp_first_ns = p->s.ts_req_first_ns + 500000;
	p->s.ts_resp_last_ns = p->s.ts_req_first_ns + 1000000;
	p->r.session_id = id;
	p->r.role = as_cs("candidate");
	p->r.target = as_cs("http://127.0.0.1:8081");
	p->r.latency_ns = 1200000;
}

static inline void as_pair_link(struct as_pair *p)
{
	p->s.req = p->req.m;
	p->s.resp = p->prim.m;
	p->r.resp = p->cand.m;
}

#endif
