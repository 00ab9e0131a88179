# SPDX-License-Identifier: MIT
"""The one home of the integration tests' shared helpers.

- Tap: TAP output, with the plan up front (Tap(count)) or at the end
  (Tap()); run() wraps a test body so that an exception fails the test and
  everything started is stopped;
- wait_for(), pump(), settle(): waits, stretched by SLOW under sanitizers,
  that run the default GLib main context meanwhile;
- Coordinator: the built p2pchat-coordinator on a port the kernel picks;
- User: one simulated user with a temporary HOME/XDG tree, a private session
  dbus-daemon, the real p2pchatd on it, a Gio connection that records every
  signal, and the built p2pchat CLI run in that environment;
- SilentPort, has_ipv6(), missing(), seed(), LineReader, Tmux;
- Spoofer, can_spoof(): forged IPv4/UDP datagrams on loopback (root).

The seed's wire protocol (the reference client and server, native sessions)
is emulated in refclient.py, the GTK app's helpers are in gtktest.py; both
build on this module.  Everything started here is killed by pid (newest
first) at exit, on failure too.
"""

import atexit
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

SERVICE = "org.p2pchat.chat1"
PATH = "/org/p2pchat/chat1"
MANAGER = "org.p2pchat.chat1.Manager"
PEER = "org.p2pchat.chat1.Peer"
ERROR = "org.p2pchat.chat1.Error."

