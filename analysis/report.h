/* SPDX-License-Identifier: MIT */
/*
 * report - render a finished analysis context (analysis/diff.h) as a
 * terminal summary, JSON (schema: docs/report.md), JUnit XML, or one
 * self-contained HTML file (inline CSS, JS and SVG; no network needed).
 *
 * Every report carries the accounting (capture and replay counters,
 * incomplete sessions, replay errors) and says at the top when the data
 * was incomplete. Authorization, Proxy-Authorization, Cookie and
 * Set-Cookie values are masked in every example.
 *
 * One verdict per candidate role: the terminal and HTML renderings give
 * each its own section, JSON its object in "candidates", JUnit its own
 * testsuite.
 *
 * All functions append to @p out and return its sticky error
 * (dbuf_error(): 0, -E2BIG when the cap of @p out was hit, -ENOMEM), so a
 * report cut short is never returned as a success; -EINVAL when the
 * context is not finished.
 */
#ifndef DYETAP_ANALYSIS_REPORT_H
#define DYETAP_ANALYSIS_REPORT_H

#include <stdbool.h>

#include "analysis/diff.h"
#include "common/dbuf.h"

/**
 * Plain-text summary for a terminal; @p color adds ANSI colors. Text from
 * traffic is valid UTF-8 without control characters (no escape sequence of
 * a candidate reaches the terminal).
 */
int report_text(const struct diff_ctx *c, struct dbuf *out, bool color);

/** JSON report (docs/report.md). */
int report_json(const struct diff_ctx *c, struct dbuf *out);

/** JUnit XML: one testsuite per candidate, one testcase per endpoint. */
int report_junit(const struct diff_ctx *c, struct dbuf *out);

/** Self-contained HTML report. */
int report_html(const struct diff_ctx *c, struct dbuf *out);

/**
 * Append @p s[0..n) HTML/XML-escaped (&, <, >, ", '); invalid UTF-8 and
 * every character XML 1.0 forbids (C0 controls but tab, LF and CR; U+FFFE,
 * U+FFFF) become U+FFFD.
 */
int report_escape(struct dbuf *out, const void *s, size_t n);

#endif
