/* SPDX-License-Identifier: MIT */

/*
 * The Manager: created by main() before anything else and freed last.  It
 * owns the bus connection, the UDP socket every peer datagram goes through,
 * the roster, the coordinator link and the messenger, and keeps the login
 * state (offline -> connecting -> online, back to connecting while the
 * coordinator is lost, offline again after Logout() or a failed Login()).
 */

#include <arpa/inet.h>
#include <assert.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/wire.h"
#include "common/bus-errors.h"
#include "daemon/config.h"
#include "daemon/coordinator-link.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-commit.h"
#include "daemon/manager-store.h"
#include "daemon/manager.h"
#include "daemon/message.h"
#include "daemon/peer-bus.h"
#include "daemon/peer.h"
#include "daemon/resolve.h"

typedef union SockaddrUnion {
	struct sockaddr sa;
	struct sockaddr_storage storage;
} SockaddrUnion;

static const char *const state_table[_MANAGER_STATE_MAX] = {
	[MANAGER_STATE_OFFLINE] = "offline",
	[MANAGER_STATE_CONNECTING] = "connecting",
	[MANAGER_STATE_ONLINE] = "online",
};

const char *manager_state_to_string(ManagerState s) {
	return string_table_lookup(state_table, ELEMENTSOF(state_table), s);
}

int manager_new(sd_event *event, const Endpoint *bind_address, Manager **ret) {
	_cleanup_(manager_freep) Manager *m = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m) {
		return -ENOMEM;
	}
	m->udp_fd = -EBADF;
	m->event = sd_event_ref(event);
	m->bind_address = *bind_address;
	r = coordinator_link_new(m, &m->link);
	if (r < 0) {
		return r;
	}
	r = messenger_new(m, &m->messenger);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

Manager *manager_free(Manager *m) {
	if (!m) {
		return NULL;
	}
	m->login_call = sd_bus_message_unref(m->login_call);
	m->resolver = resolver_free(m->resolver);
	m->link = coordinator_link_free(m->link);
	m->messenger = messenger_free(m->messenger);
	roster_clear(m);
	manager_store_close(m);

	m->object_manager_slot = sd_bus_slot_unref(m->object_manager_slot);
	m->enumerator_slot = sd_bus_slot_unref(m->enumerator_slot);
	m->peer_slot = sd_bus_slot_unref(m->peer_slot);
	m->manager_slot = sd_bus_slot_unref(m->manager_slot);
	m->bus = sd_bus_flush_close_unref(m->bus);

	m->exit_source = sd_event_source_disable_unref(m->exit_source);
	m->udp_source = sd_event_source_disable_unref(m->udp_source);
	m->udp_fd = safe_close(m->udp_fd);
	m->event = sd_event_unref(m->event);
	free(m->username);
	free(m->coordinator);
	free(m->local_endpoint);
	return mfree(m);
}

/* A dual-stack socket reaches IPv4 too, through v4-mapped IPv6 addresses. */
static bool manager_can_reach(Manager *m, int family) {
	return family == endpoint_family(&m->bind_address) || (m->dual_stack && family == AF_INET);
}

int manager_send_datagram(Manager *m, const Endpoint *to, const void *buf, size_t n) {
	Endpoint mapped;

	if (!manager_can_reach(m, endpoint_family(to))) {
		return -EAFNOSUPPORT;
	}
	if (m->dual_stack && endpoint_family(to) == AF_INET) {
		mapped = (Endpoint) { .in6.sin6_family = AF_INET6, .in6.sin6_port = to->in.sin_port };
		mapped.in6.sin6_addr.s6_addr[10] = 0xff;
		mapped.in6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&mapped.in6.sin6_addr.s6_addr[12], &to->in.sin_addr, 4);
		to = &mapped;
	}
	if (sendto(m->udp_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL, &to->sa, endpoint_socklen(to)) < 0) {
		return -errno;
	}
	return 0;
}

