/* SPDX-License-Identifier: MIT */

/*
 * The Noise IK sessions between daemons (the format and the limits are in
 * the header).  A PeerSessions is owned by whoever owns the UDP socket and
 * lives as long as it; it owns one Peer per key it talked to, created by a
 * send or by an accepted initiation and kept until the PeerSessions is
 * freed (peer_sessions_forget() only empties it).  A Peer owns:
 *
 *  - at most one Handshake: our initiation, until its response (then a
 *    Keypair), its timeout or its abandonment in a simultaneous initiation;
 *  - up to three Keypairs: `next` (we responded, not confirmed yet: it only
 *    receives), `current` (sends and receives) and `previous` (receives
 *    until it expires, for the messages in flight across a rekey);
 *  - the queue of plaintexts waiting for a session;
 *  - one timer, armed at the earliest of: retransmission, handshake
 *    timeout, expiry of `next` and of each session's keys.  An idle peer
 *    has no timer once its sessions expired.
 *
 * Handshakes and Keypairs are found by their random index through a table
 * of chained buckets; Peers by their key the same way.
 *
 * Nothing changes until a datagram authenticated.  The responder works on a
 * fresh Noise state per initiation; our own initiation's state, which a bad
 * response would spoil for good (common/noise.c), is rebuilt from its
 * ephemeral key after a failed read, so a forged response costs the
 * attacker a token and changes nothing.
 *
 * Callbacks come last, after the objects are in their final state, with
 * copies of what they are given: deliver(), seen() and send_failed() may
 * call peer_sessions_send() and peer_sessions_forget().  The send callback
 * may be called at any point and must not call back in.  Nothing here logs.
 */

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "common/noise.h"
#include "common/time-util.h"
#include "daemon/peer-session.h"

#define PROLOGUE "p2pchat-peer-v1"
#define PROLOGUE_LEN (sizeof(PROLOGUE) - 1)

/* Payload of message 1 before the plaintext: key, timestamp, index. */
#define INITIATION_PAYLOAD_HEADER (PEER_SESSION_KEY_SIZE + 8u + 4u)
/* Payload of message 2: both indices and the floor. */
#define RESPONSE_PAYLOAD_SIZE (4u + 4u + 8u)

#define INDEX_BUCKETS 1024u
#define PEER_BUCKETS 256u
#define RATE_SLOTS 1024u

/* RFC 6479: 64 blocks of 64 bits; the newest block is partly ahead. */
#define REPLAY_BLOCKS 64u
#define REPLAY_BITS (REPLAY_BLOCKS * 64u)
#define REPLAY_WINDOW (REPLAY_BITS - 64u)

/* One token, in the buckets' unit (a token per second is one unit per µs). */
#define TOKEN_UNIT USEC_PER_SEC

/* Retransmissions are due at their time: sd-event's default slack is 250 ms. */
#define TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)

typedef struct Peer Peer;

typedef enum SlotKind {
	SLOT_HANDSHAKE,
	SLOT_KEYPAIR,
	_SLOT_KIND_MAX,
	_SLOT_KIND_INVALID = -EINVAL,
} SlotKind;

/* An entry of the index table: the first member of a Handshake and a Keypair. */
typedef struct IndexSlot {
	uint32_t index;
	SlotKind kind;
	bool registered;
	PeerSessions *sessions; /* not owned */
	Peer *peer;             /* not owned */
	struct IndexSlot *bucket_next;
} IndexSlot;

/* A plaintext waiting for a session. */
typedef struct Plain {
	struct Plain *next;
	size_t len;
	uint8_t data[];
} Plain;

typedef struct ReplayWindow {
	uint64_t greatest; /* the greatest accepted counter + 1; 0 before the first */
	uint64_t blocks[REPLAY_BLOCKS];
} ReplayWindow;

typedef struct Keypair {
	IndexSlot slot;
	uint32_t remote_index;
	NoiseCipher *send;
	NoiseCipher *recv;
	uint64_t send_counter;
	uint64_t created;
	bool confirmed;
	ReplayWindow window;
	/* As responder: the initiation we answered and our answer, for its retransmissions. */
	uint8_t init_e[NOISE_KEY_SIZE];
	uint64_t init_ts;
	uint8_t response[PEER_SESSION_RESPONSE_SIZE];
} Keypair;

typedef struct Handshake {
	IndexSlot slot;
	NoiseHandshake *noise; /* NULL after a failed read, until rebuilt */
	uint8_t e_priv[NOISE_KEY_SIZE];
	uint64_t ts;
	Plain *first; /* the plaintext in message 1, or NULL */
	uint8_t *msg1;
	size_t msg1_len;
	uint64_t started;
	uint64_t last_sent;
	unsigned tries;
} Handshake;

struct Peer {
	PeerSessions *sessions; /* not owned */
	Peer *bucket_next;
	uint8_t key[PEER_SESSION_KEY_SIZE];
	uint8_t dh[IDENTITY_DH_KEY_SIZE];
	Endpoint endpoint;
	bool has_endpoint;

	Handshake *handshake;
	Keypair *next;
	Keypair *current;
	Keypair *previous;

	Plain *queue_head;
	Plain *queue_tail;
	size_t queue_len;
	size_t queue_bytes;

	uint64_t recv_ts;          /* initiations up to this are replays */
	uint64_t sent_ts;          /* our latest initiation's timestamp */
	uint64_t unanswered_since; /* first data sent since the last authenticated datagram */

	sd_event_source *timer;
};

