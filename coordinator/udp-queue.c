/* SPDX-License-Identifier: MIT */

/*
 * The UDP out queue.  Its owner (the server) creates it once and frees it at
 * exit.  The queue owns its items and the arena their payloads live in; both
 * are emptied when a flush has sent everything, and given back to the heap
 * after a storm made them large.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "coordinator/udp-queue.h"

/* Datagrams per sendmmsg() call. */
#define UDP_TX_BATCH 1024
/* The most datagrams kept queued; beyond it they are dropped. */
#define UDP_QUEUE_MAX (256u * 1024u)
/* Recent payloads a new one is compared with before it is copied. */
#define UDP_RECENT 4

/* A pending datagram: its payload is at @off in the queue's arena. */
typedef struct UdpItem {
	Endpoint dest;
	uint32_t off, len;
} UdpItem;

struct UdpQueue {
	UdpItem *items;
	size_t n, sent, cap;
	uint8_t *arena;       /* payloads, shared between items */
	size_t arena_len, arena_cap;
	struct {
		uint32_t off, len;
	} recent[UDP_RECENT];
	size_t n_recent;      /* valid entries of recent[], a ring */
	struct mmsghdr msgs[UDP_TX_BATCH];
	struct iovec iovs[UDP_TX_BATCH];
	uint64_t n_sent, n_calls;
};

int udp_queue_new(UdpQueue **ret) {
	UdpQueue *q;

	q = calloc(1, sizeof(UdpQueue));
	if (!q) {
		return -ENOMEM;
	}
	*ret = q;
	return 0;
}

UdpQueue *udp_queue_free(UdpQueue *q) {
	if (!q) {
		return NULL;
	}
	free(q->items);
	free(q->arena);
	free(q);
	return NULL;
}

/* Finds an equal payload among the recent ones. */
static bool udp_queue_find_recent(const UdpQueue *q, const uint8_t *buf, size_t len,
		uint32_t *ret_off) {
	size_t n = MIN(q->n_recent, (size_t) UDP_RECENT);

	/* The newest first: a fan-out in one encoding matches at once. */
	for (size_t i = 0; i < n; i++) {
		size_t k = (q->n_recent - 1 - i) % UDP_RECENT;

		if (q->recent[k].len == len && memcmp(q->arena + q->recent[k].off, buf, len) == 0) {
			*ret_off = q->recent[k].off;
			return true;
		}
	}
	return false;
}

/* Copies a payload into the arena; *ret_off locates it until the queue is emptied. */
static int udp_queue_store(UdpQueue *q, const uint8_t *buf, size_t len, uint32_t *ret_off) {
	uint32_t off;
	int r;

	if (udp_queue_find_recent(q, buf, len, ret_off)) {
		return 0;
	}
	if (q->arena_len + len > UINT32_MAX) {
		return -ENOBUFS;
	}
	r = GREEDY_REALLOC(q->arena, q->arena_cap, MAX(q->arena_len + len, (size_t) 4096));
	if (r < 0) {
		return r;
	}
	memcpy(q->arena + q->arena_len, buf, len);
	off = (uint32_t) q->arena_len;
	q->arena_len += len;

	q->recent[q->n_recent % UDP_RECENT].off = off;
	q->recent[q->n_recent % UDP_RECENT].len = (uint32_t) len;
	q->n_recent++;
	*ret_off = off;
	return 0;
}

int udp_queue_add(UdpQueue *q, const Endpoint *dest, const uint8_t *buf, size_t len) {
	uint32_t off;
	int r;

	if (q->n >= UDP_QUEUE_MAX) {
		return -ENOBUFS;
	}
	r = GREEDY_REALLOC(q->items, q->cap, MAX(q->n + 1, (size_t) 256));
	if (r < 0) {
		return r;
	}
	r = udp_queue_store(q, buf, len, &off);
	if (r < 0) {
		return r;
	}
	q->items[q->n++] = (UdpItem) { .dest = *dest, .off = off, .len = (uint32_t) len };
	return 0;
}

size_t udp_queue_n_pending(const UdpQueue *q) {
	return q->n - q->sent;
}

bool udp_queue_is_empty(const UdpQueue *q) {
	return q->n == 0;
}

static void udp_queue_reset(UdpQueue *q) {
	q->n = q->sent = q->arena_len = q->n_recent = 0;
	if (q->cap > 65536) {
		/* After a storm, give the memory back. */
		q->items = mfree(q->items);
		q->arena = mfree(q->arena);
		q->cap = q->arena_cap = 0;
	}
}

int udp_queue_flush(UdpQueue *q, int fd) {
	while (q->sent < q->n) {
		size_t k = MIN(q->n - q->sent, (size_t) UDP_TX_BATCH);
		int n;

		for (size_t i = 0; i < k; i++) {
			UdpItem *item = &q->items[q->sent + i];

			q->iovs[i] = (struct iovec) {
				.iov_base = q->arena + item->off,
				.iov_len = item->len,
			};
			q->msgs[i] = (struct mmsghdr) {
				.msg_hdr = {
					.msg_name = &item->dest.sa,
					.msg_namelen = endpoint_socklen(&item->dest),
					.msg_iov = &q->iovs[i],
					.msg_iovlen = 1,
				},
			};
		}

		n = sendmmsg(fd, q->msgs, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		q->n_calls++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				return 1;
			}
			/* This one datagram cannot go (e.g. no route): skip it. */
			log_debug_errno(errno, "Failed to send forward, skipping: %m");
			n = 1;
		} else {
			q->n_sent += n;
		}
		q->sent += n;
	}
	udp_queue_reset(q);
	return 0;
}

uint64_t udp_queue_get_n_sent(const UdpQueue *q) {
	return q->n_sent;
}

uint64_t udp_queue_get_n_calls(const UdpQueue *q) {
	return q->n_calls;
}
