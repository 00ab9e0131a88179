/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/history.c: schema migration, persistence, duplicates, the
 * state machine, paging, full-text search (CJK included), batching, pinned
 * peer keys and the key each outgoing message is for, and a
 * crash test that kill -9s a writer at random moments and checks that every
 * commit it reported survived.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "daemon/history.h"
#include "tests/helpers/test-tmpdir.h"

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	History *h;
} Fixture;

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-history", "history.db", f->path, sizeof(f->path));
	assert_int_equal(history_open(f->path, &f->h), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;
	f->h = history_free(f->h);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void reopen(Fixture *f) {
	f->h = history_free(f->h);
	assert_int_equal(history_open(f->path, &f->h), 0);
}

/* Runs one SQL statement on the file with a separate connection. */
static void raw_sql(const char *path, const char *sql) {
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_history_migrate_empty(void **state) {
	Fixture *f = *state;

	assert_int_equal(history_schema_version(f->h), history_schema_version_latest());
	assert_true(history_schema_version_latest() >= 1);
	assert_int_equal(history_check_integrity(f->h), 0);

	/* Reopening an up-to-date database migrates nothing and keeps the version. */
	reopen(f);
	assert_int_equal(history_schema_version(f->h), history_schema_version_latest());
}

static void test_history_migrate_existing_empty_file(void **state) {
	Fixture *f = *state;
	char path[160];
	History *h = NULL;

	/* A zero-length file is a valid empty database at version 0. */
	snprintf(path, sizeof(path), "%s/empty.db", f->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(history_open(path, &h), 0);
	assert_int_equal(history_schema_version(h), history_schema_version_latest());
	assert_int_equal(history_add_incoming(h, "m1", "alice", "hi", 1, 2), 1);
	h = history_free(h);
}

static void test_history_newer_schema_refused(void **state) {
	Fixture *f = *state;
	History *h = NULL;

	f->h = history_free(f->h);
	raw_sql(f->path, "PRAGMA user_version = 999");
	assert_int_equal(history_open(f->path, &h), -EPROTONOSUPPORT);
	assert_null(h);
}

static void test_history_not_a_database(void **state) {
	Fixture *f = *state;
	char path[160];
	History *h = NULL;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++) {
		fputs("this is not an SQLite database at all. ", fp);
	}
	fclose(fp);
	assert_int_equal(history_open(path, &h), -EBADMSG);
	assert_null(h);
}

static void test_history_reopen_persists(void **state) {
	Fixture *f = *state;
	HistoryMessage m = {};

	assert_int_equal(history_add_incoming(f->h, "in1", "alice", "hello", 10, 20), 1);
	assert_int_equal(history_add_outgoing(f->h, "out1", "alice", "hi back", 30, NULL), 0);
	assert_int_equal(history_set_state(f->h, "out1", HISTORY_STATE_SENT), 1);
	reopen(f);

	assert_int_equal(history_get_message(f->h, "in1", &m), 0);
	assert_string_equal(m.peer, "alice");
	assert_string_equal(m.text, "hello");
	assert_int_equal(m.direction, HISTORY_DIRECTION_IN);
	assert_int_equal(m.state, HISTORY_STATE_DELIVERED);
	assert_int_equal(m.sent_usec, 10);
	assert_int_equal(m.received_usec, 20);
	history_message_done(&m);

	assert_int_equal(history_get_message(f->h, "out1", &m), 0);
	assert_int_equal(m.direction, HISTORY_DIRECTION_OUT);
	assert_int_equal(m.state, HISTORY_STATE_SENT);
	assert_int_equal(m.received_usec, 0);
	history_message_done(&m);

	assert_int_equal(history_get_message(f->h, "nope", &m), -ENOENT);
}

static void test_history_duplicates(void **state) {
	Fixture *f = *state;
	HistoryList l = {};

	assert_int_equal(history_add_incoming(f->h, "dup", "alice", "first", 1, 1), 1);
	/* A retransmission is stored once, with the first text. */
	assert_int_equal(history_add_incoming(f->h, "dup", "alice", "second", 2, 2), 0);
	reopen(f);
	assert_int_equal(history_add_incoming(f->h, "dup", "alice", "third", 3, 3), 0);
	/* The same id from someone else, or one of our own ids: a collision. */
	assert_int_equal(history_add_incoming(f->h, "dup", "mallory", "x", 4, 4), -EEXIST);
	assert_int_equal(history_add_outgoing(f->h, "mine", "bob", "x", 5, NULL), 0);
	assert_int_equal(history_add_incoming(f->h, "mine", "bob", "x", 6, 6), -EEXIST);
	assert_int_equal(history_add_outgoing(f->h, "mine", "bob", "again", 7, NULL), -EEXIST);
	assert_int_equal(history_add_outgoing(f->h, "dup", "alice", "again", 7, NULL), -EEXIST);

	assert_int_equal(history_get(f->h, "alice", 100, NULL, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.messages[0].text, "first");
	history_list_done(&l);
	assert_int_equal(history_unread(f->h, "alice"), 1);
}

static void test_history_invalid_args(void **state) {
	Fixture *f = *state;
	char big[HISTORY_TEXT_MAX + 2];
	HistoryList l = {};

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	static const char *const bad_ids[] = {
		"", "has space", "semi;colon", "quote'",
		/* 65 characters: one too many */
		"00000000001111111111222222222233333333334444444444555555555566666",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
		assert_int_equal(history_add_incoming(f->h, bad_ids[i], "a", "t", 1, 1), -EINVAL);
		assert_int_equal(history_add_outgoing(f->h, bad_ids[i], "a", "t", 1, NULL), -EINVAL);
	}
	assert_int_equal(history_add_incoming(f->h, "ok", "", "t", 1, 1), -EINVAL);
	assert_int_equal(history_add_incoming(f->h, "ok", NULL, "t", 1, 1), -EINVAL);
	assert_int_equal(history_add_incoming(f->h, "ok", "a", NULL, 1, 1), -EINVAL);
	assert_int_equal(history_add_incoming(f->h, "ok", "a", big, 1, 1), -EINVAL);
	assert_int_equal(history_add_incoming(f->h, "ok", "a", "t", UINT64_MAX, 1), -EINVAL);
	assert_int_equal(history_add_outgoing(f->h, "ok", "a", big, 1, NULL), -EINVAL);
	big[HISTORY_TEXT_MAX] = '\0';
	assert_int_equal(history_add_outgoing(f->h, "ok", "a", big, 1, NULL), 0);
	/* Empty text is a valid message. */
	assert_int_equal(history_add_incoming(f->h, "empty", "a", "", 1, 1), 1);

	assert_int_equal(history_set_state(f->h, "ok", _HISTORY_STATE_MAX), -EINVAL);
	assert_int_equal(history_set_state(f->h, "ok", _HISTORY_STATE_INVALID), -EINVAL);
	assert_int_equal(history_set_state(f->h, "unknown", HISTORY_STATE_SENT), -ENOENT);
	assert_int_equal(history_get(f->h, "", 10, NULL, &l), -EINVAL);
	assert_int_equal(history_list_queued(f->h, NULL, &l), -EINVAL);
	assert_int_equal(history_mark_read(f->h, ""), -EINVAL);
	assert_int_equal(history_unread(f->h, ""), -EINVAL);

	assert_int_equal(history_state_from_string("queued"), HISTORY_STATE_QUEUED);
	assert_int_equal(history_state_from_string("read"), HISTORY_STATE_READ);
	assert_int_equal(history_state_from_string("bogus"), -EINVAL);
	assert_int_equal(history_state_from_string(NULL), -EINVAL);
	assert_string_equal(history_state_to_string(HISTORY_STATE_FAILED), "failed");
	assert_null(history_state_to_string(_HISTORY_STATE_MAX));
	assert_string_equal(history_direction_to_string(HISTORY_DIRECTION_OUT), "out");
}

static const struct {
	HistoryDirection direction;
	HistoryState from, to;
	int expected;
} transitions[] = {
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_QUEUED, HISTORY_STATE_QUEUED, 0 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_QUEUED, HISTORY_STATE_SENT, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_QUEUED, HISTORY_STATE_DELIVERED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_QUEUED, HISTORY_STATE_FAILED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_QUEUED, HISTORY_STATE_READ, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_SENT, HISTORY_STATE_QUEUED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_SENT, HISTORY_STATE_DELIVERED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_SENT, HISTORY_STATE_FAILED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_SENT, HISTORY_STATE_READ, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_DELIVERED, HISTORY_STATE_READ, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_DELIVERED, HISTORY_STATE_QUEUED, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_DELIVERED, HISTORY_STATE_SENT, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_DELIVERED, HISTORY_STATE_FAILED, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_FAILED, HISTORY_STATE_QUEUED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_FAILED, HISTORY_STATE_DELIVERED, 1 },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_FAILED, HISTORY_STATE_SENT, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_FAILED, HISTORY_STATE_READ, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_READ, HISTORY_STATE_DELIVERED, -EPERM },
	{ HISTORY_DIRECTION_OUT, HISTORY_STATE_READ, HISTORY_STATE_READ, 0 },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_DELIVERED, HISTORY_STATE_READ, 1 },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_DELIVERED, HISTORY_STATE_DELIVERED, 0 },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_DELIVERED, HISTORY_STATE_QUEUED, -EPERM },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_DELIVERED, HISTORY_STATE_SENT, -EPERM },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_DELIVERED, HISTORY_STATE_FAILED, -EPERM },
	{ HISTORY_DIRECTION_IN, HISTORY_STATE_READ, HISTORY_STATE_DELIVERED, -EPERM },
};

