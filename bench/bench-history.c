/* SPDX-License-Identifier: MIT */
/*
 * Figures for the message store, on the path the daemon takes: the History
 * opened by history_open() (WAL, synchronous=NORMAL) in batching mode, the
 * incoming messages of a batch written with history_add_incoming() and the
 * batch closed by one history_commit(), the barrier (COMMIT, then one fsync
 * of the WAL), as the daemon's group commit does once per pass of its event
 * loop.  How many messages a pass holds depends on the load, so the figure
 * is printed for batches of 1 (a message alone: one barrier each, what a
 * quiet chat costs), 16, and 256 (the most the daemon gathers before it
 * commits).  Then how long paging and full-text search take on the history
 * those writes left.
 *
 *   bench-history [DIR] [MESSAGES]   (default: see below; 5000 per batch size)
 *
 * The barrier's cost is the disk's: on tmpfs an fsync costs nothing and the
 * add_incoming figures mean little.  Without DIR the database goes to the
 * first of $TMPDIR, the current directory ('meson test --benchmark' runs
 * this in the build tree's bench/) and /var/tmp that is not a tmpfs or a
 * ramfs (statfs()); the output names the directory and its file system.
 */

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/history.h"

#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

static const unsigned batch_sizes[] = { 1, 16, 256 };

static double now_sec(void) {
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The file system @dir is on, by name, and whether its fsync is free. */
static const char *fs_name(const char *dir, bool *ret_memory) {
	static char buf[32];
	struct statfs st;

	*ret_memory = false;
	if (statfs(dir, &st) < 0) {
		return "unknown file system";
	}
	switch ((unsigned long) st.f_type) {
	case TMPFS_MAGIC:
		*ret_memory = true;
		return "tmpfs";
	case RAMFS_MAGIC:
		*ret_memory = true;
		return "ramfs";
	case EXT4_SUPER_MAGIC:
		return "ext2/3/4";
	case XFS_SUPER_MAGIC:
		return "xfs";
	case BTRFS_SUPER_MAGIC:
		return "btrfs";
	case OVERLAYFS_SUPER_MAGIC:
		return "overlayfs";
	case NFS_SUPER_MAGIC:
		return "nfs";
	case F2FS_SUPER_MAGIC:
		return "f2fs";
	default:
		(void) snprintf(buf, sizeof(buf), "file system 0x%lx", (unsigned long) st.f_type);
		return buf;
	}
}

static const char *pick_dir(void) {
	const char *candidates[] = { getenv("TMPDIR"), ".", "/var/tmp" };
	const char *first = NULL;
	bool memory;

	for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
		if (!candidates[i] || !*candidates[i] || access(candidates[i], W_OK) < 0) {
			continue;
		}
		(void) fs_name(candidates[i], &memory);
		if (!memory) {
			return candidates[i];
		}
		if (!first) {
			first = candidates[i];
		}
	}
	return first ? first : ".";
}

/* Stores @n messages from @first on, committing every @batch of them. */
static int add_batched(History *h, unsigned first, unsigned n, unsigned batch) {
	static const char *const peers[] = { "alice", "bob", "carol", "zoë", "小明" };
	char id[40], text[96];
	double t0, t1;
	unsigned commits = 0;
	int r;

	history_set_batching(h, true);
	t0 = now_sec();
	for (unsigned i = first; i < first + n; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		snprintf(text, sizeof(text), "message %u about the weather 今日は晴れです %u", i,
				i * 7919);
		r = history_add_incoming(h, id, peers[i % ELEMENTSOF(peers)], text, i, i);
		if (r != 1) {
			fprintf(stderr, "Failed to add message %u: %s\n", i, strerror(r < 0 ? -r : EEXIST));
			return r < 0 ? r : -EEXIST;
		}
		if ((i - first + 1) % batch == 0 || i + 1 == first + n) {
			r = history_commit(h);
			if (r < 0) {
				fprintf(stderr, "Failed to commit: %s\n", strerror(-r));
				return r;
			}
			commits++;
		}
	}
	t1 = now_sec();
	history_set_batching(h, false);

	printf("add_incoming:  %u messages in batches of %u: %.0f messages/s, "
			"%u commits, %.3f ms per commit\n", n, batch, n / (t1 - t0), commits,
			(t1 - t0) * 1e3 / commits);
	return 0;
}

static int run(const char *base, unsigned n) {
	_cleanup_(history_freep) History *h = NULL;
	char dir[4096], path[4200], shown[PATH_MAX];
	HistoryList l = {};
	double t0, t1;
	unsigned rounds = 200, total = 0;
	const char *fs;
	bool memory;
	int r;

	if ((size_t) snprintf(dir, sizeof(dir), "%s/bench-history-XXXXXX", base) >= sizeof(dir) ||
			!mkdtemp(dir)) {
		fprintf(stderr, "Failed to create a directory in '%s': %m\n", base);
		return -errno;
	}
	fs = fs_name(dir, &memory);
	printf("database:      %s (%s: %s)\n", realpath(dir, shown) ? shown : dir, fs,
			memory ? "in memory, fsync costs nothing, add_incoming means little" :
			"each barrier's fsync goes to its storage");
	snprintf(path, sizeof(path), "%s/history.db", dir);
	r = history_open(path, &h);
	if (r < 0) {
		fprintf(stderr, "Failed to open '%s': %s\n", path, strerror(-r));
		return r;
	}

	for (size_t b = 0; b < ELEMENTSOF(batch_sizes); b++) {
		r = add_batched(h, total, n, batch_sizes[b]);
		if (r < 0) {
			return r;
		}
		total += n;
	}

	t0 = now_sec();
	for (unsigned i = 0; i < rounds; i++) {
		r = history_get(h, "alice", 50, NULL, &l);
		history_list_done(&l);
		if (r < 0) {
			return r;
		}
	}
	t1 = now_sec();
	printf("get 50 newest: %.3f ms each (history of %u messages)\n",
			(t1 - t0) * 1e3 / rounds, total);

	static const struct {
		const char *text, *how;
	} queries[] = {
		{ "weather", "trigram index" },
		{ "晴れです", "trigram index" },
		{ "7919", "trigram index" },
		{ "晴れ", "two characters: LIKE scan" },
	};
	for (size_t q = 0; q < ELEMENTSOF(queries); q++) {
		t0 = now_sec();
		for (unsigned i = 0; i < rounds; i++) {
			r = history_search(h, queries[q].text, 50, &l);
			history_list_done(&l);
			if (r < 0) {
				return r;
			}
		}
		t1 = now_sec();
		printf("search '%s': %.3f ms each (%s)\n", queries[q].text,
				(t1 - t0) * 1e3 / rounds, queries[q].how);
	}

	h = history_free(h);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	return system(path) == 0 ? 0 : -EIO;
}

int main(int argc, char *argv[]) {
	const char *base = argc > 1 && *argv[1] ? argv[1] : pick_dir();
	unsigned n = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 5000;

	if (n == 0) {
		fprintf(stderr, "MESSAGES must be a positive number.\n");
		return EXIT_FAILURE;
	}
	return run(base, n) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
