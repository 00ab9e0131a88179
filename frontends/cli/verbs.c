/* SPDX-License-Identifier: MIT */

/*
 * The one-shot verbs (status, login, logout, peers, send, fingerprint,
 * trust-coordinator, ...) and listen.  Each
 * opens its own bus connection, which dies with the verb; chat lives in
 * chat.c.
 */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <json-c/json.h>

#include "common/bus-api.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "frontends/cli/client.h"
#include "frontends/cli/config-keys.h"
#include "frontends/cli/message-text.h"
#include "frontends/cli/options.h"
#include "frontends/cli/output.h"
#include "frontends/cli/verbs.h"

#define LOGIN_TIMEOUT_USEC (90 * USEC_PER_SEC)
/* How long send waits for its MessageQueued signal (unknown peer or not). */
#define QUEUED_WAIT_USEC (1 * USEC_PER_SEC)

static int count_online(json_object *peers) {
	int n = 0;

	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		json_object *online;

		if (json_object_object_get_ex(json_object_array_get_idx(peers, i), "online",
				&online) && json_object_get_boolean(online)) {
			n++;
		}
	}
	return n;
}

/* Builds the status object: Manager properties plus "peersOnline". */
static int get_status(sd_bus *bus, sd_bus_error *error, json_object **ret) {
	_cleanup_(sd_bus_error_free) sd_bus_error peers_error = SD_BUS_ERROR_NULL;
	_cleanup_(json_object_putp) json_object *o = NULL, *peers = NULL;
	int r;

	r = client_get_manager(bus, error, &o);
	if (r < 0) {
		return r;
	}
	/* Offline, the daemon may refuse ListPeers: that is zero peers. */
	r = client_list_peers(bus, &peers_error, &peers);
	if (json_add(o, "peersOnline", json_object_new_int(r < 0 ? 0 : count_online(peers))) < 0) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int print_status(json_object *o) {
	static const struct {
		const char *key;
		const char *label;
	} fields[] = {
		{ "state", "State" },
		{ "username", "Username" },
		{ "coordinator", "Coordinator" },
		{ "localEndpoint", "Local endpoint" },
		{ "peersOnline", "Peers online" },
		{ "storage", "Storage" },
		{ "storageError", "Storage error" },
		{ "fingerprint", "Fingerprint" },
		{ "coordinatorFingerprint", "Coordinator key" },
		{ "offlineReason", "Offline reason" },
	};

	if (arg_json != JSON_FORMAT_OFF) {
		return json_print(o, arg_json);
	}
	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *v = NULL;
		json_object *j;

		if (json_object_object_get_ex(o, fields[i].key, &j)) {
			v = json_object_get_string(j);
		}
		if ((streq(fields[i].key, "storageError") || streq(fields[i].key, "offlineReason")) &&
				(!v || !v[0])) {
			continue; /* only when there is one */
		}
		if (streq(fields[i].key, "coordinatorFingerprint")) {
			/* Online with a coordinator that proves no key: say so. */
			if (!streq_ptr(json_get_string(o, "state", NULL), "online")) {
				continue;
			}
			if (!v || !v[0]) {
				v = "none: a reference server, not authenticated";
			}
		}
		if (streq(fields[i].key, "state") && streq_ptr(v, "connecting")) {
			/* The daemon gives no reason: say what it is waiting for. */
			printf("%s%15s:%s connecting (to %s; no answer from the coordinator "
				"yet)\n", ansi_highlight(), fields[i].label, ansi_normal(),
				strempty(json_get_string(o, "coordinator", NULL)));
			continue;
		}
		printf("%s%15s:%s %s\n", ansi_highlight(), fields[i].label, ansi_normal(),
			v && v[0] ? v : "-");
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* Gets and prints the status (text or --json); logs. */
static int show_status(sd_bus *bus) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	int r;

	r = get_status(bus, &error, &o);
	if (r < 0) {
		return log_error_errno(r, "Failed to get status: %s",
			client_error_message(&error, r));
	}
	r = print_status(o);
	if (r < 0) {
		return log_error_errno(r, "Failed to print status: %m");
	}
	return 0;
}

int verb_status(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	return show_status(bus);
}

/* After login and logout, --json prints the new status. */
static int print_status_if_json(sd_bus *bus) {
	return arg_json == JSON_FORMAT_OFF ? 0 : show_status(bus);
}

typedef struct LoginCall {
	bool done;
	sd_bus_error error;
} LoginCall;

static int on_login_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	LoginCall *l = userdata;

	l->done = true;
	if (sd_bus_message_is_method_error(m, NULL)) {
		(void) sd_bus_error_copy(&l->error, sd_bus_message_get_error(m));
	}
	return 0;
}

