/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/config.c: defaults, every key with valid and invalid
 * values, every wrong JSON type, broken files, atomic writes and the round
 * trip through the file.
 */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/macro.h"
#include "daemon/config.h"
#include "tests/helpers/test-tmpdir.h"

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	Config *c;
} Fixture;

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-config", "config.json", f->path, sizeof(f->path));
	assert_int_equal(config_new(f->path, &f->c), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;
	f->c = config_free(f->c);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text) {
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char *read_text(const char *path) {
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void assert_get(const Config *c, const char *key, const char *expected) {
	char *v = NULL;

	assert_int_equal(config_get(c, key, &v), 0);
	assert_string_equal(v, expected);
	free(v);
}

static const struct {
	const char *key, *value;
} defaults[] = {
	{ "username", "" },
	{ "coordinator", "localhost:7474" },
	{ "bind", "0.0.0.0:0" },
	{ "autologin", "false" },
	{ "notifications", "true" },
	{ "outbox-expiry", "7d" },
};

static void test_config_defaults(void **state) {
	Fixture *f = *state;
	char *error = NULL, *v = NULL;
	const char *const *k = config_keys();

	/* No file: defaults, and no error. */
	assert_int_equal(config_load(f->c, &error), 0);
	assert_null(error);
	for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
		assert_get(f->c, defaults[i].key, defaults[i].value);
		assert_non_null(k[i]);
		assert_string_equal(k[i], defaults[i].key);
	}
	assert_null(k[ELEMENTSOF(defaults)]);
	assert_false(f->c->autologin);
	assert_true(f->c->notifications);
	assert_int_equal(f->c->outbox_expiry_usec, 7ULL * 24 * 3600 * USEC_PER_SEC);
	assert_int_equal(f->c->bind_address.sa.sa_family, AF_INET);
	assert_int_equal(endpoint_port(&f->c->bind_address), 0);

	assert_int_equal(config_get(f->c, "nope", &v), -ENOKEY);
	assert_null(v);
}

static const struct {
	const char *json;
	int expected;
	const char *error; /* a part of the message after "PATH: " */
} files[] = {
	/* Wrong types, for every key. */
	{ "{\"username\": 5}", -EINVAL, "key 'username' must be a string" },
	{ "{\"username\": null}", -EINVAL, "key 'username' must be a string" },
	{ "{\"coordinator\": true}", -EINVAL, "key 'coordinator' must be a string" },
	{ "{\"coordinator\": [\"a\"]}", -EINVAL, "key 'coordinator' must be a string" },
	{ "{\"bind\": 1234}", -EINVAL, "key 'bind' must be a string" },
	{ "{\"autologin\": \"true\"}", -EINVAL, "key 'autologin' must be true or false" },
	{ "{\"autologin\": 1}", -EINVAL, "key 'autologin' must be true or false" },
	{ "{\"notifications\": {}}", -EINVAL, "key 'notifications' must be true or false" },
	{ "{\"outbox-expiry\": true}", -EINVAL, "key 'outbox-expiry' must be a number" },
	{ "{\"outbox-expiry\": 1.5}", -EINVAL, "key 'outbox-expiry' must be a number" },
	{ "{\"outbox-expiry\": -5}", -EINVAL, "key 'outbox-expiry' must be a number" },
	/* Right type, bad value. */
	{ "{\"username\": \"a,b\"}", -EINVAL, "key 'username': invalid value 'a,b'" },
	{ "{\"username\": \"end\"}", -EINVAL, "key 'username': invalid value" },
	{ "{\"coordinator\": \"bad host:1\"}", -EINVAL, "key 'coordinator': invalid value" },
	{ "{\"bind\": \"1.2.3.4\"}", -EINVAL, "key 'bind': invalid value '1.2.3.4'" },
	{ "{\"outbox-expiry\": 0}", -EINVAL, "key 'outbox-expiry': invalid value '0'" },
	{ "{\"outbox-expiry\": \"7x\"}", -EINVAL, "key 'outbox-expiry': invalid value '7x'" },
	/* Unknown keys and broken files. */
	{ "{\"usrname\": \"alice\"}", -ENOKEY, "unknown key 'usrname'" },
	{ "{", -EBADMSG, "not valid JSON" },
	{ "", -EBADMSG, "not valid JSON" },
	{ "{\"username\": \"alice\",}", -EBADMSG, "not valid JSON" },
	{ "{} {}", -EBADMSG, "not valid JSON" },
	{ "{}\n\t x", -EBADMSG, "not valid JSON" },
	{ "[]", -EBADMSG, "expected a JSON object" },
	{ "\"alice\"", -EBADMSG, "expected a JSON object" },
	{ "\xff\xfe{}", -EBADMSG, "not valid JSON" },
	/* Valid files. */
	{ "{}", 1, NULL },
	{ "  {\"username\": \"alice\"}\n\n", 1, NULL },
	{ "{\"outbox-expiry\": 3600, \"autologin\": true}", 1, NULL },
};

static void test_config_load_files(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		char *error = NULL;
		Config *c = NULL;
		int r;

		print_message("# file %zu\n", i);
		write_text(f->path, files[i].json);
		assert_int_equal(config_new(f->path, &c), 0);
		/* Values from an earlier file must survive a failed load. */
		c->autologin = true;

		r = config_load(c, &error);
		assert_int_equal(r, files[i].expected);
		if (r < 0) {
			assert_non_null(error);
			print_message("#   -> %s\n", error);
			/* The message names the file, then the problem. */
			assert_memory_equal(error, f->path, strlen(f->path));
			assert_non_null(strstr(error, files[i].error));
			assert_true(c->autologin);
			assert_get(c, "username", "");
		} else {
			assert_null(error);
		}
		free(error);
		config_free(c);
	}
}

