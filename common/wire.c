/* SPDX-License-Identifier: MIT */

/*
 * The wire codec: UTF-8 validation, UTF-16LE conversion, the text grammar of
 * every message, the roster list, LEB128 framing and the incremental frame
 * decoder.  Everything is a pure function over caller-provided buffers; the
 * only heap objects are the results (owned by the caller) and the buffer a
 * WireFrameDecoder holds between wire_frame_decoder_init() and _done().
 * Input is hostile: every size a peer controls is checked against a named
 * limit before anything is allocated for it.
 */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/wire.h"

/* --- UTF-8 --- */

static bool utf8_is_cont(uint8_t c) {
	return (c & 0xC0) == 0x80;
}

/*
 * Decodes one strict UTF-8 sequence at @s (@n bytes left, n > 0).  Returns its
 * length and stores the code point, or -EILSEQ.
 */
static int utf8_decode_one(const uint8_t *s, size_t n, uint32_t *ret_cp) {
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	uint32_t cp;
	int len;

	if (c < 0x80) {
		*ret_cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
		if (c == 0xE0) {
			lo = 0xA0; /* overlong */
		} else if (c == 0xED) {
			hi = 0x9F; /* surrogates */
		}
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
		if (c == 0xF0) {
			lo = 0x90; /* overlong */
		} else if (c == 0xF4) {
			hi = 0x8F; /* > U+10FFFF */
		}
	} else {
		return -EILSEQ;
	}

	if (n < (size_t) len) {
		return -EILSEQ;
	}
	if (s[1] < lo || s[1] > hi) {
		return -EILSEQ;
	}
	for (int i = 1; i < len; i++) {
		if (!utf8_is_cont(s[i])) {
			return -EILSEQ;
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	*ret_cp = cp;
	return len;
}

bool utf8_is_valid(const char *s, size_t n) {
	const uint8_t *p = (const uint8_t *) s;

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int len;

		/* Fast path for ASCII. */
		if (p[i] != 0 && p[i] < 0x80) {
			i++;
			continue;
		}
		len = utf8_decode_one(p + i, n - i, &cp);
		if (len < 0 || cp == 0) {
			return false;
		}
		i += (size_t) len;
	}
	return true;
}

size_t utf8_count_chars(const char *s, size_t n) {
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (!utf8_is_cont((uint8_t) s[i])) {
			k++;
		}
	}
	return k;
}

static size_t utf8_encode_one(uint32_t cp, char *out) {
	if (cp < 0x80) {
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

static bool utf8_has_bom(const char *s, size_t n) {
	return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0;
}

/* --- UTF-16LE --- */

static uint16_t get_le16(const uint8_t *p) {
	return (uint16_t) (p[0] | (p[1] << 8));
}

int utf16le_to_utf8(const uint8_t *in, size_t n, char **ret, size_t *ret_len) {
	_cleanup_free_ char *out = NULL;
	size_t k = 0;

	if (n % 2 != 0) {
		return -EILSEQ;
	}
	if (n >= 2 && get_le16(in) == 0xFEFF) {
		in += 2;
		n -= 2;
	}
	if (n > SIZE_MAX / 2 - 1) {
		return -EMSGSIZE;
	}

	/* Each UTF-16 unit yields at most 3 bytes of UTF-8 (a pair: 4 for 2). */
	out = malloc(n / 2 * 3 + 1);
	if (!out) {
		return -ENOMEM;
	}

	for (size_t i = 0; i < n; i += 2) {
		uint32_t cp = get_le16(in + i);

		if (cp == 0) {
			return -EILSEQ;
		}
		if (cp >= 0xDC00 && cp <= 0xDFFF) {
			return -EILSEQ; /* a low surrogate first */
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			uint32_t low;

			if (i + 4 > n) {
				return -EILSEQ;
			}
			low = get_le16(in + i + 2);
			if (low < 0xDC00 || low > 0xDFFF) {
				return -EILSEQ;
			}
			cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
			i += 2;
		}
		k += utf8_encode_one(cp, out + k);
	}
	out[k] = 0;

	*ret = TAKE_PTR(out);
	*ret_len = k;
	return 0;
}

int utf8_to_utf16le(const char *in, size_t n, uint8_t **ret, size_t *ret_len) {
	_cleanup_free_ uint8_t *out = NULL;
	const uint8_t *p = (const uint8_t *) in;
	size_t k = 0;

	if (utf8_has_bom(in, n)) {
		p += 3;
		n -= 3;
	}
	if (n > SIZE_MAX / 2 - 2) {
		return -EMSGSIZE;
	}

	/* Each byte yields at most one unit; 4 bytes yield 2 units. */
	out = malloc(n * 2 + 2);
	if (!out) {
		return -ENOMEM;
	}

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int len;

		len = utf8_decode_one(p + i, n - i, &cp);
		if (len < 0) {
			return len;
		}
		if (cp == 0) {
			return -EILSEQ;
		}
		i += (size_t) len;

		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			uint16_t hi = (uint16_t) (0xD800 | (v >> 10)), lo = (uint16_t) (0xDC00 | (v & 0x3FF));

			out[k++] = (uint8_t) (hi & 0xFF);
			out[k++] = (uint8_t) (hi >> 8);
			out[k++] = (uint8_t) (lo & 0xFF);
			out[k++] = (uint8_t) (lo >> 8);
		} else {
			out[k++] = (uint8_t) (cp & 0xFF);
			out[k++] = (uint8_t) (cp >> 8);
		}
	}
	out[k] = 0;
	out[k + 1] = 0;

	*ret = TAKE_PTR(out);
	*ret_len = k;
	return 0;
}

