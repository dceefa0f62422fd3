/* SPDX-License-Identifier: MIT */
/*
 * diff - the analysis context: compare replayed (candidate) responses with
 * recorded production (primary) responses, learn noise from a second
 * known-good run (secondary), group differences by endpoint and
 * signature, and measure latency. docs/diff.md is the user
 * manual, docs/report.md the report schema.
 *
 * Use:
 *
 *     struct diff_ctx *c = diff_ctx_create(&params);
 *     diff_ctx_add(c, session, result, DIFF_ROLE_CANDIDATE);   // per pair
 *     diff_ctx_add(c, session, result2, DIFF_ROLE_SECONDARY);  // optional
 *     diff_ctx_add_counters(c, "capture", counters, n);        // accounting
 *     diff_ctx_finish(c);
 *     diff_ctx_gates(c, gates, n_gates, &tripped);
 *     report_json(c, &buf);   // analysis/report.h
 *     diff_ctx_free(c);
 *
 * or diff_ctx_add_file() to feed a whole results file (several files: the
 * shards of one recording are merged into one report).
 *
 * Verdicts: every candidate role (result.role: a replay target's role, a
 * mirror lane) is judged on its own, with its own summary, groups and
 * gates; results of role "secondary" only teach noise. The context's
 * summary adds every candidate's up.
 *
 * Nothing here calls replay: a diff can be re-run on saved results with
 * new rules.
 *
 * Memory is bounded by what is reported, not by the pairs read: groups
 * keep counts and a bottom-k sample of examples, endpoints keep latency
 * histograms of fixed resolution, pairs are counted by their set of
 * signatures; results files are paired as they are read (a session is
 * held only until its results have come, docs/format.md "result_lag").
 * Every cap is a diff_params field and is counted when hit.
 *
 * Thread-safety: one context per thread. With diff_params.threads > 1,
 * diff_ctx_add_file() reads and compares on that many threads, the
 * calling one and threads of its own; the report is the same for any
 * number of threads.
 */
#ifndef DYETAP_ANALYSIS_DIFF_H
#define DYETAP_ANALYSIS_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/noise.h"
#include "analysis/pb.h"
#include "store/store.h"

enum diff_role {
	DIFF_ROLE_CANDIDATE = 0, /**< the build under test */
	DIFF_ROLE_SECONDARY = 1, /**< a known-good answer, used to learn noise */
};

/** Difference kinds (names in docs/report.md). */
enum diff_kind {
	DIFF_K_STATUS = 0,  /**< "status_changed" */
	DIFF_K_VALUE,	    /**< "value_changed": header value, JSON scalar */
	DIFF_K_TYPE,	    /**< "type_changed": JSON type differs */
	DIFF_K_MISSING,	    /**< "missing": in primary, not in candidate */
	DIFF_K_EXTRA,	    /**< "extra": in candidate, not in primary */
	DIFF_K_TEXT,	    /**< "text_changed": non-JSON text body, line diff */
	DIFF_K_BINARY,	    /**< "binary_changed": length or hash differ */
	DIFF_K_NOT_JSON,    /**< "not_json": one side parses as JSON, the other not */
	DIFF_K_UNDECODABLE, /**< "undecodable": a content encoding failed to decode */
	DIFF_K_ORDER,	    /**< "order_changed": the same array elements in another order */
	DIFF_K_COUNT,
};

/** Stable name of @p kind. */
const char *diff_kind_name(unsigned kind);

/** Progress of diff_ctx_add_file(), for a progress line. */
struct diff_progress {
	const char *file;    /**< the file being read */
	uint64_t bytes_read; /**< compressed bytes of its frames read so far */
	uint64_t file_bytes; /**< its size */
	uint64_t pairs;	     /**< results read so far, every file */
	double elapsed_s;    /**< since the first file began */
};

