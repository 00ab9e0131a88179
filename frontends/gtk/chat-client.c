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
 * It keeps the models the widgets show: the roster (a GListStore of
 * ChatPeer, online first and by name, filled from idle slices so 10,000
 * peers never stall a frame; peers are never removed, only marked offline,
 * and carry the daemon's Peer.Unread) and one GListStore of ChatMessage
 * per peer, created on first use, that GetHistory fills page by page
 * backwards and signals extend; every message with an id is indexed, so
 * MessageStateChanged finds it.  It also tells the daemon the conversation
 * on screen.  Every D-Bus call is asynchronous.
 */

#include <string.h>

#include "common/bus-api.h"
#include "frontends/gtk/chat-client.h"
#include "frontends/gtk/chat-dbus.h"
#include "frontends/gtk/chat-enums.h"
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

	GListStore *peers;
	GHashTable *peer_by_name;	/* name → ChatPeer (a reference) */

	/* Loading the roster from idle slices: see chat_client_load_roster(). */
	guint roster_idle_id;
	GVariant *listing;		/* ListPeers reply still being read */
	GVariantIter listing_iter;
	GHashTable *listed;		/* names the reply has listed so far */
	GPtrArray *unplaced;		/* peers not in the store yet */
	GPtrArray *loading;		/* the sorted roster being appended */
	guint loading_next;
	gboolean loading_ramp;		/* into an empty store: see above */
	gboolean roster_dirty;		/* presence changed during a load */
	GHashTable *conversations;	/* name → GListStore of ChatMessage */
	GHashTable *messages;		/* id → every ChatMessage with an id */
	GHashTable *histories;		/* peer → ChatHistory */
	guint pending_sends;		/* SendMessage calls without reply */
	GHashTable *early_outcomes;	/* id → ChatOutcome, see below */

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
	guint peer_changed_id;		/* PropertiesChanged of every Peer */
	GHashTable *unread_asked;	/* names whose Unread was fetched */
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
 * How far back a conversation's history is loaded: pages of
 * CHAT_HISTORY_PAGE messages, each older than the first one of the page
 * before.
 */
typedef struct ChatHistory {
	char *oldest_id;	/* NULL before the first page */
	gboolean loading;
	gboolean complete;	/* the first message is loaded */
} ChatHistory;

#define CHAT_HISTORY_PAGE 100

static void chat_history_free(ChatHistory *history) {
	g_free(history->oldest_id);
	g_free(history);
}

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
		gpointer user_data);
static void chat_client_mark_all_offline(ChatClient *self);
static void on_peer_properties_changed(GDBusConnection *connection,
		const char *sender, const char *path, const char *interface,
		const char *signal, GVariant *parameters, gpointer user_data);

static void chat_client_set_state(ChatClient *self, ChatClientState state) {
	if (self->state == state) {
		return;
	}
	if (self->state == CHAT_CLIENT_STATE_ONLINE) {
		self->left_online_usec = g_get_monotonic_time();
	}
	self->state = state;

	if (state == CHAT_CLIENT_STATE_ONLINE) {
		chat_set_str(&self->online_name, self->username);
		chat_set_str(&self->online_coordinator, self->coordinator);
		chat_dbus_manager_call_list_peers(self->manager,
			self->proxy_cancellable, on_list_peers_ready, self);
	} else {
		chat_client_mark_all_offline(self);
	}

	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_STATE]);
}

/*
 * The roster is kept in order here, once, rather than by a sorting model in
 * the window (a GtkSortListModel over 10,000 peers blocked the main loop
 * for half a second): online peers first, each group in name order.
 *
 * Whole-roster work runs from an idle source in slices of a few
 * milliseconds, so that frames keep coming while thousands of peers load:
 * a ListPeers reply is read a slice at a time, then the roster is sorted
 * once and appended to the store in batches.  While that runs, presence
 * changes only mark the roster dirty, and it is sorted again at the end;
 * otherwise a peer whose presence changes is moved, alone, to its place.
 */
#define ROSTER_SLICE_USEC 4000
#define ROSTER_BATCH 1000

