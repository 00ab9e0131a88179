/* SPDX-License-Identifier: MIT */
/*
 * ChatRoster: the roster model the window shows.
 *
 * A GListStore of ChatPeer: the conversations, most recent first (offline
 * peers with history too), then the peers without messages, online first
 * and by name; filled from idle slices so 10,000 peers never stall a frame.
 * Peers are never removed, only marked offline (an open conversation keeps
 * its row).  ChatClient feeds it: a ListConversations reply and the
 * message signals (each peer's last message), a ListPeers reply, PeerJoined
 * and PeerLeft, and marks everyone offline when the daemon goes away or
 * logs out.  No D-Bus here.
 */

#include <string.h>

#include "frontends/gtk/chat-roster.h"

struct _ChatRoster {
	GObject parent_instance;

	GListStore *peers;
	GHashTable *peer_by_name;	/* name → ChatPeer (a reference) */

	/* Loading the roster from idle slices: see chat_roster_load(). */
	guint roster_idle_id;
	GVariant *listing;		/* ListPeers reply still being read */
	GVariantIter listing_iter;
	GHashTable *listed;		/* names the reply has listed so far */
	GPtrArray *unplaced;		/* peers not in the store yet */
	GPtrArray *loading;		/* the sorted roster being appended */
	guint loading_next;
	gboolean loading_ramp;		/* into an empty store: see above */
	gboolean roster_dirty;		/* presence changed during a load */
};

G_DEFINE_FINAL_TYPE(ChatRoster, chat_roster, G_TYPE_OBJECT)

