/* SPDX-License-Identifier: MIT */

/*
 * The Manager's store: the glue between the Messenger (the wire), the
 * History + Outbox (SQLite: nothing accepted is lost), the Config and the
 * desktop notifications.
 *
 * An outgoing message is stored "queued" before SendMessage() replies.  A
 * defer source (manager_schedule_flush()) hands the queued messages of every
 * online peer to the Messenger, in order.  It runs after the bus and the
 * socket are drained, once for all messages queued in that pass, when a
 * message is queued, when a peer comes online, at login, and
 * MANAGER_RETRY_USEC after a message went back to the queue.
 *
 * Writes are committed in groups (manager-commit.c): an incoming message is
 * stored, and that made durable, before the Messenger's ack goes out, and
 * SendMessage() replies after the same barrier.  Signals about a message
 * whose reply still waits follow the reply.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "common/wire.h"
#include "daemon/config.h"
#include "daemon/history.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-commit.h"
#include "daemon/manager-store.h"
#include "daemon/message.h"
#include "daemon/notify.h"
#include "daemon/outbox.h"
#include "daemon/peer-bus.h"
#include "daemon/peer.h"

static void emit_unread(Manager *m, const char *peer) {
	Peer *p = peer_get(m, peer);

	if (p) {
		peer_emit_unread_changed(p);
	}
}

/* Outbox: send callback. */
static int on_outbox_send(const HistoryMessage *hm, void *userdata) {
	Manager *m = userdata;
	int r;

	r = messenger_transmit(m->messenger, hm);
	if (r == -EMSGSIZE) {
		log_debug("Message %s does not fit a datagram, failing it.", hm->id);
		r = history_set_state(m->history, hm->id, HISTORY_STATE_FAILED);
		if (r < 0) {
			return r;
		}
		if (manager_commit_note_outcome(m, hm->id, COMMIT_OUTCOME_TOO_LARGE)) {
			return OUTBOX_SETTLED; /* said after the reply */
		}
		manager_emit_message_failed(m, hm->id, hm->peer, "too-large");
		manager_emit_message_state_changed(m, hm->id, hm->peer, HISTORY_STATE_FAILED,
				"too-large");
		return OUTBOX_SETTLED;
	}
	if (r < 0) {
		return r;
	}
	if (manager_commit_note_outcome(m, hm->id, r == OUTBOX_SENT_FINAL ?
			COMMIT_OUTCOME_SENT_FINAL : COMMIT_OUTCOME_SENT)) {
		return r; /* said after the reply */
	}
	if (r == OUTBOX_SENT_FINAL) {
		/* A reference peer: the talk went out, no ack will ever come. */
		manager_emit_message_sent(m, hm->id, hm->peer);
	}
	manager_emit_message_state_changed(m, hm->id, hm->peer, HISTORY_STATE_SENT, NULL);
	return r;
}

/* Outbox: @hm is older than "outbox-expiry". */
static void on_outbox_expired(const HistoryMessage *hm, void *userdata) {
	Manager *m = userdata;

	manager_commit_settle(m, hm->id);
	messenger_forget(m->messenger, hm->id);
	manager_emit_message_failed(m, hm->id, hm->peer, "expired");
	manager_emit_message_state_changed(m, hm->id, hm->peer, HISTORY_STATE_FAILED, "expired");
}

static const OutboxCallbacks outbox_callbacks = {
	.send = on_outbox_send,
	.expired = on_outbox_expired,
};

static void on_notify_open(const char *peer, void *userdata) {
	Manager *m = userdata;

	(void) notify_open_conversation(m->bus, peer);
}