/*
 * GtkListView (before 4.12) keeps up to 200 row widgets alive, and building
 * and measuring them all for the first batch took one 75 ms frame; so an
 * empty roster gets its first 200 peers 25 at a time, one batch a frame.
 */
#define ROSTER_RAMP_ITEMS 200
#define ROSTER_RAMP_BATCH 25
#define ROSTER_FRAME_MSEC 16

static int chat_peer_compare(gconstpointer a, gconstpointer b,
		gpointer user_data) {
	ChatPeer *pa = (ChatPeer *) a, *pb = (ChatPeer *) b;
	gboolean online_a = chat_peer_get_online(pa);

	if (online_a != chat_peer_get_online(pb)) {
		return online_a ? -1 : 1;
	}
	return strcmp(chat_peer_get_name(pa), chat_peer_get_name(pb));
}

static int chat_peer_compare_ptr(gconstpointer a, gconstpointer b) {
	return chat_peer_compare(*(ChatPeer **) a, *(ChatPeer **) b, NULL);
}

static gboolean chat_client_roster_is_sorted(ChatClient *self) {
	GListModel *model = G_LIST_MODEL(self->peers);
	g_autoptr(ChatPeer) prev = NULL;

	for (guint i = 0; i < g_list_model_get_n_items(model); i++) {
		g_autoptr(ChatPeer) peer = g_list_model_get_item(model, i);

		if (prev && chat_peer_compare(prev, peer, NULL) > 0) {
			return FALSE;
		}
		g_set_object(&prev, peer);
	}
	return TRUE;
}

/*
 * Puts new peers in place and the roster back in order.  A few new peers
 * into an ordered roster are inserted one by one; otherwise every peer is
 * sorted once and appended in batches: into the empty store, or in place
 * of its items (the first batch replaces them all in one splice, so the
 * roster is never shown empty).
 */
static void chat_client_arrange_roster(ChatClient *self) {
	GListModel *model = G_LIST_MODEL(self->peers);
	guint n = g_list_model_get_n_items(model);

	self->roster_dirty = FALSE;
	if (chat_client_roster_is_sorted(self) &&
			self->unplaced->len <= ROSTER_BATCH &&
			(n > 0 || self->unplaced->len == 0)) {
		/* A few new peers: each goes straight to its place. */
		for (guint i = 0; i < self->unplaced->len; i++) {
			g_list_store_insert_sorted(self->peers,
				self->unplaced->pdata[i], chat_peer_compare,
				NULL);
		}
		g_ptr_array_set_size(self->unplaced, 0);
		return;
	}
	self->loading = g_ptr_array_new_full(n + self->unplaced->len,
		g_object_unref);
	for (guint i = 0; i < n; i++) {
		g_ptr_array_add(self->loading, g_list_model_get_item(model, i));
	}
	for (guint i = 0; i < self->unplaced->len; i++) {
		g_ptr_array_add(self->loading,
			g_object_ref(self->unplaced->pdata[i]));
	}
	g_ptr_array_set_size(self->unplaced, 0);
	g_ptr_array_sort(self->loading, chat_peer_compare_ptr);
	self->loading_next = 0;
	self->loading_ramp = n == 0;
}

static void chat_client_append_batch(ChatClient *self) {
	guint batch = self->loading_ramp &&
		self->loading_next < ROSTER_RAMP_ITEMS ?
		ROSTER_RAMP_BATCH : ROSTER_BATCH;
	guint n = MIN(batch, self->loading->len - self->loading_next);
	guint removed = self->loading_next == 0 ?
		g_list_model_get_n_items(G_LIST_MODEL(self->peers)) : 0;

	g_list_store_splice(self->peers,
		g_list_model_get_n_items(G_LIST_MODEL(self->peers)) - removed,
		removed, self->loading->pdata + self->loading_next, n);
	self->loading_next += n;
	if (self->loading_next == self->loading->len) {
		g_clear_pointer(&self->loading, g_ptr_array_unref);
	}
}

static gboolean extra_get_native(GVariant *extra, gboolean fallback) {
	gboolean native;

	if (extra && g_variant_lookup(extra, "native", "b", &native)) {
		return native;
	}
	return fallback;
}

