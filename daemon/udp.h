/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The daemon's one UDP socket: every datagram to and from peers and the
 * coordinator goes through it.  Incoming datagrams are handed to the handler
 * registered for their kind: JSON (native peers) or a seed message type.
 */

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"

/* Requested size of the socket's buffers, in bytes. */
#define UDP_BUFFER (4 * 1024 * 1024)

typedef struct Udp Udp;

typedef void (*UdpJsonHandler)(const char *buf, size_t n, const Endpoint *from, void *userdata);
typedef void (*UdpWireHandler)(const WireMessage *w, const Endpoint *from, void *userdata);

int udp_new(sd_event *event, Udp **ret);
Udp *udp_free(Udp *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(Udp *, udp_free);

/*
 * udp_open() - bind the socket to @address and start receiving.  AF_UNSPEC
 * means every address of both families (IPv4 only when the host has no
 * IPv6), any port.  Logs its errors.
 */
int udp_open(Udp *u, const Endpoint *address);

/* JSON datagrams (the first byte is '{'). */
void udp_set_json_handler(Udp *u, UdpJsonHandler handler, void *userdata);
/* Datagrams of the seed grammar of type @type. */
void udp_set_wire_handler(Udp *u, WireType type, UdpWireHandler handler, void *userdata);

/*
 * udp_deliver() - hand @buf to the handler of its kind as if it had arrived
 * from @from (what the socket does with each datagram it reads; tests feed
 * the layers above through it without a socket).
 */
void udp_deliver(Udp *u, const void *buf, size_t n, const Endpoint *from);

/* Return: 0, -EAFNOSUPPORT when the socket cannot reach @to, -ENOTCONN before udp_open(). */
int udp_send(Udp *u, const Endpoint *to, const void *buf, size_t n);

/* The bound address (the port is known after udp_open()). */
const Endpoint *udp_get_address(Udp *u);
/* Whether the socket can send to addresses of @family. */
bool udp_can_reach(Udp *u, int family);
/* The family to resolve host names in: AF_UNSPEC for a dual-stack socket. */
int udp_get_resolve_family(Udp *u);
