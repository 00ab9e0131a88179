/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of frontends/cli/config-keys.c: the CLI's copy of the setting
 * keys must be the daemon's (daemon/config.c, linked here only), every key
 * has a format to show when a value is refused, coordinators are checked
 * like the daemon checks them, and durations read as people say them.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "daemon/config.h"
#include "frontends/cli/config-keys.h"

static void test_config_keys_match_daemon(void **state) {
	const char *const *daemon_keys = config_keys();
	size_t i;

	for (i = 0; daemon_keys[i] && cli_config_keys[i]; i++) {
		assert_string_equal(cli_config_keys[i], daemon_keys[i]);
	}
	assert_null(daemon_keys[i]);
	assert_null(cli_config_keys[i]);
}

static void test_config_keys_have_formats(void **state) {
	for (size_t i = 0; cli_config_keys[i]; i++) {
		const char *f = cli_config_key_format(cli_config_keys[i]);

		assert_non_null(f);
		assert_true(strncmp(f, "expected ", 9) == 0);
	}
	assert_null(cli_config_key_format("colour"));
	assert_non_null(strstr(cli_config_key_format("outbox-expiry"), "90s, 30m, 12h or 7d"));
}

static const struct {
	const char *in;
	bool valid;
} coordinators[] = {
	{ "127.0.0.1:7474", true },
	{ "127.0.0.1", true },
	{ "chat.example.org:7474", true },
	{ "localhost", true },
	{ "[::1]:7474", true },
	{ "[::1]", true },
	{ "127.0.0.1:99999", false },
	{ "127.0.0.1:0", false },
	{ "127.0.0.1:", false },
	{ "http://127.0.0.1:7474", false },
	{ "host/path", false },
	{ ":7474", false },
	{ "", false },
	{ "[::1", false },
	{ "[nope]:1", false },
	{ "a b:1", false },
};

static void test_config_keys_coordinator(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(coordinators); i++) {
		if (cli_coordinator_is_valid(coordinators[i].in) != coordinators[i].valid) {
			fail_msg("'%s' should be %s", coordinators[i].in,
				coordinators[i].valid ? "valid" : "invalid");
		}
	}
}

static const struct {
	const char *in;
	const char *out;
} durations[] = {
	{ "7d", "7 days" },
	{ "1d", "1 day" },
	{ "12h", "12 hours" },
	{ "30m", "30 minutes" },
	{ "1s", "1 second" },
	{ "604800", "604800" },
	{ "", "" },
	{ "xd", "xd" },
};

static void test_config_keys_duration(void **state) {
	char buf[64];

	for (size_t i = 0; i < ELEMENTSOF(durations); i++) {
		assert_string_equal(cli_format_duration(durations[i].in, buf, sizeof(buf)),
			durations[i].out);
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_keys_match_daemon),
		cmocka_unit_test(test_config_keys_have_formats),
		cmocka_unit_test(test_config_keys_coordinator),
		cmocka_unit_test(test_config_keys_duration),
	};

	return cmocka_run_group_tests_name("cli-config", tests, NULL, NULL);
}
