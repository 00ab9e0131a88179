/* SPDX-License-Identifier: MIT */
#pragma once

#include <gtk/gtk.h>

#include "frontends/gtk/chat-message.h"

G_BEGIN_DECLS

#define CHAT_TYPE_BUBBLE (chat_bubble_get_type())
G_DECLARE_FINAL_TYPE(ChatBubble, chat_bubble, CHAT, BUBBLE, GtkWidget)

GtkWidget *chat_bubble_new(void);

ChatMessage *chat_bubble_get_message(ChatBubble *self);
void chat_bubble_set_message(ChatBubble *self, ChatMessage *message);

G_END_DECLS
