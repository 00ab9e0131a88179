/* SPDX-License-Identifier: MIT */

/*
 * Bus plumbing shared by the verbs: the connection, the Manager's calls
 * (properties, peers, history, config) and its signals.  It owns nothing
 * beyond the calls it makes: connections and messages belong to the caller.  Events are plain
 * json-c objects so that the JSON output and the text output are derived
 * from one decoding of each signal.
 */

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <json-c/json.h>

#include "common/bus-api.h"
#include "common/bus-errors.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "frontends/cli/client.h"
#include "frontends/cli/output.h"

int client_connect(sd_bus **ret) {
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	r = bus_errors_register();
	if (r < 0) {
		return log_error_errno(r, "Failed to register the D-Bus error map: %m");
	}
	r = sd_bus_open_user(&bus);
	if (r < 0) {
		return log_error_errno(r, "Failed to connect to the session bus: %m");
	}
	*ret = TAKE_PTR(bus);
	return 0;
}

const char *client_error_message(const sd_bus_error *error, int r) {
	if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
			SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
		return "p2pchatd is not running (no org.p2pchat.chat1 on the session bus).";
	}
	if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY)) {
		return "p2pchatd did not reply in time.";
	}
	if (sd_bus_error_is_set(error) && error->message && error->message[0]) {
		return error->message;
	}
	return strerror(abs(r));
}

/* "LocalEndpoint" -> "localEndpoint"; s must be shorter than 64 bytes. */
static void camel_case(const char *s, char buf[static 64]) {
	(void) snprintf(buf, 64, "%s", s);
	buf[0] = (char) tolower((unsigned char) buf[0]);
}

/* Reads one variant's contents (basic types only; others are skipped). */
static int read_variant(sd_bus_message *m, json_object **ret) {
	const char *contents;
	char type;
	int r;

	r = sd_bus_message_peek_type(m, &type, &contents);
	if (r < 0) {
		return r;
	}
	if (type != SD_BUS_TYPE_VARIANT || !contents) {
		return -EBADMSG;
	}

	r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
	if (r < 0) {
		return r;
	}

	json_object *j = NULL;
	union {
		int b;
		uint8_t y;
		int16_t n;
		uint16_t q;
		int32_t i;
		uint32_t u;
		int64_t x;
		uint64_t t;
		double d;
		const char *s;
	} v;

	if (strlen(contents) != 1) {
		r = sd_bus_message_skip(m, contents);
		if (r < 0) {
			return r;
		}
		return sd_bus_message_exit_container(m) < 0 ? -EBADMSG : 0;
	}

	r = sd_bus_message_read_basic(m, contents[0], &v);
	if (r < 0) {
		return r;
	}
	switch (contents[0]) {
	case SD_BUS_TYPE_BOOLEAN:
		j = json_object_new_boolean(v.b);
		break;
	case SD_BUS_TYPE_BYTE:
		j = json_object_new_int(v.y);
		break;
	case SD_BUS_TYPE_INT16:
		j = json_object_new_int(v.n);
		break;
	case SD_BUS_TYPE_UINT16:
		j = json_object_new_int(v.q);
		break;
	case SD_BUS_TYPE_INT32:
		j = json_object_new_int(v.i);
		break;
	case SD_BUS_TYPE_UINT32:
		j = json_object_new_int64(v.u);
		break;
	case SD_BUS_TYPE_INT64:
		j = json_object_new_int64(v.x);
		break;
	case SD_BUS_TYPE_UINT64:
		j = json_object_new_uint64(v.t);
		break;
	case SD_BUS_TYPE_DOUBLE:
		j = json_object_new_double(v.d);
		break;
	case SD_BUS_TYPE_STRING:
	case SD_BUS_TYPE_OBJECT_PATH:
	case SD_BUS_TYPE_SIGNATURE:
		j = json_object_new_string(v.s);
		break;
	default:
		/* A unix fd: shown as null. */
		j = NULL;
		break;
	}
	if (!j && contents[0] != SD_BUS_TYPE_UNIX_FD) {
		return -ENOMEM;
	}

	r = sd_bus_message_exit_container(m);
	if (r < 0) {
		json_object_put(j);
		return r;
	}
	*ret = j;
	return 1;
}

