/* SPDX-License-Identifier: MIT */

/*
 * Chat messages on the wire.  The Messenger is owned by the composition
 * (daemon.c) and lives as long as the daemon; its callbacks are set by the
 * conversation layer, which decides what to send and when.  The Messenger
 * puts a message on the wire and follows it until its outcome is known:
 *
 *  - native peers (caps "native1") get a JSON datagram
 *    {"type":"msg","id":…,"from":…,"ts":…,"body":…}, resent with exponential
 *    backoff until the peer's {"type":"ack",…} arrives (delivered) or
 *    MESSAGE_GIVE_UP_USEC passed (requeued);
 *  - reference peers get one UTF-16LE "talk" datagram; the reference
 *    protocol has no acks, so the outcome is "sent" for good.
 *
 * Per-peer flow control: until a peer has acked since it came online (it
 * is "confirmed"), only one message at a time goes to it, since a backlog
 * sent at once could arrive before the peer has us in its roster and be
 * retried out of order.
 *
 * Incoming messages are accepted only from the roster endpoint of the sender
 * they name (the IP only for reference peers, which send from throwaway
 * ports) and handed to received(); the owner acks them with messenger_ack()
 * once they are stored for good, so an ack means "stored".
 *
 * A reference client talks as soon as it has the list, which may be before
 * its login forward reaches us (or after the forward was lost).  Such a
 * talk is kept as an EarlyTalk, in arrival order, bounded in number, bytes
 * and age (MESSENGER_EARLY_*), and handed on when messenger_peer_reset()
 * says its sender appeared, if it came from that peer's IP.  A talk may be
 * as long as a datagram can carry (WIRE_TALK_TEXT_MAX): one longer than a
 * message (WIRE_TEXT_MAX) is handed on as several, cut at characters.
 *
 * Every callback is made after the Messenger has finished with the objects
 * it concerns: an Outgoing is unlinked and freed before requeued() or
 * delivered() is called, since the owner may call back into the Messenger
 * (messenger_forget()) from there.
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
#include "common/wire.h"
#include "daemon/messenger.h"

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
	Messenger *messenger; /* not owned; NULL until it is in the tree */
	char id[MESSAGE_ID_STRLEN];
	char *peer;
	char *json;
	size_t json_len;
	unsigned attempts;
	uint64_t started;
	uint64_t interval;
	sd_event_source *timer;
} Outgoing;

/* A talk whose sender was not (yet) in the roster at its address. */
typedef struct EarlyTalk {
	char name[WIRE_NAME_MAX_BYTES + 1];
	char time[WIRE_TIME_MAX + 1];
	Endpoint from;
	uint64_t arrived;  /* CLOCK_MONOTONIC */
	uint64_t ts_usec;  /* CLOCK_REALTIME, when it arrived */
	char *text;
	size_t text_len;
} EarlyTalk;

/* Flow control of one peer; exists while it is confirmed or has messages in flight. */
typedef struct Flow {
	char *peer;
	bool confirmed;
	unsigned in_flight;
} Flow;

struct Messenger {
	sd_event *event;
	Udp *udp; /* not owned */
	const MessengerCallbacks *callbacks;
	void *userdata;
	char *username; /* NULL when logged out */
	void *outgoing; /* tsearch() tree of Outgoing*, by id */
	size_t n_outgoing;
	void *flows; /* tsearch() tree of Flow*, by peer */
	EarlyTalk *early[MESSENGER_EARLY_MAX]; /* oldest first */
	size_t n_early;
	size_t early_bytes;
};

static int outgoing_compare(const void *a, const void *b) {
	const Outgoing *x = a, *y = b;

	return strcmp(x->id, y->id);
}

static int flow_compare(const void *a, const void *b) {
	const Flow *x = a, *y = b;

	return strcmp(x->peer, y->peer);
}

static Flow *flow_get(Messenger *s, const char *peer) {
	Flow key = { .peer = (char *) peer };
	void **node;

	node = tfind(&key, &s->flows, flow_compare);
	return node ? *node : NULL;
}

static Flow *flow_get_or_new(Messenger *s, const char *peer) {
	Flow *f = flow_get(s, peer);

	if (f) {
		return f;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		return NULL;
	}
	f->peer = strdup(peer);
	if (!f->peer || !tsearch(f, &s->flows, flow_compare)) {
		free(f->peer);
		return mfree(f);
	}
	return f;
}

static void flow_free(void *p) {
	Flow *f = p;

	free(f->peer);
	free(f);
}

