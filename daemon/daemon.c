/* SPDX-License-Identifier: MIT */

/*
 * The composition of p2pchatd, created by main() before anything else and
 * freed last.  It owns every part and wires them, top down:
 *
 *   facade     manager-bus.c, peer-bus.c     (the D-Bus objects)
 *   core       account.c, roster.c, conversation.c, commit.c
 *   store      config.c, history.c, outbox.c, notify.c, xdg.c,
 *              coordinator-pins.c
 *   transport  udp.c, coordinator-link.c, messenger.c, resolve.c
 *
 * Calls go down; events come back up through the callback structs given
 * at construction.  Where an event concerns more than one part (a peer
 * comes online: a signal, the messenger's flow control, the outbox), the
 * glue below passes it on; no part knows its siblings.
 *
 * Teardown runs the group commit's last batch first, while every part its
 * closures may touch is still there, then frees the facade, the core, the
 * transport and the store, in that order.
 *
 * A history that cannot be opened does not stop the daemon: the user would
 * be left without a D-Bus service and without a word.  A damaged file is
 * set aside (never deleted) and a new one started; one that cannot be
 * written (a read-only file system, a file the user may not write), or one
 * of a newer schema, is left alone, and the daemon runs without a store:
 * no Commit, no Conversation, no socket, no login (see manager-bus.c).
 * Either way the Manager's Storage/StorageError and a desktop notification
 * say what happened.
 *
 * The identity is the opposite: a key file that exists but cannot be read
 * stops the daemon.  Making a new key pair in its place would silently
 * change who the user is to every peer and coordinator, and lose the old
 * identity for good; only the user can decide to do that.  The pinned
 * coordinator keys likewise: dropping a pin would trust the next key on
 * first use.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bus-api.h"
#include "common/bus-errors.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "daemon/account.h"
#include "daemon/commit.h"
#include "daemon/config.h"
#include "daemon/conversation.h"
#include "daemon/coordinator-pins.h"
#include "daemon/daemon.h"
#include "daemon/history.h"
#include "daemon/manager-bus.h"
#include "daemon/messenger.h"
#include "daemon/notify.h"
#include "daemon/peer-bus.h"
#include "daemon/roster.h"
#include "daemon/udp.h"
#include "daemon/xdg.h"

struct Daemon {
	sd_event *event;
	Endpoint bind_address; /* family AF_UNSPEC: the config's */

	/* store */
	Identity *identity;
	CoordinatorPins *pins;
	Config *config;
	History *history;
	Notify *notify; /* NULL without a notification server */
	/* transport */
	Udp *udp;
	Messenger *messenger;
	/* core */
	Commit *commit;
	Roster *roster;
	Account *account;
	Conversation *conversation;
	/* facade */
	sd_bus *bus;
	ManagerBus *manager_bus;
	PeerBus *peer_bus;
	sd_event_source *exit_source;

	ManagerStorage storage; /* what open_store() made of the history */
	char *storage_error;    /* why, for the user; NULL when all is well */
};

int daemon_new(sd_event *event, const Endpoint *bind_address, Daemon **ret) {
	Daemon *d;

	d = calloc(1, sizeof(*d));
	if (!d) {
		return -ENOMEM;
	}
	d->event = sd_event_ref(event);
	if (bind_address) {
		d->bind_address = *bind_address;
	}
	*ret = d;
	return 0;
}

Daemon *daemon_free(Daemon *d) {
	if (!d) {
		return NULL;
	}
	/* Its closures answer calls and emit signals: everything still stands. */
	d->commit = commit_free(d->commit);

	d->exit_source = sd_event_source_disable_unref(d->exit_source);
	d->peer_bus = peer_bus_free(d->peer_bus);
	d->manager_bus = manager_bus_free(d->manager_bus);

	d->conversation = conversation_free(d->conversation);
	d->account = account_free(d->account);
	d->roster = roster_free(d->roster);

	d->messenger = messenger_free(d->messenger);
	d->udp = udp_free(d->udp);

	d->notify = notify_free(d->notify);
	d->history = history_free(d->history);
	d->config = config_free(d->config);
	d->pins = coordinator_pins_free(d->pins);
	d->identity = identity_free(d->identity);

	d->bus = sd_bus_flush_close_unref(d->bus);
	d->event = sd_event_unref(d->event);
	free(d->storage_error);
	return mfree(d);
}

