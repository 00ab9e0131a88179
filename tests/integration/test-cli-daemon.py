#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat end to end: the real coordinator on a random loopback port and two
users (alice, bob), each with a private dbus-daemon, temporary HOME/XDG dirs
and the real p2pchatd, driven only through "p2pchat --json".
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import SLOW, Coordinator, User, run, wait_for  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
PLANNED = 18


def received(text):
    return lambda l: (json.loads(l).get("event") == "messageReceived" and
                      json.loads(l).get("text") == text)


def body(tap):
    coordinator = Coordinator().address
    alice, bob = User("alice"), User("bob")
    listen = {u.name: u.popen_subscribed("--json", "listen")[1] for u in (alice, bob)}

    st = alice.cli_json("login", "alice", "--coordinator", coordinator)
    tap.ok(st.get("state") == "online" and st.get("username") == "alice" and
           st.get("coordinator") == coordinator and
           st.get("localEndpoint", "").startswith("127.0.0.1:"), "alice logs in", st)
    st = bob.cli_json("login", "bob", "--coordinator", coordinator)
    tap.ok(st.get("state") == "online", "bob logs in", st)

    def bob_online():
        peers = alice.cli_json("peers")
        return [p for p in peers if p["name"] == "bob" and p["online"]]
    peers = wait_for(bob_online, timeout=10)
    tap.ok(peers and peers[0]["native"] is True and peers[0]["endpoint"].startswith("127.0.0.1:"),
           "alice's roster shows bob online and native",
           alice.cli("--json", "peers").stdout)
    line, seen = listen["alice"].read_until(
        lambda l: json.loads(l).get("event") == "peerJoined" and json.loads(l)["name"] == "bob")
    tap.ok(line is not None, "alice's listen --json saw peerJoined bob", seen)

    text = "hello bob, 你好"
    r = alice.cli("--json", "send", "--wait", "bob", text)
    o = json.loads(r.stdout or "{}")
    tap.ok(r.returncode == 0 and o.get("status") == "delivered" and
           HEX32.match(o.get("id", "")), "send --wait to bob: delivered", r)
    line, seen = listen["bob"].read_until(received(text))
    tap.ok(line is not None and json.loads(line)["peer"] == "alice" and
           json.loads(line)["timestampUsec"] > 0,
           "bob's listen --json got the message from alice", seen)

    r = bob.cli("send", "alice", "-", input="multi\nline from bob\n")
    line, seen = listen["alice"].read_until(received("multi\nline from bob"))
    tap.ok(r.returncode == 0 and line is not None, "send - from bob arrives at alice",
           (r, seen))

    r = alice.cli("send", "no;body", "hi")
    tap.ok(r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1 and
           r.stderr.startswith("Failed to send message to 'no;body': "),
           "send to an invalid peer name: one error line naming it, exit 1", r)

    r = alice.cli("send", "bob", "-", input="x" * (16 * 1024 + 1))
    tap.ok(r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1 and
           r.stderr.startswith("Failed to send message to 'bob': "),
           "send - of 16 KiB + 1: the daemon's MessageTooLong, one line, exit 1", r)

    chat, out = alice.popen_subscribed("chat", "bob")
    chat.stdin.write("pong from alice\n")
    chat.stdin.flush()
    line, seen = listen["bob"].read_until(received("pong from alice"))
    tap.ok(line is not None, "a line written to alice's chat reaches bob", seen)
    r = bob.cli("send", "alice", "ping from bob")
    line, seen = out.read_until(lambda l: l.endswith("bob: ping from bob"))
    tap.ok(line is not None, "alice's chat with pipes prints bob's message", (r, seen))
    chat.stdin.close()
    tap.ok(chat.wait(15) == 0, "alice's chat exits 0 at end of input", chat.stderr.read())

    ming = User("ming")
    st = ming.cli_json("login", "小明", "--coordinator", coordinator)
    peers = wait_for(lambda: [p for p in alice.cli_json("peers")
                                  if p["name"] == "小明" and p["online"]], timeout=10)
    r = alice.cli("peers")
    rows = r.stdout.splitlines()
    col = [l for l in rows if l.startswith("小明")]
    tap.ok(st.get("username") == "小明" and peers and col and
           rows[0].index("ENDPOINT") == col[0].index("127.0.0.1") + 2,
           "a CJK name: logs in, and alice's table stays aligned by display width", r.stdout)
    r = alice.cli("--json", "send", "--wait", "小明", "你好，小明")
    tap.ok(r.returncode == 0 and json.loads(r.stdout or "{}").get("status") == "delivered",
           "send --wait to a CJK name: delivered", r)

    r = bob.cli("logout")
    line, seen = listen["alice"].read_until(
        lambda l: json.loads(l).get("event") == "peerLeft" and json.loads(l)["name"] == "bob")
    tap.ok(r.returncode == 0 and line is not None, "bob logs out; alice sees peerLeft",
           (r, seen))
    r = bob.cli("send", "alice", "hi")
    tap.ok(r.returncode == 1 and
           r.stderr.startswith("Failed to send message to 'alice': ") and r.stdout == "",
           "send while logged out: named error", r)
    lp, _ = ming.popen_subscribed("listen")
    ming.bus.stop()
    rc = lp.wait(10 * SLOW)
    err = lp.stderr.read() or ""
    tap.ok(rc == 1 and err.strip().splitlines()[-1:] ==
           ["Failed to listen: lost the bus connection."],
           "listen ends with exit 1 and one error line when the bus goes away", (rc, err))

    r = alice.cli("status")
    tap.ok(r.returncode == 0 and
           re.search(r"^\s*State: online$", r.stdout, re.M) and
           re.search(rf"^\s*Coordinator: {re.escape(coordinator)}$", r.stdout, re.M),
           "alice's status block", r)


if __name__ == "__main__":
    run(body, PLANNED)