typedef struct TokenBucket {
	uint64_t tokens; /* in TOKEN_UNIT */
	uint64_t last;   /* 0: never used (full) */
} TokenBucket;

struct PeerSessions {
	sd_event *event;
	const Identity *id; /* not owned */
	PeerSessionConfig config;
	PeerSessionCallbacks callbacks;
	void *userdata;

	Peer *peers[PEER_BUCKETS];
	size_t n_peers;
	IndexSlot *indices[INDEX_BUCKETS];

	TokenBucket total;
	TokenBucket per_source[RATE_SLOTS];
	uint8_t rate_key[crypto_shorthash_KEYBYTES];

	uint64_t last_ts;
	PeerSessionStats stats;

	/* Decrypted payloads, and outgoing transport datagrams (WIRE_DATAGRAM_MAX each). */
	uint8_t *rx;
	uint8_t *tx;
};

static void put32(uint8_t *p, uint32_t v) {
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v) {
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p) {
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p) {
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint64_t usec_add(uint64_t a, uint64_t b) {
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void peer_session_config_init(PeerSessionConfig *c) {
	assert(c);

	*c = (PeerSessionConfig) {
		.rekey_after_usec = 120 * USEC_PER_SEC,
		.reject_after_usec = 180 * USEC_PER_SEC,
		.rekey_after_messages = 100000,
		.reject_after_messages = UINT64_C(1) << 60,
		.rekey_unanswered_usec = 15 * USEC_PER_SEC,
		.retransmit_first_usec = 1 * USEC_PER_SEC,
		.retransmit_max = 3,
		.handshake_timeout_usec = 10 * USEC_PER_SEC,
		.hs_rate_per_ip = 20,
		.hs_burst_per_ip = 40,
		.hs_rate_total = 200,
		.hs_burst_total = 400,
	};
}

static bool config_is_valid(const PeerSessionConfig *c) {
	return c->rekey_after_usec < c->reject_after_usec &&
		c->rekey_after_messages < c->reject_after_messages &&
		/* The counter never reaches the nonce Noise reserves (2^64 - 1). */
		c->reject_after_messages < UINT64_MAX &&
		c->retransmit_first_usec > 0 && c->handshake_timeout_usec > 0 &&
		c->hs_rate_per_ip > 0 && c->hs_burst_per_ip > 0 &&
		c->hs_rate_total > 0 && c->hs_burst_total > 0;
}

static uint64_t event_now(const PeerSessions *s) {
	uint64_t t;

	if (sd_event_now(s->event, CLOCK_MONOTONIC, &t) < 0) {
		return now_usec(CLOCK_MONOTONIC);
	}
	return t;
}

/* Initiation timestamps: wall clock µs, strictly increasing in this process. */
static uint64_t next_timestamp(PeerSessions *s) {
	s->last_ts = MAX(now_usec(CLOCK_REALTIME), s->last_ts + 1);
	return s->last_ts;
}

/* --- plaintexts --- */

static Plain *plain_free(Plain *q) {
	if (!q) {
		return NULL;
	}
	sodium_memzero(q->data, q->len);
	return mfree(q);
}

static void plain_free_list(Plain *q) {
	while (q) {
		Plain *next = q->next;

		plain_free(q);
		q = next;
	}
}

static void peer_queue_push_front(Peer *p, Plain *q) {
	q->next = p->queue_head;
	p->queue_head = q;
	if (!p->queue_tail) {
		p->queue_tail = q;
	}
	p->queue_len++;
	p->queue_bytes += q->len;
}

static void peer_queue_push_back(Peer *p, Plain *q) {
	q->next = NULL;
	if (p->queue_tail) {
		p->queue_tail->next = q;
	} else {
		p->queue_head = q;
	}
	p->queue_tail = q;
	p->queue_len++;
	p->queue_bytes += q->len;
}

static Plain *peer_queue_pop(Peer *p) {
	Plain *q = p->queue_head;

	if (!q) {
		return NULL;
	}
	p->queue_head = q->next;
	if (!p->queue_head) {
		p->queue_tail = NULL;
	}
	p->queue_len--;
	p->queue_bytes -= q->len;
	q->next = NULL;
	return q;
}

/* Unlinks and returns the whole queue. */
static Plain *peer_queue_steal(Peer *p) {
	Plain *q = p->queue_head;

	p->queue_head = p->queue_tail = NULL;
	p->queue_len = p->queue_bytes = 0;
	return q;
}

/* --- the index table --- */

static IndexSlot **index_bucket(PeerSessions *s, uint32_t index) {
	return &s->indices[index & (INDEX_BUCKETS - 1)];
}

static IndexSlot *index_lookup(PeerSessions *s, uint32_t index) {
	for (IndexSlot *i = *index_bucket(s, index); i; i = i->bucket_next) {
		if (i->index == index) {
			return i;
		}
	}
	return NULL;
}

/* Puts @slot in the table under @index, which is not in use. */
static void index_register_as(PeerSessions *s, IndexSlot *slot, SlotKind kind, Peer *p,
		uint32_t index) {
	IndexSlot **b;

	assert(!slot->registered);
	assert(!index_lookup(s, index));

	slot->index = index;
	slot->kind = kind;
	slot->sessions = s;
	slot->peer = p;
	b = index_bucket(s, slot->index);
	slot->bucket_next = *b;
	*b = slot;
	slot->registered = true;
}

/* Gives @slot a random index not in use and puts it in the table. */
static void index_register(PeerSessions *s, IndexSlot *slot, SlotKind kind, Peer *p) {
	uint32_t index;

	do {
		index = randombytes_random();
	} while (index_lookup(s, index));
	index_register_as(s, slot, kind, p, index);
}

static void index_unregister(IndexSlot *slot) {
	if (!slot->registered) {
		return;
	}
	for (IndexSlot **i = index_bucket(slot->sessions, slot->index); *i; i = &(*i)->bucket_next) {
		if (*i == slot) {
			*i = slot->bucket_next;
			break;
		}
	}
	slot->registered = false;
}

/* --- sessions and handshakes --- */

static Keypair *keypair_free(Keypair *kp) {
	if (!kp) {
		return NULL;
	}
	index_unregister(&kp->slot);
	noise_cipher_free(kp->send);
	noise_cipher_free(kp->recv);
	sodium_memzero(kp, sizeof(*kp));
	return mfree(kp);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Keypair *, keypair_free);

static Handshake *handshake_free(Handshake *hs) {
	if (!hs) {
		return NULL;
	}
	index_unregister(&hs->slot);
	noise_handshake_free(hs->noise);
	plain_free(hs->first);
	free(hs->msg1);
	sodium_memzero(hs, sizeof(*hs));
	return mfree(hs);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Handshake *, handshake_free);

static bool keypair_usable(const PeerSessions *s, const Keypair *kp, uint64_t now) {
	return kp && kp->confirmed && now < usec_add(kp->created, s->config.reject_after_usec) &&
		kp->send_counter < s->config.reject_after_messages;
}

static bool keypair_wants_rekey(const PeerSessions *s, const Keypair *kp, uint64_t now) {
	return now >= usec_add(kp->created, s->config.rekey_after_usec) ||
		kp->send_counter >= s->config.rekey_after_messages;
}

static bool keypair_expired(const PeerSessions *s, const Keypair *kp, uint64_t now) {
	return now >= usec_add(kp->created, s->config.reject_after_usec);
}

/* Replay window (RFC 6479): whether @counter was not accepted yet and is recent enough. */
static bool replay_check(const ReplayWindow *w, uint64_t counter) {
	uint64_t c = counter + 1; /* counter < reject_after_messages < UINT64_MAX */

	if (c > w->greatest) {
		return true;
	}
	if (w->greatest - c > REPLAY_WINDOW) {
		return false;
	}
	return !(w->blocks[(c / 64) % REPLAY_BLOCKS] & (UINT64_C(1) << (c % 64)));
}

/* Marks @counter accepted, after replay_check() and the tag. */
static void replay_update(ReplayWindow *w, uint64_t counter) {
	uint64_t c = counter + 1, block = c / 64;

	if (c > w->greatest) {
		uint64_t current = w->greatest / 64, top = MIN(block - current, (uint64_t) REPLAY_BLOCKS);

		for (uint64_t i = 1; i <= top; i++) {
			w->blocks[(current + i) % REPLAY_BLOCKS] = 0;
		}
		w->greatest = c;
	}
	w->blocks[block % REPLAY_BLOCKS] |= UINT64_C(1) << (c % 64);
}

/* --- rate limits --- */

static void bucket_refill(TokenBucket *b, unsigned rate, unsigned burst, uint64_t now) {
	uint64_t cap = (uint64_t) burst * TOKEN_UNIT, elapsed;

	if (b->last == 0) {
		b->tokens = cap;
		b->last = now;
		return;
	}
	if (now <= b->last) {
		return;
	}
	elapsed = now - b->last;
	b->last = now;
	/* rate units per µs; a full refill takes cap / rate µs. */
	if (elapsed >= cap / rate) {
		b->tokens = cap;
	} else {
		b->tokens = MIN(cap, b->tokens + elapsed * rate);
	}
}

/* The bucket of @from's IPv4 address or IPv6 /64 (keyed hash: collisions are not choosable). */
static TokenBucket *source_bucket(PeerSessions *s, const Endpoint *from) {
	uint8_t buf[1 + 8] = {};
	size_t n = 1;
	uint64_t h;

	switch (endpoint_family(from)) {
	case AF_INET:
		buf[0] = 4;
		memcpy(buf + 1, &from->in.sin_addr, 4);
		n += 4;
		break;
	case AF_INET6:
		if (IN6_IS_ADDR_V4MAPPED(&from->in6.sin6_addr)) {
			buf[0] = 4;
			memcpy(buf + 1, from->in6.sin6_addr.s6_addr + 12, 4);
			n += 4;
		} else {
			buf[0] = 6;
			memcpy(buf + 1, from->in6.sin6_addr.s6_addr, 8);
			n += 8;
		}
		break;
	default:
		break;
	}
	(void) crypto_shorthash((uint8_t *) &h, buf, n, s->rate_key);
	return &s->per_source[h % RATE_SLOTS];
}

/* Takes a token from @from's bucket and the overall one, or says no. */
static bool rate_allow(PeerSessions *s, const Endpoint *from, uint64_t now) {
	TokenBucket *b = source_bucket(s, from);

	bucket_refill(&s->total, s->config.hs_rate_total, s->config.hs_burst_total, now);
	bucket_refill(b, s->config.hs_rate_per_ip, s->config.hs_burst_per_ip, now);
	if (s->total.tokens < TOKEN_UNIT || b->tokens < TOKEN_UNIT) {
		s->stats.rate_limited++;
		return false;
	}
	s->total.tokens -= TOKEN_UNIT;
	b->tokens -= TOKEN_UNIT;
	s->stats.handshakes_processed++;
	return true;
}

/* --- peers --- */

static Peer **peer_bucket(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE]) {
	return &s->peers[key[0] % PEER_BUCKETS];
}

static Peer *peer_find(const PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE]) {
	for (Peer *p = s->peers[key[0] % PEER_BUCKETS]; p; p = p->bucket_next) {
		if (memcmp(p->key, key, PEER_SESSION_KEY_SIZE) == 0) {
			return p;
		}
	}
	return NULL;
}

