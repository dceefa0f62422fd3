/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of replay/shadow_core.h, the shadowing shared by `dyetap
 * mirror` and the fast path: the shared option parser (errors name the
 * option), the first step's decisions in their order - lane, loop
 * protection by marker header and (without a marker) by target, the
 * production guard and its override, the request checks - each counted
 * under its lane and reason, the warnings handed out once per lane and
 * naming the caller's counter, the counter tables' names, a lane
 * rate changed from another thread, and a reconfiguration (reload):
 * lanes matched by name keep their counters and pause, a removed lane's
 * counts stay, a new lane starts at 0, targets and guards move, a refused
 * one changes nothing. Nothing is sent: the lanes' targets are addresses
 * on 127.0.0.1 that nothing here connects to.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "replay/shadow_core.h"
#include "tests/tap.h"

static struct store_slice sl(const char *s)
{
	return (struct store_slice){(const uint8_t *)s, strlen(s)};
}

/* A GET to 127.0.0.1:@p port colored @p lane, as announced at its last byte. */
static struct store_session req(const char *lane, uint16_t port, struct store_header *h, size_t nh)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.lane = sl(lane);
	s.ip_version = 4;
	s.dst.addr[0] = 127;
	s.dst.addr[3] = 1;
	s.dst.port = port;
	s.req.present = true;
	s.req.method = sl("GET");
	s.req.target = sl("/a");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.req.headers = h;
	s.req.n_headers = nh;
	s.flags = STORE_F_NO_RESPONSE;
	return s;
}

static int opt(struct shadow_conf *c, const char *name, const char *arg, char *err)
{
	static char args[32][256];
	static int n;
	char *a = NULL;
	if (arg) {
		a = args[n++ % 32];
		snprintf(a, 256, "%s", arg);
	}
	return shadow_conf_option(c, name, a, err, 512);
}

static void test_options(void)
{
	struct shadow_conf c;
	char err[512] = "";
	shadow_conf_init(&c);
	TAP_OK(c.queue == 1000 && c.drain_ns == 5000000000LL &&
		   !strcmp(c.rw.shadow_name, SHADOW_MARKER_NAME),
	       "defaults: --queue 1000, --drain-timeout 5s, marker x-dyetap-shadow");
	TAP_OK(opt(&c, "lane", "blue=http://127.0.0.1:9,https://127.0.0.1:10", err) == 1 &&
		   c.n_lanes == 1 && c.lanes[0].n_urls == 2,
	       "--lane with two targets");
	TAP_OK(opt(&c, "lane", "blue=http://127.0.0.1:11", err) == 1 && c.lanes[0].n_urls == 3,
	       "a second --lane of the same lane adds a target");
	TAP_OK(opt(&c, "lane", "red=ftp://x", err) == -EINVAL && strstr(err, "--lane") &&
		   strstr(err, "red"),
	       "a bad URL is refused naming --lane and the lane");
	TAP_OK(opt(&c, "lane", "=http://x", err) == -EINVAL, "a lane without a name is refused");
	TAP_OK(opt(&c, "lane-rate", "green=5/s", err) == 1, "--lane-rate names a new lane");
	TAP_OK(shadow_conf_check(&c, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "without --lane green=URL"),
	       "check: --lane-rate for a lane without targets");
	TAP_OK(opt(&c, "lane-rate", "blue=0", err) == -EINVAL, "a rate of 0 is refused");
	TAP_OK(opt(&c, "queue", "0", err) == -EINVAL && strstr(err, "--queue"),
	       "--queue 0 is refused");
	TAP_OK(opt(&c, "timeout", "2s", err) == 1 && c.timeout_ns == 2000000000LL, "--timeout 2s");
	TAP_OK(opt(&c, "insecure", NULL, err) == 1 && opt(&c, "sni", "lane.test", err) == 1 &&
		   opt(&c, "ca", "/x/ca.pem", err) == 1 && c.insecure &&
		   !strcmp(c.sni, "lane.test"),
	       "TLS options");
	TAP_OK(opt(&c, "no-shadow-header", NULL, err) == 1 && !c.rw.shadow_name,
	       "--no-shadow-header");
	TAP_OK(opt(&c, "shadow-header", "x-run: 7", err) == 1 && !strcmp(c.rw.shadow_name, "x-run"),
	       "--shadow-header sets the marker again");
	TAP_OK(opt(&c, "set-header", "x-run:8", err) == 1, "--set-header of the marker's name");
	TAP_OK(opt(&c, "nonsense", "1", err) == 0, "an option of someone else: 0");
	shadow_conf_init(&c);
	TAP_OK(opt(&c, "lane", "blue=http://127.0.0.1:9", err) == 1 &&
		   opt(&c, "shadow-header", "x-run:1", err) == 1 &&
		   opt(&c, "set-header", "x-run:2", err) == 1 &&
		   shadow_conf_check(&c, err, sizeof(err)) == -EINVAL,
	       "check: the marker set twice is refused");
	shadow_conf_init(&c);
	TAP_OK(shadow_conf_check(&c, err, sizeof(err)) == -EINVAL && strstr(err, "--lane"),
	       "check: no lane at all");
}

