/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of the TCP framing in common/wire.c: unsigned LEB128, the seed's
 * list frames byte for byte, and the incremental decoder fed in every possible
 * split, with every rejection (overlong, non-minimal, oversize, bad UTF-8).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "common/wire.h"
#include "tests/helpers/test-hex.h"

static const struct {
	uint64_t value;
	const char *hex;
} leb128_table[] = {
	{ 0, "00" },
	{ 1, "01" },
	{ 43, "2b" },
	{ 127, "7f" },
	{ 128, "80 01" },
	{ 157, "9d 01" },
	{ 300, "ac 02" },
	{ 16383, "ff 7f" },
	{ 16384, "80 80 01" },
	{ WIRE_FRAME_MAX, "80 80 80 08" },
	{ UINT32_MAX, "ff ff ff ff 0f" },
	{ UINT64_MAX, "ff ff ff ff ff ff ff ff ff 01" },
};

static void test_frame_leb128_encode(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(leb128_table); i++) {
		_cleanup_free_ uint8_t *want = NULL;
		uint8_t out[WIRE_LEB128_MAX];
		size_t n, k;

		want = unhex(leb128_table[i].hex, &n);
		k = leb128_encode(leb128_table[i].value, out);
		assert_int_equal(k, n);
		assert_memory_equal(out, want, n);
	}
}

/* The seed's list frames (reference-wire.md) and one that needs two length bytes. */
static const struct {
	const char *text;
	const char *hex_prefix; /* the frame's first bytes */
	const char *hex;        /* the whole frame, when the seed gives it */
} frame_vectors[] = {
	{ "alice,127.0.0.1:9000;bob,127.0.0.1:9001;end", "2b", NULL },
	{ "张三,127.0.0.1:9000;end", "19",
		"19 e5 bc a0 e4 b8 89 2c 31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 30 3b 65 6e 64" },
	{ "alice,127.0.0.1:9000;bob,127.0.0.1:9001;carol,127.0.0.2:9002,native1;"
	  "david,[::1]:9003,native1;erin-b12,192.168.1.20:40000;franklin,10.0.0.1:65535,native1;end",
		"9d 01", NULL },
	{ "end", "03 65 6e 64", "03 65 6e 64" },
	{ "", "00", "00" },
	{ "hello,alice,native1", "13", NULL },
};

static void test_frame_encode_vectors(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(frame_vectors); i++) {
		const char *text = frame_vectors[i].text;
		_cleanup_free_ uint8_t *frame = NULL, *prefix = NULL;
		size_t len, plen;

		assert_int_equal(wire_frame_encode(text, strlen(text), &frame, &len), 0);
		prefix = unhex(frame_vectors[i].hex_prefix, &plen);
		assert_memory_equal(frame, prefix, plen);
		if (frame_vectors[i].hex) {
			_cleanup_free_ uint8_t *whole = unhex(frame_vectors[i].hex, &plen);

			assert_int_equal(len, plen);
			assert_memory_equal(frame, whole, len);
		}
		/* The payload follows the length, unchanged. */
		assert_int_equal(len, strlen(text) + (strlen(text) >= 128 ? 2 : 1));
		assert_memory_equal(frame + len - strlen(text), text, strlen(text));
	}
}

static void test_frame_reference_list_frame_decodes(void **state) {
	/* The seed's CJK list frame, byte for byte, through decoder and list parser. */
	static const char hex[] = "19 e5 bc a0 e4 b8 89 2c 31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 30 "
				  "3b 65 6e 64";
	_cleanup_free_ WireListEntry *entries = NULL;
	_cleanup_free_ uint8_t *bytes = NULL;
	_cleanup_free_ char *text = NULL;
	char ep[ENDPOINT_STRLEN];
	WireFrameDecoder d;
	size_t n, used, len, k;

	bytes = unhex(hex, &n);
	wire_frame_decoder_init(&d, 0);
	assert_int_equal(wire_frame_decoder_feed(&d, bytes, n, &used), 1);
	assert_int_equal(used, n);
	assert_int_equal(wire_frame_decoder_take(&d, &text, &len), 0);
	wire_frame_decoder_done(&d);

	assert_int_equal(len, 0x19);
	assert_int_equal(wire_parse_list(text, len, &entries, &k), 0);
	assert_int_equal(k, 1);
	assert_string_equal(entries[0].name, "张三");
	assert_string_equal(endpoint_format(&entries[0].endpoint, ep), "127.0.0.1:9000");
	assert_string_equal(entries[0].caps, "");
}

