/* SPDX-License-Identifier: MIT */

/*
 * The daemon's D-Bus face without a broker: the daemon exports its objects
 * on one end of a socketpair, the test is the client on the other end, and
 * plays the coordinator itself on loopback sockets (UDP login, TCP session),
 * so the login state machine, the roster objects and the named errors are
 * exercised in one process.
 */

#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/bus-api.h"
#include "common/bus-errors.h"
#include "common/endpoint.h"
#include "common/identity.h"
#include "common/macro.h"
#include "common/noise-stream.h"
#include "common/wire.h"
#include "daemon/daemon.h"

typedef struct Fixture {
	sd_event *event;
	sd_bus *server;
	sd_bus *client;
	Daemon *daemon;
	int coord_udp;
	int coord_tcp;
	Endpoint coord;
	uint16_t tcp_port;
	unsigned joined, left;
	char last_joined[64], last_left[64];
	Identity *coord_id;      /* the fake coordinator's key */
	NoiseStream *session;    /* its session, once the handshake is done */
	WireFrameDecoder inner;  /* the frames inside the session's messages */
} Fixture;

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Fixture *f = userdata;
	const char *name;

	if (sd_bus_message_read(m, "s", &name) < 0) {
		return 0;
	}
	if (streq(sd_bus_message_get_member(m), "PeerJoined")) {
		f->joined++;
		(void) snprintf(f->last_joined, sizeof(f->last_joined), "%s", name);
	} else {
		f->left++;
		(void) snprintf(f->last_left, sizeof(f->last_left), "%s", name);
	}
	return 0;
}

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(*f));
	Endpoint bind_address = {}, tcp;
	sd_id128_t id;
	int pair[2];
	socklen_t len = sizeof(f->coord.in);

	assert_non_null(f);
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
	assert_int_equal(sd_id128_randomize(&id), 0);

	assert_int_equal(sd_bus_new(&f->server), 0);
	assert_int_equal(sd_bus_set_fd(f->server, pair[0], pair[0]), 0);
	assert_int_equal(sd_bus_set_server(f->server, 1, id), 0);
	assert_int_equal(sd_bus_set_anonymous(f->server, 1), 0);
	assert_int_equal(sd_bus_start(f->server), 0);
	assert_int_equal(sd_bus_attach_event(f->server, f->event, 0), 0);

	assert_int_equal(sd_bus_new(&f->client), 0);
	assert_int_equal(sd_bus_set_fd(f->client, pair[1], pair[1]), 0);
	assert_int_equal(sd_bus_set_anonymous(f->client, 1), 0);
	assert_int_equal(sd_bus_start(f->client), 0);
	assert_int_equal(sd_bus_attach_event(f->client, f->event, 0), 0);
	assert_true(sd_bus_match_signal(f->client, NULL, NULL, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, "PeerJoined", on_signal, f) >= 0);
	assert_true(sd_bus_match_signal(f->client, NULL, NULL, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, "PeerLeft", on_signal, f) >= 0);

	/* The test's coordinator: UDP and TCP on one loopback port. */
	f->coord.in.sin_family = AF_INET;
	f->coord.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->coord_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->coord_udp >= 0);
	assert_int_equal(bind(f->coord_udp, &f->coord.sa, sizeof(f->coord.in)), 0);
	assert_int_equal(getsockname(f->coord_udp, &f->coord.sa, &len), 0);
	/* The Accept names the TCP port: it need not be the UDP one. */
	tcp = f->coord;
	endpoint_set_port(&tcp, 0);
	f->coord_tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->coord_tcp >= 0);
	assert_int_equal(bind(f->coord_tcp, &tcp.sa, sizeof(tcp.in)), 0);
	assert_int_equal(listen(f->coord_tcp, 4), 0);
	len = sizeof(tcp.in);
	assert_int_equal(getsockname(f->coord_tcp, &tcp.sa, &len), 0);
	f->tcp_port = endpoint_port(&tcp);

	bind_address.in.sin_family = AF_INET;
	bind_address.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(daemon_new(f->event, &bind_address, &f->daemon), 0);
	assert_int_equal(daemon_export(f->daemon, f->server), 0);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	(void) daemon_stop(f->daemon);
	f->daemon = daemon_free(f->daemon);
	sd_bus_flush_close_unref(f->client);
	sd_bus_flush_close_unref(f->server);
	safe_close(f->coord_udp);
	safe_close(f->coord_tcp);
	noise_stream_free(f->session);
	identity_free(f->coord_id);
	wire_frame_decoder_done(&f->inner);
	sd_event_unref(f->event);
	free(f);
	return 0;
}

