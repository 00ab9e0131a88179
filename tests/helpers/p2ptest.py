# SPDX-License-Identifier: MIT
"""Helpers for the p2pchatd integration tests.

Each simulated user gets a temporary HOME/XDG tree, a private session
dbus-daemon and a p2pchatd on it; the test talks to the daemon with Gio and
records every signal it emits.  Emulators of the seed's reference server and
client speak the UTF-16LE wire format from Python.  Everything started here
is killed by pid at exit, on failure too.  Output is TAP.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refclient  # noqa: E402  (the coordinator tests' wire helpers)

SERVICE = "org.p2pchat.chat1"
PATH = "/org/p2pchat/chat1"
MANAGER = "org.p2pchat.chat1.Manager"
PEER = "org.p2pchat.chat1.Peer"
ERROR = "org.p2pchat.chat1.Error."

SOURCE_ROOT = os.environ.get(
    "P2PCHAT_SOURCE_ROOT",
    os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_ROOT = os.environ.get("P2PCHAT_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
# Sanitizers make everything slower: stretch functional deadlines.
SLOW = 3.0 if os.environ.get("P2PCHAT_SANITIZE", "none") not in ("", "none") else 1.0

_procs = []
_dirs = []
# Daemon logs with sanitizer findings: Tap.finish() fails the test for them.
_sanitizer_reports = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    """Signals one process by pid and waits for it; returns its exit status."""
    if p.poll() is None:
        os.kill(p.pid, sig)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        return p.wait()


def tempdir(prefix="p2ptest-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


class Tap:
    def __init__(self, count):
        self.count = count
        self.n = 0
        self.failed = 0
        print("1..%d" % count, flush=True)

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name), flush=True)
            if diag is not None:
                for line in str(diag).splitlines():
                    print("# " + line, flush=True)
        return cond

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def finish(self):
        while self.n < self.count:
            self.ok(False, "not reached")
        for label, text in _sanitizer_reports:
            self.failed += 1
            self.diag("sanitizer report in %s:\n%s" % (label, text[-4000:]))
        sys.exit(1 if self.failed else 0)


def free_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on @host."""
    return refclient.free_udp_tcp_port(host)


def free_port6(host="::1"):
    """A port free for both UDP and TCP on the IPv6 @host."""
    return refclient.free_udp_tcp_port(host, attempts=100)


def has_ipv6(host="::1"):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def pump(seconds=0.0):
    """Runs the default GLib main context for @seconds (at least one pass)."""
    ctx = GLib.MainContext.default()
    end = time.monotonic() + seconds
    while True:
        while ctx.iteration(False):
            pass
        if time.monotonic() >= end:
            return
        time.sleep(0.005)


def wait_for(pred, timeout):
    """Pumps the main context until pred() is true; returns its last value."""
    end = time.monotonic() + timeout * SLOW
    while True:
        pump()
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(0.01)


def error_name(e):
    if isinstance(e, GLib.Error):
        return Gio.DBusError.get_remote_error(e)
    return None


class Bus:
    """A private session dbus-daemon."""

    def __init__(self, home):
        env = dict(os.environ, HOME=home)
        self.proc = spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env=env, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not print its address")

    def stop(self):
        stop(self.proc)


