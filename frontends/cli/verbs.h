/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one-shot verbs of p2pchat (status, login, logout, peers, send,
 * cancel, read, fingerprint, trust-coordinator) and listen.  main.c dispatches to them after parsing the options (options.h).
 * Each verb logs its own errors and returns negative errno on failure.
 */

int verb_status(int argc, char *argv[], void *userdata);
int verb_login(int argc, char *argv[], void *userdata);
int verb_logout(int argc, char *argv[], void *userdata);
int verb_peers(int argc, char *argv[], void *userdata);
int verb_send(int argc, char *argv[], void *userdata);
int verb_cancel(int argc, char *argv[], void *userdata);
int verb_read(int argc, char *argv[], void *userdata);
int verb_fingerprint(int argc, char *argv[], void *userdata);
int verb_trust_coordinator(int argc, char *argv[], void *userdata);
int verb_listen(int argc, char *argv[], void *userdata);
