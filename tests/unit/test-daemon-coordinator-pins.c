/* SPDX-License-Identifier: MIT */

/*
 * Tests for daemon/coordinator-pins.c: trust on first use, a changed key
 * refused and kept pending until trusted by its fingerprint, the file's
 * format and mode, and loads that fail rather than drop a pin.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/identity.h"
#include "common/macro.h"
#include "daemon/coordinator-pins.h"
#include "tests/helpers/test-tmpdir.h"

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[TEST_TMPDIR_MAX + 32];
	CoordinatorPins *pins;
	uint8_t key_a[IDENTITY_PUBLIC_KEY_SIZE];
	uint8_t key_b[IDENTITY_PUBLIC_KEY_SIZE];
	char fp_a[IDENTITY_FINGERPRINT_SIZE];
	char fp_b[IDENTITY_FINGERPRINT_SIZE];
} Fixture;

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-coordinator-pins", "known-coordinators", f->path,
			sizeof(f->path));
	for (size_t i = 0; i < IDENTITY_PUBLIC_KEY_SIZE; i++) {
		f->key_a[i] = (uint8_t) i;
		f->key_b[i] = (uint8_t) (0xff - i);
	}
	identity_fingerprint(f->key_a, f->fp_a);
	identity_fingerprint(f->key_b, f->fp_b);
	assert_int_equal(coordinator_pins_load(f->path, &f->pins, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	f->pins = coordinator_pins_free(f->pins);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text) {
	FILE *file = fopen(path, "we");

	assert_non_null(file);
	assert_int_equal(fputs(text, file) >= 0, true);
	assert_int_equal(fclose(file), 0);
}

static char *read_text(const char *path) {
	static char buf[4096];
	FILE *file = fopen(path, "re");
	size_t n;

	assert_non_null(file);
	n = fread(buf, 1, sizeof(buf) - 1, file);
	buf[n] = '\0';
	assert_int_equal(fclose(file), 0);
	return buf;
}

static void reload(Fixture *f) {
	f->pins = coordinator_pins_free(f->pins);
	assert_int_equal(coordinator_pins_load(f->path, &f->pins, NULL), 0);
}

static void test_coordinator_pins_first_use(void **state) {
	Fixture *f = *state;
	char hex[IDENTITY_KEY_HEX_SIZE], want[256];
	struct stat st;

	/* No file: no pins, and nothing written until there is one. */
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(coordinator_pins_check(f->pins, "chat.example.org:7474", f->key_a), 1);
	assert_int_equal(coordinator_pins_check(f->pins, "chat.example.org:7474", f->key_a), 0);
	assert_null(coordinator_pins_get_pending_fingerprint(f->pins, "chat.example.org:7474"));

	identity_key_to_hex(f->key_a, hex);
	(void) snprintf(want, sizeof(want), "chat.example.org:7474 %s\n", hex);
	assert_string_equal(read_text(f->path), want);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Pins are per coordinator, and kept across a load. */
	assert_int_equal(coordinator_pins_check(f->pins, "127.0.0.1:7474", f->key_b), 1);
	reload(f);
	assert_int_equal(coordinator_pins_check(f->pins, "chat.example.org:7474", f->key_a), 0);
	assert_int_equal(coordinator_pins_check(f->pins, "127.0.0.1:7474", f->key_b), 0);
}

