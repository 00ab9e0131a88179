/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The link to the coordinator: UDP login, then the TCP session (native) or
 * UDP forwards plus periodic list fetches (reference coordinator).
 */

#include <stdbool.h>

#include "common/endpoint.h"
#include "common/wire.h"

typedef struct Manager Manager;
typedef struct CoordinatorLink CoordinatorLink;

/* How long Login() tries before it fails with CoordinatorUnreachable. */
#define LINK_LOGIN_TIMEOUT_USEC (10 * USEC_PER_SEC)

int coordinator_link_new(Manager *m, CoordinatorLink **ret);
CoordinatorLink *coordinator_link_free(CoordinatorLink *l);

/* Starts logging in as m->username at m->coordinator_address. */
int coordinator_link_start(CoordinatorLink *l);
/* Stops everything; with @say_logout, tells the coordinator first. */
void coordinator_link_stop(CoordinatorLink *l, bool say_logout);

/* Accept, Reject and login/logout forwards that arrived on the peer socket. */
void coordinator_link_handle_datagram(CoordinatorLink *l, const WireMessage *msg,
		const Endpoint *from);
