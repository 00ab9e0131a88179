#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk lists conversations, not only presence, driven through AT-SPI.

alice's history holds messages with bob (the last one from bob) and with
carol (more recent, the last one hers); neither is online: alice's real
p2pchatd logs in to a Python stand-in of the reference server, alone.  The
list shows both (offline peers with history are conversations too), the
most recent first, each row previewing its last message and saying the
peer is offline.  A message alice's daemon queues for bob (a SendMessage
from another client, seen as MessageQueued) moves bob's row to the top with
the new preview.  A screenshot of the list goes to
$P2PCHAT_BUILD_ROOT/gtk-conversations.png.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import Ui, app_complaints, fill_history, start_app, start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, Tap, User, stop, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main():
    tap = Tap(6)
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    server = RefServer()
    alice = User("alice")
    app = None
    try:
        # bob: "bob says 0" out, "bob says 1" in (the last, base + 1 s);
        # carol: up to "carol 4", out, at base + 4 s: the most recent.
        fill_history(alice, "bob", 2, "bob says %d")
        fill_history(alice, "carol", 5, "carol %d", first_id=100)
        alice.login("alice", server.address)

        os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
        import gi
        gi.require_version("Atspi", "2.0")
        import pyatspi

        log_path = os.path.join(alice.home, "p2pchat-gtk.log")
        app = start_app(alice.env, display, log_path)
        ui = Ui(pyatspi, app.pid)
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None,
               "the window shows up on AT-SPI")

        def rows():
            """The names of the list's rows, top to bottom."""
            peers = ui.named(pyatspi.ROLE_LIST, "Peers", 1)
            out = []
            for i in range(peers.childCount if peers else 0):
                item = peers.getChildAtIndex(i)
                named = pyatspi.findDescendant(item, lambda a: a.getRole() == pyatspi.ROLE_PANEL
                                               and ", " in a.name)
                out.append(named.name if named else "")
            return out

        def row_has(peer, text):
            peers = ui.named(pyatspi.ROLE_LIST, "Peers", 1)
            item = peers and ui.list_item(peers, peer)
            return bool(item and pyatspi.findDescendant(item, lambda a: a.name == text))

        tap.ok(wait_for(lambda: rows()[:2] == ["carol, offline", "bob, offline"], 20),
               "offline peers with history are listed, the most recent first",
               repr(rows()))
        tap.ok(wait_for(lambda: row_has("carol", "You: carol 4") and
                        row_has("bob", "bob says 1"), 10),
               "each row previews the last message (\"You: \" when ours)",
               repr(ui.labels()))

        alice.send("bob", "are you there?")
        tap.ok(wait_for(lambda: rows()[:2] == ["bob, offline", "carol, offline"] and
                        row_has("bob", "You: are you there?"), 20),
               "a message queued for bob moves his conversation to the top",
               repr(rows()))

        shot = os.environ.get("P2PCHAT_SCREENSHOT_CONVERSATIONS",
                              os.path.join(BUILD_ROOT, "gtk-conversations.png"))
        screenshot(display, shot)
        tap.diag("screenshot: " + shot)

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
        tap.ok(app.poll() is None, "the app is still running")
    finally:
        if app:
            stop(app)
        alice.close()
        server.close()
        stop(xvfb)
    tap.finish()


if __name__ == "__main__":
    main()
