/* SPDX-License-Identifier: MIT */
/*
 * A test driver for daemon/notify.c: runs a Notify on the session bus and
 * takes one command per line on stdin:
 *
 *   msg PEER TEXT     notify_message(); prints "shown PEER" or "suppressed PEER"
 *   active [PEER]     notify_set_active_peer()
 *   on | off          notify_set_enabled()
 *   open PEER         notify_open_conversation()
 *   quit              exit (so does end of input)
 *
 * and prints the callbacks as "open PEER" and "reply PEER TEXT" lines.
 * Once the notifier is set up it prints "ready".
 */

#include <errno.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/notify.h"

#define LINE_MAX_BYTES 4096

typedef struct Driver {
	sd_event *event;
	sd_bus *bus;
	Notify *notify;
	char buf[LINE_MAX_BYTES];
	size_t len;
} Driver;

static void on_open(const char *peer, void *userdata) {
	printf("open %s\n", peer);
	fflush(stdout);
}

static void on_reply(const char *peer, const char *text, void *userdata) {
	printf("reply %s %s\n", peer, text);
	fflush(stdout);
}

static int run_command(Driver *d, char *line) {
	char *arg = strchr(line, ' ');
	int r;

	if (arg) {
		*arg++ = '\0';
	}

	if (streq(line, "msg") && arg) {
		char *text = strchr(arg, ' ');

		if (!text) {
			return -EINVAL;
		}
		*text++ = '\0';
		r = notify_message(d->notify, arg, text);
		if (r < 0) {
			return r;
		}
		printf("%s %s\n", r > 0 ? "shown" : "suppressed", arg);
	} else if (streq(line, "active")) {
		r = notify_set_active_peer(d->notify, arg);
		if (r < 0) {
			return r;
		}
		printf("active %s\n", strempty(notify_get_active_peer(d->notify)));
	} else if (streq(line, "on") || streq(line, "off")) {
		notify_set_enabled(d->notify, streq(line, "on"));
		printf("%s\n", line);
	} else if (streq(line, "open") && arg) {
		r = notify_open_conversation(d->bus, arg);
		if (r < 0) {
			return r;
		}
		printf("opening %s\n", arg);
	} else if (streq(line, "quit")) {
		return sd_event_exit(d->event, 0);
	} else {
		return -EINVAL;
	}
	fflush(stdout);
	return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Driver *d = userdata;
	ssize_t n;
	char *nl;
	int r;

	n = read(fd, d->buf + d->len, sizeof(d->buf) - 1 - d->len);
	if (n < 0) {
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	}
	if (n == 0) {
		return sd_event_exit(d->event, 0);
	}
	d->len += (size_t) n;
	d->buf[d->len] = '\0';

	while ((nl = strchr(d->buf, '\n'))) {
		*nl = '\0';
		r = run_command(d, d->buf);
		if (r < 0) {
			printf("error %s\n", strerror(-r));
			fflush(stdout);
		}
		d->len -= (size_t) (nl + 1 - d->buf);
		memmove(d->buf, nl + 1, d->len + 1);
	}
	if (d->len == sizeof(d->buf) - 1) {
		return sd_event_exit(d->event, -E2BIG);
	}
	return 0;
}

static int run(void) {
	static const NotifyCallbacks callbacks = {
		.on_open = on_open,
		.on_reply = on_reply,
	};
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(notify_freep) Notify *notify = NULL;
	Driver d = {};
	int r;

	r = sd_event_default(&event);
	if (r < 0) {
		return log_error_errno(r, "Failed to get event loop: %m");
	}
	r = sd_bus_open_user(&bus);
	if (r < 0) {
		return log_error_errno(r, "Failed to connect to the session bus: %m");
	}
	r = sd_bus_attach_event(bus, event, 0);
	if (r < 0) {
		return log_error_errno(r, "Failed to attach bus: %m");
	}
	r = notify_new(bus, &callbacks, NULL, &notify);
	if (r < 0) {
		return log_error_errno(r, "Failed to set up notifications: %m");
	}
	d = (Driver) { .event = event, .bus = bus, .notify = notify };
	r = sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &d);
	if (r < 0) {
		return log_error_errno(r, "Failed to watch stdin: %m");
	}

	/* The matches are installed asynchronously; a round trip makes sure they are. */
	r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus", "GetId", NULL, NULL, NULL);
	if (r < 0) {
		return log_error_errno(r, "Failed to reach the bus: %m");
	}
	printf("ready\n");
	fflush(stdout);

	r = sd_event_loop(event);
	if (r < 0) {
		return log_error_errno(r, "Event loop failed: %m");
	}
	return 0;
}

int main(void) {
	return run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
