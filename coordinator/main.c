/* SPDX-License-Identifier: MIT */

/*
 * p2pchat-coordinator: option parsing and setup, and the operator commands
 * on the binding store (--release, --list-bindings), which run instead of
 * the server.  The Server (server.c) does the work; main() owns the event
 * loop, the Server, the binding store and the coordinator's identity, and
 * frees them on exit (the Server first: it borrows the other two).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "common/identity.h"
#include "common/log.h"
#include "common/parse-util.h"
#include "coordinator/bindings.h"
#include "coordinator/server.h"
#include "coordinator/state.h"

static ServerConfig arg_config;
static const char *arg_state_dir;   /* NULL: state_dir_default() */
static const char *arg_release;     /* a name to release, then exit */
static bool arg_list_bindings;

static void help(void) {
	printf("%s [OPTIONS...]\n\n"
	       "Tracks who is online and forwards logins and logouts (p2pchat).\n\n"
	       "  -h --help                     Show this help\n"
	       "     --version                  Show package version\n"
	       "  -v --verbose                  Log debug messages\n"
	       "     --state-dir=DIR            Where the key and the name bindings are kept\n"
	       "                                (default: $STATE_DIRECTORY, else\n"
	       "                                %s)\n"
	       "     --list-bindings            List the bound names and exit\n"
	       "     --release=NAME             Forget NAME's key binding and exit\n"
	       "  -l --listen=ADDR:PORT         UDP (and TCP) address (default 0.0.0.0:%d)\n"
	       "     --tcp-port=PORT            TCP port (default: the listen port)\n"
	       "     --max-users=N              Users online at once (default %u)\n"
	       "     --max-connections=N        TCP connections at once (default %u)\n"
	       "     --max-connections-per-ip=N TCP connections per source IP (default %u)\n"
	       "     --max-names-per-ip=N       Users online per source IP (default %u)\n"
	       "     --max-pending-per-ip=N     Reference logins per source IP awaiting their\n"
	       "                                list fetch (default %u)\n"
	       "     --pending-wait=SEC         Time a reference login has to fetch the list\n"
	       "                                (default %" PRIu64 ")\n"
	       "     --login-rate=N             Logins per source IP per second, 0: no limit\n"
	       "                                (default %u)\n"
	       "     --login-burst=N            Logins per source IP in a burst (default %u)\n"
	       "     --max-datagram=BYTES       Largest datagram read (default %zu)\n"
	       "     --output-cap=BYTES         Output buffered per connection (default %zu)\n"
	       "     --grace=MSEC               Time a connection has to say hello\n"
	       "                                (default %" PRIu64 ")\n"
	       "     --lease=SEC                Lifetime of a user without a session unless it\n"
	       "                                logs in again (default %" PRIu64 ")\n"
	       "     --session-wait=SEC         Time a native login has to open its session\n"
	       "                                (default %" PRIu64 ")\n"
	       "     --ping-interval=SEC        Session liveness check interval\n"
	       "                                (default %" PRIu64 ")\n"
	       "     --probe-interval=SEC       Probe reference clients this often instead of\n"
	       "                                leasing them, 0: never (default %" PRIu64 ")\n"
	       "     --probe-count=N            Probes in a row reported unreachable before\n"
	       "                                logout (default %u)\n"
	       "     --probe-rate=N             Probes per second at most, 0: no limit\n"
	       "                                (default %u)\n",
	       program_invocation_short_name, STATE_DIR_DEFAULT, COORDINATOR_DEFAULT_PORT,
	       arg_config.max_users,
	       arg_config.max_connections, arg_config.max_conns_per_ip,
	       arg_config.max_names_per_ip, arg_config.max_pending_per_ip,
	       arg_config.pending_wait / USEC_PER_SEC, arg_config.login_rate,
	       arg_config.login_burst, arg_config.max_datagram, arg_config.output_cap,
	       arg_config.grace / USEC_PER_MSEC, arg_config.lease / USEC_PER_SEC,
	       arg_config.session_wait / USEC_PER_SEC, arg_config.ping_interval / USEC_PER_SEC,
	       arg_config.probe_interval / USEC_PER_SEC, arg_config.probe_count,
	       arg_config.probe_rate);
}

static const char *option_name(const struct option *options, int id) {
	for (; options->name; options++) {
		if (options->val == id) {
			return options->name;
		}
	}
	return "?";
}

