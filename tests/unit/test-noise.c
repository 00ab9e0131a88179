/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/noise.c: the cacophony vectors of XX and IK
 * (tests/unit/data/noise-25519-chachapoly-blake2b.json, found through
 * $P2PCHAT_SOURCE_ROOT) byte for byte, handshake and transport; then what
 * must fail: a wrong responder key, tampered messages, low-order keys,
 * messages out of turn; and explicit nonces and rekeying.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <sodium.h>

#include "common/macro.h"
#include "common/noise.h"
#include "tests/helpers/test-hex.h"

#define VECTORS "tests/unit/data/noise-25519-chachapoly-blake2b.json"

/* The field @key of @o, a hex string, decoded (NULL when absent). */
static uint8_t *vector_hex(json_object *o, const char *key, size_t *ret_len) {
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		return NULL;
	}
	assert_true(json_object_is_type(v, json_type_string));
	return unhex(json_object_get_string(v), ret_len);
}

static uint8_t *vector_key(json_object *o, const char *key) {
	uint8_t *k;
	size_t len;

	k = vector_hex(o, key, &len);
	assert_non_null(k);
	assert_int_equal(len, NOISE_KEY_SIZE);
	return k;
}

static void run_vector(json_object *vec, NoisePattern pattern) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *init = NULL, *resp = NULL;
	_cleanup_(noise_cipher_freep) NoiseCipher *init_send = NULL, *init_recv = NULL,
			*resp_send = NULL, *resp_recv = NULL;
	_cleanup_free_ uint8_t *init_prologue = NULL, *resp_prologue = NULL, *init_static = NULL,
			*init_ephemeral = NULL, *init_remote_static = NULL, *resp_static = NULL,
			*resp_ephemeral = NULL, *hash = NULL;
	uint8_t init_pub[NOISE_KEY_SIZE], resp_pub[NOISE_KEY_SIZE];
	size_t init_prologue_len, resp_prologue_len, hash_len, n_messages;
	size_t n_handshake = pattern == NOISE_PATTERN_XX ? 3 : 2;
	json_object *messages;

	init_prologue = vector_hex(vec, "init_prologue", &init_prologue_len);
	resp_prologue = vector_hex(vec, "resp_prologue", &resp_prologue_len);
	assert_non_null(init_prologue);
	assert_non_null(resp_prologue);
	init_static = vector_key(vec, "init_static");
	init_ephemeral = vector_key(vec, "init_ephemeral");
	resp_static = vector_key(vec, "resp_static");
	resp_ephemeral = vector_key(vec, "resp_ephemeral");
	if (pattern == NOISE_PATTERN_IK) {
		init_remote_static = vector_key(vec, "init_remote_static");
	}
	hash = vector_hex(vec, "handshake_hash", &hash_len);
	assert_non_null(hash);
	assert_int_equal(hash_len, NOISE_HASH_SIZE);
	assert_int_equal(crypto_scalarmult_base(init_pub, init_static), 0);
	assert_int_equal(crypto_scalarmult_base(resp_pub, resp_static), 0);

	assert_int_equal(noise_handshake_new(pattern, NOISE_ROLE_INITIATOR, init_prologue,
			init_prologue_len, init_static, init_remote_static, &init), 0);
	assert_int_equal(noise_handshake_new(pattern, NOISE_ROLE_RESPONDER, resp_prologue,
			resp_prologue_len, resp_static, NULL, &resp), 0);
	noise_handshake_set_ephemeral(init, init_ephemeral);
	noise_handshake_set_ephemeral(resp, resp_ephemeral);

	assert_true(json_object_object_get_ex(vec, "messages", &messages));
	assert_true(json_object_is_type(messages, json_type_array));
	n_messages = json_object_array_length(messages);
	assert_true(n_messages > n_handshake);

	for (size_t i = 0; i < n_messages; i++) {
		json_object *m = json_object_array_get_idx(messages, i);
		_cleanup_free_ uint8_t *payload = NULL, *ciphertext = NULL;
		uint8_t out[NOISE_MAX_MESSAGE], back[NOISE_MAX_MESSAGE];
		size_t payload_len, ciphertext_len, len, back_len;
		/* Messages alternate, the initiator first, also after the handshake. */
		bool from_init = i % 2 == 0;

		payload = vector_hex(m, "payload", &payload_len);
		ciphertext = vector_hex(m, "ciphertext", &ciphertext_len);
		assert_non_null(payload);
		assert_non_null(ciphertext);

		if (i < n_handshake) {
			NoiseHandshake *w = from_init ? init : resp, *r = from_init ? resp : init;

			assert_true(noise_handshake_is_our_turn(w));
			assert_false(noise_handshake_is_our_turn(r));
			assert_int_equal(noise_handshake_write(w, payload, payload_len, out,
					sizeof(out), &len), 0);
			assert_int_equal(len, ciphertext_len);
			assert_memory_equal(out, ciphertext, len);
			assert_int_equal(noise_handshake_read(r, out, len, back, sizeof(back),
					&back_len), 0);
			assert_int_equal(back_len, payload_len);
			assert_memory_equal(back, payload, payload_len);
			continue;
		}
		if (i == n_handshake) {
			assert_true(noise_handshake_is_complete(init));
			assert_true(noise_handshake_is_complete(resp));
			assert_false(noise_handshake_is_our_turn(init));
			assert_false(noise_handshake_is_our_turn(resp));
			assert_memory_equal(noise_handshake_get_hash(init), hash, NOISE_HASH_SIZE);
			assert_memory_equal(noise_handshake_get_hash(resp), hash, NOISE_HASH_SIZE);
			assert_memory_equal(noise_handshake_get_remote_static(init), resp_pub,
					NOISE_KEY_SIZE);
			assert_memory_equal(noise_handshake_get_remote_static(resp), init_pub,
					NOISE_KEY_SIZE);
			assert_int_equal(noise_handshake_split(init, &init_send, &init_recv), 0);
			assert_int_equal(noise_handshake_split(resp, &resp_send, &resp_recv), 0);
			/* The hash and the remote key outlive Split(). */
			assert_memory_equal(noise_handshake_get_hash(init), hash, NOISE_HASH_SIZE);
			assert_memory_equal(noise_handshake_get_remote_static(resp), init_pub,
					NOISE_KEY_SIZE);
		}
		assert_int_equal(ciphertext_len, payload_len + NOISE_TAG_SIZE);
		assert_int_equal(noise_cipher_encrypt(from_init ? init_send : resp_send, NULL, 0,
				payload, payload_len, out), 0);
		assert_memory_equal(out, ciphertext, ciphertext_len);
		assert_int_equal(noise_cipher_decrypt(from_init ? resp_recv : init_recv, NULL, 0,
				out, ciphertext_len, back), 0);
		assert_memory_equal(back, payload, payload_len);
	}
	assert_non_null(init_send);
}

