/* SPDX-License-Identifier: MIT */
/*
 * ChatPeer: one roster entry as the GTK app shows it.
 *
 * ChatRoster owns the roster GListStore and with it every ChatPeer; it
 * updates the properties from ListPeers and the PeerJoined/PeerLeft signals
 * (ChatPeerObjects the unread count, from the daemon's Peer objects).
 * A peer that leaves stays in the roster, offline, so an open conversation
 * keeps its row.
 */

#include "frontends/gtk/chat-peer.h"
#include "frontends/gtk/chat-util.h"

struct _ChatPeer {
	GObject parent_instance;

	char *name;
	char *endpoint;
	gboolean online;
	gboolean native;
	guint unread;
	gboolean unread_known;	/* listed, or asked for (see ChatPeerObjects) */

	/* The conversation's last message, for its row (ChatRoster). */
	char *last_text;
	gint64 last_usec;	/* its sent time; 0: no messages */
	gboolean last_outgoing;
};

G_DEFINE_FINAL_TYPE(ChatPeer, chat_peer, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_NAME,
	PROP_ENDPOINT,
	PROP_ONLINE,
	PROP_NATIVE,
	PROP_UNREAD,
	PROP_LAST_TEXT,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static void chat_peer_finalize(GObject *object) {
	ChatPeer *self = CHAT_PEER(object);

	g_free(self->name);
	g_free(self->endpoint);
	g_free(self->last_text);

	G_OBJECT_CLASS(chat_peer_parent_class)->finalize(object);
}

static void chat_peer_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatPeer *self = CHAT_PEER(object);

	switch (prop_id) {
	case PROP_NAME:
		g_value_set_string(value, self->name);
		break;
	case PROP_ENDPOINT:
		g_value_set_string(value, self->endpoint);
		break;
	case PROP_ONLINE:
		g_value_set_boolean(value, self->online);
		break;
	case PROP_NATIVE:
		g_value_set_boolean(value, self->native);
		break;
	case PROP_UNREAD:
		g_value_set_uint(value, self->unread);
		break;
	case PROP_LAST_TEXT:
		g_value_set_string(value, self->last_text);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_peer_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatPeer *self = CHAT_PEER(object);

	switch (prop_id) {
	case PROP_NAME:
		self->name = g_value_dup_string(value);
		break;
	case PROP_ENDPOINT:
		chat_peer_set_endpoint(self, g_value_get_string(value));
		break;
	case PROP_ONLINE:
		chat_peer_set_online(self, g_value_get_boolean(value));
		break;
	case PROP_NATIVE:
		chat_peer_set_native(self, g_value_get_boolean(value));
		break;
	case PROP_UNREAD:
		chat_peer_set_unread(self, g_value_get_uint(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_peer_class_init(ChatPeerClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY;

	object_class->finalize = chat_peer_finalize;
	object_class->get_property = chat_peer_get_property;
	object_class->set_property = chat_peer_set_property;

	properties[PROP_NAME] = g_param_spec_string("name", NULL, NULL, "",
		G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
		G_PARAM_STATIC_STRINGS);
	properties[PROP_ENDPOINT] = g_param_spec_string("endpoint", NULL, NULL,
		"", rw);
	properties[PROP_ONLINE] = g_param_spec_boolean("online", NULL, NULL,
		FALSE, rw);
	properties[PROP_NATIVE] = g_param_spec_boolean("native", NULL, NULL,
		FALSE, rw);
	properties[PROP_UNREAD] = g_param_spec_uint("unread", NULL, NULL,
		0, G_MAXUINT, 0, rw);
	properties[PROP_LAST_TEXT] = g_param_spec_string("last-text", NULL,
		NULL, "", G_PARAM_READABLE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY);

	g_object_class_install_properties(object_class, N_PROPS, properties);
}

static void chat_peer_init(ChatPeer *self) {
	self->endpoint = g_strdup("");
	self->last_text = g_strdup("");
}

ChatPeer *chat_peer_new(const char *name) {
	return g_object_new(CHAT_TYPE_PEER, "name", name, NULL);
}

const char *chat_peer_get_name(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), NULL);
	return self->name;
}

const char *chat_peer_get_endpoint(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), NULL);
	return self->endpoint;
}

gboolean chat_peer_get_online(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), FALSE);
	return self->online;
}

gboolean chat_peer_get_native(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), FALSE);
	return self->native;
}

void chat_peer_set_endpoint(ChatPeer *self, const char *endpoint) {
	g_return_if_fail(CHAT_IS_PEER(self));

	if (chat_set_str(&self->endpoint, endpoint ? endpoint : "")) {
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_ENDPOINT]);
	}
}

void chat_peer_set_online(ChatPeer *self, gboolean online) {
	g_return_if_fail(CHAT_IS_PEER(self));

	online = !!online;
	if (self->online == online) {
		return;
	}
	self->online = online;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_ONLINE]);
}

void chat_peer_set_native(ChatPeer *self, gboolean native) {
	g_return_if_fail(CHAT_IS_PEER(self));

	native = !!native;
	if (self->native == native) {
		return;
	}
	self->native = native;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_NATIVE]);
}

guint chat_peer_get_unread(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), 0);
	return self->unread;
}

void chat_peer_set_unread(ChatPeer *self, guint unread) {
	g_return_if_fail(CHAT_IS_PEER(self));

	if (self->unread == unread) {
		return;
	}
	self->unread = unread;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_UNREAD]);
}

/*
 * Whether the unread count is known or asked for, so that it is asked for
 * once per peer and daemon; not a property: no widget shows it.
 */
gboolean chat_peer_get_unread_known(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), FALSE);
	return self->unread_known;
}

void chat_peer_set_unread_known(ChatPeer *self, gboolean known) {
	g_return_if_fail(CHAT_IS_PEER(self));
	self->unread_known = known;
}

const char *chat_peer_get_last_text(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), NULL);
	return self->last_text;
}

gint64 chat_peer_get_last_usec(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), 0);
	return self->last_usec;
}

gboolean chat_peer_get_last_outgoing(ChatPeer *self) {
	g_return_val_if_fail(CHAT_IS_PEER(self), FALSE);
	return self->last_outgoing;
}

/*
 * Sets the conversation's last message; "last-text" is notified whenever
 * any of the three changes, so a row has one signal to follow.  Callers
 * keep the roster in order (see chat_roster_note_message()).
 */
void chat_peer_set_last_message(ChatPeer *self, const char *text,
		gint64 usec, gboolean outgoing) {
	gboolean changed;

	g_return_if_fail(CHAT_IS_PEER(self));

	changed = chat_set_str(&self->last_text, text ? text : "");
	changed |= self->last_usec != usec ||
		self->last_outgoing != !!outgoing;
	self->last_usec = usec;
	self->last_outgoing = !!outgoing;
	if (changed) {
		g_object_notify_by_pspec(G_OBJECT(self),
			properties[PROP_LAST_TEXT]);
	}
}
