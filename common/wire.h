/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The wire codec: the seed's text messages and our extensions, the two
 * datagram encodings (UTF-8, UTF-16LE), and the TCP framing (unsigned LEB128
 * byte length + UTF-8).  Pure functions: no sockets, no logging above debug.
 * Every size and count a peer controls has a named limit below, and every
 * parser returns a negative errno for bad input instead of crashing:
 *
 *   -EBADMSG   wrong grammar (unknown type, wrong field count, bad number)
 *   -EILSEQ    invalid UTF-8 / UTF-16LE (including unpaired surrogates)
 *   -EMSGSIZE  a size or count limit is exceeded
 *   -EINVAL    an invalid name, endpoint, caps, time or reason field
 *   -ENOMEM    out of memory
 *
 * Text handed to the *_line() functions is UTF-8 without a terminator; the
 * *_datagram() functions convert from and to the datagram's encoding.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/endpoint.h"

/* Names: 1-32 Unicode characters; never ',' ';' ':' or controls; not "end". */
#define WIRE_NAME_MAX_CHARS 32
#define WIRE_NAME_MAX_BYTES (WIRE_NAME_MAX_CHARS * 4)
/* CAPS: 1-64 bytes of [A-Za-z0-9._+-], tokens separated by '+'. */
#define WIRE_CAPS_MAX 64
/* The caps token our daemon announces: it speaks the native peer protocol. */
#define WIRE_CAPS_NATIVE "native1"
/*
 * KEY: a user's identity (its Ed25519 public key) as 64 lowercase hex
 * digits, after CAPS in login forwards and list entries; the coordinator
 * puts it there for the users whose session proved it.  The reference
 * programs read only the first fields.
 */
#define WIRE_KEY_HEX_LEN 64
/* The caps token of a native hello that opens a Noise XX session. */
#define WIRE_CAPS_NOISE "noise1"
/* talk TIME: 1-32 bytes, no ',' and no controls. */
#define WIRE_TIME_MAX 32
/* Reject REASON: 1-64 bytes of [a-z0-9-]. */
#define WIRE_REASON_MAX 64
/* Chat text (native message body, what we send as talk TEXT): UTF-8 bytes. */
#define WIRE_TEXT_MAX 16384
/* Any control line (login, logout, Accept, Reject, hello, ...), UTF-8 bytes. */
#define WIRE_CONTROL_MAX 512
/* Largest datagram we accept or produce, in bytes on the wire. */
#define WIRE_DATAGRAM_MAX 65507
/*
 * talk TEXT as parsed and formatted: whatever one datagram can carry, since a
 * reference client sends its whole box as one talk.  A UTF-16LE datagram
 * holds at most WIRE_DATAGRAM_MAX / 2 units, and each becomes at most 3
 * bytes of UTF-8 (a surrogate pair, 2 units, becomes 4).  The datagram
 * codec still refuses a talk that does not fit in its encoding.
 */
#define WIRE_TALK_TEXT_MAX (WIRE_DATAGRAM_MAX / 2 * 3)
/* The roster list: entries, and the largest TCP frame (bytes of UTF-8). */
#define WIRE_LIST_MAX_ENTRIES 65536
#define WIRE_FRAME_MAX (16u * 1024u * 1024u)
/* An unsigned LEB128 of a size_t needs at most this many bytes. */
#define WIRE_LEB128_MAX 10

typedef enum WireEncoding {
	WIRE_ENCODING_UTF8,
	WIRE_ENCODING_UTF16LE,
	_WIRE_ENCODING_MAX,
	_WIRE_ENCODING_INVALID = -EINVAL,
} WireEncoding;

typedef enum WireType {
	WIRE_TYPE_LOGIN,   /* login,NAME,EP[,CAPS[,KEY]]  client -> coordinator, forwards */
	WIRE_TYPE_LOGOUT,  /* logout,NAME,EP (lohout read) client -> coordinator, forwards */
	WIRE_TYPE_ACCEPT,  /* Accept,PORT                  coordinator -> client */
	WIRE_TYPE_REJECT,  /* Reject,REASON                coordinator -> client */
	WIRE_TYPE_TALK,    /* talk,TIME,SENDER,TEXT        peer -> peer */
	WIRE_TYPE_HELLO,   /* hello,NAME,CAPS              client -> coordinator, TCP */
	WIRE_TYPE_WELCOME, /* welcome,CAPS                 coordinator -> client, TCP */
	WIRE_TYPE_PING,    /* ping                         either way, TCP session */
	WIRE_TYPE_PONG,    /* pong                         either way, TCP session */
	_WIRE_TYPE_MAX,
	_WIRE_TYPE_INVALID = -EINVAL,
} WireType;

typedef struct WireMessage {
	WireType type;
	bool misspelled;             /* read as "lohout" */
	char name[WIRE_NAME_MAX_BYTES + 1]; /* login, logout, hello; talk sender */
	Endpoint endpoint;           /* login, logout */
	char caps[WIRE_CAPS_MAX + 1]; /* login (optional: ""), hello, welcome */
	char key[WIRE_KEY_HEX_LEN + 1]; /* login (optional: "", only after CAPS) */
	uint16_t port;               /* Accept */
	char reason[WIRE_REASON_MAX + 1]; /* Reject */
	char time[WIRE_TIME_MAX + 1];     /* talk */
	char *text;                  /* talk, owned, NUL-terminated */
	size_t text_len;             /* talk, bytes */
} WireMessage;

