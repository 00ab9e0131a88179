#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The message search of p2pchat-gtk, driven through AT-SPI.

alice's history holds messages with bob and with carol; only carol's
mention "pineapple".  Ctrl+Shift+F shows the search bar, the focus in its
field; "pineapple" lists carol's messages as "carol — TEXT" rows (from the
daemon's SearchHistory) and none of bob's.  Activating a row opens carol's
conversation, closes the search, and makes carol the daemon's
ActiveConversation.  A word found nowhere says "No messages found", and
Escape closes the search.  A screenshot of the results goes to
$P2PCHAT_BUILD_ROOT/gtk-search.png.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import Ui, app_complaints, fill_history, start_app, start_xvfb  # noqa: E402
from p2ptest import BUILD_ROOT, Coordinator, User, run, stop, wait_for  # noqa: E402

ESCAPE = 0xff1b
CONTROL_MASK = 1 << 2
SHIFT_MASK = 1 << 0


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def body(tap):
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    coord = Coordinator()
    alice = User("alice")
    fill_history(alice, "bob", 4, "bob says %d")
    fill_history(alice, "carol", 3, "carol likes pineapple %d", first_id=100)
    alice.login("alice", coord.address)

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def focused_names():
        return [a.name for a in ui.find_all(
            lambda a: a.getState().contains(pyatspi.STATE_FOCUSED))]

    def results(prefix):
        return ui.find_all(
            lambda a: a.getRole() == pyatspi.ROLE_LABEL and a.name.startswith(prefix))

    def entry(timeout):
        return ui.find(lambda a: a.name == "Search messages" and
                       a.getRole() != pyatspi.ROLE_PUSH_BUTTON and
                       "EditableText" in a.get_interfaces(), timeout)

    def search(text):
        ui.set_text(entry(5), text)

    def search_shown():
        """The header bar's search button is down while the search is shown."""
        button = ui.find(lambda a: a.name == "Search Messages" and a.getRole() in (
            pyatspi.ROLE_TOGGLE_BUTTON, pyatspi.ROLE_PUSH_BUTTON), 5)
        if button is None:
            return False
        state = button.getState()
        return state.contains(pyatspi.STATE_CHECKED) or state.contains(pyatspi.STATE_PRESSED)

    try:
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None and
               ui.find(lambda a: a.name.startswith("carol, "), 20) is not None,
               "the window shows up, with carol in the list")

        tap.ok(not search_shown(), "the search is hidden at first")
        ui.key(ord("f"), CONTROL_MASK | SHIFT_MASK)
        tap.ok(wait_for(lambda: "Search messages" in focused_names() and search_shown(), 10),
               "Ctrl+Shift+F shows the message search, the focus in its field",
               repr(focused_names()))

        search("pineapple")
        tap.ok(wait_for(lambda: len(results("carol — carol likes pineapple")) == 3, 10) and
               not results("bob — "),
               "searching lists carol's matching messages as rows, none of bob's",
               repr(ui.labels()))
        screenshot(display, os.path.join(BUILD_ROOT, "gtk-search.png"))
        tap.diag("screenshot: " + os.path.join(BUILD_ROOT, "gtk-search.png"))

        row = results("carol — carol likes pineapple 2")
        if row:
            ui.click(row[0])
        tap.ok(wait_for(lambda: ui.named(pyatspi.ROLE_LIST, "Conversation with carol", 1)
                        is not None and not search_shown(), 10),
               "activating a result opens carol's conversation and closes the search")
        # One "carol" in the list, one in the header bar.
        tap.ok(wait_for(lambda: len(ui.find_all(lambda a: a.getRole() == pyatspi.ROLE_LABEL
                                                and a.name == "carol")) == 2, 5),
               "the header bar's title is carol", repr(ui.labels()))
        tap.ok(wait_for(lambda: alice.prop("ActiveConversation") == "carol", 10),
               "carol is the daemon's ActiveConversation",
               repr(alice.prop("ActiveConversation")))

        ui.key(ord("f"), CONTROL_MASK | SHIFT_MASK)
        tap.ok(wait_for(search_shown, 10), "Ctrl+Shift+F in a conversation shows it again")
        search("zanzibar")
        tap.ok(ui.wait_label(lambda s: s == "No messages found", 10) is not None,
               "a word found nowhere says No messages found", repr(ui.labels()))
        ui.key(ESCAPE)
        tap.ok(wait_for(lambda: not search_shown(), 10),
               "Escape closes the search")

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
    finally:
        stop(app)
        stop(xvfb)


if __name__ == "__main__":
    run(body, 11)
