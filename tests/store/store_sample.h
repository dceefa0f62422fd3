/* SPDX-License-Identifier: MIT */
/*
 * store_sample - deterministic session and result records for the store
 * tests, the crash-writer helper and the corpus generator, plus a deep
 * comparison of records. Header-only: each test program includes it once.
 */
#ifndef DYETAP_TESTS_STORE_SAMPLE_H
#define DYETAP_TESTS_STORE_SAMPLE_H

#include <stdio.h>
#include <string.h>

#include "store/store.h"

#define SAMPLE_T0 1764158400000000000LL /* 2025-11-26T12:00:00Z */

struct sample {
	struct store_session s;
	struct store_result r;
	struct store_header req_h[8], resp_h[8];
	char strs[16][96];
	uint8_t body[600];
	uint8_t resp_body[600];
};

static inline struct store_slice sample_sl(const void *p, size_t n)
{
	struct store_slice s = {(const uint8_t *)p, n};
	return s;
}

static inline struct store_slice sample_cs(const char *p)
{
	return sample_sl(p, strlen(p));
}

/* Session @p i: varied lanes, address families, bodies, flags; timestamps increase. */
static inline void sample_fill(struct sample *x, uint64_t i)
{
	memset(x, 0, sizeof(*x));
	struct store_session *s = &x->s;
	s->id = i;
	s->ip_version = i % 3 == 2 ? 6 : 4;
	if (s->ip_version == 4) {
		uint8_t a[4] = {10, 0, (uint8_t)(i >> 8), (uint8_t)i}, b[4] = {10, 1, 0, 2};
		memcpy(s->src.addr, a, 4);
		memcpy(s->dst.addr, b, 4);
	} else {
		s->src.addr[0] = 0x20, s->src.addr[1] = 0x01, s->src.addr[15] = (uint8_t)i;
		s->dst.addr[15] = 1;
	}
	s->src.port = (uint16_t)(40000 + i % 1000);
	s->dst.port = 8080;
	s->vlan = i % 4 == 1 ? 100 : 0;
	static const char *const lanes[] = {"blue", "", "green", "blue"};
	s->lane = sample_cs(lanes[i % 4]);
	s->conn_id = i / 3;
	s->conn_index = (uint32_t)(i % 3);
	s->ts_req_first_ns = SAMPLE_T0 + (int64_t)i * 1000000;
	s->ts_req_last_ns = s->ts_req_first_ns + 1000;
	static const char *const methods[] = {"GET", "POST", "GET", "PUT", "DELETE"};
	s->req.present = true;
	s->req.method = sample_cs(methods[i % 5]);
	snprintf(x->strs[0], sizeof(x->strs[0]), "/api/v1/users/%llu?lane=%s&q=%llu",
		 (unsigned long long)(i * 7), lanes[i % 4], (unsigned long long)i);
	s->req.target = sample_cs(x->strs[0]);
	s->req.version_major = 1;
	s->req.version_minor = i % 6 == 5 ? 0 : 1;
	x->req_h[0] = (struct store_header){sample_cs("Host"), sample_cs("api.example.com")};
	x->req_h[1] = (struct store_header){sample_cs("User-Agent"), sample_cs("curl/7.88.1")};
	snprintf(x->strs[1], sizeof(x->strs[1]), "req-%08llx", (unsigned long long)i * 2654435761u);
	x->req_h[2] = (struct store_header){sample_cs("X-Request-Id"), sample_cs(x->strs[1])};
	x->req_h[3] = (struct store_header){sample_cs("x-lane"), s->lane};
	s->req.headers = x->req_h;
	s->req.n_headers = 4;
	if (i % 5 == 1) {
		int n = snprintf((char *)x->body, sizeof(x->body),
				 "{\"name\":\"user %llu\",\"age\":%llu}", (unsigned long long)i,
				 (unsigned long long)(i % 90));
		s->req.body = sample_sl(x->body, (size_t)n);
		s->req.body_len = (uint64_t)n;
		x->req_h[4] =
		    (struct store_header){sample_cs("Content-Type"), sample_cs("application/json")};
		s->req.n_headers = 5;
	}
	if (i % 5 == 4) {
		s->flags = STORE_F_NO_RESPONSE | (i % 2 ? STORE_F_GAP : 0);
		return;
	}
	s->ts_resp_first_ns = s->ts_req_last_ns + 250000;
	s->ts_resp_last_ns = s->ts_resp_first_ns + 5000;
	s->resp.present = true;
	s->resp.status = i % 11 == 3 ? 404 : 200;
	s->resp.reason = sample_cs(s->resp.status == 200 ? "OK" : "Not Found");
	s->resp.version_major = 1;
	s->resp.version_minor = 1;
	x->resp_h[0] =
	    (struct store_header){sample_cs("Content-Type"), sample_cs("application/json")};
	x->resp_h[1] = (struct store_header){sample_cs("Set-Cookie"), sample_cs("a=1")};
	x->resp_h[2] = (struct store_header){sample_cs("Set-Cookie"), sample_cs("b=2")};
	s->resp.headers = x->resp_h;
	s->resp.n_headers = 3;
	if (i % 7 == 6) {
		for (size_t k = 0; k < 300; k++)
			x->resp_body[k] = (uint8_t)(k * 31 + i);
		s->resp.body = sample_sl(x->resp_body, 300);
		s->resp.body_len = 300;
	} else {
		int n = snprintf(
		    (char *)x->resp_body, sizeof(x->resp_body),
		    "{\"id\":%llu,\"name\":\"user %llu\",\"lane\":\"%s\",\"items\":[1,2,3]}",
		    (unsigned long long)i, (unsigned long long)i, lanes[i % 4]);
		s->resp.body = sample_sl(x->resp_body, (size_t)n);
		s->resp.body_len = (uint64_t)n;
	}
	if (i % 13 == 12) {
		s->resp.truncated = true;
		s->resp.body_len += 1000;
		s->flags |= STORE_F_INCOMPLETE;
	}
}

