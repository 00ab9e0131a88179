/* SPDX-License-Identifier: MIT */

/*
 * The CoordinatorLink is owned by the Account (account.c) and lives as long
 * as the daemon; a login runs it from coordinator_link_start() to
 * coordinator_link_stop().  It sends through the daemon's Udp socket and
 * reports through CoordinatorLinkCallbacks, after which it touches nothing
 * of its own that the callback may have changed.  It runs this state machine:
 *
 *   LOGIN      "login,NAME,EP,native1" (UTF-16LE) to the coordinator by UDP,
 *              resent with backoff until "Accept,PORT" or "Reject,REASON";
 *   CONNECTING TCP connect to the Accept's source IP and PORT;
 *   HANDSHAKE  frame "hello,NAME,native1+noise1" and Noise XX message 1
 *              sent; a native coordinator answers message 2 (its key, which
 *              the owner checks against its pin), we send message 3, and
 *              from then on every frame is encrypted: "welcome,CAPS", the
 *              list, pushes.  A reference coordinator sends just the list in
 *              clear and then closes;
 *   SESSION    native: login/logout pushes and ping/pong on the encrypted
 *              connection, whose loss means the coordinator is gone;
 *   REFERENCE  reference coordinator: login/logout forwards by UDP, accepted
 *              only from the coordinator's IP (the reference server sends
 *              every datagram from a new socket, so its port says nothing),
 *              and a list fetched again every LINK_REFETCH_USEC to repair
 *              lost forwards;
 *   BACKOFF    waiting before the next login attempt.
 *
 * Before the first success, every failure retries until
 * LINK_LOGIN_TIMEOUT_USEC and then fails Login().  After it, a lost
 * coordinator is retried forever (the Manager shows "connecting"), and the
 * next list is reconciled with the roster so only real changes are signalled.
 */

#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/noise-stream.h"
#include "common/time-util.h"
#include "daemon/coordinator-link.h"

/* sd-event's default slack (250 ms) is as long as the first retry. */
#define LINK_TIMER_ACCURACY_USEC (10 * USEC_PER_MSEC)
#define LINK_FIRST_RETRY_USEC (250 * USEC_PER_MSEC)
#define LINK_MAX_RETRY_USEC (2 * USEC_PER_SEC)
#define LINK_HANDSHAKE_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define LINK_PING_USEC (5 * USEC_PER_SEC)
#define LINK_DEAD_USEC (15 * USEC_PER_SEC)
#define LINK_REFETCH_USEC (5 * USEC_PER_SEC)
/*
 * Only a session that lasted this long resets the backoff: two daemons
 * logging in under one name from one IP replace each other's session at the
 * coordinator, and must not do so at full speed forever.
 */
#define LINK_STABLE_USEC (30 * USEC_PER_SEC)
/* How long peers missing from the first list after a reconnect may take to return. */
#define LINK_RECONCILE_GRACE_USEC (5 * USEC_PER_SEC)

typedef enum LinkPhase {
	LINK_IDLE,
	LINK_LOGIN,
	LINK_CONNECTING,
	LINK_HANDSHAKE,
	LINK_SESSION,
	LINK_REFERENCE,
	LINK_BACKOFF,
	_LINK_PHASE_MAX,
	_LINK_PHASE_INVALID = -EINVAL,
} LinkPhase;

struct CoordinatorLink {
	sd_event *event;
	Udp *udp; /* not owned */
	const CoordinatorLinkCallbacks *callbacks;
	void *userdata;
	char username[WIRE_NAME_MAX_BYTES + 1];
	Endpoint coordinator;
	Endpoint declared;
	LinkPhase phase;
	bool established; /* online at least once since Login() */
	bool welcomed;
	bool fetching;    /* REFERENCE: a list fetch is running on tcp_fd */
	uint64_t deadline;
	uint64_t interval;
	uint64_t last_rx;
	uint64_t online_since;
	uint16_t tcp_port;
	sd_event_source *timer;
	int tcp_fd;
	sd_event_source *tcp_source;
	WireFrameDecoder decoder;  /* what arrives: binary frames of a session */
	const Identity *identity;  /* not owned */
	NoiseStream *noise;        /* the session's handshake, then its cipher */
	WireFrameDecoder inner;    /* the frames inside the session's messages */
	bool authenticated;        /* online with a coordinator that proved its key */
	uint8_t coordinator_key[IDENTITY_PUBLIC_KEY_SIZE]; /* the key it proved */
};