/* --- Encodings and datagrams --- */

static const char *const encoding_table[_WIRE_ENCODING_MAX] = {
	[WIRE_ENCODING_UTF8] = "utf-8",
	[WIRE_ENCODING_UTF16LE] = "utf-16le",
};

const char *wire_encoding_to_string(WireEncoding e) {
	return string_table_lookup(encoding_table, ELEMENTSOF(encoding_table), e);
}

WireEncoding wire_detect_encoding(const uint8_t *buf, size_t n) {
	if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
		return WIRE_ENCODING_UTF8;
	}
	if (n >= 2 && buf[0] == 0xFF && buf[1] == 0xFE) {
		return WIRE_ENCODING_UTF16LE;
	}
	if (n >= 2 && buf[1] == 0) {
		return WIRE_ENCODING_UTF16LE;
	}
	return WIRE_ENCODING_UTF8;
}

/* A NUL-terminated copy of valid UTF-8 text, without a leading BOM. */
static int utf8_dup_text(const char *s, size_t n, char **ret, size_t *ret_len) {
	char *t;

	if (utf8_has_bom(s, n)) {
		s += 3;
		n -= 3;
	}
	if (!utf8_is_valid(s, n)) {
		return -EILSEQ;
	}
	t = malloc(n + 1);
	if (!t) {
		return -ENOMEM;
	}
	if (n > 0) {
		memcpy(t, s, n);
	}
	t[n] = 0;
	*ret = t;
	*ret_len = n;
	return 0;
}

int wire_decode_datagram(const uint8_t *buf, size_t n, WireEncoding *ret_enc, char **ret_text,
		size_t *ret_len) {
	WireEncoding enc;
	char *text;
	size_t len;
	int r = -EINVAL; /* a value outside the enum */

	if (n > WIRE_DATAGRAM_MAX) {
		return -EMSGSIZE;
	}

	enc = wire_detect_encoding(buf, n);
	switch (enc) {
	case WIRE_ENCODING_UTF8:
		r = utf8_dup_text((const char *) buf, n, &text, &len);
		break;
	case WIRE_ENCODING_UTF16LE:
		r = utf16le_to_utf8(buf, n, &text, &len);
		break;
	case _WIRE_ENCODING_MAX:
	case _WIRE_ENCODING_INVALID:
		assert(!"unreachable encoding");
		return -EINVAL;
	}
	if (r < 0) {
		return r;
	}

	if (ret_enc) {
		*ret_enc = enc;
	}
	*ret_text = text;
	*ret_len = len;
	return 0;
}

int wire_encode_datagram(const char *text, size_t n, WireEncoding enc, uint8_t **ret,
		size_t *ret_len) {
	_cleanup_free_ uint8_t *out = NULL;
	size_t len;
	int r = -EINVAL; /* a value outside the enum */

	switch (enc) {
	case WIRE_ENCODING_UTF8: {
		char *t = NULL;

		r = utf8_dup_text(text, n, &t, &len);
		out = (uint8_t *) t;
		break;
	}
	case WIRE_ENCODING_UTF16LE:
		r = utf8_to_utf16le(text, n, &out, &len);
		break;
	case _WIRE_ENCODING_MAX:
	case _WIRE_ENCODING_INVALID:
		return -EINVAL;
	}
	if (r < 0) {
		return r;
	}
	if (len > WIRE_DATAGRAM_MAX) {
		return -EMSGSIZE;
	}

	*ret = TAKE_PTR(out);
	*ret_len = len;
	return 0;
}

