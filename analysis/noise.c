/* SPDX-License-Identifier: MIT */
/*
 * noise - parser and matchers for diff noise rules (see noise.h and
 * docs/diff-rules.md). Regular expressions are POSIX extended (regcomp(3),
 * REG_EXTENDED); globs are fnmatch(3) without flags.
 */
#include "analysis/noise.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "common/mem.h"

#define NOISE_LOG(lvl, ...) LOG_MSG(lvl, "noise", __VA_ARGS__)

#define NOISE_MAX_RULES	     4096
#define NOISE_MAX_FILE_BYTES (1u << 20)

void noise_path_release(struct noise_path *p)
{
	for (size_t i = 0; i < p->n; i++)
		mem_free(p->pc[i].key);
	p->n = 0;
}

static int path_push(struct noise_path *p, uint8_t type, const char *key, size_t klen,
		     uint64_t index, char *err, size_t errlen)
{
	if (p->n >= NOISE_MAX_PATH) {
		snprintf(err, errlen, "path has more than %d components", NOISE_MAX_PATH);
		return -EINVAL;
	}
	struct noise_pc *pc = &p->pc[p->n];
	memset(pc, 0, sizeof(*pc));
	pc->type = type;
	pc->index = index;
	if (key) {
		pc->key = mem_strndup(key, klen);
		if (!pc->key) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		pc->key_len = klen;
	}
	p->n++;
	return 0;
}

