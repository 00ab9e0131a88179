/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Manager: one per daemon.  It owns the bus connection, the one UDP socket
 * for all peer traffic, the roster, the coordinator link and the message
 * engine, and runs the login state machine behind org.p2pchat.chat1.Manager.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"

#define MANAGER_BUS_NAME "org.p2pchat.chat1"
#define MANAGER_OBJECT_PATH "/org/p2pchat/chat1"
#define MANAGER_INTERFACE "org.p2pchat.chat1.Manager"
#define PEER_INTERFACE "org.p2pchat.chat1.Peer"
#define PEER_PATH_PREFIX "/org/p2pchat/chat1/peer"

/* Requested size of the peer socket's buffers, in bytes. */
#define MANAGER_UDP_BUFFER (4 * 1024 * 1024)

/* The coordinator port when "HOST" comes without ":PORT". */
#define MANAGER_DEFAULT_COORDINATOR_PORT 7474

typedef struct Config Config;
typedef struct CoordinatorLink CoordinatorLink;
typedef struct History History;
typedef struct Notify Notify;
typedef struct Outbox Outbox;
typedef struct Messenger Messenger;
typedef struct Resolver Resolver;

typedef enum ManagerState {
	MANAGER_STATE_OFFLINE,
	MANAGER_STATE_CONNECTING,
	MANAGER_STATE_ONLINE,
	_MANAGER_STATE_MAX,
	_MANAGER_STATE_INVALID = -EINVAL,
} ManagerState;

typedef struct Manager {
	sd_event *event;
	sd_bus *bus;
	sd_bus_slot *manager_slot;
	sd_bus_slot *peer_slot;
	sd_bus_slot *enumerator_slot;
	sd_bus_slot *object_manager_slot;

	Endpoint bind_address; /* family AF_UNSPEC: both families, any port */
	bool dual_stack;
	int udp_fd;
	sd_event_source *udp_source;
	sd_event_source *exit_source;

	ManagerState state;
	char *username;       /* NULL when offline */
	char *coordinator;    /* as the caller wrote it; NULL when offline */
	char *local_endpoint; /* declared endpoint text; NULL when offline */
	Endpoint coordinator_address;
	Endpoint declared;

	void *peers; /* tsearch() tree of Peer*, by name */
	size_t n_peers;
	unsigned generation;
	sd_event_source *reconcile_timer;
	sd_event_source *trim_timer;

	CoordinatorLink *link;
	Messenger *messenger;

	Resolver *resolver; /* while Login() waits for a host name */

	/* The store (manager-store.c): opened by manager_export(). */
	Config *config;
	History *history;
	Outbox *outbox;
	Notify *notify;                 /* NULL without a notification server */
	char *active_conversation;      /* "" when none */
	sd_bus_track *active_track;     /* who set it: cleared when they leave the bus */
	sd_event_source *flush_source;  /* deferred: send what is queued */
	struct Batch *batch;            /* the group commit (manager-commit.c) */
	sd_event_source *retry_timer;   /* requeued messages are tried again */
	bool autologin;                 /* keep trying the config's login */
	sd_event_source *autologin_timer;

	sd_bus_message *login_call; /* a pending Login(), replied exactly once */
} Manager;

/* @bind_address: NULL or AF_UNSPEC with port 0 means the config's "bind". */
int manager_new(sd_event *event, const Endpoint *bind_address, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Binds the UDP socket, connects to the bus, exports objects, takes the name. */
int manager_start(Manager *m);
/*
 * The first half of manager_start(): binds the UDP socket and exports the
 * objects on @bus (taking a reference), without a name or an event loop.
 * Tests use it with one end of a socketpair.
 */
int manager_export(Manager *m, sd_bus *bus);

int manager_login(Manager *m, const char *name, const char *coordinator);
/* Logs out (if logged in), replies to a pending Login() and fails messages. */
int manager_logout(Manager *m);

/* Sends a datagram on the peer socket. */
int manager_send_datagram(Manager *m, const Endpoint *to, const void *buf, size_t n);

/* Called by the coordinator link. */
void manager_link_online(Manager *m);
void manager_link_lost(Manager *m);
void manager_link_failed(Manager *m, int error, const char *reason);

const char *manager_state_to_string(ManagerState s);

/* False before the bus is set up and after it went away: nothing to emit to. */
static inline bool manager_bus_is_open(Manager *m) {
	return m->bus && sd_bus_is_open(m->bus) > 0;
}
