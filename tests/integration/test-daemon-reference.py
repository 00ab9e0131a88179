#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd against the seed's reference programs (emulated in Python).

A reference server (UTF-16LE forwards, the list then close) serves two
daemons and a reference client: the daemons see joins and leaves, repair a
lost forward by fetching the list again, chat with each other and with the
reference client both ways, and ignore forged datagrams.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Tap, User, settle, wait_for  # noqa: E402
from refclient import RefClient, RefServer, utf16  # noqa: E402

t = Tap(14)
users = []
server = RefServer()
ref = None
try:
    alice = User("alice")
    bob = User("bob")
    users += [alice, bob]

    alice.login("alice", server.address)
    bob.login("bob", server.address)
    t.ok(alice.prop("State") == "online" and bob.prop("State") == "online",
         "both daemons online with a reference server")
    t.ok(alice.wait_signal("PeerJoined", lambda a: a[0] == "bob"),
         "alice sees bob join through the UDP forward")
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

    # Forgeries: talk from the wrong IP, JSON from the wrong port, a forward
    # not from the server.
    ref.talk(alice.prop("LocalEndpoint"), "forged talk", source_host="127.0.0.2")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    ip, port = alice.prop("LocalEndpoint").rsplit(":", 1)
    s.sendto(b'{"type":"msg","id":"00112233445566778899aabbccddeeff","from":"bob",'
             b'"ts":1,"body":"forged json"}', (ip, int(port)))
    s.sendto(utf16("logout,bob,%s" % bob.prop("LocalEndpoint")), (ip, int(port)))
    settle(1.5)
    t.ok(not [a for a in alice.signals("MessageReceived") if a[2].startswith("forged")] and
         "bob" in alice.online_peers(),
         "forged talk, JSON and logout are ignored", alice.online_peers())
    s.close()

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
    if ref:
        ref.close()
    server.close()
t.finish()
