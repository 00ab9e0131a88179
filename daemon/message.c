/* SPDX-License-Identifier: MIT */

/*
 * Chat messages between peers.  The outbox (manager-store.c) decides what to
 * send and when; the Messenger puts it on the wire and follows it until its
 * outcome is known:
 *
 *  - native peers (caps "native1") get a JSON datagram
 *    {"type":"msg","id":…,"from":…,"ts":…,"body":…}, resent with exponential
 *    backoff until the peer's {"type":"ack",…} arrives (delivered) or
 *    MESSAGE_GIVE_UP_USEC passed (back to the outbox: queued);
 *  - reference peers get one UTF-16LE "talk" datagram; the reference
 *    protocol has no acks, so the outcome is "sent" for good.
 *
 * Incoming messages are accepted only from the roster endpoint of the sender
 * they name (the IP only for reference peers, which send from throwaway
 * ports), stored, and acked once the store made them durable (the group
 * commit's barrier, manager-commit.c): an ack means "stored".  The store
 * keeps each id once, so retransmissions are acked again but announced once.
 */

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <json-c/json.h>

#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "daemon/history.h"
#include "daemon/outbox.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-commit.h"
#include "daemon/manager-store.h"
#include "daemon/manager.h"
#include "daemon/message.h"
#include "daemon/peer.h"

/*
 * sd-event's default slack (250 ms) would delay an outcome due "now" and
 * double the first retry interval.
 */
#define MESSAGE_TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)
#define MESSAGE_FIRST_RETRY_USEC (250 * USEC_PER_MSEC)
#define MESSAGE_MAX_RETRY_USEC (4 * USEC_PER_SEC)
#define MESSAGE_GIVE_UP_USEC (12 * USEC_PER_SEC)
#define MESSAGE_ID_BYTES 16
#define MESSAGE_JSON_DEPTH 4

/* A native message on the wire, waiting for its ack. */
typedef struct Outgoing {
	Messenger *messenger; /* not owned */
	char id[HISTORY_ID_MAX + 1];
	char *peer;
	char *json;
	size_t json_len;
	unsigned attempts;
	uint64_t started;
	uint64_t interval;
	sd_event_source *timer;
} Outgoing;

struct Messenger {
	Manager *manager; /* not owned */
	void *outgoing;   /* tsearch() tree of Outgoing*, by id */
	size_t n_outgoing;
};

static int outgoing_compare(const void *a, const void *b) {
	const Outgoing *x = a, *y = b;

	return strcmp(x->id, y->id);
}

static Outgoing *outgoing_free(Outgoing *o) {
	if (!o) {
		return NULL;
	}
	if (o->messenger && tdelete(o, &o->messenger->outgoing, outgoing_compare)) {
		Peer *p = peer_get(o->messenger->manager, o->peer);

		o->messenger->n_outgoing--;
		if (p && p->in_flight > 0) {
			p->in_flight--;
		}
	}
	sd_event_source_disable_unref(o->timer);
	free(o->peer);
	free(o->json);
	return mfree(o);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Outgoing *, outgoing_free);

int messenger_new(Manager *m, Messenger **ret) {
	Messenger *s;

	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->manager = m;
	*ret = s;
	return 0;
}

static void take_first(const void *nodep, VISIT which, void *closure) {
	Outgoing **first = closure;

	if (!*first && (which == leaf || which == postorder)) {
		*first = *(Outgoing *const *) nodep;
	}
}

Messenger *messenger_free(Messenger *s) {
	Outgoing *o;

	if (!s) {
		return NULL;
	}
	/* The messages stay "sent" in the store: the next start requeues them. */
	while (s->outgoing) {
		o = NULL;
		twalk_r(s->outgoing, take_first, &o);
		outgoing_free(o);
	}
	return mfree(s);
}

size_t messenger_in_flight(Messenger *s) {
	return s->n_outgoing;
}

int messenger_new_id(char ret[static MESSAGE_ID_STRLEN]) {
	uint8_t b[MESSAGE_ID_BYTES];
	ssize_t n;

	n = getrandom(b, sizeof(b), 0);
	if (n < 0) {
		return -errno;
	}
	if ((size_t) n != sizeof(b)) {
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		(void) snprintf(ret + 2 * i, 3, "%02x", b[i]);
	}
	return 0;
}

static int hex_value(char c) {
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -EINVAL;
}

