/* SPDX-License-Identifier: MIT */
/*
 * diff_file - feed a results store file (docs/format.md, kind "results")
 * into an analysis context. Session records come before the result
 * records that refer to them, and the reader's records are borrowed until
 * the next read, so sessions are copied and kept (bounded by
 * diff_params.max_memory) until the end of the file. Reader damage (a cut
 * tail, damaged frames, skipped records, a missing index) and the trailer
 * counters go into the context's accounting.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

struct kept {
	struct store_session s;
	uint32_t used;	   /* results that referred to it */
	struct kept *next; /* hash chain */
};

struct keeper {
	struct kept **b;
	size_t nb, n;
	size_t bytes, max;
	uint64_t dropped;
};

static size_t msg_size(const struct store_message *m)
{
	size_t n = m->method.len + m->target.len + m->reason.len + m->body.len;
	n += m->n_headers * sizeof(struct store_header);
	for (size_t i = 0; i < m->n_headers; i++)
		n += m->headers[i].name.len + m->headers[i].value.len;
	n += m->n_trailers * sizeof(struct store_header);
	for (size_t i = 0; i < m->n_trailers; i++)
		n += m->trailers[i].name.len + m->trailers[i].value.len;
	return n;
}

static void put(uint8_t **p, struct store_slice *dst, const struct store_slice *src)
{
	dst->ptr = *p;
	dst->len = src->len;
	if (src->len)
		memcpy(*p, src->ptr, src->len);
	*p += src->len;
}

static void copy_msg(uint8_t **p, struct store_message *d, const struct store_message *m)
{
	*d = *m;
	struct store_header *h = (struct store_header *)(void *)*p;
	struct store_header *t = h + m->n_headers; /* trailers right after the headers */
	*p += (m->n_headers + m->n_trailers) * sizeof(*h);
	for (size_t i = 0; i < m->n_headers; i++) {
		put(p, &h[i].name, &m->headers[i].name);
		put(p, &h[i].value, &m->headers[i].value);
	}
	for (size_t i = 0; i < m->n_trailers; i++) {
		put(p, &t[i].name, &m->trailers[i].name);
		put(p, &t[i].value, &m->trailers[i].value);
	}
	d->headers = h;
	d->trailers = m->n_trailers ? t : NULL;
	put(p, &d->method, &m->method);
	put(p, &d->target, &m->target);
	put(p, &d->reason, &m->reason);
	put(p, &d->body, &m->body);
}

/* One allocation: the struct, then headers (aligned) and bytes. */
static struct kept *keep(const struct store_session *s, size_t *size)
{
	size_t n = sizeof(struct kept) + msg_size(&s->req) + msg_size(&s->resp) + s->lane.len +
		   2 * _Alignof(struct store_header);
	struct kept *k = mem_alloc(n);
	if (!k)
		return NULL;
	memset(k, 0, sizeof(*k));
	uint8_t *p = (uint8_t *)(k + 1);
	k->s = *s;
	copy_msg(&p, &k->s.req, &s->req);
	/* headers of the response need alignment again after request bytes */
	size_t mis = (uintptr_t)p % _Alignof(struct store_header);
	if (mis)
		p += _Alignof(struct store_header) - mis;
	copy_msg(&p, &k->s.resp, &s->resp);
	put(&p, &k->s.lane, &s->lane);
	*size = n;
	return k;
}

static struct kept *find(struct keeper *kp, uint64_t id)
{
	for (struct kept *k = kp->b[id & (kp->nb - 1)]; k; k = k->next)
		if (k->s.id == id)
			return k;
	return NULL;
}

