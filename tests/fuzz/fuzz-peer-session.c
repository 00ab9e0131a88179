/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for daemon/peer-session.c: a responder with a fixed
 * identity whose accept_peer() accepts everyone is fed datagrams.  The
 * first byte of the input picks the mode:
 *
 *   0  the rest is one datagram from the network;
 *   1  a session from a fixed initiator (its message 1, the response, the
 *      keepalive; made once and kept across inputs), and (when a response
 *      is patched, see below) a handshake of the initiator's own to a third
 *      key left pending; the rest is chunks ctl(1) | len(1) | bytes,
 *      each delivered to the responder (ctl bit 0 clear) or the initiator,
 *      with the index of a transport datagram (to the responder's session)
 *      or of a response (to the pending handshake) patched in when ctl bit
 *      1 is set, so that the checks past the index lookup and the replay
 *      window are reached;
 *   2  such a session (kept across inputs, made again every 256), rekeyed
 *      every 32 messages; the rest is operations
 *      op(1) | len(1) | bytes: the initiator or the responder sends the
 *      bytes (after a sequence number), and the datagram is delivered,
 *      delivered twice, held back (delivered at the end, newest first), or
 *      delivered with a bit flipped and then intact.
 *
 * Oracles: no crash, no leak (ASan), and in mode 2 no plaintext delivered
 * twice or one that was never sent.
 *
 * P2PCHAT_FUZZ_WRITE_SEEDS=DIR writes a seed corpus into DIR and exits
 * (tests/fuzz/corpus/fuzz-peer-session/ was made that way).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sodium.h>
#include <systemd/sd-event.h>

#include "common/identity.h"
#include "common/macro.h"
#include "daemon/peer-session.h"
#include "tests/fuzz/fuzz.h"

#define OUTBOX_MAX 64
#define HELD_MAX 64
#define SEQ_MAX 4096

typedef struct Outbox {
	uint8_t *buf[OUTBOX_MAX];
	size_t len[OUTBOX_MAX];
	size_t n;
} Outbox;

typedef struct Side {
	PeerSessions *sessions;
	const Identity *id;
	const struct Side *other;
	Endpoint ep;
	Outbox out;
	uint8_t delivered[SEQ_MAX]; /* mode 2: times each sequence number arrived here */
	uint32_t next_seq;          /* mode 2: the sequence number we send next */
} Side;

static sd_event *event;
static Identity *responder_id, *initiator_id, *third_id;

static int on_send(const Endpoint *to, const uint8_t *buf, size_t len, void *userdata) {
	Side *side = userdata;
	Outbox *o = &side->out;

	check(len > 0 && len <= WIRE_DATAGRAM_MAX);
	if (o->n >= OUTBOX_MAX) {
		return 0;
	}
	o->buf[o->n] = malloc(len);
	check(o->buf[o->n]);
	memcpy(o->buf[o->n], buf, len);
	o->len[o->n] = len;
	o->n++;
	return 0;
}

static bool on_accept_peer(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
		void *userdata) {
	return true;
}

static void on_deliver(const uint8_t key[static PEER_SESSION_KEY_SIZE], const Endpoint *from,
		const uint8_t *plain, size_t len, void *userdata) {
	Side *side = userdata;
	uint32_t seq;

	check(len > 0);
	if (!side->other || len < 5 || plain[0] != 0xA5) {
		return; /* not one of mode 2's */
	}
	memcpy(&seq, plain + 1, sizeof(seq));
	check(seq < side->other->next_seq && seq < SEQ_MAX);
	check(side->delivered[seq] == 0);
	side->delivered[seq]++;
}

static const PeerSessionCallbacks callbacks = {
	.send = on_send,
	.accept_peer = on_accept_peer,
	.deliver = on_deliver,
};

static void outbox_clear(Outbox *o) {
	for (size_t i = 0; i < o->n; i++) {
		free(o->buf[i]);
	}
	o->n = 0;
}

static Identity *identity_from_seed(uint8_t fill) {
	uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES],
		sk[crypto_sign_SECRETKEYBYTES];
	char path[] = "/tmp/fuzz-peer-session.XXXXXX";
	Identity *id = NULL;
	FILE *f;
	int fd;

	memset(seed, fill, sizeof(seed));
	check(crypto_sign_seed_keypair(pk, sk, seed) == 0);
	fd = mkstemp(path);
	check(fd >= 0);
	f = fdopen(fd, "w");
	check(f);
	fputs("p2pchat-identity-v1\n", f);
	for (size_t i = 0; i < sizeof(sk); i++) {
		fprintf(f, "%02x", sk[i]);
	}
	fputs("\n", f);
	check(fclose(f) == 0);
	check(identity_load(path, &id) == 0);
	(void) unlink(path);
	sodium_memzero(sk, sizeof(sk));
	return id;
}

