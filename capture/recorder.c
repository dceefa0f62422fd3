/* SPDX-License-Identifier: MIT */
/*
 * recorder - rules, redaction, pipeline, store writer with its metadata
 * and the trailer's counters for one capture run (capture/recorder.h).
 *
 * The order of the work matters for secrets: the pipeline colors a
 * session on the original values, then redacts it, and only then does
 * the sink (this file's rec_sink: the writer, then the caller's hook) see
 * it (docs/capture.md "Redaction"). Shadow responses are redacted by a
 * second rule set so that their counters stay apart from the sessions'.
 * References: docs/format.md (metadata, trailer), capture/pipeline.h.
 */
#include "capture/recorder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/redact.h"
#include "capture/rules.h"
#include "common/clock.h"
#include "common/mem.h"

struct recorder {
	struct rules *own_rules; /* compiled here; NULL when borrowed */
	const struct rules *rules;
	struct redact *redact;	   /* sessions (in the pipeline); NULL: none */
	struct redact *redact_res; /* shadow responses; NULL: none */
	struct store_writer *w;
	struct pipe *pipe;
	pipe_sink_fn on_session;
	void (*on_request)(void *ctx, const struct store_session *s);
	void *ctx;
	uint64_t write_errors;
	uint64_t closed_lost;	  /* store_writer_lost() at the close */
	bool closed;		  /* recorder_close() ran on a file */
	char error[256];	  /* the writer's first error, kept past close */
	struct recorder_params p; /* for recorder_create_file(); strings borrowed */
};

static void keep_error(struct recorder *r)
{
	if (!r->error[0] && r->w && *store_writer_error(r->w))
		snprintf(r->error, sizeof(r->error), "%s", store_writer_error(r->w));
}

static int rec_sink(void *ctx, const struct store_session *s)
{
	struct recorder *r = ctx;
	int rc = 0;
	if (r->w && (rc = store_writer_add_session(r->w, s)) < 0)
		keep_error(r);
	if (r->on_session) {
		int hrc = r->on_session(r->ctx, s);
		if (!rc)
			rc = hrc;
	}
	return rc;
}

/* pipe_params.on_request shares the sink's context (this recorder): pass the caller's on. */
static void rec_on_request(void *ctx, const struct store_session *s)
{
	struct recorder *r = ctx;
	r->on_request(r->ctx, s);
}

