/* SPDX-License-Identifier: MIT */
/*
 * ChatClient: the GTK app's one door to p2pchatd.
 *
 * Owns the connection to the session bus, a name watch on
 * org.p2pchat.chat1 (with auto-start, so the daemon is activated when it is
 * not running), and while the name has an owner the generated
 * ChatDbusManager proxy.  When the daemon goes away the proxy is dropped and
 * every peer is shown offline; when it comes back a new proxy is made, the
 * login that was interrupted is repeated and the roster is listed again, so
 * a daemon restart needs nothing from the user.
 *
 * It feeds the models the widgets show, each kept by its own object: the
 * roster (ChatRoster), a list of conversations, from ListConversations,
 * ListPeers, PeerJoined, PeerLeft and the message signals; the
 * conversations (ChatConversationStore, with the history paging) from the
 * message signals, MessageQueued (every client's sends) and the app's own
 * sends; the unread counts (ChatPeerObjects) from the daemon's Peer
 * objects.  It also tells the daemon the conversation on screen.  Every
 * D-Bus call is asynchronous.
 */

#include "common/bus-api.h"
#include "frontends/gtk/chat-client.h"
#include "frontends/gtk/chat-conversation-store.h"
#include "frontends/gtk/chat-dbus.h"
#include "frontends/gtk/chat-enums.h"
#include "frontends/gtk/chat-peer-objects.h"
#include "frontends/gtk/chat-roster.h"
#include "frontends/gtk/chat-util.h"

struct _ChatClient {
	GObject parent_instance;

	GCancellable *cancellable;	/* cancelled in dispose */
	GCancellable *proxy_cancellable; /* per owner of the bus name */
	GDBusConnection *connection;
	guint watch_id;
	ChatDbusManager *manager;	/* NULL while the name has no owner */

	ChatClientState state;
	char *username;
	char *coordinator;

	ChatRoster *roster;
	ChatConversationStore *store;
	ChatPeerObjects *peer_objects;	/* once the bus is there */
	guint pending_sends;		/* SendMessage calls without reply */
	GHashTable *early_outcomes;	/* id → ChatOutcome, see below */
	GPtrArray *early_queued;	/* ChatMessage, see below */

	/*
	 * Set when the daemon went away while we were logged in: the login
	 * to repeat once it is back, so a daemon restart is invisible.
	 */
	char *resume_name;
	char *resume_coordinator;

	/*
	 * p2pchatd logs out as it exits, so the app sees "offline" just
	 * before the name vanishes: a login that ended less than
	 * CHAT_RESUME_WINDOW_USEC before, and not by our own Logout, is
	 * resumed too.
	 */
	char *online_name;
	char *online_coordinator;
	gint64 left_online_usec;

	/* The daemon's config, for the login page when offline. */
	char *config_username;
	char *config_coordinator;

	char *active_conversation;	/* what SetActiveConversation says */
};

#define CHAT_RESUME_WINDOW_USEC (2 * G_USEC_PER_SEC)

/*
 * An outcome signal that arrived before the reply carrying its id (the
 * daemon may report a reference peer's MessageSent right away).  Kept only
 * while a SendMessage reply is outstanding, so the table cannot grow with
 * outcomes of messages other clients sent.
 */
typedef struct ChatOutcome {
	ChatMessageState state;
	char *reason;
} ChatOutcome;

static void chat_outcome_free(ChatOutcome *outcome) {
	g_free(outcome->reason);
	g_free(outcome);
}

/*
 * MessageQueued reports every outgoing message p2pchatd stores, whoever sent
 * it (this app, the CLI, busctl), so that a conversation shows them all;
 * the app's own sends are shown at once, so their ids dedupe.  p2pchatd
 * emits it after its SendMessage reply; should one come before, while our
 * own replies are outstanding, it waits in early_queued until they are in:
 * those whose ids they carry were ours (already shown), the others are
 * appended then.
 */

