/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/bindings.c on a real SQLite file in a temporary
 * directory: bind, lookup, a second key refused, release, the listing in
 * name order, last-seen written lazily, reopening, the schema version, a
 * corrupt or newer file refused without a crash, a storm of new names, and
 * a writer killed (SIGKILL) mid-way that loses no acknowledged binding.
 */

#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "common/time-util.h"
#include "coordinator/bindings.h"
#include "tests/helpers/test-tmpdir.h"

#define T0 ((uint64_t) 1700000000 * USEC_PER_SEC)
#define HOUR (3600 * USEC_PER_SEC)

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[TEST_TMPDIR_MAX + 32];
	BindingStore *store;
} Fixture;

/* A key that differs for each @i and @salt. */
static void make_key(unsigned i, uint8_t salt, uint8_t ret[static BINDING_KEY_SIZE]) {
	memset(ret, salt, BINDING_KEY_SIZE);
	memcpy(ret, &i, sizeof(i));
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-bindings", "bindings.sqlite", f->path, sizeof(f->path));
	assert_int_equal(binding_store_open(f->dir, &f->store), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	f->store = binding_store_free(f->store);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void reopen(Fixture *f) {
	f->store = binding_store_free(f->store);
	assert_int_equal(binding_store_open(f->dir, &f->store), 0);
}

/* Runs @sql on the file with a connection of its own; its first column. */
static void raw_sql(const char *path, const char *sql, char *ret, size_t size) {
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	rc = sqlite3_step(s);
	assert_true(rc == SQLITE_ROW || rc == SQLITE_DONE);
	if (ret) {
		assert_int_equal(rc, SQLITE_ROW);
		snprintf(ret, size, "%s", (const char *) sqlite3_column_text(s, 0));
	}
	assert_int_equal(sqlite3_finalize(s), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_bindings_bind_lookup(void **state) {
	Fixture *f = *state;
	uint8_t a[BINDING_KEY_SIZE], b[BINDING_KEY_SIZE], got[BINDING_KEY_SIZE];

	make_key(1, 0xaa, a);
	make_key(2, 0xbb, b);

	memset(got, 0x55, sizeof(got));
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 0);
	for (size_t i = 0; i < sizeof(got); i++) {
		assert_int_equal(got[i], 0x55); /* untouched when not bound */
	}

	assert_int_equal(binding_store_bind(f->store, "alice", a, T0), 1);
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 1);
	assert_memory_equal(got, a, BINDING_KEY_SIZE);

	/* The same key again: fine, nothing new. */
	assert_int_equal(binding_store_bind(f->store, "alice", a, T0 + 1), 0);
	/* Another key: refused, and the binding stays. */
	assert_int_equal(binding_store_bind(f->store, "alice", b, T0 + 2), -EEXIST);
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 1);
	assert_memory_equal(got, a, BINDING_KEY_SIZE);

	/* Names are compared exactly (UTF-8 bytes). */
	assert_int_equal(binding_store_lookup(f->store, "Alice", got), 0);
	assert_int_equal(binding_store_bind(f->store, "Alice", b, T0), 1);
	assert_int_equal(binding_store_bind(f->store, "b\xc3\xa9la", b, T0), 1);
	assert_int_equal(binding_store_lookup(f->store, "b\xc3\xa9la", got), 1);
	assert_memory_equal(got, b, BINDING_KEY_SIZE);
}

static void test_bindings_invalid_names(void **state) {
	static const char *const names[] = {
		"", "a,b", "tab\there", "new\nline", "semi;colon",
		"123456789012345678901234567890123", /* 33 characters */
	};
	Fixture *f = *state;
	uint8_t key[BINDING_KEY_SIZE];

	make_key(1, 0xaa, key);
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		assert_int_equal(binding_store_bind(f->store, names[i], key, T0), -EINVAL);
		assert_int_equal(binding_store_lookup(f->store, names[i], key), -EINVAL);
		assert_int_equal(binding_store_release(f->store, names[i]), -ENOENT);
	}
	assert_int_equal(binding_store_bind(f->store, NULL, key, T0), -EINVAL);
}