/* Reads "a{sv}"; with camel set, keys get a lower-case first letter. */
static int read_dict(sd_bus_message *m, bool camel, json_object **ret) {
	_cleanup_(json_object_putp) json_object *o = NULL;
	int r;

	o = json_object_new_object();
	if (!o) {
		return -ENOMEM;
	}
	r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
	if (r < 0) {
		return r;
	}
	for (;;) {
		_cleanup_(json_object_putp) json_object *v = NULL;
		char key[64];
		const char *k;

		r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv");
		if (r < 0) {
			return r;
		}
		if (r == 0) {
			break;
		}
		r = sd_bus_message_read(m, "s", &k);
		if (r < 0) {
			return r;
		}
		r = read_variant(m, &v);
		if (r < 0) {
			return r;
		}
		if (r > 0) {
			if (camel) {
				camel_case(k, key);
			} else {
				(void) snprintf(key, sizeof(key), "%s", k);
			}
			/* Not json_add(): v is NULL, a JSON null, for a unix fd. */
			if (json_object_object_add(o, key, v) < 0) {
				return -ENOMEM;
			}
			v = NULL; /* o owns it now */
		}
		r = sd_bus_message_exit_container(m);
		if (r < 0) {
			return r;
		}
	}
	r = sd_bus_message_exit_container(m);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

int client_read_extra(sd_bus_message *m, json_object **ret) {
	return read_dict(m, false, ret);
}

/* The signals and the names of their leading string arguments. */
static const struct {
	const char *member;
	const char *event;
	const char *signature;
	const char *keys[3];
} signal_table[] = {
	{ "PeerJoined", "peerJoined", "ss", { "name", "endpoint" } },
	{ "PeerLeft", "peerLeft", "s", { "name" } },
	{ "MessageReceived", "messageReceived", "sss", { "id", "peer", "text" } },
	/* Every newly stored outgoing message, whichever client sent it. */
	{ "MessageQueued", "messageQueued", "sss", { "id", "peer", "text" } },
	{ "MessageDelivered", "messageDelivered", "ss", { "id", "peer" } },
	/* Sent to a reference peer, which never acknowledges. */
	{ "MessageSent", "messageSent", "ss", { "id", "peer" } },
	{ "MessageFailed", "messageFailed", "sss", { "id", "peer", "reason" } },
	/* queued, sent, delivered, failed, read. */
	{ "MessageStateChanged", "messageStateChanged", "sss", { "id", "peer", "state" } },
};

static int event_from_properties_changed(sd_bus_message *m, json_object **ret) {
	_cleanup_(json_object_putp) json_object *o = NULL, *ev = NULL;
	const char *iface;
	int r;

	r = sd_bus_message_read(m, "s", &iface);
	if (r < 0) {
		return r;
	}
	if (!streq(iface, P2PCHAT_MANAGER_INTERFACE)) {
		return 0;
	}
	r = read_dict(m, true, &o);
	if (r < 0) {
		return r;
	}
	if (json_object_object_length(o) == 0) {
		/* Only invalidated properties: nothing worth an event. */
		return 0;
	}
	/* "event" goes first, like in every other event. */
	ev = json_object_new_object();
	if (!ev || json_add_string(ev, "event", "propertiesChanged") < 0) {
		return -ENOMEM;
	}
	json_object_object_foreach(o, key, value) {
		if (json_object_object_add(ev, key, json_object_get(value)) < 0) {
			return -ENOMEM;
		}
	}
	*ret = TAKE_PTR(ev);
	return 1;
}

static int event_from_signal(sd_bus_message *m, json_object **ret) {
	_cleanup_(json_object_putp) json_object *o = NULL, *extra = NULL;
	size_t i;
	int r;

	if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties",
			"PropertiesChanged")) {
		return event_from_properties_changed(m, ret);
	}
	if (!streq_ptr(sd_bus_message_get_interface(m), P2PCHAT_MANAGER_INTERFACE)) {
		return 0;
	}
	for (i = 0; i < ELEMENTSOF(signal_table); i++) {
		if (sd_bus_message_is_signal(m, NULL, signal_table[i].member)) {
			break;
		}
	}
	if (i >= ELEMENTSOF(signal_table)) {
		return 0;
	}

	o = json_object_new_object();
	if (!o) {
		return -ENOMEM;
	}
	r = json_add_string(o, "event", signal_table[i].event);
	if (r < 0) {
		return r;
	}
	for (size_t k = 0; k < strlen(signal_table[i].signature); k++) {
		const char *s;

		r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s);
		if (r <= 0) {
			return r < 0 ? r : -EBADMSG;
		}
		r = json_add_string(o, signal_table[i].keys[k], s);
		if (r < 0) {
			return r;
		}
	}
	/* The one vocabulary: a peer's name is "peer" everywhere ("name" stays). */
	if (streq(signal_table[i].keys[0], "name") &&
			json_add_string(o, "peer", json_get_string(o, "name", NULL)) < 0) {
		return -ENOMEM;
	}
	if (streq(signal_table[i].member, "MessageReceived") ||
			streq(signal_table[i].member, "MessageQueued")) {
		uint64_t ts;

		r = sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT64, &ts);
		if (r <= 0) {
			return r < 0 ? r : -EBADMSG;
		}
		/* "sentUsec" as in the history; "timestampUsec" is the old name. */
		if (json_add(o, "sentUsec", json_object_new_uint64(ts)) < 0 ||
				json_add(o, "timestampUsec", json_object_new_uint64(ts)) < 0) {
			return -ENOMEM;
		}
	}
	r = read_dict(m, false, &extra);
	if (r < 0) {
		return r;
	}
	if (json_add(o, "extra", TAKE_PTR(extra)) < 0) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 1;
}

