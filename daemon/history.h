/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The message store: history and outbox in one SQLite database
 * ($XDG_DATA_HOME/p2pchat/history.db).  Without batching every write commits
 * and is durable (fsynced) before it returns, so an incoming message can be
 * acknowledged as soon as history_add_incoming() has returned.  With
 * batching (the daemon) writes gather in one transaction and nothing is
 * durable before history_commit() returned 0: acknowledge only after it.
 *
 * States and the transitions history_set_state() allows:
 *
 *   outgoing:  queued -> sent        handed to the network, waiting for the ack
 *              sent -> queued        retries ran out or the peer left: retry later
 *              queued|sent -> delivered   the ack arrived
 *              queued|sent -> failed      expired (history_expire()) or refused
 *              failed -> queued      the user asked to send it again
 *              failed -> delivered   a late ack: the peer has it after all
 *              delivered -> read     the peer reported it read
 *   incoming:  delivered -> read     stored unread; history_mark_read()
 *
 * Setting the state a message already has is a no-op (returns 0).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/* Largest limit a query accepts; larger requests are clamped to it. */
#define HISTORY_LIMIT_MAX 1000u
/* Most messages that may wait in the outbox for one peer. */
#define HISTORY_QUEUE_MAX 1000u
/* Message ids: 1-64 bytes of [A-Za-z0-9_-]. */
#define HISTORY_ID_MAX 64
/* Peer names and texts, in bytes (the wire limits). */
#define HISTORY_PEER_MAX 128
#define HISTORY_TEXT_MAX 16384
/* Most conversations history_list_conversations() returns: the most recent. */
#define HISTORY_CONVERSATIONS_MAX 1000u
/* Search text, in bytes. */
#define HISTORY_QUERY_MAX 1024
/* A peer's identity key (Ed25519 public key), in bytes. */
#define HISTORY_PEER_KEY_SIZE 32

typedef struct History History;

typedef enum HistoryDirection {
	HISTORY_DIRECTION_IN,
	HISTORY_DIRECTION_OUT,
	_HISTORY_DIRECTION_MAX,
	_HISTORY_DIRECTION_INVALID = -EINVAL,
} HistoryDirection;

typedef enum HistoryState {
	HISTORY_STATE_QUEUED,
	HISTORY_STATE_SENT,
	HISTORY_STATE_DELIVERED,
	HISTORY_STATE_FAILED,
	HISTORY_STATE_READ,
	_HISTORY_STATE_MAX,
	_HISTORY_STATE_INVALID = -EINVAL,
} HistoryState;

typedef struct HistoryMessage {
	char *id;
	char *peer;
	HistoryDirection direction;
	char *text;
	uint64_t sent_usec;     /* the sender's clock */
	uint64_t received_usec; /* our clock; 0 for outgoing messages */
	HistoryState state;
	/*
	 * The identity key an outgoing message is for: it is delivered only
	 * to that key.  Not set for incoming messages, messages to reference
	 * peers, messages stored before keys existed, and messages queued
	 * before any key of their peer was known (until one is pinned).
	 */
	bool has_peer_key;
	uint8_t peer_key[HISTORY_PEER_KEY_SIZE];
} HistoryMessage;

/* A list of messages as the queries return them, oldest first unless noted. */
typedef struct HistoryList {
	HistoryMessage *messages;
	size_t n;
} HistoryList;

const char *history_state_to_string(HistoryState s);
HistoryState history_state_from_string(const char *s);
const char *history_direction_to_string(HistoryDirection d);

/* Free what a message or list owns; the struct is zeroed and may be reused. */
void history_message_done(HistoryMessage *m);
void history_list_done(HistoryList *l);

/*
 * history_default_path() - $XDG_DATA_HOME/p2pchat/history.db (HOME fallback).
 * Creates the directories (0700).
 */
int history_default_path(char **ret);

/*
 * history_open() - open or create the database at @path and migrate it to the
 * current schema.
 *
 * Return: 0; -EPROTONOSUPPORT when the file was written by a newer schema;
 * -EBADMSG when it is not a database or is damaged; -EROFS when it cannot
 * be written (SQLite would open it read-only); other negative errno (I/O,
 * -EACCES, -ENOMEM).
 */
int history_open(const char *path, History **ret);
History *history_free(History *h);

/*
 * history_move_aside() - set a damaged database aside: @path, with its -wal
 * and -shm, becomes @path.corrupt-DATE (DATE in UTC from @now_usec, e.g.
 * history.db.corrupt-2026-12-04T16:20:00Z), with -wal and -shm after that,
 * so that the set still opens together.  Nothing is deleted or overwritten.
 *
 * Return: 0 with the new name of the main file in @ret_path; -EEXIST when
 * that name is taken; other negative errno (then nothing was moved).
 */