/* Only the canonical form (32 lowercase hex digits) is an id. */
static int id_check(const char *s, size_t n) {
	if (n != 2 * MESSAGE_ID_BYTES) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (hex_value(s[i]) < 0) {
			return -EINVAL;
		}
	}
	return 0;
}

static int build_json(const char *type, const char *id, const char *from, const char *body,
		uint64_t ts_usec, char **ret, size_t *ret_len) {
	_cleanup_(json_object_putp) json_object *o = NULL;
	const char *s;
	size_t len;
	int r;

	o = json_object_new_object();
	if (!o) {
		return -ENOMEM;
	}
	r = json_add_string(o, "type", type);
	if (r >= 0) {
		r = json_add_string(o, "id", id);
	}
	if (r >= 0) {
		r = json_add_string(o, "from", from);
	}
	if (r >= 0 && body) {
		r = json_add(o, "ts",
				json_object_new_int64((int64_t) MIN(ts_usec, (uint64_t) INT64_MAX)));
	}
	if (r >= 0 && body) {
		r = json_add_string(o, "body", body);
	}
	if (r < 0) {
		return r;
	}
	s = json_object_to_json_string_length(o,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!s) {
		return -ENOMEM;
	}
	if (len > WIRE_DATAGRAM_MAX) {
		return -EMSGSIZE;
	}
	*ret = strndup(s, len);
	if (!*ret) {
		return -ENOMEM;
	}
	*ret_len = len;
	return 0;
}

static int send_talk(Messenger *s, Peer *p, const char *text, size_t len) {
	_cleanup_free_ uint8_t *buf = NULL;
	WireMessage w = { .type = WIRE_TYPE_TALK };
	struct tm tm;
	time_t t;
	size_t n;
	int r;

	t = time(NULL);
	if (!localtime_r(&t, &tm) || strftime(w.time, sizeof(w.time), "%H:%M:%S", &tm) == 0) {
		return -EINVAL;
	}
	(void) snprintf(w.name, sizeof(w.name), "%s", s->manager->username);
	w.text = (char *) text;
	w.text_len = len;
	r = wire_format_datagram(&w, WIRE_ENCODING_UTF16LE, &buf, &n);
	if (r < 0) {
		return r;
	}
	return manager_send_datagram(s->manager, &p->endpoint, buf, n);
}

/* Retries ran out or the peer went away: back to the outbox. */
static void outgoing_requeue(Outgoing *o, const char *reason) {
	Peer *p = peer_get(o->messenger->manager, o->peer);

	if (p) {
		p->confirmed = false; /* probe with one message before the rest */
	}
	log_debug("Message %s to '%s' goes back to the outbox: %s", o->id, o->peer, reason);
	manager_message_requeued(o->messenger->manager, o->id, o->peer);
	outgoing_free(o);
}

static int outgoing_transmit(Outgoing *o) {
	Messenger *s = o->messenger;
	Peer *p;

	p = peer_get(s->manager, o->peer);
	if (!p || !p->online) {
		return -EHOSTDOWN;
	}
	o->attempts++;
	return manager_send_datagram(s->manager, &p->endpoint, o->json, o->json_len);
}

static int on_outgoing_timer(sd_event_source *source, uint64_t usec, void *userdata) {
	Outgoing *o = userdata;
	uint64_t now, next;
	int r;

	now = now_usec(CLOCK_MONOTONIC);
	if (now - o->started >= MESSAGE_GIVE_UP_USEC) {
		outgoing_requeue(o, "timeout");
		return 0;
	}
	r = outgoing_transmit(o);
	if (r == -EHOSTDOWN) {
		outgoing_requeue(o, "peer-offline");
		return 0;
	}
	if (r < 0) {
		log_debug_errno(r, "Failed to resend message %s, retrying later: %m", o->id);
	}

	o->interval = MIN(o->interval * 2, MESSAGE_MAX_RETRY_USEC);
	next = MIN(now + o->interval, o->started + MESSAGE_GIVE_UP_USEC);
	r = sd_event_source_set_time(source, next);
	if (r >= 0) {
		r = sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to rearm retry timer: %m");
		outgoing_requeue(o, "internal-error");
	}
	return 0;
}

static Outgoing *outgoing_get(Messenger *s, const char *id) {
	Outgoing key = {};
	void **node;

	(void) snprintf(key.id, sizeof(key.id), "%s", id);
	node = tfind(&key, &s->outgoing, outgoing_compare);
	return node ? *node : NULL;
}

