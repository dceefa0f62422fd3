/* SPDX-License-Identifier: MIT */
/*
 * dyetap cat - print the records of a store file, one per line: the JSON
 * form of docs/format.md §4 with --json, else a readable summary line.
 * Filters select sessions by lane, method, request time and response
 * status, results by status and by the session they replay; --type picks a
 * record type. --har writes the records as one HAR 1.2 log instead
 * (interop/har.h, docs/interop.md).
 *
 * Exit: 0 printed (a cut or damaged file gets a warning on stderr after
 * the recoverable records), 2 usage error or not a readable store,
 * 3 runtime failure (output error, out of memory).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmds.h"
#include "common/dbuf.h"
#include "common/hash.h"
#include "common/mem.h"
#include "dyetap_version.h"
#include "interop/har.h"
#include "replay/shadow.h"
#include "store/store.h"

struct filter {
	const char *lane;
	const char *method;
	long status;		    /* -1: any */
	int type;		    /* 0: any, else enum store_rec_type */
	int64_t since_ns, until_ns; /* request time window; 0: open */
	unsigned json_flags;
	int json;
	/* ids of the sessions that passed the lane/method filters, to select their results */
	uint64_t *ids;
	size_t n_ids, cap_ids;
	int ids_unsorted;
};

static int slice_is(const struct store_slice *s, const char *c)
{
	size_t n = strlen(c);
	return s->len == n && (n == 0 || !memcmp(s->ptr, c, n));
}