/* --- Fields --- */

/* Leading or trailing blanks would make two names that look the same. */
static bool unicode_is_blank(uint32_t cp) {
	return cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) ||
		cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
		cp == 0xFEFF;
}

static bool unicode_is_control(uint32_t cp) {
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

bool wire_name_is_valid(const char *s, size_t n) {
	const uint8_t *p = (const uint8_t *) s;
	uint32_t cp = 0;
	size_t chars = 0;

	if (!s || n == 0 || n > WIRE_NAME_MAX_BYTES) {
		return false;
	}
	if (n == 3 && memcmp(s, "end", 3) == 0) {
		return false;
	}

	for (size_t i = 0; i < n;) {
		int len;

		len = utf8_decode_one(p + i, n - i, &cp);
		if (len < 0) {
			return false;
		}
		if (unicode_is_control(cp) || cp == ',' || cp == ';' || cp == ':') {
			return false;
		}
		if (i == 0 && unicode_is_blank(cp)) {
			return false;
		}
		if (++chars > WIRE_NAME_MAX_CHARS) {
			return false;
		}
		i += (size_t) len;
	}
	/* cp is the last code point now. */
	return !unicode_is_blank(cp);
}

static bool caps_char_is_valid(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '_' || c == '-';
}

bool wire_caps_is_valid(const char *s, size_t n) {
	if (!s || n == 0 || n > WIRE_CAPS_MAX) {
		return false;
	}
	/* Tokens separated by single '+': none empty. */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			if (i == 0 || i == n - 1 || s[i - 1] == '+') {
				return false;
			}
		} else if (!caps_char_is_valid(s[i])) {
			return false;
		}
	}
	return true;
}

bool wire_key_is_valid(const char *s, size_t n) {
	if (!s || n != WIRE_KEY_HEX_LEN) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

bool wire_caps_has(const char *caps, const char *token) {
	size_t len;

	if (!caps || !token) {
		return false;
	}
	len = strlen(token);
	if (len == 0) {
		return false;
	}
	for (const char *p = caps;;) {
		const char *e = strchrnul(p, '+');

		if ((size_t) (e - p) == len && memcmp(p, token, len) == 0) {
			return true;
		}
		if (*e == 0) {
			return false;
		}
		p = e + 1;
	}
}

static bool time_is_valid(const char *s, size_t n) {
	const uint8_t *p = (const uint8_t *) s;

	if (n == 0 || n > WIRE_TIME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int len;

		len = utf8_decode_one(p + i, n - i, &cp);
		if (len < 0 || unicode_is_control(cp) || cp == ',') {
			return false;
		}
		i += (size_t) len;
	}
	return true;
}

static bool reason_is_valid(const char *s, size_t n) {
	if (n == 0 || n > WIRE_REASON_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
			return false;
		}
	}
	return true;
}

static bool endpoint_is_wire_valid(const Endpoint *e) {
	int family = endpoint_family(e);

	return (family == AF_INET || family == AF_INET6) && endpoint_port(e) != 0;
}

/* --- Lines --- */

static const char *const type_table[_WIRE_TYPE_MAX] = {
	[WIRE_TYPE_LOGIN] = "login",
	[WIRE_TYPE_LOGOUT] = "logout",
	[WIRE_TYPE_ACCEPT] = "Accept",
	[WIRE_TYPE_REJECT] = "Reject",
	[WIRE_TYPE_TALK] = "talk",
	[WIRE_TYPE_HELLO] = "hello",
	[WIRE_TYPE_WELCOME] = "welcome",
	[WIRE_TYPE_PING] = "ping",
	[WIRE_TYPE_PONG] = "pong",
};

const char *wire_type_to_string(WireType t) {
	return string_table_lookup(type_table, ELEMENTSOF(type_table), t);
}

typedef struct Field {
	const char *s;
	size_t n;
} Field;

#define FIELD_STR(str) ((Field) { (str), strlen(str) })

