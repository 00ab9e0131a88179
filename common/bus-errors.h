/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The named errors of the org.p2pchat.chat1 API and their errno mapping.
 * Both the daemon and its clients register the map with
 * sd_bus_error_add_map(), so "return -EADDRINUSE" in a handler arrives as
 * org.p2pchat.chat1.Error.NameTaken and a client sees the errno back.
 */

#include <systemd/sd-bus.h>

#define BUS_ERROR_NOT_LOGGED_IN "org.p2pchat.chat1.Error.NotLoggedIn"
#define BUS_ERROR_ALREADY_LOGGED_IN "org.p2pchat.chat1.Error.AlreadyLoggedIn"
#define BUS_ERROR_NAME_TAKEN "org.p2pchat.chat1.Error.NameTaken"
#define BUS_ERROR_INVALID_NAME "org.p2pchat.chat1.Error.InvalidName"
#define BUS_ERROR_COORDINATOR_UNREACHABLE "org.p2pchat.chat1.Error.CoordinatorUnreachable"
#define BUS_ERROR_UNKNOWN_PEER "org.p2pchat.chat1.Error.UnknownPeer"
#define BUS_ERROR_MESSAGE_TOO_LONG "org.p2pchat.chat1.Error.MessageTooLong"
#define BUS_ERROR_INVALID_MESSAGE "org.p2pchat.chat1.Error.InvalidMessage"
#define BUS_ERROR_INVALID_CONFIG "org.p2pchat.chat1.Error.InvalidConfig"
#define BUS_ERROR_STORAGE_UNAVAILABLE "org.p2pchat.chat1.Error.StorageUnavailable"
#define BUS_ERROR_UNKNOWN_MESSAGE "org.p2pchat.chat1.Error.UnknownMessage"
#define BUS_ERROR_MESSAGE_NOT_CANCELLABLE "org.p2pchat.chat1.Error.MessageNotCancellable"
#define BUS_ERROR_COORDINATOR_KEY_CHANGED "org.p2pchat.chat1.Error.CoordinatorKeyChanged"
#define BUS_ERROR_NO_PENDING_KEY "org.p2pchat.chat1.Error.NoPendingKey"
#define BUS_ERROR_FINGERPRINT_MISMATCH "org.p2pchat.chat1.Error.FingerprintMismatch"

extern const sd_bus_error_map bus_error_map[];

/* Registers bus_error_map with libsystemd; safe to call more than once. */
int bus_errors_register(void);

/*
 * The name of ours for an errno (either sign), or NULL.  libsystemd uses the
 * registered maps only to turn names into errnos; replying with an errno
 * gives its built-in names (EADDRINUSE is ...DBus.Error.AddressInUse), so a
 * daemon that replies later looks its name up here.
 */
const char *bus_error_name_from_errno(int error);
