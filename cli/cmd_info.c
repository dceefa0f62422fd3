/* SPDX-License-Identifier: MIT */
/*
 * dyetap info - describe a store file (docs/format.md §5): metadata,
 * record counts by type and lane, time span, frames, raw and compressed
 * bytes, the trailer's counters, and whether the file is complete,
 * unfinished, cut or damaged and how much of it was recovered.
 *
 * A writer writes FILE.partial and renames it to FILE at its close
 * (docs/format.md §3): `info FILE` for a FILE that does not exist reads
 * FILE.partial (a write still running, or cut short by a crash) and says
 * so, and warns when a FILE.partial newer than FILE exists.
 *
 * Exit: 0 readable (a cut/damaged/suspect/unfinished file gets a warning
 * line on stderr), 2 usage error or not a readable store, 3 runtime failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "common/dbuf.h"
#include "common/jsonw.h"
#include "common/mem.h"
#include "store/store.h"

#define MAX_LANES 256

struct lane_count {
	char *name;
	uint64_t n;
};

struct lanes {
	struct lane_count v[MAX_LANES];
	size_t n;
	uint64_t other; /* sessions of lanes beyond MAX_LANES distinct ones */
};

static int lanes_add(struct lanes *l, const struct store_slice *lane)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strlen(l->v[i].name) == lane->len &&
		    (lane->len == 0 || !memcmp(l->v[i].name, lane->ptr, lane->len))) {
			l->v[i].n++;
			return 0;
		}
	}
	if (l->n == MAX_LANES) {
		l->other++;
		return 0;
	}
	char *s =
	    mem_strndup((const char *)(lane->len ? lane->ptr : (const uint8_t *)""), lane->len);
	if (!s)
		return -ENOMEM;
	l->v[l->n].name = s;
	l->v[l->n].n = 1;
	l->n++;
	return 0;
}

static void lanes_release(struct lanes *l)
{
	for (size_t i = 0; i < l->n; i++)
		mem_free(l->v[i].name);
	l->n = 0;
}

/* "2025-11-26T12:00:00.000000000Z" */
static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t s = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	if (frac < 0) {
		frac += 1000000000;
		s--;
	}
	struct tm tm;
	char d[32];
	if (!gmtime_r(&s, &tm) || !strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, len, "%" PRId64 " ns", ns);
		return;
	}
	snprintf(buf, len, "%s.%09ldZ", d, frac);
}

static const char *state_of(const struct store_read_status *st)
{
	return store_read_state(st);
}

/* Is @p path locked by its writer right now (docs/format.md §3)? */
static bool being_written(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd);
	return busy;
}

