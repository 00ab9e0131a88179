/* SPDX-License-Identifier: MIT */

/*
 * The D-Bus face of the roster, owned by the composition (daemon.c) while
 * the bus is there: one org.p2pchat.chat1.Peer object per roster entry
 * under /org/p2pchat/chat1/peer/, served by a fallback vtable whose find
 * callback looks the name up, so objects come and go with the roster
 * without any per-object registration.  Properties are read from the
 * roster (and the history, for Unread) at the time they are asked for.
 */

#include <stdlib.h>
#include <string.h>

#include "common/bus-api.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/peer-bus.h"

struct PeerBus {
	sd_bus *bus;
	Roster *roster;   /* not owned */
	History *history; /* not owned; NULL without a store */
	sd_bus_slot *vtable_slot;
	sd_bus_slot *enumerator_slot;
	sd_bus_slot *object_manager_slot;
};

static bool bus_is_open(PeerBus *pb) {
	return pb && sd_bus_is_open(pb->bus) > 0;
}

static Peer *peer_from_path(PeerBus *pb, const char *path) {
	_cleanup_free_ char *name = NULL;

	if (sd_bus_path_decode(path, P2PCHAT_PEER_PATH_PREFIX, &name) <= 0) {
		return NULL;
	}
	return roster_get(pb->roster, name);
}

static int peer_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
		void **ret_found, sd_bus_error *error) {
	PeerBus *pb = userdata;

	if (!peer_from_path(pb, path)) {
		return 0;
	}
	*ret_found = pb;
	return 1;
}

typedef struct PathList {
	char **paths;
	size_t n;
	int error;
} PathList;

static void collect_path(Peer *p, void *userdata) {
	PathList *l = userdata;
	int r;

	if (l->error < 0) {
		return;
	}
	r = sd_bus_path_encode(P2PCHAT_PEER_PATH_PREFIX, peer_get_name(p), &l->paths[l->n]);
	if (r < 0) {
		l->error = r;
		return;
	}
	l->n++;
}

static int peer_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
		sd_bus_error *error) {
	PeerBus *pb = userdata;
	PathList l = {};

	l.paths = calloc(roster_size(pb->roster) + 1, sizeof(char *));
	if (!l.paths) {
		return -ENOMEM;
	}
	roster_foreach(pb->roster, collect_path, &l);
	if (l.error < 0) {
		for (size_t i = 0; i < l.n; i++) {
			free(l.paths[i]);
		}
		free(l.paths);
		return l.error;
	}
	*ret_nodes = l.paths;
	return 1;
}

static int property_get(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	PeerBus *pb = userdata;
	char buf[ENDPOINT_STRLEN];
	Peer *p;
	int n;

	p = peer_from_path(pb, path);
	if (!p) {
		return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "No peer at '%s'",
				path);
	}
	if (streq(property, "Name")) {
		return sd_bus_message_append(reply, "s", peer_get_name(p));
	}
	if (streq(property, "Endpoint")) {
		return sd_bus_message_append(reply, "s",
				endpoint_format(peer_get_endpoint(p), buf));
	}
	if (streq(property, "Online")) {
		return sd_bus_message_append(reply, "b", peer_is_online(p));
	}
	if (streq(property, "Native")) {
		return sd_bus_message_append(reply, "b", peer_is_native(p));
	}
	/* Unread; none without a history (then there are no peers anyway: no login). */
	n = pb->history ? history_unread(pb->history, peer_get_name(p)) : 0;
	if (n < 0) {
		return n;
	}
	return sd_bus_message_append(reply, "u", (uint32_t) n);
}

static void emit_result(Peer *p, const char *signal, int r) {
	if (r < 0) {
		log_warning_errno(r, "Failed to emit %s for '%s', ignoring: %m", signal,
				peer_get_name(p));
	}
}

