/* SPDX-License-Identifier: MIT */
/*
 * store - the session file format (.dyt): public contract.
 *
 * A store file is a sequence of zstd frames: a skippable header frame with
 * the capture metadata, data frames holding batches of msgpack records, and
 * a skippable index/trailer frame at the end. The byte-level specification
 * is docs/format.md; this header is the C API over it.
 *
 * Recordings (sessions captured from traffic) and replay results use the
 * same format and the same reader: a results file holds session records
 * (the recorded request and production response) followed by the result
 * records that refer to them by session id, so it is self-contained.
 *
 * Errors: int functions return 0 or -errno; constructors
 * return NULL and fill a caller buffer with a message a user can act on.
 * Thread-safety: a writer or reader is used by one thread at a time.
 */
#ifndef DYETAP_STORE_STORE_H
#define DYETAP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/dbuf.h"

/** Current on-disk format version written into the header frame. */
#define STORE_FORMAT_VERSION 1
/**
 * Newest record schema version this library reads (key "v" of every
 * record). Writers put 1 on HTTP/1.x records and 2 on records that hold
 * HTTP/2 (docs/format.md §2 "Versions"), so files of HTTP/1.x traffic stay
 * readable by version-1 readers and those readers skip HTTP/2 records.
 */
#define STORE_SCHEMA_VERSION 2
/** Schema version of records with an HTTP/2 session or response. */
#define STORE_SCHEMA_VERSION_H2 2

/** A byte range. In records handed out by the reader it is borrowed. */
struct store_slice {
	const uint8_t *ptr;
	size_t len;
};

/** One header line, kept in wire order and case; duplicates kept. */
struct store_header {
	struct store_slice name;
	struct store_slice value;
};

/** Session completeness flags (bit values are part of the format). */
enum store_flag {
	STORE_F_GAP = 1u << 0,		 /**< a TCP gap (lost bytes) touched this session */
	STORE_F_MIDSTREAM = 1u << 1,	 /**< connection picked up without its handshake */
	STORE_F_NO_RESPONSE = 1u << 2,	 /**< the request got no response before the end */
	STORE_F_PARSE_ERROR = 1u << 3,	 /**< HTTP parse error in this session */
	STORE_F_TUNNEL = 1u << 4,	 /**< CONNECT or Upgrade/101: parsing stopped after */
	STORE_F_INCOMPLETE = 1u << 5,	 /**< a message ended before its last byte (close, RST) */
	STORE_F_RESET = 1u << 6,	 /**< the connection was reset during this session */
	STORE_F_REDACTED = 1u << 7,	 /**< values were masked or dropped at record time */
	STORE_F_GOAWAY = 1u << 8,	 /**< HTTP/2: a GOAWAY ended the connection before this
					  *   stream finished (or announced it unprocessed) */
	STORE_F_NO_REQUEST = 1u << 9,	 /**< a response no captured request matches (the other
					  *   flags say why: gap, midstream, parse_error; none:
					  *   the server sent it unasked) */
	STORE_F_HTTP09 = 1u << 10,	 /**< an HTTP/0.9 exchange: a request line without
					  *   version, answered by a bare body until close */
	STORE_F_SERVER_RESET = 1u << 11, /**< HTTP/2: the server reset the stream
					  *   (RST_STREAM from it), with reset */
};
#define STORE_F_COUNT 12

/** Application protocol of a session (values are part of the format). */
enum store_proto {
	STORE_PROTO_HTTP1 = 0, /**< HTTP/1.x: key "proto" absent */
	STORE_PROTO_H2C = 1,   /**< HTTP/2 over cleartext TCP (h2c); a session is one stream */
};

/** Stable name of @p proto ("http/1.1", "h2c"), or NULL. */
const char *store_proto_name(uint32_t proto);

/** Stable lower-case name of flag bit @p bit (one of enum store_flag), or NULL. */
const char *store_flag_name(uint32_t bit);

/**
 * An HTTP request or response as recorded or received. For HTTP/2 the
 * headers hold the decoded field lines in wire order, pseudo-header fields
 * (":method", ":path", ":authority", ":scheme", ":status") included;
 * method, target and status repeat their values; version is 2.0.
 */
