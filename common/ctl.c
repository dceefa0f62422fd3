/* SPDX-License-Identifier: MIT */
/*
 * ctl - control socket, /metrics listener, Prometheus text and the
 * protocol's client (common/ctl.h; the protocol is docs/operations.md).
 *
 * One poll(2) set: the two listeners and up to CTL_MAX_CLIENTS
 * connections, each with a bounded input buffer (one line or one HTTP
 * head) and an output buffer written as the socket takes it. Every socket
 * is non-blocking, so a slow or silent client never stops the caller's
 * loop; each connection has an idle deadline.
 *
 * References: Prometheus "Exposition formats" (text 0.0.4: `# HELP`,
 * `# TYPE`, label value escaping of backslash, double quote and newline),
 * RFC 9112 §3 (request-line = method SP request-target SP HTTP-version),
 * unix(7), poll(2).
 */
#include "common/ctl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"

#define CTL_OUT_MAX ((size_t)64 << 20) /* one reply or metrics page */

const struct ctr_desc ctl_ctr_descs[] = {
    CTR_DESC(struct ctl_stats, commands, "control commands answered"),
    CTR_DESC(struct ctl_stats, errors, "... answered with an error"),
    CTR_DESC(struct ctl_stats, scrapes, "GET /metrics answered"),
    CTR_DESC(struct ctl_stats, bad_requests, "over-long command lines, bad HTTP requests"),
    CTR_DESC(struct ctl_stats, refused, "connections over the limit, closed at once"),
    CTR_DESC(struct ctl_stats, timeouts, "connections closed idle"),
};
const size_t ctl_ctr_count = sizeof(ctl_ctr_descs) / sizeof(ctl_ctr_descs[0]);

enum { KIND_CONTROL, KIND_HTTP };

struct ctl_conn {
	int fd; /* -1: free slot */
	int kind;
	bool closing; /* close once the output is written */
	bool eof;     /* the peer finished sending */
	int64_t deadline_ms;
	struct dbuf in, out;
};

