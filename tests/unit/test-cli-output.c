/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of the CLI's pure helpers: frontends/cli/output.c (JSON modes,
 * escaping, widths, tables) and the event lines of frontends/cli/client.c.
 * stdout is swapped for a temporary file where output is checked; colours
 * are off because it is not a terminal.
 */

#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/macro.h"
#include "frontends/cli/client.h"
#include "frontends/cli/output.h"

static const struct {
	const char *in;
	JsonFormat out;
} json_modes[] = {
	{ "off", JSON_FORMAT_OFF },
	{ "short", JSON_FORMAT_SHORT },
	{ "pretty", JSON_FORMAT_PRETTY },
	{ "", _JSON_FORMAT_INVALID },
	{ "Pretty", _JSON_FORMAT_INVALID },
	{ "yaml", _JSON_FORMAT_INVALID },
};

static void test_output_json_format_from_string(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(json_modes); i++) {
		assert_int_equal(json_format_from_string(json_modes[i].in), json_modes[i].out);
	}
	assert_int_equal(json_format_from_string(NULL), _JSON_FORMAT_INVALID);
}

static const struct {
	const char *in;
	const char *out;
} escapes[] = {
	{ "", "" },
	{ "plain text", "plain text" },
	{ "two\nlines", "two\\nlines" },
	{ "tab\there", "tab\\there" },
	{ "cr\r", "cr\\r" },
	{ "back\\slash", "back\\\\slash" },
	{ "\033[2Jclear", "\\x1b[2Jclear" },
	{ "bell\a del\x7f", "bell\\x07 del\\x7f" },
	{ "日本語 ok", "日本語 ok" },
	{ "\x01\x1f", "\\x01\\x1f" },
};

static void test_output_text_escape(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(escapes); i++) {
		_cleanup_free_ char *s = text_escape(escapes[i].in);

		assert_non_null(s);
		assert_string_equal(s, escapes[i].out);
	}
}

static void test_output_utf8_width(void **state) {
	assert_int_equal(utf8_width(""), 0);
	assert_int_equal(utf8_width("abc"), 3);
	assert_int_equal(utf8_width("日本"), 4);
	assert_int_equal(utf8_width("é"), 1);
	/* Invalid UTF-8 counts one column a byte, never crashes. */
	assert_int_equal(utf8_width("\xff\xfe" "a"), 3);
}

/* Runs f with stdout redirected to a temporary file; returns what it printed. */
static char *capture_stdout(void (*f)(void *), void *userdata) {
	FILE *tmp = tmpfile();
	char *buf;
	long n;
	int saved;

	assert_non_null(tmp);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
	f(userdata);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);

	n = ftell(tmp);
	assert_true(n >= 0);
	buf = calloc(1, (size_t) n + 1);
	assert_non_null(buf);
	rewind(tmp);
	assert_int_equal(fread(buf, 1, (size_t) n, tmp), (size_t) n);
	fclose(tmp);
	return buf;
}

static void print_table(void *userdata) {
	static const char *const headers[] = { "NAME", "ENDPOINT", "ON" };
	static const char *const rows[][3] = {
		{ "bob", "127.0.0.1:5000", "yes" },
		{ "日本", "[::1]:7", "no" },
	};
	_cleanup_(table_freep) Table *t = table_new(3, headers);
	bool *legend = userdata;

	assert_non_null(t);
	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		assert_int_equal(table_add_row(t, rows[i]), 0);
	}
	assert_int_equal(table_get_rows(t), 2);
	assert_int_equal(table_print(t, *legend), 0);
}

static void test_output_table_aligns_by_display_width(void **state) {
	bool legend = true;
	_cleanup_free_ char *with = capture_stdout(print_table, &legend);
	_cleanup_free_ char *without = NULL;

	assert_string_equal(with,
		"NAME ENDPOINT       ON\n"
		"bob  127.0.0.1:5000 yes\n"
		"日本 [::1]:7        no\n");
	legend = false;
	without = capture_stdout(print_table, &legend);
	assert_string_equal(without,
		"bob  127.0.0.1:5000 yes\n"
		"日本 [::1]:7        no\n");
}

/* Enough rows to make the cell array grow several times. */
#define MANY_ROWS 1000

static void print_many_rows(void *userdata) {
	static const char *const headers[] = { "N", "SQUARE" };
	_cleanup_(table_freep) Table *t = table_new(2, headers);

	assert_non_null(t);
	for (unsigned i = 0; i < MANY_ROWS; i++) {
		char n[16], square[16];
		const char *cells[] = { n, square };

		(void) snprintf(n, sizeof(n), "%u", i);
		(void) snprintf(square, sizeof(square), "%u", i * i);
		assert_int_equal(table_add_row(t, cells), 0);
	}
	assert_int_equal(table_get_rows(t), MANY_ROWS);
	assert_int_equal(table_print(t, false), 0);
}

