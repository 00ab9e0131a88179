/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/endpoint.c: strict parsing, canonical formatting
 * (format(parse(s)) == s for canonical s), and the small accessors.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/endpoint.h"
#include "common/macro.h"

static const struct {
	const char *text;
	int family;
	uint16_t port;
} canonical[] = {
	{ "127.0.0.1:9000", AF_INET, 9000 },
	{ "0.0.0.0:1", AF_INET, 1 },
	{ "255.255.255.255:65535", AF_INET, 65535 },
	{ "10.0.0.1:7474", AF_INET, 7474 },
	{ "192.168.100.200:40123", AF_INET, 40123 },
	{ "[::1]:9000", AF_INET6, 9000 },
	{ "[::]:1", AF_INET6, 1 },
	{ "[2001:db8::1]:65535", AF_INET6, 65535 },
	{ "[fe80::1:2:3:4]:5", AF_INET6, 5 },
	{ "[::ffff:127.0.0.1]:9000", AF_INET6, 9000 },
	{ "[2001:db8:1:2:3:4:5:6]:80", AF_INET6, 80 },
};

static void test_endpoint_parse_format_round_trip(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(canonical); i++) {
		char buf[ENDPOINT_STRLEN];
		Endpoint e, e2;

		if (endpoint_parse(canonical[i].text, strlen(canonical[i].text), &e) < 0) {
			fail_msg("'%s' did not parse", canonical[i].text);
		}
		assert_int_equal(endpoint_family(&e), canonical[i].family);
		assert_int_equal(endpoint_port(&e), canonical[i].port);
		assert_string_equal(endpoint_format(&e, buf), canonical[i].text);
		assert_int_equal(endpoint_parse(buf, strlen(buf), &e2), 0);
		assert_true(endpoint_equal(&e, &e2));
	}
}

static const struct {
	const char *in;
	const char *out;
} normalised[] = {
	{ "[0:0:0:0:0:0:0:1]:9", "[::1]:9" },
	{ "[2001:DB8::A]:9", "[2001:db8::a]:9" },
	{ "[2001:0db8:0000::1]:9", "[2001:db8::1]:9" },
};

static void test_endpoint_format_is_canonical(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(normalised); i++) {
		char buf[ENDPOINT_STRLEN];
		Endpoint e;

		assert_int_equal(endpoint_parse(normalised[i].in, strlen(normalised[i].in), &e), 0);
		assert_string_equal(endpoint_format(&e, buf), normalised[i].out);
	}
}

static const struct {
	const char *text;
	const char *rule;
} rejects[] = {
	{ "", "empty" },
	{ ":", "only a colon" },
	{ "127.0.0.1", "no port" },
	{ "127.0.0.1:", "empty port" },
	{ "127.0.0.1:0", "port 0" },
	{ "127.0.0.1:65536", "port > 65535" },
	{ "127.0.0.1:99999", "port 99999" },
	{ "127.0.0.1:123456", "port of 6 digits" },
	{ "127.0.0.1:09000", "port with a leading zero" },
	{ "127.0.0.1:+9000", "port with a sign" },
	{ "127.0.0.1:-1", "negative port" },
	{ "127.0.0.1: 9000", "space before the port" },
	{ "127.0.0.1:9000 ", "space after the port" },
	{ "127.0.0.1 :9000", "space before the colon" },
	{ " 127.0.0.1:9000", "leading space" },
	{ "127.0.0.1:0x10", "hex port" },
	{ ":9000", "no address" },
	{ "127.0.0:9000", "three octets" },
	{ "127.0.0.1.1:9000", "five octets" },
	{ "127.0.0.01:9000", "leading zero in an octet" },
	{ "127.00.0.1:9000", "octet 00" },
	{ "256.0.0.1:9000", "octet > 255" },
	{ "1000.0.0.1:9000", "octet of 4 digits" },
	{ "127..0.1:9000", "empty octet" },
	{ ".127.0.0.1:9000", "leading dot" },
	{ "127.0.0.1.:9000", "trailing dot" },
	{ "-1.0.0.1:9000", "negative octet" },
	{ "+1.0.0.1:9000", "octet with a sign" },
	{ "0x7f.0.0.1:9000", "hex octet" },
	{ "127.1:9000", "short form" },
	{ "2130706433:9000", "integer address" },
	{ "localhost:9000", "host name" },
	{ "::1:9000", "IPv6 without brackets" },
	{ "[::1]", "IPv6 without port" },
	{ "[::1]:", "IPv6 with empty port" },
	{ "[::1]9000", "IPv6 without colon" },
	{ "[::1:9000", "IPv6 without closing bracket" },
	{ "::1]:9000", "IPv6 without opening bracket" },
	{ "[]:9000", "empty brackets" },
	{ "[127.0.0.1]:9000", "IPv4 in brackets" },
	{ "[::1%lo]:9000", "IPv6 zone" },
	{ "[:::1]:9000", "IPv6 triple colon" },
	{ "[1:2:3:4:5:6:7:8:9]:9000", "IPv6 with 9 groups" },
	{ "[ ::1]:9000", "space in brackets" },
	{ "[::1]:0", "IPv6 port 0" },
	{ "[0000:0000:0000:0000:0000:0000:0000:0000:0]:1", "address longer than INET6_ADDRSTRLEN" },
};