G_DEFINE_FINAL_TYPE(ChatClient, chat_client, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_STATE,
	PROP_USERNAME,
	PROP_COORDINATOR,
	PROP_PEERS,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static const GDBusErrorEntry chat_client_error_entries[] = {
	{ CHAT_CLIENT_ERROR_NOT_LOGGED_IN,
		"org.p2pchat.chat1.Error.NotLoggedIn" },
	{ CHAT_CLIENT_ERROR_ALREADY_LOGGED_IN,
		"org.p2pchat.chat1.Error.AlreadyLoggedIn" },
	{ CHAT_CLIENT_ERROR_NAME_TAKEN,
		"org.p2pchat.chat1.Error.NameTaken" },
	{ CHAT_CLIENT_ERROR_INVALID_NAME,
		"org.p2pchat.chat1.Error.InvalidName" },
	{ CHAT_CLIENT_ERROR_COORDINATOR_UNREACHABLE,
		"org.p2pchat.chat1.Error.CoordinatorUnreachable" },
	{ CHAT_CLIENT_ERROR_UNKNOWN_PEER,
		"org.p2pchat.chat1.Error.UnknownPeer" },
	{ CHAT_CLIENT_ERROR_MESSAGE_TOO_LONG,
		"org.p2pchat.chat1.Error.MessageTooLong" },
	{ CHAT_CLIENT_ERROR_INVALID_MESSAGE,
		"org.p2pchat.chat1.Error.InvalidMessage" },
};

GQuark chat_client_error_quark(void) {
	static gsize quark = 0;

	g_dbus_error_register_error_domain("chat-client-error-quark", &quark,
		chat_client_error_entries,
		G_N_ELEMENTS(chat_client_error_entries));
	return (GQuark) quark;
}

/*
 * Drops the "GDBus.Error:NAME: " prefix of a remote error; its domain and
 * code are already CHAT_CLIENT_ERROR's (registered in class_init, before
 * any reply can arrive).
 */
static GError *chat_client_error_from_remote(GError *error) {
	if (g_dbus_error_is_remote_error(error)) {
		g_dbus_error_strip_remote_error(error);
	}
	return error;
}

static gboolean chat_client_is_cancelled(const GError *error) {
	return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

const char *chat_client_state_to_string(ChatClientState state) {
	switch (state) {
	case CHAT_CLIENT_STATE_NO_DAEMON:
		return "no-daemon";
	case CHAT_CLIENT_STATE_OFFLINE:
		return "offline";
	case CHAT_CLIENT_STATE_CONNECTING:
		return "connecting";
	case CHAT_CLIENT_STATE_ONLINE:
		return "online";
	case CHAT_CLIENT_STATE_RECONNECTING:
		return "reconnecting";
	}
	g_assert_not_reached();
}

static ChatClientState chat_client_state_from_string(const char *s) {
	if (g_strcmp0(s, "online") == 0) {
		return CHAT_CLIENT_STATE_ONLINE;
	}
	if (g_strcmp0(s, "connecting") == 0) {
		return CHAT_CLIENT_STATE_CONNECTING;
	}
	if (s && !g_str_equal(s, "offline") && *s) {
		g_debug("Unknown daemon state '%s', treating it as offline.", s);
	}
	return CHAT_CLIENT_STATE_OFFLINE;
}

static void chat_client_set_strings(ChatClient *self, const char *username,
		const char *coordinator) {
	if (chat_set_str(&self->username, username ? username : "")) {
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_USERNAME]);
	}
	if (chat_set_str(&self->coordinator, coordinator ? coordinator : "")) {
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_COORDINATOR]);
	}
}

static void on_list_peers_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(GVariant) list = NULL;
	g_autoptr(GError) error = NULL;

	if (!chat_dbus_manager_call_list_peers_finish(CHAT_DBUS_MANAGER(source),
			&list, result, &error)) {
		if (!chat_client_is_cancelled(error)) {
			g_warning("Failed to list peers: %s", error->message);
		}
		return;
	}

	chat_roster_take_listing(self->roster, g_steal_pointer(&list));
}

static void on_list_conversations_ready(GObject *source,
		GAsyncResult *result, gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(GVariant) list = NULL;
	g_autoptr(GError) error = NULL;

	if (!chat_dbus_manager_call_list_conversations_finish(
			CHAT_DBUS_MANAGER(source), &list, result, &error)) {
		if (!chat_client_is_cancelled(error)) {
			g_message("Failed to list conversations: %s",
				error->message);
		}
		return;
	}

	chat_roster_take_conversations(self->roster, list);
}

/* At start and at each login: the conversations, offline peers' too. */
static void chat_client_list_conversations(ChatClient *self) {
	chat_dbus_manager_call_list_conversations(self->manager,
		self->proxy_cancellable, on_list_conversations_ready, self);
}

static void chat_client_set_state(ChatClient *self, ChatClientState state) {
	if (self->state == state) {
		return;
	}
	if (chat_client_is_logged_in(self)) {
		self->left_online_usec = g_get_monotonic_time();
	}
	self->state = state;

	if (state == CHAT_CLIENT_STATE_ONLINE) {
		chat_set_str(&self->online_name, self->username);
		chat_set_str(&self->online_coordinator, self->coordinator);
		chat_dbus_manager_call_list_peers(self->manager,
			self->proxy_cancellable, on_list_peers_ready, self);
		chat_client_list_conversations(self);
	} else if (state != CHAT_CLIENT_STATE_RECONNECTING) {
		/* Reconnecting, p2pchatd keeps its roster; it reconciles it. */
		chat_roster_mark_all_offline(self->roster);
	}

	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_STATE]);
}

/**
 * chat_client_ensure_peer() - Finds a peer by name, adding it when new.
 * See chat_roster_ensure().
 *
 * Return: (transfer none): the peer.
 */
