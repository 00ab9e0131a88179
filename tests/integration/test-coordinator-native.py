#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Native sessions: hello -> welcome -> list -> pushes in order; a killed
client is logged out for everyone; UTF-8 and UTF-16LE clients mixed; the
lease and the session wait; a reader that stops reading is dropped."""

import os
import signal
import socket
import subprocess
import sys
import time

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers")
sys.path.insert(0, HELPERS)

from p2ptest import SLOW, Coordinator, Tap, stop  # noqa: E402
from refclient import FrameReader, NativeClient, RefClient, Rejected, Utf8RefClient, frame  # noqa: E402

# The lease and the session wait, in seconds: stretched like every window
# of this test, so that a slower coordinator is not taken for a wrong one.
LEASE = max(1, round(SLOW))

# A client in its own process: logs in natively, holds the session, waits.
HOLDER = """
import sys, time
sys.path.insert(0, %r)
from refclient import NativeClient
c = NativeClient(sys.argv[1], ("127.0.0.1", int(sys.argv[2])))
c.login_session()
print("ready", flush=True)
time.sleep(60)
"""


def expect_frame(client, prefix, timeout=2.0):
    """The next frame on @client's session starting with @prefix within
    @timeout (times SLOW); other frames are skipped, and the coordinator's
    pings answered, as a client does."""
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


def pushed_names(client, prefix, n):
    """The names in the next @n pushes starting with @prefix."""
    got = []
    for _ in range(n):
        text = expect_frame(client, prefix)
        if text is None:
            break
        got.append(text.split(",")[1])
    return got


def test_sessions(tap):
    clients = []
    with Coordinator("--login-rate", "0", "--verbose") as coord:
        try:
            alice = NativeClient("alice", coord.udp_addr)
            clients.append(alice)
            entries = alice.login_session()
            tap.ok(entries == [("alice", alice.endpoint, "native1", alice.identity.hex)],
                   "hello -> welcome -> list with self and caps", entries)

            bob = NativeClient("bob", coord.udp_addr, encoding="utf-16-le")
            clients.append(bob)
            entries = bob.login_session()
            tap.ok([e[0] for e in entries] == ["alice", "bob"], "UTF-16LE native login", entries)
            text = expect_frame(alice, "login,")
            tap.ok(text == "login,bob,%s,native1,%s" % (bob.endpoint, bob.identity.hex),
                   "login pushed on session, with bob's key", text)

            carol = RefClient("carol", coord.udp_addr)
            dave = Utf8RefClient("dave", coord.udp_addr)
            clients += [carol, dave]
            # A reference login goes online when its IP fetches the list.
            tap.ok(carol.join(), "UTF-16LE reference login")
            tap.ok(dave.join(), "UTF-8 reference login")
            text = carol.expect("login,dave")
            tap.ok(text == "login,dave,%s" % dave.endpoint,
                   "UTF-16LE user gets the UTF-8 user's login", text)
            tap.ok(expect_frame(bob, "login,carol") and expect_frame(bob, "login,dave"),
                   "UTF-16LE native session gets both, as frames")
            tap.ok(expect_frame(alice, "login,dave") is not None, "so does the UTF-8 one")

            # Pushes in order.
            names = ["u%02d" % i for i in range(30)]
            extra = [RefClient(n, coord.udp_addr) for n in names]
            clients += extra
            for c in extra:
                c.join()
            got = pushed_names(alice, "login,", len(names))
            tap.ok(got == names, "30 pushes arrive in login order", got)
            for c in extra:
                c.logout()
            got = pushed_names(alice, "logout,", len(names))
            tap.ok(got == names, "30 logouts arrive in order", got)

            alice.send_frame("ping")
            tap.ok(expect_frame(alice, "pong") == "pong", "ping -> pong")

            # A killed process: FIN/RST ends the session, the user is logged out.
            holder = subprocess.Popen([sys.executable, "-c", HOLDER % HELPERS, "zed",
                                       str(coord.udp_port)], stdout=subprocess.PIPE)
            try:
                line = holder.stdout.readline()
                tap.ok(line.strip() == b"ready", "a client process holds a session")
                tap.ok(expect_frame(alice, "login,zed") is not None, "its login is pushed")
                os.kill(holder.pid, signal.SIGKILL)
                t0 = time.monotonic()
                text = expect_frame(alice, "logout,zed", 2.0)
                tap.ok(text is not None, "kill -9 -> logout pushed within %g s (%.3f s)"
                       % (2.0 * SLOW, time.monotonic() - t0))
                tap.ok(carol.expect("logout,zed", 2.0) is not None,
                       "and forwarded by UDP to reference users")
            finally:
                stop(holder)
                holder.stdout.close()

            # Reconnect: a new hello replaces the session, no logout.
            old = alice.tcp
            alice.login()
            alice.wait_accept()
            alice.connect(coord.tcp_port)
            tap.ok(FrameReader(old).wait_eof(2.0), "a second hello closes the old session")
            old.close()
            tap.ok(expect_frame(bob, "logout,alice", 0.3) is None, "replacing is not a logout")

            # hello refused: unknown name, or from another IP.
            for name, ip in (("nobody", "127.0.0.1"), ("bob", "127.0.0.2")):
                x = NativeClient(name, coord.udp_addr, ip=ip)
                try:
                    x.connect(coord.tcp_port)
                    got = None
                except Rejected as e:
                    got = (e.reason, e.encrypted)
                tap.ok(got == ("not-logged-in", True) and x.reader.wait_eof(2.0),
                       "hello for %s from %s refused (encrypted) and closed" % (name, ip), got)
                x.close()
            s = socket.create_connection(("127.0.0.1", coord.tcp_port), timeout=2)
            s.sendall(frame("hello,alice,native1"))
            r = FrameReader(s)
            text = r.read(2.0)
            tap.ok(text == "Reject,auth-required" and r.wait_eof(2.0),
                   "hello without noise1 refused in clear and closed", text)
            s.close()

            # Logout on the session.
            bob.send_frame("logout,bob,%s" % bob.endpoint)
            tap.ok(expect_frame(alice, "logout,bob") is not None, "logout frame forwarded")
            tap.ok(bob.reader.wait_eof(2.0), "session closed after its logout")

            # Closing the socket logs out.
            alice2 = NativeClient("alice2", coord.udp_addr)
            clients.append(alice2)
            alice2.login_session()
            tap.ok(expect_frame(alice, "login,alice2") is not None, "alice2 online")
            alice2.tcp.close()
            alice2.tcp = None
            tap.ok(expect_frame(alice, "logout,alice2") is not None, "close -> logout")
            tap.ok(coord.alive(), "coordinator still running")
        finally:
            for c in clients:
                c.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def test_timeouts(tap):
    # Probes off: the lease is what applies to a reference client then.
    with Coordinator("--lease", str(LEASE), "--session-wait", str(LEASE),
                     "--login-rate", "0", "--probe-interval=0") as coord:
        watcher = NativeClient("watcher", coord.udp_addr)
        lazy = NativeClient("lazy", coord.udp_addr)
        ref = RefClient("ref", coord.udp_addr)
        try:
            watcher.login_session()
            lazy.login()
            tap.ok(lazy.wait_accept() is not None, "native login without a session accepted")
            # Its name is only its once its session proves its key.
            tap.ok(expect_frame(watcher, "login,lazy", 0.3) is None, "but not pushed")
            tap.ok(lazy.drain(0.2) == [], "no UDP forwards to a native user awaiting its session")
            time.sleep(1.5 * LEASE)
            try:
                lazy.connect(coord.tcp_port)
                late = "welcome"
            except Rejected as e:
                late = e.reason
            tap.ok(late == "not-logged-in",
                   "native login that never opens a session is forgotten", late)
            tap.ok(ref.join() and expect_frame(watcher, "login,ref") is not None,
                   "reference user online")
            t0 = time.monotonic()
            for _ in range(3):
                time.sleep(0.5 * LEASE)
                ref.login()  # re-login renews the lease
            tap.ok(expect_frame(watcher, "logout,ref", 0.6 * LEASE / SLOW) is None,
                   "re-logins keep a session-less user online (%.1f s > lease of %d s)"
                   % (time.monotonic() - t0, LEASE))
            tap.ok(expect_frame(watcher, "logout,ref", 3.0 * LEASE / SLOW) is not None,
                   "lease expiry logs a silent reference user out")
            time.sleep(1.5 * LEASE)
            tap.ok(expect_frame(watcher, "logout,watcher", 0.2) is None and coord.alive(),
                   "a session-holding user has no lease")
        finally:
            for c in (watcher, lazy, ref):
                c.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def test_native_name_kept(tap):
    """A reference client that logs in from the same IP with the name of a
    native user holding a session is refused; the session stays (no flapping
    between the two)."""
    with Coordinator("--verbose") as coord:
        alice = NativeClient("alice", coord.udp_addr)
        watcher = NativeClient("watcher", coord.udp_addr)
        impostor = RefClient("alice", coord.udp_addr)
        try:
            alice.login_session()
            watcher.login_session()
            impostor.login()
            text, _ = impostor.recv(1.0)
            tap.ok(text == "Reject,name-taken",
                   "a reference login for a native user's name gets Reject,name-taken", text)
            tap.ok(expect_frame(watcher, "logout,alice", 0.5) is None,
                   "nobody hears alice leave")
            entries, _ = impostor.fetch_list(coord.tcp_port, host="127.0.0.1")
            tap.ok(("alice", alice.endpoint, "native1", alice.identity.hex) in (entries or []),
                   "the list still has the native alice, with her key", entries)
            alice.send_frame("ping")
            tap.ok(expect_frame(alice, "pong", 1.0) == "pong", "the session still answers")
        finally:
            for c in (alice, watcher, impostor):
                c.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def test_heartbeat(tap):
    """A session that answers nothing (the peer host froze, TCP still up) is
    closed by the ping check; one that answers pings stays."""
    with Coordinator("--ping-interval", "1", "--login-rate", "0") as coord:
        watcher = NativeClient("watcher", coord.udp_addr)
        silent = NativeClient("silent", coord.udp_addr)
        try:
            watcher.login_session()
            silent.login_session()
            t0 = time.monotonic()
            text = expect_frame(watcher, "logout,silent", 8.0)
            tap.ok(text is not None, "silent session closed by the ping check after %.1f s"
                   % (time.monotonic() - t0))
            watcher.send_frame("ping")
            tap.ok(expect_frame(watcher, "pong") == "pong", "a session answering pings stays")
        finally:
            watcher.close()
            silent.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def test_slow_reader(tap):
    with Coordinator("--output-cap", "65536", "--login-rate", "0", "--max-pending-per-ip", "1000",
                     "--max-names-per-ip", "1000", "--grace", "5") as coord:
        fast = NativeClient("fast", coord.udp_addr)
        slow = NativeClient("slow", coord.udp_addr)
        # Reference users that log in (a list fetch confirms all of an IP's
        # pending logins at once) and out again, in rounds: each a login and
        # a logout pushed.  Long names and caps fill the buffers sooner.
        churn = [RefClient("c%03d" % i + "c" * 28, coord.udp_addr) for i in range(200)]
        for c in churn:
            c.caps = "x" * 64
        try:
            fast.login_session()
            slow.login()
            port = slow.wait_accept()
            slow.open_tcp(port, rcvbuf=2048)
            slow.send_hello()
            slow.handshake()
            tap.ok(expect_frame(fast, "login,slow") is not None, "slow reader online")

            # Churn until the slow reader's kernel buffers and our cap are full;
            # the fast reader reads everything in between.
            dropped = None
            fast_closed = False
            deadline = time.monotonic() + 60
            n = 0
            while dropped is None and not fast_closed and time.monotonic() < deadline:
                for c in churn:
                    c.login()
                churn[0].fetch_list(coord.tcp_port)
                for c in churn:
                    c.logout()
                n += len(churn)
                while True:
                    try:
                        text = fast.read_frame(0.02)
                    except TimeoutError:
                        break
                    if text is None:
                        fast_closed = True
                        break
                    if text.startswith("logout,slow"):
                        dropped = n
                        break
            tap.ok(dropped is not None, "reader that stops reading is logged out",
                   "after %s login/logout pairs" % dropped)
            tap.diag("slow reader dropped after %s login/logout pairs" % dropped)
            tap.ok(coord.alive() and not fast_closed, "coordinator and fast reader fine")
            fast.send_frame("ping")
            tap.ok(expect_frame(fast, "pong", 5.0) == "pong", "fast session still served")
        finally:
            for c in [fast, slow] + churn:
                c.close()
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly on SIGTERM", diag)


def main():
    tap = Tap()
    tests = [test_sessions, test_timeouts, test_native_name_kept, test_heartbeat,
             test_slow_reader]
    only = sys.argv[1:]
    for t in tests:
        if not only or t.__name__ in only:
            t(tap)
    tap.finish()


if __name__ == "__main__":
    main()
