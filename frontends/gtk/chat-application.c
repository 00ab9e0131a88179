/* SPDX-License-Identifier: MIT */
/*
 * ChatApplication: the single-instance, D-Bus activatable application.
 *
 * Owns the one ChatClient, created at startup and dropped at shutdown, and
 * the main window.  The app action "open-conversation" (s: peer name) lets
 * a notification open a conversation through
 * org.freedesktop.Application.ActivateAction, whether the app runs already
 * or is activated for it.
 */

#include <glib-unix.h>
#include <signal.h>

#include "frontends/gtk/chat-application.h"
#include "frontends/gtk/chat-client.h"
#include "frontends/gtk/chat-preferences-window.h"
#include "frontends/gtk/chat-window.h"

struct _ChatApplication {
	AdwApplication parent_instance;

	ChatClient *client;
	guint sigterm_id;
	guint sigint_id;
};

G_DEFINE_FINAL_TYPE(ChatApplication, chat_application, ADW_TYPE_APPLICATION)

static ChatWindow *chat_application_ensure_window(ChatApplication *self) {
	GtkWindow *window =
		gtk_application_get_active_window(GTK_APPLICATION(self));

	if (!window) {
		window = GTK_WINDOW(chat_window_new(GTK_APPLICATION(self),
			self->client));
	}
	return CHAT_WINDOW(window);
}

static void chat_application_open_conversation(GSimpleAction *action,
		GVariant *parameter, gpointer user_data) {
	ChatApplication *self = CHAT_APPLICATION(user_data);
	ChatWindow *window = chat_application_ensure_window(self);

	chat_window_open_conversation(window,
		g_variant_get_string(parameter, NULL));
	gtk_window_present(GTK_WINDOW(window));
}

static void chat_application_preferences(GSimpleAction *action,
		GVariant *parameter, gpointer user_data) {
	ChatApplication *self = CHAT_APPLICATION(user_data);
	ChatWindow *window = chat_application_ensure_window(self);

	gtk_window_present(GTK_WINDOW(chat_preferences_window_new(
		GTK_WINDOW(window), self->client)));
}

static void chat_application_about(GSimpleAction *action,
		GVariant *parameter, gpointer user_data) {
	ChatApplication *self = CHAT_APPLICATION(user_data);
	ChatWindow *window = chat_application_ensure_window(self);
	GtkWidget *about;

	about = g_object_new(ADW_TYPE_ABOUT_WINDOW,
		"transient-for", window,
		"modal", TRUE,
		"application-name", "p2pchat",
		"application-icon", APPLICATION_ID,
		"developer-name", "The p2pchat developers",
		"version", PACKAGE_VERSION,
		"comments", "Hybrid peer-to-peer chat: a coordinator tells "
			"who is online, messages go straight to the peer.",
		"license-type", GTK_LICENSE_MIT_X11,
		NULL);
	gtk_window_present(GTK_WINDOW(about));
}

static void chat_application_quit(GSimpleAction *action, GVariant *parameter,
		gpointer user_data) {
	g_application_quit(G_APPLICATION(user_data));
}

/* SIGTERM and SIGINT end the app like Ctrl+Q: windows close, state is freed. */
static gboolean on_quit_signal(gpointer user_data) {
	g_application_quit(G_APPLICATION(user_data));
	return G_SOURCE_CONTINUE;
}

static const GActionEntry app_actions[] = {
	{ .name = "open-conversation", .parameter_type = "s",
		.activate = chat_application_open_conversation },
	{ .name = "preferences", .activate = chat_application_preferences },
	{ .name = "about", .activate = chat_application_about },
	{ .name = "quit", .activate = chat_application_quit },
};

static void chat_application_startup(GApplication *application) {
	ChatApplication *self = CHAT_APPLICATION(application);
	static const char *const quit_accels[] = { "<Control>q", NULL };
	static const char *const preferences_accels[] = {
		"<Control>comma", NULL };

	G_APPLICATION_CLASS(chat_application_parent_class)->startup(application);

	self->client = chat_client_new();
	g_action_map_add_action_entries(G_ACTION_MAP(self), app_actions,
		G_N_ELEMENTS(app_actions), self);
	gtk_application_set_accels_for_action(GTK_APPLICATION(self), "app.quit",
		quit_accels);
	gtk_application_set_accels_for_action(GTK_APPLICATION(self),
		"app.preferences", preferences_accels);

	self->sigterm_id = g_unix_signal_add(SIGTERM, on_quit_signal, self);
	self->sigint_id = g_unix_signal_add(SIGINT, on_quit_signal, self);
}

static void chat_application_activate(GApplication *application) {
	ChatApplication *self = CHAT_APPLICATION(application);

	gtk_window_present(GTK_WINDOW(chat_application_ensure_window(self)));
}

static void chat_application_shutdown(GApplication *application) {
	ChatApplication *self = CHAT_APPLICATION(application);

	G_APPLICATION_CLASS(chat_application_parent_class)->shutdown(
		application);
	g_clear_handle_id(&self->sigterm_id, g_source_remove);
	g_clear_handle_id(&self->sigint_id, g_source_remove);
	g_clear_object(&self->client);
}

static void chat_application_class_init(ChatApplicationClass *klass) {
	GApplicationClass *app_class = G_APPLICATION_CLASS(klass);

	app_class->startup = chat_application_startup;
	app_class->activate = chat_application_activate;
	app_class->shutdown = chat_application_shutdown;
}

static void chat_application_init(ChatApplication *self) {
}

ChatApplication *chat_application_new(void) {
	return g_object_new(CHAT_TYPE_APPLICATION,
		"application-id", APPLICATION_ID,
		"flags", G_APPLICATION_DEFAULT_FLAGS,
		"resource-base-path", "/org/p2pchat/P2pchat",
		NULL);
}
