/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small json-c helpers for building documents, shared by the daemon and the
 * CLI.  They never log: every failure is returned as -ENOMEM.
 */

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
