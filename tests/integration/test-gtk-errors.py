#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk against the real p2pchatd: the outcomes that are not plain
success.

alice's daemon (on 127.0.0.2, so that another IP holds the name "bob") logs
in to the real coordinator, where bob (a p2pchatd), ref (the seed's
reference client, emulated) and gone (a p2pchatd that logs in and out again)
are.  The test drives the window through AT-SPI under a private Xvfb and
checks what the user sees: inline login errors (NameTaken,
CoordinatorUnreachable), bubbles that end "sent", "queued", "failed:
expired" (outbox-expiry set to its minimum) and "failed: too-large" (a text
that cannot fit a datagram), and presence that follows PeerJoined.  TAP.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import (RETURN, TAB, Ui, app_complaints, open_conversation, start_app,  # noqa: E402
                     start_xvfb)
from p2ptest import Coordinator, SilentPort, User, run, stop, wait_for  # noqa: E402
from refclient import RefClient  # noqa: E402

# Within WIRE_TEXT_MAX bytes, but JSON writes each control character as
# \u00XX: the native message would not fit a datagram.
TOO_LARGE = "\x01" * 16384


def body(tap):
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    coord = Coordinator()
    silent = SilentPort()
    bob, gone = User("bob"), User("gone")
    bob.login("bob", coord.address)
    ref = RefClient("ref", coord.address)
    if not ref.join():
        raise RuntimeError("the reference client could not log in")
    alice = User("alice", bind="127.0.0.2:0")
    conn = alice.conn

    # pyatspi finds the accessibility bus through the session bus: alice's.
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def alert(text, timeout=10):
        return ui.find(lambda a: a.getRole() == pyatspi.ROLE_ALERT and a.name == text, timeout)

    def alerts():
        return "\n".join(a.name for a in ui.find_all(lambda a: a.getRole() ==
                                                     pyatspi.ROLE_ALERT))

    def login(name, coordinator):
        ui.set_text(ui.named(pyatspi.ROLE_TEXT, "Name"), name)
        ui.set_text(ui.named(pyatspi.ROLE_TEXT, "Coordinator"), coordinator)
        ui.press(ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In"))

    def open_with(peer):
        open_conversation(conn, peer)
        return ui.named(pyatspi.ROLE_LIST, "Conversation with " + peer, 10)

    def send_to(peer, text):
        open_with(peer)
        ui.type_text(text)
        ui.key(RETURN)

    try:
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None,
               "the window shows up on AT-SPI")

        # Keyboard only: the name field has the focus, Tab leads on, Enter
        # logs in.
        ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In")
        ui.type_text("bob")
        ui.key(TAB)
        ui.type_text(coord.address)
        ui.key(RETURN)
        tap.ok(alert("The name 'bob' is already taken.", 15),
               "logging in by keyboard alone; NameTaken is shown inline", alerts())

        # The daemon gives up after its 10 s login timeout.
        login("alice", silent.address)
        tap.ok(alert("Cannot reach the coordinator '%s'." % silent.address, 30),
               "CoordinatorUnreachable is shown inline", alerts())

        login("alice", coord.address)
        tap.ok(ui.wait_label(lambda s: s == "Online as alice", 15), "logs in")

        gone.login("gone", coord.address)
        wait_for(lambda: "gone" in alice.online_peers(), 10)
        gone.call("Logout")
        tap.ok(ui.find(lambda a: a.name == "gone, offline", 10) and
               ui.find(lambda a: a.name == "ref, online", 5),
               "the roster shows who is online and who is not", "\n".join(ui.labels()))

        send_to("ref", "to a reference peer")
        tap.ok(ui.wait_label(lambda s: s.endswith(" · sent"), 10),
               "a message to a reference peer ends 'sent'", "\n".join(ui.labels()))

        send_to("gone", "to an offline peer")
        tap.ok(ui.wait_label(lambda s: s.endswith(" · queued"), 10),
               "a message to an offline peer is queued", "\n".join(ui.labels()))

        alice.call("SetConfig", "ss", ("outbox-expiry", "1s"))
        tap.ok(ui.wait_label(lambda s: s.endswith(" · failed: expired"), 10),
               "a message that expires in the outbox says so", "\n".join(ui.labels()))
        alice.call("SetConfig", "ss", ("outbox-expiry", "7d"))

        # Typing 16384 characters would take minutes: set the text at once.
        open_with("bob")
        t0 = time.monotonic()
        ui.set_text(ui.named(pyatspi.ROLE_TEXT, "Message"), TOO_LARGE)
        ui.key(RETURN)
        # A bubble of 16384 control characters takes the app 15-20 s to show.
        ok = ui.wait_label(lambda s: s.endswith(" · failed: too-large"), 60)
        tap.diag("the too-large bubble took %.1f s" % (time.monotonic() - t0))
        tap.ok(ok, "a text that cannot fit a datagram fails 'too-large'",
               "\n".join(ui.labels()))

        gone.login("gone", coord.address)
        tap.ok(ui.find(lambda a: a.name == "gone, online", 10),
               "PeerJoined turns the roster row online")

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
        tap.ok(stop(app) == 0, "SIGTERM ends the app cleanly")
    finally:
        stop(app)
        stop(xvfb)
        ref.close()
        silent.close()


if __name__ == "__main__":
    run(body, 12)