class User:
    """One simulated user: home dir, private bus, p2pchatd, a Gio connection."""

    def __init__(self, label, bind="127.0.0.1:0", start=True, watch=True):
        self.label = label
        self.home = tempdir("p2ptest-%s-" % label)
        for sub in ("config", "data", "cache", "runtime"):
            os.makedirs(os.path.join(self.home, sub), mode=0o700)
        self.bus = Bus(self.home)
        self.env = dict(os.environ,
                        HOME=self.home,
                        XDG_CONFIG_HOME=os.path.join(self.home, "config"),
                        XDG_DATA_HOME=os.path.join(self.home, "data"),
                        XDG_CACHE_HOME=os.path.join(self.home, "cache"),
                        XDG_RUNTIME_DIR=os.path.join(self.home, "runtime"),
                        DBUS_SESSION_BUS_ADDRESS=self.bus.address)
        self.bind = bind
        self.daemon = None
        self.events = []
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        if watch:  # benchmarks leave it off: every signal would wake Python
            self.conn.signal_subscribe(None, None, None, None, None,
                                       Gio.DBusSignalFlags.NONE, self._on_signal)
        if start:
            self.start()

    def _on_signal(self, conn, sender, path, iface, member, params):
        self.events.append((iface, member, path, params.unpack()))

    def start(self, extra_args=()):
        self.log = open(os.path.join(self.home, "p2pchatd.log"), "ab")
        argv = [os.path.join(BUILD_ROOT, "daemon", "p2pchatd"), "--verbose"]
        if self.bind:
            argv += ["--bind", self.bind]
        self.daemon = spawn(argv + list(extra_args), env=self.env, stdout=self.log,
                            stderr=subprocess.STDOUT)
        ok = wait_for(lambda: self.has_owner() or self.daemon.poll() is not None, 10)
        if not self.has_owner():
            raise RuntimeError("p2pchatd of %s did not take its name:\n%s"
                               % (self.label, self.read_log()))
        return ok

    def read_log(self):
        with open(os.path.join(self.home, "p2pchatd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def has_owner(self):
        r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameHasOwner",
                                GLib.Variant("(s)", (SERVICE,)), GLib.VariantType("(b)"),
                                Gio.DBusCallFlags.NONE, 5000, None)
        return r.unpack()[0]

    def call(self, method, sig=None, args=(), timeout=30, path=PATH, iface=MANAGER):
        """Calls a method; returns the unpacked reply tuple, raises GLib.Error."""
        params = GLib.Variant("(%s)" % sig, tuple(args)) if sig else None
        r = self.conn.call_sync(SERVICE, path, iface, method, params, None,
                                Gio.DBusCallFlags.NONE, int(timeout * 1000 * SLOW), None)
        return r.unpack() if r is not None else ()

    def call_async(self, method, sig=None, args=(), timeout=30):
        """Starts a call; returns a dict that gets 'reply' or 'error' set."""
        box = {}
        params = GLib.Variant("(%s)" % sig, tuple(args)) if sig else None

        def done(conn, res):
            try:
                box["reply"] = conn.call_finish(res).unpack()
            except GLib.Error as e:
                box["error"] = e

        self.conn.call(SERVICE, PATH, MANAGER, method, params, None, Gio.DBusCallFlags.NONE,
                       int(timeout * 1000 * SLOW), None, done)
        return box

    def error_of(self, method, sig=None, args=(), timeout=30):
        try:
            self.call(method, sig, args, timeout)
        except GLib.Error as e:
            return error_name(e)
        return None

    def prop(self, name, path=PATH, iface=MANAGER):
        return self.call("Get", "ss", (iface, name), path=path,
                         iface="org.freedesktop.DBus.Properties")[0]

    def login(self, name, coordinator, timeout=30):
        return self.call("Login", "ss", (name, coordinator), timeout)

    def send(self, peer, text):
        return self.call("SendMessage", "ss", (peer, text))[0]

    def peers(self):
        return {n: (ep, online, extra) for n, ep, online, extra in self.call("ListPeers")[0]}

    def online_peers(self):
        return sorted(n for n, v in self.peers().items() if v[1])

    def signals(self, member):
        return [e[3] for e in self.events if e[0] == MANAGER and e[1] == member]

    def wait_signal(self, member, pred=lambda args: True, timeout=5):
        return wait_for(lambda: [a for a in self.signals(member) if pred(a)], timeout)

    def kill(self, sig=signal.SIGKILL):
        return stop(self.daemon, sig)

    def close(self):
        if self.daemon:
            stop(self.daemon)
            log = self.read_log()
            if "Sanitizer" in log or "runtime error:" in log:
                _sanitizer_reports.append((self.label, log))
        self.bus.stop()


frame = refclient.frame
u16 = refclient.utf16


def read_frame(sock, timeout=5.0):
    """Reads one LEB128-framed UTF-8 string from a TCP socket."""
    text = refclient.FrameReader(sock).read(timeout)
    if text is None:
        raise EOFError
    return text


class RefServer:
    """The seed's reference server, in Python: UTF-16LE datagrams, the list
    on TCP then close, login/logout forwarded by UDP to the other users.

    @drop_forwards: names whose login forward is not sent (lost datagrams).
    @extra: additional list entries "name,ep" (e.g. 10,000 fake peers)."""

    def __init__(self, host="127.0.0.1", port=None, extra=()):
        self.host = host
        self.port = port or free_port(host)
        self.users = {}  # name -> "ip:port"
        self.extra = list(extra)
        self.drop_forwards = set()
        self.lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, 0))
        self.tcp.listen(64)
        self.tcp_port = self.tcp.getsockname()[1]
        self.running = True
        for fn in (self._udp_loop, self._tcp_loop):
            threading.Thread(target=fn, daemon=True).start()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def _sendto(self, text, ep):
        ip, port = ep.rsplit(":", 1)
        self.udp.sendto(u16(text), (ip, int(port)))

    def _udp_loop(self):
        while self.running:
            try:
                data, _ = self.udp.recvfrom(65536)
                text = data.decode("utf-16-le")
            except (OSError, UnicodeDecodeError):
                continue
            f = text.split(",")
            if len(f) < 3:
                continue
            kind, name, ep = f[0], f[1], f[2]
            with self.lock:
                if kind == "login":
                    self.users[name] = ep
                    self._sendto("Accept,%d" % self.tcp_port, ep)
                    others = [e for n, e in self.users.items() if n != name]
                    forward = name not in self.drop_forwards
                elif kind in ("logout", "lohout"):
                    self.users.pop(name, None)
                    others = list(self.users.values())
                    forward = True
                else:
                    continue
            if forward:
                for e in others:
                    self._sendto(text, e)

    def list_text(self):
        with self.lock:
            entries = ["%s,%s" % kv for kv in self.users.items()] + self.extra
        return ";".join(entries + ["end"])

    def _tcp_loop(self):
        while self.running:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            try:
                c.sendall(frame(self.list_text()))
            except OSError:
                pass
            c.close()

    def forward(self, text, to_ep):
        """Sends @text as if forwarded by this server."""
        self._sendto(text, to_ep)

    def close(self):
        self.running = False
        self.udp.close()
        self.tcp.close()


