/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/commit.c over a real History and the fault-injecting
 * VFS, without a bus or a socket: closures run after the barrier, phase by
 * phase; a batch is committed at the end of a loop pass, with one sync of
 * the WAL; a failed COMMIT or sync is told to every closure of its batch,
 * and the next batch works again.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/commit.h"
#include "daemon/history.h"
#include "tests/helpers/fault-vfs.h"
#include "tests/helpers/test-tmpdir.h"

#define RUNS_MAX (COMMIT_BATCH_MAX + 8)

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	sd_event *event;
	History *history;
	Commit *commit;
	/* What ran, in order: the closure's tag and the error it was told. */
	char runs[RUNS_MAX][24];
	int errors[RUNS_MAX];
	size_t n_runs;
	unsigned next_id;
} Fixture;

typedef struct Tag {
	Fixture *f;
	char name[16];
} Tag;

static Tag tags[RUNS_MAX];

static void on_closure(int error, void *userdata) {
	Tag *t = userdata;
	Fixture *f = t->f;

	assert_true(f->n_runs < RUNS_MAX);
	(void) snprintf(f->runs[f->n_runs], sizeof(f->runs[0]), "%s", t->name);
	f->errors[f->n_runs++] = error;
}

static void defer(Fixture *f, CommitPhase phase, const char *name) {
	Tag *t = &tags[f->next_id++ % RUNS_MAX];

	*t = (Tag) { .f = f };
	(void) snprintf(t->name, sizeof(t->name), "%s", name);
	assert_int_equal(commit_defer(f->commit, phase, on_closure, t), 0);
}

/* A promise: a received message. */
static void write_promise(Fixture *f) {
	char id[33];

	(void) snprintf(id, sizeof(id), "%032x", f->next_id++);
	assert_int_equal(history_add_incoming(f->history, id, "bob", "hello", 1, 2), 1);
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-daemon-commit", "history.db", f->path, sizeof(f->path));
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(history_open(f->path, &f->history), 0);
	assert_int_equal(commit_new(f->event, f->history, &f->commit), 0);
	fault_vfs_reset();
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	fault_vfs_reset();
	f->commit = commit_free(f->commit);
	f->history = history_free(f->history);
	sd_event_unref(f->event);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void test_commit_phases_in_order(void **state) {
	Fixture *f = *state;

	defer(f, COMMIT_PHASE_INFORM, "inform1");
	defer(f, COMMIT_PHASE_SEND, "send1");
	defer(f, COMMIT_PHASE_REPLY, "reply1");
	defer(f, COMMIT_PHASE_SEND, "send2");
	defer(f, COMMIT_PHASE_REPLY, "reply2");
	assert_int_equal(f->n_runs, 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_runs, 5);
	assert_string_equal(f->runs[0], "reply1");
	assert_string_equal(f->runs[1], "reply2");
	assert_string_equal(f->runs[2], "send1");
	assert_string_equal(f->runs[3], "send2");
	assert_string_equal(f->runs[4], "inform1");
	for (size_t i = 0; i < f->n_runs; i++) {
		assert_int_equal(f->errors[i], 0);
	}
	/* Each runs once. */
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_runs, 5);
}

static int on_nothing(sd_event_source *s, void *userdata) {
	return 0;
}

static void test_commit_at_end_of_pass_with_one_sync(void **state) {
	Fixture *f = *state;

	write_promise(f);
	write_promise(f);
	write_promise(f);
	defer(f, COMMIT_PHASE_SEND, "ack");
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 0);
	/* The post source runs once another source was dispatched in the pass. */
	assert_int_equal(sd_event_add_defer(f->event, NULL, on_nothing, NULL), 0);
	for (int i = 0; i < 10 && f->n_runs == 0; i++) {
		assert_true(sd_event_run(f->event, 100 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n_runs, 1);
	assert_int_equal(f->errors[0], 0);
	/* Three promises, one barrier. */
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
	assert_int_equal(history_batch_size(f->history), 0);
}

static void test_commit_sync_failure_is_told(void **state) {
	Fixture *f = *state;

	write_promise(f);
	defer(f, COMMIT_PHASE_REPLY, "reply");
	defer(f, COMMIT_PHASE_SEND, "ack");
	fault_vfs_fail_syncs(1);
	assert_true(commit_run(f->commit) < 0);
	assert_int_equal(f->n_runs, 2);
	assert_true(f->errors[0] < 0);
	assert_true(f->errors[1] < 0);
	assert_true(fault_vfs_injected() >= 1);

	/* The next batch is stored, and says so. */
	f->n_runs = 0;
	write_promise(f);
	defer(f, COMMIT_PHASE_REPLY, "again");
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_runs, 1);
	assert_int_equal(f->errors[0], 0);
}

static void test_commit_write_failure_is_told(void **state) {
	Fixture *f = *state;

	write_promise(f);
	defer(f, COMMIT_PHASE_REPLY, "reply");
	fault_vfs_fail_writes(1000, SQLITE_FULL);
	assert_true(commit_run(f->commit) < 0);
	assert_int_equal(f->n_runs, 1);
	assert_true(f->errors[0] < 0);

	fault_vfs_fail_writes(0, SQLITE_FULL);
	f->n_runs = 0;
	write_promise(f);
	defer(f, COMMIT_PHASE_REPLY, "again");
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_runs, 1);
	assert_int_equal(f->errors[0], 0);
}

static void test_commit_bound(void **state) {
	Fixture *f = *state;

	for (unsigned i = 0; i < COMMIT_BATCH_MAX - 1; i++) {
		defer(f, COMMIT_PHASE_SEND, "ack");
	}
	commit_check_bound(f->commit);
	assert_int_equal(f->n_runs, 0);
	defer(f, COMMIT_PHASE_SEND, "last");
	commit_check_bound(f->commit);
	assert_int_equal(f->n_runs, COMMIT_BATCH_MAX);
	assert_string_equal(f->runs[COMMIT_BATCH_MAX - 1], "last");
}

static void on_nested(int error, void *userdata) {
	Tag *t = userdata;
	Fixture *f = t->f;

	on_closure(error, userdata);
	/* Deferred into the next batch, which it commits at once. */
	defer(f, COMMIT_PHASE_REPLY, "inner");
	assert_int_equal(commit_run(f->commit), 0);
}

static void test_commit_reentrant(void **state) {
	Fixture *f = *state;
	Tag *t = &tags[f->next_id++ % RUNS_MAX];

	*t = (Tag) { .f = f, .name = "outer" };
	assert_int_equal(commit_defer(f->commit, COMMIT_PHASE_SEND, on_nested, t), 0);
	defer(f, COMMIT_PHASE_INFORM, "after");
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_runs, 3);
	assert_string_equal(f->runs[0], "outer");
	assert_string_equal(f->runs[1], "inner");
	assert_string_equal(f->runs[2], "after");
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_commit_phases_in_order),
		T(test_commit_at_end_of_pass_with_one_sync),
		T(test_commit_sync_failure_is_told),
		T(test_commit_write_failure_is_told),
		T(test_commit_bound),
		T(test_commit_reentrant),
	};

	assert_int_equal(fault_vfs_install(), 0);
	return cmocka_run_group_tests_name("commit", tests, NULL, NULL);
}