/* Drops everything but the key and the timestamps. */
static void peer_clear(Peer *p) {
	p->timer = sd_event_source_disable_unref(p->timer);
	p->handshake = handshake_free(p->handshake);
	p->next = keypair_free(p->next);
	p->current = keypair_free(p->current);
	p->previous = keypair_free(p->previous);
	plain_free_list(peer_queue_steal(p));
	p->has_endpoint = false;
	p->unanswered_since = 0;
}

static Peer *peer_free(Peer *p) {
	if (!p) {
		return NULL;
	}
	peer_clear(p);
	if (p->sessions) {
		for (Peer **i = peer_bucket(p->sessions, p->key); *i; i = &(*i)->bucket_next) {
			if (*i == p) {
				*i = p->bucket_next;
				p->sessions->n_peers--;
				break;
			}
		}
	}
	sodium_memzero(p, sizeof(*p));
	return mfree(p);
}

static int peer_get_or_new(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE],
		Peer **ret) {
	Peer *p, **b;
	uint8_t dh[IDENTITY_DH_KEY_SIZE];
	int r;

	p = peer_find(s, key);
	if (p) {
		*ret = p;
		return 0;
	}
	r = identity_public_key_to_dh(key, dh);
	if (r < 0) {
		return r;
	}
	if (s->n_peers >= PEER_SESSIONS_PEERS_MAX) {
		return -ENOBUFS;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->sessions = s;
	memcpy(p->key, key, PEER_SESSION_KEY_SIZE);
	memcpy(p->dh, dh, sizeof(dh));
	b = peer_bucket(s, key);
	p->bucket_next = *b;
	*b = p;
	s->n_peers++;
	*ret = p;
	return 0;
}

static uint64_t retransmit_interval(const PeerSessions *s, unsigned tries) {
	uint64_t t = s->config.retransmit_first_usec;

	for (unsigned i = 1; i < tries && t < UINT64_MAX / 2; i++) {
		t *= 2;
	}
	return t;
}

static uint64_t peer_next_deadline(const Peer *p) {
	const PeerSessions *s = p->sessions;
	uint64_t t = UINT64_MAX;

	if (p->handshake) {
		const Handshake *hs = p->handshake;

		t = MIN(t, usec_add(hs->started, s->config.handshake_timeout_usec));
		if (hs->tries <= s->config.retransmit_max) {
			t = MIN(t, usec_add(hs->last_sent, retransmit_interval(s, hs->tries)));
		}
	}
	if (p->next) {
		t = MIN(t, usec_add(p->next->created, s->config.handshake_timeout_usec));
	}
	if (p->current) {
		t = MIN(t, usec_add(p->current->created, s->config.reject_after_usec));
	}
	if (p->previous) {
		t = MIN(t, usec_add(p->previous->created, s->config.reject_after_usec));
	}
	return t;
}

static int on_peer_timer(sd_event_source *source, uint64_t usec, void *userdata);

static int peer_rearm(Peer *p) {
	uint64_t t = peer_next_deadline(p);
	int r;

	if (t == UINT64_MAX) {
		if (p->timer) {
			return sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
		}
		return 0;
	}
	if (!p->timer) {
		return sd_event_add_time(p->sessions->event, &p->timer, CLOCK_MONOTONIC, t,
				TIMER_ACCURACY_USEC, on_peer_timer, p);
	}
	r = sd_event_source_set_time(p->timer, t);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

static int peer_transmit(Peer *p, const uint8_t *buf, size_t len) {
	PeerSessions *s = p->sessions;

	if (!p->has_endpoint) {
		return -EDESTADDRREQ;
	}
	return s->callbacks.send(&p->endpoint, buf, len, s->userdata);
}

/* A transport message (an empty one is a keepalive) over @kp, usable. */
static int keypair_send(Peer *p, Keypair *kp, const uint8_t *plain, size_t len, uint64_t now) {
	PeerSessions *s = p->sessions;
	uint8_t *out = s->tx;
	int r;

	out[0] = PEER_SESSION_TYPE_TRANSPORT;
	put32(out + 1, kp->remote_index);
	put64(out + 5, kp->send_counter);
	r = noise_cipher_encrypt_nonce(kp->send, kp->send_counter, out,
			PEER_SESSION_TRANSPORT_HEADER, len > 0 ? plain : out, len,
			out + PEER_SESSION_TRANSPORT_HEADER);
	if (r < 0) {
		return r;
	}
	kp->send_counter++;
	if (len > 0 && p->unanswered_since == 0) {
		p->unanswered_since = now;
	}
	return peer_transmit(p, out, PEER_SESSION_TRANSPORT_MIN + len);
}

/* Sends the queue over `current` while it is usable; the number sent. */
static size_t peer_flush(Peer *p, uint64_t now) {
	size_t n = 0;

	while (p->queue_head && keypair_usable(p->sessions, p->current, now)) {
		Plain *q = peer_queue_pop(p);

		/* A datagram lost here is like one lost on the way. */
		(void) keypair_send(p, p->current, q->data, q->len, now);
		plain_free(q);
		n++;
	}
	return n;
}

/*
 * Makes @hs's Noise state, message 1 written, from its ephemeral key: the
 * same state (and message) every time, so that a state spoiled by a bad
 * response can be made again.  *ret_msg (optional): the datagram.
 */
static int handshake_build(Peer *p, Handshake *hs, const Plain *first, uint8_t **ret_msg,
		size_t *ret_len) {
	PeerSessions *s = p->sessions;
	_cleanup_(noise_handshake_freep) NoiseHandshake *noise = NULL;
	_cleanup_free_ uint8_t *payload = NULL, *msg = NULL;
	size_t plain_len = first ? first->len : 0, payload_len, max, len;
	int r;

	payload_len = INITIATION_PAYLOAD_HEADER + plain_len;
	max = PEER_SESSION_INITIATION_MIN + plain_len;
	payload = malloc(payload_len);
	msg = malloc(max);
	if (!payload || !msg) {
		return -ENOMEM;
	}
	memcpy(payload, identity_get_public_key(s->id), PEER_SESSION_KEY_SIZE);
	put64(payload + PEER_SESSION_KEY_SIZE, hs->ts);
	put32(payload + PEER_SESSION_KEY_SIZE + 8, hs->slot.index);
	if (first) {
		memcpy(payload + INITIATION_PAYLOAD_HEADER, first->data, first->len);
	}

	r = noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_INITIATOR, (const uint8_t *) PROLOGUE,
			PROLOGUE_LEN, identity_get_dh_secret_key(s->id), p->dh, &noise);
	if (r < 0) {
		return r;
	}
	/* The same ephemeral as the first copy: a retransmission is the same message. */
	noise_handshake_set_ephemeral(noise, hs->e_priv);

	msg[0] = PEER_SESSION_TYPE_INITIATION;
	put32(msg + 1, hs->slot.index);
	r = noise_handshake_write(noise, payload, payload_len, msg + 5, max - 5, &len);
	sodium_memzero(payload, payload_len);
	if (r < 0) {
		return r;
	}
	assert(5 + len == max);

	noise_handshake_free(hs->noise);
	hs->noise = TAKE_PTR(noise);
	if (ret_msg) {
		*ret_msg = TAKE_PTR(msg);
		*ret_len = max;
	}
	return 0;
}

/* Starts our initiation; the queue's head (if any) goes in message 1. */
static int peer_start_handshake(Peer *p, uint64_t now) {
	PeerSessions *s = p->sessions;
	_cleanup_(handshake_freep) Handshake *hs = NULL;
	int r;

	assert(!p->handshake);

	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		return -ENOMEM;
	}
	randombytes_buf(hs->e_priv, sizeof(hs->e_priv));
	hs->ts = next_timestamp(s);
	index_register(s, &hs->slot, SLOT_HANDSHAKE, p);

	r = handshake_build(p, hs, p->queue_head, &hs->msg1, &hs->msg1_len);
	if (r < 0) {
		return r;
	}
	hs->first = peer_queue_pop(p);
	hs->started = hs->last_sent = now;
	hs->tries = 1;
	p->sent_ts = hs->ts;
	p->handshake = TAKE_PTR(hs);

	/* Lost or not, it is retransmitted. */
	(void) peer_transmit(p, p->handshake->msg1, p->handshake->msg1_len);
	(void) peer_rearm(p);
	return 0;
}