struct ctx {
	struct shadow_core *core;
	int rc;
};

static void *set_rate(void *arg)
{
	struct ctx *x = arg;
	x->rc = shadow_core_lane_set_rate(x->core, 0, 1.0);
	return NULL;
}

static void test_classify(void)
{
	struct shadow_conf c;
	char err[512];
	shadow_conf_init(&c);
	/* Lane blue's target is 127.0.0.1:8001; lane red's is localhost:8002. */
	opt(&c, "lane", "blue=http://127.0.0.1:8001", err);
	opt(&c, "lane", "red=http://localhost:8002", err);
	TAP_OK(shadow_conf_check(&c, err, sizeof(err)) == 0, "conf checks");
	struct shadow_core *core = shadow_core_create(&c, NULL, err, sizeof(err));
	TAP_OK(core != NULL, "core created");
	if (!core)
		return;
	struct shadow_stats st;
	memset(&st, 0, sizeof(st));
	struct store_header marker = {sl("X-Dyetap-Shadow"), sl("1")};
	struct store_session s = req("blue", 9000, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == 0, "a colored GET to production: lane 0");
	s = req("", 9000, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == -1, "uncolored: not shadowed");
	s = req("green", 9000, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 && st.no_lane == 1,
	       "a lane without --lane: counted colored_without_lane");
	s = req("blue", 9000, &marker, 1);
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_LOOP] == 1,
	       "carrying the marker (any case): never shadowed again, dropped_loop");
	s = req("blue", 8001, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_PRODUCTION] == 1,
	       "its server is the lane's target: the production guard drops it");
	s = req("red", 8002, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[1].dropped[SHADOW_DROP_PRODUCTION] == 1,
	       "a target given by name (localhost) matches its address");
	s = req("red", 8001, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, &st) == 1, "another lane's target is no production "
							 "server of this lane");
	s = req("blue", 9000, NULL, 0);
	s.req.method = sl("POST");
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_WRITE_REFUSED] == 1,
	       "a POST without --allow-writes: write_refused");
	s = req("blue", 9000, NULL, 0);
	s.flags |= STORE_F_GAP;
	TAP_OK(shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_INCOMPLETE] == 1,
	       "a request with a gap: incomplete");
	TAP_OK(st.requests == 9 && st.colored == 8 && st.lane[0].colored == 5 &&
		   st.lane[1].colored == 2,
	       "requests, colored and per-lane colored counted");
	char msg[1024];
	int n = 0;
	bool named = false;
	while (shadow_core_warning(core, "lane_", msg, sizeof(msg))) {
		n++;
		named |= strstr(msg, "lane_blue_dropped_production") &&
			 strstr(msg, "127.0.0.1:8001") &&
			 strstr(msg, "--i-know-this-is-production");
	}
	TAP_OK(n == 2 && named, "one warning per lane, naming target, counter and override");
	s = req("blue", 8001, NULL, 0);
	shadow_core_classify(core, &s, &st);
	TAP_OK(!shadow_core_warning(core, "lane_", msg, sizeof(msg)), "... and only once");

	/* Counter names. */
	struct ctr_set *set = ctr_set_create(0);
	TAP_OK(set && shadow_core_counters(core, &st, "mirror_", "lane_", set) == 0 &&
		   ctr_set_get(set, "lane_blue_dropped_production") == 2 &&
		   ctr_set_get(set, "lane_blue_dropped_loop") == 1 &&
		   ctr_set_get(set, "mirror_colored_without_lane") == 1 &&
		   ctr_set_count(set) == shadow_ctr_count + 2 * shadow_lane_ctr_count,
	       "counters named with the caller's prefixes");
	bool same = true;
	size_t first_drop = shadow_lane_ctr_count - SHADOW_DROP_COUNT; /* the drops come last */
	for (unsigned d = 0; d < SHADOW_DROP_COUNT; d++) {
		char want[64];
		/* paused is an operator's choice, not a drop: lane_L_paused (docs/operations.md) */
		snprintf(want, sizeof(want), "%s%s", d == SHADOW_DROP_PAUSED ? "" : "dropped_",
			 shadow_drop_name(d));
		same &= !strcmp(shadow_lane_ctr_descs[first_drop + d].name, want);
	}
	TAP_OK(same, "the lane table names every drop reason as shadow_drop_name()");
	ctr_set_free(set);

	/* A rate set from another thread is applied by the owner's next submit. */
	struct ctx x = {core, -1};
	pthread_t th;
	pthread_create(&th, NULL, set_rate, &x);
	pthread_join(th, NULL);
	TAP_OK(x.rc == 0 && shadow_core_lane_set_rate(core, 9, 1) == -EINVAL,
	       "set_rate from another thread; an unknown lane is refused");
	s = req("blue", 9000, NULL, 0);
	int r1 = shadow_core_submit(core, 0, &s, 1, 0);
	int r2 = shadow_core_submit(core, 0, &s, 1, 0);
	TAP_OK(r1 == 0 && r2 == SHADOW_DROP_RATE_LIMITED &&
		   shadow_core_stats(core)->lane[0].dropped[SHADOW_DROP_RATE_LIMITED] == 1 &&
		   shadow_core_stats(core)->lane[0].mirrored == 1,
	       "at 1/s the second request is rate_limited (burst 1)");
	shadow_core_free(core);

	/* --i-know-this-is-production; --no-shadow-header turns the target into a loop. */
	opt(&c, "i-know-this-is-production", NULL, err);
	core = shadow_core_create(&c, NULL, err, sizeof(err));
	memset(&st, 0, sizeof(st));
	s = req("blue", 8001, NULL, 0);
	TAP_OK(core && shadow_core_classify(core, &s, &st) == 0,
	       "with the override the captured server gets shadow copies");
	s = req("blue", 8001, &marker, 1);
	TAP_OK(core && shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_LOOP] == 1,
	       "... but never the copies themselves (they carry the marker)");
	shadow_core_free(core);
	opt(&c, "no-shadow-header", NULL, err);
	core = shadow_core_create(&c, NULL, err, sizeof(err));
	memset(&st, 0, sizeof(st));
	s = req("blue", 8001, NULL, 0);
	TAP_OK(core && shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_LOOP] == 1 &&
		   st.lane[0].dropped[SHADOW_DROP_PRODUCTION] == 0,
	       "no marker: traffic to the lane's own target is a loop, override or not");
	s = req("blue", 9000, &marker, 1);
	TAP_OK(core && shadow_core_classify(core, &s, &st) == -1 &&
		   st.lane[0].dropped[SHADOW_DROP_LOOP] == 2,
	       "no marker sent: the default marker name is still recognised");
	TAP_OK(core && shadow_core_warning(core, "shadow_", msg, sizeof(msg)) == 1 &&
		   strstr(msg, "shadow_blue_dropped_loop") && strstr(msg, "--no-shadow-header"),
	       "the loop warning names the cause and the counter");
	shadow_core_free(core);
}

