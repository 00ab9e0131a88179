/* SPDX-License-Identifier: MIT */
/*
 * ChatWindow: the main window.
 *
 * Shows the login page until the daemon is online, then the leaflet of
 * roster and conversation.  Reads everything from the ChatClient it holds
 * (models and properties) and acts through its async calls, with one
 * GCancellable that dispose cancels, so no callback outlives the window.
 */

#include <errno.h>
#include <stdio.h>

#include "frontends/gtk/chat-bubble.h"
#include "frontends/gtk/chat-login-page.h"
#include "frontends/gtk/chat-paced-model.h"
#include "frontends/gtk/chat-peer-row.h"
#include "frontends/gtk/chat-window.h"

struct _ChatWindow {
	AdwApplicationWindow parent_instance;

	AdwToastOverlay *toast_overlay;
	GtkStack *main_stack;
	GtkBox *login_box;
	AdwStatusPage *no_daemon_page;
	GtkRevealer *notice_revealer;
	GtkSpinner *notice_spinner;
	GtkLabel *notice_label;
	AdwLeaflet *leaflet;
	AdwWindowTitle *sidebar_title;
	GtkSearchEntry *search_entry;
	GtkWidget *sidebar;
	GtkListView *roster_view;
	GtkWidget *conversation_box;
	GtkButton *back_button;
	AdwWindowTitle *conversation_title;
	GtkStack *conversation_stack;
	GtkScrolledWindow *message_scroller;
	GtkListView *message_view;
	GtkTextView *composer;
	GtkLabel *composer_placeholder;
	AdwStatusPage *empty_status;
	GtkSearchBar *history_search_bar;
	GtkSearchEntry *history_search_entry;
	GtkListBox *history_results;
	AdwStatusPage *history_no_results;

	ChatClient *client;
	GCancellable *cancellable;
	GtkStringFilter *roster_filter;
	GtkSingleSelection *roster_selection;
	GCancellable *search_cancellable;	/* of the SearchHistory call */
	GListModel *search_results;

	ChatPeer *peer;			/* of the open conversation */
	gulong peer_notify_handler;
	ChatPacedModel *conversation;	/* as the message view shows it */
	gulong conversation_handler;
	gulong pending_handler;
	guint reveal_tick_id;
	gboolean pin_to_bottom;		/* keep the newest message in view */
	guint scroll_to_end_id;

	guint no_daemon_timeout_id;	/* see on_no_daemon_timeout() */
	gboolean no_daemon_hint;	/* p2pchatd has been away too long */

	GHashTable *unread_wanted;	/* bound roster peers to ask about */
	guint unread_timeout_id;

	FILE *frame_log;		/* see chat_window_start_frame_log() */
	gulong after_paint_handler;
	GdkFrameClock *frame_clock;
};

G_DEFINE_FINAL_TYPE(ChatWindow, chat_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
	PROP_0,
	PROP_CLIENT,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static void chat_window_update_actions(ChatWindow *self) {
	gboolean online = chat_client_is_logged_in(self->client);

	gtk_widget_action_set_enabled(GTK_WIDGET(self), "win.send",
		online && self->peer);
	gtk_widget_action_set_enabled(GTK_WIDGET(self), "win.logout", online);
	gtk_widget_set_sensitive(GTK_WIDGET(self->composer),
		online && self->peer);
}

static void chat_window_update_conversation_title(ChatWindow *self) {
	g_autofree char *placeholder = NULL;
	g_autofree char *description = NULL;
	g_autofree char *label = NULL;

	if (!self->peer) {
		adw_window_title_set_title(self->conversation_title, "");
		adw_window_title_set_subtitle(self->conversation_title, "");
		return;
	}
	adw_window_title_set_title(self->conversation_title,
		chat_peer_get_name(self->peer));
	placeholder = g_strdup_printf("Message %s",
		chat_peer_get_name(self->peer));
	gtk_label_set_text(self->composer_placeholder, placeholder);
	description = g_strdup_printf(
		"Messages you and %s send will show here.",
		chat_peer_get_name(self->peer));
	adw_status_page_set_description(self->empty_status, description);
	gtk_accessible_update_property(GTK_ACCESSIBLE(self->composer),
		GTK_ACCESSIBLE_PROPERTY_PLACEHOLDER, placeholder, -1);
	adw_window_title_set_subtitle(self->conversation_title,
		chat_peer_get_online(self->peer) ? "online" : "offline");

	/* Says whose messages a screen reader is reading. */
	label = g_strdup_printf("Conversation with %s",
		chat_peer_get_name(self->peer));
	gtk_accessible_update_property(GTK_ACCESSIBLE(self->message_view),
		GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
}

/*
 * Tells the daemon which conversation the user sees: the open one while
 * the window is active and the conversation pane is shown, otherwise none
 * (p2pchatd then notifies about it, and leaves its messages unread).
 */
static void chat_window_update_active_conversation(ChatWindow *self) {
	gboolean shown = self->peer &&
		gtk_window_is_active(GTK_WINDOW(self)) &&
		chat_client_is_logged_in(self->client) &&
		(!adw_leaflet_get_folded(self->leaflet) ||
		adw_leaflet_get_visible_child(self->leaflet) ==
		self->conversation_box);

	chat_client_set_active_conversation(self->client,
		shown ? chat_peer_get_name(self->peer) : "");
}

static void on_active_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_window_update_active_conversation(CHAT_WINDOW(user_data));
}

/*
 * How long p2pchatd may be away before the window says so and how to start
 * it: long enough for a restart (or a slow D-Bus activation) to go unseen.
 */
#define CHAT_NO_DAEMON_HINT_SEC 3

static void on_client_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data);

