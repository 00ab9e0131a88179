/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of common/wire.c: the seed's byte examples
 * (shared/seed/reference-wire.md) parsed and formatted byte for byte, round
 * trips of every message type in both datagram encodings, the field rules,
 * the UTF-8 / UTF-16LE codecs and the roster list.  Every rejection row names
 * the rule it checks.  The LEB128 framing is in test-frame.c.
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

static void assert_bytes_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
	assert_int_equal(a_len, b_len);
	assert_memory_equal(a, b, a_len);
}

static void assert_endpoint_text(const Endpoint *e, const char *text) {
	char buf[ENDPOINT_STRLEN];

	assert_string_equal(endpoint_format(e, buf), text);
}

/* --- The seed's datagrams, byte for byte --- */

static void test_wire_reference_login_datagram(void **state) {
	static const char hex[] = "6c 00 6f 00 67 00 69 00 6e 00 2c 00 61 00 6c 00 69 00 63 00 65 00 "
				  "2c 00 31 00 32 00 37 00 2e 00 30 00 2e 00 30 00 2e 00 31 00 3a 00 "
				  "39 00 30 00 30 00 30 00";
	_cleanup_(wire_message_done) WireMessage m = {};
	_cleanup_free_ uint8_t *bytes = NULL, *out = NULL;
	size_t n, out_len;
	WireEncoding enc;

	bytes = unhex(hex, &n);
	assert_int_equal(n, 52);
	assert_int_equal(wire_detect_encoding(bytes, n), WIRE_ENCODING_UTF16LE);
	assert_int_equal(wire_parse_datagram(bytes, n, &m, &enc), 0);
	assert_int_equal(enc, WIRE_ENCODING_UTF16LE);
	assert_int_equal(m.type, WIRE_TYPE_LOGIN);
	assert_false(m.misspelled);
	assert_string_equal(m.name, "alice");
	assert_endpoint_text(&m.endpoint, "127.0.0.1:9000");
	assert_string_equal(m.caps, "");

	assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &out, &out_len), 0);
	assert_bytes_equal(out, out_len, bytes, n);
}

static void test_wire_reference_accept_datagram(void **state) {
	static const char hex[] = "41 00 63 00 63 00 65 00 70 00 74 00 2c 00 34 00 30 00 31 00 32 00 "
				  "33 00";
	_cleanup_(wire_message_done) WireMessage m = {};
	_cleanup_free_ uint8_t *bytes = NULL, *out = NULL;
	size_t n, out_len;
	WireEncoding enc;

	bytes = unhex(hex, &n);
	assert_int_equal(n, 24);
	assert_int_equal(wire_parse_datagram(bytes, n, &m, &enc), 0);
	assert_int_equal(enc, WIRE_ENCODING_UTF16LE);
	assert_int_equal(m.type, WIRE_TYPE_ACCEPT);
	assert_int_equal(m.port, 40123);

	assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &out, &out_len), 0);
	assert_bytes_equal(out, out_len, bytes, n);
}

static void test_wire_reference_cjk_talk_datagram(void **state) {
	static const char hex[] = "74 00 61 00 6c 00 6b 00 2c 00 39 00 3a 00 30 00 35 00 3a 00 30 00 "
				  "33 00 2c 00 20 5f 09 4e 2c 00 60 4f 7d 59";
	_cleanup_(wire_message_done) WireMessage m = {};
	_cleanup_free_ uint8_t *bytes = NULL, *out = NULL;
	size_t n, out_len;
	WireEncoding enc;

	bytes = unhex(hex, &n);
	assert_int_equal(n, 36);
	assert_int_equal(wire_parse_datagram(bytes, n, &m, &enc), 0);
	assert_int_equal(enc, WIRE_ENCODING_UTF16LE);
	assert_int_equal(m.type, WIRE_TYPE_TALK);
	assert_string_equal(m.time, "9:05:03");
	assert_string_equal(m.name, "张三");
	assert_string_equal(m.text, "你好");
	assert_int_equal(m.text_len, strlen("你好"));

	assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &out, &out_len), 0);
	assert_bytes_equal(out, out_len, bytes, n);
}

/* A KEY field: the public key of the fingerprint test vector (docs/security.md). */
#define KEY_HEX "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

/* --- Round trips of canonical lines, in both encodings --- */

static const char *const canonical_lines[] = {
	"login,alice,127.0.0.1:9000",
	"login,alice,127.0.0.1:9000,native1",
	"login,张三,10.0.0.1:1,native1+e2e.v2",
	"login,bob,[::1]:9001,native1",
	("login,alice,127.0.0.1:9000,native1," KEY_HEX),
	"login,carol,[2001:db8::1]:65535",
	"login,Zhang San,192.168.1.1:40000",
	"logout,alice,127.0.0.1:9000",
	"logout,dave,[fe80::1]:5",
	"Accept,1",
	"Accept,40123",
	"Accept,65535",
	"Reject,name-taken",
	"Reject,bad-endpoint",
	"talk,17:48:46,alice,hello",
	"talk,9:05:03,张三,你好",
	"talk,17:48:46,alice,",
	"talk,17:48:46,alice,a,b,,c,",
	"talk,2026-11-25 17:48:46,bob,line one\nline two\ttab",
	"talk,t,😀emoji,𝄞 outside the BMP 😀",
	"hello,alice,native1",
	"hello,张三,native1+x",
	"welcome,native1",
	"ping",
	"pong",
};

static void assert_messages_equal(const WireMessage *a, const WireMessage *b) {
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->name, b->name);
	assert_int_equal(endpoint_family(&a->endpoint), endpoint_family(&b->endpoint));
	if (endpoint_family(&a->endpoint) != 0) {
		assert_true(endpoint_equal(&a->endpoint, &b->endpoint));
	}
	assert_string_equal(a->caps, b->caps);
	assert_int_equal(a->port, b->port);
	assert_string_equal(a->reason, b->reason);
	assert_string_equal(a->time, b->time);
	assert_int_equal(a->text_len, b->text_len);
	if (a->text_len > 0) {
		assert_memory_equal(a->text, b->text, a->text_len);
	}
}

static void test_wire_line_round_trip(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(canonical_lines); i++) {
		const char *line = canonical_lines[i];
		_cleanup_(wire_message_done) WireMessage m = {};
		_cleanup_free_ char *out = NULL;
		size_t out_len;
		int r;

		r = wire_parse_line(line, strlen(line), &m);
		if (r < 0) {
			fail_msg("parse '%s': %d", line, r);
		}
		assert_int_equal(wire_format_line(&m, &out, &out_len), 0);
		assert_int_equal(out_len, strlen(line));
		assert_string_equal(out, line);
	}
}

