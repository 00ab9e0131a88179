/* SPDX-License-Identifier: MIT */
/*
 * The state directory and the coordinator's key.  Nothing here is kept:
 * main.c asks once at start and owns the Identity it gets.  Does not log
 * above debug; the caller says what failed.
 */

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/macro.h"
#include "coordinator/state.h"

int state_dir_default(char **ret) {
	const char *e;
	char *p;

	assert(ret);

	/* systemd sets a colon-separated list, one per StateDirectory= path. */
	e = getenv("STATE_DIRECTORY");
	if (e && e[0] != '\0' && e[0] != ':') {
		p = strndup(e, strcspn(e, ":"));
	} else {
		p = strdup(STATE_DIR_DEFAULT);
	}
	if (!p) {
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

/* Creates @dir with mode 0700 unless it exists; its parent must exist. */
static int state_dir_ensure(const char *dir) {
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	if (stat(dir, &st) < 0) {
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		return -ENOTDIR;
	}
	return 0;
}

int coordinator_identity_load(const char *state_dir, Identity **ret) {
	_cleanup_(identity_freep) Identity *id = NULL;
	_cleanup_free_ char *path = NULL;
	bool created = false;
	int r;

	assert(state_dir);
	assert(ret);

	r = state_dir_ensure(state_dir);
	if (r < 0) {
		log_debug_errno(r, "state: failed to create '%s': %m", state_dir);
		return r;
	}
	if (asprintf(&path, "%s/%s", state_dir, STATE_KEY_FILE) < 0) {
		return -ENOMEM;
	}
	r = identity_crypto_init();
	if (r < 0) {
		return r;
	}
	r = identity_load_or_create(path, &id, &created);
	if (r < 0) {
		log_debug_errno(r, "state: failed to load or create '%s': %m", path);
		return r;
	}

	*ret = TAKE_PTR(id);
	return created ? 1 : 0;
}
