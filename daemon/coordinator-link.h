/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The link to the coordinator: UDP login, then the TCP session (native) or
 * UDP forwards plus periodic list fetches (reference coordinator).  What it
 * learns goes to its owner through CoordinatorLinkCallbacks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "daemon/udp.h"

typedef struct CoordinatorLink CoordinatorLink;

/* How long Login() tries before it fails with CoordinatorUnreachable. */
#define LINK_LOGIN_TIMEOUT_USEC (10 * USEC_PER_SEC)

typedef struct CoordinatorLinkCallbacks {
	/* Logged in: the first list has arrived. */
	void (*online)(void *userdata);
	/* The coordinator was lost after we were online; the link retries. */
	void (*lost)(void *userdata);
	/*
	 * The login failed for good (the link is idle again): -EHOSTUNREACH,
	 * -EADDRINUSE (name taken), -EDOM (name refused), -EACCES, -EOWNERDEAD
	 * (another daemon with our key took the session; even after we were
	 * online), what verify_coordinator() returned, or -errno.
	 */
	void (*failed)(int error, const char *reason, void *userdata);
	/*
	 * A full list; online peers it misses may take @grace to return.
	 * Return: < 0 (e.g. -ENOMEM) drops the connection.
	 */
	int (*list)(const WireListEntry *entries, size_t n, uint64_t grace, void *userdata);
	/*
	 * The coordinator proved the Ed25519 key @key (or, NULL, answered as a
	 * reference server that proves nothing): return 0 to go on, or a
	 * negative errno (-EKEYREJECTED: not the key pinned for it) to fail
	 * the login with it; failed() then gets the key's fingerprint.
	 */
	int (*verify_coordinator)(const uint8_t *key, void *userdata);
	/* A login or logout notice about another user (name, endpoint, caps, key). */
	void (*peer_login)(const WireMessage *w, void *userdata);
	void (*peer_logout)(const WireMessage *w, void *userdata);
} CoordinatorLinkCallbacks;

/*
 * Registers the link's handlers on @udp; sessions prove @identity.  Both are
 * borrowed and must outlive the link.
 */
int coordinator_link_new(sd_event *event, Udp *udp, const Identity *identity,
		const CoordinatorLinkCallbacks *callbacks, void *userdata, CoordinatorLink **ret);
CoordinatorLink *coordinator_link_free(CoordinatorLink *l);
/*
 * The Ed25519 key the coordinator we are online with proved; NULL when not
 * online, or online with a reference server (which proves nothing).
 */
const uint8_t *coordinator_link_get_coordinator_key(const CoordinatorLink *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(CoordinatorLink *, coordinator_link_free);

/*
 * coordinator_link_start() - start logging in as @username at @coordinator,
 * declaring @declared as our endpoint.  On failure nothing is reported
 * through the callbacks and the link stays idle.
 * Return: 0 or -errno.
 */
int coordinator_link_start(CoordinatorLink *l, const char *username, const Endpoint *coordinator,
		const Endpoint *declared);
/* The endpoint we declare changed (the route to the coordinator did). */
void coordinator_link_set_declared(CoordinatorLink *l, const Endpoint *declared);
/* Stops everything; with @say_logout, tells the coordinator first. */
void coordinator_link_stop(CoordinatorLink *l, bool say_logout);
