/* SPDX-License-Identifier: MIT */

/*
 * The D-Bus face of the Manager: org.p2pchat.chat1.Manager at
 * /org/p2pchat/chat1.  Handlers check their input, hand the work to
 * manager.c / message.c and never block; Login() keeps its message and is
 * answered later by manager.c.
 */

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/wire.h"
#include "common/bus-errors.h"
#include "daemon/config.h"
#include "daemon/history.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-commit.h"
#include "daemon/manager-store.h"
#include "daemon/message.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	Manager *m = userdata;

	return sd_bus_message_append(reply, "s", manager_state_to_string(m->state));
}

static int method_login(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	Manager *m = userdata;
	const char *name, *coordinator;
	int r;

	r = sd_bus_message_read(msg, "ss", &name, &coordinator);
	if (r < 0) {
		return r;
	}
	if (!wire_name_is_valid(name, strlen(name))) {
		return sd_bus_error_setf(error, BUS_ERROR_INVALID_NAME,
				"Invalid user name '%s': 1-32 characters, no ',' ';' ':' or "
				"control characters, not 'end'", name);
	}
	if (m->state != MANAGER_STATE_OFFLINE) {
		return sd_bus_error_setf(error, BUS_ERROR_ALREADY_LOGGED_IN,
				"Already logged in as '%s'", strempty(m->username));
	}
	m->autologin = false; /* the user decides now */
	r = manager_login(m, name, coordinator[0] != '\0' ? coordinator : m->config->coordinator);
	if (r == -EINVAL) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"Invalid coordinator '%s': expected HOST:PORT with an IP address",
				coordinator);
	}
	if (r < 0) {
		return r;
	}
	m->login_call = sd_bus_message_ref(msg);
	return 1;
}

static int method_logout(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	Manager *m = userdata;
	int r;

	m->autologin = false;
	if (m->state == MANAGER_STATE_OFFLINE) {
		return sd_bus_error_set(error, BUS_ERROR_NOT_LOGGED_IN, "Not logged in");
	}
	r = manager_logout(m);
	if (r < 0) {
		return r;
	}
	return sd_bus_reply_method_return(msg, NULL);
}

static int method_send_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	char id[MESSAGE_ID_STRLEN];
	Manager *m = userdata;
	const char *peer, *text;
	size_t len;
	int r;

	r = sd_bus_message_read(msg, "ss", &peer, &text);
	if (r < 0) {
		return r;
	}
	if (m->state == MANAGER_STATE_OFFLINE) {
		return sd_bus_error_set(error, BUS_ERROR_NOT_LOGGED_IN, "Not logged in");
	}
	len = strlen(text);
	if (len > WIRE_TEXT_MAX) {
		return sd_bus_error_setf(error, BUS_ERROR_MESSAGE_TOO_LONG,
				"Message is %zu bytes, the limit is %d", len, WIRE_TEXT_MAX);
	}
	if (len == 0 || !utf8_is_valid(text, len)) {
		return sd_bus_error_set(error, BUS_ERROR_INVALID_MESSAGE,
				"Message text must be non-empty valid UTF-8");
	}
	if (!wire_name_is_valid(peer, strlen(peer))) {
		return sd_bus_error_setf(error, BUS_ERROR_INVALID_NAME, "Invalid peer name '%s'",
				peer);
	}
	/* Room for the reply first: once stored, the message must get it. */
	r = manager_commit_reserve_reply(m);
	if (r < 0) {
		return r;
	}
	r = manager_queue_message(m, peer, text, id);
	if (r == -ENOBUFS) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
				"Too many messages queued for '%s' (%u)", peer, HISTORY_QUEUE_MAX);
	}
	if (r < 0) {
		return r;
	}
	/*
	 * The reply, and then the "queued" signal, come after the batch's
	 * barrier (manager-commit.c): "accepted" means stored.
	 */
	manager_commit_defer_reply(m, msg, id, peer,
			r > 0 ? COMMIT_OUTCOME_SENT : COMMIT_OUTCOME_QUEUED);
	manager_commit_check_bound(m);
	return 1;
}

