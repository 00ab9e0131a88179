/* SPDX-License-Identifier: MIT */
/*
 * ChatPeerObjects: the daemon's org.p2pchat.chat1.Peer objects, for the
 * unread counts the roster rows show.
 *
 * A peer's count is asked for (Properties.Get of Unread on its object) once
 * per peer and daemon, when its row is on screen, unless ListPeers already
 * gave it; PropertiesChanged of every Peer object keeps it current after.
 * The objects' paths are the peers' names as sd_bus_path_encode() writes
 * them (docs/dbus-api.md).
 */

#include <string.h>

#include "common/bus-api.h"
#include "frontends/gtk/chat-peer-objects.h"

struct _ChatPeerObjects {
	GObject parent_instance;

	GDBusConnection *connection;
	ChatRoster *roster;
	guint changed_id;		/* PropertiesChanged of every Peer */
};

G_DEFINE_FINAL_TYPE(ChatPeerObjects, chat_peer_objects, G_TYPE_OBJECT)

/* The object path of a peer, as sd_bus_path_encode() makes it. */
static char *chat_peer_path(const char *name) {
	GString *path = g_string_new(P2PCHAT_PEER_PATH_PREFIX "/");

	if (!*name) {
		g_string_append_c(path, '_');
	}
	for (const char *c = name; *c; c++) {
		if (g_ascii_isalpha(*c) || (c > name && g_ascii_isdigit(*c))) {
			g_string_append_c(path, *c);
		} else {
			g_string_append_printf(path, "_%02x", (guchar) *c);
		}
	}
	return g_string_free(path, FALSE);
}

/* The peer name of an object path; NULL when it is not a peer's. */
static char *chat_peer_name_from_path(const char *path) {
	GString *name;
	const char *c;

	if (!g_str_has_prefix(path, P2PCHAT_PEER_PATH_PREFIX "/")) {
		return NULL;
	}
	c = path + strlen(P2PCHAT_PEER_PATH_PREFIX "/");
	if (g_str_equal(c, "_")) {
		return g_strdup("");
	}
	name = g_string_new(NULL);
	for (; *c; c++) {
		int hi, lo;

		if (*c != '_') {
			g_string_append_c(name, *c);
			continue;
		}
		hi = g_ascii_xdigit_value(c[1]);
		lo = hi < 0 ? -1 : g_ascii_xdigit_value(c[2]);
		if (lo < 0) {
			g_string_free(name, TRUE);
			return NULL;
		}
		g_string_append_c(name, (char) (hi << 4 | lo));
		c += 2;
	}
	return g_string_free(name, FALSE);
}

static void on_peer_properties_changed(GDBusConnection *connection,
		const char *sender, const char *path, const char *interface,
		const char *signal, GVariant *parameters, gpointer user_data) {
	ChatPeerObjects *self = user_data;
	g_autoptr(GVariant) changed = NULL;
	g_autofree char *name = NULL;
	ChatPeer *peer;
	guint unread;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)"))) {
		return;
	}
	changed = g_variant_get_child_value(parameters, 1);
	name = chat_peer_name_from_path(path);
	peer = name ? chat_roster_lookup(self->roster, name) : NULL;
	if (peer && g_variant_lookup(changed, "Unread", "u", &unread)) {
		chat_peer_set_unread(peer, unread);
	}
}

/* A Get of a peer's Unread; it holds the roster until the reply. */
typedef struct ChatUnreadCall {
	ChatRoster *roster;
	char *peer;
} ChatUnreadCall;

