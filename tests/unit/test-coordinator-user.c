/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/user.c: the registry (add, find, remove, login
 * order, limits), the roster text kept incrementally, the announced
 * endpoint rule, and the per-IP token bucket and connection counts.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "coordinator/user.h"

static const RegistryLimits limits = {
	.max_users = 4,
	.login_rate = 2,
	.login_burst = 3,
	.max_conns_per_ip = 2,
	.max_ips = 3,
};

static Endpoint ep(const char *s) {
	Endpoint e;

	assert_int_equal(endpoint_parse(s, strlen(s), &e), 0);
	return e;
}

static WireMessage login(const char *name, const char *endpoint, const char *caps) {
	WireMessage m = { .type = WIRE_TYPE_LOGIN };

	(void) snprintf(m.name, sizeof(m.name), "%s", name);
	(void) snprintf(m.caps, sizeof(m.caps), "%s", caps);
	m.endpoint = ep(endpoint);
	return m;
}

static int setup(void **state) {
	Registry *reg = NULL;

	assert_int_equal(registry_new(&limits, &reg), 0);
	*state = reg;
	return 0;
}

static int teardown(void **state) {
	registry_free(*state);
	return 0;
}

static User *add(Registry *reg, const char *name, const char *endpoint, const char *caps,
		const char *source) {
	WireMessage m = login(name, endpoint, caps);
	Endpoint src = ep(source);
	User *u = NULL;

	assert_int_equal(registry_add(reg, &m, &src, WIRE_ENCODING_UTF16LE, &u), 0);
	assert_non_null(u);
	return u;
}

static void assert_list(Registry *reg, const char *expected) {
	const char *text;
	size_t len;

	assert_int_equal(registry_get_list(reg, &text, &len), 0);
	assert_int_equal(len, strlen(expected));
	assert_string_equal(text, expected);
}

static void test_registry_list_in_login_order(void **state) {
	Registry *reg = *state;

	assert_list(reg, "end");
	add(reg, "alice", "127.0.0.1:9000", "", "127.0.0.1:5000");
	assert_list(reg, "alice,127.0.0.1:9000;end");
	add(reg, "bob", "127.0.0.1:9001", "native1", "127.0.0.1:5001");
	assert_list(reg, "alice,127.0.0.1:9000;bob,127.0.0.1:9001,native1;end");
	add(reg, "张三", "10.0.0.1:9002", "", "10.0.0.1:5002");
	assert_list(reg, "alice,127.0.0.1:9000;bob,127.0.0.1:9001,native1;张三,10.0.0.1:9002;end");

	registry_remove(reg, registry_find(reg, "bob"));
	assert_list(reg, "alice,127.0.0.1:9000;张三,10.0.0.1:9002;end");
	add(reg, "bob", "127.0.0.1:9003", "", "127.0.0.1:5003");
	assert_list(reg, "alice,127.0.0.1:9000;张三,10.0.0.1:9002;bob,127.0.0.1:9003;end");
	registry_remove(reg, registry_find(reg, "alice"));
	registry_remove(reg, registry_find(reg, "张三"));
	registry_remove(reg, registry_find(reg, "bob"));
	assert_list(reg, "end");
	assert_int_equal(registry_n_users(reg), 0);
}

static void test_registry_find_and_iterate(void **state) {
	Registry *reg = *state;
	User *a, *b;

	a = add(reg, "alice", "127.0.0.1:9000", "", "127.0.0.1:5000");
	b = add(reg, "bob", "127.0.0.1:9001", "", "127.0.0.1:5001");
	assert_ptr_equal(registry_find(reg, "alice"), a);
	assert_ptr_equal(registry_find(reg, "bob"), b);
	assert_null(registry_find(reg, "Alice"));
	assert_null(registry_find(reg, "alic"));
	assert_ptr_equal(registry_first(reg), a);
	assert_ptr_equal(registry_next(reg, a), b);
	assert_null(registry_next(reg, b));
	assert_int_equal(registry_n_users(reg), 2);
}

static void test_registry_max_users(void **state) {
	Registry *reg = *state;
	WireMessage m = login("e", "127.0.0.1:9000", "");
	Endpoint src = ep("127.0.0.1:1");
	User *u = NULL;

	add(reg, "a", "127.0.0.1:9000", "", "127.0.0.1:1");
	add(reg, "b", "127.0.0.1:9000", "", "127.0.0.1:1");
	add(reg, "c", "127.0.0.1:9000", "", "127.0.0.1:1");
	add(reg, "d", "127.0.0.1:9000", "", "127.0.0.1:1");
	assert_int_equal(registry_add(reg, &m, &src, WIRE_ENCODING_UTF8, &u), -ENOSPC);
	assert_null(u);
	assert_list(reg, "a,127.0.0.1:9000;b,127.0.0.1:9000;c,127.0.0.1:9000;"
			"d,127.0.0.1:9000;end");
}

static void test_registry_announced_endpoint(void **state) {
	Registry *reg = *state;
	User *same, *nat;

	same = add(reg, "same", "127.0.0.1:9000", "", "127.0.0.1:40000");
	assert_true(same->udp_reachable);
	assert_true(endpoint_equal(&same->announced, &same->declared));
	assert_false(same->native);

	/* A declared endpoint on another IP is never announced. */
	nat = add(reg, "nat", "192.168.1.5:9000", "native1", "203.0.113.7:61000");
	assert_false(nat->udp_reachable);
	assert_true(nat->native);
	assert_string_equal(nat->entry, "nat,203.0.113.7:61000,native1");
}

