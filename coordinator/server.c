/* SPDX-License-Identifier: MIT */

/*
 * The Server owns the sockets, the registry, every connection and the
 * timeout queues; it lives for the whole process.  Datagrams are handled as
 * they arrive; everything they cause (session frames, UDP forwards) is
 * queued, and one post source per loop iteration writes each dirty
 * connection once and sends the forwards with sendmmsg(): in a login storm
 * many events share one syscall.
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
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "coordinator/server.h"
#include "coordinator/session.h"

/* Datagrams read per recvmmsg() call, and calls per wakeup. */
#define RX_BATCH 64
#define RX_ROUNDS 8
/* The most forwards kept queued; beyond it they are dropped.  Reading stops
 * for this loop iteration once TX_QUEUE_SOFT are waiting, so a login storm is
 * paced by the sending instead of overflowing the queue. */
#define TX_QUEUE_MAX (256u * 1024u)
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
		.ping_interval = 30 * USEC_PER_SEC,
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

static uint64_t server_now(Server *s) {
	uint64_t now = 0;

	(void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
	return now;
}

void server_mark_dirty(Server *s, Connection *c) {
	if (!list_node_is_linked(&c->dirty_node)) {
		list_append(&s->dirty, &c->dirty_node);
	}
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

/* UDP out queue. */

/* Copies a payload into the arena; *ret_off locates it until the flush. */
static int udp_queue_payload(UdpQueue *q, const uint8_t *data, size_t len, uint32_t *ret_off) {
	if (q->arena_len + len > UINT32_MAX) {
		return -ENOBUFS;
	}
	if (q->arena_len + len > q->arena_cap) {
		size_t cap = MAX(MAX(q->arena_cap * 2, q->arena_len + len), (size_t) 4096);
		uint8_t *p = realloc(q->arena, cap);

		if (!p) {
			return -ENOMEM;
		}
		q->arena = p;
		q->arena_cap = cap;
	}
	memcpy(q->arena + q->arena_len, data, len);
	*ret_off = (uint32_t) q->arena_len;
	q->arena_len += len;
	return 0;
}

static int udp_queue_add(UdpQueue *q, const Endpoint *dest, uint32_t off, uint32_t len) {
	if (q->n >= TX_QUEUE_MAX) {
		return -ENOBUFS;
	}
	if (q->n == q->cap) {
		size_t cap = MAX(q->cap * 2, (size_t) 256);
		UdpItem *items = reallocarray(q->items, cap, sizeof(UdpItem));

		if (!items) {
			return -ENOMEM;
		}
		q->items = items;
		q->cap = cap;
	}
	q->items[q->n++] = (UdpItem) { .dest = *dest, .off = off, .len = len };
	return 0;
}

static void udp_queue_reset(UdpQueue *q) {
	q->n = q->sent = q->arena_len = 0;
	if (q->cap > 65536) {
		/* After a storm, give the memory back. */
		q->items = mfree(q->items);
		q->arena = mfree(q->arena);
		q->cap = q->arena_cap = 0;
	}
}

static void udp_queue_done(UdpQueue *q) {
	q->items = mfree(q->items);
	q->arena = mfree(q->arena);
	q->n = q->sent = q->cap = q->arena_len = q->arena_cap = 0;
}

/* Sends the queued forwards: 0 when all went, 1 when the socket is full. */
static int server_flush_udp(Server *s) {
	UdpQueue *q = &s->udp_out;

	while (q->sent < q->n) {
		size_t k = MIN(q->n - q->sent, (size_t) UDP_TX_BATCH);
		int n;

		for (size_t i = 0; i < k; i++) {
			UdpItem *item = &q->items[q->sent + i];

			q->iovs[i] = (struct iovec) {
				.iov_base = q->arena + item->off,
				.iov_len = item->len,
			};
			q->msgs[i] = (struct mmsghdr) {
				.msg_hdr = {
					.msg_name = &item->dest.sa,
					.msg_namelen = endpoint_socklen(&item->dest),
					.msg_iov = &q->iovs[i],
					.msg_iovlen = 1,
				},
			};
		}

		n = sendmmsg(s->udp_fd, q->msgs, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		s->n_writes++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				(void) sd_event_source_set_io_events(s->udp_source,
						EPOLLIN | EPOLLOUT);
				return 1;
			}
			/* This one datagram cannot go (e.g. no route): skip it. */
			log_debug_errno(errno, "Failed to send forward, skipping: %m");
			n = 1;
		} else {
			s->n_datagrams_out += n;
		}
		q->sent += n;
	}
	udp_queue_reset(q);
	(void) sd_event_source_set_io_events(s->udp_source, EPOLLIN);
	return 0;
}

/* Forwarding. */

int server_forward(Server *s, User *u, WireType type) {
	WireMessage m = { .type = type };
	_cleanup_free_ char *text = NULL;
	uint32_t off[_WIRE_ENCODING_MAX], len[_WIRE_ENCODING_MAX];
	bool encoded[_WIRE_ENCODING_MAX] = {};
	size_t text_len;
	int r;

	memcpy(m.name, u->name, u->name_len + 1);
	m.endpoint = u->announced;
	if (type == WIRE_TYPE_LOGIN) {
		memcpy(m.caps, u->caps, sizeof(m.caps));
	}
	r = wire_format_line(&m, &text, &text_len);
	if (r < 0) {
		return log_error_errno(r, "Failed to format %s of '%s': %m",
				wire_type_to_string(type), u->name);
	}

	for (User *v = registry_first(s->registry); v; v = registry_next(s->registry, v)) {
		if (v == u) {
			continue;
		}
		if (v->session) {
			(void) connection_queue_frame(v->session, text, text_len);
			continue;
		}
		/* A native user without its session yet gets the list when it binds;
		 * a user that declared a foreign IP is reached only by session. */
		if (v->native || !v->udp_reachable) {
			continue;
		}
		if (!encoded[v->encoding]) {
			_cleanup_free_ uint8_t *buf = NULL;
			size_t n;

			r = wire_encode_datagram(text, text_len, v->encoding, &buf, &n);
			if (r >= 0) {
				r = udp_queue_payload(&s->udp_out, buf, n, &off[v->encoding]);
			}
			if (r < 0) {
				return log_warning_errno(r, "Failed to queue forward "
						"of '%s', dropping: %m", u->name);
			}
			len[v->encoding] = (uint32_t) n;
			encoded[v->encoding] = true;
		}
		r = udp_queue_add(&s->udp_out, &v->declared, off[v->encoding], len[v->encoding]);
		if (r < 0) {
			return log_warning_errno(r, "Failed to queue forward of '%s', dropping: %m",
					u->name);
		}
	}
	return 0;
}

void server_user_unbound(Server *s, User *u) {
	int r;

	r = timeout_queue_push(u->native ? &s->wait_queue : &s->lease_queue, &u->timeout);
	if (r < 0) {
		log_warning_errno(r, "Failed to start the lease of '%s', ignoring: %m", u->name);
	}
}

void server_logout(Server *s, User *u, const char *why) {
	log_debug("'%s' logged out: %s.", u->name, why);
	if (u->session) {
		connection_detach(u->session);
	}
	if (!s->shutting_down) {
		(void) server_forward(s, u, WIRE_TYPE_LOGOUT);
	}
	registry_remove(s->registry, u);
}

/* Datagrams. */

static void server_handle_login(Server *s, const WireMessage *m, WireEncoding enc,
		const Origin *o, size_t request_len) {
	char buf[ENDPOINT_STRLEN];
	const Endpoint *dest;
	WireMessage accept = { .type = WIRE_TYPE_ACCEPT, .port = s->tcp_port };
	User *u;
	int r;

	/* Never send to a declared endpoint on another IP: it may be a third party. */
	dest = endpoint_same_ip(&m->endpoint, &o->source) ? &m->endpoint : &o->source;

	r = registry_take_login_token(s->registry, &o->source, server_now(s));
	if (r <= 0) {
		log_debug("Dropping login of '%s' from %s: over the rate limit.", m->name,
				endpoint_format(&o->source, buf));
		return;
	}

	u = registry_find(s->registry, m->name);
	if (u && !endpoint_same_ip(&u->source, &o->source)) {
		log_debug("Refusing login of '%s' from %s: name taken.", m->name,
				endpoint_format(&o->source, buf));
		server_reply_reject(s, o, dest, enc, "name-taken", request_len);
		return;
	}
	if (u && user_login_is_same(u, m, enc) &&
			(u->udp_reachable || endpoint_equal(&u->source, &o->source))) {
		/* A re-login from the same address renews the lease. */
		if (!u->session) {
			server_user_unbound(s, u);
		}
		server_reply(s, o, dest, enc, &accept, request_len);
		return;
	}
	if (u) {
		server_logout(s, u, "replaced by a new login");
	}

	r = registry_add(s->registry, m, &o->source, enc, &u);
	if (r == -ENOSPC) {
		log_notice("Refusing login of '%s': %u users online.", m->name,
				s->config.max_users);
		server_reply_reject(s, o, dest, enc, "full", request_len);
		return;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to register '%s', dropping login: %m", m->name);
		return;
	}
	server_user_unbound(s, u);
	log_debug("'%s' logged in from %s.", u->name, endpoint_format(&o->source, buf));

	server_reply(s, o, dest, enc, &accept, request_len);
	(void) server_forward(s, u, WIRE_TYPE_LOGIN);
}

static void server_handle_logout(Server *s, const WireMessage *m, const Origin *o) {
	User *u;

	u = registry_find(s->registry, m->name);
	if (!u) {
		return;
	}
	if (!endpoint_same_ip(&u->source, &o->source) ||
			!endpoint_equal(&u->declared, &m->endpoint)) {
		char buf[ENDPOINT_STRLEN];

		log_debug("Ignoring logout of '%s' from %s: not its address.", m->name,
				endpoint_format(&o->source, buf));
		return;
	}
	server_logout(s, u, m->misspelled ? "lohout" : "logout");
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
		if (r != -ENOMEM && registry_take_login_token(s->registry, &o->source,
						server_now(s)) > 0) {
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
		server_handle_logout(s, &m, o);
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
		(void) server_flush_udp(s);
	}
	if (!(revents & EPOLLIN)) {
		return 0;
	}

	for (unsigned round = 0; round < RX_ROUNDS; round++) {
		if (s->udp_out.n - s->udp_out.sent >= TX_QUEUE_SOFT) {
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
		Connection *c;
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
		r = registry_conn_add(s->registry, &peer, server_now(s));
		if (r <= 0) {
			log_debug("Refusing connection: too many from one IP.");
			continue;
		}
		r = connection_new(s, TAKE_FD(cfd), &peer, &c);
		if (r < 0) {
			log_warning_errno(r, "Failed to set up connection, closing: %m");
		}
	}
	return 0;
}

/* Timers. */

static void on_connection_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	connection_timeout(container_of(link, Connection, timeout));
}

static void on_user_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Server *s = userdata;
	User *u = container_of(link, User, timeout);

	server_logout(s, u, q == &s->lease_queue ? "lease expired" : "no session");
}

