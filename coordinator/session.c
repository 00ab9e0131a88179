/* SPDX-License-Identifier: MIT */

/*
 * Connections: the server owns each Connection from connection_new() until
 * connection_close().  A session and its user point at each other without
 * owning: the user dies with the session (logout), and a session whose user
 * logs out by other means is detached and closed.  Output goes into a per-
 * connection buffer and is written by server.c once per loop iteration, so
 * many frames cost one write().
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/server.h"
#include "coordinator/session.h"

/* Read at most this much per wakeup, so one connection cannot starve the rest. */
#define READ_BUDGET (64u * 1024u)
/* A buffer larger than this is freed once empty, keeping idle sessions small:
 * after a storm thousands of sessions sit idle. */
#define OUT_KEEP_MAX 0u

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata);

int connection_new(Server *s, int fd, const Endpoint *peer, Connection **ret) {
	Connection *c;
	int r;

	c = calloc(1, sizeof(Connection));
	if (!c) {
		(void) safe_close(fd);
		registry_conn_remove(s->registry, peer);
		return -ENOMEM;
	}
	c->server = s;
	c->fd = fd;
	c->peer = *peer;
	c->state = CONNECTION_UNBOUND;
	wire_frame_decoder_init(&c->decoder, WIRE_CONTROL_MAX);
	list_append(&s->connections, &c->node);
	s->n_connections++;

	r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_connection_io, c);
	if (r < 0) {
		connection_close(c, NULL);
		return r;
	}
	r = timeout_queue_push(&s->grace_queue, &c->timeout);
	if (r < 0) {
		connection_close(c, NULL);
		return r;
	}
	*ret = c;
	return 0;
}

void connection_close(Connection *c, const char *why) {
	Server *s = c->server;
	User *u = c->user;

	if (why) {
		char buf[ENDPOINT_STRLEN];

		log_debug("Closing connection from %s%s%s%s: %s", endpoint_format(&c->peer, buf),
				u ? " ('" : "", u ? u->name : "", u ? "')" : "", why);
	}
	if (u) {
		connection_detach(c);
		server_logout(s, u, why ? why : "session closed");
	}

	list_remove(&c->node);
	list_remove(&c->dirty_node);
	timeout_link_remove(&c->timeout);
	s->n_connections--;
	registry_conn_remove(s->registry, &c->peer);
	c->io = sd_event_source_disable_unref(c->io);
	(void) safe_close(c->fd);
	wire_frame_decoder_done(&c->decoder);
	free(c->out);
	free(c);
}

void connection_detach(Connection *c) {
	if (!c->user) {
		return;
	}
	c->user->session = NULL;
	c->user = NULL;
	c->server->n_sessions--;
	c->state = CONNECTION_CLOSING;
	c->doomed = "replaced or logged out";
	server_mark_dirty(c->server, c);
}

static int connection_reserve(Connection *c, size_t need) {
	size_t pending = c->out_end - c->out_start;

	if (pending + need > c->server->config.output_cap) {
		return -ENOBUFS;
	}
	if (c->out_end + need <= c->out_cap) {
		return 0;
	}
	if (c->out_start > 0) {
		memmove(c->out, c->out + c->out_start, pending);
		c->out_start = 0;
		c->out_end = pending;
		if (c->out_end + need <= c->out_cap) {
			return 0;
		}
	}

	size_t cap = MAX(MAX(c->out_cap * 2, pending + need), (size_t) 512);
	uint8_t *p = realloc(c->out, cap);

	if (!p) {
		return -ENOMEM;
	}
	c->out = p;
	c->out_cap = cap;
	return 0;
}

int connection_queue_frame(Connection *c, const char *text, size_t len) {
	uint8_t prefix[WIRE_LEB128_MAX];
	size_t k;
	int r;

	if (c->doomed) {
		return -ECONNRESET;
	}
	k = leb128_encode(len, prefix);
	/* A reader that stops reading is dropped, not buffered forever. */
	r = connection_reserve(c, k + len);
	if (r < 0) {
		c->doomed = r == -ENOBUFS ? "output buffer full" : "out of memory";
		server_mark_dirty(c->server, c);
		return r;
	}
	memcpy(c->out + c->out_end, prefix, k);
	memcpy(c->out + c->out_end + k, text, len);
	c->out_end += k + len;
	c->server->n_frames_out++;
	server_mark_dirty(c->server, c);
	return 0;
}

static int connection_queue_line(Connection *c, const WireMessage *m) {
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = wire_format_line(m, &text, &len);
	if (r < 0) {
		return r;
	}
	return connection_queue_frame(c, text, len);
}

