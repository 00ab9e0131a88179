/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/presence.c without sockets: a test double stands
 * in for the owner and records every frame, datagram and dropped session it
 * is told about.  Logins, duplicate names, re-logins, logouts (and
 * "lohout") only from the login address, leases, session hellos and their
 * replacement, a native user's name kept from reference logins, the probes
 * of reference clients (who, when, how many, what a report means) and the
 * fan-out of each change to the others.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/presence.h"

#define RECORDS_MAX 64
#define TEXT_MAX 256

/* Session handles are only compared, never followed. */
static int session_a, session_b;
#define SESSION_A ((void *) &session_a)
#define SESSION_B ((void *) &session_b)

typedef struct Record {
	void *session;       /* frames and drops */
	Endpoint dest;       /* datagrams */
	WireEncoding enc;    /* datagrams */
	char text[TEXT_MAX]; /* frames and datagrams, as UTF-8 */
} Record;

typedef struct Fixture {
	sd_event *event;
	Presence *presence;
	Record frames[RECORDS_MAX];
	size_t n_frames;
	Record datagrams[RECORDS_MAX];
	size_t n_datagrams;
	Record drops[RECORDS_MAX];
	size_t n_drops;
	Record probes[RECORDS_MAX];
	size_t n_probes;
	int datagram_error; /* send_datagram() returns this when set */
} Fixture;

static void on_send_frame(void *session, const char *text, size_t len, void *userdata) {
	Fixture *f = userdata;
	Record *r;

	assert_true(f->n_frames < RECORDS_MAX);
	assert_true(len < TEXT_MAX);
	r = &f->frames[f->n_frames++];
	r->session = session;
	memcpy(r->text, text, len);
	r->text[len] = '\0';
}

static int on_send_datagram(const Endpoint *dest, const uint8_t *buf, size_t len,
		void *userdata) {
	Fixture *f = userdata;
	_cleanup_free_ char *text = NULL;
	size_t n;
	Record *r;

	if (f->datagram_error < 0) {
		return f->datagram_error;
	}
	assert_true(f->n_datagrams < RECORDS_MAX);
	r = &f->datagrams[f->n_datagrams++];
	r->dest = *dest;
	assert_int_equal(wire_decode_datagram(buf, len, &r->enc, &text, &n), 0);
	assert_true(n < TEXT_MAX);
	memcpy(r->text, text, n + 1);
	return 0;
}

static void on_drop_session(void *session, void *userdata) {
	Fixture *f = userdata;

	assert_true(f->n_drops < RECORDS_MAX);
	f->drops[f->n_drops++].session = session;
}

static int on_send_probe(const Endpoint *dest, void *userdata) {
	Fixture *f = userdata;

	assert_true(f->n_probes < RECORDS_MAX);
	f->probes[f->n_probes++].dest = *dest;
	return 0;
}

static const PresenceCallbacks callbacks = {
	.send_frame = on_send_frame,
	.send_datagram = on_send_datagram,
	.drop_session = on_drop_session,
	.send_probe = on_send_probe,
};

static const PresenceConfig default_config = {
	.limits = {
		.max_users = 4,
		.login_rate = 0,
		.login_burst = 1,
		.max_conns_per_ip = 4,
		.max_ips = 16,
	},
	.lease = 20 * USEC_PER_MSEC,
	.session_wait = 20 * USEC_PER_MSEC,
};

/* Replaces the fixture's presence with one under @config; forgets the records. */
static void fixture_restart(Fixture *f, const PresenceConfig *config) {
	f->presence = presence_free(f->presence);
	f->n_frames = f->n_datagrams = f->n_drops = f->n_probes = 0;
	assert_int_equal(presence_new(f->event, config, &callbacks, f, &f->presence), 0);
}

static void fixture_forget(Fixture *f) {
	f->n_frames = f->n_datagrams = f->n_drops = f->n_probes = 0;
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	assert_int_equal(sd_event_new(&f->event), 0);
	fixture_restart(f, &default_config);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	presence_free(f->presence);
	sd_event_unref(f->event);
	free(f);
	return 0;
}

static Endpoint ep(const char *s) {
	Endpoint e;

	assert_int_equal(endpoint_parse(s, strlen(s), &e), 0);
	return e;
}

