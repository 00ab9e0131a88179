/* SPDX-License-Identifier: MIT */

/*
 * The Noise Protocol Framework, revision 34, for XX and IK over
 * 25519/ChaChaPoly/BLAKE2b: the spec's CipherState (NoiseCipher, also the
 * transport after Split()), SymmetricState (embedded in the handshake) and
 * HandshakeState (NoiseHandshake).  Both objects are heap allocated, owned
 * by their one caller, and wiped with sodium_memzero() when freed; Split()
 * wipes the handshake's keys at once and leaves only h and rs readable.
 *
 * A handshake that fails while processing a message (bad tag, low-order
 * key, truncated message) has already mixed part of that message into its
 * state, so it is failed for good: every later write or read is -EBADE.
 * Checks that need no state change (whose turn, sizes against the caller's
 * buffers) come first and leave it usable.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/noise.h"

#define HASHLEN NOISE_HASH_SIZE
#define BLOCKLEN 128u
#define DHLEN NOISE_KEY_SIZE
/* Reserved by the spec for Rekey(): the counter never reaches it. */
#define NONCE_MAX UINT64_MAX
#define NONCE_SIZE crypto_aead_chacha20poly1305_IETF_NPUBBYTES

struct NoiseCipher {
	uint8_t k[NOISE_KEY_SIZE];
	uint64_t n;
};

/* The message patterns' tokens (spec 7). */
typedef enum Token {
	TOKEN_E,
	TOKEN_S,
	TOKEN_EE,
	TOKEN_ES,
	TOKEN_SE,
	TOKEN_SS,
	_TOKEN_MAX,
	_TOKEN_INVALID = -EINVAL,
} Token;

#define MAX_TOKENS 4

typedef struct MessagePattern {
	size_t n_tokens;
	Token tokens[MAX_TOKENS];
} MessagePattern;

typedef struct HandshakePattern {
	const char *protocol_name;
	/* IK's "<- s": the responder's static key is known before the first message. */
	bool responder_static_premessage;
	size_t n_messages;
	MessagePattern messages[3];
} HandshakePattern;

static const HandshakePattern handshake_patterns[_NOISE_PATTERN_MAX] = {
	[NOISE_PATTERN_XX] = {
		.protocol_name = "Noise_XX_25519_ChaChaPoly_BLAKE2b",
		.n_messages = 3,
		.messages = {
			{ 1, { TOKEN_E } },
			{ 4, { TOKEN_E, TOKEN_EE, TOKEN_S, TOKEN_ES } },
			{ 2, { TOKEN_S, TOKEN_SE } },
		},
	},
	[NOISE_PATTERN_IK] = {
		.protocol_name = "Noise_IK_25519_ChaChaPoly_BLAKE2b",
		.responder_static_premessage = true,
		.n_messages = 2,
		.messages = {
			{ 4, { TOKEN_E, TOKEN_ES, TOKEN_S, TOKEN_SS } },
			{ 3, { TOKEN_E, TOKEN_EE, TOKEN_SE } },
		},
	},
};

struct NoiseHandshake {
	const HandshakePattern *pattern;
	NoiseRole role;

	/* SymmetricState, with its CipherState. */
	uint8_t ck[HASHLEN];
	uint8_t h[HASHLEN];
	NoiseCipher cipher;
	bool has_key;

	uint8_t s_priv[DHLEN], s_pub[DHLEN];
	uint8_t e_priv[DHLEN], e_pub[DHLEN];
	uint8_t rs[DHLEN], re[DHLEN];
	bool has_e, has_rs, has_re;

	size_t message; /* index of the next message */
	bool failed;
	bool split;
};

static void nonce_encode(uint64_t n, uint8_t ret[static NONCE_SIZE]) {
	/* 32 zero bits, then the counter little-endian (spec 12.3). */
	memset(ret, 0, 4);
	for (size_t i = 0; i < 8; i++) {
		ret[4 + i] = (uint8_t) (n >> (8 * i));
	}
}

static void encrypt_raw(const uint8_t k[static NOISE_KEY_SIZE], uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out) {
	uint8_t nonce[NONCE_SIZE];

	nonce_encode(n, nonce);
	(void) crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, ad_len, NULL,
			nonce, k);
}