static void tcp_close(CoordinatorLink *l) {
	l->tcp_source = sd_event_source_disable_unref(l->tcp_source);
	l->tcp_fd = safe_close(l->tcp_fd);
	wire_frame_decoder_done(&l->decoder);
	wire_frame_decoder_init(&l->decoder, WIRE_FRAME_MAX);
	wire_frame_decoder_done(&l->inner);
	wire_frame_decoder_init(&l->inner, WIRE_FRAME_MAX);
	l->noise = noise_stream_free(l->noise);
	l->fetching = false;
}

static void on_datagram(const WireMessage *msg, const Endpoint *from, void *userdata);

int coordinator_link_new(sd_event *event, Udp *udp, const Identity *identity,
		const CoordinatorLinkCallbacks *callbacks, void *userdata, CoordinatorLink **ret) {
	CoordinatorLink *l;

	l = calloc(1, sizeof(*l));
	if (!l) {
		return -ENOMEM;
	}
	l->event = sd_event_ref(event);
	l->udp = udp;
	l->callbacks = callbacks;
	l->userdata = userdata;
	l->tcp_fd = -EBADF;
	l->identity = identity;
	wire_frame_decoder_init(&l->decoder, WIRE_FRAME_MAX);
	wire_frame_decoder_init(&l->inner, WIRE_FRAME_MAX);
	udp_set_wire_handler(udp, WIRE_TYPE_ACCEPT, on_datagram, l);
	udp_set_wire_handler(udp, WIRE_TYPE_REJECT, on_datagram, l);
	udp_set_wire_handler(udp, WIRE_TYPE_LOGIN, on_datagram, l);
	udp_set_wire_handler(udp, WIRE_TYPE_LOGOUT, on_datagram, l);
	*ret = l;
	return 0;
}

CoordinatorLink *coordinator_link_free(CoordinatorLink *l) {
	if (!l) {
		return NULL;
	}
	l->timer = sd_event_source_disable_unref(l->timer);
	tcp_close(l);
	wire_frame_decoder_done(&l->decoder);
	wire_frame_decoder_done(&l->inner);
	l->event = sd_event_unref(l->event);
	return mfree(l);
}

static int timer_arm(CoordinatorLink *l, uint64_t delay);

static void link_fail(CoordinatorLink *l, int error, const char *reason) {
	l->timer = sd_event_source_disable_unref(l->timer);
	tcp_close(l);
	l->phase = LINK_IDLE;
	/* Last: the owner may stop or restart the link from here. */
	l->callbacks->failed(error, reason, l->userdata);
}

static int send_udp(CoordinatorLink *l, WireType type) {
	_cleanup_free_ uint8_t *buf = NULL;
	WireMessage w = { .type = type };
	size_t n;
	int r;

	(void) snprintf(w.name, sizeof(w.name), "%s", l->username);
	w.endpoint = l->declared;
	if (type == WIRE_TYPE_LOGIN) {
		(void) snprintf(w.caps, sizeof(w.caps), "%s", WIRE_CAPS_NATIVE);
	}
	/* UTF-16LE: the encoding the reference server understands. */
	r = wire_format_datagram(&w, WIRE_ENCODING_UTF16LE, &buf, &n);
	if (r < 0) {
		return r;
	}
	return udp_send(l->udp, &l->coordinator, buf, n);
}

static int send_bytes(CoordinatorLink *l, const uint8_t *buf, size_t n) {
	ssize_t k;

	/* Control frames are tiny: a short write means a socket we cannot use. */
	k = send(l->tcp_fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k < 0) {
		return -errno;
	}
	if ((size_t) k != n) {
		return -EAGAIN;
	}
	return 0;
}

/* One frame on the session: encrypted once the handshake is done. */
static int send_frame(CoordinatorLink *l, const WireMessage *w) {
	_cleanup_free_ uint8_t *frame = NULL, *sealed = NULL;
	_cleanup_free_ char *line = NULL;
	size_t n, frame_len, sealed_len = 0, allocated = 0;
	int r;

	r = wire_format_line(w, &line, &n);
	if (r < 0) {
		return r;
	}
	r = wire_frame_encode(line, n, &frame, &frame_len);
	if (r < 0) {
		return r;
	}
	if (!l->noise || !noise_stream_is_ready(l->noise)) {
		return send_bytes(l, frame, frame_len);
	}
	r = noise_stream_seal_frames(l->noise, frame, frame_len, &sealed, &sealed_len,
			&allocated);
	if (r < 0) {
		return r;
	}
	return send_bytes(l, sealed, sealed_len);
}

