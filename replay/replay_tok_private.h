/* SPDX-License-Identifier: MIT */
/*
 * replay_tok_private - the byte checks every replayed request goes
 * through (replay_request_unsafe(), replay_h2_request_unsafe()): a field
 * name must be a token, a value must hold no CR, LF or NUL. Each request
 * is checked by the scan, when it is read and when it is submitted, so
 * these run per byte of every name and value: a table for tchar, eight
 * bytes at a time for the value.
 *
 * References: RFC 9110 §5.6.2 (tchar), §5.5 (field values).
 */
#ifndef DYETAP_REPLAY_TOK_PRIVATE_H
#define DYETAP_REPLAY_TOK_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 §5.6.2 tchar. */
static const bool replay_tchar_tab[256] = {
    ['0' ... '9'] = true, ['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['!'] = true,  ['#'] = true,
    ['$'] = true,	  ['%'] = true,		['&'] = true,	      ['\''] = true, ['*'] = true,
    ['+'] = true,	  ['-'] = true,		['.'] = true,	      ['^'] = true,  ['_'] = true,
    ['`'] = true,	  ['|'] = true,		['~'] = true};

static inline bool replay_tchar(uint8_t c)
{
	return replay_tchar_tab[c];
}

/* Do the @p n bytes at @p p hold CR, LF or NUL? A word has a zero byte
 * when (w - 0x0101..) & ~w & 0x8080.. is not 0 (exact for "has one"), and
 * w ^ 0x0d0d.. has one where w has CR. */
static inline bool replay_has_ctl(const uint8_t *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w, cr, lf;
		memcpy(&w, p + i, 8);
		cr = w ^ (ones * '\r');
		lf = w ^ (ones * '\n');
		if (((w - ones) & ~w & highs) | ((cr - ones) & ~cr & highs) |
		    ((lf - ones) & ~lf & highs))
			return true;
	}
	for (; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
			return true;
	return false;
}

#endif
