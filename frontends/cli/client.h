/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The CLI's side of the org.p2pchat.chat1 bus API: connecting, turning bus
 * errors into one readable phrase, and turning the Manager's signals into
 * JSON "events" that every streaming verb prints the same way.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <json-c/json.h>

/* Opens the user (session) bus, honouring $DBUS_SESSION_BUS_ADDRESS. Logs. */
int client_connect(sd_bus **ret);

/*
 * client_error_message() - the phrase to print after "Failed to …: "
 *
 * The daemon's own message for its named errors, a plain sentence when the
 * daemon is not running, else strerror(-r).
 */
const char *client_error_message(const sd_bus_error *error, int r);

/* Reads one "a{sv}" from m into a JSON object (keys kept as sent). */
int client_read_extra(sd_bus_message *m, json_object **ret);

/*
 * client_event_from_signal() - decode a Manager signal into an event
 *
 * Handles PeerJoined, PeerLeft, MessageReceived, MessageQueued,
 * MessageDelivered, MessageSent (a reference peer: no receipt),
 * MessageFailed, MessageStateChanged and the Manager's PropertiesChanged.
 * The event is an object with "event" (the camelCase signal name), one
 * camelCase key per argument and always "extra"; the vocabulary is the one
 * of the history (p2pchat(1), JSON OUTPUT): a peer's name is "peer" (peer
 * events keep "name" too), a message's timestamp "sentUsec" (the old
 * "timestampUsec" is kept too).
 *
 * Return: 1 and *ret on success, 0 when m is not one of those signals or
 * its body is malformed (logged at debug level: a bad signal is ignored).
 */
int client_event_from_signal(sd_bus_message *m, json_object **ret);

/* Shorthands for reading fields of an event; NULL/0 when absent. */
bool event_is(json_object *ev, const char *name);

/*
 * event_format_line() - one human line for an event, without newline
 * @show_ids: include message ids (listen) or not (chat)
 *
 * Peer-supplied text is escaped (see text_escape()).
 *
 * Return: a new string, or NULL when out of memory.
 */
char *event_format_line(json_object *ev, bool show_ids);

/* Reads "a{sv}" of properties into an object with camelCase keys. */
int client_read_properties(sd_bus_message *m, json_object **ret);

/*
 * client_get_manager() - the Manager's properties (State, Username, ...)
 *
 * Return: 0 and *ret, or negative errno with @error set. Does not log.
 */
int client_get_manager(sd_bus *bus, sd_bus_error *error, json_object **ret);

/*
 * client_list_peers() - ListPeers as a JSON array sorted by name
 *
 * Each element: {"peer", "name" (the same), "endpoint", "unread", "online",
 * "native", "extra"}.
 * Return: 0 and *ret, or negative errno with @error set. Does not log.
 */
int client_list_peers(sd_bus *bus, sd_bus_error *error, json_object **ret);

/*
 * client_get_history() - GetHistory(peer, limit, ""): the newest messages,
 * oldest first, as a JSON array of {"id", "peer", "direction", "text",
 * "sentUsec", "receivedUsec", "state", "extra"}.
 * Return: 0 and *ret, or negative errno with @error set. Does not log.
 */
int client_get_history(sd_bus *bus, const char *peer, unsigned limit, sd_bus_error *error,
		json_object **ret);

/*
 * client_search_history() - SearchHistory(text, limit): the messages that
 * contain @text, as a JSON array like client_get_history()'s.
 * Return: 0 and *ret, or negative errno with @error set. Does not log.
 */
int client_search_history(sd_bus *bus, const char *text, unsigned limit,
		sd_bus_error *error, json_object **ret);

/* client_get_config() - GetConfig(key). Does not log. */
int client_get_config(sd_bus *bus, const char *key, sd_bus_error *error, char **ret);

/*
 * client_attach_event() - the event loop of the streaming verbs
 *
 * Blocks SIGINT and SIGTERM and lets them end the loop with exit code 0,
 * attaches @bus and makes a lost bus connection end the loop with code 1.
 * Logs.
 */
int client_attach_event(sd_bus *bus, sd_event **ret);

/* Subscribes @callback to every Manager signal and its PropertiesChanged. */
int client_subscribe(sd_bus *bus, sd_bus_message_handler_t callback, void *userdata);