static void warn_state(const char *cmd, const char *path, const struct store_read_status *st)
{
	uint64_t recs = st->sessions + st->results;
	if (st->cut)
		fprintf(stderr,
			"dyetap %s: warning: %s is cut at byte %" PRIu64 " of %" PRIu64
			" (a frame is incomplete); recovered %" PRIu64 " records from the %" PRIu64
			" bytes before the cut\n",
			cmd, path, st->cut_offset, st->file_bytes, recs, st->cut_offset);
	if (st->damaged_frames)
		fprintf(
		    stderr,
		    "dyetap %s: warning: %s has %" PRIu64
		    " damaged frame(s) (checksum or decoding failed), the first at byte %" PRIu64
		    "; their records are lost, %" PRIu64 " records recovered\n",
		    cmd, path, st->damaged_frames, st->first_damage_offset, recs);
	if (st->suspect_frames)
		fprintf(stderr,
			"dyetap %s: warning: %s has data after an index frame or a second header "
			"(%" PRIu64 " frame(s), the first at byte %" PRIu64
			": files joined, or two writers); all of it was read, %" PRIu64
			" records\n",
			cmd, path, st->suspect_frames, st->first_suspect_offset, recs);
	if (!st->has_index && !st->cut)
		fprintf(stderr,
			"dyetap %s: warning: %s has no index (the writer did not finish: killed, "
			"crashed or still running); all %" PRIu64
			" records of its whole frames read\n",
			cmd, path, recs);
	if (st->frames_over_ratio)
		fprintf(stderr,
			"dyetap %s: warning: %s: %" PRIu64
			" data frame(s) would decompress to more than --max-frame-ratio times "
			"their size and were not read (a decompression bomb, or very repetitive "
			"data: raise --max-frame-ratio)\n",
			cmd, path, st->frames_over_ratio);
	if (st->record_cap_hit)
		fprintf(stderr,
			"dyetap %s: warning: %s: reading stopped at the record cap (%" PRIu64
			" records); raise --max-records to read further\n",
			cmd, path, st->max_records);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: dyetap info FILE [--json] [--max-frame-ratio N] [--max-records N]\n\n"
		   "Describe a store file (.dyt): metadata, record counts by type and lane,\n"
		   "time span, frames, raw and compressed bytes, counters from the trailer,\n"
		   "and whether the file is complete, unfinished, cut or damaged.\n\n"
		   "  --json                print one JSON object (keys in docs/format.md §5)\n"
		   "  --max-frame-ratio N   read data frames whose content is up to N times\n"
		   "                        their size (default 4096; 'none': no cap)\n"
		   "  --max-records N       read up to N records (default: the larger of\n"
		   "                        1000000 and the file's size in bytes; 'none')\n"
		   "  -h, --help            this text\n\n"
		   "A store is written as FILE.partial and renamed to FILE when its writer\n"
		   "closes it; for a FILE that does not exist yet, info reads FILE.partial (a\n"
		   "write in progress, or cut short by a crash) and says so.\n\n"
		   "Exit status: 0 readable (a warning on stderr when the file is cut, damaged,\n"
		   "suspect or unfinished), 2 not a readable store or usage error, 3 runtime\n"
		   "failure.\n");
}

static int put_json_str(struct dbuf *b, const char *key, const char *v)
{
	int rc = dbuf_printf(b, "\"%s\":", key);
	if (!rc)
		rc = v ? jsonw_cstr(b, v) : dbuf_puts(b, "null");
	return rc;
}

/* The @p n strings of @p v, comma separated (the caller writes the brackets). */
static int put_json_strs(struct dbuf *b, const char *const *v, size_t n)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		if (i)
			rc = dbuf_putc(b, ',');
		if (!rc)
			rc = jsonw_cstr(b, v[i]);
	}
	return rc;
}