/* @len includes the tag.  -EBADMSG on a bad tag. */
static int decrypt_raw(const uint8_t k[static NOISE_KEY_SIZE], uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out) {
	uint8_t nonce[NONCE_SIZE];
	uint8_t dummy;

	assert(len >= NOISE_TAG_SIZE);

	nonce_encode(n, nonce);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out ? out : &dummy, NULL, NULL, in, len,
			ad, ad_len, nonce, k) != 0) {
		return -EBADMSG;
	}
	return 0;
}

int noise_cipher_new(const uint8_t k[static NOISE_KEY_SIZE], uint64_t n, NoiseCipher **ret) {
	NoiseCipher *c;

	assert(k);
	assert(ret);

	c = malloc(sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	memcpy(c->k, k, NOISE_KEY_SIZE);
	c->n = n;
	*ret = c;
	return 0;
}

NoiseCipher *noise_cipher_free(NoiseCipher *c) {
	if (!c) {
		return NULL;
	}
	sodium_memzero(c, sizeof(*c));
	return mfree(c);
}

int noise_cipher_encrypt(NoiseCipher *c, const uint8_t *ad, size_t ad_len,
		const uint8_t *in, size_t len, uint8_t *out) {
	assert(c);

	if (len > NOISE_MAX_PAYLOAD) {
		return -EMSGSIZE;
	}
	if (c->n == NONCE_MAX) {
		return -EOVERFLOW;
	}
	encrypt_raw(c->k, c->n, ad, ad_len, in, len, out);
	c->n++;
	return 0;
}

int noise_cipher_decrypt(NoiseCipher *c, const uint8_t *ad, size_t ad_len,
		const uint8_t *in, size_t len, uint8_t *out) {
	int r;

	assert(c);

	if (len > NOISE_MAX_MESSAGE) {
		return -EMSGSIZE;
	}
	if (len < NOISE_TAG_SIZE) {
		return -EBADMSG;
	}
	if (c->n == NONCE_MAX) {
		return -EOVERFLOW;
	}
	r = decrypt_raw(c->k, c->n, ad, ad_len, in, len, out);
	if (r < 0) {
		return r;
	}
	c->n++;
	return 0;
}

int noise_cipher_encrypt_nonce(const NoiseCipher *c, uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out) {
	assert(c);

	if (len > NOISE_MAX_PAYLOAD) {
		return -EMSGSIZE;
	}
	if (n == NONCE_MAX) {
		return -EOVERFLOW;
	}
	encrypt_raw(c->k, n, ad, ad_len, in, len, out);
	return 0;
}

int noise_cipher_decrypt_nonce(const NoiseCipher *c, uint64_t n, const uint8_t *ad,
		size_t ad_len, const uint8_t *in, size_t len, uint8_t *out) {
	assert(c);

	if (len > NOISE_MAX_MESSAGE) {
		return -EMSGSIZE;
	}
	if (len < NOISE_TAG_SIZE) {
		return -EBADMSG;
	}
	if (n == NONCE_MAX) {
		return -EOVERFLOW;
	}
	return decrypt_raw(c->k, n, ad, ad_len, in, len, out);
}

void noise_cipher_rekey(NoiseCipher *c) {
	static const uint8_t zeros[NOISE_KEY_SIZE] = {};
	uint8_t out[NOISE_KEY_SIZE + NOISE_TAG_SIZE];

	assert(c);

	encrypt_raw(c->k, NONCE_MAX, NULL, 0, zeros, sizeof(zeros), out);
	memcpy(c->k, out, NOISE_KEY_SIZE);
	sodium_memzero(out, sizeof(out));
}

uint64_t noise_cipher_get_nonce(const NoiseCipher *c) {
	assert(c);
	return c->n;
}

/* HASH(a || b) */
static void hash2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		uint8_t ret[static HASHLEN]) {
	crypto_generichash_state st;

	(void) crypto_generichash_init(&st, NULL, 0, HASHLEN);
	(void) crypto_generichash_update(&st, a, a_len);
	(void) crypto_generichash_update(&st, b, b_len);
	(void) crypto_generichash_final(&st, ret, HASHLEN);
	sodium_memzero(&st, sizeof(st));
}