static void test_noise_vectors(void **state) {
	_cleanup_(json_object_putp) json_object *root = NULL;
	_cleanup_free_ char *path = NULL;
	const char *src = getenv("P2PCHAT_SOURCE_ROOT");
	json_object *vectors;
	bool found_xx = false, found_ik = false;

	if (!src) {
		fail_msg("P2PCHAT_SOURCE_ROOT is not set: run this test through 'meson test'");
	}
	assert_true(asprintf(&path, "%s/%s", src, VECTORS) > 0);
	root = json_object_from_file(path);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "vectors", &vectors));
	assert_true(json_object_is_type(vectors, json_type_array));

	for (size_t i = 0; i < json_object_array_length(vectors); i++) {
		json_object *vec = json_object_array_get_idx(vectors, i), *name;
		const char *s;

		assert_true(json_object_object_get_ex(vec, "protocol_name", &name));
		s = json_object_get_string(name);
		if (streq(s, "Noise_XX_25519_ChaChaPoly_BLAKE2b")) {
			run_vector(vec, NOISE_PATTERN_XX);
			found_xx = true;
		} else if (streq(s, "Noise_IK_25519_ChaChaPoly_BLAKE2b")) {
			run_vector(vec, NOISE_PATTERN_IK);
			found_ik = true;
		}
	}
	assert_true(found_xx);
	assert_true(found_ik);
}

