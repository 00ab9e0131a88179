/* SPDX-License-Identifier: MIT */
/*
 * Tests for daemon/conversation.c without a bus or a socket: the real
 * History (under the fault-injecting VFS), Commit, Roster and Messenger,
 * whose Udp is never opened: datagrams come in through udp_deliver(), and
 * what the conversation reports is recorded by a double of its callbacks.
 *
 * Among them the regression tests of a use-after-free: a message given
 * back by the Messenger (peer gone, or retries run out) whose SendMessage()
 * answer still waits makes the conversation commit at once; when that
 * commit fails, the answer's closure forgets the message in the Messenger,
 * which must not free what the Messenger is still using.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "common/wire.h"
#include "daemon/commit.h"
#include "daemon/config.h"
#include "daemon/conversation.h"
#include "daemon/history.h"
#include "daemon/messenger.h"
#include "daemon/roster.h"
#include "daemon/udp.h"
#include "tests/helpers/fault-vfs.h"
#include "tests/helpers/test-tmpdir.h"

#define EVENTS_MAX 1024

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[128];
	sd_event *event;
	Config *config;
	History *history;
	Udp *udp;
	Messenger *messenger;
	Commit *commit;
	Roster *roster;
	Conversation *conversation;
	bool tell_messenger_left; /* the roster's left() reaches the Messenger */
	int bob_fd;   /* bob as a real socket (bob_listens()), or -1 */
	Endpoint bob; /* its address */
	/* "received:PEER:TEXT", "delivered:ID", "state:ID:STATE", "done:ID:ERR", ... */
	char events[EVENTS_MAX][128];
	size_t n_events;
} Fixture;

static void record(Fixture *f, const char *fmt, ...) _printf_(2, 3);
static void record(Fixture *f, const char *fmt, ...) {
	va_list ap;

	assert_true(f->n_events < EVENTS_MAX);
	va_start(ap, fmt);
	(void) vsnprintf(f->events[f->n_events++], sizeof(f->events[0]), fmt, ap);
	va_end(ap);
}

/* Whether @event was recorded. */
static bool saw(Fixture *f, const char *event) {
	for (size_t i = 0; i < f->n_events; i++) {
		if (streq(f->events[i], event)) {
			return true;
		}
	}
	return false;
}

static size_t count_prefix(Fixture *f, const char *prefix) {
	size_t n = 0;

	for (size_t i = 0; i < f->n_events; i++) {
		n += strncmp(f->events[i], prefix, strlen(prefix)) == 0;
	}
	return n;
}

/* --- the roster's wiring, as daemon.c does it --- */

static void on_added(Peer *p, void *userdata) {
}

static void on_changed(Peer *p, unsigned what, void *userdata) {
	Fixture *f = userdata;

	if (what & PEER_CHANGE_ENDPOINT) {
		messenger_peer_reset(f->messenger, peer_get_name(p));
	}
}

static void on_joined(Peer *p, void *userdata) {
	Fixture *f = userdata;

	messenger_peer_reset(f->messenger, peer_get_name(p));
	conversation_schedule_flush(f->conversation);
}

static void on_left(Peer *p, void *userdata) {
	Fixture *f = userdata;

	if (f->tell_messenger_left) {
		messenger_peer_left(f->messenger, peer_get_name(p));
	}
}

static void on_removed(Peer *p, void *userdata) {
	record(userdata, "removed:%s", peer_get_name(p));
}

static int on_in_use(Peer *p, void *userdata) {
	Fixture *f = userdata;

	return conversation_peer_in_use(f->conversation, peer_get_name(p));
}

static const RosterCallbacks roster_callbacks = {
	.added = on_added,
	.changed = on_changed,
	.joined = on_joined,
	.left = on_left,
	.removed = on_removed,
	.in_use = on_in_use,
};

/* --- the conversation's events --- */

static void on_queued(const char *id, const char *peer, const char *text, uint64_t sent_usec,
		bool unknown, void *userdata) {
	assert_true(sent_usec > 0);
	record(userdata, "queued:%s:%s:%s:%s", id, peer, text, unknown ? "unknown" : "known");
}

static void on_received(const char *id, const char *peer, const char *text, uint64_t ts_usec,
		bool native, const char *time, void *userdata) {
	record(userdata, "received:%s:%s", peer, text);
}

static void on_delivered(const char *id, const char *peer, unsigned attempts, void *userdata) {
	record(userdata, "delivered:%s", id);
}

static void on_sent(const char *id, const char *peer, void *userdata) {
	record(userdata, "sent:%s", id);
}

static void on_failed(const char *id, const char *peer, const char *reason, void *userdata) {
	record(userdata, "failed:%s:%s", id, reason);
}

static void on_state_changed(const char *id, const char *peer, HistoryState state,
		const char *reason, void *userdata) {
	record(userdata, "state:%s:%s", id, history_state_to_string(state));
}

static void on_unread_changed(const char *peer, void *userdata) {
	record(userdata, "unread:%s", peer);
}

static void on_active_changed(void *userdata) {
	record(userdata, "active");
}

static const ConversationCallbacks callbacks = {
	.queued = on_queued,
	.received = on_received,
	.delivered = on_delivered,
	.sent = on_sent,
	.failed = on_failed,
	.state_changed = on_state_changed,
	.unread_changed = on_unread_changed,
	.active_changed = on_active_changed,
};

