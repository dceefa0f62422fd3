/* SPDX-License-Identifier: MIT */
/*
 * test_ctl - common/ctl.h: command splitting, the HTTP request line (RFC
 * 9112 §3), the control socket over a real Unix socket (replies, errors,
 * over-long lines, stale and live socket files, mode 0600) and the
 * Prometheus text (escaping as the exposition format specifies:
 * backslash, double quote and newline in label values; backslash and
 * newline in HELP). The page as a whole is parsed by Prometheus' own
 * parser in tests/ops/ops_e2e.py.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctl.h"
#include "tests/tap.h"

static int on_cmd(void *ctx, int argc, char **argv, struct dbuf *out, char *err, size_t errlen)
{
	(void)ctx;
	if (!strcmp(argv[0], "echo")) {
		for (int i = 1; i < argc; i++)
			dbuf_printf(out, "%s%s", i > 1 ? " " : "", argv[i]);
		return 0;
	}
	snprintf(err, errlen, "unknown command '%s'", argv[0]);
	return -EINVAL;
}

static int quit;
static struct ctl_server *srv;

static void *serve(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE))
		ctl_server_poll(srv, 10);
	return NULL;
}

static void test_split(void)
{
	char l1[] = "  pause\t blue  ", l2[] = "a b c d e f g h i", l3[] = "   ";
	char *av[CTL_MAX_ARGS];
	int n = ctl_split(l1, av);
	TAP_OK(n == 2 && !strcmp(av[0], "pause") && !strcmp(av[1], "blue"),
	       "split: blanks and tabs separate words");
	TAP_EQ_U64(ctl_split(l2, av), (uint64_t)-E2BIG, "split: more than %d words refused",
		   CTL_MAX_ARGS);
	TAP_EQ_U64(ctl_split(l3, av), 0, "split: blanks only is no word");
}

static void test_http(void)
{
	const char *m, *t;
	size_t ml, tl;
	/* RFC 9112 §3.2.1's origin-form example */
	const char ok1[] = "GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n";
	TAP_OK(ctl_http_request(ok1, strlen(ok1), &m, &ml, &t, &tl) == 0 && ml == 3 &&
		   !memcmp(m, "GET", 3) && tl == 12 && !memcmp(t, "/where?q=now", 12),
	       "http: RFC 9112 origin-form request line");
	const char *bad[] = {
	    "GET  /metrics HTTP/1.1\r\n\r\n",			       /* two spaces */
	    "GET /metrics HTTP/2.0\r\n\r\n",  "GET /metrics\r\n\r\n",  /* HTTP/0.9 */
	    " /metrics HTTP/1.1\r\n\r\n",     "GET /metrics HTTP/1.1", /* no line end */
	    "G(T /metrics HTTP/1.1\r\n\r\n",  "GET /met rics HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_OK(ctl_http_request(bad[i], strlen(bad[i]), &m, &ml, &t, &tl) == -EBADMSG,
		       "http: refused #%zu", i);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_socket(void)
{
	char path[64], err[512];
	snprintf(path, sizeof(path), "/tmp/dyetap-test-ctl-%d.sock", (int)getpid());
	/* a stale socket file: bound, then its owner went away */
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	TAP_OK(stale >= 0 && bind(stale, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	       "socket: a stale socket file made");
	close(stale);

	struct ctl_server_params p = {.control_path = path, .on_command = on_cmd};
	srv = ctl_server_create(&p, err, sizeof(err));
	TAP_OK(srv != NULL, "socket: created over a stale file (%.100s)", srv ? "" : err);
	if (!srv)
		return;
	struct stat st;
	TAP_OK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	       "socket: mode 0600");
	struct ctl_server *two = ctl_server_create(&p, err, sizeof(err));
	TAP_OK(!two && strstr(err, "another process is listening"),
	       "socket: a live one is not taken over (%.100s)", err);
	ctl_server_free(two);

	pthread_t th;
	pthread_create(&th, NULL, serve, NULL);
	struct dbuf out;
	dbuf_init(&out, 1 << 20);
	int rc = ctl_request(path, "echo  hello   world", 5000, &out, err, sizeof(err));
	dbuf_putc(&out, 0);
	TAP_OK(rc == 0 && !strcmp((char *)out.data, "hello world\n"),
	       "request: ok reply, payload without status and end line");
	dbuf_reset(&out);
	rc = ctl_request(path, "nope", 5000, &out, err, sizeof(err));
	TAP_OK(rc == -EBADMSG && !strcmp(err, "unknown command 'nope'"),
	       "request: error reply with its message");
	rc = ctl_request(path, "", 5000, &out, err, sizeof(err));
	TAP_OK(rc == -EBADMSG && strstr(err, "empty command"), "request: empty line refused");

	/* a line over the limit: error, connection closed */
	int fd = raw_connect(path);
	char *big = malloc(CTL_LINE_MAX + 100);
	memset(big, 'a', CTL_LINE_MAX + 99);
	big[CTL_LINE_MAX + 99] = '\n';
	ssize_t w = fd >= 0 ? write(fd, big, CTL_LINE_MAX + 100) : -1;
	char rep[256] = "";
	size_t got = 0;
	for (ssize_t r;
	     got < sizeof(rep) - 1 && (r = read(fd, rep + got, sizeof(rep) - 1 - got)) > 0;)
		got += (size_t)r;
	TAP_OK(w > 0 && strstr(rep, "error: line longer than"),
	       "over-long line: an error, then the connection is closed");
	free(big);
	if (fd >= 0)
		close(fd);
	/* two commands on one connection, in order */
	fd = raw_connect(path);
	const char two_cmds[] = "echo a\r\necho b\n";
	w = write(fd, two_cmds, sizeof(two_cmds) - 1);
	shutdown(fd, SHUT_WR);
	got = 0;
	memset(rep, 0, sizeof(rep));
	for (ssize_t r;
	     got < sizeof(rep) - 1 && (r = read(fd, rep + got, sizeof(rep) - 1 - got)) > 0;)
		got += (size_t)r;
	TAP_EQ_STR(rep, "ok\na\n\nok\nb\n\n", "two commands, two replies (CRLF accepted)");
	close(fd);

	__atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	const struct ctl_stats *cs = ctl_server_stats(srv);
	TAP_OK(cs->commands == 5 && cs->errors == 2 && cs->bad_requests == 1,
	       "counters: commands 5, errors 2, bad_requests 1");
	ctl_server_free(srv);
	TAP_OK(access(path, F_OK) != 0, "free removes the socket file");
	rc = ctl_request(path, "echo", 1000, &out, err, sizeof(err));
	TAP_OK(rc == -ENOENT && strstr(err, "cannot connect"), "request: no server, says so");
	dbuf_release(&out);

	/* a regular file where the socket should go is not replaced */
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
	srv = ctl_server_create(&p, err, sizeof(err));
	TAP_OK(!srv && strstr(err, "not a socket"), "a regular file is never replaced");
	ctl_server_free(srv);
	unlink(path);
}

