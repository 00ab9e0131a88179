/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Outgoing datagrams, queued while a loop iteration handles its events and
 * sent at its end with sendmmsg(): in a login storm many forwards share one
 * syscall, and a fan-out stores its payload once for all recipients.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/endpoint.h"
#include "common/macro.h"

typedef struct UdpQueue UdpQueue;

int udp_queue_new(UdpQueue **ret);
UdpQueue *udp_queue_free(UdpQueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(UdpQueue *, udp_queue_free);

/*
 * udp_queue_add() - queue @len bytes of @buf for @dest.
 *
 * A payload equal to one of the last few queued is shared, not copied, so a
 * fan-out of one line in two encodings costs two copies, not one per user.
 * Return: 0, -ENOBUFS when the queue is full, -ENOMEM.
 */
int udp_queue_add(UdpQueue *q, const Endpoint *dest, const uint8_t *buf, size_t len);

/* Datagrams queued and not sent yet. */
size_t udp_queue_n_pending(const UdpQueue *q);

/* Whether anything was queued since the queue was last emptied. */
bool udp_queue_is_empty(const UdpQueue *q);

/*
 * udp_queue_flush() - send what is queued on @fd (non-blocking).
 * A datagram that cannot go (e.g. no route) is skipped.
 * Return: 0 when everything went, 1 when the socket is full: flush again
 * when it is writable.
 */
int udp_queue_flush(UdpQueue *q, int fd);

/* Datagrams sent, and sendmmsg() calls made, since udp_queue_new(). */
uint64_t udp_queue_get_n_sent(const UdpQueue *q);
uint64_t udp_queue_get_n_calls(const UdpQueue *q);
