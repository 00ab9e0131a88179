/* SPDX-License-Identifier: MIT */
/*
 * Desktop notifications (the freedesktop.org Desktop Notifications spec).
 * A Notify lives as long as the daemon's bus connection and owns one
 * NotifyEntry per peer with a notification on screen.  An entry is created
 * by the first message from its peer and freed when the notification goes
 * away: closed by the user or the server, clicked, replied to, or replaced
 * by a new server.  Everything is asynchronous; while a Notify call is in
 * flight newer messages only mark the entry dirty, and the reply (which
 * carries the id to replace) sends the next update.
 *
 * The server's capabilities are asked once and cached; a new owner of
 * org.freedesktop.Notifications (a restarted or different server) drops
 * the cache and every entry, since its ids mean nothing any more.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/notify.h"

#define SERVER_NAME "org.freedesktop.Notifications"
#define SERVER_PATH "/org/freedesktop/Notifications"
#define SERVER_INTERFACE "org.freedesktop.Notifications"

/* Urgency hint values of the spec. */
#define URGENCY_NORMAL 1
#define URGENCY_CRITICAL 2

typedef enum CapsState {
	CAPS_UNKNOWN,
	CAPS_PENDING,
	CAPS_KNOWN,
} CapsState;

typedef struct NotifyEntry {
	Notify *notify; /* not owned */
	char *peer;
	char *text;       /* the latest message */
	unsigned count;   /* messages since the user last looked */
	uint32_t id;      /* the server's id; 0 until the first Notify reply */
	bool dirty;       /* the server shows less than we have */
	sd_bus_slot *call; /* the Notify call in flight */
} NotifyEntry;

struct Notify {
	sd_bus *bus;
	NotifyCallbacks callbacks;
	void *userdata;

	bool enabled;
	char *active_peer;

	CapsState caps;
	bool body_markup;
	bool inline_reply;
	sd_bus_slot *caps_call;

	sd_bus_slot *match_action;
	sd_bus_slot *match_replied;
	sd_bus_slot *match_closed;
	sd_bus_slot *match_owner;

	NotifyEntry *entries[NOTIFY_PEERS_MAX];
	size_t n_entries;

	/* A problem of the daemon's own, waiting for the capabilities. */
	char *problem_summary;
	char *problem_body;
};

static bool isempty(const char *s) {
	return !s || !s[0];
}

static NotifyEntry *entry_free(NotifyEntry *e) {
	if (!e) {
		return NULL;
	}
	if (e->notify) {
		Notify *n = e->notify;

		for (size_t i = 0; i < n->n_entries; i++) {
			if (n->entries[i] == e) {
				n->entries[i] = n->entries[--n->n_entries];
				break;
			}
		}
	}
	sd_bus_slot_unref(e->call);
	free(e->peer);
	free(e->text);
	return mfree(e);
}

static NotifyEntry *entry_find_peer(Notify *n, const char *peer) {
	for (size_t i = 0; i < n->n_entries; i++) {
		if (streq(n->entries[i]->peer, peer)) {
			return n->entries[i];
		}
	}
	return NULL;
}

static NotifyEntry *entry_find_id(Notify *n, uint32_t id) {
	if (id == 0) {
		return NULL;
	}
	for (size_t i = 0; i < n->n_entries; i++) {
		if (n->entries[i]->id == id) {
			return n->entries[i];
		}
	}
	return NULL;
}

static int entry_new(Notify *n, const char *peer, NotifyEntry **ret) {
	NotifyEntry *e;

	if (n->n_entries >= NOTIFY_PEERS_MAX) {
		return -ENOBUFS;
	}
	e = calloc(1, sizeof(NotifyEntry));
	if (!e) {
		return -ENOMEM;
	}
	e->peer = strdup(peer);
	if (!e->peer) {
		free(e);
		return -ENOMEM;
	}
	e->notify = n;
	n->entries[n->n_entries++] = e;

	*ret = e;
	return 0;
}