/* Fixed keys for the tests that are not vectors. */
static void key_fill(uint8_t k[static NOISE_KEY_SIZE], uint8_t base) {
	for (size_t i = 0; i < NOISE_KEY_SIZE; i++) {
		k[i] = (uint8_t) (base + i);
	}
}

typedef struct Pair {
	NoiseHandshake *init, *resp;
} Pair;

static void pair_done(Pair *p) {
	p->init = noise_handshake_free(p->init);
	p->resp = noise_handshake_free(p->resp);
}

static void pair_new(NoisePattern pattern, Pair *ret) {
	static const uint8_t prologue[] = "p";
	uint8_t init_s[NOISE_KEY_SIZE], resp_s[NOISE_KEY_SIZE], resp_pub[NOISE_KEY_SIZE];
	uint8_t init_e[NOISE_KEY_SIZE], resp_e[NOISE_KEY_SIZE];

	key_fill(init_s, 0x10);
	key_fill(resp_s, 0x40);
	key_fill(init_e, 0x70);
	key_fill(resp_e, 0xa0);
	assert_int_equal(crypto_scalarmult_base(resp_pub, resp_s), 0);
	assert_int_equal(noise_handshake_new(pattern, NOISE_ROLE_INITIATOR, prologue, 1, init_s,
			pattern == NOISE_PATTERN_IK ? resp_pub : NULL, &ret->init), 0);
	assert_int_equal(noise_handshake_new(pattern, NOISE_ROLE_RESPONDER, prologue, 1, resp_s,
			NULL, &ret->resp), 0);
	noise_handshake_set_ephemeral(ret->init, init_e);
	noise_handshake_set_ephemeral(ret->resp, resp_e);
}

/* Writes the next message of @w and reads it at @r, with a small payload. */
static void pass(NoiseHandshake *w, NoiseHandshake *r) {
	uint8_t msg[256], out[64];
	size_t len, out_len;

	assert_int_equal(noise_handshake_write(w, (const uint8_t *) "hi", 2, msg, sizeof(msg),
			&len), 0);
	assert_int_equal(noise_handshake_read(r, msg, len, out, sizeof(out), &out_len), 0);
	assert_int_equal(out_len, 2);
	assert_memory_equal(out, "hi", 2);
}

/* A complete XX handshake, split. */
static void transport_new(NoiseCipher **ret_init_send, NoiseCipher **ret_init_recv,
		NoiseCipher **ret_resp_send, NoiseCipher **ret_resp_recv) {
	_cleanup_(pair_done) Pair p = {};

	pair_new(NOISE_PATTERN_XX, &p);
	pass(p.init, p.resp);
	pass(p.resp, p.init);
	pass(p.init, p.resp);
	assert_int_equal(noise_handshake_split(p.init, ret_init_send, ret_init_recv), 0);
	assert_int_equal(noise_handshake_split(p.resp, ret_resp_send, ret_resp_recv), 0);
}

static void test_noise_new_checks_rs(void **state) {
	NoiseHandshake *hs = NULL;
	uint8_t s[NOISE_KEY_SIZE], rs[NOISE_KEY_SIZE];

	key_fill(s, 1);
	key_fill(rs, 9);
	assert_int_equal(noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_INITIATOR, NULL, 0, s,
			NULL, &hs), -EINVAL);
	assert_int_equal(noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_RESPONDER, NULL, 0, s,
			rs, &hs), -EINVAL);
	assert_int_equal(noise_handshake_new(NOISE_PATTERN_XX, NOISE_ROLE_INITIATOR, NULL, 0, s,
			rs, &hs), -EINVAL);
	assert_int_equal(noise_handshake_new(_NOISE_PATTERN_MAX, NOISE_ROLE_INITIATOR, NULL, 0, s,
			NULL, &hs), -EINVAL);
	assert_null(hs);
}

