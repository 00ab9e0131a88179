/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/roster.c without a bus or a socket: what lists, login
 * and logout notices do to the peers, and which events the roster reports
 * (a recording double of RosterCallbacks).
 */

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/roster.h"

#define EVENTS_MAX 64

typedef struct Fixture {
	sd_event *event;
	Roster *roster;
	/* "added:NAME", "changed:NAME:oen", "joined:NAME", "left:NAME", "removed:NAME" */
	char events[EVENTS_MAX][64];
	size_t n_events;
} Fixture;

static void record(Fixture *f, const char *what, Peer *p, const char *extra) {
	assert_true(f->n_events < EVENTS_MAX);
	(void) snprintf(f->events[f->n_events++], sizeof(f->events[0]), "%s:%s%s", what,
			peer_get_name(p), extra);
}

static void on_added(Peer *p, void *userdata) {
	record(userdata, "added", p, "");
}

static void on_changed(Peer *p, unsigned what, void *userdata) {
	char flags[8];

	(void) snprintf(flags, sizeof(flags), ":%s%s%s", what & PEER_CHANGE_ONLINE ? "o" : "",
			what & PEER_CHANGE_ENDPOINT ? "e" : "", what & PEER_CHANGE_NATIVE ? "n" : "");
	record(userdata, "changed", p, flags);
}

static void on_joined(Peer *p, void *userdata) {
	record(userdata, "joined", p, "");
}

static void on_left(Peer *p, void *userdata) {
	record(userdata, "left", p, "");
}

static void on_removed(Peer *p, void *userdata) {
	record(userdata, "removed", p, "");
}

static const RosterCallbacks callbacks = {
	.added = on_added,
	.changed = on_changed,
	.joined = on_joined,
	.left = on_left,
	.removed = on_removed,
};

static Endpoint ep(uint16_t port) {
	Endpoint e = { .in.sin_family = AF_INET, .in.sin_port = htons(port) };

	e.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return e;
}

static void assert_events(Fixture *f, const char *const *want, size_t n) {
	for (size_t i = 0; i < n && i < f->n_events; i++) {
		assert_string_equal(f->events[i], want[i]);
	}
	assert_int_equal(f->n_events, n);
	f->n_events = 0;
}

#define EVENTS(f, ...)                                                                   \
	assert_events(f, (const char *const[]) { __VA_ARGS__ },                         \
			ELEMENTSOF(((const char *const[]) { __VA_ARGS__ })))

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(roster_new(f->event, &callbacks, f, &f->roster), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	f->roster = roster_free(f->roster);
	sd_event_unref(f->event);
	free(f);
	return 0;
}

static void test_roster_login_and_logout(void **state) {
	Fixture *f = *state;
	Endpoint a = ep(1000), b = ep(2000);
	Peer *p;

	assert_int_equal(roster_add_or_update(f->roster, "me", "bob", &a, "native1"), 1);
	EVENTS(f, "added:bob", "joined:bob");
	p = roster_get(f->roster, "bob");
	assert_non_null(p);
	assert_true(peer_is_online(p));
	assert_true(peer_is_native(p));
	assert_true(peer_accepts_from(p, &a, true));
	assert_false(peer_accepts_from(p, &b, true));
	assert_true(peer_accepts_from(p, &b, false)); /* same IP: a reference peer's talk */

	/* Ourselves, and a repeat of the same login: nothing. */
	assert_int_equal(roster_add_or_update(f->roster, "me", "me", &a, ""), 0);
	assert_int_equal(roster_add_or_update(f->roster, "me", "bob", &a, "native1"), 0);
	assert_int_equal(roster_size(f->roster), 1);
	assert_int_equal(f->n_events, 0);

	/* A logout from an old endpoint is stale; the right one is a leave. */
	roster_mark_offline(f->roster, "bob", &b);
	assert_int_equal(f->n_events, 0);
	roster_mark_offline(f->roster, "bob", &a);
	EVENTS(f, "changed:bob:o", "left:bob");
	assert_false(peer_is_online(p));
	assert_false(peer_accepts_from(p, &a, true));
	roster_mark_offline(f->roster, "bob", NULL);
	roster_mark_offline(f->roster, "nobody", NULL);
	assert_int_equal(f->n_events, 0);

	/* Back, elsewhere and without caps. */
	assert_int_equal(roster_add_or_update(f->roster, "me", "bob", &b, ""), 1);
	EVENTS(f, "changed:bob:oen", "joined:bob");
	assert_false(peer_is_native(p));
	assert_true(endpoint_equal(peer_get_endpoint(p), &b));
}

static void test_roster_moves_and_caps(void **state) {
	Fixture *f = *state;
	Endpoint a = ep(1000), b = ep(2000);

	assert_int_equal(roster_add_or_update(f->roster, NULL, "carol", &a, "native1"), 1);
	f->n_events = 0;
	/* A reference server's list drops the caps: same endpoint keeps them. */
	assert_int_equal(roster_add_or_update(f->roster, NULL, "carol", &a, ""), 0);
	assert_int_equal(f->n_events, 0);
	assert_true(peer_is_native(roster_get(f->roster, "carol")));
	/* A new endpoint while online: changed, not joined. */
	assert_int_equal(roster_add_or_update(f->roster, NULL, "carol", &b, "native1"), 0);
	EVENTS(f, "changed:carol:e");
}

static void test_roster_list_reconciles(void **state) {
	Fixture *f = *state;
	WireListEntry list[3] = {};

	(void) snprintf(list[0].name, sizeof(list[0].name), "bob");
	list[0].endpoint = ep(1000);
	(void) snprintf(list[1].name, sizeof(list[1].name), "carol");
	list[1].endpoint = ep(1001);
	(void) snprintf(list[2].name, sizeof(list[2].name), "me");
	list[2].endpoint = ep(1002);
	assert_int_equal(roster_apply_list(f->roster, "me", list, 3, 0), 0);
	EVENTS(f, "added:bob", "joined:bob", "added:carol", "joined:carol");
	assert_int_equal(roster_size(f->roster), 2);

	/* A list without carol, and no grace: carol has left. */
	assert_int_equal(roster_apply_list(f->roster, "me", list, 1, 0), 0);
	EVENTS(f, "changed:carol:o", "left:carol");

	/* After a reconnect: bob, missing, has the grace to come back. */
	assert_int_equal(roster_apply_list(f->roster, "me", list + 1, 1, 50 * USEC_PER_MSEC), 0);
	EVENTS(f, "changed:carol:o", "joined:carol");
	assert_true(peer_is_online(roster_get(f->roster, "bob")));
	for (int i = 0; i < 100 && f->n_events == 0; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	EVENTS(f, "changed:bob:o", "left:bob");
}

static void test_roster_clear(void **state) {
	Fixture *f = *state;
	Endpoint a = ep(1000), b = ep(2000);

	assert_int_equal(roster_add_or_update(f->roster, NULL, "bob", &a, ""), 1);
	assert_int_equal(roster_add_or_update(f->roster, NULL, "dave", &b, ""), 1);
	roster_mark_offline(f->roster, "dave", NULL);
	f->n_events = 0;
	roster_clear(f->roster);
	/* Left only for the online one, removed for every one, in name order. */
	EVENTS(f, "left:bob", "removed:bob", "removed:dave");
	assert_int_equal(roster_size(f->roster), 0);
	assert_null(roster_get(f->roster, "bob"));
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_roster_login_and_logout),
		T(test_roster_moves_and_caps),
		T(test_roster_list_reconciles),
		T(test_roster_clear),
	};

	return cmocka_run_group_tests_name("roster", tests, NULL, NULL);
}
