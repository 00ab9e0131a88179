/* SPDX-License-Identifier: MIT */
/*
 * The user's settings file.  A Config holds the values in memory (defaults
 * until config_load() reads the file) and the path it came from; the daemon
 * owns one for its lifetime.  Reading never changes a Config half-way: the
 * file is parsed into a scratch Config, which replaces the values only when
 * every key is valid.  Writing goes through a temporary file and rename(),
 * so a crash leaves either the old file or the new one.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/fd-util.h"
#include "common/json-util.h"
#include "common/macro.h"
#include "common/wire.h"
#include "daemon/config.h"
#include "daemon/xdg.h"

#define DEFAULT_COORDINATOR "localhost:7474"
#define DEFAULT_BIND "0.0.0.0:0"
#define DEFAULT_EXPIRY_USEC (7ULL * 24 * 3600 * USEC_PER_SEC)
#define HOST_MAX 253

typedef enum KeyType {
	KEY_STRING,
	KEY_BOOL,
	KEY_DURATION, /* a JSON integer (seconds) or a string */
} KeyType;

typedef struct Key {
	const char *name;
	KeyType type;
	size_t offset; /* of the char* or bool; the duration is a uint64_t */
	int (*validate)(const char *text);
} Key;

static int validate_username(const char *s) {
	return s[0] == '\0' || wire_name_is_valid(s, strlen(s)) ? 0 : -EINVAL;
}

static bool host_char_ok(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '-';
}

/* HOST[:PORT]: a host name, an IPv4 address or "[IPv6]"; "" means localhost. */
static int validate_coordinator(const char *s) {
	const char *port = NULL, *end;
	uint16_t p;

	if (strlen(s) > HOST_MAX + 7) {
		return -EINVAL;
	}
	if (s[0] == '[') {
		char buf[ENDPOINT_STRLEN + 8];
		Endpoint e;

		end = strchr(s, ']');
		if (!end || (end[1] != '\0' && end[1] != ':') ||
				(size_t) (end - s) + 1 >= ENDPOINT_STRLEN) {
			return -EINVAL;
		}
		/* Check the address with a dummy port. */
		(void) snprintf(buf, sizeof(buf), "%.*s:1", (int) (end - s + 1), s);
		if (endpoint_parse(buf, strlen(buf), &e) < 0 || e.sa.sa_family != AF_INET6) {
			return -EINVAL;
		}
		port = end[1] == ':' ? end + 2 : NULL;
	} else {
		end = strchr(s, ':');
		if (end) {
			port = end + 1;
		} else {
			end = s + strlen(s);
		}
		for (const char *c = s; c < end; c++) {
			if (!host_char_ok(*c)) {
				return -EINVAL;
			}
		}
		if (end == s && port) {
			return -EINVAL;
		}
	}
	if (port && endpoint_parse_port(port, strlen(port), &p) < 0) {
		return -EINVAL;
	}
	return 0;
}

static int validate_bind(const char *s) {
	Endpoint e;

	return endpoint_parse_bind(s, &e);
}