static void test_bindings_release(void **state) {
	Fixture *f = *state;
	uint8_t a[BINDING_KEY_SIZE], b[BINDING_KEY_SIZE], got[BINDING_KEY_SIZE];

	make_key(1, 0xaa, a);
	make_key(2, 0xbb, b);

	assert_int_equal(binding_store_release(f->store, "alice"), -ENOENT);
	assert_int_equal(binding_store_bind(f->store, "alice", a, T0), 1);
	assert_int_equal(binding_store_bind(f->store, "bob", a, T0), 1);
	assert_int_equal(binding_store_release(f->store, "alice"), 0);
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 0);
	assert_int_equal(binding_store_release(f->store, "alice"), -ENOENT);
	/* Others stay; the released name goes to the next key. */
	assert_int_equal(binding_store_lookup(f->store, "bob", got), 1);
	assert_int_equal(binding_store_bind(f->store, "alice", b, T0 + 1), 1);
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 1);
	assert_memory_equal(got, b, BINDING_KEY_SIZE);
}

typedef struct Listing {
	char names[8][16];
	uint8_t keys[8][BINDING_KEY_SIZE];
	uint64_t created[8], last_seen[8];
	size_t n;
	size_t stop_after; /* 0: never */
} Listing;

static int collect(const Binding *b, void *userdata) {
	Listing *l = userdata;

	if (l->stop_after > 0 && l->n == l->stop_after) {
		return -ECANCELED;
	}
	assert_true(l->n < ELEMENTSOF(l->names));
	snprintf(l->names[l->n], sizeof(l->names[l->n]), "%s", b->name);
	memcpy(l->keys[l->n], b->key, BINDING_KEY_SIZE);
	l->created[l->n] = b->created_usec;
	l->last_seen[l->n] = b->last_seen_usec;
	l->n++;
	return 0;
}

static void test_bindings_foreach(void **state) {
	static const char *const names[] = { "carol", "alice", "bob" };
	Fixture *f = *state;
	Listing l = {};
	uint8_t key[BINDING_KEY_SIZE];

	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.n, 0);

	for (unsigned i = 0; i < ELEMENTSOF(names); i++) {
		make_key(i, 0xcc, key);
		assert_int_equal(binding_store_bind(f->store, names[i], key, T0 + i), 1);
	}
	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.names[0], "alice");
	assert_string_equal(l.names[1], "bob");
	assert_string_equal(l.names[2], "carol");
	make_key(1, 0xcc, key);
	assert_memory_equal(l.keys[0], key, BINDING_KEY_SIZE);
	assert_int_equal(l.created[0], T0 + 1);
	assert_int_equal(l.created[2], T0);
	assert_int_equal(l.last_seen[1], T0 + 2);

	/* The callback's error ends the walk; the statement is usable again. */
	l = (Listing) { .stop_after = 1 };
	assert_int_equal(binding_store_foreach(f->store, collect, &l), -ECANCELED);
	assert_int_equal(l.n, 1);
	l = (Listing) {};
	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.n, 3);
}

static void test_bindings_last_seen_lazy(void **state) {
	Fixture *f = *state;
	Listing l = {};
	uint8_t key[BINDING_KEY_SIZE];

	make_key(1, 0xaa, key);
	assert_int_equal(binding_store_bind(f->store, "alice", key, T0), 1);
	/* Within a day: no write. */
	assert_int_equal(binding_store_bind(f->store, "alice", key, T0 + 23 * HOUR), 0);
	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.last_seen[0], T0);
	/* A day later: written; created stays. */
	assert_int_equal(binding_store_bind(f->store, "alice", key, T0 + 25 * HOUR), 0);
	l = (Listing) {};
	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.last_seen[0], T0 + 25 * HOUR);
	assert_int_equal(l.created[0], T0);
	/* A clock that went back changes nothing. */
	assert_int_equal(binding_store_bind(f->store, "alice", key, T0), 0);
	l = (Listing) {};
	assert_int_equal(binding_store_foreach(f->store, collect, &l), 0);
	assert_int_equal(l.last_seen[0], T0 + 25 * HOUR);
}

static void test_bindings_reopen_keeps(void **state) {
	Fixture *f = *state;
	uint8_t a[BINDING_KEY_SIZE], b[BINDING_KEY_SIZE], got[BINDING_KEY_SIZE];

	make_key(1, 0xaa, a);
	make_key(2, 0xbb, b);
	assert_int_equal(binding_store_bind(f->store, "alice", a, T0), 1);
	reopen(f);
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 1);
	assert_memory_equal(got, a, BINDING_KEY_SIZE);
	assert_int_equal(binding_store_bind(f->store, "alice", b, T0), -EEXIST);

	/* A second connection (an operator command) sees it as well. */
	{
		BindingStore *other = NULL;

		assert_int_equal(binding_store_open_existing(f->dir, &other), 0);
		assert_int_equal(binding_store_release(other, "alice"), 0);
		other = binding_store_free(other);
		assert_null(other);
	}
	assert_int_equal(binding_store_lookup(f->store, "alice", got), 0);
}

