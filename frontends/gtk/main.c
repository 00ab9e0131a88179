/* SPDX-License-Identifier: MIT */
/*
 * p2pchat-gtk: entry point.  Everything lives in ChatApplication; main()
 * only runs it.
 */

#include <stdlib.h>

#include "frontends/gtk/chat-application.h"

int main(int argc, char *argv[]) {
	g_autoptr(ChatApplication) app = chat_application_new();

	g_set_application_name("p2pchat");
	return g_application_run(G_APPLICATION(app), argc, argv);
}