ChatPeer *chat_client_ensure_peer(ChatClient *self, const char *name) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	return chat_roster_ensure(self->roster, name);
}


static void on_manager_peer_joined(ChatDbusManager *manager, const char *name,
		const char *endpoint, GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;

	chat_roster_peer_joined(self->roster, name, endpoint, extra);
}

static void on_manager_peer_left(ChatDbusManager *manager, const char *name,
		GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;

	chat_roster_peer_left(self->roster, name);
}

static void on_manager_message_received(ChatDbusManager *manager,
		const char *id, const char *peer, const char *text,
		guint64 timestamp_usec, GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(ChatMessage) message = NULL;
	gint64 time_usec = timestamp_usec > G_MAXINT64 ?
		g_get_real_time() : (gint64) timestamp_usec;

	chat_roster_note_message(self->roster, peer, text, time_usec, FALSE);
	if (chat_conversation_store_lookup(self->store, id)) {
		return;
	}
	message = chat_message_new(id, peer, CHAT_MESSAGE_DIRECTION_INCOMING,
		text, time_usec, CHAT_MESSAGE_STATE_DELIVERED);
	chat_conversation_store_append(self->store, message);
}

static void chat_client_append_queued(ChatClient *self,
		ChatMessage *message) {
	if (chat_conversation_store_lookup(self->store,
			chat_message_get_id(message))) {
		return;
	}
	(void) chat_client_ensure_peer(self, chat_message_get_peer(message));
	chat_conversation_store_append(self->store, message);
}

static void on_manager_message_queued(ChatDbusManager *manager,
		const char *id, const char *peer, const char *text,
		guint64 timestamp_usec, GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(ChatMessage) message = NULL;

	if (!*id) {
		return;
	}
	chat_roster_note_message(self->roster, peer, text,
		timestamp_usec > G_MAXINT64 ? g_get_real_time() :
		(gint64) timestamp_usec, TRUE);
	if (chat_conversation_store_lookup(self->store, id)) {
		return;
	}
	message = chat_message_new(id, peer, CHAT_MESSAGE_DIRECTION_OUTGOING,
		text, timestamp_usec > G_MAXINT64 ? g_get_real_time() :
		(gint64) timestamp_usec, CHAT_MESSAGE_STATE_QUEUED);
	if (self->pending_sends > 0) {
		g_ptr_array_add(self->early_queued, g_steal_pointer(&message));
		return;
	}
	chat_client_append_queued(self, message);
}

/*
 * Applies a state p2pchatd reports for a message id; one whose SendMessage
 * reply is still outstanding gets it when the reply comes.
 */
static void chat_client_apply_state(ChatClient *self, const char *id,
		ChatMessageState state, const char *reason) {
	ChatMessage *message = chat_conversation_store_lookup(self->store, id);
	ChatOutcome *outcome;

	if (!message) {
		if (self->pending_sends > 0) {
			outcome = g_new0(ChatOutcome, 1);
			outcome->state = state;
			outcome->reason = g_strdup(reason);
			g_hash_table_replace(self->early_outcomes, g_strdup(id),
				outcome);
		}
		return;
	}
	if (reason) {
		chat_message_set_failure(message, reason);
	}
	chat_message_set_state(message, state);
}

/*
 * The outcome signals from before MessageStateChanged; p2pchatd still
 * sends them, with the same meaning, so applying both changes nothing.
 */
static void on_manager_message_delivered(ChatDbusManager *manager,
		const char *id, const char *peer, GVariant *extra,
		gpointer user_data) {
	chat_client_apply_state(CHAT_CLIENT(user_data), id,
		CHAT_MESSAGE_STATE_DELIVERED, NULL);
}

static void on_manager_message_sent(ChatDbusManager *manager, const char *id,
		const char *peer, GVariant *extra, gpointer user_data) {
	chat_client_apply_state(CHAT_CLIENT(user_data), id,
		CHAT_MESSAGE_STATE_SENT, NULL);
}

static void on_manager_message_failed(ChatDbusManager *manager,
		const char *id, const char *peer, const char *reason,
		GVariant *extra, gpointer user_data) {
	chat_client_apply_state(CHAT_CLIENT(user_data), id,
		CHAT_MESSAGE_STATE_FAILED, reason);
}

static void on_manager_message_state_changed(ChatDbusManager *manager,
		const char *id, const char *peer, const char *state_name,
		GVariant *extra, gpointer user_data) {
	const char *reason = NULL;
	ChatMessageState state;

	if (!chat_message_state_from_string(state_name, &state)) {
		g_debug("Unknown message state '%s', ignoring.", state_name);
		return;
	}
	(void) g_variant_lookup(extra, "reason", "&s", &reason);
	chat_client_apply_state(CHAT_CLIENT(user_data), id, state, reason);
}

