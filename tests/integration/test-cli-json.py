#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every verb's --json against the vocabulary that p2pchat(1) documents.

The JSON OUTPUT section of docs/p2pchat.1.scd lists each kind of object and
its keys ("*key*" always there, "[*key*]" only when it applies; text in
parentheses explains and is skipped).  This test reads that section, runs
every verb with --json against real daemons (alice, bob) and a coordinator,
and checks that each object has every required key and no key that is not
documented, so that the page and the output cannot drift apart.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, User, run, wait_for  # noqa: E402

MANPAGE = os.path.join(p2ptest.SOURCE_ROOT, "docs", "p2pchat.1.scd")
EVENTS = ("messageReceived", "messageQueued", "messageDelivered", "messageSent",
          "messageFailed", "messageStateChanged", "peerJoined", "peerLeft",
          "propertiesChanged")
KINDS = ("status", "peer", "message", "send", "cancel", "config", "fingerprint") + EVENTS


def vocabulary():
    """{kind: (required keys, optional keys)} from the man page."""
    text = open(MANPAGE, encoding="utf-8").read()
    section = text.split("\n# JSON OUTPUT\n", 1)[1].split("\n# ", 1)[0]
    kinds = {}
    for block in re.split(r"\n\n+", section):
        lines = block.strip("\n").split("\n")
        m = re.match(r"^\*(\w+)\* \(", lines[0])
        if not m or not all(l.startswith("\t") for l in lines[1:]) or len(lines) < 2:
            continue
        body = re.sub(r"\([^)]*\)", "", " ".join(l.strip() for l in lines[1:]))
        optional = set(re.findall(r"\[\*([\w-]+)\*\]", body))
        required = set(re.findall(r"(?<!\[)\*([\w-]+)\*", body)) - optional
        kinds[m.group(1)] = (required, optional)
    return kinds


def check(tap, vocab, kind, obj, name):
    required, optional = vocab.get(kind, (set(), set()))
    keys = set(obj) if isinstance(obj, dict) else set()
    missing = required - keys
    unknown = keys - required - optional
    tap.ok(kind in vocab and isinstance(obj, dict) and not missing and not unknown,
           f"{name}: a {kind} object as documented",
           f"missing {sorted(missing)}, undocumented {sorted(unknown)}: {obj}")


def body(tap):
    vocab = vocabulary()
    tap.ok(set(KINDS) <= set(vocab), "p2pchat(1) documents every kind of JSON object",
           sorted(set(KINDS) - set(vocab)))
    coord = Coordinator()
    alice, bob = User("alice"), User("bob")
    listen, out = alice.popen_subscribed("--json", "listen")

    check(tap, vocab, "status", alice.cli_json("status"), "status")
    check(tap, vocab, "fingerprint", alice.cli_json("fingerprint"), "fingerprint")
    check(tap, vocab, "status", alice.cli_json("login", "alice", "--coordinator",
                                               coord.address), "login")
    bob.login("bob", coord.address)
    wait_for(lambda: "bob" in alice.online_peers(), 10)
    peers = alice.cli_json("peers")
    tap.ok(len(peers) == 1, "peers: one peer", peers)
    for p in peers:
        check(tap, vocab, "peer", p, "peers")

    check(tap, vocab, "send", alice.cli_json("send", "bob", "plain"), "send")
    check(tap, vocab, "send", alice.cli_json("send", "--wait", "bob", "waited"),
          "send --wait")
    r = alice.cli("--json", "--timeout=1", "send", "--wait", "nobody", "waits")
    timeout = json.loads(r.stdout or "null")
    check(tap, vocab, "send", timeout, "send --wait, timeout")
    check(tap, vocab, "cancel", alice.cli_json("cancel", timeout["id"]), "cancel")
    bob.send("alice", "from bob")
    wait_for(lambda: alice.signals("MessageReceived"), 10)

    hist = alice.cli_json("history", "bob") + alice.cli_json("search", "o")
    tap.ok(len(hist) >= 4, "history and search: messages", hist)
    for m in hist:
        check(tap, vocab, "message", m, f"history/search ({m['direction']})")

    check(tap, vocab, "config", alice.cli_json("config", "get", "bind"), "config get KEY")
    check(tap, vocab, "config", alice.cli_json("config", "list"), "config list")

    r = alice.cli("--json", "chat", "bob", input="chat line\n")
    chat = [json.loads(l) for l in r.stdout.splitlines()]
    tap.ok(r.returncode == 0 and chat, "chat --json prints events", r)
    for e in chat:
        check(tap, vocab, e.get("event"), e, f"chat: {e.get('event')}")

    bob.call("Logout")
    wait_for(lambda: "bob" not in alice.online_peers(), 10)
    check(tap, vocab, "status", alice.cli_json("logout"), "logout")
    _, seen = out.read_until(lambda l: json.loads(l).get("event") == "propertiesChanged" and
                             json.loads(l).get("state") == "offline", 10)
    events = [json.loads(l) for l in seen]
    got = {e.get("event") for e in events}
    want = {"peerJoined", "peerLeft", "messageReceived", "messageQueued", "messageDelivered",
            "messageFailed", "messageStateChanged", "propertiesChanged"}
    tap.ok(want <= got, "listen --json saw every kind of event but messageSent",
           sorted(want - got))
    for kind in sorted(got):
        for e in [e for e in events if e.get("event") == kind]:
            check(tap, vocab, kind, e, f"listen: {kind}")
            break
    listen.terminate()
    listen.wait(10)


if __name__ == "__main__":
    run(body)