int client_event_from_signal(sd_bus_message *m, json_object **ret) {
	int r;

	r = event_from_signal(m, ret);
	if (r < 0) {
		log_debug_errno(r, "Ignoring malformed %s signal: %m",
			strempty(sd_bus_message_get_member(m)));
		return 0;
	}
	return r;
}

bool event_is(json_object *ev, const char *name) {
	return streq_ptr(json_get_string(ev, "event", NULL), name);
}

/* "key: value, key: value" for a propertiesChanged event. */
static char *format_properties(json_object *ev) {
	char *buf = NULL;
	size_t size = 0;
	FILE *f;
	bool first = true;

	f = open_memstream(&buf, &size);
	if (!f) {
		return NULL;
	}
	json_object_object_foreach(ev, key, value) {
		_cleanup_free_ char *esc = NULL;

		if (streq(key, "event")) {
			continue;
		}
		esc = text_escape(json_object_get_string(value));
		if (!esc) {
			(void) fclose(f);
			return mfree(buf);
		}
		fprintf(f, "%s%s: %s", first ? "" : ", ", key, esc);
		first = false;
	}
	if (fclose(f) != 0) {
		return mfree(buf);
	}
	return buf;
}

/* The escaped string field key of ev ("" when absent), or NULL on OOM. */
static char *event_dup_escaped(json_object *ev, const char *key) {
	return text_escape(strempty(json_get_string(ev, key, NULL)));
}