/*
 * Splits @s at ',' into at most @max fields; the last one takes the rest of
 * the line, commas included.  Returns the number of fields.
 */
static size_t split_fields(const char *s, size_t n, Field *fields, size_t max) {
	size_t k = 0;

	assert(max > 0);
	for (;;) {
		const char *comma = k + 1 < max ? memchr(s, ',', n) : NULL;

		if (!comma) {
			fields[k++] = (Field) { s, n };
			return k;
		}
		fields[k++] = (Field) { s, (size_t) (comma - s) };
		n -= (size_t) (comma + 1 - s);
		s = comma + 1;
	}
}

static void field_copy(char *dst, Field f) {
	memcpy(dst, f.s, f.n);
	dst[f.n] = 0;
}

static int parse_name(Field f, char ret[static WIRE_NAME_MAX_BYTES + 1]) {
	if (!wire_name_is_valid(f.s, f.n)) {
		return -EINVAL;
	}
	field_copy(ret, f);
	return 0;
}

static int parse_caps(Field f, char ret[static WIRE_CAPS_MAX + 1]) {
	if (!wire_caps_is_valid(f.s, f.n)) {
		return -EINVAL;
	}
	field_copy(ret, f);
	return 0;
}

static int parse_key(Field f, char ret[static WIRE_KEY_HEX_LEN + 1]) {
	if (!wire_key_is_valid(f.s, f.n)) {
		return -EINVAL;
	}
	field_copy(ret, f);
	return 0;
}

/* NAME,EP[,CAPS[,KEY]]: the tail of login and a list entry (@k is 2 to 4). */
static int parse_user(const Field *f, size_t k, char name[static WIRE_NAME_MAX_BYTES + 1],
		Endpoint *endpoint, char caps[static WIRE_CAPS_MAX + 1],
		char key[static WIRE_KEY_HEX_LEN + 1]) {
	int r;

	assert(k >= 2 && k <= 4);
	r = parse_name(f[0], name);
	if (r < 0) {
		return r;
	}
	if (endpoint_parse(f[1].s, f[1].n, endpoint) < 0) {
		return -EINVAL;
	}
	caps[0] = key[0] = 0;
	if (k >= 3) {
		r = parse_caps(f[2], caps);
		if (r < 0) {
			return r;
		}
	}
	if (k == 4) {
		return parse_key(f[3], key);
	}
	return 0;
}

static WireType type_from_field(Field f, bool *ret_misspelled) {
	*ret_misspelled = false;
	for (WireType t = 0; t < _WIRE_TYPE_MAX; t++) {
		if (f.n == strlen(type_table[t]) && memcmp(f.s, type_table[t], f.n) == 0) {
			return t;
		}
	}
	/* The reference client's spelling of logout. */
	if (f.n == 6 && memcmp(f.s, "lohout", 6) == 0) {
		*ret_misspelled = true;
		return WIRE_TYPE_LOGOUT;
	}
	return _WIRE_TYPE_INVALID;
}

/* Fields per type, the type included.  talk's text takes the rest of the line. */
static const struct {
	uint8_t min, max;
} field_counts[_WIRE_TYPE_MAX] = {
	[WIRE_TYPE_LOGIN] = { 3, 5 },
	[WIRE_TYPE_LOGOUT] = { 3, 3 },
	[WIRE_TYPE_ACCEPT] = { 2, 2 },
	[WIRE_TYPE_REJECT] = { 2, 2 },
	[WIRE_TYPE_TALK] = { 4, 4 },
	[WIRE_TYPE_HELLO] = { 3, 3 },
	[WIRE_TYPE_WELCOME] = { 2, 2 },
	[WIRE_TYPE_PING] = { 1, 1 },
	[WIRE_TYPE_PONG] = { 1, 1 },
};

void wire_message_done(WireMessage *m) {
	if (!m) {
		return;
	}
	m->text = mfree(m->text);
	m->text_len = 0;
}

