/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of daemon/peer-session.c: two PeerSessions, alice and bob,
 * each with a fresh identity, in one process.  Their send callbacks put
 * datagrams on a simulated wire (FIFO) that the test delivers to the other
 * side, and can drop, hold back (to replay, reorder or tamper with them) or
 * copy them by type.  Timers (retransmission, expiry) run in an sd-event
 * loop driven for a bounded time; the limits are shortened for that.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <sodium.h>
#include <systemd/sd-event.h>

#include "common/identity.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "daemon/peer-session.h"

#define MSEC(x) ((uint64_t) (x) * USEC_PER_MSEC)

typedef struct Fixture Fixture;

typedef struct Datagram {
	struct Side *to;
	Endpoint from;
	uint8_t *buf;
	size_t len;
} Datagram;

typedef struct DatagramList {
	Datagram *items;
	size_t head;
	size_t n;
	size_t allocated;
} DatagramList;

typedef struct Side {
	Fixture *f;
	struct Side *other;
	Identity *id;
	PeerSessions *sessions;
	Endpoint ep;

	char **got; /* delivered plaintexts, as strings */
	size_t n_got;
	size_t allocated_got;
	size_t n_failed;
	int last_error;
	size_t n_seen;

	bool refuse;       /* accept_peer() says no */
	unsigned drop[4];  /* drop the next n datagrams of each type we send */
	unsigned hold[4];  /* hold the next n datagrams of each type we send */
	bool hold_all;     /* hold whatever we send */
	unsigned sent[4];  /* datagrams sent, by type */
	int last_rc;       /* of the last datagram delivered to us */
} Side;

struct Fixture {
	sd_event *event;
	PeerSessionConfig config;
	Side alice;
	Side bob;
	DatagramList wire;
	DatagramList held;
	DatagramList captured; /* a copy of everything sent */
};

static void datagram_list_push(DatagramList *l, Side *to, const Endpoint *from, const uint8_t *buf,
		size_t len) {
	Datagram *d;

	assert_int_equal(GREEDY_REALLOC(l->items, l->allocated, l->n + 1), 0);
	d = &l->items[l->n++];
	d->to = to;
	d->from = *from;
	d->len = len;
	d->buf = malloc(MAX(len, (size_t) 1));
	assert_non_null(d->buf);
	memcpy(d->buf, buf, len);
}

static void datagram_list_clear(DatagramList *l) {
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].buf);
	}
	l->items = mfree(l->items);
	l->head = l->n = l->allocated = 0;
}

/* The i-th datagram still in @l (from its head). */
static Datagram *datagram_list_get(DatagramList *l, size_t i) {
	assert_true(l->head + i < l->n);
	return &l->items[l->head + i];
}

static size_t datagram_list_size(const DatagramList *l) {
	return l->n - l->head;
}

static int on_send(const Endpoint *to, const uint8_t *buf, size_t len, void *userdata) {
	Side *side = userdata;
	Fixture *f = side->f;
	unsigned type;

	assert_true(len > 0);
	assert_true(len <= WIRE_DATAGRAM_MAX);
	type = buf[0];
	assert_true(type >= 1 && type <= 3);
	side->sent[type]++;
	datagram_list_push(&f->captured, side->other, &side->ep, buf, len);

	if (!endpoint_equal(to, &side->other->ep)) {
		return 0; /* nobody there */
	}
	if (side->drop[type] > 0) {
		side->drop[type]--;
		return 0;
	}
	if (side->hold_all || side->hold[type] > 0) {
		if (side->hold[type] > 0) {
			side->hold[type]--;
		}
		datagram_list_push(&f->held, side->other, &side->ep, buf, len);
		return 0;
	}
	datagram_list_push(&f->wire, side->other, &side->ep, buf, len);
	return 0;
}

static bool on_accept_peer(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
		void *userdata) {
	Side *side = userdata;

	return !side->refuse;
}

static void on_seen(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
		void *userdata) {
	Side *side = userdata;

	assert_memory_equal(key, identity_get_public_key(side->other->id), PEER_SESSION_KEY_SIZE);
	side->n_seen++;
}

static void on_deliver(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
		const uint8_t *plain, size_t len, void *userdata) {
	Side *side = userdata;
	char *s;

	assert_memory_equal(key, identity_get_public_key(side->other->id), PEER_SESSION_KEY_SIZE);
	assert_true(endpoint_same_ip(from, &side->other->ep));
	assert_true(len > 0);
	s = strndup((const char *) plain, len);
	assert_non_null(s);
	assert_int_equal(GREEDY_REALLOC(side->got, side->allocated_got, side->n_got + 1), 0);
	side->got[side->n_got++] = s;
}

static void on_send_failed(const uint8_t key[static PEER_SESSION_KEY_SIZE], const uint8_t *plain,
		size_t len, int error, void *userdata) {
	Side *side = userdata;

	assert_true(len > 0);
	side->n_failed++;
	side->last_error = error;
}

