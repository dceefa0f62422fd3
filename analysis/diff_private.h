/* SPDX-License-Identifier: MIT */
/*
 * diff_private - internals of the analysis module shared by its files
 * (pair engine, context, reports). Not a public contract.
 */
#ifndef DYETAP_ANALYSIS_DIFF_PRIVATE_H
#define DYETAP_ANALYSIS_DIFF_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/diff.h"
#include "analysis/json.h"
#include "analysis/noise.h"
#include "common/dbuf.h"
#include "common/log.h"
#include "store/store.h"

#define DIFF_LOG(lvl, ...) LOG_MSG(lvl, "diff", __VA_ARGS__)

#define DIFF_LOC_MAX  256 /* bytes of a location string */
#define DIFF_VAL_MAX  512 /* bytes of a value shown in a finding */
#define DIFF_MAX_HDRS 128 /* headers per message looked at */

/* ---- content decoding (diff_decode.c) ---- */

/**
 * Decode @p in[0..n) per Content-Encoding list @p enc (e.g. "gzip", "br",
 * "gzip, zstd"), last-applied first, into @p out (reset first; its max is
 * the cap). @return 0, -ENOTSUP unknown encoding, -EBADMSG corrupt,
 * -E2BIG over the cap, -ENOMEM.
 */
int diff_decode(const char *enc, size_t enclen, const uint8_t *in, size_t n, struct dbuf *out,
		struct dbuf *tmp);

/* ---- one pair (diff_pair.c) ---- */

/** One difference found in one pair. Values are copied, capped. */
struct diff_finding {
	uint8_t kind;		 /* enum diff_kind */
	bool vol;		 /* both values look volatile (timestamp, uuid, random hex) */
	char loc[DIFF_LOC_MAX];	 /* array elements as [*] (docs/report.md "Locations") */
	char iloc[DIFF_LOC_MAX]; /* the element's own location ($[3].id), "" when it is loc */
	char pval[DIFF_VAL_MAX]; /* primary side, shown in examples */
	char cval[DIFF_VAL_MAX];
};

/** Rules that apply to one endpoint, resolved once. */
struct diff_ruleset {
	const struct noise_rule **v;
	size_t n;
	uint64_t *hits; /* per rule of the whole rules list, owned by the context */
	const struct noise_rules *all;
	bool has_path_rules; /* any ignore/tolerance/unordered/key rule */
	bool has_body_masks;
	bool ignore_status; /* any ignore status rule (of every change or of one) */
};

/** Is a status change @p from -> @p to (HTTP's, or gRPC's grpc-status
 *  code) ignored by @p rs's rules? A hit is counted on the rule. */
bool diff_status_ignored(const struct diff_ruleset *rs, int from, int to);

/** Reusable per-thread comparison state. */
struct diff_engine {
	struct diff_params p;
	struct json_doc ja, jb;
	struct dbuf dec_a, dec_b, tmp, marks, mask_a, mask_b, scratch, hva, hvb, hbin;
	struct diff_finding *f; /* max_findings entries */
	uint32_t nf;
	uint64_t dropped; /* findings over the cap, total */
	const struct diff_ruleset *rs;
	/* JSON walk */
	struct noise_pos pos[64 + 2];
	size_t npos;
	size_t budget; /* element comparisons left for this pair (bounds unordered arrays) */
	uint8_t *mark; /* per node of jb: matched */
	size_t mark_cap;
	/* gRPC: messages as JSON (pb.h), and the request of the pair being
	 * compared (its :path names the method), borrowed for the call */
	struct dbuf pb_a, pb_b;
	const struct store_message *req;
	/* gRPC bodies: locations read $.4[*].7 (field numbers after '.', the
	 * elements of repeated fields as [*]) */
	bool grpc_paths;
	/* a side of the gRPC pair is a Trailers-Only answer
	 * (no message; bit 0 the primary, bit 1 the candidate): the
	 * message-encoding fields only a response with a message has are
	 * not reported missing from it (compare_headers) */
	uint8_t grpc_trailers_only;
	/* the authority (host[:port]) the recording's client addressed and the
	 * one the replay sent the pair to, borrowed for the call (either empty:
	 * none): a value that differs only by one for the other is the same
	 * (auth_equal(): a Location or a self link naming the server) */
	struct store_slice auth_p, auth_c;
};

int diff_engine_init(struct diff_engine *e, const struct diff_params *p);
void diff_engine_release(struct diff_engine *e);