int noise_path_compile(struct noise_path *p, const char *s, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	const char *q = s;
	int rc;
	if (*q != '$') {
		snprintf(err, errlen, "JSON path must start with '$': %s", s);
		return -EINVAL;
	}
	q++;
	while (*q) {
		if (q[0] == '.' && q[1] == '.') {
			rc = path_push(p, NOISE_PC_DESCEND, NULL, 0, 0, err, errlen);
			if (rc)
				goto fail;
			q += 2;
			if (*q == '[')
				continue;
			/* "$..name": the name follows directly */
		} else if (*q == '.') {
			q++;
		} else if (*q == '[') {
			q++;
			if (*q == '*' && q[1] == ']') {
				rc = path_push(p, NOISE_PC_ANY_INDEX, NULL, 0, 0, err, errlen);
				q += 2;
			} else if (*q == '"' || *q == '\'') {
				char quote = *q++;
				const char *k = q;
				while (*q && *q != quote)
					q++;
				if (!*q || q[1] != ']') {
					snprintf(err, errlen,
						 "unterminated quoted name in path: %s", s);
					rc = -EINVAL;
					goto fail;
				}
				rc = path_push(p, NOISE_PC_KEY, k, (size_t)(q - k), 0, err, errlen);
				q += 2;
			} else if (isdigit((unsigned char)*q)) {
				char *end;
				unsigned long long v = strtoull(q, &end, 10);
				if (*end != ']') {
					snprintf(err, errlen, "bad array index in path: %s", s);
					rc = -EINVAL;
					goto fail;
				}
				rc = path_push(p, NOISE_PC_INDEX, NULL, 0, v, err, errlen);
				q = end + 1;
			} else {
				snprintf(err, errlen, "expected [N], [*] or [\"name\"] in path: %s",
					 s);
				rc = -EINVAL;
				goto fail;
			}
			if (rc)
				goto fail;
			continue;
		} else {
			snprintf(err, errlen, "expected '.' or '[' in path: %s", s);
			rc = -EINVAL;
			goto fail;
		}
		/* a member name after '.' (or after '..') */
		const char *k = q;
		while (*q && *q != '.' && *q != '[')
			q++;
		if (q == k) {
			snprintf(err, errlen, "empty member name in path: %s", s);
			rc = -EINVAL;
			goto fail;
		}
		if (q - k == 1 && *k == '*')
			rc = path_push(p, NOISE_PC_ANY_KEY, NULL, 0, 0, err, errlen);
		else
			rc = path_push(p, NOISE_PC_KEY, k, (size_t)(q - k), 0, err, errlen);
		if (rc)
			goto fail;
	}
	if (p->n && p->pc[p->n - 1].type == NOISE_PC_DESCEND) {
		snprintf(err, errlen, "path cannot end with '..': %s", s);
		rc = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	noise_path_release(p);
	return rc;
}

static bool pc_match(const struct noise_pc *pc, const struct noise_pos *pos)
{
	switch (pc->type) {
	case NOISE_PC_KEY:
		return !pos->is_index && pos->key_len == pc->key_len &&
		       memcmp(pos->key, pc->key, pc->key_len) == 0;
	case NOISE_PC_ANY_KEY:
		return !pos->is_index;
	case NOISE_PC_INDEX:
		return pos->is_index && pos->index == pc->index;
	case NOISE_PC_ANY_INDEX:
		return pos->is_index;
	default:
		return false;
	}
}

static bool match_from(const struct noise_pc *pc, size_t npc, const struct noise_pos *pos,
		       size_t npos)
{
	while (npc) {
		if (pc->type == NOISE_PC_DESCEND) {
			/* try every suffix of pos; the path is capped so this is bounded */
			for (size_t skip = 0; skip <= npos; skip++)
				if (match_from(pc + 1, npc - 1, pos + skip, npos - skip))
					return true;
			return false;
		}
		if (!npos || !pc_match(pc, pos))
			return false;
		pc++, npc--;
		pos++, npos--;
	}
	return npos == 0;
}

bool noise_path_match(const struct noise_path *p, const struct noise_pos *pos, size_t n)
{
	return match_from(p->pc, p->n, pos, n);
}

bool noise_header_match(const char *glob, const char *name, size_t n)
{
	char buf[256];
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return fnmatch(glob, buf, 0) == 0;
}

bool noise_rule_applies(const struct noise_rule *r, const char *endpoint)
{
	return !r->scope || fnmatch(r->scope, endpoint, 0) == 0;
}

static void rule_release(struct noise_rule *r)
{
	mem_free(r->scope);
	mem_free(r->header);
	noise_path_release(&r->path);
	if (r->has_re)
		regfree(&r->re);
	mem_free(r->re_src);
	mem_free(r->field);
	mem_free(r->text);
}

void noise_rules_free(struct noise_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_release(&r->v[i]);
	mem_free(r->v);
	mem_free(r);
}

/* Next whitespace-separated word of *s (advanced); NULL at the end. */
static const char *word(const char **s, size_t *len)
{
	const char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	const char *w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	*len = (size_t)(p - w);
	*s = p;
	return w;
}

static bool word_is(const char *w, size_t n, const char *lit)
{
	return w && strlen(lit) == n && memcmp(w, lit, n) == 0;
}

/* A status code: 1 to 3 decimal digits (HTTP's 100-999, gRPC's 0-16). */
static bool status_code(const char *w, size_t n, int *out)
{
	if (!w || !n || n > 3)
		return false;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9')
			return false;
		v = v * 10 + (w[i] - '0');
	}
	*out = v;
	return true;
}

/* The rest of the line without leading/trailing blanks. */
static const char *rest(const char *s, size_t *len)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*len = n;
	return n ? s : NULL;
}

/*
 * glibc's regcomp() expands repetitions into trees: stacked operators
 * ("a+++++") or large bounds nested in groups take exponential time and
 * memory. Such patterns are meaningless in ERE anyway (POSIX leaves
 * stacked repetition undefined), so reject them, and cap {n,m} at 100.
 */