static const PeerSessionCallbacks callbacks = {
	.send = on_send,
	.accept_peer = on_accept_peer,
	.seen = on_seen,
	.deliver = on_deliver,
	.send_failed = on_send_failed,
};

static void side_start(Fixture *f, Side *side) {
	side->sessions = peer_sessions_free(side->sessions);
	assert_int_equal(peer_sessions_new(f->event, side->id, &f->config, &callbacks, side,
			&side->sessions), 0);
}

/* Both sides again with f->config (after a test changed it). */
static void fixture_restart(Fixture *f) {
	side_start(f, &f->alice);
	side_start(f, &f->bob);
}

static void side_init(Fixture *f, Side *side, Side *other, const char *ip, uint16_t port) {
	side->f = f;
	side->other = other;
	assert_int_equal(identity_generate(&side->id), 0);
	side->ep.in.sin_family = AF_INET;
	side->ep.in.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &side->ep.in.sin_addr), 1);
}

static void side_done(Side *side) {
	side->sessions = peer_sessions_free(side->sessions);
	side->id = identity_free(side->id);
	for (size_t i = 0; i < side->n_got; i++) {
		free(side->got[i]);
	}
	free(side->got);
}

static int setup(void **state) {
	Fixture *f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(sd_event_new(&f->event), 0);
	peer_session_config_init(&f->config);
	f->config.retransmit_first_usec = MSEC(20);
	f->config.handshake_timeout_usec = MSEC(300);
	side_init(f, &f->alice, &f->bob, "127.0.0.1", 1001);
	side_init(f, &f->bob, &f->alice, "127.0.0.2", 1002);
	fixture_restart(f);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	side_done(&f->alice);
	side_done(&f->bob);
	datagram_list_clear(&f->wire);
	datagram_list_clear(&f->held);
	datagram_list_clear(&f->captured);
	sd_event_unref(f->event);
	free(f);
	return 0;
}

static int deliver(Datagram *d) {
	d->to->last_rc = peer_sessions_handle_datagram(d->to->sessions, &d->from, d->buf, d->len);
	return d->to->last_rc;
}

/* Delivers the wire's first datagram; false when it is empty. */
static bool deliver_one(Fixture *f) {
	Datagram d;

	if (datagram_list_size(&f->wire) == 0) {
		return false;
	}
	/* Ours now: what the delivery sends may move the list. */
	d = f->wire.items[f->wire.head];
	f->wire.items[f->wire.head++].buf = NULL;
	(void) deliver(&d);
	free(d.buf);
	return true;
}

/* Delivers until the wire is empty (what a delivery sends is delivered too). */
static void settle(Fixture *f) {
	while (deliver_one(f)) {
	}
}

/* Runs the timers and the wire for @usec. */
static void run(Fixture *f, uint64_t usec) {
	uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

	for (;;) {
		uint64_t now;

		settle(f);
		now = now_usec(CLOCK_MONOTONIC);
		if (now >= end) {
			break;
		}
		assert_true(sd_event_run(f->event, MIN(end - now, MSEC(2))) >= 0);
	}
	settle(f);
}

static int side_send(Side *side, const char *text) {
	return peer_sessions_send(side->sessions, identity_get_public_key(side->other->id),
			&side->other->ep, (const uint8_t *) text, strlen(text));
}

static size_t side_count(const Side *side, const char *text) {
	size_t n = 0;

	for (size_t i = 0; i < side->n_got; i++) {
		n += streq(side->got[i], text);
	}
	return n;
}

static PeerSessionStats side_stats(const Side *side) {
	PeerSessionStats st;

	peer_sessions_get_stats(side->sessions, &st);
	return st;
}

static bool side_established(const Side *side) {
	return peer_sessions_is_established(side->sessions,
			identity_get_public_key(side->other->id));
}

/* Pops the held datagram @i (the caller frees its buf). */
static Datagram take_held(Fixture *f, size_t i) {
	Datagram d = *datagram_list_get(&f->held, i);

	memmove(&f->held.items[f->held.head + i], &f->held.items[f->held.head + i + 1],
			(f->held.n - f->held.head - i - 1) * sizeof(Datagram));
	f->held.n--;
	return d;
}

/* alice says "hello" and the session is up both ways. */
static void establish(Fixture *f) {
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));
}