static void side_init(Side *side, const Identity *id, const Side *other, uint8_t last_octet,
		const PeerSessionConfig *config) {
	memset(side, 0, sizeof(*side));
	side->id = id;
	side->other = other;
	side->ep.in.sin_family = AF_INET;
	side->ep.in.sin_port = htons(4000 + last_octet);
	side->ep.in.sin_addr.s_addr = htonl(0x7f000000u + last_octet);
	check(peer_sessions_new(event, id, config, &callbacks, side, &side->sessions) == 0);
}

static void side_done(Side *side) {
	side->sessions = peer_sessions_free(side->sessions);
	outbox_clear(&side->out);
}

/* Hands every datagram sent to the side it is for, until nothing moves. */
static void route(Side *a, Side *b) {
	for (unsigned round = 0; round < 16 && (a->out.n > 0 || b->out.n > 0); round++) {
		Side *sides[2] = { a, b };

		for (size_t k = 0; k < 2; k++) {
			Side *from = sides[k], *to = sides[1 - k];
			Outbox o = from->out;

			from->out.n = 0;
			for (size_t i = 0; i < o.n; i++) {
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				free(o.buf[i]);
			}
		}
	}
}

/* The initiator's first message to the responder, and the session it makes. */
static void open_session(Side *ini, Side *resp, uint8_t **ret_init, size_t *ret_init_len,
		uint32_t *ret_resp_index) {
	uint32_t resp_index = 0;

	check(peer_sessions_send(ini->sessions, identity_get_public_key(resp->id), &resp->ep,
			(const uint8_t *) "hello", 5) == 0);
	check(ini->out.n == 1 && ini->out.buf[0][0] == PEER_SESSION_TYPE_INITIATION);
	if (ret_init) {
		*ret_init = malloc(ini->out.len[0]);
		check(*ret_init);
		memcpy(*ret_init, ini->out.buf[0], ini->out.len[0]);
		*ret_init_len = ini->out.len[0];
	}
	check(peer_sessions_handle_datagram(resp->sessions, &ini->ep, ini->out.buf[0],
			ini->out.len[0]) == 1);
	outbox_clear(&ini->out);
	check(resp->out.n == 1 && resp->out.len[0] == PEER_SESSION_RESPONSE_SIZE);
	memcpy(&resp_index, resp->out.buf[0] + 1, sizeof(resp_index));
	route(ini, resp);
	check(peer_sessions_is_established(ini->sessions, identity_get_public_key(resp->id)));
	check(peer_sessions_is_established(resp->sessions, identity_get_public_key(ini->id)));
	if (ret_resp_index) {
		*ret_resp_index = resp_index;
	}
}

static void mode_raw(const uint8_t *data, size_t size) {
	Side resp;

	side_init(&resp, responder_id, NULL, 2, NULL);
	(void) peer_sessions_handle_datagram(resp.sessions, &resp.ep, data, size);
	side_done(&resp);
}

/*
 * Mode 1's pair lives across inputs: its handshake is slow (public-key
 * operations) and nothing a fuzz input can send changes it (it cannot
 * forge a datagram), so it is made once, and again only if it was lost.
 * Its rate limits are out of reach, so that earlier inputs do not starve
 * later ones.
 */
static Side chunk_ini, chunk_resp;
static uint32_t chunk_resp_index, chunk_pending_index;
static bool chunk_ready, chunk_pending;

static void chunk_pair_ensure(void) {
	PeerSessionConfig config;

	if (chunk_ready &&
			peer_sessions_is_established(chunk_ini.sessions,
					identity_get_public_key(responder_id)) &&
			peer_sessions_is_established(chunk_resp.sessions,
					identity_get_public_key(initiator_id))) {
		return;
	}
	if (chunk_ready) {
		side_done(&chunk_ini);
		side_done(&chunk_resp);
	}
	peer_session_config_init(&config);
	config.hs_rate_per_ip = config.hs_burst_per_ip = 1000000000u;
	config.hs_rate_total = config.hs_burst_total = 1000000000u;
	side_init(&chunk_ini, initiator_id, &chunk_resp, 1, &config);
	side_init(&chunk_resp, responder_id, &chunk_ini, 2, &config);
	open_session(&chunk_ini, &chunk_resp, NULL, NULL, &chunk_resp_index);
	chunk_pending = false;
	chunk_ready = true;
}

