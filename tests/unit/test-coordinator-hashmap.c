/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of coordinator/hashmap.c: SipHash-2-4 against the reference
 * vectors, keys per table, growth, removal (also from inside foreach) and
 * chains of equal hashes.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "coordinator/hashmap.h"
#include "coordinator/list.h"

typedef struct Item {
	HashNode node;
	int key;
	bool seen;
} Item;

static void test_hashmap_siphash_vectors(void **state) {
	/* SipHash-2-4 paper, appendix A: key 00..0f, messages 00..(n-1). */
	static const uint64_t expected[] = {
		0x726fdb47dd0e0e31ULL, /* empty */
		0x74f839c593dc67fdULL, /* 00 */
		0x0d6c8009d9a94f5aULL, /* 00 01 */
		0x85676696d7fb7e2dULL, /* 00 01 02 */
	};
	HashTable t;
	uint8_t msg[64];

	hash_table_init(&t);
	for (unsigned i = 0; i < 16; i++) {
		t.key[i] = (uint8_t) i;
	}
	for (unsigned i = 0; i < sizeof(msg); i++) {
		msg[i] = (uint8_t) i;
	}
	for (size_t n = 0; n < ELEMENTSOF(expected); n++) {
		assert_true(hash_table_hash(&t, msg, n) == expected[n]);
	}
	/* 15 bytes: the paper's vector a9 29 3d ... read as little-endian. */
	assert_true(hash_table_hash(&t, msg, 15) == 0xa129ca6149be45e5ULL);
	hash_table_done(&t);
}

static void test_hashmap_keys_differ(void **state) {
	HashTable a, b;

	hash_table_init(&a);
	hash_table_init(&b);
	assert_true(hash_table_hash(&a, "alice", 5) != hash_table_hash(&b, "alice", 5));
	hash_table_done(&a);
	hash_table_done(&b);
}

static Item *find(HashTable *t, int key) {
	uint64_t h = hash_table_hash(t, &key, sizeof(key));

	for (HashNode *n = hash_table_first(t, h); n; n = hash_table_next(n)) {
		Item *item = container_of(n, Item, node);

		if (item->key == key) {
			return item;
		}
	}
	return NULL;
}

static void remove_odd(HashNode *node, void *userdata) {
	Item *item = container_of(node, Item, node);

	item->seen = true;
	if (item->key % 2) {
		hash_table_remove(userdata, node);
	}
}

static void test_hashmap_grow_find_remove(void **state) {
	static Item items[3000];
	HashTable t;

	hash_table_init(&t);
	for (int i = 0; i < 3000; i++) {
		items[i].key = i;
		items[i].node.hash = hash_table_hash(&t, &i, sizeof(i));
		assert_int_equal(hash_table_add(&t, &items[i].node), 0);
	}
	assert_int_equal(t.n_entries, 3000);
	assert_true(t.n_buckets >= 3000);
	for (int i = 0; i < 3000; i++) {
		assert_ptr_equal(find(&t, i), &items[i]);
	}
	assert_null(find(&t, 3000));

	hash_table_foreach(&t, remove_odd, &t);
	assert_int_equal(t.n_entries, 1500);
	for (int i = 0; i < 3000; i++) {
		assert_true(items[i].seen);
		assert_ptr_equal(find(&t, i), i % 2 ? NULL : &items[i]);
	}
	hash_table_remove(&t, &items[1].node); /* not linked: no change */
	assert_int_equal(t.n_entries, 1500);
	hash_table_done(&t);
}

static void test_hashmap_equal_hashes(void **state) {
	Item items[4] = { { .key = 1 }, { .key = 2 }, { .key = 3 }, { .key = 4 } };
	HashTable t;
	size_t n = 0;

	hash_table_init(&t);
	for (size_t i = 0; i < 4; i++) {
		items[i].node.hash = i < 3 ? 42 : 43;
		assert_int_equal(hash_table_add(&t, &items[i].node), 0);
	}
	for (HashNode *node = hash_table_first(&t, 42); node; node = hash_table_next(node)) {
		assert_true(container_of(node, Item, node)->key <= 3);
		n++;
	}
	assert_int_equal(n, 3);
	hash_table_remove(&t, &items[1].node);
	n = 0;
	for (HashNode *node = hash_table_first(&t, 42); node; node = hash_table_next(node)) {
		n++;
	}
	assert_int_equal(n, 2);
	assert_ptr_equal(hash_table_first(&t, 43), &items[3].node);
	assert_null(hash_table_first(&t, 44));
	hash_table_done(&t);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hashmap_siphash_vectors),
		cmocka_unit_test(test_hashmap_keys_differ),
		cmocka_unit_test(test_hashmap_grow_find_remove),
		cmocka_unit_test(test_hashmap_equal_hashes),
	};

	return cmocka_run_group_tests_name("coordinator-hashmap", tests, NULL, NULL);
}
