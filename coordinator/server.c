/* SPDX-License-Identifier: MIT */

/*
 * The Server owns the sockets, the Presence (and through it the users), the
 * UDP out queue, the connection pool and every Client; it lives for the
 * whole process.  A Client is one accepted TCP connection and the protocol
 * spoken on it: it lives from accept until its Connection closes.  A new
 * Client is UNBOUND: if it sends "hello,NAME,CAPS" (CAPS with noise1)
 * within the grace, a Noise XX HANDSHAKE follows in binary frames, and once
 * the client proved its key it becomes the SESSION of that user (welcome,
 * list, then every login/logout pushed in order, all encrypted); if it says
 * nothing it gets the reference behaviour (the list, then close).  Datagrams are handled as they arrive; everything they
 * cause (session frames, UDP forwards) is queued, and one post source per
 * loop iteration writes each dirty connection once and sends the forwards
 * with sendmmsg(): in a login storm many events share one syscall.
 *
 * A second UDP socket, on an ephemeral port, sends presence's probes and
 * reads the ICMP errors they draw from its error queue (IP_RECVERR): only
 * probes leave from it, so every error it reports is about a probe, and the
 * listen socket's sends never see a stale socket error.
 */

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Needs struct timespec from <time.h>. */
#include <linux/errqueue.h>

#include <systemd/sd-daemon.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/noise-stream.h"
#include "common/time-util.h"
#include "coordinator/bindings.h"
#include "coordinator/connection.h"
#include "coordinator/list.h"
#include "coordinator/presence.h"
#include "coordinator/server.h"
#include "coordinator/timeout-queue.h"
#include "coordinator/udp-queue.h"
#include "coordinator/user.h"

/* Datagrams read per recvmmsg() call, and calls per wakeup. */
#define RX_BATCH 64
#define RX_ROUNDS 8
/* Reading stops for this loop iteration once TX_QUEUE_SOFT forwards are
 * waiting, so a login storm is paced by the sending instead of overflowing
 * the queue (see udp-queue.c). */
#define TX_QUEUE_SOFT (32u * 1024u)
/* Connections accepted per wakeup. */
#define ACCEPT_BATCH 64
/* TCP liveness: keepalive probes after 15 s idle, every 5 s, 3 of them;
 * unacknowledged data for 30 s kills the connection too. */
#define KEEPALIVE_IDLE_SEC 15
#define KEEPALIVE_INTERVAL_SEC 5
#define KEEPALIVE_COUNT 3
#define USER_TIMEOUT_MSEC 30000
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)
/* Error reports (or stray datagrams) read from the probe socket per wakeup. */
#define PROBE_RX_BATCH 256