static void chat_client_sync_properties(ChatClient *self) {
	ChatClientState state = chat_client_state_from_string(
		chat_dbus_manager_get_state(self->manager));

	/* "connecting" once logged in: p2pchatd lost the coordinator. */
	if (state == CHAT_CLIENT_STATE_CONNECTING &&
			chat_client_is_logged_in(self)) {
		state = CHAT_CLIENT_STATE_RECONNECTING;
	}
	chat_client_set_strings(self,
		chat_dbus_manager_get_username(self->manager),
		chat_dbus_manager_get_coordinator(self->manager));
	chat_client_set_state(self, state);
}

static void on_manager_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_client_sync_properties(CHAT_CLIENT(user_data));
}

static void on_set_active_conversation_ready(GObject *source,
		GAsyncResult *result, gpointer user_data) {
	g_autoptr(GError) error = NULL;

	if (!chat_dbus_manager_call_set_active_conversation_finish(
			CHAT_DBUS_MANAGER(source), result, &error) &&
			!chat_client_is_cancelled(error)) {
		g_debug("SetActiveConversation failed: %s", error->message);
	}
}

static void chat_client_send_active_conversation(ChatClient *self) {
	if (!self->manager) {
		return;
	}
	chat_dbus_manager_call_set_active_conversation(self->manager,
		self->active_conversation ? self->active_conversation : "",
		self->proxy_cancellable, on_set_active_conversation_ready,
		NULL);
}

/**
 * chat_client_set_active_conversation() - Says which conversation is on
 * screen.
 * @self: the client
 * @peer: the peer whose conversation the user sees, or "" for none
 *
 * p2pchatd then shows no notifications for it and marks its messages
 * read; the value is told again to a restarted daemon.
 */
void chat_client_set_active_conversation(ChatClient *self, const char *peer) {
	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(peer);

	if (chat_set_str(&self->active_conversation, peer)) {
		chat_client_send_active_conversation(self);
	}
}

static void on_config_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	ChatClient *self;
	g_autofree char *value = NULL;
	g_autoptr(GError) error = NULL;
	const char *key = user_data;

	if (!chat_dbus_manager_call_get_config_finish(CHAT_DBUS_MANAGER(source),
			&value, result, &error)) {
		if (!chat_client_is_cancelled(error)) {
			g_debug("GetConfig(%s) failed: %s", key,
				error->message);
		}
		return;
	}
	self = g_object_get_data(source, "chat-client");
	if (!self) {
		return;
	}
	if (g_str_equal(key, "username")) {
		chat_set_str(&self->config_username, value);
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_USERNAME]);
	} else {
		chat_set_str(&self->config_coordinator, value);
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_COORDINATOR]);
	}
}

static void chat_client_drop_manager(ChatClient *self) {
	g_cancellable_cancel(self->proxy_cancellable);
	g_clear_object(&self->proxy_cancellable);
	if (self->manager) {
		g_signal_handlers_disconnect_by_data(self->manager, self);
		g_object_set_data(G_OBJECT(self->manager), "chat-client", NULL);
		g_clear_object(&self->manager);
	}

	/*
	 * Messages keep their ids across daemon restarts (they are stored);
	 * history pages being loaded are asked again.
	 */
	g_hash_table_remove_all(self->early_outcomes);
	chat_roster_forget_unread(self->roster);
	chat_conversation_store_stop_history(self->store);
}

static void on_resume_login_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GError) error = NULL;

	if (!chat_dbus_manager_call_login_finish(CHAT_DBUS_MANAGER(source),
			result, &error) && !chat_client_is_cancelled(error)) {
		g_warning("Failed to log in again after p2pchatd restarted: %s",
			error->message);
	}
}

/* Repeats the login that a daemon restart interrupted, once. */
static void chat_client_resume(ChatClient *self) {
	g_autofree char *name = g_steal_pointer(&self->resume_name);
	g_autofree char *coordinator =
		g_steal_pointer(&self->resume_coordinator);

	if (!name || self->state != CHAT_CLIENT_STATE_OFFLINE) {
		return;
	}
	g_debug("Logging in again as '%s' after a p2pchatd restart", name);
	chat_dbus_manager_call_login(self->manager, name, coordinator,
		self->proxy_cancellable, on_resume_login_ready, NULL);
}

