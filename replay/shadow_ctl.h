/* SPDX-License-Identifier: MIT */
/*
 * shadow_ctl - the lane commands of the control protocol and the lanes'
 * state as Prometheus gauges, for `dyetap mirror` and `dyetap-fastpath`
 * alike (docs/operations.md). The socket, the HTTP listener and the text
 * format are common/ctl.h; this file knows the shadow core.
 *
 * Commands (words as ctl_split() gives them):
 *   lanes               one JSON object per lane and line: name, state
 *                       ("running", "paused" or "removed" by a reload),
 *                       targets, rate, queued, each target's counts
 *                       (target_counts) and every counter of the lane
 *   pause LANE          the lane takes nothing from now on
 *                       (shadow_core_lane_set_paused(); counted
 *                       paused, never queued)
 *   resume LANE         the lane takes requests again
 *   rate LANE N[/s]     the lane's token bucket (0: unlimited)
 *
 * Thread-safety: every call may run on any thread while the core lives
 * (the core's run-time controls are atomics); @p t is the caller's sum of
 * the counters (shadow_core_sum()).
 */
#ifndef DYETAP_REPLAY_SHADOW_CTL_H
#define DYETAP_REPLAY_SHADOW_CTL_H

#include <stddef.h>

#include "common/ctl.h"
#include "common/dbuf.h"
#include "replay/shadow_core.h"

/** The help lines of every command mirror and the fast path answer (two-space indent). */
extern const char shadow_ctl_help[];

/**
 * Answer a lane command @p argv[0..argc) on core @p c whose counters are
 * @p t (NULL: none shown), the payload appended to @p out.
 * @return 0 done; -ENOENT when argv[0] is not a lane command (nothing
 *         written); -EINVAL with a message in @p err (unknown lane, bad
 *         rate, missing word).
 */
int shadow_ctl_command(struct shadow_core *c, const struct shadow_stats *t, int argc, char **argv,
		       struct dbuf *out, char *err, size_t errlen);

/**
 * Add each lane's state to @p p: dyetap_lane_open, dyetap_lane_rate,
 * dyetap_lane_queued and dyetap_lane_targets (gauges, label lane; a
 * removed lane only dyetap_lane_open 0), and each lane target's
 * dyetap_target_{sent,ok,errors}_total and dyetap_target_active (labels
 * lane and target).
 * @return 0 or the first error of ctl_prom_add().
 */
int shadow_ctl_prom(const struct shadow_core *c, struct ctl_prom *p);

#endif
