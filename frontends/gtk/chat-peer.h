/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define CHAT_TYPE_PEER (chat_peer_get_type())
G_DECLARE_FINAL_TYPE(ChatPeer, chat_peer, CHAT, PEER, GObject)

ChatPeer *chat_peer_new(const char *name);

const char *chat_peer_get_name(ChatPeer *self);
const char *chat_peer_get_endpoint(ChatPeer *self);
gboolean chat_peer_get_online(ChatPeer *self);
gboolean chat_peer_get_native(ChatPeer *self);

void chat_peer_set_endpoint(ChatPeer *self, const char *endpoint);
void chat_peer_set_online(ChatPeer *self, gboolean online);
void chat_peer_set_native(ChatPeer *self, gboolean native);
guint chat_peer_get_unread(ChatPeer *self);
void chat_peer_set_unread(ChatPeer *self, guint unread);
gboolean chat_peer_get_unread_known(ChatPeer *self);
void chat_peer_set_unread_known(ChatPeer *self, gboolean known);
const char *chat_peer_get_last_text(ChatPeer *self);
gint64 chat_peer_get_last_usec(ChatPeer *self);
gboolean chat_peer_get_last_outgoing(ChatPeer *self);
void chat_peer_set_last_message(ChatPeer *self, const char *text,
		gint64 usec, gboolean outgoing);

G_END_DECLS