/** Tunables; a zero field takes the default in brackets (docs/diff.md "Limits"). */
struct diff_params {
	const struct noise_rules *rules; /**< borrowed, must outlive the context; may be NULL */
	size_t max_body;		 /**< decoded body cap per side [16 MiB] */
	size_t max_example;		 /**< body bytes kept per example [4 KiB] */
	uint32_t max_findings;		 /**< differences kept per pair [64] */
	/**
	 * Memory for what the analysis keeps: difference groups and their
	 * examples, endpoints, latency histograms, the signature sets of pairs
	 * [256 MiB]. Past it a new group's or endpoint's pairs are counted
	 * under an overflow entry (a loss, counted; every pair is still
	 * compared), no example is kept (counted), and signature sets go to a
	 * temporary file.
	 */
	size_t max_memory;
	/** Sessions diff_ctx_add_file() holds until their results come [64 MiB]. */
	size_t max_window;
	/**
	 * With threads > 1: decoded content of the frames diff_ctx_add_file()
	 * reads ahead and holds until their pairs are compared [64 MiB]; no
	 * frame is taken past it, a frame larger than it alone is read alone
	 * (counted: frames_over_inflight).
	 */
	size_t max_inflight;
	uint32_t examples;	 /**< examples kept per difference group, 1..16 [3] */
	uint32_t max_groups;	 /**< difference groups per candidate [1 000 000] */
	uint32_t max_endpoints;	 /**< endpoints per candidate [65 536] */
	uint32_t threads;	 /**< threads comparing pairs in diff_ctx_add_file() [1] */
	double noise_ratio;	 /**< learned noise: real if cand >= ratio x sec [2.0] */
	double noise_delta;	 /**< ... and cand - sec >= delta [0.05] */
	bool no_default_ignores; /**< compare even the default ignored headers */
	bool no_volatile;	 /**< do not mark volatile-looking values as likely noise */
	/** gRPC message types (analysis/pb.h, `--proto`): borrowed, must
	 *  outlive the context; NULL decodes messages by field number */
	const struct pb_schema *proto;
	/**
	 * Redaction applied by diff_ctx_add_file() to every session and every
	 * result's response before it is compared or kept for a report: writes
	 * @p out (parts may point into memory of the redactor valid until its
	 * next call). 0 or -errno (the record is then not used, and counted).
	 * NULL: none. With threads > 1 it may be called on any of the
	 * threads, one call at a time, in file order.
	 */
	int (*redact)(void *redact_ctx, const struct store_session *in, struct store_session *out);
	void *redact_ctx;
	/** Called by diff_ctx_add_file() about every 250 ms while it reads (with
	 *  threads > 1 on any of the threads, one call at a time); may be NULL. */
	void (*progress)(void *progress_ctx, const struct diff_progress *p);
	void *progress_ctx;
};

struct diff_ctx;

/** Create a context; NULL on allocation failure. */
struct diff_ctx *diff_ctx_create(const struct diff_params *p);

/** Free a context; accepts NULL. */
void diff_ctx_free(struct diff_ctx *c);

/**
 * Compare result @p r (role @p role) against session @p s (primary), both
 * borrowed for the call only (what is kept is copied). Incomplete sessions
 * and replay errors are counted as such, not compared.
 * @return 0, -ENOMEM, -EINVAL (after diff_ctx_finish()).
 */
int diff_ctx_add(struct diff_ctx *c, const struct store_session *s, const struct store_result *r,
		 enum diff_role role);

/** Count a recorded session that no result refers to (not replayed), for
 *  every candidate. */
int diff_ctx_add_unreplayed(struct diff_ctx *c, const struct store_session *s);

/**
 * Declare candidate @p role (target URL @p target, may be NULL) so that it
 * gets a verdict even when no result of it arrives. @return 0, -ENOSPC (more
 * than 64 roles), -ENOMEM.
 */
int diff_ctx_add_candidate(struct diff_ctx *c, const char *role, const char *target);

/**
 * Add named counters (copied) from source @p source ("capture", "replay",
 * a file name). Each non-zero counter is classed (docs/report.md
 * "Accounting"): an exclusion (skipped_filter, skipped_shard,
 * skipped_writes, dropped_uncolored, ...: left out by choice, shown, never
 * incomplete), a loss (drops, gaps, untracked connections, memcaps,
 * damage, ...: every verdict is data_incomplete with the counter named),
 * a replay failure (err_*: named, and counted per candidate from its
 * results), or information. @return 0 or -ENOMEM.
 */
int diff_ctx_add_counters(struct diff_ctx *c, const char *source, const struct store_counter *v,
			  size_t n);

/** Mark the run incomplete with reason @p why (copied). @return 0 or -ENOMEM. */
int diff_ctx_note_incomplete(struct diff_ctx *c, const char *why);

/**
 * Read results file @p path (store format, kind "results") and add every
 * result: role "secondary" results (or all of them when @p as_secondary)
 * as secondary, the rest as candidate. Trailer counters and reader damage
 * are added as counters of source @p path.
 * @return 0 or -errno with a message in @p err.
 */
