/* SPDX-License-Identifier: MIT */
/*
 * ChatConversationStore: the messages the app knows, per peer.
 *
 * One GListStore of ChatMessage per peer, created on first use, oldest
 * first: GetHistory fills it page by page backwards (put before what is
 * there), and ChatClient appends what the daemon's signals and the app's
 * sends bring.  Every message with an id is indexed, so a state change
 * finds it and no message is shown twice.
 */

#include "frontends/gtk/chat-conversation-store.h"
#include "frontends/gtk/chat-util.h"

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

struct _ChatConversationStore {
	GObject parent_instance;

	GHashTable *conversations;	/* name → GListStore of ChatMessage */
	GHashTable *messages;		/* id → every ChatMessage with an id */
	GHashTable *histories;		/* peer → ChatHistory */
};

G_DEFINE_FINAL_TYPE(ChatConversationStore, chat_conversation_store,
	G_TYPE_OBJECT)

/* A message tuple (ssssttsa{sv}) of GetHistory or SearchHistory. */
ChatMessage *chat_message_new_from_tuple(GVariant *tuple) {
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

/* A GetHistory call; it holds the store until the reply. */
typedef struct ChatHistoryCall {
	ChatConversationStore *store;
	char *peer;
} ChatHistoryCall;

static void chat_history_call_free(ChatHistoryCall *call) {
	g_object_unref(call->store);
	g_free(call->peer);
	g_free(call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ChatHistoryCall, chat_history_call_free)

static void on_get_history_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(ChatHistoryCall) call = user_data;
	g_autoptr(GVariant) page = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) added = NULL;
	ChatHistory *history;
	ChatConversationStore *self;
	gboolean first = TRUE;
	GVariantIter iter;
	GVariant *tuple;
	gsize n;

	if (!chat_dbus_manager_call_get_history_finish(
			CHAT_DBUS_MANAGER(source), &page, result, &error)) {
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			return;
		}
		history = g_hash_table_lookup(call->store->histories,
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
	self = call->store;
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
	g_list_store_splice(G_LIST_STORE(chat_conversation_store_get(self,
		call->peer)), 0, 0, added->pdata, added->len);
}

/**
 * chat_conversation_store_load_history() - Loads a page of a
 * conversation's history.
 * @self: the store
 * @manager: the daemon's proxy (none: nothing is loaded)
 * @peer: the peer's name
 * @older: FALSE for the newest page (only once: later calls do nothing),
 *         TRUE for the page before the oldest loaded one
 * @cancellable: cancelled when @manager goes
 *
 * The messages are put before those of the conversation model.  Nothing
 * happens while a page is loading or when everything is loaded.
 */
void chat_conversation_store_load_history(ChatConversationStore *self,
		ChatDbusManager *manager, const char *peer, gboolean older,
		GCancellable *cancellable) {
	ChatHistoryCall *call;
	ChatHistory *history;

	g_return_if_fail(CHAT_IS_CONVERSATION_STORE(self));
	g_return_if_fail(peer);

	history = g_hash_table_lookup(self->histories, peer);
	if (!history) {
		history = g_new0(ChatHistory, 1);
		g_hash_table_insert(self->histories, g_strdup(peer), history);
	}
	if (!manager || history->loading || history->complete ||
			(!older && history->oldest_id) ||
			(older && !history->oldest_id)) {
		return;
	}
	history->loading = TRUE;
	call = g_new0(ChatHistoryCall, 1);
	call->store = g_object_ref(self);
	call->peer = g_strdup(peer);
	chat_dbus_manager_call_get_history(manager, peer, CHAT_HISTORY_PAGE,
		older ? history->oldest_id : "", cancellable,
		on_get_history_ready, call);
}

/*
 * Forgets history pages in flight (their calls are being cancelled: the
 * daemon went away); they are asked again.
 */
void chat_conversation_store_stop_history(ChatConversationStore *self) {
	GHashTableIter iter;
	gpointer value;

	g_return_if_fail(CHAT_IS_CONVERSATION_STORE(self));

	g_hash_table_iter_init(&iter, self->histories);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		((ChatHistory *) value)->loading = FALSE;
	}
}

/**
 * chat_conversation_store_get() - The messages exchanged with a peer.
 * @self: the store
 * @peer: the peer's name
 *
 * Return: (transfer none): a GListModel of ChatMessage, oldest first, that
 * lives as long as the store and grows as messages come and go.
 */
GListModel *chat_conversation_store_get(ChatConversationStore *self,
		const char *peer) {
	GListStore *store;

	g_return_val_if_fail(CHAT_IS_CONVERSATION_STORE(self), NULL);
	g_return_val_if_fail(peer, NULL);

	store = g_hash_table_lookup(self->conversations, peer);
	if (!store) {
		store = g_list_store_new(CHAT_TYPE_MESSAGE);
		g_hash_table_insert(self->conversations, g_strdup(peer), store);
	}
	return G_LIST_MODEL(store);
}

/* The message with an id; NULL when none is known. */
ChatMessage *chat_conversation_store_lookup(ChatConversationStore *self,
		const char *id) {
	g_return_val_if_fail(CHAT_IS_CONVERSATION_STORE(self), NULL);
	g_return_val_if_fail(id, NULL);
	return g_hash_table_lookup(self->messages, id);
}

/* Indexes a message by its id (an outgoing one once the daemon gave it). */
void chat_conversation_store_index(ChatConversationStore *self,
		ChatMessage *message) {
	const char *id;

	g_return_if_fail(CHAT_IS_CONVERSATION_STORE(self));
	g_return_if_fail(CHAT_IS_MESSAGE(message));

	id = chat_message_get_id(message);
	if (*id) {
		g_hash_table_replace(self->messages, g_strdup(id),
			g_object_ref(message));
	}
}

/*
 * Appends a message to its peer's conversation, indexed if it has an id;
 * callers check chat_conversation_store_lookup() first.
 */
void chat_conversation_store_append(ChatConversationStore *self,
		ChatMessage *message) {
	g_return_if_fail(CHAT_IS_CONVERSATION_STORE(self));
	g_return_if_fail(CHAT_IS_MESSAGE(message));

	chat_conversation_store_index(self, message);
	g_list_store_append(G_LIST_STORE(chat_conversation_store_get(self,
		chat_message_get_peer(message))), message);
}

static void chat_conversation_store_finalize(GObject *object) {
	ChatConversationStore *self = CHAT_CONVERSATION_STORE(object);

	g_hash_table_unref(self->conversations);
	g_hash_table_unref(self->messages);
	g_hash_table_unref(self->histories);

	G_OBJECT_CLASS(chat_conversation_store_parent_class)->finalize(object);
}

static void chat_conversation_store_class_init(
		ChatConversationStoreClass *klass) {
	G_OBJECT_CLASS(klass)->finalize = chat_conversation_store_finalize;
}

static void chat_conversation_store_init(ChatConversationStore *self) {
	self->conversations = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->messages = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, g_object_unref);
	self->histories = g_hash_table_new_full(g_str_hash, g_str_equal,
		g_free, (GDestroyNotify) chat_history_free);
}

ChatConversationStore *chat_conversation_store_new(void) {
	return g_object_new(CHAT_TYPE_CONVERSATION_STORE, NULL);
}