static int parse_argv(int argc, char *argv[]) {
	enum {
		ARG_VERSION = 0x100,
		ARG_TCP_PORT,
		ARG_MAX_USERS,
		ARG_MAX_CONNECTIONS,
		ARG_MAX_CONNECTIONS_PER_IP,
		ARG_MAX_NAMES_PER_IP,
		ARG_MAX_PENDING_PER_IP,
		ARG_PENDING_WAIT,
		ARG_LOGIN_RATE,
		ARG_LOGIN_BURST,
		ARG_MAX_DATAGRAM,
		ARG_OUTPUT_CAP,
		ARG_GRACE,
		ARG_LEASE,
		ARG_SESSION_WAIT,
		ARG_PING_INTERVAL,
		ARG_PROBE_INTERVAL,
		ARG_PROBE_COUNT,
		ARG_PROBE_RATE,
		ARG_STATE_DIR,
		ARG_RELEASE,
		ARG_LIST_BINDINGS,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "verbose", no_argument, NULL, 'v' },
		{ "listen", required_argument, NULL, 'l' },
		{ "tcp-port", required_argument, NULL, ARG_TCP_PORT },
		{ "max-users", required_argument, NULL, ARG_MAX_USERS },
		{ "max-connections", required_argument, NULL, ARG_MAX_CONNECTIONS },
		{ "max-connections-per-ip", required_argument, NULL, ARG_MAX_CONNECTIONS_PER_IP },
		{ "max-names-per-ip", required_argument, NULL, ARG_MAX_NAMES_PER_IP },
		{ "max-pending-per-ip", required_argument, NULL, ARG_MAX_PENDING_PER_IP },
		{ "pending-wait", required_argument, NULL, ARG_PENDING_WAIT },
		{ "login-rate", required_argument, NULL, ARG_LOGIN_RATE },
		{ "login-burst", required_argument, NULL, ARG_LOGIN_BURST },
		{ "max-datagram", required_argument, NULL, ARG_MAX_DATAGRAM },
		{ "output-cap", required_argument, NULL, ARG_OUTPUT_CAP },
		{ "grace", required_argument, NULL, ARG_GRACE },
		{ "lease", required_argument, NULL, ARG_LEASE },
		{ "session-wait", required_argument, NULL, ARG_SESSION_WAIT },
		{ "ping-interval", required_argument, NULL, ARG_PING_INTERVAL },
		{ "probe-interval", required_argument, NULL, ARG_PROBE_INTERVAL },
		{ "probe-count", required_argument, NULL, ARG_PROBE_COUNT },
		{ "probe-rate", required_argument, NULL, ARG_PROBE_RATE },
		{ "state-dir", required_argument, NULL, ARG_STATE_DIR },
		{ "release", required_argument, NULL, ARG_RELEASE },
		{ "list-bindings", no_argument, NULL, ARG_LIST_BINDINGS },
		{}
	};
	/* Each numeric option: where it goes, its unit and its range. */
	static const struct {
		int id;
		uint64_t min, max, unit;
	} numbers[] = {
		{ ARG_TCP_PORT, 0, 65535, 1 },
		{ ARG_MAX_USERS, 1, WIRE_LIST_MAX_ENTRIES, 1 },
		{ ARG_MAX_CONNECTIONS, 1, 1000000, 1 },
		{ ARG_MAX_CONNECTIONS_PER_IP, 1, 1000000, 1 },
		{ ARG_MAX_NAMES_PER_IP, 1, WIRE_LIST_MAX_ENTRIES, 1 },
		{ ARG_MAX_PENDING_PER_IP, 1, 1000000, 1 },
		{ ARG_PENDING_WAIT, 1, 3600, USEC_PER_SEC },
		{ ARG_LOGIN_RATE, 0, 1000000, 1 },
		{ ARG_LOGIN_BURST, 1, 1000000, 1 },
		{ ARG_MAX_DATAGRAM, 64, WIRE_DATAGRAM_MAX, 1 },
		{ ARG_OUTPUT_CAP, 4096, 1024 * 1024 * 1024, 1 },
		{ ARG_GRACE, 1, 60000, USEC_PER_MSEC },
		{ ARG_LEASE, 1, 7 * 24 * 3600, USEC_PER_SEC },
		{ ARG_SESSION_WAIT, 1, 3600, USEC_PER_SEC },
		{ ARG_PING_INTERVAL, 1, 3600, USEC_PER_SEC },
		{ ARG_PROBE_INTERVAL, 0, 3600, USEC_PER_SEC },
		{ ARG_PROBE_COUNT, 1, 100, 1 },
		{ ARG_PROBE_RATE, 0, 1000000, 1 },
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "hvl:", options, NULL)) >= 0) {
		uint64_t v = 0;

		for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
			if (numbers[i].id != c) {
				continue;
			}
			r = parse_uint64_range(optarg, numbers[i].min, numbers[i].max, &v);
			if (r < 0) {
				log_error("Invalid value '%s' for --%s (%" PRIu64 "-%" PRIu64 ").",
						optarg, option_name(options, c), numbers[i].min,
						numbers[i].max);
				return r;
			}
			v *= numbers[i].unit;
		}

		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("p2pchat-coordinator %s\n", PACKAGE_VERSION);
			return 0;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'l':
			r = endpoint_parse_bind(optarg, &arg_config.listen);
			if (r < 0) {
				return log_error_errno(r, "Invalid listen address '%s' "
						"(want ADDR:PORT).", optarg);
			}
			break;
		case ARG_TCP_PORT:
			arg_config.tcp_port = (int) v;
			break;
		case ARG_MAX_USERS:
			arg_config.max_users = (unsigned) v;
			break;
		case ARG_MAX_CONNECTIONS:
			arg_config.max_connections = (unsigned) v;
			break;
		case ARG_MAX_CONNECTIONS_PER_IP:
			arg_config.max_conns_per_ip = (unsigned) v;
			break;
		case ARG_MAX_NAMES_PER_IP:
			arg_config.max_names_per_ip = (unsigned) v;
			break;
		case ARG_MAX_PENDING_PER_IP:
			arg_config.max_pending_per_ip = (unsigned) v;
			break;
		case ARG_PENDING_WAIT:
			arg_config.pending_wait = v;
			break;
		case ARG_LOGIN_RATE:
			arg_config.login_rate = (unsigned) v;
			break;
		case ARG_LOGIN_BURST:
			arg_config.login_burst = (unsigned) v;
			break;
		case ARG_MAX_DATAGRAM:
			arg_config.max_datagram = v;
			break;
		case ARG_OUTPUT_CAP:
			arg_config.output_cap = v;
			break;
		case ARG_GRACE:
			arg_config.grace = v;
			break;
		case ARG_LEASE:
			arg_config.lease = v;
			break;
		case ARG_SESSION_WAIT:
			arg_config.session_wait = v;
			break;
		case ARG_PING_INTERVAL:
			arg_config.ping_interval = v;
			break;
		case ARG_PROBE_INTERVAL:
			arg_config.probe_interval = v;
			break;
		case ARG_PROBE_COUNT:
			arg_config.probe_count = (unsigned) v;
			break;
		case ARG_PROBE_RATE:
			arg_config.probe_rate = (unsigned) v;
			break;
		case ARG_STATE_DIR:
			if (optarg[0] == '\0') {
				log_error("Invalid state directory ''.");
				return -EINVAL;
			}
			arg_state_dir = optarg;
			break;
		case ARG_RELEASE:
			arg_release = optarg;
			break;
		case ARG_LIST_BINDINGS:
			arg_list_bindings = true;
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
	if (arg_release && arg_list_bindings) {
		log_error("--release and --list-bindings cannot be combined.");
		return -EINVAL;
	}
	return 1;
}

