#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat over the daemon's store: "config get|set", "login" with the
configured coordinator, "history PEER" and "search TEXT" (tables and --json),
and "chat" telling that a message to an offline peer is queued.
"""

import os
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import cli  # noqa: E402

PLANNED = 13


def body(tap):
    coordinator = cli.start_coordinator()
    alice, bob = cli.User("alice"), cli.User("bob")
    alice.start_daemon()
    bob.start_daemon()

    r = alice.cli("config", "set", "coordinator", coordinator)
    g = alice.cli("config", "get", "coordinator")
    tap.ok("config set, then get, through the daemon",
           r.returncode == 0 and g.returncode == 0 and g.stdout == coordinator + "\n", (r, g))
    r = alice.cli("config", "set", "autologin", "maybe")
    tap.ok("config set with a bad value: one error line naming the key, exit 1",
           r.returncode == 1 and len(r.stderr.splitlines()) == 1 and
           r.stderr.startswith("Failed to set 'autologin': ") and "autologin" in r.stderr, r)
    r = alice.cli("config", "get", "colour")
    tap.ok("config get of an unknown key fails", r.returncode == 1 and "colour" in r.stderr, r)
    r = alice.cli("config", "get")
    tap.ok("config get without a key is bad usage", r.returncode == 1, r)

    st = alice.cli_json("login", "alice")
    tap.ok("login without --coordinator uses the configured one",
           st.get("state") == "online" and st.get("coordinator") == coordinator, st)
    bob.cli_json("login", "bob", "--coordinator", coordinator)
    cli.wait_for(lambda: [p for p in alice.cli_json("peers") if p["online"]], timeout=10)

    for text in ("first, hello", "second line", "third: HELLO again"):
        r = alice.cli("--json", "send", "--wait", "bob", text)
        assert r.returncode == 0, r
    r = bob.cli("--json", "send", "--wait", "alice", "a reply")
    assert r.returncode == 0, r

    h = alice.cli_json("history", "bob")
    tap.ok("history --json: the conversation, oldest first",
           [m["text"] for m in h] == ["first, hello", "second line", "third: HELLO again",
                                     "a reply"] and
           [m["direction"] for m in h] == ["out", "out", "out", "in"] and
           h[0]["state"] == "delivered" and h[0]["peer"] == "bob", h)
    r = alice.cli("history", "bob")
    lines = r.stdout.splitlines()
    tap.ok("history: a table with a header and a count",
           r.returncode == 0 and lines[0].split() == ["TIME", "FROM", "STATE", "TEXT"] and
           "me" in lines[1] and "delivered" in lines[1] and lines[-1] == "4 messages.", r.stdout)
    h = alice.cli_json("-n", "2", "history", "bob")
    tap.ok("history -n 2: the newest two", [m["text"] for m in h] ==
           ["third: HELLO again", "a reply"], h)

    s = alice.cli_json("search", "hello")
    tap.ok("search --json: case-insensitive, newest first",
           [m["text"] for m in s] == ["third: HELLO again", "first, hello"], s)
    r = alice.cli("search", "a", "reply")
    tap.ok("search: words joined, a table with PEER",
           r.returncode == 0 and r.stdout.splitlines()[0].split() ==
           ["TIME", "PEER", "FROM", "STATE", "TEXT"] and "a reply" in r.stdout, r.stdout)

    bob.cli("logout")
    cli.wait_for(lambda: not [p for p in alice.cli_json("peers") if p["online"]], timeout=10)
    r = alice.cli("chat", "bob", input="are you there?\n", timeout=20)
    tap.ok("chat to an offline peer says the message is queued, exit 0",
           r.returncode == 0 and "queued" in r.stdout, r)
    st = alice.cli_json("history", "bob")
    tap.ok("the queued message is in the history",
           st[-1]["text"] == "are you there?" and st[-1]["state"] == "queued", st[-1])

    name = "chat on a terminal starts with the conversation, states shown"
    if not shutil.which("tmux"):
        tap.ok(f"{name} # SKIP tmux not installed", True)
        return
    sock = f"p2pchat-store-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}={alice.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))

    def tmux(*args):
        return subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10,
                              env={**os.environ, "SHELL": "/bin/sh"})

    def screen():
        return [l.rstrip() for l in tmux("capture-pane", "-p").stdout.splitlines()
                if l.strip()]
    try:
        tmux("new-session", "-d", "-x", "80", "-y", "15",
             f"env LANG=C.UTF-8 TERM=screen NO_COLOR=1 {env} {cli.P2PCHAT} chat bob; "
             "sleep 30")
        lines = cli.wait_for(lambda: (lambda s: s if any(l.startswith("alice>") for l in s)
                                      else None)(screen()), 10) or screen()
        tap.ok(name, any(l.endswith("me: first, hello") for l in lines) and
               any(l.endswith("bob: a reply") for l in lines) and
               any(l.endswith("me: are you there? (queued)") for l in lines) and
               any(l.startswith("Chatting with bob (offline).") for l in lines),
               "\n".join(lines))
    finally:
        tmux("kill-server")


sys.exit(cli.main_wrapper(PLANNED, body))