static void test_wire_datagram_round_trip_both_encodings(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(canonical_lines); i++) {
		for (WireEncoding enc = 0; enc < _WIRE_ENCODING_MAX; enc++) {
			const char *line = canonical_lines[i];
			_cleanup_(wire_message_done) WireMessage m = {}, m2 = {};
			_cleanup_free_ uint8_t *bytes = NULL, *again = NULL;
			size_t len, again_len;
			WireEncoding detected;

			assert_int_equal(wire_parse_line(line, strlen(line), &m), 0);
			assert_int_equal(wire_format_datagram(&m, enc, &bytes, &len), 0);
			assert_int_equal(wire_detect_encoding(bytes, len), enc);
			assert_int_equal(wire_parse_datagram(bytes, len, &m2, &detected), 0);
			assert_int_equal(detected, enc);
			assert_messages_equal(&m, &m2);
			assert_int_equal(wire_format_datagram(&m2, enc, &again, &again_len), 0);
			assert_bytes_equal(again, again_len, bytes, len);
		}
	}
}

/* Lines that parse but are written differently: the canonical form. */
static const struct {
	const char *in;
	const char *out;
	const char *rule;
} normalised_lines[] = {
	{ "lohout,alice,127.0.0.1:9000", "logout,alice,127.0.0.1:9000", "lohout is read as logout" },
	{ "login,a,[0:0::1]:9,native1", "login,a,[::1]:9,native1", "IPv6 is written canonically" },
	{ "login,a,[2001:DB8::A]:9", "login,a,[2001:db8::a]:9", "IPv6 hex in lower case" },
	{ "hello,a,native1", "hello,a,native1", "identity" },
};

static void test_wire_line_normalises(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(normalised_lines); i++) {
		_cleanup_(wire_message_done) WireMessage m = {};
		_cleanup_free_ char *out = NULL;
		size_t out_len;

		assert_int_equal(wire_parse_line(normalised_lines[i].in, strlen(normalised_lines[i].in), &m), 0);
		assert_int_equal(wire_format_line(&m, &out, &out_len), 0);
		if (!streq(out, normalised_lines[i].out)) {
			fail_msg("%s: '%s' -> '%s'", normalised_lines[i].rule, normalised_lines[i].in, out);
		}
	}
}

static void test_wire_line_lohout_is_misspelled_logout(void **state) {
	_cleanup_(wire_message_done) WireMessage m = {};
	static const char line[] = "lohout,alice,127.0.0.1:9000";

	assert_int_equal(wire_parse_line(line, strlen(line), &m), 0);
	assert_int_equal(m.type, WIRE_TYPE_LOGOUT);
	assert_true(m.misspelled);
	wire_message_done(&m);

	assert_int_equal(wire_parse_line(line + 2, 0, &m), -EBADMSG);
	assert_int_equal(wire_parse_line("logout,alice,127.0.0.1:9000", 27, &m), 0);
	assert_false(m.misspelled);
}

static void test_wire_line_talk_text_keeps_commas(void **state) {
	_cleanup_(wire_message_done) WireMessage m = {};
	static const char line[] = "talk,12:00:00,bob,a, b,,c";

	assert_int_equal(wire_parse_line(line, strlen(line), &m), 0);
	assert_string_equal(m.text, "a, b,,c");
	assert_int_equal(m.text_len, 7);
}

/* --- Rejections: one row per rule --- */

