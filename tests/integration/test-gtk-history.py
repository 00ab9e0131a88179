#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat-gtk paging through a long history, driven through AT-SPI.

alice's history holds 350 messages with bob (written while her daemon is
stopped); her real p2pchatd logs in to a Python stand-in of the reference
server, and p2pchat-gtk runs on her bus under a private Xvfb.  Opening the
conversation shows the newest message scrolled into view.  Scrolling to
the top loads the page before, which the app puts above a few rows per
frame: the message that was on screen must stay on screen (the view must
not jump), and scrolling on to the top reaches the oldest message, with the
messages in order.  TAP.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import (Ui, app_complaints, fill_history, open_conversation,  # noqa: E402
                     scroll_value, start_app, start_xvfb)
from p2ptest import Tap, User, stop, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402

N_MESSAGES = 350
LIST = "Conversation with bob"


def main():
    tap = Tap(7)
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    server = RefServer()
    alice = User("alice")
    app = None
    try:
        fill_history(alice, "bob", N_MESSAGES, "history %d")
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

        def label(text, timeout=10):
            return ui.wait_label(lambda s: s == text, timeout)

        def top_of(acc):
            return acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS).y

        def on_screen(acc):
            """Whether @acc lies inside the conversation's viewport."""
            lst = ui.named(pyatspi.ROLE_LIST, LIST, 5)
            if acc is None or lst is None:
                return False
            view = lst.queryComponent().getExtents(pyatspi.WINDOW_COORDS)
            box = acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS)
            return box.height > 0 and box.y >= view.y and \
                box.y + box.height <= view.y + view.height

        def where(acc):
            lst = ui.named(pyatspi.ROLE_LIST, LIST, 5)
            e = [x.queryComponent().getExtents(pyatspi.WINDOW_COORDS) for x in (lst, acc)
                 if x is not None]
            return "; ".join("%d,%d %dx%d" % (b.x, b.y, b.width, b.height) for b in e)

        open_conversation(alice.conn, "bob")
        newest = label("history %d" % (N_MESSAGES - 1), 30)
        tap.ok(newest is not None and wait_for(lambda: on_screen(newest), 10),
               "opening the conversation shows the newest message",
               where(newest))

        # At the top of the first page: its oldest message is on screen,
        # the page before is asked for and put above it.
        value = scroll_value(ui.app(), LIST)
        value.currentValue = 0.0
        first = label("history %d" % (N_MESSAGES - 100))
        tap.ok(first is not None and wait_for(lambda: on_screen(first), 10),
               "at the top, the oldest message of the first page is on screen")
        older = label("history %d" % (N_MESSAGES - 101), 20)
        tap.ok(older is not None and wait_for(lambda: value.currentValue > 0, 10),
               "the page before is loaded above it", "value %r" % value.currentValue)
        wait_for(lambda: False, 1.0)  # every row of that page revealed
        tap.ok(on_screen(label("history %d" % (N_MESSAGES - 100))),
               "the message that was on screen stays there: the view did not jump",
               "value %r" % value.currentValue)

        # On to the top: every page, the oldest message first.
        def oldest_on_screen():
            value.currentValue = 0.0
            return on_screen(label("history 0", 0.3)) and on_screen(label("history 1", 0.3))
        tap.ok(wait_for(oldest_on_screen, 60) and
               top_of(label("history 0")) < top_of(label("history 1")),
               "scrolling to the top reaches the oldest message, in order",
               "%s / %s" % (where(label("history 0", 1)), where(label("history 1", 1))))

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
