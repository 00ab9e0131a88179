#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A corpus of malformed and hostile inputs (UDP and TCP); after each one a
valid login still gets Accept within 1 s, and no reply is ever larger than
the datagram that caused it.  Also: the per-IP login rate limit, the per-IP
connection limit and the max-users limit."""

import os
import random
import select
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))

from p2ptest import SLOW, Coordinator, Tap  # noqa: E402
from refclient import RefClient, Utf8RefClient, frame, leb128, utf16 as u16  # noqa: E402

EP = "127.0.0.1:9000"


def u8(text):
    return text.encode("utf-8")


def datagram_corpus():
    rnd = random.Random(7474)
    c = [
        ("empty datagram", b""),
        ("one byte", b"l"),
        ("one UTF-16 unit", u16("l")),
        ("type only", u16("login")),
        ("type and comma", u16("login,")),
        ("two fields", u16("login,alice")),
        ("endpoint without port", u16("login,alice,127.0.0.1")),
        ("port 0", u16("login,alice,127.0.0.1:0")),
        ("port 65536", u16("login,alice,127.0.0.1:65536")),
        ("octet 256", u16("login,alice,256.0.0.1:9000")),
        ("leading zero octet", u16("login,alice,127.000.0.1:9000")),
        ("leading zero port", u16("login,alice,127.0.0.1:09000")),
        ("space before endpoint", u16("login,alice, 127.0.0.1:9000")),
        ("host name endpoint", u16("login,alice,localhost:9000")),
        ("unbracketed IPv6", u16("login,alice,::1:9000")),
        ("five fields", u16("login,alice,%s,native1,x" % EP)),
        ("empty name", u16("login,,%s" % EP)),
        ("reserved name end", u16("login,end,%s" % EP)),
        ("name of 33 chars", u16("login,%s,%s" % ("n" * 33, EP))),
        ("name with semicolon", u16("login,a;b,%s" % EP)),
        ("name with colon", u16("login,a:b,%s" % EP)),
        ("name with control", u16("login,a\x01b,%s" % EP)),
        ("bad caps", u16("login,alice,%s,bad caps!" % EP)),
        ("caps of 65 bytes", u16("login,alice,%s,%s" % (EP, "c" * 65))),
        ("wrong case", u16("LOGIN,alice,%s" % EP)),
        ("logout without fields", u16("logout")),
        ("lohout without fields", u16("lohout")),
        ("logout of unknown user", u16("logout,ghost,%s" % EP)),
        ("Accept sent to coordinator", u16("Accept,1234")),
        ("Reject sent to coordinator", u16("Reject,invalid")),
        ("talk sent to coordinator", u16("talk,12:00:00,alice,hi")),
        ("hello by UDP", u16("hello,alice,native1")),
        ("odd-length UTF-16", u16("login,alice,%s" % EP) + b"\x00"),
        ("unpaired surrogate", u16("login,a") + b"\x00\xd8" + u16("b,%s" % EP)),
        ("lone low surrogate", u16("login,a") + b"\x00\xdc" + u16(",%s" % EP)),
        ("UTF-8 0xff byte", b"login,a\xffb," + u8(EP)),
        ("UTF-8 overlong", b"login,a\xc0\xafb," + u8(EP)),
        ("UTF-8 truncated sequence", b"login,a\xe4\xb8," + u8(EP)),
        ("UTF-8 surrogate", b"login,a\xed\xa0\x80," + u8(EP)),
        ("UTF-8 BOM + garbage", b"\xef\xbb\xbf\xff\xfe"),
        ("UTF-16 BOM only", b"\xff\xfe"),
        ("UTF-16BE BOM + text", b"\xfe\xff" + "login,x,1.2.3.4:5".encode("utf-16-be")),
        ("UTF-16 BOM + UTF-8 text", b"\xff\xfe" + u8("login,bomname,%s" % EP)),
        ("NUL bytes", b"\x00" * 64),
        ("64 commas", u16("," * 64)),
        ("trailing newline", u16("login,alice,%s\n" % EP)),
        ("trailing NUL", u16("login,alice,%s\x00" % EP)),
        ("JSON", u8('{"type":"msg","id":"00","from":"a","ts":1,"body":"x"}')),
        ("open brace", b"{"),
        ("1025 bytes", b"A" * 1025),
        ("huge datagram", b"A" * 60000),
        ("huge UTF-16 login", u16("login,%s,%s" % ("x" * 30000, EP))),
    ]
    for i in range(8):
        n = rnd.randrange(1, 300)
        c.append(("random bytes %d" % i, bytes(rnd.randrange(256) for _ in range(n))))
    for i in range(4):
        text = "login,alice,%s" % EP
        data = bytearray(u16(text))
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        c.append(("bit flip %d" % i, bytes(data)))
    return c


def tcp_corpus():
    return [
        ("TCP overlong LEB128", b"\xff" * 12),
        ("TCP length 2^40", leb128(1 << 40)),
        ("TCP frame over the control limit", leb128(513) + b"h" * 513),
        ("TCP non-minimal LEB128", b"\x85\x00hello"),
        ("TCP invalid UTF-8 frame", leb128(4) + b"\xff\xfe\xfd\xfc"),
        ("TCP hello without caps", frame("hello,alice")),
        ("TCP bare hello", frame("hello")),
        ("TCP login frame before hello", frame("login,alice,%s" % EP)),
        ("TCP ping before hello", frame("ping")),
        ("TCP empty frame", b"\x00"),
        ("TCP partial frame then silence", b"\x10hel"),
        ("TCP half-open, never reads", None),
    ]


def valid_login(coord, i, tap, label):
    c = RefClient("ok%d" % i, coord.udp_addr)
    try:
        c.login()
        port = c.wait_accept(1.0)
        # Withdrawn before its list fetch: the pending logins of one IP are limited.
        c.logout()
        return tap.ok(port == coord.tcp_port, "valid login accepted after: %s" % label)
    finally:
        c.close()


def test_corpus(tap):
    held = []
    with Coordinator("--login-rate", "0") as coord:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        too_large = []
        i = 0
        try:
            for label, data in datagram_corpus():
                probe.sendto(data, coord.udp_addr)
                while select.select([probe], [], [], 0.02 * SLOW)[0]:
                    reply, _ = probe.recvfrom(65536)
                    if len(reply) > len(data):
                        too_large.append((label, len(data), len(reply)))
                valid_login(coord, i, tap, label)
                i += 1
            tap.ok(not too_large, "no reply larger than its request", too_large)

            for label, data in tcp_corpus():
                s = socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=2)
                if data is None:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                else:
                    s.sendall(data)
                held.append(s)
                valid_login(coord, i, tap, label)
                i += 1

            # A connection reset right away.
            s = socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            valid_login(coord, i, tap, "TCP connect then RST")
            i += 1

            # Bad frames get Reject,invalid or a plain close, never a list.
            s = held[0]
            s.settimeout(2)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            tap.ok(b"end" not in data, "garbage on TCP gets no list", data[:80])
            tap.ok(coord.alive(), "coordinator survived the corpus")
        finally:
            probe.close()
            for s in held:
                s.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def test_limits(tap):
    with Coordinator("--max-users", "5", "--max-connections-per-ip", "3",
                     "--login-rate", "5", "--login-burst", "5") as coord:
        # Rate: a burst of 12 logins from one IP gets at most the bucket.
        accepted = 0
        clients = [RefClient("r%d" % i, coord.udp_addr, ip="127.0.0.5") for i in range(12)]
        for c in clients:
            c.login()
        for c in clients:
            if c.wait_accept(0.3) is not None:
                accepted += 1
            c.close()
        tap.ok(1 <= accepted <= 6, "login rate limited per source IP (%d of 12)" % accepted)
        # Other IPs are not affected; max users gives Reject,full.
        results = []
        for i in range(6):
            c = Utf8RefClient("m%d" % i, coord.udp_addr, ip="127.0.0.%d" % (10 + i))
            c.login()
            text = c.expect("", 1.0)
            if text and text.startswith("Accept,"):
                c.fetch_list(coord.tcp_port, host="127.0.0.1")  # online only then
            results.append(text)
            c.close()
        tap.ok(results.count("Reject,full") >= 1 and all(results),
               "max users: Reject,full in the request's encoding", results)
        # Connections per IP: the 4th from one IP is closed at once.
        socks = [socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=2,
                                          source_address=("127.0.0.7", 0)) for _ in range(4)]
        closed = []
        for s in socks:
            s.settimeout(0.05)
            try:
                closed.append(s.recv(1) == b"")
            except socket.timeout:
                closed.append(False)
            except ConnectionResetError:
                closed.append(True)
        tap.ok(closed == [False, False, False, True], "4th connection from one IP closed",
               closed)
        for s in socks:
            s.close()
        tap.ok(coord.alive(), "coordinator survived the limits")
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def main():
    tap = Tap()
    test_corpus(tap)
    test_limits(tap)
    tap.finish()


if __name__ == "__main__":
    main()
