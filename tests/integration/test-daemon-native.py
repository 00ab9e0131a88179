#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Three p2pchatd users on the real coordinator.

Rosters converge; messages go both ways with MessageReceived and
MessageDelivered (CJK names and text); kill -9 of one daemon makes the others
see PeerLeft within 2 s and a message to it end in MessageFailed; a restarted
coordinator gets every daemon back online with the full roster within 10 s,
without anyone calling anything.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import SLOW, Coordinator, Tap, User, settle, wait_for  # noqa: E402

t = Tap(15)
users = []
coord = None
try:
    coord = Coordinator()
    names = ["alice", "bob", "张三"]
    users = [User(n if n.isascii() else "zhang") for n in names]
    alice, bob, zhang = users

    for u, n in zip(users, names):
        # One of them names the coordinator by host name.
        u.login(n, coord.address if n != "bob" else "localhost:%d" % coord.port)
    t.ok(all(u.prop("State") == "online" for u in users), "three users online")
    t.ok(all(wait_for(lambda u=u, n=n: u.online_peers() == sorted(set(names) - {n}), 5)
             for u, n in zip(users, names)),
         "rosters converge", [u.peers() for u in users])
    t.ok(all(all(extra["native"] for _, _, extra in u.peers().values()) for u in users),
         "every peer is native")
    t.ok(zhang.prop("Username") == "张三" and
         zhang.prop("LocalEndpoint").startswith("127.0.0.1:") and
         zhang.prop("Coordinator") == coord.address,
         "Manager properties")

    # Messages both ways, CJK names and text.
    m1 = alice.send("张三", "你好，张三！")
    m2 = zhang.send("alice", "こんにちは alice")
    m3 = bob.send("alice", "hi, alice; a comma, too")
    t.ok(zhang.wait_signal("MessageReceived",
                           lambda a: a[0] == m1 and a[1] == "alice" and a[2] == "你好，张三！"
                           and a[4]["native"]),
         "张三 receives alice's message")
    t.ok(alice.wait_signal("MessageReceived", lambda a: a[0] == m2 and a[1] == "张三") and
         alice.wait_signal("MessageReceived", lambda a: a[0] == m3 and a[2] == "hi, alice; a comma, too"),
         "alice receives from 张三 and bob")
    t.ok(alice.wait_signal("MessageDelivered", lambda a: a[0] == m1 and a[1] == "张三") and
         zhang.wait_signal("MessageDelivered", lambda a: a[0] == m2) and
         bob.wait_signal("MessageDelivered", lambda a: a[0] == m3),
         "every sender gets MessageDelivered")
    path = "/org/p2pchat/chat1/peer/" + "".join(
        c if c.isalnum() and c.isascii() else "_%02x" % b
        for c in "张三" for b in c.encode())
    t.ok(alice.prop("Online", path=path, iface="org.p2pchat.chat1.Peer") and
         alice.prop("Name", path=path, iface="org.p2pchat.chat1.Peer") == "张三",
         "the peer object of 张三")

    # kill -9: the others see PeerLeft within 2 s; a message to it is queued.
    pending = alice.send("bob", "are you there?")
    start = time.monotonic()
    bob.kill(signal.SIGKILL)
    left = wait_for(lambda: alice.signals("PeerLeft") and zhang.signals("PeerLeft"), 2)
    elapsed = time.monotonic() - start
    t.ok(left and elapsed <= 2 * SLOW and alice.signals("PeerLeft")[0][0] == "bob",
         "PeerLeft within 2 s of kill -9 (%.2f s)" % elapsed)
    changed = [e[3][1] for e in alice.events if e[1] == "PropertiesChanged" and
               e[2] == "/org/p2pchat/chat1/peer/bob"]
    t.ok(not alice.prop("Online", path="/org/p2pchat/chat1/peer/bob",
                        iface="org.p2pchat.chat1.Peer") and
         alice.peers()["bob"][1] is False and {"Online": False} in changed,
         "bob's object says offline, with PropertiesChanged", changed)
    m4 = alice.send("bob", "gone?")
    t.ok(alice.wait_signal("MessageStateChanged",
                           lambda a: a[0] == m4 and a[1] == "bob" and a[2] == "queued") and
         (alice.wait_signal("MessageStateChanged",
                            lambda a: a[0] == pending and a[2] == "queued") or
          alice.wait_signal("MessageDelivered", lambda a: a[0] == pending)) and
         not alice.signals("MessageFailed"),
         "a message to the dead peer stays queued")

    # Restart the coordinator on the same port.
    alice.events.clear()
    zhang.events.clear()
    coord.stop(signal.SIGKILL)
    t.ok(wait_for(lambda: alice.prop("State") == "connecting", 5),
         "alice notices the lost coordinator")
    coord.start()
    start = time.monotonic()
    back = wait_for(lambda: alice.prop("State") == "online" and
                    zhang.prop("State") == "online" and
                    alice.online_peers() == ["张三"] and zhang.online_peers() == ["alice"], 10)
    t.ok(back, "all back online with the full roster within 10 s (%.1f s)"
         % (time.monotonic() - start), [alice.peers(), zhang.peers()])
    settle(6)  # longer than the reconcile grace: late leaves would show now
    t.ok(not alice.signals("PeerLeft") and not alice.signals("PeerJoined") and
         not zhang.signals("PeerLeft") and not zhang.signals("PeerJoined"),
         "the reconnect emits no false joins or leaves", alice.events + zhang.events)

    # SIGTERM: the daemon logs out first, so the others see it leave at once.
    zhang.events.clear()
    status = alice.kill(signal.SIGTERM)
    t.ok(status == 0 and zhang.wait_signal("PeerLeft", lambda a: a[0] == "alice", timeout=2),
         "SIGTERM: exit status 0 and a logout the others see", status)
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if t.failed or t.n < t.count:
        for u in users:
            t.diag("--- %s log ---\n%s" % (u.label, u.read_log()[-3000:]))
        if coord:
            t.diag("--- coordinator log ---\n" + coord.read_log()[-3000:])
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
