/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The account: the login state machine (offline -> connecting -> online,
 * back to connecting while the coordinator is lost, offline again after
 * Logout() or a failed Login()) and the autologin.  It owns the link to the
 * coordinator and reports through AccountCallbacks.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/identity.h"
#include "common/macro.h"
#include "common/wire.h"
#include "daemon/config.h"
#include "daemon/coordinator-pins.h"
#include "daemon/udp.h"

/* The coordinator port when "HOST" comes without ":PORT". */
#define ACCOUNT_DEFAULT_COORDINATOR_PORT 7474
/* An autologin that fails is tried again this much later, until Login/Logout(). */
#define ACCOUNT_AUTOLOGIN_RETRY_USEC (5 * USEC_PER_SEC)

typedef struct Account Account;

typedef enum AccountState {
	ACCOUNT_STATE_OFFLINE,
	ACCOUNT_STATE_CONNECTING,
	ACCOUNT_STATE_ONLINE,
	_ACCOUNT_STATE_MAX,
	_ACCOUNT_STATE_INVALID = -EINVAL,
} AccountState;

typedef struct AccountCallbacks {
	/* State, user name, coordinator or local endpoint changed. */
	void (*changed)(void *userdata);
	/*
	 * The outcome of the login that account_login() started: 0, or an
	 * error with a message for the user.  Exactly once per login.
	 */
	void (*login_done)(int error, const char *message, void *userdata);
	/* Online: the first list is in. */
	void (*online)(void *userdata);
	/* Everything of the login goes; @reason tells messages in flight why. */
	void (*offline)(const char *reason, void *userdata);
	/* What the coordinator says about the others (see CoordinatorLinkCallbacks). */
	int (*list)(const WireListEntry *entries, size_t n, uint64_t grace, void *userdata);
	void (*peer_login)(const WireMessage *w, void *userdata);
	void (*peer_logout)(const WireMessage *w, void *userdata);
} AccountCallbacks;

/*
 * account_new() - the account of the daemon's @identity, over @udp, @config
 * and the coordinator keys pinned in @pins (none owned: all must outlive it).
 */
int account_new(sd_event *event, Udp *udp, Config *config, const Identity *identity,
		CoordinatorPins *pins, const AccountCallbacks *callbacks, void *userdata,
		Account **ret);
Account *account_free(Account *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Account *, account_free);

/*
 * account_login() - the user's Login(): log in as @name at @coordinator
 * ("" for the config's); the user decides now, so autologin stops.  The
 * outcome comes through login_done().
 * Return: 0, -EINVAL for a coordinator we cannot use, -errno (then
 * login_done() is not called).
 */
int account_login(Account *a, const char *name, const char *coordinator);
/*
 * account_logout() - log out (if logged in); cancels a pending login.  By
 * the user (@by_user) it also stops the autologin.
 */
int account_logout(Account *a, bool by_user);
/* Logs in with the config's name and coordinator, if it says so. */
void account_autologin(Account *a);

/*
 * Why the account is offline: "logged-out" (Logout(), or a failed or lost
 * login), "replaced" (another daemon with our identity took the session;
 * no autologin follows), "" before any login or while not offline.
 */
const char *account_get_offline_reason(const Account *a);
/*
 * The fingerprint of the key the coordinator proved, while online;
 * -ENOKEY when offline or when the coordinator is a reference server.
 */
int account_get_coordinator_fingerprint(const Account *a,
		char ret[static IDENTITY_FINGERPRINT_SIZE]);
AccountState account_get_state(Account *a);
/* NULL when offline. */
const char *account_get_username(Account *a);
const char *account_get_coordinator(Account *a);
const char *account_get_local_endpoint(Account *a);
/* The daemon's long-term identity (borrowed). */
const Identity *account_get_identity(const Account *a);

/*
 * account_check_coordinator_key() - is @key the pinned key of @coordinator
 * (as Login() takes it: "" is the config's, the port may be left out)?
 * Return: as coordinator_pins_check(): 0 pinned, 1 pinned now (first use),
 * -EKEYREJECTED another key is pinned (@key is now the pending one),
 * -EINVAL for a coordinator that does not parse, or the error of saving.
 */
int account_check_coordinator_key(Account *a, const char *coordinator,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]);
/*
 * account_trust_coordinator() - the user's TrustCoordinator(): accept the
 * pending key of @coordinator (as above) that has @fingerprint.
 * Return: as coordinator_pins_trust(): 0, -ENOKEY nothing pending,
 * -EKEYREJECTED another fingerprint, -EINVAL for a coordinator or a
 * fingerprint that does not parse, or the error of saving.
 */
int account_trust_coordinator(Account *a, const char *coordinator, const char *fingerprint);

const char *account_state_to_string(AccountState s);
