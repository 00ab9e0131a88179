/* SPDX-License-Identifier: MIT */

/*
 * The roster, owned by the composition (daemon.c).  Peers live in a
 * tsearch() tree keyed by name.  A peer is created when a list or a login
 * notice first names it and stays while it is online.  Every change a
 * front end can see is reported through RosterCallbacks: joined() and
 * left() only for real transitions, changed() for the rest.
 *
 * An offline peer stays while something is kept for it (in_use(): its
 * messages, an open conversation).  One that nothing is kept for is
 * forgotten (removed(), then freed) once it has been offline for the
 * expiry, or earlier when the roster is full and a new peer needs its
 * place: otherwise anyone able to send login/logout pairs to the
 * coordinator could fill the roster with ghosts and lock newcomers out.
 *
 * Forgetting costs nothing per peer and second: a peer that goes offline
 * is appended to the expiry list, which is therefore ordered by the time
 * it left, and one timer waits for the head.  in_use() is asked once per
 * time a peer goes offline, when it reaches the head: kept, it leaves the
 * list until it comes online and leaves again.  So a full roster finds a
 * place, or finds there is none, with amortised O(1) work.  Nothing for a
 * peer can only be lost while it is offline (no message is ever deleted),
 * so keeping it until then misses nothing.  At logout every peer is freed
 * at once.
 */

#include <assert.h>
#include <malloc.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/time-util.h"
#include "daemon/roster.h"

struct Peer {
	char *name;
	Endpoint endpoint;
	bool online;
	bool native;
	unsigned generation; /* of the last list that named this peer */

	/* Offline and not known to be in use: in Roster's expiry list. */
	bool expiring;
	uint64_t left_usec; /* CLOCK_MONOTONIC, when it went offline */
	Peer *expiry_prev, *expiry_next;
};

struct Roster {
	sd_event *event;
	const RosterCallbacks *callbacks;
	void *userdata;
	void *peers; /* tsearch() tree of Peer*, by name */
	size_t n_peers;
	size_t max_peers;
	unsigned generation;
	sd_event_source *reconcile_timer;
	sd_event_source *trim_timer;

	/* Offline peers that may be forgotten, in the order they left. */
	Peer *expiry_head, *expiry_tail;
	uint64_t expiry_usec;
	sd_event_source *expiry_timer; /* for the head */
};

