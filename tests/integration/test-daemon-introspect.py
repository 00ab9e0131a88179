#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The running daemon's introspection matches dbus/org.p2pchat.chat1.xml:
every interface of ours, on the Manager object and on a peer object, has the
same properties (name, type, access), methods and signals (argument names,
types, directions).  Standard interfaces are not compared.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import MANAGER, PATH, PEER, SOURCE_ROOT, Tap, User, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402


def members(node, iface_prefix="org.p2pchat.chat1."):
    out = {}
    for iface in node.findall("interface"):
        name = iface.get("name")
        if not name.startswith(iface_prefix):
            continue
        items = set()
        for p in iface.findall("property"):
            items.add(("property", p.get("name"), p.get("type"), p.get("access")))
        for m in iface.findall("method"):
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in"))
                         for a in m.findall("arg"))
            items.add(("method", m.get("name"), args))
        for s in iface.findall("signal"):
            args = tuple((a.get("name"), a.get("type")) for a in s.findall("arg"))
            items.add(("signal", s.get("name"), args))
        out[name] = items
    return out


def introspect(user, path):
    xml = user.call("Introspect", path=path, iface="org.freedesktop.DBus.Introspectable")[0]
    return ET.fromstring(xml)


ISSUE5 = {("method", "GetHistory"), ("method", "SearchHistory"), ("method", "MarkRead"),
          ("method", "SetActiveConversation"), ("method", "GetConfig"),
          ("method", "SetConfig"), ("property", "ActiveConversation"),
          ("signal", "MessageStateChanged")}

ISSUE15 = {("property", "Storage", "s", "read"), ("property", "StorageError", "s", "read")}

t = Tap(10)
users = []
server = RefServer()
try:
    contract = members(ET.parse(os.path.join(SOURCE_ROOT, "dbus",
                                             "org.p2pchat.chat1.xml")).getroot())
    alice, bob = User("alice"), User("bob")
    users += [alice, bob]
    alice.login("alice", server.address)
    bob.login("bob", server.address)
    wait_for(lambda: alice.online_peers() == ["bob"], 5)

    live = members(introspect(alice, PATH))
    t.ok(live.get(MANAGER) == contract[MANAGER], "Manager matches the contract",
         "only live: %s\nonly xml: %s" % (live.get(MANAGER, set()) - contract[MANAGER],
                                          contract[MANAGER] - live.get(MANAGER, set())))
    t.ok(PEER not in live, "the Manager object has no Peer interface")
    names = {(i[0], i[1]) for i in contract[MANAGER]}
    t.ok(ISSUE5 <= names and ("property", "Unread", "u", "read") in contract[PEER],
         "the history, config and notification members are in the contract",
         ISSUE5 - names)

    t.ok(ISSUE15 <= contract[MANAGER] and alice.prop("Storage") == "ok" and
         alice.prop("StorageError") == "",
         "the storage properties are in the contract; a good history is ok")

    children = [n.get("name") for n in introspect(alice, PATH + "/peer").findall("node")]
    t.ok(children == ["bob"], "the peer object is enumerated", children)
    live = members(introspect(alice, PATH + "/peer/bob"))
    t.ok(live.get(PEER) == contract[PEER] and MANAGER not in live,
         "a peer object matches the contract",
         "only live: %s\nonly xml: %s" % (live.get(PEER, set()) - contract[PEER],
                                          contract[PEER] - live.get(PEER, set())))
    objects = alice.call("GetManagedObjects", iface="org.freedesktop.DBus.ObjectManager")[0]
    t.ok(objects.get(PATH + "/peer/bob", {}).get(PEER, {}).get("Name") == "bob",
         "ObjectManager lists the peer", objects)

    # The command line.
    exe = os.path.join(p2ptest.BUILD_ROOT, "daemon", "p2pchatd")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    t.ok(r.returncode == 0 and r.stdout.startswith("p2pchatd "), "--version", r.stdout)
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    t.ok(r.returncode == 0 and "--bind=ADDR:PORT" in r.stdout, "--help", r.stdout)
    r = subprocess.run([exe, "--bind", "300.1.1.1:5"], capture_output=True, text=True,
                       timeout=10, env=alice.env)
    t.ok(r.returncode == 1 and "Invalid bind address '300.1.1.1:5'" in r.stderr,
         "a bad --bind is refused", r.stderr)
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    for u in users:
        u.close()
    server.close()
t.finish()
