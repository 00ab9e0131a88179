#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Forged datagrams (raw sockets, so root) against the coordinator:

- reflection: reference logins whose source and declared endpoint are a
  victim's, then a crowd of logins from other forged addresses, make the
  victim receive no more bytes than the attacker sent (a reference login
  is sent nothing but its Accept until its IP fetches the list over TCP),
  and the victim is never listed to a real reference client;
- forced logout: a forged logout datagram naming a native user, from her
  IP on another port or from her exact endpoint, logs nobody out."""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))

from p2ptest import SLOW, Coordinator, Spoofer, Tap, can_spoof, parse_endpoint  # noqa: E402
from refclient import FrameReader, NativeClient, RefClient, parse_list, utf16  # noqa: E402

VICTIM_IP = "127.0.0.77"
N_VICTIM_LOGINS = 40
N_DECOYS = 200

REFLECTION = ["reflection: the victim gets at most the bytes sent (ratio <= 1.0)",
              "reflection: the victim is never listed to a reference client",
              "reflection: a reference client hears of no forged login",
              "reflection: coordinator exits cleanly"]
LOGOUT = ["forced logout: a forged logout from her IP, another port, is ignored",
          "forced logout: a forged logout from her exact endpoint is ignored",
          "forced logout: she stays in a fresh list fetch",
          "forced logout: her session still answers",
          "forced logout: coordinator exits cleanly"]


def listed(coord, src_ip="127.0.0.1"):
    """The names in the coordinator's list, fetched like a reference client
    from @src_ip (which confirms that IP's pending logins)."""
    with socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=3 * SLOW,
                                  source_address=(src_ip, 0)) as s:
        text = FrameReader(s).read(3.0)
    return [e[0] for e in parse_list(text or "end")]


def drain(sock, quiet=0.5):
    """(bytes, datagrams) read from @sock until it is silent for @quiet s."""
    total = count = 0
    while select.select([sock], [], [], quiet * SLOW)[0]:
        data = sock.recv(65536)
        total += len(data)
        count += 1
    return total, count


def test_reflection(tap):
    with Coordinator() as coord:
        victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        victim.bind((VICTIM_IP, 0))
        vport = victim.getsockname()[1]
        spoofer = Spoofer()
        carol = RefClient("carol", coord.udp_addr)
        try:
            for i in range(N_VICTIM_LOGINS):
                spoofer.send((VICTIM_IP, vport), coord.udp_addr,
                             utf16("login,v%02d,%s:%d" % (i, VICTIM_IP, vport)))
            for i in range(N_DECOYS):
                ip = "127.0.1.%d" % (2 + i)
                spoofer.send((ip, 40000 + i), coord.udp_addr,
                             utf16("login,d%d,%s:%d" % (i, ip, 40000 + i)))
            got, n = drain(victim, 1.0)
            ratio = got / spoofer.sent
            tap.diag("victim received %d bytes in %d datagrams for %d bytes sent in %d "
                     "datagrams: ratio %.3f" % (got, n, spoofer.sent,
                                                N_VICTIM_LOGINS + N_DECOYS, ratio))
            tap.ok(ratio <= 1.0, REFLECTION[0], "ratio %.3f" % ratio)

            tap.ok(carol.join(), "reflection: a real reference client logs in")
            names = listed(coord)
            forged = [x for x in names if x[0] in "vd" and x[1:].isdigit()]
            tap.ok(forged == [] and "carol" in names, REFLECTION[1], names)
            heard = [t for t, _ in carol.poll(1.0) if not t.startswith("login,carol")]
            tap.ok(heard == [], REFLECTION[2], heard)
        finally:
            carol.close()
            spoofer.close()
            victim.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, REFLECTION[3], diag)


def expect_frame(client, prefix, timeout=1.0):
    """The next frame on @client's session starting with @prefix within
    @timeout (times SLOW), answering pings; or None."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            text = client.read_frame(left / SLOW)
        except TimeoutError:
            return None
        if text is None:
            return None
        if text.startswith(prefix):
            return text
        if text == "ping":
            client.send_frame("pong")


def native_forced_logout(tap, coord, spoofer):
    """The native part, in one place: alice and bob hold native sessions
    (login datagram with native1, then hello on TCP, as the daemon does
    today); forged logouts naming alice must not reach bob."""
    alice = NativeClient("alice", coord.udp_addr)
    bob = NativeClient("bob", coord.udp_addr)
    try:
        alice.login_session()
        bob.login_session()
        ip, port = parse_endpoint(alice.endpoint)
        for verb in ("logout", "lohout"):
            spoofer.send((ip, port + 1 if port < 65535 else port - 1), coord.udp_addr,
                         utf16("%s,alice,%s" % (verb, alice.endpoint)))
        tap.ok(expect_frame(bob, "logout,alice") is None, LOGOUT[0])
        for verb in ("logout", "lohout"):
            spoofer.send((ip, port), coord.udp_addr,
                         ("%s,alice,%s" % (verb, alice.endpoint)).encode())
        tap.ok(expect_frame(bob, "logout,alice") is None, LOGOUT[1])
        names = listed(coord)
        tap.ok("alice" in names and "bob" in names, LOGOUT[2], names)
        alice.send_frame("ping")
        tap.ok(expect_frame(alice, "pong") == "pong", LOGOUT[3])
    finally:
        alice.close()
        bob.close()


def test_forced_logout(tap):
    with Coordinator("--verbose") as coord:
        spoofer = Spoofer()
        try:
            native_forced_logout(tap, coord, spoofer)
        finally:
            spoofer.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, LOGOUT[4], diag)


def main():
    tap = Tap()
    if tap.need(REFLECTION + LOGOUT, can_spoof(), "needs root (raw sockets)"):
        test_reflection(tap)
        test_forced_logout(tap)
    tap.finish()


if __name__ == "__main__":
    main()
