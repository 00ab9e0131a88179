/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * libedit, loaded with dlopen() the first time an interactive chat needs it.
 * Every other verb then starts without loading libedit and the libraries
 * it pulls in (libtinfo, libbsd, libmd), which is most of the dynamic
 * loader's work for a one-shot "p2pchat send".
 *
 * Use the sym_*() pointers only after editline_load() succeeded.
 */

#include <stdio.h>

#include <editline/readline.h>

extern __typeof__(&rl_callback_handler_install) sym_rl_callback_handler_install;
extern __typeof__(&rl_callback_handler_remove) sym_rl_callback_handler_remove;
extern __typeof__(&rl_callback_read_char) sym_rl_callback_read_char;
extern __typeof__(&rl_forced_update_display) sym_rl_forced_update_display;
extern __typeof__(&rl_resize_terminal) sym_rl_resize_terminal;
extern __typeof__(&add_history) sym_add_history;
extern __typeof__(&stifle_history) sym_stifle_history;
extern __typeof__(&rl_line_buffer) sym_rl_line_buffer;
extern __typeof__(&rl_point) sym_rl_point;
extern __typeof__(&rl_catch_signals) sym_rl_catch_signals;

/*
 * editline_load() - dlopen libedit and resolve the sym_*() pointers
 *
 * Safe to call more than once.  Logs.
 * Return: 0, or -EOPNOTSUPP when libedit or one of its symbols is missing.
 */
int editline_load(void);
