/* SPDX-License-Identifier: MIT */
/*
 * shadow_ctl - lane commands and lane gauges over the shadow core's
 * run-time controls (replay/shadow_ctl.h, docs/operations.md).
 */
#include "replay/shadow_ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/jsonw.h"
#include "replay/shadow.h"

const char shadow_ctl_help[] =
    "  lanes                each lane's state, targets, rate, queue and counters (JSON lines)\n"
    "  pause LANE           stop copying the lane's requests (counted paused)\n"
    "  resume LANE          copy the lane's requests again\n"
    "  rate LANE N/s        change the lane's rate limit (0: none)\n"
    "  reload               read --config FILE and --rules FILE again: rules,\n"
    "                       lanes, targets and rates switch at once\n"
    "  stats                every counter as one JSON object\n"
    "  help                 this list\n";

static int find_lane(struct shadow_core *c, const char *name, char *err, size_t errlen)
{
	int li = shadow_core_lane_find(c, (const uint8_t *)name, strlen(name));
	if (li < 0) {
		snprintf(err, errlen, "no lane '%s' (see: lanes)", name);
		return -EINVAL;
	}
	return li;
}

static void lane_json(struct shadow_core *c, const struct shadow_stats *t, unsigned li,
		      struct dbuf *out)
{
	struct shadow_lane_info in;
	(void)shadow_core_lane_info(c, li, &in);
	dbuf_puts(out, "{\"lane\":");
	jsonw_cstr(out, in.name);
	dbuf_printf(out, ",\"state\":\"%s\",\"targets\":[",
		    in.removed	? "removed"
		    : in.paused ? "paused"
				: "running");
	for (size_t k = 0; k < in.n_urls; k++) {
		if (k)
			dbuf_putc(out, ',');
		jsonw_cstr(out, in.urls[k]);
	}
	dbuf_printf(out, "],\"rate\":%g,\"queued\":%" PRIu64, in.rate, in.queued);
	/* Per target, as the metrics' target label shows them (removed ones too). */
	dbuf_puts(out, ",\"target_counts\":[");
	bool first = true;
	for (size_t r = 0; r < shadow_core_targets(c); r++) {
		struct shadow_target_info ti;
		if (shadow_core_target_info(c, r, &ti) < 0 || strcmp(ti.lane, in.name))
			continue;
		dbuf_puts(out, first ? "{\"target\":" : ",{\"target\":");
		first = false;
		jsonw_cstr(out, ti.url);
		dbuf_printf(out,
			    ",\"active\":%s,\"sent\":%" PRIu64 ",\"ok\":%" PRIu64
			    ",\"errors\":%" PRIu64 "}",
			    ti.active ? "true" : "false", ti.sent, ti.ok, ti.errors);
	}
	dbuf_putc(out, ']');
	if (t)
		for (size_t i = 0; i < shadow_lane_ctr_count; i++)
			dbuf_printf(out, ",\"%s\":%" PRIu64, shadow_lane_ctr_descs[i].name,
				    ctr_get(&t->lane[li], &shadow_lane_ctr_descs[i]));
	dbuf_puts(out, "}\n");
}

int shadow_ctl_command(struct shadow_core *c, const struct shadow_stats *t, int argc, char **argv,
		       struct dbuf *out, char *err, size_t errlen)
{
	const char *cmd = argv[0];
	int li;
	if (!strcmp(cmd, "lanes")) {
		if (argc > 2) {
			snprintf(err, errlen, "usage: lanes [LANE]");
			return -EINVAL;
		}
		if (argc == 2) {
			if ((li = find_lane(c, argv[1], err, errlen)) < 0)
				return li;
			lane_json(c, t, (unsigned)li, out);
			return 0;
		}
		for (unsigned i = 0; i < shadow_core_lanes(c); i++)
			lane_json(c, t, i, out);
		return 0;
	}
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		if (argc != 2) {
			snprintf(err, errlen, "usage: %s LANE", cmd);
			return -EINVAL;
		}
		if ((li = find_lane(c, argv[1], err, errlen)) < 0)
			return li;
		(void)shadow_core_lane_set_paused(c, (unsigned)li, cmd[0] == 'p');
		dbuf_printf(out, "lane %s %s\n", argv[1], cmd[0] == 'p' ? "paused" : "running");
		return 0;
	}
	if (!strcmp(cmd, "rate")) {
		double r;
		if (argc != 3) {
			snprintf(err, errlen, "usage: rate LANE N/s (0: no limit)");
			return -EINVAL;
		}
		if ((li = find_lane(c, argv[1], err, errlen)) < 0)
			return li;
		if (!strcmp(argv[2], "0") || !strcmp(argv[2], "0/s"))
			r = 0;
		else if (shadow_rate_parse(argv[2], &r) < 0 ||
			 shadow_core_lane_set_rate(c, (unsigned)li, r) < 0) {
			snprintf(err, errlen, "bad rate '%s': give N or N/s, 0 for no limit",
				 argv[2]);
			return -EINVAL;
		}
		if (r == 0)
			(void)shadow_core_lane_set_rate(c, (unsigned)li, 0);
		dbuf_printf(out, "lane %s rate %g/s\n", argv[1], r);
		return 0;
	}
	return -ENOENT;
}

int shadow_ctl_prom(const struct shadow_core *c, struct ctl_prom *p)
{
	int rc = 0;
	for (unsigned i = 0; i < shadow_core_lanes(c); i++) {
		struct shadow_lane_info in;
		(void)shadow_core_lane_info(c, i, &in);
		if (in.removed) {
			/* Its counters stay (the caller's set); it has no state any more. */
			rc |= ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_lane_open",
					   "1 while the lane takes requests (0: paused or removed)",
					   "lane", in.name, NULL, NULL, 0);
			continue;
		}
		rc |= ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_lane_open",
				   "1 while the lane takes requests (0: paused or removed)", "lane",
				   in.name, NULL, NULL, in.paused ? 0 : 1);
		rc |= ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_lane_rate",
				   "the lane's rate limit, requests per second (0: none)", "lane",
				   in.name, NULL, NULL, in.rate);
		rc |= ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_lane_queued",
				   "the lane's requests queued or in flight", "lane", in.name, NULL,
				   NULL, (double)in.queued);
		rc |=
		    ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_lane_targets", "the lane's target URLs",
				 "lane", in.name, NULL, NULL, (double)in.n_urls);
	}
	/* Each lane target, labelled lane and target (the URL as configured). */
	for (size_t r = 0; r < shadow_core_targets(c); r++) {
		struct shadow_target_info t;
		if (shadow_core_target_info(c, r, &t) < 0)
			continue;
		rc |= ctl_prom_add(p, CTL_PROM_COUNTER, "dyetap_target_sent_total",
				   "shadow requests sent to the target", "lane", t.lane, "target",
				   t.url, (double)t.sent);
		rc |= ctl_prom_add(p, CTL_PROM_COUNTER, "dyetap_target_ok_total",
				   "whole responses from the target", "lane", t.lane, "target",
				   t.url, (double)t.ok);
		rc |= ctl_prom_add(p, CTL_PROM_COUNTER, "dyetap_target_errors_total",
				   "errors of every kind from the target", "lane", t.lane, "target",
				   t.url, (double)t.errors);
		rc |=
		    ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_target_active",
				 "1 while the URL is a target of the lane (0: a reload removed it)",
				 "lane", t.lane, "target", t.url, t.active ? 1 : 0);
	}
	return rc ? -ENOMEM : 0;
}
