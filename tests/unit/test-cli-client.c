/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of frontends/cli/client.c: decoding the Manager's signals into
 * JSON events, including every basic variant type in "extra", containers
 * that are skipped, and malformed or foreign signals that are ignored.
 * Messages are built on a bus that is started over one end of a
 * socketpair() and never talks to anyone: sd-bus only needs it to exist.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>
#include <json-c/json.h>

#include "common/bus-api.h"
#include "common/macro.h"
#include "frontends/cli/client.h"

typedef struct Fixture {
	sd_bus *bus;
	int peer_fd;
	uint64_t cookie;
} Fixture;

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));
	int fds[2];

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	assert_true(sd_bus_new(&f->bus) >= 0);
	assert_true(sd_bus_set_fd(f->bus, fds[0], fds[0]) >= 0);
	assert_true(sd_bus_start(f->bus) >= 0);
	f->peer_fd = fds[1];
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	sd_bus_close_unref(f->bus);
	close(f->peer_fd);
	free(f);
	return 0;
}

/* A new signal at P2PCHAT_OBJECT_PATH; decode() seals and reads it. */
static sd_bus_message *new_signal(Fixture *f, const char *iface, const char *member) {
	sd_bus_message *m = NULL;

	assert_true(sd_bus_message_new_signal(f->bus, &m, P2PCHAT_OBJECT_PATH, iface, member) >= 0);
	return m;
}

static json_object *decode(Fixture *f, sd_bus_message *m) {
	json_object *ev = NULL;
	int r;

	assert_true(sd_bus_message_seal(m, ++f->cookie, 0) >= 0);
	assert_true(sd_bus_message_rewind(m, true) >= 0);
	r = client_event_from_signal(m, &ev);
	sd_bus_message_unref(m);
	return r > 0 ? ev : NULL;
}

static const char *str(json_object *o, const char *key) {
	json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_string(v);
}

static void test_client_message_received(void **state) {
	Fixture *f = *state;
	sd_bus_message *m = new_signal(f, P2PCHAT_MANAGER_INTERFACE, "MessageReceived");
	json_object *ev, *v;

	assert_true(sd_bus_message_append(m, "ssst", "0123", "bob", "hi 你好",
		(uint64_t) 1700000000000000) >= 0);
	assert_true(sd_bus_message_append(m, "a{sv}", 1, "native", "b", 1) >= 0);
	ev = decode(f, m);
	assert_non_null(ev);
	assert_string_equal(str(ev, "event"), "messageReceived");
	assert_string_equal(str(ev, "id"), "0123");
	assert_string_equal(str(ev, "peer"), "bob");
	assert_string_equal(str(ev, "text"), "hi 你好");
	assert_true(json_object_object_get_ex(ev, "timestampUsec", &v));
	assert_true(json_object_get_uint64(v) == 1700000000000000);
	assert_true(json_object_object_get_ex(ev, "extra", &v));
	assert_true(json_object_get_boolean(json_object_object_get(v, "native")));
	json_object_put(ev);
}

