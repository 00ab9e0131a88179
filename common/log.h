/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging to stderr with the "<N>" syslog level prefixes that
 * systemd-journald understands.  Each log_*_errno() variant sets errno so that
 * %m works and returns -abs(error), so a caller can write
 * "return log_error_errno(r, "Failed to …: %m");".
 */

#include <stdbool.h>
#include <syslog.h>

#include "common/macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);

/* Prefix messages with "<N>" (on by default when stderr is the journal). */
void log_set_prefix_level(bool b);

/* A name put in front of every line when stderr is a terminal. */
void log_set_program_name(const char *name);

int log_internal(int level, int error, const char *file, int line, const char *func,
		const char *format, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                             \
	({                                                                            \
		int _level_ = (level), _e_ = (error);                                 \
		(log_get_max_level() >= _level_)                                      \
			? log_internal(_level_, _e_, __FILE__, __LINE__, __func__,    \
				  __VA_ARGS__)                                        \
			: -abs(_e_);                                                  \
	})

#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* Logs "Out of memory." at error level and returns -ENOMEM. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