static ChatPeer *chat_client_add_peer(ChatClient *self, const char *name) {
	ChatPeer *peer = chat_peer_new(name);

	g_hash_table_insert(self->peer_by_name, g_strdup(name), peer);
	g_ptr_array_add(self->unplaced, g_object_ref(peer));
	return peer;
}

/* Reads ListPeers entries until @deadline or the end of the reply. */
static void chat_client_read_listing(ChatClient *self, gint64 deadline) {
	const char *name, *endpoint;
	GHashTableIter iter;
	gpointer value;
	GVariant *extra;
	gboolean online;
	guint unread;

	for (guint i = 0;; i++) {
		ChatPeer *peer;

		if (i % 64 == 63 && g_get_monotonic_time() >= deadline) {
			return;
		}
		if (!g_variant_iter_next(&self->listing_iter, "(&s&sb@a{sv})",
				&name, &endpoint, &online, &extra)) {
			break;
		}
		peer = g_hash_table_lookup(self->peer_by_name, name);
		if (!peer) {
			peer = chat_client_add_peer(self, name);
		}
		chat_peer_set_endpoint(peer, endpoint);
		if (chat_peer_get_online(peer) != online) {
			chat_peer_set_online(peer, online);
			self->roster_dirty = TRUE;
		}
		chat_peer_set_native(peer, extra_get_native(extra, FALSE));
		/* A daemon that lists unread counts saves a call per row. */
		if (g_variant_lookup(extra, "unread", "u", &unread)) {
			chat_peer_set_unread(peer, unread);
			g_hash_table_add(self->unread_asked, g_strdup(name));
		}
		g_hash_table_add(self->listed,
			(gpointer) chat_peer_get_name(peer));
		g_variant_unref(extra);
	}

	/* Whoever the daemon no longer lists is offline now. */
	g_hash_table_iter_init(&iter, self->peer_by_name);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		if (chat_peer_get_online(value) && !g_hash_table_contains(
				self->listed, chat_peer_get_name(value))) {
			chat_peer_set_online(value, FALSE);
			self->roster_dirty = TRUE;
		}
	}
	g_clear_pointer(&self->listed, g_hash_table_unref);
	g_clear_pointer(&self->listing, g_variant_unref);
}

static gboolean on_roster_idle(gpointer user_data) {
	ChatClient *self = user_data;
	gint64 deadline = g_get_monotonic_time() + ROSTER_SLICE_USEC;

	/* One batch per slice: each frame has only a batch to lay out. */
	if (self->listing) {
		chat_client_read_listing(self, deadline);
		return G_SOURCE_CONTINUE;
	}
	if (!self->loading && (self->roster_dirty || self->unplaced->len)) {
		chat_client_arrange_roster(self);
	}
	if (self->loading) {
		chat_client_append_batch(self);
		if (self->loading && self->loading_ramp &&
				self->loading_next < ROSTER_RAMP_ITEMS) {
			self->roster_idle_id = g_timeout_add(ROSTER_FRAME_MSEC,
				on_roster_idle, self);
			return G_SOURCE_REMOVE;
		}
		return G_SOURCE_CONTINUE;
	}
	self->roster_idle_id = 0;
	return G_SOURCE_REMOVE;
}

static void chat_client_load_roster(ChatClient *self) {
	if (!self->roster_idle_id) {
		self->roster_idle_id = g_idle_add(on_roster_idle, self);
	}
}

/*
 * Sets a peer's presence and keeps the roster in order: by moving the one
 * peer, or, while the roster is loading, by sorting it again afterwards.
 */
static void chat_client_set_peer_online(ChatClient *self, ChatPeer *peer,
		gboolean online) {
	guint position;

	if (chat_peer_get_online(peer) == !!online) {
		return;
	}
	if (self->roster_idle_id ||
			!g_list_store_find(self->peers, peer, &position)) {
		chat_peer_set_online(peer, online);
		self->roster_dirty = TRUE;
		chat_client_load_roster(self);
		return;
	}
	g_object_ref(peer);
	g_list_store_remove(self->peers, position);
	chat_peer_set_online(peer, online);
	g_list_store_insert_sorted(self->peers, peer, chat_peer_compare,
		NULL);
	g_object_unref(peer);
}

