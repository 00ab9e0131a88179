/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/parse-util.c: the spellings command-line numbers
 * accept, and which error each refused one gets.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/macro.h"
#include "common/parse-util.h"

static void test_parse_uint64_range(void **state) {
	static const struct {
		const char *text;
		uint64_t min, max;
		int r;
		uint64_t value;
	} cases[] = {
		{ "0", 0, 10, 0, 0 },
		{ "10", 0, 10, 0, 10 },
		{ "1000", 1, 1000, 0, 1000 },
		{ "65535", 0, 65535, 0, 65535 },
		{ "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX },
		{ "0", 1, 1000, -ERANGE },
		{ "1001", 1, 1000, -ERANGE },
		{ "18446744073709551616", 0, UINT64_MAX, -ERANGE },
		{ "", 0, 10, -EINVAL },
		{ " 5", 0, 10, -EINVAL },
		{ "\t5", 0, 10, -EINVAL },
		{ "+5", 0, 10, -EINVAL },
		{ "-5", 0, 10, -EINVAL },
		{ "5 ", 0, 10, -EINVAL },
		{ "5s", 0, 10, -EINVAL },
		{ "0x5", 0, 10, -EINVAL },
		{ "five", 0, 10, -EINVAL },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t v = 4242;

		assert_int_equal(parse_uint64_range(cases[i].text, cases[i].min, cases[i].max, &v),
				cases[i].r);
		assert_int_equal(v, cases[i].r == 0 ? cases[i].value : 4242);
	}
	assert_int_equal(parse_uint64_range(NULL, 0, 10, NULL), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_uint64_range),
	};

	return cmocka_run_group_tests_name("parse-util", tests, NULL, NULL);
}