/** Compare two responses; findings in e->f[0..e->nf). @return 0 or -ENOMEM. */
int diff_engine_compare(struct diff_engine *e, const struct diff_ruleset *rs,
			const struct store_message *prim, const struct store_message *cand);

/** Compare two bodies of content type @p ct (may be NULL): JSON, text or binary. */
int diff_engine_body(struct diff_engine *e, const char *ct, size_t ctlen, const uint8_t *a,
		     size_t alen, const uint8_t *b, size_t blen);

/** Longest value diff_looks_volatile() may judge volatile. */
#define DIFF_VOLATILE_MAX 256

/** True when @p s[0..n) (8 to DIFF_VOLATILE_MAX characters, JSON quotes
 * aside) looks like a volatile value (timestamp, uuid, random hex/token). */
bool diff_looks_volatile(const char *s, size_t n);

/** Header value lookup: first header named @p name (case-insensitive). */
const struct store_header *diff_find_header(const struct store_message *m, const char *name);
/** A field of @p m by name, case-insensitive: its trailer fields first, then
 *  its headers (gRPC's grpc-status: trailers, or a Trailers-Only block). */
const struct store_header *diff_find_field(const struct store_message *m, const char *name);

/**
 * Mask a sensitive header value for display: Authorization and
 * Proxy-Authorization keep their scheme, Cookie keeps names, Set-Cookie
 * keeps the name and attributes. Other headers are copied. @p lname is
 * lower-case. Writes a NUL-terminated string, returns its length.
 */
size_t diff_mask_header_value(const char *lname, size_t nlen, const uint8_t *v, size_t vlen,
			      char *out, size_t cap);

/** True when a header (lower-case @p name) is in the default ignore list. */
bool diff_default_ignored(const char *name, size_t n);

/* ---- latency histograms (diff_hist.c) ---- */

#define DIFF_HIST_OCTAVES 60

/* A log-linear histogram of nanosecond values (32 buckets per power of
 * two with their counts and sums, allocated on first use); merges by
 * adding. */
struct diff_hist {
	uint64_t n;   /* values counted */
	uint64_t min; /* smallest and largest value counted */
	uint64_t max;
	uint64_t lost; /* values not counted: no memory for their bucket */
	uint64_t *oct[DIFF_HIST_OCTAVES];
};

/* Count @p v. Returns the bytes newly allocated (0 or 512). */
size_t diff_hist_add(struct diff_hist *h, uint64_t v);
/* Add @p src's counts to @p dst. Returns the bytes newly allocated. */
size_t diff_hist_merge(struct diff_hist *dst, const struct diff_hist *src);
/* Nearest-rank percentile @p q (0..1), within 1/32 of the exact one; 0 when empty. */
uint64_t diff_hist_pct(const struct diff_hist *h, double q);
/* Bytes held by the buckets. */
size_t diff_hist_bytes(const struct diff_hist *h);
/* Call @p fn for every non-empty bucket in increasing order. */
void diff_hist_each(const struct diff_hist *h,
		    void (*fn)(void *arg, uint64_t lo, uint64_t width, uint64_t count), void *arg);
void diff_hist_release(struct diff_hist *h);

/* ---- the context (diff_ctx.c) and its aggregates (diff_agg.c) ---- */

struct diff_example {
	uint64_t session_id;
	uint64_t key;  /* diff_example_key(session_id): the smallest keys are kept */
	char *request; /* rendered, masked, capped; owned */
	char *primary;
	char *candidate;
	size_t bytes;		 /* memory held, for the memory cap */
	char iloc[DIFF_LOC_MAX]; /* the finding's own location, "" when it is the group's */
	char pval[DIFF_VAL_MAX];
	char cval[DIFF_VAL_MAX];
};

enum diff_noise { DIFF_NOISE_NONE = 0, DIFF_NOISE_LEARNED = 1, DIFF_NOISE_VOLATILE = 2 };

struct diff_group {
	uint32_t endpoint;
	uint8_t kind;
	uint8_t noise;	 /* enum diff_noise, decided by diff_ctx_finish() */
	uint8_t n_ex;	 /* examples kept (at most diff_params.examples) */
	bool pmixed;	 /* its findings showed different patterns (diff_group_pattern) */
	char *location;	 /* owned */
	char *tr;	 /* owned: the transition it is keyed on ("200 -> 404"), NULL none */
	uint64_t phash;	 /* hash of its findings' pattern while one; 0 none seen */
	uint64_t count;	 /* candidate pairs with this signature */
	uint64_t sec;	 /* secondary pairs with this signature */
	uint64_t vol;	 /* of count: findings whose values looked volatile */
	double rate;	 /* count / endpoint compared */
	double sec_rate; /* location-level secondary rate used for learning */
	double loc_rate; /* location-level candidate rate */
	struct diff_example *ex; /* n_ex entries by increasing key (a bottom-k sample); owned */
	uint64_t hash;
	uint32_t hnext; /* chain, index + 1 */
};

