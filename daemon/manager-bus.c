/* SPDX-License-Identifier: MIT */

/*
 * The D-Bus face of the daemon: org.p2pchat.chat1.Manager at
 * /org/p2pchat/chat1, owned by the composition (daemon.c) from the moment
 * the bus is there until it goes.  Handlers check their input, hand the
 * work to the core (account.c, conversation.c) and never block; Login()
 * keeps its message until the account reports the outcome
 * (manager_bus_login_done()), and SendMessage() and CancelMessage() until
 * the conversation reports the change stored.  The emitters turn the core's events into
 * signals.
 *
 * Without a history (it could not be opened) the object is there all the
 * same, so that front ends can show why: Storage and StorageError say it,
 * and what needs the history fails with StorageUnavailable.  Login() too:
 * online, the daemon would receive messages it cannot store, and an ack
 * promises "stored", so peers would retry to a user who sees nothing.
 */

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/bus-api.h"
#include "common/bus-errors.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/wire.h"
#include "daemon/manager-bus.h"

struct ManagerBus {
	sd_bus *bus;
	sd_bus_slot *slot;
	Account *account;           /* not owned */
	Roster *roster;             /* not owned */
	Conversation *conversation; /* not owned */
	History *history;           /* not owned */
	Config *config;             /* not owned */
	sd_bus_message *login_call; /* a pending Login(), answered exactly once */
	sd_bus_track *active_track; /* who set the active conversation */
	ManagerStorage storage;
	char *storage_error; /* "" when all is well */
};

static const char *const storage_table[_MANAGER_STORAGE_MAX] = {
	[MANAGER_STORAGE_OK] = "ok",
	[MANAGER_STORAGE_RECOVERED] = "recovered",
	[MANAGER_STORAGE_UNAVAILABLE] = "unavailable",
};

const char *manager_storage_to_string(ManagerStorage s) {
	return string_table_lookup(storage_table, ELEMENTSOF(storage_table), s);
}

/* False after the bus went away: nothing to emit to. */
static bool bus_is_open(ManagerBus *mb) {
	return mb && sd_bus_is_open(mb->bus) > 0;
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;

	return sd_bus_message_append(reply, "s",
			account_state_to_string(account_get_state(mb->account)));
}

/* Calls that need the history fail without one. */
static int check_storage(ManagerBus *mb, sd_bus_error *error) {
	if (mb->history) {
		return 0;
	}
	return sd_bus_error_setf(error, BUS_ERROR_STORAGE_UNAVAILABLE,
			"The message history is unavailable: %s", mb->storage_error);
}

static int property_get_storage(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;

	return sd_bus_message_append(reply, "s", manager_storage_to_string(mb->storage));
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
	const char *s;

	if (streq(property, "StorageError")) {
		s = mb->storage_error;
	} else if (streq(property, "Username")) {
		s = account_get_username(mb->account);
	} else if (streq(property, "Coordinator")) {
		s = account_get_coordinator(mb->account);
	} else if (streq(property, "LocalEndpoint")) {
		s = account_get_local_endpoint(mb->account);
	} else {
		s = mb->conversation ? conversation_get_active(mb->conversation) : "";
	}
	return sd_bus_message_append(reply, "s", strempty(s));
}

static int property_get_fingerprint(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
	char fingerprint[IDENTITY_FINGERPRINT_SIZE];

	identity_get_fingerprint(account_get_identity(mb->account), fingerprint);
	return sd_bus_message_append(reply, "s", fingerprint);
}

static int property_get_offline_reason(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;

	return sd_bus_message_append(reply, "s", account_get_offline_reason(mb->account));
}

static int property_get_coordinator_fingerprint(sd_bus *bus, const char *path,
		const char *interface, const char *property, sd_bus_message *reply,
		void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
	char fingerprint[IDENTITY_FINGERPRINT_SIZE] = "";

	(void) account_get_coordinator_fingerprint(mb->account, fingerprint);
	return sd_bus_message_append(reply, "s", fingerprint);
}

static int method_login(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
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
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	if (account_get_state(mb->account) != ACCOUNT_STATE_OFFLINE) {
		return sd_bus_error_setf(error, BUS_ERROR_ALREADY_LOGGED_IN,
				"Already logged in as '%s'", strempty(account_get_username(mb->account)));
	}
	r = account_login(mb->account, name, coordinator);
	if (r == -EINVAL) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"Invalid coordinator '%s': expected HOST[:PORT], HOST a name or an "
				"address, PORT 1-65535",
				coordinator);
	}
	if (r < 0) {
		return r;
	}
	mb->login_call = sd_bus_message_ref(msg);
	return 1;
}

