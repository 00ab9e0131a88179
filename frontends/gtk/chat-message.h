/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/*
 * Where a message is on its way: SENDING until the SendMessage reply, then
 * what p2pchatd reports by MessageStateChanged: QUEUED (stored, waiting for
 * the peer), SENT (on the wire; final for a reference peer, which never
 * acks), DELIVERED (a native peer acked it) or FAILED.  Received messages
 * are DELIVERED until read, then READ.
 */
typedef enum {
	CHAT_MESSAGE_STATE_SENDING,
	CHAT_MESSAGE_STATE_QUEUED,
	CHAT_MESSAGE_STATE_SENT,
	CHAT_MESSAGE_STATE_DELIVERED,
	CHAT_MESSAGE_STATE_FAILED,
	CHAT_MESSAGE_STATE_READ,
} ChatMessageState;

typedef enum {
	CHAT_MESSAGE_DIRECTION_INCOMING,
	CHAT_MESSAGE_DIRECTION_OUTGOING,
} ChatMessageDirection;

#define CHAT_TYPE_MESSAGE (chat_message_get_type())
G_DECLARE_FINAL_TYPE(ChatMessage, chat_message, CHAT, MESSAGE, GObject)

ChatMessage *chat_message_new(const char *id, const char *peer,
		ChatMessageDirection direction, const char *text,
		gint64 time_usec, ChatMessageState state);

const char *chat_message_get_id(ChatMessage *self);
const char *chat_message_get_peer(ChatMessage *self);
ChatMessageDirection chat_message_get_direction(ChatMessage *self);
const char *chat_message_get_text(ChatMessage *self);
gint64 chat_message_get_time(ChatMessage *self);
ChatMessageState chat_message_get_state(ChatMessage *self);
const char *chat_message_get_failure(ChatMessage *self);

void chat_message_set_id(ChatMessage *self, const char *id);
void chat_message_set_state(ChatMessage *self, ChatMessageState state);
void chat_message_set_failure(ChatMessage *self, const char *reason);

const char *chat_message_state_to_string(ChatMessageState state);
gboolean chat_message_state_from_string(const char *s,
		ChatMessageState *ret_state);

G_END_DECLS
