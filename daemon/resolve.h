/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Host name resolution off the event loop: getaddrinfo() runs in a short-lived
 * thread and hands its answer back through a socket watched by sd-event.
 */

#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"

/* Host names longer than this are refused before any lookup. */
#define RESOLVE_HOST_MAX 253

typedef struct Resolver Resolver;

/* @error is 0 and @ep the first address found, or a negative errno. */
typedef void (*ResolveCallback)(int error, const Endpoint *ep, void *userdata);

/*
 * resolver_start() - look up @host (of @family) and call @cb from the loop.
 * Return: 0, -EINVAL for a name that is not a host name, or -errno.
 */
int resolver_start(sd_event *event, const char *host, uint16_t port, int family,
		ResolveCallback cb, void *userdata, Resolver **ret);
/* Cancels a lookup still running: its callback will not be called. */
Resolver *resolver_free(Resolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Resolver *, resolver_free);

/* Letters, digits, '-' and '.', 1-253 bytes. */
bool resolve_host_is_valid(const char *host);