/* A method return to @call with an array of @contents opened in it. */
static int reply_open_array(sd_bus_message *call, const char *contents, sd_bus_message **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_message_new_method_return(call, &reply);
	if (r < 0) {
		return r;
	}
	r = sd_bus_message_open_container(reply, 'a', contents);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(reply);
	return 0;
}

/* Appends a(ssssttsa{sv}) of @l to @reply and sends it. */
static int reply_messages(sd_bus_message *msg, const HistoryList *l) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = reply_open_array(msg, "(ssssttsa{sv})", &reply);
	if (r < 0) {
		return r;
	}
	for (size_t i = 0; i < l->n; i++) {
		const HistoryMessage *hm = &l->messages[i];

		r = sd_bus_message_append(reply, "(ssssttsa{sv})", hm->id, hm->peer,
				history_direction_to_string(hm->direction), hm->text, hm->sent_usec,
				hm->received_usec, history_state_to_string(hm->state), 0);
		if (r < 0) {
			return r;
		}
	}
	r = sd_bus_message_close_container(reply);
	if (r < 0) {
		return r;
	}
	return sd_bus_send(NULL, reply, NULL);
}

static unsigned clamp_limit(uint32_t limit) {
	return limit == 0 ? MANAGER_HISTORY_LIMIT_DEFAULT : MIN(limit, HISTORY_LIMIT_MAX);
}

static int check_peer_name(const char *peer, sd_bus_error *error) {
	if (!wire_name_is_valid(peer, strlen(peer))) {
		return sd_bus_error_setf(error, BUS_ERROR_INVALID_NAME, "Invalid peer name '%s'",
				peer);
	}
	return 0;
}

static int method_get_history(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_(history_list_done) HistoryList l = {};
	Manager *m = userdata;
	const char *peer, *before;
	uint32_t limit;
	int r;

	r = sd_bus_message_read(msg, "sus", &peer, &limit, &before);
	if (r < 0) {
		return r;
	}
	r = check_peer_name(peer, error);
	if (r < 0) {
		return r;
	}
	r = history_get(m->history, peer, clamp_limit(limit), before, &l);
	if (r == -ENOENT) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"No message '%s' with '%s'", before, peer);
	}
	if (r < 0) {
		return r;
	}
	return reply_messages(msg, &l);
}

static int method_search_history(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_(history_list_done) HistoryList l = {};
	Manager *m = userdata;
	const char *query;
	uint32_t limit;
	int r;

	r = sd_bus_message_read(msg, "su", &query, &limit);
	if (r < 0) {
		return r;
	}
	r = history_search(m->history, query, clamp_limit(limit), &l);
	if (r == -EINVAL) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"The search text must be 1-%d bytes", HISTORY_QUERY_MAX);
	}
	if (r < 0) {
		return r;
	}
	return reply_messages(msg, &l);
}

static int method_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	Manager *m = userdata;
	const char *peer;
	int r;

	r = sd_bus_message_read(msg, "s", &peer);
	if (r < 0) {
		return r;
	}
	r = check_peer_name(peer, error);
	if (r < 0) {
		return r;
	}
	r = manager_mark_read(m, peer);
	if (r < 0) {
		return r;
	}
	return sd_bus_reply_method_return(msg, NULL);
}

static int on_active_client_gone(sd_bus_track *track, void *userdata) {
	Manager *m = userdata;
	int r;

	m->active_track = sd_bus_track_unref(m->active_track);
	r = manager_set_active_conversation(m, "");
	if (r < 0) {
		log_warning_errno(r, "Failed to clear the active conversation: %m");
	}
	return 0;
}

static int method_set_active_conversation(sd_bus_message *msg, void *userdata,
		sd_bus_error *error) {
	Manager *m = userdata;
	const char *peer;
	int r;

	r = sd_bus_message_read(msg, "s", &peer);
	if (r < 0) {
		return r;
	}
	if (peer[0] != '\0') {
		r = check_peer_name(peer, error);
		if (r < 0) {
			return r;
		}
	}
	r = manager_set_active_conversation(m, peer);
	if (r < 0) {
		return r;
	}
	/* A front end that quits or crashes must not silence that peer for good. */
	m->active_track = sd_bus_track_unref(m->active_track);
	if (peer[0] != '\0') {
		r = sd_bus_track_new(m->bus, &m->active_track, on_active_client_gone, m);
		if (r >= 0) {
			r = sd_bus_track_add_sender(m->active_track, msg);
		}
		if (r < 0) {
			log_warning_errno(r, "Failed to watch the front end of the active "
					"conversation: %m");
		}
	}
	return sd_bus_reply_method_return(msg, NULL);
}