static void test_endpoint_parse_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(rejects); i++) {
		Endpoint e = { .sa.sa_family = AF_UNIX };
		int r;

		r = endpoint_parse(rejects[i].text, strlen(rejects[i].text), &e);
		if (r != -EINVAL) {
			fail_msg("%s: '%s' returned %d", rejects[i].rule, rejects[i].text, r);
		}
		assert_int_equal(endpoint_family(&e), AF_UNIX);
	}
}

static void test_endpoint_parse_uses_length(void **state) {
	Endpoint e;

	/* Not NUL-terminated: only n bytes count. */
	assert_int_equal(endpoint_parse("127.0.0.1:90001", 14, &e), 0);
	assert_int_equal(endpoint_port(&e), 9000);
	assert_int_equal(endpoint_parse("127.0.0.1:9000\0", 15, &e), -EINVAL);
	assert_int_equal(endpoint_parse("[::1\0]:9000", 11, &e), -EINVAL);
	assert_int_equal(endpoint_parse(NULL, 0, &e), -EINVAL);
}

static void test_endpoint_parse_port(void **state) {
	uint16_t port = 7;

	assert_int_equal(endpoint_parse_port("1", 1, &port), 0);
	assert_int_equal(port, 1);
	assert_int_equal(endpoint_parse_port("65535", 5, &port), 0);
	assert_int_equal(port, 65535);
	assert_int_equal(endpoint_parse_port("0", 1, &port), -EINVAL);
	assert_int_equal(endpoint_parse_port("65536", 5, &port), -EINVAL);
	assert_int_equal(endpoint_parse_port("", 0, &port), -EINVAL);
	assert_int_equal(endpoint_parse_port("01", 2, &port), -EINVAL);
	assert_int_equal(port, 65535);
}

static void test_endpoint_from_sockaddr(void **state) {
	const Endpoint in = { .in = {
		.sin_family = AF_INET,
		.sin_port = htons(9000),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	} };
	const Endpoint in6 = { .in6 = {
		.sin6_family = AF_INET6,
		.sin6_port = htons(9001),
		.sin6_addr = IN6ADDR_LOOPBACK_INIT,
	} };
	struct sockaddr un = { .sa_family = AF_UNIX };
	char buf[ENDPOINT_STRLEN];
	Endpoint e;

	assert_int_equal(endpoint_from_sockaddr(&in.sa, sizeof(struct sockaddr_in), &e), 0);
	assert_string_equal(endpoint_format(&e, buf), "127.0.0.1:9000");
	assert_int_equal(endpoint_socklen(&e), sizeof(struct sockaddr_in));
	assert_int_equal(endpoint_from_sockaddr(&in6.sa, sizeof(struct sockaddr_in6), &e), 0);
	assert_string_equal(endpoint_format(&e, buf), "[::1]:9001");
	assert_int_equal(endpoint_socklen(&e), sizeof(struct sockaddr_in6));

	assert_int_equal(endpoint_from_sockaddr(&in.sa, sizeof(struct sockaddr_in) - 1, &e), -EINVAL);
	assert_int_equal(endpoint_from_sockaddr(&in6.sa, sizeof(struct sockaddr_in), &e), -EINVAL);
	assert_int_equal(endpoint_from_sockaddr(&un, sizeof(un), &e), -EAFNOSUPPORT);
	assert_int_equal(endpoint_from_sockaddr(NULL, 0, &e), -EINVAL);
}

