/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Presence: who is online, and what everyone is told about it.  The policy
 * of logins, logouts (and "lohout"), session hellos, leases, the probes of
 * reference clients and the fan-out of every login and logout to the other
 * users, over the user registry.  No sockets: what is to be sent, and which
 * sessions are to be closed, goes to the owner through PresenceCallbacks;
 * the owner reports what the network says about a probe with
 * presence_probe_unreachable().
 *
 * A user's TCP session is the owner's business: presence only keeps the
 * owner's handle of it (an opaque pointer) and hands it back in callbacks.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/user.h"

typedef struct Presence Presence;

typedef struct PresenceConfig {
	RegistryLimits limits;
	uint64_t lease;         /* usec a session-less user stays without re-login */
	uint64_t session_wait;  /* usec a native login has to bind its session */
	/*
	 * A reference login (no native1) stays pending, and nothing but its
	 * Accept goes to it, until its source IP fetches the list over TCP
	 * (presence_confirm()); unconfirmed, it is forgotten after
	 * @pending_wait usec.
	 */
	uint64_t pending_wait;
	/*
	 * A reference client sends nothing while it runs and nothing when its
	 * window closes.  One whose declared endpoint may be sent to is probed
	 * instead of leased: every @probe_interval usec (0: never; the lease
	 * then applies) it is sent a probe, and after @probe_count probes in a
	 * row reported unreachable it is logged out.  At most @probe_rate
	 * probes leave per second (0: no limit); the rest wait their turn.
	 */
	uint64_t probe_interval;
	unsigned probe_count;
	unsigned probe_rate;
} PresenceConfig;

/* None of these may call back into presence. */
typedef struct PresenceCallbacks {
	/* Queue the line @text as one frame on @session. */
	void (*send_frame)(void *session, const char *text, size_t len, void *userdata);
	/*
	 * Queue the datagram @buf for @dest.  Return 0, or a negative errno to
	 * stop the fan-out it is part of.
	 */
	int (*send_datagram)(const Endpoint *dest, const uint8_t *buf, size_t len,
			void *userdata);
	/*
	 * @session no longer belongs to its user (a newer session replaced it,
	 * or the user logged out): close it, after a "Reject,@reason" frame
	 * when @reason is not NULL.
	 */
	void (*drop_session)(void *session, const char *reason, void *userdata);
	/*
	 * Bind @name to the Ed25519 key @key for good, unless it is bound
	 * already: return >= 0 when it is (now) bound to @key, -EEXIST when
	 * bound to another key, another negative errno on failure.
	 */
	int (*bind_name)(const char *name, const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE],
			void *userdata);
	/* Whether @name is bound to a key. */
	bool (*name_is_bound)(const char *name, void *userdata);
	/*
	 * Send a probe to @dest: a datagram the reference client ignores, from
	 * a socket whose ICMP errors the owner reads.  Return 0, or a negative
	 * errno (the probe counts as not sent).
	 */
	int (*send_probe)(const Endpoint *dest, void *userdata);
} PresenceCallbacks;

/* What to answer a login datagram. */
typedef enum PresenceReply {
	PRESENCE_REPLY_NONE,        /* nothing */
	PRESENCE_REPLY_ACCEPT,      /* Accept,TCPPORT */
	PRESENCE_REPLY_NAME_TAKEN,  /* Reject,name-taken */
	PRESENCE_REPLY_FULL,        /* Reject,full */
	_PRESENCE_REPLY_MAX,
	_PRESENCE_REPLY_INVALID = -EINVAL,
} PresenceReply;

/* The Reject reason of @r; NULL for a reply that is no Reject. */
const char *presence_reply_to_reason(PresenceReply r);

/* Leases and session waits run on @event. */
int presence_new(sd_event *event, const PresenceConfig *config,
		const PresenceCallbacks *callbacks, void *userdata, Presence **ret);
/* Frees every user, without telling anyone. */
Presence *presence_free(Presence *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Presence *, presence_free);

/* The registry of online users and per-IP records, borrowed. */
Registry *presence_get_registry(Presence *p);
size_t presence_get_n_sessions(const Presence *p);

/* The process is exiting: logouts from now on are not forwarded. */
void presence_shutdown(Presence *p);

/*
 * presence_login() - a login datagram @m in @enc from @source.
 *
 * Within @source's rate limit, a name online from another IP is refused,
 * and so is a reference login (no native1) for the name of a native user; a
 * repeated login from the same address renews the lease.  Otherwise a
 * native login is registered (replacing a user of that name from the same
 * IP) and forwarded to everyone else; a reference login is only kept
 * pending until presence_confirm(), which does the same for it.
 */
PresenceReply presence_login(Presence *p, const WireMessage *m, WireEncoding enc,
		const Endpoint *source);

/*
 * presence_probe_unreachable() - the network reported a probe to @dest
 * unreachable (ICMP port or host unreachable).  Counts once per probe
 * against each user probed at @dest; the user is logged out at the
 * probe_count-th report in a row.  A probe without a report before the next
 * one (the client is there) resets the count.
 */
void presence_probe_unreachable(Presence *p, const Endpoint *dest);

/*
 * presence_confirm() - a TCP connection from @peer fetched the list: every
 * pending reference login from @peer's IP goes online (in arrival order)
 * and is forwarded, before the list is cut.
 * Return: how many went online.
 */
size_t presence_confirm(Presence *p, const Endpoint *peer);

/*
 * A logout datagram: counts only for a reference user, from the IP it
 * logged in from and with its declared endpoint (a pending login is
 * forgotten likewise).  A native user leaves only through its session.
 */
void presence_logout(Presence *p, const WireMessage *m, const Endpoint *source);

/*
 * presence_hello() - the session @session from @peer said "hello" @m and
 * proved the Ed25519 key @key.  The pending native login of that name from
 * @peer's IP goes online with @key, if @key may have the name: the first
 * key to log in with a name is bound to it for good (bind_name()); an
 * online user of the name is replaced when it has the same key (its
 * session is dropped with the reason "replaced"; when nothing else changed
 * the others see no logout), or is a reference user from the same IP.
 * Return: 0 and the user; -EPERM without a pending native login from that
 * IP (or when the binding cannot be stored), -EEXIST when the name belongs
 * to someone else, -ENOSPC when no more users may go online.
 */
int presence_hello(Presence *p, void *session, const Endpoint *peer, const WireMessage *m,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE], User **ret);

/* A logout frame @m on the session of @u: counts only for @u's own name. */
void presence_session_logout(Presence *p, User *u, const WireMessage *m);

/* The session of @u closed (for @why): @u is logged out, the session is not dropped. */
void presence_session_closed(Presence *p, User *u, const char *why);
