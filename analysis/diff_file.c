/* SPDX-License-Identifier: MIT */
/*
 * diff_file - feed a results store file (docs/format.md, kind "results")
 * into an analysis context. Session records come before the result
 * records that refer to them, and the reader's records are borrowed until
 * the next read, so sessions are copied and kept (bounded by
 * diff_params.max_memory) until the end of the file. Reader damage (a cut
 * tail, damaged frames, skipped records, a missing index), the trailer
 * counters and the chain of custody of the header (the recording replayed,
 * its state and capture counters) go into the context's accounting.
 *
 * Several files are the shards of one recording (replay --shard K/N): each
 * file's results refer to its own sessions, so a file is analysed alone
 * and the merge is a sum; a shard missing from the merge counts as
 * unreplayed sessions (diff_ctx_finish()).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analysis/diff_private.h"
#include "common/mem.h"

struct kept {
	struct store_session s;
	uint64_t used;	   /* bit i: a result of candidate i referred to it */
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

static size_t cand_index(const struct diff_ctx *c, const struct diff_cand *v)
{
	for (size_t i = 0; i < c->n_cand; i++)
		if (c->cand[i] == v)
			return i;
	return 0;
}

static int add_origins(struct diff_ctx *c, const struct store_file_meta *m)
{
	c->origins = mem_calloc(m->n_origins ? m->n_origins : 1, sizeof(*c->origins));
	if (!c->origins)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		struct diff_origin *d = &c->origins[i];
		c->n_origins = i + 1;
		d->id = mem_strdup(o->id ? o->id : "");
		d->file = mem_strdup(o->file ? o->file : "");
		d->state = mem_strdup(o->state ? o->state : "");
		d->first_ns = o->first_ns;
		d->last_ns = o->last_ns;
		d->sessions = o->sessions;
		if (!d->id || !d->file || !d->state)
			return -ENOMEM;
	}
	return 0;
}

/* Do @p m's recordings equal those already in @p c (by id, in order)? */
static bool same_origins(const struct diff_ctx *c, const struct store_file_meta *m)
{
	if (c->n_origins != m->n_origins)
		return false;
	for (size_t i = 0; i < m->n_origins; i++)
		if (!m->origins[i].id || !*m->origins[i].id ||
		    strcmp(c->origins[i].id, m->origins[i].id))
			return false;
	return true;
}

static void describe_origins(const struct store_file_meta *m, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < m->n_origins && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s (id %s)", i ? ", " : "",
				      m->origins[i].file ? m->origins[i].file : "?",
				      m->origins[i].id && *m->origins[i].id ? m->origins[i].id
									    : "none");
	if (!m->n_origins)
		snprintf(out, len, "no recording id (an older file, or not written by replay)");
}

/*
 * The header's chain of custody: which recording this file replayed, its
 * state and capture counters, its shard; checked against the files
 * already added (one recording per report). 0, -EINVAL with @p err, -ENOMEM.
 */
