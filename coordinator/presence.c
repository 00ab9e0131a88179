/* SPDX-License-Identifier: MIT */

/*
 * Presence owns the registry (and through it every User), the lease queue of
 * users without a session, the wait queue of native users before their
 * hello, the pending queue of reference logins before their confirmation
 * and the probe queue of reference clients.  A User lives from an accepted
 * login until its logout: a logout datagram or frame, a newer login from
 * the same IP, the end of its lease or wait, probes reported unreachable, or
 * the close of its session.  A reference login is first only pending: not
 * listed, not forwarded, sent nothing but its Accept; it goes online when a
 * TCP connection from its source IP fetches the list (presence_confirm()),
 * and is forgotten, unannounced, when pending_wait runs out first.
 *
 * A User is in at most one queue, by its one TimeoutLink: the pending queue
 * (reference login, not confirmed), the wait queue (native, no session
 * yet), the probe queue or probe backlog (reference client whose declared
 * endpoint may be sent to, probing on), the lease queue (any other
 * session-less user), or none (it has a session).
 *
 * Probes: the reference client cannot be asked whether it is there, but its
 * host answers a datagram to a closed port with ICMP port unreachable (and
 * a vanished host's LAN with host unreachable).  So each probed user is sent
 * a probe every probe_interval; the owner reports unreachable probes, and
 * probe_count of them in a row log the user out, while a probe that draws
 * no report by the next one proves the client is there.  Probes are spread
 * by the users' login times (the queue is ordered by them) and limited to
 * probe_rate a second by a token bucket: users due while it is empty wait
 * in the backlog, in order, so none is starved.  A user and its session point at each
 * other without owning: the session is the owner's (it closes it when told
 * through drop_session()), and tells presence when it closes by other means.
 * The Presence lives as long as the server.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "coordinator/presence.h"
#include "coordinator/timeout-queue.h"

struct Presence {
	PresenceConfig config;
	PresenceCallbacks callbacks;
	void *userdata;
	sd_event *event;
	Registry *registry;
	TimeoutQueue lease_queue;  /* session-less users */
	TimeoutQueue wait_queue;   /* pending native logins before their hello */
	TimeoutQueue pending_queue; /* reference logins before their confirmation */
	TimeoutQueue probe_queue;  /* probed users, until their next probe */
	ListNode probe_backlog;    /* probed users due, waiting for a token */
	sd_event_source *backlog_timer;
	uint64_t probe_tokens;     /* in probes * USEC_PER_SEC */
	uint64_t probe_refilled_at;
	HashTable probing;         /* users with a pending probe, by declared endpoint */
	size_t n_sessions;
	bool shutting_down;        /* no forwards while tearing down */
};

static const char *const presence_reply_reason_table[_PRESENCE_REPLY_MAX] = {
	[PRESENCE_REPLY_NAME_TAKEN] = "name-taken",
	[PRESENCE_REPLY_FULL] = "full",
};

const char *presence_reply_to_reason(PresenceReply r) {
	return string_table_lookup(presence_reply_reason_table,
			ELEMENTSOF(presence_reply_reason_table), r);
}

static void presence_remove_user(Presence *p, User *u, const char *why);
static void presence_drain_probes(Presence *p);

/* Forgets the pending login @u: nobody was told of it, nobody is now. */
static void presence_drop_pending(Presence *p, User *u, const char *why) {
	char buf[ENDPOINT_STRLEN];

	log_debug("Forgetting pending login of '%s' from %s: %s.", user_get_name(u),
			endpoint_format(user_get_source(u), buf), why);
	registry_remove(p->registry, u);
}

static void on_pending_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Presence *p = userdata;

	presence_drop_pending(p, user_from_timeout(link),
			q == &p->wait_queue ? "no session" : "no list fetch from its IP");
}

static void on_user_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Presence *p = userdata;

	presence_remove_user(p, user_from_timeout(link),
			q == &p->lease_queue ? "lease expired" : "no session");
}

