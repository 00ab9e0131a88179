/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Conversations: sending, receiving and delivery policy.  Outgoing messages
 * are stored and queued in the outbox, handed to the Messenger when their
 * peer is reachable and followed to their outcome; incoming ones are stored
 * before they are acked and announced once.  Read state, the active
 * conversation and notifications live here too.  Everything a front end
 * sees is reported through ConversationCallbacks.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "daemon/commit.h"
#include "daemon/config.h"
#include "daemon/history.h"
#include "daemon/messenger.h"
#include "daemon/notify.h"
#include "daemon/roster.h"

/* Messages that went back to the outbox are tried again this much later. */
#define CONVERSATION_RETRY_USEC (15 * USEC_PER_SEC)

typedef struct Conversation Conversation;

typedef struct ConversationCallbacks {
	/*
	 * A new outgoing message is stored for good, whoever sent it; before
	 * any state_changed() about it.  @unknown: @peer was never seen
	 * before (not in the roster, no message with it in the history).
	 */
	void (*queued)(const char *id, const char *peer, const char *text, uint64_t sent_usec,
			bool unknown, void *userdata);
	void (*received)(const char *id, const char *peer, const char *text, uint64_t ts_usec,
			bool native, const char *time, void *userdata);
	void (*delivered)(const char *id, const char *peer, unsigned attempts, void *userdata);
	/* To a reference peer: sent for good. */
	void (*sent)(const char *id, const char *peer, void *userdata);
	void (*failed)(const char *id, const char *peer, const char *reason, void *userdata);
	/* @reason: NULL, or why, e.g. "expired". */
	void (*state_changed)(const char *id, const char *peer, HistoryState state,
			const char *reason, void *userdata);
	void (*unread_changed)(const char *peer, void *userdata);
	void (*active_changed)(void *userdata);
} ConversationCallbacks;

/*
 * Called once the message of conversation_send() is stored for good
 * (@error 0) or could not be (@error < 0: it is failed); signals about @id
 * come only after this.  conversation_cancel() calls it the same way once
 * the cancellation is stored (@error < 0: it is not cancelled).
 */
typedef void (*ConversationSendDone)(int error, const char *id, void *userdata);

/*
 * conversation_new() - over @history, @config, @commit, @roster and
 * @messenger (none owned; all must outlive it).  Takes the Messenger's
 * callbacks and opens the outbox.
 */
int conversation_new(sd_event *event, History *history, Config *config, Commit *commit,
		Roster *roster, Messenger *messenger, const ConversationCallbacks *callbacks,
		void *userdata, Conversation **ret);
Conversation *conversation_free(Conversation *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Conversation *, conversation_free);

/* The notifier (not owned), once the bus is there; NULL to go without. */
void conversation_set_notify(Conversation *c, Notify *notify);

/*
 * conversation_send() - SendMessage(): store @text for @peer and send it as
 * soon as possible; @done is called after the batch's barrier.
 * Return: 0 with the id, -ENOBUFS when the peer's queue is full, -errno
 * (then @done is never called).
 */
int conversation_send(Conversation *c, const char *peer, const char *text,
		ConversationSendDone done, void *userdata, char ret_id[static MESSAGE_ID_STRLEN]);
/*
 * conversation_queue() - conversation_send() without a caller to answer (a
 * reply from a notification): announced the same way, after the barrier.
 */
int conversation_queue(Conversation *c, const char *peer, const char *text);

/*
 * conversation_cancel() - CancelMessage(): an outgoing message that is still
 * queued (has not left) fails with reason "cancelled"; its text stays in
 * the history.  @done is called after the batch's barrier, and the signals
 * after it.
 * Return: 0; -ENOENT when there is no message @id; -EBUSY when it is not a
 * queued outgoing message (on the wire, delivered, failed, or incoming);
 * -errno (then @done is never called).
 */
int conversation_cancel(Conversation *c, const char *id, ConversationSendDone done,
		void *userdata);

/* Sends what is queued for online peers, soon (from a defer source). */
void conversation_schedule_flush(Conversation *c);

/*
 * conversation_peer_in_use() - whether anything is kept for @peer: a
 * message in either direction (so unread or queued ones too), or the
 * active conversation.  The roster forgets offline peers without.
 * Return: 1 or 0; negative errno.
 */
int conversation_peer_in_use(Conversation *c, const char *peer);

/* MarkRead(): returns how many messages became read. */
int conversation_mark_read(Conversation *c, const char *peer);
/* "" when none. */
const char *conversation_get_active(Conversation *c);
int conversation_set_active(Conversation *c, const char *peer);
/* SetConfig(): stores the key and applies what can change at run time. */
int conversation_set_config(Conversation *c, const char *key, const char *value,
		char **ret_error);