/* HMAC-HASH(key, a || b) of RFC 2104 with the spec's BLOCKLEN; every key here is HASHLEN bytes. */
static void hmac(const uint8_t key[static HASHLEN], const uint8_t *a, size_t a_len,
		const uint8_t *b, size_t b_len, uint8_t ret[static HASHLEN]) {
	uint8_t pad[BLOCKLEN], inner[HASHLEN];
	crypto_generichash_state st;

	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < HASHLEN; i++) {
		pad[i] ^= key[i];
	}
	(void) crypto_generichash_init(&st, NULL, 0, HASHLEN);
	(void) crypto_generichash_update(&st, pad, sizeof(pad));
	(void) crypto_generichash_update(&st, a, a_len);
	(void) crypto_generichash_update(&st, b, b_len);
	(void) crypto_generichash_final(&st, inner, sizeof(inner));

	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < HASHLEN; i++) {
		pad[i] ^= key[i];
	}
	hash2(pad, sizeof(pad), inner, sizeof(inner), ret);

	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, input_key_material, 2) of spec 4.3. */
static void hkdf2(const uint8_t ck[static HASHLEN], const uint8_t *ikm, size_t ikm_len,
		uint8_t ret1[static HASHLEN], uint8_t ret2[static HASHLEN]) {
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t temp_key[HASHLEN], out1[HASHLEN];

	hmac(ck, ikm, ikm_len, NULL, 0, temp_key);
	hmac(temp_key, &one, 1, NULL, 0, out1);
	hmac(temp_key, out1, sizeof(out1), &two, 1, ret2);
	memcpy(ret1, out1, HASHLEN);
	sodium_memzero(temp_key, sizeof(temp_key));
	sodium_memzero(out1, sizeof(out1));
}

static void mix_hash(NoiseHandshake *hs, const uint8_t *data, size_t len) {
	hash2(hs->h, HASHLEN, data, len, hs->h);
}

static void mix_key(NoiseHandshake *hs, const uint8_t *ikm, size_t ikm_len) {
	uint8_t temp_k[HASHLEN];

	hkdf2(hs->ck, ikm, ikm_len, hs->ck, temp_k);
	/* HASHLEN is 64: the cipher key is the first 32 bytes. */
	memcpy(hs->cipher.k, temp_k, NOISE_KEY_SIZE);
	hs->cipher.n = 0;
	hs->has_key = true;
	sodium_memzero(temp_k, sizeof(temp_k));
}

/* EncryptAndHash(): @out gets @len, plus NOISE_TAG_SIZE once there is a key. */
static int encrypt_and_hash(NoiseHandshake *hs, const uint8_t *in, size_t len, uint8_t *out,
		size_t *ret_len) {
	size_t out_len = len;

	if (hs->has_key) {
		if (hs->cipher.n == NONCE_MAX) {
			return -EOVERFLOW;
		}
		encrypt_raw(hs->cipher.k, hs->cipher.n, hs->h, HASHLEN, in, len, out);
		hs->cipher.n++;
		out_len += NOISE_TAG_SIZE;
	} else if (len > 0) {
		memmove(out, in, len);
	}
	mix_hash(hs, out, out_len);
	*ret_len = out_len;
	return 0;
}

/* DecryptAndHash(): @len includes the tag once there is a key. */
static int decrypt_and_hash(NoiseHandshake *hs, const uint8_t *in, size_t len, uint8_t *out) {
	uint8_t h[HASHLEN];
	int r;

	/* h before mixing in the ciphertext is the AD; @out may not alias @in. */
	memcpy(h, hs->h, HASHLEN);
	mix_hash(hs, in, len);
	if (hs->has_key) {
		if (hs->cipher.n == NONCE_MAX) {
			return -EOVERFLOW;
		}
		r = decrypt_raw(hs->cipher.k, hs->cipher.n, h, HASHLEN, in, len, out);
		if (r < 0) {
			return r;
		}
		hs->cipher.n++;
	} else if (len > 0) {
		memcpy(out, in, len);
	}
	return 0;
}

