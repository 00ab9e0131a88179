# SPDX-License-Identifier: MIT
"""Test helpers for the seed's wire protocol, written from
shared/seed/reference-wire.md (not from our C code):

- encodings: UTF-16LE datagrams without BOM, LEB128 + UTF-8 TCP frames;
- RefClient: the reference client (throwaway-port logins, list over TCP,
  then close);
- NativeClient: our native dialect (caps "native1", hello/welcome session);
- Coordinator: starts build/coordinator/p2pchat-coordinator on a free
  loopback port and kills it by pid;
- Tap: minimal TAP output.

Stdlib only.  Every wait is bounded.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

NATIVE_CAPS = "native1"


# --- encodings -------------------------------------------------------------

def utf16(text):
    """The reference datagram encoding: UTF-16LE, no BOM."""
    return text.encode("utf-16-le")


def decode_datagram(data):
    """Decode a datagram the way our coordinator guesses: BOM, else 2nd byte 0."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le")
    if len(data) >= 2 and data[1] == 0:
        return data.decode("utf-16-le")
    return data.decode("utf-8")


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def frame(text):
    """A TCP frame: LEB128 byte length + UTF-8 (.NET BinaryWriter.Write(string))."""
    data = text.encode("utf-8")
    return leb128(len(data)) + data


def parse_list(text):
    """'n1,ep1[,caps];...;end' -> [(name, ep, caps)].  Raises ValueError."""
    parts = text.split(";")
    if parts[-1] != "end":
        raise ValueError("list does not end with 'end': %r" % text)
    out = []
    for p in parts[:-1]:
        f = p.split(",")
        if len(f) not in (2, 3):
            raise ValueError("bad list entry %r" % p)
        out.append((f[0], f[1], f[2] if len(f) == 3 else ""))
    return out


class FrameReader:
    """Reads LEB128 frames from a stream socket, with deadlines."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before the deadline")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TimeoutError("no data before the deadline")
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def _try_frame(self):
        n = 0
        shift = 0
        for i, b in enumerate(self.buf):
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                start = i + 1
                if len(self.buf) - start < n:
                    return None
                text = self.buf[start:start + n].decode("utf-8")
                self.buf = self.buf[start + n:]
                return text
            if shift > 63:
                raise ValueError("overlong LEB128")
        return None

    def read(self, timeout=2.0):
        """The next frame, or None at end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            text = self._try_frame()
            if text is not None:
                return text
            if self.eof:
                return None
            self._fill(deadline)

    def wait_eof(self, timeout=2.0):
        """True when the peer closes (after any remaining frames) in time."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                self._fill(deadline)
        except TimeoutError:
            return False
        return True


# --- ports and processes ---------------------------------------------------

def family(ip):
    """AF_INET6 for an IPv6 address, else AF_INET."""
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def endpoint(ip, port):
    """The wire form: a.b.c.d:port or [v6]:port."""
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1"):
    """A port that is free for @kind on @host right now."""
    with socket.socket(family(host), kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_tcp_port(host="127.0.0.1", attempts=50):
    """A port free for both UDP and TCP on @host right now."""
    for _ in range(attempts):
        t = socket.socket(family(host), socket.SOCK_STREAM)
        u = socket.socket(family(host), socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free UDP+TCP port")


def build_root():
    root = os.environ.get("P2PCHAT_BUILD_ROOT")
    if not root:
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.join(here, "..", "..", "build")
    return root


def kill_pid(proc, timeout=5.0):
    """SIGTERM, then SIGKILL, a Popen we started; returns its exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


