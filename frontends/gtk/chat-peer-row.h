/* SPDX-License-Identifier: MIT */
#pragma once

#include <gtk/gtk.h>

#include "frontends/gtk/chat-peer.h"

G_BEGIN_DECLS

#define CHAT_TYPE_PEER_ROW (chat_peer_row_get_type())
G_DECLARE_FINAL_TYPE(ChatPeerRow, chat_peer_row, CHAT, PEER_ROW, GtkWidget)

GtkWidget *chat_peer_row_new(void);

ChatPeer *chat_peer_row_get_peer(ChatPeerRow *self);
void chat_peer_row_set_peer(ChatPeerRow *self, ChatPeer *peer);

G_END_DECLS
