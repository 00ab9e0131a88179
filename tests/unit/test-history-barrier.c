/* SPDX-License-Identifier: MIT */
/*
 * Tests for the durability barrier of daemon/history.c, through the
 * fault-injecting VFS (tests/helpers/fault-vfs.h): a group commit of promises
 * fsyncs the WAL once, and nothing before it; a batch without a promise
 * fsyncs nothing; a failed fsync or a failed write at COMMIT (disk full) makes
 * history_commit() fail, leaves nothing half-stored and the next batch works;
 * without batching every promise is its own barrier.
 */

#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "daemon/history.h"
#include "tests/helpers/fault-vfs.h"
#include "tests/helpers/test-tmpdir.h"

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	History *h;
} Fixture;

static int setup_group(void **state) {
	/* Before any open: history_open() uses the default VFS. */
	return fault_vfs_install() < 0 ? -1 : 0;
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-history-barrier", "history.db", f->path, sizeof(f->path));
	assert_int_equal(history_open(f->path, &f->h), 0);
	/*
	 * The open is not counted.  Its migrations leave frames in the WAL, so
	 * a COMMIT appends to it and syncs nothing itself: only the first
	 * COMMIT into an empty WAL (after a reopen) also syncs the new header.
	 */
	fault_vfs_reset();
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	fault_vfs_reset(); /* no failure left for the close */
	f->h = history_free(f->h);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* Closes and reopens the store: what it holds now is what was committed. */
static void reopen(Fixture *f) {
	fault_vfs_reset();
	f->h = history_free(f->h);
	assert_int_equal(history_open(f->path, &f->h), 0);
	fault_vfs_reset();
}

static bool has_message(History *h, const char *id) {
	HistoryMessage m = {};
	int r;

	r = history_get_message(h, id, &m);
	assert_true(r == 0 || r == -ENOENT);
	history_message_done(&m);
	return r == 0;
}

static unsigned search_count(History *h, const char *query) {
	HistoryList l = {};
	unsigned n;

	assert_int_equal(history_search(h, query, 10, &l), 0);
	n = (unsigned) l.n;
	history_list_done(&l);
	return n;
}

/* Stores "in-<i>" from alice and "out-<i>" to bob: two promises. */
static void add_pair(History *h, unsigned i) {
	char in[32], out[32];

	assert_true(snprintf(in, sizeof(in), "in-%u", i) < (int) sizeof(in));
	assert_true(snprintf(out, sizeof(out), "out-%u", i) < (int) sizeof(out));
	assert_int_equal(history_add_incoming(h, in, "alice", "hello barrier", i, i + 1), 1);
	assert_int_equal(history_add_outgoing(h, out, "bob", "hi barrier", i, NULL), 0);
}

static void test_history_barrier_group_commit(void **state) {
	Fixture *f = *state;

	history_set_batching(f->h, true);
	for (unsigned i = 0; i < 8; i++) {
		add_pair(f->h, i);
		/* Before the barrier nothing is promised, so nothing is synced. */
		assert_int_equal(fault_vfs_syncs(), 0);
	}
	assert_int_equal(history_batch_size(f->h), 16);

	/* One barrier for the whole batch: one fsync, of the WAL. */
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
	assert_int_equal(fault_vfs_syncs(), 1);
	assert_int_equal(history_batch_size(f->h), 0);

	/* Nothing open: nothing to commit, nothing to sync. */
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs(), 1);

	/* The next batch gets a barrier of its own. */
	add_pair(f->h, 8);
	assert_int_equal(fault_vfs_syncs(), 1);
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 2);
	assert_int_equal(fault_vfs_syncs(), 2);

	reopen(f);
	assert_true(has_message(f->h, "in-0"));
	assert_true(has_message(f->h, "out-8"));
	assert_int_equal(search_count(f->h, "barrier"), 10);
}

