/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/*
 * read_fd_max() - read @fd to its end, at most @max bytes.
 *
 * The buffer is NUL-terminated (not counted in @ret_len).  EINTR is retried.
 * Return: 0, -EFBIG when there is more than @max, -ENOMEM, or read()'s
 * -errno.  Nothing is written to @ret on failure.
 */
int read_fd_max(int fd, size_t max, char **ret, size_t *ret_len);