char *event_format_line(json_object *ev, bool show_ids) {
	_cleanup_free_ char *text = NULL, *reason = NULL, *props = NULL, *peer = NULL,
		*name = NULL, *id = NULL, *endpoint = NULL;
	uint64_t ts = now_usec(CLOCK_REALTIME);
	char clock[9], *line = NULL;
	json_object *v;
	int r = -EINVAL;

	/* Everything here may come from the network: escape it all. */
	peer = event_dup_escaped(ev, "peer");
	name = event_dup_escaped(ev, "name");
	id = event_dup_escaped(ev, "id");
	endpoint = event_dup_escaped(ev, "endpoint");
	text = event_dup_escaped(ev, "text");
	reason = event_dup_escaped(ev, "reason");
	if (!peer || !name || !id || !endpoint || !text || !reason) {
		return NULL;
	}
	if (!show_ids) {
		id[0] = '\0';
	}

	if (json_object_object_get_ex(ev, "timestampUsec", &v)) {
		ts = json_object_get_uint64(v);
	}
	format_clock(ts, clock);

	if (event_is(ev, "messageReceived")) {
		r = asprintf(&line, "%s[%s]%s %s%s:%s %s", ansi_grey(), clock, ansi_normal(),
			ansi_highlight(), peer, ansi_normal(), text);
	} else if (event_is(ev, "messageQueued")) {
		/* chat (no ids) is about one peer: "me: …" says it all. */
		if (show_ids) {
			r = asprintf(&line, "%s[%s]%s %sme to %s:%s %s %s(message %s queued)%s",
				ansi_grey(), clock, ansi_normal(), ansi_highlight(), peer,
				ansi_normal(), text, ansi_grey(), id, ansi_normal());
		} else {
			r = asprintf(&line, "%s[%s]%s %sme:%s %s", ansi_grey(), clock,
				ansi_normal(), ansi_highlight(), ansi_normal(), text);
		}
	} else if (event_is(ev, "peerJoined")) {
		r = asprintf(&line, "%s[%s]%s %s* %s is online (%s)%s", ansi_grey(), clock,
			ansi_normal(), ansi_green(), name, endpoint, ansi_normal());
	} else if (event_is(ev, "peerLeft")) {
		r = asprintf(&line, "%s[%s]%s %s* %s is offline%s", ansi_grey(), clock,
			ansi_normal(), ansi_grey(), name, ansi_normal());
	} else if (event_is(ev, "messageDelivered")) {
		r = asprintf(&line, "%s[%s] * message %s%sdelivered to %s%s", ansi_grey(),
			clock, id, id[0] ? " " : "", peer, ansi_normal());
	} else if (event_is(ev, "messageSent")) {
		r = asprintf(&line, "%s[%s] * message %s%ssent to %s (no delivery receipt)%s",
			ansi_grey(), clock, id, id[0] ? " " : "", peer, ansi_normal());
	} else if (event_is(ev, "messageFailed")) {
		r = asprintf(&line, "%s[%s]%s %s! message %s%sto %s failed: %s%s", ansi_grey(),
			clock, ansi_normal(), ansi_red(), id, id[0] ? " " : "", peer, reason,
			ansi_normal());
	} else if (event_is(ev, "messageStateChanged")) {
		_cleanup_free_ char *state = event_dup_escaped(ev, "state");

		if (!state) {
			return NULL;
		}
		r = asprintf(&line, "%s[%s] * message %s%s%s %s: %s%s", ansi_grey(), clock, id,
			id[0] ? " " : "", streq(state, "read") ? "from" : "to", peer, state,
			ansi_normal());
	} else if (event_is(ev, "propertiesChanged")) {
		props = format_properties(ev);
		if (!props) {
			return NULL;
		}
		r = asprintf(&line, "%s[%s] * %s%s", ansi_grey(), clock, props, ansi_normal());
	}
	return r < 0 ? NULL : line;
}

int client_read_properties(sd_bus_message *m, json_object **ret) {
	return read_dict(m, true, ret);
}

