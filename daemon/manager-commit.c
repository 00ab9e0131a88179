/* SPDX-License-Identifier: MIT */

/*
 * Group commit.  The History runs in batching mode: every write joins one
 * open transaction.  A post source of the lowest priority runs after the
 * bus, the socket, the timers and the outbox flush have nothing left to
 * dispatch in this pass of the loop, and commits: one COMMIT and, when a
 * write in it was a promise, one fsync of the WAL (history_commit()), for
 * every message of the pass.
 *
 * What may go before the barrier and what may not:
 *  - a received message is announced (MessageReceived, the notification) at
 *    once, its ack waits: the sender retries until the ack comes, and only
 *    the barrier lets it out, so an ack still means "stored";
 *  - a SendMessage() stores the message, the outbox puts it on the wire in
 *    the same pass, and the reply with its id waits for the barrier, so
 *    "accepted" still means stored.  No signal about the id may reach the
 *    caller before the id: the outbox's signals about it wait behind the
 *    reply (manager_commit_note_outcome()), and an ack, a requeue or an
 *    expiry of it commits the batch first (manager_commit_settle()).
 *
 * If the commit or the barrier fails, the calls get the error (and their
 * messages stop being retried), no ack goes out (the senders retry, and the
 * store keeps each id once), and the next pass starts a new batch.  A batch
 * of MANAGER_COMMIT_BATCH_MAX writes or answers is committed at once, so a
 * flood of calls or datagrams cannot keep the post source from running.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/history.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-commit.h"
#include "daemon/manager-store.h"
#include "daemon/message.h"
#include "daemon/peer-bus.h"
#include "daemon/peer.h"

typedef struct Reply {
	sd_bus_message *call;
	char id[MESSAGE_ID_STRLEN];
	char peer[WIRE_NAME_MAX_BYTES + 1];
	CommitOutcome outcome;
} Reply;

typedef struct Ack {
	Endpoint to;
	char *buf;
	size_t len;
} Ack;

typedef struct Batch {
	sd_event_source *source;
	Reply *replies;
	size_t n_replies, allocated_replies;
	Ack *acks;
	size_t n_acks, allocated_acks;
	char **unread; /* peers */
	size_t n_unread, allocated_unread;
} Batch;

static int on_commit(sd_event_source *s, void *userdata) {
	Manager *m = userdata;
	Batch *b = m->batch;

	if (history_batch_size(m->history) > 0 || b->n_replies > 0 || b->n_acks > 0 ||
			b->n_unread > 0) {
		(void) manager_commit(m);
	}
	return 0;
}

int manager_commit_start(Manager *m) {
	Batch *b;
	int r;

	b = calloc(1, sizeof(Batch));
	if (!b) {
		return -ENOMEM;
	}
	m->batch = b;
	r = sd_event_add_post(m->event, &b->source, on_commit, m);
	if (r < 0) {
		return r;
	}
	r = sd_event_source_set_priority(b->source, SD_EVENT_PRIORITY_IDLE);
	if (r < 0) {
		return r;
	}
	(void) sd_event_source_set_description(b->source, "group-commit");
	history_set_batching(m->history, true);
	return 0;
}

void manager_commit_stop(Manager *m) {
	Batch *b = m->batch;

	if (!b) {
		return;
	}
	(void) manager_commit(m);
	history_set_batching(m->history, false);
	sd_event_source_disable_unref(b->source);
	free(b->replies);
	free(b->acks);
	free(b->unread);
	m->batch = mfree(b);
}

static void reply_done(Manager *m, Reply *p, int r) {
	int q;

	if (r < 0) {
		/* Not stored (or not durably): the caller is told, nothing goes out. */
		if (m->messenger) {
			messenger_forget(m->messenger, p->id);
		}
		(void) history_set_state(m->history, p->id, HISTORY_STATE_FAILED);
		q = sd_bus_reply_method_errnof(p->call, r, "Failed to store the message: %m");
	} else {
		q = sd_bus_reply_method_return(p->call, "s", p->id);
	}
	if (q < 0) {
		log_debug_errno(q, "Failed to reply to SendMessage(): %m");
	}
	p->call = sd_bus_message_unref(p->call);
	if (r < 0) {
		return;
	}

	/* After the reply: the caller knows the id before any signal about it. */
	manager_emit_message_state_changed(m, p->id, p->peer, HISTORY_STATE_QUEUED, NULL);
	switch (p->outcome) {
	case COMMIT_OUTCOME_QUEUED:
		break;
	case COMMIT_OUTCOME_SENT_FINAL:
	case COMMIT_OUTCOME_SENT:
		if (p->outcome == COMMIT_OUTCOME_SENT_FINAL) {
			manager_emit_message_sent(m, p->id, p->peer);
		}
		manager_emit_message_state_changed(m, p->id, p->peer, HISTORY_STATE_SENT, NULL);
		break;
	case COMMIT_OUTCOME_TOO_LARGE:
		manager_emit_message_failed(m, p->id, p->peer, "too-large");
		manager_emit_message_state_changed(m, p->id, p->peer, HISTORY_STATE_FAILED,
				"too-large");
		break;
	}
}

