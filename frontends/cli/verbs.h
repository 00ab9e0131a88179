/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The verbs of p2pchat and the options they read.  main.c parses the
 * command line into the arg_* variables and dispatches to a verb_*().
 * Each verb logs its own errors and returns negative errno on failure.
 */

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "frontends/cli/output.h"

#define DEFAULT_COORDINATOR "127.0.0.1:7474"
#define DEFAULT_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define LOGIN_TIMEOUT_USEC (90 * USEC_PER_SEC)

extern JsonFormat arg_json;
extern bool arg_legend;
extern const char *arg_coordinator;
extern bool arg_wait;
extern uint64_t arg_timeout_usec;
/* history, search: how many messages (0: the daemon's default, 100). */
extern unsigned arg_limit;

int verb_status(int argc, char *argv[], void *userdata);
int verb_login(int argc, char *argv[], void *userdata);
int verb_logout(int argc, char *argv[], void *userdata);
int verb_peers(int argc, char *argv[], void *userdata);
int verb_send(int argc, char *argv[], void *userdata);
int verb_listen(int argc, char *argv[], void *userdata);
int verb_chat(int argc, char *argv[], void *userdata);

/* Prints one event as JSON (--json) or as a line; -EIO when stdout is gone. */
int print_event(json_object *ev, bool show_ids);

/*
 * read_message_text() - the TEXT arguments of "send", joined by spaces
 *
 * A single "-" reads all of stdin instead (one trailing newline dropped).
 * Return: 0 and *ret, -EMSGSIZE when stdin is too long, other errno.
 */
int read_message_text(int argc, char *argv[], char **ret);
