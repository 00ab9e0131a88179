#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd's history, outbox and config, end to end with the real coordinator.

Daemons bound to 127.0.0.1 and 127.0.0.2 log in and chat (the TCP session
comes from the login's address); a name taken from another IP is NameTaken.
Messages to an unknown or offline peer are queued and go out in order when it
logs in, also after a kill -9 and an autologin restart; a reference peer's
message is not sent again after a restart.  GetHistory pages, SearchHistory
finds, Unread / MarkRead / SetActiveConversation agree, GetConfig/SetConfig
validate, and a broken config file leaves the daemon running on defaults.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import (ERROR, MANAGER, PATH, PEER, SERVICE, Coordinator, Gio,  # noqa: E402
                     GLib, Tap, User, settle, wait_for)
from refclient import RefClient  # noqa: E402

t = Tap(27)
users = []
coord = None
ref = None


def states(user, mid):
    return [a[2] for a in user.signals("MessageStateChanged") if a[0] == mid]


def unread_of(peers):
    """{name: extra unread} of a ListPeers reply; a missing key is None."""
    return {p[0]: p[3].get("unread") for p in peers}


def received(user, peer):
    return [a[2] for a in user.signals("MessageReceived") if a[1] == peer]


try:
    coord = Coordinator()
    alice = User("alice", bind="127.0.0.1:0")
    bob = User("bob", bind="127.0.0.2:0")
    users += [alice, bob]
    alice.login("alice", coord.address)
    bob.login("bob", coord.address)
    t.ok(wait_for(lambda: alice.online_peers() == ["bob"] and bob.online_peers() == ["alice"],
                  5), "daemons on 127.0.0.1 and 127.0.0.2 log in and see each other")
    m1 = bob.send("alice", "hello from 127.0.0.2")
    # MessageStateChanged follows MessageDelivered: wait for it too.
    t.ok(bob.wait_signal("MessageDelivered", lambda a: a[0] == m1) and
         wait_for(lambda: states(bob, m1) == ["queued", "sent", "delivered"], 5),
         "a message between them: queued, sent, delivered", states(bob, m1))

    carol = User("carol", bind="127.0.0.3:0")
    users.append(carol)
    t.ok(carol.error_of("Login", "ss", ("alice", coord.address)) == ERROR + "NameTaken",
         "a name online from another IP: NameTaken")
    carol.close()
    users.remove(carol)

    # Unknown-but-valid peer: queued, then sent in order when it logs in.
    ids = [alice.send("dave", "to dave %d" % i) for i in range(5)]
    t.ok(wait_for(lambda: all(states(alice, i) == ["queued"] for i in ids), 5) and
         not alice.signals("MessageFailed"), "messages to an unknown peer are queued")
    dave = User("dave")
    users.append(dave)
    dave.login("dave", coord.address)
    t.ok(wait_for(lambda: len(received(dave, "alice")) == 5, 10) and
         received(dave, "alice") == ["to dave %d" % i for i in range(5)],
         "they arrive in order when it logs in", received(dave, "alice"))
    t.ok(wait_for(lambda: all("delivered" in states(alice, i) for i in ids), 5),
         "and end delivered")

    # History.
    for i in range(3):
        bob.send("alice", "page %d" % i)
    wait_for(lambda: len(received(alice, "bob")) == 4, 5)
    h = alice.call("GetHistory", "sus", ("bob", 0, ""))[0]
    t.ok([m[3] for m in h] == ["hello from 127.0.0.2", "page 0", "page 1", "page 2"] and
         all(m[1] == "bob" and m[2] == "in" and m[6] == "delivered" and m[5] > 0 for m in h),
         "GetHistory: the conversation, oldest first", h)
    last2 = alice.call("GetHistory", "sus", ("bob", 2, ""))[0]
    before = alice.call("GetHistory", "sus", ("bob", 2, last2[0][0]))[0]
    t.ok([m[3] for m in last2] == ["page 1", "page 2"] and
         [m[3] for m in before] == ["hello from 127.0.0.2", "page 0"],
         "GetHistory pages back with before_id", (last2, before))
    t.ok(alice.error_of("GetHistory", "sus", ("bob", 0, "nope")) ==
         "org.freedesktop.DBus.Error.InvalidArgs" and
         alice.error_of("GetHistory", "sus", ("a,b", 0, "")) == ERROR + "InvalidName",
         "GetHistory: unknown before_id, invalid name")
    found = alice.call("SearchHistory", "su", ("PAGE", 2))[0]
    t.ok([m[3] for m in found] == ["page 2", "page 1"] and
         alice.error_of("SearchHistory", "su", ("", 0)) ==
         "org.freedesktop.DBus.Error.InvalidArgs",
         "SearchHistory: newest first, limit, empty query refused", found)

    # Unread, MarkRead, SetActiveConversation.
    bob_path = "/org/p2pchat/chat1/peer/bob"
    t.ok(alice.prop("Unread", path=bob_path, iface=PEER) == 4, "Peer.Unread counts")
    peers = alice.call("ListPeers")[0]
    t.ok(unread_of(peers).get("bob") == 4 and
         all(n == alice.prop("Unread", path="/org/p2pchat/chat1/peer/" + name, iface=PEER)
             for name, n in unread_of(peers).items()),
         "ListPeers: extra unread agrees with Peer.Unread for every peer", peers)
    alice.call("MarkRead", "s", ("bob",))
    t.ok(unread_of(alice.call("ListPeers")[0]).get("bob") == 0,
         "ListPeers: unread 0 after MarkRead")
    t.ok(alice.prop("Unread", path=bob_path, iface=PEER) == 0 and
         wait_for(lambda: len([a for a in alice.signals("MessageStateChanged")
                               if a[1] == "bob" and a[2] == "read"]) == 4, 5),
         "MarkRead: Unread 0, MessageStateChanged read for each")
    alice.call("SetActiveConversation", "s", ("bob",))
    t.ok(alice.prop("ActiveConversation") == "bob", "ActiveConversation set")
    bob.send("alice", "while on screen")
    wait_for(lambda: "while on screen" in received(alice, "bob"), 5)
    settle(0.2)
    t.ok(alice.prop("Unread", path=bob_path, iface=PEER) == 0,
         "a message to the active conversation is read at once")
    alice.call("SetActiveConversation", "s", ("",))
    t.ok(alice.prop("ActiveConversation") == "", "ActiveConversation cleared")
    # A front end that sets it and leaves the bus: cleared for it.
    front = Gio.DBusConnection.new_for_address_sync(
        alice.bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    front.call_sync(SERVICE, PATH, MANAGER, "SetActiveConversation", GLib.Variant("(s)", ("bob",)),
                    None, Gio.DBusCallFlags.NONE, 10000, None)
    was = alice.prop("ActiveConversation")
    front.close_sync(None)
    t.ok(was == "bob" and wait_for(lambda: alice.prop("ActiveConversation") == "", 5),
         "the active conversation is cleared when its front end leaves the bus")

    # Config.
    t.ok(alice.error_of("GetConfig", "s", ("colour",)) == ERROR + "InvalidConfig" and
         alice.error_of("SetConfig", "ss", ("autologin", "maybe")) == ERROR + "InvalidConfig",
         "unknown key and bad value: InvalidConfig")
    for k, v in (("username", "alice"), ("coordinator", coord.address),
                 ("autologin", "true"), ("outbox-expiry", "2d")):
        alice.call("SetConfig", "ss", (k, v))
    path = os.path.join(alice.home, "config", "p2pchat", "config.json")
    with open(path) as f:
        written = json.load(f)
    t.ok(alice.call("GetConfig", "s", ("outbox-expiry",))[0] == "2d" and
         written.get("autologin") is True and written.get("username") == "alice",
         "SetConfig writes the file, GetConfig reads it back", written)

    # Queued for an offline peer, kill -9, autologin, delivered.
    dave.call("Logout")
    wait_for(lambda: alice.online_peers() == ["bob"], 5)
    q = [alice.send("dave", "after restart %d" % i) for i in range(3)]
    alice.kill()
    alice.events.clear()
    alice.start()
    t.ok(wait_for(lambda: alice.prop("State") == "online", 10 ), "autologin after a restart")
    dave.events.clear()
    dave.login("dave", coord.address)
    t.ok(wait_for(lambda: received(dave, "alice") ==
                  ["after restart %d" % i for i in range(3)], 10),
         "messages queued before kill -9 arrive after the restart", received(dave, "alice"))
    h = alice.call("GetHistory", "sus", ("dave", 0, ""))[0]
    t.ok(wait_for(lambda: [m[6] for m in alice.call("GetHistory", "sus", ("dave", 3, ""))[0]]
                  == ["delivered"] * 3, 5), "and are delivered in the history")

    # A reference peer: "sent" is final, a restart does not resend.
    ref = RefClient("eve", coord.address)
    t.ok(ref.join(), "a reference client logs in")
    wait_for(lambda: "eve" in alice.online_peers(), 5)
    r1 = alice.send("eve", "once only")
    ref.poll(1.0)
    t.ok(alice.wait_signal("MessageSent", lambda a: a[0] == r1) and
         [x[1] for x in ref.received] == ["once only"], "the reference peer gets it",
         ref.received)
    alice.kill()
    alice.start()
    wait_for(lambda: alice.prop("State") == "online", 10)
    ref.poll(2.0)
    t.ok([x[1] for x in ref.received] == ["once only"] and
         [m[6] for m in alice.call("GetHistory", "sus", ("eve", 0, ""))[0]] == ["sent"],
         "a restart does not send it again", ref.received)

    # A broken config file: defaults, a clear message, still serving.
    with open(path, "w") as f:
        f.write("{ not json")
    alice.kill()
    alice.start()
    t.ok(alice.prop("State") == "offline" and "config.json" in alice.read_log() and
         alice.error_of("SetConfig", "ss", ("autologin", "false")) == ERROR + "InvalidConfig",
         "a broken config: defaults, the file named, not overwritten")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if ref:
        ref.close()
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
