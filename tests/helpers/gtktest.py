# SPDX-License-Identifier: MIT
"""Helpers for the GTK app's tests: a private X server, the app, AT-SPI.

Xvfb picks a free display itself (-displayfd), so parallel tests never race
for one; every process is registered with p2ptest and killed by pid at
exit.  pyatspi must be imported by the test after DBUS_SESSION_BUS_ADDRESS
names the bus whose accessibility bus it should watch.
"""

import os
import signal
import sqlite3
import subprocess
import time

from gi.repository import Gio, GLib
from p2ptest import BUILD_ROOT, spawn, wait_for

APP_ID = "org.p2pchat.P2pchat"
APP_PATH = "/org/p2pchat/P2pchat"
RETURN = 0xff0d
TAB = 0xff09
SHIFT_MASK = 1 << 0


def start_xvfb(size="1280x800x24"):
    """Starts Xvfb on a display of its own choice; returns (proc, ':N')."""
    r, w = os.pipe()
    proc = spawn(["Xvfb", "-displayfd", str(w), "-screen", "0", size,
                  "-nolisten", "tcp", "-noreset"], pass_fds=(w,),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    data = b""
    end = time.monotonic() + 30
    try:
        while not data.endswith(b"\n") and time.monotonic() < end:
            chunk = os.read(r, 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    if not data.strip():
        raise RuntimeError("Xvfb did not report a display")
    return proc, ":" + data.decode().strip()


def start_app(user_env, display, log_path):
    """Starts p2pchat-gtk on the bus of @user_env; output goes to @log_path."""
    # GTK and fontconfig keep caches to the end: LeakSanitizer would blame
    # them in a sanitizer build, so it is off for the app (memory errors
    # and undefined behaviour still abort it).
    env = dict(user_env, DISPLAY=display, GDK_BACKEND="x11", GSK_RENDERER="cairo",
               GTK_A11Y="atspi", GSETTINGS_BACKEND="memory",
               ASAN_OPTIONS="detect_leaks=0")
    return spawn([os.path.join(BUILD_ROOT, "frontends", "gtk", "p2pchat-gtk")], env=env,
                 stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def app_complaints(log_path):
    """The GLib criticals and warnings the app printed."""
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return [line for line in text.splitlines()
            if "-CRITICAL **" in line or "-WARNING **" in line]


def fill_history(user, peer, n, text="message %d", first_id=0):
    """Stores @n old messages with @peer (text % i, i = 0 oldest) in
    @user's history, the daemon stopped (it is the one writer), in one
    transaction, and starts the daemon again.  Odd ones came in (read), even
    ones went out (delivered), one second apart, in the full-text index
    too.  Ids count from @first_id + 1, so that several peers' histories
    can be filled."""
    user.kill(signal.SIGTERM)
    wait_for(lambda: not user.has_owner(), 10)
    db = sqlite3.connect(os.path.join(user.home, "data", "p2pchat", "history.db"))
    base = 1764000000000000
    with db:
        last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]
        db.executemany(
            "INSERT INTO messages (id, peer, direction, text, sent_usec, received_usec, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (("%032x" % (first_id + i + 1), peer, "in" if i % 2 else "out", text % i,
              base + i * 1000000, base + i * 1000000 + 500 if i % 2 else 0,
              "read" if i % 2 else "delivered")
             for i in range(n)))
        # The daemon indexes its own inserts for SearchHistory at commit.
        db.execute("INSERT INTO messages_fts (rowid, text) "
                   "SELECT seq, text FROM messages WHERE seq > ?", (last,))
    db.close()
    user.start()


def scroll_value(app_acc, list_name):
    """The AT-SPI Value of the vertical scroll bar beside a list."""
    import pyatspi
    lst = pyatspi.findDescendant(app_acc, lambda x: x.getRole() == pyatspi.ROLE_LIST and
                                 x.name == list_name)
    if lst is None:
        return None
    for i in range(lst.parent.childCount):
        bar = lst.parent.getChildAtIndex(i)
        if bar.getRole() == pyatspi.ROLE_SCROLL_BAR and \
                bar.getState().contains(pyatspi.STATE_VERTICAL):
            return bar.getChildAtIndex(0).queryValue()
    return None