/*
 * Runs the bus until the Login call is answered or SIGINT/SIGTERM come (both
 * blocked, polled between short waits: sd_event would close the bus when
 * it ends, and we still need it then).  On a terminal, a dot a second.
 * Return: 0 answered, -EINTR interrupted, other negative errno.
 */
static int login_wait(sd_bus *bus, LoginCall *l, bool progress) {
	const struct timespec zero = {};
	uint64_t next_dot = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;
	sigset_t mask;
	int r;

	(void) sigemptyset(&mask);
	(void) sigaddset(&mask, SIGINT);
	(void) sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		return -errno;
	}
	while (!l->done) {
		r = sd_bus_process(bus, NULL);
		if (r < 0) {
			return r;
		}
		if (r > 0) {
			continue;
		}
		if (sigtimedwait(&mask, NULL, &zero) >= 0) {
			return -EINTR;
		}
		if (progress && now_usec(CLOCK_MONOTONIC) >= next_dot) {
			(void) fputc('.', stderr);
			(void) fflush(stderr);
			next_dot += USEC_PER_SEC;
		}
		r = sd_bus_wait(bus, 100 * USEC_PER_MSEC);
		if (r < 0 && r != -EINTR) {
			return r;
		}
	}
	return 0;
}

int verb_login(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	_cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	const char *name = argv[1], *coordinator = arg_coordinator;
	_cleanup_free_ char *configured = NULL;
	LoginCall l = { .error = SD_BUS_ERROR_NULL };
	bool progress = isatty(STDERR_FILENO);
	int r;

	if (!coordinator) {
		coordinator = getenv("P2PCHAT_COORDINATOR");
	}
	/* Checked here: the daemon's own message only knows IP addresses. */
	if (coordinator && coordinator[0] && !cli_coordinator_is_valid(coordinator)) {
		return log_error_errno(EINVAL, "Invalid coordinator '%s': %s.", coordinator,
			cli_config_key_format("coordinator"));
	}

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	/* Then the daemon's config ("coordinator"), then the built-in default. */
	if ((!coordinator || !coordinator[0]) &&
			client_get_config(bus, "coordinator", NULL, &configured) >= 0 &&
			configured[0]) {
		coordinator = configured;
	}
	if (!coordinator || !coordinator[0]) {
		coordinator = DEFAULT_COORDINATOR;
	}
	r = sd_bus_message_new_method_call(bus, &m, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "Login");
	if (r >= 0) {
		r = sd_bus_message_append(m, "ss", name, coordinator);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to build the login call for '%s': %m", name);
	}
	/* The daemon answers once online or after its own bounded retries. */
	r = sd_bus_call_async(bus, &slot, m, on_login_reply, &l, LOGIN_TIMEOUT_USEC);
	if (r < 0) {
		return log_error_errno(r, "Failed to log in as '%s' at '%s': %m", name,
			coordinator);
	}
	if (progress) {
		(void) fprintf(stderr, "Connecting to %s...", coordinator);
		(void) fflush(stderr);
	}
	r = login_wait(bus, &l, progress);
	if (progress) {
		/* Wipe the progress line: what follows is the result alone. */
		(void) fputs("\r\033[K", stderr);
		(void) fflush(stderr);
	}
	if (r == -EINTR) {
		/* Stop the daemon's attempt as well: it would go on for seconds. */
		slot = sd_bus_slot_unref(slot);
		(void) sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, "Logout", NULL, NULL, NULL);
		return log_error_errno(r, "Failed to log in as '%s' at '%s': interrupted.",
			name, coordinator);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to log in as '%s' at '%s': %m", name,
			coordinator);
	}
	if (sd_bus_error_is_set(&l.error)) {
		r = -sd_bus_error_get_errno(&l.error);
		r = r < 0 ? r : -EIO;
		log_error_errno(r, "Failed to log in as '%s' at '%s': %s", name, coordinator,
			client_error_message(&l.error, r));
		sd_bus_error_free(&l.error);
		return r;
	}
	return print_status_if_json(bus);
}