static int peer_compare(const void *a, const void *b) {
	const Peer *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static Peer *peer_free(Peer *p) {
	if (!p) {
		return NULL;
	}
	free(p->name);
	return mfree(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Peer *, peer_free);

static void peer_free_void(void *p) {
	(void) peer_free(p);
}

const char *peer_get_name(const Peer *p) {
	return p->name;
}

const Endpoint *peer_get_endpoint(const Peer *p) {
	return &p->endpoint;
}

bool peer_is_online(const Peer *p) {
	return p->online;
}

bool peer_is_native(const Peer *p) {
	return p->native;
}

bool peer_accepts_from(const Peer *p, const Endpoint *from, bool same_port) {
	if (!p->online) {
		return false;
	}
	return same_port ? endpoint_equal(&p->endpoint, from) : endpoint_same_ip(&p->endpoint, from);
}

int roster_new(sd_event *event, size_t max_peers, uint64_t expiry_usec,
		const RosterCallbacks *callbacks, void *userdata, Roster **ret) {
	Roster *r;

	r = calloc(1, sizeof(*r));
	if (!r) {
		return -ENOMEM;
	}
	r->event = sd_event_ref(event);
	r->max_peers = max_peers;
	r->expiry_usec = expiry_usec;
	r->callbacks = callbacks;
	r->userdata = userdata;
	*ret = r;
	return 0;
}

static void roster_drop_all(Roster *r) {
	r->reconcile_timer = sd_event_source_disable_unref(r->reconcile_timer);
	r->trim_timer = sd_event_source_disable_unref(r->trim_timer);
	r->expiry_timer = sd_event_source_disable_unref(r->expiry_timer);
	r->expiry_head = r->expiry_tail = NULL;
	tdestroy(r->peers, peer_free_void);
	r->peers = NULL;
	r->n_peers = 0;
}

Roster *roster_free(Roster *r) {
	if (!r) {
		return NULL;
	}
	roster_drop_all(r);
	r->event = sd_event_unref(r->event);
	return mfree(r);
}

Peer *roster_get(Roster *r, const char *name) {
	Peer key = { .name = (char *) name };
	void **node;

	node = tfind(&key, &r->peers, peer_compare);
	return node ? *node : NULL;
}

size_t roster_size(Roster *r) {
	return r->n_peers;
}

static int peer_new(const char *name, Peer **ret) {
	_cleanup_(peer_freep) Peer *p = NULL;

	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->name = strdup(name);
	if (!p->name) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
	Roster *r = userdata;

	r->trim_timer = sd_event_source_disable_unref(r->trim_timer);
	(void) malloc_trim(0);
	return 0;
}

/*
 * Many peers come or go at once (a big list, a burst of expiries): their
 * signals wait in the bus write queue until the broker has read them, and
 * leave big holes in the heap.  Give the memory back once they are gone.
 */
static void roster_schedule_trim(Roster *r) {
	int k;

	if (r->trim_timer) {
		return;
	}
	k = sd_event_add_time_relative(r->event, &r->trim_timer, CLOCK_MONOTONIC,
			ROSTER_TRIM_DELAY_USEC, 0, on_trim, r);
	if (k < 0) {
		log_debug_errno(k, "Failed to arm heap trim timer, ignoring: %m");
	}
}

static uint64_t roster_now(Roster *r) {
	uint64_t now;

	if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0) {
		now = now_usec(CLOCK_MONOTONIC);
	}
	return now;
}

static uint64_t peer_expires_at(Roster *r, const Peer *p) {
	if (p->left_usec > UINT64_MAX - r->expiry_usec) {
		return UINT64_MAX; /* never */
	}
	return p->left_usec + r->expiry_usec;
}

static void expiry_unlink(Roster *r, Peer *p) {
	if (!p->expiring) {
		return;
	}
	if (p->expiry_prev) {
		p->expiry_prev->expiry_next = p->expiry_next;
	} else {
		r->expiry_head = p->expiry_next;
	}
	if (p->expiry_next) {
		p->expiry_next->expiry_prev = p->expiry_prev;
	} else {
		r->expiry_tail = p->expiry_prev;
	}
	p->expiry_prev = p->expiry_next = NULL;
	p->expiring = false;
	/* A head taken away leaves the timer early: on_expiry() moves it on. */
}

static int on_expiry(sd_event_source *s, uint64_t usec, void *userdata);

/* Points the timer at the head of the expiry list. */
static void roster_arm_expiry(Roster *r) {
	uint64_t at;
	int k;

	if (!r->expiry_head) {
		return; /* a oneshot timer that fires finds the list empty */
	}
	at = peer_expires_at(r, r->expiry_head);
	if (at == UINT64_MAX) {
		return; /* never */
	}
	if (!r->expiry_timer) {
		k = sd_event_add_time(r->event, &r->expiry_timer, CLOCK_MONOTONIC, at, 0,
				on_expiry, r);
	} else {
		k = sd_event_source_set_time(r->expiry_timer, at);
		if (k >= 0) {
			k = sd_event_source_set_enabled(r->expiry_timer, SD_EVENT_ONESHOT);
		}
	}
	if (k < 0) {
		log_warning_errno(k, "Failed to arm the expiry timer of offline peers, "
				"ignoring: %m");
	}
}

static void expiry_append(Roster *r, Peer *p) {
	assert(!p->expiring);

	p->left_usec = roster_now(r);
	p->expiry_prev = r->expiry_tail;
	p->expiry_next = NULL;
	if (r->expiry_tail) {
		r->expiry_tail->expiry_next = p;
	} else {
		r->expiry_head = p;
	}
	r->expiry_tail = p;
	p->expiring = true;
	if (r->expiry_head == p) {
		roster_arm_expiry(r);
	}
}

/*
 * Takes @p (offline, in the expiry list) off the list and forgets it,
 * unless something is kept for it.  Return: whether it was forgotten.
 */
static bool peer_expire(Roster *r, Peer *p) {
	int k;

	expiry_unlink(r, p);
	k = r->callbacks->in_use ? r->callbacks->in_use(p, r->userdata) : 0;
	if (k < 0) {
		log_warning_errno(k, "Failed to find out whether anything is kept for peer "
				"'%s', keeping it: %m", p->name);
	}
	if (k != 0) {
		return false;
	}

	log_debug("Forgetting offline peer '%s'.", p->name);
	r->callbacks->removed(p, r->userdata); /* while it can still be looked up */
	(void) tdelete(p, &r->peers, peer_compare);
	r->n_peers--;
	(void) peer_free(p);
	return true;
}

static int on_expiry(sd_event_source *s, uint64_t usec, void *userdata) {
	Roster *r = userdata;
	uint64_t now = roster_now(r);
	size_t n = 0, forgotten = 0;

	/* A batch per iteration: the bus and the socket get their turn. */
	while (r->expiry_head && peer_expires_at(r, r->expiry_head) <= now &&
			n++ < ROSTER_EXPIRE_BATCH) {
		forgotten += peer_expire(r, r->expiry_head);
	}
	if (forgotten >= ROSTER_TRIM_MIN) {
		roster_schedule_trim(r);
	}
	roster_arm_expiry(r);
	return 0;
}

/*
 * A full roster makes room: the offline peer that left first among those
 * nothing is kept for goes, whether or not its expiry is over.  Each peer
 * asked leaves the list, so this is amortised O(1) per new peer.
 */
static bool roster_make_room(Roster *r) {
	while (r->expiry_head) {
		if (peer_expire(r, r->expiry_head)) {
			return true;
		}
	}
	return false;
}

int roster_add_or_update(Roster *r, const char *self, const char *name, const Endpoint *ep,
		const char *caps) {
	bool was_online, native, changed_ep, changed_native;
	unsigned what = 0;
	Peer *p;
	int k;

	if (self && streq(name, self)) {
		return 0; /* the list includes ourselves */
	}

	native = wire_caps_has(caps, WIRE_CAPS_NATIVE);
	p = roster_get(r, name);
	if (!p) {
		_cleanup_(peer_freep) Peer *n = NULL;

		if (r->n_peers >= r->max_peers && !roster_make_room(r)) {
			return log_warning_errno(ENOSPC, "Roster is full, ignoring peer '%s'.", name);
		}
		k = peer_new(name, &n);
		if (k < 0) {
			return log_oom();
		}
		n->endpoint = *ep;
		n->native = native;
		n->online = true;
		n->generation = r->generation;
		if (!tsearch(n, &r->peers, peer_compare)) {
			return log_oom();
		}
		p = TAKE_PTR(n);
		r->n_peers++;
		r->callbacks->added(p, r->userdata);
		r->callbacks->joined(p, r->userdata);
		return 1;
	}

	p->generation = r->generation;
	expiry_unlink(r, p);
	was_online = p->online;
	changed_ep = !endpoint_equal(&p->endpoint, ep);
	/*
	 * A reference server's list drops the caps that its forwarded login
	 * carried: the same login at the same endpoint keeps what we know.
	 */
	if (was_online && !changed_ep && caps[0] == '\0') {
		native = p->native;
	}
	changed_native = p->native != native;
	p->endpoint = *ep;
	p->native = native;
	p->online = true;

	if (!was_online) {
		what |= PEER_CHANGE_ONLINE;
	}
	if (changed_ep) {
		what |= PEER_CHANGE_ENDPOINT;
	}
	if (changed_native) {
		what |= PEER_CHANGE_NATIVE;
	}
	if (what != 0) {
		r->callbacks->changed(p, what, r->userdata);
	}
	if (!was_online) {
		r->callbacks->joined(p, r->userdata);
		return 1;
	}
	return 0;
}

static void peer_set_offline(Roster *r, Peer *p) {
	if (!p->online) {
		return;
	}
	p->online = false;
	expiry_append(r, p);
	r->callbacks->changed(p, PEER_CHANGE_ONLINE, r->userdata);
	r->callbacks->left(p, r->userdata);
}

void roster_mark_offline(Roster *r, const char *name, const Endpoint *ep) {
	Peer *p;

	p = roster_get(r, name);
	if (!p) {
		return;
	}
	/* A stale notice about an earlier login of the same name changes nothing. */
	if (ep && !endpoint_equal(&p->endpoint, ep)) {
		log_debug("Ignoring logout of '%s' from an old endpoint.", name);
		return;
	}
	peer_set_offline(r, p);
}

typedef struct WalkContext {
	PeerCallback cb;
	void *userdata;
} WalkContext;

static void walk_action(const void *nodep, VISIT which, void *closure) {
	WalkContext *c = closure;

	if (which == postorder || which == leaf) {
		c->cb(*(Peer *const *) nodep, c->userdata);
	}
}

void roster_foreach(Roster *r, PeerCallback cb, void *userdata) {
	WalkContext c = { .cb = cb, .userdata = userdata };

	twalk_r(r->peers, walk_action, &c);
}

typedef struct Collect {
	Peer **next;
	unsigned generation;
	bool stale; /* only online peers of another generation; else every online peer */
} Collect;

static void collect_online(Peer *p, void *userdata) {
	Collect *c = userdata;

	if (p->online && (!c->stale || p->generation != c->generation)) {
		*c->next++ = p;
	}
}

/*
 * The online peers (of another generation than the roster's, with @stale)
 * in a NULL-terminated array: collected first, since their callbacks must
 * not run during the walk.
 */
static int collect(Roster *r, bool stale, Peer ***ret) {
	_cleanup_free_ Peer **list = NULL;
	Collect c = { .generation = r->generation, .stale = stale };

	list = calloc(r->n_peers + 1, sizeof(Peer *));
	if (!list) {
		return -ENOMEM;
	}
	c.next = list;
	roster_foreach(r, collect_online, &c);
	*ret = TAKE_PTR(list);
	return 0;
}

static void roster_drop_stale(Roster *r) {
	_cleanup_free_ Peer **stale = NULL;

	if (collect(r, true, &stale) < 0) {
		log_oom();
		return;
	}
	for (Peer **p = stale; *p; p++) {
		peer_set_offline(r, *p);
	}
}

static int on_reconcile(sd_event_source *s, uint64_t usec, void *userdata) {
	roster_drop_stale(userdata);
	return 0;
}

/*
 * A full list replaces what we knew: peers it names are online (joined()
 * only for those that were not), online peers it does not name have left.
 * After a reconnect the list may be partial (the others are logging in to a
 * restarted coordinator too): peers it misses get @grace to show up in a
 * login push before they count as gone.
 */
int roster_apply_list(Roster *r, const char *self, const WireListEntry *entries, size_t n,
		uint64_t grace) {
	int k;

	r->generation++;
	for (size_t i = 0; i < n; i++) {
		k = roster_add_or_update(r, self, entries[i].name, &entries[i].endpoint,
				entries[i].caps);
		if (k == -ENOMEM) {
			return k;
		}
	}

	/* A big list leaves big holes in the heap: the parsed entries too. */
	if (n >= ROSTER_TRIM_MIN) {
		roster_schedule_trim(r);
	}

	r->reconcile_timer = sd_event_source_disable_unref(r->reconcile_timer);
	if (grace == 0) {
		roster_drop_stale(r);
		return 0;
	}
	k = sd_event_add_time_relative(r->event, &r->reconcile_timer, CLOCK_MONOTONIC, grace, 0,
			on_reconcile, r);
	if (k < 0) {
		log_warning_errno(k, "Failed to arm reconcile timer, reconciling now: %m");
		roster_drop_stale(r);
	}
	return 0;
}

static void report_removed(Peer *p, void *userdata) {
	Roster *r = userdata;

	r->callbacks->removed(p, r->userdata);
}

void roster_clear(Roster *r) {
	_cleanup_free_ Peer **online = NULL;

	if (collect(r, false, &online) >= 0) {
		for (Peer **p = online; *p; p++) {
			r->callbacks->left(*p, r->userdata);
		}
	} else {
		log_oom();
	}
	roster_foreach(r, report_removed, r);
	roster_drop_all(r);
}