static const struct {
	const char *line;
	int error;
	const char *rule;
} rejected_lines[] = {
	{ "", -EBADMSG, "empty line" },
	{ "hi", -EBADMSG, "unknown type" },
	{ "Login,alice,127.0.0.1:9000", -EBADMSG, "types are case-sensitive" },
	{ "accept,40123", -EBADMSG, "Accept has a capital A" },
	{ "LOGOUT,alice,127.0.0.1:9000", -EBADMSG, "types are case-sensitive (logout)" },
	{ " login,alice,127.0.0.1:9000", -EBADMSG, "no space before the type" },
	{ "login", -EBADMSG, "login without fields" },
	{ "login,alice", -EBADMSG, "login with 2 fields" },
	{ "login,alice,127.0.0.1:9000,native1," KEY_HEX ",x", -EBADMSG, "login with 6 fields" },
	{ "login,alice,127.0.0.1:9000,native1,x", -EINVAL, "KEY not 64 hex digits" },
	{ "login,alice,127.0.0.1:9000,native1,"
	  "03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8", -EINVAL,
	  "KEY in upper case" },
	{ "login,alice,127.0.0.1:9000,native1," KEY_HEX "0", -EINVAL, "KEY of 65 digits" },
	{ "login,alice,127.0.0.1:9000,native1,", -EINVAL, "empty KEY" },
	{ "logout,alice,127.0.0.1:9000,native1," KEY_HEX, -EBADMSG, "logout with a KEY" },
	{ "login,alice,127.0.0.1:9000,", -EINVAL, "login with an empty caps field" },
	{ "login,,127.0.0.1:9000", -EINVAL, "empty name" },
	{ "login,end,127.0.0.1:9000", -EINVAL, "name 'end'" },
	{ "login,a:b,127.0.0.1:9000", -EINVAL, "':' in a name" },
	{ "login,a;b,127.0.0.1:9000", -EINVAL, "';' in a name" },
	{ "login,a\tb,127.0.0.1:9000", -EINVAL, "control character in a name" },
	{ "login,a\x7f,127.0.0.1:9000", -EINVAL, "DEL in a name" },
	{ "login,a\xc2\x85,127.0.0.1:9000", -EINVAL, "C1 control in a name" },
	{ "login, alice,127.0.0.1:9000", -EINVAL, "leading blank in a name" },
	{ "login,alice ,127.0.0.1:9000", -EINVAL, "trailing blank in a name" },
	{ "login,alice\xe3\x80\x80,127.0.0.1:9000", -EINVAL, "trailing ideographic space in a name" },
	{ "login,abcdefghijklmnopqrstuvwxyz0123456,127.0.0.1:9000", -EINVAL, "name of 33 characters" },
	{ "login,alice,127.0.0.1", -EINVAL, "endpoint without port" },
	{ "login,alice,127.0.0.1:0", -EINVAL, "endpoint port 0" },
	{ "login,alice,127.0.0.1:65536", -EINVAL, "endpoint port > 65535" },
	{ "login,alice,127.0.0.01:9000", -EINVAL, "leading zero in an IPv4 octet" },
	{ "login,alice,localhost:9000", -EINVAL, "host names are not endpoints" },
	{ "login,alice,::1:9000", -EINVAL, "IPv6 without brackets" },
	{ "login,alice,127.0.0.1:9000,native 1", -EINVAL, "space in caps" },
	{ "login,alice,127.0.0.1:9000,+native1", -EINVAL, "empty caps token" },
	{ "login,alice,127.0.0.1:9000,a++b", -EINVAL, "empty caps token in the middle" },
	{ "login,alice,127.0.0.1:9000,native1+", -EINVAL, "trailing '+' in caps" },
	{ "logout,alice,127.0.0.1:9000,native1", -EBADMSG, "logout has exactly 3 fields" },
	{ "lohout,alice", -EBADMSG, "lohout with 2 fields" },
	{ "Accept", -EBADMSG, "Accept without a port" },
	{ "Accept,", -EBADMSG, "Accept with an empty port" },
	{ "Accept,0", -EBADMSG, "Accept port 0" },
	{ "Accept,65536", -EBADMSG, "Accept port > 65535" },
	{ "Accept,040123", -EBADMSG, "Accept port with a leading zero" },
	{ "Accept,+4012", -EBADMSG, "Accept port with a sign" },
	{ "Accept,-1", -EBADMSG, "Accept port negative" },
	{ "Accept, 4012", -EBADMSG, "Accept port with a space" },
	{ "Accept,4012 ", -EBADMSG, "Accept port with a trailing space" },
	{ "Accept,0x10", -EBADMSG, "Accept port in hex" },
	{ "Accept,123456", -EBADMSG, "Accept port of 6 digits" },
	{ "Accept,4012,1", -EBADMSG, "Accept with 3 fields" },
	{ "Reject", -EBADMSG, "Reject without reason" },
	{ "Reject,", -EINVAL, "empty reason" },
	{ "Reject,Name-Taken", -EINVAL, "upper case in reason" },
	{ "Reject,name taken", -EINVAL, "space in reason" },
	{ "Reject,a,b", -EBADMSG, "Reject with 3 fields" },
	{ "Reject,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -EINVAL,
		"reason of 65 bytes" },
	{ "talk,12:00:00,alice", -EBADMSG, "talk with 3 fields" },
	{ "talk", -EBADMSG, "talk without fields" },
	{ ",talk,a,b,c", -EBADMSG, "empty type" },
	{ "talk,,alice,hi", -EINVAL, "empty time" },
	{ "talk,12:00:00\t,alice,hi", -EINVAL, "control character in time" },
	{ "talk,123456789012345678901234567890123,alice,hi", -EINVAL, "time of 33 bytes" },
	{ "talk,12:00:00,,hi", -EINVAL, "empty sender" },
	{ "talk,12:00:00,end,hi", -EINVAL, "sender 'end'" },
	{ "talk,12:00:00,a:b,hi", -EINVAL, "':' in sender" },
	{ "talk,12:00:00,alice,\xff", -EILSEQ, "invalid UTF-8 in text" },
	{ "talk,12:00:00,alice,\xc0\xaf", -EILSEQ, "overlong UTF-8 in text" },
	{ "talk,12:00:00,alice,\xed\xa0\x80", -EILSEQ, "UTF-8 surrogate in text" },
	{ "talk,12:00:00,alice,\xf4\x90\x80\x80", -EILSEQ, "code point above U+10FFFF" },
	{ "talk,12:00:00,alice,\xe4\xbd", -EILSEQ, "truncated UTF-8 sequence" },
	{ "login,\xe4\xbd,127.0.0.1:9000", -EILSEQ, "truncated UTF-8 in a name" },
	{ "hello,alice", -EBADMSG, "hello without caps" },
	{ "hello,alice,native1,x", -EBADMSG, "hello with 4 fields" },
	{ "hello,alice,", -EINVAL, "hello with empty caps" },
	{ "hello,end,native1", -EINVAL, "hello with name 'end'" },
	{ "welcome", -EBADMSG, "welcome without caps" },
	{ "welcome,", -EINVAL, "welcome with empty caps" },
	{ "welcome,a,b", -EBADMSG, "welcome with 3 fields" },
	{ "ping,", -EBADMSG, "ping with a field" },
	{ "pong,1", -EBADMSG, "pong with a field" },
	{ "Ping", -EBADMSG, "ping is lower case" },
};

static void test_wire_line_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(rejected_lines); i++) {
		const char *line = rejected_lines[i].line;
		WireMessage m = { .type = _WIRE_TYPE_INVALID };
		int r;

		r = wire_parse_line(line, strlen(line), &m);
		if (r != rejected_lines[i].error) {
			fail_msg("%s: '%s' returned %d, expected %d", rejected_lines[i].rule, line, r,
					rejected_lines[i].error);
		}
		/* Output parameters are written only on success. */
		assert_int_equal(m.type, _WIRE_TYPE_INVALID);
		assert_null(m.text);
	}
}

static void test_wire_line_rejects_nul(void **state) {
	static const char line[] = "talk,12:00:00,alice,a\0b";
	static const char name[] = "login,al\0ce,127.0.0.1:9000";
	WireMessage m = {};

	assert_int_equal(wire_parse_line(line, sizeof(line) - 1, &m), -EILSEQ);
	assert_int_equal(wire_parse_line(name, sizeof(name) - 1, &m), -EILSEQ);
}

static char *repeat(char c, size_t n) {
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

static void test_wire_line_control_limit(void **state) {
	/* A Reject line of exactly WIRE_CONTROL_MAX bytes would need a long
	 * reason; a login with trailing caps shows the limit comes first. */
	_cleanup_free_ char *line = NULL;
	WireMessage m = {};

	line = repeat('a', WIRE_CONTROL_MAX + 1);
	memcpy(line, "login,", 6);
	assert_int_equal(wire_parse_line(line, WIRE_CONTROL_MAX + 1, &m), -EMSGSIZE);
	memcpy(line, "Reject,", 7);
	assert_int_equal(wire_parse_line(line, WIRE_CONTROL_MAX + 1, &m), -EMSGSIZE);
	/* Within the limit the field rule decides. */
	assert_int_equal(wire_parse_line(line, WIRE_CONTROL_MAX, &m), -EINVAL);
}

static void test_wire_line_talk_text_limit(void **state) {
	_cleanup_free_ char *line = NULL;
	_cleanup_(wire_message_done) WireMessage m = {};
	_cleanup_free_ char *out = NULL;
	const size_t head = strlen("talk,12:00:00,alice,");
	size_t out_len;

	line = repeat('x', head + WIRE_TALK_TEXT_MAX + 1);
	memcpy(line, "talk,12:00:00,alice,", head);

	assert_int_equal(wire_parse_line(line, head + WIRE_TALK_TEXT_MAX + 1, &m), -EMSGSIZE);
	assert_int_equal(wire_parse_line(line, head + WIRE_TALK_TEXT_MAX, &m), 0);
	assert_int_equal(m.text_len, WIRE_TALK_TEXT_MAX);
	assert_int_equal(wire_format_line(&m, &out, &out_len), 0);
	assert_int_equal(out_len, head + WIRE_TALK_TEXT_MAX);
	out = mfree(out);
	/* That much ASCII fits no datagram: the datagram codec refuses it. */
	{
		_cleanup_free_ uint8_t *dg = NULL;
		size_t dg_len;

		assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &dg, &dg_len),
				-EMSGSIZE);
	}

	/* The longest text we send, with the longest time and name, fits UTF-16LE. */
	memset(m.time, '9', WIRE_TIME_MAX);
	m.time[WIRE_TIME_MAX] = 0;
	for (size_t i = 0; i < WIRE_NAME_MAX_CHARS; i++) {
		memcpy(m.name + 4 * i, "\xf0\x9f\x98\x80", 4); /* U+1F600: 4 bytes in UTF-16LE too */
	}
	m.name[WIRE_NAME_MAX_BYTES] = 0;
	m.text_len = WIRE_TEXT_MAX;
	{
		_cleanup_free_ uint8_t *dg = NULL;
		size_t dg_len;

		assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &dg, &dg_len), 0);
		assert_true(dg_len <= WIRE_DATAGRAM_MAX);
	}

	m.text_len = WIRE_TALK_TEXT_MAX + 1;
	assert_int_equal(wire_format_line(&m, &out, &out_len), -EMSGSIZE);
	m.text_len = WIRE_TALK_TEXT_MAX;
}