static int on_ping_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Server *s = userdata;

	for (ListNode *n = s->connections.next; n != &s->connections; n = n->next) {
		connection_check_alive(container_of(n, Connection, node));
	}
	(void) registry_gc_ips(s->registry, server_now(s));

	(void) sd_event_source_set_time_relative(source, s->config.ping_interval);
	return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

static void server_update_status(Server *s) {
	size_t users = registry_n_users(s->registry);

	if (users == s->status_users && s->n_sessions == s->status_sessions) {
		return;
	}
	s->status_users = users;
	s->status_sessions = s->n_sessions;
	(void) sd_notifyf(false, "STATUS=%zu users online, %zu with a session", users,
			s->n_sessions);
}

/* Once a second: the STATUS= line, and after busy seconds the heap is trimmed,
 * so that memory a storm used goes back to the kernel instead of staying
 * scattered over a fragmented heap. */
static int on_housekeeping_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Server *s = userdata;

	if (s->notify) {
		server_update_status(s);
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
	ListNode *n;

	if (!list_is_empty(&s->dirty) || s->udp_out.n > 0) {
		s->heap_busy = true;
	}

	/* Closing a session logs its user out, which may dirty (or doom) other
	 * connections: they are appended and handled in this same pass. */
	while ((n = list_first(&s->dirty))) {
		Connection *c = container_of(n, Connection, dirty_node);
		int r;

		list_remove(n);
		if (c->doomed) {
			connection_close(c, c->doomed);
			continue;
		}
		r = connection_flush(c);
		if (r < 0) {
			connection_close(c, "write failed");
		}
	}
	(void) server_flush_udp(s);
	return 0;
}

