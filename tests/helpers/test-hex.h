/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Hex helpers for the codec tests: byte vectors are written as in the
 * protocol docs ("6c 00 6f 00"), spaces ignored.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int hex_digit(char c) {
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Decodes @hex into a fresh buffer (never NULL); aborts on malformed test data. */
static inline uint8_t *unhex(const char *hex, size_t *ret_len) {
	uint8_t *out = malloc(strlen(hex) / 2 + 1);
	size_t k = 0;
	int hi = -1;

	assert(out);
	for (const char *p = hex; *p; p++) {
		int v;

		if (*p == ' ') {
			continue;
		}
		v = hex_digit(*p);
		assert(v >= 0);
		if (hi < 0) {
			hi = v;
		} else {
			out[k++] = (uint8_t) (hi << 4 | v);
			hi = -1;
		}
	}
	assert(hi < 0);
	*ret_len = k;
	return out;
}
