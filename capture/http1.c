/* SPDX-License-Identifier: MIT */
/*
 * http1 - incremental HTTP/1.x message parser over llhttp (see http1.h).
 *
 * References: RFC 9112 (HTTP/1.1 message syntax: framing §6, chunked
 * coding and trailers §7.1, close-delimited bodies §6.3), RFC 9110 §9.3.6
 * (CONNECT), §15.2 (1xx), §15.3.5/§15.4.5 (204/304 carry no body), §7.8
 * (Upgrade); llhttp 8.1 (Debian node-llhttp), whose callbacks we drive.
 *
 * Memory: the request/status line and header fields are copied once, as
 * llhttp hands out their spans, into one header block (a dbuf capped at
 * max_header_bytes); the message's slices point into it. Because the block
 * may move while it grows (and trailers arrive after the body), fields are
 * kept as offsets and turned into pointers ("fixup") before any message
 * view is handed out. The body goes to a second dbuf capped at max_body;
 * body_len counts every de-chunked byte, so a 1 GiB body costs at most the
 * cap.
 *
 * Message boundaries: on_message_complete returns HPE_PAUSED, so
 * llhttp_execute() stops right after the message and its error position is
 * the first byte not consumed; http1_next() resumes. CONNECT requests,
 * Upgrade requests and 101/2xx-to-CONNECT responses make llhttp return
 * HPE_PAUSED_UPGRADE, reported as HTTP1_TUNNEL.
 *
 * Leniency (what real peers accept, so capture does not lose traffic a
 * server answered):
 *  - LENIENT_HEADERS: header values with bytes outside the RFC token set
 *    (raw UTF-8, control characters) are kept as is; browsers and nginx
 *    accept them.
 *  - LENIENT_KEEP_ALIVE: after "Connection: close" or an HTTP/1.0 message
 *    further bytes on the stream are still parsed (an observer must not
 *    discard what a peer did send).
 *  - LENIENT_CHUNKED_LENGTH: Transfer-Encoding together with
 *    Content-Length is accepted; Transfer-Encoding wins (RFC 9112 §6.3 p3).
 *  - Methods: llhttp knows only the registered methods; any other method
 *    token RFC 9110 §9.1 allows (tchar, e.g. CCM_POST, an in-house verb,
 *    a lowercase "get") is read here up to its SP, recorded as sent, and
 *    llhttp is handed "GET" in its place: a request's framing never
 *    depends on its method except for CONNECT, which llhttp knows. PRI
 *    (the HTTP/2 preface) stays an error.
 * Not lenient: malformed chunk sizes, invalid Content-Length: errors.
 * HTTP/0.9 simple requests ("GET /path" CRLF, RFC 1945 §4.1) are complete
 * at their line end, version 0.9, no header fields (llhttp would wait for
 * header lines); http1_message_http09() says so. Their answer is a bare
 * body until the server closes, which llhttp cannot parse: the caller
 * (txn) takes it as it is.
 *
 * Trailers (chunked coding): parsed into the same header block, counted
 * against the header cap, and kept apart from the header list:
 * http1_message_trailers() returns them, message.headers never includes
 * them (a replay must not send them as headers).
 */
#include "capture/http1.h"

#include <errno.h>
#include <string.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"
#include "llhttp.h"

#define HTTP1_LOG(lvl, ...) LOG_MSG(lvl, "http1", __VA_ARGS__)

#define HTTP1_DEFAULT_MAX_HEADER (64u * 1024u)
#define HTTP1_METHOD_MAX	 64 /* longer method tokens are left to llhttp (an error) */
#define HTTP1_DEFAULT_MAX_BODY	 (1024u * 1024u)

enum http1_state {
	ST_IDLE = 0, /* between messages, nothing of the next one seen */
	ST_IN_MSG,   /* a message has begun */
	ST_DONE,     /* a message completed; waiting for http1_next() */
	ST_TUNNEL,   /* CONNECT / Upgrade: the rest is not HTTP */
	ST_ERROR,    /* malformed input or cut by finish */
};

enum http1_span {
	SPAN_NONE = 0,
	SPAN_FIELD,
	SPAN_VALUE,
};

