/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The roster: every user the coordinator has told us about since we logged
 * in, keyed by name: the online ones, and the offline ones for which
 * something is kept (RosterCallbacks.in_use()) or that left less than the
 * expiry ago.  Changes are reported through RosterCallbacks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"

/* Hostile coordinators cannot make the roster grow past this (the daemon's max). */
#define ROSTER_MAX_PEERS 65536
/*
 * An offline peer that nothing is kept for is forgotten this long after it
 * left (the daemon's expiry; $P2PCHATD_PEER_EXPIRY shortens it for tests).
 */
#define ROSTER_OFFLINE_EXPIRY_USEC (10 * 60 * USEC_PER_SEC)
/* At most this many offline peers are forgotten per loop iteration. */
#define ROSTER_EXPIRE_BATCH 1024
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
	/*
	 * The peer is about to be freed: roster_clear(), or an offline peer
	 * forgotten (see in_use()).  It can still be looked up.
	 */
	void (*removed)(Peer *p, void *userdata);
	/*
	 * Whether something is kept for the offline peer @p (messages, an
	 * open conversation): 1 keeps it until it comes back and leaves again
	 * (or the roster is cleared), 0 lets the roster forget it, negative
	 * errno keeps it.  Asked once per time it goes offline, when it has
	 * been offline for the expiry, or earlier when the roster is full.
	 */
	int (*in_use)(Peer *p, void *userdata);
} RosterCallbacks;

/*
 * roster_new() - an empty roster of at most @max_peers; offline peers
 * nothing is kept for are forgotten @expiry_usec after they left.
 */
int roster_new(sd_event *event, size_t max_peers, uint64_t expiry_usec,
		const RosterCallbacks *callbacks, void *userdata, Roster **ret);
/* Frees every peer without a callback. */
Roster *roster_free(Roster *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Roster *, roster_free);

Peer *roster_get(Roster *r, const char *name);
size_t roster_size(Roster *r);

/*
 * roster_add_or_update() - a login notice or list entry for @name; @self
 * (our own name, which lists include) is skipped.
 * A new peer in a full roster takes the place of the offline peer that left
 * first among those nothing is kept for.
 * Return: 1 when the peer came online, 0 otherwise, -ENOSPC when the roster
 * is full of online peers and peers something is kept for, -ENOMEM.
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
