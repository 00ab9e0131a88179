/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The registry of online users, the roster text every list frame is cut
 * from, the pending reference logins (not online until their source IP
 * fetches the list over TCP) and the per-source-IP accounting behind the
 * abuse limits.  Pure bookkeeping: no sockets, no event loop; the time is
 * passed in.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/hashmap.h"
#include "coordinator/list.h"
#include "coordinator/timeout-queue.h"

struct IpRecord;

typedef struct User {
	HashNode hash_node;     /* Registry.users, by name; unused while pending */
	ListNode roster_node;   /* Registry.roster in login order; while pending,
				 * its IP's pending logins in arrival order */
	struct IpRecord *ip;    /* not owned: the record of the source IP */
	bool pending;           /* a reference login not confirmed yet */
	TimeoutLink timeout;    /* lease, session wait, probe or pending wait;
				 * see presence.c */
	HashNode probe_node;    /* Presence.probing while a probe is pending */
	unsigned probe_misses;  /* probes in a row reported unreachable */
	bool probe_pending;     /* probed, no unreachable report yet */
	void *session;          /* not owned; see presence.h; NULL without a session */
	Endpoint declared;      /* the endpoint in the login */
	Endpoint source;        /* the login datagram's source address */
	Endpoint announced;     /* what others are told: see registry_add() */
	WireEncoding encoding;  /* of the login datagram */
	bool udp_reachable;     /* declared IP == source IP */
	bool native;            /* caps hold WIRE_CAPS_NATIVE */
	char *entry;            /* "name,ep[,caps]" for list frames */
	size_t entry_len;
	size_t name_len;
	char name[WIRE_NAME_MAX_BYTES + 1];
	char caps[WIRE_CAPS_MAX + 1];
	char key[WIRE_KEY_HEX_LEN + 1]; /* its proven identity (native), else "" */
} User;

/*
 * The fields stay visible for the registry's own tests; other modules read
 * and change a User only through these.
 */
static inline const char *user_get_name(const User *u) {
	return u->name;
}

static inline const char *user_get_caps(const User *u) {
	return u->caps;
}

/* The identity a native user proved with its session (hex), "" for others. */
static inline const char *user_get_key(const User *u) {
	return u->key;
}

/* The endpoint in the login, and where the login came from. */
static inline const Endpoint *user_get_declared(const User *u) {
	return &u->declared;
}

static inline const Endpoint *user_get_source(const User *u) {
	return &u->source;
}

/* What others are told: see registry_add(). */
static inline const Endpoint *user_get_announced(const User *u) {
	return &u->announced;
}

static inline WireEncoding user_get_encoding(const User *u) {
	return u->encoding;
}

static inline bool user_is_native(const User *u) {
	return u->native;
}

/* A reference login its source IP has not confirmed yet: see registry_add_pending(). */
static inline bool user_is_pending(const User *u) {
	return u->pending;
}

/* Whether datagrams may go to the declared endpoint (its IP is the source's). */
static inline bool user_is_udp_reachable(const User *u) {
	return u->udp_reachable;
}

static inline void *user_get_session(const User *u) {
	return u->session;
}

static inline void user_set_session(User *u, void *session) {
	u->session = session;
}

/* The link a timeout queue holds @u by, and back. */
static inline TimeoutLink *user_get_timeout(User *u) {
	return &u->timeout;
}

static inline User *user_from_timeout(TimeoutLink *link) {
	return container_of(link, User, timeout);
}

typedef struct RegistryLimits {
	unsigned max_users;
	unsigned login_rate;  /* logins per source IP per second; 0: unlimited */
	unsigned login_burst; /* bucket size */
	unsigned max_conns_per_ip;
	unsigned max_ips;     /* source IPs tracked at once */
	unsigned max_names_per_ip;   /* users online per source IP; 0: no limit */
	unsigned max_pending_per_ip; /* pending logins per source IP; 0: no limit */
} RegistryLimits;

typedef struct Registry Registry;

int registry_new(const RegistryLimits *limits, Registry **ret);
Registry *registry_free(Registry *reg);

size_t registry_n_users(const Registry *reg);
User *registry_find(const Registry *reg, const char *name);