static void test_bindings_open_existing_missing(void **state) {
	Fixture *f = *state;
	BindingStore *s = NULL;
	char sub[sizeof(f->dir) + 32];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/empty", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(binding_store_open_existing(sub, &s), -ENOENT);
	assert_null(s);
	snprintf(sub, sizeof(sub), "%s/empty/bindings.sqlite", f->dir);
	assert_int_equal(stat(sub, &st), -1); /* and nothing created */

	snprintf(sub, sizeof(sub), "%s/nodir", f->dir);
	assert_int_equal(binding_store_open_existing(sub, &s), -ENOENT);
	assert_int_not_equal(binding_store_open(sub, &s), 0);
	assert_null(s);
}

static void test_bindings_schema_version(void **state) {
	Fixture *f = *state;
	BindingStore *s = NULL;
	char v[32];

	raw_sql(f->path, "PRAGMA user_version", v, sizeof(v));
	assert_string_equal(v, "1");
	raw_sql(f->path, "PRAGMA journal_mode", v, sizeof(v));
	assert_string_equal(v, "wal");
	/* The CHECK holds whoever writes. */
	{
		sqlite3 *db = NULL;

		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "INSERT INTO bindings VALUES ('x', x'00', 0, 0)",
				NULL, NULL, NULL), SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_close(db), SQLITE_OK);
	}

	/* Reopening does not migrate again. */
	reopen(f);
	raw_sql(f->path, "PRAGMA user_version", v, sizeof(v));
	assert_string_equal(v, "1");

	/* A file of a newer version is refused, and left as it is. */
	f->store = binding_store_free(f->store);
	raw_sql(f->path, "PRAGMA user_version = 99", NULL, 0);
	assert_int_equal(binding_store_open(f->dir, &s), -EPROTONOSUPPORT);
	assert_null(s);
	raw_sql(f->path, "PRAGMA user_version", v, sizeof(v));
	assert_string_equal(v, "99");
}

static void test_bindings_corrupt_file(void **state) {
	Fixture *f = *state;
	BindingStore *s = NULL;
	char junk[8192];
	FILE *file;

	f->store = binding_store_free(f->store);
	(void) unlink(f->path);
	for (size_t i = 0; i < sizeof(junk); i++) {
		junk[i] = (char) (i * 7 + 3);
	}
	file = fopen(f->path, "w");
	assert_non_null(file);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), file), sizeof(junk));
	assert_int_equal(fclose(file), 0);

	assert_int_equal(binding_store_open(f->dir, &s), -EBADMSG);
	assert_null(s);
	assert_int_equal(binding_store_open_existing(f->dir, &s), -EBADMSG);
	assert_null(s);

	/* A database whose header is intact but whose pages are not. */
	(void) unlink(f->path);
	assert_int_equal(binding_store_open(f->dir, &f->store), 0);
	for (unsigned i = 0; i < 500; i++) {
		char name[16];
		uint8_t key[BINDING_KEY_SIZE];

		snprintf(name, sizeof(name), "user%u", i);
		make_key(i, 0x11, key);
		assert_int_equal(binding_store_bind(f->store, name, key, T0), 1);
	}
	f->store = binding_store_free(f->store); /* checkpoints into the file */
	file = fopen(f->path, "r+");
	assert_non_null(file);
	assert_int_equal(fseek(file, 4096 + 100, SEEK_SET), 0);
	assert_int_equal(fwrite(junk, 1, 4096 * 2, file), 4096 * 2);
	assert_int_equal(fclose(file), 0);
	if (binding_store_open(f->dir, &s) == 0) {
		Listing l = {};
		int r;

		/* Opening may not notice; reading must fail cleanly. */
		r = binding_store_foreach(s, collect, &l);
		assert_true(r == -EBADMSG || r == -EINVAL || r == 0);
		s = binding_store_free(s);
	}
}

