/* SPDX-License-Identifier: MIT */

/*
 * The long-term identity: an Ed25519 key pair, its X25519 form for Noise,
 * the key file and the fingerprint.  An Identity is one heap object owned
 * by its caller; identity_free() wipes it.  The secret key lives only in
 * that object (locked in memory when the system lets us) and, briefly, in
 * the buffers that read or write the key file, which are wiped too.
 * Nothing here logs.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/identity.h"

#define FILE_HEADER "p2pchat-identity-v1\n"
#define FILE_HEADER_LEN (sizeof(FILE_HEADER) - 1)
#define FILE_SIZE (FILE_HEADER_LEN + 2 * crypto_sign_SECRETKEYBYTES + 1)
#define FINGERPRINT_CONTEXT "p2pchat-fingerprint-v1"
#define FINGERPRINT_DIGITS (IDENTITY_FINGERPRINT_GROUPS * 5)

struct Identity {
	uint8_t sk[crypto_sign_SECRETKEYBYTES]; /* seed, then pk */
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t dh_sk[IDENTITY_DH_KEY_SIZE];
	uint8_t dh_pk[IDENTITY_DH_KEY_SIZE];
	bool locked;
};

/* The text of a key file, and one byte more to tell a longer file. */
typedef struct KeyText {
	char data[FILE_SIZE + 1];
} KeyText;

static void key_text_wipe(KeyText *t) {
	sodium_memzero(t, sizeof(*t));
}

int identity_crypto_init(void) {
	/* sodium_init() is idempotent and thread safe: 1 means "already". */
	if (sodium_init() < 0) {
		return -EIO;
	}
	return 0;
}

Identity *identity_free(Identity *id) {
	if (!id) {
		return NULL;
	}
	if (id->locked) {
		/* Wipes too. */
		(void) sodium_munlock(id, sizeof(*id));
	} else {
		sodium_memzero(id, sizeof(*id));
	}
	return mfree(id);
}

static Identity *identity_alloc(void) {
	Identity *id;

	id = calloc(1, sizeof(*id));
	if (!id) {
		return NULL;
	}
	/* Keeps the secret out of swap where allowed (RLIMIT_MEMLOCK); optional. */
	id->locked = sodium_mlock(id, sizeof(*id)) == 0;
	return id;
}

/* Fills in the public and X25519 halves from id->sk; -EBADMSG when they do not fit. */
static int identity_complete(Identity *id) {
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	int r = 0;

	(void) crypto_sign_seed_keypair(pk, sk, id->sk);
	if (sodium_memcmp(sk, id->sk, sizeof(sk)) != 0) {
		r = -EBADMSG;
	} else if (crypto_sign_ed25519_pk_to_curve25519(id->dh_pk, pk) != 0 ||
			crypto_sign_ed25519_sk_to_curve25519(id->dh_sk, id->sk) != 0) {
		r = -EBADMSG;
	} else {
		memcpy(id->pk, pk, sizeof(pk));
	}
	sodium_memzero(sk, sizeof(sk));
	return r;
}

int identity_generate(Identity **ret) {
	_cleanup_(identity_freep) Identity *id = NULL;
	int r;

	assert(ret);

	r = identity_crypto_init();
	if (r < 0) {
		return r;
	}
	id = identity_alloc();
	if (!id) {
		return -ENOMEM;
	}
	(void) crypto_sign_keypair(id->pk, id->sk);
	r = identity_complete(id);
	if (r < 0) {
		return -EIO; /* a fresh key pair always converts */
	}
	*ret = TAKE_PTR(id);
	return 0;
}

static int hex_value(char c) {
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -EINVAL;
}

/* Exactly 2 * @size lowercase hex digits from @s into @ret. */
static int unhex_lower(const char *s, size_t size, uint8_t *ret) {
	for (size_t i = 0; i < size; i++) {
		int hi = hex_value(s[2 * i]), lo;

		if (hi < 0) {
			return -EINVAL;
		}
		lo = hex_value(s[2 * i + 1]);
		if (lo < 0) {
			return -EINVAL;
		}
		ret[i] = (uint8_t) (hi << 4 | lo);
	}
	return 0;
}