static int config_error(sd_bus_error *error, int r, const char *key, const char *text) {
	if (r == -ENOKEY) {
		return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG, "Unknown config key '%s'",
				key);
	}
	if (r == -EINVAL || r == -EBADMSG || r == -ERANGE || r == -EFBIG) {
		return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG, "%s",
				text ? text : "Invalid configuration");
	}
	return r;
}

static int method_get_config(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_free_ char *value = NULL;
	Manager *m = userdata;
	const char *key;
	int r;

	r = sd_bus_message_read(msg, "s", &key);
	if (r < 0) {
		return r;
	}
	r = config_get(m->config, key, &value);
	if (r < 0) {
		return config_error(error, r, key, NULL);
	}
	return sd_bus_reply_method_return(msg, "s", value);
}

static int method_set_config(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_free_ char *text = NULL;
	Manager *m = userdata;
	const char *key, *value;
	int r;

	r = sd_bus_message_read(msg, "ss", &key, &value);
	if (r < 0) {
		return r;
	}
	r = manager_set_config(m, key, value, &text);
	if (r < 0) {
		return config_error(error, r, key, text);
	}
	return sd_bus_reply_method_return(msg, NULL);
}

typedef struct ListContext {
	sd_bus_message *reply;
	const HistoryUnreadList *unread;
	int error;
} ListContext;

static void append_peer(Peer *p, void *userdata) {
	char buf[ENDPOINT_STRLEN];
	ListContext *c = userdata;

	if (c->error < 0) {
		return;
	}
	c->error = sd_bus_message_append(c->reply, "(ssba{sv})", p->name,
			endpoint_format(&p->endpoint, buf), p->online, 2, "native", "b", p->native,
			"unread", "u", history_unread_lookup(c->unread, p->name));
}

static int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_(history_unread_list_done) HistoryUnreadList unread = {};
	Manager *m = userdata;
	ListContext c = { .unread = &unread };
	int r;

	/* One query for every peer's count: not one per peer. */
	if (m->history) {
		r = history_unread_all(m->history, &unread);
		if (r < 0) {
			return r;
		}
	}
	r = reply_open_array(msg, "(ssba{sv})", &reply);
	if (r < 0) {
		return r;
	}
	c.reply = reply;
	roster_foreach(m, append_peer, &c);
	if (c.error < 0) {
		return c.error;
	}
	r = sd_bus_message_close_container(reply);
	if (r < 0) {
		return r;
	}
	return sd_bus_send(NULL, reply, NULL);
}

static void emit_result(const char *signal, int r) {
	if (r < 0) {
		log_warning_errno(r, "Failed to emit %s, ignoring: %m", signal);
	}
}

void manager_emit_properties_changed(Manager *m) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("PropertiesChanged",
			sd_bus_emit_properties_changed(m->bus, MANAGER_OBJECT_PATH,
					MANAGER_INTERFACE, "State", "Username", "Coordinator",
					"LocalEndpoint", NULL));
}

void manager_emit_peer_joined(Manager *m, Peer *p) {
	char buf[ENDPOINT_STRLEN];

	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("PeerJoined",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"PeerJoined", "ssa{sv}", p->name,
					endpoint_format(&p->endpoint, buf), 1, "native", "b",
					p->native));
}

void manager_emit_peer_left(Manager *m, Peer *p) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("PeerLeft",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"PeerLeft", "sa{sv}", p->name, 0));
}

void manager_emit_message_received(Manager *m, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, int native, const char *time) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	if (time) {
		emit_result("MessageReceived",
				sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
						"MessageReceived", "sssta{sv}", id, peer, text,
						timestamp_usec, 2, "native", "b", native, "time", "s",
						time));
		return;
	}
	emit_result("MessageReceived",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"MessageReceived", "sssta{sv}", id, peer, text,
					timestamp_usec, 1, "native", "b", native));
}

void manager_emit_message_delivered(Manager *m, const char *id, const char *peer,
		unsigned attempts) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("MessageDelivered",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"MessageDelivered", "ssa{sv}", id, peer, 1, "attempts", "u",
					attempts));
}

