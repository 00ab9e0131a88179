/* SPDX-License-Identifier: MIT */

/*
 * p2pchat: the command-line front end of p2pchatd.  main() only parses the
 * command line and dispatches to a verb (verbs.c, chat.c); the verbs talk to
 * p2pchatd over the session bus and never open a socket of their own.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse-util.h"
#include "frontends/cli/chat.h"
#include "frontends/cli/history.h"
#include "frontends/cli/options.h"
#include "frontends/cli/output.h"
#include "frontends/cli/verbs.h"

typedef struct Verb {
	const char *name;
	int min_args; /* counting the verb itself */
	int max_args; /* -1: no limit */
	int (*fn)(int argc, char *argv[], void *userdata);
	const char *args;    /* for "p2pchat VERB --help" */
	const char *summary;
	const char *options; /* the lines of its own options, or NULL */
} Verb;

static int verb_help(int argc, char *argv[], void *userdata);

#define OPTIONS_WAIT \
	"     --wait              Wait until the message is delivered, sent or failed\n" \
	"     --timeout=SECONDS   With --wait: give up after this long (default: 60)\n"
#define OPTIONS_LIMIT \
	"  -n --limit=N           At most N messages (1-1000, default 100)\n"

static const Verb verbs[] = {
	{ "status", 1, 1, verb_status, "",
		"Show the login state of p2pchatd (the default command).", NULL },
	{ "login", 2, 2, verb_login, "NAME",
		"Log in as NAME; progress is shown on a terminal, Ctrl-C gives up.",
		"     --coordinator=HOST[:PORT]\n"
		"                         Coordinator to log in at (default: $P2PCHAT_COORDINATOR,\n"
		"                         the config's coordinator, or " DEFAULT_COORDINATOR ")\n" },
	{ "logout", 1, 1, verb_logout, "", "Log out.", NULL },
	{ "peers", 1, 1, verb_peers, "",
		"List the users the coordinator knows, with unread message counts.",
		"     --no-legend         Do not print the table header and footer\n" },
	{ "send", 3, -1, verb_send, "PEER TEXT...",
		"Send a message to PEER ('-' as TEXT reads standard input).", OPTIONS_WAIT },
	{ "cancel", 2, 2, verb_cancel, "ID",
		"Cancel a message that is still queued (it fails as 'cancelled').", NULL },
	{ "listen", 1, 1, verb_listen, "", "Print every event until interrupted.", NULL },
	{ "chat", 2, 2, verb_chat, "PEER",
		"Chat with PEER interactively, or line by line when standard input\n"
		"is not a terminal.", NULL },
	{ "history", 2, 2, verb_history, "PEER", "Show the conversation with PEER.",
		OPTIONS_LIMIT "     --no-legend         Do not print the table header and footer\n" },
	{ "read", 2, 2, verb_read, "PEER", "Mark the messages from PEER read.", NULL },
	{ "search", 2, -1, verb_search, "TEXT...", "Find messages containing TEXT.",
		OPTIONS_LIMIT "     --no-legend         Do not print the table header and footer\n" },
	{ "config", 2, 4, verb_config, "get [KEY] | set KEY VALUE | list",
		"Show or change the settings of p2pchatd; 'get' without KEY and 'list'\n"
		"show them all.", NULL },
	{ "fingerprint", 1, 1, verb_fingerprint, "",
		"Show the fingerprint of this daemon's identity, for others to compare.", NULL },
	{ "trust-coordinator", 3, -1, verb_trust_coordinator, "COORDINATOR FINGERPRINT...",
		"Accept the new key COORDINATOR offered when login failed because its\n"
		"key changed, named by its FINGERPRINT as the error showed it (quoted or\n"
		"not).", NULL },
	{ "help", 1, 2, verb_help, "[COMMAND]", "Show the help, or the help of COMMAND.",
		NULL },
};