static int re_sane(const char *s, size_t n, char *err, size_t errlen)
{
	bool prev_rep = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\') {
			i++;
			prev_rep = false;
			continue;
		}
		if (c == '[') {
			/* a bracket expression: skip to its closing ']' */
			size_t j = i + 1;
			if (j < n && s[j] == '^')
				j++;
			if (j < n && s[j] == ']')
				j++;
			while (j < n && s[j] != ']')
				j++;
			i = j;
			prev_rep = false;
			continue;
		}
		bool rep = c == '*' || c == '+' || c == '?' || c == '{';
		if (rep && prev_rep) {
			snprintf(err, errlen, "stacked repetition operators in '%.*s'", (int)n, s);
			return -EINVAL;
		}
		if (c == '{') {
			char *end;
			unsigned long lo = strtoul(s + i + 1, &end, 10), hi = lo;
			if (*end == ',')
				hi = end[1] == '}' ? 0 : strtoul(end + 1, &end, 10);
			if (lo > 100 || hi > 100) {
				snprintf(err, errlen, "repetition count over 100 in '%.*s'", (int)n,
					 s);
				return -EINVAL;
			}
			while (i < n && s[i] != '}')
				i++;
		}
		prev_rep = rep;
	}
	return 0;
}

static int compile_re(struct noise_rule *r, const char *src, size_t n, char *err, size_t errlen)
{
	if (n > 256) {
		snprintf(err, errlen, "regular expression longer than 256 bytes");
		return -EINVAL;
	}
	if (re_sane(src, n, err, errlen))
		return -EINVAL;
	r->re_src = mem_strndup(src, n);
	if (!r->re_src) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = regcomp(&r->re, r->re_src, REG_EXTENDED);
	if (rc) {
		char msg[128];
		regerror(rc, &r->re, msg, sizeof(msg));
		snprintf(err, errlen, "bad regular expression '%s': %s", r->re_src, msg);
		return -EINVAL;
	}
	r->has_re = true;
	/*
	 * The literal text every match starts with, so matching can jump
	 * to its occurrences with memmem() instead of running the regex
	 * engine over every byte of a body. Stops at the first
	 * metacharacter; a literal followed by a quantifier is dropped.
	 */
	size_t k = 0;
	while (k < n && k < sizeof(r->lit) && !strchr(".[]()*+?{}|^$\\", src[k]))
		k++;
	if (k < n && strchr("*?{", src[k]) && k > 0)
		k--;
	if (k < n && src[k] == '+' && k > 0)
		k--; /* keep it simple: "ab+" still starts with "a", but drop "b" */
	if (k < n && src[k] == '|')
		k = 0; /* an alternative at the top level may start with anything */
	if (k >= 2 && !memchr(src, '|', n)) {
		memcpy(r->lit, src, k);
		r->lit_len = k;
	}
	return 0;
}

static char *lower_dup(const char *s, size_t n)
{
	char *d = mem_strndup(s, n);
	if (d)
		for (size_t i = 0; i < n; i++)
			d[i] = (char)tolower((unsigned char)d[i]);
	return d;
}

static int parse_path_word(struct noise_rule *r, const char **s, char *err, size_t errlen)
{
	size_t n;
	const char *w = word(s, &n);
	if (!w) {
		snprintf(err, errlen, "expected a JSON path");
		return -EINVAL;
	}
	char tmp[512];
	if (n >= sizeof(tmp)) {
		snprintf(err, errlen, "JSON path too long");
		return -EINVAL;
	}
	memcpy(tmp, w, n);
	tmp[n] = '\0';
	return noise_path_compile(&r->path, tmp, err, errlen);
}

