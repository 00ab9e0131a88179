/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Endpoints as the wire writes them: IPv4 "a.b.c.d:port" and IPv6
 * "[addr]:port", port 1-65535.  Parsing is strict (no host names, no
 * leading zeros in IPv4 octets, no spaces); formatting is canonical, so
 * parse(format(e)) == e and format(parse(s)) == s for every canonical s.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[" + INET6_ADDRSTRLEN + "]:" + "65535" + NUL, rounded up. */
#define ENDPOINT_STRLEN 64

typedef union Endpoint {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
} Endpoint;

/*
 * endpoint_parse() - parse "a.b.c.d:port" or "[v6]:port".
 * @s: the text, not necessarily NUL-terminated
 * @n: its length in bytes
 * @ret: the endpoint, written only on success
 *
 * Return: 0, or -EINVAL when @s is not a valid endpoint.
 */
int endpoint_parse(const char *s, size_t n, Endpoint *ret);

/*
 * endpoint_parse_bind() - parse a local address to bind, as --bind, --listen
 * and the "bind" config key take it.
 * @s: NUL-terminated text
 * @ret: the endpoint, written only on success
 *
 * Like endpoint_parse(), but the port may also be "0" ("any port"), which is
 * not an endpoint on the wire.
 *
 * Return: 0, or -EINVAL.
 */
int endpoint_parse_bind(const char *s, Endpoint *ret);

/* A port as the wire writes it: decimal 1-65535, no sign, leading zero or space; -EINVAL otherwise. */
int endpoint_parse_port(const char *s, size_t n, uint16_t *ret);

/* Writes the canonical text of @e into @buf; returns @buf. */
char *endpoint_format(const Endpoint *e, char buf[static ENDPOINT_STRLEN]);

/* Builds an endpoint from a socket address (AF_INET or AF_INET6). */
int endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len, Endpoint *ret);

socklen_t endpoint_socklen(const Endpoint *e);
uint16_t endpoint_port(const Endpoint *e);
void endpoint_set_port(Endpoint *e, uint16_t port);
int endpoint_family(const Endpoint *e);

/* Same family, address and port. */
bool endpoint_equal(const Endpoint *a, const Endpoint *b);

/* Same family and address; the port is not compared. */
bool endpoint_same_ip(const Endpoint *a, const Endpoint *b);

/* 0.0.0.0 or :: */
bool endpoint_is_any(const Endpoint *e);