typedef struct WireListEntry {
	char name[WIRE_NAME_MAX_BYTES + 1];
	Endpoint endpoint;
	char caps[WIRE_CAPS_MAX + 1]; /* "" when absent */
	char key[WIRE_KEY_HEX_LEN + 1]; /* "" when absent; only after caps */
} WireListEntry;

/* Frees what a parsed message owns (its text); the struct itself stays. */
void wire_message_done(WireMessage *m);

const char *wire_type_to_string(WireType t);
const char *wire_encoding_to_string(WireEncoding e);

/* Validity of single fields (lengths in bytes). */
bool wire_name_is_valid(const char *s, size_t n);
bool wire_caps_is_valid(const char *s, size_t n);
/* Whether a caps string holds the token @token. */
bool wire_caps_has(const char *caps, const char *token);
/* Whether @s is a KEY field: exactly WIRE_KEY_HEX_LEN lowercase hex digits. */
bool wire_key_is_valid(const char *s, size_t n);

/*
 * Strict UTF-8 validation: no overlongs, surrogates or code points > U+10FFFF,
 * and no U+0000 (all text ends up in C strings and D-Bus strings).
 */
bool utf8_is_valid(const char *s, size_t n);
/* Number of code points in valid UTF-8. */
size_t utf8_count_chars(const char *s, size_t n);

/*
 * Conversions.  Output is freshly allocated and NUL-terminated (two NULs for
 * UTF-16LE); the length excludes the terminator.  A leading BOM on input is
 * stripped; none is written.
 */
int utf16le_to_utf8(const uint8_t *in, size_t n, char **ret, size_t *ret_len);
int utf8_to_utf16le(const char *in, size_t n, uint8_t **ret, size_t *ret_len);

/*
 * wire_detect_encoding() - guess a datagram's encoding.
 * A BOM decides (EF BB BF: UTF-8, FF FE: UTF-16LE); otherwise a datagram of
 * at least two bytes whose second byte is 0 is UTF-16LE (every message starts
 * with an ASCII letter or '{'), anything else UTF-8.
 */
WireEncoding wire_detect_encoding(const uint8_t *buf, size_t n);

/* Datagram bytes -> validated UTF-8 text (BOM stripped); *ret_enc is what was detected. */
int wire_decode_datagram(const uint8_t *buf, size_t n, WireEncoding *ret_enc, char **ret_text,
		size_t *ret_len);
/* UTF-8 text -> datagram bytes in @enc (no BOM). */
int wire_encode_datagram(const char *text, size_t n, WireEncoding enc, uint8_t **ret,
		size_t *ret_len);

/* One message, UTF-8 text <-> struct. */
int wire_parse_line(const char *s, size_t n, WireMessage *ret);
int wire_format_line(const WireMessage *m, char **ret, size_t *ret_len);

/* Convenience: decode + parse, and format + encode. */
int wire_parse_datagram(const uint8_t *buf, size_t n, WireMessage *ret, WireEncoding *ret_enc);
int wire_format_datagram(const WireMessage *m, WireEncoding enc, uint8_t **ret, size_t *ret_len);

/*
 * The roster list "n1,ep1[,caps1[,key1]];n2,ep2[,caps2[,key2]];...;end" (UTF-8).  An
 * empty list is "end".  *ret is an array of *ret_n entries, to be free()d.
 */
int wire_parse_list(const char *s, size_t n, WireListEntry **ret, size_t *ret_n);
int wire_format_list(const WireListEntry *entries, size_t n, char **ret, size_t *ret_len);

/* Unsigned LEB128: writes at most WIRE_LEB128_MAX bytes, returns how many. */
size_t leb128_encode(uint64_t v, uint8_t out[static WIRE_LEB128_MAX]);

/* A whole frame (LEB128 length + bytes), freshly allocated. */
int wire_frame_encode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);

/*
 * Incremental decoder for a TCP byte stream that arrives in arbitrary pieces.
 * Feed it bytes; when a frame is complete, wire_frame_decoder_feed() returns 1
 * and the frame (validated UTF-8, NUL-terminated) can be taken; bytes after the
 * end of that frame are not consumed (see @ret_consumed), so call feed again
 * with the rest.  A length over @max (at most WIRE_FRAME_MAX) is -EMSGSIZE
 * before anything is allocated; an overlong or non-minimal LEB128 is -EBADMSG;
 * invalid UTF-8 is -EILSEQ.  After an error the decoder stays failed.
 * A binary decoder (wire_frame_decoder_set_binary()) skips the UTF-8 check:
 * the frames of a Noise session are binary.
 */
typedef struct WireFrameDecoder {
	size_t max;
	uint64_t length;     /* of the frame being read */
	unsigned shift;      /* bits of length read so far */
	bool have_length;
	char *buf;
	size_t allocated;    /* grows with the bytes that really arrived */
	size_t filled;
	int error;
	bool binary;         /* frames are bytes, not UTF-8 */
} WireFrameDecoder;

/* @max 0 means WIRE_FRAME_MAX; larger values are clamped to it. */
void wire_frame_decoder_init(WireFrameDecoder *d, size_t max);
void wire_frame_decoder_done(WireFrameDecoder *d);
/* From the next frame on, frames are checked against @max only (not UTF-8). */
void wire_frame_decoder_set_binary(WireFrameDecoder *d, size_t max);
int wire_frame_decoder_feed(WireFrameDecoder *d, const uint8_t *buf, size_t n,
		size_t *ret_consumed);
/*
 * Moves the completed frame out (owned by the caller) and resets for the next;
 * -ENODATA when no frame is complete.  feed() returns 1 without consuming
 * anything until the complete frame is taken.
 */
int wire_frame_decoder_take(WireFrameDecoder *d, char **ret, size_t *ret_len);
