/* SPDX-License-Identifier: MIT */

/*
 * The D-Bus face of the roster: one org.p2pchat.chat1.Peer object per roster
 * entry under /org/p2pchat/chat1/peer/, served by a fallback vtable whose
 * find callback looks the name up, so objects come and go with the roster
 * without any per-object registration.
 */

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/history.h"
#include "daemon/peer-bus.h"

int peer_build_path(const char *name, char **ret) {
	return sd_bus_path_encode(PEER_PATH_PREFIX, name, ret);
}

static int peer_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
		void **ret_found, sd_bus_error *error) {
	_cleanup_free_ char *name = NULL;
	Manager *m = userdata;
	Peer *p;
	int r;

	r = sd_bus_path_decode(path, PEER_PATH_PREFIX, &name);
	if (r <= 0) {
		return r;
	}
	p = peer_get(m, name);
	if (!p) {
		return 0;
	}
	*ret_found = p;
	return 1;
}

typedef struct PathList {
	char **paths;
	size_t n;
	int error;
} PathList;

static void collect_path(Peer *p, void *userdata) {
	PathList *l = userdata;

	if (l->error < 0) {
		return;
	}
	l->paths[l->n] = strdup(p->path);
	if (!l->paths[l->n]) {
		l->error = -ENOMEM;
		return;
	}
	l->n++;
}

static int peer_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
		sd_bus_error *error) {
	Manager *m = userdata;
	PathList l = {};

	l.paths = calloc(m->n_peers + 1, sizeof(char *));
	if (!l.paths) {
		return -ENOMEM;
	}
	roster_foreach(m, collect_path, &l);
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

static int property_get_endpoint(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	Peer *p = userdata;
	char buf[ENDPOINT_STRLEN];

	return sd_bus_message_append(reply, "s", endpoint_format(&p->endpoint, buf));
}

static int property_get_online(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	Peer *p = userdata;

	return sd_bus_message_append(reply, "b", p->online);
}

static int property_get_native(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	Peer *p = userdata;

	return sd_bus_message_append(reply, "b", p->native);
}

static int property_get_unread(sd_bus *bus, const char *path, const char *interface,
		const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
	Peer *p = userdata;
	int n = 0;

	if (p->manager->history) {
		n = history_unread(p->manager->history, p->name);
		if (n < 0) {
			return n;
		}
	}
	return sd_bus_message_append(reply, "u", (uint32_t) n);
}

void peer_emit_unread_changed(Peer *p) {
	int r;

	if (!manager_bus_is_open(p->manager)) {
		return;
	}
	r = sd_bus_emit_properties_changed(p->manager->bus, p->path, PEER_INTERFACE, "Unread",
			NULL);
	if (r < 0) {
		log_warning_errno(r, "Failed to emit PropertiesChanged for '%s', ignoring: %m",
				p->name);
	}
}

void peer_emit_added(Peer *p) {
	int r;

	if (!manager_bus_is_open(p->manager)) {
		return;
	}

	r = sd_bus_emit_object_added(p->manager->bus, p->path);
	if (r < 0) {
		log_warning_errno(r, "Failed to emit InterfacesAdded for '%s', ignoring: %m", p->name);
	}
}

void peer_emit_removed(Peer *p) {
	int r;

	if (!manager_bus_is_open(p->manager)) {
		return;
	}

	r = sd_bus_emit_object_removed(p->manager->bus, p->path);
	if (r < 0) {
		log_warning_errno(r, "Failed to emit InterfacesRemoved for '%s', ignoring: %m",
				p->name);
	}
}

void peer_emit_changed(Peer *p, bool online, bool endpoint, bool native) {
	const char *names[4];
	size_t n = 0;
	int r;

	if (online) {
		names[n++] = "Online";
	}
	if (endpoint) {
		names[n++] = "Endpoint";
	}
	if (native) {
		names[n++] = "Native";
	}
	if (n == 0 || !manager_bus_is_open(p->manager)) {
		return;
	}
	names[n] = NULL;
	r = sd_bus_emit_properties_changed_strv(p->manager->bus, p->path, PEER_INTERFACE,
			(char **) names);
	if (r < 0) {
		log_warning_errno(r, "Failed to emit PropertiesChanged for '%s', ignoring: %m",
				p->name);
	}
}

static const sd_bus_vtable peer_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Peer, name), SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Endpoint", "s", property_get_endpoint, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Online", "b", property_get_online, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Native", "b", property_get_native, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Unread", "u", property_get_unread, 0,
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_VTABLE_END,
};

int peer_bus_register(Manager *m) {
	int r;

	r = sd_bus_add_fallback_vtable(m->bus, &m->peer_slot, PEER_PATH_PREFIX, PEER_INTERFACE,
			peer_vtable, peer_find, m);
	if (r < 0) {
		return log_error_errno(r, "Failed to register peer objects: %m");
	}
	r = sd_bus_add_node_enumerator(m->bus, &m->enumerator_slot, PEER_PATH_PREFIX,
			peer_enumerate, m);
	if (r < 0) {
		return log_error_errno(r, "Failed to register peer enumerator: %m");
	}
	r = sd_bus_add_object_manager(m->bus, &m->object_manager_slot, MANAGER_OBJECT_PATH);
	if (r < 0) {
		return log_error_errno(r, "Failed to register object manager: %m");
	}
	return 0;
}