int client_get_manager(sd_bus *bus, sd_bus_error *error, json_object **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		"org.freedesktop.DBus.Properties", "GetAll", error, &reply, "s",
		P2PCHAT_MANAGER_INTERFACE);
	if (r < 0) {
		return r;
	}
	return client_read_properties(reply, ret);
}

static int compare_peer_names(const void *a, const void *b) {
	json_object *const *x = a, *const *y = b;

	return strcmp(strempty(json_get_string(*x, "name", NULL)),
		strempty(json_get_string(*y, "name", NULL)));
}

/* Reads one (ssba{sv}) into a peer object. */
static int read_peer(sd_bus_message *m, json_object **ret) {
	_cleanup_(json_object_putp) json_object *o = NULL, *extra = NULL;
	const char *name, *endpoint;
	json_object *native = NULL, *unread = NULL;
	int online, r;

	r = sd_bus_message_enter_container(m, SD_BUS_TYPE_STRUCT, "ssba{sv}");
	if (r <= 0) {
		return r;
	}
	r = sd_bus_message_read(m, "ssb", &name, &endpoint, &online);
	if (r < 0) {
		return r;
	}
	r = client_read_extra(m, &extra);
	if (r < 0) {
		return r;
	}
	r = sd_bus_message_exit_container(m);
	if (r < 0) {
		return r;
	}

	o = json_object_new_object();
	if (!o || json_add_string(o, "peer", name) < 0 ||
			json_add_string(o, "name", name) < 0 ||
			json_add_string(o, "endpoint", endpoint) < 0) {
		return -ENOMEM;
	}
	if (!json_object_object_get_ex(extra, "native", &native) ||
			!json_object_is_type(native, json_type_boolean)) {
		native = NULL;
	}
	if (!json_object_object_get_ex(extra, "unread", &unread) ||
			!json_object_is_type(unread, json_type_int)) {
		unread = NULL;
	}
	if (json_add(o, "unread", json_object_new_int64(unread ?
				json_object_get_int64(unread) : 0)) < 0 ||
			json_add(o, "online", json_object_new_boolean(online)) < 0 ||
			json_add(o, "native", json_object_new_boolean(native &&
				json_object_get_boolean(native))) < 0 ||
			json_add(o, "extra", TAKE_PTR(extra)) < 0) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 1;
}

int client_list_peers(sd_bus *bus, sd_bus_error *error, json_object **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_(json_object_putp) json_object *a = NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "ListPeers", error, &reply, NULL);
	if (r < 0) {
		return r;
	}
	a = json_object_new_array();
	if (!a) {
		return -ENOMEM;
	}
	r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(ssba{sv})");
	if (r < 0) {
		return sd_bus_error_set_errno(error, r);
	}
	for (;;) {
		json_object *p = NULL;

		r = read_peer(reply, &p);
		if (r < 0) {
			return sd_bus_error_set_errno(error, r);
		}
		if (r == 0) {
			break;
		}
		if (json_object_array_add(a, p) < 0) {
			json_object_put(p);
			return -ENOMEM;
		}
	}
	json_object_array_sort(a, compare_peer_names);
	*ret = TAKE_PTR(a);
	return 0;
}

