/* SPDX-License-Identifier: MIT */

/*
 * The verbs over p2pchatd's store: "history PEER", "search TEXT" and
 * "config get|set KEY [VALUE]".  Each opens its own bus connection, which
 * dies with the verb; the calls themselves are in client.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <json-c/json.h>

#include "common/bus-api.h"
#include "common/bus-errors.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "frontends/cli/client.h"
#include "frontends/cli/config-keys.h"
#include "frontends/cli/history.h"
#include "frontends/cli/message-text.h"
#include "frontends/cli/options.h"
#include "frontends/cli/output.h"

static const char *format_time(uint64_t usec, char buf[static 20]) {
	time_t t = (time_t) (usec / USEC_PER_SEC);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, 20, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		strcpy(buf, "-");
	}
	return buf;
}

static uint64_t message_time(json_object *msg) {
	json_object *v;

	/* When it arrived for incoming messages, when we sent it for ours. */
	if (json_object_object_get_ex(msg, "receivedUsec", &v) && json_object_get_uint64(v) > 0) {
		return json_object_get_uint64(v);
	}
	if (json_object_object_get_ex(msg, "sentUsec", &v)) {
		return json_object_get_uint64(v);
	}
	return 0;
}

/*
 * The STATE cell.  An incoming message is "delivered" to us until it is
 * read: say "unread" and "read", which is what matters about those.
 */
static const char *message_state_label(json_object *msg, bool in) {
	const char *state = strempty(json_get_string(msg, "state", NULL));

	if (in && streq(state, "delivered")) {
		return "unread";
	}
	return state;
}

/* Prints messages as a table, or as JSON; @with_peer adds a PEER column. */
static int print_messages(json_object *msgs, bool with_peer) {
	static const char *const headers_peer[] = { "TIME", "PEER", "FROM", "STATE", "TEXT" };
	static const char *const headers[] = { "TIME", "FROM", "STATE", "TEXT" };
	_cleanup_(table_freep) Table *t = NULL;
	size_t n = json_object_array_length(msgs);
	int r;

	if (arg_json != JSON_FORMAT_OFF) {
		return json_print(msgs, arg_json);
	}
	t = with_peer ? table_new(ELEMENTSOF(headers_peer), headers_peer) :
		table_new(ELEMENTSOF(headers), headers);
	if (!t) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *msg = json_object_array_get_idx(msgs, i);
		_cleanup_free_ char *peer = NULL, *text = NULL;
		const char *cells[5];
		char when[20];
		bool in;
		size_t k = 0;

		in = streq_ptr(json_get_string(msg, "direction", NULL), "in");
		peer = text_escape(strempty(json_get_string(msg, "peer", NULL)));
		text = text_escape(strempty(json_get_string(msg, "text", NULL)));
		if (!peer || !text) {
			return -ENOMEM;
		}
		cells[k++] = format_time(message_time(msg), when);
		if (with_peer) {
			cells[k++] = peer;
		}
		cells[k++] = in ? peer : "me";
		cells[k++] = message_state_label(msg, in);
		cells[k++] = text;
		r = table_add_row(t, cells);
		if (r < 0) {
			return r;
		}
	}
	r = table_print(t, arg_legend);
	if (r < 0) {
		return r;
	}
	if (arg_legend) {
		printf("\n%zu %s.\n", n, n == 1 ? "message" : "messages");
	}
	return 0;
}

int verb_history(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(json_object_putp) json_object *msgs = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = client_get_history(bus, argv[1], arg_limit, &error, &msgs);
	if (r < 0) {
		return log_error_errno(r, "Failed to read the history with '%s': %s", argv[1],
			client_error_message(&error, r));
	}
	r = print_messages(msgs, false);
	if (r < 0) {
		return log_error_errno(r, "Failed to print the history: %m");
	}
	return 0;
}

int verb_search(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(json_object_putp) json_object *msgs = NULL;
	_cleanup_free_ char *query = NULL;
	int r;

	/* Like "send": the words are joined by spaces. */
	r = read_message_text(argc - 1, argv + 1, &query);
	if (r < 0) {
		return log_error_errno(r, "Failed to read the search text: %m");
	}
	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = client_search_history(bus, query, arg_limit, &error, &msgs);
	if (r < 0) {
		return log_error_errno(r, "Failed to search for '%s': %s", query,
			client_error_message(&error, r));
	}
	r = print_messages(msgs, true);
	if (r < 0) {
		return log_error_errno(r, "Failed to print the search results: %m");
	}
	return 0;
}

/* "config get" without a key, "config list": every key, as a table or one object. */
static int config_list(sd_bus *bus) {
	static const char *const headers[] = { "KEY", "VALUE" };
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_(table_freep) Table *t = NULL;
	int r;

	o = json_object_new_object();
	t = table_new(ELEMENTSOF(headers), headers);
	if (!o || !t) {
		return log_oom();
	}
	for (size_t i = 0; cli_config_keys[i]; i++) {
		_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
		_cleanup_free_ char *value = NULL, *esc = NULL;
		const char *key = cli_config_keys[i];

		r = client_get_config(bus, key, &error, &value);
		if (r < 0) {
			return log_error_errno(r, "Failed to get '%s': %s", key,
				client_error_message(&error, r));
		}
		esc = text_escape(value);
		if (!esc || json_add_string(o, key, value) < 0 ||
				table_add_row(t, (const char *const[]) { key, esc }) < 0) {
			return log_oom();
		}
	}
	if (arg_json != JSON_FORMAT_OFF) {
		r = json_print(o, arg_json);
	} else {
		r = table_print(t, arg_legend);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to print the settings: %m");
	}
	return 0;
}

int verb_config(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_free_ char *value = NULL;
	const char *key = argc > 2 ? argv[2] : NULL;
	bool list;
	int r;

	list = (streq(argv[1], "get") && argc == 2) || (streq(argv[1], "list") && argc == 2);
	if (!list && !(streq(argv[1], "get") && argc == 3) &&
			!(streq(argv[1], "set") && argc == 4)) {
		return log_error_errno(EINVAL, "Usage: %s config get [KEY] | config set KEY VALUE "
			"| config list", program_invocation_short_name);
	}
	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	if (list) {
		return config_list(bus);
	}
	if (streq(argv[1], "set")) {
		const char *format = cli_config_key_format(key);

		r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, "SetConfig", &error, NULL, "ss", key, argv[3]);
		/* The daemon says the value is bad; say what a good one looks like. */
		if (r < 0 && format && sd_bus_error_has_name(&error, BUS_ERROR_INVALID_CONFIG) &&
				strncmp(strempty(error.message), "Invalid value", 13) == 0) {
			return log_error_errno(r, "Failed to set '%s': %s; %s.", key,
				error.message, format);
		}
		if (r < 0) {
			return log_error_errno(r, "Failed to set '%s': %s", key,
				client_error_message(&error, r));
		}
		return 0;
	}
	r = client_get_config(bus, key, &error, &value);
	if (r < 0) {
		return log_error_errno(r, "Failed to get '%s': %s", key,
			client_error_message(&error, r));
	}
	if (arg_json != JSON_FORMAT_OFF) {
		_cleanup_(json_object_putp) json_object *o = json_object_new_object();

		if (!o || json_add_string(o, key, value) < 0) {
			return log_oom();
		}
		return json_print(o, arg_json);
	}
	printf("%s\n", value);
	return 0;
}