static void chat_client_mark_all_offline(ChatClient *self) {
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init(&iter, self->peer_by_name);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		if (chat_peer_get_online(value)) {
			chat_peer_set_online(value, FALSE);
			self->roster_dirty = TRUE;
		}
	}
	if (self->roster_dirty) {
		chat_client_load_roster(self);
	}
}

/**
 * chat_client_ensure_peer() - Finds a peer by name, adding it when new.
 * @self: the client
 * @name: the peer's name
 *
 * A new peer is offline until the daemon lists it or reports it joined;
 * this lets a conversation open before the roster has arrived (the app
 * activated by a notification).  It reaches the roster model from the next
 * idle slice.
 *
 * Return: (transfer none): the peer.
 */
ChatPeer *chat_client_ensure_peer(ChatClient *self, const char *name) {
	ChatPeer *peer;

	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	g_return_val_if_fail(name, NULL);

	peer = g_hash_table_lookup(self->peer_by_name, name);
	if (!peer) {
		peer = chat_client_add_peer(self, name);
		chat_client_load_roster(self);
	}
	return peer;
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

	/* A newer reply replaces one still being read. */
	g_clear_pointer(&self->listing, g_variant_unref);
	g_clear_pointer(&self->listed, g_hash_table_unref);
	self->listing = g_steal_pointer(&list);
	g_variant_iter_init(&self->listing_iter, self->listing);
	self->listed = g_hash_table_new(g_str_hash, g_str_equal);
	chat_client_load_roster(self);
}

static void on_manager_peer_joined(ChatDbusManager *manager, const char *name,
		const char *endpoint, GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;
	ChatPeer *peer = chat_client_ensure_peer(self, name);

	chat_peer_set_endpoint(peer, endpoint);
	chat_peer_set_native(peer,
		extra_get_native(extra, chat_peer_get_native(peer)));
	chat_client_set_peer_online(self, peer, TRUE);
}

static void on_manager_peer_left(ChatDbusManager *manager, const char *name,
		GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;
	ChatPeer *peer = g_hash_table_lookup(self->peer_by_name, name);

	if (peer) {
		chat_client_set_peer_online(self, peer, FALSE);
	}
}

static void on_manager_message_received(ChatDbusManager *manager,
		const char *id, const char *peer, const char *text,
		guint64 timestamp_usec, GVariant *extra, gpointer user_data) {
	ChatClient *self = user_data;
	GListStore *conversation;
	g_autoptr(ChatMessage) message = NULL;
	gint64 time_usec = timestamp_usec > G_MAXINT64 ?
		g_get_real_time() : (gint64) timestamp_usec;

	(void) chat_client_ensure_peer(self, peer);
	if (g_hash_table_contains(self->messages, id)) {
		return;
	}
	conversation = G_LIST_STORE(chat_client_get_conversation(self, peer));
	message = chat_message_new(id, peer, CHAT_MESSAGE_DIRECTION_INCOMING,
		text, time_usec, CHAT_MESSAGE_STATE_DELIVERED);
	g_hash_table_insert(self->messages, g_strdup(id),
		g_object_ref(message));
	g_list_store_append(conversation, message);
}

/*
 * Applies a state p2pchatd reports for a message id; one whose SendMessage
 * reply is still outstanding gets it when the reply comes.
 */
static void chat_client_apply_state(ChatClient *self, const char *id,
		ChatMessageState state, const char *reason) {
	ChatMessage *message = g_hash_table_lookup(self->messages, id);
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
	chat_client_set_strings(self,
		chat_dbus_manager_get_username(self->manager),
		chat_dbus_manager_get_coordinator(self->manager));
	chat_client_set_state(self, chat_client_state_from_string(
		chat_dbus_manager_get_state(self->manager)));
}

static void on_manager_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_client_sync_properties(CHAT_CLIENT(user_data));
}

