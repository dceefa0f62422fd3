/* SPDX-License-Identifier: MIT */
/*
 * dyetap ctl - the client of the control socket that `dyetap mirror
 * --control PATH` and `dyetap-fastpath --control PATH` serve: one command
 * per call, its reply's payload on stdout. The protocol is a line
 * protocol (common/ctl.h, docs/operations.md); socat speaks it too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmds.h"
#include "common/ctl.h"
#include "common/dbuf.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dyetap ctl [--timeout MS] SOCKET COMMAND [ARG...]\n"
		"\n"
		"Send one command to a running `dyetap mirror` or `dyetap-fastpath` started\n"
		"with --control SOCKET, and print the reply.\n"
		"\n"
		"commands:\n"
		"  lanes [LANE]         each lane's state, targets, rate, queue and counters\n"
		"                       (one JSON object per line)\n"
		"  pause LANE           stop copying the lane's requests, at once; they are\n"
		"                       counted paused (capture and -w go on)\n"
		"  resume LANE          copy the lane's requests again\n"
		"  rate LANE N/s        change the lane's rate limit (0: none)\n"
		"  reload               read --config FILE and --rules FILE again: rules, lanes,\n"
		"                       targets and rates switch at once; a file that does not\n"
		"                       parse is refused (FILE:LINE) and nothing changes\n"
		"  stats                every counter as one JSON object\n"
		"  help                 the commands the program answers\n"
		"\n"
		"options:\n"
		"  --timeout MS         wait at most MS milliseconds for the reply (default 5000)\n"
		"\n"
		"exit codes: 0 done, 2 usage error or the command was refused (the reason is\n"
		"printed), 3 the socket cannot be reached or did not answer\n");
}

int cmd_ctl(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, timeout = 5000;
	optind = 1;
	/* "+": options stop at the socket; the command's words are not ours */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 3600000) {
				fprintf(stderr, "dyetap ctl: bad --timeout '%s' (milliseconds)\n",
					optarg);
				return 2;
			}
			timeout = (int)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "dyetap ctl: give the socket and a command (see --help)\n");
		return 2;
	}
	const char *path = argv[optind];
	struct dbuf line, out;
	dbuf_init(&line, CTL_LINE_MAX);
	dbuf_init(&out, (size_t)64 << 20);
	for (int i = optind + 1; i < argc; i++) {
		if (strpbrk(argv[i], " \t\r\n") || !*argv[i]) {
			fprintf(stderr,
				"dyetap ctl: '%s': a word may not be empty or hold blanks\n",
				argv[i]);
			dbuf_release(&line);
			return 2;
		}
		if (i > optind + 1)
			dbuf_putc(&line, ' ');
		dbuf_puts(&line, argv[i]);
	}
	dbuf_putc(&line, 0);
	int ret = 0;
	char err[512];
	if (dbuf_error(&line)) {
		fprintf(stderr, "dyetap ctl: command longer than %d bytes\n", CTL_LINE_MAX - 1);
		ret = 2;
	} else {
		int rc =
		    ctl_request(path, (const char *)line.data, timeout, &out, err, sizeof(err));
		if (rc == 0) {
			fwrite(out.data, 1, out.len, stdout);
		} else {
			fprintf(stderr, "dyetap ctl: %s\n", err);
			ret = rc == -EBADMSG ? 2 : 3;
		}
	}
	dbuf_release(&line);
	dbuf_release(&out);
	return ret;
}