void manager_bus_login_done(ManagerBus *mb, int error, const char *message) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
	int r;

	if (!mb) {
		return;
	}
	call = TAKE_PTR(mb->login_call);
	if (!call || !bus_is_open(mb)) {
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

static int method_logout(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
	int r;

	if (account_get_state(mb->account) == ACCOUNT_STATE_OFFLINE) {
		(void) account_logout(mb->account, true);
		return sd_bus_error_set(error, BUS_ERROR_NOT_LOGGED_IN, "Not logged in");
	}
	r = account_logout(mb->account, true);
	if (r < 0) {
		return r;
	}
	return sd_bus_reply_method_return(msg, NULL);
}

/* The message of a SendMessage() is stored for good, or not: answer. */
static void on_send_done(int error, const char *id, void *userdata) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = userdata;
	int r;

	if (error < 0) {
		r = sd_bus_reply_method_errnof(call, error, "Failed to store the message: %m");
	} else {
		r = sd_bus_reply_method_return(call, "s", id);
	}
	if (r < 0) {
		log_debug_errno(r, "Failed to reply to SendMessage(): %m");
	}
}

static int method_send_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	char id[MESSAGE_ID_STRLEN];
	ManagerBus *mb = userdata;
	const char *peer, *text;
	size_t len;
	int r;

	r = sd_bus_message_read(msg, "ss", &peer, &text);
	if (r < 0) {
		return r;
	}
	/* Without a store nothing can be accepted: "accepted" means stored. */
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	if (account_get_state(mb->account) == ACCOUNT_STATE_OFFLINE) {
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
	/* It would be both directions of one conversation: refused, as it has no use. */
	if (streq(peer, strempty(account_get_username(mb->account)))) {
		return sd_bus_error_set(error, BUS_ERROR_INVALID_NAME,
				"Cannot send a message to yourself");
	}
	/*
	 * The answer, and then the "queued" signal, come after the batch's
	 * barrier (conversation.c): "accepted" means stored.
	 */
	r = conversation_send(mb->conversation, peer, text, on_send_done,
			sd_bus_message_ref(msg), id);
	if (r < 0) {
		sd_bus_message_unref(msg);
	}
	if (r == -ENOBUFS) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
				"Too many messages queued for '%s' (%u)", peer, HISTORY_QUEUE_MAX);
	}
	if (r < 0) {
		return r;
	}
	return 1;
}

/* The cancellation of a CancelMessage() is stored for good, or not: answer. */
static void on_cancel_done(int error, const char *id, void *userdata) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = userdata;
	int r;

	if (error < 0) {
		r = sd_bus_reply_method_errnof(call, error, "Failed to cancel message '%s': %m",
				id);
	} else {
		r = sd_bus_reply_method_return(call, NULL);
	}
	if (r < 0) {
		log_debug_errno(r, "Failed to reply to CancelMessage(): %m");
	}
}

static int method_cancel_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	ManagerBus *mb = userdata;
	const char *id;
	int r;

	r = sd_bus_message_read(msg, "s", &id);
	if (r < 0) {
		return r;
	}
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	/* Offline too: what waits for a peer may be taken back at any time. */
	r = conversation_cancel(mb->conversation, id, on_cancel_done, sd_bus_message_ref(msg));
	if (r < 0) {
		sd_bus_message_unref(msg);
	}
	if (r == -ENOENT) {
		return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_MESSAGE, "No message '%s'", id);
	}
	if (r == -EBUSY) {
		return sd_bus_error_setf(error, BUS_ERROR_MESSAGE_NOT_CANCELLABLE,
				"Message '%s' is not a queued outgoing message: only one that "
				"has not left can be cancelled", id);
	}
	if (r < 0) {
		return r;
	}
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
	ManagerBus *mb = userdata;
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
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	r = history_get(mb->history, peer, clamp_limit(limit), before, &l);
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
	ManagerBus *mb = userdata;
	const char *query;
	uint32_t limit;
	int r;

	r = sd_bus_message_read(msg, "su", &query, &limit);
	if (r < 0) {
		return r;
	}
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	r = history_search(mb->history, query, clamp_limit(limit), &l);
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
	ManagerBus *mb = userdata;
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
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	r = conversation_mark_read(mb->conversation, peer);
	if (r < 0) {
		return r;
	}
	return sd_bus_reply_method_return(msg, NULL);
}