static void test_config_load_values(void **state) {
	Fixture *f = *state;
	char *error = NULL;

	write_text(f->path, "{\"username\": \"Zoë\", \"coordinator\": \"[::1]:7000\","
			    " \"bind\": \"127.0.0.1:0\", \"autologin\": true,"
			    " \"notifications\": false, \"outbox-expiry\": 86400}");
	assert_int_equal(config_load(f->c, &error), 1);
	assert_null(error);
	assert_string_equal(f->c->username, "Zoë");
	assert_string_equal(f->c->coordinator, "[::1]:7000");
	assert_true(f->c->autologin);
	assert_false(f->c->notifications);
	assert_int_equal(f->c->outbox_expiry_usec, 24ULL * 3600 * USEC_PER_SEC);
	assert_get(f->c, "outbox-expiry", "1d");
	assert_int_equal(f->c->bind_address.sa.sa_family, AF_INET);
	assert_int_equal(endpoint_port(&f->c->bind_address), 0);

	/* A file over the size limit. */
	{
		char *big = malloc(CONFIG_FILE_MAX + 2);

		assert_non_null(big);
		memset(big, ' ', CONFIG_FILE_MAX + 1);
		big[0] = '{';
		big[CONFIG_FILE_MAX] = '}';
		big[CONFIG_FILE_MAX + 1] = '\0';
		write_text(f->path, big);
		free(big);
	}
	assert_int_equal(config_load(f->c, &error), -EFBIG);
	assert_non_null(strstr(error, f->path));
	free(error);
	error = NULL;

	/* The path is a directory. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(config_load(f->c, &error), -EISDIR);
	assert_non_null(strstr(error, f->path));
	free(error);
	/* Without an error pointer. */
	assert_int_equal(config_load(f->c, NULL), -EISDIR);
	assert_int_equal(rmdir(f->path), 0);
}