static void test_client_extra_types(void **state) {
	Fixture *f = *state;
	sd_bus_message *m = new_signal(f, P2PCHAT_MANAGER_INTERFACE, "MessageDelivered");
	json_object *ev, *x;

	assert_true(sd_bus_message_append(m, "ss", "id", "bob") >= 0);
	assert_true(sd_bus_message_append(m, "a{sv}", 12,
		"y", "y", (uint8_t) 200, "n", "n", (int16_t) -5, "q", "q", (uint16_t) 65535,
		"i", "i", (int32_t) -70000, "u", "u", (uint32_t) 4000000000u,
		"x", "x", (int64_t) -5000000000, "t", "t", (uint64_t) 18000000000000000000u,
		"d", "d", 0.5, "s", "s", "text", "o", "o", "/a/b", "g", "g", "a{sv}",
		"as", "as", 2, "one", "two") >= 0);
	ev = decode(f, m);
	assert_non_null(ev);
	assert_true(json_object_object_get_ex(ev, "extra", &x));
	assert_int_equal(json_object_get_int(json_object_object_get(x, "y")), 200);
	assert_int_equal(json_object_get_int(json_object_object_get(x, "n")), -5);
	assert_int_equal(json_object_get_int(json_object_object_get(x, "q")), 65535);
	assert_int_equal(json_object_get_int(json_object_object_get(x, "i")), -70000);
	assert_true(json_object_get_int64(json_object_object_get(x, "u")) == 4000000000);
	assert_true(json_object_get_int64(json_object_object_get(x, "x")) == -5000000000);
	assert_true(json_object_get_uint64(json_object_object_get(x, "t")) ==
		18000000000000000000u);
	assert_true(json_object_get_double(json_object_object_get(x, "d")) == 0.5);
	assert_string_equal(str(x, "s"), "text");
	assert_string_equal(str(x, "o"), "/a/b");
	assert_string_equal(str(x, "g"), "a{sv}");
	/* Containers are skipped, and decoding goes on after them. */
	assert_false(json_object_object_get_ex(x, "as", NULL));
	json_object_put(ev);
}

static void test_client_properties_changed(void **state) {
	Fixture *f = *state;
	sd_bus_message *m;
	json_object *ev;

	m = new_signal(f, "org.freedesktop.DBus.Properties", "PropertiesChanged");
	assert_true(sd_bus_message_append(m, "sa{sv}as", P2PCHAT_MANAGER_INTERFACE, 2,
		"State", "s", "online", "LocalEndpoint", "s", "127.0.0.1:5", 0) >= 0);
	ev = decode(f, m);
	assert_non_null(ev);
	assert_string_equal(str(ev, "event"), "propertiesChanged");
	assert_string_equal(str(ev, "state"), "online");
	assert_string_equal(str(ev, "localEndpoint"), "127.0.0.1:5");
	json_object_put(ev);

	/* Only invalidated properties, or another interface: no event. */
	m = new_signal(f, "org.freedesktop.DBus.Properties", "PropertiesChanged");
	assert_true(sd_bus_message_append(m, "sa{sv}as", P2PCHAT_MANAGER_INTERFACE, 0, 1,
		"State") >= 0);
	assert_null(decode(f, m));
	m = new_signal(f, "org.freedesktop.DBus.Properties", "PropertiesChanged");
	assert_true(sd_bus_message_append(m, "sa{sv}as", "org.example.Other", 1,
		"State", "s", "x", 0) >= 0);
	assert_null(decode(f, m));
}

static const struct {
	const char *iface;
	const char *member;
	const char *signature;
} ignored[] = {
	/* Too few arguments, wrong types, unknown members and interfaces. */
	{ P2PCHAT_MANAGER_INTERFACE, "MessageReceived", "s" },
	{ P2PCHAT_MANAGER_INTERFACE, "PeerJoined", "u" },
	{ P2PCHAT_MANAGER_INTERFACE, "PeerLeft", "" },
	{ P2PCHAT_MANAGER_INTERFACE, "SomethingNew", "s" },
	{ "org.example.Other", "PeerLeft", "s" },
};

static void test_client_ignores_bad_signals(void **state) {
	Fixture *f = *state;

	for (size_t i = 0; i < ELEMENTSOF(ignored); i++) {
		sd_bus_message *m = new_signal(f, ignored[i].iface, ignored[i].member);

		if (streq(ignored[i].signature, "s")) {
			assert_true(sd_bus_message_append(m, "s", "x") >= 0);
		} else if (streq(ignored[i].signature, "u")) {
			assert_true(sd_bus_message_append(m, "u", 7) >= 0);
		}
		assert_null(decode(f, m));
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_client_message_received, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_extra_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_properties_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_ignores_bad_signals, setup, teardown),
	};

	return cmocka_run_group_tests_name("cli-client", tests, NULL, NULL);
}
