/* SPDX-License-Identifier: MIT */
#pragma once

#include <adwaita.h>

#include "frontends/gtk/chat-client.h"

G_BEGIN_DECLS

#define CHAT_TYPE_PREFERENCES_WINDOW (chat_preferences_window_get_type())
G_DECLARE_FINAL_TYPE(ChatPreferencesWindow, chat_preferences_window, CHAT,
	PREFERENCES_WINDOW, AdwPreferencesWindow)

GtkWidget *chat_preferences_window_new(GtkWindow *parent, ChatClient *client);

G_END_DECLS