static int parse_line(struct noise_rule *r, const char *line, char *err, size_t errlen)
{
	const char *s = line;
	size_t n, n2;
	const char *w = word(&s, &n);
	const char *w2;
	int rc;
	if (word_is(w, n, "ignore") || word_is(w, n, "check")) {
		bool ign = word_is(w, n, "ignore");
		w2 = word(&s, &n2);
		if (word_is(w2, n2, "header")) {
			const char *h = word(&s, &n);
			if (!h) {
				snprintf(err, errlen, "expected a header name");
				return -EINVAL;
			}
			r->kind = ign ? NOISE_IGNORE_HEADER : NOISE_CHECK_HEADER;
			r->header = lower_dup(h, n);
			if (!r->header)
				return -ENOMEM;
		} else if (ign && word_is(w2, n2, "path")) {
			r->kind = NOISE_IGNORE_PATH;
			rc = parse_path_word(r, &s, err, errlen);
			if (rc)
				return rc;
		} else if (ign && word_is(w2, n2, "status")) {
			r->kind = NOISE_IGNORE_STATUS;
			r->st_from = r->st_to = -1;
			/* one transition: CODE -> CODE (HTTP's, or gRPC's grpc-status) */
			const char *save = s;
			size_t na, nb, nr;
			const char *a = word(&s, &na);
			if (a) {
				const char *arrow = word(&s, &nr);
				const char *b = word(&s, &nb);
				if (!status_code(a, na, &r->st_from) || !word_is(arrow, nr, "->") ||
				    !status_code(b, nb, &r->st_to)) {
					snprintf(err, errlen,
						 "expected 'ignore status' or 'ignore status CODE "
						 "-> CODE' "
						 "(304 -> 200; 0 -> 4 for grpc-status)");
					return -EINVAL;
				}
			} else {
				s = save;
			}
		} else {
			snprintf(err, errlen,
				 ign ? "expected 'ignore header|path|status'"
				     : "expected 'check header NAME'");
			return -EINVAL;
		}
	} else if (word_is(w, n, "mask")) {
		w2 = word(&s, &n2);
		if (word_is(w2, n2, "body")) {
			r->kind = NOISE_MASK_BODY;
		} else if (word_is(w2, n2, "header")) {
			const char *h = word(&s, &n);
			if (!h) {
				snprintf(err, errlen, "expected a header name");
				return -EINVAL;
			}
			r->kind = NOISE_MASK_HEADER;
			r->header = lower_dup(h, n);
			if (!r->header)
				return -ENOMEM;
		} else {
			snprintf(err, errlen,
				 "expected 'mask body REGEX' or 'mask header NAME REGEX'");
			return -EINVAL;
		}
		const char *re = rest(s, &n);
		if (!re) {
			snprintf(err, errlen, "expected a regular expression");
			return -EINVAL;
		}
		return compile_re(r, re, n, err, errlen);
	} else if (word_is(w, n, "tolerance")) {
		r->kind = NOISE_TOLERANCE;
		rc = parse_path_word(r, &s, err, errlen);
		if (rc)
			return rc;
		const char *v = word(&s, &n);
		char tmp[64];
		if (!v || n >= sizeof(tmp)) {
			snprintf(err, errlen, "expected a tolerance like 0.01 or 5%%");
			return -EINVAL;
		}
		memcpy(tmp, v, n);
		tmp[n] = '\0';
		if (n && tmp[n - 1] == '%') {
			r->tol_rel = true;
			tmp[n - 1] = '\0';
		}
		char *end;
		r->tol = strtod(tmp, &end);
		if (end == tmp || *end || !(r->tol >= 0)) {
			snprintf(err, errlen, "bad tolerance '%.*s'", (int)n, v);
			return -EINVAL;
		}
		if (r->tol_rel)
			r->tol /= 100.0;
	} else if (word_is(w, n, "unordered")) {
		r->kind = NOISE_UNORDERED;
		rc = parse_path_word(r, &s, err, errlen);
		if (rc)
			return rc;
	} else if (word_is(w, n, "key")) {
		r->kind = NOISE_KEYED;
		rc = parse_path_word(r, &s, err, errlen);
		if (rc)
			return rc;
		const char *f = word(&s, &n);
		if (!f) {
			snprintf(err, errlen, "expected the key field name");
			return -EINVAL;
		}
		r->field = mem_strndup(f, n);
		if (!r->field)
			return -ENOMEM;
	} else {
		snprintf(err, errlen, "unknown directive '%.*s'", (int)(w ? n : 0), w ? w : "");
		return -EINVAL;
	}
	if (word(&s, &n)) {
		snprintf(err, errlen, "unexpected text after the rule");
		return -EINVAL;
	}
	return 0;
}