static void on_notify_reply(const char *peer, const char *text, void *userdata) {
	char id[MESSAGE_ID_STRLEN];
	Manager *m = userdata;
	size_t len = strlen(text);
	int r;

	if (len == 0 || len > WIRE_TEXT_MAX || !utf8_is_valid(text, len)) {
		log_warning("Ignoring a notification reply to '%s' that is not a valid message.",
				peer);
		return;
	}
	r = manager_queue_message(m, peer, text, id);
	if (r < 0) {
		log_warning_errno(r, "Failed to queue the reply to '%s': %m", peer);
		return;
	}
	manager_emit_message_state_changed(m, id, peer, HISTORY_STATE_QUEUED, NULL);
	if (r > 0) {
		manager_emit_message_state_changed(m, id, peer, HISTORY_STATE_SENT, NULL);
	}
	/* The user answered: what they were notified about is read. */
	(void) manager_mark_read(m, peer);
}

static const NotifyCallbacks notify_callbacks = {
	.on_open = on_notify_open,
	.on_reply = on_notify_reply,
};

static int on_flush(sd_event_source *s, void *userdata) {
	_cleanup_(history_strv_freep) char **peers = NULL;
	Manager *m = userdata;
	int r;

	if (!m->username) {
		return 0;
	}
	r = history_list_queued_peers(m->history, &peers);
	if (r < 0) {
		log_warning_errno(r, "Failed to list queued messages: %m");
		return 0;
	}
	for (char **i = peers; *i; i++) {
		Peer *p = peer_get(m, *i);

		if (!p || !p->online) {
			continue;
		}
		r = outbox_flush(m->outbox, *i);
		if (r < 0) {
			log_warning_errno(r, "Failed to send queued messages to '%s': %m", *i);
		}
	}
	return 0;
}

void manager_schedule_flush(Manager *m) {
	int r;

	if (!m->flush_source) {
		r = sd_event_add_defer(m->event, &m->flush_source, on_flush, m);
		if (r < 0) {
			log_warning_errno(r, "Failed to schedule sending queued messages: %m");
			return;
		}
		(void) sd_event_source_set_description(m->flush_source, "outbox-flush");
		/* After the bus and the socket: once for all that was queued. */
		r = sd_event_source_set_priority(m->flush_source, SD_EVENT_PRIORITY_NORMAL + 1);
		if (r < 0) {
			log_warning_errno(r, "Failed to set the priority of the outbox flush: %m");
		}
	}
	r = sd_event_source_set_enabled(m->flush_source, SD_EVENT_ONESHOT);
	if (r < 0) {
		log_warning_errno(r, "Failed to schedule sending queued messages: %m");
	}
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
	manager_schedule_flush(userdata);
	return 0;
}

static void schedule_retry(Manager *m) {
	int r;

	if (m->retry_timer && sd_event_source_get_enabled(m->retry_timer, NULL) > 0) {
		return; /* one retry round covers every requeued message */
	}
	if (!m->retry_timer) {
		r = sd_event_add_time_relative(m->event, &m->retry_timer, CLOCK_MONOTONIC,
				MANAGER_RETRY_USEC, USEC_PER_SEC, on_retry, m);
	} else {
		r = sd_event_source_set_time_relative(m->retry_timer, MANAGER_RETRY_USEC);
		if (r >= 0) {
			r = sd_event_source_set_enabled(m->retry_timer, SD_EVENT_ONESHOT);
		}
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to arm the retry timer: %m");
	}
}

int manager_store_open(Manager *m) {
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
	r = config_new(config_path, &m->config);
	if (r < 0) {
		return log_oom();
	}
	r = config_load(m->config, &error);
	if (r < 0) {
		/* A broken file must not stop the daemon: defaults, and say why. */
		log_error("%s; using the defaults.", error ? error : "Failed to read the config");
	}

	r = history_default_path(&history_path);
	if (r < 0) {
		return log_error_errno(r, "Failed to find the history database: %m");
	}
	r = history_open(history_path, &m->history);
	if (r < 0) {
		return log_error_errno(r, "Failed to open the history database '%s': %m",
				history_path);
	}
	r = outbox_new(m->event, m->history, m->config->outbox_expiry_usec, &outbox_callbacks,
			m, &m->outbox);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up the outbox: %m");
	}
	r = manager_commit_start(m);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up the group commit: %m");
	}
	m->active_conversation = strdup("");
	if (!m->active_conversation) {
		return log_oom();
	}
	return 0;
}