static void test_peer_session_first_message(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;

	assert_int_equal(side_send(&f->alice, "hello"), 0);
	/* One datagram on the wire: the initiation, which carries the plaintext. */
	assert_int_equal(datagram_list_size(&f->wire), 1);
	assert_int_equal(datagram_list_get(&f->wire, 0)->buf[0], PEER_SESSION_TYPE_INITIATION);
	assert_true(datagram_list_get(&f->wire, 0)->len >= PEER_SESSION_INITIATION_MIN + 5);
	assert_true(deliver_one(f));
	assert_int_equal(f->bob.last_rc, 1);
	assert_int_equal(f->bob.n_got, 1);
	assert_string_equal(f->bob.got[0], "hello");
	assert_false(side_established(&f->bob)); /* until alice confirms */

	/* The response, then alice's keepalive (nothing else queued). */
	assert_true(deliver_one(f));
	assert_int_equal(f->alice.last_rc, 1);
	assert_true(side_established(&f->alice));
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_TRANSPORT], 1);
	assert_true(deliver_one(f));
	assert_int_equal(f->bob.last_rc, 1);
	assert_true(side_established(&f->bob));
	assert_false(deliver_one(f));
	assert_int_equal(f->bob.n_got, 1); /* the keepalive is not delivered */

	st = side_stats(&f->bob);
	assert_int_equal(st.handshakes_completed, 1);
	assert_int_equal(st.handshakes_processed, 1);
	assert_int_equal(st.auth_failed + st.malformed + st.replayed + st.refused, 0);
	st = side_stats(&f->alice);
	assert_int_equal(st.handshakes_completed, 1);
	assert_int_equal(f->alice.n_seen, 1);
	assert_int_equal(f->bob.n_seen, 2);
}

static void test_peer_session_both_directions(void **state) {
	Fixture *f = *state;
	char buf[32];

	establish(f);
	for (unsigned i = 0; i < 5; i++) {
		(void) snprintf(buf, sizeof(buf), "a%u", i);
		assert_int_equal(side_send(&f->alice, buf), 0);
		(void) snprintf(buf, sizeof(buf), "b%u", i);
		assert_int_equal(side_send(&f->bob, buf), 0);
	}
	settle(f);
	assert_int_equal(f->bob.n_got, 6);
	assert_int_equal(f->alice.n_got, 5);
	for (unsigned i = 0; i < 5; i++) {
		(void) snprintf(buf, sizeof(buf), "a%u", i);
		assert_string_equal(f->bob.got[i + 1], buf);
		(void) snprintf(buf, sizeof(buf), "b%u", i);
		assert_string_equal(f->alice.got[i], buf);
	}
	/* Sent at once: one initiation in all, and a single handshake. */
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 1);
	assert_int_equal(f->bob.sent[PEER_SESSION_TYPE_INITIATION], 0);
}

static void test_peer_session_lost_initiation(void **state) {
	Fixture *f = *state;

	f->alice.drop[PEER_SESSION_TYPE_INITIATION] = 1;
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	assert_int_equal(side_send(&f->alice, "second"), 0);
	settle(f);
	assert_int_equal(f->bob.n_got, 0);
	run(f, MSEC(60));
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 2);
	assert_int_equal(f->bob.n_got, 2);
	assert_string_equal(f->bob.got[0], "hello");
	assert_string_equal(f->bob.got[1], "second");
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));
	assert_int_equal(f->alice.n_failed, 0);
}

static void test_peer_session_lost_response(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;

	f->bob.drop[PEER_SESSION_TYPE_RESPONSE] = 1;
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	assert_false(side_established(&f->alice));
	run(f, MSEC(60));
	/* The retransmitted initiation got the same response, and no second delivery. */
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 2);
	assert_int_equal(f->bob.sent[PEER_SESSION_TYPE_RESPONSE], 2);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));
	st = side_stats(&f->bob);
	assert_int_equal(st.handshakes_completed, 1);
	assert_int_equal(st.replayed, 0);
	assert_int_equal(f->alice.n_failed, 0);
}

static void test_peer_session_replayed_transport(void **state) {
	Fixture *f = *state;
	Datagram d;

	establish(f);
	f->alice.hold_all = true;
	assert_int_equal(side_send(&f->alice, "once"), 0);
	d = take_held(f, 0);
	assert_int_equal(deliver(&d), 1);
	assert_int_equal(deliver(&d), -ESTALE);
	assert_int_equal(deliver(&d), -ESTALE);
	free(d.buf);
	assert_int_equal(side_count(&f->bob, "once"), 1);
	assert_int_equal(side_stats(&f->bob).replayed, 2);
}

static void test_peer_session_replayed_initiation(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;
	Datagram *init;

	establish(f);
	assert_int_equal(side_send(&f->bob, "hi alice"), 0);
	settle(f);
	assert_int_equal(side_count(&f->alice, "hi alice"), 1);

	init = datagram_list_get(&f->captured, 0);
	assert_int_equal(init->buf[0], PEER_SESSION_TYPE_INITIATION);
	assert_int_equal(deliver(init), -ESTALE);
	assert_int_equal(deliver(init), -ESTALE);
	assert_int_equal(datagram_list_size(&f->wire), 0); /* not answered */
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	st = side_stats(&f->bob);
	assert_int_equal(st.replayed, 2);
	assert_int_equal(st.handshakes_completed, 1);

	/* The session was not reset. */
	assert_true(side_established(&f->bob));
	assert_int_equal(side_send(&f->alice, "after"), 0);
	assert_int_equal(side_send(&f->bob, "after too"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "after"), 1);
	assert_int_equal(side_count(&f->alice, "after too"), 1);
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 1);
}

