/* SPDX-License-Identifier: MIT */

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/noise-stream.h"
#include "common/wire.h"

struct NoiseStream {
	NoiseRole role;
	const Identity *identity;   /* not owned */
	NoiseHandshake *handshake;  /* until ready */
	NoiseCipher *send, *recv;   /* once ready */
	uint8_t remote_key[IDENTITY_PUBLIC_KEY_SIZE];
};

int noise_stream_new(NoiseRole role, const Identity *id, const char *hello, size_t hello_len,
		NoiseStream **ret) {
	_cleanup_(noise_stream_freep) NoiseStream *s = NULL;
	_cleanup_free_ uint8_t *prologue = NULL;
	size_t n = strlen(NOISE_STREAM_PROLOGUE);
	int r;

	s = calloc(1, sizeof(NoiseStream));
	prologue = malloc(n + hello_len);
	if (!s || !prologue) {
		return -ENOMEM;
	}
	s->role = role;
	s->identity = id;
	memcpy(prologue, NOISE_STREAM_PROLOGUE, n);
	if (hello_len > 0) {
		memcpy(prologue + n, hello, hello_len);
	}
	r = noise_handshake_new(NOISE_PATTERN_XX, role, prologue, n + hello_len,
			identity_get_dh_secret_key(id), NULL, &s->handshake);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

NoiseStream *noise_stream_free(NoiseStream *s) {
	if (!s) {
		return NULL;
	}
	noise_handshake_free(s->handshake);
	noise_cipher_free(s->send);
	noise_cipher_free(s->recv);
	free(s);
	return NULL;
}

bool noise_stream_is_ready(const NoiseStream *s) {
	return !!s->send;
}

const uint8_t *noise_stream_get_remote_key(const NoiseStream *s) {
	return noise_stream_is_ready(s) ? s->remote_key : NULL;
}

/* The payload @p of the peer's static message must be the key its static is the X25519 form of. */
static int stream_take_remote_key(NoiseStream *s, const uint8_t *p, size_t n) {
	const uint8_t *rs = noise_handshake_get_remote_static(s->handshake);
	uint8_t dh[IDENTITY_DH_KEY_SIZE];
	int r;

	if (n != IDENTITY_PUBLIC_KEY_SIZE || !rs) {
		return -EBADMSG;
	}
	r = identity_public_key_to_dh(p, dh);
	if (r < 0 || sodium_memcmp(dh, rs, sizeof(dh)) != 0) {
		return -EKEYREJECTED;
	}
	memcpy(s->remote_key, p, IDENTITY_PUBLIC_KEY_SIZE);
	return 0;
}

static int stream_finish(NoiseStream *s) {
	int r;

	if (!noise_handshake_is_complete(s->handshake)) {
		return 0;
	}
	r = noise_handshake_split(s->handshake, &s->send, &s->recv);
	if (r < 0) {
		return r;
	}
	s->handshake = noise_handshake_free(s->handshake);
	return 1;
}

int noise_stream_handshake(NoiseStream *s, const uint8_t *in, size_t in_len, uint8_t *out,
		size_t *ret_out_len) {
	uint8_t payload[IDENTITY_PUBLIC_KEY_SIZE];
	size_t n = 0, payload_len = 0;
	bool has_static;
	int r;

	if (!s->handshake) {
		return -EBADE;
	}
	if (in) {
		if (noise_handshake_is_our_turn(s->handshake)) {
			return -EBADE;
		}
		r = noise_handshake_read(s->handshake, in, in_len, payload, sizeof(payload),
				&payload_len);
		if (r == -EMSGSIZE) {
			return -EBADMSG;
		}
		if (r < 0) {
			return r;
		}
		/* Message 1 carries nothing; 2 and 3 carry the sender's identity. */
		has_static = !!noise_handshake_get_remote_static(s->handshake);
		if (has_static) {
			r = stream_take_remote_key(s, payload, payload_len);
		} else if (payload_len != 0) {
			r = -EBADMSG;
		}
		if (r < 0) {
			return r;
		}
	}
	if (!noise_handshake_is_complete(s->handshake) &&
			noise_handshake_is_our_turn(s->handshake)) {
		/* Our identity goes with our static key (messages 2 and 3); message 1 is empty. */
		bool first = s->role == NOISE_ROLE_INITIATOR && !in;

		r = noise_handshake_write(s->handshake,
				first ? NULL : identity_get_public_key(s->identity),
				first ? 0 : IDENTITY_PUBLIC_KEY_SIZE,
				out, NOISE_STREAM_HANDSHAKE_MAX, &n);
		if (r < 0) {
			return r;
		}
	}
	r = stream_finish(s);
	if (r < 0) {
		return r;
	}
	*ret_out_len = n;
	return r;
}

int noise_stream_seal(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out) {
	if (!s->send) {
		return -EBADE;
	}
	return noise_cipher_encrypt(s->send, NULL, 0, in, len, out);
}

int noise_stream_open(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out) {
	if (!s->recv) {
		return -EBADE;
	}
	if (len < NOISE_TAG_SIZE) {
		return -EBADMSG;
	}
	return noise_cipher_decrypt(s->recv, NULL, 0, in, len, out);
}

size_t noise_stream_sealed_size(size_t len) {
	size_t chunks = len == 0 ? 0 : (len + NOISE_MAX_PAYLOAD - 1) / NOISE_MAX_PAYLOAD;

	/* A transport message is at most 65535 bytes: 3 bytes of LEB128. */
	return len + chunks * (NOISE_TAG_SIZE + 3);
}

int noise_stream_seal_frame(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out) {
	uint8_t prefix[WIRE_LEB128_MAX];
	size_t k;
	int r;

	if (len > NOISE_MAX_PAYLOAD) {
		return -EMSGSIZE;
	}
	k = leb128_encode(len + NOISE_TAG_SIZE, prefix);
	r = noise_stream_seal(s, in, len, out + k);
	if (r < 0) {
		return r;
	}
	memcpy(out, prefix, k);
	return (int) (k + len + NOISE_TAG_SIZE);
}

int noise_stream_seal_frames(NoiseStream *s, const uint8_t *in, size_t len, uint8_t **buf,
		size_t *size, size_t *allocated) {
	int r;

	r = GREEDY_REALLOC(*buf, *allocated, *size + noise_stream_sealed_size(len));
	if (r < 0) {
		return r;
	}
	while (len > 0) {
		size_t chunk = MIN(len, (size_t) NOISE_MAX_PAYLOAD);

		r = noise_stream_seal_frame(s, in, chunk, *buf + *size);
		if (r < 0) {
			return r;
		}
		*size += r;
		in += chunk;
		len -= chunk;
	}
	return 0;
}
