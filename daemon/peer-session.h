/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Encrypted sessions between two native daemons: every datagram between
 * them travels in a Noise_IK_25519_ChaChaPoly_BLAKE2b session, prologue
 * "p2pchat-peer-v1".  This module is a transport with no socket: it sends
 * through PeerSessionCallbacks.send() and is fed the datagrams the UDP
 * socket received (peer_sessions_handle_datagram()).  Peers are named by
 * their Ed25519 public key (32 bytes); the Noise static key is its X25519
 * form (identity_public_key_to_dh()).
 *
 * Datagrams (integers little-endian).  The first byte is the type, 0x01 to
 * 0x03: never '{' (a JSON datagram) and never a printable character (the
 * first byte of a UTF-16LE line), so the UDP module dispatches on it.
 *
 *   0x01 initiation  type(1) | sender_index(4) | IK message 1:
 *                    e(32) | encrypted s(32+16) | encrypted payload(+16)
 *        payload:    ed25519_key(32) | timestamp(8) | sender_index(4) | plaintext(0..)
 *   0x02 response    type(1) | sender_index(4) | receiver_index(4) | IK message 2:
 *                    e(32) | encrypted payload(16+16)
 *        payload:    sender_index(4) | receiver_index(4) | floor(8)
 *   0x03 transport   type(1) | receiver_index(4) | counter(8) | ciphertext+tag(16)
 *        the first 13 bytes are the AEAD's associated data, the counter its
 *        nonce; an empty plaintext is a keepalive (never delivered).
 *
 * Indices are random 32-bit numbers naming a handshake or a session of the
 * side that chose them.  The payloads repeat the clear indices, so a
 * changed header fails like a bad tag.  The initiation carries the
 * initiator's Ed25519 key, which must map to the static key Noise
 * authenticated, and a timestamp (CLOCK_REALTIME µs, strictly increasing
 * per daemon): an initiation not newer than the last one accepted from
 * that key is a replay.  The response's floor is the timestamp of the
 * responder's own latest initiation to the initiator, which it abandoned
 * (see below) or which was answered: the initiator treats initiations up
 * to it as replays, so a late copy of an abandoned one is never delivered.
 *
 * A session: the initiator sends the first queued plaintext in message 1
 * (the responder delivers it at once), the rest as transport messages when
 * the response came, or a keepalive when nothing is queued.  The responder
 * uses a new session for sending only once a transport message arrived on
 * it (key confirmation); until then it answers a retransmitted initiation
 * with the same response again.
 *
 * Limits (PeerSessionConfig, defaults in peer_session_config_init()):
 *  - rekey: a send on a session older than 120 s or after 100,000
 *    messages starts a new handshake (either side; the old session carries
 *    on meanwhile); sessions are refused, for sending and receiving, after
 *    180 s or 2^60 messages; the previous session is kept for receiving
 *    until then, so messages in flight across a rekey are not lost;
 *  - a send while nothing was authenticated from the peer for 15 s after
 *    an earlier send starts a new handshake too (the peer may have
 *    forgotten the session);
 *  - handshake: retransmitted after 1 s, doubling, at most 3 times (at 0,
 *    1, 3, 7 s); it fails after 10 s and every queued plaintext is handed
 *    to send_failed() with -ETIMEDOUT;
 *  - replay window: 4,096 bits (RFC 6479): a counter is accepted once,
 *    and only within 4,032 of the greatest one accepted; the window moves
 *    only after the tag verified;
 *  - handshake messages: token buckets per source (the IPv4 address or the
 *    IPv6 /64), 20/s burst 40, and overall 200/s burst 400, before any
 *    public-key operation.
 *
 * Simultaneous initiation (both sides sent message 1 and neither has the
 * response): the side whose Ed25519 key compares lower (memcmp) keeps its
 * handshake and ignores the peer's initiation; the other abandons its own,
 * puts the plaintext of its message 1 back at the head of its queue and
 * answers.  Its queue goes out once the session is confirmed.
 *
 * A datagram that fails parsing or authentication, a replay, one for an
 * unknown index or from a refused key is dropped and counted
 * (peer_sessions_get_stats()) and changes no state.  Sessions live in
 * memory only; every key is wiped (sodium_memzero()) when freed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"