void server_config_init(ServerConfig *c) {
	*c = (ServerConfig) {
		.tcp_port = -1,
		.max_users = 10000,
		.max_connections = 12000,
		.max_conns_per_ip = 16,
		.login_rate = 10,
		.login_burst = 20,
		.max_datagram = 1024,
		.output_cap = 1024 * 1024,
		.grace = 100 * USEC_PER_MSEC,
		.lease = 600 * USEC_PER_SEC,
		.session_wait = 10 * USEC_PER_SEC,
		.pending_wait = 10 * USEC_PER_SEC,
		.max_names_per_ip = 64,
		.max_pending_per_ip = 8,
		.ping_interval = 30 * USEC_PER_SEC,
		.probe_interval = 10 * USEC_PER_SEC,
		.probe_count = 2,
		.probe_rate = 1000,
		.drain_timeout = 10 * USEC_PER_SEC,
	};
	c->listen.in = (struct sockaddr_in) {
		.sin_family = AF_INET,
		.sin_port = htons(COORDINATOR_DEFAULT_PORT),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
}

/* Where a datagram came from and the local address it was sent to. */
typedef struct Origin {
	Endpoint source;
	bool have_pktinfo;
	struct in_pktinfo pi4;
	struct in6_pktinfo pi6;
} Origin;

typedef enum ClientState {
	CLIENT_UNBOUND,    /* waiting for a hello within the grace */
	CLIENT_HANDSHAKE,  /* said hello: the Noise handshake runs */
	CLIENT_SESSION,    /* bound to a user */
	CLIENT_CLOSING,  /* its connection writes its last output, then ends */
	_CLIENT_STATE_MAX,
	_CLIENT_STATE_INVALID = -EINVAL,
} ClientState;

/* A TCP client: its connection and what it is to the protocol. */
typedef struct Client {
	Server *server;          /* not owned */
	Connection *connection;  /* closing it frees the Client */
	ListNode node;           /* Server.clients */
	TimeoutLink grace;       /* Server.grace_queue while UNBOUND */
	ClientState state;
	User *user;              /* not owned; SESSION only */
	WireMessage *hello;      /* HANDSHAKE only */
	NoiseStream *handshake;  /* HANDSHAKE only; the connection's cipher after */
	bool pinged;             /* our ping is unanswered (or, in HANDSHAKE, a check passed) */
} Client;

struct Server {
	ServerConfig config;
	sd_event *event;
	Presence *presence;
	ConnectionPool *pool;
	UdpQueue *udp_out;

	int udp_fd;
	int tcp_fd;
	int probe_fd;
	sd_event_source *udp_source;
	sd_event_source *probe_source;
	sd_event_source *tcp_source;
	sd_event_source *post_source;
	sd_event_source *ping_timer;
	sd_event_source *housekeeping_timer;
	Endpoint udp_address;      /* as bound */
	uint16_t tcp_port;         /* as bound: what Accept announces */

	ListNode clients;          /* every Client */
	size_t n_connections;
	TimeoutQueue grace_queue;  /* UNBOUND clients */

	uint8_t *rx_buf;           /* RX_BATCH * (max_datagram + 1) */

	bool notify;               /* $NOTIFY_SOCKET is set */
	bool heap_busy;            /* buffers came and went: trim the heap */
	size_t status_users, status_sessions;

	/* Counters of the server's own calls; logged at exit together with
	 * those of the pool and the UDP queue (for operators and the benchmark). */
	uint64_t n_datagrams_in, n_datagrams_out;
	uint64_t n_reads;  /* recvmmsg() and accept4() calls */
	uint64_t n_writes; /* sendmsg() calls */
};

static uint64_t server_now(Server *s) {
	uint64_t now = 0;

	(void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
	return now;
}

/* Answers a datagram from the listen socket, from the address it was sent to:
 * the reference client connects TCP to the source IP of our Accept. */
static void server_reply(Server *s, const Origin *o, const Endpoint *dest, WireEncoding enc,
		const WireMessage *m, size_t request_len) {
	_cleanup_free_ uint8_t *buf = NULL;
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} control = {};
	struct iovec iov;
	struct msghdr mh = {
		.msg_name = (void *) &dest->sa,
		.msg_namelen = endpoint_socklen(dest),
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	size_t len;
	int r;

	r = wire_format_datagram(m, enc, &buf, &len);
	if (r < 0) {
		log_debug_errno(r, "Failed to format reply: %m");
		return;
	}
	if (len > request_len) {
		/* Never a reply larger than the request: no amplification. */
		return;
	}
	iov = (struct iovec) { .iov_base = buf, .iov_len = len };

	if (o->have_pktinfo && endpoint_family(dest) == endpoint_family(&s->udp_address)) {
		struct cmsghdr *cm;

		mh.msg_control = control.buf;
		cm = (struct cmsghdr *) control.buf;
		if (endpoint_family(dest) == AF_INET) {
			struct in_pktinfo pi = { .ipi_spec_dst = o->pi4.ipi_addr };

			mh.msg_controllen = CMSG_SPACE(sizeof(pi));
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		} else {
			mh.msg_controllen = CMSG_SPACE(sizeof(o->pi6));
			cm->cmsg_level = IPPROTO_IPV6;
			cm->cmsg_type = IPV6_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(o->pi6));
			memcpy(CMSG_DATA(cm), &o->pi6, sizeof(o->pi6));
		}
	}

	s->n_writes++;
	if (sendmsg(s->udp_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		log_debug_errno(errno, "Failed to send %s: %m", wire_type_to_string(m->type));
		return;
	}
	s->n_datagrams_out++;
}

static void server_reply_reject(Server *s, const Origin *o, const Endpoint *dest,
		WireEncoding enc, const char *reason, size_t request_len) {
	WireMessage m = { .type = WIRE_TYPE_REJECT };

	(void) snprintf(m.reason, sizeof(m.reason), "%s", reason);
	server_reply(s, o, dest, enc, &m, request_len);
}

/* Sends the queued forwards; when the socket is full, again once it is writable. */
static void server_flush_udp(Server *s) {
	int r;

	r = udp_queue_flush(s->udp_out, s->udp_fd);
	(void) sd_event_source_set_io_events(s->udp_source, r > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* TCP clients. */

static Registry *server_get_registry(Server *s) {
	return presence_get_registry(s->presence);
}

/* Stops reading @c's frames and closes it once its output is written. */
static void client_shutdown(Client *c) {
	c->state = CLIENT_CLOSING;
	timeout_link_remove(&c->grace);
	connection_shutdown(c->connection);
}

static void client_refuse(Client *c, const char *reason) {
	WireMessage m = { .type = WIRE_TYPE_REJECT };

	(void) snprintf(m.reason, sizeof(m.reason), "%s", reason);
	(void) connection_queue_line(c->connection, &m);
	client_shutdown(c);
}

/*
 * The list is the one large frame: it is written straight from the
 * registry's roster text, and only what the kernel does not take is copied.
 * Thousands of sessions then do not each hold a copy of the roster.
 */
static int client_send_list(Client *c) {
	const char *list;
	size_t len;
	int r;

	if (connection_is_doomed(c->connection)) {
		return -ECONNRESET;
	}
	r = registry_get_list(server_get_registry(c->server), &list, &len);
	if (r < 0) {
		return r;
	}
	return connection_send_frame(c->connection, list, len);
}

static void client_end_handshake(Client *c) {
	c->hello = mfree(c->hello);
	c->handshake = noise_stream_free(c->handshake);
}

/* A hello: the handshake that proves the client's key follows. */
static void client_hello(Client *c, const WireMessage *m, const char *text, size_t len) {
	int r;

	timeout_link_remove(&c->grace);
	if (!wire_caps_has(m->caps, WIRE_CAPS_NOISE)) {
		client_refuse(c, "auth-required");
		return;
	}
	c->hello = malloc(sizeof(WireMessage));
	if (c->hello) {
		*c->hello = *m;  /* a hello owns no text */
	} else {
		connection_doom(c->connection, "out of memory");
		return;
	}
	r = noise_stream_new(NOISE_ROLE_RESPONDER, c->server->config.identity, text, len,
			&c->handshake);
	if (r < 0) {
		connection_doom(c->connection, "cannot start the handshake");
		return;
	}
	c->state = CLIENT_HANDSHAKE;
	connection_set_binary(c->connection, NOISE_MAX_MESSAGE);
}

static const char *hello_error_to_reason(int error) {
	switch (error) {
	case -EEXIST:
		return "name-taken";
	case -ENOSPC:
		return "full";
	default:
		return "not-logged-in";
	}
}

/* The handshake is done: the session is encrypted from now on, a refusal too. */
static void client_bind(Client *c) {
	WireMessage welcome = { .type = WIRE_TYPE_WELCOME };
	const uint8_t *key = noise_stream_get_remote_key(c->handshake);
	User *u;
	int r;

	r = presence_hello(c->server->presence, c, connection_get_peer(c->connection), c->hello,
			key, &u);
	connection_start_cipher(c->connection, TAKE_PTR(c->handshake));
	client_end_handshake(c);
	if (r < 0) {
		client_refuse(c, hello_error_to_reason(r));
		return;
	}

	c->state = CLIENT_SESSION;
	c->user = u;

	(void) snprintf(welcome.caps, sizeof(welcome.caps), "%s", WIRE_CAPS_NATIVE);
	if (connection_queue_line(c->connection, &welcome) < 0 || client_send_list(c) < 0) {
		if (!connection_is_doomed(c->connection)) {
			connection_doom(c->connection, "cannot queue the list");
		}
		return;
	}
	log_debug("Session of '%s' bound.", user_get_name(u));
}

static void client_handle_session_frame(Client *c, const WireMessage *m) {
	switch (m->type) {
	case WIRE_TYPE_PING: {
		WireMessage pong = { .type = WIRE_TYPE_PONG };

		(void) connection_queue_line(c->connection, &pong);
		break;
	}
	case WIRE_TYPE_LOGOUT:
		presence_session_logout(c->server->presence, c->user, m);
		break;
	case WIRE_TYPE_PONG:
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_ACCEPT:
	case WIRE_TYPE_REJECT:
	case WIRE_TYPE_TALK:
	case WIRE_TYPE_HELLO:
	case WIRE_TYPE_WELCOME:
		break;
	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		abort();
	}
}

/* A binary frame of the handshake. */
static void client_handshake(Client *c, const char *text, size_t len) {
	uint8_t out[NOISE_STREAM_HANDSHAKE_MAX];
	size_t n = 0;
	int r;

	r = noise_stream_handshake(c->handshake, (const uint8_t *) text, len, out, &n);
	if (r < 0) {
		char buf[ENDPOINT_STRLEN];

		log_debug_errno(r, "Handshake of '%s' from %s failed: %m", c->hello->name,
				endpoint_format(connection_get_peer(c->connection), buf));
		connection_doom(c->connection, "handshake failed");
		return;
	}
	if (n > 0 && connection_queue_frame(c->connection, (const char *) out, n) < 0) {
		return;
	}
	if (r > 0) {
		client_bind(c);
	}
}

static void on_client_frame(Connection *connection, const char *text, size_t len,
		void *userdata) {
	Client *c = userdata;
	WireMessage m = {};
	int r;

	if (c->state == CLIENT_HANDSHAKE) {
		client_handshake(c, text, len);
		return;
	}
	r = wire_parse_line(text, len, &m);
	switch (c->state) {
	case CLIENT_UNBOUND:
		if (r < 0 || m.type != WIRE_TYPE_HELLO) {
			client_refuse(c, "invalid");
		} else {
			client_hello(c, &m, text, len);
		}
		break;
	case CLIENT_HANDSHAKE:
		break;
	case CLIENT_SESSION:
		if (r < 0) {
			/* Unknown frames are ignored so that the protocol can grow. */
			log_debug_errno(r, "Ignoring unparsable frame on session of '%s': %m",
					user_get_name(c->user));
			break;
		}
		client_handle_session_frame(c, &m);
		break;
	case CLIENT_CLOSING:
		break;
	case _CLIENT_STATE_MAX:
	case _CLIENT_STATE_INVALID:
		abort();
	}
	wire_message_done(&m);
}

static const char *on_client_bad_frame(Connection *connection, int error, void *userdata) {
	Client *c = userdata;

	switch (c->state) {
	case CLIENT_UNBOUND:
		client_refuse(c, "invalid");
		return NULL;
	case CLIENT_HANDSHAKE:
		return "bad handshake frame";
	case CLIENT_SESSION:
	case CLIENT_CLOSING:
		return "bad frame";
	case _CLIENT_STATE_MAX:
	case _CLIENT_STATE_INVALID:
		abort();
	}
	return NULL;
}

static void on_client_close(Connection *connection, const char *why, void *userdata) {
	Client *c = userdata;
	Server *s = c->server;
	User *u = c->user;

	if (why) {
		char buf[ENDPOINT_STRLEN];

		log_debug("Closing connection from %s%s%s%s: %s",
				endpoint_format(connection_get_peer(connection), buf),
				u ? " ('" : "", u ? user_get_name(u) : "", u ? "')" : "", why);
	}
	if (u) {
		c->user = NULL;
		presence_session_closed(s->presence, u, why ? why : "session closed");
	}

	client_end_handshake(c);
	list_remove(&c->node);
	timeout_link_remove(&c->grace);
	s->n_connections--;
	registry_conn_remove(server_get_registry(s), connection_get_peer(connection));
	free(c);
}

static const ConnectionCallbacks client_callbacks = {
	.on_frame = on_client_frame,
	.on_bad_frame = on_client_bad_frame,
	.on_close = on_client_close,
};

/* Takes @fd (non-blocking, connected, counted for @peer's IP); queues it for the grace. */
static int client_new(Server *s, int fd, const Endpoint *peer) {
	Client *c;
	int r;

	c = calloc(1, sizeof(Client));
	if (!c) {
		(void) safe_close(fd);
		registry_conn_remove(server_get_registry(s), peer);
		return -ENOMEM;
	}
	c->server = s;
	c->state = CLIENT_UNBOUND;

	r = connection_new(s->pool, fd, peer, &client_callbacks, c, &c->connection);
	if (r < 0) {
		registry_conn_remove(server_get_registry(s), peer);
		free(c);
		return r;
	}
	list_append(&s->clients, &c->node);
	s->n_connections++;

	r = timeout_queue_push(&s->grace_queue, &c->grace);
	if (r < 0) {
		connection_close(c->connection, NULL);
		return r;
	}
	return 0;
}

/*
 * The grace ran out: the reference behaviour, the list (newcomer included),
 * then close.  The connection proves its source IP (a handshake cannot be
 * forged blind), so the reference logins pending from that IP go online
 * first, and are in this list.
 */
static void on_grace_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Client *c = container_of(link, Client, grace);

	(void) presence_confirm(c->server->presence, connection_get_peer(c->connection));
	if (client_send_list(c) < 0 && !connection_is_doomed(c->connection)) {
		connection_doom(c->connection, "cannot queue the list");
	}
	client_shutdown(c);
}

/* The periodic liveness check of a session: ping it, or close it if silent. */
static void client_check_alive(Client *c) {
	WireMessage ping = { .type = WIRE_TYPE_PING };

	if (c->state == CLIENT_HANDSHAKE) {
		/* A handshake gets one to two check intervals. */
		if (c->pinged) {
			connection_doom(c->connection, "handshake timeout");
		}
		c->pinged = true;
		return;
	}
	if (c->state != CLIENT_SESSION || connection_is_doomed(c->connection)) {
		return;
	}
	if (connection_take_heard(c->connection)) {
		c->pinged = false;
		return;
	}
	if (c->pinged) {
		connection_doom(c->connection, "no answer to ping");
		return;
	}
	c->pinged = true;
	(void) connection_queue_line(c->connection, &ping);
}

/* Presence's callbacks: a session is a Client. */

static void on_presence_send_frame(void *session, const char *text, size_t len,
		void *userdata) {
	Client *c = session;

	(void) connection_queue_frame(c->connection, text, len);
}

static int on_presence_send_datagram(const Endpoint *dest, const uint8_t *buf, size_t len,
		void *userdata) {
	Server *s = userdata;

	return udp_queue_add(s->udp_out, dest, buf, len);
}

static void on_presence_drop_session(void *session, const char *reason, void *userdata) {
	Client *c = session;

	c->user = NULL;
	if (reason) {
		/* Told why, so that it does not log in again by itself. */
		client_refuse(c, reason);
		return;
	}
	client_shutdown(c);
	connection_doom(c->connection, "replaced or logged out");
}

static int on_presence_bind_name(const char *name,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE], void *userdata) {
	Server *s = userdata;
	int r;

	r = binding_store_bind(s->config.bindings, name, key, now_usec(CLOCK_REALTIME));
	if (r > 0) {
		char fp[IDENTITY_FINGERPRINT_SIZE];

		identity_fingerprint(key, fp);
		log_info("Bound '%s' to the key %s.", name, fp);
	} else if (r < 0 && r != -EEXIST) {
		log_error_errno(r, "Failed to bind '%s' to its key: %m", name);
	}
	return r;
}

static bool on_presence_name_is_bound(const char *name, void *userdata) {
	Server *s = userdata;
	uint8_t key[IDENTITY_PUBLIC_KEY_SIZE];
	int r;

	r = binding_store_lookup(s->config.bindings, name, key);
	if (r < 0) {
		/* Unsure: a name that may belong to someone is not given away. */
		log_warning_errno(r, "Failed to look up the binding of '%s', refusing: %m", name);
		return true;
	}
	return r > 0;
}

/*
 * The probe is an empty datagram: the reference client reads it as a message
 * of type "" and, like every type it does not know, ignores it.  Its host
 * answers it with ICMP port unreachable once the client is closed.
 */
static int on_presence_send_probe(const Endpoint *dest, void *userdata) {
	Server *s = userdata;

	for (unsigned attempt = 0;; attempt++) {
		s->n_writes++;
		if (sendto(s->probe_fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL, &dest->sa,
					endpoint_socklen(dest)) >= 0) {
			s->n_datagrams_out++;
			return 0;
		}
		/* An ICMP error not read yet fails the next send once (it is
		 * still in the error queue): send again. */
		if (attempt > 0 || !(errno == ECONNREFUSED || errno == EHOSTUNREACH ||
					errno == ENETUNREACH || errno == EHOSTDOWN ||
					errno == EINTR)) {
			return -errno;
		}
	}
}

static const PresenceCallbacks presence_callbacks = {
	.send_frame = on_presence_send_frame,
	.send_datagram = on_presence_send_datagram,
	.drop_session = on_presence_drop_session,
	.bind_name = on_presence_bind_name,
	.name_is_bound = on_presence_name_is_bound,
	.send_probe = on_presence_send_probe,
};

/* Whether @ee says a probe's destination is gone: port or host unreachable. */
static bool probe_error_is_unreachable(const struct sock_extended_err *ee) {
	switch (ee->ee_origin) {
	case SO_EE_ORIGIN_ICMP:
		return ee->ee_type == 3 && (ee->ee_code == 3 || ee->ee_code == 1);
	case SO_EE_ORIGIN_ICMP6:
		return ee->ee_type == 1 && (ee->ee_code == 4 || ee->ee_code == 3);
	default:
		return false;
	}
}

/* Reads the probe socket's error queue (and drops any datagram sent to it). */
static int on_probe_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
	Server *s = userdata;

	for (unsigned i = 0; i < PROBE_RX_BATCH; i++) {
		union {
			struct cmsghdr align;
			uint8_t buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
					sizeof(struct sockaddr_in6))];
		} control;
		Endpoint dest = {};
		uint8_t byte;
		struct iovec iov = { .iov_base = &byte, .iov_len = sizeof(byte) };
		struct msghdr mh = {
			.msg_name = &dest,
			.msg_namelen = sizeof(dest),
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};

		s->n_reads++;
		if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno == EINTR) {
				continue;
			}
			/* The error queue is empty: what is left is datagrams. */
			mh.msg_control = NULL;
			mh.msg_controllen = 0;
			s->n_reads++;
			if (recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC) < 0) {
				return 0;
			}
			continue;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			const struct sock_extended_err *ee;

			if (!((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
					(cm->cmsg_level == IPPROTO_IPV6 &&
					 cm->cmsg_type == IPV6_RECVERR))) {
				continue;
			}
			ee = (const struct sock_extended_err *) CMSG_DATA(cm);
			if (probe_error_is_unreachable(ee)) {
				presence_probe_unreachable(s->presence, &dest);
			}
		}
	}
	return 0;
}