static void test_coordinator_pins_changed_key(void **state) {
	Fixture *f = *state;
	const char *c = "chat.example.org:7474";
	char before[4096], loose[IDENTITY_FINGERPRINT_SIZE];
	size_t j = 0;

	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_a), 1);
	(void) snprintf(before, sizeof(before), "%s", read_text(f->path));

	/* Another key: refused, pending, the file untouched. */
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), -EKEYREJECTED);
	assert_string_equal(coordinator_pins_get_pending_fingerprint(f->pins, c), f->fp_b);
	assert_string_equal(read_text(f->path), before);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), -EKEYREJECTED);

	/* Pending is in memory only. */
	reload(f);
	assert_null(coordinator_pins_get_pending_fingerprint(f->pins, c));
	assert_int_equal(coordinator_pins_trust(f->pins, c, f->fp_b), -ENOKEY);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), -EKEYREJECTED);

	/* The pinned key's fingerprint changes nothing, a third one is refused. */
	assert_int_equal(coordinator_pins_trust(f->pins, c, f->fp_a), 0);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), -EKEYREJECTED);
	assert_int_equal(coordinator_pins_trust(f->pins, c,
			"11111 22222 33333 44444 55555 66666 77777 88888 99999 00000 11111 22222"),
			-EKEYREJECTED);
	assert_string_equal(read_text(f->path), before);

	/* The pending key's fingerprint, written loosely: it becomes the pin, saved. */
	for (size_t i = 0; f->fp_b[i]; i++) {
		if (f->fp_b[i] != ' ') {
			loose[j++] = f->fp_b[i];
		}
	}
	loose[j] = '\0';
	assert_int_equal(coordinator_pins_trust(f->pins, c, loose), 0);
	assert_null(coordinator_pins_get_pending_fingerprint(f->pins, c));
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), 0);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_a), -EKEYREJECTED);
	reload(f);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), 0);
}

static void test_coordinator_pins_back_to_pinned_key(void **state) {
	Fixture *f = *state;
	const char *c = "[::1]:7474";

	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_a), 1);
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_b), -EKEYREJECTED);
	/* It offers its known key again: the other one is no longer on offer. */
	assert_int_equal(coordinator_pins_check(f->pins, c, f->key_a), 0);
	assert_null(coordinator_pins_get_pending_fingerprint(f->pins, c));
	assert_int_equal(coordinator_pins_trust(f->pins, c, f->fp_b), -ENOKEY);
}

static void test_coordinator_pins_bad_input(void **state) {
	Fixture *f = *state;
	char long_name[COORDINATOR_PINS_NAME_MAX + 2];

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(coordinator_pins_check(f->pins, "", f->key_a), -EINVAL);
	assert_int_equal(coordinator_pins_check(f->pins, "a b:1", f->key_a), -EINVAL);
	assert_int_equal(coordinator_pins_check(f->pins, "a\n:1", f->key_a), -EINVAL);
	assert_int_equal(coordinator_pins_check(f->pins, long_name, f->key_a), -EINVAL);
	assert_int_equal(coordinator_pins_trust(f->pins, "a:1", "12345"), -EINVAL);
	assert_int_equal(coordinator_pins_trust(f->pins, "a:1", f->fp_a), -ENOKEY);
	assert_null(coordinator_pins_get_pending_fingerprint(f->pins, "a:1"));
}

/* Each of these fails the load, with a message naming the file and the line. */
static void test_coordinator_pins_load_refuses(void **state) {
	Fixture *f = *state;
	char hex[IDENTITY_KEY_HEX_SIZE], good[128], text[512];
	static const struct {
		const char *text; /* %1$s: a good line; %2$s: a good key */
		const char *line;
	} cases[] = {
		{ "%1$sgarbage\n", "line 2" },
		{ "%1$s\n", "line 2" },                       /* an empty line */
		{ "a:1  %2$s\n", "line 1" },                  /* two blanks */
		{ "a:1 %2$s0\n", "line 1" },                  /* 65 digits */
		{ "a:1\t%2$s\n", "line 1" },
		{ "a:1 %2$s\r\n", "line 1" },
		{ "%1$s%1$s", "line 2" },                     /* the same coordinator twice */
		{ "a:1 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\n",
			"line 1" },                           /* upper case */
		{ "a:1 zz%2$.62s\n", "line 1" },
	};

	identity_key_to_hex(f->key_a, hex);
	(void) snprintf(good, sizeof(good), "chat.example.org:7474 %s\n", hex);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
		_cleanup_free_ char *error = NULL;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		(void) snprintf(text, sizeof(text), cases[i].text, good, hex);
#pragma GCC diagnostic pop
		write_text(f->path, text);
		assert_int_equal(coordinator_pins_load(f->path, &p, &error), -EBADMSG);
		assert_null(p);
		assert_non_null(error);
		assert_non_null(strstr(error, f->path));
		if (!strstr(error, cases[i].line)) {
			fail_msg("case %zu: '%s' does not name %s", i, error, cases[i].line);
		}
	}

	/* Not a regular file; a NUL in the text. */
	{
		_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
		_cleanup_free_ char *error = NULL;

		assert_int_equal(coordinator_pins_load(f->dir, &p, &error), -EISDIR);
		assert_null(p);
		assert_non_null(strstr(error, f->dir));
	}
	{
		_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
		_cleanup_free_ char *error = NULL;
		FILE *file = fopen(f->path, "we");

		assert_non_null(file);
		assert_int_equal(fwrite(good, 1, strlen(good) + 1, file), strlen(good) + 1);
		assert_int_equal(fclose(file), 0);
		assert_int_equal(coordinator_pins_load(f->path, &p, &error), -EBADMSG);
		assert_null(p);
		assert_non_null(strstr(error, f->path));
	}
}