static void test_prom(void)
{
	struct ctl_prom *p = ctl_prom_create();
	struct ctr_set *set = ctr_set_create(0);
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	ctr_set_put(set, 7, "src_packets");
	ctr_set_put(set, 3, "lane_blue_sent");
	ctr_set_put(set, 2, "lane_blue_x_sent"); /* lane "blue_x" */
	ctr_set_put(set, 1, "lane_blue_dropped_loop");
	ctr_set_put(set, 42, "mirror_delay_p99_us");
	ctr_set_put(set, 5, "lane_green_sent"); /* not a lane given: a plain counter */
	const char *lanes[] = {"blue", "blue_x"};
	TAP_OK(ctl_prom_add_set(p, set, "lane_", lanes, 2) == 0, "prom: set added");
	TAP_OK(ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_build_info", "a\\b\nc", "version",
			    "1\"2\\3\n4", NULL, NULL, 1) == 0,
	       "prom: a gauge with a label to escape");
	TAP_EQ_U64(ctl_prom_add(p, CTL_PROM_GAUGE, "9bad", "", NULL, NULL, NULL, NULL, 1),
		   (uint64_t)-EINVAL, "prom: a name starting with a digit refused");
	ctl_prom_render(p, &b);
	dbuf_putc(&b, 0);
	const char *want =
	    "# HELP dyetap_build_info a\\\\b\\nc\n"
	    "# TYPE dyetap_build_info gauge\n"
	    "dyetap_build_info{version=\"1\\\"2\\\\3\\n4\"} 1\n"
	    "# HELP dyetap_lane_dropped_total lane requests not mirrored, by reason\n"
	    "# TYPE dyetap_lane_dropped_total counter\n"
	    "dyetap_lane_dropped_total{lane=\"blue\",reason=\"loop\"} 1\n"
	    "# HELP dyetap_lane_green_sent_total lane_green_sent\n"
	    "# TYPE dyetap_lane_green_sent_total counter\n"
	    "dyetap_lane_green_sent_total 5\n"
	    "# HELP dyetap_lane_sent_total sent\n"
	    "# TYPE dyetap_lane_sent_total counter\n"
	    "dyetap_lane_sent_total{lane=\"blue\"} 3\n"
	    "dyetap_lane_sent_total{lane=\"blue_x\"} 2\n"
	    "# HELP dyetap_mirror_delay_p99_us mirror_delay_p99_us\n"
	    "# TYPE dyetap_mirror_delay_p99_us gauge\n"
	    "dyetap_mirror_delay_p99_us 42\n"
	    "# HELP dyetap_src_packets_total src_packets\n"
	    "# TYPE dyetap_src_packets_total counter\n"
	    "dyetap_src_packets_total 7\n";
	TAP_EQ_STR((const char *)b.data, want,
		   "prom: families sorted, HELP/TYPE once, labels escaped, lanes split");
	dbuf_release(&b);
	ctr_set_free(set);
	ctl_prom_free(p);
}

int main(void)
{
	test_split();
	test_http();
	test_socket();
	test_prom();
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