/* Datagrams. */

static void server_handle_login(Server *s, const WireMessage *m, WireEncoding enc,
		const Origin *o, size_t request_len) {
	WireMessage accept = { .type = WIRE_TYPE_ACCEPT, .port = s->tcp_port };
	const Endpoint *dest;
	PresenceReply reply;

	/* Never send to a declared endpoint on another IP: it may be a third party. */
	dest = endpoint_same_ip(&m->endpoint, &o->source) ? &m->endpoint : &o->source;

	reply = presence_login(s->presence, m, enc, &o->source);
	switch (reply) {
	case PRESENCE_REPLY_NONE:
		break;
	case PRESENCE_REPLY_ACCEPT:
		server_reply(s, o, dest, enc, &accept, request_len);
		break;
	case PRESENCE_REPLY_NAME_TAKEN:
	case PRESENCE_REPLY_FULL:
		server_reply_reject(s, o, dest, enc, presence_reply_to_reason(reply), request_len);
		break;
	case _PRESENCE_REPLY_MAX:
	case _PRESENCE_REPLY_INVALID:
		abort();
	}
}

static void server_handle_datagram(Server *s, const uint8_t *buf, size_t n, const Origin *o) {
	WireMessage m = {};
	WireEncoding enc;
	int r;

	s->n_datagrams_in++;
	if (endpoint_equal(&o->source, &s->udp_address)) {
		return; /* our own forward, looped back */
	}

	r = wire_parse_datagram(buf, n, &m, &enc);
	if (r < 0) {
		char b[ENDPOINT_STRLEN];

		log_debug_errno(r, "Invalid datagram from %s: %m", endpoint_format(&o->source, b));
		/* Answer only within the rate limit, and never larger than the request. */
		if (r != -ENOMEM && registry_take_login_token(server_get_registry(s),
						&o->source, server_now(s)) > 0) {
			server_reply_reject(s, o, &o->source, wire_detect_encoding(buf, n),
					"invalid", n);
		}
		return;
	}

	switch (m.type) {
	case WIRE_TYPE_LOGIN:
		server_handle_login(s, &m, enc, o, n);
		break;
	case WIRE_TYPE_LOGOUT:
		presence_logout(s->presence, &m, &o->source);
		break;
	case WIRE_TYPE_ACCEPT:
	case WIRE_TYPE_REJECT:
	case WIRE_TYPE_TALK:
	case WIRE_TYPE_HELLO:
	case WIRE_TYPE_WELCOME:
	case WIRE_TYPE_PING:
	case WIRE_TYPE_PONG:
		/* Not for us: never answer, it may be a reflection attempt. */
		break;
	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		abort();
	}
	wire_message_done(&m);
}

