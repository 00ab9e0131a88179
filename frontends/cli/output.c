/* SPDX-License-Identifier: MIT */

/*
 * Output helpers of the p2pchat CLI.  A Table owns copies of its cells and
 * lives only while a verb builds and prints it.  Colour decisions are made
 * once per process from stdout and $NO_COLOR.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "frontends/cli/output.h"

static const char *const json_format_table[_JSON_FORMAT_MAX] = {
	[JSON_FORMAT_OFF] = "off",
	[JSON_FORMAT_SHORT] = "short",
	[JSON_FORMAT_PRETTY] = "pretty",
};

JsonFormat json_format_from_string(const char *s) {
	return (JsonFormat) string_table_find(json_format_table, ELEMENTSOF(json_format_table), s);
}

int json_print(json_object *o, JsonFormat format) {
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
	const char *s;

	switch (format) {
	case JSON_FORMAT_OFF:
	case JSON_FORMAT_SHORT:
		flags |= JSON_C_TO_STRING_PLAIN;
		break;
	case JSON_FORMAT_PRETTY:
		flags |= JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
		break;
	case _JSON_FORMAT_MAX:
	case _JSON_FORMAT_INVALID:
		abort();
	}

	s = json_object_to_json_string_ext(o, flags);
	if (!s) {
		return -ENOMEM;
	}
	if (fputs(s, stdout) < 0 || fputc('\n', stdout) < 0 || fflush(stdout) != 0) {
		return -EIO;
	}
	return 0;
}

bool colors_enabled(void) {
	static int cached = -1;

	if (cached < 0) {
		const char *term = getenv("TERM");

		cached = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
			!streq_ptr(term, "dumb");
	}
	return cached;
}

const char *ansi_highlight(void) {
	return colors_enabled() ? "\033[1m" : "";
}

const char *ansi_grey(void) {
	return colors_enabled() ? "\033[90m" : "";
}

const char *ansi_green(void) {
	return colors_enabled() ? "\033[32m" : "";
}

const char *ansi_red(void) {
	return colors_enabled() ? "\033[31m" : "";
}

const char *ansi_normal(void) {
	return colors_enabled() ? "\033[0m" : "";
}

char *text_escape(const char *s) {
	size_t n = strlen(s);
	char *buf, *p;

	/* The worst case is "\xHH" for every byte. */
	buf = malloc(n * 4 + 1);
	if (!buf) {
		return NULL;
	}
	p = buf;
	for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
		switch (*c) {
		case '\n':
			p = stpcpy(p, "\\n");
			break;
		case '\t':
			p = stpcpy(p, "\\t");
			break;
		case '\r':
			p = stpcpy(p, "\\r");
			break;
		case '\\':
			p = stpcpy(p, "\\\\");
			break;
		default:
			if (*c < 0x20 || *c == 0x7f) {
				p += sprintf(p, "\\x%02x", *c);
			} else {
				*p++ = (char) *c;
			}
		}
	}
	*p = '\0';
	return buf;
}

const char *format_clock(uint64_t usec, char buf[static 9]) {
	time_t t = (time_t) (usec / USEC_PER_SEC);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, 9, "%H:%M:%S", &tm) == 0) {
		strcpy(buf, "--:--:--");
	}
	return buf;
}

size_t utf8_width(const char *s) {
	mbstate_t st = { 0 };
	size_t width = 0, n = strlen(s);

	while (n > 0) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, s, n, &st);
		int w;

		if (k == (size_t) -1 || k == (size_t) -2 || k == 0) {
			/* Not valid in this locale: count the byte as one cell. */
			memset(&st, 0, sizeof(st));
			k = 1;
			w = 1;
		} else {
			w = wcwidth(wc);
			if (w < 0) {
				w = 0;
			}
		}
		width += (size_t) w;
		s += k;
		n -= k;
	}
	return width;
}

struct Table {
	size_t ncols;
	size_t nrows;     /* including the header row */
	char **cells;     /* nrows * ncols */
	size_t allocated; /* room in cells, counted in cells */
};

Table *table_free(Table *t) {
	if (!t) {
		return NULL;
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	return mfree(t);
}

int table_add_row(Table *t, const char *const *cells) {
	size_t first = t->nrows * t->ncols;

	if (GREEDY_REALLOC(t->cells, t->allocated, first + t->ncols) < 0) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		t->cells[first + i] = NULL;
	}
	t->nrows++;
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = strdup(strempty(cells[i]));

		if (!c) {
			return -ENOMEM;
		}
		t->cells[first + i] = c;
	}
	return 0;
}

Table *table_new(size_t ncols, const char *const *headers) {
	_cleanup_(table_freep) Table *t = NULL;

	t = calloc(1, sizeof(Table));
	if (!t) {
		return NULL;
	}
	t->ncols = ncols;
	if (table_add_row(t, headers) < 0) {
		return NULL;
	}
	return TAKE_PTR(t);
}

size_t table_get_rows(const Table *t) {
	return t->nrows - 1;
}

int table_print(const Table *t, bool legend) {
	_cleanup_free_ size_t *widths = NULL;

	widths = calloc(t->ncols, sizeof(size_t));
	if (!widths) {
		return -ENOMEM;
	}
	for (size_t r = legend ? 0 : 1; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			widths[c] = MAX(widths[c], utf8_width(t->cells[r * t->ncols + c]));
		}
	}

	for (size_t r = legend ? 0 : 1; r < t->nrows; r++) {
		if (r == 0) {
			fputs(ansi_highlight(), stdout);
		}
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			fputs(cell, stdout);
			if (c + 1 < t->ncols) {
				/* Pad to the column width plus one space. */
				for (size_t w = utf8_width(cell); w <= widths[c]; w++) {
					fputc(' ', stdout);
				}
			}
		}
		if (r == 0) {
			fputs(ansi_normal(), stdout);
		}
		fputc('\n', stdout);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		return -EIO;
	}
	return 0;
}
