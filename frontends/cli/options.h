/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The command-line options of p2pchat: main.c parses them into these arg_*
 * variables before it dispatches, and the verbs only read them.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"
#include "frontends/cli/output.h"

#define DEFAULT_COORDINATOR "127.0.0.1:7474"
#define DEFAULT_TIMEOUT_USEC (60 * USEC_PER_SEC)

extern JsonFormat arg_json;
extern bool arg_legend;
extern const char *arg_coordinator;
extern bool arg_wait;
extern uint64_t arg_timeout_usec;
/* history, search: how many messages (0: the daemon's default, 100). */
extern unsigned arg_limit;
