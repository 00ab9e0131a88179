/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * "p2pchat history PEER", "search TEXT...", "config get|set KEY [VALUE]":
 * the daemon's history and settings (GetHistory, SearchHistory, GetConfig,
 * SetConfig).
 */

int verb_history(int argc, char *argv[], void *userdata);
int verb_search(int argc, char *argv[], void *userdata);
int verb_config(int argc, char *argv[], void *userdata);