static void on_manager_proxy_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(GError) error = NULL;
	ChatDbusManager *manager;

	manager = chat_dbus_manager_proxy_new_finish(result, &error);
	if (!manager) {
		if (!chat_client_is_cancelled(error)) {
			g_warning("Failed to create the p2pchatd proxy: %s",
				error->message);
		}
		return;
	}
	self->manager = manager;

	g_signal_connect(manager, "notify::state",
		G_CALLBACK(on_manager_notify), self);
	g_signal_connect(manager, "notify::username",
		G_CALLBACK(on_manager_notify), self);
	g_signal_connect(manager, "notify::coordinator",
		G_CALLBACK(on_manager_notify), self);
	g_signal_connect(manager, "peer-joined",
		G_CALLBACK(on_manager_peer_joined), self);
	g_signal_connect(manager, "peer-left",
		G_CALLBACK(on_manager_peer_left), self);
	g_signal_connect(manager, "message-received",
		G_CALLBACK(on_manager_message_received), self);
	g_signal_connect(manager, "message-delivered",
		G_CALLBACK(on_manager_message_delivered), self);
	g_signal_connect(manager, "message-sent",
		G_CALLBACK(on_manager_message_sent), self);
	g_signal_connect(manager, "message-failed",
		G_CALLBACK(on_manager_message_failed), self);
	g_signal_connect(manager, "message-queued",
		G_CALLBACK(on_manager_message_queued), self);
	g_signal_connect(manager, "message-state-changed",
		G_CALLBACK(on_manager_message_state_changed), self);
	g_object_set_data(G_OBJECT(manager), "chat-client", self);

	/* For the login page; the daemon's own values win once online. */
	chat_dbus_manager_call_get_config(manager, "username",
		self->proxy_cancellable, on_config_ready, (gpointer) "username");
	chat_dbus_manager_call_get_config(manager, "coordinator",
		self->proxy_cancellable, on_config_ready,
		(gpointer) "coordinator");
	if (self->active_conversation && *self->active_conversation) {
		chat_client_send_active_conversation(self);
	}

	/*
	 * Leaving NO_DAEMON first makes an already-online daemon go through
	 * set_state(ONLINE), which lists the roster.
	 */
	chat_client_sync_properties(self);
	if (self->state != CHAT_CLIENT_STATE_ONLINE) {
		/* Online, set_state() has listed them. */
		chat_client_list_conversations(self);
	}
	chat_client_resume(self);
}

static void on_name_appeared(GDBusConnection *connection, const char *name,
		const char *name_owner, gpointer user_data) {
	ChatClient *self = user_data;

	g_debug("p2pchatd appeared as %s", name_owner);
	chat_client_drop_manager(self);
	self->proxy_cancellable = g_cancellable_new();
	chat_dbus_manager_proxy_new(connection, G_DBUS_PROXY_FLAGS_NONE,
		P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH, self->proxy_cancellable,
		on_manager_proxy_ready, self);
}

static void on_name_vanished(GDBusConnection *connection, const char *name,
		gpointer user_data) {
	ChatClient *self = user_data;

	g_debug("p2pchatd vanished");
	if (self->online_name && *self->online_name &&
			*self->online_coordinator &&
			(chat_client_is_logged_in(self) ||
			g_get_monotonic_time() - self->left_online_usec <
			CHAT_RESUME_WINDOW_USEC)) {
		chat_set_str(&self->resume_name, self->online_name);
		chat_set_str(&self->resume_coordinator,
			self->online_coordinator);
	}
	chat_client_drop_manager(self);
	chat_client_set_state(self, CHAT_CLIENT_STATE_NO_DAEMON);
}

static void on_bus_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(GError) error = NULL;
	GDBusConnection *connection;

	connection = g_bus_get_finish(result, &error);
	if (!connection) {
		if (!chat_client_is_cancelled(error)) {
			g_warning("Failed to connect to the session bus: %s",
				error->message);
		}
		return;
	}
	self->connection = connection;

	/*
	 * AUTO_START asks the bus to activate p2pchatd; the watch then keeps
	 * following the name across daemon restarts.
	 */
	self->peer_objects = chat_peer_objects_new(connection, self->roster);
	self->watch_id = g_bus_watch_name_on_connection(connection,
		P2PCHAT_BUS_NAME, G_BUS_NAME_WATCHER_FLAGS_AUTO_START,
		on_name_appeared, on_name_vanished, self, NULL);
}

static void chat_client_constructed(GObject *object) {
	ChatClient *self = CHAT_CLIENT(object);

	G_OBJECT_CLASS(chat_client_parent_class)->constructed(object);

	g_bus_get(G_BUS_TYPE_SESSION, self->cancellable, on_bus_ready, self);
}

static void chat_client_dispose(GObject *object) {
	ChatClient *self = CHAT_CLIENT(object);

	g_cancellable_cancel(self->cancellable);
	if (self->watch_id) {
		g_bus_unwatch_name(self->watch_id);
		self->watch_id = 0;
	}
	g_clear_object(&self->peer_objects);
	if (self->roster) {
		chat_client_drop_manager(self);
	}
	g_clear_object(&self->connection);
	g_clear_object(&self->cancellable);
	g_clear_object(&self->store);
	g_clear_object(&self->roster);

	G_OBJECT_CLASS(chat_client_parent_class)->dispose(object);
}