static int print_json(const char *path, const struct store_file_meta *m,
		      const struct store_read_status *st, const struct lanes *l)
{
	struct dbuf b;
	dbuf_init(&b, 64u << 20);
	int rc = dbuf_puts(&b, "{");
	if (!rc)
		rc = put_json_str(&b, "file", path);
	if (!rc)
		rc = dbuf_printf(
		    &b, ",\"file_bytes\":%" PRIu64 ",\"format_version\":%" PRIu32 ",\"meta\":{",
		    st->file_bytes, m->format_version);
	if (!rc)
		rc = put_json_str(&b, "tool_version", m->tool_version);
	if (!rc)
		rc = dbuf_putc(&b, ',');
	if (!rc)
		rc = put_json_str(&b, "file_id", m->file_id);
	if (!rc)
		rc = dbuf_putc(&b, ',');
	if (!rc)
		rc = put_json_str(&b, "kind", m->kind);
	if (!rc)
		rc = dbuf_putc(&b, ',');
	if (!rc)
		rc = put_json_str(&b, "source", m->source);
	if (!rc)
		rc = dbuf_putc(&b, ',');
	if (!rc)
		rc = put_json_str(&b, "filter", m->filter);
	if (!rc)
		rc = dbuf_puts(&b, ",\"rules\":[");
	if (!rc)
		rc = put_json_strs(&b, m->rules, m->n_rules);
	if (!rc)
		rc = dbuf_puts(&b, "],\"redactions\":[");
	if (!rc)
		rc = put_json_strs(&b, m->redactions, m->n_redactions);
	if (!rc)
		rc = dbuf_puts(&b, "],");
	if (!rc)
		rc = put_json_str(&b, "host", m->host);
	if (!rc)
		rc = dbuf_puts(&b, ",\"origins\":[");
	for (size_t i = 0; !rc && i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		rc = dbuf_puts(&b, i ? ",{" : "{");
		if (!rc)
			rc = put_json_str(&b, "id", o->id);
		if (!rc)
			rc = dbuf_putc(&b, ',');
		if (!rc)
			rc = put_json_str(&b, "file", o->file);
		if (!rc)
			rc = dbuf_printf(&b,
					 ",\"first_ns\":%" PRId64 ",\"last_ns\":%" PRId64
					 ",\"sessions\":%" PRIu64 ",",
					 o->first_ns, o->last_ns, o->sessions);
		if (!rc)
			rc = put_json_str(&b, "state", o->state);
		if (!rc)
			rc = dbuf_puts(&b, ",\"counters\":{");
		for (size_t k = 0; !rc && k < o->n_counters; k++) {
			rc = k ? dbuf_putc(&b, ',') : 0;
			if (!rc)
				rc = jsonw_cstr(&b, o->counters[k].name);
			if (!rc)
				rc = dbuf_printf(&b, ":%" PRIu64, o->counters[k].value);
		}
		if (!rc)
			rc = dbuf_puts(&b, "}}");
	}
	if (!rc)
		rc = dbuf_puts(&b, "],\"targets\":[");
	for (size_t i = 0; !rc && i < m->n_targets; i++) {
		rc = dbuf_puts(&b, i ? ",[" : "[");
		if (!rc)
			rc = jsonw_cstr(&b, m->targets[i].role);
		if (!rc)
			rc = dbuf_putc(&b, ',');
		if (!rc)
			rc = jsonw_cstr(&b, m->targets[i].url);
		if (!rc)
			rc = dbuf_putc(&b, ']');
	}
	if (!rc)
		rc = dbuf_puts(&b, "],\"shard\":");
	if (!rc && m->shard_n)
		rc = dbuf_printf(&b, "[%" PRIu32 ",%" PRIu32 "]", m->shard_k, m->shard_n);
	else if (!rc)
		rc = dbuf_puts(&b, "null");
	if (!rc)
		rc = dbuf_putc(&b, ',');
	if (!rc)
		rc = put_json_str(&b, "pace", m->pace);
	if (!rc)
		rc = dbuf_printf(&b,
				 ",\"start_ns\":%" PRId64 "},\"records\":%" PRIu64
				 ",\"sessions\":%" PRIu64 ",\"results\":%" PRIu64
				 ",\"skipped_records\":%" PRIu64 ",\"lanes\":{",
				 m->start_ns, st->sessions + st->results, st->sessions, st->results,
				 st->skipped_records);
	for (size_t i = 0; !rc && i < l->n; i++) {
		if (i)
			rc = dbuf_putc(&b, ',');
		if (!rc)
			rc = jsonw_cstr(&b, l->v[i].name);
		if (!rc)
			rc = dbuf_printf(&b, ":%" PRIu64, l->v[i].n);
	}
	if (!rc && l->other)
		rc = dbuf_printf(&b, "%s\"(other)\":%" PRIu64, l->n ? "," : "", l->other);
	double ratio =
	    st->compressed_bytes ? (double)st->raw_bytes / (double)st->compressed_bytes : 0.0;
	if (!rc)
		rc = dbuf_printf(
		    &b,
		    "},\"first_ts_ns\":%" PRId64 ",\"last_ts_ns\":%" PRId64 ",\"frames\":%" PRIu64
		    ",\"raw_bytes\":%" PRIu64 ",\"compressed_bytes\":%" PRIu64
		    ",\"ratio\":%.3f,\"has_index\":%s,\"state\":\"%s\",\"cut\":%s,"
		    "\"cut_offset\":%" PRIu64 ",\"damaged_frames\":%" PRIu64
		    ",\"first_damage_offset\":%" PRIu64 ",\"suspect_frames\":%" PRIu64
		    ",\"first_suspect_offset\":%" PRIu64 ",\"frames_over_ratio\":%" PRIu64
		    ",\"record_cap_hit\":%s,\"max_records\":%" PRIu64 ",\"counters\":{",
		    st->first_ts_ns, st->last_ts_ns, st->frames, st->raw_bytes,
		    st->compressed_bytes, ratio, st->has_index ? "true" : "false", state_of(st),
		    st->cut ? "true" : "false", st->cut_offset, st->damaged_frames,
		    st->first_damage_offset, st->suspect_frames, st->first_suspect_offset,
		    st->frames_over_ratio, st->record_cap_hit ? "true" : "false", st->max_records);
	for (size_t i = 0; !rc && i < st->n_counters; i++) {
		if (i)
			rc = dbuf_putc(&b, ',');
		if (!rc)
			rc = jsonw_cstr(&b, st->counters[i].name);
		if (!rc)
			rc = dbuf_printf(&b, ":%" PRIu64, st->counters[i].value);
	}
	if (!rc)
		rc = dbuf_puts(&b, "}}\n");
	if (!rc && fwrite(b.data, 1, b.len, stdout) != b.len)
		rc = -EIO;
	dbuf_release(&b);
	return rc;
}