int wire_parse_line(const char *s, size_t n, WireMessage *ret) {
	_cleanup_(wire_message_done) WireMessage m = {};
	Field f[6];
	size_t k;
	int r;

	if (!s && n > 0) {
		return -EINVAL;
	}

	/* The type first: it decides the size limit and the field count. */
	(void) split_fields(s ? s : "", n, f, 2);
	m.type = type_from_field(f[0], &m.misspelled);
	if (m.type < 0) {
		return -EBADMSG;
	}
	if (m.type == WIRE_TYPE_TALK) {
		if (n > WIRE_TIME_MAX + WIRE_NAME_MAX_BYTES + WIRE_TALK_TEXT_MAX + 8) {
			return -EMSGSIZE;
		}
	} else if (n > WIRE_CONTROL_MAX) {
		return -EMSGSIZE;
	}
	if (!utf8_is_valid(s, n)) {
		return -EILSEQ;
	}

	k = split_fields(s, n, f, m.type == WIRE_TYPE_TALK ? 4 : ELEMENTSOF(f));
	if (k < field_counts[m.type].min || k > field_counts[m.type].max) {
		return -EBADMSG;
	}

	switch (m.type) {
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_LOGOUT:
		if (m.type == WIRE_TYPE_LOGOUT && k > 4) {
			return -EBADMSG;
		}
		r = parse_user(f + 1, k - 1, m.name, &m.endpoint, m.caps, m.key);
		if (r < 0) {
			return r;
		}
		break;

	case WIRE_TYPE_ACCEPT:
		r = endpoint_parse_port(f[1].s, f[1].n, &m.port);
		if (r < 0) {
			return -EBADMSG;
		}
		break;

	case WIRE_TYPE_REJECT:
		if (!reason_is_valid(f[1].s, f[1].n)) {
			return -EINVAL;
		}
		field_copy(m.reason, f[1]);
		break;

	case WIRE_TYPE_TALK:
		if (!time_is_valid(f[1].s, f[1].n)) {
			return -EINVAL;
		}
		field_copy(m.time, f[1]);
		r = parse_name(f[2], m.name);
		if (r < 0) {
			return r;
		}
		if (f[3].n > WIRE_TALK_TEXT_MAX) {
			return -EMSGSIZE;
		}
		m.text = malloc(f[3].n + 1);
		if (!m.text) {
			return -ENOMEM;
		}
		field_copy(m.text, f[3]);
		m.text_len = f[3].n;
		break;

	case WIRE_TYPE_HELLO:
		r = parse_name(f[1], m.name);
		if (r < 0) {
			return r;
		}
		r = parse_caps(f[2], m.caps);
		if (r < 0) {
			return r;
		}
		break;

	case WIRE_TYPE_WELCOME:
		r = parse_caps(f[1], m.caps);
		if (r < 0) {
			return r;
		}
		break;

	case WIRE_TYPE_PING:
	case WIRE_TYPE_PONG:
		break;

	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		assert(!"unreachable message type");
		return -EBADMSG;
	}

	*ret = m;
	m = (WireMessage) {};
	return 0;
}

/* Joins @fields with ',' into a fresh NUL-terminated string. */
static int join_fields(const Field *fields, size_t k, char **ret, size_t *ret_len) {
	size_t len = 0, pos = 0;
	char *out;

	for (size_t i = 0; i < k; i++) {
		len += fields[i].n + (i > 0);
	}
	out = malloc(len + 1);
	if (!out) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		if (i > 0) {
			out[pos++] = ',';
		}
		memcpy(out + pos, fields[i].s, fields[i].n);
		pos += fields[i].n;
	}
	out[pos] = 0;

	*ret = out;
	*ret_len = len;
	return 0;
}

static bool name_field_is_valid(const char *name) {
	size_t n = strnlen(name, WIRE_NAME_MAX_BYTES + 1);

	return wire_name_is_valid(name, n);
}

static bool caps_field_is_valid(const char *caps, bool optional) {
	size_t n = strnlen(caps, WIRE_CAPS_MAX + 1);

	return (optional && n == 0) || wire_caps_is_valid(caps, n);
}

/* An optional KEY: only with CAPS. */
static bool key_field_is_valid(const char *key, const char *caps) {
	size_t n = strnlen(key, WIRE_KEY_HEX_LEN + 1);

	return n == 0 || (caps[0] && wire_key_is_valid(key, n));
}

