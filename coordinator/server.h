/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The coordinator: its sockets, timers and the forwarding of logins and
 * logouts to every online user.  One Server per process, on sd-event.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/list.h"
#include "coordinator/timeout-queue.h"
#include "coordinator/user.h"

#define COORDINATOR_DEFAULT_PORT 7474

typedef struct ServerConfig {
	Endpoint listen;           /* port 0: pick a free one for both sockets */
	int tcp_port;              /* -1: the listen port */
	unsigned max_users;
	unsigned max_connections;  /* TCP, all sources */
	unsigned max_conns_per_ip;
	unsigned login_rate;       /* per source IP per second; 0: no limit */
	unsigned login_burst;
	size_t max_datagram;       /* bytes; larger datagrams are dropped */
	size_t output_cap;         /* bytes buffered per connection */
	uint64_t grace;            /* usec a new TCP connection has to say hello */
	uint64_t lease;            /* usec a session-less user stays without re-login */
	uint64_t session_wait;     /* usec a native login has to bind its session */
	uint64_t ping_interval;    /* usec between liveness checks of sessions */
	uint64_t drain_timeout;    /* usec to flush a closing connection */
} ServerConfig;

void server_config_init(ServerConfig *c);

/* Datagrams per sendmmsg() call. */
#define UDP_TX_BATCH 1024

/* A pending UDP datagram: its payload is at @off in the queue's arena. */
typedef struct UdpItem {
	Endpoint dest;
	uint32_t off, len;
} UdpItem;

/* Pending UDP datagrams, sent with sendmmsg() once per loop iteration. */
typedef struct UdpQueue {
	UdpItem *items;
	size_t n, sent, cap;
	uint8_t *arena;       /* payloads, shared by the items of one event */
	size_t arena_len, arena_cap;
	struct mmsghdr msgs[UDP_TX_BATCH];
	struct iovec iovs[UDP_TX_BATCH];
} UdpQueue;

typedef struct Server {
	ServerConfig config;
	sd_event *event;
	Registry *registry;

	int udp_fd;
	int tcp_fd;
	sd_event_source *udp_source;
	sd_event_source *tcp_source;
	sd_event_source *post_source;
	sd_event_source *ping_timer;
	sd_event_source *housekeeping_timer;
	Endpoint udp_address;      /* as bound */
	uint16_t tcp_port;         /* as bound: what Accept announces */

	ListNode connections;      /* every Connection */
	ListNode dirty;            /* connections with output or a pending close */
	size_t n_connections;
	size_t n_sessions;
	TimeoutQueue grace_queue;  /* unbound connections */
	TimeoutQueue drain_queue;  /* closing connections */
	TimeoutQueue lease_queue;  /* session-less users */
	TimeoutQueue wait_queue;   /* native users before their hello */

	UdpQueue udp_out;
	uint8_t *rx_buf;           /* max_datagram + 1 */

	bool notify;               /* $NOTIFY_SOCKET is set */
	bool shutting_down;        /* no forwards while tearing down */
	bool heap_busy;            /* buffers came and went: trim the heap */
	size_t status_users, status_sessions;

	/* Counters, logged at exit (for operators and the benchmark). */
	uint64_t n_datagrams_in, n_datagrams_out, n_frames_out;
	uint64_t n_reads;  /* recvmmsg(), recv() and accept4() calls */
	uint64_t n_writes; /* send(), sendmsg() and sendmmsg() calls */
} Server;

int server_new(const ServerConfig *config, sd_event *event, Server **ret);
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

/*
 * server_logout() - take @u offline and tell every other user.
 * A session @u holds is closed without a further logout.
 */
void server_logout(Server *s, User *u, const char *why);

/* Pushes the login or logout of @u to everyone but @u (and @u's session). */
int server_forward(Server *s, User *u, WireType type);

/* Marks @c to be flushed (or closed) after this loop iteration. */
void server_mark_dirty(Server *s, Connection *c);

/* Puts @u in the lease or session-wait queue it belongs to. */
void server_user_unbound(Server *s, User *u);
