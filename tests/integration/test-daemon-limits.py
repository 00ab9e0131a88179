#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Messages to a native peer that never acks: at most 4096 in flight
(LimitsExceeded beyond), and each one ends in MessageFailed "timeout" after
its bounded retries; the daemon keeps serving.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Coordinator, Tap, User, pump, wait_for  # noqa: E402

LIMIT = 4096
t = Tap(4)
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

    # bob's daemon stops answering but stays online for the coordinator.
    os.kill(bob.daemon.pid, signal.SIGSTOP)
    stopped = bob
    boxes = [alice.call_async("SendMessage", "ss", ("bob", "m%d" % i)) for i in range(LIMIT)]
    wait_for(lambda: all(b for b in boxes), 60)
    ids = {b["reply"][0] for b in boxes if "reply" in b}
    t.ok(len(ids) == LIMIT, "%d messages accepted" % LIMIT, len(ids))
    e = alice.error_of("SendMessage", "ss", ("bob", "one too many"))
    t.ok(e == "org.freedesktop.DBus.Error.LimitsExceeded", "the next one: LimitsExceeded", e)
    failed = lambda: {a[0] for a in alice.signals("MessageFailed") if a[2] == "timeout"}
    t.ok(wait_for(lambda: ids <= failed(), 30), "every message fails with 'timeout'",
         len(ids - failed()))
    os.kill(bob.daemon.pid, signal.SIGCONT)
    stopped = None
    pump(0.5)
    mid = alice.send("bob", "after the storm")
    t.ok(alice.wait_signal("MessageDelivered", lambda a: a[0] == mid),
         "the daemon serves normally again")
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