struct diff_endpoint {
	char *name; /* "GET /users/{id}", owned */
	uint64_t hash;
	uint32_t hnext;
	uint64_t pairs;	     /* candidate pairs compared */
	uint64_t differing;  /* pairs with a real difference (finish) */
	uint64_t status_chg; /* pairs with a real status difference (finish) */
	uint64_t sec_pairs;
	uint64_t incomplete;
	uint64_t errors;
	uint64_t unreplayed;
	uint64_t cancelled; /* HTTP/2 streams their client cancelled (no loss) */
	struct diff_hist lat_p, lat_c;
	uint64_t p50_p, p99_p, p50_c, p99_c; /* ns, finish */
	struct diff_ruleset rs;
};

/*
 * The signature sets of the compared pairs: each distinct set of groups a
 * pair showed, with how many pairs showed it. Whether a pair differs for
 * real depends on noise decided at the end, so pairs are counted by their
 * set, not kept: memory grows with distinct sets, not pairs. A set that
 * finds no room under the memory cap is written to a temporary file
 * (`spill`) and read back at the end, so the counts stay exact.
 */
struct diff_combo {
	uint64_t hash;
	uint64_t count;
	uint32_t off; /* into ids */
	uint16_t n;   /* 0: empty slot */
};

struct diff_combos {
	struct diff_combo *t; /* open addressing, cap a power of two */
	size_t cap, n;
	uint32_t *ids; /* group indices of each set, increasing */
	size_t n_ids, cap_ids;
	int spill_fd;	  /* -1: none yet */
	uint64_t spilled; /* pairs whose set went to the file */
};

/* What a counter's non-zero value means for the verdict (docs/report.md). */
enum diff_ctr_class {
	DIFF_CTR_INFO = 0,	/* a fact: shown in the accounting only */
	DIFF_CTR_EXCLUSION = 1, /* left out by choice (filter, shard, lane, refused write) */
	DIFF_CTR_LOSS = 2,	/* data lost: every verdict is data_incomplete */
	DIFF_CTR_RESULT = 3,	/* replay failures, also counted per candidate from its results */
};

struct diff_counter {
	char *source;
	char *name;
	uint64_t value;
	uint8_t cls;  /* enum diff_ctr_class (of a non-zero value) */
	bool loss;    /* cls == DIFF_CTR_LOSS or DIFF_CTR_RESULT and value != 0 */
	bool covered; /* an exclusion that other merged inputs cover (skipped_shard) */
};

struct diff_gate_result {
	struct diff_gate g;
	uint32_t cand; /* index into ctx->cand */
	double value;
	bool tripped;
	bool no_evidence; /* tripped because nothing was compared */
};

/* One replay error cause: kind and message, with its count. */
#define DIFF_CAUSE_MSG	160
#define DIFF_MAX_CAUSES 32
struct diff_cause {
	uint8_t kind;
	char msg[DIFF_CAUSE_MSG];
	uint64_t n;
};

/* Direct-mapped cache: raw "METHOD path" -> endpoint, skips templating. */
#define DIFF_EP_CACHE	  256
#define DIFF_EP_CACHE_KEY 118
struct diff_ep_cache {
	uint64_t h;
	uint32_t ep; /* index + 1; 0 = empty */
	uint16_t len;
	char key[DIFF_EP_CACHE_KEY];
};

/* Most candidate roles in one analysis (replay targets, mirror lanes). */
#define DIFF_MAX_CANDIDATES 64

/*
 * One verdict: the pairs of one candidate role (a replay target, a mirror
 * lane) against the primary, or the secondary's pairs that teach noise.
 */
/* diff_cand.caps_hit */
#define DIFF_CAP_GROUPS	   1u /* --max-groups */
#define DIFF_CAP_ENDPOINTS 2u /* --max-endpoints */
#define DIFF_CAP_MEMORY	   4u /* --max-memory */

struct diff_cand {
	char *role;   /* owned */
	char *target; /* first target URL seen, owned, NULL when unknown */
	bool secondary;
	struct diff_ep_cache epc[DIFF_EP_CACHE];