/* --- roster events --- */

static void on_peer_added(Peer *p, void *userdata) {
	Daemon *d = userdata;

	peer_bus_emit_added(d->peer_bus, p);
}

static void on_peer_changed(Peer *p, unsigned what, void *userdata) {
	Daemon *d = userdata;

	peer_bus_emit_changed(d->peer_bus, p, what);
	if (what & PEER_CHANGE_ENDPOINT) {
		messenger_peer_reset(d->messenger, peer_get_name(p)); /* it may not know us yet */
	}
}

static void on_peer_joined(Peer *p, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_peer_joined(d->manager_bus, p);
	messenger_peer_reset(d->messenger, peer_get_name(p));
	if (d->conversation) {
		conversation_schedule_flush(d->conversation);
	}
}

static void on_peer_left(Peer *p, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_peer_left(d->manager_bus, p);
	messenger_peer_left(d->messenger, peer_get_name(p));
}

static void on_peer_removed(Peer *p, void *userdata) {
	Daemon *d = userdata;

	peer_bus_emit_removed(d->peer_bus, p);
}

static int on_peer_in_use(Peer *p, void *userdata) {
	Daemon *d = userdata;

	return d->conversation ? conversation_peer_in_use(d->conversation, peer_get_name(p)) : 0;
}

static const RosterCallbacks roster_callbacks = {
	.added = on_peer_added,
	.changed = on_peer_changed,
	.joined = on_peer_joined,
	.left = on_peer_left,
	.removed = on_peer_removed,
	.in_use = on_peer_in_use,
};

/* --- account events --- */

static void on_account_changed(void *userdata) {
	Daemon *d = userdata;
	int r;

	r = messenger_set_username(d->messenger, account_get_username(d->account));
	if (r < 0) {
		log_oom();
	}
	manager_bus_emit_properties_changed(d->manager_bus);
}

static void on_login_done(int error, const char *message, void *userdata) {
	Daemon *d = userdata;

	manager_bus_login_done(d->manager_bus, error, message);
}

static void on_online(void *userdata) {
	Daemon *d = userdata;

	log_info("Online as '%s' with %zu peers known.", account_get_username(d->account),
			roster_size(d->roster));
	if (d->conversation) {
		conversation_schedule_flush(d->conversation);
	}
}

static void on_offline(const char *reason, void *userdata) {
	Daemon *d = userdata;

	messenger_requeue_all(d->messenger, reason);
	roster_clear(d->roster);
}

static int on_list(const WireListEntry *entries, size_t n, uint64_t grace, void *userdata) {
	Daemon *d = userdata;

	return roster_apply_list(d->roster, account_get_username(d->account), entries, n, grace);
}

static void on_peer_login(const WireMessage *w, void *userdata) {
	Daemon *d = userdata;

	(void) roster_add_or_update(d->roster, account_get_username(d->account), w->name,
			&w->endpoint, w->caps);
}

static void on_peer_logout(const WireMessage *w, void *userdata) {
	Daemon *d = userdata;

	roster_mark_offline(d->roster, w->name, &w->endpoint);
}

static const AccountCallbacks account_callbacks = {
	.changed = on_account_changed,
	.login_done = on_login_done,
	.online = on_online,
	.offline = on_offline,
	.list = on_list,
	.peer_login = on_peer_login,
	.peer_logout = on_peer_logout,
};

/* --- conversation events --- */

static void on_queued(const char *id, const char *peer, const char *text, uint64_t sent_usec,
		bool unknown, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_queued(d->manager_bus, id, peer, text, sent_usec, unknown);
}

static void on_received(const char *id, const char *peer, const char *text, uint64_t ts_usec,
		bool native, const char *time, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_received(d->manager_bus, id, peer, text, ts_usec, native, time);
}

static void on_delivered(const char *id, const char *peer, unsigned attempts, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_delivered(d->manager_bus, id, peer, attempts);
}

static void on_sent(const char *id, const char *peer, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_sent(d->manager_bus, id, peer);
}

static void on_failed(const char *id, const char *peer, const char *reason, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_failed(d->manager_bus, id, peer, reason);
}