static int connection_set_want_out(Connection *c, bool b) {
	int r;

	if (c->want_out == b) {
		return 0;
	}
	r = sd_event_source_set_io_events(c->io, b ? EPOLLIN | EPOLLOUT : EPOLLIN);
	if (r < 0) {
		return r;
	}
	c->want_out = b;
	return 0;
}

int connection_flush(Connection *c) {
	Server *s = c->server;

	while (c->out_start < c->out_end) {
		ssize_t n = send(c->fd, c->out + c->out_start, c->out_end - c->out_start,
				MSG_NOSIGNAL | MSG_DONTWAIT);

		s->n_writes++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN) {
				return -errno;
			}
			n = 0;
		}
		c->out_start += n;
		if (c->out_start < c->out_end) {
			/* The socket buffer is full: wait for EPOLLOUT, not spin. */
			int r = connection_set_want_out(c, true);

			return r < 0 ? r : 1;
		}
	}

	c->out_start = c->out_end = 0;
	if (c->out_cap > OUT_KEEP_MAX) {
		c->out = mfree(c->out);
		c->out_cap = 0;
	}
	(void) connection_set_want_out(c, false);

	if (c->state == CONNECTION_CLOSING && !c->shut) {
		/* The peer reads up to our FIN, then closes; we close on its EOF. */
		(void) shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
	return 0;
}

static void connection_start_closing(Connection *c) {
	c->state = CONNECTION_CLOSING;
	if (timeout_queue_push(&c->server->drain_queue, &c->timeout) < 0) {
		c->doomed = "cannot queue for draining";
	}
	server_mark_dirty(c->server, c);
}

static void connection_refuse(Connection *c, const char *reason) {
	WireMessage m = { .type = WIRE_TYPE_REJECT };

	(void) snprintf(m.reason, sizeof(m.reason), "%s", reason);
	(void) connection_queue_line(c, &m);
	connection_start_closing(c);
}

/* Appends @n bytes to the output buffer, within the cap. */
static int connection_append(Connection *c, const void *p, size_t n) {
	int r;

	r = connection_reserve(c, n);
	if (r < 0) {
		c->doomed = r == -ENOBUFS ? "output buffer full" : "out of memory";
		server_mark_dirty(c->server, c);
		return r;
	}
	memcpy(c->out + c->out_end, p, n);
	c->out_end += n;
	server_mark_dirty(c->server, c);
	return 0;
}

/*
 * The list is the one large frame: it is written straight from the
 * registry's roster text, together with whatever is pending, and only what
 * the kernel does not take is copied into the output buffer.  Thousands of
 * sessions then do not each hold a copy of the roster.
 */
static int connection_queue_list(Connection *c) {
	Server *s = c->server;
	uint8_t prefix[WIRE_LEB128_MAX];
	const char *list;
	size_t len, k, pending = c->out_end - c->out_start;
	ssize_t n = 0;
	int r;

	if (c->doomed) {
		return -ECONNRESET;
	}
	r = registry_get_list(s->registry, &list, &len);
	if (r < 0) {
		return r;
	}
	k = leb128_encode(len, prefix);
	s->n_frames_out++;

	if (!c->want_out) {
		struct iovec iov[3] = {
			{ .iov_base = pending > 0 ? c->out + c->out_start : NULL,
				.iov_len = pending },
			{ .iov_base = prefix, .iov_len = k },
			{ .iov_base = (void *) list, .iov_len = len },
		};
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };

		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		s->n_writes++;
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				return -errno;
			}
			n = 0;
		}
	}

	/* Drop what went out, keep the rest in order. */
	if ((size_t) n < pending) {
		c->out_start += n;
		n = 0;
	} else {
		c->out_start = c->out_end = 0;
		n -= pending;
	}
	if ((size_t) n < k) {
		r = connection_append(c, prefix + n, k - n);
		if (r < 0) {
			return r;
		}
		n = 0;
	} else {
		n -= k;
	}
	if ((size_t) n < len) {
		return connection_append(c, list + n, len - n);
	}
	server_mark_dirty(s, c);
	return 0;
}

