#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/gtk-roster: p2pchat-gtk with a roster of 10,000 peers.

alice's p2pchatd logs in to a Python stand-in of the seed's reference
server whose list holds 10,000 extra peers; then p2pchat-gtk starts on her
bus under a private Xvfb (GSK_RENDERER=cairo).  Printed figures:

- roster-ms: from starting the app until AT-SPI finds the first roster row
  (includes connecting, ListPeers, sorting and the first frames; AT-SPI is
  polled, so a few tens of ms are polling);
- rss-mb / hwm-mb: the app's resident memory then, and its peak;
- loop-*: how long the app's main loop took to answer a D-Bus call
  (org.gtk.Actions.List, dispatched on the main loop), sampled every 10 ms
  from another thread, while loading and while the roster is scrolled
  through top to bottom in 100 steps via the scroll bar's AT-SPI Value.
  The max is the longest the main loop was blocked, as seen from outside.

P2PCHAT_BENCH_PEERS=N changes the roster size (1 gives the baseline of an
empty roster: what startup alone costs).  A benchmark prints figures; it is
not a test and asserts nothing but that it could run.  (Loading a 10,000-message conversation needs GetHistory,
which the D-Bus contract does not have yet.)
"""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "helpers"))
from gi.repository import Gio, GLib  # noqa: E402
from gtktest import start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, RefServer, User, spawn, stop, wait_for  # noqa: E402

N_PEERS = int(os.environ.get("P2PCHAT_BENCH_PEERS", "10000"))
APP_ID = "org.p2pchat.P2pchat"
APP_PATH = "/org/p2pchat/P2pchat"


class LoopProbe(threading.Thread):
    """Measures round trips to the app's main loop until stopped."""

    def __init__(self, conn):
        super().__init__(daemon=True)
        self.conn = conn
        self.samples = []  # (monotonic time, seconds)
        self.running = True

    def run(self):
        while self.running:
            t = time.monotonic()
            try:
                self.conn.call_sync(APP_ID, APP_PATH, "org.gtk.Actions", "List", None, None,
                                    Gio.DBusCallFlags.NO_AUTO_START, 10000, None)
                self.samples.append((t, time.monotonic() - t))
            except GLib.Error:
                pass
            time.sleep(0.01)

    def between(self, start, end):
        return sorted(d for t, d in self.samples if start <= t <= end)


def describe(samples):
    if not samples:
        return "n=0"
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return "n=%d median-ms=%.1f p99-ms=%.1f max-ms=%.1f" % (
        len(samples), samples[len(samples) // 2] * 1e3, p99 * 1e3, samples[-1] * 1e3)


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def main():
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    extra = ["peer%05d,127.0.0.1:%d" % (i, 20000 + i) for i in range(N_PEERS)]
    server = RefServer(extra=extra)
    alice = User("alice")
    app = None
    try:
        alice.login("alice", server.address)
        t = time.monotonic()
        n = len(alice.peers())
        print("gtk-roster: daemon roster has %d peers; ListPeers from Python took %.0f ms" % (
            n, (time.monotonic() - t) * 1e3), flush=True)

        os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
        import gi
        gi.require_version("Atspi", "2.0")
        import pyatspi

        probe = LoopProbe(alice.conn)
        probe.start()
        env = dict(alice.env, DISPLAY=display, GDK_BACKEND="x11", GSK_RENDERER="cairo",
                   GSETTINGS_BACKEND="memory")
        t0 = time.monotonic()
        app = spawn([os.path.join(BUILD_ROOT, "frontends", "gtk", "p2pchat-gtk")], env=env,
                    stdout=subprocess.DEVNULL, stderr=open("/tmp/gtkt/bench-app.log", "w"))

        first_name = "peer00000, online" if N_PEERS else "p2pchat"

        def first_row():
            desktop = pyatspi.Registry.getDesktop(0)
            for i in range(desktop.childCount):
                a = desktop.getChildAtIndex(i)
                if a is not None and a.get_process_id() == app.pid:
                    return pyatspi.findDescendant(a, lambda x: x.name == first_name)
            return None

        row = wait_for(first_row, 60)
        t_roster = time.monotonic()
        if row is None:
            print("gtk-roster: the roster did not show up", flush=True)
            sys.exit(1)
        wait_for(lambda: False, 1.0)
        mem = rss(app.pid)
        print("gtk-roster: peers=%d roster-ms=%.0f rss-mb=%.1f hwm-mb=%.1f" % (
            N_PEERS, (t_roster - t0) * 1e3, mem["VmRSS"], mem["VmHWM"]), flush=True)
        print("gtk-roster: loop while loading: %s" % describe(probe.between(t0, t_roster)),
              flush=True)

        peers = wait_for(lambda: pyatspi.findDescendant(
            row.getApplication(), lambda x: x.getRole() == pyatspi.ROLE_LIST and
            x.name == "Peers"), 10)
        value = None
        for i in range(peers.parent.childCount):
            bar = peers.parent.getChildAtIndex(i)
            if bar.getRole() == pyatspi.ROLE_SCROLL_BAR and \
                    bar.getState().contains(pyatspi.STATE_VERTICAL):
                value = bar.getChildAtIndex(0).queryValue()
        t1 = time.monotonic()
        top = value.maximumValue
        for step in range(101):
            value.currentValue = top * step / 100.0
            time.sleep(0.02)
        t2 = time.monotonic()
        last = wait_for(lambda: pyatspi.findDescendant(
            row.getApplication(), lambda x: x.name == "peer%05d, online" % (N_PEERS - 1)), 10)
        print("gtk-roster: scrolled %.0f px in 100 steps, last row %s; loop while "
              "scrolling: %s" % (top, "shown" if last else "NOT shown",
                                 describe(probe.between(t1, t2))), flush=True)
        probe.running = False
        mem = rss(app.pid)
        print("gtk-roster: after scrolling rss-mb=%.1f hwm-mb=%.1f" % (
            mem["VmRSS"], mem["VmHWM"]), flush=True)
    finally:
        if app:
            stop(app)
        alice.close()
        server.close()
        stop(xvfb)


if __name__ == "__main__":
    main()