/*
 * The no-daemon page has its text only while it is due, so that a screen
 * reader (which also finds hidden stack pages) does not read it otherwise.
 */
static void chat_window_set_no_daemon_hint(ChatWindow *self, gboolean hint) {
	self->no_daemon_hint = hint;
	adw_status_page_set_title(self->no_daemon_page,
		hint ? "p2pchatd Is Not Running" : "");
	adw_status_page_set_description(self->no_daemon_page, hint ?
		"p2pchat sends and receives messages through its background "
		"service, p2pchatd, which is not running. Start it with "
		"“systemctl --user start p2pchatd” (its log: “journalctl "
		"--user -u p2pchatd”); this window connects as soon as it "
		"runs." : "");
}

static gboolean on_no_daemon_timeout(gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	self->no_daemon_timeout_id = 0;
	chat_window_set_no_daemon_hint(self, TRUE);
	on_client_notify(G_OBJECT(self->client), NULL, self);
	return G_SOURCE_REMOVE;
}

/*
 * The page for a state: the chat while logged in (also while the
 * coordinator is away: peers still take messages), the login page for
 * logged-out users, and after CHAT_NO_DAEMON_HINT_SEC without p2pchatd a
 * page that says how to start it.  Until then a missing daemon keeps the
 * page shown (it may be restarting).
 */
static const char *chat_window_page_for(ChatWindow *self,
		ChatClientState state) {
	const char *shown = gtk_stack_get_visible_child_name(self->main_stack);

	switch (state) {
	case CHAT_CLIENT_STATE_NO_DAEMON:
		if (self->no_daemon_hint) {
			return "no-daemon";
		}
		return g_strcmp0(shown, "chat") == 0 ? "chat" : "login";
	case CHAT_CLIENT_STATE_OFFLINE:
	case CHAT_CLIENT_STATE_CONNECTING:
		return "login";
	case CHAT_CLIENT_STATE_ONLINE:
	case CHAT_CLIENT_STATE_RECONNECTING:
		return "chat";
	}
	return "login";
}

/* The notice over the conversation while the chat works only in part. */
static void chat_window_update_notice(ChatWindow *self, const char *text) {
	/* Hidden, it says nothing (a screen reader still finds it). */
	gtk_label_set_text(self->notice_label, text ? text : "");
	gtk_spinner_set_spinning(self->notice_spinner, text != NULL);
	gtk_revealer_set_reveal_child(self->notice_revealer, text != NULL);
	gtk_widget_set_visible(GTK_WIDGET(self->notice_revealer),
		text != NULL);
}

static void on_client_notify(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	ChatClientState state = chat_client_get_state(self->client);
	g_autofree char *subtitle = NULL;
	const char *notice = NULL;

	switch (state) {
	case CHAT_CLIENT_STATE_NO_DAEMON:
		subtitle = g_strdup("p2pchatd is not running");
		notice = "Waiting for p2pchatd…";
		break;
	case CHAT_CLIENT_STATE_OFFLINE:
		subtitle = g_strdup("Offline");
		break;
	case CHAT_CLIENT_STATE_CONNECTING:
		subtitle = g_strdup("Connecting…");
		break;
	case CHAT_CLIENT_STATE_RECONNECTING:
		subtitle = g_strdup("Reconnecting…");
		notice = "Reconnecting to the coordinator… Peers that are "
			"online still get your messages.";
		break;
	case CHAT_CLIENT_STATE_ONLINE:
		subtitle = g_strdup_printf("Online as %s",
			chat_client_get_username(self->client));
		break;
	}
	if (state != CHAT_CLIENT_STATE_NO_DAEMON) {
		g_clear_handle_id(&self->no_daemon_timeout_id,
			g_source_remove);
		if (self->no_daemon_hint) {
			chat_window_set_no_daemon_hint(self, FALSE);
		}
	} else if (!self->no_daemon_hint && !self->no_daemon_timeout_id) {
		self->no_daemon_timeout_id = g_timeout_add_seconds(
			CHAT_NO_DAEMON_HINT_SEC, on_no_daemon_timeout, self);
	}
	adw_window_title_set_subtitle(self->sidebar_title, subtitle);
	chat_window_update_notice(self, notice);
	gtk_stack_set_visible_child_name(self->main_stack,
		chat_window_page_for(self, state));
	chat_window_update_actions(self);
	chat_window_update_active_conversation(self);
	if (self->peer && state == CHAT_CLIENT_STATE_ONLINE) {
		chat_client_load_history(self->client,
			chat_peer_get_name(self->peer), FALSE);
	}
}

static void on_peer_notify_online(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	chat_window_update_conversation_title(CHAT_WINDOW(user_data));
}

/*
 * Scrolls to the newest message, and so pins the view to the bottom.
 *
 * From an idle, once the list's layout is over: the list blocks its own
 * handler while it sets the adjustment from its anchor (that is when upper
 * changes), so a value set then would not move the anchor and the next
 * layout would put the old position back.  Set afterwards, the list takes
 * the value and anchors the last row at the bottom.
 */
static gboolean on_scroll_to_end_idle(gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	GtkAdjustment *adj =
		gtk_scrolled_window_get_vadjustment(self->message_scroller);

	self->scroll_to_end_id = 0;
	gtk_adjustment_set_value(adj, gtk_adjustment_get_upper(adj) -
		gtk_adjustment_get_page_size(adj));
	return G_SOURCE_REMOVE;
}

static void chat_window_scroll_to_end(ChatWindow *self) {
	if (self->scroll_to_end_id == 0) {
		self->scroll_to_end_id = g_idle_add_full(
			G_PRIORITY_HIGH_IDLE + 30, on_scroll_to_end_idle, self,
			NULL);
	}
}

