/* SPDX-License-Identifier: MIT */
/*
 * log - the one logging path of dyetap's libraries.
 *
 * Library code never prints. It logs through one macro per module, e.g.
 *
 *     #define STORE_LOG(lvl, ...) LOG_MSG(lvl, "store", __VA_ARGS__)
 *
 * and the program (cli/, dpdk/'s main) installs a sink that decides where
 * messages go. Without a sink, warnings and errors go to stderr.
 * Thread-safety: log_set_sink() at start-up only; log_msg() is thread-safe
 * as long as the sink is.
 */
#ifndef DYETAP_COMMON_LOG_H
#define DYETAP_COMMON_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

typedef void (*log_sink_fn)(void *ctx, enum log_level lvl, const char *module, const char *msg);

/** Install @p fn (borrowed, called with @p ctx) as the sink; NULL restores stderr. */
void log_set_sink(log_sink_fn fn, void *ctx);

/** Messages above @p lvl are dropped before formatting. Default LOG_WARN. */
void log_set_level(enum log_level lvl);

/** Current threshold. */
enum log_level log_get_level(void);

/** Format and deliver one message. Use through a module macro. */
void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_MSG(lvl, module, ...)                                                                  \
	do {                                                                                       \
		if ((lvl) <= log_get_level())                                                      \
			log_msg((lvl), (module), __VA_ARGS__);                                     \
	} while (0)

#endif