static void chat_client_finalize(GObject *object) {
	ChatClient *self = CHAT_CLIENT(object);

	g_hash_table_unref(self->early_outcomes);
	g_ptr_array_unref(self->early_queued);
	g_free(self->resume_name);
	g_free(self->resume_coordinator);
	g_free(self->online_name);
	g_free(self->online_coordinator);
	g_free(self->config_username);
	g_free(self->config_coordinator);
	g_free(self->active_conversation);
	g_free(self->username);
	g_free(self->coordinator);

	G_OBJECT_CLASS(chat_client_parent_class)->finalize(object);
}

static void chat_client_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatClient *self = CHAT_CLIENT(object);

	switch (prop_id) {
	case PROP_STATE:
		g_value_set_enum(value, self->state);
		break;
	case PROP_USERNAME:
		g_value_set_string(value, self->username);
		break;
	case PROP_COORDINATOR:
		g_value_set_string(value, self->coordinator);
		break;
	case PROP_PEERS:
		g_value_set_object(value, chat_roster_get_model(self->roster));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_client_class_init(ChatClientClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY;

	/* Replies map the daemon's named errors from now on. */
	(void) chat_client_error_quark();

	object_class->constructed = chat_client_constructed;
	object_class->dispose = chat_client_dispose;
	object_class->finalize = chat_client_finalize;
	object_class->get_property = chat_client_get_property;

	properties[PROP_STATE] = g_param_spec_enum("state", NULL, NULL,
		CHAT_TYPE_CLIENT_STATE, CHAT_CLIENT_STATE_NO_DAEMON, ro);
	properties[PROP_USERNAME] = g_param_spec_string("username", NULL, NULL,
		"", ro);
	properties[PROP_COORDINATOR] = g_param_spec_string("coordinator", NULL,
		NULL, "", ro);
	properties[PROP_PEERS] = g_param_spec_object("peers", NULL, NULL,
		G_TYPE_LIST_MODEL, ro);

	g_object_class_install_properties(object_class, N_PROPS, properties);
}

static void chat_client_init(ChatClient *self) {
	self->cancellable = g_cancellable_new();
	self->state = CHAT_CLIENT_STATE_NO_DAEMON;
	self->username = g_strdup("");
	self->coordinator = g_strdup("");
	self->roster = chat_roster_new();
	self->store = chat_conversation_store_new();
	self->early_outcomes = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, (GDestroyNotify) chat_outcome_free);
	self->early_queued = g_ptr_array_new_with_free_func(g_object_unref);
}

/**
 * chat_client_new() - Creates the client and starts connecting.
 *
 * The session bus connection, the activation of p2pchatd and the proxy are
 * all made asynchronously; watch the "state" property.
 *
 * Return: a new ChatClient.
 */
ChatClient *chat_client_new(void) {
	return g_object_new(CHAT_TYPE_CLIENT, NULL);
}

ChatClientState chat_client_get_state(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), CHAT_CLIENT_STATE_NO_DAEMON);
	return self->state;
}

/*
 * Logged in: online, or reconnecting to the coordinator while peers still
 * take messages.  The chat stays on screen; only logging out leaves it.
 */
gboolean chat_client_is_logged_in(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), FALSE);
	return self->state == CHAT_CLIENT_STATE_ONLINE ||
		self->state == CHAT_CLIENT_STATE_RECONNECTING;
}

const char *chat_client_get_username(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	return self->username;
}

const char *chat_client_get_coordinator(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	return self->coordinator;
}

GListModel *chat_client_get_peers(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	return chat_roster_get_model(self->roster);
}

ChatPeer *chat_client_get_peer(ChatClient *self, const char *name) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	g_return_val_if_fail(name, NULL);
	return chat_roster_lookup(self->roster, name);
}

/**
 * chat_client_get_conversation() - The messages exchanged with a peer.
 * @self: the client
 * @peer: the peer's name
 *
 * Return: (transfer none): a GListModel of ChatMessage, oldest first, that
 * lives as long as the client and grows as messages come and go.
 */
GListModel *chat_client_get_conversation(ChatClient *self, const char *peer) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	return chat_conversation_store_get(self->store, peer);
}

/* Fails the task at once when there is no daemon to talk to. */
static gboolean chat_client_check_manager(ChatClient *self, GTask *task) {
	if (self->manager) {
		return TRUE;
	}
	g_task_return_new_error(task, CHAT_CLIENT_ERROR,
		CHAT_CLIENT_ERROR_NO_DAEMON, "p2pchatd is not running");
	return FALSE;
}

static void chat_client_return_call(GTask *task, gboolean ok, GError *error) {
	if (!ok) {
		g_task_return_error(task, chat_client_error_from_remote(error));
		return;
	}
	g_task_return_boolean(task, TRUE);
}

static void on_login_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	gboolean ok;

	ok = chat_dbus_manager_call_login_finish(CHAT_DBUS_MANAGER(source),
		result, &error);
	chat_client_return_call(task, ok, error);
}

