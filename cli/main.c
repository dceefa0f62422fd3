/* SPDX-License-Identifier: MIT */
/*
 * dyetap - command dispatcher. Each subcommand lives in cli/cmd_<name>.c
 * and parses its own options; this file routes, prints the top-level
 * help and holds the helpers the subcommands share (cmds.h).
 */
#include <stdio.h>
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
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dyetap: unknown command '%s' (try: dyetap --help)\n", name);
	return 2;
}
