/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/identity.c: the key file (created 0600, loaded back,
 * and never replaced when it is broken), the fingerprint against a fixed
 * vector, its parser, the X25519 form and the hex helpers.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <sodium.h>

#include "common/identity.h"
#include "common/macro.h"
#include "tests/helpers/test-tmpdir.h"

#define HEADER "p2pchat-identity-v1\n"

/*
 * The vector (also in docs/security.md): the Ed25519 key of the seed
 * 00 01 02 ... 1f, and its fingerprint, checked independently with
 * Python's hashlib.blake2b.
 */
#define VECTOR_PUBLIC_KEY "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define VECTOR_FINGERPRINT "38852 50594 46002 67245 87560 38774 87761 89146 29564 46832 12262 01536"

typedef struct Fixture {
	char dir[TEST_TMPDIR_MAX];
	char path[TEST_TMPDIR_MAX + 32];
} Fixture;

static int setup(void **state) {
	Fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	test_tmpdir_new(f->dir, "test-identity", "identity.key", f->path, sizeof(f->path));
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	test_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void file_write(const char *path, const char *text, size_t len) {
	FILE *fp = fopen(path, "we");

	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The file's text, NUL-terminated; *ret_len its length. */
static char *file_read(const char *path, size_t *ret_len) {
	FILE *fp = fopen(path, "re");
	char *buf = calloc(1, 4096);
	size_t len;

	assert_non_null(fp);
	assert_non_null(buf);
	len = fread(buf, 1, 4095, fp);
	assert_int_equal(fclose(fp), 0);
	*ret_len = len;
	return buf;
}

static size_t dir_count(const char *dir) {
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			n++;
		}
	}
	closedir(d);
	return n;
}

static void assert_same_identity(const Identity *a, const Identity *b) {
	assert_memory_equal(identity_get_public_key(a), identity_get_public_key(b),
			IDENTITY_PUBLIC_KEY_SIZE);
	assert_memory_equal(identity_get_dh_public_key(a), identity_get_dh_public_key(b),
			IDENTITY_DH_KEY_SIZE);
	assert_memory_equal(identity_get_dh_secret_key(a), identity_get_dh_secret_key(b),
			IDENTITY_DH_KEY_SIZE);
}

static void test_identity_create_and_load(void **state) {
	Fixture *f = *state;
	_cleanup_(identity_freep) Identity *created = NULL, *loaded = NULL, *again = NULL;
	_cleanup_free_ char *text = NULL;
	uint8_t dh_pub[IDENTITY_DH_KEY_SIZE];
	bool was_created = false;
	struct stat st;
	size_t len;

	assert_int_equal(identity_load(f->path, &loaded), -ENOENT);
	assert_null(loaded);

	assert_int_equal(identity_load_or_create(f->path, &created, &was_created), 0);
	assert_true(was_created);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* No temporary file left behind. */
	assert_int_equal(dir_count(f->dir), 1);

	text = file_read(f->path, &len);
	assert_int_equal(len, strlen(HEADER) + 128 + 1);
	assert_memory_equal(text, HEADER, strlen(HEADER));
	assert_int_equal(text[len - 1], '\n');
	for (size_t i = strlen(HEADER); i < len - 1; i++) {
		assert_non_null(strchr("0123456789abcdef", text[i]));
	}

	assert_int_equal(identity_load(f->path, &loaded), 0);
	assert_same_identity(created, loaded);
	assert_int_equal(identity_load_or_create(f->path, &again, &was_created), 0);
	assert_false(was_created);
	assert_same_identity(created, again);

	/* The X25519 half is the converted Ed25519 one, and a key pair. */
	assert_int_equal(identity_public_key_to_dh(identity_get_public_key(loaded), dh_pub), 0);
	assert_memory_equal(dh_pub, identity_get_dh_public_key(loaded), sizeof(dh_pub));
	assert_int_equal(crypto_scalarmult_base(dh_pub, identity_get_dh_secret_key(loaded)), 0);
	assert_memory_equal(dh_pub, identity_get_dh_public_key(loaded), sizeof(dh_pub));
}

static void test_identity_save(void **state) {
	Fixture *f = *state;
	_cleanup_(identity_freep) Identity *a = NULL, *b = NULL, *loaded = NULL;
	struct stat st;

	assert_int_equal(identity_generate(&a), 0);
	assert_int_equal(identity_generate(&b), 0);
	assert_memory_not_equal(identity_get_public_key(a), identity_get_public_key(b),
			IDENTITY_PUBLIC_KEY_SIZE);
	assert_int_equal(identity_save(a, f->path), 0);
	/* Saving replaces the file. */
	assert_int_equal(identity_save(b, f->path), 0);
	assert_int_equal(identity_load(f->path, &loaded), 0);
	assert_same_identity(b, loaded);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(dir_count(f->dir), 1);

	/* A directory that does not exist: nothing is left anywhere. */
	{
		char path[TEST_TMPDIR_MAX + 64];

		snprintf(path, sizeof(path), "%s/missing/identity.key", f->dir);
		assert_int_equal(identity_save(b, path), -ENOENT);
		assert_int_equal(dir_count(f->dir), 1);
	}
}