static void on_message_adjustment_notify_upper(GObject *object,
		GParamSpec *pspec, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (self->pin_to_bottom) {
		chat_window_scroll_to_end(self);
	}
}

static void on_message_adjustment_value_changed(GtkAdjustment *adj,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	/* Scrolling up unpins; coming back to the end pins again. */
	self->pin_to_bottom = gtk_adjustment_get_value(adj) +
		gtk_adjustment_get_page_size(adj) >=
		gtk_adjustment_get_upper(adj) - 2.0;

	/* At the top, the page before comes from the history. */
	if (self->peer && gtk_adjustment_get_value(adj) <= 0.0 &&
			gtk_adjustment_get_upper(adj) >
			gtk_adjustment_get_page_size(adj)) {
		chat_client_load_history(self->client,
			chat_peer_get_name(self->peer), TRUE);
	}
}

/* An empty conversation says so rather than showing a blank pane. */
static void chat_window_update_empty(ChatWindow *self) {
	gboolean empty = self->conversation &&
		g_list_model_get_n_items(G_LIST_MODEL(self->conversation)) == 0 &&
		chat_paced_model_get_pending(self->conversation) == 0;

	gtk_widget_set_visible(GTK_WIDGET(self->empty_status), empty);
}

static void on_composer_buffer_changed(GtkTextBuffer *buffer,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	gtk_widget_set_visible(GTK_WIDGET(self->composer_placeholder),
		gtk_text_buffer_get_char_count(buffer) == 0);
}

static void on_conversation_items_changed(GListModel *model, guint position,
		guint removed, guint added, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	/*
	 * A new message (not a history page put before the others) pins the
	 * view to the end; rows put before while it is pinned keep it there.
	 */
	if (added > 0 && position + added == g_list_model_get_n_items(model)) {
		self->pin_to_bottom = TRUE;
	}
	if (added > 0 && self->pin_to_bottom) {
		chat_window_scroll_to_end(self);
	}
	chat_window_update_empty(self);
}

/*
 * A history page is shown CHAT_REVEAL_STEP messages per frame: each frame
 * then binds and measures only that many new bubbles (see ChatPacedModel).
 */
#define CHAT_REVEAL_STEP 20

static gboolean on_reveal_tick(GtkWidget *widget, GdkFrameClock *clock,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (chat_paced_model_reveal(self->conversation) > 0) {
		return G_SOURCE_CONTINUE;
	}
	self->reveal_tick_id = 0;
	return G_SOURCE_REMOVE;
}

static void on_conversation_notify_pending(GObject *object,
		GParamSpec *pspec, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	chat_window_update_empty(self);
	if (self->reveal_tick_id == 0 &&
			chat_paced_model_get_pending(self->conversation) > 0) {
		self->reveal_tick_id = gtk_widget_add_tick_callback(
			GTK_WIDGET(self->message_view), on_reveal_tick, self,
			NULL);
	}
}

static void chat_window_clear_conversation(ChatWindow *self) {
	if (self->peer) {
		g_clear_signal_handler(&self->peer_notify_handler, self->peer);
		g_clear_object(&self->peer);
	}
	if (self->reveal_tick_id) {
		gtk_widget_remove_tick_callback(GTK_WIDGET(self->message_view),
			self->reveal_tick_id);
		self->reveal_tick_id = 0;
	}
	if (self->conversation) {
		g_clear_signal_handler(&self->conversation_handler,
			self->conversation);
		g_clear_signal_handler(&self->pending_handler,
			self->conversation);
		g_clear_object(&self->conversation);
	}
}

/*
 * Selects the roster row of a peer (none: no row), so that the row and the
 * view agree.
 */
static void chat_window_select_peer_row(ChatWindow *self, ChatPeer *peer) {
	GListModel *model = G_LIST_MODEL(self->roster_selection);
	guint n = g_list_model_get_n_items(model);

	if (gtk_single_selection_get_selected_item(self->roster_selection) ==
			(gpointer) peer) {
		return;
	}
	for (guint i = 0; peer && i < n; i++) {
		g_autoptr(ChatPeer) item = g_list_model_get_item(model, i);

		if (item == peer) {
			gtk_single_selection_set_selected(
				self->roster_selection, i);
			return;
		}
	}
	if (gtk_single_selection_get_selected(self->roster_selection) !=
			GTK_INVALID_LIST_POSITION) {
		gtk_single_selection_set_selected(self->roster_selection,
			GTK_INVALID_LIST_POSITION);
	}
}

/**
 * chat_window_open_conversation() - Shows the conversation with a peer.
 * @self: the window
 * @peer: the peer's name; one not in the roster yet is added to it, so a
 *        notification opens its conversation even before the roster has
 *        arrived from the daemon.
 */
void chat_window_open_conversation(ChatWindow *self, const char *peer) {
	g_autoptr(GtkNoSelection) selection = NULL;
	ChatPeer *item;

	g_return_if_fail(CHAT_IS_WINDOW(self));
	g_return_if_fail(peer);

	if (!*peer) {
		return;
	}
	gtk_search_bar_set_search_mode(self->history_search_bar, FALSE);
	item = chat_client_ensure_peer(self->client, peer);
	if (item != self->peer) {
		chat_window_clear_conversation(self);
		self->peer = g_object_ref(item);
		self->peer_notify_handler = g_signal_connect(item,
			"notify::online", G_CALLBACK(on_peer_notify_online),
			self);
		self->conversation = chat_paced_model_new(
			chat_client_get_conversation(self->client, peer),
			CHAT_REVEAL_STEP);
		self->conversation_handler = g_signal_connect(
			self->conversation, "items-changed",
			G_CALLBACK(on_conversation_items_changed), self);
		self->pending_handler = g_signal_connect(self->conversation,
			"notify::pending",
			G_CALLBACK(on_conversation_notify_pending), self);

		selection = gtk_no_selection_new(
			g_object_ref(G_LIST_MODEL(self->conversation)));
		gtk_list_view_set_model(self->message_view,
			GTK_SELECTION_MODEL(selection));
		self->pin_to_bottom = TRUE;
		chat_window_scroll_to_end(self);
	}

	chat_window_select_peer_row(self, item);
	chat_window_update_empty(self);
	chat_window_update_conversation_title(self);
	chat_window_update_actions(self);
	gtk_stack_set_visible_child_name(self->conversation_stack,
		"conversation");
	adw_leaflet_set_visible_child(self->leaflet, self->conversation_box);
	gtk_widget_grab_focus(GTK_WIDGET(self->composer));
	chat_client_load_history(self->client, peer, FALSE);
	chat_window_update_active_conversation(self);
}

