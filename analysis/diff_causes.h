/* SPDX-License-Identifier: MIT */
/*
 * diff_causes - root causes, the level of a report above difference
 * groups (docs/report.md "Causes"). A group is one signature on one
 * endpoint; a cause joins the groups of every endpoint that show the same
 * change: the same kind at the same location (array elements as [*]) with
 * the same pattern (a status change old -> new, a JSON type change
 * old type -> new type, a header's old -> new value). A header dropped by
 * a new framework version is one cause listing its endpoints, not one row
 * per endpoint.
 *
 * Causes are built once per verdict by diff_ctx_finish(), from the groups
 * alone: their memory is bounded by the groups' (an index per group, a
 * few strings per cause); examples are the groups' own.
 *
 * Internal to the analysis module; not a public contract.
 */
#ifndef DYETAP_ANALYSIS_DIFF_CAUSES_H
#define DYETAP_ANALYSIS_DIFF_CAUSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"

struct diff_cand;
struct diff_group;
struct diff_example;

/* Severity, the order causes are shown in (docs/report.md). */
enum diff_severity {
	DIFF_SEV_STATUS = 0,  /* "status": the status code changed */
	DIFF_SEV_BROKEN = 1,  /* "data_lost": fields missing, types changed, body no longer JSON */
	DIFF_SEV_CHANGED = 2, /* "data_changed": values, extra fields, text, order */
	DIFF_SEV_HEADER = 3,  /* "header": only a header changed */
	DIFF_SEV_COUNT,
};

/* Examples shown per cause (one per group, the largest groups first). */
#define DIFF_CAUSE_EXAMPLES 3

struct diff_rootcause {
	uint8_t kind;	  /* enum diff_kind */
	uint8_t noise;	  /* enum diff_noise of its groups; DIFF_NOISE_NONE: real */
	uint8_t severity; /* enum diff_severity */
	char *location;	  /* owned: the groups' location, a header word or text line dropped */
	char *pattern;	  /* owned: "200 -> 404", "number -> string", "\"a\" -> \"b\""; "" none */
	uint32_t *groups; /* owned: indices into the verdict's groups, by count (descending) */
	uint32_t n_groups;
	uint32_t *eps; /* owned: its endpoints (indices), by name */
	uint32_t n_eps;
	uint64_t count; /* candidate pairs showing it */
	uint64_t pairs; /* pairs compared on its endpoints */
	double rate;	/* count / pairs */
};

struct diff_causes {
	struct diff_rootcause *v; /* by severity, real before noise, then count */
	size_t n;
	uint64_t real, noise; /* how many of each */
};

/* Build @p v's causes from its finished groups (noise decided) into
 * v->roots. 0 or -ENOMEM. */
int diff_causes_build(struct diff_cand *v);

/* Free causes; accepts NULL. */
void diff_causes_free(struct diff_causes *cs);

/* Stable name of severity @p s: "status", "data_lost", "data_changed", "header". */
const char *diff_severity_name(unsigned s);

/*
 * Append to @p out the rules (docs/diff-rules.md) that accept cause @p rc
 * of verdict @p v as intended: one rule line, preceded by a section line
 * per endpoint when the cause is not on every endpoint of the verdict
 * (lines separated by '\n', no trailing newline).
 */
void diff_cause_rules(const struct diff_cand *v, const struct diff_rootcause *rc, struct dbuf *out);

/* The first example of group @p g, or NULL. */
const struct diff_example *diff_group_example(const struct diff_group *g);

/*
 * The pattern of group @p g's change into @p out (cap @p cap), the one its
 * cause is keyed on: the change every pair of the group showed (a status
 * "200 -> 404", a JSON type "number -> string", a header's "OLD -> NEW",
 * grpc-status codes with their messages "5 item retired -> 0"); when its
 * pairs showed different ones, the transition the group is keyed on (the
 * codes of a status, "5 -> 0"), else ""; "" for kinds without one.
 */
void diff_group_pattern(const struct diff_group *g, char *out, size_t cap);

/*
 * The transition a change of @p kind at @p loc from @p pval to @p cval is
 * grouped by (docs/diff.md "Signatures"): a status change's codes
 * ("304 -> 200" at status, "5 -> 0" at grpc-status, its messages left
 * out), "" for any other change. Written into @p out (cap @p cap), its
 * length returned.
 */
size_t diff_finding_transition(uint8_t kind, const char *loc, const char *pval, const char *cval,
			       char *out, size_t cap);

/* A hash of the pattern of one change (as diff_group_pattern() shows it),
 * never 0; 0 for a change without a pattern. */
uint64_t diff_finding_pattern_hash(uint8_t kind, const char *loc, const char *pval,
				   const char *cval);

/* ---- listing caps of the reports (docs/diff.md "Report size") ---- */

/*
 * The HTML and JUnit list the first REPORT_CAUSES_PER_SEV causes of each
 * severity, real and noise apart, in the order of diff_causes (so the
 * largest of each severity: a flood of small causes of one severity hides
 * neither a large one of another nor the most severe ones), each with at
 * most REPORT_CAUSE_ROWS groups and endpoints, and its rules when they
 * take at most REPORT_RULE_BYTES; the terminal summary the first
 * REPORT_TEXT_CAUSES_PER_SEV of each severity. The JSON has every cause.
 */
#define REPORT_CAUSES_PER_SEV	   25
#define REPORT_TEXT_CAUSES_PER_SEV 5
#define REPORT_CAUSE_ROWS	   20
#define REPORT_RULE_BYTES	   4096
/* JUnit: testcases of endpoints, the most telling first (differing, then
 * with errors, then by pairs); one testcase "N more endpoints" sums up the
 * others. */
#define REPORT_JUNIT_ENDPOINTS 1000

/* Counts the causes of each severity met so far (zero it to start). */
struct report_cause_pick {
	uint32_t seen[2][DIFF_SEV_COUNT]; /* [noise][severity] */
};

/* Whether @p rc, the next cause in diff_causes order, is listed under a
 * cap of @p per_sev causes per severity; counts it. */
bool report_cause_pick(struct report_cause_pick *p, const struct diff_rootcause *rc,
		       uint32_t per_sev);

/* How many real causes of @p cs (noise ones with @p noise) a listing of
 * @p per_sev per severity leaves out; accepts NULL. */
uint64_t report_causes_left_out(const struct diff_causes *cs, bool noise, uint32_t per_sev);

/* ---- the HTML section (report_causes.c) ---- */

/* Style and script the section needs, for report_html.c's <style>/<script>. */
extern const char report_causes_css[];
extern const char report_causes_js[];

/* Append the causes section of verdict @p v (element ids end with @p sfx). */
void report_html_causes(struct dbuf *b, const struct diff_cand *v, const char *sfx);

#endif
