/* SPDX-License-Identifier: MIT */

/*
 * Group commit, owned by the composition (daemon.c) and freed before the
 * History.  The History runs in batching mode: every write joins one open
 * transaction.  A post source of the lowest priority runs after the bus,
 * the socket, the timers and the outbox flush have nothing left to dispatch
 * in this pass of the loop, and commits: one COMMIT and, when a write in it
 * was a promise, one fsync of the WAL (history_commit()), for every message
 * of the pass.  Then the closures deferred in the batch run, told whether
 * the batch was stored.
 *
 * A batch of COMMIT_BATCH_MAX writes or closures is committed at once, so a
 * flood of calls or datagrams cannot keep the post source from running.
 * The Commit knows nothing of what the closures do (D-Bus replies, acks,
 * signals): their owners decide what may go before the barrier and what
 * may not (conversation.c).
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/commit.h"

typedef struct Deferred {
	CommitClosure closure;
	void *userdata;
} Deferred;

typedef struct Queue {
	Deferred *items;
	size_t n, allocated;
} Queue;

struct Commit {
	sd_event_source *source;
	History *history; /* not owned */
	Queue queues[_COMMIT_PHASE_MAX];
};

static size_t deferred_count(Commit *c) {
	size_t n = 0;

	for (size_t i = 0; i < _COMMIT_PHASE_MAX; i++) {
		n += c->queues[i].n;
	}
	return n;
}

static int on_post(sd_event_source *s, void *userdata) {
	Commit *c = userdata;

	if (history_batch_size(c->history) > 0 || deferred_count(c) > 0) {
		(void) commit_run(c);
	}
	return 0;
}

int commit_new(sd_event *event, History *history, Commit **ret) {
	_cleanup_(commit_freep) Commit *c = NULL;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	c->history = history;
	r = sd_event_add_post(event, &c->source, on_post, c);
	if (r < 0) {
		return r;
	}
	r = sd_event_source_set_priority(c->source, SD_EVENT_PRIORITY_IDLE);
	if (r < 0) {
		return r;
	}
	(void) sd_event_source_set_description(c->source, "group-commit");
	history_set_batching(history, true);
	*ret = TAKE_PTR(c);
	return 0;
}

Commit *commit_free(Commit *c) {
	if (!c) {
		return NULL;
	}
	if (c->source) {
		(void) commit_run(c);
		history_set_batching(c->history, false);
	}
	c->source = sd_event_source_disable_unref(c->source);
	for (size_t i = 0; i < _COMMIT_PHASE_MAX; i++) {
		free(c->queues[i].items);
	}
	return mfree(c);
}

int commit_run(Commit *c) {
	Queue taken[_COMMIT_PHASE_MAX];
	int r;

	r = history_commit(c->history);
	if (r < 0) {
		log_error_errno(r, "Failed to store the batch: %m; telling %zu waiting "
				"operation(s).", deferred_count(c));
	}

	/*
	 * Taken first: a closure may defer into the next batch, or commit it
	 * (commit_run() is reentrant).
	 */
	for (size_t i = 0; i < _COMMIT_PHASE_MAX; i++) {
		taken[i] = c->queues[i];
		c->queues[i] = (Queue) {};
	}
	for (size_t i = 0; i < _COMMIT_PHASE_MAX; i++) {
		for (size_t j = 0; j < taken[i].n; j++) {
			taken[i].items[j].closure(r, taken[i].items[j].userdata);
		}
	}
	/* Keep the arrays for the next batch when it has none yet. */
	for (size_t i = 0; i < _COMMIT_PHASE_MAX; i++) {
		if (c->queues[i].allocated == 0) {
			c->queues[i] = (Queue) { .items = taken[i].items,
						 .allocated = taken[i].allocated };
		} else {
			free(taken[i].items);
		}
	}
	return r;
}

void commit_check_bound(Commit *c) {
	if (history_batch_size(c->history) >= COMMIT_BATCH_MAX ||
			deferred_count(c) >= COMMIT_BATCH_MAX) {
		(void) commit_run(c);
	}
}

int commit_reserve(Commit *c, CommitPhase phase) {
	Queue *q;

	assert(phase >= 0 && phase < _COMMIT_PHASE_MAX);
	q = &c->queues[phase];
	return GREEDY_REALLOC(q->items, q->allocated, q->n + 1);
}

int commit_defer(Commit *c, CommitPhase phase, CommitClosure closure, void *userdata) {
	int r;

	r = commit_reserve(c, phase);
	if (r < 0) {
		return r;
	}
	c->queues[phase].items[c->queues[phase].n++] = (Deferred) {
		.closure = closure,
		.userdata = userdata,
	};
	return 0;
}