static const struct {
	const char *key, *value;
	int expected;
	const char *get; /* the value read back */
} sets[] = {
	{ "username", "alice", 0, "alice" },
	{ "username", "Zoë 日本", 0, "Zoë 日本" },
	{ "username", "", 0, "" },
	{ "username", "a:b", -EINVAL, NULL },
	{ "username", "a,b", -EINVAL, NULL },
	{ "username", "123456789012345678901234567890123", -EINVAL, NULL },
	{ "coordinator", "example.org", 0, "example.org" },
	{ "coordinator", "example.org:7474", 0, "example.org:7474" },
	{ "coordinator", "10.0.0.1:1", 0, "10.0.0.1:1" },
	{ "coordinator", "[::1]:65535", 0, "[::1]:65535" },
	{ "coordinator", "[::1]", 0, "[::1]" },
	{ "coordinator", "", 0, "" },
	{ "coordinator", "host:0", -EINVAL, NULL },
	{ "coordinator", "host:99999", -EINVAL, NULL },
	{ "coordinator", "host:", -EINVAL, NULL },
	{ "coordinator", ":7474", -EINVAL, NULL },
	{ "coordinator", "[::1", -EINVAL, NULL },
	{ "coordinator", "[1.2.3.4]:5", -EINVAL, NULL },
	{ "coordinator", "a b", -EINVAL, NULL },
	{ "coordinator", "a:1:2", -EINVAL, NULL },
	{ "bind", "127.0.0.1:5000", 0, "127.0.0.1:5000" },
	{ "bind", "[::]:0", 0, "[::]:0" },
	{ "bind", "0.0.0.0:70000", -EINVAL, NULL },
	{ "bind", "localhost:1", -EINVAL, NULL },
	{ "bind", "1.2.3.4", -EINVAL, NULL },
	{ "bind", "", -EINVAL, NULL },
	{ "autologin", "true", 0, "true" },
	{ "autologin", "no", 0, "false" },
	{ "autologin", "on", 0, "true" },
	{ "autologin", "0", 0, "false" },
	{ "autologin", "maybe", -EINVAL, NULL },
	{ "autologin", "", -EINVAL, NULL },
	{ "notifications", "off", 0, "false" },
	{ "notifications", "yes", 0, "true" },
	{ "notifications", "TRUE", -EINVAL, NULL },
	{ "outbox-expiry", "7d", 0, "7d" },
	{ "outbox-expiry", "12h", 0, "12h" },
	{ "outbox-expiry", "90m", 0, "90m" },
	{ "outbox-expiry", "3600", 0, "1h" },
	{ "outbox-expiry", "90", 0, "90s" },
	{ "outbox-expiry", "48h", 0, "2d" },
	{ "outbox-expiry", "3650d", 0, "3650d" },
	{ "outbox-expiry", "3651d", -EINVAL, NULL },
	{ "outbox-expiry", "0", -EINVAL, NULL },
	{ "outbox-expiry", "0d", -EINVAL, NULL },
	{ "outbox-expiry", "1y", -EINVAL, NULL },
	{ "outbox-expiry", "7dd", -EINVAL, NULL },
	{ "outbox-expiry", "d", -EINVAL, NULL },
	{ "outbox-expiry", "-1", -EINVAL, NULL },
	{ "outbox-expiry", " 7d", -EINVAL, NULL },
	{ "outbox-expiry", "", -EINVAL, NULL },
	{ "outbox-expiry", "99999999999999999999999", -EINVAL, NULL },
	{ "nope", "x", -ENOKEY, NULL },
	{ "", "x", -ENOKEY, NULL },
};

static void test_config_set(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(sets); i++) {
		char *error = NULL, *before = NULL;
		Config *reread = NULL;
		int r;

		print_message("# set %s '%s'\n", sets[i].key, sets[i].value);
		(void) config_get(f->c, sets[i].key, &before);
		r = config_set(f->c, sets[i].key, sets[i].value, &error);
		assert_int_equal(r, sets[i].expected);
		if (r < 0) {
			assert_non_null(error);
			assert_non_null(strstr(error, sets[i].key));
			if (before) {
				assert_get(f->c, sets[i].key, before);
			}
			free(error);
			free(before);
			continue;
		}
		assert_null(error);
		free(before);
		assert_get(f->c, sets[i].key, sets[i].get);

		/* The file holds it too. */
		assert_int_equal(config_new(f->path, &reread), 0);
		assert_int_equal(config_load(reread, NULL), 1);
		assert_get(reread, sets[i].key, sets[i].get);
		config_free(reread);
	}
}

