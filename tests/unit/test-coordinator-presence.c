/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/presence.c without sockets: a test double stands
 * in for the owner and records every frame, datagram, dropped session (and
 * its reason) and probe it is told about, and keeps a small name -> key
 * binding store.  Logins, reference logins pending until their IP fetches
 * the list (confirmation, expiry, names, per-IP limits), duplicate names,
 * re-logins, logouts (and "lohout") only from the login address and never
 * for a native user, leases, native logins pending until the hello of a
 * session that proved a key, the name bound to the first key (squatters,
 * hijackers and reference logins refused, a failing store), a session
 * replaced by a newer one of the same key, the key in list entries and
 * forwards, the probes of reference clients (who, when, how many, what a
 * report means) and the fan-out of each change to the others.
 */

#include <errno.h>
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

#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/presence.h"

#define RECORDS_MAX 64
#define TEXT_MAX 256
#define BINDINGS_MAX 8

/* Session handles are only compared, never followed. */
static int session_a, session_b, session_c;
#define SESSION_A ((void *) &session_a)
#define SESSION_B ((void *) &session_b)
#define SESSION_C ((void *) &session_c)

/* Keys: IDENTITY_PUBLIC_KEY_SIZE bytes of one value, and their hex. */
#define KEY_A 0xaa
#define KEY_B 0xbb
#define KEY_C 0xcc
#define HEX8(s) s s s s s s s s
#define HEX_A HEX8(HEX8("a"))
#define HEX_B HEX8(HEX8("b"))
#define HEX_C HEX8(HEX8("c"))

typedef struct Record {
	void *session;       /* frames and drops */
	Endpoint dest;       /* datagrams */
	WireEncoding enc;    /* datagrams */
	char text[TEXT_MAX]; /* frames and datagrams, as UTF-8; drops: the reason */
	bool has_text;       /* drops: a reason was given */
} Record;

/* The owner's binding store: a name is bound to the first key that asks. */
typedef struct Binding {
	char name[WIRE_NAME_MAX_BYTES + 1];
	uint8_t key[IDENTITY_PUBLIC_KEY_SIZE];
} Binding;

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
	Binding bindings[BINDINGS_MAX];
	size_t n_bindings;
	int bind_error;     /* bind_name() returns this when set */
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

static void on_drop_session(void *session, const char *reason, void *userdata) {
	Fixture *f = userdata;
	Record *r;

	assert_true(f->n_drops < RECORDS_MAX);
	r = &f->drops[f->n_drops++];
	r->session = session;
	r->has_text = reason;
	if (reason) {
		assert_true(strlen(reason) < TEXT_MAX);
		strcpy(r->text, reason);
	}
}

static Binding *binding_find(Fixture *f, const char *name) {
	for (size_t i = 0; i < f->n_bindings; i++) {
		if (streq(f->bindings[i].name, name)) {
			return &f->bindings[i];
		}
	}
	return NULL;
}

static int on_bind_name(const char *name, const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE],
		void *userdata) {
	Fixture *f = userdata;
	Binding *b;

	if (f->bind_error < 0) {
		return f->bind_error;
	}
	b = binding_find(f, name);
	if (b) {
		return memcmp(b->key, key, sizeof(b->key)) == 0 ? 0 : -EEXIST;
	}
	assert_true(f->n_bindings < BINDINGS_MAX);
	b = &f->bindings[f->n_bindings++];
	assert_true(strlen(name) < sizeof(b->name));
	strcpy(b->name, name);
	memcpy(b->key, key, sizeof(b->key));
	return 1;
}

static bool on_name_is_bound(const char *name, void *userdata) {
	return binding_find(userdata, name);
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
	.bind_name = on_bind_name,
	.name_is_bound = on_name_is_bound,
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
	.pending_wait = 20 * USEC_PER_MSEC,
};

/*
 * Replaces the fixture's presence with one under @config; forgets the
 * records.  The binding store stays, as the owner's would.
 */
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

/* A reference client's whole login: the datagram, then its list fetch from @source's IP. */
static PresenceReply join_enc(Fixture *f, const char *line, WireEncoding enc,
		const char *source) {
	PresenceReply reply = login_enc(f, line, enc, source);
	Endpoint src = ep(source);

	(void) presence_confirm(f->presence, &src);
	return reply;
}

static PresenceReply join(Fixture *f, const char *line, const char *source) {
	return join_enc(f, line, WIRE_ENCODING_UTF8, source);
}

