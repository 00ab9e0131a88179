/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The D-Bus face of the roster: one org.p2pchat.chat1.Peer object per
 * roster entry, with the ObjectManager at /org/p2pchat/chat1.
 */

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "daemon/history.h"
#include "daemon/roster.h"

typedef struct PeerBus PeerBus;

/* Registers the fallback vtable, node enumerator and ObjectManager on @bus. */
int peer_bus_new(sd_bus *bus, Roster *roster, History *history, PeerBus **ret);
PeerBus *peer_bus_free(PeerBus *pb);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerBus *, peer_bus_free);

void peer_bus_emit_added(PeerBus *pb, Peer *p);
void peer_bus_emit_removed(PeerBus *pb, Peer *p);
/* @what: PeerChange flags. */
void peer_bus_emit_changed(PeerBus *pb, Peer *p, unsigned what);
void peer_bus_emit_unread_changed(PeerBus *pb, Peer *p);
