/* SPDX-License-Identifier: MIT */

/*
 * The lazily loaded libedit (see editline.h).  The handle is kept for the
 * life of the process once loaded: libedit keeps terminal state that must
 * outlive any one chat.
 */

#include <dlfcn.h>
#include <errno.h>

#include "common/log.h"
#include "common/macro.h"
#include "frontends/cli/editline.h"

#define LIBEDIT_SONAME "libedit.so.2"

__typeof__(&rl_callback_handler_install) sym_rl_callback_handler_install;
__typeof__(&rl_callback_handler_remove) sym_rl_callback_handler_remove;
__typeof__(&rl_callback_read_char) sym_rl_callback_read_char;
__typeof__(&rl_forced_update_display) sym_rl_forced_update_display;
__typeof__(&rl_resize_terminal) sym_rl_resize_terminal;
__typeof__(&add_history) sym_add_history;
__typeof__(&stifle_history) sym_stifle_history;
__typeof__(&rl_line_buffer) sym_rl_line_buffer;
__typeof__(&rl_point) sym_rl_point;
__typeof__(&rl_catch_signals) sym_rl_catch_signals;

/* The names, in the order editline_load() assigns the pointers. */
static const char *const symbol_names[] = {
	"rl_callback_handler_install",
	"rl_callback_handler_remove",
	"rl_callback_read_char",
	"rl_forced_update_display",
	"rl_resize_terminal",
	"add_history",
	"stifle_history",
	"rl_line_buffer",
	"rl_point",
	"rl_catch_signals",
};

int editline_load(void) {
	static void *handle;
	void *p[ELEMENTSOF(symbol_names)];
	void *h;

	if (handle) {
		return 0;
	}

	h = dlopen(LIBEDIT_SONAME, RTLD_NOW | RTLD_NODELETE);
	if (!h) {
		return log_error_errno(EOPNOTSUPP, "Failed to load %s for the line editor: %s",
			LIBEDIT_SONAME, dlerror());
	}
	for (size_t i = 0; i < ELEMENTSOF(symbol_names); i++) {
		p[i] = dlsym(h, symbol_names[i]);
		if (!p[i]) {
			(void) dlclose(h);
			return log_error_errno(EOPNOTSUPP, "Failed to find %s in %s.",
				symbol_names[i], LIBEDIT_SONAME);
		}
	}
	sym_rl_callback_handler_install = (__typeof__(sym_rl_callback_handler_install)) p[0];
	sym_rl_callback_handler_remove = (__typeof__(sym_rl_callback_handler_remove)) p[1];
	sym_rl_callback_read_char = (__typeof__(sym_rl_callback_read_char)) p[2];
	sym_rl_forced_update_display = (__typeof__(sym_rl_forced_update_display)) p[3];
	sym_rl_resize_terminal = (__typeof__(sym_rl_resize_terminal)) p[4];
	sym_add_history = (__typeof__(sym_add_history)) p[5];
	sym_stifle_history = (__typeof__(sym_stifle_history)) p[6];
	sym_rl_line_buffer = (__typeof__(sym_rl_line_buffer)) p[7];
	sym_rl_point = (__typeof__(sym_rl_point)) p[8];
	sym_rl_catch_signals = (__typeof__(sym_rl_catch_signals)) p[9];
	handle = h;
	return 0;
}