/* A binary frame (a handshake message) as it is. */
static int send_raw_frame(CoordinatorLink *l, const uint8_t *msg, size_t n) {
	uint8_t buf[WIRE_LEB128_MAX + NOISE_STREAM_HANDSHAKE_MAX];
	size_t k;

	assert(n <= NOISE_STREAM_HANDSHAKE_MAX);
	k = leb128_encode(n, buf);
	memcpy(buf + k, msg, n);
	return send_bytes(l, buf, k + n);
}

/* One login attempt, from the UDP datagram on.  Reports nothing. */
static int attempt_start(CoordinatorLink *l) {
	int r;

	tcp_close(l);
	l->phase = LINK_LOGIN;
	l->welcomed = false;
	r = send_udp(l, WIRE_TYPE_LOGIN);
	if (r < 0) {
		log_debug_errno(r, "Failed to send login datagram, retrying: %m");
	}
	r = timer_arm(l, l->interval);
	if (r < 0) {
		l->timer = sd_event_source_disable_unref(l->timer);
		l->phase = LINK_IDLE;
		return r;
	}
	return 0;
}

/* The next attempt, from the loop: a failure ends the login. */
static void attempt_next(CoordinatorLink *l) {
	int r;

	l->interval = MIN(l->interval * 2, LINK_MAX_RETRY_USEC);
	r = attempt_start(l);
	if (r < 0) {
		link_fail(l, r, "internal error");
	}
}

/* Something went wrong with this attempt or session: back off and retry. */
static void attempt_failed(CoordinatorLink *l, int error, const char *what) {
	bool was_online = l->phase == LINK_SESSION || l->phase == LINK_REFERENCE;
	int r;

	tcp_close(l);
	if (!l->established && now_usec(CLOCK_MONOTONIC) >= l->deadline) {
		link_fail(l, -EHOSTUNREACH, what);
		return;
	}
	if (error < 0) {
		log_debug_errno(error, "Coordinator link: %s: %m", what);
	}
	if (was_online) {
		log_notice("Lost the coordinator (%s), logging in again.", what);
		if (now_usec(CLOCK_MONOTONIC) - l->online_since >= LINK_STABLE_USEC) {
			l->interval = LINK_FIRST_RETRY_USEC;
		}
		l->callbacks->lost(l->userdata);
	}
	l->phase = LINK_BACKOFF;
	r = timer_arm(l, l->interval);
	if (r < 0) {
		link_fail(l, r, "internal error");
	}
}

static void link_online(CoordinatorLink *l, bool native) {
	l->phase = native ? LINK_SESSION : LINK_REFERENCE;
	l->authenticated = native;
	l->last_rx = l->online_since = now_usec(CLOCK_MONOTONIC);
	l->established = true;
	if (!native) {
		log_info("Coordinator is a reference server: following its UDP forwards.");
		tcp_close(l);
	}
	if (timer_arm(l, native ? LINK_PING_USEC : LINK_REFETCH_USEC) < 0) {
		attempt_failed(l, -ENOMEM, "timer");
		return;
	}
	l->callbacks->online(l->userdata);
}

static int reject_to_errno(const char *reason) {
	if (streq(reason, "replaced")) {
		return -EOWNERDEAD;
	}
	if (strstr(reason, "taken") || strstr(reason, "in-use") || strstr(reason, "duplicate")) {
		return -EADDRINUSE;
	}
	if (strstr(reason, "name")) {
		return -EDOM;
	}
	return -EACCES;
}

static void handle_reject(CoordinatorLink *l, const char *reason) {
	/*
	 * Another daemon with our key logged in: it has the name now, and
	 * logging in again would only take it back and forth.
	 */
	if (!l->established || streq(reason, "replaced")) {
		link_fail(l, reject_to_errno(reason), reason);
		return;
	}
	log_warning("Coordinator refused to log us in again: '%s', retrying.", reason);
	attempt_failed(l, 0, reason);
}

static bool frame_is_list(const char *s, size_t n) {
	return (n == 3 && memcmp(s, "end", 3) == 0) || (n >= 4 && memcmp(s + n - 4, ";end", 4) == 0);
}