static void connection_hello(Connection *c, const WireMessage *m) {
	Server *s = c->server;
	WireMessage welcome = { .type = WIRE_TYPE_WELCOME };
	User *u;

	u = registry_find(s->registry, m->name);
	if (!u || !endpoint_same_ip(&u->source, &c->peer)) {
		log_debug("Refusing hello for '%s': not logged in from this IP.", m->name);
		connection_refuse(c, "not-logged-in");
		return;
	}
	if (u->session) {
		/* The client reconnected: the old connection goes, the user stays. */
		connection_detach(u->session);
	}

	timeout_link_remove(&c->timeout);
	timeout_link_remove(&u->timeout);
	c->state = CONNECTION_SESSION;
	c->user = u;
	u->session = c;
	s->n_sessions++;
	wire_frame_decoder_done(&c->decoder);
	wire_frame_decoder_init(&c->decoder, WIRE_CONTROL_MAX);

	(void) snprintf(welcome.caps, sizeof(welcome.caps), "%s", WIRE_CAPS_NATIVE);
	if (connection_queue_line(c, &welcome) < 0 || connection_queue_list(c) < 0) {
		c->doomed = c->doomed ? c->doomed : "cannot queue the list";
		server_mark_dirty(s, c);
		return;
	}
	log_debug("Session of '%s' bound.", u->name);
}

static void connection_handle_frame(Connection *c, const char *text, size_t len) {
	WireMessage m = {};
	int r;

	r = wire_parse_line(text, len, &m);
	if (c->state == CONNECTION_UNBOUND) {
		if (r < 0 || m.type != WIRE_TYPE_HELLO) {
			connection_refuse(c, "invalid");
		} else {
			connection_hello(c, &m);
		}
		wire_message_done(&m);
		return;
	}

	if (r < 0) {
		/* Unknown frames are ignored so that the protocol can grow. */
		log_debug_errno(r, "Ignoring unparsable frame on session of '%s': %m",
				c->user->name);
		return;
	}
	switch (m.type) {
	case WIRE_TYPE_PING: {
		WireMessage pong = { .type = WIRE_TYPE_PONG };

		(void) connection_queue_line(c, &pong);
		break;
	}
	case WIRE_TYPE_LOGOUT:
		if (streq(m.name, c->user->name)) {
			User *u = c->user;

			connection_detach(c);
			server_logout(c->server, u, "logout frame");
		}
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
	wire_message_done(&m);
}

/* Feeds received bytes to the frame decoder; <0 closes the connection. */
static int connection_feed(Connection *c, const uint8_t *buf, size_t n) {
	while (n > 0 && c->state != CONNECTION_CLOSING && !c->doomed) {
		_cleanup_free_ char *frame = NULL;
		size_t used = 0, len;
		int r;

		r = wire_frame_decoder_feed(&c->decoder, buf, n, &used);
		if (r < 0) {
			return r;
		}
		buf += used;
		n -= used;
		if (r == 0) {
			break;
		}
		r = wire_frame_decoder_take(&c->decoder, &frame, &len);
		if (r < 0) {
			return r;
		}
		connection_handle_frame(c, frame, len);
	}
	return 0;
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
	Connection *c = userdata;
	uint8_t buf[4096];
	size_t budget = READ_BUDGET;
	int r;

	if (revents & EPOLLOUT) {
		r = connection_flush(c);
		if (r < 0) {
			connection_close(c, "write failed");
			return 0;
		}
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		return 0;
	}

	while (budget > 0) {
		ssize_t n = recv(fd, buf, MIN(sizeof(buf), budget), MSG_DONTWAIT);

		c->server->n_reads++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				return 0;
			}
			connection_close(c, "read failed");
			return 0;
		}
		if (n == 0) {
			connection_close(c, "end of stream");
			return 0;
		}
		budget -= n;
		c->heard = true;
		c->pinged = false;
		if (c->state == CONNECTION_CLOSING || c->doomed) {
			continue; /* discard until EOF */
		}
		r = connection_feed(c, buf, n);
		if (r < 0) {
			if (c->state == CONNECTION_UNBOUND) {
				connection_refuse(c, "invalid");
			} else {
				connection_close(c, "bad frame");
				return 0;
			}
		}
	}
	return 0;
}

void connection_timeout(Connection *c) {
	switch (c->state) {
	case CONNECTION_UNBOUND:
		/* The reference behaviour: the list (newcomer included), then close. */
		if (connection_queue_list(c) < 0 && !c->doomed) {
			c->doomed = "cannot queue the list";
		}
		connection_start_closing(c);
		break;
	case CONNECTION_CLOSING:
		connection_close(c, "drain timeout");
		break;
	case CONNECTION_SESSION:
		break;
	case _CONNECTION_STATE_MAX:
	case _CONNECTION_STATE_INVALID:
		abort();
	}
}

void connection_check_alive(Connection *c) {
	WireMessage ping = { .type = WIRE_TYPE_PING };

	if (c->state != CONNECTION_SESSION || c->doomed) {
		return;
	}
	if (c->heard) {
		c->heard = false;
		return;
	}
	if (c->pinged) {
		c->doomed = "no answer to ping";
		server_mark_dirty(c->server, c);
		return;
	}
	c->pinged = true;
	(void) connection_queue_line(c, &ping);
}
