/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

#include "frontends/gtk/chat-dbus.h"
#include "frontends/gtk/chat-message.h"

G_BEGIN_DECLS

#define CHAT_TYPE_CONVERSATION_STORE (chat_conversation_store_get_type())
G_DECLARE_FINAL_TYPE(ChatConversationStore, chat_conversation_store, CHAT,
	CONVERSATION_STORE, GObject)

ChatConversationStore *chat_conversation_store_new(void);

GListModel *chat_conversation_store_get(ChatConversationStore *self,
		const char *peer);
ChatMessage *chat_conversation_store_lookup(ChatConversationStore *self,
		const char *id);
ChatMessage *chat_message_new_from_tuple(GVariant *tuple);

void chat_conversation_store_append(ChatConversationStore *self,
		ChatMessage *message);
void chat_conversation_store_index(ChatConversationStore *self,
		ChatMessage *message);

void chat_conversation_store_load_history(ChatConversationStore *self,
		ChatDbusManager *manager, const char *peer, gboolean older,
		GCancellable *cancellable);
void chat_conversation_store_stop_history(ChatConversationStore *self);

G_END_DECLS
