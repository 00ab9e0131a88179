#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""daemon/notify.c against python3-dbusmock's notification daemon.

A private dbus-daemon carries the mock server, a mock p2pchat-gtk
(org.freedesktop.Application) and tests/helpers/notify-driver, which runs
the notifier and reports its callbacks on stdout.  Checks the Notify
arguments with and without the body-markup and inline-reply capabilities,
coalescing, suppression, the actions and the re-query of capabilities when
the server is replaced.  Prints TAP.
"""

import json
import os
import queue
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Bus, GLib, Gio, Tap, spawn, stop, tempdir, wait_for  # noqa: E402

SERVER = "org.freedesktop.Notifications"
SERVER_PATH = "/org/freedesktop/Notifications"
MOCK = "org.freedesktop.DBus.Mock"
APP = "org.p2pchat.P2pchat"
APP_PATH = "/org/p2pchat/P2pchat"
DRIVER = os.path.join(p2ptest.BUILD_ROOT, "tests", "integration", "notify-driver")


class Driver:
    def __init__(self, env):
        self.proc = spawn([DRIVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, timeout=10):
        """The next line, or None after @timeout seconds or at exit."""
        try:
            return self.lines.get(timeout=timeout * p2ptest.SLOW)
        except queue.Empty:
            return None

    def command(self, line):
        self.send(line)
        return self.expect()


class Env:
    def __init__(self):
        self.home = tempdir("p2ptest-notify-")
        self.bus = Bus(self.home)
        self.env = dict(os.environ, HOME=self.home, DBUS_SESSION_BUS_ADDRESS=self.bus.address)
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    def call(self, name, path, iface, method, params=None, reply=None):
        r = self.conn.call_sync(name, path, iface, method, params,
                                GLib.VariantType(reply) if reply else None,
                                Gio.DBusCallFlags.NONE, 10000, None)
        return r.unpack() if r is not None else ()

    def has_owner(self, name):
        return self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "NameHasOwner", GLib.Variant("(s)", (name,)), "(b)")[0]

    def start_mock(self, args, name):
        p = spawn([sys.executable, "-m", "dbusmock"] + args, env=self.env,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: self.has_owner(name) or p.poll() is not None, 15):
            raise RuntimeError("dbusmock did not take %s" % name)
        return p

    def start_server(self, caps):
        return self.start_mock(["--template", "notification_daemon", "-p",
                                json.dumps({"capabilities": " ".join(caps)})], SERVER)

    def calls(self, method, name=SERVER, path=SERVER_PATH):
        return [args for _, args in self.call(name, path, MOCK, "GetMethodCalls",
                                              GLib.Variant("(s)", (method,)), "(a(tav))")[0]]

    def emit(self, member, sig, values):
        args = [GLib.Variant(t, v) for t, v in zip(sig, values)]
        self.call(SERVER, SERVER_PATH, MOCK, "EmitSignal",
                  GLib.Variant("(sssav)", (SERVER, member, sig, args)))


def wait_calls(env, n, method="Notify", **kw):
    """Waits until the mock has at least @n calls of @method; returns them."""
    wait_for(lambda: len(env.calls(method, **kw)) >= n, 10)
    return env.calls(method, **kw)


def main():
    tap = Tap(23)
    if not os.path.exists(DRIVER):
        for _ in range(23):
            tap.ok(False, "notify-driver is built", DRIVER)
        tap.finish()

    env = Env()
    server = env.start_server(["body", "body-markup", "actions"])
    app = env.start_mock([APP, APP_PATH, "org.freedesktop.Application"], APP)
    env.call(APP, APP_PATH, MOCK, "AddMethod",
             GLib.Variant("(sssss)", ("org.freedesktop.Application", "ActivateAction",
                                      "sava{sv}", "", "")))
    drv = Driver(env.env)
    try:
        tap.ok(drv.expect() == "ready", "driver starts and installs its matches")

        # Notify arguments, with body-markup and without inline-reply.
        tap.ok(drv.command("msg alice <b>hi</b> & 'you'") == "shown alice", "message is shown")
        calls = wait_calls(env, 1)
        app_name, replaces, icon, summary, body, actions, hints, timeout = calls[0]
        tap.ok((app_name, replaces, icon, summary, timeout) ==
               ("p2pchat", 0, APP, "alice", -1),
               "Notify: app name, new notification, icon, sender as summary, expiry",
               calls[0])
        tap.ok(body == "&lt;b&gt;hi&lt;/b&gt; &amp; &apos;you&apos;",
               "Notify: body escaped for a body-markup server", body)
        tap.ok(list(actions) == ["default", "Open"],
               "Notify: default action only, no inline-reply without the capability", actions)
        tap.ok(dict(hints) == {"category": "im.received", "desktop-entry": APP, "urgency": 1},
               "Notify: hints category, desktop-entry, urgency", hints)

        # Coalescing: three messages from alice make one notification.
        drv.command("msg alice second")
        drv.command("msg alice third")
        wait_for(lambda: env.calls("Notify")[-1][4] == "3 new messages\nthird", 10)
        calls = env.calls("Notify")
        tap.ok(calls[-1][4] == "3 new messages\nthird" and
               all(c[1] == 1 and c[3] == "alice" for c in calls[1:]),
               "a burst from one peer replaces the first notification (replaces_id 1)",
               [(c[1], c[3], c[4]) for c in calls])

        drv.command("msg bob yo")
        calls = wait_calls(env, len(calls) + 1)
        tap.ok(calls[-1][1] == 0 and calls[-1][3] == "bob" and calls[-1][4] == "yo",
               "another peer gets a notification of its own", calls[-1])
        bob_id = 2

        # The default action opens the conversation and resets the count.
        env.emit("ActionInvoked", "us", [1, "default"])
        tap.ok(drv.expect() == "open alice", "ActionInvoked default calls on_open(peer)")
        n = len(env.calls("Notify"))
        drv.command("msg alice again")
        calls = wait_calls(env, n + 1)
        tap.ok(calls[-1][1] == 0 and calls[-1][4] == "again",
               "after opening, a new message starts a new notification", calls[-1])
        alice_id = 3

        # Suppression: the active conversation, and notifications off.
        tap.ok(drv.command("active carol") == "active carol" and
               drv.command("msg carol hi") == "suppressed carol",
               "no notification for the active conversation")
        tap.ok(drv.command("active bob") == "active bob" and
               wait_for(lambda: [bob_id] in [list(a) for a in env.calls("CloseNotification")],
                        10),
               "making a peer active closes its notification",
               env.calls("CloseNotification"))
        drv.command("active")
        tap.ok(drv.command("off") == "off" and drv.command("msg erin x") == "suppressed erin",
               "no notification when notifications are off")
        drv.command("on")
        n = len(env.calls("Notify"))
        drv.command("msg dave x")
        calls = wait_calls(env, n + 1)
        tap.ok([c[3] for c in calls].count("carol") == 0 and
               [c[3] for c in calls].count("erin") == 0 and calls[-1][3] == "dave",
               "suppressed messages never reached the server", [c[3] for c in calls])

        # Turning notifications off closed alice's and dave's; a new one starts at 0.
        tap.ok(wait_for(lambda: [alice_id] in [list(a) for a in env.calls("CloseNotification")],
                        10),
               "turning notifications off closes those on screen",
               env.calls("CloseNotification"))
        dave_id = 4
        env.emit("NotificationClosed", "uu", [dave_id, 2])
        n = len(env.calls("Notify"))
        drv.command("msg dave y")
        calls = wait_calls(env, n + 1)
        tap.ok(calls[-1][1] == 0 and calls[-1][4] == "y",
               "after NotificationClosed the next message is a new notification", calls[-1])

        # ActivateAction on the GTK app, by bus name.
        drv.command("open alice")
        acts = wait_calls(env, 1, "ActivateAction", name=APP, path=APP_PATH)
        tap.ok(acts and acts[0][0] == "open-conversation" and list(acts[0][1]) == ["alice"] and
               dict(acts[0][2]) == {},
               "notify_open_conversation calls ActivateAction('open-conversation', ['alice'])",
               acts)

        # A new server: capabilities asked again, inline reply, no markup.
        stop(server)
        wait_for(lambda: not env.has_owner(SERVER), 10)
        server = env.start_server(["body", "actions", "inline-reply"])
        ok = False
        for _ in range(50):
            # The notifier may not have seen the new owner yet: retry a fresh peer.
            drv.command("msg zoe <i>x</i> & y")
            calls = env.calls("Notify")
            if calls and "inline-reply" in calls[-1][5]:
                ok = True
                break
            wait_for(lambda: False, 0.1)
        tap.ok(ok, "a replaced server's capabilities are queried again",
               calls[-1] if calls else None)
        tap.ok(ok and list(calls[-1][5]) == ["default", "Open", "inline-reply", "Reply"],
               "Notify: inline-reply action when the server has the capability",
               calls[-1][5] if calls else None)
        tap.ok(ok and calls[-1][4].endswith("<i>x</i> & y"),
               "Notify: body not escaped without body-markup", calls[-1][4] if calls else None)
        tap.ok(ok and calls[0][1] == 0,
               "the new server's first notification is a new one", calls[:1])

        # The id of zoe's notification: the one replaced, or the last new one.
        calls = env.calls("Notify")
        zoe_id = calls[-1][1] or sum(1 for c in calls if c[1] == 0)
        env.emit("NotificationReplied", "us", [zoe_id, "sure, see you"])
        tap.ok(drv.expect() == "reply zoe sure, see you",
               "NotificationReplied calls on_reply(peer, text)")

        drv.send("quit")
        tap.ok(drv.proc.wait(timeout=10) == 0, "driver exits cleanly")
    finally:
        if drv.proc.poll() is None:
            stop(drv.proc)
    tap.finish()


if __name__ == "__main__":
    main()