#define PEER_SESSION_KEY_SIZE IDENTITY_PUBLIC_KEY_SIZE

/* Datagram types (the first byte). */
#define PEER_SESSION_TYPE_INITIATION 0x01
#define PEER_SESSION_TYPE_RESPONSE 0x02
#define PEER_SESSION_TYPE_TRANSPORT 0x03

/* type + sender_index + e + s + tag + payload header + tag */
#define PEER_SESSION_INITIATION_MIN (1u + 4u + 32u + 48u + 44u + 16u)
/* type + sender_index + receiver_index + e + payload + tag */
#define PEER_SESSION_RESPONSE_SIZE (1u + 4u + 4u + 32u + 16u + 16u)
/* type + receiver_index + counter */
#define PEER_SESSION_TRANSPORT_HEADER (1u + 4u + 8u)
/* A keepalive: the header and a tag. */
#define PEER_SESSION_TRANSPORT_MIN (PEER_SESSION_TRANSPORT_HEADER + 16u)

/* Largest plaintext: what still fits an initiation in WIRE_DATAGRAM_MAX (65,362). */
#define PEER_SESSION_PLAINTEXT_MAX (WIRE_DATAGRAM_MAX - PEER_SESSION_INITIATION_MIN)

/* Plaintexts waiting for a session, message 1's included: per peer, at most so many and bytes. */
#define PEER_SESSION_QUEUE_MAX 256u
#define PEER_SESSION_QUEUE_BYTES (1024u * 1024u)
/* Peers known at once (forgotten ones included, see peer_sessions_forget()). */
#define PEER_SESSIONS_PEERS_MAX 4096u

typedef struct PeerSessions PeerSessions;

typedef struct PeerSessionConfig {
	uint64_t rekey_after_usec;       /* a send on an older session rekeys */
	uint64_t reject_after_usec;      /* a session is refused after this */
	uint64_t rekey_after_messages;   /* a send after this many rekeys */
	uint64_t reject_after_messages;  /* counters from here on are refused */
	uint64_t rekey_unanswered_usec;  /* 0: never rekey for silence */
	uint64_t retransmit_first_usec;  /* first retransmission; then doubling */
	unsigned retransmit_max;         /* retransmissions of message 1 */
	uint64_t handshake_timeout_usec; /* an initiation without response fails */
	unsigned hs_rate_per_ip;         /* handshake messages per second and source */
	unsigned hs_burst_per_ip;
	unsigned hs_rate_total;          /* handshake messages per second, all sources */
	unsigned hs_burst_total;
} PeerSessionConfig;

/* The defaults described at the top. */
void peer_session_config_init(PeerSessionConfig *c);

typedef struct PeerSessionCallbacks {
	/*
	 * Puts @buf on the wire to @to; a negative errno when it could not
	 * (returned by peer_sessions_send() when it sent at once, ignored
	 * otherwise).  Must not call into the PeerSessions.  Required.
	 */
	int (*send)(const Endpoint *to, const uint8_t *buf, size_t len, void *userdata);
	/*
	 * Whether we talk to @key, whose initiation came from @from (it
	 * authenticated); false drops it.  Must not call into the
	 * PeerSessions.  Required.
	 */
	bool (*accept_peer)(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
			void *userdata);
	/* A datagram from @key authenticated; @from is its source.  Optional. */
	void (*seen)(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
			void *userdata);
	/* A plaintext from @key arrived (once each).  Required. */
	void (*deliver)(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
			const uint8_t *plain, size_t len, void *userdata);
	/*
	 * A queued plaintext will not be sent: the handshake failed
	 * (-ETIMEDOUT).  Called once per plaintext, oldest first.  Optional.
	 */
	void (*send_failed)(const uint8_t key[static PEER_SESSION_KEY_SIZE], const uint8_t *plain,
			size_t len, int error, void *userdata);
} PeerSessionCallbacks;

