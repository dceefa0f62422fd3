/* SPDX-License-Identifier: MIT */
/*
 * recorder - one capture run's recording, assembled in one place: color
 * rules, record-time redaction, the pipeline with its limits, the store
 * writer with the file's metadata (source, filter, rules, redactions,
 * host, start time) and, at the end, the trailer's counters.
 *
 * `dyetap record`, `dyetap mirror` (with or without -w) and every worker
 * of `dyetap-fastpath` open one, and the fast path's --shadow-out file is
 * a writer-only recorder, so every file dyetap writes while capturing
 * carries the same metadata, built by the same code (docs/format.md
 * "Metadata", docs/architecture.md "Recording").
 *
 *     recorder_open() -> (open the source) -> recorder_create_file() ->
 *     pipe_packet(recorder_pipe(r), ...) ... ->
 *     recorder_end_input() -> recorder_counters() + the caller's own ->
 *     recorder_close() -> recorder_free()
 *
 * Errors follow the project's rules: 0 or -errno, messages a user can act
 * on in a caller buffer, nothing printed. Thread-safety: a recorder is
 * used by one thread (the fast path opens one per worker); the rules may
 * be shared read-only between recorders.
 */
#ifndef DYETAP_CAPTURE_RECORDER_H
#define DYETAP_CAPTURE_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/pipeline.h"
#include "capture/source.h"
#include "common/counters.h"
#include "common/dbuf.h"
#include "store/store.h"

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

#define RECORDER_MAX_FILES 256 /**< -r files */
#define RECORDER_MAX_RULES 256 /**< --color and --redact rules each */

/**
 * The capture-side options `dyetap record` and `dyetap mirror` share (and
 * the fast path's --redact): input, color rules, redaction. Strings are
 * borrowed from the command line.
 */
struct recorder_conf {
	const char *files[RECORDER_MAX_FILES]; /**< -r, --read (repeatable) */
	size_t n_files;
	const char *iface;			/**< -i, --interface */
	int snaplen;				/**< --snaplen (0: the source's default) */
	int buffer_mb;				/**< --buffer-mb */
	bool promisc;				/**< --promisc */
	const char *colors[RECORDER_MAX_RULES]; /**< --color */
	size_t n_colors;
	const char *rules_file;			 /**< --rules */
	const char *redacts[RECORDER_MAX_RULES]; /**< --redact */
	size_t n_redacts;
	bool redact_defaults; /**< --redact-defaults */
	struct dbuf filter;   /**< the trailing BPF words, joined by spaces */
};

/** Empty options. */
void recorder_conf_init(struct recorder_conf *c);

/** Free what the options hold (the filter). */
void recorder_conf_release(struct recorder_conf *c);

/**
 * Apply the long option @p name (without dashes: read, interface, snaplen,
 * buffer-mb, promisc, color, rules, redact, redact-defaults) with @p arg
 * (NULL for flags; borrowed).
 * @return 1 handled, 0 not one of these, -EINVAL with a message in @p err.
 */
int recorder_conf_option(struct recorder_conf *c, const char *name, char *arg, char *err,
			 size_t errlen);

/** Join the trailing words @p argv[0 .. argc) as the BPF filter. @return 0 or -E2BIG. */
int recorder_conf_filter(struct recorder_conf *c, int argc, char **argv);

/**
 * Check the input: either files or an interface, and no input file that is
 * the output @p out (NULL: none) under any name (./x, a link).
 * @return 0 or -EINVAL with a message in @p err.
 */
int recorder_conf_check(const struct recorder_conf *c, const char *out, char *err, size_t errlen);

/** The source parameters of @p c (block_ms left 0: immediate mode). */
void recorder_conf_src(const struct recorder_conf *c, struct src_params *sp);

/* ------------------------------------------------------------------ */
/* The recorder                                                        */
/* ------------------------------------------------------------------ */

/** The pipeline's caps (0 everywhere: capture/pipeline.h's defaults). */
struct recorder_limits {
	uint32_t max_flows;	 /**< --max-flows */
	int64_t idle_timeout_ns; /**< --idle-timeout */
	size_t reasm_memcap;	 /**< --reasm-memcap */
	size_t txn_memcap;	 /**< --http-memcap */
	size_t txn_dormant_mem;	 /**< --http-sleep-mem (1 = always) */
	size_t max_body;	 /**< --max-body */
};

struct recorder_params {
	/**
	 * Color rules: @p rules, borrowed (read-only, may be shared by
	 * threads) for the recorder's life; or, when NULL, compiled here from
	 * the --color texts and the --rules file of @p conf, in that order.
	 */
	const struct rules *rules;
	/** Color rules (unless @p rules) and redaction rules, compiled per
	 *  recorder; NULL: no rules, no redaction. Borrowed during open. */
	const struct recorder_conf *conf;
	/** Also a second copy of the redaction rules for shadow responses
	 *  (recorder_redact_result(), recorder_result_counters()). */
	bool redact_results;
	bool drop_uncolored; /**< --uncolored drop */
	struct recorder_limits limits;
	/** Metadata: what is captured (e.g. from recorder_source()) and the BPF filter. */
	const char *source;
	const char *filter;
	/** The store file to create (replaced when it exists); NULL: none. */
	const char *path;
	const char *kind; /**< "recording" (the default) or "results" */
	int level;	  /**< zstd level; 0 = the store's default */
	bool background;  /**< compress frames on a helper thread (store_writer_params) */
	/** A writer only: no pipeline (records come from recorder_add_session/_result). */
	bool no_pipeline;
	/**
	 * Called for every session the pipeline keeps, after it is written
	 * (borrowed for the call). A negative return counts as a sink error.
	 */
	pipe_sink_fn on_session;
	/** pipe_params.on_request: each request at its last captured byte. */
	void (*on_request)(void *ctx, const struct store_session *s);
	void *ctx; /**< for both hooks */
};