static void test_endpoint_compare(void **state) {
	Endpoint a, b, c, d;

	assert_int_equal(endpoint_parse("127.0.0.1:9000", 14, &a), 0);
	assert_int_equal(endpoint_parse("127.0.0.1:9001", 14, &b), 0);
	assert_int_equal(endpoint_parse("127.0.0.2:9000", 14, &c), 0);
	assert_int_equal(endpoint_parse("[::ffff:127.0.0.1]:9000", 23, &d), 0);

	assert_true(endpoint_equal(&a, &a));
	assert_false(endpoint_equal(&a, &b));
	assert_true(endpoint_same_ip(&a, &b));
	assert_false(endpoint_same_ip(&a, &c));
	assert_false(endpoint_equal(&a, &c));
	/* A v4-mapped address is another family. */
	assert_false(endpoint_same_ip(&a, &d));

	endpoint_set_port(&b, 9000);
	assert_true(endpoint_equal(&a, &b));
	assert_int_equal(endpoint_port(&b), 9000);
}

static void test_endpoint_is_any(void **state) {
	Endpoint e = {};

	assert_false(endpoint_is_any(&e));
	assert_int_equal(endpoint_socklen(&e), 0);
	assert_int_equal(endpoint_port(&e), 0);
	assert_int_equal(endpoint_parse("0.0.0.0:1", 9, &e), 0);
	assert_true(endpoint_is_any(&e));
	assert_int_equal(endpoint_parse("[::]:1", 6, &e), 0);
	assert_true(endpoint_is_any(&e));
	assert_int_equal(endpoint_parse("[::1]:1", 7, &e), 0);
	assert_false(endpoint_is_any(&e));
	assert_int_equal(endpoint_parse("127.0.0.1:1", 11, &e), 0);
	assert_false(endpoint_is_any(&e));
}

/* --bind, --listen and the "bind" key: an endpoint, or port 0 for any port. */
static void test_endpoint_parse_bind(void **state) {
	static const struct {
		const char *text;
		int r;
		int family;
		uint16_t port;
	} cases[] = {
		{ "127.0.0.1:0", 0, AF_INET, 0 },
		{ "127.0.0.1:80", 0, AF_INET, 80 },
		{ "0.0.0.0:7474", 0, AF_INET, 7474 },
		{ "[::1]:0", 0, AF_INET6, 0 },
		{ "[::]:65535", 0, AF_INET6, 65535 },
		{ "127.0.0.1:00", -EINVAL },
		{ "127.0.0.1:080", -EINVAL },
		{ "127.0.0.1:+0", -EINVAL },
		{ "127.0.0.1:65536", -EINVAL },
		{ "127.0.0.1:", -EINVAL },
		{ "127.0.0.1", -EINVAL },
		{ ":0", -EINVAL },
		{ "localhost:0", -EINVAL },
		{ "300.1.1.1:5", -EINVAL },
		{ "", -EINVAL },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		Endpoint e = {};

		assert_int_equal(endpoint_parse_bind(cases[i].text, &e), cases[i].r);
		if (cases[i].r == 0) {
			assert_int_equal(endpoint_family(&e), cases[i].family);
			assert_int_equal(endpoint_port(&e), cases[i].port);
		} else {
			assert_int_equal(endpoint_family(&e), AF_UNSPEC);
		}
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint_parse_format_round_trip),
		cmocka_unit_test(test_endpoint_format_is_canonical),
		cmocka_unit_test(test_endpoint_parse_rejects),
		cmocka_unit_test(test_endpoint_parse_uses_length),
		cmocka_unit_test(test_endpoint_parse_port),
		cmocka_unit_test(test_endpoint_from_sockaddr),
		cmocka_unit_test(test_endpoint_compare),
		cmocka_unit_test(test_endpoint_is_any),
		cmocka_unit_test(test_endpoint_parse_bind),
	};

	return cmocka_run_group_tests_name("endpoint", tests, NULL, NULL);
}
