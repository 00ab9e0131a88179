/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "daemon/manager.h"
#include "daemon/peer.h"

/* Registers the fallback vtable, node enumerator and ObjectManager. */
int peer_bus_register(Manager *m);

int peer_build_path(const char *name, char **ret);

void peer_emit_added(Peer *p);
void peer_emit_removed(Peer *p);
void peer_emit_changed(Peer *p, bool online, bool endpoint, bool native);
void peer_emit_unread_changed(Peer *p);
