/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small intrusive chained hash table.  The caller embeds a HashNode in its
 * object, computes the hash with hash_bytes() (SipHash-2-4 under a per-table
 * random key, so a peer cannot choose names that collide) and compares keys
 * itself.  The table never owns the objects.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct HashNode {
	struct HashNode *next;
	uint64_t hash;
} HashNode;

typedef struct HashTable {
	HashNode **buckets;
	size_t n_buckets; /* a power of two, or 0 before the first add */
	size_t n_entries;
	uint8_t key[16];
} HashTable;

/* Picks a random key; never fails (falls back to a weaker key source). */
void hash_table_init(HashTable *t);
/* Frees the bucket array; the objects stay the caller's. */
void hash_table_done(HashTable *t);

uint64_t hash_table_hash(const HashTable *t, const void *p, size_t n);

/* Links @node (whose hash is set); -ENOMEM when the table cannot grow. */
int hash_table_add(HashTable *t, HashNode *node);
void hash_table_remove(HashTable *t, HashNode *node);

/* The first node of @hash's chain with that exact hash, then the next one. */
HashNode *hash_table_first(const HashTable *t, uint64_t hash);
HashNode *hash_table_next(const HashNode *node);

/* Calls @f on every node; @f may remove the node it is given. */
void hash_table_foreach(HashTable *t, void (*f)(HashNode *node, void *userdata),
		void *userdata);