static void origin_from_msghdr(Origin *o, const struct msghdr *mh) {
	*o = (Origin) {};
	(void) endpoint_from_sockaddr(mh->msg_name, mh->msg_namelen, &o->source);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
			cm = CMSG_NXTHDR((struct msghdr *) mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			memcpy(&o->pi4, CMSG_DATA(cm), sizeof(o->pi4));
			o->have_pktinfo = true;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			memcpy(&o->pi6, CMSG_DATA(cm), sizeof(o->pi6));
			o->have_pktinfo = true;
		}
	}
}

static int on_udp(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
	Server *s = userdata;
	size_t size = s->config.max_datagram + 1;

	if (revents & EPOLLOUT) {
		server_flush_udp(s);
	}
	if (!(revents & EPOLLIN)) {
		return 0;
	}

	for (unsigned round = 0; round < RX_ROUNDS; round++) {
		if (udp_queue_n_pending(s->udp_out) >= TX_QUEUE_SOFT) {
			return 0; /* the rest after the flush, in the next iteration */
		}

		struct mmsghdr msgs[RX_BATCH];
		struct iovec iovs[RX_BATCH];
		Endpoint names[RX_BATCH];
		union {
			struct cmsghdr align;
			uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		} controls[RX_BATCH];
		int n;

		for (unsigned i = 0; i < RX_BATCH; i++) {
			iovs[i] = (struct iovec) {
				.iov_base = s->rx_buf + i * size,
				.iov_len = size,
			};
			msgs[i] = (struct mmsghdr) {
				.msg_hdr = {
					.msg_name = &names[i],
					.msg_namelen = sizeof(names[i]),
					.msg_iov = &iovs[i],
					.msg_iovlen = 1,
					.msg_control = controls[i].buf,
					.msg_controllen = sizeof(controls[i].buf),
				},
			};
		}

		n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
		s->n_reads++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN) {
				log_warning_errno(errno,
						"Failed to receive datagrams, ignoring: %m");
			}
			return 0;
		}
		for (int i = 0; i < n; i++) {
			Origin o;

			if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len >= size) {
				s->n_datagrams_in++;
				continue; /* over --max-datagram */
			}
			origin_from_msghdr(&o, &msgs[i].msg_hdr);
			server_handle_datagram(s, s->rx_buf + i * size, msgs[i].msg_len, &o);
		}
		if (n < RX_BATCH) {
			return 0;
		}
	}
	return 0;
}

