/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The native session between a daemon and the coordinator, over TCP:
 * Noise_XX_25519_ChaChaPoly_BLAKE2b, then its transport.  Both sides use it
 * (the daemon as initiator, the coordinator as responder).  It does no I/O:
 * the callers move the messages as binary frames (LEB128 length + bytes).
 *
 *   -> e                     message 1, empty payload
 *   <- e, ee, s, es          message 2, payload: the responder's Ed25519 key
 *   -> s, se                 message 3, payload: the initiator's Ed25519 key
 *
 * The prologue is NOISE_STREAM_PROLOGUE followed by the clear hello frame's
 * text, so the hello is authenticated too.  Each side checks that the
 * Ed25519 key in the payload converts to the static key the handshake
 * proved; that key is the identity the session is bound to.  After the
 * handshake every frame is one transport message (counter nonces, in
 * order); the plaintexts, concatenated, are the session's ordinary frame
 * stream.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/identity.h"
#include "common/macro.h"
#include "common/noise.h"

#define NOISE_STREAM_PROLOGUE "p2pchat-session-v1\n"
/* The largest handshake message: message 2 with its 32-byte payload. */
#define NOISE_STREAM_HANDSHAKE_MAX (32u + 48u + 32u + NOISE_TAG_SIZE)

typedef struct NoiseStream NoiseStream;

/*
 * noise_stream_new() - a session for @role, proving @id (borrowed: it must
 * outlive the stream), with @hello (the clear hello frame's text) in the
 * prologue.
 */
int noise_stream_new(NoiseRole role, const Identity *id, const char *hello, size_t hello_len,
		NoiseStream **ret);
NoiseStream *noise_stream_free(NoiseStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(NoiseStream *, noise_stream_free);

/*
 * noise_stream_handshake() - one step: take the peer's handshake message
 * @in (NULL for the initiator's first step) and put ours, if one is due,
 * in @out (room for NOISE_STREAM_HANDSHAKE_MAX bytes; *ret_out_len is 0
 * when there is none).
 * Return: 1 once the handshake is complete (then the remote identity is
 * known), 0 while it goes on; -EBADMSG for a message that fails
 * authentication or is malformed, -EKEYREJECTED when the payload's key is
 * not the proved static key, -EBADE for a step out of turn.
 */
int noise_stream_handshake(NoiseStream *s, const uint8_t *in, size_t in_len, uint8_t *out,
		size_t *ret_out_len);
bool noise_stream_is_ready(const NoiseStream *s);

/* The peer's Ed25519 public key once ready (else NULL); borrowed. */
const uint8_t *noise_stream_get_remote_key(const NoiseStream *s);

/*
 * noise_stream_seal() - encrypt @len (at most NOISE_MAX_PAYLOAD) bytes of
 * the frame stream into @out (@len + NOISE_TAG_SIZE bytes).
 */
int noise_stream_seal(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out);
/*
 * noise_stream_open() - decrypt one transport message @in into @out
 * (@len - NOISE_TAG_SIZE bytes).  -EBADMSG when it fails authentication:
 * the session must end.
 */
int noise_stream_open(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out);

/*
 * noise_stream_seal_frame() - @len bytes (at most NOISE_MAX_PAYLOAD) of the
 * frame stream as one binary frame (LEB128 length + transport message) at
 * @out (room for noise_stream_sealed_size(@len) bytes).
 * Return: the bytes written, or -EMSGSIZE, -EBADE, -EOVERFLOW.
 */
int noise_stream_seal_frame(NoiseStream *s, const uint8_t *in, size_t len, uint8_t *out);
/*
 * noise_stream_seal_frames() - the bytes @in as a sequence of binary frames
 * (LEB128 length + transport message), each carrying at most
 * NOISE_MAX_PAYLOAD bytes, appended to *@buf (size *@size, allocated
 * *@allocated; grown with GREEDY_REALLOC).
 */
int noise_stream_seal_frames(NoiseStream *s, const uint8_t *in, size_t len, uint8_t **buf,
		size_t *size, size_t *allocated);
/* The room noise_stream_seal_frames() needs for @len bytes. */
size_t noise_stream_sealed_size(size_t len);
