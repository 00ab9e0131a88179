#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Nothing acknowledged is lost when p2pchatd dies: 20 trials of kill -9.

Two daemons (autologin, the real coordinator, private buses) send each other
a burst of messages; at a random moment of the burst one of them is killed
with SIGKILL.  Each time, the dead daemon's database passes PRAGMA
integrity_check (read-only, with Python's sqlite3), and after its restart:

 - every message a SendMessage accepted (it replied with an id) is eventually
   delivered: "delivered" in the sender's history and present in the
   receiver's, whichever side died;
 - every message acknowledged by either side is in its receiver's history;
 - no message is stored twice.
"""

import json
import os
import random
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import SLOW, Coordinator, Tap, User, pump, wait_for  # noqa: E402

TRIALS = 20
BURST = 30          # messages each way per trial
STEP = 0.004        # seconds between two sends of the burst

t = Tap(TRIALS + 3)
users = []
coord = None
# Printed as a TAP comment: P2PCHAT_SEED=N replays a run.
random.seed(p2ptest.seed())


def db_path(user):
    return os.path.join(user.home, "data", "p2pchat", "history.db")


def db_query(user, sql):
    c = sqlite3.connect("file:%s?mode=ro" % db_path(user), uri=True, timeout=10)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def integrity(user):
    return db_query(user, "PRAGMA integrity_check") == [("ok",)]


def stored(user):
    """id -> (direction, state) of every message in the user's history."""
    return {i: (d, s) for i, d, s in db_query(user, "SELECT id, direction, state FROM messages")}


def make_user(name):
    u = User(name, start=False)
    os.makedirs(os.path.join(u.home, "config", "p2pchat"), exist_ok=True)
    with open(os.path.join(u.home, "config", "p2pchat", "config.json"), "w") as f:
        json.dump({"username": name, "coordinator": coord.address, "autologin": True,
                   "notifications": False}, f)
    u.start()
    return u


try:
    coord = Coordinator()
    alice, bob = make_user("alice"), make_user("bob")
    users += [alice, bob]
    t.ok(wait_for(lambda: alice.prop("State") == "online" and bob.prop("State") == "online" and
                  alice.online_peers() == ["bob"] and bob.online_peers() == ["alice"],
                  10 * SLOW), "both daemons log in by themselves (autologin)")

    accepted = {}   # id -> (sender, receiver)
    acked = {}      # id -> receiver: the sender saw MessageDelivered
    pairs = ((alice, bob), (bob, alice))
    for trial in range(TRIALS):
        victim, survivor = random.choice(pairs)
        kill_at = random.uniform(0, BURST * STEP * 1.2)
        boxes = []
        start = time.monotonic()
        killed = False
        for i in range(BURST):
            if not killed and time.monotonic() - start >= kill_at:
                victim.kill(signal.SIGKILL)
                killed = True
            for s, r in pairs:
                if s is victim and killed:
                    continue
                boxes.append((s, r, s.call_async("SendMessage", "ss",
                                                 (r.label, "t%d %s %d" % (trial, s.label, i)))))
            pump(STEP)
        if not killed:
            victim.kill(signal.SIGKILL)
        # The survivor's replies; the victim's calls that got one.
        wait_for(lambda: all(b for s, r, b in boxes if s is survivor), 10 * SLOW)
        for s, r, b in boxes:
            if "reply" in b:
                accepted[b["reply"][0]] = (s, r)
        for u in (alice, bob):
            for a in u.signals("MessageDelivered"):
                acked[a[0]] = accepted.get(a[0], (None, None))[1]
        ok_integrity = integrity(victim)

        victim.events.clear()
        victim.start()
        online = wait_for(lambda: victim.prop("State") == "online" and
                          victim.online_peers() == [survivor.label] and
                          survivor.online_peers() == [victim.label], 15 * SLOW)

        def all_delivered():
            got = {u: stored(u) for u in (alice, bob)}
            return all(got[s].get(i) == ("out", "delivered") and
                       got[r].get(i, ("", ""))[0] == "in"
                       for i, (s, r) in accepted.items())
        delivered = wait_for(all_delivered, 30 * SLOW)
        missing = [i for i, r in acked.items() if r and i not in stored(r)]
        t.ok(ok_integrity and online and delivered and not missing,
             "trial %d: kill -9 of %s after %.0f ms: integrity ok, %d accepted all delivered, "
             "%d acked all stored" % (trial + 1, victim.label, kill_at * 1000, len(accepted),
                                      len(acked)),
             "integrity %s, online %s, delivered %s, missing %s" %
             (ok_integrity, online, delivered, missing[:5]))
        if not (ok_integrity and online and delivered and not missing):
            t.diag(victim.read_log()[-3000:])
            break

    both = {u: stored(u) for u in (alice, bob)}
    t.ok(len(accepted) >= TRIALS * BURST and
         all(both[r].get(i, ("", ""))[0] == "in" for i, (s, r) in accepted.items()),
         "zero losses: %d accepted messages, every one in its receiver's history"
         % len(accepted))
    t.ok(integrity(alice) and integrity(bob), "both databases pass integrity_check at the end")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
