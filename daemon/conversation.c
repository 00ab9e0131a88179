/* SPDX-License-Identifier: MIT */

/*
 * Conversations, owned by the composition (daemon.c): the policy between the
 * Messenger (the wire), the History + Outbox (SQLite: nothing accepted is
 * lost), the group commit and the desktop notifications.  It owns the
 * Outbox and the sends waiting for their barrier.
 *
 * An outgoing message is stored "queued" before SendMessage() is answered.
 * A defer source (conversation_schedule_flush()) hands the queued messages
 * of every online peer to the Messenger, in order.  It runs after the bus
 * and the socket are drained, once for all messages queued in that pass,
 * when a message is queued, when a peer comes online, at login, and
 * CONVERSATION_RETRY_USEC after a message went back to the queue.
 *
 * What may go before the group commit's barrier (commit.c) and what may not:
 *  - a received message is announced (received(), the notification) at
 *    once, its ack waits: the sender retries until the ack comes, and only
 *    the barrier lets it out, so an ack still means "stored";
 *  - a SendMessage() stores the message, the outbox puts it on the wire in
 *    the same pass, and the answer with its id waits for the barrier, so
 *    "accepted" still means stored.  No signal about the id may reach the
 *    caller before the id: what the outbox learns about it waits behind the
 *    answer (note_outcome()), and an ack, a requeue or an expiry of it
 *    commits the batch first (settle()).  The first signal after the
 *    answer is queued() (MessageQueued), for every front end; a reply
 *    from a notification takes the same path without an answer;
 *  - a cancellation (conversation_cancel()) fails the message in the
 *    batch and is answered and announced after the barrier: a failed
 *    batch leaves the message queued, and the caller is told so.
 * If the commit or the barrier fails, the sends are told and their messages
 * fail (and stop being retried), no ack goes out (the senders retry, and
 * the store keeps each id once), and the next pass starts a new batch.
 *
 * A received message is announced once, although before its barrier.
 * Announcing after the barrier would add a loop pass and an fsync to every
 * SendMessage() -> MessageReceived, the latency users feel.  The cost of
 * announcing at once is the failed batch: its writes are rolled back, no
 * ack went out, the sender retries, and the store sees the retransmission
 * as new.  So the ids announced in a batch are kept until its barrier
 * (note_announced()): stored, they are dropped, since the store knows them
 * from then on; not stored, they go to a ring of the
 * CONVERSATION_UNSTORED_MAX latest "announced but not stored" ids, and a
 * later store of one of them is neither announced nor notified again.  The
 * ring is as large as the Messenger's in-flight limit, so only a sender
 * with more than that many messages retrying through a failing disk can
 * make one of them announced twice; none is ever lost.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "common/wire.h"
#include "daemon/conversation.h"
#include "daemon/outbox.h"

/* What the outbox did with a message whose SendMessage() answer waits. */
typedef enum SendOutcome {
	SEND_OUTCOME_QUEUED,     /* still queued */
	SEND_OUTCOME_SENT,       /* on its way, an ack will tell */
	SEND_OUTCOME_SENT_FINAL, /* to a reference peer: sent for good */
	SEND_OUTCOME_TOO_LARGE,  /* failed: it can never fit a datagram */
	_SEND_OUTCOME_MAX,
	_SEND_OUTCOME_INVALID = -EINVAL,
} SendOutcome;

typedef struct PendingSend {
	Conversation *conversation; /* not owned */
	char id[MESSAGE_ID_STRLEN];
	char peer[WIRE_NAME_MAX_BYTES + 1];
	char *text;         /* for queued() */
	uint64_t sent_usec; /* for queued() */
	bool unknown;       /* the peer was never seen before */
	SendOutcome outcome;
	ConversationSendDone done; /* NULL: nobody waits (conversation_queue()) */
	void *userdata;
} PendingSend;