/*
 * The roster's selection only shows which conversation is open: a
 * conversation opens when a row is activated (a click, Enter), never when
 * the selection moves (GTK selects rows under the pointer, the keyboard
 * moves it, a re-sort moves rows).  So any other selection is put back on
 * the open conversation's row, or cleared when it is filtered out.
 */
static void on_roster_selection_changed(GtkSingleSelection *selection,
		GParamSpec *pspec, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (gtk_single_selection_get_selected_item(selection) !=
			(gpointer) self->peer) {
		chat_window_select_peer_row(self, self->peer);
	}
}

/*
 * The client moves a peer whose presence changes (remove, insert) and may
 * reload the whole roster in batches; either way the open conversation's
 * row loses its selection, so it is selected again once it is back.
 */
static void on_roster_items_changed(GListModel *model, guint position,
		guint removed, guint added, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (!self->peer || gtk_single_selection_get_selected(
			self->roster_selection) != GTK_INVALID_LIST_POSITION) {
		return;
	}
	for (guint i = position; i < position + added; i++) {
		g_autoptr(ChatPeer) item = g_list_model_get_item(model, i);

		if (item == self->peer) {
			gtk_single_selection_set_selected(
				self->roster_selection, i);
			return;
		}
	}
}

static void on_roster_view_activate(GtkListView *view, guint position,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	g_autoptr(ChatPeer) peer = g_list_model_get_item(
		G_LIST_MODEL(self->roster_selection), position);

	if (peer) {
		chat_window_open_conversation(self, chat_peer_get_name(peer));
	}
}

static void on_search_entry_search_changed(GtkSearchEntry *entry,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	gtk_string_filter_set_search(self->roster_filter,
		gtk_editable_get_text(GTK_EDITABLE(entry)));
}

static void on_back_button_clicked(GtkButton *button, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	adw_leaflet_navigate(self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
}

static void on_send_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GError) error = NULL;
	g_autoptr(ChatMessage) message = NULL;
	g_autofree char *text = NULL;
	ChatWindow *self;

	message = chat_client_send_message_finish(CHAT_CLIENT(source), result,
		&error);
	if (message || g_error_matches(error, G_IO_ERROR,
			G_IO_ERROR_CANCELLED)) {
		return;
	}

	self = CHAT_WINDOW(user_data);
	text = g_strdup_printf("Could not send the message: %s",
		error->message);
	adw_toast_overlay_add_toast(self->toast_overlay, adw_toast_new(text));
}

static void chat_window_send(GtkWidget *widget, const char *action_name,
		GVariant *parameter) {
	ChatWindow *self = CHAT_WINDOW(widget);
	GtkTextBuffer *buffer = gtk_text_view_get_buffer(self->composer);
	g_autofree char *text = NULL;
	GtkTextIter start, end;

	if (!self->peer) {
		return;
	}
	gtk_text_buffer_get_bounds(buffer, &start, &end);
	text = gtk_text_buffer_get_text(buffer, &start, &end, FALSE);
	g_strstrip(text);
	if (!*text) {
		return;
	}

	gtk_text_buffer_set_text(buffer, "", 0);
	chat_client_send_message_async(self->client,
		chat_peer_get_name(self->peer), text, self->cancellable,
		on_send_ready, self);
}

static void on_logout_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	ChatWindow *self;

	if (chat_client_logout_finish(CHAT_CLIENT(source), result, &error) ||
			g_error_matches(error, G_IO_ERROR,
			G_IO_ERROR_CANCELLED)) {
		return;
	}

	self = CHAT_WINDOW(user_data);
	text = g_strdup_printf("Could not log out: %s", error->message);
	adw_toast_overlay_add_toast(self->toast_overlay, adw_toast_new(text));
}

static void on_logout_dialog_response(AdwMessageDialog *dialog,
		const char *response, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (g_str_equal(response, "logout")) {
		chat_client_logout_async(self->client, self->cancellable,
			on_logout_ready, self);
	}
}

/* Logging out is asked about first: Enter on a focused button is easy. */
static void chat_window_logout(GtkWidget *widget, const char *action_name,
		GVariant *parameter) {
	ChatWindow *self = CHAT_WINDOW(widget);
	GtkWidget *dialog;

	dialog = adw_message_dialog_new(GTK_WINDOW(self), "Log Out?",
		"You will show as offline. Messages you write are queued "
		"until you log in again.");
	adw_message_dialog_add_responses(ADW_MESSAGE_DIALOG(dialog),
		"cancel", "_Cancel", "logout", "_Log Out", NULL);
	adw_message_dialog_set_response_appearance(ADW_MESSAGE_DIALOG(dialog),
		"logout", ADW_RESPONSE_DESTRUCTIVE);
	adw_message_dialog_set_default_response(ADW_MESSAGE_DIALOG(dialog),
		"cancel");
	adw_message_dialog_set_close_response(ADW_MESSAGE_DIALOG(dialog),
		"cancel");
	g_signal_connect_object(dialog, "response",
		G_CALLBACK(on_logout_dialog_response), self, 0);
	gtk_window_present(GTK_WINDOW(dialog));
}