/* Runs the loop until *done or 5 s passed. */
static void run_until(Fixture *f, const int *done) {
	for (int i = 0; i < 500 && !*done; i++) {
		assert_true(sd_event_run(f->event, 10000) >= 0);
	}
	assert_true(*done);
}

typedef struct Reply {
	int done;
	char error[128];
	sd_bus_message *m;
} Reply;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Reply *r = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	r->done = 1;
	(void) snprintf(r->error, sizeof(r->error), "%s", e ? e->name : "");
	r->m = sd_bus_message_ref(m);
	return 0;
}

static void call_async(Fixture *f, Reply *r, const char *path, const char *iface,
		const char *method, const char *types, ...) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	va_list ap;

	memset(r, 0, sizeof(*r));
	assert_true(sd_bus_message_new_method_call(f->client, &m, NULL, path, iface, method) >= 0);
	if (types) {
		va_start(ap, types);
		assert_true(sd_bus_message_appendv(m, types, ap) >= 0);
		va_end(ap);
	}
	assert_true(sd_bus_call_async(f->client, NULL, m, on_reply, r, 0) >= 0);
}

#define CALL(f, r, method, ...)                                                   \
	do {                                                                      \
		call_async(f, r, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, method,  \
				__VA_ARGS__);                                     \
		run_until(f, &(r)->done);                                         \
	} while (0)

static void get_string(Fixture *f, const char *path, const char *iface, const char *prop,
		char *buf, size_t n) {
	const char *s;
	Reply r;

	call_async(f, &r, path, "org.freedesktop.DBus.Properties", "Get", "ss", iface, prop);
	run_until(f, &r.done);
	assert_string_equal(r.error, "");
	assert_true(sd_bus_message_read(r.m, "v", "s", &s) > 0);
	(void) snprintf(buf, n, "%s", s);
	sd_bus_message_unref(r.m);
}

static bool get_peer_bool(Fixture *f, const char *name, const char *prop) {
	_cleanup_free_ char *path = NULL;
	int b = -1;
	Reply r;

	assert_int_equal(sd_bus_path_encode(P2PCHAT_PEER_PATH_PREFIX, name, &path), 0);
	call_async(f, &r, path, "org.freedesktop.DBus.Properties", "Get", "ss",
			P2PCHAT_PEER_INTERFACE, prop);
	run_until(f, &r.done);
	assert_string_equal(r.error, "");
	assert_true(sd_bus_message_read(r.m, "v", "b", &b) > 0);
	sd_bus_message_unref(r.m);
	return b;
}

/* The number of peers ListPeers() returns. */
static unsigned count_peers(Fixture *f) {
	unsigned n = 0;
	Reply r;

	CALL(f, &r, "ListPeers", NULL);
	assert_string_equal(r.error, "");
	assert_true(sd_bus_message_enter_container(r.m, 'a', "(ssba{sv})") > 0);
	while (sd_bus_message_skip(r.m, "(ssba{sv})") > 0) {
		n++;
	}
	sd_bus_message_unref(r.m);
	return n;
}

