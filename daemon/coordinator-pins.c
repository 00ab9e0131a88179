/* SPDX-License-Identifier: MIT */

/*
 * The pinned coordinator keys (known-coordinators), owned by the
 * composition (daemon.c) for the daemon's life and used by the account.
 * The file is read once, at start, and written whole, atomically, after
 * each change: the pins are few (one per coordinator the user logs in
 * to).  A pending key lives in memory only: it is what a coordinator
 * offered instead of its pinned key, kept so that the user can accept that
 * very key by its fingerprint, and never any other.
 *
 * A line that does not parse fails the load: dropping it would trust a
 * new key of that coordinator on first use, which is what a pin is there
 * to prevent.
 */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "common/log.h"
#include "daemon/coordinator-pins.h"
#include "daemon/xdg.h"

typedef struct Pin {
	char *coordinator;
	uint8_t key[IDENTITY_PUBLIC_KEY_SIZE];
	bool has_pending;
	uint8_t pending[IDENTITY_PUBLIC_KEY_SIZE];
	char pending_fingerprint[IDENTITY_FINGERPRINT_SIZE];
} Pin;

struct CoordinatorPins {
	char *path;
	Pin *pins;
	size_t n_pins;
	size_t n_allocated;
};

int coordinator_pins_default_path(bool mkdirs, char **ret) {
	return xdg_build_path(XDG_DIR_DATA, "known-coordinators", mkdirs, ret);
}

CoordinatorPins *coordinator_pins_free(CoordinatorPins *p) {
	if (!p) {
		return NULL;
	}
	for (size_t i = 0; i < p->n_pins; i++) {
		free(p->pins[i].coordinator);
	}
	free(p->pins);
	free(p->path);
	return mfree(p);
}

_printf_(3, 4) static int set_error(char **ret_error, int r, const char *format, ...) {
	va_list ap;

	if (ret_error) {
		char *s = NULL;

		va_start(ap, format);
		if (vasprintf(&s, format, ap) >= 0) {
			free(*ret_error);
			*ret_error = s;
		}
		va_end(ap);
	}
	return r;
}

/* A word of printable ASCII without blanks: the file's lines split at one space. */
static bool coordinator_is_valid(const char *s, size_t n) {
	if (n == 0 || n > COORDINATOR_PINS_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isgraph((unsigned char) s[i])) {
			return false;
		}
	}
	return true;
}

static Pin *pins_find(const CoordinatorPins *p, const char *coordinator) {
	for (size_t i = 0; i < p->n_pins; i++) {
		if (streq(p->pins[i].coordinator, coordinator)) {
			return &p->pins[i];
		}
	}
	return NULL;
}

static int pins_add(CoordinatorPins *p, const char *coordinator, size_t n,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]) {
	Pin *pin;

	if (p->n_pins >= COORDINATOR_PINS_MAX) {
		return -E2BIG;
	}
	if (GREEDY_REALLOC(p->pins, p->n_allocated, p->n_pins + 1) < 0) {
		return -ENOMEM;
	}
	pin = &p->pins[p->n_pins];
	*pin = (Pin) {};
	pin->coordinator = strndup(coordinator, n);
	if (!pin->coordinator) {
		return -ENOMEM;
	}
	memcpy(pin->key, key, IDENTITY_PUBLIC_KEY_SIZE);
	p->n_pins++;
	return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		return -EISDIR;
	}
	return read_fd_max(fd, COORDINATOR_PINS_FILE_MAX, ret, ret_len);
}

/* One line, without its "\n". */
static int parse_line(CoordinatorPins *p, const char *line, size_t len, unsigned number,
		char **ret_error) {
	uint8_t key[IDENTITY_PUBLIC_KEY_SIZE];
	char hex[IDENTITY_KEY_HEX_SIZE];
	_cleanup_free_ char *name = NULL;
	const char *space;
	size_t n;
	int r;

	space = memchr(line, ' ', len);
	n = space ? (size_t) (space - line) : len;
	if (!space || !coordinator_is_valid(line, n) ||
			len - n - 1 != IDENTITY_KEY_HEX_SIZE - 1) {
		return set_error(ret_error, -EBADMSG, "'%s' line %u: expected 'COORDINATOR KEY', "
				"KEY 64 lowercase hex digits", p->path, number);
	}
	memcpy(hex, space + 1, IDENTITY_KEY_HEX_SIZE - 1);
	hex[IDENTITY_KEY_HEX_SIZE - 1] = '\0';
	if (identity_key_from_hex(hex, key) < 0) {
		return set_error(ret_error, -EBADMSG, "'%s' line %u: the key is not 64 lowercase "
				"hex digits", p->path, number);
	}
	name = strndup(line, n);
	if (!name) {
		return -ENOMEM;
	}
	if (pins_find(p, name)) {
		return set_error(ret_error, -EBADMSG, "'%s' line %u: coordinator '%s' has a "
				"line already", p->path, number, name);
	}
	r = pins_add(p, name, n, key);
	if (r == -E2BIG) {
		return set_error(ret_error, r, "'%s': more than %u coordinators", p->path,
				COORDINATOR_PINS_MAX);
	}
	return r;
}

