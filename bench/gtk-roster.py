#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/gtk-roster: p2pchat-gtk with a roster of 10,000 peers.

alice's p2pchatd logs in to a Python stand-in of the seed's reference
server whose list holds 10,000 extra peers; then p2pchat-gtk starts on her
bus under a private Xvfb (GSK_RENDERER=cairo) with P2PCHAT_GTK_FRAME_LOG
set: the window keeps its GdkFrameClock ticking and logs, after each painted
frame, the monotonic time and the number of roster rows.  Printed figures:

- first-frame-ms: from starting the app to the first painted frame that has
  roster rows; all-rows-ms: to the first frame with every peer in it;
- rss-mb / hwm-mb: the app's resident memory then, and its peak;
- longest-gap-ms: the longest time between two painted frames (how long the
  main loop could not draw; 16.7 ms is a frame), from the first frame until
  0.5 s after all rows are in, and while the roster is scrolled through top
  to bottom in 100 steps via the scroll bar's AT-SPI Value;
- the conversation: alice's history holds 10,000 messages with peer00000
  (written to her history.db while her daemon is stopped); the time from
  the open-conversation action to the first painted frame with messages
  (the newest of the first page of 100), then the time until the view
  shows every message while the bench keeps scrolling to the top (the app
  loads a page there and reveals it a few rows per frame; the frame log
  counts the messages shown, not those loaded), with the longest frame gap
  and RSS; then the time to scroll the whole conversation from top to
  bottom in 100 steps, like the roster, with its longest frame gap.

P2PCHAT_BENCH_PEERS=N changes the roster size (1 gives the baseline of an
empty roster: what startup alone costs); P2PCHAT_BENCH_MESSAGES=N the
conversation's (0 skips it).  A benchmark prints figures; it is
not a test and asserts nothing but that it could run.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "helpers"))
from gtktest import fill_history, open_conversation, scroll_value, start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, User, spawn, stop, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402

N_PEERS = int(os.environ.get("P2PCHAT_BENCH_PEERS", "10000"))
N_MESSAGES = int(os.environ.get("P2PCHAT_BENCH_MESSAGES", "10000"))


