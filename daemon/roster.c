/* SPDX-License-Identifier: MIT */

/*
 * The roster, owned by the composition (daemon.c).  Peers live in a
 * tsearch() tree keyed by name.  A peer is created when a list or a login
 * notice first names it and stays, online or offline, until the roster is
 * cleared at logout; then every peer is freed at once.  Every change a
 * front end can see is reported through RosterCallbacks: joined() and
 * left() only for real transitions, changed() for the rest.
 */

#include <malloc.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/roster.h"

struct Peer {
	char *name;
	Endpoint endpoint;
	bool online;
	bool native;
	unsigned generation; /* of the last list that named this peer */
};

struct Roster {
	sd_event *event;
	const RosterCallbacks *callbacks;
	void *userdata;
	void *peers; /* tsearch() tree of Peer*, by name */
	size_t n_peers;
	unsigned generation;
	sd_event_source *reconcile_timer;
	sd_event_source *trim_timer;
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

int roster_new(sd_event *event, const RosterCallbacks *callbacks, void *userdata, Roster **ret) {
	Roster *r;

	r = calloc(1, sizeof(*r));
	if (!r) {
		return -ENOMEM;
	}
	r->event = sd_event_ref(event);
	r->callbacks = callbacks;
	r->userdata = userdata;
	*ret = r;
	return 0;
}

static void roster_drop_all(Roster *r) {
	r->reconcile_timer = sd_event_source_disable_unref(r->reconcile_timer);
	r->trim_timer = sd_event_source_disable_unref(r->trim_timer);
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

		if (r->n_peers >= ROSTER_MAX_PEERS) {
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

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
	Roster *r = userdata;

	r->trim_timer = sd_event_source_disable_unref(r->trim_timer);
	(void) malloc_trim(0);
	return 0;
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

	/*
	 * A big list leaves big holes in the heap: the parsed entries, and the
	 * signals announcing each peer, which wait in the bus write queue until
	 * the broker has read them.  Give the memory back once they are gone.
	 */
	if (n >= ROSTER_TRIM_MIN && !r->trim_timer) {
		k = sd_event_add_time_relative(r->event, &r->trim_timer, CLOCK_MONOTONIC,
				ROSTER_TRIM_DELAY_USEC, 0, on_trim, r);
		if (k < 0) {
			log_debug_errno(k, "Failed to arm heap trim timer, ignoring: %m");
		}
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
