/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "daemon/history.h"
#include "daemon/manager.h"
#include "daemon/peer.h"

/* GetHistory()/SearchHistory() with limit 0. */
#define MANAGER_HISTORY_LIMIT_DEFAULT 100u

int manager_bus_register(Manager *m);

void manager_emit_properties_changed(Manager *m);
void manager_emit_peer_joined(Manager *m, Peer *p);
void manager_emit_peer_left(Manager *m, Peer *p);
void manager_emit_message_received(Manager *m, const char *id, const char *peer,
		const char *text, uint64_t timestamp_usec, int native, const char *time);
void manager_emit_message_delivered(Manager *m, const char *id, const char *peer,
		unsigned attempts);
void manager_emit_message_sent(Manager *m, const char *id, const char *peer);
void manager_emit_message_failed(Manager *m, const char *id, const char *peer,
		const char *reason);
/* @reason: NULL, or why (extra "reason": s), e.g. "expired". */
void manager_emit_message_state_changed(Manager *m, const char *id, const char *peer,
		HistoryState state, const char *reason);
void manager_emit_active_conversation_changed(Manager *m);