static void test_peer_session_reordered(void **state) {
	Fixture *f = *state;
	char buf[32];
	size_t n;

	establish(f);
	f->alice.hold_all = true;
	for (unsigned i = 0; i < 100; i++) {
		(void) snprintf(buf, sizeof(buf), "m%u", i);
		assert_int_equal(side_send(&f->alice, buf), 0);
	}
	n = datagram_list_size(&f->held);
	assert_int_equal(n, 100);
	/* Odd ones first, backwards; then the even ones; then all again. */
	for (size_t i = n; i-- > 0;) {
		if (i % 2 == 1) {
			assert_int_equal(deliver(datagram_list_get(&f->held, i)), 1);
		}
	}
	for (size_t i = 0; i < n; i += 2) {
		assert_int_equal(deliver(datagram_list_get(&f->held, i)), 1);
	}
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(deliver(datagram_list_get(&f->held, i)), -ESTALE);
	}
	assert_int_equal(f->bob.n_got, 101);
	for (unsigned i = 0; i < 100; i++) {
		(void) snprintf(buf, sizeof(buf), "m%u", i);
		assert_int_equal(side_count(&f->bob, buf), 1);
	}
}

static void test_peer_session_window(void **state) {
	Fixture *f = *state;
	Datagram m0, m1;
	char buf[32];

	establish(f);
	f->alice.hold[PEER_SESSION_TYPE_TRANSPORT] = 2;
	assert_int_equal(side_send(&f->alice, "old0"), 0);
	assert_int_equal(side_send(&f->alice, "old1"), 0);
	m0 = take_held(f, 0);
	m1 = take_held(f, 0);
	/* 4,032 newer ones: old1 is at the window's edge, old0 just outside. */
	for (unsigned i = 0; i < 4032; i++) {
		(void) snprintf(buf, sizeof(buf), "n%u", i);
		assert_int_equal(side_send(&f->alice, buf), 0);
		settle(f);
	}
	assert_int_equal(f->bob.n_got, 1 + 4032);
	assert_int_equal(deliver(&m0), -ESTALE);
	assert_int_equal(deliver(&m1), 1);
	assert_int_equal(deliver(&m1), -ESTALE);
	assert_int_equal(side_count(&f->bob, "old0"), 0);
	assert_int_equal(side_count(&f->bob, "old1"), 1);
	assert_int_equal(side_stats(&f->bob).replayed, 2);
	free(m0.buf);
	free(m1.buf);
}

/* Bits to flip in a transport datagram, and what the receiver says. */
static const struct {
	size_t offset; /* from the start; SIZE_MAX: the last byte */
	uint8_t mask;
	int rc;
} tamper_table[] = {
	{ 0, 0x02, -EBADMSG },      /* type 3 -> 1: a short initiation */
	{ 1, 0x01, -ENOENT },       /* receiver index */
	{ 5, 0x02, -EBADMSG },      /* counter 1 -> 3: must not move the window */
	{ 9, 0x80, -EBADMSG },      /* counter + 2^39 */
	{ 13, 0x01, -EBADMSG },     /* ciphertext */
	{ SIZE_MAX, 0x80, -EBADMSG }, /* tag */
};

static void test_peer_session_tampered_transport(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;
	Datagram d;

	establish(f);
	f->alice.hold_all = true;
	assert_int_equal(side_send(&f->alice, "intact"), 0);
	d = take_held(f, 0);
	for (size_t i = 0; i < ELEMENTSOF(tamper_table); i++) {
		size_t at = tamper_table[i].offset == SIZE_MAX ? d.len - 1 : tamper_table[i].offset;

		d.buf[at] ^= tamper_table[i].mask;
		assert_int_equal(deliver(&d), tamper_table[i].rc);
		d.buf[at] ^= tamper_table[i].mask;
	}
	st = side_stats(&f->bob);
	assert_int_equal(st.auth_failed, 4);
	assert_int_equal(st.malformed, 1);
	assert_int_equal(st.unknown_index, 1);
	assert_int_equal(f->bob.n_got, 1);

	/* Nothing moved: the original and the ones after it still arrive. */
	assert_int_equal(deliver(&d), 1);
	free(d.buf);
	f->alice.hold_all = false;
	assert_int_equal(side_send(&f->alice, "next"), 0);
	assert_int_equal(side_send(&f->bob, "back"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "intact"), 1);
	assert_int_equal(side_count(&f->bob, "next"), 1);
	assert_int_equal(side_count(&f->alice, "back"), 1);
}