static size_t confirm(Fixture *f, const char *peer) {
	Endpoint p = ep(peer);

	return presence_confirm(f->presence, &p);
}

static size_t n_pending(Fixture *f) {
	return registry_n_pending(presence_get_registry(f->presence));
}

static void assert_list(Fixture *f, const char *text) {
	const char *list;
	size_t len;

	assert_int_equal(registry_get_list(presence_get_registry(f->presence), &list, &len), 0);
	assert_string_equal(list, text);
}

static void logout(Fixture *f, const char *line, const char *source) {
	WireMessage m = msg(line);
	Endpoint src = ep(source);

	presence_logout(f->presence, &m, &src);
}

/* The hello of @name on @session from @peer, which proved the key of bytes @key. */
static int hello_from(Fixture *f, void *session, const char *name, const Endpoint *peer,
		uint8_t key, User **ret) {
	uint8_t k[IDENTITY_PUBLIC_KEY_SIZE];
	char line[128];
	WireMessage m;

	memset(k, key, sizeof(k));
	(void) snprintf(line, sizeof(line), "hello,%s,native1", name);
	m = msg(line);
	return presence_hello(f->presence, session, peer, &m, k, ret);
}

static int hello(Fixture *f, void *session, const char *name, const char *peer, uint8_t key,
		User **ret) {
	Endpoint p = ep(peer);

	return hello_from(f, session, name, &p, key, ret);
}

/*
 * A native client's whole login: the datagram @line from @source (which
 * must be accepted), then the hello of its session @session from @source's
 * IP (port 50000) with the key of bytes @key.
 */
