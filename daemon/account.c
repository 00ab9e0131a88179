/* SPDX-License-Identifier: MIT */

/*
 * The account, owned by the composition (daemon.c).  It keeps the login
 * state (offline -> connecting -> online, back to connecting while the
 * coordinator is lost, offline again after Logout() or a failed Login()),
 * resolves the coordinator's host name, finds the endpoint we declare, and
 * owns the CoordinatorLink, whose reports it turns into AccountCallbacks.
 * It retries the autologin until the user logs in or out.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/account.h"
#include "daemon/coordinator-link.h"
#include "daemon/resolve.h"

typedef union SockaddrUnion {
	struct sockaddr sa;
	struct sockaddr_storage storage;
} SockaddrUnion;

struct Account {
	sd_event *event;
	Udp *udp;                 /* not owned */
	Config *config;           /* not owned */
	const Identity *identity; /* not owned */
	CoordinatorPins *pins;    /* not owned */
	const AccountCallbacks *callbacks;
	void *userdata;

	AccountState state;
	char *username;       /* NULL when offline */
	char *coordinator;    /* as the caller wrote it; NULL when offline */
	char *local_endpoint; /* declared endpoint text; NULL when offline */
	Endpoint coordinator_address;
	Endpoint declared;

	CoordinatorLink *link;
	Resolver *resolver; /* while a login waits for a host name */
	bool autologin;     /* keep trying the config's login */
	sd_event_source *autologin_timer;
	const char *offline_reason; /* static; why the last login ended, "" before any */
};

static const char *const state_table[_ACCOUNT_STATE_MAX] = {
	[ACCOUNT_STATE_OFFLINE] = "offline",
	[ACCOUNT_STATE_CONNECTING] = "connecting",
	[ACCOUNT_STATE_ONLINE] = "online",
};

const char *account_state_to_string(AccountState s) {
	return string_table_lookup(state_table, ELEMENTSOF(state_table), s);
}

static const CoordinatorLinkCallbacks link_callbacks;

int account_new(sd_event *event, Udp *udp, Config *config, const Identity *identity,
		CoordinatorPins *pins, const AccountCallbacks *callbacks, void *userdata,
		Account **ret) {
	_cleanup_(account_freep) Account *a = NULL;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a) {
		return -ENOMEM;
	}
	a->event = sd_event_ref(event);
	a->udp = udp;
	a->config = config;
	a->identity = identity;
	a->pins = pins;
	a->callbacks = callbacks;
	a->userdata = userdata;
	r = coordinator_link_new(event, udp, identity, &link_callbacks, a, &a->link);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

Account *account_free(Account *a) {
	if (!a) {
		return NULL;
	}
	a->resolver = resolver_free(a->resolver);
	a->link = coordinator_link_free(a->link);
	a->autologin_timer = sd_event_source_disable_unref(a->autologin_timer);
	free(a->username);
	free(a->coordinator);
	free(a->local_endpoint);
	a->event = sd_event_unref(a->event);
	return mfree(a);
}

const char *account_get_offline_reason(const Account *a) {
	return a->state == ACCOUNT_STATE_OFFLINE ? strempty(a->offline_reason) : "";
}

int account_get_coordinator_fingerprint(const Account *a,
		char ret[static IDENTITY_FINGERPRINT_SIZE]) {
	const uint8_t *key = coordinator_link_get_coordinator_key(a->link);

	if (a->state != ACCOUNT_STATE_ONLINE || !key) {
		return -ENOKEY;
	}
	identity_fingerprint(key, ret);
	return 0;
}

AccountState account_get_state(Account *a) {
	return a->state;
}

const char *account_get_username(Account *a) {
	return a->username;
}

const char *account_get_coordinator(Account *a) {
	return a->coordinator;
}

const char *account_get_local_endpoint(Account *a) {
	return a->local_endpoint;
}

