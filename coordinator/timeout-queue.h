/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A queue of objects that expire a fixed time after they were queued (the
 * grace of an unbound connection, a user's lease, ...).  Because the duration
 * is the same for every member, appending keeps the queue sorted, so one
 * sd-event timer per queue serves any number of members at O(1) per push or
 * removal, and a member costs only its embedded TimeoutLink.
 */

#include <stdint.h>

#include <systemd/sd-event.h>

#include "coordinator/list.h"

typedef struct TimeoutLink {
	ListNode node;
	uint64_t deadline; /* CLOCK_MONOTONIC, usec */
} TimeoutLink;

typedef struct TimeoutQueue TimeoutQueue;

/* Called for each expired member, already unlinked; it may push it again. */
typedef void (*timeout_queue_handler_t)(TimeoutQueue *q, TimeoutLink *link, void *userdata);

struct TimeoutQueue {
	ListNode head;
	uint64_t duration;
	sd_event_source *timer;
	timeout_queue_handler_t handler;
	void *userdata;
};

int timeout_queue_init(TimeoutQueue *q, sd_event *e, uint64_t duration,
		timeout_queue_handler_t handler, void *userdata);
/* Unlinks every member (without calling the handler) and frees the timer. */
void timeout_queue_done(TimeoutQueue *q);

/* (Re)queues @link to expire @q->duration from now, leaving any other queue. */
int timeout_queue_push(TimeoutQueue *q, TimeoutLink *link);

static inline void timeout_link_remove(TimeoutLink *link) {
	list_remove(&link->node);
}
