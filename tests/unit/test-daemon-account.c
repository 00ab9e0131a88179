/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/account.c (and the CoordinatorLink it owns) without a
 * bus: the test is the coordinator on a loopback UDP socket, and a double
 * of AccountCallbacks records what the account reports.  Among them the
 * regression test of a double report: a login whose link cannot start
 * (here: its event loop has finished, so no timer can be added) must fail
 * exactly once, with the coordinator named in its message.
 */

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "daemon/account.h"
#include "daemon/config.h"
#include "daemon/coordinator-link.h"
#include "daemon/coordinator-pins.h"
#include "daemon/udp.h"

#define EVENTS_MAX 32

typedef struct Fixture {
	char dir[64];
	sd_event *event;
	Config *config;
	Identity *identity;
	CoordinatorPins *pins;
	Udp *udp;
	Account *account;
	int coord_fd; /* the coordinator's UDP socket */
	Endpoint coord;
	char coord_text[ENDPOINT_STRLEN];
	/* "changed:STATE", "done:ERRNO:MESSAGE", "online", "offline:REASON" */
	char events[EVENTS_MAX][160];
	size_t n_events;
} Fixture;

static void record(Fixture *f, const char *fmt, ...) _printf_(2, 3);
static void record(Fixture *f, const char *fmt, ...) {
	va_list ap;

	assert_true(f->n_events < EVENTS_MAX);
	va_start(ap, fmt);
	(void) vsnprintf(f->events[f->n_events++], sizeof(f->events[0]), fmt, ap);
	va_end(ap);
}

static size_t count_prefix(Fixture *f, const char *prefix) {
	size_t n = 0;

	for (size_t i = 0; i < f->n_events; i++) {
		n += strncmp(f->events[i], prefix, strlen(prefix)) == 0;
	}
	return n;
}

static const char *find_prefix(Fixture *f, const char *prefix) {
	for (size_t i = 0; i < f->n_events; i++) {
		if (strncmp(f->events[i], prefix, strlen(prefix)) == 0) {
			return f->events[i];
		}
	}
	return NULL;
}

static void on_changed(void *userdata) {
	Fixture *f = userdata;

	record(f, "changed:%s", account_state_to_string(account_get_state(f->account)));
}

static void on_login_done(int error, const char *message, void *userdata) {
	record(userdata, "done:%d:%s", error, strempty(message));
}

static void on_online(void *userdata) {
	record(userdata, "online");
}

static void on_offline(const char *reason, void *userdata) {
	record(userdata, "offline:%s", reason);
}

static int on_list(const WireListEntry *entries, size_t n, uint64_t grace, void *userdata) {
	record(userdata, "list:%zu", n);
	return 0;
}

static void on_peer(const WireMessage *w, void *userdata) {
	record(userdata, "peer:%s", w->name);
}

static const AccountCallbacks callbacks = {
	.changed = on_changed,
	.login_done = on_login_done,
	.online = on_online,
	.offline = on_offline,
	.list = on_list,
	.peer_login = on_peer,
	.peer_logout = on_peer,
};