static void test_peer_session_tampered_handshake(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;
	Datagram init, resp;

	f->alice.hold[PEER_SESSION_TYPE_INITIATION] = 1;
	f->bob.hold[PEER_SESSION_TYPE_RESPONSE] = 1;
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	init = take_held(f, 0);

	/* The initiation: its sender index (repeated inside), e, s, payload. */
	for (size_t at = 1; at < init.len; at += 37) {
		init.buf[at] ^= 0x04;
		assert_int_equal(deliver(&init), -EBADMSG);
		init.buf[at] ^= 0x04;
	}
	st = side_stats(&f->bob);
	assert_int_equal(st.auth_failed, (init.len - 2) / 37 + 1);
	assert_int_equal(f->bob.n_got, 0);
	assert_int_equal(deliver(&init), 1);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	free(init.buf);

	/* The response: a forged one must not spoil alice's handshake. */
	resp = take_held(f, 0);
	assert_int_equal(resp.len, PEER_SESSION_RESPONSE_SIZE);
	for (size_t at = 1; at < resp.len; at += 4) {
		resp.buf[at] ^= 0x10;
		assert_true(deliver(&resp) < 0);
		resp.buf[at] ^= 0x10;
	}
	assert_false(side_established(&f->alice));
	assert_int_equal(deliver(&resp), 1);
	free(resp.buf);
	settle(f);
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));
	st = side_stats(&f->alice);
	assert_true(st.auth_failed >= 15);
	assert_int_equal(st.handshakes_completed, 1);
}

static void test_peer_session_refused(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;

	f->bob.refuse = true;
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	run(f, MSEC(400));
	assert_int_equal(f->bob.n_got, 0);
	assert_int_equal(f->bob.last_rc, -EPERM);
	st = side_stats(&f->bob);
	assert_int_equal(st.refused, 1 + f->config.retransmit_max);
	assert_int_equal(f->bob.sent[PEER_SESSION_TYPE_RESPONSE], 0);
	assert_int_equal(f->alice.n_failed, 1);
	assert_int_equal(f->alice.last_error, -ETIMEDOUT);
}

static void test_peer_session_wrong_key(void **state) {
	Fixture *f = *state;
	_cleanup_(identity_freep) Identity *carol = NULL;
	const uint8_t *key;
	PeerSessionStats st;

	/* alice thinks carol is at bob's address. */
	assert_int_equal(identity_generate(&carol), 0);
	key = identity_get_public_key(carol);
	assert_int_equal(peer_sessions_send(f->alice.sessions, key, &f->bob.ep,
			(const uint8_t *) "one", 3), 0);
	assert_int_equal(peer_sessions_send(f->alice.sessions, key, &f->bob.ep,
			(const uint8_t *) "two", 3), 0);
	run(f, MSEC(400));
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 1 + f->config.retransmit_max);
	st = side_stats(&f->bob);
	assert_int_equal(st.auth_failed, 1 + f->config.retransmit_max);
	assert_int_equal(f->bob.n_got, 0);
	assert_int_equal(f->alice.n_failed, 2);
	assert_int_equal(f->alice.last_error, -ETIMEDOUT);
	assert_int_equal(side_stats(&f->alice).handshakes_failed, 1);
	/* Nothing armed any more: an idle loop. */
	assert_int_equal(sd_event_run(f->event, 0), 0);
}

/* Lower and higher key of the two sides. */
static void sides_by_key(Fixture *f, Side **ret_low, Side **ret_high) {
	bool alice_low = memcmp(identity_get_public_key(f->alice.id),
			identity_get_public_key(f->bob.id), PEER_SESSION_KEY_SIZE) < 0;

	*ret_low = alice_low ? &f->alice : &f->bob;
	*ret_high = alice_low ? &f->bob : &f->alice;
}

static void check_simultaneous_delivery(Fixture *f) {
	assert_int_equal(f->bob.n_got, 2);
	assert_string_equal(f->bob.got[0], "a1");
	assert_string_equal(f->bob.got[1], "a2");
	assert_int_equal(f->alice.n_got, 2);
	assert_string_equal(f->alice.got[0], "b1");
	assert_string_equal(f->alice.got[1], "b2");
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));
	assert_int_equal(f->alice.n_failed + f->bob.n_failed, 0);
}

static void test_peer_session_simultaneous(void **state) {
	Fixture *f = *state;
	Side *low, *high;

	sides_by_key(f, &low, &high);
	assert_int_equal(side_send(&f->alice, "a1"), 0);
	assert_int_equal(side_send(&f->alice, "a2"), 0);
	assert_int_equal(side_send(&f->bob, "b1"), 0);
	assert_int_equal(side_send(&f->bob, "b2"), 0);
	assert_int_equal(datagram_list_size(&f->wire), 2);
	settle(f);
	check_simultaneous_delivery(f);
	/* One session: the lower key's initiation. */
	assert_int_equal(side_stats(low).handshakes_completed, 1);
	assert_int_equal(side_stats(high).handshakes_completed, 1);
	assert_int_equal(low->sent[PEER_SESSION_TYPE_RESPONSE], 0);
	assert_int_equal(high->sent[PEER_SESSION_TYPE_RESPONSE], 1);

	/* Still nothing more after the timers had their turn. */
	run(f, MSEC(100));
	check_simultaneous_delivery(f);
}