/* DH(): -EINVAL for an all-zero result (a low-order public key). */
static int dh(const uint8_t priv[static DHLEN], const uint8_t pub[static DHLEN],
		uint8_t ret[static DHLEN]) {
	uint8_t out[DHLEN];

	/* libsodium already fails on an all-zero result; check anyway, it is the contract. */
	if (crypto_scalarmult(out, priv, pub) != 0 || sodium_is_zero(out, sizeof(out))) {
		sodium_memzero(out, sizeof(out));
		return -EINVAL;
	}
	memcpy(ret, out, DHLEN);
	sodium_memzero(out, sizeof(out));
	return 0;
}

static int mix_dh(NoiseHandshake *hs, const uint8_t priv[static DHLEN],
		const uint8_t pub[static DHLEN]) {
	uint8_t shared[DHLEN];
	int r;

	r = dh(priv, pub, shared);
	if (r < 0) {
		return r;
	}
	mix_key(hs, shared, sizeof(shared));
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

/* The DH of token @t, from our side. */
static int mix_token_dh(NoiseHandshake *hs, Token t) {
	bool initiator = hs->role == NOISE_ROLE_INITIATOR;

	switch (t) {
	case TOKEN_EE:
		return mix_dh(hs, hs->e_priv, hs->re);
	case TOKEN_ES:
		return initiator ? mix_dh(hs, hs->e_priv, hs->rs) : mix_dh(hs, hs->s_priv, hs->re);
	case TOKEN_SE:
		return initiator ? mix_dh(hs, hs->s_priv, hs->re) : mix_dh(hs, hs->e_priv, hs->rs);
	case TOKEN_SS:
		return mix_dh(hs, hs->s_priv, hs->rs);
	case TOKEN_E:
	case TOKEN_S:
	case _TOKEN_MAX:
	case _TOKEN_INVALID:
		break;
	}
	abort();
}

/*
 * The size of the next message's tokens, without the payload, and whether
 * the payload will be encrypted (with a tag).
 */
static size_t tokens_size(const NoiseHandshake *hs, bool *ret_has_key) {
	const MessagePattern *m = &hs->pattern->messages[hs->message];
	bool has_key = hs->has_key;
	size_t size = 0;

	for (size_t i = 0; i < m->n_tokens; i++) {
		switch (m->tokens[i]) {
		case TOKEN_E:
			size += DHLEN;
			break;
		case TOKEN_S:
			size += DHLEN + (has_key ? NOISE_TAG_SIZE : 0);
			break;
		case TOKEN_EE:
		case TOKEN_ES:
		case TOKEN_SE:
		case TOKEN_SS:
			has_key = true;
			break;
		case _TOKEN_MAX:
		case _TOKEN_INVALID:
			abort();
		}
	}
	*ret_has_key = has_key;
	return size;
}

int noise_handshake_new(NoisePattern pattern, NoiseRole role, const uint8_t *prologue,
		size_t prologue_len, const uint8_t s_priv[static NOISE_KEY_SIZE],
		const uint8_t *rs, NoiseHandshake **ret) {
	_cleanup_(noise_handshake_freep) NoiseHandshake *hs = NULL;
	const HandshakePattern *p;
	size_t name_len;
	bool need_rs;

	assert(s_priv);
	assert(ret);

	if (pattern < 0 || pattern >= _NOISE_PATTERN_MAX || role < 0 || role >= _NOISE_ROLE_MAX) {
		return -EINVAL;
	}
	p = &handshake_patterns[pattern];
	need_rs = p->responder_static_premessage && role == NOISE_ROLE_INITIATOR;
	if (need_rs != !!rs) {
		return -EINVAL;
	}
	if (prologue_len > 0 && !prologue) {
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		return -EIO;
	}

	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		return -ENOMEM;
	}
	hs->pattern = p;
	hs->role = role;

	memcpy(hs->s_priv, s_priv, DHLEN);
	(void) crypto_scalarmult_base(hs->s_pub, hs->s_priv);
	if (rs) {
		memcpy(hs->rs, rs, DHLEN);
		hs->has_rs = true;
	}

	/* InitializeSymmetric(): the name fits in HASHLEN, so h is it zero padded. */
	name_len = strlen(p->protocol_name);
	assert(name_len <= HASHLEN);
	memcpy(hs->h, p->protocol_name, name_len);
	memcpy(hs->ck, hs->h, HASHLEN);

	mix_hash(hs, prologue, prologue_len);
	if (p->responder_static_premessage) {
		mix_hash(hs, role == NOISE_ROLE_INITIATOR ? hs->rs : hs->s_pub, DHLEN);
	}

	*ret = TAKE_PTR(hs);
	return 0;
}