/* How many messages a search shows at most. */
#define CHAT_SEARCH_LIMIT 50

/*
 * The message search: while its bar is shown, the conversation pane shows
 * the results of the search text instead of the conversation.
 */
static GtkWidget *chat_window_create_result_row(gpointer item,
		gpointer user_data) {
	ChatMessage *message = CHAT_MESSAGE(item);
	g_autoptr(GDateTime) time = NULL;
	g_autofree char *title = NULL;
	g_autofree char *date = NULL;
	GtkWidget *row = adw_action_row_new();

	title = g_strdup_printf("%s — %s", chat_message_get_peer(message),
		chat_message_get_text(message));
	time = g_date_time_new_from_unix_local(
		chat_message_get_time(message) / G_USEC_PER_SEC);
	if (time) {
		date = g_date_time_format(time, "%e %b %Y, %H:%M");
	}
	adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(row), FALSE);
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(row), title);
	adw_action_row_set_title_lines(ADW_ACTION_ROW(row), 2);
	adw_action_row_set_subtitle(ADW_ACTION_ROW(row),
		date ? g_strstrip(date) : "");
	gtk_list_box_row_set_activatable(GTK_LIST_BOX_ROW(row), TRUE);
	return row;
}

static void chat_window_set_search_results(ChatWindow *self,
		GListModel *results) {
	g_set_object(&self->search_results, results);
	gtk_list_box_bind_model(self->history_results, results,
		results ? chat_window_create_result_row : NULL, NULL, NULL);
	gtk_widget_set_visible(GTK_WIDGET(self->history_no_results),
		results && g_list_model_get_n_items(results) == 0);
	gtk_widget_set_visible(GTK_WIDGET(self->history_results),
		results && g_list_model_get_n_items(results) > 0);
}

static void on_search_history_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(GError) error = NULL;
	g_autoptr(GListModel) results = NULL;
	g_autofree char *text = NULL;
	ChatWindow *self;

	results = chat_client_search_history_finish(CHAT_CLIENT(source),
		result, &error);
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		return;
	}
	self = CHAT_WINDOW(user_data);
	if (!results) {
		text = g_strdup_printf("Could not search the messages: %s",
			error->message);
		adw_toast_overlay_add_toast(self->toast_overlay,
			adw_toast_new(text));
		return;
	}
	chat_window_set_search_results(self, results);
}

static void chat_window_cancel_search(ChatWindow *self) {
	if (self->search_cancellable) {
		g_cancellable_cancel(self->search_cancellable);
		g_clear_object(&self->search_cancellable);
	}
}

/* search-changed comes once typing pauses: GtkSearchEntry debounces it. */
static void on_history_search_changed(GtkSearchEntry *entry,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	const char *query = gtk_editable_get_text(GTK_EDITABLE(entry));

	chat_window_cancel_search(self);
	if (!*query) {
		chat_window_set_search_results(self, NULL);
		return;
	}
	self->search_cancellable = g_cancellable_new();
	chat_client_search_history_async(self->client, query,
		CHAT_SEARCH_LIMIT, self->search_cancellable,
		on_search_history_ready, self);
}

static void on_history_search_mode(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	gboolean active =
		gtk_search_bar_get_search_mode(self->history_search_bar);

	gtk_widget_action_set_enabled(GTK_WIDGET(self), "win.close-search",
		active);
	if (active) {
		gtk_stack_set_visible_child_name(self->conversation_stack,
			"search");
		gtk_widget_grab_focus(GTK_WIDGET(self->history_search_entry));
		return;
	}
	chat_window_cancel_search(self);
	gtk_editable_set_text(GTK_EDITABLE(self->history_search_entry), "");
	chat_window_set_search_results(self, NULL);
	gtk_stack_set_visible_child_name(self->conversation_stack,
		self->peer ? "conversation" : "empty");
	if (self->peer) {
		gtk_widget_grab_focus(GTK_WIDGET(self->composer));
	}
}

static void on_history_result_activated(GtkListBox *box, GtkListBoxRow *row,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	g_autoptr(ChatMessage) message = NULL;
	g_autofree char *peer = NULL;

	if (!self->search_results) {
		return;
	}
	message = g_list_model_get_item(self->search_results,
		gtk_list_box_row_get_index(row));
	if (!message) {
		return;
	}
	peer = g_strdup(chat_message_get_peer(message));
	gtk_search_bar_set_search_mode(self->history_search_bar, FALSE);
	chat_window_open_conversation(self, peer);
}

/* Ctrl+Shift+F, the search button: the message search. */
static void chat_window_search_messages(GtkWidget *widget,
		const char *action_name, GVariant *parameter) {
	ChatWindow *self = CHAT_WINDOW(widget);

	if (g_strcmp0(gtk_stack_get_visible_child_name(self->main_stack),
			"chat") != 0) {
		return;
	}
	adw_leaflet_set_visible_child(self->leaflet, self->conversation_box);
	gtk_search_bar_set_search_mode(self->history_search_bar, TRUE);
	gtk_widget_grab_focus(GTK_WIDGET(self->history_search_entry));
}

/* Escape, wherever the focus is, while the message search is shown. */
static void chat_window_close_search(GtkWidget *widget,
		const char *action_name, GVariant *parameter) {
	ChatWindow *self = CHAT_WINDOW(widget);

	gtk_search_bar_set_search_mode(self->history_search_bar, FALSE);
}