/* Closes the notification on screen (if it has one yet) and forgets the entry. */
static void entry_close(NotifyEntry *e) {
	Notify *n = e->notify;
	int r;

	if (e->id != 0) {
		r = sd_bus_call_method_async(n->bus, NULL, SERVER_NAME, SERVER_PATH,
				SERVER_INTERFACE, "CloseNotification", NULL, NULL, "u", e->id);
		if (r < 0) {
			log_debug_errno(r, "Failed to close notification %u: %m, ignoring.",
					e->id);
		}
	}
	entry_free(e);
}

static void drop_all_entries(Notify *n) {
	while (n->n_entries > 0) {
		entry_free(n->entries[0]);
	}
}

/* Escapes the five characters the spec's body markup gives a meaning. */
static char *markup_escape(const char *s) {
	size_t len = 0;
	char *buf, *p;

	for (const char *c = s; *c; c++) {
		len += *c == '&' ? 5 : *c == '<' || *c == '>' ? 4 : *c == '"' || *c == '\'' ? 6 : 1;
	}
	buf = malloc(len + 1);
	if (!buf) {
		return NULL;
	}
	p = buf;
	for (; *s; s++) {
		switch (*s) {
		case '&':
			p = stpcpy(p, "&amp;");
			break;
		case '<':
			p = stpcpy(p, "&lt;");
			break;
		case '>':
			p = stpcpy(p, "&gt;");
			break;
		case '"':
			p = stpcpy(p, "&quot;");
			break;
		case '\'':
			p = stpcpy(p, "&apos;");
			break;
		default:
			*p++ = *s;
		}
	}
	*p = '\0';
	return buf;
}

/* @s cut to at most @max bytes on a UTF-8 character boundary, with "…" if cut. */
static char *truncate_utf8(const char *s, size_t max) {
	size_t n = strlen(s);
	char *buf;

	if (n <= max) {
		return strdup(s);
	}
	n = max;
	while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
		n--;
	}
	buf = malloc(n + sizeof("…"));
	if (!buf) {
		return NULL;
	}
	memcpy(buf, s, n);
	strcpy(buf + n, "…");
	return buf;
}

static int entry_body(NotifyEntry *e, char **ret) {
	_cleanup_free_ char *cut = NULL, *escaped = NULL;
	const char *text;
	char *body;

	cut = truncate_utf8(strempty(e->text), NOTIFY_BODY_MAX);
	if (!cut) {
		return -ENOMEM;
	}
	text = cut;
	if (e->notify->body_markup) {
		escaped = markup_escape(cut);
		if (!escaped) {
			return -ENOMEM;
		}
		text = escaped;
	}

	if (e->count > 1) {
		if (asprintf(&body, "%u new messages\n%s", e->count, text) < 0) {
			return -ENOMEM;
		}
	} else {
		body = strdup(text);
		if (!body) {
			return -ENOMEM;
		}
	}
	*ret = body;
	return 0;
}

static int entry_flush(NotifyEntry *e);

static int on_notify_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	NotifyEntry *e = userdata;
	const sd_bus_error *error;
	uint32_t id;
	int r;

	e->call = sd_bus_slot_unref(e->call);

	error = sd_bus_message_get_error(m);
	if (error) {
		/* No notification server (a headless session) is no reason to warn per message. */
		log_full(sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
					 SD_BUS_ERROR_NAME_HAS_NO_OWNER) ? LOG_DEBUG : LOG_WARNING,
				"Failed to show notification: %s, ignoring.", error->message);
		return 0;
	}
	r = sd_bus_message_read(m, "u", &id);
	if (r < 0) {
		log_warning_errno(r, "Failed to parse Notify reply: %m, ignoring.");
		return 0;
	}
	e->id = id;

	if (e->dirty) {
		(void) entry_flush(e);
	}
	return 0;
}