static int on_active_client_gone(sd_bus_track *track, void *userdata) {
	ManagerBus *mb = userdata;
	int r;

	mb->active_track = sd_bus_track_unref(mb->active_track);
	r = conversation_set_active(mb->conversation, "");
	if (r < 0) {
		log_warning_errno(r, "Failed to clear the active conversation: %m");
	}
	return 0;
}

static int method_set_active_conversation(sd_bus_message *msg, void *userdata,
		sd_bus_error *error) {
	ManagerBus *mb = userdata;
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
	/* It marks the conversation read: that is a write. */
	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	r = conversation_set_active(mb->conversation, peer);
	if (r < 0) {
		return r;
	}
	/* A front end that quits or crashes must not silence that peer for good. */
	mb->active_track = sd_bus_track_unref(mb->active_track);
	if (peer[0] != '\0') {
		r = sd_bus_track_new(mb->bus, &mb->active_track, on_active_client_gone, mb);
		if (r >= 0) {
			r = sd_bus_track_add_sender(mb->active_track, msg);
		}
		if (r < 0) {
			log_warning_errno(r, "Failed to watch the front end of the active "
					"conversation: %m");
		}
	}
	return sd_bus_reply_method_return(msg, NULL);
}

static int method_trust_coordinator(sd_bus_message *msg, void *userdata,
		sd_bus_error *error) {
	char canonical[IDENTITY_FINGERPRINT_SIZE];
	ManagerBus *mb = userdata;
	const char *coordinator, *fingerprint;
	int r;

	r = sd_bus_message_read(msg, "ss", &coordinator, &fingerprint);
	if (r < 0) {
		return r;
	}
	if (identity_fingerprint_parse(fingerprint, canonical) < 0) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"Invalid fingerprint '%s': expected 12 groups of 5 digits", fingerprint);
	}
	r = account_trust_coordinator(mb->account, coordinator, canonical);
	if (r == -EINVAL) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
				"Invalid coordinator '%s': expected HOST[:PORT], HOST a name or an "
				"address, PORT 1-65535", coordinator);
	}
	if (r == -ENOKEY) {
		return sd_bus_error_setf(error, BUS_ERROR_NO_PENDING_KEY,
				"No new key of coordinator '%s' waits to be trusted: it offered no "
				"key other than the one it has", coordinator);
	}
	if (r == -EKEYREJECTED) {
		return sd_bus_error_setf(error, BUS_ERROR_FINGERPRINT_MISMATCH,
				"Fingerprint does not match the key coordinator '%s' offered",
				coordinator);
	}
	if (r < 0) {
		return r;
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
	ManagerBus *mb = userdata;
	const char *key;
	int r;

	r = sd_bus_message_read(msg, "s", &key);
	if (r < 0) {
		return r;
	}
	r = config_get(mb->config, key, &value);
	if (r < 0) {
		return config_error(error, r, key, NULL);
	}
	return sd_bus_reply_method_return(msg, "s", value);
}

static int method_set_config(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_free_ char *text = NULL;
	ManagerBus *mb = userdata;
	const char *key, *value;
	int r;

	r = sd_bus_message_read(msg, "ss", &key, &value);
	if (r < 0) {
		return r;
	}
	/* Without a history there is no conversation to apply it to: stored only. */
	if (mb->conversation) {
		r = conversation_set_config(mb->conversation, key, value, &text);
	} else {
		r = config_set(mb->config, key, value, &text);
	}
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
	c->error = sd_bus_message_append(c->reply, "(ssba{sv})", peer_get_name(p),
			endpoint_format(peer_get_endpoint(p), buf), peer_is_online(p), 2, "native",
			"b", peer_is_native(p), "unread", "u",
			history_unread_lookup(c->unread, peer_get_name(p)));
}

static int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_(history_unread_list_done) HistoryUnreadList unread = {};
	ManagerBus *mb = userdata;
	ListContext c = { .unread = &unread };
	int r;

	/* One query for every peer's count: not one per peer. */
	if (mb->history) {
		r = history_unread_all(mb->history, &unread);
		if (r < 0) {
			return r;
		}
	}
	r = reply_open_array(msg, "(ssba{sv})", &reply);
	if (r < 0) {
		return r;
	}
	c.reply = reply;
	roster_foreach(mb->roster, append_peer, &c);
	if (c.error < 0) {
		return c.error;
	}
	r = sd_bus_message_close_container(reply);
	if (r < 0) {
		return r;
	}
	return sd_bus_send(NULL, reply, NULL);
}

typedef struct ConversationsContext {
	sd_bus_message *reply;
	const char **names; /* the peers with history, sorted */
	size_t n_names;
	int error;
} ConversationsContext;