static void test_reconfigure(void)
{
	struct shadow_conf c, n;
	char err[512];
	shadow_conf_init(&c);
	opt(&c, "lane", "blue=http://127.0.0.1:8001", err);
	opt(&c, "lane", "red=http://127.0.0.1:8002", err);
	shadow_conf_check(&c, err, sizeof(err));
	struct shadow_core *core = shadow_core_create(&c, NULL, err, sizeof(err));
	TAP_OK(core && shadow_core_switches(core) == 1, "reconfigure: core created (1 switch)");
	if (!core)
		return;
	struct shadow_stats *st = shadow_core_stats(core);
	struct store_session s = req("blue", 9000, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, st) == 0 &&
		   shadow_core_lane_set_paused(core, 0, true) == 0 &&
		   shadow_core_classify(core, &s, st) == -1 && st->lane[0].colored == 2 &&
		   st->lane[0].dropped[SHADOW_DROP_PAUSED] == 1,
	       "reconfigure: blue colored twice, paused once");
	s = req("red", 9000, NULL, 0);
	int red = shadow_core_classify(core, &s, st);

	/* blue's target moves to :8003, red goes, green comes with :8004 at 5/s. */
	shadow_conf_init(&n);
	opt(&n, "lane", "blue=http://127.0.0.1:8003", err);
	opt(&n, "lane", "green=http://127.0.0.1:8004", err);
	opt(&n, "lane-rate", "green=5/s", err);
	shadow_conf_check(&n, err, sizeof(err));
	TAP_OK(shadow_core_reconfigure(core, &n, err, sizeof(err)) == 0 &&
		   shadow_core_pending_switch(core) &&
		   shadow_core_lane_find(core, (const uint8_t *)"green", 5) == -1 &&
		   shadow_core_reconfigure(core, &n, err, sizeof(err)) == -EBUSY,
	       "reconfigure: prepared, not in force before the owner switches; a second waits");
	TAP_OK(shadow_core_apply(core) == 1 && !shadow_core_pending_switch(core) &&
		   shadow_core_switches(core) == 2 && shadow_core_apply(core) == 0,
	       "reconfigure: the owner switches once");
	struct shadow_lane_info bi, ri, gi;
	shadow_core_lane_info(core, 0, &bi);
	shadow_core_lane_info(core, 1, &ri);
	shadow_core_lane_info(core, 2, &gi);
	TAP_OK(shadow_core_lanes(core) == 3 && !strcmp(gi.name, "green") && !gi.removed &&
		   gi.rate == 5 && !gi.paused && ri.removed && !strcmp(ri.name, "red") &&
		   bi.paused && bi.n_urls == 1 && !strcmp(bi.urls[0], "http://127.0.0.1:8003"),
	       "reconfigure: blue keeps its pause with its new target, red removed, green new");
	TAP_OK(shadow_core_lane_find(core, (const uint8_t *)"red", 3) == -1 &&
		   shadow_core_lane_find(core, (const uint8_t *)"green", 5) == 2 &&
		   shadow_core_lane_set_paused(core, 1, true) == -EINVAL,
	       "reconfigure: red is not found any more (cannot be paused), green is slot 2");
	TAP_OK(red == 1 && shadow_core_submit(core, 1, &s, 1, 0) == SHADOW_DROP_STOPPED &&
		   st->lane[1].dropped[SHADOW_DROP_STOPPED] == 1,
	       "reconfigure: a request classified for red before the switch is counted stopped");
	s = req("red", 9000, NULL, 0);
	uint64_t nl = st->no_lane;
	TAP_OK(shadow_core_classify(core, &s, st) == -1 && st->no_lane == nl + 1,
	       "reconfigure: red's requests now are colored_without_lane");
	shadow_core_lane_set_paused(core, 0, false);
	s = req("blue", 8003, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, st) == -1 &&
		   st->lane[0].dropped[SHADOW_DROP_PRODUCTION] == 1 && st->lane[0].colored == 3,
	       "reconfigure: blue's guard follows its new target; its counters go on (3)");
	s = req("green", 8001, NULL, 0);
	TAP_OK(shadow_core_classify(core, &s, st) == 2 && st->lane[2].colored == 1,
	       "reconfigure: green counts from 0; blue's old target is no production server now");
	struct ctr_set *set = ctr_set_create(0);
	TAP_OK(set && shadow_core_counters(core, st, "mirror_", "lane_", set) == 0 &&
		   ctr_set_get(set, "lane_red_colored") == 1 &&
		   ctr_set_get(set, "lane_red_dropped_stopped") == 1 &&
		   ctr_set_get(set, "lane_green_colored") == 1 &&
		   ctr_set_get(set, "lane_blue_paused") == 1,
	       "reconfigure: a removed lane's final counts stay in the counters");
	ctr_set_free(set);
	struct shadow_target_info t[5];
	bool rows = shadow_core_targets(core) == 4;
	for (size_t i = 0; rows && i < 4; i++)
		rows &= shadow_core_target_info(core, i, &t[i]) == 0;
	TAP_OK(rows && !strcmp(t[0].lane, "blue") && !t[0].active && !strcmp(t[1].lane, "red") &&
		   !t[1].active && !strcmp(t[2].lane, "blue") && t[2].active &&
		   !strcmp(t[2].url, "http://127.0.0.1:8003") && !strcmp(t[3].lane, "green") &&
		   t[3].active && shadow_core_target_info(core, 4, &t[4]) == -EINVAL,
	       "reconfigure: target rows: old ones kept inactive, blue's new one active");

	/* Refused: more lane names than a run may hold. Nothing changes. */
	shadow_conf_init(&n);
	for (int i = 0; i < SHADOW_MAX_LANES - 1; i++) {
		char a[64];
		snprintf(a, sizeof(a), "l%d=http://127.0.0.1:%d", i, 8100 + i);
		opt(&n, "lane", a, err);
	}
	shadow_conf_check(&n, err, sizeof(err));
	err[0] = 0;
	TAP_OK(shadow_core_reconfigure(core, &n, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "at most 16 lane names") && !shadow_core_pending_switch(core) &&
		   shadow_core_apply(core) == 0 && shadow_core_lanes(core) == 3 &&
		   shadow_core_switches(core) == 2,
	       "reconfigure: too many lane names over the run: refused, nothing changes");
	shadow_core_free(core);
}

int main(void)
{
	test_options();
	test_classify();
	test_reconfigure();
	return tap_done();
}