static int add_kept(struct keeper *kp, const struct store_session *s)
{
	size_t size;
	if (kp->bytes >= kp->max) {
		kp->dropped++;
		return 0;
	}
	if (kp->n >= kp->nb) {
		size_t nnb = kp->nb * 2;
		struct kept **nb = mem_calloc(nnb, sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		for (size_t i = 0; i < kp->nb; i++)
			for (struct kept *k = kp->b[i], *nx; k; k = nx) {
				nx = k->next;
				k->next = nb[k->s.id & (nnb - 1)];
				nb[k->s.id & (nnb - 1)] = k;
			}
		mem_free(kp->b);
		kp->b = nb;
		kp->nb = nnb;
	}
	struct kept *k = keep(s, &size);
	if (!k)
		return -ENOMEM;
	k->next = kp->b[s->id & (kp->nb - 1)];
	kp->b[s->id & (kp->nb - 1)] = k;
	kp->n++;
	kp->bytes += size;
	return 0;
}

static bool is_secondary(const struct store_slice *role)
{
	return role->len == 9 && !memcmp(role->ptr, "secondary", 9);
}

int diff_ctx_add_file(struct diff_ctx *c, const char *path, bool as_secondary, char *err,
		      size_t errlen)
{
	struct store_reader *r = store_reader_open(path, err, errlen);
	if (!r)
		return -EINVAL;
	struct keeper kp = {.nb = 1024, .max = c->p.max_memory};
	kp.b = mem_calloc(kp.nb, sizeof(*kp.b));
	int rc = kp.b ? diff_ctx_add_input(c, path) : -ENOMEM;
	uint64_t orphans = 0;
	const struct store_record *rec;
	while (!rc && (rc = store_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec->type == STORE_REC_SESSION) {
			rc = add_kept(&kp, &rec->u.session);
			continue;
		}
		const struct store_result *res = &rec->u.result;
		struct kept *k = find(&kp, res->session_id);
		if (!k) {
			orphans++;
			continue;
		}
		k->used++;
		bool sec = as_secondary || is_secondary(&res->role);
		rc = diff_ctx_add(c, &k->s, res, sec ? DIFF_ROLE_SECONDARY : DIFF_ROLE_CANDIDATE);
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 rc == -ENOMEM ? "out of memory" : "cannot analyse this file");
		goto out;
	}
	rc = 0;
	const struct store_read_status *st = store_reader_status(r);
	const struct store_file_meta *meta = store_reader_meta(r);
	char note[512];
	if (meta && meta->kind && strcmp(meta->kind, "results") && !as_secondary)
		DIFF_LOG(LOG_WARN, "%s: kind is '%s', not 'results'", path, meta->kind);
	if (st->cut) {
		snprintf(note, sizeof(note),
			 "%s: file is cut short at byte %llu of %llu (records after it are lost)",
			 path, (unsigned long long)st->cut_offset,
			 (unsigned long long)st->file_bytes);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && st->damaged_frames) {
		snprintf(note, sizeof(note), "%s: %llu damaged frames (first at byte %llu)", path,
			 (unsigned long long)st->damaged_frames,
			 (unsigned long long)st->first_damage_offset);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && st->skipped_records) {
		snprintf(note, sizeof(note), "%s: %llu records skipped as undecodable", path,
			 (unsigned long long)st->skipped_records);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && !st->has_index && !st->cut) {
		snprintf(note, sizeof(note),
			 "%s: no trailer (the writer did not finish; counters unknown)", path);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && orphans) {
		snprintf(note, sizeof(note), "%s: %llu results refer to sessions not in the file",
			 path, (unsigned long long)orphans);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc && kp.dropped) {
		snprintf(note, sizeof(note),
			 "%s: %llu sessions not kept (memory cap of %zu bytes); their results "
			 "were not compared",
			 path, (unsigned long long)kp.dropped, kp.max);
		rc = diff_ctx_note_incomplete(c, note);
	}
	if (!rc)
		rc = diff_ctx_add_counters(c, path, st->counters, st->n_counters);
	for (size_t i = 0; !rc && !as_secondary && i < kp.nb; i++)
		for (struct kept *k = kp.b[i]; k && !rc; k = k->next)
			if (!k->used)
				rc = diff_ctx_add_unreplayed(c, &k->s);
	if (rc)
		snprintf(err, errlen, "out of memory");
out:
	for (size_t i = 0; kp.b && i < kp.nb; i++)
		for (struct kept *k = kp.b[i], *nx; k; k = nx) {
			nx = k->next;
			mem_free(k);
		}
	mem_free(kp.b);
	store_reader_free(r);
	return rc;
}
