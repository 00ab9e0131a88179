/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The composition of p2pchatd: builds the store, the transport, the core
 * and the D-Bus face, wires their callbacks and owns the teardown order.
 */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"

typedef struct Daemon Daemon;

/* @bind_address: NULL or AF_UNSPEC with port 0 means the config's "bind". */
int daemon_new(sd_event *event, const Endpoint *bind_address, Daemon **ret);
Daemon *daemon_free(Daemon *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Daemon *, daemon_free);

/* Connects to the user bus, exports the objects, takes the name, autologin. */
int daemon_start(Daemon *d);
/*
 * The first half of daemon_start(): opens the store, binds the UDP socket
 * and exports the objects on @bus (taking a reference), without a name or
 * an event loop.  Tests use it with one end of a socketpair.
 */
int daemon_export(Daemon *d, sd_bus *bus);
/* Commits what waits and logs out, while the bus is still open. */
int daemon_stop(Daemon *d);