/* Drops our initiation; the plaintext it carried goes back to the queue's head. */
static void peer_abandon_handshake(Peer *p) {
	Handshake *hs = TAKE_PTR(p->handshake);

	if (hs->first) {
		peer_queue_push_front(p, TAKE_PTR(hs->first));
	}
	handshake_free(hs);
}

/* The response came: @kp becomes `current`. */
static void peer_install_current(Peer *p, Keypair *kp) {
	keypair_free(p->previous);
	p->previous = p->current;
	p->current = kp;
}

static int on_peer_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Peer *p = userdata;
	PeerSessions *s = p->sessions;
	uint8_t key[PEER_SESSION_KEY_SIZE];
	Plain *failed = NULL;
	uint64_t now = event_now(s);

	if (p->handshake) {
		Handshake *hs = p->handshake;

		if (now >= usec_add(hs->started, s->config.handshake_timeout_usec)) {
			/* Everything waiting for this handshake failed with it. */
			p->handshake = NULL;
			failed = TAKE_PTR(hs->first);
			if (failed) {
				failed->next = peer_queue_steal(p);
			} else {
				failed = peer_queue_steal(p);
			}
			handshake_free(hs);
			s->stats.handshakes_failed++;
		} else if (hs->tries <= s->config.retransmit_max &&
				now >= usec_add(hs->last_sent, retransmit_interval(s, hs->tries))) {
			hs->tries++;
			hs->last_sent = now;
			(void) peer_transmit(p, hs->msg1, hs->msg1_len);
		}
	}
	if (p->next && now >= usec_add(p->next->created, s->config.handshake_timeout_usec)) {
		/* Never confirmed. */
		p->next = keypair_free(p->next);
	}
	if (p->current && keypair_expired(s, p->current, now)) {
		p->current = keypair_free(p->current);
	}
	if (p->previous && keypair_expired(s, p->previous, now)) {
		p->previous = keypair_free(p->previous);
	}
	/* Plaintexts that waited for an unconfirmed session go with a handshake of ours. */
	if (p->queue_head && !p->handshake && !p->next && !keypair_usable(s, p->current, now)) {
		int r;

		r = peer_start_handshake(p, now);
		if (r < 0) {
			failed = peer_queue_steal(p);
		}
	}
	(void) peer_rearm(p);

	memcpy(key, p->key, sizeof(key));
	/* p may be gone after the first callback. */
	while (failed) {
		Plain *q = failed;

		failed = q->next;
		if (s->callbacks.send_failed) {
			s->callbacks.send_failed(key, q->data, q->len, -ETIMEDOUT, s->userdata);
		}
		plain_free(q);
	}
	return 0;
}