static uint64_t presence_now(Presence *p) {
	uint64_t now = 0;

	(void) sd_event_now(p->event, CLOCK_MONOTONIC, &now);
	return now;
}

/* The bytes a declared endpoint is hashed by: address, then port. */
static uint64_t presence_endpoint_hash(const Presence *p, const Endpoint *e) {
	uint8_t key[sizeof(struct in6_addr) + sizeof(uint16_t)];
	uint16_t port = endpoint_port(e);
	size_t n;

	if (endpoint_family(e) == AF_INET6) {
		n = sizeof(struct in6_addr);
		memcpy(key, &e->in6.sin6_addr, n);
	} else {
		n = sizeof(struct in_addr);
		memcpy(key, &e->in.sin_addr, n);
	}
	memcpy(key + n, &port, sizeof(port));
	return hash_table_hash(&p->probing, key, n + sizeof(port));
}

/* Whether @u is probed rather than leased. */
static bool presence_probes(const Presence *p, const User *u) {
	return p->config.probe_interval > 0 && !user_is_native(u) && user_is_udp_reachable(u) &&
		!user_get_session(u);
}

/* Forgets @u's pending probe, if any. */
static void presence_clear_probe(Presence *p, User *u) {
	if (u->probe_pending) {
		hash_table_remove(&p->probing, &u->probe_node);
		u->probe_pending = false;
	}
}

/* A probed user is due: a pending probe nobody reported proves it is there. */
static void on_probe_due(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Presence *p = userdata;
	User *u = user_from_timeout(link);

	if (u->probe_pending) {
		presence_clear_probe(p, u);
		u->probe_misses = 0;
	}
	list_append(&p->probe_backlog, &link->node);
	presence_drain_probes(p);
}

static int on_backlog_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	presence_drain_probes(userdata);
	return 0;
}

/* Takes a token for one probe; false when the rate is spent. */
static bool presence_take_probe_token(Presence *p, uint64_t now) {
	uint64_t cap = (uint64_t) p->config.probe_rate * USEC_PER_SEC;

	if (p->config.probe_rate == 0) {
		return true;
	}
	if (now > p->probe_refilled_at) {
		uint64_t elapsed = MIN(now - p->probe_refilled_at, USEC_PER_SEC);

		p->probe_tokens = MIN(p->probe_tokens + elapsed * p->config.probe_rate, cap);
		p->probe_refilled_at = now;
	}
	if (p->probe_tokens < USEC_PER_SEC) {
		return false;
	}
	p->probe_tokens -= USEC_PER_SEC;
	return true;
}

static void presence_send_probe(Presence *p, User *u) {
	int r;

	presence_clear_probe(p, u);
	r = p->callbacks.send_probe(user_get_declared(u), p->userdata);
	if (r < 0) {
		log_debug_errno(r, "Failed to probe '%s', ignoring: %m", user_get_name(u));
		return;
	}
	u->probe_node.hash = presence_endpoint_hash(p, user_get_declared(u));
	if (hash_table_add(&p->probing, &u->probe_node) < 0) {
		return; /* out of memory: this probe cannot count */
	}
	u->probe_pending = true;
}

/* Probes the users in the backlog, in order, as far as the rate allows. */
static void presence_drain_probes(Presence *p) {
	uint64_t now = presence_now(p);
	ListNode *n;
	int r;

	while ((n = list_first(&p->probe_backlog))) {
		User *u = user_from_timeout(container_of(n, TimeoutLink, node));

		if (!presence_take_probe_token(p, now)) {
			/* The next token, but no more than 100 wakeups a second. */
			uint64_t wait = MAX(USEC_PER_SEC / p->config.probe_rate,
					10 * USEC_PER_MSEC);

			r = sd_event_source_set_time(p->backlog_timer, now + wait);
			if (r >= 0) {
				r = sd_event_source_set_enabled(p->backlog_timer,
						SD_EVENT_ONESHOT);
			}
			if (r < 0) {
				log_warning_errno(r, "Failed to arm the probe timer, "
						"ignoring: %m");
			}
			return;
		}
		list_remove(n);
		presence_send_probe(p, u);
		r = timeout_queue_push(&p->probe_queue, user_get_timeout(u));
		if (r < 0) {
			log_warning_errno(r, "Failed to queue the next probe of '%s', "
					"ignoring: %m", user_get_name(u));
		}
	}
}

