#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk against tests/helpers/fake_daemon.py: the outcomes a real
network makes hard to reach on loopback.

The fake daemon answers with the named errors of the contract (NameTaken,
CoordinatorUnreachable) and reports MessageSent for a reference peer and
MessageFailed for an offline one.  The test drives the window through
AT-SPI under a private Xvfb and checks what the user sees: inline login
errors, bubbles that end "sent" and "failed: <reason>", and presence that
follows PeerJoined.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gi.repository import Gio, GLib  # noqa: E402
from gtktest import (RETURN, TAB, Ui, app_complaints, open_conversation, start_app,  # noqa: E402
                     start_xvfb)
from p2ptest import SOURCE_ROOT, Bus, Tap, spawn, stop, tempdir  # noqa: E402


def main():
    tap = Tap(10)
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    home = tempdir("p2ptest-gtk-errors-")
    bus = Bus(home)
    env = dict(os.environ, HOME=home, DBUS_SESSION_BUS_ADDRESS=bus.address)
    fake = spawn(["/usr/bin/python3", os.path.join(SOURCE_ROOT, "tests", "helpers",
                                                   "fake_daemon.py"),
                  "--peer", "bob:127.0.0.1:40001:1:1",
                  "--peer", "ref:127.0.0.1:40002:1:0",
                  "--peer", "gone:127.0.0.1:40003:0:1"],
                 env=env, stdout=subprocess.PIPE, text=True)
    if fake.stdout.readline().strip() != "READY":
        raise RuntimeError("fake_daemon.py did not start")
    conn = Gio.DBusConnection.new_for_address_sync(
        bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(home, "p2pchat-gtk.log")
    app = start_app(env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def alert(text, timeout=10):
        return ui.find(lambda a: a.getRole() == pyatspi.ROLE_ALERT and a.name == text, timeout)

    def login(name, coordinator):
        ui.set_text(ui.named(pyatspi.ROLE_TEXT, "Name"), name)
        ui.set_text(ui.named(pyatspi.ROLE_TEXT, "Coordinator"), coordinator)
        ui.press(ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In"))

    def send_to(peer, text):
        open_conversation(conn, peer)
        ui.named(pyatspi.ROLE_LIST, "Conversation with " + peer, 10)
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
        ui.type_text("127.0.0.1:7474")
        ui.key(RETURN)
        tap.ok(alert("The name 'bob' is already taken."),
               "logging in by keyboard alone; NameTaken is shown inline", "\n".join(a.name for a in ui.find_all(
                   lambda a: a.getRole() == pyatspi.ROLE_ALERT)))

        login("alice", "127.0.0.1:1")
        tap.ok(alert("Cannot reach the coordinator '127.0.0.1:1'."),
               "CoordinatorUnreachable is shown inline")

        login("alice", "127.0.0.1:7474")
        tap.ok(ui.wait_label(lambda s: s == "Online as alice", 10), "logs in")

        tap.ok(ui.find(lambda a: a.name == "gone, offline", 10) and
               ui.find(lambda a: a.name == "ref, online", 5),
               "the roster shows who is online and who is not")

        send_to("ref", "to a reference peer")
        tap.ok(ui.wait_label(lambda s: s.endswith(" · sent"), 10),
               "a message to a reference peer ends 'sent'", "\n".join(ui.labels()))

        send_to("gone", "to an offline peer")
        tap.ok(ui.wait_label(lambda s: s.endswith(" · failed: peer is offline"), 10),
               "a failed message says why", "\n".join(ui.labels()))

        conn.call_sync("org.p2pchat.chat1", "/org/p2pchat/test", "org.p2pchat.test.Control",
                       "SetOnline", GLib.Variant("(sb)", ("gone", True)), None,
                       Gio.DBusCallFlags.NONE, 5000, None)
        tap.ok(ui.find(lambda a: a.name == "gone, online", 10),
               "PeerJoined turns the roster row online")

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
        tap.ok(stop(app) == 0, "SIGTERM ends the app cleanly")
    finally:
        stop(app)
        stop(fake)
        bus.stop()
        stop(xvfb)
    tap.finish()


if __name__ == "__main__":
    main()