int history_move_aside(const char *path, uint64_t now_usec, char **ret_path);
DEFINE_TRIVIAL_CLEANUP_FUNC(History *, history_free);

/*
 * history_set_batching() - with @on, writes no longer commit one by one: they
 * gather in one transaction until history_commit().  Reads see them at once.
 */
void history_set_batching(History *h, bool on);

/*
 * history_commit() - commit the open transaction and, if a write in it is a
 * promise (a stored message, a queued one, a failure...) or the previous
 * barrier failed, fsync the WAL: the barrier after which every write so far
 * survives a power loss.  Without an open transaction it does nothing.
 *
 * Return: 0; negative errno when the batch could not be committed or made
 * durable: promise nothing about its writes (they may or may not be there).
 */
int history_commit(History *h);

/* The number of writes in the open transaction. */
unsigned history_batch_size(History *h);

/* The schema version of an open database (PRAGMA user_version). */
int history_schema_version(History *h);
/* The schema version this code writes. */
int history_schema_version_latest(void);

/* Runs PRAGMA integrity_check: 0 when it says "ok", -EBADMSG otherwise. */
int history_check_integrity(History *h);

/*
 * history_add_incoming() - store a received message (state delivered).
 *
 * Return: 1 when stored, 0 when that id was already stored from the same
 * peer (a retransmission: ack it again), -EEXIST when the id belongs to
 * another peer's or an outgoing message, -EINVAL for invalid arguments.
 */
int history_add_incoming(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, uint64_t received_usec);

/*
 * history_add_outgoing() - store a message to send (state queued).
 * @peer_key: the HISTORY_PEER_KEY_SIZE-byte identity key the message is
 * for, or NULL when none is known (a reference peer, or no key pinned yet:
 * then history_set_peer_key() binds it to the first key pinned).
 *
 * Return: 0; -EEXIST for a used id; -ENOBUFS when @peer already has
 * HISTORY_QUEUE_MAX queued messages; -EINVAL for invalid arguments.
 */
int history_add_outgoing(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, const uint8_t *peer_key);

/*
 * history_add_outgoing_as() - history_add_outgoing() in state @state:
 * HISTORY_STATE_QUEUED, or HISTORY_STATE_SENT for a message that goes on
 * the wire right away (it must, before the transaction commits).
 */
int history_add_outgoing_as(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, const uint8_t *peer_key, HistoryState state);

/*
 * history_set_message_key() - bind outgoing message @id to @key: it is
 * delivered only to that key from now on.  Replaces a key it had.
 *
 * Return: 0; -ENOENT when @id is not an outgoing message.
 */
int history_set_message_key(History *h, const char *id,
		const uint8_t key[HISTORY_PEER_KEY_SIZE]);

/* A peer's pinned identity key. */
typedef struct HistoryPeerKey {
	uint8_t key[HISTORY_PEER_KEY_SIZE];
	bool verified;        /* the user compared its fingerprint out of band */
	uint64_t pinned_usec; /* when this key was pinned (our clock) */
} HistoryPeerKey;

/*
 * history_get_peer_key() - the key pinned for @peer.
 *
 * Return: 1 with the pin in @ret; 0 when @peer has no pin (@ret untouched);
 * -EINVAL for an invalid peer name; other negative errno.
 */
int history_get_peer_key(History *h, const char *peer, HistoryPeerKey *ret);

/*
 * history_set_peer_key() - pin @key for @peer, or replace its pin (the
 * caller decides when a changed key may replace the pinned one), with
 * @verified as given.  pinned_usec becomes @now_usec when the key is new or
 * differs from the pinned one, and stays otherwise.  The first pin of a
 * peer also binds the outgoing messages still waiting for it without a key
 * (queued, sent or failed; not final) to @key, in the same transaction.
 * Written like every other write: in the open batch with batching.
 *
 * Return: 1 when @key was pinned anew (first pin or a changed key), 0 when
 * it already was the pinned key; -EINVAL for invalid arguments.
 */
int history_set_peer_key(History *h, const char *peer,
		const uint8_t key[HISTORY_PEER_KEY_SIZE], bool verified, uint64_t now_usec);

/*
 * history_set_peer_verified() - set or clear the verified flag of @peer's
 * pin.
 *
 * Return: 0; -ENOENT when @peer has no pin; -EINVAL for an invalid peer.
 */
int history_set_peer_verified(History *h, const char *peer, bool verified);

/* history_has_queued() - 1 when @peer has queued messages, else 0. */
int history_has_queued(History *h, const char *peer);
/* history_has_peer() - 1 when a message with @peer is stored (either direction), else 0. */
int history_has_peer(History *h, const char *peer);