int presence_new(sd_event *event, const PresenceConfig *config,
		const PresenceCallbacks *callbacks, void *userdata, Presence **ret) {
	_cleanup_(presence_freep) Presence *p = NULL;
	int r;

	p = calloc(1, sizeof(Presence));
	if (!p) {
		return -ENOMEM;
	}
	p->config = *config;
	p->callbacks = *callbacks;
	p->userdata = userdata;
	p->event = sd_event_ref(event);

	r = registry_new(&config->limits, &p->registry);
	if (r < 0) {
		return r;
	}
	r = timeout_queue_init(&p->lease_queue, event, config->lease, on_user_timeout, p);
	if (r < 0) {
		return r;
	}
	r = timeout_queue_init(&p->wait_queue, event, MAX(config->session_wait, 1u),
			on_pending_timeout, p);
	if (r < 0) {
		return r;
	}
	r = timeout_queue_init(&p->pending_queue, event, MAX(config->pending_wait, 1u),
			on_pending_timeout, p);
	if (r < 0) {
		return r;
	}
	r = timeout_queue_init(&p->probe_queue, event, MAX(config->probe_interval, 1u),
			on_probe_due, p);
	if (r < 0) {
		return r;
	}
	list_head_init(&p->probe_backlog);
	hash_table_init(&p->probing);
	r = sd_event_add_time(event, &p->backlog_timer, CLOCK_MONOTONIC, UINT64_MAX,
			USEC_PER_MSEC, on_backlog_timer, p);
	if (r < 0) {
		return r;
	}
	(void) sd_event_source_set_enabled(p->backlog_timer, SD_EVENT_OFF);
	p->probe_tokens = (uint64_t) config->probe_rate * USEC_PER_SEC;
	p->probe_refilled_at = presence_now(p);
	*ret = TAKE_PTR(p);
	return 0;
}

Presence *presence_free(Presence *p) {
	if (!p) {
		return NULL;
	}
	p->shutting_down = true;
	p->registry = registry_free(p->registry);
	timeout_queue_done(&p->lease_queue);
	timeout_queue_done(&p->wait_queue);
	timeout_queue_done(&p->pending_queue);
	timeout_queue_done(&p->probe_queue);
	hash_table_done(&p->probing);
	p->backlog_timer = sd_event_source_disable_unref(p->backlog_timer);
	sd_event_unref(p->event);
	free(p);
	return NULL;
}

Registry *presence_get_registry(Presence *p) {
	return p->registry;
}

size_t presence_get_n_sessions(const Presence *p) {
	return p->n_sessions;
}

void presence_shutdown(Presence *p) {
	p->shutting_down = true;
}

/* The datagrams of one fan-out, encoded once per encoding. */
typedef struct Payloads {
	uint8_t *buf[_WIRE_ENCODING_MAX];
	size_t len[_WIRE_ENCODING_MAX];
} Payloads;

static void payloads_done(Payloads *f) {
	for (size_t i = 0; i < _WIRE_ENCODING_MAX; i++) {
		f->buf[i] = mfree(f->buf[i]);
	}
}