/* TCP. */

static int on_accept_resume(sd_event_source *source, uint64_t usec, void *userdata) {
	Server *s = userdata;

	(void) sd_event_source_set_enabled(s->tcp_source, SD_EVENT_ON);
	return 0;
}

static int on_tcp(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
	Server *s = userdata;

	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		_cleanup_close_ int cfd = -EBADF;
		Endpoint peer = {};
		socklen_t len = sizeof(peer);
		int r;

		cfd = accept4(fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		s->n_reads++;
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
					errno == ENOMEM) {
				/* Out of descriptors: pause accepting instead of spinning. */
				log_warning_errno(errno,
						"Failed to accept connection, pausing: %m");
				(void) sd_event_source_set_enabled(s->tcp_source, SD_EVENT_OFF);
				(void) sd_event_add_time_relative(s->event, NULL, CLOCK_MONOTONIC,
						100 * USEC_PER_MSEC, 0, on_accept_resume, s);
			} else if (errno != EAGAIN) {
				log_warning_errno(errno,
						"Failed to accept connection, ignoring: %m");
			}
			return 0;
		}
		if (s->n_connections >= s->config.max_connections) {
			log_debug("Refusing connection: %zu connections open.", s->n_connections);
			continue;
		}
		r = registry_conn_add(server_get_registry(s), &peer, server_now(s));
		if (r <= 0) {
			log_debug("Refusing connection: too many from one IP.");
			continue;
		}
		r = client_new(s, TAKE_FD(cfd), &peer);
		if (r < 0) {
			log_warning_errno(r, "Failed to set up connection, closing: %m");
		}
	}
	return 0;
}