/* Reads a(ssssttsa{sv}) into a JSON array of message objects. */
static int read_messages(sd_bus_message *reply, json_object **ret) {
	_cleanup_(json_object_putp) json_object *a = NULL;
	int r;

	a = json_object_new_array();
	if (!a) {
		return -ENOMEM;
	}
	r = sd_bus_message_enter_container(reply, 'a', "(ssssttsa{sv})");
	if (r < 0) {
		return r;
	}
	for (;;) {
		_cleanup_(json_object_putp) json_object *o = NULL, *extra = NULL;
		const char *id, *peer, *direction, *text, *state;
		uint64_t sent, received;

		r = sd_bus_message_enter_container(reply, 'r', "ssssttsa{sv}");
		if (r < 0) {
			return r;
		}
		if (r == 0) {
			break;
		}
		r = sd_bus_message_read(reply, "sssstts", &id, &peer, &direction, &text, &sent,
			&received, &state);
		if (r < 0) {
			return r;
		}
		r = client_read_extra(reply, &extra);
		if (r < 0) {
			return r;
		}
		r = sd_bus_message_exit_container(reply);
		if (r < 0) {
			return r;
		}
		o = json_object_new_object();
		if (!o || json_add_string(o, "id", id) < 0 ||
				json_add_string(o, "peer", peer) < 0 ||
				json_add_string(o, "direction", direction) < 0 ||
				json_add_string(o, "text", text) < 0 ||
				json_add(o, "sentUsec", json_object_new_uint64(sent)) < 0 ||
				json_add(o, "receivedUsec", json_object_new_uint64(received)) < 0 ||
				json_add_string(o, "state", state) < 0 ||
				json_add(o, "extra", TAKE_PTR(extra)) < 0 ||
				json_object_array_add(a, o) < 0) {
			return -ENOMEM;
		}
		TAKE_PTR(o);
	}
	r = sd_bus_message_exit_container(reply);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

int client_get_history(sd_bus *bus, const char *peer, unsigned limit, sd_bus_error *error,
		json_object **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "GetHistory", error, &reply, "sus", peer,
		(uint32_t) limit, "");
	if (r < 0) {
		return r;
	}
	return read_messages(reply, ret);
}

int client_search_history(sd_bus *bus, const char *text, unsigned limit,
		sd_bus_error *error, json_object **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "SearchHistory", error, &reply, "su", text,
		(uint32_t) limit);
	if (r < 0) {
		return r;
	}
	return read_messages(reply, ret);
}

int client_get_config(sd_bus *bus, const char *key, sd_bus_error *error, char **ret) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *value;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "GetConfig", error, &reply, "s", key);
	if (r < 0) {
		return r;
	}
	r = sd_bus_message_read(reply, "s", &value);
	if (r < 0) {
		return r;
	}
	*ret = strdup(value);
	return *ret ? 0 : -ENOMEM;
}

int client_attach_event(sd_bus *bus, sd_event **ret) {
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	sigset_t mask;
	int r;

	r = sd_event_default(&event);
	if (r < 0) {
		return log_error_errno(r, "Failed to allocate the event loop: %m");
	}

	(void) sigemptyset(&mask);
	(void) sigaddset(&mask, SIGINT);
	(void) sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		return log_error_errno(errno, "Failed to block signals: %m");
	}
	/* A NULL handler ends the loop with the userdata as exit code: 0. */
	r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
	if (r >= 0) {
		r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to watch SIGINT and SIGTERM: %m");
	}

	r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
	}
	r = sd_bus_set_exit_on_disconnect(bus, true);
	if (r < 0) {
		return log_error_errno(r, "Failed to watch the bus connection: %m");
	}
	*ret = TAKE_PTR(event);
	return 0;
}

int client_subscribe(sd_bus *bus, sd_bus_message_handler_t callback, void *userdata) {
	int r;

	/*
	 * The sender is the well-known name: the broker matches it against its
	 * owner at delivery time, so a restarted daemon is still heard and
	 * another client on the bus cannot forge the daemon's signals.
	 */
	r = sd_bus_match_signal(bus, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, NULL, callback, userdata);
	if (r < 0) {
		return log_error_errno(r, "Failed to subscribe to p2pchatd signals: %m");
	}
	r = sd_bus_match_signal(bus, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		"org.freedesktop.DBus.Properties", "PropertiesChanged", callback, userdata);
	if (r < 0) {
		return log_error_errno(r, "Failed to subscribe to p2pchatd properties: %m");
	}
	/* Tests wait for this line (P2PCHAT_DEBUG=1) before they make events. */
	log_debug("Subscribed to the signals of p2pchatd.");
	return 0;
}
