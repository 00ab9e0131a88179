/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the CLI knows about p2pchatd's settings without asking it: the keys
 * (for "config list"), the form each value takes (for a readable error when
 * the daemon refuses one), and the coordinator's HOST[:PORT] syntax, checked
 * before "login" bothers the daemon.  Pure functions: no bus, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The keys, in the daemon's order; NULL-terminated (daemon/config.c keys[]). */
extern const char *const cli_config_keys[];

/*
 * cli_config_key_format() - what a valid value of @key looks like
 *
 * Return: a phrase such as "expected true or false", or NULL for an unknown key.
 */
const char *cli_config_key_format(const char *key);

/*
 * cli_coordinator_is_valid() - whether @s is HOST[:PORT]
 *
 * HOST is a host name (letters, digits, '.' and '-'), an IPv4 address or an
 * IPv6 address in brackets; PORT is 1-65535.  No scheme ("http://"), no path.
 */
bool cli_coordinator_is_valid(const char *s);

/*
 * cli_format_duration() - "7d" (GetConfig's form) as "7 days"
 *
 * Writes at most @size bytes to @buf; unknown forms are copied as they are.
 * Return: @buf.
 */
const char *cli_format_duration(const char *s, char *buf, size_t size);