static void on_done(int error, const char *id, void *userdata) {
	record(userdata, "done:%s:%s", id, error < 0 ? "error" : "ok");
}

static Endpoint bob_ep(void) {
	Endpoint e = { .in.sin_family = AF_INET, .in.sin_port = htons(4000) };

	e.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return e;
}

static int setup_with_expiry(void **state, uint64_t expiry_usec) {
	char config_path[192];
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-daemon-conversation", "history.db", f->path,
			sizeof(f->path));
	(void) snprintf(config_path, sizeof(config_path), "%s/config.json", f->dir);
	fault_vfs_reset();
	f->tell_messenger_left = true;
	f->bob_fd = -1;
	assert_int_equal(sd_event_new(&f->event), 0);
	assert_int_equal(config_new(config_path, &f->config), 0);
	assert_int_equal(history_open(f->path, &f->history), 0);
	assert_int_equal(udp_new(f->event, &f->udp), 0);
	assert_int_equal(messenger_new(f->event, f->udp, &f->messenger), 0);
	assert_int_equal(messenger_set_username(f->messenger, "alice"), 0);
	assert_int_equal(commit_new(f->event, f->history, &f->commit), 0);
	assert_int_equal(roster_new(f->event, ROSTER_MAX_PEERS, expiry_usec, &roster_callbacks, f,
			&f->roster), 0);
	assert_int_equal(conversation_new(f->event, f->history, f->config, f->commit, f->roster,
			f->messenger, &callbacks, f, &f->conversation), 0);
	*state = f;
	return 0;
}

static int setup(void **state) {
	return setup_with_expiry(state, ROSTER_OFFLINE_EXPIRY_USEC);
}

/* Offline peers are forgotten 100 ms after they left. */
static int setup_expiring(void **state) {
	return setup_with_expiry(state, 100 * USEC_PER_MSEC);
}

static int teardown(void **state) {
	Fixture *f = *state;

	fault_vfs_reset();
	f->commit = commit_free(f->commit);
	f->conversation = conversation_free(f->conversation);
	f->roster = roster_free(f->roster);
	f->messenger = messenger_free(f->messenger);
	f->udp = udp_free(f->udp);
	f->history = history_free(f->history);
	f->config = config_free(f->config);
	sd_event_unref(f->event);
	if (f->bob_fd >= 0) {
		(void) close(f->bob_fd);
	}
	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* Runs the loop until @event was recorded, for at most 2 s. */
static void run_until(Fixture *f, const char *event) {
	for (int i = 0; i < 200 && !saw(f, event); i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	if (!saw(f, event)) {
		for (size_t i = 0; i < f->n_events; i++) {
			print_message("# saw %s\n", f->events[i]);
		}
		fail_msg("never saw '%s'", event);
	}
}

static HistoryState state_of(Fixture *f, const char *id) {
	_cleanup_(history_message_done) HistoryMessage hm = {};

	assert_int_equal(history_get_message(f->history, id, &hm), 0);
	return hm.state;
}

static void deliver(Fixture *f, const char *json) {
	Endpoint from = bob_ep();

	udp_deliver(f->udp, json, strlen(json), &from);
}

static void ack(Fixture *f, const char *id) {
	char json[128];

	(void) snprintf(json, sizeof(json), "{\"type\":\"ack\",\"id\":\"%s\",\"from\":\"bob\"}", id);
	deliver(f, json);
}

static void send_message(Fixture *f, const char *text, char id[static MESSAGE_ID_STRLEN]) {
	assert_int_equal(conversation_send(f->conversation, "bob", text, on_done, f, id), 0);
}

static void bob_joins(Fixture *f) {
	Endpoint e = bob_ep();

	assert_int_equal(roster_add_or_update(f->roster, "alice", "bob", &e, "native1"), 1);
}

/* bob online and confirmed (he acked a message): the next send goes at once. */
static void bob_confirmed(Fixture *f) {
	char id[MESSAGE_ID_STRLEN], event[64];

	bob_joins(f);
	send_message(f, "first", id);
	(void) snprintf(event, sizeof(event), "state:%s:sent", id);
	run_until(f, event);
	ack(f, id);
	(void) snprintf(event, sizeof(event), "delivered:%s", id);
	assert_true(saw(f, event));
	/* Let what that scheduled (the flush of the rest) run, and its commit. */
	for (int i = 0; i < 10 && sd_event_run(f->event, 0) > 0; i++) {
	}
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(sd_event_run(f->event, 0), 0);
	f->n_events = 0;
}

static void test_conversation_queued_until_peer_joins(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], event[64];

	send_message(f, "hello", id);
	/* Nothing about the id before its answer, which waits for the barrier. */
	assert_int_equal(f->n_events, 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_events, 3);
	(void) snprintf(event, sizeof(event), "done:%s:ok", id);
	assert_string_equal(f->events[0], event);
	/* bob was never seen: not in the roster, nothing in the history. */
	(void) snprintf(event, sizeof(event), "queued:%s:bob:hello:unknown", id);
	assert_string_equal(f->events[1], event);
	(void) snprintf(event, sizeof(event), "state:%s:queued", id);
	assert_string_equal(f->events[2], event);
	assert_int_equal(state_of(f, id), HISTORY_STATE_QUEUED);

	/* bob is not there: the flush leaves it queued. */
	for (int i = 0; i < 5; i++) {
		assert_true(sd_event_run(f->event, 0) >= 0);
	}
	assert_int_equal(state_of(f, id), HISTORY_STATE_QUEUED);

	bob_joins(f);
	(void) snprintf(event, sizeof(event), "state:%s:sent", id);
	run_until(f, event);
	assert_int_equal(state_of(f, id), HISTORY_STATE_SENT);
}

static void test_conversation_delivered_on_ack(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], event[64], json[128];
	Endpoint other = bob_ep();

	bob_joins(f);
	send_message(f, "hello", id);
	(void) snprintf(event, sizeof(event), "state:%s:sent", id);
	run_until(f, event);

	/* An ack from another port is not bob's. */
	endpoint_set_port(&other, 4001);
	(void) snprintf(json, sizeof(json), "{\"type\":\"ack\",\"id\":\"%s\",\"from\":\"bob\"}",
			id);
	udp_deliver(f->udp, json, strlen(json), &other);
	(void) snprintf(event, sizeof(event), "delivered:%s", id);
	assert_false(saw(f, event));

	ack(f, id);
	assert_true(saw(f, event));
	assert_int_equal(state_of(f, id), HISTORY_STATE_DELIVERED);
	assert_int_equal(messenger_in_flight(f->messenger), 0);

	/* A repeated ack says nothing new. */
	f->n_events = 0;
	ack(f, id);
	assert_int_equal(count_prefix(f, "delivered:"), 0);
}