void manager_emit_message_sent(Manager *m, const char *id, const char *peer) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("MessageSent",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"MessageSent", "ssa{sv}", id, peer, 0));
}

void manager_emit_message_state_changed(Manager *m, const char *id, const char *peer,
		HistoryState state, const char *reason) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	/* "reason" only where there is one: a{sv} of 1 or 0 entries. */
	emit_result("MessageStateChanged",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"MessageStateChanged", "sssa{sv}", id, peer,
					history_state_to_string(state), reason ? 1 : 0,
					"reason", "s", reason));
}

void manager_emit_active_conversation_changed(Manager *m) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("PropertiesChanged",
			sd_bus_emit_properties_changed(m->bus, MANAGER_OBJECT_PATH,
					MANAGER_INTERFACE, "ActiveConversation", NULL));
}

void manager_emit_message_failed(Manager *m, const char *id, const char *peer,
		const char *reason) {
	if (!manager_bus_is_open(m)) {
		return;
	}
	emit_result("MessageFailed",
			sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
					"MessageFailed", "sssa{sv}", id, peer, reason, 0));
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),

	SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Username", "s", NULL, offsetof(Manager, username),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Coordinator", "s", NULL, offsetof(Manager, coordinator),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("LocalEndpoint", "s", NULL, offsetof(Manager, local_endpoint),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("ActiveConversation", "s", NULL,
			offsetof(Manager, active_conversation),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

	SD_BUS_METHOD_WITH_ARGS("Login",
			SD_BUS_ARGS("s", name, "s", coordinator),
			SD_BUS_NO_RESULT,
			method_login,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Logout",
			SD_BUS_NO_ARGS,
			SD_BUS_NO_RESULT,
			method_logout,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SendMessage",
			SD_BUS_ARGS("s", peer, "s", text),
			SD_BUS_RESULT("s", id),
			method_send_message,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ListPeers",
			SD_BUS_NO_ARGS,
			SD_BUS_RESULT("a(ssba{sv})", peers),
			method_list_peers,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("GetHistory",
			SD_BUS_ARGS("s", peer, "u", limit, "s", before_id),
			SD_BUS_RESULT("a(ssssttsa{sv})", messages),
			method_get_history,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SearchHistory",
			SD_BUS_ARGS("s", query, "u", limit),
			SD_BUS_RESULT("a(ssssttsa{sv})", messages),
			method_search_history,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("MarkRead",
			SD_BUS_ARGS("s", peer),
			SD_BUS_NO_RESULT,
			method_mark_read,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SetActiveConversation",
			SD_BUS_ARGS("s", peer),
			SD_BUS_NO_RESULT,
			method_set_active_conversation,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("GetConfig",
			SD_BUS_ARGS("s", key),
			SD_BUS_RESULT("s", value),
			method_get_config,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SetConfig",
			SD_BUS_ARGS("s", key, "s", value),
			SD_BUS_NO_RESULT,
			method_set_config,
			SD_BUS_VTABLE_UNPRIVILEGED),

	SD_BUS_SIGNAL_WITH_ARGS("PeerJoined",
			SD_BUS_ARGS("s", name, "s", endpoint, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("PeerLeft",
			SD_BUS_ARGS("s", name, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageReceived",
			SD_BUS_ARGS("s", id, "s", peer, "s", text, "t", timestamp_usec,
					"a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageDelivered",
			SD_BUS_ARGS("s", id, "s", peer, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageFailed",
			SD_BUS_ARGS("s", id, "s", peer, "s", reason, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageSent",
			SD_BUS_ARGS("s", id, "s", peer, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageStateChanged",
			SD_BUS_ARGS("s", id, "s", peer, "s", state, "a{sv}", extra),
			0),

	SD_BUS_VTABLE_END,
};

int manager_bus_register(Manager *m) {
	int r;

	r = sd_bus_add_object_vtable(m->bus, &m->manager_slot, MANAGER_OBJECT_PATH,
			MANAGER_INTERFACE, manager_vtable, m);
	if (r < 0) {
		return log_error_errno(r, "Failed to register manager object: %m");
	}
	return 0;
}
