#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A stand-in for p2pchatd on the session bus, for CLI tests without a network.

It serves org.p2pchat.chat1.Manager from dbus/org.p2pchat.chat1.xml with the
daemon's observable behaviour (named errors, signals) and a scripted roster:

    fake_daemon.py [--peer NAME:ENDPOINT:ONLINE:NATIVE]...

ONLINE and NATIVE are 0 or 1.  Messages to an online native peer are
delivered (MessageDelivered), to an online reference peer sent (MessageSent),
to an offline peer failed (MessageFailed "peer is offline").  The peer named
"echo" answers every message with MessageReceived carrying the same text.
The test interface org.p2pchat.test.Control at /org/p2pchat/test has
Inject(s peer, s text) (emit MessageReceived) and SetOnline(s peer, b online)
(emit PeerJoined/PeerLeft).  Each peer is also an org.p2pchat.chat1.Peer
object whose Unread counts the messages injected from it (MarkRead zeroes
it; ListPeers carries it as extra "unread").  It prints "READY" on stdout once it owns the
name, and exits on SIGTERM.
"""

import argparse
import os
import secrets
import signal
import sys
import time

from gi.repository import Gio, GLib

SERVICE = "org.p2pchat.chat1"
PATH = "/org/p2pchat/chat1"
IFACE = "org.p2pchat.chat1.Manager"
PEER_IFACE = "org.p2pchat.chat1.Peer"
ERR = "org.p2pchat.chat1.Error."
MAX_TEXT = 16 * 1024

CONTROL_XML = """
<node>
  <interface name="org.p2pchat.test.Control">
    <method name="Inject"><arg name="peer" type="s" direction="in"/>
      <arg name="text" type="s" direction="in"/></method>
    <method name="SetOnline"><arg name="peer" type="s" direction="in"/>
      <arg name="online" type="b" direction="in"/></method>
  </interface>