static PendingSend *pending_send_free(PendingSend *p) {
	if (!p) {
		return NULL;
	}
	free(p->text);
	return mfree(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PendingSend *, pending_send_free);

/* A CancelMessage() waiting for the barrier. */
typedef struct PendingCancel {
	Conversation *conversation; /* not owned */
	char id[MESSAGE_ID_STRLEN];
	char peer[WIRE_NAME_MAX_BYTES + 1];
	ConversationSendDone done;
	void *userdata;
} PendingCancel;

/* Announced ids whose batch failed: see the top of the file. */
#define CONVERSATION_UNSTORED_MAX MESSENGER_MAX_IN_FLIGHT

typedef struct AckLater {
	Conversation *conversation; /* not owned */
	Endpoint to;
	char id[MESSAGE_ID_STRLEN];
} AckLater;

struct Conversation {
	sd_event *event;
	History *history;     /* not owned */
	Config *config;       /* not owned */
	Commit *commit;       /* not owned */
	Roster *roster;       /* not owned */
	Messenger *messenger; /* not owned */
	Notify *notify;       /* not owned; NULL without a notification server */
	Outbox *outbox;
	const ConversationCallbacks *callbacks;
	void *userdata;

	char *active; /* "" when none */
	sd_event_source *flush_source;
	sd_event_source *retry_timer;

	PendingSend **sends; /* waiting for the barrier, oldest first */
	size_t n_sends, allocated_sends;
	char **unread; /* peers whose Unread changed in this batch */
	size_t n_unread, allocated_unread;
	char (*announced)[MESSAGE_ID_STRLEN]; /* stored and announced in this batch */
	size_t n_announced, allocated_announced;
	/* A ring of announced ids whose batch failed; "" is a free slot. */
	char (*unstored)[MESSAGE_ID_STRLEN];
	size_t n_unstored, next_unstored;
};

static const MessengerCallbacks messenger_callbacks;
static const OutboxCallbacks outbox_callbacks;

int conversation_new(sd_event *event, History *history, Config *config, Commit *commit,
		Roster *roster, Messenger *messenger, const ConversationCallbacks *callbacks,
		void *userdata, Conversation **ret) {
	_cleanup_(conversation_freep) Conversation *c = NULL;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	c->event = sd_event_ref(event);
	c->history = history;
	c->config = config;
	c->commit = commit;
	c->roster = roster;
	c->messenger = messenger;
	c->callbacks = callbacks;
	c->userdata = userdata;
	c->active = strdup("");
	if (!c->active) {
		return -ENOMEM;
	}
	r = outbox_new(event, history, config->outbox_expiry_usec, &outbox_callbacks, c,
			&c->outbox);
	if (r < 0) {
		return r;
	}
	messenger_set_callbacks(messenger, &messenger_callbacks, c);
	*ret = TAKE_PTR(c);
	return 0;
}

Conversation *conversation_free(Conversation *c) {
	if (!c) {
		return NULL;
	}
	/* Sends still waiting belong to a batch the owner commits before this. */
	assert(c->n_sends == 0);
	if (c->messenger) {
		messenger_set_callbacks(c->messenger, NULL, NULL);
	}
	c->flush_source = sd_event_source_disable_unref(c->flush_source);
	c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
	c->outbox = outbox_free(c->outbox);
	free(c->sends);
	for (size_t i = 0; i < c->n_unread; i++) {
		free(c->unread[i]);
	}
	free(c->unread);
	free(c->announced);
	free(c->unstored);
	free(c->active);
	c->event = sd_event_unref(c->event);
	return mfree(c);
}

void conversation_set_notify(Conversation *c, Notify *notify) {
	c->notify = notify;
}

const char *conversation_get_active(Conversation *c) {
	return c->active;
}

static PendingSend *find_send(Conversation *c, const char *id) {
	/* Newest first: the outbox sends what was just queued. */
	for (size_t i = c->n_sends; i > 0; i--) {
		if (streq(c->sends[i - 1]->id, id)) {
			return c->sends[i - 1];
		}
	}
	return NULL;
}

/*
 * If the answer for @id still waits, records @outcome for after it and
 * returns true: the caller reports nothing now.
 */
static bool note_outcome(Conversation *c, const char *id, SendOutcome outcome) {
	PendingSend *p = find_send(c, id);

	if (!p) {
		return false;
	}
	p->outcome = outcome;
	return true;
}

/*
 * Something is about to be said about @id: if its answer still waits,
 * commit now, so the caller learns the id before anything about it.
 */
static void settle(Conversation *c, const char *id) {
	if (find_send(c, id)) {
		(void) commit_run(c->commit);
	}
}

static void report_state(Conversation *c, const char *id, const char *peer, HistoryState state,
		const char *reason) {
	c->callbacks->state_changed(id, peer, state, reason, c->userdata);
}

static void report_failed(Conversation *c, const char *id, const char *peer, const char *reason) {
	c->callbacks->failed(id, peer, reason, c->userdata);
	report_state(c, id, peer, HISTORY_STATE_FAILED, reason);
}

static void on_unread_committed(int error, void *userdata) {
	Conversation *c = userdata;
	size_t n = c->n_unread;

	/* Taken first: a callback may start the next batch's list. */
	c->n_unread = 0;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *peer = TAKE_PTR(c->unread[i]);

		c->callbacks->unread_changed(peer, c->userdata);
	}
}

