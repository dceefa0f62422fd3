/* SPDX-License-Identifier: MIT */
/*
 * dyetap replay - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_replay(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap replay: not available in this build yet\n");
	return 2;
}
