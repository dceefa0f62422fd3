/* SPDX-License-Identifier: MIT */
/*
 * dyetap cat - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_cat(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap cat: not available in this build yet\n");
	return 2;
}