/* Peer.Unread of @peer changed: reported after the commit, once per batch. */
static void defer_unread(Conversation *c, const char *peer) {
	char *s;

	for (size_t i = 0; i < c->n_unread; i++) {
		if (streq(c->unread[i], peer)) {
			return;
		}
	}
	s = strdup(peer);
	if (!s || GREEDY_REALLOC(c->unread, c->allocated_unread, c->n_unread + 1) < 0 ||
			(c->n_unread == 0 &&
			 commit_defer(c->commit, COMMIT_PHASE_INFORM, on_unread_committed, c) < 0)) {
		free(s);
		log_oom();
		return;
	}
	c->unread[c->n_unread++] = s;
}

/* The slot of @id in the ring of announced but unstored ids, or NULL. */
static char *find_unstored(Conversation *c, const char *id) {
	if (c->n_unstored == 0) {
		return NULL;
	}
	for (size_t i = 0; i < CONVERSATION_UNSTORED_MAX; i++) {
		if (streq(c->unstored[i], id)) {
			return c->unstored[i];
		}
	}
	return NULL;
}

/* Takes @id out of the ring: it is stored now.  Return: whether it was there. */
static bool forget_unstored(Conversation *c, const char *id) {
	char *slot = find_unstored(c, id);

	if (!slot) {
		return false;
	}
	slot[0] = '\0';
	c->n_unstored--;
	return true;
}

/* Remembers @id as announced but not stored, in place of the oldest if full. */
static void remember_unstored(Conversation *c, const char *id) {
	char *slot;

	if (!c->unstored) {
		c->unstored = calloc(CONVERSATION_UNSTORED_MAX, sizeof(*c->unstored));
		if (!c->unstored) {
			log_debug("Out of memory: a retransmission of %s may be announced again.", id);
			return;
		}
	}
	slot = c->unstored[c->next_unstored];
	if (slot[0] == '\0') {
		c->n_unstored++;
	}
	(void) snprintf(slot, MESSAGE_ID_STRLEN, "%s", id);
	c->next_unstored = (c->next_unstored + 1) % CONVERSATION_UNSTORED_MAX;
}

static void on_announced_committed(int error, void *userdata) {
	Conversation *c = userdata;

	if (error < 0) {
		for (size_t i = 0; i < c->n_announced; i++) {
			remember_unstored(c, c->announced[i]);
		}
	}
	c->n_announced = 0;
}

/*
 * @id was stored in the open batch and announced, now or in a failed batch
 * before: kept until the barrier says whether it is stored for good.
 */
static void note_announced(Conversation *c, const char *id) {
	if (GREEDY_REALLOC(c->announced, c->allocated_announced, c->n_announced + 1) < 0 ||
			(c->n_announced == 0 &&
			 commit_defer(c->commit, COMMIT_PHASE_INFORM, on_announced_committed, c) < 0)) {
		log_debug("Out of memory: a retransmission of %s may be announced again.", id);
		return;
	}
	(void) snprintf(c->announced[c->n_announced++], MESSAGE_ID_STRLEN, "%s", id);
}

static void on_ack_committed(int error, void *userdata) {
	_cleanup_free_ AckLater *a = userdata;
	int r;

	if (error < 0) {
		return; /* not stored: the sender retries */
	}
	r = messenger_ack(a->conversation->messenger, &a->to, a->id);
	if (r < 0) {
		log_debug_errno(r, "Failed to send an ack, ignoring: %m");
	}
}

/* Acks @id to @to after the barrier; commits at once if that fills the batch. */
static void defer_ack(Conversation *c, const Endpoint *to, const char *id) {
	AckLater *a;

	a = malloc(sizeof(*a));
	if (!a) {
		log_debug("Dropping an ack: out of memory (the sender retries).");
		return;
	}
	*a = (AckLater) { .conversation = c, .to = *to };
	(void) snprintf(a->id, sizeof(a->id), "%s", id);
	if (commit_defer(c->commit, COMMIT_PHASE_SEND, on_ack_committed, a) < 0) {
		log_debug("Dropping an ack: out of memory (the sender retries).");
		free(a);
		return;
	}
	commit_check_bound(c->commit);
}

