/* SPDX-License-Identifier: MIT */
/*
 * dyetap - command dispatcher. Each subcommand lives in cli/cmd_<name>.c
 * and parses its own options; this file routes, prints the top-level
 * help and holds the helpers the subcommands share (cmds.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cmds.h"
#include "dyetap_version.h"

bool cli_same_file(const char *a, const char *b)
{
	if (!strcmp(a, b))
		return true;
	struct stat sa, sb;
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_store_limit_opt(const char *opt, const char *arg, struct store_read_limits *l)
{
	bool ratio = !strncmp(opt, "--max-f", 7) || !strcmp(opt, "DYETAP_MAX_FRAME_RATIO");
	uint64_t max = ratio ? UINT32_MAX - 1 : UINT64_MAX - 1, v = 0;
	if (!strcmp(arg, "none")) {
		v = max + 1;
	} else {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || arg[0] == '-' || x == 0 || x > max) {
			fprintf(stderr,
				"dyetap: %s '%s': give a number from 1 to %llu, or 'none' for no "
				"cap\n",
				opt, arg, (unsigned long long)max);
			return -EINVAL;
		}
		v = x;
	}
	if (ratio)
		l->max_frame_ratio = (uint32_t)v;
	else
		l->max_records = v;
	return 0;
}

int cli_store_limits_env(void)
{
	struct store_read_limits l = {0};
	const char *r = getenv("DYETAP_MAX_FRAME_RATIO"), *n = getenv("DYETAP_MAX_RECORDS");
	if ((r && *r && cli_store_limit_opt("DYETAP_MAX_FRAME_RATIO", r, &l)) ||
	    (n && *n && cli_store_limit_opt("DYETAP_MAX_RECORDS", n, &l)))
		return -EINVAL;
	store_reader_default_limits(&l);
	/* frames of index a store writer keeps in memory (docs/format.md §1.3) */
	const char *m = getenv("DYETAP_INDEX_MEM_FRAMES");
	if (m && *m) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(m, &end, 10);
		if (errno || end == m || *end || m[0] == '-' || x == 0 || x > (1ull << 24)) {
			fprintf(stderr,
				"dyetap: DYETAP_INDEX_MEM_FRAMES '%s': give a number from 1 to "
				"%llu\n",
				m, 1ull << 24);
			return -EINVAL;
		}
		store_writer_default_index_mem((size_t)x);
	}
	return 0;
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"record", cmd_record, "capture HTTP traffic (pcap files or an interface) into a store"},
    {"replay", cmd_replay, "replay a recording against a target, paced, into a results store"},
    {"diff", cmd_diff, "compare replayed responses with production ones and write reports"},
    {"mirror", cmd_mirror, "mirror colored live traffic to lane targets and diff it live"},
    {"ctl", cmd_ctl, "steer a running mirror or fast path: pause, resume, rate, lanes, stats"},
    {"info", cmd_info, "describe a store file: metadata, counts, damage"},
    {"cat", cmd_cat, "print the records of a store file as JSON lines"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: dyetap COMMAND [OPTIONS]\n\n"
		   "Capture colored HTTP traffic, record it, replay it against a candidate\n"
		   "build and report every difference.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`dyetap COMMAND --help` describes a command; docs/ has the manual.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(name, "-V") || !strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("dyetap %s\n", DYETAP_VERSION);
		return 0;
	}
	if (cli_store_limits_env() != 0)
		return 2;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dyetap: unknown command '%s' (try: dyetap --help)\n", name);
	return 2;
}