/* One header or trailer field as offsets into the header block. */
/* Offsets into the block; 32 bits suffice (max_header is capped below 4 GiB). */
struct http1_field {
	uint32_t name_off, name_len;
	uint32_t val_off, val_len;
};

struct http1_parser {
	llhttp_t ll;
	enum http1_type type;
	size_t max_header;
	size_t max_body;

	struct dbuf block; /* request/status line pieces and fields */
	struct dbuf body;  /* stored body bytes, <= max_body */

	struct http1_field *fields; /* headers then trailers */
	struct store_header *views; /* same count, pointers after fixup */
	size_t n_fields, cap_fields;
	size_t n_headers; /* fields before the body; the rest are trailers */
	bool headers_done;
	enum http1_span span;

	size_t method_off, method_len;
	size_t target_off, target_len;
	size_t reason_off, reason_len;

	struct store_message msg;
	enum http1_state state;
	bool interim;
	bool expect_head;
	bool expect_connect;
	/* Requests: the method as read so far (see the file comment). */
	uint8_t mbuf[HTTP1_METHOD_MAX];
	size_t mlen;
	bool mdone;	 /* the method of this message went to llhttp */
	bool own_method; /* an extension method: recorded here, llhttp saw "GET" */
	bool chunk_data; /* chunked: inside a chunk's data (ll.content_length = bytes left) */
	bool http09;	 /* the message is an HTTP/0.9 simple request */
	bool line_done;	 /* requests: the request line went to llhttp whole */
	bool mute;	 /* http1_chunk_resume(): llhttp reads a stand-in head */
	int err;	 /* 0, -EBADMSG, -E2BIG, -ENOMEM */
	const char *errmsg;
};

static const uint8_t http1_empty[1];

static struct http1_parser *http1_of(llhttp_t *ll)
{
	return (struct http1_parser *)ll->data;
}

/* Fail the parse from inside a callback with a static reason. */
static int http1_cb_fail(struct http1_parser *p, int err, const char *why)
{
	p->err = err;
	p->errmsg = why;
	llhttp_set_error_reason(&p->ll, why);
	return HPE_USER;
}

/* Append a span to the header block; errors as an llhttp callback. */
static int http1_block_add(struct http1_parser *p, const char *at, size_t len)
{
	int rc = dbuf_append(&p->block, at, len);
	if (rc == -E2BIG)
		return http1_cb_fail(p, -E2BIG, "header block too large");
	if (rc)
		return http1_cb_fail(p, -ENOMEM, "out of memory");
	return 0;
}

/* Append a piece of the method, target or reason to the block; the span
 * (@p off, @p len) starts at the first piece llhttp hands over. */
static int http1_span_add(struct http1_parser *p, size_t *off, size_t *len, const char *at,
			  size_t n)
{
	if (*len == 0)
		*off = p->block.len;
	int rc = http1_block_add(p, at, n);
	if (!rc)
		*len += n;
	return rc;
}

static int http1_on_message_begin(llhttp_t *ll)
{
	struct http1_parser *p = http1_of(ll);
	if (p->mute)
		return 0;
	p->state = ST_IN_MSG;
	p->msg.present = true;
	return 0;
}

static int http1_on_method(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	if (p->own_method || p->mute)
		return 0; /* llhttp parses the stand-in; the real one is recorded */
	return http1_span_add(p, &p->method_off, &p->method_len, at, len);
}

static int http1_on_url(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	if (p->mute)
		return 0;
	return http1_span_add(p, &p->target_off, &p->target_len, at, len);
}

static int http1_on_status(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	if (p->mute)
		return 0;
	return http1_span_add(p, &p->reason_off, &p->reason_len, at, len);
}

