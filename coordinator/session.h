/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * TCP connections to the coordinator.  A new connection is UNBOUND: if it
 * sends "hello,NAME,CAPS" within the grace it becomes the SESSION of that
 * user (welcome, list, then every login/logout pushed in order); if it says
 * nothing it gets the reference behaviour (the list, then close).  Output is
 * buffered per connection up to a cap and written once per loop iteration.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/wire.h"
#include "coordinator/list.h"
#include "coordinator/timeout-queue.h"

typedef struct Server Server;
typedef struct User User;

typedef enum ConnectionState {
	CONNECTION_UNBOUND,  /* waiting for a hello within the grace */
	CONNECTION_SESSION,  /* bound to a user */
	CONNECTION_CLOSING,  /* writes its last output, then waits for EOF */
	_CONNECTION_STATE_MAX,
	_CONNECTION_STATE_INVALID = -EINVAL,
} ConnectionState;

typedef struct Connection {
	Server *server;          /* not owned */
	ListNode node;           /* Server.connections */
	ListNode dirty_node;     /* Server.dirty */
	TimeoutLink timeout;     /* grace while UNBOUND, drain while CLOSING */
	int fd;
	sd_event_source *io;
	Endpoint peer;
	ConnectionState state;
	User *user;              /* not owned; SESSION only */
	WireFrameDecoder decoder;
	uint8_t *out;
	size_t out_start, out_end, out_cap;
	const char *doomed;      /* why to close at the next flush, output and all */
	bool shut;               /* SHUT_WR done */
	bool want_out;           /* EPOLLOUT is enabled */
	bool heard;              /* input since the last liveness check */
	bool pinged;             /* our ping is unanswered */
} Connection;

/* Takes @fd (non-blocking, connected); queues it for the grace. */
int connection_new(Server *s, int fd, const Endpoint *peer, Connection **ret);

/*
 * connection_close() - close @c now.  A session logs its user out for
 * everyone first.  @c is freed.
 */
void connection_close(Connection *c, const char *why);

/* Appends one frame (LEB128 length + @text); over the output cap dooms @c. */
int connection_queue_frame(Connection *c, const char *text, size_t len);

/* Writes what is buffered: 0 when done, 1 when the kernel is full, <0 on error. */
int connection_flush(Connection *c);

/* Session @c loses its user without a logout (replaced by a newer session). */
void connection_detach(Connection *c);

/* The grace of an UNBOUND connection or the drain of a CLOSING one ran out. */
void connection_timeout(Connection *c);

/* The periodic liveness check of a session: ping it, or close it if silent. */
void connection_check_alive(Connection *c);