/* Shows the entry's current state, unless a call is in flight or the caps are unknown. */
static int entry_flush(NotifyEntry *e) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	_cleanup_free_ char *body = NULL;
	Notify *n = e->notify;
	int r;

	e->dirty = true;
	if (e->call || n->caps != CAPS_KNOWN) {
		return 0;
	}

	r = entry_body(e, &body);
	if (r < 0) {
		return r;
	}

	r = sd_bus_message_new_method_call(n->bus, &m, SERVER_NAME, SERVER_PATH, SERVER_INTERFACE,
			"Notify");
	if (r < 0) {
		return r;
	}
	r = sd_bus_message_append(m, "susss", NOTIFY_APP_NAME, e->id, NOTIFY_APP_ID, e->peer,
			body);
	if (r < 0) {
		return r;
	}
	if (n->inline_reply) {
		r = sd_bus_message_append(m, "as", 4, "default", "Open", "inline-reply", "Reply");
	} else {
		r = sd_bus_message_append(m, "as", 2, "default", "Open");
	}
	if (r < 0) {
		return r;
	}
	r = sd_bus_message_append(m, "a{sv}i", 3,
			"category", "s", "im.received",
			"desktop-entry", "s", NOTIFY_APP_ID,
			"urgency", "y", (uint8_t) URGENCY_NORMAL,
			(int32_t) -1);
	if (r < 0) {
		return r;
	}

	r = sd_bus_call_async(n->bus, &e->call, m, on_notify_reply, e, 0);
	if (r < 0) {
		return r;
	}
	e->dirty = false;
	return 0;
}

static int on_problem_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	const sd_bus_error *error = sd_bus_message_get_error(m);

	if (error) {
		log_full(sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
					 SD_BUS_ERROR_NAME_HAS_NO_OWNER) ? LOG_DEBUG : LOG_WARNING,
				"Failed to show notification: %s, ignoring.", error->message);
	}
	return 0;
}

/* Shows the pending problem, once the capabilities are known. */
static int problem_flush(Notify *n) {
	_cleanup_free_ char *summary = NULL, *body = NULL, *escaped = NULL;

	if (!n->problem_summary || n->caps != CAPS_KNOWN) {
		return 0;
	}
	summary = TAKE_PTR(n->problem_summary);
	body = TAKE_PTR(n->problem_body);
	if (n->body_markup) {
		escaped = markup_escape(body);
		if (!escaped) {
			return -ENOMEM;
		}
	}
	/* A floating slot: the reply is only logged, whenever it comes. */
	return sd_bus_call_method_async(n->bus, NULL, SERVER_NAME, SERVER_PATH, SERVER_INTERFACE,
			"Notify", on_problem_reply, NULL, "susssasa{sv}i", NOTIFY_APP_NAME, 0,
			NOTIFY_APP_ID, summary, escaped ? escaped : body, 0, 2,
			"desktop-entry", "s", NOTIFY_APP_ID,
			"urgency", "y", (uint8_t) URGENCY_CRITICAL,
			-1);
}

static int on_capabilities_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	Notify *n = userdata;
	const sd_bus_error *error;
	const char *cap;
	int r;

	n->caps_call = sd_bus_slot_unref(n->caps_call);
	n->caps = CAPS_KNOWN;
	n->body_markup = n->inline_reply = false;

	error = sd_bus_message_get_error(m);
	if (error) {
		/* Try Notify anyway: it fails and logs if there is no server. */
		log_debug("Failed to get notification server capabilities: %s", error->message);
	} else {
		r = sd_bus_message_enter_container(m, 'a', "s");
		if (r < 0) {
			log_debug_errno(r, "Failed to parse capabilities: %m");
		}
		while (r >= 0 && (r = sd_bus_message_read(m, "s", &cap)) > 0) {
			if (streq(cap, "body-markup")) {
				n->body_markup = true;
			} else if (streq(cap, "inline-reply")) {
				n->inline_reply = true;
			}
		}
	}

	for (size_t i = 0; i < n->n_entries; i++) {
		if (n->entries[i]->dirty) {
			r = entry_flush(n->entries[i]);
			if (r < 0) {
				log_warning_errno(r, "Failed to send notification: %m, ignoring.");
			}
		}
	}
	r = problem_flush(n);
	if (r < 0) {
		log_warning_errno(r, "Failed to send notification: %m, ignoring.");
	}
	return 0;
}