/* One descriptor per session: take all the kernel allows us. */
static void raise_nofile(void) {
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) {
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_debug_errno(errno, "Failed to raise RLIMIT_NOFILE, ignoring: %m");
	}
}

/*
 * The operator commands open an existing store only: a store this process
 * created (as root, say) could be one the service's user cannot write.  No
 * store is a store without bindings.
 */
static int open_store_existing(BindingStore **ret) {
	int r;

	r = binding_store_open_existing(arg_state_dir, ret);
	if (r == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to open the bindings in '%s': %m",
				arg_state_dir);
	}
	return 0;
}

static int release_name(const char *name) {
	_cleanup_(binding_store_freep) BindingStore *store = NULL;
	int r;

	r = open_store_existing(&store);
	if (r < 0) {
		return r;
	}
	r = store ? binding_store_release(store, name) : -ENOENT;
	if (r == -ENOENT) {
		log_error("Name '%s' is not bound.", name);
		return r;
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to release '%s': %m", name);
	}
	printf("Released '%s'.\n", name);
	return 0;
}

static int print_binding(const Binding *b, void *userdata) {
	char fingerprint[IDENTITY_FINGERPRINT_SIZE], created[sizeof("YYYY-MM-DDTHH:MM:SSZ")];
	time_t t = (time_t) (b->created_usec / USEC_PER_SEC);
	struct tm tm;

	identity_fingerprint(b->key, fingerprint);
	if (!gmtime_r(&t, &tm) ||
			strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		strcpy(created, "-");
	}
	printf("%s\t%s\t%s\n", b->name, fingerprint, created);
	return 0;
}

