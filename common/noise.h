/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Noise Protocol Framework (revision 34), for the two handshakes we use:
 * Noise_XX_25519_ChaChaPoly_BLAKE2b (daemon <-> coordinator) and
 * Noise_IK_25519_ChaChaPoly_BLAKE2b (daemon <-> daemon).  Written from the
 * specification; every primitive is libsodium's: X25519
 * (crypto_scalarmult), ChaCha20-Poly1305 IETF with the spec's nonce (4 zero
 * bytes + 64-bit little-endian counter), BLAKE2b-512 (crypto_generichash)
 * and the spec's HMAC/HKDF over it.  Reproduces the cacophony vectors
 * (tests/unit/data/noise-25519-chachapoly-blake2b.json) byte for byte.
 *
 * Secrets are wiped (sodium_memzero) when states are freed or split; tags
 * and keys are compared in constant time.  Nothing here logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define NOISE_KEY_SIZE 32u        /* X25519 keys, cipher keys */
#define NOISE_HASH_SIZE 64u       /* BLAKE2b-512 */
#define NOISE_TAG_SIZE 16u
#define NOISE_MAX_MESSAGE 65535u  /* the spec's limit on any Noise message */
#define NOISE_MAX_PAYLOAD (NOISE_MAX_MESSAGE - NOISE_TAG_SIZE)

typedef enum NoisePattern {
	NOISE_PATTERN_XX,
	NOISE_PATTERN_IK,
	_NOISE_PATTERN_MAX,
	_NOISE_PATTERN_INVALID = -EINVAL,
} NoisePattern;

typedef enum NoiseRole {
	NOISE_ROLE_INITIATOR,
	NOISE_ROLE_RESPONDER,
	_NOISE_ROLE_MAX,
	_NOISE_ROLE_INVALID = -EINVAL,
} NoiseRole;

/* One direction of a transport: key k and counter n (spec 5.1). */
typedef struct NoiseCipher NoiseCipher;

/*
 * noise_cipher_new() - InitializeKey(@k) and SetNonce(@n) of the spec: a
 * cipher from a known key, for tests and fuzzers (handshakes make theirs
 * with noise_handshake_split()).
 * Return: 0, -ENOMEM.
 */
int noise_cipher_new(const uint8_t k[static NOISE_KEY_SIZE], uint64_t n, NoiseCipher **ret);
NoiseCipher *noise_cipher_free(NoiseCipher *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NoiseCipher *, noise_cipher_free);

/*
 * With the cipher's own counter n (then n += 1), as in the spec: @out gets
 * @len + NOISE_TAG_SIZE bytes.  @len at most NOISE_MAX_PAYLOAD.  -EOVERFLOW
 * when n would reach 2^64 - 1.
 */
int noise_cipher_encrypt(NoiseCipher *c, const uint8_t *ad, size_t ad_len,
		const uint8_t *in, size_t len, uint8_t *out);
/*
 * @len includes the tag; @out gets @len - NOISE_TAG_SIZE.  -EBADMSG on a bad
 * tag (n unchanged).  For all four: @in and @out may be the
 * same buffer (decrypted or encrypted in place).
 */
int noise_cipher_decrypt(NoiseCipher *c, const uint8_t *ad, size_t ad_len,
		const uint8_t *in, size_t len, uint8_t *out);

/* The same with an explicit nonce @n (datagram transports); the counter is not used. */
int noise_cipher_encrypt_nonce(const NoiseCipher *c, uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out);
int noise_cipher_decrypt_nonce(const NoiseCipher *c, uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out);

/* Rekey() of the spec: k = the first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros). */
void noise_cipher_rekey(NoiseCipher *c);
uint64_t noise_cipher_get_nonce(const NoiseCipher *c);

typedef struct NoiseHandshake NoiseHandshake;

/*
 * noise_handshake_new() - Initialize() of the spec for @pattern and @role.
 * @prologue: may be empty
 * @s_priv: our X25519 static secret key (its public key is derived)
 * @rs: the responder's X25519 static public key: required for the IK
 *   initiator, NULL otherwise
 * Return: 0, -EINVAL for a missing or unwanted @rs, -ENOMEM, -EIO when
 * libsodium cannot be initialized (sodium_init()).
 */
int noise_handshake_new(NoisePattern pattern, NoiseRole role, const uint8_t *prologue,
		size_t prologue_len, const uint8_t s_priv[static NOISE_KEY_SIZE],
		const uint8_t *rs, NoiseHandshake **ret);
NoiseHandshake *noise_handshake_free(NoiseHandshake *hs);
DEFINE_TRIVIAL_CLEANUP_FUNC(NoiseHandshake *, noise_handshake_free);

/*
 * Use @e_priv as the ephemeral key instead of a random one, before the first
 * write: for the test vectors, and to rebuild an initiation byte for byte
 * when it is retransmitted (daemon/peer-session.c).  @e_priv must be random.
 */
void noise_handshake_set_ephemeral(NoiseHandshake *hs, const uint8_t e_priv[static NOISE_KEY_SIZE]);

/* Whether the next step is ours to write (vs. to read); false once complete. */
bool noise_handshake_is_our_turn(const NoiseHandshake *hs);
bool noise_handshake_is_complete(const NoiseHandshake *hs);

/*
 * noise_handshake_write() - WriteMessage(): the next handshake message with
 * @payload, into @out (room for @out_max bytes); *ret_len its length.
 * Return: 0, -EBADE when it is not our turn, -EMSGSIZE when it does not fit
 * in @out_max or NOISE_MAX_MESSAGE, -EINVAL for an invalid DH result.
 */
int noise_handshake_write(NoiseHandshake *hs, const uint8_t *payload, size_t payload_len,
		uint8_t *out, size_t out_max, size_t *ret_len);

/*
 * noise_handshake_read() - ReadMessage(): check @msg and put its payload in
 * @out (room for @out_max bytes); *ret_len the payload's length.
 * Return: 0, -EBADE when it is not our turn, -EBADMSG when it is too short
 * or fails authentication (the handshake is then failed for good),
 * -EMSGSIZE when the payload does not fit @out_max, -EINVAL for an
 * invalid (low-order) public key.
 */
int noise_handshake_read(NoiseHandshake *hs, const uint8_t *msg, size_t len,
		uint8_t *out, size_t out_max, size_t *ret_len);

/* The remote static public key once it was received (else NULL); borrowed. */
const uint8_t *noise_handshake_get_remote_static(const NoiseHandshake *hs);
/* The handshake hash h (NOISE_HASH_SIZE bytes); final once complete. */
const uint8_t *noise_handshake_get_hash(const NoiseHandshake *hs);

/*
 * noise_handshake_split() - Split() of a complete handshake: the cipher we
 * send with and the one we receive with (initiator: c1 sends; responder: c2
 * sends).  The handshake's secrets are wiped; it may still be asked for its
 * hash and remote static key.
 * Return: 0, -EBADE when it is not complete or was split already, -ENOMEM.
 */
int noise_handshake_split(NoiseHandshake *hs, NoiseCipher **ret_send, NoiseCipher **ret_recv);