void chat_client_login_async(ChatClient *self, const char *name,
		const char *coordinator, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data) {
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(name && coordinator);

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_login_async);
	if (!chat_client_check_manager(self, task)) {
		return;
	}
	chat_dbus_manager_call_login(self->manager, name, coordinator,
		cancellable, on_login_ready, g_steal_pointer(&task));
}

gboolean chat_client_login_finish(ChatClient *self, GAsyncResult *result,
		GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

static void on_logout_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	gboolean ok;

	ok = chat_dbus_manager_call_logout_finish(CHAT_DBUS_MANAGER(source),
		result, &error);
	chat_client_return_call(task, ok, error);
}

void chat_client_logout_async(ChatClient *self, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data) {
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_logout_async);
	if (!chat_client_check_manager(self, task)) {
		return;
	}
	/* Our own logout: a daemon exiting right after is not resumed. */
	g_clear_pointer(&self->online_name, g_free);
	chat_dbus_manager_call_logout(self->manager, cancellable,
		on_logout_ready, g_steal_pointer(&task));
}

gboolean chat_client_logout_finish(ChatClient *self, GAsyncResult *result,
		GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

static void chat_client_fail_message(GTask *task, GError *error) {
	ChatMessage *message = g_task_get_task_data(task);

	chat_message_set_failure(message, error->message);
	chat_message_set_state(message, CHAT_MESSAGE_STATE_FAILED);
	g_task_return_error(task, error);
}

/* Shows the messages other clients queued while our sends were pending. */
static void chat_client_flush_queued(ChatClient *self) {
	g_autoptr(GPtrArray) queued = g_steal_pointer(&self->early_queued);

	self->early_queued = g_ptr_array_new_with_free_func(g_object_unref);
	for (guint i = 0; i < queued->len; i++) {
		ChatMessage *message = queued->pdata[i];
		const char *id = chat_message_get_id(message);
		ChatOutcome *outcome;

		chat_client_append_queued(self, message);
		outcome = g_hash_table_lookup(self->early_outcomes, id);
		if (outcome) {
			chat_client_apply_state(self, id, outcome->state,
				outcome->reason);
		}
	}
}

static void on_send_message_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	ChatClient *self = g_task_get_source_object(task);
	ChatMessage *message = g_task_get_task_data(task);
	g_autofree char *id = NULL;
	GError *error = NULL;
	ChatOutcome *outcome;

	g_assert(self->pending_sends > 0);
	self->pending_sends--;

	if (!chat_dbus_manager_call_send_message_finish(
			CHAT_DBUS_MANAGER(source), &id, result, &error)) {
		chat_client_fail_message(task,
			chat_client_error_from_remote(error));
	} else {
		chat_message_set_id(message, id);
		chat_conversation_store_index(self->store, message);
		outcome = g_hash_table_lookup(self->early_outcomes, id);
		if (outcome) {
			chat_client_apply_state(self, id, outcome->state,
				outcome->reason);
		}
		g_task_return_pointer(task, g_object_ref(message),
			g_object_unref);
	}

	if (id) {
		for (guint i = 0; i < self->early_queued->len; i++) {
			if (g_str_equal(id, chat_message_get_id(
					self->early_queued->pdata[i]))) {
				g_ptr_array_remove_index(self->early_queued,
					i);
				break;
			}
		}
	}
	if (self->pending_sends == 0) {
		chat_client_flush_queued(self);
		g_hash_table_remove_all(self->early_outcomes);
	}
}

/**
 * chat_client_send_message_async() - Sends a message to a peer.
 *
 * The message is appended to the peer's conversation at once, in state
 * SENDING, and moves to DELIVERED, SENT or FAILED when p2pchatd reports
 * the outcome of its id (or FAILED when the call itself fails).
 */
void chat_client_send_message_async(ChatClient *self, const char *peer,
		const char *text, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data) {
	g_autoptr(GTask) task = NULL;
	g_autoptr(ChatMessage) message = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(peer && text);

	message = chat_message_new("", peer, CHAT_MESSAGE_DIRECTION_OUTGOING,
		text, g_get_real_time(), CHAT_MESSAGE_STATE_SENDING);
	g_list_store_append(
		G_LIST_STORE(chat_client_get_conversation(self, peer)),
		message);

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_send_message_async);
	g_task_set_task_data(task, g_object_ref(message), g_object_unref);
	if (!self->manager) {
		chat_client_fail_message(task, g_error_new_literal(
			CHAT_CLIENT_ERROR, CHAT_CLIENT_ERROR_NO_DAEMON,
			"p2pchatd is not running"));
		return;
	}
	self->pending_sends++;
	chat_dbus_manager_call_send_message(self->manager, peer, text,
		cancellable, on_send_message_ready, g_steal_pointer(&task));
}

