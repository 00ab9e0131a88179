/* SPDX-License-Identifier: MIT */

/*
 * The roster.  Peers live in a tsearch() tree on the Manager, keyed by name.
 * A peer is created when a list or a login notice first names it and stays,
 * online or offline, until we log out: then the whole roster is destroyed at
 * once.  Every change that a front end can see is announced here: PeerJoined
 * and PeerLeft only for real transitions, PropertiesChanged for the rest.
 */

#include <malloc.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/manager-bus.h"
#include "daemon/manager-store.h"
#include "daemon/message.h"
#include "daemon/peer-bus.h"
#include "daemon/peer.h"

static int peer_compare(const void *a, const void *b) {
	const Peer *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static Peer *peer_free(Peer *p) {
	if (!p) {
		return NULL;
	}
	free(p->name);
	free(p->path);
	return mfree(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Peer *, peer_free);

static void peer_free_void(void *p) {
	(void) peer_free(p);
}

Peer *peer_get(Manager *m, const char *name) {
	Peer key = { .name = (char *) name };
	void **node;

	node = tfind(&key, &m->peers, peer_compare);
	return node ? *node : NULL;
}

/*
 * Native peers answer from the endpoint they declared, so the whole endpoint
 * must match.  Reference clients send from a throwaway port: only the IP can
 * be checked.
 */
bool peer_accepts_from(const Peer *p, const Endpoint *from, bool same_port) {
	if (!p->online) {
		return false;
	}
	return same_port ? endpoint_equal(&p->endpoint, from) : endpoint_same_ip(&p->endpoint, from);
}

static int peer_new(Manager *m, const char *name, Peer **ret) {
	_cleanup_(peer_freep) Peer *p = NULL;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->manager = m;
	p->name = strdup(name);
	if (!p->name) {
		return -ENOMEM;
	}
	r = peer_build_path(name, &p->path);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

int roster_add_or_update(Manager *m, const char *name, const Endpoint *ep, const char *caps) {
	bool was_online, native, changed_ep, changed_native;
	Peer *p;
	int r;

	if (m->username && streq(name, m->username)) {
		return 0; /* the list includes ourselves */
	}

	native = wire_caps_has(caps, WIRE_CAPS_NATIVE);
	p = peer_get(m, name);
	if (!p) {
		_cleanup_(peer_freep) Peer *n = NULL;

		if (m->n_peers >= ROSTER_MAX_PEERS) {
			return log_warning_errno(ENOSPC, "Roster is full, ignoring peer '%s'.", name);
		}
		r = peer_new(m, name, &n);
		if (r < 0) {
			return log_oom();
		}
		n->endpoint = *ep;
		n->native = native;
		n->online = true;
		n->generation = m->generation;
		if (!tsearch(n, &m->peers, peer_compare)) {
			return log_oom();
		}
		p = TAKE_PTR(n);
		m->n_peers++;
		peer_emit_added(p);
		manager_emit_peer_joined(m, p);
		manager_schedule_flush(m);
		return 1;
	}

	p->generation = m->generation;
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
	if (!was_online || changed_ep) {
		p->confirmed = false; /* it may not know us yet */
	}

	if (!was_online || changed_ep || changed_native) {
		peer_emit_changed(p, !was_online, changed_ep, changed_native);
	}
	if (!was_online) {
		manager_emit_peer_joined(m, p);
		manager_schedule_flush(m);
		return 1;
	}
	return 0;
}

static void peer_set_offline(Peer *p) {
	if (!p->online) {
		return;
	}
	p->online = false;
	peer_emit_changed(p, true, false, false);
	manager_emit_peer_left(p->manager, p);
	messenger_peer_left(p->manager->messenger, p->name);
}

void roster_mark_offline(Manager *m, const char *name, const Endpoint *ep) {
	Peer *p;

	p = peer_get(m, name);
	if (!p) {
		return;
	}
	/* A stale notice about an earlier login of the same name changes nothing. */
	if (ep && !endpoint_equal(&p->endpoint, ep)) {
		log_debug("Ignoring logout of '%s' from an old endpoint.", name);
		return;
	}
	peer_set_offline(p);
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

void roster_foreach(Manager *m, PeerCallback cb, void *userdata) {
	WalkContext c = { .cb = cb, .userdata = userdata };

	twalk_r(m->peers, walk_action, &c);
}

static void collect_stale(Peer *p, void *userdata) {
	Manager *m = p->manager;
	Peer ***next = userdata;

	if (p->online && p->generation != m->generation) {
		*(*next)++ = p;
	}
}

static void roster_drop_stale(Manager *m) {
	_cleanup_free_ Peer **stale = NULL;
	Peer **next;

	/* Collect first: going offline emits signals and must not race the walk. */
	stale = calloc(m->n_peers + 1, sizeof(Peer *));
	if (!stale) {
		log_oom();
		return;
	}
	next = stale;
	roster_foreach(m, collect_stale, &next);
	for (Peer **p = stale; p < next; p++) {
		peer_set_offline(*p);
	}
}

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;

	m->trim_timer = sd_event_source_disable_unref(m->trim_timer);
	(void) malloc_trim(0);
	return 0;
}

static int on_reconcile(sd_event_source *s, uint64_t usec, void *userdata) {
	roster_drop_stale(userdata);
	return 0;
}

/*
 * A full list replaces what we knew: peers it names are online (PeerJoined
 * only for those that were not), online peers it does not name have left.
 * After a reconnect the list may be partial (the others are logging in to a
 * restarted coordinator too): peers it misses get @grace to show up in a
 * login push before they count as gone.
 */
int roster_apply_list(Manager *m, const WireListEntry *entries, size_t n, uint64_t grace) {
	int r;

	m->generation++;
	for (size_t i = 0; i < n; i++) {
		r = roster_add_or_update(m, entries[i].name, &entries[i].endpoint, entries[i].caps);
		if (r == -ENOMEM) {
			return r;
		}
	}

	/*
	 * A big list leaves big holes in the heap: the parsed entries, and the
	 * signals announcing each peer, which wait in the bus write queue until
	 * the broker has read them.  Give the memory back once they are gone.
	 */
	if (n >= ROSTER_TRIM_MIN && !m->trim_timer) {
		r = sd_event_add_time_relative(m->event, &m->trim_timer, CLOCK_MONOTONIC,
				ROSTER_TRIM_DELAY_USEC, 0, on_trim, m);
		if (r < 0) {
			log_debug_errno(r, "Failed to arm heap trim timer, ignoring: %m");
		}
	}

	m->reconcile_timer = sd_event_source_disable_unref(m->reconcile_timer);
	if (grace == 0) {
		roster_drop_stale(m);
		return 0;
	}
	r = sd_event_add_time_relative(m->event, &m->reconcile_timer, CLOCK_MONOTONIC, grace, 0,
			on_reconcile, m);
	if (r < 0) {
		log_warning_errno(r, "Failed to arm reconcile timer, reconciling now: %m");
		roster_drop_stale(m);
	}
	return 0;
}

size_t roster_size(Manager *m) {
	return m->n_peers;
}

static void emit_removed(Peer *p, void *userdata) {
	peer_emit_removed(p);
}

void roster_clear(Manager *m) {
	m->reconcile_timer = sd_event_source_disable_unref(m->reconcile_timer);
	m->trim_timer = sd_event_source_disable_unref(m->trim_timer);
	roster_foreach(m, emit_removed, NULL);
	tdestroy(m->peers, peer_free_void);
	m->peers = NULL;
	m->n_peers = 0;
}