int identity_load(const char *path, Identity **ret) {
	_cleanup_(identity_freep) Identity *id = NULL;
	_cleanup_(key_text_wipe) KeyText buf = {};
	_cleanup_close_ int fd = -EBADF;
	size_t len = 0;
	int r;

	assert(path);
	assert(ret);

	r = identity_crypto_init();
	if (r < 0) {
		return r;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return -errno;
	}
	while (len < sizeof(buf.data)) {
		ssize_t n = read(fd, buf.data + len, sizeof(buf.data) - len);

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
	}

	if (len != FILE_SIZE || memcmp(buf.data, FILE_HEADER, FILE_HEADER_LEN) != 0 ||
			buf.data[FILE_SIZE - 1] != '\n') {
		return -EBADMSG;
	}
	id = identity_alloc();
	if (!id) {
		return -ENOMEM;
	}
	r = unhex_lower(buf.data + FILE_HEADER_LEN, sizeof(id->sk), id->sk);
	if (r < 0) {
		return -EBADMSG;
	}
	r = identity_complete(id);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(id);
	return 0;
}

static int write_all(int fd, const char *p, size_t len) {
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

static int fsync_parent_dir(const char *path) {
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int fd = -EBADF;
	char *slash;

	dir = strdup(path);
	if (!dir) {
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (!slash) {
		free(dir);
		dir = strdup(".");
		if (!dir) {
			return -ENOMEM;
		}
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fsync(fd) < 0) {
		return -errno;
	}
	return 0;
}

/*
 * Writes @id to a new temporary file next to @path and renames it over
 * @path; with @noreplace, an existing @path is left alone (-EEXIST).
 */
static int identity_write(const Identity *id, const char *path, bool noreplace) {
	_cleanup_(key_text_wipe) KeyText text = {};
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	memcpy(text.data, FILE_HEADER, FILE_HEADER_LEN);
	(void) sodium_bin2hex(text.data + FILE_HEADER_LEN, 2 * sizeof(id->sk) + 1, id->sk,
			sizeof(id->sk));
	text.data[FILE_SIZE - 1] = '\n';

	for (unsigned attempt = 0;; attempt++) {
		uint64_t rnd;

		randombytes_buf(&rnd, sizeof(rnd));
		tmp = mfree(tmp);
		if (asprintf(&tmp, "%s.tmp-%016" PRIx64, path, rnd) < 0) {
			tmp = NULL;
			return -ENOMEM;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd >= 0) {
			break;
		}
		if (errno != EEXIST || attempt >= 16) {
			return -errno;
		}
	}

	r = write_all(fd, text.data, FILE_SIZE);
	if (r >= 0 && fsync(fd) < 0) {
		r = -errno;
	}
	if (r >= 0) {
		fd = safe_close(fd);
		if (noreplace) {
			r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
			/* Not every file system has it; then it is a plain rename. */
			if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
				r = rename(tmp, path);
			}
		} else {
			r = rename(tmp, path);
		}
		if (r < 0) {
			r = -errno;
		}
	}
	if (r < 0) {
		(void) unlink(tmp);
		return r;
	}
	return fsync_parent_dir(path);
}

int identity_save(const Identity *id, const char *path) {
	assert(id);
	assert(path);

	return identity_write(id, path, false);
}

int identity_load_or_create(const char *path, Identity **ret, bool *ret_created) {
	_cleanup_(identity_freep) Identity *id = NULL;
	bool created = false;
	int r;

	assert(path);
	assert(ret);

	r = identity_load(path, &id);
	if (r == -ENOENT) {
		r = identity_generate(&id);
		if (r < 0) {
			return r;
		}
		r = identity_write(id, path, true);
		if (r == -EEXIST) {
			/* Someone else created it in the meantime: theirs wins. */
			id = identity_free(id);
			r = identity_load(path, &id);
		} else {
			created = r >= 0;
		}
	}
	if (r < 0) {
		return r;
	}
	if (ret_created) {
		*ret_created = created;
	}
	*ret = TAKE_PTR(id);
	return 0;
}

const uint8_t *identity_get_public_key(const Identity *id) {
	assert(id);
	return id->pk;
}

const uint8_t *identity_get_dh_public_key(const Identity *id) {
	assert(id);
	return id->dh_pk;
}

const uint8_t *identity_get_dh_secret_key(const Identity *id) {
	assert(id);
	return id->dh_sk;
}

void identity_get_fingerprint(const Identity *id, char ret[static IDENTITY_FINGERPRINT_SIZE]) {
	assert(id);
	identity_fingerprint(id->pk, ret);
}

void identity_fingerprint(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		char ret[static IDENTITY_FINGERPRINT_SIZE]) {
	uint8_t hash[crypto_generichash_BYTES_MAX];
	crypto_generichash_state st;
	char *p = ret;

	static_assert(crypto_generichash_BYTES_MAX == 64, "BLAKE2b-512");

	(void) crypto_generichash_init(&st, NULL, 0, sizeof(hash));
	(void) crypto_generichash_update(&st, (const uint8_t *) FINGERPRINT_CONTEXT,
			strlen(FINGERPRINT_CONTEXT));
	(void) crypto_generichash_update(&st, pk, IDENTITY_PUBLIC_KEY_SIZE);
	(void) crypto_generichash_final(&st, hash, sizeof(hash));

	/* Two 20-bit groups from every 5 bytes, big-endian. */
	for (size_t i = 0; i < IDENTITY_FINGERPRINT_GROUPS; i += 2) {
		const uint8_t *b = hash + i / 2 * 5;
		uint32_t v[2] = {
			(uint32_t) b[0] << 12 | (uint32_t) b[1] << 4 | b[2] >> 4,
			(uint32_t) (b[2] & 0x0f) << 16 | (uint32_t) b[3] << 8 | b[4],
		};

		for (size_t j = 0; j < 2; j++) {
			p += sprintf(p, "%s%05" PRIu32, p == ret ? "" : " ", v[j] % 100000);
		}
	}
	assert(p == ret + IDENTITY_FINGERPRINT_SIZE - 1);
}

int identity_fingerprint_parse(const char *s, char ret[static IDENTITY_FINGERPRINT_SIZE]) {
	char digits[FINGERPRINT_DIGITS];
	size_t n = 0;
	char *p = ret;

	assert(ret);

	if (!s) {
		return -EINVAL;
	}
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			if (n >= FINGERPRINT_DIGITS) {
				return -EINVAL;
			}
			digits[n++] = *s;
		} else if (*s == ' ' || *s == '\t') {
			/* Only between groups. */
			if (n == 0 || n % 5 != 0 || n >= FINGERPRINT_DIGITS) {
				return -EINVAL;
			}
		} else {
			return -EINVAL;
		}
	}
	if (n != FINGERPRINT_DIGITS) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && i % 5 == 0) {
			*p++ = ' ';
		}
		*p++ = digits[i];
	}
	*p = '\0';
	return 0;
}

int identity_public_key_to_dh(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		uint8_t ret[static IDENTITY_DH_KEY_SIZE]) {
	uint8_t dh[IDENTITY_DH_KEY_SIZE];

	if (crypto_sign_ed25519_pk_to_curve25519(dh, pk) != 0) {
		return -EINVAL;
	}
	memcpy(ret, dh, sizeof(dh));
	return 0;
}

void identity_key_to_hex(const uint8_t pk[static IDENTITY_PUBLIC_KEY_SIZE],
		char ret[static IDENTITY_KEY_HEX_SIZE]) {
	(void) sodium_bin2hex(ret, IDENTITY_KEY_HEX_SIZE, pk, IDENTITY_PUBLIC_KEY_SIZE);
}

int identity_key_from_hex(const char *s, uint8_t ret[static IDENTITY_PUBLIC_KEY_SIZE]) {
	uint8_t pk[IDENTITY_PUBLIC_KEY_SIZE];

	if (!s || strlen(s) != 2 * IDENTITY_PUBLIC_KEY_SIZE) {
		return -EINVAL;
	}
	if (unhex_lower(s, sizeof(pk), pk) < 0) {
		return -EINVAL;
	}
	memcpy(ret, pk, sizeof(pk));
	return 0;
}