int coordinator_pins_load(const char *path, CoordinatorPins **ret, char **ret_error) {
	_cleanup_(coordinator_pins_freep) CoordinatorPins *p = NULL;
	_cleanup_free_ char *text = NULL;
	unsigned number = 0;
	size_t len = 0;
	int r;

	assert(path);
	assert(ret);

	p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->path = strdup(path);
	if (!p->path) {
		return -ENOMEM;
	}

	r = read_file(path, &text, &len);
	if (r == -ENOENT) {
		*ret = TAKE_PTR(p);
		return 0;
	}
	if (r == -EFBIG) {
		return set_error(ret_error, r, "'%s' is larger than %u bytes", path,
				COORDINATOR_PINS_FILE_MAX);
	}
	if (r < 0) {
		return set_error(ret_error, r, "Failed to read '%s': %s", path, strerror(-r));
	}
	if (memchr(text, '\0', len)) {
		return set_error(ret_error, -EBADMSG, "'%s' is not a text file", path);
	}

	for (const char *line = text; line < text + len;) {
		const char *end = memchr(line, '\n', (size_t) (text + len - line));
		size_t n = end ? (size_t) (end - line) : (size_t) (text + len - line);

		number++;
		r = parse_line(p, line, n, number, ret_error);
		if (r < 0) {
			return r;
		}
		line += n + 1;
	}

	*ret = TAKE_PTR(p);
	return 0;
}

/* Replaces @path with @data, mode 0600: temporary file, fsync, rename, fsync of the directory. */
static int write_file_atomic(const char *path, const char *data, size_t len) {
	_cleanup_free_ char *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -EBADF, dfd = -EBADF;
	int r = 0;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		return -ENOMEM;
	}
	dir = strdup(path);
	if (!dir) {
		return -ENOMEM;
	}

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fchmod(fd, 0600) < 0) {
		r = -errno;
	}
	while (r >= 0 && len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			r = -errno;
			break;
		}
		data += n;
		len -= (size_t) n;
	}
	if (r >= 0 && fsync(fd) < 0) {
		r = -errno;
	}
	if (r >= 0 && rename(tmp, path) < 0) {
		r = -errno;
	}
	if (r < 0) {
		(void) unlink(tmp);
		return r;
	}

	/* Make the rename itself durable. */
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		return -errno;
	}
	if (fsync(dfd) < 0) {
		return -errno;
	}
	return 0;
}

static int pins_save(const CoordinatorPins *p) {
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	if (!f) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n_pins; i++) {
		char hex[IDENTITY_KEY_HEX_SIZE];

		identity_key_to_hex(p->pins[i].key, hex);
		(void) fprintf(f, "%s %s\n", p->pins[i].coordinator, hex);
	}
	if (fclose(f) != 0) {
		return -ENOMEM;
	}
	return write_file_atomic(p->path, text, len);
}

int coordinator_pins_check(CoordinatorPins *p, const char *coordinator,
		const uint8_t key[static IDENTITY_PUBLIC_KEY_SIZE]) {
	Pin *pin;
	int r;

	assert(p);
	assert(coordinator);
	assert(key);

	if (!coordinator_is_valid(coordinator, strlen(coordinator))) {
		return -EINVAL;
	}
	pin = pins_find(p, coordinator);
	if (pin && memcmp(pin->key, key, IDENTITY_PUBLIC_KEY_SIZE) == 0) {
		/* Back to its known key: what it offered in between is no longer on offer. */
		pin->has_pending = false;
		return 0;
	}
	if (pin) {
		memcpy(pin->pending, key, IDENTITY_PUBLIC_KEY_SIZE);
		identity_fingerprint(key, pin->pending_fingerprint);
		pin->has_pending = true;
		log_debug("Coordinator '%s' offered a key other than its pinned one.", coordinator);
		return -EKEYREJECTED;
	}

	r = pins_add(p, coordinator, strlen(coordinator), key);
	if (r < 0) {
		return r;
	}
	r = pins_save(p);
	if (r < 0) {
		/* Not pinned unless saved: memory says what the file says. */
		free(p->pins[--p->n_pins].coordinator);
		return r;
	}
	return 1;
}

int coordinator_pins_trust(CoordinatorPins *p, const char *coordinator,
		const char *fingerprint) {
	char want[IDENTITY_FINGERPRINT_SIZE], pinned[IDENTITY_FINGERPRINT_SIZE];
	uint8_t old[IDENTITY_PUBLIC_KEY_SIZE];
	Pin *pin;
	int r;

	assert(p);
	assert(coordinator);
	assert(fingerprint);

	if (!coordinator_is_valid(coordinator, strlen(coordinator))) {
		return -EINVAL;
	}
	r = identity_fingerprint_parse(fingerprint, want);
	if (r < 0) {
		return r;
	}
	pin = pins_find(p, coordinator);
	if (!pin) {
		return -ENOKEY;
	}
	identity_fingerprint(pin->key, pinned);
	if (streq(want, pinned)) {
		return 0;
	}
	if (!pin->has_pending) {
		return -ENOKEY;
	}
	if (!streq(want, pin->pending_fingerprint)) {
		return -EKEYREJECTED;
	}

	memcpy(old, pin->key, IDENTITY_PUBLIC_KEY_SIZE);
	memcpy(pin->key, pin->pending, IDENTITY_PUBLIC_KEY_SIZE);
	r = pins_save(p);
	if (r < 0) {
		memcpy(pin->key, old, IDENTITY_PUBLIC_KEY_SIZE);
		return r;
	}
	pin->has_pending = false;
	return 0;
}

bool coordinator_pins_has(const CoordinatorPins *p, const char *coordinator) {
	return !!pins_find(p, coordinator);
}

const char *coordinator_pins_get_pending_fingerprint(const CoordinatorPins *p,
		const char *coordinator) {
	const Pin *pin;

	assert(p);
	assert(coordinator);

	pin = pins_find(p, coordinator);
	return pin && pin->has_pending ? pin->pending_fingerprint : NULL;
}