/* A UTF-16LE talk from "dave" at 12:00:00 whose text is @n times U+6EE1 (满). */
static uint8_t *cjk_talk_datagram(size_t n, size_t *ret_len) {
	static const char head[] = "talk,12:00:00,dave,";
	const size_t h = strlen(head);
	uint8_t *dg = malloc(2 * (h + n));

	assert_non_null(dg);
	for (size_t i = 0; i < h; i++) {
		dg[2 * i] = (uint8_t) head[i];
		dg[2 * i + 1] = 0;
	}
	for (size_t i = h; i < h + n; i++) {
		dg[2 * i] = 0xe1;
		dg[2 * i + 1] = 0x6e;
	}
	*ret_len = 2 * (h + n);
	return dg;
}

/*
 * Issue 15: the reference client sends its whole box as one talk.  6000
 * Chinese characters (18,000 bytes of UTF-8) were refused as too long; a
 * talk is now whatever one datagram can carry, up to a full datagram.
 */
static void test_wire_talk_as_long_as_a_datagram(void **state) {
	static const size_t counts[] = { 6000, (WIRE_DATAGRAM_MAX / 2) - 19 };

	for (size_t k = 0; k < ELEMENTSOF(counts); k++) {
		_cleanup_(wire_message_done) WireMessage m = {};
		_cleanup_free_ uint8_t *dg = NULL, *out = NULL;
		size_t n, out_len;

		dg = cjk_talk_datagram(counts[k], &n);
		assert_true(n <= WIRE_DATAGRAM_MAX);
		assert_int_equal(wire_parse_datagram(dg, n, &m, NULL), 0);
		assert_int_equal(m.type, WIRE_TYPE_TALK);
		assert_string_equal(m.name, "dave");
		assert_int_equal(m.text_len, 3 * counts[k]);
		assert_true(m.text_len <= WIRE_TALK_TEXT_MAX);
		assert_memory_equal(m.text, "满满", 6);

		assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF16LE, &out, &out_len), 0);
		assert_bytes_equal(out, out_len, dg, n);
		out = mfree(out);
		/* In UTF-8 the full one is too long for a datagram. */
		assert_int_equal(wire_format_datagram(&m, WIRE_ENCODING_UTF8, &out, &out_len),
				3 * counts[k] + 19 <= WIRE_DATAGRAM_MAX ? 0 : -EMSGSIZE);
	}
}

/* --- Formatting refuses what parsing would refuse --- */

static void test_wire_format_rejects(void **state) {
	WireMessage m;
	char *out = NULL;
	size_t len;

	m = (WireMessage) { .type = WIRE_TYPE_LOGIN };
	strcpy(m.name, "alice");
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* no endpoint */
	assert_int_equal(endpoint_parse("127.0.0.1:9000", 14, &m.endpoint), 0);
	strcpy(m.name, "end");
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* name 'end' */
	strcpy(m.name, "alice");
	strcpy(m.caps, "bad caps");
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* caps */

	m = (WireMessage) { .type = WIRE_TYPE_ACCEPT };
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* port 0 */

	m = (WireMessage) { .type = WIRE_TYPE_REJECT };
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* empty reason */

	m = (WireMessage) { .type = WIRE_TYPE_HELLO };
	strcpy(m.name, "alice");
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* hello needs caps */

	m = (WireMessage) { .type = WIRE_TYPE_WELCOME };
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* welcome needs caps */

	m = (WireMessage) { .type = WIRE_TYPE_TALK, .text = (char *) "\xff", .text_len = 1 };
	strcpy(m.name, "alice");
	strcpy(m.time, "12:00");
	assert_int_equal(wire_format_line(&m, &out, &len), -EILSEQ); /* text */
	m.text = NULL;
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* NULL text, length 1 */
	strcpy(m.time, "12,00");
	m.text_len = 0;
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL); /* ',' in time */

	m = (WireMessage) { .type = _WIRE_TYPE_MAX };
	assert_int_equal(wire_format_line(&m, &out, &len), -EINVAL);
	assert_null(out);
}

/* --- Field validity --- */

static const struct {
	const char *name;
	bool valid;
	const char *rule;
} names[] = {
	{ "alice", true, "ASCII" },
	{ "张三", true, "CJK" },
	{ "Zhang San", true, "inner space" },
	{ "a", true, "one character" },
	{ "abcdefghijklmnopqrstuvwxyz012345", true, "32 characters" },
	{ "张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张", true, "32 CJK characters" },
	{ "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", true,
		"32 four-byte characters (128 bytes)" },
	{ "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", false,
		"33 four-byte characters" },
	{ "张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张张", false, "33 CJK characters" },
	{ "endless", true, "'end' as a prefix" },
	{ "End", true, "'End' is not 'end'" },
	{ "", false, "empty" },
	{ "end", false, "'end'" },
	{ "a,b", false, "','" },
	{ "a;b", false, "';'" },
	{ "a:b", false, "':'" },
	{ "a\nb", false, "C0 control" },
	{ "a\x7f", false, "DEL" },
	{ "a\xc2\x9f", false, "C1 control" },
	{ " a", false, "leading space" },
	{ "a ", false, "trailing space" },
	{ "\xc2\xa0" "a", false, "leading no-break space" },
	{ "a\xe2\x80\x8b", false, "trailing zero-width space" },
	{ "\xef\xbb\xbf" "a", false, "leading BOM" },
	{ "a\xff", false, "invalid UTF-8" },
	{ "a\xc1\x81", false, "overlong UTF-8" },
};

