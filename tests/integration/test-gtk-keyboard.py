#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk by keyboard, and its primary menu, driven through AT-SPI.

On a screen 480 pixels wide the window is narrow: the leaflet shows the
list or the conversation.  alice is online with bob.  Back from bob's
conversation (Alt+Left) the focus is on the list, not on Log Out, so
Return opens a conversation again rather than logging out.  Ctrl+K in a
conversation puts the focus in the search field.  Log Out asks first (Cancel keeps alice
online).  The primary menu opens the Keyboard Shortcuts window, About and
Preferences, whose Notifications switch shows and changes the daemon's
config.  A screenshot of the narrow list goes to
$P2PCHAT_BUILD_ROOT/gtk-narrow.png.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import RETURN, Ui, app_complaints, open_conversation, start_app, start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, Coordinator, User, run, stop, wait_for  # noqa: E402

LEFT = 0xff51
ESCAPE = 0xff1b
CONTROL_MASK = 1 << 2
ALT_MASK = 1 << 3


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def body(tap):
    xvfb, display = start_xvfb("480x720x24")
    os.environ["DISPLAY"] = display
    coord = Coordinator()
    bob = User("bob")
    bob.login("bob", coord.address)
    alice = User("alice")
    alice.login("alice", coord.address)

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def focused():
        return ui.find_all(lambda a: a.getState().contains(pyatspi.STATE_FOCUSED))

    def focused_names():
        return [(a.getRoleName(), a.name) for a in focused()]

    def button(name, timeout=5):
        return ui.named(pyatspi.ROLE_PUSH_BUTTON, name, timeout)

    def menu_item(label):
        ui.click(ui.find(lambda a: a.name == "Main Menu"))
        item = ui.find(lambda a: a.getRole() == pyatspi.ROLE_MENU_ITEM and a.name == label, 5)
        if item is not None:
            ui.press(item)
        return item

    try:
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None and
               ui.find(lambda a: a.name == "bob, online", 20) is not None,
               "the window shows up, with bob in the list")
        screenshot(display, os.path.join(BUILD_ROOT, "gtk-narrow.png"))
        tap.diag("screenshot: " + os.path.join(BUILD_ROOT, "gtk-narrow.png"))

        # A click on bob's row opens his conversation, the composer focused.
        ui.click(ui.find(lambda a: a.name == "bob, online", 5))
        composer = ui.named(pyatspi.ROLE_TEXT, "Message", 10)
        wait_for(lambda: composer.getState().contains(pyatspi.STATE_FOCUSED), 10)
        ui.key(LEFT, ALT_MASK)
        tap.ok(wait_for(lambda: focused() and not any(n == "Log Out" for _, n in focused_names())
                        and not composer.getState().contains(pyatspi.STATE_FOCUSED), 10),
               "back to the list (Alt+Left), the focus is not on Log Out", repr(focused_names()))
        tap.diag("focused after Alt+Left: %r" % focused_names())
        ui.key(RETURN)
        wait_for(lambda: False, 1.0)
        tap.ok(alice.prop("State") == "online", "Return there does not log out",
               alice.prop("State"))

        open_conversation(alice.conn, "bob")
        wait_for(lambda: composer.getState().contains(pyatspi.STATE_FOCUSED), 10)
        ui.key(ord("k"), CONTROL_MASK)
        tap.ok(wait_for(lambda: any(n == "Search peers" for _, n in focused_names()), 10),
               "Ctrl+K in a conversation puts the focus in the search field",
               repr(focused_names()))
        ui.key(ESCAPE)

        tap.ok(menu_item("Keyboard Shortcuts") is not None and
               ui.find(lambda a: a.getRole() == pyatspi.ROLE_LABEL and
                       a.name == "Find a Conversation", 10) is not None,
               "the primary menu opens the Keyboard Shortcuts window")
        ui.key(ESCAPE)

        tap.ok(menu_item("About p2pchat") is not None and
               ui.wait_label(lambda s: s == "0.1.0", 10) is not None,
               "the primary menu opens About", repr(ui.labels()))
        ui.key(ESCAPE)

        menu_item("Preferences")
        switch = ui.find(lambda a: a.name.startswith("Notifications") and a.getRole() in (
            pyatspi.ROLE_TOGGLE_BUTTON, pyatspi.ROLE_CHECK_BOX) and
            a.getState().contains(pyatspi.STATE_SENSITIVE), 10)
        tap.ok(switch is not None and (switch.getState().contains(pyatspi.STATE_CHECKED) or
                                       switch.getState().contains(pyatspi.STATE_PRESSED)),
               "Preferences shows the daemon's notifications setting",
               repr([(a.getRoleName(), a.name) for a in ui.find_all(
                   lambda a: "otif" in a.name)]))
        if switch is not None:
            ui.press(switch)
        tap.ok(wait_for(lambda: alice.call("GetConfig", "s", ("notifications",))[0] == "false",
                        10),
               "turning the switch off changes the daemon's config")
        ui.key(ESCAPE)

        ui.press(button("Log Out"))
        tap.ok(ui.wait_label(lambda s: s == "Log Out?", 10) is not None,
               "Log Out asks first")
        ui.key(RETURN)
        wait_for(lambda: False, 1.0)
        tap.ok(alice.prop("State") == "online", "Return in the dialog does not log out")
        # GTK 4.8 names a dialog button "_Cancel Cancel" (mnemonic, label).
        cancel = ui.find(lambda a: a.getRole() == pyatspi.ROLE_PUSH_BUTTON and
                         a.name.endswith("Cancel") and a.name != "Cancel", 5)
        if cancel is not None:
            ui.press(cancel)
        tap.ok(wait_for(lambda: ui.wait_label(lambda s: s == "Log Out?", 0.2) is None, 5),
               "Cancel closes the dialog")
        wait_for(lambda: False, 1.0)
        tap.ok(alice.prop("State") == "online", "Cancel keeps alice online")

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
    finally:
        stop(app)
        stop(xvfb)


if __name__ == "__main__":
    run(body, 13)
