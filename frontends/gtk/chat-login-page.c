/* SPDX-License-Identifier: MIT */
/*
 * ChatLoginPage: asks for a name and a coordinator and logs in.
 *
 * Holds a reference to the ChatClient and a GCancellable for its one Login
 * call; errors from the daemon are shown inline, worded after the D-Bus
 * error name (NameTaken, CoordinatorUnreachable, ...).  The fields are
 * prefilled from the daemon: Username and Coordinator, or while logged out
 * its configured username and coordinator (GetConfig).  While connecting
 * the Log In button turns into Cancel, which logs out (the daemon's Login
 * would otherwise keep trying until its timeout).
 */

#include "frontends/gtk/chat-login-page.h"

struct _ChatLoginPage {
	GtkWidget parent_instance;

	GtkLabel *status_label;
	GtkEntry *name_entry;
	GtkEntry *coordinator_entry;
	GtkLabel *error_label;
	GtkSpinner *spinner;
	GtkButton *login_button;

	ChatClient *client;
	GCancellable *cancellable;	/* of the Login call in flight */
};

G_DEFINE_FINAL_TYPE(ChatLoginPage, chat_login_page, GTK_TYPE_WIDGET)

enum {
	PROP_0,
	PROP_CLIENT,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static void chat_login_page_show_error(ChatLoginPage *self, const char *text) {
	gtk_label_set_text(self->error_label, text ? text : "");
	gtk_widget_set_visible(GTK_WIDGET(self->error_label), text != NULL);
}

static char *chat_login_page_describe_error(const GError *error,
		const char *name, const char *coordinator) {
	if (error->domain != CHAT_CLIENT_ERROR) {
		return g_strdup(error->message);
	}

	switch ((ChatClientError) error->code) {
	case CHAT_CLIENT_ERROR_NAME_TAKEN:
		return g_strdup_printf("The name '%s' is already taken.", name);
	case CHAT_CLIENT_ERROR_COORDINATOR_UNREACHABLE:
		return g_strdup_printf("Cannot reach the coordinator '%s'.",
			coordinator);
	case CHAT_CLIENT_ERROR_NO_DAEMON:
		return g_strdup("p2pchatd is not running.");
	case CHAT_CLIENT_ERROR_INVALID_NAME:
	case CHAT_CLIENT_ERROR_ALREADY_LOGGED_IN:
	case CHAT_CLIENT_ERROR_NOT_LOGGED_IN:
	case CHAT_CLIENT_ERROR_UNKNOWN_PEER:
	case CHAT_CLIENT_ERROR_MESSAGE_TOO_LONG:
	case CHAT_CLIENT_ERROR_INVALID_MESSAGE:
		return g_strdup(error->message);
	}
	return g_strdup(error->message);
}

static void chat_login_page_update(ChatLoginPage *self) {
	ChatClientState state = chat_client_get_state(self->client);
	gboolean busy = self->cancellable != NULL ||
		state == CHAT_CLIENT_STATE_CONNECTING;
	gboolean usable = state == CHAT_CLIENT_STATE_OFFLINE && !busy;
	const char *status = "";

	switch (state) {
	case CHAT_CLIENT_STATE_NO_DAEMON:
		status = "Waiting for p2pchatd…";
		break;
	case CHAT_CLIENT_STATE_CONNECTING:
		status = "Connecting…";
		break;
	case CHAT_CLIENT_STATE_OFFLINE:
	case CHAT_CLIENT_STATE_ONLINE:
	case CHAT_CLIENT_STATE_RECONNECTING:
		break;
	}
	/*
	 * Always there, empty or not (style.css gives it a line's height),
	 * so that the form does not move.
	 */
	gtk_label_set_text(self->status_label, status);

	gtk_button_set_label(self->login_button, busy ? "Cancel" : "Log In");
	if (busy) {
		gtk_widget_remove_css_class(GTK_WIDGET(self->login_button),
			"suggested-action");
	} else {
		gtk_widget_add_css_class(GTK_WIDGET(self->login_button),
			"suggested-action");
	}
	gtk_widget_set_sensitive(GTK_WIDGET(self->login_button),
		usable || busy);
	gtk_editable_set_editable(GTK_EDITABLE(self->name_entry), !busy);
	gtk_editable_set_editable(GTK_EDITABLE(self->coordinator_entry), !busy);
	/* Never hidden: it keeps its place, and draws nothing when idle. */
	gtk_spinner_set_spinning(self->spinner, busy);
}

static void chat_login_page_prefill(ChatLoginPage *self) {
	const char *username = chat_client_get_login_name(self->client);
	const char *coordinator =
		chat_client_get_login_coordinator(self->client);

	if (*username && !*gtk_editable_get_text(
			GTK_EDITABLE(self->name_entry))) {
		gtk_editable_set_text(GTK_EDITABLE(self->name_entry), username);
	}
	if (*coordinator && !*gtk_editable_get_text(
			GTK_EDITABLE(self->coordinator_entry))) {
		gtk_editable_set_text(GTK_EDITABLE(self->coordinator_entry),
			coordinator);
	}
}

static void on_client_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(user_data);

