#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat and the conversation around it (issue 14): per-verb help, "config
list", readable config errors, coordinator syntax, login progress and Ctrl-C,
"status" while connecting, sending to yourself and to a name never seen,
"cancel", "send --wait" outcomes (text, and JSON on a timeout), "listen"
printing each delivery once, unread counts ("peers", "history", "read"), and
"chat" telling the daemon its conversation, marking what it shows read and
showing messages sent to its peer from elsewhere (pipes and a tmux terminal).

alice is the user under test, bob a second p2pchatd; both on the real
coordinator.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import (P2PCHAT, Coordinator, SilentPort, Tmux, User, missing, run,  # noqa: E402
                     settle, wait_for)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
PLANNED = 33


def one_error_line(r, needle):
    lines = r.stderr.splitlines()
    return (r.returncode == 1 and r.stdout == "" and len(lines) == 1 and needle in lines[0],
            f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}")


def unread(u, peer):
    return {p["peer"]: p["unread"] for p in u.cli_json("peers")}.get(peer)


def term_env(u):
    return " ".join(f"{k}={u.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))


def help_tests(tap, u):
    r = u.cli("send", "--help")
    tap.ok(r.returncode == 0 and r.stdout.startswith("p2pchat [OPTIONS...] send PEER TEXT...\n")
           and "--wait" in r.stdout and "--timeout=" in r.stdout and
           "Commands:" not in r.stdout and "--limit" not in r.stdout,
           "send --help: the verb's usage line and its options", r)
    h, g = u.cli("help", "send"), u.cli("help")
    tap.ok(h.returncode == 0 and h.stdout == r.stdout and g.returncode == 0 and
           "Commands:" in g.stdout and "cancel ID" in g.stdout and "read PEER" in g.stdout,
           "help and help VERB", (h, g))
    ok, diag = one_error_line(u.cli("help", "frob"), "Unknown command 'frob'")
    tap.ok(ok, "help of an unknown verb: one error line", diag)


def coordinator_tests(tap, u, silent):
    for bad in ("127.0.0.1:99999", "http://127.0.0.1:7474"):
        ok, diag = one_error_line(
            u.cli("login", "carol", "--coordinator", bad),
            f"Invalid coordinator '{bad}': expected HOST[:PORT], HOST a name or an "
            "address, PORT 1-65535")
        tap.ok(ok, f"login --coordinator {bad}: the CLI names the syntax", diag)
    names = ("login on a terminal: 'Connecting to …' with progress",
             "status while connecting says to what, no answer yet",
             "login: Ctrl-C interrupts at once, exit 1, the daemon stops trying")
    if missing("tmux"):
        for n in names:
            tap.skip_missing(n, "tmux")
        return
    # The shell traps SIGINT so that it outlives the Ctrl-C and shows EXIT.
    with Tmux(f"trap true INT; env LANG=C.UTF-8 TERM=screen {term_env(u)} {P2PCHAT} login carol "
              f"--coordinator {silent.address}; echo EXIT=$?; sleep 30", 100, 10) as term:
        lines = term.wait_screen(lambda s: any(
            l.startswith(f"Connecting to {silent.address}...") for l in s), 10)
        dots = term.wait_screen(lambda s: any(
            l.startswith(f"Connecting to {silent.address}....") for l in s), 5)
        tap.ok(lines and dots, names[0], "\n".join(term.screen()))
        r = u.cli("status")
        tap.ok(r.returncode == 0 and re.search(
            rf"^\s*State: connecting \(to {re.escape(silent.address)}; no answer from the "
            r"coordinator yet\)$", r.stdout, re.M), names[1], r)
        start = time.monotonic()
        term.keys("C-c")
        lines = term.wait_screen(lambda s: "EXIT=1" in s, 5)
        took = time.monotonic() - start
        state = wait_for(lambda: u.prop("State") == "offline", 5)
        tap.ok(lines and took < 3 and state and any(
            l == f"Failed to log in as 'carol' at '{silent.address}': interrupted."
            for l in lines), names[2], (took, "\n".join(term.screen())))


def config_tests(tap, u):
    keys = ["username", "coordinator", "bind", "autologin", "notifications", "outbox-expiry"]
    j, g = u.cli_json("config", "list"), u.cli_json("config", "get")
    tap.ok(list(j) == keys and g == j and j["outbox-expiry"] == "7d",
           "config list and config get: every key", (j, g))
    r = u.cli("config", "list")
    lines = r.stdout.splitlines()
    tap.ok(r.returncode == 0 and lines[0].split() == ["KEY", "VALUE"] and
           lines[-1].split() == ["outbox-expiry", "7d"], "config list: a table", r.stdout)
    ok, diag = one_error_line(u.cli("config", "set", "outbox-expiry", "2w"),
                              "expected a duration such as 90s, 30m, 12h or 7d")
    tap.ok(ok, "config set outbox-expiry 2w: says the format", diag)
    ok, diag = one_error_line(u.cli("config", "set", "autologin", "maybe"),
                              "expected true or false")
    tap.ok(ok, "config set autologin maybe: says the format", diag)


def send_tests(tap, alice, bob):
    ok, diag = one_error_line(alice.cli("send", "alice", "hi"),
                              "Failed to send message to 'alice': ")
    h = alice.cli_json("history", "alice")
    tap.ok(ok and h == [], "send to yourself: one error line, exit 1, nothing stored",
           (diag, h))
    r = alice.cli("send", "stranger", "hello?")
    tap.ok(r.returncode == 0 and HEX32.match(r.stdout.strip()) and
           r.stderr == "stranger is not known yet; queued for 7 days.\n",
           "send to a name never seen: queued, and the CLI says for how long", r)
    r2 = alice.cli("send", "bob", "known")
    tap.ok(r2.returncode == 0 and r2.stderr == "", "send to a known peer: no such note", r2)

    mid = r.stdout.strip()
    c = alice.cli("cancel", mid)
    h = alice.cli_json("history", "stranger")
    tap.ok(c.returncode == 0 and c.stdout == "" and
           [(m["id"], m["state"]) for m in h] == [(mid, "failed")],
           "cancel ID: the queued message fails", (c, h))
    ok, diag = one_error_line(alice.cli("cancel", mid), f"Failed to cancel message '{mid}': ")
    tap.ok(ok, "cancel of a message no longer queued: one error line", diag)
    j = alice.cli_json("cancel", alice.cli("send", "stranger", "x").stdout.strip())
    tap.ok(j.get("status") == "cancelled" and HEX32.match(j.get("id", "")),
           "cancel --json: the id and its status", j)

    r = alice.cli("--json", "--timeout=1", "send", "--wait", "stranger", "anyone?")
    o = json.loads(r.stdout or "{}")
    tap.ok(r.returncode == 1 and HEX32.match(o.get("id", "")) and
           o.get("status") == "timeout" and o.get("peer") == "stranger" and
           "no outcome within 1 s" in r.stderr,
           "--json send --wait: a timeout prints the id and status timeout, exit 1", r)
    r = alice.cli("send", "--wait", "bob", "how are you")
    lines = r.stdout.splitlines()
    tap.ok(r.returncode == 0 and len(lines) == 2 and HEX32.match(lines[0]) and
           lines[1] == "Delivered to bob.", "send --wait as text prints the outcome", r)


def listen_tests(tap, alice, bob):
    p, out = alice.popen_subscribed("listen")
    r = alice.cli("send", "--wait", "bob", "once")
    mid = r.stdout.splitlines()[0]
    out.read_until(lambda l: "delivered" in l, 10)
    settle(1)
    seen = []
    while True:
        line = out.readline(0.2)
        if line is None:
            break
        seen.append(line)
    p.terminate()
    p.wait(10)
    tap.ok(r.returncode == 0 and not any(mid in l and "delivered" in l for l in seen),
           "listen as text: a delivery is printed once", seen)


def unread_tests(tap, alice, bob):
    for text in ("unread one", "unread two"):
        bob.send("alice", text)
    tap.ok(wait_for(lambda: unread(alice, "bob") == 2, 10),
           "peers --json: unread counts the messages not read", alice.cli_json("peers"))
    r = alice.cli("peers")
    lines = r.stdout.splitlines()
    bob_row = [l.split() for l in lines if l.startswith("bob ")]
    tap.ok(lines[0].split() == ["NAME", "ENDPOINT", "ONLINE", "NATIVE", "UNREAD"] and
           bob_row and bob_row[0][-1] == "2", "peers: an UNREAD column", r.stdout)
    r = alice.cli("history", "bob")
    rows = [l for l in r.stdout.splitlines() if "unread one" in l]
    tap.ok(rows and re.search(r"\bbob\s+unread\s+unread one$", rows[0]),
           "history: an incoming message not read is 'unread'", r.stdout)
    r = alice.cli("read", "bob")
    h = alice.cli("history", "bob")
    rows = [l for l in h.stdout.splitlines() if "unread one" in l]
    tap.ok(r.returncode == 0 and unread(alice, "bob") == 0 and rows and
           re.search(r"\bbob\s+read\s+unread one$", rows[0]),
           "read PEER marks them read; history says 'read'", (r, h.stdout))


def chat_pipe_tests(tap, alice, bob):
    p, out = alice.popen_subscribed("chat", "bob")
    tap.ok(wait_for(lambda: alice.prop("ActiveConversation") == "bob", 5),
           "chat tells the daemon its conversation", alice.prop("ActiveConversation"))
    bob.send("alice", "while chatting")
    line, seen = out.read_until(lambda l: l.endswith("bob: while chatting"))
    tap.ok(line is not None and unread(alice, "bob") == 0,
           "what the chat shows is read", (seen, alice.cli_json("peers")))
    alice.send("bob", "sent from elsewhere")
    line, seen = out.read_until(lambda l: "sent from elsewhere" in l)
    tap.ok(line is not None and line.endswith("me: sent from elsewhere"),
           "chat shows a message to its peer sent by another client", seen)
    p.stdin.write("typed here\n")
    p.stdin.flush()
    bob.wait_signal("MessageReceived", lambda a: a[2] == "typed here", 10)
    p.stdin.close()
    rc = p.wait(10)
    rest = p.stdout.read()
    tap.ok(rc == 0 and "typed here" not in rest and
           not any("typed here" in l for l in out.buf.splitlines()),
           "chat does not echo its own lines back", (rc, rest, out.buf))
    tap.ok(wait_for(lambda: alice.prop("ActiveConversation") == "", 5),
           "the conversation is no longer active when chat ends",
           alice.prop("ActiveConversation"))
    r = alice.cli("--json", "chat", "bob", input="json line\n")
    events = [json.loads(l) for l in r.stdout.splitlines()]
    tap.ok(r.returncode == 0 and [e["text"] for e in events
                                  if e["event"] == "messageQueued"] == ["json line"],
           "chat --json: one messageQueued for its own line", r)


def chat_tty_tests(tap, alice, bob):
    names = ("chat on a terminal: the backlog shown is marked read",
             "chat on a terminal: a message sent from elsewhere appears")
    if missing("tmux"):
        for n in names:
            tap.skip_missing(n, "tmux")
        return
    bob.send("alice", "backlog message")
    wait_for(lambda: unread(alice, "bob") == 1, 10)
    with Tmux(f"env LANG=C.UTF-8 TERM=screen NO_COLOR=1 {term_env(alice)} {P2PCHAT} chat bob; "
              "echo EXIT=$?; sleep 30", 80, 15) as term:
        lines = term.wait_screen(lambda s: any(l.startswith("alice>") for l in s), 10)
        tap.ok(lines and any(l.endswith("bob: backlog message") for l in lines) and
               wait_for(lambda: unread(alice, "bob") == 0, 5), names[0],
               ("\n".join(term.screen()), alice.cli_json("peers")))
        alice.send("bob", "from busctl")
        lines = term.wait_screen(lambda s: any(l.endswith("me: from busctl") for l in s), 10)
        tap.ok(lines and lines[-1] == "alice>", names[1], "\n".join(term.screen()))
        term.keys("C-d")
        term.wait_screen(lambda s: "EXIT=0" in s, 5)


def body(tap):
    alice = User("alice")
    help_tests(tap, alice)
    silent = SilentPort()
    coordinator_tests(tap, alice, silent)
    silent.close()
    config_tests(tap, alice)
    coord = Coordinator()
    bob = User("bob")
    alice.login("alice", coord.address)
    bob.login("bob", coord.address)
    wait_for(lambda: "bob" in alice.online_peers(), 10)
    send_tests(tap, alice, bob)
    listen_tests(tap, alice, bob)
    unread_tests(tap, alice, bob)
    chat_pipe_tests(tap, alice, bob)
    chat_tty_tests(tap, alice, bob)


if __name__ == "__main__":
    run(body, PLANNED)