/* Ctrl+K, Ctrl+F: to the search field, the list of conversations shown. */
static void chat_window_search(GtkWidget *widget, const char *action_name,
		GVariant *parameter) {
	ChatWindow *self = CHAT_WINDOW(widget);

	if (g_strcmp0(gtk_stack_get_visible_child_name(self->main_stack),
			"chat") != 0) {
		return;
	}
	adw_leaflet_set_visible_child(self->leaflet, self->sidebar);
	gtk_widget_grab_focus(GTK_WIDGET(self->search_entry));
}

/*
 * Back to the list in the narrow layout (Alt+Left, the Back button): the
 * focus goes to the open conversation's row, or the list, never to the
 * header bar's buttons.
 */
static void on_leaflet_visible_child(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	GtkWidget *focus = gtk_root_get_focus(GTK_ROOT(self));

	if (!adw_leaflet_get_folded(self->leaflet) ||
			adw_leaflet_get_visible_child(self->leaflet) !=
			self->sidebar) {
		return;
	}
	if (focus && gtk_widget_is_ancestor(focus,
			GTK_WIDGET(self->roster_view))) {
		return;
	}
	gtk_widget_grab_focus(GTK_WIDGET(self->roster_view));
}

/* Enter sends; Shift+Enter falls through to the text view: a new line. */
static gboolean on_composer_key_pressed(GtkEventControllerKey *controller,
		guint keyval, guint keycode, GdkModifierType state,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (keyval != GDK_KEY_Return && keyval != GDK_KEY_KP_Enter &&
			keyval != GDK_KEY_ISO_Enter) {
		return FALSE;
	}
	if (state & (GDK_SHIFT_MASK | GDK_CONTROL_MASK | GDK_ALT_MASK)) {
		return FALSE;
	}
	gtk_widget_activate_action(GTK_WIDGET(self), "win.send", NULL);
	return TRUE;
}

/*
 * Both lists recycle one row widget per visible item: the widget type, its
 * property that takes the item, and whether activating a row means anything.
 *
 * Unbinding leaves the row's item in place: GTK 4.8's signal factory
 * unbinds and binds a row again whenever its position changes, so a page put
 * above would otherwise clear and refill every live row, and each would be
 * measured anew (wrapped labels: most of the frame).  Bound again to the
 * same item, a row changes nothing; bound to another, it takes that one.
 */
typedef struct RowKind {
	GType (*get_type)(void);
	const char *property;
	gboolean activatable;
} RowKind;

static const RowKind roster_row_kind = {
	chat_peer_row_get_type, "peer", TRUE,
};
static const RowKind message_row_kind = {
	chat_bubble_get_type, "message", FALSE,
};

/*
 * No row is selectable by the user: with single-click-activate, GTK would
 * select the row under the pointer; the window selects the open
 * conversation's row itself.
 */
static void on_factory_setup(GtkSignalListItemFactory *factory,
		GtkListItem *item, gpointer user_data) {
	const RowKind *kind = user_data;

	gtk_list_item_set_selectable(item, FALSE);
	gtk_list_item_set_activatable(item, kind->activatable);
	gtk_list_item_set_child(item, g_object_new(kind->get_type(), NULL));
}

static void on_factory_bind(GtkSignalListItemFactory *factory,
		GtkListItem *item, gpointer user_data) {
	const RowKind *kind = user_data;

	g_object_set(gtk_list_item_get_child(item), kind->property,
		gtk_list_item_get_item(item), NULL);
}

static GtkListItemFactory *chat_window_factory_new(const RowKind *kind) {
	GtkListItemFactory *factory = gtk_signal_list_item_factory_new();

	g_signal_connect(factory, "setup", G_CALLBACK(on_factory_setup),
		(gpointer) kind);
	g_signal_connect(factory, "bind", G_CALLBACK(on_factory_bind),
		(gpointer) kind);
	return factory;
}

/*
 * A row on screen shows its peer's unread count, asked for once per peer;
 * only for rows still bound when scrolling has paused for
 * CHAT_UNREAD_DELAY_MSEC, so that flinging through 10,000 peers does not
 * make 10,000 calls.
 */
#define CHAT_UNREAD_DELAY_MSEC 150

static gboolean on_unread_timeout(gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);
	GHashTableIter iter;
	gpointer peer;

	self->unread_timeout_id = 0;
	g_hash_table_iter_init(&iter, self->unread_wanted);
	while (g_hash_table_iter_next(&iter, &peer, NULL)) {
		chat_client_fetch_unread(self->client, peer);
	}
	g_hash_table_remove_all(self->unread_wanted);
	return G_SOURCE_REMOVE;
}

static void on_roster_factory_bind(GtkSignalListItemFactory *factory,
		GtkListItem *item, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (!self->unread_wanted) {
		return;
	}
	g_hash_table_add(self->unread_wanted,
		g_object_ref(gtk_list_item_get_item(item)));
	g_clear_handle_id(&self->unread_timeout_id, g_source_remove);
	self->unread_timeout_id = g_timeout_add(CHAT_UNREAD_DELAY_MSEC,
		on_unread_timeout, self);
}

static void on_roster_factory_unbind(GtkSignalListItemFactory *factory,
		GtkListItem *item, gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	if (self->unread_wanted) {
		g_hash_table_remove(self->unread_wanted,
			gtk_list_item_get_item(item));
	}
}

/*
 * The roster as shown: in the client's name order, filtered by the search
 * text.  The filter works incrementally, so a roster of thousands does not
 * stall the main loop.
 */