/* The roster and the coordinator speak of IPv4 peers as IPv4, never v4-mapped. */
static void endpoint_unmap(Endpoint *e) {
	if (endpoint_family(e) == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&e->in6.sin6_addr)) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = e->in6.sin6_port };

		memcpy(&in.sin_addr, &e->in6.sin6_addr.s6_addr[12], 4);
		*e = (Endpoint) { .in = in };
	}
}

static void dispatch_datagram(Manager *m, const uint8_t *buf, size_t n, const Endpoint *from) {
	WireMessage w = {};
	int r;

	if (n > 0 && buf[0] == '{') {
		messenger_handle_json(m->messenger, (const char *) buf, n, from);
		return;
	}
	r = wire_parse_datagram(buf, n, &w, NULL);
	if (r < 0) {
		log_debug_errno(r, "Dropping malformed datagram: %m");
		return;
	}
	switch (w.type) {
	case WIRE_TYPE_TALK:
		messenger_handle_talk(m->messenger, &w, from);
		break;
	case WIRE_TYPE_ACCEPT:
	case WIRE_TYPE_REJECT:
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_LOGOUT:
		if (m->username) {
			coordinator_link_handle_datagram(m->link, &w, from);
		}
		break;
	case WIRE_TYPE_HELLO:
	case WIRE_TYPE_WELCOME:
	case WIRE_TYPE_PING:
	case WIRE_TYPE_PONG:
		log_debug("Dropping '%s' datagram: only valid on the TCP session.",
				wire_type_to_string(w.type));
		break;
	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		abort();
	}
	wire_message_done(&w);
}

static int on_udp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	static uint8_t buf[WIRE_DATAGRAM_MAX + 1];
	Manager *m = userdata;

	/* Bounded, so that a flood cannot starve the bus. */
	for (int i = 0; i < 256; i++) {
		SockaddrUnion ss;
		socklen_t len = sizeof(ss);
		Endpoint from;
		ssize_t n;

		n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, &ss.sa,
				&len);
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
		dispatch_datagram(m, buf, (size_t) n, &from);
	}
	return 0;
}

static int open_udp(const Endpoint *address, bool dual_stack, int *ret) {
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
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int) { MANAGER_UDP_BUFFER },
			sizeof(int)) < 0 ||
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int) { MANAGER_UDP_BUFFER },
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

static int bind_udp(Manager *m) {
	_cleanup_close_ int fd = -EBADF;
	SockaddrUnion ss;
	socklen_t len = sizeof(ss);
	char buf[ENDPOINT_STRLEN];
	int r;

	if (endpoint_family(&m->bind_address) == AF_UNSPEC) {
		/* No --bind: every address of both families, if the host has IPv6. */
		Endpoint any6 = { .in6.sin6_family = AF_INET6, .in6.sin6_addr = IN6ADDR_ANY_INIT };

		r = open_udp(&any6, true, &fd);
		if (r >= 0) {
			m->dual_stack = true;
		} else {
			log_debug_errno(r, "No dual-stack UDP socket, using IPv4 only: %m");
			m->bind_address = (Endpoint) { .in.sin_family = AF_INET };
		}
	}
	if (fd < 0) {
		r = open_udp(&m->bind_address, false, &fd);
		if (r < 0) {
			return log_error_errno(r, "Failed to bind UDP socket to '%s': %m",
					endpoint_format(&m->bind_address, buf));
		}
	}
	if (getsockname(fd, &ss.sa, &len) < 0) {
		return log_error_errno(errno, "Failed to read UDP socket address: %m");
	}
	r = endpoint_from_sockaddr(&ss.sa, len, &m->bind_address);
	if (r < 0) {
		return log_error_errno(r, "Failed to read UDP socket address: %m");
	}
	r = sd_event_add_io(m->event, &m->udp_source, fd, EPOLLIN, on_udp, m);
	if (r < 0) {
		return log_error_errno(r, "Failed to watch UDP socket: %m");
	}
	m->udp_fd = TAKE_FD(fd);
	log_debug("Peer socket bound to %s%s.", endpoint_format(&m->bind_address, buf),
			m->dual_stack ? " (IPv4 and IPv6)" : "");
	return 0;
}

