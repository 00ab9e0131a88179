/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Chat messages between peers: native JSON datagrams with acks and retries,
 * and the reference peers' UTF-16LE "talk" lines.
 */

#include <stddef.h>

#include "common/endpoint.h"
#include "common/wire.h"

typedef struct Manager Manager;
typedef struct Messenger Messenger;

/* Outgoing messages waiting for an ack, per daemon. */
#define MESSENGER_MAX_IN_FLIGHT 4096
/* Ids of received messages remembered to drop duplicates. */
#define MESSENGER_RECENT_IDS 1024
/* "<32 hex digits>" + NUL */
#define MESSAGE_ID_STRLEN 33

int messenger_new(Manager *m, Messenger **ret);
Messenger *messenger_free(Messenger *s);

/*
 * messenger_send() - queue a message to a roster peer.
 * Return: 0 and the new id in @ret_id; -ENXIO for an unknown peer, -ENOBUFS
 * when too many messages are in flight, -ENOMEM.  The outcome is announced
 * later by MessageDelivered, MessageSent or MessageFailed, never before the
 * caller had a chance to reply.
 */
int messenger_send(Messenger *s, const char *peer, const char *text, size_t len,
		char ret_id[static MESSAGE_ID_STRLEN]);

void messenger_handle_json(Messenger *s, const char *buf, size_t n, const Endpoint *from);
void messenger_handle_talk(Messenger *s, const WireMessage *msg, const Endpoint *from);

/* Fails every message in flight to @peer ("peer-offline"). */
void messenger_peer_left(Messenger *s, const char *peer);
/* Fails every message in flight with @reason. */
void messenger_fail_all(Messenger *s, const char *reason);

size_t messenger_in_flight(Messenger *s);
