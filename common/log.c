/* SPDX-License-Identifier: MIT */
/*
 * log - sink and threshold for library log messages (see log.h).
 */
#include "common/log.h"

#include <stdio.h>

static log_sink_fn log_sink;
static void *log_sink_ctx;
static enum log_level log_level_max = LOG_WARN;

void log_set_sink(log_sink_fn fn, void *ctx)
{
	log_sink = fn;
	log_sink_ctx = ctx;
}

void log_set_level(enum log_level lvl)
{
	log_level_max = lvl;
}

enum log_level log_get_level(void)
{
	return log_level_max;
}

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char buf[1024];
	va_list ap;

	if (lvl > log_level_max)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink(log_sink_ctx, lvl, module, buf);
		return;
	}
	fprintf(stderr, "dyetap: %s: %s: %s\n", module, names[lvl], buf);
}