	struct diff_endpoint *ep;
	size_t n_ep, cap_ep;
	size_t n_ep_capped; /* of n_ep, those under --max-endpoints: all but DIFF_EP_OVER */
	uint32_t *ep_hash;  /* buckets, index + 1 */
	size_t ep_buckets;

	struct diff_group *gr;
	size_t n_gr, cap_gr;
	size_t n_gr_capped; /* of n_gr, those under --max-groups: all but DIFF_LOC_OVER's */
	uint8_t caps_hit;   /* DIFF_CAP_*: the caps that refused an entry */
	uint32_t *gr_hash;
	size_t gr_buckets;

	struct diff_combos combos;

	uint64_t incomplete_by_flag[STORE_F_COUNT];
	uint64_t incomplete_cand_trunc;
	uint64_t incomplete_rec_trunc; /* primary bodies cut at record time (--max-body) */
	uint64_t incomplete_req_cut;   /* requests the capture cut, not sent (skipped_truncated) */
	uint64_t errors_by_kind[STORE_ERR_COUNT];
	struct diff_cause causes[DIFF_MAX_CAUSES];
	size_t n_causes;
	uint64_t causes_other; /* errors whose cause did not fit the table */

	struct diff_hist all_p, all_c;
	uint64_t p50_p, p99_p, p50_c, p99_c;
	struct diff_summary sum;
	/* caps hit (docs/diff.md "Limits") */
	uint64_t groups_dropped;    /* findings whose new group found no room */
	uint64_t endpoints_dropped; /* pairs whose new endpoint found no room */
	uint64_t examples_not_kept; /* examples not kept under the memory cap */
	struct diff_causes *roots;  /* root causes (diff_causes.h), built by finish; owned */
};

/* The recording a results file replayed (chain of custody, docs/format.md). */
struct diff_origin {
	char *id;   /* recording id (hex), owned, "" when the file has none */
	char *file; /* its file name, owned */
	int64_t first_ns, last_ns;
	uint64_t sessions;
	char *state; /* "complete", "unfinished", "cut", "damaged", owned */
};

/* A results file's shard of its recording. */
struct diff_shard {
	uint32_t k, n;
	uint64_t *sessions; /* sessions of each shard 0..n-1, owned; NULL unknown */
	char *input;	    /* the file */
};

/*
 * Where compared pairs are counted: the context's own aggregates (pairs
 * added by diff_ctx_add(), or by diff_ctx_add_file() with one thread) or
 * a worker thread's (diff_work.c), merged into the context's by
 * diff_ctx_finish(). Every aggregate is a sum, a bottom-k sample or a
 * histogram, so the merge does not depend on which thread saw which pair.
 */
struct diff_part {
	struct diff_ctx *ctx;
	struct diff_engine *eng;
	uint64_t *rule_hits;	 /* per rule of ctx->p.rules */
	struct diff_cand **cand; /* DIFF_MAX_CANDIDATES slots, by the context's index */
	struct diff_cand **sec;
	bool uncapped; /* merging: memory moves, it does not grow */
};

struct diff_pool;

struct diff_ctx {
	struct diff_params p;
	struct diff_engine eng;
	bool finished;
	uint64_t *rule_hits; /* per rule of p.rules */
	struct diff_ruleset global_rs;
	struct diff_part part;	 /* the context's own aggregates */
	struct diff_pool *pool;	 /* comparing threads (p.threads > 1), started by add_file */
	_Atomic size_t mem;	 /* bytes of aggregates held, against p.max_memory */
	uint64_t window_early;	 /* sessions closed by the window cap before the file said so */
	uint64_t window_orphans; /* results whose session had been closed early */
	uint64_t window_peak;	 /* most bytes of sessions held at once */
	uint64_t frames_over_inflight; /* frames larger than p.max_inflight, read alone */
	uint64_t pairs_read;	       /* results read by diff_ctx_add_file(), for progress */
	int64_t t0;		       /* monotonic ns of the first file */

	struct diff_cand *cand[DIFF_MAX_CANDIDATES]; /* the verdicts, in order of appearance */
	size_t n_cand;
	struct diff_cand *sec;	  /* secondary pairs (noise learning); NULL when none */
	uint64_t over_candidates; /* results of roles beyond DIFF_MAX_CANDIDATES */

