/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Group commit: the History's writes of one pass of the event loop form one
 * transaction, committed with one barrier (fsync) when the pass is done.
 * What promises that something is stored waits for the barrier as a
 * closure registered with commit_defer().
 */

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/history.h"

/* Writes or deferred closures in one batch before it is committed at once. */
#define COMMIT_BATCH_MAX 256u

typedef struct Commit Commit;

/*
 * When a closure runs, relative to the others of its batch: the answers to
 * callers first, then what goes to the network, then what only informs.
 */
typedef enum CommitPhase {
	COMMIT_PHASE_REPLY,
	COMMIT_PHASE_SEND,
	COMMIT_PHASE_INFORM,
	_COMMIT_PHASE_MAX,
	_COMMIT_PHASE_INVALID = -EINVAL,
} CommitPhase;

/* Runs after the barrier: @error is 0, or why the batch was not stored. */
typedef void (*CommitClosure)(int error, void *userdata);

/*
 * commit_new() - group the writes to @history (not owned), committed by a
 * post source of the lowest priority: it runs once the bus and the socket
 * have nothing left to dispatch.
 */
int commit_new(sd_event *event, History *history, Commit **ret);
/* Commits what is left and runs its closures. */
Commit *commit_free(Commit *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Commit *, commit_free);

/*
 * commit_run() - commit the batch and sync it, then run its closures, phase
 * by phase, each in the order it was deferred.  Return: 0 or the failure
 * (the closures were told).
 */
int commit_run(Commit *c);

/* Commits at once if the batch is full: a stream of events cannot starve it. */
void commit_check_bound(Commit *c);

/*
 * commit_reserve() - room for one more closure in @phase, so that the
 * commit_defer() after a write cannot fail.
 */
int commit_reserve(Commit *c, CommitPhase phase);
/*
 * commit_defer() - run @closure after the barrier of the current batch.
 * Return: 0, -ENOMEM (only without a reservation).
 */
int commit_defer(Commit *c, CommitPhase phase, CommitClosure closure, void *userdata);