static int parse_bool(const char *s, bool *ret) {
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (streq(s, yes[i])) {
			*ret = true;
			return 0;
		}
		if (streq(s, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int validate_bool(const char *s) {
	bool b;

	return parse_bool(s, &b);
}

static const struct {
	char suffix;
	uint64_t usec;
} duration_units[] = {
	/* Largest first: config_get() writes the largest unit that divides. */
	{ 'd', 24ULL * 3600 * USEC_PER_SEC },
	{ 'h', 3600ULL * USEC_PER_SEC },
	{ 'm', 60ULL * USEC_PER_SEC },
	{ 's', USEC_PER_SEC },
};

int config_parse_duration(const char *s, uint64_t *ret_usec) {
	uint64_t n = 0, unit = USEC_PER_SEC;
	const char *p = s;

	assert(s);

	if (*p < '0' || *p > '9') {
		return -EINVAL;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > UINT32_MAX) {
			return -ERANGE;
		}
		n = n * 10 + (uint64_t) (*p - '0');
	}
	if (*p != '\0') {
		size_t i;

		for (i = 0; i < ELEMENTSOF(duration_units); i++) {
			if (*p == duration_units[i].suffix) {
				break;
			}
		}
		if (i == ELEMENTSOF(duration_units) || p[1] != '\0') {
			return -EINVAL;
		}
		unit = duration_units[i].usec;
	}
	if (n > CONFIG_EXPIRY_MAX_USEC / unit || n * unit < CONFIG_EXPIRY_MIN_USEC ||
			n * unit > CONFIG_EXPIRY_MAX_USEC) {
		return -ERANGE;
	}

	*ret_usec = n * unit;
	return 0;
}

static int validate_duration(const char *s) {
	uint64_t u;

	return config_parse_duration(s, &u);
}

static const Key keys[] = {
	{ "username", KEY_STRING, offsetof(Config, username), validate_username },
	{ "coordinator", KEY_STRING, offsetof(Config, coordinator), validate_coordinator },
	{ "bind", KEY_STRING, offsetof(Config, bind), validate_bind },
	{ "autologin", KEY_BOOL, offsetof(Config, autologin), validate_bool },
	{ "notifications", KEY_BOOL, offsetof(Config, notifications), validate_bool },
	{ "outbox-expiry", KEY_DURATION, offsetof(Config, outbox_expiry_usec), validate_duration },
};

const char *const *config_keys(void) {
	static const char *names[ELEMENTSOF(keys) + 1];

	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		names[i] = keys[i].name;
	}
	return names;
}

static const Key *key_find(const char *name) {
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		if (streq(keys[i].name, name)) {
			return &keys[i];
		}
	}
	return NULL;
}

/* Stores valid @text in @c's field for @k. */
static int key_store(const Key *k, Config *c, const char *text) {
	void *field = (uint8_t *) c + k->offset;
	int r;

	r = k->validate(text);
	if (r < 0) {
		return r;
	}

	switch (k->type) {
	case KEY_STRING:
		r = free_and_strdup((char **) field, text);
		if (r < 0) {
			return r;
		}
		if (k->offset == offsetof(Config, bind)) {
			return endpoint_parse_bind(text, &c->bind_address);
		}
		return 0;
	case KEY_BOOL:
		return parse_bool(text, (bool *) field);
	case KEY_DURATION:
		return config_parse_duration(text, (uint64_t *) field);
	}
	assert(false);
	return -EINVAL;
}

static char *format_duration(uint64_t usec) {
	char *s = NULL;

	for (size_t i = 0; i < ELEMENTSOF(duration_units); i++) {
		if (usec % duration_units[i].usec == 0) {
			if (asprintf(&s, "%" PRIu64 "%c", usec / duration_units[i].usec,
					    duration_units[i].suffix) < 0) {
				return NULL;
			}
			return s;
		}
	}
	/* Sub-second values cannot be set; print whole seconds. */
	if (asprintf(&s, "%" PRIu64 "s", usec / USEC_PER_SEC) < 0) {
		return NULL;
	}
	return s;
}

static char *key_format(const Key *k, const Config *c) {
	const void *field = (const uint8_t *) c + k->offset;

	switch (k->type) {
	case KEY_STRING:
		return strdup(strempty(*(char *const *) field));
	case KEY_BOOL:
		return strdup(*(const bool *) field ? "true" : "false");
	case KEY_DURATION:
		return format_duration(*(const uint64_t *) field);
	}
	assert(false);
	return NULL;
}

