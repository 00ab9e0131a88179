/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Chat messages on the wire: native JSON datagrams with acks and retries,
 * and the reference peers' UTF-16LE "talk" lines.  Per-peer flow control
 * lives here; what to send and what a message's outcome means is the
 * owner's business (MessengerCallbacks).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "daemon/udp.h"

typedef struct Messenger Messenger;

/* Outgoing messages waiting for an ack, per daemon. */
#define MESSENGER_MAX_IN_FLIGHT 4096
/* "<32 hex digits>" + NUL */
#define MESSAGE_ID_STRLEN 33
/*
 * Talks that arrive before their sender's login notice wait for it, at most
 * MESSENGER_EARLY_MAX of them with MESSENGER_EARLY_BYTES of text in all (the
 * oldest goes to make room), each for MESSENGER_EARLY_USEC: longer than a
 * reference server's list fetch (5 s), which repairs a lost login forward.
 */
#define MESSENGER_EARLY_MAX 16
#define MESSENGER_EARLY_BYTES (256u * 1024u)
#define MESSENGER_EARLY_USEC (10 * USEC_PER_SEC)

/* messenger_transmit()'s outcomes. */
typedef enum MessengerResult {
	MESSENGER_SENT,       /* native: an ack or a requeue will follow */
	MESSENGER_SENT_FINAL, /* a reference peer's talk went out: no ack will come */
	_MESSENGER_RESULT_MAX,
	_MESSENGER_RESULT_INVALID = -EINVAL,
} MessengerResult;

/* Where a peer is, as the roster says. */
typedef struct MessengerPeer {
	Endpoint endpoint;
	bool online;
	bool native;
} MessengerPeer;

typedef struct MessengerCallbacks {
	/* Fills @ret for @name; false when the peer is unknown. */
	bool (*lookup)(const char *name, MessengerPeer *ret, void *userdata);
	/*
	 * A message arrived from @peer.  Return: 1 new, 0 a duplicate, < 0 not
	 * stored.  A native message (@reply_to set) is acked only when the
	 * owner calls messenger_ack(): after it is stored for good.
	 */
	int (*received)(const char *id, const char *peer, const char *text, uint64_t ts_usec,
			const char *time, const Endpoint *reply_to, void *userdata);
	/* The ack of @id came (@attempts 0: a late ack, after a requeue or a restart). */
	void (*delivered)(const char *id, const char *peer, unsigned attempts, void *userdata);
	/* @id gets no more retries (timeout, peer gone, logout): queue it again. */
	void (*requeued)(const char *id, const char *peer, void *userdata);
	/* @peer acked for the first time since it came online: send the rest. */
	void (*confirmed)(const char *peer, void *userdata);
} MessengerCallbacks;

/* Registers the messenger's handlers on @udp (not owned: it must outlive it). */
int messenger_new(sd_event *event, Udp *udp, Messenger **ret);
/* In-flight messages stay "sent" in the store: the next start requeues them. */
Messenger *messenger_free(Messenger *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Messenger *, messenger_free);

void messenger_set_callbacks(Messenger *s, const MessengerCallbacks *callbacks, void *userdata);
/* Our name while logged in, NULL when logged out: then nothing is sent or accepted. */
int messenger_set_username(Messenger *s, const char *name);
bool messenger_is_active(Messenger *s);

/* A fresh random message id. */
int messenger_new_id(char ret[static MESSAGE_ID_STRLEN]);

/*
 * messenger_transmit() - put message @id on the wire to @peer.
 * Return: a MessengerResult; -EHOSTDOWN when the peer is not online,
 * -ENOTCONN when logged out, -EMSGSIZE when it can never fit a datagram,
 * -ENOBUFS when too many are in flight, -EAGAIN while the peer has not
 * confirmed and one message is in flight to it.
 */
int messenger_transmit(Messenger *s, const char *id, const char *peer, const char *text,
		uint64_t sent_usec);
/*
 * True when a message to @peer would go on the wire at once: a native peer
 * online that has acked before, and room in flight.
 */
bool messenger_can_transmit(Messenger *s, const char *peer);
/* Stops retrying @id. */
void messenger_forget(Messenger *s, const char *id);
/* Acks message @id to @to (the received() callback's @reply_to). */
int messenger_ack(Messenger *s, const Endpoint *to, const char *id);

/*
 * @peer came online or moved: it may not know us yet, so probe with one
 * message; and its talks that came before (MESSENGER_EARLY_MAX) are handed
 * to received() now, those from its roster IP only.
 */
void messenger_peer_reset(Messenger *s, const char *peer);
/* Gives every message in flight to @peer back (requeued()). */
void messenger_peer_left(Messenger *s, const char *peer);
/* Gives every message in flight back (logout). */
void messenger_requeue_all(Messenger *s, const char *reason);

size_t messenger_in_flight(Messenger *s);