/* Sockets. */

static int setsockopt_int(int fd, int level, int name, int value) {
	if (setsockopt(fd, level, name, &value, sizeof(value)) < 0) {
		return -errno;
	}
	return 0;
}

static int server_bind_udp(Server *s, const Endpoint *address) {
	_cleanup_close_ int fd = -EBADF;
	int family = endpoint_family(address);
	socklen_t len = sizeof(s->udp_address);
	int r;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (family == AF_INET6) {
		(void) setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
	} else {
		r = setsockopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
	}
	if (r < 0) {
		return r;
	}
	/* Large buffers absorb login storms; the kernel caps them at rmem_max. */
	(void) setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER_BYTES);
	(void) setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER_BYTES);

	if (bind(fd, &address->sa, endpoint_socklen(address)) < 0) {
		return -errno;
	}
	if (getsockname(fd, &s->udp_address.sa, &len) < 0) {
		return -errno;
	}
	s->udp_fd = TAKE_FD(fd);
	return 0;
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
	RegistryLimits limits = {
		.max_users = config->max_users,
		.login_rate = config->login_rate,
		.login_burst = MAX(config->login_burst, 1u),
		.max_conns_per_ip = config->max_conns_per_ip,
		.max_ips = MAX(config->max_users, config->max_connections) * 4 + 1024,
	};
	char buf[ENDPOINT_STRLEN];
	int r;

	s = calloc(1, sizeof(Server));
	if (!s) {
		return log_oom();
	}
	s->config = *config;
	s->event = sd_event_ref(event);
	s->udp_fd = s->tcp_fd = -EBADF;
	list_head_init(&s->connections);
	list_head_init(&s->dirty);

	r = registry_new(&limits, &s->registry);
	if (r < 0) {
		return log_oom();
	}
	s->rx_buf = malloc(RX_BATCH * (config->max_datagram + 1));
	if (!s->rx_buf) {
		return log_oom();
	}

	r = timeout_queue_init(&s->grace_queue, event, config->grace, on_connection_timeout, s);
	if (r >= 0) {
		r = timeout_queue_init(&s->drain_queue, event, config->drain_timeout,
				on_connection_timeout, s);
	}
	if (r >= 0) {
		r = timeout_queue_init(&s->lease_queue, event, config->lease, on_user_timeout, s);
	}
	if (r >= 0) {
		r = timeout_queue_init(&s->wait_queue, event, config->session_wait,
				on_user_timeout, s);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to set up timers: %m");
	}

	r = server_bind(s);
	if (r < 0) {
		return r;
	}

	r = sd_event_add_io(event, &s->udp_source, s->udp_fd, EPOLLIN, on_udp, s);
	if (r >= 0) {
		r = sd_event_add_io(event, &s->tcp_source, s->tcp_fd, EPOLLIN, on_tcp, s);
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
	ListNode *n;

	if (!s) {
		return NULL;
	}
	s->shutting_down = true;
	log_info("Exiting: %" PRIu64 " datagrams in, %" PRIu64 " out, %" PRIu64 " frames out, "
			"%" PRIu64 " read calls, %" PRIu64 " write calls.", s->n_datagrams_in,
			s->n_datagrams_out, s->n_frames_out, s->n_reads, s->n_writes);
	while ((n = list_first(&s->connections))) {
		connection_close(container_of(n, Connection, node), NULL);
	}
	s->registry = registry_free(s->registry);
	timeout_queue_done(&s->grace_queue);
	timeout_queue_done(&s->drain_queue);
	timeout_queue_done(&s->lease_queue);
	timeout_queue_done(&s->wait_queue);
	s->udp_source = sd_event_source_disable_unref(s->udp_source);
	s->tcp_source = sd_event_source_disable_unref(s->tcp_source);
	s->post_source = sd_event_source_disable_unref(s->post_source);
	s->ping_timer = sd_event_source_disable_unref(s->ping_timer);
	s->housekeeping_timer = sd_event_source_disable_unref(s->housekeeping_timer);
	(void) safe_close(s->udp_fd);
	(void) safe_close(s->tcp_fd);
	udp_queue_done(&s->udp_out);
	free(s->rx_buf);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

