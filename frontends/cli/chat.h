/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * "p2pchat chat PEER": a conversation with one peer.  On a terminal it is an
 * interactive line editor (libedit) whose input line survives incoming
 * messages; otherwise it sends each line of stdin and prints what arrives.
 */

int verb_chat(int argc, char *argv[], void *userdata);
