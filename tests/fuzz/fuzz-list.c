/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for the roster list: whatever parses must format, parse
 * back to the same entries and format to the same bytes again; a mismatch
 * aborts.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	_cleanup_free_ WireListEntry *entries = NULL, *again = NULL;
	_cleanup_free_ char *text = NULL, *text2 = NULL;
	size_t n, n2, len, len2;

	if (wire_parse_list((const char *) data, size, &entries, &n) < 0) {
		return 0;
	}
	check(entries);
	check(n <= WIRE_LIST_MAX_ENTRIES);

	check(wire_format_list(entries, n, &text, &len) == 0);
	check(wire_parse_list(text, len, &again, &n2) == 0);
	check(n == n2);
	for (size_t i = 0; i < n; i++) {
		check(streq(entries[i].name, again[i].name));
		check(endpoint_equal(&entries[i].endpoint, &again[i].endpoint));
		check(streq(entries[i].caps, again[i].caps));
		check(wire_name_is_valid(entries[i].name, strlen(entries[i].name)));
	}
	check(wire_format_list(again, n2, &text2, &len2) == 0);
	check(len == len2 && memcmp(text, text2, len) == 0);
	return 0;
}