static int list_bindings(void) {
	_cleanup_(binding_store_freep) BindingStore *store = NULL;
	int r;

	r = open_store_existing(&store);
	if (r < 0 || !store) {
		return r;
	}
	r = binding_store_foreach(store, print_binding, NULL);
	if (r < 0) {
		return log_error_errno(r, "Failed to list the bindings: %m");
	}
	return 0;
}

/* The coordinator's key and its bindings, for the Server to borrow. */
static int open_state(Identity **ret_identity, BindingStore **ret_store) {
	_cleanup_(binding_store_freep) BindingStore *store = NULL;
	_cleanup_(identity_freep) Identity *identity = NULL;
	char fingerprint[IDENTITY_FINGERPRINT_SIZE];
	int r;

	r = coordinator_identity_load(arg_state_dir, &identity);
	if (r < 0) {
		return log_error_errno(r, "Failed to load the coordinator key from '%s/%s': %m",
				arg_state_dir, STATE_KEY_FILE);
	}
	if (r > 0) {
		log_info("Created a new coordinator key in '%s/%s'.", arg_state_dir,
				STATE_KEY_FILE);
	}
	identity_get_fingerprint(identity, fingerprint);
	log_info("Coordinator key fingerprint: %s", fingerprint);

	r = binding_store_open(arg_state_dir, &store);
	if (r < 0) {
		return log_error_errno(r, "Failed to open the bindings in '%s': %m",
				arg_state_dir);
	}

	*ret_identity = TAKE_PTR(identity);
	*ret_store = TAKE_PTR(store);
	return 0;
}

static int run(int argc, char *argv[]) {
	/* Declared before the Server, so freed after it: it borrows them. */
	_cleanup_(binding_store_freep) BindingStore *bindings = NULL;
	_cleanup_(identity_freep) Identity *identity = NULL;
	_cleanup_free_ char *state_dir = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_(server_freep) Server *server = NULL;
	sigset_t mask;
	int r;

	log_set_program_name(program_invocation_short_name);
	server_config_init(&arg_config);

	r = parse_argv(argc, argv);
	if (r <= 0) {
		return r;
	}
	if (!arg_state_dir) {
		r = state_dir_default(&state_dir);
		if (r < 0) {
			return log_oom();
		}
		arg_state_dir = state_dir;
	}

	if (arg_release) {
		return release_name(arg_release);
	}
	if (arg_list_bindings) {
		return list_bindings();
	}

	r = open_state(&identity, &bindings);
	if (r < 0) {
		return r;
	}
	arg_config.identity = identity;
	arg_config.bindings = bindings;

	raise_nofile();
	/* A fixed mmap threshold: large buffers (lists, storm queues) go back to
	 * the kernel when freed, instead of staying in a fragmented heap. */
	(void) mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	(void) mallopt(M_TRIM_THRESHOLD, 256 * 1024);
	(void) signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	(void) sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&event);
	if (r < 0) {
		return log_error_errno(r, "Failed to allocate event loop: %m");
	}
	r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0) {
		r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to watch signals: %m");
	}

	r = server_new(&arg_config, event, &server);
	if (r < 0) {
		return r;
	}

	(void) sd_notify(false, "READY=1\nSTATUS=0 users online");
	r = sd_event_loop(event);
	(void) sd_notify(false, "STOPPING=1");
	if (r < 0) {
		return log_error_errno(r, "Event loop failed: %m");
	}
	return 0;
}

int main(int argc, char *argv[]) {
	return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