static void mode_chunks(const uint8_t *data, size_t size) {
	Side *ini = &chunk_ini, *resp = &chunk_resp;
	Endpoint nowhere = {};

	chunk_pair_ensure();
	nowhere.in.sin_family = AF_INET;
	nowhere.in.sin_port = htons(9);
	nowhere.in.sin_addr.s_addr = htonl(0x7f000009u);

	while (size >= 2) {
		uint8_t ctl = data[0];
		size_t len = MIN((size_t) data[1], size - 2);
		uint8_t buf[256];
		Side *to = ctl & 1 ? ini : resp, *from = ctl & 1 ? resp : ini;

		memcpy(buf, data + 2, len);
		data += 2 + len;
		size -= 2 + len;
		if (ctl & 2) {
			if (len >= 5 && buf[0] == PEER_SESSION_TYPE_TRANSPORT) {
				memcpy(buf + 1, &chunk_resp_index, sizeof(chunk_resp_index));
			} else if (len >= 9 && buf[0] == PEER_SESSION_TYPE_RESPONSE) {
				/* A handshake of the initiator's that is never answered. */
				if (!chunk_pending) {
					check(peer_sessions_send(ini->sessions,
							identity_get_public_key(third_id), &nowhere,
							(const uint8_t *) "x", 1) == 0);
					check(ini->out.n == 1);
					memcpy(&chunk_pending_index, ini->out.buf[0] + 1, 4);
					outbox_clear(&ini->out);
					chunk_pending = true;
				}
				memcpy(buf + 5, &chunk_pending_index, sizeof(chunk_pending_index));
			}
		}
		(void) peer_sessions_handle_datagram(to->sessions, &from->ep, buf, len);
		route(ini, resp);
	}
}

static void side_send_seq(Side *from, const uint8_t *bytes, size_t len) {
	uint8_t buf[256 + 5];

	if (from->next_seq >= SEQ_MAX) {
		return;
	}
	buf[0] = 0xA5;
	memcpy(buf + 1, &from->next_seq, 4);
	memcpy(buf + 5, bytes, len);
	if (peer_sessions_send(from->sessions, identity_get_public_key(from->other->id),
			&from->other->ep, buf, len + 5) == 0) {
		from->next_seq++;
	}
}

/* Mode 2's pair, kept across inputs too, and made again every OPS_PAIR_INPUTS. */
#define OPS_PAIR_INPUTS 256
static Side ops_ini, ops_resp;
static unsigned ops_inputs;
static bool ops_ready;

static void ops_pair_ensure(void) {
	PeerSessionConfig config;

	if (ops_ready && ops_inputs++ < OPS_PAIR_INPUTS &&
			ops_ini.next_seq < SEQ_MAX - 256 && ops_resp.next_seq < SEQ_MAX - 256 &&
			peer_sessions_is_established(ops_ini.sessions,
					identity_get_public_key(responder_id)) &&
			peer_sessions_is_established(ops_resp.sessions,
					identity_get_public_key(initiator_id))) {
		return;
	}
	if (ops_ready) {
		side_done(&ops_ini);
		side_done(&ops_resp);
	}
	peer_session_config_init(&config);
	config.rekey_after_messages = 32;
	config.reject_after_messages = 64;
	config.hs_rate_per_ip = config.hs_burst_per_ip = 1000000000u;
	config.hs_rate_total = config.hs_burst_total = 1000000000u;
	side_init(&ops_ini, initiator_id, &ops_resp, 1, &config);
	side_init(&ops_resp, responder_id, &ops_ini, 2, &config);
	open_session(&ops_ini, &ops_resp, NULL, NULL, NULL);
	ops_inputs = 0;
	ops_ready = true;
}