/* Timers. */

static int on_ping_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Server *s = userdata;

	for (ListNode *n = s->clients.next; n != &s->clients; n = n->next) {
		client_check_alive(container_of(n, Client, node));
	}
	(void) registry_gc_ips(server_get_registry(s), server_now(s));

	(void) sd_event_source_set_time_relative(source, s->config.ping_interval);
	return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

static void server_update_status(Server *s) {
	size_t users = registry_n_users(server_get_registry(s));
	size_t sessions = presence_get_n_sessions(s->presence);

	if (users == s->status_users && sessions == s->status_sessions) {
		return;
	}
	s->status_users = users;
	s->status_sessions = sessions;
	(void) sd_notifyf(false, "STATUS=%zu users online, %zu with a session", users, sessions);
}

/* Once a second: the STATUS= line, and after busy seconds the heap is trimmed,
 * so that memory a storm used goes back to the kernel instead of staying
 * scattered over a fragmented heap. */
static int on_housekeeping_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Server *s = userdata;

	if (s->notify) {
		server_update_status(s);
	}
	/* Sessions that went idle give their output buffers back before the trim. */
	if (s->pool && connection_pool_release_idle(s->pool)) {
		s->heap_busy = true;
	}
	if (s->heap_busy) {
		s->heap_busy = false;
		(void) malloc_trim(0);
	}
	(void) sd_event_source_set_time_relative(source, USEC_PER_SEC);
	return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

