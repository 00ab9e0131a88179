/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for the native session with the coordinator
 * (common/noise-stream.c and the framing around it), from either side.
 * data[0] chooses the case:
 *   0: the byte stream a responder (the coordinator) reads after the clear
 *      hello: binary frames (LEB128 length + bytes), the first ones handed
 *      to the handshake as the server does, until it fails;
 *   1: a session whose handshake completed (once, for all inputs): the
 *      rest is the plaintext stream the peer sends, sealed here in pieces
 *      whose sizes the input chooses (data[1]), opened by the other side,
 *      fed to the frame decoder of the stream inside, and every frame
 *      parsed as the daemon and the coordinator parse it (a line, or the
 *      list).
 * Oracles: a transport message with a flipped bit is refused and leaves
 * the session as it was; what one side seals the other opens to the same
 * bytes; a handshake fed by the fuzzer never completes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/macro.h"
#include "common/noise-stream.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

static const char hello[] = "hello,alice,native1+noise1";
static Identity *client_id, *server_id;

static void identities(void) {
	if (!client_id) {
		check(identity_generate(&client_id) == 0);
		check(identity_generate(&server_id) == 0);
	}
}

/* Case 0: what a client can make a coordinator's handshake read. */
static void fuzz_handshake(const uint8_t *data, size_t size) {
	_cleanup_(noise_stream_freep) NoiseStream *s = NULL;
	WireFrameDecoder d;

	check(noise_stream_new(NOISE_ROLE_RESPONDER, server_id, hello, strlen(hello), &s) == 0);
	wire_frame_decoder_init(&d, 0);
	wire_frame_decoder_set_binary(&d, NOISE_MAX_MESSAGE);
	while (size > 0) {
		_cleanup_free_ char *frame = NULL;
		uint8_t out[NOISE_STREAM_HANDSHAKE_MAX];
		size_t used = 0, len, out_len = SIZE_MAX;
		int r;

		r = wire_frame_decoder_feed(&d, data, size, &used);
		if (r <= 0) {
			break;
		}
		data += used;
		size -= used;
		check(wire_frame_decoder_take(&d, &frame, &len) == 0);
		check(len <= NOISE_MAX_MESSAGE);
		r = noise_stream_handshake(s, (const uint8_t *) frame, len, out, &out_len);
		if (r < 0) {
			check(!noise_stream_is_ready(s));
			break;
		}
		check(out_len <= NOISE_STREAM_HANDSHAKE_MAX);
		/* A client that guessed the right keys is impossible: never ready. */
		check(r == 0 && !noise_stream_is_ready(s));
	}
	wire_frame_decoder_done(&d);
}

/* One session, made once: its two ends stay in step from input to input. */
static NoiseStream *client, *server;

static void session(void) {
	uint8_t m1[NOISE_STREAM_HANDSHAKE_MAX], m2[NOISE_STREAM_HANDSHAKE_MAX],
		m3[NOISE_STREAM_HANDSHAKE_MAX];
	size_t n1, n2, n3, none;

	if (client) {
		return;
	}
	check(noise_stream_new(NOISE_ROLE_INITIATOR, client_id, hello, strlen(hello), &client) == 0);
	check(noise_stream_new(NOISE_ROLE_RESPONDER, server_id, hello, strlen(hello), &server) == 0);
	check(noise_stream_handshake(client, NULL, 0, m1, &n1) == 0);
	check(noise_stream_handshake(server, m1, n1, m2, &n2) == 0);
	check(noise_stream_handshake(client, m2, n2, m3, &n3) == 1);
	check(noise_stream_handshake(server, m3, n3, m1, &none) == 1 && none == 0);
	check(memcmp(noise_stream_get_remote_key(server), identity_get_public_key(client_id),
			IDENTITY_PUBLIC_KEY_SIZE) == 0);
	check(memcmp(noise_stream_get_remote_key(client), identity_get_public_key(server_id),
			IDENTITY_PUBLIC_KEY_SIZE) == 0);
}

/* Every frame of the stream inside, parsed as the two ends parse them. */
static void parse_frames(WireFrameDecoder *d, const uint8_t *buf, size_t n) {
	while (n > 0) {
		_cleanup_free_ char *frame = NULL;
		_cleanup_free_ WireListEntry *entries = NULL;
		WireMessage m = {};
		size_t used = 0, len, n_entries;
		int r;

		r = wire_frame_decoder_feed(d, buf, n, &used);
		if (r <= 0) {
			return;
		}
		buf += used;
		n -= used;
		check(wire_frame_decoder_take(d, &frame, &len) == 0);
		if (wire_parse_line(frame, len, &m) == 0) {
			wire_message_done(&m);
		}
		(void) wire_parse_list(frame, len, &entries, &n_entries);
	}
}

/* Case 1: what the other end can make a session's stream carry. */
static void fuzz_transport(const uint8_t *data, size_t size) {
	static uint8_t sealed[NOISE_MAX_MESSAGE], forged[NOISE_MAX_MESSAGE];
	WireFrameDecoder d;
	size_t piece;

	if (size < 1) {
		return;
	}
	piece = MIN((size_t) data[0] * 257u + 1u, (size_t) NOISE_MAX_PAYLOAD);
	data++;
	size--;
	session();

	wire_frame_decoder_init(&d, 0);
	while (size > 0) {
		size_t n = MIN(size, piece);

		check(noise_stream_seal(client, data, n, sealed) == 0);
		/* A flipped bit is refused and changes nothing: the true message still opens. */
		memcpy(forged, sealed, n + NOISE_TAG_SIZE);
		forged[(n + NOISE_TAG_SIZE) / 2] ^= 0x01;
		check(noise_stream_open(server, forged, n + NOISE_TAG_SIZE, forged) == -EBADMSG);
		check(noise_stream_open(server, sealed, n + NOISE_TAG_SIZE, sealed) == 0);
		check(memcmp(sealed, data, n) == 0);
		parse_frames(&d, sealed, n);
		data += n;
		size -= n;
	}
	wire_frame_decoder_done(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1) {
		return 0;
	}
	identities();
	switch (data[0] % 2) {
	case 0:
		fuzz_handshake(data + 1, size - 1);
		break;
	case 1:
		fuzz_transport(data + 1, size - 1);
		break;
	}
	return 0;
}