static int http1_new_field(struct http1_parser *p)
{
	if (p->n_fields == p->cap_fields) {
		/* Every field stores at least one name byte in the block, so the
		 * block cap bounds the field count too. */
		if (p->n_fields >= p->max_header)
			return http1_cb_fail(p, -E2BIG, "header block too large");
		size_t ncap = p->cap_fields ? p->cap_fields * 2 : 16;
		struct http1_field *nf = mem_realloc(p->fields, ncap * sizeof(*nf));
		if (!nf)
			return http1_cb_fail(p, -ENOMEM, "out of memory");
		p->fields = nf;
		struct store_header *nv = mem_realloc(p->views, ncap * sizeof(*nv));
		if (!nv)
			return http1_cb_fail(p, -ENOMEM, "out of memory");
		p->views = nv;
		p->cap_fields = ncap;
	}
	struct http1_field *f = &p->fields[p->n_fields++];
	f->name_off = (uint32_t)p->block.len;
	f->name_len = 0;
	f->val_off = (uint32_t)p->block.len;
	f->val_len = 0;
	return 0;
}

static int http1_on_header_field(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	if (p->mute)
		return 0;
	if (p->span != SPAN_FIELD) {
		int nrc = http1_new_field(p);
		if (nrc)
			return nrc;
		p->span = SPAN_FIELD;
	}
	int rc = http1_block_add(p, at, len);
	if (!rc)
		p->fields[p->n_fields - 1].name_len += (uint32_t)len;
	return rc;
}

static int http1_on_header_value(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	if (p->n_fields == 0 || p->mute)
		return 0; /* llhttp never does the first; the second is the stand-in */
	struct http1_field *f = &p->fields[p->n_fields - 1];
	if (p->span != SPAN_VALUE) {
		f->val_off = (uint32_t)p->block.len;
		f->val_len = 0;
		p->span = SPAN_VALUE;
	}
	int rc = http1_block_add(p, at, len);
	if (!rc)
		f->val_len += (uint32_t)len;
	return rc;
}

static int http1_on_headers_complete(llhttp_t *ll)
{
	struct http1_parser *p = http1_of(ll);
	if (p->mute)
		return 0; /* the stand-in head: the message's own is kept */
	p->n_headers = p->n_fields;
	p->headers_done = true;
	p->span = SPAN_NONE;
	p->msg.version_major = ll->http_major;
	p->msg.version_minor = ll->http_minor;
	if (p->type == HTTP1_RESPONSE) {
		uint16_t st = ll->status_code;
		p->msg.status = st;
		p->interim = st >= 100 && st < 200 && st != 101;
		if (p->interim)
			return 0; /* llhttp knows 1xx has no body */
		if (st == 204 || st == 304)
			return 1; /* RFC 9110 §15.3.5, §15.4.5: never a body */
		if (st == 101 || (p->expect_connect && st >= 200 && st < 300))
			return 2; /* no body, the rest is the tunnel (even without
				   * "Connection: upgrade", which llhttp requires) */
		if (p->expect_head)
			return 1; /* no body whatever the headers say */
	}
	return 0;
}

static int http1_on_body(llhttp_t *ll, const char *at, size_t len)
{
	struct http1_parser *p = http1_of(ll);
	p->msg.body_len += len;
	size_t room = p->body.max - p->body.len; /* max drops to len after a gap */
	size_t take = len < room ? len : room;
	if (take && dbuf_append(&p->body, at, take) != 0) {
		HTTP1_LOG(LOG_DEBUG, "body buffer allocation failed; truncating");
		p->body.max = p->body.len; /* stop trying; count the rest */
	}
	if (p->msg.body_len > p->body.len)
		p->msg.truncated = true;
	return 0;
}

static int http1_on_chunk_header(llhttp_t *ll)
{
	http1_of(ll)->chunk_data = ll->content_length > 0;
	return 0;
}

static int http1_on_chunk_complete(llhttp_t *ll)
{
	http1_of(ll)->chunk_data = false;
	return 0;
}

static int http1_on_message_complete(llhttp_t *ll)
{
	struct http1_parser *p = http1_of(ll);
	p->state = ST_DONE;
	/* With upgrade set llhttp returns HPE_PAUSED_UPGRADE right after this
	 * callback; pausing here too would hide it. */
	if (ll->upgrade)
		return 0;
	return HPE_PAUSED;
}

static void http1_slice(const struct http1_parser *p, struct store_slice *s, size_t off, size_t len)
{
	s->ptr = len ? p->block.data + off : http1_empty;
	s->len = len;
}