static void test_registry_login_is_same(void **state) {
	Registry *reg = *state;
	WireMessage m = login("alice", "127.0.0.1:9000", "");
	WireMessage other_port = login("alice", "127.0.0.1:9001", "");
	WireMessage other_caps = login("alice", "127.0.0.1:9000", "native1");
	User *u = add(reg, "alice", "127.0.0.1:9000", "", "127.0.0.1:1");

	assert_true(user_login_is_same(u, &m, WIRE_ENCODING_UTF16LE));
	assert_false(user_login_is_same(u, &m, WIRE_ENCODING_UTF8));
	assert_false(user_login_is_same(u, &other_port, WIRE_ENCODING_UTF16LE));
	assert_false(user_login_is_same(u, &other_caps, WIRE_ENCODING_UTF16LE));
}

static void test_registry_token_bucket(void **state) {
	Registry *reg = *state;
	Endpoint a = ep("127.0.0.1:1"), a2 = ep("127.0.0.1:2"), b = ep("127.0.0.2:1");
	uint64_t t = 1000000;

	/* Burst of 3, then empty; the port does not matter. */
	assert_int_equal(registry_take_login_token(reg, &a, t), 1);
	assert_int_equal(registry_take_login_token(reg, &a2, t), 1);
	assert_int_equal(registry_take_login_token(reg, &a, t), 1);
	assert_int_equal(registry_take_login_token(reg, &a, t), 0);
	/* Other IPs have their own bucket. */
	assert_int_equal(registry_take_login_token(reg, &b, t), 1);
	/* 2 per second: one token after 0.5 s, not before. */
	assert_int_equal(registry_take_login_token(reg, &a, t + 400000), 0);
	assert_int_equal(registry_take_login_token(reg, &a, t + 500000), 1);
	assert_int_equal(registry_take_login_token(reg, &a, t + 500000), 0);
	/* A long pause refills only up to the burst. */
	t += 100 * 1000000ULL;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(registry_take_login_token(reg, &a, t), 1);
	}
	assert_int_equal(registry_take_login_token(reg, &a, t), 0);
}

static void test_registry_conns_and_gc(void **state) {
	Registry *reg = *state;
	Endpoint a = ep("127.0.0.1:1"), b = ep("127.0.0.2:1"), c = ep("127.0.0.3:1");
	Endpoint d = ep("127.0.0.4:1"), v6 = ep("[::1]:1");
	uint64_t t = 1000000;

	assert_int_equal(registry_conn_add(reg, &a, t), 1);
	assert_int_equal(registry_conn_add(reg, &a, t), 1);
	assert_int_equal(registry_conn_add(reg, &a, t), 0);
	registry_conn_remove(reg, &a);
	assert_int_equal(registry_conn_add(reg, &a, t), 1);

	/* max_ips = 3: a fourth IP fits only once an idle one is collected. */
	assert_int_equal(registry_conn_add(reg, &b, t), 1);
	assert_int_equal(registry_take_login_token(reg, &c, t), 1);
	assert_int_equal(registry_n_ips(reg), 3);
	assert_true(registry_conn_add(reg, &d, t) < 0);
	registry_conn_remove(reg, &b);
	assert_int_equal(registry_conn_add(reg, &d, t), 1);
	/* c's bucket is not full yet: it stays; a is busy: it stays. */
	assert_int_equal(registry_n_ips(reg), 3);
	assert_int_equal(registry_gc_ips(reg, t), 0);
	assert_int_equal(registry_gc_ips(reg, t + 10 * 1000000ULL), 1);
	assert_int_equal(registry_conn_add(reg, &v6, t), 1);
	registry_conn_remove(reg, &v6);
	registry_conn_remove(reg, &v6); /* never below zero */
	assert_int_equal(registry_conn_add(reg, &v6, t), 1);
}

static void test_registry_many_users(void **state) {
	static const RegistryLimits big = { .max_users = 5000, .max_ips = 1 };
	_cleanup_(registry_freep) Registry *reg = NULL;
	Endpoint src = ep("127.0.0.1:1");
	const char *text;
	size_t len;

	assert_int_equal(registry_new(&big, &reg), 0);
	for (int i = 0; i < 5000; i++) {
		WireMessage m = login("", "127.0.0.1:9000", "");
		User *u;

		(void) snprintf(m.name, sizeof(m.name), "user%d", i);
		assert_int_equal(registry_add(reg, &m, &src, WIRE_ENCODING_UTF8, &u), 0);
	}
	for (int i = 0; i < 5000; i += 2) {
		char name[32];

		(void) snprintf(name, sizeof(name), "user%d", i);
		registry_remove(reg, registry_find(reg, name));
	}
	assert_int_equal(registry_n_users(reg), 2500);
	assert_null(registry_find(reg, "user0"));
	assert_non_null(registry_find(reg, "user4999"));
	assert_int_equal(registry_get_list(reg, &text, &len), 0);
	assert_true(strncmp(text, "user1,127.0.0.1:9000;user3,", 27) == 0);
	assert_string_equal(text + len - strlen("user4999,127.0.0.1:9000;end"),
			"user4999,127.0.0.1:9000;end");
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registry_list_in_login_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_find_and_iterate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_max_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_announced_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_login_is_same, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_token_bucket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_conns_and_gc, setup, teardown),
		cmocka_unit_test(test_registry_many_users),
	};

	return cmocka_run_group_tests_name("coordinator-user", tests, NULL, NULL);
}
