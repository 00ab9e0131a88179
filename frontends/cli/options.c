/* SPDX-License-Identifier: MIT */

/*
 * The arg_* variables of p2pchat, with their defaults.  They live for the
 * whole process: main.c sets them once while parsing the command line, the
 * verbs read them afterwards.
 */

#include "frontends/cli/options.h"

JsonFormat arg_json = JSON_FORMAT_OFF;
bool arg_legend = true;
const char *arg_coordinator = NULL;
bool arg_wait = false;
unsigned arg_limit = 0;
uint64_t arg_timeout_usec = DEFAULT_TIMEOUT_USEC;