static void test_conversation_received_once(void **state) {
	Fixture *f = *state;
	const char *msg = "{\"type\":\"msg\",\"id\":\"0123456789abcdef0123456789abcdef\","
			  "\"from\":\"bob\",\"ts\":1700000000000000,\"body\":\"hi there\"}";
	Endpoint other = bob_ep();

	/* Not in the roster yet: dropped. */
	deliver(f, msg);
	assert_int_equal(f->n_events, 0);

	bob_joins(f);
	/* From another port than bob's: dropped. */
	endpoint_set_port(&other, 4001);
	udp_deliver(f->udp, msg, strlen(msg), &other);
	assert_int_equal(f->n_events, 0);

	deliver(f, msg);
	assert_true(saw(f, "received:bob:hi there"));
	/* Unread is told after the barrier, once per batch. */
	assert_false(saw(f, "unread:bob"));
	deliver(f, msg); /* a retransmission: stored once, announced once */
	assert_int_equal(count_prefix(f, "received:"), 1);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(count_prefix(f, "unread:bob"), 1);
	assert_int_equal(history_unread(f->history, "bob"), 1);
}

static void test_conversation_active_reads(void **state) {
	Fixture *f = *state;
	const char *msg = "{\"type\":\"msg\",\"id\":\"00000000000000000000000000000001\","
			  "\"from\":\"bob\",\"ts\":1,\"body\":\"on screen\"}";

	bob_joins(f);
	assert_int_equal(conversation_set_active(f->conversation, "bob"), 0);
	assert_true(saw(f, "active"));
	assert_string_equal(conversation_get_active(f->conversation), "bob");
	f->n_events = 0;
	deliver(f, msg);
	assert_true(saw(f, "received:bob:on screen"));
	assert_true(saw(f, "state:00000000000000000000000000000001:read"));
	assert_int_equal(history_unread(f->history, "bob"), 0);

	assert_int_equal(conversation_set_active(f->conversation, ""), 0);
	f->n_events = 0;
	deliver(f, "{\"type\":\"msg\",\"id\":\"00000000000000000000000000000002\","
		   "\"from\":\"bob\",\"ts\":1,\"body\":\"later\"}");
	assert_int_equal(history_unread(f->history, "bob"), 1);
	assert_int_equal(conversation_mark_read(f->conversation, "bob"), 1);
	assert_int_equal(history_unread(f->history, "bob"), 0);
}

/*
 * The peer goes offline while two messages sent at once wait for their
 * answers, and the commit that the requeue forces fails: both calls are
 * told, both messages fail, nothing is used after it was freed (ASan).
 */
static void test_conversation_peer_left_commit_fails(void **state) {
	Fixture *f = *state;
	char id1[MESSAGE_ID_STRLEN], id2[MESSAGE_ID_STRLEN], event[64];

	bob_confirmed(f);
	send_message(f, "one", id1);
	send_message(f, "two", id2);
	assert_int_equal(messenger_in_flight(f->messenger), 2);
	assert_int_equal(f->n_events, 0);

	fault_vfs_fail_syncs(1);
	roster_mark_offline(f->roster, "bob", NULL);
	assert_true(fault_vfs_injected() >= 1);
	(void) snprintf(event, sizeof(event), "done:%s:error", id1);
	assert_true(saw(f, event));
	(void) snprintf(event, sizeof(event), "done:%s:error", id2);
	assert_true(saw(f, event));
	assert_int_equal(count_prefix(f, "done:"), 2);
	assert_int_equal(messenger_in_flight(f->messenger), 0);
	assert_int_equal(state_of(f, id1), HISTORY_STATE_FAILED);
	assert_int_equal(state_of(f, id2), HISTORY_STATE_FAILED);

	/* The store works again. */
	assert_int_equal(commit_run(f->commit), 0);
}