static int handle_list(CoordinatorLink *l, const char *s, size_t n) {
	_cleanup_free_ WireListEntry *entries = NULL;
	size_t n_entries;
	int r;

	r = wire_parse_list(s, n, &entries, &n_entries);
	if (r < 0) {
		return log_warning_errno(r, "Failed to parse the coordinator's list: %m");
	}
	return l->callbacks->list(entries, n_entries,
			l->phase == LINK_HANDSHAKE && l->established ? LINK_RECONCILE_GRACE_USEC : 0,
			l->userdata);
}

static void handle_push(CoordinatorLink *l, const WireMessage *w) {
	if (w->type == WIRE_TYPE_LOGIN) {
		l->callbacks->peer_login(w, l->userdata);
	} else {
		l->callbacks->peer_logout(w, l->userdata);
	}
}

/* Returns < 0 when the connection must be dropped. */
static int handle_frame(CoordinatorLink *l, const char *s, size_t n) {
	WireMessage w = {};
	int r;

	l->last_rx = now_usec(CLOCK_MONOTONIC);

	if (frame_is_list(s, n)) {
		r = handle_list(l, s, n);
		if (r < 0) {
			return r;
		}
		if (l->phase == LINK_HANDSHAKE) {
			link_online(l, l->welcomed);
		} else if (l->fetching) {
			tcp_close(l);
		}
		return 0;
	}

	r = wire_parse_line(s, n, &w);
	if (r < 0) {
		log_debug_errno(r, "Ignoring unparsable frame from the coordinator: %m");
		return 0;
	}
	switch (w.type) {
	case WIRE_TYPE_WELCOME:
		if (l->phase == LINK_HANDSHAKE) {
			l->welcomed = true;
		}
		break;
	case WIRE_TYPE_REJECT:
		handle_reject(l, w.reason);
		r = -ECONNREFUSED;
		break;
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_LOGOUT:
		if (l->phase == LINK_SESSION) {
			handle_push(l, &w);
		}
		break;
	case WIRE_TYPE_PING:
		r = send_frame(l, &(WireMessage) { .type = WIRE_TYPE_PONG });
		break;
	case WIRE_TYPE_PONG:
		break;
	case WIRE_TYPE_ACCEPT:
	case WIRE_TYPE_TALK:
	case WIRE_TYPE_HELLO:
		log_debug("Ignoring unexpected '%s' frame from the coordinator.",
				wire_type_to_string(w.type));
		break;
	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		abort();
	}
	wire_message_done(&w);
	return r;
}

/* A handshake message from the coordinator: ours follows, then the owner checks its key. */
static int handle_handshake(CoordinatorLink *l, const uint8_t *msg, size_t n) {
	uint8_t out[NOISE_STREAM_HANDSHAKE_MAX];
	size_t out_len = 0;
	int r;

	r = noise_stream_handshake(l->noise, msg, n, out, &out_len);
	if (r < 0) {
		return log_warning_errno(r, "The coordinator's handshake failed: %m");
	}
	if (r == 0) {
		return -EPROTO; /* XX: message 2 completes the handshake on our side */
	}
	r = l->callbacks->verify_coordinator(noise_stream_get_remote_key(l->noise), l->userdata);
	if (r < 0) {
		char fp[IDENTITY_FINGERPRINT_SIZE];

		identity_fingerprint(noise_stream_get_remote_key(l->noise), fp);
		link_fail(l, r, fp);
		return r;
	}
	memcpy(l->coordinator_key, noise_stream_get_remote_key(l->noise), IDENTITY_PUBLIC_KEY_SIZE);
	r = send_raw_frame(l, out, out_len);
	if (r < 0) {
		return r;
	}
	/* From now on: transport messages of at most NOISE_MAX_MESSAGE bytes. */
	wire_frame_decoder_set_binary(&l->decoder, NOISE_MAX_MESSAGE);
	return 0;
}

/* Decrypts a transport message and handles the frames inside it. */
static int handle_sealed(CoordinatorLink *l, uint8_t *msg, size_t n) {
	int r;

	r = noise_stream_open(l->noise, msg, n, msg);
	if (r < 0) {
		return log_warning_errno(r, "A frame from the coordinator failed authentication: %m");
	}
	n -= NOISE_TAG_SIZE;
	for (size_t off = 0; off < n && l->tcp_fd >= 0;) {
		_cleanup_free_ char *frame = NULL;
		size_t used, len;

		r = wire_frame_decoder_feed(&l->inner, msg + off, n - off, &used);
		if (r < 0) {
			return log_warning_errno(r, "Bad frame from the coordinator: %m");
		}
		off += used;
		if (r == 0) {
			break;
		}
		r = wire_frame_decoder_take(&l->inner, &frame, &len);
		if (r < 0) {
			return r;
		}
		r = handle_frame(l, frame, len);
		if (r < 0) {
			return r;
		}
	}
	return 0;
}

