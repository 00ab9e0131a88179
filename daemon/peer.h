/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The roster: every user the coordinator has told us about since we logged
 * in, online or not, keyed by name.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"

typedef struct Manager Manager;

/* Hostile coordinators cannot make the roster grow past this. */
#define ROSTER_MAX_PEERS 65536
/* Lists at least this long make the daemon trim its heap a little later. */
#define ROSTER_TRIM_MIN 1024
#define ROSTER_TRIM_DELAY_USEC (2 * USEC_PER_SEC)

typedef struct Peer {
	Manager *manager; /* not owned */
	char *name;
	char *path; /* D-Bus object path */
	Endpoint endpoint;
	bool online;
	bool native;
	unsigned generation; /* of the last list that named this peer */
	/*
	 * It acked a message since it came online.  Until then only one
	 * message at a time goes to it: a backlog sent at once could arrive
	 * before the peer has us in its roster and be retried out of order.
	 */
	bool confirmed;
	unsigned in_flight; /* native messages waiting for its ack */
} Peer;

Peer *peer_get(Manager *m, const char *name);
bool peer_accepts_from(const Peer *p, const Endpoint *from, bool same_port);

/* Returns the number of peers, or -errno when the roster is full / on OOM. */
int roster_add_or_update(Manager *m, const char *name, const Endpoint *ep, const char *caps);
void roster_mark_offline(Manager *m, const char *name, const Endpoint *ep);
int roster_apply_list(Manager *m, const WireListEntry *entries, size_t n, uint64_t grace);
size_t roster_size(Manager *m);

typedef void (*PeerCallback)(Peer *p, void *userdata);
void roster_foreach(Manager *m, PeerCallback cb, void *userdata);

/* Empties the roster: ObjectRemoved for every object, no PeerLeft. */
void roster_clear(Manager *m);