static int query_capabilities(Notify *n) {
	int r;

	if (n->caps != CAPS_UNKNOWN) {
		return 0;
	}
	r = sd_bus_call_method_async(n->bus, &n->caps_call, SERVER_NAME, SERVER_PATH,
			SERVER_INTERFACE, "GetCapabilities", on_capabilities_reply, n, NULL);
	if (r < 0) {
		return r;
	}
	n->caps = CAPS_PENDING;
	return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	Notify *n = userdata;
	const char *name, *old_owner, *new_owner;
	int r;

	r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
	if (r < 0 || !streq(name, SERVER_NAME)) {
		return 0;
	}

	log_debug("Notification server changed ('%s' -> '%s').", old_owner, new_owner);
	n->caps_call = sd_bus_slot_unref(n->caps_call);
	n->caps = CAPS_UNKNOWN;
	drop_all_entries(n);
	if (!isempty(new_owner)) {
		r = query_capabilities(n);
		if (r < 0) {
			log_debug_errno(r, "Failed to query capabilities: %m");
		}
	}
	return 0;
}

/* Takes the entry for @id out of the table; the caller frees it. */
static NotifyEntry *entry_take(Notify *n, uint32_t id) {
	NotifyEntry *e = entry_find_id(n, id);

	if (e) {
		for (size_t i = 0; i < n->n_entries; i++) {
			if (n->entries[i] == e) {
				n->entries[i] = n->entries[--n->n_entries];
				break;
			}
		}
		e->notify = NULL;
	}
	return e;
}

static int on_action_invoked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	Notify *n = userdata;
	NotifyEntry *e;
	const char *action;
	uint32_t id;
	int r;

	r = sd_bus_message_read(m, "us", &id, &action);
	if (r < 0 || !streq(action, "default")) {
		/* "inline-reply" is followed by NotificationReplied with the text. */
		return 0;
	}
	e = entry_take(n, id);
	if (!e) {
		return 0;
	}
	if (n->callbacks.on_open) {
		n->callbacks.on_open(e->peer, n->userdata);
	}
	entry_free(e);
	return 0;
}

static int on_notification_replied(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	Notify *n = userdata;
	NotifyEntry *e;
	const char *text;
	uint32_t id;
	int r;

	r = sd_bus_message_read(m, "us", &id, &text);
	if (r < 0) {
		return 0;
	}
	e = entry_take(n, id);
	if (!e) {
		return 0;
	}
	if (n->callbacks.on_reply) {
		n->callbacks.on_reply(e->peer, text, n->userdata);
	}
	entry_free(e);
	return 0;
}

static int on_notification_closed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	Notify *n = userdata;
	uint32_t id, reason;
	int r;

	r = sd_bus_message_read(m, "uu", &id, &reason);
	if (r < 0) {
		return 0;
	}
	entry_free(entry_find_id(n, id));
	return 0;
}

Notify *notify_free(Notify *n) {
	if (!n) {
		return NULL;
	}
	drop_all_entries(n);
	sd_bus_slot_unref(n->caps_call);
	sd_bus_slot_unref(n->match_action);
	sd_bus_slot_unref(n->match_replied);
	sd_bus_slot_unref(n->match_closed);
	sd_bus_slot_unref(n->match_owner);
	sd_bus_unref(n->bus);
	free(n->active_peer);
	free(n->problem_summary);
	free(n->problem_body);
	return mfree(n);
}