	struct diff_counter *ctr;
	size_t n_ctr;
	char **notes; /* incomplete reasons shared by every verdict */
	size_t n_notes;
	char **infos; /* lines shown with the accounting (scope, merged shards) */
	size_t n_infos;
	struct diff_gate_result *gates;
	size_t n_gates;
	char **inputs; /* file names fed in */
	size_t n_inputs;
	struct diff_origin *origins;
	size_t n_origins;
	struct diff_shard *shards;
	size_t n_shards;
	uint64_t shard_unreplayed; /* sessions of shards missing from a merge */
	bool shard_merge;	   /* several shard files of one recording were given */

	/* every candidate together (diff_ctx_summary()) */
	struct diff_hist all_p, all_c;
	uint64_t p50_p, p99_p, p50_c, p99_c;
	struct diff_summary sum;
};

/* ---- aggregates (diff_agg.c) ---- */

/* A new, empty aggregate for @p role (copied). NULL on allocation failure. */
struct diff_cand *diff_cand_new(const char *role, size_t rlen, bool secondary);
void diff_cand_free(struct diff_cand *v);

/* Endpoint of session @p s in @p v (created when new). 0, -ENOSPC (a cap:
 * counted), -ENOMEM. */
int diff_endpoint_of(struct diff_part *pt, struct diff_cand *v, const struct store_session *s,
		     uint32_t *ep);

/*
 * Names of the overflow entries: past --max-endpoints or --max-memory a
 * new endpoint's pairs are counted under DIFF_EP_OVER, past --max-groups
 * or --max-memory a new group's findings under (endpoint, kind,
 * DIFF_LOC_OVER); both made past the caps, counted as losses, never noise.
 */
#define DIFF_EP_OVER  "(endpoints over the cap)"
#define DIFF_LOC_OVER "(differences over the cap)"

/* Endpoint named @p name of @p v (created when new): 0; 1 when a cap
 * refused it and *out is the overflow endpoint (@p weight counted in
 * endpoints_dropped and over_memcap); -ENOMEM. */
int diff_endpoint_get(struct diff_part *pt, struct diff_cand *v, const char *name, size_t n,
		      uint32_t *out, uint64_t weight);

/* Endpoint @p name of @p v, or -1. */
long diff_endpoint_find(const struct diff_cand *v, const char *name);

/* Group (ep, kind, loc, tr) of @p v (@p tr NULL or "": none), or NULL. */
const struct diff_group *diff_group_find(const struct diff_cand *v, uint32_t ep, uint8_t kind,
					 const char *loc, const char *tr);

/* Rebuild @p v's hash chains after its endpoints were renumbered. */
void diff_cand_rehash(struct diff_cand *v);

/*
 * Compare complete pair (@p s, @p r) and count it in @p v (candidate, or
 * the secondary when v->secondary): groups, examples, latency, signature
 * sets. 0 or -ENOMEM.
 */
int diff_part_compare(struct diff_part *pt, struct diff_cand *v, const struct store_session *s,
		      const struct store_result *r);

/* Add @p src's counts into @p dst (same role), then free @p src's contents.
 * 0 or -ENOMEM. */
int diff_cand_merge(struct diff_part *dst_pt, struct diff_cand *dst, struct diff_cand *src);

/* Evaluate @p v's signature sets once noise is decided: differing,
 * noisy_only and status changes, per endpoint and in v->sum. */
int diff_cand_count_pairs(struct diff_cand *v);

/* Reserve @p n bytes of aggregate memory: false over the cap. */
bool diff_mem_take(struct diff_part *pt, size_t n);
void diff_mem_give(struct diff_part *pt, size_t n);

/* ---- comparing threads (diff_work.c) ---- */

/* Deep copies of a record into one block of the size given (8-aligned). */
size_t diff_session_size(const struct store_session *s);
struct store_session *diff_session_copy(void *dst, const struct store_session *s);
size_t diff_result_size(const struct store_result *r);
struct store_result *diff_result_copy(void *dst, const struct store_result *r);

/* A pool of @p n threads decoding frames and comparing pairs for @p c:
 * the thread that calls diff_pool_read() and @p n - 1 started here. NULL
 * on failure. */
struct diff_pool *diff_pool_create(struct diff_ctx *c, unsigned n);

/* Pair the records of frame @p fr, settled, in file order: called by one
 * thread at a time (any of the pool's). 0 or -ENOMEM. */
typedef int (*diff_pool_pair_fn)(void *arg, struct store_frame *fr);