/* Runs once per loop iteration in which anything happened: the one place that writes. */
static int on_post(sd_event_source *source, void *userdata) {
	Server *s = userdata;

	if (!udp_queue_is_empty(s->udp_out)) {
		s->heap_busy = true;
	}
	/* Closing a session logs its user out, which may queue forwards. */
	if (connection_pool_flush(s->pool)) {
		s->heap_busy = true;
	}
	server_flush_udp(s);
	return 0;
}

/* Sockets. */

static int setsockopt_int(int fd, int level, int name, int value) {
	if (setsockopt(fd, level, name, &value, sizeof(value)) < 0) {
		return -errno;
	}
	return 0;
}

/*
 * A UDP socket bound to @address with one IP-level option on: @opt_v4
 * (IPPROTO_IP) or @opt_v6 (IPPROTO_IPV6), by the address's family.
 */
static int udp_socket_bind(const Endpoint *address, int opt_v4, int opt_v6, int *ret_fd) {
	_cleanup_close_ int fd = -EBADF;
	int family = endpoint_family(address);
	int r;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (family == AF_INET6) {
		(void) setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		r = setsockopt_int(fd, IPPROTO_IPV6, opt_v6, 1);
	} else {
		r = setsockopt_int(fd, IPPROTO_IP, opt_v4, 1);
	}
	if (r < 0) {
		return r;
	}
	if (bind(fd, &address->sa, endpoint_socklen(address)) < 0) {
		return -errno;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int server_bind_udp(Server *s, const Endpoint *address) {
	_cleanup_close_ int fd = -EBADF;
	socklen_t len = sizeof(s->udp_address);
	int r;

	r = udp_socket_bind(address, IP_PKTINFO, IPV6_RECVPKTINFO, &fd);
	if (r < 0) {
		return r;
	}
	/* Large buffers absorb login storms; the kernel caps them at rmem_max. */
	(void) setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER_BYTES);
	(void) setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER_BYTES);
	if (getsockname(fd, &s->udp_address.sa, &len) < 0) {
		return -errno;
	}
	s->udp_fd = TAKE_FD(fd);
	return 0;
}

/* The probe socket: same family and address as the listen socket, any port. */
static int server_bind_probe(Server *s) {
	Endpoint a = s->udp_address;

	endpoint_set_port(&a, 0);
	return udp_socket_bind(&a, IP_RECVERR, IPV6_RECVERR, &s->probe_fd);
}

static int server_bind_tcp(Server *s, const Endpoint *address) {
	_cleanup_close_ int fd = -EBADF;
	int family = endpoint_family(address);
	Endpoint bound = {};
	socklen_t len = sizeof(bound);
	int r;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (family == AF_INET6) {
		(void) setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	}
	(void) setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	/* Accepted sockets inherit these: one setsockopt() per server, not per client. */
	r = setsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (r >= 0) {
		r = setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_IDLE_SEC);
	}
	if (r >= 0) {
		r = setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_INTERVAL_SEC);
	}
	if (r >= 0) {
		r = setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_COUNT);
	}
	if (r >= 0) {
		r = setsockopt_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, USER_TIMEOUT_MSEC);
	}
	if (r >= 0) {
		r = setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	}
	if (r < 0) {
		return r;
	}

	if (bind(fd, &address->sa, endpoint_socklen(address)) < 0) {
		return -errno;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		return -errno;
	}
	if (getsockname(fd, &bound.sa, &len) < 0) {
		return -errno;
	}
	s->tcp_port = endpoint_port(&bound);
	s->tcp_fd = TAKE_FD(fd);
	return 0;
}

/* Binds both sockets.  With port 0 and no --tcp-port, one free port serves both. */
static int server_bind(Server *s) {
	const ServerConfig *c = &s->config;
	char buf[ENDPOINT_STRLEN];
	Endpoint a = c->listen;
	int r;

	if (c->tcp_port >= 0 || endpoint_port(&c->listen) != 0) {
		r = server_bind_udp(s, &c->listen);
		if (r < 0) {
			return log_error_errno(r, "Failed to bind UDP socket to %s: %m",
					endpoint_format(&c->listen, buf));
		}
		endpoint_set_port(&a, c->tcp_port >= 0 ? (uint16_t) c->tcp_port :
					endpoint_port(&s->udp_address));
		r = server_bind_tcp(s, &a);
		if (r < 0) {
			return log_error_errno(r, "Failed to bind TCP socket to %s: %m",
					endpoint_format(&a, buf));
		}
		return 0;
	}

	for (unsigned attempt = 0;; attempt++) {
		r = server_bind_tcp(s, &a);
		if (r < 0) {
			return log_error_errno(r, "Failed to bind TCP socket to %s: %m",
					endpoint_format(&a, buf));
		}
		endpoint_set_port(&a, s->tcp_port);
		r = server_bind_udp(s, &a);
		if (r >= 0) {
			return 0;
		}
		s->tcp_fd = safe_close(s->tcp_fd);
		endpoint_set_port(&a, 0);
		if (r != -EADDRINUSE || attempt >= 16) {
			return log_error_errno(r, "Failed to bind UDP socket: %m");
		}
	}
}


