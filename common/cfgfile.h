/* SPDX-License-Identifier: MIT */
/*
 * cfgfile - the config file of the long-running programs (`dyetap mirror
 * --config FILE`; docs/operations.md "Config file"): the command's long
 * options, one per line, in a form people edit by hand:
 *
 *     # comment
 *     interface eth0
 *     lane blue=http://10.0.0.7:8080
 *     redact-defaults
 *
 * A line is an option name (without the dashes), then optionally blanks
 * and its value, which runs to the end of the line (trailing blanks
 * dropped; no quoting: a value may hold blanks and '#'). Blank lines and
 * lines whose first non-blank is '#' are ignored. The program applies
 * the lines with its own option parser, so a config file can say
 * everything the options say; errors name the file and the line.
 * Bounded: CFG_MAX_BYTES per file, CFG_MAX_LINES entries.
 */
#ifndef DYETAP_COMMON_CFGFILE_H
#define DYETAP_COMMON_CFGFILE_H

#include <stddef.h>

#define CFG_MAX_BYTES (1u << 20)
#define CFG_MAX_LINES 4096

/** One option line. */
struct cfg_entry {
	const char *name; /**< borrowed from the struct cfg */
	char *value;	  /**< NULL for a line with a name only; may be modified */
	unsigned line;	  /**< 1-based line number */
};

/** A loaded file: its entries point into @p text. */
struct cfg {
	char *path;
	char *text;
	struct cfg_entry *entries;
	size_t n;
};

/**
 * Read and split @p path into @p out (filled, release with cfg_release()).
 * @return 0; -errno with "FILE: message" or "FILE:LINE: message" in
 *         @p err (cannot be read, over CFG_MAX_BYTES, a NUL byte, a name
 *         that is not [a-z0-9-]+, over CFG_MAX_LINES).
 */
int cfg_load(const char *path, struct cfg *out, char *err, size_t errlen);

/** Free what cfg_load() filled; accepts a zeroed struct. */
void cfg_release(struct cfg *c);

#endif
