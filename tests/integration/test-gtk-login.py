#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk's login page, driven through AT-SPI.

alice's p2pchatd is logged out.  The Coordinator field says what it is for.
Logging in to a coordinator that never answers (a silent port) shows
"Connecting…" and the spinner without moving the form or the button, which
turns into Cancel; Cancel logs out long before the daemon's own 10 s
timeout.  A coordinator that refuses the connection is reported inline
with the focus on the Coordinator field, the one at fault.  A screenshot
while connecting goes to $P2PCHAT_BUILD_ROOT/gtk-login-connecting.png.  TAP.
"""

import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import Ui, app_complaints, start_app, start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, SilentPort, User, run, stop, wait_for  # noqa: E402

HINT = "The server that tells who is online, HOST[:PORT]"


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def closed_port():
    """A loopback TCP port nobody listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "127.0.0.1:%d" % port


def body(tap):
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    silent = SilentPort()
    alice = User("alice")

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def extents(acc):
        return acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS)

    def alerts():
        return [a.name for a in ui.find_all(lambda a: a.getRole() == pyatspi.ROLE_ALERT)]

    try:
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None,
               "the window shows up on AT-SPI")
        name = ui.named(pyatspi.ROLE_TEXT, "Name")
        coordinator = ui.named(pyatspi.ROLE_TEXT, "Coordinator")
        login = ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In")
        hint = ui.wait_label(lambda s: s == HINT, 5)
        tap.ok(hint is not None and extents(hint).height > 0,
               "the Coordinator field is explained", repr(ui.labels()))

        name_y = extents(name).y
        button = extents(login)
        button_x = button.x + button.width // 2
        ui.set_text(name, "alice")
        ui.set_text(coordinator, silent.address)
        ui.press(login)
        connecting = wait_for(lambda: alice.prop("State") == "connecting", 10) and \
            ui.wait_label(lambda s: s == "Connecting…", 5)
        cancel = ui.named(pyatspi.ROLE_PUSH_BUTTON, "Cancel", 5)
        shot = os.path.join(BUILD_ROOT, "gtk-login-connecting.png")
        screenshot(display, shot)
        tap.diag("screenshot: " + shot)
        tap.ok(connecting and extents(name).y == name_y,
               "\"Connecting…\" does not move the form",
               "name field at %d, was %d" % (extents(name).y, name_y))
        moved = cancel and extents(cancel)
        tap.ok(cancel is not None and
               abs(moved.x + moved.width // 2 - button_x) <= 1 and moved.y == button.y,
               "while connecting the button, now Cancel, stays where it was",
               "%r / %r" % ((moved.x, moved.y, moved.width) if moved else None,
                            (button.x, button.y, button.width)))

        if cancel is not None:
            ui.press(cancel)
        tap.ok(wait_for(lambda: alice.prop("State") == "offline", 5) and
               ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In", 5) is not None,
               "Cancel logs out of the attempt at once", alice.prop("State"))

        refused = closed_port()
        ui.set_text(coordinator, refused)
        ui.press(ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In"))
        tap.ok(ui.find(lambda a: a.getRole() == pyatspi.ROLE_ALERT and
                       a.name == "Cannot reach the coordinator '%s'." % refused, 30),
               "an unreachable coordinator is reported inline", repr(alerts()))
        tap.ok(wait_for(lambda: coordinator.getState().contains(pyatspi.STATE_FOCUSED), 5),
               "the focus goes to the Coordinator field, the one at fault",
               "name focused: %r" % name.getState().contains(pyatspi.STATE_FOCUSED))

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
    finally:
        stop(app)
        stop(xvfb)
        silent.close()


if __name__ == "__main__":
    run(body, 8)