/* Pushes the login or logout of @u to everyone but @u: by session, else by datagram. */
static int presence_forward(Presence *p, User *u, WireType type) {
	WireMessage m = { .type = type };
	_cleanup_free_ char *text = NULL;
	_cleanup_(payloads_done) Payloads payloads = {};
	size_t text_len;
	int r;

	(void) snprintf(m.name, sizeof(m.name), "%s", user_get_name(u));
	m.endpoint = *user_get_announced(u);
	if (type == WIRE_TYPE_LOGIN) {
		(void) snprintf(m.caps, sizeof(m.caps), "%s", user_get_caps(u));
		(void) snprintf(m.key, sizeof(m.key), "%s", user_get_key(u));
	}
	r = wire_format_line(&m, &text, &text_len);
	if (r < 0) {
		return log_error_errno(r, "Failed to format %s of '%s': %m",
				wire_type_to_string(type), user_get_name(u));
	}

	for (User *v = registry_first(p->registry); v; v = registry_next(p->registry, v)) {
		WireEncoding enc = user_get_encoding(v);

		if (v == u) {
			continue;
		}
		if (user_get_session(v)) {
			p->callbacks.send_frame(user_get_session(v), text, text_len, p->userdata);
			continue;
		}
		/* A native user without its session yet gets the list when it binds;
		 * a user that declared a foreign IP is reached only by session. */
		if (user_is_native(v) || !user_is_udp_reachable(v)) {
			continue;
		}
		if (!payloads.buf[enc]) {
			r = wire_encode_datagram(text, text_len, enc, &payloads.buf[enc],
					&payloads.len[enc]);
			if (r < 0) {
				return log_warning_errno(r, "Failed to queue forward "
						"of '%s', dropping: %m", user_get_name(u));
			}
		}
		r = p->callbacks.send_datagram(user_get_declared(v), payloads.buf[enc],
				payloads.len[enc], p->userdata);
		if (r < 0) {
			return log_warning_errno(r, "Failed to queue forward of '%s', dropping: %m",
					user_get_name(u));
		}
	}
	return 0;
}

/*
 * Puts the session-less @u in the probe or lease queue it belongs to.  A
 * login proves a probed client is there: its count starts over.
 */
static void presence_start_lease(Presence *p, User *u) {
	TimeoutQueue *q = &p->lease_queue;
	int r;

	if (presence_probes(p, u)) {
		q = &p->probe_queue;
		presence_clear_probe(p, u);
		u->probe_misses = 0;
	}
	r = timeout_queue_push(q, user_get_timeout(u));
	if (r < 0) {
		log_warning_errno(r, "Failed to start the lease of '%s', ignoring: %m",
				user_get_name(u));
	}
}

/* Unbinds @u's session, if any, without dropping it. */
static void *presence_unbind(Presence *p, User *u) {
	void *session = user_get_session(u);

	if (session) {
		user_set_session(u, NULL);
		p->n_sessions--;
	}
	return session;
}

/* Takes @u offline and tells every other user; a session @u holds is dropped. */
static void presence_remove_user(Presence *p, User *u, const char *why) {
	void *session;

	log_debug("'%s' logged out: %s.", user_get_name(u), why);
	session = presence_unbind(p, u);
	if (session) {
		p->callbacks.drop_session(session, NULL, p->userdata);
	}
	if (!p->shutting_down) {
		(void) presence_forward(p, u, WIRE_TYPE_LOGOUT);
	}
	presence_clear_probe(p, u);
	registry_remove(p->registry, u);
}

/*
 * A reference login: nothing vouches for its source address, which anyone
 * can forge, so it is only kept until a TCP connection from that IP fetches
 * the list (a handshake cannot be forged blind).  A forged one thus costs
 * its victim the Accept alone, never larger than the login (server.c).
 *
 * Pending logins hold no name: several may name one user, from several IPs,
 * and the first confirmed takes the name; the others are forgotten when
 * their IP fetches the list.  So forged logins, never confirmed, cannot
 * keep the real client out of its name, nor take a name from a user online.
 * A second pending login of the name from the same IP replaces the first.
 */
