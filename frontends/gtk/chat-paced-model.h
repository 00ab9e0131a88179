/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CHAT_TYPE_PACED_MODEL (chat_paced_model_get_type())
G_DECLARE_FINAL_TYPE(ChatPacedModel, chat_paced_model, CHAT, PACED_MODEL,
	GObject)

ChatPacedModel *chat_paced_model_new(GListModel *model, guint step);

GListModel *chat_paced_model_get_model(ChatPacedModel *self);
guint chat_paced_model_get_pending(ChatPacedModel *self);
guint chat_paced_model_reveal(ChatPacedModel *self);

G_END_DECLS