int messenger_transmit(Messenger *s, const HistoryMessage *m) {
	_cleanup_(outgoing_freep) Outgoing *o = NULL;
	Peer *p;
	int r;

	if (!s->manager->username) {
		return -ENOTCONN;
	}
	p = peer_get(s->manager, m->peer);
	if (!p || !p->online) {
		return -EHOSTDOWN;
	}
	if (outgoing_get(s, m->id)) {
		return OUTBOX_SENT; /* already on its way */
	}
	if (!p->native) {
		r = send_talk(s, p, m->text, strlen(m->text));
		if (r < 0) {
			return r;
		}
		return OUTBOX_SENT_FINAL;
	}
	if (s->n_outgoing >= MESSENGER_MAX_IN_FLIGHT) {
		return -ENOBUFS;
	}
	if (!p->confirmed && p->in_flight > 0) {
		return -EAGAIN; /* after the first ack (see Peer.confirmed) */
	}

	o = calloc(1, sizeof(*o));
	if (!o) {
		return -ENOMEM;
	}
	(void) snprintf(o->id, sizeof(o->id), "%s", m->id);
	o->messenger = s; /* tdelete() in outgoing_free() finds nothing yet */
	o->peer = strdup(m->peer);
	if (!o->peer) {
		return -ENOMEM;
	}
	o->started = now_usec(CLOCK_MONOTONIC);
	o->interval = MESSAGE_FIRST_RETRY_USEC;
	r = build_json("msg", o->id, s->manager->username, m->text, m->sent_usec, &o->json,
			&o->json_len);
	if (r == -EMSGSIZE) {
		return -EMSGSIZE; /* the caller fails it: it can never go */
	}
	if (r < 0) {
		return r;
	}
	r = sd_event_add_time_relative(s->manager->event, &o->timer, CLOCK_MONOTONIC,
			MESSAGE_FIRST_RETRY_USEC, MESSAGE_TIMER_ACCURACY_USEC, on_outgoing_timer, o);
	if (r < 0) {
		return r;
	}
	if (!tsearch(o, &s->outgoing, outgoing_compare)) {
		return -ENOMEM;
	}
	s->n_outgoing++;
	p->in_flight++;
	r = outgoing_transmit(TAKE_PTR(o));
	if (r < 0) {
		log_debug_errno(r, "Failed to send message %s, retrying: %m", m->id);
	}
	return OUTBOX_SENT;
}

bool messenger_can_transmit(Messenger *s, const char *peer) {
	Peer *p;

	if (!s->manager->username || s->n_outgoing >= MESSENGER_MAX_IN_FLIGHT) {
		return false;
	}
	p = peer_get(s->manager, peer);
	return p && p->online && p->native && p->confirmed;
}

void messenger_forget(Messenger *s, const char *id) {
	outgoing_free(outgoing_get(s, id));
}

static void handle_msg(Messenger *s, json_object *o, const char *id, const char *from,
		const Endpoint *source) {
	_cleanup_free_ char *ack = NULL;
	uint64_t ts = 0;
	const char *body;
	json_object *v;
	size_t len, ack_len;
	Peer *p;
	int r;

	body = json_get_string(o, "body", &len);
	if (!body || len == 0 || len > WIRE_TEXT_MAX || !utf8_is_valid(body, len)) {
		log_debug("Dropping message %s from '%s': bad body.", id, from);
		return;
	}
	if (json_object_object_get_ex(o, "ts", &v) && json_object_is_type(v, json_type_int) &&
			json_object_get_int64(v) > 0) {
		ts = (uint64_t) json_object_get_int64(v);
	}
	if (ts == 0) {
		ts = now_usec(CLOCK_REALTIME);
	}

	p = peer_get(s->manager, from);
	if (!p || !peer_accepts_from(p, source, true)) {
		log_debug("Dropping message claiming to be from '%s': not its roster endpoint.",
				from);
		return;
	}

	/* Stored first: an ack promises the message is kept. */
	r = manager_message_incoming(s->manager, id, from, body, ts, true, NULL);
	if (r < 0) {
		log_debug_errno(r, "Not acking message %s from '%s': %m", id, from);
		return;
	}

	/*
	 * Ack every copy: the ack of the first one may have been lost.  The ack
	 * goes out after the batch's barrier: only then is the message stored.
	 */
	r = build_json("ack", id, s->manager->username, NULL, 0, &ack, &ack_len);
	if (r < 0) {
		log_debug_errno(r, "Failed to ack message %s, ignoring: %m", id);
		return;
	}
	manager_commit_defer_ack(s->manager, &p->endpoint, TAKE_PTR(ack), ack_len);
}