int server_new(const ServerConfig *config, sd_event *event, Server **ret) {
	_cleanup_(server_freep) Server *s = NULL;
	PresenceConfig presence_config = {
		.limits = {
			.max_users = config->max_users,
			.login_rate = config->login_rate,
			.login_burst = MAX(config->login_burst, 1u),
			.max_conns_per_ip = config->max_conns_per_ip,
			.max_ips = MAX(config->max_users, config->max_connections) * 4 + 1024,
			.max_names_per_ip = config->max_names_per_ip,
			.max_pending_per_ip = config->max_pending_per_ip,
		},
		.lease = config->lease,
		.session_wait = config->session_wait,
		.pending_wait = config->pending_wait,
		.probe_interval = config->probe_interval,
		.probe_count = MAX(config->probe_count, 1u),
		.probe_rate = config->probe_rate,
	};
	char buf[ENDPOINT_STRLEN];
	int r;

	s = calloc(1, sizeof(Server));
	if (!s) {
		return log_oom();
	}
	s->config = *config;
	s->event = sd_event_ref(event);
	s->udp_fd = s->tcp_fd = s->probe_fd = -EBADF;
	list_head_init(&s->clients);

	r = udp_queue_new(&s->udp_out);
	if (r < 0) {
		return log_oom();
	}
	s->rx_buf = malloc(RX_BATCH * (config->max_datagram + 1));
	if (!s->rx_buf) {
		return log_oom();
	}

	r = presence_new(event, &presence_config, &presence_callbacks, s, &s->presence);
	if (r >= 0) {
		r = connection_pool_new(event, config->output_cap, WIRE_CONTROL_MAX,
				config->drain_timeout, &s->pool);
	}
	if (r >= 0) {
		r = timeout_queue_init(&s->grace_queue, event, config->grace, on_grace_timeout, s);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to set up timers: %m");
	}

	r = server_bind(s);
	if (r < 0) {
		return r;
	}
	r = server_bind_probe(s);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up the probe socket: %m");
	}

	r = sd_event_add_io(event, &s->udp_source, s->udp_fd, EPOLLIN, on_udp, s);
	if (r >= 0) {
		r = sd_event_add_io(event, &s->tcp_source, s->tcp_fd, EPOLLIN, on_tcp, s);
	}
	if (r >= 0) {
		r = sd_event_add_io(event, &s->probe_source, s->probe_fd, EPOLLIN, on_probe_io, s);
	}
	if (r >= 0) {
		r = sd_event_add_post(event, &s->post_source, on_post, s);
	}
	if (r >= 0) {
		r = sd_event_add_time_relative(event, &s->ping_timer, CLOCK_MONOTONIC,
				config->ping_interval, USEC_PER_SEC, on_ping_timer, s);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to set up event sources: %m");
	}

	s->notify = !!getenv("NOTIFY_SOCKET");
	r = sd_event_add_time_relative(event, &s->housekeeping_timer, CLOCK_MONOTONIC,
			USEC_PER_SEC, USEC_PER_SEC / 4, on_housekeeping_timer, s);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up housekeeping timer: %m");
	}

	log_info("Listening on UDP %s, TCP port %u.", endpoint_format(&s->udp_address, buf),
			s->tcp_port);
	*ret = TAKE_PTR(s);
	return 0;
}

Server *server_free(Server *s) {
	uint64_t frames = 0, reads = s ? s->n_reads : 0, writes = s ? s->n_writes : 0;
	uint64_t datagrams_out = s ? s->n_datagrams_out : 0;
	ListNode *n;

	if (!s) {
		return NULL;
	}
	if (s->presence) {
		presence_shutdown(s->presence);
	}
	if (s->pool) {
		frames = connection_pool_get_n_frames(s->pool);
		reads += connection_pool_get_n_reads(s->pool);
		writes += connection_pool_get_n_writes(s->pool);
	}
	if (s->udp_out) {
		datagrams_out += udp_queue_get_n_sent(s->udp_out);
		writes += udp_queue_get_n_calls(s->udp_out);
	}
	log_info("Exiting: %" PRIu64 " datagrams in, %" PRIu64 " out, %" PRIu64 " frames out, "
			"%" PRIu64 " read calls, %" PRIu64 " write calls.", s->n_datagrams_in,
			datagrams_out, frames, reads, writes);

	while ((n = list_first(&s->clients))) {
		connection_close(container_of(n, Client, node)->connection, NULL);
	}
	s->presence = presence_free(s->presence);
	timeout_queue_done(&s->grace_queue);
	s->pool = connection_pool_free(s->pool);
	s->udp_source = sd_event_source_disable_unref(s->udp_source);
	s->tcp_source = sd_event_source_disable_unref(s->tcp_source);
	s->probe_source = sd_event_source_disable_unref(s->probe_source);
	s->post_source = sd_event_source_disable_unref(s->post_source);
	s->ping_timer = sd_event_source_disable_unref(s->ping_timer);
	s->housekeeping_timer = sd_event_source_disable_unref(s->housekeeping_timer);
	(void) safe_close(s->udp_fd);
	(void) safe_close(s->tcp_fd);
	(void) safe_close(s->probe_fd);
	s->udp_out = udp_queue_free(s->udp_out);
	free(s->rx_buf);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

const Endpoint *server_get_udp_address(const Server *s) {
	return &s->udp_address;
}

uint16_t server_get_tcp_port(const Server *s) {
	return s->tcp_port;
}
