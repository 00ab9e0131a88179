#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Messages to a native peer that never acks: at most 1000 pending per peer
(LimitsExceeded beyond); each goes back to "queued" after its bounded
retries, none fails, and all are delivered once the peer answers again.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Coordinator, Tap, User, pump, wait_for  # noqa: E402

LIMIT = 1000
t = Tap(5)
users = []
coord = None
stopped = None
try:
    coord = Coordinator()
    alice, bob = User("alice"), User("bob")
    users += [alice, bob]
    alice.login("alice", coord.address)
    bob.login("bob", coord.address)
    wait_for(lambda: alice.online_peers() == ["bob"], 5)

    # bob acks one message (so alice sends to it without waiting), then his
    # daemon stops answering but stays online for the coordinator.
    first = alice.send("bob", "first")
    alice.wait_signal("MessageDelivered", lambda a: a[0] == first)
    os.kill(bob.daemon.pid, signal.SIGSTOP)
    stopped = bob
    boxes = [alice.call_async("SendMessage", "ss", ("bob", "m%d" % i)) for i in range(LIMIT)]
    wait_for(lambda: all(b for b in boxes), 60)
    ids = {b["reply"][0] for b in boxes if "reply" in b}
    t.ok(len(ids) == LIMIT, "%d messages accepted" % LIMIT, len(ids))
    e = alice.error_of("SendMessage", "ss", ("bob", "one too many"))
    t.ok(e == "org.freedesktop.DBus.Error.LimitsExceeded", "the next one: LimitsExceeded", e)
    def requeued():
        # "queued" once when accepted, and again when the retries ran out.
        seen, twice = set(), set()
        for a in alice.signals("MessageStateChanged"):
            if a[2] == "queued":
                (twice if a[0] in seen else seen).add(a[0])
        return twice

    t.ok(wait_for(lambda: ids <= requeued(), 40),
         "every message goes back to 'queued' after its retries",
         len(ids - requeued()))
    t.ok(not alice.signals("MessageFailed"), "none fails")
    os.kill(bob.daemon.pid, signal.SIGCONT)
    stopped = None
    delivered = lambda: {a[0] for a in alice.signals("MessageDelivered")}
    wait_for(lambda: ids <= delivered(), 60)
    mid = alice.send("bob", "after the storm")
    t.ok(ids <= delivered() and alice.wait_signal("MessageDelivered", lambda a: a[0] == mid),
         "all are delivered later, and the daemon serves normally",
         len(ids - delivered()))
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if stopped:
        os.kill(stopped.daemon.pid, signal.SIGCONT)
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
