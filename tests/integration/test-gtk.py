#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""End-to-end test of p2pchat-gtk, driven through AT-SPI like a screen reader.

A real coordinator and two real p2pchatd (alice, bob), each user on a private
session bus; alice's p2pchat-gtk runs on her bus under a private Xvfb with
GSK_RENDERER=cairo, and its accessibility bus is activated from her bus.
The test logs in through the login page, picks bob, types in the composer
(Enter sends, Shift+Enter is a new line), checks that bob's daemon receives
the messages and that alice's bubble reaches "delivered", lets bob reply
(CJK text) and finds the reply in alice's window, sees carol's message
counted unread on her roster row, writes a screenshot of the window, then
restarts alice's daemon and checks that the app logs in again by itself and
shows the roster.  Opening carol's conversation tells the daemon it is on
screen (ActiveConversation) and reads it; a message to carol while she is
logged out shows "queued", then "delivered" once she is back.  Finally a
new app instance prefills the login page from the daemon's config and shows
the history with bob.  Everything started is killed by pid.

The screenshot goes to $P2PCHAT_SCREENSHOT, by default
$P2PCHAT_BUILD_ROOT/gtk-screenshot.png (docs/screenshot.png is one such).
"""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gi.repository import Gio, GLib  # noqa: E402
from gtktest import (APP_ID, RETURN, SHIFT_MASK, Ui, app_complaints,  # noqa: E402
                     open_conversation, start_app, start_xvfb)
from p2ptest import (BUILD_ROOT, PATH, PEER, Coordinator, Tap, User,  # noqa: E402
                     stop, tempdir, wait_for)

def scroll_values(ui, list_name):
    """(value, upper, page) of the vertical scroll bar beside a list; GTK
    reports the adjustment's upper as maximum, the page is the list's height."""
    lst = ui.named(ui.pyatspi.ROLE_LIST, list_name, 5)
    if lst is None:
        return None
    page = lst.queryComponent().getExtents(ui.pyatspi.WINDOW_COORDS).height
    pane = lst.parent
    for i in range(pane.childCount):
        bar = pane.getChildAtIndex(i)
        if bar.getRole() != ui.pyatspi.ROLE_SCROLL_BAR or \
                not bar.getState().contains(ui.pyatspi.STATE_VERTICAL):
            continue
        for j in range(bar.childCount):
            part = bar.getChildAtIndex(j)
            if "Value" in part.get_interfaces():
                value = part.queryValue()
                return value.currentValue, value.maximumValue, page
    return None


def scrolled_to_end(ui, list_name):
    v = scroll_values(ui, list_name)
    return v is not None and v[1] > v[2] and v[0] + v[2] >= v[1] - 2


def text_of(acc):
    """The text of an entry (GTK 4.8 does not take -1 for the end)."""
    text = acc.queryText()
    return text.getText(0, text.characterCount)


def received(user, peer, text):
    return [a for a in user.signals("MessageReceived") if a[1] == peer and a[2] == text]


def screenshot(display, path):
    """Writes the screen, trimmed to the window (the root is plain black and
    there is no window manager), as a PNG with ImageMagick."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    subprocess.run(["import", "-display", display, "-window", "root", "-trim", "+repage",
                    path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def install_service_file(services):
    """The app's D-Bus activation file, pointing at the built binary."""
    with open(os.path.join(BUILD_ROOT, "frontends", "gtk", "data",
                           APP_ID + ".service")) as f:
        text = f.read()
    exe = os.path.join(BUILD_ROOT, "frontends", "gtk", "p2pchat-gtk")
    with open(os.path.join(services, APP_ID + ".service"), "w") as f:
        f.write(re.sub(r"(?m)^Exec=\S+", "Exec=" + exe, text))