/* Counters of what happened to datagrams and handshakes, since creation. */
typedef struct PeerSessionStats {
	uint64_t malformed;            /* bad size or fields (incl. after decryption) */
	uint64_t unknown_index;        /* no handshake or session of ours has the index */
	uint64_t auth_failed;          /* a tag did not verify, or the key did not match */
	uint64_t replayed;             /* an old initiation or a counter seen or too old */
	uint64_t expired;              /* for a session past its limits */
	uint64_t refused;              /* accept_peer() said no, or no room for the peer */
	uint64_t rate_limited;         /* handshake messages dropped before any crypto */
	uint64_t handshakes_processed; /* handshake messages that got to the crypto */
	uint64_t handshakes_completed; /* sessions made, either role */
	uint64_t handshakes_failed;    /* our initiations that timed out */
} PeerSessionStats;

/*
 * peer_sessions_new() - the sessions of @id with its peers.
 * @event: the loop of the retransmission and expiry timers (referenced)
 * @id: our identity, not owned: it must outlive the object
 * @config: the limits (copied); NULL for the defaults
 * @callbacks: copied; send, accept_peer and deliver are required
 *
 * Return: 0; -EINVAL for a config whose limits contradict each other
 * (reject before rekey, a zero rate or burst, zero retransmission
 * interval or timeout); -ENOMEM.
 */
int peer_sessions_new(sd_event *event, const Identity *id, const PeerSessionConfig *config,
		const PeerSessionCallbacks *callbacks, void *userdata, PeerSessions **ret);
/* Wipes every key, drops queued plaintexts without callbacks; NULL-safe. */
PeerSessions *peer_sessions_free(PeerSessions *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerSessions *, peer_sessions_free);

/*
 * peer_sessions_send() - send @plain to the peer @key at @to.
 *
 * @to becomes the peer's endpoint for everything we send it from now on.
 * Goes out at once over an established session, else waits in the peer's
 * queue for the handshake this starts (if none is running); then its
 * outcome is the datagram or send_failed().
 *
 * Return: 0; -EINVAL for an empty plaintext or a key with no X25519 form;
 * -EMSGSIZE above PEER_SESSION_PLAINTEXT_MAX; -ENOBUFS when the queue is
 * full or there is no room for a new peer; the send callback's error when it
 * was sent at once; -ENOMEM.
 */
int peer_sessions_send(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE],
		const Endpoint *to, const uint8_t *plain, size_t len);

/*
 * peer_sessions_handle_datagram() - a datagram the socket received from @from.
 *
 * Return: 1 it was a session datagram and was handled (including a
 * duplicate initiation answered again and an initiation ignored by the
 * tie-break); 0 not one (another protocol's: the first byte is not a
 * session type); a negative errno when it was dropped (and counted):
 * -EBADMSG malformed or not authentic, -ENOENT unknown index, -ESTALE
 * replayed, -EKEYEXPIRED for an expired session, -EPERM refused,
 * -EAGAIN rate limited, -ENOBUFS no room for the peer, -ENOMEM.
 */
int peer_sessions_handle_datagram(PeerSessions *s, const Endpoint *from, const uint8_t *buf,
		size_t len);

/*
 * peer_sessions_forget() - @key went offline: drop its handshake, sessions
 * (keys wiped) and queued plaintexts, without callbacks.  What stays is the
 * timestamp of its latest initiation, so that replaying an old one still
 * fails.  A later send starts afresh.
 */
void peer_sessions_forget(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE]);

/* Whether a send to @key would go out at once (a confirmed, valid session). */
bool peer_sessions_is_established(const PeerSessions *s,
		const uint8_t key[static PEER_SESSION_KEY_SIZE]);

void peer_sessions_get_stats(const PeerSessions *s, PeerSessionStats *ret);