const Identity *account_get_identity(const Account *a) {
	return a->identity;
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
	uint16_t port = ACCOUNT_DEFAULT_COORDINATOR_PORT;
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

/*
 * The name a coordinator's key is pinned under: HOST:PORT with the port
 * written out and a host name in lower case, an address as
 * endpoint_format() writes it, so that every way of writing one
 * coordinator finds the same pin.  "" is the config's coordinator, as for
 * Login().
 */
static int coordinator_pin_name(Account *a, const char *coordinator, char **ret) {
	char host[RESOLVE_HOST_MAX + 1], buf[ENDPOINT_STRLEN];
	uint16_t port;
	Endpoint literal;
	char *s;
	int r;

	r = parse_coordinator(coordinator[0] != '\0' ? coordinator : a->config->coordinator,
			host, &port, &literal);
	if (r < 0) {
		return r;
	}
	if (r > 0) {
		s = strdup(endpoint_format(&literal, buf));
	} else {
		for (char *c = host; *c; c++) {
			*c = (char) tolower((unsigned char) *c);
		}
		if (asprintf(&s, "%s:%u", host, (unsigned) port) < 0) {
			s = NULL;
		}
	}
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* The address the kernel would send from to reach the coordinator, with our port. */
static int find_declared_endpoint(Account *a, Endpoint *ret) {
	const Endpoint *bound = udp_get_address(a->udp);
	_cleanup_close_ int fd = -EBADF;
	SockaddrUnion ss;
	socklen_t len = sizeof(ss);
	Endpoint e;
	int r;

	if (!endpoint_is_any(bound)) {
		*ret = *bound;
		return 0;
	}
	fd = socket(endpoint_family(&a->coordinator_address), SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, &a->coordinator_address.sa,
			endpoint_socklen(&a->coordinator_address)) < 0) {
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
	endpoint_set_port(&e, endpoint_port(bound));
	*ret = e;
	return 0;
}

static void set_state(Account *a, AccountState state) {
	if (a->state == state) {
		return;
	}
	log_debug("State: %s -> %s", account_state_to_string(a->state),
			account_state_to_string(state));
	a->state = state;
	a->callbacks->changed(a->userdata);
}

/* Everything of a login goes; @reason tells messages in flight why. */
static void go_offline(Account *a, const char *reason) {
	a->offline_reason = reason;
	a->resolver = resolver_free(a->resolver);
	a->callbacks->offline(reason, a->userdata);
	a->username = mfree(a->username);
	a->coordinator = mfree(a->coordinator);
	a->local_endpoint = mfree(a->local_endpoint);
	set_state(a, ACCOUNT_STATE_OFFLINE);
}

static int on_autologin_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Account *a = userdata;

	if (a->autologin && a->state == ACCOUNT_STATE_OFFLINE) {
		account_autologin(a);
	}
	return 0;
}

/* The login failed or was lost for good: try the autologin again later. */
static void autologin_failed(Account *a) {
	int r;

	if (!a->autologin) {
		return;
	}
	if (!a->autologin_timer) {
		r = sd_event_add_time_relative(a->event, &a->autologin_timer, CLOCK_MONOTONIC,
				ACCOUNT_AUTOLOGIN_RETRY_USEC, USEC_PER_SEC / 10, on_autologin_timer,
				a);
	} else {
		r = sd_event_source_set_time_relative(a->autologin_timer,
				ACCOUNT_AUTOLOGIN_RETRY_USEC);
		if (r >= 0) {
			r = sd_event_source_set_enabled(a->autologin_timer, SD_EVENT_ONESHOT);
		}
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to schedule the next autologin: %m");
	}
}

/* The login ends in failure: exactly one report, whatever path it came by. */
static void login_failed(Account *a, int error, const char *reason) {
	char message[512];

	switch (error) {
	case -EHOSTUNREACH:
		(void) snprintf(message, sizeof(message), "Coordinator '%s' unreachable: %s",
				strempty(a->coordinator), reason);
		break;
	case -EADDRINUSE:
		(void) snprintf(message, sizeof(message), "Name '%s' is taken (%s)",
				strempty(a->username), reason);
		break;
	case -EDOM:
		(void) snprintf(message, sizeof(message), "Coordinator refused name '%s' (%s)",
				strempty(a->username), reason);
		break;
	case -EKEYREJECTED:
		if (!reason || !reason[0]) {
			(void) snprintf(message, sizeof(message), "Coordinator '%s' no longer proves "
					"the key pinned for it (it answered as a reference server)",
					strempty(a->coordinator));
		} else {
			(void) snprintf(message, sizeof(message), "The key of coordinator '%s' "
					"changed: its new fingerprint is %s. If you trust it, run: "
					"p2pchat trust-coordinator '%s' '%s'",
					strempty(a->coordinator), reason, strempty(a->coordinator),
					reason);
		}
		break;
	case -EOWNERDEAD:
		(void) snprintf(message, sizeof(message), "Another p2pchatd with this identity "
				"logged in as '%s': this one went offline", strempty(a->username));
		break;
	default:
		(void) snprintf(message, sizeof(message), "Coordinator refused login: %s", reason);
		break;
	}
	log_warning("Login failed: %s", message);
	coordinator_link_stop(a->link, false);
	a->callbacks->login_done(error, message, a->userdata);
	if (error == -EOWNERDEAD) {
		/* The other daemon has the name now: taking it back would only start a fight. */
		a->autologin = false;
		go_offline(a, "replaced");
		return;
	}
	go_offline(a, "logged-out");
	autologin_failed(a);
}

/* The second half of a login, once the coordinator's address is known. */
static int login_continue(Account *a, const Endpoint *coord) {
	char buf[ENDPOINT_STRLEN];
	int r;

	a->coordinator_address = *coord;
	r = find_declared_endpoint(a, &a->declared);
	if (r < 0) {
		return log_warning_errno(r, "Failed to find a local address towards '%s': %m",
				a->coordinator);
	}
	r = free_and_strdup(&a->local_endpoint, endpoint_format(&a->declared, buf));
	if (r < 0) {
		return r;
	}
	log_info("Logging in as '%s' at '%s', declaring %s.", a->username, a->coordinator, buf);
	a->callbacks->changed(a->userdata);
	return coordinator_link_start(a->link, a->username, &a->coordinator_address,
			&a->declared);
}

static void on_resolved(int error, const Endpoint *ep, void *userdata) {
	Account *a = userdata;
	int r;

	a->resolver = resolver_free(a->resolver);
	if (error < 0) {
		login_failed(a, -EHOSTUNREACH, "cannot resolve its host name");
		return;
	}
	r = login_continue(a, ep);
	if (r < 0) {
		login_failed(a, -EHOSTUNREACH, "no local address towards it");
	}
}

static int login(Account *a, const char *name, const char *coordinator) {
	char host[RESOLVE_HOST_MAX + 1], buf[ENDPOINT_STRLEN];
	uint16_t port;
	Endpoint coord;
	int r, literal;

	assert(a->state == ACCOUNT_STATE_OFFLINE);

	literal = parse_coordinator(coordinator, host, &port, &coord);
	if (literal < 0) {
		return -EINVAL;
	}
	if (literal && !udp_can_reach(a->udp, endpoint_family(&coord))) {
		log_warning("Coordinator '%s' is not reachable from a socket bound to %s.",
				coordinator, endpoint_format(udp_get_address(a->udp), buf));
		return -EINVAL;
	}
	if (free_and_strdup(&a->username, name) < 0 ||
			free_and_strdup(&a->coordinator, coordinator) < 0) {
		return -ENOMEM;
	}
	set_state(a, ACCOUNT_STATE_CONNECTING);

	if (literal) {
		r = login_continue(a, &coord);
	} else {
		/* The answer comes from the loop, after Login() has kept its message. */
		log_debug("Resolving '%s'.", host);
		r = resolver_start(a->event, host, port, udp_get_resolve_family(a->udp),
				on_resolved, a, &a->resolver);
	}
	if (r < 0) {
		login_failed(a, r, "internal error");
		return r;
	}
	return 0;
}

int account_login(Account *a, const char *name, const char *coordinator) {
	a->autologin = false; /* the user decides now */
	return login(a, name, coordinator[0] != '\0' ? coordinator : a->config->coordinator);
}

int account_logout(Account *a, bool by_user) {
	if (by_user) {
		a->autologin = false;
	}
	if (a->state == ACCOUNT_STATE_OFFLINE) {
		return 0;
	}
	log_info("Logging out '%s'.", a->username);
	coordinator_link_stop(a->link, true);
	a->callbacks->login_done(-ECANCELED, "Login cancelled by Logout() or shutdown",
			a->userdata);
	go_offline(a, "logged-out");
	return 0;
}

void account_autologin(Account *a) {
	int r;

	if (!a->config->autologin) {
		return;
	}
	if (a->config->username[0] == '\0') {
		log_warning("autologin is on but no username is set in %s.", a->config->path);
		return;
	}
	log_info("Logging in as '%s' at %s (autologin).", a->config->username,
			a->config->coordinator);
	a->autologin = true;
	r = login(a, a->config->username, a->config->coordinator);
	if (r < 0) {
		log_warning_errno(r, "Autologin failed: %m");
		autologin_failed(a);
	}
}

int account_check_coordinator_key(Account *a, const char *coordinator,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]) {
	_cleanup_free_ char *name = NULL;
	int r;

	r = coordinator_pin_name(a, coordinator, &name);
	if (r < 0) {
		return r;
	}
	return coordinator_pins_check(a->pins, name, key);
}