/* Outbox: send callback. */
static int on_outbox_send(const HistoryMessage *hm, void *userdata) {
	Conversation *c = userdata;
	int r;

	r = messenger_transmit(c->messenger, hm->id, hm->peer, hm->text, hm->sent_usec);
	if (r == -EMSGSIZE) {
		log_debug("Message %s does not fit a datagram, failing it.", hm->id);
		r = history_set_state(c->history, hm->id, HISTORY_STATE_FAILED);
		if (r < 0) {
			return r;
		}
		if (!note_outcome(c, hm->id, SEND_OUTCOME_TOO_LARGE)) {
			report_failed(c, hm->id, hm->peer, "too-large");
		}
		return OUTBOX_SETTLED;
	}
	if (r < 0) {
		return r;
	}
	if (note_outcome(c, hm->id, r == MESSENGER_SENT_FINAL ? SEND_OUTCOME_SENT_FINAL
							      : SEND_OUTCOME_SENT)) {
		/* reported after the answer */
	} else {
		if (r == MESSENGER_SENT_FINAL) {
			/* A reference peer: the talk went out, no ack will ever come. */
			c->callbacks->sent(hm->id, hm->peer, c->userdata);
		}
		report_state(c, hm->id, hm->peer, HISTORY_STATE_SENT, NULL);
	}
	return r == MESSENGER_SENT_FINAL ? OUTBOX_SENT_FINAL : OUTBOX_SENT;
}

/* Outbox: @hm is older than "outbox-expiry". */
static void on_outbox_expired(const HistoryMessage *hm, void *userdata) {
	Conversation *c = userdata;

	settle(c, hm->id);
	messenger_forget(c->messenger, hm->id);
	report_failed(c, hm->id, hm->peer, "expired");
}

static const OutboxCallbacks outbox_callbacks = {
	.send = on_outbox_send,
	.expired = on_outbox_expired,
};

static int on_flush(sd_event_source *s, void *userdata) {
	_cleanup_(history_strv_freep) char **peers = NULL;
	Conversation *c = userdata;
	int r;

	if (!messenger_is_active(c->messenger)) {
		return 0;
	}
	r = history_list_queued_peers(c->history, &peers);
	if (r < 0) {
		log_warning_errno(r, "Failed to list queued messages: %m");
		return 0;
	}
	for (char **i = peers; *i; i++) {
		Peer *p = roster_get(c->roster, *i);

		if (!p || !peer_is_online(p)) {
			continue;
		}
		r = outbox_flush(c->outbox, *i);
		if (r < 0) {
			log_warning_errno(r, "Failed to send queued messages to '%s': %m", *i);
		}
	}
	return 0;
}

void conversation_schedule_flush(Conversation *c) {
	int r;

	if (!c->flush_source) {
		r = sd_event_add_defer(c->event, &c->flush_source, on_flush, c);
		if (r < 0) {
			log_warning_errno(r, "Failed to schedule sending queued messages: %m");
			return;
		}
		(void) sd_event_source_set_description(c->flush_source, "outbox-flush");
		/* After the bus and the socket: once for all that was queued. */
		r = sd_event_source_set_priority(c->flush_source, SD_EVENT_PRIORITY_NORMAL + 1);
		if (r < 0) {
			log_warning_errno(r, "Failed to set the priority of the outbox flush: %m");
		}
	}
	r = sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
	if (r < 0) {
		log_warning_errno(r, "Failed to schedule sending queued messages: %m");
	}
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	conversation_schedule_flush(userdata);
	return 0;
}

static void schedule_retry(Conversation *c) {
	int r;

	if (c->retry_timer && sd_event_source_get_enabled(c->retry_timer, NULL) > 0) {
		return; /* one retry round covers every requeued message */
	}
	if (!c->retry_timer) {
		r = sd_event_add_time_relative(c->event, &c->retry_timer, CLOCK_MONOTONIC,
				CONVERSATION_RETRY_USEC, USEC_PER_SEC, on_retry, c);
	} else {
		r = sd_event_source_set_time_relative(c->retry_timer, CONVERSATION_RETRY_USEC);
		if (r >= 0) {
			r = sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT);
		}
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to arm the retry timer: %m");
	}
}