/* --- the object --- */

int peer_sessions_new(sd_event *event, const Identity *id, const PeerSessionConfig *config,
		const PeerSessionCallbacks *callbacks, void *userdata, PeerSessions **ret) {
	_cleanup_(peer_sessions_freep) PeerSessions *s = NULL;

	assert(event);
	assert(id);
	assert(callbacks);
	assert(callbacks->send);
	assert(callbacks->accept_peer);
	assert(callbacks->deliver);
	assert(ret);

	if (config && !config_is_valid(config)) {
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		return -EIO;
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->event = sd_event_ref(event);
	s->id = id;
	if (config) {
		s->config = *config;
	} else {
		peer_session_config_init(&s->config);
	}
	s->callbacks = *callbacks;
	s->userdata = userdata;
	crypto_shorthash_keygen(s->rate_key);
	s->rx = malloc(WIRE_DATAGRAM_MAX);
	s->tx = malloc(WIRE_DATAGRAM_MAX);
	if (!s->rx || !s->tx) {
		return -ENOMEM;
	}

	*ret = TAKE_PTR(s);
	return 0;
}

PeerSessions *peer_sessions_free(PeerSessions *s) {
	if (!s) {
		return NULL;
	}
	for (size_t i = 0; i < PEER_BUCKETS; i++) {
		while (s->peers[i]) {
			peer_free(s->peers[i]);
		}
	}
	sd_event_unref(s->event);
	/* The keys went with their objects; rx last held a plaintext. */
	free(s->rx);
	free(s->tx);
	sodium_memzero(s->rate_key, sizeof(s->rate_key));
	return mfree(s);
}

int peer_sessions_send(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE],
		const Endpoint *to, const uint8_t *plain, size_t len) {
	const Plain *first;
	Peer *p;
	Plain *q;
	uint64_t now;
	int r;

	assert(s);
	assert(key);
	assert(to);
	assert(plain || len == 0);

	if (len == 0) {
		return -EINVAL;
	}
	if (len > PEER_SESSION_PLAINTEXT_MAX) {
		return -EMSGSIZE;
	}
	r = peer_get_or_new(s, key, &p);
	if (r < 0) {
		return r;
	}
	p->endpoint = *to;
	p->has_endpoint = true;
	now = event_now(s);

	if (!p->queue_head && keypair_usable(s, p->current, now)) {
		bool silent = s->config.rekey_unanswered_usec > 0 && p->unanswered_since > 0 &&
			now >= usec_add(p->unanswered_since, s->config.rekey_unanswered_usec);

		if (!silent) {
			bool rekey = keypair_wants_rekey(s, p->current, now);

			r = keypair_send(p, p->current, plain, len, now);
			if (rekey && !p->handshake && !p->next) {
				/* The old session carries on until the new one is there. */
				(void) peer_start_handshake(p, now);
			}
			return r;
		}
		/*
		 * Nothing came back for a while: the peer may have dropped the
		 * session (it went offline and came back).  This one waits for
		 * a new handshake and goes in its message 1.
		 */
	}

	/* The plaintext in our message 1 still waits too. */
	first = p->handshake ? p->handshake->first : NULL;
	if (p->queue_len + !!first >= PEER_SESSION_QUEUE_MAX ||
			p->queue_bytes + (first ? first->len : 0) + len > PEER_SESSION_QUEUE_BYTES) {
		return -ENOBUFS;
	}
	q = malloc(sizeof(*q) + len);
	if (!q) {
		return -ENOMEM;
	}
	q->len = len;
	memcpy(q->data, plain, len);
	peer_queue_push_back(p, q);

	/* A responder waits for the confirmation of its session (or its timeout). */
	if (!p->handshake && !p->next) {
		r = peer_start_handshake(p, now);
		if (r < 0) {
			/* Not queued after all: q is the queue's only entry. */
			assert(p->queue_head == q && p->queue_tail == q);
			plain_free(peer_queue_pop(p));
			return r;
		}
	}
	return 0;
}

