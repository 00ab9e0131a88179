#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd against the seed's reference programs (emulated in Python).

A reference server (UTF-16LE forwards, each from a new socket on an
ephemeral port as the real one sends them; the list then close) serves two
daemons and reference clients: the daemons see joins and leaves, repair a
lost forward by fetching the list again, chat with each other and with the
reference clients both ways (a talk before its sender's login forward, one
as long as a datagram, an empty one), and ignore forged datagrams.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Tap, User, settle, wait_for  # noqa: E402
from refclient import RefClient, RefServer, utf16  # noqa: E402

# What the real reference client sent as one datagram: 6000 Chinese
# characters, 18,000 bytes of UTF-8 (over WIRE_TEXT_MAX, 16384).
LONG_TEXT = "长文本测试" * 1200
# As long as one datagram can carry: "talk,HH:MM:SS,dave," is 19 UTF-16
# units, a datagram at most 65507 bytes (32753 units).
FULL_TEXT = ("满" * 32733) + "!"


def received_from(user, peer, start):
    """Texts of MessageReceived from @peer after the first @start."""
    return [a[2] for a in user.signals("MessageReceived")[start:] if a[1] == peer]


t = Tap(19)
users = []
server = RefServer()
ref = None
erin = None
try:
    alice = User("alice")
    bob = User("bob")
    users += [alice, bob]

    alice.login("alice", server.address)
    bob.login("bob", server.address)
    t.ok(alice.prop("State") == "online" and bob.prop("State") == "online",
         "both daemons online with a reference server")
    # The forward comes from the server's IP but not its port, and only it
    # carries bob's caps (a reference server's list has none).
    t.ok(alice.wait_signal("PeerJoined", lambda a: a[0] == "bob" and a[2]["native"]),
         "alice sees bob join through the UDP forward, with his native1 caps",
         alice.signals("PeerJoined"))
    t.ok(wait_for(lambda: bob.online_peers() == ["alice"], 5),
         "bob has alice from the list", bob.peers())

    # A daemon-to-daemon message works whichever way the roster learnt caps.
    mid = alice.send("bob", "hello bob")
    t.ok(bob.wait_signal("MessageReceived", lambda a: a[1] == "alice" and a[2] == "hello bob"),
         "bob receives alice's message")
    mid2 = bob.send("alice", "hello alice")
    t.ok(alice.wait_signal("MessageReceived",
                           lambda a: a[1] == "bob" and a[2] == "hello alice"),
         "alice receives bob's message")
    t.ok(wait_for(lambda: [a for a in alice.signals("MessageDelivered") + alice.signals("MessageSent")
                           if a[0] == mid] and
                  [a for a in bob.signals("MessageDelivered") + bob.signals("MessageSent")
                   if a[0] == mid2], 5),
         "both senders get an outcome")

    # A lost login forward is repaired by the periodic list fetch.
    server.drop_forwards.add("carol")
    carol = User("carol")
    users.append(carol)
    carol.login("carol", server.address)
    t.ok(alice.wait_signal("PeerJoined", lambda a: a[0] == "carol", timeout=15),
         "alice learns of carol despite the lost forward")

    # The reference client: no caps, UTF-16LE talk, both ways.
    ref = RefClient("dave", server.address)
    t.ok(ref.join(), "the reference client logs in")
    t.ok(alice.wait_signal("PeerJoined", lambda a: a[0] == "dave" and not a[2]["native"]),
         "alice sees dave as a reference peer")
    mid3 = alice.send("dave", "你好 dave, how are you")
    got = wait_for(lambda: ref.poll(0.1) is not None and
                   ("alice", "你好 dave, how are you") in ref.received, 5)
    t.ok(got and alice.wait_signal("MessageSent", lambda a: a[0] == mid3),
         "dave gets alice's UTF-16LE talk and alice gets MessageSent", ref.received)
    ref.talk(alice.prop("LocalEndpoint"), "hi alice, 再见")
    t.ok(alice.wait_signal("MessageReceived",
                           lambda a: a[1] == "dave" and a[2] == "hi alice, 再见" and
                           not a[4]["native"]),
         "alice receives dave's talk")

    # A long talk: what the history, D-Bus and front ends take is at most
    # 16384 bytes a message, so it comes as several, in order.
    start = len(alice.signals("MessageReceived"))
    ref.talk(alice.prop("LocalEndpoint"), LONG_TEXT)
    got = wait_for(lambda: "".join(received_from(alice, "dave", start)) == LONG_TEXT, 10)
    parts = received_from(alice, "dave", start)
    t.ok(got and all(len(p.encode()) <= 16384 for p in parts),
         "a 6000-character talk (12 KB datagram, 18 KB UTF-8) arrives whole, in parts",
         [len(p) for p in parts])
    start = len(alice.signals("MessageReceived"))
    ref.talk(alice.prop("LocalEndpoint"), FULL_TEXT)
    got = wait_for(lambda: "".join(received_from(alice, "dave", start)) == FULL_TEXT, 10)
    history = alice.cli_json("-n", "1000", "history", "dave")
    t.ok(got and "".join(m["text"] for m in history).endswith(LONG_TEXT + FULL_TEXT),
         "a talk as long as a datagram arrives whole and is in the history",
         [len(p) for p in received_from(alice, "dave", start)])

    # The reference client sends an empty box too: ignored, and said so.
    start = len(alice.signals("MessageReceived"))
    ref.talk(alice.prop("LocalEndpoint"), "")
    ref.talk(alice.prop("LocalEndpoint"), "after the empty one")
    t.ok(wait_for(lambda: received_from(alice, "dave", start) == ["after the empty one"], 5) and
         "Ignoring empty talk" in alice.read_log(),
         "an empty talk is ignored with a log line", received_from(alice, "dave", start))

    # A reference client talks as soon as it has the list; its login forward
    # may come later (here 1 s): the talk waits for it.
    server.delay_forwards["erin"] = 1.0
    erin = RefClient("erin", server.address)
    t.ok(erin.join(), "the reference client erin logs in")
    erin.talk(alice.prop("LocalEndpoint"), "first words")
    erin.talk(alice.prop("LocalEndpoint"), "second words")
    t.ok(wait_for(lambda: received_from(alice, "erin", 0) == ["first words", "second words"],
                  10) and
         [a for a in alice.signals("PeerJoined") if a[0] == "erin"],
         "talks before the sender's login forward are received once it comes, in order",
         received_from(alice, "erin", 0))

    # Forgeries: talk from the wrong IP, JSON from the wrong port, a forward
    # not from the server's IP (any port of it is the server's).
    ref.talk(alice.prop("LocalEndpoint"), "forged talk", source_host="127.0.0.2")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.bind(("127.0.0.2", 0))
    ip, port = alice.prop("LocalEndpoint").rsplit(":", 1)
    s.sendto(b'{"type":"msg","id":"00112233445566778899aabbccddeeff","from":"bob",'
             b'"ts":1,"body":"forged json"}', (ip, int(port)))
    s2.sendto(utf16("logout,bob,%s" % bob.prop("LocalEndpoint")), (ip, int(port)))
    settle(1.5)
    t.ok(not [a for a in alice.signals("MessageReceived") if a[2].startswith("forged")] and
         "bob" in alice.online_peers(),
         "forged talk, JSON and logout are ignored", alice.online_peers())
    s.close()
    s2.close()

    # Leaves: a reference client's lohout and a daemon's logout.
    ref.logout(misspelled=True)
    t.ok(alice.wait_signal("PeerLeft", lambda a: a[0] == "dave"),
         "alice sees dave leave (lohout forward)")
    bob.call("Logout")
    t.ok(alice.wait_signal("PeerLeft", lambda a: a[0] == "bob") and
         bob.prop("State") == "offline",
         "alice sees bob log out")
except Exception as e:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
    for u in users:
        t.diag("--- %s log ---\n%s" % (u.label, u.read_log()[-3000:]))
finally:
    for u in users:
        u.close()
    for c in (ref, erin):
        if c:
            c.close()
    server.close()
t.finish()