struct store_message {
	bool present;		   /**< false: no such message (e.g. no response) */
	struct store_slice method; /**< request only */
	struct store_slice target; /**< request only: request-target as on the wire */
	uint16_t status;	   /**< response only */
	struct store_slice reason; /**< response only */
	uint8_t version_major;	   /**< 1 for HTTP/1.x, 0 for HTTP/0.9 */
	uint8_t version_minor;
	const struct store_header *headers; /**< n_headers entries, wire order */
	size_t n_headers;
	struct store_slice body; /**< stored body bytes (after de-chunking, <= cap) */
	uint64_t body_len;	 /**< full body length seen after de-chunking */
	bool truncated;		 /**< body.len < body_len because of the cap */
	/** Trailer fields (HTTP/2 trailing HEADERS, e.g. grpc-status), wire order. */
	const struct store_header *trailers;
	size_t n_trailers;
};

/** One transport endpoint. IPv4 addresses use the first 4 bytes of addr. */
struct store_endpoint {
	uint8_t addr[16];
	uint16_t port;
};

/** A recorded HTTP transaction and the connection it rode on. */
struct store_session {
	uint64_t id;		   /**< unique within the file, increasing */
	uint8_t ip_version;	   /**< 4 or 6 */
	struct store_endpoint src; /**< client */
	struct store_endpoint dst; /**< server */
	uint16_t vlan;		   /**< outermost VLAN id, 0 when untagged */
	struct store_slice lane;   /**< color; empty = uncolored (baseline lane) */
	uint64_t conn_id;	   /**< connection id, unique within the file */
	uint32_t conn_index;	   /**< 0-based position of this transaction in its connection */
	int64_t ts_req_first_ns;   /**< Unix-epoch ns of the request's first byte */
	int64_t ts_req_last_ns;
	int64_t ts_resp_first_ns; /**< 0 when there is no response */
	int64_t ts_resp_last_ns;
	struct store_message req;
	struct store_message resp;
	uint32_t flags;	     /**< enum store_flag bits */
	uint8_t proto;	     /**< enum store_proto */
	uint32_t stream_id;  /**< HTTP/2 stream identifier; 0 for HTTP/1.x */
	int64_t ts_reset_ns; /**< HTTP/2: when the stream was reset (RST_STREAM); 0: not reset,
			      *   or a file written before the key existed */
	uint32_t reset_code; /**< with ts_reset_ns: the RST_STREAM's error code (RFC 9113 §7) */
};

/**
 * An HTTP/2 stream its client cancelled: an RST_STREAM from the client
 * (flag reset, not server_reset, with its time in ts_reset_ns) with code
 * NO_ERROR or CANCEL (reset_code), and no loss
 * beside it (gap, parse_error, tunnel, goaway, no_request). A gRPC client
 * cancels a watch, or a call past its deadline, so; the session is whole as
 * far as it went, the client ended it: diff counts it as cancelled, not as
 * missing data (docs/diff.md). Files written before ts_reset_ns existed
 * cannot tell such a stream from one reset with its connection.
 */
static inline bool store_session_client_cancelled(const struct store_session *s)
{
	const uint32_t loss = STORE_F_GAP | STORE_F_PARSE_ERROR | STORE_F_TUNNEL | STORE_F_GOAWAY |
			      STORE_F_NO_REQUEST | STORE_F_SERVER_RESET;
	/* NO_ERROR or CANCEL: the client no longer needed it (RFC 9113 §7);
	 * PROTOCOL_ERROR and the like say the exchange went wrong */
	return s->proto == STORE_PROTO_H2C && (s->flags & STORE_F_RESET) && !(s->flags & loss) &&
	       s->ts_reset_ns > 0 && (s->reset_code == 0x0 || s->reset_code == 0x8);
}

