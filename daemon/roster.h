/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The roster: every user the coordinator has told us about since we logged
 * in, online or not, keyed by name.  Changes are reported through
 * RosterCallbacks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"

/* Hostile coordinators cannot make the roster grow past this. */
#define ROSTER_MAX_PEERS 65536
/* Lists at least this long make the daemon trim its heap a little later. */
#define ROSTER_TRIM_MIN 1024
#define ROSTER_TRIM_DELAY_USEC (2 * USEC_PER_SEC)

typedef struct Roster Roster;
typedef struct Peer Peer;

/* What changed about a peer (flags). */
typedef enum PeerChange {
	PEER_CHANGE_ONLINE = 1u << 0,
	PEER_CHANGE_ENDPOINT = 1u << 1,
	PEER_CHANGE_NATIVE = 1u << 2,
} PeerChange;

typedef struct RosterCallbacks {
	/* A new peer (it is online). */
	void (*added)(Peer *p, void *userdata);
	/* Properties of a known peer changed (@what: PeerChange flags). */
	void (*changed)(Peer *p, unsigned what, void *userdata);
	/* A peer came online (after added() or changed() for a new login). */
	void (*joined)(Peer *p, void *userdata);
	/* An online peer went offline, or the roster is being cleared. */
	void (*left)(Peer *p, void *userdata);
	/* The peer is about to be freed (roster_clear()). */
	void (*removed)(Peer *p, void *userdata);
} RosterCallbacks;

int roster_new(sd_event *event, const RosterCallbacks *callbacks, void *userdata, Roster **ret);
/* Frees every peer without a callback. */
Roster *roster_free(Roster *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Roster *, roster_free);

Peer *roster_get(Roster *r, const char *name);
size_t roster_size(Roster *r);

/*
 * roster_add_or_update() - a login notice or list entry for @name; @self
 * (our own name, which lists include) is skipped.
 * Return: 1 when the peer came online, 0 otherwise, -ENOSPC when the roster
 * is full, -ENOMEM.
 */
int roster_add_or_update(Roster *r, const char *self, const char *name, const Endpoint *ep,
		const char *caps);
/* A logout notice; @ep (may be NULL) must be the peer's current endpoint. */
void roster_mark_offline(Roster *r, const char *name, const Endpoint *ep);
/*
 * roster_apply_list() - a full list replaces what we knew; peers it misses
 * get @grace before they count as gone.
 */
int roster_apply_list(Roster *r, const char *self, const WireListEntry *entries, size_t n,
		uint64_t grace);

typedef void (*PeerCallback)(Peer *p, void *userdata);
/* Calls @cb for every peer, in name order; @cb must not change the roster. */
void roster_foreach(Roster *r, PeerCallback cb, void *userdata);

/* Empties the roster: left() for every online peer, then removed() for every peer. */
void roster_clear(Roster *r);

const char *peer_get_name(const Peer *p);
const Endpoint *peer_get_endpoint(const Peer *p);
bool peer_is_online(const Peer *p);
bool peer_is_native(const Peer *p);
/*
 * Native peers answer from the endpoint they declared, so the whole endpoint
 * must match (@same_port); reference clients send from a throwaway port:
 * only the IP can be checked.  False when the peer is offline.
 */
bool peer_accepts_from(const Peer *p, const Endpoint *from, bool same_port);
