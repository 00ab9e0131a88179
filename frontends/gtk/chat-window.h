/* SPDX-License-Identifier: MIT */
#pragma once

#include <adwaita.h>

#include "frontends/gtk/chat-client.h"

G_BEGIN_DECLS

#define CHAT_TYPE_WINDOW (chat_window_get_type())
G_DECLARE_FINAL_TYPE(ChatWindow, chat_window, CHAT, WINDOW,
	AdwApplicationWindow)

ChatWindow *chat_window_new(GtkApplication *application, ChatClient *client);

void chat_window_open_conversation(ChatWindow *self, const char *peer);

G_END_DECLS
