/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Cleanup helpers shared by every program: _cleanup_ attributes, ownership
 * transfer (TAKE_PTR/TAKE_FD) and a few small utilities.  Nothing here
 * allocates or logs.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)

/*
 * Makes room for @need elements in @array, which has room for @allocated:
 * at least doubles, so filling an array one element at a time is linear.
 * Evaluates to 0 or -ENOMEM (then @array is unchanged).
 */
#define GREEDY_REALLOC(array, allocated, need)                                         \
	({                                                                             \
		int _r = 0;                                                            \
		if ((need) > (allocated)) {                                            \
			size_t _n = MAX((size_t) (need), MAX((allocated) * 2, (size_t) 16)); \
			__typeof__(array) _a = reallocarray((array), _n, sizeof(*(array))); \
			if (_a) {                                                      \
				(array) = _a;                                          \
				(allocated) = _n;                                      \
			} else {                                                       \
				_r = -ENOMEM;                                          \
			}                                                              \
		}                                                                      \
		_r;                                                                    \
	})

/* Returns the value of the pointer and sets it to NULL: ownership moves. */
#define TAKE_PTR(p)                                   \
	({                                            \
		__typeof__(p) *_pp_ = &(p);           \
		__typeof__(p) _p_ = *_pp_;            \
		*_pp_ = NULL;                         \
		_p_;                                  \
	})

#define TAKE_FD(fd)                                   \
	({                                            \
		int *_fdp_ = &(fd);                   \
		int _fd_ = *_fdp_;                    \
		*_fdp_ = -EBADF;                      \
		_fd_;                                 \
	})

/* Generates name##p(type *p), which calls func(*p) when *p is set. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)       \
	static inline void func##p(type *p) {         \
		if (*p) {                             \
			*p = func(*p);                \
		}                                     \
	}

static inline void freep(void *p) {
	free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
	if (fd >= 0) {
		int saved = errno;

		(void) close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd) {
	*fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void json_object_putp(json_object **p) {
	if (*p) {
		(void) json_object_put(*p);
		*p = NULL;
	}
}

static inline void *mfree(void *p) {
	free(p);
	return NULL;
}

static inline bool streq(const char *a, const char *b) {
	return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
	if (!a || !b) {
		return a == b;
	}
	return streq(a, b);
}

/* table[i] of an enum's string table with n entries; NULL when i is out of range. */
static inline const char *string_table_lookup(const char *const *table, size_t n, int i) {
	if (i < 0 || (size_t) i >= n) {
		return NULL;
	}
	return table[i];
}

/* The index of s in an enum's string table with n entries; -EINVAL when absent. */
static inline int string_table_find(const char *const *table, size_t n, const char *s) {
	if (!s) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (table[i] && streq(table[i], s)) {
			return (int) i;
		}
	}
	return -EINVAL;
}

static inline const char *strempty(const char *s) {
	return s ? s : "";
}

/* Replaces *p with a copy of s (or NULL); returns -ENOMEM on failure. */
static inline int free_and_strdup(char **p, const char *s) {
	char *t = NULL;

	if (s) {
		t = strdup(s);
		if (!t) {
			return -ENOMEM;
		}
	}
	free(*p);
	*p = t;
	return 0;
}