/** Replay outcome kinds (values are part of the format). */
enum store_error_kind {
	STORE_ERR_NONE = 0,
	STORE_ERR_REFUSED = 1,	    /**< connection refused */
	STORE_ERR_RESET = 2,	    /**< connection reset or closed before a whole response */
	STORE_ERR_TIMEOUT = 3,	    /**< no whole response within the timeout */
	STORE_ERR_BAD_RESPONSE = 4, /**< the response did not parse as HTTP/1.x */
	STORE_ERR_CONNECT = 5,	    /**< other connect failure (unreachable, DNS) */
	STORE_ERR_TLS = 6,	    /**< TLS handshake or verification failure */
	STORE_ERR_OTHER = 7,
};
#define STORE_ERR_COUNT 8

/**
 * How the error_msg of a result starts when the replay cancelled an HTTP/2
 * stream the way its recording ended (error none; docs/http2.md "Replay"):
 * the candidate had not ended it by then either.
 */
#define STORE_CANCELLED_AS_RECORDED "cancelled as recorded"

/**
 * How the error_msg of a timeout result starts when the replay ended a
 * gRPC call at its deadline (the grpc-timeout it sent) with no whole
 * answer, as a gRPC client would: the call's outcome is DEADLINE_EXCEEDED
 * (docs/http2.md "Replay"). Readers that do not know it see a timeout.
 */
#define STORE_GRPC_DEADLINE "grpc deadline exceeded"

/** Stable lower-case name of @p kind ("none", "refused", ...), or NULL. */
const char *store_error_name(uint32_t kind);

/** What one replayed request to one target produced. */
struct store_result {
	uint64_t session_id;	      /**< the session record this replays (same file) */
	struct store_slice target;    /**< target URL, e.g. "http://127.0.0.1:8080" */
	struct store_slice role;      /**< "candidate", "secondary" (known-good) or a lane name */
	int64_t ts_sent_ns;	      /**< Unix-epoch ns when the first request byte was sent */
	uint64_t latency_ns;	      /**< first request byte sent -> last response byte */
	int64_t lateness_ns;	      /**< send time minus scheduled time (pacing) */
	uint64_t causal_wait_ns;      /**< part of lateness spent waiting for dependencies */
	uint32_t error;		      /**< enum store_error_kind */
	struct store_slice error_msg; /**< human-readable detail, may be empty */
	struct store_message resp;    /**< response (present=false on error) */
};

/**
 * A grpc-timeout value (gRPC PROTOCOL-HTTP2.md: 1-8 digits and a unit H M
 * S m u n) in ns, saturating. @return false when @p v is no grpc-timeout.
 */
static inline bool store_grpc_timeout_ns(const uint8_t *v, size_t n, int64_t *ns)
{
	static const struct {
		char unit;
		int64_t ns;
	} units[] = {{'H', 3600000000000LL}, {'M', 60000000000LL}, {'S', 1000000000LL},
		     {'m', 1000000LL},	     {'u', 1000LL},	   {'n', 1}};
	if (n < 2 || n > 9)
		return false;
	int64_t per = 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (v[n - 1] == units[i].unit)
			per = units[i].ns;
	if (!per)
		return false;
	int64_t val = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		val = val * 10 + (v[i] - '0');
	}
	/* 8 digits of hours overflow nothing below 2^63 */
	*ns = val > INT64_MAX / per ? INT64_MAX : val * per;
	return true;
}

/** A result that is a gRPC call the replay ended at its deadline. */
static inline bool store_result_grpc_deadline(const struct store_result *r)
{
	static const char p[] = STORE_GRPC_DEADLINE;
	return r->error == STORE_ERR_TIMEOUT && r->error_msg.len >= sizeof(p) - 1 &&
	       !memcmp(r->error_msg.ptr, p, sizeof(p) - 1);
}

/** A result that is a stream the replay cancelled as recorded. */
static inline bool store_result_cancelled(const struct store_result *r)
{
	static const char p[] = STORE_CANCELLED_AS_RECORDED;
	return r->error == STORE_ERR_NONE && r->error_msg.len >= sizeof(p) - 1 &&
	       !memcmp(r->error_msg.ptr, p, sizeof(p) - 1);
}