static void test_manager_bus_errors(void **state) {
	static const struct {
		const char *method, *types, *a, *b, *error;
	} cases[] = {
		{ "Login", "ss", "", "127.0.0.1:1", BUS_ERROR_INVALID_NAME },
		{ "Login", "ss", "a,b", "127.0.0.1:1", BUS_ERROR_INVALID_NAME },
		{ "Login", "ss", "end", "127.0.0.1:1", BUS_ERROR_INVALID_NAME },
		{ "Login", "ss", "alice", "no where", SD_BUS_ERROR_INVALID_ARGS },
		{ "Login", "ss", "alice", "::1", SD_BUS_ERROR_INVALID_ARGS },
		{ "Login", "ss", "alice", "127.0.0.1:99999", SD_BUS_ERROR_INVALID_ARGS },
		{ "SendMessage", "ss", "bob", "hi", BUS_ERROR_NOT_LOGGED_IN },
		{ "Logout", NULL, NULL, NULL, BUS_ERROR_NOT_LOGGED_IN },
		{ "ListPeers", NULL, NULL, NULL, "" },
	};
	Fixture *f = *state;
	char buf[64];

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		Reply r;

		if (cases[i].types) {
			CALL(f, &r, cases[i].method, cases[i].types, cases[i].a, cases[i].b);
		} else {
			CALL(f, &r, cases[i].method, NULL);
		}
		assert_string_equal(r.error, cases[i].error);
		sd_bus_message_unref(r.m);
	}
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "State", buf, sizeof(buf));
	assert_string_equal(buf, "offline");
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "Username", buf, sizeof(buf));
	assert_string_equal(buf, "");
}

/* Reads one datagram on the test coordinator's socket, as UTF-8. */
static void coord_recv(Fixture *f, WireMessage *ret, Endpoint *ret_from) {
	uint8_t buf[2048];
	socklen_t len = sizeof(ret_from->in);
	int got = 0;
	ssize_t n = -1;

	for (int i = 0; i < 500 && !got; i++) {
		n = recvfrom(f->coord_udp, buf, sizeof(buf), MSG_DONTWAIT, &ret_from->sa, &len);
		got = n > 0;
		if (!got) {
			assert_true(sd_event_run(f->event, 10000) >= 0);
		}
	}
	assert_true(got);
	assert_int_equal(wire_detect_encoding(buf, (size_t) n), WIRE_ENCODING_UTF16LE);
	assert_int_equal(wire_parse_datagram(buf, (size_t) n, ret, NULL), 0);
}

static void coord_send_udp(Fixture *f, const WireMessage *m, const Endpoint *to) {
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n;

	assert_int_equal(wire_format_datagram(m, WIRE_ENCODING_UTF16LE, &buf, &n), 0);
	assert_int_equal(sendto(f->coord_udp, buf, n, 0, &to->sa, endpoint_socklen(to)),
			(ssize_t) n);
}

/* One frame to the daemon; sealed once the session's handshake is done. */
static void tcp_send_bytes(Fixture *f, int fd, const uint8_t *buf, size_t len) {
	_cleanup_free_ uint8_t *frame = NULL, *sealed = NULL;
	size_t n, sealed_len = 0, allocated = 0;

	/* Framed by hand: a handshake message is no UTF-8. */
	frame = malloc(WIRE_LEB128_MAX + len);
	assert_non_null(frame);
	n = leb128_encode(len, frame);
	memcpy(frame + n, buf, len);
	n += len;
	if (f->session) {
		assert_int_equal(noise_stream_seal_frames(f->session, frame, n, &sealed,
				&sealed_len, &allocated), 0);
		assert_int_equal(send(fd, sealed, sealed_len, MSG_NOSIGNAL), (ssize_t) sealed_len);
		return;
	}
	assert_int_equal(send(fd, frame, n, MSG_NOSIGNAL), (ssize_t) n);
}

static void tcp_send(Fixture *f, int fd, const char *text) {
	tcp_send_bytes(f, fd, (const uint8_t *) text, strlen(text));
}