/*
 * A frame on the TCP connection.  During the handshake it is either the
 * coordinator's handshake message (binary) or, from a reference server,
 * the list in clear (a reference server sends nothing else); our
 * coordinator's clear "Reject" of a hello it refuses is handled too.
 */
static int handle_session_frame(CoordinatorLink *l, char *s, size_t n) {
	if (!l->noise) {
		return handle_frame(l, s, n); /* a reference list fetch */
	}
	if (noise_stream_is_ready(l->noise)) {
		return handle_sealed(l, (uint8_t *) s, n);
	}
	if (utf8_is_valid(s, n) && (frame_is_list(s, n) || (n > 7 && memcmp(s, "Reject,", 7) == 0))) {
		int r;

		if (frame_is_list(s, n)) {
			r = l->callbacks->verify_coordinator(NULL, l->userdata);
			if (r < 0) {
				link_fail(l, r, "");
				return r;
			}
		}
		return handle_frame(l, s, n);
	}
	return handle_handshake(l, (const uint8_t *) s, n);
}

static void tcp_closed(CoordinatorLink *l, int error) {
	switch (l->phase) {
	case LINK_REFERENCE:
		if (l->fetching) {
			/* The reference server no longer answers: it was restarted or is gone. */
			attempt_failed(l, error, "list fetch failed");
		} else {
			tcp_close(l); /* the reference server closes after the list */
		}
		return;
	case LINK_CONNECTING:
	case LINK_HANDSHAKE:
		attempt_failed(l, error, "session refused");
		return;
	case LINK_SESSION:
		attempt_failed(l, error, "session closed");
		return;
	case LINK_IDLE:
	case LINK_LOGIN:
	case LINK_BACKOFF:
		tcp_close(l);
		return;
	case _LINK_PHASE_MAX:
	case _LINK_PHASE_INVALID:
		abort();
	}
}

static int on_tcp_readable(CoordinatorLink *l) {
	uint8_t buf[16384];
	ssize_t n;
	int r;

	for (int i = 0; i < 64; i++) {
		n = recv(l->tcp_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				return 0;
			}
			tcp_closed(l, -errno);
			return 0;
		}
		if (n == 0) {
			tcp_closed(l, 0);
			return 0;
		}
		for (size_t off = 0; off < (size_t) n && l->tcp_fd >= 0;) {
			_cleanup_free_ char *frame = NULL;
			size_t used, len;

			r = wire_frame_decoder_feed(&l->decoder, buf + off, (size_t) n - off, &used);
			if (r < 0) {
				log_warning_errno(r, "Bad frame from the coordinator: %m");
				tcp_closed(l, r);
				return 0;
			}
			off += used;
			if (r == 0) {
				break;
			}
			r = wire_frame_decoder_take(&l->decoder, &frame, &len);
			if (r < 0) {
				tcp_closed(l, r);
				return 0;
			}
			r = handle_session_frame(l, frame, len);
			if (r < 0 && l->tcp_fd >= 0) {
				tcp_closed(l, r);
				return 0;
			}
		}
		if (l->tcp_fd < 0) {
			return 0;
		}
	}
	return 0;
}

/* The hello in clear and Noise message 1, in one write; the hello is the handshake's prologue. */
static int send_hello(CoordinatorLink *l) {
	WireMessage hello = { .type = WIRE_TYPE_HELLO };
	uint8_t buf[WIRE_LEB128_MAX + WIRE_CONTROL_MAX + WIRE_LEB128_MAX + NOISE_STREAM_HANDSHAKE_MAX];
	uint8_t msg[NOISE_STREAM_HANDSHAKE_MAX];
	_cleanup_free_ char *line = NULL;
	size_t n, k, msg_len = 0;
	int r;

	(void) snprintf(hello.name, sizeof(hello.name), "%s", l->username);
	(void) snprintf(hello.caps, sizeof(hello.caps), "%s+%s", WIRE_CAPS_NATIVE, WIRE_CAPS_NOISE);
	r = wire_format_line(&hello, &line, &n);
	if (r < 0) {
		return r;
	}
	l->noise = noise_stream_free(l->noise);
	r = noise_stream_new(NOISE_ROLE_INITIATOR, l->identity, line, n, &l->noise);
	if (r < 0) {
		return r;
	}
	r = noise_stream_handshake(l->noise, NULL, 0, msg, &msg_len);
	if (r < 0) {
		return r;
	}
	k = leb128_encode(n, buf);
	memcpy(buf + k, line, n);
	k += n;
	k += leb128_encode(msg_len, buf + k);
	memcpy(buf + k, msg, msg_len);
	k += msg_len;
	/* What follows is binary: the handshake, or the list of a reference server. */
	wire_frame_decoder_set_binary(&l->decoder, WIRE_FRAME_MAX);
	return send_bytes(l, buf, k);
}

