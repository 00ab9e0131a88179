#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd without --bind: one dual-stack socket.  Daemons chat through an
IPv4 coordinator (IPv4 peers reached through v4-mapped addresses, endpoints
declared and checked as plain IPv4) and, when the host has IPv6, through an
IPv6 one.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import Coordinator, Tap, User, has_ipv6, wait_for  # noqa: E402

t = Tap(6)
users = []
coords = []


def chat(a, b, an, bn, coord, family):
    a.login(an, coord.address)
    b.login(bn, coord.address)
    t.ok(wait_for(lambda: a.online_peers() == [bn] and b.online_peers() == [an], 5),
         "%s: rosters converge" % family, [a.peers(), b.peers()])
    ep = a.prop("LocalEndpoint")
    t.ok((ep.startswith("127.0.0.1:") if family == "IPv4" else ep.startswith("[::1]:")),
         "%s: the declared endpoint is the loopback address" % family, ep)
    m1 = a.send(bn, "hello over " + family)
    m2 = b.send(an, "and back over " + family)
    t.ok(b.wait_signal("MessageReceived", lambda x: x[0] == m1) and
         a.wait_signal("MessageReceived", lambda x: x[0] == m2) and
         a.wait_signal("MessageDelivered", lambda x: x[0] == m1) and
         b.wait_signal("MessageDelivered", lambda x: x[0] == m2),
         "%s: messages both ways, delivered" % family)


try:
    coord = Coordinator()
    coords.append(coord)
    alice, bob = User("alice", bind=None), User("bob", bind=None)
    users += [alice, bob]
    chat(alice, bob, "alice", "bob", coord, "IPv4")

    if has_ipv6():
        coord6 = Coordinator(host="::1")
        coords.append(coord6)
        carol, dave = User("carol", bind=None), User("dave", bind=None)
        users += [carol, dave]
        chat(carol, dave, "carol", "dave", coord6, "IPv6")
    else:
        for name in ("IPv6: rosters converge",
                     "IPv6: the declared endpoint is the loopback address",
                     "IPv6: messages both ways, delivered"):
            t.skip_missing(name, "IPv6")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if t.failed or t.n < t.count:
        for u in users:
            t.diag("--- %s log ---\n%s" % (u.label, u.read_log()[-2000:]))
    for u in users:
        u.close()
    for c in coords:
        c.close()
t.finish()
