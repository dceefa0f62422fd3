/* SPDX-License-Identifier: MIT */
/*
 * cmds - the subcommands of the `dyetap` program. Each takes the argument
 * vector starting at the subcommand name and returns the process exit
 * code: 0 success, 1 a finding (a gate tripped, differences), 2 usage or
 * input error, 3 runtime failure.
 */
#ifndef DYETAP_CLI_CMDS_H
#define DYETAP_CLI_CMDS_H

#include <stdbool.h>

#include "store/store.h"

int cmd_info(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_mirror(int argc, char **argv);
int cmd_ctl(int argc, char **argv);

/** Most --fail-on gates of one diff (`dyetap diff`, `dyetap replay --diff`). */
#define DIFF_MAX_GATES 32

/**
 * Do paths @p a and @p b name one file: the same string, or both exist
 * with the same device and inode (./x, a symlink, a hard link). For
 * refusing an output that would truncate an input.
 */
bool cli_same_file(const char *a, const char *b);

/**
 * Parse the value of --max-frame-ratio (@p opt starts "--max-f") or
 * --max-records into @p l: a positive number or "none" (no cap). Prints
 * the error naming @p opt; returns 0 or -EINVAL.
 */
int cli_store_limit_opt(const char *opt, const char *arg, struct store_read_limits *l);

/**
 * The store readers' work limits from the environment
 * (DYETAP_MAX_FRAME_RATIO, DYETAP_MAX_RECORDS, the values of the options
 * above), and the store writers' index held in memory
 * (DYETAP_INDEX_MEM_FRAMES), for every command. Prints the error; returns 0
 * or -EINVAL.
 */
int cli_store_limits_env(void);

#endif