enum store_rec_type {
	STORE_REC_SESSION = 1,
	STORE_REC_RESULT = 2,
};

/** A record: a tagged union. */
struct store_record {
	enum store_rec_type type;
	union {
		struct store_session session;
		struct store_result result;
	} u;
};

/** A named counter, written to / read from the trailer. */
struct store_counter {
	const char *name;
	uint64_t value;
};

/**
 * The recording a results file replayed (docs/format.md §1.1 "origins"):
 * the chain of custody from the capture to the report.
 */
struct store_origin {
	const char *id;	   /**< the recording's file_id (32 hex digits); NULL unknown */
	const char *file;  /**< its file name as given to replay */
	int64_t first_ns;  /**< smallest record timestamp in it (0 none) */
	int64_t last_ns;   /**< largest */
	uint64_t sessions; /**< session records read from it */
	const char *state; /**< "complete", "unfinished", "cut", "damaged" or "suspect" */
	const struct store_counter *counters; /**< its trailer counters (capture's) */
	size_t n_counters;
};

/** A replay target as written in a results file: role and URL (no userinfo). */
struct store_target {
	const char *role;
	const char *url;
};

/** Length of a file id in hex digits (128 random bits). */
#define STORE_FILE_ID_LEN 32

/** File metadata written in the header frame. All strings may be NULL. */
struct store_meta {
	const char *kind;	  /**< "recording" or "results" */
	const char *source;	  /**< e.g. "pcap:in.pcap", "iface:eth0", "replay:rec.dyt" */
	const char *filter;	  /**< BPF filter, if any */
	const char *const *rules; /**< color rules as written by the user */
	size_t n_rules;
	const char *host;	  /**< host name of the capturing machine */
	int64_t start_ns;	  /**< Unix-epoch ns when capture started */
	const char *tool_version; /**< defaults to the library's version when NULL */
	const char *const
	    *redactions; /**< record-time redactions, e.g. "header:authorization:mask" */
	size_t n_redactions;
	/* results files (all optional): */
	const struct store_origin *origins; /**< the recordings replayed, in input order */
	size_t n_origins;
	const struct store_target *targets; /**< the replay's targets */
	size_t n_targets;
	uint32_t shard_k, shard_n;	/**< this file replays shard k of n (n 0: not sharded) */
	const uint64_t *shard_sessions; /**< shard_n entries: sessions each shard replays */
	/**
	 * The writer's pairing guarantee (docs/format.md §1.1 "result_lag"):
	 * every result record follows its session record with at most
	 * result_lag other session records between them. Written only when
	 * has_result_lag.
	 */
	bool has_result_lag;
	uint64_t result_lag;
	/**
	 * Results: the replay's pacing, "recorded", "rate" or "max" (NULL: not
	 * written). Under "max" nothing is scheduled and a result's
	 * lateness_ns is the time it waited for a connection (docs/format.md).
	 */
	const char *pace;
};

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

struct store_writer;

/** A record as its encoded bytes, and where a session's ids sit in them. */
struct store_raw_record {
	struct store_slice bytes; /**< one msgpack map (docs/format.md §4) */
	/** A session's "id" and "conn_id" values: offset into bytes and
	 *  length; length 0 when the record has no such key (or is a result). */
	size_t id_off, id_len, conn_id_off, conn_id_len;
};

struct store_writer_params {
	/**
	 * Created mode 0600. A regular file is written as PATH.partial, locked
	 * (flock(2), exclusive) so a second writer of PATH fails at once, and
	 * renamed to PATH by store_writer_close(); an existing PATH is replaced
	 * then, not before. A crash leaves PATH.partial (readable as an
	 * unfinished file, docs/format.md §3). A path that is not a regular
	 * file (a FIFO, /dev/stdout) is written directly.
	 */
	const char *path;
	int level;	    /**< zstd level; 0 means the default (see docs/format.md) */
	size_t flush_bytes; /**< flush a data frame after this many record bytes; 0 = default */
	uint32_t flush_ms;  /**< and at the latest after this many ms; 0 = default */
	const struct store_meta *meta; /**< copied into the header frame; may be NULL */
	/**
	 * Compress and write data frames on a helper thread while the caller
	 * packs the next batch (one frame in flight; see docs/format.md
	 * "Writing"). The writer is still used by one thread at a time.
	 */
	bool background;
	/**
	 * Index entries (40 bytes, one per data frame) held in memory before
	 * they move to an unnamed temporary file beside the output, read back
	 * at close (docs/format.md §1.3); 0 = the process default
	 * (store_writer_default_index_mem(), 4096).
	 */
	size_t index_mem_frames;
};

