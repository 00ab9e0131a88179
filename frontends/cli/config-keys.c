/* SPDX-License-Identifier: MIT */

/*
 * The CLI's copy of the daemon's setting keys and their value formats.  The
 * CLI cannot link daemon code, so the list lives here; test-cli-config links
 * the daemon's config module and checks that both lists agree.  Everything
 * is static data and pure functions.
 */

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "common/parse-util.h"
#include "frontends/cli/config-keys.h"

#define HOST_MAX 253

const char *const cli_config_keys[] = {
	"username",
	"coordinator",
	"bind",
	"autologin",
	"notifications",
	"outbox-expiry",
	NULL,
};

static const struct {
	const char *key;
	const char *format;
} key_formats[] = {
	{ "username", "expected 1-32 characters without ',' ';' ':' or control characters, "
		"not 'end', or \"\"" },
	{ "coordinator", "expected HOST[:PORT], HOST a name or an address, PORT 1-65535" },
	{ "bind", "expected ADDRESS:PORT with an IP address, such as 0.0.0.0:0 or [::]:7475" },
	{ "autologin", "expected true or false" },
	{ "notifications", "expected true or false" },
	{ "outbox-expiry", "expected a duration such as 90s, 30m, 12h or 7d "
		"(1s to 3650d)" },
};

const char *cli_config_key_format(const char *key) {
	for (size_t i = 0; i < ELEMENTSOF(key_formats); i++) {
		if (streq(key_formats[i].key, key)) {
			return key_formats[i].format;
		}
	}
	return NULL;
}

static bool host_char_ok(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '-';
}

static bool port_is_valid(const char *s) {
	uint64_t port;

	return parse_uint64_range(s, 1, 65535, &port) >= 0;
}

bool cli_coordinator_is_valid(const char *s) {
	const char *end;

	if (!s || s[0] == '\0' || strlen(s) > HOST_MAX + 8) {
		return false;
	}
	if (s[0] == '[') {
		char addr[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;

		end = strchr(s, ']');
		if (!end || (size_t) (end - s - 1) >= sizeof(addr) ||
				(end[1] != '\0' && end[1] != ':')) {
			return false;
		}
		(void) snprintf(addr, sizeof(addr), "%.*s", (int) (end - s - 1), s + 1);
		if (inet_pton(AF_INET6, addr, &a6) != 1) {
			return false;
		}
		return end[1] == '\0' || port_is_valid(end + 2);
	}
	end = strchr(s, ':');
	if (!end) {
		end = s + strlen(s);
	}
	if (end == s || end - s > HOST_MAX) {
		return false;
	}
	for (const char *c = s; c < end; c++) {
		if (!host_char_ok(*c)) {
			return false;
		}
	}
	return *end == '\0' || port_is_valid(end + 1);
}

static const struct {
	char suffix;
	const char *one;
	const char *many;
} duration_units[] = {
	{ 'd', "day", "days" },
	{ 'h', "hour", "hours" },
	{ 'm', "minute", "minutes" },
	{ 's', "second", "seconds" },
};

const char *cli_format_duration(const char *s, char *buf, size_t size) {
	uint64_t n;
	size_t len = strlen(s);

	(void) snprintf(buf, size, "%s", s);
	if (len < 2) {
		return buf;
	}
	for (size_t i = 0; i < ELEMENTSOF(duration_units); i++) {
		char digits[24];

		if (s[len - 1] != duration_units[i].suffix || len - 1 >= sizeof(digits)) {
			continue;
		}
		(void) snprintf(digits, sizeof(digits), "%.*s", (int) (len - 1), s);
		if (parse_uint64_range(digits, 0, UINT32_MAX, &n) < 0) {
			return buf;
		}
		(void) snprintf(buf, size, "%" PRIu64 " %s", n,
			n == 1 ? duration_units[i].one : duration_units[i].many);
		return buf;
	}
	return buf;
}