int verb_logout(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "Logout", &error, NULL, NULL);
	if (r < 0) {
		return log_error_errno(r, "Failed to log out: %s",
			client_error_message(&error, r));
	}
	return print_status_if_json(bus);
}

int verb_peers(int argc, char *argv[], void *userdata) {
	static const char *const headers[] = {
		"NAME", "ENDPOINT", "ONLINE", "NATIVE", "UNREAD",
	};
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(json_object_putp) json_object *peers = NULL;
	_cleanup_(table_freep) Table *t = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = client_list_peers(bus, &error, &peers);
	if (r < 0) {
		return log_error_errno(r, "Failed to list peers: %s",
			client_error_message(&error, r));
	}
	if (arg_json != JSON_FORMAT_OFF) {
		r = json_print(peers, arg_json);
		if (r < 0) {
			return log_error_errno(r, "Failed to print peers: %m");
		}
		return 0;
	}

	t = table_new(ELEMENTSOF(headers), headers);
	if (!t) {
		return log_oom();
	}
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		json_object *p = json_object_array_get_idx(peers, i), *online, *native, *unread;
		_cleanup_free_ char *name = NULL, *endpoint = NULL;
		const char *cells[5];
		char count[24];

		(void) json_object_object_get_ex(p, "online", &online);
		(void) json_object_object_get_ex(p, "native", &native);
		(void) json_object_object_get_ex(p, "unread", &unread);
		(void) snprintf(count, sizeof(count), "%" PRId64, json_object_get_int64(unread));
		/* Names come from the network: escape them for the terminal. */
		name = text_escape(strempty(json_get_string(p, "name", NULL)));
		endpoint = text_escape(strempty(json_get_string(p, "endpoint", NULL)));
		if (!name || !endpoint) {
			return log_oom();
		}
		cells[0] = name;
		cells[1] = endpoint;
		cells[2] = json_object_get_boolean(online) ? "yes" : "no";
		cells[3] = json_object_get_boolean(native) ? "yes" : "no";
		cells[4] = count;
		r = table_add_row(t, cells);
		if (r < 0) {
			return log_oom();
		}
	}
	r = table_print(t, arg_legend);
	if (r < 0) {
		return log_error_errno(r, "Failed to print peers: %m");
	}
	if (arg_legend) {
		printf("\n%zu %s listed.\n", table_get_rows(t),
			table_get_rows(t) == 1 ? "peer" : "peers");
	}
	return 0;
}

typedef struct SendWait {
	const char *peer;
	char *id;                /* NULL until SendMessage replied */
	bool queued;             /* its MessageQueued came */
	bool unknown;            /* ... saying the peer was never seen */
	char *expiry;            /* then: outbox-expiry, NULL if unknown */
	json_object *outcome;    /* messageDelivered/Sent/Failed event */
} SendWait;

static void send_get_expiry(sd_bus *bus, SendWait *w);

static int on_send_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	_cleanup_(json_object_putp) json_object *ev = NULL;
	SendWait *w = userdata;
	json_object *extra, *unknown;

	if (client_event_from_signal(m, &ev) <= 0) {
		return 0;
	}
	if (!w->id || !streq_ptr(json_get_string(ev, "id", NULL), w->id)) {
		return 0;
	}
	if (event_is(ev, "messageQueued")) {
		w->queued = true;
		w->unknown = json_object_object_get_ex(ev, "extra", &extra) &&
			json_object_object_get_ex(extra, "unknown", &unknown) &&
			json_object_get_boolean(unknown);
		/* Asked now: the bus closes with the event loop. */
		if (w->unknown && !w->expiry) {
			send_get_expiry(sd_bus_message_get_bus(m), w);
		}
		if (!arg_wait) {
			return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
		}
		return 0;
	}
	if (!arg_wait || w->outcome ||
			!(event_is(ev, "messageDelivered") || event_is(ev, "messageSent") ||
				event_is(ev, "messageFailed"))) {
		return 0;
	}
	w->outcome = TAKE_PTR(ev);
	return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
}