struct recorder;

/**
 * Compile the rules and redactions and create the pipeline; the file is
 * created by recorder_create_file(), once the input is known to be good
 * (so a bad input never replaces an existing file). The strings of @p p
 * are borrowed until then.
 * @return 0 with the recorder in @p *out; -EINVAL with a message naming the
 *         option (a color rule, the rules file, a redaction rule); -ENOMEM.
 */
int recorder_open(const struct recorder_params *p, struct recorder **out, char *err, size_t errlen);

/**
 * Create the store file of recorder_params.path with its metadata (0 and
 * nothing done without a path or when it exists). Sessions the pipeline
 * keeps before it are not written. @return 0, -EIO with the writer's
 * message in @p err, -ENOMEM.
 */
int recorder_create_file(struct recorder *r, char *err, size_t errlen);

/** The pipeline to feed (pipe_packet(), pipe_advance()); NULL with no_pipeline. Borrowed. */
struct pipe *recorder_pipe(struct recorder *r);

/** The color rules in use (borrowed for the recorder's life). */
const struct rules *recorder_rules(const struct recorder *r);

/** True when a store file is written. */
bool recorder_has_file(const struct recorder *r);

/**
 * Time-based flush of the file's data frame (store_writer_tick()); 0
 * without a file. @return 0, or -EIO once the writer failed
 * (recorder_error() says why).
 */
int recorder_tick(struct recorder *r);

/**
 * Write a session or a shadow result (copied) to the file. A refused
 * record is counted (recorder_write_errors()). @return 0, -ENOENT without
 * a file, or the writer's error.
 */
int recorder_add_session(struct recorder *r, const struct store_session *s);
int recorder_add_result(struct recorder *r, const struct store_result *res);

/**
 * Redact shadow response @p in with the result rule set (redact_results):
 * @p out is a copy of @p in whose changed parts are valid until the next
 * call. Matches the shadow core's redaction hook (replay/shadow_core.h);
 * @p ctx is the recorder. @return 0 (also without rules: a plain copy) or
 * -ENOMEM (the result must not be kept: it could hold a secret).
 */
int recorder_redact_result(void *ctx, const struct store_result *in, struct store_result *out);

/** True when redaction rules are set (sessions and, with redact_results, results). */
bool recorder_redacts(const struct recorder *r);

/** End of input: close every connection and emit what is pending (pipe_finish()). */
void recorder_end_input(struct recorder *r);

/**
 * Append the capture counters to @p set: the source's (`src_`, when @p ss
 * is given), then the pipeline's (pipe_counters(): decode_, flow_, reasm_,
 * txn_, pipe_, redact_, lane_<name>_sessions). @return 0 or the set's error.
 */
int recorder_counters(const struct recorder *r, const struct src_stats *ss, struct ctr_set *set);

/**
 * With redact_results: append `<prefix>results_redacted`,
 * `..._redact_masked`, `..._redact_dropped` (nothing otherwise).
 */
int recorder_result_counters(const struct recorder *r, const char *prefix, struct ctr_set *set);

/** Records the file refused through recorder_add_session/_result. */
uint64_t recorder_write_errors(const struct recorder *r);

/**
 * Records made but not in the file. Before recorder_close(): the pipeline's
 * sink errors plus write errors so far. After it: the writer's count of
 * records not in the file (refused, or in frames whose write failed, e.g. a
 * full disk) plus sessions that could not be redacted.
 */
uint64_t recorder_lost(const struct recorder *r);

/** The writer's first error message ("" when none); valid until recorder_free(). */
const char *recorder_error(const struct recorder *r);

/**
 * Close the file with @p trailer as its counters (no file: nothing to do).
 * The pipeline stays readable until recorder_free().
 * @return 0, or -EIO with the message in @p err (the file is then cut;
 *         `dyetap info` reads it up to the cut).
 */
int recorder_close(struct recorder *r, const struct ctr_set *trailer, char *err, size_t errlen);

/** Free (a file not closed is left unfinished); accepts NULL. */
void recorder_free(struct recorder *r);

/**
 * Describe a capture source for the metadata: "@p prefix" followed by
 * "iface:NAME" or "pcap:FILE[,FILE...]". @return 0 or the buffer's error.
 */
int recorder_source(struct dbuf *b, const char *prefix, const struct src_params *sp);

/**
 * The counters of @p set as store counters (names borrowed from @p set),
 * for store_writer_close() and the reports; free with mem_free(). NULL
 * when out of memory; *n gets the count.
 */
struct store_counter *recorder_store_counters(const struct ctr_set *set, size_t *n);

#endif
