/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * "p2pchat history PEER", "search TEXT...", "config get|set KEY [VALUE]":
 * the daemon's history and settings (GetHistory, SearchHistory, GetConfig,
 * SetConfig).
 */

#include <systemd/sd-bus.h>
#include <json-c/json.h>

int verb_history(int argc, char *argv[], void *userdata);
int verb_search(int argc, char *argv[], void *userdata);
int verb_config(int argc, char *argv[], void *userdata);

/*
 * client_get_history() - GetHistory(peer, limit, ""): the newest messages,
 * oldest first, as a JSON array of {"id", "peer", "direction", "text",
 * "sentUsec", "receivedUsec", "state", "extra"}.
 * Return: 0 and *ret, or negative errno with @error set. Does not log.
 */
int client_get_history(sd_bus *bus, const char *peer, unsigned limit, sd_bus_error *error,
		json_object **ret);

/* client_get_config() - GetConfig(key). Does not log. */
int client_get_config(sd_bus *bus, const char *key, sd_bus_error *error, char **ret);