static int on_wait_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
	return sd_event_exit(sd_event_source_get_event(s), ETIMEDOUT);
}

/* The config's outbox-expiry, for the note on an unknown peer. */
static void send_get_expiry(sd_bus *bus, SendWait *w) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	r = client_get_config(bus, "outbox-expiry", &error, &w->expiry);
	if (r < 0) {
		log_debug_errno(r, "Failed to get 'outbox-expiry', ignoring: %s",
			client_error_message(&error, r));
	}
}

/* "bob is not known yet; queued for 7 days", on stderr: stdout is the id. */
static void send_note_unknown(SendWait *w) {
	char human[64];

	if (!w->expiry) {
		log_notice("%s is not known yet; queued until it comes online.", w->peer);
		return;
	}
	log_notice("%s is not known yet; queued for %s.", w->peer,
		cli_format_duration(w->expiry, human, sizeof(human)));
}

/* Prints {"id", "peer", "status"[, "reason"]} for --json. */
static int send_print_json(SendWait *w, const char *status, const char *reason) {
	_cleanup_(json_object_putp) json_object *o = NULL;

	o = json_object_new_object();
	if (!o || json_add_string(o, "id", w->id) < 0 ||
			json_add_string(o, "peer", w->peer) < 0 ||
			(status && json_add_string(o, "status", status) < 0) ||
			(reason && json_add_string(o, "reason", reason) < 0) ||
			(w->unknown && json_add(o, "unknown", json_object_new_boolean(true)) < 0)) {
		return log_oom();
	}
	return json_print(o, arg_json);
}