static void test_noise_ik_wrong_responder_key(void **state) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *init = NULL, *resp = NULL;
	uint8_t init_s[NOISE_KEY_SIZE], resp_s[NOISE_KEY_SIZE], other[NOISE_KEY_SIZE];
	uint8_t other_pub[NOISE_KEY_SIZE], msg[256], out[64];
	size_t len, out_len = 4242;

	key_fill(init_s, 0x10);
	key_fill(resp_s, 0x40);
	key_fill(other, 0x41);
	assert_int_equal(crypto_scalarmult_base(other_pub, other), 0);
	assert_int_equal(noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_INITIATOR, NULL, 0,
			init_s, other_pub, &init), 0);
	assert_int_equal(noise_handshake_new(NOISE_PATTERN_IK, NOISE_ROLE_RESPONDER, NULL, 0,
			resp_s, NULL, &resp), 0);

	assert_int_equal(noise_handshake_write(init, (const uint8_t *) "x", 1, msg, sizeof(msg),
			&len), 0);
	assert_int_equal(noise_handshake_read(resp, msg, len, out, sizeof(out), &out_len),
			-EBADMSG);
	assert_int_equal(out_len, 4242);
	assert_null(noise_handshake_get_remote_static(resp));
	/* Failed for good. */
	assert_false(noise_handshake_is_our_turn(resp));
	assert_false(noise_handshake_is_complete(resp));
	assert_int_equal(noise_handshake_read(resp, msg, len, out, sizeof(out), &out_len), -EBADE);
	assert_int_equal(noise_handshake_write(resp, NULL, 0, msg, sizeof(msg), &len), -EBADE);
}

static void test_noise_tampered_handshake(void **state) {
	/* XX: one bit of message 2 or 3 (they authenticate everything so far). */
	for (size_t which = 1; which <= 2; which++) {
		for (size_t byte = 0;; byte++) {
			_cleanup_(pair_done) Pair p = {};
			NoiseHandshake *w, *r;
			uint8_t msg[256], out[64];
			size_t len, out_len;

			pair_new(NOISE_PATTERN_XX, &p);
			pass(p.init, p.resp);
			if (which == 2) {
				pass(p.resp, p.init);
			}
			w = which == 1 ? p.resp : p.init;
			r = which == 1 ? p.init : p.resp;
			assert_int_equal(noise_handshake_write(w, (const uint8_t *) "hi", 2, msg,
					sizeof(msg), &len), 0);
			if (byte >= len) {
				break;
			}
			msg[byte] ^= 1u << (byte % 8);
			assert_int_equal(noise_handshake_read(r, msg, len, out, sizeof(out),
					&out_len), -EBADMSG);
			assert_false(noise_handshake_is_our_turn(r));
		}
	}

	/* Message 1 is not authenticated, but it is in h: message 2 then fails. */
	{
		_cleanup_(pair_done) Pair p = {};
		uint8_t msg[256], out[64];
		size_t len, out_len;

		pair_new(NOISE_PATTERN_XX, &p);
		assert_int_equal(noise_handshake_write(p.init, (const uint8_t *) "hi", 2, msg,
				sizeof(msg), &len), 0);
		msg[len - 1] ^= 0x80;
		assert_int_equal(noise_handshake_read(p.resp, msg, len, out, sizeof(out), &out_len),
				0);
		assert_int_equal(noise_handshake_write(p.resp, NULL, 0, msg, sizeof(msg), &len), 0);
		assert_int_equal(noise_handshake_read(p.init, msg, len, out, sizeof(out), &out_len),
				-EBADMSG);
	}

	/* IK: one bit of message 1. */
	{
		_cleanup_(pair_done) Pair p = {};
		uint8_t msg[256], out[64];
		size_t len, out_len;

		pair_new(NOISE_PATTERN_IK, &p);
		assert_int_equal(noise_handshake_write(p.init, (const uint8_t *) "hi", 2, msg,
				sizeof(msg), &len), 0);
		msg[40] ^= 0x04;
		assert_int_equal(noise_handshake_read(p.resp, msg, len, out, sizeof(out), &out_len),
				-EBADMSG);
	}
}