/**
 * The index entries every writer created from now on holds in memory
 * before it spills (store_writer_params.index_mem_frames); 0 restores
 * 4096. The program sets it once, e.g. from DYETAP_INDEX_MEM_FRAMES,
 * before any thread.
 */
void store_writer_default_index_mem(size_t frames);

/**
 * Create a store file and write its header frame. The header gets a new
 * random file_id (docs/format.md §1.1), the file's identity.
 * @return the writer, or NULL with a message in @p err (e.g. cannot create,
 *         another writer holds the file).
 */
struct store_writer *store_writer_create(const struct store_writer_params *p, char *err,
					 size_t errlen);

/** The file_id written in the header (STORE_FILE_ID_LEN hex digits); borrowed. */
const char *store_writer_file_id(const struct store_writer *w);

/**
 * Records that were accepted or offered but are not in the file: records
 * of frames whose write failed, records refused after the writer failed,
 * and the pending batch when the writer is freed without a close. The
 * count a caller prints after a full disk (docs/format.md §1.2).
 */
uint64_t store_writer_lost(const struct store_writer *w);

/** The suffix of the file a writer writes before renaming it into place. */
#define STORE_PARTIAL_SUFFIX ".partial"

/**
 * Append a session record (copied; @p s may be freed after the call).
 * @return 0, -ENOMEM, -E2BIG (the record alone exceeds the 64 MiB frame cap;
 *         nothing written), -EIO (write failed; the message is in the
 *         writer's last error; every later call fails too).
 */
int store_writer_add_session(struct store_writer *w, const struct store_session *s);

/**
 * Append a session given as its encoded bytes (store_reader_raw() of a
 * session) with its "id" and "conn_id" values replaced by @p id and
 * @p conn_id (added when missing); every other byte is copied, so fields
 * this version does not know survive. @p ts is its request timestamp (for
 * the index). Copying sessions from file to file this way saves decoding
 * them into a struct and packing them again.
 * @return as store_writer_add_session(), or -EINVAL when @p raw does not
 *         start with a map header or its id spans are not msgpack integers
 *         inside the bytes (nothing written).
 */
int store_writer_add_session_raw(struct store_writer *w, const struct store_raw_record *raw,
				 uint64_t id, uint64_t conn_id, int64_t ts);

/**
 * Parse a `--level` argument: an integer in -100..22 other than 0 (0 means
 * "the default" in store_writer_params.level, so a user cannot ask for it).
 * @return 0 with *level set, or -EINVAL.
 */
int store_parse_level(const char *s, int *level);

/** Append a result record (copied). Errors as store_writer_add_session(). */
int store_writer_add_result(struct store_writer *w, const struct store_result *r);

/*
 * Packing apart from writing: a producer that is not the writer's thread
 * packs a record into its own buffer with store_pack_*() and the writer's
 * thread appends the bytes with store_writer_add_packed(). The bytes are
 * those store_writer_add_session(), store_writer_add_session_raw() and
 * store_writer_add_result() would write (docs/format.md §4).
 */

/** Append session @p s packed to @p out. @return 0, -E2BIG or -ENOMEM
 *  (out unchanged). */
int store_pack_session(struct dbuf *out, const struct store_session *s);
/** Append a recorded session given as its encoded bytes, with @p id and
 *  @p conn_id, to @p out. @return 0, -EINVAL when the bytes are not a
 *  msgpack map with integer ids, -E2BIG or -ENOMEM (out unchanged). */
int store_pack_session_raw(struct dbuf *out, const struct store_raw_record *raw, uint64_t id,
			   uint64_t conn_id);