static void test_peer_session_simultaneous_late(void **state) {
	Fixture *f = *state;
	Side *low, *high;
	Datagram late;

	/* The higher key's initiation arrives only after the session is up. */
	sides_by_key(f, &low, &high);
	high->hold[PEER_SESSION_TYPE_INITIATION] = 1;
	assert_int_equal(side_send(&f->alice, "a1"), 0);
	assert_int_equal(side_send(&f->alice, "a2"), 0);
	assert_int_equal(side_send(&f->bob, "b1"), 0);
	assert_int_equal(side_send(&f->bob, "b2"), 0);
	settle(f);
	check_simultaneous_delivery(f);

	late = take_held(f, 0);
	assert_int_equal(late.buf[0], PEER_SESSION_TYPE_INITIATION);
	assert_int_equal(deliver(&late), -ESTALE);
	free(late.buf);
	settle(f);
	check_simultaneous_delivery(f);
	assert_int_equal(side_stats(low).replayed, 1);
}

static void test_peer_session_rekey_messages(void **state) {
	Fixture *f = *state;
	PeerSessionStats a, b;
	Datagram held;
	char buf[32];

	f->config.rekey_after_messages = 10;
	f->config.reject_after_messages = 40;
	fixture_restart(f);
	establish(f);

	for (unsigned i = 0; i < 100; i++) {
		/* One from the old session arrives after the switch. */
		if (i == 15) {
			f->alice.hold[PEER_SESSION_TYPE_TRANSPORT] = 1;
		}
		(void) snprintf(buf, sizeof(buf), "a%u", i);
		assert_int_equal(side_send(&f->alice, buf), 0);
		if (i % 3 == 0) {
			(void) snprintf(buf, sizeof(buf), "b%u", i);
			assert_int_equal(side_send(&f->bob, buf), 0);
		}
		if (i % 7 != 0) {
			settle(f);
		}
		/* Late, but at most one rekey late: `previous` still has it. */
		if (i == 17) {
			assert_int_equal(datagram_list_size(&f->held), 1);
			held = take_held(f, 0);
			assert_int_equal(deliver(&held), 1);
			free(held.buf);
		}
	}
	settle(f);

	for (unsigned i = 0; i < 100; i++) {
		(void) snprintf(buf, sizeof(buf), "a%u", i);
		assert_int_equal(side_count(&f->bob, buf), 1);
		if (i % 3 == 0) {
			(void) snprintf(buf, sizeof(buf), "b%u", i);
			assert_int_equal(side_count(&f->alice, buf), 1);
		}
	}
	assert_int_equal(f->alice.n_failed + f->bob.n_failed, 0);
	a = side_stats(&f->alice);
	b = side_stats(&f->bob);
	assert_true(a.handshakes_completed + b.handshakes_completed >= 2 * 8);
	assert_int_equal(a.auth_failed + b.auth_failed + a.expired + b.expired, 0);
	assert_int_equal(a.replayed + b.replayed, 0);
}

static void test_peer_session_rekey_time(void **state) {
	Fixture *f = *state;
	PeerSessionStats a, b;
	char buf[32];
	unsigned n = 0;

	f->config.rekey_after_usec = MSEC(100);
	f->config.reject_after_usec = MSEC(250);
	fixture_restart(f);
	establish(f);

	for (uint64_t end = now_usec(CLOCK_MONOTONIC) + MSEC(800); now_usec(CLOCK_MONOTONIC) < end;) {
		(void) snprintf(buf, sizeof(buf), "a%u", n);
		assert_int_equal(side_send(&f->alice, buf), 0);
		(void) snprintf(buf, sizeof(buf), "b%u", n);
		assert_int_equal(side_send(&f->bob, buf), 0);
		n++;
		run(f, MSEC(10));
	}
	for (unsigned i = 0; i < n; i++) {
		(void) snprintf(buf, sizeof(buf), "a%u", i);
		assert_int_equal(side_count(&f->bob, buf), 1);
		(void) snprintf(buf, sizeof(buf), "b%u", i);
		assert_int_equal(side_count(&f->alice, buf), 1);
	}
	a = side_stats(&f->alice);
	b = side_stats(&f->bob);
	assert_true(a.handshakes_completed + b.handshakes_completed >= 2 * 3);

	/* Idle past reject_after: the keys are gone, and a send starts afresh. */
	run(f, MSEC(300));
	assert_false(side_established(&f->alice));
	assert_false(side_established(&f->bob));
	assert_int_equal(sd_event_run(f->event, 0), 0);
	assert_int_equal(side_send(&f->bob, "later"), 0);
	settle(f);
	assert_int_equal(side_count(&f->alice, "later"), 1);
	assert_int_equal(f->alice.n_failed + f->bob.n_failed, 0);
}