static void test_noise_truncated_handshake(void **state) {
	_cleanup_(pair_done) Pair p = {};
	uint8_t msg[256], out[64];
	size_t len, out_len;

	pair_new(NOISE_PATTERN_IK, &p);
	assert_int_equal(noise_handshake_write(p.init, NULL, 0, msg, sizeof(msg), &len), 0);
	/* e, encrypted s, the empty payload's tag. */
	assert_int_equal(len, 32 + 48 + 16);
	assert_int_equal(noise_handshake_read(p.resp, msg, len - 1, out, sizeof(out), &out_len),
			-EBADMSG);
	assert_int_equal(noise_handshake_read(p.resp, msg, len, out, sizeof(out), &out_len),
			-EBADE);
}

static void test_noise_low_order_key(void **state) {
	uint8_t msg[256] = {}, out[64];
	size_t len, out_len;

	/* XX: an all-zero e is read, then the responder's ee is refused. */
	{
		_cleanup_(pair_done) Pair p = {};

		pair_new(NOISE_PATTERN_XX, &p);
		assert_int_equal(noise_handshake_read(p.resp, msg, 32, out, sizeof(out), &out_len),
				0);
		assert_int_equal(noise_handshake_write(p.resp, NULL, 0, msg, sizeof(msg), &len),
				-EINVAL);
		assert_false(noise_handshake_is_our_turn(p.resp));
	}
	/* IK: es at the responder, on reading. */
	{
		_cleanup_(pair_done) Pair p = {};

		pair_new(NOISE_PATTERN_IK, &p);
		memset(msg, 0, sizeof(msg));
		assert_int_equal(noise_handshake_read(p.resp, msg, 32 + 48 + 16, out, sizeof(out),
				&out_len), -EINVAL);
	}
}

static void test_noise_out_of_turn(void **state) {
	_cleanup_(pair_done) Pair p = {};
	_cleanup_(noise_cipher_freep) NoiseCipher *send = NULL, *recv = NULL;
	uint8_t msg[256], out[64];
	size_t len = 4242, out_len;

	pair_new(NOISE_PATTERN_XX, &p);
	assert_false(noise_handshake_is_our_turn(p.resp));
	assert_int_equal(noise_handshake_write(p.resp, NULL, 0, msg, sizeof(msg), &len), -EBADE);
	assert_int_equal(len, 4242);
	memset(msg, 0x55, 32);
	assert_int_equal(noise_handshake_read(p.init, msg, 32, out, sizeof(out), &out_len), -EBADE);
	assert_int_equal(noise_handshake_split(p.init, &send, &recv), -EBADE);

	/* Out of turn is no failure: the handshake goes on. */
	pass(p.init, p.resp);
	assert_int_equal(noise_handshake_write(p.init, NULL, 0, msg, sizeof(msg), &len), -EBADE);
	pass(p.resp, p.init);
	pass(p.init, p.resp);
	assert_int_equal(noise_handshake_write(p.init, NULL, 0, msg, sizeof(msg), &len), -EBADE);
	assert_int_equal(noise_handshake_write(p.resp, NULL, 0, msg, sizeof(msg), &len), -EBADE);
	assert_int_equal(noise_handshake_split(p.init, &send, &recv), 0);
	send = noise_cipher_free(send);
	recv = noise_cipher_free(recv);
	assert_int_equal(noise_handshake_split(p.init, &send, &recv), -EBADE);
	assert_null(send);
}

static void test_noise_message_size(void **state) {
	_cleanup_(pair_done) Pair p = {};
	uint8_t msg[256], out[64];
	size_t len, out_len;

	pair_new(NOISE_PATTERN_XX, &p);
	/* e + "hi" is 34 bytes. */
	assert_int_equal(noise_handshake_write(p.init, (const uint8_t *) "hi", 2, msg, 33, &len),
			-EMSGSIZE);
	assert_int_equal(noise_handshake_write(p.init, (const uint8_t *) "hi", 2, msg, 34, &len),
			0);
	assert_int_equal(len, 34);
	/* A payload that does not fit the caller's buffer leaves the handshake usable. */
	assert_int_equal(noise_handshake_read(p.resp, msg, len, out, 1, &out_len), -EMSGSIZE);
	assert_int_equal(noise_handshake_read(p.resp, msg, len, out, 2, &out_len), 0);
	assert_int_equal(out_len, 2);
}