int manager_store_attach_bus(Manager *m) {
	int r;

	r = notify_new(m->bus, &notify_callbacks, m, &m->notify);
	if (r < 0) {
		log_warning_errno(r, "Failed to set up desktop notifications, going without: %m");
		return 0;
	}
	notify_set_enabled(m->notify, m->config->notifications);
	return 0;
}

void manager_store_close(Manager *m) {
	manager_commit_stop(m);
	m->flush_source = sd_event_source_disable_unref(m->flush_source);
	m->retry_timer = sd_event_source_disable_unref(m->retry_timer);
	m->autologin_timer = sd_event_source_disable_unref(m->autologin_timer);
	m->notify = notify_free(m->notify);
	m->outbox = outbox_free(m->outbox);
	m->history = history_free(m->history);
	m->config = config_free(m->config);
	m->active_conversation = mfree(m->active_conversation);
	m->active_track = sd_bus_track_unref(m->active_track);
}

void manager_store_autologin(Manager *m) {
	int r;

	if (!m->config->autologin) {
		return;
	}
	if (m->config->username[0] == '\0') {
		log_warning("autologin is on but no username is set in %s.", m->config->path);
		return;
	}
	log_info("Logging in as '%s' at %s (autologin).", m->config->username,
			m->config->coordinator);
	m->autologin = true;
	r = manager_login(m, m->config->username, m->config->coordinator);
	if (r < 0) {
		log_warning_errno(r, "Autologin failed: %m");
		manager_store_autologin_failed(m);
	}
}

static int on_autologin_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;

	if (m->autologin && m->state == MANAGER_STATE_OFFLINE) {
		manager_store_autologin(m);
	}
	return 0;
}

void manager_store_autologin_failed(Manager *m) {
	int r;

	if (!m->autologin) {
		return;
	}
	if (!m->autologin_timer) {
		r = sd_event_add_time_relative(m->event, &m->autologin_timer, CLOCK_MONOTONIC,
				MANAGER_AUTOLOGIN_RETRY_USEC, USEC_PER_SEC / 10, on_autologin_timer,
				m);
	} else {
		r = sd_event_source_set_time_relative(m->autologin_timer,
				MANAGER_AUTOLOGIN_RETRY_USEC);
		if (r >= 0) {
			r = sd_event_source_set_enabled(m->autologin_timer, SD_EVENT_ONESHOT);
		}
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to schedule the next autologin: %m");
	}
}

int manager_queue_message(Manager *m, const char *peer, const char *text,
		char ret_id[static MESSAGE_ID_STRLEN]) {
	char id[MESSAGE_ID_STRLEN];
	uint64_t now = now_usec(CLOCK_REALTIME);
	bool direct;
	int r;

	r = messenger_new_id(id);
	if (r < 0) {
		return r;
	}
	/*
	 * Nothing queued before it and the peer takes it now: stored as "sent"
	 * and put on the wire at once, without the flush and a second write.
	 * Both are in the batch's transaction, committed before the reply.
	 */
	direct = messenger_can_transmit(m->messenger, peer);
	if (direct) {
		r = history_has_queued(m->history, peer);
		if (r < 0) {
			return r;
		}
		direct = r == 0;
	}
	r = outbox_add_as(m->outbox, id, peer, text, now,
			direct ? HISTORY_STATE_SENT : HISTORY_STATE_QUEUED);
	if (r < 0) {
		return r;
	}
	memcpy(ret_id, id, MESSAGE_ID_STRLEN);
	if (direct) {
		HistoryMessage hm = {
			.id = id,
			.peer = (char *) peer,
			.direction = HISTORY_DIRECTION_OUT,
			.text = (char *) text,
			.sent_usec = now,
			.state = HISTORY_STATE_SENT,
		};

		r = messenger_transmit(m->messenger, &hm);
		if (r == OUTBOX_SENT) {
			return 1;
		}
		/* Refused after all (e.g. too large): the flush decides. */
		log_debug_errno(r, "Message %s did not go at once, queueing it: %m", id);
		r = history_set_state(m->history, id, HISTORY_STATE_QUEUED);
		if (r < 0) {
			return r;
		}
	}
	manager_schedule_flush(m);
	return 0;
}

