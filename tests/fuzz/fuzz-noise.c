/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for common/noise.c: what a peer can send.  data[0]
 * chooses the case:
 *   0: an XX responder reads message 1 (its length in data[1..2], big
 *      endian, modulo what is left), writes message 2 and reads message 3
 *      (the rest); once complete, it splits;
 *   1: an IK responder reads message 1 (the rest) and, if it passes,
 *      writes message 2;
 *   2: a transport with a fixed key decrypts the rest, with its counter at
 *      the value of data[1..8] (little endian);
 *   3: the same with that value as the explicit nonce.
 * Every key, the ephemeral ones too, is fixed, so that an input always does
 * the same.  Oracles: a failed read leaves the handshake failed (or, for
 * the transport, the counter unchanged); what decrypts re-encrypts to the
 * same bytes.  The seeds (corpus/fuzz-noise/) are valid messages and
 * ciphertexts made with these keys (initiator static 0x10..0x2f,
 * ephemeral 0x70..0x8f), plus tampered ones.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/noise.h"
#include "tests/fuzz/fuzz.h"

static const uint8_t prologue[] = "p2pchat-fuzz";

static void key_fill(uint8_t k[static NOISE_KEY_SIZE], uint8_t base) {
	for (size_t i = 0; i < NOISE_KEY_SIZE; i++) {
		k[i] = (uint8_t) (base + i);
	}
}

static NoiseHandshake *responder_new(NoisePattern pattern) {
	NoiseHandshake *hs = NULL;
	uint8_t s[NOISE_KEY_SIZE], e[NOISE_KEY_SIZE];

	key_fill(s, 0x40);
	key_fill(e, 0xa0);
	check(noise_handshake_new(pattern, NOISE_ROLE_RESPONDER, prologue, sizeof(prologue) - 1,
			s, NULL, &hs) == 0);
	noise_handshake_set_ephemeral(hs, e);
	return hs;
}

/* Reads @msg; checks the result against the state it leaves. */
static int read_checked(NoiseHandshake *hs, const uint8_t *msg, size_t len) {
	static uint8_t out[NOISE_MAX_MESSAGE];
	size_t out_len = SIZE_MAX;
	int r;

	r = noise_handshake_read(hs, msg, len, out, sizeof(out), &out_len);
	if (r < 0) {
		check(r == -EBADMSG || r == -EINVAL);
		check(out_len == SIZE_MAX);
		check(!noise_handshake_is_our_turn(hs));
		check(!noise_handshake_is_complete(hs));
		check(noise_handshake_read(hs, msg, len, out, sizeof(out), &out_len) == -EBADE);
		return r;
	}
	check(out_len <= len);
	return 0;
}

static void fuzz_xx(const uint8_t *data, size_t size) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *hs = NULL;
	_cleanup_(noise_cipher_freep) NoiseCipher *send = NULL, *recv = NULL;
	uint8_t msg[256];
	size_t len1, len;

	if (size < 2) {
		return;
	}
	len1 = ((size_t) data[0] << 8 | data[1]) % (size - 2 + 1);
	data += 2;
	size -= 2;

	hs = responder_new(NOISE_PATTERN_XX);
	if (read_checked(hs, data, len1) < 0) {
		return;
	}
	check(noise_handshake_is_our_turn(hs));
	if (noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &len) < 0) {
		/* A low-order e. */
		check(!noise_handshake_is_our_turn(hs));
		return;
	}
	check(len == 32 + 48 + 16);
	if (read_checked(hs, data + len1, size - len1) < 0) {
		return;
	}
	check(noise_handshake_is_complete(hs));
	check(noise_handshake_get_remote_static(hs));
	check(noise_handshake_split(hs, &send, &recv) == 0);
}

static void fuzz_ik(const uint8_t *data, size_t size) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *hs = NULL;
	uint8_t msg[256];
	size_t len;

	hs = responder_new(NOISE_PATTERN_IK);
	if (read_checked(hs, data, size) < 0) {
		return;
	}
	check(noise_handshake_get_remote_static(hs));
	check(noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &len) == 0);
	check(len == 32 + 16);
	check(noise_handshake_is_complete(hs));
}

static void fuzz_transport(const uint8_t *data, size_t size, bool explicit_nonce) {
	_cleanup_(noise_cipher_freep) NoiseCipher *c = NULL;
	static uint8_t out[NOISE_MAX_MESSAGE], again[NOISE_MAX_MESSAGE];
	static const uint8_t ad[] = "ad";
	uint8_t k[NOISE_KEY_SIZE];
	uint64_t n = 0;
	int r;

	if (size < 8) {
		return;
	}
	for (size_t i = 0; i < 8; i++) {
		n |= (uint64_t) data[i] << (8 * i);
	}
	data += 8;
	size -= 8;

	key_fill(k, 0x20);
	check(noise_cipher_new(k, explicit_nonce ? 0 : n, &c) == 0);
	if (explicit_nonce) {
		r = noise_cipher_decrypt_nonce(c, n, ad, sizeof(ad) - 1, data, size, out);
		check(noise_cipher_get_nonce(c) == 0);
	} else {
		r = noise_cipher_decrypt(c, ad, sizeof(ad) - 1, data, size, out);
		check(noise_cipher_get_nonce(c) == (r == 0 ? n + 1 : n));
	}
	if (r < 0) {
		check(r == -EBADMSG || r == -EMSGSIZE || r == -EOVERFLOW);
		return;
	}
	check(size >= NOISE_TAG_SIZE);
	check(noise_cipher_encrypt_nonce(c, n, ad, sizeof(ad) - 1, out, size - NOISE_TAG_SIZE,
			again) == 0);
	check(memcmp(again, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1 || size > NOISE_MAX_MESSAGE + 16) {
		return 0;
	}
	switch (data[0] % 4) {
	case 0:
		fuzz_xx(data + 1, size - 1);
		break;
	case 1:
		fuzz_ik(data + 1, size - 1);
		break;
	case 2:
		fuzz_transport(data + 1, size - 1, false);
		break;
	case 3:
		fuzz_transport(data + 1, size - 1, true);
		break;
	}
	return 0;
}