static void test_bindings_storm(void **state) {
	Fixture *f = *state;
	uint8_t key[BINDING_KEY_SIZE], got[BINDING_KEY_SIZE];
	const unsigned n = 5000;
	uint64_t start, elapsed;

	start = now_usec(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "storm%u", i);
		make_key(i, 0x22, key);
		assert_int_equal(binding_store_bind(f->store, name, key, T0 + i), 1);
	}
	elapsed = now_usec(CLOCK_MONOTONIC) - start;
	/* A figure, not a test: the bound would be flaky under sanitizers. */
	printf("# %u new bindings in %.1f ms: %.1f us per bind (one commit each)\n", n,
			(double) elapsed / 1000.0, (double) elapsed / n);

	start = now_usec(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "storm%u", i);
		make_key(i, 0x22, key);
		assert_int_equal(binding_store_bind(f->store, name, key, T0 + i + 1), 0);
	}
	elapsed = now_usec(CLOCK_MONOTONIC) - start;
	printf("# %u logins of bound names in %.1f ms: %.1f us per bind\n", n,
			(double) elapsed / 1000.0, (double) elapsed / n);

	reopen(f);
	make_key(n - 1, 0x22, key);
	assert_int_equal(binding_store_lookup(f->store, "storm4999", got), 1);
	assert_memory_equal(got, key, BINDING_KEY_SIZE);
}

/*
 * The child binds names and writes each one to the pipe once bind returned
 * (acknowledged); it is killed mid-way.  Every name read from the pipe must
 * be bound afterwards, and the file must be intact.
 */
#define KILL_NAMES 2000
#define KILL_AFTER 300

_Noreturn static void kill_child(const char *dir, int fd) {
	BindingStore *s = NULL;

	if (binding_store_open(dir, &s) < 0) {
		_exit(2);
	}
	for (unsigned i = 0; i < KILL_NAMES; i++) {
		uint8_t key[BINDING_KEY_SIZE];
		char line[32];
		int n;

		n = snprintf(line, sizeof(line), "kill%u\n", i);
		line[n - 1] = '\0';
		make_key(i, 0x33, key);
		if (binding_store_bind(s, line, key, T0) != 1) {
			_exit(3);
		}
		line[n - 1] = '\n';
		if (write(fd, line, (size_t) n) != n) {
			_exit(4);
		}
	}
	for (;;) {
		pause();
	}
}

static void test_bindings_kill9_keeps_acknowledged(void **state) {
	Fixture *f = *state;
	char buf[64 * 1024], v[64];
	size_t len = 0, acked = 0;
	bool killed = false;
	int fds[2], status;
	pid_t pid;

	/* No connection of ours across fork(). */
	f->store = binding_store_free(f->store);

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		(void) close(fds[0]);
		kill_child(f->dir, fds[1]);
	}
	(void) close(fds[1]);

	for (;;) {
		ssize_t n;

		if (!killed) {
			size_t lines = 0;

			for (size_t i = 0; i < len; i++) {
				lines += buf[i] == '\n';
			}
			if (lines >= KILL_AFTER) {
				assert_int_equal(kill(pid, SIGKILL), 0);
				killed = true;
			}
		}
		assert_true(len < sizeof(buf));
		n = read(fds[0], buf + len, sizeof(buf) - len);
		assert_true(n >= 0);
		if (n == 0) {
			break; /* the child is gone: everything it wrote is read */
		}
		len += (size_t) n;
	}
	(void) close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	raw_sql(f->path, "PRAGMA integrity_check", v, sizeof(v));
	assert_string_equal(v, "ok");

	assert_int_equal(binding_store_open(f->dir, &f->store), 0);
	for (char *p = buf, *nl; (nl = memchr(p, '\n', (size_t) (buf + len - p))); p = nl + 1) {
		uint8_t key[BINDING_KEY_SIZE], got[BINDING_KEY_SIZE];
		unsigned i;

		*nl = '\0';
		assert_int_equal(sscanf(p, "kill%u", &i), 1);
		make_key(i, 0x33, key);
		assert_int_equal(binding_store_lookup(f->store, p, got), 1);
		assert_memory_equal(got, key, BINDING_KEY_SIZE);
		acked++;
	}
	printf("# killed after %zu of %d acknowledged binds; all %zu bound\n", acked,
			KILL_NAMES, acked);
	assert_true(acked >= KILL_AFTER);
}

int main(void) {
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_bindings_bind_lookup),
		T(test_bindings_invalid_names),
		T(test_bindings_release),
		T(test_bindings_foreach),
		T(test_bindings_last_seen_lazy),
		T(test_bindings_reopen_keeps),
		T(test_bindings_open_existing_missing),
		T(test_bindings_schema_version),
		T(test_bindings_corrupt_file),
		T(test_bindings_storm),
		T(test_bindings_kill9_keeps_acknowledged),
#undef T
	};

	return cmocka_run_group_tests_name("coordinator-bindings", tests, NULL, NULL);
}
