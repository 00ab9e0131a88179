/* SPDX-License-Identifier: MIT */
/*
 * ChatPreferencesWindow: notifications, autologin and the coordinator, as
 * p2pchatd's config holds them.
 *
 * Each row is read with GetConfig when the window opens and stays
 * insensitive until its value is in; a change is written at once with
 * SetConfig (the coordinator when its apply button is pressed).  A failure
 * is shown as a toast and the row reverts.  Holds a reference to the
 * ChatClient and a GCancellable, cancelled when the window goes.
 */

#include "frontends/gtk/chat-preferences-window.h"

struct _ChatPreferencesWindow {
	AdwPreferencesWindow parent_instance;

	GtkSwitch *notifications_switch;
	GtkSwitch *autologin_switch;
	AdwEntryRow *coordinator_row;

	ChatClient *client;
	GCancellable *cancellable;
	gboolean loading;		/* setting values read, not the user */
};

G_DEFINE_FINAL_TYPE(ChatPreferencesWindow, chat_preferences_window,
	ADW_TYPE_PREFERENCES_WINDOW)

/* Which config key a widget shows. */
#define CHAT_CONFIG_KEY "chat-config-key"

static void chat_preferences_window_toast(ChatPreferencesWindow *self,
		const char *what, const GError *error) {
	g_autofree char *text = g_strdup_printf("%s: %s", what,
		error->message);

	adw_preferences_window_add_toast(ADW_PREFERENCES_WINDOW(self),
		adw_toast_new(text));
}

static void chat_preferences_window_show(ChatPreferencesWindow *self,
		GtkWidget *widget, const char *value) {
	self->loading = TRUE;
	if (GTK_IS_SWITCH(widget)) {
		gtk_switch_set_active(GTK_SWITCH(widget),
			g_strcmp0(value, "true") == 0);
	} else {
		gtk_editable_set_text(GTK_EDITABLE(widget), value);
	}
	self->loading = FALSE;
	gtk_widget_set_sensitive(widget, TRUE);
}

static void on_get_config_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GtkWidget) widget = user_data;
	g_autoptr(GError) error = NULL;
	g_autofree char *value = NULL;
	ChatPreferencesWindow *self;

	value = chat_client_get_config_finish(CHAT_CLIENT(source), result,
		&error);
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		return;
	}
	self = CHAT_PREFERENCES_WINDOW(gtk_widget_get_root(widget));
	if (!value) {
		chat_preferences_window_toast(self, "Could not read the settings",
			error);
		return;
	}
	chat_preferences_window_show(self, widget, value);
}

static void chat_preferences_window_load(ChatPreferencesWindow *self,
		GtkWidget *widget) {
	chat_client_get_config_async(self->client,
		g_object_get_data(G_OBJECT(widget), CHAT_CONFIG_KEY),
		self->cancellable, on_get_config_ready, g_object_ref(widget));
}

static void on_set_config_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GtkWidget) widget = user_data;
	g_autoptr(GError) error = NULL;
	ChatPreferencesWindow *self;

	if (chat_client_set_config_finish(CHAT_CLIENT(source), result,
			&error) ||
			g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		return;
	}
	self = CHAT_PREFERENCES_WINDOW(gtk_widget_get_root(widget));
	chat_preferences_window_toast(self, "Could not change the setting",
		error);
	chat_preferences_window_load(self, widget);
}

static void chat_preferences_window_save(ChatPreferencesWindow *self,
		GtkWidget *widget, const char *value) {
	chat_client_set_config_async(self->client,
		g_object_get_data(G_OBJECT(widget), CHAT_CONFIG_KEY), value,
		self->cancellable, on_set_config_ready, g_object_ref(widget));
}

static void on_switch_active(GtkSwitch *widget, GParamSpec *pspec,
		gpointer user_data) {
	ChatPreferencesWindow *self = CHAT_PREFERENCES_WINDOW(user_data);

	if (!self->loading) {
		chat_preferences_window_save(self, GTK_WIDGET(widget),
			gtk_switch_get_active(widget) ? "true" : "false");
	}
}

static void on_coordinator_row_apply(AdwEntryRow *row, gpointer user_data) {
	ChatPreferencesWindow *self = CHAT_PREFERENCES_WINDOW(user_data);
	g_autofree char *value = g_strstrip(g_strdup(
		gtk_editable_get_text(GTK_EDITABLE(row))));

	chat_preferences_window_save(self, GTK_WIDGET(row), value);
}

static void chat_preferences_window_dispose(GObject *object) {
	ChatPreferencesWindow *self = CHAT_PREFERENCES_WINDOW(object);

	g_cancellable_cancel(self->cancellable);
	g_clear_object(&self->cancellable);
	g_clear_object(&self->client);
	gtk_widget_dispose_template(GTK_WIDGET(self),
		CHAT_TYPE_PREFERENCES_WINDOW);

	G_OBJECT_CLASS(chat_preferences_window_parent_class)->dispose(object);
}

static void chat_preferences_window_class_init(
		ChatPreferencesWindowClass *klass) {
	GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

	G_OBJECT_CLASS(klass)->dispose = chat_preferences_window_dispose;

	gtk_widget_class_set_template_from_resource(widget_class,
		"/org/p2pchat/P2pchat/chat-preferences-window.ui");
	gtk_widget_class_bind_template_child(widget_class,
		ChatPreferencesWindow, notifications_switch);
	gtk_widget_class_bind_template_child(widget_class,
		ChatPreferencesWindow, autologin_switch);
	gtk_widget_class_bind_template_child(widget_class,
		ChatPreferencesWindow, coordinator_row);
}

static void chat_preferences_window_init(ChatPreferencesWindow *self) {
	gtk_widget_init_template(GTK_WIDGET(self));
	self->cancellable = g_cancellable_new();
	/* Three rows: nothing to search (and the property fails validation). */
	adw_preferences_window_set_search_enabled(
		ADW_PREFERENCES_WINDOW(self), FALSE);

	g_object_set_data(G_OBJECT(self->notifications_switch),
		CHAT_CONFIG_KEY, (gpointer) "notifications");
	g_object_set_data(G_OBJECT(self->autologin_switch), CHAT_CONFIG_KEY,
		(gpointer) "autologin");
	g_object_set_data(G_OBJECT(self->coordinator_row), CHAT_CONFIG_KEY,
		(gpointer) "coordinator");

	/* Connected here so that the .ui validates on its own. */
	g_signal_connect(self->notifications_switch, "notify::active",
		G_CALLBACK(on_switch_active), self);
	g_signal_connect(self->autologin_switch, "notify::active",
		G_CALLBACK(on_switch_active), self);
	g_signal_connect(self->coordinator_row, "apply",
		G_CALLBACK(on_coordinator_row_apply), self);
}

GtkWidget *chat_preferences_window_new(GtkWindow *parent,
		ChatClient *client) {
	ChatPreferencesWindow *self = g_object_new(
		CHAT_TYPE_PREFERENCES_WINDOW, "transient-for", parent, NULL);

	self->client = g_object_ref(client);
	chat_preferences_window_load(self,
		GTK_WIDGET(self->notifications_switch));
	chat_preferences_window_load(self, GTK_WIDGET(self->autologin_switch));
	chat_preferences_window_load(self, GTK_WIDGET(self->coordinator_row));
	return GTK_WIDGET(self);
}