int manager_export(Manager *m, sd_bus *bus) {
	int r;

	r = manager_store_open(m);
	if (r < 0) {
		return r;
	}
	/* No --bind: the config's, unless that is the default "any". */
	if (endpoint_family(&m->bind_address) == AF_UNSPEC &&
			!(endpoint_is_any(&m->config->bind_address) &&
			  endpoint_port(&m->config->bind_address) == 0 &&
			  endpoint_family(&m->config->bind_address) == AF_INET)) {
		m->bind_address = m->config->bind_address;
	}
	r = bind_udp(m);
	if (r < 0) {
		return r;
	}
	r = bus_errors_register();
	if (r < 0) {
		return log_error_errno(r, "Failed to register D-Bus error map: %m");
	}
	m->bus = sd_bus_ref(bus);
	r = manager_bus_register(m);
	if (r < 0) {
		return r;
	}
	return peer_bus_register(m);
}

/*
 * Logs out when the loop ends (SIGTERM, SIGINT): before the bus's own exit
 * source flushes and closes the connection, so the Logout's signals and a
 * pending Login()'s answer still go out.
 */
static int on_loop_exit(sd_event_source *s, void *userdata) {
	Manager *m = userdata;
	int r;

	/* A pending batch first: its replies and acks go out while the bus is open. */
	(void) manager_commit(m);
	r = manager_logout(m);
	(void) manager_commit(m);
	return r;
}

int manager_start(Manager *m) {
	_cleanup_(sd_bus_unrefp) sd_bus *bus = NULL; /* m->bus keeps its own reference */
	int r;

	r = sd_bus_open_user(&bus);
	if (r < 0) {
		return log_error_errno(r, "Failed to connect to the session bus: %m");
	}
	r = manager_export(m, bus);
	if (r < 0) {
		return r;
	}
	/* Objects first, then the name: a client that sees the name finds them. */
	r = sd_bus_request_name(m->bus, MANAGER_BUS_NAME, 0);
	if (r == -EEXIST) {
		return log_error_errno(r, "Bus name '%s' is already owned: another p2pchatd is "
				"running for this user.", MANAGER_BUS_NAME);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to request bus name '%s': %m", MANAGER_BUS_NAME);
	}
	r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		return log_error_errno(r, "Failed to attach bus to event loop: %m");
	}
	r = sd_bus_set_exit_on_disconnect(m->bus, true);
	if (r < 0) {
		return log_error_errno(r, "Failed to set exit on disconnect: %m");
	}
	r = sd_event_add_exit(m->event, &m->exit_source, on_loop_exit, m);
	if (r >= 0) {
		r = sd_event_source_set_priority(m->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to add exit handler: %m");
	}
	r = manager_store_attach_bus(m);
	if (r < 0) {
		return r;
	}
	manager_store_autologin(m);
	return 0;
}

/*
 * "HOST:PORT": HOST is an IPv4 address, a bracketed IPv6 address or a host
 * name; ":PORT" may be left out (7474), and "" means localhost.
 * Return: 1 with @ret_literal for an address, 0 with @ret_host and @ret_port
 * for a name to resolve, -EINVAL.
 */
