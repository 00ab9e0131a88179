/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The outbox: messages accepted by SendMessage that have not reached their
 * peer yet, kept in the History so they survive restarts.  It sends them in
 * order when their peer is reachable, takes them back when retries fail,
 * and fails them once they are older than the maximum age (a timer on the
 * event loop, set for the oldest one).
 */

#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/history.h"

typedef struct Outbox Outbox;

enum {
	OUTBOX_SENT = 0,
	OUTBOX_SENT_FINAL = 1,
	OUTBOX_SETTLED = 2,
};

typedef struct OutboxCallbacks {
	/*
	 * Hand @m to the network.  Return OUTBOX_SENT when it is on its way and
	 * an ack will tell (its state becomes "sent"), OUTBOX_SENT_FINAL when it
	 * went to a peer that never acks ("sent" for good), OUTBOX_SETTLED when
	 * the callback already gave it its final state (e.g. failed), or
	 * negative to leave it, and the ones after it, queued.
	 */
	int (*send)(const HistoryMessage *m, void *userdata);
	/* @m is older than the maximum age and now "failed". */
	void (*expired)(const HistoryMessage *m, void *userdata);
} OutboxCallbacks;

/*
 * outbox_new() - an outbox over @history (not owned).  Messages that were
 * "sent" when the daemon stopped go back to "queued" (nothing retries them
 * any more), and the expiry timer is set.
 */
int outbox_new(sd_event *event, History *history, uint64_t max_age_usec,
		const OutboxCallbacks *callbacks, void *userdata, Outbox **ret);
Outbox *outbox_free(Outbox *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Outbox *, outbox_free);

/* Changes the maximum age (config "outbox-expiry") and resets the timer. */
int outbox_set_max_age(Outbox *o, uint64_t max_age_usec);

/*
 * outbox_add() - queue a new message, for the key pinned for @peer (none
 * without a pin: see history_set_peer_key()); history_add_outgoing()'s
 * errors.
 */
int outbox_add(Outbox *o, const char *id, const char *peer, const char *text,
		uint64_t now_usec);

/*
 * outbox_add_as() - outbox_add() in @state: HISTORY_STATE_SENT for a message
 * that goes on the wire at once, past the queue (nothing is queued before it).
 */
int outbox_add_as(Outbox *o, const char *id, const char *peer, const char *text,
		uint64_t now_usec, HistoryState state);

/*
 * outbox_flush() - @peer is reachable: hand its queued messages to the
 * send callback, oldest first, until one is refused.
 *
 * Return: the number handed over.
 */
int outbox_flush(Outbox *o, const char *peer);

/*
 * outbox_requeue() - retries of a "sent" message ran out: queue it again.
 * Return: 1 when it was queued again, 0 when it was no longer "sent" (it
 * failed or was delivered meanwhile), -errno.
 */
int outbox_requeue(Outbox *o, const char *id);

/* outbox_delivered() - the ack came: the message leaves the outbox. */
int outbox_delivered(Outbox *o, const char *id);