</node>
"""


def contract_xml():
    root = os.environ.get("P2PCHAT_SOURCE_ROOT",
                          os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(root, "dbus", "org.p2pchat.chat1.xml")) as f:
        return f.read()


def peer_path(name):
    """sd_bus_path_encode(): what is not a letter, or a digit after the first, is _XX."""
    if not name:
        return PATH + "/peer/_"
    return PATH + "/peer/" + "".join(
        c if c.isascii() and (c.isalpha() or (i > 0 and c.isdigit()))
        else "".join("_%02x" % b for b in c.encode()) for i, c in enumerate(name))


class FakeDaemon:
    def __init__(self, conn, peers, peer_info):
        self.conn = conn
        self.peers = peers  # name -> dict(endpoint, online, native, unread)
        self.peer_info = peer_info
        self.props = {"State": "offline", "Username": "", "Coordinator": "",
                      "LocalEndpoint": "", "ActiveConversation": ""}
        for name in self.peers:
            self.add_peer_object(name)

    def add_peer_object(self, name):
        p = self.peers[name]
        p.setdefault("unread", 0)
        p["path"] = peer_path(name)
        self.conn.register_object(p["path"], self.peer_info,
                                  None, lambda *a: self.on_get_peer(name, a[4]), None)

    def on_get_peer(self, name, prop):
        p = self.peers[name]
        if prop == "Name":
            return GLib.Variant("s", name)
        if prop == "Endpoint":
            return GLib.Variant("s", p["endpoint"])
        if prop in ("Online", "Native"):
            return GLib.Variant("b", p[prop.lower()])
        if prop == "Unread":
            return GLib.Variant("u", p["unread"])
        return None

    def set_unread(self, peer, n):
        p = self.peers.get(peer)
        if p is None:
            return
        p["unread"] = n
        self.conn.emit_signal(None, p["path"], "org.freedesktop.DBus.Properties",
                              "PropertiesChanged",
                              GLib.Variant("(sa{sv}as)",
                                           (PEER_IFACE, {"Unread": GLib.Variant("u", n)}, [])))

    def emit(self, member, sig, args):
        self.conn.emit_signal(None, PATH, IFACE, member, GLib.Variant(sig, args))

    def set_props(self, **kw):
        self.props.update(kw)
        changed = {k: GLib.Variant("s", v) for k, v in kw.items()}
        self.conn.emit_signal(None, PATH, "org.freedesktop.DBus.Properties",
                              "PropertiesChanged",
                              GLib.Variant("(sa{sv}as)", (IFACE, changed, [])))

    def online(self):
        return self.props["State"] == "online"

    def login(self, name, coordinator):
        if self.online():
            raise Failure("AlreadyLoggedIn", "Already logged in.")
        if not name or "," in name or ";" in name:
            raise Failure("InvalidName", f"Invalid user name '{name}'.")
        if name in self.peers:
            raise Failure("NameTaken", f"The name '{name}' is taken.")
        if coordinator.endswith(":1"):
            raise Failure("CoordinatorUnreachable", "The coordinator does not answer.")
        self.set_props(State="online", Username=name, Coordinator=coordinator,
                       LocalEndpoint="127.0.0.1:40000")

    def logout(self):
        if not self.online():
            raise Failure("NotLoggedIn", "Not logged in.")
        self.set_props(State="offline", Username="", Coordinator="", LocalEndpoint="")

    def send(self, peer, text):
        if not self.online():
            raise Failure("NotLoggedIn", "Not logged in.")
        p = self.peers.get(peer)
        if p is None:
            raise Failure("UnknownPeer", f"Unknown peer '{peer}'.")
        if len(text.encode()) > MAX_TEXT:
            raise Failure("MessageTooLong", "The message is longer than 16 KiB.")
        mid = secrets.token_hex(16)

        def outcome():
            if not p["online"]:
                self.emit("MessageFailed", "(sssa{sv})", (mid, peer, "peer is offline", {}))
            elif p["native"]:
                self.emit("MessageDelivered", "(ssa{sv})",
                          (mid, peer, {"attempts": GLib.Variant("u", 1)}))
            else:
                self.emit("MessageSent", "(ssa{sv})", (mid, peer, {}))
            if peer == "echo" and p["online"]:
                self.inject(peer, text)
            return False

        GLib.timeout_add(20, outcome)
        return mid

    def inject(self, peer, text):
        if peer in self.peers:
            self.set_unread(peer, self.peers[peer]["unread"] + 1)
        self.emit("MessageReceived", "(sssta{sv})",
                  (secrets.token_hex(16), peer, text, int(time.time() * 1e6),
                   {"native": GLib.Variant("b", True)}))

    def set_online(self, peer, online):
        if peer not in self.peers:
            self.peers[peer] = {"endpoint": "127.0.0.1:40100", "online": False, "native": True}
            self.add_peer_object(peer)
        p = self.peers[peer]
        p["online"] = online
        if online:
            self.emit("PeerJoined", "(ssa{sv})",
                      (peer, p["endpoint"], {"native": GLib.Variant("b", p["native"])}))
        else:
            self.emit("PeerLeft", "(sa{sv})", (peer, {}))

    def list_peers(self):
        return [(n, p["endpoint"], p["online"], {"native": GLib.Variant("b", p["native"]),
                                                 "unread": GLib.Variant("u", p["unread"])})
                for n, p in sorted(self.peers.items())]

    # GDBus callbacks
    def on_call(self, conn, sender, path, iface, method, params, inv):
        try:
            args = params.unpack()
            if method == "Login":
                self.login(*args)
                inv.return_value(None)
            elif method == "Logout":
                self.logout()
                inv.return_value(None)
            elif method == "SendMessage":
                inv.return_value(GLib.Variant("(s)", (self.send(*args),)))
            elif method == "ListPeers":
                if not self.online():
                    raise Failure("NotLoggedIn", "Not logged in.")
                inv.return_value(GLib.Variant("(a(ssba{sv}))", (self.list_peers(),)))
            elif method == "MarkRead":
                self.set_unread(args[0], 0)
                inv.return_value(None)
            elif method == "Inject":
                self.inject(*args)
                inv.return_value(None)
            elif method == "SetOnline":
                self.set_online(*args)
                inv.return_value(None)
            else:
                inv.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)
        except Failure as e:
            inv.return_dbus_error(ERR + e.args[0], e.args[1])

    def on_get(self, conn, sender, path, iface, prop):
        if prop not in self.props:
            return None  # GDBus answers an error instead of a traceback
        return GLib.Variant("s", self.props[prop])


class Failure(Exception):
    pass


def parse_peer(s):
    name, host, port, online, native = s.rsplit(":", 4)
    return name, {"endpoint": f"{host}:{port}", "online": online == "1",
                  "native": native == "1"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="append", default=[], type=parse_peer)
    opts = ap.parse_args()

    loop = GLib.MainLoop()
    conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    node = Gio.DBusNodeInfo.new_for_xml(contract_xml())
    manager = node.lookup_interface(IFACE)
    daemon = FakeDaemon(conn, dict(opts.peer), node.lookup_interface(PEER_IFACE))
    control = Gio.DBusNodeInfo.new_for_xml(CONTROL_XML).interfaces[0]
    conn.register_object(PATH, manager, daemon.on_call, daemon.on_get, None)
    conn.register_object("/org/p2pchat/test", control, daemon.on_call, None, None)

    owned = []

    def acquired(*_):
        owned.append(True)
        print("READY", flush=True)

    def lost(*_):
        if not owned:
            print("fake_daemon: could not own " + SERVICE, file=sys.stderr)
        loop.quit()

    Gio.bus_own_name_on_connection(conn, SERVICE, Gio.BusNameOwnerFlags.NONE,
                                   acquired, lost)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