/*
 * Stores @text for @peer: as "sent" and on the wire at once when nothing is
 * queued before it and the peer takes it now (without the flush and a
 * second write), else as "queued" with a flush scheduled.  Both are in the
 * batch's transaction.  Return: 1 sent, 0 queued, -errno (@ret_id and
 * @ret_sent_usec are written once the message is stored).
 */
static int store_outgoing(Conversation *c, const char *peer, const char *text,
		char ret_id[static MESSAGE_ID_STRLEN], uint64_t *ret_sent_usec) {
	char id[MESSAGE_ID_STRLEN];
	uint64_t now = now_usec(CLOCK_REALTIME);
	bool direct;
	int r;

	r = messenger_new_id(id);
	if (r < 0) {
		return r;
	}
	direct = messenger_can_transmit(c->messenger, peer);
	if (direct) {
		r = history_has_queued(c->history, peer);
		if (r < 0) {
			return r;
		}
		direct = r == 0;
	}
	r = outbox_add_as(c->outbox, id, peer, text, now,
			direct ? HISTORY_STATE_SENT : HISTORY_STATE_QUEUED);
	if (r < 0) {
		return r;
	}
	memcpy(ret_id, id, MESSAGE_ID_STRLEN);
	*ret_sent_usec = now;
	if (direct) {
		r = messenger_transmit(c->messenger, id, peer, text, now);
		if (r == MESSENGER_SENT) {
			return 1;
		}
		/* Refused after all (e.g. too large): the flush decides. */
		log_debug_errno(r, "Message %s did not go at once, queueing it: %m", id);
		r = history_set_state(c->history, id, HISTORY_STATE_QUEUED);
		if (r < 0) {
			return r;
		}
	}
	conversation_schedule_flush(c);
	return 0;
}

static void remove_send(Conversation *c, PendingSend *p) {
	for (size_t i = 0; i < c->n_sends; i++) {
		if (c->sends[i] == p) {
			memmove(c->sends + i, c->sends + i + 1,
					(c->n_sends - i - 1) * sizeof(PendingSend *));
			c->n_sends--;
			return;
		}
	}
}

static void on_send_committed(int error, void *userdata) {
	_cleanup_(pending_send_freep) PendingSend *p = userdata;
	Conversation *c = p->conversation;

	remove_send(c, p);
	if (error < 0) {
		/* Not stored (or not durably): the caller is told, nothing goes out. */
		messenger_forget(c->messenger, p->id);
		(void) history_set_state(c->history, p->id, HISTORY_STATE_FAILED);
		if (p->done) {
			p->done(error, p->id, p->userdata);
		} else {
			log_warning_errno(error, "Failed to store the message to '%s': %m",
					p->peer);
		}
		return;
	}
	if (p->done) {
		p->done(0, p->id, p->userdata);
	}

	/* After the answer: the caller knows the id before any signal about it. */
	c->callbacks->queued(p->id, p->peer, p->text, p->sent_usec, p->unknown, c->userdata);
	report_state(c, p->id, p->peer, HISTORY_STATE_QUEUED, NULL);
	switch (p->outcome) {
	case SEND_OUTCOME_QUEUED:
		break;
	case SEND_OUTCOME_SENT_FINAL:
		c->callbacks->sent(p->id, p->peer, c->userdata);
		report_state(c, p->id, p->peer, HISTORY_STATE_SENT, NULL);
		break;
	case SEND_OUTCOME_SENT:
		report_state(c, p->id, p->peer, HISTORY_STATE_SENT, NULL);
		break;
	case SEND_OUTCOME_TOO_LARGE:
		report_failed(c, p->id, p->peer, "too-large");
		break;
	case _SEND_OUTCOME_MAX:
	case _SEND_OUTCOME_INVALID:
		abort();
	}
}

/* Whether @peer was never seen: not in the roster, no message with it. */
static int peer_is_unknown(Conversation *c, const char *peer) {
	int r;

	if (roster_get(c->roster, peer)) {
		return 0;
	}
	r = history_has_peer(c->history, peer);
	if (r < 0) {
		return r;
	}
	return r == 0;
}

int conversation_peer_in_use(Conversation *c, const char *peer) {
	if (streq(c->active, peer)) {
		return 1;
	}
	/* The outbox and the pending sends are rows of the history too. */
	return history_has_peer(c->history, peer);
}

