/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the CLI prints: JSON documents (json-c), aligned tables, colours and
 * safe text.  Everything here writes to stdout only and never logs.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/json-util.h"
#include "common/macro.h"

typedef enum JsonFormat {
	JSON_FORMAT_OFF,
	JSON_FORMAT_SHORT,
	JSON_FORMAT_PRETTY,
	_JSON_FORMAT_MAX,
	_JSON_FORMAT_INVALID = -EINVAL,
} JsonFormat;

JsonFormat json_format_from_string(const char *s);

/* Prints o followed by a newline and flushes; returns -EIO on write errors. */
int json_print(json_object *o, JsonFormat format);

/* Whether stdout is a terminal and $NO_COLOR is unset (decided once). */
bool colors_enabled(void);
const char *ansi_highlight(void);
const char *ansi_grey(void);
const char *ansi_green(void);
const char *ansi_red(void);
const char *ansi_normal(void);

/*
 * text_escape() - make untrusted text safe for a line-oriented terminal stream
 * @s: UTF-8 text (from a peer)
 *
 * Control characters (including newline) become C escapes ("\n", "\x1b") and
 * backslash becomes "\\", so a message cannot move the cursor or forge lines.
 *
 * Return: a new string, or NULL when out of memory.
 */
char *text_escape(const char *s);

/* Formats usec since the epoch as local "HH:MM:SS"; buf needs 9 bytes. */
const char *format_clock(uint64_t usec, char buf[static 9]);

/* Display width of a UTF-8 string in terminal columns. */
size_t utf8_width(const char *s);

typedef struct Table Table;

/* A table with ncols columns; headers are copied. NULL on OOM. */
Table *table_new(size_t ncols, const char *const *headers);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* Adds a row of exactly ncols cells (copied). */
int table_add_row(Table *t, const char *const *cells);
size_t table_get_rows(const Table *t);

/* Prints the table, with the header line when legend is true. */
int table_print(const Table *t, bool legend);
