/* SPDX-License-Identifier: MIT */
/*
 * dyetap mirror - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_mirror(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap mirror: not available in this build yet\n");
	return 2;
}