SOURCE_ROOT = os.environ.get(
    "P2PCHAT_SOURCE_ROOT",
    os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
BUILD_ROOT = os.environ.get("P2PCHAT_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
P2PCHATD = os.path.join(BUILD_ROOT, "daemon", "p2pchatd")
P2PCHAT = os.path.join(BUILD_ROOT, "frontends", "cli", "p2pchat")
COORDINATOR = os.path.join(BUILD_ROOT, "coordinator", "p2pchat-coordinator")

# Sanitizers make everything 2-3 times slower: every deadline, and every
# window in which something must NOT happen, is stretched by this.
SLOW = 3.0 if os.environ.get("P2PCHAT_SANITIZE", "none") not in ("", "none") else 1.0

SANITIZER = re.compile(r"(ERROR: \w+Sanitizer|runtime error:|LeakSanitizer)")

_procs = []
_dirs = []
_users = []
_coordinators = []
# Logs with sanitizer findings: Tap.finish() fails the test for them.
_sanitizer_reports = []


# --- processes and files ---------------------------------------------------

def stop(p, sig=signal.SIGTERM, timeout=10):
    """Signals one process by pid and waits for it; SIGKILL after @timeout
    seconds.  Returns its exit status."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        return p.wait()


def _cleanup():
    # SIGTERM, so that programs can exit cleanly (and sanitizers report).
    for p in reversed(_procs):
        stop(p, signal.SIGTERM, timeout=5)
        for f in (p.stdout, p.stderr, p.stdin):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def spawn(argv, **kw):
    """subprocess.Popen, registered to be stopped at exit."""
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def tempdir(prefix="p2ptest-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


def missing(tool):
    """True when the program @tool is not on PATH: skip with
    tap.skip_missing(name, tool)."""
    return shutil.which(tool) is None


def seed():
    """The random seed of this run: $P2PCHAT_SEED or a new one, printed as a
    TAP comment so that a failure can be replayed."""
    s = os.environ.get("P2PCHAT_SEED")
    value = int(s) if s else random.SystemRandom().randrange(1 << 32)
    print("# random seed %d (replay with P2PCHAT_SEED=%d)" % (value, value), flush=True)
    return value


# --- TAP -------------------------------------------------------------------

class Tap:
    """TAP lines.  Tap(count) prints the plan first and fails the cases not
    reached; Tap() prints the plan at the end."""

    def __init__(self, count=None):
        self.count = count
        self.n = 0
        self.failed = 0
        if count is not None:
            print("1..%d" % count, flush=True)

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name), flush=True)
            if diag is not None and diag != "":
                self.diag(diag)
        return cond

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def skip_missing(self, name, tool):
        """A case that needs @tool, which this host lacks (scripts/run-tests
        reads the form "# SKIP missing TOOL")."""
        self.skip(name, "missing " + tool)

    def need(self, names, cond, why):
        """Whether the cases @names can run: when @cond is false they are
        skipped for @why, or fail under CI=true, where everything they need
        is there (CI runs as root).  Returns @cond."""
        if not cond:
            for name in names:
                if os.environ.get("CI") == "true":
                    self.ok(False, name, "%s (CI=true: must not skip)" % why)
                else:
                    self.skip(name, why)
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def finish(self):
        """Prints what is left, then exits: 1 if anything failed."""
        if self.count is None:
            print("1..%d" % self.n, flush=True)
        else:
            if self.n > self.count:
                self.failed += 1
                self.diag("planned %d tests but ran %d" % (self.count, self.n))
            while self.n < self.count:
                self.ok(False, "not reached")
        for label, text in _sanitizer_reports:
            self.failed += 1
            self.diag("sanitizer report in %s:\n%s" % (label, text[-4000:]))
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


def run(body, count=None):
    """Runs body(tap) as a whole test: an exception fails it (with the
    traceback and, then, the tails of the daemons' logs), every User and
    Coordinator started is stopped, and the process exits with the result."""
    tap = Tap(count)
    try:
        body(tap)
    except Exception:  # noqa: BLE001  (report, never hang or leave processes)
        tap.failed += 1
        tap.diag(traceback.format_exc())
        for u in _users:
            tap.diag("--- %s's p2pchatd log ---\n%s" % (u.label, u.read_log()[-3000:]))
    finally:
        close_all()
    tap.finish()


def close_all():
    """Stops every User and Coordinator (newest first), checking their logs."""
    for u in reversed(_users):
        u.close()
    for c in reversed(_coordinators):
        c.close()


# --- waiting ---------------------------------------------------------------

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


def settle(seconds):
    """The window of an absence check ("nothing happens for @seconds"),
    stretched by SLOW: runs the main context meanwhile."""
    pump(seconds * SLOW)


def wait_for(pred, timeout=10.0, step=0.01):
    """Calls pred() until it is true or @timeout (times SLOW) has passed,
    running the default main context in between; returns its last value."""
    end = time.monotonic() + timeout * SLOW
    while True:
        pump()
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# --- network ---------------------------------------------------------------

def family(ip):
    """AF_INET6 for an IPv6 address, else AF_INET."""
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def endpoint(ip, port):
    """The wire form: a.b.c.d:port or [v6]:port."""
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def parse_endpoint(text):
    """"a.b.c.d:port" or "[v6]:port" -> (ip, port)."""
    ip, port = text.rsplit(":", 1)
    return ip.strip("[]"), int(port)


def has_ipv6(host="::1"):
    """Whether this host can really bind @host (socket.has_ipv6 only says
    that Python was built with IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


class SilentPort:
    """A coordinator address nobody serves: a UDP socket bound to a port the
    kernel picked, kept open and never read, so logins to it get no answer
    (and no ICMP error) and no other program can take the port meanwhile."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(family(host), socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.address = endpoint(host, self.port)

    def close(self):
        self.sock.close()


# --- forged datagrams ------------------------------------------------------

def _checksum(data):
    """The Internet checksum (RFC 1071) of @data."""
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def can_spoof():
    """Whether this process may send forged IPv4 datagrams (a raw socket:
    root, or CAP_NET_RAW).  A test that needs it calls tap.need(...)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
        return True
    except PermissionError:
        return False


class Spoofer:
    """Sends IPv4/UDP datagrams with any source address and port, built by
    hand (IPv4 header with IP_HDRINCL, UDP header with its checksum) on a raw
    socket.  Loopback delivers any 127.x.y.z source.  Needs can_spoof()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.sent = 0  # bytes of UDP payload sent

    def send(self, src, dst, payload):
        """One datagram from @src to @dst, both (ip, port)."""
        sip, dip = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
        length = 8 + len(payload)
        pseudo = sip + dip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
        udp = struct.pack("!HHHH", src[1], dst[1], length, 0)
        csum = _checksum(pseudo + udp + payload) or 0xFFFF
        udp = struct.pack("!HHHH", src[1], dst[1], length, csum)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, random.randrange(1 << 16),
                         0, 64, socket.IPPROTO_UDP, 0, sip, dip)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        self.sock.sendto(ip + udp + payload, (dst[0], 0))
        self.sent += len(payload)

    def close(self):
        self.sock.close()


class Coordinator:
    """The built p2pchat-coordinator.  It binds port 0 on @host (the kernel
    picks one free port for UDP and TCP) and says which in its "Listening on
    UDP ADDR:PORT, TCP port N." line; start() again restarts it on that port.
    Its --state-dir (key and name bindings) is @state_dir, by default a new
    temporary one (never /var/lib); restarts keep it."""

    LISTENING = re.compile(r"Listening on UDP (\S+):(\d+), TCP port (\d+)\.")

    def __init__(self, *args, host="127.0.0.1", env=None, timeout=10.0, binary=None,
                 state_dir=None):
        self.args = list(args)
        # @binary: another p2pchat-coordinator than the built one.
        self.binary = binary or COORDINATOR
        self.host = host
        self.env = env
        self.port = 0
        self.tcp_port = None
        self.proc = None
        self.final_log = None
        self.log_path = os.path.join(tempdir("p2ptest-coord-"), "coordinator.log")
        self.state_dir = state_dir or os.path.join(os.path.dirname(self.log_path), "state")
        if "--state-dir" not in self.args:
            self.args += ["--state-dir", self.state_dir]
        _coordinators.append(self)
        self.start(timeout)

    def start(self, timeout=10.0):
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.final_log = None
        with open(self.log_path, "ab") as log:
            self.proc = spawn([self.binary, "--listen", endpoint(self.host, self.port)] +
                              self.args, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, env=self.env)
        m = wait_for(lambda: self.LISTENING.search(self.read_log()[offset:]) or
                     self.proc.poll() is not None, timeout)
        if not isinstance(m, re.Match):
            log = self.read_log()
            self.stop()
            raise RuntimeError("coordinator did not start:\n%s" % log)
        self.port = int(m.group(2))
        self.tcp_port = int(m.group(3))

    @property
    def udp_port(self):
        return self.port

    @property
    def address(self):
        """HOST:PORT as Login() and the CLI take it."""
        return endpoint(self.host, self.port)

    @property
    def udp_addr(self):
        return (self.host, self.port)

    @property
    def pid(self):
        return self.proc.pid

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    log = read_log

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Signals it (SIGKILL after 5 s) and returns the exit status."""
        status = stop(self.proc, sig, timeout=5)
        if self.final_log is None:
            self.final_log = self.read_log()
            if SANITIZER.search(self.final_log):
                _sanitizer_reports.append(("p2pchat-coordinator", self.final_log))
        return status

    close = stop

    def clean_exit(self):
        """(ok, diagnostics) after stop(): exit status 0 on SIGTERM and no
        sanitizer report in the log."""
        status = self.stop()
        bad = [line for line in self.final_log.splitlines() if SANITIZER.search(line)]
        return status == 0 and not bad, "exit status %s\n%s" % (status, self.final_log[-3000:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- users -----------------------------------------------------------------

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
    """One simulated user: a temporary HOME with its XDG dirs, a private
    bus, p2pchatd on it (unless start=False: then start() later), and a Gio
    connection that records every signal in .events (watch=False: not)."""

    def __init__(self, label, bind="127.0.0.1:0", start=True, watch=True,
                 p2pchatd=None, p2pchat=None):
        self.label = self.name = label
        # Other programs than the built ones (an unpacked package's).
        self.p2pchatd = p2pchatd or P2PCHATD
        self.p2pchat = p2pchat or P2PCHAT
        self.home = tempdir("p2ptest-%s-" % label)
        for sub in ("config", "data", "cache", "state", "runtime"):
            os.makedirs(os.path.join(self.home, sub), mode=0o700)
        self.bus = Bus(self.home)
        self.env = dict(os.environ,
                        HOME=self.home,
                        XDG_CONFIG_HOME=os.path.join(self.home, "config"),
                        XDG_DATA_HOME=os.path.join(self.home, "data"),
                        XDG_CACHE_HOME=os.path.join(self.home, "cache"),
                        XDG_STATE_HOME=os.path.join(self.home, "state"),
                        XDG_RUNTIME_DIR=os.path.join(self.home, "runtime"),
                        DBUS_SESSION_BUS_ADDRESS=self.bus.address,
                        LANG="C.UTF-8")
        self.env.pop("NO_COLOR", None)
        self.bind = bind
        self.daemon = None
        self.closed = False
        self.events = []
        self.log_path = os.path.join(self.home, "p2pchatd.log")
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        if watch:  # benchmarks leave it off: every signal would wake Python
            self.conn.signal_subscribe(None, None, None, None, None,
                                       Gio.DBusSignalFlags.NONE, self._on_signal)
        _users.append(self)
        if start:
            self.start()

    def _on_signal(self, conn, sender, path, iface, member, params):
        self.events.append((iface, member, path, params.unpack()))

    # The daemon.
    def start(self, extra_args=()):
        """Starts p2pchatd (--verbose, log in .log_path); returns once it
        owns its name."""
        argv = [self.p2pchatd, "--verbose"]
        if self.bind:
            argv += ["--bind", self.bind]
        with open(self.log_path, "ab") as log:
            self.daemon = spawn(argv + list(extra_args), env=self.env,
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        wait_for(lambda: self.has_owner() or self.daemon.poll() is not None, 10)
        if not self.has_owner():
            raise RuntimeError("p2pchatd of %s did not take its name:\n%s"
                               % (self.label, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        return stop(self.daemon, sig)

    def close(self):
        """Stops the daemon (its log is checked for sanitizer reports) and
        the bus.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.daemon:
            stop(self.daemon)
            log = self.read_log()
            if "Sanitizer" in log or "runtime error:" in log:
                _sanitizer_reports.append((self.label, log))
        self.bus.stop()

    # D-Bus.
    def has_owner(self, name=SERVICE):
        r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameHasOwner",
                                GLib.Variant("(s)", (name,)), GLib.VariantType("(b)"),
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

    def emit_forged(self, member, signature, args):
        """Emits a Manager signal from a connection that is not the daemon."""
        c = Gio.DBusConnection.new_for_address_sync(
            self.bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        try:
            c.emit_signal(None, PATH, MANAGER, member, GLib.Variant(signature, args))
            c.flush_sync(None)
        finally:
            c.close_sync(None)

    # The CLI.
    def cli(self, *args, input=None, timeout=30, env=None):
        """Runs p2pchat; returns the CompletedProcess (str stdout/stderr)."""
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.run([self.p2pchat, *args], input=input, capture_output=True,
                              text=True, timeout=timeout * SLOW, env=e)

    def cli_json(self, *args, **kw):
        r = self.cli("--json", *args, **kw)
        if r.returncode != 0:
            raise RuntimeError(f"p2pchat {' '.join(args)} failed: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def popen(self, *args, env=None, **kw):
        """Starts p2pchat in the background with pipes (text mode)."""
        return spawn([self.p2pchat, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, bufsize=1,
                     env=dict(self.env, **(env or {})), **kw)

    def popen_subscribed(self, *args):
        """Starts a streaming p2pchat (listen, chat) and waits until it has
        subscribed to the daemon's signals; returns (process, stdout reader)."""
        p = self.popen(*args, env={"P2PCHAT_DEBUG": "1"})
        line, seen = LineReader(p.stderr).read_until(
            lambda l: "Subscribed to the signals of p2pchatd." in l, timeout=15)
        if line is None:
            raise RuntimeError(f"p2pchat {' '.join(args)} did not subscribe: {seen}")
        return p, LineReader(p.stdout)


class LineReader:
    """Reads lines from a pipe with a deadline, running the default main
    context while it waits (so that signal handlers keep working)."""

    def __init__(self, f):
        self.f = f
        os.set_blocking(f.fileno(), False)
        self.buf = ""
        self.eof = False

    def readline(self, timeout=10.0):
        """The next line (stretched by SLOW), or None."""
        end = time.monotonic() + timeout * SLOW
        while "\n" not in self.buf and not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return None
            pump()
            r, _, _ = select.select([self.f], [], [], min(left, 0.02))
            if not r:
                continue
            chunk = os.read(self.f.fileno(), 65536).decode()
            if not chunk:
                self.eof = True
            self.buf += chunk
        if "\n" not in self.buf:
            line, self.buf = self.buf, ""
            return line or None
        line, self.buf = self.buf.split("\n", 1)
        return line

    def read_until(self, pred, timeout=10.0):
        """(the first line pred accepts, every line seen); (None, seen) on
        timeout or end of file."""
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


class Tmux:
    """A tmux server of our own (its own socket) running @command in a
    detached @width x @height terminal; check missing("tmux") first."""

    def __init__(self, command, width=80, height=15):
        self.sock = "p2ptest-%s" % uuid.uuid4().hex[:8]
        r = self.run("new-session", "-d", "-x", str(width), "-y", str(height), command)
        if r.returncode != 0:
            print("# tmux: %s" % r.stderr.strip(), flush=True)

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10 * SLOW,
                              env=dict(os.environ, SHELL="/bin/sh"))

    def keys(self, *keys):
        self.run("send-keys", *keys)

    def type(self, text):
        self.run("send-keys", "-l", text)

    def screen(self):
        """The non-empty lines on the screen, right-stripped."""
        return [l.rstrip() for l in self.run("capture-pane", "-p").stdout.splitlines()
                if l.strip()]

    def raw(self):
        """The screen with its escape sequences."""
        return self.run("capture-pane", "-e", "-p").stdout

    def wait_screen(self, pred, timeout=10):
        """The screen once pred(lines) holds, else None."""
        return wait_for(lambda: (lambda s: s if pred(s) else None)(self.screen()), timeout)

    def close(self):
        self.run("kill-server")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