static void on_state_changed(const char *id, const char *peer, HistoryState state,
		const char *reason, void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_message_state_changed(d->manager_bus, id, peer, state, reason);
}

static void on_unread_changed(const char *peer, void *userdata) {
	Daemon *d = userdata;
	Peer *p = roster_get(d->roster, peer);

	if (p) {
		peer_bus_emit_unread_changed(d->peer_bus, p);
	}
}

static void on_active_changed(void *userdata) {
	Daemon *d = userdata;

	manager_bus_emit_active_conversation_changed(d->manager_bus);
}

static const ConversationCallbacks conversation_callbacks = {
	.queued = on_queued,
	.received = on_received,
	.delivered = on_delivered,
	.sent = on_sent,
	.failed = on_failed,
	.state_changed = on_state_changed,
	.unread_changed = on_unread_changed,
	.active_changed = on_active_changed,
};

/* --- notification events --- */

static void on_notify_open(const char *peer, void *userdata) {
	Daemon *d = userdata;

	(void) notify_open_conversation(d->bus, peer);
}

static void on_notify_reply(const char *peer, const char *text, void *userdata) {
	Daemon *d = userdata;
	size_t len = strlen(text);
	int r;

	if (len == 0 || len > WIRE_TEXT_MAX || !utf8_is_valid(text, len)) {
		log_warning("Ignoring a notification reply to '%s' that is not a valid message.",
				peer);
		return;
	}
	if (!d->conversation) {
		log_warning("Ignoring a notification reply to '%s': no message history.", peer);
		return;
	}
	r = conversation_queue(d->conversation, peer, text);
	if (r < 0) {
		log_warning_errno(r, "Failed to queue the reply to '%s': %m", peer);
		return;
	}
	/* The user answered: what they were notified about is read. */
	(void) conversation_mark_read(d->conversation, peer);
}

static const NotifyCallbacks notify_callbacks = {
	.on_open = on_notify_open,
	.on_reply = on_notify_reply,
};

/* --- setup --- */

/* Runs without a store: say why, once, and keep the D-Bus service up. */
static int storage_unavailable(Daemon *d, int error, const char *what) {
	d->history = history_free(d->history);
	d->storage = MANAGER_STORAGE_UNAVAILABLE;
	free(d->storage_error);
	if (asprintf(&d->storage_error, "%s: %s", what, strerror(abs(error))) < 0) {
		d->storage_error = NULL;
		return log_oom();
	}
	log_error("%s; running without a message history.", d->storage_error);
	return 0;
}

static int open_history(Daemon *d, const char *path) {
	_cleanup_free_ char *aside = NULL, *what = NULL;
	int r;

	r = history_open(path, &d->history);
	if (r != -EBADMSG) {
		if (r < 0) {
			/* Read-only, not ours to write, newer: the file may be fine. Leave it. */
			if (asprintf(&what, "Failed to open the history database '%s'", path) < 0) {
				return log_oom();
			}
			return storage_unavailable(d, r, what);
		}
		d->storage = MANAGER_STORAGE_OK;
		return 0;
	}

	/* Not a database, or a damaged one: set aside, never deleted, and start anew. */
	r = history_move_aside(path, now_usec(CLOCK_REALTIME), &aside);
	if (r < 0) {
		if (asprintf(&what, "The history database '%s' is damaged and could not be "
				"moved aside", path) < 0) {
			return log_oom();
		}
		return storage_unavailable(d, r, what);
	}
	r = history_open(path, &d->history);
	if (r < 0) {
		if (asprintf(&what, "The damaged history database '%s' was moved to '%s', but "
				"a new one could not be created", path, aside) < 0) {
			return log_oom();
		}
		return storage_unavailable(d, r, what);
	}
	d->storage = MANAGER_STORAGE_RECOVERED;
	if (asprintf(&d->storage_error, "The history database '%s' was damaged: it was moved "
			"to '%s' and a new one was started", path, aside) < 0) {
		d->storage_error = NULL;
		return log_oom();
	}
	log_warning("%s.", d->storage_error);
	return 0;
}