int wire_format_line(const WireMessage *m, char **ret, size_t *ret_len) {
	char ep[ENDPOINT_STRLEN], port[6];
	Field f[5];
	size_t k = 0;

	if (!m || m->type < 0 || m->type >= _WIRE_TYPE_MAX) {
		return -EINVAL;
	}
	/* Always the correct spelling, even for a message read as "lohout". */
	f[k++] = FIELD_STR(type_table[m->type]);

	switch (m->type) {
	case WIRE_TYPE_LOGIN:
	case WIRE_TYPE_LOGOUT:
		if (!name_field_is_valid(m->name) || !endpoint_is_wire_valid(&m->endpoint)) {
			return -EINVAL;
		}
		f[k++] = FIELD_STR(m->name);
		f[k++] = FIELD_STR(endpoint_format(&m->endpoint, ep));
		if (m->type == WIRE_TYPE_LOGIN) {
			if (!caps_field_is_valid(m->caps, true) ||
					!key_field_is_valid(m->key, m->caps)) {
				return -EINVAL;
			}
			if (m->caps[0]) {
				f[k++] = FIELD_STR(m->caps);
			}
			if (m->key[0]) {
				f[k++] = FIELD_STR(m->key);
			}
		}
		break;

	case WIRE_TYPE_ACCEPT:
		if (m->port == 0) {
			return -EINVAL;
		}
		(void) snprintf(port, sizeof(port), "%u", m->port);
		f[k++] = FIELD_STR(port);
		break;

	case WIRE_TYPE_REJECT:
		if (!reason_is_valid(m->reason, strnlen(m->reason, WIRE_REASON_MAX + 1))) {
			return -EINVAL;
		}
		f[k++] = FIELD_STR(m->reason);
		break;

	case WIRE_TYPE_TALK:
		if (!time_is_valid(m->time, strnlen(m->time, WIRE_TIME_MAX + 1)) ||
				!name_field_is_valid(m->name)) {
			return -EINVAL;
		}
		if (m->text_len > WIRE_TALK_TEXT_MAX) {
			return -EMSGSIZE;
		}
		if (!m->text && m->text_len > 0) {
			return -EINVAL;
		}
		if (!utf8_is_valid(m->text, m->text_len)) {
			return -EILSEQ;
		}
		f[k++] = FIELD_STR(m->time);
		f[k++] = FIELD_STR(m->name);
		f[k++] = (Field) { m->text ? m->text : "", m->text_len };
		break;

	case WIRE_TYPE_HELLO:
		if (!name_field_is_valid(m->name) || !caps_field_is_valid(m->caps, false)) {
			return -EINVAL;
		}
		f[k++] = FIELD_STR(m->name);
		f[k++] = FIELD_STR(m->caps);
		break;

	case WIRE_TYPE_WELCOME:
		if (!caps_field_is_valid(m->caps, false)) {
			return -EINVAL;
		}
		f[k++] = FIELD_STR(m->caps);
		break;

	case WIRE_TYPE_PING:
	case WIRE_TYPE_PONG:
		break;

	case _WIRE_TYPE_MAX:
	case _WIRE_TYPE_INVALID:
		return -EINVAL;
	}

	return join_fields(f, k, ret, ret_len);
}

int wire_parse_datagram(const uint8_t *buf, size_t n, WireMessage *ret, WireEncoding *ret_enc) {
	_cleanup_free_ char *text = NULL;
	WireEncoding enc;
	size_t len;
	int r;

	r = wire_decode_datagram(buf, n, &enc, &text, &len);
	if (r < 0) {
		return r;
	}
	r = wire_parse_line(text, len, ret);
	if (r < 0) {
		return r;
	}
	if (ret_enc) {
		*ret_enc = enc;
	}
	return 0;
}

int wire_format_datagram(const WireMessage *m, WireEncoding enc, uint8_t **ret, size_t *ret_len) {
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = wire_format_line(m, &text, &len);
	if (r < 0) {
		return r;
	}
	return wire_encode_datagram(text, len, enc, ret, ret_len);
}

/* --- The roster list --- */

static int parse_list_entry(const char *s, size_t n, WireListEntry *ret) {
	Field f[5];
	size_t k;

	k = split_fields(s, n, f, ELEMENTSOF(f));
	if (k < 2 || k > 4) {
		return -EBADMSG;
	}
	return parse_user(f, k, ret->name, &ret->endpoint, ret->caps, ret->key);
}

