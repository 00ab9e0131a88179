# SPDX-License-Identifier: MIT
"""Emulators of the seed's wire protocol, written from
shared/seed/reference-wire.md (not from our C code):

- encodings: UTF-16LE datagrams without BOM, LEB128 + UTF-8 TCP frames;
- RefClient: the reference client (throwaway-port logins, the list over
  TCP then close, UTF-16LE talk), for the coordinator's and the daemon's
  tests alike;
- NativeClient: our native dialect (caps "native1" in the login, then a
  hello and a Noise XX session, see common/noise-stream.h; Identity is its
  Ed25519 key pair);
- RefServer: the reference server (forwards by UDP, the list then close).

Every wait is bounded and stretched by p2ptest.SLOW under sanitizers, the
windows in which nothing may arrive too.  Tap, Coordinator, User and
wait_for live in p2ptest.
"""

import hashlib
import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from p2ptest import SLOW, endpoint, family, parse_endpoint  # noqa: E402

import noise  # noqa: E402
from nacl.bindings import (  # noqa: E402
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
    crypto_sign_keypair,
    crypto_sign_seed_keypair,
)

NATIVE_CAPS = "native1"
# The caps of a native hello that opens a Noise session, as our daemon sends.
HELLO_CAPS = "native1+noise1"
SESSION_PROLOGUE = b"p2pchat-session-v1\n"
FINGERPRINT_CONTEXT = b"p2pchat-fingerprint-v1"
# The largest plaintext of one transport message.
MAX_TRANSPORT_PAYLOAD = noise.MAX_MESSAGE - noise.TAGLEN


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
    """'n1,ep1[,caps[,key]];...;end' -> [(name, ep, caps)], or (name, ep,
    caps, key) for the entries with a key (sessions' lists).  Raises
    ValueError."""
    parts = text.split(";")
    if parts[-1] != "end":
        raise ValueError("list does not end with 'end': %r" % text)
    out = []
    for p in parts[:-1]:
        f = p.split(",")
        if len(f) not in (2, 3, 4):
            raise ValueError("bad list entry %r" % p)
        if len(f) == 4:
            out.append(tuple(f))
        else:
            out.append((f[0], f[1], f[2] if len(f) == 3 else ""))
    return out


def take_frame(buf):
    """(the first whole frame of @buf as bytes, the rest), or (None, @buf)."""
    n = 0
    shift = 0
    for i, b in enumerate(buf):
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            start = i + 1
            if len(buf) - start < n:
                return None, buf
            return bytes(buf[start:start + n]), buf[start + n:]
        if shift > 63:
            raise ValueError("overlong LEB128")
    return None, buf