static void test_peer_session_forget(void **state) {
	Fixture *f = *state;
	const uint8_t *alice_key = identity_get_public_key(f->alice.id);
	const uint8_t *bob_key = identity_get_public_key(f->bob.id);

	f->config.rekey_unanswered_usec = MSEC(50);
	fixture_restart(f);
	establish(f);

	/* alice forgets bob: a send makes a new session. */
	peer_sessions_forget(f->alice.sessions, bob_key);
	assert_false(side_established(&f->alice));
	assert_int_equal(side_send(&f->alice, "again"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "again"), 1);
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 2);
	assert_true(side_established(&f->alice));
	assert_true(side_established(&f->bob));

	/* bob forgets alice, who does not know: her next send is lost... */
	peer_sessions_forget(f->bob.sessions, alice_key);
	assert_false(side_established(&f->bob));
	assert_int_equal(side_send(&f->alice, "lost"), 0);
	settle(f);
	assert_int_equal(f->bob.last_rc, -ENOENT);
	assert_int_equal(side_stats(&f->bob).unknown_index, 1);
	/* ...and one after a silence goes with a new handshake. */
	run(f, MSEC(60));
	assert_int_equal(side_send(&f->alice, "retry"), 0);
	settle(f);
	assert_int_equal(side_count(&f->bob, "retry"), 1);
	assert_int_equal(side_count(&f->bob, "lost"), 0);
	assert_int_equal(f->alice.sent[PEER_SESSION_TYPE_INITIATION], 3);
	assert_true(side_established(&f->bob));

	/* A forgotten peer's old initiation is still a replay. */
	peer_sessions_forget(f->bob.sessions, alice_key);
	assert_int_equal(deliver(datagram_list_get(&f->captured, 0)), -ESTALE);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
}

static void test_peer_session_rate_limit(void **state) {
	Fixture *f = *state;
	PeerSessionStats st;
	Datagram init;
	uint64_t start, elapsed;
	double bound;

	f->alice.hold[PEER_SESSION_TYPE_INITIATION] = 1;
	assert_int_equal(side_send(&f->alice, "hello"), 0);
	init = take_held(f, 0);

	/* 1,000 initiations from one address. */
	start = now_usec(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < 1000; i++) {
		init.from.in.sin_port = htons(1000 + i);
		(void) deliver(&init);
	}
	elapsed = now_usec(CLOCK_MONOTONIC) - start;
	st = side_stats(&f->bob);
	bound = f->config.hs_burst_per_ip + f->config.hs_rate_per_ip * (double) elapsed / USEC_PER_SEC;
	assert_true(st.handshakes_processed >= 1);
	assert_true((double) st.handshakes_processed <= bound + 1);
	assert_int_equal(st.handshakes_processed + st.rate_limited, 1000);
	assert_int_equal(side_count(&f->bob, "hello"), 1);

	/* 2,000 more from as many addresses: the overall bucket holds. */
	for (unsigned i = 0; i < 2000; i++) {
		init.from.in.sin_addr.s_addr = htonl(0x0a000000u + i);
		(void) deliver(&init);
	}
	elapsed = now_usec(CLOCK_MONOTONIC) - start;
	st = side_stats(&f->bob);
	bound = f->config.hs_burst_total + f->config.hs_rate_total * (double) elapsed / USEC_PER_SEC;
	assert_true((double) st.handshakes_processed <= bound + 1);
	assert_int_equal(st.handshakes_processed + st.rate_limited, 3000);
	assert_int_equal(side_count(&f->bob, "hello"), 1);
	free(init.buf);
}

static void test_peer_session_not_ours(void **state) {
	Fixture *f = *state;
	static const struct {
		const char *buf;
		size_t len;
		int rc;
	} table[] = {
		{ "", 0, 0 },
		{ "{\"type\":\"msg\"}", 14, 0 },
		{ "l\0o\0g\0", 6, 0 },           /* UTF-16LE text */
		{ "\xff\xfel\0", 4, 0 },         /* UTF-16LE with a BOM */
		{ "\x04xxxxxxxxxxxxxxxxxxxx", 21, 0 },
		{ "\x01", 1, -EBADMSG },
		{ "\x02xxxxxxxxxxxx", 13, -EBADMSG },
		{ "\x03xxxxxxxxxxxx", 13, -EBADMSG },
	};
	uint8_t big[PEER_SESSION_RESPONSE_SIZE] = { PEER_SESSION_TYPE_RESPONSE };
	uint8_t transport[PEER_SESSION_TRANSPORT_MIN] = { PEER_SESSION_TYPE_TRANSPORT };
	PeerSessionStats st;

	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		assert_int_equal(peer_sessions_handle_datagram(f->bob.sessions, &f->alice.ep,
				(const uint8_t *) table[i].buf, table[i].len), table[i].rc);
	}
	assert_int_equal(peer_sessions_handle_datagram(f->bob.sessions, &f->alice.ep, big,
			sizeof(big)), -ENOENT);
	assert_int_equal(peer_sessions_handle_datagram(f->bob.sessions, &f->alice.ep, transport,
			sizeof(transport)), -ENOENT);
	st = side_stats(&f->bob);
	assert_int_equal(st.malformed, 3);
	assert_int_equal(st.unknown_index, 2);
	assert_int_equal(st.handshakes_processed, 0);
	assert_int_equal(f->bob.sent[1] + f->bob.sent[2] + f->bob.sent[3], 0);
}