int account_trust_coordinator(Account *a, const char *coordinator, const char *fingerprint) {
	_cleanup_free_ char *name = NULL;
	int r;

	r = coordinator_pin_name(a, coordinator, &name);
	if (r < 0) {
		return r;
	}
	r = coordinator_pins_trust(a->pins, name, fingerprint);
	if (r == 0) {
		log_info("Trusting the key of coordinator '%s' with fingerprint '%s'.", name,
				fingerprint);
	}
	return r;
}

static void on_link_online(void *userdata) {
	Account *a = userdata;

	log_info("Online as '%s'.", a->username);
	set_state(a, ACCOUNT_STATE_ONLINE);
	a->callbacks->login_done(0, NULL, a->userdata);
	a->callbacks->online(a->userdata);
}

static void on_link_lost(void *userdata) {
	Account *a = userdata;
	char buf[ENDPOINT_STRLEN];
	Endpoint e;

	/* The route to the coordinator may have changed with the network. */
	if (find_declared_endpoint(a, &e) >= 0 && !endpoint_equal(&e, &a->declared) &&
			free_and_strdup(&a->local_endpoint, endpoint_format(&e, buf)) >= 0) {
		log_info("Local endpoint is now %s.", buf);
		a->declared = e;
		coordinator_link_set_declared(a->link, &e);
	}
	set_state(a, ACCOUNT_STATE_CONNECTING);
}