static void handle_ack(Messenger *s, const char *id, const char *from, const Endpoint *source) {
	unsigned attempts = 0;
	Outgoing *o;
	Peer *p;

	o = outgoing_get(s, id);
	if (o && !streq(o->peer, from)) {
		return;
	}
	p = peer_get(s->manager, from);
	if (!p || !peer_accepts_from(p, source, true)) {
		log_debug("Dropping ack claiming to be from '%s': not its roster endpoint.", from);
		return;
	}
	if (o) {
		attempts = o->attempts;
		outgoing_free(o);
	}
	if (!p->confirmed) {
		p->confirmed = true;
		manager_schedule_flush(s->manager); /* the rest of a backlog */
	}
	/* Without an Outgoing it is a late ack (after a requeue or a restart). */
	manager_message_delivered(s->manager, id, from, attempts);
}

void messenger_handle_json(Messenger *s, const char *buf, size_t n, const Endpoint *from) {
	_cleanup_(json_object_putp) json_object *o = NULL;
	const char *type, *id, *sender;
	size_t id_len, sender_len;

	if (!s->manager->username || !utf8_is_valid(buf, n)) {
		return;
	}
	(void) json_parse_strict(buf, n, MESSAGE_JSON_DEPTH, &o, NULL);
	if (!o || !json_object_is_type(o, json_type_object)) {
		log_debug("Dropping malformed JSON datagram.");
		return;
	}

	type = json_get_string(o, "type", NULL);
	id = json_get_string(o, "id", &id_len);
	sender = json_get_string(o, "from", &sender_len);
	if (!type || !id || !sender || id_check(id, id_len) < 0 ||
			!wire_name_is_valid(sender, sender_len)) {
		log_debug("Dropping JSON datagram without a valid type, id or sender.");
		return;
	}
	if (streq(type, "msg")) {
		handle_msg(s, o, id, sender, from);
	} else if (streq(type, "ack")) {
		handle_ack(s, id, sender, from);
	} else {
		log_debug("Dropping JSON datagram of unknown type.");
	}
}

void messenger_handle_talk(Messenger *s, const WireMessage *msg, const Endpoint *from) {
	char id[MESSAGE_ID_STRLEN];
	Peer *p;

	if (!s->manager->username) {
		return;
	}
	p = peer_get(s->manager, msg->name);
	if (!p || !peer_accepts_from(p, from, false)) {
		log_debug("Dropping talk claiming to be from '%s': not its roster address.",
				msg->name);
		return;
	}
	if (msg->text_len == 0 || msg->text_len > WIRE_TEXT_MAX) {
		return;
	}
	if (messenger_new_id(id) < 0) {
		return;
	}
	(void) manager_message_incoming(s->manager, id, p->name, msg->text,
			now_usec(CLOCK_REALTIME), false, msg->time);
	manager_commit_check_bound(s->manager);
}

typedef struct RequeueContext {
	const char *peer; /* NULL: all */
	Outgoing **list;
	size_t n;
} RequeueContext;

static void collect_outgoing(const void *nodep, VISIT which, void *closure) {
	Outgoing *o = *(Outgoing *const *) nodep;
	RequeueContext *c = closure;

	if (which != leaf && which != postorder) {
		return;
	}
	if (!c->peer || streq(c->peer, o->peer)) {
		c->list[c->n++] = o;
	}
}

static void requeue_matching(Messenger *s, const char *peer, const char *reason) {
	_cleanup_free_ Outgoing **list = NULL;
	RequeueContext c = { .peer = peer };

	if (!s || s->n_outgoing == 0) {
		return;
	}
	list = calloc(s->n_outgoing, sizeof(Outgoing *));
	if (!list) {
		log_oom();
		return;
	}
	c.list = list;
	twalk_r(s->outgoing, collect_outgoing, &c);
	for (size_t i = 0; i < c.n; i++) {
		outgoing_requeue(list[i], reason);
	}
}

void messenger_peer_left(Messenger *s, const char *peer) {
	requeue_matching(s, peer, "peer-offline");
}

void messenger_requeue_all(Messenger *s, const char *reason) {
	requeue_matching(s, NULL, reason);
}