/*
 * The roster is kept in order here, once, rather than by a sorting model in
 * the window (a GtkSortListModel over 10,000 peers blocked the main loop
 * for half a second): conversations first, newest last message first;
 * then online peers, then offline ones, each group in name order.
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
	gint64 last_a = chat_peer_get_last_usec(pa);
	gint64 last_b = chat_peer_get_last_usec(pb);

	if (last_a != last_b) {
		return last_a > last_b ? -1 : 1;
	}

	if (online_a != chat_peer_get_online(pb)) {
		return online_a ? -1 : 1;
	}
	return strcmp(chat_peer_get_name(pa), chat_peer_get_name(pb));
}

static int chat_peer_compare_ptr(gconstpointer a, gconstpointer b) {
	return chat_peer_compare(*(ChatPeer **) a, *(ChatPeer **) b, NULL);
}

static gboolean chat_roster_is_sorted(ChatRoster *self) {
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
static void chat_roster_arrange(ChatRoster *self) {
	GListModel *model = G_LIST_MODEL(self->peers);
	guint n = g_list_model_get_n_items(model);

	self->roster_dirty = FALSE;
	if (chat_roster_is_sorted(self) &&
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

static void chat_roster_append_batch(ChatRoster *self) {
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

static ChatPeer *chat_roster_add_peer(ChatRoster *self, const char *name) {
	ChatPeer *peer = chat_peer_new(name);

	g_hash_table_insert(self->peer_by_name, g_strdup(name), peer);
	g_ptr_array_add(self->unplaced, g_object_ref(peer));
	return peer;
}

/* Reads ListPeers entries until @deadline or the end of the reply. */
static void chat_roster_read_listing(ChatRoster *self, gint64 deadline) {
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
			peer = chat_roster_add_peer(self, name);
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
			chat_peer_set_unread_known(peer, TRUE);
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
	ChatRoster *self = user_data;
	gint64 deadline = g_get_monotonic_time() + ROSTER_SLICE_USEC;

	/* One batch per slice: each frame has only a batch to lay out. */
	if (self->listing) {
		chat_roster_read_listing(self, deadline);
		return G_SOURCE_CONTINUE;
	}
	if (!self->loading && (self->roster_dirty || self->unplaced->len)) {
		chat_roster_arrange(self);
	}
	if (self->loading) {
		chat_roster_append_batch(self);
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

static void chat_roster_load(ChatRoster *self) {
	if (!self->roster_idle_id) {
		self->roster_idle_id = g_idle_add(on_roster_idle, self);
	}
}

/*
 * Keeps the roster in order after a change of a peer's sort key: moves the
 * one peer, or, while the roster is loading, sorts it again afterwards.
 * @change applies the change to the peer.
 */
typedef void (*ChatPeerChange)(ChatPeer *peer, gpointer data);

static void chat_roster_reposition(ChatRoster *self, ChatPeer *peer,
		ChatPeerChange change, gpointer data) {
	guint position;

	if (self->roster_idle_id ||
			!g_list_store_find(self->peers, peer, &position)) {
		change(peer, data);
		self->roster_dirty = TRUE;
		chat_roster_load(self);
		return;
	}
	g_object_ref(peer);
	g_list_store_remove(self->peers, position);
	change(peer, data);
	g_list_store_insert_sorted(self->peers, peer, chat_peer_compare,
		NULL);
	g_object_unref(peer);
}

static void change_online(ChatPeer *peer, gpointer data) {
	chat_peer_set_online(peer, GPOINTER_TO_INT(data));
}

static void chat_roster_set_online(ChatRoster *self, ChatPeer *peer,
		gboolean online) {
	if (chat_peer_get_online(peer) == !!online) {
		return;
	}
	chat_roster_reposition(self, peer, change_online,
		GINT_TO_POINTER(!!online));
}

typedef struct ChatLastMessage {
	const char *text;
	gint64 usec;
	gboolean outgoing;
} ChatLastMessage;

static void change_last_message(ChatPeer *peer, gpointer data) {
	ChatLastMessage *last = data;

	chat_peer_set_last_message(peer, last->text, last->usec,
		last->outgoing);
}

/**
 * chat_roster_note_message() - A message in a conversation, new or listed.
 * @self: the roster
 * @name: the peer
 * @text: the message's text
 * @usec: its sent time
 * @outgoing: whether we sent it
 *
 * The peer (added when new) shows it as its last message unless it has a
 * newer one, and moves to its place among the conversations.
 */
void chat_roster_note_message(ChatRoster *self, const char *name,
		const char *text, gint64 usec, gboolean outgoing) {
	ChatLastMessage last = { text, MAX(usec, 1), outgoing };
	ChatPeer *peer;

	g_return_if_fail(CHAT_IS_ROSTER(self));
	g_return_if_fail(name);

	peer = chat_roster_ensure(self, name);
	if (last.usec < chat_peer_get_last_usec(peer)) {
		return;
	}
	if (last.usec == chat_peer_get_last_usec(peer)) {
		/* Same place: only the text may change. */
		change_last_message(peer, &last);
		return;
	}
	chat_roster_reposition(self, peer, change_last_message, &last);
}

/**
 * chat_roster_take_conversations() - Reads a ListConversations reply.
 * @self: the roster
 * @listing: the reply's a(ssssta{sv})
 *
 * Sets every listed peer's last message, unread count and presence.  One
 * pass over at most 1000 conversations plus the roster; the order is
 * restored from the idle slices.
 */
void chat_roster_take_conversations(ChatRoster *self, GVariant *listing) {
	const char *name, *id, *text, *direction;
	GVariantIter iter;
	GVariant *extra;
	gboolean online;
	guint64 usec;
	guint unread;

	g_return_if_fail(CHAT_IS_ROSTER(self));

	g_variant_iter_init(&iter, listing);
	while (g_variant_iter_next(&iter, "(&s&s&s&st@a{sv})", &name, &id,
			&text, &direction, &usec, &extra)) {
		ChatPeer *peer = chat_roster_ensure(self, name);

		if (*id && usec <= G_MAXINT64 &&
				(gint64) usec >= chat_peer_get_last_usec(peer)) {
			chat_peer_set_last_message(peer, text,
				MAX((gint64) usec, 1),
				g_str_equal(direction, "out"));
			self->roster_dirty = TRUE;
		}
		if (g_variant_lookup(extra, "online", "b", &online) &&
				chat_peer_get_online(peer) != online) {
			chat_peer_set_online(peer, online);
			self->roster_dirty = TRUE;
		}
		chat_peer_set_native(peer, extra_get_native(extra,
			chat_peer_get_native(peer)));
		if (g_variant_lookup(extra, "unread", "u", &unread)) {
			chat_peer_set_unread(peer, unread);
			chat_peer_set_unread_known(peer, TRUE);
		}
		g_variant_unref(extra);
	}
	if (self->roster_dirty) {
		chat_roster_load(self);
	}
}

/* Marks every peer offline: the daemon went away, or we logged out. */
void chat_roster_mark_all_offline(ChatRoster *self) {
	GHashTableIter iter;
	gpointer value;

	g_return_if_fail(CHAT_IS_ROSTER(self));

	g_hash_table_iter_init(&iter, self->peer_by_name);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		if (chat_peer_get_online(value)) {
			chat_peer_set_online(value, FALSE);
			self->roster_dirty = TRUE;
		}
	}
	if (self->roster_dirty) {
		chat_roster_load(self);
	}
}

/**
 * chat_roster_ensure() - Finds a peer by name, adding it when new.
 * @self: the roster
 * @name: the peer's name
 *
 * A new peer is offline until the daemon lists it or reports it joined;
 * this lets a conversation open before the roster has arrived (the app
 * activated by a notification).  It reaches the model from the next idle
 * slice.
 *
 * Return: (transfer none): the peer.
 */
ChatPeer *chat_roster_ensure(ChatRoster *self, const char *name) {
	ChatPeer *peer;

	g_return_val_if_fail(CHAT_IS_ROSTER(self), NULL);
	g_return_val_if_fail(name, NULL);

	peer = g_hash_table_lookup(self->peer_by_name, name);
	if (!peer) {
		peer = chat_roster_add_peer(self, name);
		chat_roster_load(self);
	}
	return peer;
}

ChatPeer *chat_roster_lookup(ChatRoster *self, const char *name) {
	g_return_val_if_fail(CHAT_IS_ROSTER(self), NULL);
	g_return_val_if_fail(name, NULL);
	return g_hash_table_lookup(self->peer_by_name, name);
}

GListModel *chat_roster_get_model(ChatRoster *self) {
	g_return_val_if_fail(CHAT_IS_ROSTER(self), NULL);
	return G_LIST_MODEL(self->peers);
}

/**
 * chat_roster_take_listing() - Reads a ListPeers reply.
 * @self: the roster
 * @listing: (transfer full): the reply's a(ssba{sv})
 *
 * Read from idle slices; a newer reply replaces one still being read.
 * Whoever it does not list is offline.
 */
void chat_roster_take_listing(ChatRoster *self, GVariant *listing) {
	g_return_if_fail(CHAT_IS_ROSTER(self));

	g_clear_pointer(&self->listing, g_variant_unref);
	g_clear_pointer(&self->listed, g_hash_table_unref);
	self->listing = listing;
	g_variant_iter_init(&self->listing_iter, self->listing);
	self->listed = g_hash_table_new(g_str_hash, g_str_equal);
	chat_roster_load(self);
}

void chat_roster_peer_joined(ChatRoster *self, const char *name,
		const char *endpoint, GVariant *extra) {
	ChatPeer *peer;

	g_return_if_fail(CHAT_IS_ROSTER(self));

	peer = chat_roster_ensure(self, name);
	chat_peer_set_endpoint(peer, endpoint);
	chat_peer_set_native(peer,
		extra_get_native(extra, chat_peer_get_native(peer)));
	chat_roster_set_online(self, peer, TRUE);
}

void chat_roster_peer_left(ChatRoster *self, const char *name) {
	ChatPeer *peer;

	g_return_if_fail(CHAT_IS_ROSTER(self));

	peer = g_hash_table_lookup(self->peer_by_name, name);
	if (peer) {
		chat_roster_set_online(self, peer, FALSE);
	}
}

/* A new daemon: every unread count is asked for again. */
void chat_roster_forget_unread(ChatRoster *self) {
	GHashTableIter iter;
	gpointer value;

	g_return_if_fail(CHAT_IS_ROSTER(self));

	g_hash_table_iter_init(&iter, self->peer_by_name);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		chat_peer_set_unread_known(value, FALSE);
	}
}

static void chat_roster_dispose(GObject *object) {
	ChatRoster *self = CHAT_ROSTER(object);

	g_clear_handle_id(&self->roster_idle_id, g_source_remove);
	g_clear_pointer(&self->listing, g_variant_unref);
	g_clear_pointer(&self->listed, g_hash_table_unref);
	g_clear_pointer(&self->loading, g_ptr_array_unref);
	g_clear_pointer(&self->unplaced, g_ptr_array_unref);
	g_clear_pointer(&self->peer_by_name, g_hash_table_unref);
	g_clear_object(&self->peers);

	G_OBJECT_CLASS(chat_roster_parent_class)->dispose(object);
}

static void chat_roster_class_init(ChatRosterClass *klass) {
	G_OBJECT_CLASS(klass)->dispose = chat_roster_dispose;
}

static void chat_roster_init(ChatRoster *self) {
	self->peers = g_list_store_new(CHAT_TYPE_PEER);
	self->peer_by_name = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->unplaced = g_ptr_array_new_with_free_func(g_object_unref);
}

ChatRoster *chat_roster_new(void) {
	return g_object_new(CHAT_TYPE_ROSTER, NULL);
}