/* Turn offsets into pointers: the block may have moved since they were taken. */
static void http1_fixup(struct http1_parser *p)
{
	for (size_t i = 0; i < p->n_fields; i++) {
		const struct http1_field *f = &p->fields[i];
		http1_slice(p, &p->views[i].name, f->name_off, f->name_len);
		http1_slice(p, &p->views[i].value, f->val_off, f->val_len);
	}
	p->msg.headers = p->n_fields ? p->views : NULL;
	p->msg.n_headers = p->headers_done ? p->n_headers : p->n_fields;
	if (p->type == HTTP1_REQUEST) {
		http1_slice(p, &p->msg.method, p->method_off, p->method_len);
		if (!p->mdone && p->mlen) { /* cut inside the method */
			p->msg.method.ptr = p->mbuf;
			p->msg.method.len = p->mlen;
		}
		http1_slice(p, &p->msg.target, p->target_off, p->target_len);
		if (!p->headers_done) {
			p->msg.version_major = p->ll.http_major;
			p->msg.version_minor = p->ll.http_minor;
		}
	} else {
		http1_slice(p, &p->msg.reason, p->reason_off, p->reason_len);
		if (!p->headers_done) {
			p->msg.status = p->ll.status_code;
			p->msg.version_major = p->ll.http_major;
			p->msg.version_minor = p->ll.http_minor;
		}
	}
	p->msg.body.ptr = p->body.len ? p->body.data : http1_empty;
	p->msg.body.len = p->body.len;
}

/* Forget the message (keeps allocations). */
static void http1_clear_msg(struct http1_parser *p)
{
	dbuf_reset(&p->block);
	dbuf_reset(&p->body);
	p->body.max = p->max_body;
	p->n_fields = 0;
	p->n_headers = 0;
	p->headers_done = false;
	p->span = SPAN_NONE;
	p->method_off = p->method_len = 0;
	p->target_off = p->target_len = 0;
	p->reason_off = p->reason_len = 0;
	memset(&p->msg, 0, sizeof(p->msg));
	p->interim = false;
	p->mlen = 0;
	p->mdone = false;
	p->own_method = false;
	p->chunk_data = false;
	p->http09 = false;
	p->line_done = false;
	p->err = 0;
	p->errmsg = NULL;
}

/* One callback table for every parser (llhttp keeps a pointer to it). */
static const llhttp_settings_t http1_settings = {
    .on_message_begin = http1_on_message_begin,
    .on_method = http1_on_method,
    .on_url = http1_on_url,
    .on_status = http1_on_status,
    .on_header_field = http1_on_header_field,
    .on_header_value = http1_on_header_value,
    .on_headers_complete = http1_on_headers_complete,
    .on_body = http1_on_body,
    .on_message_complete = http1_on_message_complete,
    .on_chunk_header = http1_on_chunk_header,
    .on_chunk_complete = http1_on_chunk_complete,
};

struct http1_parser *http1_parser_create(const struct http1_params *prm)
{
	struct http1_parser *p = mem_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->type = prm->type == HTTP1_RESPONSE ? HTTP1_RESPONSE : HTTP1_REQUEST;
	p->max_header = prm->max_header_bytes ? prm->max_header_bytes : HTTP1_DEFAULT_MAX_HEADER;
	if (p->max_header > UINT32_MAX - 1)
		p->max_header = UINT32_MAX - 1; /* field offsets are 32-bit */
	p->max_body = prm->max_body ? prm->max_body : HTTP1_DEFAULT_MAX_BODY;
	dbuf_init(&p->block, p->max_header);
	dbuf_init(&p->body, p->max_body);
	http1_reset(p);
	return p;
}

void http1_parser_free(struct http1_parser *p)
{
	if (!p)
		return;
	dbuf_release(&p->block);
	dbuf_release(&p->body);
	mem_free(p->fields);
	mem_free(p->views);
	mem_free(p);
}

void http1_reset(struct http1_parser *p)
{
	llhttp_init(&p->ll, p->type == HTTP1_RESPONSE ? HTTP_RESPONSE : HTTP_REQUEST,
		    &http1_settings);
	p->ll.data = p;
	llhttp_set_lenient_headers(&p->ll, 1);
	llhttp_set_lenient_keep_alive(&p->ll, 1);
	llhttp_set_lenient_chunked_length(&p->ll, 1);
	http1_clear_msg(p);
	p->state = ST_IDLE;
	p->expect_head = false;
	p->expect_connect = false;
}