static void test_wire_name_validity(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		if (wire_name_is_valid(names[i].name, strlen(names[i].name)) != names[i].valid) {
			fail_msg("%s: '%s' should be %s", names[i].rule, names[i].name,
					names[i].valid ? "valid" : "invalid");
		}
	}
	assert_false(wire_name_is_valid(NULL, 0));
	assert_false(wire_name_is_valid("a\0b", 3));
}

static const struct {
	const char *caps;
	bool valid;
} caps_table[] = {
	{ "native1", true },
	{ "native1+e2e.v2", true },
	{ "A-Z_a.z+0-9", true },
	{ "", false },
	{ "+", false },
	{ "a+", false },
	{ "+a", false },
	{ "a++b", false },
	{ "a b", false },
	{ "a,b", false },
	{ "a;b", false },
	{ "ü", false },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
};

static void test_wire_caps_validity(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(caps_table); i++) {
		if (wire_caps_is_valid(caps_table[i].caps, strlen(caps_table[i].caps)) != caps_table[i].valid) {
			fail_msg("caps '%s' should be %s", caps_table[i].caps,
					caps_table[i].valid ? "valid" : "invalid");
		}
	}
}

static void test_wire_caps_has_token(void **state) {
	assert_true(wire_caps_has("native1", WIRE_CAPS_NATIVE));
	assert_true(wire_caps_has("x+native1", WIRE_CAPS_NATIVE));
	assert_true(wire_caps_has("native1+x", WIRE_CAPS_NATIVE));
	assert_true(wire_caps_has("a+native1+b", WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has("native10", WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has("xnative1", WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has("native", WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has("", WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has(NULL, WIRE_CAPS_NATIVE));
	assert_false(wire_caps_has("native1", ""));
}

static void test_wire_type_and_encoding_names(void **state) {
	assert_string_equal(wire_type_to_string(WIRE_TYPE_ACCEPT), "Accept");
	assert_string_equal(wire_type_to_string(WIRE_TYPE_LOGOUT), "logout");
	assert_string_equal(wire_type_to_string(WIRE_TYPE_PONG), "pong");
	for (WireType t = 0; t < _WIRE_TYPE_MAX; t++) {
		assert_non_null(wire_type_to_string(t));
	}
	assert_null(wire_type_to_string(_WIRE_TYPE_MAX));
	assert_null(wire_type_to_string(_WIRE_TYPE_INVALID));
	assert_string_equal(wire_encoding_to_string(WIRE_ENCODING_UTF8), "utf-8");
	assert_string_equal(wire_encoding_to_string(WIRE_ENCODING_UTF16LE), "utf-16le");
	assert_null(wire_encoding_to_string(_WIRE_ENCODING_MAX));
}

/* --- UTF-8 --- */

static const struct {
	const char *hex;
	bool valid;
	size_t chars;
	const char *rule;
} utf8_table[] = {
	{ "", true, 0, "empty" },
	{ "61 62 63", true, 3, "ASCII" },
	{ "c2 80", true, 1, "U+0080, smallest 2-byte" },
	{ "df bf", true, 1, "U+07FF" },
	{ "e0 a0 80", true, 1, "U+0800, smallest 3-byte" },
	{ "ed 9f bf", true, 1, "U+D7FF, below the surrogates" },
	{ "ee 80 80", true, 1, "U+E000, above the surrogates" },
	{ "ef bf bf", true, 1, "U+FFFF" },
	{ "f0 90 80 80", true, 1, "U+10000, smallest 4-byte" },
	{ "f4 8f bf bf", true, 1, "U+10FFFF, the largest" },
	{ "e5 bc a0 e4 b8 89", true, 2, "CJK" },
	{ "00", false, 0, "U+0000" },
	{ "61 00 62", false, 0, "embedded U+0000" },
	{ "80", false, 0, "lone continuation byte" },
	{ "bf", false, 0, "lone continuation byte 0xbf" },
	{ "c0 80", false, 0, "overlong U+0000 (C0)" },
	{ "c1 bf", false, 0, "overlong 2-byte (C1)" },
	{ "e0 80 80", false, 0, "overlong 3-byte" },
	{ "e0 9f bf", false, 0, "overlong U+07FF in 3 bytes" },
	{ "f0 80 80 80", false, 0, "overlong 4-byte" },
	{ "f0 8f bf bf", false, 0, "overlong U+FFFF in 4 bytes" },
	{ "ed a0 80", false, 0, "high surrogate U+D800" },
	{ "ed bf bf", false, 0, "low surrogate U+DFFF" },
	{ "ed a0 bd ed b8 80", false, 0, "CESU-8 surrogate pair" },
	{ "f4 90 80 80", false, 0, "U+110000" },
	{ "f5 80 80 80", false, 0, "lead byte F5" },
	{ "f8 88 80 80 80", false, 0, "5-byte form" },
	{ "fe", false, 0, "byte FE" },
	{ "ff", false, 0, "byte FF" },
	{ "c2", false, 0, "truncated 2-byte" },
	{ "e4 b8", false, 0, "truncated 3-byte" },
	{ "f0 9f 98", false, 0, "truncated 4-byte" },
	{ "c2 41", false, 0, "ASCII instead of continuation" },
	{ "e4 b8 c2 80", false, 0, "lead byte instead of continuation" },
};

static void test_wire_utf8_validity(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(utf8_table); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		size_t n;

		b = unhex(utf8_table[i].hex, &n);
		if (utf8_is_valid((const char *) b, n) != utf8_table[i].valid) {
			fail_msg("%s: [%s] should be %s", utf8_table[i].rule, utf8_table[i].hex,
					utf8_table[i].valid ? "valid" : "invalid");
		}
		if (utf8_table[i].valid) {
			assert_int_equal(utf8_count_chars((const char *) b, n), utf8_table[i].chars);
		}
	}
}

/* --- UTF-16LE --- */

static const struct {
	const char *utf16;
	const char *utf8;
	const char *rule;
} utf16_pairs[] = {
	{ "", "", "empty" },
	{ "61 00", "61", "ASCII" },
	{ "20 5f 09 4e", "e5 bc a0 e4 b8 89", "CJK 张三" },
	{ "ff d7", "ed 9f bf", "U+D7FF" },
	{ "00 e0", "ee 80 80", "U+E000" },
	{ "3d d8 00 de", "f0 9f 98 80", "surrogate pair U+1F600" },
	{ "00 d8 00 dc", "f0 90 80 80", "surrogate pair U+10000" },
	{ "ff db ff df", "f4 8f bf bf", "surrogate pair U+10FFFF" },
	{ "80 00 ff 07 00 08", "c2 80 df bf e0 a0 80", "every UTF-8 length boundary" },
};

static void test_wire_utf16le_conversion(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(utf16_pairs); i++) {
		_cleanup_free_ uint8_t *u16 = NULL, *u8 = NULL, *back16 = NULL;
		_cleanup_free_ char *back8 = NULL;
		size_t n16, n8, len;

		u16 = unhex(utf16_pairs[i].utf16, &n16);
		u8 = unhex(utf16_pairs[i].utf8, &n8);

		assert_int_equal(utf16le_to_utf8(u16, n16, &back8, &len), 0);
		assert_bytes_equal((uint8_t *) back8, len, u8, n8);
		assert_int_equal(back8[len], 0);

		assert_int_equal(utf8_to_utf16le((char *) u8, n8, &back16, &len), 0);
		assert_bytes_equal(back16, len, u16, n16);
		assert_int_equal(back16[len], 0);
		assert_int_equal(back16[len + 1], 0);
	}
}

static void test_wire_utf16le_strips_bom(void **state) {
	_cleanup_free_ char *s = NULL;
	_cleanup_free_ uint8_t *u = NULL;
	size_t len;

	assert_int_equal(utf16le_to_utf8((const uint8_t *) "\xff\xfe" "a\0", 4, &s, &len), 0);
	assert_string_equal(s, "a");
	assert_int_equal(utf8_to_utf16le("\xef\xbb\xbf" "a", 4, &u, &len), 0);
	assert_bytes_equal(u, len, (const uint8_t *) "a\0", 2);
}

static const struct {
	const char *hex;
	const char *rule;
} utf16_rejects[] = {
	{ "61", "odd byte count" },
	{ "61 00 62", "odd byte count after a unit" },
	{ "00 d8", "high surrogate at the end" },
	{ "00 d8 61 00", "high surrogate followed by ASCII" },
	{ "00 d8 00 d8", "two high surrogates" },
	{ "00 dc", "lone low surrogate" },
	{ "00 dc 00 d8", "reversed pair" },
	{ "61 00 00 dc 62 00", "low surrogate in the middle" },
	{ "00 00", "U+0000" },
	{ "61 00 00 00", "embedded U+0000" },
	{ "ff fe 00 d8", "high surrogate after a BOM" },
};

static void test_wire_utf16le_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(utf16_rejects); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		char *s = NULL;
		size_t n, len;
		int r;

		b = unhex(utf16_rejects[i].hex, &n);
		r = utf16le_to_utf8(b, n, &s, &len);
		if (r != -EILSEQ) {
			fail_msg("%s: [%s] returned %d", utf16_rejects[i].rule, utf16_rejects[i].hex, r);
		}
		assert_null(s);
	}
}

static void test_wire_utf8_to_utf16le_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(utf8_table); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		uint8_t *out = NULL;
		size_t n, len;

		if (utf8_table[i].valid) {
			continue;
		}
		b = unhex(utf8_table[i].hex, &n);
		if (utf8_to_utf16le((const char *) b, n, &out, &len) != -EILSEQ) {
			fail_msg("%s: [%s] converted", utf8_table[i].rule, utf8_table[i].hex);
		}
		assert_null(out);
	}
}

