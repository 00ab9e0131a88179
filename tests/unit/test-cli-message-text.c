/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of frontends/cli/message-text.c: the TEXT arguments of "send"
 * and "search" joined by spaces, and "-" reading stdin, which each test
 * points at a temporary file holding the input (the real stdin is put back
 * in teardown).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "frontends/cli/message-text.h"

static int saved_stdin = -EBADF;

static int setup(void **state) {
	saved_stdin = dup(STDIN_FILENO);
	return saved_stdin >= 0 ? 0 : -1;
}

static int teardown(void **state) {
	int r = dup2(saved_stdin, STDIN_FILENO);

	saved_stdin = safe_close(saved_stdin);
	return r >= 0 ? 0 : -1;
}

/* Makes stdin a file that holds the @size bytes of @data. */
static void set_stdin(const char *data, size_t size) {
	FILE *f = tmpfile();

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, size, f), size);
	assert_int_equal(fflush(f), 0);
	assert_int_equal(lseek(fileno(f), 0, SEEK_SET), 0);
	assert_true(dup2(fileno(f), STDIN_FILENO) >= 0);
	fclose(f);
}

static int read_dash(char **ret) {
	char *dash[] = { (char *) "-" };

	return read_message_text(1, dash, ret);
}

static void test_message_text_joins_arguments(void **state) {
	char *one[] = { (char *) "hello" };
	char *many[] = { (char *) "hello", (char *) "", (char *) "world  x" };
	_cleanup_free_ char *a = NULL, *b = NULL;

	assert_int_equal(read_message_text(1, one, &a), 0);
	assert_string_equal(a, "hello");
	assert_int_equal(read_message_text(3, many, &b), 0);
	assert_string_equal(b, "hello  world  x");
}

static const struct {
	const char *in;
	const char *out;
} stdin_texts[] = {
	{ "", "" },
	{ "hello", "hello" },
	/* Only one trailing newline is dropped. */
	{ "hello\n", "hello" },
	{ "two\nlines\n\n", "two\nlines\n" },
	{ "\n", "" },
};

static void test_message_text_reads_stdin(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(stdin_texts); i++) {
		_cleanup_free_ char *s = NULL;

		set_stdin(stdin_texts[i].in, strlen(stdin_texts[i].in));
		assert_int_equal(read_dash(&s), 0);
		assert_string_equal(s, stdin_texts[i].out);
	}
}

static void test_message_text_refuses_nul(void **state) {
	char *s = NULL;

	set_stdin("a\0b", 3);
	assert_int_equal(read_dash(&s), -EILSEQ);
	assert_null(s);
}

static void test_message_text_limits_stdin(void **state) {
	_cleanup_free_ char *big = malloc(MESSAGE_TEXT_STDIN_MAX + 1);
	_cleanup_free_ char *s = NULL;
	char *none = NULL;

	assert_non_null(big);
	memset(big, 'x', MESSAGE_TEXT_STDIN_MAX + 1);

	set_stdin(big, MESSAGE_TEXT_STDIN_MAX);
	assert_int_equal(read_dash(&s), 0);
	assert_int_equal(strlen(s), MESSAGE_TEXT_STDIN_MAX);

	set_stdin(big, MESSAGE_TEXT_STDIN_MAX + 1);
	assert_int_equal(read_dash(&none), -EMSGSIZE);
	assert_null(none);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_text_joins_arguments),
		cmocka_unit_test(test_message_text_reads_stdin),
		cmocka_unit_test(test_message_text_refuses_nul),
		cmocka_unit_test(test_message_text_limits_stdin),
	};

	return cmocka_run_group_tests_name("cli-message-text", tests, setup, teardown);
}