	chat_login_page_prefill(self);
	chat_login_page_update(self);
}

static void on_login_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	ChatLoginPage *self;
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;

	if (chat_client_login_finish(CHAT_CLIENT(source), result, &error)) {
		self = CHAT_LOGIN_PAGE(user_data);
		g_clear_object(&self->cancellable);
		chat_login_page_update(self);
		return;
	}
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		return;
	}

	self = CHAT_LOGIN_PAGE(user_data);
	g_clear_object(&self->cancellable);
	text = chat_login_page_describe_error(error,
		gtk_editable_get_text(GTK_EDITABLE(self->name_entry)),
		gtk_editable_get_text(GTK_EDITABLE(self->coordinator_entry)));
	chat_login_page_show_error(self, text);
	chat_login_page_update(self);
	/* The focus goes to the field at fault. */
	if (g_error_matches(error, CHAT_CLIENT_ERROR,
			CHAT_CLIENT_ERROR_COORDINATOR_UNREACHABLE)) {
		gtk_widget_grab_focus(GTK_WIDGET(self->coordinator_entry));
	} else {
		gtk_widget_grab_focus(GTK_WIDGET(self->name_entry));
	}
}

static void on_cancel_logout_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GError) error = NULL;

	if (!chat_client_logout_finish(CHAT_CLIENT(source), result, &error)) {
		/* Already offline: the login had just failed.  Nothing to do. */
		g_debug("Failed to cancel the login: %s", error->message);
	}
}

/* Cancel: stops waiting for our Login and logs out of the attempt. */
static void chat_login_page_cancel(ChatLoginPage *self) {
	g_cancellable_cancel(self->cancellable);
	g_clear_object(&self->cancellable);
	chat_client_logout_async(self->client, NULL, on_cancel_logout_ready,
		NULL);
	chat_login_page_update(self);
}

/* Enter in a field, or the Log In button. */
static void chat_login_page_log_in(ChatLoginPage *self) {
	g_autofree char *name = NULL;
	g_autofree char *coordinator = NULL;

	if (self->cancellable ||
			chat_client_get_state(self->client) !=
			CHAT_CLIENT_STATE_OFFLINE) {
		return;
	}

	name = g_strstrip(g_strdup(gtk_editable_get_text(
		GTK_EDITABLE(self->name_entry))));
	coordinator = g_strstrip(g_strdup(gtk_editable_get_text(
		GTK_EDITABLE(self->coordinator_entry))));
	if (!*name) {
		chat_login_page_show_error(self, "Enter a name.");
		gtk_widget_grab_focus(GTK_WIDGET(self->name_entry));
		return;
	}
	if (!*coordinator) {
		chat_login_page_show_error(self,
			"Enter the coordinator as host:port.");
		gtk_widget_grab_focus(GTK_WIDGET(self->coordinator_entry));
		return;
	}

	chat_login_page_show_error(self, NULL);
	self->cancellable = g_cancellable_new();
	chat_client_login_async(self->client, name, coordinator,
		self->cancellable, on_login_ready, self);
	chat_login_page_update(self);
}