int manager_message_incoming(Manager *m, const char *id, const char *peer, const char *text,
		uint64_t ts_usec, bool native, const char *time) {
	int r;

	r = history_add_incoming(m->history, id, peer, text, ts_usec, now_usec(CLOCK_REALTIME));
	if (r <= 0) {
		return r;
	}
	manager_emit_message_received(m, id, peer, text, ts_usec, native, time);
	if (streq(m->active_conversation, peer)) {
		/* On screen: read as it arrives. */
		(void) manager_mark_read(m, peer);
		return 1;
	}
	manager_commit_defer_unread(m, peer);
	if (m->notify) {
		(void) notify_message(m->notify, peer, text);
	}
	return 1;
}

void manager_message_delivered(Manager *m, const char *id, const char *peer,
		unsigned attempts) {
	_cleanup_(history_message_done) HistoryMessage hm = {};
	int r;

	r = history_get_message(m->history, id, &hm);
	if (r < 0 || hm.direction != HISTORY_DIRECTION_OUT || !streq(hm.peer, peer)) {
		return;
	}
	manager_commit_settle(m, id);
	r = outbox_delivered(m->outbox, id);
	manager_commit_check_bound(m);
	if (r < 0) {
		log_debug_errno(r, "Ignoring an ack for message %s: %m", id);
		return;
	}
	if (r == 0) {
		return; /* a duplicate ack */
	}
	manager_emit_message_delivered(m, id, peer, attempts);
	manager_emit_message_state_changed(m, id, peer, HISTORY_STATE_DELIVERED, NULL);
}

void manager_message_requeued(Manager *m, const char *id, const char *peer) {
	int r;

	manager_commit_settle(m, id);
	r = outbox_requeue(m->outbox, id);
	if (r < 0) {
		log_warning_errno(r, "Failed to requeue message %s: %m", id);
		return;
	}
	if (r > 0) {
		manager_emit_message_state_changed(m, id, peer, HISTORY_STATE_QUEUED, NULL);
	}
	schedule_retry(m);
}

int manager_mark_read(Manager *m, const char *peer) {
	_cleanup_(history_strv_freep) char **ids = NULL;
	int r;

	r = history_list_unread(m->history, peer, &ids);
	if (r <= 0) {
		return r;
	}
	r = history_mark_read(m->history, peer);
	if (r < 0) {
		return r;
	}
	for (char **i = ids; *i; i++) {
		manager_emit_message_state_changed(m, *i, peer, HISTORY_STATE_READ, NULL);
	}
	emit_unread(m, peer);
	return r;
}

int manager_set_active_conversation(Manager *m, const char *peer) {
	int r;

	r = free_and_strdup(&m->active_conversation, peer);
	if (r < 0) {
		return r;
	}
	if (m->notify) {
		r = notify_set_active_peer(m->notify, peer);
		if (r < 0) {
			return r;
		}
	}
	manager_emit_active_conversation_changed(m);
	if (peer[0] != '\0') {
		r = manager_mark_read(m, peer);
		if (r < 0) {
			return r;
		}
	}
	return 0;
}

int manager_set_config(Manager *m, const char *key, const char *value, char **ret_error) {
	int r;

	r = config_set(m->config, key, value, ret_error);
	if (r < 0) {
		return r;
	}
	if (streq(key, "notifications") && m->notify) {
		notify_set_enabled(m->notify, m->config->notifications);
	} else if (streq(key, "outbox-expiry")) {
		r = outbox_set_max_age(m->outbox, m->config->outbox_expiry_usec);
		if (r < 0) {
			log_warning_errno(r, "Failed to reset the outbox expiry: %m");
		}
	}
	return 0;
}