static void test_history_barrier_no_promise(void **state) {
	Fixture *f = *state;

	assert_int_equal(history_add_outgoing(f->h, "o1", "bob", "one", 1, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "o2", "bob", "two", 2, NULL), 0);
	assert_int_equal(history_add_incoming(f->h, "i1", "alice", "three", 3, 4), 1);
	fault_vfs_reset();

	/*
	 * "sent", "delivered" of an outgoing message and a retransmission are
	 * not promises ("Not every write is a promise" in history.c): such a
	 * batch commits without an fsync.
	 */
	history_set_batching(f->h, true);
	assert_int_equal(history_set_state(f->h, "o1", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_set_state(f->h, "o2", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_set_state(f->h, "o1", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_add_incoming(f->h, "i1", "alice", "three", 3, 4), 0);
	assert_int_equal(history_batch_size(f->h), 4);
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs(), 0);

	/* One promise among them is enough for the barrier. */
	assert_int_equal(history_set_state(f->h, "o2", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_set_state(f->h, "o1", HISTORY_STATE_READ), 1);
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
	assert_int_equal(fault_vfs_syncs(), 1);
}

static void test_history_barrier_sync_fails(void **state) {
	Fixture *f = *state;

	history_set_batching(f->h, true);
	add_pair(f->h, 1);
	add_pair(f->h, 2);

	fault_vfs_fail_syncs(1);
	assert_int_equal(history_commit(f->h), -EIO);
	assert_int_equal(fault_vfs_injected(), 1);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
	/* No transaction is left open; whether the writes are there is not promised. */
	assert_int_equal(history_batch_size(f->h), 0);
	assert_int_equal(history_check_integrity(f->h), 0);

	/* The next batch works and gets its barrier. */
	add_pair(f->h, 3);
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 2);
	assert_int_equal(fault_vfs_injected(), 1);

	reopen(f);
	assert_true(has_message(f->h, "in-3"));
	assert_true(has_message(f->h, "out-3"));
	assert_int_equal(history_check_integrity(f->h), 0);
}

/*
 * The sender of a message whose barrier failed got no ack, so it sends the
 * message again.  The store may hold it already (the COMMIT went through,
 * only the fsync failed): history_add_incoming() then says 0, "ack it
 * again".  That ack goes out after the next history_commit() returned 0, so
 * that commit must be a barrier that covers the first copy.
 */
static void test_history_barrier_retransmit_after_failed_sync(void **state) {
	Fixture *f = *state;
	int r;

	for (unsigned batching = 0; batching <= 1; batching++) {
		char id[32];

		history_set_batching(f->h, batching);
		assert_true(snprintf(id, sizeof(id), "m-%u", batching) < (int) sizeof(id));
		fault_vfs_reset();

		fault_vfs_fail_syncs(1);
		r = history_add_incoming(f->h, id, "alice", "once", 1, 2);
		if (batching) {
			assert_int_equal(r, 1);
			r = history_commit(f->h);
		}
		assert_int_equal(r, -EIO); /* no ack */
		assert_int_equal(fault_vfs_injected(), 1);

		/* The retransmission: stored now or before, it is acked. */
		r = history_add_incoming(f->h, id, "alice", "once", 1, 2);
		assert_true(r == 0 || r == 1);
		assert_int_equal(history_commit(f->h), 0);
		assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 2);

		/* The debt is paid: a batch without a promise needs no fsync again. */
		r = history_add_incoming(f->h, id, "alice", "once", 1, 2);
		assert_int_equal(r, 0);
		assert_int_equal(history_commit(f->h), 0);
		assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 2);
	}
}

typedef struct WriteFault {
	const char *name;
	int sqlite_err;
	int error; /* what history_commit() returns; 0: any negative errno */
} WriteFault;

static const WriteFault write_faults[] = {
	{ "disk full", SQLITE_FULL, -ENOSPC },
	{ "I/O error", SQLITE_IOERR_WRITE, 0 },
};

static void test_history_barrier_commit_write_fails(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(write_faults); i++) {
		const WriteFault *t = &write_faults[i];
		unsigned a = 10 * (unsigned) i + 1, b = a + 1, n;
		char in_a[32], out_b[32];
		int r;

		print_message("# write fault: %s\n", t->name);
		assert_true(snprintf(in_a, sizeof(in_a), "in-%u", a) < (int) sizeof(in_a));
		assert_true(snprintf(out_b, sizeof(out_b), "out-%u", b) < (int) sizeof(out_b));
		n = search_count(f->h, "barrier");
		history_set_batching(f->h, true);
		fault_vfs_reset();

		/* COMMIT writes the batch to the WAL: its first write fails. */
		add_pair(f->h, a);
		add_pair(f->h, b);
		assert_int_equal(fault_vfs_writes(), 0);
		fault_vfs_fail_writes(1, t->sqlite_err);
		r = history_commit(f->h);
		if (t->error != 0) {
			assert_int_equal(r, t->error);
		} else {
			assert_true(r < 0);
		}
		assert_int_equal(fault_vfs_injected(), 1);
		/* No barrier after a failed COMMIT. */
		assert_int_equal(fault_vfs_syncs(), 0);

		/* Nothing of the batch is stored, the full-text index included. */
		assert_int_equal(history_batch_size(f->h), 0);
		assert_false(has_message(f->h, in_a));
		assert_false(has_message(f->h, out_b));
		assert_int_equal(search_count(f->h, "barrier"), n);
		assert_int_equal(history_check_integrity(f->h), 0);

		/* The next batch stores the same messages anew, with a barrier. */
		add_pair(f->h, a);
		assert_int_equal(history_commit(f->h), 0);
		assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
		assert_int_equal(search_count(f->h, "barrier"), n + 2);
	}

	reopen(f);
	assert_true(has_message(f->h, "in-1"));
	assert_false(has_message(f->h, "out-2"));
	assert_true(has_message(f->h, "out-11"));
	assert_false(has_message(f->h, "in-12"));
	assert_int_equal(search_count(f->h, "barrier"), 4);
	assert_int_equal(history_check_integrity(f->h), 0);
}

