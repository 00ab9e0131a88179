/* SPDX-License-Identifier: MIT */

/* Reading a whole file descriptor with a bound, for config files and stdin. */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "common/macro.h"

int read_fd_max(int fd, size_t max, char **ret, size_t *ret_len) {
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	buf = malloc(max + 1);
	if (!buf) {
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		if (n == 0) {
			break;
		}
		len += (size_t) n;
		if (len > max) {
			return -EFBIG;
		}
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}