static void chat_window_setup_roster(ChatWindow *self) {
	g_autoptr(GtkListItemFactory) factory = NULL;
	GtkFilterListModel *filtered;

	self->roster_filter = gtk_string_filter_new(
		gtk_property_expression_new(CHAT_TYPE_PEER, NULL, "name"));
	gtk_string_filter_set_match_mode(self->roster_filter,
		GTK_STRING_FILTER_MATCH_MODE_SUBSTRING);
	gtk_string_filter_set_ignore_case(self->roster_filter, TRUE);
	filtered = gtk_filter_list_model_new(
		g_object_ref(chat_client_get_peers(self->client)),
		GTK_FILTER(g_object_ref(self->roster_filter)));
	gtk_filter_list_model_set_incremental(filtered, TRUE);

	self->roster_selection = gtk_single_selection_new(
		G_LIST_MODEL(filtered));
	gtk_single_selection_set_autoselect(self->roster_selection, FALSE);
	gtk_single_selection_set_can_unselect(self->roster_selection, TRUE);
	gtk_single_selection_set_selected(self->roster_selection,
		GTK_INVALID_LIST_POSITION);
	g_signal_connect(self->roster_selection, "notify::selected-item",
		G_CALLBACK(on_roster_selection_changed), self);
	g_signal_connect_after(self->roster_selection, "items-changed",
		G_CALLBACK(on_roster_items_changed), self);

	factory = chat_window_factory_new(&roster_row_kind);
	g_signal_connect(factory, "bind", G_CALLBACK(on_roster_factory_bind),
		self);
	g_signal_connect(factory, "unbind",
		G_CALLBACK(on_roster_factory_unbind), self);
	gtk_list_view_set_factory(self->roster_view, factory);
	gtk_list_view_set_model(self->roster_view,
		GTK_SELECTION_MODEL(self->roster_selection));
}

/*
 * For bench/gtk-roster: with P2PCHAT_GTK_FRAME_LOG=PATH the window keeps
 * its frame clock ticking and, after each frame is painted, writes a line
 * "MONOTONIC_USEC ROSTER_ROWS MESSAGES" (MESSAGES: those the open
 * conversation shows) to PATH.  A gap between two lines is how long the
 * main loop could not draw; the first line with rows is the time to the
 * first roster frame.
 */
static void on_frame_clock_after_paint(GdkFrameClock *clock,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(user_data);

	fprintf(self->frame_log, "%" G_GINT64_FORMAT " %u %u\n",
		g_get_monotonic_time(),
		g_list_model_get_n_items(G_LIST_MODEL(self->roster_selection)),
		self->conversation ? g_list_model_get_n_items(
		G_LIST_MODEL(self->conversation)) : 0);
	fflush(self->frame_log);
}

static gboolean on_frame_log_tick(GtkWidget *widget, GdkFrameClock *clock,
		gpointer user_data) {
	ChatWindow *self = CHAT_WINDOW(widget);

	if (!self->frame_clock) {
		self->frame_clock = g_object_ref(clock);
		self->after_paint_handler = g_signal_connect(clock,
			"after-paint", G_CALLBACK(on_frame_clock_after_paint),
			self);
	}
	return G_SOURCE_CONTINUE;
}

static void chat_window_start_frame_log(ChatWindow *self) {
	const char *path = g_getenv("P2PCHAT_GTK_FRAME_LOG");

	if (!path || !*path) {
		return;
	}
	self->frame_log = fopen(path, "we");
	if (!self->frame_log) {
		g_warning("Failed to open frame log '%s': %s", path,
			g_strerror(errno));
		return;
	}
	gtk_widget_add_tick_callback(GTK_WIDGET(self), on_frame_log_tick,
		NULL, NULL);
}

static void chat_window_constructed(GObject *object) {
	ChatWindow *self = CHAT_WINDOW(object);
	GtkWidget *login_page;

	G_OBJECT_CLASS(chat_window_parent_class)->constructed(object);

	login_page = chat_login_page_new(self->client);
	gtk_widget_set_vexpand(login_page, TRUE);
	gtk_box_append(self->login_box, login_page);

	chat_window_setup_roster(self);
	chat_window_start_frame_log(self);

	g_signal_connect_object(self->client, "notify::state",
		G_CALLBACK(on_client_notify), self, 0);
	g_signal_connect_object(self->client, "notify::username",
		G_CALLBACK(on_client_notify), self, 0);
	on_client_notify(G_OBJECT(self->client), NULL, self);
	if (!chat_client_is_logged_in(self->client)) {
		gtk_widget_grab_focus(login_page);
	}
}

static void chat_window_dispose(GObject *object) {
	ChatWindow *self = CHAT_WINDOW(object);

	g_cancellable_cancel(self->cancellable);
	chat_window_cancel_search(self);
	if (self->history_results) {
		gtk_list_box_bind_model(self->history_results, NULL, NULL,
			NULL, NULL);
	}
	g_clear_object(&self->search_results);
	g_clear_handle_id(&self->unread_timeout_id, g_source_remove);
	g_clear_handle_id(&self->scroll_to_end_id, g_source_remove);
	g_clear_handle_id(&self->no_daemon_timeout_id, g_source_remove);
	if (self->frame_clock) {
		g_clear_signal_handler(&self->after_paint_handler,
			self->frame_clock);
		g_clear_object(&self->frame_clock);
	}
	g_clear_pointer(&self->frame_log, fclose);
	if (self->client) {
		chat_client_set_active_conversation(self->client, "");
	}
	chat_window_clear_conversation(self);
	if (self->roster_view) {
		gtk_list_view_set_model(self->roster_view, NULL);
	}
	g_clear_pointer(&self->unread_wanted, g_hash_table_unref);
	g_clear_object(&self->roster_selection);
	g_clear_object(&self->roster_filter);
	g_clear_object(&self->client);
	g_clear_object(&self->cancellable);
	gtk_widget_dispose_template(GTK_WIDGET(self), CHAT_TYPE_WINDOW);

	G_OBJECT_CLASS(chat_window_parent_class)->dispose(object);
}