int notify_new(sd_bus *bus, const NotifyCallbacks *callbacks, void *userdata, Notify **ret) {
	_cleanup_(notify_freep) Notify *n = NULL;
	static const struct {
		const char *member;
		sd_bus_message_handler_t handler;
		size_t slot;
	} signals[] = {
		{ "ActionInvoked", on_action_invoked, offsetof(Notify, match_action) },
		{ "NotificationReplied", on_notification_replied, offsetof(Notify, match_replied) },
		{ "NotificationClosed", on_notification_closed, offsetof(Notify, match_closed) },
	};
	int r;

	assert(bus);
	assert(ret);

	n = calloc(1, sizeof(Notify));
	if (!n) {
		return -ENOMEM;
	}
	n->bus = sd_bus_ref(bus);
	n->enabled = true;
	if (callbacks) {
		n->callbacks = *callbacks;
	}
	n->userdata = userdata;

	for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
		r = sd_bus_match_signal_async(bus, (sd_bus_slot **) ((uint8_t *) n + signals[i].slot),
				SERVER_NAME, SERVER_PATH, SERVER_INTERFACE, signals[i].member,
				signals[i].handler, NULL, n);
		if (r < 0) {
			return r;
		}
	}
	r = sd_bus_add_match_async(bus, &n->match_owner,
			"type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
			"interface='org.freedesktop.DBus',member='NameOwnerChanged',"
			"arg0='" SERVER_NAME "'",
			on_name_owner_changed, NULL, n);
	if (r < 0) {
		return r;
	}

	r = query_capabilities(n);
	if (r < 0) {
		return r;
	}

	*ret = TAKE_PTR(n);
	return 0;
}

void notify_set_enabled(Notify *n, bool enabled) {
	assert(n);

	n->enabled = enabled;
	if (!enabled) {
		while (n->n_entries > 0) {
			entry_close(n->entries[0]);
		}
	}
}

int notify_set_active_peer(Notify *n, const char *peer) {
	NotifyEntry *e;
	int r;

	assert(n);

	r = free_and_strdup(&n->active_peer, isempty(peer) ? NULL : peer);
	if (r < 0) {
		return r;
	}
	if (n->active_peer) {
		e = entry_find_peer(n, n->active_peer);
		if (e) {
			entry_close(e);
		}
	}
	return 0;
}

const char *notify_get_active_peer(Notify *n) {
	assert(n);

	return n->active_peer;
}

int notify_message(Notify *n, const char *peer, const char *text) {
	NotifyEntry *e;
	int r;

	assert(n);
	assert(peer);
	assert(text);

	if (!n->enabled || streq_ptr(peer, n->active_peer)) {
		return 0;
	}

	e = entry_find_peer(n, peer);
	if (!e) {
		r = entry_new(n, peer, &e);
		if (r == -ENOBUFS) {
			log_debug("Too many notifications, not showing one for '%s'.", peer);
			return 0;
		}
		if (r < 0) {
			return r;
		}
	}

	r = free_and_strdup(&e->text, text);
	if (r < 0) {
		return r;
	}
	e->count++;

	r = query_capabilities(n);
	if (r < 0) {
		return r;
	}
	r = entry_flush(e);
	if (r < 0) {
		return r;
	}
	return 1;
}

static int on_activate_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	const sd_bus_error *error = sd_bus_message_get_error(m);

	if (error) {
		log_warning("Failed to open the conversation in %s: %s, ignoring.", NOTIFY_APP_ID,
				error->message);
	}
	return 0;
}

int notify_open_conversation(sd_bus *bus, const char *peer) {
	assert(bus);
	assert(peer);

	/* A floating slot: the reply is only logged, whenever it comes. */
	return sd_bus_call_method_async(bus, NULL, NOTIFY_APP_ID, NOTIFY_APP_PATH,
			"org.freedesktop.Application", "ActivateAction", on_activate_reply, NULL,
			"sava{sv}", "open-conversation", 1, "s", peer, 0);
}

int notify_problem(Notify *n, const char *summary, const char *body) {
	int r;

	assert(n);
	assert(summary);
	assert(body);

	if (!n->enabled) {
		return 0;
	}
	r = free_and_strdup(&n->problem_summary, summary);
	if (r < 0) {
		return r;
	}
	r = free_and_strdup(&n->problem_body, body);
	if (r < 0) {
		return r;
	}
	r = query_capabilities(n);
	if (r < 0) {
		return r;
	}
	r = problem_flush(n);
	if (r < 0) {
		return r;
	}
	return 1;
}