int config_get(const Config *c, const char *key, char **ret) {
	const Key *k;
	char *s;

	assert(c);
	assert(key);
	assert(ret);

	k = key_find(key);
	if (!k) {
		return -ENOKEY;
	}
	s = key_format(k, c);
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int config_default_path(bool mkdirs, char **ret) {
	return xdg_build_path(XDG_DIR_CONFIG, "config.json", mkdirs, ret);
}

/* Frees the values, not the path. */
static void config_done_values(Config *c) {
	c->username = mfree(c->username);
	c->coordinator = mfree(c->coordinator);
	c->bind = mfree(c->bind);
}

Config *config_free(Config *c) {
	if (!c) {
		return NULL;
	}
	config_done_values(c);
	free(c->path);
	return mfree(c);
}

int config_new(const char *path, Config **ret) {
	_cleanup_(config_freep) Config *c = NULL;
	int r;

	assert(path);
	assert(ret);

	c = calloc(1, sizeof(Config));
	if (!c) {
		return -ENOMEM;
	}
	c->path = strdup(path);
	c->username = strdup("");
	c->coordinator = strdup(DEFAULT_COORDINATOR);
	c->bind = strdup(DEFAULT_BIND);
	if (!c->path || !c->username || !c->coordinator || !c->bind) {
		return -ENOMEM;
	}
	r = endpoint_parse_bind(c->bind, &c->bind_address);
	if (r < 0) {
		return r;
	}
	c->autologin = false;
	c->notifications = true;
	c->outbox_expiry_usec = DEFAULT_EXPIRY_USEC;

	*ret = TAKE_PTR(c);
	return 0;
}

/* Moves @from's values into @to; @from is left without values. */
static void config_move_values(Config *to, Config *from) {
	config_done_values(to);
	to->username = TAKE_PTR(from->username);
	to->coordinator = TAKE_PTR(from->coordinator);
	to->bind = TAKE_PTR(from->bind);
	to->bind_address = from->bind_address;
	to->autologin = from->autologin;
	to->notifications = from->notifications;
	to->outbox_expiry_usec = from->outbox_expiry_usec;
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

static const char *json_type_article(KeyType t) {
	switch (t) {
	case KEY_STRING:
		return "a string";
	case KEY_BOOL:
		return "true or false";
	case KEY_DURATION:
		return "a number of seconds or a string like \"7d\"";
	}
	return "?";
}

/* The text form of JSON value @v for key @k, or -EINVAL for a wrong type. */
static int json_to_text(const Key *k, json_object *v, char **ret) {
	char *s = NULL;

	switch (k->type) {
	case KEY_STRING:
		if (!json_object_is_type(v, json_type_string)) {
			return -EINVAL;
		}
		s = strdup(json_object_get_string(v));
		break;
	case KEY_BOOL:
		if (!json_object_is_type(v, json_type_boolean)) {
			return -EINVAL;
		}
		s = strdup(json_object_get_boolean(v) ? "true" : "false");
		break;
	case KEY_DURATION:
		if (json_object_is_type(v, json_type_string)) {
			s = strdup(json_object_get_string(v));
		} else if (json_object_is_type(v, json_type_int)) {
			int64_t n = json_object_get_int64(v);

			if (n < 0 || asprintf(&s, "%" PRId64, n) < 0) {
				return n < 0 ? -ERANGE : -ENOMEM;
			}
		} else {
			return -EINVAL;
		}
		break;
	}
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
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
	if ((uint64_t) st.st_size > CONFIG_FILE_MAX) {
		return -EFBIG;
	}
	return read_fd_max(fd, CONFIG_FILE_MAX, ret, ret_len);
}

/* Parses the file's text into @c, which starts from the defaults. */
static int config_parse(Config *c, const char *text, size_t len, char **ret_error) {
	_cleanup_(json_object_putp) json_object *root = NULL;
	const char *what = NULL;
	int r;

	/* Plain JSON: no trailing commas or garbage after the object. */
	r = json_parse_strict(text, len, 0, &root, &what);
	if (r == -ENOMEM) {
		return r;
	}
	if (r < 0) {
		return set_error(ret_error, -EBADMSG, "%s: not valid JSON: %s", c->path, what);
	}
	if (!json_object_is_type(root, json_type_object)) {
		return set_error(ret_error, -EBADMSG, "%s: expected a JSON object", c->path);
	}

	json_object_object_foreach(root, name, value) {
		_cleanup_free_ char *text_value = NULL;
		const Key *k = key_find(name);

		if (!k) {
			return set_error(ret_error, -ENOKEY, "%s: unknown key '%s'", c->path, name);
		}
		r = json_to_text(k, value, &text_value);
		if (r == -ENOMEM) {
			return r;
		}
		if (r < 0) {
			return set_error(ret_error, -EINVAL, "%s: key '%s' must be %s", c->path,
					name, json_type_article(k->type));
		}
		r = key_store(k, c, text_value);
		if (r == -ENOMEM) {
			return r;
		}
		if (r < 0) {
			return set_error(ret_error, -EINVAL, "%s: key '%s': invalid value '%.64s'",
					c->path, name, text_value);
		}
	}

	return 0;
}

/* Reads the file into a fresh Config of defaults; 0 when there is none. */
static int config_read(const char *path, Config **ret, char **ret_error) {
	_cleanup_(config_freep) Config *scratch = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	r = config_new(path, &scratch);
	if (r < 0) {
		return r;
	}
	r = read_file(path, &text, &len);
	if (r == -ENOENT) {
		*ret = TAKE_PTR(scratch);
		return 0;
	}
	if (r == -EFBIG) {
		return set_error(ret_error, r, "%s: larger than %u bytes", path, CONFIG_FILE_MAX);
	}
	if (r < 0) {
		return set_error(ret_error, r, "%s: %s", path, strerror(-r));
	}
	r = config_parse(scratch, text, len, ret_error);
	if (r < 0) {
		return r;
	}

	*ret = TAKE_PTR(scratch);
	return 1;
}

int config_load(Config *c, char **ret_error) {
	_cleanup_(config_freep) Config *scratch = NULL;
	int r;

	assert(c);

	r = config_read(c->path, &scratch, ret_error);
	if (r < 0) {
		return r;
	}
	config_move_values(c, scratch);
	return r;
}

static int config_to_json(const Config *c, char **ret) {
	_cleanup_(json_object_putp) json_object *root = NULL;
	const char *s;
	char *dup;
	int r;

	root = json_object_new_object();
	if (!root) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		_cleanup_free_ char *text = key_format(&keys[i], c);
		json_object *v;

		if (!text) {
			return -ENOMEM;
		}
		v = keys[i].type == KEY_BOOL ? json_object_new_boolean(streq(text, "true"))
					    : json_object_new_string(text);
		r = json_add(root, keys[i].name, v);
		if (r < 0) {
			return r;
		}
	}

	s = json_object_to_json_string_ext(root,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB | JSON_C_TO_STRING_SPACED |
			JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s || asprintf(&dup, "%s\n", s) < 0) {
		return -ENOMEM;
	}
	*ret = dup;
	return 0;
}

static int write_all(int fd, const char *data, size_t len) {
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		data += n;
		len -= (size_t) n;
	}
	return 0;
}