static void test_identity_bad_files(void **state) {
	Fixture *f = *state;
	_cleanup_(identity_freep) Identity *id = NULL, *other = NULL;
	_cleanup_free_ char *good = NULL;
	char other_hex[IDENTITY_KEY_HEX_SIZE];
	size_t good_len;
	struct {
		const char *name;
		char text[512];
		size_t len;
	} cases[12] = {};
	size_t n = 0;

	assert_int_equal(identity_generate(&id), 0);
	assert_int_equal(identity_generate(&other), 0);
	assert_int_equal(identity_save(id, f->path), 0);
	good = file_read(f->path, &good_len);
	identity_key_to_hex(identity_get_public_key(other), other_hex);

#define CASE(n_, ...)                                                                         \
	do {                                                                                  \
		cases[n].name = (n_);                                                         \
		cases[n].len = (size_t) snprintf(cases[n].text, sizeof(cases[n].text),        \
				__VA_ARGS__);                                                 \
		n++;                                                                          \
	} while (0)

	CASE("empty", "%s", "");
	CASE("garbage", "%s", "\x01\x02 not a key file at all\n");
	CASE("header only", "%s", HEADER);
	CASE("truncated", "%.*s", (int) good_len - 10, good);
	CASE("no final newline", "%.*s", (int) good_len - 1, good);
	CASE("trailing data", "%s\n", good);
	CASE("wrong header", "p2pchat-identity-v2\n%s", good + strlen(HEADER));
	CASE("CRLF", "%.*s\r\n", (int) good_len - 1, good);
	CASE("uppercase hex", "%s", good);
	for (char *p = cases[n - 1].text + strlen(HEADER); *p != '\n'; p++) {
		if (*p >= 'a' && *p <= 'f') {
			*p = (char) (*p - 'a' + 'A');
		}
	}
	CASE("not hex", "%s", good);
	cases[n - 1].text[strlen(HEADER) + 7] = 'g';
	/* The seed of one key, the public half of another. */
	CASE("mismatched public half", "%.*s%s\n", (int) (strlen(HEADER) + 64), good, other_hex);
#undef CASE

	for (size_t i = 0; i < n; i++) {
		Identity *loaded = NULL;
		_cleanup_free_ char *after = NULL;
		bool created = true;
		size_t after_len;

		file_write(f->path, cases[i].text, cases[i].len);
		assert_int_equal(identity_load(f->path, &loaded), -EBADMSG);
		assert_null(loaded);
		assert_int_equal(identity_load_or_create(f->path, &loaded, &created), -EBADMSG);
		assert_null(loaded);
		assert_true(created);
		/* Left as it was. */
		after = file_read(f->path, &after_len);
		assert_int_equal(after_len, cases[i].len);
		assert_memory_equal(after, cases[i].text, cases[i].len);
		assert_int_equal(dir_count(f->dir), 1);
	}

	/* Sanity: the good text loads. */
	file_write(f->path, good, good_len);
	{
		_cleanup_(identity_freep) Identity *loaded = NULL;

		assert_int_equal(identity_load(f->path, &loaded), 0);
		assert_same_identity(id, loaded);
	}
}

static void test_identity_fingerprint_vector(void **state) {
	uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	char hex[IDENTITY_KEY_HEX_SIZE], fp[IDENTITY_FINGERPRINT_SIZE];

	for (size_t i = 0; i < sizeof(seed); i++) {
		seed[i] = (uint8_t) i;
	}
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
	identity_key_to_hex(pk, hex);
	assert_string_equal(hex, VECTOR_PUBLIC_KEY);
	identity_fingerprint(pk, fp);
	assert_string_equal(fp, VECTOR_FINGERPRINT);
}

static void test_identity_fingerprint_format(void **state) {
	for (size_t k = 0; k < 16; k++) {
		_cleanup_(identity_freep) Identity *id = NULL;
		char fp[IDENTITY_FINGERPRINT_SIZE], again[IDENTITY_FINGERPRINT_SIZE];

		assert_int_equal(identity_generate(&id), 0);
		identity_get_fingerprint(id, fp);
		assert_int_equal(strlen(fp), 12 * 5 + 11);
		for (size_t i = 0; i < strlen(fp); i++) {
			if (i % 6 == 5) {
				assert_int_equal(fp[i], ' ');
			} else {
				assert_true(fp[i] >= '0' && fp[i] <= '9');
			}
		}
		identity_fingerprint(identity_get_public_key(id), again);
		assert_string_equal(fp, again);
		assert_int_equal(identity_fingerprint_parse(fp, again), 0);
		assert_string_equal(fp, again);
	}
}

