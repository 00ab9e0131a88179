/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/roster.c without a bus or a socket: what lists, login
 * and logout notices do to the peers, which events the roster reports (a
 * recording double of RosterCallbacks), and which offline peers it forgets
 * (after the expiry, or when it is full) and which it keeps.
 */

#include <arpa/inet.h>
#include <errno.h>
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
/* A small roster, so that the tests can fill it. */
#define TEST_MAX_PEERS 8
#define TEST_EXPIRY_USEC (100 * USEC_PER_MSEC)

typedef struct Fixture {
	sd_event *event;
	Roster *roster;
	/*
	 * "added:NAME", "changed:NAME:oen", "joined:NAME", "left:NAME",
	 * "removed:NAME", "in_use:NAME"
	 */
	char events[EVENTS_MAX][64];
	size_t n_events;
	/* Peers something is kept for; "broken*" ones make in_use() fail. */
	const char *kept[TEST_MAX_PEERS];
	size_t n_kept;
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

static int on_in_use(Peer *p, void *userdata) {
	Fixture *f = userdata;

	record(f, "in_use", p, "");
	if (strncmp(peer_get_name(p), "broken", 6) == 0) {
		return -EIO;
	}
	for (size_t i = 0; i < f->n_kept; i++) {
		if (streq(f->kept[i], peer_get_name(p))) {
			return 1;
		}
	}
	return 0;
}

static const RosterCallbacks callbacks = {
	.added = on_added,
	.changed = on_changed,
	.joined = on_joined,
	.left = on_left,
	.removed = on_removed,
	.in_use = on_in_use,
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
	assert_int_equal(roster_new(f->event, TEST_MAX_PEERS, TEST_EXPIRY_USEC, &callbacks, f,
			&f->roster), 0);
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

/* Whether @event was recorded (and not consumed yet). */
static bool saw(Fixture *f, const char *event) {
	for (size_t i = 0; i < f->n_events; i++) {
		if (streq(f->events[i], event)) {
			return true;
		}
	}
	return false;
}

/* Runs the loop until @event was recorded, for at most 2 s. */
static void run_until(Fixture *f, const char *event) {
	for (int i = 0; i < 200 && !saw(f, event); i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_true(saw(f, event));
}

static void login(Fixture *f, const char *name, uint16_t port) {
	Endpoint e = ep(port);

	assert_int_equal(roster_add_or_update(f->roster, "me", name, &e, ""), 1);
}

static void test_roster_expiry_forgets_ghosts(void **state) {
	Fixture *f = *state;

	f->kept[f->n_kept++] = "kept";
	login(f, "ghost1", 1000);
	login(f, "kept", 1001);
	login(f, "ghost2", 1002);
	login(f, "back", 1003);
	login(f, "broken", 1004);
	roster_mark_offline(f->roster, "ghost1", NULL);
	roster_mark_offline(f->roster, "kept", NULL);
	roster_mark_offline(f->roster, "ghost2", NULL);
	roster_mark_offline(f->roster, "back", NULL);
	roster_mark_offline(f->roster, "broken", NULL);
	f->n_events = 0;

	/* Not before the expiry. */
	assert_true(sd_event_run(f->event, 0) >= 0);
	assert_int_equal(f->n_events, 0);
	assert_int_equal(roster_size(f->roster), 5);

	/* One that comes back in time is not a ghost. */
	login(f, "back", 1003);
	f->n_events = 0;

	/* In the order they left; each asked once; a failed answer keeps. */
	run_until(f, "in_use:broken");
	EVENTS(f, "in_use:ghost1", "removed:ghost1", "in_use:kept", "in_use:ghost2",
			"removed:ghost2", "in_use:broken");
	assert_int_equal(roster_size(f->roster), 3);
	assert_null(roster_get(f->roster, "ghost1"));
	assert_null(roster_get(f->roster, "ghost2"));
	assert_non_null(roster_get(f->roster, "kept"));
	assert_non_null(roster_get(f->roster, "broken"));
	assert_true(peer_is_online(roster_get(f->roster, "back")));

	/* Kept ones are not asked again while they stay offline... */
	for (int i = 0; i < 20; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n_events, 0);

	/* ...but when they leave again, once nothing is kept any more. */
	f->n_kept = 0;
	login(f, "kept", 1001);
	roster_mark_offline(f->roster, "kept", NULL);
	f->n_events = 0;
	run_until(f, "removed:kept");
	EVENTS(f, "in_use:kept", "removed:kept");
	assert_int_equal(roster_size(f->roster), 2);

	/* A forgotten name is a new peer when it logs in again. */
	login(f, "ghost1", 1005);
	EVENTS(f, "added:ghost1", "joined:ghost1");
}

static void test_roster_full_drops_oldest_ghost(void **state) {
	Fixture *f = *state;
	Endpoint e = ep(2000);
	char name[16];

	for (unsigned i = 0; i < TEST_MAX_PEERS; i++) {
		(void) snprintf(name, sizeof(name), "p%u", i);
		login(f, name, (uint16_t) (1000 + i));
	}
	f->kept[f->n_kept++] = "p0";
	roster_mark_offline(f->roster, "p0", NULL); /* left first, but kept */
	roster_mark_offline(f->roster, "p5", NULL);
	roster_mark_offline(f->roster, "p2", NULL);
	f->n_events = 0;

	/* Full: the oldest offline peer nothing is kept for makes room, expiry or not. */
	assert_int_equal(roster_size(f->roster), TEST_MAX_PEERS);
	assert_int_equal(roster_add_or_update(f->roster, "me", "newcomer", &e, ""), 1);
	EVENTS(f, "in_use:p0", "in_use:p5", "removed:p5", "added:newcomer", "joined:newcomer");
	assert_int_equal(roster_size(f->roster), TEST_MAX_PEERS);
	assert_null(roster_get(f->roster, "p5"));
	assert_non_null(roster_get(f->roster, "p0"));

	/* A known name needs no room. */
	roster_mark_offline(f->roster, "newcomer", NULL);
	assert_int_equal(roster_add_or_update(f->roster, "me", "newcomer", &e, ""), 1);
	f->n_events = 0;

	assert_int_equal(roster_add_or_update(f->roster, "me", "second", &e, ""), 1);
	EVENTS(f, "in_use:p2", "removed:p2", "added:second", "joined:second");

	/* Only online peers and p0, which is kept: no room, and p0 is not asked again. */
	assert_int_equal(roster_add_or_update(f->roster, "me", "third", &e, ""), -ENOSPC);
	assert_int_equal(f->n_events, 0);
	assert_null(roster_get(f->roster, "third"));
	assert_non_null(roster_get(f->roster, "p0"));
	assert_int_equal(roster_size(f->roster), TEST_MAX_PEERS);
}

static void test_roster_full_of_online_refuses(void **state) {
	Fixture *f = *state;
	Endpoint e = ep(2000);
	char name[16];

	for (unsigned i = 0; i < TEST_MAX_PEERS; i++) {
		(void) snprintf(name, sizeof(name), "p%u", i);
		login(f, name, (uint16_t) (1000 + i));
	}
	f->n_events = 0;
	assert_int_equal(roster_add_or_update(f->roster, "me", "newcomer", &e, ""), -ENOSPC);
	assert_int_equal(f->n_events, 0);
	assert_int_equal(roster_size(f->roster), TEST_MAX_PEERS);

	/* One leaves: its place is free at once, before its expiry. */
	roster_mark_offline(f->roster, "p3", NULL);
	f->n_events = 0;
	assert_int_equal(roster_add_or_update(f->roster, "me", "newcomer", &e, ""), 1);
	EVENTS(f, "in_use:p3", "removed:p3", "added:newcomer", "joined:newcomer");

	/* The expiry timer finds nothing left to do. */
	for (int i = 0; i < 20; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n_events, 0);
}

static void test_roster_clear_after_expiry(void **state) {
	Fixture *f = *state;

	/* Offline peers waiting for their expiry are freed with the roster. */
	login(f, "bob", 1000);
	login(f, "dave", 1001);
	roster_mark_offline(f->roster, "dave", NULL);
	roster_clear(f->roster);
	f->n_events = 0;
	for (int i = 0; i < 20; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n_events, 0);

	/* And the roster works as before. */
	login(f, "dave", 1001);
	roster_mark_offline(f->roster, "dave", NULL);
	f->n_events = 0;
	run_until(f, "removed:dave");
	EVENTS(f, "in_use:dave", "removed:dave");
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_roster_login_and_logout),
		T(test_roster_moves_and_caps),
		T(test_roster_list_reconciles),
		T(test_roster_clear),
		T(test_roster_expiry_forgets_ghosts),
		T(test_roster_full_drops_oldest_ghost),
		T(test_roster_full_of_online_refuses),
		T(test_roster_clear_after_expiry),
	};

	return cmocka_run_group_tests_name("roster", tests, NULL, NULL);
}
