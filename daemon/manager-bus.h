/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The D-Bus face of the daemon: org.p2pchat.chat1.Manager at
 * /org/p2pchat/chat1.  Method calls go down to the core; the core's events
 * come back as the emitters below, which send the signals.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "daemon/account.h"
#include "daemon/config.h"
#include "daemon/conversation.h"
#include "daemon/history.h"
#include "daemon/roster.h"

/* GetHistory()/SearchHistory() with limit 0. */
#define MANAGER_HISTORY_LIMIT_DEFAULT 100u

typedef struct ManagerBus ManagerBus;

/* What became of the history at start-up: the Storage property. */
typedef enum ManagerStorage {
	MANAGER_STORAGE_OK,
	MANAGER_STORAGE_RECOVERED,   /* it was damaged: set aside, a new one started */
	MANAGER_STORAGE_UNAVAILABLE, /* there is none: what needs it fails */
	_MANAGER_STORAGE_MAX,
	_MANAGER_STORAGE_INVALID = -EINVAL,
} ManagerStorage;

const char *manager_storage_to_string(ManagerStorage s);

/*
 * manager_bus_new() - register the Manager object on @bus over the core
 * objects (none owned).  Without a history (@history and @conversation
 * NULL) the daemon still serves the bus: the calls that need the history
 * fail with StorageUnavailable, and so does Login().
 */
int manager_bus_new(sd_bus *bus, Account *account, Roster *roster, Conversation *conversation,
		History *history, Config *config, ManagerBus **ret);
/*
 * manager_bus_set_storage() - the Storage and StorageError properties
 * (MANAGER_STORAGE_OK and "" until called); constant, so set them before
 * the bus name is taken.
 */
int manager_bus_set_storage(ManagerBus *mb, ManagerStorage storage, const char *error);
/* Drops a pending Login() call unanswered: the bus is going away. */
ManagerBus *manager_bus_free(ManagerBus *mb);
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerBus *, manager_bus_free);

/* Answers the pending Login(), if any. */
void manager_bus_login_done(ManagerBus *mb, int error, const char *message);

void manager_bus_emit_properties_changed(ManagerBus *mb);
void manager_bus_emit_peer_joined(ManagerBus *mb, Peer *p);
void manager_bus_emit_peer_left(ManagerBus *mb, Peer *p);
/* @unknown: @peer was never seen before (extra "unknown": b). */
void manager_bus_emit_message_queued(ManagerBus *mb, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, bool unknown);
void manager_bus_emit_message_received(ManagerBus *mb, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, bool native, const char *time);
void manager_bus_emit_message_delivered(ManagerBus *mb, const char *id, const char *peer,
		unsigned attempts);
void manager_bus_emit_message_sent(ManagerBus *mb, const char *id, const char *peer);
void manager_bus_emit_message_failed(ManagerBus *mb, const char *id, const char *peer,
		const char *reason);
/* @reason: NULL, or why (extra "reason": s), e.g. "expired". */
void manager_bus_emit_message_state_changed(ManagerBus *mb, const char *id, const char *peer,
		HistoryState state, const char *reason);
void manager_bus_emit_active_conversation_changed(ManagerBus *mb);