/* One write, made on the store that prepare() filled. */
typedef struct WriteCase {
	const char *name;
	int (*write)(History *h);
	int result;
	bool promise;
} WriteCase;

static void prepare(History *h) {
	assert_int_equal(history_add_outgoing(h, "queued", "bob", "q", 1, NULL), 0);
	assert_int_equal(history_add_outgoing_as(h, "sent", "bob", "s", 2, NULL, HISTORY_STATE_SENT), 0);
	assert_int_equal(history_add_incoming(h, "in", "alice", "i", 3, 4), 1);
}

static int write_incoming(History *h) {
	return history_add_incoming(h, "new", "alice", "n", 5, 6);
}

static int write_incoming_again(History *h) {
	return history_add_incoming(h, "in", "alice", "i", 3, 4);
}

static int write_outgoing(History *h) {
	return history_add_outgoing(h, "new", "bob", "n", 5, NULL);
}

static int write_outgoing_sent(History *h) {
	return history_add_outgoing_as(h, "new", "bob", "n", 5, NULL, HISTORY_STATE_SENT);
}

static int write_state_sent(History *h) {
	return history_set_state(h, "queued", HISTORY_STATE_SENT);
}

static int write_state_delivered(History *h) {
	return history_set_state(h, "sent", HISTORY_STATE_DELIVERED);
}

static int write_state_failed(History *h) {
	return history_set_state(h, "queued", HISTORY_STATE_FAILED);
}

static int write_mark_read(History *h) {
	return history_mark_read(h, "alice");
}

static int write_requeue(History *h) {
	return history_requeue_sent(h);
}

static int write_sent_final(History *h) {
	return history_set_sent_final(h, "queued");
}

static int write_expire(History *h) {
	HistoryList l = {};
	int r;

	r = history_expire(h, 1000, 0, &l);
	history_list_done(&l);
	return r;
}

static const WriteCase write_cases[] = {
	{ "incoming", write_incoming, 1, true },
	{ "incoming again", write_incoming_again, 0, false },
	{ "outgoing", write_outgoing, 0, true },
	{ "outgoing sent", write_outgoing_sent, 0, true },
	{ "state sent", write_state_sent, 1, false },
	{ "state delivered", write_state_delivered, 1, false },
	{ "state failed", write_state_failed, 1, true },
	{ "mark read", write_mark_read, 1, true },
	{ "requeue", write_requeue, 1, true },
	{ "sent final", write_sent_final, 0, true },
	{ "expire", write_expire, 2, true },
};

/* Without batching every write is its own transaction and, if a promise, barrier. */
static void test_history_barrier_unbatched(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(write_cases); i++) {
		const WriteCase *t = &write_cases[i];

		print_message("# write: %s\n", t->name);
		f->h = history_free(f->h);
		assert_int_equal(remove(f->path), 0);
		assert_int_equal(history_open(f->path, &f->h), 0);
		prepare(f->h);
		fault_vfs_reset();

		assert_int_equal(t->write(f->h), t->result);
		assert_int_equal(history_batch_size(f->h), 0);
		assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), t->promise ? 1 : 0);
		assert_int_equal(fault_vfs_syncs(), t->promise ? 1 : 0);

		/* It committed itself: history_commit() finds nothing open. */
		assert_int_equal(history_commit(f->h), 0);
		assert_int_equal(fault_vfs_syncs(), t->promise ? 1 : 0);
	}
}

static void test_history_barrier_unbatched_fails(void **state) {
	Fixture *f = *state;

	/* A promise whose barrier failed returns the error: do not ack. */
	fault_vfs_fail_syncs(1);
	assert_int_equal(history_add_incoming(f->h, "a", "alice", "x", 1, 2), -EIO);
	assert_int_equal(fault_vfs_injected(), 1);
	assert_int_equal(history_batch_size(f->h), 0);

	/* A write that fails at COMMIT stores nothing and returns the error. */
	fault_vfs_fail_writes(1, SQLITE_FULL);
	assert_int_equal(history_add_outgoing(f->h, "b", "bob", "y", 3, NULL), -ENOSPC);
	assert_int_equal(fault_vfs_injected(), 2);
	assert_false(has_message(f->h, "b"));

	/* And the store works on. */
	fault_vfs_reset();
	assert_int_equal(history_add_outgoing(f->h, "b", "bob", "y", 3, NULL), 0);
	assert_int_equal(fault_vfs_syncs_of(FAULT_VFS_FILE_WAL), 1);
	reopen(f);
	assert_true(has_message(f->h, "b"));
	assert_int_equal(history_check_integrity(f->h), 0);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_history_barrier_group_commit),
		T(test_history_barrier_no_promise),
		T(test_history_barrier_sync_fails),
		T(test_history_barrier_retransmit_after_failed_sync),
		T(test_history_barrier_commit_write_fails),
		T(test_history_barrier_unbatched),
		T(test_history_barrier_unbatched_fails),
	};

	return cmocka_run_group_tests_name("history-barrier", tests, setup_group, NULL);
}