static int handle_initiation(PeerSessions *s, const Endpoint *from, const uint8_t *buf, size_t len,
		uint64_t now) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *noise = NULL;
	_cleanup_(keypair_freep) Keypair *kp = NULL;
	uint8_t key[PEER_SESSION_KEY_SIZE], dh[IDENTITY_DH_KEY_SIZE], payload[RESPONSE_PAYLOAD_SIZE];
	const uint8_t *our_key = identity_get_public_key(s->id), *rs;
	uint32_t remote_index;
	size_t plen, n;
	uint64_t ts;
	Peer *p;
	int r;

	if (len < PEER_SESSION_INITIATION_MIN) {
		s->stats.malformed++;
		return -EBADMSG;
	}
	if (!rate_allow(s, from, now)) {
		return -EAGAIN;
	}

	r = noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_RESPONDER, (const uint8_t *) PROLOGUE,
			PROLOGUE_LEN, identity_get_dh_secret_key(s->id), NULL, &noise);
	if (r < 0) {
		return r;
	}
	r = noise_handshake_read(noise, buf + 5, len - 5, s->rx, WIRE_DATAGRAM_MAX, &plen);
	if (r == -ENOMEM) {
		return r;
	}
	if (r < 0) {
		s->stats.auth_failed++;
		return -EBADMSG;
	}
	assert(plen >= INITIATION_PAYLOAD_HEADER);

	memcpy(key, s->rx, sizeof(key));
	ts = get64(s->rx + PEER_SESSION_KEY_SIZE);
	remote_index = get32(s->rx + PEER_SESSION_KEY_SIZE + 8);
	rs = noise_handshake_get_remote_static(noise);
	/* The header must be the one sent, the key the one Noise authenticated. */
	if (remote_index != get32(buf + 1) || identity_public_key_to_dh(key, dh) < 0 ||
			memcmp(dh, rs, sizeof(dh)) != 0) {
		s->stats.auth_failed++;
		return -EBADMSG;
	}
	if (memcmp(key, our_key, sizeof(key)) == 0 || !s->callbacks.accept_peer(key, from, s->userdata)) {
		s->stats.refused++;
		return -EPERM;
	}

	p = peer_find(s, key);
	if (p && p->next && p->next->init_ts == ts &&
			memcmp(p->next->init_e, buf + 5, NOISE_KEY_SIZE) == 0) {
		/* A retransmission of the initiation we answered (the response was lost). */
		(void) s->callbacks.send(from, p->next->response, PEER_SESSION_RESPONSE_SIZE,
				s->userdata);
		return 1;
	}
	if (p && ts <= p->recv_ts) {
		s->stats.replayed++;
		return -ESTALE;
	}
	if (p && p->handshake && memcmp(our_key, key, sizeof(key)) < 0) {
		/* Both initiated: ours stands, the peer answers it and drops its own. */
		return 1;
	}
	if (!p) {
		r = peer_get_or_new(s, key, &p);
		if (r < 0) {
			if (r == -ENOBUFS) {
				s->stats.refused++;
			}
			return r;
		}
	}

	kp = calloc(1, sizeof(*kp));
	if (!kp) {
		return -ENOMEM;
	}
	index_register(s, &kp->slot, SLOT_KEYPAIR, p);
	kp->remote_index = remote_index;
	kp->created = now;
	kp->init_ts = ts;
	memcpy(kp->init_e, buf + 5, NOISE_KEY_SIZE);

	put32(payload, kp->slot.index);
	put32(payload + 4, remote_index);
	put64(payload + 8, p->sent_ts);
	kp->response[0] = PEER_SESSION_TYPE_RESPONSE;
	put32(kp->response + 1, kp->slot.index);
	put32(kp->response + 5, remote_index);
	r = noise_handshake_write(noise, payload, sizeof(payload), kp->response + 9,
			PEER_SESSION_RESPONSE_SIZE - 9, &n);
	if (r < 0) {
		return r;
	}
	assert(9 + n == PEER_SESSION_RESPONSE_SIZE);
	r = noise_handshake_split(noise, &kp->send, &kp->recv);
	if (r < 0) {
		return r;
	}

	/* Authentic and new: from here on the state changes. */
	if (p->handshake) {
		peer_abandon_handshake(p);
	}
	p->recv_ts = ts;
	p->unanswered_since = 0;
	keypair_free(p->next);
	p->next = TAKE_PTR(kp);
	s->stats.handshakes_completed++;
	(void) s->callbacks.send(from, p->next->response, PEER_SESSION_RESPONSE_SIZE, s->userdata);
	(void) peer_rearm(p);

	if (s->callbacks.seen) {
		s->callbacks.seen(key, from, s->userdata);
	}
	if (plen > INITIATION_PAYLOAD_HEADER) {
		s->callbacks.deliver(key, from, s->rx + INITIATION_PAYLOAD_HEADER,
				plen - INITIATION_PAYLOAD_HEADER, s->userdata);
	}
	return 1;
}

