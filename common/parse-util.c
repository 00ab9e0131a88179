/* SPDX-License-Identifier: MIT */

/*
 * Number parsing for the command lines of every program, so that an option
 * takes the same spellings everywhere.  Nothing here allocates or logs.
 */

#include <errno.h>
#include <stdlib.h>

#include "common/parse-util.h"

int parse_uint64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
	unsigned long long v;
	char *end;

	/* strtoull() would skip leading spaces and accept a sign. */
	if (!s || s[0] < '0' || s[0] > '9') {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end) {
		return errno == ERANGE ? -ERANGE : -EINVAL;
	}
	if (v < min || v > max) {
		return -ERANGE;
	}
	*ret = v;
	return 0;
}