static void test_output_table_keeps_many_rows(void **state) {
	_cleanup_free_ char *out = capture_stdout(print_many_rows, NULL);
	const char *line = out;

	for (unsigned i = 0; i < MANY_ROWS; i++) {
		char expected[64];
		const char *end = strchr(line, '\n');

		assert_non_null(end);
		/* Columns are as wide as "999" plus one space. */
		(void) snprintf(expected, sizeof(expected), "%-4u%u", i, i * i);
		assert_int_equal((size_t) (end - line), strlen(expected));
		assert_memory_equal(line, expected, strlen(expected));
		line = end + 1;
	}
	assert_string_equal(line, "");
}

static void print_json(void *userdata) {
	json_object *o = json_object_new_object();

	json_object_object_add(o, "peer", json_object_new_string("a/b"));
	assert_int_equal(json_print(o, *(JsonFormat *) userdata), 0);
	json_object_put(o);
}

static void test_output_json_print_modes(void **state) {
	JsonFormat f = JSON_FORMAT_SHORT;
	_cleanup_free_ char *s = capture_stdout(print_json, &f);
	_cleanup_free_ char *p = NULL;

	/* One line, and no "\/" escaping. */
	assert_string_equal(s, "{\"peer\":\"a/b\"}\n");
	f = JSON_FORMAT_PRETTY;
	p = capture_stdout(print_json, &f);
	assert_string_equal(p, "{\n  \"peer\": \"a/b\"\n}\n");
}

static const struct {
	const char *json;
	bool show_ids;
	const char *suffix; /* the line after "[HH:MM:SS] " */
} event_lines[] = {
	{ "{\"event\":\"messageReceived\",\"id\":\"i\",\"peer\":\"bob\",\"text\":\"hi\\nthere\","
	  "\"timestampUsec\":0}", true, "bob: hi\\nthere" },
	{ "{\"event\":\"peerJoined\",\"name\":\"b\\u001bob\",\"endpoint\":\"1.2.3.4:5\"}", true,
	  "* b\\x1bob is online (1.2.3.4:5)" },
	{ "{\"event\":\"peerLeft\",\"name\":\"bob\"}", false, "* bob is offline" },
	{ "{\"event\":\"messageDelivered\",\"id\":\"abc\",\"peer\":\"bob\"}", true,
	  "* message abc delivered to bob" },
	{ "{\"event\":\"messageDelivered\",\"id\":\"abc\",\"peer\":\"bob\"}", false,
	  "* message delivered to bob" },
	{ "{\"event\":\"messageSent\",\"id\":\"abc\",\"peer\":\"ref\"}", true,
	  "* message abc sent to ref (no delivery receipt)" },
	{ "{\"event\":\"messageFailed\",\"id\":\"abc\",\"peer\":\"bob\",\"reason\":\"timeout\"}",
	  false, "! message to bob failed: timeout" },
	{ "{\"event\":\"propertiesChanged\",\"state\":\"online\",\"username\":\"alice\"}", true,
	  "* state: online, username: alice" },
};

static void test_client_event_format_line(void **state) {
	for (size_t i = 0; i < ELEMENTSOF(event_lines); i++) {
		json_object *ev = json_tokener_parse(event_lines[i].json);
		_cleanup_free_ char *line = NULL;

		assert_non_null(ev);
		line = event_format_line(ev, event_lines[i].show_ids);
		assert_non_null(line);
		/* "[HH:MM:SS] " comes first. */
		assert_true(strlen(line) > 11);
		assert_int_equal(line[0], '[');
		assert_string_equal(line + 11, event_lines[i].suffix);
		json_object_put(ev);
	}
}

static void test_client_event_format_line_unknown(void **state) {
	json_object *ev = json_tokener_parse("{\"event\":\"somethingNew\"}");

	assert_null(event_format_line(ev, true));
	json_object_put(ev);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_json_format_from_string),
		cmocka_unit_test(test_output_text_escape),
		cmocka_unit_test(test_output_utf8_width),
		cmocka_unit_test(test_output_table_aligns_by_display_width),
		cmocka_unit_test(test_output_table_keeps_many_rows),
		cmocka_unit_test(test_output_json_print_modes),
		cmocka_unit_test(test_client_event_format_line),
		cmocka_unit_test(test_client_event_format_line_unknown),
	};

	if (!setlocale(LC_ALL, "C.UTF-8")) {
		(void) setlocale(LC_ALL, "");
	}
	return cmocka_run_group_tests_name("cli-output", tests, NULL, NULL);
}