/* A flow with nothing to remember goes. */
static void flow_trim(Messenger *s, Flow *f) {
	if (f && !f->confirmed && f->in_flight == 0) {
		(void) tdelete(f, &s->flows, flow_compare);
		flow_free(f);
	}
}

static void flow_unconfirm(Messenger *s, const char *peer) {
	Flow *f = flow_get(s, peer);

	if (f) {
		f->confirmed = false;
		flow_trim(s, f);
	}
}

/* Unlinks @o from the tree and its peer's flow: no callback finds it any more. */
static void outgoing_unlink(Outgoing *o) {
	Messenger *s = o->messenger;
	Flow *f;

	if (!s) {
		return;
	}
	if (tdelete(o, &s->outgoing, outgoing_compare)) {
		s->n_outgoing--;
		f = flow_get(s, o->peer);
		if (f && f->in_flight > 0) {
			f->in_flight--;
			flow_trim(s, f);
		}
	}
	o->messenger = NULL;
}

static Outgoing *outgoing_free(Outgoing *o) {
	if (!o) {
		return NULL;
	}
	outgoing_unlink(o);
	sd_event_source_disable_unref(o->timer);
	free(o->peer);
	free(o->json);
	return mfree(o);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Outgoing *, outgoing_free);

static EarlyTalk *early_talk_free(EarlyTalk *e) {
	if (!e) {
		return NULL;
	}
	free(e->text);
	return mfree(e);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(EarlyTalk *, early_talk_free);

/* Takes early talk @i out of the list; the caller owns it. */
static EarlyTalk *early_take(Messenger *s, size_t i) {
	EarlyTalk *e = s->early[i];

	memmove(s->early + i, s->early + i + 1, (s->n_early - i - 1) * sizeof(s->early[0]));
	s->n_early--;
	s->early_bytes -= e->text_len;
	return e;
}

static void early_clear(Messenger *s) {
	while (s->n_early > 0) {
		early_talk_free(early_take(s, s->n_early - 1));
	}
}

/* Forgets the talks that waited too long (the oldest are first). */
static void early_expire(Messenger *s) {
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	while (s->n_early > 0 && now - s->early[0]->arrived > MESSENGER_EARLY_USEC) {
		EarlyTalk *e = early_take(s, 0);

		log_debug("Dropping talk claiming to be from '%s': no login notice came.", e->name);
		early_talk_free(e);
	}
}

static void on_json(const char *buf, size_t n, const Endpoint *from, void *userdata);
static void on_talk(const WireMessage *msg, const Endpoint *from, void *userdata);

int messenger_new(sd_event *event, Udp *udp, Messenger **ret) {
	Messenger *s;

	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->event = sd_event_ref(event);
	s->udp = udp;
	udp_set_json_handler(udp, on_json, s);
	udp_set_wire_handler(udp, WIRE_TYPE_TALK, on_talk, s);
	*ret = s;
	return 0;
}

/* tdestroy(): the tree goes as a whole, so nothing is unlinked from it. */
static void outgoing_destroy(void *p) {
	Outgoing *o = p;

	o->messenger = NULL;
	outgoing_free(o);
}

Messenger *messenger_free(Messenger *s) {
	if (!s) {
		return NULL;
	}
	tdestroy(s->outgoing, outgoing_destroy);
	tdestroy(s->flows, flow_free);
	early_clear(s);
	free(s->username);
	s->event = sd_event_unref(s->event);
	return mfree(s);
}

void messenger_set_callbacks(Messenger *s, const MessengerCallbacks *callbacks, void *userdata) {
	s->callbacks = callbacks;
	s->userdata = userdata;
}

int messenger_set_username(Messenger *s, const char *name) {
	early_clear(s); /* talks to an earlier login */
	return free_and_strdup(&s->username, name);
}

bool messenger_is_active(Messenger *s) {
	return s->username && s->callbacks;
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

static bool lookup(Messenger *s, const char *name, MessengerPeer *ret) {
	return s->callbacks->lookup(name, ret, s->userdata);
}

static int send_talk(Messenger *s, const Endpoint *to, const char *text, size_t len) {
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
	(void) snprintf(w.name, sizeof(w.name), "%s", s->username);
	w.text = (char *) text;
	w.text_len = len;
	r = wire_format_datagram(&w, WIRE_ENCODING_UTF16LE, &buf, &n);
	if (r < 0) {
		return r;
	}
	return udp_send(s->udp, to, buf, n);
}

/* Retries ran out or the peer went away: unlinked and freed, then requeued(). */
static void outgoing_requeue(Outgoing *o, const char *reason) {
	Messenger *s = o->messenger;
	char id[MESSAGE_ID_STRLEN];
	_cleanup_free_ char *peer = NULL;

	memcpy(id, o->id, sizeof(id));
	outgoing_unlink(o);
	peer = TAKE_PTR(o->peer);
	log_debug("Message %s to '%s' goes back to the outbox: %s", id, peer, reason);
	outgoing_free(o);
	flow_unconfirm(s, peer); /* probe with one message before the rest */
	s->callbacks->requeued(id, peer, s->userdata);
}

static int outgoing_transmit(Outgoing *o) {
	Messenger *s = o->messenger;
	MessengerPeer p;

	if (!lookup(s, o->peer, &p) || !p.online) {
		return -EHOSTDOWN;
	}
	o->attempts++;
	return udp_send(s->udp, &p.endpoint, o->json, o->json_len);
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

int messenger_transmit(Messenger *s, const char *id, const char *peer, const char *text,
		uint64_t sent_usec) {
	_cleanup_(outgoing_freep) Outgoing *o = NULL;
	MessengerPeer p;
	Flow *f;
	int r;

	if (!messenger_is_active(s)) {
		return -ENOTCONN;
	}
	if (!lookup(s, peer, &p) || !p.online) {
		return -EHOSTDOWN;
	}
	if (outgoing_get(s, id)) {
		return MESSENGER_SENT; /* already on its way */
	}
	if (!p.native) {
		r = send_talk(s, &p.endpoint, text, strlen(text));
		if (r < 0) {
			return r;
		}
		return MESSENGER_SENT_FINAL;
	}
	if (s->n_outgoing >= MESSENGER_MAX_IN_FLIGHT) {
		return -ENOBUFS;
	}
	f = flow_get(s, peer);
	if (f && !f->confirmed && f->in_flight > 0) {
		return -EAGAIN; /* after the first ack (see the flow control above) */
	}

	o = calloc(1, sizeof(*o));
	if (!o) {
		return -ENOMEM;
	}
	(void) snprintf(o->id, sizeof(o->id), "%s", id);
	o->peer = strdup(peer);
	if (!o->peer) {
		return -ENOMEM;
	}
	o->started = now_usec(CLOCK_MONOTONIC);
	o->interval = MESSAGE_FIRST_RETRY_USEC;
	r = build_json("msg", o->id, s->username, text, sent_usec, &o->json, &o->json_len);
	if (r == -EMSGSIZE) {
		return -EMSGSIZE; /* the caller fails it: it can never go */
	}
	if (r < 0) {
		return r;
	}
	r = sd_event_add_time_relative(s->event, &o->timer, CLOCK_MONOTONIC,
			MESSAGE_FIRST_RETRY_USEC, MESSAGE_TIMER_ACCURACY_USEC, on_outgoing_timer, o);
	if (r < 0) {
		return r;
	}
	f = flow_get_or_new(s, peer);
	if (!f) {
		return -ENOMEM;
	}
	if (!tsearch(o, &s->outgoing, outgoing_compare)) {
		flow_trim(s, f);
		return -ENOMEM;
	}
	o->messenger = s;
	s->n_outgoing++;
	f->in_flight++;
	r = outgoing_transmit(TAKE_PTR(o));
	if (r < 0) {
		log_debug_errno(r, "Failed to send message %s, retrying: %m", id);
	}
	return MESSENGER_SENT;
}

bool messenger_can_transmit(Messenger *s, const char *peer) {
	MessengerPeer p;
	Flow *f;

	if (!messenger_is_active(s) || s->n_outgoing >= MESSENGER_MAX_IN_FLIGHT) {
		return false;
	}
	f = flow_get(s, peer);
	return f && f->confirmed && lookup(s, peer, &p) && p.online && p.native;
}

void messenger_forget(Messenger *s, const char *id) {
	outgoing_free(outgoing_get(s, id));
}

int messenger_ack(Messenger *s, const Endpoint *to, const char *id) {
	_cleanup_free_ char *ack = NULL;
	size_t len;
	int r;

	if (!s->username) {
		return -ENOTCONN;
	}
	r = build_json("ack", id, s->username, NULL, 0, &ack, &len);
	if (r < 0) {
		return r;
	}
	return udp_send(s->udp, to, ack, len);
}

static void handle_msg(Messenger *s, json_object *o, const char *id, const char *from,
		const Endpoint *source) {
	uint64_t ts = 0;
	const char *body;
	MessengerPeer p;
	json_object *v;
	size_t len;
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

	if (!lookup(s, from, &p) || !p.online || !endpoint_equal(&p.endpoint, source)) {
		log_debug("Dropping message claiming to be from '%s': not its roster endpoint.",
				from);
		return;
	}

	/*
	 * Every copy is acked (the ack of the first one may have been lost), but
	 * only by the owner, once it is stored: an ack promises the message is kept.
	 */
	r = s->callbacks->received(id, from, body, ts, NULL, &p.endpoint, s->userdata);
	if (r < 0) {
		log_debug_errno(r, "Not acking message %s from '%s': %m", id, from);
	}
}

static void handle_ack(Messenger *s, const char *id, const char *from, const Endpoint *source) {
	unsigned attempts = 0;
	MessengerPeer p;
	Outgoing *o;
	Flow *f;

	o = outgoing_get(s, id);
	if (o && !streq(o->peer, from)) {
		return;
	}
	if (!lookup(s, from, &p) || !p.online || !endpoint_equal(&p.endpoint, source)) {
		log_debug("Dropping ack claiming to be from '%s': not its roster endpoint.", from);
		return;
	}
	if (o) {
		attempts = o->attempts;
		outgoing_free(o);
	}
	f = flow_get(s, from);
	if (!f || !f->confirmed) {
		f = flow_get_or_new(s, from);
		if (f) {
			f->confirmed = true;
		}
		s->callbacks->confirmed(from, s->userdata); /* the rest of a backlog */
	}
	/* Without an Outgoing it is a late ack (after a requeue or a restart). */
	s->callbacks->delivered(id, from, attempts, s->userdata);
}

static void on_json(const char *buf, size_t n, const Endpoint *from, void *userdata) {
	_cleanup_(json_object_putp) json_object *o = NULL;
	Messenger *s = userdata;
	const char *type, *id, *sender;
	size_t id_len, sender_len;

	if (!messenger_is_active(s) || !utf8_is_valid(buf, n)) {
		return;
	}
	if (json_parse_strict(buf, n, MESSAGE_JSON_DEPTH, &o, NULL) < 0 ||
			!json_object_is_type(o, json_type_object)) {
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

/* The longest prefix of valid UTF-8 @text of at most @max bytes that ends at a character. */
static size_t utf8_cut(const char *text, size_t n, size_t max) {
	if (n <= max) {
		return n;
	}
	while (max > 0 && ((uint8_t) text[max] & 0xC0) == 0x80) {
		max--;
	}
	return max;
}

/*
 * Hands a talk from @peer on, as one message, or as several of at most
 * WIRE_TEXT_MAX bytes (what the history, D-Bus and the front ends take), in
 * order, one microsecond apart.
 */
static void talk_received(Messenger *s, const char *peer, const char *time, const char *text,
		size_t len, uint64_t ts_usec) {
	char id[MESSAGE_ID_STRLEN];
	int r;

	if (len <= WIRE_TEXT_MAX) {
		if (messenger_new_id(id) < 0) {
			return;
		}
		(void) s->callbacks->received(id, peer, text, ts_usec, time, NULL, s->userdata);
		return;
	}

	log_debug("Talk from '%s' is %zu bytes, handing it on in parts of at most %d.", peer,
			len, WIRE_TEXT_MAX);
	for (size_t off = 0, i = 0; off < len; i++) {
		_cleanup_free_ char *part = NULL;
		size_t n = utf8_cut(text + off, len - off, WIRE_TEXT_MAX);

		part = strndup(text + off, n);
		if (!part) {
			log_oom();
			return;
		}
		off += n;
		r = messenger_new_id(id);
		if (r < 0) {
			return;
		}
		(void) s->callbacks->received(id, peer, part, ts_usec + i, time, NULL, s->userdata);
	}
}

/*
 * Hands on the early talks of @peer that came from its roster IP, oldest
 * first; the others claiming to be from it are dropped.  All are taken out
 * of the list before the first callback.
 */
static void early_release(Messenger *s, const char *peer) {
	EarlyTalk *taken[MESSENGER_EARLY_MAX];
	size_t n = 0;
	MessengerPeer p;

	early_expire(s);
	if (s->n_early == 0 || !lookup(s, peer, &p) || !p.online) {
		return;
	}
	for (size_t i = 0; i < s->n_early;) {
		if (streq(s->early[i]->name, peer)) {
			taken[n++] = early_take(s, i);
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		EarlyTalk *e = taken[i];

		if (endpoint_same_ip(&p.endpoint, &e->from)) {
			log_debug("Handing on a talk from '%s' that came before its login notice.",
					peer);
			talk_received(s, e->name, e->time, e->text, e->text_len, e->ts_usec);
		} else {
			log_debug("Dropping talk claiming to be from '%s': not its roster address.",
					peer);
		}
		early_talk_free(e);
	}
}

/* Keeps a talk from a sender not (yet) in the roster at that address. */
static void early_hold(Messenger *s, const WireMessage *msg, const Endpoint *from) {
	_cleanup_(early_talk_freep) EarlyTalk *e = NULL;

	early_expire(s);
	if (msg->text_len > MESSENGER_EARLY_BYTES) {
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		return;
	}
	e->text = malloc(msg->text_len + 1);
	if (!e->text) {
		return;
	}
	memcpy(e->text, msg->text, msg->text_len + 1);
	e->text_len = msg->text_len;
	(void) snprintf(e->name, sizeof(e->name), "%s", msg->name);
	(void) snprintf(e->time, sizeof(e->time), "%s", msg->time);
	e->from = *from;
	e->arrived = now_usec(CLOCK_MONOTONIC);
	e->ts_usec = now_usec(CLOCK_REALTIME);

	while (s->n_early > 0 && (s->n_early >= MESSENGER_EARLY_MAX ||
				s->early_bytes + e->text_len > MESSENGER_EARLY_BYTES)) {
		EarlyTalk *old = early_take(s, 0);

		log_debug("Dropping talk claiming to be from '%s': too many waiting.", old->name);
		early_talk_free(old);
	}
	log_debug("Holding talk claiming to be from '%s' until its login notice.", e->name);
	s->early_bytes += e->text_len;
	s->early[s->n_early++] = TAKE_PTR(e);
}

static void on_talk(const WireMessage *msg, const Endpoint *from, void *userdata) {
	Messenger *s = userdata;
	MessengerPeer p;

	if (!messenger_is_active(s)) {
		return;
	}
	if (msg->text_len == 0) {
		/* A reference client sends its box even when it is empty. */
		log_debug("Ignoring empty talk claiming to be from '%s'.", msg->name);
		return;
	}
	if (!lookup(s, msg->name, &p) || !p.online || !endpoint_same_ip(&p.endpoint, from)) {
		early_hold(s, msg, from);
		return;
	}
	early_release(s, msg->name); /* what came before, first */
	talk_received(s, msg->name, msg->time, msg->text, msg->text_len,
			now_usec(CLOCK_REALTIME));
}

void messenger_peer_reset(Messenger *s, const char *peer) {
	flow_unconfirm(s, peer);
	if (messenger_is_active(s)) {
		early_release(s, peer);
	}
}

typedef struct Requeued {
	char id[MESSAGE_ID_STRLEN];
	char *peer;
} Requeued;

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

/*
 * Every matching message is unlinked and freed first, and only then
 * reported: a requeued() callback may end in messenger_forget() of any of
 * them, which must find nothing.
 */
static void requeue_matching(Messenger *s, const char *peer, const char *reason) {
	_cleanup_free_ Outgoing **list = NULL;
	_cleanup_free_ Requeued *done = NULL;
	RequeueContext c = { .peer = peer };

	if (s->n_outgoing == 0) {
		return;
	}
	list = calloc(s->n_outgoing, sizeof(Outgoing *));
	done = calloc(s->n_outgoing, sizeof(Requeued));
	if (!list || !done) {
		log_oom();
		return;
	}
	c.list = list;
	twalk_r(s->outgoing, collect_outgoing, &c);
	for (size_t i = 0; i < c.n; i++) {
		memcpy(done[i].id, list[i]->id, sizeof(done[i].id));
		outgoing_unlink(list[i]);
		done[i].peer = TAKE_PTR(list[i]->peer);
		log_debug("Message %s to '%s' goes back to the outbox: %s", done[i].id,
				done[i].peer, reason);
		outgoing_free(list[i]);
		flow_unconfirm(s, done[i].peer);
	}
	for (size_t i = 0; i < c.n; i++) {
		s->callbacks->requeued(done[i].id, done[i].peer, s->userdata);
	}
	for (size_t i = 0; i < c.n; i++) {
		free(done[i].peer);
	}
}

void messenger_peer_left(Messenger *s, const char *peer) {
	requeue_matching(s, peer, "peer-offline");
	flow_unconfirm(s, peer);
}

void messenger_requeue_all(Messenger *s, const char *reason) {
	requeue_matching(s, NULL, reason);
}