/* Forgets history pages in flight (their calls are being cancelled). */
static void chat_client_stop_history(ChatClient *self) {
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init(&iter, self->histories);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		((ChatHistory *) value)->loading = FALSE;
	}
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
	g_hash_table_remove_all(self->unread_asked);
	chat_client_stop_history(self);
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
			(self->state == CHAT_CLIENT_STATE_ONLINE ||
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
	self->peer_changed_id = g_dbus_connection_signal_subscribe(connection,
		P2PCHAT_BUS_NAME, "org.freedesktop.DBus.Properties",
		"PropertiesChanged", NULL, P2PCHAT_PEER_INTERFACE,
		G_DBUS_SIGNAL_FLAGS_NONE, on_peer_properties_changed, self,
		NULL);
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
	if (self->peer_changed_id) {
		g_dbus_connection_signal_unsubscribe(self->connection,
			self->peer_changed_id);
		self->peer_changed_id = 0;
	}
	chat_client_drop_manager(self);
	g_clear_handle_id(&self->roster_idle_id, g_source_remove);
	g_clear_pointer(&self->listing, g_variant_unref);
	g_clear_pointer(&self->listed, g_hash_table_unref);
	g_clear_pointer(&self->loading, g_ptr_array_unref);
	g_clear_pointer(&self->unplaced, g_ptr_array_unref);
	g_clear_object(&self->connection);
	g_clear_object(&self->cancellable);
	g_clear_pointer(&self->conversations, g_hash_table_unref);
	g_clear_pointer(&self->peer_by_name, g_hash_table_unref);
	g_clear_object(&self->peers);

	G_OBJECT_CLASS(chat_client_parent_class)->dispose(object);
}

static void chat_client_finalize(GObject *object) {
	ChatClient *self = CHAT_CLIENT(object);

	g_hash_table_unref(self->early_outcomes);
	g_free(self->resume_name);
	g_free(self->resume_coordinator);
	g_free(self->online_name);
	g_free(self->online_coordinator);
	g_free(self->config_username);
	g_free(self->config_coordinator);
	g_free(self->active_conversation);
	g_hash_table_unref(self->messages);
	g_hash_table_unref(self->histories);
	g_hash_table_unref(self->unread_asked);
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
		g_value_set_object(value, self->peers);
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
	self->peers = g_list_store_new(CHAT_TYPE_PEER);
	self->peer_by_name = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->unplaced = g_ptr_array_new_with_free_func(g_object_unref);
	self->conversations = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->histories = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, (GDestroyNotify) chat_history_free);
	self->unread_asked = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, NULL);
	self->messages = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->early_outcomes = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, (GDestroyNotify) chat_outcome_free);
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
	return G_LIST_MODEL(self->peers);
}