/* Result for session @p i. */
static inline void sample_fill_result(struct sample *x, uint64_t i)
{
	sample_fill(x, i);
	struct store_result *r = &x->r;
	memset(r, 0, sizeof(*r));
	r->session_id = i;
	r->target = sample_cs("http://127.0.0.1:8080");
	r->role = sample_cs(i % 2 ? "candidate" : "secondary");
	r->ts_sent_ns = x->s.ts_req_first_ns + 3600LL * 1000000000;
	r->latency_ns = 100000 + i * 17;
	r->lateness_ns = (int64_t)(i % 5) - 2;
	if (i % 9 == 8) {
		r->error = STORE_ERR_TIMEOUT;
		r->error_msg = sample_cs("no response within 5000 ms");
	} else {
		r->resp = x->s.resp;
		r->resp.present = true;
		if (!x->s.resp.present) {
			r->resp.status = 500;
			r->resp.reason = sample_cs("Internal Server Error");
			r->resp.version_major = 1;
			r->resp.version_minor = 1;
		}
	}
}

static inline int sample_slice_eq(struct store_slice a, struct store_slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Name of the first differing field of two messages, or NULL when equal. */
static inline const char *sample_msg_diff(const struct store_message *a,
					  const struct store_message *b)
{
	if (a->present != b->present)
		return "present";
	if (!a->present)
		return NULL;
	if (!sample_slice_eq(a->method, b->method))
		return "method";
	if (!sample_slice_eq(a->target, b->target))
		return "target";
	if (a->status != b->status)
		return "status";
	if (!sample_slice_eq(a->reason, b->reason))
		return "reason";
	if (a->version_major != b->version_major || a->version_minor != b->version_minor)
		return "version";
	if (a->n_headers != b->n_headers)
		return "n_headers";
	for (size_t i = 0; i < a->n_headers; i++)
		if (!sample_slice_eq(a->headers[i].name, b->headers[i].name) ||
		    !sample_slice_eq(a->headers[i].value, b->headers[i].value))
			return "header";
	if (!sample_slice_eq(a->body, b->body))
		return "body";
	if (a->body_len != b->body_len)
		return "body_len";
	if (a->truncated != b->truncated)
		return "truncated";
	return NULL;
}

/* Name of the first differing field of two sessions, or NULL when equal. */
static inline const char *sample_session_diff(const struct store_session *a,
					      const struct store_session *b)
{
	size_t alen = a->ip_version == 6 ? 16 : 4;
	if (a->id != b->id)
		return "id";
	if (a->ip_version != b->ip_version)
		return "ip_version";
	if (memcmp(a->src.addr, b->src.addr, alen) || a->src.port != b->src.port)
		return "src";
	if (memcmp(a->dst.addr, b->dst.addr, alen) || a->dst.port != b->dst.port)
		return "dst";
	if (a->vlan != b->vlan)
		return "vlan";
	if (!sample_slice_eq(a->lane, b->lane))
		return "lane";
	if (a->conn_id != b->conn_id || a->conn_index != b->conn_index)
		return "conn";
	if (a->ts_req_first_ns != b->ts_req_first_ns || a->ts_req_last_ns != b->ts_req_last_ns ||
	    a->ts_resp_first_ns != b->ts_resp_first_ns || a->ts_resp_last_ns != b->ts_resp_last_ns)
		return "timestamps";
	if (a->flags != b->flags)
		return "flags";
	const char *d = sample_msg_diff(&a->req, &b->req);
	if (d)
		return d;
	return sample_msg_diff(&a->resp, &b->resp);
}

static inline const char *sample_result_diff(const struct store_result *a,
					     const struct store_result *b)
{
	if (a->session_id != b->session_id)
		return "session_id";
	if (!sample_slice_eq(a->target, b->target))
		return "target";
	if (!sample_slice_eq(a->role, b->role))
		return "role";
	if (a->ts_sent_ns != b->ts_sent_ns || a->latency_ns != b->latency_ns ||
	    a->lateness_ns != b->lateness_ns)
		return "times";
	if (a->error != b->error)
		return "error";
	if (!sample_slice_eq(a->error_msg, b->error_msg))
		return "error_msg";
	return sample_msg_diff(&a->resp, &b->resp);
}

#endif