struct noise_rules *noise_rules_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct noise_rules *rs = mem_calloc(1, sizeof(*rs));
	char *scope = NULL;
	char line[1024], msg[256];
	size_t cap = 0;
	unsigned lineno = 0;
	const char *p = text, *end = text + len;
	if (!rs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (p < end) {
		const char *ls = p;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		lineno++;
		size_t n = (size_t)(le - ls);
		p = nl ? nl + 1 : end;
		if (n && ls[n - 1] == '\r')
			n--;
		if (n >= sizeof(line)) {
			snprintf(err, errlen, "line %u: line too long", lineno);
			goto fail;
		}
		memcpy(line, ls, n);
		line[n] = '\0';
		if (memchr(line, '\0', n)) {
			snprintf(err, errlen, "line %u: NUL byte", lineno);
			goto fail;
		}
		/* strip comments (a '#' at the start or after a blank) and blanks */
		for (size_t i = 0; i < n; i++)
			if (line[i] == '#' &&
			    (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
				line[i] = '\0';
				break;
			}
		size_t rl;
		const char *body = rest(line, &rl);
		if (!body)
			continue;
		char *b = (char *)body;
		b[rl] = '\0';
		if (b[0] == '[') {
			if (b[rl - 1] != ']' || rl < 3) {
				snprintf(err, errlen, "line %u: expected [METHOD /path] or [*]",
					 lineno);
				goto fail;
			}
			mem_free(scope);
			scope = NULL;
			b[rl - 1] = '\0';
			size_t sl;
			const char *sc = rest(b + 1, &sl);
			if (!sc) {
				snprintf(err, errlen, "line %u: empty section", lineno);
				goto fail;
			}
			if (!(sl == 1 && sc[0] == '*')) {
				scope = mem_strndup(sc, sl);
				if (!scope) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
			}
			continue;
		}
		if (rs->n >= NOISE_MAX_RULES) {
			snprintf(err, errlen, "line %u: more than %d rules", lineno,
				 NOISE_MAX_RULES);
			goto fail;
		}
		if (rs->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct noise_rule *nv = mem_realloc(rs->v, ncap * sizeof(*nv));
			if (!nv) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			rs->v = nv;
			cap = ncap;
		}
		struct noise_rule *r = &rs->v[rs->n];
		memset(r, 0, sizeof(*r));
		rs->n++;
		r->line = lineno;
		r->text = mem_strdup(b);
		if (scope)
			r->scope = mem_strdup(scope);
		if (!r->text || (scope && !r->scope)) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		int rc = parse_line(r, b, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "line %u: %s", lineno,
				 rc == -ENOMEM ? "out of memory" : msg);
			goto fail;
		}
	}
	mem_free(scope);
	NOISE_LOG(LOG_DEBUG, "%zu rules parsed", rs->n);
	return rs;
fail:
	mem_free(scope);
	noise_rules_free(rs);
	return NULL;
}

struct noise_rules *noise_rules_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open rules file %s: %s", path, strerror(errno));
		return NULL;
	}
	struct dbuf b;
	dbuf_init(&b, NOISE_MAX_FILE_BYTES);
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (dbuf_append(&b, chunk, got)) {
			snprintf(err, errlen, "rules file %s is larger than %u bytes", path,
				 NOISE_MAX_FILE_BYTES);
			fclose(f);
			dbuf_release(&b);
			return NULL;
		}
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "cannot read rules file %s", path);
		dbuf_release(&b);
		return NULL;
	}
	char msg[256];
	struct noise_rules *r =
	    noise_rules_parse(b.data ? (const char *)b.data : "", b.len, msg, sizeof(msg));
	if (!r)
		snprintf(err, errlen, "%s: %s", path, msg);
	dbuf_release(&b);
	return r;
}
