/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The coordinator's state directory: where it is, and the coordinator's own
 * identity in it (coordinator.key).  The binding store lives there too
 * (bindings.h).
 */

#include "common/identity.h"

#define STATE_DIR_DEFAULT "/var/lib/p2pchat-coordinator"
#define STATE_KEY_FILE "coordinator.key"

/*
 * state_dir_default() - the state directory when none is given: the first
 * path of $STATE_DIRECTORY (systemd's StateDirectory=) when set, else
 * STATE_DIR_DEFAULT.  *ret is a new string.
 */
int state_dir_default(char **ret);

/*
 * coordinator_identity_load() - the coordinator's key pair from
 * <state_dir>/coordinator.key, created (mode 0600) on first use, as is
 * @state_dir (mode 0700; its parent must exist).
 * Return: 1 when the key was created, 0 when it was loaded; <0 on error
 * (-EBADMSG: the file exists but is not a key file; it is left alone).
 */
int coordinator_identity_load(const char *state_dir, Identity **ret);