static void test_coordinator_pins_load_good(void **state) {
	Fixture *f = *state;
	char hex_a[IDENTITY_KEY_HEX_SIZE], hex_b[IDENTITY_KEY_HEX_SIZE], text[512];

	identity_key_to_hex(f->key_a, hex_a);
	identity_key_to_hex(f->key_b, hex_b);
	/* The last line may lack its newline (a hand edit). */
	(void) snprintf(text, sizeof(text), "a:1 %s\n[::1]:2 %s", hex_a, hex_b);
	write_text(f->path, text);
	reload(f);
	assert_int_equal(coordinator_pins_check(f->pins, "a:1", f->key_a), 0);
	assert_int_equal(coordinator_pins_check(f->pins, "[::1]:2", f->key_b), 0);
	/* An empty file is no pins. */
	write_text(f->path, "");
	reload(f);
	assert_int_equal(coordinator_pins_check(f->pins, "a:1", f->key_b), 1);
}

/* A pin that cannot be saved is not made: memory says what the file says. */
static void test_coordinator_pins_save_fails(void **state) {
	Fixture *f = *state;
	_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
	char path[TEST_TMPDIR_MAX + 64];

	(void) snprintf(path, sizeof(path), "%s/no-such-dir/known-coordinators", f->dir);
	assert_int_equal(coordinator_pins_load(path, &p, NULL), 0);
	assert_int_equal(coordinator_pins_check(p, "a:1", f->key_a), -ENOENT);
	assert_int_equal(coordinator_pins_check(p, "a:1", f->key_b), -ENOENT);
}

static void write_many(const char *path, unsigned n,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]) {
	char hex[IDENTITY_KEY_HEX_SIZE];
	FILE *file = fopen(path, "we");

	assert_non_null(file);
	identity_key_to_hex(key, hex);
	for (unsigned i = 0; i < n; i++) {
		assert_true(fprintf(file, "host%u:1 %s\n", i, hex) > 0);
	}
	assert_int_equal(fclose(file), 0);
}

static void test_coordinator_pins_limit(void **state) {
	Fixture *f = *state;
	_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
	_cleanup_free_ char *error = NULL;

	write_many(f->path, COORDINATOR_PINS_MAX, f->key_a);
	reload(f);
	assert_int_equal(coordinator_pins_check(f->pins, "host0:1", f->key_a), 0);
	assert_int_equal(coordinator_pins_check(f->pins, "one-more:1", f->key_a), -E2BIG);

	write_many(f->path, COORDINATOR_PINS_MAX + 1, f->key_a);
	assert_int_equal(coordinator_pins_load(f->path, &p, &error), -E2BIG);
	assert_null(p);
	assert_non_null(error);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_coordinator_pins_first_use),
		T(test_coordinator_pins_changed_key),
		T(test_coordinator_pins_back_to_pinned_key),
		T(test_coordinator_pins_bad_input),
		T(test_coordinator_pins_load_refuses),
		T(test_coordinator_pins_load_good),
		T(test_coordinator_pins_save_fails),
		T(test_coordinator_pins_limit),
	};

	return cmocka_run_group_tests_name("coordinator-pins", tests, NULL, NULL);
}
