/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Desktop notifications for incoming messages, through
 * org.freedesktop.Notifications on the caller's bus connection.  One
 * notification per peer: a burst from one peer replaces it ("3 new
 * messages") instead of stacking.  The actions the user takes on it come
 * back as signals on the same connection and reach the callbacks.
 */

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"

/* The application id of p2pchat-gtk: icon name, desktop entry, bus name. */
#define NOTIFY_APP_ID "org.p2pchat.P2pchat"
#define NOTIFY_APP_PATH "/org/p2pchat/P2pchat"
#define NOTIFY_APP_NAME "p2pchat"
/* At most this many peers have a notification at a time; more are not shown. */
#define NOTIFY_PEERS_MAX 256
/* Message text in a notification body is cut to this many bytes. */
#define NOTIFY_BODY_MAX 1024

typedef struct Notify Notify;

typedef struct NotifyCallbacks {
	/* The user clicked the notification: show the conversation with @peer. */
	void (*on_open)(const char *peer, void *userdata);
	/* The user typed @text into the notification's reply field. */
	void (*on_reply)(const char *peer, const char *text, void *userdata);
} NotifyCallbacks;

/*
 * notify_new() - start a notifier on @bus (not owned; must outlive it).
 * Installs the signal matches and asks the server for its capabilities.
 */
int notify_new(sd_bus *bus, const NotifyCallbacks *callbacks, void *userdata, Notify **ret);
Notify *notify_free(Notify *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Notify *, notify_free);

/* Notifications on (the default) or off; off closes those on screen. */
void notify_set_enabled(Notify *n, bool enabled);

/*
 * notify_set_active_peer() - the conversation a front end shows (NULL or "":
 * none).  Messages from that peer do not notify, and its notification, if
 * any, is closed.
 */
int notify_set_active_peer(Notify *n, const char *peer);
const char *notify_get_active_peer(Notify *n);

/*
 * notify_message() - tell the user that @peer sent @text.  Asynchronous:
 * errors of the server are logged and otherwise ignored.
 *
 * Return: 1 when a notification is (or will be) shown, 0 when suppressed
 * (notifications off, @peer is the active conversation, or too many peers),
 * negative errno on failure.
 */
int notify_message(Notify *n, const char *peer, const char *text);

/*
 * notify_problem() - tell the user about a problem of the daemon's own, such
 * as a history it could not open: one critical notification without
 * actions, @body as plain text.  Asynchronous, like notify_message(); a
 * second call before the first went out replaces it.
 *
 * Return: 1 when it is (or will be) shown, 0 when notifications are off,
 * negative errno on failure.
 */
int notify_problem(Notify *n, const char *summary, const char *body);

/*
 * notify_open_conversation() - ask p2pchat-gtk, by D-Bus activation, to show
 * the conversation with @peer: org.freedesktop.Application.ActivateAction
 * ("open-conversation", [<peer>], {}) on NOTIFY_APP_ID.  Asynchronous; a
 * failure is logged and ignored.
 */
int notify_open_conversation(sd_bus *bus, const char *peer);
