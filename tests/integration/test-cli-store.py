#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat over the daemon's store: "config get|set", "login" with the
configured coordinator, "history PEER" and "search TEXT" (tables and --json),
and "chat" telling that a message to an offline peer is queued.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import P2PCHAT, Coordinator, Tmux, User, missing, run, wait_for  # noqa: E402

PLANNED = 13


def body(tap):
    coordinator = Coordinator().address
    alice, bob = User("alice"), User("bob")

    r = alice.cli("config", "set", "coordinator", coordinator)
    g = alice.cli("config", "get", "coordinator")
    tap.ok(r.returncode == 0 and g.returncode == 0 and g.stdout == coordinator + "\n",
           "config set, then get, through the daemon", (r, g))
    r = alice.cli("config", "set", "autologin", "maybe")
    tap.ok(r.returncode == 1 and len(r.stderr.splitlines()) == 1 and
           r.stderr.startswith("Failed to set 'autologin': ") and "autologin" in r.stderr,
           "config set with a bad value: one error line naming the key, exit 1", r)
    r = alice.cli("config", "get", "colour")
    tap.ok(r.returncode == 1 and "colour" in r.stderr, "config get of an unknown key fails", r)
    # "config get" without a key lists every setting now (issue 14).
    r = alice.cli("config", "frob")
    tap.ok(r.returncode == 1 and "Usage:" in r.stderr, "config frob is bad usage", r)

    st = alice.cli_json("login", "alice")
    tap.ok(st.get("state") == "online" and st.get("coordinator") == coordinator,
           "login without --coordinator uses the configured one", st)
    bob.cli_json("login", "bob", "--coordinator", coordinator)
    wait_for(lambda: [p for p in alice.cli_json("peers") if p["online"]], timeout=10)

    for text in ("first, hello", "second line", "third: HELLO again"):
        r = alice.cli("--json", "send", "--wait", "bob", text)
        assert r.returncode == 0, r
    r = bob.cli("--json", "send", "--wait", "alice", "a reply")
    assert r.returncode == 0, r

    h = alice.cli_json("history", "bob")
    tap.ok([m["text"] for m in h] == ["first, hello", "second line", "third: HELLO again",
                                     "a reply"] and
           [m["direction"] for m in h] == ["out", "out", "out", "in"] and
           h[0]["state"] == "delivered" and h[0]["peer"] == "bob",
           "history --json: the conversation, oldest first", h)
    r = alice.cli("history", "bob")
    lines = r.stdout.splitlines()
    tap.ok(r.returncode == 0 and lines[0].split() == ["TIME", "FROM", "STATE", "TEXT"] and
           "me" in lines[1] and "delivered" in lines[1] and lines[-1] == "4 messages.",
           "history: a table with a header and a count", r.stdout)
    h = alice.cli_json("-n", "2", "history", "bob")
    tap.ok([m["text"] for m in h] ==
           ["third: HELLO again", "a reply"], "history -n 2: the newest two", h)

    s = alice.cli_json("search", "hello")
    tap.ok([m["text"] for m in s] == ["third: HELLO again", "first, hello"],
           "search --json: case-insensitive, newest first", s)
    r = alice.cli("search", "a", "reply")
    tap.ok(r.returncode == 0 and r.stdout.splitlines()[0].split() ==
           ["TIME", "PEER", "FROM", "STATE", "TEXT"] and "a reply" in r.stdout,
           "search: words joined, a table with PEER", r.stdout)

    bob.cli("logout")
    wait_for(lambda: not [p for p in alice.cli_json("peers") if p["online"]], timeout=10)
    r = alice.cli("chat", "bob", input="are you there?\n", timeout=20)
    tap.ok(r.returncode == 0 and "queued" in r.stdout,
           "chat to an offline peer says the message is queued, exit 0", r)
    st = alice.cli_json("history", "bob")
    tap.ok(st[-1]["text"] == "are you there?" and st[-1]["state"] == "queued",
           "the queued message is in the history", st[-1])

    name = "chat on a terminal starts with the conversation, states shown"
    if missing("tmux"):
        tap.skip_missing(name, "tmux")
        return
    env = " ".join(f"{k}={alice.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))
    with Tmux(f"env LANG=C.UTF-8 TERM=screen NO_COLOR=1 {env} {P2PCHAT} chat bob; sleep 30",
              80, 15) as term:
        lines = term.wait_screen(lambda s: any(l.startswith("alice>") for l in s),
                                 10) or term.screen()
        tap.ok(any(l.endswith("me: first, hello") for l in lines) and
               any(l.endswith("bob: a reply") for l in lines) and
               any(l.endswith("me: are you there? (queued)") for l in lines) and
               any(l.startswith("Chatting with bob (offline).") for l in lines),
               name, "\n".join(lines))


run(body, PLANNED)