/** Append result @p r packed to @p out. Errors as store_pack_session(). */
int store_pack_result(struct dbuf *out, const struct store_result *r);

/**
 * Append one record packed by store_pack_*() (@p len bytes, copied), a
 * session when @p is_session, with request or send time @p ts (the index's
 * time span). Errors as store_writer_add_session().
 */
int store_writer_add_packed(struct store_writer *w, const void *rec, size_t len, int64_t ts,
			    bool is_session);

/** Flush the pending records as a data frame if the time limit passed. Cheap; call often. */
int store_writer_tick(struct store_writer *w);

/** Write pending records as a data frame now and fsync-free flush to the OS. */
int store_writer_flush(struct store_writer *w);

/**
 * Flush, write the index/trailer frame with @p counters (copied; may be
 * NULL/0), close the file and rename it into place. Returns 0 or -errno
 * with a message in @p err that says how many records were lost and where
 * the data written so far is (PATH.partial: a full disk leaves it readable
 * up to its last whole frame). The writer stays for store_writer_lost()
 * and store_writer_error(); free it with store_writer_free().
 */
int store_writer_finish(struct store_writer *w, const struct store_counter *counters,
			size_t n_counters, char *err, size_t errlen);

/**
 * store_writer_finish(), then store_writer_free(): the writer is freed in
 * every case (do not call store_writer_free() after).
 */
int store_writer_close(struct store_writer *w, const struct store_counter *counters,
		       size_t n_counters, char *err, size_t errlen);

/** Free a writer without writing the trailer (crash-like end: the file stays
 *  PATH.partial). Accepts NULL. */
void store_writer_free(struct store_writer *w);

/** Message of the last failed writer call ("" when none). Borrowed. */
const char *store_writer_error(const struct store_writer *w);

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

struct store_reader;

/** Parsed header metadata; strings borrowed, valid until store_reader_free(). */
struct store_file_meta {
	uint32_t format_version;
	const char *kind;
	const char *source;
	const char *filter;
	const char *const *rules;
	size_t n_rules;
	const char *host;
	int64_t start_ns;
	const char *tool_version;
	const char *const *redactions; /**< record-time redactions (empty when none) */
	size_t n_redactions;
	const char *file_id;		    /**< the file's id; NULL in older files */
	const struct store_origin *origins; /**< results: the recordings replayed */
	size_t n_origins;
	const struct store_target *targets; /**< results: the replay's targets */
	size_t n_targets;
	uint32_t shard_k, shard_n;	/**< n 0: not a shard */
	const uint64_t *shard_sessions; /**< shard_n entries, or NULL */
	bool has_result_lag;		/**< the file states result_lag */
	uint64_t result_lag;		/**< sessions a result may follow its session by */
	const char *pace;		/**< results: "recorded", "rate", "max"; NULL unknown */
};

/** What the reader found out about the file so far (complete after EOF). */
struct store_read_status {
	uint64_t file_bytes;	      /**< size of the file */
	uint64_t frames;	      /**< data frames decoded successfully */
	uint64_t compressed_bytes;    /**< bytes of those data frames on disk */
	uint64_t raw_bytes;	      /**< decompressed bytes of those data frames */
	uint64_t sessions;	      /**< session records returned */
	uint64_t results;	      /**< result records returned */
	uint64_t skipped_records;     /**< records of unknown type or undecodable, skipped */
	bool has_index;		      /**< the index/trailer frame was found and valid */
	bool cut;		      /**< the file ends inside a frame (e.g. crash) */
	uint64_t cut_offset;	      /**< where the last whole frame ends when cut */
	uint64_t damaged_frames;      /**< frames failing checksum or decoding */
	uint64_t first_damage_offset; /**< file offset of the first damaged frame */
	int64_t first_ts_ns;	      /**< smallest record timestamp seen (0 if none) */
	int64_t last_ts_ns;	      /**< largest record timestamp seen */
	const struct store_counter *counters; /**< from the trailer; borrowed */
	size_t n_counters;
	/**
	 * Frames that do not belong where they are: an index frame with data
	 * after it, or a second header frame (two files joined, two writers on
	 * one file). Their data is read; the file is "suspect", not complete.
	 */
	uint64_t suspect_frames;
	uint64_t first_suspect_offset; /**< offset of the first such frame */
	uint64_t frames_over_ratio;    /**< data frames refused by max_frame_ratio (also damaged) */
	bool record_cap_hit;	       /**< reading stopped at max_records (also damaged) */
	uint64_t max_records;	       /**< the record cap in force for this file */
};