ChatPeer *chat_client_get_peer(ChatClient *self, const char *name) {
	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	g_return_val_if_fail(name, NULL);
	return g_hash_table_lookup(self->peer_by_name, name);
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
	GListStore *store;

	g_return_val_if_fail(CHAT_IS_CLIENT(self), NULL);
	g_return_val_if_fail(peer, NULL);

	store = g_hash_table_lookup(self->conversations, peer);
	if (!store) {
		store = g_list_store_new(CHAT_TYPE_MESSAGE);
		g_hash_table_insert(self->conversations, g_strdup(peer), store);
	}
	return G_LIST_MODEL(store);
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
		g_hash_table_replace(self->messages, g_strdup(id),
			g_object_ref(message));
		outcome = g_hash_table_lookup(self->early_outcomes, id);
		if (outcome) {
			chat_client_apply_state(self, id, outcome->state,
				outcome->reason);
		}
		g_task_return_pointer(task, g_object_ref(message),
			g_object_unref);
	}

	if (self->pending_sends == 0) {
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

static ChatMessage *chat_message_new_from_tuple(GVariant *tuple) {
	const char *id, *peer, *direction, *text, *state_name;
	guint64 sent_usec, received_usec;
	g_autoptr(GVariant) extra = NULL;
	ChatMessageState state;
	gboolean incoming;

	g_variant_get(tuple, "(&s&s&s&stt&s@a{sv})", &id, &peer, &direction,
		&text, &sent_usec, &received_usec, &state_name, &extra);
	incoming = g_str_equal(direction, "in");
	if (!chat_message_state_from_string(state_name, &state)) {
		state = incoming ? CHAT_MESSAGE_STATE_DELIVERED :
			CHAT_MESSAGE_STATE_QUEUED;
	}
	return chat_message_new(id, peer, incoming ?
		CHAT_MESSAGE_DIRECTION_INCOMING :
		CHAT_MESSAGE_DIRECTION_OUTGOING, text,
		(gint64) MIN(sent_usec, (guint64) G_MAXINT64), state);
}

/* A call about one peer: GetHistory, or Get of its Unread. */
typedef struct ChatPeerCall {
	ChatClient *client;	/* valid unless the call was cancelled */
	char *peer;
} ChatPeerCall;

static ChatPeerCall *chat_peer_call_new(ChatClient *client,
		const char *peer) {
	ChatPeerCall *call = g_new0(ChatPeerCall, 1);

	call->client = client;
	call->peer = g_strdup(peer);
	return call;
}

static void chat_peer_call_free(ChatPeerCall *call) {
	g_free(call->peer);
	g_free(call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ChatPeerCall, chat_peer_call_free)

static void on_get_history_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(ChatPeerCall) call = user_data;
	g_autoptr(GVariant) page = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) added = NULL;
	ChatHistory *history;
	ChatClient *self;
	gboolean first = TRUE;
	GVariantIter iter;
	GVariant *tuple;
	gsize n;

	if (!chat_dbus_manager_call_get_history_finish(
			CHAT_DBUS_MANAGER(source), &page, result, &error)) {
		if (chat_client_is_cancelled(error)) {
			return;
		}
		history = g_hash_table_lookup(call->client->histories,
			call->peer);
		history->loading = FALSE;
		/* A daemon older than GetHistory has no history to show. */
		if (g_error_matches(error, G_DBUS_ERROR,
				G_DBUS_ERROR_UNKNOWN_METHOD)) {
			history->complete = TRUE;
			return;
		}
		g_warning("Failed to load the history with '%s': %s",
			call->peer, error->message);
		return;
	}
	self = call->client;
	history = g_hash_table_lookup(self->histories, call->peer);
	history->loading = FALSE;

	/* Oldest first; messages already shown (live ones) are skipped. */
	n = g_variant_n_children(page);
	added = g_ptr_array_new_full(n, g_object_unref);
	g_variant_iter_init(&iter, page);
	while ((tuple = g_variant_iter_next_value(&iter))) {
		g_autoptr(ChatMessage) message =
			chat_message_new_from_tuple(tuple);
		const char *id = chat_message_get_id(message);

		if (first) {
			chat_set_str(&history->oldest_id, id);
			first = FALSE;
		}
		if (!g_hash_table_contains(self->messages, id)) {
			g_hash_table_insert(self->messages, g_strdup(id),
				g_object_ref(message));
			g_ptr_array_add(added, g_steal_pointer(&message));
		}
		g_variant_unref(tuple);
	}
	history->complete = n < CHAT_HISTORY_PAGE;
	g_list_store_splice(G_LIST_STORE(chat_client_get_conversation(self,
		call->peer)), 0, 0, added->pdata, added->len);
}

/**
 * chat_client_load_history() - Loads a page of a conversation's history.
 * @self: the client
 * @peer: the peer's name
 * @older: FALSE for the newest page (only once: later calls do nothing),
 *         TRUE for the page before the oldest loaded one
 *
 * The messages are put before those of the conversation model.  Nothing
 * happens while a page is loading, when everything is loaded, or without
 * a daemon.
 */
void chat_client_load_history(ChatClient *self, const char *peer,
		gboolean older) {
	ChatHistory *history;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(peer);

	history = g_hash_table_lookup(self->histories, peer);
	if (!history) {
		history = g_new0(ChatHistory, 1);
		g_hash_table_insert(self->histories, g_strdup(peer), history);
	}
	if (!self->manager || history->loading || history->complete ||
			(!older && history->oldest_id) ||
			(older && !history->oldest_id)) {
		return;
	}
	history->loading = TRUE;
	chat_dbus_manager_call_get_history(self->manager, peer,
		CHAT_HISTORY_PAGE, older ? history->oldest_id : "",
		self->proxy_cancellable, on_get_history_ready,
		chat_peer_call_new(self, peer));
}