static void test_config_round_trip(void **state) {
	Fixture *f = *state;
	Config *c = NULL;
	struct stat st;
	const char *text;

	assert_int_equal(config_set(f->c, "username", "bob", NULL), 0);
	assert_int_equal(config_set(f->c, "autologin", "true", NULL), 0);
	assert_int_equal(config_set(f->c, "outbox-expiry", "36h", NULL), 0);
	assert_int_equal(config_set(f->c, "bind", "[::1]:4000", NULL), 0);

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = read_text(f->path);
	assert_non_null(strstr(text, "\"username\": \"bob\""));
	assert_non_null(strstr(text, "\"autologin\": true"));
	assert_non_null(strstr(text, "\"outbox-expiry\": \"36h\""));

	assert_int_equal(config_new(f->path, &c), 0);
	assert_int_equal(config_load(c, NULL), 1);
	for (const char *const *k = config_keys(); *k; k++) {
		char *a = NULL;

		assert_int_equal(config_get(f->c, *k, &a), 0);
		assert_get(c, *k, a);
		free(a);
	}
	assert_int_equal(c->bind_address.sa.sa_family, AF_INET6);
	assert_int_equal(endpoint_port(&c->bind_address), 4000);
	config_free(c);
}

static size_t count_entries(const char *dir) {
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			n++;
		}
	}
	closedir(d);
	return n;
}

static void test_config_atomic_write(void **state) {
	Fixture *f = *state;
	char *error = NULL;
	char saved[256];

	/* Hand edits made while the daemon runs are kept by a set. */
	write_text(f->path, "{\"username\": \"carol\"}");
	assert_int_equal(config_set(f->c, "notifications", "false", NULL), 0);
	assert_string_equal(f->c->username, "carol");
	assert_non_null(strstr(read_text(f->path), "\"username\": \"carol\""));
	assert_int_equal(count_entries(f->dir), 1);

	/* A broken file is not overwritten; nothing is left behind. */
	write_text(f->path, "{\"username\": ");
	snprintf(saved, sizeof(saved), "%s", read_text(f->path));
	assert_int_equal(config_set(f->c, "autologin", "true", &error), -EBADMSG);
	assert_non_null(strstr(error, f->path));
	free(error);
	assert_string_equal(read_text(f->path), saved);
	assert_false(f->c->autologin);
	assert_int_equal(count_entries(f->dir), 1);

	/* A failed write leaves the old file and no temporary file. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(config_set(f->c, "autologin", "true", NULL), 0);
	snprintf(saved, sizeof(saved), "%s", read_text(f->path));
	{
		Config *c = NULL;
		char path[192];

		snprintf(path, sizeof(path), "%s/missing-dir/config.json", f->dir);
		assert_int_equal(config_new(path, &c), 0);
		error = NULL;
		assert_int_equal(config_set(c, "autologin", "false", &error), -ENOENT);
		assert_non_null(strstr(error, path));
		free(error);
		config_free(c);
	}
	assert_string_equal(read_text(f->path), saved);
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_config_default_path(void **state) {
	Fixture *f = *state;
	char *path = NULL, expected[256], dir[200];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/xdg-config", f->dir);
	assert_int_equal(setenv("XDG_CONFIG_HOME", dir, 1), 0);
	assert_int_equal(config_default_path(false, &path), 0);
	snprintf(expected, sizeof(expected), "%s/p2pchat/config.json", dir);
	assert_string_equal(path, expected);
	free(path);
	assert_int_equal(stat(dir, &st), -1);

	assert_int_equal(config_default_path(true, &path), 0);
	free(path);
	snprintf(expected, sizeof(expected), "%s/p2pchat", dir);
	assert_int_equal(stat(expected, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	assert_int_equal(unsetenv("XDG_CONFIG_HOME"), 0);
	assert_int_equal(setenv("HOME", f->dir, 1), 0);
	assert_int_equal(config_default_path(false, &path), 0);
	snprintf(expected, sizeof(expected), "%s/.config/p2pchat/config.json", f->dir);
	assert_string_equal(path, expected);
	free(path);
}

static void test_config_parsers(void **state) {
	uint64_t u = 0;

	assert_int_equal(config_parse_duration("1s", &u), 0);
	assert_int_equal(u, USEC_PER_SEC);
	assert_int_equal(config_parse_duration("2m", &u), 0);
	assert_int_equal(u, 120 * USEC_PER_SEC);
	assert_int_equal(config_parse_duration("0s", &u), -ERANGE);
	assert_int_equal(config_parse_duration("4294967296999", &u), -ERANGE);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_config_defaults),
		T(test_config_load_files),
		T(test_config_load_values),
		T(test_config_set),
		T(test_config_round_trip),
		T(test_config_atomic_write),
		T(test_config_default_path),
		T(test_config_parsers),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
