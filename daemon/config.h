/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The user's settings, $XDG_CONFIG_HOME/p2pchat/config.json: a JSON object
 *
 *   {
 *     "username": "alice",              name to log in as ("": none)
 *     "coordinator": "localhost:7474",  HOST[:PORT]
 *     "bind": "0.0.0.0:0",              ADDR:PORT of the peer UDP socket
 *     "autologin": false,               log in when the daemon starts
 *     "notifications": true,            desktop notifications
 *     "outbox-expiry": "7d"             seconds, or a number with s/m/h/d
 *   }
 *
 * Every key is optional; a missing file means all defaults.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/endpoint.h"
#include "common/macro.h"

#define CONFIG_FILE_MAX (64u * 1024u)
#define CONFIG_EXPIRY_MIN_USEC (1 * USEC_PER_SEC)
#define CONFIG_EXPIRY_MAX_USEC (3650ULL * 24 * 3600 * USEC_PER_SEC)

typedef struct Config {
	char *path;
	char *username;    /* "" when not set */
	char *coordinator; /* HOST[:PORT] as written */
	char *bind;        /* as written; see bind_address */
	Endpoint bind_address;
	bool autologin;
	bool notifications;
	uint64_t outbox_expiry_usec;
} Config;

/* $XDG_CONFIG_HOME/p2pchat/config.json (HOME fallback); @mkdirs creates the directory. */
int config_default_path(bool mkdirs, char **ret);

/* config_new() - the defaults, for the file at @path (not read yet). */
int config_new(const char *path, Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/*
 * config_load() - read the file into @c.  A missing file is not an error.
 * On failure @c keeps what it had, and @ret_error (if not NULL) gets a
 * message naming the file and, where one is at fault, the key.
 *
 * Return: 1 when the file was read, 0 when it does not exist; -EBADMSG for
 * a broken file, -EINVAL for a key with a wrong type or value, -ENOKEY for
 * an unknown key, -EFBIG for a file over CONFIG_FILE_MAX, or the I/O error.
 */
int config_load(Config *c, char **ret_error);

/* config_get() - @key's value as text (as config_set() takes it); -ENOKEY if unknown. */
int config_get(const Config *c, const char *key, char **ret);

/*
 * config_set() - validate @value for @key, then write the file atomically
 * (temporary file, fsync, rename) and update @c.  The file is read again
 * first, so edits made by hand are kept, and a broken file is not
 * overwritten (fix it, or remove it).
 *
 * Return: 0; -ENOKEY for an unknown key, -EINVAL for a bad value,
 * config_load()'s errors, or the I/O error.  @ret_error as for config_load().
 */
int config_set(Config *c, const char *key, const char *value, char **ret_error);

/* The keys, NULL-terminated, in the order the file lists them. */
const char *const *config_keys(void);

/* "7d", "12h", "90m", "30s" or plain seconds "3600"; -EINVAL, -ERANGE. */
int config_parse_duration(const char *s, uint64_t *ret_usec);
