/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Shared by the libFuzzer targets: the entry point's prototype and check(),
 * which aborts (so libFuzzer records the input) when an oracle fails.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(x)                      \
	do {                          \
		if (!(x)) {           \
			abort();      \
		}                     \
	} while (0)