/* --- Datagram encoding detection --- */

static const struct {
	const char *hex;
	WireEncoding enc;
	const char *rule;
} detect_table[] = {
	{ "", WIRE_ENCODING_UTF8, "empty: UTF-8" },
	{ "6c", WIRE_ENCODING_UTF8, "one byte: UTF-8" },
	{ "6c 00", WIRE_ENCODING_UTF16LE, "second byte 0: UTF-16LE" },
	{ "6c 6f", WIRE_ENCODING_UTF8, "second byte non-zero: UTF-8" },
	{ "7b 22", WIRE_ENCODING_UTF8, "JSON: UTF-8" },
	{ "ef bb bf 6c", WIRE_ENCODING_UTF8, "UTF-8 BOM" },
	{ "ff fe 6c 00", WIRE_ENCODING_UTF16LE, "UTF-16LE BOM" },
	{ "ff fe", WIRE_ENCODING_UTF16LE, "UTF-16LE BOM alone" },
	{ "ef bb", WIRE_ENCODING_UTF8, "half a UTF-8 BOM" },
};

static void test_wire_detect_encoding(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(detect_table); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		size_t n;

		b = unhex(detect_table[i].hex, &n);
		if (wire_detect_encoding(b, n) != detect_table[i].enc) {
			fail_msg("%s: [%s]", detect_table[i].rule, detect_table[i].hex);
		}
	}
}

static void test_wire_decode_datagram_strips_bom(void **state) {
	static const struct {
		const char *hex;
		WireEncoding enc;
	} rows[] = {
		{ "ef bb bf 70 69 6e 67", WIRE_ENCODING_UTF8 },
		{ "ff fe 70 00 69 00 6e 00 67 00", WIRE_ENCODING_UTF16LE },
		{ "70 69 6e 67", WIRE_ENCODING_UTF8 },
		{ "70 00 69 00 6e 00 67 00", WIRE_ENCODING_UTF16LE },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(wire_message_done) WireMessage m = {};
		_cleanup_free_ uint8_t *b = NULL, *out = NULL;
		_cleanup_free_ char *text = NULL;
		WireEncoding enc;
		size_t n, len;

		b = unhex(rows[i].hex, &n);
		assert_int_equal(wire_decode_datagram(b, n, &enc, &text, &len), 0);
		assert_int_equal(enc, rows[i].enc);
		assert_string_equal(text, "ping");
		assert_int_equal(len, 4);
		assert_int_equal(wire_parse_datagram(b, n, &m, &enc), 0);
		assert_int_equal(m.type, WIRE_TYPE_PING);
		/* No BOM on output. */
		assert_int_equal(wire_format_datagram(&m, enc, &out, &len), 0);
		assert_int_equal(len, enc == WIRE_ENCODING_UTF8 ? 4 : 8);
		assert_int_equal(out[0], 'p');
	}
}

