/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A temporary directory per test, for the store tests: test_tmpdir_new()
 * in setup, test_tmpdir_remove() in teardown.  Include after <cmocka.h>.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_TMPDIR_MAX 64

/* Creates /tmp/@prefix-XXXXXX in @dir and the path of @file in it in @path. */
static inline void test_tmpdir_new(char dir[static TEST_TMPDIR_MAX], const char *prefix,
		const char *file, char *path, size_t path_size) {
	assert_true(snprintf(dir, TEST_TMPDIR_MAX, "/tmp/%s-XXXXXX", prefix) < TEST_TMPDIR_MAX);
	assert_non_null(mkdtemp(dir));
	assert_true((size_t) snprintf(path, path_size, "%s/%s", dir, file) < path_size);
}

static inline void test_tmpdir_remove(const char *dir) {
	char cmd[TEST_TMPDIR_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}