def activate_on(user, display, a11y_user):
    """Starts the app on @user's bus through ActivateAction, as a
    notification would; returns the pid that owns the app's name.  The app
    joins the accessibility bus of @a11y_user, which the test watches."""
    a11y = a11y_user.conn.call_sync("org.a11y.Bus", "/org/a11y/bus", "org.a11y.Bus",
                                    "GetAddress", None, GLib.VariantType("(s)"),
                                    Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
    dbus = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
    user.conn.call_sync(*dbus, "UpdateActivationEnvironment", GLib.Variant(
        "(a{ss})", ({"DISPLAY": display, "GDK_BACKEND": "x11", "GSK_RENDERER": "cairo",
                     "GSETTINGS_BACKEND": "memory", "AT_SPI_BUS_ADDRESS": a11y},)),
        None, Gio.DBusCallFlags.NONE, 5000, None)
    open_conversation(user.conn, "alice")
    return user.conn.call_sync(*dbus, "GetConnectionUnixProcessID",
                               GLib.Variant("(s)", (APP_ID,)), None, Gio.DBusCallFlags.NONE,
                               5000, None).unpack()[0]


def main():
    tap = Tap(27)
    xvfb, display = start_xvfb()
    # Before the buses start: the AT-SPI registry they activate synthesizes
    # key presses with XTest on this display.
    os.environ["DISPLAY"] = display
    coord = Coordinator()
    # The activation file of the app, where the buses started below look.
    share = tempdir("p2ptest-share-")
    services = os.path.join(share, "dbus-1", "services")
    os.makedirs(services)
    install_service_file(services)
    os.environ["XDG_DATA_DIRS"] = share + ":" + os.environ.get(
        "XDG_DATA_DIRS", "/usr/local/share:/usr/share")
    alice = User("alice")
    bob = User("bob")
    carol = User("carol")
    bob.login("bob", coord.address)
    carol.login("carol", coord.address)
    activated_pid = None

    # pyatspi finds the accessibility bus through the session bus: alice's.
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = alice.bus.address
    import gi
    gi.require_version("Atspi", "2.0")
    import pyatspi

    log_path = os.path.join(alice.home, "p2pchat-gtk.log")
    app = start_app(alice.env, display, log_path)
    ui = Ui(pyatspi, app.pid)

    def app_log():
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    try:
        frame = ui.named(pyatspi.ROLE_FRAME, "p2pchat", 30)
        tap.ok(frame is not None, "the window shows up on AT-SPI", app_log())

        name = ui.named(pyatspi.ROLE_TEXT, "Name")
        server = ui.named(pyatspi.ROLE_TEXT, "Coordinator")
        login = ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log In")
        tap.ok(name and server and login, "login page controls have accessible names",
               "\n".join(a.name for a in ui.find_all(lambda a: True)))

        ui.set_text(name, "bad,name")
        ui.set_text(server, coord.address)
        ui.press(login)
        tap.ok(ui.find(lambda a: a.getRole() == pyatspi.ROLE_ALERT and
                       a.name.startswith("Invalid user name 'bad,name'"), 15),
               "the daemon's InvalidName is shown inline on the login page",
               "\n".join(a.name for a in ui.find_all(lambda a: True)))

        ui.set_text(name, "alice")
        ui.press(login)
        tap.ok(wait_for(lambda: alice.prop("State") == "online", 15) and
               ui.wait_label(lambda s: s == "Online as alice", 10),
               "logging in through the login page brings alice online", app_log())

        row = ui.named(pyatspi.ROLE_PANEL, "bob, online") or \
            ui.find(lambda a: a.name == "bob, online", 5)
        tap.ok(row is not None, "the roster shows bob online",
               "\n".join(ui.labels()))

        # A click opens a conversation (the selection only follows it).
        peers = ui.named(pyatspi.ROLE_LIST, "Peers")
        item = peers and ui.list_item(peers, "bob, online")
        if item:
            ui.click(item)
        composer = ui.find(lambda a: a.getRole() == pyatspi.ROLE_TEXT and a.name == "Message"
                           and a.getState().contains(pyatspi.STATE_SENSITIVE), 10)
        tap.ok(composer is not None and
               ui.named(pyatspi.ROLE_LIST, "Conversation with bob", 5) is not None,
               "picking bob opens the conversation with an enabled composer")

        text = "Hello bob, this is alice typing into p2pchat-gtk."
        # GTK 4.8 does not implement Component.GrabFocus; opening the
        # conversation has put the keyboard focus into the composer.
        ui.type_text(text)
        ui.key(RETURN)
        tap.ok(bob.wait_signal("MessageReceived",
                               lambda a: a[1] == "alice" and a[2] == text, 15),
               "Enter sends: bob's daemon receives the message",
               "bob got: %r" % bob.signals("MessageReceived"))
        tap.ok(received(bob, "alice", text) and
               ui.find(lambda a: a.getRole() == pyatspi.ROLE_TEXT and a.name == "Message"
                       and a.queryText().characterCount == 0, 5) is not None,
               "the composer is empty after sending")

        tap.ok(ui.wait_label(lambda s: s.endswith("· delivered"), 15),
               "alice's bubble reaches delivered", "\n".join(ui.labels()))

        ui.type_text("first line")
        ui.key(RETURN, SHIFT_MASK)
        ui.type_text("second line")
        ui.key(RETURN)
        tap.ok(bob.wait_signal("MessageReceived",
                               lambda a: a[2] == "first line\nsecond line", 15),
               "Shift+Enter makes a new line, Enter sends both lines",
               "bob got: %r" % bob.signals("MessageReceived"))

        reply = "Hi alice! 你好，很高兴见到你。This reply is long enough to wrap " \
            "inside its bubble, so the screenshot shows how text flows."
        bob.send("alice", reply)
        tap.ok(ui.wait_label(lambda s: s == reply, 15),
               "bob's reply appears in alice's window", "\n".join(ui.labels()))

        carol.send("alice", "Are you there, alice?")
        tap.ok(ui.find(lambda a: a.name == "carol, online, 1 unread", 15) is not None,
               "carol's roster row counts her unread message",
               repr([a.name for a in ui.find_all(lambda a: a.name.startswith("carol"))]))

        shot = os.environ.get("P2PCHAT_SCREENSHOT",
                              os.path.join(BUILD_ROOT, "gtk-screenshot.png"))
        wait_for(lambda: False, 1)  # let the last frame paint
        tap.ok(screenshot(display, shot), "a PNG screenshot of the window is written")
        tap.diag("screenshot: " + shot)

        search = ui.named(pyatspi.ROLE_ENTRY, "Search peers") or \
            ui.find(lambda a: a.name == "Search peers" and a.getRole() != pyatspi.ROLE_LABEL)
        ui.set_text(search, "CAR")
        only_carol = wait_for(lambda: ui.find_all(lambda a: a.name.startswith("carol, online")) and
                              not ui.find_all(lambda a: a.name == "bob, online"), 10)
        ui.set_text(search, "")
        tap.ok(only_carol and ui.find(lambda a: a.name == "bob, online", 10),
               "the search field filters the roster, ignoring case")

        for i in range(40):
            bob.send("alice", "burst %d" % i)
        last = ui.wait_label(lambda s: s == "burst 39", 20)
        at_end = wait_for(lambda: scrolled_to_end(ui, "Conversation with bob"), 10)
        tap.ok(last is not None and at_end, "new messages keep the newest one in view",
               repr(scroll_values(ui, "Conversation with bob")))

        alice.kill(signal.SIGTERM)
        tap.ok(ui.wait_label(lambda s: s == "Waiting for p2pchatd…", 15),
               "the app notices that p2pchatd went away", "\n".join(ui.labels()))

        alice.start()
        back = wait_for(lambda: alice.has_owner() and alice.prop("State") == "online", 30)
        row = ui.find(lambda a: a.name == "bob, online", 20)
        tap.ok(back and row is not None and app.poll() is None,
               "after a daemon restart the app logs in again and shows the roster",
               app_log() + "\n" + alice.read_log()[-2000:])

        open_conversation(alice.conn, "carol")
        tap.ok(ui.named(pyatspi.ROLE_LIST, "Conversation with carol", 10) is not None,
               "the open-conversation action opens carol's conversation",
               "\n".join(ui.labels()))
        tap.ok(wait_for(lambda: alice.prop("ActiveConversation") == "carol", 10) and
               wait_for(lambda: alice.prop("Unread", PATH + "/peer/carol", PEER) == 0, 10) and
               ui.find(lambda a: a.name == "carol, online", 10) is not None,
               "the daemon is told carol's conversation is on screen; it is read",
               "ActiveConversation %r" % alice.prop("ActiveConversation"))

        carol.call("Logout")
        ui.find(lambda a: a.name == "carol, offline", 15)
        ui.type_text("See you later, carol")
        ui.key(RETURN)
        tap.ok(ui.wait_label(lambda s: s.endswith("· queued"), 15),
               "a message to offline carol is queued", "\n".join(ui.labels()))
        carol.login("carol", coord.address)
        tap.ok(ui.wait_label(lambda s: s.endswith("· delivered"), 45),
               "the queued message is delivered once carol is back",
               "\n".join(ui.labels()))

        ui.press(ui.named(pyatspi.ROLE_PUSH_BUTTON, "Log Out"))
        # Log Out asks first: the dialog's own Log Out button confirms.
        # (GTK 4.8 names it "_Log Out Log Out": mnemonic and label.)
        confirm = ui.find(lambda a: a.getRole() == pyatspi.ROLE_PUSH_BUTTON and
                          a.name.endswith("Log Out") and a.name != "Log Out", 10)
        if confirm is not None:
            ui.press(confirm)
        tap.ok(wait_for(lambda: alice.prop("State") == "offline", 10) and
               ui.wait_label(lambda s: s == "Offline", 5) and
               ui.find(lambda a: a.getRole() == pyatspi.ROLE_TEXT and a.name == "Message" and
                       not a.getState().contains(pyatspi.STATE_SENSITIVE), 5),
               "Log Out logs the daemon out and disables the composer")

        activated_pid = activate_on(bob, display, alice)
        tap.ok(activated_pid is not None and
               Ui(pyatspi, activated_pid).named(pyatspi.ROLE_LIST,
                                                "Conversation with alice", 20) is not None,
               "D-Bus activation starts the app and opens the conversation",
               "pid %r; apps on AT-SPI: %r" % (activated_pid, [
                   (a.name, a.get_process_id()) for a in pyatspi.Registry.getDesktop(0) if a]))

        complaints = app_complaints(log_path)
        tap.ok(not complaints, "the app logged no criticals or warnings",
               "\n".join(complaints))
        tap.ok(stop(app) == 0, "SIGTERM ends the app cleanly")

        # A new app instance, while alice is logged out: the login page
        # comes from the daemon's config, the conversation from its history.
        alice.call("SetConfig", "ss", ("username", "alice"))
        app = start_app(alice.env, display, log_path + ".2")
        ui = Ui(pyatspi, app.pid)
        name = ui.named(pyatspi.ROLE_TEXT, "Name", 30)
        tap.ok(name is not None and wait_for(lambda: text_of(name) == "alice", 10),
               "the login page is prefilled from the daemon's config",
               "Name: %r; config: %r" % (name and text_of(name),
                                         alice.call("GetConfig", "s", ("username",))))
        alice.login("alice", coord.address)
        open_conversation(alice.conn, "bob")
        tap.ok(ui.wait_label(lambda s: s == text, 20) is not None and
               ui.wait_label(lambda s: s == reply, 5) is not None and
               ui.wait_label(lambda s: s.endswith("· delivered"), 5) is not None,
               "reopened, the app shows the history with bob", "\n".join(ui.labels()))
    finally:
        stop(app)
        if activated_pid:
            os.kill(activated_pid, signal.SIGKILL)
        for u in (alice, bob, carol):
            u.close()
        coord.close()
        stop(xvfb)
    tap.finish()


if __name__ == "__main__":
    main()