static WireMessage msg(const char *line) {
	WireMessage m = {};

	assert_int_equal(wire_parse_line(line, strlen(line), &m), 0);
	return m;
}

static PresenceReply login_enc(Fixture *f, const char *line, WireEncoding enc,
		const char *source) {
	WireMessage m = msg(line);
	Endpoint src = ep(source);

	return presence_login(f->presence, &m, enc, &src);
}

static PresenceReply login(Fixture *f, const char *line, const char *source) {
	return login_enc(f, line, WIRE_ENCODING_UTF8, source);
}

static void logout(Fixture *f, const char *line, const char *source) {
	WireMessage m = msg(line);
	Endpoint src = ep(source);

	presence_logout(f->presence, &m, &src);
}

static int hello(Fixture *f, void *session, const char *name, const char *peer, User **ret) {
	char line[128];
	WireMessage m;
	Endpoint p = ep(peer);

	(void) snprintf(line, sizeof(line), "hello,%s,native1", name);
	m = msg(line);
	return presence_hello(f->presence, session, &p, &m, ret);
}

static User *find(Fixture *f, const char *name) {
	return registry_find(presence_get_registry(f->presence), name);
}

static size_t n_users(Fixture *f) {
	return registry_n_users(presence_get_registry(f->presence));
}

static void assert_datagram(const Fixture *f, size_t i, const char *dest, const char *text) {
	Endpoint d = ep(dest);

	assert_true(i < f->n_datagrams);
	assert_true(endpoint_equal(&f->datagrams[i].dest, &d));
	assert_string_equal(f->datagrams[i].text, text);
}

static void assert_frame(const Fixture *f, size_t i, void *session, const char *text) {
	assert_true(i < f->n_frames);
	assert_ptr_equal(f->frames[i].session, session);
	assert_string_equal(f->frames[i].text, text);
}

/* Runs the loop until @name is gone or 2 s passed. */
static void run_until_gone(Fixture *f, const char *name) {
	for (int i = 0; i < 400 && find(f, name); i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
}

static void test_presence_reply_reasons(void **state) {
	static const struct {
		PresenceReply reply;
		const char *reason;
	} table[] = {
		{ PRESENCE_REPLY_NONE, NULL },
		{ PRESENCE_REPLY_ACCEPT, NULL },
		{ PRESENCE_REPLY_NAME_TAKEN, "name-taken" },
		{ PRESENCE_REPLY_FULL, "full" },
		{ _PRESENCE_REPLY_INVALID, NULL },
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		const char *reason = presence_reply_to_reason(table[i].reply);

		if (table[i].reason) {
			assert_string_equal(reason, table[i].reason);
		} else {
			assert_null(reason);
		}
	}
}

static void test_presence_login_forwards_to_others(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 1);

	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Only alice hears of bob, with his caps; bob gets the list on his session. */
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,bob,127.0.0.1:9002,native1");
	assert_int_equal(f->n_frames, 0);
	assert_int_equal(f->n_drops, 0);
	assert_int_equal(n_users(f), 2);
}