/* Emits PropertiesChanged of @names (NULL-terminated) on @p's object. */
static void emit_changed(PeerBus *pb, Peer *p, char **names) {
	_cleanup_free_ char *path = NULL;
	int r;

	if (!bus_is_open(pb)) {
		return;
	}
	r = sd_bus_path_encode(P2PCHAT_PEER_PATH_PREFIX, peer_get_name(p), &path);
	if (r >= 0) {
		r = sd_bus_emit_properties_changed_strv(pb->bus, path, P2PCHAT_PEER_INTERFACE,
				names);
	}
	emit_result(p, "PropertiesChanged", r);
}

void peer_bus_emit_unread_changed(PeerBus *pb, Peer *p) {
	emit_changed(pb, p, (char *[]) { (char *) "Unread", NULL });
}

void peer_bus_emit_changed(PeerBus *pb, Peer *p, unsigned what) {
	const char *names[4];
	size_t n = 0;

	if (what & PEER_CHANGE_ONLINE) {
		names[n++] = "Online";
	}
	if (what & PEER_CHANGE_ENDPOINT) {
		names[n++] = "Endpoint";
	}
	if (what & PEER_CHANGE_NATIVE) {
		names[n++] = "Native";
	}
	if (n == 0) {
		return;
	}
	names[n] = NULL;
	emit_changed(pb, p, (char **) names);
}

/* InterfacesAdded (@added) or InterfacesRemoved for @p's object. */
static void emit_object(PeerBus *pb, Peer *p, bool added) {
	_cleanup_free_ char *path = NULL;
	int r;

	if (!bus_is_open(pb)) {
		return;
	}
	r = sd_bus_path_encode(P2PCHAT_PEER_PATH_PREFIX, peer_get_name(p), &path);
	if (r >= 0) {
		r = added ? sd_bus_emit_object_added(pb->bus, path)
			  : sd_bus_emit_object_removed(pb->bus, path);
	}
	emit_result(p, added ? "InterfacesAdded" : "InterfacesRemoved", r);
}

void peer_bus_emit_added(PeerBus *pb, Peer *p) {
	emit_object(pb, p, true);
}

void peer_bus_emit_removed(PeerBus *pb, Peer *p) {
	emit_object(pb, p, false);
}

static const sd_bus_vtable peer_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Name", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Endpoint", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Online", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Native", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Unread", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_VTABLE_END,
};

int peer_bus_new(sd_bus *bus, Roster *roster, History *history, PeerBus **ret) {
	_cleanup_(peer_bus_freep) PeerBus *pb = NULL;
	int r;

	pb = calloc(1, sizeof(*pb));
	if (!pb) {
		return -ENOMEM;
	}
	pb->bus = sd_bus_ref(bus);
	pb->roster = roster;
	pb->history = history;
	r = sd_bus_add_fallback_vtable(bus, &pb->vtable_slot, P2PCHAT_PEER_PATH_PREFIX,
			P2PCHAT_PEER_INTERFACE, peer_vtable, peer_find, pb);
	if (r < 0) {
		return log_error_errno(r, "Failed to register peer objects: %m");
	}
	r = sd_bus_add_node_enumerator(bus, &pb->enumerator_slot, P2PCHAT_PEER_PATH_PREFIX,
			peer_enumerate, pb);
	if (r < 0) {
		return log_error_errno(r, "Failed to register peer enumerator: %m");
	}
	r = sd_bus_add_object_manager(bus, &pb->object_manager_slot, P2PCHAT_OBJECT_PATH);
	if (r < 0) {
		return log_error_errno(r, "Failed to register object manager: %m");
	}
	*ret = TAKE_PTR(pb);
	return 0;
}

PeerBus *peer_bus_free(PeerBus *pb) {
	if (!pb) {
		return NULL;
	}
	pb->object_manager_slot = sd_bus_slot_unref(pb->object_manager_slot);
	pb->enumerator_slot = sd_bus_slot_unref(pb->enumerator_slot);
	pb->vtable_slot = sd_bus_slot_unref(pb->vtable_slot);
	pb->bus = sd_bus_unref(pb->bus);
	return mfree(pb);
}
