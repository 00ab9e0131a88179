/* SPDX-License-Identifier: MIT */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define CHAT_TYPE_APPLICATION (chat_application_get_type())
G_DECLARE_FINAL_TYPE(ChatApplication, chat_application, CHAT, APPLICATION,
	AdwApplication)

ChatApplication *chat_application_new(void);

G_END_DECLS