static int handle_response(PeerSessions *s, const Endpoint *from, const uint8_t *buf, size_t len,
		uint64_t now) {
	_cleanup_(keypair_freep) Keypair *kp = NULL;
	uint8_t key[PEER_SESSION_KEY_SIZE], payload[RESPONSE_PAYLOAD_SIZE];
	IndexSlot *slot;
	Handshake *hs;
	Peer *p;
	size_t n;
	int r;

	if (len != PEER_SESSION_RESPONSE_SIZE) {
		s->stats.malformed++;
		return -EBADMSG;
	}
	slot = index_lookup(s, get32(buf + 5));
	if (!slot || slot->kind != SLOT_HANDSHAKE) {
		s->stats.unknown_index++;
		return -ENOENT;
	}
	hs = (Handshake *) slot;
	p = slot->peer;
	if (!rate_allow(s, from, now)) {
		return -EAGAIN;
	}

	if (!hs->noise) {
		r = handshake_build(p, hs, hs->first, NULL, NULL);
		if (r < 0) {
			return r;
		}
	}
	r = noise_handshake_read(hs->noise, buf + 9, len - 9, payload, sizeof(payload), &n);
	if (r >= 0 && (n != sizeof(payload) || get32(payload) != get32(buf + 1) ||
			get32(payload + 4) != hs->slot.index)) {
		r = -EBADMSG; /* a changed header */
	}
	if (r < 0) {
		/* The state took the bad message in: it is made again for the next one. */
		hs->noise = noise_handshake_free(hs->noise);
		if (r == -ENOMEM) {
			return r;
		}
		s->stats.auth_failed++;
		return -EBADMSG;
	}

	kp = calloc(1, sizeof(*kp));
	if (!kp) {
		hs->noise = noise_handshake_free(hs->noise);
		return -ENOMEM;
	}
	r = noise_handshake_split(hs->noise, &kp->send, &kp->recv);
	if (r < 0) {
		hs->noise = noise_handshake_free(hs->noise);
		return r;
	}
	kp->remote_index = get32(buf + 1);
	kp->created = now;
	kp->confirmed = true;

	/*
	 * The responder delivered message 1's plaintext: the handshake is done,
	 * and its index (the one the responder knows) names the session.
	 */
	index_unregister(&hs->slot);
	index_register_as(s, &kp->slot, SLOT_KEYPAIR, p, hs->slot.index);
	p->handshake = handshake_free(p->handshake);
	p->recv_ts = MAX(p->recv_ts, get64(payload + 8));
	p->unanswered_since = 0;
	peer_install_current(p, TAKE_PTR(kp));
	s->stats.handshakes_completed++;
	if (peer_flush(p, now) == 0) {
		/* The responder sends only once something came over the session. */
		(void) keypair_send(p, p->current, NULL, 0, now);
	}
	(void) peer_rearm(p);

	memcpy(key, p->key, sizeof(key));
	if (s->callbacks.seen) {
		s->callbacks.seen(key, from, s->userdata);
	}
	return 1;
}

