#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd's group commit: many messages in one batch, and no ack without a store.

Two daemons on the real coordinator.  Each pipelines a few hundred
SendMessage() calls at the other without waiting for the replies, both at
once: every call gets a distinct id, no signal about an id comes before its
reply, every message ends delivered after "queued" and "sent", and each
receiver's history holds each message exactly once, in the order sent.

Then a test process holds the write lock of bob's database: bob cannot store
what alice sends, so he must not ack it (no MessageDelivered while the lock
is held); once the lock is gone alice's retries get it stored, exactly once,
and delivered.  With alice's own database locked, her SendMessage() fails
with an error instead of an id, and that text never arrives anywhere.

Last, SIGTERM reaches alice while hundreds of calls are in flight: her last
batch is committed before she exits, and after a restart every message
whose call got an id arrives, once.
"""

import os
import re
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import (MANAGER, PATH, SERVICE, SLOW, Coordinator, Gio, GLib, Tap,  # noqa: E402
                     User, pump, settle, wait_for)

N = 300
# Longer than the daemon's 5 s busy timeout, stretched by SLOW: the window
# in which no ack may come.
LOCK_SECONDS = 7 * SLOW

t = Tap(13)
users = []
coord = None


def db_path(user):
    return os.path.join(user.home, "data", "p2pchat", "history.db")


def history_texts(user, peer):
    """The texts @user received from @peer, as its history has them."""
    return [m[3] for m in user.call("GetHistory", "sus", (peer, 1000, ""))[0] if m[2] == "in"]


def send_all(user, peer, texts):
    """
    Starts one SendMessage per text at once; returns the boxes.  A box gets
    the reply (or error) and "seen", the number of signals the connection had
    dispatched when the reply was: replies and signals are dispatched in the
    order they arrive.
    """
    boxes = []
    for text in texts:
        box = {}

        def done(conn, res, box=box):
            box["seen"] = len(user.events)
            try:
                box["reply"] = conn.call_finish(res).unpack()
            except GLib.Error as e:
                box["error"] = e

        user.conn.call(SERVICE, PATH, MANAGER, "SendMessage", GLib.Variant("(ss)", (peer, text)),
                       None, Gio.DBusCallFlags.NONE, int(120 * 1000 * SLOW), None, done)
        boxes.append(box)
    return boxes


def lock_db(user):
    c = sqlite3.connect(db_path(user), timeout=10, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    return c


try:
    coord = Coordinator()
    alice, bob = User("alice"), User("bob")
    users += [alice, bob]
    alice.login("alice", coord.address)
    bob.login("bob", coord.address)
    t.ok(wait_for(lambda: alice.online_peers() == ["bob"] and bob.online_peers() == ["alice"],
                  10), "alice and bob see each other")

    to_bob = ["a->b %d" % i for i in range(N)]
    to_alice = ["b->a %d" % i for i in range(N)]
    a_boxes = send_all(alice, "bob", to_bob)
    b_boxes = send_all(bob, "alice", to_alice)
    ok_a = wait_for(lambda: all("seen" in b for b in a_boxes), 60)
    ok_b = wait_for(lambda: all("seen" in b for b in b_boxes), 60)
    a_ids = [b.get("reply", (None,))[0] for b in a_boxes]
    b_ids = [b.get("reply", (None,))[0] for b in b_boxes]
    ids_ok = all(i and re.fullmatch("[0-9a-f]{32}", i) for i in a_ids + b_ids)
    t.ok(ok_a and ok_b and ids_ok and len(set(a_ids + b_ids)) == 2 * N,
         "%d pipelined calls each way: every one replied with its own id" % N,
         [b.get("error") for b in a_boxes + b_boxes if "error" in b][:3])

    def first_signal_index(user, mid):
        for k, e in enumerate(user.events):
            if e[3] and e[3][0] == mid:
                return k
        return None

    early = [i for i, mid in enumerate(a_ids)
             if first_signal_index(alice, mid) is not None and
             first_signal_index(alice, mid) < a_boxes[i]["seen"]]
    t.ok(not early, "no signal about an id comes before its reply", early[:3])

    def delivered(user, ids):
        got = {a[0] for a in user.signals("MessageDelivered")}
        return all(i in got for i in ids)

    t.ok(wait_for(lambda: delivered(alice, a_ids) and delivered(bob, b_ids), 60 * SLOW),
         "every message is delivered")

    def states(user, mid):
        return [a[2] for a in user.signals("MessageStateChanged") if a[0] == mid]

    bad = [i for i in a_ids if states(alice, i) != ["queued", "sent", "delivered"]]
    t.ok(not bad, "each went queued, sent, delivered", [states(alice, i) for i in bad[:3]])

    hb, ha = history_texts(bob, "alice"), history_texts(alice, "bob")
    t.ok(hb == to_bob and ha == to_alice,
         "each receiver's history has every message once, in order",
         [(len(hb), len(set(hb))), (len(ha), len(set(ha))),
          [x for x, y in zip(hb, to_bob) if x != y][:3]])
    received = [a[2] for a in bob.signals("MessageReceived") if a[1] == "alice"]
    t.ok(sorted(set(received)) == sorted(to_bob), "bob was told of every message")

    # Bob cannot store: he must not ack.
    n_delivered = len(alice.signals("MessageDelivered"))
    lock = lock_db(bob)
    try:
        start = time.monotonic()
        mid = alice.send("bob", "while bob's store is locked")
        held = True
        while time.monotonic() - start < LOCK_SECONDS:
            pump(0.05)
        held = len(alice.signals("MessageDelivered")) == n_delivered
    finally:
        lock.rollback()
        lock.close()
    t.ok(held, "no ack while the receiver cannot store the message")
    t.ok(alice.wait_signal("MessageDelivered", lambda a: a[0] == mid, 30) and
         history_texts(bob, "alice").count("while bob's store is locked") == 1,
         "after the lock, the retries get it stored once and delivered")

    # Alice cannot store: her SendMessage fails, nothing goes out.
    lock = lock_db(alice)
    try:
        err = alice.error_of("SendMessage", "ss", ("bob", "never accepted"), timeout=60)
    finally:
        lock.rollback()
        lock.close()
    t.ok(err is not None, "a SendMessage that cannot be stored fails", err)
    settle(1)
    t.ok("never accepted" not in history_texts(bob, "alice") and
         "never accepted" not in history_texts(alice, "bob"),
         "and its text is nowhere")
    # SIGTERM while calls are in flight: the pending batch is committed first.
    texts = ["term %d" % i for i in range(600)]
    boxes = send_all(alice, "bob", texts)
    alice.kill(signal.SIGTERM)
    wait_for(lambda: all("seen" in b for b in boxes), 60)
    accepted = [texts[i] for i, b in enumerate(boxes) if "reply" in b]
    t.diag("%d of %d calls got an id before the SIGTERM" % (len(accepted), len(texts)))
    alice.start()
    alice.login("alice", coord.address)
    t.ok(wait_for(lambda: set(accepted) <= set(history_texts(bob, "alice")), 60 * SLOW),
         "after a restart, every message whose call got an id arrives",
         sorted(set(accepted) - set(history_texts(bob, "alice")))[:3])
    hb = history_texts(bob, "alice")
    t.ok(all(hb.count(x) == 1 for x in accepted) and
         [x for x in hb if x.startswith("term ")] ==
         [x for x in texts if x in set(hb)],
         "each once, in order")
except Exception as e:  # noqa: BLE001
    t.diag("exception: %r" % (e,))
    for u in users:
        t.diag(u.read_log()[-2000:])
finally:
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
