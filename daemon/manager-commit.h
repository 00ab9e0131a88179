/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Group commit (manager-commit.c): the History's writes of one pass of the
 * event loop form one transaction, committed with one barrier (fsync) when
 * the pass is done; what promises that something is stored, the acks of
 * received messages and the SendMessage() replies, waits for the barrier.
 */

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-bus.h>

#include "common/endpoint.h"
#include "daemon/manager.h"

/* Writes or deferred answers in one batch before it is committed at once. */
#define MANAGER_COMMIT_BATCH_MAX 256u

/* What the outbox did with a message whose SendMessage() reply waits. */
typedef enum CommitOutcome {
	COMMIT_OUTCOME_QUEUED,     /* still queued */
	COMMIT_OUTCOME_SENT,       /* on its way, an ack will tell */
	COMMIT_OUTCOME_SENT_FINAL, /* to a reference peer: sent for good */
	COMMIT_OUTCOME_TOO_LARGE,  /* failed: it can never fit a datagram */
} CommitOutcome;

/*
 * Sets up the commit source (a post source of the lowest priority: it runs
 * once the bus and the socket have nothing left to dispatch) and turns
 * batching on in the History.
 */
int manager_commit_start(Manager *m);
/* Commits what is left (replies and acks go out if the bus is still there). */
void manager_commit_stop(Manager *m);

/*
 * manager_commit() - commit the batch and sync it, then answer: the replies
 * (each followed by the signals its message has collected), the acks, the
 * Unread changes.  On failure the calls get the error and no ack is sent:
 * senders retry.  Return: 0 or the failure.
 */
int manager_commit(Manager *m);

/* Commits at once if the batch is full: a stream of events cannot starve it. */
void manager_commit_check_bound(Manager *m);

/* Makes room for one more deferred reply: call before the write it answers. */
int manager_commit_reserve_reply(Manager *m);
/*
 * SendMessage(): reply @id to @call after the barrier (room was reserved),
 * then tell the message's @outcome so far.
 */
void manager_commit_defer_reply(Manager *m, sd_bus_message *call, const char *id,
		const char *peer, CommitOutcome outcome);
/*
 * Sends datagram @buf (taken) to @to after the barrier; on failure it is
 * dropped.  Commits at once if that fills the batch.
 */
void manager_commit_defer_ack(Manager *m, const Endpoint *to, char *buf, size_t len);
/* Peer.Unread of @peer changed: emitted after the commit, once per batch. */
void manager_commit_defer_unread(Manager *m, const char *peer);

/*
 * If the reply for @id still waits, records @outcome for after it and
 * returns true: the caller emits nothing now.
 */
bool manager_commit_note_outcome(Manager *m, const char *id, CommitOutcome outcome);
/*
 * Something is about to be said about @id: if its reply still waits,
 * commit now, so the caller learns the id before anything about it.
 */
void manager_commit_settle(Manager *m, const char *id);
