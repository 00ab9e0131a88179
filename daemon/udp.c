/* SPDX-License-Identifier: MIT */

/*
 * The UDP socket of the daemon, owned by the composition (daemon.c) and
 * freed after everything that sends through it.  It binds once at start-up
 * (dual-stack when no address is given), reads what arrives in bounded
 * rounds so a flood cannot starve the bus, maps v4-mapped IPv6 sources back
 * to IPv4 and hands each datagram to the handler registered for its kind.
 * It knows nothing of peers, logins or messages.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/udp.h"

typedef union SockaddrUnion {
	struct sockaddr sa;
	struct sockaddr_storage storage;
} SockaddrUnion;

typedef struct WireHandler {
	UdpWireHandler handler;
	void *userdata;
} WireHandler;

struct Udp {
	sd_event *event;
	Endpoint address;
	bool dual_stack;
	int fd;
	sd_event_source *source;
	UdpJsonHandler json_handler;
	void *json_userdata;
	WireHandler wire[_WIRE_TYPE_MAX];
};

int udp_new(sd_event *event, Udp **ret) {
	Udp *u;

	u = calloc(1, sizeof(*u));
	if (!u) {
		return -ENOMEM;
	}
	u->event = sd_event_ref(event);
	u->fd = -EBADF;
	*ret = u;
	return 0;
}

Udp *udp_free(Udp *u) {
	if (!u) {
		return NULL;
	}
	u->source = sd_event_source_disable_unref(u->source);
	u->fd = safe_close(u->fd);
	u->event = sd_event_unref(u->event);
	return mfree(u);
}

void udp_set_json_handler(Udp *u, UdpJsonHandler handler, void *userdata) {
	u->json_handler = handler;
	u->json_userdata = userdata;
}

void udp_set_wire_handler(Udp *u, WireType type, UdpWireHandler handler, void *userdata) {
	assert(type >= 0 && type < _WIRE_TYPE_MAX);
	u->wire[type] = (WireHandler) { .handler = handler, .userdata = userdata };
}

/* A dual-stack socket reaches IPv4 too, through v4-mapped IPv6 addresses. */
bool udp_can_reach(Udp *u, int family) {
	return family == endpoint_family(&u->address) || (u->dual_stack && family == AF_INET);
}

const Endpoint *udp_get_address(Udp *u) {
	return &u->address;
}

int udp_get_resolve_family(Udp *u) {
	return u->dual_stack ? AF_UNSPEC : endpoint_family(&u->address);
}

int udp_send(Udp *u, const Endpoint *to, const void *buf, size_t n) {
	Endpoint mapped;

	if (u->fd < 0) {
		return -ENOTCONN;
	}
	if (!udp_can_reach(u, endpoint_family(to))) {
		return -EAFNOSUPPORT;
	}
	if (u->dual_stack && endpoint_family(to) == AF_INET) {
		mapped = (Endpoint) { .in6.sin6_family = AF_INET6, .in6.sin6_port = to->in.sin_port };
		mapped.in6.sin6_addr.s6_addr[10] = 0xff;
		mapped.in6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&mapped.in6.sin6_addr.s6_addr[12], &to->in.sin_addr, 4);
		to = &mapped;
	}
	if (sendto(u->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL, &to->sa, endpoint_socklen(to)) < 0) {
		return -errno;
	}
	return 0;
}

/* Peers and the coordinator speak of IPv4 addresses as IPv4, never v4-mapped. */
static void endpoint_unmap(Endpoint *e) {
	if (endpoint_family(e) == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&e->in6.sin6_addr)) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = e->in6.sin6_port };

		memcpy(&in.sin_addr, &e->in6.sin6_addr.s6_addr[12], 4);
		*e = (Endpoint) { .in = in };
	}
}