static PresenceReply presence_login_pending(Presence *p, const WireMessage *m,
		WireEncoding enc, const Endpoint *source, TimeoutQueue *queue) {
	char buf[ENDPOINT_STRLEN];
	ListNode *oldest;
	User *u;
	int r;

	if (registry_n_users(p->registry) >= p->config.limits.max_users) {
		log_notice("Refusing login of '%s': %u users online.", m->name,
				p->config.limits.max_users);
		return PRESENCE_REPLY_FULL;
	}
	u = registry_find_pending(p->registry, source, m->name);
	if (u) {
		presence_drop_pending(p, u, "replaced by a newer login");
	}

	r = registry_add_pending(p->registry, m, source, enc, &u);
	if (r == -EUSERS) {
		log_debug("Refusing login of '%s' from %s: too many names or pending logins "
				"from its IP.", m->name, endpoint_format(source, buf));
		return PRESENCE_REPLY_FULL;
	}
	if (r == -ENOSPC) {
		log_debug("Dropping login of '%s' from %s: too many source IPs tracked.",
				m->name, endpoint_format(source, buf));
		return PRESENCE_REPLY_NONE;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to keep login of '%s', dropping it: %m", m->name);
		return PRESENCE_REPLY_NONE;
	}
	r = timeout_queue_push(queue, user_get_timeout(u));
	if (r < 0) {
		log_error_errno(r, "Failed to queue login of '%s', dropping it: %m", m->name);
		registry_remove(p->registry, u);
		return PRESENCE_REPLY_NONE;
	}

	/* Beyond max_users pending logins the oldest goes: forged logins from
	 * many addresses then shorten everyone's wait instead of refusing real
	 * clients, which confirm within a round trip and the grace. */
	if (registry_n_pending(p->registry) > p->config.limits.max_users &&
			(oldest = list_first(&queue->head))) {
		presence_drop_pending(p, user_from_timeout(container_of(oldest, TimeoutLink,
						node)), "too many pending logins");
	}
	log_debug("'%s' from %s pending until %s.", m->name, endpoint_format(source, buf),
			queue == &p->wait_queue ? "its session proves its key" :
			"its IP fetches the list");
	return PRESENCE_REPLY_ACCEPT;
}

PresenceReply presence_login(Presence *p, const WireMessage *m, WireEncoding enc,
		const Endpoint *source) {
	char buf[ENDPOINT_STRLEN];
	User *u;
	int r;

	r = registry_take_login_token(p->registry, source, presence_now(p));
	if (r <= 0) {
		log_debug("Dropping login of '%s' from %s: over the rate limit.", m->name,
				endpoint_format(source, buf));
		return PRESENCE_REPLY_NONE;
	}
	if (wire_caps_has(m->caps, WIRE_CAPS_NATIVE)) {
		/* Whose name it is, the session's handshake will tell. */
		return presence_login_pending(p, m, enc, source, &p->wait_queue);
	}

	u = registry_find(p->registry, m->name);
	if (u && !endpoint_same_ip(user_get_source(u), source)) {
		log_debug("Refusing login of '%s' from %s: name taken.", m->name,
				endpoint_format(source, buf));
		return PRESENCE_REPLY_NAME_TAKEN;
	}
	if (u && user_login_is_same(u, m, enc) &&
			(user_is_udp_reachable(u) || endpoint_equal(user_get_source(u), source))) {
		/* A re-login from the same address renews the lease. */
		if (!user_get_session(u)) {
			presence_start_lease(p, u);
		}
		return PRESENCE_REPLY_ACCEPT;
	}
	if (u && user_is_native(u)) {
		/* A native client keeps its name: its daemon would log in again at
		 * once, and the two would take the name from each other forever. */
		log_debug("Refusing login of '%s' from %s: a native user holds the name.",
				m->name, endpoint_format(source, buf));
		return PRESENCE_REPLY_NAME_TAKEN;
	}
	if (p->callbacks.name_is_bound(m->name, p->userdata)) {
		/* The name belongs to a key: a login without one is not its owner. */
		log_debug("Refusing login of '%s' from %s: the name is bound to a key.",
				m->name, endpoint_format(source, buf));
		return PRESENCE_REPLY_NAME_TAKEN;
	}
	return presence_login_pending(p, m, enc, source, &p->pending_queue);
}

