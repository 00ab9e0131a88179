#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd's desktop notifications, end to end: python3-dbusmock's
notification daemon (with inline-reply) and a mock p2pchat-gtk run on alice's
private bus.  A message from bob notifies; the default action asks the GTK
app to open the conversation; an inline reply is sent to bob; the active
conversation and "notifications false" suppress notifications.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Coordinator, GLib, Tap, User, settle, spawn, wait_for  # noqa: E402

SERVER = "org.freedesktop.Notifications"
SERVER_PATH = "/org/freedesktop/Notifications"
MOCK = "org.freedesktop.DBus.Mock"
APP = "org.p2pchat.P2pchat"
APP_PATH = "/org/p2pchat/P2pchat"

t = Tap(7)
users = []
coord = None


def bus_call(user, name, path, iface, method, params=None, reply=None):
    r = user.conn.call_sync(name, path, iface, method, params,
                            GLib.VariantType(reply) if reply else None, 0, 10000, None)
    return r.unpack() if r is not None else ()


def has_owner(user, name):
    return bus_call(user, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                    "org.freedesktop.DBus", "NameHasOwner", GLib.Variant("(s)", (name,)),
                    "(b)")[0]


def start_mock(user, args, name):
    p = spawn([sys.executable, "-m", "dbusmock"] + args, env=user.env,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(lambda: has_owner(user, name) or p.poll() is not None, 15):
        raise RuntimeError("dbusmock did not take %s" % name)
    return p


def calls(user, method, name=SERVER, path=SERVER_PATH):
    return [a for _, a in bus_call(user, name, path, MOCK, "GetMethodCalls",
                                   GLib.Variant("(s)", (method,)), "(a(tav))")[0]]


def emit(user, member, sig, values):
    args = [GLib.Variant(x, v) for x, v in zip(sig, values)]
    bus_call(user, SERVER, SERVER_PATH, MOCK, "EmitSignal",
             GLib.Variant("(sssav)", (SERVER, member, sig, args)))


try:
    coord = Coordinator()
    alice = User("alice", start=False)
    bob = User("bob")
    users += [alice, bob]
    start_mock(alice, ["--template", "notification_daemon", "-p",
                       json.dumps({"capabilities": "body actions inline-reply"})], SERVER)
    start_mock(alice, [APP, APP_PATH, "org.freedesktop.Application"], APP)
    bus_call(alice, APP, APP_PATH, MOCK, "AddMethod",
             GLib.Variant("(sssss)", ("org.freedesktop.Application", "ActivateAction",
                                      "sava{sv}", "", "")))
    alice.start()
    alice.login("alice", coord.address)
    bob.login("bob", coord.address)
    wait_for(lambda: alice.online_peers() == ["bob"], 5)

    bob.send("alice", "ping from bob")
    notes = wait_for(lambda: calls(alice, "Notify"), 10)
    t.ok(notes and notes[0][0] == "p2pchat" and notes[0][3] == "bob" and
         notes[0][4] == "ping from bob" and "inline-reply" in list(notes[0][5]) and
         dict(notes[0][6]).get("category") == "im.received",
         "an incoming message notifies: sender, text, category, inline reply",
         notes[:1])

    emit(alice, "ActionInvoked", "us", [1, "default"])
    acts = wait_for(lambda: calls(alice, "ActivateAction", name=APP, path=APP_PATH), 10)
    t.ok(acts and acts[0][0] == "open-conversation" and list(acts[0][1]) == ["bob"],
         "the default action asks p2pchat-gtk to open the conversation", acts)

    bob.send("alice", "second")
    wait_for(lambda: len(calls(alice, "Notify")) >= 2, 10)
    emit(alice, "NotificationReplied", "us", [2, "inline answer"])
    t.ok(bob.wait_signal("MessageReceived",
                         lambda a: a[1] == "alice" and a[2] == "inline answer", 10),
         "an inline reply is sent to the peer")
    h = alice.call("GetHistory", "sus", ("bob", 0, ""))[0]
    t.ok(h[-1][2] == "out" and h[-1][3] == "inline answer" and
         all(m[6] == "read" for m in h if m[2] == "in"),
         "the reply is in the history, what it answered is read", h)

    n = len(calls(alice, "Notify"))
    alice.call("SetActiveConversation", "s", ("bob",))
    bob.send("alice", "while active")
    alice.wait_signal("MessageReceived", lambda a: a[2] == "while active")
    settle(0.5)
    t.ok(len(calls(alice, "Notify")) == n, "no notification for the active conversation")
    alice.call("SetActiveConversation", "s", ("",))

    alice.call("SetConfig", "ss", ("notifications", "false"))
    bob.send("alice", "while off")
    alice.wait_signal("MessageReceived", lambda a: a[2] == "while off")
    settle(0.5)
    t.ok(len(calls(alice, "Notify")) == n, "no notification when notifications are off")
    alice.call("SetConfig", "ss", ("notifications", "true"))
    bob.send("alice", "back on")
    t.ok(wait_for(lambda: len(calls(alice, "Notify")) > n, 10),
         "notifications on again")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
