/* SPDX-License-Identifier: MIT */

/*
 * Presence owns the registry (and through it every User), the lease queue of
 * users without a session and the wait queue of native users before their
 * hello.  A User lives from an accepted login until its logout: a logout
 * datagram or frame, a newer login from the same IP, the end of its lease or
 * wait, or the close of its session.  A user and its session point at each
 * other without owning: the session is the owner's (it closes it when told
 * through drop_session()), and tells presence when it closes by other means.
 * The Presence lives as long as the server.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	TimeoutQueue wait_queue;   /* native users before their hello */
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

static void on_user_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	Presence *p = userdata;

	presence_remove_user(p, user_from_timeout(link),
			q == &p->lease_queue ? "lease expired" : "no session");
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
	r = timeout_queue_init(&p->wait_queue, event, config->session_wait, on_user_timeout, p);
	if (r < 0) {
		return r;
	}
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

static uint64_t presence_now(Presence *p) {
	uint64_t now = 0;

	(void) sd_event_now(p->event, CLOCK_MONOTONIC, &now);
	return now;
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

/* Puts @u in the lease or session-wait queue it belongs to. */
static void presence_start_lease(Presence *p, User *u) {
	int r;

	r = timeout_queue_push(user_is_native(u) ? &p->wait_queue : &p->lease_queue,
			user_get_timeout(u));
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
		p->callbacks.drop_session(session, p->userdata);
	}
	if (!p->shutting_down) {
		(void) presence_forward(p, u, WIRE_TYPE_LOGOUT);
	}
	registry_remove(p->registry, u);
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
	if (u) {
		presence_remove_user(p, u, "replaced by a new login");
	}

	r = registry_add(p->registry, m, source, enc, &u);
	if (r == -ENOSPC) {
		log_notice("Refusing login of '%s': %u users online.", m->name,
				p->config.limits.max_users);
		return PRESENCE_REPLY_FULL;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to register '%s', dropping login: %m", m->name);
		return PRESENCE_REPLY_NONE;
	}
	presence_start_lease(p, u);
	log_debug("'%s' logged in from %s.", user_get_name(u), endpoint_format(source, buf));

	(void) presence_forward(p, u, WIRE_TYPE_LOGIN);
	return PRESENCE_REPLY_ACCEPT;
}

void presence_logout(Presence *p, const WireMessage *m, const Endpoint *source) {
	User *u;

	u = registry_find(p->registry, m->name);
	if (!u) {
		return;
	}
	if (!endpoint_same_ip(user_get_source(u), source) ||
			!endpoint_equal(user_get_declared(u), &m->endpoint)) {
		char buf[ENDPOINT_STRLEN];

		log_debug("Ignoring logout of '%s' from %s: not its address.", m->name,
				endpoint_format(source, buf));
		return;
	}
	presence_remove_user(p, u, m->misspelled ? "lohout" : "logout");
}

int presence_hello(Presence *p, void *session, const Endpoint *peer, const WireMessage *m,
		User **ret) {
	void *old;
	User *u;

	u = registry_find(p->registry, m->name);
	if (!u || !endpoint_same_ip(user_get_source(u), peer)) {
		log_debug("Refusing hello for '%s': not logged in from this IP.", m->name);
		return -EPERM;
	}

	/* The client reconnected: the old session goes, the user stays. */
	old = presence_unbind(p, u);
	if (old) {
		p->callbacks.drop_session(old, p->userdata);
	}

	timeout_link_remove(user_get_timeout(u));
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
