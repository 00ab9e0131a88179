/* SPDX-License-Identifier: MIT */

/*
 * Endpoints as the wire writes them.  An Endpoint is a plain value (a union
 * of socket addresses) that callers keep on the stack or inside their own
 * structs; nothing here allocates.  Parsing is strict so that every accepted
 * text has exactly one meaning, and formatting is canonical (inet_ntop), so
 * that parse and format are inverse for canonical text.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/endpoint.h"
#include "common/macro.h"

static bool ascii_is_digit(char c) {
	return c >= '0' && c <= '9';
}

/*
 * A decimal number of 1-@max_digits digits, no sign, no leading zeros (but
 * "0" itself), no spaces, at most @max.  Returns the value or -EINVAL.
 */
static int parse_decimal(const char *s, size_t n, size_t max_digits, unsigned max) {
	unsigned v = 0;

	if (n == 0 || n > max_digits) {
		return -EINVAL;
	}
	if (s[0] == '0' && n > 1) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!ascii_is_digit(s[i])) {
			return -EINVAL;
		}
		v = v * 10 + (unsigned) (s[i] - '0');
	}
	if (v > max) {
		return -EINVAL;
	}
	return (int) v;
}

int endpoint_parse_port(const char *s, size_t n, uint16_t *ret) {
	int r;

	r = parse_decimal(s, n, 5, 65535);
	if (r <= 0) {
		return -EINVAL;
	}
	*ret = (uint16_t) r;
	return 0;
}

static int parse_ipv4(const char *s, size_t n, struct in_addr *ret) {
	uint8_t octets[4];
	size_t start = 0;
	unsigned k = 0;

	for (size_t i = 0; i <= n; i++) {
		int r;

		if (i < n && s[i] != '.') {
			continue;
		}
		if (k >= 4) {
			return -EINVAL;
		}
		r = parse_decimal(s + start, i - start, 3, 255);
		if (r < 0) {
			return r;
		}
		octets[k++] = (uint8_t) r;
		start = i + 1;
	}
	if (k != 4) {
		return -EINVAL;
	}
	memcpy(&ret->s_addr, octets, sizeof(octets));
	return 0;
}

int endpoint_parse(const char *s, size_t n, Endpoint *ret) {
	Endpoint e = {};
	const char *colon;
	uint16_t port;
	int r;

	if (!s || n == 0) {
		return -EINVAL;
	}

	colon = memrchr(s, ':', n);
	if (!colon) {
		return -EINVAL;
	}
	r = endpoint_parse_port(colon + 1, n - (size_t) (colon + 1 - s), &port);
	if (r < 0) {
		return r;
	}

	if (s[0] == '[') {
		char addr[INET6_ADDRSTRLEN];
		size_t len;

		/* "[" addr "]" ":" */
		if (colon - s < 3 || colon[-1] != ']') {
			return -EINVAL;
		}
		len = (size_t) (colon - 1 - (s + 1));
		if (len >= sizeof(addr)) {
			return -EINVAL;
		}
		memcpy(addr, s + 1, len);
		addr[len] = 0;
		/* inet_pton() stops at a NUL: make sure there was none inside. */
		if (strlen(addr) != len) {
			return -EINVAL;
		}
		if (inet_pton(AF_INET6, addr, &e.in6.sin6_addr) != 1) {
			return -EINVAL;
		}
		e.in6.sin6_family = AF_INET6;
		e.in6.sin6_port = htons(port);
	} else {
		r = parse_ipv4(s, (size_t) (colon - s), &e.in.sin_addr);
		if (r < 0) {
			return r;
		}
		e.in.sin_family = AF_INET;
		e.in.sin_port = htons(port);
	}

	*ret = e;
	return 0;
}