NoiseHandshake *noise_handshake_free(NoiseHandshake *hs) {
	if (!hs) {
		return NULL;
	}
	sodium_memzero(hs, sizeof(*hs));
	return mfree(hs);
}

void noise_handshake_set_ephemeral(NoiseHandshake *hs,
		const uint8_t e_priv[static NOISE_KEY_SIZE]) {
	assert(hs);
	assert(!hs->has_e);

	memcpy(hs->e_priv, e_priv, DHLEN);
	(void) crypto_scalarmult_base(hs->e_pub, hs->e_priv);
	hs->has_e = true;
}

bool noise_handshake_is_complete(const NoiseHandshake *hs) {
	assert(hs);
	return !hs->failed && hs->message >= hs->pattern->n_messages;
}

bool noise_handshake_is_our_turn(const NoiseHandshake *hs) {
	assert(hs);

	if (hs->failed || noise_handshake_is_complete(hs)) {
		return false;
	}
	/* The initiator writes the even messages. */
	return (hs->message % 2 == 0) == (hs->role == NOISE_ROLE_INITIATOR);
}

static int handshake_write(NoiseHandshake *hs, const uint8_t *payload, size_t payload_len,
		uint8_t *out, size_t *ret_len) {
	const MessagePattern *m = &hs->pattern->messages[hs->message];
	size_t off = 0, n;
	int r;

	for (size_t i = 0; i < m->n_tokens; i++) {
		Token t = m->tokens[i];

		switch (t) {
		case TOKEN_E:
			if (!hs->has_e) {
				randombytes_buf(hs->e_priv, DHLEN);
				(void) crypto_scalarmult_base(hs->e_pub, hs->e_priv);
				hs->has_e = true;
			}
			memcpy(out + off, hs->e_pub, DHLEN);
			mix_hash(hs, hs->e_pub, DHLEN);
			off += DHLEN;
			break;
		case TOKEN_S:
			r = encrypt_and_hash(hs, hs->s_pub, DHLEN, out + off, &n);
			if (r < 0) {
				return r;
			}
			off += n;
			break;
		case TOKEN_EE:
		case TOKEN_ES:
		case TOKEN_SE:
		case TOKEN_SS:
			r = mix_token_dh(hs, t);
			if (r < 0) {
				return r;
			}
			break;
		case _TOKEN_MAX:
		case _TOKEN_INVALID:
			abort();
		}
	}
	r = encrypt_and_hash(hs, payload, payload_len, out + off, &n);
	if (r < 0) {
		return r;
	}
	*ret_len = off + n;
	return 0;
}

int noise_handshake_write(NoiseHandshake *hs, const uint8_t *payload, size_t payload_len,
		uint8_t *out, size_t out_max, size_t *ret_len) {
	size_t size, len;
	bool has_key;
	int r;

	assert(hs);
	assert(payload || payload_len == 0);
	assert(ret_len);

	if (!noise_handshake_is_our_turn(hs)) {
		return -EBADE;
	}
	size = tokens_size(hs, &has_key) + (has_key ? NOISE_TAG_SIZE : 0);
	if (payload_len > NOISE_MAX_MESSAGE ||
			size + payload_len > MIN(out_max, NOISE_MAX_MESSAGE)) {
		return -EMSGSIZE;
	}
	assert(out);

	r = handshake_write(hs, payload, payload_len, out, &len);
	if (r < 0) {
		hs->failed = true;
		return r;
	}
	hs->message++;
	*ret_len = len;
	return 0;
}

