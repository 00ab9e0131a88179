#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bad input over D-Bus: every case gets its named (or standard) error and
the daemon keeps serving.  Invalid UTF-8 cannot be expressed with Gio or
busctl, so it goes as a hand-marshalled message on a raw bus socket: the bus
refuses it before p2pchatd could see it, and p2pchatd keeps serving.
"""

import os
import signal
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import (ERROR, MANAGER, PATH, SERVICE, Coordinator, SilentPort, Tap,  # noqa: E402
                     User, error_name, wait_for)
from gi.repository import GLib  # noqa: E402

INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"


def raw_call_with_bytes(address, body_string):
    """Sends SendMessage("bob", body_string) with raw (possibly invalid UTF-8)
    bytes over a fresh connection; returns what the bus answered."""
    path = address.split("unix:path=")[1].split(",")[0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    if not s.recv(4096).startswith(b"OK"):
        return b"auth failed"
    s.sendall(b"BEGIN\r\n")

    def pad(b, n):
        return b + b"\0" * (-len(b) % n)

    def string(v):
        return struct.pack("<I", len(v)) + v + b"\0"

    def message(serial, fields, sig, body):
        hdr = b""
        for code, typ, val in fields:
            hdr = pad(hdr, 8)
            enc = (bytes([1]) + typ + b"\0" + (bytes([len(val)]) + val + b"\0"
                                               if typ == b"g" else string(val)))
            hdr += bytes([code]) + enc
        if sig:
            hdr = pad(hdr, 8) + bytes([8, 1]) + b"g\0" + bytes([len(sig)]) + sig + b"\0"
        fixed = b"l" + bytes([1, 0, 1]) + struct.pack("<III", len(body), serial, len(hdr))
        return pad(fixed + hdr, 8) + body

    s.sendall(message(1, [(1, b"o", b"/org/freedesktop/DBus"), (2, b"s", b"org.freedesktop.DBus"),
                          (3, b"s", b"Hello"), (6, b"s", b"org.freedesktop.DBus")], b"", b""))
    body = pad(string(b"bob"), 4) + string(body_string)
    s.sendall(message(2, [(1, b"o", PATH.encode()), (2, b"s", MANAGER.encode()),
                          (3, b"s", b"SendMessage"), (6, b"s", SERVICE.encode())], b"ss", body))
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    s.close()
    return data


t = Tap(27)
users = []
coord = None
try:
    coord = Coordinator()
    # A coordinator address that never answers: held open for the whole test.
    silent = SilentPort()
    alice = User("alice")
    users.append(alice)

    def err(method, sig=None, args=()):
        return alice.error_of(method, sig, args)

    # Offline.
    t.ok(err("Login", "ii", (1, 2)) == INVALID_ARGS, "Login with wrong types: InvalidArgs")
    t.ok(err("Login", "s", ("alice",)) == INVALID_ARGS, "Login with too few args: InvalidArgs")
    for name, why in [("", "empty"), ("a,b", "comma"), ("a;b", "semicolon"),
                      ("a:b", "colon"), ("end", "'end'"), ("x" * 33, "33 characters"),
                      ("tab\there", "control character")]:
        t.ok(err("Login", "ss", (name, coord.address)) == ERROR + "InvalidName",
             "Login with %s name: InvalidName" % why)
    t.ok(err("Login", "ss", ("alice", "not an address")) == INVALID_ARGS,
         "Login with a bad coordinator: InvalidArgs")
    e = err("Login", "ss", ("alice", "no-such-host.invalid:7474"))
    t.ok(e == ERROR + "CoordinatorUnreachable" and alice.prop("State") == "offline",
         "Login with a host name that does not resolve: CoordinatorUnreachable", e)
    t.ok(err("SendMessage", "ss", ("bob", "hi")) == ERROR + "NotLoggedIn",
         "SendMessage offline: NotLoggedIn")
    t.ok(err("Logout") == ERROR + "NotLoggedIn", "Logout offline: NotLoggedIn")

    # A Login that cannot succeed, cancelled by Logout: answered exactly once.
    box = alice.call_async("Login", "ss", ("alice", silent.address))
    wait_for(lambda: alice.prop("State") == "connecting", 5)
    alice.call("Logout")
    t.ok(wait_for(lambda: "error" in box, 5) and "reply" not in box and
         alice.prop("State") == "offline",
         "Logout cancels a pending Login with an error", box)

    # Online.
    bob = User("bob")
    users.append(bob)
    bob.login("bob", coord.address)
    alice.login("alice", coord.address)
    wait_for(lambda: alice.online_peers() == ["bob"], 5)
    t.ok(err("Login", "ss", ("alice", coord.address)) == ERROR + "AlreadyLoggedIn",
         "Login twice: AlreadyLoggedIn")
    t.ok(err("SendMessage", "ss", ("no:body", "hi")) == ERROR + "InvalidName",
         "SendMessage to an invalid peer name: InvalidName")
    t.ok(err("SendMessage", "ss", ("bob", "x" * 16385)) == ERROR + "MessageTooLong",
         "SendMessage with 16385 bytes: MessageTooLong")
    t.ok(err("SendMessage", "ss", ("bob", "")) == ERROR + "InvalidMessage",
         "SendMessage with empty text: InvalidMessage")
    t.ok(err("SendMessage", "su", ("bob", 7)) == INVALID_ARGS,
         "SendMessage with wrong types: InvalidArgs")
    mid = alice.send("bob", "é" * 8192)
    t.ok(bob.wait_signal("MessageReceived", lambda a: a[0] == mid and len(a[2]) == 8192),
         "16384 bytes of text are delivered")
    reply = raw_call_with_bytes(alice.bus.address, b"bad \xff\xfe utf-8")
    t.ok(b"SendMessage" not in reply and not bob.signals("MessageReceived")[1:] and
         alice.prop("State") == "online",
         "invalid UTF-8 never reaches p2pchatd; it keeps serving")

    # Hostile datagrams on the peer socket: nothing crashes, nothing is announced.
    ip, port = alice.prop("LocalEndpoint").rsplit(":", 1)
    junk = [b"", b"{", b"{}", b"[1,2]", b'{"type":"msg"}', b"{" * 5000 + b"}" * 5000,
            b'{"type":"msg","id":"' + b"0" * 32 + b'","from":"bob","ts":"x","body":7}',
            b'{"type":"msg","id":"ZZ","from":"bob","ts":1,"body":"x"}',
            b'{"type":"ack","id":"' + b"1" * 32 + b'","from":"bob"}',
            b'{"type":"msg","id":"' + b"2" * 32 + b'","from":"bob","ts":1,"body":"a\\u0000b"}',
            b"\xff\xfe\x00\xd8", "talk,1,bob".encode("utf-16-le"), b"\x00" * 100,
            "Accept,1".encode("utf-16-le"), "Reject,name-taken".encode("utf-16-le"),
            "login,mallory,127.0.0.1:1,native1".encode("utf-16-le"),
            "hello,x,native1".encode(), b"ping", os.urandom(1400), b"{" + os.urandom(60000)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in junk:
        s.sendto(d, (ip, int(port)))
    s.close()
    t.ok(wait_for(lambda: alice.prop("State") == "online", 5) and
         alice.online_peers() == ["bob"] and
         not [a for a in alice.signals("MessageReceived")],
         "junk datagrams change nothing", alice.peers())

    # Another daemon taking a name that is online from another IP: NameTaken.
    # (The coordinator lets a login from the same IP replace the old one.)
    carol = User("carol", bind="127.0.0.2:0")
    users.append(carol)
    e = carol.error_of("Login", "ss", ("bob", coord.address))
    t.ok(e == ERROR + "NameTaken" and carol.prop("State") == "offline",
         "Login with a name in use: NameTaken", e)

    # Unreachable coordinator: CoordinatorUnreachable after bounded retries.
    e = carol.error_of("Login", "ss", ("carol", silent.address))
    t.ok(e == ERROR + "CoordinatorUnreachable", "Login to nothing: CoordinatorUnreachable", e)

    # A second p2pchatd on a bus whose name is taken refuses to start.
    r = subprocess.run([os.path.join(p2ptest.BUILD_ROOT, "daemon", "p2pchatd")], env=carol.env,
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 1 and "already owned" in r.stderr,
         "a second p2pchatd refuses to start", r.stderr)

    # SIGTERM while a Login is pending: the caller gets an error, not a timeout.
    dave = User("dave")
    users.append(dave)
    box = dave.call_async("Login", "ss", ("dave", silent.address))
    wait_for(lambda: dave.prop("State") == "connecting", 5)
    status = dave.kill(signal.SIGTERM)
    t.ok(status == 0 and wait_for(lambda: "error" in box, 5) and
         error_name(box["error"]) == "System.Error.ECANCELED",
         "SIGTERM answers a pending Login", box)

    t.ok(alice.daemon.poll() is None and carol.daemon.poll() is None and
         alice.prop("State") == "online" and alice.online_peers() == ["bob"],
         "the daemons still serve after all of this")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if t.failed or t.n < t.count:
        for u in users:
            t.diag("--- %s log ---\n%s" % (u.label, u.read_log()[-3000:]))
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
