/* SPDX-License-Identifier: MIT */
/*
 * XDG base directory lookup.  Stateless: each call reads the environment
 * and returns a freshly allocated path owned by the caller.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "daemon/xdg.h"

static const struct {
	const char *env;
	const char *fallback; /* below $HOME */
} xdg_dirs[_XDG_DIR_MAX] = {
	[XDG_DIR_CONFIG] = { "XDG_CONFIG_HOME", ".config" },
	[XDG_DIR_DATA] = { "XDG_DATA_HOME", ".local/share" },
};

/* mkdir -p with mode 0700 for each created component; existing ones stay. */
static int mkdir_parents(char *path) {
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0') {
			continue;
		}

		char c = *p;

		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*p = c;
			return -errno;
		}
		*p = c;
		if (c == '\0') {
			return 0;
		}
	}
}

int xdg_build_path(XdgDir dir, const char *name, bool mkdirs, char **ret) {
	_cleanup_free_ char *base = NULL, *path = NULL;
	const char *e;
	int r;

	assert(dir >= 0 && dir < _XDG_DIR_MAX);
	assert(name);
	assert(ret);

	e = getenv(xdg_dirs[dir].env);
	if (e && e[0] == '/') {
		r = asprintf(&base, "%s/p2pchat", e);
	} else {
		e = getenv("HOME");
		if (!e || e[0] != '/') {
			return -ENOENT;
		}
		r = asprintf(&base, "%s/%s/p2pchat", e, xdg_dirs[dir].fallback);
	}
	if (r < 0) {
		return -ENOMEM;
	}

	if (mkdirs) {
		r = mkdir_parents(base);
		if (r < 0) {
			return r;
		}
	}

	if (asprintf(&path, "%s/%s", base, name) < 0) {
		return -ENOMEM;
	}

	*ret = TAKE_PTR(path);
	return 0;
}
