/* SPDX-License-Identifier: MIT */
/*
 * dyetap info - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_info(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap info: not available in this build yet\n");
	return 2;
}
