/* SPDX-License-Identifier: MIT */

/*
 * json-c helpers that keep ownership simple: the added value always ends up
 * owned by the object or released, so callers never leak on a failed add.
 */

#include <errno.h>

#include <json-c/json.h>

#include "common/json-util.h"

int json_add(json_object *o, const char *key, json_object *v) {
	if (!v) {
		return -ENOMEM;
	}
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

int json_add_string(json_object *o, const char *key, const char *value) {
	return json_add(o, key, json_object_new_string(value));
}