def binary_frame(data):
    """A binary frame: LEB128 byte length + the bytes."""
    return leb128(len(data)) + bytes(data)


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
        data = self._try_bytes()
        return None if data is None else data.decode("utf-8")

    def _try_bytes(self):
        data, self.buf = take_frame(self.buf)
        return data

    def read(self, timeout=2.0):
        """The next frame, or None at end of stream (@timeout times SLOW)."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            text = self._try_frame()
            if text is not None:
                return text
            if self.eof:
                return None
            self._fill(deadline)

    def read_bytes(self, timeout=2.0, deadline=None):
        """The next frame as bytes (a binary frame: a Noise message), or None
        at end of stream; by @deadline (time.monotonic()) if given, else
        within @timeout times SLOW."""
        if deadline is None:
            deadline = time.monotonic() + timeout * SLOW
        while True:
            data = self._try_bytes()
            if data is not None:
                return data
            if self.eof:
                return None
            self._fill(deadline)

    def wait_eof(self, timeout=2.0):
        """True when the peer closes (after any remaining frames) within
        @timeout times SLOW."""
        deadline = time.monotonic() + timeout * SLOW
        try:
            while not self.eof:
                self._fill(deadline)
        except TimeoutError:
            return False
        return True



def read_frame(sock, timeout=5.0):
    """Reads one LEB128-framed UTF-8 string from a TCP socket."""
    text = FrameReader(sock).read(timeout)
    if text is None:
        raise EOFError
    return text


# --- clients ---------------------------------------------------------------

class RefClient:
    """The seed's reference client: UTF-16LE datagrams, logins from throwaway
    ports, the list over TCP from the Accept's source IP, then close.

    @coordinator is (host, port) or "host:port".  Every datagram received is
    noted: talk in .received as (sender, text), logins and logouts in .roster
    (name -> endpoint), which fetch_list() fills as well.

    Like the real one it sends nothing from its listening socket while it
    runs, and close() closes that socket, so its host answers later
    datagrams with ICMP port unreachable.  An empty datagram (the
    coordinator's probe) is a message of type "" to the real client, which
    ignores types it does not know: recv() counts it in .ignored and goes on
    waiting, and it changes nothing the client shows."""

    encoding = "utf-16-le"
    caps = None

    def __init__(self, name, coordinator, ip="127.0.0.1"):
        self.name = name
        self.server = (parse_endpoint(coordinator) if isinstance(coordinator, str)
                       else tuple(coordinator))
        self.ip = ip
        self.sock = socket.socket(family(ip), socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.endpoint = endpoint(ip, self.sock.getsockname()[1])
        self.accept_from = None
        self.roster = {}
        self.received = []
        self.ignored = 0

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
        """Sends the login datagram (see join() for the whole login)."""
        self.send_raw(self.encode(self.login_text(endpoint)), src_ip)

    def logout(self, misspelled=False, src_ip=None):
        """logout, or "lohout" as the seed's reference client spells it."""
        verb = "lohout" if misspelled else "logout"
        self.send_raw(self.encode("%s,%s,%s" % (verb, self.name, self.endpoint)), src_ip)

    def _note(self, text):
        f = text.split(",", 3)
        if f[0] == "talk" and len(f) == 4:
            self.received.append((f[2], f[3]))
        elif f[0] == "login" and len(f) >= 3:
            self.roster[f[1]] = f[2]
        elif f[0] in ("logout", "lohout") and len(f) >= 3:
            self.roster.pop(f[1], None)

    def recv(self, timeout=1.0):
        """(text, source address) of the next datagram within @timeout
        (times SLOW), or (None, None)."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            r, _, _ = select.select([self.sock], [], [],
                                    max(0.0, deadline - time.monotonic()))
            if not r:
                return None, None
            data, addr = self.sock.recvfrom(65536)
            if data:
                break
            self.ignored += 1
        try:
            text = decode_datagram(data)
        except UnicodeDecodeError:
            text = data.decode("utf-16-le", "replace")
        self._note(text)
        return text, addr

    def expect(self, prefix, timeout=1.0):
        """The next datagram starting with @prefix, skipping others, within
        @timeout (times SLOW); or None."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            text, addr = self.recv(left / SLOW)
            if text is None:
                return None
            if text.startswith(prefix):
                if prefix.startswith("Accept"):
                    self.accept_from = addr
                return text

    def drain(self, timeout=0.05):
        """All datagrams that arrive within @timeout (times SLOW) of each other."""
        out = []
        while True:
            text, _ = self.recv(timeout)
            if text is None:
                return out
            out.append(text)

    def poll(self, seconds):
        """Every datagram that arrives in the next @seconds (times SLOW), as
        (text, source address)."""
        out = []
        deadline = time.monotonic() + seconds * SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            text, addr = self.recv(left / SLOW)
            if text is not None:
                out.append((text, addr))

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
        # From our own IP, like a client on its own host: the coordinator
        # confirms a reference login by a list fetch from the login's IP.
        with socket.create_connection((host, port), timeout=timeout * SLOW,
                                      source_address=(self.ip, 0)) as s:
            reader = FrameReader(s)
            text = reader.read(timeout)
            if text is None:
                return None, True
            entries = parse_list(text)
            for e in entries:
                self.roster[e[0]] = e[1]
            return entries, reader.wait_eof(timeout)

    def join(self, timeout=10.0):
        """The whole login of the reference client: login, Accept, the list.
        True once the list is read."""
        self.login()
        port = self.wait_accept(timeout)
        if port is None:
            return False
        entries, _ = self.fetch_list(port)
        return entries is not None

    def talk(self, to_ep, text, sender=None, source_host="127.0.0.1"):
        """A UTF-16LE talk datagram to @to_ep from a throwaway port."""
        with socket.socket(family(source_host), socket.SOCK_DGRAM) as s:
            s.bind((source_host, 0))
            s.sendto(utf16("talk,%s,%s,%s" % (time.strftime("%H:%M:%S"), sender or self.name,
                                              text)), parse_endpoint(to_ep))


class Utf8RefClient(RefClient):
    """A reference-dialect client that talks UTF-8 datagrams."""
    encoding = "utf-8"


def fingerprint(pk):
    """The fingerprint users compare: BLAKE2b-512 of the context and the
    Ed25519 public key @pk; its first 30 bytes as twelve big-endian 20-bit
    numbers, each mod 100000 as 5 digits, joined by spaces."""
    digest = hashlib.blake2b(FINGERPRINT_CONTEXT + bytes(pk), digest_size=64).digest()
    bits = int.from_bytes(digest[:30], "big")
    groups = [(bits >> (20 * (11 - i))) & 0xFFFFF for i in range(12)]
    return " ".join("%05d" % (g % 100000) for g in groups)


class Identity:
    """An Ed25519 key pair (.pk, .sk: libsodium's 64-byte secret) and its
    X25519 form (.x_pk, .x_sk), the Noise static key.  Identity() is a new
    one; Identity(seed=32 bytes) or Identity(pk=..., sk=...) a given one."""

    def __init__(self, seed=None, pk=None, sk=None):
        if pk is not None and sk is not None:
            self.pk, self.sk = bytes(pk), bytes(sk)
        elif seed is not None:
            self.pk, self.sk = crypto_sign_seed_keypair(bytes(seed))
        else:
            self.pk, self.sk = crypto_sign_keypair()
        self.x_pk = crypto_sign_ed25519_pk_to_curve25519(self.pk)
        self.x_sk = crypto_sign_ed25519_sk_to_curve25519(self.sk)

    @property
    def hex(self):
        """The key as the wire writes it: 64 lowercase hex digits."""
        return self.pk.hex()

    def fingerprint(self):
        return fingerprint(self.pk)

    def __repr__(self):
        return "Identity(%s)" % self.hex


class Rejected(RuntimeError):
    """The coordinator refused the session: .reason from "Reject,REASON",
    .encrypted when the refusal came after the handshake."""

    def __init__(self, text, encrypted):
        super().__init__("%s (%s)" % (text, "encrypted" if encrypted else "clear"))
        self.text = text
        self.reason = text.split(",", 1)[1] if "," in text else ""
        self.encrypted = encrypted


class SessionReader:
    """Reads the frame stream of a Noise session: each binary frame on the
    socket is one transport message; the plaintexts, concatenated in
    .plain, are parsed into text frames (one message may carry several, a
    frame may span several).  Same interface as FrameReader (read(),
    read_bytes(), wait_eof()); a message that fails authentication raises
    noise.DecryptError."""

    def __init__(self, raw, cipher):
        self.raw = raw  # the FrameReader of the socket
        self.cipher = cipher
        self.plain = b""
        self.messages = 0

    @property
    def sock(self):
        return self.raw.sock

    @property
    def eof(self):
        return self.raw.eof

    def read_bytes(self, timeout=2.0, deadline=None):
        """The next frame of the plaintext stream as bytes, or None at end
        of stream (an incomplete frame left at the end is dropped)."""
        if deadline is None:
            deadline = time.monotonic() + timeout * SLOW
        while True:
            data, self.plain = take_frame(self.plain)
            if data is not None:
                return data
            msg = self.raw.read_bytes(deadline=deadline)
            if msg is None:
                return None
            self.plain += self.cipher.decrypt(msg)
            self.messages += 1

    def read(self, timeout=2.0):
        """The next text frame, or None at end of stream (@timeout times SLOW)."""
        data = self.read_bytes(timeout)
        return None if data is None else data.decode("utf-8")

    def wait_eof(self, timeout=2.0):
        return self.raw.wait_eof(timeout)


class NativeClient(RefClient):
    """Our native dialect: caps in the login datagram, then a TCP session:
    the clear hello, the Noise XX handshake that proves our .identity and
    learns the coordinator's (.coordinator_key, Ed25519), then encrypted
    frames (read_frame()/send_frame() encrypt and decrypt).

    @identity: an Identity (a new one by default), so that tests can reuse a
    key across clients; @hello_caps: the hello's caps (default
    "native1+noise1", "native1" with noise=False); @noise=False: the old
    plaintext session (no handshake; today's coordinator answers
    Reject,auth-required); @tamper:
    flip a bit in handshake message 3, so the coordinator must refuse it.

    For tests that stop midway, connect() is open_tcp(), send_hello(),
    handshake(), read_welcome(); send_raw_frame() sends any binary frame,
    send_plain() seals any plaintext bytes."""

    caps = NATIVE_CAPS

    def __init__(self, name, coordinator, ip="127.0.0.1", encoding="utf-8", identity=None,
                 hello_caps=None, noise=True, tamper=False):
        super().__init__(name, coordinator, ip)
        self.encoding = encoding
        self.identity = identity or Identity()
        if hello_caps is None:
            hello_caps = HELLO_CAPS if noise else NATIVE_CAPS
        self.hello_caps = hello_caps
        self.noise = noise
        self.tamper = tamper
        self.tcp = None
        self.reader = None
        self.raw = None           # the socket's FrameReader
        self.hello_text = None
        self.handshake_state = None
        self.send_cipher = None
        self.coordinator_key = None  # Ed25519, from handshake message 2
        self.welcome = None

    # --- the steps of connect() -------------------------------------------

    def open_tcp(self, port, timeout=2.0, rcvbuf=None):
        """A new TCP connection from our IP (@rcvbuf: its SO_RCVBUF, set
        before connecting); the session state is reset."""
        if rcvbuf is None:
            self.tcp = socket.create_connection((self.server[0], port),
                                                timeout=timeout * SLOW,
                                                source_address=(self.ip, 0))
        else:
            self.tcp = socket.socket(family(self.ip), socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.tcp.settimeout(timeout * SLOW)
            self.tcp.bind((self.ip, 0))
            self.tcp.connect((self.server[0], port))
        self.raw = FrameReader(self.tcp)
        self.reader = self.raw
        self.handshake_state = None
        self.send_cipher = None
        self.coordinator_key = None
        self.welcome = None
        return self.tcp

    def send_hello(self, caps=None, name=None):
        """The clear hello frame; it is the Noise prologue's tail."""
        caps = self.hello_caps if caps is None else caps
        self.hello_text = "hello,%s,%s" % (name or self.name, caps)
        self.tcp.sendall(frame(self.hello_text))

    def _check_clear_reject(self, data):
        if data is None:
            raise EOFError("session closed during the handshake")
        if data.startswith(b"Reject,"):
            raise Rejected(data.decode("utf-8", "replace"), False)

    def handshake(self, timeout=2.0, tamper=None):
        """Noise XX as initiator: message 1, read 2 (checking that its
        Ed25519 payload converts to the proved static key), send 3.  A
        clear Reject instead of message 2 raises Rejected."""
        tamper = self.tamper if tamper is None else tamper
        prologue = SESSION_PROLOGUE + self.hello_text.encode("utf-8")
        hs = noise.HandshakeState("XX", True, prologue, s=self.identity.x_sk)
        self.handshake_state = hs
        self.tcp.sendall(binary_frame(hs.write_message(b"")))
        msg2 = self.raw.read_bytes(timeout)
        self._check_clear_reject(msg2)
        payload = hs.read_message(msg2)
        if len(payload) != 32:
            raise noise.NoiseError("message 2 payload of %d bytes" % len(payload))
        if crypto_sign_ed25519_pk_to_curve25519(payload) != hs.rs:
            raise noise.NoiseError("the coordinator's Ed25519 key is not its static key")
        self.coordinator_key = payload
        msg3 = bytearray(hs.write_message(self.identity.pk))
        if tamper:
            msg3[-1] ^= 0x01  # in the payload's tag: the responder cannot open it
        self.tcp.sendall(binary_frame(msg3))
        self.send_cipher = hs.send
        self.reader = SessionReader(self.raw, hs.recv)

    def read_welcome(self, timeout=2.0):
        """welcome then the list; Rejected for a Reject instead."""
        encrypted = self.send_cipher is not None
        welcome = self.reader.read(timeout)
        if welcome is not None and welcome.startswith("Reject,"):
            raise Rejected(welcome, encrypted)
        if welcome is None or not welcome.startswith("welcome,"):
            raise RuntimeError("expected welcome, got %r" % welcome)
        self.welcome = welcome
        text = self.reader.read(timeout)
        if text is None:
            raise RuntimeError("session closed before the list")
        return parse_list(text)

    # --- the session ------------------------------------------------------

    def connect(self, port, timeout=2.0, caps=None):
        """Open the session: hello, the handshake (unless noise=False), then
        expect welcome and the list, which it returns.  Raises Rejected when
        the coordinator refuses."""
        self.open_tcp(port, timeout)
        self.send_hello(caps)
        if self.noise:
            self.handshake(timeout)
        return self.read_welcome(timeout)

    def login_session(self, timeout=2.0, caps=None):
        """Login, Accept, session; returns the list: (name, ep, caps), with
        the key as a 4th element for users the coordinator authenticated."""
        self.login()
        port = self.wait_accept(timeout)
        if port is None:
            raise RuntimeError("%s: no Accept" % self.name)
        return self.connect(port, timeout, caps)

    def read_frame(self, timeout=2.0):
        return self.reader.read(timeout)

    def send_plain(self, data, chunk=MAX_TRANSPORT_PAYLOAD):
        """Seals @data (bytes of the frame stream) into transport messages
        of at most @chunk plaintext bytes each, one binary frame each, and
        sends them at once.  Without a session cipher, sends @data as is."""
        if self.send_cipher is None:
            self.tcp.sendall(bytes(data))
            return
        out = bytearray()
        for i in range(0, max(len(data), 1), chunk):
            out += binary_frame(self.send_cipher.encrypt(bytes(data[i:i + chunk])))
        self.tcp.sendall(out)

    def send_frame(self, text):
        self.send_plain(frame(text))

    def send_frames(self, texts):
        """Several frames in one transport message."""
        self.send_plain(b"".join(frame(t) for t in texts))

    def send_raw_frame(self, data):
        """A binary frame of @data as is, never encrypted (a forged or
        replayed Noise message)."""
        self.tcp.sendall(binary_frame(data))

    def close(self):
        if self.tcp:
            self.tcp.close()
        super().close()


# --- the reference server --------------------------------------------------

class RefServer:
    """The seed's reference server, in Python: UTF-16LE datagrams, the list
    on TCP then close, login/logout forwarded by UDP to the other users.
    Both listening sockets are bound to ports the kernel picks.  Like the
    real one, it sends every datagram (Accept, forwards) from a new socket
    on an ephemeral port: only the source IP is the server's.

    @drop_forwards: names whose login forward is not sent (lost datagrams).
    @delay_forwards: name -> seconds by which its login forward is late.
    @extra: additional list entries "name,ep" (e.g. 10,000 fake peers)."""

    def __init__(self, host="127.0.0.1", extra=()):
        self.host = host
        self.users = {}  # name -> "ip:port"
        self.extra = list(extra)
        self.drop_forwards = set()
        self.delay_forwards = {}
        self.lock = threading.Lock()
        self.udp = socket.socket(family(host), socket.SOCK_DGRAM)
        self.udp.bind((host, 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(family(host), socket.SOCK_STREAM)
        self.tcp.bind((host, 0))
        self.tcp.listen(64)
        self.tcp_port = self.tcp.getsockname()[1]
        self.running = True
        for fn in (self._udp_loop, self._tcp_loop):
            threading.Thread(target=fn, daemon=True).start()

    @property
    def address(self):
        return endpoint(self.host, self.port)

    def _sendto(self, text, ep):
        """One datagram from a new socket (the reference server's
        UdpClient(0) per send), never from the listening port."""
        with socket.socket(family(self.host), socket.SOCK_DGRAM) as s:
            s.bind((self.host, 0))
            s.sendto(utf16(text), parse_endpoint(ep))

    def _forward_all(self, text, eps):
        for e in eps:
            try:
                self._sendto(text, e)
            except OSError:
                pass

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
                    delay = self.delay_forwards.get(name, 0)
                elif kind in ("logout", "lohout"):
                    self.users.pop(name, None)
                    others = list(self.users.values())
                    forward = True
                    delay = 0
                else:
                    continue
            if forward and delay:
                threading.Timer(delay, self._forward_all, (text, others)).start()
            elif forward:
                self._forward_all(text, others)

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