/* The long-term identity: loaded, or made on the first start; never replaced. */
static int open_identity(Daemon *d) {
	_cleanup_free_ char *path = NULL;
	char fingerprint[IDENTITY_FINGERPRINT_SIZE];
	bool created = false;
	int r;

	r = xdg_build_path(XDG_DIR_DATA, "identity.key", true, &path);
	if (r < 0) {
		return log_error_errno(r, "Failed to create the data directory for the identity: %m");
	}
	r = identity_load_or_create(path, &d->identity, &created);
	if (r == -EBADMSG) {
		return log_error_errno(r, "The identity key file '%s' is damaged: it is not a "
				"p2pchat identity. p2pchatd does not replace it. To start over with a "
				"new identity (the old one is lost; peers and coordinators will see "
				"a new key), move the file away and start p2pchatd again.", path);
	}
	if (r < 0 && access(path, F_OK) < 0) {
		return log_error_errno(r, "Failed to create the identity key file '%s': %m", path);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to read the identity key file '%s': %m. "
				"p2pchatd does not replace it: make it readable, or move it away "
				"to make a new identity (the old one is lost).", path);
	}
	identity_get_fingerprint(d->identity, fingerprint);
	if (created) {
		log_info("Created a new identity in '%s'.", path);
	}
	log_info("Identity fingerprint: %s", fingerprint);
	return 0;
}

/* The coordinator keys pinned so far. */
static int open_pins(Daemon *d) {
	_cleanup_free_ char *path = NULL, *error = NULL;
	int r;

	r = coordinator_pins_default_path(true, &path);
	if (r < 0) {
		return log_error_errno(r, "Failed to create the data directory: %m");
	}
	r = coordinator_pins_load(path, &d->pins, &error);
	if (r < 0) {
		return log_error_errno(r, "Failed to load the pinned coordinator keys: %s. Fix or "
				"remove that line (a coordinator without one has its next key "
				"trusted on first use).", error ? error : strerror(-r));
	}
	return 0;
}

static int open_store(Daemon *d) {
	_cleanup_free_ char *config_path = NULL, *history_path = NULL, *error = NULL;
	int r;

	/* SetConfig needs the directory; a read-only home only loses that. */
	r = config_default_path(true, &config_path);
	if (r < 0) {
		r = config_default_path(false, &config_path);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to find the configuration file: %m");
	}
	r = config_new(config_path, &d->config);
	if (r < 0) {
		return log_oom();
	}
	r = config_load(d->config, &error);
	if (r < 0) {
		/* A broken file must not stop the daemon: defaults, and say why. */
		log_error("%s; using the defaults.", error ? error : "Failed to read the config");
	}

	r = history_default_path(&history_path);
	if (r < 0) {
		return storage_unavailable(d, r, "Failed to create the data directory");
	}
	return open_history(d, history_path);
}

static int open_socket(Daemon *d) {
	const Endpoint *configured = &d->config->bind_address;
	int r;

	/* No --bind: the config's, unless that is the default "any". */
	if (endpoint_family(&d->bind_address) == AF_UNSPEC &&
			!(endpoint_is_any(configured) && endpoint_port(configured) == 0 &&
			  endpoint_family(configured) == AF_INET)) {
		d->bind_address = *configured;
	}
	r = udp_new(d->event, &d->udp);
	if (r < 0) {
		return log_oom();
	}
	if (!d->history) {
		return 0; /* no login without a store: nothing to listen for */
	}
	return udp_open(d->udp, &d->bind_address);
}

/*
 * How long offline peers nothing is kept for stay in the roster; tests
 * shorten it with $P2PCHAT_PEER_EXPIRY (a duration as the config takes it).
 */
static uint64_t peer_expiry(void) {
	const char *e = getenv("P2PCHAT_PEER_EXPIRY");
	uint64_t usec;

	if (e && config_parse_duration(e, &usec) >= 0) {
		return usec;
	}
	if (e) {
		log_warning("Invalid $P2PCHAT_PEER_EXPIRY '%s', ignoring.", e);
	}
	return ROSTER_OFFLINE_EXPIRY_USEC;
}

