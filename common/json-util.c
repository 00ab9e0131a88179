/* SPDX-License-Identifier: MIT */

/*
 * json-c helpers that keep ownership simple: the added value always ends up
 * owned by the object or released, so callers never leak on a failed add.
 */

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <json-c/json.h>

#include "common/json-util.h"
#include "common/macro.h"

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

static bool is_json_space(char c) {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int json_parse_strict(const char *text, size_t len, int depth, json_object **ret,
		const char **ret_error) {
	_cleanup_(json_object_putp) json_object *o = NULL;
	enum json_tokener_error jerr;
	json_tokener *tok;
	size_t end;

	if (len > INT_MAX) {
		if (ret_error) {
			*ret_error = "too long";
		}
		return -EBADMSG;
	}
	tok = json_tokener_new_ex(depth > 0 ? depth : JSON_TOKENER_DEFAULT_DEPTH);
	if (!tok) {
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int) len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (!o || jerr != json_tokener_success) {
		if (ret_error) {
			*ret_error = jerr == json_tokener_continue || jerr == json_tokener_success
					? "unexpected end of file"
					: json_tokener_error_desc(jerr);
		}
		return -EBADMSG;
	}
	for (; end < len; end++) {
		if (!is_json_space(text[end])) {
			if (ret_error) {
				*ret_error = "unexpected text after the value";
			}
			return -EBADMSG;
		}
	}
	*ret = TAKE_PTR(o);
	return 0;
}

const char *json_get_string(json_object *o, const char *key, size_t *ret_len) {
	json_object *v;
	const char *s;
	int len;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
		return NULL;
	}
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (!s || len < 0 || strlen(s) != (size_t) len) {
		return NULL;
	}
	if (ret_len) {
		*ret_len = (size_t) len;
	}
	return s;
}