class Coordinator:
    """The built p2pchat-coordinator on 127.0.0.1, port picked by the kernel."""

    LISTENING = re.compile(r"Listening on UDP (\S+):(\d+), TCP port (\d+)\.")

    def __init__(self, *args, host="127.0.0.1", env=None, timeout=10.0):
        self.binary = os.path.join(build_root(), "coordinator", "p2pchat-coordinator")
        self.logfile = tempfile.NamedTemporaryFile(prefix="coordinator-", suffix=".log")
        self.final_log = None
        self.host = host
        cmd = [self.binary, "--listen", endpoint(host, 0)] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=self.logfile,
                                     env=env)
        deadline = time.monotonic() + timeout
        while True:
            m = self.LISTENING.search(self.log())
            if m:
                self.udp_port = int(m.group(2))
                self.tcp_port = int(m.group(3))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError("coordinator did not start: %s" % log)
            time.sleep(0.01)

    @property
    def udp_addr(self):
        return (self.host, self.udp_port)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.logfile.name, "r", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (then SIGKILL); returns the exit status.  Idempotent."""
        if self.final_log is None:
            kill_pid(self.proc)
            self.final_log = self.log()
            self.logfile.close()
        return self.proc.returncode

    SANITIZER = re.compile(r"(ERROR: \w+Sanitizer|runtime error:|LeakSanitizer)")

    def clean_exit(self):
        """(ok, diagnostics) after stop(): exit status 0 on SIGTERM and no
        sanitizer report in the log."""
        status = self.stop()
        bad = [line for line in self.final_log.splitlines() if self.SANITIZER.search(line)]
        return status == 0 and not bad, "exit status %s\n%s" % (status, self.final_log[-3000:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- clients ---------------------------------------------------------------

class RefClient:
    """The seed's reference client: UTF-16LE datagrams, logins from throwaway
    ports, the list over TCP from the Accept's source IP, then close."""

    encoding = "utf-16-le"
    caps = None

    def __init__(self, name, coordinator_addr, ip="127.0.0.1"):
        self.name = name
        self.server = coordinator_addr
        self.ip = ip
        self.sock = socket.socket(family(ip), socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.endpoint = endpoint(ip, self.sock.getsockname()[1])
        self.accept_from = None

    def close(self):
        self.sock.close()

    def encode(self, text):
        return text.encode(self.encoding)

    def send_raw(self, data, src_ip=None):
        """One datagram from a throwaway port (on @src_ip, default ours)."""
        with socket.socket(family(src_ip or self.ip), socket.SOCK_DGRAM) as t:
            t.bind((src_ip or self.ip, 0))
            t.sendto(data, self.server)

    def login_text(self, endpoint=None):
        text = "login,%s,%s" % (self.name, endpoint or self.endpoint)
        if self.caps:
            text += "," + self.caps
        return text

    def login(self, endpoint=None, src_ip=None):
        self.send_raw(self.encode(self.login_text(endpoint)), src_ip)

    def logout(self, misspelled=False, src_ip=None):
        verb = "lohout" if misspelled else "logout"
        self.send_raw(self.encode("%s,%s,%s" % (verb, self.name, self.endpoint)), src_ip)

    def recv(self, timeout=1.0):
        """(text, source address) of the next datagram, or (None, None)."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None, None
        data, addr = self.sock.recvfrom(65536)
        return decode_datagram(data), addr

    def expect(self, prefix, timeout=1.0):
        """The next datagram starting with @prefix, skipping others; or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            text, addr = self.recv(left)
            if text is None:
                return None
            if text.startswith(prefix):
                if prefix.startswith("Accept"):
                    self.accept_from = addr
                return text

    def drain(self, timeout=0.05):
        """All datagrams that arrive within @timeout of each other."""
        out = []
        while True:
            text, _ = self.recv(timeout)
            if text is None:
                return out
            out.append(text)

    def wait_accept(self, timeout=1.0):
        """The TCP port announced by Accept, or None."""
        text = self.expect("Accept,", timeout)
        if text is None:
            return None
        return int(text.split(",")[1])

    def fetch_list(self, port, host=None, timeout=3.0):
        """Connect like the reference client (to the Accept's source IP), read
        the list, and check that the coordinator closes.  Returns
        (entries, closed)."""
        host = host or (self.accept_from[0] if self.accept_from else self.server[0])
        with socket.create_connection((host, port), timeout=timeout) as s:
            reader = FrameReader(s)
            text = reader.read(timeout)
            if text is None:
                return None, True
            return parse_list(text), reader.wait_eof(timeout)


class Utf8RefClient(RefClient):
    """A reference-dialect client that talks UTF-8 datagrams."""
    encoding = "utf-8"


class NativeClient(RefClient):
    """Our native dialect: caps in the login, then a TCP session."""

    caps = NATIVE_CAPS

    def __init__(self, name, coordinator_addr, ip="127.0.0.1", encoding="utf-8"):
        super().__init__(name, coordinator_addr, ip)
        self.encoding = encoding
        self.tcp = None
        self.reader = None

    def connect(self, port, timeout=2.0):
        """Open the session: hello, then expect welcome and the list."""
        self.tcp = socket.create_connection((self.server[0], port), timeout=timeout,
                                            source_address=(self.ip, 0))
        self.tcp.sendall(frame("hello,%s,%s" % (self.name, self.caps)))
        self.reader = FrameReader(self.tcp)
        welcome = self.reader.read(timeout)
        if welcome is None or not welcome.startswith("welcome,"):
            raise RuntimeError("expected welcome, got %r" % welcome)
        text = self.reader.read(timeout)
        if text is None:
            raise RuntimeError("session closed before the list")
        return parse_list(text)

    def login_session(self, timeout=2.0):
        """Login, Accept, session; returns the list."""
        self.login()
        port = self.wait_accept(timeout)
        if port is None:
            raise RuntimeError("%s: no Accept" % self.name)
        return self.connect(port, timeout)

    def read_frame(self, timeout=2.0):
        return self.reader.read(timeout)

    def send_frame(self, text):
        self.tcp.sendall(frame(text))

    def close(self):
        if self.tcp:
            self.tcp.close()
        super().close()


# --- TAP ---------------------------------------------------------------------

class Tap:
    """ok()/not ok lines and the plan at the end; exit() gives the status."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            if diag:
                for line in str(diag).splitlines():
                    print("# " + line)
        sys.stdout.flush()
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line)

    def exit(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)