def open_conversation(conn, peer):
    """What a notification does: ActivateAction on the app, on @conn's bus."""
    conn.call_sync(APP_ID, APP_PATH, "org.freedesktop.Application", "ActivateAction",
                   GLib.Variant("(sava{sv})", ("open-conversation",
                                                [GLib.Variant("s", peer)], {})),
                   None, Gio.DBusCallFlags.NONE, 30000, None)


class Ui:
    """Finds and drives widgets of one application through AT-SPI."""

    def __init__(self, pyatspi, app_pid):
        self.pyatspi = pyatspi
        self.app_pid = app_pid

    def app(self):
        desktop = self.pyatspi.Registry.getDesktop(0)
        for i in range(desktop.childCount):
            a = desktop.getChildAtIndex(i)
            try:
                if a is not None and a.get_process_id() == self.app_pid:
                    return a
            except Exception:
                continue
        return None

    def find_all(self, pred):
        """Every accessible of the app for which pred holds.  GTK 4.8 does
        not report "showing" below the window, so hidden stack pages are
        searched too: look for what is unique to the expected state."""
        out = []
        app = self.app()
        if app is None:
            return out

        def walk(acc, depth):
            if acc is None or depth > 60:
                return
            try:
                if pred(acc):
                    out.append(acc)
                for i in range(acc.childCount):
                    walk(acc.getChildAtIndex(i), depth + 1)
            except Exception:
                return

        walk(app, 0)
        return out

    def find(self, pred, timeout=10):
        def probe():
            r = self.find_all(pred)
            return r[0] if r else None
        return wait_for(probe, timeout)

    def named(self, role, name, timeout=10):
        return self.find(lambda a: a.getRole() == role and a.name == name, timeout)

    def labels(self):
        return [a.name for a in self.find_all(
            lambda a: a.getRole() == self.pyatspi.ROLE_LABEL)]

    def wait_label(self, pred, timeout=10):
        return self.find(lambda a: a.getRole() == self.pyatspi.ROLE_LABEL and pred(a.name),
                         timeout)

    def set_text(self, acc, text):
        acc.queryEditableText().setTextContents(text)

    def press(self, acc):
        action = acc.queryAction()
        for i in range(action.nActions):
            if action.getName(i) in ("click", "activate", "press"):
                return action.doAction(i)
        return action.doAction(0)

    def center(self, acc):
        """The middle of @acc on the screen.  Window coordinates: GTK 4.8
        does not know screen ones (and warns), and with no window manager
        the window sits at the origin."""
        e = acc.queryComponent().getExtents(self.pyatspi.WINDOW_COORDS)
        return e.x + e.width // 2, e.y + e.height // 2

    def hover(self, acc):
        """Moves the pointer (XTest, through the AT-SPI registry) over @acc."""
        x, y = self.center(acc)
        self.pyatspi.Registry.generateMouseEvent(x, y, self.pyatspi.MOUSE_ABS)

    def click(self, acc):
        """A real left click in the middle of @acc."""
        x, y = self.center(acc)
        self.pyatspi.Registry.generateMouseEvent(x, y, self.pyatspi.MOUSE_ABS)
        self.pyatspi.Registry.generateMouseEvent(x, y, self.pyatspi.MOUSE_B1C)

    def list_item(self, list_acc, name):
        """The item of @list_acc that holds an accessible named @name, or
        "@name, MORE" (a roster row: "bob, online, 1 unread")."""
        for i in range(list_acc.childCount):
            item = list_acc.getChildAtIndex(i)
            if self.pyatspi.findDescendant(item, lambda a: a.name == name or
                                           a.name.startswith(name + ", ")):
                return item
        return None

    def type_text(self, text):
        self.pyatspi.Registry.generateKeyboardEvent(0, text, self.pyatspi.KEY_STRING)

    def key(self, keysym, modifiers=0):
        reg = self.pyatspi.Registry
        if modifiers:
            reg.generateKeyboardEvent(modifiers, None, self.pyatspi.KEY_LOCKMODIFIERS)
        reg.generateKeyboardEvent(keysym, None, self.pyatspi.KEY_SYM)
        if modifiers:
            reg.generateKeyboardEvent(modifiers, None, self.pyatspi.KEY_UNLOCKMODIFIERS)