static int ids_add(struct filter *f, uint64_t id)
{
	if (f->n_ids == f->cap_ids) {
		size_t cap = f->cap_ids ? f->cap_ids * 2 : 1024;
		uint64_t *p = mem_realloc(f->ids, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		f->ids = p;
		f->cap_ids = cap;
	}
	if (f->n_ids && f->ids[f->n_ids - 1] >= id)
		f->ids_unsorted = 1;
	f->ids[f->n_ids++] = id;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int ids_has(struct filter *f, uint64_t id)
{
	if (f->ids_unsorted) {
		qsort(f->ids, f->n_ids, sizeof(*f->ids), cmp_u64);
		f->ids_unsorted = 0;
	}
	return f->n_ids && bsearch(&id, f->ids, f->n_ids, sizeof(*f->ids), cmp_u64) != NULL;
}

/* 1 print, 0 skip, -ENOMEM. */
static int keep(struct filter *f, const struct store_record *rec)
{
	int by_session = f->lane || f->method || f->since_ns || f->until_ns;
	if (rec->type == STORE_REC_SESSION) {
		const struct store_session *s = &rec->u.session;
		if (f->since_ns && s->ts_req_first_ns < f->since_ns)
			return 0;
		if (f->until_ns && s->ts_req_first_ns >= f->until_ns)
			return 0;
		if (f->lane && !slice_is(&s->lane, f->lane))
			return 0;
		if (f->method && !slice_is(&s->req.method, f->method))
			return 0;
		if (by_session && ids_add(f, s->id) != 0)
			return -ENOMEM;
		if (f->type && f->type != STORE_REC_SESSION)
			return 0;
		if (f->status >= 0 && (!s->resp.present || s->resp.status != f->status))
			return 0;
		return 1;
	}
	const struct store_result *r = &rec->u.result;
	if (f->type && f->type != STORE_REC_RESULT)
		return 0;
	if (by_session && !ids_has(f, r->session_id))
		return 0;
	if (f->status >= 0 && (!r->resp.present || r->resp.status != f->status))
		return 0;
	return 1;
}

/* Append wire bytes for a terminal: control bytes as \xHH, "-" when empty. */
static int put_safe(struct dbuf *b, const struct store_slice *s)
{
	int rc = 0;
	if (!s->len)
		return dbuf_putc(b, '-');
	for (size_t i = 0; !rc && i < s->len; i++) {
		uint8_t c = s->ptr[i];
		if (c < 0x20 || c == 0x7f || c == '\\')
			rc = dbuf_printf(b, "\\x%02x", c);
		else
			rc = dbuf_putc(b, c);
	}
	return rc;
}

static int put_text_msg(struct dbuf *b, const struct store_message *m)
{
	if (!m->present)
		return dbuf_puts(b, "(no response)");
	int rc = dbuf_printf(b, "%u ", (unsigned)m->status);
	if (!rc)
		rc = put_safe(b, &m->reason);
	if (!rc)
		rc = dbuf_printf(b, " (%" PRIu64 " B%s)", m->body_len,
				 m->truncated ? ", truncated" : "");
	return rc;
}

static int render_text(struct dbuf *b, const struct store_record *rec)
{
	int rc;
	if (rec->type == STORE_REC_SESSION) {
		const struct store_session *s = &rec->u.session;
		char src[64], dst[64];
		store_endpoint_str(s->ip_version, &s->src, src, sizeof(src));
		store_endpoint_str(s->ip_version, &s->dst, dst, sizeof(dst));
		rc = dbuf_printf(b, "session %" PRIu64 " lane=", s->id);
		if (!rc)
			rc = put_safe(b, &s->lane);
		if (!rc)
			rc = dbuf_printf(b, " %s -> %s conn=%" PRIu64 "/%" PRIu32 " ", src, dst,
					 s->conn_id, s->conn_index);
		if (!rc)
			rc = put_safe(b, &s->req.method);
		if (!rc)
			rc = dbuf_putc(b, ' ');
		if (!rc)
			rc = put_safe(b, &s->req.target);
		if (!rc)
			rc = dbuf_printf(b, " HTTP/%u.%u -> ", (unsigned)s->req.version_major,
					 (unsigned)s->req.version_minor);
		if (!rc)
			rc = put_text_msg(b, &s->resp);
		for (unsigned i = 0; !rc && i < 32; i++) {
			const char *name = (s->flags & (1u << i)) ? store_flag_name(1u << i) : NULL;
			if (name)
				rc = dbuf_printf(b, " [%s]", name);
		}
		return rc;
	}
	const struct store_result *r = &rec->u.result;
	const char *e = store_error_name(r->error);
	rc = dbuf_printf(b, "result  %" PRIu64 " role=", r->session_id);
	if (!rc)
		rc = put_safe(b, &r->role);
	if (!rc)
		rc = dbuf_puts(b, " target=");
	if (!rc)
		rc = put_safe(b, &r->target);
	if (!rc)
		rc = dbuf_printf(b, " latency=%.3fms -> ", (double)r->latency_ns / 1e6);
	if (!rc && r->error) {
		rc = dbuf_printf(b, "error %s: ", e ? e : "other");
		if (!rc)
			rc = put_safe(b, &r->error_msg);
	} else if (!rc) {
		rc = put_text_msg(b, &r->resp);
	}
	return rc;
}

/* Unix seconds ("1700000000.5") or YYYY-MM-DDTHH:MM:SS[.frac][Z] -> ns. */
static int parse_time(const char *s, int64_t *out)
{
	/* seconds[.fraction], exact to the nanosecond (a double is not) */
	const char *q = s;
	int64_t sec = 0, frac = 0, scale = 1000000000;
	while (*q >= '0' && *q <= '9' && sec < 10000000000LL)
		sec = sec * 10 + (*q++ - '0');
	if (q != s && *q == '.')
		for (q++; *q >= '0' && *q <= '9'; q++)
			if (scale > 1)
				frac += (*q - '0') * (scale /= 10);
	if (q != s && !*q && sec < 10000000000LL) {
		*out = sec * 1000000000 + frac;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	frac = 0;
	scale = 1000000000;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (scale > 1)
				frac += (*p - '0') * (scale /= 10);
	if (strcmp(p, "Z") && strcmp(p, ""))
		return -EINVAL;
	*out = (int64_t)timegm(&tm) * 1000000000LL + frac;
	return 0;
}

/* --har: sessions kept for the results that refer to them, the pages. */
struct har_out {
	bool results;		     /* a results file: pages "recorded" and one per role */
	struct store_session **sess; /* copies, in file order */
	size_t n_sess, cap_sess;
	/* by id: index + 1 into sess, 0 free (open addressing, linear
	 * probing; SipHash under a random key: the ids come from the file) */
	uint32_t *slot;
	size_t slot_cap; /* a power of two, or 0 */
	struct hash_key key;
	char *pages[64];
	int64_t page_ts[64];
	size_t n_pages;
	uint64_t results_skipped; /* results past 63 roles or whose session is absent */
};

static void har_out_release(struct har_out *o)
{
	for (size_t i = 0; i < o->n_sess; i++)
		shadow_free(o->sess[i]);
	mem_free(o->sess);
	mem_free(o->slot);
	for (size_t i = 0; i < o->n_pages; i++)
		mem_free(o->pages[i]);
}

/* The page of @p role (added at @p ts when new); NULL past the table. */
static const char *har_page(struct har_out *o, const uint8_t *role, size_t len, int64_t ts)
{
	for (size_t i = 0; i < o->n_pages; i++)
		if (strlen(o->pages[i]) == len && !memcmp(o->pages[i], role, len))
			return o->pages[i];
	if (o->n_pages == sizeof(o->pages) / sizeof(o->pages[0]))
		return NULL;
	char *p = mem_strndup((const char *)role, len);
	if (!p)
		return NULL;
	o->page_ts[o->n_pages] = ts;
	o->pages[o->n_pages++] = p;
	return p;
}

/* The slot of session id @p id in o->slot: its own, or the free one where
 * it would go. */
static size_t har_slot(const struct har_out *o, uint64_t id)
{
	size_t mask = o->slot_cap - 1, i = (size_t)hash_sip13_words(&o->key, &id, 1) & mask;
	while (o->slot[i] && o->sess[o->slot[i] - 1]->id != id)
		i = (i + 1) & mask;
	return i;
}

/* The kept session of id @p id, or NULL. */
static const struct store_session *har_find(const struct har_out *o, uint64_t id)
{
	if (!o->slot_cap)
		return NULL;
	uint32_t v = o->slot[har_slot(o, id)];
	return v ? o->sess[v - 1] : NULL;
}

/* The table twice as large (at least 2048 slots), o->sess indexed anew. */
static int har_grow(struct har_out *o)
{
	size_t cap = o->slot_cap ? o->slot_cap * 2 : 2048;
	if (cap > (size_t)UINT32_MAX)
		return -ENOMEM;
	uint32_t *n = mem_calloc(cap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (!o->slot_cap)
		hash_random_key(&o->key);
	mem_free(o->slot);
	o->slot = n;
	o->slot_cap = cap;
	for (size_t i = 0; i < o->n_sess; i++)
		o->slot[har_slot(o, o->sess[i]->id)] = (uint32_t)i + 1;
	return 0;
}

/* Keep a copy of @p s for the results that refer to it: a results file
 * holds its sessions in the order their replay finished (docs/format.md
 * §2), not by id, so they are found by id in a hash table. */
static int har_keep_session(struct har_out *o, const struct store_session *s)
{
	if (har_find(o, s->id))
		return 0;			 /* a repeat is not kept */
	if (2 * (o->n_sess + 1) > o->slot_cap) { /* at most half full */
		int rc = har_grow(o);
		if (rc)
			return rc;
	}
	if (o->n_sess == o->cap_sess) {
		size_t cap = o->cap_sess ? o->cap_sess * 2 : 1024;
		struct store_session **p = mem_realloc(o->sess, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		o->sess = p;
		o->cap_sess = cap;
	}
	struct store_session *c = shadow_session_dup(s);
	if (!c)
		return -ENOMEM;
	o->slot[har_slot(o, c->id)] = (uint32_t)o->n_sess + 1;
	o->sess[o->n_sess++] = c;
	return 0;
}

static int har_flush(struct dbuf *b)
{
	if (dbuf_error(b))
		return dbuf_error(b);
	if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
		return -EIO;
	dbuf_reset(b);
	return 0;
}

/* The whole file as one HAR log on stdout. 0 or -errno. */
static int cat_har(struct store_reader *r, struct filter *f, struct har_out *o, struct dbuf *b)
{
	const struct store_record *rec;
	bool first = true;
	int rc = har_begin(b, DYETAP_VERSION);
	while (!rc && (rc = store_reader_next(r, &rec)) == 1) {
		rc = keep(f, rec);
		if (rc <= 0)
			continue;
		rc = 0;
		if (rec->type == STORE_REC_SESSION) {
			const struct store_session *s = &rec->u.session;
			const char *page = NULL;
			if (o->results) {
				page =
				    har_page(o, (const uint8_t *)"recorded", 8, s->ts_req_first_ns);
				rc = har_keep_session(o, s);
			}
			if (!rc)
				rc = har_session(b, s, page, first);
		} else {
			const struct store_result *res = &rec->u.result;
			const struct store_session *sp = har_find(o, res->session_id);
			const char *page =
			    sp ? har_page(o, res->role.ptr, res->role.len, res->ts_sent_ns) : NULL;
			if (!page) {
				o->results_skipped++;
				continue;
			}
			rc = har_result(b, sp, res, page, first);
		}
		first = false;
		if (!rc && b->len > (1u << 20))
			rc = har_flush(b);
	}
	if (rc < 0)
		return rc;
	rc = har_end(b, (const char *const *)o->pages, o->page_ts, o->n_pages);
	if (!rc)
		rc = har_flush(b);
	if (!rc && o->results_skipped)
		fprintf(stderr,
			"dyetap cat: warning: %" PRIu64
			" results left out of the HAR log (their session is not in the file, or "
			"more than 63 roles)\n",
			o->results_skipped);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: dyetap cat FILE [--json | --har] [--no-body] [--lane L] [--method M]\n"
	    "                       [--status N] [--type session|result]\n"
	    "                       [--since T] [--until T]\n"
	    "                       [--max-frame-ratio N] [--max-records N]\n\n"
	    "Print the records of a store file (.dyt), one per line.\n\n"
	    "  --json            the JSON form of docs/format.md §4 (one object per line)\n"
	    "  --har             one HAR 1.2 log (browser developer tools, proxies, API\n"
	    "                    tools; `dyetap record -r` reads it back): one entry per\n"
	    "                    session, for a results file one page per role\n"
	    "                    (docs/interop.md)\n"
	    "  --no-body         omit body contents (\"body\": null; body_len stays)\n"
	    "  --lane L          sessions of lane L (\"\" = baseline) and their results\n"
	    "  --method M        sessions with request method M and their results\n"
	    "  --status N        records whose response status is N\n"
	    "  --type T          only records of type T: session or result\n"
	    "  --since T, --until T\n"
	    "                    sessions whose request started at or after T, before T\n"
	    "                    (Unix seconds or YYYY-MM-DDTHH:MM:SS[.frac]Z), and their\n"
	    "                    results\n"
	    "  --max-frame-ratio N, --max-records N\n"
	    "                    the reader's work limits (dyetap info --help)\n"
	    "  -h, --help        this text\n\n"
	    "A cut, damaged or suspect file prints what is recoverable and a warning on\n"
	    "stderr. A file still being written (or whose writer crashed) is FILE.partial.\n"
	    "Exit status: 0 printed, 2 usage error or not a readable store, 3 runtime failure.\n");
}

static void warn_state(const char *path, const struct store_read_status *st)
{
	uint64_t recs = st->sessions + st->results;
	if (st->cut)
		fprintf(stderr,
			"dyetap cat: warning: %s is cut at byte %" PRIu64 " of %" PRIu64
			"; the %" PRIu64 " records before the cut were read\n",
			path, st->cut_offset, st->file_bytes, recs);
	if (st->damaged_frames)
		fprintf(stderr,
			"dyetap cat: warning: %s has %" PRIu64
			" damaged frame(s), the first at byte %" PRIu64
			"; their records are lost\n",
			path, st->damaged_frames, st->first_damage_offset);
	if (st->suspect_frames)
		fprintf(stderr,
			"dyetap cat: warning: %s has data after an index frame or a second "
			"header (at byte %" PRIu64 "; files joined or two writers); it was read\n",
			path, st->first_suspect_offset);
	if (st->frames_over_ratio)
		fprintf(stderr,
			"dyetap cat: warning: %s: %" PRIu64
			" data frame(s) over the frame ratio cap were not read (raise "
			"--max-frame-ratio)\n",
			path, st->frames_over_ratio);
	if (st->record_cap_hit)
		fprintf(stderr,
			"dyetap cat: warning: %s: reading stopped at the record cap (%" PRIu64
			" records); raise --max-records\n",
			path, st->max_records);
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"no-body", no_argument, NULL, 'B'},
	    {"lane", required_argument, NULL, 'l'},
	    {"method", required_argument, NULL, 'm'},
	    {"status", required_argument, NULL, 's'},
	    {"type", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"max-frame-ratio", required_argument, NULL, 'R'},
	    {"max-records", required_argument, NULL, 'N'},
	    {"har", no_argument, NULL, 'H'},
	    {"since", required_argument, NULL, 'S'},
	    {"until", required_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0},
	};
	struct filter f = {.status = -1};
	struct store_read_limits lim = {0};
	bool set_lim = false, har = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'j':
			f.json = 1;
			break;
		case 'B':
			f.json_flags |= STORE_JSON_NO_BODY;
			break;
		case 'H':
			har = true;
			break;
		case 'S':
		case 'U':
			if (parse_time(optarg, c == 'S' ? &f.since_ns : &f.until_ns)) {
				fprintf(stderr,
					"dyetap cat: --%s wants Unix seconds or "
					"YYYY-MM-DDTHH:MM:SS[.frac]Z, not '%s'\n",
					c == 'S' ? "since" : "until", optarg);
				return 2;
			}
			break;
		case 'l':
			f.lane = optarg;
			break;
		case 'm':
			f.method = optarg;
			break;
		case 's':
			errno = 0;
			f.status = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || f.status < 0 || f.status > 999) {
				fprintf(stderr,
					"dyetap cat: --status wants a number 0..999, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			if (!strcmp(optarg, "session")) {
				f.type = STORE_REC_SESSION;
			} else if (!strcmp(optarg, "result")) {
				f.type = STORE_REC_RESULT;
			} else {
				fprintf(stderr,
					"dyetap cat: --type wants session or result, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'R':
		case 'N':
			if (cli_store_limit_opt(c == 'R' ? "--max-frame-ratio" : "--max-records",
						optarg, &lim) != 0)
				return 2;
			set_lim = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "dyetap cat: expected one FILE (try: dyetap cat --help)\n");
		return 2;
	}
	if (har && (f.json || (f.json_flags & STORE_JSON_NO_BODY))) {
		fprintf(stderr, "dyetap cat: --har writes whole entries: leave out --%s\n",
			f.json ? "json" : "no-body");
		return 2;
	}
	if (f.since_ns && f.until_ns && f.until_ns <= f.since_ns) {
		fprintf(stderr, "dyetap cat: --until must be after --since\n");
		return 2;
	}
	const char *path = argv[optind];
	char err[512];
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "dyetap cat: %s\n", err);
		return 2;
	}
	if (set_lim)
		store_reader_set_limits(r, &lim);
	struct dbuf line;
	dbuf_init(&line, (size_t)1 << 30);
	const struct store_record *rec;
	int rc = 0, exit_code = 0;
	if (f.since_ns)
		rc = store_reader_seek_time(r, f.since_ns);
	if (har) {
		const struct store_file_meta *meta = store_reader_meta(r);
		struct har_out ho = {.results =
					 meta && meta->kind && !strcmp(meta->kind, "results")};
		if (!rc)
			rc = cat_har(r, &f, &ho, &line);
		har_out_release(&ho);
		rc = rc > 0 ? 0 : rc;
	}
	bool lines = !har && rc == 0; /* --json or text: one line per record */
	while (lines && (rc = store_reader_next(r, &rec)) == 1) {
		int k = keep(&f, rec);
		if (k < 0) {
			rc = k;
			break;
		}
		if (!k)
			continue;
		dbuf_reset(&line);
		if (!f.json)
			k = render_text(&line, rec);
		else if (rec->type == STORE_REC_SESSION)
			k = store_session_json(&line, &rec->u.session, f.json_flags);
		else
			k = store_result_json(&line, &rec->u.result, f.json_flags);
		if (!k)
			k = dbuf_putc(&line, '\n');
		if (k) {
			rc = k;
			break;
		}
		if (fwrite(line.data, 1, line.len, stdout) != line.len) {
			rc = -EIO;
			break;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "dyetap cat: %s: %s\n", path,
			rc == -EIO ? "cannot write the output" : strerror(-rc));
		exit_code = 3;
	}
	if (fflush(stdout) != 0 && !exit_code) {
		fprintf(stderr, "dyetap cat: cannot write the output: %s\n", strerror(errno));
		exit_code = 3;
	}
	warn_state(path, store_reader_status(r));
	dbuf_release(&line);
	mem_free(f.ids);
	store_reader_free(r);
	return exit_code;
}