static int compile_rules(struct recorder *r, const struct recorder_params *p, char *err,
			 size_t errlen)
{
	char e[512] = "";
	const struct recorder_conf *c = p->conf;
	if (p->rules) {
		r->rules = p->rules;
		return 0;
	}
	r->own_rules = rules_create();
	if (!r->own_rules)
		return -ENOMEM;
	r->rules = r->own_rules;
	for (size_t i = 0; c && i < c->n_colors; i++) {
		int rc = rules_add(r->own_rules, c->colors[i], e, sizeof(e));
		if (rc) {
			snprintf(err, errlen, "--color '%s': %s", c->colors[i], e);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
	}
	if (c && c->rules_file) {
		int rc = rules_load_file(r->own_rules, c->rules_file, e, sizeof(e));
		if (rc) {
			snprintf(err, errlen, "--rules: %s", e);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
	}
	return 0;
}

/* One rule set from the --redact texts (first rule wins for one value), then the defaults. */
static int compile_redact(struct redact **out, const struct recorder_conf *p, char *err,
			  size_t errlen)
{
	char e[512] = "";
	struct redact *rd = redact_create();
	if (!rd)
		return -ENOMEM;
	*out = rd;
	for (size_t i = 0; i < p->n_redacts; i++) {
		int rc = redact_add(rd, p->redacts[i], e, sizeof(e));
		if (rc) {
			snprintf(err, errlen, "--redact %s", e);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
	}
	if (p->redact_defaults && redact_add_defaults(rd) < 0)
		return -ENOMEM;
	return 0;
}

int recorder_create_file(struct recorder *r, char *err, size_t errlen)
{
	const struct recorder_params *p = &r->p;
	size_t n_rules = 0, n_redact = 0;
	const char **rule_texts = rules_text_array(r->rules, &n_rules);
	const char **redact_texts = redact_text_array(r->redact, &n_redact);
	char host[256] = "";
	int rc = -ENOMEM;

	if (!p->path || r->w)
		goto out_ok;
	if (!rule_texts || !redact_texts)
		goto out;
	gethostname(host, sizeof(host) - 1);
	struct store_meta meta = {
	    .kind = p->kind ? p->kind : "recording",
	    .source = p->source,
	    .filter = p->filter,
	    .rules = rule_texts,
	    .n_rules = n_rules,
	    .host = host,
	    .start_ns = clk_real_ns(),
	    .redactions = redact_texts,
	    .n_redactions = n_redact,
	};
	struct store_writer_params wp = {
	    .path = p->path, .level = p->level, .meta = &meta, .background = p->background};
	r->w = store_writer_create(&wp, err, errlen);
	rc = r->w ? 0 : -EIO;
	if (!rc)
		r->error[0] = 0;
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	mem_free(rule_texts);
	mem_free(redact_texts);
	return rc;
out_ok:
	rc = 0;
	goto out;
}

int recorder_open(const struct recorder_params *p, struct recorder **out, char *err, size_t errlen)
{
	struct recorder *r = mem_calloc(1, sizeof(*r));
	int rc = -ENOMEM;

	*out = NULL;
	if (!r)
		goto fail;
	r->p = *p;
	r->p.conf = NULL; /* borrowed during open only */
	r->on_session = p->on_session;
	r->on_request = p->on_request;
	r->ctx = p->ctx;
	if ((rc = compile_rules(r, p, err, errlen)))
		goto fail;
	if (p->conf && (p->conf->n_redacts || p->conf->redact_defaults)) {
		if ((rc = compile_redact(&r->redact, p->conf, err, errlen)))
			goto fail;
		if (p->redact_results &&
		    (rc = compile_redact(&r->redact_res, p->conf, err, errlen)))
			goto fail;
	}
	if (!p->no_pipeline) {
		struct pipe_params pp = {
		    .max_flows = p->limits.max_flows,
		    .idle_timeout_ns = p->limits.idle_timeout_ns,
		    .reasm_memcap = p->limits.reasm_memcap,
		    .txn_memcap = p->limits.txn_memcap,
		    .txn_dormant_mem = p->limits.txn_dormant_mem,
		    .max_body = p->limits.max_body,
		    .rules = r->rules,
		    .redact = r->redact,
		    .drop_uncolored = p->drop_uncolored,
		    .sink = p->path || r->on_session ? rec_sink : NULL,
		    .sink_ctx = r,
		    .on_request = p->on_request ? rec_on_request : NULL,
		};
		rc = -ENOMEM;
		r->pipe = pipe_create(&pp);
		if (!r->pipe)
			goto fail;
	}
	*out = r;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	recorder_free(r);
	return rc;
}

struct pipe *recorder_pipe(struct recorder *r)
{
	return r->pipe;
}

const struct rules *recorder_rules(const struct recorder *r)
{
	return r->rules;
}

bool recorder_has_file(const struct recorder *r)
{
	return r->w != NULL;
}

bool recorder_redacts(const struct recorder *r)
{
	return r->redact != NULL;
}

int recorder_tick(struct recorder *r)
{
	if (!r->w)
		return 0;
	int rc = store_writer_tick(r->w);
	if (rc < 0)
		keep_error(r);
	return rc;
}

/* Count a record the writer refused (@p rc < 0). */
static int counted(struct recorder *r, int rc)
{
	if (rc < 0) {
		r->write_errors++;
		keep_error(r);
	}
	return rc;
}

int recorder_add_session(struct recorder *r, const struct store_session *s)
{
	return r->w ? counted(r, store_writer_add_session(r->w, s)) : -ENOENT;
}

int recorder_add_result(struct recorder *r, const struct store_result *res)
{
	return r->w ? counted(r, store_writer_add_result(r->w, res)) : -ENOENT;
}

int recorder_redact_result(void *ctx, const struct store_result *in, struct store_result *out)
{
	struct recorder *r = ctx;
	*out = *in;
	if (!r->redact_res)
		return 0;
	/* The rules see the response as a session's (Set-Cookie, JSON members...). */
	struct store_session sin = {.resp = in->resp}, sout;
	int rc = redact_session(r->redact_res, &sin, &sout);
	if (rc < 0)
		return rc;
	out->resp = sout.resp;
	return 0;
}

void recorder_end_input(struct recorder *r)
{
	if (r->pipe)
		pipe_finish(r->pipe);
}

int recorder_counters(const struct recorder *r, const struct src_stats *ss, struct ctr_set *set)
{
	int rc = 0;
	if (ss)
		rc = ctr_set_table(set, "src_", ss, src_ctr_descs, src_ctr_count);
	if (!r->pipe)
		return rc;
	size_t n = pipe_counters(r->pipe, NULL, 0);
	struct store_counter *v = mem_calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = pipe_counters(r->pipe, v, n);
	for (size_t i = 0; i < n; i++) {
		int e = ctr_set_put(set, v[i].value, "%s", v[i].name);
		if (e && !rc)
			rc = e;
	}
	mem_free(v);
	return rc;
}

int recorder_result_counters(const struct recorder *r, const char *prefix, struct ctr_set *set)
{
	if (!r->redact_res)
		return 0;
	const struct redact_stats *rs = redact_get_stats(r->redact_res);
	int rc = ctr_set_put(set, rs->sessions, "%sresults_redacted", prefix);
	if (!rc)
		rc = ctr_set_put(set, rs->masked, "%sresults_redact_masked", prefix);
	if (!rc)
		rc = ctr_set_put(set, rs->dropped, "%sresults_redact_dropped", prefix);
	return rc;
}

uint64_t recorder_write_errors(const struct recorder *r)
{
	return r->write_errors;
}

uint64_t recorder_lost(const struct recorder *r)
{
	/* While open: the records refused so far (the writer's own count would
	 * include its pending batch). After the close: records not in the file,
	 * refused or in frames that failed (a full disk), and those not
	 * redactable. */
	if (r->w || !r->closed)
		return (r->pipe ? pipe_get_stats(r->pipe)->sink_errors : 0) + r->write_errors;
	uint64_t n = r->closed_lost;
	if (r->redact)
		n += redact_get_stats(r->redact)->errors;
	return n;
}

const char *recorder_error(const struct recorder *r)
{
	if (!r->error[0] && r->w)
		return store_writer_error(r->w);
	return r->error;
}

int recorder_close(struct recorder *r, const struct ctr_set *trailer, char *err, size_t errlen)
{
	if (!r->w)
		return 0;
	keep_error(r);
	size_t n = 0;
	struct store_counter *v = trailer ? recorder_store_counters(trailer, &n) : NULL;
	if (trailer && !v) {
		snprintf(err, errlen, "out of memory for the trailer");
		store_writer_free(r->w);
		r->w = NULL;
		return -ENOMEM;
	}
	int rc = store_writer_finish(r->w, v, n, err, errlen);
	keep_error(r);
	r->closed_lost = store_writer_lost(r->w);
	r->closed = true;
	store_writer_free(r->w);
	r->w = NULL; /* closed and freed, error or not */
	mem_free(v);
	return rc < 0 ? -EIO : 0;
}

void recorder_free(struct recorder *r)
{
	if (!r)
		return;
	store_writer_free(r->w);
	pipe_free(r->pipe);
	rules_free(r->own_rules);
	redact_free(r->redact);
	redact_free(r->redact_res);
	mem_free(r);
}

int recorder_source(struct dbuf *b, const char *prefix, const struct src_params *sp)
{
	int rc = dbuf_puts(b, prefix ? prefix : "");
	if (sp->iface)
		return rc ? rc : dbuf_printf(b, "iface:%s", sp->iface);
	if (!rc)
		rc = dbuf_puts(b, "pcap:");
	for (size_t i = 0; i < sp->n_files && !rc; i++)
		rc = dbuf_printf(b, "%s%s", i ? "," : "", sp->files[i]);
	return rc;
}

struct store_counter *recorder_store_counters(const struct ctr_set *set, size_t *n)
{
	*n = ctr_set_count(set);
	struct store_counter *v = mem_calloc(*n ? *n : 1, sizeof(*v));
	const struct ctr_value *c = ctr_set_values(set);
	for (size_t i = 0; v && i < *n; i++)
		v[i] = (struct store_counter){c[i].name, c[i].value};
	return v;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

void recorder_conf_init(struct recorder_conf *c)
{
	memset(c, 0, sizeof(*c));
	dbuf_init(&c->filter, 1u << 16);
}

void recorder_conf_release(struct recorder_conf *c)
{
	dbuf_release(&c->filter);
}

static int conf_int(const char *name, const char *arg, long max, int *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 0 || v > max) {
		snprintf(err, errlen, "bad --%s '%s' (0..%ld)", name, arg, max);
		return -EINVAL;
	}
	*out = (int)v;
	return 1;
}

/* Append @p arg to @p list of @p *n (at most RECORDER_MAX_RULES or _FILES). */
static int conf_push(const char **list, size_t *n, size_t max, const char *name, char *arg,
		     char *err, size_t errlen)
{
	if (*n == max) {
		snprintf(err, errlen, "too many --%s (at most %zu)", name, max);
		return -EINVAL;
	}
	list[(*n)++] = arg;
	return 1;
}

int recorder_conf_option(struct recorder_conf *c, const char *name, char *arg, char *err,
			 size_t errlen)
{
	if (!strcmp(name, "read"))
		return conf_push(c->files, &c->n_files, RECORDER_MAX_FILES, name, arg, err, errlen);
	if (!strcmp(name, "interface"))
		return c->iface = arg, 1;
	if (!strcmp(name, "snaplen"))
		return conf_int(name, arg, 262144, &c->snaplen, err, errlen);
	if (!strcmp(name, "buffer-mb"))
		return conf_int(name, arg, 4096, &c->buffer_mb, err, errlen);
	if (!strcmp(name, "promisc"))
		return c->promisc = true, 1;
	if (!strcmp(name, "color"))
		return conf_push(c->colors, &c->n_colors, RECORDER_MAX_RULES, name, arg, err,
				 errlen);
	if (!strcmp(name, "rules"))
		return c->rules_file = arg, 1;
	if (!strcmp(name, "redact"))
		return conf_push(c->redacts, &c->n_redacts, RECORDER_MAX_RULES, name, arg, err,
				 errlen);
	if (!strcmp(name, "redact-defaults"))
		return c->redact_defaults = true, 1;
	return 0;
}

int recorder_conf_filter(struct recorder_conf *c, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if ((i && dbuf_putc(&c->filter, ' ') < 0) || dbuf_puts(&c->filter, argv[i]) < 0)
			return -E2BIG;
	return 0;
}

/* Do @p a and @p b name one file: the same string, or the same device and inode. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return !strcmp(a, b) ||
	       (!stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

int recorder_conf_check(const struct recorder_conf *c, const char *out, char *err, size_t errlen)
{
	if (!c->n_files == !c->iface) {
		snprintf(err, errlen, "give either -i IFACE or -r FILE (one or more)");
		return -EINVAL;
	}
	for (size_t i = 0; out && i < c->n_files; i++)
		if (same_file(c->files[i], out)) {
			snprintf(err, errlen,
				 "the output '%s' is also an input ('%s'): writing it would "
				 "overwrite the capture",
				 out, c->files[i]);
			return -EINVAL;
		}
	return 0;
}

void recorder_conf_src(const struct recorder_conf *c, struct src_params *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->files = c->files;
	sp->n_files = c->n_files;
	sp->iface = c->iface;
	sp->filter = c->filter.len ? (const char *)c->filter.data : NULL;
	sp->snaplen = c->snaplen;
	sp->buffer_mb = c->buffer_mb;
	sp->promisc = c->promisc;
}
