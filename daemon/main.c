/* SPDX-License-Identifier: MIT */

/*
 * p2pchatd: the per-user p2pchat daemon.  main() only parses the command
 * line, sets up the event loop and the Daemon (which opens the config and
 * the history, and logs in by itself with autologin), runs the loop until
 * SIGTERM, SIGINT or the loss of the bus, and logs out before it exits.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/bus-api.h"
#include "daemon/daemon.h"

static Endpoint arg_bind;

static void help(void) {
	printf("%s [OPTIONS...]\n\n"
	       "The p2pchat daemon: serves org.p2pchat.chat1 on the session bus.\n\n"
	       "  -h --help              Show this help\n"
	       "     --version           Show package version\n"
	       "  -b --bind=ADDR:PORT    Bind the peer UDP socket here (default: any\n"
	       "                         address, IPv4 and IPv6, any port)\n"
	       "  -v --verbose           Log debug messages\n\n"
	       "Settings: $XDG_CONFIG_HOME/p2pchat/config.json; messages:\n"
	       "$XDG_DATA_HOME/p2pchat/history.db.  See p2pchatd(8).\n",
			program_invocation_short_name);
}

static int parse_argv(int argc, char *argv[]) {
	enum {
		ARG_VERSION = 0x100,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "bind", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "hb:v", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("p2pchatd %s\n", PACKAGE_VERSION);
			return 0;
		case 'b':
			if (endpoint_parse_bind(optarg, &arg_bind) < 0) {
				log_error("Invalid bind address '%s': expected ADDR:PORT.", optarg);
				return -EINVAL;
			}
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case '?':
			return -EINVAL;
		default:
			abort();
		}
	}
	if (optind < argc) {
		log_error("%s takes no arguments.", program_invocation_short_name);
		return -EINVAL;
	}
	return 1;
}

static int run(int argc, char *argv[]) {
	_cleanup_(daemon_freep) Daemon *d = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	sigset_t mask;
	int r;

	log_set_program_name(program_invocation_short_name);

	r = parse_argv(argc, argv);
	if (r <= 0) {
		return r;
	}

	r = sd_event_default(&event);
	if (r < 0) {
		return log_error_errno(r, "Failed to allocate event loop: %m");
	}
	(void) sigemptyset(&mask);
	(void) sigaddset(&mask, SIGTERM);
	(void) sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		return log_error_errno(errno, "Failed to block signals: %m");
	}
	r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0) {
		r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to watch signals: %m");
	}

	r = daemon_new(event, &arg_bind, &d);
	if (r < 0) {
		return log_error_errno(r, "Failed to create the daemon: %m");
	}
	r = daemon_start(d);
	if (r < 0) {
		return r;
	}
	log_debug("Serving %s.", P2PCHAT_BUS_NAME);

	/* The daemon logs out from its exit source, while the bus is still open. */
	r = sd_event_loop(event);
	if (r < 0) {
		return log_error_errno(r, "Event loop failed: %m");
	}
	return 0;
}

int main(int argc, char *argv[]) {
	return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