/*
 * The same with the retry timer: the peer is offline when it fires, so the
 * message goes back alone (outgoing_requeue()), while its answer waits.
 */
static void test_conversation_retry_requeue_commit_fails(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], event[64];

	bob_confirmed(f);
	/* Sent at once; then bob leaves without the Messenger being told. */
	send_message(f, "probe", id);
	assert_int_equal(messenger_in_flight(f->messenger), 1);
	f->tell_messenger_left = false;
	roster_mark_offline(f->roster, "bob", NULL);
	fault_vfs_fail_syncs(1);
	(void) snprintf(event, sizeof(event), "done:%s:error", id);
	run_until(f, event);
	assert_int_equal(count_prefix(f, "done:"), 1);
	assert_int_equal(messenger_in_flight(f->messenger), 0);
	assert_int_equal(state_of(f, id), HISTORY_STATE_FAILED);
}

/*
 * Issue 14: MessageQueued comes for a message that went on the wire at once
 * too, after the answer and before every state change of it.
 */
static void test_conversation_queued_after_done(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], event[192];

	bob_confirmed(f);
	send_message(f, "straight out", id);
	assert_int_equal(messenger_in_flight(f->messenger), 1);
	assert_int_equal(f->n_events, 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_events, 4);
	(void) snprintf(event, sizeof(event), "done:%s:ok", id);
	assert_string_equal(f->events[0], event);
	(void) snprintf(event, sizeof(event), "queued:%s:bob:straight out:known", id);
	assert_string_equal(f->events[1], event);
	(void) snprintf(event, sizeof(event), "state:%s:queued", id);
	assert_string_equal(f->events[2], event);
	(void) snprintf(event, sizeof(event), "state:%s:sent", id);
	assert_string_equal(f->events[3], event);
}

/* A name with history is known although it is not in the roster. */
static void test_conversation_queued_unknown(void **state) {
	Fixture *f = *state;
	char id1[MESSAGE_ID_STRLEN], id2[MESSAGE_ID_STRLEN], event[192];

	assert_int_equal(conversation_send(f->conversation, "zed", "one", on_done, f, id1), 0);
	assert_int_equal(conversation_send(f->conversation, "zed", "two", on_done, f, id2), 0);
	assert_int_equal(commit_run(f->commit), 0);
	(void) snprintf(event, sizeof(event), "queued:%s:zed:one:unknown", id1);
	assert_true(saw(f, event));
	(void) snprintf(event, sizeof(event), "queued:%s:zed:two:known", id2);
	assert_true(saw(f, event));
}

