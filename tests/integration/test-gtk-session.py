#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk through one session's troubles (issue 14), under a private
Xvfb, driven through AT-SPI with real pointer events (XTest, through the
AT-SPI registry).

1. No daemon: alice's bus has no p2pchatd.  After a few seconds the window
   says so and how to start it, with a header bar and its Close button.
   Then her daemon starts and logs in: the chat shows.
2. Hover: alice opens bob's conversation with a click; carol's message to
   her stays unread.  The pointer goes over every roster row and rests on
   one while a peer goes offline (the roster is re-sorted under it); then
   Enter in the composer sends to bob, the peer on screen, and the daemon's
   ActiveConversation and carol's unread count have not moved.
3. Messages from other clients: a SendMessage from busctl (here: a plain
   D-Bus call on alice's bus) to bob shows in the open conversation, and
   the app's own sends show once.
4. Coordinator outage: the coordinator stops; the chat stays (the composer
   stays usable, a message still reaches bob peer-to-peer) and a
   "Reconnecting" notice shows; the coordinator back, the notice goes.

Screenshots of the no-daemon page and the chat window go to
$P2PCHAT_BUILD_ROOT/gtk-no-daemon.png and gtk-session.png.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import RETURN, Ui, app_complaints, start_app, start_xvfb  # noqa: E402
from p2ptest import (BUILD_ROOT, PATH, PEER, Coordinator, User, run, settle,  # noqa: E402
                     stop, wait_for)

NOTICE = "Reconnecting to the coordinator"


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def body(tap):
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    coord = Coordinator()
    peers = {name: User(name) for name in ("amy", "bob", "carol", "dave")}
    for name, user in peers.items():
        user.login(name, coord.address)
    bob, carol = peers["bob"], peers["carol"]
    alice = User("alice", start=False)

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def app_log():
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def names():
        return "\n".join(sorted({a.name for a in ui.find_all(lambda a: a.name)}))

    def unread(peer):
        return alice.prop("Unread", PATH + "/peer/" + peer, PEER)

    def composer():
        return ui.find(lambda a: a.getRole() == pyatspi.ROLE_TEXT and a.name == "Message" and
                       a.getState().contains(pyatspi.STATE_SENSITIVE), 10)

    def page_has_close(acc):
        """Whether the stack page holding @acc (the nearest ancestor with a
        Close button, short of the whole window) has a Close button."""
        def has(a, pred):
            return pyatspi.findDescendant(a, pred) is not None
        while acc is not None and acc.getRole() != pyatspi.ROLE_FRAME:
            if has(acc, lambda a: a.getRole() == pyatspi.ROLE_PUSH_BUTTON and
                   a.name == "Close"):
                return not has(acc, lambda a: a.name in ("Log In", "Peers"))
            acc = acc.parent
        return False

    def count_label(text):
        return len(ui.find_all(lambda a: a.getRole() == pyatspi.ROLE_LABEL and a.name == text))

    try:
        # --- 1. no daemon -----------------------------------------------
        tap.ok(ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30) is not None,
               "the window shows up", app_log())
        hint = ui.find(lambda a: a.name == "p2pchatd Is Not Running", 15)
        how = ui.find(lambda a: "systemctl --user start p2pchatd" in a.name, 5)
        tap.ok(hint is not None and how is not None,
               "without p2pchatd the window soon says so, and how to start it", names())
        tap.ok(hint is not None and page_has_close(hint),
               "the no-daemon page has a header bar with a Close button", names())
        wait_for(lambda: False, 1)  # the crossfade
        shot = os.path.join(BUILD_ROOT, "gtk-no-daemon.png")
        screenshot(display, shot)
        tap.diag("screenshot: " + shot)

        alice.start()
        alice.login("alice", coord.address)
        tap.ok(ui.wait_label(lambda s: s == "Online as alice", 20) is not None,
               "p2pchatd started, the app finds it and shows the chat", app_log())
        tap.ok(wait_for(lambda: not ui.find_all(lambda a: a.name == "p2pchatd Is Not Running"),
                        5),
               "the no-daemon hint goes", names())

        # --- 2. hovering over the roster --------------------------------
        roster = ui.named(pyatspi.ROLE_LIST, "Peers")
        wait_for(lambda: all(roster and ui.list_item(roster, "%s, online" % n)
                             for n in peers), 15)
        ui.click(ui.list_item(roster, "bob, online"))
        tap.ok(wait_for(lambda: alice.prop("ActiveConversation") == "bob", 10) and
               composer() is not None,
               "a click on bob's row opens his conversation",
               "ActiveConversation %r" % alice.prop("ActiveConversation"))

        carol.send("alice", "unread, please")
        tap.ok(wait_for(lambda: unread("carol") == 1, 10),
               "carol's message is unread", "Unread %r" % unread("carol"))

        for n in ("amy", "bob", "carol", "dave", "carol"):
            ui.hover(ui.list_item(roster, "%s, online" % n))
            settle(0.3)
        # amy goes offline: the roster is re-sorted under the resting
        # pointer (carol's row moves up, dave's comes under it).
        peers["amy"].call("Logout")
        wait_for(lambda: ui.list_item(roster, "amy, offline"), 15)
        settle(0.5)
        text = "hovering changes nothing"
        ui.type_text(text)
        ui.key(RETURN)
        got = bob.wait_signal("MessageReceived", lambda a: a[1] == "alice" and a[2] == text, 15)
        tap.ok(got and not any(a[2] == text for a in carol.signals("MessageReceived")) and
               not any(a[2] == text for a in peers["dave"].signals("MessageReceived")),
               "after hovering and a re-sort, Enter sends to bob, the peer on screen",
               "bob got %r" % bob.signals("MessageReceived"))
        tap.ok(alice.prop("ActiveConversation") == "bob" and unread("carol") == 1,
               "hovering neither switched the conversation nor marked carol's read",
               "ActiveConversation %r, carol's Unread %r" %
               (alice.prop("ActiveConversation"), unread("carol")))

        # --- 3. messages sent by other clients --------------------------
        other = "sent with busctl, not the app"
        alice.call("SendMessage", "ss", ("bob", other))
        tap.ok(ui.wait_label(lambda s: s == other, 10) is not None,
               "a message another client sends shows in the open conversation",
               "\n".join(ui.labels()))
        settle(1)
        tap.ok(count_label(text) == 1 and count_label(other) == 1,
               "each message shows once, the app's own included",
               "%d × %r, %d × %r" % (count_label(text), text, count_label(other), other))

        # --- 4. coordinator outage ---------------------------------------
        coord.stop()
        tap.ok(wait_for(lambda: alice.prop("State") == "connecting", 30),
               "alice's daemon lost the coordinator", alice.prop("State"))
        tap.ok(ui.find(lambda a: a.name.startswith(NOTICE), 10) is not None,
               "a Reconnecting notice shows", names())
        during = "peer to peer, coordinator or not"
        c = composer()
        tap.ok(c is not None, "the chat stays: its composer is usable", names())
        ui.type_text(during)
        ui.key(RETURN)
        tap.ok(bob.wait_signal("MessageReceived", lambda a: a[2] == during, 15),
               "a message sent during the outage reaches bob",
               "bob got %r" % bob.signals("MessageReceived"))
        wait_for(lambda: False, 1)
        shot = os.path.join(BUILD_ROOT, "gtk-session.png")
        screenshot(display, shot)
        tap.diag("screenshot: " + shot)

        coord.start()
        tap.ok(wait_for(lambda: alice.prop("State") == "online", 60) and
               ui.wait_label(lambda s: s == "Online as alice", 10) and
               wait_for(lambda: not ui.find_all(lambda a: a.name.startswith(NOTICE)), 10),
               "the coordinator back, the notice goes", names())

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
        tap.ok(stop(app) == 0, "SIGTERM ends the app cleanly")
    finally:
        stop(app)
        stop(xvfb)


if __name__ == "__main__":
    run(body)