static void test_presence_forward_in_each_encoding(void **state) {
	Fixture *f = *state;

	assert_int_equal(login_enc(f, "login,u16,127.0.0.1:9001", WIRE_ENCODING_UTF16LE,
			"127.0.0.1:40001"), PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,u8,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Declared a foreign IP: announced by its source, reached only by session. */
	assert_int_equal(login(f, "login,nat,203.0.113.7:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	assert_int_equal(login(f, "login,carol,127.0.0.1:9004", "127.0.0.1:40004"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 2);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,carol,127.0.0.1:9004");
	assert_int_equal(f->datagrams[0].enc, WIRE_ENCODING_UTF16LE);
	assert_datagram(f, 1, "127.0.0.1:9002", "login,carol,127.0.0.1:9004");
	assert_int_equal(f->datagrams[1].enc, WIRE_ENCODING_UTF8);

	/* Others learn of nat at the address its login came from. */
	fixture_forget(f);
	logout(f, "logout,nat,203.0.113.7:9003", "127.0.0.1:40003");
	assert_null(find(f, "nat"));
	assert_int_equal(f->n_datagrams, 3);
	assert_datagram(f, 0, "127.0.0.1:9001", "logout,nat,127.0.0.1:40003");
}

static void test_presence_duplicate_name_rejected(void **state) {
	Fixture *f = *state;
	Endpoint source = ep("127.0.0.1:40001");

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	assert_int_equal(login(f, "login,alice,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 2);
	assert_true(endpoint_equal(user_get_source(find(f, "alice")), &source));
}

static void test_presence_relogin_from_same_address(void **state) {
	Fixture *f = *state;
	User *alice;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	alice = find(f, "alice");
	fixture_forget(f);

	/* The same login again only renews the lease: nobody is told. */
	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40009"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_ptr_equal(find(f, "alice"), alice);

	/* A new endpoint from the same IP replaces the user: logout, then login. */
	assert_int_equal(login(f, "login,alice,127.0.0.1:9005", "127.0.0.1:40005"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 2);
	assert_datagram(f, 0, "127.0.0.1:9002", "logout,alice,127.0.0.1:9001");
	assert_datagram(f, 1, "127.0.0.1:9002", "login,alice,127.0.0.1:9005");
	assert_int_equal(n_users(f), 2);
}

static void test_presence_logout_only_from_login_address(void **state) {
	static const struct {
		const char *line, *source;
		bool counts;
	} table[] = {
		{ "logout,alice,127.0.0.1:9001", "127.0.0.9:40001", false }, /* other IP */
		{ "logout,alice,127.0.0.1:9009", "127.0.0.1:40001", false }, /* other endpoint */
		{ "logout,nobody,127.0.0.1:9001", "127.0.0.1:40001", false },
		{ "logout,alice,127.0.0.1:9001", "127.0.0.1:40077", true }, /* any port */
	};
	Fixture *f = *state;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);

	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		fixture_forget(f);
		logout(f, table[i].line, table[i].source);
		assert_int_equal(!find(f, "alice"), table[i].counts);
		assert_int_equal(f->n_datagrams, table[i].counts ? 1 : 0);
	}
	assert_datagram(f, 0, "127.0.0.2:9002", "logout,alice,127.0.0.1:9001");
}

static void test_presence_lohout_counts_as_logout(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	logout(f, "lohout,alice,127.0.0.1:9001", "127.0.0.1:40001");
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9002", "logout,alice,127.0.0.1:9001");
}

static void test_presence_full(void **state) {
	Fixture *f = *state;
	PresenceConfig config = default_config;

	config.limits.max_users = 2;
	fixture_restart(f, &config);
	assert_int_equal(login(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);
	assert_int_equal(login(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_FULL);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 2);
}

static void test_presence_rate_limit(void **state) {
	Fixture *f = *state;
	PresenceConfig config = default_config;

	config.limits.login_rate = 1;
	config.limits.login_burst = 2;
	fixture_restart(f, &config);
	assert_int_equal(login(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Over the rate: dropped without an answer, whatever the login. */
	assert_int_equal(login(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_NONE);
	assert_null(find(f, "c"));
	/* Another IP has its own bucket. */
	assert_int_equal(login(f, "login,c,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_ACCEPT);
}

static void test_presence_lease_expires(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "bob", "127.0.0.1:50000", &(User *) { NULL }), 0);
	fixture_forget(f);

	/* alice's lease runs out and bob hears of it; bob's session keeps him. */
	run_until_gone(f, "alice");
	assert_null(find(f, "alice"));
	assert_non_null(find(f, "bob"));
	assert_int_equal(f->n_frames, 1);
	assert_frame(f, 0, SESSION_A, "logout,alice,127.0.0.1:9001");
	assert_int_equal(f->n_drops, 0);
}

static void test_presence_native_login_waits_for_session(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* A native login without its session is not sent datagrams, and goes. */
	assert_int_equal(login(f, "login,carol,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,carol,127.0.0.1:9003");
	run_until_gone(f, "bob");
	assert_null(find(f, "bob"));
}

static void test_presence_hello_binds_session(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);

	/* Only from the IP alice logged in from, and only for a user online. */
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.2:50000", &u), -EPERM);
	assert_int_equal(hello(f, SESSION_A, "nobody", "127.0.0.1:50000", &u), -EPERM);
	assert_null(u);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);

	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);
	assert_ptr_equal(u, find(f, "alice"));
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 1);

	/* From now on alice hears by session, in order. */
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	logout(f, "logout,bob,127.0.0.1:9002", "127.0.0.1:40002");
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(f->n_frames, 2);
	assert_frame(f, 0, SESSION_A, "login,bob,127.0.0.1:9002");
	assert_frame(f, 1, SESSION_A, "logout,bob,127.0.0.1:9002");

	/* The session wait no longer applies. */
	for (int i = 0; i < 10; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
	assert_non_null(find(f, "alice"));
}

static void test_presence_hello_replaces_session(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);
	assert_int_equal(hello(f, SESSION_B, "alice", "127.0.0.1:50001", &u), 0);

	/* The old session is dropped, the user stays, nobody is told. */
	assert_int_equal(f->n_drops, 1);
	assert_ptr_equal(f->drops[0].session, SESSION_A);
	assert_ptr_equal(user_get_session(u), SESSION_B);
	assert_int_equal(presence_get_n_sessions(f->presence), 1);
	assert_int_equal(f->n_datagrams + f->n_frames, 0);

	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_frames, 1);
	assert_frame(f, 0, SESSION_B, "login,bob,127.0.0.1:9002");
}

static void test_presence_session_logout(void **state) {
	Fixture *f = *state;
	WireMessage other = msg("logout,bob,127.0.0.1:9002");
	WireMessage own = msg("logout,alice,127.0.0.1:9001");
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);
	fixture_forget(f);

	/* A session logs out only its own user. */
	presence_session_logout(f->presence, u, &other);
	assert_non_null(find(f, "bob"));
	assert_int_equal(f->n_drops + f->n_datagrams, 0);

	presence_session_logout(f->presence, u, &own);
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_drops, 1);
	assert_ptr_equal(f->drops[0].session, SESSION_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9002", "logout,alice,127.0.0.1:9001");
}

static void test_presence_logout_drops_session(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);

	logout(f, "logout,alice,127.0.0.1:9001", "127.0.0.1:40001");
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_drops, 1);
	assert_ptr_equal(f->drops[0].session, SESSION_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
}

static void test_presence_session_closed(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);
	fixture_forget(f);

	/* The owner closed the session: alice goes, the session is not dropped again. */
	presence_session_closed(f->presence, u, "end of stream");
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_drops, 0);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9002", "logout,alice,127.0.0.1:9001");
}