static int handle_transport(PeerSessions *s, const Endpoint *from, const uint8_t *buf, size_t len,
		uint64_t now) {
	uint8_t key[PEER_SESSION_KEY_SIZE];
	IndexSlot *slot;
	Keypair *kp;
	uint64_t counter;
	size_t plen;
	Peer *p;
	int r;

	if (len < PEER_SESSION_TRANSPORT_MIN) {
		s->stats.malformed++;
		return -EBADMSG;
	}
	slot = index_lookup(s, get32(buf + 1));
	if (!slot || slot->kind != SLOT_KEYPAIR) {
		s->stats.unknown_index++;
		return -ENOENT;
	}
	kp = (Keypair *) slot;
	p = slot->peer;
	counter = get64(buf + 5);
	if (keypair_expired(s, kp, now) || counter >= s->config.reject_after_messages) {
		s->stats.expired++;
		return -EKEYEXPIRED;
	}
	if (!replay_check(&kp->window, counter)) {
		s->stats.replayed++;
		return -ESTALE;
	}
	r = noise_cipher_decrypt_nonce(kp->recv, counter, buf, PEER_SESSION_TRANSPORT_HEADER,
			buf + PEER_SESSION_TRANSPORT_HEADER, len - PEER_SESSION_TRANSPORT_HEADER, s->rx);
	if (r < 0) {
		s->stats.auth_failed++;
		return -EBADMSG;
	}
	replay_update(&kp->window, counter);
	plen = len - PEER_SESSION_TRANSPORT_MIN;
	p->unanswered_since = 0;

	if (kp == p->next) {
		/* Key confirmation: our response arrived, the session is ours to send on. */
		p->next = NULL;
		kp->confirmed = true;
		sodium_memzero(kp->response, sizeof(kp->response));
		peer_install_current(p, kp);
		(void) peer_flush(p, now);
		(void) peer_rearm(p);
	}

	memcpy(key, p->key, sizeof(key));
	if (s->callbacks.seen) {
		s->callbacks.seen(key, from, s->userdata);
	}
	if (plen > 0) {
		s->callbacks.deliver(key, from, s->rx, plen, s->userdata);
	}
	return 1;
}

int peer_sessions_handle_datagram(PeerSessions *s, const Endpoint *from, const uint8_t *buf,
		size_t len) {
	uint64_t now;

	assert(s);
	assert(from);
	assert(buf || len == 0);

	if (len == 0) {
		return 0;
	}
	switch (buf[0]) {
	case PEER_SESSION_TYPE_INITIATION:
	case PEER_SESSION_TYPE_RESPONSE:
	case PEER_SESSION_TYPE_TRANSPORT:
		break;
	default:
		return 0;
	}
	if (len > WIRE_DATAGRAM_MAX) {
		s->stats.malformed++;
		return -EBADMSG;
	}

	now = event_now(s);
	switch (buf[0]) {
	case PEER_SESSION_TYPE_INITIATION:
		return handle_initiation(s, from, buf, len, now);
	case PEER_SESSION_TYPE_RESPONSE:
		return handle_response(s, from, buf, len, now);
	default:
		return handle_transport(s, from, buf, len, now);
	}
}

void peer_sessions_forget(PeerSessions *s, const uint8_t key[static PEER_SESSION_KEY_SIZE]) {
	Peer *p;

	assert(s);
	assert(key);

	p = peer_find(s, key);
	if (p) {
		peer_clear(p);
	}
}

bool peer_sessions_is_established(const PeerSessions *s,
		const uint8_t key[static PEER_SESSION_KEY_SIZE]) {
	const Peer *p;

	assert(s);
	assert(key);

	p = peer_find(s, key);
	return p && keypair_usable(s, p->current, event_now(s));
}

void peer_sessions_get_stats(const PeerSessions *s, PeerSessionStats *ret) {
	assert(s);
	assert(ret);

	*ret = s->stats;
}
