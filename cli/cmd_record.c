/* SPDX-License-Identifier: MIT */
/*
 * dyetap record - not built yet: this placeholder only says so.
 */
#include <stdio.h>

#include "cli/cmds.h"

int cmd_record(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dyetap record: not available in this build yet\n");
	return 2;
}
