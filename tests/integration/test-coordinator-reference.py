#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The coordinator against a reference-client emulator (UTF-16LE datagrams
from throwaway ports, list over TCP then close), as in
shared/seed/reference-wire.md."""

import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))

from p2ptest import SLOW, Coordinator, Tap, has_ipv6, wait_for  # noqa: E402
from refclient import FrameReader, RefClient, parse_list  # noqa: E402


def listed(coord):
    """The names in the coordinator's list, fetched like a reference client."""
    with socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=3 * SLOW) as s:
        text = FrameReader(s).read(3.0)
    return [e[0] for e in parse_list(text or "end")]


def test_open_client_stays(tap):
    """A reference client sends nothing while it runs: with a lease far
    shorter than the first probe, an open one is still listed (probing
    replaces its lease)."""
    with Coordinator("--lease=1") as coord:
        alice = RefClient("alice", coord.udp_addr)
        bob = RefClient("bob", coord.udp_addr)
        tap.ok(alice.join() and bob.join(), "two reference clients log in")
        tap.ok(alice.expect("login,bob") is not None, "alice hears of bob (lease)")
        got = alice.poll(3.0)
        tap.ok(got == [], "an open client hears of no logout past the lease", got)
        names = listed(coord)
        tap.ok(names == ["alice", "bob"], "open clients stay listed past the lease", names)
        alice.close()
        bob.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM (lease)", diag)


def test_closed_client_leaves(tap):
    """A reference client closed without logging out (its port closed: the
    kernel answers ICMP port unreachable) leaves within a few probes; an open
    one ignores the probes and stays."""
    interval = max(1, round(SLOW))
    with Coordinator("--verbose", "--probe-interval=%d" % interval, "--probe-count=2",
                     "--lease=600") as coord:
        alice = RefClient("alice", coord.udp_addr)
        bob = RefClient("bob", coord.udp_addr)
        tap.ok(alice.join() and bob.join(), "two reference clients log in (probed)")
        roster = dict(alice.roster)
        tap.ok(alice.expect("login,bob") is not None, "alice hears of bob")
        bob.close()
        # Up to one interval to the first probe, one more to the second.
        fwd = alice.expect("logout,bob", 3 * interval + 2)
        tap.ok(fwd == "logout,bob,%s" % bob.endpoint,
               "a closed client is logged out for everyone within two probes", fwd)
        tap.ok(listed(coord) == ["alice"], "the closed client is off the list")
        got = alice.poll(3 * interval / SLOW + 1)
        tap.ok(got == [] and alice.ignored >= 2,
               "the open client gets only probes, which change nothing it shows",
               "got %r, %d probes ignored" % (got, alice.ignored))
        tap.ok(alice.roster == {k: v for k, v in roster.items() if k != "bob"},
               "the open client's list only lost bob", alice.roster)
        tap.ok(listed(coord) == ["alice"], "the open client stays listed")
        alice.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM (probes)", diag)