static void help(void) {
	printf("%1$s [OPTIONS...] COMMAND ...\n"
		"\n"
		"Chat with other p2pchat users through p2pchatd.\n"
		"\n"
		"Commands:\n"
		"  status                 Show the login state of p2pchatd (the default)\n"
		"  login NAME             Log in as NAME\n"
		"  logout                 Log out\n"
		"  peers                  List the users the coordinator knows\n"
		"  send PEER TEXT...      Send a message ('-' as TEXT reads stdin)\n"
		"  cancel ID              Cancel a queued message\n"
		"  listen                 Print every event until interrupted\n"
		"  chat PEER              Chat with PEER interactively, or line by\n"
		"                         line when stdin is not a terminal\n"
		"  history PEER           Show the conversation with PEER\n"
		"  read PEER              Mark the messages from PEER read\n"
		"  search TEXT...         Find messages containing TEXT\n"
		"  config get [KEY]       Show a setting of p2pchatd, or all of them\n"
		"  config list            Show every setting\n"
		"  config set KEY VALUE   Change a setting (keys: username, coordinator,\n"
		"                         bind, autologin, notifications, outbox-expiry)\n"
		"  fingerprint            Show the fingerprint of this daemon's identity\n"
		"  trust-coordinator COORDINATOR FINGERPRINT...\n"
		"                         Accept the new key a coordinator offered\n"
		"  help [COMMAND]         Show this help, or the help of COMMAND\n"
		"\n"
		"Options:\n"
		"  -h --help              Show this help\n"
		"     --version           Show the package version\n"
		"     --user              Talk to the user's p2pchatd (the default)\n"
		"     --json=pretty|short|off\n"
		"                         Print JSON (--json alone means short)\n"
		"     --no-legend         Do not print the table header and footer\n"
		"     --coordinator=HOST[:PORT]\n"
		"                         Coordinator for login (default: $P2PCHAT_COORDINATOR,\n"
		"                         the config's coordinator, or %2$s)\n"
		"  -n --limit=N           history, search: at most N messages (default 100)\n"
		"     --wait              send: wait until the message is delivered or failed\n"
		"     --timeout=SECONDS   send --wait: give up after this long\n"
		"                         (default: %3$" PRIu64 ")\n"
		"\n"
		"Exit status: 0 on success, 1 on any failure (bad usage, an error from\n"
		"p2pchatd, p2pchatd not running, an undelivered message with --wait).\n"
		"See '%1$s help COMMAND' and the p2pchat(1) man page for details.\n",
		program_invocation_short_name, DEFAULT_COORDINATOR,
		DEFAULT_TIMEOUT_USEC / USEC_PER_SEC);
}

static const Verb *verb_find(const char *name) {
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
		if (streq(verbs[i].name, name)) {
			return &verbs[i];
		}
	}
	return NULL;
}

/* "p2pchat send --help", "p2pchat help send": the usage line and its options. */
static void verb_print_help(const Verb *v) {
	printf("%s [OPTIONS...] %s%s%s\n\n%s\n\nOptions:\n%s"
		"  -h --help              Show this help\n"
		"     --json=pretty|short|off\n"
		"                         Print JSON (--json alone means short)\n"
		"\nSee '%s --help' for the other commands and p2pchat(1) for details.\n",
		program_invocation_short_name, v->name, v->args[0] ? " " : "", v->args,
		v->summary, strempty(v->options), program_invocation_short_name);
}

static int verb_help(int argc, char *argv[], void *userdata) {
	const Verb *v;

	if (argc < 2) {
		help();
		return 0;
	}
	v = verb_find(argv[1]);
	if (!v) {
		return log_error_errno(EINVAL, "Unknown command '%s'. See '%s --help'.", argv[1],
			program_invocation_short_name);
	}
	verb_print_help(v);
	return 0;
}

static int parse_timeout(const char *s, uint64_t *ret) {
	char *end = NULL;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || !end || end == s || *end != '\0' || !(d > 0) || d > 86400.0) {
		return -EINVAL;
	}
	*ret = (uint64_t) (d * (double) USEC_PER_SEC);
	return 0;
}