/* Reads one frame as it comes (binary allowed), running the loop while waiting. */
static char *tcp_recv_frame(Fixture *f, int fd, size_t *ret_len) {
	WireFrameDecoder d;
	char *text = NULL;
	uint8_t b;

	wire_frame_decoder_init(&d, 4096);
	wire_frame_decoder_set_binary(&d, NOISE_MAX_MESSAGE);
	for (int i = 0; i < 500 && !text;) {
		size_t used;
		ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);

		if (n <= 0) {
			assert_true(sd_event_run(f->event, 10000) >= 0);
			i++;
			continue;
		}
		if (wire_frame_decoder_feed(&d, &b, 1, &used) == 1) {
			assert_int_equal(wire_frame_decoder_take(&d, &text, ret_len), 0);
		}
	}
	wire_frame_decoder_done(&d);
	assert_non_null(text);
	return text;
}

/* Reads one frame of text from the daemon: from inside the session once there is one. */
static char *tcp_recv(Fixture *f, int fd) {
	char *text = NULL;
	size_t len;

	while (f->session && !text) {
		_cleanup_free_ char *sealed = tcp_recv_frame(f, fd, &len);
		size_t used;

		assert_int_equal(noise_stream_open(f->session, (uint8_t *) sealed, len,
				(uint8_t *) sealed), 0);
		assert_true(wire_frame_decoder_feed(&f->inner, (uint8_t *) sealed,
				len - NOISE_TAG_SIZE, &used) >= 0);
		if (wire_frame_decoder_take(&f->inner, &text, &len) < 0) {
			text = NULL;
		}
	}
	return text ?: tcp_recv_frame(f, fd, &len);
}

/* The coordinator's half of the session's Noise XX handshake, after @hello. */
static void coord_handshake(Fixture *f, int fd, const char *hello) {
	_cleanup_(noise_stream_freep) NoiseStream *s = NULL;
	_cleanup_free_ char *m1 = NULL, *m3 = NULL;
	uint8_t out[NOISE_STREAM_HANDSHAKE_MAX];
	size_t n1, n3, out_len;

	assert_int_equal(identity_generate(&f->coord_id), 0);
	assert_int_equal(noise_stream_new(NOISE_ROLE_RESPONDER, f->coord_id, hello, strlen(hello),
			&s), 0);
	m1 = tcp_recv_frame(f, fd, &n1);
	assert_int_equal(noise_stream_handshake(s, (uint8_t *) m1, n1, out, &out_len), 0);
	tcp_send_bytes(f, fd, out, out_len);
	m3 = tcp_recv_frame(f, fd, &n3);
	assert_int_equal(noise_stream_handshake(s, (uint8_t *) m3, n3, out, &out_len), 1);
	assert_int_equal(out_len, 0);
	wire_frame_decoder_init(&f->inner, 0);
	f->session = TAKE_PTR(s);
}

static void test_manager_bus_login_rejected(void **state) {
	Fixture *f = *state;
	WireMessage m = {}, reject = { .type = WIRE_TYPE_REJECT };
	char coord[ENDPOINT_STRLEN], buf[64];
	Endpoint from;
	Reply r;

	call_async(f, &r, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "Login", "ss", "alice",
			endpoint_format(&f->coord, coord));
	coord_recv(f, &m, &from);
	assert_int_equal(m.type, WIRE_TYPE_LOGIN);
	assert_string_equal(m.name, "alice");
	assert_string_equal(m.caps, WIRE_CAPS_NATIVE);
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "State", buf, sizeof(buf));
	assert_string_equal(buf, "connecting");

	(void) snprintf(reject.reason, sizeof(reject.reason), "name-taken");
	coord_send_udp(f, &reject, &m.endpoint);
	run_until(f, &r.done);
	assert_string_equal(r.error, BUS_ERROR_NAME_TAKEN);
	sd_bus_message_unref(r.m);
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "State", buf, sizeof(buf));
	assert_string_equal(buf, "offline");
}