def test_notify(tap):
    """READY=1 and STATUS= through $NOTIFY_SOCKET."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        messages = []

        def notified(pred, timeout=3.0):
            def seen():
                try:
                    while True:
                        messages.append(sock.recv(4096).decode())
                except BlockingIOError:
                    pass
                return any(pred(m) for m in messages)
            return wait_for(seen, timeout)

        env = dict(os.environ, NOTIFY_SOCKET=path)
        with Coordinator(env=env) as coord:
            tap.ok(notified(lambda m: "READY=1" in m), "sd_notify READY=1", messages)
            alice = RefClient("alice", coord.udp_addr)
            tap.ok(alice.join(), "a reference client logs in (and fetches the list)")
            tap.ok(notified(lambda m: "STATUS=1 users online" in m), "STATUS= counts users",
                   messages)
            alice.close()
        ok, diag = coord.clean_exit()
        tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)
        sock.close()


def test_ipv6(tap):
    """--listen [::1]:0: IPv6 endpoints end to end."""
    if not has_ipv6():
        for name in ("IPv6 login gets Accept", "IPv6 list has '[::1]:port' endpoints",
                     "IPv6 login forwarded", "coordinator exits cleanly on SIGTERM (IPv6)"):
            tap.skip_missing(name, "IPv6")
        return
    with Coordinator(host="::1") as coord:
        alice = RefClient("alice", coord.udp_addr, ip="::1")
        bob = RefClient("bob", coord.udp_addr, ip="::1")
        alice.login()
        port = alice.wait_accept()
        tap.ok(port == coord.tcp_port, "IPv6 login gets Accept", port)
        entries, closed = alice.fetch_list(port)
        tap.ok(entries == [("alice", alice.endpoint, "")] and closed,
               "IPv6 list has '[::1]:port' endpoints", entries)
        bob.join()
        fwd = alice.expect("login,bob")
        tap.ok(fwd == "login,bob,%s" % bob.endpoint, "IPv6 login forwarded", fwd)
        alice.close()
        bob.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def main():
    tap = Tap()
    test_notify(tap)
    test_ipv6(tap)
    test_open_client_stays(tap)
    test_closed_client_leaves(tap)
    clients = []
    with Coordinator("--verbose") as coord:
        alice = RefClient("alice", coord.udp_addr)
        bob = RefClient("bob", coord.udp_addr)
        clients += [alice, bob]

        alice.login()
        port = alice.wait_accept()
        tap.ok(port == coord.tcp_port, "login gets Accept with the TCP port",
               "got %r" % port)
        tap.ok(alice.accept_from and alice.accept_from[0] == "127.0.0.1",
               "Accept comes from the listen address", alice.accept_from)

        entries, closed = alice.fetch_list(port)
        tap.ok(entries == [("alice", alice.endpoint, "")], "list includes self",
               entries)
        tap.ok(closed, "coordinator closes after the list")

        bob.login()
        tap.ok(bob.wait_accept() == coord.tcp_port, "second user gets Accept")
        tap.ok(alice.expect("login,", 0.3) is None,
               "a login is not forwarded before its IP fetches the list")
        entries, closed = bob.fetch_list(coord.tcp_port)
        tap.ok([e[0] for e in entries or []] == ["alice", "bob"] and closed,
               "second list holds both, in login order", entries)
        fwd = alice.expect("login,")
        tap.ok(fwd == "login,bob,%s" % bob.endpoint, "second login forwarded", fwd)
        tap.ok(bob.drain(0.2) == [], "newcomer gets no copy of its own login")

        bob.logout()
        fwd = alice.expect("logout,")
        tap.ok(fwd == "logout,bob,%s" % bob.endpoint, "logout forwarded", fwd)

        carol = RefClient("carol", coord.udp_addr)
        clients.append(carol)
        tap.ok(carol.join(), "third user logs in")
        tap.ok(alice.expect("login,carol") is not None, "third login forwarded")
        carol.logout(misspelled=True)
        fwd = alice.expect("logout,")
        tap.ok(fwd == "logout,carol,%s" % carol.endpoint, "lohout counts as logout", fwd)

        # The same name from another IP is refused; the reply goes to the
        # source (its declared endpoint is on 127.0.0.1).
        mallory = RefClient("alice", coord.udp_addr, ip="127.0.0.2")
        clients.append(mallory)
        mallory.login()
        text = mallory.expect("Reject,")
        tap.ok(text == "Reject,name-taken", "duplicate name refused", text)

        alice.logout(src_ip="127.0.0.2")
        tap.ok(alice.expect("logout,", 0.3) is None, "logout from a foreign IP ignored")
        entries, _ = alice.fetch_list(coord.tcp_port)
        tap.ok([e[0] for e in entries or []] == ["alice"], "alice still online", entries)

        # Re-login from the same address: Accept, no forward, still one entry.
        dave = RefClient("dave", coord.udp_addr)
        clients.append(dave)
        tap.ok(dave.join() and alice.expect("login,dave") is not None, "dave logs in")
        dave.login()
        tap.ok(dave.wait_accept() is not None, "re-login from the same address accepted")
        tap.ok(alice.expect("login,", 0.3) is None, "an identical re-login is not forwarded")

        # A declared endpoint on a foreign IP: the Accept goes to the source,
        # nothing goes to the declared endpoint, and others see the source.
        eve = RefClient("eve", coord.udp_addr, ip="127.0.0.3")
        clients.append(eve)
        eve.login(endpoint=dave.endpoint)
        tap.ok(eve.expect("Accept,", 0.3) is None, "no Accept to the listening socket")
        tap.ok(dave.expect("Accept,", 0.3) is None, "no Accept reflected to a third party")
        eve.fetch_list(coord.tcp_port, host="127.0.0.1")
        fwd = alice.expect("login,eve")
        tap.ok(fwd is not None and fwd.startswith("login,eve,127.0.0.3:")
               and dave.endpoint not in fwd, "others see eve's source address", fwd)

        tap.ok(coord.alive(), "coordinator still running")
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)
    for c in clients:
        c.close()
    tap.finish()


if __name__ == "__main__":
    main()
