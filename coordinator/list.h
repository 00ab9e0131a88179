/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Intrusive circular doubly linked lists with a sentinel head.  A node that
 * is in no list has NULL links, so list_node_is_linked() tells membership and
 * list_remove() may be called on any node, linked or not.
 */

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) \
	((type *) (void *) ((char *) (ptr) - offsetof(type, member)))

typedef struct ListNode {
	struct ListNode *prev, *next;
} ListNode;

static inline void list_head_init(ListNode *head) {
	head->prev = head->next = head;
}

static inline bool list_is_empty(const ListNode *head) {
	return head->next == head;
}

static inline bool list_node_is_linked(const ListNode *n) {
	return n->next != NULL;
}

static inline void list_append(ListNode *head, ListNode *n) {
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_remove(ListNode *n) {
	if (!n->next) {
		return;
	}
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* The first node, or NULL when the list is empty. */
static inline ListNode *list_first(const ListNode *head) {
	return list_is_empty(head) ? NULL : head->next;
}