static void mode_ops(const uint8_t *data, size_t size) {
	Side *ini = &ops_ini, *resp = &ops_resp;
	struct {
		Side *to, *from;
		uint8_t *buf;
		size_t len;
	} held[HELD_MAX];
	size_t n_held = 0;

	ops_pair_ensure();

	while (size >= 2) {
		uint8_t op = data[0];
		size_t len = MIN((size_t) data[1], size - 2);
		Side *from = op & 1 ? resp : ini, *to = op & 1 ? ini : resp;
		Outbox o;

		side_send_seq(from, data + 2, len);
		data += 2 + len;
		size -= 2 + len;

		o = from->out;
		from->out.n = 0;
		for (size_t i = 0; i < o.n; i++) {
			switch ((op >> 1) % 4) {
			case 0:
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				break;
			case 1:
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				break;
			case 2:
				if (n_held < HELD_MAX) {
					held[n_held].to = to;
					held[n_held].from = from;
					held[n_held].buf = TAKE_PTR(o.buf[i]);
					held[n_held].len = o.len[i];
					n_held++;
				}
				break;
			default: {
				size_t bit = (op >> 3) % (o.len[i] * 8);

				o.buf[i][bit / 8] ^= 1u << (bit % 8);
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				o.buf[i][bit / 8] ^= 1u << (bit % 8);
				(void) peer_sessions_handle_datagram(to->sessions, &from->ep, o.buf[i],
						o.len[i]);
				break;
			}
			}
			free(o.buf[i]);
		}
		route(ini, resp);
	}
	while (n_held > 0) {
		n_held--;
		(void) peer_sessions_handle_datagram(held[n_held].to->sessions, &held[n_held].from->ep,
				held[n_held].buf, held[n_held].len);
		free(held[n_held].buf);
		route(ini, resp);
	}
}

static void write_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *buf,
		size_t len) {
	char path[4096];
	FILE *f;

	(void) snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	check(f);
	check(fwrite(&mode, 1, 1, f) == 1);
	check(len == 0 || fwrite(buf, 1, len, f) == len);
	check(fclose(f) == 0);
}

/* Valid datagrams of every type as seeds: they are valid in every run (fixed keys). */
static void write_seeds(const char *dir) {
	static const uint8_t ops[] = {
		0, 3, 'a', 'b', 'c', 1, 1, 'd', 2, 2, 'e', 'f', 4, 1, 'g', 6, 0,
		3, 2, 'h', 'i', 0x0e, 1, 'j', 0x1e, 1, 'k', 0, 1, 'l', 0, 1, 'm', 0, 1, 'n',
	};
	uint8_t *init, chunks[2 + 128];
	size_t init_len;
	Side ini, resp;

	side_init(&ini, initiator_id, &resp, 1, NULL);
	side_init(&resp, responder_id, &ini, 2, NULL);
	open_session(&ini, &resp, &init, &init_len, NULL);
	write_seed(dir, "initiation", 0, init, init_len);
	check(peer_sessions_send(ini.sessions, identity_get_public_key(responder_id), &resp.ep,
			(const uint8_t *) "transport", 9) == 0);
	check(ini.out.n == 1);
	write_seed(dir, "transport", 0, ini.out.buf[0], ini.out.len[0]);

	/* Mode 1: that transport datagram, then a response, patched. */
	chunks[0] = 2;
	chunks[1] = (uint8_t) ini.out.len[0];
	memcpy(chunks + 2, ini.out.buf[0], ini.out.len[0]);
	write_seed(dir, "chunks-transport", 1, chunks, 2 + ini.out.len[0]);
	outbox_clear(&ini.out);
	memset(chunks, 0, sizeof(chunks));
	chunks[0] = 3;
	chunks[1] = PEER_SESSION_RESPONSE_SIZE;
	chunks[2] = PEER_SESSION_TYPE_RESPONSE;
	write_seed(dir, "chunks-response", 1, chunks, 2 + PEER_SESSION_RESPONSE_SIZE);
	write_seed(dir, "ops", 2, ops, sizeof(ops));
	free(init);
	side_done(&ini);
	side_done(&resp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	const char *seeds;

	check(identity_crypto_init() == 0);
	check(sd_event_new(&event) >= 0);
	responder_id = identity_from_seed(0x52);
	initiator_id = identity_from_seed(0x49);
	third_id = identity_from_seed(0x33);

	seeds = getenv("P2PCHAT_FUZZ_WRITE_SEEDS");
	if (seeds) {
		write_seeds(seeds);
		exit(EXIT_SUCCESS);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1 || size > WIRE_DATAGRAM_MAX + 1) {
		return 0;
	}
	switch (data[0] % 3) {
	case 0:
		mode_raw(data + 1, size - 1);
		break;
	case 1:
		mode_chunks(data + 1, size - 1);
		break;
	default:
		mode_ops(data + 1, size - 1);
		break;
	}
	return 0;
}