static void test_frame_encode_rejects(void **state) {
	uint8_t *out = NULL;
	size_t len;

	assert_int_equal(wire_frame_encode("\xff", 1, &out, &len), -EILSEQ);
	assert_int_equal(wire_frame_encode("a\0b", 3, &out, &len), -EILSEQ);
	assert_int_equal(wire_frame_encode("x", WIRE_FRAME_MAX + 1, &out, &len), -EMSGSIZE);
	assert_null(out);
}

/* All frame vectors, one after the other, as one stream. */
static uint8_t *build_stream(size_t *ret_len) {
	uint8_t *stream = NULL;
	size_t len = 0;

	for (size_t i = 0; i < ELEMENTSOF(frame_vectors); i++) {
		_cleanup_free_ uint8_t *frame = NULL;
		const char *text = frame_vectors[i].text;
		size_t flen;

		assert_int_equal(wire_frame_encode(text, strlen(text), &frame, &flen), 0);
		stream = realloc(stream, len + flen);
		assert_non_null(stream);
		memcpy(stream + len, frame, flen);
		len += flen;
	}
	*ret_len = len;
	return stream;
}

/* Feeds @n bytes, taking every frame that completes; returns how many were taken. */
static size_t feed_all(WireFrameDecoder *d, const uint8_t *buf, size_t n, size_t taken) {
	while (n > 0) {
		size_t used;
		int r;

		r = wire_frame_decoder_feed(d, buf, n, &used);
		assert_true(r >= 0);
		assert_true(used <= n);
		buf += used;
		n -= used;
		if (r == 1) {
			_cleanup_free_ char *frame = NULL;
			size_t len;

			assert_int_equal(wire_frame_decoder_take(d, &frame, &len), 0);
			assert_true(taken < ELEMENTSOF(frame_vectors));
			assert_int_equal(len, strlen(frame_vectors[taken].text));
			assert_string_equal(frame, frame_vectors[taken].text);
			taken++;
		} else {
			assert_int_equal(n, 0); /* all consumed */
		}
	}
	return taken;
}

/* Three pieces; a == 0 covers every split into two pieces. */
static void test_frame_decoder_every_split(void **state) {
	_cleanup_free_ uint8_t *stream = NULL;
	size_t len;

	stream = build_stream(&len);
	for (size_t a = 0; a <= len; a += 3) {
		for (size_t b = a; b <= len; b++) {
			WireFrameDecoder d;
			size_t taken;

			wire_frame_decoder_init(&d, 0);
			taken = feed_all(&d, stream, a, 0);
			taken = feed_all(&d, stream + a, b - a, taken);
			taken = feed_all(&d, stream + b, len - b, taken);
			assert_int_equal(taken, ELEMENTSOF(frame_vectors));
			wire_frame_decoder_done(&d);
		}
	}
}

static void test_frame_decoder_byte_by_byte(void **state) {
	_cleanup_free_ uint8_t *stream = NULL;
	WireFrameDecoder d;
	size_t len, taken = 0;

	stream = build_stream(&len);
	wire_frame_decoder_init(&d, 0);
	for (size_t i = 0; i < len; i++) {
		taken = feed_all(&d, stream + i, 1, taken);
	}
	assert_int_equal(taken, ELEMENTSOF(frame_vectors));
	wire_frame_decoder_done(&d);
}