static int add_custody(struct diff_ctx *c, const char *path, const struct store_file_meta *m,
		       bool as_secondary, char *err, size_t errlen)
{
	char a[512], b[512];
	bool first = c->n_inputs == 0;
	if (!first && (c->n_origins || m->n_origins) && !same_origins(c, m)) {
		describe_origins(m, b, sizeof(b));
		size_t o = 0;
		a[0] = '\0';
		for (size_t i = 0; i < c->n_origins && o < sizeof(a); i++)
			o += (size_t)snprintf(a + o, sizeof(a) - o, "%s%s (id %s)", i ? ", " : "",
					      c->origins[i].file,
					      *c->origins[i].id ? c->origins[i].id : "none");
		snprintf(err, errlen, "%s replayed %s, but %s replayed %s: %s", path, b,
			 c->inputs[0], c->n_origins ? a : "no recording id",
			 as_secondary ? "a --secondary must replay the same recording"
				      : "only shards of one recording merge into one report");
		return -EINVAL;
	}
	if (!first && !as_secondary && !m->shard_n) {
		snprintf(err, errlen,
			 "%s is not a shard (replay --shard K/N): several results files merge "
			 "into one report only as the shards of one recording",
			 path);
		return -EINVAL;
	}
	if (!as_secondary && m->shard_n) {
		for (size_t i = 0; i < c->n_shards; i++) {
			if (c->shards[i].n != m->shard_n) {
				snprintf(err, errlen,
					 "%s is shard %u/%u but %s is shard %u/%u: shards of one "
					 "merge must split the recording the same way",
					 path, m->shard_k, m->shard_n, c->shards[i].input,
					 c->shards[i].k, c->shards[i].n);
				return -EINVAL;
			}
			if (c->shards[i].k == m->shard_k) {
				snprintf(err, errlen, "%s and %s are both shard %u/%u", path,
					 c->shards[i].input, m->shard_k, m->shard_n);
				return -EINVAL;
			}
		}
		if (!first && !c->n_shards) {
			snprintf(err, errlen,
				 "%s is not a shard (replay --shard K/N): several results files "
				 "merge into one report only as the shards of one recording",
				 c->inputs[0]);
			return -EINVAL;
		}
		struct diff_shard *ns = mem_realloc(c->shards, (c->n_shards + 1) * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		c->shards = ns;
		struct diff_shard *d = &ns[c->n_shards];
		memset(d, 0, sizeof(*d));
		d->k = m->shard_k;
		d->n = m->shard_n;
		d->input = mem_strdup(path);
		if (!d->input)
			return -ENOMEM;
		c->n_shards++;
		if (m->shard_sessions) {
			d->sessions = mem_calloc(m->shard_n, sizeof(uint64_t));
			if (!d->sessions)
				return -ENOMEM;
			memcpy(d->sessions, m->shard_sessions, m->shard_n * sizeof(uint64_t));
		}
	}
	if (as_secondary)
		return 0;
	for (size_t i = 0; i < m->n_targets; i++) {
		const struct store_target *t = &m->targets[i];
		if (t->role && !strcmp(t->role, "secondary"))
			continue;
		int rc = diff_ctx_add_candidate(c, t->role, t->url);
		if (rc == -ENOMEM)
			return rc;
	}
	if (!first)
		return 0;
	int rc = add_origins(c, m);
	for (size_t i = 0; !rc && i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		char src[512];
		snprintf(src, sizeof(src), "recording %s", o->file ? o->file : "?");
		rc = diff_ctx_add_counters(c, src, o->counters, o->n_counters);
		const char *why = NULL;
		if (!rc && o->state && !strcmp(o->state, "cut"))
			why = "was cut short (a crash or a copy cut): sessions after the cut were "
			      "never replayed";
		else if (!rc && o->state && !strcmp(o->state, "damaged"))
			why = "has damaged frames: their sessions were never replayed";
		else if (!rc && o->state && !strcmp(o->state, "suspect"))
			why = "holds data after an index frame (files joined, two writers)";
		else if (!rc && o->state && !strcmp(o->state, "unfinished"))
			why = "has no trailer (its writer did not finish): its capture counters "
			      "are unknown";
		if (why) {
			char note[768];
			snprintf(note, sizeof(note), "recording %s %s", o->file ? o->file : "?",
				 why);
			rc = diff_ctx_note_incomplete(c, note);
		}
	}
	return rc;
}

int diff_ctx_add_file(struct diff_ctx *c, const char *path, bool as_secondary, char *err,
		      size_t errlen)
{
	struct store_reader *r = store_reader_open(path, err, errlen);
	if (!r)
		return -EINVAL;
	struct keeper kp = {.nb = 1024, .max = c->p.max_memory};
	kp.b = mem_calloc(kp.nb, sizeof(*kp.b));
	const struct store_file_meta *meta = store_reader_meta(r);
	int rc = kp.b ? add_custody(c, path, meta, as_secondary, err, errlen) : -ENOMEM;
	if (rc == -EINVAL)
		goto out;
	if (!rc)
		rc = diff_ctx_add_input(c, path);
	uint64_t orphans = 0, unredactable = 0;
	const struct store_record *rec;
	while (!rc && (rc = store_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec->type == STORE_REC_SESSION) {
			const struct store_session *s = &rec->u.session;
			struct store_session red;
			if (c->p.redact) {
				if (c->p.redact(c->p.redact_ctx, s, &red)) {
					unredactable++;
					continue;
				}
				s = &red;
			}
			rc = add_kept(&kp, s);
			continue;
		}
		const struct store_result *res = &rec->u.result;
		struct kept *k = find(&kp, res->session_id);
		if (!k) {
			orphans++;
			continue;
		}
		bool sec = as_secondary || is_secondary(&res->role);
		struct store_result rr = *res;
		if (c->p.redact && res->resp.present) {
			struct store_session in, out;
			memset(&in, 0, sizeof(in));
			in.resp = res->resp;
			if (c->p.redact(c->p.redact_ctx, &in, &out)) {
				unredactable++;
				continue;
			}
			rr.resp = out.resp;
		}
		if (!sec) {
			struct diff_cand *v =
			    diff_ctx_cand(c, (const char *)res->role.ptr, res->role.len,
					  (const char *)res->target.ptr, res->target.len, false);
			if (v)
				k->used |= 1ull << cand_index(c, v);
		}
		rc = diff_ctx_add(c, &k->s, &rr, sec ? DIFF_ROLE_SECONDARY : DIFF_ROLE_CANDIDATE);
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 rc == -ENOMEM ? "out of memory" : "cannot analyse this file");
		goto out;
	}
	rc = 0;
	const struct store_read_status *st = store_reader_status(r);
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
	if (!rc && st->suspect_frames) {
		snprintf(note, sizeof(note),
			 "%s: data after an index frame or a second header at byte %llu (files "
			 "joined or two writers): read, but the file is not one whole run",
			 path, (unsigned long long)st->first_suspect_offset);
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
	if (!rc && unredactable) {
		snprintf(note, sizeof(note),
			 "%s: %llu records not analysed because redaction failed (out of memory)",
			 path, (unsigned long long)unredactable);
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
	if (!rc && !as_secondary && !c->n_cand && kp.n)
		rc = diff_ctx_add_candidate(c, "candidate", NULL);
	/* Unreplayed: a replay sends every session to each of its targets, so
	 * each target's missing results count for it; a mirror sends a session
	 * to its lane only, so a session without any result counts for the
	 * candidate named like its lane (else the first). */
	uint64_t expected = 0;
	for (size_t t = 0; t < meta->n_targets; t++) {
		const char *role = meta->targets[t].role;
		for (size_t ci = 0; role && ci < c->n_cand; ci++)
			if (!strcmp(c->cand[ci]->role, role))
				expected |= 1ull << ci;
	}
	/* A mirror's file (not written by replay): a session of a lane that no
	 * candidate shadows was left out by lane selection, an exclusion. */
	bool by_lane = !expected && !(meta->source && !strncmp(meta->source, "replay:", 7));
	uint64_t other_lanes = 0;
	for (size_t i = 0; !rc && !as_secondary && i < kp.nb; i++)
		for (struct kept *k = kp.b[i]; k && !rc; k = k->next) {
			if (expected) {
				for (size_t ci = 0; ci < c->n_cand && !rc; ci++)
					if ((expected & (1ull << ci)) && !(k->used & (1ull << ci)))
						rc = diff_ctx_add_unreplayed_to(c, ci, &k->s);
				continue;
			}
			if (k->used || !c->n_cand)
				continue;
			size_t ci = SIZE_MAX;
			for (size_t j = 0; j < c->n_cand; j++)
				if (strlen(c->cand[j]->role) == k->s.lane.len &&
				    !memcmp(c->cand[j]->role, k->s.lane.ptr, k->s.lane.len))
					ci = j;
			if (ci == SIZE_MAX && by_lane)
				other_lanes++;
			else
				rc = diff_ctx_add_unreplayed_to(c, ci == SIZE_MAX ? 0 : ci, &k->s);
		}
	if (!rc && other_lanes) {
		struct store_counter lc = {"skipped_lane", other_lanes};
		rc = diff_ctx_add_counters(c, path, &lc, 1);
	}
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