/* RFC 9110 §5.6.2 tchar. */
static bool http1_is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Methods llhttp parses in HTTP mode (llhttp.h HTTP_METHOD_MAP). */
static bool http1_llhttp_knows(const uint8_t *m, size_t n)
{
#define HTTP1_METHOD_NAME(num, name, string) #string,
	static const char *const names[] = {HTTP_METHOD_MAP(HTTP1_METHOD_NAME)};
#undef HTTP1_METHOD_NAME
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && !memcmp(names[i], m, n))
			return true;
	return false;
}

/*
 * Requests: read the method up to its SP (see the file comment), then hand
 * llhttp the method or its stand-in. Returns the bytes of @p data taken;
 * *fed is set once llhttp has the method (then *e is its result).
 */
static size_t http1_method(struct http1_parser *p, const uint8_t *data, size_t len, bool *fed,
			   llhttp_errno_t *e)
{
	size_t i = 0;
	*fed = false;
	while (i < len) {
		uint8_t ch = data[i];
		if (!p->mlen && (ch == '\r' || ch == '\n')) {
			i++; /* empty lines before a request (llhttp skips them too) */
			continue;
		}
		if (p->mlen < HTTP1_METHOD_MAX && http1_is_tchar(ch)) {
			if (!p->mlen) {
				p->state = ST_IN_MSG; /* a request has begun */
				p->msg.present = true;
			}
			p->mbuf[p->mlen++] = ch;
			i++;
			continue;
		}
		break;
	}
	if (i == len)
		return i; /* the method may go on in the next bytes */
	p->mdone = true;
	*fed = true;
	const char *feed = (const char *)p->mbuf;
	size_t n = p->mlen;
	if (data[i] == ' ' && n && !http1_llhttp_knows(p->mbuf, n) &&
	    !(n == 3 && !memcmp(p->mbuf, "PRI", 3))) {
		/* An extension method: record it, llhttp parses a stand-in. */
		p->method_off = p->block.len;
		if (dbuf_append(&p->block, p->mbuf, n) != 0) {
			p->err = -ENOMEM;
			p->errmsg = "out of memory";
			*e = HPE_USER;
			return i;
		}
		p->method_len = n;
		p->own_method = true;
		feed = "GET";
		n = 3;
	}
	*e = n ? llhttp_execute(&p->ll, feed, n) : HPE_OK;
	return i;
}

enum http1_status http1_feed(struct http1_parser *p, const uint8_t *data, size_t len,
			     size_t *consumed)
{
	*consumed = 0;
	switch (p->state) {
	case ST_DONE:
		return HTTP1_COMPLETE;
	case ST_TUNNEL:
		return HTTP1_TUNNEL;
	case ST_ERROR:
		return HTTP1_ERROR;
	default:
		break;
	}
	if (len == 0)
		return HTTP1_NEED_MORE;
	size_t took = 0;
	llhttp_errno_t e = HPE_OK;
	if (p->type == HTTP1_REQUEST && !p->mdone) {
		bool fed;
		took = http1_method(p, data, len, &fed, &e);
		if (!fed) {
			*consumed = took;
			return HTTP1_NEED_MORE;
		}
	}
	const char *start = (const char *)data + took;
	size_t avail = len - took, used = len;
	bool simple = false;
	if (e == HPE_OK) {
		/* A request line first, alone: without a version it is the whole
		 * (HTTP/0.9) request, and what follows is not its header block. */
		size_t first = avail;
		if (p->type == HTTP1_REQUEST && !p->line_done) {
			const char *lf = memchr(start, '\n', avail);
			if (lf)
				first = (size_t)(lf - start) + 1;
		}
		e = llhttp_execute(&p->ll, start, first);
		if (e == HPE_OK && p->type == HTTP1_REQUEST && !p->line_done &&
		    memchr(start, '\n', first)) {
			p->line_done = true;
			simple =
			    p->state == ST_IN_MSG && p->ll.http_major == 0 && p->ll.http_minor == 9;
			if (simple)
				used = took + first;
			else if (first < avail)
				e = llhttp_execute(&p->ll, start + first, avail - first);
		}
		const char *pos = llhttp_get_error_pos(&p->ll);
		if (e != HPE_OK && pos >= start && pos <= start + avail)
			used = took + (size_t)(pos - start);
	} else {
		used = took; /* the method itself was refused */
	}
	*consumed = used;

	enum http1_status st;
	if (simple) {
		/* llhttp takes "GET /path" CRLF as 0.9 and would wait for header
		 * lines that never come: the request ends at its line end. */
		p->state = ST_DONE;
		p->http09 = true;
		st = HTTP1_COMPLETE;
	} else if (e == HPE_OK) {
		st = HTTP1_NEED_MORE;
	} else if (e == HPE_PAUSED && p->state == ST_DONE) {
		st = HTTP1_COMPLETE;
	} else if (e == HPE_PAUSED_UPGRADE) {
		p->state = ST_TUNNEL;
		st = HTTP1_TUNNEL;
	} else {
		p->state = ST_ERROR;
		if (!p->err) {
			p->err = -EBADMSG;
			p->errmsg = llhttp_get_error_reason(&p->ll);
			if (!p->errmsg)
				p->errmsg = llhttp_errno_name(e);
		}
		p->msg.present = true;
		st = HTTP1_ERROR;
	}
	http1_fixup(p);
	return st;
}