static void chat_unread_call_free(ChatUnreadCall *call) {
	g_object_unref(call->roster);
	g_free(call->peer);
	g_free(call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ChatUnreadCall, chat_unread_call_free)

static void on_get_unread_ready(GObject *source, GAsyncResult *result,
		gpointer user_data) {
	g_autoptr(ChatUnreadCall) call = user_data;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) value = NULL;
	g_autoptr(GError) error = NULL;
	ChatPeer *peer;

	reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source),
		result, &error);
	if (reply) {
		g_variant_get(reply, "(v)", &value);
		peer = chat_roster_lookup(call->roster, call->peer);
		if (peer && g_variant_is_of_type(value, G_VARIANT_TYPE_UINT32)) {
			chat_peer_set_unread(peer, g_variant_get_uint32(value));
		}
	} else if (!g_error_matches(error, G_IO_ERROR,
			G_IO_ERROR_CANCELLED)) {
		g_debug("No unread count for '%s': %s", call->peer,
			error->message);
	}
}

/**
 * chat_peer_objects_fetch_unread() - Asks p2pchatd for a peer's unread
 * count.
 * @self: the peer objects
 * @peer: the peer
 * @cancellable: cancelled when the daemon goes away
 *
 * Once per peer and daemon (see chat_roster_forget_unread()): the window
 * asks for the rows it shows, so 10,000 peers cost nothing until they are
 * scrolled to; afterwards PropertiesChanged keeps the count current.
 */
void chat_peer_objects_fetch_unread(ChatPeerObjects *self, ChatPeer *peer,
		GCancellable *cancellable) {
	g_autofree char *path = NULL;
	ChatUnreadCall *call;

	g_return_if_fail(CHAT_IS_PEER_OBJECTS(self));
	g_return_if_fail(CHAT_IS_PEER(peer));

	if (chat_peer_get_unread_known(peer)) {
		return;
	}
	chat_peer_set_unread_known(peer, TRUE);
	call = g_new0(ChatUnreadCall, 1);
	call->roster = g_object_ref(self->roster);
	call->peer = g_strdup(chat_peer_get_name(peer));
	path = chat_peer_path(call->peer);
	g_dbus_connection_call(self->connection, P2PCHAT_BUS_NAME, path,
		"org.freedesktop.DBus.Properties", "Get",
		g_variant_new("(ss)", P2PCHAT_PEER_INTERFACE, "Unread"),
		G_VARIANT_TYPE("(v)"), G_DBUS_CALL_FLAGS_NO_AUTO_START, -1,
		cancellable, on_get_unread_ready, call);
}

static void chat_peer_objects_dispose(GObject *object) {
	ChatPeerObjects *self = CHAT_PEER_OBJECTS(object);

	if (self->changed_id) {
		g_dbus_connection_signal_unsubscribe(self->connection,
			self->changed_id);
		self->changed_id = 0;
	}
	g_clear_object(&self->connection);
	g_clear_object(&self->roster);

	G_OBJECT_CLASS(chat_peer_objects_parent_class)->dispose(object);
}

static void chat_peer_objects_class_init(ChatPeerObjectsClass *klass) {
	G_OBJECT_CLASS(klass)->dispose = chat_peer_objects_dispose;
}

static void chat_peer_objects_init(ChatPeerObjects *self) {
}

/* Follows the unread counts of @roster's peers on @connection. */
ChatPeerObjects *chat_peer_objects_new(GDBusConnection *connection,
		ChatRoster *roster) {
	ChatPeerObjects *self;

	g_return_val_if_fail(G_IS_DBUS_CONNECTION(connection), NULL);
	g_return_val_if_fail(CHAT_IS_ROSTER(roster), NULL);

	self = g_object_new(CHAT_TYPE_PEER_OBJECTS, NULL);
	self->connection = g_object_ref(connection);
	self->roster = g_object_ref(roster);
	self->changed_id = g_dbus_connection_signal_subscribe(connection,
		P2PCHAT_BUS_NAME, "org.freedesktop.DBus.Properties",
		"PropertiesChanged", NULL, P2PCHAT_PEER_INTERFACE,
		G_DBUS_SIGNAL_FLAGS_NONE, on_peer_properties_changed, self,
		NULL);
	return self;
}
