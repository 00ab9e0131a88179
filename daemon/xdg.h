/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XDG base directories (config, data) for the daemon's files.
 */

#include <errno.h>
#include <stdbool.h>

typedef enum XdgDir {
	XDG_DIR_CONFIG, /* $XDG_CONFIG_HOME, else ~/.config */
	XDG_DIR_DATA,   /* $XDG_DATA_HOME, else ~/.local/share */
	_XDG_DIR_MAX,
	_XDG_DIR_INVALID = -EINVAL,
} XdgDir;

/*
 * xdg_build_path() - the path of p2pchat's file @name in base directory @dir.
 * @dir: which base directory
 * @name: a file name, e.g. "config.json"
 * @mkdirs: whether to create the directories up to "…/p2pchat" (mode 0700)
 * @ret: the path, e.g. "$XDG_DATA_HOME/p2pchat/history.db"
 *
 * A relative or empty $XDG_*_HOME is ignored, as the XDG spec says; without
 * it $HOME is used, and without an absolute $HOME the call fails.
 *
 * Return: 0, -ENOENT without a usable home, or the mkdir error.
 */
int xdg_build_path(XdgDir dir, const char *name, bool mkdirs, char **ret);
