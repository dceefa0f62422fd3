/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of replay/shadow_sender.h, the queue and sender thread
 * between `dyetap mirror`'s capture thread and the shadow core: a full
 * queue drops and counts (the producer never waits while the capture
 * runs) and the lane's accounting closes; a started sender takes what was
 * queued into the core (mirrored); shadow_sender_call() runs on the sender
 * thread while it runs and on the caller's otherwise; after
 * shadow_sender_backpressure() producers wait for room instead of dropping;
 * stop drains and ends. The lane's target is a real socket on 127.0.0.1
 * that listens and never answers (the kernel completes the connections).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "replay/shadow_sender.h"
#include "tests/tap.h"

static struct store_slice sl(const char *s)
{
	return (struct store_slice){(const uint8_t *)s, strlen(s)};
}

/* A GET colored @p lane to 10.0.0.1:80 (not a lane target), as announced at its last byte. */
static struct store_session req(const char *lane)
{
	struct store_session s;
	memset(&s, 0, sizeof(s));
	s.lane = sl(lane);
	s.ip_version = 4;
	s.dst.addr[0] = 10;
	s.dst.addr[3] = 1;
	s.dst.port = 80;
	s.req.present = true;
	s.req.method = sl("GET");
	s.req.target = sl("/a");
	s.req.version_major = 1;
	s.req.version_minor = 1;
	s.flags = STORE_F_NO_RESPONSE;
	return s;
}

/* A listening socket on 127.0.0.1 that never accepts: its port. */
static int listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

struct call_arg {
	pthread_t caller;
	int on_other_thread;
};

static int on_sender(struct shadow_core *c, void *ctx)
{
	struct call_arg *a = ctx;
	a->on_other_thread = !pthread_equal(pthread_self(), a->caller);
	return shadow_core_lanes(c) == 1 ? 42 : -1;
}

static uint64_t mirrored(const struct shadow_sender *s)
{
	struct shadow_stats t;
	shadow_sender_sum(s, &t);
	return t.lane[0].mirrored;
}

int main(void)
{
	struct shadow_conf conf;
	struct shadow_sender_stats st;
	struct shadow_stats t;
	char err[512] = "", url[64];
	struct store_session s = req("blue");
	int port = 0, lfd = listener(&port);

	TAP_OK(lfd >= 0, "a listening socket on 127.0.0.1");
	shadow_conf_init(&conf);
	snprintf(url, sizeof(url), "blue=http://127.0.0.1:%d", port);
	char *arg = url;
	TAP_OK(shadow_conf_option(&conf, "lane", arg, err, sizeof(err)) == 1 &&
		   shadow_conf_option(&conf, "drain-timeout", (char[]){"100ms"}, err,
				      sizeof(err)) == 1 &&
		   shadow_conf_check(&conf, err, sizeof(err)) == 0,
	       "a lane to it, drain 100 ms");
	struct shadow_core *core = shadow_core_create(&conf, NULL, err, sizeof(err));
	TAP_OK(core != NULL, "core created");
	if (!core)
		return tap_done();

	struct shadow_sender_params p = {.core = core, .n_producers = 1, .queue = 3};
	TAP_OK(shadow_sender_create(&(struct shadow_sender_params){.core = core}, err,
				    sizeof(err)) == NULL &&
		   strstr(err, "producers"),
	       "no producer: refused with a message");
	struct shadow_sender *snd = shadow_sender_create(&p, err, sizeof(err));
	TAP_OK(snd != NULL, "sender created (queue 3)");
	if (!snd)
		return tap_done();

	/* Not started: nothing takes the queue, so the 4th to 6th do not fit. */
	int queued = 0;
	for (int i = 0; i < 6; i++)
		queued += shadow_sender_request(snd, 0, &s, 1, 0) == 0;
	shadow_sender_stats(snd, &st);
	shadow_sender_sum(snd, &t);
	TAP_OK(queued == 3 && st.queued == 3 && st.queue_full == 3 && st.queue_high == 3,
	       "a full queue drops at once and counts queue_full (3 queued, 3 dropped)");
	TAP_OK(t.lane[0].colored == 6 && t.lane[0].dropped[SHADOW_DROP_QUEUE_FULL] == 3 &&
		   t.lane[0].mirrored == 0,
	       "the lane counts them dropped_queue_full; nothing mirrored yet");
	TAP_OK(shadow_sender_request(snd, 0, &(struct store_session){.lane = sl("")}, 1, 0) == -1,
	       "an uncolored request is not queued");

	struct call_arg ca = {.caller = pthread_self()};
	TAP_OK(shadow_sender_call(snd, on_sender, &ca) == 42 && !ca.on_other_thread,
	       "call before start: on the caller's thread");

	TAP_OK(shadow_sender_start(snd, err, sizeof(err)) == 0, "started");
	for (int i = 0; i < 500 && mirrored(snd) < 3; i++)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	TAP_OK(mirrored(snd) == 3, "the sender thread takes the queue into the core (3 mirrored)");

	ca.on_other_thread = 0;
	TAP_OK(shadow_sender_call(snd, on_sender, &ca) == 42 && ca.on_other_thread,
	       "call while running: on the sender thread, its result returned");
	shadow_sender_stats(snd, &st);
	TAP_OK(st.sender_calls == 1 && st.sender_slices > 0, "sender_calls and sender_slices");

	/* Backpressure: 50 more requests, more than the queue holds, all taken. */
	shadow_sender_backpressure(snd);
	for (int i = 0; i < 50; i++)
		(void)shadow_sender_request(snd, 0, &s, 2 + (uint64_t)i, 0);
	shadow_sender_stop(snd);
	shadow_sender_stats(snd, &st);
	shadow_sender_sum(snd, &t);
	TAP_OK(st.queued == 53 && st.queue_full == 3,
	       "with backpressure a full queue waits: 50 more queued, none dropped");
	uint64_t drops = 0;
	for (int k = 0; k < SHADOW_DROP_COUNT; k++)
		if (k != SHADOW_DROP_STOPPED)
			drops += t.lane[0].dropped[k];
	TAP_OK(t.lane[0].colored == 56 && t.lane[0].colored == t.lane[0].mirrored + drops,
	       "after stop: colored = mirrored + drops (%llu = %llu + %llu)",
	       (unsigned long long)t.lane[0].colored, (unsigned long long)t.lane[0].mirrored,
	       (unsigned long long)drops);
	TAP_OK(shadow_core_pending(core) == 0, "stop drained the core: nothing pending");

	shadow_sender_free(snd);
	shadow_core_free(core);
	close(lfd);
	return tap_done();
}