enum http1_status http1_finish(struct http1_parser *p)
{
	switch (p->state) {
	case ST_IDLE:
		return HTTP1_NEED_MORE;
	case ST_DONE:
		return HTTP1_COMPLETE;
	case ST_TUNNEL:
		return HTTP1_TUNNEL;
	case ST_ERROR:
		return HTTP1_ERROR;
	case ST_IN_MSG:
		break;
	}
	/* A close-delimited body ends here (llhttp calls on_message_complete);
	 * anything else in progress was cut short. */
	if (llhttp_message_needs_eof(&p->ll))
		(void)llhttp_finish(&p->ll);
	if (p->state == ST_DONE) {
		http1_fixup(p);
		return HTTP1_COMPLETE;
	}
	p->state = ST_ERROR;
	p->err = -EBADMSG;
	p->errmsg = "connection closed inside a message";
	http1_fixup(p);
	return HTTP1_ERROR;
}

enum http1_status http1_gap(struct http1_parser *p, uint64_t n)
{
	if (p->state != ST_IN_MSG || !p->headers_done)
		return HTTP1_ERROR;
	bool chunked = p->ll.flags & F_CHUNKED;
	/* Inside a chunk's data the rest of the chunk is known like a
	 * Content-Length (RFC 9112 §7.1): a gap within it is bridged. */
	bool by_length = chunked ? p->chunk_data : (p->ll.flags & F_CONTENT_LENGTH) != 0;
	bool to_eof = !chunked && !by_length && llhttp_message_needs_eof(&p->ll);
	if (by_length && p->ll.content_length < n)
		return HTTP1_ERROR; /* the gap runs past this message (or chunk) */
	if (!by_length && !to_eof)
		return HTTP1_ERROR;
	/* Count the missing bytes as body; store nothing more, so the stored
	 * body stays an exact prefix (and is marked truncated). */
	p->body.max = p->body.len;
	if (n == 0)
		return HTTP1_NEED_MORE;
	uint64_t count = n;
	if (by_length && p->ll.content_length == n) {
		/* Leave one byte for llhttp so it completes the message. */
		p->ll.content_length = 1;
		count = n - 1;
	} else if (by_length) {
		p->ll.content_length -= n;
	}
	p->msg.body_len += count;
	if (p->msg.body_len > p->body.len)
		p->msg.truncated = true;
	if (count == n) {
		http1_fixup(p);
		return HTTP1_NEED_MORE;
	}
	static const uint8_t zero[1];
	size_t used = 0;
	enum http1_status st = http1_feed(p, zero, 1, &used);
	return st;
}

bool http1_in_chunked_body(const struct http1_parser *p)
{
	return p->state == ST_IN_MSG && p->headers_done && (p->ll.flags & F_CHUNKED);
}