static int build_core(Daemon *d) {
	int r;

	r = messenger_new(d->event, d->udp, &d->messenger);
	if (r < 0) {
		return log_oom();
	}
	r = roster_new(d->event, ROSTER_MAX_PEERS, peer_expiry(), &roster_callbacks, d,
			&d->roster);
	if (r < 0) {
		return log_oom();
	}
	r = account_new(d->event, d->udp, d->config, d->identity, d->pins, &account_callbacks, d,
			&d->account);
	if (r < 0) {
		return log_oom();
	}
	if (!d->history) {
		return 0; /* no commit, no conversation: the facade refuses what needs them */
	}
	r = commit_new(d->event, d->history, &d->commit);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up the group commit: %m");
	}
	r = conversation_new(d->event, d->history, d->config, d->commit, d->roster,
			d->messenger, &conversation_callbacks, d, &d->conversation);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up the outbox: %m");
	}
	return 0;
}

int daemon_export(Daemon *d, sd_bus *bus) {
	int r;

	r = open_identity(d);
	if (r < 0) {
		return r;
	}
	r = open_pins(d);
	if (r < 0) {
		return r;
	}
	r = open_store(d);
	if (r < 0) {
		return r;
	}
	r = open_socket(d);
	if (r < 0) {
		return r;
	}
	r = build_core(d);
	if (r < 0) {
		return r;
	}
	r = bus_errors_register();
	if (r < 0) {
		return log_error_errno(r, "Failed to register D-Bus error map: %m");
	}
	d->bus = sd_bus_ref(bus);
	r = manager_bus_new(bus, d->account, d->roster, d->conversation, d->history, d->config,
			&d->manager_bus);
	if (r < 0) {
		return r;
	}
	r = manager_bus_set_storage(d->manager_bus, d->storage, d->storage_error);
	if (r < 0) {
		return log_oom();
	}
	return peer_bus_new(bus, d->roster, d->history, &d->peer_bus);
}

int daemon_stop(Daemon *d) {
	int r;

	if (!d->commit) {
		return 0;
	}
	/* A pending batch first: its replies and acks go out while the bus is open. */
	(void) commit_run(d->commit);
	r = account_logout(d->account, false);
	(void) commit_run(d->commit);
	return r;
}

/*
 * Logs out when the loop ends (SIGTERM, SIGINT): before the bus's own exit
 * source flushes and closes the connection, so the Logout's signals and a
 * pending Login()'s answer still go out.
 */
static int on_loop_exit(sd_event_source *s, void *userdata) {
	return daemon_stop(userdata);
}

int daemon_start(Daemon *d) {
	_cleanup_(sd_bus_unrefp) sd_bus *bus = NULL; /* d->bus keeps its own reference */
	int r;

	r = sd_bus_open_user(&bus);
	if (r < 0) {
		return log_error_errno(r, "Failed to connect to the session bus: %m");
	}
	r = daemon_export(d, bus);
	if (r < 0) {
		return r;
	}
	/* Objects first, then the name: a client that sees the name finds them. */
	r = sd_bus_request_name(d->bus, P2PCHAT_BUS_NAME, 0);
	if (r == -EEXIST) {
		return log_error_errno(r, "Bus name '%s' is already owned: another p2pchatd is "
				"running for this user.", P2PCHAT_BUS_NAME);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to request bus name '%s': %m", P2PCHAT_BUS_NAME);
	}
	r = sd_bus_attach_event(d->bus, d->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		return log_error_errno(r, "Failed to attach bus to event loop: %m");
	}
	r = sd_bus_set_exit_on_disconnect(d->bus, true);
	if (r < 0) {
		return log_error_errno(r, "Failed to set exit on disconnect: %m");
	}
	r = sd_event_add_exit(d->event, &d->exit_source, on_loop_exit, d);
	if (r >= 0) {
		r = sd_event_source_set_priority(d->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to add exit handler: %m");
	}
	r = notify_new(d->bus, &notify_callbacks, d, &d->notify);
	if (r < 0) {
		log_warning_errno(r, "Failed to set up desktop notifications, going without: %m");
	} else {
		notify_set_enabled(d->notify, d->config->notifications);
		if (d->conversation) {
			conversation_set_notify(d->conversation, d->notify);
		}
		if (d->storage_error) {
			r = notify_problem(d->notify, d->storage == MANAGER_STORAGE_RECOVERED ?
					"Message history damaged" : "Message history unavailable",
					d->storage_error);
			if (r < 0) {
				log_warning_errno(r, "Failed to notify about the history, ignoring: %m");
			}
		}
	}
	if (d->history) {
		account_autologin(d->account);
	} else {
		log_notice("Not logging in without a message history.");
	}
	return 0;
}
