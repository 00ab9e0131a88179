/* SPDX-License-Identifier: MIT */

/*
 * The errno <-> error name table for org.p2pchat.chat1.Error.*.  Each errno
 * is used by exactly one name, so the mapping is the same in both directions.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/bus-errors.h"

const sd_bus_error_map bus_error_map[] = {
	SD_BUS_ERROR_MAP(BUS_ERROR_NOT_LOGGED_IN, ENOTCONN),
	SD_BUS_ERROR_MAP(BUS_ERROR_ALREADY_LOGGED_IN, EISCONN),
	SD_BUS_ERROR_MAP(BUS_ERROR_NAME_TAKEN, EADDRINUSE),
	SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_NAME, EDOM),
	SD_BUS_ERROR_MAP(BUS_ERROR_COORDINATOR_UNREACHABLE, EHOSTUNREACH),
	SD_BUS_ERROR_MAP(BUS_ERROR_UNKNOWN_PEER, ENXIO),
	SD_BUS_ERROR_MAP(BUS_ERROR_MESSAGE_TOO_LONG, EMSGSIZE),
	SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_MESSAGE, EILSEQ),
	SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_CONFIG, EBADE),
	/*
	 * Not EROFS or EIO: a write may fail with those at run time while the
	 * store is there; the store itself never returns ENOMEDIUM.
	 */
	SD_BUS_ERROR_MAP(BUS_ERROR_STORAGE_UNAVAILABLE, ENOMEDIUM),
	/* Not ENOENT or EBUSY: the store and the loop return those for other things. */
	SD_BUS_ERROR_MAP(BUS_ERROR_UNKNOWN_MESSAGE, ENOMSG),
	SD_BUS_ERROR_MAP(BUS_ERROR_MESSAGE_NOT_CANCELLABLE, EALREADY),
	/* The coordinator offered a key other than the pinned one (the login fails). */
	SD_BUS_ERROR_MAP(BUS_ERROR_COORDINATOR_KEY_CHANGED, EKEYREJECTED),
	/* TrustCoordinator: no changed key of that coordinator waits to be trusted. */
	SD_BUS_ERROR_MAP(BUS_ERROR_NO_PENDING_KEY, ENOKEY),
	/*
	 * TrustCoordinator: the fingerprint is not the pending key's.  Not
	 * EKEYREJECTED (taken above); nothing the daemon calls returns EKEYREVOKED.
	 */
	SD_BUS_ERROR_MAP(BUS_ERROR_FINGERPRINT_MISMATCH, EKEYREVOKED),
	SD_BUS_ERROR_MAP_END,
};

int bus_errors_register(void) {
	static bool registered;
	int r;

	if (registered) {
		return 0;
	}
	r = sd_bus_error_add_map(bus_error_map);
	if (r < 0) {
		return r;
	}
	registered = true;
	return 0;
}

const char *bus_error_name_from_errno(int error) {
	for (const sd_bus_error_map *m = bus_error_map; m->name; m++) {
		if (m->code == abs(error)) {
			return m->name;
		}
	}
	return NULL;
}
