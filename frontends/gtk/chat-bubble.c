/* SPDX-License-Identifier: MIT */
/*
 * ChatBubble: the row widget of the conversation list.
 *
 * The list view recycles bubbles, so the message is a property that is set
 * on bind (and kept until the next bind: see chat-window.c); the bubble
 * follows the message's state (sending → sent → delivered, or failed).
 */

#include "frontends/gtk/chat-bubble.h"

struct _ChatBubble {
	GtkWidget parent_instance;

	GtkLabel *text_label;
	GtkLabel *meta_label;

	ChatMessage *message;
	gulong state_handler;
};

G_DEFINE_FINAL_TYPE(ChatBubble, chat_bubble, GTK_TYPE_WIDGET)

enum {
	PROP_0,
	PROP_MESSAGE,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

/*
 * A wrapped label measures its minimum width with a layout as narrow as
 * its width-chars; without them Pango breaks the text at every opportunity,
 * which cost more than the rest of the bubble together (most of a frame
 * when a page of bubbles comes in).  So the minimum is this many average
 * characters, but never more than half the text, so that the bubble of a
 * short message still hugs its text.
 */
#define CHAT_BUBBLE_MIN_CHARS 10

static void chat_bubble_update_meta(ChatBubble *self) {
	ChatMessage *message = self->message;
	g_autoptr(GDateTime) time = NULL;
	g_autofree char *clock = NULL;
	g_autofree char *meta = NULL;
	ChatMessageState state;

	if (!message) {
		gtk_label_set_text(self->meta_label, "");
		return;
	}

	state = chat_message_get_state(message);
	time = g_date_time_new_from_unix_local(
		chat_message_get_time(message) / G_USEC_PER_SEC);
	clock = time ? g_date_time_format(time, "%H:%M") : g_strdup("");

	if (chat_message_get_direction(message) ==
			CHAT_MESSAGE_DIRECTION_INCOMING) {
		meta = g_strdup(clock);
	} else if (state == CHAT_MESSAGE_STATE_FAILED &&
			chat_message_get_failure(message)) {
		meta = g_strdup_printf("%s · %s: %s", clock,
			chat_message_state_to_string(state),
			chat_message_get_failure(message));
	} else {
		meta = g_strdup_printf("%s · %s", clock,
			chat_message_state_to_string(state));
	}
	gtk_label_set_text(self->meta_label, meta);

	if (state == CHAT_MESSAGE_STATE_FAILED) {
		gtk_widget_add_css_class(GTK_WIDGET(self), "failed");
	} else {
		gtk_widget_remove_css_class(GTK_WIDGET(self), "failed");
	}
}

static void on_message_notify_state(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_bubble_update_meta(CHAT_BUBBLE(user_data));
}

void chat_bubble_set_message(ChatBubble *self, ChatMessage *message) {
	const char *text;
	gboolean outgoing;

	g_return_if_fail(CHAT_IS_BUBBLE(self));

	if (self->message == message) {
		return;
	}
	if (self->message) {
		g_clear_signal_handler(&self->state_handler, self->message);
	}
	g_set_object(&self->message, message);

	if (message) {
		self->state_handler = g_signal_connect(message,
			"notify::state", G_CALLBACK(on_message_notify_state),
			self);
		outgoing = chat_message_get_direction(message) ==
			CHAT_MESSAGE_DIRECTION_OUTGOING;
		text = chat_message_get_text(message);
		gtk_label_set_width_chars(self->text_label,
			(int) MIN(CHAT_BUBBLE_MIN_CHARS,
			g_utf8_strlen(text, -1) / 2));
		gtk_label_set_text(self->text_label, text);
		gtk_widget_set_halign(GTK_WIDGET(self),
			outgoing ? GTK_ALIGN_END : GTK_ALIGN_START);
		gtk_widget_remove_css_class(GTK_WIDGET(self),
			outgoing ? "incoming" : "outgoing");
		gtk_widget_add_css_class(GTK_WIDGET(self),
			outgoing ? "outgoing" : "incoming");
	} else {
		gtk_label_set_text(self->text_label, "");
	}
	chat_bubble_update_meta(self);

	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_MESSAGE]);
}

ChatMessage *chat_bubble_get_message(ChatBubble *self) {
	g_return_val_if_fail(CHAT_IS_BUBBLE(self), NULL);
	return self->message;
}

static void chat_bubble_dispose(GObject *object) {
	ChatBubble *self = CHAT_BUBBLE(object);
	GtkWidget *child;

	if (self->message) {
		g_clear_signal_handler(&self->state_handler, self->message);
		g_clear_object(&self->message);
	}
	gtk_widget_dispose_template(GTK_WIDGET(self), CHAT_TYPE_BUBBLE);
	/* dispose_template() only drops the children bound by name. */
	while ((child = gtk_widget_get_first_child(GTK_WIDGET(self)))) {
		gtk_widget_unparent(child);
	}

	G_OBJECT_CLASS(chat_bubble_parent_class)->dispose(object);
}

static void chat_bubble_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatBubble *self = CHAT_BUBBLE(object);

	switch (prop_id) {
	case PROP_MESSAGE:
		g_value_set_object(value, self->message);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_bubble_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatBubble *self = CHAT_BUBBLE(object);

	switch (prop_id) {
	case PROP_MESSAGE:
		chat_bubble_set_message(self, g_value_get_object(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_bubble_class_init(ChatBubbleClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

	object_class->dispose = chat_bubble_dispose;
	object_class->get_property = chat_bubble_get_property;
	object_class->set_property = chat_bubble_set_property;

	properties[PROP_MESSAGE] = g_param_spec_object("message", NULL, NULL,
		CHAT_TYPE_MESSAGE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
		G_PARAM_EXPLICIT_NOTIFY);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	gtk_widget_class_set_template_from_resource(widget_class,
		"/org/p2pchat/P2pchat/chat-bubble.ui");
	gtk_widget_class_bind_template_child(widget_class, ChatBubble,
		text_label);
	gtk_widget_class_bind_template_child(widget_class, ChatBubble,
		meta_label);
	gtk_widget_class_set_layout_manager_type(widget_class,
		GTK_TYPE_BOX_LAYOUT);
	gtk_widget_class_set_css_name(widget_class, "bubble");
	gtk_widget_class_set_accessible_role(widget_class,
		GTK_ACCESSIBLE_ROLE_GROUP);
}

static void chat_bubble_init(ChatBubble *self) {
	GtkLayoutManager *layout;

	gtk_widget_init_template(GTK_WIDGET(self));
	layout = gtk_widget_get_layout_manager(GTK_WIDGET(self));
	gtk_orientable_set_orientation(GTK_ORIENTABLE(layout),
		GTK_ORIENTATION_VERTICAL);
	gtk_box_layout_set_spacing(GTK_BOX_LAYOUT(layout), 2);
}

GtkWidget *chat_bubble_new(void) {
	return g_object_new(CHAT_TYPE_BUBBLE, NULL);
}
