/* SPDX-License-Identifier: MIT */
/*
 * dyetap diff - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_diff(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap diff: not available in this build yet\n");
	return 2;
}
