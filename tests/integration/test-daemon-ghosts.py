#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Ghosts: users that log in and out at the coordinator and are never heard
from again must not stay in a daemon's roster until Logout (a roster full
of them refused real newcomers).

Many login/logout pairs from reference clients (each from its own loopback
socket) reach alice's daemon through the real coordinator; alice's
p2pchatd runs with a short expiry of offline peers ($P2PCHAT_PEER_EXPIRY).
Once it is over, the ghosts are gone from ListPeers and from the
ObjectManager (InterfacesRemoved for each), while the peers something is
kept for stay: one alice has a message from, one a message is queued for,
and the one whose conversation is open.  A newcomer is still welcome.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import PEER, SLOW, Coordinator, User, run, wait_for  # noqa: E402
from refclient import RefClient  # noqa: E402

GHOSTS = 300
# Long enough to see the ghosts offline first, short enough for a test.
EXPIRY = int(4 * SLOW)
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"


def managed_peers(user):
    """Names of the Peer objects GetManagedObjects lists."""
    objects = user.call("GetManagedObjects", iface=OBJECT_MANAGER)[0]
    return {ifaces[PEER]["Name"] for ifaces in objects.values() if PEER in ifaces}


def removed_paths(user):
    """The object paths InterfacesRemoved named."""
    return {e[3][0] for e in user.events if e[1] == "InterfacesRemoved"}


def body(t):
    # No login rate limit: every pair comes from 127.0.0.1.
    # A short grace: each ghost's login goes online with its list fetch.
    coord = Coordinator("--login-rate", "0", "--grace", "5")
    alice = User("alice", start=False)
    alice.env["P2PCHAT_PEER_EXPIRY"] = "%ds" % EXPIRY
    alice.start()
    alice.login("alice", coord.address)
    here = alice.prop("LocalEndpoint")

    # Three peers something is kept for, then they leave.
    writer = RefClient("writer", coord.address)
    queued = RefClient("queued", coord.address)
    shown = RefClient("shown", coord.address)
    for c in (writer, queued, shown):
        t.ok(c.join(), "%s logs in" % c.name)
    t.ok(wait_for(lambda: {"writer", "queued", "shown"} <= set(alice.online_peers()), 10),
         "alice sees them online", alice.peers())
    writer.talk(here, "keep me")
    t.ok(alice.wait_signal("MessageReceived", lambda a: a[1] == "writer"),
         "alice has a message from writer")
    for c in (writer, queued, shown):
        c.logout()
    t.ok(wait_for(lambda: not {"writer", "queued", "shown"} & set(alice.online_peers()), 10),
         "they left", alice.peers())
    alice.send("queued", "for later")
    alice.call("SetActiveConversation", "s", ("shown",))

    # The ghosts: each logs in and out again, from its own socket.
    start = time.monotonic()
    names = ["ghost%03d" % i for i in range(GHOSTS)]
    for name in names:
        c = RefClient(name, coord.address)
        t.ok(c.join(), "%s logs in" % name) if name == names[0] else c.join()
        c.logout()
        c.close()
    left = lambda: {a[0] for a in alice.signals("PeerLeft")}
    joined = lambda: {a[0] for a in alice.signals("PeerJoined")}
    t.ok(wait_for(lambda: set(names) <= left(), 30),
         "alice saw %d ghosts come and go" % GHOSTS,
         "joined %d, left %d" % (len(set(names) & joined()), len(set(names) & left())))
    peers = alice.peers()
    ghosts_listed = [n for n in names if n in peers]
    elapsed = time.monotonic() - start
    if elapsed < EXPIRY:
        t.ok(ghosts_listed and not any(peers[n][1] for n in ghosts_listed),
             "before the expiry they are offline peers", len(ghosts_listed))
    else:
        t.skip("before the expiry they are offline peers",
               "the ghosts took %.1f s, longer than the expiry" % elapsed)

    # After the expiry: gone, and their objects too.
    gone = wait_for(lambda: not set(names) & set(alice.peers()), EXPIRY + 15)
    peers = alice.peers()
    t.ok(gone, "after the expiry ListPeers holds no ghost",
         sorted(set(names) & set(peers))[:10])
    t.ok(not set(names) & managed_peers(alice), "nor does GetManagedObjects")
    paths = wait_for(lambda: {p for p in removed_paths(alice) if "ghost" in p}, 5)
    t.ok(len(paths) == GHOSTS, "InterfacesRemoved for each ghost's object", len(paths))
    t.ok({"writer", "queued", "shown"} <= set(peers) and
         not any(peers[n][1] for n in ("writer", "queued", "shown")),
         "the peers with a message, a queued one or an open conversation stay (offline)",
         sorted(peers))
    t.ok({"writer", "queued", "shown"} <= managed_peers(alice), "and keep their objects")
    t.ok(not [p for p in removed_paths(alice) if "ghost" not in p],
         "no other object was removed")

    # The roster still takes newcomers, and a ghost that comes back is new.
    newcomer = RefClient("newcomer", coord.address)
    again = RefClient(names[0], coord.address)
    t.ok(newcomer.join() and again.join(), "a newcomer and a former ghost log in")
    t.ok(wait_for(lambda: {"newcomer", names[0]} <= set(alice.online_peers()), 10),
         "alice sees both online", alice.online_peers())
    t.ok(alice.prop("State") == "online", "alice is still online")


run(body)