/* Log In, or Cancel while connecting. */
static void on_login_button_clicked(ChatLoginPage *self) {
	if (self->cancellable || chat_client_get_state(self->client) ==
			CHAT_CLIENT_STATE_CONNECTING) {
		chat_login_page_cancel(self);
		return;
	}
	chat_login_page_log_in(self);
}

static void chat_login_page_constructed(GObject *object) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(object);

	G_OBJECT_CLASS(chat_login_page_parent_class)->constructed(object);

	g_signal_connect_object(self->client, "notify::state",
		G_CALLBACK(on_client_notify), self, 0);
	g_signal_connect_object(self->client, "notify::username",
		G_CALLBACK(on_client_notify), self, 0);
	g_signal_connect_object(self->client, "notify::coordinator",
		G_CALLBACK(on_client_notify), self, 0);
	chat_login_page_prefill(self);
	chat_login_page_update(self);
}

static void chat_login_page_dispose(GObject *object) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(object);
	GtkWidget *child;

	g_cancellable_cancel(self->cancellable);
	g_clear_object(&self->cancellable);
	g_clear_object(&self->client);
	gtk_widget_dispose_template(GTK_WIDGET(self), CHAT_TYPE_LOGIN_PAGE);
	/* dispose_template() only drops the children bound by name. */
	while ((child = gtk_widget_get_first_child(GTK_WIDGET(self)))) {
		gtk_widget_unparent(child);
	}

	G_OBJECT_CLASS(chat_login_page_parent_class)->dispose(object);
}

static void chat_login_page_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(object);

	switch (prop_id) {
	case PROP_CLIENT:
		g_value_set_object(value, self->client);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_login_page_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(object);

	switch (prop_id) {
	case PROP_CLIENT:
		self->client = g_value_dup_object(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static gboolean chat_login_page_grab_focus(GtkWidget *widget) {
	ChatLoginPage *self = CHAT_LOGIN_PAGE(widget);

	return gtk_widget_grab_focus(GTK_WIDGET(self->name_entry));
}

static void chat_login_page_class_init(ChatLoginPageClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

	object_class->constructed = chat_login_page_constructed;
	object_class->dispose = chat_login_page_dispose;
	object_class->get_property = chat_login_page_get_property;
	object_class->set_property = chat_login_page_set_property;
	widget_class->grab_focus = chat_login_page_grab_focus;

	properties[PROP_CLIENT] = g_param_spec_object("client", NULL, NULL,
		CHAT_TYPE_CLIENT, G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
		G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	gtk_widget_class_set_template_from_resource(widget_class,
		"/org/p2pchat/P2pchat/chat-login-page.ui");
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		status_label);
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		name_entry);
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		coordinator_entry);
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		error_label);
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		spinner);
	gtk_widget_class_bind_template_child(widget_class, ChatLoginPage,
		login_button);
	gtk_widget_class_set_layout_manager_type(widget_class,
		GTK_TYPE_BIN_LAYOUT);
	gtk_widget_class_set_accessible_role(widget_class,
		GTK_ACCESSIBLE_ROLE_GROUP);
}

static void chat_login_page_init(ChatLoginPage *self) {
	gtk_widget_init_template(GTK_WIDGET(self));

	/*
	 * Signals are connected here rather than in the .ui so that
	 * gtk4-builder-tool can validate the template on its own.
	 */
	g_signal_connect_swapped(self->login_button, "clicked",
		G_CALLBACK(on_login_button_clicked), self);
	g_signal_connect_swapped(self->name_entry, "activate",
		G_CALLBACK(chat_login_page_log_in), self);
	g_signal_connect_swapped(self->coordinator_entry, "activate",
		G_CALLBACK(chat_login_page_log_in), self);
}

GtkWidget *chat_login_page_new(ChatClient *client) {
	return g_object_new(CHAT_TYPE_LOGIN_PAGE, "client", client, NULL);
}
