/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

#include "frontends/gtk/chat-peer.h"

G_BEGIN_DECLS

#define CHAT_TYPE_ROSTER (chat_roster_get_type())
G_DECLARE_FINAL_TYPE(ChatRoster, chat_roster, CHAT, ROSTER, GObject)

ChatRoster *chat_roster_new(void);

GListModel *chat_roster_get_model(ChatRoster *self);
ChatPeer *chat_roster_lookup(ChatRoster *self, const char *name);
ChatPeer *chat_roster_ensure(ChatRoster *self, const char *name);

void chat_roster_take_listing(ChatRoster *self, GVariant *listing);
void chat_roster_peer_joined(ChatRoster *self, const char *name,
		const char *endpoint, GVariant *extra);
void chat_roster_peer_left(ChatRoster *self, const char *name);
void chat_roster_take_conversations(ChatRoster *self, GVariant *listing);
void chat_roster_note_message(ChatRoster *self, const char *name,
		const char *text, gint64 usec, gboolean outgoing);
void chat_roster_mark_all_offline(ChatRoster *self);
void chat_roster_forget_unread(ChatRoster *self);

G_END_DECLS