static int parse_coordinator(const char *s, char ret_host[static RESOLVE_HOST_MAX + 1],
		uint16_t *ret_port, Endpoint *ret_literal) {
	char host[RESOLVE_HOST_MAX + 1], buf[RESOLVE_HOST_MAX + 16];
	uint16_t port = MANAGER_DEFAULT_COORDINATOR_PORT;
	const char *colon, *end;
	size_t n;

	if (!*s) {
		s = "localhost";
	}
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end) {
			return -EINVAL;
		}
		colon = end[1] == ':' ? end + 1 : NULL;
		if (!colon && end[1] != '\0') {
			return -EINVAL;
		}
		end++;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			return -EINVAL; /* IPv6 needs brackets */
		}
		end = colon ? colon : s + strlen(s);
	}
	n = (size_t) (end - s);
	if (n == 0 || n > RESOLVE_HOST_MAX) {
		return -EINVAL;
	}
	if (colon && endpoint_parse_port(colon + 1, strlen(colon + 1), &port) < 0) {
		return -EINVAL;
	}
	memcpy(host, s, n);
	host[n] = '\0';

	(void) snprintf(buf, sizeof(buf), "%s:%u", host, (unsigned) port);
	if (endpoint_parse(buf, strlen(buf), ret_literal) >= 0) {
		return 1;
	}
	if (host[0] == '[' || !resolve_host_is_valid(host)) {
		return -EINVAL;
	}
	memcpy(ret_host, host, n + 1);
	*ret_port = port;
	return 0;
}

/* The address the kernel would send from to reach the coordinator, with our port. */
static int find_declared_endpoint(Manager *m, Endpoint *ret) {
	_cleanup_close_ int fd = -EBADF;
	SockaddrUnion ss;
	socklen_t len = sizeof(ss);
	Endpoint e;
	int r;

	if (!endpoint_is_any(&m->bind_address)) {
		*ret = m->bind_address;
		return 0;
	}
	fd = socket(endpoint_family(&m->coordinator_address), SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, &m->coordinator_address.sa, endpoint_socklen(&m->coordinator_address)) <
			0) {
		return -errno;
	}
	if (getsockname(fd, &ss.sa, &len) < 0) {
		return -errno;
	}
	r = endpoint_from_sockaddr(&ss.sa, len, &e);
	if (r < 0) {
		return r;
	}
	if (endpoint_is_any(&e)) {
		return -EADDRNOTAVAIL;
	}
	endpoint_set_port(&e, endpoint_port(&m->bind_address));
	*ret = e;
	return 0;
}

static void set_state(Manager *m, ManagerState state) {
	if (m->state == state) {
		return;
	}
	log_debug("State: %s -> %s", manager_state_to_string(m->state),
			manager_state_to_string(state));
	m->state = state;
	manager_emit_properties_changed(m);
}

/* The second half of a login, once the coordinator's address is known. */
static int login_continue(Manager *m, const Endpoint *coord) {
	char buf[ENDPOINT_STRLEN];
	int r;

	m->coordinator_address = *coord;
	r = find_declared_endpoint(m, &m->declared);
	if (r < 0) {
		return log_warning_errno(r, "Failed to find a local address towards '%s': %m",
				m->coordinator);
	}
	r = free_and_strdup(&m->local_endpoint, endpoint_format(&m->declared, buf));
	if (r < 0) {
		return r;
	}
	log_info("Logging in as '%s' at '%s', declaring %s.", m->username, m->coordinator, buf);
	manager_emit_properties_changed(m);
	return coordinator_link_start(m->link);
}

static void on_resolved(int error, const Endpoint *ep, void *userdata) {
	Manager *m = userdata;
	int r;

	m->resolver = resolver_free(m->resolver);
	if (error < 0) {
		manager_link_failed(m, -EHOSTUNREACH, "cannot resolve its host name");
		return;
	}
	r = login_continue(m, ep);
	if (r < 0) {
		manager_link_failed(m, -EHOSTUNREACH, "no local address towards it");
	}
}

int manager_login(Manager *m, const char *name, const char *coordinator) {
	char host[RESOLVE_HOST_MAX + 1], buf[ENDPOINT_STRLEN];
	uint16_t port;
	Endpoint coord;
	int r, literal;

	assert(m->state == MANAGER_STATE_OFFLINE);

	literal = parse_coordinator(coordinator, host, &port, &coord);
	if (literal < 0) {
		return -EINVAL;
	}
	if (literal && !manager_can_reach(m, endpoint_family(&coord))) {
		log_warning("Coordinator '%s' is not reachable from a socket bound to %s.",
				coordinator, endpoint_format(&m->bind_address, buf));
		return -EINVAL;
	}
	if (free_and_strdup(&m->username, name) < 0 ||
			free_and_strdup(&m->coordinator, coordinator) < 0) {
		return -ENOMEM;
	}
	set_state(m, MANAGER_STATE_CONNECTING);

	if (literal) {
		r = login_continue(m, &coord);
	} else {
		/* The answer comes from the loop, after Login() has kept its message. */
		log_debug("Resolving '%s'.", host);
		r = resolver_start(m->event, host, port,
				m->dual_stack ? AF_UNSPEC : endpoint_family(&m->bind_address),
				on_resolved, m, &m->resolver);
	}
	if (r < 0) {
		manager_link_failed(m, r, "internal error");
		return r;
	}
	return 0;
}

