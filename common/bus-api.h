/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The names of the org.p2pchat.chat1 D-Bus API (dbus/org.p2pchat.chat1.xml),
 * in one place for the daemon, the CLI, the GTK app and the benchmarks.
 */

#define P2PCHAT_BUS_NAME "org.p2pchat.chat1"
#define P2PCHAT_OBJECT_PATH "/org/p2pchat/chat1"
#define P2PCHAT_MANAGER_INTERFACE "org.p2pchat.chat1.Manager"
#define P2PCHAT_PEER_INTERFACE "org.p2pchat.chat1.Peer"
#define P2PCHAT_PEER_PATH_PREFIX "/org/p2pchat/chat1/peer"