static void test_frame_decoder_holds_complete_frame(void **state) {
	static const uint8_t two[] = { 0x01, 'a', 0x01, 'b' };
	_cleanup_free_ char *frame = NULL;
	WireFrameDecoder d;
	size_t used, len;

	wire_frame_decoder_init(&d, 0);
	assert_int_equal(wire_frame_decoder_take(&d, &frame, &len), -ENODATA);
	assert_int_equal(wire_frame_decoder_feed(&d, two, sizeof(two), &used), 1);
	assert_int_equal(used, 2);
	/* Until it is taken, the frame stays and nothing more is consumed. */
	assert_int_equal(wire_frame_decoder_feed(&d, two + 2, 2, &used), 1);
	assert_int_equal(used, 0);
	assert_int_equal(wire_frame_decoder_take(&d, &frame, &len), 0);
	assert_string_equal(frame, "a");
	assert_int_equal(wire_frame_decoder_take(&d, &frame, &len), -ENODATA);
	wire_frame_decoder_done(&d);
}

static void test_frame_decoder_zero_length(void **state) {
	static const uint8_t zero[] = { 0x00 };
	_cleanup_free_ char *frame = NULL;
	WireFrameDecoder d;
	size_t used, len;

	wire_frame_decoder_init(&d, 0);
	assert_int_equal(wire_frame_decoder_feed(&d, zero, 1, &used), 1);
	assert_int_equal(used, 1);
	assert_int_equal(wire_frame_decoder_take(&d, &frame, &len), 0);
	assert_non_null(frame);
	assert_string_equal(frame, "");
	assert_int_equal(len, 0);
	wire_frame_decoder_done(&d);
}

static const struct {
	const char *hex;
	size_t max;
	int error;
	const char *rule;
} decoder_rejects[] = {
	{ "80 00", 0, -EBADMSG, "non-minimal LEB128 (trailing zero group)" },
	{ "ab 80 00", 0, -EBADMSG, "non-minimal LEB128 after a value" },
	{ "80 80 80 80 80 80 80 80 80 80 00", 0, -EBADMSG, "LEB128 of 11 bytes" },
	{ "80 80 80 80 80 80 80 80 80 02", 0, -EBADMSG, "LEB128 overflowing 64 bits" },
	{ "80 80 80 80 80 80 80 80 80 80 80", 0, -EBADMSG, "endless LEB128" },
	{ "81 80 80 08", 0, -EMSGSIZE, "length WIRE_FRAME_MAX + 1" },
	{ "ff ff ff ff 0f", 0, -EMSGSIZE, "length 4 GiB" },
	{ "ff ff ff ff ff ff ff ff ff 01", 0, -EMSGSIZE, "length 2^64-1" },
	{ "81 80 80 90", 0, -EMSGSIZE, "over the cap before the length is complete" },
	{ "05 68 65 6c 6c 6f", 4, -EMSGSIZE, "length over a caller's cap" },
	{ "01 ff", 0, -EILSEQ, "invalid UTF-8 payload" },
	{ "02 c3 28", 0, -EILSEQ, "broken 2-byte sequence" },
	{ "03 61 00 62", 0, -EILSEQ, "NUL inside the payload" },
	{ "03 ed a0 80", 0, -EILSEQ, "surrogate in the payload" },
};