static void test_presence_shutdown_is_silent(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", &u), 0);
	fixture_forget(f);

	presence_shutdown(f->presence);
	presence_session_closed(f->presence, u, "session closed");
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
}

static void test_presence_failed_datagram_stops_fan_out(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* The login itself stands; only its forwards are dropped. */
	f->datagram_error = -ENOBUFS;
	assert_int_equal(login(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_non_null(find(f, "c"));
	assert_int_equal(f->n_datagrams, 0);
}

static void test_presence_native_name_kept_from_reference_login(void **state) {
	Fixture *f = *state;
	User *bob = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* Waiting for its session, then holding it: a reference login for the
	 * name from the same IP is refused, and nobody hears of anything. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(login_enc(f, "login,bob,127.0.0.1:9009", WIRE_ENCODING_UTF16LE,
				"127.0.0.1:40009"), PRESENCE_REPLY_NAME_TAKEN);
		assert_int_equal(f->n_datagrams, 0);
		assert_int_equal(f->n_frames, 0);
		assert_int_equal(f->n_drops, 0);
		assert_true(user_is_native(find(f, "bob")));
		if (i == 0) {
			assert_int_equal(hello(f, SESSION_A, "bob", "127.0.0.1:50000", &bob), 0);
			fixture_forget(f);
		}
	}
	assert_ptr_equal(find(f, "bob"), bob);
	assert_ptr_equal(user_get_session(bob), SESSION_A);

	/* Its own daemon, restarted on a new port, still takes it over. */
	assert_int_equal(login(f, "login,bob,127.0.0.1:9010,native1", "127.0.0.1:40010"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_drops, 1);
	assert_ptr_equal(f->drops[0].session, SESSION_A);
}

static const PresenceConfig probe_config = {
	.limits = {
		.max_users = 8,
		.login_rate = 0,
		.login_burst = 1,
		.max_conns_per_ip = 4,
		.max_ips = 16,
	},
	.lease = 20 * USEC_PER_MSEC,
	.session_wait = 20 * USEC_PER_MSEC,
	.probe_interval = 10 * USEC_PER_MSEC,
	.probe_count = 2,
};

/* Runs the loop until @n probes more went out, or 2 s passed. */
static void run_probes(Fixture *f, size_t n) {
	size_t want = f->n_probes + n;

	for (int i = 0; i < 400 && f->n_probes < want; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
	assert_true(f->n_probes >= want);
}

static size_t probes_to(const Fixture *f, const char *dest) {
	Endpoint d = ep(dest);
	size_t n = 0;

	for (size_t i = 0; i < f->n_probes; i++) {
		n += endpoint_equal(&f->probes[i].dest, &d);
	}
	return n;
}

static void unreachable(Fixture *f, const char *dest) {
	Endpoint d = ep(dest);

	presence_probe_unreachable(f->presence, &d);
}

static void test_presence_probe_who(void **state) {
	Fixture *f = *state;

	fixture_restart(f, &probe_config);
	/* Probed: a reference client at its declared endpoint.  Not probed: a
	 * native user (its session is its proof), one that declared a foreign IP
	 * (no UDP to it; its lease applies). */
	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "bob", "127.0.0.1:50000", &(User *) { NULL }), 0);
	assert_int_equal(login(f, "login,nat,203.0.113.7:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);

	/* Within a few intervals alice is probed each time; her lease (20 ms)
	 * does not apply, nat's does. */
	run_probes(f, 4);
	assert_int_equal(probes_to(f, "127.0.0.1:9001"), f->n_probes);
	run_until_gone(f, "nat");
	assert_null(find(f, "nat"));
	assert_non_null(find(f, "alice"));
	assert_non_null(find(f, "bob"));
}

static void test_presence_probe_unreachable_logs_out(void **state) {
	Fixture *f = *state;

	fixture_restart(f, &probe_config);
	assert_int_equal(login(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* A report without a pending probe counts for nothing. */
	unreachable(f, "127.0.0.1:9002");
	unreachable(f, "127.0.0.1:9002");
	assert_non_null(find(f, "bob"));

	/* One unreachable probe, then one nobody reports (bob is there): the
	 * count starts over. */
	run_probes(f, 2);
	unreachable(f, "127.0.0.1:9002");
	unreachable(f, "127.0.0.1:9002"); /* the same probe counts once */
	assert_non_null(find(f, "bob"));
	fixture_forget(f);
	while (probes_to(f, "127.0.0.1:9002") < 2) {
		run_probes(f, 1);
	}
	unreachable(f, "127.0.0.1:9002");
	assert_non_null(find(f, "bob"));

	/* Two in a row: bob is gone, and alice hears of it. */
	fixture_forget(f);
	while (probes_to(f, "127.0.0.1:9002") < 1) {
		run_probes(f, 1);
	}
	unreachable(f, "127.0.0.1:9002");
	assert_null(find(f, "bob"));
	assert_non_null(find(f, "alice"));
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "logout,bob,127.0.0.1:9002");
}

static void test_presence_probe_rate(void **state) {
	Fixture *f = *state;
	PresenceConfig config = probe_config;

	/* One probe a second: of three users due every 10 ms, one is probed
	 * within 100 ms. */
	config.probe_rate = 1;
	fixture_restart(f, &config);
	assert_int_equal(login(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	for (int i = 0; i < 20; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(f->n_probes, 1);
	assert_int_equal(probes_to(f, "127.0.0.1:9001"), 1);
	assert_int_equal(n_users(f), 3);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_presence_reply_reasons),
		cmocka_unit_test_setup_teardown(test_presence_login_forwards_to_others, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_forward_in_each_encoding, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_duplicate_name_rejected, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_relogin_from_same_address, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_logout_only_from_login_address,
				setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_lohout_counts_as_logout, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_lease_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_native_login_waits_for_session,
				setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_hello_binds_session, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_hello_replaces_session, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_session_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_logout_drops_session, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_session_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_shutdown_is_silent, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_native_name_kept_from_reference_login,
				setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_probe_who, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_probe_unreachable_logs_out, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_probe_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_failed_datagram_stops_fan_out,
				setup, teardown),
	};

	return cmocka_run_group_tests_name("coordinator-presence", tests, NULL, NULL);
}
