/* SPDX-License-Identifier: MIT */
/*
 * ChatPeerRow: the row widget of the roster list.
 *
 * Recycled by the list view like ChatBubble: the peer is set on bind and
 * cleared on unbind, and while set the row follows the peer's presence,
 * unread count and last message.  The second line previews the last
 * message ("online"/"offline" for a peer without one); presence is a dot
 * on the avatar, and is said in the accessible label.
 */

#include <adwaita.h>

#include "frontends/gtk/chat-peer-row.h"

struct _ChatPeerRow {
	GtkWidget parent_instance;

	AdwAvatar *avatar;
	GtkWidget *presence_dot;
	GtkLabel *name_label;
	GtkLabel *status_label;
	GtkLabel *unread_label;

	ChatPeer *peer;
	gulong notify_handler;
	gulong unread_handler;
	gulong last_handler;
};

G_DEFINE_FINAL_TYPE(ChatPeerRow, chat_peer_row, GTK_TYPE_WIDGET)

enum {
	PROP_0,
	PROP_PEER,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static void chat_peer_row_update(ChatPeerRow *self) {
	gboolean online = self->peer && chat_peer_get_online(self->peer);
	guint unread = self->peer ? chat_peer_get_unread(self->peer) : 0;
	const char *status = online ? "online" : "offline";
	const char *last = self->peer ? chat_peer_get_last_text(self->peer) : "";
	g_autofree char *description = NULL;
	g_autofree char *preview = NULL;
	char count[16];

	gtk_label_set_text(self->name_label,
		self->peer ? chat_peer_get_name(self->peer) : "");
	adw_avatar_set_text(self->avatar,
		self->peer ? chat_peer_get_name(self->peer) : "");
	if (!*last) {
		gtk_label_set_text(self->status_label, status);
	} else if (chat_peer_get_last_outgoing(self->peer)) {
		/* One line: a multi-line message shows its first lines. */
		preview = g_strdup_printf("You: %s", last);
		g_strdelimit(preview, "\n\r\t", ' ');
		gtk_label_set_text(self->status_label, preview);
	} else {
		preview = g_strdelimit(g_strdup(last), "\n\r\t", ' ');
		gtk_label_set_text(self->status_label, preview);
	}
	if (online) {
		gtk_widget_add_css_class(self->presence_dot, "online");
	} else {
		gtk_widget_remove_css_class(self->presence_dot, "online");
	}

	g_snprintf(count, sizeof(count), "%u", unread);
	gtk_label_set_text(self->unread_label, count);
	gtk_widget_set_visible(GTK_WIDGET(self->unread_label), unread > 0);

	if (unread > 0) {
		description = g_strdup_printf("%s, %s, %u unread",
			chat_peer_get_name(self->peer), status, unread);
	} else {
		description = g_strdup_printf("%s, %s",
			self->peer ? chat_peer_get_name(self->peer) : "",
			status);
	}
	gtk_accessible_update_property(GTK_ACCESSIBLE(self),
		GTK_ACCESSIBLE_PROPERTY_LABEL, description, -1);
}

static void on_peer_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_peer_row_update(CHAT_PEER_ROW(user_data));
}

void chat_peer_row_set_peer(ChatPeerRow *self, ChatPeer *peer) {
	g_return_if_fail(CHAT_IS_PEER_ROW(self));

	if (self->peer == peer) {
		return;
	}
	if (self->peer) {
		g_clear_signal_handler(&self->notify_handler, self->peer);
		g_clear_signal_handler(&self->unread_handler, self->peer);
		g_clear_signal_handler(&self->last_handler, self->peer);
	}
	g_set_object(&self->peer, peer);
	if (peer) {
		self->notify_handler = g_signal_connect(peer, "notify::online",
			G_CALLBACK(on_peer_notify), self);
		self->unread_handler = g_signal_connect(peer, "notify::unread",
			G_CALLBACK(on_peer_notify), self);
		self->last_handler = g_signal_connect(peer,
			"notify::last-text", G_CALLBACK(on_peer_notify), self);
	}
	chat_peer_row_update(self);

	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_PEER]);
}

ChatPeer *chat_peer_row_get_peer(ChatPeerRow *self) {
	g_return_val_if_fail(CHAT_IS_PEER_ROW(self), NULL);
	return self->peer;
}

static void chat_peer_row_dispose(GObject *object) {
	ChatPeerRow *self = CHAT_PEER_ROW(object);
	GtkWidget *child;

	if (self->peer) {
		g_clear_signal_handler(&self->notify_handler, self->peer);
		g_clear_signal_handler(&self->unread_handler, self->peer);
		g_clear_signal_handler(&self->last_handler, self->peer);
		g_clear_object(&self->peer);
	}
	gtk_widget_dispose_template(GTK_WIDGET(self), CHAT_TYPE_PEER_ROW);
	/* dispose_template() only drops the children bound by name. */
	while ((child = gtk_widget_get_first_child(GTK_WIDGET(self)))) {
		gtk_widget_unparent(child);
	}

	G_OBJECT_CLASS(chat_peer_row_parent_class)->dispose(object);
}

static void chat_peer_row_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatPeerRow *self = CHAT_PEER_ROW(object);

	switch (prop_id) {
	case PROP_PEER:
		g_value_set_object(value, self->peer);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_peer_row_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatPeerRow *self = CHAT_PEER_ROW(object);

	switch (prop_id) {
	case PROP_PEER:
		chat_peer_row_set_peer(self, g_value_get_object(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_peer_row_class_init(ChatPeerRowClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

	object_class->dispose = chat_peer_row_dispose;
	object_class->get_property = chat_peer_row_get_property;
	object_class->set_property = chat_peer_row_set_property;

	properties[PROP_PEER] = g_param_spec_object("peer", NULL, NULL,
		CHAT_TYPE_PEER, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	gtk_widget_class_set_template_from_resource(widget_class,
		"/org/p2pchat/P2pchat/chat-peer-row.ui");
	gtk_widget_class_bind_template_child(widget_class, ChatPeerRow,
		avatar);
	gtk_widget_class_bind_template_child(widget_class, ChatPeerRow,
		presence_dot);
	gtk_widget_class_bind_template_child(widget_class, ChatPeerRow,
		name_label);
	gtk_widget_class_bind_template_child(widget_class, ChatPeerRow,
		status_label);
	gtk_widget_class_bind_template_child(widget_class, ChatPeerRow,
		unread_label);
	gtk_widget_class_set_layout_manager_type(widget_class,
		GTK_TYPE_BOX_LAYOUT);
	gtk_widget_class_set_css_name(widget_class, "peerrow");
	gtk_widget_class_set_accessible_role(widget_class,
		GTK_ACCESSIBLE_ROLE_GROUP);
}

static void chat_peer_row_init(ChatPeerRow *self) {
	GtkLayoutManager *layout;

	gtk_widget_init_template(GTK_WIDGET(self));
	layout = gtk_widget_get_layout_manager(GTK_WIDGET(self));
	gtk_box_layout_set_spacing(GTK_BOX_LAYOUT(layout), 12);
}

GtkWidget *chat_peer_row_new(void) {
	return g_object_new(CHAT_TYPE_PEER_ROW, NULL);
}
