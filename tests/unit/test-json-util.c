/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/json-util.c: json_add() owns the value on every path,
 * and turns the NULL of a failed constructor into -ENOMEM.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/json-util.h"
#include "common/macro.h"

static void test_json_add_takes_value(void **state) {
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	json_object *v;

	assert_non_null(o);
	assert_int_equal(json_add(o, "n", json_object_new_int(7)), 0);
	assert_true(json_object_object_get_ex(o, "n", &v));
	assert_int_equal(json_object_get_int(v), 7);

	/* The same key again replaces the value (json-c semantics). */
	assert_int_equal(json_add(o, "n", json_object_new_int(8)), 0);
	assert_true(json_object_object_get_ex(o, "n", &v));
	assert_int_equal(json_object_get_int(v), 8);
	assert_int_equal(json_object_object_length(o), 1);
}

static void test_json_add_null_is_enomem(void **state) {
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();

	assert_non_null(o);
	assert_int_equal(json_add(o, "missing", NULL), -ENOMEM);
	assert_false(json_object_object_get_ex(o, "missing", NULL));
}

static void test_json_add_string(void **state) {
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	json_object *v;

	assert_non_null(o);
	assert_int_equal(json_add_string(o, "name", "alice"), 0);
	assert_true(json_object_object_get_ex(o, "name", &v));
	assert_true(json_object_is_type(v, json_type_string));
	assert_string_equal(json_object_get_string(v), "alice");
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			"{\"name\":\"alice\"}");
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_add_takes_value),
		cmocka_unit_test(test_json_add_null_is_enomem),
		cmocka_unit_test(test_json_add_string),
	};

	return cmocka_run_group_tests_name("json-util", tests, NULL, NULL);
}