/* The path from "queued" (out) or "delivered" (in) to each start state. */
static void bring_to(History *h, const char *id, HistoryState s) {
	switch (s) {
	case HISTORY_STATE_QUEUED:
		break;
	case HISTORY_STATE_DELIVERED:
		/* Outgoing messages get there; incoming ones start there. */
		assert_true(history_set_state(h, id, s) >= 0);
		break;
	case HISTORY_STATE_SENT:
	case HISTORY_STATE_FAILED:
		assert_int_equal(history_set_state(h, id, s), 1);
		break;
	case HISTORY_STATE_READ:
		(void) history_set_state(h, id, HISTORY_STATE_DELIVERED);
		assert_int_equal(history_set_state(h, id, HISTORY_STATE_READ), 1);
		break;
	case _HISTORY_STATE_MAX:
	case _HISTORY_STATE_INVALID:
		fail();
	}
}

static void test_history_state_machine(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(transitions); i++) {
		HistoryMessage m = {};
		char id[32];

		snprintf(id, sizeof(id), "t%zu", i);
		if (transitions[i].direction == HISTORY_DIRECTION_OUT) {
			assert_int_equal(history_add_outgoing(f->h, id, "p", "x", 1, NULL), 0);
		} else {
			assert_int_equal(history_add_incoming(f->h, id, "p", "x", 1, 1), 1);
		}
		bring_to(f->h, id, transitions[i].from);

		print_message("# transition %zu: %s -> %s\n", i,
				history_state_to_string(transitions[i].from),
				history_state_to_string(transitions[i].to));
		assert_int_equal(history_set_state(f->h, id, transitions[i].to),
				transitions[i].expected);

		assert_int_equal(history_get_message(f->h, id, &m), 0);
		assert_int_equal(m.state, transitions[i].expected < 0 ? transitions[i].from
								    : transitions[i].to);
		history_message_done(&m);
	}
}