void http1_body_lost(struct http1_parser *p)
{
	p->body.max = p->body.len; /* the stored body stays the prefix before the loss */
	if (p->chunk_data)	   /* the rest of the chunk the loss began in was body */
		p->msg.body_len += p->ll.content_length;
	if (p->msg.body_len > p->body.len)
		p->msg.truncated = true;
	p->chunk_data = false;
}

int http1_chunk_resume(struct http1_parser *p)
{
	if (!http1_in_chunked_body(p))
		return -EINVAL;
	/* llhttp cannot be put into the chunk-size state directly: a fresh
	 * parser reads a stand-in head with the callbacks muted, and the
	 * message's own head, body so far and flags stay as they are. */
	static const char req[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	const char *head = p->type == HTTP1_REQUEST ? req : resp;
	llhttp_init(&p->ll, p->type == HTTP1_RESPONSE ? HTTP_RESPONSE : HTTP_REQUEST,
		    &http1_settings);
	p->ll.data = p;
	llhttp_set_lenient_headers(&p->ll, 1);
	llhttp_set_lenient_keep_alive(&p->ll, 1);
	llhttp_set_lenient_chunked_length(&p->ll, 1);
	p->mute = true;
	llhttp_errno_t e = llhttp_execute(&p->ll, head, strlen(head));
	p->mute = false;
	p->chunk_data = false;
	p->span = SPAN_NONE; /* a field cut by the loss is not continued */
	return e == HPE_OK ? 0 : -EBADMSG;
}

const struct store_message *http1_message(const struct http1_parser *p)
{
	return &p->msg;
}

bool http1_message_partial(const struct http1_parser *p)
{
	return p->state == ST_IN_MSG || p->state == ST_ERROR;
}

const struct store_header *http1_message_trailers(const struct http1_parser *p, size_t *n)
{
	if (!p->headers_done || p->n_fields <= p->n_headers) {
		*n = 0;
		return NULL;
	}
	*n = p->n_fields - p->n_headers;
	return p->views + p->n_headers;
}

void http1_next(struct http1_parser *p)
{
	enum http1_state was = p->state;
	bool final = !p->interim;
	if (p->http09)
		was = ST_ERROR; /* llhttp sits in the header state: start clean */
	http1_clear_msg(p);
	if (final) {
		p->expect_head = false;
		p->expect_connect = false;
	}
	switch (was) {
	case ST_DONE:
		p->state = ST_IDLE;
		llhttp_resume(&p->ll);
		break;
	case ST_TUNNEL:
		/* The peer refused the upgrade (or the caller wants to go on):
		 * parse what follows as HTTP again, from a clean state. */
		llhttp_reset(&p->ll);
		p->state = ST_IDLE;
		break;
	case ST_ERROR:
	case ST_IN_MSG:
		/* Dropping a broken or unfinished message: start clean. */
		llhttp_reset(&p->ll);
		p->state = ST_IDLE;
		break;
	case ST_IDLE:
		break;
	}
}

static bool http1_method_is(const struct store_slice *m, const char *name)
{
	size_t n = strlen(name);
	if (!m || m->len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = m->ptr[i];
		if (c >= 'a' && c <= 'z')
			c = (uint8_t)(c - 'a' + 'A');
		if (c != (uint8_t)name[i])
			return false;
	}
	return true;
}

void http1_expect_response_to(struct http1_parser *p, const struct store_slice *method)
{
	p->expect_head = http1_method_is(method, "HEAD");
	p->expect_connect = http1_method_is(method, "CONNECT");
}

bool http1_message_http09(const struct http1_parser *p)
{
	return p->http09;
}

bool http1_message_interim(const struct http1_parser *p)
{
	return p->interim;
}

const char *http1_error(const struct http1_parser *p)
{
	return p->errmsg ? p->errmsg : "";
}

int http1_errno(const struct http1_parser *p)
{
	return p->err;
}

size_t http1_parser_mem(const struct http1_parser *p)
{
	return sizeof(*p) + p->block.cap + p->body.cap +
	       p->cap_fields * (sizeof(struct http1_field) + sizeof(struct store_header));
}
