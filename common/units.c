/* SPDX-License-Identifier: MIT */
/*
 * units - size arguments (see units.h). Binary multiples, as the caps they
 * set are memory and file sizes.
 */
#include "common/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int units_parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL; /* no sign, no space, no empty string */
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = 1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	default:
		break;
	}
	if (*end && strcmp(end, "B") && !(mul > 1 && !strcmp(end, "iB")))
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = (uint64_t)v * mul;
	return 0;
}