/**
 * Work limits of a reader (docs/format.md §3, "Work limits"): bounded work
 * per input byte however a file was made. Defaults hold for anything the
 * writer produces from real traffic; a file past them is read up to the
 * limit and reported as damaged, with the reason.
 */
struct store_read_limits {
	/**
	 * A data frame whose declared content is more than this many times
	 * its compressed size is not decompressed (counted in
	 * frames_over_ratio). 0 = STORE_DEFAULT_FRAME_RATIO; UINT32_MAX: no cap.
	 */
	uint32_t max_frame_ratio;
	/**
	 * Records decoded per file, returned or skipped; reading stops there
	 * (record_cap_hit). 0 = the larger of 1 000 000 and the file's size in
	 * bytes; UINT64_MAX: no cap.
	 */
	uint64_t max_records;
};

/** Default decompressed-to-compressed ratio cap of a data frame. */
#define STORE_DEFAULT_FRAME_RATIO 4096u
/** Under the default ratio cap, frames over it of at most this content are
 * still read, up to STORE_OVER_RATIO_TOTAL bytes of content per reader. */
#define STORE_OVER_RATIO_FRAME (32u << 20)
#define STORE_OVER_RATIO_TOTAL (256u << 20)

/**
 * Open a store file and read its header frame.
 * @return the reader, or NULL with a message in @p err (missing, not a
 *         dyetap store, unsupported version, unreadable header).
 */
struct store_reader *store_reader_open(const char *path, char *err, size_t errlen);

/**
 * Same as store_reader_open() over @p len bytes at @p data (a whole file
 * image, borrowed: it must stay valid and unchanged until store_reader_free()).
 * Used by the fuzz target and by tools that already hold the bytes.
 */
struct store_reader *store_reader_open_mem(const void *data, size_t len, char *err, size_t errlen);

/** The header metadata (borrowed, valid until store_reader_free()). */
const struct store_file_meta *store_reader_meta(const struct store_reader *r);

/**
 * Next record.
 * @param rec  set to a record borrowed until the next call or free.
 * @return 1 a record, 0 end of data (including a cut or damaged tail, see
 *         store_reader_status()), -ENOMEM.
 */
int store_reader_next(struct store_reader *r, const struct store_record **rec);

/**
 * The encoded bytes of the record the last store_reader_next() returned,
 * borrowed like that record (bytes empty before the first record). With
 * store_writer_add_session_raw() a tool copies a session into another file
 * without re-packing it.
 */
struct store_raw_record store_reader_raw(const struct store_reader *r);

/**
 * Position before the first data frame that may hold records with a
 * request timestamp >= @p ts_ns (uses the index; scans when there is none).
 * Each seek starts a new read-through with a whole record budget
 * (store_read_limits.max_records): a file read again from its start
 * (replay --loop) is not cut short by the records of earlier reads.
 * @return 0 or -errno.
 */
int store_reader_seek_time(struct store_reader *r, int64_t ts_ns);

/** Status so far (borrowed, updated by every call). */
const struct store_read_status *store_reader_status(const struct store_reader *r);

/**
 * The file's state after reading it to the end, as `dyetap info` names it:
 * "damaged", "cut", "suspect", "unfinished" or "complete" (the first that
 * applies). Static string.
 */
const char *store_read_state(const struct store_read_status *st);

/**
 * Set the work limits of @p r (copied; 0 fields take the defaults).
 * Call before the first store_reader_next() or store_reader_seek_time().
 */
void store_reader_set_limits(struct store_reader *r, const struct store_read_limits *l);