static int join_native(Fixture *f, const char *line, const char *source, void *session,
		uint8_t key, User **ret) {
	WireMessage m = msg(line);
	Endpoint peer = ep(source);

	assert_int_equal(login(f, line, source), PRESENCE_REPLY_ACCEPT);
	endpoint_set_port(&peer, 50000);
	return hello_from(f, session, m.name, &peer, key, ret);
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

/* The @i-th dropped session is @session, told @reason (NULL: none). */
static void assert_drop(const Fixture *f, size_t i, void *session, const char *reason) {
	assert_true(i < f->n_drops);
	assert_ptr_equal(f->drops[i].session, session);
	if (reason) {
		assert_true(f->drops[i].has_text);
		assert_string_equal(f->drops[i].text, reason);
	} else {
		assert_false(f->drops[i].has_text);
	}
}

/* Runs the loop until @name is gone or 2 s passed. */
static void run_until_gone(Fixture *f, const char *name) {
	for (int i = 0; i < 400 && find(f, name); i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
}

/* Runs the loop until no login is pending or 2 s passed. */
static void run_until_no_pending(Fixture *f) {
	for (int i = 0; i < 400 && n_pending(f) > 0; i++) {
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

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 1);

	/* bob's native login goes online at the hello of his session: only
	 * then does alice hear of him, with his caps and key; bob gets the
	 * list on his session. */
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 1);
	assert_int_equal(hello(f, SESSION_A, "bob", "127.0.0.1:50000", KEY_A,
			&(User *) { NULL }), 0);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,bob,127.0.0.1:9002,native1," HEX_A);
	assert_int_equal(f->n_frames, 0);
	assert_int_equal(f->n_drops, 0);
	assert_int_equal(n_users(f), 2);
}

static void test_presence_forward_in_each_encoding(void **state) {
	Fixture *f = *state;

	assert_int_equal(join_enc(f, "login,u16,127.0.0.1:9001", WIRE_ENCODING_UTF16LE,
			"127.0.0.1:40001"), PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,u8,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Declared a foreign IP: announced by its source, reached only by session. */
	assert_int_equal(join(f, "login,nat,203.0.113.7:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	assert_int_equal(join(f, "login,carol,127.0.0.1:9004", "127.0.0.1:40004"),
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

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	assert_int_equal(join(f, "login,alice,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(n_users(f), 2);
	assert_true(endpoint_equal(user_get_source(find(f, "alice")), &source));
}

static void test_presence_relogin_from_same_address(void **state) {
	Fixture *f = *state;
	User *alice;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	alice = find(f, "alice");
	fixture_forget(f);

	/* The same login again only renews the lease: nobody is told. */
	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40009"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_ptr_equal(find(f, "alice"), alice);

	/* A new endpoint from the same IP replaces the user: logout, then login. */
	assert_int_equal(join(f, "login,alice,127.0.0.1:9005", "127.0.0.1:40005"),
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

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
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

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
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
	assert_int_equal(join(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	/* A native login waits for its hello within max_users too... */
	assert_int_equal(login(f, "login,n,127.0.0.1:9009,native1", "127.0.0.1:40009"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);
	assert_int_equal(join(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_FULL);
	assert_int_equal(login(f, "login,d,127.0.0.1:9004,native1", "127.0.0.1:40004"),
			PRESENCE_REPLY_FULL);
	/* ... and its hello finds no room left: its login is forgotten. */
	assert_int_equal(hello(f, SESSION_A, "n", "127.0.0.1:50000", KEY_A, &(User *) { NULL }),
			-ENOSPC);
	assert_null(find(f, "n"));
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
	assert_int_equal(n_users(f), 2);
}

static void test_presence_rate_limit(void **state) {
	Fixture *f = *state;
	PresenceConfig config = default_config;

	config.limits.login_rate = 1;
	config.limits.login_burst = 2;
	fixture_restart(f, &config);
	assert_int_equal(join(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Over the rate: dropped without an answer, whatever the login. */
	assert_int_equal(join(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_NONE);
	assert_int_equal(login(f, "login,n,127.0.0.1:9004,native1", "127.0.0.1:40004"),
			PRESENCE_REPLY_NONE);
	assert_null(find(f, "c"));
	assert_int_equal(n_pending(f), 0);
	/* Another IP has its own bucket. */
	assert_int_equal(join(f, "login,c,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_ACCEPT);
}

static void test_presence_lease_expires(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002",
			SESSION_A, KEY_B, &(User *) { NULL }), 0);
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
	PresenceConfig config = default_config;

	/* Reference users outlive the session wait. */
	config.lease = 10 * USEC_PER_SEC;
	fixture_restart(f, &config);
	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* A native login without its session is pending: not online, not
	 * listed, nobody told, and a list fetch from its IP does not confirm
	 * it (only its session's hello, which proves a key, does). */
	assert_null(find(f, "bob"));
	assert_int_equal(n_pending(f), 1);
	assert_list(f, "alice,127.0.0.1:9001;end");
	assert_int_equal(confirm(f, "127.0.0.1:50000"), 0);
	assert_null(find(f, "bob"));
	assert_int_equal(n_pending(f), 1);

	/* It is not sent forwards either. */
	assert_int_equal(join(f, "login,carol,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,carol,127.0.0.1:9003");

	/* Without a hello within session_wait it is forgotten without a word,
	 * and a late hello finds nothing. */
	fixture_forget(f);
	run_until_no_pending(f);
	assert_int_equal(n_pending(f), 0);
	assert_null(find(f, "bob"));
	assert_list(f, "alice,127.0.0.1:9001;carol,127.0.0.1:9003;end");
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
	assert_int_equal(hello(f, SESSION_A, "bob", "127.0.0.1:50000", KEY_B, &(User *) { NULL }),
			-EPERM);
	assert_int_equal(f->n_bindings, 0);
}

static void test_presence_hello_binds_session(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	/* Only a pending native login may say hello. */
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", KEY_A, &u), -EPERM);
	assert_int_equal(login(f, "login,carol,127.0.0.3:9003", "127.0.0.3:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "carol", "127.0.0.3:50000", KEY_A, &u), -EPERM);
	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);

	/* Only from the IP alice logged in from, and only for her name. */
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.2:50000", KEY_A, &u), -EPERM);
	assert_int_equal(hello(f, SESSION_A, "nobody", "127.0.0.1:50000", KEY_A, &u), -EPERM);
	assert_null(u);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_bindings, 0);

	/* Any port of it: she goes online with the key, which binds her name. */
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", KEY_A, &u), 0);
	assert_ptr_equal(u, find(f, "alice"));
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_string_equal(user_get_key(u), HEX_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 1);
	assert_int_equal(f->n_bindings, 1);
	assert_string_equal(f->bindings[0].name, "alice");
	assert_int_equal(f->bindings[0].key[0], KEY_A);

	/* Her hello used up her login: another one needs a new login. */
	assert_int_equal(hello(f, SESSION_B, "alice", "127.0.0.1:50001", KEY_A,
			&(User *) { NULL }), -EPERM);
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_int_equal(f->n_drops, 0);

	/* From now on alice hears by session, in order. */
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
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
	User *alice = NULL, *u = NULL;

	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,carol,127.0.0.3:9003,native1", "127.0.0.3:40003",
			SESSION_C, KEY_C, &(User *) { NULL }), 0);
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &alice), 0);
	fixture_forget(f);

	/* The same login again with the same key (a reconnect): the old session
	 * is dropped and told why, the user stays, nobody is told. */
	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_B, "alice", "127.0.0.1:50001", KEY_A, &u), 0);
	assert_ptr_equal(u, alice);
	assert_ptr_equal(find(f, "alice"), alice);
	assert_int_equal(f->n_drops, 1);
	assert_drop(f, 0, SESSION_A, "replaced");
	assert_ptr_equal(user_get_session(u), SESSION_B);
	assert_string_equal(user_get_key(u), HEX_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 2);
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(f->n_datagrams + f->n_frames, 0);

	assert_int_equal(join(f, "login,dave,127.0.0.4:9004", "127.0.0.4:40004"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_frames, 2);
	assert_frame(f, 0, SESSION_C, "login,dave,127.0.0.4:9004");
	assert_frame(f, 1, SESSION_B, "login,dave,127.0.0.4:9004");
	logout(f, "logout,dave,127.0.0.4:9004", "127.0.0.4:40004");

	/* Same key, another endpoint (its daemon restarted on a new port):
	 * the old session goes the same way, and the others see the old
	 * entry's logout, then the new login, with its key. */
	fixture_forget(f);
	assert_int_equal(login(f, "login,alice,127.0.0.1:9011,native1", "127.0.0.1:40011"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50002", KEY_A, &u), 0);
	assert_ptr_equal(find(f, "alice"), u);
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_int_equal(f->n_drops, 1);
	assert_drop(f, 0, SESSION_B, "replaced");
	assert_int_equal(presence_get_n_sessions(f->presence), 2);
	assert_int_equal(f->n_datagrams, 2);
	assert_datagram(f, 0, "127.0.0.2:9002", "logout,alice,127.0.0.1:9001");
	assert_datagram(f, 1, "127.0.0.2:9002", "login,alice,127.0.0.1:9011,native1," HEX_A);
	assert_int_equal(f->n_frames, 2);
	assert_frame(f, 0, SESSION_C, "logout,alice,127.0.0.1:9001");
	assert_frame(f, 1, SESSION_C, "login,alice,127.0.0.1:9011,native1," HEX_A);

	/* Same key from another IP (another daemon of the owner): likewise. */
	fixture_forget(f);
	assert_int_equal(join_native(f, "login,alice,127.0.0.5:9005,native1", "127.0.0.5:40005",
			SESSION_B, KEY_A, &u), 0);
	assert_ptr_equal(user_get_session(find(f, "alice")), SESSION_B);
	assert_int_equal(f->n_drops, 1);
	assert_drop(f, 0, SESSION_A, "replaced");
	assert_int_equal(f->n_datagrams, 2);
	assert_datagram(f, 0, "127.0.0.2:9002", "logout,alice,127.0.0.1:9011");
	assert_datagram(f, 1, "127.0.0.2:9002", "login,alice,127.0.0.5:9005,native1," HEX_A);
	assert_list(f, "bob,127.0.0.2:9002;carol,127.0.0.3:9003,native1," HEX_C ";"
			"alice,127.0.0.5:9005,native1," HEX_A ";end");
	assert_int_equal(f->n_bindings, 2);
}

static void test_presence_session_logout(void **state) {
	Fixture *f = *state;
	WireMessage other = msg("logout,bob,127.0.0.1:9002");
	WireMessage own = msg("logout,alice,127.0.0.1:9001");
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", KEY_A, &u), 0);
	fixture_forget(f);

	/* A session logs out only its own user. */
	presence_session_logout(f->presence, u, &other);
	assert_non_null(find(f, "bob"));
	assert_int_equal(f->n_drops + f->n_datagrams, 0);

	presence_session_logout(f->presence, u, &own);
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_drops, 1);
	assert_drop(f, 0, SESSION_A, NULL);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9002", "logout,alice,127.0.0.1:9001");
}

static void test_presence_logout_datagram_ignored_for_native(void **state) {
	static const struct {
		const char *line, *source;
	} table[] = {
		{ "logout,alice,127.0.0.1:9001", "127.0.0.1:40001" }, /* her login's address */
		{ "logout,alice,127.0.0.1:9001", "127.0.0.1:40077" }, /* her IP, any port */
		{ "lohout,alice,127.0.0.1:9001", "127.0.0.1:9001" },  /* her endpoint */
	};
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &u), 0);
	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* Anyone can forge a datagram: none logs a native user out, even from
	 * her very address; she leaves only through her session. */
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		logout(f, table[i].line, table[i].source);
		assert_ptr_equal(find(f, "alice"), u);
		assert_int_equal(f->n_drops + f->n_datagrams + f->n_frames, 0);
	}
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_int_equal(presence_get_n_sessions(f->presence), 1);

	/* Nor does one cancel a native login that waits for its session. */
	assert_int_equal(login(f, "login,carol,127.0.0.3:9003,native1", "127.0.0.3:40003"),
			PRESENCE_REPLY_ACCEPT);
	logout(f, "logout,carol,127.0.0.3:9003", "127.0.0.3:40003");
	assert_int_equal(n_pending(f), 1);
	assert_int_equal(hello(f, SESSION_B, "carol", "127.0.0.3:50000", KEY_C, &u), 0);
	assert_ptr_equal(find(f, "carol"), u);
}

static void test_presence_reference_login_pending(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* Accepted, but not online: not found, not listed, nobody told. */
	assert_int_equal(login(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_null(find(f, "bob"));
	assert_int_equal(n_users(f), 1);
	assert_int_equal(n_pending(f), 1);
	assert_list(f, "alice,127.0.0.1:9001;end");
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_probes, 0);

	/* A fetch from another IP confirms nothing; one from bob's IP, any
	 * port, puts him online and tells the others, before the list is cut. */
	assert_int_equal(confirm(f, "127.0.0.3:50000"), 0);
	assert_null(find(f, "bob"));
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 1);
	assert_non_null(find(f, "bob"));
	assert_int_equal(n_pending(f), 0);
	assert_list(f, "alice,127.0.0.1:9001;bob,127.0.0.2:9002;end");
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,bob,127.0.0.2:9002");

	/* Later fetches change nothing. */
	fixture_forget(f);
	assert_int_equal(confirm(f, "127.0.0.2:50001"), 0);
	assert_int_equal(f->n_datagrams + f->n_frames, 0);
	assert_int_equal(n_users(f), 2);
}

static void test_presence_pending_expires(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	for (int i = 0; i < 400 && n_pending(f) > 0; i++) {
		assert_true(sd_event_run(f->event, 5 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 0);
	assert_null(find(f, "bob"));
	assert_int_equal(f->n_datagrams + f->n_frames, 0);
}

static void test_presence_pending_logout(void **state) {
	Fixture *f = *state;

	assert_int_equal(login(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	/* Only from its IP and with its endpoint, like an online user's. */
	logout(f, "lohout,bob,127.0.0.2:9002", "127.0.0.3:40002");
	logout(f, "lohout,bob,127.0.0.2:9009", "127.0.0.2:40002");
	assert_int_equal(n_pending(f), 1);
	logout(f, "lohout,bob,127.0.0.2:9002", "127.0.0.2:40003");
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 0);
	assert_null(find(f, "bob"));
}

static void test_presence_pending_names(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.4:9004", "127.0.0.4:40004"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* A name online from another IP is refused at once. */
	assert_int_equal(login(f, "login,alice,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(n_pending(f), 0);

	/* Pending logins hold no name: the first confirmed takes it, the
	 * other is forgotten at its own fetch. */
	assert_int_equal(login(f, "login,carol,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,carol,127.0.0.3:9003", "127.0.0.3:40003"),
			PRESENCE_REPLY_ACCEPT);
	/* From the same IP, the newer replaces the older. */
	assert_int_equal(login(f, "login,carol,127.0.0.3:9033", "127.0.0.3:40033"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(n_pending(f), 2);
	assert_int_equal(confirm(f, "127.0.0.3:50000"), 1);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 0);
	assert_int_equal(n_pending(f), 0);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,carol,127.0.0.3:9033");
	assert_int_equal(f->n_datagrams, 2); /* alice and bob */

	/* A different login for a name online from the same IP replaces it,
	 * but only once confirmed. */
	fixture_forget(f);
	assert_int_equal(login(f, "login,alice,127.0.0.1:9005", "127.0.0.1:40005"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(f->n_datagrams, 0);
	assert_list(f, "alice,127.0.0.1:9001;bob,127.0.0.4:9004;carol,127.0.0.3:9033;end");
	assert_int_equal(confirm(f, "127.0.0.1:50000"), 1);
	assert_int_equal(f->n_datagrams, 4);
	assert_datagram(f, 0, "127.0.0.4:9004", "logout,alice,127.0.0.1:9001");
	assert_datagram(f, 2, "127.0.0.4:9004", "login,alice,127.0.0.1:9005");

	/* A pending login loses to a native user that took the name meanwhile. */
	assert_int_equal(login(f, "login,dave,127.0.0.5:9006", "127.0.0.5:40006"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,dave,127.0.0.4:9007,native1", "127.0.0.4:40007",
			SESSION_A, KEY_A, &(User *) { NULL }), 0);
	assert_int_equal(confirm(f, "127.0.0.5:50000"), 0);
	assert_int_equal(n_pending(f), 0);
	assert_true(user_is_native(find(f, "dave")));
	assert_ptr_equal(user_get_session(find(f, "dave")), SESSION_A);
}

static void test_presence_pending_confirms_all_from_ip(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);
	assert_int_equal(login(f, "login,x,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,y,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 2);
	assert_list(f, "alice,127.0.0.1:9001;x,127.0.0.2:9002;y,127.0.0.2:9003;end");
	/* In arrival order; x, online first, hears of y. */
	assert_int_equal(f->n_datagrams, 3);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,x,127.0.0.2:9002");
	assert_datagram(f, 1, "127.0.0.1:9001", "login,y,127.0.0.2:9003");
	assert_datagram(f, 2, "127.0.0.2:9002", "login,y,127.0.0.2:9003");
}

static void test_presence_per_ip_limits(void **state) {
	Fixture *f = *state;
	PresenceConfig config = default_config;
	Endpoint declared;

	config.limits.max_users = 16;
	config.limits.max_pending_per_ip = 2;
	config.limits.max_names_per_ip = 3;
	fixture_restart(f, &config);

	/* Pending: two per IP; the third is refused, another IP is not. */
	assert_int_equal(login(f, "login,a,127.0.0.2:9001", "127.0.0.2:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,b,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,c,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_FULL);
	assert_int_equal(login(f, "login,z,127.0.0.9:9003", "127.0.0.9:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 2);

	/* Names: three online per IP; a pending one beyond is forgotten at
	 * its fetch, and then new names are refused at login. */
	assert_int_equal(login(f, "login,c,127.0.0.2:9003", "127.0.0.2:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(login(f, "login,d,127.0.0.2:9004", "127.0.0.2:40004"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(confirm(f, "127.0.0.2:50000"), 1);
	assert_null(find(f, "d"));
	assert_int_equal(n_pending(f), 1); /* z */
	assert_int_equal(login(f, "login,e,127.0.0.2:9005", "127.0.0.2:40005"),
			PRESENCE_REPLY_FULL);
	/* A name online from the IP may still log in anew (it replaces itself). */
	assert_int_equal(join(f, "login,a,127.0.0.2:9011", "127.0.0.2:40011"),
			PRESENCE_REPLY_ACCEPT);
	declared = ep("127.0.0.2:9011");
	assert_true(endpoint_equal(user_get_declared(find(f, "a")), &declared));
	/* Native logins count too. */
	assert_int_equal(login(f, "login,n,127.0.0.2:9006,native1", "127.0.0.2:40006"),
			PRESENCE_REPLY_FULL);
	assert_int_equal(n_users(f), 3);
}

static void test_presence_session_closed(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(login(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", KEY_A, &u), 0);
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
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_A, "alice", "127.0.0.1:50000", KEY_A, &u), 0);
	fixture_forget(f);

	presence_shutdown(f->presence);
	presence_session_closed(f->presence, u, "session closed");
	assert_null(find(f, "alice"));
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
}

static void test_presence_failed_datagram_stops_fan_out(void **state) {
	Fixture *f = *state;

	assert_int_equal(join(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* The login itself stands; only its forwards are dropped. */
	f->datagram_error = -ENOBUFS;
	assert_int_equal(join(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_non_null(find(f, "c"));
	assert_int_equal(f->n_datagrams, 0);
}

static void test_presence_native_name_kept_from_reference_login(void **state) {
	Fixture *f = *state;
	User *bob = NULL;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002",
			SESSION_A, KEY_B, &bob), 0);
	fixture_forget(f);

	/* Holding it: a reference login for the name, even from the same IP,
	 * is refused, and nobody hears of anything. */
	assert_int_equal(join_enc(f, "login,bob,127.0.0.1:9009", WIRE_ENCODING_UTF16LE,
			"127.0.0.1:40009"), PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
	assert_int_equal(n_pending(f), 0);
	assert_ptr_equal(find(f, "bob"), bob);
	assert_ptr_equal(user_get_session(bob), SESSION_A);

	/* Its own daemon, restarted on a new port, still takes it over. */
	assert_int_equal(join_native(f, "login,bob,127.0.0.1:9010,native1", "127.0.0.1:40010",
			SESSION_B, KEY_B, &bob), 0);
	assert_int_equal(f->n_drops, 1);
	assert_drop(f, 0, SESSION_A, "replaced");
	assert_ptr_equal(user_get_session(find(f, "bob")), SESSION_B);
}

static void test_presence_reference_login_bound_name(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,bob,127.0.0.2:9002,native1", "127.0.0.2:40002",
			SESSION_A, KEY_B, &u), 0);
	presence_session_closed(f->presence, u, "end of stream");
	assert_null(find(f, "bob"));
	fixture_forget(f);

	/* bob is gone, but his name is bound to his key: a reference login,
	 * which proves no key, is refused from any IP, his own included. */
	assert_int_equal(login(f, "login,bob,127.0.0.3:9003", "127.0.0.3:40003"),
			PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_NAME_TAKEN);
	assert_int_equal(n_pending(f), 0);
	assert_null(find(f, "bob"));
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);

	/* An unbound name is pending until its list fetch, as before. */
	assert_int_equal(login(f, "login,carol,127.0.0.3:9003", "127.0.0.3:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(n_pending(f), 1);
	assert_null(find(f, "carol"));
	assert_int_equal(f->n_datagrams, 0);
	assert_int_equal(confirm(f, "127.0.0.3:50000"), 1);
	assert_non_null(find(f, "carol"));
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.1:9001", "login,carol,127.0.0.3:9003");

	/* A reference login made before its name was bound is not confirmed after. */
	assert_int_equal(login(f, "login,dave,127.0.0.4:9004", "127.0.0.4:40004"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,dave,127.0.0.5:9005,native1", "127.0.0.5:40005",
			SESSION_B, KEY_C, &u), 0);
	presence_session_closed(f->presence, u, "end of stream");
	fixture_forget(f);
	assert_int_equal(confirm(f, "127.0.0.4:50000"), 0);
	assert_null(find(f, "dave"));
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(f->n_datagrams + f->n_frames, 0);
}

static void test_presence_hello_squatting_refused(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &u), 0);
	presence_session_closed(f->presence, u, "end of stream");
	assert_null(find(f, "alice"));
	fixture_forget(f);

	/* An impostor with another key, from another IP: its login is accepted
	 * (pending: the UDP level cannot tell), its hello refused. */
	assert_int_equal(login(f, "login,alice,127.0.0.3:9003,native1", "127.0.0.3:40003"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(hello(f, SESSION_B, "alice", "127.0.0.3:50000", KEY_B, &u), -EEXIST);
	assert_null(find(f, "alice"));
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
	assert_int_equal(f->n_bindings, 1);
	assert_int_equal(f->bindings[0].key[0], KEY_A);

	/* alice, with her key, gets in later. */
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &u), 0);
	assert_ptr_equal(find(f, "alice"), u);
	assert_ptr_equal(user_get_session(u), SESSION_A);
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.2:9002", "login,alice,127.0.0.1:9001,native1," HEX_A);
}

static void test_presence_hello_hijack_refused(void **state) {
	static const struct {
		const char *line, *source;
	} table[] = {
		/* Her IP, another port. */
		{ "login,alice,127.0.0.1:9009,native1", "127.0.0.1:40009" },
		/* Her very login. */
		{ "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001" },
		/* Another IP. */
		{ "login,alice,127.0.0.3:9003,native1", "127.0.0.3:40003" },
	};
	Fixture *f = *state;
	User *alice = NULL;

	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &alice), 0);
	fixture_forget(f);

	/* A session with another key cannot take an online native user's name. */
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		User *u = NULL;

		assert_int_equal(join_native(f, table[i].line, table[i].source, SESSION_B, KEY_B,
				&u), -EEXIST);
		assert_null(u);
		assert_ptr_equal(find(f, "alice"), alice);
		assert_ptr_equal(user_get_session(alice), SESSION_A);
		assert_string_equal(user_get_key(alice), HEX_A);
		assert_int_equal(n_pending(f), 0);
		assert_int_equal(presence_get_n_sessions(f->presence), 1);
		assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);
	}
	assert_list(f, "bob,127.0.0.2:9002;alice,127.0.0.1:9001,native1," HEX_A ";end");
	assert_int_equal(f->n_bindings, 1);
}

static void test_presence_hello_bind_failure(void **state) {
	Fixture *f = *state;
	User *u = NULL;

	assert_int_equal(join(f, "login,bob,127.0.0.2:9002", "127.0.0.2:40002"),
			PRESENCE_REPLY_ACCEPT);
	fixture_forget(f);

	/* The binding cannot be stored: the hello is refused, nobody is told. */
	f->bind_error = -EIO;
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &u), -EPERM);
	assert_null(u);
	assert_null(find(f, "alice"));
	assert_int_equal(n_pending(f), 0);
	assert_int_equal(presence_get_n_sessions(f->presence), 0);
	assert_int_equal(f->n_datagrams + f->n_frames + f->n_drops, 0);

	/* Once the store works again, a new login gets in. */
	f->bind_error = 0;
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &u), 0);
	assert_ptr_equal(find(f, "alice"), u);
	assert_int_equal(f->n_bindings, 1);
}

static void test_presence_native_entry_carries_key(void **state) {
	Fixture *f = *state;

	assert_int_equal(join_enc(f, "login,bob,127.0.0.2:9002", WIRE_ENCODING_UTF16LE,
			"127.0.0.2:40002"), PRESENCE_REPLY_ACCEPT);
	/* A key named in the login datagram proves nothing: the session's counts. */
	assert_int_equal(join_native(f, "login,carol,127.0.0.3:9003,native1+noise1," HEX_B,
			"127.0.0.3:40003", SESSION_C, KEY_C, &(User *) { NULL }), 0);
	assert_string_equal(user_get_key(find(f, "carol")), HEX_C);
	fixture_forget(f);

	/* The key a native user proved is in its list entry and its forwards,
	 * after its caps, in every encoding; a reference user has none. */
	assert_int_equal(join_native(f, "login,alice,127.0.0.1:9001,native1", "127.0.0.1:40001",
			SESSION_A, KEY_A, &(User *) { NULL }), 0);
	assert_list(f, "bob,127.0.0.2:9002;carol,127.0.0.3:9003,native1+noise1," HEX_C ";"
			"alice,127.0.0.1:9001,native1," HEX_A ";end");
	assert_string_equal(user_get_key(find(f, "bob")), "");
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.2:9002", "login,alice,127.0.0.1:9001,native1," HEX_A);
	assert_int_equal(f->datagrams[0].enc, WIRE_ENCODING_UTF16LE);
	assert_int_equal(f->n_frames, 1);
	assert_frame(f, 0, SESSION_C, "login,alice,127.0.0.1:9001,native1," HEX_A);

	/* A logout says only name and endpoint. */
	fixture_forget(f);
	presence_session_closed(f->presence, find(f, "alice"), "end of stream");
	assert_int_equal(f->n_datagrams, 1);
	assert_datagram(f, 0, "127.0.0.2:9002", "logout,alice,127.0.0.1:9001");
	assert_frame(f, 0, SESSION_C, "logout,alice,127.0.0.1:9001");
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
	.pending_wait = 20 * USEC_PER_MSEC,
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
	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join_native(f, "login,bob,127.0.0.1:9002,native1", "127.0.0.1:40002",
			SESSION_A, KEY_B, &(User *) { NULL }), 0);
	assert_int_equal(join(f, "login,nat,203.0.113.7:9003", "127.0.0.1:40003"),
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
	assert_int_equal(join(f, "login,alice,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,bob,127.0.0.1:9002", "127.0.0.1:40002"),
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
	assert_int_equal(join(f, "login,a,127.0.0.1:9001", "127.0.0.1:40001"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,b,127.0.0.1:9002", "127.0.0.1:40002"),
			PRESENCE_REPLY_ACCEPT);
	assert_int_equal(join(f, "login,c,127.0.0.1:9003", "127.0.0.1:40003"),
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
		cmocka_unit_test_setup_teardown(test_presence_hello_squatting_refused, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_hello_hijack_refused, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_hello_bind_failure, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_native_entry_carries_key, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_session_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_logout_datagram_ignored_for_native,
				setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_reference_login_pending, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_reference_login_bound_name, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_pending_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_pending_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_pending_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_pending_confirms_all_from_ip, setup,
				teardown),
		cmocka_unit_test_setup_teardown(test_presence_per_ip_limits, setup, teardown),
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