static void on_link_failed(int error, const char *reason, void *userdata) {
	login_failed(userdata, error, reason);
}

/* The key the coordinator proved is checked against its pin (NULL: a reference server). */
static int on_link_verify_coordinator(const uint8_t *key, void *userdata) {
	Account *a = userdata;

	_cleanup_free_ char *name = NULL;
	int r;

	if (key) {
		return account_check_coordinator_key(a, a->coordinator, key);
	}
	/* A coordinator we know by its key that suddenly proves nothing is not it. */
	r = coordinator_pin_name(a, a->coordinator, &name);
	if (r < 0) {
		return r;
	}
	if (coordinator_pins_has(a->pins, name)) {
		log_warning("Coordinator '%s' has a pinned key but answered as a reference "
				"server, which proves none: refusing.", name);
		return -EKEYREJECTED;
	}
	return 0;
}

static int on_link_list(const WireListEntry *entries, size_t n, uint64_t grace,
		void *userdata) {
	Account *a = userdata;

	return a->callbacks->list(entries, n, grace, a->userdata);
}

static void on_link_peer_login(const WireMessage *w, void *userdata) {
	Account *a = userdata;

	a->callbacks->peer_login(w, a->userdata);
}

static void on_link_peer_logout(const WireMessage *w, void *userdata) {
	Account *a = userdata;

	a->callbacks->peer_logout(w, a->userdata);
}

static const CoordinatorLinkCallbacks link_callbacks = {
	.online = on_link_online,
	.lost = on_link_lost,
	.failed = on_link_failed,
	.list = on_link_list,
	.verify_coordinator = on_link_verify_coordinator,
	.peer_login = on_link_peer_login,
	.peer_logout = on_link_peer_logout,
};