int endpoint_parse_bind(const char *s, Endpoint *ret) {
	char buf[ENDPOINT_STRLEN + 8];
	const char *colon;
	bool any_port;
	Endpoint e;
	int r;

	assert(s);

	if (strlen(s) >= ENDPOINT_STRLEN) {
		return -EINVAL;
	}
	colon = strrchr(s, ':');
	if (!colon) {
		return -EINVAL;
	}

	/* Parse "any port" as port 1, so that the address rules stay in one place. */
	any_port = streq(colon + 1, "0");
	(void) snprintf(buf, sizeof(buf), "%.*s:%s", (int) (colon - s), s,
			any_port ? "1" : colon + 1);
	r = endpoint_parse(buf, strlen(buf), &e);
	if (r < 0) {
		return r;
	}
	if (any_port) {
		endpoint_set_port(&e, 0);
	}

	*ret = e;
	return 0;
}

char *endpoint_format(const Endpoint *e, char buf[static ENDPOINT_STRLEN]) {
	char addr[INET6_ADDRSTRLEN];

	switch (e->sa.sa_family) {
	case AF_INET:
		(void) inet_ntop(AF_INET, &e->in.sin_addr, addr, sizeof(addr));
		(void) snprintf(buf, ENDPOINT_STRLEN, "%s:%u", addr, endpoint_port(e));
		break;
	case AF_INET6:
		(void) inet_ntop(AF_INET6, &e->in6.sin6_addr, addr, sizeof(addr));
		(void) snprintf(buf, ENDPOINT_STRLEN, "[%s]:%u", addr, endpoint_port(e));
		break;
	default:
		(void) snprintf(buf, ENDPOINT_STRLEN, "(invalid)");
		break;
	}
	return buf;
}

int endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len, Endpoint *ret) {
	Endpoint e = {};

	if (!sa || len < (socklen_t) sizeof(sa_family_t)) {
		return -EINVAL;
	}
	switch (sa->sa_family) {
	case AF_INET:
		if (len < (socklen_t) sizeof(struct sockaddr_in)) {
			return -EINVAL;
		}
		memcpy(&e.in, sa, sizeof(struct sockaddr_in));
		memset(e.in.sin_zero, 0, sizeof(e.in.sin_zero));
		break;
	case AF_INET6:
		if (len < (socklen_t) sizeof(struct sockaddr_in6)) {
			return -EINVAL;
		}
		memcpy(&e.in6, sa, sizeof(struct sockaddr_in6));
		break;
	default:
		return -EAFNOSUPPORT;
	}
	*ret = e;
	return 0;
}

socklen_t endpoint_socklen(const Endpoint *e) {
	switch (e->sa.sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

uint16_t endpoint_port(const Endpoint *e) {
	switch (e->sa.sa_family) {
	case AF_INET:
		return ntohs(e->in.sin_port);
	case AF_INET6:
		return ntohs(e->in6.sin6_port);
	default:
		return 0;
	}
}

void endpoint_set_port(Endpoint *e, uint16_t port) {
	switch (e->sa.sa_family) {
	case AF_INET:
		e->in.sin_port = htons(port);
		break;
	case AF_INET6:
		e->in6.sin6_port = htons(port);
		break;
	default:
		break;
	}
}

int endpoint_family(const Endpoint *e) {
	return e->sa.sa_family;
}

bool endpoint_same_ip(const Endpoint *a, const Endpoint *b) {
	if (a->sa.sa_family != b->sa.sa_family) {
		return false;
	}
	switch (a->sa.sa_family) {
	case AF_INET:
		return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	case AF_INET6:
		return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(struct in6_addr)) == 0;
	default:
		return false;
	}
}

bool endpoint_equal(const Endpoint *a, const Endpoint *b) {
	return endpoint_same_ip(a, b) && endpoint_port(a) == endpoint_port(b);
}

bool endpoint_is_any(const Endpoint *e) {
	switch (e->sa.sa_family) {
	case AF_INET:
		return e->in.sin_addr.s_addr == htonl(INADDR_ANY);
	case AF_INET6:
		return IN6_IS_ADDR_UNSPECIFIED(&e->in6.sin6_addr);
	default:
		return false;
	}
}