static void test_history_queue_order_and_requeue(void **state) {
	Fixture *f = *state;
	HistoryList l = {};

	assert_int_equal(history_add_outgoing(f->h, "q1", "bob", "one", 100, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "q2", "bob", "two", 50, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "q3", "bob", "three", 200, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "other", "carol", "x", 1, NULL), 0);

	/* Creation order, not the timestamps. */
	assert_int_equal(history_list_queued(f->h, "bob", &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.messages[0].id, "q1");
	assert_string_equal(l.messages[1].id, "q2");
	assert_string_equal(l.messages[2].id, "q3");
	history_list_done(&l);

	assert_int_equal(history_set_state(f->h, "q1", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_set_state(f->h, "q2", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_set_state(f->h, "q2", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_list_queued(f->h, "bob", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.messages[0].id, "q3");
	history_list_done(&l);

	/* A restart finds q1 in flight: it goes back to the queue, in order. */
	reopen(f);
	assert_int_equal(history_requeue_sent(f->h), 1);
	assert_int_equal(history_requeue_sent(f->h), 0);
	assert_int_equal(history_list_queued(f->h, "bob", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.messages[0].id, "q1");
	assert_string_equal(l.messages[1].id, "q3");
	history_list_done(&l);

	assert_int_equal(history_list_queued(f->h, "nobody", &l), 0);
	assert_int_equal(l.n, 0);
	assert_null(l.messages);
}

static void test_history_queue_limit(void **state) {
	Fixture *f = *state;
	char id[32];

	for (unsigned i = 0; i < HISTORY_QUEUE_MAX; i++) {
		snprintf(id, sizeof(id), "l%u", i);
		assert_int_equal(history_add_outgoing(f->h, id, "bob", "x", i, NULL), 0);
	}
	assert_int_equal(history_add_outgoing(f->h, "over", "bob", "x", 1, NULL), -ENOBUFS);
	/* Other peers have their own queue. */
	assert_int_equal(history_add_outgoing(f->h, "carol1", "carol", "x", 1, NULL), 0);
	/* Sent messages count too: they may come back to the queue. */
	assert_int_equal(history_set_state(f->h, "l0", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_add_outgoing(f->h, "over", "bob", "x", 1, NULL), -ENOBUFS);
	assert_int_equal(history_set_state(f->h, "l0", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_add_outgoing(f->h, "over", "bob", "x", 1, NULL), 0);
}

static void test_history_expire(void **state) {
	Fixture *f = *state;
	HistoryList l = {};
	HistoryMessage m = {};
	const uint64_t day = 24 * 3600 * USEC_PER_SEC;
	uint64_t oldest = 0;

	assert_int_equal(history_add_outgoing(f->h, "old1", "bob", "x", 1 * day, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "old2", "carol", "x", 2 * day, NULL), 0);
	assert_int_equal(history_set_state(f->h, "old2", HISTORY_STATE_SENT), 1);
	assert_int_equal(history_add_outgoing(f->h, "new", "bob", "x", 9 * day, NULL), 0);
	assert_int_equal(history_add_outgoing(f->h, "done", "bob", "x", 1 * day, NULL), 0);
	assert_int_equal(history_set_state(f->h, "done", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_add_incoming(f->h, "inc", "bob", "x", 1, 1), 1);

	assert_int_equal(history_oldest_pending(f->h, &oldest), 0);
	assert_int_equal(oldest, 1 * day);
	assert_int_equal(history_expire(f->h, 10 * day, 7 * day, &l), 2);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.messages[0].id, "old1");
	assert_string_equal(l.messages[0].peer, "bob");
	assert_int_equal(l.messages[0].state, HISTORY_STATE_FAILED);
	assert_string_equal(l.messages[1].id, "old2");
	assert_string_equal(l.messages[1].peer, "carol");
	history_list_done(&l);

	assert_int_equal(history_get_message(f->h, "old2", &m), 0);
	assert_int_equal(m.state, HISTORY_STATE_FAILED);
	history_message_done(&m);
	assert_int_equal(history_get_message(f->h, "new", &m), 0);
	assert_int_equal(m.state, HISTORY_STATE_QUEUED);
	history_message_done(&m);

	assert_int_equal(history_expire(f->h, 10 * day, 7 * day, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(history_oldest_pending(f->h, &oldest), 0);
	assert_int_equal(oldest, 9 * day);
	assert_int_equal(history_set_state(f->h, "new", HISTORY_STATE_FAILED), 1);
	assert_int_equal(history_oldest_pending(f->h, &oldest), -ENOENT);
	/* A max age larger than now expires nothing. */
	assert_int_equal(history_expire(f->h, 10 * day, 100 * day, &l), 0);
	assert_int_equal(history_expire(f->h, UINT64_MAX, 1, &l), -EINVAL);
}

static void test_history_get_paging(void **state) {
	Fixture *f = *state;
	HistoryList l = {};
	char id[16], text[16];

	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "p%d", i);
		snprintf(text, sizeof(text), "msg %d", i);
		if (i % 2) {
			assert_int_equal(history_add_outgoing(f->h, id, "alice", text, i, NULL), 0);
		} else {
			assert_int_equal(history_add_incoming(f->h, id, "alice", text, i, i), 1);
		}
	}
	assert_int_equal(history_add_incoming(f->h, "b0", "bob", "for bob", 1, 1), 1);

	assert_int_equal(history_get(f->h, "alice", 3, NULL, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.messages[0].id, "p7");
	assert_string_equal(l.messages[2].id, "p9");
	assert_int_equal(l.messages[2].direction, HISTORY_DIRECTION_OUT);
	history_list_done(&l);

	assert_int_equal(history_get(f->h, "alice", 3, "p7", &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.messages[0].id, "p4");
	assert_string_equal(l.messages[2].id, "p6");
	history_list_done(&l);

	assert_int_equal(history_get(f->h, "alice", 100, "p2", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.messages[0].id, "p0");
	history_list_done(&l);

	assert_int_equal(history_get(f->h, "alice", 100, "", &l), 0);
	assert_int_equal(l.n, 10);
	history_list_done(&l);

	/* A limit above the maximum is clamped, not an error. */
	assert_int_equal(history_get(f->h, "alice", UINT32_MAX, NULL, &l), 0);
	assert_int_equal(l.n, 10);
	history_list_done(&l);

	assert_int_equal(history_get(f->h, "alice", 0, NULL, &l), 0);
	assert_int_equal(l.n, 0);

	/* before_id must be a message of that conversation. */
	assert_int_equal(history_get(f->h, "alice", 3, "b0", &l), -ENOENT);
	assert_int_equal(history_get(f->h, "alice", 3, "missing", &l), -ENOENT);
	assert_int_equal(history_get(f->h, "alice", 3, "bad id!", &l), -ENOENT);

	assert_int_equal(history_get(f->h, "carol", 3, NULL, &l), 0);
	assert_int_equal(l.n, 0);
}

static const struct {
	const char *query;
	int expected; /* matches, or a negative errno */
} searches[] = {
	{ "hello", 2 },
	{ "HELLO", 2 },      /* case-insensitive */
	{ "lo wor", 1 },     /* substring across words */
	{ "world", 1 },
	{ "absent", 0 },
	{ "\"quoted\"", 1 }, /* quotes are literal text */
	{ "\"", 1 },
	{ "said \"quoted", 1 },
	{ "AND", 1 },        /* operators are literal text */
	{ "OR NOT", 0 },
	{ "hel*", 0 },
	{ "NEAR(a b)", 0 },
	{ "col:umn", 0 },
	{ "text:hello", 0 },
	{ "'; DROP TABLE messages; --", 0 },
	{ "((((", 0 },
	{ "^hello", 0 },
	{ "   ", 0 },
	{ "\x01\x02\x03", 0 },
	{ "\"\"\"", 0 },
	{ "100%", 1 },       /* LIKE specials, short and long queries */
	{ "%", 1 },
	{ "_", 1 },
	{ "a_", 1 },
	{ "\\", 0 },
	{ "你好世界", 1 },   /* CJK through the trigram index */
	{ "好世界", 1 },
	{ "你好", 2 },       /* two characters: the LIKE path */
	{ "世", 1 },
	{ "日本語", 1 },
	{ "これは日本語", 1 },
	{ "한국어", 1 },
	{ "", -EINVAL },
};

static void test_history_search(void **state) {
	Fixture *f = *state;
	HistoryList l = {};
	char big[HISTORY_QUERY_MAX + 2];

	static const char *const texts[] = {
		"hello world",
		"Hello again",
		"she said \"quoted\" AND left",
		"it is 100% done",
		"a_b",
		"你好世界",
		"你好",
		"これは日本語です",
		"한국어 메시지",
	};
	for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
		char id[16];

		snprintf(id, sizeof(id), "s%zu", i);
		assert_int_equal(history_add_incoming(f->h, id, i % 2 ? "bob" : "alice", texts[i],
					 i, i), 1);
	}

	for (size_t i = 0; i < ELEMENTSOF(searches); i++) {
		int r = history_search(f->h, searches[i].query, 100, &l);

		print_message("# search '%s'\n", searches[i].query);
		if (searches[i].expected < 0) {
			assert_int_equal(r, searches[i].expected);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(l.n, searches[i].expected);
		history_list_done(&l);
	}

	/* Newest first, and the limit holds. */
	assert_int_equal(history_search(f->h, "hello", 1, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.messages[0].id, "s1");
	history_list_done(&l);

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(history_search(f->h, big, 10, &l), -EINVAL);
	assert_int_equal(history_search(f->h, NULL, 10, &l), -EINVAL);

	/* The index follows the table across a reopen. */
	reopen(f);
	assert_int_equal(history_add_outgoing(f->h, "later", "bob", "another hello", 99, NULL), 0);
	assert_int_equal(history_search(f->h, "hello", 100, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.messages[0].id, "later");
	history_list_done(&l);
	assert_int_equal(history_check_integrity(f->h), 0);
	raw_sql(f->path, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')");
}

static void test_history_unread(void **state) {
	Fixture *f = *state;

	assert_int_equal(history_unread(f->h, "alice"), 0);
	assert_int_equal(history_add_incoming(f->h, "u1", "alice", "a", 1, 1), 1);
	assert_int_equal(history_add_incoming(f->h, "u2", "alice", "b", 2, 2), 1);
	assert_int_equal(history_add_incoming(f->h, "u3", "bob", "c", 3, 3), 1);
	assert_int_equal(history_add_outgoing(f->h, "u4", "alice", "d", 4, NULL), 0);
	assert_int_equal(history_set_state(f->h, "u4", HISTORY_STATE_DELIVERED), 1);

	assert_int_equal(history_unread(f->h, "alice"), 2);
	assert_int_equal(history_unread(f->h, "bob"), 1);
	assert_int_equal(history_set_state(f->h, "u1", HISTORY_STATE_READ), 1);
	assert_int_equal(history_unread(f->h, "alice"), 1);
	assert_int_equal(history_mark_read(f->h, "alice"), 1);
	assert_int_equal(history_mark_read(f->h, "alice"), 0);
	assert_int_equal(history_unread(f->h, "alice"), 0);
	assert_int_equal(history_unread(f->h, "bob"), 1);
	reopen(f);
	assert_int_equal(history_unread(f->h, "alice"), 0);
	assert_int_equal(history_unread(f->h, "bob"), 1);
}

/* Issue 14: one entry per peer, its newest message first, with its unread count. */
static void test_history_list_conversations(void **state) {
	_cleanup_(history_conversation_list_done) HistoryConversationList l = {};
	Fixture *f = *state;

	assert_int_equal(history_list_conversations(f->h, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(history_has_peer(f->h, "bob"), 0);

	assert_int_equal(history_add_outgoing(f->h, "o1", "bob", "to bob", 100, NULL), 0);
	assert_int_equal(history_add_incoming(f->h, "i1", "carol", "from carol", 50, 200), 1);
	assert_int_equal(history_add_incoming(f->h, "i2", "bob", "from bob 1", 300, 300), 1);
	assert_int_equal(history_add_incoming(f->h, "i3", "bob", "from bob 2", 400, 400), 1);
	assert_int_equal(history_add_outgoing(f->h, "o2", "dave", "to dave", 500, NULL), 0);
	assert_int_equal(history_add_incoming(f->h, "i4", "carol", "carol again", 600, 600), 1);
	assert_int_equal(history_mark_read(f->h, "carol"), 2);
	assert_int_equal(history_set_state(f->h, "o2", HISTORY_STATE_FAILED), 1);
	assert_int_equal(history_has_peer(f->h, "bob"), 1);
	assert_int_equal(history_has_peer(f->h, "erin"), 0);

	assert_int_equal(history_list_conversations(f->h, &l), 0);
	assert_int_equal(l.n, 3);
	/* By arrival of the newest message, not by name. */
	assert_string_equal(l.conversations[0].last.peer, "carol");
	assert_string_equal(l.conversations[0].last.id, "i4");
	assert_string_equal(l.conversations[0].last.text, "carol again");
	assert_int_equal(l.conversations[0].last.direction, HISTORY_DIRECTION_IN);
	assert_int_equal(l.conversations[0].last.state, HISTORY_STATE_READ);
	assert_int_equal(l.conversations[0].unread, 0);
	assert_string_equal(l.conversations[1].last.peer, "dave");
	assert_string_equal(l.conversations[1].last.id, "o2");
	assert_int_equal(l.conversations[1].last.direction, HISTORY_DIRECTION_OUT);
	assert_int_equal(l.conversations[1].last.state, HISTORY_STATE_FAILED);
	assert_int_equal(l.conversations[1].last.sent_usec, 500);
	assert_int_equal(l.conversations[1].unread, 0);
	assert_string_equal(l.conversations[2].last.peer, "bob");
	assert_string_equal(l.conversations[2].last.id, "i3");
	assert_int_equal(l.conversations[2].unread, 2);
	history_conversation_list_done(&l);

	/* A new message moves its peer to the top; reading clears the count. */
	assert_int_equal(history_add_outgoing(f->h, "o3", "bob", "read them", 700, NULL), 0);
	assert_int_equal(history_mark_read(f->h, "bob"), 2);
	assert_int_equal(history_list_conversations(f->h, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.conversations[0].last.peer, "bob");
	assert_string_equal(l.conversations[0].last.id, "o3");
	assert_int_equal(l.conversations[0].last.state, HISTORY_STATE_QUEUED);
	assert_int_equal(l.conversations[0].unread, 0);
	assert_string_equal(l.conversations[1].last.peer, "carol");
	assert_string_equal(l.conversations[2].last.peer, "dave");
}

/*
 * 100 peers x 10000 messages (in one transaction, through SQL): the list
 * takes index searches per peer, never a walk over every message.
 */
/*
 * Many messages, many peers: the order, the last message and the unread
 * counts are right at scale.  Its speed is not asserted here (a timed check
 * would fail under the sanitizers and on a busy machine): it is printed.
 */
static void test_history_list_conversations_large(void **state) {
	_cleanup_(history_conversation_list_done) HistoryConversationList l = {};
	Fixture *f = *state;
	struct timespec a, b;

	reopen(f);
	raw_sql(f->path,
		"WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) "
		"INSERT INTO messages (id, peer, direction, text, sent_usec, received_usec, state) "
		"SELECT printf('m%d', i), printf('peer%03d', i % 100),"
		"  CASE WHEN i % 2 THEN 'in' ELSE 'out' END, 'text', i, i,"
		"  CASE WHEN i % 2 = 0 THEN 'delivered' WHEN i % 1000 = 1 THEN 'delivered'"
		"  ELSE 'read' END FROM n");
	reopen(f);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &a), 0);
	assert_int_equal(history_list_conversations(f->h, &l), 0);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &b), 0);
	print_message("# 100 conversations of 100000 messages listed in %.1f ms\n",
			(double) (b.tv_sec - a.tv_sec) * 1e3 + (double) (b.tv_nsec - a.tv_nsec) / 1e6);
	assert_int_equal(l.n, 100);
	assert_string_equal(l.conversations[0].last.id, "m99999");
	assert_string_equal(l.conversations[0].last.peer, "peer099");
	assert_string_equal(l.conversations[99].last.peer, "peer000");
	/* peer001's are the i % 100 == 1, all incoming; unread those with i % 1000 == 1. */
	assert_string_equal(l.conversations[98].last.peer, "peer001");
	assert_int_equal(l.conversations[98].unread, 100);
	assert_int_equal(l.conversations[99].unread, 0);
}

static void test_history_default_path(void **state) {
	Fixture *f = *state;
	char *path = NULL, expected[256], dir[200];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/xdg/data", f->dir);
	assert_int_equal(setenv("XDG_DATA_HOME", dir, 1), 0);
	assert_int_equal(history_default_path(&path), 0);
	snprintf(expected, sizeof(expected), "%s/p2pchat/history.db", dir);
	assert_string_equal(path, expected);
	free(path);
	snprintf(expected, sizeof(expected), "%s/p2pchat", dir);
	assert_int_equal(stat(expected, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);

	/* A relative XDG_DATA_HOME is ignored: $HOME/.local/share. */
	assert_int_equal(setenv("XDG_DATA_HOME", "relative/dir", 1), 0);
	assert_int_equal(setenv("HOME", f->dir, 1), 0);
	assert_int_equal(history_default_path(&path), 0);
	snprintf(expected, sizeof(expected), "%s/.local/share/p2pchat/history.db", f->dir);
	assert_string_equal(path, expected);
	free(path);

	assert_int_equal(unsetenv("XDG_DATA_HOME"), 0);
	assert_int_equal(unsetenv("HOME"), 0);
	assert_int_equal(history_default_path(&path), -ENOENT);
}

/* The child: write messages forever, reporting each id after its commit. */
_Noreturn static void crash_child(const char *path, int trial, int fd) {
	History *h = NULL;
	char id[32], line[40];

	if (history_open(path, &h) < 0) {
		_exit(EXIT_FAILURE);
	}
	for (unsigned i = 0;; i++) {
		int n;

		snprintf(id, sizeof(id), "c%d-%u", trial, i);
		if (i % 2) {
			/* Delivered at once, so the outbox limit is never reached. */
			if (history_add_outgoing(h, id, "bob", "crash test outgoing", i, NULL) < 0 ||
					history_set_state(h, id, HISTORY_STATE_DELIVERED) != 1) {
				_exit(EXIT_FAILURE);
			}
		} else if (history_add_incoming(h, id, "alice", "crash test incoming", i, i) != 1) {
			_exit(EXIT_FAILURE);
		}
		n = snprintf(line, sizeof(line), "%s\n", id);
		if (write(fd, line, (size_t) n) != n) {
			_exit(EXIT_FAILURE);
		}
	}
}

/*
 * The seed of the crash test's random kill times: $P2PCHAT_SEED when set, so
 * that a failure can be replayed, else a new one.  Printed either way.
 */
static unsigned crash_seed(void) {
	const char *s = getenv("P2PCHAT_SEED");
	unsigned seed;

	if (s && *s) {
		seed = (unsigned) strtoul(s, NULL, 10);
	} else {
		seed = (unsigned) time(NULL) ^ (unsigned) getpid();
	}
	print_message("# random seed %u (replay with P2PCHAT_SEED=%u)\n", seed, seed);
	return seed;
}

static void test_history_crash_safety(void **state) {
	Fixture *f = *state;
	unsigned total = 0;

	f->h = history_free(f->h);
	srand(crash_seed());

	for (int trial = 0; trial < 20; trial++) {
		int fds[2], status;
		char buf[65536];
		size_t len = 0;
		unsigned n = 0;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			crash_child(f->path, trial, fds[1]);
		}
		close(fds[1]);

		/* Kill at a random moment in the first 2-80 ms of writing. */
		(void) usleep(2000 + (useconds_t) (rand() % 78000));
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status)) {
			print_message("# child exited with status %d\n", WEXITSTATUS(status));
		}
		assert_true(WIFSIGNALED(status));

		for (;;) {
			ssize_t k = read(fds[0], buf + len, sizeof(buf) - 1 - len);

			assert_true(k >= 0);
			if (k == 0) {
				break;
			}
			len += (size_t) k;
			assert_true(len < sizeof(buf) - 1);
		}
		close(fds[0]);
		buf[len] = '\0';

		assert_int_equal(history_open(f->path, &f->h), 0);
		assert_int_equal(history_check_integrity(f->h), 0);
		for (char *save = NULL, *id = strtok_r(buf, "\n", &save); id;
				id = strtok_r(NULL, "\n", &save)) {
			HistoryMessage m = {};

			assert_int_equal(history_get_message(f->h, id, &m), 0);
			history_message_done(&m);
			n++;
		}
		f->h = history_free(f->h);
		total += n;
	}

	print_message("# crash test: 20 kills, %u reported commits, all present\n", total);
	assert_true(total > 0);
	assert_int_equal(history_open(f->path, &f->h), 0);
}

/* The number of messages another connection sees: the committed ones. */
static int committed_count(const char *path) {
	sqlite3_stmt *s = NULL;
	sqlite3 *db = NULL;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM messages", -1, &s, NULL),
			SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int(s, 0);
	assert_int_equal(sqlite3_finalize(s), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return n;
}

static void test_history_batching(void **state) {
	Fixture *f = *state;
	HistoryMessage m = {};
	HistoryList l = {};

	history_set_batching(f->h, true);
	assert_int_equal(history_add_incoming(f->h, "b1", "alice", "batched hello", 1, 2), 1);
	assert_int_equal(history_add_outgoing_as(f->h, "b2", "alice", "straight out", 3, NULL,
			HISTORY_STATE_SENT), 0);
	assert_int_equal(history_add_outgoing_as(f->h, "b3", "alice", "x", 3, NULL,
			HISTORY_STATE_DELIVERED), -EINVAL);
	assert_int_equal(history_has_queued(f->h, "alice"), 0);
	assert_int_equal(history_add_outgoing(f->h, "b4", "alice", "queued one", 4, NULL), 0);
	assert_int_equal(history_has_queued(f->h, "alice"), 1);
	assert_int_equal(history_has_queued(f->h, "bob"), 0);
	assert_int_equal(history_batch_size(f->h), 3);

	/* This connection sees the batch at once; no other before the commit. */
	assert_int_equal(history_get_message(f->h, "b2", &m), 0);
	assert_int_equal(m.state, HISTORY_STATE_SENT);
	history_message_done(&m);
	assert_int_equal(committed_count(f->path), 0);
	/* The search finds what the open batch holds. */
	assert_int_equal(history_search(f->h, "batched", 10, &l), 0);
	assert_int_equal(l.n, 1);
	history_list_done(&l);

	/* A refused write leaves the rest of the batch alone. */
	assert_int_equal(history_add_incoming(f->h, "b2", "alice", "dup", 1, 2), -EEXIST);
	assert_int_equal(history_add_incoming(f->h, "b5", "alice", "after it", 5, 6), 1);
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(history_batch_size(f->h), 0);
	assert_int_equal(committed_count(f->path), 4);
	assert_int_equal(history_commit(f->h), 0); /* nothing open: nothing to do */

	/* The full-text index got every message of the batch, consistently. */
	raw_sql(f->path, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')");
	reopen(f);
	assert_int_equal(history_search(f->h, "after it", 10, &l), 0);
	assert_int_equal(l.n, 1);
	history_list_done(&l);
	assert_int_equal(history_search(f->h, "straight", 10, &l), 0);
	assert_int_equal(l.n, 1);
	history_list_done(&l);
}

/*
 * The schema of version 4 as it was shipped (migrations 0-3), frozen here:
 * the migration to 5 must carry its rows over.
 */
static const char schema_v4[] =
	"CREATE TABLE messages ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  peer TEXT NOT NULL,"
	"  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
	"  text TEXT NOT NULL,"
	"  sent_usec INTEGER NOT NULL,"
	"  received_usec INTEGER NOT NULL,"
	"  state TEXT NOT NULL"
	"    CHECK (state IN ('queued', 'sent', 'delivered', 'failed', 'read')),"
	"  final INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX messages_by_peer ON messages (peer);"
	"CREATE INDEX messages_by_state ON messages (state, peer);"
	"CREATE VIRTUAL TABLE messages_fts USING fts5("
	"  text, content='messages', content_rowid='seq', tokenize='trigram');"
	"CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
	"  INSERT INTO messages_fts (messages_fts, rowid, text)"
	"    VALUES ('delete', old.seq, old.text);"
	"END;"
	"CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN"
	"  INSERT INTO messages_fts (messages_fts, rowid, text)"
	"    VALUES ('delete', old.seq, old.text);"
	"  INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);"
	"END;"
	"CREATE INDEX messages_pending ON messages (peer)"
	"  WHERE state IN ('queued', 'sent') AND final = 0;"
	"CREATE INDEX messages_unread ON messages (peer)"
	"  WHERE direction = 'in' AND state = 'delivered';"
	"INSERT INTO messages (id, peer, direction, text, sent_usec, received_usec, state)"
	"  VALUES ('old-in', 'bob', 'in', 'old hello', 1, 2, 'delivered'),"
	"         ('old-out', 'bob', 'out', 'old queued', 3, 0, 'queued');"
	"INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
	"PRAGMA user_version = 4;";

static const uint8_t key_a[HISTORY_PEER_KEY_SIZE] = { 0xaa, 1, 2, 3, [31] = 0xa0 };
static const uint8_t key_b[HISTORY_PEER_KEY_SIZE] = { 0xbb, 1, 2, 3, [31] = 0xb0 };
static const uint8_t key_c[HISTORY_PEER_KEY_SIZE] = { 0xcc, 1, 2, 3, [31] = 0xc0 };

/* Asserts that message @id is for @key (NULL: for no key). */
static void assert_message_key(History *h, const char *id, const uint8_t *key) {
	HistoryMessage m = {};

	assert_int_equal(history_get_message(h, id, &m), 0);
	if (key) {
		assert_true(m.has_peer_key);
		assert_memory_equal(m.peer_key, key, HISTORY_PEER_KEY_SIZE);
	} else {
		assert_false(m.has_peer_key);
	}
	history_message_done(&m);
}

static void test_history_migrate_from_v4(void **state) {
	Fixture *f = *state;
	HistoryPeerKey pin = {};
	HistoryList l = {};
	char path[160];
	History *h = NULL;

	assert_int_equal(history_schema_version_latest(), 5);
	snprintf(path, sizeof(path), "%s/v4.db", f->dir);
	raw_sql(path, schema_v4);

	assert_int_equal(history_open(path, &h), 0);
	assert_int_equal(history_schema_version(h), 5);
	assert_int_equal(history_check_integrity(h), 0);

	/* The old rows are there, for no key, and still found. */
	assert_message_key(h, "old-in", NULL);
	assert_message_key(h, "old-out", NULL);
	assert_int_equal(history_search(h, "old queued", 10, &l), 0);
	assert_int_equal(l.n, 1);
	history_list_done(&l);

	/* No pins yet; the first one binds the old queued message, not the incoming one. */
	assert_int_equal(history_get_peer_key(h, "bob", &pin), 0);
	assert_int_equal(history_set_peer_key(h, "bob", key_a, false, 10), 1);
	assert_message_key(h, "old-out", key_a);
	assert_message_key(h, "old-in", NULL);

	/* The new column refuses a key of the wrong size. */
	h = history_free(h);
	{
		sqlite3 *db = NULL;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE messages SET peer_key = x'0102' "
						  "WHERE id = 'old-out'",
						 NULL, NULL, NULL),
				SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_exec(db, "INSERT INTO peer_keys VALUES ('x', x'01', 0, 1)",
						 NULL, NULL, NULL),
				SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_close(db), SQLITE_OK);
	}
	assert_int_equal(history_open(path, &h), 0);
	assert_int_equal(history_schema_version(h), 5);
	assert_message_key(h, "old-out", key_a);
	h = history_free(h);
}

static void test_history_peer_key(void **state) {
	Fixture *f = *state;
	HistoryPeerKey pin = {};

	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 0);
	assert_int_equal(history_set_peer_verified(f->h, "alice", true), -ENOENT);
	assert_int_equal(history_get_peer_key(f->h, "", &pin), -EINVAL);
	assert_int_equal(history_set_peer_key(f->h, NULL, key_a, false, 1), -EINVAL);
	assert_int_equal(history_set_peer_key(f->h, "alice", key_a, false, UINT64_MAX), -EINVAL);
	assert_int_equal(history_set_peer_verified(f->h, "", true), -EINVAL);

	/* First pin. */
	assert_int_equal(history_set_peer_key(f->h, "alice", key_a, false, 100), 1);
	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 1);
	assert_memory_equal(pin.key, key_a, HISTORY_PEER_KEY_SIZE);
	assert_false(pin.verified);
	assert_int_equal(pin.pinned_usec, 100);
	assert_int_equal(history_get_peer_key(f->h, "bob", &pin), 0);

	/* The same key again: not a new pin, pinned_usec stays, verified as given. */
	assert_int_equal(history_set_peer_key(f->h, "alice", key_a, false, 150), 0);
	assert_int_equal(history_set_peer_key(f->h, "alice", key_a, true, 200), 0);
	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 1);
	assert_true(pin.verified);
	assert_int_equal(pin.pinned_usec, 100);

	assert_int_equal(history_set_peer_verified(f->h, "alice", false), 0);
	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 1);
	assert_false(pin.verified);
	assert_int_equal(history_set_peer_verified(f->h, "alice", true), 0);
	assert_int_equal(history_set_peer_verified(f->h, "alice", true), 0);

	/* A changed key: pinned anew, at its own time, verified as given. */
	assert_int_equal(history_set_peer_key(f->h, "alice", key_b, false, 300), 1);
	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 1);
	assert_memory_equal(pin.key, key_b, HISTORY_PEER_KEY_SIZE);
	assert_false(pin.verified);
	assert_int_equal(pin.pinned_usec, 300);

	assert_int_equal(history_set_peer_key(f->h, "carol", key_c, true, 400), 1);

	/* Pins survive a reopen. */
	reopen(f);
	assert_int_equal(history_get_peer_key(f->h, "alice", &pin), 1);
	assert_memory_equal(pin.key, key_b, HISTORY_PEER_KEY_SIZE);
	assert_false(pin.verified);
	assert_int_equal(pin.pinned_usec, 300);
	assert_int_equal(history_get_peer_key(f->h, "carol", &pin), 1);
	assert_memory_equal(pin.key, key_c, HISTORY_PEER_KEY_SIZE);
	assert_true(pin.verified);
	assert_int_equal(pin.pinned_usec, 400);
	assert_int_equal(history_get_peer_key(f->h, "bob", &pin), 0);
}

static void test_history_outgoing_key(void **state) {
	Fixture *f = *state;
	HistoryConversationList c = {};
	HistoryList l = {};

	assert_int_equal(history_add_outgoing(f->h, "k1", "bob", "for a", 1, key_a), 0);
	assert_int_equal(history_add_outgoing(f->h, "k2", "bob", "for none", 2, NULL), 0);
	assert_int_equal(history_add_outgoing_as(f->h, "k3", "bob", "sent to a", 3, key_a,
			HISTORY_STATE_SENT), 0);
	assert_int_equal(history_add_incoming(f->h, "k4", "bob", "from bob", 4, 4), 1);
	assert_message_key(f->h, "k1", key_a);
	assert_message_key(f->h, "k2", NULL);
	assert_message_key(f->h, "k3", key_a);
	assert_message_key(f->h, "k4", NULL);

	/* The lists carry the key too. */
	assert_int_equal(history_list_queued(f->h, "bob", &l), 0);
	assert_int_equal(l.n, 2);
	assert_true(l.messages[0].has_peer_key);
	assert_memory_equal(l.messages[0].peer_key, key_a, HISTORY_PEER_KEY_SIZE);
	assert_false(l.messages[1].has_peer_key);
	history_list_done(&l);
	assert_int_equal(history_get(f->h, "bob", 10, NULL, &l), 0);
	assert_int_equal(l.n, 4);
	assert_true(l.messages[2].has_peer_key);
	history_list_done(&l);

	/* Bound later, or bound again. */
	assert_int_equal(history_set_message_key(f->h, "k2", key_b), 0);
	assert_int_equal(history_set_message_key(f->h, "k1", key_c), 0);
	assert_int_equal(history_set_message_key(f->h, "k4", key_b), -ENOENT); /* incoming */
	assert_int_equal(history_set_message_key(f->h, "nope", key_b), -ENOENT);
	assert_int_equal(history_set_message_key(f->h, "bad id!", key_b), -ENOENT);

	assert_int_equal(history_add_outgoing(f->h, "k5", "bob", "last", 5, key_b), 0);
	assert_int_equal(history_list_conversations(f->h, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.conversations[0].last.id, "k5");
	assert_true(c.conversations[0].last.has_peer_key);
	assert_memory_equal(c.conversations[0].last.peer_key, key_b, HISTORY_PEER_KEY_SIZE);
	assert_int_equal(c.conversations[0].unread, 1);
	history_conversation_list_done(&c);

	reopen(f);
	assert_message_key(f->h, "k1", key_c);
	assert_message_key(f->h, "k2", key_b);
	assert_message_key(f->h, "k3", key_a);
	assert_message_key(f->h, "k4", NULL);
}

static void test_history_first_pin_binds_queued(void **state) {
	Fixture *f = *state;

	assert_int_equal(history_add_outgoing(f->h, "q", "bob", "queued", 1, NULL), 0);
	assert_int_equal(history_add_outgoing_as(f->h, "s", "bob", "sent", 2, NULL,
			HISTORY_STATE_SENT), 0);
	assert_int_equal(history_add_outgoing(f->h, "x", "bob", "failed", 3, NULL), 0);
	assert_int_equal(history_set_state(f->h, "x", HISTORY_STATE_FAILED), 1);
	assert_int_equal(history_add_outgoing(f->h, "d", "bob", "delivered", 4, NULL), 0);
	assert_int_equal(history_set_state(f->h, "d", HISTORY_STATE_DELIVERED), 1);
	assert_int_equal(history_add_outgoing(f->h, "r", "bob", "reference", 5, NULL), 0);
	assert_int_equal(history_set_sent_final(f->h, "r"), 0);
	assert_int_equal(history_add_outgoing(f->h, "k", "bob", "keyed", 6, key_c), 0);
	assert_int_equal(history_add_outgoing(f->h, "c", "carol", "carol's", 7, NULL), 0);
	assert_int_equal(history_add_incoming(f->h, "i", "bob", "incoming", 8, 8), 1);

	assert_int_equal(history_set_peer_key(f->h, "bob", key_a, false, 10), 1);
	assert_message_key(f->h, "q", key_a);
	assert_message_key(f->h, "s", key_a);
	assert_message_key(f->h, "x", key_a);
	assert_message_key(f->h, "d", NULL); /* already delivered, to whoever had it */
	assert_message_key(f->h, "r", NULL); /* a reference peer's */
	assert_message_key(f->h, "k", key_c);
	assert_message_key(f->h, "c", NULL);
	assert_message_key(f->h, "i", NULL);

	/* A later pin (a changed key) binds nothing: queued messages keep their key. */
	assert_int_equal(history_add_outgoing(f->h, "q2", "bob", "queued later", 11, NULL), 0);
	assert_int_equal(history_set_peer_key(f->h, "bob", key_b, false, 12), 1);
	assert_message_key(f->h, "q", key_a);
	assert_message_key(f->h, "q2", NULL);
}

/* The number of pins another connection sees: the committed ones. */
static int committed_pins(const char *path) {
	sqlite3_stmt *s = NULL;
	sqlite3 *db = NULL;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM peer_keys", -1, &s, NULL),
			SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int(s, 0);
	assert_int_equal(sqlite3_finalize(s), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return n;
}

static void test_history_peer_key_batching(void **state) {
	Fixture *f = *state;
	HistoryPeerKey pin = {};

	history_set_batching(f->h, true);
	assert_int_equal(history_add_outgoing(f->h, "b1", "bob", "before the key", 1, NULL), 0);
	assert_int_equal(history_set_peer_key(f->h, "bob", key_a, false, 2), 1);
	assert_int_equal(history_set_peer_key(f->h, "bob", key_a, false, 3), 0); /* no write */
	assert_int_equal(history_set_peer_verified(f->h, "bob", true), 0);
	assert_int_equal(history_set_peer_verified(f->h, "carol", true), -ENOENT);
	assert_int_equal(history_batch_size(f->h), 4);

	/* Seen at once by this connection, by no other before the commit. */
	assert_int_equal(history_get_peer_key(f->h, "bob", &pin), 1);
	assert_true(pin.verified);
	assert_message_key(f->h, "b1", key_a);
	assert_int_equal(committed_pins(f->path), 0);
	assert_int_equal(committed_count(f->path), 0);

	/* The pin, the message and its binding commit together. */
	assert_int_equal(history_commit(f->h), 0);
	assert_int_equal(committed_pins(f->path), 1);
	assert_int_equal(committed_count(f->path), 1);
	reopen(f);
	assert_int_equal(history_get_peer_key(f->h, "bob", &pin), 1);
	assert_true(pin.verified);
	assert_int_equal(pin.pinned_usec, 2);
	assert_message_key(f->h, "b1", key_a);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_history_migrate_empty),
		T(test_history_migrate_existing_empty_file),
		T(test_history_newer_schema_refused),
		T(test_history_not_a_database),
		T(test_history_reopen_persists),
		T(test_history_duplicates),
		T(test_history_invalid_args),
		T(test_history_state_machine),
		T(test_history_queue_order_and_requeue),
		T(test_history_queue_limit),
		T(test_history_expire),
		T(test_history_get_paging),
		T(test_history_search),
		T(test_history_unread),
		T(test_history_list_conversations),
		T(test_history_list_conversations_large),
		T(test_history_default_path),
		T(test_history_batching),
		T(test_history_migrate_from_v4),
		T(test_history_peer_key),
		T(test_history_outgoing_key),
		T(test_history_first_pin_binds_queued),
		T(test_history_peer_key_batching),
		T(test_history_crash_safety),
	};

	return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
