#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 14, the daemon's part, with real daemons: MessageQueued for every
stored outgoing message (here sent with busctl, seen by another client),
ListConversations (order, preview, unread, roster peers without history),
CancelMessage (a queued message to a peer never seen; a delivered one is
refused; an unknown id) and SendMessage to oneself.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, User, error_name, wait_for  # noqa: E402
from gi.repository import GLib  # noqa: E402

OBJ = ["org.p2pchat.chat1", "/org/p2pchat/chat1", "org.p2pchat.chat1.Manager"]
ERR = "org.p2pchat.chat1.Error."


def busctl_send(user, peer, text):
    r = subprocess.run(["busctl", "--user", "call", *OBJ, "SendMessage", "ss", peer, text],
                       env=user.env, capture_output=True, text=True,
                       timeout=60 * p2ptest.SLOW)
    if r.returncode != 0:
        raise RuntimeError("busctl SendMessage: %s" % r.stderr)
    return r.stdout.split('"')[1]


def events_of(user, mid):
    """(member, args) of every Manager signal about message @mid, in order."""
    return [(e[1], e[3]) for e in user.events
            if e[0] == p2ptest.MANAGER and e[3] and e[3][0] == mid]


def conversations(user):
    return user.call("ListConversations")[0]


def body(t):
    coord = Coordinator()
    alice, bob, carol = User("alice"), User("bob"), User("carol")
    for u in (alice, bob, carol):
        u.login(u.name, coord.address)
    wait_for(lambda: alice.online_peers() == ["bob", "carol"], 10)

    # MessageQueued: a message sent by another client (busctl), with its text.
    mid = busctl_send(alice, "bob", "hello from busctl")
    queued = alice.wait_signal("MessageQueued", lambda a: a[0] == mid)
    t.ok(queued and queued[0][1:3] == ("bob", "hello from busctl") and queued[0][3] > 0 and
         queued[0][4].get("unknown") is False,
         "MessageQueued carries peer, text, time; bob is known", queued)
    alice.wait_signal("MessageDelivered", lambda a: a[0] == mid, 10)
    members = [m for m, _ in events_of(alice, mid)]
    t.ok(members[:2] == ["MessageQueued", "MessageStateChanged"] and
         members.count("MessageQueued") == 1,
         "MessageQueued once, before the first MessageStateChanged", members)
    t.ok(queued and queued[0][3] == alice.call("GetHistory", "sus", ("bob", 1, ""))[0][0][4],
         "timestamp_usec is the stored sent_usec")

    # bob writes twice: alice has two unread; the newest conversation comes first.
    bob.send("alice", "first from bob")
    bob.send("alice", "second from bob")
    alice.wait_signal("MessageReceived", lambda a: a[2] == "second from bob", 10)
    conv = conversations(alice)
    t.ok([c[0] for c in conv] == ["bob", "carol"],
         "bob (history) first, carol (roster only) after", conv)
    peer, last_id, text, direction, usec, extra = conv[0]
    t.ok(text == "second from bob" and direction == "in" and usec > 0 and
         extra == {"unread": 2, "online": True, "native": True, "state": "delivered"},
         "bob's preview: the last message, 2 unread, online", conv[0])
    t.ok(conv[1] == ("carol", "", "", "", 0,
                     {"unread": 0, "online": True, "native": True, "state": ""}),
         "carol without messages: empty preview", conv[1])
    alice.call("MarkRead", "s", ("bob",))
    t.ok(conversations(alice)[0][5]["unread"] == 0, "MarkRead clears the unread count")

    # A peer never seen: queued all the same, flagged unknown, first in the list.
    zid = alice.send("zed", "are you there?")
    queued = alice.wait_signal("MessageQueued", lambda a: a[0] == zid)
    t.ok(queued and queued[0][4] == {"unknown": True}, "MessageQueued says zed is unknown",
         queued)
    conv = conversations(alice)
    t.ok(conv[0][:4] == ("zed", zid, "are you there?", "out") and
         conv[0][5] == {"unread": 0, "online": False, "native": False, "state": "queued"},
         "zed's conversation first, queued, offline", conv[0])

    # Cancel it: failed with reason cancelled, the text kept.
    alice.call("CancelMessage", "s", (zid,))
    failed = alice.wait_signal("MessageFailed", lambda a: a[0] == zid)
    t.ok(failed and failed[0][1:3] == ("zed", "cancelled"), "MessageFailed cancelled", failed)
    changed = alice.wait_signal("MessageStateChanged",
                                lambda a: a[0] == zid and a[2] == "failed")
    t.ok(changed and changed[0][3] == {"reason": "cancelled"},
         "MessageStateChanged failed, reason cancelled", changed)
    hist = alice.call("GetHistory", "sus", ("zed", 0, ""))[0]
    t.ok([(m[3], m[6]) for m in hist] == [("are you there?", "failed")],
         "the history keeps the cancelled text", hist)
    t.ok(alice.error_of("CancelMessage", "s", (zid,)) == ERR + "MessageNotCancellable",
         "cancelling twice: MessageNotCancellable")
    t.ok(alice.error_of("CancelMessage", "s", (mid,)) == ERR + "MessageNotCancellable",
         "a delivered message: MessageNotCancellable")
    t.ok(alice.error_of("CancelMessage", "s", ("f" * 32,)) == ERR + "UnknownMessage",
         "an unknown id: UnknownMessage")

    # To oneself.
    try:
        alice.send("alice", "note to self")
        t.ok(False, "SendMessage to oneself fails")
    except GLib.Error as e:
        t.ok(error_name(e) == ERR + "InvalidName" and
             "Cannot send a message to yourself" in e.message,
             "SendMessage to oneself: InvalidName", e.message)
    t.ok(all(a[1] != "alice" for a in alice.signals("MessageQueued")),
         "no MessageQueued to oneself")


if __name__ == "__main__":
    p2ptest.run(body)