static void print_text(const char *path, const struct store_file_meta *m,
		       const struct store_read_status *st, const struct lanes *l)
{
	char t1[64], t2[64];
	printf("file:       %s (%" PRIu64 " bytes)\n", path, st->file_bytes);
	printf("format:     version %" PRIu32 ", written by dyetap %s\n", m->format_version,
	       m->tool_version ? m->tool_version : "(unknown)");
	printf("file id:    %s\n", m->file_id ? m->file_id : "(none: an older file)");
	printf("kind:       %s\n", m->kind ? m->kind : "(not given)");
	printf("source:     %s\n", m->source ? m->source : "(not given)");
	if (m->filter)
		printf("filter:     %s\n", m->filter);
	for (size_t i = 0; i < m->n_rules; i++)
		printf("%s%s\n", i ? "            " : "rules:      ", m->rules[i]);
	for (size_t i = 0; i < m->n_redactions; i++)
		printf("%s%s\n", i ? "            " : "redactions: ", m->redactions[i]);
	if (m->host)
		printf("host:       %s\n", m->host);
	for (size_t i = 0; i < m->n_origins; i++) {
		const struct store_origin *o = &m->origins[i];
		fmt_time(o->first_ns, t1, sizeof(t1));
		fmt_time(o->last_ns, t2, sizeof(t2));
		printf("%s%s (id %s, %" PRIu64 " sessions, %s .. %s, %s)\n",
		       i ? "            " : "replayed:   ", o->file ? o->file : "?",
		       o->id && *o->id ? o->id : "none", o->sessions, t1, t2,
		       o->state ? o->state : "?");
		for (size_t k = 0; k < o->n_counters; k++)
			if (o->counters[k].value)
				printf("              %-22s %" PRIu64 "\n", o->counters[k].name,
				       o->counters[k].value);
	}
	for (size_t i = 0; i < m->n_targets; i++)
		printf("%s%s = %s\n", i ? "            " : "targets:    ", m->targets[i].role,
		       m->targets[i].url);
	if (m->shard_n)
		printf("shard:      %" PRIu32 "/%" PRIu32 "\n", m->shard_k, m->shard_n);
	if (m->pace)
		printf("pace:       %s%s\n", m->pace,
		       !strcmp(m->pace, "max")
			   ? " (lateness is the wait for a connection, not pacing)"
			   : "");
	if (m->start_ns) {
		fmt_time(m->start_ns, t1, sizeof(t1));
		printf("started:    %s\n", t1);
	}
	printf("records:    %" PRIu64 " (sessions %" PRIu64 ", results %" PRIu64
	       ", skipped %" PRIu64 ")\n",
	       st->sessions + st->results, st->sessions, st->results, st->skipped_records);
	for (size_t i = 0; i < l->n; i++)
		printf("%s%-16s %" PRIu64 "\n", i ? "            " : "lanes:      ",
		       l->v[i].name[0] ? l->v[i].name : "(baseline)", l->v[i].n);
	if (l->other)
		printf("            %-16s %" PRIu64 "\n", "(other)", l->other);
	if (st->sessions + st->results) {
		fmt_time(st->first_ts_ns, t1, sizeof(t1));
		fmt_time(st->last_ts_ns, t2, sizeof(t2));
		printf("time span:  %s .. %s (%.3f s)\n", t1, t2,
		       ((double)st->last_ts_ns - (double)st->first_ts_ns) / 1e9);
	}
	printf("frames:     %" PRIu64 " data frames, index %s\n", st->frames,
	       st->has_index ? "present" : "missing");
	printf("bytes:      raw %" PRIu64 ", compressed %" PRIu64 ", ratio %.2f\n", st->raw_bytes,
	       st->compressed_bytes,
	       st->compressed_bytes ? (double)st->raw_bytes / (double)st->compressed_bytes : 0.0);
	for (size_t i = 0; i < st->n_counters; i++)
		printf("%s%-24s %" PRIu64 "\n",
		       i ? "            " : "counters:   ", st->counters[i].name,
		       st->counters[i].value);
	printf("state:      %s", state_of(st));
	if (st->cut)
		printf(" (cut at byte %" PRIu64 ")", st->cut_offset);
	if (st->damaged_frames)
		printf(" (%" PRIu64 " damaged frames, first at byte %" PRIu64 ")",
		       st->damaged_frames, st->first_damage_offset);
	if (st->suspect_frames)
		printf(" (data after an index frame or a second header at byte %" PRIu64 ")",
		       st->first_suspect_offset);
	if (st->frames_over_ratio)
		printf(" (%" PRIu64 " over the frame ratio cap)", st->frames_over_ratio);
	if (st->record_cap_hit)
		printf(" (stopped at the record cap, %" PRIu64 ")", st->max_records);
	printf("\n");
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"max-frame-ratio", required_argument, NULL, 'R'},
	    {"max-records", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int json = 0, c;
	struct store_read_limits lim = {0};
	bool set_lim = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
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
		fprintf(stderr, "dyetap info: expected one FILE (try: dyetap info --help)\n");
		return 2;
	}
	const char *path = argv[optind];
	char err[4600], part[4200];
	struct stat sb, ps;
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	bool have_part = stat(part, &ps) == 0 && S_ISREG(ps.st_mode);
	int have_file = stat(path, &sb) == 0 ? 1 : errno == ENOENT ? 0 : -1;
	if (have_part && have_file == 0) {
		fprintf(stderr,
			"dyetap info: note: %s does not exist: its writer has not finished (%s); "
			"reading %s\n",
			path, being_written(part) ? "it is writing now" : "it stopped or crashed",
			part);
		path = part;
	} else if (have_part && have_file == 1 && ps.st_mtime >= sb.st_mtime) {
		fprintf(
		    stderr, "dyetap info: warning: a newer write of %s is unfinished in %s (%s)\n",
		    path, part, being_written(part) ? "being written now" : "its writer stopped");
	}
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "dyetap info: %s\n", err);
		return 2;
	}
	if (set_lim)
		store_reader_set_limits(r, &lim);
	static struct lanes lanes;
	const struct store_record *rec;
	int rc;
	while ((rc = store_reader_next(r, &rec)) == 1) {
		if (rec->type == STORE_REC_SESSION &&
		    lanes_add(&lanes, &rec->u.session.lane) != 0) {
			rc = -ENOMEM;
			break;
		}
	}
	int exit_code = 0;
	if (rc < 0) {
		fprintf(stderr, "dyetap info: %s: %s\n", path, strerror(-rc));
		exit_code = 3;
	} else {
		const struct store_read_status *st = store_reader_status(r);
		if (json) {
			if (print_json(path, store_reader_meta(r), st, &lanes) != 0) {
				fprintf(stderr, "dyetap info: cannot write the output\n");
				exit_code = 3;
			}
		} else {
			print_text(path, store_reader_meta(r), st, &lanes);
		}
		warn_state("info", path, st);
	}
	if (fflush(stdout) != 0 && !exit_code) {
		fprintf(stderr, "dyetap info: cannot write the output: %s\n", strerror(errno));
		exit_code = 3;
	}
	lanes_release(&lanes);
	store_reader_free(r);
	return exit_code;
}
