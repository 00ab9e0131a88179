/* SPDX-License-Identifier: MIT */

/*
 * The coordinator's hash table: buckets of singly linked HashNodes, doubled
 * when the load passes 1.  It owns only its bucket array; objects are linked
 * and unlinked by their owners.  Keys are hashed with SipHash-2-4 under a
 * random key drawn at init, because names and addresses come from the network.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/hashmap.h"

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t load_le64(const uint8_t *p) {
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++) {
		v |= (uint64_t) p[i] << (8 * i);
	}
	return v;
}

static inline void sip_round(uint64_t v[4]) {
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static uint64_t siphash24(const void *data, size_t n, const uint8_t key[16]) {
	const uint8_t *p = data;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v[4] = {
		k0 ^ 0x736f6d6570736575ULL,
		k1 ^ 0x646f72616e646f6dULL,
		k0 ^ 0x6c7967656e657261ULL,
		k1 ^ 0x7465646279746573ULL,
	};
	uint64_t b = (uint64_t) n << 56, m;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		m = load_le64(p + i);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	for (size_t j = 0; i + j < n; j++) {
		b |= (uint64_t) p[i + j] << (8 * j);
	}
	v[3] ^= b;
	sip_round(v);
	sip_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (unsigned r = 0; r < 4; r++) {
		sip_round(v);
	}
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void hash_table_init(HashTable *t) {
	*t = (HashTable) {};
	if (getrandom(t->key, sizeof(t->key), GRND_NONBLOCK) != (ssize_t) sizeof(t->key)) {
		/* Early boot without entropy: still better than a fixed key. */
		struct timespec ts;
		uint64_t x;

		(void) clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t) getpid();
		memcpy(t->key, &x, sizeof(x));
		x = ROTL(x, 29) ^ (uint64_t) (uintptr_t) t;
		memcpy(t->key + 8, &x, sizeof(x));
	}
}

void hash_table_done(HashTable *t) {
	free(t->buckets);
	t->buckets = NULL;
	t->n_buckets = t->n_entries = 0;
}

uint64_t hash_table_hash(const HashTable *t, const void *p, size_t n) {
	return siphash24(p, n, t->key);
}

static int hash_table_resize(HashTable *t, size_t n_buckets) {
	HashNode **b;

	b = calloc(n_buckets, sizeof(HashNode *));
	if (!b) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n_buckets; i++) {
		HashNode *node = t->buckets[i];

		while (node) {
			HashNode *next = node->next;
			size_t k = node->hash & (n_buckets - 1);

			node->next = b[k];
			b[k] = node;
			node = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n_buckets;
	return 0;
}

int hash_table_add(HashTable *t, HashNode *node) {
	size_t k;
	int r;

	if (t->n_entries >= t->n_buckets) {
		r = hash_table_resize(t, t->n_buckets ? t->n_buckets * 2 : 16);
		if (r < 0) {
			return r;
		}
	}
	k = node->hash & (t->n_buckets - 1);
	node->next = t->buckets[k];
	t->buckets[k] = node;
	t->n_entries++;
	return 0;
}

void hash_table_remove(HashTable *t, HashNode *node) {
	HashNode **p;

	if (t->n_buckets == 0) {
		return;
	}
	for (p = &t->buckets[node->hash & (t->n_buckets - 1)]; *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			node->next = NULL;
			t->n_entries--;
			return;
		}
	}
}

static HashNode *chain_find(HashNode *node, uint64_t hash) {
	for (; node; node = node->next) {
		if (node->hash == hash) {
			return node;
		}
	}
	return NULL;
}

HashNode *hash_table_first(const HashTable *t, uint64_t hash) {
	if (t->n_buckets == 0) {
		return NULL;
	}
	return chain_find(t->buckets[hash & (t->n_buckets - 1)], hash);
}

HashNode *hash_table_next(const HashNode *node) {
	return chain_find(node->next, node->hash);
}

void hash_table_foreach(HashTable *t, void (*f)(HashNode *node, void *userdata),
		void *userdata) {
	for (size_t i = 0; i < t->n_buckets; i++) {
		HashNode *node = t->buckets[i];

		while (node) {
			HashNode *next = node->next;

			f(node, userdata);
			node = next;
		}
	}
}
