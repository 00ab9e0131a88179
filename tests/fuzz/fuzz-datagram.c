/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for datagram parsing: the input is read as a datagram
 * (encoding detected), as UTF-16LE and as a UTF-8 line.  Whatever parses must
 * format and parse back to the same message in both encodings, byte-stable;
 * a mismatch aborts.  The UTF-8 <-> UTF-16LE conversions must be inverse.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

static bool messages_equal(const WireMessage *a, const WireMessage *b) {
	return a->type == b->type && streq(a->name, b->name) &&
		endpoint_family(&a->endpoint) == endpoint_family(&b->endpoint) &&
		(endpoint_family(&a->endpoint) == 0 || endpoint_equal(&a->endpoint, &b->endpoint)) &&
		streq(a->caps, b->caps) && a->port == b->port && streq(a->reason, b->reason) &&
		streq(a->time, b->time) && a->text_len == b->text_len &&
		(a->text_len == 0 || memcmp(a->text, b->text, a->text_len) == 0);
}

/* @m parsed: format, parse and format again in both encodings. */
static void round_trip(const WireMessage *m) {
	for (WireEncoding enc = 0; enc < _WIRE_ENCODING_MAX; enc++) {
		_cleanup_(wire_message_done) WireMessage again = {};
		_cleanup_free_ uint8_t *out = NULL, *out2 = NULL;
		size_t len, len2;
		WireEncoding detected;
		int r;

		r = wire_format_datagram(m, enc, &out, &len);
		/* A talk as long as a datagram in one encoding may not fit the other. */
		if (r == -EMSGSIZE && m->type == WIRE_TYPE_TALK && m->text_len > WIRE_TEXT_MAX) {
			continue;
		}
		check(r == 0);
		check(wire_detect_encoding(out, len) == enc);
		check(wire_parse_datagram(out, len, &again, &detected) == 0);
		check(detected == enc);
		check(!again.misspelled);
		check(messages_equal(m, &again));
		check(wire_format_datagram(&again, enc, &out2, &len2) == 0);
		check(len == len2 && memcmp(out, out2, len) == 0);
	}
}

static void parse_text(const char *text, size_t len) {
	_cleanup_(wire_message_done) WireMessage m = {};

	if (wire_parse_line(text, len, &m) == 0) {
		round_trip(&m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	_cleanup_(wire_message_done) WireMessage m = {};
	WireEncoding enc;

	if (size > WIRE_DATAGRAM_MAX + 1) {
		return 0;
	}

	/* As a datagram, encoding detected. */
	if (wire_parse_datagram(data, size, &m, &enc) == 0) {
		round_trip(&m);
	}

	/* As UTF-16LE whatever the detection says. */
	{
		_cleanup_free_ char *text = NULL;
		_cleanup_free_ uint8_t *back = NULL;
		size_t len, back_len;

		if (utf16le_to_utf8(data, size, &text, &len) == 0) {
			check(utf8_is_valid(text, len));
			check(text[len] == 0);
			parse_text(text, len);
			/* Back to UTF-16LE: the input without its BOM (unless a
			 * second U+FEFF follows, which is then stripped too). */
			check(utf8_to_utf16le(text, len, &back, &back_len) == 0);
			if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
				check(back_len == size - 4 && memcmp(back, data + 4, back_len) == 0);
			} else if (size >= 2 && data[0] == 0xFF && data[1] == 0xFE) {
				check(back_len == size - 2 && memcmp(back, data + 2, back_len) == 0);
			} else {
				check(back_len == size && memcmp(back, data, size) == 0);
			}
		}
	}

	/* As a UTF-8 line. */
	parse_text((const char *) data, size);
	{
		_cleanup_free_ uint8_t *u16 = NULL;
		_cleanup_free_ char *back = NULL;
		size_t len, back_len;
		bool valid = utf8_is_valid((const char *) data, size);

		check(valid == (utf8_to_utf16le((const char *) data, size, &u16, &len) == 0));
		if (valid) {
			const char *want = (const char *) data;
			size_t want_len = size;

			/* One UTF-8 BOM is stripped on the way in, a following
			 * U+FEFF on the way back. */
			for (int i = 0; i < 2 && want_len >= 3 && memcmp(want, "\xEF\xBB\xBF", 3) == 0; i++) {
				want += 3;
				want_len -= 3;
			}
			check(utf16le_to_utf8(u16, len, &back, &back_len) == 0);
			check(back_len == want_len && memcmp(back, want, want_len) == 0);
		}
	}
	return 0;
}
