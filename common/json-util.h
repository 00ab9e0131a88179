/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small json-c helpers for building documents, shared by the daemon and the
 * CLI.  They never log: every failure is returned as -ENOMEM.
 */

#include <stddef.h>

#include <json-c/json.h>

/*
 * json_add() - add key: v to the object o, taking ownership of v
 *
 * v may be the NULL of a failed json_object_new_*(): that is -ENOMEM.  On
 * any failure v is released.
 *
 * Return: 0, or -ENOMEM.
 */
int json_add(json_object *o, const char *key, json_object *v);

/* json_add() of a new string. */
int json_add_string(json_object *o, const char *key, const char *value);

/*
 * json_parse_strict() - parse @len bytes of @text as one strict JSON value
 * (RFC 8259: no comments, no trailing commas, nothing but white space after
 * it), nested at most @depth deep (0: json-c's default).
 *
 * Return: 0 and the value, -ENOMEM, or -EBADMSG with a description of the
 * fault in @ret_error (static text; may be NULL).
 */
int json_parse_strict(const char *text, size_t len, int depth, json_object **ret,
		const char **ret_error);

/*
 * json_get_string() - the string member @key of @o, or NULL when it is
 * missing, not a string, or holds a NUL ("\u0000" would hide the rest of it
 * from C).  @ret_len (may be NULL) gets its length.
 */
const char *json_get_string(json_object *o, const char *key, size_t *ret_len);