ChatMessage *chat_client_send_message_finish(ChatClient *self,
		GAsyncResult *result, GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

/**
 * chat_client_get_login_name() - The name to offer on the login page.
 *
 * Return: the daemon's Username while logged in, else its configured
 * username (GetConfig), else "".
 */
const char *chat_client_get_login_name(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	if (*self->username || !self->config_username) {
		return self->username;
	}
	return self->config_username;
}

/* Like chat_client_get_login_name(), for the coordinator. */
const char *chat_client_get_login_coordinator(ChatClient *self) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	if (*self->coordinator || !self->config_coordinator) {
		return self->coordinator;
	}
	return self->config_coordinator;
}

/**
 * chat_client_load_history() - Loads a page of a conversation's history.
 * @self: the client
 * @peer: the peer's name
 * @older: FALSE for the newest page (only once: later calls do nothing),
 *         TRUE for the page before the oldest loaded one
 *
 * See chat_conversation_store_load_history(); nothing happens without a
 * daemon.
 */
void chat_client_load_history(ChatClient *self, const char *peer,
		gboolean older) {
	g_return_if_fail(CHAT_IS_CLIENT(self));
	chat_conversation_store_load_history(self->store, self->manager, peer,
		older, self->proxy_cancellable);
}

/**
 * chat_client_fetch_unread() - Asks p2pchatd for a peer's unread count.
 * @self: the client
 * @peer: the peer
 *
 * See chat_peer_objects_fetch_unread(); nothing happens without a daemon.
 */
void chat_client_fetch_unread(ChatClient *self, ChatPeer *peer) {
	g_return_if_fail(CHAT_IS_CLIENT(self));
	if (self->manager && self->peer_objects) {
		chat_peer_objects_fetch_unread(self->peer_objects, peer,
			self->proxy_cancellable);
	}
}

static void on_search_history_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	g_autoptr(GVariant) messages = NULL;
	g_autoptr(GListStore) store = NULL;
	GError *error = NULL;
	GVariantIter iter;
	GVariant *tuple;

	if (!chat_dbus_manager_call_search_history_finish(
			CHAT_DBUS_MANAGER(source), &messages, result, &error)) {
		g_task_return_error(task, chat_client_error_from_remote(error));
		return;
	}
	store = g_list_store_new(CHAT_TYPE_MESSAGE);
	g_variant_iter_init(&iter, messages);
	while ((tuple = g_variant_iter_next_value(&iter))) {
		g_autoptr(ChatMessage) message =
			chat_message_new_from_tuple(tuple);

		g_list_store_append(store, message);
		g_variant_unref(tuple);
	}
	g_task_return_pointer(task, g_steal_pointer(&store), g_object_unref);
}

/*
 * SearchHistory: up to @limit messages whose text contains @query, newest
 * first, as a GListModel of ChatMessage.
 */
void chat_client_search_history_async(ChatClient *self, const char *query,
		guint limit, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data) {
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(query);

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_search_history_async);
	if (!chat_client_check_manager(self, task)) {
		return;
	}
	chat_dbus_manager_call_search_history(self->manager, query, limit,
		cancellable, on_search_history_ready, g_steal_pointer(&task));
}

GListModel *chat_client_search_history_finish(ChatClient *self,
		GAsyncResult *result, GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

static void on_get_config_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	char *value = NULL;

	if (!chat_dbus_manager_call_get_config_finish(
			CHAT_DBUS_MANAGER(source), &value, result, &error)) {
		g_task_return_error(task, chat_client_error_from_remote(error));
		return;
	}
	g_task_return_pointer(task, value, g_free);
}

/* GetConfig, for the preferences. */
void chat_client_get_config_async(ChatClient *self, const char *key,
		GCancellable *cancellable, GAsyncReadyCallback callback,
		gpointer user_data) {
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(key);

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_get_config_async);
	if (!chat_client_check_manager(self, task)) {
		return;
	}
	chat_dbus_manager_call_get_config(self->manager, key, cancellable,
		on_get_config_ready, g_steal_pointer(&task));
}

char *chat_client_get_config_finish(ChatClient *self, GAsyncResult *result,
		GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

static void on_set_config_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	gboolean ok;

	ok = chat_dbus_manager_call_set_config_finish(CHAT_DBUS_MANAGER(source),
		result, &error);
	chat_client_return_call(task, ok, error);
}

/* SetConfig, for the preferences; InvalidConfig for a bad value. */
void chat_client_set_config_async(ChatClient *self, const char *key,
		const char *value, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data) {
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(key && value);

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, chat_client_set_config_async);
	if (!chat_client_check_manager(self, task)) {
		return;
	}
	chat_dbus_manager_call_set_config(self->manager, key, value,
		cancellable, on_set_config_ready, g_steal_pointer(&task));
}

gboolean chat_client_set_config_finish(ChatClient *self, GAsyncResult *result,
		GError **error) {
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}
