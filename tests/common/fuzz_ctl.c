/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ctl - libFuzzer target for what common/ctl.h reads from its
 * sockets: the HTTP request head of /metrics (ctl_http_request), the
 * command line (ctl_split), and label values and HELP text it escapes
 * into the Prometheus text (ctl_prom_add, ctl_prom_render).
 *
 * Input: any bytes. The whole input is a request head and, up to its
 * first NUL, a command line; its first 64 bytes are a label value.
 */
#include <stdint.h>
#include <string.h>

#include "common/ctl.h"
#include "common/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *m, *t;
	size_t ml, tl;
	if (ctl_http_request((const char *)data, size, &m, &ml, &t, &tl) == 0) {
		/* the slices lie inside the input */
		if (m != (const char *)data || t < m || t + tl > (const char *)data + size)
			__builtin_trap();
	}
	char *line = mem_strndup((const char *)data, size);
	if (!line)
		return 0;
	char *argv[CTL_MAX_ARGS];
	int n = ctl_split(line, argv);
	for (int i = 0; i < n; i++)
		if (!*argv[i] || strpbrk(argv[i], " \t"))
			__builtin_trap();
	if (strlen(line) > 64)
		line[64] = 0;
	struct ctl_prom *p = ctl_prom_create();
	struct dbuf b;
	dbuf_init(&b, 1 << 16);
	if (p &&
	    ctl_prom_add(p, CTL_PROM_GAUGE, "dyetap_x", line, "lane", line, NULL, NULL, 1) == 0 &&
	    ctl_prom_render(p, &b) == 0) {
		/* one sample line and two comment lines: nothing unescaped broke a line */
		size_t lines = 0;
		for (size_t i = 0; i < b.len; i++)
			lines += b.data[i] == '\n';
		if (lines != 3)
			__builtin_trap();
	}
	dbuf_release(&b);
	ctl_prom_free(p);
	mem_free(line);
	return 0;
}
