/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/timeout-queue.c on a real sd-event loop: members
 * expire in queue order after the duration, a removed member never expires,
 * a re-pushed member moves to the back, and the handler may re-push.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "coordinator/timeout-queue.h"

typedef struct Item {
	TimeoutLink link;
	int id;
	int repush; /* times the handler pushes it again */
} Item;

typedef struct Fixture {
	sd_event *event;
	TimeoutQueue queue;
	int order[16];
	size_t n;
} Fixture;

static void on_expired(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Fixture *f = userdata;
	Item *item = container_of(link, Item, link);

	assert_true(f->n < ELEMENTSOF(f->order));
	f->order[f->n++] = item->id;
	if (item->repush > 0) {
		item->repush--;
		assert_int_equal(timeout_queue_push(q, link), 0);
	}
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(timeout_queue_init(&f->queue, f->event, 20 * USEC_PER_MSEC, on_expired,
			f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	timeout_queue_done(&f->queue);
	sd_event_unref(f->event);
	free(f);
	return 0;
}

/* Runs the loop until @n expiries were seen or 2 s passed. */
static void run_until(Fixture *f, size_t n) {
	for (int i = 0; i < 400 && f->n < n; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
}

static void test_timeout_queue_expires_in_order(void **state) {
	Fixture *f = *state;
	Item items[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };
	uint64_t start, end;

	assert_true(sd_event_now(f->event, CLOCK_MONOTONIC, &start) >= 0);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(timeout_queue_push(&f->queue, &items[i].link), 0);
	}
	run_until(f, 3);
	assert_int_equal(f->n, 3);
	assert_int_equal(f->order[0], 1);
	assert_int_equal(f->order[1], 2);
	assert_int_equal(f->order[2], 3);
	assert_true(sd_event_now(f->event, CLOCK_MONOTONIC, &end) >= 0);
	assert_true(end - start >= 20 * USEC_PER_MSEC);
	assert_false(list_node_is_linked(&items[0].link.node));
}

static void test_timeout_queue_remove_and_repush(void **state) {
	Fixture *f = *state;
	Item items[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(timeout_queue_push(&f->queue, &items[i].link), 0);
	}
	timeout_link_remove(&items[1].link);
	timeout_link_remove(&items[1].link); /* twice is fine */
	assert_int_equal(timeout_queue_push(&f->queue, &items[0].link), 0); /* to the back */
	run_until(f, 2);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->order[0], 3);
	assert_int_equal(f->order[1], 1);
	/* Nothing more comes. */
	for (int i = 0; i < 10; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n, 2);
}

static void test_timeout_queue_handler_repushes(void **state) {
	Fixture *f = *state;
	Item item = { .id = 7, .repush = 2 };

	assert_int_equal(timeout_queue_push(&f->queue, &item.link), 0);
	run_until(f, 3);
	assert_int_equal(f->n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(f->order[i], 7);
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_timeout_queue_expires_in_order),
		T(test_timeout_queue_remove_and_repush),
		T(test_timeout_queue_handler_repushes),
#undef T
	};

	return cmocka_run_group_tests_name("coordinator-timeout-queue", tests, NULL, NULL);
}