/**
 * Limits every reader opened from now on starts with (copied; the
 * program sets them once, e.g. from the environment, before any thread).
 */
void store_reader_default_limits(const struct store_read_limits *l);

/** Free a reader; accepts NULL. */
void store_reader_free(struct store_reader *r);

/*
 * Reading on several threads (docs/format.md §3 "Reading in parallel").
 * The reader walks the file and hands out data frames undecoded; any
 * thread decompresses and decodes them; the reader then settles them in
 * the order they were taken, applying the rules of store_reader_next()
 * (damage, cut, record cap, counters), so the records and the status are
 * those store_reader_next() gives. Use:
 *
 *     while ((rc = store_reader_take_frame(r, f[i])) == 1)   // reading thread
 *             ... store_frame_decode(f[i], dec) on any thread ...
 *     store_reader_settle(r, oldest);                        // reading thread, in order
 *     n = store_frame_records(oldest, &recs);
 *
 * Do not mix with store_reader_next() or store_reader_seek_time() on one reader.
 */
struct store_frame;   /* one data frame and its decoded records */
struct store_decoder; /* decompression state of one thread */

/** A frame slot, reused from take to take. NULL on allocation failure. */
struct store_frame *store_frame_create(void);
/** Accepts NULL. */
void store_frame_free(struct store_frame *f);

/** Decompression state for store_frame_decode(), one per thread. NULL on allocation failure. */
struct store_decoder *store_decoder_create(void);
/** Accepts NULL. */
void store_decoder_free(struct store_decoder *d);

/**
 * Take the next data frame of @p r into @p f (its compressed bytes are
 * copied: @p f does not refer to the reader).
 * @return 1 a frame; 0 the end of data; -EAGAIN: the walk has reached
 *         something whose handling depends on the frames taken and not yet
 *         settled (damage, a skippable frame, the end): settle them all,
 *         then take again; -ENOMEM.
 */
int store_reader_take_frame(struct store_reader *r, struct store_frame *f);

/** The content size frame @p f declares (decompressed bytes), once taken. */
size_t store_frame_size(const struct store_frame *f);

/**
 * Decompress and decode taken frame @p f with @p d. Touches nothing but
 * @p f and @p d: frames may be decoded on several threads at once.
 * Damage is not an error here: it is reported when the frame is settled.
 * @return 0 or -ENOMEM.
 */
int store_frame_decode(struct store_frame *f, struct store_decoder *d);

/**
 * Settle frame @p f, the oldest taken and not settled, once it is decoded:
 * its damage, records and counts go into @p r's status as
 * store_reader_next() would have put them.
 * @return 1; 0 when reading ends with this frame (the record cap): frames
 *         taken after it are not part of the file's read and must not be
 *         settled; -ENOMEM (a decode that failed for memory).
 */
int store_reader_settle(struct store_reader *r, struct store_frame *f);

/**
 * The records of settled frame @p f, in file order, in *@p v; borrowed
 * until @p f is taken again or freed. @return how many.
 */
size_t store_frame_records(const struct store_frame *f, const struct store_record **v);

/* ------------------------------------------------------------------ */
/* JSON rendering (used by `dyetap cat`, reports and tests)            */
/* ------------------------------------------------------------------ */

enum store_json_flags {
	STORE_JSON_NO_BODY = 1u << 0, /**< omit body contents (body_len still given) */
};

/**
 * Append @p s as one JSON object (no newline) with exactly the keys of
 * docs/format.md "JSON form": id, lane, conn_id, conn_index, ts_request_ns,
 * src, dst, request, response, flags. Returns 0 or the dbuf error.
 */
int store_session_json(struct dbuf *out, const struct store_session *s, unsigned flags);

/** Same for a result record (keys in docs/format.md). */
int store_result_json(struct dbuf *out, const struct store_result *r, unsigned flags);

/** Format an endpoint as "1.2.3.4:80" or "[::1]:80" into @p buf. */
void store_endpoint_str(uint8_t ip_version, const struct store_endpoint *e, char *buf, size_t len);

#endif