struct ctl_server {
	struct ctl_server_params p;
	char *path; /* the socket file we created (removed at free) */
	int ufd, hfd;
	struct ctl_conn conn[CTL_MAX_CLIENTS];
	struct ctl_stats st;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */
/* ------------------------------------------------------------------ */

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path,
			 sizeof(sa->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

static int open_unix(struct ctl_server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int rc = unix_addr(path, &sa, err, errlen);
	if (rc)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return -errno;
	}
	/* A file left by a process that died is replaced; a live server is not. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and is not a socket",
				 path);
			close(fd);
			return -EEXIST;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			snprintf(err, errlen,
				 "control socket %s: another process is listening there", path);
			close(fd);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	/* Owner only from the start: no window where others could connect. */
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc == 0 && chmod(path, 0600) != 0)
		e = errno, rc = -1;
	if (rc == 0 && listen(fd, 16) != 0)
		e = errno, rc = -1;
	if (rc != 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	s->path = mem_strdup(path);
	if (!s->path) {
		close(fd);
		unlink(path);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->ufd = fd;
	return 0;
}

static int open_http(struct ctl_server *s, const char *addr, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	size_t hl = colon ? (size_t)(colon - addr) : 0;
	if (!colon || !colon[1] || hl >= sizeof(host)) {
		snprintf(err, errlen, "--metrics %s: give HOST:PORT (e.g. 127.0.0.1:9464)", addr);
		return -EINVAL;
	}
	memcpy(host, addr, hl);
	host[hl] = 0;
	/* [::1]:9464 */
	char *h = host;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		h = host + 1;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
	int g = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "--metrics %s: %s", addr, gai_strerror(g));
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1, e = 0;
	if (fd < 0)
		e = errno;
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		 bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0)
		e = errno;
	freeaddrinfo(ai);
	if (e) {
		snprintf(err, errlen, "--metrics %s: %s", addr, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	s->hfd = fd;
	return 0;
}

struct ctl_server *ctl_server_create(const struct ctl_server_params *p, char *err, size_t errlen)
{
	struct ctl_server *s = mem_calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->ufd = s->hfd = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		s->conn[i].fd = -1;
	if ((p->control_path && open_unix(s, p->control_path, err, errlen) < 0) ||
	    (p->metrics_addr && open_http(s, p->metrics_addr, err, errlen) < 0)) {
		ctl_server_free(s);
		return NULL;
	}
	return s;
}

static void conn_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	dbuf_release(&c->in);
	dbuf_release(&c->out);
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		conn_close(&s->conn[i]);
	if (s->ufd >= 0)
		close(s->ufd);
	if (s->hfd >= 0)
		close(s->hfd);
	if (s->path)
		unlink(s->path);
	mem_free(s->path);
	mem_free(s);
}

const struct ctl_stats *ctl_server_stats(const struct ctl_server *s)
{
	return &s->st;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

int ctl_split(char *line, char **argv)
{
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return n;
		if (n == CTL_MAX_ARGS)
			return -E2BIG;
		argv[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = 0;
	}
}

static bool tchar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int ctl_http_request(const char *p, size_t n, const char **method, size_t *mlen,
		     const char **target, size_t *tlen)
{
	const char *end = memchr(p, '\n', n);
	if (!end)
		return -EBADMSG;
	size_t ll = (size_t)(end - p);
	if (ll && p[ll - 1] == '\r')
		ll--;
	size_t i = 0;
	while (i < ll && tchar(p[i]))
		i++;
	if (i == 0 || i >= ll || p[i] != ' ')
		return -EBADMSG;
	*method = p;
	*mlen = i;
	size_t t0 = ++i;
	while (i < ll && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == t0 || i >= ll || p[i] != ' ')
		return -EBADMSG;
	*target = p + t0;
	*tlen = i - t0;
	i++;
	if (ll - i != 8 || memcmp(p + i, "HTTP/1.", 7) || (p[i + 7] != '0' && p[i + 7] != '1'))
		return -EBADMSG;
	return 0;
}

/* Answer the command line @p line[0..n) of connection @p c. */
static void do_command(struct ctl_server *s, struct ctl_conn *c, char *line)
{
	char err[512] = "";
	char *argv[CTL_MAX_ARGS];
	struct dbuf pay;
	int rc, argc = ctl_split(line, argv);

	dbuf_init(&pay, CTL_OUT_MAX);
	s->st.commands++;
	if (argc < 0) {
		rc = -E2BIG;
		snprintf(err, sizeof(err), "too many words (at most %d)", CTL_MAX_ARGS);
	} else if (argc == 0) {
		rc = -EINVAL;
		snprintf(err, sizeof(err), "empty command (try: help)");
	} else {
		rc = s->p.on_command(s->p.ctx, argc, argv, &pay, err, sizeof(err));
		if (rc == 0 && dbuf_error(&pay)) {
			rc = dbuf_error(&pay);
			snprintf(err, sizeof(err), "reply too large");
		}
	}
	if (rc < 0) {
		s->st.errors++;
		dbuf_printf(&c->out, "error: %s\n\n", *err ? err : strerror(-rc));
	} else {
		dbuf_puts(&c->out, "ok\n");
		if (pay.len)
			dbuf_append(&c->out, pay.data, pay.len);
		if (pay.len && pay.data[pay.len - 1] != '\n')
			dbuf_putc(&c->out, '\n');
		dbuf_putc(&c->out, '\n');
	}
	dbuf_release(&pay);
}

static void http_reply(struct ctl_conn *c, const char *status, const char *ctype,
		       const struct dbuf *body, const char *text)
{
	size_t len = body ? body->len : strlen(text);
	dbuf_printf(&c->out,
		    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n",
		    status, ctype, len);
	if (body && body->len)
		dbuf_append(&c->out, body->data, body->len);
	else if (!body)
		dbuf_puts(&c->out, text);
	c->closing = true;
}

static void do_http(struct ctl_server *s, struct ctl_conn *c, size_t head_len)
{
	const char *m, *t;
	size_t ml, tl;
	if (ctl_http_request((const char *)c->in.data, head_len, &m, &ml, &t, &tl) < 0) {
		s->st.bad_requests++;
		http_reply(c, "400 Bad Request", "text/plain", NULL, "bad request\n");
		return;
	}
	bool head = ml == 4 && !memcmp(m, "HEAD", 4);
	if (!(ml == 3 && !memcmp(m, "GET", 3)) && !head) {
		http_reply(c, "405 Method Not Allowed", "text/plain", NULL, "GET /metrics\n");
		return;
	}
	/* The path, without a query string: /metrics or /metrics?x=y */
	size_t pl = 0;
	while (pl < tl && t[pl] != '?')
		pl++;
	if (!(pl == 8 && !memcmp(t, "/metrics", 8))) {
		http_reply(c, "404 Not Found", "text/plain", NULL,
			   "only /metrics is served here\n");
		return;
	}
	struct dbuf body;
	dbuf_init(&body, CTL_OUT_MAX);
	int rc = s->p.on_metrics ? s->p.on_metrics(s->p.ctx, &body) : -ENOENT;
	if (rc == 0 && !dbuf_error(&body)) {
		s->st.scrapes++;
		if (head) {
			/* Same headers as GET, no body. */
			size_t len = body.len;
			dbuf_reset(&body);
			dbuf_printf(
			    &c->out,
			    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
			    "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			    len);
			c->closing = true;
		} else {
			http_reply(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body,
				   NULL);
		}
	} else {
		http_reply(c, "500 Internal Server Error", "text/plain", NULL,
			   "metrics could not be built\n");
	}
	dbuf_release(&body);
}

/* Handle what connection @p c has buffered. @return the requests answered. */
static int process(struct ctl_server *s, struct ctl_conn *c)
{
	int n = 0;
	if (c->kind == KIND_HTTP) {
		if (c->closing)
			return 0;
		const uint8_t *d = c->in.data;
		for (size_t i = 0; i + 1 < c->in.len; i++) {
			/* The head ends at an empty line (CRLF CRLF, or bare LF LF). */
			if (d[i] == '\n' &&
			    (d[i + 1] == '\n' ||
			     (d[i + 1] == '\r' && i + 2 < c->in.len && d[i + 2] == '\n'))) {
				do_http(s, c, i + 1);
				return 1;
			}
		}
		if (c->in.len >= CTL_LINE_MAX || c->eof) {
			s->st.bad_requests++;
			http_reply(
			    c, c->eof ? "400 Bad Request" : "431 Request Header Fields Too Large",
			    "text/plain", NULL, "bad request\n");
		}
		return 0;
	}
	for (;;) {
		uint8_t *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (!nl)
			break;
		size_t ll = (size_t)(nl - c->in.data);
		*nl = 0;
		if (ll && nl[-1] == '\r')
			nl[-1] = 0;
		do_command(s, c, (char *)c->in.data);
		dbuf_consume(&c->in, ll + 1);
		n++;
	}
	if (c->in.len >= CTL_LINE_MAX) {
		s->st.bad_requests++;
		dbuf_printf(&c->out, "error: line longer than %d bytes\n\n", CTL_LINE_MAX);
		c->closing = true;
	} else if (c->eof) {
		c->closing = true; /* a last line without newline is not a command */
	}
	return n;
}

static void do_accept(struct ctl_server *s, int lfd, int kind)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ctl_conn *c = NULL;
		for (int i = 0; i < CTL_MAX_CLIENTS && !c; i++)
			if (s->conn[i].fd < 0)
				c = &s->conn[i];
		if (!c) {
			s->st.refused++;
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->kind = kind;
		c->deadline_ms = now_ms() + CTL_IDLE_MS;
		/* One line or head more than the limit, so an over-long one is seen. */
		dbuf_init(&c->in, CTL_LINE_MAX + 1);
		dbuf_init(&c->out, CTL_OUT_MAX);
	}
}

static void do_read(struct ctl_conn *c)
{
	uint8_t buf[4096];
	for (;;) {
		size_t room = CTL_LINE_MAX + 1 - c->in.len;
		if (!room)
			return;
		ssize_t r = read(c->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
		if (r > 0) {
			dbuf_append(&c->in, buf, (size_t)r);
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = true;
		return;
	}
}

static void do_write(struct ctl_conn *c)
{
	while (c->out.len) {
		ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (w > 0) {
			dbuf_consume(&c->out, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->closing = true;
		dbuf_reset(&c->out);
		return;
	}
}

int ctl_server_poll(struct ctl_server *s, int timeout_ms)
{
	struct pollfd pf[CTL_MAX_CLIENTS + 2];
	int map[CTL_MAX_CLIENTS + 2];
	nfds_t n = 0;
	int done = 0;
	if (s->ufd >= 0) {
		pf[n] = (struct pollfd){.fd = s->ufd, .events = POLLIN};
		map[n++] = -1;
	}
	if (s->hfd >= 0) {
		pf[n] = (struct pollfd){.fd = s->hfd, .events = POLLIN};
		map[n++] = -2;
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_conn *c = &s->conn[i];
		if (c->fd < 0)
			continue;
		short ev = c->out.len ? POLLOUT : 0;
		if (!c->eof && !c->closing)
			ev |= POLLIN;
		pf[n] = (struct pollfd){.fd = c->fd, .events = ev};
		map[n++] = i;
	}
	int r = poll(pf, n, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	int64_t now = now_ms();
	for (nfds_t k = 0; k < n; k++) {
		if (map[k] < 0) {
			if (pf[k].revents & POLLIN)
				do_accept(s, pf[k].fd, map[k] == -1 ? KIND_CONTROL : KIND_HTTP);
			continue;
		}
		struct ctl_conn *c = &s->conn[map[k]];
		if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
			do_read(c);
			c->deadline_ms = now + CTL_IDLE_MS;
			done += process(s, c);
		}
		if (c->out.len)
			do_write(c);
		if ((c->closing || c->eof) && !c->out.len) {
			conn_close(c);
		} else if (now > c->deadline_ms) {
			s->st.timeouts++;
			conn_close(c);
		}
	}
	return done;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

int ctl_request(const char *path, const char *line, int timeout_ms, struct dbuf *out, char *err,
		size_t errlen)
{
	struct sockaddr_un sa;
	int rc = unix_addr(path, &sa, err, errlen);
	if (rc)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		snprintf(err, errlen,
			 "cannot connect to %s: %s (is the program running with --control %s?)",
			 path, strerror(errno), path);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	struct dbuf rep;
	dbuf_init(&rep, CTL_OUT_MAX);
	size_t ll = strlen(line), off = 0;
	int64_t end = now_ms() + timeout_ms;
	rc = -ETIMEDOUT;
	while (off < ll + 1) {
		ssize_t w = off < ll ? send(fd, line + off, ll - off, MSG_NOSIGNAL)
				     : send(fd, "\n", 1, MSG_NOSIGNAL);
		if (w <= 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		/* The reply ends at its empty line: "\n\n" after the status line. */
		const uint8_t *d = rep.data;
		bool whole = false;
		for (size_t i = 1; i < rep.len && !whole; i++)
			whole = d[i] == '\n' && d[i - 1] == '\n';
		if (whole)
			break;
		int left = (int)(end - now_ms());
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&pf, 1, left) <= 0) {
			snprintf(err, errlen, "%s: no reply within %d ms", path, timeout_ms);
			rc = -ETIMEDOUT;
			goto out;
		}
		uint8_t buf[4096];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0 || dbuf_append(&rep, buf, (size_t)r) < 0) {
			snprintf(err, errlen, "%s: the reply ended early", path);
			rc = -EPROTO;
			goto out;
		}
	}
	const char *d = (const char *)rep.data;
	const char *nl = memchr(d, '\n', rep.len);
	size_t sl = (size_t)(nl - d);
	if (sl == 2 && !memcmp(d, "ok", 2)) {
		/* payload: after the status line, without the final empty line */
		size_t pl = rep.len - sl - 1;
		rc = pl > 1 ? dbuf_append(out, nl + 1, pl - 1) : 0;
		if (rc)
			snprintf(err, errlen, "reply too large");
	} else if (sl > 7 && !memcmp(d, "error: ", 7)) {
		snprintf(err, errlen, "%.*s", (int)(sl - 7), d + 7);
		rc = -EBADMSG;
	} else {
		snprintf(err, errlen, "%s: not a dyetap control socket", path);
		rc = -EPROTO;
	}
out:
	close(fd);
	dbuf_release(&rep);
	return rc;
}

int ctl_notify(const char *state)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = e ? strlen(e) : 0;
	if (!n)
		return 0;
	if ((e[0] != '/' && e[0] != '@') || n >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, e, n);
	if (e[0] == '@')
		sa.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	int rc = w < 0 ? -errno : 1;
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Prometheus text                                                     */
/* ------------------------------------------------------------------ */

struct prom_sample {
	char *family; /* owned */
	char *labels; /* owned, escaped `a="b",c="d"` or NULL */
	const char *help;
	enum ctl_prom_type type;
	double value;
	size_t seq; /* insertion order, for a stable sort */
};

struct ctl_prom {
	struct prom_sample *v;
	size_t n, cap;
};

struct ctl_prom *ctl_prom_create(void)
{
	return mem_calloc(1, sizeof(struct ctl_prom));
}

void ctl_prom_free(struct ctl_prom *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		mem_free(p->v[i].family);
		mem_free(p->v[i].labels);
	}
	mem_free(p->v);
	mem_free(p);
}

static bool valid_name(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return false;
	return true;
}

static void put_label(struct dbuf *b, const char *name, const char *v)
{
	if (b->len)
		dbuf_putc(b, ',');
	dbuf_printf(b, "%s=\"", name);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			dbuf_putc(b, '\\'), dbuf_putc(b, (uint8_t)*v);
		else if (*v == '\n')
			dbuf_puts(b, "\\n");
		else
			dbuf_putc(b, (uint8_t)*v);
	}
	dbuf_putc(b, '"');
}

int ctl_prom_add(struct ctl_prom *p, enum ctl_prom_type type, const char *family, const char *help,
		 const char *l1, const char *v1, const char *l2, const char *v2, double value)
{
	if (!valid_name(family) || (l1 && !valid_name(l1)) || (l2 && !valid_name(l2)))
		return -EINVAL;
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 64;
		struct prom_sample *nv = mem_realloc(p->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		p->v = nv;
		p->cap = nc;
	}
	struct prom_sample *s = &p->v[p->n];
	memset(s, 0, sizeof(*s));
	s->family = mem_strdup(family);
	if (!s->family)
		return -ENOMEM;
	if (l1) {
		struct dbuf b;
		dbuf_init(&b, 4096);
		put_label(&b, l1, v1 ? v1 : "");
		if (l2)
			put_label(&b, l2, v2 ? v2 : "");
		dbuf_putc(&b, 0);
		size_t len;
		s->labels = dbuf_error(&b) ? NULL : (char *)dbuf_detach(&b, &len);
		dbuf_release(&b);
		if (!s->labels) {
			mem_free(s->family);
			return -ENOMEM;
		}
	}
	s->help = help;
	s->type = type;
	s->value = value;
	s->seq = p->n++;
	return 0;
}

/* Make @p in a metric name part into @p out: [a-zA-Z0-9_], others '_'. */
static void sanitize(char *out, size_t cap, const char *in, size_t len)
{
	size_t i = 0;
	for (; i < len && i + 1 < cap; i++) {
		char c = in[i];
		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			     ? c
			     : '_';
	}
	out[i] = 0;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !memcmp(s + a - b, suf, b);
}

int ctl_prom_add_set(struct ctl_prom *p, const struct ctr_set *set, const char *lane_prefix,
		     const char *const *lanes, size_t n_lanes)
{
	const struct ctr_value *v = ctr_set_values(set);
	size_t lp = lane_prefix ? strlen(lane_prefix) : 0;
	int rc = 0;
	for (size_t i = 0; i < ctr_set_count(set); i++) {
		const char *name = v[i].name, *lane = NULL, *rest = name;
		char fam[CTR_NAME_MAX + 32], part[CTR_NAME_MAX + 1];
		if (lp && !strncmp(name, lane_prefix, lp)) {
			/* the longest lane name that fits: lanes "a" and "a_b" */
			size_t best = 0;
			for (size_t k = 0; k < n_lanes; k++) {
				size_t ln = strlen(lanes[k]);
				if (ln > best && !strncmp(name + lp, lanes[k], ln) &&
				    name[lp + ln] == '_' && name[lp + ln + 1]) {
					best = ln;
					lane = lanes[k];
				}
			}
			if (lane)
				rest = name + lp + best + 1;
		}
		sanitize(part, sizeof(part), rest, strlen(rest));
		bool gauge = ends_with(rest, "_us");
		const char *suffix = gauge ? "" : "_total";
		int r;
		if (lane && !strncmp(rest, "dropped_", 8)) {
			r = ctl_prom_add(p, CTL_PROM_COUNTER, "dyetap_lane_dropped_total",
					 "lane requests not mirrored, by reason", "lane", lane,
					 "reason", rest + 8, (double)v[i].value);
		} else if (lane) {
			snprintf(fam, sizeof(fam), "dyetap_lane_%s%s", part, suffix);
			r = ctl_prom_add(p, gauge ? CTL_PROM_GAUGE : CTL_PROM_COUNTER, fam, rest,
					 "lane", lane, NULL, NULL, (double)v[i].value);
		} else {
			snprintf(fam, sizeof(fam), "dyetap_%s%s", part, suffix);
			r = ctl_prom_add(p, gauge ? CTL_PROM_GAUGE : CTL_PROM_COUNTER, fam, name,
					 NULL, NULL, NULL, NULL, (double)v[i].value);
		}
		if (r && !rc)
			rc = r;
	}
	return rc;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct prom_sample *x = a, *y = b;
	int c = strcmp(x->family, y->family);
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void put_help(struct dbuf *b, const char *h)
{
	for (; *h; h++) {
		if (*h == '\\')
			dbuf_puts(b, "\\\\");
		else if (*h == '\n')
			dbuf_puts(b, "\\n");
		else
			dbuf_putc(b, (uint8_t)*h);
	}
}

int ctl_prom_render(struct ctl_prom *p, struct dbuf *out)
{
	if (p->n)
		qsort(p->v, p->n, sizeof(*p->v), cmp_sample);
	for (size_t i = 0; i < p->n; i++) {
		const struct prom_sample *s = &p->v[i];
		if (i == 0 || strcmp(s->family, p->v[i - 1].family)) {
			dbuf_printf(out, "# HELP %s ", s->family);
			put_help(out, s->help ? s->help : s->family);
			dbuf_printf(out, "\n# TYPE %s %s\n", s->family,
				    s->type == CTL_PROM_COUNTER ? "counter" : "gauge");
		} else if (i && s->labels && p->v[i - 1].labels &&
			   !strcmp(s->labels, p->v[i - 1].labels)) {
			continue; /* the same series twice: the first one stands */
		}
		dbuf_puts(out, s->family);
		if (s->labels)
			dbuf_printf(out, "{%s}", s->labels);
		/* %.17g keeps every integer below 2^53 exact. */
		dbuf_printf(out, " %.17g\n", s->value);
	}
	return dbuf_error(out);
}