static void test_identity_fingerprint_parse(void **state) {
#define HEAD "38852 50594 46002 67245 87560 38774 "
#define TAIL "87761 89146 29564 46832 12262 01536"
	static const struct {
		const char *text;
		int r;
	} cases[] = {
		{ VECTOR_FINGERPRINT, 0 },
		{ "388525059446002672458756038774877618914629564468321226201536", 0 },
		{ "38852  50594\t46002 67245 87560 38774 " TAIL, 0 },
		{ "3885250594 46002 67245 87560 38774 " TAIL, 0 },
		/* 59 and 61 digits */
		{ "38852505944600267245875603877487761891462956446832122620153", -EINVAL },
		{ "3885250594460026724587560387748776189146295644683212262015360", -EINVAL },
		{ HEAD "87761 89146 29564 46832 12262 0153", -EINVAL },
		{ HEAD "87761 89146 29564 46832 12262 015360", -EINVAL },
		/* letters, other separators, blanks inside a group or around it all */
		{ HEAD "87761 89146 29564 46832 12262 0153a", -EINVAL },
		{ "a8852 50594 46002 67245 87560 38774 " TAIL, -EINVAL },
		{ "38852-50594-46002-67245-87560-38774-"
				"87761-89146-29564-46832-12262-01536", -EINVAL },
		{ "3885 250594 46002 67245 87560 38774 " TAIL, -EINVAL },
		{ " " VECTOR_FINGERPRINT, -EINVAL },
		{ VECTOR_FINGERPRINT " ", -EINVAL },
		{ "", -EINVAL },
	};
#undef HEAD
#undef TAIL

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char out[IDENTITY_FINGERPRINT_SIZE] = "untouched";

		assert_int_equal(identity_fingerprint_parse(cases[i].text, out), cases[i].r);
		assert_string_equal(out, cases[i].r == 0 ? VECTOR_FINGERPRINT : "untouched");
	}
}

static void test_identity_public_key_to_dh(void **state) {
	/* Small order (the neutral element), and not in the prime-order subgroup. */
	static const uint8_t neutral[IDENTITY_PUBLIC_KEY_SIZE] = { 1 };
	static const uint8_t invalid[IDENTITY_PUBLIC_KEY_SIZE] = { 2 };
	uint8_t expected[IDENTITY_DH_KEY_SIZE], dh[IDENTITY_DH_KEY_SIZE];

	for (size_t k = 0; k < 8; k++) {
		_cleanup_(identity_freep) Identity *id = NULL;

		assert_int_equal(identity_generate(&id), 0);
		assert_int_equal(crypto_sign_ed25519_pk_to_curve25519(expected,
				identity_get_public_key(id)), 0);
		assert_int_equal(identity_public_key_to_dh(identity_get_public_key(id), dh), 0);
		assert_memory_equal(dh, expected, sizeof(dh));
	}

	memset(dh, 0xaa, sizeof(dh));
	memset(expected, 0xaa, sizeof(expected));
	assert_int_equal(identity_public_key_to_dh(neutral, dh), -EINVAL);
	assert_int_equal(identity_public_key_to_dh(invalid, dh), -EINVAL);
	assert_memory_equal(dh, expected, sizeof(dh));
}

static void test_identity_key_hex(void **state) {
	static const char *const bad[] = {
		"",
		/* 63 and 65 digits */
		"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b",
		"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80",
		"03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8",
		"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531bg",
		" 3a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
	};
	uint8_t pk[IDENTITY_PUBLIC_KEY_SIZE], untouched[IDENTITY_PUBLIC_KEY_SIZE];
	char hex[IDENTITY_KEY_HEX_SIZE];

	assert_int_equal(identity_key_from_hex(VECTOR_PUBLIC_KEY, pk), 0);
	identity_key_to_hex(pk, hex);
	assert_string_equal(hex, VECTOR_PUBLIC_KEY);
	assert_int_equal(pk[0], 0x03);
	assert_int_equal(pk[31], 0xb8);

	memcpy(untouched, pk, sizeof(pk));
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_int_equal(identity_key_from_hex(bad[i], pk), -EINVAL);
		assert_memory_equal(pk, untouched, sizeof(pk));
	}
	assert_int_equal(identity_key_from_hex(NULL, pk), -EINVAL);
}

static int group_setup(void **state) {
	return identity_crypto_init();
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_create_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_bad_files, setup, teardown),
		cmocka_unit_test(test_identity_fingerprint_vector),
		cmocka_unit_test(test_identity_fingerprint_format),
		cmocka_unit_test(test_identity_fingerprint_parse),
		cmocka_unit_test(test_identity_public_key_to_dh),
		cmocka_unit_test(test_identity_key_hex),
	};

	return cmocka_run_group_tests_name("identity", tests, group_setup, NULL);
}
