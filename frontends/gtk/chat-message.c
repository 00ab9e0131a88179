/* SPDX-License-Identifier: MIT */
/*
 * ChatMessage: one message of a conversation as the GTK app shows it.
 *
 * Plain data with notifying properties; ChatClient creates them and keeps
 * them in the per-peer GListStore that owns them.  The id is empty while an
 * outgoing message waits for the SendMessage reply; the state follows what
 * the daemon reports.
 */

#include "frontends/gtk/chat-enums.h"
#include "frontends/gtk/chat-message.h"
#include "frontends/gtk/chat-util.h"

struct _ChatMessage {
	GObject parent_instance;

	char *id;
	char *peer;
	ChatMessageDirection direction;
	char *text;
	gint64 time_usec;
	ChatMessageState state;
	char *failure;
};

G_DEFINE_FINAL_TYPE(ChatMessage, chat_message, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_ID,
	PROP_PEER,
	PROP_DIRECTION,
	PROP_TEXT,
	PROP_TIME,
	PROP_STATE,
	PROP_FAILURE,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static void chat_message_finalize(GObject *object) {
	ChatMessage *self = CHAT_MESSAGE(object);

	g_free(self->id);
	g_free(self->peer);
	g_free(self->text);
	g_free(self->failure);

	G_OBJECT_CLASS(chat_message_parent_class)->finalize(object);
}

static void chat_message_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatMessage *self = CHAT_MESSAGE(object);

	switch (prop_id) {
	case PROP_ID:
		g_value_set_string(value, self->id);
		break;
	case PROP_PEER:
		g_value_set_string(value, self->peer);
		break;
	case PROP_DIRECTION:
		g_value_set_enum(value, self->direction);
		break;
	case PROP_TEXT:
		g_value_set_string(value, self->text);
		break;
	case PROP_TIME:
		g_value_set_int64(value, self->time_usec);
		break;
	case PROP_STATE:
		g_value_set_enum(value, self->state);
		break;
	case PROP_FAILURE:
		g_value_set_string(value, self->failure);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_message_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatMessage *self = CHAT_MESSAGE(object);

	switch (prop_id) {
	case PROP_ID:
		chat_message_set_id(self, g_value_get_string(value));
		break;
	case PROP_PEER:
		self->peer = g_value_dup_string(value);
		break;
	case PROP_DIRECTION:
		self->direction = g_value_get_enum(value);
		break;
	case PROP_TEXT:
		self->text = g_value_dup_string(value);
		break;
	case PROP_TIME:
		self->time_usec = g_value_get_int64(value);
		break;
	case PROP_STATE:
		chat_message_set_state(self, g_value_get_enum(value));
		break;
	case PROP_FAILURE:
		chat_message_set_failure(self, g_value_get_string(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_message_class_init(ChatMessageClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY;
	GParamFlags ro = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
		G_PARAM_STATIC_STRINGS;

	object_class->finalize = chat_message_finalize;
	object_class->get_property = chat_message_get_property;
	object_class->set_property = chat_message_set_property;

	properties[PROP_ID] = g_param_spec_string("id", NULL, NULL, "", rw);
	properties[PROP_PEER] = g_param_spec_string("peer", NULL, NULL, "", ro);
	properties[PROP_DIRECTION] = g_param_spec_enum("direction", NULL, NULL,
		CHAT_TYPE_MESSAGE_DIRECTION, CHAT_MESSAGE_DIRECTION_INCOMING, ro);
	properties[PROP_TEXT] = g_param_spec_string("text", NULL, NULL, "", ro);
	properties[PROP_TIME] = g_param_spec_int64("time", NULL, NULL,
		0, G_MAXINT64, 0, ro);
	properties[PROP_STATE] = g_param_spec_enum("state", NULL, NULL,
		CHAT_TYPE_MESSAGE_STATE, CHAT_MESSAGE_STATE_SENDING, rw);
	properties[PROP_FAILURE] = g_param_spec_string("failure", NULL, NULL,
		NULL, rw);

	g_object_class_install_properties(object_class, N_PROPS, properties);
}

static void chat_message_init(ChatMessage *self) {
	self->id = g_strdup("");
}

ChatMessage *chat_message_new(const char *id, const char *peer,
		ChatMessageDirection direction, const char *text,
		gint64 time_usec, ChatMessageState state) {
	return g_object_new(CHAT_TYPE_MESSAGE,
		"id", id,
		"peer", peer,
		"direction", direction,
		"text", text,
		"time", time_usec,
		"state", state,
		NULL);
}

const char *chat_message_get_id(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), NULL);
	return self->id;
}

const char *chat_message_get_peer(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), NULL);
	return self->peer;
}

ChatMessageDirection chat_message_get_direction(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), 0);
	return self->direction;
}

const char *chat_message_get_text(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), NULL);
	return self->text;
}

gint64 chat_message_get_time(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), 0);
	return self->time_usec;
}

ChatMessageState chat_message_get_state(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), 0);
	return self->state;
}

const char *chat_message_get_failure(ChatMessage *self) {
	g_return_val_if_fail(CHAT_IS_MESSAGE(self), NULL);
	return self->failure;
}

void chat_message_set_id(ChatMessage *self, const char *id) {
	g_return_if_fail(CHAT_IS_MESSAGE(self));

	if (chat_set_str(&self->id, id ? id : "")) {
		g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_ID]);
	}
}

void chat_message_set_state(ChatMessage *self, ChatMessageState state) {
	g_return_if_fail(CHAT_IS_MESSAGE(self));

	if (self->state == state) {
		return;
	}
	self->state = state;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_STATE]);
}

void chat_message_set_failure(ChatMessage *self, const char *reason) {
	g_return_if_fail(CHAT_IS_MESSAGE(self));

	if (chat_set_str(&self->failure, reason)) {
		g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_FAILURE]);
	}
}

/* The word shown in a bubble and read by screen readers (and by tests). */
const char *chat_message_state_to_string(ChatMessageState state) {
	switch (state) {
	case CHAT_MESSAGE_STATE_SENDING:
		return "sending";
	case CHAT_MESSAGE_STATE_QUEUED:
		return "queued";
	case CHAT_MESSAGE_STATE_SENT:
		return "sent";
	case CHAT_MESSAGE_STATE_DELIVERED:
		return "delivered";
	case CHAT_MESSAGE_STATE_FAILED:
		return "failed";
	case CHAT_MESSAGE_STATE_READ:
		return "read";
	}
	g_assert_not_reached();
}

/* Parses a state of the D-Bus API; FALSE for one this app does not know. */
gboolean chat_message_state_from_string(const char *s,
		ChatMessageState *ret_state) {
	static const ChatMessageState states[] = {
		CHAT_MESSAGE_STATE_QUEUED, CHAT_MESSAGE_STATE_SENT,
		CHAT_MESSAGE_STATE_DELIVERED, CHAT_MESSAGE_STATE_FAILED,
		CHAT_MESSAGE_STATE_READ,
	};

	for (gsize i = 0; i < G_N_ELEMENTS(states); i++) {
		if (g_strcmp0(s, chat_message_state_to_string(states[i])) == 0) {
			*ret_state = states[i];
			return TRUE;
		}
	}
	return FALSE;
}