int conversation_send(Conversation *c, const char *peer, const char *text,
		ConversationSendDone done, void *userdata, char ret_id[static MESSAGE_ID_STRLEN]) {
	_cleanup_(pending_send_freep) PendingSend *p = NULL;
	int r;

	/* Room for the answer first: once stored, the message must get it. */
	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->text = strdup(text);
	if (!p->text) {
		return -ENOMEM;
	}
	/* Before it is stored: then there is a message with the peer. */
	r = peer_is_unknown(c, peer);
	if (r < 0) {
		return r;
	}
	p->unknown = r;
	r = GREEDY_REALLOC(c->sends, c->allocated_sends, c->n_sends + 1);
	if (r < 0) {
		return r;
	}
	r = commit_reserve(c->commit, COMMIT_PHASE_REPLY);
	if (r < 0) {
		return r;
	}
	r = store_outgoing(c, peer, text, p->id, &p->sent_usec);
	if (r < 0) {
		return r;
	}
	p->conversation = c;
	(void) snprintf(p->peer, sizeof(p->peer), "%s", peer);
	p->outcome = r > 0 ? SEND_OUTCOME_SENT : SEND_OUTCOME_QUEUED;
	p->done = done;
	p->userdata = userdata;
	memcpy(ret_id, p->id, MESSAGE_ID_STRLEN);
	c->sends[c->n_sends++] = p;
	r = commit_defer(c->commit, COMMIT_PHASE_REPLY, on_send_committed, TAKE_PTR(p));
	assert(r >= 0); /* reserved above */
	commit_check_bound(c->commit);
	return 0;
}

int conversation_queue(Conversation *c, const char *peer, const char *text) {
	char id[MESSAGE_ID_STRLEN];

	/* Like SendMessage(): announced once stored for good, in the same order. */
	return conversation_send(c, peer, text, NULL, NULL, id);
}

static void on_cancel_committed(int error, void *userdata) {
	_cleanup_free_ PendingCancel *p = userdata;
	_cleanup_(history_message_done) HistoryMessage hm = {};
	Conversation *c = p->conversation;

	/* Not stored: the rollback left the message queued; the caller is told. */
	p->done(error, p->id, p->userdata);
	if (error < 0) {
		return;
	}
	/* A late ack of an earlier try may have made it delivered meanwhile. */
	if (history_get_message(c->history, p->id, &hm) < 0 ||
			hm.state != HISTORY_STATE_FAILED) {
		return;
	}
	report_failed(c, p->id, p->peer, "cancelled");
}