/*
 * Read @p r with the pool: its frames are taken, decoded, settled
 * (store_reader_settle()) and given to @p fn in file order, and the pairs
 * @p fn queues are compared, on the calling thread and the pool's. Returns
 * once every frame is paired (not yet compared: diff_pool_drain()): 0, or
 * -ENOMEM, @p fn's or a thread's first error.
 */
int diff_pool_read(struct diff_pool *pl, struct store_reader *r, diff_pool_pair_fn fn, void *arg);

/*
 * Queue pair (@p s, @p r) of candidate @p ci (or the secondary) of the
 * frame being paired (from diff_pool_pair_fn). Both are borrowed until the frame and every older
 * one are compared: @p s in the frame or a block given to
 * diff_pool_defer(), @p r in the frame unless @p copy (then it is copied).
 * 0 or -ENOMEM.
 */
int diff_pool_add(struct diff_pool *pl, const struct store_session *s, const struct store_result *r,
		  size_t ci, bool secondary, bool copy);

/* Free @p block (mem_alloc) once every pair queued so far is compared.
 * 0, or -ENOMEM: then the run fails, no pair is compared any more, and
 * the block is freed once the compares under way are over. */
int diff_pool_defer(struct diff_pool *pl, void *block);

/* Wait until every queued pair is compared and every frame is retired
 * (the end of a file). 0 or a thread's first error. */
int diff_pool_drain(struct diff_pool *pl);

/* Drain, stop the threads and merge their aggregates into the context's
 * (in thread order). 0 or the first error. Frees @p pl. */
int diff_pool_finish(struct diff_pool *pl);

/* The candidate for @p role (created when new), or NULL over the cap or out of memory. */
struct diff_cand *diff_ctx_cand(struct diff_ctx *c, const char *role, size_t rlen,
				const char *target, size_t tlen, bool secondary);

/* Count session @p s as not replayed by candidate @p i. */
int diff_ctx_add_unreplayed_to(struct diff_ctx *c, size_t i, const struct store_session *s);

/* "fail" (a gate tripped), "no_evidence" (nothing compared), "incomplete",
 * "differences" (real ones, no gate tripped) or "pass", for verdict @p i. */
const char *diff_cand_verdict(const struct diff_ctx *c, size_t i);

/* What an exclusion counter left out, for the reports ("" when unknown). */
const char *diff_exclusion_meaning(const char *name);

/* One line per recording replayed (chain of custody), "" when unknown. */
int diff_ctx_custody(const struct diff_ctx *c, struct dbuf *out);

/* Class of counter @p name (with a non-zero value). */
enum diff_ctr_class diff_counter_class(const char *name);

/* Why verdict @p v is incomplete: its own reasons, then the shared ones. */
int diff_cand_reasons(const struct diff_ctx *c, const struct diff_cand *v, struct dbuf *out);

/* Is verdict @p v data-incomplete (its own data or a shared loss)? */
bool diff_cand_incomplete(const struct diff_ctx *c, const struct diff_cand *v);

/*
 * Indices of @p v's groups seen on candidate pairs, real ones first, then
 * by count (descending), endpoint and location. *out is owned by the caller
 * (mem_free). @return the number, or 0 with *out NULL on allocation failure.
 */
size_t diff_cand_sorted_groups(const struct diff_cand *v, uint32_t **out);

/** Add a file name to the list of inputs shown in reports. */
int diff_ctx_add_input(struct diff_ctx *c, const char *name);

/** Why the data is incomplete, one reason per line (empty when complete): the
 *  shared reasons, then each verdict's own (prefixed by its role when there
 *  are several). */
int diff_ctx_reasons(const struct diff_ctx *c, struct dbuf *out);

/** Stable names of session flag bit numbers and replay error kinds (docs/format.md). */
const char *diff_flag_name(unsigned bit);
const char *diff_error_name(unsigned kind);

/** Percentile @p q (0..1) of sorted samples; 0 when empty. */
uint64_t diff_percentile(const uint64_t *v, size_t n, double q);

/** Count pair (@p s, @p r) that is not compared (incomplete capture, a
 *  replay error) in the context's aggregates. Returns 1 when it was such a
 *  pair (accounted), 0 when it must be compared, -ENOMEM. */
int diff_ctx_account(struct diff_ctx *c, struct diff_cand *v, const struct store_session *s,
		     const struct store_result *r);

/** Count @p n sessions of endpoint @p ep (a name) as not replayed by candidate @p i. */
int diff_ctx_add_unreplayed_ep(struct diff_ctx *c, size_t i, const char *ep, uint64_t n);

#endif
