/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Manager's store: config, history + outbox and notifications, and the
 * glue between them and the Messenger (manager-store.c).
 */

#include <stdbool.h>
#include <stdint.h>

#include "daemon/manager.h"

/* Messages that went back to the outbox are tried again this much later. */
#define MANAGER_RETRY_USEC (15 * USEC_PER_SEC)

/* Opens the config and the history (before the socket is bound). */
int manager_store_open(Manager *m);
/* Starts the notifier once the bus is there; a missing server is no error. */
int manager_store_attach_bus(Manager *m);
void manager_store_close(Manager *m);

/* An autologin that fails is tried again this much later, until Login/Logout(). */
#define MANAGER_AUTOLOGIN_RETRY_USEC (5 * USEC_PER_SEC)

/* Autologin, if the config says so. */
void manager_store_autologin(Manager *m);
/* The login failed or was lost for good: try the autologin again later. */
void manager_store_autologin_failed(Manager *m);

/*
 * manager_queue_message() - SendMessage(): store @text for @peer as queued
 * and send it as soon as possible.  Return: 1 and the id when it went on
 * the wire at once (state "sent"), 0 and the id when it is queued; -ENOBUFS
 * when the peer's queue is full; other negative errno.
 */
int manager_queue_message(Manager *m, const char *peer, const char *text,
		char ret_id[static 33]);

/* Sends what is queued for online peers, soon (from a defer source). */
void manager_schedule_flush(Manager *m);

/*
 * manager_message_incoming() - store a received message, then announce it.
 * Return: 1 new, 0 a duplicate (ack it again), negative: not stored, no ack.
 */
int manager_message_incoming(Manager *m, const char *id, const char *peer, const char *text,
		uint64_t ts_usec, bool native, const char *time);
void manager_message_delivered(Manager *m, const char *id, const char *peer,
		unsigned attempts);
void manager_message_requeued(Manager *m, const char *id, const char *peer);

/* MarkRead(): returns how many messages became read. */
int manager_mark_read(Manager *m, const char *peer);
int manager_set_active_conversation(Manager *m, const char *peer);
/* SetConfig(): applies what can change at run time. */
int manager_set_config(Manager *m, const char *key, const char *value, char **ret_error);