class RefClient:
    """The seed's reference client: logs in without CAPS, talks UTF-16LE."""

    def __init__(self, name, server, host="127.0.0.1"):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.endpoint = "%s:%d" % self.sock.getsockname()
        self.server = server
        self.roster = {}
        self.received = []

    def _server_addr(self):
        ip, port = self.server.rsplit(":", 1)
        return ip, int(port)

    def login(self, timeout=10):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(u16("login,%s,%s" % (self.name, self.endpoint)), self._server_addr())
        s.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for text, src in self.poll(0.2):
                if text.startswith("Accept,"):
                    self.fetch_list(src[0], int(text.split(",")[1]))
                    return True
        return False

    def fetch_list(self, ip, port):
        with socket.create_connection((ip, port), timeout=5) as c:
            text = read_frame(c)
        for entry in text.split(";")[:-1]:
            f = entry.split(",")
            self.roster[f[0]] = f[1]

    def logout(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(u16("lohout,%s,%s" % (self.name, self.endpoint)), self._server_addr())
        s.close()

    def poll(self, seconds):
        """Reads datagrams for @seconds; records talk and roster changes."""
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            text = data.decode("utf-16-le", "replace")
            f = text.split(",", 3)
            if f[0] == "talk" and len(f) == 4:
                self.received.append((f[2], f[3]))
            elif f[0] == "login" and len(f) >= 3:
                self.roster[f[1]] = f[2]
            elif f[0] in ("logout", "lohout") and len(f) >= 3:
                self.roster.pop(f[1], None)
            out.append((text, src))
        return out

    def talk(self, to_ep, text, sender=None, source_host="127.0.0.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source_host, 0))
        ip, port = to_ep.rsplit(":", 1)
        s.sendto(u16("talk,%s,%s,%s" % (time.strftime("%H:%M:%S"), sender or self.name, text)),
                 (ip, int(port)))
        s.close()

    def close(self):
        self.sock.close()


def coordinator_path():
    return os.path.join(BUILD_ROOT, "coordinator", "p2pchat-coordinator")


class Coordinator:
    """The real p2pchat-coordinator on a random loopback port."""

    def __init__(self, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or (free_port6(host) if ":" in host else free_port(host))
        self.log_path = os.path.join(tempdir("p2ptest-coord-"), "coordinator.log")
        self.start()

    @property
    def address(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = spawn([coordinator_path(), "--listen", self.address],
                          stdout=self.log, stderr=subprocess.STDOUT)
        # Ready when the TCP port accepts connections.
        end = time.monotonic() + 10 * SLOW
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("coordinator did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM):
        return stop(self.proc, sig)

    def close(self):
        self.stop()