int wire_parse_list(const char *s, size_t n, WireListEntry **ret, size_t *ret_n) {
	_cleanup_free_ WireListEntry *entries = NULL;
	size_t count = 0, k = 0;
	const char *p, *end;

	if (!s && n > 0) {
		return -EINVAL;
	}
	if (n > WIRE_FRAME_MAX) {
		return -EMSGSIZE;
	}
	if (!utf8_is_valid(s, n)) {
		return -EILSEQ;
	}
	/* The list always ends in "end", after a ';' unless it is empty. */
	if (n < 3 || memcmp(s + n - 3, "end", 3) != 0 || (n > 3 && s[n - 4] != ';')) {
		return -EBADMSG;
	}

	end = s + n - 3;
	for (p = s; p < end; p++) {
		if (*p == ';') {
			count++;
		}
	}
	if (count > WIRE_LIST_MAX_ENTRIES) {
		return -EMSGSIZE;
	}

	entries = calloc(MAX(count, (size_t) 1), sizeof(WireListEntry));
	if (!entries) {
		return -ENOMEM;
	}

	for (p = s; p < end;) {
		const char *semi = memchr(p, ';', (size_t) (end - p));
		int r;

		/* count ';' were found above, so every entry ends in one. */
		assert(semi);
		if (semi == p) {
			return -EBADMSG;
		}
		r = parse_list_entry(p, (size_t) (semi - p), &entries[k]);
		if (r < 0) {
			return r;
		}
		k++;
		p = semi + 1;
	}
	assert(k == count);

	*ret = TAKE_PTR(entries);
	*ret_n = count;
	return 0;
}

int wire_format_list(const WireListEntry *entries, size_t n, char **ret, size_t *ret_len) {
	_cleanup_free_ char *out = NULL;
	size_t len = 0, pos = 0;
	char ep[ENDPOINT_STRLEN];

	if (n > WIRE_LIST_MAX_ENTRIES) {
		return -EMSGSIZE;
	}
	if (n > 0 && !entries) {
		return -EINVAL;
	}

	for (size_t i = 0; i < n; i++) {
		const WireListEntry *e = &entries[i];

		if (!name_field_is_valid(e->name) || !endpoint_is_wire_valid(&e->endpoint) ||
				!caps_field_is_valid(e->caps, true) ||
				!key_field_is_valid(e->key, e->caps)) {
			return -EINVAL;
		}
		len += strlen(e->name) + 1 + strlen(endpoint_format(&e->endpoint, ep)) + 1;
		if (e->caps[0]) {
			len += 1 + strlen(e->caps);
		}
		if (e->key[0]) {
			len += 1 + WIRE_KEY_HEX_LEN;
		}
	}
	len += 3;
	if (len > WIRE_FRAME_MAX) {
		return -EMSGSIZE;
	}

	out = malloc(len + 1);
	if (!out) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const WireListEntry *e = &entries[i];

		pos += (size_t) sprintf(out + pos, "%s,%s", e->name, endpoint_format(&e->endpoint, ep));
		if (e->caps[0]) {
			pos += (size_t) sprintf(out + pos, ",%s", e->caps);
		}
		if (e->key[0]) {
			pos += (size_t) sprintf(out + pos, ",%s", e->key);
		}
		out[pos++] = ';';
	}
	memcpy(out + pos, "end", 4);
	pos += 3;
	assert(pos == len);

	*ret = TAKE_PTR(out);
	*ret_len = len;
	return 0;
}

/* --- LEB128 framing --- */

size_t leb128_encode(uint64_t v, uint8_t out[static WIRE_LEB128_MAX]) {
	size_t k = 0;

	do {
		uint8_t b = v & 0x7F;

		v >>= 7;
		out[k++] = b | (v ? 0x80 : 0);
	} while (v);
	return k;
}

int wire_frame_encode(const char *s, size_t n, uint8_t **ret, size_t *ret_len) {
	uint8_t len[WIRE_LEB128_MAX];
	uint8_t *out;
	size_t k;

	if (!s && n > 0) {
		return -EINVAL;
	}
	if (n > WIRE_FRAME_MAX) {
		return -EMSGSIZE;
	}
	if (!utf8_is_valid(s, n)) {
		return -EILSEQ;
	}

	k = leb128_encode(n, len);
	out = malloc(k + n);
	if (!out) {
		return -ENOMEM;
	}
	memcpy(out, len, k);
	if (n > 0) {
		memcpy(out + k, s, n);
	}

	*ret = out;
	*ret_len = k + n;
	return 0;
}

/* Frame bytes are buffered in steps of this size at first, not by the announced length. */
#define FRAME_CHUNK 4096u

