/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A long-term identity: an Ed25519 key pair (libsodium), and its X25519
 * form (crypto_sign_ed25519_{pk,sk}_to_curve25519) that serves as the
 * static key of the Noise handshakes.  The public Ed25519 key is what names
 * an identity everywhere (roster entries, bindings, pins); its fingerprint
 * is what people compare.
 *
 * Key file (identity_load_or_create()): 0600, written atomically (a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory).  Its text:
 *
 *   p2pchat-identity-v1
 *   <128 lowercase hex: the 64-byte libsodium Ed25519 secret key (seed + pk)>
 *
 * each line ending in "\n".  Anything else is -EBADMSG: a file that exists
 * but cannot be read or parsed is never replaced by a new identity.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define IDENTITY_PUBLIC_KEY_SIZE 32u       /* Ed25519 public key */
#define IDENTITY_DH_KEY_SIZE 32u           /* X25519 public or secret key */
#define IDENTITY_KEY_HEX_SIZE (2u * IDENTITY_PUBLIC_KEY_SIZE + 1u)

/*
 * Fingerprint: BLAKE2b-512 (crypto_generichash, no key) of the ASCII string
 * "p2pchat-fingerprint-v1" followed by the 32-byte Ed25519 public key; the
 * first 30 bytes of the hash, read as 12 big-endian 20-bit numbers (2.5
 * bytes each), each written as 5 decimal digits (value mod 100000, zero
 * padded), groups separated by one space: 12 × 5 digits + 11 spaces.
 */
#define IDENTITY_FINGERPRINT_GROUPS 12u
#define IDENTITY_FINGERPRINT_SIZE (IDENTITY_FINGERPRINT_GROUPS * 6u)  /* incl. NUL */

typedef struct Identity Identity;

/* Calls sodium_init() once; 0 or -EIO. */
int identity_crypto_init(void);

/* A fresh key pair, in memory only (tests, benchmarks). */
int identity_generate(Identity **ret);

/*
 * identity_load() - read the key file at @path.
 * Return: 0; -ENOENT when it does not exist; -EBADMSG when it is not a key
 * file (bad header, bad hex, or the public half does not match the secret);
 * -EACCES/-EIO/... from open()/read().
 */
int identity_load(const char *path, Identity **ret);

/*
 * identity_load_or_create() - identity_load(), and only when the file does
 * not exist, a new key pair written to @path (its directory must exist).
 * *ret_created tells which happened (may be NULL).
 */
int identity_load_or_create(const char *path, Identity **ret, bool *ret_created);

/* Writes @id to @path atomically, mode 0600. */
int identity_save(const Identity *id, const char *path);

/* Wipes the secret key (sodium_memzero) and frees; NULL-safe; returns NULL. */
Identity *identity_free(Identity *id);
DEFINE_TRIVIAL_CLEANUP_FUNC(Identity *, identity_free);

/* Borrowed, valid for @id's life. */
const uint8_t *identity_get_public_key(const Identity *id);     /* Ed25519, 32 bytes */
const uint8_t *identity_get_dh_public_key(const Identity *id);  /* X25519, 32 bytes */
const uint8_t *identity_get_dh_secret_key(const Identity *id);  /* X25519, 32 bytes */

/* The fingerprint of @id's public key. */
void identity_get_fingerprint(const Identity *id, char ret[static IDENTITY_FINGERPRINT_SIZE]);

/* The fingerprint of the Ed25519 public key @pk. */
void identity_fingerprint(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		char ret[static IDENTITY_FINGERPRINT_SIZE]);

/*
 * Whether @s is a fingerprint as written by identity_fingerprint(); also
 * accepted: the same 60 digits with any blanks, or none, between groups.
 * On success *ret is the canonical form.  -EINVAL otherwise.
 */
int identity_fingerprint_parse(const char *s, char ret[static IDENTITY_FINGERPRINT_SIZE]);

/*
 * The X25519 form of the Ed25519 public key @pk.  -EINVAL for a key that
 * has none (not a valid point).
 */
int identity_public_key_to_dh(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		uint8_t ret[static IDENTITY_DH_KEY_SIZE]);

/* 64 lowercase hex digits and a NUL, and back (-EINVAL for anything else). */
void identity_key_to_hex(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		char ret[static IDENTITY_KEY_HEX_SIZE]);
int identity_key_from_hex(const char *s, uint8_t ret[static IDENTITY_PUBLIC_KEY_SIZE]);