static void chat_window_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatWindow *self = CHAT_WINDOW(object);

	switch (prop_id) {
	case PROP_CLIENT:
		g_value_set_object(value, self->client);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_window_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatWindow *self = CHAT_WINDOW(object);

	switch (prop_id) {
	case PROP_CLIENT:
		self->client = g_value_dup_object(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_window_class_init(ChatWindowClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

	object_class->constructed = chat_window_constructed;
	object_class->dispose = chat_window_dispose;
	object_class->get_property = chat_window_get_property;
	object_class->set_property = chat_window_set_property;

	properties[PROP_CLIENT] = g_param_spec_object("client", NULL, NULL,
		CHAT_TYPE_CLIENT, G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
		G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	gtk_widget_class_install_action(widget_class, "win.send", NULL,
		chat_window_send);
	gtk_widget_class_install_action(widget_class, "win.logout", NULL,
		chat_window_logout);
	gtk_widget_class_install_action(widget_class, "win.search", NULL,
		chat_window_search);
	gtk_widget_class_install_action(widget_class, "win.search-messages",
		NULL, chat_window_search_messages);
	gtk_widget_class_install_action(widget_class, "win.close-search",
		NULL, chat_window_close_search);
	gtk_widget_class_add_binding_action(widget_class, GDK_KEY_F,
		GDK_CONTROL_MASK | GDK_SHIFT_MASK, "win.search-messages", NULL);
	gtk_widget_class_add_binding_action(widget_class, GDK_KEY_f,
		GDK_CONTROL_MASK | GDK_SHIFT_MASK, "win.search-messages", NULL);
	gtk_widget_class_add_binding_action(widget_class, GDK_KEY_Escape,
		0, "win.close-search", NULL);
	gtk_widget_class_add_binding_action(widget_class, GDK_KEY_k,
		GDK_CONTROL_MASK, "win.search", NULL);
	gtk_widget_class_add_binding_action(widget_class, GDK_KEY_f,
		GDK_CONTROL_MASK, "win.search", NULL);

	gtk_widget_class_set_template_from_resource(widget_class,
		"/org/p2pchat/P2pchat/chat-window.ui");
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		toast_overlay);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		composer_placeholder);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		empty_status);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		main_stack);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		login_box);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		no_daemon_page);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		notice_revealer);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		notice_spinner);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		notice_label);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow, leaflet);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow, sidebar);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		sidebar_title);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		search_entry);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		roster_view);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		conversation_box);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		back_button);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		conversation_title);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		conversation_stack);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		message_scroller);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		message_view);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		composer);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		history_search_bar);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		history_search_entry);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		history_results);
	gtk_widget_class_bind_template_child(widget_class, ChatWindow,
		history_no_results);
}

static void chat_window_init(ChatWindow *self) {
	g_autoptr(GtkListItemFactory) factory = NULL;
	GtkEventController *key;
	GtkAdjustment *adj;

	gtk_widget_init_template(GTK_WIDGET(self));
	self->cancellable = g_cancellable_new();
	self->unread_wanted = g_hash_table_new_full(g_direct_hash,
		g_direct_equal, g_object_unref, NULL);

	/* Signals are connected here so the .ui validates on its own. */
	g_signal_connect(self->search_entry, "search-changed",
		G_CALLBACK(on_search_entry_search_changed), self);
	g_signal_connect(self->roster_view, "activate",
		G_CALLBACK(on_roster_view_activate), self);
	g_signal_connect(self->back_button, "clicked",
		G_CALLBACK(on_back_button_clicked), self);
	g_signal_connect(self->history_search_entry, "search-changed",
		G_CALLBACK(on_history_search_changed), self);
	g_signal_connect(self->history_search_bar, "notify::search-mode-enabled",
		G_CALLBACK(on_history_search_mode), self);
	g_signal_connect(self->history_results, "row-activated",
		G_CALLBACK(on_history_result_activated), self);
	gtk_search_bar_connect_entry(self->history_search_bar,
		GTK_EDITABLE(self->history_search_entry));
	gtk_widget_action_set_enabled(GTK_WIDGET(self), "win.close-search",
		FALSE);

	key = gtk_event_controller_key_new();
	gtk_event_controller_set_propagation_phase(key, GTK_PHASE_CAPTURE);
	g_signal_connect(key, "key-pressed",
		G_CALLBACK(on_composer_key_pressed), self);
	gtk_widget_add_controller(GTK_WIDGET(self->composer), key);
	g_signal_connect(gtk_text_view_get_buffer(self->composer), "changed",
		G_CALLBACK(on_composer_buffer_changed), self);

	adj = gtk_scrolled_window_get_vadjustment(self->message_scroller);
	g_signal_connect(adj, "notify::upper",
		G_CALLBACK(on_message_adjustment_notify_upper), self);
	g_signal_connect(adj, "value-changed",
		G_CALLBACK(on_message_adjustment_value_changed), self);

	g_signal_connect(self, "notify::is-active",
		G_CALLBACK(on_active_notify), self);
	g_signal_connect(self->leaflet, "notify::folded",
		G_CALLBACK(on_active_notify), self);
	g_signal_connect(self->leaflet, "notify::visible-child",
		G_CALLBACK(on_active_notify), self);
	g_signal_connect(self->leaflet, "notify::visible-child",
		G_CALLBACK(on_leaflet_visible_child), self);

	factory = chat_window_factory_new(&message_row_kind);
	gtk_list_view_set_factory(self->message_view, factory);
}

ChatWindow *chat_window_new(GtkApplication *application, ChatClient *client) {
	return g_object_new(CHAT_TYPE_WINDOW,
		"application", application,
		"client", client,
		NULL);
}
