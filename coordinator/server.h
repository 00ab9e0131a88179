/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The coordinator's sockets and event loop: the UDP socket logins and
 * logouts arrive on, the TCP listener and its connections, and the timers.
 * What a datagram or a frame means is decided below it (presence.c).  One
 * Server per process, on sd-event.
 */

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/bindings.h"

#define COORDINATOR_DEFAULT_PORT 7474

typedef struct ServerConfig {
	Endpoint listen;           /* port 0: pick a free one for both sockets */
	int tcp_port;              /* -1: the listen port */
	unsigned max_users;
	unsigned max_connections;  /* TCP, all sources */
	unsigned max_conns_per_ip;
	unsigned max_names_per_ip;   /* users online per source IP */
	unsigned max_pending_per_ip; /* reference logins awaiting their list fetch */
	unsigned login_rate;       /* per source IP per second; 0: no limit */
	unsigned login_burst;
	size_t max_datagram;       /* bytes; larger datagrams are dropped */
	size_t output_cap;         /* bytes buffered per connection */
	uint64_t grace;            /* usec a new TCP connection has to say hello */
	uint64_t lease;            /* usec a session-less user stays without re-login */
	uint64_t session_wait;     /* usec a native login has to bind its session */
	uint64_t pending_wait;     /* usec a reference login has to fetch the list */
	uint64_t ping_interval;    /* usec between liveness checks of sessions */
	uint64_t probe_interval;   /* usec between probes of a reference client; 0: none */
	unsigned probe_count;      /* unreachable probes in a row that log it out */
	unsigned probe_rate;       /* probes per second at most; 0: no limit */
	uint64_t drain_timeout;    /* usec to flush a closing connection */
	BindingStore *bindings;    /* name -> key bindings; not owned (main.c's) */
	const Identity *identity;  /* the coordinator's key; not owned (main.c's) */
} ServerConfig;

void server_config_init(ServerConfig *c);

typedef struct Server Server;

int server_new(const ServerConfig *config, sd_event *event, Server **ret);
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

/* The UDP address as bound, and the TCP port as bound (what Accept announces). */
const Endpoint *server_get_udp_address(const Server *s);
uint16_t server_get_tcp_port(const Server *s);