/* Waits for the outcome of w->id, printing it; returns 0 only if delivered. */
static int send_wait(sd_event *event, SendWait *w) {
	const char *reason;
	int r;

	r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg_timeout_usec, 0,
		on_wait_timeout, NULL);
	if (r < 0) {
		return log_error_errno(r, "Failed to arm the timeout: %m");
	}
	r = sd_event_loop(event);
	if (r < 0) {
		return log_error_errno(r, "Failed to run the event loop: %m");
	}
	if (w->unknown) {
		send_note_unknown(w);
	}
	if (r == ETIMEDOUT) {
		/* Scripts get the id and what became of it, timeouts included. */
		if (arg_json != JSON_FORMAT_OFF && send_print_json(w, "timeout", NULL) < 0) {
			return log_error_errno(EIO, "Failed to print the outcome: %m");
		}
		return log_error_errno(ETIMEDOUT,
			"Failed to confirm delivery of message %s to '%s': no outcome "
			"within %" PRIu64 " s.", w->id, w->peer, arg_timeout_usec / USEC_PER_SEC);
	}
	if (!w->outcome) {
		return log_error_errno(r == 0 ? EINTR : ECONNRESET,
			"Failed to confirm delivery of message %s to '%s': %s.", w->id, w->peer,
			r == 0 ? "interrupted" : "lost the bus connection");
	}

	reason = strempty(json_get_string(w->outcome, "reason", NULL));
	if (arg_json != JSON_FORMAT_OFF) {
		const char *status = event_is(w->outcome, "messageDelivered") ? "delivered" :
			event_is(w->outcome, "messageSent") ? "sent" : "failed";

		r = send_print_json(w, status, streq(status, "failed") ? reason : NULL);
		if (r < 0) {
			return log_error_errno(r, "Failed to print the outcome: %m");
		}
	} else if (event_is(w->outcome, "messageDelivered")) {
		printf("Delivered to %s.\n", w->peer);
	} else if (event_is(w->outcome, "messageSent")) {
		printf("Sent to %s (a reference client, which gives no delivery receipt).\n",
			w->peer);
	}
	if (event_is(w->outcome, "messageFailed")) {
		return log_error_errno(EIO, "Failed to deliver message %s to '%s': %s", w->id,
			w->peer, reason);
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

int verb_send(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_free_ char *text = NULL;
	SendWait w = { .peer = argv[1] };
	const char *id;
	int r;

	r = read_message_text(argc - 2, argv + 2, &text);
	if (r < 0) {
		return log_error_errno(r, "Failed to read the message text: %s",
			r == -EMSGSIZE ? "standard input is too long" :
			r == -EILSEQ ? "it contains a NUL byte" : strerror(-r));
	}

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	/*
	 * Subscribe first: MessageQueued (is the peer known?) and the outcome
	 * may come before or right after the reply.
	 */
	r = client_attach_event(bus, &event);
	if (r < 0) {
		return r;
	}
	r = client_subscribe(bus, on_send_signal, &w);
	if (r < 0) {
		return r;
	}

	r = sd_bus_message_new_method_call(bus, &m, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "SendMessage");
	if (r < 0) {
		return log_error_errno(r, "Failed to build the send call: %m");
	}
	/* sd-bus refuses strings that are not UTF-8 (or hold NUL) here. */
	r = sd_bus_message_append(m, "ss", w.peer, text);
	if (r < 0) {
		return log_error_errno(r, "Failed to send message to '%s': %s", w.peer,
			r == -EINVAL ? "the peer name or the text is not valid UTF-8." :
			strerror(-r));
	}
	r = sd_bus_call(bus, m, 0, &error, &reply);
	if (r < 0) {
		return log_error_errno(r, "Failed to send message to '%s': %s", w.peer,
			client_error_message(&error, r));
	}
	r = sd_bus_message_read(reply, "s", &id);
	if (r < 0) {
		return log_error_errno(r, "Failed to parse the reply of p2pchatd: %m");
	}
	w.id = strdup(id);
	if (!w.id) {
		return log_oom();
	}

	if (arg_json == JSON_FORMAT_OFF) {
		printf("%s\n", id);
		(void) fflush(stdout);
	}
	if (arg_wait) {
		r = send_wait(event, &w);
		w.id = mfree(w.id);
		w.expiry = mfree(w.expiry);
		json_object_putp(&w.outcome);
		return r;
	}

	/* The signals that came with the reply are queued: MessageQueued is one. */
	r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, QUEUED_WAIT_USEC, 0,
		on_wait_timeout, NULL);
	if (r >= 0) {
		r = sd_event_loop(event);
	}
	if (r >= 0 && w.unknown) {
		send_note_unknown(&w);
	}
	r = 0;
	if (arg_json != JSON_FORMAT_OFF) {
		r = send_print_json(&w, NULL, NULL);
		if (r < 0) {
			(void) log_error_errno(r, "Failed to print the message id: %m");
		}
	}
	w.id = mfree(w.id);
	w.expiry = mfree(w.expiry);
	return r;
}

int verb_cancel(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "CancelMessage", &error, NULL, "s", argv[1]);
	if (r < 0) {
		return log_error_errno(r, "Failed to cancel message '%s': %s", argv[1],
			client_error_message(&error, r));
	}
	if (arg_json == JSON_FORMAT_OFF) {
		return 0;
	}
	o = json_object_new_object();
	if (!o || json_add_string(o, "id", argv[1]) < 0 ||
			json_add_string(o, "status", "cancelled") < 0) {
		return log_oom();
	}
	return json_print(o, arg_json);
}

int verb_fingerprint(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_free_ char *fingerprint = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = sd_bus_get_property_string(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "Fingerprint", &error, &fingerprint);
	if (r < 0) {
		return log_error_errno(r, "Failed to get the fingerprint: %s",
			client_error_message(&error, r));
	}
	if (arg_json == JSON_FORMAT_OFF) {
		printf("%s\n", fingerprint);
		return fflush(stdout) == 0 ? 0 : log_error_errno(EIO, "Failed to print: %m");
	}
	o = json_object_new_object();
	if (!o || json_add_string(o, "fingerprint", fingerprint) < 0) {
		return log_oom();
	}
	return json_print(o, arg_json);
}

