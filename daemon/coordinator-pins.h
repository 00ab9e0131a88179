/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The coordinators' keys, pinned on first use: the file
 * $XDG_DATA_HOME/p2pchat/known-coordinators, one line per coordinator,
 *
 *   <coordinator> <64 lowercase hex: its Ed25519 public key>
 *
 * where <coordinator> is the canonical HOST:PORT the account logs in to.
 * A key that differs from the pinned one is refused and remembered, in
 * memory only, as that coordinator's pending key, until the user trusts it
 * by its fingerprint (coordinator_pins_trust()).
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/identity.h"
#include "common/macro.h"

/* A bound on the lines of the file (each a coordinator the user logged in to). */
#define COORDINATOR_PINS_MAX 1024u
/* The longest coordinator string: a host name of 253 characters, brackets, ":65535". */
#define COORDINATOR_PINS_NAME_MAX 270u
#define COORDINATOR_PINS_FILE_MAX \
	(COORDINATOR_PINS_MAX * (COORDINATOR_PINS_NAME_MAX + IDENTITY_KEY_HEX_SIZE + 1u))

typedef struct CoordinatorPins CoordinatorPins;

/* $XDG_DATA_HOME/p2pchat/known-coordinators; @mkdirs creates the directory (0700). */
int coordinator_pins_default_path(bool mkdirs, char **ret);

/*
 * coordinator_pins_load() - read the pins of the file at @path (which is
 * where they are saved too).  A missing file is no pin at all.  Lines are
 * never dropped: a line that is not "COORDINATOR KEY", a coordinator twice
 * or more than COORDINATOR_PINS_MAX lines fail the whole load.
 * @ret_error: if not NULL, on failure a message naming the file and the line
 *
 * Return: 0; -EBADMSG for a line that does not parse, -E2BIG for too many
 * lines, -EFBIG for a file over COORDINATOR_PINS_FILE_MAX, or the I/O error.
 */
int coordinator_pins_load(const char *path, CoordinatorPins **ret, char **ret_error);
CoordinatorPins *coordinator_pins_free(CoordinatorPins *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(CoordinatorPins *, coordinator_pins_free);

/*
 * coordinator_pins_check() - is @key the key of @coordinator?
 *
 * Return: 0 when it is the pinned key; 1 when @coordinator had none: @key is
 * pinned now, and saved; -EKEYREJECTED when a different key is pinned: @key
 * becomes the pending key of @coordinator (see coordinator_pins_trust());
 * -EINVAL for a coordinator string with blanks or control characters, or
 * over COORDINATOR_PINS_NAME_MAX; -E2BIG when COORDINATOR_PINS_MAX are
 * pinned already; or the error of saving the file (then nothing is pinned).
 */
int coordinator_pins_check(CoordinatorPins *p, const char *coordinator,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]);

/*
 * coordinator_pins_trust() - the user accepts the pending key of
 * @coordinator, named by its @fingerprint (any form that
 * identity_fingerprint_parse() takes).  The key becomes the pin and the
 * file is saved.  The fingerprint of the key pinned already is accepted too,
 * and changes nothing.
 *
 * Return: 0; -EINVAL for a fingerprint or coordinator that does not parse;
 * -ENOKEY when no key of @coordinator is pending; -EKEYREJECTED when
 * @fingerprint is not the pending key's; or the error of saving the file.
 */
int coordinator_pins_trust(CoordinatorPins *p, const char *coordinator,
		const char *fingerprint);

/* The fingerprint of @coordinator's pending key (for messages), or NULL. */
/* Whether @coordinator has a pinned key. */
bool coordinator_pins_has(const CoordinatorPins *p, const char *coordinator);

const char *coordinator_pins_get_pending_fingerprint(const CoordinatorPins *p,
		const char *coordinator);