/* The object path of a peer, as sd_bus_path_encode() makes it. */
static char *chat_peer_path(const char *name) {
	GString *path = g_string_new(P2PCHAT_PEER_PATH_PREFIX "/");

	if (!*name) {
		g_string_append_c(path, '_');
	}
	for (const char *c = name; *c; c++) {
		if (g_ascii_isalpha(*c) || (c > name && g_ascii_isdigit(*c))) {
			g_string_append_c(path, *c);
		} else {
			g_string_append_printf(path, "_%02x", (guchar) *c);
		}
	}
	return g_string_free(path, FALSE);
}

/* The peer name of an object path; NULL when it is not a peer's. */
static char *chat_peer_name_from_path(const char *path) {
	GString *name;
	const char *c;

	if (!g_str_has_prefix(path, P2PCHAT_PEER_PATH_PREFIX "/")) {
		return NULL;
	}
	c = path + strlen(P2PCHAT_PEER_PATH_PREFIX "/");
	if (g_str_equal(c, "_")) {
		return g_strdup("");
	}
	name = g_string_new(NULL);
	for (; *c; c++) {
		int hi, lo;

		if (*c != '_') {
			g_string_append_c(name, *c);
			continue;
		}
		hi = g_ascii_xdigit_value(c[1]);
		lo = hi < 0 ? -1 : g_ascii_xdigit_value(c[2]);
		if (lo < 0) {
			g_string_free(name, TRUE);
			return NULL;
		}
		g_string_append_c(name, (char) (hi << 4 | lo));
		c += 2;
	}
	return g_string_free(name, FALSE);
}

static void on_peer_properties_changed(GDBusConnection *connection,
		const char *sender, const char *path, const char *interface,
		const char *signal, GVariant *parameters, gpointer user_data) {
	ChatClient *self = user_data;
	g_autoptr(GVariant) changed = NULL;
	g_autofree char *name = NULL;
	ChatPeer *peer;
	guint unread;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)"))) {
		return;
	}
	changed = g_variant_get_child_value(parameters, 1);
	name = chat_peer_name_from_path(path);
	peer = name ? g_hash_table_lookup(self->peer_by_name, name) : NULL;
	if (peer && g_variant_lookup(changed, "Unread", "u", &unread)) {
		chat_peer_set_unread(peer, unread);
	}
}

static void on_get_unread_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(ChatPeerCall) call = user_data;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) value = NULL;
	g_autoptr(GError) error = NULL;
	ChatPeer *peer;

	reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source),
		result, &error);
	if (reply) {
		g_variant_get(reply, "(v)", &value);
		peer = g_hash_table_lookup(call->client->peer_by_name,
			call->peer);
		if (peer && g_variant_is_of_type(value, G_VARIANT_TYPE_UINT32)) {
			chat_peer_set_unread(peer, g_variant_get_uint32(value));
		}
	} else if (!chat_client_is_cancelled(error)) {
		g_debug("No unread count for '%s': %s", call->peer,
			error->message);
	}
}

/**
 * chat_client_fetch_unread() - Asks p2pchatd for a peer's unread count.
 * @self: the client
 * @peer: the peer
 *
 * Once per peer and daemon: the roster asks for the rows it shows, so
 * 10,000 peers cost nothing until they are scrolled to; afterwards
 * PropertiesChanged keeps the count current.
 */
void chat_client_fetch_unread(ChatClient *self, ChatPeer *peer) {
	const char *name;
	g_autofree char *path = NULL;

	g_return_if_fail(CHAT_IS_CLIENT(self));
	g_return_if_fail(CHAT_IS_PEER(peer));

	name = chat_peer_get_name(peer);
	if (!self->manager || g_hash_table_contains(self->unread_asked, name)) {
		return;
	}
	g_hash_table_add(self->unread_asked, g_strdup(name));
	path = chat_peer_path(name);
	g_dbus_connection_call(self->connection, P2PCHAT_BUS_NAME, path,
		"org.freedesktop.DBus.Properties", "Get",
		g_variant_new("(ss)", P2PCHAT_PEER_INTERFACE, "Unread"),
		G_VARIANT_TYPE("(v)"), G_DBUS_CALL_FLAGS_NO_AUTO_START, -1,
		self->proxy_cancellable, on_get_unread_ready,
		chat_peer_call_new(self, name));
}
