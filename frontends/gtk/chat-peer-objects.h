/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

#include "frontends/gtk/chat-roster.h"

G_BEGIN_DECLS

#define CHAT_TYPE_PEER_OBJECTS (chat_peer_objects_get_type())
G_DECLARE_FINAL_TYPE(ChatPeerObjects, chat_peer_objects, CHAT, PEER_OBJECTS,
	GObject)

ChatPeerObjects *chat_peer_objects_new(GDBusConnection *connection,
		ChatRoster *roster);
void chat_peer_objects_fetch_unread(ChatPeerObjects *self, ChatPeer *peer,
		GCancellable *cancellable);

G_END_DECLS