/*
 * history_set_state() - move message @id to @state (see the table above).
 *
 * Return: 1 when the state changed, 0 when it already was @state, -ENOENT for
 * an unknown id, -EPERM for a transition the table does not allow.
 */
int history_set_state(History *h, const char *id, HistoryState state);

/* history_get_message() - one message by id; -ENOENT when unknown. */
int history_get_message(History *h, const char *id, HistoryMessage *ret);

/*
 * history_list_queued() - the queued messages for @peer, oldest first: the
 * order in which to send them.
 */
int history_list_queued(History *h, const char *peer, HistoryList *ret);

/*
 * history_requeue_sent() - move every "sent" message back to "queued".  Call
 * it at start-up: a message that was in flight when the daemon stopped has no
 * retry timer any more.
 *
 * Return: the number of messages requeued.
 */
int history_requeue_sent(History *h);

/*
 * history_set_sent_final() - a queued or sent outgoing message went to a peer
 * that never acks (a reference peer): "sent" is its last state.  It is not
 * requeued by history_requeue_sent() and does not expire.
 *
 * Return: 0; -ENOENT when @id is not a queued or sent outgoing message.
 */
int history_set_sent_final(History *h, const char *id);

/*
 * history_list_queued_peers() - the peers with queued messages, sorted, as a
 * NULL-terminated list to free with history_strv_free().
 *
 * Return: the number of peers.
 */
int history_list_queued_peers(History *h, char ***ret);
/* history_list_unread() - the ids of @peer's unread incoming messages, oldest first. */
int history_list_unread(History *h, const char *peer, char ***ret);
char **history_strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, history_strv_free);

/*
 * history_oldest_pending() - the sent_usec of the oldest queued or sent
 * message: when the next one expires is this plus the maximum age.
 *
 * Return: 0; -ENOENT when nothing is pending.
 */
int history_oldest_pending(History *h, uint64_t *ret_usec);

/*
 * history_expire() - fail queued and sent messages older than @max_age_usec
 * at @now_usec (by their sent_usec).  At most HISTORY_LIMIT_MAX messages per
 * call; call again while it returns that many.
 *
 * Return: the number expired; @ret gets those messages (state failed).
 */
int history_expire(History *h, uint64_t now_usec, uint64_t max_age_usec, HistoryList *ret);

/*
 * history_get() - the conversation with @peer: the newest @limit messages
 * (clamped to HISTORY_LIMIT_MAX) older than @before_id (NULL or "": the
 * newest), oldest first.
 *
 * Return: 0; -ENOENT when @before_id is not a message with @peer.
 */
int history_get(History *h, const char *peer, unsigned limit, const char *before_id,
		HistoryList *ret);

/*
 * history_search() - messages whose text contains @query (case-insensitive
 * for ASCII, any script: CJK works), newest first, at most @limit (clamped).
 * @query is literal text: quotes and FTS operators in it have no meaning.
 *
 * Return: 0; -EINVAL for an empty or too long query.
 */
int history_search(History *h, const char *query, unsigned limit, HistoryList *ret);

/* history_mark_read() - mark @peer's unread incoming messages read; Return: how many. */
int history_mark_read(History *h, const char *peer);

/* history_unread() - the number of unread incoming messages from @peer. */
int history_unread(History *h, const char *peer);

typedef struct HistoryUnread {
	char *peer;
	unsigned count;
} HistoryUnread;

typedef struct HistoryUnreadList {
	HistoryUnread *peers; /* sorted by peer */
	size_t n;
} HistoryUnreadList;

/*
 * history_unread_all() - the unread counts of every peer with unread
 * messages, in one query.  Free with history_unread_list_done().
 */
int history_unread_all(History *h, HistoryUnreadList *ret);
void history_unread_list_done(HistoryUnreadList *l);
/* history_unread_lookup() - @peer's count in @l; 0 when it is not there. */
unsigned history_unread_lookup(const HistoryUnreadList *l, const char *peer);

/* A peer we have messages with: the newest of them and the unread count. */
typedef struct HistoryConversation {
	HistoryMessage last;
	unsigned unread; /* incoming messages not read yet */
} HistoryConversation;

typedef struct HistoryConversationList {
	HistoryConversation *conversations; /* most recent (newest last message) first */
	size_t n;
} HistoryConversationList;

/*
 * history_list_conversations() - every peer with stored messages, by its
 * newest message, most recent first (at most HISTORY_CONVERSATIONS_MAX), in
 * one query whose cost grows with the number of peers, not of messages.
 * Free with history_conversation_list_done().
 */
int history_list_conversations(History *h, HistoryConversationList *ret);
void history_conversation_list_done(HistoryConversationList *l);