static void test_noise_transport_tampered(void **state) {
	_cleanup_(noise_cipher_freep) NoiseCipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
	uint8_t ct[64], bad[64], pt[64];

	transport_new(&is, &ir, &rs, &rr);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, (const uint8_t *) "hello", 5, ct), 0);
	assert_int_equal(noise_cipher_get_nonce(is), 1);

	for (size_t i = 0; i < 5 + NOISE_TAG_SIZE; i++) {
		memcpy(bad, ct, sizeof(bad));
		bad[i] ^= 0x01;
		assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, bad, 5 + NOISE_TAG_SIZE, pt),
				-EBADMSG);
		assert_int_equal(noise_cipher_get_nonce(rr), 0);
	}
	/* Other associated data, a short message. */
	assert_int_equal(noise_cipher_decrypt(rr, (const uint8_t *) "ad", 2, ct,
			5 + NOISE_TAG_SIZE, pt), -EBADMSG);
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, ct, NOISE_TAG_SIZE - 1, pt), -EBADMSG);
	assert_int_equal(noise_cipher_get_nonce(rr), 0);

	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, ct, 5 + NOISE_TAG_SIZE, pt), 0);
	assert_memory_equal(pt, "hello", 5);
	assert_int_equal(noise_cipher_get_nonce(rr), 1);
	/* A replay fails: the counter moved on. */
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, ct, 5 + NOISE_TAG_SIZE, pt), -EBADMSG);
}

static void test_noise_explicit_nonce(void **state) {
	_cleanup_(noise_cipher_freep) NoiseCipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
	uint8_t ct[64], ct0[64], pt[64];

	transport_new(&is, &ir, &rs, &rr);
	assert_int_equal(noise_cipher_encrypt_nonce(is, 7, (const uint8_t *) "ad", 2,
			(const uint8_t *) "datagram", 8, ct), 0);
	assert_int_equal(noise_cipher_get_nonce(is), 0);
	assert_int_equal(noise_cipher_decrypt_nonce(rr, 7, (const uint8_t *) "ad", 2, ct,
			8 + NOISE_TAG_SIZE, pt), 0);
	assert_memory_equal(pt, "datagram", 8);
	assert_int_equal(noise_cipher_decrypt_nonce(rr, 6, (const uint8_t *) "ad", 2, ct,
			8 + NOISE_TAG_SIZE, pt), -EBADMSG);
	/* Replays are the caller's business with explicit nonces. */
	assert_int_equal(noise_cipher_decrypt_nonce(rr, 7, (const uint8_t *) "ad", 2, ct,
			8 + NOISE_TAG_SIZE, pt), 0);
	assert_int_equal(noise_cipher_get_nonce(rr), 0);
	assert_int_equal(noise_cipher_encrypt_nonce(is, UINT64_MAX, NULL, 0, pt, 1, ct),
			-EOVERFLOW);

	/* Nonce n is the counter's n. */
	assert_int_equal(noise_cipher_encrypt_nonce(is, 0, NULL, 0, (const uint8_t *) "x", 1, ct0),
			0);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, (const uint8_t *) "x", 1, ct), 0);
	assert_memory_equal(ct, ct0, 1 + NOISE_TAG_SIZE);
}