def read_frames(path):
    """The app's frame log, per painted frame: (monotonic seconds, roster
    rows, messages in the open conversation)."""
    frames = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    frames.append((int(parts[0]) / 1e6, int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return frames


def longest_gap(frames, start, end):
    """The longest time between two painted frames within [start, end], and
    how many gaps were longer than 50 ms (the main loop blocked)."""
    times = [f[0] for f in frames if start <= f[0] <= end]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return "frames=%d longest-gap-ms=%.1f gaps-over-50-ms=%d" % (
        len(times), max(gaps) * 1e3 if gaps else 0.0, sum(1 for g in gaps if g > 0.05))


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def scroll_through(value, frame_log):
    """Scrolls a list from top to bottom in 100 steps through the AT-SPI
    Value of its scroll bar; returns the pixels and the frame gaps."""
    t1 = time.monotonic()
    top = value.maximumValue
    for step in range(101):
        value.currentValue = top * step / 100.0
        time.sleep(0.02)
    return top, longest_gap(read_frames(frame_log), t1, time.monotonic())


def conversation(alice, app, app_acc, frame_log):
    """Opens the conversation of N_MESSAGES and scrolls to its top until
    every message is loaded (the app loads a page at the top)."""
    t0 = time.monotonic()
    open_conversation(alice.conn, "peer00000")
    shown = wait_for(lambda: [f for f in read_frames(frame_log) if f[0] >= t0 and f[2] > 0], 30)
    if not shown:
        print("gtk-roster: the conversation did not show up", flush=True)
        return
    t1 = shown[0][0]
    value = wait_for(lambda: scroll_value(app_acc, "Conversation with peer00000"), 10)
    end = time.monotonic() + 300
    while time.monotonic() < end and value is not None:
        frames = read_frames(frame_log)
        if frames and frames[-1][2] >= N_MESSAGES:
            break
        value.currentValue = 200.0
        time.sleep(0.02)
        value.currentValue = 0.0
        time.sleep(0.05)
    frames = read_frames(frame_log)
    full = [f for f in frames if f[0] >= t0 and f[2] >= N_MESSAGES]
    mem = rss(app.pid)
    print("gtk-roster: conversation of %d: first page painted after %.0f ms; %s after %.0f ms "
          "of scrolling to the top; %s; rss-mb=%.1f hwm-mb=%.1f" % (
              N_MESSAGES, (t1 - t0) * 1e3,
              "all loaded" if full else "NOT all loaded (%d)" % (frames[-1][2] if frames else 0),
              ((full[0][0] if full else time.monotonic()) - t1) * 1e3,
              longest_gap(frames, t0, full[0][0] if full else time.monotonic()),
              mem["VmRSS"], mem["VmHWM"]), flush=True)
    if full:
        wait_for(lambda: False, 0.5)
        print("gtk-roster: conversation scrolled %.0f px in 100 steps; while scrolling: %s" %
              scroll_through(value, frame_log), flush=True)


def main():
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    extra = ["peer%05d,127.0.0.1:%d" % (i, 20000 + i) for i in range(N_PEERS)]
    server = RefServer(extra=extra)
    alice = User("alice")
    app = None
    try:
        if N_MESSAGES:
            fill_history(alice, "peer00000", N_MESSAGES,
                         "message %d of the benchmark conversation")
        alice.login("alice", server.address)
        t = time.monotonic()
        n = len(alice.peers())
        print("gtk-roster: daemon roster has %d peers; ListPeers from Python took %.0f ms" % (
            n, (time.monotonic() - t) * 1e3), flush=True)

        os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
        import gi
        gi.require_version("Atspi", "2.0")
        import pyatspi

        frame_log = "/tmp/gtkt/bench-frames-%d.log" % os.getpid()
        env = dict(alice.env, DISPLAY=display, GDK_BACKEND="x11", GSK_RENDERER="cairo",
                   GSETTINGS_BACKEND="memory", P2PCHAT_GTK_FRAME_LOG=frame_log)
        t0 = time.monotonic()
        app = spawn([os.path.join(BUILD_ROOT, "frontends", "gtk", "p2pchat-gtk")], env=env,
                    stdout=subprocess.DEVNULL, stderr=open("/tmp/gtkt/bench-app.log", "w"))

        # Loaded: a frame showed every row; then 0.5 s more to catch late work.
        full = wait_for(lambda: [f for f in read_frames(frame_log) if f[1] >= n], 60)
        if not full:
            print("gtk-roster: the roster did not fill up", flush=True)
            sys.exit(1)
        wait_for(lambda: False, 0.5)
        mem = rss(app.pid)
        frames = read_frames(frame_log)
        t_first = next(f[0] for f in frames if f[1] > 0)
        t_full = full[0][0]
        print("gtk-roster: peers=%d first-frame-ms=%.0f all-rows-ms=%.0f rss-mb=%.1f "
              "hwm-mb=%.1f" % (N_PEERS, (t_first - t0) * 1e3, (t_full - t0) * 1e3,
                               mem["VmRSS"], mem["VmHWM"]), flush=True)
        print("gtk-roster: while loading (first frame to all rows + 0.5 s): %s" % longest_gap(
            frames, frames[0][0], t_full + 0.5), flush=True)

        first_name = "peer00000, online" if N_PEERS else "p2pchat"

        def first_row():
            desktop = pyatspi.Registry.getDesktop(0)
            for i in range(desktop.childCount):
                a = desktop.getChildAtIndex(i)
                if a is not None and a.get_process_id() == app.pid:
                    return pyatspi.findDescendant(a, lambda x: x.name == first_name)
            return None

        row = wait_for(first_row, 60)
        if row is None:
            print("gtk-roster: AT-SPI does not see the first row", flush=True)
            sys.exit(1)
        value = wait_for(lambda: scroll_value(row.getApplication(), "Peers"), 10)
        top, gaps = scroll_through(value, frame_log)
        last = wait_for(lambda: pyatspi.findDescendant(
            row.getApplication(), lambda x: x.name == "peer%05d, online" % (N_PEERS - 1)), 10)
        print("gtk-roster: scrolled %.0f px in 100 steps, last row %s; while scrolling: %s" % (
            top, "shown" if last else "NOT shown", gaps),
            flush=True)
        mem = rss(app.pid)
        print("gtk-roster: after scrolling rss-mb=%.1f hwm-mb=%.1f" % (
            mem["VmRSS"], mem["VmHWM"]), flush=True)
        if N_MESSAGES:
            conversation(alice, app, row.getApplication(), frame_log)
    finally:
        if app:
            stop(app)
        alice.close()
        server.close()
        stop(xvfb)


if __name__ == "__main__":
    main()
