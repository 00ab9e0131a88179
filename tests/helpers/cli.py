# SPDX-License-Identifier: MIT
"""Helpers for the CLI tests: TAP output, a private session bus per simulated
user with its own HOME and XDG dirs, and running the built p2pchat.

Processes, temporary dirs, ports and buses come from p2ptest (the daemon
tests' helpers): everything started is killed by pid in cleanup(), which
main_wrapper() calls on every path, and again at exit by p2ptest.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import p2ptest  # noqa: E402
from p2ptest import BUILD_ROOT, SOURCE_ROOT, SLOW, free_port, spawn, stop  # noqa: E402,F401
from p2ptest import Gio, GLib  # noqa: E402

P2PCHAT = os.path.join(BUILD_ROOT, "frontends", "cli", "p2pchat")
P2PCHATD = os.path.join(BUILD_ROOT, "daemon", "p2pchatd")
COORDINATOR = os.path.join(BUILD_ROOT, "coordinator", "p2pchat-coordinator")
FAKE_DAEMON = os.path.join(SOURCE_ROOT, "tests", "helpers", "fake_daemon.py")


class Tap:
    """Counts and prints TAP lines; plan printed up front."""

    def __init__(self, planned):
        self.n = 0
        self.failed = 0
        print(f"1..{planned}", flush=True)

    def ok(self, name, cond, diag=""):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            for line in str(diag).splitlines():
                print(f"# {line}", flush=True)
        return cond

    def bail(self, why):
        print(f"Bail out! {why}", flush=True)

    def exit_code(self):
        return 1 if self.failed else 0


def cleanup():
    """Stops every process newest first (SIGTERM, so they can exit cleanly)."""
    for p in reversed(p2ptest._procs):
        stop(p, signal.SIGTERM, timeout=5)
        for f in (p.stdout, p.stderr, p.stdin):
            if f:
                f.close()


def wait_for(pred, timeout=10.0, step=0.05):
    """Polls pred() (no main loop needed); the timeout stretches under sanitizers."""
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class User:
    """One simulated user: temp HOME/XDG dirs and a private dbus-daemon."""

    def __init__(self, name):
        self.name = name
        self.dir = p2ptest.tempdir(f"p2pchat-cli-{name}-")
        env = dict(os.environ)
        for k, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"),
                       ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"),
                       ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "run")):
            path = os.path.join(self.dir, sub)
            os.makedirs(path, mode=0o700)
            env[k] = path
        env.pop("NO_COLOR", None)
        env["LANG"] = "C.UTF-8"
        self.bus = p2ptest.Bus(env["HOME"])
        env["DBUS_SESSION_BUS_ADDRESS"] = self.bus.address
        self.env = env
        self.daemon = None

    def cli(self, *args, input=None, timeout=30, env=None):
        """Runs p2pchat; returns CompletedProcess with str stdout/stderr."""
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.run([P2PCHAT, *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env=e)

    def cli_json(self, *args, **kw):
        r = self.cli("--json", *args, **kw)
        if r.returncode != 0:
            raise RuntimeError(f"p2pchat {' '.join(args)} failed: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def popen(self, *args, **kw):
        """Starts p2pchat in the background with pipes (text mode)."""
        return spawn([P2PCHAT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, bufsize=1, env=self.env, **kw)

    def popen_subscribed(self, *args):
        """Starts a streaming p2pchat (listen, chat) and waits until it has
        subscribed to the daemon's signals; returns (process, stdout reader)."""
        env = dict(self.env, P2PCHAT_DEBUG="1")
        p = spawn([P2PCHAT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        line, seen = LineReader(p.stderr).read_until(
            lambda l: "Subscribed to the signals of p2pchatd." in l, timeout=15)
        if line is None:
            raise RuntimeError(f"p2pchat {' '.join(args)} did not subscribe: {seen}")
        return p, LineReader(p.stdout)

    def _gio(self, fn):
        """Runs fn(connection) on a fresh Gio connection to the user's bus."""
        flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
                 Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
        c = Gio.DBusConnection.new_for_address_sync(
            self.env["DBUS_SESSION_BUS_ADDRESS"], flags, None, None)
        try:
            fn(c)
            c.flush_sync(None)
        finally:
            c.close_sync(None)

    def control(self, method, signature, args):
        """Calls org.p2pchat.test.Control on the fake daemon."""
        self._gio(lambda c: c.call_sync(
            "org.p2pchat.chat1", "/org/p2pchat/test", "org.p2pchat.test.Control", method,
            GLib.Variant(signature, args), None, Gio.DBusCallFlags.NONE, 5000, None))

    def emit_forged(self, member, signature, args):
        """Emits a Manager signal from a connection that is not the daemon."""
        self._gio(lambda c: c.emit_signal(
            None, "/org/p2pchat/chat1", "org.p2pchat.chat1.Manager", member,
            GLib.Variant(signature, args)))

    def _wait_daemon(self):
        ok = wait_for(lambda: self.daemon.poll() is not None or
                      self.cli("status").returncode == 0, timeout=15)
        if not ok or self.daemon.poll() is not None:
            raise RuntimeError(f"daemon of {self.name} did not come up")

    def start_fake_daemon(self, *peers):
        argv = ["/usr/bin/python3", FAKE_DAEMON]
        for p in peers:
            argv += ["--peer", p]
        self.daemon = spawn(argv, stdout=subprocess.DEVNULL, env=self.env)
        self._wait_daemon()

    def start_daemon(self):
        self.daemon = spawn([P2PCHATD, "--bind", "127.0.0.1:0"], env=self.env,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(self.dir, "p2pchatd.log"), "w"))
        self._wait_daemon()

    def daemon_log(self):
        try:
            with open(os.path.join(self.dir, "p2pchatd.log")) as f:
                return f.read()
        except OSError:
            return ""


def start_coordinator():
    """Starts the real coordinator on a free loopback port; returns HOST:PORT."""
    port = free_port()
    p = spawn([COORDINATOR, "--listen", f"127.0.0.1:{port}"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        if p.poll() is not None:
            raise RuntimeError("coordinator exited")
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    if not wait_for(up, timeout=10):
        raise RuntimeError("coordinator did not come up")
    return f"127.0.0.1:{port}"


class LineReader:
    """Reads lines from a pipe with a deadline, without blocking forever."""

    def __init__(self, f):
        self.f = f
        os.set_blocking(f.fileno(), False)
        self.buf = ""

    def readline(self, timeout=10.0):
        import select
        end = time.monotonic() + timeout * SLOW
        while "\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.f], [], [], left)
            if not r:
                continue
            chunk = os.read(self.f.fileno(), 65536).decode()
            if not chunk:
                break
            self.buf += chunk
        if "\n" not in self.buf:
            line, self.buf = self.buf, ""
            return line or None
        line, self.buf = self.buf.split("\n", 1)
        return line

    def read_until(self, pred, timeout=10.0):
        """Returns the first line (parsed by pred's caller) that pred accepts."""
        end = time.monotonic() + timeout * SLOW
        seen = []
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None, seen
            line = self.readline(left / SLOW)
            if line is None:
                return None, seen
            seen.append(line)
            if pred(line):
                return line, seen


def main_wrapper(planned, body):
    tap = Tap(planned)
    try:
        body(tap)
    except Exception as e:  # report, never hang or leave processes behind
        import traceback
        tap.bail(f"{type(e).__name__}: {e}")
        for line in traceback.format_exc().splitlines():
            print(f"# {line}")
        return 1
    finally:
        cleanup()
    if tap.n != planned:
        print(f"# planned {planned} tests but ran {tap.n}")
        return 1
    return tap.exit_code()