void udp_deliver(Udp *u, const void *data, size_t n, const Endpoint *from) {
	const uint8_t *buf = data;
	WireMessage w = {};
	int r;

	if (n > 0 && buf[0] == '{') {
		if (u->json_handler) {
			u->json_handler((const char *) buf, n, from, u->json_userdata);
		}
		return;
	}
	r = wire_parse_datagram(buf, n, &w, NULL);
	if (r < 0) {
		log_debug_errno(r, "Dropping malformed datagram: %m");
		return;
	}
	if (u->wire[w.type].handler) {
		u->wire[w.type].handler(&w, from, u->wire[w.type].userdata);
	} else {
		log_debug("Dropping '%s' datagram: only valid on the TCP session.",
				wire_type_to_string(w.type));
	}
	wire_message_done(&w);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	static uint8_t buf[WIRE_DATAGRAM_MAX + 1];
	Udp *u = userdata;

	/* Bounded, so that a flood cannot starve the bus. */
	for (int i = 0; i < 256; i++) {
		SockaddrUnion ss;
		socklen_t len = sizeof(ss);
		Endpoint from;
		ssize_t n;

		n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, &ss.sa, &len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				return 0;
			}
			log_debug_errno(errno, "Failed to receive datagram, ignoring: %m");
			return 0;
		}
		if ((size_t) n > WIRE_DATAGRAM_MAX) {
			continue;
		}
		if (endpoint_from_sockaddr(&ss.sa, len, &from) < 0) {
			continue;
		}
		endpoint_unmap(&from);
		udp_deliver(u, buf, (size_t) n, &from);
	}
	return 0;
}

static int open_socket(const Endpoint *address, bool dual_stack, int *ret) {
	_cleanup_close_ int fd = -EBADF;

	fd = socket(endpoint_family(address), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	/*
	 * Bursts of messages from many peers (or acks of many in flight) must not
	 * overflow the default ~200 KiB: a drop costs a retry 250 ms later.  The
	 * kernel caps this at net.core.rmem_max/wmem_max.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int) { UDP_BUFFER }, sizeof(int)) < 0 ||
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int) { UDP_BUFFER },
			sizeof(int)) < 0) {
		log_debug_errno(errno, "Failed to enlarge UDP socket buffers, ignoring: %m");
	}
	if (dual_stack &&
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int) { 0 }, sizeof(int)) < 0) {
		return -errno;
	}
	if (bind(fd, &address->sa, endpoint_socklen(address)) < 0) {
		return -errno;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

int udp_open(Udp *u, const Endpoint *address) {
	_cleanup_close_ int fd = -EBADF;
	SockaddrUnion ss;
	socklen_t len = sizeof(ss);
	char buf[ENDPOINT_STRLEN];
	int r;

	assert(u->fd < 0);

	u->address = *address;
	if (endpoint_family(address) == AF_UNSPEC) {
		/* No address: every address of both families, if the host has IPv6. */
		Endpoint any6 = { .in6.sin6_family = AF_INET6, .in6.sin6_addr = IN6ADDR_ANY_INIT };

		r = open_socket(&any6, true, &fd);
		if (r >= 0) {
			u->dual_stack = true;
		} else {
			log_debug_errno(r, "No dual-stack UDP socket, using IPv4 only: %m");
			u->address = (Endpoint) { .in.sin_family = AF_INET };
		}
	}
	if (fd < 0) {
		r = open_socket(&u->address, false, &fd);
		if (r < 0) {
			return log_error_errno(r, "Failed to bind UDP socket to '%s': %m",
					endpoint_format(&u->address, buf));
		}
	}
	if (getsockname(fd, &ss.sa, &len) < 0) {
		return log_error_errno(errno, "Failed to read UDP socket address: %m");
	}
	r = endpoint_from_sockaddr(&ss.sa, len, &u->address);
	if (r < 0) {
		return log_error_errno(r, "Failed to read UDP socket address: %m");
	}
	r = sd_event_add_io(u->event, &u->source, fd, EPOLLIN, on_io, u);
	if (r < 0) {
		return log_error_errno(r, "Failed to watch UDP socket: %m");
	}
	u->fd = TAKE_FD(fd);
	log_debug("Peer socket bound to %s%s.", endpoint_format(&u->address, buf),
			u->dual_stack ? " (IPv4 and IPv6)" : "");
	return 0;
}