static const struct {
	const char *hex;
	int error;
	const char *rule;
} datagram_rejects[] = {
	{ "", -EBADMSG, "empty datagram" },
	{ "6c 00 6f", -EILSEQ, "UTF-16LE with an odd byte count" },
	{ "70 00 00 d8", -EILSEQ, "UTF-16LE unpaired surrogate" },
	{ "70 69 6e 67 ff", -EILSEQ, "invalid UTF-8" },
	{ "ef bb bf ff", -EILSEQ, "invalid UTF-8 after a BOM" },
	{ "ef bb bf ef bb bf 70 69 6e 67", -EBADMSG, "a second BOM is part of the type" },
	{ "ff fe ff fe 70 00", -EBADMSG, "a second UTF-16LE BOM is part of the type" },
	{ "fe ff 00 70", -EILSEQ, "UTF-16BE is not an encoding we read" },
	{ "70 69 6e 67 00", -EILSEQ, "UTF-8 with a NUL terminator" },
	{ "70 00 69 00 6e 00 67 00 00 00", -EILSEQ, "UTF-16LE with a NUL terminator" },
	{ "7b 7d", -EBADMSG, "JSON is not a line" },
};

static void test_wire_datagram_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(datagram_rejects); i++) {
		_cleanup_free_ uint8_t *b = NULL;
		WireMessage m = { .type = _WIRE_TYPE_INVALID };
		size_t n;
		int r;

		b = unhex(datagram_rejects[i].hex, &n);
		r = wire_parse_datagram(b, n, &m, NULL);
		if (r != datagram_rejects[i].error) {
			fail_msg("%s: [%s] returned %d, expected %d", datagram_rejects[i].rule,
					datagram_rejects[i].hex, r, datagram_rejects[i].error);
		}
		assert_int_equal(m.type, _WIRE_TYPE_INVALID);
	}
}

static void test_wire_empty_input(void **state) {
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ uint8_t *u16 = NULL;
	WireListEntry *entries = NULL;
	WireMessage m;
	size_t len, n;

	/* NULL with length 0 is an empty input, never a crash. */
	assert_int_equal(wire_decode_datagram(NULL, 0, NULL, &text, &len), 0);
	assert_string_equal(text, "");
	assert_int_equal(wire_parse_datagram(NULL, 0, &m, NULL), -EBADMSG);
	assert_int_equal(wire_parse_line(NULL, 0, &m), -EBADMSG);
	assert_int_equal(wire_parse_line(NULL, 1, &m), -EINVAL);
	assert_int_equal(wire_parse_list(NULL, 0, &entries, &n), -EBADMSG);
	assert_int_equal(utf8_to_utf16le(NULL, 0, &u16, &len), 0);
	assert_int_equal(len, 0);
	assert_true(utf8_is_valid(NULL, 0));
}