static void test_frame_decoder_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(decoder_rejects); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		WireFrameDecoder d;
		size_t n, used;
		int r;

		b = unhex(decoder_rejects[i].hex, &n);

		/* Whole, then byte by byte: the same error either way. */
		for (int bytewise = 0; bytewise <= 1; bytewise++) {
			wire_frame_decoder_init(&d, decoder_rejects[i].max);
			r = 0;
			for (size_t k = 0; k < n && r == 0; k += bytewise ? 1 : n) {
				r = wire_frame_decoder_feed(&d, b + k, bytewise ? 1 : n, &used);
			}
			if (r != decoder_rejects[i].error) {
				fail_msg("%s: [%s]%s returned %d, expected %d", decoder_rejects[i].rule,
						decoder_rejects[i].hex, bytewise ? " byte by byte" : "", r,
						decoder_rejects[i].error);
			}
			/* Nothing was allocated for an oversized frame. */
			assert_null(d.buf);
			/* And the decoder stays failed. */
			assert_int_equal(wire_frame_decoder_feed(&d, (const uint8_t *) "\x01" "a", 2, &used),
					decoder_rejects[i].error);
			wire_frame_decoder_done(&d);
		}
	}
}

static void test_frame_decoder_buffers_what_arrived(void **state) {
	/* A frame announcing the maximum length allocates only what came. */
	static const uint8_t head[] = { 0x80, 0x80, 0x80, 0x08, 'a', 'b' };
	WireFrameDecoder d;
	size_t used;

	wire_frame_decoder_init(&d, WIRE_FRAME_MAX);
	assert_int_equal(wire_frame_decoder_feed(&d, head, sizeof(head), &used), 0);
	assert_int_equal(used, sizeof(head));
	assert_int_equal(d.length, WIRE_FRAME_MAX);
	assert_int_equal(d.filled, 2);
	assert_true(d.allocated <= 4096);
	wire_frame_decoder_done(&d);
	assert_null(d.buf);
}

static void test_frame_decoder_max_clamped(void **state) {
	WireFrameDecoder d;

	wire_frame_decoder_init(&d, 0);
	assert_int_equal(d.max, WIRE_FRAME_MAX);
	wire_frame_decoder_init(&d, SIZE_MAX);
	assert_int_equal(d.max, WIRE_FRAME_MAX);
	wire_frame_decoder_init(&d, 100);
	assert_int_equal(d.max, 100);
}

static void test_frame_decoder_large_frame(void **state) {
	/* A frame near the cap, fed in odd-sized pieces, arrives intact. */
	const size_t size = 1024 * 1024 + 3;
	_cleanup_free_ char *text = NULL, *got = NULL;
	_cleanup_free_ uint8_t *frame = NULL;
	WireFrameDecoder d;
	size_t len, off = 0, got_len;
	int r = 0;

	text = malloc(size);
	assert_non_null(text);
	for (size_t i = 0; i < size; i++) {
		text[i] = (char) ('a' + i % 26);
	}
	assert_int_equal(wire_frame_encode(text, size, &frame, &len), 0);

	wire_frame_decoder_init(&d, 0);
	while (off < len) {
		size_t piece = MIN((size_t) 1499, len - off), used;

		r = wire_frame_decoder_feed(&d, frame + off, piece, &used);
		assert_true(r >= 0);
		off += used;
		if (r == 1) {
			break;
		}
	}
	assert_int_equal(r, 1);
	assert_int_equal(off, len);
	assert_int_equal(wire_frame_decoder_take(&d, &got, &got_len), 0);
	assert_int_equal(got_len, size);
	assert_memory_equal(got, text, size);
	wire_frame_decoder_done(&d);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_leb128_encode),
		cmocka_unit_test(test_frame_encode_vectors),
		cmocka_unit_test(test_frame_reference_list_frame_decodes),
		cmocka_unit_test(test_frame_encode_rejects),
		cmocka_unit_test(test_frame_decoder_every_split),
		cmocka_unit_test(test_frame_decoder_byte_by_byte),
		cmocka_unit_test(test_frame_decoder_holds_complete_frame),
		cmocka_unit_test(test_frame_decoder_zero_length),
		cmocka_unit_test(test_frame_decoder_rejects),
		cmocka_unit_test(test_frame_decoder_buffers_what_arrived),
		cmocka_unit_test(test_frame_decoder_max_clamped),
		cmocka_unit_test(test_frame_decoder_large_frame),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