void presence_probe_unreachable(Presence *p, const Endpoint *dest) {
	uint64_t h = presence_endpoint_hash(p, dest);
	HashNode *node;

	/* Each user counted leaves the table, so this ends; several names may
	 * share one declared endpoint. */
	while ((node = hash_table_first(&p->probing, h))) {
		User *u = NULL;

		for (; node; node = hash_table_next(node)) {
			User *v = container_of(node, User, probe_node);

			if (endpoint_equal(user_get_declared(v), dest)) {
				u = v;
				break;
			}
		}
		if (!u) {
			return;
		}
		presence_clear_probe(p, u);
		u->probe_misses++;
		log_debug("Probe of '%s' unreachable (%u of %u).", user_get_name(u),
				u->probe_misses, p->config.probe_count);
		if (u->probe_misses >= p->config.probe_count) {
			presence_remove_user(p, u, "unreachable");
		}
	}
}

/* Whether @u, pending or online, is who the logout @m from @source names. */
static bool logout_matches(const User *u, const WireMessage *m, const Endpoint *source) {
	return endpoint_same_ip(user_get_source(u), source) &&
		endpoint_equal(user_get_declared(u), &m->endpoint);
}

/*
 * Puts the pending login @u online by the rules of presence_login(), and
 * tells the others; false when it is forgotten instead.
 */
static bool presence_confirm_one(Presence *p, User *u) {
	char buf[ENDPOINT_STRLEN];
	User *online;
	int r;

	if (p->callbacks.name_is_bound(user_get_name(u), p->userdata)) {
		/* Bound since its login: it proves no key, so it is not the owner. */
		presence_drop_pending(p, u, "the name is bound to a key");
		return false;
	}
	online = registry_find(p->registry, user_get_name(u));
	if (online && !endpoint_same_ip(user_get_source(online), user_get_source(u))) {
		presence_drop_pending(p, u, "name taken meanwhile");
		return false;
	}
	if (online && user_is_native(online)) {
		presence_drop_pending(p, u, "a native user holds the name");
		return false;
	}
	if (online) {
		presence_remove_user(p, online, "replaced by a new login");
	}
	r = registry_confirm(p->registry, u);
	if (r < 0) {
		presence_drop_pending(p, u, r == -EUSERS ? "too many names from its IP" :
				"too many users online");
		return false;
	}
	presence_start_lease(p, u);
	log_debug("'%s' logged in from %s (list fetched).", user_get_name(u),
			endpoint_format(user_get_source(u), buf));
	(void) presence_forward(p, u, WIRE_TYPE_LOGIN);
	return true;
}

size_t presence_confirm(Presence *p, const Endpoint *peer) {
	size_t n = 0;
	User *u;

	/*
	 * Every pending login from the IP goes online, not only the one of the
	 * client behind this connection: the reference client's fetch names
	 * nobody.  That is acceptable: the handshake proves that a host at
	 * this IP is there and talks to us, and the Accept of each of these
	 * logins went to that IP and nowhere else, so a forger using the IP as
	 * its source gets no more than the host itself could ask for, within
	 * max_pending_per_ip and max_names_per_ip.
	 */
	for (u = registry_first_pending(p->registry, peer); u;) {
		User *next = registry_next_pending(p->registry, u);

		/* A native login waits for its session, which proves its key. */
		if (!user_is_native(u)) {
			n += presence_confirm_one(p, u);
		}
		u = next;
	}
	return n;
}

void presence_logout(Presence *p, const WireMessage *m, const Endpoint *source) {
	char buf[ENDPOINT_STRLEN];
	User *u;

	u = registry_find(p->registry, m->name);
	if (u && user_is_native(u)) {
		/* Anyone can forge a datagram: a native user, whose session is
		 * authenticated, leaves only through it. */
		log_debug("Ignoring logout datagram of '%s' from %s: a native user leaves "
				"through its session.", m->name, endpoint_format(source, buf));
		return;
	}
	if (u && logout_matches(u, m, source)) {
		presence_remove_user(p, u, m->misspelled ? "lohout" : "logout");
		return;
	}
	u = registry_find_pending(p->registry, source, m->name);
	if (u && !user_is_native(u) && logout_matches(u, m, source)) {
		presence_drop_pending(p, u, m->misspelled ? "lohout" : "logout");
		return;
	}
	log_debug("Ignoring logout of '%s' from %s: not its address.", m->name,
			endpoint_format(source, buf));
}