static int parse_argv(int argc, char *argv[]) {
	enum {
		ARG_VERSION = 0x100,
		ARG_USER,
		ARG_JSON,
		ARG_NO_LEGEND,
		ARG_COORDINATOR,
		ARG_WAIT,
		ARG_TIMEOUT,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "user", no_argument, NULL, ARG_USER },
		{ "json", optional_argument, NULL, ARG_JSON },
		{ "no-legend", no_argument, NULL, ARG_NO_LEGEND },
		{ "coordinator", required_argument, NULL, ARG_COORDINATOR },
		{ "wait", no_argument, NULL, ARG_WAIT },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "limit", required_argument, NULL, 'n' },
		{}
	};
	bool want_help = false;
	uint64_t limit;
	int c;

	/* Report bad options ourselves, in the house format. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hn:", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			/* After the verb, it is the verb's help: see below. */
			want_help = true;
			break;
		case ARG_VERSION:
			printf("p2pchat %s\n", PACKAGE_VERSION);
			return 0;
		case ARG_USER:
			break;
		case ARG_JSON:
			if (!optarg) {
				arg_json = JSON_FORMAT_SHORT;
				break;
			}
			arg_json = json_format_from_string(optarg);
			if (arg_json < 0) {
				return log_error_errno(EINVAL, "Invalid --json= mode '%s' "
					"(expected pretty, short or off).", optarg);
			}
			break;
		case ARG_NO_LEGEND:
			arg_legend = false;
			break;
		case ARG_COORDINATOR:
			arg_coordinator = optarg;
			break;
		case ARG_WAIT:
			arg_wait = true;
			break;
		case 'n':
			if (parse_uint64_range(optarg, 1, 1000, &limit) < 0) {
				return log_error_errno(EINVAL, "Invalid --limit= value '%s' "
					"(expected 1-1000).", optarg);
			}
			arg_limit = (unsigned) limit;
			break;
		case ARG_TIMEOUT:
			if (parse_timeout(optarg, &arg_timeout_usec) < 0) {
				return log_error_errno(EINVAL, "Invalid --timeout= value '%s'.",
					optarg);
			}
			break;
		case '?':
			if (optopt != 0 && optopt < 0x100) {
				return log_error_errno(EINVAL, "Unknown option '-%c'.", optopt);
			}
			return log_error_errno(EINVAL, "Unknown option '%s' or missing argument.",
				argv[optind - 1]);
		default:
			abort();
		}
	}
	if (want_help) {
		const Verb *v = optind < argc ? verb_find(argv[optind]) : NULL;

		if (v) {
			verb_print_help(v);
		} else {
			help();
		}
		return 0;
	}
	return 1;
}

static int dispatch_verb(int argc, char *argv[]) {
	static char *default_argv[] = { (char *) "status", NULL };
	const Verb *verb = NULL;
	int n;

	/* Like timedatectl: no verb means "status". */
	if (argc <= 0) {
		argc = 1;
		argv = default_argv;
	}
	verb = verb_find(argv[0]);
	if (!verb) {
		return log_error_errno(EINVAL, "Unknown command '%s'. See '%s --help'.", argv[0],
			program_invocation_short_name);
	}
	n = argc;
	if (n < verb->min_args) {
		return log_error_errno(EINVAL, "Too few arguments for '%s'. See '%s %s --help'.",
			verb->name, program_invocation_short_name, verb->name);
	}
	if (verb->max_args >= 0 && n > verb->max_args) {
		return log_error_errno(EINVAL, "Too many arguments for '%s'. See '%s %s --help'.",
			verb->name, program_invocation_short_name, verb->name);
	}
	if (arg_wait && verb->fn != verb_send) {
		return log_error_errno(EINVAL, "--wait only applies to 'send'.");
	}
	if (arg_limit > 0 && verb->fn != verb_history && verb->fn != verb_search) {
		return log_error_errno(EINVAL, "--limit= only applies to 'history' and 'search'.");
	}
	if (arg_coordinator && verb->fn != verb_login) {
		return log_error_errno(EINVAL, "--coordinator= only applies to 'login'.");
	}
	return verb->fn(argc, argv, NULL);
}

static int run(int argc, char *argv[]) {
	int r;

	(void) setlocale(LC_ALL, "");
	/* Errors are for people at a terminal or for scripts: no "<3>" prefix. */
	log_set_prefix_level(false);
	log_set_max_level(getenv("P2PCHAT_DEBUG") ? LOG_DEBUG : LOG_INFO);

	r = parse_argv(argc, argv);
	if (r <= 0) {
		return r;
	}
	return dispatch_verb(argc - optind, argv + optind);
}

int main(int argc, char *argv[]) {
	int r;

	r = run(argc, argv);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