void wire_frame_decoder_init(WireFrameDecoder *d, size_t max) {
	*d = (WireFrameDecoder) {
		.max = max == 0 || max > WIRE_FRAME_MAX ? WIRE_FRAME_MAX : max,
	};
}

static void frame_decoder_reset(WireFrameDecoder *d) {
	d->buf = mfree(d->buf);
	d->allocated = 0;
	d->filled = 0;
	d->length = 0;
	d->shift = 0;
	d->have_length = false;
}

void wire_frame_decoder_done(WireFrameDecoder *d) {
	if (!d) {
		return;
	}
	frame_decoder_reset(d);
}

void wire_frame_decoder_set_binary(WireFrameDecoder *d, size_t max) {
	/* Between frames only: the frame being read keeps the old rules. */
	assert(!d->have_length && d->shift == 0);
	d->binary = true;
	d->max = max == 0 || max > WIRE_FRAME_MAX ? WIRE_FRAME_MAX : max;
}

static bool frame_decoder_complete(const WireFrameDecoder *d) {
	return d->error == 0 && d->have_length && d->filled == d->length;
}

static int frame_decoder_fail(WireFrameDecoder *d, int error) {
	frame_decoder_reset(d);
	d->error = error;
	return error;
}

/* Makes room for @want bytes plus the terminator, growing geometrically. */
static int frame_decoder_reserve(WireFrameDecoder *d, size_t want) {
	size_t size;
	char *p;

	if (want + 1 <= d->allocated) {
		return 0;
	}
	size = MAX(d->allocated * 2, (size_t) FRAME_CHUNK);
	size = MAX(size, want + 1);
	size = MIN(size, (size_t) d->length + 1);
	p = realloc(d->buf, size);
	if (!p) {
		return -ENOMEM;
	}
	d->buf = p;
	d->allocated = size;
	return 0;
}

static int frame_decoder_length_byte(WireFrameDecoder *d, uint8_t b) {
	uint64_t group = b & 0x7F;

	if (d->shift >= 7 * WIRE_LEB128_MAX) {
		return -EBADMSG; /* more than WIRE_LEB128_MAX bytes */
	}
	if (d->shift == 63 && group > 1) {
		return -EBADMSG; /* overflows 64 bits */
	}
	d->length |= group << d->shift;
	if (d->length > d->max) {
		return -EMSGSIZE;
	}
	d->shift += 7;
	if (b & 0x80) {
		return 0;
	}
	if (group == 0 && d->shift > 7) {
		return -EBADMSG; /* non-minimal: a trailing zero group */
	}
	d->have_length = true;
	return frame_decoder_reserve(d, 0);
}

int wire_frame_decoder_feed(WireFrameDecoder *d, const uint8_t *buf, size_t n,
		size_t *ret_consumed) {
	size_t i = 0;
	int r;

	if (d->error < 0) {
		return d->error;
	}
	if (frame_decoder_complete(d)) {
		*ret_consumed = 0;
		return 1;
	}

	while (!d->have_length) {
		if (i >= n) {
			*ret_consumed = i;
			return 0;
		}
		r = frame_decoder_length_byte(d, buf[i++]);
		if (r < 0) {
			return frame_decoder_fail(d, r);
		}
	}

	if (d->filled < d->length && i < n) {
		size_t take = MIN(n - i, (size_t) d->length - d->filled);

		r = frame_decoder_reserve(d, d->filled + take);
		if (r < 0) {
			return frame_decoder_fail(d, r);
		}
		memcpy(d->buf + d->filled, buf + i, take);
		d->filled += take;
		i += take;
	}
	if (d->filled < d->length) {
		*ret_consumed = i;
		return 0;
	}

	d->buf[d->filled] = 0;
	if (!d->binary && !utf8_is_valid(d->buf, d->filled)) {
		return frame_decoder_fail(d, -EILSEQ);
	}
	*ret_consumed = i;
	return 1;
}

int wire_frame_decoder_take(WireFrameDecoder *d, char **ret, size_t *ret_len) {
	if (d->error < 0) {
		return d->error;
	}
	if (!frame_decoder_complete(d)) {
		return -ENODATA;
	}
	*ret = TAKE_PTR(d->buf);
	*ret_len = d->filled;
	frame_decoder_reset(d);
	return 0;
}
