/* SPDX-License-Identifier: MIT */
/*
 * Figures for the message store: how many incoming messages per second
 * history_add_incoming() commits (each one fsynced: synchronous=FULL), and
 * how long paging and full-text search take on a history of that size.
 *
 *   bench-history [DIR] [MESSAGES]   (default: $TMPDIR or /tmp, 5000)
 *
 * DIR should be on the disk the real history lives on: on tmpfs fsync
 * costs nothing and the first figure means little.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "daemon/history.h"

static double now_sec(void) {
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int run(const char *base, unsigned n) {
	_cleanup_(history_freep) History *h = NULL;
	char dir[4096], path[4200], id[40], text[96];
	static const char *const peers[] = { "alice", "bob", "carol", "zoë", "小明" };
	HistoryList l = {};
	double t0, t1;
	unsigned rounds = 200;
	int r;

	if ((size_t) snprintf(dir, sizeof(dir), "%s/bench-history-XXXXXX", base) >= sizeof(dir) ||
			!mkdtemp(dir)) {
		fprintf(stderr, "Failed to create a directory in '%s': %m\n", base);
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/history.db", dir);
	r = history_open(path, &h);
	if (r < 0) {
		fprintf(stderr, "Failed to open '%s': %s\n", path, strerror(-r));
		return r;
	}

	t0 = now_sec();
	for (unsigned i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		snprintf(text, sizeof(text), "message %u about the weather 今日は晴れです %u", i,
				i * 7919);
		r = history_add_incoming(h, id, peers[i % ELEMENTSOF(peers)], text, i, i);
		if (r != 1) {
			fprintf(stderr, "Failed to add message %u: %s\n", i, strerror(r < 0 ? -r : EEXIST));
			return r < 0 ? r : -EEXIST;
		}
	}
	t1 = now_sec();
	printf("add_incoming:  %u messages, %.0f commits/s, %.3f ms each\n", n, n / (t1 - t0),
			(t1 - t0) * 1e3 / n);

	t0 = now_sec();
	for (unsigned i = 0; i < rounds; i++) {
		r = history_get(h, "alice", 50, NULL, &l);
		history_list_done(&l);
		if (r < 0) {
			return r;
		}
	}
	t1 = now_sec();
	printf("get 50 newest: %.3f ms each\n", (t1 - t0) * 1e3 / rounds);

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
	const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
	unsigned n = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 5000;

	if (n == 0) {
		fprintf(stderr, "MESSAGES must be a positive number.\n");
		return EXIT_FAILURE;
	}
	return run(base ? base : "/tmp", n) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