static void test_noise_rekey(void **state) {
	_cleanup_(noise_cipher_freep) NoiseCipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
	uint8_t before[64], after[64], pt[64];

	transport_new(&is, &ir, &rs, &rr);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, (const uint8_t *) "one", 3, before), 0);
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, before, 3 + NOISE_TAG_SIZE, pt), 0);
	assert_int_equal(noise_cipher_encrypt_nonce(is, 1, NULL, 0, (const uint8_t *) "two", 3,
			before), 0);

	noise_cipher_rekey(is);
	/* Rekey() keeps the counter. */
	assert_int_equal(noise_cipher_get_nonce(is), 1);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, (const uint8_t *) "two", 3, after), 0);
	assert_memory_not_equal(before, after, 3 + NOISE_TAG_SIZE);

	/* The old key no longer opens it; after the same rekey it does. */
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, after, 3 + NOISE_TAG_SIZE, pt),
			-EBADMSG);
	noise_cipher_rekey(rr);
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, after, 3 + NOISE_TAG_SIZE, pt), 0);
	assert_memory_equal(pt, "two", 3);

	/* The other direction is untouched. */
	assert_int_equal(noise_cipher_encrypt(rs, NULL, 0, (const uint8_t *) "back", 4, after), 0);
	assert_int_equal(noise_cipher_decrypt(ir, NULL, 0, after, 4 + NOISE_TAG_SIZE, pt), 0);
	assert_memory_equal(pt, "back", 4);
}

static void test_noise_payload_limits(void **state) {
	_cleanup_(noise_cipher_freep) NoiseCipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
	_cleanup_free_ uint8_t *buf = NULL, *out = NULL;

	transport_new(&is, &ir, &rs, &rr);
	buf = calloc(1, NOISE_MAX_MESSAGE + 1);
	out = calloc(1, NOISE_MAX_MESSAGE + 1);
	assert_non_null(buf);
	assert_non_null(out);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, buf, NOISE_MAX_PAYLOAD + 1, out),
			-EMSGSIZE);
	assert_int_equal(noise_cipher_get_nonce(is), 0);
	assert_int_equal(noise_cipher_encrypt(is, NULL, 0, buf, NOISE_MAX_PAYLOAD, out), 0);
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, out, NOISE_MAX_MESSAGE, buf), 0);
	assert_int_equal(noise_cipher_decrypt(rr, NULL, 0, out, NOISE_MAX_MESSAGE + 1, buf),
			-EMSGSIZE);
}

static void test_noise_counter_overflow(void **state) {
	_cleanup_(noise_cipher_freep) NoiseCipher *send = NULL, *recv = NULL;
	uint8_t k[NOISE_KEY_SIZE], ct[64], pt[64];

	key_fill(k, 0x33);
	assert_int_equal(noise_cipher_new(k, UINT64_MAX - 1, &send), 0);
	assert_int_equal(noise_cipher_new(k, UINT64_MAX - 1, &recv), 0);
	assert_int_equal(noise_cipher_encrypt(send, NULL, 0, (const uint8_t *) "last", 4, ct), 0);
	assert_int_equal(noise_cipher_get_nonce(send), UINT64_MAX);
	/* 2^64 - 1 is reserved: no more messages. */
	assert_int_equal(noise_cipher_encrypt(send, NULL, 0, (const uint8_t *) "more", 4, pt),
			-EOVERFLOW);
	assert_int_equal(noise_cipher_get_nonce(send), UINT64_MAX);
	assert_int_equal(noise_cipher_decrypt(recv, NULL, 0, ct, 4 + NOISE_TAG_SIZE, pt), 0);
	assert_memory_equal(pt, "last", 4);
	assert_int_equal(noise_cipher_decrypt(recv, NULL, 0, ct, 4 + NOISE_TAG_SIZE, pt),
			-EOVERFLOW);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noise_vectors),
		cmocka_unit_test(test_noise_new_checks_rs),
		cmocka_unit_test(test_noise_ik_wrong_responder_key),
		cmocka_unit_test(test_noise_tampered_handshake),
		cmocka_unit_test(test_noise_truncated_handshake),
		cmocka_unit_test(test_noise_low_order_key),
		cmocka_unit_test(test_noise_out_of_turn),
		cmocka_unit_test(test_noise_message_size),
		cmocka_unit_test(test_noise_transport_tampered),
		cmocka_unit_test(test_noise_explicit_nonce),
		cmocka_unit_test(test_noise_rekey),
		cmocka_unit_test(test_noise_payload_limits),
		cmocka_unit_test(test_noise_counter_overflow),
	};

	return cmocka_run_group_tests_name("noise", tests, NULL, NULL);
}
