/* SPDX-License-Identifier: MIT */
#pragma once

/* The time of a clock in microseconds, the unit of every timestamp we keep. */

#include <stdint.h>
#include <time.h>

#include "common/macro.h"

static inline uint64_t now_usec(clockid_t clock) {
	struct timespec ts;

	(void) clock_gettime(clock, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}