/* The first user in login order, and the one after @u (NULL at the end). */
User *registry_first(const Registry *reg);
User *registry_next(const Registry *reg, const User *u);

/*
 * registry_add() - register a new user.
 * @m: a parsed login (name, endpoint, caps)
 * @source: where the login datagram came from
 * @enc: its encoding
 *
 * The name must not be online (see registry_find()).
 * Return: 0, -ENOSPC when max_users are online or the IP cannot be tracked,
 * -EUSERS when max_names_per_ip are online from @source's IP, -ENOMEM.
 */
int registry_add(Registry *reg, const WireMessage *m, const Endpoint *source, WireEncoding enc,
		User **ret);

/*
 * registry_add_pending() - keep a reference login until its IP confirms it.
 *
 * Like registry_add(), but the user is neither found by name, nor listed,
 * nor counted online: it waits in its IP's pending logins (arrival order)
 * until registry_confirm() or registry_remove().  Any number of pending
 * logins may name the same user, and a name may be online meanwhile.
 * Return: 0, -EUSERS when @source's IP holds max_pending_per_ip pending
 * logins, or max_names_per_ip users online and @m's name is not one of
 * them, -ENOSPC when the IP cannot be tracked, -ENOMEM.
 */
int registry_add_pending(Registry *reg, const WireMessage *m, const Endpoint *source,
		WireEncoding enc, User **ret);

/* The pending login of @name from @ip's IP, or NULL. */
User *registry_find_pending(const Registry *reg, const Endpoint *ip, const char *name);
/* The oldest pending login from @ip's IP, or NULL. */
User *registry_first_pending(const Registry *reg, const Endpoint *ip);
size_t registry_n_pending(const Registry *reg);

/*
 * registry_confirm() - a pending @u goes online, as registry_add() would
 * register it.  Its name must not be online.
 * Return: 0, -ENOSPC when max_users are online, -EUSERS when
 * max_names_per_ip are online from its IP (@u stays pending then).
 */
int registry_confirm(Registry *reg, User *u);

/*
 * user_set_key() - the pending @u proved the key @hex (WIRE_KEY_HEX_LEN
 * digits): it goes into its list entry and its login forwards.
 * Return: 0, -ENOMEM.
 */
int user_set_key(User *u, const char *hex);

/* Whether the pending @pending would only repeat the online @u (what others are told is the same). */
bool user_login_is_same_user(const User *u, const User *pending);

/*
 * registry_may_confirm() - whether registry_confirm() of @u would pass its
 * limits once the online @replaced (may be NULL) is removed.
 */
bool registry_may_confirm(const Registry *reg, const User *u, const User *replaced);

/* The pending login from the same IP after @u, or NULL. */
User *registry_next_pending(const Registry *reg, const User *u);

/* Whether a login would only repeat what @u already is (same endpoint, caps, encoding). */
bool user_login_is_same(const User *u, const WireMessage *m, WireEncoding enc);

/* Unregisters (or forgets, when pending) and frees @u. */
void registry_remove(Registry *reg, User *u);

/* "e1;e2;...;end" for every online user, in login order; borrowed until the next change. */
int registry_get_list(Registry *reg, const char **ret, size_t *ret_len);

/*
 * registry_take_login_token() - charge one login to @ip's token bucket.
 * Return: 1 when allowed, 0 when the IP is over its rate, -ENOMEM/-ENOSPC
 * when the IP cannot be tracked (treat as over the rate).
 */
int registry_take_login_token(Registry *reg, const Endpoint *ip, uint64_t now);

/* Counts a TCP connection from @ip: 1 allowed, 0 over max_conns_per_ip, <0 error. */
int registry_conn_add(Registry *reg, const Endpoint *ip, uint64_t now);
void registry_conn_remove(Registry *reg, const Endpoint *ip);

/* Forgets IPs with no connections and a full bucket; returns how many. */
size_t registry_gc_ips(Registry *reg, uint64_t now);
size_t registry_n_ips(const Registry *reg);

DEFINE_TRIVIAL_CLEANUP_FUNC(Registry *, registry_free);
