/* SPDX-License-Identifier: MIT */
#pragma once

#include <gtk/gtk.h>

#include "frontends/gtk/chat-client.h"

G_BEGIN_DECLS

#define CHAT_TYPE_LOGIN_PAGE (chat_login_page_get_type())
G_DECLARE_FINAL_TYPE(ChatLoginPage, chat_login_page, CHAT, LOGIN_PAGE,
	GtkWidget)

GtkWidget *chat_login_page_new(ChatClient *client);

G_END_DECLS
