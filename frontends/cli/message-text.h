/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The text a verb sends or searches for, from its arguments or from stdin.
 * Does not log.
 */

/* The longest text "-" reads from stdin; the daemon's own limit is lower. */
#define MESSAGE_TEXT_STDIN_MAX (1024 * 1024)

/*
 * read_message_text() - the TEXT arguments of "send", joined by spaces
 *
 * A single "-" reads all of stdin instead (one trailing newline dropped).
 * Return: 0 and *ret, -EMSGSIZE when stdin is too long, -EILSEQ when it
 * holds a NUL byte, other negative errno.
 */
int read_message_text(int argc, char *argv[], char **ret);
