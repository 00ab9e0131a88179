/* SPDX-License-Identifier: MIT */

/*
 * Fixed-duration timeout queues.  The queue owns its timer source, never its
 * members: each member embeds a TimeoutLink and unlinks it when it dies.  The
 * timer is re-armed lazily: a removal leaves it pointing at an older
 * deadline, and the handler then just re-arms for the current head.
 */

#include <errno.h>

#include "common/macro.h"
#include "coordinator/timeout-queue.h"

static int timeout_queue_arm(TimeoutQueue *q, uint64_t deadline) {
	int r;

	r = sd_event_source_set_time(q->timer, deadline);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(q->timer, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	TimeoutQueue *q = userdata;
	uint64_t now;
	ListNode *n;

	if (sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now) < 0) {
		now = usec;
	}

	/* Bounded: each round unlinks the head, and handlers re-push to the tail
	 * with a deadline in the future. */
	while ((n = list_first(&q->head))) {
		TimeoutLink *link = container_of(n, TimeoutLink, node);

		if (link->deadline > now) {
			break;
		}
		list_remove(n);
		q->handler(q, link, q->userdata);
	}

	n = list_first(&q->head);
	if (n) {
		return timeout_queue_arm(q, container_of(n, TimeoutLink, node)->deadline);
	}
	return 0;
}

int timeout_queue_init(TimeoutQueue *q, sd_event *e, uint64_t duration,
		timeout_queue_handler_t handler, void *userdata) {
	int r;

	*q = (TimeoutQueue) {
		.duration = duration,
		.handler = handler,
		.userdata = userdata,
	};
	list_head_init(&q->head);

	r = sd_event_add_time(e, &q->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC,
			on_timer, q);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(q->timer, SD_EVENT_OFF);
}

void timeout_queue_done(TimeoutQueue *q) {
	ListNode *n;

	if (!q->head.next) {
		return;
	}
	while ((n = list_first(&q->head))) {
		list_remove(n);
	}
	q->timer = sd_event_source_disable_unref(q->timer);
}

int timeout_queue_push(TimeoutQueue *q, TimeoutLink *link) {
	bool was_empty = list_is_empty(&q->head);
	uint64_t now;
	int enabled = SD_EVENT_OFF;
	int r;

	r = sd_event_now(sd_event_source_get_event(q->timer), CLOCK_MONOTONIC, &now);
	if (r < 0) {
		return r;
	}

	list_remove(&link->node);
	link->deadline = now + q->duration;
	list_append(&q->head, &link->node);

	(void) sd_event_source_get_enabled(q->timer, &enabled);
	if (was_empty || enabled == SD_EVENT_OFF) {
		return timeout_queue_arm(q, link->deadline);
	}
	return 0;
}