static int on_tcp_connected(CoordinatorLink *l) {
	socklen_t len = sizeof(int);
	int error = 0, r;

	if (getsockopt(l->tcp_fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0) {
		error = errno;
	}
	if (error != 0) {
		tcp_closed(l, -error);
		return 0;
	}
	r = sd_event_source_set_io_events(l->tcp_source, EPOLLIN);
	if (r < 0) {
		tcp_closed(l, r);
		return 0;
	}
	if (l->fetching) {
		return 0; /* a reference list fetch: say nothing, read the list */
	}

	r = send_hello(l);
	if (r < 0) {
		tcp_closed(l, r);
		return 0;
	}
	l->phase = LINK_HANDSHAKE;
	r = timer_arm(l, LINK_HANDSHAKE_TIMEOUT_USEC);
	if (r < 0) {
		tcp_closed(l, r);
	}
	return 0;
}

static int on_tcp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	CoordinatorLink *l = userdata;

	if (l->phase == LINK_CONNECTING || (l->fetching && (revents & EPOLLOUT))) {
		return on_tcp_connected(l);
	}
	return on_tcp_readable(l);
}

static int tcp_connect(CoordinatorLink *l) {
	Endpoint to = l->coordinator, from = l->declared;
	_cleanup_close_ int fd = -EBADF;
	int r;

	endpoint_set_port(&to, l->tcp_port);
	tcp_close(l);
	fd = socket(endpoint_family(&to), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	/*
	 * The coordinator takes the hello only from the login's source IP: the
	 * declared address (the UDP socket's own, or the routed source).
	 */
	if (endpoint_family(&from) == endpoint_family(&to) && !endpoint_is_any(&from)) {
		endpoint_set_port(&from, 0);
		if (bind(fd, &from.sa, endpoint_socklen(&from)) < 0) {
			return -errno;
		}
	}
	if (connect(fd, &to.sa, endpoint_socklen(&to)) < 0 && errno != EINPROGRESS) {
		return -errno;
	}
	r = sd_event_add_io(l->event, &l->tcp_source, fd, EPOLLOUT, on_tcp, l);
	if (r < 0) {
		return r;
	}
	l->tcp_fd = TAKE_FD(fd);
	return 0;
}

static void handle_accept(CoordinatorLink *l, uint16_t port) {
	int r;

	l->tcp_port = port;
	r = tcp_connect(l);
	if (r < 0) {
		attempt_failed(l, r, "connect failed");
		return;
	}
	l->phase = LINK_CONNECTING;
	r = timer_arm(l, LINK_HANDSHAKE_TIMEOUT_USEC);
	if (r < 0) {
		attempt_failed(l, r, "timer");
	}
}

/* Accept, Reject and login/logout forwards that arrived on the UDP socket. */
static void on_datagram(const WireMessage *msg, const Endpoint *from, void *userdata) {
	CoordinatorLink *l = userdata;

	switch (msg->type) {
	case WIRE_TYPE_ACCEPT:
		if (l->phase == LINK_LOGIN && endpoint_same_ip(from, &l->coordinator)) {
			handle_accept(l, msg->port);
		}
		return;
	case WIRE_TYPE_REJECT:
		if (l->phase == LINK_LOGIN && endpoint_same_ip(from, &l->coordinator)) {
			handle_reject(l, msg->reason);
		}
		return;
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_LOGOUT:
		/*
		 * Forwards count only from a reference coordinator, only from its
		 * IP: like Accept, they leave the reference server from a new
		 * socket on an ephemeral port each.  Anyone on that host could
		 * forge one, as they could an Accept.
		 */
		if ((l->phase == LINK_REFERENCE || l->phase == LINK_HANDSHAKE) &&
				endpoint_same_ip(from, &l->coordinator)) {
			handle_push(l, msg);
		} else {
			log_debug("Ignoring '%s' datagram not from the reference coordinator.",
					wire_type_to_string(msg->type));
		}
		return;
	case WIRE_TYPE_TALK:
	case WIRE_TYPE_HELLO:
	case WIRE_TYPE_WELCOME:
	case WIRE_TYPE_PING:
	case WIRE_TYPE_PONG:
		return;
	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		abort();
	}
}

static void on_heartbeat(CoordinatorLink *l) {
	int r;

	if (now_usec(CLOCK_MONOTONIC) - l->last_rx > LINK_DEAD_USEC) {
		attempt_failed(l, -ETIMEDOUT, "heartbeat timeout");
		return;
	}
	r = send_frame(l, &(WireMessage) { .type = WIRE_TYPE_PING });
	if (r < 0) {
		attempt_failed(l, r, "ping failed");
		return;
	}
	(void) timer_arm(l, LINK_PING_USEC);
}

static void on_refetch(CoordinatorLink *l) {
	int r;

	if (l->fetching) {
		attempt_failed(l, -ETIMEDOUT, "list fetch timed out");
		return;
	}
	r = tcp_connect(l);
	if (r < 0) {
		attempt_failed(l, r, "list fetch failed");
		return;
	}
	l->fetching = true;
	(void) timer_arm(l, LINK_REFETCH_USEC);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	CoordinatorLink *l = userdata;

	switch (l->phase) {
	case LINK_LOGIN:
		if (!l->established && now_usec(CLOCK_MONOTONIC) >= l->deadline) {
			link_fail(l, -EHOSTUNREACH, "no answer from the coordinator");
			return 0;
		}
		attempt_next(l);
		return 0;
	case LINK_BACKOFF:
		attempt_next(l);
		return 0;
	case LINK_CONNECTING:
	case LINK_HANDSHAKE:
		attempt_failed(l, -ETIMEDOUT, "session handshake timed out");
		return 0;
	case LINK_SESSION:
		on_heartbeat(l);
		return 0;
	case LINK_REFERENCE:
		on_refetch(l);
		return 0;
	case LINK_IDLE:
		return 0;
	case _LINK_PHASE_MAX:
	case _LINK_PHASE_INVALID:
		abort();
	}
	return 0;
}

static int timer_arm(CoordinatorLink *l, uint64_t delay) {
	int r;

	if (!l->timer) {
		return sd_event_add_time_relative(l->event, &l->timer, CLOCK_MONOTONIC,
				delay, LINK_TIMER_ACCURACY_USEC, on_timer, l);
	}
	r = sd_event_source_set_time_relative(l->timer, delay);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

int coordinator_link_start(CoordinatorLink *l, const char *username, const Endpoint *coordinator,
		const Endpoint *declared) {
	assert(l->phase == LINK_IDLE);

	(void) snprintf(l->username, sizeof(l->username), "%s", username);
	l->coordinator = *coordinator;
	l->declared = *declared;
	l->established = false;
	l->interval = LINK_FIRST_RETRY_USEC;
	l->deadline = now_usec(CLOCK_MONOTONIC) + LINK_LOGIN_TIMEOUT_USEC;
	return attempt_start(l);
}

const uint8_t *coordinator_link_get_coordinator_key(const CoordinatorLink *l) {
	return l->authenticated ? l->coordinator_key : NULL;
}

void coordinator_link_set_declared(CoordinatorLink *l, const Endpoint *declared) {
	l->declared = *declared;
}

void coordinator_link_stop(CoordinatorLink *l, bool say_logout) {
	int r = 0;

	if (say_logout) {
		if (l->phase == LINK_SESSION) {
			WireMessage w = { .type = WIRE_TYPE_LOGOUT };

			(void) snprintf(w.name, sizeof(w.name), "%s", l->username);
			w.endpoint = l->declared;
			r = send_frame(l, &w);
		} else if (l->phase != LINK_IDLE) {
			r = send_udp(l, WIRE_TYPE_LOGOUT);
		}
		if (r < 0) {
			log_debug_errno(r, "Failed to send logout, ignoring: %m");
		}
	}
	l->timer = sd_event_source_disable_unref(l->timer);
	tcp_close(l);
	l->phase = LINK_IDLE;
	l->established = false;
}