/* Whether the online @u may hand its name over to the pending native login @pending. */
static int presence_may_replace(const User *u, const User *pending, const char *key) {
	if (user_is_native(u)) {
		/* Bound to this key (bind_name() said so): another daemon of the
		 * owner, or the same one reconnecting. */
		return streq(user_get_key(u), key) ? 0 : -EEXIST;
	}
	/* A reference user, from the same IP only, as for reference logins. */
	return endpoint_same_ip(user_get_source(u), user_get_source(pending)) ? 0 : -EEXIST;
}

int presence_hello(Presence *p, void *session, const Endpoint *peer, const WireMessage *m,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE], User **ret) {
	char hex[IDENTITY_KEY_HEX_SIZE];
	User *pending, *u;
	int r;

	pending = registry_find_pending(p->registry, peer, m->name);
	if (!pending || !user_is_native(pending)) {
		log_debug("Refusing hello for '%s': no native login from this IP.", m->name);
		return -EPERM;
	}
	identity_key_to_hex(key, hex);
	u = registry_find(p->registry, m->name);
	if (u) {
		r = presence_may_replace(u, pending, hex);
		if (r < 0) {
			log_debug("Refusing hello for '%s': name taken.", m->name);
			presence_drop_pending(p, pending, "name taken");
			return r;
		}
	}
	r = p->callbacks.bind_name(m->name, key, p->userdata);
	if (r < 0) {
		log_debug_errno(r, "Refusing hello for '%s': %m", m->name);
		presence_drop_pending(p, pending, r == -EEXIST ? "name bound to another key" :
				"binding failed");
		return r == -EEXIST ? -EEXIST : -EPERM;
	}
	r = user_set_key(pending, hex);
	if (r < 0) {
		presence_drop_pending(p, pending, "out of memory");
		return -EPERM;
	}

	if (u && !user_login_is_same_user(u, pending) &&
			!registry_may_confirm(p->registry, pending, u)) {
		/* Checked first: the owner's old session must not go for nothing. */
		presence_drop_pending(p, pending, "no room for its new login");
		return -ENOSPC;
	}
	if (u && user_login_is_same_user(u, pending)) {
		/* The same login again (a reconnect, or a second daemon of the
		 * owner): the old session goes, told why; others see no change. */
		void *old = presence_unbind(p, u);

		if (old) {
			p->callbacks.drop_session(old, "replaced", p->userdata);
		}
		presence_drop_pending(p, pending, "same as the online user");
	} else {
		if (u) {
			void *old = presence_unbind(p, u);

			if (old) {
				p->callbacks.drop_session(old, "replaced", p->userdata);
			}
			presence_remove_user(p, u, "replaced by its owner's new session");
		}
		timeout_link_remove(user_get_timeout(pending));
		r = registry_confirm(p->registry, pending);
		if (r < 0) {
			presence_drop_pending(p, pending, r == -EUSERS ?
					"too many names from its IP" : "too many users online");
			return -ENOSPC;
		}
		u = pending;
		log_debug("'%s' logged in with a session.", user_get_name(u));
		(void) presence_forward(p, u, WIRE_TYPE_LOGIN);
	}

	timeout_link_remove(user_get_timeout(u));
	presence_clear_probe(p, u);
	user_set_session(u, session);
	p->n_sessions++;
	*ret = u;
	return 0;
}

void presence_session_logout(Presence *p, User *u, const WireMessage *m) {
	if (streq(m->name, user_get_name(u))) {
		presence_remove_user(p, u, "logout frame");
	}
}

void presence_session_closed(Presence *p, User *u, const char *why) {
	(void) presence_unbind(p, u);
	presence_remove_user(p, u, why);
}