static int compare_names(const void *a, const void *b) {
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int append_conversation(sd_bus_message *reply, const char *peer, const Peer *p,
		const HistoryConversation *hc) {
	const HistoryMessage *hm = hc ? &hc->last : NULL;

	return sd_bus_message_append(reply, "(ssssta{sv})", peer, hm ? hm->id : "",
			hm ? hm->text : "", hm ? history_direction_to_string(hm->direction) : "",
			hm ? hm->sent_usec : UINT64_C(0), 4,
			"unread", "u", hc ? hc->unread : 0u,
			"online", "b", p ? peer_is_online(p) : false,
			"native", "b", p ? peer_is_native(p) : false,
			"state", "s", hm ? history_state_to_string(hm->state) : "");
}

/* A roster peer without history: after those with, in the roster's (name) order. */
static void append_roster_peer(Peer *p, void *userdata) {
	ConversationsContext *c = userdata;
	const char *name = peer_get_name(p);

	if (c->error < 0 || bsearch(&name, c->names, c->n_names, sizeof(*c->names),
			compare_names)) {
		return;
	}
	c->error = append_conversation(c->reply, name, p, NULL);
}

static int method_list_conversations(sd_bus_message *msg, void *userdata,
		sd_bus_error *error) {
	_cleanup_(history_conversation_list_done) HistoryConversationList l = {};
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_free_ const char **names = NULL;
	ManagerBus *mb = userdata;
	ConversationsContext c = {};
	int r;

	r = check_storage(mb, error);
	if (r < 0) {
		return r;
	}
	/* One query for the last message and unread count of every peer. */
	r = history_list_conversations(mb->history, &l);
	if (r < 0) {
		return r;
	}
	names = calloc(l.n + 1, sizeof(*names));
	if (!names) {
		return -ENOMEM;
	}
	r = reply_open_array(msg, "(ssssta{sv})", &reply);
	if (r < 0) {
		return r;
	}
	for (size_t i = 0; i < l.n; i++) {
		const char *peer = l.conversations[i].last.peer;

		r = append_conversation(reply, peer, roster_get(mb->roster, peer),
				&l.conversations[i]);
		if (r < 0) {
			return r;
		}
		names[i] = peer;
	}
	qsort(names, l.n, sizeof(*names), compare_names);
	c = (ConversationsContext) { .reply = reply, .names = names, .n_names = l.n };
	roster_foreach(mb->roster, append_roster_peer, &c);
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

void manager_bus_emit_properties_changed(ManagerBus *mb) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("PropertiesChanged",
			sd_bus_emit_properties_changed(mb->bus, P2PCHAT_OBJECT_PATH,
					P2PCHAT_MANAGER_INTERFACE, "State", "OfflineReason",
					"CoordinatorFingerprint", "Username", "Coordinator",
					"LocalEndpoint", NULL));
}

void manager_bus_emit_peer_joined(ManagerBus *mb, Peer *p) {
	char buf[ENDPOINT_STRLEN];

	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("PeerJoined",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"PeerJoined", "ssa{sv}", peer_get_name(p),
					endpoint_format(peer_get_endpoint(p), buf), 1, "native",
					"b", peer_is_native(p)));
}

void manager_bus_emit_peer_left(ManagerBus *mb, Peer *p) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("PeerLeft",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"PeerLeft", "sa{sv}", peer_get_name(p), 0));
}

void manager_bus_emit_message_queued(ManagerBus *mb, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, bool unknown) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("MessageQueued",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageQueued", "sssta{sv}", id, peer, text,
					timestamp_usec, 1, "unknown", "b", unknown));
}

void manager_bus_emit_message_received(ManagerBus *mb, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, bool native, const char *time) {
	if (!bus_is_open(mb)) {
		return;
	}
	if (time) {
		emit_result("MessageReceived",
				sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
						"MessageReceived", "sssta{sv}", id, peer, text,
						timestamp_usec, 2, "native", "b", native, "time", "s",
						time));
		return;
	}
	emit_result("MessageReceived",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageReceived", "sssta{sv}", id, peer, text,
					timestamp_usec, 1, "native", "b", native));
}

void manager_bus_emit_message_delivered(ManagerBus *mb, const char *id, const char *peer,
		unsigned attempts) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("MessageDelivered",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageDelivered", "ssa{sv}", id, peer, 1, "attempts", "u",
					attempts));
}

void manager_bus_emit_message_sent(ManagerBus *mb, const char *id, const char *peer) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("MessageSent",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageSent", "ssa{sv}", id, peer, 0));
}

