/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

#include "frontends/gtk/chat-message.h"
#include "frontends/gtk/chat-peer.h"

G_BEGIN_DECLS

/*
 * The connection as the app sees it: NO_DAEMON while org.p2pchat.chat1 has
 * no owner (activation failed or the daemon is restarting), otherwise the
 * daemon's own Manager.State; its "connecting" after "online" is
 * RECONNECTING: still logged in, the coordinator lost, messages to peers
 * still flow.
 */
typedef enum {
	CHAT_CLIENT_STATE_NO_DAEMON,
	CHAT_CLIENT_STATE_OFFLINE,
	CHAT_CLIENT_STATE_CONNECTING,
	CHAT_CLIENT_STATE_ONLINE,
	CHAT_CLIENT_STATE_RECONNECTING,
} ChatClientState;

/* The named errors of org.p2pchat.chat1.Error, plus NO_DAEMON. */
typedef enum {
	CHAT_CLIENT_ERROR_NO_DAEMON,
	CHAT_CLIENT_ERROR_NOT_LOGGED_IN,
	CHAT_CLIENT_ERROR_ALREADY_LOGGED_IN,
	CHAT_CLIENT_ERROR_NAME_TAKEN,
	CHAT_CLIENT_ERROR_INVALID_NAME,
	CHAT_CLIENT_ERROR_COORDINATOR_UNREACHABLE,
	CHAT_CLIENT_ERROR_UNKNOWN_PEER,
	CHAT_CLIENT_ERROR_MESSAGE_TOO_LONG,
	CHAT_CLIENT_ERROR_INVALID_MESSAGE,
} ChatClientError;

#define CHAT_CLIENT_ERROR (chat_client_error_quark())
GQuark chat_client_error_quark(void);

#define CHAT_TYPE_CLIENT (chat_client_get_type())
G_DECLARE_FINAL_TYPE(ChatClient, chat_client, CHAT, CLIENT, GObject)

ChatClient *chat_client_new(void);

ChatClientState chat_client_get_state(ChatClient *self);
gboolean chat_client_is_logged_in(ChatClient *self);
const char *chat_client_get_username(ChatClient *self);
const char *chat_client_get_coordinator(ChatClient *self);
GListModel *chat_client_get_peers(ChatClient *self);
ChatPeer *chat_client_get_peer(ChatClient *self, const char *name);
ChatPeer *chat_client_ensure_peer(ChatClient *self, const char *name);
GListModel *chat_client_get_conversation(ChatClient *self, const char *peer);

void chat_client_login_async(ChatClient *self, const char *name,
		const char *coordinator, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data);
gboolean chat_client_login_finish(ChatClient *self, GAsyncResult *result,
		GError **error);

void chat_client_logout_async(ChatClient *self, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data);
gboolean chat_client_logout_finish(ChatClient *self, GAsyncResult *result,
		GError **error);

void chat_client_send_message_async(ChatClient *self, const char *peer,
		const char *text, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data);
ChatMessage *chat_client_send_message_finish(ChatClient *self,
		GAsyncResult *result, GError **error);

void chat_client_get_config_async(ChatClient *self, const char *key,
		GCancellable *cancellable, GAsyncReadyCallback callback,
		gpointer user_data);
char *chat_client_get_config_finish(ChatClient *self, GAsyncResult *result,
		GError **error);
void chat_client_set_config_async(ChatClient *self, const char *key,
		const char *value, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data);
gboolean chat_client_set_config_finish(ChatClient *self, GAsyncResult *result,
		GError **error);

void chat_client_search_history_async(ChatClient *self, const char *query,
		guint limit, GCancellable *cancellable,
		GAsyncReadyCallback callback, gpointer user_data);
GListModel *chat_client_search_history_finish(ChatClient *self,
		GAsyncResult *result, GError **error);

const char *chat_client_get_login_name(ChatClient *self);
const char *chat_client_get_login_coordinator(ChatClient *self);
void chat_client_load_history(ChatClient *self, const char *peer,
		gboolean older);
void chat_client_set_active_conversation(ChatClient *self, const char *peer);
void chat_client_fetch_unread(ChatClient *self, ChatPeer *peer);

const char *chat_client_state_to_string(ChatClientState state);

G_END_DECLS