int manager_commit(Manager *m) {
	Batch *b = m->batch;
	size_t n_replies, n_acks, n_unread;
	int r;

	if (!b) {
		return 0;
	}
	r = history_commit(m->history);
	if (r < 0) {
		log_error_errno(r, "Failed to store %zu message(s): %m; failing %zu call(s), "
				"acking none.", b->n_acks + b->n_replies, b->n_replies);
	}

	/* Taken first: answering must not see entries of a batch it starts. */
	n_replies = b->n_replies;
	n_acks = b->n_acks;
	n_unread = b->n_unread;
	b->n_replies = b->n_acks = b->n_unread = 0;

	for (size_t i = 0; i < n_replies; i++) {
		reply_done(m, &b->replies[i], r);
	}
	for (size_t i = 0; i < n_acks; i++) {
		Ack *a = &b->acks[i];

		if (r >= 0) {
			int q = manager_send_datagram(m, &a->to, a->buf, a->len);

			if (q < 0) {
				log_debug_errno(q, "Failed to send an ack, ignoring: %m");
			}
		}
		a->buf = mfree(a->buf);
	}
	for (size_t i = 0; i < n_unread; i++) {
		Peer *p = peer_get(m, b->unread[i]);

		if (p) {
			peer_emit_unread_changed(p);
		}
		b->unread[i] = mfree(b->unread[i]);
	}
	return r;
}

void manager_commit_check_bound(Manager *m) {
	Batch *b = m->batch;

	if (b && (history_batch_size(m->history) >= MANAGER_COMMIT_BATCH_MAX ||
			b->n_replies + b->n_acks >= MANAGER_COMMIT_BATCH_MAX)) {
		(void) manager_commit(m);
	}
}

int manager_commit_reserve_reply(Manager *m) {
	Batch *b = m->batch;

	if (!b) {
		return -ESTALE;
	}
	return GREEDY_REALLOC(b->replies, b->allocated_replies, b->n_replies + 1);
}

void manager_commit_defer_reply(Manager *m, sd_bus_message *call, const char *id,
		const char *peer, CommitOutcome outcome) {
	Batch *b = m->batch;
	Reply *p;

	assert(b && b->n_replies < b->allocated_replies);

	p = &b->replies[b->n_replies++];
	*p = (Reply) { .call = sd_bus_message_ref(call), .outcome = outcome };
	(void) snprintf(p->id, sizeof(p->id), "%s", id);
	(void) snprintf(p->peer, sizeof(p->peer), "%s", peer);
}

void manager_commit_defer_ack(Manager *m, const Endpoint *to, char *buf, size_t len) {
	Batch *b = m->batch;

	if (!b || GREEDY_REALLOC(b->acks, b->allocated_acks, b->n_acks + 1) < 0) {
		log_debug("Dropping an ack: out of memory (the sender retries).");
		free(buf);
		return;
	}
	b->acks[b->n_acks++] = (Ack) { .to = *to, .buf = buf, .len = len };
	manager_commit_check_bound(m);
}

void manager_commit_defer_unread(Manager *m, const char *peer) {
	Batch *b = m->batch;
	char *s;

	if (!b) {
		return;
	}
	for (size_t i = 0; i < b->n_unread; i++) {
		if (streq(b->unread[i], peer)) {
			return;
		}
	}
	s = strdup(peer);
	if (!s || GREEDY_REALLOC(b->unread, b->allocated_unread, b->n_unread + 1) < 0) {
		free(s);
		log_oom();
		return;
	}
	b->unread[b->n_unread++] = s;
}

static Reply *find_reply(Batch *b, const char *id) {
	if (!b) {
		return NULL;
	}
	/* Newest first: the outbox sends what was just queued. */
	for (size_t i = b->n_replies; i > 0; i--) {
		if (streq(b->replies[i - 1].id, id)) {
			return &b->replies[i - 1];
		}
	}
	return NULL;
}

bool manager_commit_note_outcome(Manager *m, const char *id, CommitOutcome outcome) {
	Reply *p = find_reply(m->batch, id);

	if (!p) {
		return false;
	}
	p->outcome = outcome;
	return true;
}

void manager_commit_settle(Manager *m, const char *id) {
	if (find_reply(m->batch, id)) {
		(void) manager_commit(m);
	}
}
