/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Chat messages between peers: native JSON datagrams with acks and retries,
 * and the reference peers' UTF-16LE "talk" lines.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/endpoint.h"
#include "common/wire.h"

typedef struct Manager Manager;
typedef struct Messenger Messenger;

/* Outgoing messages waiting for an ack, per daemon. */
#define MESSENGER_MAX_IN_FLIGHT 4096
/* "<32 hex digits>" + NUL */
#define MESSAGE_ID_STRLEN 33

typedef struct HistoryMessage HistoryMessage;

int messenger_new(Manager *m, Messenger **ret);
Messenger *messenger_free(Messenger *s);

/* A fresh random message id. */
int messenger_new_id(char ret[static MESSAGE_ID_STRLEN]);

/*
 * messenger_transmit() - put the outbox's message @m on the wire (the outbox
 * send callback).
 * Return: OUTBOX_SENT (native: an ack or a requeue will follow),
 * OUTBOX_SENT_FINAL (a reference peer's talk went out); -EHOSTDOWN when the
 * peer is not online, -ENOTCONN when logged out, -EMSGSIZE when it can never
 * fit a datagram, -ENOBUFS when too many are in flight.
 */
int messenger_transmit(Messenger *s, const HistoryMessage *m);
/*
 * True when a message to @peer would go on the wire at once: a native peer
 * online that has acked before, and room in flight.
 */
bool messenger_can_transmit(Messenger *s, const char *peer);
/* Stops retrying @id (it expired). */
void messenger_forget(Messenger *s, const char *id);

void messenger_handle_json(Messenger *s, const char *buf, size_t n, const Endpoint *from);
void messenger_handle_talk(Messenger *s, const WireMessage *msg, const Endpoint *from);

/* Gives every message in flight to @peer back to the outbox. */
void messenger_peer_left(Messenger *s, const char *peer);
/* Gives every message in flight back to the outbox (logout). */
void messenger_requeue_all(Messenger *s, const char *reason);

size_t messenger_in_flight(Messenger *s);