/* Replaces @path with @data: temporary file, fsync, rename, fsync of the directory. */
static int write_file_atomic(const char *path, const char *data) {
	_cleanup_free_ char *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -EBADF, dfd = -EBADF;
	int r;

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
	r = write_all(fd, data, strlen(data));
	if (r >= 0 && fchmod(fd, 0600) < 0) {
		r = -errno;
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

int config_set(Config *c, const char *key, const char *value, char **ret_error) {
	_cleanup_(config_freep) Config *scratch = NULL;
	_cleanup_free_ char *json = NULL;
	const Key *k;
	int r;

	assert(c);
	assert(key);
	assert(value);

	k = key_find(key);
	if (!k) {
		return set_error(ret_error, -ENOKEY, "Unknown key '%s'", key);
	}

	r = config_read(c->path, &scratch, ret_error);
	if (r < 0) {
		return r;
	}
	r = key_store(k, scratch, value);
	if (r == -ENOMEM) {
		return r;
	}
	if (r < 0) {
		return set_error(ret_error, -EINVAL, "Invalid value '%.64s' for key '%s'", value,
				key);
	}

	r = config_to_json(scratch, &json);
	if (r < 0) {
		return r;
	}
	r = write_file_atomic(c->path, json);
	if (r < 0) {
		return set_error(ret_error, r, "Failed to write %s: %s", c->path, strerror(-r));
	}

	config_move_values(c, scratch);
	return 0;
}