static void test_wire_datagram_size_limit(void **state) {
	_cleanup_free_ uint8_t *big = NULL;
	_cleanup_free_ char *text = NULL;
	uint8_t *out = NULL;
	WireMessage m;
	size_t len;

	big = calloc(1, WIRE_DATAGRAM_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', WIRE_DATAGRAM_MAX + 1);
	assert_int_equal(wire_parse_datagram(big, WIRE_DATAGRAM_MAX + 1, &m, NULL), -EMSGSIZE);
	assert_int_equal(wire_decode_datagram(big, WIRE_DATAGRAM_MAX, NULL, &text, &len), 0);
	assert_int_equal(len, WIRE_DATAGRAM_MAX);

	/* Encoding may not produce more than a datagram either. */
	assert_int_equal(wire_encode_datagram(text, len, WIRE_ENCODING_UTF16LE, &out, &len), -EMSGSIZE);
	assert_null(out);
	assert_int_equal(wire_encode_datagram(text, 1, 42, &out, &len), -EINVAL);
}

/* --- The roster list --- */

typedef struct ListVector {
	const char *text;
	size_t n;
	const char *names[6];
	const char *endpoints[6];
	const char *caps[6];
} ListVector;

static const ListVector list_vectors[] = {
	{ "end", 0, {}, {}, {} },
	{ "alice,127.0.0.1:9000;bob,127.0.0.1:9001;end", 2, { "alice", "bob" },
		{ "127.0.0.1:9000", "127.0.0.1:9001" }, { "", "" } },
	{ "张三,127.0.0.1:9000;end", 1, { "张三" }, { "127.0.0.1:9000" }, { "" } },
	{ "alice,127.0.0.1:9000;bob,127.0.0.1:9001;carol,127.0.0.2:9002,native1;"
	  "david,[::1]:9003,native1;erin-b12,192.168.1.20:40000;franklin,10.0.0.1:65535,native1;end",
		6, { "alice", "bob", "carol", "david", "erin-b12", "franklin" },
		{ "127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.2:9002", "[::1]:9003",
		  "192.168.1.20:40000", "10.0.0.1:65535" },
		{ "", "", "native1", "native1", "", "native1" } },
};

/* A KEY after the caps: parsed, kept and written back. */
static void test_wire_list_key(void **state) {
	static const char text[] = "alice,127.0.0.1:9000,native1," KEY_HEX ";bob,127.0.0.1:9001;end";
	_cleanup_free_ WireListEntry *entries = NULL;
	_cleanup_free_ char *out = NULL;
	size_t n, len;

	assert_int_equal(wire_parse_list(text, strlen(text), &entries, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(entries[0].caps, "native1");
	assert_string_equal(entries[0].key, KEY_HEX);
	assert_string_equal(entries[1].key, "");
	assert_int_equal(wire_format_list(entries, n, &out, &len), 0);
	assert_string_equal(out, text);

	/* A KEY needs CAPS before it. */
	entries[1] = entries[0];
	entries[1].caps[0] = '\0';
	out = mfree(out);
	assert_int_equal(wire_format_list(entries, n, &out, &len), -EINVAL);
}

static void test_wire_list_vectors(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(list_vectors); i++) {
		const ListVector *v = &list_vectors[i];
		_cleanup_free_ WireListEntry *entries = NULL;
		_cleanup_free_ char *out = NULL;
		size_t n, len;

		assert_int_equal(wire_parse_list(v->text, strlen(v->text), &entries, &n), 0);
		assert_int_equal(n, v->n);
		assert_non_null(entries);
		for (size_t j = 0; j < n; j++) {
			assert_string_equal(entries[j].name, v->names[j]);
			assert_endpoint_text(&entries[j].endpoint, v->endpoints[j]);
			assert_string_equal(entries[j].caps, v->caps[j]);
		}
		assert_int_equal(wire_format_list(entries, n, &out, &len), 0);
		assert_int_equal(len, strlen(v->text));
		assert_string_equal(out, v->text);
	}
}

static const struct {
	const char *text;
	int error;
	const char *rule;
} list_rejects[] = {
	{ "", -EBADMSG, "empty text" },
	{ "en", -EBADMSG, "truncated end" },
	{ "End", -EBADMSG, "'end' is lower case" },
	{ ";end", -EBADMSG, "empty entry" },
	{ "alice,127.0.0.1:9000", -EBADMSG, "no end" },
	{ "alice,127.0.0.1:9000;", -EBADMSG, "no end after the last ';'" },
	{ "alice,127.0.0.1:9000;end;", -EBADMSG, "';' after end" },
	{ "alice,127.0.0.1:9000;endx", -EBADMSG, "text after end" },
	{ "alice,127.0.0.1:9000end", -EBADMSG, "no ';' before end" },
	{ "alice,127.0.0.1:9000;;end", -EBADMSG, "empty entry in the middle" },
	{ "alice;end", -EBADMSG, "entry without endpoint" },
	{ "alice,127.0.0.1:9000,native1," KEY_HEX ",x;end", -EBADMSG, "entry with 5 fields" },
	{ "alice,127.0.0.1:9000,native1,x;end", -EINVAL, "entry with a bad KEY" },
	{ "alice,127.0.0.1:9000,;end", -EINVAL, "entry with empty caps" },
	{ "end,127.0.0.1:9000;end", -EINVAL, "entry named 'end'" },
	{ ",127.0.0.1:9000;end", -EINVAL, "entry with empty name" },
	{ "a:b,127.0.0.1:9000;end", -EINVAL, "entry name with ':'" },
	{ "alice,127.0.0.1;end", -EINVAL, "entry endpoint without port" },
	{ "alice,256.0.0.1:9000;end", -EINVAL, "entry endpoint octet > 255" },
	{ "alice,127.0.0.1:9000,a b;end", -EINVAL, "entry caps with a space" },
	{ "alice,127.0.0.1:9000;bob,1.2.3.4:0;end", -EINVAL, "second entry port 0" },
	{ "\xff,127.0.0.1:9000;end", -EILSEQ, "invalid UTF-8" },
};

static void test_wire_list_rejects(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(list_rejects); i++) {
		WireListEntry *entries = NULL;
		size_t n = 42;
		int r;

		r = wire_parse_list(list_rejects[i].text, strlen(list_rejects[i].text), &entries, &n);
		if (r != list_rejects[i].error) {
			fail_msg("%s: '%s' returned %d, expected %d", list_rejects[i].rule,
					list_rejects[i].text, r, list_rejects[i].error);
		}
		assert_null(entries);
		assert_int_equal(n, 42);
	}
}

static void test_wire_list_entry_limit(void **state) {
	static const char entry[] = "a,1.2.3.4:5;";
	const size_t elen = strlen(entry);
	_cleanup_free_ char *text = NULL, *out = NULL;
	_cleanup_free_ WireListEntry *entries = NULL;
	size_t n, len;

	text = malloc(elen * (WIRE_LIST_MAX_ENTRIES + 1) + 4);
	assert_non_null(text);
	for (size_t i = 0; i <= WIRE_LIST_MAX_ENTRIES; i++) {
		memcpy(text + i * elen, entry, elen);
	}
	memcpy(text + (WIRE_LIST_MAX_ENTRIES + 1) * elen, "end", 4);

	/* One entry too many. */
	assert_int_equal(wire_parse_list(text, (WIRE_LIST_MAX_ENTRIES + 1) * elen + 3, &entries, &n),
			-EMSGSIZE);
	/* Exactly the limit. */
	assert_int_equal(wire_parse_list(text + elen, WIRE_LIST_MAX_ENTRIES * elen + 3, &entries, &n),
			0);
	assert_int_equal(n, WIRE_LIST_MAX_ENTRIES);
	assert_int_equal(wire_format_list(entries, n, &out, &len), 0);
	assert_int_equal(len, WIRE_LIST_MAX_ENTRIES * elen + 3);
	assert_int_equal(wire_format_list(entries, WIRE_LIST_MAX_ENTRIES + 1, &out, &len), -EMSGSIZE);
}

static void test_wire_list_format_rejects(void **state) {
	WireListEntry e = {};
	char *out = NULL;
	size_t len;

	strcpy(e.name, "alice");
	assert_int_equal(wire_format_list(&e, 1, &out, &len), -EINVAL); /* no endpoint */
	assert_int_equal(endpoint_parse("1.2.3.4:5", 9, &e.endpoint), 0);
	strcpy(e.caps, "a b");
	assert_int_equal(wire_format_list(&e, 1, &out, &len), -EINVAL); /* caps */
	e.caps[0] = 0;
	strcpy(e.name, "a;b");
	assert_int_equal(wire_format_list(&e, 1, &out, &len), -EINVAL); /* name */
	assert_int_equal(wire_format_list(NULL, 1, &out, &len), -EINVAL);
	assert_null(out);
	assert_int_equal(wire_format_list(NULL, 0, &out, &len), 0);
	assert_string_equal(out, "end");
	free(out);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_reference_login_datagram),
		cmocka_unit_test(test_wire_reference_accept_datagram),
		cmocka_unit_test(test_wire_reference_cjk_talk_datagram),
		cmocka_unit_test(test_wire_line_round_trip),
		cmocka_unit_test(test_wire_datagram_round_trip_both_encodings),
		cmocka_unit_test(test_wire_line_normalises),
		cmocka_unit_test(test_wire_line_lohout_is_misspelled_logout),
		cmocka_unit_test(test_wire_line_talk_text_keeps_commas),
		cmocka_unit_test(test_wire_line_rejects),
		cmocka_unit_test(test_wire_line_rejects_nul),
		cmocka_unit_test(test_wire_line_control_limit),
		cmocka_unit_test(test_wire_line_talk_text_limit),
		cmocka_unit_test(test_wire_talk_as_long_as_a_datagram),
		cmocka_unit_test(test_wire_format_rejects),
		cmocka_unit_test(test_wire_name_validity),
		cmocka_unit_test(test_wire_caps_validity),
		cmocka_unit_test(test_wire_caps_has_token),
		cmocka_unit_test(test_wire_type_and_encoding_names),
		cmocka_unit_test(test_wire_utf8_validity),
		cmocka_unit_test(test_wire_utf16le_conversion),
		cmocka_unit_test(test_wire_utf16le_strips_bom),
		cmocka_unit_test(test_wire_utf16le_rejects),
		cmocka_unit_test(test_wire_utf8_to_utf16le_rejects),
		cmocka_unit_test(test_wire_detect_encoding),
		cmocka_unit_test(test_wire_decode_datagram_strips_bom),
		cmocka_unit_test(test_wire_datagram_rejects),
		cmocka_unit_test(test_wire_empty_input),
		cmocka_unit_test(test_wire_datagram_size_limit),
		cmocka_unit_test(test_wire_list_vectors),
		cmocka_unit_test(test_wire_list_key),
		cmocka_unit_test(test_wire_list_rejects),
		cmocka_unit_test(test_wire_list_entry_limit),
		cmocka_unit_test(test_wire_list_format_rejects),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