int conversation_cancel(Conversation *c, const char *id, ConversationSendDone done,
		void *userdata) {
	_cleanup_(history_message_done) HistoryMessage hm = {};
	_cleanup_free_ PendingCancel *p = NULL;
	int r;

	/* A message whose answer still waits is stored for good first. */
	settle(c, id);
	r = history_get_message(c->history, id, &hm);
	if (r < 0) {
		return r;
	}
	if (hm.direction != HISTORY_DIRECTION_OUT || hm.state != HISTORY_STATE_QUEUED) {
		return -EBUSY;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	r = commit_reserve(c->commit, COMMIT_PHASE_REPLY);
	if (r < 0) {
		return r;
	}
	r = history_set_state(c->history, id, HISTORY_STATE_FAILED);
	if (r < 0) {
		return r;
	}
	/* Queued is not on the wire; should it be there all the same, it stops. */
	messenger_forget(c->messenger, id);
	*p = (PendingCancel) {
		.conversation = c,
		.done = done,
		.userdata = userdata,
	};
	(void) snprintf(p->id, sizeof(p->id), "%s", hm.id);
	(void) snprintf(p->peer, sizeof(p->peer), "%s", hm.peer);
	r = commit_defer(c->commit, COMMIT_PHASE_REPLY, on_cancel_committed, TAKE_PTR(p));
	assert(r >= 0); /* reserved above */
	commit_check_bound(c->commit);
	return 0;
}

/* Messenger: where a peer is. */
static bool on_lookup(const char *name, MessengerPeer *ret, void *userdata) {
	Conversation *c = userdata;
	Peer *p = roster_get(c->roster, name);

	if (!p) {
		return false;
	}
	*ret = (MessengerPeer) {
		.endpoint = *peer_get_endpoint(p),
		.online = peer_is_online(p),
		.native = peer_is_native(p),
	};
	return true;
}

/*
 * Messenger: store a received message, then announce it, unless it was
 * announced before its batch failed; ack after the barrier.
 */
static int on_received(const char *id, const char *peer, const char *text, uint64_t ts_usec,
		const char *time, const Endpoint *reply_to, void *userdata) {
	Conversation *c = userdata;
	bool announced;
	int r;

	r = history_add_incoming(c->history, id, peer, text, ts_usec, now_usec(CLOCK_REALTIME));
	if (r == 0) {
		(void) forget_unstored(c, id); /* committed after all, only not synced */
	}
	if (r > 0) {
		announced = forget_unstored(c, id);
		note_announced(c, id);
		if (!announced) {
			c->callbacks->received(id, peer, text, ts_usec, reply_to != NULL, time,
					c->userdata);
		}
		if (streq(c->active, peer)) {
			/* On screen: read as it arrives. */
			(void) conversation_mark_read(c, peer);
		} else {
			defer_unread(c, peer);
			if (c->notify && !announced) {
				(void) notify_message(c->notify, peer, text);
			}
		}
	}
	if (r >= 0 && reply_to) {
		defer_ack(c, reply_to, id); /* a duplicate is acked again */
	} else {
		commit_check_bound(c->commit);
	}
	return r;
}

static void on_delivered(const char *id, const char *peer, unsigned attempts, void *userdata) {
	_cleanup_(history_message_done) HistoryMessage hm = {};
	Conversation *c = userdata;
	int r;

	r = history_get_message(c->history, id, &hm);
	if (r < 0 || hm.direction != HISTORY_DIRECTION_OUT || !streq(hm.peer, peer)) {
		return;
	}
	settle(c, id);
	r = outbox_delivered(c->outbox, id);
	commit_check_bound(c->commit);
	if (r < 0) {
		log_debug_errno(r, "Ignoring an ack for message %s: %m", id);
		return;
	}
	if (r == 0) {
		return; /* a duplicate ack */
	}
	c->callbacks->delivered(id, peer, attempts, c->userdata);
	report_state(c, id, peer, HISTORY_STATE_DELIVERED, NULL);
}

static void on_requeued(const char *id, const char *peer, void *userdata) {
	Conversation *c = userdata;
	int r;

	settle(c, id);
	r = outbox_requeue(c->outbox, id);
	if (r < 0) {
		log_warning_errno(r, "Failed to requeue message %s: %m", id);
		return;
	}
	if (r > 0) {
		report_state(c, id, peer, HISTORY_STATE_QUEUED, NULL);
	}
	schedule_retry(c);
}

static void on_confirmed(const char *peer, void *userdata) {
	conversation_schedule_flush(userdata);
}

static const MessengerCallbacks messenger_callbacks = {
	.lookup = on_lookup,
	.received = on_received,
	.delivered = on_delivered,
	.requeued = on_requeued,
	.confirmed = on_confirmed,
};

int conversation_mark_read(Conversation *c, const char *peer) {
	_cleanup_(history_strv_freep) char **ids = NULL;
	int r;

	r = history_list_unread(c->history, peer, &ids);
	if (r <= 0) {
		return r;
	}
	r = history_mark_read(c->history, peer);
	if (r < 0) {
		return r;
	}
	for (char **i = ids; *i; i++) {
		report_state(c, *i, peer, HISTORY_STATE_READ, NULL);
	}
	c->callbacks->unread_changed(peer, c->userdata);
	return r;
}

int conversation_set_active(Conversation *c, const char *peer) {
	int r;

	r = free_and_strdup(&c->active, peer);
	if (r < 0) {
		return r;
	}
	if (c->notify) {
		r = notify_set_active_peer(c->notify, peer);
		if (r < 0) {
			return r;
		}
	}
	c->callbacks->active_changed(c->userdata);
	if (peer[0] != '\0') {
		r = conversation_mark_read(c, peer);
		if (r < 0) {
			return r;
		}
	}
	return 0;
}

int conversation_set_config(Conversation *c, const char *key, const char *value,
		char **ret_error) {
	int r;

	r = config_set(c->config, key, value, ret_error);
	if (r < 0) {
		return r;
	}
	if (streq(key, "notifications") && c->notify) {
		notify_set_enabled(c->notify, c->config->notifications);
	} else if (streq(key, "outbox-expiry")) {
		r = outbox_set_max_age(c->outbox, c->config->outbox_expiry_usec);
		if (r < 0) {
			log_warning_errno(r, "Failed to reset the outbox expiry: %m");
		}
	}
	return 0;
}
