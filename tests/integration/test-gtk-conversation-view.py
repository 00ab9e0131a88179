#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk's conversation view, driven through AT-SPI.

alice's history holds three messages with bob; carol has none (neither is
online: alice's p2pchatd logs in alone to a Python stand-in of the
reference server).  Opening bob's conversation puts the focus in the
composer, never on a message (a focused selectable label selects its
text); the few messages sit at the bottom, just above the composer, as in
any chat, not at the top; the composer says whom it writes to ("Message
bob").  carol's conversation, empty, says "No messages yet", which goes
once a message is there.  Every row of the list has an avatar of its own
(an AdwAvatar with the peer's initials).  Screenshots of both conversations go
to $P2PCHAT_BUILD_ROOT/gtk-conversation-{bob,carol}.png.  TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import (SHIFT_MASK, TAB, Ui, app_complaints, fill_history,  # noqa: E402
                     open_conversation, start_app, start_xvfb)
from p2ptest import BUILD_ROOT, Tap, User, stop, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main():
    tap = Tap(10)
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    server = RefServer()
    alice = User("alice")
    app = None
    try:
        fill_history(alice, "bob", 3, "bob line %d")
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

        def extents(acc):
            return acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS)

        def shown(acc):
            if acc is None:
                return False
            e = extents(acc)
            return e.width > 0 and e.height > 0

        def selected_labels():
            out = []
            for a in ui.find_all(lambda a: a.getRole() == pyatspi.ROLE_LABEL):
                try:
                    if a.queryText().getNSelections() > 0:
                        out.append(a.name)
                except NotImplementedError:
                    pass
            return out

        open_conversation(alice.conn, "bob")
        newest = ui.wait_label(lambda s: s == "bob line 2", 30)
        composer = ui.named(pyatspi.ROLE_TEXT, "Message", 5)
        tap.ok(composer is not None and
               wait_for(lambda: composer.getState().contains(pyatspi.STATE_FOCUSED), 10),
               "opening a conversation puts the focus in the composer")
        wait_for(lambda: False, 0.5)
        # Moving the focus back from the composer lands on the messages,
        # never in a message's text (which would show it all selected).
        ui.key(TAB, SHIFT_MASK)
        wait_for(lambda: False, 0.5)
        tap.ok(not selected_labels(), "no message text shows as selected",
               repr(selected_labels()))

        def packed():
            lst = ui.named(pyatspi.ROLE_LIST, "Conversation with bob", 1)
            if lst is None or newest is None:
                return False
            view, box = extents(lst.parent), extents(newest)
            return box.height > 0 and view.y + view.height - (box.y + box.height) < 60
        tap.ok(newest is not None and wait_for(packed, 10),
               "a few messages sit at the bottom of the view, above the composer",
               "%r" % [(e.y, e.height) for e in (extents(newest),)] if newest else "")
        tap.ok(shown(ui.wait_label(lambda s: s == "Message bob", 5)),
               "the composer shows the placeholder \"Message bob\"")
        tap.ok(not shown(ui.wait_label(lambda s: s == "No messages yet", 1)),
               "a conversation with messages shows no empty state")
        screenshot(display, os.path.join(BUILD_ROOT, "gtk-conversation-bob.png"))
        tap.diag("screenshot: " + os.path.join(BUILD_ROOT, "gtk-conversation-bob.png"))

        open_conversation(alice.conn, "carol")
        tap.ok(wait_for(lambda: shown(ui.wait_label(lambda s: s == "No messages yet", 1)), 15),
               "an empty conversation says \"No messages yet\"")
        screenshot(display, os.path.join(BUILD_ROOT, "gtk-conversation-carol.png"))
        tap.diag("screenshot: " + os.path.join(BUILD_ROOT, "gtk-conversation-carol.png"))
        alice.send("carol", "hello carol")
        tap.ok(ui.wait_label(lambda s: s == "hello carol", 15) is not None and
               wait_for(lambda: not shown(ui.wait_label(lambda s: s == "No messages yet", 1)),
                        10),
               "the empty state goes once there is a message")

        def avatars():
            peers = ui.named(pyatspi.ROLE_LIST, "Peers", 1)
            out = []
            for name in ("bob", "carol"):
                item = peers and ui.list_item(peers, name)
                # libadwaita 1.2 names no role for AdwAvatar: AT-SPI
                # shows its type name and the initials' label.
                avatar = item and pyatspi.findDescendant(item, lambda a: a.name == "AdwAvatar")
                if avatar and pyatspi.findDescendant(
                        avatar, lambda a: a.getRole() == pyatspi.ROLE_LABEL and
                        a.name == name[0].upper()):
                    out.append(name)
            return out
        def dump():
            peers = ui.named(pyatspi.ROLE_LIST, "Peers", 1)
            item = peers and ui.list_item(peers, "bob")
            out = []

            def walk(a, d):
                out.append("%s%s %r" % ("  " * d, a.getRoleName(), a.name))
                for i in range(a.childCount):
                    walk(a.getChildAtIndex(i), d + 1)
            if item:
                walk(item, 0)
            return "\n".join(out)
        tap.ok(wait_for(lambda: avatars() == ["bob", "carol"], 10),
               "every row has an avatar of its own", dump())

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings", "\n".join(complaints))
    finally:
        if app:
            stop(app)
        alice.close()
        server.close()
        stop(xvfb)
    tap.finish()


if __name__ == "__main__":
    main()
