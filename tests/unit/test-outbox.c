/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/outbox.c on a real sd-event loop: order of sending, a
 * refused send keeping the rest queued, requeue after failed retries, the
 * restart requeue, expiry by the CLOCK_REALTIME timer, and the key a new
 * message is for.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/outbox.h"
#include "tests/helpers/test-tmpdir.h"

#define EVENTS_MAX 64

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	sd_event *event;
	History *history;
	Outbox *outbox;
	/* What the callbacks saw, "send:ID" / "expired:ID". */
	char events[EVENTS_MAX][80];
	size_t n_events;
	int refuse_id_index; /* the send callback refuses the message whose id ends in this digit */
} Fixture;

static uint64_t now_usec(void) {
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void record(Fixture *f, const char *what, const char *id) {
	assert_true(f->n_events < EVENTS_MAX);
	snprintf(f->events[f->n_events++], sizeof(f->events[0]), "%s:%s", what, id);
}

static int on_send(const HistoryMessage *m, void *userdata) {
	Fixture *f = userdata;
	size_t n = strlen(m->id);

	if (n > 0 && m->id[n - 1] - '0' == f->refuse_id_index) {
		record(f, "refused", m->id);
		return -EHOSTDOWN;
	}
	record(f, "send", m->id);
	return 0;
}

static void on_expired(const HistoryMessage *m, void *userdata) {
	Fixture *f = userdata;

	assert_int_equal(m->state, HISTORY_STATE_FAILED);
	record(f, "expired", m->id);
}

static const OutboxCallbacks callbacks = {
	.send = on_send,
	.expired = on_expired,
};

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-outbox", "history.db", f->path, sizeof(f->path));
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(history_open(f->path, &f->history), 0);
	f->refuse_id_index = -1;
	assert_int_equal(outbox_new(f->event, f->history, 7 * 24 * 3600 * USEC_PER_SEC, &callbacks,
					 f, &f->outbox),
			0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;
	f->outbox = outbox_free(f->outbox);
	f->history = history_free(f->history);
	f->event = sd_event_unref(f->event);
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static HistoryState state_of(Fixture *f, const char *id) {
	HistoryMessage m = {};
	HistoryState s;

	assert_int_equal(history_get_message(f->history, id, &m), 0);
	s = m.state;
	history_message_done(&m);
	return s;
}

static void assert_events(Fixture *f, const char *const *expected, size_t n) {
	assert_int_equal(f->n_events, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(f->events[i], expected[i]);
	}
	f->n_events = 0;
}

static void test_outbox_flush_in_order(void **state) {
	Fixture *f = *state;
	uint64_t now = now_usec();

	assert_int_equal(outbox_add(f->outbox, "m1", "bob", "one", now), 0);
	assert_int_equal(outbox_add(f->outbox, "m2", "bob", "two", now), 0);
	assert_int_equal(outbox_add(f->outbox, "x1", "carol", "x", now), 0);
	assert_int_equal(outbox_add(f->outbox, "m3", "bob", "three", now), 0);
	assert_int_equal(outbox_add(f->outbox, "m3", "bob", "again", now), -EEXIST);

	assert_int_equal(outbox_flush(f->outbox, "bob"), 3);
	assert_events(f, (const char *const[]) { "send:m1", "send:m2", "send:m3" }, 3);
	assert_int_equal(state_of(f, "m1"), HISTORY_STATE_SENT);
	assert_int_equal(state_of(f, "x1"), HISTORY_STATE_QUEUED);

	/* Nothing left to send for bob. */
	assert_int_equal(outbox_flush(f->outbox, "bob"), 0);
	assert_int_equal(outbox_flush(f->outbox, "nobody"), 0);
	assert_int_equal(f->n_events, 0);

	/* m2's retries ran out: it goes back and is the next to send. */
	assert_int_equal(outbox_delivered(f->outbox, "m1"), 1);
	assert_int_equal(outbox_requeue(f->outbox, "m2"), 1);
	assert_int_equal(outbox_flush(f->outbox, "bob"), 1);
	assert_events(f, (const char *const[]) { "send:m2" }, 1);
	assert_int_equal(outbox_delivered(f->outbox, "m2"), 1);
	assert_int_equal(state_of(f, "m2"), HISTORY_STATE_DELIVERED);
	assert_int_equal(outbox_delivered(f->outbox, "unknown"), -ENOENT);
}

static void test_outbox_refused_send_keeps_order(void **state) {
	Fixture *f = *state;
	uint64_t now = now_usec();

	assert_int_equal(outbox_add(f->outbox, "a1", "bob", "one", now), 0);
	assert_int_equal(outbox_add(f->outbox, "a2", "bob", "two", now), 0);
	assert_int_equal(outbox_add(f->outbox, "a3", "bob", "three", now), 0);

	f->refuse_id_index = 2;
	assert_int_equal(outbox_flush(f->outbox, "bob"), 1);
	assert_events(f, (const char *const[]) { "send:a1", "refused:a2" }, 2);
	assert_int_equal(state_of(f, "a2"), HISTORY_STATE_QUEUED);
	assert_int_equal(state_of(f, "a3"), HISTORY_STATE_QUEUED);

	f->refuse_id_index = -1;
	assert_int_equal(outbox_flush(f->outbox, "bob"), 2);
	assert_events(f, (const char *const[]) { "send:a2", "send:a3" }, 2);
}

static void test_outbox_restart_requeues_sent(void **state) {
	Fixture *f = *state;
	uint64_t now = now_usec();

	assert_int_equal(outbox_add(f->outbox, "r1", "bob", "one", now), 0);
	assert_int_equal(outbox_add(f->outbox, "r2", "bob", "two", now), 0);
	assert_int_equal(outbox_flush(f->outbox, "bob"), 2);
	f->n_events = 0;

	/* The daemon stops with both in flight and starts again. */
	f->outbox = outbox_free(f->outbox);
	f->history = history_free(f->history);
	assert_int_equal(history_open(f->path, &f->history), 0);
	assert_int_equal(state_of(f, "r1"), HISTORY_STATE_SENT);
	assert_int_equal(outbox_new(f->event, f->history, 7 * 24 * 3600 * USEC_PER_SEC,
					 &callbacks, f, &f->outbox),
			0);
	assert_int_equal(state_of(f, "r1"), HISTORY_STATE_QUEUED);
	assert_int_equal(outbox_flush(f->outbox, "bob"), 2);
	assert_events(f, (const char *const[]) { "send:r1", "send:r2" }, 2);
}

static void test_outbox_requeue_only_sent(void **state) {
	Fixture *f = *state;
	uint64_t now = now_usec();

	assert_int_equal(outbox_add(f->outbox, "q1", "bob", "one", now), 0);
	assert_int_equal(outbox_add(f->outbox, "q2", "bob", "two", now), 0);
	assert_int_equal(outbox_flush(f->outbox, "bob"), 2);
	assert_int_equal(outbox_requeue(f->outbox, "q1"), 1);
	assert_int_equal(state_of(f, "q1"), HISTORY_STATE_QUEUED);
	/* Already queued, or failed meanwhile (its caller was told): left as it is. */
	assert_int_equal(outbox_requeue(f->outbox, "q1"), 0);
	assert_int_equal(history_set_state(f->history, "q2", HISTORY_STATE_FAILED), 1);
	assert_int_equal(outbox_requeue(f->outbox, "q2"), 0);
	assert_int_equal(state_of(f, "q2"), HISTORY_STATE_FAILED);
	assert_true(outbox_requeue(f->outbox, "nope") < 0);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
	*(bool *) userdata = true;
	return 0;
}

/* Runs the loop until @f has @n events or @timeout has passed. */
static void run_until(Fixture *f, size_t n, uint64_t timeout) {
	sd_event_source *deadline = NULL;
	bool timed_out = false;

	assert_int_equal(sd_event_add_time_relative(f->event, &deadline, CLOCK_MONOTONIC, timeout,
					 0, on_deadline, &timed_out),
			0);
	while (f->n_events < n && !timed_out) {
		assert_true(sd_event_run(f->event, UINT64_MAX) >= 0);
	}
	sd_event_source_disable_unref(deadline);
}

static void test_outbox_expiry_timer(void **state) {
	Fixture *f = *state;
	uint64_t now = now_usec(), start;

	/* Old ones expire at once; a fresh one after the (short) maximum age. */
	assert_int_equal(outbox_add(f->outbox, "old1", "bob", "x", now - 3 * USEC_PER_SEC), 0);
	assert_int_equal(outbox_add(f->outbox, "old2", "carol", "x", now - 2 * USEC_PER_SEC), 0);
	assert_int_equal(outbox_flush(f->outbox, "carol"), 1);
	f->n_events = 0;
	assert_int_equal(outbox_add(f->outbox, "new", "bob", "x", now), 0);
	assert_int_equal(outbox_add(f->outbox, "done", "bob", "x", now - 5 * USEC_PER_SEC), 0);
	assert_int_equal(history_set_state(f->history, "done", HISTORY_STATE_DELIVERED), 1);

	start = now_usec();
	assert_int_equal(outbox_set_max_age(f->outbox, USEC_PER_SEC), 0);
	run_until(f, 2, 10 * USEC_PER_SEC);
	assert_events(f, (const char *const[]) { "expired:old1", "expired:old2" }, 2);
	assert_int_equal(state_of(f, "old2"), HISTORY_STATE_FAILED);
	assert_int_equal(state_of(f, "new"), HISTORY_STATE_QUEUED);

	run_until(f, 1, 10 * USEC_PER_SEC);
	assert_events(f, (const char *const[]) { "expired:new" }, 1);
	assert_int_equal(state_of(f, "done"), HISTORY_STATE_DELIVERED);
	/* Not before its time: one second after it was queued. */
	assert_true(now_usec() >= now + USEC_PER_SEC);
	print_message("# expiry after %.2f s\n", (double) (now_usec() - start) / USEC_PER_SEC);

	/* Nothing pending: the loop has nothing more to expire. */
	run_until(f, 1, USEC_PER_SEC / 2);
	assert_int_equal(f->n_events, 0);
}

static void test_outbox_add_binds_pinned_key(void **state) {
	static const uint8_t key[HISTORY_PEER_KEY_SIZE] = { 0x42, [31] = 0x24 };
	Fixture *f = *state;
	HistoryMessage m = {};
	uint64_t now = now_usec();

	/* No pin yet: no key, until the first pin binds it. */
	assert_int_equal(outbox_add(f->outbox, "before", "bob", "one", now), 0);
	assert_int_equal(history_get_message(f->history, "before", &m), 0);
	assert_false(m.has_peer_key);
	history_message_done(&m);

	assert_int_equal(history_set_peer_key(f->history, "bob", key, false, now), 1);
	assert_int_equal(outbox_add_as(f->outbox, "after", "bob", "two", now,
			HISTORY_STATE_SENT), 0);
	assert_int_equal(outbox_add(f->outbox, "carol1", "carol", "x", now), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(history_get_message(f->history, i ? "after" : "before", &m), 0);
		assert_true(m.has_peer_key);
		assert_memory_equal(m.peer_key, key, HISTORY_PEER_KEY_SIZE);
		history_message_done(&m);
	}
	assert_int_equal(history_get_message(f->history, "carol1", &m), 0);
	assert_false(m.has_peer_key);
	history_message_done(&m);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_outbox_flush_in_order),
		T(test_outbox_refused_send_keeps_order),
		T(test_outbox_restart_requeues_sent),
		T(test_outbox_requeue_only_sent),
		T(test_outbox_expiry_timer),
		T(test_outbox_add_binds_pinned_key),
	};

	return cmocka_run_group_tests_name("outbox", tests, NULL, NULL);
}