static void emit_left(Peer *p, void *userdata) {
	if (p->online) {
		manager_emit_peer_left(p->manager, p);
	}
}

/* Everything of a login goes; @reason tells messages in flight why. */
static void go_offline(Manager *m, const char *reason) {
	m->resolver = resolver_free(m->resolver);
	messenger_requeue_all(m->messenger, reason);
	roster_foreach(m, emit_left, NULL);
	roster_clear(m);
	m->username = mfree(m->username);
	m->coordinator = mfree(m->coordinator);
	m->local_endpoint = mfree(m->local_endpoint);
	set_state(m, MANAGER_STATE_OFFLINE);
}

static void reply_login(Manager *m, int error, const char *message) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = TAKE_PTR(m->login_call);
	int r;

	if (!call || !manager_bus_is_open(m)) {
		return;
	}
	if (error < 0 && bus_error_name_from_errno(error)) {
		r = sd_bus_reply_method_errorf(call, bus_error_name_from_errno(error), "%s",
				message);
	} else if (error < 0) {
		r = sd_bus_reply_method_errnof(call, error, "%s", message);
	} else {
		r = sd_bus_reply_method_return(call, NULL);
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to reply to Login(), ignoring: %m");
	}
}

int manager_logout(Manager *m) {
	if (m->state == MANAGER_STATE_OFFLINE) {
		return 0;
	}
	log_info("Logging out '%s'.", m->username);
	coordinator_link_stop(m->link, true);
	reply_login(m, -ECANCELED, "Login cancelled by Logout() or shutdown");
	go_offline(m, "logged-out");
	return 0;
}

void manager_link_online(Manager *m) {
	log_info("Online as '%s' with %zu peers known.", m->username, roster_size(m));
	set_state(m, MANAGER_STATE_ONLINE);
	reply_login(m, 0, NULL);
	manager_schedule_flush(m);
}

void manager_link_lost(Manager *m) {
	char buf[ENDPOINT_STRLEN];
	Endpoint e;

	/* The route to the coordinator may have changed with the network. */
	if (find_declared_endpoint(m, &e) >= 0 && !endpoint_equal(&e, &m->declared) &&
			free_and_strdup(&m->local_endpoint, endpoint_format(&e, buf)) >= 0) {
		log_info("Local endpoint is now %s.", buf);
		m->declared = e;
	}
	set_state(m, MANAGER_STATE_CONNECTING);
}

void manager_link_failed(Manager *m, int error, const char *reason) {
	char message[256];

	switch (error) {
	case -EHOSTUNREACH:
		(void) snprintf(message, sizeof(message), "Coordinator '%s' unreachable: %s",
				m->coordinator, reason);
		break;
	case -EADDRINUSE:
		(void) snprintf(message, sizeof(message), "Name '%s' is taken (%s)", m->username,
				reason);
		break;
	case -EDOM:
		(void) snprintf(message, sizeof(message), "Coordinator refused name '%s' (%s)",
				m->username, reason);
		break;
	default:
		(void) snprintf(message, sizeof(message), "Coordinator refused login: %s", reason);
		break;
	}
	log_warning("Login failed: %s", message);
	coordinator_link_stop(m->link, false);
	reply_login(m, error, message);
	go_offline(m, "logged-out");
	manager_store_autologin_failed(m);
}