/* A reply from a notification: announced like a SendMessage(), after the barrier. */
static void test_conversation_queue_announced_after_barrier(void **state) {
	Fixture *f = *state;

	bob_joins(f);
	assert_int_equal(conversation_queue(f->conversation, "bob", "from the popup"), 0);
	assert_int_equal(f->n_events, 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_true(f->n_events >= 2);
	assert_int_equal(strncmp(f->events[0], "queued:", 7), 0);
	assert_non_null(strstr(f->events[0], ":bob:from the popup:known"));
	assert_int_equal(strncmp(f->events[1], "state:", 6), 0);
	assert_non_null(strstr(f->events[1], ":queued"));
}

static void on_cancel_done(int error, const char *id, void *userdata) {
	record(userdata, "cancelled:%s:%s", id, error < 0 ? "error" : "ok");
}

static void test_conversation_cancel(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], id2[MESSAGE_ID_STRLEN], event[192];
	const char *msg = "{\"type\":\"msg\",\"id\":\"0123456789abcdef0123456789abcdef\","
			  "\"from\":\"bob\",\"ts\":1700000000000000,\"body\":\"hi\"}";

	/* bob is offline: it waits in the outbox. */
	send_message(f, "never mind", id);
	assert_int_equal(commit_run(f->commit), 0);
	f->n_events = 0;

	assert_int_equal(conversation_cancel(f->conversation, id, on_cancel_done, f), 0);
	/* Answered and announced after the barrier. */
	assert_int_equal(f->n_events, 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(f->n_events, 3);
	(void) snprintf(event, sizeof(event), "cancelled:%s:ok", id);
	assert_string_equal(f->events[0], event);
	(void) snprintf(event, sizeof(event), "failed:%s:cancelled", id);
	assert_string_equal(f->events[1], event);
	(void) snprintf(event, sizeof(event), "state:%s:failed", id);
	assert_string_equal(f->events[2], event);
	assert_int_equal(state_of(f, id), HISTORY_STATE_FAILED);

	/* Once only; unknown ids are told apart. */
	assert_int_equal(conversation_cancel(f->conversation, id, on_cancel_done, f), -EBUSY);
	assert_int_equal(conversation_cancel(f->conversation, "ffffffffffffffffffffffffffffffff",
			on_cancel_done, f), -ENOENT);
	assert_int_equal(conversation_cancel(f->conversation, "not an id!", on_cancel_done, f),
			-ENOENT);

	/* bob comes: the cancelled message does not go out. */
	bob_joins(f);
	for (int i = 0; i < 5; i++) {
		assert_true(sd_event_run(f->event, 0) >= 0);
	}
	assert_int_equal(messenger_in_flight(f->messenger), 0);
	assert_int_equal(state_of(f, id), HISTORY_STATE_FAILED);

	/* On the wire, waiting for its ack: too late. */
	send_message(f, "on its way", id2);
	(void) snprintf(event, sizeof(event), "state:%s:sent", id2);
	run_until(f, event);
	assert_int_equal(conversation_cancel(f->conversation, id2, on_cancel_done, f), -EBUSY);
	assert_int_equal(state_of(f, id2), HISTORY_STATE_SENT);

	/* Incoming: not ours to cancel. */
	deliver(f, msg);
	assert_int_equal(conversation_cancel(f->conversation, "0123456789abcdef0123456789abcdef",
			on_cancel_done, f), -EBUSY);
	assert_int_equal(count_prefix(f, "cancelled:"), 1);
}

/* The cancellation's batch fails: the caller is told, the message still goes. */
static void test_conversation_cancel_commit_fails(void **state) {
	Fixture *f = *state;
	char id[MESSAGE_ID_STRLEN], event[192];

	send_message(f, "keep me", id);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(conversation_cancel(f->conversation, id, on_cancel_done, f), 0);
	fault_vfs_fail_writes(UINT_MAX, SQLITE_IOERR_WRITE);
	assert_true(commit_run(f->commit) < 0);
	fault_vfs_fail_writes(0, 0);
	(void) snprintf(event, sizeof(event), "cancelled:%s:error", id);
	assert_true(saw(f, event));
	(void) snprintf(event, sizeof(event), "failed:%s:cancelled", id);
	assert_false(saw(f, event));
	assert_int_equal(state_of(f, id), HISTORY_STATE_QUEUED);
}

/* --- reference peers' talk --- */

#define LOOPBACK 0x7f000001u
#define LOOPBACK2 0x7f000002u

/* dave, a reference client: listens on 127.0.0.1:5000, talks from throwaway ports. */
static void dave_joins(Fixture *f, const char *name) {
	Endpoint e = bob_ep();

	endpoint_set_port(&e, 5000);
	assert_int_equal(roster_add_or_update(f->roster, "alice", name, &e, ""), 1);
}

/* A UTF-16LE talk claiming to be from @name, sent from @ip (host order), port 40000. */
static void talk_from(Fixture *f, uint32_t ip, const char *name, const char *text) {
	Endpoint from = { .in.sin_family = AF_INET, .in.sin_port = htons(40000) };
	WireMessage w = { .type = WIRE_TYPE_TALK, .text = (char *) text };
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n;

	from.in.sin_addr.s_addr = htonl(ip);
	(void) snprintf(w.time, sizeof(w.time), "12:00:00");
	(void) snprintf(w.name, sizeof(w.name), "%s", name);
	w.text_len = strlen(text);
	assert_int_equal(wire_format_datagram(&w, WIRE_ENCODING_UTF16LE, &buf, &n), 0);
	udp_deliver(f->udp, buf, n, &from);
}

/* @head, then @n times "满" (3 bytes of UTF-8, 2 of UTF-16LE). */
static char *cjk_text(const char *head, size_t n) {
	size_t h = strlen(head);
	char *s = malloc(h + 3 * n + 1);

	assert_non_null(s);
	memcpy(s, head, h);
	for (size_t i = 0; i < n; i++) {
		memcpy(s + h + 3 * i, "满", 3);
	}
	s[h + 3 * n] = 0;
	return s;
}

static ssize_t index_of(Fixture *f, const char *event) {
	for (size_t i = 0; i < f->n_events; i++) {
		if (streq(f->events[i], event)) {
			return (ssize_t) i;
		}
	}
	return -1;
}

/*
 * Issue 15: a reference client talks as soon as it has the list, before its
 * login forward reaches us; the talk waits for the sender to join, and is
 * handed on if it came from the sender's IP.
 */
static void test_conversation_talk_before_login(void **state) {
	Fixture *f = *state;

	talk_from(f, LOOPBACK, "dave", "early words");
	talk_from(f, LOOPBACK2, "dave", "forged words");
	talk_from(f, LOOPBACK, "dave", "more words");
	assert_int_equal(count_prefix(f, "received:"), 0);

	dave_joins(f, "dave");
	assert_int_equal(count_prefix(f, "received:"), 2);
	assert_true(index_of(f, "received:dave:early words") >= 0);
	assert_true(index_of(f, "received:dave:early words") <
		    index_of(f, "received:dave:more words"));
	assert_false(saw(f, "received:dave:forged words"));

	/* Handed on once; then talks go straight through. */
	messenger_peer_reset(f->messenger, "dave");
	assert_int_equal(count_prefix(f, "received:"), 2);
	talk_from(f, LOOPBACK, "dave", "now");
	assert_true(saw(f, "received:dave:now"));
}

/* At most MESSENGER_EARLY_MAX talks, MESSENGER_EARLY_BYTES of text: the oldest go. */
static void test_conversation_talk_before_login_bounded(void **state) {
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
	Fixture *f = *state;
	char text[32];

	for (unsigned i = 0; i <= MESSENGER_EARLY_MAX; i++) {
		(void) snprintf(text, sizeof(text), "early %u", i);
		talk_from(f, LOOPBACK, "dave", text);
	}
	dave_joins(f, "dave");
	assert_int_equal(count_prefix(f, "received:dave:"), MESSENGER_EARLY_MAX);
	assert_false(saw(f, "received:dave:early 0"));
	assert_true(saw(f, "received:dave:early 1"));
	(void) snprintf(text, sizeof(text), "received:dave:early %u", MESSENGER_EARLY_MAX);
	assert_true(saw(f, text));

	/* Three talks of 90,001 bytes are more than the bytes allowed. */
	assert_true(3 * 90001 > MESSENGER_EARLY_BYTES && 2 * 90001 <= MESSENGER_EARLY_BYTES);
	a = cjk_text("A", 30000);
	b = cjk_text("B", 30000);
	c = cjk_text("C", 30000);
	talk_from(f, LOOPBACK, "erin", a);
	talk_from(f, LOOPBACK, "erin", b);
	talk_from(f, LOOPBACK, "erin", c);
	dave_joins(f, "erin");
	assert_int_equal(count_prefix(f, "received:erin:A"), 0);
	assert_int_equal(count_prefix(f, "received:erin:B"), 1);
	assert_int_equal(count_prefix(f, "received:erin:C"), 1);
}

/*
 * Issue 15: the reference client sent 6000 Chinese characters as one talk
 * (12 KB of UTF-16LE, 18,000 bytes of UTF-8), which was dropped as too long.
 * It is received whole, as messages of at most WIRE_TEXT_MAX bytes, which is
 * what the history and D-Bus take.
 */
static void test_conversation_talk_long(void **state) {
	_cleanup_(history_list_done) HistoryList l = {};
	_cleanup_free_ char *text = NULL, *joined = NULL;
	Fixture *f = *state;
	size_t len = 0;

	dave_joins(f, "dave");
	text = cjk_text("", 6000);
	talk_from(f, LOOPBACK, "dave", text);
	assert_int_equal(count_prefix(f, "received:dave:"), 2);

	assert_int_equal(history_get(f->history, "dave", 100, NULL, &l), 0);
	assert_int_equal(l.n, 2);
	joined = calloc(1, strlen(text) + 1);
	assert_non_null(joined);
	for (size_t i = 0; i < l.n; i++) {
		size_t n = strlen(l.messages[i].text);

		assert_true(n <= WIRE_TEXT_MAX);
		assert_true(len + n <= strlen(text));
		memcpy(joined + len, l.messages[i].text, n);
		len += n;
	}
	assert_string_equal(joined, text);
}

/* The reference client sends an empty box too: nothing to receive. */
static void test_conversation_talk_empty(void **state) {
	_cleanup_(history_list_done) HistoryList l = {};
	Fixture *f = *state;

	dave_joins(f, "dave");
	talk_from(f, LOOPBACK, "dave", "");
	talk_from(f, LOOPBACK, "nobody", "");
	assert_int_equal(f->n_events, 0);
	assert_int_equal(history_get(f->history, "dave", 100, NULL, &l), 0);
	assert_int_equal(l.n, 0);
}

/* --- storage faults during a burst, with the acks read off the wire --- */

/* Incoming messages in a burst, and SendMessage()s among them. */
#define BURST 100u
#define BURST_SEND_EVERY 10u

typedef enum BurstFault {
	BURST_FAULT_COMMIT, /* the COMMIT's write fails (an I/O error) */
	BURST_FAULT_SYNC,   /* the COMMIT works, the barrier's fsync fails */
	BURST_FAULT_FULL,   /* the disk is full */
	_BURST_FAULT_MAX,
	_BURST_FAULT_INVALID = -EINVAL,
} BurstFault;

/*
 * Our Udp opens on 127.0.0.1 and bob is a real socket there, so the acks
 * really go out and bob reads them: the test sees what the wire says, with
 * no hook in the transport.  bob's datagrams still come in through
 * udp_deliver(), from his socket's address.
 */
static void bob_listens(Fixture *f) {
	Endpoint ours = { .in.sin_family = AF_INET };
	socklen_t len = sizeof(f->bob.in);

	ours.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(udp_open(f->udp, &ours), 0);
	f->bob_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(f->bob_fd >= 0);
	f->bob = ours;
	assert_int_equal(bind(f->bob_fd, &f->bob.sa, sizeof(f->bob.in)), 0);
	assert_int_equal(getsockname(f->bob_fd, &f->bob.sa, &len), 0);
	assert_int_equal(roster_add_or_update(f->roster, "alice", "bob", &f->bob, "native1"), 1);
}

static void burst_id(unsigned i, char id[static MESSAGE_ID_STRLEN]) {
	(void) snprintf(id, MESSAGE_ID_STRLEN, "%032x", i);
}

static void bob_sends(Fixture *f, unsigned i) {
	char json[256], id[MESSAGE_ID_STRLEN];

	burst_id(i, id);
	(void) snprintf(json, sizeof(json), "{\"type\":\"msg\",\"id\":\"%s\",\"from\":\"bob\","
			"\"ts\":%u,\"body\":\"burst %u\"}", id, i, i);
	udp_deliver(f->udp, json, strlen(json), &f->bob);
}

/* Reads every datagram bob got; counts the acks of burst message i in acks[i]. */
static unsigned bob_reads_acks(Fixture *f, unsigned acks[static BURST + 1]) {
	char buf[1024], id[MESSAGE_ID_STRLEN];
	unsigned n = 0;

	for (;;) {
		unsigned long i;
		const char *p;
		ssize_t k;

		k = recv(f->bob_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (k < 0) {
			assert_int_equal(errno, EAGAIN);
			return n;
		}
		buf[k] = '\0';
		if (!strstr(buf, "\"ack\"")) {
			continue; /* one of alice's messages */
		}
		p = strstr(buf, "\"id\"");
		assert_non_null(p);
		p = strchr(p + 4, '"');
		assert_non_null(p);
		assert_int_equal(sscanf(p + 1, "%32[0-9a-f]", id), 1);
		i = strtoul(id, NULL, 16);
		assert_true(i >= 1 && i <= BURST);
		acks[i]++;
		n++;
	}
}

/*
 * One pass of the loop: bob sends (or resends) the whole burst while alice
 * sends some, then the group commit.  @sends gets the ids of the accepted
 * SendMessage()s.  Return: the commit's result.
 */
static int burst_pass(Fixture *f, char (*sends)[MESSAGE_ID_STRLEN], size_t *n_sends) {
	for (unsigned i = 1; i <= BURST; i++) {
		bob_sends(f, i);
		if (i % BURST_SEND_EVERY == 0 &&
				conversation_send(f->conversation, "bob", "from alice", on_done, f,
						sends[*n_sends]) >= 0) {
			(*n_sends)++;
		}
	}
	return commit_run(f->commit);
}

static void inject(BurstFault fault) {
	switch (fault) {
	case BURST_FAULT_COMMIT:
		fault_vfs_fail_writes(UINT_MAX, SQLITE_IOERR_WRITE);
		break;
	case BURST_FAULT_SYNC:
		fault_vfs_fail_syncs(UINT_MAX);
		break;
	case BURST_FAULT_FULL:
		fault_vfs_fail_writes(UINT_MAX, SQLITE_FULL);
		break;
	case _BURST_FAULT_MAX:
	case _BURST_FAULT_INVALID:
		abort();
	}
}

/*
 * The storage fails for two passes of a burst, then comes back by itself:
 * nothing acked or accepted is lost, no ack and no accepted SendMessage()
 * comes before its barrier, every message is announced exactly once (issue
 * 15: disk full announced 792 times for 120 messages), and after the fault
 * the next pass stores everything with no help.
 */
static void burst_with_fault(Fixture *f, BurstFault fault) {
	char sends[4 * BURST / BURST_SEND_EVERY][MESSAGE_ID_STRLEN], event[96];
	unsigned acks[BURST + 1] = {};
	size_t n_sends = 0, n_failed;

	bob_listens(f);
	inject(fault);
	for (int pass = 0; pass < 2; pass++) {
		assert_true(burst_pass(f, sends, &n_sends) < 0);
		assert_true(fault_vfs_injected() > 0);
		/* Not stored for good: no ack, no "accepted". */
		assert_int_equal(bob_reads_acks(f, acks), 0);
		assert_int_equal(count_prefix(f, "done:"), n_sends);
		for (size_t i = 0; i < n_sends; i++) {
			(void) snprintf(event, sizeof(event), "done:%.32s:error", sends[i]);
			assert_true(saw(f, event));
		}
		/* Announced once, not once per copy. */
		assert_int_equal(count_prefix(f, "received:"), BURST);
	}
	n_failed = n_sends;

	/* The disk is back: bob's retransmissions are stored and acked. */
	fault_vfs_fail_writes(0, 0);
	fault_vfs_fail_syncs(0);
	assert_int_equal(burst_pass(f, sends, &n_sends), 0);
	assert_int_equal(bob_reads_acks(f, acks), BURST);
	for (unsigned i = 1; i <= BURST; i++) {
		_cleanup_(history_message_done) HistoryMessage hm = {};
		char id[MESSAGE_ID_STRLEN];

		burst_id(i, id);
		assert_int_equal(acks[i], 1);
		assert_int_equal(history_get_message(f->history, id, &hm), 0);
		assert_int_equal(hm.direction, HISTORY_DIRECTION_IN);
		(void) snprintf(event, sizeof(event), "received:bob:burst %u", i);
		assert_true(saw(f, event));
	}
	assert_int_equal(count_prefix(f, "received:"), BURST);
	assert_int_equal(history_unread(f->history, "bob"), BURST);
	/* Accepted now, and stored; the ones refused before stay failed. */
	assert_true(n_sends > n_failed);
	for (size_t i = 0; i < n_sends; i++) {
		(void) snprintf(event, sizeof(event), "done:%.32s:%s", sends[i],
				i < n_failed ? "error" : "ok");
		assert_true(saw(f, event));
		if (i >= n_failed) {
			assert_int_equal(state_of(f, sends[i]), HISTORY_STATE_QUEUED);
		}
	}
	assert_int_equal(count_prefix(f, "done:"), n_sends);

	/* bob lost the acks and sends it all again: acked again, not announced. */
	memset(acks, 0, sizeof(acks));
	assert_int_equal(burst_pass(f, sends, &n_sends), 0);
	assert_int_equal(bob_reads_acks(f, acks), BURST);
	assert_int_equal(count_prefix(f, "received:"), BURST);
}

static void test_conversation_burst_commit_fails(void **state) {
	burst_with_fault(*state, BURST_FAULT_COMMIT);
}

static void test_conversation_burst_sync_fails(void **state) {
	burst_with_fault(*state, BURST_FAULT_SYNC);
}

static void test_conversation_burst_disk_full(void **state) {
	burst_with_fault(*state, BURST_FAULT_FULL);
}

static void peer_logs_in(Fixture *f, const char *name, uint16_t port) {
	Endpoint e = bob_ep();

	endpoint_set_port(&e, port);
	assert_int_equal(roster_add_or_update(f->roster, "alice", name, &e, ""), 1);
}

/*
 * What is kept for a peer, so that the roster does not forget it while it
 * is offline: its messages either way (queued ones too) and the active
 * conversation; a peer with none of them is forgotten after the expiry.
 */
static void test_conversation_peer_in_use(void **state) {
	Fixture *f = *state;
	const char *msg = "{\"type\":\"msg\",\"id\":\"00000000000000000000000000000003\","
			  "\"from\":\"bob\",\"ts\":1,\"body\":\"remember me\"}";
	char id[MESSAGE_ID_STRLEN];

	assert_int_equal(conversation_peer_in_use(f->conversation, "bob"), 0);
	assert_int_equal(conversation_peer_in_use(f->conversation, "carol"), 0);

	/* bob sends a message (his history), then everyone leaves. */
	bob_joins(f);
	deliver(f, msg);
	assert_true(saw(f, "received:bob:remember me"));
	assert_int_equal(commit_run(f->commit), 0);
	peer_logs_in(f, "carol", 4002);
	peer_logs_in(f, "dave", 4003);
	peer_logs_in(f, "erin", 4004);
	peer_logs_in(f, "ghost", 4005);
	roster_mark_offline(f->roster, "bob", NULL);
	roster_mark_offline(f->roster, "carol", NULL);
	roster_mark_offline(f->roster, "dave", NULL);
	roster_mark_offline(f->roster, "erin", NULL);
	roster_mark_offline(f->roster, "ghost", NULL);

	/* carol: a message queued for her (not yet committed: reads see it). */
	assert_int_equal(conversation_send(f->conversation, "carol", "wait for me", on_done, f,
			id), 0);
	assert_int_equal(conversation_peer_in_use(f->conversation, "carol"), 1);
	/* dave: the conversation on screen, without a message. */
	assert_int_equal(conversation_set_active(f->conversation, "dave"), 0);
	/* erin: a message cancelled before it left stays in the history. */
	assert_int_equal(conversation_send(f->conversation, "erin", "never mind", on_done, f,
			id), 0);
	assert_int_equal(commit_run(f->commit), 0);
	assert_int_equal(conversation_cancel(f->conversation, id, on_done, f), 0);
	assert_int_equal(commit_run(f->commit), 0);

	assert_int_equal(conversation_peer_in_use(f->conversation, "bob"), 1);
	assert_int_equal(conversation_peer_in_use(f->conversation, "carol"), 1);
	assert_int_equal(conversation_peer_in_use(f->conversation, "dave"), 1);
	assert_int_equal(conversation_peer_in_use(f->conversation, "erin"), 1);
	assert_int_equal(conversation_peer_in_use(f->conversation, "ghost"), 0);

	/* After the expiry only the ghost is gone. */
	run_until(f, "removed:ghost");
	for (int i = 0; i < 30; i++) {
		assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(count_prefix(f, "removed:"), 1);
	assert_null(roster_get(f->roster, "ghost"));
	assert_non_null(roster_get(f->roster, "bob"));
	assert_non_null(roster_get(f->roster, "carol"));
	assert_non_null(roster_get(f->roster, "dave"));
	assert_non_null(roster_get(f->roster, "erin"));
	assert_int_equal(state_of(f, id), HISTORY_STATE_FAILED);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void) {
	const struct CMUnitTest tests[] = {
		T(test_conversation_queued_until_peer_joins),
		T(test_conversation_delivered_on_ack),
		T(test_conversation_received_once),
		T(test_conversation_active_reads),
		T(test_conversation_peer_left_commit_fails),
		T(test_conversation_retry_requeue_commit_fails),
		T(test_conversation_queued_after_done),
		T(test_conversation_queued_unknown),
		T(test_conversation_queue_announced_after_barrier),
		T(test_conversation_cancel),
		T(test_conversation_cancel_commit_fails),
		T(test_conversation_talk_before_login),
		T(test_conversation_talk_before_login_bounded),
		T(test_conversation_talk_long),
		T(test_conversation_talk_empty),
		T(test_conversation_burst_commit_fails),
		T(test_conversation_burst_sync_fails),
		T(test_conversation_burst_disk_full),
		cmocka_unit_test_setup_teardown(test_conversation_peer_in_use, setup_expiring,
				teardown),
	};

	assert_int_equal(fault_vfs_install(), 0);
	return cmocka_run_group_tests_name("conversation", tests, NULL, NULL);
}