void manager_bus_emit_message_state_changed(ManagerBus *mb, const char *id, const char *peer,
		HistoryState state, const char *reason) {
	if (!bus_is_open(mb)) {
		return;
	}
	/* "reason" only where there is one: a{sv} of 1 or 0 entries. */
	emit_result("MessageStateChanged",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageStateChanged", "sssa{sv}", id, peer,
					history_state_to_string(state), reason ? 1 : 0,
					"reason", "s", reason));
}

void manager_bus_emit_active_conversation_changed(ManagerBus *mb) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("PropertiesChanged",
			sd_bus_emit_properties_changed(mb->bus, P2PCHAT_OBJECT_PATH,
					P2PCHAT_MANAGER_INTERFACE, "ActiveConversation", NULL));
}

void manager_bus_emit_message_failed(ManagerBus *mb, const char *id, const char *peer,
		const char *reason) {
	if (!bus_is_open(mb)) {
		return;
	}
	emit_result("MessageFailed",
			sd_bus_emit_signal(mb->bus, P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"MessageFailed", "sssa{sv}", id, peer, reason, 0));
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),

	SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Username", "s", property_get_string, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Coordinator", "s", property_get_string, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("LocalEndpoint", "s", property_get_string, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("ActiveConversation", "s", property_get_string, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Storage", "s", property_get_storage, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("StorageError", "s", property_get_string, 0,
			SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Fingerprint", "s", property_get_fingerprint, 0,
			SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("OfflineReason", "s", property_get_offline_reason, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("CoordinatorFingerprint", "s", property_get_coordinator_fingerprint, 0,
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
	SD_BUS_METHOD_WITH_ARGS("CancelMessage",
			SD_BUS_ARGS("s", id),
			SD_BUS_NO_RESULT,
			method_cancel_message,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ListPeers",
			SD_BUS_NO_ARGS,
			SD_BUS_RESULT("a(ssba{sv})", peers),
			method_list_peers,
			SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ListConversations",
			SD_BUS_NO_ARGS,
			SD_BUS_RESULT("a(ssssta{sv})", conversations),
			method_list_conversations,
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
	SD_BUS_METHOD_WITH_ARGS("TrustCoordinator",
			SD_BUS_ARGS("s", coordinator, "s", fingerprint),
			SD_BUS_NO_RESULT,
			method_trust_coordinator,
			SD_BUS_VTABLE_UNPRIVILEGED),

	SD_BUS_SIGNAL_WITH_ARGS("PeerJoined",
			SD_BUS_ARGS("s", name, "s", endpoint, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("PeerLeft",
			SD_BUS_ARGS("s", name, "a{sv}", extra),
			0),
	SD_BUS_SIGNAL_WITH_ARGS("MessageQueued",
			SD_BUS_ARGS("s", id, "s", peer, "s", text, "t", timestamp_usec,
					"a{sv}", extra),
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

int manager_bus_new(sd_bus *bus, Account *account, Roster *roster, Conversation *conversation,
		History *history, Config *config, ManagerBus **ret) {
	_cleanup_(manager_bus_freep) ManagerBus *mb = NULL;
	int r;

	mb = calloc(1, sizeof(*mb));
	if (!mb) {
		return -ENOMEM;
	}
	mb->bus = sd_bus_ref(bus);
	mb->account = account;
	mb->roster = roster;
	mb->conversation = conversation;
	mb->history = history;
	mb->config = config;
	mb->storage_error = strdup("");
	if (!mb->storage_error) {
		return -ENOMEM;
	}
	r = sd_bus_add_object_vtable(bus, &mb->slot, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, manager_vtable, mb);
	if (r < 0) {
		return log_error_errno(r, "Failed to register manager object: %m");
	}
	*ret = TAKE_PTR(mb);
	return 0;
}

ManagerBus *manager_bus_free(ManagerBus *mb) {
	if (!mb) {
		return NULL;
	}
	mb->login_call = sd_bus_message_unref(mb->login_call);
	mb->active_track = sd_bus_track_unref(mb->active_track);
	mb->slot = sd_bus_slot_unref(mb->slot);
	mb->bus = sd_bus_unref(mb->bus);
	free(mb->storage_error);
	return mfree(mb);
}

int manager_bus_set_storage(ManagerBus *mb, ManagerStorage storage, const char *error) {
	int r;

	assert(storage >= 0 && storage < _MANAGER_STORAGE_MAX);
	r = free_and_strdup(&mb->storage_error, strempty(error));
	if (r < 0) {
		return r;
	}
	mb->storage = storage;
	return 0;
}
