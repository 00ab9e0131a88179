/* SPDX-License-Identifier: MIT */

/*
 * Process-wide logging state: the maximum level, whether to print the "<N>"
 * prefix and the program name.  Only main() changes it; everything else just
 * calls the log_*() macros.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int max_level = LOG_INFO;
static int prefix_level = -1; /* -1: decide from $JOURNAL_STREAM */
static const char *program_name;

void log_set_max_level(int level) {
	max_level = level;
}

int log_get_max_level(void) {
	return max_level;
}

void log_set_prefix_level(bool b) {
	prefix_level = b;
}

void log_set_program_name(const char *name) {
	program_name = name;
}

static bool want_prefix(void) {
	if (prefix_level < 0) {
		/* systemd sets $JOURNAL_STREAM when stderr goes to the journal. */
		prefix_level = !!getenv("JOURNAL_STREAM") || !isatty(STDERR_FILENO);
	}
	return prefix_level;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
		const char *format, ...) {
	char buf[2048];
	va_list ap;
	int saved = errno;

	if (error != 0) {
		errno = abs(error);
	}

	va_start(ap, format);
	(void) vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);

	if (want_prefix()) {
		(void) fprintf(stderr, "<%d>%s\n", level, buf);
	} else if (program_name) {
		(void) fprintf(stderr, "%s: %s\n", program_name, buf);
	} else {
		(void) fprintf(stderr, "%s\n", buf);
	}

	errno = saved;
	return -abs(error);
}