static void test_manager_bus_native_session(void **state) {
	Fixture *f = *state;
	WireMessage m = {}, accept = { .type = WIRE_TYPE_ACCEPT };
	char coord[ENDPOINT_STRLEN], ep[ENDPOINT_STRLEN], list[256], buf[64];
	_cleanup_free_ char *hello = NULL, *logout = NULL;
	_cleanup_free_ char *bob_path = NULL;
	_cleanup_close_ int fd = -EBADF;
	Endpoint from;
	Reply r;

	call_async(f, &r, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "Login", "ss", "alice",
			endpoint_format(&f->coord, coord));
	coord_recv(f, &m, &from);
	accept.port = f->tcp_port;
	coord_send_udp(f, &accept, &m.endpoint);

	for (int i = 0; i < 500 && fd < 0; i++) {
		fd = accept4(f->coord_tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			assert_true(sd_event_run(f->event, 10000) >= 0);
		}
	}
	assert_true(fd >= 0);
	hello = tcp_recv(f, fd);
	assert_string_equal(hello, "hello,alice," WIRE_CAPS_NATIVE "+" WIRE_CAPS_NOISE);
	coord_handshake(f, fd, hello);

	(void) snprintf(list, sizeof(list), "bob,127.0.0.1:9,native1;carol,127.0.0.1:10;alice,%s,"
			"native1;end", endpoint_format(&m.endpoint, ep));
	tcp_send(f, fd, "welcome,native1");
	tcp_send(f, fd, list);
	run_until(f, &r.done);
	assert_string_equal(r.error, "");
	sd_bus_message_unref(r.m);
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "State", buf, sizeof(buf));
	assert_string_equal(buf, "online");
	get_string(f, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE, "LocalEndpoint", buf, sizeof(buf));
	assert_string_equal(buf, ep);
	assert_int_equal(count_peers(f), 2); /* not ourselves */
	assert_true(get_peer_bool(f, "bob", "Native"));
	assert_false(get_peer_bool(f, "carol", "Native"));

	assert_int_equal(sd_bus_path_encode(P2PCHAT_PEER_PATH_PREFIX, "bob", &bob_path), 0);
	get_string(f, bob_path, P2PCHAT_PEER_INTERFACE, "Endpoint", buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:9");

	/* Pushes: a stale logout changes nothing, the right one is a leave. */
	for (int i = 0; i < 50; i++) {
		assert_true(sd_event_run(f->event, 1000) >= 0);
	}
	assert_int_equal(f->joined, 2);
	tcp_send(f, fd, "logout,bob,127.0.0.1:8");
	tcp_send(f, fd, "login,dave,127.0.0.1:11,native1");
	for (int i = 0; i < 500 && f->joined < 3; i++) {
		assert_true(sd_event_run(f->event, 10000) >= 0);
	}
	assert_int_equal(f->joined, 3);
	assert_string_equal(f->last_joined, "dave");
	assert_int_equal(f->left, 0);
	tcp_send(f, fd, "logout,bob,127.0.0.1:9");
	for (int i = 0; i < 500 && f->left < 1; i++) {
		assert_true(sd_event_run(f->event, 10000) >= 0);
	}
	assert_string_equal(f->last_left, "bob");
	assert_false(get_peer_bool(f, "bob", "Online"));

	/* Logout says so on the session. */
	CALL(f, &r, "Logout", NULL);
	assert_string_equal(r.error, "");
	sd_bus_message_unref(r.m);
	logout = tcp_recv(f, fd);
	assert_string_equal(logout + strlen("logout,alice,"), ep);
	assert_int_equal(count_peers(f), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	return remove(path);
}

int main(void) {
	/* The daemon keeps its history and config under XDG dirs: a private one. */
	char dir[] = "/tmp/test-daemon-bus-XXXXXX";
	int r;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(setenv("XDG_DATA_HOME", dir, 1), 0);
	assert_int_equal(setenv("XDG_CONFIG_HOME", dir, 1), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_manager_bus_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manager_bus_login_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manager_bus_native_session, setup, teardown),
	};

	r = cmocka_run_group_tests_name("daemon-bus", tests, NULL, NULL);
	(void) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
