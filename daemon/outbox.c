/* SPDX-License-Identifier: MIT */
/*
 * The outbox.  It holds no messages itself: the History is the queue, so a
 * crash loses nothing.  An Outbox owns one CLOCK_REALTIME timer (message
 * timestamps are wall-clock time) set no later than when the oldest pending
 * message expires (a query finds it when the timer fires; adding a message
 * only moves the timer earlier), and is freed with the daemon, before the
 * History.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "daemon/outbox.h"

struct Outbox {
	History *history; /* not owned */
	uint64_t max_age_usec;
	OutboxCallbacks callbacks;
	void *userdata;
	sd_event_source *timer;
};

/* Sets the timer to the next expiry, or turns it off when nothing is pending. */
static int outbox_schedule(Outbox *o) {
	uint64_t oldest;
	int r;

	r = history_oldest_pending(o->history, &oldest);
	if (r == -ENOENT) {
		return sd_event_source_set_enabled(o->timer, SD_EVENT_OFF);
	}
	if (r < 0) {
		return r;
	}
	r = sd_event_source_set_time(o->timer,
			oldest > UINT64_MAX - o->max_age_usec - 1 ? UINT64_MAX - 1
								  : oldest + o->max_age_usec + 1);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
}

/*
 * A message queued at @sent_usec expires at most this late: moves the timer
 * earlier if needed, without a query.  A timer that fires early (its message
 * was delivered meanwhile) expires nothing and is set again by on_timer().
 */
static int outbox_schedule_before(Outbox *o, uint64_t sent_usec) {
	uint64_t due, current;
	int enabled, r;

	due = sent_usec > UINT64_MAX - o->max_age_usec - 1 ? UINT64_MAX - 1
							 : sent_usec + o->max_age_usec + 1;
	r = sd_event_source_get_enabled(o->timer, &enabled);
	if (r < 0) {
		return r;
	}
	if (enabled != SD_EVENT_OFF) {
		r = sd_event_source_get_time(o->timer, &current);
		if (r < 0) {
			return r;
		}
		if (current <= due) {
			return 0;
		}
	}
	r = sd_event_source_set_time(o->timer, due);
	if (r < 0) {
		return r;
	}
	return sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
}

static int expire_now(Outbox *o) {
	for (;;) {
		HistoryList l = {};
		int r;

		r = history_expire(o->history, now_usec(CLOCK_REALTIME), o->max_age_usec, &l);
		if (r < 0) {
			return r;
		}
		for (size_t i = 0; i < l.n; i++) {
			log_debug("Message %s to '%s' expired in the outbox.", l.messages[i].id,
					l.messages[i].peer);
			if (o->callbacks.expired) {
				o->callbacks.expired(&l.messages[i], o->userdata);
			}
		}
		history_list_done(&l);
		if ((unsigned) r < HISTORY_LIMIT_MAX) {
			return 0;
		}
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Outbox *o = userdata;
	int r;

	r = expire_now(o);
	if (r < 0) {
		log_warning_errno(r, "Failed to expire outbox messages: %m, retrying later.");
	}
	r = outbox_schedule(o);
	if (r < 0) {
		log_warning_errno(r, "Failed to set the outbox expiry timer: %m");
	}
	return 0;
}

Outbox *outbox_free(Outbox *o) {
	if (!o) {
		return NULL;
	}
	sd_event_source_disable_unref(o->timer);
	return mfree(o);
}

int outbox_new(sd_event *event, History *history, uint64_t max_age_usec,
		const OutboxCallbacks *callbacks, void *userdata, Outbox **ret) {
	_cleanup_(outbox_freep) Outbox *o = NULL;
	int r;

	assert(event);
	assert(history);
	assert(callbacks);
	assert(ret);

	o = calloc(1, sizeof(Outbox));
	if (!o) {
		return -ENOMEM;
	}
	o->history = history;
	o->max_age_usec = max_age_usec;
	o->callbacks = *callbacks;
	o->userdata = userdata;

	r = sd_event_add_time(event, &o->timer, CLOCK_REALTIME, UINT64_MAX - 1, 0, on_timer, o);
	if (r < 0) {
		return r;
	}
	(void) sd_event_source_set_description(o->timer, "outbox-expiry");

	r = history_requeue_sent(history);
	if (r < 0) {
		return r;
	}
	if (r > 0) {
		log_debug("Requeued %d message(s) that were in flight at the last stop.", r);
	}
	r = outbox_schedule(o);
	if (r < 0) {
		return r;
	}

	*ret = TAKE_PTR(o);
	return 0;
}

int outbox_set_max_age(Outbox *o, uint64_t max_age_usec) {
	assert(o);

	o->max_age_usec = max_age_usec;
	return outbox_schedule(o);
}

int outbox_add(Outbox *o, const char *id, const char *peer, const char *text,
		uint64_t now_usec) {
	return outbox_add_as(o, id, peer, text, now_usec, HISTORY_STATE_QUEUED);
}

int outbox_add_as(Outbox *o, const char *id, const char *peer, const char *text,
		uint64_t now_usec, HistoryState state) {
	HistoryPeerKey pin;
	int r;

	assert(o);

	/*
	 * A message is for the key pinned for its peer when it is queued,
	 * and is delivered to no other.  Without a pin (a reference peer, or
	 * no key seen yet) it has none; history_set_peer_key() binds it to
	 * the first key pinned.
	 */
	r = history_get_peer_key(o->history, peer, &pin);
	if (r < 0) {
		return r;
	}
	r = history_add_outgoing_as(o->history, id, peer, text, now_usec, r > 0 ? pin.key : NULL,
			state);
	if (r < 0) {
		return r;
	}
	return outbox_schedule_before(o, now_usec);
}

int outbox_flush(Outbox *o, const char *peer) {
	_cleanup_(history_list_done) HistoryList l = {};
	int n = 0, r;

	assert(o);

	r = history_list_queued(o->history, peer, &l);
	if (r < 0) {
		return r;
	}
	for (size_t i = 0; i < l.n; i++) {
		r = o->callbacks.send(&l.messages[i], o->userdata);
		if (r < 0) {
			/* Later messages must not overtake this one. */
			log_debug_errno(r, "Failed to send message %s, keeping it queued: %m",
					l.messages[i].id);
			break;
		}
		if (r == OUTBOX_SENT_FINAL) {
			r = history_set_sent_final(o->history, l.messages[i].id);
		} else if (r == OUTBOX_SETTLED) {
			continue;
		} else {
			r = history_set_state(o->history, l.messages[i].id, HISTORY_STATE_SENT);
		}
		if (r < 0) {
			return r;
		}
		n++;
	}
	return n;
}

int outbox_requeue(Outbox *o, const char *id) {
	_cleanup_(history_message_done) HistoryMessage m = {};
	int r;

	assert(o);

	r = history_get_message(o->history, id, &m);
	if (r < 0) {
		return r;
	}
	/* Only one still on its way: one that failed meanwhile stays failed. */
	if (m.state != HISTORY_STATE_SENT) {
		return 0;
	}
	return history_set_state(o->history, id, HISTORY_STATE_QUEUED);
}

int outbox_delivered(Outbox *o, const char *id) {
	assert(o);

	/* The timer stays: if it was set for this message, it fires early, harmlessly. */
	return history_set_state(o->history, id, HISTORY_STATE_DELIVERED);
}