int diff_ctx_add_file(struct diff_ctx *c, const char *path, bool as_secondary, char *err,
		      size_t errlen);

/** Decide noise, compute rates and percentiles. Call once, before reports and gates. */
int diff_ctx_finish(struct diff_ctx *c);

/** A line shown in the reports' accounting (e.g. the scope of a shard). */
int diff_ctx_note_info(struct diff_ctx *c, const char *line);

/** Headline numbers (valid after diff_ctx_finish()). */
struct diff_summary {
	uint64_t results;	   /**< candidate results seen */
	uint64_t compared;	   /**< candidate pairs compared */
	uint64_t differing;	   /**< pairs with at least one real difference */
	uint64_t noisy_only;	   /**< pairs whose differences are all noise */
	uint64_t incomplete;	   /**< sessions not compared: incomplete capture */
	uint64_t replay_errors;	   /**< candidate results that are replay errors */
	uint64_t unreplayed;	   /**< sessions without a result */
	uint64_t cancelled;	   /**< sessions not compared: HTTP/2 streams their client
				    *   cancelled (store_session_client_cancelled()); no loss */
	uint64_t status_changes;   /**< pairs with a real status difference */
	uint64_t groups;	   /**< real difference groups */
	uint64_t noise_groups;	   /**< groups judged noise (learned or likely) */
	uint64_t causes;	   /**< real root causes (groups joined across endpoints) */
	uint64_t noise_causes;	   /**< root causes judged noise */
	uint64_t secondary_pairs;  /**< secondary pairs compared */
	uint64_t endpoints;	   /**< endpoints seen */
	uint64_t findings_dropped; /**< differences beyond max_findings per pair */
	uint64_t over_memcap;	   /**< sessions/results not kept because of caps */
	double diff_rate;	   /**< differing / compared (0 when nothing compared) */
	double p50_latency_ratio;  /**< candidate p50 / primary p50 over all pairs (0 = n/a) */
	double p99_latency_ratio;
	bool data_incomplete; /**< some data was missing: reports say so at the top */
	bool no_evidence;     /**< nothing was compared: every gate trips */
};

/** The summary of every candidate together (borrowed from the context). */
const struct diff_summary *diff_ctx_summary(const struct diff_ctx *c);

/** Number of verdicts (candidate roles; at least 1 after diff_ctx_finish()). */
size_t diff_ctx_n_candidates(const struct diff_ctx *c);

/** Role of verdict @p i ("candidate", "v2", a lane); borrowed. */
const char *diff_ctx_candidate_role(const struct diff_ctx *c, size_t i);

/** Summary of verdict @p i (borrowed). */
const struct diff_summary *diff_ctx_candidate_summary(const struct diff_ctx *c, size_t i);

/* ------------------------------------------------------------------ */
/* Gates                                                               */
/* ------------------------------------------------------------------ */

enum diff_gate_op { DIFF_OP_GT, DIFF_OP_GE, DIFF_OP_LT, DIFF_OP_LE, DIFF_OP_EQ, DIFF_OP_NE };

/** A parsed `--fail-on` expression: METRIC OP NUMBER[%]. */
struct diff_gate {
	char metric[48];
	enum diff_gate_op op;
	double threshold; /**< a trailing % is divided by 100 */
	char text[128];	  /**< the expression as written */
};

/**
 * Parse @p expr ("diff_rate>0.1%", "status_changes>0", "p99_latency_ratio>1.2").
 * @return 0 or -EINVAL with a message naming the known metrics in @p err.
 */
int diff_gate_parse(struct diff_gate *g, const char *expr, char *err, size_t errlen);

/**
 * Evaluate gate @p g on verdict @p cand of a finished context: true when it
 * trips. @p value receives the metric's value. A verdict that compared no
 * pair trips every gate (fail closed: "no evidence"); *no_evidence (may be
 * NULL) says so.
 */
bool diff_gate_eval(const struct diff_ctx *c, size_t cand, const struct diff_gate *g, double *value,
		    bool *no_evidence);

/**
 * Evaluate gates @p g[0..n) on every verdict and record the outcomes for
 * the reports. *tripped: any gate tripped on any verdict.
 * @return 0 or -ENOMEM.
 */
int diff_ctx_gates(struct diff_ctx *c, const struct diff_gate *g, size_t n, bool *tripped);

/** Names of the gate metrics, NULL-terminated, and one help line each. */
extern const char *const diff_gate_metrics[];
extern const char *const diff_gate_metric_help[];

#endif