static void test_peer_session_limits(void **state) {
	Fixture *f = *state;
	PeerSessionConfig c = f->config;
	_cleanup_(peer_sessions_freep) PeerSessions *s = NULL;
	_cleanup_(identity_freep) Identity *carol = NULL;
	_cleanup_free_ uint8_t *large = NULL;
	uint8_t bad_key[PEER_SESSION_KEY_SIZE];
	Endpoint nowhere = f->bob.ep;
	char buf[32];

	c.reject_after_usec = c.rekey_after_usec;
	assert_int_equal(peer_sessions_new(f->event, f->alice.id, &c, &callbacks, &f->alice, &s),
			-EINVAL);
	c = f->config;
	c.hs_rate_total = 0;
	assert_int_equal(peer_sessions_new(f->event, f->alice.id, &c, &callbacks, &f->alice, &s),
			-EINVAL);
	assert_null(s);

	assert_int_equal(peer_sessions_send(f->alice.sessions, identity_get_public_key(f->bob.id),
			&f->bob.ep, (const uint8_t *) "", 0), -EINVAL);
	/* Not a point of the curve: no X25519 form. */
	memset(bad_key, 0xff, sizeof(bad_key));
	bad_key[31] = 0x7f;
	assert_int_equal(peer_sessions_send(f->alice.sessions, bad_key, &f->bob.ep,
			(const uint8_t *) "x", 1), -EINVAL);

	/* The largest plaintext fits an initiation and a transport message. */
	large = malloc(PEER_SESSION_PLAINTEXT_MAX + 1);
	assert_non_null(large);
	memset(large, 'L', PEER_SESSION_PLAINTEXT_MAX + 1);
	assert_int_equal(peer_sessions_send(f->alice.sessions, identity_get_public_key(f->bob.id),
			&f->bob.ep, large, PEER_SESSION_PLAINTEXT_MAX + 1), -EMSGSIZE);
	assert_int_equal(peer_sessions_send(f->alice.sessions, identity_get_public_key(f->bob.id),
			&f->bob.ep, large, PEER_SESSION_PLAINTEXT_MAX), 0);
	assert_int_equal(datagram_list_get(&f->wire, 0)->len, WIRE_DATAGRAM_MAX);
	settle(f);
	assert_int_equal(peer_sessions_send(f->alice.sessions, identity_get_public_key(f->bob.id),
			&f->bob.ep, large, PEER_SESSION_PLAINTEXT_MAX), 0);
	settle(f);
	assert_int_equal(f->bob.n_got, 2);
	assert_int_equal(strlen(f->bob.got[0]), PEER_SESSION_PLAINTEXT_MAX);
	assert_int_equal(strlen(f->bob.got[1]), PEER_SESSION_PLAINTEXT_MAX);

	/* A queue for a peer that never answers is bounded. */
	assert_int_equal(identity_generate(&carol), 0);
	nowhere.in.sin_port = htons(9);
	for (unsigned i = 0; i < PEER_SESSION_QUEUE_MAX; i++) {
		(void) snprintf(buf, sizeof(buf), "q%u", i);
		assert_int_equal(peer_sessions_send(f->bob.sessions, identity_get_public_key(carol),
				&nowhere, (const uint8_t *) buf, strlen(buf)), 0);
	}
	assert_int_equal(peer_sessions_send(f->bob.sessions, identity_get_public_key(carol),
			&nowhere, (const uint8_t *) "full", 4), -ENOBUFS);
	run(f, MSEC(400));
	assert_int_equal(f->bob.n_failed, PEER_SESSION_QUEUE_MAX);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_peer_session_first_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_both_directions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_lost_initiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_lost_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_replayed_transport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_replayed_initiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_reordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_tampered_transport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_tampered_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_simultaneous, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_simultaneous_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_rekey_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_rekey_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_not_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_session_limits, setup, teardown),
	};

	if (identity_crypto_init() < 0) {
		return EXIT_FAILURE;
	}
	return cmocka_run_group_tests_name("daemon-peer-session", tests, NULL, NULL);
}