/* The fingerprint may come as one argument or as its 12 groups, unquoted. */
int verb_trust_coordinator(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_free_ char *fingerprint = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	f = open_memstream(&fingerprint, &len);
	if (!f) {
		return log_oom();
	}
	for (int i = 2; i < argc; i++) {
		(void) fprintf(f, "%s%s", i > 2 ? " " : "", argv[i]);
	}
	if (fclose(f) != 0) {
		return log_oom();
	}

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "TrustCoordinator", &error, NULL, "ss", argv[1],
		fingerprint);
	if (r < 0) {
		return log_error_errno(r, "Failed to trust the key of coordinator '%s': %s",
			argv[1], client_error_message(&error, r));
	}
	return 0;
}

int verb_read(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "MarkRead", &error, NULL, "s", argv[1]);
	if (r < 0) {
		return log_error_errno(r, "Failed to mark the messages of '%s' read: %s",
			argv[1], client_error_message(&error, r));
	}
	return 0;
}

/* Prints one event as JSON (--json) or as a line; -EIO when stdout is gone. */
static int print_event(json_object *ev, bool show_ids) {
	_cleanup_free_ char *line = NULL;

	if (arg_json != JSON_FORMAT_OFF) {
		return json_print(ev, arg_json);
	}
	line = event_format_line(ev, show_ids);
	if (!line) {
		return -ENOMEM;
	}
	if (puts(line) < 0 || fflush(stdout) != 0) {
		return -EIO;
	}
	return 0;
}

/*
 * The (id, state) pairs that listen printed from a dedicated event
 * (messageQueued, messageSent, messageDelivered, messageFailed) lately: as
 * text, the messageStateChanged that follows each would say it again.
 */
typedef struct ListenSeen {
	char id[64];
	char state[16];
} ListenSeen;

static ListenSeen listen_seen[16];
static size_t listen_seen_next;

static const char *event_state(json_object *ev) {
	return event_is(ev, "messageQueued") ? "queued" :
		event_is(ev, "messageSent") ? "sent" :
		event_is(ev, "messageDelivered") ? "delivered" :
		event_is(ev, "messageFailed") ? "failed" : NULL;
}

/* Whether @ev repeats, as text, what was printed already. */
static bool listen_is_repeat(json_object *ev) {
	const char *id = strempty(json_get_string(ev, "id", NULL)), *state;

	state = event_state(ev);
	if (state) {
		ListenSeen *s = &listen_seen[listen_seen_next++ % ELEMENTSOF(listen_seen)];

		(void) snprintf(s->id, sizeof(s->id), "%s", id);
		(void) snprintf(s->state, sizeof(s->state), "%s", state);
		return false;
	}
	if (!event_is(ev, "messageStateChanged")) {
		return false;
	}
	state = strempty(json_get_string(ev, "state", NULL));
	for (size_t i = 0; i < ELEMENTSOF(listen_seen); i++) {
		if (streq(listen_seen[i].id, id) && streq(listen_seen[i].state, state)) {
			return true;
		}
	}
	return false;
}

static int on_listen_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	_cleanup_(json_object_putp) json_object *ev = NULL;
	int r;

	if (client_event_from_signal(m, &ev) <= 0) {
		return 0;
	}
	if (arg_json == JSON_FORMAT_OFF && listen_is_repeat(ev)) {
		return 0;
	}
	r = print_event(ev, true);
	if (r < 0) {
		/* stdout closed (e.g. "| head"): end quietly. */
		return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), EPIPE);
	}
	return 0;
}

int verb_listen(int argc, char *argv[], void *userdata) {
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	r = client_attach_event(bus, &event);
	if (r < 0) {
		return r;
	}
	r = client_subscribe(bus, on_listen_signal, NULL);
	if (r < 0) {
		return r;
	}
	r = sd_event_loop(event);
	if (r < 0) {
		return log_error_errno(r, "Failed to run the event loop: %m");
	}
	if (r == EPIPE) {
		return 0;
	}
	if (r != 0) {
		return log_error_errno(ECONNRESET, "Failed to listen: lost the bus connection.");
	}
	return 0;
}
