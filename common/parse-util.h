/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Parsers for numbers typed on command lines.  Strict: the whole string is
 * the number, with no sign, space or unit.
 */

#include <stdint.h>

/*
 * parse_uint64_range() - parse a decimal number in [@min, @max]
 * @s: NUL-terminated text
 * @min: smallest accepted value
 * @max: largest accepted value
 * @ret: the number, written only on success
 *
 * Return: 0; -EINVAL when @s is not a plain decimal number, -ERANGE when it
 * is outside [@min, @max].
 */
int parse_uint64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