static Endpoint loopback(uint16_t port) {
	Endpoint e = { .in.sin_family = AF_INET, .in.sin_port = htons(port) };

	e.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return e;
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(Fixture));
	Endpoint bind_address = loopback(0);
	char path[128];
	socklen_t len = sizeof(f->coord.in);

	assert_non_null(f);
	(void) snprintf(f->dir, sizeof(f->dir), "/tmp/test-daemon-account-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	(void) snprintf(path, sizeof(path), "%s/config.json", f->dir);
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(config_new(path, &f->config), 0);
	assert_int_equal(identity_generate(&f->identity), 0);
	(void) snprintf(path, sizeof(path), "%s/known-coordinators", f->dir);
	assert_int_equal(coordinator_pins_load(path, &f->pins, NULL), 0);
	assert_int_equal(udp_new(f->event, &f->udp), 0);
	assert_int_equal(udp_open(f->udp, &bind_address), 0);

	f->coord = loopback(0);
	f->coord_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->coord_fd >= 0);
	assert_int_equal(bind(f->coord_fd, &f->coord.sa, sizeof(f->coord.in)), 0);
	assert_int_equal(getsockname(f->coord_fd, &f->coord.sa, &len), 0);
	(void) endpoint_format(&f->coord, f->coord_text);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;
	char cmd[96];

	f->account = account_free(f->account);
	f->udp = udp_free(f->udp);
	f->config = config_free(f->config);
	f->pins = coordinator_pins_free(f->pins);
	f->identity = identity_free(f->identity);
	safe_close(f->coord_fd);
	sd_event_unref(f->event);
	(void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The next datagram to the coordinator, as text (UTF-16LE decoded). */
static void coord_receive(Fixture *f, WireMessage *ret, Endpoint *ret_from) {
	uint8_t buf[2048];
	socklen_t len = sizeof(ret_from->in);
	ssize_t n = -1;

	for (int i = 0; i < 200 && n < 0; i++) {
		n = recvfrom(f->coord_fd, buf, sizeof(buf), MSG_DONTWAIT, &ret_from->sa, &len);
		if (n < 0) {
			assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
		}
	}
	assert_true(n > 0);
	assert_int_equal(wire_parse_datagram(buf, (size_t) n, ret, NULL), 0);
}

static void coord_send(Fixture *f, const Endpoint *to, const char *text) {
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n;

	assert_int_equal(wire_encode_datagram(text, strlen(text), WIRE_ENCODING_UTF16LE, &buf,
			&n), 0);
	assert_int_equal(sendto(f->coord_fd, buf, n, 0, &to->sa, endpoint_socklen(to)),
			(ssize_t) n);
}

static void run_until_events(Fixture *f, size_t n) {
	for (int i = 0; i < 200 && f->n_events < n; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_true(f->n_events >= n);
}

static void test_account_bad_coordinator(void **state) {
	Fixture *f = *state;

	assert_int_equal(account_new(f->event, f->udp, f->config, f->identity, f->pins,
			&callbacks, f, &f->account), 0);
	assert_int_equal(account_login(f->account, "alice", "127.0.0.1:99999"), -EINVAL);
	assert_int_equal(account_login(f->account, "alice", "[::1"), -EINVAL);
	/* The socket is IPv4 only: an IPv6 coordinator cannot be reached. */
	assert_int_equal(account_login(f->account, "alice", "[::1]:7474"), -EINVAL);
	assert_int_equal(f->n_events, 0);
	assert_int_equal(account_get_state(f->account), ACCOUNT_STATE_OFFLINE);
	assert_null(account_get_username(f->account));
}

static void test_account_logout_cancels_login(void **state) {
	Fixture *f = *state;
	WireMessage w = {};
	Endpoint from;

	assert_int_equal(account_new(f->event, f->udp, f->config, f->identity, f->pins,
			&callbacks, f, &f->account), 0);
	assert_int_equal(account_login(f->account, "alice", f->coord_text), 0);
	assert_int_equal(account_get_state(f->account), ACCOUNT_STATE_CONNECTING);
	assert_string_equal(account_get_username(f->account), "alice");
	assert_string_equal(account_get_coordinator(f->account), f->coord_text);
	assert_non_null(account_get_local_endpoint(f->account));
	assert_string_equal(f->events[0], "changed:connecting");

	/* The login datagram, with our declared endpoint and caps. */
	coord_receive(f, &w, &from);
	assert_int_equal(w.type, WIRE_TYPE_LOGIN);
	assert_string_equal(w.name, "alice");
	assert_true(endpoint_equal(&w.endpoint, udp_get_address(f->udp)));
	assert_string_equal(w.caps, WIRE_CAPS_NATIVE);
	wire_message_done(&w);

	f->n_events = 0;
	assert_int_equal(account_logout(f->account, true), 0);
	assert_int_equal(count_prefix(f, "done:"), 1);
	assert_string_equal(find_prefix(f, "done:"),
			"done:-125:Login cancelled by Logout() or shutdown");
	assert_int_equal(count_prefix(f, "offline:logged-out"), 1);
	assert_int_equal(account_get_state(f->account), ACCOUNT_STATE_OFFLINE);
	assert_null(account_get_username(f->account));
	/* A second logout is a no-op. */
	f->n_events = 0;
	assert_int_equal(account_logout(f->account, true), 0);
	assert_int_equal(f->n_events, 0);
}

static void test_account_rejected(void **state) {
	Fixture *f = *state;
	WireMessage w = {};
	Endpoint from;

	assert_int_equal(account_new(f->event, f->udp, f->config, f->identity, f->pins,
			&callbacks, f, &f->account), 0);
	assert_int_equal(account_login(f->account, "alice", f->coord_text), 0);
	coord_receive(f, &w, &from);
	wire_message_done(&w);
	f->n_events = 0;
	coord_send(f, &from, "Reject,name-taken");
	run_until_events(f, 1);
	assert_int_equal(count_prefix(f, "done:"), 1);
	assert_string_equal(find_prefix(f, "done:"),
			"done:-98:Name 'alice' is taken (name-taken)");
	assert_int_equal(count_prefix(f, "offline:"), 1);
	assert_int_equal(account_get_state(f->account), ACCOUNT_STATE_OFFLINE);
}

static int on_exit_now(sd_event_source *s, void *userdata) {
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* A finished loop: nothing can be added to it any more (-ESTALE). */
static sd_event *finished_event(void) {
	sd_event *e = NULL;

	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(sd_event_add_defer(e, NULL, on_exit_now, NULL), 0);
	assert_int_equal(sd_event_loop(e), 0);
	return e;
}

static void on_link_online(void *userdata) {
	fail_msg("link reported online");
}

static void on_link_failed(int error, const char *reason, void *userdata) {
	(*(unsigned *) userdata)++;
}

static const CoordinatorLinkCallbacks link_callbacks = {
	.online = on_link_online,
	.lost = on_link_online,
	.failed = on_link_failed,
};

static void test_account_link_start_fails_once(void **state) {
	Fixture *f = *state;
	_cleanup_(sd_event_unrefp) sd_event *finished = finished_event();
	_cleanup_(coordinator_link_freep) CoordinatorLink *l = NULL;
	unsigned failures = 0;
	char want[160];

	/* The link itself: an error returned, nothing reported. */
	assert_int_equal(coordinator_link_new(finished, f->udp, f->identity, &link_callbacks,
			&failures, &l), 0);
	assert_true(coordinator_link_start(l, "alice", &f->coord, udp_get_address(f->udp)) < 0);
	assert_int_equal(failures, 0);

	/* The account over such a link: one failure, naming the coordinator. */
	assert_int_equal(account_new(finished, f->udp, f->config, f->identity, f->pins,
			&callbacks, f, &f->account), 0);
	assert_true(account_login(f->account, "alice", f->coord_text) < 0);
	assert_int_equal(count_prefix(f, "done:"), 1);
	assert_int_equal(count_prefix(f, "offline:"), 1);
	(void) snprintf(want, sizeof(want), "done:%d:Coordinator refused login: internal error",
			-ESTALE);
	assert_string_equal(find_prefix(f, "done:"), want);
	assert_int_equal(account_get_state(f->account), ACCOUNT_STATE_OFFLINE);
}

/* Every way of writing one coordinator finds one pin; the account keeps its identity. */
static void test_account_coordinator_pins(void **state) {
	Fixture *f = *state;
	uint8_t key[IDENTITY_PUBLIC_KEY_SIZE], other[IDENTITY_PUBLIC_KEY_SIZE];
	char fingerprint[IDENTITY_FINGERPRINT_SIZE];

	memset(key, 1, sizeof(key));
	memset(other, 2, sizeof(other));
	identity_fingerprint(other, fingerprint);
	assert_int_equal(account_new(f->event, f->udp, f->config, f->identity, f->pins,
			&callbacks, f, &f->account), 0);
	assert_ptr_equal(account_get_identity(f->account), f->identity);

	assert_int_equal(account_check_coordinator_key(f->account, "Chat.Example.ORG", key), 1);
	assert_int_equal(account_check_coordinator_key(f->account, "chat.example.org:7474",
			key), 0);
	assert_int_equal(account_check_coordinator_key(f->account, "127.0.0.1", key), 1);
	assert_int_equal(account_check_coordinator_key(f->account, "127.0.0.1:7474", key), 0);
	/* "" is the config's coordinator, localhost:7474. */
	assert_int_equal(account_check_coordinator_key(f->account, "", key), 1);
	assert_int_equal(account_check_coordinator_key(f->account, "LOCALHOST", key), 0);

	assert_int_equal(account_trust_coordinator(f->account, "chat.example.org", fingerprint),
			-ENOKEY);
	assert_int_equal(account_check_coordinator_key(f->account, "chat.example.org", other),
			-EKEYREJECTED);
	assert_int_equal(account_trust_coordinator(f->account, "CHAT.example.org:7474",
			fingerprint), 0);
	assert_int_equal(account_check_coordinator_key(f->account, "chat.example.org", other),
			0);
	assert_int_equal(account_check_coordinator_key(f->account, "[::1", key), -EINVAL);
	assert_int_equal(account_trust_coordinator(f->account, "a:b:c", fingerprint), -EINVAL);
	assert_int_equal(f->n_events, 0);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_account_bad_coordinator),
		T(test_account_logout_cancels_login),
		T(test_account_rejected),
		T(test_account_link_start_fails_once),
		T(test_account_coordinator_pins),
	};

	return cmocka_run_group_tests_name("account", tests, NULL, NULL);
}
