/* SPDX-License-Identifier: MIT */

/*
 * Reading the text of a message (or of a search) from the command line or
 * from stdin.  The caller owns the string it gets back; nothing is kept
 * here.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "common/macro.h"
#include "frontends/cli/message-text.h"

static int read_stdin_text(char **ret) {
	_cleanup_free_ char *buf = NULL;
	size_t n;
	int r;

	r = read_fd_max(STDIN_FILENO, MESSAGE_TEXT_STDIN_MAX, &buf, &n);
	if (r == -EFBIG) {
		return -EMSGSIZE;
	}
	if (r < 0) {
		return r;
	}
	if (n > 0 && buf[n - 1] == '\n') {
		buf[--n] = '\0';
	}
	if (strlen(buf) != n) {
		/* D-Bus strings cannot hold NUL. */
		return -EILSEQ;
	}
	*ret = TAKE_PTR(buf);
	return 0;
}

int read_message_text(int argc, char *argv[], char **ret) {
	char *buf = NULL;
	size_t size = 0;
	FILE *f;

	if (argc == 1 && streq(argv[0], "-")) {
		return read_stdin_text(ret);
	}

	f = open_memstream(&buf, &size);
	if (!f) {
		return -ENOMEM;
	}
	for (int i = 0; i < argc; i++) {
		(void) fprintf(f, "%s%s", i > 0 ? " " : "", argv[i]);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}
