/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * Replaces *str with a copy of new_str; returns TRUE when the value changed,
 * so a setter can notify only then (g_set_str() arrives in GLib 2.76).
 */
static inline gboolean chat_set_str(char **str, const char *new_str) {
	if (g_strcmp0(*str, new_str) == 0) {
		return FALSE;
	}
	g_free(*str);
	*str = g_strdup(new_str);
	return TRUE;
}

G_END_DECLS