static int handshake_read(NoiseHandshake *hs, const uint8_t *msg, size_t len, uint8_t *out) {
	const MessagePattern *m = &hs->pattern->messages[hs->message];
	size_t off = 0, n;
	int r;

	for (size_t i = 0; i < m->n_tokens; i++) {
		Token t = m->tokens[i];

		switch (t) {
		case TOKEN_E:
			memcpy(hs->re, msg + off, DHLEN);
			hs->has_re = true;
			mix_hash(hs, hs->re, DHLEN);
			off += DHLEN;
			break;
		case TOKEN_S:
			n = DHLEN + (hs->has_key ? NOISE_TAG_SIZE : 0);
			r = decrypt_and_hash(hs, msg + off, n, hs->rs);
			if (r < 0) {
				return r;
			}
			hs->has_rs = true;
			off += n;
			break;
		case TOKEN_EE:
		case TOKEN_ES:
		case TOKEN_SE:
		case TOKEN_SS:
			r = mix_token_dh(hs, t);
			if (r < 0) {
				return r;
			}
			break;
		case _TOKEN_MAX:
		case _TOKEN_INVALID:
			abort();
		}
	}
	return decrypt_and_hash(hs, msg + off, len - off, out);
}

int noise_handshake_read(NoiseHandshake *hs, const uint8_t *msg, size_t len,
		uint8_t *out, size_t out_max, size_t *ret_len) {
	size_t size, overhead;
	bool has_key;
	int r;

	assert(hs);
	assert(msg || len == 0);
	assert(ret_len);

	/* Our turn to read: the handshake goes on and it is not ours to write. */
	if (hs->failed || noise_handshake_is_complete(hs) || noise_handshake_is_our_turn(hs)) {
		return -EBADE;
	}
	size = tokens_size(hs, &has_key);
	overhead = size + (has_key ? NOISE_TAG_SIZE : 0);
	if (len < overhead || len > NOISE_MAX_MESSAGE) {
		hs->failed = true;
		return -EBADMSG;
	}
	if (len - overhead > out_max) {
		return -EMSGSIZE;
	}
	assert(out || len == overhead);

	r = handshake_read(hs, msg, len, out);
	if (r < 0) {
		hs->failed = true;
		return r;
	}
	hs->message++;
	*ret_len = len - overhead;
	return 0;
}

const uint8_t *noise_handshake_get_remote_static(const NoiseHandshake *hs) {
	assert(hs);
	return hs->has_rs ? hs->rs : NULL;
}

const uint8_t *noise_handshake_get_hash(const NoiseHandshake *hs) {
	assert(hs);
	return hs->h;
}

int noise_handshake_split(NoiseHandshake *hs, NoiseCipher **ret_send, NoiseCipher **ret_recv) {
	_cleanup_(noise_cipher_freep) NoiseCipher *c1 = NULL, *c2 = NULL;
	uint8_t k1[HASHLEN], k2[HASHLEN];

	assert(hs);
	assert(ret_send);
	assert(ret_recv);

	if (!noise_handshake_is_complete(hs) || hs->split) {
		return -EBADE;
	}
	c1 = calloc(1, sizeof(*c1));
	c2 = calloc(1, sizeof(*c2));
	if (!c1 || !c2) {
		return -ENOMEM;
	}

	hkdf2(hs->ck, NULL, 0, k1, k2);
	memcpy(c1->k, k1, NOISE_KEY_SIZE);
	memcpy(c2->k, k2, NOISE_KEY_SIZE);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));

	/* Keep h and rs (public) only. */
	sodium_memzero(hs->ck, sizeof(hs->ck));
	sodium_memzero(&hs->cipher, sizeof(hs->cipher));
	sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
	sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
	hs->has_key = false;
	hs->split = true;

	if (hs->role == NOISE_ROLE_INITIATOR) {
		*ret_send = TAKE_PTR(c1);
		*ret_recv = TAKE_PTR(c2);
	} else {
		*ret_send = TAKE_PTR(c2);
		*ret_recv = TAKE_PTR(c1);
	}
	return 0;
}
