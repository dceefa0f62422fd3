/* SPDX-License-Identifier: MIT */
/*
 * replay_stats - the named counter table of replay (common/counters.h),
 * so every counter reaches --json, the results store trailer and reports.
 */
#include "replay/replay.h"

#define D(field, help) CTR_DESC(struct replay_stats, field, help)

const struct ctr_desc replay_ctr_descs[] = {
    D(sent, "requests attempted against a target (ok + errors)"),
    D(ok, "whole responses received"),
    D(err_refused, "connection refused by the target"),
    D(err_reset, "connection reset or closed before a whole response"),
    D(err_timeout, "no whole response within the timeout"),
    D(err_bad_response, "response did not parse as HTTP/1.x"),
    D(err_connect, "other connect failures (unreachable, no route)"),
    D(err_tls, "TLS handshake or certificate verification failures"),
    D(err_other, "other failures (interrupted, out of memory)"),
    D(skipped_filter, "sessions excluded by --lane/--method/--path/--since/--until"),
    D(skipped_shard, "sessions of connections belonging to other shards"),
    D(skipped_writes, "non-GET/HEAD/OPTIONS requests refused without --allow-writes"),
    D(skipped_truncated, "requests whose recorded body is cut (not replayable)"),
    D(skipped_unsupported, "sessions without a replayable request (HTTP/0.9, tunnels)"),
    D(skipped_unsafe, "requests not sent: CR, LF, NUL or blanks would reframe them on the wire"),
    D(skipped_after_writes, "reads not sent: they came after writes not sent (no "
			    "--allow-writes) to what they read (--after-skipped-writes)"),
    D(connects, "target connections opened"),
    D(reconnects, "connections reopened for a recorded connection"),
    D(retries, "requests resent once after the target closed a keep-alive connection"),
    D(h2_refused_retried, "HTTP/2 requests sent again after the target refused their stream "
			  "unprocessed (REFUSED_STREAM)"),
    D(h2_cancelled_as_recorded, "HTTP/2 streams the recorded client reset (after their response "
				"began, or before it at the recorded time), cancelled likewise "
				"(RST_STREAM CANCEL; not errors)"),
    D(h2_grpc_deadline, "gRPC calls with no whole answer within their grpc-timeout, ended "
			"as a gRPC client ends them (RST_STREAM CANCEL; timeout errors that "
			"diff compares as DEADLINE_EXCEEDED)"),
    D(evictions, "idle connections closed to free a concurrency slot"),
    D(resp_truncated, "response bodies longer than the body cap (kept to the cap)"),
    D(resp_interim, "1xx interim responses skipped"),
    D(bytes_sent, "request bytes written to targets"),
    D(bytes_received, "response bytes read from targets"),
    D(not_sent, "queued requests dropped by an interruption"),
    D(write_errors, "records the results store could not write"),
    D(write_stalls, "times an event loop waited for room in the results writer queue"),
    D(write_dropped, "results dropped because the results writer queue was full"),
    D(redact_errors, "records not written: redaction ran out of memory"),
    D(causal_waits, "requests that waited for a dependency before going out (causal order)"),
    D(causal_abandoned, "causal order given up: the recording's order could not be restored"),
};
const size_t replay_n_ctr_descs = sizeof(replay_ctr_descs) / sizeof(replay_ctr_descs[0]);

uint64_t replay_stats_errors(const struct replay_stats *s)
{
	return s->err_refused + s->err_reset + s->err_timeout + s->err_bad_response +
	       s->err_connect + s->err_tls + s->err_other;
}

uint64_t replay_stats_skipped(const struct replay_stats *s)
{
	return s->skipped_filter + s->skipped_shard + s->skipped_writes + s->skipped_truncated +
	       s->skipped_unsupported + s->skipped_unsafe + s->skipped_after_writes;
}
