/* SPDX-License-Identifier: MIT */
/*
 * cfgfile - read a config file into option lines (common/cfgfile.h).
 * The whole file is read once into one buffer (bounded), split in place.
 */
#include "common/cfgfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

void cfg_release(struct cfg *c)
{
	mem_free(c->path);
	mem_free(c->text);
	mem_free(c->entries);
	memset(c, 0, sizeof(*c));
}

static int fail(struct cfg *c, int rc, char *err, size_t errlen, const char *path, unsigned line,
		const char *msg)
{
	if (line)
		snprintf(err, errlen, "%s:%u: %s", path, line, msg);
	else
		snprintf(err, errlen, "%s: %s", path, msg);
	cfg_release(c);
	return rc;
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

int cfg_load(const char *path, struct cfg *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		return fail(out, -e, err, errlen, path, 0, strerror(e));
	}
	out->path = mem_strdup(path);
	out->text = mem_alloc(CFG_MAX_BYTES + 1);
	if (!out->path || !out->text) {
		fclose(f);
		return fail(out, -ENOMEM, err, errlen, path, 0, "out of memory");
	}
	size_t len = fread(out->text, 1, CFG_MAX_BYTES + 1, f);
	int rerr = ferror(f);
	fclose(f);
	if (rerr)
		return fail(out, -EIO, err, errlen, path, 0, "read error");
	if (len > CFG_MAX_BYTES)
		return fail(out, -E2BIG, err, errlen, path, 0, "larger than 1 MiB");
	out->text[len] = 0;
	if (memchr(out->text, 0, len))
		return fail(out, -EBADMSG, err, errlen, path, 0,
			    "holds a NUL byte: not a text file");
	unsigned line = 0;
	for (char *p = out->text; p < out->text + len;) {
		char *nl = memchr(p, '\n', (size_t)(out->text + len - p));
		char *end = nl ? nl : out->text + len;
		*end = 0;
		line++;
		char *q = p;
		p = end + 1;
		while (is_blank(*q))
			q++;
		char *e = end;
		while (e > q && is_blank(e[-1]))
			*--e = 0;
		if (!*q || *q == '#')
			continue;
		char *name = q;
		while (*q && !is_blank(*q))
			q++;
		char *value = NULL;
		if (*q) {
			*q++ = 0;
			while (is_blank(*q))
				q++;
			value = q;
		}
		for (const char *c = name; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
				return fail(out, -EINVAL, err, errlen, path, line,
					    "an option name (lower case, digits, '-') comes first");
		if (name[0] == '-')
			return fail(out, -EINVAL, err, errlen, path, line,
				    "write option names without the leading dashes");
		if (out->n == CFG_MAX_LINES)
			return fail(out, -E2BIG, err, errlen, path, line, "more than 4096 options");
		if (!out->entries) {
			out->entries = mem_calloc(CFG_MAX_LINES, sizeof(*out->entries));
			if (!out->entries)
				return fail(out, -ENOMEM, err, errlen, path, 0, "out of memory");
		}
		out->entries[out->n++] = (struct cfg_entry){name, value, line};
	}
	return 0;
}
